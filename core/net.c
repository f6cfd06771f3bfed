/* net.c - the cluster transport on a libev loop (net.h). */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <sodium.h>

#include "error.h"
#include "log.h"

/* Bytes of frames serialized ahead of the socket per connection: the rest
 * stays in the channels' queues, where priority frames can overtake it. */
#define OUT_AHEAD (256u << 10)

/* A frame waiting to be written. */
typedef struct frame {
  struct frame *next;
  uint8_t type, flags;
  uint8_t counted; /* a DATA frame that spends a credit */
  uint32_t len;
  unsigned char data[];
} frame_t;

typedef struct queue {
  frame_t *head, *tail;
} queue_t;

/* One channel of a connection, both directions. */
typedef struct chan {
  uint32_t id;
  int64_t credit;   /* out: DATA frames the peer may still take */
  uint64_t seq_out; /* out: the last sequence number written */
  uint64_t seq_in;  /* in: the next one expected */
  int failed;       /* in: a gap was seen; later frames dropped */
  int queued;       /* out: DATA frames in data */
  queue_t prio;     /* out: priority frames and CREDIT, no credit needed */
  queue_t data;     /* out: DATA and CLOSE, in order, DATA spending credit */
} chan_t;

typedef struct buf {
  unsigned char *p;
  size_t len, off, cap;
} buf_t;

struct td_net_peer {
  td_net_t *n;
  struct td_net_peer *next;
  int fd;
  int role;                 /* 0: connected, 1: accepted (the MAC's role byte) */
  int registered;           /* the loop watches fd */
  _Atomic int state;        /* td_net_state_t */
  ev_io rio, wio;
  int writing;              /* wio started */
  buf_t in, out;
  td_wire_hello_t mine, theirs;
  int got_hello, version;
  uint64_t seq0_out, seq0_in; /* channel 0 (the connection's own frames) */
  chan_t *chans;            /* (n->mu) */
  int n_chans, cap_chans;
  char addr[64];
  char shutdown[200];       /* td_net_shutdown's reason, "" if none (n->mu) */
};

struct td_net {
  td_net_config_t cfg;
  unsigned char *secret;
  struct ev_loop *loop;
  ev_async wake;
  ev_io lio;
  int lfd, listening;
  pthread_t thread;
  pthread_mutex_t mu;
  td_net_peer_t *peers; /* every connection, closed ones too (mu) */
  int stopping;         /* (mu) */
};

/* ---- buffers and queues -------------------------------------------------- */

static int buf_reserve(buf_t *b, size_t more) {
  if (b->len + more <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + more) cap *= 2;
  unsigned char *p = realloc(b->p, cap);
  if (!p) return TD_ENOMEM;
  b->p = p;
  b->cap = cap;
  return 0;
}

static void push(queue_t *q, frame_t *f) {
  f->next = NULL;
  if (q->tail) q->tail->next = f;
  else q->head = f;
  q->tail = f;
}

static frame_t *pop(queue_t *q) {
  frame_t *f = q->head;
  if (f) {
    q->head = f->next;
    if (!q->head) q->tail = NULL;
  }
  return f;
}

static void drain(queue_t *q) {
  frame_t *f;
  while ((f = pop(q))) free(f);
}

/* Channel id of p, made on first use (n->mu); NULL when out of memory. */
static chan_t *chan_of(td_net_peer_t *p, uint32_t id) {
  for (int i = 0; i < p->n_chans; i++)
    if (p->chans[i].id == id) return &p->chans[i];
  if (p->n_chans == p->cap_chans) {
    int cap = p->cap_chans ? 2 * p->cap_chans : 8;
    chan_t *c = realloc(p->chans, (size_t)cap * sizeof *c);
    if (!c) return NULL;
    p->chans = c;
    p->cap_chans = cap;
  }
  chan_t *c = &p->chans[p->n_chans++];
  memset(c, 0, sizeof *c);
  c->id = id;
  c->seq_in = 1;
  return c;
}

/* Append a frame (header and payload) to p's output (n->mu). */
static int put_frame(td_net_peer_t *p, uint8_t type, uint8_t flags, uint32_t channel,
                     uint64_t seq, const unsigned char *payload, uint32_t len) {
  int rc = buf_reserve(&p->out, TD_WIRE_HEADER + (size_t)len);
  if (rc) return rc;
  td_wire_frame_header(p->out.p + p->out.len, type, flags, channel, seq, len);
  if (len) memcpy(p->out.p + p->out.len + TD_WIRE_HEADER, payload, len);
  p->out.len += TD_WIRE_HEADER + (size_t)len;
  return 0;
}

/* ---- the loop's side ------------------------------------------------------ */

static void on_write(struct ev_loop *loop, ev_io *w, int revents);

static void want_write(td_net_peer_t *p) {
  if (!p->writing && p->fd >= 0 && p->out.len > p->out.off) {
    ev_io_start(p->n->loop, &p->wio);
    p->writing = 1;
  }
}

/* Move queued frames of a ready connection into its output, up to
 * OUT_AHEAD bytes, the channels in turn; sequence numbers are given here
 * (n->mu). */
static void fill(td_net_peer_t *p) {
  if (p->state != TD_NET_READY) return;
  for (int moved = 1; moved && p->out.len - p->out.off < OUT_AHEAD;) {
    moved = 0;
    for (int i = 0; i < p->n_chans && p->out.len - p->out.off < OUT_AHEAD; i++) {
      chan_t *c = &p->chans[i];
      frame_t *f = pop(&c->prio);
      if (!f && c->data.head && (!c->data.head->counted || c->credit > 0)) {
        f = pop(&c->data);
        if (f->counted) {
          c->credit--;
          c->queued--;
        }
      }
      if (!f) continue;
      if (put_frame(p, f->type, f->flags, c->id, ++c->seq_out, f->data, f->len) != 0) {
        c->seq_out--; /* out of memory: it waits for the next turn */
        push(&c->prio, f);
        return;
      }
      free(f);
      moved = 1;
    }
  }
}

static void close_peer(td_net_peer_t *p, const char *why);

/* Log and close p (the loop thread, n->mu not held). */
static void refuse(td_net_peer_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void refuse(td_net_peer_t *p, const char *fmt, ...) {
  char why[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  close_peer(p, why);
}

static void close_peer(td_net_peer_t *p, const char *why) {
  td_net_t *n = p->n;
  pthread_mutex_lock(&n->mu);
  if (p->state == TD_NET_CLOSED) {
    pthread_mutex_unlock(&n->mu);
    return;
  }
  int was = p->state;
  p->state = TD_NET_CLOSED;
  if (p->registered) {
    ev_io_stop(n->loop, &p->rio);
    ev_io_stop(n->loop, &p->wio);
  }
  p->writing = 0;
  if (p->fd >= 0) close(p->fd);
  p->fd = -1;
  for (int i = 0; i < p->n_chans; i++) {
    drain(&p->chans[i].prio);
    drain(&p->chans[i].data);
    p->chans[i].queued = 0;
  }
  pthread_mutex_unlock(&n->mu);
  char line[700];
  snprintf(line, sizeof line, "%s %s: %s", was == TD_NET_HANDSHAKE ? "refused the connection with" :
           "closed the connection with", p->addr, why);
  td_log(was == TD_NET_HANDSHAKE ? TD_LOG_WARN : TD_LOG_INFO, "net", NULL, line);
  if (n->cfg.on_closed) n->cfg.on_closed(n->cfg.ud, p, why);
}

static const char *type_name(uint8_t t) {
  static const char *const names[] = {"?", "HELLO", "AUTH", "DATA", "CREDIT", "CLOSE", "PING"};
  return t <= TD_WIRE_TYPE_MAX ? names[t] : "?";
}

/* The handshake's frames; 0, or -1 when p was refused. */
static int handshake(td_net_peer_t *p, const td_wire_frame_t *f) {
  td_net_t *n = p->n;
  if (!p->got_hello) {
    if (f->type != TD_WIRE_HELLO_T || f->channel != 0 || f->seq != 1) {
      refuse(p, "sent a %s frame (channel %u, seq %llu) instead of its hello", type_name(f->type),
             f->channel, (unsigned long long)f->seq);
      return -1;
    }
    if (td_wire_hello_decode(f->payload, f->length, &p->theirs) != 0) {
      refuse(p, "a malformed hello (%u bytes, or not the magic TIDE)", f->length);
      return -1;
    }
    int v = td_wire_negotiate(&p->mine, &p->theirs);
    if (v == -EACCES) {
      refuse(p, "a peer of another cluster (its cluster id differs)");
      return -1;
    }
    if (v < 0) {
      refuse(p, "no common protocol version (it speaks %u to %u, this build %d to %d)",
             p->theirs.version_min, p->theirs.version_max, TD_WIRE_VERSION_MIN,
             TD_WIRE_VERSION_MAX);
      return -1;
    }
    p->version = v;
    p->got_hello = 1;
    unsigned char mac[TD_WIRE_MAC];
    td_wire_auth(n->secret, n->cfg.secret_len, p->role, v, &p->mine, &p->theirs, mac);
    pthread_mutex_lock(&n->mu);
    int rc = put_frame(p, TD_WIRE_AUTH, 0, 0, ++p->seq0_out, mac, TD_WIRE_MAC);
    want_write(p);
    pthread_mutex_unlock(&n->mu);
    if (rc) {
      refuse(p, "out of memory");
      return -1;
    }
    return 0;
  }
  if (f->type != TD_WIRE_AUTH || f->channel != 0 || f->seq != 2) {
    refuse(p, "sent a %s frame (channel %u, seq %llu) before authenticating", type_name(f->type),
           f->channel, (unsigned long long)f->seq);
    return -1;
  }
  if (td_wire_auth_verify(n->secret, n->cfg.secret_len, !p->role, p->version, &p->theirs,
                          &p->mine, f->payload, f->length) != 0) {
    refuse(p, "authentication failed (another cluster secret, or a reflected or replayed MAC)");
    return -1;
  }
  pthread_mutex_lock(&n->mu);
  p->seq0_in = 3;
  p->state = TD_NET_READY;
  fill(p);
  want_write(p);
  pthread_mutex_unlock(&n->mu);
  if (n->cfg.on_ready) n->cfg.on_ready(n->cfg.ud, p);
  return 0;
}

/* A frame of a ready connection; 0, or -1 when p was closed. */
static int ready_frame(td_net_peer_t *p, const td_wire_frame_t *f) {
  td_net_t *n = p->n;
  if (f->channel == 0) {
    if (f->type != TD_WIRE_PING) {
      refuse(p, "an unexpected %s frame on channel 0", type_name(f->type));
      return -1;
    }
    if (td_wire_seq_check(&p->seq0_in, f->seq) != 0) {
      refuse(p, "channel 0: sequence number %llu, expected %llu", (unsigned long long)f->seq,
             (unsigned long long)p->seq0_in);
      return -1;
    }
    return 0;
  }
  if (f->type != TD_WIRE_DATA && f->type != TD_WIRE_CREDIT && f->type != TD_WIRE_CLOSE) {
    refuse(p, "an unexpected %s frame on channel %u", type_name(f->type), f->channel);
    return -1;
  }
  if (f->type == TD_WIRE_CREDIT && f->length != 4) {
    refuse(p, "a CREDIT frame of %u bytes (4 expected)", f->length);
    return -1;
  }
  pthread_mutex_lock(&n->mu);
  chan_t *c = chan_of(p, f->channel);
  if (!c) {
    pthread_mutex_unlock(&n->mu);
    refuse(p, "out of memory");
    return -1;
  }
  if (c->failed) {
    pthread_mutex_unlock(&n->mu);
    return 0;
  }
  uint64_t expected = c->seq_in;
  if (td_wire_seq_check(&c->seq_in, f->seq) != 0) {
    c->failed = 1;
    pthread_mutex_unlock(&n->mu);
    char why[160];
    snprintf(why, sizeof why, "sequence number %llu where %llu was expected (a frame lost, "
             "reordered or replayed)", (unsigned long long)f->seq, (unsigned long long)expected);
    char line[300];
    snprintf(line, sizeof line, "channel %u from %s failed: %s", f->channel, p->addr, why);
    td_log(TD_LOG_WARN, "net", NULL, line);
    if (n->cfg.on_channel_failed) n->cfg.on_channel_failed(n->cfg.ud, p, f->channel, why);
    return 0;
  }
  if (f->type == TD_WIRE_CREDIT) {
    const unsigned char *b = f->payload;
    uint32_t more = td_wire_get32(b);
    c->credit += more;
    fill(p);
    want_write(p);
    pthread_mutex_unlock(&n->mu);
    if (n->cfg.on_credit) n->cfg.on_credit(n->cfg.ud, p, f->channel, more);
    return 0;
  }
  pthread_mutex_unlock(&n->mu);
  if (n->cfg.on_frame)
    n->cfg.on_frame(n->cfg.ud, p, f->type, f->flags, f->channel, f->payload, f->length);
  return 0;
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents) {
  (void)loop;
  (void)revents;
  td_net_peer_t *p = w->data;
  td_net_t *n = p->n;
  uint32_t max = n->cfg.max_frame;
  for (;;) {
    if (buf_reserve(&p->in, 64 << 10) != 0) {
      refuse(p, "out of memory");
      return;
    }
    ssize_t r = read(p->fd, p->in.p + p->in.len, p->in.cap - p->in.len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (r <= 0) {
      if (r < 0) refuse(p, "read failed: %s", strerror(errno));
      else if (p->in.len > p->in.off) refuse(p, "a truncated frame at the end of the stream");
      else close_peer(p, "closed by the peer");
      return;
    }
    p->in.len += (size_t)r;
    for (;;) {
      td_wire_frame_t f;
      long used = td_wire_frame_parse(p->in.p + p->in.off, p->in.len - p->in.off, max, &f);
      if (used == 0) break;
      if (used == -EMSGSIZE) {
        const unsigned char *h = p->in.p + p->in.off;
        refuse(p, "a frame of %u bytes, over the maximum of %u",
               td_wire_get32(h), max);
        return;
      }
      if (used < 0) {
        refuse(p, "a malformed frame (unknown type, flags or reserved bits)");
        return;
      }
      int rc = p->state == TD_NET_HANDSHAKE ? handshake(p, &f) : ready_frame(p, &f);
      if (rc || p->state == TD_NET_CLOSED) return;
      p->in.off += (size_t)used;
    }
    /* keep the unparsed rest at the start */
    memmove(p->in.p, p->in.p + p->in.off, p->in.len - p->in.off);
    p->in.len -= p->in.off;
    p->in.off = 0;
  }
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents) {
  (void)revents;
  td_net_peer_t *p = w->data;
  td_net_t *n = p->n;
  pthread_mutex_lock(&n->mu);
  for (;;) {
    if (p->out.off == p->out.len) {
      p->out.off = p->out.len = 0;
      fill(p);
      if (p->out.len == 0) {
        ev_io_stop(loop, &p->wio);
        p->writing = 0;
        break;
      }
    }
    ssize_t r = write(p->fd, p->out.p + p->out.off, p->out.len - p->out.off);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (r < 0) {
      int e = errno;
      pthread_mutex_unlock(&n->mu);
      refuse(p, "write failed: %s", strerror(e));
      return;
    }
    p->out.off += (size_t)r;
  }
  pthread_mutex_unlock(&n->mu);
}

/* Watch p's socket and send its hello (loop thread, n->mu held). */
static void start_peer(td_net_peer_t *p) {
  ev_io_init(&p->rio, on_read, p->fd, EV_READ);
  ev_io_init(&p->wio, on_write, p->fd, EV_WRITE);
  p->rio.data = p->wio.data = p;
  ev_io_start(p->n->loop, &p->rio);
  p->registered = 1;
  unsigned char hello[TD_WIRE_HELLO];
  td_wire_hello_encode(&p->mine, hello);
  p->seq0_out = 1;
  if (put_frame(p, TD_WIRE_HELLO_T, 0, 0, 1, hello, TD_WIRE_HELLO) == 0) want_write(p);
}

static void on_wake(struct ev_loop *loop, ev_async *w, int revents) {
  (void)revents;
  td_net_t *n = w->data;
  pthread_mutex_lock(&n->mu);
  if (n->stopping) {
    pthread_mutex_unlock(&n->mu);
    ev_break(loop, EVBREAK_ALL);
    return;
  }
  if (n->listening == 1) {
    ev_io_start(loop, &n->lio);
    n->listening = 2;
  }
  td_net_peer_t *closing = NULL;
  for (td_net_peer_t *p = n->peers; p; p = p->next) {
    if (p->state == TD_NET_CLOSED) continue;
    if (p->shutdown[0]) {
      closing = p;
      continue;
    }
    if (!p->registered) start_peer(p);
    if (p->out.off == p->out.len) {
      p->out.off = p->out.len = 0;
      fill(p);
    }
    want_write(p);
  }
  pthread_mutex_unlock(&n->mu);
  if (closing) {
    char why[sizeof closing->shutdown];
    pthread_mutex_lock(&n->mu);
    memcpy(why, closing->shutdown, sizeof why);
    pthread_mutex_unlock(&n->mu);
    close_peer(closing, why);
    ev_async_send(loop, &n->wake); /* the next one, if any */
  }
}

static td_net_peer_t *new_peer(td_net_t *n, int fd, int role, const struct sockaddr_in *sa) {
  td_net_peer_t *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->n = n;
  p->fd = fd;
  p->role = role;
  p->state = TD_NET_HANDSHAKE;
  if (td_wire_hello_new(&p->mine, n->cfg.cluster_id) != 0) {
    free(p);
    return NULL;
  }
  char ip[INET_ADDRSTRLEN] = "?";
  inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof ip);
  snprintf(p->addr, sizeof p->addr, "%s:%u", ip, (unsigned)ntohs(sa->sin_port));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (n->cfg.dead_peer_ms) {
    unsigned int ut = n->cfg.dead_peer_ms;
    int idle = (int)(n->cfg.dead_peer_ms / 3000), intvl = (int)(n->cfg.dead_peer_ms / 6000), cnt = 3;
    if (idle < 1) idle = 1;
    if (intvl < 1) intvl = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof ut);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
  }
  return p;
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents) {
  (void)loop;
  (void)revents;
  td_net_t *n = w->data;
  for (;;) {
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    int fd = accept4(n->lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) break;
    td_net_peer_t *p = new_peer(n, fd, 1, &sa);
    if (!p) {
      close(fd);
      continue;
    }
    pthread_mutex_lock(&n->mu);
    p->next = n->peers;
    n->peers = p;
    start_peer(p);
    pthread_mutex_unlock(&n->mu);
  }
}

static void *loop_main(void *arg) {
  td_net_t *n = arg;
  ev_run(n->loop, 0);
  return NULL;
}

/* ---- the API ------------------------------------------------------------- */

static void wake(td_net_t *n) { ev_async_send(n->loop, &n->wake); }

int td_net_new(td_net_t **out, const td_net_config_t *cfg, char *err, size_t errlen) {
  *out = NULL;
  if (!cfg->secret || cfg->secret_len < 16) {
    snprintf(err, errlen, "the cluster secret must be at least 16 bytes");
    return TD_EINVAL;
  }
  td_net_t *n = calloc(1, sizeof *n);
  if (!n || !(n->secret = malloc(cfg->secret_len))) {
    free(n);
    snprintf(err, errlen, "out of memory");
    return TD_ENOMEM;
  }
  n->cfg = *cfg;
  memcpy(n->secret, cfg->secret, cfg->secret_len);
  n->cfg.secret = n->secret;
  if (!n->cfg.max_frame) n->cfg.max_frame = TD_WIRE_MAX_FRAME_DEFAULT;
  n->lfd = -1;
  n->loop = ev_loop_new(EVFLAG_AUTO);
  if (!n->loop) {
    free(n->secret);
    free(n);
    snprintf(err, errlen, "cannot make an event loop (libev)");
    return TD_EIO;
  }
  pthread_mutex_init(&n->mu, NULL);
  ev_async_init(&n->wake, on_wake);
  n->wake.data = n;
  ev_async_start(n->loop, &n->wake);
  int rc = pthread_create(&n->thread, NULL, loop_main, n);
  if (rc) {
    ev_loop_destroy(n->loop);
    pthread_mutex_destroy(&n->mu);
    free(n->secret);
    free(n);
    snprintf(err, errlen, "cannot start the network thread: %s", strerror(rc));
    return -rc;
  }
  *out = n;
  return 0;
}

static int address(const char *addr, int port, struct sockaddr_in *sa, char *err, size_t errlen) {
  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  sa->sin_port = htons((uint16_t)port);
  if (!addr || strcmp(addr, "localhost") == 0) addr = "127.0.0.1";
  if (port < 0 || port > 65535 || inet_pton(AF_INET, addr, &sa->sin_addr) != 1) {
    snprintf(err, errlen, "not an IPv4 address and port: %s:%d", addr, port);
    return TD_EINVAL;
  }
  return 0;
}

int td_net_listen(td_net_t *n, const char *addr, int port, int *bound, char *err, size_t errlen) {
  struct sockaddr_in sa;
  int rc = address(addr, port, &sa, err, errlen);
  if (rc) return rc;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 64) != 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    snprintf(err, errlen, "cannot listen on %s:%d: %s", addr ? addr : "127.0.0.1", port,
             strerror(e));
    return -e;
  }
  socklen_t sl = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &sl);
  if (bound) *bound = ntohs(sa.sin_port);
  pthread_mutex_lock(&n->mu);
  n->lfd = fd;
  ev_io_init(&n->lio, on_accept, fd, EV_READ);
  n->lio.data = n;
  n->listening = 1;
  pthread_mutex_unlock(&n->mu);
  wake(n);
  return 0;
}

int td_net_connect(td_net_t *n, const char *addr, int port, td_net_peer_t **out, char *err,
                   size_t errlen) {
  *out = NULL;
  struct sockaddr_in sa;
  int rc = address(addr, port, &sa, err, errlen);
  if (rc) return rc;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    snprintf(err, errlen, "cannot connect to %s:%d: %s", addr ? addr : "127.0.0.1", port,
             strerror(e));
    return -e;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  td_net_peer_t *p = new_peer(n, fd, 0, &sa);
  if (!p) {
    close(fd);
    snprintf(err, errlen, "out of memory");
    return TD_ENOMEM;
  }
  pthread_mutex_lock(&n->mu);
  p->next = n->peers;
  n->peers = p;
  pthread_mutex_unlock(&n->mu);
  wake(n);
  *out = p;
  return 0;
}

/* Queue f on channel of p (prio or data queue); 0, TD_ENOMEM or
 * TD_ECANCELED. */
static int enqueue(td_net_peer_t *p, uint32_t channel, frame_t *f, int priority) {
  td_net_t *n = p->n;
  pthread_mutex_lock(&n->mu);
  if (p->state == TD_NET_CLOSED) {
    pthread_mutex_unlock(&n->mu);
    free(f);
    return TD_ECANCELED;
  }
  chan_t *c = chan_of(p, channel);
  if (!c) {
    pthread_mutex_unlock(&n->mu);
    free(f);
    return TD_ENOMEM;
  }
  push(priority ? &c->prio : &c->data, f);
  if (f->counted) c->queued++;
  pthread_mutex_unlock(&n->mu);
  wake(n);
  return 0;
}

int td_net_send(td_net_peer_t *p, uint32_t channel, uint8_t type, td_net_mode_t mode,
                const void *payload, uint32_t len) {
  if (channel == 0 || (type != TD_WIRE_DATA && type != TD_WIRE_CLOSE) ||
      len > p->n->cfg.max_frame || (unsigned)mode > TD_NET_UNCOUNTED ||
      (type == TD_WIRE_CLOSE && mode != TD_NET_ORDERED))
    return TD_EINVAL;
  int priority = mode == TD_NET_OVERTAKE;
  frame_t *f = malloc(sizeof *f + len);
  if (!f) return TD_ENOMEM;
  f->type = type;
  f->counted = type == TD_WIRE_DATA && mode == TD_NET_ORDERED;
  f->flags = priority ? TD_WIRE_F_PRIORITY : 0;
  f->len = len;
  if (len) memcpy(f->data, payload, len);
  return enqueue(p, channel, f, priority);
}

/* Add credits to a CREDIT frame of channel still queued on p, if there is
 * one: 1 when done (no frame needed). */
static int add_to_queued_credit(td_net_peer_t *p, uint32_t channel, uint32_t credits) {
  td_net_t *n = p->n;
  pthread_mutex_lock(&n->mu);
  int done = 0;
  for (int i = 0; i < p->n_chans && !done; i++) {
    chan_t *c = &p->chans[i];
    if (c->id != channel) continue;
    for (frame_t *f = c->prio.head; f; f = f->next) {
      if (f->type != TD_WIRE_CREDIT) continue;
      uint32_t had = td_wire_get32(f->data);
      if (had > UINT32_MAX - credits) break;
      td_wire_put32(f->data, had + credits);
      done = 1;
      break;
    }
  }
  pthread_mutex_unlock(&n->mu);
  return done;
}

int td_net_grant(td_net_peer_t *p, uint32_t channel, uint32_t credits) {
  if (channel == 0) return TD_EINVAL;
  /* grants not written yet add up: one frame for them all */
  if (add_to_queued_credit(p, channel, credits)) return 0;
  frame_t *f = malloc(sizeof *f + 4);
  if (!f) return TD_ENOMEM;
  f->type = TD_WIRE_CREDIT;
  f->counted = 0;
  f->flags = 0;
  f->len = 4;
  td_wire_put32(f->data, credits);
  return enqueue(p, channel, f, 1);
}

void td_net_close(td_net_peer_t *p, const char *why) { close_peer(p, why); }

void td_net_shutdown(td_net_peer_t *p, const char *why) {
  pthread_mutex_lock(&p->n->mu);
  if (p->state != TD_NET_CLOSED)
    snprintf(p->shutdown, sizeof p->shutdown, "%s", why && *why ? why : "closed");
  pthread_mutex_unlock(&p->n->mu);
  wake(p->n);
}

const char *td_net_peer_addr(const td_net_peer_t *p) { return p->addr; }

td_net_state_t td_net_peer_state(td_net_peer_t *p) { return (td_net_state_t)p->state; }

int td_net_peer_queued(td_net_peer_t *p, uint32_t channel) {
  pthread_mutex_lock(&p->n->mu);
  int q = 0;
  for (int i = 0; i < p->n_chans; i++)
    if (p->chans[i].id == channel) q = p->chans[i].queued;
  pthread_mutex_unlock(&p->n->mu);
  return q;
}

void td_net_free(td_net_t *n) {
  if (!n) return;
  pthread_mutex_lock(&n->mu);
  n->stopping = 1;
  pthread_mutex_unlock(&n->mu);
  wake(n);
  pthread_join(n->thread, NULL);
  for (td_net_peer_t *p = n->peers, *next; p; p = next) {
    next = p->next;
    if (p->fd >= 0) close(p->fd);
    for (int i = 0; i < p->n_chans; i++) {
      drain(&p->chans[i].prio);
      drain(&p->chans[i].data);
    }
    free(p->chans);
    free(p->in.p);
    free(p->out.p);
    free(p);
  }
  if (n->lfd >= 0) close(n->lfd);
  ev_loop_destroy(n->loop);
  pthread_mutex_destroy(&n->mu);
  sodium_memzero(n->secret, n->cfg.secret_len);
  free(n->secret);
  free(n);
}
