/*
 * luaalloc.h - the allocator of a subtask's Lua VM: free lists of small
 * blocks by size class, carved from 256 KiB chunks.
 *
 * A subtask's VM is used by one thread only, and most of what Lua allocates
 * is small and short-lived (a record's table and its hash part, strings,
 * per-batch arrays), so malloc's general machinery (arenas, bins,
 * consolidation) is most of the cost of a record: about a fifth of the CPU
 * time of the window benchmarks went to _int_malloc/_int_free. Here a block
 * of up to 256 bytes is taken from or returned to its class's free list
 * (sizes rounded up to 16 bytes) with no lock and no search; larger blocks
 * go to realloc(3)/free(3). Memory of freed small blocks is kept for reuse
 * by the same VM and returned when the VM is closed (td_lua_pool_free), as
 * the VM's own garbage collector bounds the live set.
 *
 * Builds with AddressSanitizer keep Lua on malloc (see host.c), so the
 * sanitizer still sees every block.
 */
#ifndef TD_LUAALLOC_H
#define TD_LUAALLOC_H

#include <stddef.h>

typedef struct td_lua_pool td_lua_pool_t;

/* td_lua_pool_new - an empty pool, or NULL when out of memory. */
td_lua_pool_t *td_lua_pool_new(void);

/* td_lua_pool_alloc - a lua_Alloc over the pool given as ud (Lua 5.4's
 * contract: nsize 0 frees and returns NULL; osize is the block's size when
 * ptr is not NULL). Returns NULL when out of memory. */
void *td_lua_pool_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* td_lua_pool_free - release every chunk (after lua_close of the VM that
 * used the pool). NULL is a no-op. */
void td_lua_pool_free(td_lua_pool_t *p);

#endif
