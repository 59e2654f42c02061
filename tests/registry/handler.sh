#!/usr/bin/env bash
# The trust rule for handlers against a real registry (Debian's docker-registry on loopback): an
# image with a Python handler, built here (so trusted), pushed and pulled into another GPUX_HOME
# is refused by run and serve with one line saying how to allow it; --allow-handler runs it once;
# its digest in $GPUX_HOME/trusted-handlers trusts it for good; a local build stays trusted.
#   tests/registry/handler.sh GPUX
source "$(dirname "$0")/../app/lib.sh" "$1"
source "$(dirname "$0")/lib-registry.sh"
need docker-registry curl node /usr/bin/python3

start_registry open 127.0.0.1
reg=127.0.0.1:$reg_port
node "$root/tests/app/make-models.mjs" "$tmp" >/dev/null
mkdir -p "$tmp/scale"
cp "$tmp/scale.onnx" "$root/tests/app/handler/scale.py" "$tmp/scale/"
printf 'name: scale\nmodel: ./scale.onnx\nhandler: ./scale.py\n' > "$tmp/scale/GPUXfile"

expect build 0 '^Built scale:latest ' -- "$gpux" build -q "$tmp/scale"
expect run-local 0 '^\{"sum":100,"max":40,"request":"1 2 3 4"\}$' -- "$gpux" run scale --input "1 2 3 4"
digest=$("$gpux" list --json | grep -o 'sha256:[0-9a-f]*' | head -1)
expect push 0 "^Pushed $reg/team/scale:v1" -- "$gpux" push scale $reg/team/scale:v1

# another machine, as far as gpux can tell: a fresh home that pulls the image
export GPUX_HOME=$tmp/other
expect pull 0 "^Pulled $reg/team/scale:v1$" -- "$gpux" pull -q $reg/team/scale:v1
expect_error refused "image $reg/team/scale:v1 runs handler code \(scale.py\) and was not built here; to run it, pass --allow-handler or add $digest to $tmp/other/trusted-handlers" -- "$gpux" run $reg/team/scale:v1 --input "1 2 3 4"
expect refused-status 3 '' -- "$gpux" run $reg/team/scale:v1 --input "1 2 3 4"
expect serve-refused 3 "runs handler code \(scale.py\) and was not built here" -- "$gpux" serve -d $reg/team/scale:v1 --port 0 --name refused
expect allowed 0 '^\{"sum":100,"max":40,"request":"1 2 3 4"\}$' -- "$gpux" run --allow-handler $reg/team/scale:v1 --input "1 2 3 4"
expect still-refused 3 'was not built here' -- "$gpux" run $reg/team/scale:v1 --input "1 2 3 4"
expect serve-allowed 0 '^allowed started: http://' -- "$gpux" serve -d --allow-handler $reg/team/scale:v1 --port 0 --name allowed
port=$("$gpux" ps --json | grep -o '"port":[0-9]*' | head -1 | cut -d: -f2)
expect serve-answers 0 '"result":\{"sum":100,"max":40,"request":"1 2 3 4"\}' -- curl -s "localhost:$port/predict" -d '{"input": "1 2 3 4"}'
"$gpux" stop allowed >/dev/null 2>&1
# the trust list: the digest (with a comment) trusts the image; another digest does not
printf '# images whose handler may run\nsha256:%064d other\n' 0 > "$GPUX_HOME/trusted-handlers"
expect other-digest 3 'was not built here' -- "$gpux" run $reg/team/scale:v1 --input "1 2 3 4"
echo "$digest pulled from $reg" >> "$GPUX_HOME/trusted-handlers"
expect trusted 0 '^\{"sum":100,"max":40,"request":"1 2 3 4"\}$' -- "$gpux" run $reg/team/scale:v1 --input "1 2 3 4"
# run of a registry's image not in the store pulls it first, and the rule still holds
export GPUX_HOME=$tmp/third
expect autopull-refused 3 'was not built here' -- "$gpux" run $reg/team/scale:v1 --input "1 2 3 4"

finish
