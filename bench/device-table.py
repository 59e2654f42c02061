#!/usr/bin/env python3
"""device-table.py — turns bench/device-bench.sh's results.jsonl into the markdown tables of
docs/benchmarks.md: per model, the median ms of every runtime, gpux's ratios against ONNX Runtime
(same backend, same thread count) and PyTorch, the first result from fresh processes, peak RSS.
    python3 bench/device-table.py results.jsonl > table.md
"""
import json, sys
from collections import OrderedDict


def main():
    rows, order = OrderedDict(), []
    for line in open(sys.argv[1]):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        case, rt = r.get("case"), r.get("runtime")
        if not case or not rt:
            continue
        b = r.get("bench") if "bench" in r else r
        if isinstance(b, list):
            b = b[0] if b else None
        if not isinstance(b, dict) or "median_ms" not in b:
            continue
        rows.setdefault(case, {})[rt] = {"ms": b["median_ms"], "rss": b.get("peak_rss_kb"),
                                         "first": r.get("first_process_ms", b.get("first_ms")),
                                         "warm": r.get("warm_process_ms")}
        if rt not in order:
            order.append(rt)
    print("| model | " + " | ".join(order) + " |")
    print("|---|" + "---:|" * len(order))
    for case, v in rows.items():
        print(f"| {case} | " + " | ".join(f"{v[rt]['ms']:.3g}" if rt in v else "-" for rt in order) + " |")
    print("\nRatios (gpux / peer, below 1: gpux is faster):\n")
    pairs = []
    for rt in order:
        if rt.startswith("gpux-") and not rt.startswith("gpux-base"):
            peer = "ort-" + rt[5:].replace("-fp16", "")
            if peer in order:
                pairs.append((rt, peer))
            for t in ("torch-cuda-fp32", "torch-cuda-fp16"):
                if "webgpu" in rt and t in order:
                    pairs.append((rt, t))
    print("| model | " + " | ".join(f"{a} / {b}" for a, b in pairs) + " |")
    print("|---|" + "---:|" * len(pairs))
    for case, v in rows.items():
        cells = [f"{v[a]['ms'] / v[b]['ms']:.2f}" if a in v and b in v and v[b]["ms"] else "-" for a, b in pairs]
        print(f"| {case} | " + " | ".join(cells) + " |")
    print("\nFirst result from a fresh process, ms (cold / with the caches a first process left), and peak RSS MB:\n")
    print("| model | runtime | first | warm | peak RSS |")
    print("|---|---|---:|---:|---:|")
    for case, v in rows.items():
        for rt in order:
            if rt in v and v[rt]["first"] is not None:
                w, rss = v[rt]["warm"], v[rt]["rss"]
                print(f"| {case} | {rt} | {v[rt]['first']} | {w if w is not None else '-'} | "
                      f"{rss / 1024:.0f} |" if rss else f"| {case} | {rt} | {v[rt]['first']} | {w if w is not None else '-'} | - |")


if __name__ == "__main__":
    main()
