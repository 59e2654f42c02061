#!/usr/bin/env bash
# coldstart-bench.sh — a fresh process's time to its first result on the GPU machine (see
# ../shared/docs/DEVICE.md), and what the start-up choices do to it, in one run: bench/coldstart.py
# on ResNet-50 and MobileNetV3-Large (MODELS to change) with gpux's defaults, then with the
# adapter asked of any backend (GPUX_WEBGPU_BACKEND=any, as before the platform's backend was
# asked for), with the weights written into buffers mapped at creation (GPUX_WEBGPU_UPLOAD=mapped),
# with the device made when the session asks for it (GPUX_WEBGPU_WARM=0: the steps one after
# another), and the baseline build where device-pack.sh packed one (GPUX_BASE). From the repository
# root there, after bench/device-pack.sh packed .gpuxdist/ here:
#   source .devkit/activate.sh && bash .gpuxdist/coldstart-bench.sh OUTDIR
# Writes OUTDIR/<variant>/coldstart.md and coldstart.jsonl (columns: coldstart.py's docstring) and
# OUTDIR/summary.md, the "cached" rows of every variant one after another. MODELDIR (/tmp/models)
# holds the exported test cases, UNPACK (/opt) the unpacked builds.
set -uo pipefail
out=${1:?usage: coldstart-bench.sh OUTDIR}
md=${MODELDIR:-/tmp/models}
opt=${UNPACK:-/opt}
mkdir -p "$out" "$opt/gpux"
dist=$(cd "$(dirname "$0")" && pwd)
source "$dist/lib.sh"
unpack_gpux "$dist/gpux.tar.xz" "$opt"
gpux=$GPUX
models=${MODELS:-resnet50 mobilenet_v3_large}
{ date -u; nproc; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; } > "$out/machine.txt" 2>&1
"$gpux" devices > "$out/devices.txt" 2>&1
cases=
for m in $models; do
  [ -f "$md/$m/model.onnx" ] || timeout 240 python3 "$dist/export_models.py" "$md" "$m" >> "$out/export.log" 2>&1
  [ -f "$md/$m/model.onnx" ] && cases="$cases $md/$m"
done
[ -n "$cases" ] || { echo "coldstart-bench: no model exported (see $out/export.log)" >&2; exit 1; }
run() { # NAME GPUX [--env NAME=VALUE]...
  local name=$1 bin=$2
  shift 2
  timeout 900 python3 "$dist/coldstart.py" --gpux "$bin" --rounds "${ROUNDS:-3}" --runs "${RUNS:-10}" "$@" --out "$out/$name" \
    $cases > /dev/null 2>> "$out/errors.log"
}
run default "$gpux"
run backend-any "$gpux" --env GPUX_WEBGPU_BACKEND=any
run upload-mapped "$gpux" --env GPUX_WEBGPU_UPLOAD=mapped
run no-warm "$gpux" --env GPUX_WEBGPU_WARM=0
if [ -f "$dist/gpux-base.tar.xz" ]; then
  mkdir -p "$opt/gpux-base" && tar xJf "$dist/gpux-base.tar.xz" -C "$opt/gpux-base"
  LD_LIBRARY_PATH=$opt/gpux-base/gpux/lib:$LD_LIBRARY_PATH run base "$opt/gpux-base/gpux/gpux"
fi
{
  for v in default backend-any upload-mapped no-warm base; do
    [ -f "$out/$v/coldstart.md" ] || continue
    echo "## $v"
    echo
    sed -n '1p;3,4p' "$out/$v/coldstart.md"
    grep '| cached |' "$out/$v/coldstart.md"
    echo
  done
} > "$out/summary.md"
cat "$out/summary.md"
