/*
 * source_file.c - line and CSV readers over plain and gzip files (see
 * source_file.h).
 *
 * Every file goes through zlib (gzdopen/gzread), which reads plain files
 * transparently. Data is read in large blocks into the reader's own buffer
 * [rpos, wpos); lines are found with memchr and CSV records with a small
 * state machine over the same buffer. A record that runs past the end of
 * the buffered data is parsed again from its start once more data is in
 * (the buffer grows when one record does not fit).
 *
 * Positions: r->base + r->rpos is always the offset (in the decompressed
 * stream) of the first byte not consumed yet, and a record is consumed
 * exactly when it is returned (or skipped), so between reads it is the
 * offset of the next record; r->line follows it. The exceptions are kept
 * apart: a text split still skipping its partial first line reports its
 * start, and a CSV reader that failed on a row reports that row's start
 * (saved in fail_off / fail_line before the row is consumed). A seek puts
 * the stream at the offset and checks that the byte before it ends a line.
 */
#include "source_file.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "luacompat.h"
#include <zlib.h>

#include "error.h"

/* Buffer sizes; the fuzz build makes them tiny (-D), so that records
 * straddle refills and buffers grow all the time. */
#ifndef TD_RD_GZBUF
#define TD_RD_GZBUF (256u * 1024u)   /* zlib's internal buffer */
#endif
#ifndef TD_RD_BUF
#define TD_RD_BUF (1024u * 1024u)    /* our block buffer, grows as needed */
#endif
#define TD_RD_MAXREAD (1u << 30)     /* largest single gzread request */
#define TD_RD_SHOWLEN 60             /* bad values shown in messages */
#ifdef TD_LUAJIT                     /* why an integer is a bad int */
#define TD_RD_INT_RANGE " (beyond 2^53: LuaJIT's integers are exact below it)"
#else
#define TD_RD_INT_RANGE ""
#endif

typedef struct {
  size_t off;    /* offset in buf (from the record start) or in scratch */
  size_t len;
  int scratch;   /* 1: the bytes are in r->scratch (unescaped quoted) */
} td_field_t;

/* results of csv_parse */
enum { P_REC, P_EMPTY, P_NEED, P_END, P_ERR, P_NOMEM };

struct td_reader {
  char *path;
  gzFile gz;
  int is_csv;
  int done;          /* no more records */
  int eof;           /* gzread reported end of input */
  int whole;         /* not split: subtask 0 reads everything */
  int err;           /* sticky error code (0: none) */
  char errmsg[1024];
  uint64_t skipped;
  char first_skip[1024]; /* message of the first row this reader skipped */

  /* positions */
  int split, n_splits;
  int empty;         /* the split reads nothing (known at open) */
  int used;          /* td_reader_read or td_reader_seek was called */
  int pos_bad;       /* a seek failed: the reader has no position */
  uint64_t start;    /* offset of the split's first record (text: the split
                        start, maybe inside a line; CSV: the first row) */
  uint64_t start_line; /* r->line at open */
  uint64_t size;     /* file size when known (splittable text), else max */
  uint64_t disk_size; /* the file's size on disk (0: not a regular file) */
  int fail_set;      /* CSV: a row failed; fail_off/line is its start */
  uint64_t fail_off, fail_line;
  uint64_t line;     /* physical line where the next record starts (text:
                        0 when unknown, in a split not starting at 0) */

  char *buf;
  size_t cap, rpos, wpos;
  size_t scan;       /* text: bytes after rpos known to hold no '\n' */
  uint64_t base;     /* file offset of buf[0] (uncompressed offset) */
  uint64_t end;      /* text: lines must start before this offset */
  int skip_partial;  /* text: discard through the first '\n' */

  /* CSV */
  char delim;
  int skip_errors;   /* count and skip bad rows */
  int named;         /* rows are tables keyed by name (else arrays) */
  int ncols_fixed;   /* ncols is known */
  size_t ncols;
  char **names;
  td_col_type_t *types;
  /* array mode: types by column number, checked against the first row */
  size_t n_idx_types;
  size_t *idx_cols;
  td_col_type_t *idx_types;
  td_field_t *fields;
  size_t nf, fcap;
  char *scratch;
  size_t slen, scap;
  size_t consumed;   /* bytes of the last parsed record (or to resync) */
  uint64_t rec_nl;   /* '\n' in those bytes */
  const char *perr;  /* syntax error message */
  char perrbuf[128]; /* perr when it has numbers in it */
};

/* ------------------------------------------------------------------ */

static void set_errbuf(char *errbuf, size_t errlen, const char *fmt, ...) {
  if (!errbuf || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errbuf, errlen, fmt, ap);
  va_end(ap);
}

static int reader_fail(td_reader_t *r, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->errmsg, sizeof r->errmsg, fmt, ap);
  va_end(ap);
  r->err = code;
  return code;
}

static int has_gz_ext(const char *path) {
  size_t n = strlen(path);
  return n >= 3 && strcmp(path + n - 3, ".gz") == 0;
}

/* floor(size * k / n) without overflow (n small). */
static uint64_t split_point(uint64_t size, int k, int n) {
  uint64_t q = size / (uint64_t)n, rem = size % (uint64_t)n;
  return q * (uint64_t)k + rem * (uint64_t)k / (uint64_t)n;
}

/* Opens path into a fresh reader: r->path, r->gz, r->buf. *st gets the
 * file's status. */
static int reader_new(td_reader_t **out, const char *path, struct stat *st,
                      char *errbuf, size_t errlen) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    set_errbuf(errbuf, errlen, "cannot open '%s': %s", path, strerror(e));
    return -e;
  }
  if (fstat(fd, st) != 0) {
    int e = errno;
    close(fd);
    set_errbuf(errbuf, errlen, "cannot open '%s': %s", path, strerror(e));
    return -e;
  }
  if (S_ISDIR(st->st_mode)) {
    close(fd);
    set_errbuf(errbuf, errlen, "cannot open '%s': %s", path,
               strerror(EISDIR));
    return -EISDIR;
  }
  td_reader_t *r = calloc(1, sizeof *r);
  if (r) r->path = strdup(path);
  if (r) r->buf = malloc(TD_RD_BUF);
  if (!r || !r->path || !r->buf) {
    close(fd);
    if (r) {
      free(r->path);
      free(r->buf);
      free(r);
    }
    set_errbuf(errbuf, errlen, "cannot open '%s': %s", path,
               td_strerror(TD_ENOMEM));
    return TD_ENOMEM;
  }
  r->cap = TD_RD_BUF;
  r->end = UINT64_MAX;
  r->size = UINT64_MAX;
  r->disk_size = S_ISREG(st->st_mode) ? (uint64_t)st->st_size : 0;
  r->gz = gzdopen(fd, "rb");
  if (!r->gz) {
    close(fd);
    td_reader_free(r);
    set_errbuf(errbuf, errlen, "cannot open '%s': %s", path,
               td_strerror(TD_ENOMEM));
    return TD_ENOMEM;
  }
  gzbuffer(r->gz, TD_RD_GZBUF);
  *out = r;
  return 0;
}

/* Reads more input after r->wpos, first moving [rpos, wpos) to the front
 * of the buffer (growing it when it is full). Sets r->eof at the end.
 * Returns 0 or a negative code (the reader's error is set). */
static int refill(td_reader_t *r) {
  if (r->rpos > 0) {
    size_t keep = r->wpos - r->rpos;
    if (keep) memmove(r->buf, r->buf + r->rpos, keep);
    r->base += r->rpos;
    r->rpos = 0;
    r->wpos = keep;
  }
  if (r->wpos == r->cap) {
    size_t ncap = r->cap * 2;
    char *nb = ncap > r->cap ? realloc(r->buf, ncap) : NULL;
    if (!nb)
      return reader_fail(r, TD_ENOMEM, "%s: %s", r->path,
                         td_strerror(TD_ENOMEM));
    r->buf = nb;
    r->cap = ncap;
  }
  size_t want = r->cap - r->wpos;
  if (want > TD_RD_MAXREAD) want = TD_RD_MAXREAD;
  int got = gzread(r->gz, r->buf + r->wpos, (unsigned)want);
  if (got > 0) {
    r->wpos += (size_t)got;
    return 0;
  }
  int zerr = Z_OK;
  const char *zmsg = gzerror(r->gz, &zerr);
  if (got < 0 || zerr != Z_OK) {
    if (zerr == Z_ERRNO) {
      int e = errno ? errno : EIO;
      return reader_fail(r, -e, "cannot read '%s': %s", r->path,
                         strerror(e));
    }
    if (zerr == Z_MEM_ERROR)
      return reader_fail(r, TD_ENOMEM, "%s: %s", r->path,
                         td_strerror(TD_ENOMEM));
    return reader_fail(r, TD_ECORRUPT, "cannot read '%s': %s", r->path,
                       zmsg && *zmsg ? zmsg : td_strerror(TD_ECORRUPT));
  }
  r->eof = 1;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Text */

int td_reader_open_text(td_reader_t **out, const char *path, int split,
                        int n_splits, char *errbuf, size_t errlen) {
  if (errbuf && errlen) errbuf[0] = '\0';
  if (out) *out = NULL;
  if (!out || !path || n_splits < 1 || split < 0 || split >= n_splits) {
    if (out) *out = NULL;
    set_errbuf(errbuf, errlen, "read_text: bad arguments (split %d of %d)",
               split, n_splits);
    return TD_EINVAL;
  }
  struct stat st;
  td_reader_t *r;
  int rc = reader_new(&r, path, &st, errbuf, errlen);
  if (rc) return rc;
  /* Splittable: a regular file not named .gz that is not gzip inside
   * (gzdirect reads the file's start to tell). */
  int splittable = S_ISREG(st.st_mode) && !has_gz_ext(path) &&
                   gzdirect(r->gz) == 1;
  r->split = split;
  r->n_splits = n_splits;
  r->whole = !splittable;
  if (splittable) r->size = (uint64_t)st.st_size;
  if (!splittable) {
    if (split != 0) r->done = 1;
  } else if (n_splits > 1) {
    uint64_t size = (uint64_t)st.st_size;
    uint64_t start = split_point(size, split, n_splits);
    r->start = start;
    r->end = split_point(size, split + 1, n_splits);
    if (start >= r->end) {
      r->done = 1;
    } else if (start > 0) {
      z_off_t pos = gzseek(r->gz, (z_off_t)(start - 1), SEEK_SET);
      if (pos < 0 || (uint64_t)pos != start - 1) {
        int e = errno ? errno : EIO;
        set_errbuf(errbuf, errlen, "cannot seek in '%s': %s", path,
                   strerror(e));
        td_reader_free(r);
        return -e;
      }
      r->base = start - 1;
      r->skip_partial = 1;
    }
  }
  r->empty = r->done;
  /* line numbers are known when reading from the file's start */
  r->line = r->start_line = (!r->done && r->start == 0) ? 1 : 0;
  *out = r;
  return 0;
}

static int read_text(td_reader_t *r, lua_State *L, int tidx, int max) {
  int n = 0;
  while (n < max && !r->done) {
    char *p = r->buf + r->rpos;
    size_t avail = r->wpos - r->rpos;
    char *nl = avail > r->scan
                   ? memchr(p + r->scan, '\n', avail - r->scan) : NULL;
    if (!nl) {
      if (r->eof) {
        r->done = 1;
        if (avail && !r->skip_partial && r->base + r->rpos < r->end) {
          size_t len = avail;
          if (p[len - 1] == '\r') len--;
          lua_pushlstring(L, p, len);
          lua_rawseti(L, tidx, ++n);
          if (r->line) r->line++;
          r->rpos = r->wpos;
        } else if (r->skip_partial) {
          r->rpos = r->wpos;
        } /* else: a line of the next split, or nothing; it stays */
        r->scan = 0;
        break;
      }
      r->scan = avail;
      if (r->skip_partial) { /* drop what is already known to be skipped */
        r->rpos = r->wpos;
        r->scan = 0;
      }
      int rc = refill(r);
      if (rc) return n ? n : rc;
      continue;
    }
    size_t len = (size_t)(nl - p);
    size_t next = r->rpos + len + 1;
    if (r->skip_partial) {
      r->skip_partial = 0;
    } else {
      if (r->base + r->rpos >= r->end) {
        r->done = 1;
        break;
      }
      if (len && p[len - 1] == '\r') len--;
      lua_pushlstring(L, p, len);
      lua_rawseti(L, tidx, ++n);
      if (r->line) r->line++;
    }
    r->rpos = next;
    r->scan = 0;
  }
  return n;
}

/* ------------------------------------------------------------------ */
/* CSV parsing */

static int field_add(td_reader_t *r, size_t off, size_t len, int scratch) {
  if (r->nf == r->fcap) {
    size_t ncap = r->fcap ? r->fcap * 2 : 32;
    td_field_t *nfp = realloc(r->fields, ncap * sizeof *nfp);
    if (!nfp) return -1;
    r->fields = nfp;
    r->fcap = ncap;
  }
  r->fields[r->nf].off = off;
  r->fields[r->nf].len = len;
  r->fields[r->nf].scratch = scratch;
  r->nf++;
  return 0;
}

static int scratch_add(td_reader_t *r, const char *p, size_t len) {
  if (!r->scratch || r->scap - r->slen < len) {
    size_t ncap = r->scap ? r->scap : 256;
    while (ncap - r->slen < len) ncap *= 2;
    char *ns = realloc(r->scratch, ncap);
    if (!ns) return -1;
    r->scratch = ns;
    r->scap = ncap;
  }
  memcpy(r->scratch + r->slen, p, len);
  r->slen += len;
  return 0;
}

static uint64_t count_nl(const char *p, size_t len) {
  uint64_t c = 0;
  const char *e = p + len;
  while (p < e && (p = memchr(p, '\n', (size_t)(e - p))) != NULL) {
    c++;
    p++;
  }
  return c;
}

/* Syntax error at q: the bad row's bytes run through the next '\n' (or to
 * the end of input), where reading resumes. nl counts the newlines in
 * [rec, q). A quoting error passes the field's opening quote as q: a stray
 * quote pairs with some later quote or none, so the lines after the one
 * it opened on are read as rows again instead of being swallowed. */
static int parse_error(td_reader_t *r, const char *rec, const char *q,
                       const char *e, uint64_t nl, const char *msg) {
  const char *x = q < e ? memchr(q, '\n', (size_t)(e - q)) : NULL;
  if (!x) {
    if (!r->eof) return P_NEED;
    r->consumed = (size_t)(e - rec);
  } else {
    r->consumed = (size_t)(x + 1 - rec);
    nl++;
  }
  r->rec_nl = nl;
  r->perr = msg;
  return P_ERR;
}

/* Parses one record at buf[rpos, wpos): fields into r->fields (offsets
 * from the record start), r->consumed and r->rec_nl. */
static int csv_parse(td_reader_t *r) {
  const char *rec = r->buf + r->rpos, *e = r->buf + r->wpos, *q = rec;
  const char delim = r->delim;
  uint64_t nl = 0;
  r->nf = 0;
  r->slen = 0;
  if (q == e) return r->eof ? P_END : P_NEED;
  if (*q == '\n' || (*q == '\r' && q + 1 < e && q[1] == '\n')) {
    r->consumed = *q == '\n' ? 1 : 2;
    r->rec_nl = 1;
    return P_EMPTY;
  }
  if (*q == '\r' && q + 1 == e) {
    if (!r->eof) return P_NEED;
    r->consumed = 1;
    r->rec_nl = 0;
    return P_EMPTY;
  }
  for (;;) {
    if (q < e && *q == '"') {
      /* quoted field: unescaped into scratch */
      size_t soff = r->slen;
      const char *qopen = q; /* a quoting error resyncs after its line */
      uint64_t qnl = nl;
      q++;
      for (;;) {
        const char *qq = memchr(q, '"', (size_t)(e - q));
        if (!qq) {
          if (!r->eof) return P_NEED;
          snprintf(r->perrbuf, sizeof r->perrbuf, "unterminated quoted "
                   "field (opened at line %llu, runs to the end of the "
                   "file)", (unsigned long long)(r->line + qnl));
          return parse_error(r, rec, qopen, e, qnl, r->perrbuf);
        }
        nl += count_nl(q, (size_t)(qq - q));
        if (scratch_add(r, q, (size_t)(qq - q)))
          return P_NOMEM;
        q = qq + 1;
        if (q == e && !r->eof) return P_NEED;
        if (q < e && *q == '"') { /* "" inside quotes */
          if (scratch_add(r, "\"", 1))
            return P_NOMEM;
          q++;
          continue;
        }
        break;
      }
      if (field_add(r, soff, r->slen - soff, 1))
        return P_NOMEM;
      if (q == e) break; /* end of input */
      if (*q == delim) {
        q++;
        continue;
      }
      if (*q == '\n') {
        q++;
        nl++;
        break;
      }
      if (*q == '\r') {
        if (q + 1 == e) {
          if (!r->eof) return P_NEED;
          q++;
          break;
        }
        if (q[1] == '\n') {
          q += 2;
          nl++;
          break;
        }
      }
      const char *msg = "unexpected character after closing quote";
      if (nl > qnl) { /* the field spans lines: name them */
        snprintf(r->perrbuf, sizeof r->perrbuf, "%s (the quoted field "
                 "opened at line %llu closes on line %llu)", msg,
                 (unsigned long long)(r->line + qnl),
                 (unsigned long long)(r->line + nl));
        msg = r->perrbuf;
      }
      return parse_error(r, rec, qopen, e, qnl, msg);
    } else {
      const char *s = q;
      while (q < e) {
        char c = *q;
        if (c == delim || c == '\n' || c == '"') break;
        q++;
      }
      if (q == e) {
        if (!r->eof) return P_NEED;
        size_t len = (size_t)(q - s);
        if (len && s[len - 1] == '\r') len--;
        if (field_add(r, (size_t)(s - rec), len, 0))
          return P_NOMEM;
        break;
      }
      if (*q == '"')
        return parse_error(r, rec, q, e, nl,
                           "unexpected '\"' in unquoted field");
      size_t len = (size_t)(q - s);
      if (*q == '\n' && len && s[len - 1] == '\r') len--;
      if (field_add(r, (size_t)(s - rec), len, 0))
        return P_NOMEM;
      if (*q == '\n') {
        q++;
        nl++;
        break;
      }
      q++; /* delimiter */
      if (q == e && !r->eof) return P_NEED;
    }
  }
  r->consumed = (size_t)(q - rec);
  r->rec_nl = nl;
  return P_REC;
}

static const char *field_ptr(const td_reader_t *r, const td_field_t *f) {
  return f->scratch ? r->scratch + f->off : r->buf + r->rpos + f->off;
}

/* Parses the next non-empty record, refilling as needed. Returns P_REC,
 * P_END, P_ERR (r->perr set, r->line at the record start; the caller
 * consumes), or a negative code (read error, reader error set). */
static int csv_next(td_reader_t *r) {
  for (;;) {
    int pr = csv_parse(r);
    if (pr == P_NOMEM)
      return reader_fail(r, TD_ENOMEM, "%s: %s", r->path,
                         td_strerror(TD_ENOMEM));
    if (pr == P_NEED) {
      int rc = refill(r);
      if (rc) return rc;
      continue;
    }
    if (pr == P_EMPTY) {
      r->rpos += r->consumed;
      r->line += r->rec_nl;
      continue;
    }
    return pr;
  }
}

static void csv_consume(td_reader_t *r) {
  r->rpos += r->consumed;
  r->line += r->rec_nl;
  r->consumed = 0;
  r->rec_nl = 0;
}

static void free_names(char **names, size_t n) {
  if (!names) return;
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
}

static char **dup_names(const char *const *src, size_t n) {
  char **names = calloc(n ? n : 1, sizeof *names);
  if (!names) return NULL;
  for (size_t i = 0; i < n; i++) {
    names[i] = strdup(src[i] ? src[i] : "");
    if (!names[i]) {
      free_names(names, i);
      return NULL;
    }
  }
  return names;
}

/* "12" -> 12; 0 for anything but a positive decimal column number. */
static size_t parse_colno(const char *s) {
  size_t v = 0;
  if (!*s) return 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return 0;
    if (v > (SIZE_MAX - 9) / 10) return 0;
    v = v * 10 + (size_t)(*s - '0');
  }
  return v;
}

/* Sets r->types for r->names from opts (named mode). */
static int apply_named_types(td_reader_t *r, const td_csv_opts_t *o,
                             char *errbuf, size_t errlen) {
  r->types = calloc(r->ncols ? r->ncols : 1, sizeof *r->types);
  if (!r->types) {
    set_errbuf(errbuf, errlen, "%s: %s", r->path, td_strerror(TD_ENOMEM));
    return TD_ENOMEM;
  }
  const char *missing = NULL;
  for (size_t t = 0; t < o->n_types; t++) {
    const char *tn = o->type_names[t] ? o->type_names[t] : "";
    size_t i;
    for (i = 0; i < r->ncols; i++)
      if (strcmp(r->names[i], tn) == 0) break;
    if (i == r->ncols) {
      /* the first missing name in byte order, whatever order the types
       * came in (a Lua table's order differs between Lua 5.4 and LuaJIT) */
      if (!missing || strcmp(tn, missing) < 0) missing = tn;
      continue;
    }
    r->types[i] = o->types[t];
  }
  if (missing) {
    set_errbuf(errbuf, errlen, "%s: types name column '%s', which the "
               "file does not have", r->path, missing);
    return TD_EINVAL;
  }
  return 0;
}

int td_reader_open_csv(td_reader_t **out, const char *path,
                       const td_csv_opts_t *opts, int split, int n_splits,
                       char *errbuf, size_t errlen) {
  static const td_csv_opts_t defaults = {',', 1, 0, NULL, 0, NULL, NULL, 0};
  const td_csv_opts_t *o = opts ? opts : &defaults;
  if (errbuf && errlen) errbuf[0] = '\0';
  if (out) *out = NULL;
  if (!out || !path || n_splits < 1 || split < 0 || split >= n_splits) {
    set_errbuf(errbuf, errlen, "read_csv: bad arguments (split %d of %d)",
               split, n_splits);
    return TD_EINVAL;
  }
  char delim = o->delimiter ? o->delimiter : ',';
  if (delim == '"' || delim == '\n' || delim == '\r') {
    set_errbuf(errbuf, errlen, "read_csv '%s': bad delimiter", path);
    return TD_EINVAL;
  }
  if ((o->n_names && !o->names) || (o->n_types && (!o->type_names ||
                                                   !o->types))) {
    set_errbuf(errbuf, errlen, "read_csv '%s': bad arguments", path);
    return TD_EINVAL;
  }
  for (size_t t = 0; t < o->n_types; t++) {
    if ((int)o->types[t] < TD_COL_STRING || o->types[t] > TD_COL_BOOL) {
      set_errbuf(errbuf, errlen, "read_csv '%s': bad type for column '%s'",
                 path, o->type_names[t] ? o->type_names[t] : "");
      return TD_EINVAL;
    }
  }
  struct stat st;
  td_reader_t *r;
  int rc = reader_new(&r, path, &st, errbuf, errlen);
  if (rc) return rc;
  r->is_csv = 1;
  r->delim = delim;
  r->skip_errors = o->skip_errors != 0;
  r->line = 1;
  r->split = split;
  r->n_splits = n_splits;

  /* a UTF-8 byte order mark at the start of the file */
  while (r->wpos < 3 && !r->eof) {
    rc = refill(r);
    if (rc) goto fail_read;
  }
  if (r->wpos >= 3 && memcmp(r->buf, "\xEF\xBB\xBF", 3) == 0) r->rpos = 3;

  const char *const *names = o->names;
  size_t n_names = o->names ? o->n_names : 0;
  if (o->header) {
    int pr = csv_next(r);
    if (pr < 0) {
      rc = pr;
      goto fail_read;
    }
    if (pr == P_ERR) {
      set_errbuf(errbuf, errlen, "%s:%llu: %s", path,
                 (unsigned long long)r->line, r->perr);
      rc = TD_EPARSE;
      goto fail;
    }
    if (pr == P_END) {
      /* an empty file: no header, no rows */
      if (names) {
        r->names = dup_names(names, n_names);
        r->ncols = n_names;
      } else {
        r->names = dup_names(NULL, 0);
        r->ncols = 0;
      }
      r->named = 1;
      r->ncols_fixed = 1;
      r->done = 1;
      r->empty = 1;
      r->start = r->base + r->rpos;
      r->start_line = r->line;
      if (!r->names) goto fail_nomem;
      r->types = calloc(r->ncols ? r->ncols : 1, sizeof *r->types);
      if (!r->types) goto fail_nomem;
      *out = r;
      return 0;
    }
    if (names) {
      if (n_names != r->nf) {
        set_errbuf(errbuf, errlen, "%s: %zu names given, but the header "
                   "has %zu columns", path, n_names, r->nf);
        rc = TD_EINVAL;
        goto fail;
      }
      r->names = dup_names(names, n_names);
      if (!r->names) goto fail_nomem;
    } else {
      r->names = calloc(r->nf ? r->nf : 1, sizeof *r->names);
      if (!r->names) goto fail_nomem;
      for (size_t i = 0; i < r->nf; i++) {
        const td_field_t *f = &r->fields[i];
        r->names[i] = strndup(field_ptr(r, f), f->len);
        if (!r->names[i]) {
          free_names(r->names, i);
          r->names = NULL;
          goto fail_nomem;
        }
      }
    }
    r->ncols = r->nf;
    r->named = 1;
    r->ncols_fixed = 1;
    csv_consume(r);
  } else if (names) {
    r->names = dup_names(names, n_names);
    if (!r->names) goto fail_nomem;
    r->ncols = n_names;
    r->named = 1;
    r->ncols_fixed = 1;
  }

  if (r->named) {
    rc = apply_named_types(r, o, errbuf, errlen);
    if (rc) goto fail;
  } else if (o->n_types) {
    /* rows are arrays: types name columns by number, "1".."n" */
    r->idx_cols = calloc(o->n_types, sizeof *r->idx_cols);
    r->idx_types = calloc(o->n_types, sizeof *r->idx_types);
    if (!r->idx_cols || !r->idx_types) goto fail_nomem;
    for (size_t t = 0; t < o->n_types; t++) {
      const char *tn = o->type_names[t] ? o->type_names[t] : "";
      size_t c = parse_colno(tn);
      if (!c) {
        set_errbuf(errbuf, errlen, "%s: types name column '%s', but the "
                   "columns have no names (use numbers 1..n)", path, tn);
        rc = TD_EINVAL;
        goto fail;
      }
      r->idx_cols[t] = c;
      r->idx_types[t] = o->types[t];
    }
    r->n_idx_types = o->n_types;
  }
  if (split != 0) r->done = r->empty = 1;
  r->whole = 1;
  r->start = r->base + r->rpos;
  r->start_line = r->line;
  *out = r;
  return 0;

fail_nomem:
  set_errbuf(errbuf, errlen, "%s: %s", path, td_strerror(TD_ENOMEM));
  rc = TD_ENOMEM;
  goto fail;
fail_read:
  set_errbuf(errbuf, errlen, "%s", r->errmsg);
fail:
  td_reader_free(r);
  return rc;
}

/* Fixes the column count from the first row (array mode). */
static int csv_fix_ncols(td_reader_t *r, size_t n) {
  r->types = calloc(n ? n : 1, sizeof *r->types);
  if (!r->types)
    return reader_fail(r, TD_ENOMEM, "%s: %s", r->path,
                       td_strerror(TD_ENOMEM));
  for (size_t t = 0; t < r->n_idx_types; t++) {
    if (r->idx_cols[t] > n)
      return reader_fail(r, TD_EINVAL, "%s:%llu: types name column '%zu', "
                         "but the rows have %zu fields", r->path,
                         (unsigned long long)r->line, r->idx_cols[t], n);
    r->types[r->idx_cols[t] - 1] = r->idx_types[t];
  }
  r->ncols = n;
  r->ncols_fixed = 1;
  return 0;
}

/* An integer of the VM: int64 on Lua 5.4; on LuaJIT, whose numbers are
 * doubles, |v| < 2^53 (docs/LUAJIT.md). Returns 0, -1 when p is not an
 * integer, -2 when it is one beyond the VM's range. */
static int parse_int(const char *p, size_t len, lua_Integer *out) {
  const char *e = p + len;
  int neg = 0;
  if (p < e && (*p == '+' || *p == '-')) neg = *p++ == '-';
  if (p == e) return -1;
#ifdef TD_LUAJIT
  const uint64_t lim = ((uint64_t)1 << 53) - 1;
#else
  const uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
#endif
  uint64_t v = 0;
  int over = 0;
  for (; p < e; p++) {
    unsigned d = (unsigned)(unsigned char)*p - '0';
    if (d > 9) return -1;
    if (over || v > (lim - d) / 10) over = 1;
    else v = v * 10 + d;
  }
  if (over) return -2;
  *out = neg ? (lua_Integer)(0 - v) : (lua_Integer)v;
  return 0;
}

static int parse_float(const char *p, size_t len, double *out) {
  char small[64];
  char *s = small;
  if (len == 0 || isspace((unsigned char)p[0])) return -1;
  if (len >= sizeof small) {
    s = malloc(len + 1);
    if (!s) return -1;
  }
  memcpy(s, p, len);
  s[len] = '\0';
  char *end;
  double d = strtod(s, &end);
  int ok = end == s + len;
  if (s != small) free(s);
  if (!ok) return -1;
  *out = d;
  return 0;
}

static int parse_bool(const char *p, size_t len, int *out) {
  if (len == 1 && (*p == '1' || *p == '0')) {
    *out = *p == '1';
    return 0;
  }
  if (len == 4 && strncasecmp(p, "true", 4) == 0) {
    *out = 1;
    return 0;
  }
  if (len == 5 && strncasecmp(p, "false", 5) == 0) {
    *out = 0;
    return 0;
  }
  return -1;
}

/* Pushes field i converted to its column's type; returns 0, 1 when there
 * is nothing to push (empty non-string field), -1 on a bad value, or -2
 * on an int column's integer beyond the VM's range. */
static int push_field(td_reader_t *r, lua_State *L, size_t i) {
  const td_field_t *f = &r->fields[i];
  const char *p = field_ptr(r, f);
  td_col_type_t ty = r->types[i];
  if (ty == TD_COL_STRING) {
    lua_pushlstring(L, p, f->len);
    return 0;
  }
  if (f->len == 0) return 1;
  switch (ty) {
  case TD_COL_INT: {
    lua_Integer v;
    int rc = parse_int(p, f->len, &v);
    if (rc) return rc;
    lua_pushinteger(L, v);
    return 0;
  }
  case TD_COL_FLOAT: {
    double d;
    if (parse_float(p, f->len, &d)) return -1;
    lua_pushnumber(L, (lua_Number)d);
    return 0;
  }
  case TD_COL_NUMBER: {
    lua_Integer v;
    double d;
    if (parse_int(p, f->len, &v) == 0) {
      lua_pushinteger(L, v);
      return 0;
    }
    if (parse_float(p, f->len, &d)) return -1;
    lua_pushnumber(L, (lua_Number)d);
    return 0;
  }
  case TD_COL_BOOL: {
    int b;
    if (parse_bool(p, f->len, &b)) return -1;
    lua_pushboolean(L, b);
    return 0;
  }
  default:
    lua_pushlstring(L, p, f->len);
    return 0;
  }
}

static const char *type_name(td_col_type_t t) {
  switch (t) {
  case TD_COL_INT: return "int";
  case TD_COL_FLOAT: return "float";
  case TD_COL_NUMBER: return "number";
  case TD_COL_BOOL: return "bool";
  default: return "string";
  }
}

/* Records a bad row: skipped (returns 0) or a sticky error (returns the
 * code). The row's bytes are consumed either way. */
static int bad_row(td_reader_t *r, const char *fmt, ...) {
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(r->errmsg, sizeof r->errmsg, "%s:%llu: %s", r->path,
           (unsigned long long)r->line, msg);
  if (!r->skip_errors) { /* the position stays before the row */
    r->fail_set = 1;
    r->fail_off = r->base + r->rpos;
    r->fail_line = r->line;
  }
  csv_consume(r);
  if (r->skip_errors) {
    if (!r->first_skip[0])
      memcpy(r->first_skip, r->errmsg, sizeof r->first_skip);
    r->skipped++;
    return 0;
  }
  r->err = TD_EPARSE;
  return TD_EPARSE;
}

static int read_csv(td_reader_t *r, lua_State *L, int tidx, int max) {
  int n = 0;
  int keybase = 0;
  if (r->named) {
    if (!lua_checkstack(L, (int)(r->ncols > INT_MAX - 16 ? INT_MAX - 16
                                                          : r->ncols) + 8))
      return reader_fail(r, TD_ENOMEM, "%s: too many columns", r->path);
    keybase = lua_gettop(L) + 1;
    for (size_t i = 0; i < r->ncols; i++) lua_pushstring(L, r->names[i]);
  }
  while (n < max && !r->done) {
    int pr = csv_next(r);
    if (pr < 0) break; /* read error: r->err is set */
    if (pr == P_END) {
      r->done = 1;
      break;
    }
    if (pr == P_ERR) {
      if (bad_row(r, "%s", r->perr)) break;
      continue;
    }
    if (!r->ncols_fixed && csv_fix_ncols(r, r->nf)) break;
    if (r->nf != r->ncols) {
      if (bad_row(r, "expected %zu fields, got %zu", r->ncols, r->nf))
        break;
      continue;
    }
    if (r->named)
      lua_createtable(L, 0, (int)r->ncols);
    else
      lua_createtable(L, (int)r->ncols, 0);
    size_t i;
    int fr = 0;
    for (i = 0; i < r->ncols; i++) {
      if (r->named) lua_pushvalue(L, keybase + (int)i);
      fr = push_field(r, L, i);
      if (fr < 0) break;
      if (fr > 0) {
        if (r->named) lua_pop(L, 1);
        continue;
      }
      if (r->named)
        lua_rawset(L, -3);
      else
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    if (i < r->ncols) {
      const td_field_t *f = &r->fields[i];
      const char *p = field_ptr(r, f);
      int show = f->len > TD_RD_SHOWLEN ? TD_RD_SHOWLEN : (int)f->len;
      const char *more = f->len > TD_RD_SHOWLEN ? "..." : "";
      const char *why = fr == -2 ? TD_RD_INT_RANGE : "";
      lua_pop(L, r->named ? 2 : 1); /* key, row */
      int brc;
      if (r->named)
        brc = bad_row(r, "column '%s': bad %s '%.*s%s'%s", r->names[i],
                      type_name(r->types[i]), show, p, more, why);
      else
        brc = bad_row(r, "column %zu: bad %s '%.*s%s'%s", i + 1,
                      type_name(r->types[i]), show, p, more, why);
      if (brc) break;
      continue;
    }
    lua_rawseti(L, tidx, ++n);
    csv_consume(r);
  }
  if (r->named) lua_settop(L, keybase - 1);
  if (r->err && n == 0) return r->err;
  return n;
}

/* ------------------------------------------------------------------ */

int td_reader_read(td_reader_t *r, lua_State *L, int tidx, int max) {
  if (!r || !L) return TD_EINVAL;
  r->used = 1;
  if (r->err) return r->err;
  if (max <= 0 || r->done) return 0;
  tidx = lua_absindex(L, tidx);
  if (!lua_checkstack(L, 8))
    return reader_fail(r, TD_ENOMEM, "%s: Lua stack overflow", r->path);
  if (r->is_csv) return read_csv(r, L, tidx, max);
  int n = read_text(r, L, tidx, max);
  if (r->err && n == 0) return r->err;
  return n;
}

/* ------------------------------------------------------------------ */
/* Positions */

void td_reader_progress(const td_reader_t *r, uint64_t *done, uint64_t *total) {
  *done = *total = 0;
  if (r->empty || !r->disk_size) return;
  if (r->whole || r->end == UINT64_MAX) {
    *total = r->disk_size;
    /* compressed: the bytes zlib took from the file; else the offset */
    z_off_t raw = gzdirect(r->gz) ? -1 : gzoffset(r->gz);
    *done = raw >= 0 ? (uint64_t)raw : r->base + r->rpos;
  } else {
    *total = r->end - r->start;
    uint64_t at = r->base + r->rpos;
    *done = at > r->start ? at - r->start : 0;
  }
  if (r->done || *done > *total) *done = *total;
}

int td_reader_position(const td_reader_t *r, td_reader_pos_t *pos) {
  if (!r || !pos) return TD_EINVAL;
  if (r->pos_bad) return r->err ? r->err : TD_EINVAL;
  memset(pos, 0, sizeof *pos);
  pos->kind = r->is_csv ? TD_READER_CSV : TD_READER_TEXT;
  pos->split = r->split;
  pos->n_splits = r->n_splits;
  if (r->empty) {
    pos->offset = r->start;
    pos->line = r->start_line;
  } else if (r->fail_set) {
    pos->offset = r->fail_off;
    pos->line = r->fail_line;
  } else if (r->skip_partial) {
    pos->offset = r->start; /* the partial line is skipped again */
    pos->line = r->line;
  } else {
    pos->offset = r->base + r->rpos;
    pos->line = r->line;
  }
  if (r->is_csv) {
    pos->skipped = r->skipped;
    pos->ncols = r->ncols_fixed ? (uint64_t)r->ncols : 0;
  }
  return 0;
}

/* A failed seek: the reader keeps the error and loses its position. */
static int seek_fail(td_reader_t *r, int code, const char *fmt, ...) {
  if (fmt) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(r->errmsg, sizeof r->errmsg,
             "%s: cannot restore the reader's position: %s", r->path, msg);
  }
  r->err = code;
  r->pos_bad = 1;
  r->done = 1;
  return code;
}

/* Puts the stream at offset off: r->base + r->rpos == off, keeping
 * buffered data when off lies in it. Returns 0, 1 when off is known to be
 * beyond the end of the input, or a negative code (error set). */
static int reader_goto(td_reader_t *r, uint64_t off) {
  r->scan = 0;
  if (off >= r->base && off - r->base <= r->wpos) {
    r->rpos = (size_t)(off - r->base);
    return 0;
  }
  if (off > r->size || (r->eof && off > r->base + r->wpos)) return 1;
  z_off_t zoff = (z_off_t)off;
  if (zoff < 0 || (uint64_t)zoff != off) return 1;
  errno = 0;
  z_off_t got = gzseek(r->gz, zoff, SEEK_SET);
  if (got < 0 || got != zoff) {
    int zerr = Z_OK;
    const char *zmsg = gzerror(r->gz, &zerr);
    if (zerr != Z_OK && zerr != Z_ERRNO)
      return reader_fail(r, TD_ECORRUPT, "cannot read '%s': %s", r->path,
                         zmsg && *zmsg ? zmsg : td_strerror(TD_ECORRUPT));
    int e = errno ? errno : EIO;
    return reader_fail(r, -e, "cannot seek in '%s': %s", r->path,
                       strerror(e));
  }
  r->base = off;
  r->rpos = r->wpos = 0;
  r->eof = 0;
  return 0;
}

/* Reads until at least k bytes follow rpos or the input ends. */
static int reader_want(td_reader_t *r, size_t k) {
  while (r->wpos - r->rpos < k && !r->eof) {
    int rc = refill(r);
    if (rc) return rc;
  }
  return 0;
}

/* Text split ending before the end of the file: the offset just after its
 * last line (the first '\n' at or after end - 1, plus one), or the end of
 * the input. Moves the stream. */
static int text_split_stop(td_reader_t *r, uint64_t *stop) {
  int rc = reader_goto(r, r->end - 1);
  if (rc) return rc; /* 1: beyond the end (cannot be: end <= size) */
  for (;;) {
    const char *p = r->buf + r->rpos;
    const char *nl = memchr(p, '\n', r->wpos - r->rpos);
    if (nl) {
      *stop = r->base + (uint64_t)(nl - r->buf) + 1;
      return 0;
    }
    if (r->eof) {
      *stop = r->base + r->wpos;
      return 0;
    }
    r->rpos = r->wpos;
    rc = refill(r);
    if (rc) return rc;
  }
}

int td_reader_seek(td_reader_t *r, const td_reader_pos_t *pos) {
  if (!r) return TD_EINVAL;
  if (r->err) return r->err;
  if (!pos) return seek_fail(r, TD_EINVAL, "no position");
  if (r->used)
    return seek_fail(r, TD_EINVAL, "the reader was already read from or "
                     "restored (seek a freshly opened reader)");
  static const char *const kinds[] = {"malformed", "text", "CSV"};
  int kind = r->is_csv ? TD_READER_CSV : TD_READER_TEXT;
  if (pos->kind != kind)
    return seek_fail(r, TD_EINVAL, "a %s position for a %s reader",
                     pos->kind == TD_READER_TEXT || pos->kind == TD_READER_CSV
                         ? kinds[pos->kind] : kinds[0],
                     kinds[kind]);
  if (pos->split != r->split || pos->n_splits != r->n_splits)
    return seek_fail(r, TD_EINVAL, "the position belongs to split %d of "
                     "%d, this reader reads split %d of %d",
                     (int)pos->split, (int)pos->n_splits, r->split,
                     r->n_splits);
  r->used = 1;
  uint64_t off = pos->offset;
  unsigned long long uoff = (unsigned long long)off;
  if (pos->reserved != 0)
    return seek_fail(r, TD_EINVAL, "malformed position");
  if (r->empty) { /* only the position such a reader reports */
    td_reader_pos_t own;
    td_reader_position(r, &own);
    if (memcmp(&own, pos, sizeof own) != 0)
      return seek_fail(r, TD_EINVAL, "offset %llu is outside split %d of "
                       "%d, which reads nothing", uoff, r->split,
                       r->n_splits);
    return 0;
  }
  if (off < r->start) {
    if (r->is_csv)
      return seek_fail(r, TD_EINVAL, "offset %llu is before the first row "
                       "(offset %llu)", uoff, (unsigned long long)r->start);
    return seek_fail(r, TD_EINVAL, "offset %llu is before split %d of %d "
                     "(which starts at offset %llu)", uoff, r->split,
                     r->n_splits, (unsigned long long)r->start);
  }
  if (off > r->size)
    return seek_fail(r, TD_EINVAL, "offset %llu is beyond the end of the "
                     "file (%llu bytes)", uoff, (unsigned long long)r->size);
  /* line numbers: known from the start of a split starting at 0 (text) or
   * from the first row on (CSV); a line holds at least one byte; nothing
   * is behind the start */
  int line_ok = r->is_csv ? pos->line >= r->start_line
                          : (pos->line != 0) == (r->start_line != 0);
  if (off == r->start) line_ok = pos->line == r->start_line;
  if (!line_ok || (pos->line && pos->line - 1 > off))
    return seek_fail(r, TD_EINVAL, "line %llu does not fit offset %llu",
                     (unsigned long long)pos->line, uoff);
  if (r->is_csv) {
    if (off == r->start && pos->skipped)
      return seek_fail(r, TD_EINVAL, "malformed position");
    if (r->named ? pos->ncols != r->ncols
                 : pos->ncols > (uint64_t)(INT_MAX - 16))
      return seek_fail(r, TD_EINVAL, "the position has %llu columns, the "
                       "reader %zu", (unsigned long long)pos->ncols,
                       r->ncols);
  } else if (pos->skipped || pos->ncols) {
    return seek_fail(r, TD_EINVAL, "malformed position");
  }

  int rc;
  if (off == r->start) {
    /* where the reader already is (a text split still skips the partial
     * line it starts inside) */
  } else if (r->end != UINT64_MAX && off >= r->end) {
    /* a text split that is done: only the offset after its last line */
    uint64_t stop = 0;
    rc = text_split_stop(r, &stop);
    if (rc < 0) return seek_fail(r, rc, NULL);
    if (rc > 0 || off != stop)
      return seek_fail(r, TD_EINVAL, "offset %llu is outside split %d of %d "
                       "(lines starting at offsets %llu to %llu)", uoff,
                       r->split, r->n_splits, (unsigned long long)r->start,
                       (unsigned long long)r->end - 1);
    rc = reader_goto(r, off); /* in the buffer: no I/O */
    if (rc) return seek_fail(r, rc < 0 ? rc : TD_EINVAL, rc < 0 ? NULL :
                             "offset %llu is beyond the end of the file",
                             uoff);
    r->done = 1;
    r->skip_partial = 0;
  } else {
    /* the byte before off must end a line, unless off is the end */
    rc = reader_goto(r, off - 1);
    if (rc == 0) rc = reader_want(r, 2);
    if (rc < 0) return seek_fail(r, rc, NULL);
    size_t avail = r->wpos - r->rpos;
    if (rc > 0 || avail == 0)
      return seek_fail(r, TD_EINVAL, "offset %llu is beyond the end of the "
                       "file", uoff);
    if (r->buf[r->rpos] != '\n' && avail > 1)
      return seek_fail(r, TD_EINVAL, "offset %llu is not at the start of a "
                       "line", uoff);
    r->rpos++;
    r->skip_partial = 0;
  }
  r->line = pos->line;
  if (r->is_csv) {
    r->skipped = pos->skipped;
    if (!r->named && pos->ncols && csv_fix_ncols(r, (size_t)pos->ncols))
      return seek_fail(r, r->err, NULL);
  }
  return 0;
}

const char *td_reader_error(const td_reader_t *r) {
  return r ? r->errmsg : "";
}

int td_reader_whole(const td_reader_t *r) { return r->whole; }

uint64_t td_reader_skipped(const td_reader_t *r) {
  return r ? r->skipped : 0;
}

const char *td_reader_first_skipped(const td_reader_t *r) {
  return r ? r->first_skip : "";
}

void td_reader_free(td_reader_t *r) {
  if (!r) return;
  if (r->gz) gzclose(r->gz);
  free(r->path);
  free(r->buf);
  free_names(r->names, r->ncols);
  free(r->types);
  free(r->idx_cols);
  free(r->idx_types);
  free(r->fields);
  free(r->scratch);
  free(r);
}
