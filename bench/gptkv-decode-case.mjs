// gptkv-decode-case.mjs — writes an ONNX test-case folder (model.onnx, test_data_set_0/input_K.pb)
// for one decode step of a GPT-style decoder with a key/value cache (tests/models/gpt.mjs
// gptKvModel: seeded random weights): one new token after PAST cached positions, to count and time
// a decode step's dispatches with `gpux bench --backend webgpu --profile` or GPUX_WEBGPU_VERBOSE.
//   node bench/gptkv-decode-case.mjs OUT_DIR [DIM [LAYERS [HEADS [VOCAB [PAST [MODEL]]]]]]
//   (defaults: 768 12 12 50257 128, GPT-2 small's sizes). MODEL: an existing decoder with the same
//   interface and sizes (bench/generate-export.py's model.onnx) is linked in instead of gptKvModel.
import fs from 'node:fs';
import path from 'node:path';
import { gptKvModel } from '../tests/models/gpt.mjs';

const [out, dim = '768', layers = '12', heads = '12', vocab = '50257', past = '128', model] = process.argv.slice(2);
if (!out) {
  console.error('usage: node bench/gptkv-decode-case.mjs OUT_DIR [DIM [LAYERS [HEADS [VOCAB [PAST [MODEL]]]]]]');
  process.exit(2);
}
const D = Number(dim), L = Number(layers), H = Number(heads), V = Number(vocab), P = Number(past);
const hd = D / H;

const varint = (v) => {
  let x = BigInt.asUintN(64, BigInt(v));
  const b = [];
  do { let c = Number(x & 0x7fn); x >>= 7n; if (x) c |= 0x80; b.push(c); } while (x);
  return Buffer.from(b);
};
const key = (field, wire) => varint((field << 3) | wire);
const lenField = (field, bytes) => Buffer.concat([key(field, 2), varint(bytes.length), bytes]);
const tensor = (name, type, dims, data) => Buffer.concat([
  ...dims.flatMap((d) => [key(1, 0), varint(d)]), key(2, 0), varint(type), lenField(8, Buffer.from(name)),
  lenField(9, Buffer.from(data.buffer, data.byteOffset, data.byteLength))]);

let seed = 7;
const rand = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 4294967296 - 0.5; };
const dir = path.join(out, 'test_data_set_0');
fs.mkdirSync(dir, { recursive: true });
if (model) fs.symlinkSync(path.resolve(model), path.join(out, 'model.onnx'));
else fs.writeFileSync(path.join(out, 'model.onnx'), gptKvModel(11, { vocab: V, dim: D, layers: L, heads: H, maxPos: Math.max(512, P + 1) }));
const inputs = [
  tensor('input_ids', 7, [1, 1], BigInt64Array.from([42n])),
  tensor('attention_mask', 7, [1, P + 1], new BigInt64Array(P + 1).fill(1n)),
  tensor('position_ids', 7, [1, 1], BigInt64Array.from([BigInt(P)])),
];
for (let l = 0; l < L; l++) {
  for (const kv of ['key', 'value']) {
    inputs.push(tensor(`past_key_values.${l}.${kv}`, 1, [1, H, P, hd], Float32Array.from({ length: H * P * hd }, rand)));
  }
}
inputs.forEach((t, i) => fs.writeFileSync(path.join(dir, `input_${i}.pb`), t));
