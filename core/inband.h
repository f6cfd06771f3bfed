/*
 * inband.h - the in-band entries of an exchange buffer.
 *
 * Besides plain MessagePack values (records without a timestamp), an
 * exchange buffer holds entries that are MessagePack ext values, which the
 * record codec never produces:
 *   d7 01 <int64 BE>   the timestamp of the record that follows
 *   d7 02 <int64 BE>   a watermark
 *   d4 03 <0|1>        watermark status: 1 idle, 0 active
 *   d4 04 00           end of this channel (sent before END)
 *   d7 05 <int64 BE>   checkpoint barrier n (in unaligned mode it travels as
 *                      a priority event instead: channel.h)
 *   d7 06 <int64 BE>   cancel marker of checkpoint n (a subtask declined it;
 *                      Flink's CancelCheckpointMarker)
 *   d7 07 <int64 BE>   aligned barrier n: a savepoint's, in band and aligned
 *                      whatever the job's checkpointing mode (unaligned, at
 *                      least once), as Flink takes savepoints aligned
 */
#ifndef TD_INBAND_H
#define TD_INBAND_H

#include <stdint.h>

enum {
  TD_EXT_TIMESTAMP = 1,
  TD_EXT_WATERMARK = 2,
  TD_EXT_STATUS = 3,
  TD_EXT_END = 4,
  TD_EXT_BARRIER = 5,
  TD_EXT_CANCEL = 6,
  TD_EXT_ALIGNED_BARRIER = 7
};

/* Sizes of the fixed ext entries: d7 (fixext 8) and d4 (fixext 1). */
enum { TD_EXT8_SIZE = 10, TD_EXT1_SIZE = 3 };

static inline int64_t td_get_be64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return (int64_t)v;
}

static inline void td_put_be64(unsigned char *p, int64_t x) {
  uint64_t v = (uint64_t)x;
  for (int i = 7; i >= 0; i--) {
    p[i] = (unsigned char)v;
    v >>= 8;
  }
}

/* td_ext8 - write the 10-byte entry d7 kind <v BE> into p. */
static inline void td_ext8(unsigned char *p, int kind, int64_t v) {
  p[0] = 0xd7;
  p[1] = (unsigned char)kind;
  td_put_be64(p + 2, v);
}

#endif
