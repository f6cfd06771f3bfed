/*
 * wire.h - the cluster wire protocol (docs/PROTOCOL.md): the frames that
 * carry every channel between two task managers (or a task manager and the
 * job manager) over one TCP connection, and the handshake that opens it
 * (protocol version negotiation and mutual authentication with the
 * cluster's secret). Pure functions over bytes: no sockets here (the
 * transport, net.c, reads and writes them); libsodium for randomness and
 * HMAC-SHA-256.
 *
 * A frame is a 20-byte header, big-endian, then its payload:
 *   u32 length (payload bytes, <= the connection's maximum frame size)
 *   u8  type (TD_WIRE_*), u8 flags, u16 reserved (0)
 *   u32 channel, u64 sequence number (per channel and direction, from 1)
 * A receiver fails the channel on a sequence gap (td_wire_seq_check) and
 * the connection on a malformed or oversized frame.
 */
#ifndef TD_WIRE_H
#define TD_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define TD_WIRE_HEADER 20                 /* bytes of a frame header */
#define TD_WIRE_MAX_FRAME_DEFAULT (1u << 20) /* payload bytes */
#define TD_WIRE_VERSION_MIN 1             /* protocol versions this build speaks */
#define TD_WIRE_VERSION_MAX 1
#define TD_WIRE_MAGIC "TIDE"
#define TD_WIRE_NONCE 32                  /* bytes */
#define TD_WIRE_CLUSTER_ID 16             /* bytes */
#define TD_WIRE_MAC 32                    /* bytes (HMAC-SHA-256) */
#define TD_WIRE_HELLO 56                  /* bytes of a hello message */

/* Big-endian integers of the protocol's fields (frames, hellos, credits,
 * the exchange's buffer headers). */
static inline void td_wire_put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (24 - 8 * i));
}
static inline void td_wire_put64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (56 - 8 * i));
}
static inline uint32_t td_wire_get32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t td_wire_get64(const unsigned char *p) {
  return (uint64_t)td_wire_get32(p) << 32 | td_wire_get32(p + 4);
}

/* Frame types. Data frames carry an exchange buffer (records and in-band
 * events, as the local exchange's); the others are the connection's and
 * the channels' control. */
enum {
  TD_WIRE_HELLO_T = 1, /* handshake: td_wire_hello_t */
  TD_WIRE_AUTH = 2,    /* handshake: the sender's MAC (td_wire_auth) */
  TD_WIRE_DATA = 3,    /* a buffer of a channel */
  TD_WIRE_CREDIT = 4,  /* credit for a channel: u32 buffers */
  TD_WIRE_CLOSE = 5,   /* the channel ends (end of partition sent) */
  TD_WIRE_PING = 6,    /* heartbeat */
  TD_WIRE_TYPE_MAX = 6
};

/* Frame flags. */
#define TD_WIRE_F_PRIORITY 0x01 /* overtakes queued data (unaligned barriers) */

typedef struct td_wire_frame {
  uint8_t type, flags;
  uint32_t channel;
  uint64_t seq;
  const unsigned char *payload; /* into the parsed bytes */
  uint32_t length;
} td_wire_frame_t;

/*
 * td_wire_frame_header - write the header of a frame (type, flags, channel,
 * seq, payload length in bytes) into out[0 .. TD_WIRE_HEADER).
 */
void td_wire_frame_header(unsigned char *out, uint8_t type, uint8_t flags, uint32_t channel,
                          uint64_t seq, uint32_t length);

/*
 * td_wire_frame_parse - parse the frame at the start of p[0 .. len), whose
 * payload may be at most max_frame bytes.
 * Returns the frame's size in bytes (header + payload) with *f filled (its
 * payload points into p), 0 when p holds only part of it (read more), or
 * TD_ECORRUPT for an unknown type or reserved bits set, -EMSGSIZE for a
 * payload longer than max_frame (known from the header alone: the
 * connection is closed before reading it).
 */
long td_wire_frame_parse(const unsigned char *p, size_t len, uint32_t max_frame, td_wire_frame_t *f);

/*
 * td_wire_seq_check - the sequence number check of one channel and
 * direction: *expected is the next number (start it at 1). Returns 0 and
 * advances *expected when seq is it, TD_ECORRUPT on a gap or a repeat
 * (the channel fails: a frame was lost, reordered or replayed).
 */
int td_wire_seq_check(uint64_t *expected, uint64_t seq);

/* A hello: what each side sends first (as a TD_WIRE_HELLO_T frame). */
typedef struct td_wire_hello {
  uint16_t version_min, version_max;                /* protocol versions spoken */
  unsigned char cluster_id[TD_WIRE_CLUSTER_ID];     /* the cluster's id */
  unsigned char nonce[TD_WIRE_NONCE];               /* fresh random bytes */
} td_wire_hello_t;

/*
 * td_wire_hello_new - a hello of this build (its version range) for
 * cluster_id with a fresh nonce (libsodium's randombytes). 0, or TD_EINVAL
 * when libsodium cannot be initialised.
 */
int td_wire_hello_new(td_wire_hello_t *h, const unsigned char cluster_id[TD_WIRE_CLUSTER_ID]);

/* td_wire_hello_encode / decode - a hello as the payload of a hello frame
 * (TD_WIRE_HELLO bytes: magic "TIDE", u16 min, u16 max, cluster id,
 * nonce). decode returns 0, or TD_ECORRUPT for a wrong length or magic. */
void td_wire_hello_encode(const td_wire_hello_t *h, unsigned char out[TD_WIRE_HELLO]);
int td_wire_hello_decode(const unsigned char *p, size_t len, td_wire_hello_t *h);

/*
 * td_wire_negotiate - the protocol version two hellos agree on: the highest
 * both speak. Returns it (> 0), -EPROTO when the ranges do not meet, or
 * -EACCES when the cluster ids differ (a peer of another cluster).
 */
int td_wire_negotiate(const td_wire_hello_t *mine, const td_wire_hello_t *theirs);

/*
 * td_wire_auth - the MAC one side sends to prove it holds the cluster's
 * secret: HMAC-SHA-256 keyed by the secret over a label, the role of the
 * sender (0: the side that connected, 1: the side that accepted: a MAC
 * reflected back to its sender does not verify), the agreed version, the
 * cluster id and both nonces (the sender's first), so that it is valid for
 * this connection only. secret: secret_len bytes (>= 16).
 * Returns 0, or TD_EINVAL for a short secret.
 */
int td_wire_auth(const unsigned char *secret, size_t secret_len, int role, int version,
                 const td_wire_hello_t *sender, const td_wire_hello_t *receiver,
                 unsigned char mac[TD_WIRE_MAC]);

/*
 * td_wire_auth_verify - check, in constant time, the MAC the peer sent
 * (its role, its hello as sender, ours as receiver). 0 when it is right,
 * -EACCES when not (a wrong secret, a reflected or replayed MAC), TD_EINVAL
 * for a short secret.
 */
int td_wire_auth_verify(const unsigned char *secret, size_t secret_len, int role, int version,
                        const td_wire_hello_t *sender, const td_wire_hello_t *receiver,
                        const unsigned char *mac, size_t mac_len);

#endif
