/*
 * wire.c - the cluster wire protocol's frames and handshake (wire.h,
 * docs/PROTOCOL.md).
 */
#include "wire.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "tide.h"

static void put16(unsigned char *p, uint16_t v) {
  p[0] = (unsigned char)(v >> 8);
  p[1] = (unsigned char)v;
}
static uint16_t get16(const unsigned char *p) { return (uint16_t)(p[0] << 8 | p[1]); }

void td_wire_frame_header(unsigned char *out, uint8_t type, uint8_t flags, uint32_t channel,
                          uint64_t seq, uint32_t length) {
  td_wire_put32(out, length);
  out[4] = type;
  out[5] = flags;
  put16(out + 6, 0);
  td_wire_put32(out + 8, channel);
  td_wire_put64(out + 12, seq);
}

long td_wire_frame_parse(const unsigned char *p, size_t len, uint32_t max_frame, td_wire_frame_t *f) {
  if (len < TD_WIRE_HEADER) return 0;
  uint32_t n = td_wire_get32(p);
  if (p[4] < 1 || p[4] > TD_WIRE_TYPE_MAX || (p[5] & ~TD_WIRE_F_PRIORITY) || get16(p + 6))
    return TD_ECORRUPT;
  if (n > max_frame) return -EMSGSIZE;
  if (len - TD_WIRE_HEADER < n) return 0;
  f->length = n;
  f->type = p[4];
  f->flags = p[5];
  f->channel = td_wire_get32(p + 8);
  f->seq = td_wire_get64(p + 12);
  f->payload = p + TD_WIRE_HEADER;
  return (long)(TD_WIRE_HEADER + n);
}

int td_wire_seq_check(uint64_t *expected, uint64_t seq) {
  if (seq != *expected) return TD_ECORRUPT;
  (*expected)++;
  return 0;
}

int td_wire_hello_new(td_wire_hello_t *h, const unsigned char cluster_id[TD_WIRE_CLUSTER_ID]) {
  if (sodium_init() < 0) return TD_EINVAL;
  h->version_min = TD_WIRE_VERSION_MIN;
  h->version_max = TD_WIRE_VERSION_MAX;
  memcpy(h->cluster_id, cluster_id, TD_WIRE_CLUSTER_ID);
  randombytes_buf(h->nonce, TD_WIRE_NONCE);
  return 0;
}

void td_wire_hello_encode(const td_wire_hello_t *h, unsigned char out[TD_WIRE_HELLO]) {
  memcpy(out, TD_WIRE_MAGIC, 4);
  put16(out + 4, h->version_min);
  put16(out + 6, h->version_max);
  memcpy(out + 8, h->cluster_id, TD_WIRE_CLUSTER_ID);
  memcpy(out + 8 + TD_WIRE_CLUSTER_ID, h->nonce, TD_WIRE_NONCE);
}

int td_wire_hello_decode(const unsigned char *p, size_t len, td_wire_hello_t *h) {
  if (len != TD_WIRE_HELLO || memcmp(p, TD_WIRE_MAGIC, 4) != 0) return TD_ECORRUPT;
  h->version_min = get16(p + 4);
  h->version_max = get16(p + 6);
  if (h->version_min > h->version_max) return TD_ECORRUPT;
  memcpy(h->cluster_id, p + 8, TD_WIRE_CLUSTER_ID);
  memcpy(h->nonce, p + 8 + TD_WIRE_CLUSTER_ID, TD_WIRE_NONCE);
  return 0;
}

int td_wire_negotiate(const td_wire_hello_t *mine, const td_wire_hello_t *theirs) {
  if (sodium_memcmp(mine->cluster_id, theirs->cluster_id, TD_WIRE_CLUSTER_ID) != 0) return -EACCES;
  int hi = mine->version_max < theirs->version_max ? mine->version_max : theirs->version_max;
  int lo = mine->version_min > theirs->version_min ? mine->version_min : theirs->version_min;
  return hi >= lo ? hi : -EPROTO;
}

int td_wire_auth(const unsigned char *secret, size_t secret_len, int role, int version,
                 const td_wire_hello_t *sender, const td_wire_hello_t *receiver,
                 unsigned char mac[TD_WIRE_MAC]) {
  if (secret_len < 16 || sodium_init() < 0) return TD_EINVAL;
  unsigned char head[16] = "tide-auth-v1";
  head[12] = (unsigned char)(role ? 1 : 0);
  put16(head + 13, (uint16_t)version);
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, secret, secret_len);
  crypto_auth_hmacsha256_update(&st, head, sizeof head);
  crypto_auth_hmacsha256_update(&st, sender->cluster_id, TD_WIRE_CLUSTER_ID);
  crypto_auth_hmacsha256_update(&st, sender->nonce, TD_WIRE_NONCE);
  crypto_auth_hmacsha256_update(&st, receiver->nonce, TD_WIRE_NONCE);
  crypto_auth_hmacsha256_final(&st, mac);
  sodium_memzero(&st, sizeof st);
  return 0;
}

int td_wire_auth_verify(const unsigned char *secret, size_t secret_len, int role, int version,
                        const td_wire_hello_t *sender, const td_wire_hello_t *receiver,
                        const unsigned char *mac, size_t mac_len) {
  unsigned char want[TD_WIRE_MAC];
  int rc = td_wire_auth(secret, secret_len, role, version, sender, receiver, want);
  if (rc) return rc;
  if (mac_len != TD_WIRE_MAC) return -EACCES;
  rc = crypto_verify_32(want, mac) == 0 ? 0 : -EACCES;
  sodium_memzero(want, sizeof want);
  return rc;
}
