#!/usr/bin/env bash
# Deployment files, as far as this machine can test them: deploy/kserve's manifests against
# KServe's documented fields and each other (check-manifests.py), then gpux run with the
# ServingRuntime's own arguments (the image reference the InferenceService sets, a free port
# instead of 8080) answering the probes' paths, /metrics and a v2 infer under the model name
# KServe will use; the Dockerfile's base, entrypoint, port and Debian packages (apt-cache); and
# `docker build` only where a Docker daemon answers (`docker info`), else a SKIP line saying so.
#   tests/deploy/run.sh GPUX
source "$(dirname "$0")/../app/lib.sh" "$1"
need python3 curl node
out=$(python3 "$root/tests/deploy/check-manifests.py" "$root/deploy/kserve" 2>&1)
expect manifests 0 '^MODEL ' -- echo "$out"
[ "$(head -1 <<<"$out" | cut -d' ' -f1)" = MODEL ] || { finish; exit 1; }
model=$(sed -n 's/^MODEL //p' <<<"$out")
port=$(sed -n 's/^PORT //p' <<<"$out")
mapfile -t args < <(sed -n '/^ARGS$/,$p' <<<"$out" | tail -n +2)
mapfile -t probes < <(sed -n 's/^PROBE //p' <<<"$out")

# the manifests' image reference stands for a local image of that name (no registry here)
ref=$(printf '%s\n' "${args[@]}" | tail -1)
node "$root/tests/app/make-models.mjs" "$tmp"
mkdir -p "$tmp/app" && cp "$tmp/scale.onnx" "$tmp/app/model.onnx" && printf 'model: ./model.onnx\n' > "$tmp/app/GPUXfile"
expect build-named 0 "^Built $model:" -- "$gpux" build -q --no-smoke -t "$model:1.0" "$tmp/app"
args[$((${#args[@]} - 1))]=$model:1.0
for i in "${!args[@]}"; do   # a free port, and loopback only, on this machine
  [ "${args[$i]}" = "$port" ] && [ "${args[$((i - 1))]}" = --port ] && args[$i]=0
  [ "${args[$((i > 0 ? i - 1 : 0))]}" = --host ] && [ "$i" -gt 0 ] && args[$i]=127.0.0.1
done
"$gpux" "${args[@]}" >"$tmp/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do grep -q 'ready' "$tmp/serve.log" && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.]*:[0-9]*' "$tmp/serve.log" | head -1)
expect serve-started 0 '^http://' -- echo "${url:-no address in: $(cat "$tmp/serve.log")}"
for p in "${probes[@]}"; do
  expect "probe-$p" 0 '^200$' -- curl -s -o /dev/null -w '%{http_code}' "$url$p"
done
expect v2-infer 0 "\"model_name\":\"$model\".*\"data\":\\[10,20,30,40\\]" -- \
  curl -s "$url/v2/models/$model/infer" -d '{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}'
kill $server 2>/dev/null; wait $server 2>/dev/null
echo "(the manifests name $ref; a cluster pulls it from its registry at start, as gpux serve does)"

# the Dockerfile
df=$root/Dockerfile
expect docker-base 0 '^FROM debian:bookworm' -- grep -m1 '^FROM' "$df"
expect docker-entrypoint 0 '^ENTRYPOINT \["gpux"\]$' -- grep '^ENTRYPOINT' "$df"
expect docker-port 0 "^EXPOSE $port\$" -- grep '^EXPOSE' "$df"
expect docker-dawn-as-install-deps 0 'same' -- bash -c "grep -o 'bun-webgpu-linux-x64@[0-9.]*' '$df' | head -1 | xargs -I{} grep -q {} '$root/scripts/install-deps.sh' && echo same"
if command -v apt-cache >/dev/null && apt-cache policy libc6 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  pkgs=$(sed -n '/apt-get install/,/rm -rf/p' "$df" | tr ' \\' '\n\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' |
         grep -vE '^(apt-get|install|rm|DEBIAN_FRONTEND|bookworm-backports|y|t|no|recommends|rf|var|lib|apt|lists|RUN)$' | sort -u)
  missing=$(for p in $pkgs; do apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [0-9]' || echo "$p"; done)
  expect docker-packages-exist 0 '^none missing$' -- echo "${missing:-none missing}"
else
  echo "SKIP docker-packages-exist: apt-cache has no package lists here"
fi
if docker info >/dev/null 2>&1; then
  expect docker-build 0 '' -- docker build -q -t gpux-test "$root"
  expect docker-version 0 '^gpux ' -- docker run --rm gpux-test version
else
  echo "SKIP docker-build: no Docker daemon here ($(docker info 2>&1 | grep -m1 -iE 'cannot|error|not found' || echo 'docker is not installed'))"
fi
finish
