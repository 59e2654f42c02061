/* alloc.c — checked allocation (failures become GPUX_E_NOMEM messages instead of crashes), large
 * blocks on transparent huge pages, the
 * arena that holds a model's IR (many small allocations released together), and byte counts
 * written for people. */
#include "core/internal.h"
#include <stdatomic.h>
#include <stdio.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

void *gpux__malloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) gpux__error(GPUX_E_NOMEM, "out of memory allocating %zu bytes", n);
  return p;
}

void *gpux__calloc(size_t count, size_t size) {
  void *p = calloc(count ? count : 1, size ? size : 1);
  if (!p) gpux__error(GPUX_E_NOMEM, "out of memory allocating %zu x %zu bytes", count, size);
  return p;
}

void *gpux__realloc(void *old, size_t n) {
  void *p = realloc(old, n ? n : 1);
  if (!p) gpux__error(GPUX_E_NOMEM, "out of memory allocating %zu bytes", n);
  return p;
}

#define HUGE_PAGE ((uintptr_t)2 << 20)

static atomic_size_t large_bytes; /* mapped by gpux__alloc_large or _mapped and not yet freed */

size_t gpux__large_bytes(void) { return atomic_load_explicit(&large_bytes, memory_order_relaxed); }

/* GPUX_HUGEPAGES=0 in the environment: large blocks as any others, for comparisons */
static int large_off(void) {
  static int off = -1;
  if (off < 0) off = getenv("GPUX_HUGEPAGES") && !strcmp(getenv("GPUX_HUGEPAGES"), "0");
  return off;
}

/* A block like gpux__malloc's (freed with free(), as a tensor's data is) whose whole 2 MiB pages
 * inside are marked for transparent huge pages when it is large, so that filling it (a model's
 * weight copied out of its file) takes a page fault per 2 MiB instead of one per 4 KiB. Unlike
 * gpux__alloc_large's, the block is the heap's: its ends share pages with other blocks. */
void *gpux__malloc_large(size_t n) {
  void *p = gpux__malloc(n);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (p && n >= 2 * HUGE_PAGE && !large_off()) {
    uintptr_t lo = ((uintptr_t)p + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1), hi = ((uintptr_t)p + n) & ~(HUGE_PAGE - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_HUGEPAGE); /* a hint: without it, small pages */
  }
#endif
  return p;
}

/* A mapping of its own for n bytes rounded up to `unit` (2 MiB: whole huge pages; 4 KiB: the
 * last 2 MiB page partly, in small pages), starting on a 2 MiB boundary, its whole 2 MiB pages
 * marked for transparent huge pages; NULL where the heap's block is to be taken instead. */
static void *map_large(size_t n, size_t unit, int *failed) {
  *failed = 0;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (n >= HUGE_PAGE && !large_off()) {
    size_t cap = (n + unit - 1) & ~(unit - 1);
    unsigned char *m = mmap(NULL, cap + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      *failed = 1;
      gpux__error(GPUX_E_NOMEM, "out of memory allocating %zu bytes", n);
      return NULL;
    }
    size_t lead = (HUGE_PAGE - (uintptr_t)m % HUGE_PAGE) % HUGE_PAGE;
    if (lead) munmap(m, lead);
    if (HUGE_PAGE - lead) munmap(m + lead + cap, HUGE_PAGE - lead);
    /* advice only: without huge pages it works the same */
    madvise(m + lead, cap & ~(HUGE_PAGE - 1), MADV_HUGEPAGE);
    atomic_fetch_add_explicit(&large_bytes, cap, memory_order_relaxed);
    return m + lead;
  }
#else
  (void)n, (void)unit;
#endif
  return NULL;
}

static void *heap_aligned(size_t n) {
  void *p = aligned_alloc(64, (GPUX__MAX(n, 64) + 63) & ~(size_t)63);
  if (!p) gpux__error(GPUX_E_NOMEM, "out of memory allocating %zu bytes", n);
  return p;
}

static void unmap_large(void *p, size_t n, size_t unit) {
  if (!p) return;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (n >= HUGE_PAGE && !large_off()) {
    size_t cap = (n + unit - 1) & ~(unit - 1);
    munmap(p, cap);
    atomic_fetch_sub_explicit(&large_bytes, cap, memory_order_relaxed);
    return;
  }
#else
  (void)n, (void)unit;
#endif
  free(p);
}

/* whole huge pages of their own mapping (a 2 MiB-aligned run cut out of a larger one), not the
 * heap's, so freeing one gives its memory back at once */
void *gpux__alloc_large(size_t n) {
  int failed;
  void *p = map_large(n, HUGE_PAGE, &failed);
  return p || failed ? p : heap_aligned(n);
}

void gpux__free_large(void *p, size_t n) { unmap_large(p, n, HUGE_PAGE); }

/* the system's page (4 KiB on x86-64) */
static size_t small_page(void) {
  long v = sysconf(_SC_PAGESIZE);
  return v > 0 ? (size_t)v : 4096;
}

void *gpux__alloc_mapped(size_t n) {
  int failed;
  void *p = map_large(n, small_page(), &failed);
  return p || failed ? p : heap_aligned(n);
}

void gpux__free_mapped(void *p, size_t n) { unmap_large(p, n, small_page()); }

char *gpux__strndup(const char *s, size_t n) {
  char *p = gpux__malloc(n + 1);
  if (!p) return NULL;
  if (n) memcpy(p, s, n); /* s may be NULL when n is 0 */
  p[n] = 0;
  return p;
}

char *gpux__strdup(const char *s) { return gpux__strndup(s, strlen(s)); }

struct gpux__arena_block {
  gpux__arena_block *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
};

void *gpux__arena_alloc(gpux__arena *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  gpux__arena_block *b = a->head;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > 60000 ? n : 64 * 1024 - sizeof *b;
    b = gpux__calloc(1, sizeof *b + cap);
    if (!b) return NULL;
    b->cap = cap;
    b->next = a->head;
    a->head = b;
  }
  void *p = b->data + b->used;
  b->used += n;
  return p;
}

char *gpux__arena_strndup(gpux__arena *a, const char *s, size_t n) {
  char *p = gpux__arena_alloc(a, n + 1);
  if (!p) return NULL;
  if (n) memcpy(p, s, n); /* s may be NULL when n is 0 */
  p[n] = 0;
  return p;
}

void gpux__arena_free(gpux__arena *a) {
  for (gpux__arena_block *b = a->head, *next; b; b = next) {
    next = b->next;
    free(b);
  }
  a->head = NULL;
}

const char *gpux__format_bytes(char buf[32], uint64_t n) {
  static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
  if (n < 1024) {
    snprintf(buf, 32, "%llu bytes", (unsigned long long)n);
    return buf;
  }
  double x = (double)n;
  int u = -1;
  while (x >= 1024 && u < 3) x /= 1024, u++;
  if (x == (double)(uint64_t)x) snprintf(buf, 32, "%llu %s", (unsigned long long)x, units[u]);
  else snprintf(buf, 32, "%.1f %s", x, units[u]);
  return buf;
}
