// quant-models.mjs — small int8 models built the way ONNX Runtime's quantization tool writes them,
// for make-cases.mjs (tests, tiny inputs) and bench/quant.sh (1024x1024 inputs):
//   dynconv   quantize_dynamic of a conv net: DynamicQuantizeLinear -> ConvInteger (uint8
//             activations; int8 and uint8 weights, per-tensor and per-channel scales) ->
//             Cast -> Mul by the scales -> Add bias -> Relu, 8 layers, 3 -> 16 -> 32 channels,
//             strided, then a 1x1 head to 2 classes (a segmentation net's shape)
//   dynmatmul quantize_dynamic of a two-layer MLP: DynamicQuantizeLinear -> MatMulInteger
//   qdq       static QDQ: QuantizeLinear/DequantizeLinear around Conv and MatMul
//   qlinear   the QOperator format: QLinearConv, QLinearMatMul, QuantizeLinear/DequantizeLinear
// Each function returns the ModelProto bytes; weights are seeded pseudo-random, so every run
// writes the same model. Inputs have symbolic H and W (or T), so one model serves every size.

/* ---------------------------------------------------------------- protobuf writer */
function varint(v) {
  let x = BigInt.asUintN(64, BigInt(v));
  const out = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x) b |= 0x80;
    out.push(b);
  } while (x);
  return Buffer.from(out);
}
const key = (f, w) => varint((f << 3) | w);
const int = (f, v) => Buffer.concat([key(f, 0), varint(v)]);
const len = (f, b) => Buffer.concat([key(f, 2), varint(b.length), b]);
const str = (f, s) => len(f, Buffer.from(s, 'utf8'));
const f32 = (f, v) => { const b = Buffer.alloc(4); b.writeFloatLE(v); return Buffer.concat([key(f, 5), b]); };

// onnx.TensorProto.DataType
export const T = { float: 1, uint8: 2, int8: 3, int32: 6, int64: 7 };
const ARRAYS = { 1: Float32Array, 2: Uint8Array, 3: Int8Array, 6: Int32Array, 7: BigInt64Array };

// TensorProto: dims 1, data_type 2, name 8, raw_data 9
export function tensor(name, type, dims, values) {
  const A = ARRAYS[type];
  const data = A === BigInt64Array ? BigInt64Array.from(values.map(BigInt)) : A.from(values);
  return Buffer.concat([...dims.map((d) => int(1, d)), int(2, type), str(8, name),
    len(9, Buffer.from(data.buffer, data.byteOffset, data.byteLength))]);
}

// AttributeProto: name 1, f 2, i 3, ints 8, type 20 (FLOAT 1, INT 2, INTS 7)
function attr(name, v) {
  if (Array.isArray(v)) return Buffer.concat([str(1, name), ...v.map((x) => int(8, x)), int(20, 7)]);
  if (typeof v === 'object') return Buffer.concat([str(1, name), f32(2, v.f), int(20, 1)]);
  return Buffer.concat([str(1, name), int(3, v), int(20, 2)]);
}

// ValueInfoProto of a tensor; string dims are symbolic
function valueInfo(name, type, dims) {
  const shape = Buffer.concat(dims.map((d) => len(1, typeof d === 'string' ? str(2, d) : int(1, d))));
  return Buffer.concat([str(1, name), len(2, len(1, Buffer.concat([int(1, type), len(2, shape)])))]);
}

/* A graph under construction: node() appends a NodeProto, init() an initializer. */
export class Graph {
  constructor(name) { this.name = name; this.nodes = []; this.inits = []; this.inputs = []; this.outputs = []; this.n = 0; }
  node(op, inputs, outputs, attrs = {}, domain = '') {
    const name = `${op}_${this.n++}`;
    const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, (_, i) => `${name}_out${i}`) : outputs;
    this.nodes.push(Buffer.concat([...inputs.map((s) => str(1, s)), ...outs.map((s) => str(2, s)), str(3, name), str(4, op),
      ...Object.entries(attrs).map(([k, v]) => len(5, attr(k, v))), ...(domain ? [str(7, domain)] : [])]));
    return outs.length === 1 ? outs[0] : outs;
  }
  init(name, type, dims, values) { this.inits.push(tensor(name, type, dims, values)); return name; }
  input(name, type, dims) { this.inputs.push(valueInfo(name, type, dims)); return name; }
  output(name, type, dims) { this.outputs.push(valueInfo(name, type, dims)); }
  // ModelProto: ir_version 1, producer_name 2, graph 7, opset_import 8 (domain 1, version 2)
  model(opset = 13, extra = []) {
    const g = Buffer.concat([...this.nodes.map((b) => len(1, b)), str(2, this.name), ...this.inits.map((b) => len(5, b)),
      ...this.inputs.map((b) => len(11, b)), ...this.outputs.map((b) => len(12, b))]);
    const ops = [len(8, int(2, opset)), ...extra.map(([d, v]) => len(8, Buffer.concat([str(1, d), int(2, v)])))];
    return Buffer.concat([int(1, 8), str(2, 'gpux quant-models.mjs'), len(7, g), ...ops]);
  }
}

/* ---------------------------------------------------------------- seeded weights */
export function rng(seed) {                  // mulberry32
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const ints = (r, n, lo, hi) => Array.from({ length: n }, () => lo + Math.floor(r() * (hi - lo + 1)));
const floats = (r, n, lo, hi) => Array.from({ length: n }, () => Math.fround(lo + (hi - lo) * r()));

// The conv net's layers: [in, out, kernel, stride, weight type, per-channel]
const CONV_LAYERS = [
  [3, 16, 3, 2, 'int8', false], [16, 16, 3, 1, 'uint8', false], [16, 32, 3, 2, 'int8', true],
  [32, 32, 3, 1, 'uint8', true], [32, 32, 3, 2, 'int8', false], [32, 32, 3, 1, 'int8', false],
  [32, 16, 1, 1, 'uint8', false], [16, 16, 3, 1, 'int8', false], [16, 2, 1, 1, 'int8', false],
];

// Quantized weights of one conv or matmul: values, zero points and scales, per tensor or per
// output channel (the first dim for conv, the last for matmul).
function qweights(r, type, count, channels, perChannel) {
  const nz = perChannel ? channels : 1;
  const zp = type === 'int8' ? ints(r, nz, -3, 3) : ints(r, nz, 118, 138);
  const w = type === 'int8' ? ints(r, count, -127, 127) : ints(r, count, 0, 255);
  const scale = floats(r, nz, 0.002, 0.006);
  return { w, zp, scale, type: T[type] };
}

/* quantize_dynamic of a conv net (ORT's ConvInteger pattern). */
export function dynconv() {
  const g = new Graph('dynconv'), r = rng(1);
  let x = g.input('image', T.float, [1, 3, 'H', 'W']);
  CONV_LAYERS.forEach(([ci, co, k, s, type, pc], i) => {
    const q = qweights(r, type, co * ci * k * k, co, pc);
    const [xq, xs, xz] = g.node('DynamicQuantizeLinear', [x], 3);
    const w = g.init(`w${i}`, q.type, [co, ci, k, k], q.w);
    // ORT's ConvInteger takes one weight zero point; per-channel layers vary only the scale
    const wz = g.init(`w${i}_zp`, q.type, [], [q.zp[0]]);
    const y = g.node('ConvInteger', [xq, w, xz, wz], 1, { kernel_shape: [k, k], strides: [s, s], pads: Array(4).fill((k - 1) >> 1) });
    const yf = g.node('Cast', [y], 1, { to: T.float });
    const ws = g.init(`w${i}_scale`, T.float, pc ? [co, 1, 1] : [], q.scale);
    const sc = g.node('Mul', [xs, ws], 1);
    const ym = g.node('Mul', [yf, sc], 1);
    const b = g.init(`b${i}`, T.float, [co, 1, 1], floats(r, co, -0.2, 0.2));
    const ya = g.node('Add', [ym, b], 1);
    x = i + 1 < CONV_LAYERS.length ? g.node('Relu', [ya], 1) : ya;
  });
  g.node('Identity', [x], ['logits']);
  g.output('logits', T.float, [1, 2, 'h', 'w']);
  return g.model(13);
}

/* quantize_dynamic of a two-layer MLP over a sequence (ORT's MatMulInteger pattern). */
export function dynmatmul() {
  const g = new Graph('dynmatmul'), r = rng(2);
  let x = g.input('x', T.float, [1, 'T', 64]);
  [[64, 96, 'int8', false], [96, 32, 'uint8', true]].forEach(([ki, ko, type, pc], i) => {
    const q = qweights(r, type, ki * ko, ko, pc);
    const [xq, xs, xz] = g.node('DynamicQuantizeLinear', [x], 3);
    const w = g.init(`w${i}`, q.type, [ki, ko], q.w);
    const wz = g.init(`w${i}_zp`, q.type, pc ? [ko] : [], q.zp);
    const y = g.node('MatMulInteger', [xq, w, xz, wz], 1);
    const yf = g.node('Cast', [y], 1, { to: T.float });
    const ws = g.init(`w${i}_scale`, T.float, pc ? [ko] : [], q.scale);
    const ym = g.node('Mul', [yf, g.node('Mul', [xs, ws], 1)], 1);
    const ya = g.node('Add', [ym, g.init(`b${i}`, T.float, [ko], floats(r, ko, -0.2, 0.2))], 1);
    x = i === 0 ? g.node('Relu', [ya], 1) : ya;
    if (i === 0) { g.node('Identity', [y], ['acc0']); g.output('acc0', T.int32, [1, 'T', ko]); }
  });
  g.node('Identity', [x], ['y']);
  g.output('y', T.float, [1, 'T', 32]);
  return g.model(13);
}

/* Static QDQ: activations through QuantizeLinear/DequantizeLinear (uint8), weights int8
 * initializers through DequantizeLinear (per channel for the conv), around Conv and MatMul. */
export function qdq() {
  const g = new Graph('qdq'), r = rng(3);
  const qdqPair = (x, s, z) => {
    const sc = g.init(`s${g.n}`, T.float, [], [s]), zp = g.init(`z${g.n}`, T.uint8, [], [z]);
    return g.node('DequantizeLinear', [g.node('QuantizeLinear', [x, sc, zp], 1), sc, zp], 1);
  };
  let x = qdqPair(g.input('image', T.float, [1, 3, 'H', 'W']), 0.02, 128);
  [[3, 8, 2], [8, 8, 1]].forEach(([ci, co, s], i) => {
    const wq = g.init(`w${i}_q`, T.int8, [co, ci, 3, 3], ints(r, co * ci * 9, -127, 127));
    const ws = g.init(`w${i}_s`, T.float, [co], floats(r, co, 0.002, 0.01));
    const wz = g.init(`w${i}_z`, T.int8, [co], Array(co).fill(0));
    const w = g.node('DequantizeLinear', [wq, ws, wz], 1, { axis: 0 });
    const b = g.init(`b${i}`, T.float, [co], floats(r, co, -0.1, 0.1));
    x = qdqPair(g.node('Relu', [g.node('Conv', [x, w, b], 1, { kernel_shape: [3, 3], strides: [s, s], pads: [1, 1, 1, 1] })], 1),
      0.01 + 0.005 * i, 0);
  });
  // [1, 8, h, w] -> [1, 8, h*w] -> transposed [1, h*w, 8] x [8, 4]
  const flat = g.node('Reshape', [x, g.init('shape', T.int64, [3], [1, 8, -1])], 1);
  const t = g.node('Transpose', [flat], 1, { perm: [0, 2, 1] });
  const wq = g.init('wm_q', T.int8, [8, 4], ints(r, 32, -127, 127));
  const wm = g.node('DequantizeLinear', [wq, g.init('wm_s', T.float, [], [0.01]), g.init('wm_z', T.int8, [], [0])], 1);
  const y = g.node('MatMul', [t, wm], 1);
  const sy = g.init('sy', T.float, [], [0.05]), zy = g.init('zy', T.uint8, [], [100]);
  g.node('QuantizeLinear', [y, sy, zy], ['yq']);
  g.output('yq', T.uint8, [1, 'n', 4]);
  return g.model(13);
}

/* The QOperator format: QLinearConv (uint8 x, int8 per-channel and uint8 per-tensor weights,
 * int32 bias) and QLinearMatMul, between QuantizeLinear and DequantizeLinear. */
export function qlinear() {
  const g = new Graph('qlinear'), r = rng(4);
  const sc = (v) => g.init(`c${g.inits.length}`, T.float, [], [v]);
  const u8 = (v) => g.init(`c${g.inits.length}`, T.uint8, [], [v]);
  let xs = sc(0.02), xz = u8(128);
  let x = g.node('QuantizeLinear', [g.input('image', T.float, [1, 3, 'H', 'W']), xs, xz], 1);
  [[3, 8, 2, 'int8', true], [8, 8, 1, 'uint8', false]].forEach(([ci, co, s, type, pc], i) => {
    const q = qweights(r, type, co * ci * 9, co, pc);
    const w = g.init(`w${i}`, q.type, [co, ci, 3, 3], q.w);
    const ws = g.init(`w${i}_s`, T.float, pc ? [co] : [], q.scale), wz = g.init(`w${i}_z`, q.type, pc ? [co] : [], q.zp);
    const b = g.init(`b${i}`, T.int32, [co], ints(r, co, -2000, 2000));
    const ys = sc(0.03 + 0.01 * i), yz = u8(i ? 90 : 0);
    x = g.node('QLinearConv', [x, xs, xz, w, ws, wz, ys, yz, b], 1, { kernel_shape: [3, 3], strides: [s, s], pads: [1, 1, 1, 1] });
    xs = ys, xz = yz;
  });
  g.node('Identity', [x], ['conv_q']);
  g.output('conv_q', T.uint8, [1, 8, 'h', 'w']);
  const flat = g.node('Reshape', [x, g.init('shape', T.int64, [2], [8, -1])], 1);    // [8, h*w]
  const wq = g.init('wm', T.uint8, [16, 8], ints(r, 128, 0, 255));
  const ys = sc(0.2), yz = u8(120);
  const y = g.node('QLinearMatMul', [wq, sc(0.004), u8(127), flat, xs, xz, ys, yz], 1);    // [16, h*w]
  g.node('DequantizeLinear', [y, ys, yz], ['y']);
  g.output('y', T.float, [16, 'n']);
  return g.model(13);
}

export const QUANT_MODELS = { dynconv, dynmatmul, qdq, qlinear };
