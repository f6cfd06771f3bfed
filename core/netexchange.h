/*
 * netexchange.h - the network shuffle: exchange channels whose sender and
 * receiver are in different processes, over the transport (net.h).
 *
 * As DESIGN.md has it, the network shuffle is the local exchange plus a
 * transport: the sending subtask's output writes into a stub gate
 * (channel.h, td_gate_set_transport) whose channels ship every buffer as
 * a DATA frame of a wire channel; the receiving process delivers each
 * frame into the real gate's channel (td_channel_deliver), where the task
 * polls it as it would a local buffer. Credits are the receiver's buffers:
 * both sides of a channel start with the same window (its credits and
 * overdraft: the stub channel's are the receiving channel's), so no
 * opening grant can reach a sender before its route exists; the receiver
 * grants one more for every buffer its task recycles; the stub channel
 * keeps a buffer's credit in use until then, so the sender blocks exactly
 * as on a local channel (backpressure) and each side holds at most
 * credits + overdraft buffers per channel. Records, watermarks, barriers
 * and end of partition stay in their buffers, in order; a priority event
 * (an unaligned barrier) travels in order without credit and overtakes
 * the data queued in the receiver's gate, whose bytes the receiving task
 * copies as in-flight data (td_gate_copy_queued), as locally.
 *
 * Payload of a DATA frame: u8 kind (td_buf_kind_t), u32 records, u64 seq
 * (the channel's buffer sequence number), big-endian, then the buffer's
 * bytes.
 *
 * A protocol violation (a sender over its credits, a sequence mismatch),
 * a failed channel or a closed connection cancels the gates routed over
 * it: their tasks fail and the job restarts from its latest checkpoint.
 */
#ifndef TD_NETEXCHANGE_H
#define TD_NETEXCHANGE_H

#include "channel.h"
#include "net.h"

typedef struct td_netx td_netx_t;

/*
 * td_netx_new - a transport endpoint (td_net_new with cfg's cluster id,
 * secret, max_frame, and on_ready with ud, which tells of the connections
 * made and accepted) and its routes. Frames of wire channel 1 (the
 * cluster's control channel, cluster.h) go to cfg's on_frame when it is
 * set, and a closed connection to its on_closed after its routes failed;
 * the other callbacks are the exchange's.
 * Returns 0 and *out, or td_net_new's errors with err.
 */
int td_netx_new(td_netx_t **out, const td_net_config_t *cfg, char *err, size_t errlen);

/* td_netx_net - the endpoint, to listen and connect with. */
td_net_t *td_netx_net(td_netx_t *x);

/*
 * td_netx_route_out - stub channel `index` of gate `stub` ships to wire
 * channel `channel` (>= 1) of peer: sets the stub's transport (every
 * channel of a stub gate must be routed before buffers move). credits:
 * the channel's window (credits + overdraft), which the stub channel has
 * from the start and the receiving channel must match. Returns 0, TD_ENOMEM or
 * TD_EINVAL (channel 0, a route already there).
 */
int td_netx_route_out(td_netx_t *x, td_gate_t *stub, int index, int credits,
                      td_net_peer_t *peer, uint32_t channel);

/*
 * td_netx_route_in - frames of wire channel `channel` from peer go to
 * channel `index` of gate (whose senders are remote): grants the sender
 * one credit per buffer recycled; credits: the channel's window (the
 * gate's credits + overdraft, >= 1), which the sender starts with.
 * Returns 0, TD_ENOMEM or TD_EINVAL.
 */
int td_netx_route_in(td_netx_t *x, td_gate_t *gate, int index, int credits, td_net_peer_t *peer,
                     uint32_t channel);

/* td_netx_open_routes - routes over peer whose end of partition has not
 * gone or come yet (a closed connection fails them). */
int td_netx_open_routes(td_netx_t *x, td_net_peer_t *peer);

/*
 * td_netx_forget - remove every route over peer (its gates are about to be
 * freed); the connection stays as it is.
 */
void td_netx_forget(td_netx_t *x, td_net_peer_t *peer);

/* td_netx_free - free the endpoint (td_net_free) and the routes; the
 * gates are the caller's (NULL: no-op). */
void td_netx_free(td_netx_t *x);

#endif
