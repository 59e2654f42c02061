#!/usr/bin/env bash
# Crash safety of the local store (issue 15): build, tag, rm and pull are made to fail with
# ENOSPC or EIO, or are killed with SIGKILL, at every step that writes the store, one step per
# run (GPUX_TEST_FAULT=N:ACTION, src/core/fault.c). After each: every image `gpux list` shows
# runs, the image another one shares layers with still runs, every blob's content matches its
# name (no half-written blob is ever in blobs/), and the same command run again succeeds.
#   tests/registry/store-faults.sh GPUX
source "$(dirname "$0")/../app/lib.sh" "$1"
source "$(dirname "$0")/lib-registry.sh"
need python3 curl docker-registry

python3 "$root/tests/app/make-slow-model.py" "$tmp/app"
printf 'y\n' > "$tmp/app/labels.txt"
printf 'name: app\nversion: "1"\nmodel: model.onnx\nruntime:\n  backend: cpu\noutputs:\n  - name: y\n    labels: labels.txt\n' \
  > "$tmp/app/GPUXfile"
# a second app sharing the model layer
mkdir -p "$tmp/other" && cp "$tmp/app/model.onnx" "$tmp/other/" && printf 'other\n' > "$tmp/other/labels.txt"
sed 's/^name: app/name: other/' "$tmp/app/GPUXfile" > "$tmp/other/GPUXfile"

start_registry open 127.0.0.1
reg=127.0.0.1:$reg_port
expect build-app 0 '^Built app:1' -- "$gpux" build -q --backend cpu -t app:1 "$tmp/app"
expect build-other 0 '^Built other:1' -- "$gpux" build -q --backend cpu -t other:1 "$tmp/other"
expect push 0 '^Pushed' -- "$gpux" push app:1 "$reg/team/app:1"
base=$tmp/base
cp -a "$GPUX_HOME" "$base"

runs() { "$gpux" run "$1" --backend cpu --input n=3 --input v=1 >/dev/null 2>&1; }
# consistent WHAT: every listed image runs, other:1 runs, every blob matches its digest
consistent() {
  local bad="" ref f
  "$gpux" list --format '{{.Name}}:{{.Tag}}' >"$tmp/list" 2>&1 || bad+=" list-fails"
  while read -r ref; do runs "$ref" || bad+=" $ref-does-not-run"; done <"$tmp/list"
  runs other:1 || bad+=" other:1-does-not-run"
  for f in "$GPUX_HOME"/blobs/sha256/*; do
    [ "$(sha256sum "$f" | cut -c1-64)" = "${f##*/}" ] || bad+=" half-written-blob-${f##*/}"
  done
  echo "${bad:-ok}"
}

# faults NAME SETUP CMD...: for every fault point CMD reaches (counted with GPUX_TEST_FAULT=list
# on a fresh copy of the base store after SETUP) and every action, a fresh store, SETUP, CMD with
# the fault, the checks, then CMD again without a fault
faults() {
  local name=$1 setup=$2
  shift 2
  rm -rf "$GPUX_HOME" && cp -a "$base" "$GPUX_HOME" && eval "$setup"
  local points
  points=$(GPUX_TEST_FAULT=list "$@" 2>&1 >/dev/null | grep -c '^gpux: fault point')
  expect "$name-has-fault-points" 0 ok -- bash -c "[ $points -gt 0 ] && echo ok"
  echo "$name: $points fault points x 3 actions"
  for n in $(seq "$points"); do
    for action in enospc eio kill; do
      rm -rf "$GPUX_HOME" && cp -a "$base" "$GPUX_HOME" && eval "$setup"
      { GPUX_TEST_FAULT=$n:$action "$@" >"$tmp/out" 2>&1; } 2>/dev/null; rc=$?   # no "Killed" line
      # an injected fault is never reported as success (rm's deletes are best effort: garbage stays)
      if [ "$action" = kill ] && [ "$rc" != 137 ]; then
        echo "FAIL $name-$n-$action: exit $rc, not killed"; fails=$((fails + 1))
      elif [ "$action" != kill ] && [ "$rc" = 0 ] && [ "$name" != rm ]; then
        echo "FAIL $name-$n-$action: exit 0 despite the fault"; fails=$((fails + 1))
      fi
      expect "$name-$n-$action-consistent" 0 '^ok$' -- consistent
      expect "$name-$n-$action-again" 0 '' -- "$@"
      expect "$name-$n-$action-after" 0 '^ok$' -- consistent
    done
  done
}

faults build 'true' "$gpux" build -q --backend cpu -t app:2 "$tmp/app"
expect build-result 0 '' -- runs app:2
faults tag 'true' "$gpux" tag app:1 app:t
faults rm 'true' "$gpux" rm -f app:1
faults pull '"$gpux" rm app:1 >/dev/null' "$gpux" pull -q "$reg/team/app:1"
finish
