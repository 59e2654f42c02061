/* reuse.c — compute pipelines reused across input shapes. Kernels write sizes into their WGSL as
 * literals, so a graph planned again for another shape (a decoder whose cache is one position
 * longer at each step) would compile a new pipeline for every kernel whose sizes changed. Here a
 * dispatch's WGSL is split into its skeleton (the text with each decimal u32 or i32 literal, "12u"
 * or "3i", taken out) and those literals:
 *   - the first time a skeleton is seen, its text compiles as written (as without this file);
 *   - when it comes again with other literals, the literals that differed become parameters read
 *     from a uniform buffer, and that form compiles once; every later shape whose literals differ
 *     only there reuses it, the plan writing the values into the buffer.
 * Literals that never changed stay constants (loop bounds the compiler can unroll, divisions by a
 * constant). A parameterized text that does not compile (a size where WGSL wants a constant
 * expression) keeps the literal form for that skeleton, one pipeline per text as before. Only
 * suffixed literals are taken out: a kernel writes the sizes that follow from shapes as "12u" or
 * "12i" (a plain "12" stays in the skeleton, and each of its values compiles anew). */
#include "backend/webgpu/wg.h"
#include <stdio.h>

typedef struct skel_entry {
  uint64_t hash;
  char *skel;                    /* the text, each literal replaced by "\x01" and its suffix */
  size_t skel_len;
  int n_lits;
  uint32_t *lits;                /* the values first seen (the constants of the parameterized form) */
  unsigned char *varies;         /* [n_lits] the literal was seen with another value: a parameter */
  wg_pipeline *param_pipe;       /* the form with parameters, NULL until a literal varied */
  wg_pipeline *lit_pipe;         /* the text with the literals first seen, once made */
  int failed;                    /* the parameterized form did not compile: literals only */
} skel_entry;

struct wg_reuse {
  skel_entry *e;
  int n, cap;
  int *slot;                     /* open addressing over the skeletons' hashes: entry + 1, 0 empty */
  int n_slots;                   /* a power of two, at least twice n */
  char *skel;                    /* the last text's skeleton and literals (split) */
  size_t skel_cap;
  uint32_t *lits;
  int lits_cap;
};

static void reuse_free(wg_reuse *r) {
  if (!r) return;
  for (int i = 0; i < r->n; i++) {
    free(r->e[i].skel);
    free(r->e[i].lits);
    free(r->e[i].varies);
  }
  free(r->e);
  free(r->slot);
  free(r->skel);
  free(r->lits);
  free(r);
}

/* Characters of WGSL identifiers and numbers ('.' too, so "1.5" is one token): 1, digits 2. */
static unsigned char char_class[256];

static void init_classes(void) {
  for (int c = 0; c < 256; c++)
    char_class[c] = (unsigned char)((c >= '0' && c <= '9') ? 2 : (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '.');
}

/* Splits wgsl into its skeleton (r->skel, *skel_len bytes and a NUL) and its literals (r->lits, *n
 * of them). */
static int split(wg_reuse *r, const char *wgsl, size_t *skel_len, int *n) {
  size_t len = strlen(wgsl);
  if (len + 1 > r->skel_cap) {
    char *ns = gpux__realloc(r->skel, len + 1);
    if (!ns) return GPUX_E_NOMEM;
    r->skel = ns;
    r->skel_cap = len + 1;
  }
  if (!char_class['a']) init_classes();
  char *s = r->skel;
  size_t o = 0;
  int k = 0;
  for (size_t i = 0; i < len;) {
    if (!char_class[(unsigned char)wgsl[i]]) { /* between tokens */
      size_t j = i + 1;
      while (j < len && !char_class[(unsigned char)wgsl[j]]) j++;
      memcpy(s + o, wgsl + i, j - i);
      o += j - i;
      i = j;
      continue;
    }
    size_t j = i;
    while (j < len && char_class[(unsigned char)wgsl[j]]) j++;
    /* a token: a literal when it is decimal digits and one 'u' or 'i' (no leading zero but "0u") */
    size_t digits = 0;
    while (i + digits < j && char_class[(unsigned char)wgsl[i + digits]] == 2) digits++;
    int lit = digits > 0 && digits <= 10 && j == i + digits + 1 && (wgsl[j - 1] == 'u' || wgsl[j - 1] == 'i') &&
              (digits == 1 || wgsl[i] != '0');
    unsigned long long val = 0;
    for (size_t q = 0; lit && q < digits; q++) val = val * 10 + (unsigned long long)(wgsl[i + q] - '0');
    if (lit && val > (wgsl[j - 1] == 'u' ? 0xffffffffull : 0x7fffffffull)) lit = 0;
    if (!lit) {
      memcpy(s + o, wgsl + i, j - i);
      o += j - i;
      i = j;
      continue;
    }
    if (k == r->lits_cap) {
      int cap = r->lits_cap ? r->lits_cap * 2 : 64;
      uint32_t *nv = gpux__realloc(r->lits, (size_t)cap * sizeof *nv);
      if (!nv) return GPUX_E_NOMEM;
      r->lits = nv;
      r->lits_cap = cap;
    }
    r->lits[k++] = (uint32_t)val;
    s[o++] = '\x01';
    s[o++] = wgsl[j - 1];
    i = j;
  }
  s[o] = 0;
  *skel_len = o;
  *n = k;
  return 0;
}

/* A hash of n bytes, eight at a time. */
static uint64_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
  for (; n >= 8; s += 8, n -= 8) {
    uint64_t w;
    memcpy(&w, s, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  }
  uint64_t w = 0;
  memcpy(&w, s, n);
  h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
  return h ^ (h >> 29);
}

/* The entry of this skeleton, or NULL. */
static skel_entry *find_entry(wg_reuse *r, uint64_t h, const char *skel, size_t skel_len, int n_lits) {
  if (!r->n_slots) return NULL;
  for (size_t i = (size_t)h & (size_t)(r->n_slots - 1);; i = (i + 1) & (size_t)(r->n_slots - 1)) {
    int e = r->slot[i] - 1;
    if (e < 0) return NULL;
    skel_entry *x = &r->e[e];
    if (x->hash == h && x->n_lits == n_lits && x->skel_len == skel_len && !memcmp(x->skel, skel, skel_len)) return x;
  }
}

/* Files entry r->e[idx] in the table, making the table larger when it is half full. */
static int index_entry(wg_reuse *r, int idx) {
  if (2 * (r->n + 1) > r->n_slots) {
    int ns = r->n_slots ? r->n_slots * 2 : 256;
    int *slot = gpux__calloc((size_t)ns, sizeof *slot);
    if (!slot) return GPUX_E_NOMEM;
    free(r->slot);
    r->slot = slot;
    r->n_slots = ns;
    for (int e = 0; e < r->n; e++)
      if (e != idx) {
        size_t i = (size_t)r->e[e].hash & (size_t)(ns - 1);
        while (slot[i]) i = (i + 1) & (size_t)(ns - 1);
        slot[i] = e + 1;
      }
  }
  size_t i = (size_t)r->e[idx].hash & (size_t)(r->n_slots - 1);
  while (r->slot[i]) i = (i + 1) & (size_t)(r->n_slots - 1);
  r->slot[i] = idx + 1;
  return 0;
}

/* The parameterized text of entry e: the varying literals read gx_sp, a uniform array at
 * `binding`, in order; the others written back as they were first seen. */
static int param_text(const skel_entry *e, int binding, wg_str *out) {
  int n_params = 0;
  for (int k = 0; k < e->n_lits; k++) n_params += e->varies[k];
  /* the declaration goes after the directives ("enable f16;"), which must come first */
  const char *body = e->skel;
  for (;;) {
    const char *t = body + strspn(body, " \t\r\n");
    if (strncmp(t, "enable ", 7) && strncmp(t, "requires ", 9) && strncmp(t, "diagnostic", 10)) break;
    const char *semi = strchr(t, ';');
    if (!semi || memchr(t, '\x01', (size_t)(semi - t))) break;
    body = semi + 1;
  }
  gpux__wg_cat(out, "%.*s\n@group(0) @binding(%d) var<uniform> gx_sp: array<vec4<u32>, %d>;\n", (int)(body - e->skel), e->skel,
               binding, (n_params + 3) / 4);
  static const char lanes[4] = {'x', 'y', 'z', 'w'};
  int k = 0, q = 0;
  for (const char *p = body; *p; p++) {
    if (*p != '\x01') {
      char c[2] = {*p, 0};
      gpux__wg_cat(out, "%s", c);
      continue;
    }
    char suffix = *++p;
    if (!e->varies[k]) gpux__wg_cat(out, "%u%c", e->lits[k], suffix);
    else if (suffix == 'u') gpux__wg_cat(out, "gx_sp[%d].%c", q / 4, lanes[q % 4]), q++;
    else gpux__wg_cat(out, "bitcast<i32>(gx_sp[%d].%c)", q / 4, lanes[q % 4]), q++;
    k++;
  }
  return out->oom ? GPUX_E_NOMEM : 0;
}

/* The pipeline of the text with entry e's first literals (the text as written). */
static int literal_pipe(wg_device *d, skel_entry *e, const char *wgsl, const char *label, wg_pipeline **out) {
  if (e->lit_pipe && !e->lit_pipe->error) {
    *out = e->lit_pipe;
    return 0;
  }
  int rc = gpux__wg_pipeline_start(d, wgsl, label, out);
  if (!rc) e->lit_pipe = *out;
  return rc;
}

int gpux__wg_pipeline_reuse(wg_device *d, const char *wgsl, const char *label, int binding, wg_pipeline **out,
                            uint32_t **params, int *n_params) {
  *out = NULL;
  *params = NULL;
  *n_params = 0;
  const char *off = getenv("GPUX_WEBGPU_REUSE");
  if (off && !strcmp(off, "0")) return gpux__wg_pipeline_start(d, wgsl, label, out);
  if (!d->reuse && !(d->reuse = gpux__calloc(1, sizeof *d->reuse))) return GPUX_E_NOMEM;
  d->reuse_free = reuse_free;
  wg_reuse *r = d->reuse;
  size_t skel_len;
  int n, rc = split(r, wgsl, &skel_len, &n);
  if (rc) return rc;
  const uint32_t *lits = r->lits;
  uint64_t h = hash_bytes(r->skel, skel_len);
  skel_entry *e = find_entry(r, h, r->skel, skel_len, n);
  if (!e) { /* first seen: compiled as written */
    if (r->n == r->cap) {
      int cap = r->cap ? r->cap * 2 : 64;
      skel_entry *ne = gpux__realloc(r->e, (size_t)cap * sizeof *ne);
      if (!ne) return GPUX_E_NOMEM;
      r->e = ne, r->cap = cap;
    }
    char *skel = gpux__malloc(skel_len + 1);
    uint32_t *first = gpux__malloc(((size_t)n + 1) * sizeof *first);
    unsigned char *varies = gpux__calloc((size_t)n + 1, 1);
    if (!skel || !first || !varies) {
      free(skel);
      free(first);
      free(varies);
      return GPUX_E_NOMEM;
    }
    memcpy(skel, r->skel, skel_len + 1);
    memcpy(first, lits, (size_t)n * sizeof *first);
    r->e[r->n] = (skel_entry){h, skel, skel_len, n, first, varies, NULL, NULL, 0};
    if ((rc = index_entry(r, r->n))) {
      free(skel);
      free(first);
      free(varies);
      return rc;
    }
    e = &r->e[r->n++];
    return literal_pipe(d, e, wgsl, label, out);
  }
  int grew = 0, differs = 0;
  for (int k = 0; k < n; k++)
    if (lits[k] != e->lits[k]) {
      differs = 1;
      if (!e->varies[k]) e->varies[k] = 1, grew = 1;
    }
  if (!differs && !e->param_pipe) return literal_pipe(d, e, wgsl, label, out);
  if (e->failed) return gpux__wg_pipeline_start(d, wgsl, label, out);
  if (grew || !e->param_pipe) {
    wg_str s = {0};
    wg_pipeline *pp = NULL;
    if ((rc = param_text(e, binding, &s)) == 0) rc = gpux__wg_pipeline_start(d, s.s, label, &pp);
    gpux__wg_str_free(&s);
    if (rc == GPUX_E_NOMEM) return rc;
    if (rc) { /* a literal where WGSL wants a constant: this skeleton keeps its literals */
      if (getenv("GPUX_WEBGPU_VERBOSE"))
        gpux__log(GPUX_LOG_DEBUG, "webgpu: '%s' keeps its sizes as literals: %s", label ? label : "?", gpux_last_error());
      e->failed = 1;
      return differs ? gpux__wg_pipeline_start(d, wgsl, label, out) : literal_pipe(d, e, wgsl, label, out);
    }
    e->param_pipe = pp;
  }
  int np = 0;
  for (int k = 0; k < n; k++) np += e->varies[k];
  uint32_t *vals = gpux__malloc(((size_t)np + 3) / 4 * 16);
  if (!vals) return GPUX_E_NOMEM;
  memset(vals, 0, ((size_t)np + 3) / 4 * 16);
  for (int k = 0, q = 0; k < n; k++)
    if (e->varies[k]) vals[q++] = lits[k];
  *out = e->param_pipe;
  *params = vals;
  *n_params = np;
  return 0;
}
