/* netexchange.c - exchange channels over the transport (netexchange.h). */
#include "netexchange.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"

#define HEAD 13 /* bytes before a buffer's: kind, records, seq */

/* One routed channel: out (a stub's channel to a peer's wire channel) or
 * in (a peer's wire channel into a gate's channel). */
typedef struct route {
  int out;
  td_gate_t *gate;
  int index;
  td_net_peer_t *peer;
  uint32_t channel;
  int ended; /* its end of partition went (out) or came (in): a closed
                connection no longer fails it */
} route_t;

/* The argument of a gate's hooks: its netx and itself (a stub's transport,
 * a receiving gate's recycle hook). */
typedef struct gate_ud {
  struct td_netx *x;
  td_gate_t *g;
} gate_ud_t;

struct td_netx {
  td_net_t *net;
  void (*on_ready)(void *ud, td_net_peer_t *p); /* the caller's */
  void (*on_control)(void *ud, td_net_peer_t *p, uint8_t type, uint8_t flags, uint32_t channel,
                     const unsigned char *payload, uint32_t len);
  void (*on_closed)(void *ud, td_net_peer_t *p, const char *why);
  void *ud;
  pthread_mutex_t mu; /* the routes and hooks */
  route_t *routes;
  int n, cap;
  gate_ud_t **hooks; /* the gates' hook arguments, one per gate */
  int n_hooks, cap_hooks;
};

static route_t *find_wire(td_netx_t *x, int out, td_net_peer_t *peer, uint32_t channel) {
  for (int i = 0; i < x->n; i++)
    if (x->routes[i].out == out && x->routes[i].peer == peer && x->routes[i].channel == channel)
      return &x->routes[i];
  return NULL;
}

static route_t *find_gate(td_netx_t *x, int out, td_gate_t *g, int index) {
  for (int i = 0; i < x->n; i++)
    if (x->routes[i].out == out && x->routes[i].gate == g && x->routes[i].index == index)
      return &x->routes[i];
  return NULL;
}

/* A copy of route r (under mu), or 0 when there is none. */
static int lookup_wire(td_netx_t *x, int out, td_net_peer_t *peer, uint32_t channel, route_t *r) {
  pthread_mutex_lock(&x->mu);
  route_t *f = find_wire(x, out, peer, channel);
  if (f) *r = *f;
  pthread_mutex_unlock(&x->mu);
  return f != NULL;
}

static void put_head(unsigned char *h, td_buf_kind_t kind, uint32_t count, uint64_t seq) {
  h[0] = (unsigned char)kind;
  td_wire_put32(h + 1, count);
  td_wire_put64(h + 5, seq);
}

/* ---- the sending side: the stub gate's transport ------------------------- */

static int ship(td_netx_t *x, td_gate_t *g, int index, td_buf_kind_t kind, uint32_t count,
                uint64_t seq, const void *data, size_t len) {
  pthread_mutex_lock(&x->mu);
  route_t *r = find_gate(x, 1, g, index);
  td_net_peer_t *peer = r ? r->peer : NULL;
  uint32_t channel = r ? r->channel : 0;
  if (r && kind == TD_BUF_END) r->ended = 1;
  pthread_mutex_unlock(&x->mu);
  if (!peer) return TD_EINVAL;
  unsigned char *p = malloc(HEAD + len);
  if (!p) return TD_ENOMEM;
  put_head(p, kind, count, seq);
  if (len) memcpy(p + HEAD, data, len);
  /* the stub channel spends and gets back the credits (its in_use): the
   * transport only carries the frames and the grants, in order */
  int rc = td_net_send(peer, channel, TD_WIRE_DATA, TD_NET_UNCOUNTED, p, (uint32_t)(HEAD + len));
  free(p);
  return rc;
}

static int stub_send(void *ud, int index, const td_buffer_t *b) {
  gate_ud_t *s = ud;
  return ship(s->x, s->g, index, b->kind, b->count, b->seq, b->data.data, b->data.len);
}

static int stub_send_priority(void *ud, int index, uint64_t seq, const void *event, size_t len) {
  gate_ud_t *s = ud;
  return ship(s->x, s->g, index, TD_BUF_PRIORITY, 0, seq, event, len);
}

/* ---- the transport's callbacks -------------------------------------------- */

static void fail_route(const route_t *r, const char *why) {
  char line[600];
  snprintf(line, sizeof line, "exchange channel %u %s: %s", r->channel,
           r->out ? "out" : "in", why);
  td_log(TD_LOG_WARN, "net", NULL, line);
  td_gate_cancel(r->gate);
}

static void on_frame(void *ud, td_net_peer_t *p, uint8_t type, uint8_t flags, uint32_t channel,
                     const unsigned char *payload, uint32_t len) {
  (void)flags;
  td_netx_t *x = ud;
  route_t r;
  if (channel == 1 && x->on_control) {
    x->on_control(x->ud, p, type, flags, channel, payload, len);
    return;
  }
  if (!lookup_wire(x, 0, p, channel, &r)) {
    /* credits come only with a route: a sender that sends without is
     * broken, and this process cannot take the frame anywhere */
    char line[200];
    snprintf(line, sizeof line, "a frame for exchange channel %u, which has no route here: the "
             "connection is closed", channel);
    td_log(TD_LOG_WARN, "net", NULL, line);
    td_net_close(p, "a frame for a channel without a route");
    return;
  }
  if (type != TD_WIRE_DATA || len < HEAD) {
    fail_route(&r, type == TD_WIRE_DATA ? "a frame shorter than its header" : "closed by the sender");
    return;
  }
  uint32_t count = td_wire_get32(payload + 1);
  uint64_t seq = td_wire_get64(payload + 5);
  int rc = td_channel_deliver(td_gate_channel(r.gate, r.index), (td_buf_kind_t)payload[0], count,
                              seq, payload + HEAD, len - HEAD);
  if (rc == 0 && payload[0] == TD_BUF_END) {
    pthread_mutex_lock(&x->mu);
    route_t *f = find_wire(x, 0, p, channel);
    if (f) f->ended = 1;
    pthread_mutex_unlock(&x->mu);
  }
  if (rc == TD_EINVAL)
    fail_route(&r, "a buffer over the sender's credits, out of sequence, or of an unknown kind");
  else if (rc && rc != TD_ECANCELED)
    fail_route(&r, td_strerror(rc));
}

static void on_credit(void *ud, td_net_peer_t *p, uint32_t channel, uint32_t credits) {
  td_netx_t *x = ud;
  pthread_mutex_lock(&x->mu);
  route_t *r = find_wire(x, 1, p, channel);
  int64_t give = 0;
  td_gate_t *g = NULL;
  int index = 0;
  if (r) {
    give = credits;
    g = r->gate;
    index = r->index;
  }
  pthread_mutex_unlock(&x->mu);
  if (g && give > 0) td_channel_credit(td_gate_channel(g, index), (int)give);
}

static void on_channel_failed(void *ud, td_net_peer_t *p, uint32_t channel, const char *why) {
  td_netx_t *x = ud;
  route_t r;
  if (lookup_wire(x, 0, p, channel, &r) || lookup_wire(x, 1, p, channel, &r)) fail_route(&r, why);
}

static void on_closed(void *ud, td_net_peer_t *p, const char *why) {
  td_netx_t *x = ud;
  pthread_mutex_lock(&x->mu);
  int n = x->n;
  route_t *copy = malloc((size_t)(n ? n : 1) * sizeof *copy);
  int k = 0;
  for (int i = 0; copy && i < n; i++)
    if (x->routes[i].peer == p && !x->routes[i].ended) copy[k++] = x->routes[i];
  pthread_mutex_unlock(&x->mu);
  for (int i = 0; i < k; i++) fail_route(&copy[i], why);
  free(copy);  if (x->on_closed) x->on_closed(x->ud, p, why);
}

static void on_ready(void *ud, td_net_peer_t *p) {
  td_netx_t *x = ud;
  x->on_ready(x->ud, p);
}

/* A buffer of a gate with remote senders was recycled: a credit back. */
static void recycled(void *ud, int index) {
  gate_ud_t *s = ud;
  pthread_mutex_lock(&s->x->mu);
  route_t *r = find_gate(s->x, 0, s->g, index);
  td_net_peer_t *peer = r ? r->peer : NULL;
  uint32_t channel = r ? r->channel : 0;
  pthread_mutex_unlock(&s->x->mu);
  if (peer) td_net_grant(peer, channel, 1);
}

/* ---- the API ---------------------------------------------------------------- */

/* The hook argument of gate g (made on first use; mu held), or NULL. */
static gate_ud_t *hook_of(td_netx_t *x, td_gate_t *g) {
  for (int i = 0; i < x->n_hooks; i++)
    if (x->hooks[i]->g == g) return x->hooks[i];
  if (x->n_hooks == x->cap_hooks) {
    int cap = x->cap_hooks ? 2 * x->cap_hooks : 8;
    gate_ud_t **h = realloc(x->hooks, (size_t)cap * sizeof *h);
    if (!h) return NULL;
    x->hooks = h;
    x->cap_hooks = cap;
  }
  gate_ud_t *s = malloc(sizeof *s);
  if (!s) return NULL;
  s->x = x;
  s->g = g;
  x->hooks[x->n_hooks++] = s;
  return s;
}

/* Add a route (mu held); its gate's hook argument, or NULL (TD_ENOMEM in
 * *rc) or a duplicate (TD_EINVAL). */
static gate_ud_t *add_route(td_netx_t *x, const route_t *r, int *rc) {
  if (find_wire(x, r->out, r->peer, r->channel) || find_gate(x, r->out, r->gate, r->index)) {
    *rc = TD_EINVAL;
    return NULL;
  }
  gate_ud_t *hook = hook_of(x, r->gate);
  if (!hook) {
    *rc = TD_ENOMEM;
    return NULL;
  }
  if (x->n == x->cap) {
    int cap = x->cap ? 2 * x->cap : 16;
    route_t *rs = realloc(x->routes, (size_t)cap * sizeof *rs);
    if (!rs) {
      *rc = TD_ENOMEM;
      return NULL;
    }
    x->routes = rs;
    x->cap = cap;
  }
  x->routes[x->n++] = *r;
  *rc = 0;
  return hook;
}

int td_netx_new(td_netx_t **out, const td_net_config_t *cfg, char *err, size_t errlen) {
  *out = NULL;
  td_netx_t *x = calloc(1, sizeof *x);
  if (!x) {
    snprintf(err, errlen, "out of memory");
    return TD_ENOMEM;
  }
  pthread_mutex_init(&x->mu, NULL);
  td_net_config_t c = *cfg;
  x->on_ready = cfg->on_ready;
  x->ud = cfg->ud;
  x->on_control = cfg->on_frame;
  x->on_closed = cfg->on_closed;
  c.ud = x;
  c.on_ready = cfg->on_ready ? on_ready : NULL;
  c.on_frame = on_frame;
  c.on_channel_failed = on_channel_failed;
  c.on_closed = on_closed;
  c.on_credit = on_credit;
  int rc = td_net_new(&x->net, &c, err, errlen);
  if (rc) {
    pthread_mutex_destroy(&x->mu);
    free(x);
    return rc;
  }
  *out = x;
  return 0;
}

td_net_t *td_netx_net(td_netx_t *x) { return x->net; }

int td_netx_route_out(td_netx_t *x, td_gate_t *stub, int index, int credits,
                      td_net_peer_t *peer, uint32_t channel) {
  if (channel == 0 || index < 0 || index >= td_gate_size(stub)) return TD_EINVAL;
  (void)credits; /* the stub channel's own window, which no grant stands for */
  route_t r = {.out = 1, .gate = stub, .index = index, .peer = peer, .channel = channel};
  int rc;
  pthread_mutex_lock(&x->mu);
  gate_ud_t *hook = add_route(x, &r, &rc);
  pthread_mutex_unlock(&x->mu);
  if (!hook) return rc;
  td_channel_transport_t t = {stub_send, stub_send_priority, hook};
  td_gate_set_transport(stub, &t);
  return 0;
}

int td_netx_route_in(td_netx_t *x, td_gate_t *gate, int index, int credits, td_net_peer_t *peer,
                     uint32_t channel) {
  if (channel == 0 || credits < 1 || index < 0 || index >= td_gate_size(gate)) return TD_EINVAL;
  route_t r = {.out = 0, .gate = gate, .index = index, .peer = peer, .channel = channel};
  int rc;
  pthread_mutex_lock(&x->mu);
  gate_ud_t *hook = add_route(x, &r, &rc);
  pthread_mutex_unlock(&x->mu);
  if (!hook) return rc;
  td_gate_set_recycled(gate, recycled, hook);
  /* the sender starts with the window (its stub channel's credits and
   * overdraft, which match this channel's): a grant made now could reach
   * it before its route exists and be lost */
  return 0;
}

int td_netx_open_routes(td_netx_t *x, td_net_peer_t *peer) {
  pthread_mutex_lock(&x->mu);
  int n = 0;
  for (int i = 0; i < x->n; i++) n += x->routes[i].peer == peer && !x->routes[i].ended;
  pthread_mutex_unlock(&x->mu);
  return n;
}

void td_netx_forget(td_netx_t *x, td_net_peer_t *peer) {
  pthread_mutex_lock(&x->mu);
  int k = 0;
  for (int i = 0; i < x->n; i++)
    if (x->routes[i].peer != peer) x->routes[k++] = x->routes[i];
  x->n = k;
  /* hooks of gates no route names any more go too */
  int h = 0;
  for (int i = 0; i < x->n_hooks; i++) {
    int used = 0;
    for (int j = 0; j < x->n && !used; j++) used = x->routes[j].gate == x->hooks[i]->g;
    if (used) x->hooks[h++] = x->hooks[i];
    else free(x->hooks[i]);
  }
  x->n_hooks = h;
  pthread_mutex_unlock(&x->mu);
}

void td_netx_free(td_netx_t *x) {
  if (!x) return;
  td_net_free(x->net);
  for (int i = 0; i < x->n_hooks; i++) free(x->hooks[i]);
  free(x->hooks);
  free(x->routes);
  pthread_mutex_destroy(&x->mu);
  free(x);
}
