/*
 * modules_baseline.c - the hand-written C loops that scripts/bench/modules.sh
 * measures Tide's C module chains against: the same records, in the same
 * MessagePack bytes, in batches of 1024, with no framework.
 *
 *   modules_baseline chain N   integers 1..N: encode, decode, x * 3,
 *                              encode, decode, keep the even ones;
 *                              prints the kept count
 *   modules_baseline keyed N   [i % 1000, i] pairs: encode, decode the key,
 *                              count per key in an open-addressing table;
 *                              prints the total of the counts and the keys
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tide.h" /* the MessagePack helpers modules use */

#define BATCH 1024

static size_t enc(unsigned char *p, int64_t v) { return td_mp_enc_int(p, v); }

static int64_t dec(const char **p, const char *end) {
  td_mp_item_t it;
  if (td_mp_read(p, end, &it) != 0 || it.type != TD_MP_INT) abort();
  return it.v.i;
}

static void chain(int64_t n) {
  static unsigned char a[BATCH * 9], b[BATCH * 9];
  static uint32_t aoff[BATCH + 1], boff[BATCH + 1];
  int64_t kept = 0;
  for (int64_t i = 1; i <= n;) {
    int k = 0;
    size_t len = 0;
    for (; k < BATCH && i <= n; k++, i++) { /* the source */
      aoff[k] = (uint32_t)len;
      len += enc(a + len, i);
    }
    aoff[k] = (uint32_t)len;
    len = 0;
    for (int j = 0; j < k; j++) { /* the map */
      const char *p = (const char *)a + aoff[j];
      boff[j] = (uint32_t)len;
      len += enc(b + len, dec(&p, (const char *)a + aoff[j + 1]) * 3);
    }
    boff[k] = (uint32_t)len;
    for (int j = 0; j < k; j++) { /* the filter */
      const char *p = (const char *)b + boff[j];
      kept += dec(&p, (const char *)b + boff[j + 1]) % 2 == 0;
    }
  }
  printf("%lld\n", (long long)kept);
}

static void keyed(int64_t n) {
  enum { SLOTS = 4096 };
  static int64_t keys[SLOTS], counts[SLOTS];
  static unsigned char used[SLOTS];
  static unsigned char a[BATCH * 20];
  static uint32_t off[BATCH + 1];
  for (int64_t i = 1; i <= n;) {
    int k = 0;
    size_t len = 0;
    for (; k < BATCH && i <= n; k++, i++) {
      off[k] = (uint32_t)len;
      a[len++] = 0x92;
      len += enc(a + len, i % 1000);
      len += enc(a + len, i);
    }
    off[k] = (uint32_t)len;
    for (int j = 0; j < k; j++) {
      const char *p = (const char *)a + off[j], *end = (const char *)a + off[j + 1];
      td_mp_item_t it;
      td_mp_read(&p, end, &it);
      int64_t key = dec(&p, end);
      uint64_t h = (uint64_t)key * 0x9E3779B97F4A7C15ull;
      size_t s = (size_t)(h >> 52) & (SLOTS - 1);
      while (used[s] && keys[s] != key) s = (s + 1) & (SLOTS - 1);
      used[s] = 1;
      keys[s] = key;
      counts[s]++;
    }
  }
  int64_t total = 0, distinct = 0;
  for (int s = 0; s < SLOTS; s++) {
    total += counts[s];
    distinct += used[s];
  }
  printf("%lld %lld\n", (long long)total, (long long)distinct);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: modules_baseline chain|keyed N\n");
    return 2;
  }
  int64_t n = atoll(argv[2]);
  if (strcmp(argv[1], "chain") == 0) chain(n);
  else keyed(n);
  return 0;
}
