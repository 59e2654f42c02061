// detect-nms-ref.mjs — gpux's detection post-processing against ONNX Runtime's NonMaxSuppression
// op on many random candidate sets. Each set is fed to gpux (a GPUXfile whose model passes its
// input through, `postprocessing.detect` with the set's thresholds) and, through a one-node ONNX
// model written here, to ONNX Runtime: NonMaxSuppression per class (center_point_box 1 for the
// YOLO layout's cx, cy, w, h; 0 for the SSD-style two outputs' x1, y1, x2, y2), the selected
// boxes then ranked by score and cut at max_detections. Every candidate has one class above the
// score threshold and the others below it, so "the best class of each box" (gpux) and "every
// class's boxes" (NonMaxSuppression) select the same things. Boxes are drawn around a few
// centres so that many overlap. Prints "ok SETS BOXES" or the first difference.
//   node detect-nms-ref.mjs GPUX TMPDIR ORT_MODULE_DIR
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync, copyFileSync } from "node:fs";
import { createRequire } from "node:module";

const [gpux, tmp, ortDir] = process.argv.slice(2);
const ort = createRequire(import.meta.url)(ortDir);

// a tiny protobuf writer for the one-node NonMaxSuppression model and the pass-through models
function varint(n) {
  const out = [];
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n;
  do { let b = Number(v & 0x7fn); v >>= 7n; if (v) b |= 0x80; out.push(b); } while (v);
  return out;
}
const key = (f, w) => varint((f << 3) | w);
const int = (f, v) => [...key(f, 0), ...varint(v)];
const bytes = (f, b) => [...key(f, 2), ...varint(b.length), ...b];
const str = (f, s) => bytes(f, [...Buffer.from(s, "utf8")]);
const msg = (f, parts) => bytes(f, parts.flat());
const FLOAT = 1, INT64 = 7;
const dim = (d) => msg(1, typeof d === "number" ? [int(1, d)] : [str(2, d)]);
const valueInfo = (f, name, type, dims) => msg(f, [str(1, name), msg(2, [msg(1, [int(1, type), msg(2, dims.map(dim))])])]);
const attrInt = (name, v) => msg(5, [str(1, name), int(3, v), int(20, 2)]);
const node = (op, inputs, outputs, attrs = []) =>
  msg(1, [...inputs.map((i) => str(1, i)), ...outputs.map((o) => str(2, o)), str(3, outputs[0]), str(4, op), ...attrs]);
const model = (graph) => Buffer.from([...int(1, 8), ...msg(8, [str(1, ""), int(2, 13)]), ...msg(7, graph)]);

const nmsModel = (centerPointBox) => model([
  node("NonMaxSuppression", ["boxes", "scores", "max_out", "iou", "score_thr"], ["selected"], [attrInt("center_point_box", centerPointBox)]),
  str(2, "nms"),
  valueInfo(11, "boxes", FLOAT, [1, "n", 4]), valueInfo(11, "scores", FLOAT, [1, "c", "n"]),
  valueInfo(11, "max_out", INT64, [1]), valueInfo(11, "iou", FLOAT, [1]), valueInfo(11, "score_thr", FLOAT, [1]),
  valueInfo(12, "selected", INT64, ["k", 3]),
]);
const nms = [await ort.InferenceSession.create(nmsModel(0)), await ort.InferenceSession.create(nmsModel(1))];

mkdirSync(`${tmp}/yolo`, { recursive: true });
mkdirSync(`${tmp}/ssd`, { recursive: true });
writeFileSync(`${tmp}/yolo/model.onnx`, model([
  node("Identity", ["preds"], ["raw"]), str(2, "pass"),
  valueInfo(11, "preds", FLOAT, [1, "a", "b"]), valueInfo(12, "raw", FLOAT, [1, "a", "b"]),
]));
writeFileSync(`${tmp}/ssd/model.onnx`, model([
  node("Identity", ["boxes_in"], ["boxes"]), node("Identity", ["scores_in"], ["scores"]), str(2, "pass2"),
  valueInfo(11, "boxes_in", FLOAT, [1, "n", 4]), valueInfo(11, "scores_in", FLOAT, [1, "n", "c"]),
  valueInfo(12, "boxes", FLOAT, [1, "n", 4]), valueInfo(12, "scores", FLOAT, [1, "n", "c"]),
]));

let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const f32 = (v) => Math.fround(v);
let sets = 0, boxesSeen = 0;
for (let set = 0; set < 40; set++) {
  const ssd = set % 3 === 2;
  const n = 1 + Math.floor(rand() * 250), c = 1 + Math.floor(rand() * 4);
  const thr = f32(0.1 + rand() * 0.6), iou = f32(0.2 + rand() * 0.6), maxDet = [0, 5, 20, 100][set % 4];
  const centres = Array.from({ length: 1 + Math.floor(rand() * 5) }, () => [rand() * 200, rand() * 200]);
  const cand = [];
  for (let i = 0; i < n; i++) {
    const [ox, oy] = centres[Math.floor(rand() * centres.length)];
    const cx = f32(ox + rand() * 30), cy = f32(oy + rand() * 30), w = f32(5 + rand() * 60), h = f32(5 + rand() * 60);
    const cls = Math.floor(rand() * c);
    const scores = Array.from({ length: c }, (_, k) => f32(k === cls ? thr + 0.001 + rand() * (1 - thr - 0.001) : rand() * thr * 0.99));
    cand.push({ cx, cy, w, h, scores });
  }
  // the reference: ONNX Runtime's NonMaxSuppression over every class
  const boxes = new Float32Array(n * 4), scoresCN = new Float32Array(c * n);
  cand.forEach((k, i) => {
    const b = ssd ? [f32(k.cx - k.w / 2), f32(k.cy - k.h / 2), f32(k.cx + k.w / 2), f32(k.cy + k.h / 2)] : [k.cx, k.cy, k.w, k.h];
    boxes.set(b, i * 4);
    k.scores.forEach((s, j) => (scoresCN[j * n + i] = s));
  });
  const r = await nms[ssd ? 0 : 1].run({
    boxes: new ort.Tensor("float32", boxes, [1, n, 4]), scores: new ort.Tensor("float32", scoresCN, [1, c, n]),
    max_out: new ort.Tensor("int64", BigInt64Array.from([BigInt(n)]), [1]),
    iou: new ort.Tensor("float32", Float32Array.from([iou]), [1]), score_thr: new ort.Tensor("float32", Float32Array.from([thr]), [1]),
  });
  const sel = r.selected.data;
  let want = [];
  for (let i = 0; i < sel.length; i += 3) {
    const cls = Number(sel[i + 1]), idx = Number(sel[i + 2]);
    want.push({ cls, idx, score: cand[idx].scores[cls] });
  }
  want.sort((a, b) => b.score - a.score);
  if (maxDet) want = want.slice(0, maxDet);

  // gpux
  const dir = ssd ? `${tmp}/ssd` : `${tmp}/yolo`;
  writeFileSync(`${dir}/GPUXfile`, ssd
    ? `model: ./model.onnx\npostprocessing:\n  output: boxes\n  detect: {format: boxes, scores: scores, threshold: ${thr}, iou: ${iou}, max_detections: ${maxDet}}\n`
    : `model: ./model.onnx\npostprocessing:\n  output: raw\n  detect: {format: yolo, threshold: ${thr}, iou: ${iou}, max_detections: ${maxDet}}\n`);
  const args = ["run", dir, "--json", "--backend", "cpu"];
  if (ssd) {
    writeFileSync(`${tmp}/b.json`, JSON.stringify([cand.map((k, i) => Array.from(boxes.slice(i * 4, i * 4 + 4)))]));
    writeFileSync(`${tmp}/s.json`, JSON.stringify([cand.map((k) => k.scores)]));
    args.push("--input", `boxes_in=@${tmp}/b.json`, "--input", `scores_in=@${tmp}/s.json`);
  } else {
    const rows = [[...Array(4 + c)].map((_, j) => cand.map((k) => (j < 4 ? [k.cx, k.cy, k.w, k.h][j] : k.scores[j - 4])))];
    writeFileSync(`${tmp}/p.json`, JSON.stringify(rows));
    args.push("--input", `preds=@${tmp}/p.json`);
  }
  const answer = JSON.parse(execFileSync(gpux, args, { encoding: "utf8" }));
  const got = answer.outputs.find((o) => o.detections).detections;
  const bad = (why) => { console.log(`set ${set} (${ssd ? "ssd" : "yolo"}, n ${n}, c ${c}, thr ${thr}, iou ${iou}, max ${maxDet}): ${why}`); process.exit(1); };
  if (got.length !== want.length) bad(`gpux kept ${got.length} boxes, NonMaxSuppression ${want.length}`);
  want.forEach((w, i) => {
    const g = got[i], k = cand[w.idx];
    const box = [k.cx - k.w / 2, k.cy - k.h / 2, k.cx + k.w / 2, k.cy + k.h / 2];
    if (g.class !== w.cls || Math.abs(g.score - w.score) > 1e-6 || g.box.some((v, j) => Math.abs(v - box[j]) > 1e-3))
      bad(`detection ${i}: gpux ${JSON.stringify(g)}, reference class ${w.cls} score ${w.score} box ${box}`);
  });
  sets++;
  boxesSeen += want.length;
}
console.log(`ok ${sets} ${boxesSeen}`);
