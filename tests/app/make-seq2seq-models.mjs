// make-seq2seq-models.mjs — small encoder–decoder models with the interface optimum gives
// Whisper and Marian/T5, written with a protobuf writer by hand (seeded random weights), for the
// forms of tests/app/seq2seq.sh that examples/whisper-tiny does not have (audio: input_features
// [1, 80, 3000] and that folder's 306-token vocabulary, for the merged decoder), a text encoder
// (input_ids, attention_mask; the decoders take encoder_attention_mask and cache_position, as
// newer exports have it) and the merged decoder
// (decoder_model_merged.onnx: an If on use_cache_branch over the two decoders). One layer, one
// head; the decoder's last position depends on every cached position, on the cross-attention
// cache and (text) on the encoder's mask, so a cache fed wrongly changes the tokens.
//   node tests/app/make-seq2seq-models.mjs OUTDIR audio|text
//     encoder_model.onnx, decoder_model.onnx, decoder_with_past_model.onnx, decoder_model_merged.onnx
import fs from 'node:fs';

function varint(v) {
  let x = BigInt.asUintN(64, BigInt(v));
  const out = [];
  do { let b = Number(x & 0x7fn); x >>= 7n; if (x) b |= 0x80; out.push(b); } while (x);
  return Buffer.from(out);
}
const key = (f, w) => varint((f << 3) | w);
const int = (f, v) => Buffer.concat([key(f, 0), varint(v)]);
const bytes = (f, b) => Buffer.concat([key(f, 2), varint(b.length), b]);
const str = (f, s) => bytes(f, Buffer.from(s, 'utf8'));
const msg = (f, parts) => bytes(f, Buffer.concat(parts));
const FLOAT = 1, INT64 = 7, BOOL = 9;
function tensor(f, name, type, dims, values) {
  const raw = type === FLOAT ? Buffer.from(Float32Array.from(values).buffer) : Buffer.from(BigInt64Array.from(values.map(BigInt)).buffer);
  return msg(f, [...dims.map((d) => int(1, d)), int(2, type), str(8, name), bytes(9, raw)]);
}
const dim = (d) => msg(1, [typeof d === 'number' ? int(1, d) : str(2, d)]);
const valueInfo = (f, name, type, dims) => msg(f, [str(1, name), msg(2, [msg(1, [int(1, type), msg(2, dims.map(dim))])])]);
const attrInt = (n, v) => msg(5, [str(1, n), int(3, v), int(20, 2)]);
const attrInts = (n, vs) => msg(5, [str(1, n), ...vs.map((v) => int(8, v)), int(20, 7)]);
const attrGraph = (n, g) => msg(5, [str(1, n), msg(6, g), int(20, 5)]);

let seed = 7;
const rnd = () => {                            // mulberry32
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const V = 306, D = 16, MELS = 80;
const randArr = (n, scale) => Array.from({ length: n }, () => scale * (2 * rnd() - 1));
const W = { E: randArr(V * D, 1), enc: randArr(MELS * D, 0.25), wk: randArr(D * D, 0.5), wv: randArr(D * D, 0.5), ek: randArr(D * D, 0.5), out: randArr(D * V, 1) };

const [outDir, kind] = process.argv.slice(2);
const text = kind === 'text';

// A graph builder: nodes with fresh value names (unique across subgraphs), initializers.
let serial = 0;
function builder() {
  const b = { nodes: [], inits: [] };
  b.node = (op, ins, attrs = []) => {
    const o = `${op.toLowerCase()}_${serial++}`;
    b.nodes.push(msg(1, [...ins.map((x) => str(1, x)), str(2, o), str(3, o), str(4, op), ...attrs]));
    return o;
  };
  b.out = (x, name) => b.nodes.push(msg(1, [str(1, x), str(2, name), str(3, `${name}_${serial++}`), str(4, 'Identity')]));
  b.init = (n, t, d, v) => { b.inits.push(tensor(5, n, t, d, v)); return n; };
  return b;
}
function graphOf(b, ins, outs) {
  return [...b.nodes, str(2, 'g'), ...b.inits, ...ins.map((x) => valueInfo(11, ...x)), ...outs.map((x) => valueInfo(12, ...x))];
}
const modelOf = (graph) => Buffer.concat([int(1, 8), msg(8, [str(1, ''), int(2, 17)]), msg(7, graph)]);
function weights(b) {
  b.init('E', FLOAT, [V, D], W.E); b.init('Wk', FLOAT, [D, D], W.wk); b.init('Wv', FLOAT, [D, D], W.wv);
  b.init('Wek', FLOAT, [D, D], W.ek); b.init('ax1', INT64, [1], [1]); b.init('Wo', FLOAT, [D, V], W.out);
  b.init('three', FLOAT, [], [3]);
}

// The decoder's computation into builder b; `past` reads the cache inputs. Returns its outputs.
function decode(b, past) {
  const emb = b.node('Gather', ['E', 'input_ids']);                               // [1, S, D]
  const k = b.node('Unsqueeze', [b.node('MatMul', [emb, 'Wk']), 'ax1']);          // [1, 1, S, D]
  const v = b.node('Unsqueeze', [b.node('MatMul', [emb, 'Wv']), 'ax1']);
  const K = past ? b.node('Concat', ['past_key_values.0.decoder.key', k], [attrInt('axis', 2)]) : k;
  const Vv = past ? b.node('Concat', ['past_key_values.0.decoder.value', v], [attrInt('axis', 2)]) : v;
  const ek = past ? 'past_key_values.0.encoder.key' : b.node('Unsqueeze', [b.node('MatMul', ['encoder_hidden_states', 'Wek']), 'ax1']);
  const ev = past ? 'past_key_values.0.encoder.value' : b.node('Unsqueeze', ['encoder_hidden_states', 'ax1']);
  const mean = (x) => b.node('ReduceMean', [x], [attrInts('axes', [2])]);
  const ks = b.node('Squeeze', [mean(K), 'ax1']), vs = b.node('Squeeze', [mean(Vv), 'ax1']);
  const c = b.node('Squeeze', [b.node('Add', [mean(ek), mean(ev)]), 'ax1']);
  let h = b.node('Add', [b.node('Add', [b.node('Mul', [emb, b.node('Sigmoid', [ks])]), b.node('Mul', [vs, 'three'])]), c]);
  if (text) { // the mask's length, and the positions (the first's count, so a wrong offset shows)
    h = b.node('Add', [h, b.node('Cast', [b.node('ReduceSum', ['encoder_attention_mask'], [attrInt('keepdims', 0)])], [attrInt('to', FLOAT)])]);
    const first = b.node('Cast', [b.node('ReduceMin', ['cache_position'], [attrInt('keepdims', 0)])], [attrInt('to', FLOAT)]);
    h = b.node('Add', [h, b.node('Mul', [b.node('Sin', [first]), 'three'])]);
  }
  const logits = b.node('MatMul', [h, 'Wo']);
  return { logits, K, Vv, ek, ev };
}

const ids = ['input_ids', INT64, ['batch', 'seq']];
const hidden = ['encoder_hidden_states', FLOAT, ['batch', 'enc', D]];
const encMask = text ? [['encoder_attention_mask', INT64, ['batch', 'enc']], ['cache_position', INT64, ['seq']]] : [];
const pastIn = ['decoder.key', 'decoder.value', 'encoder.key', 'encoder.value'].map((n) =>
  [`past_key_values.0.${n}`, FLOAT, ['batch', 1, n.startsWith('decoder') ? 'past' : 'enc', D]]);
const logitsOut = ['logits', FLOAT, ['batch', 'seq', V]];
const presentOut = (names, len) => names.map((n) => [`present.0.${n}`, FLOAT, ['batch', 1, n.startsWith('decoder') ? len : 'enc', D]]);
const ALL = ['decoder.key', 'decoder.value', 'encoder.key', 'encoder.value'];

// encoder
{
  const b = builder();
  if (text) {
    b.init('E', FLOAT, [V, D], W.E); b.init('Wt', FLOAT, [D, D], W.ek); b.init('ax2', INT64, [1], [2]);
    const m = b.node('Unsqueeze', [b.node('Cast', ['attention_mask'], [attrInt('to', FLOAT)]), 'ax2']);
    b.out(b.node('Mul', [b.node('Tanh', [b.node('MatMul', [b.node('Gather', ['E', 'input_ids']), 'Wt'])]), m]), 'last_hidden_state');
    fs.writeFileSync(`${outDir}/encoder_model.onnx`, modelOf(graphOf(b, [['input_ids', INT64, ['batch', 'src']], ['attention_mask', INT64, ['batch', 'src']]],
                                                                   [['last_hidden_state', FLOAT, ['batch', 'src', D]]])));
  } else {
    b.init('W', FLOAT, [MELS, D], W.enc);
    b.out(b.node('Tanh', [b.node('MatMul', [b.node('Transpose', ['input_features'], [attrInts('perm', [0, 2, 1])]), 'W'])]), 'last_hidden_state');
    fs.writeFileSync(`${outDir}/encoder_model.onnx`, modelOf(graphOf(b, [['input_features', FLOAT, ['batch', MELS, 3000]]],
                                                                   [['last_hidden_state', FLOAT, ['batch', 'enc', D]]])));
  }
}
// decoder (no past): the whole cache out
{
  const b = builder();
  weights(b);
  const r = decode(b, false);
  [r.logits, r.K, r.Vv, r.ek, r.ev].forEach((x, i) => b.out(x, i ? `present.0.${ALL[i - 1]}` : 'logits'));
  fs.writeFileSync(`${outDir}/decoder_model.onnx`, modelOf(graphOf(b, [ids, hidden, ...encMask], [logitsOut, ...presentOut(ALL, 'seq')])));
}
// decoder with past: the self-attention cache out
{
  const b = builder();
  weights(b);
  const r = decode(b, true);
  [r.logits, r.K, r.Vv].forEach((x, i) => b.out(x, i ? `present.0.${ALL[i - 1]}` : 'logits'));
  fs.writeFileSync(`${outDir}/decoder_with_past_model.onnx`,
                   modelOf(graphOf(b, [ids, ...encMask, ...pastIn], [logitsOut, ...presentOut(ALL.slice(0, 2), 'total')])));
}
// merged: If(use_cache_branch) over both, each branch giving every present (the cache branch
// passes the cross-attention cache through)
{
  const outer = builder();
  weights(outer);
  const branch = (past) => {
    const b = builder();
    const r = decode(b, past);
    const outs = [r.logits, r.K, r.Vv, past ? b.node('Identity', [r.ek]) : r.ek, past ? b.node('Identity', [r.ev]) : r.ev];
    return [...b.nodes, str(2, past ? 'with_past' : 'no_past'), ...outs.map((o) => msg(12, [str(1, o), msg(2, [msg(1, [int(1, FLOAT)])])]))] // no shape: any;
  };
  const names = ['logits', ...ALL.map((n) => `present.0.${n}`)];
  outer.nodes.push(msg(1, [str(1, 'use_cache_branch'), ...names.map((n) => str(2, n)), str(3, 'merged_if'), str(4, 'If'),
                           attrGraph('then_branch', branch(true)), attrGraph('else_branch', branch(false))]));
  fs.writeFileSync(`${outDir}/decoder_model_merged.onnx`,
                   modelOf(graphOf(outer, [ids, hidden, ...encMask, ...pastIn, ['use_cache_branch', BOOL, [1]]],
                                   [logitsOut, ...presentOut(ALL, 'total')])));
}
