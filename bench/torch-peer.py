#!/usr/bin/env python3
"""torch-peer.py — PyTorch CUDA eager as a peer in bench/device-bench.sh: the six models of
export_models.py built the same way (same constructors, seed, input shapes), batch 1, timed in
fp32 and under fp16 autocast. One JSON line per model and precision on stdout:
    {"case", "runtime": "torch-cuda-fp32"|"torch-cuda-fp16", "median_ms", "p90_ms", "runs",
     "first_ms" (model on the GPU to first result, process start excluded), "device"}
    python3 bench/torch-peer.py [--runs N] [--warmup N] [MODEL...]
Needs torch, torchvision and transformers with CUDA (the GPU machine has them).
"""
import argparse, json, statistics, sys, time
import torch


class Logits(torch.nn.Module):
    def __init__(s, m, keys):
        super().__init__()
        s.m, s.keys = m, keys

    def forward(s, *a):
        return s.m(**dict(zip(s.keys, a))).logits


def models():
    import torchvision.models as tvm
    from transformers import (BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel, ViTConfig,
                              ViTForImageClassification)
    img = lambda n=224: [torch.rand(1, 3, n, n)]
    return {
        "resnet50": lambda: (tvm.resnet50(), img()),
        "mobilenet_v3_large": lambda: (tvm.mobilenet_v3_large(), img()),
        "efficientnet_b0": lambda: (tvm.efficientnet_b0(), img()),
        "vit_b_16": lambda: (Logits(ViTForImageClassification(ViTConfig()), ["pixel_values"]), img()),
        "bert_base": lambda: (Logits(BertForSequenceClassification(BertConfig(num_labels=2)), ["input_ids", "attention_mask"]),
                              [torch.randint(0, 30522, (1, 128)), torch.ones(1, 128, dtype=torch.long)]),
        "gpt2": lambda: (Logits(GPT2LMHeadModel(GPT2Config(use_cache=False)), ["input_ids", "attention_mask"]),
                         [torch.randint(0, 50257, (1, 64)), torch.ones(1, 64, dtype=torch.long)]),
    }


def timed(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - t0) * 1000)
    ts.sort()
    return statistics.median(ts), ts[min(len(ts) - 1, int(0.9 * len(ts)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("models", nargs="*")
    a = ap.parse_args()
    torch.manual_seed(1234)
    dev = torch.device("cuda")
    name = torch.cuda.get_device_name(0)
    for case, make in models().items():
        if a.models and case not in a.models:
            continue
        try:
            m, inputs = make()
            m = m.eval()
            t0 = time.perf_counter()
            m = m.to(dev)
            x = [t.to(dev) for t in inputs]
            for prec in ("fp32", "fp16"):
                def run():
                    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=prec == "fp16"):
                        return m(*x)
                if prec == "fp32":
                    run()
                    torch.cuda.synchronize()
                    first = (time.perf_counter() - t0) * 1000
                med, p90 = timed(run, a.runs, a.warmup)
                print(json.dumps({"case": case, "runtime": f"torch-cuda-{prec}", "median_ms": round(med, 4),
                                  "p90_ms": round(p90, 4), "runs": a.runs,
                                  "first_ms": round(first, 1) if prec == "fp32" else None,
                                  "device": name, "torch": torch.__version__}), flush=True)
        except Exception as e:  # one model's failure does not stop the others
            print(json.dumps({"case": case, "runtime": "torch-cuda", "error": f"{type(e).__name__}: {str(e)[-300:]}"}),
                  flush=True)


if __name__ == "__main__":
    main()
