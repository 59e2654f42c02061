#!/usr/bin/env bash
# run.sh — the gpux Python package as `make install` installs it: installs the build tree into a
# temporary prefix, builds examples/ocr into a temporary GPUX_HOME with the installed gpux,
# renders a text line, and runs test_gpux.py (python3 -m unittest) with the installed package;
# then checks that `pip install ./python` works offline into a virtual environment.
#
#   tests/python/run.sh BUILD_DIR
set -u
build=$(cd "${1:?usage: run.sh BUILD_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset GPUX_LIBRARY GPUX_WEBGPU_LIB

# Debian's numpy is for /usr/bin/python3; a python3 earlier on PATH may lack it
py=
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import numpy' 2>/dev/null; then py=$p; break; fi
done
[ -n "$py" ] || { echo "MISSING: no python3 with numpy (scripts/install-deps.sh installs python3-numpy)"; exit 1; }
command -v convert >/dev/null || { echo "MISSING: ImageMagick's convert (scripts/install-deps.sh)"; exit 1; }

prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; exit 1; }
site=$prefix/lib/python3/dist-packages
[ -f "$site/gpux/__init__.py" ] || { echo "FAIL: the package is not installed in $site"; exit 1; }

export GPUX_HOME=$tmp/home
"$prefix/bin/gpux" build -q --allow-outside "$root/examples/ocr" >/dev/null || { echo "FAIL: gpux build examples/ocr"; exit 1; }
convert -background white -fill black -font DejaVu-Sans -pointsize 32 label:"Hello world 2024" \
  -bordercolor white -border 10 "$tmp/line.png" || exit 1

fails=0
(cd "$tmp" && GPUX_TEST_BIN=$prefix/bin/gpux GPUX_TEST_PREFIX=$prefix GPUX_TEST_ROOT=$root GPUX_TEST_LINE=$tmp/line.png \
   PYTHONPATH=$site:$here PYTHONDONTWRITEBYTECODE=1 "$py" -m unittest -v test_gpux 2>&1) || fails=$((fails + 1))

# pip install ./python with no network: the in-tree build backend needs nothing from an index
if "$py" -m venv --system-site-packages "$tmp/venv" >/dev/null 2>&1; then
  cp -r "$root/python" "$tmp/src"   # pip writes nothing into the source tree
  if "$tmp/venv/bin/pip" install --no-index --no-cache-dir -q "$tmp/src" >"$tmp/pip.log" 2>&1 &&
     (cd "$tmp" && GPUX_LIBRARY=$prefix/lib/libgpux.so.0 "$tmp/venv/bin/python" -c \
       'import gpux, sys; sys.exit(gpux.version() != "'"$("$prefix/bin/gpux" --version | cut -d' ' -f2)"'")'); then
    echo "pip install ./python: ok"
  else
    echo "FAIL: pip install ./python"; cat "$tmp/pip.log"; fails=$((fails + 1))
  fi
else
  echo "note: python3 -m venv is not available; pip install ./python not checked"
fi
[ "$fails" = 0 ]
