/* prepost-impl.h — helpers shared by the files of src/prepost/ only: reading a whole file, UTF-8
 * decoding and encoding, and the Unicode character classes, lower-casing and decompositions the
 * tokenizers need (tables generated into unicode-tables.h). */
#ifndef GPUX_PREPOST_IMPL_H
#define GPUX_PREPOST_IMPL_H

#include "core/internal.h"
#include "prepost/prepost.h"

/* Reads a whole file (NUL-terminated for convenience; *len excludes the NUL). Errors name the
 * path: GPUX_E_NOTFOUND when missing, GPUX_E_IO otherwise. Files over 2 GiB are refused. */
int gpux__pp_read_file(const char *path, char **data, size_t *len);

/* A growable byte buffer. */
typedef struct {
  char *data;
  size_t len, cap;
} gpux__pp_buf;
int gpux__pp_buf_put(gpux__pp_buf *b, const void *p, size_t n);
int gpux__pp_buf_putc(gpux__pp_buf *b, char c);
int gpux__pp_buf_printf(gpux__pp_buf *b, const char *fmt, ...) GPUX__PRINTF(2, 3);
/* Appends the UTF-8 encoding of a code point. */
int gpux__pp_buf_put_cp(gpux__pp_buf *b, uint32_t cp);
/* Makes data a NUL-terminated string (an empty one when nothing was put). */
char *gpux__pp_buf_cstr(gpux__pp_buf *b);

/* Decodes one UTF-8 code point at s[*i] (n bytes in all) and advances *i; malformed sequences
 * (overlong, surrogates, truncated) give U+FFFD and advance by one byte. */
uint32_t gpux__utf8_next(const char *s, size_t n, size_t *i);
/* Encodes cp into out (4 bytes at most); returns the byte count. */
int gpux__utf8_encode(uint32_t cp, char *out);

/* Character classes (bits of gpux__uni_flags). */
enum {
  GPUX__UNI_LETTER = 1,          /* \p{L} */
  GPUX__UNI_NUMBER = 2,          /* \p{N} */
  GPUX__UNI_PUNCT = 4,           /* \p{P} */
  GPUX__UNI_MARK_NONSPACING = 8, /* \p{Mn} */
  GPUX__UNI_SPACE_SEP = 16,      /* \p{Zs} */
  GPUX__UNI_WHITE_SPACE = 32,    /* \p{White_Space} */
  GPUX__UNI_OTHER = 64,          /* Cc, Cf, Co, Cn (and surrogates) */
};
int gpux__uni_flags(uint32_t cp);
/* Full lower-case mapping (İ -> i + U+0307); writes up to 3 code points, returns how many. */
int gpux__uni_lower(uint32_t cp, uint32_t out[3]);
/* Full canonical decomposition (NFD, Hangul syllables included); up to 4 code points. */
int gpux__uni_nfd(uint32_t cp, uint32_t out[4]);
/* CJK Unified Ideographs as BERT defines them (its _is_chinese_char ranges). */
int gpux__uni_is_cjk(uint32_t cp);

#endif
