"""whisper-features.py — Whisper's log-mel features from `gpux run` against two references:
an independent numpy implementation written from the formulas (tests/prepost/
whisper_logmel_reference.py) on synthetic WAV files, and, where tests/prepost/whisper/ has them,
features that Hugging Face's WhisperFeatureExtractor computed from a recorded clip.
  python3 tests/app/whisper-features.py GPUX WORKDIR
Each comparison prints its largest absolute difference; the script fails above the tolerance."""
import glob, lzma, os, struct, subprocess, sys
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
sys.path.insert(0, os.path.join(root, "tests", "prepost"))
import whisper_logmel_reference as ref  # noqa: E402

gpux, work = os.path.abspath(sys.argv[1]), sys.argv[2]
os.makedirs(work, exist_ok=True)
TOL = 1e-4
failures = 0


# ---- a tiny ONNX model: input_features -> Identity -> features (protobuf written by hand) ----
def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def field(num, payload):
    if isinstance(payload, int):
        return varint(num << 3) + varint(payload)
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def value_info(name, dims):
    shape = b"".join(field(1, field(1, d) if isinstance(d, int) else field(2, d)) for d in dims)
    return field(1, name) + field(2, field(1, field(1, 1) + field(2, shape)))


def identity_model(path, dims):
    graph = (field(1, field(1, "input_features") + field(2, "features") + field(3, "id") + field(4, "Identity"))
             + field(2, "whisper-features-identity")
             + field(11, value_info("input_features", dims)) + field(12, value_info("features", dims)))
    with open(path, "wb") as f:
        f.write(field(1, 8) + field(8, field(1, "") + field(2, 13)) + field(7, graph))


def app(name, dims, audio_yaml):
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    identity_model(os.path.join(d, "model.onnx"), dims)
    with open(os.path.join(d, "GPUXfile"), "w") as f:
        f.write("model: ./model.onnx\npreprocessing:\n  audio:\n" + "".join(f"    {l}\n" for l in audio_yaml))
    return d


# ---- WAV files ----
def write_wav(path, rate, samples, fmt="float"):
    """mono or [frames, channels] samples; float: IEEE float32, pcm16: 16-bit integers."""
    x = np.asarray(samples)
    ch = 1 if x.ndim == 1 else x.shape[1]
    if fmt == "float":
        data, tag, bits = x.astype("<f4").tobytes(), 3, 32
    else:
        data, tag, bits = np.clip(np.round(x * 32768), -32768, 32767).astype("<i2").tobytes(), 1, 16
    fmt_chunk = struct.pack("<HHIIHH", tag, ch, rate, rate * ch * bits // 8, ch * bits // 8, bits)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + 8 + 16 + 8 + len(data)) + b"WAVE")
        f.write(b"fmt " + struct.pack("<I", 16) + fmt_chunk + b"data" + struct.pack("<I", len(data)) + data)


def run_gpux(app_dir, wav, out_npy):
    r = subprocess.run([gpux, "run", app_dir, "--input", wav, "--output", out_npy], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"gpux run {app_dir} --input {wav}: exit {r.returncode}: {r.stderr.strip()}")
    return np.load(out_npy)


def compare(label, got, want, tol):
    global failures
    got = np.asarray(got, dtype=np.float64).reshape(want.shape)
    diff = float(np.abs(got - want).max())
    ok = diff <= tol
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {label}: max abs diff {diff:.3g} (tolerance {tol:g})")


rng = np.random.default_rng(20261207)
sr = 16000
t30 = np.arange(30 * sr) / sr
f32 = lambda x: np.asarray(x, dtype=np.float32)  # noqa: E731
clips = {  # name: (rate, samples as written, the 16 kHz mono float32 signal the reference takes, format)
    "tone-440": (sr, f32(0.5 * np.sin(2 * np.pi * 440 * t30[:5 * sr]))),
    "chirp-30s": (sr, f32(0.3 * np.sin(2 * np.pi * (50 * t30 + (7950 - 50) / 60 * t30 ** 2)))),
    "noise": (sr, f32(0.1 * rng.standard_normal(12 * sr))),
    "silence": (sr, f32(np.zeros(2 * sr))),
    "long-45s": (sr, f32(0.2 * np.sin(2 * np.pi * 1000 * np.arange(45 * sr) / sr) + 0.01 * rng.standard_normal(45 * sr))),
    "tiny": (sr, f32(0.5 * rng.standard_normal(100))),
    "loud-clipped": (sr, f32(np.clip(3 * np.sin(2 * np.pi * 3000 * t30[:3 * sr]), -1, 1))),
}
wavs = {}
for name, (rate, x) in clips.items():
    path = os.path.join(work, name + ".wav")
    write_wav(path, rate, x)
    wavs[name] = (path, x.astype(np.float64))
# 16-bit PCM: the reference takes the integers / 32768, as the decoder does
pcm = np.round(0.4 * np.sin(2 * np.pi * 250 * t30[:8 * sr]) * 32768) / 32768
write_wav(os.path.join(work, "pcm16.wav"), sr, pcm, "pcm16")
wavs["pcm16"] = (os.path.join(work, "pcm16.wav"), pcm)
# stereo: mixed to mono as (left + right) / 2 in float32
left, right = f32(0.3 * np.sin(2 * np.pi * 700 * t30[:4 * sr])), f32(0.2 * rng.standard_normal(4 * sr))
write_wav(os.path.join(work, "stereo.wav"), sr, np.stack([left, right], 1))
wavs["stereo"] = (os.path.join(work, "stereo.wav"), ((left + right) / np.float32(2)).astype(np.float64))

apps = {80: app("fixed80", [1, 80, 3000], ["features: whisper"]),                   # mel_bins from the model
        128: app("symbolic128", ["batch", "bins", "frames"], ["features: whisper", "mel_bins: 128"])}
app("rank2", [1, 480000], ["features: whisper"])  # for whisper-features.sh: a samples input cannot take features
for bins, d in apps.items():
    for name, (path, x) in wavs.items():
        got = run_gpux(d, path, os.path.join(work, f"{name}-{bins}.npy"))
        if got.shape != (1, bins, 3000):
            print(f"FAIL {name} {bins} bins: shape {got.shape}, want (1, {bins}, 3000)")
            failures += 1
            continue
        compare(f"{name}, {bins} bins, numpy reference", got, ref.log_mel(x, bins), TOL)

# Other rates through the resampler: a 1 kHz tone at 8 kHz and 44.1 kHz against the same tone
# made at 16 kHz. Where the tone starts and stops abruptly, the resampler's low-pass filter (its
# cutoff at 3.8 or 7.6 kHz) takes away what the clicks put at high frequencies, so the frames
# within 30 ms of the two edges differ by design and are left out; elsewhere the features agree.
for rate in (8000, 44100):
    n = 6 * rate
    write_wav(os.path.join(work, f"tone-{rate}.wav"), rate, f32(0.5 * np.sin(2 * np.pi * 1000 * np.arange(n) / rate)))
    got = run_gpux(apps[80], os.path.join(work, f"tone-{rate}.wav"), os.path.join(work, f"tone-{rate}.npy"))[0]
    want = ref.log_mel(f32(0.5 * np.sin(2 * np.pi * 1000 * np.arange(6 * sr) / sr)).astype(np.float64), 80)
    keep = np.r_[3:597, 604:3000]
    compare(f"1 kHz tone at {rate} Hz resampled, 80 bins, numpy reference (away from the edges)",
            got[:, keep], want[:, keep], TOL)

# transformers' WhisperFeatureExtractor on the clips in tests/prepost/whisper/ (README.md there):
# NAME.wav.xz with NAME.features80.npy.xz and NAME.features128.npy.xz ([bins, 3000] float32).
hf_dir = os.path.join(root, "tests", "prepost", "whisper")
hf_cases = sorted(glob.glob(os.path.join(hf_dir, "*.features*.npy.xz")))
for feat in hf_cases:
    base = os.path.basename(feat)
    name, bins = base.split(".features")[0], int(base.split(".features")[1].split(".")[0])
    wav = os.path.join(work, f"hf-{name}.wav")
    with lzma.open(os.path.join(hf_dir, name + ".wav.xz")) as f, open(wav, "wb") as o:
        o.write(f.read())
    with lzma.open(feat) as f:
        want = np.load(f).astype(np.float64)
    got = run_gpux(apps[bins], wav, os.path.join(work, f"hf-{name}-{bins}.npy"))
    compare(f"{name}.wav, {bins} bins, transformers' WhisperFeatureExtractor", got, want.reshape(bins, 3000), TOL)
if os.path.isdir(hf_dir) and not hf_cases:
    print("FAIL tests/prepost/whisper/ has no features to compare with")
    failures += 1

print(f"{failures} failed")
sys.exit(1 if failures else 0)
