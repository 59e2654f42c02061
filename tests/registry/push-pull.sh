#!/usr/bin/env bash
# gpux push / pull / login against a real registry (Debian's docker-registry, started here on a
# free loopback port): build -> push -> rm -> pull -> run gives the same output and digest; the
# pushed manifest follows the OCI image-spec; a second push uploads nothing; chunked uploads; pull
# by digest; a pull killed mid-transfer resumes; a tampered blob in the registry's storage is
# rejected and never enters the store; htpasswd basic auth: no login / wrong password give one
# clear error, login stores 0600 credentials, ~/.docker/config.json is honoured, secrets are
# never printed; plain HTTP to a non-loopback name needs --insecure.
#   tests/registry/push-pull.sh GPUX
source "$(dirname "$0")/../app/lib.sh" "$1"
source "$(dirname "$0")/lib-registry.sh"
need docker-registry htpasswd convert python3 curl

start_registry open 127.0.0.1
reg=127.0.0.1:$reg_port open_dir=$reg_dir
render "Hello world 2024" "$tmp/line.png"

# build -> push
expect build 0 '^Built td:v1 ' -- "$gpux" build -q --allow-outside -t td:v1 "$root/examples/text-direction"
want_out=$("$gpux" run td:v1 --input "$tmp/line.png")
digest=$("$gpux" list --json | grep -o 'sha256:[0-9a-f]*' | head -1)
expect push 0 "^Pushed $reg/team/td:v1.*digest +$digest.*2 uploaded" -- bash -c "'$gpux' push td:v1 $reg/team/td:v1 2>/dev/null | tr '\n' ' '"
expect push-progress 0 '^push: ch_ppocr_mobile_v2.0_cls_infer.onnx: uploading 579.0 kB$' -- "$gpux" push td:v1 $reg/team/progress:v1
expect push-again 0 '"uploaded_bytes":0,"blobs_uploaded":0,"blobs_skipped":2' -- "$gpux" push -q --json td:v1 $reg/team/td:v1
expect push-again-text 0 'already in the registry' -- "$gpux" push td:v1 $reg/team/td:v1
# the registry itself: the manifest is a valid OCI image manifest of a gpux artifact
curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json' -D "$tmp/headers" "http://$reg/v2/team/td/manifests/v1" > "$tmp/manifest.json"
expect registry-digest 0 "$digest" -- grep -i '^docker-content-digest:' "$tmp/headers"
expect manifest-same-bytes 0 "^$digest\$" -- bash -c "echo sha256:\$(sha256sum < '$tmp/manifest.json' | cut -d' ' -f1)"
expect oci-manifest 0 '^valid$' -- python3 "$(dirname "$0")/check-manifest.py" "$tmp/manifest.json" "http://$reg/v2/team/td"
# chunked upload (POST + PATCH... + PUT) into a repository that has none of the blobs
expect push-chunked 0 '"blobs_uploaded":2' -- "$gpux" push -q --json --chunk-size 100000 td:v1 $reg/other/td:chunked
expect chunked-patches 0 '^[6-9]$' -- bash -c "grep -c 'PATCH /v2/other/td/blobs/uploads' '$open_dir/log'"

# rm -> pull -> run: same output, same digest; works offline (the registry is not needed)
expect rm 0 'Removed td:v1' -- "$gpux" rm td:v1
expect pull 0 "^Pulled $reg/team/td:v1 .*digest +$digest .*2 downloaded" -- bash -c "'$gpux' pull $reg/team/td:v1 2>/dev/null | tr '\n' ' '"
expect pulled-list 0 "$reg/team/td +v1 +${digest:7:12}" -- "$gpux" list
expect run-pulled 0 "^$want_out\$" -- "$gpux" run $reg/team/td:v1 --input "$tmp/line.png"
expect pull-chunked 0 "\"digest\":\"$digest\"" -- "$gpux" pull -q --json $reg/other/td:chunked
expect pull-by-digest 0 "\"reference\":\"$reg/team/td:sha256-${digest:7}\".*\"blobs_present\":2" -- "$gpux" pull -q --json "$reg/team/td@$digest"
expect list-digest-tag 0 "^$reg/team/td +sha256-${digest:7:4}~ +${digest:7:12} " -- bash -c "'$gpux' list | grep 'sha256-'"
expect_error pull-missing "$reg/team/nope:v1 is not in the registry .*MANIFEST_UNKNOWN" -- "$gpux" pull -q $reg/team/nope:v1
expect_error pull-unknown-digest "is not in the registry" -- "$gpux" pull -q "$reg/team/td@sha256:$(printf '0%.0s' $(seq 64))"

# run and serve of a registry's image that is not in the store pull it first, as docker run does
export GPUX_HOME=$tmp/home-autopull
expect run-pulls 0 "^$want_out\$" -- bash -c "'$gpux' run $reg/team/td:v1 --input '$tmp/line.png' 2>/dev/null"
expect run-pulls-said 0 "is not in the store; pulling it" -- bash -c "'$gpux' rm $reg/team/td:v1 >/dev/null 2>&1; '$gpux' run $reg/team/td:v1 --input '$tmp/line.png' 2>&1 >/dev/null"
expect run-missing-remote 3 "^gpux: error: $reg/team/nope:v1 is not in the registry" -- bash -c "'$gpux' run $reg/team/nope:v1 --input '$tmp/line.png' 2>&1 | tail -1; exit \${PIPESTATUS[0]}"
expect serve-pulls 0 "^autopull started: http://" -- bash -c "'$gpux' serve -d $reg/other/td:chunked --name autopull --port 0 2>/dev/null"
"$gpux" stop autopull >/dev/null 2>&1

# a pull killed mid-transfer resumes from what it had
export GPUX_HOME=$tmp/home-resume
bash -c "timeout -s KILL 2 '$gpux' pull -q --limit-rate 100000 $reg/team/td:v1; true" >/dev/null 2>&1
expect killed 0 '^[1-9][0-9]*$' -- bash -c "cat '$GPUX_HOME'/tmp/pull-*.part | wc -c"
expect resumed 0 '"downloaded_bytes":([0-9]{1,5}|[1-4][0-9]{5}),"blobs_downloaded":[12]' -- "$gpux" pull -q --json $reg/team/td:v1
expect resumed-runs 0 "^$want_out\$" -- "$gpux" run $reg/team/td:v1 --input "$tmp/line.png"
expect no-parts 0 '^0$' -- bash -c "ls '$GPUX_HOME/tmp' | grep -c part || true"

# a blob tampered with in the registry's storage is rejected and never stored
export GPUX_HOME=$tmp/home-tamper
layer=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"][7:])' "$tmp/manifest.json")
data=$open_dir/data/docker/registry/v2/blobs/sha256/${layer:0:2}/$layer/data
cp "$data" "$tmp/layer.orig"
printf 'XXXXXXXX' | dd of="$data" bs=1 seek=1000 conv=notrunc status=none
expect_error tampered "ch_ppocr_mobile_v2.0_cls_infer.onnx is corrupt: it should be sha256:${layer:0:12} but its content hashes to" -- \
  "$gpux" pull -q $reg/team/td:v1
expect tampered-not-stored 0 '^0$' -- bash -c "ls '$GPUX_HOME/blobs/sha256' | wc -l" # nor the config fetched before it
expect tampered-no-image 0 '^NAME' -- bash -c "'$gpux' list | wc -l | grep -q '^1$' && '$gpux' list"
cp "$tmp/layer.orig" "$data"
expect untampered 0 '"blobs_downloaded":2,"blobs_present":0' -- "$gpux" pull -q --json $reg/team/td:v1

# htpasswd basic auth on 127.0.0.2 (not a name that may use plain HTTP without --insecure)
htpasswd -Bbn alice 's3cret-Pa55' > "$tmp/htpasswd"
start_registry auth 127.0.0.2 "auth:
  htpasswd:
    realm: gpux-test
    path: $tmp/htpasswd"
areg=127.0.0.2:$reg_port
export GPUX_HOME=$tmp/home
expect_error https-only "$areg: .*(SSL|TLS|wrong version)" -- "$gpux" push -q $reg/team/td:v1 $areg/team/td:v1
expect_error no-login "$areg requires a login: run gpux login $areg" -- "$gpux" push -q --insecure $reg/team/td:v1 $areg/team/td:v1
expect_error wrong-password "$areg: authentication failed: wrong username or password for user 'alice'" -- \
  bash -c "echo wrong-guess | '$gpux' login --insecure $areg -u alice --password-stdin"
expect no-secret-wrong 0 '^0$' -- bash -c "echo wrong-guess | '$gpux' login --insecure $areg -u alice --password-stdin 2>&1 | grep -c wrong-guess || true"
expect_error wrong-password-push "wrong username or password" -- \
  bash -c "echo nope | '$gpux' push -q --insecure -u alice --password-stdin $reg/team/td:v1 $areg/team/td:v1"
expect login 0 "^Login succeeded for $areg" -- bash -c "echo 's3cret-Pa55' | '$gpux' login --insecure $areg -u alice --password-stdin"
expect auth-file-mode 0 '^600$' -- stat -c %a "$GPUX_HOME/auth.json"
expect auth-push 0 "^Pushed $areg/team/td:v1" -- "$gpux" push --insecure $reg/team/td:v1 $areg/team/td:v1
expect no-secret-anywhere 0 '^0$' -- bash -c "'$gpux' push --insecure $reg/team/td:v1 $areg/team/td:v1 2>&1 | grep -c 's3cret' || true"
expect logout 0 "^Removed the credentials for $areg\$" -- "$gpux" logout $areg
expect_error logged-out "$areg requires a login" -- "$gpux" push -q --insecure $reg/team/td:v1 $areg/team/td:v1
expect_error logout-again "not logged in to $areg" -- "$gpux" logout $areg
expect_error login-no-tty "needs --password-stdin when stdin is not a terminal" -- bash -c "'$gpux' login --insecure $areg -u alice < /dev/null"
# on a terminal gpux asks for the user and, without echo, the password
if command -v script >/dev/null; then
  expect login-prompt 0 "^prompts=2 echoed=0 Login succeeded" -- bash -c "(sleep 1; printf 'alice\n'; sleep 2; printf 's3cret-Pa55\n') | script -qec \"'$gpux' login --insecure $areg\" /dev/null > '$tmp/tty.out'; echo -n prompts=\$(grep -o 'Username: \\|Password: ' '$tmp/tty.out' | wc -l) echoed=\$(grep -c s3cret '$tmp/tty.out') ''; grep -o 'Login succeeded' '$tmp/tty.out'"
fi
# credentials from a docker config.json (base64 user:password under auths)
export GPUX_HOME=$tmp/home-docker DOCKER_CONFIG=$tmp/docker
mkdir -p "$DOCKER_CONFIG"
printf '{"auths":{"%s":{"auth":"%s"}}}' "$areg" "$(printf 'alice:s3cret-Pa55' | base64)" > "$DOCKER_CONFIG/config.json"
expect docker-config-pull 0 "\"digest\":\"$digest\"" -- "$gpux" pull -q --json --insecure $areg/team/td:v1
expect docker-config-run 0 "^$want_out\$" -- "$gpux" run $areg/team/td:v1 --input "$tmp/line.png"
finish
