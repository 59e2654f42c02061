// seq2seq-ref.mjs — the reference for tests/app/seq2seq.sh: the encoder–decoder loop of
// src/app/mode-seq2seq.c run with ONNX Runtime's CPU execution provider, step by step: the
// encoder once, the decoder on the start ids (its present values become the cache), then
// decoder_with_past (or the merged decoder with use_cache_branch) one token a step, the
// cross-attention cache kept from the first run. Greedy; SUPPRESS ids are never chosen; stops at
// EOS. Prints the generated ids as JSON.
//   node seq2seq-ref.mjs DIR FEATURES.npy|ids:1,2,3 START_IDS(1,2,3) N EOS SUPPRESS(4,5|-) [merged|nocache]
// (ids: a text encoder's input_ids, every position attended to)
// DIR holds encoder_model.onnx, decoder_model.onnx and decoder_with_past_model.onnx (or
// decoder_model_merged.onnx).
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeModules = process.env.GPUX_NODE_MODULES || path.join(here, '../../deps/npm/node_modules');
const ort = createRequire(path.join(nodeModules, 'noop.js'))('onnxruntime-node');

const [dir, npyPath, startArg, nArg, eosArg, suppressArg, mode] = process.argv.slice(2);
const start = startArg.split(',').map(Number);
const N = Number(nArg), EOS = Number(eosArg);
const suppress = suppressArg === '-' ? [] : suppressArg.split(',').map(Number);

// a float32 .npy file (version 1 or 2 header, C order)
function readNpy(file) {
  const b = fs.readFileSync(file);
  const major = b[6], hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8), off = major === 1 ? 10 : 12;
  const header = b.subarray(off, off + hlen).toString('latin1');
  if (!/'descr': '<f4'/.test(header) || /'fortran_order': True/.test(header)) throw new Error(`${file}: not a C-order float32 .npy`);
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const data = new Float32Array(b.buffer.slice(b.byteOffset + off + hlen, b.byteOffset + b.length));
  return new ort.Tensor('float32', data, shape.length === 2 ? [1, ...shape] : shape); // one clip: add the batch
}

const ids = (v) => new ort.Tensor('int64', BigInt64Array.from(v.map(BigInt)), [1, v.length]);
const feeds = (sess, all) => Object.fromEntries(sess.inputNames.filter((n) => n in all).map((n) => [n, all[n]]));

const quiet = { logSeverityLevel: 3 };
const encoder = await ort.InferenceSession.create(path.join(dir, 'encoder_model.onnx'), quiet);
const merged = mode === 'merged';
const decoder = await ort.InferenceSession.create(path.join(dir, merged ? 'decoder_model_merged.onnx' : 'decoder_model.onnx'), quiet);
const stepper = merged || mode === 'nocache' ? null : await ort.InferenceSession.create(path.join(dir, 'decoder_with_past_model.onnx'), quiet);
let encIn;
if (npyPath.startsWith('ids:')) {
  const src = npyPath.slice(4).split(',').map(Number);
  encIn = { input_ids: ids(src), attention_mask: new ort.Tensor('int64', new BigInt64Array(src.length).fill(1n), [1, src.length]) };
} else {
  encIn = { [encoder.inputNames[0]]: readNpy(npyPath) };
}
const enc = await encoder.run(feeds(encoder, encIn));
const hidden = enc.last_hidden_state || enc[encoder.outputNames[0]];
const encMask = new ort.Tensor('int64', new BigInt64Array(hidden.dims[1]).fill(1n), [1, hidden.dims[1]]);

const seq = [...start], out = [];
let cache = null;
// the positions of the ids fed: cache_position [n]
const positions = (from, n) => new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(from + i)), [n]);
for (let s = 0; s < N; s++) {
  let res;
  const common = { encoder_hidden_states: hidden, encoder_attention_mask: encMask };
  if (!cache) {
    const all = { ...common, input_ids: ids(seq), cache_position: positions(0, seq.length) };
    if (merged) {
      all.use_cache_branch = new ort.Tensor('bool', [false], [1]);
      for (const n of decoder.inputNames.filter((x) => x.startsWith('past_key_values'))) {
        const meta = decoder.inputMetadata?.find?.((m) => m.name === n);
        const heads = meta?.shape?.[1] > 0 ? meta.shape[1] : 1, hd = meta?.shape?.[3] > 0 ? meta.shape[3] : 1;
        all[n] = new ort.Tensor('float32', new Float32Array(0), [1, heads, 0, hd]);
      }
    }
    res = await decoder.run(feeds(decoder, all));
  } else {
    const sess = merged ? decoder : stepper;
    const all = { ...common, input_ids: ids(seq.slice(-1)), cache_position: positions(seq.length - 1, 1), ...cache };
    if (merged) all.use_cache_branch = new ort.Tensor('bool', [true], [1]);
    res = await sess.run(feeds(sess, all));
  }
  if (mode !== 'nocache') {
    const next = {};
    const sess = merged ? decoder : stepper;
    for (const n of sess.inputNames.filter((x) => x.startsWith('past_key_values'))) {
      const p = n.replace(/^past_key_values/, 'present');
      // the cross-attention cache comes from the first run only
      next[n] = cache && n.includes('.encoder.') ? cache[n] : res[p];
    }
    cache = next;
  }
  const lg = res.logits, V = lg.dims[2];
  const row = lg.data.slice((lg.dims[1] - 1) * V, lg.dims[1] * V);
  for (const t of suppress) row[t] = -Infinity;
  let best = 0;
  for (let i = 1; i < V; i++) if (row[i] > row[best]) best = i;
  if (best === EOS) break;
  seq.push(best);
  out.push(best);
}
console.log(JSON.stringify(out));
