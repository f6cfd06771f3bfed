/*
 * fuzz_csv.c - libFuzzer target for the file readers behind read_text and
 * read_csv (core/source_file.c), on a file holding the input.
 *
 * Input: four option bytes, then the file's contents.
 *   byte 0, flags: 1 CSV (else text lines), 2 write the file gzipped
 *     (".gz"), 4 skip_errors, 8 header, 16 ';' as the delimiter, 32 typed
 *     columns (a = int, b = number with a header or names; columns 1 = int
 *     and 2 = bool without), 64 column names a, b, c given
 *   byte 1: batch size, 1 + b % 16
 *   byte 2: text: the number of splits, 1 + b % 4
 *   byte 3: which of the positions taken to resume from
 *   flags & 128: also seek to that position made wrong by a little (the
 *     offset moved by (int8_t) byte 2, the line, the skipped count, the
 *     column count or the split by one, chosen by byte 3)
 * Properties, for every split:
 *  - read-seek-read: read everything in batches, taking the position
 *    before the first batch and after each one; then a fresh reader,
 *    seeked to one of those positions, reads exactly the records the first
 *    read returned after it (the concatenation equals the full read), ends
 *    the same way (end of input or the same error message), with the same
 *    skipped count and at the same final position;
 *  - reading again after the end gives 0 (after an error, the error);
 *  - a wrong position is refused with a message naming the file (the
 *    reader then keeps failing), or, when it cannot be told from a right
 *    one, read from without a crash;
 *  - text: the splits' lines, concatenated in split order, are the lines
 *    of the whole file read as one split, and for a plain file those are
 *    the lines cut here with memchr (an independent oracle).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <zlib.h>

#include "codec.h"
#include "error.h"
#include "fuzz.h"
#include "source_file.h"

enum { F_CSV = 1, F_GZ = 2, F_SKIP = 4, F_HEADER = 8, F_SEMI = 16,
       F_TYPES = 32, F_NAMES = 64, F_BOGUS = 128 };

typedef struct {
  char *p;
  size_t len;
} rec_t;

typedef struct {
  rec_t *recs;
  size_t n, cap;
  int rc;                 /* 0: read to the end; else the error */
  char err[1024];
  uint64_t skipped;
  int has_first;          /* td_reader_first_skipped was not "" */
  td_reader_pos_t *pos;   /* before the first batch, after each one */
  size_t *at;             /* records returned before pos[i] */
  size_t npos, pcap;
  td_reader_pos_t end;
} run_t;

static lua_State *vm;

static void run_free(run_t *r) {
  for (size_t i = 0; i < r->n; i++) free(r->recs[i].p);
  free(r->recs);
  free(r->pos);
  free(r->at);
  memset(r, 0, sizeof *r);
}

static void add_rec(run_t *r, const char *p, size_t len) {
  if (r->n == r->cap) {
    r->cap = r->cap ? 2 * r->cap : 64;
    r->recs = realloc(r->recs, r->cap * sizeof *r->recs);
    FUZZ_CHECK(r->recs != NULL, "out of memory");
  }
  char *c = malloc(len ? len : 1);
  FUZZ_CHECK(c != NULL, "out of memory");
  memcpy(c, p, len);
  r->recs[r->n].p = c;
  r->recs[r->n].len = len;
  r->n++;
}

static void add_pos(run_t *r, const td_reader_t *rd) {
  if (r->npos == r->pcap) {
    r->pcap = r->pcap ? 2 * r->pcap : 16;
    r->pos = realloc(r->pos, r->pcap * sizeof *r->pos);
    r->at = realloc(r->at, r->pcap * sizeof *r->at);
    FUZZ_CHECK(r->pos && r->at, "out of memory");
  }
  int rc = td_reader_position(rd, &r->pos[r->npos]);
  FUZZ_CHECK(rc == 0, "position: %d", rc);
  r->at[r->npos++] = r->n;
}

/* A record as bytes: a text line as is, a CSV row (a table of strings,
 * numbers and booleans) as its canonical encoding, which is one byte
 * string per table content. */
static void add_value(run_t *r, lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    add_rec(r, s, len);
    return;
  }
  FUZZ_CHECK(lua_type(L, idx) == LUA_TTABLE, "a record of type %s",
             luaL_typename(L, idx));
  td_wbuf_t b = {0};
  FUZZ_CHECK(td_codec_encode(L, idx, &b, 1, NULL, 0) == 0, "encode a row");
  add_rec(r, b.data ? b.data : "", b.len);
  td_wbuf_destroy(&b);
}

/* Reads rd to its end (or error) in batches, into out. */
static void read_run(td_reader_t *rd, int batch, run_t *out) {
  lua_State *L = vm;
  lua_settop(L, 0);
  lua_createtable(L, batch, 0);
  add_pos(out, rd);
  for (;;) {
    for (int i = 1; i <= batch; i++) {
      lua_pushboolean(L, 0); /* stale entries must not pass for records */
      lua_rawseti(L, 1, i);
    }
    int n = td_reader_read(rd, L, 1, batch);
    FUZZ_CHECK(lua_gettop(L) == 1, "read left %d values on the stack",
               lua_gettop(L) - 1);
    FUZZ_CHECK(n <= batch, "read %d records into a batch of %d", n, batch);
    if (n < 0) {
      out->rc = n;
      snprintf(out->err, sizeof out->err, "%s", td_reader_error(rd));
      FUZZ_CHECK(td_reader_read(rd, L, 1, batch) == n, "the error is not "
                 "sticky");
      break;
    }
    if (n == 0) {
      FUZZ_CHECK(td_reader_read(rd, L, 1, batch) == 0, "read after the "
                 "end");
      break;
    }
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, 1, i);
      add_value(out, L, -1);
      lua_pop(L, 1);
    }
    add_pos(out, rd);
  }
  out->skipped = td_reader_skipped(rd);
  out->has_first = td_reader_first_skipped(rd)[0] != '\0';
  FUZZ_CHECK(td_reader_position(rd, &out->end) == 0, "position at the end");
  lua_settop(L, 0);
}

typedef struct {
  const char *path;
  unsigned flags;
} src_t;

static td_reader_t *open_reader(const src_t *s, int split, int n_splits) {
  static const char *const names[] = {"a", "b", "c"};
  static const char *const tnames[] = {"a", "b"}, *const tnums[] = {"1", "2"};
  static const td_col_type_t named_types[] = {TD_COL_INT, TD_COL_NUMBER};
  static const td_col_type_t num_types[] = {TD_COL_INT, TD_COL_BOOL};
  char err[1024] = "";
  td_reader_t *r = NULL;
  int rc;
  if (s->flags & F_CSV) {
    td_csv_opts_t o;
    memset(&o, 0, sizeof o);
    o.delimiter = (s->flags & F_SEMI) ? ';' : ',';
    o.header = (s->flags & F_HEADER) != 0;
    o.skip_errors = (s->flags & F_SKIP) != 0;
    if (s->flags & F_NAMES) {
      o.names = names;
      o.n_names = 3;
    }
    if (s->flags & F_TYPES) {
      int named = o.header || o.names;
      o.type_names = named ? tnames : tnums;
      o.types = named ? named_types : num_types;
      o.n_types = 2;
    }
    rc = td_reader_open_csv(&r, s->path, &o, split, n_splits, err,
                            sizeof err);
  } else {
    rc = td_reader_open_text(&r, s->path, split, n_splits, err, sizeof err);
  }
  if (rc) {
    FUZZ_CHECK(r == NULL && rc < 0 && err[0], "open: rc %d, '%s'", rc, err);
    return NULL;
  }
  return r;
}

static int same_rec(const rec_t *a, const rec_t *b) {
  return a->len == b->len && memcmp(a->p, b->p, a->len) == 0;
}

/* Seeks a fresh reader to *good made wrong as `bits` and `delta` say. */
static void check_bogus(const src_t *s, int split, int n_splits,
                        const td_reader_pos_t *good, unsigned bits,
                        int delta) {
  td_reader_pos_t pos = *good;
  if (delta < 0 && (uint64_t)-delta > pos.offset) pos.offset = 0;
  else pos.offset += (uint64_t)(int64_t)delta;
  pos.line += (bits % 3) - 1;
  pos.skipped += (bits >> 2) & 1;
  if (pos.ncols) pos.ncols += ((bits >> 3) % 3) - 1;
  if (bits & 0x80) pos.split ^= 1;
  td_reader_t *r = open_reader(s, split, n_splits);
  FUZZ_CHECK(r != NULL, "the file opened once and not twice");
  int rc = td_reader_seek(r, &pos);
  if (rc) {
    FUZZ_CHECK(rc < 0 && strstr(td_reader_error(r), s->path), "seek %d: "
               "'%s'", rc, td_reader_error(r));
    lua_settop(vm, 0);
    lua_newtable(vm);
    FUZZ_CHECK(td_reader_read(r, vm, 1, 4) == rc, "a failed seek is not "
               "sticky");
    lua_settop(vm, 0);
  } else {
    run_t any = {0};
    read_run(r, 5, &any);
    run_free(&any);
  }
  td_reader_free(r);
}

/* The read-seek-read property for one split; returns the full read (the
 * caller frees it) with rc 1 when the file could not be opened. */
static run_t check_split(const src_t *s, int split, int n_splits, int batch,
                         unsigned sel, int delta) {
  run_t full = {0};
  td_reader_t *r = open_reader(s, split, n_splits);
  if (!r) {
    full.rc = 1;
    return full;
  }
  read_run(r, batch, &full);
  td_reader_free(r);

  size_t k = sel % full.npos;
  const td_reader_pos_t *pos = &full.pos[k];
  r = open_reader(s, split, n_splits);
  FUZZ_CHECK(r != NULL, "the file opened once and not twice");
  int rc = td_reader_seek(r, pos);
  FUZZ_CHECK(rc == 0, "seek to position %zu of %zu (offset %llu, line "
             "%llu): %s", k, full.npos, (unsigned long long)pos->offset,
             (unsigned long long)pos->line, td_reader_error(r));
  FUZZ_CHECK(td_reader_skipped(r) == pos->skipped, "skipped after seek");
  run_t rest = {0};
  read_run(r, batch % 7 + 1, &rest);
  td_reader_free(r);
  size_t before = full.at[k];
  FUZZ_CHECK(before + rest.n == full.n, "resumed at %zu of %zu records, "
             "then read %zu", before, full.n, rest.n);
  for (size_t i = 0; i < rest.n; i++)
    FUZZ_CHECK(same_rec(&rest.recs[i], &full.recs[before + i]),
               "record %zu differs after a resume at %zu", before + i,
               before);
  FUZZ_CHECK(rest.rc == full.rc, "resumed read ends with %d, the full "
             "read with %d", rest.rc, full.rc);
  FUZZ_CHECK(strcmp(rest.err, full.err) == 0, "error '%s', expected '%s'",
             rest.err, full.err);
  FUZZ_CHECK(rest.skipped == full.skipped, "skipped %llu, expected %llu",
             (unsigned long long)rest.skipped,
             (unsigned long long)full.skipped);
  FUZZ_CHECK(rest.has_first == (rest.skipped > pos->skipped),
             "first_skipped after a resume");
  FUZZ_CHECK(full.has_first == (full.skipped > 0), "first_skipped");
  FUZZ_CHECK(memcmp(&rest.end, &full.end, sizeof rest.end) == 0,
             "the resumed read ends at offset %llu line %llu, the full "
             "read at offset %llu line %llu",
             (unsigned long long)rest.end.offset,
             (unsigned long long)rest.end.line,
             (unsigned long long)full.end.offset,
             (unsigned long long)full.end.line);
  run_free(&rest);
  if (s->flags & F_BOGUS) check_bogus(s, split, n_splits, pos, sel, delta);
  return full;
}

static void write_file(const char *path, const uint8_t *p, size_t n, int gz) {
  if (gz) {
    gzFile g = gzopen(path, "wb");
    FUZZ_CHECK(g != NULL, "gzopen %s", path);
    FUZZ_CHECK(n == 0 || gzwrite(g, p, (unsigned)n) == (int)n, "gzwrite");
    FUZZ_CHECK(gzclose(g) == Z_OK, "gzclose");
    return;
  }
  FILE *f = fopen(path, "wb");
  FUZZ_CHECK(f != NULL, "fopen %s", path);
  FUZZ_CHECK(n == 0 || fwrite(p, 1, n, f) == n, "fwrite");
  FUZZ_CHECK(fclose(f) == 0, "fclose");
}

/* The lines of a plain file, cut here: at each '\n', without one '\r'
 * before it; a last line without '\n' counts when it is not empty. */
static void oracle_lines(const uint8_t *p, size_t n, run_t *out) {
  size_t start = 0;
  while (start < n) {
    const uint8_t *nl = memchr(p + start, '\n', n - start);
    size_t end = nl ? (size_t)(nl - p) : n, len = end - start;
    if (len && p[end - 1] == '\r') len--;
    add_rec(out, (const char *)p + start, len);
    start = end + 1;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4) return 0;
  /* a fresh VM per input: closed at the end, every allocation is freed */
  vm = luaL_newstate();
  FUZZ_CHECK(vm != NULL, "out of memory");
  unsigned flags = data[0];
  int batch = 1 + data[1] % 16;
  int n_splits = (flags & F_CSV) ? 2 : 1 + data[2] % 4;
  unsigned sel = data[3];
  const uint8_t *content = data + 4;
  size_t len = size - 4;

  char dir[] = "/tmp/tide-fuzz-csv-XXXXXX", path[64];
  FUZZ_CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
  snprintf(path, sizeof path, "%s/in%s%s", dir,
           (flags & F_CSV) ? ".csv" : ".txt", (flags & F_GZ) ? ".gz" : "");
  write_file(path, content, len, (flags & F_GZ) != 0);
  src_t s = {path, flags};

  /* the whole file as one split, then as n_splits splits */
  int delta = (int8_t)data[2];
  run_t whole = check_split(&s, 0, 1, batch, sel, delta);
  if (whole.rc != 1) {
    if (!(flags & F_CSV) && !(flags & F_GZ) && whole.rc == 0 &&
        !(len >= 2 && content[0] == 0x1f && content[1] == 0x8b)) {
      run_t want = {0};
      oracle_lines(content, len, &want);
      FUZZ_CHECK(want.n == whole.n, "%zu lines, the oracle cuts %zu",
                 whole.n, want.n);
      for (size_t i = 0; i < want.n; i++)
        FUZZ_CHECK(same_rec(&want.recs[i], &whole.recs[i]), "line %zu",
                   i + 1);
      run_free(&want);
    }
    size_t at = 0;
    int clean = whole.rc == 0;
    for (int split = 0; split < n_splits; split++) {
      run_t part = check_split(&s, split, n_splits, batch, sel / 3 + split,
                               delta);
      FUZZ_CHECK(part.rc != 1, "split %d of %d does not open", split,
                 n_splits);
      if (part.rc != 0) clean = 0;
      for (size_t i = 0; clean && i < part.n; i++, at++)
        FUZZ_CHECK(at < whole.n && same_rec(&part.recs[i], &whole.recs[at]),
                   "split %d of %d: record %zu is not the whole file's",
                   split, n_splits, i + 1);
      run_free(&part);
    }
    if (clean)
      FUZZ_CHECK(at == whole.n, "the splits read %zu records, the whole "
                 "file %zu", at, whole.n);
  }
  run_free(&whole);
  unlink(path);
  rmdir(dir);
  lua_close(vm);
  vm = NULL;
  return 0;
}
