#!/usr/bin/env python3
"""generate-export.py — the model of the generation benchmark (bench/generate-bench.sh): a GPT-2-shaped
decoder with random weights, exported to ONNX with its key/value cache under the names transformers
and optimum use, so that `gpux run OUT --input @OUT/prompt.txt --max-new-tokens 128 --json` generates
with it and ONNX Runtime (bench/generate-peer.mjs) and PyTorch (bench/generate-torch.py) drive the
same loop on the same weights.

    python3 generate-export.py OUT [--size small|tiny] [--source auto|transformers|module]
                               [--prompt-tokens 128] [--seed 0]

  in:  input_ids [batch, seq] int64, attention_mask [batch, past + seq] int64,
       position_ids [batch, seq] int64, past_key_values.N.key / .value [batch, heads, past, head_dim]
  out: logits [batch, seq, vocab], present.N.key / .value [batch, heads, past + seq, head_dim]

--size small is GPT-2 small (12 layers, 12 heads, 768 wide, 50,257 tokens, 1,024 positions); tiny
is 2 layers, 2 heads, 64 wide, 512 tokens, for trying the scripts on a machine without a GPU.

--source transformers exports transformers' GPT2LMHeadModel (its cache handed in and out through a
small wrapper); --source module exports the hand-written GPT-2 below (the same computation, the same
parameter names). auto (the default) tries transformers and falls back to the module when
transformers is missing, its export fails, or the exported graph does not reproduce the PyTorch
model's logits in ONNX Runtime for a prefill and two cached steps at lengths other than those traced.

Written into OUT:
  model.onnx       the decoder (fp32, opset 17)
  weights.pt       its parameters (state dict, transformers' GPT2LMHeadModel names) for generate-torch.py
  config.json      sizes, seed, which source was exported and how it was checked
  tokenizer.json   byte level without merges: ids 0-255 are the bytes (a text is one token per byte),
                   the other ids decode to made-up three-letter pieces; no end-of-text token, so every
                   runtime generates exactly the tokens asked for
  prompt.txt       the prompt: --prompt-tokens ASCII characters, so exactly that many tokens
  prompt.json      {"prompt": ..., "prompt_ids": [...]}
  GPUXfile         model, tokenizer and a generate: section (greedy)

The weights are GPT-2's initialisation (as transformers makes it), untrained: greedy generation soon
repeats a few tokens, and the logits of the best two tokens can be close, so runtimes whose sums
round differently may part ways after some steps (the benchmark reports how many tokens agree).
"""
import argparse
import json
import math
import os
import string
import sys
import time

import torch

SIZES = {
    "small": dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, n_positions=1024),
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, vocab_size=512, n_positions=512),
}


def log(*a):
    print("generate-export:", *a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the hand-written GPT-2

class Conv1D(torch.nn.Module):
    """GPT-2's projection: weight [in, out] (transposed from torch.nn.Linear)."""
    def __init__(s, n_in, n_out):
        super().__init__()
        s.weight = torch.nn.Parameter(torch.empty(n_in, n_out))
        s.bias = torch.nn.Parameter(torch.zeros(n_out))

    def forward(s, x):
        return x @ s.weight + s.bias


class Attention(torch.nn.Module):
    def __init__(s, d):
        super().__init__()
        s.c_attn, s.c_proj = Conv1D(d, 3 * d), Conv1D(d, d)


class Mlp(torch.nn.Module):
    def __init__(s, d):
        super().__init__()
        s.c_fc, s.c_proj = Conv1D(d, 4 * d), Conv1D(4 * d, d)


class Block(torch.nn.Module):
    def __init__(s, d):
        super().__init__()
        s.ln_1, s.attn = torch.nn.LayerNorm(d, eps=1e-5), Attention(d)
        s.ln_2, s.mlp = torch.nn.LayerNorm(d, eps=1e-5), Mlp(d)


class Body(torch.nn.Module):
    def __init__(s, c):
        super().__init__()
        s.wte = torch.nn.Embedding(c["vocab_size"], c["n_embd"])
        s.wpe = torch.nn.Embedding(c["n_positions"], c["n_embd"])
        s.h = torch.nn.ModuleList(Block(c["n_embd"]) for _ in range(c["n_layer"]))
        s.ln_f = torch.nn.LayerNorm(c["n_embd"], eps=1e-5)


def gelu_tanh(x):
    # GPT-2's activation (transformers' "gelu_new")
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Gpt2Kv(torch.nn.Module):
    """GPT-2 (pre-norm blocks, tanh GELU, output tied to the word embedding) taking and returning its
    cache as flat tensors: forward(input_ids, attention_mask, position_ids, *past) -> (logits,
    *presents), past and presents [batch, heads, length, head_dim], key then value, layer by layer.
    Parameter names are transformers' GPT2LMHeadModel's, so either loads the other's state dict."""
    def __init__(s, c):
        super().__init__()
        s.c = c
        s.transformer = Body(c)

    def forward(s, input_ids, attention_mask, position_ids, *past):
        c, tr = s.c, s.transformer
        b, t = input_ids.shape
        heads, hd = c["n_head"], c["n_embd"] // c["n_head"]
        x = tr.wte(input_ids) + tr.wpe(position_ids)
        presents = []
        for i, blk in enumerate(tr.h):
            q, k, v = blk.attn.c_attn(blk.ln_1(x)).split(c["n_embd"], -1)
            q, k, v = (z.reshape(b, t, heads, hd).transpose(1, 2) for z in (q, k, v))
            k = torch.cat([past[2 * i].to(k.dtype), k], 2)
            v = torch.cat([past[2 * i + 1].to(v.dtype), v], 2)
            presents += [k, v]
            n = k.shape[2]
            # query j (at absolute n - t + j) sees keys 0 .. n - t + j that the mask keeps
            qpos = torch.arange(t, device=x.device).unsqueeze(1) + (n - t)
            causal = torch.arange(n, device=x.device).unsqueeze(0) <= qpos
            keep = causal.unsqueeze(0).unsqueeze(0) & (attention_mask[:, None, None, :] > 0)
            att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
            att = torch.softmax(att.masked_fill(~keep, torch.finfo(att.dtype).min), -1)
            x = x + blk.attn.c_proj((att @ v).transpose(1, 2).reshape(b, t, c["n_embd"]))
            x = x + blk.mlp.c_proj(gelu_tanh(blk.mlp.c_fc(blk.ln_2(x))))
        return (tr.ln_f(x) @ tr.wte.weight.t(), *presents)


def init_gpt2(m, c):
    """GPT-2's initialisation (as transformers does it): N(0, 0.02) weights, zero biases, unit layer
    norms, the residual projections scaled by 1/sqrt(2 * layers)."""
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif ".ln_" in name or name.startswith("transformer.ln_f"):
                p.fill_(1.0)
            elif name.endswith("c_proj.weight"):
                p.normal_(0.0, 0.02 / math.sqrt(2 * c["n_layer"]))
            else:
                p.normal_(0.0, 0.02)


# ----------------------------------------------------------------------------- transformers' GPT-2

def hf_model(c, seed):
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(seed)
    # the eager attention traces to plain ONNX ops in every version (older ones ignore the key)
    cfg = GPT2Config(**c, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, use_cache=True,
                     attn_implementation="eager")
    return GPT2LMHeadModel(cfg).eval()


def legacy_pairs(cache):
    """[(key, value)] per layer from whatever transformers returns as the cache."""
    if hasattr(cache, "layers"):  # transformers >= 4.54: Cache.layers[i].keys / .values
        return [(layer.keys, layer.values) for layer in cache.layers]
    if hasattr(cache, "key_cache"):
        return list(zip(cache.key_cache, cache.value_cache))
    if hasattr(cache, "to_legacy_cache"):
        return list(cache.to_legacy_cache())
    return [tuple(p[:2]) for p in cache]


class HfKv(torch.nn.Module):
    """transformers' GPT2LMHeadModel behind the flat interface of Gpt2Kv."""
    def __init__(s, m, n_layer):
        super().__init__()
        s.m, s.n_layer = m, n_layer

    def forward(s, input_ids, attention_mask, position_ids, *past):
        pairs = [(past[2 * i], past[2 * i + 1]) for i in range(s.n_layer)]
        try:
            from transformers import DynamicCache
            cache = DynamicCache()
            for i, (k, v) in enumerate(pairs):
                cache.update(k, v, i)
        except ImportError:  # before caches were objects: a tuple of pairs
            cache = tuple(pairs)
        out = s.m(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                  past_key_values=cache, use_cache=True, return_dict=True)
        flat = [z for kv in legacy_pairs(out.past_key_values) for z in kv]
        return (out.logits, *flat)


# ----------------------------------------------------------------------------- export and checks

def io_names(n_layer):
    past = [f"past_key_values.{i}.{kv}" for i in range(n_layer) for kv in ("key", "value")]
    present = [f"present.{i}.{kv}" for i in range(n_layer) for kv in ("key", "value")]
    return ["input_ids", "attention_mask", "position_ids"] + past, ["logits"] + present


def feeds(c, ids, past_len, past=None, seed=0):
    """Inputs for `ids` (a list) after past_len cached positions (random past values when none given)."""
    heads, hd = c["n_head"], c["n_embd"] // c["n_head"]
    t = len(ids)
    if past is None:
        g = torch.Generator().manual_seed(seed)
        past = [torch.randn(1, heads, past_len, hd, generator=g) for _ in range(2 * c["n_layer"])]
    return [torch.tensor([ids], dtype=torch.long), torch.ones(1, past_len + t, dtype=torch.long),
            torch.arange(past_len, past_len + t).unsqueeze(0), *past]


def export(module, c, path):
    ins, outs = io_names(c["n_layer"])
    axes = {"input_ids": {0: "batch_size", 1: "sequence_length"},
            "attention_mask": {0: "batch_size", 1: "past_sequence_length + sequence_length"},
            "position_ids": {0: "batch_size", 1: "sequence_length"},
            "logits": {0: "batch_size", 1: "sequence_length"}}
    axes.update({n: {0: "batch_size", 2: "past_sequence_length"} for n in ins[3:]})
    axes.update({n: {0: "batch_size", 2: "past_sequence_length + sequence_length"} for n in outs[1:]})
    args = tuple(feeds(c, [5, 6, 7, 8, 9], 3, seed=1))  # traced with 3 cached positions and 5 new
    kw = dict(input_names=ins, output_names=outs, dynamic_axes=axes, opset_version=17, do_constant_folding=True)
    with torch.no_grad():
        try:  # torch >= 2.5 defaults to the dynamo exporter; the TorchScript one handles both modules
            torch.onnx.export(module, args, path, dynamo=False, **kw)
        except TypeError:
            torch.onnx.export(module, args, path, **kw)
    import onnx
    m = onnx.load(path, load_external_data=False)
    got_in = [i.name for i in m.graph.input]
    got_out = [o.name for o in m.graph.output]
    if got_in != ins or got_out != outs:
        raise RuntimeError(f"exported names {got_in} -> {got_out}, expected {ins} -> {outs}")


def check_with_ort(module, c, path):
    """The exported graph against the PyTorch module, at lengths other than the traced ones: a prefill
    of 7 tokens with an empty cache, then two steps of one token on the cache it returned. Returns the
    largest logit difference; raises when onnxruntime is missing."""
    import numpy as np
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    ins, outs = io_names(c["n_layer"])
    heads, hd = c["n_head"], c["n_embd"] // c["n_head"]
    past = [torch.zeros(1, heads, 0, hd) for _ in range(2 * c["n_layer"])]
    worst, ids, n = 0.0, [11, 42, 7, 99, 3, 250, 17], 0
    for _ in range(3):
        f = feeds(c, ids, n, past)
        with torch.no_grad():
            ref = module(*f)
        got = sess.run(None, {k: v.numpy() for k, v in zip(ins, f)})
        for r, g in zip(ref, got):
            if tuple(r.shape) != g.shape:
                raise RuntimeError(f"shape {g.shape} from ONNX Runtime, {tuple(r.shape)} from PyTorch")
        scale = float(ref[0].abs().max()) or 1.0
        worst = max(worst, float(np.abs(got[0] - ref[0].numpy()).max()) / scale)
        n += len(ids)
        past = list(ref[1:])
        ids = [int(ref[0][0, -1].argmax())]
    return worst


def write_tokenizer(path, vocab_size):
    """Byte-level BPE without merges: a text encodes to one token per byte (id = byte value), and every
    id of the model decodes (ids from 256 on to three-letter pieces)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    b2u, n = {}, 0
    for b in range(256):
        if b in keep:
            b2u[b] = chr(b)
        else:
            b2u[b] = chr(256 + n)
            n += 1
    vocab = {b2u[b]: b for b in range(256)}
    letters = string.ascii_letters + string.digits
    i = 0
    for tid in range(256, vocab_size):
        a, r = divmod(i, len(letters) ** 2)
        piece = letters[a % len(letters)] + letters[r // len(letters)] + letters[r % len(letters)]
        vocab[piece] = tid
        i += 1
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
           "pre_tokenizer": byte_level, "post_processor": byte_level, "decoder": byte_level,
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                     "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                     "vocab": vocab, "merges": []}}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)


def prompt_text(n):
    words = ("the quick brown fox jumps over the lazy dog while a small robot rolls along the shore "
             "and counts the waves under a bright sky ").split()
    out, i = "", 0
    while len(out) < n:
        out += ("" if not out else " ") + words[i % len(words)]
        i += 1
    return out[:n]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--source", choices=["auto", "transformers", "module"], default="auto")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    c = dict(SIZES[a.size])
    os.makedirs(a.out, exist_ok=True)
    onnx_path = os.path.join(a.out, "model.onnx")
    t0 = time.time()
    source, check, errors, state = None, None, [], None

    if a.source in ("auto", "transformers"):
        try:
            hf = hf_model(c, a.seed)
            state = {k: v for k, v in hf.state_dict().items() if not k.endswith((".attn.bias", ".attn.masked_bias"))}
            wrapped = HfKv(hf, c["n_layer"]).eval()
            export(wrapped, c, onnx_path)
            try:
                check = check_with_ort(wrapped, c, onnx_path)
            except ImportError as e:
                check = f"not checked ({e})"
            if isinstance(check, float) and not check < 1e-4:
                raise RuntimeError(f"ONNX Runtime's logits differ from PyTorch's by {check:.3g} (relative)")
            source = "transformers"
        except Exception as e:  # any failure of this path: the hand-written module is the fallback
            errors.append(f"transformers: {type(e).__name__}: {e}")
            log(errors[-1].splitlines()[0][:400])
            if a.source == "transformers":
                sys.exit(1)

    if source is None:
        torch.manual_seed(a.seed)
        m = Gpt2Kv(c).eval()
        loaded = False
        if state is not None:  # the same weights transformers was given, when the names agree
            missing, unexpected = m.load_state_dict(state, strict=False)
            loaded = not missing and not [k for k in unexpected if k != "lm_head.weight"]
            if not loaded:
                log(f"transformers' weights do not fit the module (missing {missing[:3]}, unexpected "
                    f"{unexpected[:3]}): fresh ones")
        if not loaded:
            init_gpt2(m, c)
        state = dict(m.state_dict())
        state["lm_head.weight"] = state["transformer.wte.weight"]
        export(m, c, onnx_path)
        try:  # the last resort: a failed check is reported (config.json), the model kept
            check = check_with_ort(m, c, onnx_path)
        except Exception as e:
            check = f"not checked ({type(e).__name__}: {e})"
        if isinstance(check, float) and not check < 1e-4:
            log(f"ONNX Runtime's logits differ from PyTorch's by {check:.3g} (relative)")
        source = "module"

    torch.save(state, os.path.join(a.out, "weights.pt"))
    write_tokenizer(os.path.join(a.out, "tokenizer.json"), c["vocab_size"])
    prompt = prompt_text(a.prompt_tokens)
    with open(os.path.join(a.out, "prompt.txt"), "w") as f:
        f.write(prompt)
    with open(os.path.join(a.out, "prompt.json"), "w") as f:
        json.dump({"prompt": prompt, "prompt_ids": list(prompt.encode())}, f)
    with open(os.path.join(a.out, "GPUXfile"), "w") as f:
        f.write(f"""# GPT-2-shaped decoder with random weights and a KV cache (bench/generate-export.py, --size {a.size})
name: gpt2-generate
description: untrained GPT-2-shaped decoder for the generation benchmark
model: ./model.onnx
preprocessing:
  tokenizer:
    vocab: ./tokenizer.json
generate:
  max_new_tokens: {a.max_new_tokens}
  max_context: {c["n_positions"]}
runtime:
  backend: webgpu
""")
    info = dict(c, size=a.size, seed=a.seed, source=source,
                ort_check_max_rel_diff=check, errors=errors, export_s=round(time.time() - t0, 1),
                torch=torch.__version__)
    try:
        import transformers
        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(info, f, indent=1)
    log(f"{source} GPT-2 ({a.size}) in {a.out} in {info['export_s']} s; ONNX Runtime check: {check}")


if __name__ == "__main__":
    main()
