#!/usr/bin/env python3
"""generate-torch.py — the PyTorch side of the generation benchmark (bench/generate-bench.sh): greedy
generation in eager PyTorch (CUDA where there is one) with the weights bench/generate-export.py wrote,
for the same prompt and number of new tokens as gpux and ONNX Runtime.

    python3 generate-torch.py DIR [--max-new-tokens 128] [--runs 3] [--dtype fp32|fp16|both] [--device cuda|cpu]

With transformers installed it is transformers' GPT2LMHeadModel.generate() (greedy, its own cache;
the model built from DIR/config.json and DIR/weights.pt); without it, the hand-written module of
generate-export.py in the same cached loop. fp16 is fp32 weights under torch.autocast(float16).
Times come from a streamer that generate() hands each token to (the streamer copies it to the host,
so each token is waited for, as in gpux's and ONNX Runtime's loops): time to first token = from the
call to the first new token (prefill + choosing it), tokens/s = (N - 1) / the time after that. The
first of --runs is reported as "cold" (first use of the kernels), the last one as the result.
Prints one JSON line per dtype, with the generated token ids.
"""
import argparse
import contextlib
import importlib.util
import json
import os
import sys
import time

import torch


def load_export_module():
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("generate_export", os.path.join(here, "generate-export.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Timer:
    """A generate() streamer: the first put() is the prompt, each later one a new token."""
    def __init__(s, device):
        s.device, s.times, s.tokens, s.prompt_seen = device, [], [], False

    def put(s, value):
        v = value.reshape(-1).tolist()  # a copy to the host: waits for the token
        if not s.prompt_seen:
            s.prompt_seen = True
            return
        s.tokens += v
        s.times.append(time.perf_counter())

    def end(s):
        pass


def autocast(device, dtype):
    """float16 autocast for fp16; nothing for fp32 (old torch refuses float16 on the CPU even when off)."""
    if dtype != "fp16":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.float16)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_transformers(c, state, ids, n_new, device, dtype, runs):
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = GPT2Config(**{k: c[k] for k in ("n_layer", "n_head", "n_embd", "vocab_size", "n_positions")},
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, use_cache=True)
    m = GPT2LMHeadModel(cfg)
    missing, unexpected = m.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith((".attn.bias", ".attn.masked_bias"))]
    if missing:
        raise RuntimeError(f"weights.pt lacks {missing[:3]}")
    m = m.eval().to(device)
    gc = m.generation_config
    gc.eos_token_id = None  # the exported tokenizer has no end-of-text token: every runtime makes n_new
    gc.pad_token_id = 0
    x = torch.tensor([ids], device=device)
    mask = torch.ones_like(x)
    out = []
    for _ in range(runs):
        t = Timer(device)
        sync(device)
        with torch.no_grad(), autocast(device, dtype):
            t0 = time.perf_counter()
            m.generate(input_ids=x, attention_mask=mask, max_new_tokens=n_new, min_new_tokens=n_new,
                       do_sample=False, num_beams=1, streamer=t, generation_config=gc)
        sync(device)
        out.append((t0, t))
    return out, f"transformers.generate (attention {getattr(m.config, '_attn_implementation', '?')})"


def run_module(c, state, ids, n_new, device, dtype, runs):
    mod = load_export_module()
    m = mod.Gpt2Kv(c)
    m.load_state_dict({k: v for k, v in state.items() if k != "lm_head.weight"})
    m = m.eval().to(device)
    heads, hd = c["n_head"], c["n_embd"] // c["n_head"]
    out = []
    for _ in range(runs):
        t = Timer(device)
        sync(device)
        with torch.no_grad(), autocast(device, dtype):
            t0 = time.perf_counter()
            past = [torch.zeros(1, heads, 0, hd, device=device) for _ in range(2 * c["n_layer"])]
            step_ids, n_past = list(ids), 0
            for _ in range(n_new):
                n = len(step_ids)
                r = m(torch.tensor([step_ids], device=device), torch.ones(1, n_past + n, dtype=torch.long, device=device),
                      torch.arange(n_past, n_past + n, device=device).unsqueeze(0), *past)
                nxt = r[0][0, -1].argmax()
                t.prompt_seen = True
                t.put(nxt)
                past, n_past, step_ids = list(r[1:]), n_past + n, [t.tokens[-1]]
        sync(device)
        out.append((t0, t))
    return out, "hand-written GPT-2 module (generate-export.py), cached greedy loop"


def summary(t0, t):
    first = t.times[0] - t0
    rest = t.times[-1] - t.times[0]
    n = len(t.tokens)
    return {"time_to_first_token_ms": round(first * 1000, 3),
            "tokens_per_second": round((n - 1) / rest, 2) if n > 1 and rest > 0 else 0,
            "total_ms": round((t.times[-1] - t0) * 1000, 3), "tokens": t.tokens}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dtype", choices=["fp32", "fp16", "both"], default="both")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    device = torch.device(a.device)
    c = json.load(open(os.path.join(a.dir, "config.json")))
    ids = json.load(open(os.path.join(a.dir, "prompt.json")))["prompt_ids"]
    try:
        state = torch.load(os.path.join(a.dir, "weights.pt"), map_location="cpu", weights_only=True)
    except TypeError:  # torch before 1.13
        state = torch.load(os.path.join(a.dir, "weights.pt"), map_location="cpu")
    dtypes = ["fp32", "fp16"] if a.dtype == "both" else [a.dtype]
    if device.type == "cpu" and "fp16" in dtypes:
        dtypes.remove("fp16")  # autocast float16 is a CUDA feature
    try:
        import transformers  # noqa: F401
        runner = run_transformers
    except ImportError:
        runner = run_module
    for dt in dtypes:
        try:
            res, how = runner(c, state, ids, a.max_new_tokens, device, dt, a.runs)
        except Exception as e:
            if runner is run_module:
                raise
            print(f"generate-torch: transformers failed ({type(e).__name__}: {e}); the module instead", file=sys.stderr)
            runner = run_module
            res, how = runner(c, state, ids, a.max_new_tokens, device, dt, a.runs)
        last, cold = summary(*res[-1]), summary(*res[0])
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        print(json.dumps({"runtime": f"torch-{device.type}-{dt}", "how": how, "device": name, "torch": torch.__version__,
                          "prompt_tokens": len(ids), "generated_tokens": len(last["tokens"]),
                          "time_to_first_token_ms": last["time_to_first_token_ms"],
                          "tokens_per_second": last["tokens_per_second"], "total_ms": last["total_ms"],
                          "cold": {k: cold[k] for k in ("time_to_first_token_ms", "tokens_per_second", "total_ms")},
                          "runs": a.runs, "tokens": last["tokens"]}), flush=True)


if __name__ == "__main__":
    main()
