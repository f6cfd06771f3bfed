/*
 * fuzz_wire.c - libFuzzer target for the wire protocol's decoders
 * (core/wire.c: frames and hellos, docs/PROTOCOL.md).
 *
 * Property, for arbitrary bytes read as a stream of frames (maximum
 * payload 4096 bytes):
 *  - td_wire_frame_parse returns 0 (more bytes needed), TD_ECORRUPT or
 *    -EMSGSIZE (and the stream stops there), or the size of a frame whose
 *    header is 20 bytes, payload length at most the maximum, type a known
 *    one, flags known, payload inside the input;
 *  - the header written again from the parsed fields is the input's bytes;
 *  - a shorter prefix of a parsed frame asks for more bytes (0), and an
 *    oversized length is refused from the header alone;
 * and for the whole input read as a hello: it decodes only when it is 56
 * bytes starting with the magic with a version range not upside down, and
 * then encodes back to the same bytes. (This target found that hellos were
 * 58 bytes of which encoding wrote 56: two stack bytes on the wire.)
 */
#include <errno.h>
#include <string.h>

#include "error.h"
#include "fuzz.h"
#include "wire.h"

#define MAX_FRAME 4096u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t off = 0;
  for (;;) {
    td_wire_frame_t f;
    long used = td_wire_frame_parse(data + off, size - off, MAX_FRAME, &f);
    if (used == 0) {
      FUZZ_CHECK(size - off < TD_WIRE_HEADER ||
                     size - off < TD_WIRE_HEADER + (size_t)td_wire_get32(data + off),
                 "more bytes asked for a whole frame at %zu", off);
      break;
    }
    if (used < 0) {
      FUZZ_CHECK(used == TD_ECORRUPT || used == -EMSGSIZE, "error %ld", used);
      FUZZ_CHECK(size - off >= TD_WIRE_HEADER, "an error before a whole header");
      break;
    }
    FUZZ_CHECK((size_t)used == TD_WIRE_HEADER + (size_t)f.length, "size %ld, length %u", used,
               f.length);
    FUZZ_CHECK(f.length <= MAX_FRAME, "length %u over the maximum", f.length);
    FUZZ_CHECK(off + (size_t)used <= size, "a frame past the input");
    FUZZ_CHECK(f.type >= 1 && f.type <= TD_WIRE_TYPE_MAX, "type %u", f.type);
    FUZZ_CHECK((f.flags & ~TD_WIRE_F_PRIORITY) == 0, "flags %u", f.flags);
    FUZZ_CHECK(f.payload == data + off + TD_WIRE_HEADER, "the payload is not after the header");
    unsigned char h[TD_WIRE_HEADER];
    td_wire_frame_header(h, f.type, f.flags, f.channel, f.seq, f.length);
    FUZZ_CHECK(memcmp(h, data + off, TD_WIRE_HEADER) == 0, "the header does not round-trip");
    td_wire_frame_t g;
    FUZZ_CHECK(td_wire_frame_parse(data + off, (size_t)used - 1, MAX_FRAME, &g) == 0,
               "a frame less one byte parsed");
    FUZZ_CHECK(td_wire_frame_parse(data + off, TD_WIRE_HEADER - 1, MAX_FRAME, &g) == 0,
               "a partial header parsed");
    if (f.length > 0)
      FUZZ_CHECK(td_wire_frame_parse(data + off, (size_t)used, f.length - 1, &g) == -EMSGSIZE,
                 "a frame over a smaller maximum was not refused");
    off += (size_t)used;
  }
  td_wire_hello_t hello;
  int rc = td_wire_hello_decode(data, size, &hello);
  int valid = size == TD_WIRE_HELLO && memcmp(data, TD_WIRE_MAGIC, 4) == 0 &&
              (data[4] << 8 | data[5]) <= (data[6] << 8 | data[7]); /* min <= max */
  FUZZ_CHECK((rc == 0) == valid, "hello decode %d for %zu bytes", rc, size);
  if (rc == 0) {
    unsigned char again[TD_WIRE_HELLO];
    td_wire_hello_encode(&hello, again);
    FUZZ_CHECK(memcmp(again, data, TD_WIRE_HELLO) == 0, "the hello does not round-trip");
  }
  return 0;
}
