/* warm.c — a session's pipelines started before its first run. The WGSL texts a graph's plans
 * needed are kept as a note in the pipeline cache's folder (`<graph key>.pipelines`: the texts one
 * after another, each ended by a NUL byte), keyed by the graph's structure and the precision; the
 * next process that prepares a session for the same graph starts them all (gpux__wg_pipeline_start:
 * Dawn makes them on its worker threads, from the blob cache), so they are made while the program
 * reads its input and the first run plans, uploads the weights and makes buffers, instead of one
 * by one inside the first run. The note holds what the last process's session needed (its first
 * plan replaces the note, its next few add to it): the shapes a program runs now are the likeliest
 * next time. It is a hint: a text no plan asks for again only costs its compile, and a plan never
 * depends on it. */
#include "backend/webgpu/wg.h"
#include <stdio.h>

#define NOTE_MAX ((size_t)16 << 20) /* bytes of WGSL a note keeps */

static uint64_t mix(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

static uint64_t mix_str(uint64_t h, const char *s) { return mix(h, s ? s : "", (s ? strlen(s) : 0) + 1); }

/* The graph as its plans' WGSL depends on it, without reading the weights: the nodes (op, domain,
 * opset, the values they read and write), the inputs' declared shapes, the initializers' types and
 * shapes, and the precision. */
static void note_name(const gpux__graph *g, int half, char *out, size_t len) {
  uint64_t h = 1469598103934665603ull;
  h = mix(h, &half, sizeof half);
  h = mix(h, &g->n_nodes, sizeof g->n_nodes);
  for (int i = 0; i < g->n_nodes; i++) {
    const gpux__node *n = &g->nodes[i];
    h = mix_str(h, n->op_type);
    h = mix_str(h, n->domain);
    h = mix(h, &n->opset, sizeof n->opset);
    for (int k = 0; k < n->n_in; k++) h = mix_str(h, n->in[k] >= 0 ? g->values[n->in[k]].name : "");
    for (int k = 0; k < n->n_out; k++) h = mix_str(h, n->out[k] >= 0 ? g->values[n->out[k]].name : "");
  }
  for (int v = 0; v < g->n_values; v++) {
    const gpux__value *gv = &g->values[v];
    if (gv->is_const) {
      h = mix_str(h, gv->name);
      h = mix(h, &gv->init.dtype, sizeof gv->init.dtype);
      h = mix(h, gv->init.dims, sizeof gv->init.dims[0] * (size_t)(gv->init.ndim > 0 ? gv->init.ndim : 0));
    } else if (gv->is_graph_input && gv->has_info) {
      h = mix_str(h, gv->name);
      h = mix(h, gv->info.dims, sizeof gv->info.dims[0] * (size_t)(gv->info.ndim > 0 ? gv->info.ndim : 0));
    }
  }
  snprintf(out, len, "%016llx.pipelines", (unsigned long long)h);
}

void gpux__wg_warm_start(wg_device *d, const gpux__graph *g, int half) {
  if (!d->cache || !g) return;
  char name[64];
  note_name(g, half, name, sizeof name);
  char *data;
  size_t size;
  if (gpux__wg_cache_note_read(d->cache, name, &data, &size)) return;
  int started = 0, failed = 0;
  for (size_t at = 0; at < size;) {
    const char *text = data + at;
    size_t n = strnlen(text, size - at);
    if (at + n >= size) break; /* a text without its NUL: the note was cut */
    wg_pipeline *p;
    if (gpux__wg_pipeline_start(d, text, "gpux warm-up", &p)) failed++;
    else started++;
    at += n + 1;
  }
  free(data);
  if (getenv("GPUX_WEBGPU_VERBOSE"))
    gpux__log(GPUX_LOG_DEBUG, "webgpu: started %d pipelines an earlier process's plans of this graph needed (%s)%s",
              started, name, failed ? ", some of them did not compile" : "");
}

void gpux__wg_warm_note(wg_device *d, const gpux__graph *g, int half, int fresh, wg_pipeline *const *pipes, int n) {
  if (!d->cache || !g || n <= 0) return;
  char name[64];
  note_name(g, half, name, sizeof name);
  char *old = NULL;
  size_t old_size = 0;
  if (!fresh) gpux__wg_cache_note_read(d->cache, name, &old, &old_size);
  wg_str out = {0};
  if (old) {
    out.s = old; /* the note as it was, then the texts it lacks */
    out.len = old_size;
    out.cap = old_size + 1;
  }
  int added = 0;
  for (int i = 0; i < n; i++) {
    const char *w = pipes[i]->wgsl;
    size_t wl = strlen(w) + 1;
    if (out.len + wl > NOTE_MAX) break;
    int seen = 0;
    for (size_t at = 0; at < out.len && !seen;) { /* texts are a few kB, notes a few hundred */
      size_t tl = strnlen(out.s + at, out.len - at) + 1;
      seen = tl == wl && !memcmp(out.s + at, w, wl);
      at += tl;
    }
    for (int k = 0; k < i && !seen; k++) seen = pipes[k] == pipes[i];
    if (seen) continue;
    gpux__wg_cat(&out, "%s", w);
    gpux__wg_cat(&out, "%c", 0);
    added++;
  }
  if ((added || fresh) && !out.oom) gpux__wg_cache_note_write(d->cache, name, out.s, out.len);
  gpux__wg_str_free(&out);
}
