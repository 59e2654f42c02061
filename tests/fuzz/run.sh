#!/usr/bin/env bash
# Runs every libFuzzer harness built in BUILD (make fuzz) for SECONDS each. The grown corpus is
# kept in BUILD/corpus/<harness> (the seeds in tests/fuzz/corpus/<harness> are read, not
# written); crashing inputs go to BUILD/crashes/<harness>/: after fixing a bug, copy its input
# to tests/fuzz/crashes/<harness>/, where `make test` replays it.
# Prints executions and coverage per harness from libFuzzer's final stats.
#   tests/fuzz/run.sh BUILD SECONDS [HARNESS...]     (default: every harness built)
set -u
build=$1 seconds=${2:-60}
shift 2 || shift $#
only=" $* "
here=$(cd "$(dirname "$0")" && pwd)
status=0
for bin in "$build"/tests/fuzz/fuzz-*; do
  h=${bin##*/fuzz-}
  [ "$only" = "  " ] || [[ "$only" == *" $h "* ]] || continue
  mkdir -p "$build/corpus/$h" "$build/crashes/$h"
  log=$build/fuzz-$h.log
  # fork mode: a crash is recorded and fuzzing goes on until the time is up
  "$bin" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -max_total_time="$seconds" -timeout=20 \
    -rss_limit_mb=4096 -artifact_prefix="$build/crashes/$h/" "$build/corpus/$h" "$here/corpus/$h" >"$log" 2>&1
  runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
  crashes=$(grep -oE 'crash: [0-9]+|oom/timeout/crash: [0-9/]+' "$log" | tail -1)
  echo "fuzz-$h: ${seconds}s, ${runs:-?} executions, ${cov:-cov: ?}, corpus $(ls "$build/corpus/$h" | wc -l) files, ${crashes:-no crash line}, $(ls "$build/crashes/$h" | wc -l) inputs in $build/crashes/$h"
  if [ -n "$(ls "$build/crashes/$h")" ] || grep -qE 'SUMMARY: (Address|UndefinedBehavior|Leak)Sanitizer' "$log"; then
    status=1
    grep -E 'SUMMARY' "$log" | sort | uniq -c | head -5
  fi
done
exit $status
