"""whisper_logmel_reference.py — an independent numpy reference for Whisper's log-mel features,
written from the formulas (not from gpux's code): Slaney mel filters built here, the STFT by
numpy.fft.rfft over centered, reflect-padded frames. Used by tests/app/whisper-features.sh."""
import numpy as np

SR, N_FFT, HOP = 16000, 400, 160


def slaney_hz_to_mel(hz):
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz * 3.0 / 200.0
    log_region = hz >= 1000.0
    mel = np.where(log_region, 15.0 + np.log(np.maximum(hz, 1e-30) / 1000.0) / (np.log(6.4) / 27.0), mel)
    return mel


def slaney_mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * 200.0 / 3.0
    return np.where(mel >= 15.0, 1000.0 * np.exp((mel - 15.0) * np.log(6.4) / 27.0), hz)


def mel_filters(n_mels):
    """[n_mels, 201]: triangles between Slaney-mel-spaced edges, area-normalized (librosa's
    filters.mel(sr=16000, n_fft=400, n_mels=n_mels) with its defaults)."""
    edges_hz = slaney_mel_to_hz(np.linspace(slaney_hz_to_mel(0.0), slaney_hz_to_mel(SR / 2), n_mels + 2))
    fft_hz = np.arange(N_FFT // 2 + 1) * SR / N_FFT
    w = np.zeros((n_mels, fft_hz.size))
    for i in range(n_mels):
        lo, mid, hi = edges_hz[i], edges_hz[i + 1], edges_hz[i + 2]
        rising = (fft_hz - lo) / (mid - lo)
        falling = (hi - fft_hz) / (hi - mid)
        w[i] = np.clip(np.minimum(rising, falling), 0.0, None) * (2.0 / (hi - lo))
    return w


def log_mel(samples, n_mels, n_samples=480000):
    x = np.zeros(n_samples)
    k = min(len(samples), n_samples)
    x[:k] = samples[:k]
    padded = np.pad(x, N_FFT // 2, mode="reflect")
    n_frames = 1 + (padded.size - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    spec = np.fft.rfft(padded[idx] * window, axis=1)
    power = (spec.real ** 2 + spec.imag ** 2)[:-1]       # the last frame is dropped
    mel = mel_filters(n_mels) @ power.T                    # [n_mels, frames]
    lg = np.log10(np.maximum(mel, 1e-10))
    lg = np.maximum(lg, lg.max() - 8.0)
    return ((lg + 4.0) / 4.0).astype(np.float32)
