# handler-runner.py — gpux's worker for Python handlers (`handler: ./handler.py` in a GPUXfile).
# gpux (src/app/handler.c) starts it as `python3 -I -B handler-runner.py HANDLER.py FOLDER` with
# fd 3 a SOCK_SEQPACKET socket, in a process of its own with no network and read-only file
# systems where Linux allows. It loads the user's file and answers the framed messages of
# src/app/handler-proto.h: preprocess(request) -> dict of input names to numpy arrays,
# postprocess(outputs, request) -> anything json.dumps takes (numpy scalars and arrays too);
# either function may be missing. Tensors and request values arrive in a memfd; failures go back
# as one line naming the handler's file and line.
import importlib.machinery
import importlib.util
import json
import mmap
import os
import socket
import sys
import threading
import time

MAX_MSG = 65536
ALIGN = 64


def watchdog(parent):
    """Ends the worker within a second of gpux's end, even while the handler loops."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


def main():
    threading.Thread(target=watchdog, args=(os.getppid(),), daemon=True).start()
    path, folder = sys.argv[1], sys.argv[2]
    name = os.path.basename(path)
    sock = socket.socket(fileno=3)
    try:
        import numpy as np
    except ImportError as e:
        send(sock, {"ok": False, "error": "%s: Python handlers need numpy (Debian: apt-get install python3-numpy): %s" % (name, e)})
        return
    dtypes = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32, 7: np.int64,
              9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}
    codes = {np.dtype(v): k for k, v in dtypes.items()}
    try:
        os.chdir(folder)
    except OSError:
        pass
    try:
        # by its path whatever the name: in an image it is a link to a blob
        loader = importlib.machinery.SourceFileLoader("handler", path)
        spec = importlib.util.spec_from_file_location("handler", path, loader=loader)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["handler"] = mod
        spec.loader.exec_module(mod)
    except BaseException as e:  # a syntax error, a failed import, an exception at import time
        send(sock, {"ok": False, "error": where(e, path, name) + "while loading: " + describe(e)})
        return
    funcs = {}
    for fn in ("preprocess", "postprocess"):
        f = getattr(mod, fn, None)
        if f is not None and not callable(f):
            send(sock, {"ok": False, "error": "%s: '%s' is not a function" % (name, fn)})
            return
        funcs[fn] = f
    send(sock, {"ok": True, "preprocess": funcs["preprocess"] is not None,
                "postprocess": funcs["postprocess"] is not None})

    def defline(fn):
        return "%s:%d: %s" % (name, funcs[fn].__code__.co_firstlineno, fn)

    while True:
        data, fds, _, _ = socket.recv_fds(sock, MAX_MSG, 1)
        if not data:
            return
        msg = json.loads(data)
        fd = fds[0] if fds else -1
        mm = None
        try:
            mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ) if fd >= 0 and os.fstat(fd).st_size else None
            op = msg["op"]
            request = {}
            for v in msg.get("request", []):
                b = mm[v["offset"]:v["offset"] + v["size"]] if v["size"] else b""
                request[v["name"]] = b.decode("utf-8", "surrogateescape") if v["text"] else b
            try:
                if op == "preprocess":
                    r = funcs["preprocess"](request)
                elif op == "postprocess":
                    outputs = {}
                    for t in msg.get("tensors", []):
                        dt = np.dtype(dtypes[t["dtype"]])
                        n = t["size"] // dt.itemsize
                        # a copy: the view of the memfd must be gone before it is closed
                        outputs[t["name"]] = (np.frombuffer(mm, dtype=dt, count=n, offset=t["offset"]) if n
                                              else np.zeros(0, dt)).reshape(t["shape"]).copy()
                    r = funcs["postprocess"](outputs, request)
                else:
                    raise ValueError("unknown operation %r" % op)
            except BaseException as e:
                send(sock, {"ok": False, "error": where(e, path, name) + "in %s: %s" % (op, describe(e))})
                continue
            if op == "preprocess":
                reply, blob = pack_tensors(r, np, codes, defline("preprocess"))
            else:
                try:
                    blob = json.dumps(r, default=lambda o: jsonable(o, np), allow_nan=False).encode()
                except (TypeError, ValueError) as e:
                    raise Garbage("%s returned a value that is not JSON: %s" % (defline("postprocess"), e))
                reply = {"ok": True, "result": {"offset": 0, "size": len(blob)}}
            send(sock, reply, blob)
        except Garbage as e:
            send(sock, {"ok": False, "error": str(e)})
        finally:
            if mm is not None:
                mm.close()
            if fd >= 0:
                os.close(fd)


class Garbage(Exception):
    """A handler's return value that gpux cannot take."""


def jsonable(o, np):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (bytes, bytearray)):
        return o.decode("utf-8", "replace")
    raise TypeError("%s is not JSON-able" % type(o).__name__)


def pack_tensors(r, np, codes, where_def):
    if not isinstance(r, dict):
        raise Garbage("%s returned %s, expected a dict of input names to numpy arrays" % (where_def, type(r).__name__))
    arrays, size = [], 0
    for k, v in r.items():
        if not isinstance(k, str):
            raise Garbage("%s returned a key %r, expected input names (str)" % (where_def, k))
        try:
            a = np.ascontiguousarray(v)
        except Exception as e:
            raise Garbage("%s returned %s for '%s': %s" % (where_def, type(v).__name__, k, e))
        if a.dtype not in codes:
            raise Garbage("%s returned '%s' of dtype %s, expected numbers or booleans" % (where_def, k, a.dtype))
        if a.ndim > 8:
            raise Garbage("%s returned '%s' with %d dimensions (at most 8)" % (where_def, k, a.ndim))
        size = (size + ALIGN - 1) // ALIGN * ALIGN
        arrays.append((k, a, size))
        size += a.nbytes
    blob = bytearray(size)
    tensors = []
    for k, a, off in arrays:
        blob[off:off + a.nbytes] = a.tobytes()
        tensors.append({"name": k, "dtype": codes[a.dtype], "shape": list(a.shape), "offset": off, "size": a.nbytes})
    return {"ok": True, "tensors": tensors}, bytes(blob)


def where(e, path, name):
    """'handler.py:LINE: ' for the deepest line of the handler's file in e's traceback."""
    line = None
    if isinstance(e, SyntaxError) and e.filename == path:
        line = e.lineno
    tb = e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    return "%s:%s: " % (name, line) if line else "%s: " % name


def describe(e):
    text = " ".join(str(e).split())
    return "%s: %s" % (type(e).__name__, text) if text else type(e).__name__


def send(sock, obj, blob=b""):
    """One message; blob (bytes) goes in a memfd passed along."""
    data = json.dumps(obj).encode()
    if len(data) >= MAX_MSG:
        data = json.dumps({"ok": False, "error": "the answer's description is too large"}).encode()
        blob = b""
    if not blob:
        sock.sendmsg([data])
        return
    fd = os.memfd_create("gpux-handler", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, len(blob))
        with mmap.mmap(fd, len(blob)) as m:
            m[:] = blob
        socket.send_fds(sock, [data], [fd])
    finally:
        os.close(fd)


if __name__ == "__main__":
    main()
