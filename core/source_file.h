/*
 * source_file.h - readers for the file sources read_text and read_csv.
 *
 * Both read plain files and gzip files (by the ".gz" extension, as Flink's
 * file source picks a decompressor by extension) through zlib. A plain text
 * file can be read as one split of several: byte range [start, end), where a
 * split that does not start at 0 skips the partial line it starts inside and
 * every split reads through the end of the line that straddles its end (as
 * Hadoop's and Flink's line-oriented splits do), so every line is read by
 * exactly one split. Gzip files and CSV files are not splittable (CSV fields
 * may hold line breaks).
 */
#ifndef TD_SOURCE_FILE_H
#define TD_SOURCE_FILE_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

typedef struct td_reader td_reader_t;

/* Column types for read_csv. */
typedef enum {
  TD_COL_STRING = 0, /* the field as is */
  TD_COL_INT,        /* decimal int64, optional sign; error otherwise */
  TD_COL_FLOAT,      /* strtod syntax; Lua float */
  TD_COL_NUMBER,     /* int if it parses as one, else float */
  TD_COL_BOOL        /* true/false (case-insensitive), 1/0 */
} td_col_type_t;

typedef struct td_csv_opts {
  char delimiter;     /* default ',' */
  int header;         /* 1: the first row names the columns (default) */
  int skip_errors;    /* 1: on_error = "skip": count and skip bad rows */
  /* column names when header == 0 (NULL: columns are numbered 1..n and
   * rows become Lua arrays); with a header, may be NULL */
  const char *const *names;
  size_t n_names;
  /* types by column name; columns not listed are TD_COL_STRING */
  const char *const *type_names;
  const td_col_type_t *types;
  size_t n_types;
} td_csv_opts_t;

/*
 * td_reader_open_text - open a line reader over `path`.
 * split / n_splits: this reader's split (0 <= split < n_splits); for a
 *   non-splittable file only split 0 reads anything, the others are empty.
 * Returns 0 and *out, or -errno (-ENOENT, -EACCES, -EISDIR...) with a
 * message (naming the path) retrievable by td_reader_error() is NOT
 * available since there is no reader: use the errbuf argument (may be NULL).
 */
int td_reader_open_text(td_reader_t **out, const char *path, int split,
                        int n_splits, char *errbuf, size_t errlen);

/*
 * td_reader_open_csv - open a CSV reader (RFC 4180: fields quoted with ",
 * "" for a quote inside quotes, quoted fields may hold delimiters and line
 * breaks, CRLF or LF line ends). Only split 0 reads rows. The header row is
 * read at open; a header naming a type for a column it does not have is an
 * error. Returns 0 or a negative code with a message in errbuf.
 */
int td_reader_open_csv(td_reader_t **out, const char *path,
                       const td_csv_opts_t *opts, int split, int n_splits,
                       char *errbuf, size_t errlen);

/*
 * td_reader_read - read up to `max` records into the Lua table at stack
 * index tidx, at positions 1..n; text lines become Lua strings (without the
 * line end, "\r\n" or "\n"), CSV rows become tables keyed by column name
 * (or arrays, without names), with typed values; an empty field of a
 * non-string column becomes nil.
 * Returns n (0 at end of input), or a negative code on error: TD_EPARSE for
 * a malformed row when errors are not skipped (message
 * "PATH:LINE: expected 8 fields, got 7" or "PATH:LINE: column
 * 'insertions': bad int 'x1'"), -errno / TD_EIO for read errors (message
 * names the path). The message is td_reader_error(). LINE is the 1-based
 * physical line number where the row starts.
 */
int td_reader_read(td_reader_t *r, lua_State *L, int tidx, int max);

/* td_reader_error - the last error message of this reader ("" if none). */
const char *td_reader_error(const td_reader_t *r);

/* td_reader_skipped - rows skipped so far under skip_errors. */
uint64_t td_reader_skipped(const td_reader_t *r);

/* td_reader_free - close the file and free the reader; NULL is a no-op. */
void td_reader_free(td_reader_t *r);

#endif
