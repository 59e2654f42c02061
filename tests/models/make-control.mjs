// make-control.mjs — builds small ONNX models with control flow (If on a data-dependent and on a
// shape-only condition, a counted Loop with scan outputs, a while Loop whose condition is computed
// on the data, Scan with a reversed scan input) and writes them as test-case folders whose
// expected outputs come from ONNX Runtime's CPU execution provider in this same run.
//
//   node tests/models/make-control.mjs OUTDIR
//
// Each case is OUTDIR/<name>/model.onnx with test_data_set_K/input_N.pb + output_N.pb; the data
// sets of one case take different branches or iteration counts. OUTDIR/cases.txt lists them.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const nodeModules = process.env.GPUX_NODE_MODULES || path.join(root, 'deps/npm/node_modules');
const require = createRequire(path.join(nodeModules, 'noop.js'));
const ort = require('onnxruntime-node');

/* ---------------------------------------------------------------- protobuf writer */
// Only what these models need of onnx.proto: ModelProto, GraphProto, NodeProto, AttributeProto,
// ValueInfoProto/TypeProto and TensorProto (raw_data).
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
const bytesField = (field, b) => Buffer.concat([key(field, 2), varint(b.length), b]);
const strField = (field, s) => bytesField(field, Buffer.from(s, 'utf8'));
const intField = (field, v) => Buffer.concat([key(field, 0), varint(v)]);
const floatField = (field, f) => { const b = Buffer.alloc(4); b.writeFloatLE(f); return Buffer.concat([key(field, 5), b]); };

const DT = { float32: 1, int32: 6, int64: 7, bool: 9 };
const ARR = { float32: Float32Array, int32: Int32Array, int64: BigInt64Array, bool: Uint8Array };

function tensor(name, type, dims, values) {
  const data = type === 'int64' ? BigInt64Array.from(values.map(BigInt)) : ARR[type].from(values);
  const parts = dims.map((d) => intField(1, d));
  parts.push(intField(2, DT[type]));
  if (name) parts.push(strField(8, name));
  parts.push(bytesField(9, Buffer.from(data.buffer, data.byteOffset, data.byteLength)));
  return Buffer.concat(parts);
}
// dims: undefined = unknown rank; entries are numbers or symbolic names
function valueInfo(name, type, dims) {
  const t = [intField(1, DT[type])];
  if (dims) t.push(bytesField(2, Buffer.concat(dims.map((d) =>
    bytesField(1, typeof d === 'number' ? intField(1, d) : strField(2, d))))));
  return Buffer.concat([strField(1, name), bytesField(2, bytesField(1, Buffer.concat(t)))]);
}
function attr(name, v) {
  const p = [strField(1, name)];
  if (v && v.graph) p.push(bytesField(6, v.graph), intField(20, 5));
  else if (Array.isArray(v)) p.push(...v.map((x) => intField(8, x)), intField(20, 7));
  else if (typeof v === 'object' && v.float !== undefined) p.push(floatField(2, v.float), intField(20, 1));
  else p.push(intField(3, v), intField(20, 2));
  return Buffer.concat(p);
}
function node(op, inputs, outputs, attrs = {}, name = '') {
  return Buffer.concat([
    ...inputs.map((s) => strField(1, s)), ...outputs.map((s) => strField(2, s)),
    strField(3, name || `${op}_${outputs[0]}`), strField(4, op),
    ...Object.entries(attrs).map(([k, v]) => bytesField(5, attr(k, v))),
  ]);
}
// g: { name, nodes, inits: [tensor...], inputs: [valueInfo...], outputs: [valueInfo...] }
function graph(g) {
  return Buffer.concat([
    ...g.nodes.map((n) => bytesField(1, n)), strField(2, g.name),
    ...(g.inits || []).map((t) => bytesField(5, t)),
    ...(g.inputs || []).map((v) => bytesField(11, v)), ...g.outputs.map((v) => bytesField(12, v)),
  ]);
}
const model = (g, opset = 17) => Buffer.concat([
  intField(1, 8), strField(2, 'gpux make-control'), bytesField(7, graph(g)),
  bytesField(8, Buffer.concat([strField(1, ''), intField(2, opset)])),
]);

/* ---------------------------------------------------------------- the models */
const f32 = 'float32';
const CASES = {
  // y = If(sum(x) > 0, relu(x + 1), x * -2) + x: the condition is computed on the data
  if_data: {
    model: model({
      name: 'if_data',
      nodes: [
        node('ReduceSum', ['x'], ['s'], { keepdims: 0 }),
        node('Greater', ['s', 'zero'], ['c']),
        node('If', ['c'], ['b'], {
          then_branch: { graph: graph({ name: 'then', nodes: [node('Add', ['x', 'one'], ['t0']), node('Relu', ['t0'], ['t1'])],
                                        outputs: [valueInfo('t1', f32)] }) },
          else_branch: { graph: graph({ name: 'else', nodes: [node('Mul', ['x', 'm2'], ['e1'])],
                                        inits: [tensor('m2', f32, [], [-2])], outputs: [valueInfo('e1', f32)] }) },
        }, 'cond_1'),
        node('Add', ['b', 'x'], ['y']),
      ],
      inits: [tensor('zero', f32, [], [0]), tensor('one', f32, [], [1])],
      inputs: [valueInfo('x', f32, [2, 3])], outputs: [valueInfo('y', f32, [2, 3])],
    }),
    sets: [[{ type: f32, dims: [2, 3], data: [0.5, -1, 2, 1.5, -0.25, 3] }],
           [{ type: f32, dims: [2, 3], data: [-0.5, 1, -2, -1.5, 0.25, -3] }]],
  },
  // If(dim 0 of x > 2, sigmoid(x), tanh(x) * 3): decided by the shape alone, at plan time
  if_shape: {
    model: model({
      name: 'if_shape',
      nodes: [
        node('Shape', ['x'], ['sh']),
        node('Gather', ['sh', 'i0'], ['n'], { axis: 0 }),
        node('Greater', ['n', 'two'], ['c']),
        node('If', ['c'], ['y'], {
          then_branch: { graph: graph({ name: 'then', nodes: [node('Sigmoid', ['x'], ['t1'])], outputs: [valueInfo('t1', f32)] }) },
          else_branch: { graph: graph({ name: 'else', nodes: [node('Tanh', ['x'], ['e0']), node('Mul', ['e0', 'three'], ['e1'])],
                                        outputs: [valueInfo('e1', f32)] }) },
        }, 'by_shape'),
      ],
      inits: [tensor('i0', 'int64', [], [0]), tensor('two', 'int64', [], [2]), tensor('three', f32, [], [3])],
      inputs: [valueInfo('x', f32, ['n', 4])], outputs: [valueInfo('y', f32, ['n', 4])],
    }),
    sets: [[{ type: f32, dims: [3, 4], data: Array.from({ length: 12 }, (_, i) => (i - 6) / 4) }],
           [{ type: f32, dims: [2, 4], data: Array.from({ length: 8 }, (_, i) => (i - 3) / 3) }]],
  },
  // for i < M: acc = acc * 0.5 + x; every acc stacked (a scan output)
  loop_for: {
    model: model({
      name: 'loop_for',
      nodes: [node('Loop', ['M', '', 'x'], ['acc', 'accs'], {
        body: { graph: graph({
          name: 'body',
          nodes: [node('Mul', ['a_in', 'half'], ['a0']), node('Add', ['a0', 'x'], ['a_out']),
                  node('Identity', ['c_in'], ['c_out']), node('Identity', ['a_out'], ['a_scan'])],
          inits: [tensor('half', f32, [], [0.5])],
          inputs: [valueInfo('i', 'int64', []), valueInfo('c_in', 'bool', []), valueInfo('a_in', f32)],
          outputs: [valueInfo('c_out', 'bool', []), valueInfo('a_out', f32), valueInfo('a_scan', f32)],
        }) },
      }, 'counted')],
      inputs: [valueInfo('M', 'int64', []), valueInfo('x', f32, [4])],
      outputs: [valueInfo('acc', f32, [4]), valueInfo('accs', f32)],
    }),
    sets: [[{ type: 'int64', dims: [], data: [5] }, { type: f32, dims: [4], data: [1, -2, 0.5, 3] }],
           [{ type: 'int64', dims: [], data: [2] }, { type: f32, dims: [4], data: [0.25, 4, -1, 2] }]],
  },
  // while sum(s) < 100: s = s * 2 + 1 (the condition is read back each iteration)
  loop_while: {
    model: model({
      name: 'loop_while',
      nodes: [
        node('ReduceSum', ['s0'], ['t0'], { keepdims: 0 }),
        node('Less', ['t0', 'hundred'], ['c0']),
        node('Loop', ['', 'c0', 's0'], ['s'], {
          body: { graph: graph({
            name: 'body',
            nodes: [node('Mul', ['s_in', 'two'], ['d']), node('Add', ['d', 'one'], ['s_out']),
                    node('ReduceSum', ['s_out'], ['t'], { keepdims: 0 }), node('Less', ['t', 'hundred'], ['c_out'])],
            inits: [tensor('two', f32, [], [2]), tensor('one', f32, [], [1])],
            inputs: [valueInfo('i', 'int64', []), valueInfo('c_in', 'bool', []), valueInfo('s_in', f32)],
            outputs: [valueInfo('c_out', 'bool', []), valueInfo('s_out', f32)],
          }) },
        }, 'until_100'),
      ],
      inits: [tensor('hundred', f32, [], [100])],
      inputs: [valueInfo('s0', f32, [3])], outputs: [valueInfo('s', f32, [3])],
    }),
    sets: [[{ type: f32, dims: [3], data: [0.5, 1, -0.25] }],
           [{ type: f32, dims: [3], data: [20, 30, 10] }],
           [{ type: f32, dims: [3], data: [200, 0, 1] }]],
  },
  // a running sum over the rows of xs, walked backwards; each step's state times the row
  scan: {
    model: model({
      name: 'scan',
      nodes: [node('Scan', ['init', 'xs'], ['total', 'ys'], {
        num_scan_inputs: 1, scan_input_directions: [1],
        body: { graph: graph({
          name: 'body',
          nodes: [node('Add', ['st_in', 'row'], ['st_out']), node('Mul', ['st_out', 'row'], ['y'])],
          inputs: [valueInfo('st_in', f32, [2]), valueInfo('row', f32, [2])],
          outputs: [valueInfo('st_out', f32, [2]), valueInfo('y', f32, [2])],
        }) },
      }, 'running_sum')],
      inputs: [valueInfo('init', f32, [2]), valueInfo('xs', f32, ['steps', 2])],
      outputs: [valueInfo('total', f32, [2]), valueInfo('ys', f32, ['steps', 2])],
    }),
    sets: [[{ type: f32, dims: [2], data: [0, 1] }, { type: f32, dims: [6, 2], data: [1, 2, 3, 4, 5, 6, -1, -2, 0.5, 0.25, 2, -3] }],
           [{ type: f32, dims: [2], data: [1, -1] }, { type: f32, dims: [3, 2], data: [0.5, 1.5, -2, 2, 4, -4] }]],
  },
};

/* ---------------------------------------------------------------- main */
const ortTensor = (t) => new ort.Tensor(t.type, t.type === 'int64' ? BigInt64Array.from(t.data.map(BigInt))
  : t.type === 'bool' ? Uint8Array.from(t.data) : Float32Array.from(t.data), t.dims);
const fromOrt = (name, t) => tensor(name, t.type, t.dims, t.type === 'int64' ? Array.from(t.data, Number) : Array.from(t.data));

async function main() {
  const out = process.argv[2];
  if (!out || out.startsWith('-')) { console.error('usage: node make-control.mjs OUTDIR'); process.exit(2); }
  fs.mkdirSync(out, { recursive: true });
  for (const [name, c] of Object.entries(CASES)) {
    const dir = path.join(out, name);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'model.onnx'), c.model);
    const s = await ort.InferenceSession.create(c.model, { executionProviders: ['cpu'] });
    for (const [k, set] of c.sets.entries()) {
      const feeds = {};
      s.inputNames.forEach((n, i) => { feeds[n] = ortTensor(set[i]); });
      const res = await s.run(feeds);
      const data = path.join(dir, `test_data_set_${k}`);
      fs.mkdirSync(data);
      set.forEach((t, i) => fs.writeFileSync(path.join(data, `input_${i}.pb`),
        tensor(s.inputNames[i], t.type, t.dims, t.data)));
      s.outputNames.forEach((n, i) => fs.writeFileSync(path.join(data, `output_${i}.pb`), fromOrt(n, res[n])));
      console.log(`${name} set ${k}: ${s.outputNames.map((n) => `${n}[${res[n].dims.join(',')}]`).join(' ')}`);
    }
  }
  fs.writeFileSync(path.join(out, 'cases.txt'), Object.keys(CASES).join('\n') + '\n');
}
main().catch((e) => { console.error(`make-control: error: ${e.stack || e}`); process.exit(1); });
