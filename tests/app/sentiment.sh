#!/usr/bin/env bash
# examples/sentiment end to end, and postprocessing.answer: built as the image
# "sentiment-analysis", a sentence answers {"sentiment", "confidence", "scores"} whose values
# are the softmax of the model's logits worked out here (the lexicon's polarities: "love" +3,
# "terrible" -3, a bias of 1 toward neutral); --interactive answers each line; --batch each
# value; the keys' errors are one line naming the key.
#   tests/app/sentiment.sh GPUX
source "$(dirname "$0")/lib.sh" "$1"
need python3
ex="$root/examples/sentiment"
expect build 0 '^Built sentiment-analysis:latest ' -- "$gpux" build -q "$ex"
expect text 0 '^\{"sentiment": "positive", "confidence": 0\.8789, "scores": \{"negative": 0\.0022, "neutral": 0\.1189, "positive": 0\.8789\}\}$' -- \
  "$gpux" run sentiment-analysis --input "I love this!"
"$gpux" run sentiment-analysis --json --input "I love this!" > "$tmp/love.json"
expect json 0 '^ok$' -- python3 -c "
import json, math
a = json.load(open('$tmp/love.json'))
e = [math.exp(v) for v in (-3, 1, 3)]; p = [v / sum(e) for v in e]
ok = a['sentiment'] == 'positive' and abs(a['confidence'] - p[2]) < 1e-6 and \
     all(abs(a['scores'][k] - p[i]) < 1e-6 for i, k in enumerate(['negative', 'neutral', 'positive'])) and \
     a['outputs'][0]['data'] == [-3, 1, 3]
print('ok' if ok else a)"
expect interactive 0 '^\{"sentiment": "negative".*
\{"sentiment": "neutral", "confidence": 0\.5761.*
\{"sentiment": "positive"' -- bash -c "printf 'This is terrible.\nThe weather today\nGreat food, friendly people!\n' | '$gpux' run sentiment-analysis --interactive"
expect batch 0 '^I love it: \{"sentiment": "positive".*
this is bad: \{"sentiment": "negative"' -- "$gpux" run sentiment-analysis --batch "I love it" "this is bad"
# answer without labels names the class by its index; a bad key is one line naming it
mkdir -p "$tmp/s" && cp "$ex/model.onnx" "$ex/vocab.txt" "$tmp/s/"
cat > "$tmp/s/GPUXfile" <<'YAML'
model: ./model.onnx
preprocessing: {tokenizer: {vocab: ./vocab.txt}}
postprocessing: {output: logits, answer: {label: class, score: logit}}
YAML
expect no-labels 0 '^\{"class": "2", "logit": 3\.0000\}$' -- "$gpux" run "$tmp/s" --input "love"
sed -i 's/answer: {label: class, score: logit}/answer: {label: outputs}/' "$tmp/s/GPUXfile"
expect_error taken-key "key 'postprocessing.answer.label': 'outputs' is a key the answer already has" -- "$gpux" run "$tmp/s" --input "x"
sed -i 's/answer: {label: outputs}/answer: {}/' "$tmp/s/GPUXfile"
expect_error empty "key 'postprocessing.answer': give label, score or scores" -- "$gpux" run "$tmp/s" --input "x"
sed -i 's/answer: {}/answer: {label: a, ctc: x}/' "$tmp/s/GPUXfile"
expect_error unknown "key 'postprocessing.answer.ctc': unknown key" -- "$gpux" run "$tmp/s" --input "x"
finish
