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

void *td_realloc(void *p, size_t n) {
  if (!g_arena) return realloc(p, n);
  if (n == 0) return NULL;
  /* a block from before the switch has no size header, so its contents
   * could not be copied: refuse (callers in the child only grow buffers
   * they created there) */
  if (p && !owned(p)) return NULL;
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
  void *q = arena_alloc(nsize);
  if (q && ptr) memcpy(q, ptr, osize < nsize ? osize : nsize);
  return q;
}
