/* audio.c — audio for speech models: RIFF/WAVE decoding (integer PCM and IEEE float, mixed to
 * mono), 16-bit WAV encoding, band-limited resampling with a Kaiser-windowed sinc, and the
 * preprocessing.audio pipeline that ends in a float32 tensor (of samples, or of the features
 * logmel.c computes). */
#include "prepost/prepost-impl.h"
#include <math.h>

static uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void gpux__audio_free(gpux__audio *a) {
  if (!a) return;
  free(a->samples);
  memset(a, 0, sizeof *a);
}

/* Sample k of a frame as a float in [-1, 1]. */
static float sample_at(const uint8_t *p, int bits, int is_float) {
  if (is_float) {
    if (bits == 32) {
      uint32_t u = rd32(p);
      float f;
      memcpy(&f, &u, 4);
      return f;
    }
    uint64_t u = (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
    double d;
    memcpy(&d, &u, 8);
    return (float)d;
  }
  switch (bits) {
  case 8: return ((int)p[0] - 128) / 128.0f;
  case 16: return (float)(int16_t)rd16(p) / 32768.0f;
  case 24: {
    int32_t v = (int32_t)((uint32_t)p[0] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 24) >> 8;
    return (float)v / 8388608.0f;
  }
  default: return (float)((double)(int32_t)rd32(p) / 2147483648.0);
  }
}

int gpux__wav_decode(const void *bytes, size_t len, gpux__audio *out) {
  memset(out, 0, sizeof *out);
  const uint8_t *b = bytes;
  if (len < 12 || memcmp(b, "RIFF", 4) != 0 || memcmp(b + 8, "WAVE", 4) != 0) {
    if (len >= 4 && (memcmp(b, "RF64", 4) == 0 || memcmp(b, "RIFX", 4) == 0))
      return gpux__error(GPUX_E_UNSUPPORTED, "WAV variant %.4s is not supported", (const char *)b);
    return gpux__error(GPUX_E_PARSE, "not a WAV file (no RIFF/WAVE header)");
  }
  size_t pos = 12;
  int have_fmt = 0, is_float = 0;
  uint32_t channels = 0, rate = 0, bits = 0, block = 0;
  while (pos + 8 <= len) {
    const uint8_t *ck = b + pos;
    uint32_t size = rd32(ck + 4);
    size_t body = pos + 8, left = len - body;
    if (memcmp(ck, "fmt ", 4) == 0) {
      if (size < 16 || size > left) return gpux__error(GPUX_E_PARSE, "WAV fmt chunk is truncated");
      uint32_t tag = rd16(b + body);
      channels = rd16(b + body + 2);
      rate = rd32(b + body + 4);
      block = rd16(b + body + 12);
      bits = rd16(b + body + 14);
      if (tag == 0xfffe) { /* WAVE_FORMAT_EXTENSIBLE: the sub-format GUID starts with the tag */
        if (size < 40) return gpux__error(GPUX_E_PARSE, "WAV extensible fmt chunk is truncated");
        tag = rd16(b + body + 24);
      }
      if (tag == 3) is_float = 1;
      else if (tag != 1)
        return gpux__error(GPUX_E_UNSUPPORTED,
                           "WAV sample format %u is not supported (only PCM and IEEE float)", tag);
      if (channels == 0 || channels > 64)
        return gpux__error(GPUX_E_PARSE, "WAV file has %u channels", channels);
      if (rate < GPUX__AUDIO_MIN_RATE || rate > GPUX__AUDIO_MAX_RATE)
        return gpux__error(GPUX_E_PARSE, "WAV sample rate %u Hz is outside %d..%d Hz", rate,
                           GPUX__AUDIO_MIN_RATE, GPUX__AUDIO_MAX_RATE);
      int ok = is_float ? (bits == 32 || bits == 64) : (bits == 8 || bits == 16 || bits == 24 || bits == 32);
      if (!ok)
        return gpux__error(GPUX_E_UNSUPPORTED, "WAV %s samples of %u bits are not supported",
                           is_float ? "float" : "PCM", bits);
      if (block != channels * (bits / 8))
        return gpux__error(GPUX_E_PARSE, "WAV block size %u does not match %u channels of %u bits",
                           block, channels, bits);
      have_fmt = 1;
    } else if (memcmp(ck, "data", 4) == 0) {
      if (!have_fmt) return gpux__error(GPUX_E_PARSE, "WAV data chunk comes before the fmt chunk");
      size_t n = size;
      if (size == 0xffffffffu) n = left; /* written while streaming: up to the end */
      else if (n > left)
        return gpux__error(GPUX_E_PARSE, "WAV file is truncated: data chunk declares %u bytes, %zu present",
                           size, left);
      int64_t frames = (int64_t)(n / block);
      out->samples = gpux__malloc(sizeof(float) * (size_t)(frames ? frames : 1));
      if (!out->samples) return GPUX_E_NOMEM;
      int bps = (int)bits / 8;
      for (int64_t f = 0; f < frames; f++) {
        const uint8_t *p = b + body + (size_t)f * block;
        float acc = 0;
        for (uint32_t c = 0; c < channels; c++) acc += sample_at(p + c * bps, (int)bits, is_float);
        out->samples[f] = channels == 1 ? acc : acc / (float)channels;
      }
      out->n_samples = frames;
      out->sample_rate = (int)rate;
      out->source_channels = (int)channels;
      out->source_bits = (int)bits;
      return 0;
    }
    if (size > left) break;
    pos = body + size + (size & 1);
  }
  return gpux__error(GPUX_E_PARSE, have_fmt ? "WAV file has no data chunk" : "WAV file has no fmt chunk");
}

int gpux__wav_encode_pcm16(const gpux__audio *a, void **wav, size_t *len) {
  *wav = NULL;
  *len = 0;
  if (a->sample_rate <= 0 || a->n_samples < 0 || a->n_samples > (INT32_MAX - 44) / 2)
    return gpux__error(GPUX_E_INVALID, "cannot encode audio of %lld samples at %d Hz",
                       (long long)a->n_samples, a->sample_rate);
  size_t data = (size_t)a->n_samples * 2, n = 44 + data;
  uint8_t *o = gpux__malloc(n);
  if (!o) return GPUX_E_NOMEM;
  uint32_t fields[] = {(uint32_t)(n - 8), 16, 1 | 1u << 16, (uint32_t)a->sample_rate,
                       (uint32_t)a->sample_rate * 2, 2 | 16u << 16, (uint32_t)data};
  memcpy(o, "RIFF", 4);
  memcpy(o + 8, "WAVEfmt ", 8);
  memcpy(o + 36, "data", 4);
  size_t at[] = {4, 16, 20, 24, 28, 32, 40};
  for (int i = 0; i < 7; i++)
    for (int k = 0; k < 4; k++) o[at[i] + k] = (uint8_t)(fields[i] >> (8 * k));
  for (int64_t i = 0; i < a->n_samples; i++) {
    float v = a->samples[i] * 32768.0f;
    long s = isnan(v) ? 0 : lrintf(v > 32767.0f ? 32767.0f : v < -32768.0f ? -32768.0f : v);
    o[44 + 2 * i] = (uint8_t)(s & 0xff);
    o[45 + 2 * i] = (uint8_t)((s >> 8) & 0xff);
  }
  *wav = o;
  *len = n;
  return 0;
}

/* ---- resampling ---- */

#define ZERO_CROSSINGS 32        /* per side, at the lower of the two rates */
#define KAISER_BETA 8.6

static double bessel_i0(double x) {
  double sum = 1, term = 1, q = x * x / 4;
  for (int k = 1; k < 60; k++) {
    term *= q / ((double)k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

/* The filter at offset x input samples from the output instant: a sinc with cutoff fc (cycles
 * per input sample) under a Kaiser window of half width `half`. */
static double kernel(double x, double fc, double half, double i0_beta) {
  if (x <= -half || x >= half) return 0;
  double r = x / half, w = bessel_i0(KAISER_BETA * sqrt(1 - r * r)) / i0_beta;
  double t = 2 * fc * x;
  double s = fabs(t) < 1e-12 ? 1.0 : sin(M_PI * t) / (M_PI * t);
  return 2 * fc * s * w;
}

static int64_t gcd64(int64_t a, int64_t b) {
  while (b) {
    int64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

int gpux__audio_resample(const gpux__audio *in, int rate, int64_t max_out, gpux__audio *out) {
  memset(out, 0, sizeof *out);
  if (rate < GPUX__AUDIO_MIN_RATE || rate > GPUX__AUDIO_MAX_RATE || in->sample_rate < GPUX__AUDIO_MIN_RATE ||
      in->sample_rate > GPUX__AUDIO_MAX_RATE)
    return gpux__error(GPUX_E_INVALID, "cannot resample from %d Hz to %d Hz (rates are %d..%d Hz)", in->sample_rate,
                       rate, GPUX__AUDIO_MIN_RATE, GPUX__AUDIO_MAX_RATE);
  int64_t n = in->n_samples;
  if (n < 0 || n > GPUX__AUDIO_MAX_SAMPLES)
    return gpux__error(GPUX_E_INVALID, "audio of %lld samples is too long", (long long)n);
  int64_t m = rate == in->sample_rate ? n : (n * rate + in->sample_rate - 1) / in->sample_rate;
  if (max_out > 0 && m > max_out) m = max_out; /* only what the caller keeps */
  if (m > GPUX__AUDIO_MAX_SAMPLES)
    return gpux__error(GPUX_E_INVALID, "%lld samples at %d Hz would become %lld at %d Hz, more than %lld",
                       (long long)n, in->sample_rate, (long long)m, rate, (long long)GPUX__AUDIO_MAX_SAMPLES);
  out->samples = gpux__malloc(sizeof(float) * (size_t)(m ? m : 1));
  if (!out->samples) return GPUX_E_NOMEM;
  out->n_samples = m;
  out->sample_rate = rate;
  out->source_channels = in->source_channels;
  out->source_bits = in->source_bits;
  if (rate == in->sample_rate) {
    if (m) memcpy(out->samples, in->samples, sizeof(float) * (size_t)m);
    return 0;
  }
  double ratio = (double)rate / in->sample_rate;                /* output per input sample */
  double fc = 0.5 * (ratio < 1 ? ratio : 1) * 0.95;              /* cycles per input sample */
  double half = ZERO_CROSSINGS / (ratio < 1 ? ratio : 1);       /* in input samples */
  double i0b = bessel_i0(KAISER_BETA);
  int taps = (int)ceil(2 * half) + 1;
  /* output j sits at input time j * in / out = j * M / L with L/M = rate/in reduced: its phase
   * (j * M mod L) repeats, so the weights are computed once per phase when there are few
   * (`exact`); otherwise once for P phases evenly spread over [0, 1], and a weight in between is
   * interpolated linearly, so the Bessel function is never evaluated per output sample. The table
   * is at most 2^24 floats. */
  int64_t g = gcd64(rate, in->sample_rate), L = rate / g, M = in->sample_rate / g;
  int exact = L <= 4096 && (int64_t)L * taps <= ((int64_t)1 << 24);
  int64_t P = exact ? L : GPUX__MIN((int64_t)4096, ((int64_t)1 << 24) / taps - 1);
  int64_t rows = exact ? L : P + 1;
  float *bank = gpux__malloc(sizeof(float) * (size_t)(rows * taps));
  if (!bank) {
    gpux__audio_free(out);
    return GPUX_E_NOMEM;
  }
  int64_t first_off = -(int64_t)floor(half);
  for (int64_t p = 0; p < rows; p++) {
    double frac = (double)p / P; /* output time = base + frac */
    for (int k = 0; k < taps; k++) bank[p * taps + k] = (float)kernel((double)(first_off + k) - frac, fc, half, i0b);
  }
  for (int64_t j = 0; j < m; j++) {
    int64_t num = j * M, base = num / L, phase = num % L;
    const float *w0 = bank + phase * taps, *w1 = w0;
    double t = 0, acc = 0;
    if (!exact) {
      double pos = (double)phase / L * P;
      int64_t p0 = GPUX__MIN((int64_t)pos, P - 1);
      t = pos - (double)p0;
      w0 = bank + p0 * taps;
      w1 = w0 + taps;
    }
    for (int k = 0; k < taps; k++) {
      int64_t idx = base + first_off + k;
      if (idx < 0 || idx >= n) continue;
      double w = exact ? w0[k] : w0[k] * (1 - t) + w1[k] * t;
      acc += w * in->samples[idx];
    }
    out->samples[j] = (float)acc;
  }
  free(bank);
  return 0;
}

/* ---- the preprocessing.audio pipeline ---- */

void gpux__audio_config_default(gpux__audio_config *c) {
  memset(c, 0, sizeof *c);
  c->normalize = GPUX__AUDIO_NORM_NONE;
  c->add_batch_dim = 1;
}

int gpux__audio_config_check(const gpux__audio_config *c) {
  if (c->sample_rate && (c->sample_rate < GPUX__AUDIO_MIN_RATE || c->sample_rate > GPUX__AUDIO_MAX_RATE))
    return gpux__error(GPUX_E_INVALID, "audio sample_rate %d Hz is outside %d..%d Hz", c->sample_rate,
                       GPUX__AUDIO_MIN_RATE, GPUX__AUDIO_MAX_RATE);
  if (c->length < 0) return gpux__error(GPUX_E_INVALID, "audio length %lld is negative", (long long)c->length);
  if (c->normalize < GPUX__AUDIO_NORM_NONE || c->normalize > GPUX__AUDIO_NORM_PEAK)
    return gpux__error(GPUX_E_INVALID, "audio normalize %d is not a normalization", c->normalize);
  if (c->features == GPUX__AUDIO_FEATURES_NONE) {
    if (c->mel_bins) return gpux__error(GPUX_E_INVALID, "audio mel_bins needs features: whisper");
    return 0;
  }
  if (c->features != GPUX__AUDIO_FEATURES_WHISPER)
    return gpux__error(GPUX_E_INVALID, "audio features %d is not a feature kind", c->features);
  if (c->sample_rate && c->sample_rate != GPUX__WHISPER_RATE)
    return gpux__error(GPUX_E_INVALID, "whisper features are computed at %d Hz, not sample_rate %d", GPUX__WHISPER_RATE,
                       c->sample_rate);
  if (c->normalize != GPUX__AUDIO_NORM_NONE)
    return gpux__error(GPUX_E_INVALID, "whisper features take samples in [-1, 1]: normalize must be none");
  if (c->mel_bins < 0 || c->mel_bins > GPUX__WHISPER_MAX_BINS)
    return gpux__error(GPUX_E_INVALID, "audio mel_bins %d is outside 1..%d (Whisper: 80, large-v3: 128)", c->mel_bins,
                       GPUX__WHISPER_MAX_BINS);
  if (c->length && (c->length % GPUX__WHISPER_HOP || c->length < 2 * GPUX__WHISPER_HOP))
    return gpux__error(GPUX_E_INVALID,
                       "whisper features: length %lld is not a multiple of %d samples (one frame) of at least %d "
                       "(Whisper takes %lld)",
                       (long long)c->length, GPUX__WHISPER_HOP, 2 * GPUX__WHISPER_HOP, (long long)GPUX__WHISPER_SAMPLES);
  return 0;
}

/* features: whisper on decoded audio: resampled to 16 kHz (only what the frames read), then the
 * log-mel spectrogram. */
static int whisper_features(const gpux__audio_config *c, const gpux__audio *a, gpux_tensor *out) {
  int64_t len = c->length ? c->length : GPUX__WHISPER_SAMPLES, frames = len / GPUX__WHISPER_HOP;
  int bins = c->mel_bins ? c->mel_bins : GPUX__WHISPER_DEFAULT_BINS, rc;
  gpux__audio res = {0};
  const gpux__audio *cur = a;
  if (a->sample_rate != GPUX__WHISPER_RATE) {
    if ((rc = gpux__audio_resample(a, GPUX__WHISPER_RATE, len, &res))) return rc;
    cur = &res;
  }
  int64_t dims[3] = {1, bins, frames};
  if (!(rc = c->add_batch_dim ? gpux_tensor_init(out, GPUX_DT_FLOAT, 3, dims) : gpux_tensor_init(out, GPUX_DT_FLOAT, 2, dims + 1)) &&
      (rc = gpux__whisper_log_mel(cur->samples, cur->n_samples, bins, frames, out->data)))
    gpux_tensor_free(out);
  gpux__audio_free(&res);
  return rc;
}

int gpux__audio_to_tensor(const gpux__audio_config *c, const gpux__audio *a, gpux_tensor *out) {
  memset(out, 0, sizeof *out);
  int rc = gpux__audio_config_check(c);
  if (rc) return rc;
  if (c->features == GPUX__AUDIO_FEATURES_WHISPER) return whisper_features(c, a, out);
  gpux__audio res = {0};
  const gpux__audio *cur = a;
  if (c->sample_rate && c->sample_rate != a->sample_rate) {
    if ((rc = gpux__audio_resample(a, c->sample_rate, c->length, &res))) return rc;
    cur = &res;
  }
  int64_t n = c->length ? c->length : cur->n_samples;
  int64_t dims[2] = {1, n};
  if ((rc = c->add_batch_dim ? gpux_tensor_init(out, GPUX_DT_FLOAT, 2, dims)
                             : gpux_tensor_init(out, GPUX_DT_FLOAT, 1, dims + 1))) {
    gpux__audio_free(&res);
    return rc;
  }
  float *o = out->data, gain = 1.0f;
  int64_t keep = GPUX__MIN(n, cur->n_samples);
  if (c->normalize == GPUX__AUDIO_NORM_INT16) gain = 32768.0f;
  else if (c->normalize == GPUX__AUDIO_NORM_PEAK) {
    float peak = 0;
    for (int64_t i = 0; i < cur->n_samples; i++) peak = GPUX__MAX(peak, fabsf(cur->samples[i]));
    if (peak > 0) gain = 1.0f / peak;
  }
  for (int64_t i = 0; i < keep; i++) o[i] = cur->samples[i] * gain;
  gpux__audio_free(&res);
  return 0;
}

int gpux__audio_preprocess(const gpux__audio_config *c, const void *bytes, size_t len,
                           gpux_tensor *out) {
  memset(out, 0, sizeof *out);
  gpux__audio a;
  int rc = gpux__wav_decode(bytes, len, &a);
  if (rc) return rc;
  rc = gpux__audio_to_tensor(c, &a, out);
  gpux__audio_free(&a);
  return rc;
}
