#!/usr/bin/env python3
"""gen-steps.py — what each step of a generation costs on WebGPU, from gpux's own log
(GPUX_WEBGPU_VERBOSE): per run (the prefill, then one per token) its time, whether it made a new
plan and how long planning took, the pipelines compiled, buffers created, dispatches, and bytes
written to and read from the device; then the medians of the decode steps.

  bench/gen-steps.py [--gpux PATH] IMAGE_OR_FOLDER [gpux run options...]
  e.g. bench/gen-steps.py examples/tiny-gpt --input Hello --max-new-tokens 32 --backend webgpu
Run it twice with GPUX_WEBGPU_REUSE=0 and without to see what pipeline reuse saves."""
import os, re, statistics, subprocess, sys

args = sys.argv[1:]
gpux = "gpux"
if args[:1] == ["--gpux"]:
    gpux, args = args[1], args[2:]
if not args:
    sys.exit(__doc__)
env = dict(os.environ, GPUX_WEBGPU_VERBOSE="1")
p = subprocess.run([gpux, "run", *args, "--json"], env=env, capture_output=True, text=True)
if p.returncode:
    sys.exit(p.stderr.strip() or f"gpux exited with {p.returncode}")
plan = re.compile(r"webgpu: planned .*?, (\d+) dispatches, (\d+) pipelines compiled, .* in ([0-9.]+) ms")
run = re.compile(r"webgpu: run: ([0-9.]+) ms, (\w+) plan, (\d+) pipelines compiled, (\d+) buffers created, "
                 r"(\d+) bytes up in \d+ writes, (\d+) bytes down")
rows, pending = [], None
for line in p.stderr.splitlines():
    if m := plan.search(line):
        pending = (int(m[1]), float(m[3]))
    elif m := run.search(line):
        disp, plan_ms = pending if m[2] == "new" and pending else (0, 0.0)
        rows.append(dict(ms=float(m[1]), plan=m[2], plan_ms=plan_ms, dispatches=disp, pipelines=int(m[3]),
                         buffers=int(m[4]), up=int(m[5]), down=int(m[6])))
        pending = None
cols = ["ms", "plan", "plan_ms", "dispatches", "pipelines", "buffers", "up", "down"]
print("step " + " ".join(f"{c:>10}" for c in cols))
for i, r in enumerate(rows):
    print(f"{i:4} " + " ".join(f"{r[c]:>10.1f}" if isinstance(r[c], float) else f"{r[c]:>10}" for c in cols))
decode = rows[1:]
if decode:
    med = {c: statistics.median(r[c] for r in decode) for c in cols if c != "plan"}
    print("decode median: " + ", ".join(f"{c} {v:g}" for c, v in med.items()) +
          f"; new plans {sum(r['plan'] == 'new' for r in decode)}/{len(decode)}")
