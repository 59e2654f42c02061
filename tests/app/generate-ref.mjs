// generate-ref.mjs — the reference for tests/app/generate.sh: the same generation loop as
// src/app/mode-generate.c (prefill, then one token a step with the key/value cache; repetition
// penalty, temperature, top-k, top-p and the splitmix64 sampler, step for step) run with ONNX
// Runtime's CPU execution provider. Prints the generated ids as JSON.
//   node generate-ref.mjs MODEL PROMPT_IDS(1,2,3) N TEMPERATURE TOP_K TOP_P PENALTY SEED [nocache]
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeModules = process.env.GPUX_NODE_MODULES || path.join(here, '../../deps/npm/node_modules');
const ort = createRequire(path.join(nodeModules, 'noop.js'))('onnxruntime-node');

const [model, promptArg, nArg, tArg, kArg, pArg, penArg, seedArg, mode] = process.argv.slice(2);
const prompt = promptArg.split(',').map(Number);
const N = Number(nArg), T = Number(tArg), K = Number(kArg), P = Number(pArg), PEN = Number(penArg);
let rng = BigInt.asUintN(64, BigInt(seedArg));
const M64 = (1n << 64n) - 1n;
function next() {
  rng = (rng + 0x9e3779b97f4a7c15n) & M64;
  let z = rng;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
  return z ^ (z >> 31n);
}
const uniform = () => Number(next() >> 11n) * (1.0 / 9007199254740992.0);
const f32 = Math.fround;

function choose(logit, seen) {
  const V = logit.length;
  if (PEN !== 1) {
    for (const t of new Set(seen)) logit[t] = f32(logit[t] > 0 ? logit[t] / f32(PEN) : logit[t] * f32(PEN));
  }
  if (T <= 0) { let b = 0; for (let i = 1; i < V; i++) if (logit[i] > logit[b]) b = i; return b; }
  let mx = -Infinity;
  for (let i = 0; i < V; i++) if (logit[i] > mx) mx = logit[i];
  let work = [], sum = 0;
  for (let i = 0; i < V; i++) { const e = Math.exp((logit[i] - mx) / T); work.push([f32(e), i]); sum += e; }
  let n = V;
  if (K > 0 || P < 1) {
    work.sort((a, b) => (a[0] > b[0] ? -1 : a[0] < b[0] ? 1 : a[1] - b[1]));
    if (K > 0 && K < n) n = K;
    if (P < 1) { let acc = 0; for (let i = 0; i < n; i++) { acc += work[i][0] / sum; if (acc >= P) { n = i + 1; break; } } }
    sum = 0;
    for (let i = 0; i < n; i++) sum += work[i][0];
  }
  const r = uniform() * sum;
  let acc = 0;
  for (let i = 0; i < n; i++) { acc += work[i][0]; if (r < acc) return work[i][1]; }
  return work[n - 1][1];
}

const sess = await ort.InferenceSession.create(model);
const pastNames = sess.inputNames.filter((n) => n.startsWith('past'));
const useCache = mode !== 'nocache';
// an empty cache: [1, heads, 0, head_dim] as the model declares it
const emptyDims = Object.fromEntries(sess.inputNames.map((n, i) => [n, (sess.inputMetadata[i].shape || [])
  .map((d, k) => (k === 0 ? 1 : typeof d === 'number' && d > 0 ? d : 0))]));
const empty = (n) => new ort.Tensor('float32', new Float32Array(0), emptyDims[n]);
let cache = {};
for (const n of pastNames) cache[n] = empty(n);
const seq = [...prompt], out = [];
let past = 0;
for (let s = 0; s < N; s++) {
  const feed = useCache ? seq.slice(past) : seq;
  const p0 = useCache ? past : 0;
  if (!useCache) for (const n of pastNames) cache[n] = empty(n);
  const all = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(feed.map(BigInt)), [1, feed.length]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(p0 + feed.length).fill(1n), [1, p0 + feed.length]),
    position_ids: new ort.Tensor('int64', BigInt64Array.from(feed.map((_, i) => BigInt(p0 + i))), [1, feed.length]),
    ...cache,
  };
  const feeds = Object.fromEntries(sess.inputNames.map((n) => [n, all[n]]));
  const res = await sess.run(feeds);
  past = seq.length;
  const lg = res.logits || res[sess.outputNames[0]], V = lg.dims[2];
  const row = Array.from(lg.data.slice((lg.dims[1] - 1) * V, lg.dims[1] * V));
  const t = choose(row, seq);
  seq.push(t);
  out.push(t);
  for (const n of pastNames) cache[n] = res[n.replace(/^past_key_values/, 'present')];
}
console.log(JSON.stringify(out));
