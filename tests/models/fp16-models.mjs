// fp16-models.mjs — two small float16 models shaped like the output of onnxconverter-common's
// float16 converter with keep_io_types=True: float16 initializers, every op computing in float16,
// and a Cast at each float32 model input and output. make-cases.mjs runs them on ONNX Runtime for
// the expected outputs; gpux must run them with no node on the CPU under WebGPU.
//   fp16_cnn          x float32[batch,3,32,32] -> Conv/Relu/BatchNorm/SiLU/depthwise Conv/Clip/
//                     MaxPool/Resize/Add/AveragePool/Concat/GlobalAveragePool/Gemm/Softmax
//                     -> probs, logits float32[batch,10]
//   fp16_transformer  ids int64[1,16], x float32[1,16,32] -> Gather + Add, LayerNorm, QKV MatMul,
//                     Split, Reshape/Transpose, scaled masked Softmax attention, erf GELU MLP,
//                     ReduceMean, Tanh -> hidden float32[1,16,32], pooled float32[1,32]
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
const key = (field, wire) => varint((field << 3) | wire);
const num = (field, v) => Buffer.concat([key(field, 0), varint(v)]);
const len = (field, bytes) => Buffer.concat([key(field, 2), varint(bytes.length), bytes]);
const str = (field, s) => len(field, Buffer.from(s, 'utf8'));
const msg = (field, parts) => len(field, Buffer.concat(parts));
const f32 = (field, v) => { const b = Buffer.alloc(4); b.writeFloatLE(v); return Buffer.concat([key(field, 5), b]); };

const FLOAT = 1, INT64 = 7, FLOAT16 = 10;

// float32 -> IEEE half bits, round to nearest even (overflow to infinity).
const f32buf = new Float32Array(1), u32buf = new Uint32Array(f32buf.buffer);
export function toHalf(v) {
  f32buf[0] = v;
  const x = u32buf[0], sign = (x >>> 16) & 0x8000, a = x & 0x7fffffff;
  if (a >= 0x7f800000) return sign | 0x7c00 | (a > 0x7f800000 ? 0x200 : 0);
  if (a >= 0x477ff000) return sign | 0x7c00;
  if (a < 0x38800000) {                         // subnormal: multiples of 2^-24
    const m = Math.abs(f32buf[0]) * 16777216, frac = m - Math.floor(m);
    let q = Math.floor(m);
    if (frac > 0.5 || (frac === 0.5 && (q & 1))) q++;
    return sign | q;
  }
  const r = (a + 0xfff + ((a >>> 13) & 1)) >>> 13;
  return sign | (r - (112 << 10));
}

const tensor = (name, type, dims, data) => {
  let raw;
  if (type === FLOAT16) raw = Buffer.from(Uint16Array.from(data, toHalf).buffer);
  else if (type === INT64) raw = Buffer.from(BigInt64Array.from(data, (v) => BigInt(v)).buffer);
  else raw = Buffer.from(Float32Array.from(data).buffer);
  return [...dims.map((d) => num(1, d)), num(2, type), str(8, name), len(9, raw)];
};
const attr = (name, v) => {
  const p = [str(1, name)];
  if (typeof v === 'string') p.push(str(4, v), num(20, 3));
  else if (Array.isArray(v)) p.push(...v.map((x) => num(8, x)), num(20, 7));
  else if (typeof v === 'number') p.push(num(3, v), num(20, 2));
  else p.push(f32(2, v.f), num(20, 1));
  return p;
};
const float = (f) => ({ f });                    // a float attribute (integers are INT attributes)
const valueInfo = (name, type, dims) =>
  [str(1, name), msg(2, [msg(1, [num(1, type), msg(2, dims.map((d) => msg(1, [typeof d === 'number' ? num(1, d) : str(2, d)])))])])];

// A graph as data: nodes [op, inputs, outputs, {attrs}], initializers [name, type, dims, values].
function model(name, { nodes, inits, inputs, outputs }) {
  const g = [];
  nodes.forEach(([op, ins, outs, attrs = {}], i) =>
    g.push(msg(1, [...ins.map((s) => str(1, s)), ...outs.map((s) => str(2, s)), str(3, `${op}_${i}`), str(4, op),
      ...Object.entries(attrs).map(([k, v]) => msg(5, attr(k, v)))])));
  g.push(str(2, name));
  for (const [n, t, d, v] of inits) g.push(msg(5, tensor(n, t, d, v)));
  for (const [n, t, d] of inputs) g.push(msg(11, valueInfo(n, t, d)));
  for (const [n, t, d] of outputs) g.push(msg(12, valueInfo(n, t, d)));
  return Buffer.concat([num(1, 8), str(2, 'gpux-tests'), msg(8, [str(1, ''), num(2, 17)]), msg(7, g)]);
}

/* ---------------------------------------------------------------- weights */
function rng(seed) {                              // mulberry32
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const count = (dims) => dims.reduce((a, b) => a * b, 1);
function weights(r, dims, fanIn, shift = 0) {
  const s = Math.sqrt(3 / fanIn);
  return Array.from({ length: count(dims) }, () => shift + s * (2 * r() - 1));
}

function cnn() {
  const r = rng(16);
  const w = (name, dims, fanIn, shift) => [name, FLOAT16, dims, weights(r, dims, fanIn, shift)];
  return model('fp16_cnn', {
    nodes: [
      ['Cast', ['x'], ['xh'], { to: FLOAT16 }],
      ['Conv', ['xh', 'w1', 'b1'], ['c1'], { pads: [1, 1, 1, 1] }],
      ['Relu', ['c1'], ['r1']],
      ['Conv', ['r1', 'w2', 'b2'], ['c2'], { pads: [1, 1, 1, 1], strides: [2, 2] }],
      ['BatchNormalization', ['c2', 'bn_s', 'bn_b', 'bn_m', 'bn_v'], ['bn'], { epsilon: float(1e-3) }],
      ['Sigmoid', ['bn'], ['sg']],
      ['Mul', ['bn', 'sg'], ['silu']],
      ['Conv', ['silu', 'w3'], ['dw'], { group: 8, pads: [1, 1, 1, 1] }],
      ['Clip', ['dw', 'zero', 'six'], ['c3']],
      ['MaxPool', ['c3'], ['p'], { kernel_shape: [2, 2], strides: [2, 2] }],
      ['Resize', ['p', '', 'scales'], ['up'], { mode: 'nearest' }],
      ['Add', ['up', 'silu'], ['res']],
      ['Conv', ['res', 'w4', 'b4'], ['c4']],
      ['AveragePool', ['c4'], ['ap'], { kernel_shape: [2, 2], strides: [2, 2] }],
      ['MaxPool', ['c4'], ['mp'], { kernel_shape: [2, 2], strides: [2, 2] }],
      ['Concat', ['ap', 'mp'], ['cat'], { axis: 1 }],
      ['GlobalAveragePool', ['cat'], ['g']],
      ['Flatten', ['g'], ['flat']],
      ['Gemm', ['flat', 'wfc', 'bfc'], ['lg'], { transB: 1 }],
      ['Softmax', ['lg'], ['pr'], { axis: 1 }],
      ['Cast', ['pr'], ['probs'], { to: FLOAT }],
      ['Cast', ['lg'], ['logits'], { to: FLOAT }],
    ],
    inits: [
      w('w1', [8, 3, 3, 3], 27), w('b1', [8], 8), w('w2', [8, 8, 3, 3], 72), w('b2', [8], 8),
      w('bn_s', [8], 3, 1), w('bn_b', [8], 8), w('bn_m', [8], 8), w('bn_v', [8], 3, 1.5),
      w('w3', [8, 1, 3, 3], 9), ['zero', FLOAT16, [], [0]], ['six', FLOAT16, [], [6]],
      ['scales', FLOAT, [4], [1, 1, 2, 2]], w('w4', [16, 8, 1, 1], 8), w('b4', [16], 16),
      w('wfc', [10, 32], 8), w('bfc', [10], 10),
    ],
    inputs: [['x', FLOAT, ['batch', 3, 32, 32]]],
    outputs: [['probs', FLOAT, ['batch', 10]], ['logits', FLOAT, ['batch', 10]]],
  });
}

function transformer() {
  const r = rng(17);
  const T = 16, D = 32, H = 4, Dh = 8, F = 64;
  const w = (name, dims, fanIn, shift) => [name, FLOAT16, dims, weights(r, dims, fanIn, shift)];
  const mask = [];
  for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) mask.push(j <= i ? 0 : -10000);
  return model('fp16_transformer', {
    nodes: [
      ['Gather', ['emb', 'ids'], ['e']],
      ['Cast', ['x'], ['xh'], { to: FLOAT16 }],
      ['Add', ['e', 'xh'], ['h0']],
      ['LayerNormalization', ['h0', 'ln1_g', 'ln1_b'], ['n1'], { axis: -1, epsilon: float(1e-5) }],
      ['MatMul', ['n1', 'wqkv'], ['qkv0']],
      ['Add', ['qkv0', 'bqkv'], ['qkv']],
      ['Split', ['qkv', 'split'], ['q0', 'k0', 'v0'], { axis: 2 }],
      ['Reshape', ['q0', 'heads'], ['q1']],
      ['Reshape', ['k0', 'heads'], ['k1']],
      ['Reshape', ['v0', 'heads'], ['v1']],
      ['Transpose', ['q1'], ['q'], { perm: [0, 2, 1, 3] }],
      ['Transpose', ['k1'], ['kt'], { perm: [0, 2, 3, 1] }],
      ['Transpose', ['v1'], ['v'], { perm: [0, 2, 1, 3] }],
      ['MatMul', ['q', 'kt'], ['s0']],
      ['Mul', ['s0', 'scale'], ['s1']],
      ['Add', ['s1', 'mask'], ['s2']],
      ['Softmax', ['s2'], ['a'], { axis: -1 }],
      ['MatMul', ['a', 'v'], ['o0']],
      ['Transpose', ['o0'], ['o1'], { perm: [0, 2, 1, 3] }],
      ['Reshape', ['o1', 'flat'], ['o2']],
      ['MatMul', ['o2', 'wo'], ['o3']],
      ['Add', ['o3', 'bo'], ['o4']],
      ['Add', ['h0', 'o4'], ['h1']],
      ['LayerNormalization', ['h1', 'ln2_g', 'ln2_b'], ['n2'], { axis: -1, epsilon: float(1e-5) }],
      ['MatMul', ['n2', 'w1'], ['f0']],
      ['Add', ['f0', 'b1'], ['f1']],
      ['Div', ['f1', 'sqrt2'], ['g0']],
      ['Erf', ['g0'], ['g1']],
      ['Add', ['g1', 'one'], ['g2']],
      ['Mul', ['f1', 'g2'], ['g3']],
      ['Mul', ['g3', 'half'], ['g4']],
      ['MatMul', ['g4', 'w2'], ['f2']],
      ['Add', ['f2', 'b2'], ['f3']],
      ['Add', ['h1', 'f3'], ['h2']],
      ['ReduceMean', ['h2'], ['m'], { axes: [1], keepdims: 0 }],
      ['Tanh', ['m'], ['pm']],
      ['Cast', ['h2'], ['hidden'], { to: FLOAT }],
      ['Cast', ['pm'], ['pooled'], { to: FLOAT }],
    ],
    inits: [
      w('emb', [50, D], 3), w('ln1_g', [D], 3, 1), w('ln1_b', [D], 30), w('wqkv', [D, 3 * D], D), w('bqkv', [3 * D], 30),
      ['split', INT64, [3], [D, D, D]], ['heads', INT64, [4], [1, T, H, Dh]], ['flat', INT64, [3], [1, T, D]],
      ['scale', FLOAT16, [], [1 / Math.sqrt(Dh)]], ['mask', FLOAT16, [T, T], mask],
      w('wo', [D, D], D), w('bo', [D], 30), w('ln2_g', [D], 3, 1), w('ln2_b', [D], 30),
      w('w1', [D, F], D), w('b1', [F], 30), w('w2', [F, D], F), w('b2', [D], 30),
      ['sqrt2', FLOAT16, [], [Math.SQRT2]], ['one', FLOAT16, [], [1]], ['half', FLOAT16, [], [0.5]],
    ],
    inputs: [['ids', INT64, [1, T]], ['x', FLOAT, [1, T, D]]],
    outputs: [['hidden', FLOAT, [1, T, D]], ['pooled', FLOAT, [1, D]]],
  });
}

// Each returns the ModelProto bytes (weights seeded: every run writes the same model).
export const FP16_MODELS = { fp16_cnn: cnn, fp16_transformer: transformer };
