/*
 * testlib.h - a minimal test runner for Tide's C unit tests.
 *
 * Each test file defines cases with TD_TEST(name) and lists them in
 * TD_TEST_MAIN(case, case, ...). Running the binary with no argument runs
 * every case; with a case name it runs that one alone. Output is TAP-like
 * ("ok 1 - name" / "not ok 2 - name") and ends with "N passed, N failed";
 * the exit status is non-zero when a case failed.
 */
#ifndef TD_TESTLIB_H
#define TD_TESTLIB_H

#include <stdio.h>
#include <string.h>

static int td_test_failed_;

#define TD_CHECK(cond)                                                      \
  do {                                                                      \
    if (!(cond)) {                                                          \
      fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__,    \
              #cond);                                                       \
      td_test_failed_ = 1;                                                  \
    }                                                                       \
  } while (0)

#define TD_CHECK_INT(a, b)                                                  \
  do {                                                                      \
    long long a_ = (long long)(a), b_ = (long long)(b);                     \
    if (a_ != b_) {                                                         \
      fprintf(stderr, "  %s:%d: %s == %lld, expected %s == %lld\n",         \
              __FILE__, __LINE__, #a, a_, #b, b_);                          \
      td_test_failed_ = 1;                                                  \
    }                                                                       \
  } while (0)

#define TD_CHECK_STR(a, b)                                                  \
  do {                                                                      \
    const char *a_ = (a), *b_ = (b);                                        \
    if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                \
      fprintf(stderr, "  %s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, \
              __LINE__, #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)");        \
      td_test_failed_ = 1;                                                  \
    }                                                                       \
  } while (0)

#define TD_TEST(name) static void name(void)

typedef struct {
  const char *name;
  void (*fn)(void);
} td_test_case_t;

#define TD_TEST_ENTRY_(fn) {#fn, fn},

static inline int td_test_run_(const td_test_case_t *cases, int n, int argc,
                               char **argv) {
  int passed = 0, failed = 0, num = 0;
  for (int i = 0; i < n; i++) {
    if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) continue;
    td_test_failed_ = 0;
    cases[i].fn();
    num++;
    if (td_test_failed_) {
      printf("not ok %d - %s\n", num, cases[i].name);
      failed++;
    } else {
      printf("ok %d - %s\n", num, cases[i].name);
      passed++;
    }
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : (num ? 0 : 1);
}

#define TD_TEST_MAIN(...)                                                   \
  static void (*const td_test_fns_[])(void) = {__VA_ARGS__};               \
  static const char td_test_names_[] = #__VA_ARGS__;                        \
  int main(int argc, char **argv) {                                         \
    enum { N = sizeof td_test_fns_ / sizeof td_test_fns_[0] };              \
    td_test_case_t cases[N];                                                \
    static char names[sizeof td_test_names_];                               \
    memcpy(names, td_test_names_, sizeof names);                            \
    char *save = NULL, *tok = strtok_r(names, ", \t\n", &save);             \
    for (int i = 0; i < N; i++) {                                           \
      cases[i].name = tok ? tok : "?";                                      \
      cases[i].fn = td_test_fns_[i];                                        \
      tok = strtok_r(NULL, ", \t\n", &save);                                \
    }                                                                       \
    return td_test_run_(cases, N, argc, argv);                              \
  }

/* td_test_fill / td_test_same - write n bytes of a pattern made from seed,
 * and check that they are still there (1) or not (0): memory tests. */
static inline void td_test_fill(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 7);
}

static inline int td_test_same(const unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(seed + i * 7)) return 0;
  return 1;
}

#endif
