/*
 * msgpack.h - MessagePack (https://msgpack.org/) without a Lua VM: reading
 * item by item, skipping whole values, and writing into a td_wbuf.
 *
 * Records cross task boundaries as MessagePack (codec.h encodes and
 * decodes Lua values); the task engine, C modules and tests read and write
 * the same bytes through these functions. Formats as the codec writes
 * them: integers in the smallest int format, floats as float64, strings as
 * str (bin accepted on read), arrays and maps with the smallest header.
 *
 * Reading never goes past `end` and rejects what the codec rejects: the
 * unused byte 0xc1, truncated items. uint64 values above INT64_MAX read as
 * floats (the codec's rule). ext items are read (type and bytes), since
 * exchange buffers carry in-band entries as ext items (inband.h).
 *
 * Thread safety: none needed; no state.
 */
#ifndef TD_MSGPACK_H
#define TD_MSGPACK_H

#include <stddef.h>
#include <stdint.h>

#include "wbuf.h"

typedef enum {
  TD_MP_NIL = 0,
  TD_MP_BOOL,
  TD_MP_INT,    /* v.i */
  TD_MP_FLOAT,  /* v.f (float32 widened, uint64 > INT64_MAX converted) */
  TD_MP_STR,    /* v.s (str or bin) */
  TD_MP_ARRAY,  /* v.n items follow */
  TD_MP_MAP,    /* v.n key/value pairs follow */
  TD_MP_EXT     /* v.ext */
} td_mp_type_t;

typedef struct td_mp_item {
  td_mp_type_t type;
  union {
    int b;
    int64_t i;
    double f;
    struct {
      const char *p;
      uint32_t len;
    } s;
    uint32_t n;
    struct {
      int8_t type;
      const char *p;
      uint32_t len;
    } ext;
  } v;
} td_mp_item_t;

/*
 * td_mp_read - read one item at *p (p < end): a scalar whole (a string's
 * bytes are borrowed from the input), a container's header only (its
 * items follow). *p advances past what was read.
 * Returns 0, or TD_ECORRUPT (truncated, 0xc1, p >= end) with *p unchanged.
 */
int td_mp_read(const char **p, const char *end, td_mp_item_t *out);

/*
 * td_mp_skip - skip one whole value at *p (a container with everything in
 * it), iteratively (no depth limit, no recursion). Returns 0, or
 * TD_ECORRUPT with *p unchanged.
 */
int td_mp_skip(const char **p, const char *end);

/*
 * td_mp_map_get - in the map value at p (< end), find the entry whose key
 * is the string `key` (klen bytes); *value points at its value. Returns 1
 * found, 0 not found (or p is not a map), TD_ECORRUPT.
 */
int td_mp_map_get(const char *p, const char *end, const char *key, size_t klen,
                  const char **value);

/* Writers: append one item to b. Each returns 0 or TD_ENOMEM. Containers:
 * write the header with the count, then the items. */
int td_mp_write_nil(td_wbuf_t *b);
int td_mp_write_bool(td_wbuf_t *b, int v);
int td_mp_write_int(td_wbuf_t *b, int64_t v);
int td_mp_write_float(td_wbuf_t *b, double v);
int td_mp_write_str(td_wbuf_t *b, const char *s, size_t len);
int td_mp_write_array(td_wbuf_t *b, uint32_t n);
int td_mp_write_map(td_wbuf_t *b, uint32_t n);
/* td_mp_write_raw - append len bytes that already hold encoded values. */
int td_mp_write_raw(td_wbuf_t *b, const void *bytes, size_t len);

#endif
