/* msgpack.c - MessagePack without a Lua VM (see msgpack.h). */
#include "msgpack.h"

#include <string.h>

#include "error.h"

static uint64_t be(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = (v << 8) | p[i];
  return v;
}

static void put_be(unsigned char *p, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; i--) {
    p[i] = (unsigned char)v;
    v >>= 8;
  }
}

int td_mp_read(const char **pp, const char *end, td_mp_item_t *out) {
  const unsigned char *p = (const unsigned char *)*pp, *e = (const unsigned char *)end;
  if (p >= e) return TD_ECORRUPT;
  unsigned c = *p++;
  size_t avail = (size_t)(e - p);
  uint64_t len = 0;
  int n; /* width of the length or value that follows */
#define NEED(k) \
  if (avail < (size_t)(k)) return TD_ECORRUPT
  if (c <= 0x7f) {
    out->type = TD_MP_INT;
    out->v.i = c;
  } else if (c >= 0xe0) {
    out->type = TD_MP_INT;
    out->v.i = (int8_t)c;
  } else if (c >= 0xa0 && c <= 0xbf) {
    len = c & 0x1f;
    goto str;
  } else if (c >= 0x90 && c <= 0x9f) {
    out->type = TD_MP_ARRAY;
    out->v.n = c & 0x0f;
  } else if (c >= 0x80 && c <= 0x8f) {
    out->type = TD_MP_MAP;
    out->v.n = c & 0x0f;
  } else {
    switch (c) {
    case 0xc0: out->type = TD_MP_NIL; break;
    case 0xc2:
    case 0xc3:
      out->type = TD_MP_BOOL;
      out->v.b = c == 0xc3;
      break;
    case 0xcc: case 0xcd: case 0xce: case 0xcf: {
      n = 1 << (c - 0xcc);
      NEED(n);
      uint64_t u = be(p, n);
      p += n;
      if (u > (uint64_t)INT64_MAX) {
        out->type = TD_MP_FLOAT;
        out->v.f = (double)u;
      } else {
        out->type = TD_MP_INT;
        out->v.i = (int64_t)u;
      }
      break;
    }
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
      n = 1 << (c - 0xd0);
      NEED(n);
      uint64_t u = be(p, n);
      p += n;
      int64_t v;
      if (n == 1) v = (int8_t)u;
      else if (n == 2) v = (int16_t)u;
      else if (n == 4) v = (int32_t)u;
      else v = (int64_t)u;
      out->type = TD_MP_INT;
      out->v.i = v;
      break;
    }
    case 0xca: {
      NEED(4);
      uint32_t u = (uint32_t)be(p, 4);
      float f;
      memcpy(&f, &u, 4);
      p += 4;
      out->type = TD_MP_FLOAT;
      out->v.f = f;
      break;
    }
    case 0xcb: {
      NEED(8);
      uint64_t u = be(p, 8);
      double d;
      memcpy(&d, &u, 8);
      p += 8;
      out->type = TD_MP_FLOAT;
      out->v.f = d;
      break;
    }
    case 0xd9: case 0xda: case 0xdb:
    case 0xc4: case 0xc5: case 0xc6:
      n = (c >= 0xd9) ? 1 << (c - 0xd9) : 1 << (c - 0xc4);
      NEED(n);
      len = be(p, n);
      p += n;
      avail -= (size_t)n;
      goto str;
    case 0xdc: case 0xdd:
    case 0xde: case 0xdf:
      n = (c == 0xdc || c == 0xde) ? 2 : 4;
      NEED(n);
      out->type = c <= 0xdd ? TD_MP_ARRAY : TD_MP_MAP;
      out->v.n = (uint32_t)be(p, n);
      p += n;
      break;
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
      len = 1u << (c - 0xd4);
      NEED(1);
      out->type = TD_MP_EXT;
      out->v.ext.type = (int8_t)p[0];
      p++;
      avail--;
      goto ext;
    case 0xc7: case 0xc8: case 0xc9:
      n = 1 << (c - 0xc7);
      NEED(n + 1);
      len = be(p, n);
      out->type = TD_MP_EXT;
      out->v.ext.type = (int8_t)p[n];
      p += n + 1;
      avail -= (size_t)n + 1;
      goto ext;
    default: /* 0xc1 */
      return TD_ECORRUPT;
    }
  }
  *pp = (const char *)p;
  return 0;
str:
  NEED(len);
  out->type = TD_MP_STR;
  out->v.s.p = (const char *)p;
  out->v.s.len = (uint32_t)len;
  *pp = (const char *)(p + len);
  return 0;
ext:
  NEED(len);
  out->v.ext.p = (const char *)p;
  out->v.ext.len = (uint32_t)len;
  *pp = (const char *)(p + len);
  return 0;
#undef NEED
}

int td_mp_skip(const char **pp, const char *end) {
  /* the record path's boundary scan: one byte decides most items (the fix
   * formats of small records), td_mp_read the rest */
  const unsigned char *p = (const unsigned char *)*pp, *e = (const unsigned char *)end;
  uint64_t left = 1;
  while (left > 0) {
    if (p >= e) return TD_ECORRUPT;
    unsigned c = *p;
    left--;
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
      p++;
    } else if (c >= 0xa0 && c <= 0xbf) {
      p += 1 + (c & 0x1f);
    } else if (c >= 0x80 && c <= 0x9f) {
      left += c <= 0x8f ? 2u * (c & 0x0f) : (c & 0x0f);
      p++;
    } else if (c >= 0xcc && c <= 0xd3) { /* ints: 1 + 1, 2, 4, 8 bytes */
      p += 1 + (1u << ((c - 0xcc) & 3));
    } else if (c == 0xcb || c == 0xca) {
      p += c == 0xcb ? 9 : 5;
    } else if (c == 0xd9) {
      if (e - p < 2) return TD_ECORRUPT;
      p += 2 + p[1];
    } else {
      td_mp_item_t it;
      const char *q = (const char *)p;
      if (td_mp_read(&q, end, &it) != 0) return TD_ECORRUPT;
      p = (const unsigned char *)q;
      if (it.type == TD_MP_ARRAY) left += it.v.n;
      else if (it.type == TD_MP_MAP) left += 2 * (uint64_t)it.v.n;
    }
    /* every item takes at least one byte: more items than bytes is corrupt */
    if (p > e || left > (uint64_t)(e - p)) return TD_ECORRUPT;
  }
  *pp = (const char *)p;
  return 0;
}

int td_mp_map_get(const char *p, const char *end, const char *key, size_t klen,
                  const char **value) {
  td_mp_item_t it;
  if (td_mp_read(&p, end, &it) != 0) return TD_ECORRUPT;
  if (it.type != TD_MP_MAP) return 0;
  for (uint32_t i = 0; i < it.v.n; i++) {
    td_mp_item_t k;
    if (td_mp_read(&p, end, &k) != 0) return TD_ECORRUPT;
    if (k.type == TD_MP_ARRAY || k.type == TD_MP_MAP) {
      /* a container key: skip its items, then the value */
      uint64_t left = k.type == TD_MP_ARRAY ? k.v.n : 2 * (uint64_t)k.v.n;
      while (left--)
        if (td_mp_skip(&p, end) != 0) return TD_ECORRUPT;
    } else if (k.type == TD_MP_STR && k.v.s.len == klen && memcmp(k.v.s.p, key, klen) == 0) {
      const char *v = p;
      if (td_mp_skip(&p, end) != 0) return TD_ECORRUPT;
      *value = v;
      return 1;
    }
    if (td_mp_skip(&p, end) != 0) return TD_ECORRUPT;
  }
  return 0;
}

/* ---- writing ---- */

static int put(td_wbuf_t *b, const unsigned char *bytes, size_t n) {
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
  unsigned char t[9];
  size_t n;
  if (v >= 0 && v < 128) {
    t[0] = (unsigned char)v;
    n = 1;
  } else if (v < 0 && v >= -32) {
    t[0] = (unsigned char)(0xe0 | (v & 0x1f));
    n = 1;
  } else if (v >= 0) {
    int w = v < 256 ? 1 : v < 65536 ? 2 : v <= (int64_t)UINT32_MAX ? 4 : 8;
    t[0] = (unsigned char)(w == 1 ? 0xcc : w == 2 ? 0xcd : w == 4 ? 0xce : 0xcf);
    put_be(t + 1, (uint64_t)v, w);
    n = 1 + (size_t)w;
  } else {
    int w = v >= -128 ? 1 : v >= -32768 ? 2 : v >= INT32_MIN ? 4 : 8;
    t[0] = (unsigned char)(w == 1 ? 0xd0 : w == 2 ? 0xd1 : w == 4 ? 0xd2 : 0xd3);
    put_be(t + 1, (uint64_t)v, w);
    n = 1 + (size_t)w;
  }
  return put(b, t, n);
}

int td_mp_write_float(td_wbuf_t *b, double v) {
  unsigned char t[9];
  uint64_t u;
  memcpy(&u, &v, 8);
  t[0] = 0xcb;
  put_be(t + 1, u, 8);
  return put(b, t, 9);
}

/* A header: fix (with its mask) or the 8/16/32-bit forms. */
static int header(td_wbuf_t *b, uint64_t n, unsigned fix, uint64_t fixmax, int c8, unsigned c16,
                  unsigned c32) {
  unsigned char t[5];
  if (n <= fixmax) {
    t[0] = (unsigned char)(fix | n);
    return put(b, t, 1);
  }
  if (c8 >= 0 && n < 256) {
    t[0] = (unsigned char)c8;
    t[1] = (unsigned char)n;
    return put(b, t, 2);
  }
  if (n < 65536) {
    t[0] = (unsigned char)c16;
    put_be(t + 1, n, 2);
    return put(b, t, 3);
  }
  t[0] = (unsigned char)c32;
  put_be(t + 1, n, 4);
  return put(b, t, 5);
}

int td_mp_write_str(td_wbuf_t *b, const char *s, size_t len) {
  if (len > UINT32_MAX) return TD_EINVAL;
  int rc = header(b, len, 0xa0, 31, 0xd9, 0xda, 0xdb);
  return rc ? rc : put(b, (const unsigned char *)s, len);
}

int td_mp_write_array(td_wbuf_t *b, uint32_t n) { return header(b, n, 0x90, 15, -1, 0xdc, 0xdd); }

int td_mp_write_map(td_wbuf_t *b, uint32_t n) { return header(b, n, 0x80, 15, -1, 0xde, 0xdf); }

int td_mp_write_raw(td_wbuf_t *b, const void *bytes, size_t len) {
  return put(b, bytes, len);
}
