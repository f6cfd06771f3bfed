/*
 * rocksdb.c - the RocksDB state backend (backend.h, rocksdb.h), over
 * Debian's librocksdb C API. The only file that includes <rocksdb/c.h>: no
 * RocksDB type or error string leaves it.
 *
 * Layout. One RocksDB instance per backend in its working directory; one
 * column family per state id, named "s<id>" (decimal), created on the first
 * write of that state (the "default" family stays empty). An entry's
 * RocksDB key is
 *
 *   key group   2 bytes, big-endian (key groups are < 2^15)
 *   key length  unsigned LEB128 varint, 1-5 bytes
 *   key bytes
 *   namespace   the rest of the key
 *
 * so a key group is one contiguous range of keys, every (key, namespace)
 * split is unambiguous for arbitrary bytes (a key that is a prefix of
 * another one differs in its length byte), and the entries of one
 * (key group, key) are contiguous and in namespace byte order. The value is
 * the value bytes as given (td_rocksdb_add's are MessagePack integers).
 *
 * Reads and writes. Writes skip the write-ahead log (checkpoints make the
 * state durable, as in Flink). get pins the value in the block cache or
 * memtable (a PinnableSlice) until the next call; remove reads before it
 * deletes, since backend.h wants to know whether it removed something.
 *
 * Count. RocksDB has no exact count (Flink's backend offers only the
 * estimate-num-keys property). count() here is exact: it iterates every
 * column family and caches the result until the next write, so it costs a
 * full key scan after writes. Puts stay blind writes (no read per put).
 *
 * Memory. One LRU block cache shared by every backend of the process
 * (created with the first backend, destroyed with the last; index and
 * filter blocks are charged to it), and per column family write_buffer
 * bytes per memtable, max_write_buffers of them, with db_write_buffer_size
 * = write_buffer * max_write_buffers bounding a database's memtables.
 *
 * Merge. The "tide.add" merge operator adds int64 deltas: an operand is 8
 * bytes, little-endian two's complement; partial merges add operands; a
 * full merge adds them to the existing value read as a MessagePack integer
 * (anything else counts as 0, so that a merge never fails: a failing merge
 * would stop compactions) and writes the sum as a canonical MessagePack
 * integer (tide.h's td_mp_enc_int).
 *
 * Errors. Every RocksDB error string is copied into the backend's
 * last-error buffer with the operation and the path, and freed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "backend.h"
#include "error.h"
#include "keygroup.h"
#include "rocksdb.h"

#define KG_BYTES 2
#define VARINT_MAX 5
/* a batch filled by restore is written when its data passes this */
#define RESTORE_BATCH_BYTES ((size_t)4 << 20)

/* a staged batch write: op 'p' put, 'd' delete, 'm' merge; key and value
 * bytes at koff and voff of the backend's sbuf; seq keeps the call order of
 * writes to the same key */
typedef struct staged {
  rocksdb_column_family_handle_t *h;
  uint32_t sid, seq;
  size_t koff, klen, voff, vlen;
  char op;
} staged_t;

typedef struct cf {
  uint32_t sid;
  rocksdb_column_family_handle_t *h;
} cf_t;

/* The TTL of one state, read by its family's compaction filter on
 * RocksDB's compaction threads (Flink's FlinkCompactionFilter config
 * holder): set after the family exists, any time. */
typedef struct ttl {
  uint32_t sid;
  _Atomic int64_t ttl_ms; /* 0: no TTL, keep everything */
  _Atomic int list;       /* values are lists of [value, ms] */
  _Atomic int64_t *now_ms;
  rocksdb_options_t *opts; /* the family's options, with the filter */
  rocksdb_compactionfilter_t *filter;
} ttl_t;

typedef struct rdb {
  td_backend_t base; /* first: a td_backend_t * is a rdb_t * */
  ttl_t **ttls;      /* per state that has a family or a TTL */
  size_t nttl;
  _Atomic int64_t now_ms; /* processing time, as the task last saw it */
  rocksdb_t *db;
  rocksdb_options_t *opts; /* the database's and every family's */
  rocksdb_block_based_table_options_t *table;
  rocksdb_readoptions_t *ro;
  rocksdb_writeoptions_t *wo;
  rocksdb_column_family_handle_t *dflt;
  cf_t *cfs; /* sorted by sid */
  size_t ncf, capcf;
  char *dir;
  int remove_on_free;
  int has_cache; /* holds a reference to the shared cache */
  unsigned char *kbuf; /* an encoded key */
  size_t kcap;
  rocksdb_pinnableslice_t *pin; /* the last get's value */
  char **mg_vals;               /* the last multi-get's values */
  size_t mg_n;
  rocksdb_writebatch_t *batch;
  /* the batch's writes, staged in call order and applied sorted by family
   * and key at commit: the memtable (a skip list) inserts keys in order far
   * faster than at random (the splice of one insert serves the next) */
  struct staged *stg;
  size_t nstg, capstg;
  unsigned char *sbuf; /* the staged keys and values */
  size_t slen, scap;
  uint64_t count;
  int count_valid;
  size_t wb, db_wb; /* a family's memtable bytes; the database's, all of them */
  /* the asynchronous checkpoint under way (td_rocksdb_checkpoint_begin) */
  struct async_chk {
    pthread_t th;
    int running;       /* a thread to join */
    _Atomic int done;  /* the thread finished */
    rocksdb_column_family_handle_t **hs; /* the families at the barrier */
    size_t nh;
    char *dir;
    int rc;
    char err[512];
  } as;
  char err[512];
} rdb_t;

static int async_join(rdb_t *r);

struct td_rocksdb_iter {
  rdb_t *r;
  rocksdb_readoptions_t *ro;
  rocksdb_iterator_t *it;
  unsigned char *lo, *hi; /* the bounds (ro points at them) */
  size_t prefix;          /* bytes of (key group, key length, key) */
  int started;
};

/* ---- the shared block cache ---- */

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static rocksdb_cache_t *cache;
static size_t cache_cap; /* 0: never set */
static unsigned cache_users;

int td_rocksdb_shared_cache(size_t size_bytes) {
  if (size_bytes == 0) return TD_EINVAL;
  pthread_mutex_lock(&cache_mu);
  cache_cap = size_bytes;
  if (cache) rocksdb_cache_set_capacity(cache, size_bytes);
  pthread_mutex_unlock(&cache_mu);
  return 0;
}

size_t td_rocksdb_shared_cache_capacity(void) {
  pthread_mutex_lock(&cache_mu);
  size_t n = cache ? rocksdb_cache_get_capacity(cache) : cache_cap;
  pthread_mutex_unlock(&cache_mu);
  return n;
}

int td_rocksdb_cache_shard_bits(size_t capacity) {
  int bits = 0;
  while (bits < 6 && (capacity >> (bits + 1)) >= ((size_t)32 << 20)) bits++;
  return bits;
}

static rocksdb_cache_t *cache_acquire(void) {
  pthread_mutex_lock(&cache_mu);
  if (!cache) {
    /* Shards of at least 32 MiB (RocksDB's default makes 64 shards of a
     * 256 MiB cache): a block larger than its shard is never cached, and
     * the whole-file bloom filter of a 64 MiB SST file is several MiB, so
     * with small shards every get of a new key read it from the file
     * again (10M keys with checkpoints every second: minutes instead of
     * under one). */
    size_t cap = cache_cap ? cache_cap : TD_ROCKSDB_BLOCK_CACHE_DEFAULT;
    rocksdb_lru_cache_options_t *o = rocksdb_lru_cache_options_create();
    if (o) {
      rocksdb_lru_cache_options_set_capacity(o, cap);
      rocksdb_lru_cache_options_set_num_shard_bits(o, td_rocksdb_cache_shard_bits(cap));
      cache = rocksdb_cache_create_lru_opts(o);
      rocksdb_lru_cache_options_destroy(o);
    }
  }
  if (cache) cache_users++;
  rocksdb_cache_t *c = cache;
  pthread_mutex_unlock(&cache_mu);
  return c;
}

static void cache_release(void) {
  pthread_mutex_lock(&cache_mu);
  if (--cache_users == 0) {
    rocksdb_cache_destroy(cache); /* the databases held their own refs */
    cache = NULL;
  }
  pthread_mutex_unlock(&cache_mu);
}

/* ---- errors ---- */

/* fail - record a message in r->err (printf-style; rocks_err, RocksDB's
 * own text, appended and freed when not NULL) and return code. */
static int fail(rdb_t *r, int code, char *rocks_err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(r->err, sizeof r->err, fmt, ap);
  va_end(ap);
  if (rocks_err) {
    if (n >= 0 && (size_t)n < sizeof r->err)
      snprintf(r->err + n, sizeof r->err - (size_t)n, ": %s", rocks_err);
    rocksdb_free(rocks_err);
  }
  return code;
}

const char *td_rocksdb_last_error(td_backend_t *b) {
  return td_backend_is_rocksdb(b) ? ((rdb_t *)b)->err : "not a rocksdb backend";
}

/* ---- the merge operator ---- */

static uint64_t le64(const char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | (unsigned char)p[i];
  return v;
}

static void put_le64(char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (char)(v >> (8 * i));
}

static uint64_t sum_operands(const char *const *ops, const size_t *lens,
                             int n) {
  uint64_t sum = 0;
  for (int i = 0; i < n; i++)
    if (lens[i] == 8) sum += le64(ops[i]);
  return sum;
}

static char *merge_full(void *st, const char *key, size_t klen,
                        const char *old, size_t oldlen,
                        const char *const *ops, const size_t *lens, int n,
                        unsigned char *success, size_t *newlen) {
  uint64_t sum = sum_operands(ops, lens, n);
  if (old) {
    const char *p = old;
    td_mp_item_t it;
    if (td_mp_read(&p, old + oldlen, &it) == 0 && it.type == TD_MP_INT &&
        p == old + oldlen)
      sum += (uint64_t)it.v.i;
  }
  char *out = malloc(TD_MP_MAX_HEAD);
  if (!out) {
    *success = 0;
    return NULL;
  }
  *newlen = td_mp_enc_int((unsigned char *)out, (int64_t)sum);
  *success = 1;
  return out;
}

static char *merge_partial(void *st, const char *key, size_t klen,
                           const char *const *ops, const size_t *lens, int n,
                           unsigned char *success, size_t *newlen) {
  char *out = malloc(8);
  if (!out) {
    *success = 0;
    return NULL;
  }
  put_le64(out, sum_operands(ops, lens, n));
  *newlen = 8;
  *success = 1;
  return out;
}

static void merge_delete(void *st, const char *v, size_t len) {
  free((void *)v);
}

/* a NULL destructor crashes rocksdb_options_destroy (DEPS.md) */
static void merge_destroy(void *st) {}

static const char *merge_name(void *st) { return "tide.add"; }

/* ---- keys ---- */

static size_t varint_put(unsigned char *p, uint32_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (unsigned char)v;
  return n;
}

/* varint_get - the varint at p (n bytes available): its bytes, or 0 when
 * it is truncated or longer than VARINT_MAX. */
static size_t varint_get(const unsigned char *p, size_t n, uint32_t *v) {
  uint64_t x = 0;
  for (size_t i = 0; i < n && i < VARINT_MAX; i++) {
    x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
    if (!(p[i] & 0x80)) {
      if (x > UINT32_MAX) return 0;
      *v = (uint32_t)x;
      return i + 1;
    }
  }
  return 0;
}

static void kg_put(unsigned char *p, uint32_t kg) {
  p[0] = (unsigned char)(kg >> 8);
  p[1] = (unsigned char)kg;
}

/* encode - the RocksDB key of (kg, key, ns) at out (room for
 * KG_BYTES + VARINT_MAX + key.len + ns.len). Returns its length. */
static size_t encode(unsigned char *out, uint32_t kg, td_bytes_t key,
                     td_bytes_t ns) {
  kg_put(out, kg);
  size_t n = KG_BYTES + varint_put(out + KG_BYTES, (uint32_t)key.len);
  if (key.len) memcpy(out + n, key.data, key.len);
  n += key.len;
  if (ns.len) memcpy(out + n, ns.data, ns.len);
  return n + ns.len;
}

/* decode - split a RocksDB key. Returns 0, or -1 when it is malformed. */
static int decode(const char *k, size_t len, uint32_t *kg, td_bytes_t *key,
                  td_bytes_t *ns) {
  const unsigned char *p = (const unsigned char *)k;
  uint32_t klen;
  if (len < KG_BYTES + 1) return -1;
  size_t v = varint_get(p + KG_BYTES, len - KG_BYTES, &klen);
  if (v == 0 || len - KG_BYTES - v < klen) return -1;
  *kg = ((uint32_t)p[0] << 8) | p[1];
  key->data = k + KG_BYTES + v;
  key->len = klen;
  ns->data = k + KG_BYTES + v + klen;
  ns->len = len - KG_BYTES - v - klen;
  return 0;
}

/* reserve - room for n bytes at *buf. 0 or TD_ENOMEM. */
static int reserve(unsigned char **buf, size_t *cap, size_t n) {
  if (n <= *cap) return 0;
  size_t c = *cap ? *cap : 64;
  while (c < n) c *= 2;
  unsigned char *p = realloc(*buf, c);
  if (!p) return TD_ENOMEM;
  *buf = p;
  *cap = c;
  return 0;
}

/* check - the arguments of a single-entry call; on success the entry's
 * RocksDB key is in r->kbuf and its length in *klen. */
static int check(rdb_t *r, uint32_t sid, uint32_t kg, td_bytes_t key,
                 td_bytes_t ns, size_t *klen) {
  if (sid == UINT32_MAX || kg < r->base.kg_first || kg > r->base.kg_last ||
      key.len > UINT32_MAX || (key.len && !key.data) || (ns.len && !ns.data) ||
      ns.len > SIZE_MAX - KG_BYTES - VARINT_MAX - key.len)
    return fail(r, TD_EINVAL, NULL, "rocksdb: bad state address");
  if (reserve(&r->kbuf, &r->kcap, KG_BYTES + VARINT_MAX + key.len + ns.len))
    return fail(r, TD_ENOMEM, NULL, "rocksdb: out of memory");
  *klen = encode(r->kbuf, kg, key, ns);
  return 0;
}

static int check_value(rdb_t *r, td_bytes_t v) {
  if (v.len && !v.data) return fail(r, TD_EINVAL, NULL, "rocksdb: bad value");
  return 0;
}

/* ---- TTL: the compaction filter ---- */

/* Whether [value, ms] at *p (advanced past it) expired: ms + ttl <= now.
 * -1 when it is not such a pair. */
static int pair_expired(const char **p, const char *end, int64_t ttl, int64_t now) {
  td_mp_item_t it;
  if (td_mp_read(p, end, &it) || it.type != TD_MP_ARRAY || it.v.n != 2) return -1;
  if (td_mp_skip(p, end)) return -1;
  if (td_mp_read(p, end, &it) || it.type != TD_MP_INT) return -1;
  return it.v.i + ttl <= now;
}

static __thread char *filter_buf; /* a rewritten list, per compaction thread */
static __thread size_t filter_cap;

/* Drop expired entries (and expired elements of lists) as compactions
 * meet them, as Flink's RocksDB TTL compaction filter does; entries that
 * are not TTL values are kept. Returns 1 to remove the entry. */
static unsigned char ttl_filter(void *state, int level, const char *key, size_t klen,
                                const char *v, size_t vlen, char **new_value,
                                size_t *new_len, unsigned char *changed) {
  (void)level, (void)key, (void)klen;
  ttl_t *t = state;
  int64_t ttl = atomic_load(&t->ttl_ms), now = atomic_load(t->now_ms);
  if (ttl <= 0 || now <= 0) return 0;
  const char *p = v, *end = v + vlen;
  if (!atomic_load(&t->list)) return pair_expired(&p, end, ttl, now) == 1;
  td_mp_item_t it;
  if (td_mp_read(&p, end, &it) || it.type != TD_MP_ARRAY) return 0;
  uint32_t n = it.v.n, live = 0;
  /* first pass: count; second: copy the live elements */
  const char *first = p;
  for (uint32_t i = 0; i < n; i++) {
    int e = pair_expired(&p, end, ttl, now);
    if (e < 0) return 0;
    if (!e) live++;
  }
  if (live == n) return 0;
  if (live == 0) return 1;
  if (filter_cap < vlen + 5) {
    char *b = realloc(filter_buf, vlen + 5);
    if (!b) return 0;
    filter_buf = b;
    filter_cap = vlen + 5;
  }
  size_t len = 0;
  unsigned char *o = (unsigned char *)filter_buf;
  if (live < 16) {
    o[len++] = (unsigned char)(0x90 | live);
  } else if (live < 65536) {
    o[len++] = 0xdc;
    o[len++] = (unsigned char)(live >> 8);
    o[len++] = (unsigned char)live;
  } else {
    o[len++] = 0xdd;
    for (int s = 24; s >= 0; s -= 8) o[len++] = (unsigned char)(live >> s);
  }
  p = first;
  for (uint32_t i = 0; i < n; i++) {
    const char *q = p;
    int e = pair_expired(&p, end, ttl, now);
    if (!e) {
      memcpy(filter_buf + len, q, (size_t)(p - q));
      len += (size_t)(p - q);
    }
  }
  *new_value = filter_buf;
  *new_len = len;
  *changed = 1;
  return 0;
}

static const char *ttl_filter_name(void *state) {
  (void)state;
  return "tide.ttl";
}

static void ttl_filter_destroy(void *state) {
  (void)state; /* the holder is freed by ttl_free */
}

static void ttl_free(ttl_t *t) {
  if (!t) return;
  if (t->opts) rocksdb_options_destroy(t->opts);
  if (t->filter) rocksdb_compactionfilter_destroy(t->filter);
  free(t);
}

/* The TTL holder of state sid, made (with the family's options and its
 * filter) if missing; NULL when out of memory. */
static ttl_t *ttl_of(rdb_t *r, uint32_t sid) {
  for (size_t i = 0; i < r->nttl; i++)
    if (r->ttls[i]->sid == sid) return r->ttls[i];
  ttl_t **a = realloc(r->ttls, (r->nttl + 1) * sizeof *a);
  if (!a) return NULL;
  r->ttls = a;
  ttl_t *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->sid = sid;
  t->now_ms = &r->now_ms;
  t->opts = rocksdb_options_create_copy(r->opts);
  t->filter = rocksdb_compactionfilter_create(t, ttl_filter_destroy, ttl_filter, ttl_filter_name);
  if (!t->opts || !t->filter) {
    ttl_free(t);
    return NULL;
  }
  rocksdb_options_set_compaction_filter(t->opts, t->filter);
  r->ttls[r->nttl++] = t;
  return t;
}

int td_rocksdb_set_ttl(td_backend_t *b, uint32_t state_id, int64_t ttl_ms, int list) {
  if (!td_backend_is_rocksdb(b) || ttl_ms < 0) return TD_EINVAL;
  ttl_t *t = ttl_of((rdb_t *)b, state_id);
  if (!t) return TD_ENOMEM;
  atomic_store(&t->list, list ? 1 : 0);
  atomic_store(&t->ttl_ms, ttl_ms);
  return 0;
}

int td_rocksdb_set_time(td_backend_t *b, int64_t now_ms) {
  if (!td_backend_is_rocksdb(b)) return TD_EINVAL;
  atomic_store(&((rdb_t *)b)->now_ms, now_ms);
  return 0;
}

int td_rocksdb_compact(td_backend_t *b) {
  if (!td_backend_is_rocksdb(b)) return TD_EINVAL;
  rdb_t *r = (rdb_t *)b;
  (void)async_join(r); /* compact_range flushes */
  for (size_t i = 0; i < r->ncf; i++)
    rocksdb_compact_range_cf(r->db, r->cfs[i].h, NULL, 0, NULL, 0);
  return 0;
}

/* ---- column families ---- */

static cf_t *find_cf(rdb_t *r, uint32_t sid) {
  size_t lo = 0, hi = r->ncf;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (r->cfs[mid].sid < sid) lo = mid + 1;
    else hi = mid;
  }
  return lo < r->ncf && r->cfs[lo].sid == sid ? &r->cfs[lo] : NULL;
}

/* add_cf - remember handle h of state sid (kept sorted). */
static int add_cf(rdb_t *r, uint32_t sid, rocksdb_column_family_handle_t *h) {
  if (r->ncf == r->capcf) {
    size_t c = r->capcf ? r->capcf * 2 : 8;
    cf_t *p = realloc(r->cfs, c * sizeof *p);
    if (!p) return TD_ENOMEM;
    r->cfs = p;
    r->capcf = c;
  }
  size_t i = r->ncf;
  while (i > 0 && r->cfs[i - 1].sid > sid) {
    r->cfs[i] = r->cfs[i - 1];
    i--;
  }
  r->cfs[i].sid = sid;
  r->cfs[i].h = h;
  r->ncf++;
  return 0;
}

/* cf_of - the family of state sid, created if create; NULL when it does
 * not exist (and !create) or could not be made (r->err says why). */
static rocksdb_column_family_handle_t *cf_of(rdb_t *r, uint32_t sid,
                                             int create) {
  cf_t *c = find_cf(r, sid);
  if (c || !create) return c ? c->h : NULL;
  char name[16], *e = NULL;
  snprintf(name, sizeof name, "s%u", (unsigned)sid);
  ttl_t *t = ttl_of(r, sid);
  if (!t) {
    fail(r, TD_ENOMEM, NULL, "rocksdb: out of memory");
    return NULL;
  }
  rocksdb_column_family_handle_t *h =
      rocksdb_create_column_family(r->db, t->opts, name, &e);
  if (e || !h) {
    fail(r, TD_ESTATE, e, "rocksdb: create column family %s in '%s'", name,
         r->dir);
    return NULL;
  }
  if (add_cf(r, sid, h)) {
    rocksdb_column_family_handle_destroy(h);
    fail(r, TD_ENOMEM, NULL, "rocksdb: out of memory");
    return NULL;
  }
  return h;
}

/* cf_error - the code of a failed cf_of(.., 1) (its message is set). */
static int cf_error(rdb_t *r) {
  return strstr(r->err, "out of memory") ? TD_ENOMEM : TD_ESTATE;
}

/* parse_cf_name - the state id of a family named "s<id>", or -1. */
static int64_t parse_cf_name(const char *name) {
  if (name[0] != 's' || name[1] < '0' || name[1] > '9') return -1;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(name + 1, &end, 10);
  if (*end || errno || v >= UINT32_MAX) return -1;
  return (int64_t)v;
}

/* ---- borrowed values ---- */

/* release_reads - end the loan of the last get's and multi-get's values. */
static void release_reads(rdb_t *r) {
  if (r->pin) rocksdb_pinnableslice_destroy(r->pin);
  r->pin = NULL;
  for (size_t i = 0; i < r->mg_n; i++) rocksdb_free(r->mg_vals[i]);
  free(r->mg_vals);
  r->mg_vals = NULL;
  r->mg_n = 0;
}

/* wrote - bookkeeping after a write (or a failed one). */
static void wrote(rdb_t *r) {
  release_reads(r);
  r->count_valid = 0;
}

/* ---- asynchronous checkpoints ----
 *
 * td_rocksdb_checkpoint_begin switches every family's memtable at the
 * barrier (a flush that does not wait for its write) and starts a thread
 * that waits until those memtables are flushed, then makes the RocksDB
 * checkpoint without a flush of its own: its files hold exactly the writes
 * made before the barrier, while the task writes on into fresh memtables.
 * That holds only if RocksDB flushes no memtable holding later writes
 * before the checkpoint is made. With the write-ahead log off, RocksDB
 * flushes a memtable on its own when it fills (write_buffer bytes) or when
 * the database's memtables together near db_write_buffer_size; so while a
 * checkpoint waits, a write that could bring either within reach waits for
 * the checkpoint first (hold). Every other flush (td_rocksdb_checkpoint,
 * compaction by hand, close) joins the thread first.
 */

int td_rocksdb_checkpoint_await(const char *dir, int (*stop)(void *ud), void *ud, char *err,
                                size_t errlen) {
  char failed[4200];
  snprintf(failed, sizeof failed, "%s.failed", dir);
  long wait_ns = 100000; /* 0.1 ms, doubling to 10 ms */
  struct stat st;
  for (;;) {
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    int fd = open(failed, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      char msg[600];
      ssize_t n = read(fd, msg, sizeof msg - 1);
      close(fd);
      msg[n > 0 ? n : 0] = 0;
      msg[strcspn(msg, "\n")] = 0;
      if (err && errlen) snprintf(err, errlen, "%s", msg);
      return TD_EIO;
    }
    if (stop && stop(ud)) return TD_ECANCELED;
    struct timespec ts = {0, wait_ns};
    nanosleep(&ts, NULL);
    if (wait_ns < 10000000) wait_ns *= 2;
  }
}

/* write_failed - leave the reason an asynchronous checkpoint failed in
 * <dir>.failed, for the snapshot child waiting for dir. */
static void write_failed(const char *dir, const char *msg) {
  char tmp[4200], path[4200];
  snprintf(tmp, sizeof tmp, "%s.failed.tmp", dir);
  snprintf(path, sizeof path, "%s.failed", dir);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  ssize_t w = write(fd, msg, strlen(msg));
  close(fd);
  if (w >= 0) (void)rename(tmp, path);
}

static void *async_main(void *arg) {
  rdb_t *r = arg;
  struct async_chk *a = &r->as;
  const struct timespec ms = {0, 1000000};
  for (;;) {
    uint64_t imm = 0, v;
    for (size_t i = 0; i < a->nh; i++)
      if (rocksdb_property_int_cf(r->db, a->hs[i], "rocksdb.num-immutable-mem-table", &v) == 0)
        imm += v;
    if (imm == 0) break;
    if (rocksdb_property_int(r->db, "rocksdb.background-errors", &v) == 0 && v > 0) {
      a->rc = TD_ESTATE;
      snprintf(a->err, sizeof a->err, "rocksdb: the flush for checkpoint '%s' of '%s' failed",
               a->dir, r->dir);
      break;
    }
    nanosleep(&ms, NULL);
  }
  if (a->rc == 0) {
    char *e = NULL;
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(r->db, &e);
    /* UINT64_MAX: no flush (the memtables hold writes of after the barrier) */
    if (!e && cp) rocksdb_checkpoint_create(cp, a->dir, UINT64_MAX, &e);
    if (cp) rocksdb_checkpoint_object_destroy(cp);
    if (e || !cp) {
      a->rc = TD_ESTATE;
      snprintf(a->err, sizeof a->err, "rocksdb: checkpoint of '%s' into '%s': %s", r->dir,
               a->dir, e ? e : "out of memory");
      rocksdb_free(e);
    }
  }
  if (a->rc) write_failed(a->dir, a->err);
  atomic_store(&a->done, 1);
  return NULL;
}

/* async_forget - free what the asynchronous checkpoint a was given. */
static void async_forget(struct async_chk *a) {
  free(a->hs);
  free(a->dir);
  a->hs = NULL;
  a->dir = NULL;
  a->nh = 0;
}

/* async_join - wait for the asynchronous checkpoint under way, if any.
 * Its outcome: 0, or TD_ESTATE with the message in r->err (its snapshot
 * child learns it from <dir>.failed). */
static int async_join(rdb_t *r) {
  struct async_chk *a = &r->as;
  if (!a->running) return 0;
  pthread_join(a->th, NULL);
  a->running = 0;
  async_forget(a);
  if (a->rc) snprintf(r->err, sizeof r->err, "%s", a->err);
  return a->rc;
}

/* hold - before a write of about bytes bytes: if an asynchronous checkpoint
 * still waits for its flush and the write could make RocksDB flush a
 * memtable (one family's past half its write_buffer, or all of them past a
 * quarter of db_write_buffer_size), wait for the checkpoint first. */
static void hold(rdb_t *r, size_t bytes) {
  struct async_chk *a = &r->as;
  if (!a->running) return;
  if (atomic_load(&a->done)) {
    (void)async_join(r);
    return;
  }
  uint64_t need = 2 * (uint64_t)bytes + 4096, sum = 0, v;
  int wait = 0;
  for (size_t i = 0; i < r->ncf && !wait; i++) {
    if (rocksdb_property_int_cf(r->db, r->cfs[i].h, "rocksdb.cur-size-active-mem-table", &v) != 0)
      v = r->wb;
    sum += v;
    wait = v + need >= r->wb / 2;
  }
  if (wait || sum + need >= r->db_wb / 4) (void)async_join(r);
}

int td_rocksdb_checkpoint_begin(td_backend_t *b, const char *dir) {
  rdb_t *r = td_backend_is_rocksdb(b) ? (rdb_t *)b : NULL;
  if (!r || !dir) return TD_EINVAL;
  (void)async_join(r); /* the one before: its child learnt its outcome */
  release_reads(r);
  struct async_chk *a = &r->as;
  a->hs = malloc((r->ncf ? r->ncf : 1) * sizeof *a->hs);
  a->dir = strdup(dir);
  rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
  if (!a->hs || !a->dir || !fo) {
    if (fo) rocksdb_flushoptions_destroy(fo);
    async_forget(a);
    return fail(r, TD_ENOMEM, NULL, "rocksdb: out of memory");
  }
  rocksdb_flushoptions_set_wait(fo, 0);
  char *e = NULL;
  a->nh = 0;
  for (size_t i = 0; i < r->ncf && !e; i++) {
    rocksdb_flush_cf(r->db, fo, r->cfs[i].h, &e);
    a->hs[a->nh++] = r->cfs[i].h;
  }
  rocksdb_flushoptions_destroy(fo);
  a->rc = 0;
  a->err[0] = '\0';
  atomic_store(&a->done, 0);
  int rc = e ? TD_ESTATE : pthread_create(&a->th, NULL, async_main, r) ? TD_ENOMEM : 0;
  if (rc) {
    async_forget(a);
    return e ? fail(r, rc, e, "rocksdb: flush of '%s'", r->dir)
             : fail(r, rc, NULL, "rocksdb: cannot start the checkpoint thread of '%s'", r->dir);
  }
  a->running = 1;
  return 0;
}

int td_rocksdb_checkpoint_end(td_backend_t *b) {
  return td_backend_is_rocksdb(b) ? async_join((rdb_t *)b) : TD_EINVAL;
}

/* ---- backend.h's operations ---- */

static int rdb_get(td_backend_t *b, uint32_t sid, uint32_t kg, td_bytes_t key,
                   td_bytes_t ns, td_bytes_t *out) {
  rdb_t *r = (rdb_t *)b;
  size_t klen;
  int rc = check(r, sid, kg, key, ns, &klen);
  if (rc) return rc;
  rocksdb_column_family_handle_t *h = cf_of(r, sid, 0);
  rocksdb_pinnableslice_t *p = NULL;
  if (h) {
    char *e = NULL;
    p = rocksdb_get_pinned_cf(r->db, r->ro, h, (const char *)r->kbuf, klen, &e);
    if (e) return fail(r, TD_ESTATE, e, "rocksdb: get in '%s'", r->dir);
  }
  release_reads(r); /* after the lookup: key may point into the old value */
  r->pin = p;
  if (!p) return 0;
  out->data = rocksdb_pinnableslice_value(p, &out->len);
  if (!out->data) out->data = "";
  return 1;
}

static int rdb_put(td_backend_t *b, uint32_t sid, uint32_t kg, td_bytes_t key,
                   td_bytes_t ns, td_bytes_t value) {
  rdb_t *r = (rdb_t *)b;
  size_t klen;
  int rc = check(r, sid, kg, key, ns, &klen);
  if (rc == 0) rc = check_value(r, value);
  if (rc) return rc;
  rocksdb_column_family_handle_t *h = cf_of(r, sid, 1);
  if (!h) return cf_error(r);
  hold(r, klen + value.len);
  char *e = NULL;
  rocksdb_put_cf(r->db, r->wo, h, (const char *)r->kbuf, klen,
                 value.len ? value.data : "", value.len, &e);
  wrote(r); /* after the write: value may point into a borrowed one */
  if (e) return fail(r, TD_ESTATE, e, "rocksdb: put in '%s'", r->dir);
  return 0;
}

static int rdb_remove(td_backend_t *b, uint32_t sid, uint32_t kg,
                      td_bytes_t key, td_bytes_t ns) {
  rdb_t *r = (rdb_t *)b;
  size_t klen;
  int rc = check(r, sid, kg, key, ns, &klen);
  if (rc) return rc;
  rocksdb_column_family_handle_t *h = cf_of(r, sid, 0);
  if (!h) {
    release_reads(r);
    return 0;
  }
  char *e = NULL;
  rocksdb_pinnableslice_t *p =
      rocksdb_get_pinned_cf(r->db, r->ro, h, (const char *)r->kbuf, klen, &e);
  if (e) return fail(r, TD_ESTATE, e, "rocksdb: get in '%s'", r->dir);
  if (!p) {
    release_reads(r);
    return 0;
  }
  rocksdb_pinnableslice_destroy(p);
  hold(r, klen);
  rocksdb_delete_cf(r->db, r->wo, h, (const char *)r->kbuf, klen, &e);
  wrote(r);
  if (e) return fail(r, TD_ESTATE, e, "rocksdb: delete in '%s'", r->dir);
  return 1;
}

/* A scan over several families: one iterator each, merged by key group. */
typedef struct scan_src {
  uint32_t sid;
  rocksdb_iterator_t *it;
} scan_src_t;

static uint32_t iter_kg(rocksdb_iterator_t *it) {
  size_t len;
  const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &len);
  return len >= KG_BYTES ? ((uint32_t)k[0] << 8) | k[1] : 0;
}

/* visit_group - call fn on src's entries of key group kg. */
static int visit_group(rdb_t *r, scan_src_t *s, uint32_t kg,
                       td_state_visit_fn fn, void *ud) {
  while (rocksdb_iter_valid(s->it) && iter_kg(s->it) == kg) {
    td_state_entry_t e;
    size_t klen, vlen;
    const char *k = rocksdb_iter_key(s->it, &klen);
    const char *v = rocksdb_iter_value(s->it, &vlen);
    if (decode(k, klen, &e.key_group, &e.key, &e.ns))
      return fail(r, TD_ECORRUPT, NULL,
                  "rocksdb: malformed key in column family s%u of '%s'",
                  (unsigned)s->sid, r->dir);
    e.state_id = s->sid;
    e.value.data = v ? v : "";
    e.value.len = vlen;
    int rc = fn(&e, ud);
    if (rc) return rc;
    rocksdb_iter_next(s->it);
  }
  return 0;
}

static int rdb_scan(td_backend_t *b, uint32_t sid, uint32_t kg_from,
                    uint32_t kg_to, td_state_visit_fn fn, void *ud) {
  rdb_t *r = (rdb_t *)b;
  release_reads(r);
  if (kg_from < b->kg_first) kg_from = b->kg_first;
  if (kg_to > b->kg_last) kg_to = b->kg_last;
  if (kg_from > kg_to) return 0;
  size_t first = 0, n = r->ncf;
  if (sid != UINT32_MAX) {
    cf_t *c = find_cf(r, sid);
    if (!c) return 0;
    first = (size_t)(c - r->cfs);
    n = 1;
  }
  if (n == 0) return 0;
  unsigned char lo[KG_BYTES], hi[KG_BYTES];
  kg_put(lo, kg_from);
  kg_put(hi, kg_to + 1);
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  scan_src_t *src = calloc(n, sizeof *src);
  if (!ro || !src) {
    if (ro) rocksdb_readoptions_destroy(ro);
    free(src);
    return fail(r, TD_ENOMEM, NULL, "rocksdb: out of memory");
  }
  rocksdb_readoptions_set_iterate_lower_bound(ro, (const char *)lo, KG_BYTES);
  rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, KG_BYTES);
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    src[i].sid = r->cfs[first + i].sid;
    src[i].it = rocksdb_create_iterator_cf(r->db, ro, r->cfs[first + i].h);
    rocksdb_iter_seek(src[i].it, (const char *)lo, KG_BYTES);
  }
  /* the lowest key group among the sources, then each source's entries of
   * it in state id order */
  while (rc == 0) {
    uint32_t kg = UINT32_MAX;
    for (size_t i = 0; i < n; i++)
      if (rocksdb_iter_valid(src[i].it) && iter_kg(src[i].it) < kg)
        kg = iter_kg(src[i].it);
    if (kg == UINT32_MAX) break;
    for (size_t i = 0; i < n && rc == 0; i++)
      rc = visit_group(r, &src[i], kg, fn, ud);
  }
  for (size_t i = 0; i < n; i++) {
    char *e = NULL;
    rocksdb_iter_get_error(src[i].it, &e);
    if (e && rc == 0) rc = fail(r, TD_ESTATE, e, "rocksdb: scan of '%s'", r->dir);
    else if (e) rocksdb_free(e);
    rocksdb_iter_destroy(src[i].it);
  }
  free(src);
  rocksdb_readoptions_destroy(ro);
  return rc;
}

static uint64_t rdb_count(td_backend_t *b) {
  rdb_t *r = (rdb_t *)b;
  release_reads(r);
  if (r->count_valid) return r->count;
  uint64_t n = 0;
  int ok = 1;
  for (size_t i = 0; i < r->ncf; i++) {
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(r->db, r->ro, r->cfs[i].h);
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
         rocksdb_iter_next(it))
      n++;
    char *e = NULL;
    rocksdb_iter_get_error(it, &e);
    if (e) {
      ok = 0;
      fail(r, TD_ESTATE, e, "rocksdb: count in '%s'", r->dir);
    }
    rocksdb_iter_destroy(it);
  }
  r->count = n;
  r->count_valid = ok;
  return n;
}

/* rm_entry - nftw callback of remove_tree. */
static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

static int remove_tree(const char *dir) {
  return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -errno;
}

/* close_db - close the database and drop the family handles. */
static void close_db(rdb_t *r) {
  (void)async_join(r);
  for (size_t i = 0; i < r->ncf; i++)
    rocksdb_column_family_handle_destroy(r->cfs[i].h);
  r->ncf = 0;
  if (r->dflt) rocksdb_column_family_handle_destroy(r->dflt);
  r->dflt = NULL;
  if (r->db) rocksdb_close(r->db);
  r->db = NULL;
}

static void rdb_free(td_backend_t *b) {
  rdb_t *r = (rdb_t *)b;
  release_reads(r);
  if (r->batch) rocksdb_writebatch_destroy(r->batch);
  free(r->stg);
  free(r->sbuf);
  close_db(r);
  for (size_t i = 0; i < r->nttl; i++) ttl_free(r->ttls[i]);
  free(r->ttls);
  if (r->opts) rocksdb_options_destroy(r->opts);
  if (r->table) rocksdb_block_based_options_destroy(r->table);
  if (r->ro) rocksdb_readoptions_destroy(r->ro);
  if (r->wo) rocksdb_writeoptions_destroy(r->wo);
  if (r->has_cache) cache_release();
  if (r->remove_on_free && r->dir) (void)remove_tree(r->dir);
  free(r->dir);
  free(r->cfs);
  free(r->kbuf);
  free(r);
}

static const td_backend_ops_t rdb_ops = {
    .name = "rocksdb",
    .get = rdb_get,
    .put = rdb_put,
    .remove = rdb_remove,
    .scan = rdb_scan,
    .count = rdb_count,
    .free = rdb_free,
};

int td_backend_is_rocksdb(const td_backend_t *b) {
  return b && b->ops == &rdb_ops;
}

/* ---- opening ---- */

/* mkdirs - create dir and its missing parents. 0 or -errno. */
static int mkdirs(const char *dir) {
  char *p = strdup(dir);
  if (!p) return TD_ENOMEM;
  int rc = 0;
  for (char *s = p + 1; rc == 0; s++) {
    if (*s != '/' && *s != '\0') continue;
    char c = *s;
    *s = '\0';
    if (mkdir(p, 0777) != 0 && errno != EEXIST) rc = -errno;
    *s = c;
    if (c == '\0') break;
  }
  free(p);
  struct stat st;
  if (rc == 0 && stat(dir, &st) != 0) rc = -errno;
  if (rc == 0 && !S_ISDIR(st.st_mode)) rc = -ENOTDIR;
  return rc;
}

/* make_options - the options every database and family of r uses. */
static int make_options(rdb_t *r, const td_rocksdb_options_t *opt) {
  if (opt->block_cache) td_rocksdb_shared_cache(opt->block_cache);
  rocksdb_cache_t *c = cache_acquire();
  if (!c) return TD_ENOMEM;
  r->has_cache = 1;
  size_t wb = opt->write_buffer ? opt->write_buffer
                                : TD_ROCKSDB_WRITE_BUFFER_DEFAULT;
  int mwb = opt->max_write_buffers > 0 ? opt->max_write_buffers
                                       : TD_ROCKSDB_MAX_WRITE_BUFFERS_DEFAULT;
  r->opts = rocksdb_options_create();
  r->table = rocksdb_block_based_options_create();
  r->ro = rocksdb_readoptions_create();
  r->wo = rocksdb_writeoptions_create();
  rocksdb_mergeoperator_t *m = rocksdb_mergeoperator_create(
      NULL, merge_destroy, merge_full, merge_partial, merge_delete, merge_name);
  if (!r->opts || !r->table || !r->ro || !r->wo || !m) {
    if (m) rocksdb_mergeoperator_destroy(m);
    return TD_ENOMEM;
  }
  rocksdb_options_set_merge_operator(r->opts, m); /* the options own it */
  rocksdb_block_based_options_set_block_cache(r->table, c);
  rocksdb_block_based_options_set_cache_index_and_filter_blocks(r->table, 1);
  rocksdb_block_based_options_set_filter_policy(
      r->table, rocksdb_filterpolicy_create_bloom(10));
  rocksdb_options_set_block_based_table_factory(r->opts, r->table);
  rocksdb_options_set_create_if_missing(r->opts, 1);
  rocksdb_options_set_create_missing_column_families(r->opts, 1);
  /* a bloom filter over whole keys in each memtable: a get of a key the
   * memtable lacks (the first touch of a key, most gets once the state
   * outgrows it) skips the skip-list search. 1% of the write buffer: about
   * 5-13 bits per entry at 40-100 bytes an entry. A new memtable zeroes
   * its filter, in the task thread at a checkpoint's memtable switch:
   * with 10% (6.4 MiB per 64 MiB memtable) that switch took 25-33 ms here,
   * with 1% about 4 ms. A C loop of R1's get + put over 1M keys ran as
   * fast with 1% as with 10% (within this machine's noise), and about 20%
   * slower with no filter */
  rocksdb_options_set_memtable_prefix_bloom_size_ratio(r->opts, 0.01);
  rocksdb_options_set_memtable_whole_key_filtering(r->opts, 1);
  r->wb = wb;
  r->db_wb = wb > SIZE_MAX / (size_t)mwb ? SIZE_MAX : wb * (size_t)mwb;
  rocksdb_options_set_write_buffer_size(r->opts, wb);
  rocksdb_options_set_max_write_buffer_number(r->opts, mwb);
  rocksdb_options_set_db_write_buffer_size(r->opts, r->db_wb);
  rocksdb_options_set_info_log_level(r->opts, 2); /* warnings and worse */
  rocksdb_options_set_keep_log_file_num(r->opts, 2);
  rocksdb_writeoptions_disable_WAL(r->wo, 1);
  return 0;
}

static int has_db(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/CURRENT", dir);
  return access(path, F_OK) == 0;
}

/* list_cfs - the family names of the database in dir ("default" alone when
 * there is none yet). Free with rocksdb_list_column_families_destroy. */
static char **list_cfs(rdb_t *r, const char *dir, size_t *n) {
  if (!has_db(dir)) {
    char **names = malloc(sizeof *names);
    if (names) names[0] = strdup("default");
    if (!names || !names[0]) {
      free(names);
      fail(r, TD_ENOMEM, NULL, "rocksdb: out of memory");
      return NULL;
    }
    *n = 1;
    return names;
  }
  char *e = NULL;
  char **names = rocksdb_list_column_families(r->opts, dir, n, &e);
  if (e || !names) {
    fail(r, TD_ESTATE, e, "rocksdb: list column families of '%s'", dir);
    return NULL;
  }
  return names;
}

/* open_db - open (or create) the database in r->dir with its families. */
static int open_db(rdb_t *r) {
  /* RocksDB's perf context counts every get and put by default
   * (kEnableCount), in thread-local variables that a shared library reaches
   * through __tls_get_addr: about 12% of a get + put loop's time here. The
   * level is per thread; this is the thread that reads and writes. */
  rocksdb_set_perf_level(rocksdb_disable);
  int rc = mkdirs(r->dir);
  if (rc) return fail(r, rc, NULL, "rocksdb: cannot create state directory "
                      "'%s': %s", r->dir, td_strerror(rc));
  if (access(r->dir, W_OK | X_OK) != 0)
    return fail(r, -errno, NULL, "rocksdb: state directory '%s' is not "
                "writable: %s", r->dir, strerror(errno));
  size_t n = 0;
  char **names = list_cfs(r, r->dir, &n);
  if (!names) return strstr(r->err, "out of memory") ? TD_ENOMEM : TD_ESTATE;
  const rocksdb_options_t **cfo = malloc(n * sizeof *cfo);
  rocksdb_column_family_handle_t **hs = calloc(n, sizeof *hs);
  if (!cfo || !hs) {
    rc = fail(r, TD_ENOMEM, NULL, "rocksdb: out of memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    cfo[i] = r->opts;
    int64_t sid = parse_cf_name(names[i]);
    if (sid >= 0) {
      ttl_t *t = ttl_of(r, (uint32_t)sid);
      if (!t) {
        rc = fail(r, TD_ENOMEM, NULL, "rocksdb: out of memory");
        goto done;
      }
      cfo[i] = t->opts;
    }
    if (strcmp(names[i], "default") != 0 && sid < 0) {
      rc = fail(r, TD_ESTATE, NULL, "rocksdb: '%s' has a column family "
                "Tide did not make: '%s'", r->dir, names[i]);
      goto done;
    }
  }
  char *e = NULL;
  r->db = rocksdb_open_column_families(r->opts, r->dir, (int)n,
                                       (const char *const *)names, cfo, hs, &e);
  if (e || !r->db) {
    r->db = NULL;
    rc = fail(r, TD_ESTATE, e, "rocksdb: cannot open '%s'", r->dir);
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    int64_t sid = parse_cf_name(names[i]);
    if (sid < 0) {
      r->dflt = hs[i];
    } else if (add_cf(r, (uint32_t)sid, hs[i])) {
      rc = fail(r, TD_ENOMEM, NULL, "rocksdb: out of memory");
      for (size_t j = i; j < n; j++)
        if (hs[j] != r->dflt) rocksdb_column_family_handle_destroy(hs[j]);
      break;
    }
  }
done:
  free(cfo);
  free(hs);
  rocksdb_list_column_families_destroy(names, n);
  return rc;
}

static int check_range(const td_rocksdb_options_t *opt, uint32_t kg_first,
                       uint32_t kg_last, char *err, size_t errlen) {
  if (opt && opt->dir && opt->dir[0] && kg_first <= kg_last &&
      kg_last < TD_MAX_PARALLELISM_LIMIT)
    return 0;
  if (errlen)
    snprintf(err, errlen, "rocksdb: %s", !opt || !opt->dir || !opt->dir[0]
             ? "no state directory" : "bad key group range");
  return TD_EINVAL;
}

/* new_rdb - check the arguments, then an unopened backend with its
 * options. Its remove_on_free stays 0 until the caller has put something
 * of its own in the directory. On failure err says why. */
static int new_rdb(rdb_t **out, const td_rocksdb_options_t *opt,
                   uint32_t kg_first, uint32_t kg_last, char *err,
                   size_t errlen) {
  int rc = check_range(opt, kg_first, kg_last, err, errlen);
  if (rc) return rc;
  rdb_t *r = calloc(1, sizeof *r);
  if (r) {
    r->base.ops = &rdb_ops;
    r->base.kg_first = kg_first;
    r->base.kg_last = kg_last;
    r->dir = strdup(opt->dir);
  }
  rc = !r ? TD_ENOMEM : !r->dir ? TD_ENOMEM : make_options(r, opt);
  if (rc) {
    if (r) rdb_free(&r->base);
    if (errlen) snprintf(err, errlen, "rocksdb: out of memory");
    return rc;
  }
  *out = r;
  return 0;
}

/* finish - hand r out, or free it and copy its message to err. */
static int finish(rdb_t *r, int rc, td_backend_t **out, char *err,
                  size_t errlen) {
  if (rc == 0) {
    r->err[0] = '\0';
    *out = &r->base;
    return 0;
  }
  if (errlen) snprintf(err, errlen, "%s", r->err);
  rdb_free(&r->base);
  return rc;
}

int td_backend_new_rocksdb(td_backend_t **out, const td_rocksdb_options_t *opt,
                           uint32_t kg_first, uint32_t kg_last, char *err,
                           size_t errlen) {
  rdb_t *r;
  int rc = new_rdb(&r, opt, kg_first, kg_last, err, errlen);
  if (rc) return rc;
  rc = open_db(r);
  /* a directory we could not open is not ours to remove */
  if (rc == 0) r->remove_on_free = opt->remove_on_free;
  return finish(r, rc, out, err, errlen);
}

/* ---- td_rocksdb_add, batches, multi-get ---- */

static rdb_t *as_rdb(td_backend_t *b) {
  return td_backend_is_rocksdb(b) ? (rdb_t *)b : NULL;
}

int td_rocksdb_add(td_backend_t *b, uint32_t sid, uint32_t kg, td_bytes_t key,
                   td_bytes_t ns, int64_t delta) {
  rdb_t *r = as_rdb(b);
  if (!r) return TD_EINVAL;
  size_t klen;
  int rc = check(r, sid, kg, key, ns, &klen);
  if (rc) return rc;
  rocksdb_column_family_handle_t *h = cf_of(r, sid, 1);
  if (!h) return cf_error(r);
  char op[8], *e = NULL;
  put_le64(op, (uint64_t)delta);
  hold(r, klen + 8);
  rocksdb_merge_cf(r->db, r->wo, h, (const char *)r->kbuf, klen, op, 8, &e);
  wrote(r);
  if (e) return fail(r, TD_ESTATE, e, "rocksdb: merge in '%s'", r->dir);
  return 0;
}

/* batch_of - r's batch, created on first use; NULL when out of memory. */
static rocksdb_writebatch_t *batch_of(rdb_t *r) {
  if (!r->batch) r->batch = rocksdb_writebatch_create();
  if (!r->batch) fail(r, TD_ENOMEM, NULL, "rocksdb: out of memory");
  return r->batch;
}

/* stage - append a write of the key in r->kbuf (klen bytes) and value to
 * the staged batch of family h. */
static int stage(rdb_t *r, rocksdb_column_family_handle_t *h, uint32_t sid, char op,
                 size_t klen, const void *value, size_t vlen) {
  if (r->nstg == r->capstg) {
    size_t cap = r->capstg ? r->capstg * 2 : 256;
    staged_t *n = realloc(r->stg, cap * sizeof *n);
    if (!n) return fail(r, TD_ENOMEM, NULL, "rocksdb: out of memory");
    r->stg = n;
    r->capstg = cap;
  }
  if (r->scap - r->slen < klen + vlen) {
    size_t cap = r->scap ? r->scap : 4096;
    while (cap - r->slen < klen + vlen) cap *= 2;
    unsigned char *n = realloc(r->sbuf, cap);
    if (!n) return fail(r, TD_ENOMEM, NULL, "rocksdb: out of memory");
    r->sbuf = n;
    r->scap = cap;
  }
  staged_t *e = &r->stg[r->nstg];
  *e = (staged_t){.h = h, .sid = sid, .seq = (uint32_t)r->nstg, .koff = r->slen, .klen = klen,
                  .voff = r->slen + klen, .vlen = vlen, .op = op};
  memcpy(r->sbuf + r->slen, r->kbuf, klen);
  if (vlen) memcpy(r->sbuf + r->slen + klen, value, vlen);
  r->slen += klen + vlen;
  r->nstg++;
  return 0;
}

/* batch_prep - the checks every batch call makes: the key in r->kbuf, the
 * family in *h (created if needed: even a remove may follow a put of the
 * same state in the batch). */
static int batch_prep(rdb_t *r, uint32_t sid, uint32_t kg, td_bytes_t key,
                      td_bytes_t ns, size_t *klen,
                      rocksdb_column_family_handle_t **h) {
  if (!r) return TD_EINVAL;
  int rc = check(r, sid, kg, key, ns, klen);
  if (rc) return rc;
  *h = cf_of(r, sid, 1);
  return *h ? 0 : cf_error(r);
}

int td_rocksdb_batch_put(td_backend_t *b, uint32_t sid, uint32_t kg,
                         td_bytes_t key, td_bytes_t ns, td_bytes_t value) {
  rdb_t *r = as_rdb(b);
  size_t klen;
  rocksdb_column_family_handle_t *h;
  int rc = batch_prep(r, sid, kg, key, ns, &klen, &h);
  if (rc == 0) rc = check_value(r, value);
  if (rc) return rc;
  return stage(r, h, sid, 'p', klen, value.data, value.len);
}

int td_rocksdb_batch_remove(td_backend_t *b, uint32_t sid, uint32_t kg,
                            td_bytes_t key, td_bytes_t ns) {
  rdb_t *r = as_rdb(b);
  size_t klen;
  rocksdb_column_family_handle_t *h;
  int rc = batch_prep(r, sid, kg, key, ns, &klen, &h);
  if (rc) return rc;
  return stage(r, h, sid, 'd', klen, NULL, 0);
}

int td_rocksdb_batch_add(td_backend_t *b, uint32_t sid, uint32_t kg,
                         td_bytes_t key, td_bytes_t ns, int64_t delta) {
  rdb_t *r = as_rdb(b);
  size_t klen;
  rocksdb_column_family_handle_t *h;
  int rc = batch_prep(r, sid, kg, key, ns, &klen, &h);
  if (rc) return rc;
  char op[8];
  put_le64(op, (uint64_t)delta);
  return stage(r, h, sid, 'm', klen, op, 8);
}

size_t td_rocksdb_batch_size(td_backend_t *b) {
  rdb_t *r = as_rdb(b);
  return r ? r->nstg : 0;
}

/* the staged writes' order: family, key bytes (RocksDB's bytewise order),
 * then call order */
static int staged_cmp(const void *a, const void *b, void *buf) {
  const staged_t *x = a, *y = b;
  const unsigned char *sb = buf;
  if (x->sid != y->sid) return x->sid < y->sid ? -1 : 1;
  size_t n = x->klen < y->klen ? x->klen : y->klen;
  int c = memcmp(sb + x->koff, sb + y->koff, n);
  if (c) return c;
  if (x->klen != y->klen) return x->klen < y->klen ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int td_rocksdb_batch_commit(td_backend_t *b) {
  rdb_t *r = as_rdb(b);
  if (!r) return TD_EINVAL;
  if (r->nstg == 0) return 0;
  if (!batch_of(r)) return TD_ENOMEM;
  hold(r, r->slen + 64 * r->nstg);
  qsort_r(r->stg, r->nstg, sizeof *r->stg, staged_cmp, r->sbuf);
  for (size_t i = 0; i < r->nstg; i++) {
    const staged_t *e = &r->stg[i];
    const char *k = (const char *)r->sbuf + e->koff, *v = (const char *)r->sbuf + e->voff;
    if (e->op == 'p') rocksdb_writebatch_put_cf(r->batch, e->h, k, e->klen, e->vlen ? v : "", e->vlen);
    else if (e->op == 'd') rocksdb_writebatch_delete_cf(r->batch, e->h, k, e->klen);
    else rocksdb_writebatch_merge_cf(r->batch, e->h, k, e->klen, v, e->vlen);
  }
  r->nstg = 0;
  r->slen = 0;
  char *e = NULL;
  rocksdb_write(r->db, r->wo, r->batch, &e);
  rocksdb_writebatch_clear(r->batch);
  wrote(r);
  if (e) return fail(r, TD_ESTATE, e, "rocksdb: write batch in '%s'", r->dir);
  return 0;
}

void td_rocksdb_batch_abort(td_backend_t *b) {
  rdb_t *r = as_rdb(b);
  if (!r) return;
  r->nstg = 0;
  r->slen = 0;
  if (r->batch) rocksdb_writebatch_clear(r->batch);
}

int td_rocksdb_multi_get(td_backend_t *b, const td_rocksdb_key_t *keys,
                         size_t n, td_bytes_t *values, int *found) {
  rdb_t *r = as_rdb(b);
  if (!r || (n && (!keys || !values || !found))) return TD_EINVAL;
  /* every address checked and encoded, one after the other, in kb */
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    size_t klen;
    int rc = check(r, keys[i].state_id, keys[i].key_group, keys[i].key,
                   keys[i].ns, &klen);
    if (rc) return rc;
    total += klen;
  }
  unsigned char *kb = malloc(total ? total : 1);
  const char **kp = malloc((n ? n : 1) * sizeof *kp);
  size_t *kl = malloc((n ? n : 1) * sizeof *kl);
  size_t *vl = malloc((n ? n : 1) * sizeof *vl);
  char **vals = calloc(n ? n : 1, sizeof *vals);
  char **errs = calloc(n ? n : 1, sizeof *errs);
  const rocksdb_column_family_handle_t **hs = malloc((n ? n : 1) * sizeof *hs);
  int rc = 0;
  if (!kb || !kp || !kl || !vl || !vals || !errs || !hs) {
    rc = fail(r, TD_ENOMEM, NULL, "rocksdb: out of memory");
    goto done;
  }
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    kl[i] = encode(kb + off, keys[i].key_group, keys[i].key, keys[i].ns);
    kp[i] = (const char *)kb + off;
    off += kl[i];
    rocksdb_column_family_handle_t *h = cf_of(r, keys[i].state_id, 0);
    hs[i] = h ? h : r->dflt; /* "default" holds nothing: not found */
  }
  if (n)
    rocksdb_multi_get_cf(r->db, r->ro, hs, n, kp, kl, vals, vl, errs);
  release_reads(r);
  r->mg_vals = vals;
  r->mg_n = n;
  vals = NULL;
  for (size_t i = 0; i < n; i++) {
    if (errs[i] && rc == 0)
      rc = fail(r, TD_ESTATE, errs[i], "rocksdb: multi-get in '%s'", r->dir);
    else if (errs[i])
      rocksdb_free(errs[i]);
    /* a found value is a malloc'd copy, non-NULL even when empty (glibc's
     * malloc(0)); a missing one is NULL */
    found[i] = r->mg_vals[i] != NULL;
    values[i].data = r->mg_vals[i];
    values[i].len = found[i] ? vl[i] : 0;
  }
done:
  free(kb);
  free(kp);
  free(kl);
  free(vl);
  free(vals);
  free(errs);
  free(hs);
  return rc;
}

/* ---- iteration over one key's namespaces ---- */

void td_rocksdb_iter_free(td_rocksdb_iter_t *it) {
  if (!it) return;
  if (it->it) rocksdb_iter_destroy(it->it);
  if (it->ro) rocksdb_readoptions_destroy(it->ro);
  free(it->lo);
  free(it->hi);
  free(it);
}

/* bound - prefix p (plen bytes) followed by ns, or when ns is NULL and
 * upper, the least key above every key that starts with p. */
static unsigned char *bound(const unsigned char *p, size_t plen,
                            const td_bytes_t *ns, int upper, size_t *len) {
  size_t extra = ns ? ns->len : 0;
  unsigned char *b = malloc(plen + extra + 1);
  if (!b) return NULL;
  memcpy(b, p, plen);
  if (ns) {
    if (ns->len) memcpy(b + plen, ns->data, ns->len);
    *len = plen + ns->len;
  } else if (upper) {
    /* the prefix starts with a key group < 0x8000: some byte is < 0xff */
    size_t i = plen;
    while (b[i - 1] == 0xff) i--;
    b[i - 1]++;
    *len = i;
  } else {
    *len = plen;
  }
  return b;
}

int td_rocksdb_iter_new(td_rocksdb_iter_t **out, td_backend_t *b, uint32_t sid,
                        uint32_t kg, td_bytes_t key, const td_bytes_t *ns_from,
                        const td_bytes_t *ns_to) {
  rdb_t *r = as_rdb(b);
  if (!r || !out) return TD_EINVAL;
  size_t plen, lolen = 0, hilen = 0;
  td_bytes_t none = {NULL, 0};
  int rc = check(r, sid, kg, key, none, &plen);
  if (rc) return rc;
  if ((ns_from && ns_from->len && !ns_from->data) ||
      (ns_to && ns_to->len && !ns_to->data))
    return fail(r, TD_EINVAL, NULL, "rocksdb: bad namespace bound");
  td_rocksdb_iter_t *it = calloc(1, sizeof *it);
  if (!it) return fail(r, TD_ENOMEM, NULL, "rocksdb: out of memory");
  it->r = r;
  it->prefix = plen;
  it->lo = bound(r->kbuf, plen, ns_from, 0, &lolen);
  it->hi = bound(r->kbuf, plen, ns_to, 1, &hilen);
  it->ro = rocksdb_readoptions_create();
  if (!it->lo || !it->hi || !it->ro) {
    td_rocksdb_iter_free(it);
    return fail(r, TD_ENOMEM, NULL, "rocksdb: out of memory");
  }
  rocksdb_readoptions_set_iterate_lower_bound(it->ro, (const char *)it->lo, lolen);
  rocksdb_readoptions_set_iterate_upper_bound(it->ro, (const char *)it->hi, hilen);
  rocksdb_column_family_handle_t *h = cf_of(r, sid, 0);
  it->it = rocksdb_create_iterator_cf(r->db, it->ro, h ? h : r->dflt);
  if (!it->it) {
    td_rocksdb_iter_free(it);
    return fail(r, TD_ENOMEM, NULL, "rocksdb: out of memory");
  }
  /* seek now: the iterator's snapshot is the state at this call */
  rocksdb_iter_seek(it->it, (const char *)it->lo, lolen);
  *out = it;
  return 0;
}

int td_rocksdb_iter_next(td_rocksdb_iter_t *it, td_bytes_t *ns,
                         td_bytes_t *value) {
  if (!it || !ns || !value) return TD_EINVAL;
  if (it->started && rocksdb_iter_valid(it->it)) rocksdb_iter_next(it->it);
  it->started = 1;
  if (!rocksdb_iter_valid(it->it)) {
    char *e = NULL;
    rocksdb_iter_get_error(it->it, &e);
    if (e)
      return fail(it->r, TD_ESTATE, e, "rocksdb: iteration in '%s'", it->r->dir);
    return 0;
  }
  size_t klen, vlen;
  const char *k = rocksdb_iter_key(it->it, &klen);
  const char *v = rocksdb_iter_value(it->it, &vlen);
  ns->data = k + it->prefix;
  ns->len = klen - it->prefix;
  value->data = v ? v : "";
  value->len = vlen;
  return 1;
}

/* ---- checkpoints ---- */

void td_rocksdb_files_free(char **files, size_t n) {
  if (!files) return;
  for (size_t i = 0; i < n; i++) free(files[i]);
  free(files);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* list_files - the regular files of dir, sorted. 0, -errno or TD_ENOMEM. */
static int list_files(const char *dir, char ***files, size_t *n) {
  DIR *d = opendir(dir);
  if (!d) return -errno;
  char **v = NULL;
  size_t cnt = 0, cap = 0;
  int rc = 0;
  struct dirent *de;
  while (rc == 0 && (de = readdir(d)) != NULL) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (cnt == cap) {
      size_t c = cap ? cap * 2 : 16;
      char **p = realloc(v, c * sizeof *p);
      if (!p) {
        rc = TD_ENOMEM;
        break;
      }
      v = p;
      cap = c;
    }
    v[cnt] = strdup(de->d_name);
    if (!v[cnt]) rc = TD_ENOMEM;
    else cnt++;
  }
  closedir(d);
  if (rc) {
    td_rocksdb_files_free(v, cnt);
    return rc;
  }
  if (cnt) qsort(v, cnt, sizeof *v, cmp_str);
  *files = v;
  *n = cnt;
  return 0;
}

int td_rocksdb_checkpoint(td_backend_t *b, const char *dir, char ***files,
                          size_t *n) {
  rdb_t *r = as_rdb(b);
  if (!r || !dir || !files || !n) return TD_EINVAL;
  (void)async_join(r); /* its flush must not take later writes along */
  release_reads(r);
  char *e = NULL;
  rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
  if (!fo) return fail(r, TD_ENOMEM, NULL, "rocksdb: out of memory");
  rocksdb_flushoptions_set_wait(fo, 1);
  for (size_t i = 0; i < r->ncf && !e; i++)
    rocksdb_flush_cf(r->db, fo, r->cfs[i].h, &e);
  rocksdb_flushoptions_destroy(fo);
  if (e) return fail(r, TD_ESTATE, e, "rocksdb: flush of '%s'", r->dir);
  rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(r->db, &e);
  if (e || !cp)
    return fail(r, TD_ESTATE, e, "rocksdb: checkpoint of '%s' into '%s'",
                r->dir, dir);
  rocksdb_checkpoint_create(cp, dir, 0, &e);
  rocksdb_checkpoint_object_destroy(cp);
  if (e)
    return fail(r, TD_ESTATE, e, "rocksdb: checkpoint of '%s' into '%s'",
                r->dir, dir);
  int rc = list_files(dir, files, n);
  if (rc)
    return fail(r, rc, NULL, "rocksdb: cannot list checkpoint '%s': %s", dir,
                td_strerror(rc));
  return 0;
}

/* ---- restore ---- */

/* copy_file - copy src to dst (created, not there before). 0 or -errno. */
static int copy_file(const char *src, const char *dst) {
  int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0) return -errno;
  int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (out < 0) {
    int rc = -errno;
    close(in);
    return rc;
  }
  char buf[65536];
  int rc = 0;
  for (;;) {
    ssize_t got = read(in, buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      if (got < 0) rc = -errno;
      break;
    }
    for (ssize_t off = 0; off < got && rc == 0;) {
      ssize_t w = write(out, buf + off, (size_t)(got - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) rc = -errno;
      else off += w;
    }
    if (rc) break;
  }
  if (close(out) != 0 && rc == 0) rc = -errno;
  close(in);
  return rc;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* copy_checkpoint - the files of checkpoint src into r->dir: SST files
 * hard-linked (immutable; copied across file systems), the rest copied
 * (RocksDB rewrites them). */
static int copy_checkpoint(rdb_t *r, const char *src) {
  char **files = NULL;
  size_t n = 0;
  int rc = list_files(src, &files, &n);
  if (rc)
    return fail(r, rc, NULL, "rocksdb: cannot read checkpoint '%s': %s", src,
                td_strerror(rc));
  for (size_t i = 0; i < n && rc == 0; i++) {
    char from[4096], to[4096];
    snprintf(from, sizeof from, "%s/%s", src, files[i]);
    snprintf(to, sizeof to, "%s/%s", r->dir, files[i]);
    if (ends_with(files[i], ".sst") && link(from, to) == 0) continue;
    rc = copy_file(from, to);
    if (rc)
      fail(r, rc, NULL, "rocksdb: cannot copy '%s' to '%s': %s", from, to,
           td_strerror(rc));
  }
  td_rocksdb_files_free(files, n);
  return rc;
}

/* clip - drop every entry outside [kg_first, kg_last] from each family:
 * whole files first, then a range deletion for the rest. */
static int clip(rdb_t *r) {
  unsigned char ranges[2][2][KG_BYTES];
  int nr = 0;
  if (r->base.kg_first > 0) {
    kg_put(ranges[nr][0], 0);
    kg_put(ranges[nr][1], r->base.kg_first);
    nr++;
  }
  kg_put(ranges[nr][0], r->base.kg_last + 1);
  kg_put(ranges[nr][1], 0xffff); /* above every key group < 2^15 */
  nr++;
  for (size_t i = 0; i < r->ncf; i++)
    for (int k = 0; k < nr; k++) {
      char *e = NULL;
      const char *lo = (const char *)ranges[k][0], *hi = (const char *)ranges[k][1];
      rocksdb_delete_file_in_range_cf(r->db, r->cfs[i].h, lo, KG_BYTES, hi,
                                      KG_BYTES, &e);
      if (!e)
        rocksdb_delete_range_cf(r->db, r->wo, r->cfs[i].h, lo, KG_BYTES, hi,
                                KG_BYTES, &e);
      if (e)
        return fail(r, TD_ESTATE, e, "rocksdb: clipping s%u of '%s'",
                    (unsigned)r->cfs[i].sid, r->dir);
    }
  return 0;
}

/* copy_entries - the entries in [kg_first, kg_last] of each family of the
 * database db (families names[], handles hs[]) into r, in batches. */
static int copy_entries(rdb_t *r, const char *src, rocksdb_t *db,
                        char **names, rocksdb_column_family_handle_t **hs,
                        size_t n) {
  unsigned char lo[KG_BYTES], hi[KG_BYTES];
  kg_put(lo, r->base.kg_first);
  kg_put(hi, r->base.kg_last + 1);
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
  if (!ro || !wb) {
    if (ro) rocksdb_readoptions_destroy(ro);
    if (wb) rocksdb_writebatch_destroy(wb);
    return fail(r, TD_ENOMEM, NULL, "rocksdb: out of memory");
  }
  rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, KG_BYTES);
  rocksdb_readoptions_set_fill_cache(ro, 0);
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    int64_t sid = parse_cf_name(names[i]);
    if (sid < 0) continue; /* "default" */
    rocksdb_column_family_handle_t *to = cf_of(r, (uint32_t)sid, 1);
    if (!to) {
      rc = cf_error(r);
      break;
    }
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(db, ro, hs[i]);
    char *e = NULL;
    for (rocksdb_iter_seek(it, (const char *)lo, KG_BYTES);
         rocksdb_iter_valid(it) && !e; rocksdb_iter_next(it)) {
      size_t klen, vlen, size;
      const char *k = rocksdb_iter_key(it, &klen);
      const char *v = rocksdb_iter_value(it, &vlen);
      rocksdb_writebatch_put_cf(wb, to, k, klen, v ? v : "", vlen);
      (void)rocksdb_writebatch_data(wb, &size);
      if (size >= RESTORE_BATCH_BYTES) {
        rocksdb_write(r->db, r->wo, wb, &e);
        rocksdb_writebatch_clear(wb);
      }
    }
    if (!e) rocksdb_iter_get_error(it, &e);
    rocksdb_iter_destroy(it);
    if (!e && rocksdb_writebatch_count(wb) > 0) rocksdb_write(r->db, r->wo, wb, &e);
    rocksdb_writebatch_clear(wb);
    if (e)
      rc = fail(r, TD_ESTATE, e, "rocksdb: copying %s of '%s' into '%s'",
                names[i], src, r->dir);
  }
  rocksdb_writebatch_destroy(wb);
  rocksdb_readoptions_destroy(ro);
  return rc;
}

/* merge_from - open checkpoint src read-only and copy its entries of r's
 * range into r. */
static int merge_from(rdb_t *r, const char *src) {
  struct stat st;
  if (stat(src, &st) != 0)
    return fail(r, -errno, NULL, "rocksdb: cannot read checkpoint '%s': %s",
                src, strerror(errno));
  if (!has_db(src))
    return fail(r, TD_ESTATE, NULL, "rocksdb: '%s' holds no checkpoint", src);
  size_t n = 0;
  char **names = list_cfs(r, src, &n);
  if (!names) return TD_ESTATE;
  const rocksdb_options_t **cfo = malloc(n * sizeof *cfo);
  rocksdb_column_family_handle_t **hs = calloc(n, sizeof *hs);
  rocksdb_options_t *o = rocksdb_options_create();
  int rc = 0;
  if (!cfo || !hs || !o) {
    rc = fail(r, TD_ENOMEM, NULL, "rocksdb: out of memory");
    goto done;
  }
  /* its own options: the merge operator and table options of r, but the
   * info log in r's directory, so that nothing is written into src */
  rocksdb_mergeoperator_t *m = rocksdb_mergeoperator_create(
      NULL, merge_destroy, merge_full, merge_partial, merge_delete, merge_name);
  if (!m) {
    rc = fail(r, TD_ENOMEM, NULL, "rocksdb: out of memory");
    goto done;
  }
  rocksdb_options_set_merge_operator(o, m);
  rocksdb_options_set_block_based_table_factory(o, r->table);
  rocksdb_options_set_db_log_dir(o, r->dir);
  rocksdb_options_set_info_log_level(o, 3);
  for (size_t i = 0; i < n; i++) cfo[i] = o;
  char *e = NULL;
  rocksdb_t *db = rocksdb_open_for_read_only_column_families(
      o, src, (int)n, (const char *const *)names, cfo, hs, 0, &e);
  if (e || !db) {
    rc = fail(r, TD_ESTATE, e, "rocksdb: cannot open checkpoint '%s'", src);
    goto done;
  }
  rc = copy_entries(r, src, db, names, hs, n);
  for (size_t i = 0; i < n; i++) rocksdb_column_family_handle_destroy(hs[i]);
  rocksdb_close(db);
done:
  if (o) rocksdb_options_destroy(o);
  free(cfo);
  free(hs);
  rocksdb_list_column_families_destroy(names, n);
  return rc;
}

int td_backend_restore_rocksdb(td_backend_t **out,
                               const td_rocksdb_options_t *opt,
                               uint32_t kg_first, uint32_t kg_last,
                               const char *const *dirs, size_t n, char *err,
                               size_t errlen) {
  for (size_t i = 0; i < n; i++)
    if (!dirs || !dirs[i]) {
      if (errlen) snprintf(err, errlen, "rocksdb: no checkpoint directory");
      return TD_EINVAL;
    }
  rdb_t *r;
  int rc = new_rdb(&r, opt, kg_first, kg_last, err, errlen);
  if (rc) return rc;
  if (has_db(opt->dir)) {
    rdb_free(&r->base);
    if (errlen)
      snprintf(err, errlen, "rocksdb: cannot restore into '%s': it holds a "
               "database", opt->dir);
    return TD_EINVAL;
  }
  if (n == 1) {
    rc = mkdirs(r->dir);
    if (rc)
      fail(r, rc, NULL, "rocksdb: cannot create state directory '%s': %s",
           r->dir, td_strerror(rc));
    else if (!has_db(dirs[0]))
      rc = fail(r, TD_ESTATE, NULL, "rocksdb: '%s' holds no checkpoint",
                dirs[0]);
    if (rc == 0) rc = copy_checkpoint(r, dirs[0]);
    /* what was copied is ours to remove, whatever happens next */
    if (rc == 0) r->remove_on_free = opt->remove_on_free;
    if (rc == 0) rc = open_db(r);
    if (rc == 0) rc = clip(r);
  } else {
    rc = open_db(r);
    if (rc == 0) r->remove_on_free = opt->remove_on_free;
    for (size_t i = 0; i < n && rc == 0; i++) rc = merge_from(r, dirs[i]);
  }
  r->count_valid = 0;
  return finish(r, rc, out, err, errlen);
}
