/*
 * streamkit.c - an example Tide C module (docs/MODULES.md walks through
 * it): fast parsing of line-oriented data, a keyed windowed counter with
 * keyed state and event-time timers, and an exactly-once JSON-lines sink.
 *
 *   make -C scripts/modules                 builds streamkit.so here
 *   tide run scripts/modules/commits_by_author.lua -- git-commits.csv OUT
 *
 * Operators (config fields in brackets; m = tide.load_module(...)):
 *
 *   source lines      {path, skip_header}: the lines of a text file as
 *                     strings; a file is split into byte ranges, one per
 *                     subtask; the position (byte offset) is checkpointed
 *   source seq        {count, shape = "int"|"pair", keys}: the integers
 *                     1..count (none: unbounded), split into contiguous
 *                     ranges (unbounded: strided) over the subtasks; as
 *                     "pair" the array [i % keys, i]
 *   map csv           {columns, types = {col = "int"|"float"|"string"},
 *                     timestamp, delimiter}: a CSV line (RFC 4180
 *                     quoting) into a map of its columns; `timestamp`
 *                     names an integer column (ms) that becomes the
 *                     record's event timestamp
 *   filter where      {field, op = ">"|">="|"<"|"<="|"=="|"~=", value}:
 *                     records whose numeric field compares true
 *   map affine        {mul, add}: integer records x -> x * mul + add
 *   filter modulo     {divisor, remainder}: integer records with
 *                     x % divisor == remainder
 *   flat_map words    lower-cased runs of ASCII letters and digits of a
 *                     string record (as scripts/wordcount.lua splits)
 *   process window_count  {size, sum = {field, ...}}: per key and
 *                     tumbling event-time window of size ms (no size: one
 *                     window for all time, emitted at the end of input),
 *                     the number of records and the sums of integer
 *                     fields; emits {key, window_start, count, <sums>}
 *                     when the watermark passes the window (its timer)
 *   sink jsonl        {dir, prefix}: records as JSON lines into part files
 *                     "<prefix>-<subtask>-<n>.jsonl" of dir, exactly once
 *                     (two-phase commit: hidden ".inprogress" while
 *                     written, ".pending" at a checkpoint's barrier,
 *                     committed when the checkpoint completes)
 *
 * Builds against the tree's headers (make -C scripts/modules) or an
 * installed Tide: cc -shared -fPIC -o streamkit.so streamkit.c
 * $(pkg-config --cflags tide). It links nothing of Tide's: everything
 * comes through tide.h's inline helpers and the routine table.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tide.h>

static const td_api_t *T; /* the host's routines, from init */

/* ---- small helpers ---------------------------------------------------- */

/* A config string field copied into a NUL-terminated malloc'd string;
 * *out NULL when absent. 0 or a code (with the message set). */
static int cfg_strdup(td_ctx_t *ctx, const char *cfg, size_t len, const char *key, char **out) {
  const char *s = NULL;
  size_t n = 0;
  *out = NULL;
  int rc = td_cfg_str(cfg, len, key, &s, &n);
  if (rc < 0) return T->error(ctx, TD_EINVAL, "config field '%s' must be a string", key);
  if (rc == 0) return 0;
  *out = malloc(n + 1);
  if (!*out) return T->error(ctx, TD_ENOMEM, "out of memory");
  memcpy(*out, s, n);
  (*out)[n] = 0;
  return 0;
}

static int cfg_int_opt(td_ctx_t *ctx, const char *cfg, size_t len, const char *key, int64_t *v) {
  int rc = td_cfg_int(cfg, len, key, v);
  if (rc < 0) return T->error(ctx, TD_EINVAL, "config field '%s' must be an integer", key);
  return rc;
}

/* An integer record (or TD_EINVAL with a message). */
static int int_record(td_ctx_t *ctx, const td_batch_t *in, int i, int64_t *v) {
  const char *p = in->data + in->off[i];
  td_mp_item_t it;
  if (td_mp_read(&p, in->data + in->stop[i], &it) != 0 || it.type != TD_MP_INT)
    return T->error(ctx, TD_EINVAL, "record %d is not an integer", i + 1);
  *v = it.v.i;
  return 0;
}

/* ---- source: lines ---------------------------------------------------- */

#define READ_CHUNK (1 << 20)

typedef struct lines {
  int fd;
  char *path;
  int64_t start, end;  /* this split's byte range: lines starting in it */
  int64_t pos;         /* file offset of the next line to emit */
  int skip_header;
  char *buf;           /* bytes of the file from buf_off */
  size_t len, cap;
  int64_t buf_off;
  int eof;
} lines_t;

static int lines_open(td_ctx_t *ctx, const char *cfg, size_t len, void **state) {
  const td_info_t *info = T->info(ctx);
  lines_t *s = calloc(1, sizeof *s);
  if (!s) return T->error(ctx, TD_ENOMEM, "out of memory");
  *state = s;
  s->fd = -1;
  int rc = cfg_strdup(ctx, cfg, len, "path", &s->path);
  if (rc) return rc;
  if (!s->path) return T->error(ctx, TD_EINVAL, "config needs path (the file to read)");
  const char *v;
  if (td_cfg_get(cfg, len, "skip_header", &v) == 1) s->skip_header = (unsigned char)*v == 0xc3;
  s->fd = open(s->path, O_RDONLY | O_CLOEXEC);
  if (s->fd < 0) return T->error(ctx, -errno, "cannot open '%s': %s", s->path, strerror(errno));
  struct stat sb;
  if (fstat(s->fd, &sb) != 0) return T->error(ctx, -errno, "cannot stat '%s'", s->path);
  int64_t size = sb.st_size, i = info->subtask, p = info->parallelism;
  s->start = size * i / p;
  s->end = size * (i + 1) / p;
  s->pos = -1; /* find the first line start at the first read */
  s->cap = READ_CHUNK;
  s->buf = malloc(s->cap);
  if (!s->buf) return T->error(ctx, TD_ENOMEM, "out of memory");
  return 0;
}

static void lines_close(td_ctx_t *ctx, void *state) {
  lines_t *s = state;
  if (!s) return;
  if (s->fd >= 0) close(s->fd);
  free(s->path);
  free(s->buf);
  free(s);
}

/* Make the buffer hold the bytes at pos onwards (at least one whole line
 * or the file's end). 0, or a code. */
static int lines_fill(td_ctx_t *ctx, lines_t *s) {
  if (s->pos < s->buf_off || s->pos > s->buf_off + (int64_t)s->len) { /* seeked */
    s->buf_off = s->pos;
    s->len = 0;
    s->eof = 0;
  }
  size_t skip = (size_t)(s->pos - s->buf_off);
  memmove(s->buf, s->buf + skip, s->len - skip);
  s->len -= skip;
  s->buf_off = s->pos;
  while (!s->eof && s->len < s->cap) {
    ssize_t r = pread(s->fd, s->buf + s->len, s->cap - s->len, s->buf_off + (int64_t)s->len);
    if (r < 0) return T->error(ctx, -errno, "cannot read '%s': %s", s->path, strerror(errno));
    if (r == 0) s->eof = 1;
    s->len += (size_t)r;
    if (memchr(s->buf, '\n', s->len)) break;
    if (s->len == s->cap) { /* a line longer than the buffer */
      char *b = realloc(s->buf, s->cap * 2);
      if (!b) return T->error(ctx, TD_ENOMEM, "out of memory");
      s->buf = b;
      s->cap *= 2;
    }
  }
  return 0;
}

static int lines_read(td_ctx_t *ctx, void *state, td_out_t *out) {
  lines_t *s = state;
  if (s->pos < 0) { /* the first line starting at or after start */
    s->pos = s->start;
    if (s->start > 0) {
      char c;
      if (pread(s->fd, &c, 1, s->start - 1) != 1)
        return T->error(ctx, TD_EIO, "cannot read '%s'", s->path);
      if (c != '\n') {
        int rc = lines_fill(ctx, s);
        if (rc) return rc;
        char *nl = memchr(s->buf, '\n', s->len);
        s->pos = nl ? s->buf_off + (nl - s->buf) + 1 : s->buf_off + (int64_t)s->len;
      }
    }
    if (s->start == 0 && s->skip_header) {
      int rc = lines_fill(ctx, s);
      if (rc) return rc;
      char *nl = memchr(s->buf, '\n', s->len);
      s->pos = nl ? (nl - s->buf) + 1 : (int64_t)s->len;
    }
  }
  while (out->n < out->max) {
    if (s->pos >= s->end) return TD_SOURCE_END;
    int in_buf = s->pos >= s->buf_off && s->pos <= s->buf_off + (int64_t)s->len;
    size_t at = in_buf ? (size_t)(s->pos - s->buf_off) : 0;
    char *nl = in_buf ? memchr(s->buf + at, '\n', s->len - at) : NULL;
    if (!nl && !(in_buf && s->eof)) {
      int rc = lines_fill(ctx, s); /* now buf_off == pos */
      if (rc) return rc;
      at = 0;
      nl = memchr(s->buf, '\n', s->len);
    }
    size_t stop = nl ? (size_t)(nl - s->buf) : s->len;
    if (!nl && stop == at) return TD_SOURCE_END; /* the end of the file */
    size_t n = stop - at;
    if (n && s->buf[at + n - 1] == '\r') n--;
    int rc = td_mp_put_str(&out->buf, s->buf + at, n);
    if (rc == 0) rc = td_out_end(out, TD_NO_TIMESTAMP);
    if (rc) return rc;
    s->pos = s->buf_off + (int64_t)stop + (nl ? 1 : 0);
  }
  return TD_SOURCE_MORE;
}

static int pos_snapshot(int64_t pos, td_buf_t *out) { return td_mp_put_int(out, pos); }

static int pos_restore(td_ctx_t *ctx, const char *data, size_t len, int64_t *pos) {
  td_mp_item_t it;
  if (td_mp_read(&data, data + len, &it) != 0 || it.type != TD_MP_INT)
    return T->error(ctx, TD_ECORRUPT, "bad position in the snapshot");
  *pos = it.v.i;
  return 0;
}

static int lines_snapshot(td_ctx_t *ctx, void *state, td_buf_t *out) {
  lines_t *s = state;
  return pos_snapshot(s->pos, out);
}

static int lines_restore(td_ctx_t *ctx, void *state, const char *data, size_t len) {
  lines_t *s = state;
  return pos_restore(ctx, data, len, &s->pos);
}

/* ---- source: seq ------------------------------------------------------ */

typedef struct seq {
  int64_t next, last, step;
  int64_t keys;
  int pair;
} seq_t;

static int seq_open(td_ctx_t *ctx, const char *cfg, size_t len, void **state) {
  const td_info_t *info = T->info(ctx);
  seq_t *s = calloc(1, sizeof *s);
  if (!s) return T->error(ctx, TD_ENOMEM, "out of memory");
  *state = s;
  int64_t count = -1, i = info->subtask, p = info->parallelism;
  int rc = cfg_int_opt(ctx, cfg, len, "count", &count);
  if (rc < 0) return rc;
  if (rc == 1 && count < 0) return T->error(ctx, TD_EINVAL, "count must be >= 0");
  if (rc == 1) { /* contiguous ranges, as env:generate splits */
    s->next = count * i / p + 1;
    s->last = count * (i + 1) / p;
    s->step = 1;
  } else {
    s->next = i + 1;
    s->last = INT64_MAX;
    s->step = p;
  }
  const char *shape = "int";
  size_t n = 3;
  rc = td_cfg_str(cfg, len, "shape", &shape, &n);
  if (rc >= 0 && n == 4 && memcmp(shape, "pair", 4) == 0) s->pair = 1;
  else if (rc < 0 || !(n == 3 && memcmp(shape, "int", 3) == 0))
    return T->error(ctx, TD_EINVAL, "shape must be \"int\" or \"pair\"");
  s->keys = 1000;
  if (cfg_int_opt(ctx, cfg, len, "keys", &s->keys) < 0) return TD_EINVAL;
  if (s->keys < 1) return T->error(ctx, TD_EINVAL, "keys must be >= 1");
  return 0;
}

static void free_state(td_ctx_t *ctx, void *state) { free(state); }

static int seq_read(td_ctx_t *ctx, void *state, td_out_t *out) {
  seq_t *s = state;
  int64_t left = s->step == 1 ? s->last - s->next + 1 : INT64_MAX;
  uint32_t n = left < (int64_t)(out->max - out->n) ? (uint32_t)left : out->max - out->n;
  /* fast path: room for the whole batch at once, records written inline */
  if (td_buf_reserve(&out->buf, (size_t)n * (s->pair ? 2 * TD_MP_MAX_HEAD + 1 : TD_MP_MAX_HEAD)))
    return TD_ENOMEM;
  unsigned char *p = (unsigned char *)out->buf.data;
  size_t len = out->buf.len;
  int64_t x = s->next;
  for (uint32_t k = 0; k < n; k++, x += s->step) {
    out->off[out->n + k] = (uint32_t)len;
    if (s->pair) {
      p[len++] = 0x92;
      len += td_mp_enc_int(p + len, x % s->keys);
    }
    len += td_mp_enc_int(p + len, x);
    out->stop[out->n + k] = (uint32_t)len;
    out->ts[out->n + k] = TD_NO_TIMESTAMP;
  }
  out->buf.len = len;
  out->n += n;
  out->mark = (uint32_t)len;
  s->next = x;
  return s->next > s->last ? TD_SOURCE_END : TD_SOURCE_MORE;
}

static int seq_snapshot(td_ctx_t *ctx, void *state, td_buf_t *out) {
  return pos_snapshot(((seq_t *)state)->next, out);
}

static int seq_restore(td_ctx_t *ctx, void *state, const char *data, size_t len) {
  return pos_restore(ctx, data, len, &((seq_t *)state)->next);
}

/* ---- map: csv ----------------------------------------------------------- */

enum { COL_STRING, COL_INT, COL_FLOAT };

typedef struct csv {
  int ncols;
  char **names;
  size_t *name_len;
  int *types;
  int ts_col;        /* -1: none */
  char delim;
  char *field;       /* unquoting scratch */
  size_t field_cap;
} csv_t;

static void csv_close(td_ctx_t *ctx, void *state) {
  csv_t *s = state;
  if (!s) return;
  for (int i = 0; i < s->ncols; i++) free(s->names[i]);
  free(s->names);
  free(s->name_len);
  free(s->types);
  free(s->field);
  free(s);
}

static int csv_open(td_ctx_t *ctx, const char *cfg, size_t len, void **state) {
  csv_t *s = calloc(1, sizeof *s);
  if (!s) return T->error(ctx, TD_ENOMEM, "out of memory");
  *state = s;
  s->ts_col = -1;
  s->delim = ',';
  const char *p, *end = cfg + len;
  if (td_cfg_get(cfg, len, "columns", &p) != 1)
    return T->error(ctx, TD_EINVAL, "config needs columns (the column names, in order)");
  td_mp_item_t it;
  if (td_mp_read(&p, end, &it) != 0 || it.type != TD_MP_ARRAY || it.v.n == 0)
    return T->error(ctx, TD_EINVAL, "columns must be a non-empty array of names");
  s->ncols = (int)it.v.n;
  s->names = calloc((size_t)s->ncols, sizeof *s->names);
  s->name_len = calloc((size_t)s->ncols, sizeof *s->name_len);
  s->types = calloc((size_t)s->ncols, sizeof *s->types);
  if (!s->names || !s->name_len || !s->types) return T->error(ctx, TD_ENOMEM, "out of memory");
  for (int i = 0; i < s->ncols; i++) {
    if (td_mp_read(&p, end, &it) != 0 || it.type != TD_MP_STR)
      return T->error(ctx, TD_EINVAL, "columns must be strings");
    s->names[i] = malloc(it.v.s.len + 1);
    if (!s->names[i]) return T->error(ctx, TD_ENOMEM, "out of memory");
    memcpy(s->names[i], it.v.s.p, it.v.s.len);
    s->names[i][it.v.s.len] = 0;
    s->name_len[i] = it.v.s.len;
  }
  const char *types;
  if (td_cfg_get(cfg, len, "types", &types) == 1) {
    for (int i = 0; i < s->ncols; i++) {
      const char *v;
      if (td_mp_map_get(types, end, s->names[i], s->name_len[i], &v) != 1) continue;
      if (td_mp_read(&v, end, &it) != 0 || it.type != TD_MP_STR)
        return T->error(ctx, TD_EINVAL, "types.%s must be a type name", s->names[i]);
      if (it.v.s.len == 3 && memcmp(it.v.s.p, "int", 3) == 0) s->types[i] = COL_INT;
      else if (it.v.s.len == 5 && memcmp(it.v.s.p, "float", 5) == 0) s->types[i] = COL_FLOAT;
      else if (it.v.s.len == 6 && memcmp(it.v.s.p, "string", 6) == 0) s->types[i] = COL_STRING;
      else return T->error(ctx, TD_EINVAL, "types.%s: expected \"int\", \"float\" or \"string\"",
                          s->names[i]);
    }
  }
  const char *ts;
  size_t tslen;
  int rc = td_cfg_str(cfg, len, "timestamp", &ts, &tslen);
  if (rc < 0) return T->error(ctx, TD_EINVAL, "timestamp must be a column name");
  if (rc == 1) {
    for (int i = 0; i < s->ncols; i++)
      if (s->name_len[i] == tslen && memcmp(s->names[i], ts, tslen) == 0) s->ts_col = i;
    if (s->ts_col < 0 || s->types[s->ts_col] != COL_INT)
      return T->error(ctx, TD_EINVAL, "timestamp must name an int column");
  }
  const char *d;
  size_t dlen;
  if (td_cfg_str(cfg, len, "delimiter", &d, &dlen) == 1) {
    if (dlen != 1) return T->error(ctx, TD_EINVAL, "delimiter must be one character");
    s->delim = d[0];
  }
  return 0;
}

/* The next field of line[*at .. n): unquoted into *f, *flen. 1 a field,
 * 0 no more, -1 a quoting error. */
static int csv_field(csv_t *s, const char *line, size_t n, size_t *at, const char **f,
                     size_t *flen) {
  size_t i = *at;
  if (i > n) return 0;
  if (i < n && line[i] == '"') {
    size_t k = 0;
    if (s->field_cap < n) {
      char *b = realloc(s->field, n + 1);
      if (!b) return -1;
      s->field = b;
      s->field_cap = n;
    }
    for (i++;; i++) {
      if (i >= n) return -1;
      if (line[i] == '"') {
        if (i + 1 < n && line[i + 1] == '"') {
          s->field[k++] = '"';
          i++;
        } else {
          i++;
          break;
        }
      } else {
        s->field[k++] = line[i];
      }
    }
    if (i < n && line[i] != s->delim) return -1;
    *f = s->field;
    *flen = k;
    *at = i + 1;
    return 1;
  }
  const char *e = memchr(line + i, s->delim, n - i);
  size_t stop = e ? (size_t)(e - line) : n;
  *f = line + i;
  *flen = stop - i;
  *at = stop + 1;
  return 1;
}

static int parse_int(const char *f, size_t n, int64_t *v) {
  if (n == 0 || n > 19) return -1;
  int neg = f[0] == '-';
  size_t i = neg;
  if (i == n) return -1;
  int64_t x = 0;
  for (; i < n; i++) {
    if (f[i] < '0' || f[i] > '9') return -1;
    x = x * 10 + (f[i] - '0');
  }
  *v = neg ? -x : x;
  return 0;
}

static int csv_process(td_ctx_t *ctx, void *state, const td_batch_t *in, td_out_t *out) {
  csv_t *s = state;
  for (int r = 0; r < in->n; r++) {
    const char *p = in->data + in->off[r];
    td_mp_item_t it;
    if (td_mp_read(&p, in->data + in->stop[r], &it) != 0 || it.type != TD_MP_STR)
      return T->error(ctx, TD_EINVAL, "a csv record must be a string (a line)");
    const char *line = it.v.s.p;
    size_t n = it.v.s.len, at = 0;
    int64_t ts = TD_NO_TIMESTAMP;
    int rc = td_mp_put_map(&out->buf, (uint32_t)s->ncols);
    for (int c = 0; rc == 0 && c < s->ncols; c++) {
      const char *f;
      size_t flen;
      int got = csv_field(s, line, n, &at, &f, &flen);
      if (got <= 0)
        return T->error(ctx, TD_EPARSE, "bad CSV line (%s at column %d of %d): %.80s",
                        got < 0 ? "a quoting error" : "too few fields", c + 1, s->ncols, line);
      rc = td_mp_put_str(&out->buf, s->names[c], s->name_len[c]);
      if (rc) break;
      if (s->types[c] == COL_INT) {
        int64_t v;
        if (parse_int(f, flen, &v) != 0)
          return T->error(ctx, TD_EPARSE, "bad CSV line (column %s is not an integer: '%.*s')",
                          s->names[c], (int)(flen < 40 ? flen : 40), f);
        if (c == s->ts_col) ts = v;
        rc = td_mp_put_int(&out->buf, v);
      } else if (s->types[c] == COL_FLOAT) {
        char tmp[64], *e;
        size_t k = flen < sizeof tmp - 1 ? flen : sizeof tmp - 1;
        memcpy(tmp, f, k);
        tmp[k] = 0;
        double v = strtod(tmp, &e);
        if (k == 0 || *e)
          return T->error(ctx, TD_EPARSE, "bad CSV line (column %s is not a number: '%s')",
                          s->names[c], tmp);
        rc = td_mp_put_float(&out->buf, v);
      } else {
        rc = td_mp_put_str(&out->buf, f, flen);
      }
    }
    if (rc == 0 && at <= n)
      return T->error(ctx, TD_EPARSE, "bad CSV line (more than %d fields): %.80s", s->ncols, line);
    if (rc == 0) rc = td_out_end(out, ts != TD_NO_TIMESTAMP ? ts : td_in_ts(in, r));
    if (rc) return rc;
  }
  return 0;
}

/* ---- filter: where ------------------------------------------------------- */

enum { OP_GT, OP_GE, OP_LT, OP_LE, OP_EQ, OP_NE };

typedef struct where {
  char *field;
  size_t flen;
  int op;
  double value;
} where_t;

static void where_close(td_ctx_t *ctx, void *state) {
  where_t *s = state;
  if (s) free(s->field);
  free(s);
}

static int where_open(td_ctx_t *ctx, const char *cfg, size_t len, void **state) {
  where_t *s = calloc(1, sizeof *s);
  if (!s) return T->error(ctx, TD_ENOMEM, "out of memory");
  *state = s;
  int rc = cfg_strdup(ctx, cfg, len, "field", &s->field);
  if (rc) return rc;
  if (!s->field) return T->error(ctx, TD_EINVAL, "config needs field");
  s->flen = strlen(s->field);
  static const char *const ops[] = {">", ">=", "<", "<=", "==", "~="};
  const char *o;
  size_t olen;
  s->op = -1;
  if (td_cfg_str(cfg, len, "op", &o, &olen) == 1)
    for (int i = 0; i < 6; i++)
      if (strlen(ops[i]) == olen && memcmp(ops[i], o, olen) == 0) s->op = i;
  if (s->op < 0) return T->error(ctx, TD_EINVAL, "op must be one of > >= < <= == ~=");
  const char *v;
  td_mp_item_t it;
  if (td_cfg_get(cfg, len, "value", &v) != 1 || td_mp_read(&v, cfg + len, &it) != 0 ||
      (it.type != TD_MP_INT && it.type != TD_MP_FLOAT))
    return T->error(ctx, TD_EINVAL, "config needs a numeric value");
  s->value = it.type == TD_MP_INT ? (double)it.v.i : it.v.f;
  return 0;
}

static int where_filter(td_ctx_t *ctx, void *state, const td_batch_t *in, uint8_t *keep) {
  where_t *s = state;
  for (int i = 0; i < in->n; i++) {
    const char *rec = in->data + in->off[i], *end = in->data + in->stop[i], *v;
    td_mp_item_t it;
    if (td_mp_map_get(rec, end, s->field, s->flen, &v) != 1 || td_mp_read(&v, end, &it) != 0 ||
        (it.type != TD_MP_INT && it.type != TD_MP_FLOAT))
      return T->error(ctx, TD_EINVAL, "field '%s' of a record is missing or not a number", s->field);
    double x = it.type == TD_MP_INT ? (double)it.v.i : it.v.f;
    switch (s->op) {
    case OP_GT: keep[i] = x > s->value; break;
    case OP_GE: keep[i] = x >= s->value; break;
    case OP_LT: keep[i] = x < s->value; break;
    case OP_LE: keep[i] = x <= s->value; break;
    case OP_EQ: keep[i] = x == s->value; break;
    default: keep[i] = x != s->value; break;
    }
  }
  return 0;
}

/* ---- map: affine, filter: modulo (integer records) ---------------------- */

typedef struct ints {
  int64_t a, b;
} ints_t;

static int ints_open(td_ctx_t *ctx, const char *cfg, size_t len, void **state, const char *ka,
                     int64_t da, const char *kb, int64_t db) {
  ints_t *s = calloc(1, sizeof *s);
  if (!s) return T->error(ctx, TD_ENOMEM, "out of memory");
  *state = s;
  s->a = da;
  s->b = db;
  if (cfg_int_opt(ctx, cfg, len, ka, &s->a) < 0 || cfg_int_opt(ctx, cfg, len, kb, &s->b) < 0)
    return TD_EINVAL;
  return 0;
}

static int affine_open(td_ctx_t *ctx, const char *cfg, size_t len, void **state) {
  return ints_open(ctx, cfg, len, state, "mul", 1, "add", 0);
}

static int affine_process(td_ctx_t *ctx, void *state, const td_batch_t *in, td_out_t *out) {
  const ints_t *s = state;
  if (td_buf_reserve(&out->buf, (size_t)in->n * TD_MP_MAX_HEAD)) return TD_ENOMEM;
  unsigned char *p = (unsigned char *)out->buf.data;
  size_t len = out->buf.len;
  for (int i = 0; i < in->n; i++) {
    int64_t x;
    int rc = int_record(ctx, in, i, &x);
    if (rc) return rc;
    out->off[i] = (uint32_t)len;
    len += td_mp_enc_int(p + len, x * s->a + s->b);
    out->stop[i] = (uint32_t)len;
    out->ts[i] = td_in_ts(in, i);
  }
  out->buf.len = len;
  out->n = (uint32_t)in->n;
  out->mark = (uint32_t)len;
  out->has_ts = in->ts != NULL;
  return 0;
}

static int modulo_open(td_ctx_t *ctx, const char *cfg, size_t len, void **state) {
  int rc = ints_open(ctx, cfg, len, state, "divisor", 2, "remainder", 0);
  if (rc == 0 && ((ints_t *)*state)->a == 0) return T->error(ctx, TD_EINVAL, "divisor must not be 0");
  return rc;
}

static int modulo_filter(td_ctx_t *ctx, void *state, const td_batch_t *in, uint8_t *keep) {
  const ints_t *s = state;
  for (int i = 0; i < in->n; i++) {
    int64_t x;
    int rc = int_record(ctx, in, i, &x);
    if (rc) return rc;
    keep[i] = x % s->a == s->b;
  }
  return 0;
}

/* ---- flat_map: words ---------------------------------------------------- */

static int is_word(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int words_process(td_ctx_t *ctx, void *state, const td_batch_t *in, td_out_t *out) {
  for (int r = 0; r < in->n; r++) {
    const char *p = in->data + in->off[r];
    td_mp_item_t it;
    if (td_mp_read(&p, in->data + in->stop[r], &it) != 0 || it.type != TD_MP_STR)
      return T->error(ctx, TD_EINVAL, "words: a record must be a string");
    const unsigned char *s = (const unsigned char *)it.v.s.p;
    for (uint32_t i = 0; i < it.v.s.len;) {
      while (i < it.v.s.len && !is_word(s[i])) i++;
      uint32_t start = i;
      while (i < it.v.s.len && is_word(s[i])) i++;
      if (i == start) break;
      int rc = td_mp_put_str(&out->buf, (const char *)s + start, i - start);
      if (rc) return rc;
      unsigned char *w = (unsigned char *)out->buf.data + out->buf.len - (i - start);
      for (uint32_t k = 0; k < i - start; k++)
        if (w[k] >= 'A' && w[k] <= 'Z') w[k] = (unsigned char)(w[k] + 32);
      rc = td_out_end(out, td_in_ts(in, r));
      if (rc) return rc; /* TD_EOVERFLOW: a line with more words than max_fanout */
    }
  }
  return 0;
}

/* ---- keyed process: window_count ---------------------------------------- */

#define MAX_SUMS 8

typedef struct wcount {
  int64_t size;          /* 0: one global window */
  int nsums;
  char *sum[MAX_SUMS];
  size_t sum_len[MAX_SUMS];
  uint32_t acc;          /* the state: int64 count, then the sums */
} wcount_t;

static void wcount_close(td_ctx_t *ctx, void *state) {
  wcount_t *s = state;
  if (!s) return;
  for (int i = 0; i < s->nsums; i++) free(s->sum[i]);
  free(s);
}

static int wcount_open(td_ctx_t *ctx, const char *cfg, size_t len, void **state) {
  wcount_t *s = calloc(1, sizeof *s);
  if (!s) return T->error(ctx, TD_ENOMEM, "out of memory");
  *state = s;
  if (cfg_int_opt(ctx, cfg, len, "size", &s->size) < 0) return TD_EINVAL;
  if (s->size < 0) return T->error(ctx, TD_EINVAL, "size must be a positive number of ms");
  const char *p, *end = cfg + len;
  if (td_cfg_get(cfg, len, "sum", &p) == 1) {
    td_mp_item_t it;
    if (td_mp_read(&p, end, &it) != 0 || it.type != TD_MP_ARRAY || it.v.n > MAX_SUMS)
      return T->error(ctx, TD_EINVAL, "sum must be an array of at most %d field names", MAX_SUMS);
    for (uint32_t i = 0; i < it.v.n; i++) {
      td_mp_item_t f;
      if (td_mp_read(&p, end, &f) != 0 || f.type != TD_MP_STR)
        return T->error(ctx, TD_EINVAL, "sum must be an array of field names");
      s->sum[i] = malloc(f.v.s.len + 1);
      if (!s->sum[i]) return T->error(ctx, TD_ENOMEM, "out of memory");
      memcpy(s->sum[i], f.v.s.p, f.v.s.len);
      s->sum[i][f.v.s.len] = 0;
      s->sum_len[i] = f.v.s.len;
      s->nsums++;
    }
  }
  return T->state(ctx, "acc", &s->acc);
}

static void be64(unsigned char *b, int64_t v) {
  uint64_t u = (uint64_t)v;
  for (int i = 7; i >= 0; i--, u >>= 8) b[i] = (unsigned char)u;
}

static int64_t get_be64(const unsigned char *b) {
  uint64_t u = 0;
  for (int i = 0; i < 8; i++) u = (u << 8) | b[i];
  return (int64_t)u;
}

static int wcount_record(td_ctx_t *ctx, void *state, const char *rec, size_t len, int64_t ts,
                         td_out_t *out) {
  wcount_t *s = state;
  int64_t acc[1 + MAX_SUMS] = {0};
  for (int i = 0; i < s->nsums; i++) {
    const char *v;
    td_mp_item_t it;
    if (td_mp_map_get(rec, rec + len, s->sum[i], s->sum_len[i], &v) != 1 ||
        td_mp_read(&v, rec + len, &it) != 0 || it.type != TD_MP_INT)
      return T->error(ctx, TD_EINVAL, "field '%s' of a record is missing or not an integer",
                      s->sum[i]);
    acc[1 + i] = it.v.i;
  }
  unsigned char ns[8];
  size_t nslen = 0;
  int64_t fire = INT64_MAX; /* the global window: at the end of input */
  if (s->size) {
    if (ts == TD_NO_TIMESTAMP)
      return T->error(ctx, TD_EINVAL, "a record has no timestamp (windows of size %lld ms need "
                                      "event time)", (long long)s->size);
    int64_t start = ts - ((ts % s->size) + s->size) % s->size;
    be64(ns, start);
    nslen = 8;
    fire = start + s->size - 1; /* the window's max timestamp */
  }
  const char *old;
  size_t olen;
  size_t size = 8 * (1 + (size_t)s->nsums);
  int rc = T->value_get(ctx, s->acc, ns, nslen, &old, &olen);
  if (rc < 0) return rc;
  unsigned char now[8 * (1 + MAX_SUMS)];
  if (rc == 1 && olen == size) {
    for (int i = 0; i <= s->nsums; i++)
      be64(now + 8 * i, get_be64((const unsigned char *)old + 8 * i) + (i ? acc[i] : 1));
  } else {
    be64(now, 1);
    for (int i = 1; i <= s->nsums; i++) be64(now + 8 * i, acc[i]);
    rc = T->timer_register(ctx, fire); /* a new window */
    if (rc < 0) return rc;
  }
  return T->value_put(ctx, s->acc, ns, nslen, now, size);
}

static int wcount_timer(td_ctx_t *ctx, void *state, int64_t ts, td_out_t *out) {
  wcount_t *s = state;
  unsigned char ns[8];
  size_t nslen = 0;
  int64_t start = 0;
  if (s->size) {
    start = ts - s->size + 1;
    be64(ns, start);
    nslen = 8;
  }
  const char *v, *key;
  size_t vlen, klen;
  int rc = T->value_get(ctx, s->acc, ns, nslen, &v, &vlen);
  if (rc <= 0) return rc; /* nothing (cleared) */
  int64_t acc[1 + MAX_SUMS];
  for (int i = 0; i <= s->nsums; i++) acc[i] = get_be64((const unsigned char *)v + 8 * i);
  rc = T->current_key(ctx, &key, &klen);
  if (rc == 0) rc = td_mp_put_map(&out->buf, (uint32_t)(2 + s->nsums + (s->size ? 1 : 0)));
  if (rc == 0) rc = td_mp_put_str(&out->buf, "key", 3);
  if (rc == 0) rc = td_mp_put_raw(&out->buf, key, klen); /* the canonical key is a value */
  if (rc == 0 && s->size) {
    rc = td_mp_put_str(&out->buf, "window_start", 12);
    if (rc == 0) rc = td_mp_put_int(&out->buf, start);
  }
  if (rc == 0) rc = td_mp_put_str(&out->buf, "count", 5);
  if (rc == 0) rc = td_mp_put_int(&out->buf, acc[0]);
  for (int i = 0; rc == 0 && i < s->nsums; i++) {
    rc = td_mp_put_str(&out->buf, s->sum[i], s->sum_len[i]);
    if (rc == 0) rc = td_mp_put_int(&out->buf, acc[1 + i]);
  }
  if (rc == 0) rc = td_out_end(out, s->size ? ts : TD_NO_TIMESTAMP);
  if (rc == 0) rc = T->value_clear(ctx, s->acc, ns, nslen) < 0 ? TD_ESTATE : 0;
  return rc;
}

/* ---- sink: jsonl ------------------------------------------------------------ */

typedef struct pending {
  int64_t checkpoint, n;
} pending_t;

#define MAX_PENDING 64

typedef struct jsonl {
  char *dir, *prefix;
  int subtask;
  int recovered;       /* the directory was cleaned up (fresh) or restored */
  int fd;              /* the in-progress file, or -1 */
  int64_t n;           /* its part number; the next one's when fd < 0 */
  size_t written;
  pending_t pending[MAX_PENDING];
  int npending;
  char *line;          /* JSON scratch */
  size_t len, cap;
} jsonl_t;

static void jsonl_close(td_ctx_t *ctx, void *state) {
  jsonl_t *s = state;
  if (!s) return;
  if (s->fd >= 0) close(s->fd);
  free(s->dir);
  free(s->prefix);
  free(s->line);
  free(s);
}

static int jsonl_open(td_ctx_t *ctx, const char *cfg, size_t len, void **state) {
  jsonl_t *s = calloc(1, sizeof *s);
  if (!s) return T->error(ctx, TD_ENOMEM, "out of memory");
  *state = s;
  s->fd = -1;
  s->subtask = T->info(ctx)->subtask;
  int rc = cfg_strdup(ctx, cfg, len, "dir", &s->dir);
  if (rc == 0) rc = cfg_strdup(ctx, cfg, len, "prefix", &s->prefix);
  if (rc) return rc;
  if (!s->dir) return T->error(ctx, TD_EINVAL, "config needs dir (the output directory)");
  if (!s->prefix) {
    const char *job = T->info(ctx)->job;
    s->prefix = malloc(strlen(job) + 6);
    if (!s->prefix) return T->error(ctx, TD_ENOMEM, "out of memory");
    sprintf(s->prefix, "part-%s", job);
  }
  if (mkdir(s->dir, 0777) != 0 && errno != EEXIST)
    return T->error(ctx, -errno, "cannot create '%s': %s", s->dir, strerror(errno));
  return 0;
}

/* path of part n in state: ".P-S-N.inprogress", ".P-S-N.pending", "P-S-N.jsonl" */
enum { INPROGRESS, PENDING, COMMITTED };

static void part_path(const jsonl_t *s, int64_t n, int kind, char *buf, size_t len) {
  static const char *const fmt[] = {"%s/.%s-%d-%lld.inprogress", "%s/.%s-%d-%lld.pending",
                                    "%s/%s-%d-%lld.jsonl"};
  snprintf(buf, len, fmt[kind], s->dir, s->prefix, s->subtask, (long long)n);
}

static int sync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = fsync(fd) == 0 ? 0 : -errno;
  close(fd);
  return rc;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* Remove this subtask's in-progress and pending parts from n on, and its
 * committed ones from `taken` on (a restore takes back what a newer run
 * committed: the replay writes them again). */
static void remove_parts(jsonl_t *s, int64_t from, int64_t taken) {
  char path[4096];
  for (int64_t n = from < taken ? from : taken, misses = 0; misses < 1000; n++) {
    int any = 0;
    for (int k = INPROGRESS; k <= COMMITTED; k++) {
      if (k == COMMITTED && n < taken) continue;
      if (k != COMMITTED && n < from) continue;
      part_path(s, n, k, path, sizeof path);
      if (unlink(path) == 0) any = 1;
    }
    misses = any ? 0 : misses + 1;
  }
}

/* A fresh start: committed output of this subtask is refused; hidden
 * leftovers of a failed attempt are removed. */
static int recover_fresh(td_ctx_t *ctx, jsonl_t *s) {
  s->recovered = 1;
  char path[4096];
  part_path(s, 0, COMMITTED, path, sizeof path);
  if (exists(path))
    return T->error(ctx, -EEXIST, "'%s' already holds committed output (%s): resume the run "
                                  "that wrote it, or remove it", s->dir, path);
  remove_parts(s, 0, INT64_MAX);
  return 0;
}

static int commit_upto(td_ctx_t *ctx, jsonl_t *s, int64_t id) {
  int k = 0, done = 0;
  for (int i = 0; i < s->npending; i++) {
    pending_t p = s->pending[i];
    if (p.checkpoint > id) {
      s->pending[k++] = p;
      continue;
    }
    char from[4096], to[4096];
    part_path(s, p.n, PENDING, from, sizeof from);
    part_path(s, p.n, COMMITTED, to, sizeof to);
    if (rename(from, to) != 0 && !(errno == ENOENT && exists(to)))
      return T->error(ctx, -errno, "cannot commit '%s': %s", from, strerror(errno));
    done = 1;
  }
  s->npending = k;
  if (done && sync_dir(s->dir) != 0) return T->error(ctx, TD_EIO, "cannot sync '%s'", s->dir);
  return 0;
}

static int json_reserve(jsonl_t *s, size_t extra) {
  if (s->cap - s->len >= extra) return 0;
  size_t cap = s->cap ? s->cap : 4096;
  while (cap - s->len < extra) cap *= 2;
  char *b = realloc(s->line, cap);
  if (!b) return TD_ENOMEM;
  s->line = b;
  s->cap = cap;
  return 0;
}

static int json_str(jsonl_t *s, const char *p, size_t n) {
  if (json_reserve(s, 6 * n + 2)) return TD_ENOMEM;
  char *o = s->line + s->len;
  *o++ = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '"' || c == '\\') {
      *o++ = '\\';
      *o++ = (char)c;
    } else if (c < 0x20) {
      o += sprintf(o, "\\u%04x", c);
    } else {
      *o++ = (char)c;
    }
  }
  *o++ = '"';
  s->len = (size_t)(o - s->line);
  return 0;
}

/* One MessagePack value at *p as JSON (map keys as strings). */
static int json_value(jsonl_t *s, const char **p, const char *end, int depth) {
  td_mp_item_t it;
  if (depth > 64 || td_mp_read(p, end, &it) != 0) return TD_ECORRUPT;
  if (json_reserve(s, 64)) return TD_ENOMEM;
  char *o = s->line + s->len;
  switch (it.type) {
  case TD_MP_NIL: s->len += (size_t)sprintf(o, "null"); return 0;
  case TD_MP_BOOL: s->len += (size_t)sprintf(o, it.v.b ? "true" : "false"); return 0;
  case TD_MP_INT: s->len += (size_t)sprintf(o, "%lld", (long long)it.v.i); return 0;
  case TD_MP_FLOAT:
    s->len += (size_t)(it.v.f == it.v.f && it.v.f - it.v.f == 0 ? sprintf(o, "%.17g", it.v.f)
                                                                : sprintf(o, "null"));
    return 0;
  case TD_MP_STR: return json_str(s, it.v.s.p, it.v.s.len);
  case TD_MP_ARRAY:
  case TD_MP_MAP: {
    int map = it.type == TD_MP_MAP;
    s->line[s->len++] = map ? '{' : '[';
    for (uint32_t i = 0; i < it.v.n; i++) {
      if (i && json_reserve(s, 1) == 0) s->line[s->len++] = ',';
      if (map) {
        const char *k = *p;
        td_mp_item_t key;
        if (td_mp_read(&k, end, &key) == 0 && key.type == TD_MP_STR) {
          *p = k;
          if (json_str(s, key.v.s.p, key.v.s.len)) return TD_ENOMEM;
        } else { /* another key: its JSON text as a string */
          size_t at = s->len;
          int rc = json_value(s, p, end, depth + 1);
          if (rc) return rc;
          char tmp[256];
          size_t n = s->len - at < sizeof tmp ? s->len - at : sizeof tmp;
          memcpy(tmp, s->line + at, n);
          s->len = at;
          if (json_str(s, tmp, n)) return TD_ENOMEM;
        }
        if (json_reserve(s, 1)) return TD_ENOMEM;
        s->line[s->len++] = ':';
      }
      int rc = json_value(s, p, end, depth + 1);
      if (rc) return rc;
    }
    if (json_reserve(s, 1)) return TD_ENOMEM;
    s->line[s->len++] = map ? '}' : ']';
    return 0;
  }
  default: return TD_ECORRUPT;
  }
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -errno;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int jsonl_write(td_ctx_t *ctx, void *state, const td_batch_t *in) {
  jsonl_t *s = state;
  int rc = s->recovered ? 0 : recover_fresh(ctx, s);
  if (rc) return rc;
  if (s->fd < 0) {
    char path[4096];
    part_path(s, s->n, INPROGRESS, path, sizeof path);
    s->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (s->fd < 0) return T->error(ctx, -errno, "cannot create '%s': %s", path, strerror(errno));
    s->written = 0;
  }
  s->len = 0;
  for (int i = 0; i < in->n; i++) {
    const char *p = in->data + in->off[i];
    rc = json_value(s, &p, in->data + in->stop[i], 0);
    if (rc) return T->error(ctx, rc, "cannot write a record as JSON: %s", T->strerror(rc));
    if (json_reserve(s, 1)) return T->error(ctx, TD_ENOMEM, "out of memory");
    s->line[s->len++] = '\n';
  }
  rc = write_all(s->fd, s->line, s->len);
  if (rc) return T->error(ctx, rc, "cannot write to '%s': %s", s->dir, strerror(-rc));
  s->written += s->len;
  return 0;
}

static int jsonl_pre_commit(td_ctx_t *ctx, void *state, int64_t checkpoint) {
  jsonl_t *s = state;
  int rc = s->recovered ? 0 : recover_fresh(ctx, s);
  if (rc || s->fd < 0) return rc;
  char from[4096], to[4096];
  part_path(s, s->n, INPROGRESS, from, sizeof from);
  part_path(s, s->n, PENDING, to, sizeof to);
  if (fsync(s->fd) != 0) return T->error(ctx, -errno, "cannot sync '%s': %s", from, strerror(errno));
  close(s->fd);
  s->fd = -1;
  if (s->npending == MAX_PENDING)
    return T->error(ctx, TD_EINVAL, "more than %d checkpoints pending", MAX_PENDING);
  if (rename(from, to) != 0)
    return T->error(ctx, -errno, "cannot rename '%s': %s", from, strerror(errno));
  s->pending[s->npending].checkpoint = checkpoint;
  s->pending[s->npending++].n = s->n++;
  return 0;
}

static int jsonl_commit(td_ctx_t *ctx, void *state, int64_t checkpoint) {
  jsonl_t *s = state;
  int rc = s->recovered ? 0 : recover_fresh(ctx, s);
  return rc ? rc : commit_upto(ctx, s, checkpoint);
}

/* [next part number, checkpoint, n, checkpoint, n, ...]: no allocation
 * (the snapshot child) */
static int jsonl_snapshot(td_ctx_t *ctx, void *state, td_buf_t *out) {
  jsonl_t *s = state;
  int rc = td_mp_put_array(out, 1 + 2 * (uint32_t)s->npending);
  if (rc == 0) rc = td_mp_put_int(out, s->n);
  for (int i = 0; rc == 0 && i < s->npending; i++) {
    rc = td_mp_put_int(out, s->pending[i].checkpoint);
    if (rc == 0) rc = td_mp_put_int(out, s->pending[i].n);
  }
  return rc;
}

/* Recovery: commit what the checkpoint had pending, remove what was
 * written after it, and take back what a newer checkpoint committed. */
static int jsonl_restore(td_ctx_t *ctx, void *state, const char *data, size_t len) {
  jsonl_t *s = state;
  const char *p = data, *end = data + len;
  td_mp_item_t it, x;
  if (td_mp_read(&p, end, &it) != 0 || it.type != TD_MP_ARRAY || it.v.n % 2 != 1 ||
      it.v.n / 2 > MAX_PENDING || td_mp_read(&p, end, &x) != 0 || x.type != TD_MP_INT)
    return T->error(ctx, TD_ECORRUPT, "bad sink state in the snapshot");
  s->n = x.v.i;
  s->npending = (int)(it.v.n / 2);
  for (int i = 0; i < s->npending; i++) {
    td_mp_item_t c, n;
    if (td_mp_read(&p, end, &c) != 0 || td_mp_read(&p, end, &n) != 0 || c.type != TD_MP_INT ||
        n.type != TD_MP_INT)
      return T->error(ctx, TD_ECORRUPT, "bad sink state in the snapshot");
    s->pending[i].checkpoint = c.v.i;
    s->pending[i].n = n.v.i;
  }
  s->recovered = 1;
  int rc = commit_upto(ctx, s, INT64_MAX);
  if (rc) return rc;
  remove_parts(s, s->n, s->n);
  return 0;
}

/* ---- registration ----------------------------------------------------------- */

static int init(td_module_t *m, const td_api_t *api) {
  T = api;
  const td_op_t ops[] = {
      {.size = sizeof(td_op_t), .kind = TD_OP_SOURCE, .name = "lines", .open = lines_open,
       .close = lines_close, .read = lines_read, .snapshot = lines_snapshot,
       .restore = lines_restore},
      {.size = sizeof(td_op_t), .kind = TD_OP_SOURCE, .name = "seq", .open = seq_open,
       .close = free_state, .read = seq_read, .snapshot = seq_snapshot, .restore = seq_restore},
      {.size = sizeof(td_op_t), .kind = TD_OP_MAP, .name = "csv", .open = csv_open,
       .close = csv_close, .process = csv_process},
      {.size = sizeof(td_op_t), .kind = TD_OP_FILTER, .name = "where", .open = where_open,
       .close = where_close, .filter = where_filter},
      {.size = sizeof(td_op_t), .kind = TD_OP_MAP, .name = "affine", .open = affine_open,
       .close = free_state, .process = affine_process},
      {.size = sizeof(td_op_t), .kind = TD_OP_FILTER, .name = "modulo", .open = modulo_open,
       .close = free_state, .filter = modulo_filter},
      {.size = sizeof(td_op_t), .kind = TD_OP_FLAT_MAP, .name = "words", .max_fanout = 4096,
       .process = words_process},
      {.size = sizeof(td_op_t), .kind = TD_OP_PROCESS, .name = "window_count", .max_fanout = 1,
       .open = wcount_open, .close = wcount_close, .on_record = wcount_record,
       .on_timer = wcount_timer},
      {.size = sizeof(td_op_t), .kind = TD_OP_SINK, .name = "jsonl", .open = jsonl_open,
       .close = jsonl_close, .write = jsonl_write, .pre_commit = jsonl_pre_commit,
       .commit = jsonl_commit, .snapshot = jsonl_snapshot, .restore = jsonl_restore},
  };
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    int rc = api->register_op(m, &ops[i]);
    if (rc) return rc;
  }
  return 0;
}

TIDE_MODULE("streamkit", "1.0", init);
