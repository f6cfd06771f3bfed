/*
 * fuzz.h - shared by Tide's libFuzzer targets (tests/fuzz/fuzz_*.c).
 *
 * Each target defines LLVMFuzzerTestOneInput, which checks a property of
 * one decoder on arbitrary bytes and aborts (FUZZ_CHECK) when it does not
 * hold; a crash or a sanitizer report fails the same way. The same files
 * build two ways: with clang's -fsanitize=fuzzer for `make fuzz`, and
 * with tests/fuzz/replay.c as main, by the ordinary compiler, into
 * build/tests/test_fuzz_<target>, which `make test` runs over the corpus
 * in tests/fuzz/corpus/<target>/ so that every input kept there stays a
 * regression test.
 */
#ifndef TD_FUZZ_H
#define TD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* FUZZ_CHECK(cond, fmt, ...) - the property failed: say which and abort. */
#define FUZZ_CHECK(cond, ...)                                              \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "%s:%d: property failed: %s: ", __FILE__, __LINE__,  \
              #cond);                                                      \
      fprintf(stderr, __VA_ARGS__);                                        \
      fputc('\n', stderr);                                                 \
      abort();                                                             \
    }                                                                      \
  } while (0)

#endif
