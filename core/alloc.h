/*
 * alloc.h - the allocator behind the core's byte buffers (td_wbuf_t, the
 * snapshot writer and reader), and an arena for forked snapshot children.
 *
 * A checkpoint's asynchronous part runs in a child process forked by the
 * task thread (copy-on-write pages are the consistent copy of the state;
 * see checkpoint.h). After fork() in a multithreaded process only the
 * forking thread exists in the child, and a lock another thread held at
 * that moment stays locked forever: the sanitizers' allocators (and, per
 * POSIX, malloc itself) may deadlock. So the child never calls malloc: it
 * switches these hooks and its Lua VM (lua_setallocf) to an arena of
 * mmap'ed chunks that is never freed (the child exits when done).
 */
#ifndef TD_ALLOC_H
#define TD_ALLOC_H

#include <stddef.h>

/* td_realloc / td_free - realloc(3) and free(3), or the arena once
 * td_alloc_use_arena() was called. td_free of a block the arena does not
 * own (allocated before the switch) does nothing. */
void *td_realloc(void *p, size_t n);
void td_free(void *p);
static inline void *td_malloc(size_t n) { return td_realloc(NULL, n); }

/*
 * td_alloc_use_arena - from now on, td_realloc/td_free use a fresh arena
 * (process-wide; call it only in a single-threaded process, i.e. a forked
 * child). Never fails by itself; an arena allocation returns NULL when
 * mmap does.
 */
void td_alloc_use_arena(void);

/* td_alloc_in_arena - 1 after td_alloc_use_arena() (in a snapshot child,
 * where only async-signal-safe calls are safe besides the arena), else 0. */
int td_alloc_in_arena(void);

/*
 * td_arena_lua_alloc - a lua_Alloc over the arena (ud ignored): frees are
 * no-ops, a reallocation copies min(osize, nsize) bytes into a new block.
 * Only valid after td_alloc_use_arena().
 */
void *td_arena_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

#endif
