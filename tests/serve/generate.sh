#!/usr/bin/env bash
# Text generation over HTTP (src/serve/generate.c) with examples/tiny-gpt, over real HTTP on
# loopback: OpenAI's /v1/models, /v1/completions and /v1/chat/completions (answers and streamed
# server-sent events), Triton's /v2/models/M/generate and generate_stream; the text is the one
# `gpux run` generates with the same settings, the streamed pieces add up to it, concurrent
# streams all finish, and bad requests get a 400 naming the field while the server keeps going.
# With --max-batch-size, concurrent generations share decode steps (continuous batching) and each
# still gets exactly the text it gets alone (greedy ones too, whose shared steps read back the
# ArgMax of each row's logits).
#   tests/serve/generate.sh GPUX
source "$(dirname "$0")/../app/lib.sh" "$1"
need curl python3 node
trap 'kill "$pid" ${pid2:-} 2>/dev/null; rm -rf "$tmp"' EXIT
ex=$root/examples/tiny-gpt
expect build 0 '^Built tiny-gpt' -- "$gpux" build -q "$ex"
"$gpux" serve tiny-gpt --port 0 --backend cpu 2>"$tmp/serve.log" &
pid=$!
for _ in $(seq 150); do grep -q '^ready: ' "$tmp/serve.log" && break; sleep 0.1; done
url=http://$(grep -o '127\.0\.0\.1:[0-9]*' "$tmp/serve.log" | head -1)
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# the SSE stream's pieces joined: OpenAI's choices[0].text or delta.content, Triton's text_output
cat > "$tmp/joined.py" <<'PY'
import json, sys
out, done = [], False
for line in sys.stdin:
    if not line.startswith("data: "):
        continue
    d = line[6:].strip()
    if d == "[DONE]":
        done = True
        continue
    e = json.loads(d)
    if "text_output" in e:
        out.append(e["text_output"])
        continue
    c = e["choices"][0]
    out.append(c.get("text") or c.get("delta", {}).get("content") or "")
print(repr("".join(out)), "done" if done else "")
PY

want=$("$gpux" run tiny-gpt --input Hello --repetition-penalty 100 --max-new-tokens 12 --json | json 'repr(d["text"])')
expect models 0 '"data":\[\{"id":"tiny-gpt","object":"model"' -- curl -s "$url/v1/models"
expect completion 0 "^$(python3 -c 'import re,sys; print(re.escape(sys.argv[1]))' "$want") length 4 12\$" -- bash -c \
  "curl -s '$url/v1/completions' -d '{\"model\":\"tiny-gpt\",\"prompt\":\"Hello\",\"max_tokens\":12,\"repetition_penalty\":100}' |
   python3 -c 'import json,sys; d=json.load(sys.stdin); c=d[\"choices\"][0]; u=d[\"usage\"]; print(repr(c[\"text\"]), c[\"finish_reason\"], u[\"prompt_tokens\"], u[\"completion_tokens\"])'"
expect completion-stream 0 "^$(python3 -c 'import re,sys; print(re.escape(sys.argv[1]))' "$want") done\$" -- bash -c \
  "curl -sN '$url/v1/completions' -d '{\"prompt\":\"Hello\",\"max_tokens\":12,\"repetition_penalty\":100,\"stream\":true}' | python3 '$tmp/joined.py'"
expect chat 0 '"object":"chat.completion","created":[0-9]+,"model":"tiny-gpt","choices":\[\{"index":0,"message":\{"role":"assistant","content":' -- \
  curl -s "$url/v1/chat/completions" -d '{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"max_tokens":4}'
expect chat-stream 0 '"delta":\{"role":"assistant","content":.*"finish_reason":"length".*data: \[DONE\]' -- bash -c \
  "curl -sN '$url/v1/chat/completions' -d '{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":3,\"stream\":true}' | tr '\n' ' '"
expect triton 0 "^$(python3 -c 'import re,sys; print(re.escape(sys.argv[1]))' "$want")\$" -- bash -c \
  "curl -s '$url/v2/models/tiny-gpt/generate' -d '{\"text_input\":\"Hello\",\"parameters\":{\"max_tokens\":12,\"repetition_penalty\":100}}' | python3 -c 'import json,sys; print(repr(json.load(sys.stdin)[\"text_output\"]))'"
expect triton-stream 0 '"text_output":"","finish_reason":"length"' -- curl -sN "$url/v2/models/tiny-gpt/generate_stream" -d '{"text_input":"Hello","max_tokens":3}'
# a stop text from the request ends the answer before it
stop=$(python3 -c "import sys; print(eval(sys.argv[1])[5:8])" "$want")
expect stop 0 '"finish_reason":"stop"' -- curl -s "$url/v1/completions" -d "$(python3 -c 'import json,sys; print(json.dumps({"prompt":"Hello","max_tokens":12,"repetition_penalty":100,"stop":[sys.argv[1]]}))' "$stop")"
# four streams at once all finish with [DONE]
for k in 1 2 3 4; do curl -sN "$url/v1/completions" -d '{"prompt":"Once upon a time","max_tokens":6,"stream":true,"temperature":1,"seed":'$k'}' > "$tmp/s$k" & done
wait $(jobs -p | grep -v "^$pid\$") 2>/dev/null
expect concurrent 0 '^4$' -- bash -c "grep -l 'data: \[DONE\]' '$tmp'/s[1-4] | wc -l"
# OpenAI's own npm client, unchanged: models, a completion (the text `gpux run` gives), a chat,
# and a streamed chat whose pieces arrive one by one
"$gpux" run tiny-gpt --input Hello --repetition-penalty 100 --max-new-tokens 8 --json | json 'repr(d["text"])' > "$tmp/want8"
expect openai-client 0 '^ok$' -- bash -c "node '$root/tests/serve/openai-client.mjs' '$url' tiny-gpt | python3 -c \"
import json, sys
d = json.loads(sys.stdin.read())
want = eval(open('$tmp/want8').read())
ok = (d['models'] == ['tiny-gpt'] and d['completion'] == want and d['completion_finish'] == 'length'
      and d['usage']['completion_tokens'] == 8 and d['chat']['role'] == 'assistant' and d['finish'] == 'length'
      and d['pieces'] >= 2 and len(d['streamed']) > 0)
print('ok' if ok else d)\""

# bad requests: 400 naming the field; the server goes on
expect bad-json 0 '^400 .*not a JSON object' -- bash -c "curl -s -w '%{http_code} ' -o '$tmp/b' '$url/v1/completions' -d 'nope'; cat '$tmp/b'"
expect bad-temperature 0 "^400 .*'temperature' must be a number from 0 to 100" -- bash -c "curl -s -w '%{http_code} ' -o '$tmp/b' '$url/v1/completions' -d '{\"prompt\":\"a\",\"temperature\":-1}'; cat '$tmp/b'"
expect bad-messages 0 "^400 .*'messages' must be a non-empty list" -- bash -c "curl -s -w '%{http_code} ' -o '$tmp/b' '$url/v1/chat/completions' -d '{\"messages\":[]}'; cat '$tmp/b'"
expect unknown-model 0 '^404 ' -- bash -c "curl -s -w '%{http_code} ' -o '$tmp/b' '$url/v1/completions' -d '{\"model\":\"nope\",\"prompt\":\"a\"}'; cat '$tmp/b'"
expect still-serving 0 '"finish_reason":"length"' -- curl -s "$url/v1/completions" -d '{"prompt":"Hello","max_tokens":2}'

# continuous batching: three requests at once (prompts of 1, 4 and 12 tokens, 16, 20 and 9 new
# tokens, one streamed) start together (the first waits for the other two: max_batch_size 3), share
# decode steps, leave the batch one by one, and each text is the one `gpux run` gives alone
"$gpux" serve tiny-gpt --name batched --port 0 --backend cpu --max-batch-size 3 --max-queue-delay-ms 5000 2>"$tmp/serve2.log" &
pid2=$!
for _ in $(seq 150); do grep -q '^ready: ' "$tmp/serve2.log" && break; sleep 0.1; done
url2=http://$(grep -o '127\.0\.0\.1:[0-9]*' "$tmp/serve2.log" | head -1)
alone() { "$gpux" run tiny-gpt --input "$1" --repetition-penalty 100 --max-new-tokens "$2" --json | json 'repr(d["text"])'; }
want_a=$(alone H 16)
want_b=$(alone Hello 20)
want_c=$(alone "Once upon a time there" 9)
body() { python3 -c 'import json,sys; print(json.dumps({"prompt":sys.argv[1],"max_tokens":int(sys.argv[2]),"repetition_penalty":100,"stream":sys.argv[3]=="1"}))' "$@"; }
curl -s "$url2/v1/completions" -d "$(body H 16 0)" > "$tmp/ba" & ca=$!
curl -sN "$url2/v1/completions" -d "$(body Hello 20 1)" | python3 "$tmp/joined.py" > "$tmp/bb" & cb=$!
curl -s "$url2/v1/completions" -d "$(body 'Once upon a time there' 9 0)" > "$tmp/bc" & cc=$!
wait $ca $cb $cc
text_of() { python3 -c 'import json,sys; print(repr(json.load(open(sys.argv[1]))["choices"][0]["text"]))' "$1"; }
re() { python3 -c 'import re,sys; print(re.escape(sys.argv[1]))' "$1"; }
expect batched-1 0 "^$(re "$want_a")\$" -- text_of "$tmp/ba"
expect batched-2-streamed 0 "^$(re "$want_b") done\$" -- cat "$tmp/bb"
expect batched-3 0 "^$(re "$want_c")\$" -- text_of "$tmp/bc"
# 19 decode steps in all (the longest asks 20 tokens: its prompt's run gives the first), 8 of them
# with all three (the shortest asks 9), 15 with at least two
expect batched-steps 0 'gpux_generate_steps_total\{model="tiny-gpt"\} 19 gpux_generate_shared_steps_total\{model="tiny-gpt"\} 15 ' -- \
  bash -c "curl -s '$url2/metrics' | grep '^gpux_generate' | tr '\n' ' '"
# ... and greedy ones with no repetition penalty, whose shared steps read back the ArgMax of each
# row's logits (runtime/last-position.c) instead of the logits
alone1() { "$gpux" run tiny-gpt --input "$1" --repetition-penalty 1 --max-new-tokens "$2" --json | json 'repr(d["text"])'; }
want_a=$(alone1 H 16)
want_c=$(alone1 "Once upon a time there" 9)
body1() { python3 -c 'import json,sys; print(json.dumps({"prompt":sys.argv[1],"max_tokens":int(sys.argv[2]),"repetition_penalty":1}))' "$@"; }
curl -s "$url2/v1/completions" -d "$(body1 H 16)" > "$tmp/ga" & ca=$!
curl -s "$url2/v1/completions" -d "$(body1 'Once upon a time there' 9)" > "$tmp/gc" & cc=$!
curl -s "$url2/v1/completions" -d "$(body1 H 16)" > "$tmp/gb" & cb=$!
wait $ca $cb $cc
expect batched-argmax-1 0 "^$(re "$want_a")\$" -- text_of "$tmp/ga"
expect batched-argmax-2 0 "^$(re "$want_a")\$" -- text_of "$tmp/gb"
expect batched-argmax-3 0 "^$(re "$want_c")\$" -- text_of "$tmp/gc"
finish
