#!/usr/bin/env bash
# CLI tests: help texts, exit codes and one-line errors of the gpux command on bad input.
#   tests/cli/run.sh GPUX
set -u
gpux=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0

# expect NAME WANT_EXIT WANT_PATTERN -- CMD...: runs CMD, checks its exit status and that its
# output (stdout+stderr) matches the extended regex
expect() {
  local name=$1 want=$2 pattern=$3
  shift 4
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" != "$want" ] || ! grep -Eq -- "$pattern" <<<"$out"; then
    echo "FAIL $name: exit $rc (want $want), output:"; sed 's/^/  /' <<<"$out" | head -20
    fails=$((fails + 1))
  else
    passes=$((passes + 1))
  fi
}

expect help 0 'usage: gpux COMMAND' -- "$gpux" --help
expect no-args 2 'usage' -- "$gpux"
expect unknown-verb 2 "gpux: error: unknown command 'frobnicate' \(see gpux --help\)" -- "$gpux" frobnicate
expect did-you-mean 2 "unknown command 'lst' \(did you mean 'list'\?" -- "$gpux" lst
expect unknown-global-option 2 "^gpux: error: unknown option '--frob'" -- "$gpux" --frob
expect version 0 "^gpux +[0-9]+\.[0-9]+\.[0-9]+" -- "$gpux" version
expect version-library 0 "^library +[0-9]+\.[0-9]+\.[0-9]+$" -- bash -c "'$gpux' version | sed -n 2p"
expect version-opsets 0 "^opsets +ai.onnx 1-[0-9]+, ai.onnx.ml 1-[0-9]+$" -- bash -c "'$gpux' version | grep '^opsets'"
expect version-json-opsets 0 '"opsets":\{"ai.onnx":\{"min":1,"max":[0-9]+\},"ai.onnx.ml":\{"min":1,"max":[0-9]+\}\}' -- "$gpux" version --json
expect version-json 0 '^\{"gpux":"[0-9.]+","library":"[0-9.]+",.*"devices":\[.*"backend":"cpu"' -- "$gpux" version --json
# the adapter's whole feature list, by name where gpux uses the feature (lavapipe has shader-f16)
if "$gpux" devices 2>/dev/null | grep -q '^webgpu'; then
  expect devices-all-features 0 'all features +.*(timestamp-query|shader-f16|subgroups)' -- "$gpux" devices
  expect devices-json-features 0 '"all_features": "[^"]*0x[0-9a-f]+.*", "subgroup_matrix_configs": "' -- "$gpux" devices --json
  # where the adapter lists shader-f16 (lavapipe does), f16 shaders compile and --precision fp16
  # runs in float16 for real: no silent fall back to fp32 (no "precision_reason"), no emulation
  if "$gpux" devices --json 2>/dev/null | grep -q '"shader_f16": true'; then
    root=$(cd "$(dirname "$0")/../.." && pwd)
    expect devices-f16-shaders 0 'f16 shaders \(fp16 precision\) +yes$' -- "$gpux" devices
    expect devices-json-f16-shaders 0 '"f16_shaders": true, "f16_shaders_note": "f16 shaders compile on ' -- "$gpux" devices --json
    expect run-fp16-is-f16 0 '"backend":"webgpu","precision":"fp16","timings"' -- env -u GPUX_WEBGPU_HALF "$gpux" run \
      "$root/examples/text-direction" --input "$root/examples/line.png" --backend webgpu --precision fp16 --json
    # the emulated form (f32 storage, every stored value, weight and input rounded to float16
    # values) gives exactly what f16 storage gives
    fp16_run="'$gpux' run '$root/examples/text-direction' --input '$root/examples/line.png' --backend webgpu --precision fp16 --json"
    expect run-fp16-emulated-same 0 '^same \[0\.9' -- bash -c "a=\$(env -u GPUX_WEBGPU_HALF $fp16_run); b=\$(GPUX_WEBGPU_HALF=emulate $fp16_run)
      grep -q '\"precision_reason\":\"emulated' <<<\"\$b\" || { echo \"not emulated: \$b\"; exit; }
      a=\$(grep -o '\"data\":[^]]*]' <<<\"\$a\"); b=\$(grep -o '\"data\":[^]]*]' <<<\"\$b\")
      [ -n \"\$a\" ] && [ \"\$a\" = \"\$b\" ] && echo \"same \${a#*:}\" || echo \"f16 \$a, emulated \$b\""
  fi
fi
expect help-verb 0 '^usage: gpux rm ' -- "$gpux" help rm
expect help-unknown-verb 2 "did you mean 'run'" -- "$gpux" help rnu
# a bad option is one line naming it, not the whole usage
expect bad-option-one-line 2 "^gpux: error: run: unknown option '--frob' \(see gpux run --help\)$" -- "$gpux" run --frob x
expect missing-value 2 "^gpux: error: build: option '--tag' needs a value" -- "$gpux" build . --tag
expect bad-short-option 2 "^gpux: error: verify: unknown option '-z'" -- "$gpux" verify -z
expect verify-help 0 'N passed, N failed, N skipped' -- "$gpux" verify --help
expect verify-no-path 2 'needs at least one PATH' -- "$gpux" verify
expect verify-missing 3 'gpux: error: /nonexistent: not a folder' -- "$gpux" verify /nonexistent
expect verify-bad-backend 2 "--backend: 'gpu9'" -- "$gpux" verify --backend gpu9 "$tmp"

# a case whose model file is garbage: FAIL naming the file, exit 1
mkdir -p "$tmp/corrupt/test_data_set_0"
head -c 300 /dev/urandom > "$tmp/corrupt/model.onnx"
expect verify-corrupt 1 'FAIL corrupt: .*corrupt/model.onnx' -- "$gpux" verify "$tmp/corrupt"
# an empty model file
mkdir -p "$tmp/empty"; : > "$tmp/empty/model.onnx"
expect verify-empty 1 'empty file' -- "$gpux" verify "$tmp/empty"

# a real case with a wrong expected output: FAIL with the worst element and where
node=$(dirname "$gpux")/node
if [ -d "$node/test_add" ]; then
  cp -r "$node/test_add" "$tmp/"
  expect verify-pass 0 '^1 passed, 0 failed, 0 skipped$' -- "$gpux" verify "$tmp/test_add"
  cp "$node/test_sub/test_data_set_0/output_0.pb" "$tmp/test_add/test_data_set_0/output_0.pb"
  expect verify-mismatch 1 "FAIL test_add: output 'sum' .*worst at \[" -- "$gpux" verify "$tmp/test_add"
  # an input with the wrong shape
  cp "$node/test_add_bcast/test_data_set_0/input_1.pb" "$tmp/test_add/test_data_set_0/input_1.pb"
  expect verify-wrong-shape 1 "input 'y'" -- "$gpux" verify "$tmp/test_add"
  expect verify-json 0 '"passed": 1' -- "$gpux" verify --json "$node/test_add"
  # --backend gpu is another name for webgpu
  expect verify-backend-gpu 0 '"message": "1 data set on webgpu"' -- "$gpux" verify --json --backend gpu "$node/test_add"
fi

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
