// make-model.mjs — writes model.onnx, a YOLO-style detector of red, green and blue squares whose
// weights are set by hand, not trained: it shows detection end to end (letterbox in, boxes out
// in the photo's pixels, drawn with --output) with no download. Run: node make-model.mjs
//
// images float[1,3,320,320] (RGB in 0..1) -> output0 float[1,7,1707]: for each candidate window
// cx, cy, w, h (pixels of the 320 x 320 input) then the scores of red, green and blue, as
// YOLOv8 lays out its head. A pixel's "redness" is R - (G + B) / 2 (1 for pure red, 0 for grey,
// white or black), clipped at 0; a window's score is its mean redness less that of the ring
// around it (a window twice as large, centred), so a square scores 1 in the window that fits it
// and less in larger or smaller ones. Windows of 32, 64 and 128 pixels at strides 8, 16 and 32.
import { writeFileSync } from "node:fs";

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
const dim = (d) => msg(1, [int(1, d)]);
const valueInfo = (f, name, dims) => msg(f, [str(1, name), msg(2, [msg(1, [int(1, FLOAT), msg(2, dims.map(dim))])])]);
const tensor = (name, dims, values) => {
  const raw = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => raw.writeFloatLE(v, i * 4));
  return msg(5, [...dims.map((d) => int(1, d)), int(2, FLOAT), str(8, name), bytes(9, [...raw])]);
};
const int64s = (name, values) => {
  const raw = Buffer.alloc(values.length * 8);
  values.forEach((v, i) => raw.writeBigInt64LE(BigInt(v), i * 8));
  return msg(5, [int(1, values.length), int(2, INT64), str(8, name), bytes(9, [...raw])]);
};
const attrInt = (name, v) => msg(5, [str(1, name), int(3, v), int(20, 2)]);
const attrInts = (name, vs) => msg(5, [str(1, name), ...vs.map((v) => int(8, v)), int(20, 7)]);
const node = (op, inputs, outputs, attrs = []) =>
  msg(1, [...inputs.map((i) => str(1, i)), ...outputs.map((o) => str(2, o)), str(3, outputs[0]), str(4, op), ...attrs]);

const SIZE = 320, scales = [[32, 8], [64, 16], [128, 32]];
const nodes = [], inits = [];
// per-pixel colour purity: a 1x1 convolution, then Relu
inits.push(tensor("purity_w", [3, 3, 1, 1], [1, -0.5, -0.5, -0.5, 1, -0.5, -0.5, -0.5, 1]));
nodes.push(node("Conv", ["images", "purity_w"], ["purity_raw"]), node("Relu", ["purity_raw"], ["purity"]));
const parts = [];
let total = 0;
for (const [win, stride] of scales) {
  const g = (SIZE - win) / stride + 1, n = g * g, s = `s${win}`;
  nodes.push(node("AveragePool", ["purity"], [`${s}_inner`], [attrInts("kernel_shape", [win, win]), attrInts("strides", [stride, stride])]));
  const h = win / 2;
  nodes.push(node("AveragePool", ["purity"], [`${s}_outer`], [attrInts("kernel_shape", [2 * win, 2 * win]),
    attrInts("strides", [stride, stride]), attrInts("pads", [h, h, h, h]), attrInt("count_include_pad", 1)]));
  // ring mean = (4 outer - inner) / 3; score = relu(inner - ring) = relu((4 inner - 4 outer) / 3)
  inits.push(tensor(`${s}_k`, [], [4 / 3]));
  nodes.push(node("Sub", [`${s}_inner`, `${s}_outer`], [`${s}_diff`]), node("Mul", [`${s}_diff`, `${s}_k`], [`${s}_lin`]),
             node("Relu", [`${s}_lin`], [`${s}_score`]));
  inits.push(int64s(`${s}_shape`, [1, 3, n]));
  nodes.push(node("Reshape", [`${s}_score`, `${s}_shape`], [`${s}_scores`]));
  const boxes = [[], [], [], []];
  for (let y = 0; y < g; y++)
    for (let x = 0; x < g; x++) {
      boxes[0].push(x * stride + win / 2); boxes[1].push(y * stride + win / 2); boxes[2].push(win); boxes[3].push(win);
    }
  inits.push(tensor(`${s}_boxes`, [1, 4, n], boxes.flat()));
  nodes.push(node("Concat", [`${s}_boxes`, `${s}_scores`], [`${s}_head`], [attrInt("axis", 1)]));
  parts.push(`${s}_head`);
  total += n;
}
nodes.push(node("Concat", parts, ["output0"], [attrInt("axis", 2)]));
const graph = [...nodes, str(2, "color-squares"), ...inits, valueInfo(11, "images", [1, 3, SIZE, SIZE]), valueInfo(12, "output0", [1, 7, total])];
const model = Buffer.from([...int(1, 8), ...str(2, "gpux examples/detect"), ...msg(8, [str(1, ""), int(2, 13)]), ...msg(7, graph)]);
writeFileSync(new URL("model.onnx", import.meta.url), model);
console.log(`model.onnx: [1, 7, ${total}] candidates, ${model.length} bytes`);
