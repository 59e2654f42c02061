// peer.mjs — the ONNX Runtime side of `make bench`: times ORT's CPU (or WebGPU) execution provider on ONNX
// test-case folders, with the same inputs that `gpux bench` reads (test_data_set_N/input_K.pb,
// decoded by the small TensorProto reader below), and prints the same numbers: median, min, mean
// and p90 latency of session.run() over N runs after a warm-up, and the process's peak RSS.
//
//   node bench/peer.mjs [--ep cpu|webgpu] [--threads N] [--runs N] [--warmup N] [--min-time MS] [--no-spin] [--profile] [--json] CASE_DIR...
//
// The options mean what they mean to `gpux bench` (see gpux bench --help). --no-spin turns off the
// spinning of ORT's intra-op threads between parallel sections (session.intra_op.allow_spinning
// 0), for CPU-time comparisons (bench/cpu-time.sh) where spinning threads count as busy.
// --profile then runs --runs more runs in a session with ORT's profiler on and prints, like
// `gpux bench --profile`, the time per op type (ORT's kernels after its fusions: its Conv is
// often Conv + activation in the NCHWc layout, with ReorderInput/ReorderOutput around it).
//
// Peak RSS (process.resourceUsage().maxRSS) is a high-water mark of the whole node process,
// ONNX Runtime's library included: run one case per process to measure each alone.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const nodeModules = process.env.GPUX_NODE_MODULES || path.join(root, 'deps/npm/node_modules');
const require = createRequire(path.join(nodeModules, 'noop.js'));
const ort = require('onnxruntime-node');

/* ---------------------------------------------------------------- TensorProto reader */
// onnx.TensorProto: dims 1 (int64, packed or not), data_type 2, float_data 4, int32_data 5,
// int64_data 7, name 8, raw_data 9, double_data 10, uint64_data 11. Enough for numeric tensors.
const TYPES = {
  1: ['float32', Float32Array], 2: ['uint8', Uint8Array], 3: ['int8', Int8Array],
  4: ['uint16', Uint16Array], 5: ['int16', Int16Array], 6: ['int32', Int32Array],
  7: ['int64', BigInt64Array], 9: ['bool', Uint8Array], 10: ['float16', Uint16Array],
  11: ['float64', Float64Array], 12: ['uint32', Uint32Array], 13: ['uint64', BigUint64Array],
};

function readVarint(buf, p) {
  let v = 0n, shift = 0n;
  for (;;) {
    if (p >= buf.length) throw new Error('truncated varint');
    const b = buf[p++];
    v |= BigInt(b & 0x7f) << shift;
    shift += 7n;
    if (!(b & 0x80)) return [v, p];
  }
}

export function decodeTensor(buf) {
  const t = { dims: [], dataType: 0, name: '', raw: null, floats: [], ints: [], doubles: [] };
  let p = 0;
  while (p < buf.length) {
    let tag;
    [tag, p] = readVarint(buf, p);
    const field = Number(tag >> 3n), wire = Number(tag & 7n);
    if (wire === 0) {
      let v;
      [v, p] = readVarint(buf, p);
      if (field === 1) t.dims.push(Number(BigInt.asIntN(64, v)));
      else if (field === 2) t.dataType = Number(v);
      else if (field === 5 || field === 7) t.ints.push(BigInt.asIntN(64, v));
      else if (field === 11) t.ints.push(v);
    } else if (wire === 2) {
      let len;
      [len, p] = readVarint(buf, p);
      const end = p + Number(len), body = buf.subarray(p, end);
      if (field === 1 || field === 5 || field === 7 || field === 11) {      // packed varints
        for (let q = 0; q < body.length;) {
          let v;
          [v, q] = readVarint(body, q);
          if (field === 1) t.dims.push(Number(BigInt.asIntN(64, v)));
          else t.ints.push(field === 11 ? v : BigInt.asIntN(64, v));
        }
      } else if (field === 4) {
        for (let q = 0; q + 4 <= body.length; q += 4) t.floats.push(body.readFloatLE(q));
      } else if (field === 10) {
        for (let q = 0; q + 8 <= body.length; q += 8) t.doubles.push(body.readDoubleLE(q));
      } else if (field === 8) t.name = body.toString('utf8');
      else if (field === 9) t.raw = body;
      p = end;
    } else if (wire === 5) {
      if (field === 4) t.floats.push(buf.readFloatLE(p));
      p += 4;
    } else if (wire === 1) {
      if (field === 10) t.doubles.push(buf.readDoubleLE(p));
      p += 8;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  const ty = TYPES[t.dataType];
  if (!ty) throw new Error(`tensor ${t.name}: data type ${t.dataType} not supported here`);
  const [type, Arr] = ty;
  const n = t.dims.reduce((a, b) => a * b, 1);
  let data;
  if (t.raw) {
    const copy = Buffer.from(t.raw);                       // aligned copy
    data = new Arr(copy.buffer, copy.byteOffset, copy.byteLength / Arr.BYTES_PER_ELEMENT);
  } else if (type === 'float32') data = Float32Array.from(t.floats);
  else if (type === 'float64') data = Float64Array.from(t.doubles);
  else if (type === 'int64' || type === 'uint64') data = Arr.from(t.ints);
  else data = Arr.from(t.ints, Number);
  if (data.length !== n) throw new Error(`tensor ${t.name}: ${data.length} values for dims [${t.dims}]`);
  if (type === 'bool') data = Uint8Array.from(data);
  return { name: t.name, type, dims: t.dims, data };
}

/* ---------------------------------------------------------------- benchmark */
function usage() {
  return 'usage: node bench/peer.mjs [--ep cpu|webgpu] [--threads N] [--runs N] [--warmup N] [--min-time MS] [--no-spin] [--profile] [--json] CASE_DIR...';
}

function dataSet(caseDir) {
  const sets = fs.readdirSync(caseDir).filter((d) => d.startsWith('test_data_set_')).sort();
  if (!sets.length) throw new Error(`${caseDir}: no test_data_set_N folder`);
  return path.join(caseDir, sets[0]);
}

function sessionOptions(o) {
  const opts = { executionProviders: [o.ep], graphOptimizationLevel: 'all',
                 executionMode: 'sequential', interOpNumThreads: 1 };
  if (o.threads > 0) opts.intraOpNumThreads = o.threads;
  if (o['no-spin']) opts.extra = { session: { intra_op: { allow_spinning: '0' } } };
  return opts;
}

// ORT's profile of o.runs runs after o.warmup: milliseconds per run and node count per op type,
// from the trace's node events (name ending _kernel_time) that start after the warm-up's runs;
// PEER_PROFILE_KEEP=FILE keeps the trace (per node: bench/node-times.py compares it with gpux's)
async function profileCase(caseDir, feeds, o) {
  const prefix = path.join(fs.mkdtempSync(path.join(process.env.TMPDIR || '/tmp', 'peer-prof-')), 'ort');
  const s = await ort.InferenceSession.create(path.join(caseDir, 'model.onnx'),
    { ...sessionOptions(o), enableProfiling: true, profileFilePrefix: prefix });
  for (let i = 0; i < o.warmup + o.runs; i++) await s.run(feeds);
  s.endProfiling();
  await s.release();
  const dir = path.dirname(prefix);
  const file = fs.readdirSync(dir).find((f) => f.endsWith('.json'));
  const events = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
  if (process.env.PEER_PROFILE_KEEP) fs.copyFileSync(path.join(dir, file), process.env.PEER_PROFILE_KEEP);
  fs.rmSync(dir, { recursive: true, force: true });
  const runs = events.filter((e) => e.name === 'model_run').sort((a, b) => a.ts - b.ts);
  const from = runs.length > o.runs ? runs[runs.length - o.runs].ts : 0;
  const ops = new Map();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < from) continue;
    const k = e.args?.op_name ?? '?', v = ops.get(k) ?? { count: 0, us: 0 };
    v.count++; v.us += e.dur; ops.set(k, v);
  }
  const total = [...ops.values()].reduce((a, v) => a + v.us, 0);
  return [...ops.entries()].sort((a, b) => b[1].us - a[1].us).map(([op, v]) => ({
    op, count: v.count, total_ms: v.us / 1000, ms_per_run: v.us / 1000 / o.runs, share: total ? v.us / total : 0 }));
}

async function benchCase(caseDir, o) {
  let t0 = performance.now();
  const s = await ort.InferenceSession.create(path.join(caseDir, 'model.onnx'), sessionOptions(o));
  const loadMs = performance.now() - t0;

  const dir = dataSet(caseDir);
  const feeds = {}, shapes = [];
  for (let k = 0; k < s.inputNames.length; k++) {
    const f = path.join(dir, `input_${k}.pb`);
    if (!fs.existsSync(f)) break;
    const t = decodeTensor(fs.readFileSync(f));
    feeds[s.inputNames[k]] = new ort.Tensor(t.type, t.data, t.dims);
    shapes.push(`${t.type}[${t.dims.join(',')}]`);
  }

  const times = [];
  let firstMs = 0, total = 0;
  // the hot loop: first run (cold), warm-up, then timed runs (at least o.runs, and on until they
  // add up to o['min-time'] ms)
  for (let i = -1; ; i++) {
    const timed = i >= o.warmup;
    if (timed && times.length >= o.runs && (total >= o['min-time'] || times.length >= 100000)) break;
    t0 = performance.now();
    await s.run(feeds);
    const dt = performance.now() - t0;
    if (i < 0) firstMs = dt;
    if (timed) { times.push(dt); total += dt; }
  }
  await s.release();
  times.sort((a, b) => a - b);
  const n = times.length;
  const profile = o.profile ? await profileCase(caseDir, feeds, o) : undefined;
  return {
    case: path.basename(path.resolve(caseDir)), runtime: 'onnxruntime', backend: o.ep,
    version: ort.env.versions?.common ?? '', inputs: shapes.join(' '), threads: o.threads, runs: n, warmup: o.warmup,
    load_ms: loadMs, first_ms: firstMs,
    median_ms: n % 2 ? times[(n - 1) / 2] : (times[n / 2 - 1] + times[n / 2]) / 2,
    min_ms: times[0], mean_ms: times.reduce((a, b) => a + b, 0) / n,
    p90_ms: times[Math.round((n - 1) * 0.9)],
    peak_rss_kb: process.resourceUsage().maxRSS, profile,
  };
}

async function main() {
  const o = { threads: 0, runs: 20, warmup: 3, 'min-time': 0, json: false, ep: 'cpu', 'no-spin': false, profile: false };
  const cases = [];
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '-h' || a === '--help') { console.log(usage()); return 0; }
    if (a === '--json') o.json = true;
    else if (a === '--no-spin') o['no-spin'] = true;
    else if (a === '--profile') o.profile = true;
    else if (a === '--ep') {
      o.ep = args[++i];
      if (o.ep !== 'cpu' && o.ep !== 'webgpu') { console.error(`peer: error: --ep takes cpu or webgpu`); return 2; }
    }
    else if (a === '--threads' || a === '--runs' || a === '--warmup' || a === '--min-time') {
      const v = Number(args[++i]);
      if (!Number.isInteger(v) || v < 0) { console.error(`peer: error: ${a} needs a count`); return 2; }
      o[a.slice(2)] = v;
    } else if (a.startsWith('-')) { console.error(`peer: error: unknown option ${a}\n${usage()}`); return 2; }
    else cases.push(a);
  }
  if (!cases.length || o.runs < 1) { console.error(usage()); return 2; }
  if (!o.json)
    console.log(['CASE'.padEnd(24), 'RUNS', 'LOAD_MS', 'FIRST_MS', 'MEDIAN_MS', 'MIN_MS', 'P90_MS', 'PEAK_RSS_MB'].join(' '));
  let rc = 0;
  for (const c of cases) {
    try {
      const r = await benchCase(c, o);
      if (o.json) console.log(JSON.stringify(r));
      else console.log([r.case.padEnd(24), r.runs, r.load_ms.toFixed(2), r.first_ms.toFixed(2),
        r.median_ms.toFixed(3), r.min_ms.toFixed(3), r.p90_ms.toFixed(3), (r.peak_rss_kb / 1024).toFixed(1)].join(' '));
      if (!o.json && r.profile) {
        console.log(`\n${r.case}: ORT time per op type over ${o.runs} runs\n` +
          ['OP'.padEnd(28), 'COUNT'.padStart(6), 'TOTAL_MS'.padStart(11), 'MS/RUN'.padStart(10), 'SHARE'.padStart(7)].join(' '));
        for (const p of r.profile)
          console.log([p.op.padEnd(28), String(p.count).padStart(6), p.total_ms.toFixed(3).padStart(11),
            p.ms_per_run.toFixed(4).padStart(10), `${(p.share * 100).toFixed(1)}%`.padStart(7)].join(' '));
      }
    } catch (e) {
      console.error(`peer: error: ${c}: ${e.message}`);
      rc = 3;
    }
  }
  return rc;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href)
  process.exitCode = await main();
