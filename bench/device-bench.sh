#!/usr/bin/env bash
# device-bench.sh — the WebGPU benchmark on the GPU machine (see ../shared/docs/DEVICE.md), run
# from the repository root there after bench/device-pack.sh packed .gpuxdist/ here:
#   source .devkit/activate.sh && bash .gpuxdist/device-bench.sh OUTDIR
# Exports the full-size models, checks gpux's WebGPU outputs against ONNX Runtime's reference,
# then times gpux (WebGPU and CPU backends) and ONNX Runtime (WebGPU and CPU EPs) on the same
# inputs in the same run: median of >= 20 runs after warm-up, batch 1, fp32, and first run
# (process start to first result). Writes results.jsonl and logs into OUTDIR.
set -uo pipefail
out=${1:?usage: device-bench.sh OUTDIR}
mkdir -p "$out" /opt/gpux
dist=$(cd "$(dirname "$0")" && pwd)
tar xJf "$dist/gpux.tar.xz" -C /opt
export LD_LIBRARY_PATH=/opt/gpux/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
gpux=/opt/gpux/gpux
base_rts=
if [ -f "$dist/gpux-base.tar.xz" ]; then  # a baseline build packed with GPUX_BASE
  mkdir -p /opt/gpux-base && tar xJf "$dist/gpux-base.tar.xz" -C /opt/gpux-base
  base_rts="gpux-base-webgpu gpux-base-cpu"
fi
cp "$dist/peer.mjs" /opt/devkit/peer.mjs
export GPUX_NODE_MODULES=/opt/devkit/node_modules
models=${MODELS:-resnet50 mobilenet_v3_large efficientnet_b0 vit_b_16 bert_base gpt2}
runs=${RUNS:-20}

{ date -u; nproc; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; } > "$out/machine.txt" 2>&1
"$gpux" devices > "$out/devices.txt" 2>&1
timeout 240 python3 "$dist/export_models.py" /tmp/models $models > "$out/export.log" 2>&1

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
for m in $models; do
  d=/tmp/models/$m
  [ -f "$d/model.onnx" ] || { echo "{\"case\":\"$m\",\"error\":\"not exported\"}" >> "$out/results.jsonl"; continue; }
  timeout 120 "$gpux" verify --backend webgpu --rtol 1e-2 --atol 1e-3 --jobs 1 "$d" >> "$out/verify.txt" 2>&1
  for rt in gpux-webgpu ort-webgpu ort-cpu gpux-cpu $base_rts; do
    # first run: a fresh process, from start to its first result
    t0=$(now_ms)
    case $rt in
      gpux-base-*) LD_LIBRARY_PATH=/opt/gpux-base/gpux/lib:/opt/gpux/lib timeout 120 /opt/gpux-base/gpux/gpux bench --json --backend "${rt#gpux-base-}" --runs 1 --warmup 0 "$d" > /dev/null 2>> "$out/errors.log" ;;
      gpux-*) timeout 120 "$gpux" bench --json --backend "${rt#gpux-}" --runs 1 --warmup 0 "$d" > /dev/null 2>> "$out/errors.log" ;;
      ort-*) timeout 120 node /opt/devkit/peer.mjs --json --ep "${rt#ort-}" --runs 1 --warmup 0 "$d" > /dev/null 2>> "$out/errors.log" ;;
    esac
    first=$(( $(now_ms) - t0 ))
    case $rt in
      gpux-base-*) r=$(LD_LIBRARY_PATH=/opt/gpux-base/gpux/lib:/opt/gpux/lib timeout 180 /opt/gpux-base/gpux/gpux bench --json --backend "${rt#gpux-base-}" --runs "$runs" --warmup 5 "$d" 2>> "$out/errors.log") ;;
      gpux-*) r=$(timeout 180 "$gpux" bench --json --backend "${rt#gpux-}" --runs "$runs" --warmup 5 "$d" 2>> "$out/errors.log") ;;
      ort-*) r=$(timeout 180 node /opt/devkit/peer.mjs --json --ep "${rt#ort-}" --runs "$runs" --warmup 5 "$d" 2>> "$out/errors.log") ;;
    esac
    echo "{\"case\":\"$m\",\"runtime\":\"$rt\",\"first_process_ms\":$first,\"bench\":${r:-null}}" >> "$out/results.jsonl"
  done
done
