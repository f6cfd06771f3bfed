/*
 * wbuf.h - a growable byte buffer, the unit records are encoded into
 * (exchange buffers, state files, scratch space).
 */
#ifndef TD_WBUF_H
#define TD_WBUF_H

#include <stddef.h>

/* A growable byte buffer. Owned by the caller: zero it, then
 * td_wbuf_destroy() it when done. */
typedef struct td_wbuf {
  char *data;
  size_t len;
  size_t cap;
} td_wbuf_t;

/* td_wbuf_reserve - make room for `extra` more bytes after len (capacity
 * doubles, from 256 bytes; memory from td_realloc, so a snapshot child's
 * arena serves it, see alloc.h). Returns 0 or TD_ENOMEM. */
int td_wbuf_reserve(td_wbuf_t *b, size_t extra);

/* td_wbuf_destroy - free the buffer's memory and zero it. */
void td_wbuf_destroy(td_wbuf_t *b);

#endif
