/* test-prepost-logmel.c — unit tests of the real FFT (against a direct DFT, for lengths with
 * factors 2, 3, 4, 5 and other primes) and of Whisper's log-mel features: known values
 * (silence is -1.5 everywhere, a tone's energy lands in the mel band of its frequency, the 80 dB
 * floor), padding and trimming, the tensor the audio pipeline makes, errors for bad arguments
 * and non-finite samples; and the time of a 30 s clip, printed (not asserted). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <time.h>
#include "core/internal.h"
#include "prepost/prepost.h"

static void test_rfft_matches_dft(void **state) {
  (void)state;
  const int lengths[] = {2, 4, 6, 8, 10, 30, 40, 98, 200, 400, 512, 1000, 22, 34};
  for (size_t li = 0; li < sizeof lengths / sizeof *lengths; li++) {
    int n = lengths[li];
    gpux__rfft *p = NULL;
    assert_int_equal(gpux__rfft_create(n, &p), 0);
    assert_int_equal(gpux__rfft_length(p), n);
    double *x = malloc(sizeof(double) * (size_t)n), *re = malloc(sizeof(double) * (size_t)(n / 2 + 1)),
           *im = malloc(sizeof(double) * (size_t)(n / 2 + 1));
    uint32_t s = 12345u + (uint32_t)n;
    for (int j = 0; j < n; j++) {
      s = s * 1664525u + 1013904223u;
      x[j] = (double)(s >> 8) / (1 << 24) - 0.5;
    }
    gpux__rfft_run(p, x, re, im);
    double worst = 0;
    for (int k = 0; k <= n / 2; k++) {
      long double sr = 0, si = 0;
      for (int j = 0; j < n; j++) {
        long double a = -2 * 3.14159265358979323846264338327950288L * (long double)((int64_t)j * k % n) / n;
        sr += x[j] * cosl(a);
        si += x[j] * sinl(a);
      }
      worst = fmax(worst, fmax(fabs(re[k] - (double)sr), fabs(im[k] - (double)si)));
    }
    if (worst > 1e-11 * n) fail_msg("n = %d: FFT differs from the DFT by %g", n, worst);
    free(x);
    free(re);
    free(im);
    gpux__rfft_free(p);
  }
  gpux__rfft *p = NULL;
  assert_int_equal(gpux__rfft_create(7, &p), GPUX_E_INVALID);
  assert_null(p);
  assert_int_equal(gpux__rfft_create(0, &p), GPUX_E_INVALID);
}

static void test_silence_and_padding(void **state) {
  (void)state;
  float *out = malloc(sizeof(float) * 80 * GPUX__WHISPER_FRAMES);
  /* no samples at all: every mel energy is at the 1e-10 floor, (log10(1e-10) + 4) / 4 = -1.5 */
  assert_int_equal(gpux__whisper_log_mel(NULL, 0, 80, GPUX__WHISPER_FRAMES, out), 0);
  for (int i = 0; i < 80 * GPUX__WHISPER_FRAMES; i++) assert_float_equal(out[i], -1.5f, 0);
  /* a 1 s tone: frames past its end (and past the reflected tail) sit at the 80 dB floor, max - 2 */
  float *x = malloc(sizeof(float) * 16000);
  for (int j = 0; j < 16000; j++) x[j] = 0.5f * (float)sin(2 * M_PI * 1000.0 * j / 16000);
  assert_int_equal(gpux__whisper_log_mel(x, 16000, 80, GPUX__WHISPER_FRAMES, out), 0);
  float top = -100;
  int top_band = -1;
  for (int b = 0; b < 80; b++)
    if (out[b * GPUX__WHISPER_FRAMES + 50] > top) top = out[b * GPUX__WHISPER_FRAMES + 50], top_band = b;
  /* 1 kHz is mel 15 on the Slaney scale; the 82 edges from 0 to 45.2 mels are 0.558 apart, so
   * band 26 (edges 26..28: 14.5 to 15.6 mels) peaks nearest to it */
  assert_int_equal(top_band, 26);
  float global = -100;
  for (int i = 0; i < 80 * GPUX__WHISPER_FRAMES; i++) global = fmaxf(global, out[i]);
  for (int t = 110; t < GPUX__WHISPER_FRAMES; t++)
    for (int b = 0; b < 80; b++) assert_float_equal(out[b * GPUX__WHISPER_FRAMES + t], global - 2.0f, 1e-6);
  /* trimming: 40 s of audio gives what its first 30 s give */
  float *long_x = calloc(40 * 16000, sizeof(float)), *a = malloc(sizeof(float) * 80 * 3000);
  for (int j = 0; j < 40 * 16000; j++) long_x[j] = 0.25f * (float)sin(0.001 * j * (1 + j / 400000.0));
  assert_int_equal(gpux__whisper_log_mel(long_x, 40 * 16000, 80, 3000, a), 0);
  assert_int_equal(gpux__whisper_log_mel(long_x, 30 * 16000, 80, 3000, out), 0);
  assert_memory_equal(a, out, sizeof(float) * 80 * 3000);
  /* 10 frames of it are the first 1,600 samples, reflected at their end: frames 0 to 8 end
   * before sample 1,600 and are those of the long signal, the last one is not */
  float small[80 * 10];
  assert_int_equal(gpux__whisper_log_mel(long_x, 40 * 16000, 80, 10, small), 0);
  float floor_small = -100, floor_a = -100;
  for (int i = 0; i < 80 * 10; i++) floor_small = fmaxf(floor_small, small[i] - 2);
  for (int i = 0; i < 80 * 3000; i++) floor_a = fmaxf(floor_a, a[i] - 2);
  double same = 0, last = 0;
  int compared = 0;
  for (int b = 0; b < 80; b++) {
    for (int t = 0; t < 10; t++) {
      float u = small[b * 10 + t], v = a[b * 3000 + t];
      if (u <= floor_small + 1e-6f || v <= floor_a + 1e-6f) continue; /* each at its own 80 dB floor */
      if (t < 9) same = fmax(same, fabs(u - v)), compared++;
      else last = fmax(last, fabs(u - v));
    }
  }
  assert_true(compared > 100);
  assert_true(same < 1e-6);
  assert_true(last > 1e-2);
  free(long_x);
  free(a);
  free(x);
  free(out);
}

static void test_bad_arguments(void **state) {
  (void)state;
  float x[400] = {0}, out[128 * 4];
  assert_int_equal(gpux__whisper_log_mel(x, 400, 0, 4, out), GPUX_E_INVALID);
  assert_non_null(strstr(gpux_last_error(), "0 mel bins"));
  assert_int_equal(gpux__whisper_log_mel(x, 400, GPUX__WHISPER_MAX_BINS + 1, 4, out), GPUX_E_INVALID);
  assert_int_equal(gpux__whisper_log_mel(x, 400, 80, 1, out), GPUX_E_INVALID);
  assert_non_null(strstr(gpux_last_error(), "1 frames"));
  assert_int_equal(gpux__whisper_log_mel(NULL, 5, 80, 4, out), GPUX_E_INVALID);
  assert_int_equal(gpux__whisper_log_mel(x, -1, 80, 4, out), GPUX_E_INVALID);
  assert_int_equal(gpux__whisper_log_mel(x, 400, 80, 4, NULL), GPUX_E_INVALID);
  x[300] = NAN;
  assert_int_equal(gpux__whisper_log_mel(x, 400, 80, 4, out), GPUX_E_INVALID);
  assert_string_equal(gpux_last_error(), "log-mel features: sample 300 is NaN");
  x[300] = 0;
  x[7] = INFINITY;
  assert_int_equal(gpux__whisper_log_mel(x, 400, 80, 4, out), GPUX_E_INVALID);
  assert_string_equal(gpux_last_error(), "log-mel features: sample 7 is infinite");
  /* a bad sample past the frames' reach is never read */
  assert_int_equal(gpux__whisper_log_mel(x + 8, 392, 80, 2, out), 0);
  x[7] = 0;
  x[399] = NAN;
  assert_int_equal(gpux__whisper_log_mel(x, 400, 80, 2, out), 0);
}

static void test_pipeline_and_config(void **state) {
  (void)state;
  gpux__audio a = {.sample_rate = 8000, .source_channels = 1, .source_bits = 16, .n_samples = 8000};
  a.samples = calloc(8000, sizeof(float));
  for (int j = 0; j < 8000; j++) a.samples[j] = 0.3f * (float)sin(2 * M_PI * 440.0 * j / 8000);
  gpux__audio_config c;
  gpux__audio_config_default(&c);
  c.features = GPUX__AUDIO_FEATURES_WHISPER;
  gpux_tensor t;
  assert_int_equal(gpux__audio_to_tensor(&c, &a, &t), 0);
  assert_int_equal(t.ndim, 3);
  assert_int_equal(t.dims[0], 1);
  assert_int_equal(t.dims[1], 80);
  assert_int_equal(t.dims[2], 3000);
  gpux_tensor_free(&t);
  c.mel_bins = 128;
  c.add_batch_dim = 0;
  c.length = 16000;
  assert_int_equal(gpux__audio_to_tensor(&c, &a, &t), 0);
  assert_int_equal(t.ndim, 2);
  assert_int_equal(t.dims[0], 128);
  assert_int_equal(t.dims[1], 100);
  gpux_tensor_free(&t);
  /* settings that cannot make Whisper features */
  c.length = 1000;
  assert_int_equal(gpux__audio_to_tensor(&c, &a, &t), GPUX_E_INVALID);
  assert_non_null(strstr(gpux_last_error(), "length 1000 is not a multiple of 160"));
  c.length = 0;
  c.normalize = GPUX__AUDIO_NORM_PEAK;
  assert_int_equal(gpux__audio_config_check(&c), GPUX_E_INVALID);
  c.normalize = GPUX__AUDIO_NORM_NONE;
  c.sample_rate = 22050;
  assert_int_equal(gpux__audio_config_check(&c), GPUX_E_INVALID);
  c.sample_rate = 16000;
  assert_int_equal(gpux__audio_config_check(&c), 0);
  c.features = GPUX__AUDIO_FEATURES_NONE;
  assert_int_equal(gpux__audio_config_check(&c), GPUX_E_INVALID); /* mel_bins without features */
  c.mel_bins = 0;
  c.features = 7;
  assert_int_equal(gpux__audio_config_check(&c), GPUX_E_INVALID);
  gpux__audio_free(&a);
}

static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_time_of_30_seconds(void **state) {
  (void)state;
  float *x = malloc(sizeof(float) * GPUX__WHISPER_SAMPLES), *out = malloc(sizeof(float) * 128 * 3000);
  uint32_t s = 1;
  for (int64_t j = 0; j < GPUX__WHISPER_SAMPLES; j++) {
    s = s * 1664525u + 1013904223u;
    x[j] = (float)((double)(s >> 8) / (1 << 24) - 0.5);
  }
  for (int bins = 80; bins <= 128; bins += 48) {
    double best = 1e9;
    for (int r = 0; r < 5; r++) {
      double t0 = cpu_ms();
      assert_int_equal(gpux__whisper_log_mel(x, GPUX__WHISPER_SAMPLES, bins, 3000, out), 0);
      best = fmin(best, cpu_ms() - t0);
    }
    print_message("log-mel features of a 30 s clip, %d bins: %.1f ms of CPU time (best of 5)\n", bins, best);
  }
  free(x);
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rfft_matches_dft),   cmocka_unit_test(test_silence_and_padding),
      cmocka_unit_test(test_bad_arguments),      cmocka_unit_test(test_pipeline_and_config),
      cmocka_unit_test(test_time_of_30_seconds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
