#!/usr/bin/env bash
# node-rounds.sh — where a thread count loses against ONNX Runtime's CPU EP, layer by layer: for
# each thread count (THREADS, default "4"), ROUNDS rounds (default 3) of gpux bench --profile with
# GPUX_PROFILE_NODES=1 and bench/peer.mjs --profile with PEER_PROFILE_KEEP, the two interleaved,
# RUNS profiled runs each (default 40); then bench/node-times.py over the rounds (each node's
# median in a round, the least over the rounds), the TOP (default 25) layers where gpux's segment
# loses most first, then the totals per op type. With GPUX_POOL_STATS=2 set, gpux's pool counts
# (jobs by threads, per range function) of the last round go to stderr. Prints on stdout.
#
#   bench/node-rounds.sh GPUX_BIN|GPUX_TARBALL CASE_DIR...
# On the GPU machine, after bench/device-pack.sh here:
#   source .devkit/activate.sh && THREADS="1 4 16" bash .gpuxdist/node-rounds.sh .gpuxdist/gpux.tar.xz \
#     /tmp/models/mobilenet_v3_large /tmp/models/efficientnet_b0
# (cases as bench/pool-bench.sh exports them with export_models.py, or any ONNX test-case folder).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
gpux=${1:?usage: node-rounds.sh GPUX_BIN|GPUX_TARBALL CASE_DIR...}
shift
[ $# -gt 0 ] || { echo "node-rounds: error: no cases" >&2; exit 2; }
case $gpux in *.tar.xz) unpack_gpux "$gpux" /opt/gpux && gpux=$GPUX ;; esac
[ -z "${GPUX_NODE_MODULES:-}" ] && [ -d /opt/devkit/node_modules ] && export GPUX_NODE_MODULES=/opt/devkit/node_modules
rounds=${ROUNDS:-3} runs=${RUNS:-40} top=${TOP:-25}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "# $(date -u +%FT%TZ), $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
echo "# $("$gpux" --version 2>/dev/null | head -1)"
for c in "$@"; do
  name=$(basename "$c")
  for t in ${THREADS:-4}; do
    g= o=
    for r in $(seq "$rounds"); do
      GPUX_PROFILE_NODES=1 "$gpux" bench --backend cpu --threads "$t" --warmup 5 --runs "$runs" --profile "$c" \
        > "$work/g-run" 2> "$work/g-$r.txt"
      [ -n "${GPUX_POOL_STATS:-}" ] && [ "$r" = "$rounds" ] && grep '^pool:' "$work/g-$r.txt" >&2
      PEER_PROFILE_KEEP="$work/o-$r.json" node "$here/peer.mjs" --ep cpu --threads "$t" --warmup 5 --runs "$runs" \
        --profile "$c" > "$work/o-run" 2>/dev/null
      echo "# $name, $t threads, round $r: gpux median $(awk 'NR==2 {print $6}' "$work/g-run") ms," \
        "ORT $(awk 'NR==2 {print $5}' "$work/o-run") ms (profiled runs after these)"
      g=$g${g:+,}$work/g-$r.txt o=$o${o:+,}$work/o-$r.json
    done
    echo "## $name at $t threads"
    python3 "$here/node-times.py" "$g" "$o" "$top"
    echo
  done
done
