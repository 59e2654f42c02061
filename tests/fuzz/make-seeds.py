#!/usr/bin/env python3
"""make-seeds.py — writes the seed corpus of the fuzz harnesses (tests/fuzz/corpus/<harness>/):
small valid inputs to start from, and hand-made reproducers (repro-*) of every hostile-input bug fixed
(issue 15: typed fields of another data type, counts beyond dims, bad sparse tensors, deep type
nesting, long attribute lists, mismatched attribute kinds, Scan with a missing state, Reshape
overflow, OIP sizes and numbers out of range, unsafe layer titles), and the two small apps the
OIP and /predict harnesses serve (tests/fuzz/apps/). Run it again after adding a case; `make test` replays every file.

    tests/fuzz/make-seeds.py
"""
import json, os, struct

here = os.path.dirname(os.path.abspath(__file__))

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
def packed(field, values): return ld(field, b"".join(varint(v) for v in values))

FLOAT, UINT8, INT32, INT64, STRING, BOOL, FLOAT16, INT4 = 1, 2, 6, 7, 8, 9, 10, 22

def tensor(dims, dtype, name=None, raw=None, extra=b""):
    t = b"".join(vint(1, d) for d in dims) + vint(2, dtype)
    if name: t += s(8, name)
    if raw is not None: t += ld(9, raw)
    return t + extra

def f32(*v): return struct.pack("<%df" % len(v), *v)
def i64(*v): return struct.pack("<%dq" % len(v), *v)
def f16(*v): return struct.pack("<%de" % len(v), *v)

def sparse(values=None, indices=None, dims=()):
    out = b""
    if values is not None: out += ld(1, values)
    if indices is not None: out += ld(2, indices)
    return out + b"".join(vint(3, d) for d in dims)

big = 0x4141414141414141
tensorproto = {
    "float-raw": tensor([2, 2], FLOAT, "w", f32(1, 2, 3, 4)),
    "float-packed": tensor([3], FLOAT, extra=ld(4, f32(1.5, -2, 0))),
    "int64-packed": tensor([2], INT64, extra=packed(7, [5, -7])),
    "string": tensor([2], STRING, extra=s(6, "hello") + s(6, "")),
    "int4-int32data": tensor([3], INT4, extra=packed(5, [0x9F, 0x07])),
    "uint32-uint64data": tensor([2], 12, extra=vint(11, 1) + vint(11, 0xFFFFFFFF)),
    "complex64": tensor([1], 14, extra=ld(4, f32(1, 2))),
    # hostile: values of another type's field, counts beyond the dims, sizes beyond the bytes
    "repro-string-int64data": tensor([64], STRING, extra=packed(7, [big] * 64)),
    "repro-bool-int64data": tensor([64], BOOL, extra=packed(7, [big] * 64)),
    "repro-string-uint64data": tensor([8], STRING, extra=packed(11, [big] * 8)),
    "repro-uint8-doubledata": tensor([1], UINT8, extra=ld(10, struct.pack("<4d", 1, 2, 3, 4))),
    "repro-int32-overcount": tensor([2], INT32, extra=packed(5, [1, 2, 3])),
    "repro-huge-dims-floatdata": tensor([1000000000, 1000], FLOAT, extra=ld(4, f32(1, 2, 3))),
    "repro-huge-dims-raw": tensor([1 << 40, 1 << 20], FLOAT, raw=f32(1)),
    "repro-raw-and-typed": tensor([1], FLOAT, raw=f32(1), extra=ld(4, f32(1))),
    "repro-varint-cut": tensor([2], INT64, extra=ld(7, b"\x01\x80")),
    # SparseTensorProto
    "sparse-coo": sparse(tensor([2], FLOAT, "sp", f32(1.5, -2)), tensor([2, 2], INT64, raw=i64(0, 1, 1, 2)), (2, 3)),
    "sparse-flat": sparse(tensor([2], FLOAT, "sp", f32(1.5, -2)), tensor([2], INT64, raw=i64(1, 5)), (2, 3)),
    "repro-sparse-no-values": sparse(None, tensor([2], INT64, raw=i64(1, 5)), (2, 3)),
    "repro-sparse-few-indices": sparse(tensor([2], FLOAT, "sp", f32(1, 2)), tensor([1], INT64, raw=i64(1)), (2, 3)),
    "repro-sparse-coordinate": sparse(tensor([2], FLOAT, "sp", f32(1, 2)), tensor([2, 2], INT64, raw=i64(0, 5, 0, 0)), (2, 3)),
    "repro-sparse-overflow": sparse(tensor([1], FLOAT, "sp", f32(1)), tensor([1, 2], INT64, raw=i64(2**62, 2**62)), (2, 3)),
    "repro-sparse-strings": sparse(tensor([3], STRING, extra=s(6, "a") * 3), tensor([3], INT64, raw=i64(0, 1, 2)), (3,)),
    "repro-sparse-int32-indices": sparse(tensor([2], FLOAT, "sp", f32(1, 2)), tensor([2], INT32, raw=struct.pack("<2i", 1, 5)), (2, 3)),
    # SequenceProto of two tensors, OptionalProto of one
    "sequence": ld(3, tensor([1], FLOAT, raw=f32(1))) + ld(3, tensor([2], FLOAT, raw=f32(2, 3))),
    "optional": ld(3, tensor([1], INT64, raw=i64(7))),
}

def value_info(name, dtype, dims):
    shape = b"".join(ld(1, vint(1, d)) for d in dims)
    return s(1, name) + ld(2, ld(1, vint(1, dtype) + ld(2, shape)))

def node(op, inputs, outputs, attrs=()):
    return b"".join(s(1, i) for i in inputs) + b"".join(s(2, o) for o in outputs) + s(4, op) + b"".join(ld(5, a) for a in attrs)

def graph(nodes, inputs, outputs, inits=(), sparse_inits=()):
    g = b"".join(ld(1, n) for n in nodes) + s(2, "g") + b"".join(ld(5, t) for t in inits)
    g += b"".join(ld(11, v) for v in inputs) + b"".join(ld(12, v) for v in outputs)
    return g + b"".join(ld(15, t) for t in sparse_inits)

def model(g, opset=17):
    return vint(1, 8) + ld(8, s(1, "") + vint(2, opset)) + ld(7, g)

X2, Y2 = value_info("X", FLOAT, [2]), value_info("Y", FLOAT, [2])
deep = ld(1, vint(1, FLOAT))
for _ in range(3000):
    deep = ld(4, ld(1, deep))
scan_body = graph([node("Identity", ["s"], ["s_out"]), node("Identity", ["x"], ["y_out"])],
                  [value_info("s", FLOAT, [2]), value_info("x", FLOAT, [2])],
                  [value_info("s_out", FLOAT, [2]), value_info("y_out", FLOAT, [2])])
scan_attrs = [s(1, "body") + vint(20, 5) + ld(6, scan_body), s(1, "num_scan_inputs") + vint(20, 2) + vint(3, 1)]
models = {
    "identity": model(graph([node("Identity", ["X"], ["Y"])], [X2], [Y2])),
    "add-initializer": model(graph([node("Add", ["X", "W"], ["Y"])], [X2], [Y2], [tensor([2], FLOAT, "W", f32(1, 2))])),
    "sparse-initializer": model(graph([node("Add", ["X", "W"], ["Y"])], [X2], [Y2], (),
                                      [sparse(tensor([1], FLOAT, "W", f32(3)), tensor([1], INT64, raw=i64(1)), (2,))])),
    "scan": model(graph([node("Scan", ["S0", "X"], ["S", "Y"], scan_attrs)],
                        [value_info("S0", FLOAT, [2]), value_info("X", FLOAT, [3, 2])],
                        [value_info("S", FLOAT, [2]), value_info("Y", FLOAT, [3, 2])])),
    "repro-string-initializer-int64data": model(graph([node("Identity", ["W"], ["Y"])], [], [value_info("Y", STRING, [64])],
                                                       [tensor([64], STRING, "W", extra=packed(7, [big] * 64))])),
    "repro-sparse-initializer-strings": model(graph([node("Identity", ["W"], ["Y"])], [], [Y2], (),
                                                    [sparse(tensor([3], STRING, "W", extra=s(6, "a") * 3),
                                                            tensor([3], INT64, raw=i64(0, 1, 2)), (3,))])),
    "repro-deep-type": model(graph([node("Identity", ["X"], ["Y"])], [s(1, "X") + ld(2, deep)], [Y2])),
    "repro-long-ints-attribute": model(graph([node("Identity", ["X"], ["Y"], [s(1, "junk") + vint(20, 7) + b"".join(vint(8, i) for i in range(20000))])], [X2], [Y2])),
    "repro-graphs-carrying-ints": model(graph([node("Identity", ["X"], ["Y"], [s(1, "body") + vint(20, 10) + vint(8, 1) + vint(8, 2)])], [X2], [Y2])),
    "repro-scan-empty-state": model(graph([node("Scan", ["", "X"], ["S", "Y"], scan_attrs)],
                                          [value_info("X", FLOAT, [3, 2])],
                                          [value_info("S", FLOAT, [2]), value_info("Y", FLOAT, [3, 2])])),
    # a float16 graph, which the CPU backend rewrites to compute in float32 (lower-fp16.c): a
    # Constant, an initializer, a Cast to float16 and float16 graph input and output
    "float16-graph": model(graph([node("Constant", [], ["C"], [s(1, "value") + vint(20, 4) + ld(5, tensor([2], FLOAT16, raw=f16(0.5, 2)))]),
                                  node("Add", ["X", "W"], ["A"]), node("Mul", ["A", "C"], ["M"]),
                                  node("Relu", ["M"], ["R"]), node("Cast", ["R"], ["Y"], [s(1, "to") + vint(20, 2) + vint(3, FLOAT16)])],
                                 [value_info("X", FLOAT16, [2])], [value_info("Y", FLOAT16, [2])],
                                 [tensor([2], FLOAT16, "W", f16(1, -3))])),
    "repro-reshape-overflow": model(graph([node("Reshape", ["X", "S"], ["Y"])], [X2], [value_info("Y", FLOAT, [])],
                                          [tensor([3], INT64, "S", i64(1 << 40, 1 << 40, 1 << 40))])),
}

# GPUXfiles: the examples' own and hostile ones
root = os.path.dirname(os.path.dirname(here))
gpuxfiles = {}
for ex in sorted(os.listdir(os.path.join(root, "examples"))):
    path = os.path.join(root, "examples", ex, "GPUXfile")
    if os.path.isfile(path):
        gpuxfiles["example-" + ex] = open(path, "rb").read()
gpuxfiles.update({
    "minimal": b"model: ./model.onnx\n",
    "repro-deep-flow": b"[" * 20000,
    "repro-deep-dashes": b"- " * 20000,
    "repro-apostrophe-then-deep": b"description: don't\nx: " + b"{" * 5000,
    "repro-second-document": b"model: ./a.onnx\n---\nmodel: ./b.onnx\n",
    "repro-many-keys-duplicate": b"".join(b"k%d: 1\n" % i for i in range(3000)) + b"k0: 2\n",
    "repro-alias-bomb": b"a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
                        b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c]\n",
    "detect-two-outputs": b"model: ./model.onnx\npreprocessing: {image: {resize: {letterbox: [64, 48], fill: [1, 2, 3]}}}\n"
                          b"postprocessing:\n  output: boxes\n  detect: {format: boxes, scores: scores, normalized: true}\n",
    "answer-fields": b"model: ./model.onnx\npostprocessing: {softmax: true, answer: {label: mood, score: p, scores: all}}\n",
    "whisper-features": b"model: ./model.onnx\npreprocessing:\n  audio:\n    features: whisper\n    mel_bins: 128\n"
                        b"    length: 160000\n    batch_dim: false\n",
})

# image configs as a registry could serve them
def config(spec): return json.dumps({"spec": spec, "build": {}}).encode()
base = {"model": {"source": "model.onnx"}, "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", 2]}],
        "postprocessing": [{"output": "y", "top_k": 1, "labels": "labels.txt"}]}
def with_(**kw):
    d = json.loads(json.dumps(base)); d.update(kw); return d
image_configs = {
    "valid": config(base),
    "repro-absolute-labels": config(with_(postprocessing=[{"output": "y", "labels": "/etc/passwd"}])),
    "repro-dotdot-model": config(with_(model={"source": "../../index.json"})),
    "repro-url-model": config(with_(model={"source": "https://127.0.0.1:1/m.onnx"})),
    "repro-not-a-layer": config(with_(postprocessing=[{"output": "y", "labels": "secret.txt"}])),
    "repro-no-postprocessing-output": config(with_(postprocessing=[{"top_k": 1}])),
    "repro-no-outputs": config({"model": {"source": "model.onnx"}, "postprocessing": [{"top_k": 1}]}),
    "repro-example-path": config(with_(inputs=[{"name": "x", "type": "tensor", "example": "/etc/passwd"}])),
}

# WAV files: valid mono 16-bit at 16 kHz and 44.1 kHz, and declared rates out of range
def wav(rate, frames, bits=16, ch=1, fmt=1):
    bps = bits // 8
    data = bytes((i * 37) & 0xFF for i in range(frames * ch * bps))
    body = struct.pack("<HHIIHH", fmt, ch, rate, (rate * ch * bps) & 0xFFFFFFFF, ch * bps, bits)
    return b"RIFF" + struct.pack("<I", 4 + 8 + len(body) + 8 + len(data)) + b"WAVE" + b"fmt " + \
        struct.pack("<I", len(body)) + body + b"data" + struct.pack("<I", len(data)) + data
wavs = {
    "mono-16k": wav(16000, 800),
    "stereo-44k": wav(44100, 441, ch=2),
    "float-22k": wav(22050, 220, bits=32, fmt=3),
    "repro-rate-1hz": wav(1, 5000),
    "repro-rate-1001hz": wav(1001, 5000),
    "repro-rate-huge": wav(4000000000, 100),
    "repro-data-size-lies": wav(16000, 10)[:-10] + b"\xff" * 4,
}
# float samples that are not numbers, loud or tiny, for the log-mel features
floats = struct.pack("<8f", 0.5, float("nan"), 1e30, -1e-30, float("inf"), 0.0, -3.0e38, 1e-45)
wavs["float-nonfinite-8k"] = wav(8000, 8, bits=32, fmt=3)[:-32] + floats
wavs["float-loud-16k"] = wav(16000, 4, bits=32, fmt=3)[:-16] + struct.pack("<4f", 3.0e38, -3.0e38, 1e-45, 0.25)

# PNG/JPEG: made by ImageMagick's convert when it is there (make test does not need them)
images = {}
try:
    import subprocess, tempfile
    with tempfile.TemporaryDirectory() as t:
        for name, args in (("gradient.png", ["-size", "24x16", "gradient:red-blue"]),
                           ("gray.png", ["-size", "9x7", "gradient:", "-colorspace", "Gray", "-depth", "1"]),
                           ("photo.jpg", ["-size", "24x16", "plasma:fractal", "-quality", "80"]),
                           ("progressive.jpg", ["-size", "32x24", "gradient:", "-interlace", "JPEG"])):
            out = os.path.join(t, name)
            subprocess.run(["convert"] + args + [out], check=True, capture_output=True)
            images[name.replace(".", "-")] = open(out, "rb").read()
except (OSError, subprocess.CalledProcessError):
    pass
if "photo-jpg" in images:
    jpg = bytearray(images["photo-jpg"])
    sof = jpg.find(b"\xff\xc0")
    if sof > 0:
        jpg[sof + 5:sof + 9] = struct.pack(">HH", 16384, 16384)
        images["repro-jpeg-bomb"] = bytes(jpg)
    sos = images["photo-jpg"].find(b"\xff\xda")
    if sos > 0:
        images["repro-jpeg-cut-scan"] = images["photo-jpg"][:sos + 30] + b"\xff\xd9"

# The apps the OIP and /predict harnesses serve (tests/fuzz/apps/<app>/: GPUXfile + model.onnx)
def value_info_sym(name, dtype, dims):   # a str dim is symbolic (dim_param)
    shape = b"".join(ld(1, s(2, d) if isinstance(d, str) else vint(1, d)) for d in dims)
    return s(1, name) + ld(2, ld(1, vint(1, dtype) + ld(2, shape)))
apps = {
    "tensors": {
        "model.onnx": model(graph([node("Relu", ["x"], ["y"]), node("Identity", ["k"], ["k_out"]), node("Identity", ["s"], ["s_out"])],
                                  [value_info_sym("x", FLOAT, ["N", 3]), value_info_sym("k", INT64, ["N"]), value_info_sym("s", STRING, ["N"])],
                                  [value_info_sym("y", FLOAT, ["N", 3]), value_info_sym("k_out", INT64, ["N"]), value_info_sym("s_out", STRING, ["N"])])),
        "GPUXfile": b"name: tensors\nversion: \"1\"\nmodel: model.onnx\nruntime:\n  backend: cpu\noutputs:\n  - name: y\n    labels: [cat, dog, bird]\n",
    },
    "media": {
        "model.onnx": model(graph([node("Identity", ["img"], ["img_out"]), node("Identity", ["wav"], ["wav_out"]), node("Identity", ["t"], ["t_out"])],
                                  [value_info("img", FLOAT, [1, 3, 8, 8]), value_info("wav", FLOAT, [1, 1600]), value_info("t", STRING, [1])],
                                  [value_info("img_out", FLOAT, [1, 3, 8, 8]), value_info("wav_out", FLOAT, [1, 1600]), value_info("t_out", STRING, [1])])),
        "GPUXfile": b"name: media\nversion: \"1\"\nmodel: model.onnx\nruntime:\n  backend: cpu\ninputs:\n  - name: img\n    type: image\n"
                    b"  - name: wav\n    type: audio\n  - name: t\n    type: string\npreprocessing:\n  audio:\n    sample_rate: 16000\n    length: 1600\n",
    },
}
for app, files in apps.items():
    d = os.path.join(here, "apps", app)
    os.makedirs(d, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)

# OIP infer requests: JSON alone, or 2 bytes of JSON length + JSON + binary tensor data
def oip(obj): return json.dumps(obj).encode()
def oip_bin(obj, blob):
    j = json.dumps(obj).encode()
    return struct.pack("<H", len(j)) + j + blob
x_in = {"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [[1, -2, 3], [4, 5, -6]]}
k_in = {"name": "k", "shape": [2], "datatype": "INT64", "data": [7, 8]}
s_in = {"name": "s", "shape": [2], "datatype": "BYTES", "data": ["a", "bc"]}
oips = {
    "data": oip({"id": "r1", "inputs": [x_in, k_in, s_in]}),
    "outputs-classification": oip({"inputs": [x_in, k_in, s_in], "outputs": [{"name": "y", "parameters": {"classification": 2}}, {"name": "s_out"}]}),
    "all-classification-binary-out": oip({"inputs": [x_in, k_in, s_in], "parameters": {"classification": 1, "binary_data_output": True}}),
    "binary-in": oip_bin({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 12}},
                                     {"name": "k", "shape": [1], "datatype": "INT64", "parameters": {"binary_data_size": 8}},
                                     {"name": "s", "shape": [1], "datatype": "BYTES", "data": ["z"]}]},
                         f32(1, 2, 3) + i64(9)),
    "flat-data": oip({"inputs": [dict(x_in, data=[1, 2, 3, 4, 5, 6]), k_in, s_in]}),
    "empty-rows": oip({"inputs": [dict(x_in, shape=[0, 3], data=[]), dict(k_in, shape=[0], data=[]), dict(s_in, shape=[0], data=[])]}),
    # hostile: sizes and numbers out of range, data that does not match, shapes of 2^31 elements
    "repro-binary-size-negative": oip_bin({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": -1}}]}, b""),
    "repro-binary-size-huge": oip_bin({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 1e30}}]}, b""),
    "repro-binary-short": oip_bin({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 12}}]}, b"\0" * 5),
    "repro-classification-huge": oip({"inputs": [x_in, k_in, s_in], "parameters": {"classification": 1e300}}),
    "repro-huge-shape": oip({"inputs": [{"name": "x", "shape": [1 << 30, 3], "datatype": "FP32", "data": [1]}]}),
    "repro-shape-float": oip({"inputs": [{"name": "x", "shape": [1.5, 3], "datatype": "FP32", "data": [1]}]}),
    "repro-json-length-beyond": struct.pack("<H", 60000) + b"{}",
    "repro-nested-data": oip({"inputs": [dict(x_in, data=[[[[1, 2, 3]]], [[[4, 5, 6]]]])]}),
    "repro-string-in-numbers": oip({"inputs": [dict(x_in, data=["1", 2, 3, 4, 5, 6]), k_in, s_in]}),
    "repro-fraction-int64": oip({"inputs": [x_in, dict(k_in, data=[1.5, 2]), s_in]}),
    "repro-twice": oip({"inputs": [x_in, x_in]}),
    "repro-not-json": b"{\"inputs\": [",
}

# /predict bodies: a first byte picks the Content-Type (0 JSON, 1 PNG, 2 WAV, 3 octet-stream, 4 none, 5 multipart)
import base64
wav16 = wav(16000, 1600)
b64 = lambda b: base64.b64encode(b).decode()
predicts = {
    "json-inputs": b"\0" + json.dumps({"inputs": {"t": "hello", "wav": b64(wav16)}}).encode(),
    "json-text-audio": b"\0" + json.dumps({"text": "hi", "audio": b64(wav16)}).encode(),
    "json-data-url": b"\0" + json.dumps({"audio": "data:audio/wav;base64," + b64(wav(8000, 400))}).encode(),
    "raw-wav": b"\2" + wav16,
    "no-content-type": b"\4" + json.dumps({"text": "x"}).encode(),
    "multipart": b"\5--x\r\n\r\n",
    "repro-bad-base64": b"\0" + json.dumps({"audio": "!!!"}).encode(),
    "repro-number-for-string": b"\0" + json.dumps({"inputs": {"t": [1, 2, 3]}}).encode(),
    "repro-unknown-key": b"\0" + json.dumps({"file": "/etc/passwd"}).encode(),
    "repro-empty": b"\3",
}
for name in ("gradient-png", "photo-jpg"):
    if name in images:
        predicts["raw-" + name] = b"\1" + images[name]
        predicts["json-image-" + name] = b"\0" + json.dumps({"image": b64(images[name])}).encode()

# registry answers: a first byte picks the parser (0 manifest, 1 WWW-Authenticate, 2 token JSON,
# 3 error body, 4 header line, 5 reference)
dg = "sha256:" + "ab" * 32
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.gpux.image.v1+json",
            "config": {"mediaType": "application/vnd.gpux.config.v1+json", "digest": dg, "size": 10},
            "layers": [{"mediaType": "application/vnd.onnx.model", "digest": dg, "size": 5,
                        "annotations": {"org.opencontainers.image.title": "model.onnx"}}]}
def with_layer(**kw):
    m = json.loads(json.dumps(manifest)); m["layers"][0].update(kw); return m
registry = {
    "manifest": b"\0" + json.dumps(manifest).encode(),
    "index": b"\0" + json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}).encode(),
    "challenge-bearer": b'\1Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"',
    "challenge-basic": b'\1Basic realm="registry"',
    "token": b"\2" + json.dumps({"token": "abc", "expires_in": 300}).encode(),
    "access-token": b"\2" + json.dumps({"access_token": "xyz"}).encode(),
    "error": b"\3" + json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}).encode(),
    "header-digest": b"\4Docker-Content-Digest: " + dg.encode() + b"\r\n",
    "reference": b"\5127.0.0.1:5000/team/app:1.0",
    "reference-digest": b"\5registry.example/a/b@" + dg.encode(),
    "all-parsers": b"\x07" + json.dumps(manifest).encode(),
    "repro-layer-title-dotdot": b"\0" + json.dumps(with_layer(annotations={"org.opencontainers.image.title": "../index.json"})).encode(),
    "repro-layer-title-slash": b"\0" + json.dumps(with_layer(annotations={"org.opencontainers.image.title": "a/b"})).encode(),
    "repro-bad-digest": b"\0" + json.dumps(with_layer(digest="sha256:../../x")).encode(),
    "repro-negative-size": b"\0" + json.dumps(with_layer(size=-5)).encode(),
    "repro-too-many-layers": b"\0" + json.dumps(dict(manifest, layers=manifest["layers"] * 300)).encode(),
    "repro-challenge-no-realm": b'\1Bearer service="x"',
    "repro-challenge-unterminated": b'\1Bearer realm="https://a' + b"x" * 3000,
    "repro-challenge-file-realm": b'\1Bearer realm="file:///etc/passwd"',
    "repro-token-not-string": b"\2" + json.dumps({"token": 5}).encode(),
    "repro-header-no-colon": b"\4Location" + b"x" * 3000,
    "repro-header-long": b"\4Docker-Content-Digest: " + b"a" * 5000,
}

# a detector's answer, NUL, the image it is drawn on (gpux_image_annotate)
def answer(dets, space="image", size=(24, 16)):
    return json.dumps({"outputs": [{"name": "o", "box_space": space, "image_size": list(size), "detections": dets}]}).encode() + b"\0"
annotates = {}
if "gradient-png" in images:
    png = images["gradient-png"]
    annotates = {
        "two-boxes": answer([{"class": 0, "label": "cat", "score": 0.9, "box": [2, 3, 12, 10]},
                             {"class": 7, "score": 0.5, "box": [10, 1, 23, 15]}]) + png,
        "repro-boxes-outside": answer([{"class": -3, "score": 2, "box": [-1e30, -5, 1e30, 1e9]},
                                       {"class": 1e30, "label": "x" * 500, "score": None, "box": [None, 1, 2, 3]}], "input") + png,
        "normalized-jpeg": answer([{"class": 2, "score": 0.1, "box": [0.1, 0.1, 0.9, 0.9]}], "normalized") + images.get("photo-jpg", png),
        "repro-size-mismatch": answer([{"class": 0, "score": 1, "box": [0, 0, 1, 1]}], "image", (640, 480)) + png,
    }

# an image's GEMM tuning data (gpux-tuning.json, app/tuning.c)
def tuning_doc(gemms, adapter=None, version=1):
    rec = {"adapter": adapter if adapter is not None else {"vendor_id": 4318, "device_id": 8996, "name": "NVIDIA H100 80GB HBM3",
                                                          "driver": "580.159.04", "library": "libwebgpu_dawn.so", "library_bytes": 19695792},
           "gpux_version": "0.1.0", "shapes": len(gemms), "gemms": gemms}
    return json.dumps({"gpux_tuning": version, "records": [rec]}).encode()
def gemm(**kw):
    g = dict(M=512, N=49, K=4608, batch=1, a_k_contig=True, b_n_contig=True, form="tiled", wx=16, wy=16, rm=2, rn=2, split=8,
             default_ms=0.1, tuned_ms=0.05)
    g.update(kw)
    return g
tunings = {
    "valid": tuning_doc([gemm(), gemm(M=64, N=3136, K=576, form="simple", wx=0, wy=0, rm=4, rn=8, split=1)]),
    "empty-records": b'{"gpux_tuning": 1, "records": []}',
    "repro-not-json": b'{"gpux_tuning": 1, "records": [',
    "repro-version-2": tuning_doc([gemm()], version=2),
    "repro-no-adapter-name": tuning_doc([gemm()], adapter={"vendor_id": 1}),
    "repro-negative-m": tuning_doc([gemm(M=-1)]),
    "repro-huge-k": tuning_doc([gemm(K=1e300)]),
    "repro-fraction": tuning_doc([gemm(rm=2.5)]),
    "repro-unknown-form": tuning_doc([gemm(form="cooperative")]),
    "repro-split-above-16": tuning_doc([gemm(split=64)]),
    "repro-gemms-object": b'{"gpux_tuning": 1, "records": [{"adapter": {"name": "x"}, "gemms": {}}]}',
    "repro-contig-number": tuning_doc([gemm(a_k_contig=1)]),
}

for harness, files in (("tuning", tunings), ("annotate", annotates), ("tensorproto", tensorproto), ("model", models), ("gpuxfile", gpuxfiles),
                       ("image-config", image_configs), ("wav", wavs), ("image", images), ("oip", oips),
                       ("predict", predicts), ("registry", registry)):
    d = os.path.join(here, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    print("%s: %d seeds" % (harness, len(files)))
