// cnn-cases.mjs — benchmark and parity cases at the real sizes of the convolutional models, made
// without torch: ResNet-50 (torchvision's layout: 7x7 stride-2 stem, max pool, bottlenecks of
// 1x1 -> 3x3 (the stride) -> 1x1 with a 1x1 projection, global average pool, 1000 classes),
// MobileNetV3-Large (depthwise 3x3/5x5, squeeze-excitation with HardSigmoid, HardSwish) and
// EfficientNet-B0 (MBConv, SE with Sigmoid, SiLU as Sigmoid * x), at 224x224, random weights.
// Batch norms are folded into the convolutions' biases as torch.onnx.export does in eval mode
// (opset 17), or written as BatchNormalization nodes with --bn. Each case folder holds model.onnx,
// test_data_set_0/input_0.pb and output_0.pb computed by ONNX Runtime's CPU EP, for `gpux verify`,
// `gpux bench` and bench/peer.mjs (bench/cnn-bench.sh runs them).
//
//   node bench/cnn-cases.mjs [--bn] [--only resnet50,mobilenetv3,efficientnet] OUTDIR
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Graph, T, rng, tensor } from '../tests/models/quant-models.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const nodeModules = process.env.GPUX_NODE_MODULES || path.join(root, 'deps/npm/node_modules');
const ort = createRequire(path.join(nodeModules, 'noop.js'))('onnxruntime-node');

// A graph builder with He-scaled random conv weights, so activations keep their magnitude
// through 50 layers; `bn` writes BatchNormalization nodes instead of folded biases.
class Net {
  constructor(name, bn, seed) { this.g = new Graph(name); this.bn = bn; this.r = rng(seed); this.n = 0; }
  rand(count, scale) {
    const a = new Float32Array(count);
    for (let i = 0; i < count; i++) a[i] = (this.r() * 2 - 1) * scale;
    return a;
  }
  init(dims, values) { return this.g.init(`w${this.n++}`, T.float, dims, values); }
  // Conv (+ folded bias or BatchNormalization) with `gain` scaling the He init
  conv(x, cin, cout, k, s = 1, groups = 1, gain = 1) {
    const fan = (cin / groups) * k * k, p = (k - 1) >> 1;
    const w = this.init([cout, cin / groups, k, k], this.rand(cout * fan, gain * Math.sqrt(6 / fan)));
    const attrs = { kernel_shape: [k, k], strides: [s, s], pads: [p, p, p, p], group: groups, dilations: [1, 1] };
    if (!this.bn) return this.g.node('Conv', [x, w, this.init([cout], this.rand(cout, 0.1))], 1, attrs);
    const y = this.g.node('Conv', [x, w], 1, attrs);
    const scale = this.init([cout], Float32Array.from(this.rand(cout, 0.2), (v) => 1 + v));
    const mean = this.init([cout], this.rand(cout, 0.1));
    const v = this.init([cout], Float32Array.from(this.rand(cout, 0.2), (v) => 1 + v));
    return this.g.node('BatchNormalization', [y, scale, this.init([cout], this.rand(cout, 0.1)), mean, v], 1, { epsilon: { f: 1e-5 } });
  }
  op(op, inputs, attrs = {}) { return this.g.node(op, inputs, 1, attrs); }
  head(x, cin, classes) {
    const f = this.op('Flatten', [this.op('GlobalAveragePool', [x])], { axis: 1 });
    const w = this.init([classes, cin], this.rand(classes * cin, Math.sqrt(3 / cin)));
    return this.op('Gemm', [f, w, this.init([classes], this.rand(classes, 0.1))], { transB: 1 });
  }
  finish(y, classes) {
    this.g.input('input', T.float, [1, 3, 224, 224]);
    this.g.node('Identity', [y], ['output']);
    this.g.output('output', T.float, [1, classes]);
    return this.g.model(17);
  }
}

function resnet50(bn) {
  const m = new Net('resnet50', bn, 50);
  let x = m.op('Relu', [m.conv('input', 3, 64, 7, 2)]);
  x = m.op('MaxPool', [x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
  let cin = 64;
  for (const [width, blocks, stride] of [[64, 3, 1], [128, 4, 2], [256, 6, 2], [512, 3, 2]]) {
    for (let b = 0; b < blocks; b++) {
      const s = b === 0 ? stride : 1, cout = width * 4;
      let y = m.op('Relu', [m.conv(x, cin, width, 1)]);
      y = m.op('Relu', [m.conv(y, width, width, 3, s)]);
      y = m.conv(y, width, cout, 1, 1, 1, 0.3);
      const id = b === 0 ? m.conv(x, cin, cout, 1, s) : x;
      x = m.op('Relu', [m.op('Add', [y, id])]);
      cin = cout;
    }
  }
  return m.finish(m.head(x, 2048, 1000), 1000);
}

const div8 = (v) => Math.max(8, Math.floor((v + 4) / 8) * 8) < 0.9 * v ? Math.floor((v + 4) / 8) * 8 + 8 : Math.max(8, Math.floor((v + 4) / 8) * 8);

// squeeze-excitation: x * gate(conv(act(conv(GAP(x)))))
function se(m, x, c, sq, act, gate) {
  let s = m.op('GlobalAveragePool', [x]);
  s = act(m.conv(s, c, sq, 1));
  s = gate(m.conv(s, sq, c, 1));
  return m.op('Mul', [x, s]);
}

function mobilenetv3(bn) {
  const m = new Net('mobilenetv3_large', bn, 3);
  const hs = (x) => m.op('HardSwish', [x]), re = (x) => m.op('Relu', [x]);
  const hsig = (x) => m.op('HardSigmoid', [x], { alpha: { f: 1 / 6 }, beta: { f: 0.5 } });
  let x = hs(m.conv('input', 3, 16, 3, 2)), cin = 16;
  // kernel, expanded, out, SE, HardSwish, stride (torchvision's mobilenet_v3_large)
  for (const [k, exp, out, useSe, useHs, s] of [
    [3, 16, 16, 0, 0, 1], [3, 64, 24, 0, 0, 2], [3, 72, 24, 0, 0, 1], [5, 72, 40, 1, 0, 2], [5, 120, 40, 1, 0, 1],
    [5, 120, 40, 1, 0, 1], [3, 240, 80, 0, 1, 2], [3, 200, 80, 0, 1, 1], [3, 184, 80, 0, 1, 1], [3, 184, 80, 0, 1, 1],
    [3, 480, 112, 1, 1, 1], [3, 672, 112, 1, 1, 1], [5, 672, 160, 1, 1, 2], [5, 960, 160, 1, 1, 1], [5, 960, 160, 1, 1, 1]]) {
    const act = useHs ? hs : re;
    let y = exp !== cin ? act(m.conv(x, cin, exp, 1)) : x;
    y = act(m.conv(y, exp, exp, k, s, exp));
    if (useSe) y = se(m, y, exp, div8(exp / 4), re, hsig);
    y = m.conv(y, exp, out, 1, 1, 1, 0.5);
    x = s === 1 && cin === out ? m.op('Add', [y, x]) : y;
    cin = out;
  }
  x = hs(m.conv(x, cin, 960, 1));
  const f = m.op('Flatten', [m.op('GlobalAveragePool', [x])], { axis: 1 });
  const w1 = m.init([1280, 960], m.rand(1280 * 960, Math.sqrt(3 / 960)));
  const h = hs(m.op('Gemm', [f, w1, m.init([1280], m.rand(1280, 0.1))], { transB: 1 }));
  const w2 = m.init([1000, 1280], m.rand(1000 * 1280, Math.sqrt(3 / 1280)));
  return m.finish(m.op('Gemm', [h, w2, m.init([1000], m.rand(1000, 0.1))], { transB: 1 }), 1000);
}

function efficientnet(bn) {
  const m = new Net('efficientnet_b0', bn, 0);
  const silu = (x) => m.op('Mul', [x, m.op('Sigmoid', [x])]);
  const sig = (x) => m.op('Sigmoid', [x]);
  let x = silu(m.conv('input', 3, 32, 3, 2)), cin = 32;
  // expand ratio, kernel, stride, out, layers (torchvision's efficientnet_b0)
  for (const [e, k, stride, out, layers] of [[1, 3, 1, 16, 1], [6, 3, 2, 24, 2], [6, 5, 2, 40, 2], [6, 3, 2, 80, 3],
    [6, 5, 1, 112, 3], [6, 5, 2, 192, 4], [6, 3, 1, 320, 1]]) {
    for (let l = 0; l < layers; l++) {
      const s = l === 0 ? stride : 1, exp = cin * e;
      let y = e !== 1 ? silu(m.conv(x, cin, exp, 1)) : x;
      y = silu(m.conv(y, exp, exp, k, s, exp));
      y = se(m, y, exp, Math.max(1, Math.floor(cin / 4)), silu, sig);
      y = m.conv(y, exp, out, 1, 1, 1, 0.5);
      x = s === 1 && cin === out ? m.op('Add', [y, x]) : y;
      cin = out;
    }
  }
  return m.finish(m.head(silu(m.conv(x, cin, 1280, 1)), 1280, 1000), 1000);
}

const args = process.argv.slice(2);
const bn = args.includes('--bn');
const oi = args.indexOf('--only');
const only = oi >= 0 ? args[oi + 1].split(',') : null;
const out = args.filter((a, i) => !a.startsWith('--') && (oi < 0 || i !== oi + 1))[0];
if (!out) { console.error('cnn-cases: error: no output folder'); process.exit(2); }
const MODELS = { resnet50, mobilenetv3, efficientnet };
const r = rng(224);
const image = Float32Array.from({ length: 3 * 224 * 224 }, () => r() * 4 - 2);
for (const [name, make] of Object.entries(MODELS)) {
  if (only && !only.includes(name)) continue;
  const dir = path.join(out, name + (bn ? '-bn' : '')), set = path.join(dir, 'test_data_set_0');
  fs.mkdirSync(set, { recursive: true });
  const model = make(bn);
  fs.writeFileSync(path.join(dir, 'model.onnx'), model);
  fs.writeFileSync(path.join(set, 'input_0.pb'), tensor('input', T.float, [1, 3, 224, 224], image));
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  const res = await session.run({ input: new ort.Tensor('float32', image, [1, 3, 224, 224]) });
  const y = res.output.data;
  fs.writeFileSync(path.join(set, 'output_0.pb'), tensor('output', T.float, [1, 1000], y));
  let s = 0;
  for (const v of y) s += v * v;
  console.log(`${dir}  (output rms ${Math.sqrt(s / y.length).toPrecision(3)})`);
}
