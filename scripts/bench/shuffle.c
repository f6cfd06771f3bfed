/*
 * shuffle.c - issue 14's shuffle throughput: MB/s and records/s of one
 * exchange channel between two transport endpoints over loopback TCP
 * (core/netexchange.h: a sender's output into a stub gate, the wire, the
 * receiver's gate), against a plain TCP copy of the same bytes (a C loop:
 * write 32 KiB blocks, read them) and the local exchange (the same output
 * into a gate in memory), measured in the same run.
 *
 *   build/bench/shuffle [MB]      (default 1024)
 *
 * Records are 100 bytes as encoded (a MessagePack str 8 header and 98
 * bytes), 327 to a 32 KiB buffer, as a keyed job's exchange carries them.
 * Both endpoints live in this process, each with its own loop thread: the
 * bytes cross the kernel's TCP stack as between two task manager
 * processes on one machine. Prints a Markdown table.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "exchange.h"
#include "log.h"
#include "netexchange.h"

#define REC 100
#define BLOCK (32 * 1024)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- a plain TCP copy ---- */

typedef struct copy {
  int fd;
  long long bytes;
} copy_t;

static void *drain(void *arg) {
  copy_t *c = arg;
  static char buf[BLOCK];
  ssize_t r;
  while ((r = read(c->fd, buf, sizeof buf)) > 0) c->bytes += r;
  return NULL;
}

static double tcp_copy(long long total) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  socklen_t sl = sizeof sa;
  if (bind(l, (struct sockaddr *)&sa, sizeof sa) || listen(l, 1) ||
      getsockname(l, (struct sockaddr *)&sa, &sl))
    exit(1);
  int w = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(w, (struct sockaddr *)&sa, sizeof sa)) exit(1);
  copy_t c = {.fd = accept(l, NULL, NULL)};
  pthread_t th;
  pthread_create(&th, NULL, drain, &c);
  static char block[BLOCK];
  memset(block, 'x', sizeof block);
  double t0 = now_s();
  for (long long sent = 0; sent < total;) {
    ssize_t r = write(w, block, sizeof block);
    if (r <= 0) exit(1);
    sent += r;
  }
  close(w);
  pthread_join(th, NULL);
  double t = now_s() - t0;
  close(c.fd);
  close(l);
  return t;
}

/* ---- the exchange, local or over the transport ---- */

typedef struct run {
  td_output_t *out;
  long long buffers;
  int rc;
} run_t;

/* Fill and send `buffers` buffers of 100-byte records, then the end. */
static void *produce(void *arg) {
  run_t *r = arg;
  unsigned char rec[REC];
  rec[0] = 0xd9; /* str 8 */
  rec[1] = REC - 2;
  memset(rec + 2, 'r', REC - 2);
  for (long long k = 0; k < r->buffers && !r->rc; k++) {
    td_buffer_t *b;
    if ((r->rc = td_output_buffer(r->out, 0, &b))) break;
    while (b->data.len + REC <= BLOCK) {
      if (td_wbuf_reserve(&b->data, REC)) {
        r->rc = 1;
        break;
      }
      memcpy(b->data.data + b->data.len, rec, REC);
      b->data.len += REC;
      b->count++;
    }
    td_output_flush(r->out);
  }
  if (!r->rc) r->rc = td_output_finish(r->out);
  return NULL;
}

/* Take every buffer of g until the end: bytes and records. */
static void consume(td_gate_t *g, long long *bytes, long long *records) {
  td_buffer_t *b;
  while (td_gate_poll(g, &b, -1) == 1) {
    *bytes += (long long)b->data.len;
    *records += b->count;
    td_gate_recycle(g, b);
  }
}

static td_gate_t *new_gate(void) {
  td_gate_t *g;
  if (td_gate_new(&g, 1, TD_CHANNEL_CREDITS, NULL)) exit(1);
  td_gate_set_overdraft(g, TD_CHANNEL_OVERDRAFT);
  return g;
}

static _Atomic(td_net_peer_t *) accepted;
static void on_ready(void *ud, td_net_peer_t *p) {
  if (ud) atomic_store(&accepted, p);
}

static td_netx_t *endpoint(int receiver) {
  static const unsigned char secret[] = "a benchmark's cluster secret....";
  td_net_config_t cfg = {.secret = secret, .secret_len = 32, .on_ready = on_ready,
                         .ud = receiver ? (void *)1 : NULL, .max_frame = 1u << 20};
  memcpy(cfg.cluster_id, "shuffle-bench-01", TD_WIRE_CLUSTER_ID);
  td_netx_t *x;
  char err[256];
  if (td_netx_new(&x, &cfg, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    exit(1);
  }
  return x;
}

/* The exchange of `buffers` buffers: over the transport when remote, else
 * into a local gate. Seconds; bytes and records received. */
static double exchange(long long buffers, int remote, long long *bytes, long long *records) {
  td_gate_t *in = new_gate(), *target = in, *stub = NULL;
  td_netx_t *a = NULL, *b = NULL;
  if (remote) {
    a = endpoint(0);
    b = endpoint(1);
    char err[256];
    int port;
    td_net_peer_t *to_b;
    atomic_store(&accepted, NULL);
    if (td_net_listen(td_netx_net(b), NULL, 0, &port, err, sizeof err) ||
        td_net_connect(td_netx_net(a), NULL, port, &to_b, err, sizeof err))
      exit(1);
    while (!atomic_load(&accepted)) usleep(1000);
    stub = new_gate();
    int window = TD_CHANNEL_CREDITS + TD_CHANNEL_OVERDRAFT;
    if (td_netx_route_out(a, stub, 0, window, to_b, 1) ||
        td_netx_route_in(b, in, 0, window, atomic_load(&accepted), 1))
      exit(1);
    target = stub;
  }
  td_channel_t *c = td_gate_channel(target, 0);
  td_output_t out;
  if (td_output_init(&out, TD_PART_FORWARD, &c, 1, 128, 0)) exit(1);
  run_t r = {.out = &out, .buffers = buffers};
  double t0 = now_s();
  pthread_t th;
  pthread_create(&th, NULL, produce, &r);
  consume(in, bytes, records);
  pthread_join(th, NULL);
  double t = now_s() - t0;
  if (r.rc) exit(1);
  td_output_destroy(&out);
  td_netx_free(a);
  td_netx_free(b);
  td_gate_free(stub);
  td_gate_free(in);
  return t;
}

int main(int argc, char **argv) {
  long long mb = argc > 1 ? atoll(argv[1]) : 1024;
  long long per = (BLOCK / REC) * REC;
  long long buffers = mb * 1024 * 1024 / per;
  long long total = buffers * per;
  td_log_configure(TD_LOG_ERROR, 0);
  double t_tcp = tcp_copy(total);
  long long lb = 0, lr = 0, nb = 0, nr = 0;
  double t_local = exchange(buffers, 0, &lb, &lr);
  double t_net = exchange(buffers, 1, &nb, &nr);
  if (lb != total || nb != total || lr != nr) {
    fprintf(stderr, "shuffle: bytes lost: sent %lld, local %lld, over the transport %lld\n",
            total, lb, nb);
    return 1;
  }
  printf("| contender | seconds | MB/s | records/s | relative |\n|---|---:|---:|---:|---|\n");
  printf("| plain TCP copy (C loop, 32 KiB writes) | %.2f | %.0f | | 100%% (reference) |\n", t_tcp,
         total / 1e6 / t_tcp);
  printf("| local exchange (gate in memory) | %.2f | %.0f | %.2f M | %.0f%% of TCP |\n", t_local,
         total / 1e6 / t_local, lr / 1e6 / t_local, 100 * t_tcp / t_local);
  printf("| exchange over the transport (loopback) | %.2f | %.0f | %.2f M | %.0f%% of TCP |\n",
         t_net, total / 1e6 / t_net, nr / 1e6 / t_net, 100 * t_tcp / t_net);
  printf("\n%lld MB, %lld records of %d bytes.\n", total / 1000000, nr, REC);
  return 0;
}
