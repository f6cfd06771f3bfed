/*
 * tmpdir.h - a fresh directory for a C unit test, under $TMPDIR (or /tmp),
 * and its removal with everything in it.
 */
#ifndef TD_TMPDIR_H
#define TD_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* td_tmpdir_make - create "<tmp>/<prefix>-XXXXXX" into buf; 1, or 0 when
 * it cannot be made. */
static inline int td_tmpdir_make(char *buf, size_t len, const char *prefix) {
  const char *t = getenv("TMPDIR");
  snprintf(buf, len, "%s/%s-XXXXXX", t && *t ? t : "/tmp", prefix);
  return mkdtemp(buf) != NULL;
}

static inline int td_tmpdir_rm_entry_(const char *p, const struct stat *sb, int flag,
                                      struct FTW *ftw) {
  (void)sb;
  (void)ftw;
  if (flag == FTW_DP) rmdir(p);
  else unlink(p);
  return 0;
}

/* td_tmpdir_remove - remove path and everything under it. */
static inline void td_tmpdir_remove(const char *path) {
  nftw(path, td_tmpdir_rm_entry_, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
