#!/usr/bin/env bash
# cpu-rounds.sh — gpux's CPU backend against ONNX Runtime's CPU EP in interleaved rounds: for each
# case and thread count, ROUNDS rounds (default 3) of bench/peer.mjs then gpux bench, RUNS timed
# runs each (default 20, warm-up 3), so that both see the same machine state in each round. Prints
# each round's medians and ratio, then the least median of each over the rounds, their ratio, and
# each one's peak RSS (MB). Interleaving is what makes single-thread ratios on a shared or
# frequency-scaling machine mean something; bench/cnn-cpu-bench.sh runs each peer once.
#
#   bench/cpu-rounds.sh GPUX_BIN|GPUX_TARBALL CASE_DIR...
# THREADS (default "1") lists the thread counts; CHRT=1 runs both under chrt -f 10 (as root).
# On the GPU machine, after bench/device-pack.sh here:
#   source .devkit/activate.sh && python3 .gpuxdist/export_models.py /tmp/models resnet50 && \
#     THREADS="1 16" bash .gpuxdist/cpu-rounds.sh .gpuxdist/gpux.tar.xz /tmp/models/resnet50
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
gpux=${1:?usage: cpu-rounds.sh GPUX_BIN|GPUX_TARBALL CASE_DIR...}
shift
[ $# -gt 0 ] || { echo "cpu-rounds: error: no cases" >&2; exit 2; }
case $gpux in *.tar.xz) unpack_gpux "$gpux" /opt/gpux && gpux=$GPUX ;; esac
[ -z "${GPUX_NODE_MODULES:-}" ] && [ -d /opt/devkit/node_modules ] && export GPUX_NODE_MODULES=/opt/devkit/node_modules
# an ES module resolves packages from its own folder: the device kit's peer copy where there is one
peer=$here/peer.mjs
[ -d /opt/devkit/node_modules ] && cp "$peer" /opt/devkit/peer.mjs && peer=/opt/devkit/peer.mjs
rounds=${ROUNDS:-3} runs=${RUNS:-20}
pre=()
[ "${CHRT:-0}" = 1 ] && pre=(chrt -f 10)
echo "# $(date -u +%FT%TZ), $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
echo "# $("$gpux" --version 2>/dev/null | head -1)"
printf '%-24s %3s %5s %10s %10s %6s\n' CASE T ROUND ORT_MS GPUX_MS RATIO
summary=()
for c in "$@"; do
  name=$(basename "$c")
  for t in ${THREADS:-1}; do
    best_o= best_g= rss_o= rss_g=
    for r in $(seq 1 "$rounds"); do
      # peer.mjs: CASE RUNS LOAD FIRST MEDIAN MIN P90 RSS; gpux bench: CASE BACKEND RUNS LOAD FIRST MEDIAN MIN P90 RSS
      read -r o ro < <("${pre[@]}" node "$peer" --ep cpu --threads "$t" --warmup 3 --runs "$runs" "$c" 2>/dev/null |
        awk -v k="$name" '$1 == k { print $5, $8 }')
      read -r g rg < <("${pre[@]}" "$gpux" bench --backend cpu --threads "$t" --warmup 3 --runs "$runs" "$c" 2>/dev/null |
        awk -v k="$name" '$1 == k { print $6, $9 }')
      printf '%-24s %3s %5s %10s %10s %6s\n' "$name" "$t" "$r" "${o:-?}" "${g:-?}" "$(ratio "${g:-}" "${o:-}" "?")"
      [ -n "${o:-}" ] && { [ -z "$best_o" ] || awk -v a="$o" -v b="$best_o" 'BEGIN { exit !(a < b) }'; } && best_o=$o
      [ -n "${g:-}" ] && { [ -z "$best_g" ] || awk -v a="$g" -v b="$best_g" 'BEGIN { exit !(a < b) }'; } && best_g=$g
      rss_o=${ro:-$rss_o} rss_g=${rg:-$rss_g}
    done
    summary+=("$(printf '%-24s %3s %10s %10s %6s %10s %10s' "$name" "$t" "${best_o:-?}" "${best_g:-?}" \
      "$(ratio "$best_g" "$best_o" "?")" "${rss_o:-?}" "${rss_g:-?}")")
  done
done
echo
echo "# least median over $rounds rounds of $runs runs; peak RSS in MB"
printf '%-24s %3s %10s %10s %6s %10s %10s\n' CASE T ORT_MS GPUX_MS RATIO ORT_RSS GPUX_RSS
printf '%s\n' "${summary[@]}"
