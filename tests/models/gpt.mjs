// gpt.mjs — a tiny GPT-style decoder as an ONNX model (opset 17, seeded random weights), written
// with a small protobuf writer: token embedding (Gather by input_ids), positions (Shape -> Range
// -> Expand -> Gather), pre-norm attention with a causal mask cut out of a constant table by a
// Slice whose ends come from the sequence length, a GELU MLP, and logits against the tied
// embedding. The shapes follow from the ids' shape only, so two prompts of the same length must
// run with one WebGPU plan (tests/models/run.sh checks `gpux bench --json`'s plan count).
//
//   import { gptModel, GPT } from './gpt.mjs';   gptModel(seed) -> Buffer (model.onnx bytes)

export const GPT = { vocab: 64, dim: 32, heads: 2, layers: 2, maxPos: 32, head: true };

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
const int = (field, v) => Buffer.concat([key(field, 0), varint(v)]);
const bytes = (field, b) => Buffer.concat([key(field, 2), varint(b.length), b]);
const str = (field, s) => bytes(field, Buffer.from(s, 'utf8'));
const msg = (field, parts) => bytes(field, Buffer.concat(parts));
const f32 = (field, v) => { const b = Buffer.alloc(4); b.writeFloatLE(v); return Buffer.concat([key(field, 5), b]); };

// onnx.TensorProto.DataType
const FLOAT = 1, INT64 = 7, BOOL = 9;

// TensorProto: dims = 1, data_type = 2, name = 8, raw_data = 9
function tensor(field, name, type, dims, values) {
  let raw;
  if (type === FLOAT) raw = Buffer.from(Float32Array.from(values).buffer);
  else if (type === INT64) raw = Buffer.from(BigInt64Array.from(values.map(BigInt)).buffer);
  else raw = Buffer.from(Uint8Array.from(values, (v) => (v ? 1 : 0)).buffer);
  return msg(field, [...dims.map((d) => int(1, d)), int(2, type), str(8, name), bytes(9, raw)]);
}

// ValueInfoProto { name = 1, type = 2 { tensor_type = 1 { elem_type = 1, shape = 2 { dim = 1 } } } }
const dim = (d) => msg(1, [typeof d === 'number' ? int(1, d) : str(2, d)]);
const valueInfo = (field, name, type, dims) =>
  msg(field, [str(1, name), msg(2, [msg(1, [int(1, type), msg(2, dims.map(dim))])])]);

// AttributeProto: name = 1, f = 2, i = 3, ints = 8, type = 20 (FLOAT 1, INT 2, INTS 7)
const attrInt = (name, v) => msg(5, [str(1, name), int(3, v), int(20, 2)]);
const attrFloat = (name, v) => msg(5, [str(1, name), f32(2, v), int(20, 1)]);
const attrInts = (name, vs) => msg(5, [str(1, name), ...vs.map((v) => int(8, v)), int(20, 7)]);

/* ---------------------------------------------------------------- weights */
function rng(seed) {                         // mulberry32, as make-cases.mjs
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/* ---------------------------------------------------------------- the graph */
export function gptModel(seed = 1) {
  const { vocab: V, dim: D, heads: H, layers: L, maxPos: P, head } = GPT;
  const hd = D / H;
  const r = rng(seed);
  const nodes = [], inits = [];
  let serial = 0;
  const node = (op, inputs, attrs = [], nOut = 1) => {
    const outs = Array.from({ length: nOut }, () => `${op.toLowerCase()}_${serial++}`);
    nodes.push(msg(1, [...inputs.map((i) => str(1, i)), ...outs.map((o) => str(2, o)), str(3, outs[0]), str(4, op), ...attrs]));
    return nOut === 1 ? outs[0] : outs;
  };
  const init = (name, type, dims, values) => { inits.push(tensor(5, name, type, dims, values)); return name; };
  // float32 from the start: the same bytes, in a quarter of the memory at GPT-2's sizes
  const rand = (name, dims, scale, bias = 0) =>
    init(name, FLOAT, dims, Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => bias + scale * (2 * r() - 1)));

  const wte = rand('wte', [V, D], 0.5);
  const wpe = rand('wpe', [P, D], 0.2);
  const tril = [];
  for (let i = 0; i < P; i++) for (let j = 0; j < P; j++) tril.push(j <= i);
  init('causal', BOOL, [P, P], tril);
  init('zero', INT64, [], [0]);
  init('one', INT64, [], [1]);
  init('axes0', INT64, [1], [0]);
  init('starts00', INT64, [2], [0, 0]);
  init('axes01', INT64, [2], [0, 1]);
  init('heads', INT64, [2], [H, hd]);
  init('merge', INT64, [3], [0, 0, -1]);
  init('split', INT64, [3], [D, D, D]);
  init('scale', FLOAT, [], [1 / Math.sqrt(hd)]);
  init('masked', FLOAT, [], [-1e4]);
  init('half', FLOAT, [], [0.5]);
  init('sqrt2', FLOAT, [], [Math.SQRT2]);
  init('onef', FLOAT, [], [1]);

  // positions 0..seq-1 for every row, and the [seq, seq] causal mask
  const idsShape = node('Shape', ['input_ids']);
  const seq = node('Gather', [idsShape, 'one'], [attrInt('axis', 0)]);
  const pos = node('Range', ['zero', seq, 'one']);
  const posIds = node('Expand', [node('Unsqueeze', [pos, 'axes0']), idsShape]);
  const seq1 = node('Unsqueeze', [seq, 'axes0']);
  const mask = node('Slice', ['causal', 'starts00', node('Concat', [seq1, seq1], [attrInt('axis', 0)]), 'axes01']);
  let h = node('Add', [node('Gather', [wte, 'input_ids']), node('Gather', [wpe, posIds])]);
  // [batch, seq, heads, head_dim], from the hidden state's own shape
  const bs = node('Slice', [node('Shape', [h]), 'zero1', 'two1', 'axes0']);
  init('zero1', INT64, [1], [0]);
  init('two1', INT64, [1], [2]);
  const headShape = node('Concat', [bs, 'heads'], [attrInt('axis', 0)]);

  const layerNorm = (x, name) => node('LayerNormalization', [x, rand(`${name}.g`, [D], 0.1, 1), rand(`${name}.b`, [D], 0.1)],
                                      [attrInt('axis', -1), attrFloat('epsilon', 1e-5)]);
  const linear = (x, name, nIn, nOut) => node('Add', [node('MatMul', [x, rand(`${name}.w`, [nIn, nOut], 1 / Math.sqrt(nIn))]),
                                                      rand(`${name}.b`, [nOut], 0.05)]);
  for (let l = 0; l < L; l++) {
    const x = layerNorm(h, `h${l}.ln1`);
    const [q, k, v] = node('Split', [linear(x, `h${l}.qkv`, D, 3 * D), 'split'], [attrInt('axis', 2)], 3);
    const heads = (t, perm) => node('Transpose', [node('Reshape', [t, headShape])], [attrInts('perm', perm)]);
    const scores = node('Mul', [node('MatMul', [heads(q, [0, 2, 1, 3]), heads(k, [0, 2, 3, 1])]), 'scale']);
    const probs = node('Softmax', [node('Where', [mask, scores, 'masked'])], [attrInt('axis', -1)]);
    const ctx = node('Transpose', [node('MatMul', [probs, heads(v, [0, 2, 1, 3])])], [attrInts('perm', [0, 2, 1, 3])]);
    h = node('Add', [h, linear(node('Reshape', [ctx, 'merge']), `h${l}.proj`, D, D)]);
    const m = linear(layerNorm(h, `h${l}.ln2`), `h${l}.fc`, D, 4 * D);
    const gelu = node('Mul', [node('Mul', [m, 'half']), node('Add', [node('Erf', [node('Div', [m, 'sqrt2'])]), 'onef'])]);
    h = node('Add', [h, linear(gelu, `h${l}.out`, 4 * D, D)]);
  }
  // without the head (GPT.head false), the last hidden state is the output: an encoder's shapes
  if (head) {
    const wteT = node('Transpose', [wte], [attrInts('perm', [1, 0])]);
    const logits = node('MatMul', [layerNorm(h, 'ln_f'), wteT]);
    nodes.push(msg(1, [str(1, logits), str(2, 'logits'), str(3, 'logits'), str(4, 'Identity')]));
  } else {
    nodes.push(msg(1, [str(1, layerNorm(h, 'ln_f')), str(2, 'hidden'), str(3, 'hidden'), str(4, 'Identity')]));
  }

  const graph = [
    ...nodes, str(2, 'tiny-gpt'), ...inits,
    valueInfo(11, 'input_ids', INT64, ['batch', 'seq']),
    head ? valueInfo(12, 'logits', FLOAT, ['batch', 'seq', V]) : valueInfo(12, 'hidden', FLOAT, ['batch', 'seq', D]),
  ];
  // ModelProto: ir_version = 1, opset_import = 8 { domain = 1, version = 2 }, graph = 7
  return Buffer.concat([int(1, 8), msg(8, [str(1, ''), int(2, 17)]), msg(7, graph)]);
}

/* ---------------------------------------------------------------- with a key/value cache */
// The decoder with the interface transformers and optimum export for cached generation:
// input_ids [batch, seq], attention_mask [batch, total], position_ids [batch, seq] and
// past_key_values.N.key/value [batch, heads, past, head_dim] in; logits and present.N.key/value
// [batch, heads, total, head_dim] out. The causal mask comes from the lengths (query i sees keys
// up to past + i) and the attention mask. Sizes are options, so generation can be measured on a
// model with more weights than examples/tiny-gpt (bench/gptkv.mjs writes one).
// gatherMask: the mask's padding part reads attention_mask through a Gather of positions 0..total-1
// (shape-derived indices, as transformers' export of `attention_mask[batch_idx, kv_idx]` does),
// for batch 1
export function gptKvModel(seed = 1, { vocab: V = 300, dim: D = 64, heads: H = 2, layers: L = 2, maxPos: P = 512,
                                       gatherMask = false } = {}) {
  const hd = D / H;
  const r = rng(seed);
  const nodes = [], inits = [];
  let serial = 0;
  const node = (op, inputs, attrs = [], nOut = 1) => {
    const outs = Array.from({ length: nOut }, () => `${op.toLowerCase()}_${serial++}`);
    nodes.push(msg(1, [...inputs.map((i) => str(1, i)), ...outs.map((o) => str(2, o)), str(3, outs[0]), str(4, op), ...attrs]));
    return nOut === 1 ? outs[0] : outs;
  };
  const named = (op, inputs, out, attrs = []) => {
    nodes.push(msg(1, [...inputs.map((i) => str(1, i)), str(2, out), str(3, out), str(4, op), ...attrs]));
    return out;
  };
  const init = (name, type, dims, values) => { inits.push(tensor(5, name, type, dims, values)); return name; };
  const rand = (name, dims, scale, bias = 0) =>
    init(name, FLOAT, dims, Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => bias + scale * (2 * r() - 1)));

  const wte = rand('wte', [V, D], 2.0);
  const wpe = rand('wpe', [P, D], 0.2);
  init('zero', INT64, [], [0]);
  init('one', INT64, [], [1]);
  init('axes0', INT64, [1], [0]);
  init('axes1', INT64, [1], [1]);
  init('axes12', INT64, [2], [1, 2]);
  init('heads', INT64, [2], [H, hd]);
  init('merge', INT64, [3], [0, 0, -1]);
  init('split', INT64, [3], [D, D, D]);
  init('scale', FLOAT, [], [1 / Math.sqrt(hd)]);
  init('masked', FLOAT, [], [-1e9]);
  init('half', FLOAT, [], [0.5]);
  init('sqrt2', FLOAT, [], [Math.SQRT2]);
  init('onef', FLOAT, [], [1]);
  init('zerof', FLOAT, [], [0]);
  init('zero1', INT64, [1], [0]);
  init('two1', INT64, [1], [2]);
  if (gatherMask) init('flat', INT64, [1], [-1]);

  // keep[q, k] = k <= past + q, and attention_mask[b, k] > 0: [batch, 1, seq, total]
  const seq = node('Gather', [node('Shape', ['input_ids']), 'one'], [attrInt('axis', 0)]);
  const total = node('Gather', [node('Shape', ['attention_mask']), 'one'], [attrInt('axis', 0)]);
  const past = node('Sub', [total, seq]);
  const qpos = node('Unsqueeze', [node('Range', [past, total, 'one']), 'axes1']);   // [seq, 1]
  const kpos = node('Unsqueeze', [node('Range', ['zero', total, 'one']), 'axes0']); // [1, total]
  const causal = node('LessOrEqual', [kpos, qpos]);
  const maskIn = gatherMask
    ? node('Unsqueeze', [node('Gather', [node('Reshape', ['attention_mask', 'flat']), node('Range', ['zero', total, 'one'])],
                              [attrInt('axis', 0)]), 'axes0'])
    : 'attention_mask';
  const allowed = node('Greater', [node('Cast', [maskIn], [attrInt('to', FLOAT)]), 'zerof']);
  const keep = node('And', [causal, node('Unsqueeze', [allowed, 'axes12'])]);
  let h = node('Add', [node('Gather', [wte, 'input_ids']), node('Gather', [wpe, 'position_ids'])]);
  const bs = node('Slice', [node('Shape', [h]), 'zero1', 'two1', 'axes0']);
  const headShape = node('Concat', [bs, 'heads'], [attrInt('axis', 0)]);

  const layerNorm = (x, name) => node('LayerNormalization', [x, rand(`${name}.g`, [D], 0.1, 1), rand(`${name}.b`, [D], 0.1)],
                                      [attrInt('axis', -1), attrFloat('epsilon', 1e-5)]);
  const linear = (x, name, nIn, nOut) => node('Add', [node('MatMul', [x, rand(`${name}.w`, [nIn, nOut], 1 / Math.sqrt(nIn))]),
                                                      rand(`${name}.b`, [nOut], 0.05)]);
  const cacheIo = [], outs = [];
  for (let l = 0; l < L; l++) {
    const x = layerNorm(h, `h${l}.ln1`);
    const [q, k, v] = node('Split', [linear(x, `h${l}.qkv`, D, 3 * D), 'split'], [attrInt('axis', 2)], 3);
    const heads = (t) => node('Transpose', [node('Reshape', [t, headShape])], [attrInts('perm', [0, 2, 1, 3])]);
    const pk = `past_key_values.${l}.key`, pv = `past_key_values.${l}.value`;
    const key = named('Concat', [pk, heads(k)], `present.${l}.key`, [attrInt('axis', 2)]);
    const value = named('Concat', [pv, heads(v)], `present.${l}.value`, [attrInt('axis', 2)]);
    cacheIo.push(pk, pv);
    outs.push(key, value);
    const kT = node('Transpose', [key], [attrInts('perm', [0, 1, 3, 2])]);
    const scores = node('Mul', [node('MatMul', [heads(q), kT]), 'scale']);
    const probs = node('Softmax', [node('Where', [keep, scores, 'masked'])], [attrInt('axis', -1)]);
    const ctx = node('Transpose', [node('MatMul', [probs, value])], [attrInts('perm', [0, 2, 1, 3])]);
    h = node('Add', [h, linear(node('Reshape', [ctx, 'merge']), `h${l}.proj`, D, D)]);
    const m = linear(layerNorm(h, `h${l}.ln2`), `h${l}.fc`, D, 4 * D);
    const gelu = node('Mul', [node('Mul', [m, 'half']), node('Add', [node('Erf', [node('Div', [m, 'sqrt2'])]), 'onef'])]);
    h = node('Add', [h, linear(gelu, `h${l}.out`, 4 * D, D)]);
  }
  const wteT = node('Transpose', [wte], [attrInts('perm', [1, 0])]);
  named('MatMul', [layerNorm(h, 'ln_f'), wteT], 'logits');

  const graph = [
    ...nodes, str(2, 'gpt-kv'), ...inits,
    valueInfo(11, 'input_ids', INT64, ['batch', 'seq']),
    valueInfo(11, 'attention_mask', INT64, ['batch', 'total']),
    valueInfo(11, 'position_ids', INT64, ['batch', 'seq']),
    ...cacheIo.map((n) => valueInfo(11, n, FLOAT, ['batch', H, 'past', hd])),
    valueInfo(12, 'logits', FLOAT, ['batch', 'seq', V]),
    ...outs.map((n) => valueInfo(12, n, FLOAT, ['batch', H, 'total', hd])),
  ];
  return Buffer.concat([int(1, 8), msg(8, [str(1, ''), int(2, 17)]), msg(7, graph)]);
}
