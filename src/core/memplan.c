/* memplan.c — greedy offset assignment for blocks with lifetimes (see memplan.h): blocks in
 * decreasing size, each put at the lowest aligned offset that fits between the blocks already
 * placed and alive at the same time. Largest-first keeps the big activations packed at the
 * bottom and lets small ones fill the gaps between them. */
#include "core/memplan.h"

typedef struct {
  size_t off, end;
} span;

static int cmp_span(const void *a, const void *b) {
  const span *x = a, *y = b;
  return (x->off > y->off) - (x->off < y->off);
}

typedef struct {
  size_t size;
  int first, idx;
} item;

static int cmp_size_desc(const void *a, const void *b) {
  const item *x = a, *y = b;
  if (x->size != y->size) return x->size < y->size ? 1 : -1;
  if (x->first != y->first) return x->first < y->first ? -1 : 1;
  return x->idx - y->idx; /* the same plan every time */
}

size_t gpux__memplan(gpux__memblock *blocks, int n, size_t align) {
  item *order = gpux__calloc((size_t)n + 1, sizeof *order);
  int *placed = gpux__calloc((size_t)n + 1, sizeof *placed);
  span *busy = gpux__calloc((size_t)n + 1, sizeof *busy);
  if (!order || !placed || !busy) {
    free(order), free(placed), free(busy);
    return SIZE_MAX;
  }
  int m = 0;
  for (int i = 0; i < n; i++)
    if (blocks[i].size) order[m++] = (item){blocks[i].size, blocks[i].first, i};
  qsort(order, (size_t)m, sizeof *order, cmp_size_desc);
  size_t total = 0;
  int n_placed = 0;
  for (int i = 0; i < m; i++) {
    gpux__memblock *b = &blocks[order[i].idx];
    size_t need = (b->size + align - 1) & ~(align - 1);
    int nb = 0;
    for (int q = 0; q < n_placed; q++) { /* placed blocks alive at the same time */
      const gpux__memblock *o = &blocks[placed[q]];
      if (o->last < b->first || o->first > b->last) continue;
      busy[nb++] = (span){o->off, o->off + ((o->size + align - 1) & ~(align - 1))};
    }
    qsort(busy, (size_t)nb, sizeof *busy, cmp_span);
    size_t off = 0;
    for (int q = 0; q < nb && busy[q].off < off + need; q++)
      if (busy[q].end > off) off = busy[q].end;
    b->off = off;
    if (off + need > total) total = off + need;
    placed[n_placed++] = order[i].idx;
  }
  free(order);
  free(placed);
  free(busy);
  return total;
}
