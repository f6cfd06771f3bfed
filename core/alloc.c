/* alloc.c - libc allocation, or a bump arena in forked children (alloc.h). */
#include "alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define CHUNK (64u << 20) /* bytes per arena chunk (reserved, touched lazily) */

typedef struct chunk {
  struct chunk *prev;
  char *base, *next, *end;
} chunk_t;

static int g_arena;      /* 1 once td_alloc_use_arena() was called */
static chunk_t *g_chunk; /* the chunk being filled; older ones via prev */

static int owned(const void *p) {
  for (chunk_t *c = g_chunk; c; c = c->prev)
    if ((const char *)p >= c->base && (const char *)p < c->end) return 1;
  return 0;
}

/* n bytes, 16-aligned, preceded by their size (8 bytes, padded to 16). */
static void *arena_alloc(size_t n) {
  size_t need = ((n + 15) & ~(size_t)15) + 16;
  if (!g_chunk || (size_t)(g_chunk->end - g_chunk->next) < need) {
    size_t size = need + sizeof(chunk_t) + 16 > CHUNK ? need + sizeof(chunk_t) + 16 : CHUNK;
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    /* a snapshot's child touches hundreds of MB of fresh memory: 2 MB
     * pages take 512 times fewer page faults (where THP is madvise) */
    madvise(m, size, MADV_HUGEPAGE);
#endif
    chunk_t *c = m;
    c->prev = g_chunk;
    c->base = m;
    c->next = (char *)m + ((sizeof(chunk_t) + 15) & ~(size_t)15);
    c->end = (char *)m + size;
    g_chunk = c;
  }
  char *p = g_chunk->next;
  g_chunk->next += need;
  *(size_t *)p = n;
  return p + 16;
}

/* Where a chunk's first block starts. */
static char *first_block(chunk_t *c) { return c->base + ((sizeof(chunk_t) + 15) & ~(size_t)15); }

/* Grow arena block p (of old bytes) to n > old bytes where it stands, so
 * that nothing is copied: the last block of its chunk takes the chunk's
 * free room; the only block of its chunk (a block larger than CHUNK, e.g.
 * a snapshot's encoding buffer doubling) has its mapping enlarged by
 * mremap, which moves page tables, not bytes. Returns the block (it may
 * have moved), or NULL when p cannot grow so (the caller copies). */
static void *arena_grow(void *p, size_t old, size_t n) {
  char *h = (char *)p - 16;
  size_t old_need = ((old + 15) & ~(size_t)15) + 16;
  size_t need = ((n + 15) & ~(size_t)15) + 16;
  chunk_t *newer = NULL;
  for (chunk_t *c = g_chunk; c; newer = c, c = c->prev) {
    if (h < c->base || h >= c->end) continue;
    if (h + old_need != c->next) return NULL; /* blocks follow it */
    if ((size_t)(c->end - h) >= need) {
      c->next = h + need;
      *(size_t *)h = n;
      return p;
    }
    if (h != first_block(c)) return NULL;
    size_t head = (size_t)(h - c->base);
    size_t size = head + need;
    size_t was = (size_t)(c->end - c->base);
    void *m = mremap(c->base, was, size, MREMAP_MAYMOVE);
    if (m == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(m, size, MADV_HUGEPAGE);
#endif
    chunk_t *nc = m; /* the header moved with the mapping */
    nc->base = m;
    nc->end = (char *)m + size;
    nc->next = nc->end;
    if (newer) newer->prev = nc;
    else g_chunk = nc;
    h = (char *)m + head;
    *(size_t *)h = n;
    return h + 16;
  }
  return NULL;
}

void *td_realloc(void *p, size_t n) {
  if (!g_arena) return realloc(p, n);
  if (n == 0) return NULL;
  /* a block from before the switch has no size header, so its contents
   * could not be copied: refuse (callers in the child only grow buffers
   * they created there) */
  if (p && !owned(p)) return NULL;
  if (p) {
    size_t old = *(size_t *)((char *)p - 16);
    if (n <= old) return p;
    void *g = arena_grow(p, old, n);
    if (g) return g;
  }
  void *q = arena_alloc(n);
  if (q && p) {
    size_t old = *(size_t *)((char *)p - 16);
    memcpy(q, p, old < n ? old : n);
  }
  return q;
}

void td_free(void *p) {
  if (!g_arena) free(p);
}

void td_alloc_use_arena(void) { g_arena = 1; }

int td_alloc_in_arena(void) { return g_arena; }

void *td_arena_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (nsize == 0) return NULL;
  /* (a block from before the switch cannot grow in place: not the arena's) */
  if (ptr && nsize > osize && owned(ptr)) {
    void *g = arena_grow(ptr, *(size_t *)((char *)ptr - 16), nsize);
    if (g) return g;
  }
  void *q = arena_alloc(nsize);
  if (q && ptr) memcpy(q, ptr, osize < nsize ? osize : nsize);
  return q;
}
