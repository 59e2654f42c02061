#!/usr/bin/env python3
"""wild-corpus.py — regenerates the "wild" model corpus: small real architectures exported the ways
users export them today, as ONNX test-case folders with ONNX Runtime CPU reference outputs.

Needs torch, transformers, onnx and onnxruntime (the GPU machine has them; see docs/DEVICE.md):
    python3 bench/wild-corpus.py OUTDIR            # all cases
    python3 bench/wild-corpus.py OUTDIR cnn bert    # only these architectures

Every architecture is exported with the TorchScript exporter at opsets 13 and 17 and with the
dynamo exporter (opset 18); the opset-17 export is then converted to float16 (with float32 and with
float16 inputs/outputs), quantized dynamically, and quantized statically in both of ONNX Runtime's
formats (QDQ and QOperator). Weights are random and seeded; sizes are kept tiny so the corpus fits
in the repository. OUTDIR/cases.tsv lists each case with its exporter, dtype class and ops.
"""
import json, os, sys, traceback
import numpy as np
import torch, onnx, onnxruntime as ort
from onnx import numpy_helper

SEED = 1234


def ids(n, vocab):
    return torch.randint(0, vocab, (1, n), generator=torch.Generator().manual_seed(SEED))


def img(c=3, n=32):
    return torch.rand(1, c, n, n, generator=torch.Generator().manual_seed(SEED))


class Cnn(torch.nn.Module):
    """Conv-BN-ReLU, a residual block, pooling, a classifier: the ResNet pattern in small."""
    def __init__(s):
        super().__init__()
        s.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.BatchNorm2d(16), torch.nn.ReLU())
        s.a = torch.nn.Sequential(torch.nn.Conv2d(16, 16, 3, 1, 1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
                                  torch.nn.Conv2d(16, 16, 3, 1, 1), torch.nn.BatchNorm2d(16))
        s.down = torch.nn.Sequential(torch.nn.Conv2d(16, 32, 3, 2, 1), torch.nn.ReLU(), torch.nn.MaxPool2d(2))
        s.fc = torch.nn.Linear(32, 10)

    def forward(s, x):
        x = s.stem(x)
        x = torch.relu(x + s.a(x))
        x = s.down(x)
        return s.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))


class DwNet(torch.nn.Module):
    """Depthwise-separable blocks with hardswish and squeeze-excite: the MobileNetV3 pattern."""
    def __init__(s):
        super().__init__()
        s.stem = torch.nn.Conv2d(3, 16, 3, 2, 1)
        s.dw = torch.nn.Conv2d(16, 16, 3, 1, 1, groups=16)
        s.se1, s.se2 = torch.nn.Conv2d(16, 4, 1), torch.nn.Conv2d(4, 16, 1)
        s.pw = torch.nn.Conv2d(16, 24, 1)
        s.fc = torch.nn.Linear(24, 10)

    def forward(s, x):
        x = torch.nn.functional.hardswish(s.stem(x))
        y = torch.relu(s.dw(x))
        w = torch.nn.functional.hardsigmoid(s.se2(torch.relu(s.se1(y.mean((2, 3), keepdim=True)))))
        x = s.pw(y * w)
        return s.fc(x.mean((2, 3)))


class Encoder(torch.nn.Module):
    """Token embedding and a two-layer PyTorch transformer encoder, mean-pooled to classes."""
    def __init__(s):
        super().__init__()
        s.emb = torch.nn.Embedding(200, 32)
        layer = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, activation="gelu", batch_first=True)
        s.enc = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        s.fc = torch.nn.Linear(32, 3)

    def forward(s, x):
        return s.fc(s.enc(s.emb(x)).mean(1))


class Rnn(torch.nn.Module):
    """A two-layer LSTM and a GRU over a feature sequence, as in small speech and VAD models."""
    def __init__(s):
        super().__init__()
        s.lstm = torch.nn.LSTM(16, 24, 2, batch_first=True)
        s.gru = torch.nn.GRU(24, 16, batch_first=True)
        s.fc = torch.nn.Linear(16, 2)

    def forward(s, x):
        y, _ = s.lstm(x)
        y, _ = s.gru(y)
        return torch.sigmoid(s.fc(y[:, -1]))


class Branch(torch.nn.Module):
    """A data-dependent branch: an If node in ONNX."""
    def __init__(s):
        super().__init__()
        s.a, s.b = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)

    def forward(s, x):
        if bool(x.sum() > 0):
            return torch.relu(s.a(x)) * 2.0
        return torch.tanh(s.b(x)) - 1.0


class Repeat(torch.nn.Module):
    """A loop whose trip count comes from the data: a Loop node in ONNX."""
    def __init__(s):
        super().__init__()
        s.lin = torch.nn.Linear(8, 8)

    def forward(s, x, n):
        for _ in range(int(n)):
            x = torch.tanh(s.lin(x))
        return x


class GptKv(torch.nn.Module):
    """A GPT-2-shaped decoder that takes and returns its key/value cache under the names
    transformers and optimum export: input_ids, attention_mask, position_ids and
    past_key_values.N.key/value in; logits and present.N.key/value out ([batch, heads, len, dim])."""
    def __init__(s, vocab=300, d=32, heads=2, layers=2, ctx=128):
        super().__init__()
        s.h, s.hd = heads, d // heads
        s.wte, s.wpe = torch.nn.Embedding(vocab, d), torch.nn.Embedding(ctx, d)
        s.ln1 = torch.nn.ModuleList(torch.nn.LayerNorm(d) for _ in range(layers))
        s.qkv = torch.nn.ModuleList(torch.nn.Linear(d, 3 * d) for _ in range(layers))
        s.proj = torch.nn.ModuleList(torch.nn.Linear(d, d) for _ in range(layers))
        s.ln2 = torch.nn.ModuleList(torch.nn.LayerNorm(d) for _ in range(layers))
        s.fc = torch.nn.ModuleList(torch.nn.Linear(d, 4 * d) for _ in range(layers))
        s.out = torch.nn.ModuleList(torch.nn.Linear(4 * d, d) for _ in range(layers))
        s.lnf = torch.nn.LayerNorm(d)
        with torch.no_grad():  # sharper logits than the default init, so greedy choices are clear
            s.wte.weight.mul_(4.0)

    def forward(s, input_ids, attention_mask, position_ids, *past):
        b, t = input_ids.shape
        x = s.wte(input_ids) + s.wpe(position_ids)
        presents = []
        for i in range(len(s.qkv)):
            q, k, v = s.qkv[i](s.ln1[i](x)).split(s.h * s.hd, -1)
            q, k, v = (z.reshape(b, t, s.h, s.hd).transpose(1, 2) for z in (q, k, v))
            k = torch.cat([past[2 * i], k], 2)
            v = torch.cat([past[2 * i + 1], v], 2)
            presents += [k, v]
            n = k.shape[2]
            qpos = torch.arange(t).unsqueeze(1) + (n - t)
            causal = torch.arange(n).unsqueeze(0) <= qpos
            keep = causal.unsqueeze(0).unsqueeze(0) & (attention_mask[:, None, None, :] > 0)
            att = (q @ k.transpose(-1, -2)) / (s.hd ** 0.5)
            att = torch.softmax(att.masked_fill(~keep, -1e9), -1)
            x = x + s.proj[i]((att @ v).transpose(1, 2).reshape(b, t, s.h * s.hd))
            x = x + s.out[i](torch.nn.functional.gelu(s.fc[i](s.ln2[i](x))))
        return (s.lnf(x) @ s.wte.weight.t(), *presents)


def gptkv_case(out):
    """The cached decoder as a test case (prefill of 5 tokens after a 3-token cache) and the
    greedy continuation of a prompt, by ONNX Runtime, with and without the cache."""
    torch.manual_seed(SEED)
    m = GptKv().eval()
    layers = len(m.qkv)
    past = [torch.rand(1, 2, 3, 16, generator=torch.Generator().manual_seed(SEED + j)) for j in range(2 * layers)]
    names = ["input_ids", "attention_mask", "position_ids"] + [
        f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    outs = ["logits"] + [f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "total"},
            "position_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}}
    axes.update({n: {0: "batch", 2: "past"} for n in names[3:]})
    axes.update({n: {0: "batch", 2: "total"} for n in outs[1:]})
    args = (ids(5, 300), torch.ones(1, 8, dtype=torch.long), torch.arange(3, 8).unsqueeze(0), *past)
    d = os.path.join(out, "gptkv-ts17")
    os.makedirs(d, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(m, args, d + "/model.onnx", input_names=names, output_names=outs, dynamic_axes=axes,
                          opset_version=17, dynamo=False)
    feeds = {n: a.numpy() for n, a in zip(names, args)}
    meta = write_case(d, d + "/model.onnx", feeds, {"arch": "gptkv", "exporter": "torchscript", "dtype": "float32"})
    # greedy generation through ONNX Runtime: prefill, then one token a step with the cache
    sess = ort.InferenceSession(d + "/model.onnx", providers=["CPUExecutionProvider"])
    prompt = [72, 101, 108, 108, 111]
    seq = list(prompt)
    cache = {n: np.zeros((1, 2, 0, 16), np.float32) for n in names[3:]}
    step_ids = prompt
    for _ in range(24):
        n_past = next(iter(cache.values())).shape[2]
        f = {"input_ids": np.array([step_ids], np.int64),
             "attention_mask": np.ones((1, n_past + len(step_ids)), np.int64),
             "position_ids": np.arange(n_past, n_past + len(step_ids), dtype=np.int64)[None]}
        f.update(cache)
        res = sess.run(None, f)
        nxt = int(np.argmax(res[0][0, -1]))
        seq.append(nxt)
        cache = dict(zip(names[3:], res[1:]))
        step_ids = [nxt]
    json.dump({"prompt_ids": prompt, "greedy_ids": seq[len(prompt):]}, open(d + "/generate.json", "w"))
    return meta


class Logits(torch.nn.Module):
    def __init__(s, m, keys):
        super().__init__()
        s.m, s.keys = m, keys

    def forward(s, *a):
        return s.m(**dict(zip(s.keys, a))).logits


def hf(name):
    from transformers import (BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel,
                              ViTConfig, ViTForImageClassification)
    if name == "bert":
        c = BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, max_position_embeddings=64, num_labels=2)
        return Logits(BertForSequenceClassification(c), ["input_ids", "attention_mask"])
    if name == "gpt2":
        c = GPT2Config(vocab_size=300, n_embd=32, n_layer=2, n_head=2, n_positions=64, use_cache=False)
        return Logits(GPT2LMHeadModel(c), ["input_ids", "attention_mask"])
    c = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, num_labels=5)
    return Logits(ViTForImageClassification(c), ["pixel_values"])


# name: (make module, inputs, input names, dynamic axes, scripted for control flow)
ARCHS = {
    "cnn": (Cnn, lambda: [img()], ["input"], {"input": {0: "batch"}}, False),
    "dwnet": (DwNet, lambda: [img()], ["input"], {"input": {0: "batch"}}, False),
    "encoder": (Encoder, lambda: [ids(12, 200)], ["ids"], {"ids": {0: "batch", 1: "seq"}}, False),
    "rnn": (Rnn, lambda: [torch.rand(1, 10, 16, generator=torch.Generator().manual_seed(SEED))], ["features"],
            {"features": {0: "batch", 1: "frames"}}, False),
    "bert": (lambda: hf("bert"), lambda: [ids(16, 300), torch.ones(1, 16, dtype=torch.long)],
             ["input_ids", "attention_mask"], {"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}}, False),
    "gpt2": (lambda: hf("gpt2"), lambda: [ids(16, 300), torch.ones(1, 16, dtype=torch.long)],
             ["input_ids", "attention_mask"], {"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}}, False),
    "vit": (lambda: hf("vit"), lambda: [img()], ["pixel_values"], {"pixel_values": {0: "batch"}}, False),
    "branch": (Branch, lambda: [torch.rand(2, 8, generator=torch.Generator().manual_seed(SEED)) - 0.3], ["x"], {}, True),
    "repeat": (Repeat, lambda: [torch.rand(2, 8, generator=torch.Generator().manual_seed(SEED)), torch.tensor(3)],
               ["x", "n"], {}, True),
}


def ort_run(path, feeds):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return sess, sess.run(None, {n: feeds[n] for n in names})


def write_case(d, model_path, feeds, meta):
    os.makedirs(d + "/test_data_set_0", exist_ok=True)
    if os.path.abspath(model_path) != os.path.abspath(d + "/model.onnx"):
        os.replace(model_path, d + "/model.onnx")
    sess, res = ort_run(d + "/model.onnx", feeds)
    for i, inp in enumerate(sess.get_inputs()):
        open(f"{d}/test_data_set_0/input_{i}.pb", "wb").write(
            numpy_helper.from_array(feeds[inp.name], inp.name).SerializeToString())
    for i, (o, r) in enumerate(zip(sess.get_outputs(), res)):
        open(f"{d}/test_data_set_0/output_{i}.pb", "wb").write(numpy_helper.from_array(r, o.name).SerializeToString())
    m = onnx.load(d + "/model.onnx")
    ops = set()

    def walk(g):
        for n in g.node:
            ops.add(n.op_type)
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
    walk(m.graph)
    meta = dict(meta, opset=max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), default=0),
                value_info=len(m.graph.value_info), ops=sorted(ops), bytes=os.path.getsize(d + "/model.onnx"))
    json.dump(meta, open(d + "/case.json", "w"), indent=1)
    return meta


def export(arch, exporter, opset, path):
    make, inputs, names, axes, scripted = ARCHS[arch]
    torch.manual_seed(SEED)
    model = make().eval()
    args = tuple(inputs())
    with torch.no_grad():
        if exporter == "dynamo":
            if scripted:
                raise RuntimeError("data-dependent Python control flow needs torch.cond for dynamo; skipped")
            torch.onnx.export(model, args, path, input_names=names, dynamo=True, opset_version=opset,
                              dynamic_shapes=None, external_data=False)
        else:
            if scripted:
                model = torch.jit.script(model)
            torch.onnx.export(model, args, path, input_names=names, dynamic_axes=axes or None,
                              opset_version=opset, dynamo=False)
    feeds = {}
    for n, t in zip(names, args):
        feeds[n] = t.numpy() if t.dim() > 0 else t.reshape(()).numpy()
    return feeds


class Calib:
    """Calibration data for static quantization: the case's inputs with small seeded perturbations."""
    def __init__(s, feeds):
        rng = np.random.default_rng(SEED)
        s.items = []
        for _ in range(8):
            s.items.append({k: (v + rng.normal(0, 0.05, v.shape).astype(v.dtype)) if v.dtype.kind == "f" else v
                            for k, v in feeds.items()})
        s.it = iter(s.items)

    def get_next(s):
        return next(s.it, None)


def variants(base_dir, arch, feeds, out):
    """float16 and quantized versions of the opset-17 TorchScript export."""
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.quantization import quantize_dynamic, quantize_static, QuantFormat, QuantType
    src = base_dir + "/model.onnx"
    done = []
    for keep_io in (True, False):
        name = f"{arch}-fp16" + ("" if keep_io else "-io")
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        m = convert_float_to_float16(onnx.load(src), keep_io_types=keep_io)
        onnx.save(m, d + "/model.onnx")
        f = feeds if keep_io else {k: (v.astype(np.float16) if v.dtype == np.float32 else v) for k, v in feeds.items()}
        done.append((name, d + "/model.onnx", f, {"dtype": "float16"}))
    d = os.path.join(out, f"{arch}-qdyn")
    os.makedirs(d, exist_ok=True)
    quantize_dynamic(src, d + "/model.onnx", weight_type=QuantType.QUInt8)
    done.append((f"{arch}-qdyn", d + "/model.onnx", feeds, {"dtype": "int8-dynamic"}))
    for fmt, tag in ((QuantFormat.QDQ, "qdq"), (QuantFormat.QOperator, "qop")):
        d = os.path.join(out, f"{arch}-{tag}")
        os.makedirs(d, exist_ok=True)
        quantize_static(src, d + "/model.onnx", Calib(feeds), quant_format=fmt,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        done.append((f"{arch}-{tag}", d + "/model.onnx", feeds, {"dtype": f"int8-static-{tag}"}))
    return done


def main():
    out = sys.argv[1]
    want = set(sys.argv[2:])
    os.makedirs(out, exist_ok=True)
    rows = []
    for arch in ARCHS:
        if want and arch not in want:
            continue
        feeds17 = None
        for exporter, opset in (("torchscript", 13), ("torchscript", 17), ("dynamo", 18)):
            name = f"{arch}-{'ts' if exporter == 'torchscript' else 'dynamo'}{opset}"
            d = os.path.join(out, name)
            try:
                os.makedirs(d, exist_ok=True)
                feeds = export(arch, exporter, opset, d + "/model.onnx")
                meta = write_case(d, d + "/model.onnx", feeds, {"arch": arch, "exporter": exporter, "dtype": "float32"})
                rows.append((name, meta))
                if exporter == "torchscript" and opset == 17:
                    feeds17, base17 = feeds, d
            except Exception as e:
                print(f"{name}: not made: {type(e).__name__}: {str(e).strip().splitlines()[-1][:300] if str(e).strip() else ''}",
                      flush=True)
                os.system(f"rm -rf '{d}'")
        if feeds17 is None:
            continue
        try:
            for name, path, feeds, meta in variants(base17, arch, feeds17, out):
                try:
                    rows.append((name, write_case(os.path.dirname(path), path, feeds,
                                                  dict(meta, arch=arch, exporter="torchscript"))))
                except Exception as e:
                    print(f"{name}: ONNX Runtime cannot run it: {type(e).__name__}: {str(e)[:300]}", flush=True)
                    os.system(f"rm -rf '{os.path.dirname(path)}'")
        except Exception:
            print(f"{arch}: variants failed:\n{traceback.format_exc()[-600:]}", flush=True)
    if not want or "gptkv" in want:
        try:
            rows.append(("gptkv-ts17", gptkv_case(out)))
        except Exception:
            print(f"gptkv: not made:\n{traceback.format_exc()[-600:]}", flush=True)
    with open(os.path.join(out, "cases.tsv"), "w") as f:
        for name, m in rows:
            f.write(f"{name}\t{m['exporter']}\t{m['opset']}\t{m['dtype']}\t{m['bytes']}\t{','.join(m['ops'])}\n")
    for name, m in rows:
        print(f"{name}: opset {m['opset']}, {m['dtype']}, {m['bytes'] >> 10} KiB, value_info {m['value_info']}, "
              f"ops {' '.join(m['ops'])}", flush=True)


if __name__ == "__main__":
    main()
