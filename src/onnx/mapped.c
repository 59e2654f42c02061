/* mapped.c — the memory behind a model's weights: letting go of mapped file pages nobody needs
 * in memory now (the data was copied, or a kernel holds it in its own layout), and how many bytes
 * of the model's files and copies are resident, for gpux_session_memory.
 *
 * The model and its external data files are mapped private and read-only, so a page given back
 * with MADV_DONTNEED is read again from the file (the page cache, usually) on its next access:
 * letting go is always safe, at worst a page fault later. Memory that is not a file mapping (a
 * model loaded from a buffer) is never given back. Linux reports what is resident in
 * /proc/self/smaps; elsewhere the count is 0. */
#include "onnx/onnx.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void *gpux__model_map(int fd, size_t size) {
  void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
#ifdef MADV_NOHUGEPAGE
  /* Where the page cache holds the file in large folios (ext4 and xfs on recent kernels), a fault
   * on one small weight maps its whole 2 MB folio, and a run that reads the biases and norms
   * scattered through a model keeps most of the file resident next to the packed copies of the
   * rest (BERT-base: 102 MB more). In small pages a run maps only what it reads. */
  if (p != MAP_FAILED) madvise(p, size, MADV_NOHUGEPAGE);
#endif
  return p;
}

/* Whether [p, p + n) lies inside one of the model's file mappings. */
static int in_mapping(const gpux_model *m, const char *p, size_t n) {
  if (m->map_size && p >= (const char *)m->map && n <= m->map_size &&
      (size_t)(p - (const char *)m->map) <= m->map_size - n)
    return 1;
  for (int i = 0; i < m->n_ext_maps; i++) {
    const char *b = m->ext_maps[i];
    if (b && p >= b && n <= m->ext_sizes[i] && (size_t)(p - b) <= m->ext_sizes[i] - n) return 1;
  }
  return 0;
}

size_t gpux__model_release(const gpux_model *m, const void *p, size_t n) {
#ifdef MADV_DONTNEED
  if (!m || !p || !n || !in_mapping(m, p, n)) return 0;
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  if (!page) return 0;
  /* whole pages only: a page shared with the data around it stays */
  uintptr_t lo = ((uintptr_t)p + page - 1) / page * page, hi = ((uintptr_t)p + n) / page * page;
  if (hi <= lo || madvise((void *)lo, hi - lo, MADV_DONTNEED)) return 0;
  return hi - lo;
#else
  (void)m, (void)p, (void)n;
  return 0;
#endif
}

/* The resident bytes (smaps' Rss) of the mappings that start in [base, base + size). */
static size_t resident(FILE *f, const char *base, size_t size) {
  size_t total = 0;
  int inside = 0;
  char line[512];
  rewind(f);
  while (fgets(line, sizeof line, f)) {
    unsigned long long lo, hi, kb;
    if (sscanf(line, "%llx-%llx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
      inside = (uintptr_t)lo >= (uintptr_t)base && (uintptr_t)lo < (uintptr_t)base + size;
    } else if (inside && sscanf(line, "Rss: %llu kB", &kb) == 1) {
      total += (size_t)kb * 1024;
    }
  }
  return total;
}

size_t gpux__model_mapped_resident(const gpux_model *m) {
  size_t total = 0;
  FILE *f = m ? fopen("/proc/self/smaps", "r") : NULL;
  if (!f) return 0;
  if (m->map_size) total += resident(f, m->map, m->map_size);
  for (int i = 0; i < m->n_ext_maps; i++)
    if (m->ext_maps[i]) total += resident(f, m->ext_maps[i], m->ext_sizes[i]);
  fclose(f);
  return total;
}

size_t gpux__model_copied_bytes(const gpux_model *m) {
  size_t total = 0;
  for (int i = 0; m && i < m->n_graphs; i++) {
    const gpux__graph *g = m->graphs[i];
    for (int v = 0; v < g->n_values; v++)
      if (g->values[v].is_const && g->values[v].init.owns_data && g->values[v].init.data)
        total += g->values[v].init.nbytes;
  }
  return total;
}
