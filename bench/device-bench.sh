#!/usr/bin/env bash
# device-bench.sh — the WebGPU benchmark on the GPU machine (see ../shared/docs/DEVICE.md), run
# from the repository root there after bench/device-pack.sh packed .gpuxdist/ here:
#   source .devkit/activate.sh && bash .gpuxdist/device-bench.sh OUTDIR
# Exports the full-size models, checks gpux's WebGPU outputs against ONNX Runtime's reference,
# then times gpux (WebGPU and CPU backends) and ONNX Runtime (WebGPU and CPU EPs) on the same
# inputs in the same run: median of >= 20 runs after warm-up, batch 1, fp32, and first run
# (process start to first result). PyTorch CUDA eager (fp32 and fp16 autocast, bench/torch-peer.py)
# runs as a peer in the same run. THREADS="1 4 16" times both CPU runtimes at each thread count
# (default: all cores). gpux also runs with --precision fp16 as the runtime gpux-webgpu-fp16 (its
# bench JSON says "precision": "fp16", or "fp32" with "precision_note" where the adapter's shaders
# cannot use f16), after `gpux verify --precision fp16` checks its outputs against the fp32
# reference with the fp16 gate of docs/benchmarks.md (verify-fp16.txt); FP16=0 leaves it out.
# CPU_ONLY=1 times only the CPU runtimes (no WebGPU verify or runs, no PyTorch).
# Then bench/coldstart.py breaks a fresh process's time to its first result down (device steps,
# pipelines loaded or compiled, buffers and weights, first run against steady runs), with an empty
# cache and in later processes (COLDSTART=0 leaves it out).
# Writes results.jsonl, table.md, coldstart.md, coldstart.jsonl and logs into OUTDIR.
set -uo pipefail
out=${1:?usage: device-bench.sh OUTDIR}
mkdir -p "$out" /opt/gpux
dist=$(cd "$(dirname "$0")" && pwd)
source "$dist/lib.sh"
unpack_gpux "$dist/gpux.tar.xz" /opt
gpux=$GPUX
base_rts=
if [ -f "$dist/gpux-base.tar.xz" ]; then  # a baseline build packed with GPUX_BASE
  mkdir -p /opt/gpux-base && tar xJf "$dist/gpux-base.tar.xz" -C /opt/gpux-base
  base_rts="gpux-base-webgpu gpux-base-cpu"
fi
cp "$dist/peer.mjs" /opt/devkit/peer.mjs
export GPUX_NODE_MODULES=/opt/devkit/node_modules
models=${MODELS:-resnet50 mobilenet_v3_large efficientnet_b0 vit_b_16 bert_base gpt2}
runs=${RUNS:-20}
fp16_rts=gpux-webgpu-fp16
[ "${FP16:-1}" = 0 ] && fp16_rts=

{ date -u; nproc; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; } > "$out/machine.txt" 2>&1
"$gpux" devices > "$out/devices.txt" 2>&1
timeout 240 python3 "$dist/export_models.py" /tmp/models $models > "$out/export.log" 2>&1

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
for m in $models; do
  d=/tmp/models/$m
  [ -f "$d/model.onnx" ] || { echo "{\"case\":\"$m\",\"error\":\"not exported\"}" >> "$out/results.jsonl"; continue; }
  gpu_rts="gpux-webgpu $fp16_rts ort-webgpu"
  [ "${CPU_ONLY:-0}" = 1 ] && gpu_rts=
  [ -n "$gpu_rts" ] && timeout 120 "$gpux" verify --backend webgpu --rtol 1e-2 --atol 1e-3 --jobs 1 "$d" >> "$out/verify.txt" 2>&1
  [ -n "$gpu_rts" ] && [ -n "$fp16_rts" ] && timeout 120 "$gpux" verify --backend webgpu --precision fp16 --l2 1e-2 --atol-scale 1e-2 --top1 \
    --json --jobs 1 "$d" >> "$out/verify-fp16.txt" 2>&1
  cpu_rts=
  if [ -z "${THREADS:-}" ]; then cpu_rts="ort-cpu gpux-cpu"
  else for t in $THREADS; do cpu_rts="$cpu_rts ort-cpu-t$t gpux-cpu-t$t"; done; fi
  for rt in $gpu_rts $cpu_rts $base_rts; do
    th=; case $rt in *-cpu-t*) th="--threads ${rt##*-t}" ;; esac
    be=${rt#gpux-}; be=${be#ort-}; be=${be%-t[0-9]*}
    case $rt in *-fp16) th="--precision fp16"; be=${be%-fp16} ;; esac
    # first run: a fresh process, from start to its first result; then again in a second fresh
    # process, which finds what the first left behind (gpux: the compiled-pipeline cache, as after
    # `gpux build`)
    GPUX_HOME=$(mktemp -d); export GPUX_HOME
    for pass in cold warm; do
      t0=$(now_ms)
      case $rt in
        gpux-base-*) LD_LIBRARY_PATH=/opt/gpux-base/gpux/lib:/opt/gpux/lib timeout 120 /opt/gpux-base/gpux/gpux bench --json --backend "${rt#gpux-base-}" --runs 1 --warmup 0 "$d" > /dev/null 2>> "$out/errors.log" ;;
        gpux-*) timeout 120 "$gpux" bench --json --backend "$be" $th --runs 1 --warmup 0 "$d" > /dev/null 2>> "$out/errors.log" ;;
        ort-*) timeout 120 node /opt/devkit/peer.mjs --json --ep "$be" $th --runs 1 --warmup 0 "$d" > /dev/null 2>> "$out/errors.log" ;;
      esac
      [ $pass = cold ] && first=$(( $(now_ms) - t0 )) || warm=$(( $(now_ms) - t0 ))
    done
    case $rt in
      gpux-base-*) r=$(LD_LIBRARY_PATH=/opt/gpux-base/gpux/lib:/opt/gpux/lib timeout 180 /opt/gpux-base/gpux/gpux bench --json --backend "${rt#gpux-base-}" --runs "$runs" --warmup 5 "$d" 2>> "$out/errors.log") ;;
      gpux-*) r=$(timeout 180 "$gpux" bench --json --backend "$be" $th --runs "$runs" --warmup 5 "$d" 2>> "$out/errors.log") ;;
      ort-*) r=$(timeout 180 node /opt/devkit/peer.mjs --json --ep "$be" $th --runs "$runs" --warmup 5 "$d" 2>> "$out/errors.log") ;;
    esac
    echo "{\"case\":\"$m\",\"runtime\":\"$rt\",\"first_process_ms\":$first,\"warm_process_ms\":$warm,\"bench\":${r:-null}}" >> "$out/results.jsonl"
  done
done
[ -n "${NO_TORCH:-}" ] || [ "${CPU_ONLY:-0}" = 1 ] || timeout 300 python3 "$dist/torch-peer.py" --runs "$runs" $models >> "$out/results.jsonl" 2>> "$out/errors.log"
python3 "$dist/device-table.py" "$out/results.jsonl" > "$out/table.md" 2>> "$out/errors.log"
# where a fresh process's time to its first result goes on WebGPU, with an empty cache and then
# in ROUNDS later processes (bench/coldstart.py: coldstart.md, coldstart.jsonl); COLDSTART=0 skips it
if [ "${COLDSTART:-1}" != 0 ]; then
  cases=; for m in $models; do [ -f "/tmp/models/$m/model.onnx" ] && cases="$cases /tmp/models/$m"; done
  [ -n "$cases" ] && timeout 600 python3 "$dist/coldstart.py" --gpux "$gpux" --rounds "${ROUNDS:-3}" --runs 10 --out "$out" \
    $cases > /dev/null 2>> "$out/errors.log"
fi
