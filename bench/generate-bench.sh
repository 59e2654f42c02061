#!/usr/bin/env bash
# generate-bench.sh — the text generation benchmark on the GPU machine (see ../shared/docs/DEVICE.md):
# time to first token and decode tokens/s of a GPT-2-shaped decoder (random weights, KV cache) for a
# 128-token prompt and 128 new tokens, greedy, batch 1, fp32: gpux (WebGPU and CPU backends) against
# ONNX Runtime driving the same loop from node (WebGPU EP with the cache kept in GPU buffers, CPU EP)
# and PyTorch eager generate() on CUDA (fp32 and fp16 autocast), all in one run, taking turns.
# Run from the repository root there after bench/device-pack.sh packed .gpuxdist/ here:
#   source .devkit/activate.sh && bash .gpuxdist/generate-bench.sh OUTDIR
# Writes into OUTDIR: results.jsonl (a line per runtime), results.md (the table), machine.txt,
# export.log, errors.log and raw/ (each runtime's own output).
#
# Each runtime generates 3 times in one process (gpux run --repeat 3; --runs 3 for ONNX Runtime and
# PyTorch) and the last run is reported; the first one's total is reported as "cold" (first use of
# everything after loading; for gpux with an empty pipeline cache on disk). gpux on WebGPU goes last
# and may take the time the others left: its first run compiles pipelines for each step's sequence
# length. Time to first token = prefill and choosing the first token; tokens/s = the other 127
# tokens over the time they took (see gpux run --json, bench/generate-peer.mjs,
# bench/generate-torch.py). The generated tokens are compared with ONNX
# Runtime CPU's. The whole run stops starting new work after BUDGET_S seconds (default 480) and
# kills what runs at 560 s, so it fits one 10-minute command.
#
# Settings (environment): SIZE=small|tiny (tiny: a 2-layer model, to try the script anywhere),
# SOURCE=auto|transformers|module (generate-export.py --source), PROMPT_TOKENS=128, NEW_TOKENS=128,
# RUNTIMES="ort-cpu gpux-cpu torch ort-webgpu gpux-webgpu", GPUX=path (an unpacked gpux instead of
# .gpuxdist/gpux.tar.xz), PYTHON=python3, GPUX_NODE_MODULES (where onnxruntime-node is).
set -uo pipefail
out=${1:?usage: generate-bench.sh OUTDIR}
mkdir -p "$out/raw"
out=$(cd "$out" && pwd)
dist=$(cd "$(dirname "$0")" && pwd)
start_s=$(date +%s)
budget=${BUDGET_S:-480}
hard_end=$(( start_s + ${HARD_S:-560} ))
size=${SIZE:-small}
source_opt=${SOURCE:-auto}
prompt_tokens=${PROMPT_TOKENS:-128}
new_tokens=${NEW_TOKENS:-128}
runtimes=${RUNTIMES:-ort-cpu gpux-cpu torch ort-webgpu gpux-webgpu}
py=${PYTHON:-python3}
work=${WORK:-/tmp/genbench}
model=$work/gpt2-$size
export GPUX_HOME=$work/gpux-home  # an empty pipeline cache: the cold run is cold
rm -rf "$GPUX_HOME" && mkdir -p "$GPUX_HOME"

source "$dist/lib.sh"
if [ -z "${GPUX:-}" ]; then
  unpack_gpux "$dist/gpux.tar.xz" /opt
fi
peer=$dist/generate-peer.mjs
if [ -d /opt/devkit/node_modules ]; then  # as device-bench.sh: the peer next to the kit's packages
  cp "$dist/generate-peer.mjs" /opt/devkit/ && peer=/opt/devkit/generate-peer.mjs
  export GPUX_NODE_MODULES=${GPUX_NODE_MODULES:-/opt/devkit/node_modules}
fi

# seconds left for a step that wants `want`: clipped to the hard end; 0 once the budget is spent
left() {
  local now want=$1
  now=$(date +%s)
  if [ $(( now - start_s )) -ge "$budget" ]; then echo 0; return; fi
  local room=$(( hard_end - now ))
  [ "$room" -lt "$want" ] && want=$room
  [ "$want" -lt 1 ] && want=0
  echo "$want"
}
note() { echo "generate-bench: $*" | tee -a "$out/errors.log" >&2; }
# timeout with the seconds left() gives; a step is skipped (status 124) once none are left
tmo() {
  local s
  s=$(left "$1")
  shift
  if [ "$s" -le 0 ]; then note "skipped, the time budget is spent: ${*:1:3} ..."; return 124; fi
  timeout "$s" "$@"
}

{ date -u; nproc; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1; "$GPUX" --version 2>&1; } > "$out/machine.txt" 2>&1
"$GPUX" devices > "$out/devices.txt" 2>&1

# the model, checked with a 2-token gpux generation on WebGPU; a transformers export that gpux
# cannot run is replaced by the hand-written module's (the reason goes into errors.log)
export_model() {
  rm -rf "$model"
  tmo 240 "$py" "$dist/generate-export.py" "$model" --size "$size" --source "$1" \
    --prompt-tokens "$prompt_tokens" --max-new-tokens "$new_tokens" >> "$out/export.log" 2>&1
}
export_model "$source_opt" || note "export (--source $source_opt) failed: see export.log"
if [ ! -f "$model/config.json" ] && [ "$source_opt" = auto ]; then  # e.g. a transformers export past its time
  export_model module || note "export (--source module) failed: see export.log"
fi
src=$("$py" -c "import json,sys; print(json.load(open(sys.argv[1]))['source'])" "$model/config.json" 2>/dev/null)
if [ "$src" = transformers ] && [ "$source_opt" = auto ]; then
  if ! GPUX_HOME=$work/smoke-home tmo 120 "$GPUX" run "$model" --input @"$model/prompt.txt" --max-new-tokens 2 --json --backend webgpu \
      > "$out/raw/smoke.json" 2>> "$out/errors.log"; then
    note "gpux could not run the transformers export on WebGPU (above); the hand-written module's instead"
    rm -rf "$model-transformers" && mv "$model" "$model-transformers"
    export_model module || note "export (--source module) failed: see export.log"
  fi
fi
[ -f "$model/model.onnx" ] || { note "no model exported"; echo '{"error":"not exported"}' > "$out/results.jsonl"; exit 1; }
cp "$model/config.json" "$out/model-config.json"; cp "$model/prompt.json" "$out/prompt.json"

for rt in $runtimes; do
  case $rt in
    gpux-*)
      tmo 400 "$GPUX" run "$model" --input @"$model/prompt.txt" --max-new-tokens "$new_tokens" --json \
        --backend "${rt#gpux-}" --repeat 3 > "$out/raw/$rt.json" 2>> "$out/errors.log" || note "$rt failed or timed out"
      ;;
    ort-*)
      tmo 200 node "$peer" --ep "${rt#ort-}" --max-new-tokens "$new_tokens" --runs 3 "$model" \
        > "$out/raw/$rt.json" 2>> "$out/errors.log" || note "$rt failed or timed out"
      ;;
    torch)
      tmo 200 "$py" "$dist/generate-torch.py" "$model" --max-new-tokens "$new_tokens" --runs 3 \
        > "$out/raw/$rt.json" 2>> "$out/errors.log" || note "$rt failed or timed out"
      ;;
    *) note "unknown runtime $rt" ;;
  esac
done

# results.jsonl and results.md from raw/
"$py" - "$out" "$runtimes" "$new_tokens" <<'EOF'
import json, os, sys
out, runtimes, new_tokens = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])
raw = os.path.join(out, "raw")

def lines(path):
    try:
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip().startswith("{")]
    except (OSError, ValueError):
        return []

cfg = {}
try:
    cfg = json.load(open(os.path.join(out, "model-config.json")))
except (OSError, ValueError):
    pass
rows = []
for rt in runtimes:
    if rt.startswith("gpux-"):
        got = lines(os.path.join(raw, rt + ".json"))
        if not got:
            rows.append({"runtime": rt, "error": "no result (errors.log)"})
            continue
        r, rep = got[-1], got[-1].get("repeat") or {}
        rows.append({"runtime": rt, "time_to_first_token_ms": r.get("time_to_first_token_ms"),
                     "tokens_per_second": r.get("tokens_per_second"),
                     "cold": {"total_ms": rep.get("first_ms"), "process_start_to_first_result_ms": rep.get("startup_ms")},
                     "generated_tokens": r.get("generated_tokens"), "prompt_tokens": r.get("prompt_tokens"),
                     "download_bytes_per_token": r.get("download_bytes_per_token"),
                     "prefill_download_bytes": r.get("prefill_download_bytes"), "repeat": rep,
                     "prompt_ids": r.get("prompt_ids"), "tokens": r.get("tokens", [])})
    else:
        got = lines(os.path.join(raw, rt + ".json"))
        if not got:
            rows.append({"runtime": rt, "error": "no result (errors.log)"})
        rows += [dict(g, runtime=g.get("runtime", rt)) for g in got]

try:
    prompt_ids = json.load(open(os.path.join(out, "prompt.json")))["prompt_ids"]
except (OSError, ValueError, KeyError):
    prompt_ids = None
ref = next((r for r in rows if r["runtime"] == "ort-cpu" and r.get("tokens")), None)
for r in rows:
    if "error" in r:
        continue
    t = r.get("tokens") or []
    if ref is not None:
        same = 0
        while same < min(len(t), len(ref["tokens"])) and t[same] == ref["tokens"][same]:
            same += 1
        r["tokens_equal_to_ort_cpu"] = same == len(t) == len(ref["tokens"])
        r["tokens_agreeing_prefix"] = same
    r["model"] = {k: cfg.get(k) for k in ("size", "source", "n_layer", "n_head", "n_embd", "vocab_size")}
with open(os.path.join(out, "results.jsonl"), "w") as f:
    for r in rows:
        r = {k: v for k, v in r.items() if k != "prompt_ids"}
        f.write(json.dumps(r) + "\n")

def num(v, d=1):
    return "—" if v is None else f"{v:.{d}f}"

by = {r["runtime"]: r for r in rows if "error" not in r}
md = [f"Generation: GPT-2-shaped decoder ({cfg.get('size')}: {cfg.get('n_layer')} layers, {cfg.get('n_embd')} wide, "
      f"{cfg.get('vocab_size')} tokens; exported from {cfg.get('source')}), random weights, fp32 unless said, batch 1, "
      f"{(ref or {}).get('prompt_tokens', '?')}-token prompt, {new_tokens} new tokens, greedy.", "",
      "| runtime | time to first token, ms | decode tokens/s | first generation (cold), ms | tokens = ORT CPU's |",
      "|---|---:|---:|---:|---|"]
for r in rows:
    if "error" in r:
        md.append(f"| {r['runtime']} | {r['error']} | | | |")
        continue
    c = r.get("cold") or {}
    eq = r.get("tokens_equal_to_ort_cpu")
    eqs = "—" if eq is None else ("yes" if eq else f"first {r['tokens_agreeing_prefix']} of {len(r.get('tokens') or [])}")
    md.append(f"| {r['runtime']} | {num(r.get('time_to_first_token_ms'))} | {num(r.get('tokens_per_second'))} | "
              f"{num(c.get('total_ms'), 0)} | {eqs} |")
md.append("")
for g, o in (("gpux-webgpu", "ort-webgpu"), ("gpux-cpu", "ort-cpu"), ("gpux-webgpu", "torch-cuda-fp32"),
             ("gpux-webgpu", "torch-cuda-fp16")):
    if g in by and o in by and by[o].get("tokens_per_second") and by[g].get("time_to_first_token_ms"):
        md.append(f"- {g} against {o}: ×{by[g]['tokens_per_second'] / by[o]['tokens_per_second']:.2f} the decode "
                  f"tokens/s, ×{by[g]['time_to_first_token_ms'] / by[o]['time_to_first_token_ms']:.2f} the time to first token")
for r in rows:
    if r["runtime"].startswith("gpux-") and "error" not in r and prompt_ids is not None and r.get("prompt_ids") != prompt_ids:
        md.append(f"- {r['runtime']}: the prompt's token ids differ from prompt.json's: the comparison is not like for like")
ort_gpu = by.get("ort-webgpu")
if ort_gpu is not None:
    md.append(f"- ONNX Runtime WebGPU kept the cache on the GPU between steps: {ort_gpu.get('kv_on_device')}")
for r in rows:
    if r["runtime"].startswith("gpux-") and "error" not in r:
        md.append(f"- {r['runtime']}: {num(r.get('download_bytes_per_token'), 0)} bytes read back per decode step, "
                  f"{num(r.get('prefill_download_bytes'), 0)} by the prefill")
open(os.path.join(out, "results.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
EOF
echo "generate-bench: $(( $(date +%s) - start_s )) s in all; results in $out" >&2
