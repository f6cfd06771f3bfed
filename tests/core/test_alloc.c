/* test_alloc.c - the snapshot child's arena (core/alloc.h): blocks grow in
 * place when nothing follows them (the chunk's room, or mremap of a block
 * that has a chunk of its own), and are copied otherwise; contents are
 * kept every way, and blocks made before and after a grown one stay
 * usable. The arena is process-wide, so each case runs in a forked child
 * (as the arena does in Tide) and reports through its exit status. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "testlib.h"


/* The first 4 KiB and the last 4 KiB of a big block (filling all of it
 * would take seconds under the sanitizers). */
static void mark(unsigned char *p, size_t n, unsigned seed) {
  td_test_fill(p, 4096, seed);
  td_test_fill(p + n - 4096, 4096, seed + 1);
}

static int marked(const unsigned char *p, size_t n, unsigned seed) {
  return td_test_same(p, 4096, seed) && td_test_same(p + n - 4096, 4096, seed + 1);
}

/* Run fn in a forked child on the arena; its exit status is the number of
 * the first failed step (0: all passed). */
static int in_child(int (*fn)(void)) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    td_alloc_use_arena();
    _exit(fn());
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

static int grow_small(void) {
  unsigned char *a = td_malloc(100);
  if (!a) return 1;
  td_test_fill(a, 100, 3);
  /* the chunk's last block takes its room: the same address */
  unsigned char *b = td_realloc(a, 1000);
  if (b != a || !td_test_same(b, 100, 3)) return 2;
  td_test_fill(b, 1000, 4);
  /* a block after it: it is copied */
  unsigned char *c = td_malloc(16);
  if (!c) return 3;
  td_test_fill(c, 16, 5);
  unsigned char *d = td_realloc(b, 2000);
  if (!d || d == b || !td_test_same(d, 1000, 4) || !td_test_same(c, 16, 5)) return 4;
  /* shrinking keeps the block */
  if (td_realloc(d, 10) != d || !td_test_same(d, 10, 4)) return 5;
  return 0;
}

static int grow_big(void) {
  unsigned char *small = td_malloc(64);
  if (!small) return 1;
  td_test_fill(small, 64, 9);
  /* larger than a chunk: a mapping of its own, grown by mremap */
  size_t n = (size_t)80 << 20;
  unsigned char *big = td_malloc(n);
  if (!big) return 2;
  mark(big, n, 11);
  unsigned char *big2 = td_realloc(big, 2 * n);
  if (!big2 || !marked(big2, n, 11)) return 3;
  mark(big2, 2 * n, 12);
  /* a newer chunk in front of it (its successor's link is fixed up) */
  unsigned char *after = td_malloc(100);
  if (!after) return 4;
  td_test_fill(after, 100, 13);
  unsigned char *big3 = td_realloc(big2, 4 * n);
  if (!big3 || !marked(big3, 2 * n, 12)) return 5;
  mark(big3, 4 * n, 14);
  if (!td_test_same(small, 64, 9) || !td_test_same(after, 100, 13)) return 6;
  /* the arena still knows every block: they grow and are freed */
  unsigned char *after2 = td_realloc(after, 300);
  if (!after2 || !td_test_same(after2, 100, 13)) return 7;
  unsigned char *small2 = td_realloc(small, 200);
  if (!small2 || !td_test_same(small2, 64, 9)) return 8;
  td_free(big3);
  td_free(after2);
  /* more blocks after all that */
  for (int i = 0; i < 1000; i++) {
    unsigned char *x = td_malloc(1 << 16);
    if (!x) return 9;
    td_test_fill(x, 1 << 16, (unsigned)i);
    if (!td_test_same(x, 1 << 16, (unsigned)i)) return 10;
  }
  return 0;
}

static int lua_blocks(void) {
  /* ptr NULL: osize is a type tag, not a size */
  unsigned char *a = td_arena_lua_alloc(NULL, NULL, 5, 40);
  if (!a || (uintptr_t)a % 16 != 0) return 1;
  td_test_fill(a, 40, 21);
  unsigned char *b = td_arena_lua_alloc(NULL, a, 40, 4000);
  if (b != a || !td_test_same(b, 40, 21)) return 2;
  unsigned char *c = td_arena_lua_alloc(NULL, NULL, 4, 10);
  if (!c) return 3;
  unsigned char *d = td_arena_lua_alloc(NULL, b, 4000, 8000);
  if (!d || d == b || !td_test_same(d, 40, 21)) return 4;
  if (td_arena_lua_alloc(NULL, d, 8000, 0) != NULL) return 5;
  return 0;
}

TD_TEST(test_alloc_arena_grows_the_last_block_in_place) { TD_CHECK_INT(in_child(grow_small), 0); }

TD_TEST(test_alloc_arena_grows_a_big_block_by_mremap) { TD_CHECK_INT(in_child(grow_big), 0); }

TD_TEST(test_alloc_arena_lua_blocks_grow_in_place) { TD_CHECK_INT(in_child(lua_blocks), 0); }

TD_TEST_MAIN(test_alloc_arena_grows_the_last_block_in_place, test_alloc_arena_grows_a_big_block_by_mremap,
             test_alloc_arena_lua_blocks_grow_in_place)
