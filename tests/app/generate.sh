#!/usr/bin/env bash
# Text generation end to end (`generate:` in a GPUXfile, src/app/mode-generate.c) with the tiny
# untrained decoder of examples/tiny-gpt (a KV cache in and out) and a cache-less GPT-2 of the
# wild corpus: the generated token ids must be exactly those of the same loop run with ONNX
# Runtime (tests/app/generate-ref.mjs) — greedy (with the ArgMax on the device, and with a
# repetition penalty), and sampled with a seed through temperature, top-k and top-p — on the CPU
# and on WebGPU, reading back at most 64 bytes a greedy token and one row of logits otherwise (the
# prefill too); the text streamed on
# stdout is the JSON's text; stop texts, --max-new-tokens, building and running the image, and
# one-line errors for GPUXfiles generation cannot use.
#   tests/app/generate.sh GPUX
source "$(dirname "$0")/lib.sh" "$1"
need node python3
ex=$root/examples/tiny-gpt
ref() { node "$root/tests/app/generate-ref.mjs" "$@"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); v=d['$1']; print(json.dumps(v, separators=(',',':')) if not isinstance(v, str) else v)"; }

# the prompt's ids as gpux's tokenizer makes them, for the reference
prompt_ids=$("$gpux" run "$ex" --input "Hello" --max-new-tokens 1 --json | field prompt_ids | tr -d '[]')
expect prompt-ids 0 '^72,101,[0-9]+' -- echo "$prompt_ids"

# generate RUN_ARGS -> the generated ids
gen() { "$gpux" run "$ex" --input "Hello" --json "$@" | field tokens; }
want=$(ref "$ex/model.onnx" "$prompt_ids" 64 0 0 1 100 0)
expect greedy-cpu 0 "^\\$want\$" -- gen --repetition-penalty 100 --backend cpu --max-new-tokens 64
expect greedy-webgpu 0 "^\\$want\$" -- gen --repetition-penalty 100 --backend webgpu --max-new-tokens 64
# per-node profiling on WebGPU (each node submitted alone, timed and logged) is the run itself: the
# nodes run once (a second run read inputs whose buffers later nodes had reused or written in place:
# wrong tokens, or none)
profiled() { (export GPUX_WEBGPU_PROFILE=1; gen "$@" 2>"$tmp/profile.log") && grep -qE 'webgpu: +[0-9.]+ ms +MatMul' "$tmp/profile.log"; }
expect greedy-webgpu-profiled 0 "^\\$want\$" -- profiled --repetition-penalty 100 --backend webgpu --max-new-tokens 64
# greedy with no repetition penalty: the session computes the ArgMax of the last position's logits
# (runtime/last-position.c) and a step reads back only that, leaving the logits on the device
want=$(ref "$ex/model.onnx" "$prompt_ids" 64 0 0 1 1 0)
expect argmax-cpu 0 "^\\$want\$" -- gen --repetition-penalty 1 --backend cpu --max-new-tokens 64
expect argmax-webgpu 0 "^\\$want\$" -- gen --repetition-penalty 1 --backend webgpu --max-new-tokens 64
# bytes read back from the device: a greedy step's at most 64 (the ArgMax, prefill included); with
# a repetition penalty one row of logits (300 float32), also for the prefill of the whole prompt
cat > "$tmp/bytes.py" <<'PY'
import json, sys
d = json.load(sys.stdin)
pre, per = d["prefill_download_bytes"], d["download_bytes_per_token"]
lo, hi = int(sys.argv[1]), int(sys.argv[2])
print("ok" if lo <= pre <= hi and lo <= per <= hi else f"prefill {pre}, decode {per} bytes a token; want {lo} to {hi}")
PY
readback() { "$gpux" run "$ex" --input "Hello there, how are you" --json --max-new-tokens 16 "$@" | python3 "$tmp/bytes.py" "$lo" "$hi"; }
lo=0 hi=64; expect readback-argmax-cpu 0 '^ok$' -- readback --repetition-penalty 1 --backend cpu
lo=0 hi=64; expect readback-argmax-webgpu 0 '^ok$' -- readback --repetition-penalty 1 --backend webgpu
lo=1200 hi=1200; expect readback-row-webgpu 0 '^ok$' -- readback --repetition-penalty 100 --backend webgpu
want=$(ref "$ex/model.onnx" "$prompt_ids" 24 3 40 0.9 100 5)
expect sampled-topk-topp 0 "^\\$want\$" -- gen --temperature 3 --top-k 40 --top-p 0.9 --repetition-penalty 100 --seed 5
want=$(ref "$ex/model.onnx" "$prompt_ids" 24 50 0 1 1 9)
expect sampled-temperature 0 "^\\$want\$" -- gen --temperature 50 --repetition-penalty 1 --seed 9
expect seed-repeats 0 "^\\$want\$" -- gen --temperature 50 --repetition-penalty 1 --seed 9
expect max-new-tokens 0 '^3$' -- bash -c "'$gpux' run '$ex' --input Hello --max-new-tokens 3 --json | python3 -c \"import json,sys; print(json.load(sys.stdin)['generated_tokens'])\""

# decode steps after the first few are cheap on WebGPU: each step's input shapes are new (the cache
# is one position longer), but the kernels reuse the pipelines compiled for earlier lengths (sizes
# read from a uniform buffer) and the weights stay where the first plan wrote them; the per-run log
# of GPUX_WEBGPU_VERBOSE says what each run compiled and wrote to the device
cat > "$tmp/steps.py" <<'PY'
import re, sys
runs = [tuple(map(int, m.groups())) for m in re.finditer(r"webgpu: run: [0-9.]+ ms, \w+ plan, (\d+) pipelines compiled, "
                                                          r"\d+ buffers created, (\d+) bytes up", sys.stdin.read())]
late = runs[8:]  # the prefill and the first decode steps compile; by then every size that changes has
compiled = sum(c for c, _ in late)
most_up = max(u for _, u in late)
print("ok" if len(runs) == 24 and compiled <= 2 and most_up < 4096 else
      f"{len(runs)} runs; steps 9-24 compiled {compiled} pipelines and wrote up to {most_up} bytes: {runs}")
PY
expect decode-reuses 0 '^ok$' -- bash -c "GPUX_WEBGPU_VERBOSE=1 '$gpux' run '$ex' --input Hello --backend webgpu --max-new-tokens 24 \
  --repetition-penalty 100 2>&1 >/dev/null | python3 '$tmp/steps.py'"
# ... and each step's plan derives from the last one: the nodes whose inputs did not change are
# taken as they were (no kernel written again), and the plan runs in the last one's buffers and
# bind groups, which were placed with room for the values that grow (made again only when one
# outgrows it: a few times in 64 steps); the cache values the steps hand over reuse the buffers
# of the ones given back, so that most steps create no buffer at all
cat > "$tmp/derive.py" <<'PY'
import re, sys
log = sys.stdin.read()
plans = re.findall(r"webgpu: planned .*; derived: (\d+) nodes as before, GPU objects (kept|made)", log)
made = [int(m) for m in re.findall(r"webgpu: run: [0-9.]+ ms, \w+ plan, \d+ pipelines compiled, (\d+) buffers created", log)]
decode = plans[2:]
kept = sum(k == "kept" for _, k in decode)
taken = min((int(n) for n, _ in decode), default=0)
none = sum(b == 0 for b in made[2:])
print("ok" if len(made) == 64 and len(plans) == 64 and kept >= 50 and taken > 0 and none >= 44 else
      f"{len(made)} runs, {len(plans)} plans; of the decode steps after the first, {kept} kept the GPU objects, "
      f"at least {taken} nodes taken as before, {none} created no buffer: {plans} {made}")
PY
expect decode-derives 0 '^ok$' -- bash -c "GPUX_WEBGPU_VERBOSE=1 '$gpux' run '$ex' --input Hello --backend webgpu --max-new-tokens 64 \
  --repetition-penalty 100 2>&1 >/dev/null | python3 '$tmp/derive.py'"
# ... and the tokens are still ONNX Runtime's, on a decoder whose attention mask comes from its
# lengths (tests/models/gpt.mjs)
node -e "import('$root/tests/models/gpt.mjs').then(m => require('fs').writeFileSync('$tmp/gptkv.onnx', m.gptKvModel(3)))"
mkdir -p "$tmp/gptkv" && cp "$tmp/gptkv.onnx" "$tmp/gptkv/model.onnx" && cp "$ex/tokenizer.json" "$tmp/gptkv/"
printf 'model: ./model.onnx\npreprocessing:\n  tokenizer:\n    vocab: ./tokenizer.json\ngenerate:\n  max_new_tokens: 32\n  repetition_penalty: 100\n' > "$tmp/gptkv/GPUXfile"
want=$(ref "$tmp/gptkv/model.onnx" "$prompt_ids" 32 0 0 1 100 0)
expect gptkv-webgpu 0 "^\\$want\$" -- bash -c "'$gpux' run '$tmp/gptkv' --input Hello --backend webgpu --json | python3 -c \"import json,sys; print(json.dumps(json.load(sys.stdin)['tokens'], separators=(',',':')))\""

# decode steps do not plan again: on a decoder whose mask reads attention_mask through a Gather of
# positions 0..total-1 (indices that follow from the shapes, as in transformers' exports), every
# kernel whose sizes grow reuses its pipeline with the sizes in its uniform buffer, and each step's
# plan runs in the last one's buffers and bind groups (a Gather that wrote the length as a plain
# literal compiled a new pipeline on every step, and no step kept the GPU objects); the tokens are
# still ONNX Runtime's
node -e "import('$root/tests/models/gpt.mjs').then(m => require('fs').writeFileSync('$tmp/gptkv-gather.onnx', m.gptKvModel(3, { gatherMask: true })))"
mkdir -p "$tmp/gptkvg" && cp "$tmp/gptkv-gather.onnx" "$tmp/gptkvg/model.onnx" && cp "$ex/tokenizer.json" "$tmp/gptkvg/"
printf 'model: ./model.onnx\npreprocessing:\n  tokenizer:\n    vocab: ./tokenizer.json\ngenerate:\n  max_new_tokens: 32\n  repetition_penalty: 100\n' > "$tmp/gptkvg/GPUXfile"
want=$(ref "$tmp/gptkvg/model.onnx" "$prompt_ids" 32 0 0 1 100 0)
expect gptkv-gather-webgpu 0 "^\\$want\$" -- bash -c "'$gpux' run '$tmp/gptkvg' --input Hello --backend webgpu --json | python3 -c \"import json,sys; print(json.dumps(json.load(sys.stdin)['tokens'], separators=(',',':')))\""
cat > "$tmp/noreplan.py" <<'PY'
import re, sys
log = sys.stdin.read()
plans = re.findall(r"webgpu: planned .*, (\d+) pipelines compiled, .*; derived: \d+ nodes as before, GPU objects (kept|made)", log)
runs = re.findall(r"webgpu: run: [0-9.]+ ms, \w+ plan, (\d+) pipelines compiled", log)
decode = plans[3:]  # the prefill and the first steps compile the kernels and place the growing values
compiled = sum(int(c) for c, _ in decode)
kept = sum(k == "kept" for _, k in decode)
print("ok" if len(runs) == 32 and len(plans) == 32 and compiled <= 2 and kept >= len(decode) - 6 else
      f"{len(runs)} runs, {len(plans)} plans; decode steps after the third compiled {compiled} pipelines, "
      f"{kept} of {len(decode)} kept the GPU objects: {plans}")
PY
expect decode-no-replan 0 '^ok$' -- bash -c "GPUX_WEBGPU_VERBOSE=1 '$gpux' run '$tmp/gptkvg' --input Hello --backend webgpu 2>&1 >/dev/null | python3 '$tmp/noreplan.py'"

# a model without a cache: the whole sequence each step
mkdir -p "$tmp/nocache"
tar xJf "$root/tests/models/wild.tar.xz" -C "$tmp" wild/gpt2-ts17/model.onnx
cp "$tmp/wild/gpt2-ts17/model.onnx" "$ex/tokenizer.json" "$tmp/nocache/"
printf 'model: ./model.onnx\npreprocessing:\n  tokenizer:\n    vocab: ./tokenizer.json\ngenerate:\n  max_new_tokens: 12\n  repetition_penalty: 100\n' > "$tmp/nocache/GPUXfile"
want=$(ref "$tmp/nocache/model.onnx" "$prompt_ids" 12 0 0 1 100 0 nocache)
expect nocache 0 "^\\$want\$" -- bash -c "'$gpux' run '$tmp/nocache' --input Hello --json | python3 -c \"import json,sys; print(json.dumps(json.load(sys.stdin)['tokens'], separators=(',',':')))\""

# streamed text is the answer's text; a stop text ends it before the stop text
json=$("$gpux" run "$ex" --input Hello --repetition-penalty 100 --json)
text=$(field text <<<"$json")
expect streamed 0 "^$(printf '%s' "$text" | python3 -c 'import re,sys; print(re.escape(sys.stdin.read()))')\$" -- "$gpux" run "$ex" --input Hello --repetition-penalty 100
stop=$(python3 -c "import sys; t=sys.argv[1]; print(t[6:9])" "$text")
before=$(python3 -c "import sys; t, s = sys.argv[1], sys.argv[2]; print(t[:t.index(s)])" "$text" "$stop")
mkdir -p "$tmp/stop" && cp "$ex/model.onnx" "$ex/tokenizer.json" "$tmp/stop/"
python3 - "$tmp/stop/GPUXfile" "$stop" <<'PY'
import json, sys
open(sys.argv[1], "w").write("model: ./model.onnx\npreprocessing:\n  tokenizer:\n    vocab: ./tokenizer.json\n"
                             "generate:\n  repetition_penalty: 100\n  stop: [%s]\n" % json.dumps(sys.argv[2]))
PY
expect stop-text 0 '^ok$' -- bash -c "'$gpux' run '$tmp/stop' --input Hello --json | python3 -c \"
import json,sys; d=json.load(sys.stdin); print('ok' if d['text'] == sys.argv[1] and d['finish_reason'] == 'stop' else d)\" '$before'"

# the text streams: on WebGPU the pieces reach the pipe one by one as they are generated, not in
# one write at the end (reads spread over the decode steps)
cat > "$tmp/pieces.py" <<'PY'
import os, subprocess, sys, time
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
t0, times = time.monotonic(), []
while True:
    b = os.read(p.stdout.fileno(), 65536)
    if not b:
        break
    times.append(time.monotonic() - t0)
p.wait()
first, last = times[0], times[-1]
print("ok" if p.returncode == 0 and len(times) >= 3 and last - first > 0.05 else f"rc {p.returncode} reads at {times}")
PY
expect streams 0 '^ok$' -- python3 "$tmp/pieces.py" "$gpux" run "$ex" --input Hello --backend webgpu --max-new-tokens 64 --repetition-penalty 100

# --interactive keeps a conversation: the second message's prompt holds the first exchange
expect chat-history 0 '^ok$' -- bash -c "printf 'Hello\nHow are you\n' | '$gpux' run '$ex' --interactive --max-new-tokens 3 --json |
  python3 -c \"import json,sys; p=[json.loads(l)['prompt_tokens'] for l in sys.stdin]; print('ok' if len(p) == 2 and p[1] > p[0] + 3 else p)\""

# build and run the image; the JSON says how fast and how much came back per token
expect build 0 '^Built tiny-gpt' -- "$gpux" build -q "$ex"
expect run-image 0 '"finish_reason":"length","time_to_first_token_ms":[0-9.]+,"tokens_per_second":[0-9.]+,"download_bytes_per_token":' -- "$gpux" run tiny-gpt --input "Once upon a time" --json

# GPUXfiles generation cannot use, and bad settings
mkdir -p "$tmp/bad" && cp "$ex/model.onnx" "$tmp/bad/"
printf 'model: ./model.onnx\ngenerate:\n  max_new_tokens: 4\n' > "$tmp/bad/GPUXfile"
expect_error no-tokenizer "GPUXfile:2: key 'generate': needs preprocessing.tokenizer" -- "$gpux" run "$tmp/bad" --input Hi
printf 'model: ./model.onnx\npreprocessing:\n  tokenizer:\n    vocab: %s\ngenerate:\n  top_p: 2\n' "$ex/tokenizer.json" > "$tmp/bad/GPUXfile"
expect_error bad-top-p "key 'generate.top_p': 2 is not in \(0, 1\]" -- "$gpux" run "$tmp/bad" --input Hi
cp "$root/tests/models/wild.tar.xz" "$tmp/w.tar.xz" && tar xJf "$tmp/w.tar.xz" -C "$tmp" wild/cnn-ts17/model.onnx
printf 'model: %s\npreprocessing:\n  tokenizer:\n    vocab: %s\ngenerate: {}\n' "$tmp/wild/cnn-ts17/model.onnx" "$ex/tokenizer.json" > "$tmp/bad/GPUXfile"
expect_error not-a-decoder "key 'generate': generate: the model has no input 'input_ids'" -- "$gpux" run "$tmp/bad" --input Hi
expect_error bad-temperature "--temperature: 'hot' is not a number" -- "$gpux" run "$ex" --input Hi --temperature hot
finish
