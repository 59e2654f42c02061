#!/usr/bin/env python3
"""coldstart.py — where a fresh process's time to its first result goes, on WebGPU.

For each ONNX test-case folder (model.onnx, test_data_set_0/): a first process with an empty
GPUX_HOME (nothing cached: as before `gpux build`), then ROUNDS more processes with the same home
(what a process after `gpux build` finds: the pipeline cache filled, the self-test mark set). Each
is `gpux bench --backend webgpu --runs RUNS --warmup 0 --json` with GPUX_WEBGPU_VERBOSE=1, whose
log gives the device steps, the pipelines (loaded from the cache or compiled), the buffers and
weight writes of the first run, each with its CPU time. Program start (exec and dynamic linking,
before main) is timed as `gpux --version`. Wall and CPU times of the whole process come from the
OS. On a loaded machine compare CPU times; the first/steady ratio is the first run's time over
the steady runs' median, in wall and in CPU time.

The device steps (library+instance, adapter, device) show "wall (process cpu/cpu of the thread
making the device)": process CPU far above the thread's is other threads' work (the driver's, or
the model loading meanwhile). "backend" is the WebGPU backend the adapter was asked of
(GPUX_WEBGPU_BACKEND; Vulkan on Linux unless set). The device is made on a thread of its own
while the model loads (gpux_device_warm): "device wait" is how long the session then waited for
it, with when the session asked for it and when it was ready, both in ms after the thread
started; the critical path is max(load, device) when the wait is the device's time less the
load's. "weights" splits the session's weight uploads (all its plans') into making the buffers,
their images (conversions) and the writes (GPUX_WEBGPU_UPLOAD=mapped: into buffers mapped at
creation; else wgpuQueueWriteBuffer).

  bench/coldstart.py [--gpux build/gpux] [--rounds 3] [--runs 5] [--env NAME=VALUE]... [--out DIR] CASE_DIR...

Prints a markdown table (medians over the rounds for the later processes); --out DIR also writes
DIR/coldstart.jsonl (every process) and DIR/coldstart.md.
"""
import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

NUM = r"([0-9.]+)"
PATTERNS = {
    # device creation (device.c)
    "lib": re.compile(r"library and instance " + NUM + r" ms \(cpu " + NUM + r"(?:, this thread " + NUM + r")?\)"),
    "adapter": re.compile(r"adapter " + NUM + r" ms \(cpu " + NUM + r"(?:, this thread " + NUM + r")?[;)]"),
    "device": re.compile(r"device " + NUM + r" ms \(cpu " + NUM + r"(?:, this thread " + NUM + r")?\), self-test"),
    "selftest": re.compile(r"self-test (?:run|skipped \(passed before\)) " + NUM + r" ms \(cpu " + NUM + r"\)"),
    # the first plan (plan.c)
    "pipelines": re.compile(r"pipelines for \d+ nodes: \d+ new \(\d+ loaded from the pipeline cache, \d+ compiled\) in "
                            + NUM + r" ms \(cpu " + NUM + r"\)"),
    "plan": re.compile(r"planned .* in " + NUM + r" ms \(cpu " + NUM + r";.*buffers, uploads and bind groups " + NUM
                       + r" ms, cpu " + NUM + r"\)"),
}
BACKEND = re.compile(r"adapter [0-9.]+ ms \(cpu [^;)]*; ([\w ]+) asked\)")
WAIT = re.compile(r"asked for the device " + NUM + r" ms after gpux_device_warm and waited " + NUM + r" ms for it \(ready "
                  + NUM + r" ms")
WEIGHTS = re.compile(r"the session's weights: \d+ buffers, [0-9.]+ MiB [\w ]+; buffers made in " + NUM + r" ms, images "
                     + NUM + r" ms, writes " + NUM + r" ms")
LOADED = re.compile(r"\d+ new \((\d+) loaded from the pipeline cache, (\d+) compiled\)")
SELFTEST_SKIPPED = re.compile(r"self-test skipped")
RUN = re.compile(r"webgpu: run: " + NUM + r" ms, (\w+) plan, .* cpu " + NUM + r" ms")


def child_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def one_process(gpux, case, home, runs, extra_env):
    env = dict(os.environ, GPUX_HOME=home, GPUX_WEBGPU_VERBOSE="1", **extra_env)
    c0, t0 = child_cpu_s(), time.monotonic()
    p = subprocess.run([gpux, "bench", "--backend", "webgpu", "--runs", str(runs), "--warmup", "0", "--json", case],
                       env=env, capture_output=True, text=True)
    wall, cpu = (time.monotonic() - t0) * 1e3, (child_cpu_s() - c0) * 1e3
    rec = {"process_ms": round(wall, 1), "process_cpu_ms": round(cpu, 1), "rc": p.returncode}
    try:
        b = json.loads(p.stdout.strip().splitlines()[-1])
        for k in ("load_ms", "create_ms", "first_ms", "median_ms"):
            rec[k] = b.get(k)
    except (IndexError, ValueError):
        rec["error"] = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return rec
    log = p.stderr
    for name, pat in PATTERNS.items():
        m = pat.search(log)
        if not m:
            continue
        rec[name + "_ms"], rec[name + "_cpu_ms"] = float(m.group(1)), float(m.group(2))
        if name in ("lib", "adapter", "device") and m.group(3):
            rec[name + "_thread_ms"] = float(m.group(3))
        if name == "plan":
            rec["buffers_ms"], rec["buffers_cpu_ms"] = float(m.group(3)), float(m.group(4))
    m = BACKEND.search(log)
    if m:
        rec["backend_asked"] = m.group(1)
    m = WAIT.search(log)
    if m:
        rec["device_asked_ms"], rec["device_wait_ms"], rec["device_ready_ms"] = (float(x) for x in m.groups())
    m = WEIGHTS.search(log)
    if m:
        rec["weights_make_ms"], rec["weights_image_ms"], rec["weights_write_ms"] = (float(x) for x in m.groups())
    m = LOADED.search(log)
    if m:
        rec["pipelines_loaded"], rec["pipelines_compiled"] = int(m.group(1)), int(m.group(2))
    rec["selftest_skipped"] = bool(SELFTEST_SKIPPED.search(log))
    runs_seen = [(float(a), kind, float(c)) for a, kind, c in RUN.findall(log)]
    if runs_seen:
        rec["first_cpu_ms"] = runs_seen[0][2]
        steady = [c for _, kind, c in runs_seen[1:] if kind == "cached"]
        if steady:
            rec["steady_cpu_ms"] = statistics.median(steady)
    return rec


def exec_ms(gpux):
    times = []
    for _ in range(5):
        t0 = time.monotonic()
        subprocess.run([gpux, "--version"], capture_output=True)
        times.append((time.monotonic() - t0) * 1e3)
    return statistics.median(times)


def med(recs, key):
    vals = [r[key] for r in recs if isinstance(r.get(key), (int, float))]
    return statistics.median(vals) if vals else None


def fmt(v, cpu=None, thread=None):
    if v is None:
        return "-"
    if cpu is None:
        return f"{v:.0f}"
    return f"{v:.0f} ({cpu:.0f})" if thread is None else f"{v:.0f} ({cpu:.0f}/{thread:.0f})"


def row(case, label, recs, start_ms):
    g = lambda k: med(recs, k)  # noqa: E731
    first_result = None
    if g("first_ms") is not None:
        first_result = start_ms + (g("load_ms") or 0) + (g("create_ms") or 0) + g("first_ms")
    ratio = g("first_ms") / g("median_ms") if g("first_ms") and g("median_ms") else None
    ratio_cpu = g("first_cpu_ms") / g("steady_cpu_ms") if g("first_cpu_ms") and g("steady_cpu_ms") else None
    meets = None
    if g("first_ms") is not None and g("median_ms") is not None:
        meets = g("first_ms") <= 1.3 * g("median_ms") + 50
    rest = None
    if g("first_ms") is not None and g("plan_ms") is not None:
        rest = g("first_ms") - g("plan_ms")
    wait = "-"
    if g("device_wait_ms") is not None:
        wait = f"{g('device_wait_ms'):.0f} ({g('device_asked_ms'):.0f}/{g('device_ready_ms'):.0f})"
    backend = next((r["backend_asked"] for r in recs if r.get("backend_asked")), "-")
    weights = "-"
    if g("weights_make_ms") is not None:
        weights = f"{g('weights_make_ms'):.0f}/{g('weights_image_ms'):.0f}/{g('weights_write_ms'):.0f}"
    pipes = "-"
    if g("pipelines_loaded") is not None:
        pipes = f"{g('pipelines_loaded'):.0f}/{g('pipelines_compiled'):.0f}"
    return (f"| {case} | {label} | {fmt(first_result)} | {fmt(g('process_ms'), g('process_cpu_ms'))} | {start_ms:.0f} | "
            f"{fmt(g('load_ms'))} | {fmt(g('create_ms'))} | {wait} | {backend} | "
            f"{fmt(g('lib_ms'), g('lib_cpu_ms'), g('lib_thread_ms'))} | "
            f"{fmt(g('adapter_ms'), g('adapter_cpu_ms'), g('adapter_thread_ms'))} | "
            f"{fmt(g('device_ms'), g('device_cpu_ms'), g('device_thread_ms'))} | "
            f"{fmt(g('selftest_ms'), g('selftest_cpu_ms'))} | {fmt(g('first_ms'), g('first_cpu_ms'))} | "
            f"{fmt(g('pipelines_ms'), g('pipelines_cpu_ms'))} {pipes} | {fmt(g('buffers_ms'), g('buffers_cpu_ms'))} | {weights} | "
            f"{fmt(rest)} | {fmt(g('median_ms'), g('steady_cpu_ms'))} | "
            f"{'-' if ratio is None else f'{ratio:.2f}'} ({'-' if ratio_cpu is None else f'{ratio_cpu:.2f}'}) | "
            f"{'-' if meets is None else ('yes' if meets else 'no')} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gpux", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "gpux"))
    ap.add_argument("--rounds", type=int, default=3, help="processes after the first, with its cache")
    ap.add_argument("--runs", type=int, default=5, help="steady runs after the first run, in each process")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="an environment variable for every gpux process (e.g. GPUX_WEBGPU_BACKEND=any)")
    ap.add_argument("--out", help="folder for coldstart.jsonl and coldstart.md")
    ap.add_argument("cases", nargs="+")
    a = ap.parse_args()
    extra_env = dict(e.split("=", 1) for e in a.env)
    start = exec_ms(a.gpux)
    lines = [
        f"gpux: {a.gpux}; program start (exec to main, `gpux --version`): {start:.0f} ms; "
        f"{a.rounds} cached processes (medians), {a.runs} steady runs each. Times in ms, CPU time in parentheses."
        + (f" Environment: {' '.join(a.env)}." if a.env else ""),
        "",
        "| case | process | first result | process wall (cpu) | start | model load | session create "
        "| device wait (asked/ready) | backend | library+instance (cpu/thread) | adapter (cpu/thread) "
        "| device (cpu/thread) | self-test | first run | pipelines (loaded/compiled) | buffers+weights "
        "| weights: buffers/images/writes | first run rest "
        "| steady run | first/steady (cpu) | first <= 1.3 steady + 50 |",
        "|---" * 21 + "|",
    ]
    records = []
    for case in a.cases:
        name = os.path.basename(os.path.normpath(case))
        home = tempfile.mkdtemp(prefix="gpux-coldstart-")
        try:
            cold = one_process(a.gpux, case, home, a.runs, extra_env)
            warm = [one_process(a.gpux, case, home, a.runs, extra_env) for _ in range(a.rounds)]
        finally:
            shutil.rmtree(home, ignore_errors=True)
        for i, r in enumerate([cold] + warm):
            records.append(dict(r, case=name, process="empty cache" if i == 0 else f"cached {i}"))
        lines.append(row(name, "empty cache", [cold], start))
        lines.append(row(name, "cached", warm, start))
        for r in [cold] + warm:
            if r.get("error") or r.get("rc"):
                lines.append(f"| {name} | error | {r.get('error', 'exit ' + str(r.get('rc')))} |")
                break
    text = "\n".join(lines)
    print(text)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "coldstart.jsonl"), "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
        with open(os.path.join(a.out, "coldstart.md"), "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
