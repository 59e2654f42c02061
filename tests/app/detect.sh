#!/usr/bin/env bash
# Object detection post-processing (src/prepost/detect.c) end to end: a GPUXfile whose output is
# a YOLO-style [1, 4 + C, N] tensor with `postprocessing.detect`; 200 random candidates are fed
# through a model that passes them on, and gpux's boxes (score threshold, class-aware NMS, best
# first, labels) must equal those of an independent NMS written here in Python. Also the
# yolo-rows layout, --json, and one-line errors for a wrong output shape and bad settings. Then
# ONNX Runtime's NonMaxSuppression as a second reference on many random sets, and examples/detect
# end to end: letterboxed boxes mapped back to the photo, and the drawn PNG decoded and checked.
#   tests/app/detect.sh GPUX
source "$(dirname "$0")/lib.sh" "$1"
need node python3
node "$root/tests/app/make-models.mjs" "$tmp" >/dev/null
mkdir -p "$tmp/det" && cp "$tmp/detector.onnx" "$tmp/det/model.onnx"
cat > "$tmp/det/GPUXfile" <<'YAML'
name: det
model: ./model.onnx
postprocessing:
  output: raw
  detect: {format: yolo, threshold: 0.3, iou: 0.5, max_detections: 50}
  labels: [cat, dog]
YAML
cat > "$tmp/ref.py" <<'PY'
import json, random, sys
random.seed(7)
N = 200
cand = [[random.uniform(0, 64), random.uniform(0, 64), random.uniform(4, 24), random.uniform(4, 24),
         random.random(), random.random()] for _ in range(N)]
preds = [[[cand[i][r] for i in range(N)] for r in range(6)]]  # [1, 6, N]
json.dump(preds, open(sys.argv[1], "w"))
def box(c): return [c[0] - c[2] / 2, c[1] - c[3] / 2, c[0] + c[2] / 2, c[1] + c[3] / 2]
def iou(a, b):
    w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0: return 0.0
    i = w * h
    return i / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - i)
dets = []
for c in cand:
    cls = 0 if c[4] >= c[5] else 1
    s = max(c[4], c[5])
    if s >= 0.3: dets.append((s, cls, box(c)))
dets.sort(key=lambda d: -d[0])
kept = []
for d in dets:
    if all(k[1] != d[1] or iou(k[2], d[2]) <= 0.5 for k in kept): kept.append(d)
kept = kept[:50]
json.dump([{"class": c, "score": s, "box": b} for s, c, b in kept], open(sys.argv[2], "w"))
PY
python3 "$tmp/ref.py" "$tmp/preds.json" "$tmp/want.json"
"$gpux" run "$tmp/det" --input "preds=@$tmp/preds.json" --json > "$tmp/got.json"
expect matches-reference-nms 0 '^ok [0-9]+$' -- python3 -c "
import json, sys
got = [o for o in json.load(open('$tmp/got.json'))['outputs'] if o['name'] == 'raw'][0]['detections']
want = json.load(open('$tmp/want.json'))
ok = len(got) == len(want) and all(g['class'] == w['class'] and g['label'] == ['cat', 'dog'][w['class']]
     and abs(g['score'] - w['score']) < 1e-6 and all(abs(a - b) < 1e-3 for a, b in zip(g['box'], w['box'])) for g, w in zip(got, want))
print('ok', len(got)) if ok and len(got) > 5 else print('got', len(got), 'want', len(want), got[:2], want[:2])"
expect text 0 '^(cat|dog) 0\.[0-9]{4} \[' -- "$gpux" run "$tmp/det" --input "preds=@$tmp/preds.json"
# nothing over the threshold
expect none 0 '^no detections \(score threshold 0\.30\)' -- "$gpux" run "$tmp/det" --input 'preds=[[[1],[1],[2],[2],[0.1],[0.2]]]'
# yolo-rows reads [1, N, 5 + C]: the same 6 values per candidate as x, y, w, h, objectness, one class
sed -i 's/format: yolo,/format: yolo-rows,/' "$tmp/det/GPUXfile"
expect rows 0 '"detections":\[\{"class":0,"label":"cat","score":0\.4[0-9]*,"box":\[8,18,12,22\]\}\]' -- \
  "$gpux" run "$tmp/det" --json --input 'preds=[[[10,20,4,4,0.5,0.8],[11,20,4,4,0.5,0.7],[40,40,4,4,0.1,0.2]]]'
# against ONNX Runtime's NonMaxSuppression op on 40 random candidate sets (YOLO and SSD-style
# two-output layouts; tests/app/detect-nms-ref.mjs)
expect onnxruntime-nms 0 '^ok 40 [0-9]+$' -- node "$root/tests/app/detect-nms-ref.mjs" "$gpux" "$tmp/nms" "$root/deps/npm/node_modules/onnxruntime-node"

# examples/detect end to end: squares.png (640 x 480) letterboxed to 320 x 320 (scale 0.5, 40
# grey rows above and below); the squares sit where the model's windows fit them exactly, so the
# boxes mapped back to the photo must be the squares' own pixels
ex="$root/examples/detect"
"$gpux" run "$ex" --backend cpu --input "$ex/squares.png" --json --output "$tmp/annotated.png" > "$tmp/ex.json"
expect letterbox-mapped-back 0 '^ok$' -- python3 -c "
import json
o = json.load(open('$tmp/ex.json'))['outputs'][0]
want = {'red': [64, 112, 192, 240], 'blue': [96, 320, 160, 384], 'green': [320, 176, 576, 432]}
got = {d['label']: d['box'] for d in o['detections']}
ok = o['box_space'] == 'image' and o['image_size'] == [640, 480] and got.keys() == want.keys() and \
     all(abs(a - b) < 1e-3 for k in want for a, b in zip(got[k], want[k]))
print('ok' if ok else o)"
# the drawn PNG: outline pixels in the class colour (hue frac(k x 0.618034), s 0.85, v 0.95) on
# the box's edges, the squares' insides and the background elsewhere as in the photo
cat > "$tmp/png.py" <<'PY'
import colorsys, struct, sys, zlib
def decode(path):
    b = open(path, 'rb').read()
    assert b[:8] == b'\x89PNG\r\n\x1a\n'
    pos, idat = 8, b''
    while pos < len(b):
        n, t = struct.unpack('>I4s', b[pos:pos + 8]); d = b[pos + 8:pos + 8 + n]; pos += 12 + n
        if t == b'IHDR': w, h, depth, ctype = struct.unpack('>IIBB', d[:10])
        if t == b'IDAT': idat += d
    assert depth == 8 and ctype in (2, 6)
    bpp = 3 if ctype == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), w * bpp, [], bytearray(w * bpp)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0; up = prev[i]; c = prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + up) & 255
            elif f == 3: line[i] = (line[i] + (a + up) // 2) & 255
            elif f == 4:
                p = a + up - c; pa, pb, pc = abs(p - a), abs(p - up), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else up if pb <= pc else c)) & 255
        rows.append(line); prev = line
    return w, h, lambda x, y: tuple(rows[y][x * bpp:x * bpp + 3])
def colour(k):
    return tuple(int(c * 255 + 0.5) for c in colorsys.hsv_to_rgb((k * 0.618033988749895) % 1.0, 0.85, 0.95))
w, h, px = decode(sys.argv[1]); _, _, orig = decode(sys.argv[2])
bad = []
for cls, (x1, y1, x2, y2) in [(0, (64, 112, 192, 240)), (2, (96, 320, 160, 384)), (1, (320, 176, 576, 432))]:
    my, mx = (y1 + y2) // 2, (x1 + x2) // 2
    for x, y in [(x1, my), (x1 + 1, my), (x2 - 1, my), (x2 - 2, my), (mx, y2 - 1), (mx, y2 - 2)]:
        if px(x, y) != colour(cls): bad.append(('edge', cls, x, y, px(x, y), colour(cls)))
    for x, y in [(mx, my), (x1 + 5, my), (x1 - 3, my), (x2 + 2, my), (mx, y2 + 2)]:
        if px(x, y) != orig(x, y): bad.append(('untouched', cls, x, y, px(x, y), orig(x, y)))
print('ok' if (w, h) == (640, 480) and not bad else (w, h, bad[:4]))
PY
expect drawn-png 0 '^ok$' -- python3 "$tmp/png.py" "$tmp/annotated.png" "$ex/squares.png"
# the same photo as JPEG: decoded, boxes within a pixel or two, drawn on it
convert "$ex/squares.png" -quality 95 "$tmp/squares.jpg"
expect jpeg 0 '^ok$' -- bash -c "'$gpux' run '$ex' --backend cpu --input '$tmp/squares.jpg' --json --output '$tmp/annotated-jpg.png' |
  python3 -c \"import json, sys; o = json.load(sys.stdin)['outputs'][0]; b = {d['label']: d['box'] for d in o['detections']}
print('ok' if abs(b['red'][0] - 64) <= 2 and abs(b['green'][3] - 432) <= 2 and len(b) == 3 else b)\" && python3 -c \"
import struct; d = open('$tmp/annotated-jpg.png', 'rb').read(); assert struct.unpack('>II', d[16:24]) == (640, 480)\""
expect text 0 '^red 0\.[0-9]{4} \[64\.0, 112\.0, 192\.0, 240\.0\]' -- "$gpux" run "$ex" --backend cpu --input "$ex/squares.png"
# SSD-style: boxes and scores in two outputs, the boxes fractions of the letterboxed 64 x 64 input:
# (0.25, 0.5, 0.75, 1) of it is (16, 32, 48, 64), and in the 128 x 64 photo (scale 0.5, 16 rows
# of border above) (32, 32, 96, 96), clipped to the photo's height: 64
mkdir -p "$tmp/ssd" && cp "$tmp/ssd-image.onnx" "$tmp/ssd/model.onnx"
cat > "$tmp/ssd/GPUXfile" <<'YAML'
model: ./model.onnx
inputs: {images: image}
preprocessing: {image: {resize: {letterbox: 64}}}
postprocessing:
  output: boxes
  detect: {format: boxes, scores: scores, normalized: true, threshold: 0.3}
  labels: [cat, dog]
YAML
convert -size 128x64 xc:white "$tmp/wide.png"
expect ssd-normalized 0 '"box_space":"image","image_size":\[128,64\],"detections":\[\{"class":1,"label":"dog","score":0\.9[0-9]*,"box":\[32,32,96,64\]\}\]' -- \
  "$gpux" run "$tmp/ssd" --backend cpu --input "$tmp/wide.png" --json
sed -i 's/scores: scores,/scores: nope,/' "$tmp/ssd/GPUXfile"
expect_error ssd-scores-named "key 'postprocessing.detect.scores': 'nope' is not an output other than 'boxes'" -- "$gpux" run "$tmp/ssd" --input "$tmp/wide.png"
expect_error output-needs-image 'the boxes are drawn on the input image' -- "$gpux" run "$tmp/det" --input 'preds=[[[10,20,4,4,0.5,0.8]]]' --output "$tmp/x.png"
sed -i 's/threshold: 0.3/threshold: 2/' "$tmp/det/GPUXfile"
expect_error bad-threshold "key 'postprocessing.detect.threshold': 2 is not between 0 and 1" -- "$gpux" run "$tmp/det" --input 'preds=[[[1],[1],[2],[2],[0.1],[0.2]]]'
finish
