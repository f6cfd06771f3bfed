/*
 * msgpack.h - MessagePack (https://msgpack.org/) without a Lua VM: reading
 * item by item, skipping whole values, and writing into a td_wbuf.
 *
 * Records cross task boundaries as MessagePack (codec.h encodes and
 * decodes Lua values); the task engine, C modules and tests read and write
 * the same bytes. The readers (td_mp_read, td_mp_skip, td_mp_map_get) and
 * the encoders they share with the writers below (td_mp_enc_*) are in the
 * public header tide.h, inline, so that a module gets them without linking
 * anything. Formats as the codec writes them: integers in the smallest int
 * format, floats as float64, strings as str (bin accepted on read), arrays
 * and maps with the smallest header.
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

#include "tide.h"
#include "wbuf.h"

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

/* The deepest nesting td_mp_canonical follows (the codec's limit). */
#define TD_MP_MAX_DEPTH 64

/*
 * td_mp_canonical - append to out the canonical encoding of the value at
 * *p (< end), the bytes Tide hashes for key groups: what the Lua codec's
 * canonical encoding (codec.h) writes for the value the record decodes
 * to. Integers in their smallest form; floats holding an integral value
 * in int64 range as integers, every NaN as 7ff8000000000000, other floats
 * as float64; bin as str; map entries sorted by encoded key bytes, then
 * value bytes. *p advances past the value.
 * Returns 0, TD_ECORRUPT (malformed, an ext item, deeper than
 * TD_MP_MAX_DEPTH: *p unchanged, out as it was) or TD_ENOMEM.
 */
int td_mp_canonical(const char **p, const char *end, td_wbuf_t *out);

/*
 * td_mp_skip_value - td_mp_skip (tide.h) through a table of the one-byte
 * formats: the same result and the same errors, in fewer instructions per
 * item (the task engine's boundary scan of every record it receives).
 */
int td_mp_skip_value(const char **p, const char *end);

#endif
