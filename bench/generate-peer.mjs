// generate-peer.mjs — the ONNX Runtime side of the generation benchmark (bench/generate-bench.sh): the
// greedy loop `gpux run --max-new-tokens N --json` runs, driven from node with onnxruntime-node on its
// CPU or WebGPU execution provider, on a folder made by bench/generate-export.py:
//
//   node generate-peer.mjs [--ep cpu|webgpu] [--max-new-tokens 128] [--runs 3] [--threads N] DIR
//
// One step is one session.run(): the prompt's ids first (prefill, with an empty cache), then the last
// chosen token with the cache the previous step returned; the next token is the argmax of the last
// position's logits. N new tokens are the prefill and N - 1 cached steps, as in gpux. The loop runs
// --runs times in one process; the first is "cold" (first use of the session: kernels compiled,
// buffers allocated), the last is reported. Times: time to first token = prefill + argmax (from
// handing the prompt's ids over to having the first token), tokens/s = (N - 1) / (the rest).
//
// The cache stays on the device on WebGPU: the session is made with preferredOutputLocation
// 'gpu-buffer' for every present.N.* output, so run() gives those back as tensors with location
// 'gpu-buffer' (no copy to the host), and they are fed to the next run() as they are; only the
// logits come back to the host. Each step's cache tensors are disposed once the next step has made
// its own. (onnxruntime-node 1.30 has no IoBinding object in JavaScript: preferredOutputLocation and
// gpu-buffer tensors as feeds are how its binding binds outputs and inputs to the device. On the CPU
// EP the option has no effect and the cache is a host array.)
//
// Prints one JSON line: runtime, session_ms (model load and session creation), the reported run's
// time_to_first_token_ms and tokens_per_second, the cold run's, kv_on_device, prompt_tokens and the
// generated token ids (for comparison with gpux's --json "tokens").
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeModules = process.env.GPUX_NODE_MODULES || path.join(here, '..', 'deps/npm/node_modules');
const require = createRequire(path.join(nodeModules, 'noop.js'));
const ort = require('onnxruntime-node');

function usage(msg) {
  if (msg) console.error(`generate-peer: ${msg}`);
  console.error('usage: node generate-peer.mjs [--ep cpu|webgpu] [--max-new-tokens N] [--runs N] [--threads N] DIR');
  process.exit(2);
}

const opt = { ep: 'cpu', newTokens: 128, runs: 3, threads: 0, dir: null };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i], val = () => (i + 1 < argv.length ? argv[++i] : usage(`${a} needs a value`));
  if (a === '--ep') opt.ep = val();
  else if (a === '--max-new-tokens') opt.newTokens = Number(val());
  else if (a === '--runs') opt.runs = Number(val());
  else if (a === '--threads') opt.threads = Number(val());
  else if (a.startsWith('-')) usage(`unknown option ${a}`);
  else opt.dir = a;
}
if (!opt.dir) usage();
if (!['cpu', 'webgpu'].includes(opt.ep)) usage(`--ep ${opt.ep}: cpu or webgpu`);
if (!(opt.newTokens >= 1) || !(opt.runs >= 1)) usage('--max-new-tokens and --runs must be at least 1');

const promptIds = JSON.parse(fs.readFileSync(path.join(opt.dir, 'prompt.json'), 'utf8')).prompt_ids;
const modelPath = path.join(opt.dir, 'model.onnx');

// the cache outputs, to be asked for on the device: named from generate-export.py's config.json
// (present.N.key/value for N < n_layer), or read from a CPU session made only to see them
const t0 = performance.now();
let presents;
try {
  const c = JSON.parse(fs.readFileSync(path.join(opt.dir, 'config.json'), 'utf8'));
  presents = [...Array(c.n_layer).keys()].flatMap((i) => [`present.${i}.key`, `present.${i}.value`]);
} catch {
  const probe = await ort.InferenceSession.create(modelPath, { executionProviders: ['cpu'] });
  presents = probe.outputNames.filter((n) => n.startsWith('present'));
  await probe.release();
}
const options = { executionProviders: [opt.ep], graphOptimizationLevel: 'all' };
if (opt.threads > 0) options.intraOpNumThreads = opt.threads;
if (opt.ep === 'webgpu') options.preferredOutputLocation = Object.fromEntries(presents.map((n) => [n, 'gpu-buffer']));
const t1 = performance.now();
const session = await ort.InferenceSession.create(modelPath, options);
const sessionMs = performance.now() - t1;
const probeMs = t1 - t0;

const meta = Object.fromEntries(session.inputMetadata.map((m) => [m.name, m]));
for (const n of ['input_ids', 'attention_mask', 'position_ids'])
  if (!meta[n]) usage(`${modelPath} has no input ${n}`);
const intTensor = (name, values) => {
  const t = meta[name].type;
  const data = t === 'int32' ? Int32Array.from(values) : BigInt64Array.from(values.map((v) => BigInt(v)));
  return new ort.Tensor(t === 'int32' ? 'int32' : 'int64', data, [1, values.length]);
};
const pastNames = session.inputNames.filter((n) => n.startsWith('past'));
// [batch, heads, 0, head_dim]: the fixed dims from the metadata, batch 1 and length 0 for the named ones
const emptyPast = Object.fromEntries(pastNames.map((n) => {
  const m = meta[n];
  const dims = m.shape.map((d, i) => (i === 0 ? 1 : typeof d === 'number' ? d : 0));
  const Arr = m.type === 'float16' ? Uint16Array : Float32Array;
  return [n, new ort.Tensor(m.type, new Arr(0), dims)];
}));

function argmaxLast(logits) {
  const v = logits.dims[logits.dims.length - 1], data = logits.data, base = data.length - v;
  let best = 0, bestV = -Infinity;
  if (logits.type === 'float16') throw new Error('float16 logits: not handled');
  for (let i = 0; i < v; i++) if (data[base + i] > bestV) { bestV = data[base + i]; best = i; }
  return best;
}

let kvOnDevice = null;
async function generate() {
  const tokens = [];
  let past = emptyPast, nPast = 0, ids = promptIds, firstMs = 0;
  const start = performance.now();
  for (let step = 0; step < opt.newTokens; step++) {
    const feeds = {
      input_ids: intTensor('input_ids', ids),
      attention_mask: intTensor('attention_mask', new Array(nPast + ids.length).fill(1)),
      position_ids: intTensor('position_ids', ids.map((_, i) => nPast + i)),
    };
    for (const n of pastNames) feeds[n] = past[n];
    const out = await session.run(feeds);
    const next = argmaxLast(out.logits);
    if (step === 0) firstMs = performance.now() - start;
    if (past !== emptyPast) for (const n of pastNames) if (past[n].location === 'gpu-buffer') past[n].dispose();
    past = Object.fromEntries(pastNames.map((n) => [n, out[n.replace(/^past_key_values/, 'present').replace(/^past\./, 'present.')]]));
    if (kvOnDevice === null) kvOnDevice = pastNames.every((n) => past[n] && past[n].location === 'gpu-buffer');
    nPast += ids.length;
    tokens.push(next);
    ids = [next];
  }
  const totalMs = performance.now() - start;
  if (past !== emptyPast) for (const n of pastNames) if (past[n].location === 'gpu-buffer') past[n].dispose();
  const decodeMs = totalMs - firstMs;
  return {
    time_to_first_token_ms: +firstMs.toFixed(3),
    tokens_per_second: tokens.length > 1 && decodeMs > 0 ? +((tokens.length - 1) * 1000 / decodeMs).toFixed(2) : 0,
    total_ms: +totalMs.toFixed(3),
    tokens,
  };
}

const runs = [];
for (let r = 0; r < opt.runs; r++) runs.push(await generate());
const last = runs[runs.length - 1], cold = runs[0];
const same = runs.every((r) => r.tokens.join() === last.tokens.join());
console.log(JSON.stringify({
  runtime: `ort-${opt.ep}`,
  ort_version: require('onnxruntime-node/package.json').version,
  session_ms: +sessionMs.toFixed(1),
  probe_ms: +probeMs.toFixed(1),
  prompt_tokens: promptIds.length,
  generated_tokens: last.tokens.length,
  time_to_first_token_ms: last.time_to_first_token_ms,
  tokens_per_second: last.tokens_per_second,
  total_ms: last.total_ms,
  cold: { time_to_first_token_ms: cold.time_to_first_token_ms, tokens_per_second: cold.tokens_per_second, total_ms: cold.total_ms },
  runs: opt.runs,
  runs_agree: same,
  kv_on_device: !!kvOnDevice,
  tokens: last.tokens,
}));
await session.release();
