/* wbuf.c - growable byte buffers (see wbuf.h). */
#include "wbuf.h"

#include <stdint.h>

#include "alloc.h"
#include "error.h"

#define WBUF_MIN_CAP 256

int td_wbuf_reserve(td_wbuf_t *b, size_t extra) {
  if (b->cap - b->len >= extra) return 0;
  size_t need = b->len + extra;
  if (need < b->len) return TD_ENOMEM; /* overflow */
  size_t cap = b->cap ? b->cap : WBUF_MIN_CAP;
  while (cap < need) {
    if (cap > SIZE_MAX / 2) {
      cap = need;
      break;
    }
    cap *= 2;
  }
  char *d = td_realloc(b->data, cap);
  if (!d) return TD_ENOMEM;
  b->data = d;
  b->cap = cap;
  return 0;
}

void td_wbuf_destroy(td_wbuf_t *b) {
  td_free(b->data);
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}
