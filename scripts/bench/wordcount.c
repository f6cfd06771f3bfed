/*
 * wordcount.c - hand-written C word count, the baseline for Tide's word
 * count (scripts/bench/run.sh builds it with gcc -O2).
 *
 *   wordcount FILE      prints "DISTINCT TOTAL"
 *
 * Words are maximal runs of ASCII [a-z0-9] after lower-casing, as Lua's
 * line:lower():gmatch("%w+") in the C locale. The whole file is read into
 * memory, lower-cased in place, split on every other byte, and each word is
 * counted in an open-addressing hash table (FNV-1a, linear probing) whose
 * keys point into the buffer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  uint64_t hash;
  const unsigned char *word; /* NULL: empty slot */
  uint32_t len;
  uint64_t count;
} slot_t;

static slot_t *table;
static size_t cap = 1 << 16, used;

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void grow(void) {
  size_t ncap = cap * 2;
  slot_t *nt = calloc(ncap, sizeof *nt);
  if (!nt) die("calloc");
  for (size_t i = 0; i < cap; i++) {
    if (!table[i].word) continue;
    size_t j = table[i].hash & (ncap - 1);
    while (nt[j].word) j = (j + 1) & (ncap - 1);
    nt[j] = table[i];
  }
  free(table);
  table = nt;
  cap = ncap;
}

static void add(const unsigned char *w, uint32_t len, uint64_t h) {
  size_t j = h & (cap - 1);
  for (;;) {
    slot_t *s = &table[j];
    if (!s->word) {
      s->hash = h;
      s->word = w;
      s->len = len;
      s->count = 1;
      if (++used * 2 > cap) grow();
      return;
    }
    if (s->hash == h && s->len == len && memcmp(s->word, w, len) == 0) {
      s->count++;
      return;
    }
    j = (j + 1) & (cap - 1);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: wordcount FILE\n");
    return 2;
  }
  FILE *f = fopen(argv[1], "rb");
  if (!f) die(argv[1]);
  if (fseek(f, 0, SEEK_END) != 0) die("fseek");
  long size = ftell(f);
  if (size < 0) die("ftell");
  rewind(f);
  unsigned char *buf = malloc((size_t)size + 1);
  if (!buf) die("malloc");
  if (fread(buf, 1, (size_t)size, f) != (size_t)size) die("fread");
  fclose(f);
  buf[size] = 0; /* a non-word byte ends the last word */

  /* byte -> lower-cased word byte, or 0 for a separator */
  unsigned char map[256] = {0};
  for (int c = '0'; c <= '9'; c++) map[c] = (unsigned char)c;
  for (int c = 'a'; c <= 'z'; c++) map[c] = (unsigned char)c;
  for (int c = 'A'; c <= 'Z'; c++) map[c] = (unsigned char)(c - 'A' + 'a');

  table = calloc(cap, sizeof *table);
  if (!table) die("calloc");
  uint64_t total = 0;
  unsigned char *p = buf, *end = buf + size;
  while (p < end) {
    while (p < end && !map[*p]) p++;
    if (p >= end) break;
    unsigned char *w = p;
    uint64_t h = 1469598103934665603ULL;
    unsigned char c;
    while ((c = map[*p]) != 0) { /* stops at buf[size] == 0 at the latest */
      *p++ = c;
      h = (h ^ c) * 1099511628211ULL;
    }
    add(w, (uint32_t)(p - w), h);
    total++;
  }
  printf("%zu %llu\n", used, (unsigned long long)total);
  return 0;
}
