// gptkv.mjs — writes a GPUXfile folder for generation with a GPT-style decoder with a key/value
// cache (tests/models/gpt.mjs gptKvModel: seeded random weights, untrained) and the tokenizer of
// examples/tiny-gpt, at a size of your choice, to measure generation step by step. VOCAB sizes the
// output layer (GPT-2's is 50257); ids past the tokenizer's 300 decode to no text.
//   node bench/gptkv.mjs OUT_DIR [DIM [LAYERS [HEADS [VOCAB]]]]     (defaults: 256 6 4 300)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gptKvModel } from '../tests/models/gpt.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const [out, dim = '256', layers = '6', heads = '4', vocab = '300'] = process.argv.slice(2);
if (!out) {
  console.error('usage: node bench/gptkv.mjs OUT_DIR [DIM [LAYERS [HEADS [VOCAB]]]]');
  process.exit(2);
}
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, 'model.onnx'),
                 gptKvModel(11, { vocab: Number(vocab), dim: Number(dim), layers: Number(layers), heads: Number(heads) }));
fs.copyFileSync(path.join(here, '../examples/tiny-gpt/tokenizer.json'), path.join(out, 'tokenizer.json'));
fs.writeFileSync(path.join(out, 'GPUXfile'),
                 `name: gptkv-${dim}x${layers}\nmodel: ./model.onnx\npreprocessing:\n  tokenizer:\n    vocab: ./tokenizer.json\n` +
                 'generate:\n  max_new_tokens: 32\n  max_context: 512\n');
