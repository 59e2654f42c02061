#!/usr/bin/env python3
"""attention-cases.py — writes one-node Attention (opset 23) test-case folders at transformer
shapes, for `gpux bench --profile` (model.onnx and test_data_set_0/input_K.pb, random inputs;
no onnx or numpy needed):

  bert        B=1, H=12, S=128, D=64, additive mask (1, 1, 1, 128)
  vit         B=1, H=12, S=197, D=64
  gpt2-prompt B=1, H=12, S=128, D=64, causal
  gpt2-step   B=1, H=12, one query over a cache of 1023 past keys (+1), D=64, causal,
              present key/value out
  bert-chain  bert as exporters write it: MatMul(Q, Transpose(K)), Div by 8, Add mask, Softmax,
              MatMul(P, V) (one Attention node when GPUX_FUSE_ATTENTION=1 has the rewrite fuse it)

    bench/attention-cases.py DIR [CASE...]
"""
import os, random, struct, sys

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

FLOAT = 1
def value_info(name, dims):
    shape = b"".join(ld(1, vint(1, d)) for d in dims) if dims is not None else b""
    return s(1, name) + ld(2, ld(1, vint(1, FLOAT) + (ld(2, shape) if dims is not None else b"")))
def attr_int(name, v): return s(1, name) + vint(3, v) + vint(20, 2)
def tensor(name, dims, vals):
    return b"".join(vint(1, d) for d in dims) + vint(2, FLOAT) + s(8, name) + ld(9, struct.pack(f"<{len(vals)}f", *vals))

def attr_ints(name, vs): return s(1, name) + b"".join(vint(8, v) for v in vs) + vint(20, 7)

def write_inputs(d, inputs):
    rng = random.Random(7)
    for k, (n, dims) in enumerate(inputs):
        count = 1
        for x in dims:
            count *= x
        lo, hi = (-4.0, 0.0) if n == "mask" else (-1.0, 1.0)
        with open(os.path.join(d, "test_data_set_0", f"input_{k}.pb"), "wb") as f:
            f.write(tensor(n, dims, [rng.uniform(lo, hi) for _ in range(count)]))

def chain(d, S):
    """BERT's attention as exported: the five nodes the attention rewrite fuses."""
    inputs = [("q", [1, H, S, D]), ("k", [1, H, S, D]), ("v", [1, H, S, D]), ("mask", [1, 1, 1, S])]
    def nd(op, ins, outs, attrs=()):
        return ld(1, b"".join(s(1, i) for i in ins) + b"".join(s(2, o) for o in outs) + s(3, outs[0]) + s(4, op)
                  + b"".join(ld(5, a) for a in attrs))
    g = (nd("Transpose", ["k"], ["kt"], [attr_ints("perm", [0, 1, 3, 2])]) + nd("MatMul", ["q", "kt"], ["qk"])
         + nd("Div", ["qk", "eight"], ["scaled"]) + nd("Add", ["scaled", "mask"], ["masked"])
         + nd("Softmax", ["masked"], ["p"], [attr_int("axis", -1)]) + nd("MatMul", ["p", "v"], ["y"]))
    g += s(2, "attention-chain") + ld(5, tensor("eight", [], [8.0]))
    g += b"".join(ld(11, value_info(n, dims)) for n, dims in inputs) + ld(12, value_info("y", None))
    model = vint(1, 8) + ld(8, s(1, "") + vint(2, 17)) + ld(7, g)
    os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(model)
    write_inputs(d, inputs)

def case(d, inputs, n_out, attrs):
    """inputs: (name, dims) in Attention's input order, None for an omitted one."""
    names = [i[0] if i else "" for i in inputs]
    outs = ["y", "present_key", "present_value"][:n_out]
    nd = b"".join(s(1, n) for n in names) + b"".join(s(2, o) for o in outs) + s(3, "attn") + s(4, "Attention")
    nd += b"".join(ld(5, a) for a in attrs)
    g = ld(1, nd) + s(2, "attention") + b"".join(ld(11, value_info(n, dims)) for n, dims in (i for i in inputs if i))
    g += b"".join(ld(12, value_info(o, None)) for o in outs)
    model = vint(1, 8) + ld(8, s(1, "") + vint(2, 23)) + ld(7, g)
    os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(model)
    write_inputs(d, [i for i in inputs if i])

H, D = 12, 64
CASES = {
    "bert": lambda d: case(d, [("q", [1, H, 128, D]), ("k", [1, H, 128, D]), ("v", [1, H, 128, D]), ("mask", [1, 1, 1, 128])], 1, []),
    "vit": lambda d: case(d, [("q", [1, H, 197, D]), ("k", [1, H, 197, D]), ("v", [1, H, 197, D])], 1, []),
    "gpt2-prompt": lambda d: case(d, [("q", [1, H, 128, D]), ("k", [1, H, 128, D]), ("v", [1, H, 128, D])], 1,
                                  [attr_int("is_causal", 1)]),
    "gpt2-step": lambda d: case(d, [("q", [1, H, 1, D]), ("k", [1, H, 1, D]), ("v", [1, H, 1, D]), None,
                                    ("past_key", [1, H, 1023, D]), ("past_value", [1, H, 1023, D])], 3,
                                [attr_int("is_causal", 1)]),
    "bert-chain": lambda d: chain(d, 128),
}

if len(sys.argv) < 2:
    sys.exit(__doc__)
for name in sys.argv[2:] or CASES:
    if name not in CASES:
        sys.exit(f"attention-cases.py: no case {name} ({', '.join(CASES)})")
    CASES[name](os.path.join(sys.argv[1], name))
    print(os.path.join(sys.argv[1], name))
