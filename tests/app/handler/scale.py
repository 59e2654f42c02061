# A Python handler for tests/app/handler.sh around scale.onnx (x float[batch,4] -> x * 10): the
# request's text picks what it does, well or badly.
import os
import socket

import numpy as np


def preprocess(request):
    v = request["input"]
    if v == "hang":
        while True:
            pass
    if v == "garbage":
        return [1, 2]
    if v == "strings":
        return {"x": np.array(["a"])}
    if v == "raise":
        return {"x": 1 / 0}
    if v == "unknown":
        return {"y": np.zeros((1, 4))}
    if v == "exit":
        os._exit(3)
    return {"x": np.array([[float(t) for t in v.split()]])}   # float64: gpux makes it float32


def postprocess(outputs, request):
    s = outputs["scaled"]
    if s[0, 0] == 70:
        import ctypes
        ctypes.string_at(0)                                     # a segfault
    if s[0, 0] == 80:
        return {"not json": object()}
    if s[0, 0] == 90:                                           # what the sandbox allows
        r = {}
        try:
            socket.create_connection(("1.1.1.1", 80), timeout=2)
            r["network"] = "reachable"
        except OSError as e:
            r["network"] = e.strerror
        try:
            open(os.path.join(os.getcwd(), "written"), "w")
            r["write"] = "allowed"
        except OSError as e:
            r["write"] = e.strerror
        return r
    return {"sum": s.sum(), "max": s.max(), "request": request["input"]}
