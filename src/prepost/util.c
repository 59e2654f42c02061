/* util.c — small helpers of the pre/post-processing layer: whole-file reads, a growable byte
 * buffer, UTF-8, and lookups in the generated Unicode tables. */
#include "prepost/prepost-impl.h"
#include "prepost/unicode-tables.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

int gpux__pp_read_file(const char *path, char **data, size_t *len) {
  *data = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f)
    return gpux__error(errno == ENOENT ? GPUX_E_NOTFOUND : GPUX_E_IO, "%s: %s", path,
                       strerror(errno));
  gpux__pp_buf b = {0};
  char chunk[65536];
  size_t got;
  int rc = 0;
  while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (b.len + got > ((size_t)1 << 31)) {
      rc = gpux__error(GPUX_E_INVALID, "%s: file larger than 2 GiB", path);
      break;
    }
    if ((rc = gpux__pp_buf_put(&b, chunk, got)) != 0) break;
  }
  if (!rc && ferror(f)) rc = gpux__error(GPUX_E_IO, "%s: read error: %s", path, strerror(errno));
  fclose(f);
  if (rc) {
    free(b.data);
    return rc;
  }
  size_t n = b.len;
  if (!gpux__pp_buf_cstr(&b)) return GPUX_E_NOMEM;
  *data = b.data;
  *len = n;
  return 0;
}

static int buf_reserve(gpux__pp_buf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + extra + 1) cap *= 2;
  char *p = gpux__realloc(b->data, cap);
  if (!p) return GPUX_E_NOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int gpux__pp_buf_put(gpux__pp_buf *b, const void *p, size_t n) {
  if (buf_reserve(b, n)) return GPUX_E_NOMEM;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = 0;
  return 0;
}

int gpux__pp_buf_putc(gpux__pp_buf *b, char c) { return gpux__pp_buf_put(b, &c, 1); }

int gpux__pp_buf_printf(gpux__pp_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return gpux__error(GPUX_E_INTERNAL, "bad format string");
  if (buf_reserve(b, (size_t)n)) return GPUX_E_NOMEM;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

int gpux__pp_buf_put_cp(gpux__pp_buf *b, uint32_t cp) {
  char tmp[4];
  return gpux__pp_buf_put(b, tmp, (size_t)gpux__utf8_encode(cp, tmp));
}

char *gpux__pp_buf_cstr(gpux__pp_buf *b) {
  if (buf_reserve(b, 0)) return NULL;
  b->data[b->len] = 0;
  return b->data;
}

uint32_t gpux__utf8_next(const char *s, size_t n, size_t *i) {
  const unsigned char *u = (const unsigned char *)s + *i;
  size_t left = n - *i;
  unsigned c = u[0];
  if (c < 0x80) {
    *i += 1;
    return c;
  }
  int len;
  uint32_t cp, min;
  if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f, min = 0x80;
  else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0f, min = 0x800;
  else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07, min = 0x10000;
  else {
    *i += 1;
    return 0xfffd;
  }
  if ((size_t)len > left) {
    *i += 1;
    return 0xfffd;
  }
  for (int k = 1; k < len; k++) {
    if ((u[k] & 0xc0) != 0x80) {
      *i += 1;
      return 0xfffd;
    }
    cp = (cp << 6) | (u[k] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
    *i += 1;
    return 0xfffd;
  }
  *i += (size_t)len;
  return cp;
}

int gpux__utf8_encode(uint32_t cp, char *out) {
  unsigned char *o = (unsigned char *)out;
  if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) cp = 0xfffd;
  if (cp < 0x80) {
    o[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (unsigned char)(0xc0 | (cp >> 6));
    o[1] = (unsigned char)(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (unsigned char)(0xe0 | (cp >> 12));
    o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[2] = (unsigned char)(0x80 | (cp & 0x3f));
    return 3;
  }
  o[0] = (unsigned char)(0xf0 | (cp >> 18));
  o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
  o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
  o[3] = (unsigned char)(0x80 | (cp & 0x3f));
  return 4;
}

int gpux__uni_flags(uint32_t cp) {
  if (cp < 0x80) { /* fast path for ASCII */
    if (cp >= 'a' && cp <= 'z') return GPUX__UNI_LETTER;
    if (cp >= 'A' && cp <= 'Z') return GPUX__UNI_LETTER;
    if (cp >= '0' && cp <= '9') return GPUX__UNI_NUMBER;
  }
  size_t lo = 0, hi = GPUX__ARRAY_LEN(gpux__uni_ranges);
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (cp < gpux__uni_ranges[mid][0]) hi = mid;
    else if (cp > gpux__uni_ranges[mid][1]) lo = mid + 1;
    else return (int)gpux__uni_ranges[mid][2];
  }
  return 0;
}

/* Finds cp in a { cp, offset, length } table; copies its code points. */
static int map_lookup(const uint32_t (*table)[3], size_t n, uint32_t cp, uint32_t *out) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (cp < table[mid][0]) hi = mid;
    else if (cp > table[mid][0]) lo = mid + 1;
    else {
      for (uint32_t k = 0; k < table[mid][2]; k++) out[k] = gpux__uni_pool[table[mid][1] + k];
      return (int)table[mid][2];
    }
  }
  out[0] = cp;
  return 1;
}

int gpux__uni_lower(uint32_t cp, uint32_t out[3]) {
  if (cp < 0x80) {
    out[0] = cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    return 1;
  }
  return map_lookup(gpux__uni_lower_map, GPUX__ARRAY_LEN(gpux__uni_lower_map), cp, out);
}

int gpux__uni_nfd(uint32_t cp, uint32_t out[4]) {
  if (cp < 0xc0) {
    out[0] = cp;
    return 1;
  }
  if (cp >= 0xac00 && cp <= 0xd7a3) { /* Hangul syllable: L V (T) */
    uint32_t s = cp - 0xac00;
    out[0] = 0x1100 + s / (21 * 28);
    out[1] = 0x1161 + (s % (21 * 28)) / 28;
    if (s % 28) {
      out[2] = 0x11a7 + s % 28;
      return 3;
    }
    return 2;
  }
  return map_lookup(gpux__uni_nfd_map, GPUX__ARRAY_LEN(gpux__uni_nfd_map), cp, out);
}

int gpux__uni_is_cjk(uint32_t cp) {
  return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) ||
         (cp >= 0x20000 && cp <= 0x2a6df) || (cp >= 0x2a700 && cp <= 0x2b73f) ||
         (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b820 && cp <= 0x2ceaf) ||
         (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);
}
