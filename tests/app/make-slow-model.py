#!/usr/bin/env python3
"""make-slow-model.py — writes DIR/model.onnx and DIR/GPUXfile: an app whose run takes as long as
its input asks. A Loop adds 1 to v (FLOAT [1]) n times (n: INT64 scalar), so n = 3 answers at
once and n = 10^12 runs for hours unless it is cancelled between nodes.

    tests/app/make-slow-model.py DIR
"""
import os, sys

def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out

def key(field, wire): return varint(field << 3 | wire)
def vint(field, v): return key(field, 0) + varint(v)
def ld(field, payload): return key(field, 2) + varint(len(payload)) + payload
def s(field, text): return ld(field, text.encode())

FLOAT, INT64, BOOL = 1, 7, 9
def value_info(name, dtype, dims):
    return s(1, name) + ld(2, ld(1, vint(1, dtype) + ld(2, b"".join(ld(1, vint(1, d)) for d in dims))))
def node(op, ins, outs, attrs=()):
    return b"".join(s(1, i) for i in ins) + b"".join(s(2, o) for o in outs) + s(4, op) + b"".join(ld(5, a) for a in attrs)
def graph(name, nodes, ins, outs, inits=()):
    return (b"".join(ld(1, n) for n in nodes) + s(2, name) + b"".join(ld(5, t) for t in inits)
            + b"".join(ld(11, v) for v in ins) + b"".join(ld(12, v) for v in outs))

one = vint(1, 1) + vint(2, FLOAT) + s(8, "one") + ld(9, b"\x00\x00\x80\x3f")
body = graph("body", [node("Identity", ["cond_in"], ["cond_out"]), node("Add", ["v_in", "one"], ["v_out"])],
             [value_info("i", INT64, []), value_info("cond_in", BOOL, []), value_info("v_in", FLOAT, [1])],
             [value_info("cond_out", BOOL, []), value_info("v_out", FLOAT, [1])], [one])
main = graph("slow", [node("Loop", ["n", "", "v"], ["y"], [s(1, "body") + vint(20, 5) + ld(6, body)])],
             [value_info("n", INT64, []), value_info("v", FLOAT, [1])], [value_info("y", FLOAT, [1])])
model = vint(1, 8) + ld(8, s(1, "") + vint(2, 17)) + ld(7, main)

d = sys.argv[1]
os.makedirs(d, exist_ok=True)
with open(os.path.join(d, "model.onnx"), "wb") as f:
    f.write(model)
with open(os.path.join(d, "GPUXfile"), "w") as f:
    f.write('name: slow\nversion: "1"\nmodel: model.onnx\nruntime:\n  backend: cpu\n')
