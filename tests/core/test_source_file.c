/* test_source_file.c - tests for the read_text / read_csv file readers. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <zlib.h>

#include "error.h"
#include "source_file.h"
#include "testlib.h"

/* ------------------------------------------------------------------ */
/* temporary files */

#define MAX_TMP 64

typedef struct {
  char dir[64];
  char paths[MAX_TMP][160];
  int n;
} tmpdir_t;

static void tmp_init(tmpdir_t *t) {
  memset(t, 0, sizeof *t);
  strcpy(t->dir, "/tmp/td_test_sf_XXXXXX");
  if (!mkdtemp(t->dir)) {
    perror("mkdtemp");
    exit(2);
  }
}

static const char *tmp_path(tmpdir_t *t, const char *name) {
  if (t->n == MAX_TMP) {
    fprintf(stderr, "too many temporary files\n");
    exit(2);
  }
  char *dst = t->paths[t->n++];
  size_t dl = strlen(t->dir), nl = strlen(name);
  if (dl + 1 + nl + 1 > sizeof t->paths[0]) exit(2);
  memcpy(dst, t->dir, dl); /* (snprintf here trips gcc's -Wrestrict) */
  dst[dl] = '/';
  memcpy(dst + dl + 1, name, nl + 1);
  return dst;
}

static const char *tmp_write(tmpdir_t *t, const char *name, const char *data,
                             size_t len) {
  const char *path = tmp_path(t, name);
  FILE *f = fopen(path, "wb");
  if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
    perror(path);
    exit(2);
  }
  return path;
}

static const char *tmp_write_str(tmpdir_t *t, const char *name,
                                 const char *data) {
  return tmp_write(t, name, data, strlen(data));
}

static const char *tmp_write_gz(tmpdir_t *t, const char *name,
                                const char *data, size_t len) {
  const char *path = tmp_path(t, name);
  gzFile gz = gzopen(path, "wb");
  if (!gz) {
    perror(path);
    exit(2);
  }
  size_t off = 0;
  while (off < len) {
    size_t chunk = len - off > 65536 ? 65536 : len - off;
    if (gzwrite(gz, data + off, (unsigned)chunk) != (int)chunk) exit(2);
    off += chunk;
  }
  if (gzclose(gz) != Z_OK) exit(2);
  return path;
}

static void tmp_cleanup(tmpdir_t *t) {
  for (int i = 0; i < t->n; i++) unlink(t->paths[i]);
  if (rmdir(t->dir) != 0) perror(t->dir);
}

/* A growable string for generated inputs. */
typedef struct {
  char *p;
  size_t len, cap;
} sbuf_t;

static void sb_add(sbuf_t *b, const char *s, size_t n) {
  if (b->cap - b->len < n + 1) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n + 1) cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) exit(2);
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void sb_str(sbuf_t *b, const char *s) { sb_add(b, s, strlen(s)); }

static uint32_t rng_state = 12345;
static uint32_t rng(void) {
  rng_state = rng_state * 1103515245u + 12345u;
  return rng_state >> 8;
}

/* ------------------------------------------------------------------ */
/* reading helpers */

/* Reads every record of r in batches of `batch`, pushing a table of them
 * all. Returns the count, or the error code (the table is pushed anyway,
 * holding the records read before the error). */
static int read_all(lua_State *L, td_reader_t *r, int batch) {
  lua_newtable(L);
  int all = lua_gettop(L), total = 0;
  lua_newtable(L);
  int bt = lua_gettop(L);
  int rc;
  for (;;) {
    /* clear the batch table, so stale entries cannot pass for new ones */
    for (int i = 1; i <= batch; i++) {
      lua_pushnil(L);
      lua_rawseti(L, bt, i);
    }
    rc = td_reader_read(r, L, bt, batch);
    if (rc <= 0) break;
    if (rc > batch) {
      rc = TD_EINVAL;
      break;
    }
    for (int i = 1; i <= rc; i++) {
      lua_rawgeti(L, bt, i);
      lua_rawseti(L, all, ++total);
    }
  }
  lua_pop(L, 1);
  return rc < 0 ? rc : total;
}

/* Opens path as text split `split` of `n` and reads it all (table
 * pushed); returns the count or an error code. */
static int read_text_all(lua_State *L, const char *path, int split, int n,
                         int batch) {
  td_reader_t *r = NULL;
  char err[256];
  int rc = td_reader_open_text(&r, path, split, n, err, sizeof err);
  if (rc) {
    fprintf(stderr, "  open %s: %s\n", path, err);
    lua_newtable(L);
    return rc;
  }
  rc = read_all(L, r, batch);
  if (rc >= 0) TD_CHECK_INT(td_reader_read(r, L, -1, 10), 0);
  td_reader_free(r);
  return rc;
}

/* Checks the strings t[1..n] at idx against expected[0..n-1]. */
static void check_lines(lua_State *L, int idx, const char *const *expected,
                        int n) {
  idx = lua_absindex(L, idx);
  TD_CHECK_INT(lua_rawlen(L, idx), n);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, idx, i + 1);
    TD_CHECK_INT(lua_type(L, -1), LUA_TSTRING);
    if (lua_type(L, -1) == LUA_TSTRING) TD_CHECK_STR(lua_tostring(L, -1),
                                                     expected[i]);
    lua_pop(L, 1);
  }
}

static lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  if (!L) exit(2);
  return L;
}

/* field `key` of the table at idx: string value or NULL */
static const char *get_str(lua_State *L, int idx, const char *key) {
  lua_getfield(L, idx, key);
  const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  lua_pop(L, 1); /* the string stays alive in the table */
  return s;
}

static int get_type(lua_State *L, int idx, const char *key) {
  int t = lua_getfield(L, idx, key);
  lua_pop(L, 1);
  return t;
}

static long long get_int(lua_State *L, int idx, const char *key, int *isint) {
  lua_getfield(L, idx, key);
  *isint = lua_isinteger(L, -1);
  long long v = (long long)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

static double get_float(lua_State *L, int idx, const char *key,
                        int *isfloat) {
  lua_getfield(L, idx, key);
  *isfloat = lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1);
  double v = (double)lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}

/* pushes row i (1-based) of the table at idx */
static void push_row(lua_State *L, int idx, int i) {
  lua_rawgeti(L, idx, i);
  if (!lua_istable(L, -1)) {
    fprintf(stderr, "  row %d is not a table\n", i);
    td_test_failed_ = 1;
    lua_pop(L, 1);
    lua_newtable(L);
  }
}

static td_csv_opts_t csv_defaults(void) {
  td_csv_opts_t o;
  memset(&o, 0, sizeof o);
  o.delimiter = ',';
  o.header = 1;
  return o;
}

/* Opens a CSV reader; on failure prints the message. */
static int open_csv(td_reader_t **r, const char *path,
                    const td_csv_opts_t *o, char *err, size_t errlen) {
  int rc = td_reader_open_csv(r, path, o, 0, 1, err, errlen);
  if (rc) fprintf(stderr, "  open_csv: %s\n", err);
  return rc;
}

/* ------------------------------------------------------------------ */
/* text */

TD_TEST(test_source_file_lines_lf) {
  tmpdir_t t;
  tmp_init(&t);
  const char *p = tmp_write_str(&t, "a.txt", "alpha\nbeta\n\ngamma delta\n");
  lua_State *L = new_state();
  const char *exp[] = {"alpha", "beta", "", "gamma delta"};
  TD_CHECK_INT(read_text_all(L, p, 0, 1, 100), 4);
  check_lines(L, -1, exp, 4);
  lua_close(L);
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_lines_crlf) {
  tmpdir_t t;
  tmp_init(&t);
  /* "\r\n" and "\n" are line ends; a lone '\r' inside a line stays */
  const char *p = tmp_write_str(&t, "a.txt", "one\r\ntwo\r\n\r\nth\rree\nfour\r\n");
  lua_State *L = new_state();
  const char *exp[] = {"one", "two", "", "th\rree", "four"};
  TD_CHECK_INT(read_text_all(L, p, 0, 1, 100), 5);
  check_lines(L, -1, exp, 5);
  lua_close(L);
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_lines_no_final_newline) {
  tmpdir_t t;
  tmp_init(&t);
  const char *p1 = tmp_write_str(&t, "a.txt", "first\nlast");
  const char *p2 = tmp_write_str(&t, "b.txt", "only\r");
  const char *p3 = tmp_write_str(&t, "c.txt", "x");
  lua_State *L = new_state();
  const char *exp1[] = {"first", "last"};
  TD_CHECK_INT(read_text_all(L, p1, 0, 1, 100), 2);
  check_lines(L, -1, exp1, 2);
  const char *exp2[] = {"only"};
  TD_CHECK_INT(read_text_all(L, p2, 0, 1, 100), 1);
  check_lines(L, -1, exp2, 1);
  const char *exp3[] = {"x"};
  TD_CHECK_INT(read_text_all(L, p3, 0, 1, 100), 1);
  check_lines(L, -1, exp3, 1);
  lua_close(L);
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_lines_empty_lines_kept) {
  tmpdir_t t;
  tmp_init(&t);
  const char *p = tmp_write_str(&t, "a.txt", "\n\na\n\n\nb\n\n");
  lua_State *L = new_state();
  const char *exp[] = {"", "", "a", "", "", "b", ""};
  TD_CHECK_INT(read_text_all(L, p, 0, 1, 3), 7);
  check_lines(L, -1, exp, 7);
  lua_close(L);
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_lines_empty_file) {
  tmpdir_t t;
  tmp_init(&t);
  const char *p = tmp_write(&t, "empty.txt", "", 0);
  lua_State *L = new_state();
  for (int n = 1; n <= 3; n++)
    for (int s = 0; s < n; s++) {
      TD_CHECK_INT(read_text_all(L, p, s, n, 10), 0);
      lua_pop(L, 1);
    }
  lua_close(L);
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_lines_batches_respect_max) {
  tmpdir_t t;
  tmp_init(&t);
  const char *p = tmp_write_str(&t, "a.txt", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n");
  lua_State *L = new_state();
  td_reader_t *r;
  char err[256];
  TD_CHECK_INT(td_reader_open_text(&r, p, 0, 1, err, sizeof err), 0);
  lua_newtable(L);
  TD_CHECK_INT(td_reader_read(r, L, -1, 3), 3);
  TD_CHECK_INT(td_reader_read(r, L, -1, 3), 3);
  TD_CHECK_INT(td_reader_read(r, L, -1, 3), 3);
  lua_rawgeti(L, -1, 3);
  TD_CHECK_STR(lua_tostring(L, -1), "9");
  lua_pop(L, 1);
  TD_CHECK_INT(td_reader_read(r, L, -1, 3), 1);
  lua_rawgeti(L, -1, 1);
  TD_CHECK_STR(lua_tostring(L, -1), "10");
  lua_pop(L, 1);
  TD_CHECK_INT(td_reader_read(r, L, -1, 3), 0);
  TD_CHECK_INT(td_reader_read(r, L, -1, 3), 0);
  TD_CHECK_INT(lua_gettop(L), 1); /* the reader leaves the stack as it was */
  TD_CHECK_STR(td_reader_error(r), "");
  TD_CHECK_INT(td_reader_skipped(r), 0);
  td_reader_free(r);
  td_reader_free(NULL);
  lua_close(L);
  tmp_cleanup(&t);
}

/* Generates `nlines` lines of varying length (some empty, some CRLF);
 * fills text and the expected lines (pointers into *store). */
static void gen_lines(sbuf_t *text, sbuf_t *store, size_t *offs, int nlines,
                      int final_newline) {
  for (int i = 0; i < nlines; i++) {
    uint32_t x = rng();
    int len = (x % 7 == 0) ? 0 : (int)(rng() % 180);
    char line[256];
    int k = snprintf(line, sizeof line, "%d:", i);
    if (len < k) len = (x % 7 == 0) ? 0 : k;
    for (int j = k; j < len; j++) line[j] = (char)('a' + rng() % 26);
    if (len == 0) k = 0;
    line[len] = '\0';
    offs[i] = store->len;
    sb_add(store, line, (size_t)len + 1); /* with the NUL */
    sb_add(text, line, (size_t)len);
    if (i < nlines - 1 || final_newline)
      sb_str(text, (x % 5 == 0) ? "\r\n" : "\n");
  }
}

/* Reads every split of n and checks the concatenation is exactly lines. */
static void check_splits(const char *path, const char *const *lines,
                         int nlines, int n, int batch) {
  lua_State *L = new_state();
  lua_newtable(L);
  int total = 0;
  for (int s = 0; s < n; s++) {
    int c = read_text_all(L, path, s, n, batch);
    TD_CHECK(c >= 0);
    for (int i = 1; i <= c; i++) {
      lua_rawgeti(L, -1, i);
      lua_rawseti(L, 1, ++total);
    }
    lua_pop(L, 1);
  }
  if (total != nlines)
    fprintf(stderr, "  %s: %d splits gave %d lines, expected %d\n", path, n,
            total, nlines);
  check_lines(L, 1, lines, nlines);
  lua_close(L);
}

TD_TEST(test_source_file_splits_cover_every_line_once) {
  tmpdir_t t;
  tmp_init(&t);
  for (int fin = 0; fin <= 1; fin++) {
    enum { NL = 4000 };
    sbuf_t text = {0}, store = {0};
    static size_t offs[NL];
    static const char *lines[NL];
    gen_lines(&text, &store, offs, NL, fin);
    for (int i = 0; i < NL; i++) lines[i] = store.p + offs[i];
    const char *p = tmp_write(&t, fin ? "fin.txt" : "nofin.txt", text.p,
                              text.len);
    for (int n = 1; n <= 7; n++) check_splits(p, lines, NL, n, 1000);
    check_splits(p, lines, NL, 3, 1);
    check_splits(p, lines, NL, 4, 7);
    free(text.p);
    free(store.p);
  }
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_splits_small_files) {
  /* every split boundary position over tiny files */
  static const char *files[] = {"a\nb\n", "\n\n\n", "x", "ab\ncd", "\n",
                                "abc\r\n\r\nd\r\n", "a\n\nbb\n\nccc\n"};
  tmpdir_t t;
  tmp_init(&t);
  for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
    char name[32];
    snprintf(name, sizeof name, "s%zu.txt", f);
    const char *p = tmp_write_str(&t, name, files[f]);
    /* expected: split the content by hand */
    const char *lines[16];
    char copy[64];
    strcpy(copy, files[f]);
    int nl = 0;
    char *s = copy;
    while (*s) {
      char *e = strchr(s, '\n');
      if (e) *e = '\0';
      size_t len = strlen(s);
      if (len && s[len - 1] == '\r') s[len - 1] = '\0';
      lines[nl++] = s;
      if (!e) break;
      s = e + 1;
    }
    for (int n = 1; n <= 12; n++) check_splits(p, lines, nl, n, 2);
  }
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_long_lines) {
  /* lines longer than the reader's block buffer */
  tmpdir_t t;
  tmp_init(&t);
  sbuf_t text = {0};
  size_t big = 3u * 1024 * 1024 + 17;
  char *line = malloc(big + 1);
  memset(line, 'q', big);
  line[big] = '\0';
  sb_str(&text, "head\n");
  sb_add(&text, line, big);
  sb_str(&text, "\nmid\n");
  sb_add(&text, line, big);
  sb_str(&text, "\r\ntail\n");
  const char *p = tmp_write(&t, "long.txt", text.p, text.len);
  const char *lines[] = {"head", line, "mid", line, "tail"};
  for (int n = 1; n <= 5; n++) check_splits(p, lines, 5, n, 2);
  const char *pz = tmp_write_gz(&t, "long.txt.gz", text.p, text.len);
  check_splits(pz, lines, 5, 1, 2);
  free(line);
  free(text.p);
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_gz_reads_lines) {
  tmpdir_t t;
  tmp_init(&t);
  enum { NL = 3000 };
  sbuf_t text = {0}, store = {0};
  static size_t offs[NL];
  static const char *lines[NL];
  gen_lines(&text, &store, offs, NL, 1);
  for (int i = 0; i < NL; i++) lines[i] = store.p + offs[i];
  const char *p = tmp_write_gz(&t, "lines.txt.gz", text.p, text.len);
  lua_State *L = new_state();
  TD_CHECK_INT(read_text_all(L, p, 0, 1, 1024), NL);
  check_lines(L, -1, lines, NL);
  lua_pop(L, 1);
  /* not splittable: split 0 reads everything, the others nothing */
  TD_CHECK_INT(read_text_all(L, p, 0, 4, 100), NL);
  check_lines(L, -1, lines, NL);
  lua_pop(L, 1);
  for (int s = 1; s < 4; s++) {
    TD_CHECK_INT(read_text_all(L, p, s, 4, 100), 0);
    lua_pop(L, 1);
  }
  lua_close(L);
  /* the same through check_splits for n = 1..3 */
  for (int n = 1; n <= 3; n++) check_splits(p, lines, NL, n, 500);
  free(text.p);
  free(store.p);
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_gz_truncated_is_an_error) {
  tmpdir_t t;
  tmp_init(&t);
  sbuf_t text = {0};
  for (int i = 0; i < 200000; i++) {
    char line[64];
    snprintf(line, sizeof line, "line %d %u\n", i, rng());
    sb_str(&text, line);
  }
  const char *p = tmp_write_gz(&t, "t.txt.gz", text.p, text.len);
  struct stat st;
  TD_CHECK_INT(stat(p, &st), 0);
  TD_CHECK_INT(truncate(p, st.st_size / 2), 0);
  lua_State *L = new_state();
  td_reader_t *r;
  char err[256];
  TD_CHECK_INT(td_reader_open_text(&r, p, 0, 1, err, sizeof err), 0);
  int rc = read_all(L, r, 1000);
  TD_CHECK_INT(rc, TD_ECORRUPT);
  TD_CHECK(lua_rawlen(L, -1) > 1000); /* the lines before the cut came */
  TD_CHECK(strstr(td_reader_error(r), p) != NULL);
  TD_CHECK_INT(td_reader_read(r, L, -1, 10), TD_ECORRUPT); /* sticky */
  td_reader_free(r);
  lua_close(L);
  free(text.p);
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_open_errors) {
  tmpdir_t t;
  tmp_init(&t);
  char missing[200], expect[400], err[400];
  snprintf(missing, sizeof missing, "%s/nope.txt", t.dir);
  td_reader_t *r = (td_reader_t *)1;
  TD_CHECK_INT(td_reader_open_text(&r, missing, 0, 1, err, sizeof err),
               -ENOENT);
  TD_CHECK(r == NULL);
  snprintf(expect, sizeof expect,
           "cannot open '%s': No such file or directory", missing);
  TD_CHECK_STR(err, expect);
  td_csv_opts_t o = csv_defaults();
  TD_CHECK_INT(td_reader_open_csv(&r, missing, &o, 0, 1, err, sizeof err),
               -ENOENT);
  TD_CHECK_STR(err, expect);
  /* a directory */
  TD_CHECK_INT(td_reader_open_text(&r, t.dir, 0, 1, err, sizeof err),
               -EISDIR);
  snprintf(expect, sizeof expect, "cannot open '%s': Is a directory", t.dir);
  TD_CHECK_STR(err, expect);
  TD_CHECK_INT(td_reader_open_csv(&r, t.dir, &o, 0, 1, err, sizeof err),
               -EISDIR);
  /* NULL errbuf is allowed */
  TD_CHECK_INT(td_reader_open_text(&r, missing, 0, 1, NULL, 0), -ENOENT);
  /* bad split arguments */
  const char *p = tmp_write_str(&t, "a.txt", "a\n");
  TD_CHECK_INT(td_reader_open_text(&r, p, 2, 2, err, sizeof err), TD_EINVAL);
  TD_CHECK_INT(td_reader_open_text(&r, p, 0, 0, err, sizeof err), TD_EINVAL);
  /* unreadable (root reads everything, so only checked as non-root) */
  if (geteuid() != 0) {
    const char *q = tmp_write_str(&t, "secret.txt", "x\n");
    chmod(q, 0);
    TD_CHECK_INT(td_reader_open_text(&r, q, 0, 1, err, sizeof err),
                 -EACCES);
    snprintf(expect, sizeof expect, "cannot open '%s': Permission denied",
             q);
    TD_CHECK_STR(err, expect);
  }
  tmp_cleanup(&t);
}

/* ------------------------------------------------------------------ */
/* CSV */

TD_TEST(test_source_file_csv_header_rows_by_name) {
  tmpdir_t t;
  tmp_init(&t);
  const char *p = tmp_write_str(&t, "a.csv", "name,city\nann,paris\nbob,\n");
  lua_State *L = new_state();
  td_reader_t *r;
  char err[256];
  td_csv_opts_t o = csv_defaults();
  TD_CHECK_INT(open_csv(&r, p, &o, err, sizeof err), 0);
  TD_CHECK_INT(read_all(L, r, 10), 2);
  push_row(L, -1, 1);
  TD_CHECK_STR(get_str(L, -1, "name"), "ann");
  TD_CHECK_STR(get_str(L, -1, "city"), "paris");
  lua_pop(L, 1);
  push_row(L, -1, 2);
  TD_CHECK_STR(get_str(L, -1, "name"), "bob");
  TD_CHECK_STR(get_str(L, -1, "city"), ""); /* a string column keeps "" */
  lua_pop(L, 1);
  TD_CHECK_INT(td_reader_read(r, L, -1, 10), 0);
  td_reader_free(r);
  /* opts == NULL: ',' and a header */
  TD_CHECK_INT(td_reader_open_csv(&r, p, NULL, 0, 1, err, sizeof err), 0);
  TD_CHECK_INT(read_all(L, r, 1), 2);
  td_reader_free(r);
  lua_close(L);
  tmp_cleanup(&t);
}

static const char *const TYPED_NAMES[] = {"i", "f", "n", "b"};
static const td_col_type_t TYPED_TYPES[] = {TD_COL_INT, TD_COL_FLOAT,
                                            TD_COL_NUMBER, TD_COL_BOOL};

TD_TEST(test_source_file_csv_typed_columns) {
  tmpdir_t t;
  tmp_init(&t);
  const char *p = tmp_write_str(&t, "a.csv",
                                "i,f,n,b,s\n"
                                "42,1.5,7,true,x\n"
                                "-9223372036854775808,-2,1.25,FALSE,y\n"
                                "+9223372036854775807,1e3,1e2,1,z\n"
                                ",,,,\n"
                                "0,inf,99999999999999999999,0,\"\"\n"
                                "\"12\",nan,-0x10,True,w\n");
  lua_State *L = new_state();
  td_reader_t *r;
  char err[256];
  td_csv_opts_t o = csv_defaults();
  o.type_names = TYPED_NAMES;
  o.types = TYPED_TYPES;
  o.n_types = 4;
  TD_CHECK_INT(open_csv(&r, p, &o, err, sizeof err), 0);
  TD_CHECK_INT(read_all(L, r, 4), 6);
  int is;
  push_row(L, -1, 1);
  TD_CHECK_INT(get_int(L, -1, "i", &is), 42);
  TD_CHECK(is);
  TD_CHECK(get_float(L, -1, "f", &is) == 1.5);
  TD_CHECK(is);
  TD_CHECK_INT(get_int(L, -1, "n", &is), 7);
  TD_CHECK(is);
  TD_CHECK_INT(get_type(L, -1, "b"), LUA_TBOOLEAN);
  lua_getfield(L, -1, "b");
  TD_CHECK(lua_toboolean(L, -1));
  lua_pop(L, 1);
  TD_CHECK_STR(get_str(L, -1, "s"), "x");
  lua_pop(L, 1);

  push_row(L, -1, 2);
  TD_CHECK(get_int(L, -1, "i", &is) == INT64_MIN);
  TD_CHECK(is);
  TD_CHECK(get_float(L, -1, "f", &is) == -2.0);
  TD_CHECK(is); /* a float column gives floats even for "-2" */
  TD_CHECK(get_float(L, -1, "n", &is) == 1.25);
  TD_CHECK(is);
  TD_CHECK_INT(get_type(L, -1, "b"), LUA_TBOOLEAN);
  lua_getfield(L, -1, "b");
  TD_CHECK(!lua_toboolean(L, -1));
  lua_pop(L, 1);
  lua_pop(L, 1);

  push_row(L, -1, 3);
  TD_CHECK(get_int(L, -1, "i", &is) == INT64_MAX);
  TD_CHECK(get_float(L, -1, "f", &is) == 1000.0);
  TD_CHECK(get_float(L, -1, "n", &is) == 100.0);
  TD_CHECK(is); /* "1e2" is a float */
  lua_getfield(L, -1, "b");
  TD_CHECK(lua_isboolean(L, -1) && lua_toboolean(L, -1));
  lua_pop(L, 1);
  lua_pop(L, 1);

  push_row(L, -1, 4); /* empty fields: nil except in the string column */
  TD_CHECK_INT(get_type(L, -1, "i"), LUA_TNIL);
  TD_CHECK_INT(get_type(L, -1, "f"), LUA_TNIL);
  TD_CHECK_INT(get_type(L, -1, "n"), LUA_TNIL);
  TD_CHECK_INT(get_type(L, -1, "b"), LUA_TNIL);
  TD_CHECK_STR(get_str(L, -1, "s"), "");
  lua_pop(L, 1);

  push_row(L, -1, 5);
  TD_CHECK_INT(get_int(L, -1, "i", &is), 0);
  TD_CHECK(get_float(L, -1, "f", &is) > 1e308);
  TD_CHECK(get_float(L, -1, "n", &is) == 1e20); /* too big for an int */
  TD_CHECK(is);
  lua_getfield(L, -1, "b");
  TD_CHECK(lua_isboolean(L, -1) && !lua_toboolean(L, -1));
  lua_pop(L, 1);
  TD_CHECK_STR(get_str(L, -1, "s"), "");
  lua_pop(L, 1);

  push_row(L, -1, 6);
  TD_CHECK_INT(get_int(L, -1, "i", &is), 12); /* quoted, still an int */
  TD_CHECK(is);
  double nanv = get_float(L, -1, "f", &is);
  TD_CHECK(is && nanv != nanv);
  TD_CHECK(get_float(L, -1, "n", &is) == -16.0); /* strtod hex */
  TD_CHECK(is);
  lua_pop(L, 1);
  td_reader_free(r);
  lua_close(L);
  tmp_cleanup(&t);
}

/* Reads the single data row of "i,f,n,b\n<row>\n" and returns the error
 * code, with the message in msg. */
static int bad_value(tmpdir_t *t, const char *row, char *path_out,
                     char *msg, size_t msglen) {
  static int k;
  char name[32], content[256];
  snprintf(name, sizeof name, "bad%d.csv", k++);
  snprintf(content, sizeof content, "i,f,n,b\n%s\n", row);
  const char *p = tmp_write_str(t, name, content);
  strcpy(path_out, p);
  lua_State *L = new_state();
  td_reader_t *r;
  char err[256];
  td_csv_opts_t o = csv_defaults();
  o.type_names = TYPED_NAMES;
  o.types = TYPED_TYPES;
  o.n_types = 4;
  int rc = open_csv(&r, p, &o, err, sizeof err);
  if (rc == 0) {
    lua_newtable(L);
    rc = td_reader_read(r, L, -1, 10);
    snprintf(msg, msglen, "%s", td_reader_error(r));
    td_reader_free(r);
  }
  lua_close(L);
  return rc;
}

TD_TEST(test_source_file_csv_bad_values) {
  static const struct {
    const char *row, *msg;
  } cases[] = {
      {" 1,1,1,1", "column 'i': bad int ' 1'"},
      {"1 ,1,1,1", "column 'i': bad int '1 '"},
      {"9223372036854775808,1,1,1", "column 'i': bad int "
                                    "'9223372036854775808'"},
      {"-9223372036854775809,1,1,1", "column 'i': bad int "
                                     "'-9223372036854775809'"},
      {"1.0,1,1,1", "column 'i': bad int '1.0'"},
      {"-,1,1,1", "column 'i': bad int '-'"},
      {"1,1.5x,1,1", "column 'f': bad float '1.5x'"},
      {"1, 1.5,1,1", "column 'f': bad float ' 1.5'"},
      {"1,1,abc,1", "column 'n': bad number 'abc'"},
      {"1,1,1,yes", "column 'b': bad bool 'yes'"},
      {"1,1,1,2", "column 'b': bad bool '2'"},
  };
  tmpdir_t t;
  tmp_init(&t);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char path[200], msg[512], expect[512];
    TD_CHECK_INT(bad_value(&t, cases[i].row, path, msg, sizeof msg),
                 TD_EPARSE);
    snprintf(expect, sizeof expect, "%s:2: %s", path, cases[i].msg);
    TD_CHECK_STR(msg, expect);
  }
  tmp_cleanup(&t);
}

static const char *const COMMIT_NAMES[] = {
    "author_time_ms", "commit_time_ms", "files_changed", "insertions",
    "deletions"};
static const td_col_type_t COMMIT_TYPES[] = {TD_COL_INT, TD_COL_INT,
                                             TD_COL_INT, TD_COL_INT,
                                             TD_COL_INT};
#define COMMIT_HEADER                                                     \
  "repo,commit,author_time_ms,commit_time_ms,author,files_changed,"      \
  "insertions,deletions\n"

TD_TEST(test_source_file_csv_wrong_field_count_message) {
  tmpdir_t t;
  tmp_init(&t);
  const char *p = tmp_write_str(
      &t, "commits.csv",
      COMMIT_HEADER
      "git/git,e83c5163316f,1112911993000,1112911993000,8ef72c9561,11,1244,0\n"
      "git/git,8bc9a0c769ac,1112912170000,1112912170000,8ef72c9561,8,40\n"
      "git/git,8bc9a0c769ad,1112912170000,1112912170000,8ef72c9561,8,40,1\n");
  lua_State *L = new_state();
  td_reader_t *r;
  char err[256], expect[400];
  td_csv_opts_t o = csv_defaults();
  o.type_names = COMMIT_NAMES;
  o.types = COMMIT_TYPES;
  o.n_types = 5;
  TD_CHECK_INT(open_csv(&r, p, &o, err, sizeof err), 0);
  lua_newtable(L);
  /* the good row first, the error on the next call, and from then on */
  TD_CHECK_INT(td_reader_read(r, L, 1, 100), 1);
  push_row(L, 1, 1);
  int is;
  TD_CHECK_INT(get_int(L, -1, "insertions", &is), 1244);
  TD_CHECK_INT(get_int(L, -1, "author_time_ms", &is), 1112911993000LL);
  TD_CHECK_STR(get_str(L, -1, "commit"), "e83c5163316f");
  lua_pop(L, 1);
  TD_CHECK_INT(td_reader_read(r, L, 1, 100), TD_EPARSE);
  snprintf(expect, sizeof expect, "%s:3: expected 8 fields, got 7", p);
  TD_CHECK_STR(td_reader_error(r), expect);
  TD_CHECK_INT(td_reader_read(r, L, 1, 100), TD_EPARSE);
  TD_CHECK_STR(td_reader_error(r), expect);
  TD_CHECK_INT(lua_gettop(L), 1);
  td_reader_free(r);
  lua_close(L);
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_csv_bad_int_message) {
  tmpdir_t t;
  tmp_init(&t);
  const char *p = tmp_write_str(
      &t, "commits.csv",
      COMMIT_HEADER
      "git/git,e83c5163316f,1112911993000,1112911993000,8ef72c9561,11,x1,0\n");
  lua_State *L = new_state();
  td_reader_t *r;
  char err[256], expect[400];
  td_csv_opts_t o = csv_defaults();
  o.type_names = COMMIT_NAMES;
  o.types = COMMIT_TYPES;
  o.n_types = 5;
  TD_CHECK_INT(open_csv(&r, p, &o, err, sizeof err), 0);
  lua_newtable(L);
  TD_CHECK_INT(td_reader_read(r, L, 1, 100), TD_EPARSE);
  snprintf(expect, sizeof expect, "%s:2: column 'insertions': bad int 'x1'",
           p);
  TD_CHECK_STR(td_reader_error(r), expect);
  TD_CHECK_INT(lua_gettop(L), 1);
  td_reader_free(r);
  lua_close(L);
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_csv_quoted_fields) {
  tmpdir_t t;
  tmp_init(&t);
  const char *p = tmp_write_str(&t, "q.csv",
                                "a,b\n"
                                "\"x,y\",\"he said \"\"hi\"\"\"\n"
                                "\"line1\nline2\",plain\n"
                                "\"\",\"\"\"\"\n"
                                "\"a\"\"\",\"\n\"\n"
                                "\"z\",\"end\""); /* no final newline */
  lua_State *L = new_state();
  td_reader_t *r;
  char err[256];
  td_csv_opts_t o = csv_defaults();
  TD_CHECK_INT(open_csv(&r, p, &o, err, sizeof err), 0);
  TD_CHECK_INT(read_all(L, r, 100), 5);
  push_row(L, -1, 1);
  TD_CHECK_STR(get_str(L, -1, "a"), "x,y");
  TD_CHECK_STR(get_str(L, -1, "b"), "he said \"hi\"");
  lua_pop(L, 1);
  push_row(L, -1, 2);
  TD_CHECK_STR(get_str(L, -1, "a"), "line1\nline2");
  TD_CHECK_STR(get_str(L, -1, "b"), "plain");
  lua_pop(L, 1);
  push_row(L, -1, 3);
  TD_CHECK_STR(get_str(L, -1, "a"), "");
  TD_CHECK_STR(get_str(L, -1, "b"), "\"");
  lua_pop(L, 1);
  push_row(L, -1, 4);
  TD_CHECK_STR(get_str(L, -1, "a"), "a\"");
  TD_CHECK_STR(get_str(L, -1, "b"), "\n");
  lua_pop(L, 1);
  push_row(L, -1, 5);
  TD_CHECK_STR(get_str(L, -1, "a"), "z");
  TD_CHECK_STR(get_str(L, -1, "b"), "end");
  lua_pop(L, 1);
  td_reader_free(r);
  lua_close(L);
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_csv_line_number_after_multiline_field) {
  tmpdir_t t;
  tmp_init(&t);
  /* line 1 header, row 1 on lines 2-4, row 2 on 5-6, the bad row on 7 */
  const char *p = tmp_write_str(&t, "m.csv",
                                "a,b\n"
                                "\"1\n2\n3\",x\n"
                                "y,\"p\r\nq\"\n"
                                "4,5,6\n");
  lua_State *L = new_state();
  td_reader_t *r;
  char err[256], expect[400];
  td_csv_opts_t o = csv_defaults();
  TD_CHECK_INT(open_csv(&r, p, &o, err, sizeof err), 0);
  int rc = read_all(L, r, 100);
  TD_CHECK_INT(rc, TD_EPARSE);
  TD_CHECK_INT(lua_rawlen(L, -1), 2);
  push_row(L, -1, 2);
  TD_CHECK_STR(get_str(L, -1, "b"), "p\r\nq"); /* kept verbatim */
  lua_pop(L, 1);
  snprintf(expect, sizeof expect, "%s:7: expected 2 fields, got 3", p);
  TD_CHECK_STR(td_reader_error(r), expect);
  td_reader_free(r);
  lua_close(L);
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_csv_syntax_errors) {
  static const struct {
    const char *content, *msg;
  } cases[] = {
      {"a,b\n1,2\n3,\"abc\n4,5\n", "3: unterminated quoted field (opened at "
                                   "line 3, runs to the end of the file)"},
      {"a,b\n1,ab\"c\n", "2: unexpected '\"' in unquoted field"},
      {"a,b\n1,2\n\"ab\"c,d\n", "3: unexpected character after closing "
                                "quote"},
      {"a,\"b\n", "1: unterminated quoted field (opened at line 1, runs to "
                    "the end of the file)"}, /* in the header */
  };
  tmpdir_t t;
  tmp_init(&t);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char name[32], expect[400], err[400];
    snprintf(name, sizeof name, "s%zu.csv", i);
    const char *p = tmp_write_str(&t, name, cases[i].content);
    snprintf(expect, sizeof expect, "%s:%s", p, cases[i].msg);
    td_reader_t *r;
    td_csv_opts_t o = csv_defaults();
    int rc = td_reader_open_csv(&r, p, &o, 0, 1, err, sizeof err);
    if (rc) { /* the header's error comes at open */
      TD_CHECK_INT(rc, TD_EPARSE);
      TD_CHECK_STR(err, expect);
      continue;
    }
    lua_State *L = new_state();
    TD_CHECK_INT(read_all(L, r, 100), TD_EPARSE);
    TD_CHECK_STR(td_reader_error(r), expect);
    td_reader_free(r);
    lua_close(L);
  }
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_csv_skip_errors) {
  tmpdir_t t;
  tmp_init(&t);
  const char *p = tmp_write_str(&t, "s.csv",
                                "k,v\n"
                                "a,1\n"
                                "b,2,extra\n"   /* field count */
                                "c,3\n"
                                "d,x\n"         /* bad int */
                                "e,\"4\n"       /* multi-line, then ok */
                                "\"\n"
                                "f,ab\"c\n"     /* stray quote */
                                "g,7\n"
                                "h\n"           /* field count */
                                "i,9");
  lua_State *L = new_state();
  td_reader_t *r;
  char err[256];
  td_csv_opts_t o = csv_defaults();
  static const char *const tn[] = {"v"};
  static const td_col_type_t ty[] = {TD_COL_STRING};
  o.type_names = tn;
  o.types = ty;
  o.n_types = 1;
  o.skip_errors = 1;
  /* "v" as a string column: "4\n" is fine; make "d,x" bad through a
   * second reader with v as int below */
  TD_CHECK_INT(open_csv(&r, p, &o, err, sizeof err), 0);
  TD_CHECK_INT(read_all(L, r, 2), 6);
  TD_CHECK_INT(td_reader_skipped(r), 3);
  td_reader_free(r);
  lua_pop(L, 1);

  static const td_col_type_t ty_int[] = {TD_COL_INT};
  o.types = ty_int;
  TD_CHECK_INT(open_csv(&r, p, &o, err, sizeof err), 0);
  TD_CHECK_INT(read_all(L, r, 2), 4); /* a c g i */
  TD_CHECK_INT(td_reader_skipped(r), 5);
  static const char *const keys[] = {"a", "c", "g", "i"};
  static const long long vals[] = {1, 3, 7, 9};
  for (int i = 0; i < 4; i++) {
    int is;
    push_row(L, -1, i + 1);
    TD_CHECK_STR(get_str(L, -1, "k"), keys[i]);
    TD_CHECK_INT(get_int(L, -1, "v", &is), vals[i]);
    TD_CHECK(is);
    lua_pop(L, 1);
  }
  /* the last skipped row's message stays available */
  char expect[400];
  snprintf(expect, sizeof expect, "%s:10: expected 2 fields, got 1", p);
  TD_CHECK_STR(td_reader_error(r), expect);
  td_reader_free(r);
  lua_close(L);
  tmp_cleanup(&t);
}

/* Reads r to its end in batches of `batch` and checks the rows' k and v
 * against want_k[i] / want_v[i] (strings), n of them. */
static void check_kv_rows(lua_State *L, td_reader_t *r, int batch,
                          const char *const *want_k,
                          const char *const *want_v, int n) {
  TD_CHECK_INT(read_all(L, r, batch), n);
  TD_CHECK_INT(lua_rawlen(L, -1), n);
  for (int i = 0; i < n && i < (int)lua_rawlen(L, -1); i++) {
    push_row(L, -1, i + 1);
    TD_CHECK_STR(get_str(L, -1, "k"), want_k[i]);
    TD_CHECK_STR(get_str(L, -1, "v"), want_v[i]);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* Opens path with skip_errors, reads it in batches of `batch` and checks
 * the rows (see check_kv_rows), that one row was skipped and its message. */
static void check_one_skipped(lua_State *L, const char *path, int batch,
                              const char *const *want_k,
                              const char *const *want_v, int n,
                              const char *expect) {
  td_reader_t *r;
  char err[256];
  td_csv_opts_t o = csv_defaults();
  o.skip_errors = 1;
  if (open_csv(&r, path, &o, err, sizeof err) != 0) {
    td_test_failed_ = 1;
    return;
  }
  TD_CHECK_STR(td_reader_first_skipped(r), "");
  check_kv_rows(L, r, batch, want_k, want_v, n);
  TD_CHECK_INT(td_reader_skipped(r), 1);
  TD_CHECK_STR(td_reader_first_skipped(r), expect);
  td_reader_free(r);
}

/* An unterminated quote does not swallow the rest of the file: under
 * skip_errors the row it is in is skipped, reported with the line the row
 * starts on, and reading resumes at the line after the one the quote
 * opened on; without skip_errors the error names the row's line. */
TD_TEST(test_source_file_csv_unterminated_quote_skip) {
  tmpdir_t t;
  tmp_init(&t);
  enum { GOOD = 1000 };
  sbuf_t b = {0};
  sb_str(&b, "k,v\na,1\nb,2\nc,\"open\n"); /* the bad row on line 4 */
  const char *want_k[GOOD + 2], *want_v[GOOD + 2];
  static char kbuf[GOOD][16], vbuf[GOOD][16];
  want_k[0] = "a", want_v[0] = "1", want_k[1] = "b", want_v[1] = "2";
  for (int i = 0; i < GOOD; i++) {
    snprintf(kbuf[i], sizeof kbuf[i], "g%d", i + 1);
    snprintf(vbuf[i], sizeof vbuf[i], "%d", (i + 1) * 7);
    want_k[i + 2] = kbuf[i];
    want_v[i + 2] = vbuf[i];
    char line[40];
    snprintf(line, sizeof line, "%s,%s\n", kbuf[i], vbuf[i]);
    sb_str(&b, line);
  }
  const char *p = tmp_write(&t, "u.csv", b.p, b.len);
  char err[256], expect[400];
  snprintf(expect, sizeof expect, "%s:4: unterminated quoted field (opened "
           "at line 4, runs to the end of the file)", p);
  lua_State *L = new_state();
  td_reader_t *r;
  td_csv_opts_t o = csv_defaults();
  o.skip_errors = 1;
  for (int batch = 1; batch <= 1000; batch *= 10)
    check_one_skipped(L, p, batch, want_k, want_v, GOOD + 2, expect);

  /* the count survives a restore; the message is of this reader's rows */
  td_reader_pos_t before, after;
  TD_CHECK_INT(open_csv(&r, p, &o, err, sizeof err), 0);
  lua_newtable(L);
  TD_CHECK_INT(td_reader_read(r, L, -1, 2), 2); /* a, b */
  TD_CHECK_INT(td_reader_position(r, &before), 0);
  TD_CHECK_INT(td_reader_read(r, L, -1, 1), 1); /* skips c, reads g1 */
  lua_pop(L, 1);
  TD_CHECK_INT(td_reader_position(r, &after), 0);
  TD_CHECK_INT(after.skipped, 1);
  TD_CHECK_INT(after.line, 6);
  td_reader_free(r);
  TD_CHECK_INT(open_csv(&r, p, &o, err, sizeof err), 0);
  TD_CHECK_INT(td_reader_seek(r, &before), 0);
  check_kv_rows(L, r, 100, want_k + 2, want_v + 2, GOOD);
  TD_CHECK_INT(td_reader_skipped(r), 1);
  TD_CHECK_STR(td_reader_first_skipped(r), expect);
  td_reader_free(r);
  TD_CHECK_INT(open_csv(&r, p, &o, err, sizeof err), 0);
  TD_CHECK_INT(td_reader_seek(r, &after), 0);
  TD_CHECK_INT(td_reader_skipped(r), 1);
  check_kv_rows(L, r, 100, want_k + 3, want_v + 3, GOOD - 1);
  TD_CHECK_INT(td_reader_skipped(r), 1); /* not counted twice */
  TD_CHECK_STR(td_reader_first_skipped(r), ""); /* skipped before pos */
  td_reader_free(r);

  /* without skip_errors: the row's start line, and the position stays
   * before the row */
  o.skip_errors = 0;
  TD_CHECK_INT(open_csv(&r, p, &o, err, sizeof err), 0);
  TD_CHECK_INT(read_all(L, r, 100), TD_EPARSE);
  TD_CHECK_INT(lua_rawlen(L, -1), 2);
  lua_pop(L, 1);
  TD_CHECK_STR(td_reader_error(r), expect);
  TD_CHECK_INT(td_reader_position(r, &after), 0);
  TD_CHECK_INT(after.offset, strlen("k,v\na,1\nb,2\n"));
  TD_CHECK_INT(after.line, 4);
  TD_CHECK_STR(td_reader_first_skipped(r), "");
  td_reader_free(r);
  free(b.p);

  /* the row starts on line 3 (a quoted field over two lines), the
   * unterminated quote opens on line 4: the row's line is reported, the
   * quote's line is named, and reading resumes on line 5 */
  const char *q = tmp_write_str(&t, "q.csv",
                                "k,v,w\n"
                                "a,1,x\n"
                                "b,\"two\n"
                                "lines\",\"open\n"
                                "c,3,y\n"
                                "d,4,z\n");
  snprintf(expect, sizeof expect, "%s:3: unterminated quoted field (opened "
           "at line 4, runs to the end of the file)", q);
  static const char *const qk[] = {"a", "c", "d"}, *const qv[] = {"1", "3",
                                                                  "4"};
  check_one_skipped(L, q, 10, qk, qv, 3, expect);
  TD_CHECK_INT(open_csv(&r, q, &o, err, sizeof err), 0);
  TD_CHECK_INT(read_all(L, r, 10), TD_EPARSE);
  lua_pop(L, 1);
  TD_CHECK_STR(td_reader_error(r), expect);
  td_reader_free(r);

  /* a stray quote that a later quote closes: the row it opens in is bad,
   * and the lines it spanned are read as rows again */
  const char *s = tmp_write_str(&t, "s.csv",
                                "k,v\n"
                                "a,\"x\n"  /* opens on line 2 ... */
                                "b,2\n"
                                "c,\"q\"\n" /* ... closes before q */
                                "d,4\n");
  snprintf(expect, sizeof expect, "%s:2: unexpected character after "
           "closing quote (the quoted field opened at line 2 closes on "
           "line 4)", s);
  static const char *const sk[] = {"b", "c", "d"}, *const sv[] = {"2", "q",
                                                                  "4"};
  check_one_skipped(L, s, 10, sk, sv, 3, expect);

  TD_CHECK_INT(lua_gettop(L), 0);
  lua_close(L);
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_csv_no_header_arrays) {
  tmpdir_t t;
  tmp_init(&t);
  const char *p = tmp_write_str(&t, "n.csv", "1,x,\n2,y,3\n");
  lua_State *L = new_state();
  td_reader_t *r;
  char err[256];
  td_csv_opts_t o = csv_defaults();
  o.header = 0;
  TD_CHECK_INT(open_csv(&r, p, &o, err, sizeof err), 0);
  TD_CHECK_INT(read_all(L, r, 10), 2);
  push_row(L, -1, 1);
  TD_CHECK_INT(lua_rawlen(L, -1), 3);
  lua_rawgeti(L, -1, 1);
  TD_CHECK_STR(lua_tostring(L, -1), "1");
  lua_rawgeti(L, -2, 3);
  TD_CHECK_STR(lua_tostring(L, -1), "");
  lua_pop(L, 3);
  td_reader_free(r);
  lua_pop(L, 1);

  /* types by column number in array mode */
  static const char *const tn[] = {"1", "3"};
  static const td_col_type_t ty[] = {TD_COL_INT, TD_COL_INT};
  o.type_names = tn;
  o.types = ty;
  o.n_types = 2;
  TD_CHECK_INT(open_csv(&r, p, &o, err, sizeof err), 0);
  TD_CHECK_INT(read_all(L, r, 10), 2);
  push_row(L, -1, 1);
  lua_rawgeti(L, -1, 1);
  TD_CHECK(lua_isinteger(L, -1) && lua_tointeger(L, -1) == 1);
  lua_rawgeti(L, -2, 3);
  TD_CHECK(lua_isnil(L, -1)); /* empty int field */
  lua_pop(L, 3);
  push_row(L, -1, 2);
  lua_rawgeti(L, -1, 3);
  TD_CHECK(lua_isinteger(L, -1) && lua_tointeger(L, -1) == 3);
  lua_pop(L, 2);
  td_reader_free(r);
  lua_pop(L, 1);

  /* names without a header: rows keyed by them */
  static const char *const names[] = {"id", "tag", "n"};
  o.names = names;
  o.n_names = 3;
  static const char *const tn2[] = {"n"};
  o.type_names = tn2;
  o.n_types = 1;
  TD_CHECK_INT(open_csv(&r, p, &o, err, sizeof err), 0);
  TD_CHECK_INT(read_all(L, r, 10), 2);
  push_row(L, -1, 2);
  TD_CHECK_STR(get_str(L, -1, "id"), "2");
  TD_CHECK_STR(get_str(L, -1, "tag"), "y");
  int is;
  TD_CHECK_INT(get_int(L, -1, "n", &is), 3);
  TD_CHECK(is);
  lua_pop(L, 1);
  td_reader_free(r);
  lua_close(L);
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_csv_names_override_header) {
  tmpdir_t t;
  tmp_init(&t);
  const char *p = tmp_write_str(&t, "h.csv", "A,B\n1,2\n");
  lua_State *L = new_state();
  td_reader_t *r;
  char err[256];
  td_csv_opts_t o = csv_defaults();
  static const char *const names[] = {"x", "y"};
  o.names = names;
  o.n_names = 2;
  TD_CHECK_INT(open_csv(&r, p, &o, err, sizeof err), 0);
  TD_CHECK_INT(read_all(L, r, 10), 1);
  push_row(L, -1, 1);
  TD_CHECK_STR(get_str(L, -1, "x"), "1");
  TD_CHECK_STR(get_str(L, -1, "y"), "2");
  TD_CHECK_INT(get_type(L, -1, "A"), LUA_TNIL);
  lua_pop(L, 1);
  td_reader_free(r);
  /* a count that differs from the header's is an error at open */
  o.n_names = 1;
  TD_CHECK_INT(td_reader_open_csv(&r, p, &o, 0, 1, err, sizeof err),
               TD_EINVAL);
  TD_CHECK(strstr(err, p) != NULL);
  lua_close(L);
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_csv_unknown_type_column) {
  tmpdir_t t;
  tmp_init(&t);
  const char *p = tmp_write_str(&t, "u.csv", "a,b\n1,2\n");
  td_reader_t *r = NULL;
  char err[256];
  td_csv_opts_t o = csv_defaults();
  static const char *const tn[] = {"a", "nope"};
  static const td_col_type_t ty[] = {TD_COL_INT, TD_COL_INT};
  o.type_names = tn;
  o.types = ty;
  o.n_types = 2;
  TD_CHECK_INT(td_reader_open_csv(&r, p, &o, 0, 1, err, sizeof err),
               TD_EINVAL);
  TD_CHECK(r == NULL);
  TD_CHECK(strstr(err, "'nope'") != NULL);
  TD_CHECK(strstr(err, p) != NULL);
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_csv_bom_and_crlf) {
  tmpdir_t t;
  tmp_init(&t);
  const char *p = tmp_write_str(&t, "b.csv",
                                "\xEF\xBB\xBFid,v\r\n"
                                "1,a\r\n"
                                "2,\"x\r\ny\"\r\n"
                                "\r\n"
                                "3,c\r\n"
                                "4,bad,\r\n");
  lua_State *L = new_state();
  td_reader_t *r;
  char err[256], expect[400];
  td_csv_opts_t o = csv_defaults();
  static const char *const tn[] = {"id"};
  static const td_col_type_t ty[] = {TD_COL_INT};
  o.type_names = tn; /* "id" exists only once the BOM is stripped */
  o.types = ty;
  o.n_types = 1;
  TD_CHECK_INT(open_csv(&r, p, &o, err, sizeof err), 0);
  TD_CHECK_INT(read_all(L, r, 10), TD_EPARSE);
  TD_CHECK_INT(lua_rawlen(L, -1), 3);
  int is;
  push_row(L, -1, 1);
  TD_CHECK_INT(get_int(L, -1, "id", &is), 1);
  TD_CHECK_STR(get_str(L, -1, "v"), "a");
  lua_pop(L, 1);
  push_row(L, -1, 2);
  TD_CHECK_STR(get_str(L, -1, "v"), "x\r\ny");
  lua_pop(L, 1);
  push_row(L, -1, 3);
  TD_CHECK_INT(get_int(L, -1, "id", &is), 3);
  TD_CHECK_STR(get_str(L, -1, "v"), "c");
  lua_pop(L, 1);
  snprintf(expect, sizeof expect, "%s:7: expected 2 fields, got 3", p);
  TD_CHECK_STR(td_reader_error(r), expect);
  td_reader_free(r);
  lua_close(L);
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_csv_blank_lines_delimiter_and_splits) {
  tmpdir_t t;
  tmp_init(&t);
  const char *p = tmp_write_str(&t, "d.tsv", "a\tb\n1\t2,3\n\n4\t\"5\t6\"\n\n");
  lua_State *L = new_state();
  td_reader_t *r;
  char err[256];
  td_csv_opts_t o = csv_defaults();
  o.delimiter = '\t';
  TD_CHECK_INT(open_csv(&r, p, &o, err, sizeof err), 0);
  TD_CHECK_INT(read_all(L, r, 10), 2);
  push_row(L, -1, 1);
  TD_CHECK_STR(get_str(L, -1, "b"), "2,3");
  lua_pop(L, 1);
  push_row(L, -1, 2);
  TD_CHECK_STR(get_str(L, -1, "b"), "5\t6");
  lua_pop(L, 1);
  td_reader_free(r);
  lua_pop(L, 1);
  /* only split 0 reads a CSV file */
  TD_CHECK_INT(td_reader_open_csv(&r, p, &o, 1, 3, err, sizeof err), 0);
  TD_CHECK_INT(read_all(L, r, 10), 0);
  td_reader_free(r);
  TD_CHECK_INT(td_reader_open_csv(&r, p, &o, 0, 3, err, sizeof err), 0);
  TD_CHECK_INT(read_all(L, r, 10), 2);
  td_reader_free(r);
  /* an empty file and a header-only file give no rows */
  const char *pe = tmp_write(&t, "e.csv", "", 0);
  const char *ph = tmp_write_str(&t, "h.csv", "a,b\n");
  o.delimiter = ',';
  TD_CHECK_INT(open_csv(&r, pe, &o, err, sizeof err), 0);
  TD_CHECK_INT(read_all(L, r, 10), 0);
  td_reader_free(r);
  TD_CHECK_INT(open_csv(&r, ph, &o, err, sizeof err), 0);
  TD_CHECK_INT(read_all(L, r, 10), 0);
  td_reader_free(r);
  lua_close(L);
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_csv_large_file_across_buffers) {
  /* several MB, quoted multi-line fields landing on block boundaries,
   * plain and gzip, then an error far down with the right line number */
  tmpdir_t t;
  tmp_init(&t);
  enum { ROWS = 60000 };
  sbuf_t b = {0};
  sb_str(&b, "id,text,n\n");
  uint64_t line = 2;
  for (int i = 0; i < ROWS; i++) {
    char row[256];
    if (i % 97 == 0) {
      snprintf(row, sizeof row, "%d,\"multi\nline \"\"%d\"\",\n\",%d\n", i,
               i, i * 3);
      line += 3;
    } else {
      int pad = (int)(rng() % 60);
      snprintf(row, sizeof row, "%d,%.*s,%d\n", i, pad,
               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
               i * 3);
      line += 1;
    }
    sb_str(&b, row);
  }
  size_t good_len = b.len;
  sb_str(&b, "oops,1\n");
  const char *p = tmp_write(&t, "big.csv", b.p, b.len);
  const char *pz = tmp_write_gz(&t, "big.csv.gz", b.p, b.len);
  const char *pok = tmp_write(&t, "ok.csv", b.p, good_len);
  const char *paths[] = {p, pz};
  static const char *const tn[] = {"id", "n"};
  static const td_col_type_t ty[] = {TD_COL_INT, TD_COL_NUMBER};
  for (int k = 0; k < 2; k++) {
    lua_State *L = new_state();
    td_reader_t *r;
    char err[256], expect[400];
    td_csv_opts_t o = csv_defaults();
    o.type_names = tn;
    o.types = ty;
    o.n_types = 2;
    TD_CHECK_INT(open_csv(&r, paths[k], &o, err, sizeof err), 0);
    TD_CHECK_INT(read_all(L, r, 1024), TD_EPARSE);
    TD_CHECK_INT(lua_rawlen(L, -1), ROWS);
    int bad = 0;
    for (int i = 0; i < ROWS && !bad; i++) {
      int is;
      push_row(L, -1, i + 1);
      if (get_int(L, -1, "id", &is) != i || !is) bad = 1;
      if (get_int(L, -1, "n", &is) != i * 3 || !is) bad = 1;
      if (i % 97 == 0) {
        char expect_text[64];
        snprintf(expect_text, sizeof expect_text, "multi\nline \"%d\",\n", i);
        const char *s = get_str(L, -1, "text");
        if (!s || strcmp(s, expect_text) != 0) bad = 1;
      }
      lua_pop(L, 1);
      if (bad) fprintf(stderr, "  %s: row %d differs\n", paths[k], i + 1);
    }
    TD_CHECK(!bad);
    snprintf(expect, sizeof expect, "%s:%llu: expected 3 fields, got 2",
             paths[k], (unsigned long long)line);
    TD_CHECK_STR(td_reader_error(r), expect);
    td_reader_free(r);
    lua_close(L);
  }
  lua_State *L = new_state();
  td_reader_t *r;
  char err[256];
  td_csv_opts_t o = csv_defaults();
  TD_CHECK_INT(open_csv(&r, pok, &o, err, sizeof err), 0);
  TD_CHECK_INT(read_all(L, r, 1), ROWS); /* batches of one */
  td_reader_free(r);
  lua_close(L);
  free(b.p);
  tmp_cleanup(&t);
}

/* ------------------------------------------------------------------ */
/* positions */

/* Appends an exact, canonical text of the Lua value at idx: strings with
 * their length, integers and floats apart (floats in hex), table entries
 * sorted, so two records compare equal exactly when they are the same. */
static int cmp_strp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void repr(lua_State *L, int idx, sbuf_t *b) {
  char tmp[64];
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
  case LUA_TSTRING: {
    size_t len;
    const char *p = lua_tolstring(L, idx, &len);
    snprintf(tmp, sizeof tmp, "s%zu:", len);
    sb_str(b, tmp);
    sb_add(b, p, len);
    break;
  }
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx))
      snprintf(tmp, sizeof tmp, "i%lld", (long long)lua_tointeger(L, idx));
    else
      snprintf(tmp, sizeof tmp, "f%a", (double)lua_tonumber(L, idx));
    sb_str(b, tmp);
    break;
  case LUA_TBOOLEAN:
    sb_str(b, lua_toboolean(L, idx) ? "true" : "false");
    break;
  case LUA_TTABLE: {
    size_t n = 0, cap = 8;
    char **items = malloc(cap * sizeof *items);
    if (!items) exit(2);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      sbuf_t e = {0};
      repr(L, -2, &e);
      sb_str(&e, "=");
      repr(L, -1, &e);
      if (n == cap) {
        cap *= 2;
        items = realloc(items, cap * sizeof *items);
        if (!items) exit(2);
      }
      items[n++] = e.p;
      lua_pop(L, 1);
    }
    qsort(items, n, sizeof *items, cmp_strp);
    sb_str(b, "{");
    for (size_t i = 0; i < n; i++) {
      if (i) sb_str(b, ",");
      sb_str(b, items[i]);
      free(items[i]);
    }
    sb_str(b, "}");
    free(items);
    break;
  }
  default:
    sb_str(b, lua_typename(L, lua_type(L, idx)));
  }
}

/* repr of t[i] at idx, malloc'd */
static char *repr_at(lua_State *L, int idx, int i) {
  sbuf_t b = {0};
  lua_rawgeti(L, idx, i);
  repr(L, -1, &b);
  lua_pop(L, 1);
  if (!b.p) b.p = calloc(1, 1);
  return b.p;
}

/* A reader to open again and again: a file, its kind and split. */
typedef struct {
  const char *path;
  int csv;
  td_csv_opts_t o;
  int split, n;
} src_t;

static src_t text_src(const char *path, int split, int n) {
  src_t s;
  memset(&s, 0, sizeof s);
  s.path = path;
  s.split = split;
  s.n = n;
  return s;
}

static src_t csv_src(const char *path, const td_csv_opts_t *o) {
  src_t s;
  memset(&s, 0, sizeof s);
  s.path = path;
  s.csv = 1;
  s.o = *o;
  s.n = 1;
  return s;
}

static td_reader_t *src_open(const src_t *s) {
  td_reader_t *r = NULL;
  char err[512];
  int rc = s->csv ? td_reader_open_csv(&r, s->path, &s->o, s->split, s->n,
                                       err, sizeof err)
                  : td_reader_open_text(&r, s->path, s->split, s->n, err,
                                        sizeof err);
  if (rc) {
    fprintf(stderr, "  open %s (split %d of %d): %s\n", s->path, s->split,
            s->n, err);
    td_test_failed_ = 1;
    return NULL;
  }
  return r;
}

/* What one uninterrupted read gives: the records, then 0 or an error. */
typedef struct {
  char **recs;
  int n;
  int rc;
  char err[1024];
  uint64_t skipped;
  td_reader_pos_t end; /* the position after it all */
} ref_t;

static void ref_read(const src_t *s, ref_t *ref) {
  memset(ref, 0, sizeof *ref);
  td_reader_t *r = src_open(s);
  if (!r) return;
  lua_State *L = new_state();
  int rc = read_all(L, r, 1000);
  ref->rc = rc < 0 ? rc : 0;
  ref->n = (int)lua_rawlen(L, -1);
  ref->recs = calloc((size_t)ref->n + 1, sizeof *ref->recs);
  for (int i = 0; i < ref->n; i++) ref->recs[i] = repr_at(L, -1, i + 1);
  if (rc < 0) snprintf(ref->err, sizeof ref->err, "%s", td_reader_error(r));
  ref->skipped = td_reader_skipped(r);
  TD_CHECK_INT(td_reader_position(r, &ref->end), 0);
  td_reader_free(r);
  lua_close(L);
}

static void ref_free(ref_t *ref) {
  for (int i = 0; i < ref->n; i++) free(ref->recs[i]);
  free(ref->recs);
}

/* Compares records 1..n of the table at idx with ref->recs[from..]. */
static int same_records(lua_State *L, int idx, int n, const ref_t *ref,
                        int from, const char *ctx) {
  for (int i = 0; i < n; i++) {
    if (from + i >= ref->n) {
      fprintf(stderr, "  %s: record %d is one too many\n", ctx, from + i + 1);
      return 0;
    }
    char *got = repr_at(L, idx, i + 1);
    int same = strcmp(got, ref->recs[from + i]) == 0;
    if (!same)
      fprintf(stderr, "  %s: record %d is %.80s, expected %.80s\n", ctx,
              from + i + 1, got, ref->recs[from + i]);
    free(got);
    if (!same) return 0;
  }
  return 1;
}

enum { PEEK = 4 };

/* Opens s afresh, seeks to pos (taken after `done` records) and checks
 * that it returns exactly ref's records from there on: all of them with
 * the same ending (full), or the next few (peek). */
static void check_resume(const src_t *s, const td_reader_pos_t *pos,
                         const ref_t *ref, int done, int full,
                         const char *ctx) {
  td_reader_t *r = src_open(s);
  if (!r) return;
  int rc = td_reader_seek(r, pos);
  if (rc) {
    fprintf(stderr, "  %s: seek to offset %llu failed: %s\n", ctx,
            (unsigned long long)pos->offset, td_reader_error(r));
    td_test_failed_ = 1;
    td_reader_free(r);
    return;
  }
  lua_State *L = new_state();
  int remain = ref->n - done, ok = 1;
  if (full) {
    int c = read_all(L, r, done % 2 ? 1000 : 3);
    int want = ref->rc < 0 ? ref->rc : remain;
    if (c != want) {
      fprintf(stderr, "  %s: resumed read gave %d, expected %d\n", ctx, c,
              want);
      ok = 0;
    }
    int got = (int)lua_rawlen(L, -1);
    if (got != remain) {
      fprintf(stderr, "  %s: resumed read gave %d records, expected %d\n",
              ctx, got, remain);
      ok = 0;
    }
    if (!same_records(L, -1, got, ref, done, ctx)) ok = 0;
    if (td_reader_skipped(r) != ref->skipped) {
      fprintf(stderr, "  %s: skipped %llu, expected %llu\n", ctx,
              (unsigned long long)td_reader_skipped(r),
              (unsigned long long)ref->skipped);
      ok = 0;
    }
    /* and it ends where the uninterrupted read ended, on the same line */
    td_reader_pos_t end;
    if (td_reader_position(r, &end) != 0 ||
        memcmp(&end, &ref->end, sizeof end) != 0) {
      fprintf(stderr, "  %s: resumed read ends at offset %llu line %llu, "
              "expected offset %llu line %llu\n", ctx,
              (unsigned long long)end.offset, (unsigned long long)end.line,
              (unsigned long long)ref->end.offset,
              (unsigned long long)ref->end.line);
      ok = 0;
    }
  } else {
    lua_newtable(L);
    int c = td_reader_read(r, L, -1, PEEK);
    int want = remain > PEEK ? PEEK : remain;
    if (remain == 0) want = ref->rc;
    if (c != want) {
      fprintf(stderr, "  %s: resumed read gave %d, expected %d\n", ctx, c,
              want);
      ok = 0;
    } else if (c > 0 && !same_records(L, -1, c, ref, done, ctx)) {
      ok = 0;
    }
  }
  if (ok && ref->rc < 0 && (full || remain == 0) &&
      strcmp(td_reader_error(r), ref->err) != 0) {
    fprintf(stderr, "  %s: error '%s', expected '%s'\n", ctx,
            td_reader_error(r), ref->err);
    ok = 0;
  }
  if (!ok) td_test_failed_ = 1;
  td_reader_free(r);
  lua_close(L);
}

/* Which positions check_positions resumes from: every one (full_every 1,
 * window 0), or in large files every full_every-th in full and peeks at
 * those within `window` bytes of origin + a multiple of 1 MiB (about
 * where the reader's buffer is refilled: origin is where the reader
 * starts reading) or next to a record longer than 64 KiB. */
typedef struct {
  int full_every;
  uint64_t window;
  uint64_t origin;
} sample_t;

static const sample_t EVERY = {1, 0, 0};

#define MIB (1024u * 1024u)

/* Reads s in batches of `batch`, checking every batch against ref; after
 * each batch takes the position and checks that a fresh reader seeked
 * there returns exactly the records not read yet (and, at the end, none).
 * Returns the number of positions checked. */
static int check_positions(const src_t *s, const ref_t *ref, int batch,
                           sample_t smp) {
  char ctx[400];
  td_reader_t *r = src_open(s);
  if (!r) return 0;
  lua_State *L = new_state();
  lua_newtable(L);
  int bt = lua_gettop(L), done = 0, checked = 0, k = 0;
  td_reader_pos_t pos;
  /* the position of a fresh reader: everything is still to come */
  TD_CHECK_INT(td_reader_position(r, &pos), 0);
  snprintf(ctx, sizeof ctx, "%s split %d/%d batch %d, fresh", s->path,
           s->split, s->n, batch);
  check_resume(s, &pos, ref, 0, smp.full_every == 1 || ref->n < 50, ctx);
  checked++;
  for (;; k++) {
    for (int i = 1; i <= batch; i++) {
      lua_pushnil(L);
      lua_rawseti(L, bt, i);
    }
    int rc = td_reader_read(r, L, bt, batch);
    snprintf(ctx, sizeof ctx, "%s split %d/%d batch %d, call %d (%d read)",
             s->path, s->split, s->n, batch, k + 1, done);
    if (rc > 0) {
      if (rc > batch || !same_records(L, bt, rc, ref, done, ctx)) {
        td_test_failed_ = 1;
        break;
      }
      done += rc;
    } else if (rc < 0) {
      TD_CHECK_INT(rc, ref->rc);
      TD_CHECK_INT(done, ref->n);
      TD_CHECK_STR(td_reader_error(r), ref->err);
    } else {
      TD_CHECK_INT(done, ref->n);
      TD_CHECK_INT(ref->rc, 0);
    }
    TD_CHECK_INT(td_reader_position(r, &pos), 0);
    TD_CHECK_INT(pos.split, s->split);
    TD_CHECK_INT(pos.n_splits, s->n);
    TD_CHECK_INT(pos.kind, s->csv ? TD_READER_CSV : TD_READER_TEXT);
    int last = rc <= 0;
    int full = last || smp.full_every == 1 || (k + 1) % smp.full_every == 0;
    int peek = 0;
    if (!full && smp.window) {
      uint64_t m = (pos.offset - smp.origin) % MIB;
      peek = m < smp.window || MIB - m < smp.window;
      if ((done > 0 && strlen(ref->recs[done - 1]) > 65536) ||
          (done < ref->n && strlen(ref->recs[done]) > 65536))
        peek = 1;
    }
    snprintf(ctx, sizeof ctx, "%s split %d/%d batch %d, after call %d (%d "
             "read, offset %llu)", s->path, s->split, s->n, batch, k + 1,
             done, (unsigned long long)pos.offset);
    if (full || peek) {
      check_resume(s, &pos, ref, done, full, ctx);
      checked++;
    }
    if (last) {
      /* a position taken at the end gives a reader that returns nothing
       * more (or the same error) */
      td_reader_t *r2 = src_open(s);
      if (r2) {
        TD_CHECK_INT(td_reader_seek(r2, &pos), 0);
        lua_newtable(L);
        TD_CHECK_INT(td_reader_read(r2, L, -1, 10), ref->rc);
        TD_CHECK_INT(lua_rawlen(L, -1), 0);
        lua_pop(L, 1);
        td_reader_free(r2);
      }
      break;
    }
  }
  TD_CHECK_INT(td_reader_skipped(r), ref->skipped);
  td_reader_free(r);
  lua_close(L);
  return checked;
}

static const int BATCHES[] = {1, 2, 3, 7, 1000};
enum { N_BATCHES = sizeof BATCHES / sizeof BATCHES[0] };

/* check_positions for every batch size, against one uninterrupted read. */
static void check_all_batches(const src_t *s, sample_t smp) {
  ref_t ref;
  ref_read(s, &ref);
  for (int b = 0; b < N_BATCHES; b++) check_positions(s, &ref, BATCHES[b],
                                                      smp);
  ref_free(&ref);
}

static const char *const SMALL_TEXTS[] = {
    "one\r\ntwo\r\n\r\nth\rree\n\n\nfour", /* CRLF, empty, no final \n */
    "\n\na\n\n\nb\n\n",
    "alpha\nbeta\n\ngamma delta\n",
    "x",
    "",
    "only\r",
    "a\r\n",
    "\r\n\r\n",
    "\n",
    "ab\ncd",
};

TD_TEST(test_source_file_position_text_batches) {
  tmpdir_t t;
  tmp_init(&t);
  size_t nsmall = sizeof SMALL_TEXTS / sizeof SMALL_TEXTS[0];
  for (size_t f = 0; f < nsmall; f++) {
    char name[32];
    snprintf(name, sizeof name, "s%zu.txt", f);
    const char *p = tmp_write_str(&t, name, SMALL_TEXTS[f]);
    snprintf(name, sizeof name, "s%zu.txt.gz", f);
    const char *pz =
        tmp_write_gz(&t, name, SMALL_TEXTS[f], strlen(SMALL_TEXTS[f]));
    for (int n = 1; n <= 4; n++)
      for (int sp = 0; sp < n; sp++) {
        src_t s = text_src(p, sp, n);
        check_all_batches(&s, EVERY);
      }
    src_t sz = text_src(pz, 0, 1);
    check_all_batches(&sz, EVERY);
  }
  /* generated lines: empty ones, CRLF, with and without a final newline */
  for (int fin = 0; fin <= 1; fin++) {
    enum { NL = 100 };
    sbuf_t text = {0}, store = {0};
    size_t offs[NL];
    gen_lines(&text, &store, offs, NL, fin);
    const char *p = tmp_write(&t, fin ? "g1.txt" : "g0.txt", text.p,
                              text.len);
    const char *pz = tmp_write_gz(&t, fin ? "g1.txt.gz" : "g0.txt.gz",
                                  text.p, text.len);
    for (int n = 1; n <= 4; n++)
      for (int sp = 0; sp < n; sp++) {
        src_t s = text_src(p, sp, n);
        check_all_batches(&s, EVERY);
      }
    for (int sp = 0; sp < 3; sp++) { /* gz: split 0 reads it all */
      src_t s = text_src(pz, sp, 3);
      check_all_batches(&s, EVERY);
    }
    free(text.p);
    free(store.p);
  }
  tmp_cleanup(&t);
}

/* floor(size * k / n), as the reader splits files */
static uint64_t test_split_point(uint64_t size, int k, int n) {
  return size / (uint64_t)n * (uint64_t)k +
         size % (uint64_t)n * (uint64_t)k / (uint64_t)n;
}

TD_TEST(test_source_file_position_text_large) {
  /* several MiB, so batches end on both sides of buffer refills, with two
   * lines longer than the buffer (which then grows) */
  tmpdir_t t;
  tmp_init(&t);
  enum { NL = 16000 };
  sbuf_t text = {0}, store = {0};
  static size_t offs[NL];
  gen_lines(&text, &store, offs, NL / 2, 1);
  size_t big = 1536u * 1024 + 5;
  char *line = malloc(big + 2);
  memset(line, 'q', big);
  memcpy(line + big, "\n", 2);
  sb_str(&text, line);
  gen_lines(&text, &store, offs, NL / 4, 1);
  line[big - 1] = '\r'; /* CRLF */
  sb_str(&text, line);
  sb_str(&text, line);
  gen_lines(&text, &store, offs, NL / 4, 0);
  const char *p = tmp_write(&t, "big.txt", text.p, text.len);
  const char *pz = tmp_write_gz(&t, "big.txt.gz", text.p, text.len);
  int checked = 0;
  for (int n = 1; n <= 3; n += 2)
    for (int sp = 0; sp < n; sp++) {
      src_t s = text_src(p, sp, n);
      ref_t ref;
      ref_read(&s, &ref);
      uint64_t start = test_split_point(text.len, sp, n);
      for (int b = 0; b < N_BATCHES; b++) {
        int calls = ref.n / BATCHES[b] + 1;
        sample_t smp = {calls / 2 > 0 ? calls / 2 : 1, 2048,
                        start ? start - 1 : 0};
        checked += check_positions(&s, &ref, BATCHES[b], smp);
      }
      ref_free(&ref);
    }
  TD_CHECK(checked > 120); /* the peeks happened */
  /* gz: every seek decompresses from the start, so fewer of them */
  src_t s = text_src(pz, 0, 1);
  ref_t ref;
  ref_read(&s, &ref);
  TD_CHECK(ref.n > NL);
  static const int gz_batches[] = {7, 1000};
  for (int b = 0; b < 2; b++) {
    int calls = ref.n / gz_batches[b] + 1;
    sample_t smp = {calls / 2 > 0 ? calls / 2 : 1, 0, 0};
    check_positions(&s, &ref, gz_batches[b], smp);
  }
  ref_free(&ref);
  free(line);
  free(text.p);
  free(store.p);
  tmp_cleanup(&t);
}

/* Seeks a fresh reader of s to pos; expects TD_EINVAL with a message
 * naming the path, and a reader that keeps failing. */
static void check_seek_rejected(const src_t *s, const td_reader_pos_t *pos,
                                const char *what) {
  td_reader_t *r = src_open(s);
  if (!r) return;
  int rc = td_reader_seek(r, pos);
  if (rc != TD_EINVAL) {
    fprintf(stderr, "  %s: split %d/%d, offset %llu: seek gave %d (%s), "
            "expected TD_EINVAL\n", what, s->split, s->n,
            (unsigned long long)pos->offset, rc, td_reader_error(r));
    td_test_failed_ = 1;
  } else {
    TD_CHECK(strstr(td_reader_error(r), s->path) != NULL);
    lua_State *L = new_state();
    lua_newtable(L);
    TD_CHECK_INT(td_reader_read(r, L, -1, 10), TD_EINVAL);
    TD_CHECK_INT(lua_rawlen(L, -1), 0);
    td_reader_pos_t again;
    TD_CHECK_INT(td_reader_position(r, &again), TD_EINVAL);
    lua_close(L);
  }
  td_reader_free(r);
}

TD_TEST(test_source_file_position_text_splits_own_positions) {
  /* a position inside split s is only valid for split s */
  tmpdir_t t;
  tmp_init(&t);
  enum { NL = 400 };
  sbuf_t text = {0}, store = {0};
  size_t offs[NL];
  gen_lines(&text, &store, offs, NL, 1);
  const char *p = tmp_write(&t, "g.txt", text.p, text.len);
  int rejected = 0;
  for (int n = 2; n <= 5; n++) {
    for (int sp = 0; sp < n; sp++) {
      src_t s = text_src(p, sp, n);
      uint64_t end = test_split_point(text.len, sp + 1, n);
      td_reader_t *r = src_open(&s);
      if (!r) continue;
      lua_State *L = new_state();
      lua_newtable(L);
      for (int k = 0; td_reader_read(r, L, 1, 7) > 0; k++) {
        td_reader_pos_t pos;
        TD_CHECK_INT(td_reader_position(r, &pos), 0);
        if (pos.offset >= end || k % 3) continue;
        for (int o = 0; o < n; o++) {
          if (o == sp) continue;
          /* the labels say split sp: no other split takes it */
          src_t other = text_src(p, o, n);
          check_seek_rejected(&other, &pos, "another split's position");
          /* relabelled, the offset is still outside split o */
          td_reader_pos_t forged = pos;
          forged.split = o;
          if (o != 0) forged.line = 0;
          check_seek_rejected(&other, &forged, "an offset in another split");
          rejected += 2;
        }
      }
      td_reader_free(r);
      lua_close(L);
    }
  }
  TD_CHECK(rejected > 100);
  free(text.p);
  free(store.p);
  tmp_cleanup(&t);
}

/* CSV contents for the position tests */
static const char CSV_TYPED[] =
    "\xEF\xBB\xBFi,f,n,b,s\r\n"
    "1,1.5,7,true,plain\r\n"
    "2,-2,1.25,FALSE,\"multi\r\nline\"\r\n"
    "\r\n"
    "3,,,,\"\"\r\n"
    "\n"
    "\"4\",1e3,99999999999999999999,1,\"a,b \"\"q\"\"\n\n\"\n"
    "5,nan,-0x10,0,x\n"
    "6,2,3,1,\"\"\"\"\n"
    "7,2.5,3,TRUE,\"last\"";            /* no final newline */

static const char CSV_BAD[] =
    "k,v,w\n"
    "a,1,\"x\ny\"\n"
    "b,2,x\n"
    "c,3\n"                              /* field count (line 5) */
    "d,4,\"p\nq\"\n"
    "e,x5,z\n"                           /* bad int */
    "f,6,ab\"c\n"                        /* stray quote */
    "\n"
    "g,7,\"m\nn\no\"\n"
    "h,8,\"unterminated\n"               /* bad; i is read after it */
    "i,9,z\n";

static const char CSV_BAD_TAIL[] =      /* bad rows at the very end */
    "k,v,w\n"
    "a,1,x\n"
    "b,2,\"y\nz\"\n"
    "c\n"
    "\n"
    "d,x,e\n";

static const char CSV_ARRAYS[] =        /* no header: the first row fixes 3 */
    "1,x,\n"
    "2,y,3\n"
    "3,z\n"                              /* 2 fields: bad */
    "4,\"w\nv\",5\n"
    "5,a,b\n"                            /* bad int in column 3 */
    "6,b,6\n"
    "7\n"
    "8,c,8,9\n"
    "9,d,9\n";

static const char *const V_INT[] = {"v"};
static const td_col_type_t T_INT[] = {TD_COL_INT};
static const char *const ARR_COLS[] = {"1", "3"};
static const td_col_type_t ARR_TYPES[] = {TD_COL_INT, TD_COL_INT};
static const char *const ARR_NAMES[] = {"id", "tag", "n"};

TD_TEST(test_source_file_position_csv_batches) {
  tmpdir_t t;
  tmp_init(&t);
  static const struct {
    const char *content;
    int mode; /* 0 typed, 1 bad (v int), 2 arrays, 3 names no header */
  } files[] = {{CSV_TYPED, 0}, {CSV_BAD, 1}, {CSV_BAD_TAIL, 1},
               {CSV_ARRAYS, 2}, {CSV_ARRAYS, 3}};
  int errors_seen = 0, skips_seen = 0;
  for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
    char name[32];
    snprintf(name, sizeof name, "c%zu.csv", f);
    const char *p = tmp_write_str(&t, name, files[f].content);
    snprintf(name, sizeof name, "c%zu.csv.gz", f);
    const char *pz = tmp_write_gz(&t, name, files[f].content,
                                  strlen(files[f].content));
    for (int skip = 0; skip <= 1; skip++) {
      td_csv_opts_t o = csv_defaults();
      o.skip_errors = skip;
      switch (files[f].mode) {
      case 0:
        o.type_names = TYPED_NAMES;
        o.types = TYPED_TYPES;
        o.n_types = 4;
        break;
      case 1:
        o.type_names = V_INT;
        o.types = T_INT;
        o.n_types = 1;
        break;
      case 2:
        o.header = 0;
        o.type_names = ARR_COLS;
        o.types = ARR_TYPES;
        o.n_types = 2;
        break;
      case 3:
        o.header = 0;
        o.names = ARR_NAMES;
        o.n_names = 3;
        o.type_names = &ARR_NAMES[2];
        o.types = T_INT;
        o.n_types = 1;
        break;
      }
      const char *paths[] = {p, pz};
      for (int z = 0; z < 2; z++) {
        src_t s = csv_src(paths[z], &o);
        ref_t ref;
        ref_read(&s, &ref);
        if (ref.rc < 0) errors_seen++;
        if (ref.skipped) skips_seen++;
        for (int b = 0; b < N_BATCHES; b++)
          check_positions(&s, &ref, BATCHES[b], EVERY);
        ref_free(&ref);
        /* only split 0 reads a CSV file; the others' positions stay put */
        s.split = 1;
        s.n = 2;
        check_all_batches(&s, EVERY);
      }
    }
  }
  TD_CHECK(errors_seen >= 6); /* the cases do stop on errors... */
  TD_CHECK(skips_seen >= 6);  /* ...and skip rows */
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_position_csv_error_lines) {
  /* the error after a restore names the same line as without one */
  tmpdir_t t;
  tmp_init(&t);
  const char *p = tmp_write_str(&t, "m.csv",
                                "a,b\n"
                                "\"1\n2\n3\",x\n"
                                "y,\"p\r\nq\"\n"
                                "\n"
                                "4,5,6\n"
                                "7,8\n");
  char expect[400];
  snprintf(expect, sizeof expect, "%s:8: expected 2 fields, got 3", p);
  td_csv_opts_t o = csv_defaults();
  for (int batch = 1; batch <= 3; batch++) {
    td_reader_t *r;
    char err[256];
    lua_State *L = new_state();
    lua_newtable(L);
    TD_CHECK_INT(open_csv(&r, p, &o, err, sizeof err), 0);
    int rc, k = 0;
    while ((rc = td_reader_read(r, L, 1, batch)) > 0) k += rc;
    TD_CHECK_INT(rc, TD_EPARSE);
    TD_CHECK_INT(k, 2);
    TD_CHECK_STR(td_reader_error(r), expect);
    td_reader_pos_t pos;
    TD_CHECK_INT(td_reader_position(r, &pos), 0);
    TD_CHECK_INT(pos.line, 8);       /* the bad row's line... */
    TD_CHECK_INT(pos.offset, 24);    /* ...and its first byte */
    td_reader_free(r);
    TD_CHECK_INT(open_csv(&r, p, &o, err, sizeof err), 0);
    TD_CHECK_INT(td_reader_seek(r, &pos), 0);
    TD_CHECK_INT(td_reader_read(r, L, 1, 10), TD_EPARSE);
    TD_CHECK_STR(td_reader_error(r), expect);
    td_reader_free(r);
    lua_close(L);
  }
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_position_csv_large) {
  /* MiBs of rows with multi-line fields across buffer refills, bad rows
   * skipped here and there, plain and gzip */
  tmpdir_t t;
  tmp_init(&t);
  enum { ROWS = 28000 }; /* about 1.3 MiB */
  sbuf_t b = {0};
  sb_str(&b, "id,text,n\n");
  for (int i = 0; i < ROWS; i++) {
    char row[256];
    if (i % 97 == 0)
      snprintf(row, sizeof row, "%d,\"multi\nline \"\"%d\"\",\n\",%d\n", i,
               i, i * 3);
    else if (i % 1009 == 0)
      snprintf(row, sizeof row, "%d,bad,row,%d\n", i, i);
    else if (i % 2003 == 0)
      snprintf(row, sizeof row, "%d,bad int,x%d\n", i, i);
    else
      snprintf(row, sizeof row, "%d,%.*s,%d\r\n", i, (int)(rng() % 60),
               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
               i * 3);
    sb_str(&b, row);
  }
  const char *p = tmp_write(&t, "big.csv", b.p, b.len);
  const char *pz = tmp_write_gz(&t, "big.csv.gz", b.p, b.len);
  static const char *const tn[] = {"id", "n"};
  static const td_col_type_t ty[] = {TD_COL_INT, TD_COL_NUMBER};
  td_csv_opts_t o = csv_defaults();
  o.type_names = tn;
  o.types = ty;
  o.n_types = 2;
  o.skip_errors = 1;
  src_t s = csv_src(p, &o);
  ref_t ref;
  ref_read(&s, &ref);
  TD_CHECK(ref.skipped > 30);
  TD_CHECK(b.len > MIB);
  int checked = 0;
  for (int k = 0; k < N_BATCHES; k++) {
    /* in full at the end (and halfway for batches of 7), peeks around
     * the refills */
    int calls = ref.n / BATCHES[k] + 1;
    sample_t smp = {BATCHES[k] == 7 ? calls / 2 : calls + 1, 768, 0};
    checked += check_positions(&s, &ref, BATCHES[k], smp);
  }
  TD_CHECK(checked > 40);
  ref_free(&ref);
  /* without skipping, the first bad row ends the read */
  o.skip_errors = 0;
  s = csv_src(p, &o);
  ref_read(&s, &ref);
  TD_CHECK_INT(ref.rc, TD_EPARSE);
  sample_t smp = {ref.n / 7 / 2 + 1, 768, 0};
  check_positions(&s, &ref, 7, smp);
  ref_free(&ref);
  /* gzip */
  o.skip_errors = 1;
  s = csv_src(pz, &o);
  ref_read(&s, &ref);
  static const int gz_batches[] = {7, 1000};
  for (int k = 0; k < 2; k++) {
    int calls = ref.n / gz_batches[k] + 1;
    sample_t gsmp = {calls / 2 > 0 ? calls / 2 : 1, 0, 0};
    check_positions(&s, &ref, gz_batches[k], gsmp);
  }
  ref_free(&ref);
  free(b.p);
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_position_values) {
  tmpdir_t t;
  tmp_init(&t);
  lua_State *L = new_state();
  lua_newtable(L);
  td_reader_t *r;
  td_reader_pos_t pos;
  char err[256];
  /* text from the start: offsets and 1-based lines */
  const char *p = tmp_write_str(&t, "a.txt", "a\nbb\r\nccc");
  TD_CHECK_INT(td_reader_open_text(&r, p, 0, 1, err, sizeof err), 0);
  TD_CHECK_INT(td_reader_position(r, &pos), 0);
  TD_CHECK_INT(pos.offset, 0);
  TD_CHECK_INT(pos.line, 1);
  TD_CHECK_INT(pos.kind, TD_READER_TEXT);
  TD_CHECK_INT(pos.split, 0);
  TD_CHECK_INT(pos.n_splits, 1);
  TD_CHECK_INT(pos.skipped, 0);
  TD_CHECK_INT(pos.ncols, 0);
  TD_CHECK_INT(pos.reserved, 0);
  TD_CHECK_INT(td_reader_read(r, L, 1, 2), 2);
  TD_CHECK_INT(td_reader_position(r, &pos), 0);
  TD_CHECK_INT(pos.offset, 6);
  TD_CHECK_INT(pos.line, 3);
  TD_CHECK_INT(td_reader_read(r, L, 1, 2), 1);
  TD_CHECK_INT(td_reader_position(r, &pos), 0);
  TD_CHECK_INT(pos.offset, 9);
  TD_CHECK_INT(pos.line, 4);
  TD_CHECK_INT(td_reader_read(r, L, 1, 2), 0);
  td_reader_pos_t end;
  TD_CHECK_INT(td_reader_position(r, &end), 0);
  TD_CHECK(memcmp(&pos, &end, sizeof pos) == 0);
  td_reader_free(r);
  /* a split past 0: its start, then line numbers unknown */
  const char *q = tmp_write_str(&t, "b.txt", "aaaa\nbbbb\ncccc\n");
  TD_CHECK_INT(td_reader_open_text(&r, q, 1, 2, err, sizeof err), 0);
  TD_CHECK_INT(td_reader_position(r, &pos), 0);
  TD_CHECK_INT(pos.offset, 7); /* 15 * 1 / 2 */
  TD_CHECK_INT(pos.line, 0);
  TD_CHECK_INT(pos.split, 1);
  TD_CHECK_INT(pos.n_splits, 2);
  TD_CHECK_INT(td_reader_read(r, L, 1, 1), 1);
  lua_rawgeti(L, 1, 1);
  TD_CHECK_STR(lua_tostring(L, -1), "cccc");
  lua_pop(L, 1);
  TD_CHECK_INT(td_reader_position(r, &pos), 0);
  TD_CHECK_INT(pos.offset, 15);
  TD_CHECK_INT(pos.line, 0);
  td_reader_free(r);
  /* split 0 of the same ends after "bbbb\n", which straddles its end */
  TD_CHECK_INT(td_reader_open_text(&r, q, 0, 2, err, sizeof err), 0);
  TD_CHECK_INT(td_reader_read(r, L, 1, 10), 2);
  TD_CHECK_INT(td_reader_position(r, &pos), 0);
  TD_CHECK_INT(pos.offset, 10);
  TD_CHECK_INT(pos.line, 3);
  td_reader_free(r);
  /* CSV: after the header, then after a row spanning three lines */
  const char *c = tmp_write_str(&t, "c.csv", "a,b\n\"1\n2\",x\n\n3,4\n");
  td_csv_opts_t o = csv_defaults();
  TD_CHECK_INT(open_csv(&r, c, &o, err, sizeof err), 0);
  TD_CHECK_INT(td_reader_position(r, &pos), 0);
  TD_CHECK_INT(pos.kind, TD_READER_CSV);
  TD_CHECK_INT(pos.offset, 4);
  TD_CHECK_INT(pos.line, 2);
  TD_CHECK_INT(pos.ncols, 2);
  TD_CHECK_INT(td_reader_read(r, L, 1, 1), 1);
  TD_CHECK_INT(td_reader_position(r, &pos), 0);
  TD_CHECK_INT(pos.offset, 12);
  TD_CHECK_INT(pos.line, 4);
  TD_CHECK_INT(td_reader_read(r, L, 1, 1), 1);
  TD_CHECK_INT(td_reader_position(r, &pos), 0);
  TD_CHECK_INT(pos.offset, 17);
  TD_CHECK_INT(pos.line, 6);
  td_reader_free(r);
  /* arrays: the column count comes with the position */
  o.header = 0;
  TD_CHECK_INT(open_csv(&r, c, &o, err, sizeof err), 0);
  TD_CHECK_INT(td_reader_position(r, &pos), 0);
  TD_CHECK_INT(pos.ncols, 0);
  TD_CHECK_INT(td_reader_read(r, L, 1, 1), 1);
  TD_CHECK_INT(td_reader_position(r, &pos), 0);
  TD_CHECK_INT(pos.ncols, 2);
  TD_CHECK_INT(pos.offset, 4);
  td_reader_free(r);
  /* arrays, the first row failing: the position is the start, with the
   * column count that row fixed; restored there, the same error */
  const char *e = tmp_write_str(&t, "e.csv", "1,x,y\n2,z,3\n");
  static const char *const tn3[] = {"3"};
  static const td_col_type_t ty3[] = {TD_COL_INT};
  o.type_names = tn3;
  o.types = ty3;
  o.n_types = 1;
  char expect[400];
  snprintf(expect, sizeof expect, "%s:1: column 3: bad int 'y'", e);
  TD_CHECK_INT(open_csv(&r, e, &o, err, sizeof err), 0);
  TD_CHECK_INT(td_reader_read(r, L, 1, 5), TD_EPARSE);
  TD_CHECK_STR(td_reader_error(r), expect);
  TD_CHECK_INT(td_reader_position(r, &pos), 0);
  TD_CHECK_INT(pos.offset, 0);
  TD_CHECK_INT(pos.line, 1);
  TD_CHECK_INT(pos.ncols, 3);
  td_reader_free(r);
  TD_CHECK_INT(open_csv(&r, e, &o, err, sizeof err), 0);
  TD_CHECK_INT(td_reader_seek(r, &pos), 0);
  TD_CHECK_INT(td_reader_read(r, L, 1, 5), TD_EPARSE);
  TD_CHECK_STR(td_reader_error(r), expect);
  td_reader_free(r);
  o.type_names = NULL;
  o.types = NULL;
  o.n_types = 0;
  /* skipped rows count on after a restore */
  const char *d = tmp_write_str(&t, "d.csv", "a,b\n1\n2\n3,3\n4\n5,5\n");
  o = csv_defaults();
  o.skip_errors = 1;
  TD_CHECK_INT(open_csv(&r, d, &o, err, sizeof err), 0);
  TD_CHECK_INT(td_reader_read(r, L, 1, 1), 1);
  TD_CHECK_INT(td_reader_position(r, &pos), 0);
  TD_CHECK_INT(pos.skipped, 2);
  TD_CHECK_INT(pos.line, 5);
  td_reader_free(r);
  TD_CHECK_INT(open_csv(&r, d, &o, err, sizeof err), 0);
  TD_CHECK_INT(td_reader_seek(r, &pos), 0);
  TD_CHECK_INT(td_reader_skipped(r), 2);
  TD_CHECK_INT(td_reader_read(r, L, 1, 10), 1);
  TD_CHECK_INT(td_reader_skipped(r), 3);
  TD_CHECK_INT(td_reader_read(r, L, 1, 10), 0);
  td_reader_free(r);
  /* NULL arguments */
  TD_CHECK_INT(td_reader_position(NULL, &pos), TD_EINVAL);
  TD_CHECK_INT(td_reader_seek(NULL, &pos), TD_EINVAL);
  TD_CHECK_INT(td_reader_open_text(&r, p, 0, 1, err, sizeof err), 0);
  TD_CHECK_INT(td_reader_position(r, NULL), TD_EINVAL);
  TD_CHECK_INT(td_reader_seek(r, NULL), TD_EINVAL);
  td_reader_free(r);
  lua_close(L);
  tmp_cleanup(&t);
}

TD_TEST(test_source_file_position_invalid) {
  tmpdir_t t;
  tmp_init(&t);
  lua_State *L = new_state();
  lua_newtable(L);
  td_reader_t *r;
  td_reader_pos_t pos, good;
  char err[256];
  const char *data = "alpha\nbeta\ngamma\ndelta\nepsilon\n"; /* 31 bytes */
  const char *p = tmp_write_str(&t, "a.txt", data);
  const char *pz = tmp_write_gz(&t, "a.txt.gz", data, strlen(data));
  src_t s = text_src(p, 0, 1), sz = text_src(pz, 0, 1);
  TD_CHECK_INT(td_reader_open_text(&r, p, 0, 1, err, sizeof err), 0);
  TD_CHECK_INT(td_reader_read(r, L, 1, 2), 2);
  TD_CHECK_INT(td_reader_position(r, &good), 0);
  TD_CHECK_INT(good.offset, 11);
  /* no seek once the reader was read from */
  TD_CHECK_INT(td_reader_seek(r, &good), TD_EINVAL);
  TD_CHECK(strstr(td_reader_error(r), "freshly opened") != NULL);
  TD_CHECK_INT(td_reader_read(r, L, 1, 2), TD_EINVAL);
  td_reader_free(r);
  /* nor twice */
  TD_CHECK_INT(td_reader_open_text(&r, p, 0, 1, err, sizeof err), 0);
  TD_CHECK_INT(td_reader_seek(r, &good), 0);
  TD_CHECK_INT(td_reader_seek(r, &good), TD_EINVAL);
  td_reader_free(r);
  for (int z = 0; z < 2; z++) {
    const src_t *src = z ? &sz : &s;
    pos = good;
    pos.offset = 31 + 1; /* beyond the end */
    check_seek_rejected(src, &pos, "beyond the end");
    pos.offset = 1000000;
    check_seek_rejected(src, &pos, "far beyond the end");
    pos.offset = UINT64_MAX;
    check_seek_rejected(src, &pos, "at UINT64_MAX");
    pos.offset = 13; /* inside "gamma" */
    check_seek_rejected(src, &pos, "inside a line");
    pos = good;
    pos.line = 0;
    check_seek_rejected(src, &pos, "line 0");
    pos.line = 50;
    check_seek_rejected(src, &pos, "a line past the offset");
    pos = good;
    pos.kind = TD_READER_CSV;
    check_seek_rejected(src, &pos, "a CSV position");
    pos.kind = 7;
    check_seek_rejected(src, &pos, "a bad kind");
    pos = good;
    pos.n_splits = 2;
    check_seek_rejected(src, &pos, "another split count");
    pos = good;
    pos.reserved = 1;
    check_seek_rejected(src, &pos, "reserved");
    pos = good;
    pos.ncols = 2;
    check_seek_rejected(src, &pos, "text with columns");
    /* the end itself is fine, and so is the start */
    pos = good;
    pos.offset = 31;
    pos.line = 6;
    src_t ok = *src;
    td_reader_t *r2 = src_open(&ok);
    TD_CHECK_INT(td_reader_seek(r2, &pos), 0);
    TD_CHECK_INT(td_reader_read(r2, L, 1, 5), 0);
    td_reader_free(r2);
    pos.offset = 0;
    pos.line = 1;
    r2 = src_open(&ok);
    TD_CHECK_INT(td_reader_seek(r2, &pos), 0);
    TD_CHECK_INT(td_reader_read(r2, L, 1, 10), 5);
    td_reader_free(r2);
    pos.line = 2; /* the start is on line 1 */
    check_seek_rejected(src, &pos, "the start with a wrong line");
  }
  /* the message says what is wrong */
  TD_CHECK_INT(td_reader_open_text(&r, p, 0, 1, err, sizeof err), 0);
  pos = good;
  pos.offset = 32;
  TD_CHECK_INT(td_reader_seek(r, &pos), TD_EINVAL);
  TD_CHECK(strstr(td_reader_error(r), "beyond the end") != NULL);
  td_reader_free(r);
  TD_CHECK_INT(td_reader_open_text(&r, pz, 0, 1, err, sizeof err), 0);
  pos.offset = 13;
  TD_CHECK_INT(td_reader_seek(r, &pos), TD_EINVAL);
  TD_CHECK(strstr(td_reader_error(r), "not at the start of a line") != NULL);
  td_reader_free(r);

  /* splits: 31 bytes in 3 are [0,10) [10,20) [20,31); lines start at 0
   * (alpha), 6 (beta): split 0; 11 (gamma), 17 (delta): split 1; 23
   * (epsilon): split 2 */
  src_t s1 = text_src(p, 1, 3), s2 = text_src(p, 2, 3), s0 = text_src(p, 0, 3);
  pos = good;
  pos.split = 1;
  pos.n_splits = 3;
  pos.line = 0;
  pos.offset = 6; /* before split 1 */
  check_seek_rejected(&s1, &pos, "before the split");
  pos.offset = 31; /* after epsilon, split 2's line */
  check_seek_rejected(&s1, &pos, "the next split's end");
  pos.offset = 17; /* after gamma: delta is left */
  r = src_open(&s1);
  TD_CHECK_INT(td_reader_seek(r, &pos), 0);
  TD_CHECK_INT(td_reader_read(r, L, 1, 5), 1);
  lua_rawgeti(L, 1, 1);
  TD_CHECK_STR(lua_tostring(L, -1), "delta");
  lua_pop(L, 1);
  td_reader_free(r);
  pos.offset = 23; /* after delta: split 1 is done */
  r = src_open(&s1);
  TD_CHECK_INT(td_reader_seek(r, &pos), 0);
  TD_CHECK_INT(td_reader_read(r, L, 1, 5), 0);
  td_reader_free(r);
  pos.split = 0;
  pos.line = 3;
  pos.offset = 17; /* split 0 ends after "beta\n" */
  check_seek_rejected(&s0, &pos, "split 0 past its end");
  pos.offset = 11;
  r = src_open(&s0);
  TD_CHECK_INT(td_reader_seek(r, &pos), 0);
  TD_CHECK_INT(td_reader_read(r, L, 1, 5), 0);
  td_reader_free(r);
  pos.line = 0;
  pos.split = 2;
  pos.offset = 17; /* delta, split 1's */
  check_seek_rejected(&s2, &pos, "the previous split's line");
  pos.offset = 35;
  check_seek_rejected(&s2, &pos, "split 2 beyond the end");
  r = src_open(&s2);
  TD_CHECK_INT(td_reader_seek(r, &(td_reader_pos_t){31, 0, 0, 0, 2, 3,
                                                    TD_READER_TEXT, 0}),
               0);
  TD_CHECK_INT(td_reader_read(r, L, 1, 5), 0);
  td_reader_free(r);
  /* a split that reads nothing takes only its own position */
  src_t g1 = text_src(pz, 1, 2);
  r = src_open(&g1);
  TD_CHECK_INT(td_reader_position(r, &pos), 0);
  td_reader_free(r);
  TD_CHECK_INT(pos.offset, 0);
  r = src_open(&g1);
  TD_CHECK_INT(td_reader_seek(r, &pos), 0);
  TD_CHECK_INT(td_reader_read(r, L, 1, 5), 0);
  td_reader_free(r);
  pos.offset = 11;
  pos.line = 3;
  check_seek_rejected(&g1, &pos, "a gz split that reads nothing");

  /* CSV */
  const char *c = tmp_write_str(&t, "c.csv", "a,b\n1,\"x\ny\"\n2,z\n");
  td_csv_opts_t o = csv_defaults();
  src_t cs = csv_src(c, &o);
  r = src_open(&cs);
  TD_CHECK_INT(td_reader_read(r, L, 1, 1), 1);
  TD_CHECK_INT(td_reader_position(r, &good), 0);
  td_reader_free(r);
  TD_CHECK_INT(good.offset, 12);
  TD_CHECK_INT(good.line, 4);
  pos = good;
  pos.offset = 0;
  pos.line = 1;
  check_seek_rejected(&cs, &pos, "the CSV header");
  pos = good;
  pos.offset = 10; /* inside the quoted field "x\ny" */
  pos.line = 3;
  check_seek_rejected(&cs, &pos, "inside a CSV row");
  pos = good;
  pos.ncols = 3;
  check_seek_rejected(&cs, &pos, "another column count");
  pos = good;
  pos.kind = TD_READER_TEXT;
  check_seek_rejected(&cs, &pos, "a text position");
  pos = good;
  pos.line = 1;
  check_seek_rejected(&cs, &pos, "a line before the first row");
  pos = good;
  pos.offset = 17;
  pos.line = 5;
  check_seek_rejected(&cs, &pos, "CSV beyond the end");
  pos.offset = 16; /* the end */
  r = src_open(&cs);
  TD_CHECK_INT(td_reader_seek(r, &pos), 0);
  TD_CHECK_INT(td_reader_read(r, L, 1, 5), 0);
  td_reader_free(r);
  /* CSV split 1 reads nothing: split 0's position is not for it */
  src_t c1 = cs;
  c1.split = 1;
  c1.n = 2;
  pos = good;
  pos.n_splits = 2;
  check_seek_rejected(&c1, &pos, "split 0's CSV position");
  pos.split = 1;
  check_seek_rejected(&c1, &pos, "a CSV split that reads nothing");
  lua_close(L);
  tmp_cleanup(&t);
}

/* td_reader_progress: the bytes of each split (split points: each split
 * starts after the line end before size * k / n), consumed to the end;
 * splits add up to the file's size (stat); gzip counts compressed bytes
 * of the whole file in split 0 and nothing in the others. */
TD_TEST(test_source_file_progress) {
  tmpdir_t t;
  tmp_init(&t);
  const char *text = "alpha\nbeta\ngamma\ndelta\nepsilon\n";
  const char *p = tmp_write_str(&t, "p.txt", text);
  struct stat sb;
  TD_CHECK_INT(stat(p, &sb), 0);
  lua_State *L = new_state();
  for (int n = 1; n <= 3; n++) {
    uint64_t sum = 0;
    for (int s = 0; s < n; s++) {
      td_reader_t *r = NULL;
      char err[256];
      TD_CHECK_INT(td_reader_open_text(&r, p, s, n, err, sizeof err), 0);
      uint64_t done, total;
      td_reader_progress(r, &done, &total);
      TD_CHECK_INT((long long)done, 0);
      lua_newtable(L);
      while (td_reader_read(r, L, -1, 2) > 0) {
      }
      lua_pop(L, 1);
      uint64_t done2, total2;
      td_reader_progress(r, &done2, &total2);
      TD_CHECK_INT((long long)total2, (long long)total);
      TD_CHECK_INT((long long)done2, (long long)total);
      sum += total;
      td_reader_free(r);
    }
    TD_CHECK_INT((long long)sum, (long long)sb.st_size);
  }
  const char *gz = tmp_write_gz(&t, "p.txt.gz", text, strlen(text));
  TD_CHECK_INT(stat(gz, &sb), 0);
  for (int s = 0; s < 2; s++) {
    td_reader_t *r = NULL;
    char err[256];
    TD_CHECK_INT(td_reader_open_text(&r, gz, s, 2, err, sizeof err), 0);
    lua_newtable(L);
    while (td_reader_read(r, L, -1, 2) > 0) {
    }
    lua_pop(L, 1);
    uint64_t done, total;
    td_reader_progress(r, &done, &total);
    TD_CHECK_INT((long long)total, s == 0 ? (long long)sb.st_size : 0);
    TD_CHECK_INT((long long)done, (long long)total);
    td_reader_free(r);
  }
  lua_close(L);
  tmp_cleanup(&t);
}

TD_TEST_MAIN(test_source_file_lines_lf, test_source_file_lines_crlf,
             test_source_file_lines_no_final_newline,
             test_source_file_lines_empty_lines_kept,
             test_source_file_lines_empty_file,
             test_source_file_lines_batches_respect_max,
             test_source_file_splits_cover_every_line_once,
             test_source_file_splits_small_files,
             test_source_file_long_lines, test_source_file_gz_reads_lines,
             test_source_file_gz_truncated_is_an_error,
             test_source_file_open_errors,
             test_source_file_csv_header_rows_by_name,
             test_source_file_csv_typed_columns,
             test_source_file_csv_bad_values,
             test_source_file_csv_wrong_field_count_message,
             test_source_file_csv_bad_int_message,
             test_source_file_csv_quoted_fields,
             test_source_file_csv_line_number_after_multiline_field,
             test_source_file_csv_syntax_errors,
             test_source_file_csv_skip_errors,
             test_source_file_csv_unterminated_quote_skip,
             test_source_file_csv_no_header_arrays,
             test_source_file_csv_names_override_header,
             test_source_file_csv_unknown_type_column,
             test_source_file_csv_bom_and_crlf,
             test_source_file_csv_blank_lines_delimiter_and_splits,
             test_source_file_csv_large_file_across_buffers,
             test_source_file_position_text_batches,
             test_source_file_position_text_large,
             test_source_file_position_text_splits_own_positions,
             test_source_file_position_csv_batches,
             test_source_file_position_csv_error_lines,
             test_source_file_position_csv_large,
             test_source_file_position_values,
             test_source_file_position_invalid, test_source_file_progress)
