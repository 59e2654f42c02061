// make-models.mjs — writes tiny ONNX models that fit gpux's init templates, so that the template
// tests can build and run them: a protobuf writer by hand (no dependencies).
//   node tests/app/make-models.mjs OUTDIR
//     image.onnx  pixel_values float[batch,3,224,224] -> GlobalAveragePool -> Flatten -> Gemm -> logits[batch,4]
//     text.onnx   input_ids, attention_mask, token_type_ids int64[batch,seq] -> mean of masked ids -> Gemm -> logits[batch,2]
//     audio.onnx  audio float[batch,samples] -> mean |x| -> Gemm -> logits[batch,3]
//     scale.onnx  x float[batch,4] -> Mul 10 -> scaled[batch,4]   (a second pipeline step)
//     map.onnx    x float[batch,3,8,8] -> mean over channels -> map[batch,1,8,8]   (an image-like output)
//     strings.onnx  s string[2] -> Identity -> t string[2]
//     detector.onnx preds float[1,a,b] -> Identity -> raw   (a detector's raw output, in either layout)
//     ssd-image.onnx images float[1,3,64,64] -> boxes float[1,2,4] (fractions), scores float[1,2,2]
//                   (constants, SSD-style two outputs after an image input)
//     convnet.onnx  x float[1,3,32,32] -> Conv 16 3x3 -> Relu -> Conv 16 3x3 stride 2 -> Relu -> Flatten
//                   -> MatMul -> Add -> logits[1,10]   (three GEMM shapes, one with a deep K)
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

const FLOAT = 1, STRING = 8, INT64 = 7;
const dim = (d) => msg(1, typeof d === "number" ? [int(1, d)] : [str(2, d)]);
const valueInfo = (f, name, type, dims) =>
  msg(f, [str(1, name), msg(2, [msg(1, [int(1, type), msg(2, dims.map(dim))])])]);
const tensor = (name, dims, values) => {
  const raw = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => raw.writeFloatLE(v, i * 4));
  return msg(5, [...dims.map((d) => int(1, d)), int(2, FLOAT), str(8, name), bytes(9, [...raw])]);
};
const attrInt = (name, v) => msg(5, [str(1, name), int(3, v), int(20, 2)]);
const attrInts = (name, vs) => msg(5, [str(1, name), ...vs.map((v) => int(8, v)), int(20, 7)]);
const node = (op, inputs, outputs, attrs = []) =>
  msg(1, [...inputs.map((i) => str(1, i)), ...outputs.map((o) => str(2, o)), str(3, outputs[0]), str(4, op), ...attrs]);
const model = (graph) => Buffer.from([...int(1, 8), ...msg(8, [str(1, ""), int(2, 13)]), ...msg(7, graph)]);

const out = process.argv[2] || ".";
writeFileSync(`${out}/image.onnx`, model([
  node("GlobalAveragePool", ["pixel_values"], ["pooled"]),
  node("Flatten", ["pooled"], ["flat"], [attrInt("axis", 1)]),
  node("Gemm", ["flat", "W", "B"], ["logits"]),
  str(2, "tiny-image"),
  tensor("W", [3, 4], [1, -1, 0.5, 2, 0.5, 1, -1, 0, -1, 0.5, 1, -2]),
  tensor("B", [4], [0, 0.1, 0.2, 0.3]),
  valueInfo(11, "pixel_values", FLOAT, ["batch", 3, 224, 224]),
  valueInfo(12, "logits", FLOAT, ["batch", 4]),
]));
writeFileSync(`${out}/text.onnx`, model([
  node("Add", ["input_ids", "token_type_ids"], ["ids"]),
  node("Mul", ["ids", "attention_mask"], ["masked"]),
  node("Cast", ["masked"], ["f"], [attrInt("to", FLOAT)]),
  node("ReduceMean", ["f"], ["mean"], [attrInts("axes", [1]), attrInt("keepdims", 1)]),
  node("Gemm", ["mean", "W", "B"], ["logits"]),
  str(2, "tiny-text"),
  tensor("W", [1, 2], [0.01, -0.01]),
  tensor("B", [2], [0, 0]),
  valueInfo(11, "input_ids", INT64, ["batch", "seq"]),
  valueInfo(11, "attention_mask", INT64, ["batch", "seq"]),
  valueInfo(11, "token_type_ids", INT64, ["batch", "seq"]),
  valueInfo(12, "logits", FLOAT, ["batch", 2]),
]));
writeFileSync(`${out}/audio.onnx`, model([
  node("Abs", ["audio"], ["a"]),
  node("ReduceMean", ["a"], ["mean"], [attrInts("axes", [1]), attrInt("keepdims", 1)]),
  node("Gemm", ["mean", "W", "B"], ["logits"]),
  str(2, "tiny-audio"),
  tensor("W", [1, 3], [10, -10, 1]),
  tensor("B", [3], [0, 0.5, 0.2]),
  valueInfo(11, "audio", FLOAT, ["batch", "samples"]),
  valueInfo(12, "logits", FLOAT, ["batch", 3]),
]));
writeFileSync(`${out}/scale.onnx`, model([
  node("Mul", ["x", "ten"], ["scaled"]),
  str(2, "tiny-scale"),
  tensor("ten", [1], [10]),
  valueInfo(11, "x", FLOAT, ["batch", 4]),
  valueInfo(12, "scaled", FLOAT, ["batch", 4]),
]));
writeFileSync(`${out}/map.onnx`, model([
  node("ReduceMean", ["x"], ["map"], [attrInts("axes", [1]), attrInt("keepdims", 1)]),
  str(2, "tiny-map"),
  valueInfo(11, "x", FLOAT, ["batch", 3, 8, 8]),
  valueInfo(12, "map", FLOAT, ["batch", 1, 8, 8]),
]));
writeFileSync(`${out}/strings.onnx`, model([
  node("Identity", ["s"], ["t"]),
  str(2, "tiny-strings"),
  valueInfo(11, "s", STRING, [2]),
  valueInfo(12, "t", STRING, [2]),
]));
// a detector's raw output as its input, for the detection post-processing: what the model
// "predicts" is exactly what the test gives
writeFileSync(`${out}/detector.onnx`, model([
  node("Identity", ["preds"], ["raw"]),
  str(2, "tiny-detector"),
  valueInfo(11, "preds", FLOAT, [1, "a", "b"]),
  valueInfo(12, "raw", FLOAT, [1, "a", "b"]),
]));
writeFileSync(`${out}/ssd-image.onnx`, model([
  node("ReduceSum", ["images"], ["total"], [attrInt("keepdims", 0)]),
  node("Mul", ["total", "zero"], ["nothing"]),
  node("Add", ["boxes_c", "nothing"], ["boxes"]),
  node("Add", ["scores_c", "nothing"], ["scores"]),
  str(2, "ssd-image"),
  tensor("zero", [], [0]),
  tensor("boxes_c", [1, 2, 4], [0.25, 0.5, 0.75, 1.0, 0, 0, 0.1, 0.1]),
  tensor("scores_c", [1, 2, 2], [0.05, 0.9, 0.2, 0.1]),
  valueInfo(11, "images", FLOAT, [1, 3, 64, 64]),
  valueInfo(12, "boxes", FLOAT, [1, 2, 4]),
  valueInfo(12, "scores", FLOAT, [1, 2, 2]),
]));
// a small ResNet-like stem and head: GEMMs of three shapes for tuning (weights from a fixed formula)
const weights = (n, seed) => Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed * 78.233) * 0.3);
writeFileSync(`${out}/convnet.onnx`, model([
  node("Conv", ["x", "W1", "B1"], ["c1"], [attrInts("pads", [1, 1, 1, 1]), attrInts("kernel_shape", [3, 3])]),
  node("Relu", ["c1"], ["r1"]),
  node("Conv", ["r1", "W2", "B2"], ["c2"], [attrInts("pads", [1, 1, 1, 1]), attrInts("kernel_shape", [3, 3]), attrInts("strides", [2, 2])]),
  node("Relu", ["c2"], ["r2"]),
  node("Flatten", ["r2"], ["flat"], [attrInt("axis", 1)]),
  node("MatMul", ["flat", "W3"], ["mm"]),
  node("Add", ["mm", "B3"], ["logits"]),
  str(2, "convnet"),
  tensor("W1", [16, 3, 3, 3], weights(432, 1)),
  tensor("B1", [16], weights(16, 2)),
  tensor("W2", [16, 16, 3, 3], weights(2304, 3)),
  tensor("B2", [16], weights(16, 4)),
  tensor("W3", [4096, 10], weights(40960, 5)),
  tensor("B3", [10], weights(10, 6)),
  valueInfo(11, "x", FLOAT, [1, 3, 32, 32]),
  valueInfo(12, "logits", FLOAT, [1, 10]),
]));
