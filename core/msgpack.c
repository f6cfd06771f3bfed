/* msgpack.c - MessagePack without a Lua VM (see msgpack.h). */
#include "msgpack.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"

/* ---- skipping ---- */

/* For each first byte: the item's size in bytes (low byte; 0: read it with
 * td_mp_read) and the items a container header adds (high byte). */
#define SK(step, items) ((uint16_t)((step) | (items) << 8))
#define SK4(c, s) [c] = SK(s, 0), [c + 1] = SK(s, 0), [c + 2] = SK(s, 0), [c + 3] = SK(s, 0)
#define SK16(c, s, k) [c] = SK(s, 0 * k), [c + 1] = SK(s, 1 * k), [c + 2] = SK(s, 2 * k), \
  [c + 3] = SK(s, 3 * k), [c + 4] = SK(s, 4 * k), [c + 5] = SK(s, 5 * k),               \
  [c + 6] = SK(s, 6 * k), [c + 7] = SK(s, 7 * k), [c + 8] = SK(s, 8 * k),               \
  [c + 9] = SK(s, 9 * k), [c + 10] = SK(s, 10 * k), [c + 11] = SK(s, 11 * k),           \
  [c + 12] = SK(s, 12 * k), [c + 13] = SK(s, 13 * k), [c + 14] = SK(s, 14 * k),         \
  [c + 15] = SK(s, 15 * k)
#define FIXSTR8(c, n) [c] = SK(1 + n, 0), [c + 1] = SK(2 + n, 0), [c + 2] = SK(3 + n, 0), \
  [c + 3] = SK(4 + n, 0), [c + 4] = SK(5 + n, 0), [c + 5] = SK(6 + n, 0),                 \
  [c + 6] = SK(7 + n, 0), [c + 7] = SK(8 + n, 0)
#define ONE16(c) SK4(c, 1), SK4(c + 4, 1), SK4(c + 8, 1), SK4(c + 12, 1)

static const uint16_t SKIP[256] = {
  ONE16(0x00), ONE16(0x10), ONE16(0x20), ONE16(0x30), /* positive fixint */
  ONE16(0x40), ONE16(0x50), ONE16(0x60), ONE16(0x70),
  SK16(0x80, 1, 2), /* fixmap: 2 items an entry */
  SK16(0x90, 1, 1), /* fixarray */
  FIXSTR8(0xa0, 0), FIXSTR8(0xa8, 8), FIXSTR8(0xb0, 16), FIXSTR8(0xb8, 24),
  [0xc0] = SK(1, 0), [0xc2] = SK(1, 0), [0xc3] = SK(1, 0),
  [0xca] = SK(5, 0), [0xcb] = SK(9, 0),
  [0xcc] = SK(2, 0), [0xcd] = SK(3, 0), [0xce] = SK(5, 0), [0xcf] = SK(9, 0),
  [0xd0] = SK(2, 0), [0xd1] = SK(3, 0), [0xd2] = SK(5, 0), [0xd3] = SK(9, 0),
  ONE16(0xe0), ONE16(0xf0), /* negative fixint */
};

/* One item td_mp_read reads (see td_mp_skip_value): its size in *step and
 * the items it adds to *left. 0 or TD_ECORRUPT. */
static int skip_read(const unsigned char *p, const char *end, size_t *step, uint64_t *left) {
  td_mp_item_t it;
  const char *q = (const char *)p;
  if (td_mp_read(&q, end, &it) != 0) return TD_ECORRUPT;
  *step = (size_t)((const unsigned char *)q - p);
  if (it.type == TD_MP_ARRAY) *left += it.v.n;
  else if (it.type == TD_MP_MAP) *left += 2 * (uint64_t)it.v.n;
  return 0;
}

int td_mp_skip_value(const char **pp, const char *end) {
  const unsigned char *p = (const unsigned char *)*pp, *e = (const unsigned char *)end;
  uint64_t left = 1;
  /* Every item takes at least one byte, so the loop ends at `end` at the
   * latest whatever the counts say; more items than bytes left is
   * rejected early, where a header adds items. */
  do {
    if (p >= e) return TD_ECORRUPT;
    unsigned t = SKIP[*p];
    size_t step = t & 0xff;
    left--;
    if (!step) { /* str8/16/32, bin, array16/32, map16/32, ext, 0xc1 */
      if (skip_read(p, end, &step, &left)) return TD_ECORRUPT;
      if (left > (uint64_t)(e - p)) return TD_ECORRUPT;
    } else if (t >> 8) {
      left += t >> 8;
      if (left > (uint64_t)(e - p)) return TD_ECORRUPT;
    }
    if (step > (size_t)(e - p)) return TD_ECORRUPT;
    p += step;
  } while (left > 0);
  *pp = (const char *)p;
  return 0;
}

/* ---- writing ---- */

static int put(td_wbuf_t *b, const unsigned char *bytes, size_t n) {
  if (n == 0) return 0; /* an empty buffer's data may be NULL */
  if (td_wbuf_reserve(b, n)) return TD_ENOMEM;
  memcpy(b->data + b->len, bytes, n);
  b->len += n;
  return 0;
}

int td_mp_write_nil(td_wbuf_t *b) {
  static const unsigned char c = 0xc0;
  return put(b, &c, 1);
}

int td_mp_write_bool(td_wbuf_t *b, int v) {
  unsigned char c = v ? 0xc3 : 0xc2;
  return put(b, &c, 1);
}

int td_mp_write_int(td_wbuf_t *b, int64_t v) {
  if (td_wbuf_reserve(b, TD_MP_MAX_HEAD)) return TD_ENOMEM;
  b->len += td_mp_enc_int((unsigned char *)b->data + b->len, v);
  return 0;
}

int td_mp_write_float(td_wbuf_t *b, double v) {
  if (td_wbuf_reserve(b, TD_MP_MAX_HEAD)) return TD_ENOMEM;
  b->len += td_mp_enc_float((unsigned char *)b->data + b->len, v);
  return 0;
}

static int header(td_wbuf_t *b, td_mp_head_t kind, uint32_t n) {
  if (td_wbuf_reserve(b, TD_MP_MAX_HEAD)) return TD_ENOMEM;
  b->len += td_mp_enc_head((unsigned char *)b->data + b->len, kind, n);
  return 0;
}

int td_mp_write_str(td_wbuf_t *b, const char *s, size_t len) {
  if (len > UINT32_MAX) return TD_EINVAL;
  int rc = header(b, TD_MP_HEAD_STR, (uint32_t)len);
  return rc ? rc : put(b, (const unsigned char *)s, len);
}

int td_mp_write_array(td_wbuf_t *b, uint32_t n) { return header(b, TD_MP_HEAD_ARRAY, n); }

int td_mp_write_map(td_wbuf_t *b, uint32_t n) { return header(b, TD_MP_HEAD_MAP, n); }

int td_mp_write_raw(td_wbuf_t *b, const void *bytes, size_t len) {
  return put(b, bytes, len);
}

/* ---- canonical encoding ---- */

/* A map entry of the value being canonicalized: key and value bytes at
 * scratch offset off (klen key bytes, then vlen value bytes); ikey is the
 * key as an integer (has_ikey) for the array test. */
typedef struct centry {
  size_t off;
  uint32_t klen, vlen;
  int64_t ikey;
  int has_ikey;
  const char *base; /* scratch data, for sorting */
} centry_t;

static int cmp_centry(const void *a, const void *b) {
  const centry_t *x = a, *y = b;
  const unsigned char *xk = (const unsigned char *)x->base + x->off;
  const unsigned char *yk = (const unsigned char *)y->base + y->off;
  uint32_t n = x->klen < y->klen ? x->klen : y->klen;
  int c = memcmp(xk, yk, n);
  if (c) return c;
  if (x->klen != y->klen) return (x->klen > y->klen) - (x->klen < y->klen);
  n = x->vlen < y->vlen ? x->vlen : y->vlen;
  c = memcmp(xk + x->klen, yk + y->klen, n);
  if (c) return c;
  return (x->vlen > y->vlen) - (x->vlen < y->vlen);
}

static int canon(const char **pp, const char *end, td_wbuf_t *out, int depth);

/* The n entries of an array (keys 1..n) or a map at *pp, as the Lua codec
 * sees the table they decode to: nil values dropped; keys exactly 1..k an
 * array, other keys a map sorted by key bytes; no entries an empty array. */
static int canon_table(const char **pp, const char *end, td_wbuf_t *out, uint32_t n, int is_map,
                       int depth) {
  td_wbuf_t scratch = {0};
  centry_t *ents = n ? td_malloc(sizeof *ents * n) : NULL;
  uint32_t k = 0;
  int rc = n && !ents ? TD_ENOMEM : 0;
  const char *p = *pp;
  for (uint32_t i = 0; rc == 0 && i < n; i++) {
    centry_t *e = &ents[k];
    e->off = scratch.len;
    if (is_map) {
      rc = canon(&p, end, &scratch, depth + 1);
      if (rc) break;
      td_mp_item_t key;
      const char *q = scratch.data + e->off;
      e->has_ikey = td_mp_read(&q, scratch.data + scratch.len, &key) == 0 && key.type == TD_MP_INT;
      e->ikey = key.v.i;
    } else {
      rc = td_mp_write_int(&scratch, (int64_t)i + 1);
      e->has_ikey = 1;
      e->ikey = (int64_t)i + 1;
    }
    if (rc) break;
    e->klen = (uint32_t)(scratch.len - e->off);
    if (p < end && (unsigned char)*p == 0xc0) { /* a nil value: no entry */
      p++;
      scratch.len = e->off;
      continue;
    }
    rc = canon(&p, end, &scratch, depth + 1);
    e->vlen = (uint32_t)(scratch.len - e->off - e->klen);
    k++;
  }
  if (rc == 0) {
    for (uint32_t i = 0; i < k; i++) ents[i].base = scratch.data;
    if (k > 1) qsort(ents, k, sizeof *ents, cmp_centry);
    /* keys exactly 1..k: positive integers in their smallest encoding sort
     * in numeric order, so they come first and in order */
    int array = 1;
    for (uint32_t i = 0; array && i < k; i++) array = ents[i].has_ikey && ents[i].ikey == (int64_t)i + 1;
    rc = (array || k == 0) ? td_mp_write_array(out, k) : td_mp_write_map(out, k);
    for (uint32_t i = 0; rc == 0 && i < k; i++) {
      const unsigned char *b = (const unsigned char *)scratch.data + ents[i].off;
      rc = array ? put(out, b + ents[i].klen, ents[i].vlen)
                 : put(out, b, (size_t)ents[i].klen + ents[i].vlen);
    }
  }
  td_free(ents);
  td_wbuf_destroy(&scratch);
  if (rc == 0) *pp = p;
  return rc;
}

static int canon(const char **pp, const char *end, td_wbuf_t *out, int depth) {
  const char *p = *pp;
  td_mp_item_t it;
  if (td_mp_read(&p, end, &it) != 0) return TD_ECORRUPT;
  int rc;
  switch (it.type) {
  case TD_MP_NIL: rc = td_mp_write_nil(out); break;
  case TD_MP_BOOL: rc = td_mp_write_bool(out, it.v.b); break;
  case TD_MP_INT: rc = td_mp_write_int(out, it.v.i); break;
  case TD_MP_FLOAT: {
    double d = it.v.f;
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && (double)(int64_t)d == d) {
      rc = td_mp_write_int(out, (int64_t)d);
    } else if (d != d) {
      rc = put(out, (const unsigned char *)"\xcb\x7f\xf8\0\0\0\0\0\0", 9);
    } else {
      rc = td_mp_write_float(out, d);
    }
    break;
  }
  case TD_MP_STR: rc = td_mp_write_str(out, it.v.s.p, it.v.s.len); break;
  case TD_MP_ARRAY:
  case TD_MP_MAP:
    if (depth >= TD_MP_MAX_DEPTH) return TD_ECORRUPT;
    rc = canon_table(&p, end, out, it.v.n, it.type == TD_MP_MAP, depth);
    break;
  default: return TD_ECORRUPT; /* ext */
  }
  if (rc == 0) *pp = p;
  return rc;
}

int td_mp_canonical(const char **p, const char *end, td_wbuf_t *out) {
  size_t len = out->len;
  int rc = canon(p, end, out, 0);
  if (rc) out->len = len;
  return rc;
}
