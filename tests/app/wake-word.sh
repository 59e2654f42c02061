#!/usr/bin/env bash
# End to end: speak "hey jarvis" with espeak-ng in several voices, resample to 16 kHz, build
# examples/wake-word (openWakeWord melspectrogram -> embedding -> hey_jarvis) and it must be
# detected; other speech must not be.
#   tests/app/wake-word.sh GPUX
source "$(dirname "$0")/lib.sh" "$1"
need espeak-ng node

# espeak-ng writes 22,050 Hz mono PCM16; a 16 kHz copy by linear interpolation (what Python's
# audioop.ratecv does), in node, which the dependency step installs anyway
to16k() {
  node -e '
const fs = require("fs");
const b = fs.readFileSync(process.argv[1]);
let p = 12, rate = 0, data = null;
while (p + 8 <= b.length) {
  const id = b.toString("ascii", p, p + 4), n = b.readUInt32LE(p + 4);
  if (id === "fmt ") rate = b.readUInt32LE(p + 12);
  if (id === "data") data = b.subarray(p + 8, p + 8 + n);
  p += 8 + n + (n & 1);
}
const src = new Int16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length));
const n = Math.floor(src.length * 16000 / rate), out = Buffer.alloc(44 + 2 * n);
for (let i = 0; i < n; i++) {
  const x = i * rate / 16000, k = Math.floor(x), f = x - k;
  const a = src[k], c = k + 1 < src.length ? src[k + 1] : a;
  out.writeInt16LE(Math.round(a + (c - a) * f), 44 + 2 * i);
}
out.write("RIFF", 0); out.writeUInt32LE(36 + 2 * n, 4); out.write("WAVEfmt ", 8);
out.writeUInt32LE(16, 16); out.writeUInt16LE(1, 20); out.writeUInt16LE(1, 22);
out.writeUInt32LE(16000, 24); out.writeUInt32LE(32000, 28); out.writeUInt16LE(2, 32);
out.writeUInt16LE(16, 34); out.write("data", 36); out.writeUInt32LE(2 * n, 40);
fs.writeFileSync(process.argv[2], out);
' "$1" "$2"
}

expect build 0 '^Built wake-word:1.0 ' -- "$gpux" build -q --allow-outside "$root/examples/wake-word"
for voice in en en-us en-gb-x-rp en+f3; do
  espeak-ng -v "$voice" -w "$tmp/raw.wav" "hey jarvis"
  to16k "$tmp/raw.wav" "$tmp/hey-$voice.wav"
  expect "detected-$voice" 0 '^hey_jarvis: detected \(score 0\.(9|8)' -- "$gpux" run wake-word --input "$tmp/hey-$voice.wav"
done
# the 22,050 Hz file as espeak-ng wrote it: gpux resamples
expect detected-22k 0 '^hey_jarvis: detected' -- "$gpux" run wake-word --input "$tmp/raw.wav"
i=0
for text in "the weather is nice today" "hey there, how are you" "open the garage door"; do
  i=$((i + 1))
  espeak-ng -w "$tmp/raw.wav" "$text"
  to16k "$tmp/raw.wav" "$tmp/other$i.wav"
  expect "not-detected-$i" 0 '^hey_jarvis: not detected \(score 0\.0' -- "$gpux" run wake-word --input "$tmp/other$i.wav"
done
expect json 0 '"detected":true.*"scores":\[' -- "$gpux" run wake-word --json --input "$tmp/hey-en.wav"
finish
