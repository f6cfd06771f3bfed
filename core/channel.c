/* channel.c - local channels with credit-based flow control (channel.h). */
#include "channel.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "error.h"

struct td_channel {
  td_gate_t *gate;
  int tag;
  int credits;         /* buffers this channel may have in existence */
  int allocated;       /* buffers created so far (lazily, up to credits) */
  td_buffer_t *free;   /* empty buffers: the sender's credit */
  pthread_cond_t credit_cond;
};

struct td_gate {
  pthread_mutex_t mu;
  pthread_cond_t ready_cond;
  td_buffer_t *head, *tail; /* buffers queued for the receiver */
  int n_channels;
  int open_channels;        /* channels that have not sent END */
  int cancelled;
  td_channel_t *channels;
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
  g->n_channels = g->open_channels = n_channels;
  for (int i = 0; i < n_channels; i++) {
    td_channel_t *c = &g->channels[i];
    c->gate = g;
    c->tag = tags ? tags[i] : 0;
    c->credits = credits;
    pthread_cond_init(&c->credit_cond, &ca);
  }
  pthread_condattr_destroy(&ca);
  *out = g;
  return 0;
}

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

int td_channel_acquire(td_channel_t *c, td_buffer_t **out) {
  td_gate_t *g = c->gate;
  td_buffer_t *b = NULL;
  pthread_mutex_lock(&g->mu);
  for (;;) {
    if (g->cancelled) {
      pthread_mutex_unlock(&g->mu);
      return TD_ECANCELED;
    }
    if (c->free) {
      b = c->free;
      c->free = b->next;
      break;
    }
    if (c->allocated < c->credits) {
      c->allocated++;
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

void td_channel_send(td_channel_t *c, td_buffer_t *b) {
  td_gate_t *g = c->gate;
  b->next = NULL;
  pthread_mutex_lock(&g->mu);
  if (g->tail) g->tail->next = b;
  else g->head = b;
  g->tail = b;
  pthread_cond_signal(&g->ready_cond);
  pthread_mutex_unlock(&g->mu);
}

static void recycle_locked(td_buffer_t *b) {
  td_channel_t *c = b->channel;
  b->next = c->free;
  c->free = b;
  pthread_cond_signal(&c->credit_cond);
}

int td_gate_poll(td_gate_t *g, td_buffer_t **out, int timeout_ms) {
  struct timespec deadline;
  if (timeout_ms >= 0) {
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
      deadline.tv_sec++;
      deadline.tv_nsec -= 1000000000L;
    }
  }
  pthread_mutex_lock(&g->mu);
  for (;;) {
    if (g->cancelled) {
      pthread_mutex_unlock(&g->mu);
      return TD_ECANCELED;
    }
    td_buffer_t *b = g->head;
    if (b) {
      g->head = b->next;
      if (!g->head) g->tail = NULL;
      if (b->kind == TD_BUF_END) {
        g->open_channels--;
        recycle_locked(b);
        continue;
      }
      pthread_mutex_unlock(&g->mu);
      *out = b;
      return 1;
    }
    if (g->open_channels == 0) {
      pthread_mutex_unlock(&g->mu);
      return 0;
    }
    if (timeout_ms < 0) {
      pthread_cond_wait(&g->ready_cond, &g->mu);
    } else if (pthread_cond_timedwait(&g->ready_cond, &g->mu, &deadline) ==
               ETIMEDOUT) {
      int any = g->head != NULL || g->open_channels == 0 || g->cancelled;
      if (!any) {
        pthread_mutex_unlock(&g->mu);
        return -EAGAIN;
      }
    }
  }
}

int td_gate_available(td_gate_t *g) {
  pthread_mutex_lock(&g->mu);
  int any = g->head != NULL || g->open_channels == 0 || g->cancelled;
  pthread_mutex_unlock(&g->mu);
  return any;
}

void td_gate_recycle(td_gate_t *g, td_buffer_t *b) {
  g = b->channel->gate;
  pthread_mutex_lock(&g->mu);
  recycle_locked(b);
  pthread_mutex_unlock(&g->mu);
}

void td_gate_cancel(td_gate_t *g) {
  pthread_mutex_lock(&g->mu);
  g->cancelled = 1;
  pthread_cond_broadcast(&g->ready_cond);
  for (int i = 0; i < g->n_channels; i++)
    pthread_cond_broadcast(&g->channels[i].credit_cond);
  pthread_mutex_unlock(&g->mu);
}
