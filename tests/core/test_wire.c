/*
 * test_wire.c - the cluster wire protocol's frames and handshake
 * (core/wire.h): expected bytes written out by hand from docs/PROTOCOL.md.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "tide.h"
#include "wire.h"

#include <sodium.h>

static const unsigned char CLUSTER[TD_WIRE_CLUSTER_ID] = "cluster-0123456";
static const unsigned char SECRET[] = "a secret of 32 bytes, more or le";

/* The header's bytes: big-endian length, type, flags, zero, channel, seq. */
TD_TEST(test_wire_frame_header_bytes) {
  unsigned char h[TD_WIRE_HEADER];
  td_wire_frame_header(h, TD_WIRE_DATA, TD_WIRE_F_PRIORITY, 0x01020304u, 0x05060708090a0b0cull, 0x11223344u);
  const unsigned char want[TD_WIRE_HEADER] = {0x11, 0x22, 0x33, 0x44, 3, 1, 0, 0, 1, 2, 3, 4,
                                              5, 6, 7, 8, 9, 10, 11, 12};
  TD_CHECK(memcmp(h, want, sizeof want) == 0);
}

/* A frame parses whole; every shorter prefix asks for more bytes. */
TD_TEST(test_wire_frame_round_trip_and_truncation) {
  unsigned char buf[TD_WIRE_HEADER + 5 + 3];
  td_wire_frame_header(buf, TD_WIRE_DATA, 0, 7, 1, 5);
  memcpy(buf + TD_WIRE_HEADER, "hello", 5);
  memcpy(buf + TD_WIRE_HEADER + 5, "xyz", 3); /* the next frame's start */
  td_wire_frame_t f;
  TD_CHECK_INT(td_wire_frame_parse(buf, sizeof buf, 1024, &f), TD_WIRE_HEADER + 5);
  TD_CHECK_INT(f.type, TD_WIRE_DATA);
  TD_CHECK_INT(f.channel, 7);
  TD_CHECK_INT(f.seq, 1);
  TD_CHECK_INT(f.length, 5);
  TD_CHECK(memcmp(f.payload, "hello", 5) == 0);
  for (size_t n = 0; n < TD_WIRE_HEADER + 5; n++) TD_CHECK_INT(td_wire_frame_parse(buf, n, 1024, &f), 0);
}

/* An oversized frame is refused from its header alone; a bad type, bad
 * flags or reserved bits are malformed. */
TD_TEST(test_wire_frame_refusals) {
  unsigned char h[TD_WIRE_HEADER];
  td_wire_frame_t f;
  td_wire_frame_header(h, TD_WIRE_DATA, 0, 1, 1, 1025);
  TD_CHECK_INT(td_wire_frame_parse(h, sizeof h, 1024, &f), -EMSGSIZE);
  td_wire_frame_header(h, TD_WIRE_DATA, 0, 1, 1, 0xffffffffu);
  TD_CHECK_INT(td_wire_frame_parse(h, sizeof h, TD_WIRE_MAX_FRAME_DEFAULT, &f), -EMSGSIZE);
  td_wire_frame_header(h, 0, 0, 1, 1, 0);
  TD_CHECK_INT(td_wire_frame_parse(h, sizeof h, 1024, &f), TD_ECORRUPT);
  td_wire_frame_header(h, TD_WIRE_TYPE_MAX + 1, 0, 1, 1, 0);
  TD_CHECK_INT(td_wire_frame_parse(h, sizeof h, 1024, &f), TD_ECORRUPT);
  td_wire_frame_header(h, TD_WIRE_PING, 0x80, 1, 1, 0);
  TD_CHECK_INT(td_wire_frame_parse(h, sizeof h, 1024, &f), TD_ECORRUPT);
  td_wire_frame_header(h, TD_WIRE_PING, 0, 1, 1, 0);
  h[7] = 1; /* reserved */
  TD_CHECK_INT(td_wire_frame_parse(h, sizeof h, 1024, &f), TD_ECORRUPT);
  h[7] = 0;
  TD_CHECK_INT(td_wire_frame_parse(h, sizeof h, 1024, &f), TD_WIRE_HEADER);
}

/* Random bytes never crash the parser, never read past len, and whatever
 * parses has a size that fits in them. */
TD_TEST(test_wire_frame_random_bytes) {
  srand(12345);
  unsigned char buf[64];
  for (int i = 0; i < 200000; i++) {
    size_t n = (size_t)(rand() % (int)sizeof buf);
    for (size_t j = 0; j < n; j++) buf[j] = (unsigned char)rand();
    if (n > 4 && rand() % 2) buf[0] = buf[1] = buf[2] = 0, buf[3] = (unsigned char)(rand() % 48);
    if (n > 5 && rand() % 2) buf[4] = (unsigned char)(1 + rand() % TD_WIRE_TYPE_MAX), buf[5] = 0;
    if (n > 7 && rand() % 2) buf[6] = buf[7] = 0;
    td_wire_frame_t f;
    long r = td_wire_frame_parse(buf, n, 32, &f);
    TD_CHECK(r == 0 || r == TD_ECORRUPT || r == -EMSGSIZE || (r >= TD_WIRE_HEADER && (size_t)r <= n));
  }
}

/* A gap or a repeat fails the channel. */
TD_TEST(test_wire_sequence_numbers) {
  uint64_t next = 1;
  TD_CHECK_INT(td_wire_seq_check(&next, 1), 0);
  TD_CHECK_INT(td_wire_seq_check(&next, 2), 0);
  TD_CHECK_INT(td_wire_seq_check(&next, 2), TD_ECORRUPT); /* repeated */
  TD_CHECK_INT(td_wire_seq_check(&next, 4), TD_ECORRUPT); /* 3 lost */
  TD_CHECK_INT(next, 3);
  TD_CHECK_INT(td_wire_seq_check(&next, 3), 0);
}

/* Hellos round-trip; versions are negotiated to the highest both speak. */
TD_TEST(test_wire_hello_and_versions) {
  td_wire_hello_t a, b, d;
  TD_CHECK_INT(td_wire_hello_new(&a, CLUSTER), 0);
  TD_CHECK_INT(td_wire_hello_new(&b, CLUSTER), 0);
  TD_CHECK(memcmp(a.nonce, b.nonce, TD_WIRE_NONCE) != 0); /* fresh */
  unsigned char buf[TD_WIRE_HELLO];
  td_wire_hello_encode(&a, buf);
  TD_CHECK(memcmp(buf, "TIDE\0\1\0\1", 8) == 0);
  TD_CHECK_INT(td_wire_hello_decode(buf, sizeof buf, &d), 0);
  TD_CHECK_INT(d.version_min, a.version_min);
  TD_CHECK_INT(d.version_max, a.version_max);
  TD_CHECK(memcmp(d.cluster_id, CLUSTER, TD_WIRE_CLUSTER_ID) == 0);
  TD_CHECK(memcmp(d.nonce, a.nonce, TD_WIRE_NONCE) == 0);
  TD_CHECK_INT(td_wire_hello_decode(buf, sizeof buf - 1, &d), TD_ECORRUPT);
  buf[0] = 'X';
  TD_CHECK_INT(td_wire_hello_decode(buf, sizeof buf, &d), TD_ECORRUPT);
  TD_CHECK_INT(td_wire_negotiate(&a, &b), 1);
  b.version_min = 2, b.version_max = 5; /* a newer peer */
  TD_CHECK_INT(td_wire_negotiate(&a, &b), -EPROTO);
  a.version_max = 3;
  TD_CHECK_INT(td_wire_negotiate(&a, &b), 3);
  b.cluster_id[0] ^= 1;
  TD_CHECK_INT(td_wire_negotiate(&a, &b), -EACCES);
}

/* Mutual authentication: the right secret verifies; a wrong secret, a MAC
 * reflected back to its sender, a MAC from another connection (other
 * nonces) or of another version does not. */
TD_TEST(test_wire_auth) {
  td_wire_hello_t c, s, s2;
  td_wire_hello_new(&c, CLUSTER);
  td_wire_hello_new(&s, CLUSTER);
  td_wire_hello_new(&s2, CLUSTER);
  size_t k = sizeof SECRET - 1;
  unsigned char mc[TD_WIRE_MAC], ms[TD_WIRE_MAC];
  TD_CHECK_INT(td_wire_auth(SECRET, k, 0, 1, &c, &s, mc), 0); /* the client's */
  TD_CHECK_INT(td_wire_auth(SECRET, k, 1, 1, &s, &c, ms), 0); /* the server's */
  TD_CHECK_INT(td_wire_auth_verify(SECRET, k, 0, 1, &c, &s, mc, sizeof mc), 0);
  TD_CHECK_INT(td_wire_auth_verify(SECRET, k, 1, 1, &s, &c, ms, sizeof ms), 0);
  unsigned char other[sizeof SECRET];
  memcpy(other, SECRET, sizeof SECRET);
  other[3] ^= 1;
  TD_CHECK_INT(td_wire_auth_verify(other, k, 0, 1, &c, &s, mc, sizeof mc), -EACCES);
  /* reflection: the server's own MAC sent back as the client's */
  TD_CHECK_INT(td_wire_auth_verify(SECRET, k, 0, 1, &c, &s, ms, sizeof ms), -EACCES);
  /* replay into a connection with another server nonce */
  TD_CHECK_INT(td_wire_auth_verify(SECRET, k, 0, 1, &c, &s2, mc, sizeof mc), -EACCES);
  TD_CHECK_INT(td_wire_auth_verify(SECRET, k, 0, 2, &c, &s, mc, sizeof mc), -EACCES);
  TD_CHECK_INT(td_wire_auth_verify(SECRET, k, 0, 1, &c, &s, mc, sizeof mc - 1), -EACCES);
  /* HMAC-SHA-256 itself, against RFC 4231's test case 2 */
  unsigned char rfc[32];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, (const unsigned char *)"Jefe", 4);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)"what do ya want for nothing?", 28);
  crypto_auth_hmacsha256_final(&st, rfc);
  const unsigned char want[32] = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24,
                                  0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27,
                                  0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
  TD_CHECK(memcmp(rfc, want, 32) == 0);
  TD_CHECK_INT(td_wire_auth(SECRET, 15, 0, 1, &c, &s, mc), TD_EINVAL); /* short secret */
}

TD_TEST_MAIN(test_wire_frame_header_bytes, test_wire_frame_round_trip_and_truncation,
             test_wire_frame_refusals, test_wire_frame_random_bytes, test_wire_sequence_numbers,
             test_wire_hello_and_versions, test_wire_auth)
