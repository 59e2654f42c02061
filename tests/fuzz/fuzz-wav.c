/* fuzz-wav.c — libFuzzer harness for WAV inputs: decoded, then resampled to 16 kHz at a fixed
 * length of one second and at the file's own length, as preprocessing.audio does, and turned into
 * Whisper's log-mel features (80 bins over 20 frames, a short window so that fuzzing stays fast). */
#include <stddef.h>
#include <stdint.h>
#include "prepost/prepost.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gpux__audio_config c;
  gpux__audio_config_default(&c);
  c.sample_rate = 16000;
  c.length = 16000;
  gpux_tensor t;
  if (!gpux__audio_preprocess(&c, data, size, &t)) gpux_tensor_free(&t);
  c.length = 0;
  if (size < 65536 && !gpux__audio_preprocess(&c, data, size, &t)) gpux_tensor_free(&t);
  c.features = GPUX__AUDIO_FEATURES_WHISPER;
  c.length = 20 * GPUX__WHISPER_HOP;
  if (!gpux__audio_preprocess(&c, data, size, &t)) gpux_tensor_free(&t);
  return 0;
}
