// make-model.mjs — writes vocab.txt and model.onnx for examples/sentiment: a three-class
// sentiment classifier (negative, neutral, positive) whose weights are set by hand, not trained.
// Each word of a small English lexicon has a polarity from -3 to +3; the model looks every token
// up in an embedding table of those polarities (positive p: logits [-p, 0, p]; negative the
// mirror), sums them over the real tokens (attention_mask) and adds a bias toward neutral. It
// reads words one by one: "not good" is as positive as "good". Run: node make-model.mjs
import { writeFileSync } from "node:fs";

const lexicon = {
  3: "love loved loves lovely amazing awesome excellent fantastic wonderful perfect brilliant outstanding superb incredible delightful",
  2: "great good happy glad enjoy enjoyed enjoying like liked likes beautiful best nice fun pleased recommend helpful impressive " +
     "friendly fast easy smooth clean comfortable cool favorite win thanks thank",
  1: "fine ok okay decent solid works working useful better fair pretty",
  [-1]: "slow meh boring bland hard difficult confusing late noisy expensive problem issue issues",
  [-2]: "bad poor sad angry annoying annoyed disappointed disappointing broken wrong ugly hate hated dislike worse fail failed " +
        "failure bug buggy crash crashed unhappy rude dirty useless waste",
  [-3]: "terrible awful horrible worst disgusting hateful dreadful pathetic garbage trash atrocious",
};
const common = ("the a an and or but if so to of in on at for with from by about as is are was were be been being am it its " +
  "this that these those i me my we our you your he she they them his her their what which who how why when where there here " +
  "not no never very really too quite just all some any more most much many one two do does did done have has had will would " +
  "can could should may might must get got make made go went come came see saw say said think know want need feel felt time " +
  "day today product service movie film book food place app phone price people thing things way lot everything nothing " +
  "something again still even also only now then than").split(" ");
const special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
const punct = [..."!?.,;:'\"()-"];
const polar = Object.entries(lexicon).flatMap(([p, words]) => words.split(" ").map((w) => [w, Number(p)]));
const vocab = [...special, ...punct, ...common.filter((w) => !polar.some(([p]) => p === w)), ...polar.map(([w]) => w)];
if (new Set(vocab).size !== vocab.length) throw new Error("a word is listed twice");
const polarity = new Map(polar);
const emb = vocab.flatMap((w) => { const p = polarity.get(w) || 0; return [-p, 0, p]; });

function varint(n) {
  const out = [];
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n;
  do { let b = Number(v & 0x7fn); v >>= 7n; if (v) b |= 0x80; out.push(b); } while (v);
  return out;
}
const key = (f, w) => varint((f << 3) | w);
const int = (f, v) => [...key(f, 0), ...varint(v)];
const bytes = (f, b) => [...key(f, 2), ...varint(b.length), ...b];
const str = (f, s) => bytes(f, [...Buffer.from(s, "utf8")]);
const msg = (f, parts) => bytes(f, parts.flat());
const FLOAT = 1, INT64 = 7;
const dim = (d) => msg(1, typeof d === "number" ? [int(1, d)] : [str(2, d)]);
const valueInfo = (f, name, type, dims) => msg(f, [str(1, name), msg(2, [msg(1, [int(1, type), msg(2, dims.map(dim))])])]);
const tensor = (name, dims, values) => {
  const raw = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => raw.writeFloatLE(v, i * 4));
  return msg(5, [...dims.map((d) => int(1, d)), int(2, FLOAT), str(8, name), bytes(9, [...raw])]);
};
const int64s = (name, values) => {
  const raw = Buffer.alloc(values.length * 8);
  values.forEach((v, i) => raw.writeBigInt64LE(BigInt(v), i * 8));
  return msg(5, [int(1, values.length), int(2, INT64), str(8, name), bytes(9, [...raw])]);
};
const attrInt = (name, v) => msg(5, [str(1, name), int(3, v), int(20, 2)]);
const node = (op, inputs, outputs, attrs = []) =>
  msg(1, [...inputs.map((i) => str(1, i)), ...outputs.map((o) => str(2, o)), str(3, outputs[0]), str(4, op), ...attrs]);

const graph = [
  node("Gather", ["polarity", "input_ids"], ["per_token"]),                 // [batch, seq, 3]
  node("Cast", ["attention_mask"], ["mask_f"], [attrInt("to", FLOAT)]),
  node("Unsqueeze", ["mask_f", "axis2"], ["mask3"]),                         // [batch, seq, 1]
  node("Mul", ["per_token", "mask3"], ["masked"]),
  node("ReduceSum", ["masked", "axis1"], ["summed"], [attrInt("keepdims", 0)]), // [batch, 3]
  node("Add", ["summed", "bias"], ["logits"]),
  str(2, "lexicon-sentiment"),
  tensor("polarity", [vocab.length, 3], emb),
  tensor("bias", [3], [0, 1, 0]),
  int64s("axis1", [1]),
  int64s("axis2", [2]),
  valueInfo(11, "input_ids", INT64, ["batch", "sequence"]),
  valueInfo(11, "attention_mask", INT64, ["batch", "sequence"]),
  valueInfo(12, "logits", FLOAT, ["batch", 3]),
];
const model = Buffer.from([...int(1, 8), ...str(2, "gpux examples/sentiment"), ...msg(8, [str(1, ""), int(2, 13)]), ...msg(7, graph)]);
writeFileSync(new URL("model.onnx", import.meta.url), model);
writeFileSync(new URL("vocab.txt", import.meta.url), vocab.join("\n") + "\n");
console.log(`vocab.txt: ${vocab.length} tokens (${polar.length} with a polarity); model.onnx: ${model.length} bytes`);
