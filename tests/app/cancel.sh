#!/usr/bin/env bash
# Cancelling a run between nodes (issue 15, item 12) on a model whose run takes as long as its
# input asks (make-slow-model.py: a Loop of n steps): SIGTERM/SIGINT stop `gpux run` within a
# bound with exit status 128 + the signal and a one-line error; under `gpux serve` a request past
# its deadline (--timeout) cancels the run, so the same model answers the next request at once;
# a served SIGTERM drains, and a second signal cancels what still runs.
#   tests/app/cancel.sh GPUX
source "$(dirname "$0")/lib.sh" "$1"
need python3 curl
python3 "$root/tests/app/make-slow-model.py" "$tmp/slow"
big='{"inputs":[{"name":"n","shape":[],"datatype":"INT64","data":[1000000000000]},{"name":"v","shape":[1],"datatype":"FP32","data":[1]}]}'
small='{"inputs":[{"name":"n","shape":[],"datatype":"INT64","data":[3]},{"name":"v","shape":[1],"datatype":"FP32","data":[1]}]}'
now() { date +%s%N; }

expect quick 0 'y float32\[1\]: 4' -- "$gpux" run "$tmp/slow" --input n=3 --input v=1

# signal SIG WANT: a long run gets SIG after 1 s and must be gone within 3 s, exiting WANT
signal() {
  "$gpux" run "$tmp/slow" --input n=1000000000000 --input v=1 >"$tmp/out" 2>"$tmp/err" &
  local pid=$! t0 rc
  sleep 1
  t0=$(now)
  kill -"$1" "$pid"
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  local ms=$(( ($(now) - t0) / 1000000 ))
  kill -KILL "$pid" 2>/dev/null
  wait "$pid"; rc=$?
  expect "run-$1-bound" 0 'ok' -- bash -c "[ $ms -lt 3000 ] && echo ok || echo 'still running after $ms ms'"
  expect "run-$1-status" 0 "^$2\$" -- echo "$rc"
  expect "run-$1-message" 0 "^gpux: error: SIG$1: .*Loop.*interrupted\$" -- cat "$tmp/err"
}
signal TERM 143
signal INT 130

# start ARGS...: a server on a free port; sets url and pid
start() {
  "$gpux" serve "$tmp/slow" --port 0 --backend cpu "$@" 2>"$tmp/serve.log" &
  pid=$!
  for _ in $(seq 150); do grep -q '^ready: ' "$tmp/serve.log" && break; sleep 0.1; done
  url=http://$(grep -o '127\.0\.0\.1:[0-9]*' "$tmp/serve.log" | head -1)
}
infer() { curl -s -m 20 -o "$tmp/body" -w '%{http_code}' -d "$1" "$url/v2/models/slow/infer"; }

# a request past its deadline cancels its run: the next request to the same model answers at once
start --timeout 1
expect deadline 0 '^504$' -- infer "$big"
t0=$(now)
expect after-deadline 0 '^200$' -- infer "$small"
expect after-deadline-fast 0 ok -- bash -c "[ $(( ($(now) - t0) / 1000000 )) -lt 2000 ] && echo ok"
expect after-deadline-answer 0 '"data":\[4\]' -- cat "$tmp/body"
expect health 0 '"ready":true' -- curl -s "$url/health"
# SIGTERM with a long run in flight: the server drains, and the run ends at its 1 s deadline
infer "$big" >/dev/null &
sleep 0.3
t0=$(now)
kill -TERM "$pid"
wait "$pid"; rc=$?
expect term-drains 0 ok -- bash -c "[ $(( ($(now) - t0) / 1000000 )) -lt 4000 ] && echo ok"
expect term-status 0 '^0$' -- echo "$rc"
wait

# a long deadline: the first SIGTERM drains, the second cancels the run
start --timeout 600
infer "$big" >/dev/null &
cpid=$!
sleep 0.5
kill -TERM "$pid"
sleep 0.5
expect first-term-drains 0 ok -- bash -c "kill -0 $pid && echo ok"
t0=$(now)
kill -TERM "$pid"
for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
expect second-term-cancels 0 ok -- bash -c "[ $(( ($(now) - t0) / 1000000 )) -lt 4000 ] && echo ok"
kill -KILL "$pid" 2>/dev/null
wait "$pid"
wait "$cpid"
expect second-term-log 0 'a second signal cancels them' -- cat "$tmp/serve.log"
finish
