#!/usr/bin/env python3
"""whisper-export.py — makes the speech-recognition test data: a small Whisper model with random
weights exported the way optimum exports Whisper (encoder, decoder, decoder with past), the greedy
tokens ONNX Runtime gives for it, and log-mel features computed by transformers'
WhisperFeatureExtractor as the independent reference for gpux's front end.

Needs torch, transformers, onnx and onnxruntime (the GPU machine has them; see docs/DEVICE.md):
    python3 bench/whisper-export.py OUTDIR

The model is transformers' WhisperForConditionalGeneration (d_model 64, 2 encoder and 2 decoder
layers, 80 mel bins) when its cache API can be exported; otherwise a module of the same
architecture written here (OUTDIR/README.md says which). The vocabulary has 306 ids: 0-255 bytes,
256-298 BPE merges, 299 <|endoftext|>, 300 <|startoftranscript|>, 301 <|en|>, 302 <|de|>,
303 <|translate|>, 304 <|transcribe|>, 305 <|notimestamps|>.
"""
import json, math, os, sys, traceback, wave
import numpy as np
import torch, onnxruntime as ort

SEED = 1234
VOCAB, D, LAYERS, HEADS, FFN, MELS, TARGET_POS = 306, 64, 2, 2, 128, 80, 128
EOT, SOT, EN, TRANSCRIBE, NOTS = 299, 300, 301, 304, 305
PROMPT = [SOT, EN, TRANSCRIBE, NOTS]
STEPS = 40


def clips():
    """Deterministic test clips at 16 kHz as int16 samples."""
    rng = np.random.default_rng(SEED)
    sr = 16000
    t = np.arange(int(3.7 * sr)) / sr
    chirp = np.sin(2 * np.pi * (200 * t + (3000 - 200) / (2 * 3.7) * t * t))
    a = 0.3 * np.sin(2 * np.pi * 440 * t) * np.minimum(1, t * 4) + 0.2 * chirp + 0.05 * rng.standard_normal(len(t))
    b = 0.001 * rng.standard_normal(sr)
    t2 = np.arange(int(30.5 * sr)) / sr
    c = 0.4 * np.sin(2 * np.pi * (100 + 50 * t2) * t2) + 0.02 * rng.standard_normal(len(t2))
    return {name: np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16) for name, x in
            (("clip-a", a), ("clip-b", b), ("clip-c", c))}


def write_wav(path, samples, sr=16000):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(samples.tobytes())


def features(out):
    from transformers import WhisperFeatureExtractor
    fe = {n: WhisperFeatureExtractor(feature_size=n) for n in (80, 128)}
    feats = {}
    for name, s in clips().items():
        write_wav(f"{out}/{name}.wav", s)
        x = s.astype(np.float32) / 32768.0
        for n, f in fe.items():
            v = f(x, sampling_rate=16000, return_tensors="np").input_features[0].astype(np.float32)
            np.save(f"{out}/{name}.features{n}.npy", v)
            feats[(name, n)] = v
    return feats


# ---- the model: transformers' Whisper, with a cache built from and flattened to plain tensors ----

def hf_model():
    from transformers import WhisperConfig, WhisperForConditionalGeneration
    cfg = WhisperConfig(vocab_size=VOCAB, num_mel_bins=MELS, encoder_layers=LAYERS, decoder_layers=LAYERS,
                        encoder_attention_heads=HEADS, decoder_attention_heads=HEADS, d_model=D,
                        encoder_ffn_dim=FFN, decoder_ffn_dim=FFN, max_source_positions=1500,
                        max_target_positions=TARGET_POS, pad_token_id=EOT, bos_token_id=EOT, eos_token_id=EOT,
                        decoder_start_token_id=SOT, init_std=0.2, begin_suppress_tokens=None, suppress_tokens=None)
    torch.manual_seed(SEED)
    m = WhisperForConditionalGeneration(cfg).eval()
    return m


def flat(pkv, layers):
    """A cache object (any transformers version) as [(self_k, self_v, cross_k, cross_v)] per layer."""
    if isinstance(pkv, (tuple, list)):
        return [tuple(l) for l in pkv]
    if hasattr(pkv, "to_legacy_cache"):
        try:
            return [tuple(l) for l in pkv.to_legacy_cache()]
        except Exception:
            pass
    def kv(c, i):
        if hasattr(c, "layers"):
            return c.layers[i].keys, c.layers[i].values
        return c.key_cache[i], c.value_cache[i]
    sc, cc = pkv.self_attention_cache, pkv.cross_attention_cache
    return [kv(sc, i) + kv(cc, i) for i in range(layers)]


def make_cache(per_layer):
    try:
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache
    except ImportError:
        return tuple(per_layer)
    sc, cc = DynamicCache(), DynamicCache()
    for i, (dk, dv, ek, ev) in enumerate(per_layer):
        sc.update(dk, dv, i)
        cc.update(ek, ev, i)
    return EncoderDecoderCache(sc, cc)


class HfEncoder(torch.nn.Module):
    def __init__(s, m):
        super().__init__()
        s.m = m

    def forward(s, input_features):
        return s.m.model.encoder(input_features).last_hidden_state


class HfDecoder(torch.nn.Module):
    def __init__(s, m):
        super().__init__()
        s.m = m

    def forward(s, input_ids, encoder_hidden_states):
        o = s.m.model.decoder(input_ids=input_ids, encoder_hidden_states=encoder_hidden_states, use_cache=True)
        out = [s.m.proj_out(o.last_hidden_state)]
        for l in flat(o.past_key_values, LAYERS):
            out += list(l)
        return tuple(out)


class HfDecoderPast(torch.nn.Module):
    def __init__(s, m):
        super().__init__()
        s.m = m

    def forward(s, input_ids, encoder_hidden_states, *past):
        # the hidden states only switch the cross-attention on; its keys and values come from the cache
        per = [tuple(past[4 * i:4 * i + 4]) for i in range(LAYERS)]
        o = s.m.model.decoder(input_ids=input_ids, encoder_hidden_states=encoder_hidden_states,
                              past_key_values=make_cache(per), use_cache=True)
        out = [s.m.proj_out(o.last_hidden_state)]
        for l in flat(o.past_key_values, LAYERS):
            out += list(l[:2])
        return tuple(out)


# ---- the same architecture written out, used when the cache API cannot be traced ----

class Attn(torch.nn.Module):
    def __init__(s):
        super().__init__()
        s.q, s.k, s.v, s.o = (torch.nn.Linear(D, D, bias=b) for b in (True, False, True, True))

    def heads(s, x):
        return x.reshape(x.shape[0], x.shape[1], HEADS, D // HEADS).transpose(1, 2)

    def attend(s, q, k, v, causal):
        a = (q @ k.transpose(-1, -2)) * (D // HEADS) ** -0.5
        if causal:
            n, t = k.shape[2], q.shape[2]
            keep = torch.arange(n).unsqueeze(0) <= (torch.arange(t).unsqueeze(1) + (n - t))
            a = a.masked_fill(~keep, float("-inf"))
        x = torch.softmax(a, -1) @ v
        return s.o(x.transpose(1, 2).reshape(x.shape[0], x.shape[2], D))


class Layer(torch.nn.Module):
    def __init__(s, cross):
        super().__init__()
        s.ln1, s.att = torch.nn.LayerNorm(D), Attn()
        s.lnx, s.xatt = (torch.nn.LayerNorm(D), Attn()) if cross else (None, None)
        s.ln2, s.fc1, s.fc2 = torch.nn.LayerNorm(D), torch.nn.Linear(D, FFN), torch.nn.Linear(FFN, D)

    def mlp(s, x):
        return x + s.fc2(torch.nn.functional.gelu(s.fc1(s.ln2(x))))


class Own(torch.nn.Module):
    def __init__(s):
        super().__init__()
        torch.manual_seed(SEED)
        s.conv1 = torch.nn.Conv1d(MELS, D, 3, padding=1)
        s.conv2 = torch.nn.Conv1d(D, D, 3, stride=2, padding=1)
        inv = torch.exp(-math.log(10000) / (D // 2 - 1) * torch.arange(D // 2))
        t = torch.arange(1500)[:, None] * inv[None]
        s.register_buffer("epos", torch.cat([torch.sin(t), torch.cos(t)], 1))
        s.enc = torch.nn.ModuleList(Layer(False) for _ in range(LAYERS))
        s.enc_ln = torch.nn.LayerNorm(D)
        s.tok, s.pos = torch.nn.Embedding(VOCAB, D), torch.nn.Embedding(TARGET_POS, D)
        with torch.no_grad():
            s.tok.weight.normal_(0, 0.2)
        s.dec = torch.nn.ModuleList(Layer(True) for _ in range(LAYERS))
        s.dec_ln = torch.nn.LayerNorm(D)

    def encode(s, f):
        x = torch.nn.functional.gelu(s.conv2(torch.nn.functional.gelu(s.conv1(f)))).transpose(1, 2)
        x = x + s.epos[: x.shape[1]]
        for l in s.enc:
            h = l.ln1(x)
            x = x + l.att.attend(l.att.heads(l.att.q(h)), l.att.heads(l.att.k(h)), l.att.heads(l.att.v(h)), False)
            x = l.mlp(x)
        return s.enc_ln(x)

    def decode(s, ids, enc, past):
        n_past = past[0][0].shape[2] if past else 0
        x = s.tok(ids) + s.pos(torch.arange(ids.shape[1]) + n_past)
        out = []
        for i, l in enumerate(s.dec):
            h = l.ln1(x)
            k, v = l.att.heads(l.att.k(h)), l.att.heads(l.att.v(h))
            if past:
                k, v = torch.cat([past[i][0], k], 2), torch.cat([past[i][1], v], 2)
            x = x + l.att.attend(l.att.heads(l.att.q(h)), k, v, True)
            if past:
                ek, ev = past[i][2], past[i][3]
            else:
                ek, ev = l.xatt.heads(l.xatt.k(enc)), l.xatt.heads(l.xatt.v(enc))
            x = x + l.xatt.attend(l.xatt.heads(l.xatt.q(l.lnx(x))), ek, ev, False)
            x = l.mlp(x)
            out.append((k, v, ek, ev))
        return s.dec_ln(x) @ s.tok.weight.t(), out


class OwnEncoder(torch.nn.Module):
    def __init__(s, m):
        super().__init__()
        s.m = m

    def forward(s, input_features):
        return s.m.encode(input_features)


class OwnDecoder(torch.nn.Module):
    def __init__(s, m):
        super().__init__()
        s.m = m

    def forward(s, input_ids, encoder_hidden_states):
        logits, per = s.m.decode(input_ids, encoder_hidden_states, None)
        return (logits, *[t for l in per for t in l])


class OwnDecoderPast(torch.nn.Module):
    def __init__(s, m):
        super().__init__()
        s.m = m

    def forward(s, input_ids, encoder_hidden_states, *past):
        per = [tuple(past[4 * i:4 * i + 4]) for i in range(LAYERS)]
        logits, per = s.m.decode(input_ids, encoder_hidden_states, per)
        return (logits, *[t for l in per for t in l[:2]])


# ---- export and reference ----

def names():
    past = [f"past_key_values.{i}.{p}.{kv}" for i in range(LAYERS) for p in ("decoder", "encoder") for kv in ("key", "value")]
    pres_all = [f"present.{i}.{p}.{kv}" for i in range(LAYERS) for p in ("decoder", "encoder") for kv in ("key", "value")]
    pres_dec = [f"present.{i}.decoder.{kv}" for i in range(LAYERS) for kv in ("key", "value")]
    return past, pres_all, pres_dec


def export(enc, dec, decp, out, feats):
    past, pres_all, pres_dec = names()
    f = torch.from_numpy(feats)[None]
    with torch.no_grad():
        h = enc(f)
        torch.onnx.export(enc, (f,), f"{out}/encoder_model.onnx", input_names=["input_features"],
                          output_names=["last_hidden_state"], dynamic_axes={"input_features": {0: "batch"},
                          "last_hidden_state": {0: "batch"}}, opset_version=17, dynamo=False)
        ids = torch.tensor([PROMPT])
        torch.onnx.export(dec, (ids, h), f"{out}/decoder_model.onnx", input_names=["input_ids", "encoder_hidden_states"],
                          output_names=["logits"] + pres_all,
                          dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "encoder_hidden_states": {0: "batch"},
                                        "logits": {0: "batch", 1: "seq"},
                                        **{n: {0: "batch", 2: ("seq" if ".decoder." in n else "enc")} for n in pres_all}},
                          opset_version=17, dynamo=False)
        r = dec(ids, h)
        pk = list(r[1:])
        torch.onnx.export(decp, (torch.tensor([[7]]), h, *pk), f"{out}/decoder_with_past_model.onnx",
                          input_names=["input_ids", "encoder_hidden_states"] + past, output_names=["logits"] + pres_dec,
                          dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"},
                                        "encoder_hidden_states": {0: "batch"},
                                        **{n: {0: "batch", 2: ("past" if ".decoder." in n else "enc")} for n in past},
                                        **{n: {0: "batch", 2: "total"} for n in pres_dec}},
                          opset_version=17, dynamo=False)


def torch_greedy(enc, dec, feats):
    """Greedy tokens without a cache: the whole sequence through the first-step decoder each time."""
    with torch.no_grad():
        h = enc(torch.from_numpy(feats)[None])
        seq = list(PROMPT)
        for _ in range(STEPS):
            nxt = int(dec(torch.tensor([seq]), h)[0][0, -1].argmax())
            seq.append(nxt)
            if nxt == EOT:
                break
    return seq[len(PROMPT):]


def ort_greedy(out, feats):
    """Greedy tokens as a user drives ONNX Runtime: encoder once, the first-step decoder on the
    prompt, then one token a step through the decoder with past."""
    past, pres_all, pres_dec = names()
    o = ["CPUExecutionProvider"]
    enc = ort.InferenceSession(f"{out}/encoder_model.onnx", providers=o)
    dec = ort.InferenceSession(f"{out}/decoder_model.onnx", providers=o)
    decp = ort.InferenceSession(f"{out}/decoder_with_past_model.onnx", providers=o)
    h = enc.run(None, {"input_features": feats[None]})[0]
    r = dec.run(None, {"input_ids": np.array([PROMPT], np.int64), "encoder_hidden_states": h})
    cache = dict(zip([n.replace("present", "past_key_values") for n in pres_all], r[1:]))
    seq, logits0 = [], r[0][0, -1]
    nxt = int(np.argmax(logits0))
    while True:
        seq.append(nxt)
        if nxt == EOT or len(seq) >= STEPS:
            break
        feed = {"input_ids": np.array([[nxt]], np.int64), "encoder_hidden_states": h, **cache}
        r = decp.run(None, {i.name: feed[i.name] for i in decp.get_inputs()})
        for n, v in zip(pres_dec, r[1:]):
            cache[n.replace("present", "past_key_values")] = v
        nxt = int(np.argmax(r[0][0, -1]))
    return seq, logits0


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    feats = features(out)
    f = feats[("clip-a", 80)]
    kind, note = None, ""
    try:
        m = hf_model()
        enc, dec, decp = HfEncoder(m), HfDecoder(m), HfDecoderPast(m)
        export(enc, dec, decp, out, f)
        ref_torch = torch_greedy(enc, dec, f)
        ref_ort, _ = ort_greedy(out, f)
        if ref_torch != ref_ort:
            raise RuntimeError(f"transformers export disagrees with torch: {ref_ort} vs {ref_torch}")
        kind = "transformers WhisperForConditionalGeneration"
    except Exception:
        note = traceback.format_exc()
        print(note, file=sys.stderr)
        m = Own().eval()
        enc, dec, decp = OwnEncoder(m), OwnDecoder(m), OwnDecoderPast(m)
        export(enc, dec, decp, out, f)
        ref_torch = torch_greedy(enc, dec, f)
        ref_ort, _ = ort_greedy(out, f)
        kind = "the Whisper architecture written out in whisper-export.py"
    refs = {}
    for name in ("clip-a", "clip-b"):
        toks, logits0 = ort_greedy(out, feats[(name, 80)])
        srt = np.sort(logits0)
        refs[name] = {"tokens": toks, "first_step_top2_gap": float(srt[-1] - srt[-2])}
    import transformers
    json.dump({"model": kind, "transformers": transformers.__version__, "torch": torch.__version__,
               "onnxruntime": ort.__version__, "prompt_ids": PROMPT, "eot": EOT, "max_steps": STEPS,
               "torch_tokens_clip_a_no_cache": ref_torch, "ort_greedy": refs, "fallback_reason": note[-2000:]},
              open(f"{out}/reference.json", "w"), indent=1)
    with open(f"{out}/README.md", "w") as r:
        r.write(f"""# Whisper-style test data (random weights)

Model: {kind}; vocab {VOCAB}, d_model {D}, {LAYERS}+{LAYERS} layers, {HEADS} heads, {MELS} mel bins.
- encoder_model.onnx: input_features [1, {MELS}, 3000] -> last_hidden_state [1, 1500, {D}]
- decoder_model.onnx: input_ids, encoder_hidden_states -> logits, present.N.decoder/encoder.key/value
- decoder_with_past_model.onnx: input_ids, encoder_hidden_states (when the export kept it), past_key_values.N.decoder/encoder.key/value -> logits, present.N.decoder.key/value
- clip-*.wav (16 kHz int16) and clip-*.features80/128.npy: WhisperFeatureExtractor's output [bins, 3000]
- reference.json: ONNX Runtime CPU greedy tokens after the prompt {PROMPT} for clip-a and clip-b
  (features80 as the encoder input), up to {STEPS} tokens or <|endoftext|> ({EOT}).
""")
    open(f"{out}/DONE", "w").write("ok\n")


if __name__ == "__main__":
    main()
