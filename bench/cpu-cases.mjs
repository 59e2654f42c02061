// cpu-cases.mjs — benchmark cases at the real sizes of the transformer models (BERT-base, ViT-B/16,
// GPT-2: hidden 768, 12 heads, MLP 3072) for the CPU backend, where torch is not at hand to
// export them: a GPT-style decoder of tests/models/gpt.mjs at those sizes (2 layers, 128 tokens,
// vocabulary 1024), and single MatMuls with constant weights of the shapes its linear layers
// have, a BERT-base-style encoder (2 layers, 128 and 384 tokens) and attention alone (12 heads of
// 64). ONNX test-case folders with inputs only, for `gpux bench` and bench/peer.mjs.
// With --base, the three whole models at their real sizes instead (12 layers each): BERT-base
// (128 tokens), a ViT-B/16-sized encoder (197 tokens, the same layers as BERT's) and GPT-2 (64
// tokens, vocabulary 50257, logits for every position).
//
//   node bench/cpu-cases.mjs OUTDIR [--base]
import fs from 'node:fs';
import path from 'node:path';
import { gptModel, GPT } from '../tests/models/gpt.mjs';
import { Graph, T } from '../tests/models/quant-models.mjs';

function varint(v) {
  const out = [];
  do { let b = v % 128; v = Math.floor(v / 128); if (v) b |= 0x80; out.push(b); } while (v);
  return Buffer.from(out);
}
// TensorProto: dims 1, data_type 2 (float 1, int64 7), name 8, raw_data 9
function tensorPb(name, type, dims, data) {
  const raw = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.concat([...dims.flatMap((d) => [varint(8), varint(d)]), varint(16), varint(type),
    varint(66), varint(name.length), Buffer.from(name), varint(74), varint(raw.length), raw]);
}

// y = x [1, tokens, k] x w [k, n] (+ bias with `bias`)
function matmul(tokens, k, n, bias) {
  const g = new Graph('matmul');
  const x = g.input('x', T.float, [1, tokens, k]);
  const w = g.init('w', T.float, [k, n], Array.from({ length: k * n }, (_, i) => Math.sin(i * 0.377) / Math.sqrt(k)));
  if (bias) {
    const b = g.init('b', T.float, [n], Array.from({ length: n }, (_, i) => Math.cos(i * 0.1) * 0.1));
    g.node('Add', [g.node('MatMul', [x, w], 1), b], ['y']);
  } else {
    g.node('MatMul', [x, w], ['y']);
  }
  g.output('y', T.float, [1, tokens, n]);
  return g.model(13);
}

const out = process.argv[2], base = process.argv[3] === '--base';
if (!out) { console.error('cpu-cases: error: no output folder'); process.exit(2); }
function writeCase(name, model, input, type, dims, data) {
  const dir = path.join(out, name), set = path.join(dir, 'test_data_set_0');
  fs.mkdirSync(set, { recursive: true });
  fs.writeFileSync(path.join(dir, 'model.onnx'), model);
  fs.writeFileSync(path.join(set, 'input_0.pb'), tensorPb(input, type, dims, data));
  console.log(dir);
}
const floats = (n) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.0137) * 1.5 + Math.cos(i * 0.31) * 0.5);

for (const [k, n] of base ? [] : [[768, 768], [768, 2304], [768, 3072], [3072, 768]])
  writeCase(`matmul-128x${k}x${n}`, matmul(128, k, n, true), 'x', 1, [1, 128, k], floats(128 * k));
if (!base) writeCase('matmul-197x768x768', matmul(197, 768, 768, true), 'x', 1, [1, 197, 768], floats(197 * 768));

Object.assign(GPT, { vocab: 1024, dim: 768, heads: 12, layers: 2, maxPos: 128 });
if (base) Object.assign(GPT, { vocab: 50257, layers: 12 });
for (const seq of base ? [64] : [64, 128]) {
  const ids = BigInt64Array.from({ length: seq }, (_, i) => BigInt((i * 37 + 11) % GPT.vocab));
  writeCase(base ? `gpt2-s${seq}` : `gpt-d768-l2-s${seq}`, gptModel(7), 'input_ids', 7, [1, seq], ids);
}

// A BERT-base-style encoder (2 layers, hidden 768, 12 heads, MLP 3072) on embeddings x [1, seq,
// 768], its attention as the TorchScript exporter writes BERT's eager attention: K^T by one
// Transpose, Div by sqrt(64), Add of the additive padding mask (the last 16 keys masked).
function bert(seq, layers = 2, dim = 768, heads = 12) {
  const hd = dim / heads, g = new Graph('bert');
  const x0 = g.input('x', T.float, [1, seq, dim]);
  let s = 1;
  const w = (name, dims, scale) => g.init(name, T.float, dims,
    Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => Math.sin(s++ * 0.731) * scale));
  g.init('heads', T.int64, [4], [0, 0, heads, hd]);
  g.init('merge', T.int64, [3], [0, 0, dim]);
  g.init('sqrt_d', T.float, [], [Math.sqrt(hd)]);
  g.init('mask', T.float, [1, 1, 1, seq], Array.from({ length: seq }, (_, j) => (j < seq - 16 ? 0 : -10000)));
  g.init('half', T.float, [], [0.5]);
  g.init('sqrt2', T.float, [], [Math.SQRT2]);
  g.init('one', T.float, [], [1]);
  const ln = (x, n) => g.node('LayerNormalization', [x, w(`${n}.g`, [dim], 0.1), w(`${n}.b`, [dim], 0.1)], 1, { axis: -1 });
  const linear = (x, n, k, m) => g.node('Add', [g.node('MatMul', [x, w(`${n}.w`, [k, m], 1 / Math.sqrt(k))], 1), w(`${n}.b`, [m], 0.05)], 1);
  let h = x0;
  for (let l = 0; l < layers; l++) {
    const split = (n) => g.node('Reshape', [linear(h, `l${l}.${n}`, dim, dim), 'heads'], 1);
    const q = g.node('Transpose', [split('q')], 1, { perm: [0, 2, 1, 3] });
    const kT = g.node('Transpose', [split('k')], 1, { perm: [0, 2, 3, 1] });
    const v = g.node('Transpose', [split('v')], 1, { perm: [0, 2, 1, 3] });
    const scores = g.node('Add', [g.node('Div', [g.node('MatMul', [q, kT], 1), 'sqrt_d'], 1), 'mask'], 1);
    const ctx = g.node('MatMul', [g.node('Softmax', [scores], 1, { axis: -1 }), v], 1);
    const merged = g.node('Reshape', [g.node('Transpose', [ctx], 1, { perm: [0, 2, 1, 3] }), 'merge'], 1);
    h = ln(g.node('Add', [h, linear(merged, `l${l}.o`, dim, dim)], 1), `l${l}.ln1`);
    const m = linear(h, `l${l}.fc`, dim, 4 * dim);
    const gelu = g.node('Mul', [g.node('Mul', [m, 'half'], 1), g.node('Add', [g.node('Erf', [g.node('Div', [m, 'sqrt2'], 1)], 1), 'one'], 1)], 1);
    h = ln(g.node('Add', [h, linear(gelu, `l${l}.fc2`, 4 * dim, dim)], 1), `l${l}.ln2`);
  }
  g.node('Identity', [h], ['y']);
  g.output('y', T.float, [1, seq, dim]);
  return g.model(17);
}
if (base) {
  writeCase('bert-base-s128', bert(128, 12), 'x', 1, [1, 128, 768], floats(128 * 768));
  writeCase('vit-base-s197', bert(197, 12), 'x', 1, [1, 197, 768], floats(197 * 768));
  process.exit(0);
}
for (const seq of [128, 384])
  writeCase(`bert-d768-l2-s${seq}`, bert(seq), 'x', 1, [1, seq, 768], floats(seq * 768));

// Attention alone, 12 heads of 64 on Q, K, V inputs [1, 12, seq, 64]: MatMul(Q, Transpose(K)),
// Div by 8, Softmax, MatMul(., V), the graph the attention rewrite turns into one Attention node.
for (const seq of [128, 384]) {
  const g = new Graph('attention'), dims = [1, 12, seq, 64], n = 12 * seq * 64;
  const [q, k, v] = ['q', 'k', 'v'].map((name) => g.input(name, T.float, dims));
  g.init('sqrt_d', T.float, [], [8]);
  const scores = g.node('Div', [g.node('MatMul', [q, g.node('Transpose', [k], 1, { perm: [0, 1, 3, 2] })], 1), 'sqrt_d'], 1);
  g.node('MatMul', [g.node('Softmax', [scores], 1, { axis: -1 }), v], ['y']);
  g.output('y', T.float, dims);
  const dir = path.join(out, `attn-h12-s${seq}`), set = path.join(dir, 'test_data_set_0');
  fs.mkdirSync(set, { recursive: true });
  fs.writeFileSync(path.join(dir, 'model.onnx'), g.model(17));
  ['q', 'k', 'v'].forEach((name, i) => fs.writeFileSync(path.join(set, `input_${i}.pb`),
    tensorPb(name, 1, dims, Float32Array.from({ length: n }, (_, j) => Math.sin(j * 0.37 + i)))));
  console.log(dir);
}
