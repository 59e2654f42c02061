"""build_backend.py — a PEP 517 build backend for the gpux package, small enough to need nothing
but the standard library: a wheel is the gpux/*.py files plus the dist-info metadata, which is
all a pure-Python package needs. Name, version and dependencies come from pyproject.toml."""

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile

_HERE = os.path.dirname(os.path.abspath(__file__))


def _project():
    text = open(os.path.join(_HERE, "pyproject.toml"), encoding="utf-8").read()
    section = text.split("[project]", 1)[1].split("\n[", 1)[0]

    def value(key):
        m = re.search(r'^%s\s*=\s*"([^"]*)"' % key, section, re.M)
        return m.group(1) if m else ""

    deps = re.search(r"^dependencies\s*=\s*\[([^\]]*)\]", section, re.M)
    return {
        "name": value("name"),
        "version": value("version"),
        "summary": value("description"),
        "requires_python": value("requires-python"),
        "deps": re.findall(r'"([^"]+)"', deps.group(1)) if deps else [],
    }


def _metadata(p):
    lines = ["Metadata-Version: 2.1", "Name: " + p["name"], "Version: " + p["version"],
             "Summary: " + p["summary"]]
    if p["requires_python"]:
        lines.append("Requires-Python: " + p["requires_python"])
    lines += ["Requires-Dist: " + d for d in p["deps"]]
    return "\n".join(lines) + "\n"


def _sources():
    pkg = os.path.join(_HERE, "gpux")
    return sorted("gpux/" + f for f in os.listdir(pkg) if f.endswith(".py"))


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def _dist_info(p):
    return "%s-%s.dist-info" % (p["name"], p["version"])


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    p = _project()
    d = os.path.join(metadata_directory, _dist_info(p))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "METADATA"), "w", encoding="utf-8") as f:
        f.write(_metadata(p))
    return _dist_info(p)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    p = _project()
    name = "%s-%s-py3-none-any.whl" % (p["name"], p["version"])
    info = _dist_info(p)
    files = [(rel, open(os.path.join(_HERE, rel), "rb").read()) for rel in _sources()]
    files.append((info + "/METADATA", _metadata(p).encode()))
    files.append((info + "/WHEEL", b"Wheel-Version: 1.0\nGenerator: gpux build_backend\n"
                  b"Root-Is-Purelib: true\nTag: py3-none-any\n"))
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for rel, data in files:
            z.writestr(rel, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append("%s,sha256=%s,%d" % (rel, digest, len(data)))
        record.append(info + "/RECORD,,")
        z.writestr(info + "/RECORD", "\n".join(record) + "\n")
    return name


def build_sdist(sdist_directory, config_settings=None):
    p = _project()
    base = "%s-%s" % (p["name"], p["version"])
    with tarfile.open(os.path.join(sdist_directory, base + ".tar.gz"), "w:gz") as t:
        for rel in ["pyproject.toml", "build_backend.py"] + _sources():
            t.add(os.path.join(_HERE, rel), base + "/" + rel)
        meta = _metadata(p).encode()
        ti = tarfile.TarInfo(base + "/PKG-INFO")
        ti.size = len(meta)
        t.addfile(ti, io.BytesIO(meta))
    return base + ".tar.gz"
