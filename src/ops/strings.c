/* strings.c — the string operators StringNormalizer, StringConcat, StringSplit and
 * RegexFullMatch. Strings are UTF-8; case changes cover ASCII, Latin-1, Greek and Cyrillic.
 * RegexFullMatch translates the RE2 patterns it meets (\w \d \s classes, (?:...)) to POSIX
 * extended regular expressions. Registered in misc.c's table. */
#include "ops/op.h"
#include <regex.h>

static const char *str_at(const gpux_tensor *t, int64_t i) {
  const char *s = ((char *const *)t->data)[i];
  return s ? s : "";
}

static int need_strings(gpux__kctx *k, const gpux_tensor *t, const char *what) {
  if (!t) return gpux__kerr(k, GPUX_E_INVALID, "missing input %s", what);
  if (t->dtype != GPUX_DT_STRING)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED_DTYPE, "%s must be strings, got %s", what, gpux_dtype_name(t->dtype));
  return 0;
}

/* ---- case mapping on UTF-8 ---- */

static int32_t case_map(int32_t c, int upper) {
  if (upper) {
    if (c >= 'a' && c <= 'z') return c - 32;
    if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
    if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;   /* Greek */
    if (c >= 0x430 && c <= 0x44F) return c - 32;                 /* Cyrillic */
    if (c >= 0x450 && c <= 0x45F) return c - 80;
  } else {
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
    if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
    if (c >= 0x410 && c <= 0x42F) return c + 32;
    if (c >= 0x400 && c <= 0x40F) return c + 80;
  }
  return c;
}

/* Decodes one UTF-8 sequence at s (bytes left n); returns its length, *cp = -1 when invalid. */
static int utf8_decode(const unsigned char *s, size_t n, int32_t *cp) {
  if (s[0] < 0x80) { *cp = s[0]; return 1; }
  int len = (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
  if (!len || (size_t)len > n) { *cp = -1; return 1; }
  int32_t c = s[0] & (0x7F >> len);
  for (int i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) { *cp = -1; return 1; }
    c = (c << 6) | (s[i] & 0x3F);
  }
  *cp = c;
  return len;
}

static int utf8_encode(int32_t c, char *out) {
  if (c < 0x80) { out[0] = (char)c; return 1; }
  if (c < 0x800) { out[0] = (char)(0xC0 | (c >> 6)); out[1] = (char)(0x80 | (c & 0x3F)); return 2; }
  if (c < 0x10000) {
    out[0] = (char)(0xE0 | (c >> 12));
    out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[2] = (char)(0x80 | (c & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (c >> 18));
  out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
  out[3] = (char)(0x80 | (c & 0x3F));
  return 4;
}

/* A new string with every character upper- or lower-cased (NULL when out of memory). */
static char *case_change(const char *s, int upper) {
  size_t n = strlen(s);
  char *out = gpux__malloc(n * 2 + 1);   /* case pairs here never grow by more than 2x */
  if (!out) return NULL;
  size_t o = 0;
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    int32_t cp;
    int len = utf8_decode(p + i, n - i, &cp);
    if (cp < 0) out[o++] = (char)p[i];
    else o += (size_t)utf8_encode(case_map(cp, upper), out + o);
    i += (size_t)len;
  }
  out[o] = 0;
  return out;
}

/* ---- StringNormalizer ---- */

int gpux__op_string_normalizer(gpux__kctx *k);
int gpux__op_string_normalizer(gpux__kctx *k) {
  const gpux_tensor *x = IN(0);
  int rc = need_strings(k, x, "X");
  if (rc) return rc;
  if (x->ndim != 1 && !(x->ndim == 2 && x->dims[0] == 1))
    return gpux__kerr(k, GPUX_E_SHAPE, "X must be [C] or [1, C]");
  const char *action = gpux__attr_string(k, "case_change_action", "NONE");
  int act;
  if (!strcmp(action, "NONE")) act = 0;
  else if (!strcmp(action, "LOWER")) act = 1;
  else if (!strcmp(action, "UPPER")) act = 2;
  else return gpux__kerr(k, GPUX_E_UNSUPPORTED, "case_change_action '%s'", action);
  int sensitive = (int)gpux__attr_int(k, "is_case_sensitive", 0);
  const char *const *stop;
  int nstop = gpux__attr_strings(k, "stopwords", &stop);
  if (k->shape_only) {
    if (!x->data) return gpux__kerr(k, GPUX_E_UNSUPPORTED, "output length depends on the input strings");
  }
  int64_t n = gpux_tensor_count(x);
  char **kept = gpux__calloc((size_t)(n + 1), sizeof(char *));
  char **lstop = gpux__calloc((size_t)(nstop + 1), sizeof(char *));
  int64_t nk = 0;
  rc = 0;
  if (!kept || !lstop) { rc = GPUX_E_NOMEM; goto done; }
  for (int i = 0; i < nstop && !sensitive; i++)
    if (!(lstop[i] = case_change(stop[i], 0))) { rc = GPUX_E_NOMEM; goto done; }
  for (int64_t i = 0; i < n; i++) {
    const char *s = str_at(x, i);
    int drop = 0;
    if (nstop) {
      char *ls = sensitive ? NULL : case_change(s, 0);
      if (!sensitive && !ls) { rc = GPUX_E_NOMEM; goto done; }
      for (int j = 0; j < nstop && !drop; j++) drop = !strcmp(sensitive ? s : ls, sensitive ? stop[j] : lstop[j]);
      free(ls);
    }
    if (drop) continue;
    kept[nk] = act ? case_change(s, act == 2) : gpux__strdup(s);
    if (!kept[nk]) { rc = GPUX_E_NOMEM; goto done; }
    nk++;
  }
  int64_t count = nk ? nk : 1;
  int64_t dims[2];
  if (x->ndim == 1) dims[0] = count;
  else dims[0] = 1, dims[1] = count;
  gpux_tensor *y = gpux__out(k, 0, GPUX_DT_STRING, x->ndim, dims);
  if (!y) { rc = k->status; goto done; }
  if (k->shape_only) goto done;
  if (!nk) {
    if (!(((char **)y->data)[0] = gpux__strdup(""))) rc = GPUX_E_NOMEM;
  } else {
    for (int64_t i = 0; i < nk; i++) ((char **)y->data)[i] = kept[i], kept[i] = NULL;
  }
done:
  if (kept) for (int64_t i = 0; i < nk; i++) free(kept[i]);
  if (lstop) for (int i = 0; i < nstop; i++) free(lstop[i]);
  free(kept);
  free(lstop);
  if (rc == GPUX_E_NOMEM) return gpux__kerr(k, rc, "out of memory");
  return rc;
}

/* ---- StringConcat ---- */

int gpux__op_string_concat(gpux__kctx *k);
int gpux__op_string_concat(gpux__kctx *k) {
  const gpux_tensor *a = IN(0), *b = IN(1);
  int rc = need_strings(k, a, "X");
  if (!rc) rc = need_strings(k, b, "Y");
  if (rc) return rc;
  int nd;
  int64_t dims[GPUX_MAX_DIMS];
  if ((rc = gpux__broadcast_shape(a->ndim, a->dims, b->ndim, b->dims, &nd, dims)))
    return gpux__kerr(k, rc, "%s", gpux_last_error());
  gpux_tensor *y = gpux__out(k, 0, GPUX_DT_STRING, nd, dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  int64_t n = gpux_tensor_count(y);
  int64_t ys[GPUX_MAX_DIMS], as[GPUX_MAX_DIMS], bs[GPUX_MAX_DIMS];
  gpux__strides(nd, dims, ys);
  /* broadcast strides of a and b against the output shape */
  for (int d = 0; d < nd; d++) {
    int da = d - (nd - a->ndim), db = d - (nd - b->ndim);
    int64_t sa = 1, sb = 1;
    for (int e = da + 1; e < a->ndim; e++) sa *= a->dims[e];
    for (int e = db + 1; e < b->ndim; e++) sb *= b->dims[e];
    as[d] = da < 0 || a->dims[da] == 1 ? 0 : sa;
    bs[d] = db < 0 || b->dims[db] == 1 ? 0 : sb;
  }
  for (int64_t i = 0; i < n; i++) {
    int64_t ia = 0, ib = 0, rem = i;
    for (int d = 0; d < nd; d++) {
      int64_t c = rem / ys[d];
      rem %= ys[d];
      ia += c * as[d];
      ib += c * bs[d];
    }
    const char *sa = str_at(a, ia), *sb = str_at(b, ib);
    size_t la = strlen(sa), lb = strlen(sb);
    char *s = gpux__malloc(la + lb + 1);
    if (!s) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    memcpy(s, sa, la);
    memcpy(s + la, sb, lb + 1);
    ((char **)y->data)[i] = s;
  }
  return 0;
}

/* ---- StringSplit ---- */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Splits s the way Python's str.split(sep, maxsplit) does; calls back with each piece.
 * Returns the piece count, or -1 when out of memory (only when storing). */
static int64_t split_one(const char *s, const char *sep, int64_t maxsplit, char **out) {
  int64_t cnt = 0;
  size_t n = strlen(s);
  if (!sep) {
    size_t i = 0;
    while (i < n) {
      while (i < n && is_space(s[i])) i++;
      if (i >= n) break;
      size_t j = i;
      if (maxsplit >= 0 && cnt == maxsplit) {
        j = n;   /* the rest, trailing whitespace kept (as Python does) */
      } else {
        while (j < n && !is_space(s[j])) j++;
      }
      if (out && !(out[cnt] = gpux__strndup(s + i, j - i))) return -1;
      cnt++;
      i = j;
      if (maxsplit >= 0 && cnt > maxsplit) break;
    }
    return cnt;
  }
  size_t ls = strlen(sep);
  size_t i = 0;
  for (;;) {
    const char *hit = maxsplit >= 0 && cnt == maxsplit ? NULL : strstr(s + i, sep);
    size_t j = hit ? (size_t)(hit - s) : n;
    if (out && !(out[cnt] = gpux__strndup(s + i, j - i))) return -1;
    cnt++;
    if (!hit) break;
    i = j + ls;
  }
  return cnt;
}

int gpux__op_string_split(gpux__kctx *k);
int gpux__op_string_split(gpux__kctx *k) {
  const gpux_tensor *x = IN(0);
  int rc = need_strings(k, x, "X");
  if (rc) return rc;
  if (x->ndim >= GPUX_MAX_DIMS) return gpux__kerr(k, GPUX_E_SHAPE, "rank too high");
  const char *sep = gpux__attr_string(k, "delimiter", NULL);
  if (sep && !sep[0]) sep = NULL;
  int64_t maxsplit = gpux__has_attr(k, "maxsplit") ? gpux__attr_int(k, "maxsplit", -1) : -1;
  if (!x->data && gpux_tensor_count(x) > 0)
    return gpux__kerr(k, GPUX_E_UNSUPPORTED, "output shape depends on the input strings");
  int64_t n = gpux_tensor_count(x), width = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t c = split_one(str_at(x, i), sep, maxsplit, NULL);
    if (c > width) width = c;
  }
  int64_t dims[GPUX_MAX_DIMS];
  for (int d = 0; d < x->ndim; d++) dims[d] = x->dims[d];
  dims[x->ndim] = width;
  gpux_tensor *y = gpux__out(k, 0, GPUX_DT_STRING, x->ndim + 1, dims);
  if (!y) return k->status;
  gpux_tensor *z = gpux__out(k, 1, GPUX_DT_INT64, x->ndim, x->dims);
  if (!z) return k->status;
  if (k->shape_only) return 0;
  /* y may be the scratch tensor if omitted, and z's gpux__out then replaced it: refetch */
  y = OUTPUT_WANTED(0) ? k->out[0] : NULL;
  for (int64_t i = 0; i < n; i++) {
    char **row = y ? (char **)y->data + i * width : NULL;
    int64_t c = split_one(str_at(x, i), sep, maxsplit, row);
    if (c < 0) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    if (row)
      for (int64_t j = c; j < width; j++)
        if (!(row[j] = gpux__strdup(""))) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
    ((int64_t *)z->data)[i] = c;
  }
  return 0;
}

/* ---- RegexFullMatch ---- */

/* Appends to a growing buffer. */
typedef struct {
  char *s;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s) {
  size_t l = strlen(s);
  if (b->oom) return;
  if (b->n + l + 1 > b->cap) {
    size_t cap = (b->n + l + 1) * 2;
    char *p = realloc(b->s, cap);
    if (!p) { b->oom = 1; return; }
    b->s = p;
    b->cap = cap;
  }
  memcpy(b->s + b->n, s, l + 1);
  b->n += l;
}

static const char *class_body(char c) {
  switch (c) {
  case 'w': case 'W': return "[:alnum:]_";
  case 'd': case 'D': return "[:digit:]";
  case 's': case 'S': return "[:space:]";
  default: return NULL;
  }
}

/* RE2 subset -> POSIX ERE anchored at both ends. Returns NULL when out of memory. */
static char *re2_to_posix(const char *p) {
  sbuf b = {0};
  sb_put(&b, "^(");
  for (size_t i = 0; p[i]; i++) {
    char c = p[i];
    if (c == '\\' && p[i + 1]) {
      char e = p[++i];
      const char *body = class_body(e);
      if (body) {
        sb_put(&b, e >= 'a' ? "[" : "[^");
        sb_put(&b, body);
        sb_put(&b, "]");
      } else {
        char t[3] = {'\\', e, 0};
        sb_put(&b, t);
      }
    } else if (c == '(' && p[i + 1] == '?' && p[i + 2] == ':') {
      sb_put(&b, "(");
      i += 2;
    } else if (c == '[') {
      /* bracket expression: unescape, expand classes, move ']' first and '-' last */
      size_t j = i + 1;
      int neg = 0, dash = 0, close = 0;
      sbuf items = {0};
      sb_put(&items, "");
      if (p[j] == '^') neg = 1, j++;
      if (p[j] == ']') close = 1, j++;
      for (; p[j] && p[j] != ']'; j++) {
        if (p[j] == '[' && p[j + 1] == ':') {   /* POSIX class inside */
          const char *end = strstr(p + j, ":]");
          if (end) {
            char tmp[64];
            size_t l = (size_t)(end + 2 - (p + j));
            if (l < sizeof tmp) {
              memcpy(tmp, p + j, l);
              tmp[l] = 0;
              sb_put(&items, tmp);
              j += l - 1;
              continue;
            }
          }
        }
        if (p[j] == '\\' && p[j + 1]) {
          char e = p[++j];
          const char *body = class_body(e);
          if (body && e >= 'a') sb_put(&items, body);
          else if (e == '-') dash = 1;
          else if (e == ']') close = 1;
          else if (e == 'n') sb_put(&items, "\n");
          else if (e == 't') sb_put(&items, "\t");
          else {
            char t[2] = {e, 0};
            sb_put(&items, t);
          }
        } else {
          char t[2] = {p[j], 0};
          sb_put(&items, t);
        }
      }
      sb_put(&b, neg ? "[^" : "[");
      if (close) sb_put(&b, "]");
      sb_put(&b, items.s ? items.s : "");
      if (dash) sb_put(&b, "-");
      sb_put(&b, "]");
      if (items.oom) b.oom = 1;
      free(items.s);
      i = p[j] ? j : j - 1;
    } else {
      char t[2] = {c, 0};
      sb_put(&b, t);
    }
  }
  sb_put(&b, ")$");
  if (b.oom) {
    free(b.s);
    return NULL;
  }
  return b.s;
}

int gpux__op_regex_full_match(gpux__kctx *k);
int gpux__op_regex_full_match(gpux__kctx *k) {
  const gpux_tensor *x = IN(0);
  int rc = need_strings(k, x, "X");
  if (rc) return rc;
  const char *pattern = gpux__attr_string(k, "pattern", NULL);
  if (!pattern) return gpux__kerr(k, GPUX_E_INVALID, "attribute 'pattern' is required");
  gpux_tensor *y = gpux__out(k, 0, GPUX_DT_BOOL, x->ndim, x->dims);
  if (!y) return k->status;
  if (k->shape_only) return 0;
  char *posix = re2_to_posix(pattern);
  if (!posix) return gpux__kerr(k, GPUX_E_NOMEM, "out of memory");
  regex_t re;
  int err = regcomp(&re, posix, REG_EXTENDED | REG_NOSUB);
  if (err) {
    char msg[256];
    regerror(err, &re, msg, sizeof msg);
    free(posix);
    return gpux__kerr(k, GPUX_E_UNSUPPORTED, "pattern '%s' is not supported: %s", pattern, msg);
  }
  int64_t n = gpux_tensor_count(x);
  for (int64_t i = 0; i < n; i++) ((uint8_t *)y->data)[i] = regexec(&re, str_at(x, i), 0, NULL, 0) == 0;
  regfree(&re);
  free(posix);
  return 0;
}
