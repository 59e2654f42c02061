#!/usr/bin/env bash
# Encoder–decoder generation end to end (`pipeline: {mode: seq2seq}`, src/app/mode-seq2seq.c) with
# examples/whisper-tiny (transformers' Whisper with random weights, exported as optimum exports it:
# encoder, decoder, decoder with past): a WAV file through gpux's log-mel front end gives exactly
# the ids ONNX Runtime gave on transformers' features; the generated ids must be exactly those of
# the same loop
# run step by step with ONNX Runtime (tests/app/seq2seq-ref.mjs) — Whisper's prompt from
# generate.language/task, special tokens suppressed or not — on the CPU and on WebGPU; only the
# last position's logits come back from the device (download_bytes_per_token), or their ArgMax
# alone when greedy with nothing to suppress; the decoder alone (no cache), the
# merged decoder and a text encoder (tests/app/make-seq2seq-models.mjs) give the reference's ids
# too; a WAV file's text streams; the image builds and runs; /predict and Triton's generate answer
# with the text; and GPUXfiles that miss a decoder or give models in the wrong order or with other
# names fail with one line.
#   tests/app/seq2seq.sh GPUX
source "$(dirname "$0")/lib.sh" "$1"
need node python3 curl
ex=$root/examples/whisper-tiny
SPECIAL=300,301,302,303,304,305
ref() { node "$root/tests/app/seq2seq-ref.mjs" "$@"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); v=d['$1']; print(json.dumps(v, separators=(',',':')) if not isinstance(v, str) else v)"; }

# log-mel-like features [1, 80, 3000] (and [80, 3000], as a feature extractor gives one clip)
python3 - "$tmp" <<'PY'
import array, math, sys
def npy(path, shape, vals):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % "".join(f"{d}, " for d in shape)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin1"))
        f.write(vals.tobytes())
for name, k in (("a", 0.37), ("b", 1.91)):
    v = array.array("f", (0.6 * math.sin(k * b + 0.013 * t * (1 + b % 7)) - 0.2 for b in range(80) for t in range(3000)))
    npy(f"{sys.argv[1]}/{name}.npy", (1, 80, 3000), v)
    npy(f"{sys.argv[1]}/{name}2d.npy", (80, 3000), v)
PY

# the example taking input_features as a tensor (.npy) instead of a WAV file
feat=$tmp/feat
mkdir -p "$feat" && cp "$ex"/*.onnx "$ex/tokenizer.json" "$feat/"
grep -v -e '^  audio:' -e '^    features:' "$ex/GPUXfile" > "$feat/GPUXfile"
# GPUXfile variants in $tmp: folder NAME with the example's models and extra `generate:` lines
variant() {
  local d=$tmp/$1; shift
  mkdir -p "$d" && cp "$ex"/*.onnx "$ex/tokenizer.json" "$d/"
  { sed '/^generate:/,$d' "$feat/GPUXfile"; printf 'generate:\n  max_new_tokens: 40\n'; for l in "$@"; do printf '  %s\n' "$l"; done; } > "$d/GPUXfile"
}
gen() { "$gpux" run "$@" --json | field tokens; }

# Whisper's prompt <|startoftranscript|><|en|><|transcribe|><|notimestamps|>, greedy, special
# tokens never chosen
expect prompt-ids 0 '^\[300,301,304,305\]$' -- bash -c "'$gpux' run '$feat' --input @'$tmp/a.npy' --max-new-tokens 2 --json | python3 -c \"import json,sys; print(json.load(sys.stdin)['prompt_ids'])\" | tr -d ' '"
want=$(ref "$ex" "$tmp/a.npy" 300,301,304,305 40 299 $SPECIAL)
expect greedy-cpu 0 "^\\$want\$" -- gen "$feat" --input @"$tmp/a.npy" --backend cpu
expect no-batch-dim 0 "^\\$want\$" -- gen "$feat" --input @"$tmp/a2d.npy"
# on WebGPU (a plan per step on lavapipe: fewer steps), one run for the ids and the bytes that
# came back: only the logits of the last position, one row of 306 float32 per run, the first
# (4 tokens) included (a cache read back would be many times more)
want=$(ref "$ex" "$tmp/a.npy" 300,301,304,305 6 299 $SPECIAL)
"$gpux" run "$feat" --input @"$tmp/a.npy" --backend webgpu --max-new-tokens 6 --json > "$tmp/webgpu.json"
expect greedy-webgpu 0 "^\\$want\$" -- field tokens < "$tmp/webgpu.json"
cat > "$tmp/bytes.py" <<'PY'
import json, sys
d = json.load(sys.stdin)
n = d["generated_tokens"]
runs = n + (1 if d["finish_reason"] == "stop" else 0)
want = 306 * 4 * runs
got = d["download_bytes_per_token"] * n
print("ok" if n > 0 and abs(got - want) < 1 else f"{got} bytes for {n} tokens, want {want}: {d}")
PY
expect bytes-per-token 0 '^ok$' -- python3 "$tmp/bytes.py" < "$tmp/webgpu.json"
want=$(ref "$ex" "$tmp/b.npy" 300,301,304,305 40 299 $SPECIAL)
expect greedy-other-clip 0 "^\\$want\$" -- gen "$feat" --input @"$tmp/b.npy"

# plain argmax (as ONNX Runtime's greedy loop), and the translate task in German
variant plain "suppress_special: false" "language: en"
want=$(ref "$ex" "$tmp/a.npy" 300,301,304,305 40 299 -)
expect plain-cpu 0 "^\\$want\$" -- gen "$tmp/plain" --input @"$tmp/a.npy" --backend cpu
# ... which reads back the ArgMax of the decoders' logits alone on WebGPU: at most 64 bytes a token
want=$(ref "$ex" "$tmp/a.npy" 300,301,304,305 6 299 -)
"$gpux" run "$tmp/plain" --input @"$tmp/a.npy" --backend webgpu --max-new-tokens 6 --json > "$tmp/plain-webgpu.json"
expect plain-webgpu 0 "^\\$want\$" -- field tokens < "$tmp/plain-webgpu.json"
expect plain-webgpu-bytes 0 '^ok$' -- python3 -c "import json,sys; d=json.load(sys.stdin); b=d['download_bytes_per_token']; print('ok' if 0 <= b <= 64 else d)" < "$tmp/plain-webgpu.json"
variant de "language: de" "task: translate"
want=$(ref "$ex" "$tmp/a.npy" 300,302,303,305 40 299 $SPECIAL)
expect translate-prompt 0 '^\[300,302,303,305\]$' -- bash -c "'$gpux' run '$tmp/de' --input @'$tmp/a.npy' --max-new-tokens 1 --json | python3 -c \"import json,sys; print(json.load(sys.stdin)['prompt_ids'])\" | tr -d ' '"
expect translate 0 "^\\$want\$" -- gen "$tmp/de" --input @"$tmp/a.npy"

# the decoder alone, no cache: the whole sequence each step, the same ids
want=$(ref "$ex" "$tmp/a.npy" 300,301,304,305 40 299 $SPECIAL)
mkdir -p "$tmp/nocache" && cp "$ex"/*.onnx "$ex/tokenizer.json" "$tmp/nocache/"
sed '/decoder_with_past/d' "$feat/GPUXfile" > "$tmp/nocache/GPUXfile"
expect nocache 0 "^\\$want\$" -- gen "$tmp/nocache" --input @"$tmp/a.npy"

# the forms examples/whisper-tiny lacks, on small models of the same interface
# (tests/app/make-seq2seq-models.mjs): the merged decoder (If on use_cache_branch) and a text
# encoder (input_ids, attention_mask; encoder_attention_mask into the decoders)
mkdir -p "$tmp/m-audio" "$tmp/m-text"
node "$root/tests/app/make-seq2seq-models.mjs" "$tmp/m-audio" audio
node "$root/tests/app/make-seq2seq-models.mjs" "$tmp/m-text" text
cp "$ex/tokenizer.json" "$tmp/m-audio/"
cp "$root/examples/tiny-gpt/tokenizer.json" "$tmp/m-text/"
steps() { printf 'pipeline:\n  mode: seq2seq\n  steps: [%s]\npreprocessing:\n  tokenizer: {vocab: ./tokenizer.json}\ngenerate: {max_new_tokens: 24%s}\n' "$1" "$2"; }
steps "encoder_model.onnx, decoder_model_merged.onnx" ", language: en" > "$tmp/m-audio/GPUXfile"
want=$(ref "$tmp/m-audio" "$tmp/a.npy" 300,301,304,305 24 299 $SPECIAL merged)
expect merged-ref-agrees 0 "^\\$want\$" -- ref "$tmp/m-audio" "$tmp/a.npy" 300,301,304,305 24 299 $SPECIAL
expect merged-cpu 0 "^\\$want\$" -- gen "$tmp/m-audio" --input @"$tmp/a.npy" --backend cpu
want=$(ref "$tmp/m-audio" "$tmp/a.npy" 300,301,304,305 8 299 $SPECIAL merged)
expect merged-webgpu 0 "^\\$want\$" -- gen "$tmp/m-audio" --input @"$tmp/a.npy" --backend webgpu --max-new-tokens 8
steps "encoder_model.onnx, decoder_model.onnx, decoder_with_past_model.onnx" "" > "$tmp/m-text/GPUXfile"
src=$("$gpux" run "$root/examples/tiny-gpt" --input "the cat sat on the mat" --max-new-tokens 1 --json | field prompt_ids | tr -d '[]')
want=$(ref "$tmp/m-text" "ids:$src" 299 24 299 -)
expect text-encoder-prompt 0 '^\[299\]$' -- bash -c "'$gpux' run '$tmp/m-text' --input 'the cat sat on the mat' --max-new-tokens 1 --json | python3 -c \"import json,sys; print(json.load(sys.stdin)['prompt_ids'])\""
expect text-encoder 0 "^\\$want\$" -- gen "$tmp/m-text" --input "the cat sat on the mat"
steps "encoder_model.onnx, decoder_model.onnx, decoder_with_past_model.onnx" ", decoder_start_token_id: 7" > "$tmp/m-text/GPUXfile"
want=$(ref "$tmp/m-text" "ids:$src" 7 24 299 -)
expect decoder-start 0 "^\\$want\$" -- gen "$tmp/m-text" --input "the cat sat on the mat"

# a WAV file through Whisper's log-mel features end to end: bench/whisper-export.py's greedy ids
# from ONNX Runtime on transformers' WhisperFeatureExtractor features of the same clip
# (reference.json; the first step's top two logits 0.25 apart)
wav=$ex/clip-a.wav
expect wav-to-reference 0 '^\[220,172,209,220,220,172,172,209,220,172,172,209,47,230,66,220,74,66,209,144,66,209,172,172,209,172,172,209,209,230,230,230,230,66,230,230,230,230,230,230\]$' -- gen "$ex" --input "$wav"
# the text streamed on stdout is the JSON's text
json=$("$gpux" run "$ex" --input "$wav" --json)
text=$(field text <<<"$json")
expect streamed 0 "^$(printf '%s' "$text" | python3 -c 'import re,sys; print(re.escape(sys.stdin.read()))')\$" -- "$gpux" run "$ex" --input "$wav"
expect answer-keys 0 '"finish_reason":"(stop|length)","encoder_ms":[0-9.]+,"time_to_first_token_ms":[0-9.]+,"tokens_per_second":[0-9.]+,"download_bytes_per_token":' -- echo "$json"

# --interactive answers each line afresh (no conversation, unlike a decoder-only chat)
expect interactive 0 '^\[4, 4\]$' -- bash -c "printf '%s\\n%s\\n' '$wav' '$wav' | '$gpux' run '$ex' --interactive --max-new-tokens 3 --json |
  python3 -c \"import json,sys; print([json.loads(l)['prompt_tokens'] for l in sys.stdin])\""

# build the image; serve it: /predict and Triton's generate give the same text
expect build 0 '^Built whisper-tiny' -- "$gpux" build -q "$ex"
"$gpux" serve whisper-tiny --port 0 --backend cpu 2>"$tmp/serve.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 300); do grep -q '^ready: ' "$tmp/serve.log" && break; sleep 0.1; done
url=http://$(grep -o '127\.0\.0\.1:[0-9]*' "$tmp/serve.log" | head -1)
python3 -c "import base64,json,sys; json.dump({'audio': base64.b64encode(open(sys.argv[1],'rb').read()).decode()}, open(sys.argv[2],'w'))" "$wav" "$tmp/req.json"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); r['parameters']={'max_tokens': 40}; json.dump(r, open(sys.argv[2], 'w'))" "$tmp/req.json" "$tmp/treq.json"
want_text=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1], ensure_ascii=False))' "$text")
expect predict 0 "\"text\":$(python3 -c 'import re,sys; print(re.escape(sys.argv[1]))' "$want_text")" -- \
  curl -s -X POST -H 'Content-Type: application/json' --data-binary @"$tmp/req.json" "$url/predict"
expect triton-generate 0 "\"text_output\":$(python3 -c 'import re,sys; print(re.escape(sys.argv[1]))' "$want_text")" -- \
  curl -s -X POST --data-binary @"$tmp/treq.json" "$url/v2/models/whisper-tiny/generate"
expect triton-no-input 0 '"error":".*text_input' -- curl -s -X POST --data-binary '{"parameters": {}}' "$url/v2/models/whisper-tiny/generate"
# a prompt is never taken as a file name on the server
expect openai-prompt-path 0 '"error":.*takes no text' -- curl -s -X POST --data-binary "{\"prompt\": \"$wav\"}" "$url/v1/completions"
expect triton-text-path 0 '"error":.*takes no text' -- curl -s -X POST --data-binary "{\"text_input\": \"$wav\"}" "$url/v2/models/whisper-tiny/generate"
kill "$pid" 2>/dev/null

# GPUXfiles this mode cannot use: one line naming the file, key and model
bad() { mkdir -p "$tmp/bad" && cp "$ex"/*.onnx "$ex/tokenizer.json" "$tmp/bad/" && printf "$1" > "$tmp/bad/GPUXfile"; }
tok='preprocessing:\n  tokenizer: {vocab: ./tokenizer.json}\n'
bad "pipeline:\n  mode: seq2seq\n  steps: [encoder_model.onnx]\n$tok"
expect_error missing-decoder "GPUXfile:2: key 'pipeline.steps': mode seq2seq takes 2 or 3 steps" -- "$gpux" run "$tmp/bad" --input @"$tmp/a.npy"
bad "pipeline:\n  mode: seq2seq\n  steps: [encoder_model.onnx, decoder_with_past_model.onnx, decoder_model.onnx]\n$tok"
expect_error wrong-order "key 'pipeline.steps\\[1\\]': decoder_with_past_model.onnx takes a cache \\([0-9]+ past_key_values inputs\\); the second step is the decoder without past" -- "$gpux" run "$tmp/bad" --input @"$tmp/a.npy"
bad "pipeline:\n  mode: seq2seq\n  steps: [decoder_model.onnx, encoder_model.onnx]\n$tok"
expect_error decoder-first "key 'pipeline.steps\\[0\\]': decoder_model.onnx gives logits, not the encoder's last_hidden_state" -- "$gpux" run "$tmp/bad" --input @"$tmp/a.npy"
bad "pipeline:\n  mode: seq2seq\n  steps: [encoder_model.onnx, encoder_model.onnx]\n$tok"
expect_error encoder-as-decoder "key 'pipeline.steps\\[1\\]': encoder_model.onnx has no input 'input_ids'" -- "$gpux" run "$tmp/bad" --input @"$tmp/a.npy"
bad "pipeline:\n  mode: seq2seq\n  steps: [encoder_model.onnx, decoder_model.onnx, decoder_model.onnx]\n$tok"
expect_error not-with-past "key 'pipeline.steps\\[2\\]': decoder_model.onnx has no past_key_values inputs" -- "$gpux" run "$tmp/bad" --input @"$tmp/a.npy"
bad "pipeline:\n  mode: seq2seq\n  steps: [encoder_model.onnx, decoder_model.onnx]\n$tok""generate: {language: fr}\n"
expect_error unknown-language "generate.language: the tokenizer has no token '<\\|fr\\|>'" -- "$gpux" run "$tmp/bad" --input @"$tmp/a.npy"
expect_error wrong-input-name "no input named 'speech' \\(inputs: input_features\\)" -- "$gpux" run "$ex" --input speech=@"$tmp/a.npy"
finish
