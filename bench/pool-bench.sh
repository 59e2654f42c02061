#!/usr/bin/env bash
# pool-bench.sh — how the CPU backend scales with threads, against ONNX Runtime's CPU EP in the
# same run: gpux bench and bench/peer.mjs on the convolutional models at each thread count
# (THREADS, default "1 4 16"), median and min latency over RUNS runs (default 50, warm-up 5), the
# runtimes interleaved per case and thread count. GPUX_BASE=BIN|TARBALL times a baseline build as
# well (another commit: what a pool change did); POOL_WORK="W..." times gpux again with each
# GPUX_POOL_WORK (units of work a thread must get; core/threadpool.c); AB_ENV="VAR=VAL..." times
# gpux again with each setting (AB_ENV=GPUX_GEMV_SPLIT=1048576: a squeeze-excitation's 1x1
# convolutions on the calling thread, as before ops/gemv.c split them; AB_ENV="GPUX_GAP_ROWS=1
# GPUX_POOL_ELEM=4 GPUX_POOL_ELEM=16": GlobalAveragePoolNHWC by strips of rows rather than blocks
# of channels, and elementwise ops on fewer or more threads than the default 8 units an element
# gives). Then, where the packed
# builds have it, pool-micro (bench/pool-micro.c): wall-clock and CPU cost of one parallel region
# at each thread count. Prints the table on stdout.
#
#   bench/pool-bench.sh GPUX_BIN|GPUX_TARBALL [CASE_DIR...]
# On the GPU machine, after `cmake --build build --target pool-micro && bench/device-pack.sh` here
# (GPUX_BASE=OLD/build/gpux for a baseline):
#   source .devkit/activate.sh && bash .gpuxdist/pool-bench.sh .gpuxdist/gpux.tar.xz
# Cases default to /tmp/models/{mobilenet_v3_large,resnet50,efficientnet_b0}, exported with
# export_models.py (next to this script) when missing.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
gpux=${1:?usage: pool-bench.sh GPUX_BIN|GPUX_TARBALL [CASE_DIR...]}
shift
# packed builds: the base first, so that the build under test's libraries come first
case ${GPUX_BASE:-} in *.tar.xz) unpack_gpux "$GPUX_BASE" /opt/gpux-base && GPUX_BASE=$GPUX ;; esac
case $gpux in *.tar.xz) unpack_gpux "$gpux" /opt/gpux && gpux=$GPUX ;; esac
micro=$(dirname "$gpux")/pool-micro base_micro=
[ -n "${GPUX_BASE:-}" ] && base_micro=$(dirname "$GPUX_BASE")/pool-micro
[ -z "${GPUX_NODE_MODULES:-}" ] && [ -d /opt/devkit/node_modules ] && export GPUX_NODE_MODULES=/opt/devkit/node_modules
models=${MODELS:-mobilenet_v3_large resnet50 efficientnet_b0}
cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then
  missing=
  for m in $models; do [ -f "/tmp/models/$m/model.onnx" ] || missing="$missing $m"; done
  if [ -n "$missing" ] && [ -f "$here/export_models.py" ]; then
    timeout 600 python3 "$here/export_models.py" /tmp/models $missing > /tmp/pool-bench-export.log 2>&1 ||
      echo "pool-bench: export failed (/tmp/pool-bench-export.log)" >&2
  fi
  for m in $models; do [ -f "/tmp/models/$m/model.onnx" ] && cases+=("/tmp/models/$m"); done
fi
[ ${#cases[@]} -gt 0 ] || { echo "pool-bench: error: no cases (export_models.py into /tmp/models)" >&2; exit 2; }
runs=${RUNS:-50}
{ echo "# $(date -u +%FT%TZ), $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "# $("$gpux" --version 2>/dev/null | head -1)"; } || true

# median and min ms of one runtime: gpux bench prints them in columns 6-7, peer.mjs in 5-6
gpux_ms() { # BIN THREADS CASE [ENV=VAL]
  env ${4:-} "$1" bench --backend cpu --threads "$2" --warmup 5 --runs "$runs" "$3" 2>/dev/null |
    awk -v k="$(basename "$3")" '$1 == k { print $6, $7 }'
}
ort_ms() { # THREADS CASE
  node "$here/peer.mjs" --ep cpu --threads "$1" --warmup 5 --runs "$runs" "$2" 2>/dev/null |
    awk -v k="$(basename "$2")" '$1 == k { print $5, $6 }'
}
row() { # CASE THREADS RUNTIME "MEDIAN MIN" ORT_MEDIAN
  local med min
  read -r med min <<< "$4"
  printf '%-20s %7s %-16s %10s %10s %9s\n' "$1" "$2" "$3" "${med:-?}" "${min:-?}" "$(ratio "$med" "$5" "?")"
}
printf '%-20s %7s %-16s %10s %10s %9s\n' CASE THREADS RUNTIME MEDIAN_MS MIN_MS VS_ORT
for c in "${cases[@]}"; do
  name=$(basename "$c")
  for t in ${THREADS:-1 4 16}; do
    o=$(ort_ms "$t" "$c")
    g=$(gpux_ms "$gpux" "$t" "$c")
    ort_med=${o%% *}
    row "$name" "$t" ort-cpu "$o" "$ort_med"
    row "$name" "$t" gpux-cpu "$g" "$ort_med"
    [ -n "${GPUX_BASE:-}" ] && row "$name" "$t" gpux-base "$(gpux_ms "$GPUX_BASE" "$t" "$c")" "$ort_med"
    for w in ${POOL_WORK:-}; do
      row "$name" "$t" "gpux-work$w" "$(gpux_ms "$gpux" "$t" "$c" "GPUX_POOL_WORK=$w")" "$ort_med"
    done
    for e in ${AB_ENV:-}; do
      row "$name" "$t" "gpux:${e#GPUX_}" "$(gpux_ms "$gpux" "$t" "$c" "$e")" "$ort_med"
    done
  done
done
# one parallel region of almost no work, and of 4 items of 2 us a thread, back to back
max=$(nproc)
ts=$(for t in 1 2 4 8 16; do [ "$t" -le "$max" ] && echo "$t"; done)
for m in "$micro" "$base_micro"; do
  [ -n "$m" ] && [ -x "$m" ] || continue
  echo; echo "# $m: one parallel region of 4 items a thread, empty / 2 us each; 4 items of 2 us"
  "$m" -j 20000 -w 0 $ts
  "$m" -j 5000 -w 2000 $ts
  "$m" -j 5000 -n 4 -w 2000 $ts
done
