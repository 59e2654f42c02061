/* logmel.c — Whisper's log-mel spectrogram, the input_features of Whisper encoders, computed as
 * openai/whisper's audio.py and Hugging Face's WhisperFeatureExtractor compute it:
 *
 *   16 kHz mono samples, zero-padded or trimmed to frames * 160 (30 s: 480,000 samples);
 *   short-time Fourier transform, 400-point frames every 160 samples under a periodic Hann
 *   window, frames centered on their hop (the signal is extended by 200 samples at each end by
 *   reflection, without repeating the edge sample), giving frames + 1 frames of which the last
 *   is dropped;
 *   power |X|^2 of the 201 bins (0 to 8 kHz in steps of 40 Hz);
 *   a mel filter bank as librosa's filters.mel(sr=16000, n_fft=400, n_mels=bins) makes it:
 *   bins + 2 edges evenly spaced on the Slaney mel scale (linear below 1 kHz, logarithmic
 *   above) from 0 Hz to 8 kHz, triangles from edge i to edge i + 2 peaking at edge i + 1, each
 *   scaled by 2 / its width in Hz (Slaney's equal-area normalization);
 *   log10(max(mel, 1e-10)), then everything below the loudest value minus 8 raised to it
 *   (an 80 dB range), then (x + 4) / 4.
 *
 * The work is in double precision and stored as float. Memory is fixed (the filter bank and one
 * frame), whatever the length of the input: frames are read from the samples in place. */
#include "prepost/prepost-impl.h"
#include <math.h>

#define N_FFT GPUX__WHISPER_N_FFT
#define HOP GPUX__WHISPER_HOP
#define N_BINS (N_FFT / 2 + 1)
#define MEL_FLOOR 1e-10
#define DYNAMIC_RANGE 8.0 /* in log10 units: 80 dB */

/* The Slaney mel scale (Auditory Toolbox; librosa's default, htk=False): 3 mels per 200 Hz up
 * to 1 kHz (15 mels), then 27 mels per factor 6.4 in frequency. */
static const double linear_hz_per_mel = 200.0 / 3.0, log_start_hz = 1000.0, log_start_mel = 15.0;
static double log_mels_per_e(void) { return 27.0 / log(6.4); }

static double hz_to_mel(double hz) {
  return hz < log_start_hz ? hz / linear_hz_per_mel : log_start_mel + log(hz / log_start_hz) * log_mels_per_e();
}
static double mel_to_hz(double mel) {
  return mel < log_start_mel ? mel * linear_hz_per_mel : log_start_hz * exp((mel - log_start_mel) / log_mels_per_e());
}

/* One band of the filter bank: its non-zero weights, for the bins first .. first + count - 1. */
typedef struct {
  int first, count;
  double weight[N_BINS];
} mel_band;

static void make_filter_bank(int bins, mel_band *band) {
  double edge[GPUX__WHISPER_MAX_BINS + 2];
  double lo = hz_to_mel(0.0), hi = hz_to_mel(GPUX__WHISPER_RATE / 2.0);
  for (int i = 0; i < bins + 2; i++) edge[i] = mel_to_hz(lo + (hi - lo) * i / (bins + 1));
  for (int b = 0; b < bins; b++) {
    double left = edge[b], center = edge[b + 1], right = edge[b + 2], area = 2.0 / (right - left);
    mel_band *m = &band[b];
    m->first = 0;
    m->count = 0;
    for (int k = 0; k < N_BINS; k++) {
      double f = (double)k * GPUX__WHISPER_RATE / N_FFT;
      double w = GPUX__MIN((f - left) / (center - left), (right - f) / (right - center));
      if (w <= 0) continue;
      if (!m->count) m->first = k;
      /* the bins of a triangle are contiguous: a zero inside cannot happen */
      m->weight[k - m->first] = w * area;
      m->count = k - m->first + 1;
    }
  }
}

/* Sample j of the signal the frames see: the input zero-padded or trimmed to `len` samples, then
 * reflected at both ends (j in -N_FFT/2 .. len + N_FFT/2). */
static double sample_at(const float *x, int64_t n, int64_t len, int64_t j) {
  if (j < 0) j = -j;
  else if (j >= len) j = 2 * (len - 1) - j;
  return j < n ? x[j] : 0.0;
}

int gpux__whisper_log_mel(const float *samples, int64_t n, int bins, int64_t frames, float *out) {
  if (n < 0 || (n > 0 && !samples) || !out)
    return gpux__error(GPUX_E_INVALID, "log-mel features: no samples or no output given");
  if (bins < 1 || bins > GPUX__WHISPER_MAX_BINS)
    return gpux__error(GPUX_E_INVALID, "log-mel features: %d mel bins (1 to %d; Whisper uses 80, large-v3 128)", bins,
                       GPUX__WHISPER_MAX_BINS);
  if (frames < 2 || frames > GPUX__AUDIO_MAX_SAMPLES / HOP)
    return gpux__error(GPUX_E_INVALID, "log-mel features: %lld frames (2 to %lld; Whisper takes %d)", (long long)frames,
                       (long long)(GPUX__AUDIO_MAX_SAMPLES / HOP), GPUX__WHISPER_FRAMES);
  int64_t len = frames * HOP, used = GPUX__MIN(n, len);
  for (int64_t j = 0; j < used; j++)
    if (!isfinite(samples[j]))
      return gpux__error(GPUX_E_INVALID, "log-mel features: sample %lld is %s", (long long)j,
                         isnan(samples[j]) ? "NaN" : "infinite");

  gpux__rfft *fft = NULL;
  int rc = gpux__rfft_create(N_FFT, &fft);
  if (rc) return rc;
  mel_band *band = gpux__malloc(sizeof *band * (size_t)bins);
  if (!band) {
    gpux__rfft_free(fft);
    return GPUX_E_NOMEM;
  }
  make_filter_bank(bins, band);
  double window[N_FFT], frame[N_FFT], re[N_BINS], im[N_BINS], power[N_BINS];
  for (int k = 0; k < N_FFT; k++) window[k] = 0.5 - 0.5 * cos(2 * M_PI * k / N_FFT); /* periodic Hann */

  /* the hot loop: one frame per hop, its power spectrum, its mel energies as log10 */
  for (int64_t t = 0; t < frames; t++) {
    int64_t start = t * HOP - N_FFT / 2;
    if (start >= 0 && start + N_FFT <= used) {
      const float *x = samples + start;
      for (int k = 0; k < N_FFT; k++) frame[k] = x[k] * window[k];
    } else {
      for (int k = 0; k < N_FFT; k++) frame[k] = sample_at(samples, n, len, start + k) * window[k];
    }
    gpux__rfft_run(fft, frame, re, im);
    for (int k = 0; k < N_BINS; k++) power[k] = re[k] * re[k] + im[k] * im[k];
    for (int b = 0; b < bins; b++) {
      const mel_band *m = &band[b];
      const double *p = power + m->first;
      double e = 0;
      for (int k = 0; k < m->count; k++) e += m->weight[k] * p[k];
      out[b * frames + t] = (float)log10(e > MEL_FLOOR ? e : MEL_FLOOR);
    }
  }
  free(band);
  gpux__rfft_free(fft);

  int64_t total = (int64_t)bins * frames;
  float top = out[0];
  for (int64_t i = 1; i < total; i++) top = out[i] > top ? out[i] : top;
  float floor_ = (float)(top - DYNAMIC_RANGE);
  for (int64_t i = 0; i < total; i++) out[i] = ((out[i] > floor_ ? out[i] : floor_) + 4.0f) / 4.0f;
  return 0;
}
