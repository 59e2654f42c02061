#!/usr/bin/env bash
# End to end: render text lines with ImageMagick (DejaVu Sans), build examples/ocr (PaddleOCR v4
# recognition), and `gpux run` must read each line back exactly; also --json, --repeat, stdin and
# the text-direction classifier on an upright and an upside-down line.
#   tests/app/ocr.sh GPUX
source "$(dirname "$0")/lib.sh" "$1"
need convert

expect build-ocr 0 '^Built ocr:1.0 ' -- "$gpux" build -q --allow-outside "$root/examples/ocr"
i=0
for text in "Hello world 2024" "gpux reads this line" "The quick brown fox jumps" "3.14159" "ONNX on any GPU"; do
  i=$((i + 1))
  render "$text" "$tmp/line$i.png"
  expect "ocr-$i" 0 "^$text\$" -- "$gpux" run ocr --input "$tmp/line$i.png"
done
expect ocr-file-arg 0 '^Hello world 2024$' -- "$gpux" run ocr:1.0 --input @"$tmp/line1.png"
expect ocr-named 0 '^Hello world 2024$' -- "$gpux" run ocr --input x=@"$tmp/line1.png"
expect ocr-stdin 0 '^Hello world 2024$' -- bash -c "\"$gpux\" run ocr < \"$tmp/line1.png\""
expect ocr-json 0 '"text":\["Hello world 2024"\].*"timings":\{"preprocess_ms"' -- "$gpux" run ocr --json --input "$tmp/line1.png"
expect ocr-json-shape 0 '"name":"softmax_11.tmp_0","dtype":"float32","shape":\[1,[0-9]+,6625\]' -- "$gpux" run ocr --json --input "$tmp/line1.png"
expect ocr-repeat 0 '^latency over 2 runs after the first: p50 [0-9.]+ ms, p90 [0-9.]+ ms, p99 [0-9.]+ ms' -- "$gpux" run ocr --repeat 3 --input "$tmp/line1.png"
expect ocr-first-run 0 '^first run: [0-9.]+ ms \(plans the model' -- "$gpux" run ocr --repeat 3 --input "$tmp/line1.png"
expect ocr-startup 0 '^start-up: [0-9.]+ ms from program start to the first result$' -- "$gpux" run ocr --repeat 2 --input "$tmp/line1.png"
expect ocr-repeat-json 0 '"repeat":\{"runs":2,"p50_ms":[0-9.]+,.*"first_ms":[0-9.]+,"startup_ms":[0-9.]+\}\}$' -- "$gpux" run ocr --json --repeat 2 --input "$tmp/line1.png"
expect ocr-interactive 0 '^gpux reads this line$' -- bash -c "printf '%s\n' \"$tmp/line2.png\" | \"$gpux\" run ocr --interactive"
# straight from the folder, without building
expect ocr-folder 0 '^Hello world 2024$' -- "$gpux" run "$root/examples/ocr" --input "$tmp/line1.png"

# text direction: upright -> 0, rotated by 180 degrees -> 180
expect build-direction 0 '^Built text-direction:1.0 ' -- "$gpux" build -q --allow-outside "$root/examples/text-direction"
for i in 1 3 5; do
  convert "$tmp/line$i.png" -rotate 180 "$tmp/rot$i.png"
  expect "direction-upright-$i" 0 '^0 [01]\.[0-9]+$' -- "$gpux" run text-direction --input "$tmp/line$i.png"
  expect "direction-rotated-$i" 0 '^180 [01]\.[0-9]+$' -- "$gpux" run text-direction --input "$tmp/rot$i.png"
done
finish
