/* channel.c - local channels with credit-based flow control (channel.h). */
#include "channel.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"

struct td_channel {
  td_gate_t *gate;
  int tag;
  int credits;         /* buffers granted by the receiver */
  int allocated;       /* buffers created so far (lazily) */
  atomic_int in_use;   /* buffers acquired and not recycled yet; written
                          under the gate's lock, read lock-free */
  uint64_t sent;       /* seq of the last buffer sent */
  td_buffer_t *free;   /* empty buffers: the sender's credit */
  td_notify_t *notify; /* the sender's notifier, or NULL */
  pthread_cond_t credit_cond;
};

struct td_gate {
  pthread_mutex_t mu;
  pthread_cond_t ready_cond;
  td_buffer_t *head, *tail;   /* buffers queued for the receiver */
  td_buffer_t *phead, *ptail; /* priority events, delivered first */
  atomic_int n_priority;      /* events in the priority queue */
  int n_channels;
  int open_channels;          /* channels that have not sent END */
  int overdraft;              /* buffers per channel beyond the credits */
  int cancelled;
  td_notify_t *notify;        /* the receiver's notifier, or NULL */
  td_channel_t *channels;
  td_channel_transport_t transport; /* a stub gate's (send != NULL) */
  void (*recycled)(void *ud, int index); /* a remote sender's credits */
  void *recycled_ud;
};

int td_gate_new(td_gate_t **out, int n_channels, int credits,
                const int *tags) {
  if (n_channels < 0 || credits < 1) return TD_EINVAL;
  td_gate_t *g = calloc(1, sizeof *g);
  if (!g) return TD_ENOMEM;
  g->channels = calloc(n_channels ? (size_t)n_channels : 1, sizeof *g->channels);
  if (!g->channels) {
    free(g);
    return TD_ENOMEM;
  }
  pthread_mutex_init(&g->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&g->ready_cond, &ca);
  atomic_init(&g->n_priority, 0);
  g->n_channels = g->open_channels = n_channels;
  for (int i = 0; i < n_channels; i++) {
    td_channel_t *c = &g->channels[i];
    c->gate = g;
    c->tag = tags ? tags[i] : 0;
    c->credits = credits;
    atomic_init(&c->in_use, 0);
    pthread_cond_init(&c->credit_cond, &ca);
  }
  pthread_condattr_destroy(&ca);
  *out = g;
  return 0;
}

void td_gate_set_overdraft(td_gate_t *g, int overdraft) {
  g->overdraft = overdraft > 0 ? overdraft : 0;
}

void td_gate_set_notify(td_gate_t *g, td_notify_t *n) { g->notify = n; }

void td_channel_set_notify(td_channel_t *c, td_notify_t *n) { c->notify = n; }

static void free_list(td_buffer_t *b) {
  while (b) {
    td_buffer_t *next = b->next;
    td_wbuf_destroy(&b->data);
    free(b);
    b = next;
  }
}

void td_gate_free(td_gate_t *g) {
  if (!g) return;
  free_list(g->head);
  free_list(g->phead);
  for (int i = 0; i < g->n_channels; i++) {
    free_list(g->channels[i].free);
    pthread_cond_destroy(&g->channels[i].credit_cond);
  }
  pthread_cond_destroy(&g->ready_cond);
  pthread_mutex_destroy(&g->mu);
  free(g->channels);
  free(g);
}

td_channel_t *td_gate_channel(td_gate_t *g, int i) { return &g->channels[i]; }

int td_channel_tag(const td_channel_t *c) { return c->tag; }

int td_channel_index(const td_channel_t *c) {
  return (int)(c - c->gate->channels);
}

int td_gate_size(const td_gate_t *g) { return g->n_channels; }

int td_channel_available(const td_channel_t *c, int held) {
  return atomic_load_explicit(&c->in_use, memory_order_acquire) - held < c->credits;
}

int td_channel_would_block(const td_channel_t *c) {
  return atomic_load_explicit(&c->in_use, memory_order_acquire) >= c->credits + c->gate->overdraft;
}

int td_channel_acquire(td_channel_t *c, td_buffer_t **out) {
  td_gate_t *g = c->gate;
  td_buffer_t *b = NULL;
  pthread_mutex_lock(&g->mu);
  for (;;) {
    if (g->cancelled) {
      pthread_mutex_unlock(&g->mu);
      return TD_ECANCELED;
    }
    int used = atomic_load_explicit(&c->in_use, memory_order_relaxed);
    if (used < c->credits + g->overdraft) {
      if (c->free) {
        b = c->free;
        c->free = b->next;
      } else {
        c->allocated++;
      }
      atomic_store_explicit(&c->in_use, used + 1, memory_order_release);
      break;
    }
    pthread_cond_wait(&c->credit_cond, &g->mu);
  }
  pthread_mutex_unlock(&g->mu);
  if (!b) {
    b = calloc(1, sizeof *b);
    if (!b || td_wbuf_reserve(&b->data, TD_BUFFER_SIZE + 1024) != 0) {
      free(b);
      pthread_mutex_lock(&g->mu);
      c->allocated--;
      atomic_fetch_sub(&c->in_use, 1);
      pthread_mutex_unlock(&g->mu);
      return TD_ENOMEM;
    }
    b->channel = c;
  }
  b->next = NULL;
  b->kind = TD_BUF_DATA;
  b->count = 0;
  b->data.len = 0;
  *out = b;
  return 0;
}

void td_gate_set_transport(td_gate_t *g, const td_channel_transport_t *t) { g->transport = *t; }

void td_gate_set_recycled(td_gate_t *g, void (*fn)(void *ud, int index), void *ud) {
  g->recycled = fn;
  g->recycled_ud = ud;
}

/* Ship b through the stub gate's transport; the buffer goes back to the
 * channel's free list, its credit in use until td_channel_credit. */
static void ship(td_channel_t *c, td_buffer_t *b) {
  td_gate_t *g = c->gate;
  pthread_mutex_lock(&g->mu);
  b->seq = ++c->sent;
  pthread_mutex_unlock(&g->mu);
  int rc = g->transport.send(g->transport.ud, td_channel_index(c), b);
  pthread_mutex_lock(&g->mu);
  b->next = c->free;
  c->free = b;
  pthread_mutex_unlock(&g->mu);
  if (rc) td_gate_cancel(g);
}

void td_channel_credit(td_channel_t *c, int n) {
  td_gate_t *g = c->gate;
  pthread_mutex_lock(&g->mu);
  int used = atomic_load_explicit(&c->in_use, memory_order_relaxed) - n;
  atomic_store_explicit(&c->in_use, used, memory_order_release);
  pthread_cond_signal(&c->credit_cond);
  td_notify_t *notify = used < c->credits ? c->notify : NULL;
  pthread_mutex_unlock(&g->mu);
  td_notify_signal(notify);
}

void td_channel_send(td_channel_t *c, td_buffer_t *b) {
  td_gate_t *g = c->gate;
  b->next = NULL;
  if (g->transport.send) {
    ship(c, b);
    return;
  }
  pthread_mutex_lock(&g->mu);
  b->seq = ++c->sent;
  if (g->tail) g->tail->next = b;
  else g->head = b;
  g->tail = b;
  pthread_cond_signal(&g->ready_cond);
  pthread_mutex_unlock(&g->mu);
}

int td_channel_send_priority(td_channel_t *c, const void *event, size_t len) {
  td_gate_t *g = c->gate;
  if (g->transport.send) {
    pthread_mutex_lock(&g->mu);
    uint64_t seq = c->sent;
    int cancelled = g->cancelled;
    pthread_mutex_unlock(&g->mu);
    if (cancelled) return TD_ECANCELED;
    int rc = g->transport.send_priority(g->transport.ud, td_channel_index(c), seq, event, len);
    if (rc) td_gate_cancel(g);
    return rc ? TD_ECANCELED : 0;
  }
  td_buffer_t *b = calloc(1, sizeof *b);
  if (!b || td_wbuf_reserve(&b->data, len ? len : 1) != 0) {
    free(b);
    return TD_ENOMEM;
  }
  memcpy(b->data.data, event, len);
  b->data.len = len;
  b->channel = c;
  b->kind = TD_BUF_PRIORITY;
  pthread_mutex_lock(&g->mu);
  if (g->cancelled) {
    pthread_mutex_unlock(&g->mu);
    free_list(b);
    return TD_ECANCELED;
  }
  b->seq = c->sent;
  if (g->ptail) g->ptail->next = b;
  else g->phead = b;
  g->ptail = b;
  atomic_fetch_add(&g->n_priority, 1);
  pthread_cond_signal(&g->ready_cond);
  pthread_mutex_unlock(&g->mu);
  td_notify_signal(g->notify);
  return 0;
}

/* Give a credit back; returns the sender's notifier when the channel just
 * became available, for a sender that fills a buffer of it or not (signal
 * it after unlocking), else NULL. */
static td_notify_t *recycle_locked(td_buffer_t *b) {
  td_channel_t *c = b->channel;
  b->next = c->free;
  c->free = b;
  int used = atomic_load_explicit(&c->in_use, memory_order_relaxed) - 1;
  atomic_store_explicit(&c->in_use, used, memory_order_release);
  pthread_cond_signal(&c->credit_cond);
  return used == c->credits || used == c->credits - 1 ? c->notify : NULL;
}

/* The next priority event, or NULL (under the gate's lock). */
static td_buffer_t *pop_priority(td_gate_t *g) {
  td_buffer_t *b = g->phead;
  if (b) {
    g->phead = b->next;
    if (!g->phead) g->ptail = NULL;
    b->next = NULL;
    atomic_fetch_sub(&g->n_priority, 1);
  }
  return b;
}

int td_gate_poll(td_gate_t *g, td_buffer_t **out, int timeout_ms) {
  struct timespec deadline;
  if (timeout_ms >= 0) td_deadline(&deadline, CLOCK_MONOTONIC, timeout_ms);
  int rc;
  pthread_mutex_lock(&g->mu);
  for (;;) {
    if (g->cancelled) {
      rc = TD_ECANCELED;
      break;
    }
    td_buffer_t *b = pop_priority(g);
    if (b) {
      *out = b;
      rc = 1;
      break;
    }
    b = g->head;
    if (b) {
      g->head = b->next;
      if (!g->head) g->tail = NULL;
      if (b->kind == TD_BUF_END) {
        g->open_channels--;
        int index = td_channel_index(b->channel);
        td_notify_t *n = recycle_locked(b);
        if (n || g->recycled) { /* outside the gate's lock */
          pthread_mutex_unlock(&g->mu);
          td_notify_signal(n);
          if (g->recycled) g->recycled(g->recycled_ud, index);
          pthread_mutex_lock(&g->mu);
        }
        continue;
      }
      *out = b;
      rc = 1;
      break;
    }
    if (g->open_channels == 0) {
      rc = 0;
      break;
    }
    if (timeout_ms == 0) { /* a look, not a wait */
      rc = -EAGAIN;
      break;
    }
    if (timeout_ms < 0) {
      pthread_cond_wait(&g->ready_cond, &g->mu);
    } else if (pthread_cond_timedwait(&g->ready_cond, &g->mu, &deadline) ==
               ETIMEDOUT) {
      int any = g->head != NULL || g->phead != NULL || g->open_channels == 0 ||
                g->cancelled;
      if (!any) {
        rc = -EAGAIN;
        break;
      }
    }
  }
  pthread_mutex_unlock(&g->mu);
  return rc;
}

int td_gate_poll_priority(td_gate_t *g, td_buffer_t **out) {
  if (atomic_load_explicit(&g->n_priority, memory_order_acquire) == 0) return 0;
  pthread_mutex_lock(&g->mu);
  td_buffer_t *b = pop_priority(g);
  pthread_mutex_unlock(&g->mu);
  if (!b) return 0;
  *out = b;
  return 1;
}

int td_gate_priority_pending(const td_gate_t *g) {
  return atomic_load_explicit(&((td_gate_t *)g)->n_priority, memory_order_acquire) > 0;
}

int td_gate_copy_queued(td_gate_t *g, int channel, uint64_t upto_seq,
                        td_wbuf_t *out) {
  td_channel_t *c = &g->channels[channel];
  size_t before = out->len;
  int rc = 0;
  pthread_mutex_lock(&g->mu);
  for (td_buffer_t *b = g->head; b && rc == 0; b = b->next) {
    if (b->channel != c || b->kind != TD_BUF_DATA || b->seq > upto_seq) continue;
    if (td_wbuf_reserve(out, b->data.len) != 0) {
      rc = TD_ENOMEM;
      break;
    }
    memcpy(out->data + out->len, b->data.data, b->data.len);
    out->len += b->data.len;
  }
  pthread_mutex_unlock(&g->mu);
  if (rc) out->len = before;
  return rc;
}

int td_gate_available(td_gate_t *g) {
  pthread_mutex_lock(&g->mu);
  int any = g->head != NULL || g->phead != NULL || g->open_channels == 0 ||
            g->cancelled;
  pthread_mutex_unlock(&g->mu);
  return any;
}

void td_gate_recycle(td_gate_t *g, td_buffer_t *b) {
  if (b->kind == TD_BUF_PRIORITY) {
    free_list(b);
    return;
  }
  g = b->channel->gate;
  int index = td_channel_index(b->channel);
  pthread_mutex_lock(&g->mu);
  td_notify_t *n = recycle_locked(b);
  pthread_mutex_unlock(&g->mu);
  td_notify_signal(n);
  if (g->recycled) g->recycled(g->recycled_ud, index);
}

int td_channel_deliver(td_channel_t *c, td_buf_kind_t kind, uint32_t count, uint64_t seq,
                       const void *data, size_t len) {
  td_gate_t *g = c->gate;
  if (kind == TD_BUF_PRIORITY) {
    pthread_mutex_lock(&g->mu);
    uint64_t sent = c->sent;
    pthread_mutex_unlock(&g->mu);
    if (seq != sent) return TD_EINVAL; /* it must follow what it overtakes */
    return td_channel_send_priority(c, data, len);
  }
  if ((kind != TD_BUF_DATA && kind != TD_BUF_END) || td_channel_would_block(c)) return TD_EINVAL;
  pthread_mutex_lock(&g->mu);
  uint64_t next = c->sent + 1;
  pthread_mutex_unlock(&g->mu);
  if (seq != next) return TD_EINVAL;
  td_buffer_t *b;
  int rc = td_channel_acquire(c, &b);
  if (rc) return rc;
  if (len && td_wbuf_reserve(&b->data, len) != 0) {
    td_gate_recycle(g, b);
    return TD_ENOMEM;
  }
  if (len) memcpy(b->data.data, data, len);
  b->data.len = len;
  b->kind = kind;
  b->count = count;
  td_channel_send(c, b);
  return 0;
}

void td_gate_cancel(td_gate_t *g) {
  pthread_mutex_lock(&g->mu);
  g->cancelled = 1;
  pthread_cond_broadcast(&g->ready_cond);
  for (int i = 0; i < g->n_channels; i++)
    pthread_cond_broadcast(&g->channels[i].credit_cond);
  pthread_mutex_unlock(&g->mu);
  td_notify_signal(g->notify);
  for (int i = 0; i < g->n_channels; i++) td_notify_signal(g->channels[i].notify);
}
