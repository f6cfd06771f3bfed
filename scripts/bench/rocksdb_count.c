/*
 * rocksdb_count.c - the floor under goal R1 (scripts/bench/rocksdb.sh): a
 * count per key kept in RocksDB by a C loop, with what Tide's RocksDB
 * backend does per record and nothing else. Records i = 1..N, key i % KEYS;
 * per batch of 16,384 records (FLUSH_KEYS of lua/tide/state_rocksdb.lua) a
 * get per record (RocksDB's pinned get, as state/rocksdb.c's), the counts
 * kept in an array meanwhile, then the batch's puts in key order in one
 * write batch. Keys as state/rocksdb.c lays them out: a 2-byte big-endian
 * key group (of 128) then the key's MessagePack integer; values are 8-byte
 * counts. Options as state/rocksdb.c's make_options: 64 MiB write buffers
 * (2), a 256 MiB LRU block cache holding index and filter blocks, 10-bit
 * bloom filters, a whole-key memtable bloom filter (1% of the write
 * buffer), no WAL, RocksDB's perf context off.
 *
 *   rocksdb_count DIR N KEYS   prints "KEYS_SEEN N" as keyed_state.lua does
 *
 * KEYS must be at least a batch, so that no key repeats within one (the
 * loop has no cache in front of RocksDB).
 */
#include <rocksdb/c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 16384
#define KEY_GROUPS 128

typedef struct {
  unsigned char k[8];
  size_t len;
  uint64_t count;
} entry_t;

static void die(const char *what, char *err) {
  fprintf(stderr, "rocksdb_count: %s: %s\n", what, err ? err : "failed");
  exit(1);
}

/* a 32-bit mix (splitmix-style) of the key: its key group */
static unsigned key_group(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x % KEY_GROUPS;
}

/* key group + MessagePack of a non-negative integer below 2^32 */
static size_t encode_key(unsigned char *k, uint32_t key) {
  unsigned kg = key_group(key);
  k[0] = (unsigned char)(kg >> 8);
  k[1] = (unsigned char)kg;
  if (key < 128) {
    k[2] = (unsigned char)key;
    return 3;
  }
  if (key < 65536) {
    k[2] = 0xcd;
    k[3] = (unsigned char)(key >> 8);
    k[4] = (unsigned char)key;
    return 5;
  }
  k[2] = 0xce;
  for (int i = 0; i < 4; i++) k[3 + i] = (unsigned char)(key >> (24 - 8 * i));
  return 7;
}

static int by_key(const void *a, const void *b) {
  const entry_t *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->k, y->k, n);
  return c ? c : (x->len > y->len) - (x->len < y->len);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: rocksdb_count DIR N KEYS\n");
    return 2;
  }
  const char *dir = argv[1];
  long n = atol(argv[2]), keys = atol(argv[3]);
  if (n <= 0 || keys < BATCH || keys > 4294967295L) {
    fprintf(stderr, "usage: rocksdb_count DIR N KEYS\n");
    return 2;
  }
  rocksdb_set_perf_level(rocksdb_disable);
  rocksdb_options_t *o = rocksdb_options_create();
  rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();
  rocksdb_cache_t *cache = rocksdb_cache_create_lru((size_t)256 << 20);
  rocksdb_block_based_options_set_block_cache(t, cache);
  rocksdb_block_based_options_set_cache_index_and_filter_blocks(t, 1);
  rocksdb_block_based_options_set_filter_policy(t, rocksdb_filterpolicy_create_bloom(10));
  rocksdb_options_set_block_based_table_factory(o, t);
  rocksdb_options_set_create_if_missing(o, 1);
  rocksdb_options_set_memtable_prefix_bloom_size_ratio(o, 0.01);
  rocksdb_options_set_memtable_whole_key_filtering(o, 1);
  rocksdb_options_set_write_buffer_size(o, (size_t)64 << 20);
  rocksdb_options_set_max_write_buffer_number(o, 2);
  rocksdb_options_set_db_write_buffer_size(o, (size_t)128 << 20);
  char *err = NULL;
  rocksdb_t *db = rocksdb_open(o, dir, &err);
  if (err) die(dir, err);
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
  rocksdb_writeoptions_disable_WAL(wo, 1);
  rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
  entry_t *batch = malloc(BATCH * sizeof *batch);
  if (!batch) die("batch", NULL);
  long seen = 0;
  for (long first = 1; first <= n; first += BATCH) {
    size_t m = 0;
    for (long i = first; i <= n && i < first + BATCH; i++, m++) {
      entry_t *e = &batch[m];
      e->len = encode_key(e->k, (uint32_t)(i % keys));
      rocksdb_pinnableslice_t *p = rocksdb_get_pinned(db, ro, (const char *)e->k, e->len, &err);
      if (err) die("get", err);
      uint64_t c = 0;
      if (p) {
        size_t vl;
        const char *v = rocksdb_pinnableslice_value(p, &vl);
        if (vl == sizeof c) memcpy(&c, v, sizeof c);
        rocksdb_pinnableslice_destroy(p);
      } else {
        seen++;
      }
      e->count = c + 1;
    }
    qsort(batch, m, sizeof *batch, by_key);
    for (size_t j = 0; j < m; j++) {
      rocksdb_writebatch_put(wb, (const char *)batch[j].k, batch[j].len, (const char *)&batch[j].count,
                             sizeof batch[j].count);
    }
    rocksdb_write(db, wo, wb, &err);
    if (err) die("write", err);
    rocksdb_writebatch_clear(wb);
  }
  printf("%ld %ld\n", seen, n);
  free(batch);
  rocksdb_writebatch_destroy(wb);
  rocksdb_writeoptions_destroy(wo);
  rocksdb_readoptions_destroy(ro);
  rocksdb_close(db);
  rocksdb_options_destroy(o);
  rocksdb_block_based_options_destroy(t);
  rocksdb_cache_destroy(cache);
  return 0;
}
