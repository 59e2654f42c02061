#!/usr/bin/env bash
# gpux build copies only files inside the build folder into an image (issue 15, item 11): a model
# or label file named by an absolute path, through "..", or through a symlink out of the folder
# is a one-line error naming the file and the folder, and nothing of it reaches the store;
# --allow-outside lets it in; a symlink that stays inside the folder is fine.
#   tests/app/build-confinement.sh GPUX
source "$(dirname "$0")/lib.sh" "$1"
need python3
python3 "$root/tests/app/make-slow-model.py" "$tmp/outside"
printf 'secret-label-4c1d\n' > "$tmp/outside/secret.txt"
gpuxfile() { printf 'name: c\nversion: "1"\nmodel: %s\nruntime:\n  backend: cpu\n%s' "$1" "${2:-}" > "$tmp/c/GPUXfile"; }
mkdir -p "$tmp/c"

gpuxfile "$tmp/outside/model.onnx"
expect_error absolute "$tmp/outside/model.onnx is outside the build folder $tmp/c: copy it in, or build with --allow-outside" -- \
  "$gpux" build -q "$tmp/c"
gpuxfile ../outside/model.onnx
expect_error dotdot "c/\.\./outside/model\.onnx \(it is $tmp/outside/model\.onnx\) is outside the build folder" -- "$gpux" build -q "$tmp/c"
ln -s ../outside/model.onnx "$tmp/c/model.onnx"
gpuxfile model.onnx
expect_error symlink "c/model\.onnx \(it is $tmp/outside/model\.onnx\) is outside the build folder" -- "$gpux" build -q "$tmp/c"
rm "$tmp/c/model.onnx" && cp "$tmp/outside/model.onnx" "$tmp/c/"
gpuxfile model.onnx "$(printf 'outputs:\n  - name: y\n    labels: ../outside/secret.txt\n')"
expect_error labels "outside/secret\.txt\) is outside the build folder" -- "$gpux" build -q "$tmp/c"
expect nothing-stored 0 '^0$' -- bash -c "grep -rl secret-label-4c1d '$GPUX_HOME' 2>/dev/null | wc -l"
expect allow-outside 0 '^Built c:1 .*2 layers' -- "$gpux" build -q --allow-outside "$tmp/c"
expect allowed-stored 0 '^[1-9]' -- bash -c "grep -rl secret-label-4c1d '$GPUX_HOME/blobs' | wc -l"
# a symlink that stays inside the folder
mkdir -p "$tmp/c/models" && mv "$tmp/c/model.onnx" "$tmp/c/models/" && ln -s models/model.onnx "$tmp/c/model.onnx"
gpuxfile model.onnx
expect inside-symlink 0 '^Built c:1 ' -- "$gpux" build -q "$tmp/c"
expect runs 0 'y float32\[1\]: 4' -- "$gpux" run c:1 --input n=3 --input v=1
finish
