/*
 * test_state.c - unit tests for the heap state backend (state/backend.h,
 * state/heap.c): the cases every backend shares (state_cases.h:
 * put/get/replace/remove, addressing by state id, key group, key and
 * namespace, argument checks, scans, counts, growth to 200k entries and
 * removal of half of them against a reference model), then the heap's
 * own: range checks of the constructor, borrowed value pointers, and
 * allocation failures (a copy of heap.c compiled with a failing
 * allocator, under another name).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "error.h"
#include "testlib.h"

/* ---- fault injection: heap.c again, allocating through fault_malloc ---- */

static long fault_at = 0; /* fail the fault_at-th allocation; 0: never */
static long fault_calls = 0;

static void *fault_malloc(size_t n) {
  if (++fault_calls == fault_at) return NULL;
  return malloc(n);
}

#define HEAP_MALLOC(n) fault_malloc(n)
#define HEAP_FREE(p) free(p)
#define td_backend_new_heap faulty_backend_new_heap
#include "../../state/heap.c"
#undef td_backend_new_heap
#undef HEAP_MALLOC
#undef HEAP_FREE

/* ---- the shared cases, on the heap backend ---- */

#define BIG_N 200000

static const char *backend_name = "heap";

static td_backend_t *new_backend(uint32_t first, uint32_t last) {
  td_backend_t *b = NULL;
  int rc = td_backend_new_heap(&b, first, last);
  if (rc != 0 || !b) {
    fprintf(stderr, "td_backend_new_heap: %s\n", td_strerror(rc));
    abort();
  }
  return b;
}

#include "state_cases.h"

/* ---- heap only ---- */

TD_TEST(test_state_bad_range) {
  td_backend_t *b = NULL;
  TD_CHECK_INT(td_backend_new_heap(&b, 5, 4), TD_EINVAL);
  TD_CHECK_INT(td_backend_new_heap(&b, 0, 32768), TD_EINVAL);
  TD_CHECK(b == NULL);
}

/* ---- value pointers ---- */

TD_TEST(test_state_value_pointer) {
  td_backend_t *b = new_backend(0, 0);
  TD_CHECK_INT(td_backend_put(b, 1, 0, S("k"), S(""), S("abcdef")), 0);
  td_bytes_t v1 = {0}, v2 = {0};
  TD_CHECK_INT(td_backend_get(b, 1, 0, S("k"), S(""), &v1), 1);
  /* two gets borrow the same stored bytes */
  TD_CHECK_INT(td_backend_get(b, 1, 0, S("k"), S(""), &v2), 1);
  TD_CHECK(v1.data == v2.data);
  /* gets and puts of other keys (growth included) leave it valid */
  for (int i = 0; i < 100; i++) {
    char k[32];
    snprintf(k, sizeof k, "other%d", i);
    TD_CHECK_INT(td_backend_put(b, 1, 0, S(k), S(""), S("o")), 0);
  }
  TD_CHECK(v1.len == 6 && memcmp(v1.data, "abcdef", 6) == 0);
  td_backend_free(b);
}

/* ---- allocation failures ---- */

/* fault_script - a fixed workload against a backend made by the faulty
 * copy: puts either succeed or return TD_ENOMEM (the model follows only
 * the successful ones), removals never fail. Returns the calls that broke
 * these rules. */
static long fault_script(td_backend_t *b, model_t *m, int n) {
  long odd = 0;
  for (int i = 0; i < n; i++) {
    int rc = big_put(b, m, i, 0);
    odd += rc != 0 && rc != TD_ENOMEM;
  }
  for (int i = 0; i < n; i += 2) {
    int rc = big_put(b, m, i, 1); /* another length: a new allocation */
    odd += rc != 0 && rc != TD_ENOMEM;
  }
  for (int i = 0; i < n; i += 3) {
    char kb[32], nb[32];
    int rc = td_backend_remove(b, big_sid(i), big_kg(i), big_key(i, kb),
                               big_ns(i, nb));
    odd += rc != m->present[i];
    m->present[i] = 0;
  }
  return odd;
}

/* Fail the 1st, 2nd, ... allocation of a fixed workload until it runs
 * without a failure; after each run the backend must hold exactly what
 * the successful calls put there. */
TD_TEST(test_state_out_of_memory) {
  enum { N = 300 };
  big_groups = 4;
  long failures = 0, broken = 0;
  for (long at = 1;; at++) {
    td_backend_t *b = NULL;
    fault_calls = 0;
    fault_at = at;
    int rc = faulty_backend_new_heap(&b, 0, big_groups - 1);
    if (rc != 0) {
      TD_CHECK_INT(rc, TD_ENOMEM);
      failures++;
      continue;
    }
    model_t m = {calloc(N, 1), calloc(N, sizeof(unsigned))};
    if (!m.present || !m.version) abort();
    long odd = fault_script(b, &m, N);
    int injected = fault_calls >= at;
    fault_at = 0;
    long bad = model_agrees(b, &m, N);
    if (odd || bad) {
      fprintf(stderr, "  allocation %ld failed: %ld bad returns, %ld wrong "
              "entries\n", at, odd, bad);
      broken++;
    }
    /* still usable: put back every entry */
    for (int i = 0; i < N; i++) bad += big_put(b, &m, i, 3) != 0;
    bad += model_agrees(b, &m, N);
    broken += bad != 0;
    td_backend_free(b);
    free(m.present);
    free(m.version);
    if (!injected) break; /* the whole workload ran without a failure */
    failures++;
  }
  TD_CHECK_INT(broken, 0);
  TD_CHECK(failures > N); /* every entry allocation was failed once */
  big_groups = BIG_KG;
}

TD_TEST_MAIN(test_state_ops_name, test_state_bad_range, test_state_put_get, test_state_replace,
             test_state_remove, test_state_states_and_namespaces_apart,
             test_state_empty_key_and_value, test_state_key_group_out_of_range,
             test_state_bad_arguments, test_state_scan_order,
             test_state_scan_single_state, test_state_scan_early_stop,
             test_state_scan_entry_fields,
             test_state_count, test_state_growth_and_removal,
             test_state_one_group_churn, test_state_value_written_back,
             test_state_value_pointer,
             test_state_out_of_memory)
