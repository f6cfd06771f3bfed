/*
 * net.h - the cluster transport: TCP connections between Tide processes
 * that speak the wire protocol (wire.h, docs/PROTOCOL.md), on one libev
 * loop thread per endpoint (net.c is the only file that includes <ev.h>).
 *
 * One connection per pair of processes multiplexes every channel between
 * them. A connection opens with the handshake (hellos, version
 * negotiation, mutual HMAC authentication with the cluster's secret) and
 * is refused, with the reason logged and given to on_closed, when the peer
 * speaks no common version, belongs to another cluster, fails to
 * authenticate, sends anything before its authentication verified, or
 * sends a malformed, oversized or truncated frame.
 *
 * Flow control is credit-based per channel and direction, as Flink's
 * network stack: the receiver grants credits (td_net_grant, one per buffer
 * it can take), each DATA frame spends one, and the sender queues DATA of
 * a channel without credit, so that a slow consumer stalls its own channel
 * and no other. Frames of a channel leave in the order they were sent,
 * except priority frames (unaligned checkpoint barriers), which overtake
 * the channel's queued data and need no credit. Sequence numbers are given
 * as frames are written, so they stay consecutive; a receiver fails a
 * channel on a gap or a repeat (on_channel_failed).
 *
 * Threads: callbacks run on the loop thread, without the endpoint's lock
 * (a callback may call td_net_send and td_net_grant). td_net_send,
 * td_net_grant and td_net_peer_state may be called from any thread; the
 * rest from the thread that made the endpoint.
 */
#ifndef TD_NET_H
#define TD_NET_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

typedef struct td_net td_net_t;
typedef struct td_net_peer td_net_peer_t;

/* A connection's state (td_net_peer_state). */
typedef enum td_net_state {
  TD_NET_HANDSHAKE = 0, /* hellos and MACs under way */
  TD_NET_READY = 1,     /* authenticated: channels flow */
  TD_NET_CLOSED = 2     /* refused, failed, or closed by either side */
} td_net_state_t;

typedef struct td_net_config {
  unsigned char cluster_id[TD_WIRE_CLUSTER_ID];
  const unsigned char *secret; /* the cluster's secret (copied), >= 16 bytes */
  size_t secret_len;
  uint32_t max_frame;          /* payload bytes a frame may carry; 0: TD_WIRE_MAX_FRAME_DEFAULT */
  /* A connection whose sent data stays unacknowledged this long, or whose
   * idle peer stops answering TCP keepalive probes (first after
   * dead_peer_ms / 3, then every dead_peer_ms / 6), is closed: a peer
   * behind a link that stays down is found dead instead of after TCP's
   * retransmissions (about 15 minutes). 0: the kernel's defaults. */
  uint32_t dead_peer_ms;
  void *ud;                    /* passed to every callback */
  /* the handshake of p succeeded */
  void (*on_ready)(void *ud, td_net_peer_t *p);
  /* a DATA or CLOSE frame of a channel arrived (payload valid during the
   * call); flags: TD_WIRE_F_PRIORITY for an overtaking frame */
  void (*on_frame)(void *ud, td_net_peer_t *p, uint8_t type, uint8_t flags, uint32_t channel,
                   const unsigned char *payload, uint32_t len);
  /* a channel of p failed (a sequence gap or repeat: why names it); its
   * later frames are dropped */
  void (*on_channel_failed)(void *ud, td_net_peer_t *p, uint32_t channel, const char *why);
  /* p was refused or closed (why: the reason, also logged) */
  void (*on_closed)(void *ud, td_net_peer_t *p, const char *why);
  /* the receiver of channel on p granted `credits` more (may be NULL) */
  void (*on_credit)(void *ud, td_net_peer_t *p, uint32_t channel, uint32_t credits);
} td_net_config_t;

/* How td_net_send queues a frame. */
typedef enum td_net_mode {
  TD_NET_ORDERED = 0,  /* after the channel's queued frames; DATA spends a credit */
  TD_NET_OVERTAKE = 1, /* before them, with the priority flag, without credit */
  TD_NET_UNCOUNTED = 2 /* after them, without credit (an event the receiver
                          does not count against its buffers) */
} td_net_mode_t;

/*
 * td_net_new - an endpoint with its loop thread. Returns 0 and *out, or
 * TD_EINVAL (a secret under 16 bytes, no callbacks), TD_ENOMEM, -errno,
 * with a message in err.
 */
int td_net_new(td_net_t **out, const td_net_config_t *cfg, char *err, size_t errlen);

/*
 * td_net_listen - accept connections on addr:port (addr an IPv4 address,
 * NULL for 127.0.0.1: loopback unless another address is asked for; port
 * 0: a free one, written to *bound). Returns 0, or -errno with err.
 */
int td_net_listen(td_net_t *n, const char *addr, int port, int *bound, char *err, size_t errlen);

/*
 * td_net_connect - connect to addr:port (blocking until the TCP connection
 * is up; the handshake then runs on the loop: on_ready or on_closed tell
 * how it went). Returns 0 and *out (owned by the endpoint, valid until
 * td_net_free), or -errno with err.
 */
int td_net_connect(td_net_t *n, const char *addr, int port, td_net_peer_t **out, char *err,
                   size_t errlen);

/*
 * td_net_send - queue a frame of channel (>= 1) to p: type TD_WIRE_DATA
 * or TD_WIRE_CLOSE (after the channel's data, without credit), as mode
 * says (td_net_mode_t; a CLOSE is always ORDERED). A DATA frame sent
 * ORDERED spends a credit: it waits in the channel's queue for one.
 * payload: len bytes (copied), at most the maximum frame size. Frames
 * sent before the handshake completes wait for it. Returns 0, TD_EINVAL
 * (channel 0, another type or mode, too long), TD_ENOMEM, or TD_ECANCELED
 * when p is closed.
 */
int td_net_send(td_net_peer_t *p, uint32_t channel, uint8_t type, td_net_mode_t mode,
                const void *payload, uint32_t len);

/*
 * td_net_grant - as the receiver of channel on p, grant the sender
 * `credits` more DATA frames (a CREDIT frame). Returns 0, TD_ENOMEM, or
 * TD_ECANCELED when p is closed.
 */
int td_net_grant(td_net_peer_t *p, uint32_t channel, uint32_t credits);

/* td_net_close - close p with the reason why (logged, given to
 * on_closed). Only from the endpoint's own callbacks (its loop thread). */
void td_net_close(td_net_peer_t *p, const char *why);

/* td_net_shutdown - close p with the reason why, from any thread: the
 * loop closes it soon after (on_closed is called there). */
void td_net_shutdown(td_net_peer_t *p, const char *why);

/* td_net_peer_addr - p's address, "ip:port". */
const char *td_net_peer_addr(const td_net_peer_t *p);

/* td_net_peer_state - p's state now. */
td_net_state_t td_net_peer_state(td_net_peer_t *p);

/* td_net_peer_queued - DATA frames of channel on p waiting for credit
 * (for tests and metrics). */
int td_net_peer_queued(td_net_peer_t *p, uint32_t channel);

/* td_net_free - stop the loop, close every connection (no callbacks) and
 * free (NULL: no-op). */
void td_net_free(td_net_t *n);

#endif
