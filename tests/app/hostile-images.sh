#!/usr/bin/env bash
# Images whose config was tampered with, as a malicious registry could serve them (rewritten with
# valid digests by forge-image.py): files named by the config may only be the image's own layers,
# so absolute paths, "..", URLs and names that are not layers are one-line errors naming the key
# and nothing of the host is read; a config without postprocessing.output (which gpux build always
# writes) is normalized as a GPUXfile is, instead of crashing run.
#   tests/app/hostile-images.sh GPUX
source "$(dirname "$0")/lib.sh" "$1"
need convert python3
forge() { python3 "$root/tests/app/forge-image.py" "$GPUX_HOME" td:1 "$@"; }

expect build 0 '^Built td:1 ' -- "$gpux" build -q --allow-outside --backend cpu -t td:1 "$root/examples/text-direction"
render "Hello world" "$tmp/line.png"
expect run 0 '^0 0\.' -- "$gpux" run td:1 --backend cpu --input "$tmp/line.png"

forge evil:abs-labels 'spec["postprocessing"][0]["labels"] = "/etc/passwd"'
expect_error abs-labels "image evil:abs-labels config: key 'postprocessing.labels': '/etc/passwd' is an absolute path" -- \
  "$gpux" run evil:abs-labels --input "$tmp/line.png"
forge evil:abs-model 'spec["model"]["source"] = "/etc/passwd"'
expect_error abs-model "key 'model': '/etc/passwd' is an absolute path" -- "$gpux" run evil:abs-model --input "$tmp/line.png"
forge evil:dotdot 'spec["outputs"][0]["labels"] = "../../index.json"'
expect_error dotdot "key 'outputs\[0\]\.labels': '\.\./\.\./index\.json' leaves the image's folder" -- "$gpux" run evil:dotdot --input "$tmp/line.png"
forge evil:url 'spec["model"]["source"] = "https://127.0.0.1:1/model.onnx"'
expect_error url "key 'model': 'https://127.0.0.1:1/model.onnx' is not a file of the image" -- "$gpux" run evil:url --input "$tmp/line.png"
forge evil:not-layer 'spec["inputs"][0]["labels"] = "secret.txt"'
expect_error not-layer "key 'inputs\[0\]\.labels': 'secret.txt' is not a layer of the image \(layers: ch_ppocr_mobile_v2.0_cls_infer.onnx\)" -- \
  "$gpux" run evil:not-layer --input "$tmp/line.png"
forge evil:example 'spec["inputs"][0]["example"] = "/etc/passwd"'
expect example 3 "gpux: error: .*key 'inputs\[0\]\.example': '/etc/passwd' is an absolute path" -- "$gpux" serve evil:example --port 0
# a text example may hold a slash; it may not leave the image's folder
forge text-example 'spec["outputs"][0]["example"] = "and/or"'
expect text-example 0 '^0 0\.' -- "$gpux" run text-example --backend cpu --input "$tmp/line.png"
forge evil:text-example 'spec["outputs"][0]["example"] = "a/../../../x"'
expect_error text-example-dotdot "key 'outputs\[0\]\.example': 'a/\.\./\.\./\.\./x' leaves the image's folder" -- \
  "$gpux" run evil:text-example --input "$tmp/line.png"
forge evil:vocab 'spec.setdefault("preprocessing", {})["tokenizer"] = {"vocab": "/etc/passwd"}'
expect_error vocab "key 'preprocessing.tokenizer.vocab'|absolute path|tokenizer" -- "$gpux" run evil:vocab --input "$tmp/line.png"
# a layer title in a sub-folder of a layer name is still refused
forge evil:subdir 'spec["model"]["source"] = "x/../ch_ppocr_mobile_v2.0_cls_infer.onnx"'
expect_error subdir "key 'model': .* leaves the image's folder" -- "$gpux" run evil:subdir --input "$tmp/line.png"

# normalization: no postprocessing.output means the first output (it crashed run before)
forge no-output 'del spec["postprocessing"][0]["output"]'
expect no-output 0 '^0 0\.' -- "$gpux" run no-output --backend cpu --input "$tmp/line.png"
forge no-outputs 'del spec["postprocessing"][0]["output"]; del spec["outputs"]'
expect_error no-outputs "key 'postprocessing': there are no outputs to postprocess" -- "$gpux" run no-outputs --input "$tmp/line.png"
forge bad-output 'spec["postprocessing"][0]["output"] = "nope"'
expect_error bad-output "key 'postprocessing.output': 'nope' is not an output" -- "$gpux" run bad-output --input "$tmp/line.png"
finish
