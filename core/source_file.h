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
 *
 * Readers are replayable: td_reader_position() tells where the records not
 * yet returned begin, and td_reader_seek() makes a freshly opened reader
 * continue from there, so a source can store its position in a checkpoint
 * and resume after a restore without losing or repeating a record.
 */
#ifndef TD_SOURCE_FILE_H
#define TD_SOURCE_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "luacompat.h"

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
  int skip_errors;    /* 1: on_error = "skip": count and skip bad rows
                         (td_reader_read tells how) */
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
 *
 * Bad rows under skip_errors are counted (td_reader_skipped), the first
 * one's message kept (td_reader_first_skipped), and reading goes on after
 * the row. A row with a quoting error ends early: a quoted field that runs
 * to the end of the input ("PATH:LINE: unterminated quoted field (opened
 * at line Q, runs to the end of the file)") or is followed by something
 * other than a delimiter or line end most likely began with a stray quote,
 * so the bad row ends at the end of line Q, where that field's quote
 * opened, and the lines after it are read as rows again (rather than
 * swallowed as the rest of one field). Without skip_errors the same row
 * fails the read.
 */
int td_reader_read(td_reader_t *r, lua_State *L, int tidx, int max);

/* td_reader_error - the last error message of this reader ("" if none). */
const char *td_reader_error(const td_reader_t *r);

/* td_reader_whole - 1 when the input is not split (CSV, gzip, not a
 * regular file): split 0 reads all of it and the others nothing; 0 when
 * every split reads its byte range. */
int td_reader_whole(const td_reader_t *r);

/* td_reader_skipped - rows skipped so far under skip_errors: those this
 * reader skipped, plus, after td_reader_seek, the count stored in the
 * position (the rows skipped before it). Each bad row of the input is
 * counted once however often the reader is restored. */
uint64_t td_reader_skipped(const td_reader_t *r);

/*
 * td_reader_first_skipped - the message of the first row this reader
 * skipped under skip_errors, "PATH:LINE: reason" as td_reader_error gives
 * for a failing row (LINE is where the row starts), or "" when it skipped
 * none. A reader restored by td_reader_seek starts with "": the rows
 * skipped before the position are in td_reader_skipped's count, but a
 * position holds no message, so a caller that reports them keeps the first
 * message next to the position it stores.
 */
const char *td_reader_first_skipped(const td_reader_t *r);

/* Reader kinds, as recorded in a position. */
enum { TD_READER_TEXT = 1, TD_READER_CSV = 2 };

/*
 * td_reader_pos_t - a replayable reader position: the point just after the
 * last record td_reader_read returned, where the records not yet returned
 * begin. Every field is a fixed-width integer, so a checkpoint stores the
 * struct field by field and loads it back as it was; a caller never needs
 * to interpret the fields, only to keep all of them.
 *
 *   offset    byte offset, in the decompressed stream (so for a .gz file
 *             not an offset in the file on disk), of the first byte of the
 *             next record: the start of a line, or the end of the input
 *             once everything was returned. Blank lines (CSV) and rows
 *             skipped under skip_errors before that record may or may not
 *             lie behind it; reading from here skips them the same way.
 *             After a read that failed on a malformed CSV row (TD_EPARSE),
 *             the position is that row's start: a reader restored there
 *             fails on the same row with the same message.
 *   line      the 1-based physical line number where that record starts,
 *             so messages naming lines ("PATH:LINE: ...") stay right after
 *             a restore; 0 when unknown, which is the case only for a text
 *             split that does not start at offset 0 (knowing its line
 *             numbers would mean reading the file up to the split).
 *   skipped   CSV: rows skipped so far under skip_errors; a restored
 *             reader's td_reader_skipped() continues from it. 0 for text.
 *   ncols     CSV: the column count the rows are checked against (from the
 *             header or the names; without either, fixed by the first row,
 *             so a restored reader must know it; 0 before that row). 0 for
 *             text. The header itself is not stored: it is read again at
 *             open.
 *   split, n_splits
 *             the split the position belongs to; it is only valid for a
 *             reader of that same split.
 *   kind      TD_READER_TEXT or TD_READER_CSV.
 *   reserved  0.
 */
typedef struct td_reader_pos {
  uint64_t offset;
  uint64_t line;
  uint64_t skipped;
  uint64_t ncols;
  int32_t split;
  int32_t n_splits;
  int32_t kind;
  int32_t reserved;
} td_reader_pos_t;

/*
 * td_reader_position - the reader's current position (see td_reader_pos_t)
 * into *pos. It may be taken at any time between reads: before the first
 * read (the start of the split, or of the rows after the CSV header), after
 * any batch (even one that ended in the middle of the reader's buffer),
 * after the end (a reader restored there returns 0), and after an error.
 * Returns 0, TD_EINVAL for NULL arguments, or the reader's error code after
 * a failed td_reader_seek (the reader then has no position).
 */
int td_reader_position(const td_reader_t *r, td_reader_pos_t *pos);

/*
 * td_reader_progress - how far the reader is through its share of the
 * file, in bytes on disk: *total is its split's length (the whole file for
 * a reader that reads it whole, e.g. CSV or gzip; 0 for an empty split or
 * an input that is not a regular file), *done the bytes of it consumed so
 * far (gzip: the compressed bytes zlib read; *total once at the end). For
 * the progress line of `tide run` (issue 13).
 */
void td_reader_progress(const td_reader_t *r, uint64_t *done, uint64_t *total);

/*
 * td_reader_seek - continue a freshly opened reader from *pos, a position
 * taken by td_reader_position from a reader opened over the same file with
 * the same split and the same options (the file unchanged). Must come
 * before any td_reader_read, and at most once. After it, td_reader_read
 * returns exactly the records the original reader had not returned yet,
 * with the same line numbers in its messages, and td_reader_skipped counts
 * on from pos->skipped.
 *
 * Cost: for a plain file, one seek (O(1)) and the read of the block there,
 * which the next td_reader_read uses. For a .gz file, zlib's gzseek, which
 * decompresses the stream from the start (from the reader's current point
 * when the target lies ahead of it) up to the offset: O(offset). A
 * position at the reader's start (what a fresh reader reports) costs
 * nothing.
 *
 * The position is checked as far as that is cheap: TD_EINVAL with a
 * message (td_reader_error, naming the path) for a position of another
 * kind of reader or of another split, an offset outside this reader's
 * split (before its start, or, for a text split that ends before the end
 * of the file, past the end of its last line; any offset for a split that
 * reads nothing), before the first CSV row, beyond the end of the file, or
 * not at the start of a line. An offset just after a line break inside a
 * quoted CSV field cannot be told from a row start: positions must come
 * from td_reader_position. Read errors give -errno / TD_EIO / TD_ECORRUPT.
 * On any failure the reader keeps the error: every later read returns it;
 * free the reader.
 */
int td_reader_seek(td_reader_t *r, const td_reader_pos_t *pos);

/* td_reader_free - close the file and free the reader; NULL is a no-op. */
void td_reader_free(td_reader_t *r);

#endif
