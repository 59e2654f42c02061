#!/usr/bin/env bash
# Object detection post-processing (src/prepost/detect.c) end to end: a GPUXfile whose output is
# a YOLO-style [1, 4 + C, N] tensor with `postprocessing.detect`; 200 random candidates are fed
# through a model that passes them on, and gpux's boxes (score threshold, class-aware NMS, best
# first, labels) must equal those of an independent NMS written here in Python. Also the
# yolo-rows layout, --json, and one-line errors for a wrong output shape and bad settings.
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
sed -i 's/threshold: 0.3/threshold: 2/' "$tmp/det/GPUXfile"
expect_error bad-threshold "key 'postprocessing.detect.threshold': 2 is not between 0 and 1" -- "$gpux" run "$tmp/det" --input 'preds=[[[1],[1],[2],[2],[0.1],[0.2]]]'
finish
