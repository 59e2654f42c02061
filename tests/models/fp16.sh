#!/usr/bin/env bash
# fp16.sh — the "models-webgpu-fp16" test: --precision fp16 on the WebGPU backend against the
# float32 reference outputs (ONNX Runtime's CPU EP) of the real models (PaddleOCR det/rec/cls,
# openWakeWord, Silero VAD, the GPT decoder, the float16 models) and of the wild corpus' float32
# and float16 CNN, depthwise, RNN, encoder, BERT, GPT-2 and ViT cases, with the fp16 accuracy gate
# of docs/benchmarks.md: every float output within a relative L2 error of 1e-2
# (||fp16 - reference|| / ||reference||), and the same top-1 along the last axis wherever the
# reference's winner leads by more than 1e-2 times the output's largest magnitude.
#   * Where the adapter lists shader-f16 (lavapipe does), the sessions must
#     run in fp16 for real: `gpux devices` says f16 shaders compile, bench --json says
#     "precision":"fp16", counts f16 dispatches, and the plan's device memory is at most 0.6 of
#     the fp32 plan's (weights and activations stored as float16). A silent fall back to fp32
#     there fails the test (as when gpux asked Dawn for the wrong feature number and every
#     `enable f16;` was refused).
#   * Where the adapter has no shader-f16, fp16 must fall back to fp32 and say why, and the gate
#     runs with GPUX_WEBGPU_HALF=emulate: the same kernels and the same float16 roundings of every
#     stored value, in float32 storage.
# Every case must pass with "(fp16" in its message, except those whose values overflow float16,
# which must say they went back to fp32 (melspectrogram: a power spectrum past 65504), and the
# dynamically quantized models, which stay in fp32 (their int32 sums pass float16's range). The
# statically quantized cases are left out (their exact outputs are the quantization of float
# results). Silero VAD is in: its log(|STFT| * 2^20 + 1) passes float16's range, and the values a
# Log's argument is computed from by arithmetic are held f32 (relative L2 error 0.59 before, when
# the infinities became zeros after a ReLU without reaching an output).
#
#   tests/models/fp16.sh GPUX_BIN CASES_DIR WILD_WORKDIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage="usage: fp16.sh GPUX_BIN CASES_DIR WILD_WORKDIR"
gpux=${1:?$usage}
cases=${2:?$usage}
work=${3:?$usage}
fail() { echo "fp16.sh: FAILED: $*" >&2; exit 1; }

command -v node >/dev/null || { echo "fp16.sh: error: node not found (run scripts/install-deps.sh)" >&2; exit 3; }
node "$here/make-cases.mjs" --keep "$cases" >/dev/null
stamp=$work/.unpacked-$(sha256sum "$here/wild.tar.xz" | cut -c1-16)
if [ ! -f "$stamp" ]; then
  rm -rf "$work" && mkdir -p "$work"
  tar xJf "$here/wild.tar.xz" -C "$work"
  touch "$stamp"
fi

# Real f16 or not: what the adapter lists, and what a session on it says.
unset GPUX_WEBGPU_HALF
devs=$("$gpux" devices --json)
j32=$("$gpux" bench --backend webgpu --json --runs 1 --warmup 0 "$cases/cls-48x192")
j16=$("$gpux" bench --backend webgpu --precision fp16 --json --runs 1 --warmup 0 "$cases/cls-48x192")
num() { grep -oE "\"$1\":[0-9]+" <<<"$2" | head -1 | cut -d: -f2; }
if grep -q '"shader_f16": true' <<<"$devs"; then
  grep -q '"f16_shaders": true' <<<"$devs" ||
    fail "the adapter lists shader-f16 but f16 shaders do not compile: $(grep -oE '"f16_shaders_note": "[^"]*"' <<<"$devs")"
  grep -q '"precision":"fp16"' <<<"$j16" || fail "the adapter has f16 shaders but fp16 did not run in float16: $j16"
fi
if grep -q '"precision":"fp16"' <<<"$j16"; then
  mem32=$(num device_memory "$j32") mem16=$(num device_memory "$j16") disp=$(num f16_dispatches "$j16")
  [ "${disp:-0}" -gt 0 ] || fail "fp16 ran no f16 dispatch: $j16"
  [ $((mem16 * 10)) -le $((mem32 * 6)) ] || fail "fp16 device memory $mem16 is not at most 0.6 of fp32's $mem32"
  echo "fp16.sh: f16 shaders: $disp f16 dispatches, device memory $mem16 bytes against $mem32 in fp32"
else
  grep -q '"precision":"fp32","precision_note":"[^"]\+"' <<<"$j16" || fail "fp16 without f16 shaders must say fp32 and why: $j16"
  echo "fp16.sh: no f16 shaders here ($(grep -oE '"precision_note":"[^"]*"' <<<"$j16")): the gate runs emulated"
  export GPUX_WEBGPU_HALF=emulate
  j16=$("$gpux" bench --backend webgpu --precision fp16 --json --runs 1 --warmup 0 "$cases/cls-48x192")
  grep -q '"precision":"fp16"' <<<"$j16" || fail "GPUX_WEBGPU_HALF=emulate did not give fp16: $j16"
  [ "$(num f16_dispatches "$j16")" -gt 0 ] || fail "emulated fp16 ran no f16 dispatch: $j16"
fi
# the CPU backend says it computes in float32
v=$("$gpux" verify --backend cpu --precision fp16 --json "$cases/cls-48x192")
grep -q 'on cpu (fp32: the CPU backend computes in float32)' <<<"$v" || fail "fp16 on the CPU backend must say fp32: $v"

dirs=()
while IFS= read -r c; do
  case $c in qdq-*|qlinear-*|"") continue ;; esac
  dirs+=("$cases/$c")
done < <(cat "$cases/cases.txt" "$cases/cases-fp16.txt")
while IFS=$'\t' read -r c _ _ dtype _; do
  case $dtype in float32|float16) dirs+=("$work/wild/$c") ;; esac
done < "$work/wild/cases.tsv"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
"$gpux" verify --backend webgpu --precision fp16 --l2 1e-2 --atol-scale 1e-2 --top1 --timeout 900 --json "${dirs[@]}" > "$log" 2>&1
set -e
bad=0
for d in "${dirs[@]}"; do
  name=$(basename "$d")
  line=$(grep -F "\"case\": \"$name\"," "$log" || true)
  case $name in
    melspectrogram-*) want='"status": "PASS", "message": "[^"]*[(]fp32: float16 overflowed' ;;
    dynconv-*|dynmatmul-*) want='"status": "PASS", "message": "[^"]*[(]fp32: a quantized model' ;;
    *) want='"status": "PASS", "message": "[^"]*[(]fp16' ;;
  esac
  if ! grep -qE "$want" <<<"$line"; then
    echo "fp16.sh: $name: ${line:-no result}" >&2
    bad=$((bad + 1))
  fi
done
[ "$bad" -eq 0 ] || fail "$bad of ${#dirs[@]} cases are not within the fp16 gate (or did not run in fp16)"
echo "fp16.sh: all ${#dirs[@]} cases within the fp16 gate (relative L2 error <= 1e-2, top-1)"
