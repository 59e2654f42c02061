// quant-cases.mjs — benchmark cases for the int8 kernels: the models of
// tests/models/quant-models.mjs at benchmark sizes (the dynamically quantized conv net on a
// 1024x1024 image, the MLP on 4096 tokens), and for per-node overhead: a chain of 1000 tiny
// Adds and Muls on 16 floats (chain-1000). ONNX test-case folders with inputs only, for
// `gpux bench` and bench/peer.mjs (scripts/bench-quant.sh runs both).
//
//   node bench/quant-cases.mjs OUTDIR
import fs from 'node:fs';
import path from 'node:path';
import { Graph, QUANT_MODELS, T } from '../tests/models/quant-models.mjs';

// x [1, 16] through 1000 nodes, Add and Mul of constants by turns
function chain() {
  const g = new Graph('chain');
  let x = g.input('x', T.float, [1, 16]);
  for (let i = 0; i < 1000; i++) {
    const c = g.init(`c${i}`, T.float, [16], Array.from({ length: 16 }, (_, j) => (i % 2 ? 0.999 : 0.001 * (j - 8))));
    x = g.node(i % 2 ? 'Mul' : 'Add', [x, c], i === 999 ? ['y'] : 1);
  }
  g.output('y', T.float, [1, 16]);
  return g.model(13);
}
const MODELS = { ...QUANT_MODELS, chain };

// TensorProto: dims 1, data_type 2 (float 1), name 8, raw_data 9
function varint(v) {
  const out = [];
  do { let b = v % 128; v = Math.floor(v / 128); if (v) b |= 0x80; out.push(b); } while (v);
  return Buffer.from(out);
}
function floatTensor(name, dims, data) {
  const raw = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.concat([...dims.flatMap((d) => [varint(8), varint(d)]), varint(16), varint(1),
    varint(66), varint(name.length), Buffer.from(name), varint(74), varint(raw.length), raw]);
}

const out = process.argv[2];
if (!out) { console.error('quant-cases: error: no output folder'); process.exit(2); }
const CASES = [['dynconv-1024x1024', 'dynconv', 'image', [1, 3, 1024, 1024]], ['dynmatmul-t4096', 'dynmatmul', 'x', [1, 4096, 64]],
  ['chain-1000', 'chain', 'x', [1, 16]]];
for (const [name, model, input, dims] of CASES) {
  const dir = path.join(out, name), data = path.join(dir, 'test_data_set_0');
  fs.mkdirSync(data, { recursive: true });
  fs.writeFileSync(path.join(dir, 'model.onnx'), MODELS[model]());
  const n = dims.reduce((a, b) => a * b, 1);
  const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.0137) * 1.5 + Math.cos(i * 0.31) * 0.5);
  fs.writeFileSync(path.join(data, 'input_0.pb'), floatTensor(input, dims, x));
  console.log(dir);
}
