#!/usr/bin/env bash
# run.sh — the "models" test: real pretrained models (PaddleOCR v4 det/rec/cls, openWakeWord,
# Silero VAD) and int8 models quantized as ONNX Runtime's tool does (quant-models.mjs) run by
# gpux's CPU backend and compared with ONNX Runtime's CPU outputs on the same
# inputs. Makes the test-case folders with node (tests/models/make-cases.mjs, skipped when they
# are up to date), then runs `gpux verify` on them; fails when any case fails or is skipped, or
# when an int8 case (exact.txt) differs at all or, on WebGPU, runs any node on the CPU; then
# checks `gpux bench --profile` on a tiny GPT-style decoder and, on WebGPU, its plan count.
# Each case runs twice in its session: the second run writes its intermediates where the memory
# plan the first one made puts them, and is compared as well.
# The float16 models (cases-fp16.txt) are compared with a float16 tolerance (rtol 1e-2, atol
# 5e-3): ONNX Runtime's CPU EP computes most of them in float32 (it inserts casts around ops it
# has no float16 kernel for) while gpux rounds every float16 node's result to float16 (11
# significant bits), so outputs differ by a few float16 units of the intermediates' magnitude
# (measured on lavapipe and the CPU: worst abs 0.0051 at -1.26, and 0.0027 at 0.075 where a
# residual Add cancels values near 1). On WebGPU they also run with --no-fallback: every float16
# node must run on the GPU.
#
#   tests/models/run.sh GPUX_BIN CASES_DIR [BACKEND]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
gpux=${1:?usage: run.sh GPUX_BIN CASES_DIR [BACKEND]}
cases=${2:?usage: run.sh GPUX_BIN CASES_DIR [BACKEND]}
backend=${3:-cpu}
rtol=${GPUX_MODELS_RTOL:-1e-3}
atol=${GPUX_MODELS_ATOL:-1e-4}
rtol16=${GPUX_MODELS_FP16_RTOL:-1e-2}
atol16=${GPUX_MODELS_FP16_ATOL:-5e-3}

command -v node >/dev/null || { echo "run.sh: error: node not found (run scripts/install-deps.sh)" >&2; exit 3; }
node "$here/make-cases.mjs" --keep "$cases"

dirs=()
while IFS= read -r c; do [ -n "$c" ] && dirs+=("$cases/$c"); done < "$cases/cases.txt"
[ ${#dirs[@]} -gt 0 ] || { echo "run.sh: error: no cases in $cases/cases.txt" >&2; exit 3; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
"$gpux" verify --backend "$backend" --runs 2 --rtol "$rtol" --atol "$atol" "${dirs[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e

summary=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 || true)
passed=$(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+' || echo 0)
failed=$(grep -oE '[0-9]+ failed' <<<"$summary" | grep -oE '[0-9]+' || echo 0)
skipped=$(grep -oE '[0-9]+ skipped' <<<"$summary" | grep -oE '[0-9]+' || echo 0)

if [ "$rc" -ne 0 ]; then
  echo "run.sh: FAILED: gpux verify exited with $rc" >&2; exit 1
fi
if [ -z "$summary" ]; then
  echo "run.sh: FAILED: gpux verify printed no 'N passed, N failed' summary" >&2; exit 1
fi
if [ "$failed" -ne 0 ] || [ "$skipped" -ne 0 ] || [ "$passed" -ne ${#dirs[@]} ]; then
  echo "run.sh: FAILED: $passed of ${#dirs[@]} model cases passed ($failed failed, $skipped skipped)" >&2
  exit 1
fi
# the int8 models (exact.txt): outputs equal to ONNX Runtime's to the last bit, and on WebGPU
# with no node on the CPU
exact=()
while IFS= read -r c; do [ -n "$c" ] && exact+=("$cases/$c"); done < "$cases/exact.txt"
if [ ${#exact[@]} -gt 0 ]; then
  opts=(--rtol 0 --atol 0)
  [ "$backend" = webgpu ] && opts+=(--no-fallback)
  set +e
  "$gpux" verify --backend "$backend" --runs 2 "${opts[@]}" "${exact[@]}" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" -ne 0 ] || ! grep -qE "^${#exact[@]} passed, 0 failed, 0 skipped" "$log"; then
    echo "run.sh: FAILED: the int8 model cases must match exactly${opts[4]:+, with no node on the CPU}" >&2
    exit 1
  fi
fi
# the float16 models (cases-fp16.txt): float16 tolerance, and on WebGPU no node on the CPU
fp16=()
while IFS= read -r c; do [ -n "$c" ] && fp16+=("$cases/$c"); done < "$cases/cases-fp16.txt"
[ ${#fp16[@]} -gt 0 ] || { echo "run.sh: error: no cases in $cases/cases-fp16.txt" >&2; exit 3; }
opts=(--rtol "$rtol16" --atol "$atol16")
[ "$backend" = webgpu ] && opts+=(--no-fallback)
set +e
"$gpux" verify --backend "$backend" --runs 2 "${opts[@]}" "${fp16[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ] || ! grep -qE "^${#fp16[@]} passed, 0 failed, 0 skipped" "$log"; then
  echo "run.sh: FAILED: the float16 model cases must match within rtol $rtol16, atol $atol16${opts[4]:+, with no node on the CPU}" >&2
  exit 1
fi

# gpux bench --profile lists the model's op types with their times (the GPT case on this backend),
# and the graph rewrite made each layer's MatMul + bias + GELU one FusedMatMul: no Erf is left
# (the logits' MatMul by the transposed tied embedding is a FusedMatMul with transB too).
# On both backends the attention rewrite (runtime/fuse-attention.c) makes each layer's attention one
# Attention node and leaves no Softmax.
j=$("$gpux" bench --backend "$backend" --json --runs 2 --warmup 0 --profile "$cases/gpt-1x8")
if grep -q '"op":"Softmax"' <<<"$j"; then
  echo "run.sh: FAILED: gpt-1x8's attention was not fused into Attention nodes: $j" >&2
  exit 1
fi
for op in Gather FusedMatMul Attention LayerNormalization; do
  if ! grep -qE "\{\"op\":\"$op\",\"device\":\"[a-z]+\",\"count\":[1-9][0-9]*,\"total_ms\":[0-9.]+" <<<"$j"; then
    echo "run.sh: FAILED: gpux bench --profile on gpt-1x8 does not list $op: $j" >&2
    exit 1
  fi
done
if grep -qE '"op":"(Erf|Div)"' <<<"$j"; then
  echo "run.sh: FAILED: gpt-1x8's GELU was not fused: $j" >&2
  exit 1
fi
if [ "$backend" = cpu ] && grep -q '"op":"Softmax"' <<<"$j"; then
  echo "run.sh: FAILED: gpt-1x8 still runs Softmax: the attention blocks did not fuse: $j" >&2
  exit 1
fi
echo "run.sh: gpt-1x8: bench --profile lists the op types, the GELU and (on the CPU) the attention fused"

# Token ids are data, not part of a plan's key: the GPT case's two prompts (one length) run with
# one WebGPU plan (gpux bench takes the data sets in turn and reports the session's plan count).
if [ "$backend" = webgpu ]; then
  j=$("$gpux" bench --backend webgpu --json --runs 3 --warmup 0 "$cases/gpt-1x8")
  if ! grep -q -E '"data_sets":2,"plans":1[,}]' <<<"$j"; then
    echo "run.sh: FAILED: gpt-1x8's two prompts should run with one WebGPU plan: $j" >&2
    exit 1
  fi
  echo "run.sh: gpt-1x8: two prompts, one WebGPU plan"
fi
echo "run.sh: all $((${#dirs[@]} + ${#fp16[@]})) model cases match ONNX Runtime on the $backend backend"
