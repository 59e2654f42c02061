/* test-prepost-audio.c — unit tests of audio pre-processing: WAV files written here in every
 * supported sample format (8/16/24/32-bit PCM, 32/64-bit float, extensible, stereo mixed to
 * mono), truncated and malformed files, resampling of generated tones (accuracy in the pass band,
 * attenuation above the new Nyquist), and the tensor pipeline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include "core/internal.h"
#include "prepost/prepost.h"

typedef struct {
  uint8_t *d;
  size_t n;
} bytes;

static void put(bytes *b, const void *p, size_t n) {
  b->d = realloc(b->d, b->n + n);
  memcpy(b->d + b->n, p, n);
  b->n += n;
}
static void put_le(bytes *b, uint64_t v, int n) {
  for (int i = 0; i < n; i++) {
    uint8_t c = (uint8_t)(v >> (8 * i));
    put(b, &c, 1);
  }
}

/* A WAV file: `frames` frames of `ch` channels; sample (f, c) = value(f, c) in [-1, 1]. */
static bytes make_wav(int rate, int ch, int bits, int is_float, int extensible, int frames,
                      double (*value)(int f, int c), int with_junk) {
  bytes b = {0};
  int bps = bits / 8;
  uint32_t data = (uint32_t)(frames * ch * bps);
  uint32_t fmt = extensible ? 40 : 16;
  put(&b, "RIFF", 4);
  put_le(&b, 4 + (8 + fmt) + (with_junk ? 8 + 3 + 1 : 0) + 8 + data, 4);
  put(&b, "WAVE", 4);
  if (with_junk) { /* an odd-sized unknown chunk with its pad byte */
    put(&b, "junk", 4);
    put_le(&b, 3, 4);
    put(&b, "abc\0", 4);
  }
  put(&b, "fmt ", 4);
  put_le(&b, fmt, 4);
  put_le(&b, extensible ? 0xfffe : (is_float ? 3 : 1), 2);
  put_le(&b, (uint64_t)ch, 2);
  put_le(&b, (uint64_t)rate, 4);
  put_le(&b, (uint64_t)(rate * ch * bps), 4);
  put_le(&b, (uint64_t)(ch * bps), 2);
  put_le(&b, (uint64_t)bits, 2);
  if (extensible) {
    put_le(&b, 22, 2);
    put_le(&b, (uint64_t)bits, 2);
    put_le(&b, 0, 4);
    put_le(&b, is_float ? 3 : 1, 2); /* the sub-format GUID starts with the format tag */
    put(&b, "\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71", 14);
  }
  put(&b, "data", 4);
  put_le(&b, data, 4);
  for (int f = 0; f < frames; f++)
    for (int c = 0; c < ch; c++) {
      double v = value(f, c);
      if (is_float && bits == 32) {
        float x = (float)v;
        uint32_t u;
        memcpy(&u, &x, 4);
        put_le(&b, u, 4);
      } else if (is_float) {
        uint64_t u;
        memcpy(&u, &v, 8);
        put_le(&b, u, 8);
      } else if (bits == 8) put_le(&b, (uint64_t)(int)lround(v * 127 + 128), 1);
      else {
        double scale = ldexp(1.0, bits - 1) - 1;
        put_le(&b, (uint64_t)(int64_t)llround(v * scale), bps);
      }
    }
  return b;
}

static double ramp(int f, int c) { return c == 0 ? (f % 200) / 100.0 - 1.0 : 0.5; }

static void test_wav_formats(void **state) {
  (void)state;
  struct { int bits, is_float, ext; double tol; } cases[] = {
      {8, 0, 0, 1.0 / 100}, {16, 0, 0, 1e-4}, {24, 0, 0, 1e-6}, {32, 0, 0, 2e-7},
      {32, 1, 0, 1e-7},     {64, 1, 0, 1e-7}, {16, 0, 1, 1e-4}, {32, 1, 1, 1e-7},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    for (int ch = 1; ch <= 2; ch++) {
      bytes b = make_wav(22050, ch, cases[k].bits, cases[k].is_float, cases[k].ext, 1000, ramp, k & 1);
      gpux__audio a;
      assert_int_equal(gpux__wav_decode(b.d, b.n, &a), 0);
      assert_int_equal(a.sample_rate, 22050);
      assert_int_equal(a.n_samples, 1000);
      assert_int_equal(a.source_channels, ch);
      assert_int_equal(a.source_bits, cases[k].bits);
      for (int f = 0; f < 1000; f++) {
        double want = ch == 1 ? ramp(f, 0) : (ramp(f, 0) + ramp(f, 1)) / 2;
        if (fabs(a.samples[f] - want) > cases[k].tol * 2)
          fail_msg("bits %d float %d ch %d frame %d: %f vs %f", cases[k].bits, cases[k].is_float, ch, f,
                   a.samples[f], want);
      }
      gpux__audio_free(&a);
      free(b.d);
    }
  }
}

static void test_wav_encode_round_trip(void **state) {
  (void)state;
  gpux__audio a = {.sample_rate = 16000, .n_samples = 500};
  a.samples = malloc(sizeof(float) * 500);
  for (int i = 0; i < 500; i++) a.samples[i] = (float)sin(i * 0.1) * 0.9f;
  a.samples[0] = 2.0f; /* clipped */
  void *wav;
  size_t len;
  assert_int_equal(gpux__wav_encode_pcm16(&a, &wav, &len), 0);
  assert_int_equal(len, 44 + 1000);
  gpux__audio b;
  assert_int_equal(gpux__wav_decode(wav, len, &b), 0);
  assert_int_equal(b.n_samples, 500);
  assert_true(fabsf(b.samples[0] - 32767.0f / 32768.0f) < 1e-6f);
  for (int i = 1; i < 500; i++) assert_true(fabsf(b.samples[i] - a.samples[i]) <= 0.5f / 32768.0f + 1e-7f);
  free(wav);
  gpux__audio_free(&b);
  gpux__audio_free(&a);
}

static void test_wav_bad_input(void **state) {
  (void)state;
  bytes b = make_wav(16000, 2, 16, 0, 1, 100, ramp, 1);
  gpux__audio a;
  /* every truncation: a one-line error, never a crash */
  for (size_t n = 0; n < b.n; n++) {
    int rc = gpux__wav_decode(b.d, n, &a);
    assert_true(rc < 0);
    assert_null(a.samples);
    assert_null(strchr(gpux_last_error(), '\n'));
  }
  assert_int_equal(gpux__wav_decode(b.d, b.n - 1, &a), GPUX_E_PARSE);
  assert_non_null(strstr(gpux_last_error(), "truncated"));
  /* every byte of the header corrupted */
  uint8_t *bad = malloc(b.n);
  for (size_t k = 0; k < 80 && k < b.n; k++)
    for (int v = 0; v < 256; v += 51) {
      memcpy(bad, b.d, b.n);
      bad[k] = (uint8_t)v;
      if (gpux__wav_decode(bad, b.n, &a) == 0) gpux__audio_free(&a);
    }
  free(bad);
  free(b.d);
  assert_int_equal(gpux__wav_decode("RIFF\0\0\0\0AVI ", 12, &a), GPUX_E_PARSE);
  assert_int_equal(gpux__wav_decode("", 0, &a), GPUX_E_PARSE);
  assert_non_null(strstr(gpux_last_error(), "WAV"));
  /* unsupported: A-law (format 6), 12-bit PCM */
  b = make_wav(8000, 1, 16, 0, 0, 10, ramp, 0);
  b.d[20] = 6;
  assert_int_equal(gpux__wav_decode(b.d, b.n, &a), GPUX_E_UNSUPPORTED);
  b.d[20] = 1;
  b.d[34] = 12;
  assert_true(gpux__wav_decode(b.d, b.n, &a) < 0);
  free(b.d);
}

static double rms_error_sine(const gpux__audio *a, double hz, int64_t from, int64_t to) {
  double e = 0;
  for (int64_t i = from; i < to; i++) {
    double want = sin(2 * M_PI * hz * i / a->sample_rate);
    e += (a->samples[i] - want) * (a->samples[i] - want);
  }
  return sqrt(e / (double)(to - from));
}

static double rms(const gpux__audio *a, int64_t from, int64_t to) {
  double e = 0;
  for (int64_t i = from; i < to; i++) e += a->samples[i] * a->samples[i];
  return sqrt(e / (double)(to - from));
}

static gpux__audio tone(int rate, double hz, double seconds) {
  gpux__audio a = {.sample_rate = rate, .n_samples = (int64_t)(rate * seconds)};
  a.samples = malloc(sizeof(float) * (size_t)a.n_samples);
  for (int64_t i = 0; i < a.n_samples; i++) a.samples[i] = (float)sin(2 * M_PI * hz * i / rate);
  return a;
}

static void test_resample(void **state) {
  (void)state;
  struct { int from, to; double hz; } cases[] = {
      {44100, 16000, 440}, {48000, 16000, 1000}, {8000, 16000, 440}, {22050, 16000, 3000}, {16000, 44100, 5000},
      {16001, 16000, 440}, /* ratios with many phases: weights interpolated between table rows */
      {12001, 16000, 440}, {44100, 16001, 440},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    gpux__audio in = tone(cases[k].from, cases[k].hz, 0.25), out;
    assert_int_equal(gpux__audio_resample(&in, cases[k].to, 0, &out), 0);
    int64_t want_n = (in.n_samples * cases[k].to + cases[k].from - 1) / cases[k].from;
    assert_int_equal(out.n_samples, want_n);
    assert_int_equal(out.sample_rate, cases[k].to);
    /* away from the edges (the filter's half width) the tone is reproduced closely */
    double err = rms_error_sine(&out, cases[k].hz, 300, out.n_samples - 300);
    if (err > 2e-3) fail_msg("%d -> %d Hz at %.0f Hz: rms error %g", cases[k].from, cases[k].to, cases[k].hz, err);
    gpux__audio_free(&in);
    gpux__audio_free(&out);
  }
  /* antialiasing: 7 kHz at 44.1 kHz going to 8 kHz (Nyquist 4 kHz) must nearly vanish rather
   * than fold back to 1 kHz */
  gpux__audio in = tone(44100, 7000, 0.25), out;
  assert_int_equal(gpux__audio_resample(&in, 8000, 0, &out), 0);
  double level = rms(&out, 200, out.n_samples - 200);
  if (level > 0.01) fail_msg("aliased energy %g", level);
  gpux__audio_free(&out);
  /* same rate: a copy */
  assert_int_equal(gpux__audio_resample(&in, 44100, 0, &out), 0);
  assert_memory_equal(out.samples, in.samples, sizeof(float) * (size_t)in.n_samples);
  gpux__audio_free(&out);
  assert_int_equal(gpux__audio_resample(&in, 0, 0, &out), GPUX_E_INVALID);
  gpux__audio_free(&in);
  /* empty input */
  gpux__audio empty = {.sample_rate = 8000};
  assert_int_equal(gpux__audio_resample(&empty, 16000, 0, &out), 0);
  assert_int_equal(out.n_samples, 0);
  gpux__audio_free(&out);
}

/* Hostile sample rates: a WAV declaring 1 Hz once asked the resampler for an output 16000 times
 * its input, evaluating the Bessel function for every tap of every output sample. */
static void test_resample_bounds(void **state) {
  (void)state;
  gpux__audio a, out;
  int bad_rates[] = {1, 999, 384001, 1000000};
  for (size_t k = 0; k < sizeof bad_rates / sizeof bad_rates[0]; k++) {
    bytes b = make_wav(bad_rates[k], 1, 16, 0, 0, 5000, ramp, 0); /* 10 KB */
    assert_int_equal(gpux__wav_decode(b.d, b.n, &a), GPUX_E_PARSE);
    assert_non_null(strstr(gpux_last_error(), "is outside 1000..384000 Hz"));
    free(b.d);
  }
  gpux__audio in = tone(8000, 440, 0.5);
  in.sample_rate = 1; /* decoded elsewhere, still refused */
  assert_int_equal(gpux__audio_resample(&in, 16000, 0, &out), GPUX_E_INVALID);
  in.sample_rate = 8000;
  assert_int_equal(gpux__audio_resample(&in, 999, 0, &out), GPUX_E_INVALID);
  /* max_out: only the samples kept are computed, and they are the same */
  gpux__audio full, cut;
  assert_int_equal(gpux__audio_resample(&in, 16000, 0, &full), 0);
  assert_int_equal(gpux__audio_resample(&in, 16000, 100, &cut), 0);
  assert_int_equal(cut.n_samples, 100);
  assert_memory_equal(cut.samples, full.samples, 100 * sizeof(float));
  gpux__audio_free(&full);
  gpux__audio_free(&cut);
  gpux__audio_free(&in);
  /* an output beyond GPUX__AUDIO_MAX_SAMPLES is refused before it is allocated */
  gpux__audio big = {.sample_rate = 1000, .n_samples = 400000};
  big.samples = calloc((size_t)big.n_samples, sizeof(float));
  assert_int_equal(gpux__audio_resample(&big, 384000, 0, &out), GPUX_E_INVALID);
  assert_non_null(strstr(gpux_last_error(), "more than 134217728"));
  assert_null(out.samples);
  assert_int_equal(gpux__audio_resample(&big, 384000, 16000, &out), 0); /* a fixed length is fine */
  assert_int_equal(out.n_samples, 16000);
  gpux__audio_free(&out);
  gpux__audio_free(&big);
  /* through the pipeline: a 1 kHz file to 16 kHz with a fixed length of 1 s */
  bytes b = make_wav(1000, 1, 16, 0, 0, 5000, ramp, 0);
  gpux__audio_config c;
  gpux__audio_config_default(&c);
  c.sample_rate = 16000;
  c.length = 16000;
  gpux_tensor t;
  assert_int_equal(gpux__audio_preprocess(&c, b.d, b.n, &t), 0);
  assert_int_equal(t.dims[1], 16000);
  gpux_tensor_free(&t);
  free(b.d);
}

static double half(int f, int c) { return f == 0 ? 0.5 : -0.25 + 0 * c; }

static void test_audio_pipeline(void **state) {
  (void)state;
  bytes b = make_wav(16000, 1, 16, 0, 0, 100, half, 0);
  gpux__audio_config c;
  gpux__audio_config_default(&c);
  gpux_tensor t;
  assert_int_equal(gpux__audio_preprocess(&c, b.d, b.n, &t), 0);
  assert_int_equal(t.ndim, 2);
  assert_int_equal(t.dims[0], 1);
  assert_int_equal(t.dims[1], 100);
  assert_true(((float *)t.data)[0] == 0.5f); /* 0.5 * 32767 rounds to 16384 */
  gpux_tensor_free(&t);
  /* int16-scale floats (openWakeWord), padded to a fixed length */
  c.normalize = GPUX__AUDIO_NORM_INT16;
  c.length = 160;
  assert_int_equal(gpux__audio_preprocess(&c, b.d, b.n, &t), 0);
  assert_int_equal(t.dims[1], 160);
  assert_true(((float *)t.data)[0] == 16384.0f);
  assert_true(((float *)t.data)[1] == -8192.0f);
  assert_true(((float *)t.data)[159] == 0.0f);
  gpux_tensor_free(&t);
  /* peak normalization, trimmed, no batch dimension */
  c.normalize = GPUX__AUDIO_NORM_PEAK;
  c.length = 10;
  c.add_batch_dim = 0;
  assert_int_equal(gpux__audio_preprocess(&c, b.d, b.n, &t), 0);
  assert_int_equal(t.ndim, 1);
  assert_int_equal(t.dims[0], 10);
  assert_true(fabsf(((float *)t.data)[0] - 1.0f) < 1e-6f);
  gpux_tensor_free(&t);
  /* resampled on the way */
  gpux__audio_config_default(&c);
  c.sample_rate = 8000;
  assert_int_equal(gpux__audio_preprocess(&c, b.d, b.n, &t), 0);
  assert_int_equal(t.dims[1], 50);
  gpux_tensor_free(&t);
  assert_true(gpux__audio_preprocess(&c, b.d, 30, &t) < 0);
  free(b.d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_wav_formats),   cmocka_unit_test(test_wav_encode_round_trip),
      cmocka_unit_test(test_wav_bad_input), cmocka_unit_test(test_resample),
      cmocka_unit_test(test_audio_pipeline), cmocka_unit_test(test_resample_bounds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
