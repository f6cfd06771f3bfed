/* keygroup.c - key hashing and key group arithmetic (see keygroup.h). */
#include "keygroup.h"

#include <xxhash.h>

uint64_t td_keygroup_hash(const void *key, size_t len) {
  return XXH3_64bits(key, len);
}

int td_keygroup_default_max_parallelism(int parallelism) {
  int64_t want = (int64_t)parallelism + parallelism / 2;
  int64_t p = 1;
  while (p < want) p <<= 1;
  if (p < 128) p = 128;
  if (p > TD_MAX_PARALLELISM_LIMIT) p = TD_MAX_PARALLELISM_LIMIT;
  return (int)p;
}
