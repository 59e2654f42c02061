#!/usr/bin/env bash
# Runs every libFuzzer harness built in BUILD (make fuzz) for SECONDS each. The grown corpus is
# kept in BUILD/corpus/<harness> (the seeds in tests/fuzz/corpus/<harness> are read, not
# written); crashes go to tests/fuzz/crashes/<harness>/, where `make test` replays them.
# Prints executions and coverage per harness from libFuzzer's final stats.
#   tests/fuzz/run.sh BUILD SECONDS
set -u
build=$1 seconds=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
status=0
for bin in "$build"/tests/fuzz/fuzz-*; do
  h=${bin##*/fuzz-}
  mkdir -p "$build/corpus/$h" "$here/crashes/$h"
  log=$build/fuzz-$h.log
  "$bin" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$here/crashes/$h/" "$build/corpus/$h" "$here/corpus/$h" >"$log" 2>&1
  rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  echo "fuzz-$h: ${seconds}s, ${runs:-?} executions, ${cov:-cov: ?}, corpus $(ls "$build/corpus/$h" | wc -l) files, exit $rc"
  [ "$rc" = 0 ] || { status=1; grep -m3 -E 'ERROR|SUMMARY' "$log"; }
done
exit $status
