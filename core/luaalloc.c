/* luaalloc.c - a size-class pool allocator for subtask VMs (luaalloc.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mremap */
#endif
#include "luaalloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__GNUC__) || defined(__clang__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

#define GRAIN 16u                    /* block sizes are multiples of this */
#define NCLASS 16u                   /* classes 16, 32, ..., 256 bytes */
#define MAX_SMALL (GRAIN * NCLASS)   /* larger blocks go to realloc(3) */
#define CHUNK (256u * 1024u)         /* bytes carved into blocks at a time */
#define BIG (1u << 20)               /* blocks of this many bytes and more
                                        are mappings of their own */

typedef struct chunk {
  struct chunk *next;
} chunk_t;

struct td_lua_pool {
  void *free[NCLASS];  /* per class: freed blocks, linked through their
                          first word */
  char *bump, *end;    /* the rest of the newest chunk */
  chunk_t *chunks;     /* every chunk, to free them at the end */
};

static inline unsigned class_of(size_t n) { return (unsigned)((n + GRAIN - 1) / GRAIN) - 1; }

static void *take(td_lua_pool_t *p, unsigned c) {
  void *b = p->free[c];
  if (b) {
    p->free[c] = *(void **)b;
    return b;
  }
  size_t size = (size_t)(c + 1) * GRAIN;
  if ((size_t)(p->end - p->bump) < size) {
    /* the rest of the old chunk is too small for this class: it goes to
     * the free list of the largest class that fits, not lost */
    size_t rest = (size_t)(p->end - p->bump);
    if (rest >= GRAIN) {
      unsigned rc = (unsigned)(rest / GRAIN) - 1;
      *(void **)p->bump = p->free[rc];
      p->free[rc] = p->bump;
    }
    chunk_t *ch = malloc(CHUNK);
    if (!ch) return NULL;
    ch->next = p->chunks;
    p->chunks = ch;
    /* blocks start GRAIN-aligned after the header */
    p->bump = (char *)ch + GRAIN;
    p->end = (char *)ch + CHUNK;
  }
  b = p->bump;
  p->bump += size;
  return b;
}

static inline void give(td_lua_pool_t *p, void *b, size_t size) {
  unsigned c = class_of(size);
  *(void **)b = p->free[c];
  p->free[c] = b;
}

/* Big blocks (the arrays and hash parts of large tables: a restored
 * state's, a snapshot's decoded key groups) are anonymous mappings that ask
 * for transparent huge pages: filling 1M keys otherwise takes ~30K page
 * faults, and a fault costs microseconds on virtual machines. They grow by
 * mremap (page tables move, bytes are not copied). A fork's copy-on-write
 * of a huge page copies only the 4 KiB page written (Linux >= 5.8). */
static size_t map_len(size_t n) { return (n + 4095u) & ~(size_t)4095u; }

static void *big_new(size_t n) {
  void *m = mmap(NULL, map_len(n), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
  madvise(m, map_len(n), MADV_HUGEPAGE);
#endif
  return m;
}

/* a block of osize bytes (ptr not NULL) freed, whichever kind it is */
static void release(td_lua_pool_t *p, void *ptr, size_t osize) {
  if (osize >= BIG) munmap(ptr, map_len(osize));
  else if (osize <= MAX_SMALL) give(p, ptr, osize);
  else free(ptr);
}

/* Every case: growing, shrinking, large blocks, empty free lists. */
static NOINLINE void *alloc_slow(td_lua_pool_t *p, void *ptr, size_t osize, size_t nsize) {
  if (ptr == NULL) osize = 0; /* osize is then the object's type */
  if (nsize == 0) {
    if (ptr) release(p, ptr, osize);
    return NULL;
  }
  if (nsize >= BIG || osize >= BIG) {
    if (osize >= BIG && nsize >= BIG) {
      void *m = mremap(ptr, map_len(osize), map_len(nsize), MREMAP_MAYMOVE);
      return m == MAP_FAILED ? NULL : m;
    }
    void *q = nsize >= BIG ? big_new(nsize) : nsize <= MAX_SMALL ? take(p, class_of(nsize)) : malloc(nsize);
    if (!q) return NULL;
    if (ptr) {
      memcpy(q, ptr, osize < nsize ? osize : nsize);
      release(p, ptr, osize);
    }
    return q;
  }
  if (nsize <= MAX_SMALL) {
    if (ptr && osize <= MAX_SMALL && class_of(osize) == class_of(nsize)) return ptr;
    void *q = take(p, class_of(nsize));
    if (!q) return NULL;
    if (ptr) {
      memcpy(q, ptr, osize < nsize ? osize : nsize);
      release(p, ptr, osize);
    }
    return q;
  }
  if (ptr && osize > MAX_SMALL) return realloc(ptr, nsize);
  void *q = malloc(nsize);
  if (!q) return NULL;
  if (ptr) {
    memcpy(q, ptr, osize);
    give(p, ptr, osize);
  }
  return q;
}

/* The cases of nearly every call inline, with no call and so no saved
 * registers: a small block from a non-empty free list, a small block
 * freed, the null frees Lua makes for empty array parts. */
void *td_lua_pool_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  td_lua_pool_t *p = ud;
  if (ptr == NULL) {
    if (nsize - 1 < MAX_SMALL) { /* 1 .. MAX_SMALL bytes */
      unsigned c = class_of(nsize);
      void *b = p->free[c];
      if (b) {
        p->free[c] = *(void **)b;
        return b;
      }
    } else if (nsize == 0) {
      return NULL;
    }
  } else if (nsize == 0 && osize <= MAX_SMALL) {
    give(p, ptr, osize);
    return NULL;
  }
  return alloc_slow(p, ptr, osize, nsize);
}

td_lua_pool_t *td_lua_pool_new(void) { return calloc(1, sizeof(td_lua_pool_t)); }

void td_lua_pool_free(td_lua_pool_t *p) {
  if (!p) return;
  for (chunk_t *c = p->chunks, *next; c; c = next) {
    next = c->next;
    free(c);
  }
  free(p);
}
