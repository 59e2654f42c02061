#!/usr/bin/env bash
# The bearer-token flow against a real registry: docker-registry with `auth: token` trusting a
# certificate made here, and tests/registry/token-server.py issuing RS256 tokens for user alice.
# Anonymous push is refused with one clear error; a wrong password is refused at the token
# service; after gpux login, push -> rm -> pull -> run works and tokens carry the right scopes.
#   tests/registry/token.sh GPUX
source "$(dirname "$0")/../app/lib.sh" "$1"
source "$(dirname "$0")/lib-registry.sh"
need docker-registry openssl convert python3 curl

openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=gpux-token-test \
  -keyout "$tmp/token.key" -out "$tmp/token.crt" 2>/dev/null
tport=$(free_port)
python3 "$(dirname "$0")/token-server.py" "$tport" "$tmp/token.crt" "$tmp/token.key" gpux-issuer alice 'T0ken-Pa55' "$tmp/scopes" &
reg_pids+=($!)
start_registry token 127.0.0.1 "auth:
  token:
    realm: http://127.0.0.1:$tport/token
    service: gpux-registry
    issuer: gpux-issuer
    rootcertbundle: $tmp/token.crt"
reg=127.0.0.1:$reg_port
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$tport/token" && break; sleep 0.1; done
render "Hello world 2024" "$tmp/line.png"

expect build 0 '^Built td:v1 ' -- "$gpux" build -q --allow-outside -t td:v1 "$root/examples/text-direction"
want_out=$("$gpux" run td:v1 --input "$tmp/line.png")
digest=$("$gpux" list --json | grep -o 'sha256:[0-9a-f]*' | head -1)
expect_error anonymous-push "$reg requires a login" -- "$gpux" push -q td:v1 $reg/team/td:v1
expect_error wrong-password "$reg: authentication failed: wrong username or password for user 'alice'" -- \
  bash -c "echo wrong-guess | '$gpux' login $reg -u alice --password-stdin"
expect login 0 "^Login succeeded for $reg" -- bash -c "echo 'T0ken-Pa55' | '$gpux' login $reg -u alice --password-stdin"
expect push 0 '"blobs_uploaded":2' -- "$gpux" push -q --json td:v1 $reg/team/td:v1
expect push-again 0 '"blobs_uploaded":0' -- "$gpux" push -q --json td:v1 $reg/team/td:v1
expect scope-push 0 '^alice repository:team/td:pull,push$' -- grep -m1 '^alice.*team/td:pull,push' "$tmp/scopes"
expect rm 0 'Removed td:v1' -- "$gpux" rm td:v1
expect pull 0 "\"digest\":\"$digest\"" -- "$gpux" pull -q --json $reg/team/td:v1
expect scope-pull 0 '^alice repository:team/td:pull$' -- grep -m1 '^alice.*team/td:pull$' "$tmp/scopes"
expect run 0 "^$want_out\$" -- "$gpux" run $reg/team/td:v1 --input "$tmp/line.png"
expect no-secret 0 '^0$' -- bash -c "'$gpux' push td:v1 2>&1 | grep -c T0ken || true"
finish
