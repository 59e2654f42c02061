#!/usr/bin/env python3
"""gen-steps.py — what each step of a generation costs on WebGPU, from gpux's own log
(GPUX_WEBGPU_VERBOSE): per run (the prefill, then one per token) its time, whether it made a new
plan and how long planning took, the pipelines compiled, buffers created, dispatches, and bytes
written to and read from the device; then the medians of the decode steps.

  bench/gen-steps.py [--gpux PATH] IMAGE_OR_FOLDER [gpux run options...]
  e.g. bench/gen-steps.py examples/tiny-gpt --input Hello --max-new-tokens 32 --backend webgpu
Run it with GPUX_WEBGPU_REUSE=0 or GPUX_WEBGPU_DERIVE=0 and without to see what pipeline reuse
and plan derivation save."""
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
plan_cpu = re.compile(r"webgpu: planned .* in [0-9.]+ ms \(cpu ([0-9.]+)")
derived = re.compile(r"derived: (\d+) nodes as before, GPU objects (kept|made)")
run = re.compile(r"webgpu: run: ([0-9.]+) ms, (\w+) plan, (\d+) pipelines compiled, (\d+) buffers created, "
                 r"(\d+) bytes up in \d+ writes, (\d+) bytes down")
run_cpu = re.compile(r"webgpu: run: .*, cpu ([0-9.]+) ms")
rows, pending = [], None
for line in p.stderr.splitlines():
    if m := plan.search(line):
        c, d = plan_cpu.search(line), derived.search(line)
        pending = (int(m[1]), float(m[3]), float(c[1]) if c else 0.0, int(d[1]) if d else 0, d[2] if d else "-")
    elif m := run.search(line):
        disp, plan_ms, plan_cpu_ms, same, objs = pending if m[2] == "new" and pending else (0, 0.0, 0.0, 0, "-")
        c = run_cpu.search(line)
        rows.append(dict(ms=float(m[1]), cpu_ms=float(c[1]) if c else 0.0, plan=m[2], plan_ms=plan_ms, plan_cpu=plan_cpu_ms,
                         same_nodes=same, gpu_objs=objs, dispatches=disp, pipelines=int(m[3]), buffers=int(m[4]),
                         up=int(m[5]), down=int(m[6])))
        pending = None
# ms/cpu_ms: the run's wall and process CPU time (on a software adapter the GPU's work is CPU time
# too); plan_ms/plan_cpu: the part planning took; same_nodes: nodes taken from the last plan as they
# were; gpu_objs: whether the plan ran in the last plan's buffers and bind groups ("kept")
cols = ["ms", "cpu_ms", "plan", "plan_ms", "plan_cpu", "same_nodes", "gpu_objs", "dispatches", "pipelines", "buffers", "up", "down"]
print("step " + " ".join(f"{c:>10}" for c in cols))
for i, r in enumerate(rows):
    print(f"{i:4} " + " ".join(f"{r[c]:>10.1f}" if isinstance(r[c], float) else f"{r[c]:>10}" for c in cols))
decode = rows[1:]
if decode:
    med = {c: statistics.median(r[c] for r in decode) for c in cols if c not in ("plan", "gpu_objs")}
    print("decode median: " + ", ".join(f"{c} {v:g}" for c, v in med.items()) +
          f"; new plans {sum(r['plan'] == 'new' for r in decode)}/{len(decode)}, "
          f"GPU objects kept {sum(r['gpu_objs'] == 'kept' for r in decode)}/{len(decode)}")
