#!/usr/bin/env bash
# cnn-cpu-bench.sh — the CPU backend against ONNX Runtime's CPU EP on the convolutional models, at
# several thread counts, in one run: median latency of gpux bench and bench/peer.mjs on the same
# test-case folders (warm-up 3, RUNS timed runs), and the ratio gpux / ORT. Cases are the folders
# export_models.py writes (/tmp/models/NAME with model.onnx and test_data_set_0), and with CASES=
# any other test-case folders (bench/cnn-cases.mjs's, tests/models/make-cases.mjs's PaddleOCR det
# and rec). GPUX_BASE=BIN times a baseline build as well. For an idle machine: on a loaded one use
# bench/cpu-time.sh (CPU time per run) instead.
#
#   bench/cnn-cpu-bench.sh GPUX_BIN|GPUX_TARBALL [CASE_DIR...]
# GPUX_BIN and GPUX_BASE may be builds packed by bench/device-pack.sh (.tar.xz, unpacked under
# /opt). On the GPU machine, after `GPUX_BASE=OLD/build/gpux bench/device-pack.sh` here:
#   source .devkit/activate.sh && python3 .gpuxdist/export_models.py /tmp/models resnet50 \
#     mobilenet_v3_large efficientnet_b0 && THREADS="1 16" GPUX_BASE=.gpuxdist/gpux-base.tar.xz \
#     bash .gpuxdist/cnn-cpu-bench.sh .gpuxdist/gpux.tar.xz
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
gpux=${1:?usage: cnn-cpu-bench.sh GPUX_BIN [CASE_DIR...]}
shift
# packed builds: the base first, so that the build under test's libraries come first
case ${GPUX_BASE:-} in *.tar.xz) unpack_gpux "$GPUX_BASE" /opt/gpux-base && GPUX_BASE=$GPUX ;; esac
case $gpux in *.tar.xz) unpack_gpux "$gpux" /opt/gpux && gpux=$GPUX ;; esac
# ONNX Runtime for peer.mjs: the device kit's, where there is one
[ -z "${GPUX_NODE_MODULES:-}" ] && [ -d /opt/devkit/node_modules ] && export GPUX_NODE_MODULES=/opt/devkit/node_modules
cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then
  for m in ${MODELS:-resnet50 mobilenet_v3_large efficientnet_b0}; do
    [ -f "/tmp/models/$m/model.onnx" ] && cases+=("/tmp/models/$m")
  done
fi
[ ${#cases[@]} -gt 0 ] || { echo "cnn-cpu-bench: error: no cases (run export_models.py into /tmp/models)" >&2; exit 2; }
runs=${RUNS:-30}
printf '%-24s %7s %12s %12s %7s %12s\n' CASE THREADS ORT_MS GPUX_MS RATIO BASE_MS
for c in "${cases[@]}"; do
  name=$(basename "$c")
  for t in ${THREADS:-1 16}; do
    ort=$(node "$here/peer.mjs" --ep cpu --threads "$t" --warmup 3 --runs "$runs" "$c" 2>/dev/null | awk -v k="$name" '$1 == k { print $5 }')
    g=$("$gpux" bench --backend cpu --threads "$t" --warmup 3 --runs "$runs" "$c" 2>/dev/null | awk -v k="$name" '$1 == k { print $6 }')
    b=-
    [ -n "${GPUX_BASE:-}" ] && b=$("$GPUX_BASE" bench --backend cpu --threads "$t" --warmup 3 --runs "$runs" "$c" 2>/dev/null | awk -v k="$name" '$1 == k { print $6 }')
    printf '%-24s %7s %12s %12s %7s %12s\n' "$name" "$t" "${ort:-?}" "${g:-?}" \
      "$(ratio "$g" "$ort" "?")" "$b"
  done
done
