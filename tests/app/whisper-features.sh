#!/usr/bin/env bash
# preprocessing.audio.features: whisper end to end: `gpux run` on WAV files gives the log-mel
# features a tiny identity model passes through, compared with two references
# (whisper-features.py); one-line errors for GPUXfiles whose settings cannot make Whisper
# features and for audio that cannot be turned into them.
#   tests/app/whisper-features.sh GPUX
source "$(dirname "$0")/lib.sh" "$1"
# Debian's numpy is for /usr/bin/python3; a python3 earlier on PATH may lack it
py=
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import numpy' 2>/dev/null; then py=$p; break; fi
done
[ -n "$py" ] || { echo "MISSING: no python3 with numpy (scripts/install-deps.sh installs python3-numpy)"; exit 1; }

expect references 0 '^0 failed$' -- "$py" "$root/tests/app/whisper-features.py" "$gpux" "$tmp/work"
cd "$tmp/work" || exit 1

# a GPUXfile over the 80-bin identity model with these audio settings
app() {
  local dir=$1
  shift
  mkdir -p "$dir" && cp fixed80/model.onnx "$dir/" && printf 'model: ./model.onnx\npreprocessing:\n  audio:\n' > "$dir/GPUXfile"
  for l in "$@"; do printf '    %s\n' "$l" >> "$dir/GPUXfile"; done
}
app bins128 'features: whisper' 'mel_bins: 128'
expect_error bins-mismatch "GPUXfile:4: key 'preprocessing.audio.mel_bins': features have 128 mel bins but model.onnx's 'input_features' takes 80" -- "$gpux" run bins128 --input tone-440.wav
app frames 'features: whisper' 'length: 160000'
expect_error frames-mismatch "key 'preprocessing.audio.length': features have 1000 frames \(160000 samples\) but model.onnx's 'input_features' takes 3000 frames" -- "$gpux" run frames --input tone-440.wav
app int16 'features: whisper' 'normalize: int16'
expect_error normalize "key 'preprocessing.audio': whisper features take samples in \[-1, 1\]: normalize must be none" -- "$gpux" run int16 --input tone-440.wav
app rate 'features: whisper' 'sample_rate: 8000'
expect_error sample-rate "key 'preprocessing.audio': whisper features are computed at 16000 Hz, not sample_rate 8000" -- "$gpux" run rate --input tone-440.wav
app odd-length 'features: whisper' 'length: 480001'
expect_error odd-length "whisper features: length 480001 is not a multiple of 160 samples" -- "$gpux" run odd-length --input tone-440.wav
app bins-only 'mel_bins: 80'
expect_error bins-alone "key 'preprocessing.audio': audio mel_bins needs features: whisper" -- "$gpux" run bins-only --input tone-440.wav
app bad-kind 'features: mfcc'
expect_error bad-kind "key 'preprocessing.audio.features'.*none, whisper" -- "$gpux" run bad-kind --input tone-440.wav
app too-many 'features: whisper' 'mel_bins: 1000'
expect_error too-many-bins "key 'preprocessing.audio.mel_bins'" -- "$gpux" run too-many --input tone-440.wav
# a rank-2 input (samples) cannot take [1, bins, frames]
expect_error rank "key 'preprocessing.audio.batch_dim': audio becomes rank 3 but model.onnx's 'input_features' has rank 2" -- "$gpux" run rank2 --input tone-440.wav

# audio that cannot become features: a NaN sample, a file that is not a WAV
"$py" -c "
import struct
d = struct.pack('<4f', 0.1, float('nan'), 0.2, 0.3)
open('nan.wav', 'wb').write(b'RIFF' + struct.pack('<I', 36 + len(d)) + b'WAVEfmt ' + struct.pack('<IHHIIHH', 16, 3, 1, 16000, 64000, 4, 32) + b'data' + struct.pack('<I', len(d)) + d)"
expect_error nan "input 'input_features' expects audio \(a WAV file\): log-mel features: sample 1 is NaN" -- "$gpux" run fixed80 --input nan.wav
expect_error not-wav "input 'input_features' expects audio \(a WAV file\): not a WAV file" -- "$gpux" run fixed80 --input fixed80/GPUXfile

# inspect says what the preprocessing makes
# a built image: its smoke run makes features from generated audio; inspect says what the
# preprocessing makes
expect build 0 '' -- "$gpux" build symbolic128 -t whisper128
expect inspect 0 'audio -> input_features: WAV, resampled to 16000 Hz, whisper log-mel features \(128 bins\)' -- "$gpux" inspect whisper128
expect run-image 0 '^features float32\[1,128,3000\]' -- "$gpux" run whisper128 --input tone-440.wav
finish
