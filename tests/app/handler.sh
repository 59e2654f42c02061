#!/usr/bin/env bash
# GPUXfile `handler:` end to end: the Python example (examples/text-direction-python) built and
# run; a handler around a tiny model (tests/app/handler/scale.py) whose preprocess/postprocess
# run in a worker process: numbers through both, and a handler that hangs, crashes, exits or
# returns garbage gives one error line naming the file (and line) while gpux stays well; the
# worker has no network and a read-only file system; bad handler keys are one-line errors.
#   tests/app/handler.sh GPUX
source "$(dirname "$0")/lib.sh" "$1"
need node convert cc /usr/bin/python3
here=$root/tests/app/handler
node "$root/tests/app/make-models.mjs" "$tmp" >/dev/null

# the Python example: business rules around text-direction's scores
expect build-python 0 '^Built text-direction-python:1.0 ' -- "$gpux" build -q --allow-outside "$root/examples/text-direction-python"
convert "$root/examples/line.png" -rotate 180 "$tmp/flipped.png"
expect run-python 0 '^\{"angle":0,"confidence":0.99[0-9]*,"action":"keep"\}$' -- "$gpux" run text-direction-python --input "$root/examples/line.png"
expect run-python-flipped 0 '"result":\{"angle":180,"confidence":[01][.0-9]*,"action":"rotate"\}' -- "$gpux" run text-direction-python --input "$tmp/flipped.png" --json
expect inspect-handler 0 '^handler: handler.py \(timeout 5s; postprocess\)$' -- bash -c "'$gpux' inspect text-direction-python | grep '^handler:'"
expect inspect-requirements 0 '^  requirements: numpy$' -- bash -c "'$gpux' inspect text-direction-python | grep 'requirements:'"
expect inspect-layer 0 'handler\.py +text/x-python' -- "$gpux" inspect text-direction-python
expect inspect-json 0 '"handler":\{"file":"handler.py","requirements":\["numpy"\],"timeout":5' -- bash -c "'$gpux' inspect --json text-direction-python | tr -d ' \t\n'"
expect trusted-on-build 0 "^sha256:[0-9a-f]{64} text-direction-python:1.0\$" -- head -1 "$GPUX_HOME/trusted-handlers"

# preprocess and postprocess on a tiny model, as a folder and as a built image
mkdir -p "$tmp/scale"
cp "$tmp/scale.onnx" "$here/scale.py" "$tmp/scale/"
cat > "$tmp/scale/GPUXfile" <<YAML
name: scale
model: ./scale.onnx
handler:
  file: ./scale.py
  timeout: 2s
  example: "1 2 3 4"
YAML
expect run-folder 0 '^\{"sum":100,"max":40,"request":"1 2 3 4"\}$' -- "$gpux" run "$tmp/scale" --input "1 2 3 4"
expect build-scale 0 '^Built scale:latest ' -- "$gpux" build -q "$tmp/scale"
expect run-image 0 '"data":\[5,5,5,5\].*"result":\{"sum":20,"max":5,"request":"0.5 0.5 0.5 0.5"\}' -- "$gpux" run scale --input "0.5 0.5 0.5 0.5" --json
# user code that fails: one line naming the file (and, for Python, the line); exit status 4
expect_error hang "handler: |scale.py: preprocess took longer than handler.timeout \(2s\); the worker was killed" -- "$gpux" run scale --input hang
expect_error garbage "scale.py:9: preprocess returned list, expected a dict of input names to numpy arrays$" -- "$gpux" run scale --input garbage
expect_error strings "scale.py:9: preprocess returned 'x' of dtype <U1, expected numbers or booleans$" -- "$gpux" run scale --input strings
expect_error raise "scale.py:19: in preprocess: ZeroDivisionError: division by zero$" -- "$gpux" run scale --input raise
expect_error unknown "scale.py: preprocess returned 'y', which is not an input of the model \(inputs: x\)$" -- "$gpux" run scale --input unknown
expect_error exit "scale.py: preprocess: the worker exited with status 3$" -- "$gpux" run scale --input exit
expect_error segfault "scale.py: postprocess: the worker crashed \(signal 11, Segmentation fault\)$" -- "$gpux" run scale --input "7 1 1 1"
expect_error not-json "scale.py:27: postprocess returned a value that is not JSON: object is not JSON-able$" -- "$gpux" run scale --input "8 1 1 1"
expect exit-status 4 '' -- "$gpux" run scale --input garbage
# Ctrl-C while a handler runs: the worker is killed, gpux ends at once with one line
mkdir -p "$tmp/slow"
cp "$tmp/scale.onnx" "$here/scale.py" "$tmp/slow/"
printf 'model: ./scale.onnx\nhandler: {file: ./scale.py, timeout: 60s}\n' > "$tmp/slow/GPUXfile"
expect interrupt 130 '^gpux: error: SIGINT: scale.py: (preprocess|loading) interrupted; the worker was killed$' -- bash -c "'$gpux' run '$tmp/slow' --input hang & p=\$!; sleep 2; kill -INT \$p; wait \$p"
# gpux killed outright while its handler loops: the worker notices and ends within a second or two
"$gpux" run "$tmp/slow" --input hang >/dev/null 2>&1 &
gpid=$!
sleep 2
kill -9 $gpid; wait $gpid 2>/dev/null
sleep 2.5
expect orphan-ends 1 '' -- pgrep -f "handler-runner.py .*$tmp/slow/scale.py"
# the sandbox: no network, nothing writable (Linux namespaces; see docs/handlers.md)
expect sandbox 0 '^\{"network":"Network is unreachable","write":"Read-only file system"\}$' -- "$gpux" run scale --input "9 1 1 1"
# gpux serve with the Python handler: a request that hangs or crashes its worker is answered 500
# with its one line while the requests around it are answered; the next request gets a new worker
expect serve 0 '^hs started: http://' -- "$gpux" serve -d scale --port 0 --name hs
port=$("$gpux" ps --json | grep -o '"port":[0-9]*' | head -1 | cut -d: -f2)
post() { curl -s -w ' %{http_code}' "localhost:$port/predict" "$@"; }
post -d '{"input": "hang"}' > "$tmp/hang.out" &
for i in 1 2 3; do post -d "{\"input\": \"$i 0 0 0\"}" > "$tmp/ok$i.out" & done
post -d '{"input": "7 1 1 1"}' > "$tmp/crash.out" &
wait
expect serve-hang 0 '^\{"error":"scale.py: preprocess took longer than handler.timeout \(2s\); the worker was killed"\} 500$' -- cat "$tmp/hang.out"
expect serve-crash 0 '^\{"error":"scale.py: postprocess: the worker crashed \(signal 11, Segmentation fault\)"\} 500$' -- cat "$tmp/crash.out"
for i in 1 2 3; do
  expect serve-ok$i 0 "\"result\":\\{\"sum\":${i}0,\"max\":${i}0,\"request\":\"$i 0 0 0\"\\}.* 200\$" -- cat "$tmp/ok$i.out"
done
expect serve-garbage 0 '^\{"error":"scale.py:9: preprocess returned list, expected a dict of input names to numpy arrays"\} 500$' -- post -d '{"input": "garbage"}'
expect serve-after 0 '"result":\{"sum":40,"max":10,"request":"1 1 1 1"\}.* 200$' -- post -H 'Content-Type: text/plain' --data-binary '1 1 1 1'
expect serve-health 0 '200$' -- curl -s -o /dev/null -w '%{http_code}' "localhost:$port/v2/health/ready"
"$gpux" stop hs >/dev/null 2>&1
expect no-workers-left 1 '' -- pgrep -f "handler-runner.py .*/scale.py"

# a build whose handler.example fails is a failed build naming the key
sed -i 's/example: "1 2 3 4"/example: garbage/' "$tmp/scale/GPUXfile"
expect_error build-example "GPUXfile:[0-9]+: key 'handler.example': scale.py:9: preprocess returned list" -- "$gpux" build -q "$tmp/scale"

# the C example, and a shared-library handler around the tiny model
mkdir -p "$tmp/tdc" "$tmp/cscale"
sed "s|\.\./\.\./deps/|$root/deps/|; s|\.\./line.png|$root/examples/line.png|" "$root/examples/text-direction-c/GPUXfile" > "$tmp/tdc/GPUXfile"
cc -shared -fPIC -O2 -Wall -Werror -I "$root/include" "$root/examples/text-direction-c/handler.c" -o "$tmp/tdc/handler.so"
cc -shared -fPIC -O2 -Wall -Werror -I "$root/include" "$here/scale.c" -o "$tmp/cscale/scale.so"
expect build-c 0 '^Built text-direction-c:1.0 ' -- "$gpux" build -q --allow-outside "$tmp/tdc"
expect run-c 0 '^\{"angle":0,"confidence":0.99[0-9]*,"action":"keep"\}$' -- "$gpux" run text-direction-c --input "$root/examples/line.png"
expect serve-c 0 '^tdc started: http://' -- "$gpux" serve -d text-direction-c --port 0 --name tdc
port=$("$gpux" ps --json | grep -o '"port":[0-9]*' | head -1 | cut -d: -f2)
expect serve-c-predict 0 '"result":\{"angle":0,"confidence":0.99[0-9]*,"action":"keep"\}' -- curl -s "localhost:$port/predict" -H 'Content-Type: image/png' --data-binary "@$root/examples/line.png"
"$gpux" stop tdc >/dev/null 2>&1
expect run-c-flipped 0 '^\{"angle":180,"confidence":[01][.0-9]*,"action":"rotate"\}$' -- "$gpux" run text-direction-c --input "$tmp/flipped.png"
expect inspect-c 0 'handler\.so +application/vnd\.gpux\.handler\.native' -- "$gpux" inspect text-direction-c
cp "$tmp/scale.onnx" "$tmp/cscale/"
printf 'name: cscale\nmodel: ./scale.onnx\nhandler: {file: ./scale.so, timeout: 1s}\n' > "$tmp/cscale/GPUXfile"
expect c-run 0 '^\{"sum":100\}$' -- "$gpux" run "$tmp/cscale" --input "1 2 3 4"
expect_error c-crash "scale.so: preprocess: the worker crashed \(signal 11, Segmentation fault\)$" -- "$gpux" run "$tmp/cscale" --input crash
expect_error c-hang "scale.so: preprocess took longer than handler.timeout \(1s\); the worker was killed$" -- "$gpux" run "$tmp/cscale" --input hang
expect_error c-fail "scale.so: preprocess: cannot read 'fail'$" -- "$gpux" run "$tmp/cscale" --input fail
expect_error c-garbage "scale.so: preprocess 'x' has nbytes 3, its shape needs 16$" -- "$gpux" run "$tmp/cscale" --input garbage
expect_error c-not-json "scale.so: postprocess returned text that is not JSON$" -- "$gpux" run "$tmp/cscale" --input "100 20 3 0"
printf 'int x;\n' > "$tmp/cscale/empty.c"
cc -shared -fPIC -o "$tmp/cscale/empty.so" "$tmp/cscale/empty.c"
printf 'model: ./scale.onnx\nhandler: ./empty.so\n' > "$tmp/cscale/GPUXfile"
expect_error c-no-table "empty.so: exports no gpux_handler_v1 table" -- "$gpux" run "$tmp/cscale" --input 1

# bad handler keys
printf 'model: ./scale.onnx\nhandler: ./scale.txt\n' > "$tmp/scale/GPUXfile"
expect_error bad-kind "GPUXfile:2: key 'handler': './scale.txt' is neither a Python file \(.py\) nor a shared library \(.so\)" -- "$gpux" run "$tmp/scale" --input 1
printf 'model: ./scale.onnx\nhandler: {file: ./missing.py}\n' > "$tmp/scale/GPUXfile"
expect_error missing-file "GPUXfile:2: key 'handler': .*missing.py: No such file or directory" -- "$gpux" run "$tmp/scale" --input 1
printf 'model: ./scale.onnx\nhandler: {file: ./scale.py, timout: 3}\n' > "$tmp/scale/GPUXfile"
expect_error unknown-key "key 'handler.timout': unknown key \(did you mean 'timeout'\?\)" -- "$gpux" run "$tmp/scale" --input 1
printf 'import numpy\ndef preprocess(request)\n    return {}\n' > "$tmp/scale/broken.py"
printf 'model: ./scale.onnx\nhandler: ./broken.py\n' > "$tmp/scale/GPUXfile"
expect_error syntax-error "broken.py:2: while loading: SyntaxError: expected ':'" -- "$gpux" run "$tmp/scale" --input 1

finish
