/*
 * replay.c - runs a fuzz target's LLVMFuzzerTestOneInput over every file
 * of its corpus without libFuzzer, as a test: each input in a child
 * process, so that a crash or an abort fails that input alone.
 *
 * usage: test_fuzz_<target> [DIR_OR_FILE ...]   (default: FUZZ_CORPUS)
 * Each input gets FUZZ_TIMEOUT seconds (a hang fails it, with SIGALRM).
 * Output: "ok N - PATH" / "not ok N - PATH (...)" lines, then
 * "N passed, N failed"; exit status 1 when an input failed (or there was
 * none).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz.h"

#ifndef FUZZ_TIMEOUT
#define FUZZ_TIMEOUT 30 /* seconds per input */
#endif

#ifndef FUZZ_CORPUS
#error "build with -DFUZZ_CORPUS=\"tests/fuzz/corpus/<target>\""
#endif

static int passed, failed;

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads path whole; NULL on error (size 0 gives a 1-byte buffer). */
static uint8_t *slurp(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  uint8_t *buf = malloc(cap);
  for (;;) {
    if (!buf) break;
    n += fread(buf + n, 1, cap - n, f);
    if (n < cap) break;
    cap *= 2;
    uint8_t *nb = realloc(buf, cap);
    if (!nb) free(buf);
    buf = nb;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return NULL;
  }
  *size = n;
  return buf;
}

static void run_one(const char *path) {
  size_t size = 0;
  uint8_t *data = slurp(path, &size);
  int n = passed + failed + 1;
  if (!data) {
    printf("not ok %d - %s (cannot read it)\n", n, path);
    failed++;
    return;
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(FUZZ_TIMEOUT); /* a hang fails the input (SIGALRM) */
    /* the target owns no copy: give it exactly size bytes, as libFuzzer
     * does, so reads past the end are caught by the sanitizers */
    uint8_t *exact = malloc(size ? size : 1);
    if (!exact) _exit(3);
    memcpy(exact, data, size);
    LLVMFuzzerTestOneInput(exact, size);
    free(exact);
    free(data);
    exit(0); /* atexit handlers run: leak checks, coverage profiles */
  }
  free(data);
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) != pid) {
    printf("not ok %d - %s (cannot run it)\n", n, path);
    failed++;
  } else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
    printf("ok %d - %s\n", n, path);
    passed++;
  } else {
    if (WIFSIGNALED(st))
      printf("not ok %d - %s (signal %d)\n", n, path, WTERMSIG(st));
    else
      printf("not ok %d - %s (exit status %d)\n", n, path, WEXITSTATUS(st));
    failed++;
  }
}

static void run_path(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    printf("not ok %d - %s (no such file or directory)\n",
           passed + failed + 1, path);
    failed++;
    return;
  }
  if (!S_ISDIR(st.st_mode)) {
    run_one(path);
    return;
  }
  DIR *d = opendir(path);
  if (!d) return;
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      char **nn = realloc(names, cap * sizeof *nn);
      if (!nn) break;
      names = nn;
    }
    size_t len = strlen(path) + strlen(e->d_name) + 2;
    names[n] = malloc(len);
    if (!names[n]) break;
    snprintf(names[n], len, "%s/%s", path, e->d_name);
    n++;
  }
  closedir(d);
  qsort(names, n, sizeof *names, cmp_str);
  for (size_t i = 0; i < n; i++) {
    run_one(names[i]);
    free(names[i]);
  }
  free(names);
}

int main(int argc, char **argv) {
  if (argc < 2) run_path(FUZZ_CORPUS);
  for (int i = 1; i < argc; i++) run_path(argv[i]);
  printf("%d passed, %d failed\n", passed, failed);
  return failed || passed == 0;
}
