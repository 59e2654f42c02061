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
 * expression) keeps the literal form for that skeleton, one pipeline per text as before. */
#include "backend/webgpu/wg.h"
#include <stdio.h>

typedef struct skel_entry {
  uint64_t hash;
  char *skel;                    /* the text, each literal replaced by "\x01" and its suffix */
  int n_lits;
  uint32_t *lits;                /* the values first seen (the constants of the parameterized form) */
  unsigned char *varies;         /* [n_lits] the literal was seen with another value: a parameter */
  wg_pipeline *param_pipe;       /* the form with parameters, NULL until a literal varied */
  int failed;                    /* the parameterized form did not compile: literals only */
} skel_entry;

struct wg_reuse {
  skel_entry *e;
  int n, cap;
};

static void reuse_free(wg_reuse *r) {
  if (!r) return;
  for (int i = 0; i < r->n; i++) {
    free(r->e[i].skel);
    free(r->e[i].lits);
    free(r->e[i].varies);
  }
  free(r->e);
  free(r);
}

static int ident_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
}

/* Splits wgsl into its skeleton (allocated) and its literals (allocated, *n of them). */
static int split(const char *wgsl, char **skel, uint32_t **lits, int *n) {
  size_t len = strlen(wgsl);
  char *s = gpux__malloc(len + 1);
  int cap = 16;
  uint32_t *v = gpux__malloc((size_t)cap * sizeof *v);
  if (!s || !v) {
    free(s);
    free(v);
    return GPUX_E_NOMEM;
  }
  size_t o = 0;
  int k = 0;
  for (size_t i = 0; i < len;) {
    if (!ident_char(wgsl[i]) || (i > 0 && ident_char(wgsl[i - 1]))) {
      s[o++] = wgsl[i++];
      continue;
    }
    size_t j = i;
    while (j < len && ident_char(wgsl[j])) j++;
    /* a token: a literal when it is decimal digits and one 'u' or 'i' (no leading zero but "0u") */
    size_t digits = 0;
    while (i + digits < j && wgsl[i + digits] >= '0' && wgsl[i + digits] <= '9') digits++;
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
    if (k == cap) {
      cap *= 2;
      uint32_t *nv = gpux__realloc(v, (size_t)cap * sizeof *nv);
      if (!nv) {
        free(s);
        free(v);
        return GPUX_E_NOMEM;
      }
      v = nv;
    }
    v[k++] = (uint32_t)val;
    s[o++] = '\x01';
    s[o++] = wgsl[j - 1];
    i = j;
  }
  s[o] = 0;
  *skel = s;
  *lits = v;
  *n = k;
  return 0;
}

static uint64_t hash_text(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
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
  char *skel;
  uint32_t *lits;
  int n, rc = split(wgsl, &skel, &lits, &n);
  if (rc) return rc;
  uint64_t h = hash_text(skel);
  skel_entry *e = NULL;
  for (int i = 0; i < r->n && !e; i++)
    if (r->e[i].hash == h && r->e[i].n_lits == n && !strcmp(r->e[i].skel, skel)) e = &r->e[i];
  if (!e) { /* first seen: compiled as written */
    if (r->n == r->cap) {
      int cap = r->cap ? r->cap * 2 : 64;
      skel_entry *ne = gpux__realloc(r->e, (size_t)cap * sizeof *ne);
      if (!ne) rc = GPUX_E_NOMEM;
      else r->e = ne, r->cap = cap;
    }
    unsigned char *varies = rc ? NULL : gpux__calloc((size_t)n + 1, 1);
    if (!varies) {
      free(skel);
      free(lits);
      return GPUX_E_NOMEM;
    }
    r->e[r->n++] = (skel_entry){h, skel, n, lits, varies, NULL, 0};
    return gpux__wg_pipeline_start(d, wgsl, label, out);
  }
  free(skel);
  int grew = 0, differs = 0;
  for (int k = 0; k < n; k++)
    if (lits[k] != e->lits[k]) {
      differs = 1;
      if (!e->varies[k]) e->varies[k] = 1, grew = 1;
    }
  if (e->failed || (!differs && !e->param_pipe)) {
    free(lits);
    return gpux__wg_pipeline_start(d, wgsl, label, out);
  }
  if (grew || !e->param_pipe) {
    wg_str s = {0};
    wg_pipeline *pp = NULL;
    if ((rc = param_text(e, binding, &s)) == 0) rc = gpux__wg_pipeline_start(d, s.s, label, &pp);
    gpux__wg_str_free(&s);
    if (rc == GPUX_E_NOMEM) {
      free(lits);
      return rc;
    }
    if (rc) { /* a literal where WGSL wants a constant: this skeleton keeps its literals */
      if (getenv("GPUX_WEBGPU_VERBOSE"))
        gpux__log(GPUX_LOG_DEBUG, "webgpu: '%s' keeps its sizes as literals: %s", label ? label : "?", gpux_last_error());
      e->failed = 1;
      free(lits);
      return gpux__wg_pipeline_start(d, wgsl, label, out);
    }
    e->param_pipe = pp;
  }
  int np = 0;
  for (int k = 0; k < n; k++) np += e->varies[k];
  uint32_t *vals = gpux__malloc(((size_t)np + 3) / 4 * 16);
  if (!vals) {
    free(lits);
    return GPUX_E_NOMEM;
  }
  memset(vals, 0, ((size_t)np + 3) / 4 * 16);
  for (int k = 0, q = 0; k < n; k++)
    if (e->varies[k]) vals[q++] = lits[k];
  free(lits);
  *out = e->param_pipe;
  *params = vals;
  *n_params = np;
  return 0;
}
