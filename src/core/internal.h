/* internal.h — helpers shared by every part of libgpux: error reporting with a detailed message,
 * checked allocation, 16-bit float conversion, and the parallel-for used by CPU kernels. Names
 * here are gpux__ (internal, not API). */
#ifndef GPUX_INTERNAL_H
#define GPUX_INTERNAL_H

#include "gpux/gpux.h"
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GPUX__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define GPUX__MIN(a, b) ((a) < (b) ? (a) : (b))
#define GPUX__MAX(a, b) ((a) > (b) ? (a) : (b))

#if defined(__GNUC__)
#define GPUX__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define GPUX__PRINTF(f, a)
#endif

/* Records a detailed message for gpux_last_error() and returns err, so that
 * `return gpux__error(GPUX_E_PARSE, "%s: truncated", path);` reads as one step. */
int gpux__error(int err, const char *fmt, ...) GPUX__PRINTF(2, 3);
int gpux__verror(int err, const char *fmt, va_list ap);
/* Prefixes the current message: "model.onnx: " + previous message. */
int gpux__error_prefix(int err, const char *fmt, ...) GPUX__PRINTF(2, 3);

/* cancel.c: GPUX_E_CANCELLED (with the error set) when gpux_interrupt was called or the flag of
 * the run on this thread is raised, else 0; checked by the executor between nodes. A run sets
 * its flag with old = gpux__cancel_enter(&flag) and restores it with gpux__cancel_leave(old). */
int gpux__cancelled(void);
/* fault.c: -1 with errno set when a test injects a fault at this write step (GPUX_TEST_FAULT),
 * else 0; a test may also have the process killed here. */
int gpux__fault(const char *step);
const atomic_int *gpux__cancel_enter(const atomic_int *flag);
void gpux__cancel_leave(const atomic_int *old);

/* Formats a message and gives it to the gpux_set_log handler (default: "gpux: note: ..." on
 * stderr). The library never writes to stderr itself. */
void gpux__log(int level, const char *fmt, ...) GPUX__PRINTF(2, 3);
/* Reports a long step's progress to the handler of gpux_set_progress, if any. */
void gpux__progress(const char *step, int64_t done, int64_t total);

/* Allocation that records GPUX_E_NOMEM on failure (callers still check for NULL). */
void *gpux__malloc(size_t n);
void *gpux__calloc(size_t count, size_t size);
void *gpux__realloc(void *p, size_t n);
char *gpux__strdup(const char *s);
char *gpux__strndup(const char *s, size_t n);
/* At least n bytes, 64-byte aligned, freed by gpux__free_large with the same n; from 2 MiB up, a
 * mapping of whole 2 MiB pages that the kernel is asked to back with transparent huge pages
 * (Linux madvise): activations, kernel scratch and packed weights, which the convolution and GEMM
 * kernels walk many pages apart, then cost one TLB entry per 2 MiB instead of per 4 KiB
 * (GPUX_HUGEPAGES=0 in the environment asks for none, for comparisons). */
void *gpux__alloc_large(size_t n);
void gpux__free_large(void *p, size_t n);
/* The same kind of mapping with the last 2 MiB page not rounded up (the rest of it in 4 KiB
 * pages), freed by gpux__free_mapped with the same n: blocks kept for a session's life that each
 * run streams from memory (packed weights), where whole 2 MiB pages would add up to 2 MiB of
 * resident memory a block. A heap block of the same size often reuses pages already touched in
 * 4 KiB ones: ResNet-50's classifier read its 8 MB in 1.1-1.3 ms a run there, 0.6 here. */
void *gpux__alloc_mapped(size_t n);
void gpux__free_mapped(void *p, size_t n);
/* Bytes of the mappings gpux__alloc_large and gpux__alloc_mapped hold now (the heap's are malloc's to count). */
size_t gpux__large_bytes(void);
/* n bytes from the heap, not zeroed, freed with free(); a large block's whole 2 MiB pages inside
 * are marked for huge pages (GPUX_HUGEPAGES=0: none): copies filled at once, a model's weights. */
void *gpux__malloc_large(size_t n);
/* A byte count as a person reads it: "812 bytes", "1.5 KiB", "256 MiB", "412.3 MiB". */
const char *gpux__format_bytes(char buf[32], uint64_t n);

/* IEEE half and bfloat16 <-> float, round to nearest even. */
float gpux__f16_to_f32(uint16_t h);
uint16_t gpux__f32_to_f16(float f);
float gpux__bf16_to_f32(uint16_t h);
uint16_t gpux__f32_to_bf16(float f);

/* 8-bit and 4-bit minifloats (float8e4m3fn/fnuz, float8e5m2/fnuz, float8e8m0, float4e2m1):
 * decode, and encode with round-to-nearest-even; `saturate` clamps out-of-range values to the
 * largest finite value instead of producing inf/NaN (ONNX Cast's saturate attribute). */
float gpux__minifloat_to_f32(int dtype, uint8_t bits);
uint8_t gpux__f32_to_minifloat(int dtype, float f, int saturate);

/* Element-type helpers. */
bool gpux__dtype_is_float(int dtype);     /* float, double, float16, bfloat16, float8*, float4 */
bool gpux__dtype_is_signed_int(int dtype);
bool gpux__dtype_is_unsigned_int(int dtype);
/* Element i of a numeric buffer of dtype as double / from double (saturating per C cast rules
 * for ints, rounding for 16-bit floats). Covers every numeric dtype, sub-byte and float8 ones
 * included. */
double gpux__load_f64(int dtype, const void *data, int64_t i);
void gpux__store_f64(int dtype, void *data, int64_t i, double v);
/* Same for exact 64-bit integer work (int64/uint64 values beyond 2^53). */
int64_t gpux__load_i64(int dtype, const void *data, int64_t i);
void gpux__store_i64(int dtype, void *data, int64_t i, int64_t v);
/* A new float32 (float64) copy of t's elements, any numeric dtype: the working copy of kernels
 * that compute float16/bfloat16/float64 in float32 (or any float in float64). NULL when out of
 * memory. */
/* gpux_tensor_init without the allocation: the tensor points at data, which it does not own. */
int gpux__tensor_init_view(gpux_tensor *t, int dtype, int ndim, const int64_t *dims, void *data);
float *gpux__widen_f32(const gpux_tensor *t);
double *gpux__widen_f64(const gpux_tensor *t);
/* Stores n float32 values into a buffer of dtype (16-bit floats rounded to nearest even). */
void gpux__narrow_f32(int dtype, void *dst, const float *src, int64_t n);

/* Shape helpers. */
int64_t gpux__shape_count(int ndim, const int64_t *dims);
/* Numpy-style broadcast of a and b into out; returns GPUX_E_SHAPE when incompatible. */
int gpux__broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b, int *nout,
                          int64_t *out);
/* Row-major strides of a shape (in elements). */
void gpux__strides(int ndim, const int64_t *dims, int64_t *strides);

/* Parallel for over [0, n): fn(ctx, begin, end) runs on the shared thread pool in balanced
 * chunks of at least `grain` items, on no more threads than there are such chunks; returns when
 * all chunks are done. Runs inline when n is under two grains. */
typedef void (*gpux__range_fn)(void *ctx, int64_t begin, int64_t end);
void gpux__parallel_for(int64_t n, int64_t grain, gpux__range_fn fn, void *ctx);
/* The same over n items of `work` units in all (multiply-adds, or elements read and written), on
 * gpux__threads_for(work) threads: for tasks a kernel cut for that many threads. */
void gpux__parallel_for_work(int64_t n, double work, gpux__range_fn fn, void *ctx);
/* The same over n elements of `units` work each (elements read and written, weighted by what one
 * costs against a multiply-add), on gpux__threads_for(n * units) threads in pieces of whole
 * `block`s of elements (a cache line of outputs: 16 floats), inline when that is one thread. */
void gpux__parallel_for_elems(int64_t n, double units, int64_t block, gpux__range_fn fn, void *ctx);
/* The work of one float32 element read and written by an elementwise op's vector loops, what
 * gpux__parallel_for_elems's `units` are multiples of ($GPUX_POOL_ELEM, default 8). */
double gpux__elem_units(void);
int gpux__thread_count(void);          /* threads a job started here may use */
/* The pool's workers started so far: they start when a job first asks for them, so a process
 * whose jobs all ran on one thread has none. */
int gpux__pool_started(void);
/* Threads worth using for `work` units in all (1 for a small job, at most gpux__thread_count()):
 * each gets at least ~3-5 us of it ($GPUX_POOL_WORK units, default 131072). */
int gpux__threads_for(double work);
/* How many of n equal tasks the busiest thread runs when gpux__parallel_for_work, or
 * gpux__parallel_for with a grain of 1, gives them to at most `threads` threads: what a kernel
 * choosing between splits compares (n tasks on 16 threads: 16 -> 1, 17 -> 2, 42 -> 3). */
int64_t gpux__parallel_busiest(int64_t n, int threads);
/* A session run begins (1) or ends (0): while one is under way, idle workers spin longer before
 * they sleep, since its next node's job comes soon. */
void gpux__pool_hold(int on);
void gpux__set_thread_count(int n);   /* 0 = number of cores; takes effect before first use */
/* At most n threads (the caller included; 0 = the whole pool) run the jobs this thread starts
 * from now on: a session's `threads` option. Returns the previous setting. */
int gpux__set_run_threads(int n);

/* A growable arena: many small allocations freed at once (graph IR, names, attributes). */
typedef struct gpux__arena_block gpux__arena_block;
typedef struct {
  gpux__arena_block *head;
} gpux__arena;
void *gpux__arena_alloc(gpux__arena *a, size_t n);   /* zeroed, 16-byte aligned */
char *gpux__arena_strndup(gpux__arena *a, const char *s, size_t n);
void gpux__arena_free(gpux__arena *a);

/* "Did you mean": the Levenshtein distance of two words (case-insensitive; 99 when either is
 * longer than 64), and the closest of a NULL-terminated list of names, or NULL when none is
 * close enough to be the one meant. */
int gpux__edit_distance(const char *a, const char *b);
const char *gpux__closest_name(const char *word, const char *const *names);

/* The folder libgpux was loaded from (libgpux.so's, or the program's that links libgpux.a);
 * -1 when it cannot be found (libdir.c). */
int gpux__library_dir(char *dir, size_t cap);

#endif
