// mem-cases.mjs — models with the weights of GPT-2 and BERT-base for measuring the CPU backend's
// memory (peak RSS, weight bytes) against ONNX Runtime's, where torch is not at hand to export
// the real ones: the decoder of tests/models/gpt.mjs with 12 layers of hidden 768 (MLP 3072),
//   gpt2-size   vocabulary 50257, 1024 positions, logits against the tied embedding (~500 MB)
//   bert-size   vocabulary 30522, 512 positions, the last hidden state out (~435 MB)
// each a test-case folder with 128 input ids, for `gpux bench` and bench/peer.mjs, one case per
// process (peak RSS is the whole process's):
//
//   node bench/mem-cases.mjs OUTDIR
//   gpux bench --threads 2 --json OUTDIR/gpt2-size;  node bench/peer.mjs --threads 2 --json OUTDIR/gpt2-size
import fs from 'node:fs';
import path from 'node:path';
import { gptModel, GPT } from '../tests/models/gpt.mjs';
import { tensor, T } from '../tests/models/quant-models.mjs';

const out = process.argv[2];
if (!out) { console.error('mem-cases: error: no output folder'); process.exit(2); }
const seq = 128;
for (const [name, cfg] of [['gpt2-size', { vocab: 50257, maxPos: 1024, head: true }],
                           ['bert-size', { vocab: 30522, maxPos: 512, head: false }]]) {
  Object.assign(GPT, { dim: 768, heads: 12, layers: 12 }, cfg);
  const dir = path.join(out, name), set = path.join(dir, 'test_data_set_0');
  fs.mkdirSync(set, { recursive: true });
  fs.writeFileSync(path.join(dir, 'model.onnx'), gptModel(3));
  const ids = BigInt64Array.from({ length: seq }, (_, i) => BigInt((i * 7919 + 13) % GPT.vocab));
  fs.writeFileSync(path.join(set, 'input_0.pb'), tensor('input_ids', T.int64, [1, seq], ids));
  console.log(dir);
}
