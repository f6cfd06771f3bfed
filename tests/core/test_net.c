/*
 * test_net.c - the cluster transport (core/net.h) over loopback: the
 * handshake, credit-based flow control per channel, priority frames, and
 * the refusals of docs/PROTOCOL.md, some from raw sockets that write the
 * bytes by hand (with core/wire.h's functions for the valid parts).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "net.h"
#include "testlib.h"
#include "wire.h"

static const unsigned char SECRET[] = "the secret of the test cluster!";
static const unsigned char OTHER[] = "another secret, as long as that";

/* What the callbacks saw: a log of lines, and the frames' payloads. */
typedef struct seen {
  pthread_mutex_t mu;
  int ready, closed, failed;
  char closed_why[512], failed_why[512];
  char frames[4096]; /* "ch:payload;" per DATA frame, "ch:CLOSE;" */
  td_net_peer_t *peer; /* the last ready one */
} seen_t;

static void on_ready(void *ud, td_net_peer_t *p) {
  seen_t *s = ud;
  pthread_mutex_lock(&s->mu);
  s->ready++;
  s->peer = p;
  pthread_mutex_unlock(&s->mu);
}

static void on_frame(void *ud, td_net_peer_t *p, uint8_t type, uint8_t flags, uint32_t channel,
                     const unsigned char *payload, uint32_t len) {
  (void)p;
  seen_t *s = ud;
  pthread_mutex_lock(&s->mu);
  size_t at = strlen(s->frames);
  if (type == TD_WIRE_CLOSE)
    snprintf(s->frames + at, sizeof s->frames - at, "%u:CLOSE;", channel);
  else
    snprintf(s->frames + at, sizeof s->frames - at, "%u:%s%.*s;", channel,
             flags & TD_WIRE_F_PRIORITY ? "!" : "", (int)len, (const char *)payload);
  pthread_mutex_unlock(&s->mu);
}

static void on_failed(void *ud, td_net_peer_t *p, uint32_t channel, const char *why) {
  (void)p;
  seen_t *s = ud;
  pthread_mutex_lock(&s->mu);
  s->failed++;
  snprintf(s->failed_why, sizeof s->failed_why, "%u: %s", channel, why);
  pthread_mutex_unlock(&s->mu);
}

static void on_closed(void *ud, td_net_peer_t *p, const char *why) {
  (void)p;
  seen_t *s = ud;
  pthread_mutex_lock(&s->mu);
  s->closed++;
  snprintf(s->closed_why, sizeof s->closed_why, "%s", why);
  pthread_mutex_unlock(&s->mu);
}

static td_net_t *endpoint(seen_t *s, const char *cluster, const unsigned char *secret) {
  td_log_configure(TD_LOG_ERROR, 0); /* the refusals' warnings: not in the test's output */
  memset(s, 0, sizeof *s);
  pthread_mutex_init(&s->mu, NULL);
  td_net_config_t cfg = {.secret = secret, .secret_len = 31, .max_frame = 4096, .ud = s,
                         .dead_peer_ms = 6000,
                         .on_ready = on_ready, .on_frame = on_frame,
                         .on_channel_failed = on_failed, .on_closed = on_closed};
  memcpy(cfg.cluster_id, cluster, TD_WIRE_CLUSTER_ID);
  td_net_t *n = NULL;
  char err[256];
  if (td_net_new(&n, &cfg, err, sizeof err) != 0) {
    fprintf(stderr, "td_net_new: %s\n", err);
    abort();
  }
  return n;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Wait (10 s at most) until the int at field of s is at least want. */
static int wait_for(seen_t *s, const int *field, int want) {
  for (int i = 0; i < 2000; i++) {
    pthread_mutex_lock(&s->mu);
    int v = *field;
    pthread_mutex_unlock(&s->mu);
    if (v >= want) return 1;
    sleep_ms(5);
  }
  return 0;
}

/* Wait (10 s at most) until s's frames are exactly want. */
static int wait_frames(seen_t *s, const char *want) {
  for (int i = 0; i < 2000; i++) {
    pthread_mutex_lock(&s->mu);
    int same = strcmp(s->frames, want) == 0;
    pthread_mutex_unlock(&s->mu);
    if (same) return 1;
    sleep_ms(5);
  }
  fprintf(stderr, "  frames: \"%s\", expected \"%s\"\n", s->frames, want);
  return 0;
}

/* The frames of channel ch in s, in order: "payload;" each (across
 * channels the order depends on timing). */
static void of_channel(seen_t *s, uint32_t ch, char *out, size_t len) {
  char prefix[16];
  snprintf(prefix, sizeof prefix, "%u:", ch);
  out[0] = 0;
  pthread_mutex_lock(&s->mu);
  for (const char *p = s->frames; *p;) {
    const char *end = strchr(p, ';');
    if (!end) break;
    if (strncmp(p, prefix, strlen(prefix)) == 0) {
      size_t at = strlen(out);
      snprintf(out + at, len - at, "%.*s;", (int)(end - p - strlen(prefix)), p + strlen(prefix));
    }
    p = end + 1;
  }
  pthread_mutex_unlock(&s->mu);
}

/* Wait (10 s at most) until channel ch's frames in s are exactly want. */
static int wait_channel(seen_t *s, uint32_t ch, const char *want) {
  char got[4096];
  for (int i = 0; i < 2000; i++) {
    of_channel(s, ch, got, sizeof got);
    if (strcmp(got, want) == 0) return 1;
    sleep_ms(5);
  }
  fprintf(stderr, "  channel %u: \"%s\", expected \"%s\"\n", ch, got, want);
  return 0;
}

static const char CLUSTER[] = "test-cluster-016";

/* A listening endpoint a and a connected one b, both ready. */
static void pair(seen_t *sa, td_net_t **a, seen_t *sb, td_net_t **b, td_net_peer_t **to_a) {
  *a = endpoint(sa, CLUSTER, SECRET);
  *b = endpoint(sb, CLUSTER, SECRET);
  char err[256];
  int port = 0;
  TD_CHECK_INT(td_net_listen(*a, NULL, 0, &port, err, sizeof err), 0);
  TD_CHECK(port > 0);
  TD_CHECK_INT(td_net_connect(*b, "127.0.0.1", port, to_a, err, sizeof err), 0);
  TD_CHECK(wait_for(sa, &sa->ready, 1));
  TD_CHECK(wait_for(sb, &sb->ready, 1));
}

/* The TCP sockets of this process whose TCP_USER_TIMEOUT is ms and
 * which send keepalive probes, first after idle s. */
static int sockets_with_dead_peer(unsigned int ms, int idle) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));) {
    int fd = atoi(e->d_name);
    unsigned int ut = 0;
    int ka = 0, ki = 0;
    socklen_t l1 = sizeof ut, l2 = sizeof ka, l3 = sizeof ki;
    if (e->d_name[0] != '.' && getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, &l1) == 0 &&
        getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &ka, &l2) == 0 &&
        getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &ki, &l3) == 0)
      n += ut == ms && ka && ki == idle;
  }
  if (d) closedir(d);
  return n;
}

/* The handshake, then data of two channels in order, spending credits. */
TD_TEST(test_net_handshake_and_data) {
  seen_t sa, sb;
  td_net_t *a, *b;
  td_net_peer_t *to_a;
  pair(&sa, &a, &sb, &b, &to_a);
  TD_CHECK_INT(td_net_peer_state(to_a), TD_NET_READY);
  TD_CHECK_INT(td_net_peer_state(sa.peer), TD_NET_READY);
  /* both ends of the connection find a dead peer in dead_peer_ms */
  TD_CHECK_INT(sockets_with_dead_peer(6000, 2), 2);
  TD_CHECK_INT(td_net_grant(sa.peer, 1, 3), 0);
  TD_CHECK_INT(td_net_send(to_a, 1, TD_WIRE_DATA, TD_NET_ORDERED, "one", 3), 0);
  TD_CHECK_INT(td_net_send(to_a, 1, TD_WIRE_DATA, TD_NET_ORDERED, "two", 3), 0);
  TD_CHECK_INT(td_net_send(to_a, 1, TD_WIRE_CLOSE, TD_NET_ORDERED, NULL, 0), 0);
  TD_CHECK(wait_frames(&sa, "1:one;1:two;1:CLOSE;"));
  /* the other way, on the connection a accepted */
  TD_CHECK_INT(td_net_grant(to_a, 7, 1), 0);
  TD_CHECK_INT(td_net_send(sa.peer, 7, TD_WIRE_DATA, TD_NET_ORDERED, "back", 4), 0);
  TD_CHECK(wait_frames(&sb, "7:back;"));
  TD_CHECK_INT(sa.failed + sb.failed + sa.closed + sb.closed, 0);
  /* wrong use */
  TD_CHECK_INT(td_net_send(to_a, 0, TD_WIRE_DATA, TD_NET_ORDERED, "x", 1), TD_EINVAL);
  TD_CHECK_INT(td_net_send(to_a, 1, TD_WIRE_PING, TD_NET_ORDERED, "x", 1), TD_EINVAL);
  static char big[4097];
  TD_CHECK_INT(td_net_send(to_a, 1, TD_WIRE_DATA, TD_NET_ORDERED, big, sizeof big), TD_EINVAL);
  td_net_free(b);
  TD_CHECK(wait_for(&sa, &sa.closed, 1));
  TD_CHECK_STR(sa.closed_why, "closed by the peer");
  td_net_free(a);
}

/* A channel without credit stalls alone: the other channel flows; more
 * credit releases the rest, in order. A priority frame overtakes the
 * queued data without credit. */
TD_TEST(test_net_credit_per_channel_and_priority) {
  seen_t sa, sb;
  td_net_t *a, *b;
  td_net_peer_t *to_a;
  pair(&sa, &a, &sb, &b, &to_a);
  TD_CHECK_INT(td_net_grant(sa.peer, 1, 1), 0);
  TD_CHECK_INT(td_net_grant(sa.peer, 2, 10), 0);
  const char *d[] = {"a", "b", "c", "d"};
  for (int i = 0; i < 4; i++) {
    TD_CHECK_INT(td_net_send(to_a, 1, TD_WIRE_DATA, TD_NET_ORDERED, d[i], 1), 0);
    TD_CHECK_INT(td_net_send(to_a, 2, TD_WIRE_DATA, TD_NET_ORDERED, d[i], 1), 0);
  }
  TD_CHECK(wait_channel(&sa, 2, "a;b;c;d;"));
  TD_CHECK(wait_channel(&sa, 1, "a;"));
  sleep_ms(100);
  TD_CHECK(wait_channel(&sa, 1, "a;")); /* and no more */
  TD_CHECK_INT(td_net_peer_queued(to_a, 1), 3); /* waiting for credit */
  TD_CHECK_INT(td_net_peer_queued(to_a, 2), 0);
  /* a barrier overtakes b, c, d of channel 1 */
  TD_CHECK_INT(td_net_send(to_a, 1, TD_WIRE_DATA, TD_NET_OVERTAKE, "barrier", 7), 0);
  TD_CHECK(wait_channel(&sa, 1, "a;!barrier;"));
  /* an uncounted event needs no credit but keeps its place: behind d */
  TD_CHECK_INT(td_net_send(to_a, 1, TD_WIRE_DATA, TD_NET_UNCOUNTED, "ev", 2), 0);
  sleep_ms(100);
  TD_CHECK(wait_channel(&sa, 1, "a;!barrier;"));
  TD_CHECK_INT(td_net_grant(sa.peer, 1, 3), 0);
  TD_CHECK(wait_channel(&sa, 1, "a;!barrier;b;c;d;ev;"));
  TD_CHECK_INT(sa.failed, 0); /* sequence numbers stayed consecutive */
  td_net_free(b);
  td_net_free(a);
}

/* A wrong secret or another cluster id: closed on both sides, never
 * ready, the reason given. */
TD_TEST(test_net_refusals_secret_and_cluster) {
  for (int k = 0; k < 2; k++) {
    seen_t sa, sb;
    td_net_t *a = endpoint(&sa, CLUSTER, SECRET);
    td_net_t *b = k == 0 ? endpoint(&sb, CLUSTER, OTHER) : endpoint(&sb, "other-cluster-16", SECRET);
    char err[256];
    int port = 0;
    td_net_peer_t *p;
    TD_CHECK_INT(td_net_listen(a, NULL, 0, &port, err, sizeof err), 0);
    TD_CHECK_INT(td_net_connect(b, NULL, port, &p, err, sizeof err), 0);
    /* queued until the handshake, or refused already when it lost the
     * race with a loaded machine: never delivered either way */
    int sent = td_net_send(p, 1, TD_WIRE_DATA, TD_NET_ORDERED, "never", 5);
    TD_CHECK(sent == 0 || sent == TD_ECANCELED);
    TD_CHECK(wait_for(&sa, &sa.closed, 1));
    TD_CHECK(wait_for(&sb, &sb.closed, 1));
    const char *want = k == 0 ? "authentication failed" : "a peer of another cluster";
    /* the side that finds out first says why; the other may see only
     * the connection go */
    TD_CHECK(strstr(sa.closed_why, want) != NULL || strstr(sb.closed_why, want) != NULL);
    TD_CHECK_INT(sa.ready + sb.ready, 0);
    TD_CHECK_STR(sa.frames, "");
    TD_CHECK_INT(td_net_peer_state(p), TD_NET_CLOSED);
    TD_CHECK_INT(td_net_send(p, 1, TD_WIRE_DATA, TD_NET_ORDERED, "x", 1), TD_ECANCELED);
    td_net_free(b);
    td_net_free(a);
  }
}

/* ---- raw peers ---- */

static int raw_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) abort();
  return fd;
}

static void raw_frame(int fd, uint8_t type, uint8_t flags, uint32_t channel, uint64_t seq,
                      const void *payload, uint32_t len) {
  unsigned char h[TD_WIRE_HEADER];
  td_wire_frame_header(h, type, flags, channel, seq, len);
  if (write(fd, h, sizeof h) != (ssize_t)sizeof h) abort();
  if (len && write(fd, payload, len) != (ssize_t)len) abort();
}

/* Read the endpoint's hello from fd into *h (frame header + payload). */
static int raw_read_hello(int fd, td_wire_hello_t *h) {
  unsigned char b[TD_WIRE_HEADER + TD_WIRE_HELLO];
  size_t got = 0;
  while (got < sizeof b) {
    ssize_t r = read(fd, b + got, sizeof b - got);
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return td_wire_hello_decode(b + TD_WIRE_HEADER, TD_WIRE_HELLO, h);
}

/* A raw client through the whole handshake with the endpoint on port. */
static int raw_authenticated(int port) {
  int fd = raw_connect(port);
  td_wire_hello_t mine, theirs;
  td_wire_hello_new(&mine, (const unsigned char *)CLUSTER);
  unsigned char hello[TD_WIRE_HELLO], mac[TD_WIRE_MAC];
  td_wire_hello_encode(&mine, hello);
  raw_frame(fd, TD_WIRE_HELLO_T, 0, 0, 1, hello, sizeof hello);
  if (raw_read_hello(fd, &theirs) != 0) abort();
  td_wire_auth(SECRET, 31, 0, 1, &mine, &theirs, mac);
  raw_frame(fd, TD_WIRE_AUTH, 0, 0, 2, mac, sizeof mac);
  return fd;
}

/* Malformed, oversized, truncated, early and out-of-sequence frames. */
TD_TEST(test_net_refusals_from_raw_peers) {
  seen_t sa;
  td_net_t *a = endpoint(&sa, CLUSTER, SECRET);
  char err[256];
  int port = 0;
  TD_CHECK_INT(td_net_listen(a, NULL, 0, &port, err, sizeof err), 0);
  struct {
    const char *want;
  } cases[] = {{"over the maximum of 4096"}, {"a malformed frame"},
               {"instead of its hello"}, {"a truncated frame"}, {"before authenticating"}};
  for (int k = 0; k < 5; k++) {
    int fd = raw_connect(port);
    unsigned char junk[TD_WIRE_HEADER];
    if (k == 0) {
      td_wire_frame_header(junk, TD_WIRE_DATA, TD_NET_ORDERED, 1, 1, 1u << 30);
      if (write(fd, junk, sizeof junk) != (ssize_t)sizeof junk) abort();
    } else if (k == 1) {
      td_wire_frame_header(junk, 9, 0, 0, 1, 0);
      if (write(fd, junk, sizeof junk) != (ssize_t)sizeof junk) abort();
    } else if (k == 2) {
      raw_frame(fd, TD_WIRE_DATA, TD_NET_ORDERED, 1, 1, "early", 5);
    } else if (k == 3) {
      td_wire_frame_header(junk, TD_WIRE_HELLO_T, 0, 0, 1, TD_WIRE_HELLO);
      if (write(fd, junk, sizeof junk) != (ssize_t)sizeof junk) abort();
      shutdown(fd, SHUT_WR); /* the payload never comes */
    } else {
      td_wire_hello_t mine;
      td_wire_hello_new(&mine, (const unsigned char *)CLUSTER);
      unsigned char hello[TD_WIRE_HELLO];
      td_wire_hello_encode(&mine, hello);
      raw_frame(fd, TD_WIRE_HELLO_T, 0, 0, 1, hello, sizeof hello);
      raw_frame(fd, TD_WIRE_DATA, TD_NET_ORDERED, 1, 1, "early", 5);
    }
    TD_CHECK(wait_for(&sa, &sa.closed, k + 1));
    if (!strstr(sa.closed_why, cases[k].want))
      fprintf(stderr, "  case %d: \"%s\", expected \"%s\"\n", k, sa.closed_why, cases[k].want);
    TD_CHECK(strstr(sa.closed_why, cases[k].want) != NULL);
    close(fd);
  }
  TD_CHECK_INT(sa.ready, 0);
  /* authenticated, then a gap in channel 3: that channel fails, the
   * connection and channel 4 go on */
  int fd = raw_authenticated(port);
  TD_CHECK(wait_for(&sa, &sa.ready, 1));
  raw_frame(fd, TD_WIRE_DATA, TD_NET_ORDERED, 3, 1, "x1", 2);
  raw_frame(fd, TD_WIRE_DATA, TD_NET_ORDERED, 3, 3, "x3", 2);
  raw_frame(fd, TD_WIRE_DATA, TD_NET_ORDERED, 3, 4, "x4", 2);
  raw_frame(fd, TD_WIRE_DATA, TD_NET_ORDERED, 4, 1, "y1", 2);
  TD_CHECK(wait_frames(&sa, "3:x1;4:y1;")); /* one socket: this order */
  TD_CHECK_INT(sa.failed, 1);
  TD_CHECK(strstr(sa.failed_why, "3: sequence number 3 where 2 was expected") != NULL);
  TD_CHECK_INT(td_net_peer_state(sa.peer), TD_NET_READY);
  /* a repeat fails channel 4 too */
  raw_frame(fd, TD_WIRE_DATA, TD_NET_ORDERED, 4, 1, "y1", 2);
  TD_CHECK(wait_for(&sa, &sa.failed, 2));
  close(fd);
  TD_CHECK(wait_for(&sa, &sa.closed, 6));
  td_net_free(a);
}

TD_TEST_MAIN(test_net_handshake_and_data, test_net_credit_per_channel_and_priority,
             test_net_refusals_secret_and_cluster, test_net_refusals_from_raw_peers)
