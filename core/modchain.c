/* modchain.c - module operators of a task, run in C (see modchain.h). */
#include "modchain.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "exchange.h"
#include "job.h"
#include "msgpack.h"
#include "task.h"

#define MAX_CALL_RECORDS 65536u /* the most one call may be allowed to emit */
#define DELIVER_AT 4096u        /* a keyed process hands its output on at this size */

enum { T_NODE, T_EDGE, T_BOUNDARY, T_DISCARD };

typedef struct target {
  int type;
  int node;         /* T_NODE */
  int edge;         /* T_EDGE */
  int hash;         /* T_EDGE: a hash edge, keyed by key */
  td_keyspec_t key;
  int boundary;     /* T_BOUNDARY */
} target_t;

/* Arrays of record views: record i is data[off[i] .. stop[i]), ts[i]. */
typedef struct views {
  uint32_t *off, *stop;
  int64_t *ts;
  uint32_t cap;
} views_t;

/* Room for n views. 0 or TD_ENOMEM (the arrays kept as they were). */
static int views_room(views_t *v, uint32_t n) {
  if (n <= v->cap) return 0;
  uint32_t cap = v->cap ? v->cap : 1024;
  while (cap < n) cap *= 2;
  uint32_t *off = realloc(v->off, sizeof *off * cap);
  if (off) v->off = off;
  uint32_t *stop = off ? realloc(v->stop, sizeof *stop * cap) : NULL;
  if (stop) v->stop = stop;
  int64_t *ts = stop ? realloc(v->ts, sizeof *ts * cap) : NULL;
  if (!ts) return TD_ENOMEM;
  v->ts = ts;
  v->cap = cap;
  return 0;
}

static void views_free(views_t *v) {
  free(v->off);
  free(v->stop);
  free(v->ts);
}

/* Records copied for a Lua consumer. */
typedef struct boundary {
  td_wbuf_t data;
  views_t v;
  uint32_t n;
  int has_ts;
} boundary_t;

typedef struct node {
  td_ctx_t *ctx;
  td_keyspec_t key;     /* keyed process */
  target_t *targets;
  int n_targets;
  td_out_t out;
  views_t outv;         /* out.off, stop, ts */
  /* filter: flags and the kept views */
  uint8_t *keep;
  uint32_t keep_cap;
  views_t kept;
  /* the module's part of a snapshot restored before open */
  char *stash;
  size_t stash_len;
  int has_stash;
  int own_rescaled;     /* td_modchain_rescale restored the (empty) own part */
} node_t;

struct td_modchain {
  td_task_t *task;
  node_t *nodes;
  int n_nodes, cap_nodes;
  boundary_t *bnd;
  int n_bnd;
  td_wbuf_t key;        /* canonical key bytes */
  int failed;
  char err[2048];
};

/* ---- errors ---- */

__attribute__((format(printf, 4, 5))) static int fail(td_modchain_t *c, int node, int rc,
                                                     const char *fmt, ...) {
  if (rc == TD_ECANCELED) return rc;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, sizeof c->err, fmt, ap);
  va_end(ap);
  c->failed = node;
  return rc;
}

/* The module's failure rc in node (its own message). */
static int fail_module(td_modchain_t *c, int node, int rc) {
  if (rc == TD_ECANCELED) return rc;
  if (rc > 0) rc = TD_EINVAL;
  td_module_ctx_message(c->nodes[node].ctx, rc, c->err, sizeof c->err);
  c->failed = node;
  return rc;
}

/* "module 'M' operator 'O' (uid 'U'): " + the rest. */
__attribute__((format(printf, 4, 5))) static int fail_node(td_modchain_t *c, int node, int rc,
                                                          const char *fmt, ...) {
  char m[1500];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m, sizeof m, fmt, ap);
  va_end(ap);
  const td_info_t *in = &c->nodes[node].ctx->info;
  return fail(c, node, rc, "module '%s' operator '%s' (uid '%s'): %s", in->module, in->op, in->uid,
              m);
}

const char *td_modchain_error(const td_modchain_t *c) { return c->err; }
int td_modchain_failed(const td_modchain_t *c) { return c->failed; }

/* ---- building ---- */

static int host_grow(td_buf_t *b, size_t extra) {
  if (b->cap - b->len >= extra) return 0;
  size_t need = b->len + extra;
  if (need > UINT32_MAX || need < b->len) return TD_ENOMEM;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < need) cap *= 2;
  if (cap > UINT32_MAX) cap = UINT32_MAX;
  char *d = td_realloc(b->data, cap);
  if (!d) return TD_ENOMEM;
  b->data = d;
  b->cap = cap;
  return 0;
}

int td_modchain_new(td_modchain_t **out, td_task_t *task) {
  *out = calloc(1, sizeof **out);
  if (!*out) return TD_ENOMEM;
  (*out)->task = task;
  (*out)->failed = -1;
  return 0;
}

static void free_keyspec(td_keyspec_t *k) { free((char *)k->field); }

static int copy_keyspec(td_keyspec_t *dst, const td_keyspec_t *src) {
  memset(dst, 0, sizeof *dst);
  if (!src || src->kind == TD_KEY_NONE) return 0;
  *dst = *src;
  if (src->kind == TD_KEY_FIELD) {
    char *f = malloc(src->flen + 1);
    if (!f) return TD_ENOMEM;
    memcpy(f, src->field, src->flen);
    f[src->flen] = 0;
    dst->field = f;
  } else if (src->kind != TD_KEY_INDEX) {
    return TD_EINVAL;
  }
  return 0;
}

void td_modchain_free(td_modchain_t *c) {
  if (!c) return;
  for (int i = 0; i < c->n_nodes; i++) {
    node_t *n = &c->nodes[i];
    td_module_ctx_free(n->ctx);
    free_keyspec(&n->key);
    for (int t = 0; t < n->n_targets; t++) free_keyspec(&n->targets[t].key);
    free(n->targets);
    td_free(n->out.buf.data);
    views_free(&n->outv);
    free(n->keep);
    views_free(&n->kept);
    free(n->stash);
  }
  free(c->nodes);
  for (int b = 0; b < c->n_bnd; b++) {
    td_wbuf_destroy(&c->bnd[b].data);
    views_free(&c->bnd[b].v);
  }
  free(c->bnd);
  td_wbuf_destroy(&c->key);
  free(c);
}

int td_modchain_add(td_modchain_t *c, const td_module_t *m, const char *op_name,
                    const td_module_spec_t *spec, const td_keyspec_t *key, int *node) {
  const td_op_t *op = td_module_find_op(m, op_name);
  if (!op)
    return fail(c, -1, TD_EINVAL, "module '%s' has no operator '%s'", td_module_name(m), op_name);
  if (c->n_nodes == c->cap_nodes) {
    int cap = c->cap_nodes ? 2 * c->cap_nodes : 4;
    node_t *nodes = realloc(c->nodes, sizeof *nodes * (size_t)cap);
    if (!nodes) return fail(c, -1, TD_ENOMEM, "out of memory");
    c->nodes = nodes;
    c->cap_nodes = cap;
  }
  node_t *n = &c->nodes[c->n_nodes];
  memset(n, 0, sizeof *n);
  int rc = td_module_ctx_new(&n->ctx, m, op, spec);
  if (rc == 0) rc = copy_keyspec(&n->key, key);
  if (rc) {
    td_module_ctx_free(n->ctx);
    return fail(c, -1, rc, "cannot create operator '%s' of module '%s': %s", op_name,
                td_module_name(m), td_strerror(rc));
  }
  n->out.buf.grow = host_grow;
  *node = c->n_nodes++;
  return 0;
}

td_ctx_t *td_modchain_ctx(td_modchain_t *c, int node) { return c->nodes[node].ctx; }

static target_t *add_target(td_modchain_t *c, int from, int type) {
  if (from < 0 || from >= c->n_nodes) return NULL;
  node_t *n = &c->nodes[from];
  target_t *t = realloc(n->targets, sizeof *t * (size_t)(n->n_targets + 1));
  if (!t) return NULL;
  n->targets = t;
  t = &t[n->n_targets++];
  memset(t, 0, sizeof *t);
  t->type = type;
  return t;
}

int td_modchain_to_node(td_modchain_t *c, int from, int to) {
  if (to < 0 || to >= c->n_nodes || to == from) return TD_EINVAL;
  target_t *t = add_target(c, from, T_NODE);
  if (!t) return TD_ENOMEM;
  t->node = to;
  return 0;
}

int td_modchain_to_edge(td_modchain_t *c, int from, int edge, const td_keyspec_t *key) {
  if (!c->task) return TD_EINVAL;
  td_subtask_t *st = td_task_subtask(c->task);
  const td_job_spec_t *spec = td_job_spec_of(st->job);
  if (edge < 0 || edge >= spec->n_edges || !st->outputs[edge].n) return TD_EINVAL;
  int hash = st->outputs[edge].partition == TD_PART_HASH;
  if (hash && (!key || key->kind == TD_KEY_NONE)) return TD_EINVAL;
  target_t *t = add_target(c, from, T_EDGE);
  if (!t) return TD_ENOMEM;
  t->edge = edge;
  t->hash = hash;
  return hash ? copy_keyspec(&t->key, key) : 0;
}

int td_modchain_to_boundary(td_modchain_t *c, int from, int *b) {
  boundary_t *bs = realloc(c->bnd, sizeof *bs * (size_t)(c->n_bnd + 1));
  if (!bs) return TD_ENOMEM;
  c->bnd = bs;
  memset(&bs[c->n_bnd], 0, sizeof bs[c->n_bnd]);
  target_t *t = add_target(c, from, T_BOUNDARY);
  if (!t) return TD_ENOMEM;
  t->boundary = c->n_bnd;
  *b = c->n_bnd++;
  return 0;
}

int td_modchain_to_discard(td_modchain_t *c, int from) {
  return add_target(c, from, T_DISCARD) ? 0 : TD_ENOMEM;
}

/* ---- keys ---- */

/* The value of item `index` (1-based) of the array or integer-keyed map
 * at p: 1 and *v, 0 absent, TD_ECORRUPT. */
static int index_get(const char *p, const char *end, int64_t index, const char **v) {
  td_mp_item_t it;
  if (td_mp_read(&p, end, &it) != 0) return TD_ECORRUPT;
  if (it.type == TD_MP_ARRAY) {
    if (index < 1 || index > it.v.n) return 0;
    for (int64_t i = 1; i < index; i++)
      if (td_mp_skip(&p, end) != 0) return TD_ECORRUPT;
    *v = p;
    return 1;
  }
  if (it.type != TD_MP_MAP) return 0;
  for (uint32_t i = 0; i < it.v.n; i++) {
    const char *k0 = p;
    td_mp_item_t k;
    if (td_mp_read(&p, end, &k) != 0) return TD_ECORRUPT;
    if (k.type == TD_MP_INT && k.v.i == index) {
      *v = p;
      return 1;
    }
    p = k0;
    if (td_mp_skip(&p, end) != 0 || td_mp_skip(&p, end) != 0) return TD_ECORRUPT;
  }
  return 0;
}

/* The length of the value at v when its bytes are canonical as they are
 * (a fixint, a string of at most 255 bytes: the common keys), else 0. */
static size_t canonical_as_is(const char *v, const char *end) {
  unsigned c = (unsigned char)*v;
  size_t avail = (size_t)(end - v), n = 0;
  if (c <= 0x7f || c >= 0xe0) n = 1;
  else if (c >= 0xa0 && c <= 0xbf) n = 1 + (c & 0x1f);
  else if (c == 0xd9 && avail >= 2) n = 2 + (unsigned char)v[1];
  return n <= avail ? n : 0;
}

/* The canonical key bytes of record rec[0 .. len) by spec: *k, *klen,
 * pointing into the record or into c->key. */
static int key_of(td_modchain_t *c, int node, const td_keyspec_t *spec, const char *rec,
                  size_t len, const char **k, size_t *klen) {
  const char *end = rec + len, *v = NULL;
  int rc = spec->kind == TD_KEY_FIELD ? td_mp_map_get(rec, end, spec->field, spec->flen, &v)
                                      : index_get(rec, end, spec->index, &v);
  if (rc == 1 && (unsigned char)*v == 0xc0) rc = 0;
  if (rc == 0) {
    char what[200];
    if (spec->kind == TD_KEY_FIELD) snprintf(what, sizeof what, "field '%s'", spec->field);
    else snprintf(what, sizeof what, "index %lld", (long long)spec->index);
    return fail(c, node, TD_EINVAL, "key_by: the key of a record is nil (%s)", what);
  }
  if (rc == 1 && (*klen = canonical_as_is(v, end)) > 0) {
    *k = v;
    return 0;
  }
  c->key.len = 0;
  if (rc == 1) rc = td_mp_canonical(&v, end, &c->key);
  if (rc == TD_ENOMEM) return fail(c, node, rc, "out of memory");
  if (rc) return fail(c, node, rc, "key_by: a record's key cannot be read (corrupt record)");
  *k = c->key.data;
  *klen = c->key.len;
  return 0;
}

/* ---- running ---- */

static int run(td_modchain_t *c, int node, const td_batch_t *in, const char *keys,
               const uint32_t *key_ends);

/* Room for max entries in a node's output arrays. */
static int out_room(node_t *n, uint32_t max) {
  if (views_room(&n->outv, max)) return TD_ENOMEM;
  n->out.off = n->outv.off;
  n->out.stop = n->outv.stop;
  n->out.ts = n->outv.ts;
  return 0;
}

static void out_reset(td_out_t *o) {
  o->n = 0;
  o->max = 0;
  o->mark = 0;
  o->overflow = 0;
  o->has_ts = 0;
  o->buf.len = 0;
}

static void out_view(const td_out_t *o, td_batch_t *b) {
  memset(b, 0, sizeof *b);
  b->n = (int)o->n;
  b->edge = -1;
  b->has_ts = o->has_ts;
  b->data = o->buf.data;
  b->off = o->off;
  b->stop = o->stop;
  b->ts = o->has_ts ? o->ts : NULL;
}

static int emit_edge(td_modchain_t *c, int node, const target_t *t, const td_batch_t *b) {
  for (int i = 0; i < b->n; i++) {
    const char *rec = b->data + b->off[i];
    size_t len = b->stop[i] - b->off[i];
    const char *k = NULL;
    size_t klen = 0;
    if (t->hash) {
      int rc = key_of(c, node, &t->key, rec, len, &k, &klen);
      if (rc) return rc;
    }
    int rc = td_task_emit(c->task, t->edge, rec, len, td_in_ts(b, i), k, klen);
    if (rc) return fail(c, -1, rc, "%s", td_task_error(c->task));
  }
  return 0;
}

static int append_boundary(td_modchain_t *c, boundary_t *bd, const td_batch_t *b) {
  if (views_room(&bd->v, bd->n + (uint32_t)b->n)) return fail(c, -1, TD_ENOMEM, "out of memory");
  for (int i = 0; i < b->n; i++) {
    size_t len = b->stop[i] - b->off[i];
    if (td_wbuf_reserve(&bd->data, len) || bd->data.len + len > UINT32_MAX)
      return fail(c, -1, TD_ENOMEM, "out of memory");
    memcpy(bd->data.data + bd->data.len, b->data + b->off[i], len);
    bd->v.off[bd->n] = (uint32_t)bd->data.len;
    bd->data.len += len;
    bd->v.stop[bd->n] = (uint32_t)bd->data.len;
    bd->v.ts[bd->n] = td_in_ts(b, i);
    bd->n++;
  }
  if (b->ts) bd->has_ts = 1;
  return 0;
}

/* Hand node's output batch b to its targets. */
static int deliver(td_modchain_t *c, int node, const td_batch_t *b) {
  if (b->n == 0) return 0;
  node_t *n = &c->nodes[node];
  for (int i = 0; i < n->n_targets; i++) {
    const target_t *t = &n->targets[i];
    int rc = 0;
    switch (t->type) {
    case T_NODE: rc = run(c, t->node, b, NULL, NULL); break;
    case T_EDGE: rc = emit_edge(c, node, t, b); break;
    case T_BOUNDARY: rc = append_boundary(c, &c->bnd[t->boundary], b); break;
    default: break;
    }
    if (rc) return rc;
  }
  return 0;
}

static int deliver_out(td_modchain_t *c, int node) {
  td_batch_t b;
  out_view(&c->nodes[node].out, &b);
  int rc = deliver(c, node, &b);
  out_reset(&c->nodes[node].out);
  return rc;
}

/* After a callback: its code, then the output contract (a map's process:
 * exactly in_n records; in_n < 0: no such check). */
static int check_call(td_modchain_t *c, int node, int rc, const char *call, int64_t in_n) {
  node_t *n = &c->nodes[node];
  if (n->out.overflow)
    return fail_node(c, node, TD_EOVERFLOW,
                     "%s emitted more records than its output buffer allows: at most %u in this "
                     "call (%s%u per input record; see td_out_t in tide.h)",
                     call, n->out.max, n->ctx->op->kind == TD_OP_SOURCE ? "the batch asked for, " : "",
                     n->ctx->op->max_fanout);
  if (rc < 0) return fail_module(c, node, rc);
  if (in_n >= 0 && n->ctx->op->kind == TD_OP_MAP && n->out.n != (uint32_t)in_n)
    return fail_node(c, node, TD_EINVAL,
                     "a map emits exactly one record per input record: this one emitted %u for %u",
                     n->out.n, (uint32_t)in_n);
  return 0;
}

static int run_process(td_modchain_t *c, int node, const td_batch_t *in) {
  node_t *n = &c->nodes[node];
  const td_op_t *op = n->ctx->op;
  uint32_t fan = op->max_fanout ? op->max_fanout : 1;
  uint32_t slice = MAX_CALL_RECORDS / fan;
  if (slice < 1) slice = 1;
  for (int start = 0; start < in->n; start += (int)slice) {
    td_batch_t part = *in;
    part.n = in->n - start < (int)slice ? in->n - start : (int)slice;
    part.off = in->off + start;
    part.stop = in->stop + start;
    part.ts = in->ts ? in->ts + start : NULL;
    uint32_t max = (uint32_t)part.n * fan;
    if (out_room(n, max)) return fail(c, node, TD_ENOMEM, "out of memory");
    out_reset(&n->out);
    n->out.max = max;
    td_module_ctx_begin(n->ctx);
    int rc = op->process(n->ctx, n->ctx->state, &part, &n->out);
    rc = check_call(c, node, rc, "process", part.n);
    if (rc == 0) rc = deliver_out(c, node);
    if (rc) return rc;
  }
  return 0;
}

static int run_filter(td_modchain_t *c, int node, const td_batch_t *in) {
  node_t *n = &c->nodes[node];
  uint32_t cnt = (uint32_t)in->n;
  if (cnt > n->keep_cap) {
    uint8_t *keep = realloc(n->keep, cnt);
    if (!keep) return fail(c, node, TD_ENOMEM, "out of memory");
    n->keep = keep;
    n->keep_cap = cnt;
  }
  if (views_room(&n->kept, cnt)) return fail(c, node, TD_ENOMEM, "out of memory");
  memset(n->keep, 0, cnt);
  td_module_ctx_begin(n->ctx);
  int rc = n->ctx->op->filter(n->ctx, n->ctx->state, in, n->keep);
  if (rc < 0) return fail_module(c, node, rc);
  td_batch_t kept = *in;
  uint32_t k = 0;
  views_t *v = &n->kept;
  for (uint32_t i = 0; i < cnt; i++) {
    v->off[k] = in->off[i];
    v->stop[k] = in->stop[i];
    if (in->ts) v->ts[k] = in->ts[i];
    k += n->keep[i] != 0;
  }
  kept.n = (int)k;
  kept.off = v->off;
  kept.stop = v->stop;
  kept.ts = in->ts ? v->ts : NULL;
  return deliver(c, node, &kept);
}

/* Begin a keyed callback that may emit max_fanout records. */
static int keyed_room(td_modchain_t *c, int node) {
  node_t *n = &c->nodes[node];
  uint32_t fan = n->ctx->op->max_fanout;
  if (n->out.n >= DELIVER_AT) {
    int rc = deliver_out(c, node);
    if (rc) return rc;
  }
  if (out_room(n, n->out.n + fan)) return fail(c, node, TD_ENOMEM, "out of memory");
  n->out.max = n->out.n + fan;
  td_module_ctx_begin(n->ctx);
  return 0;
}

static int run_keyed(td_modchain_t *c, int node, const td_batch_t *in, const char *keys,
                     const uint32_t *key_ends) {
  node_t *n = &c->nodes[node];
  td_ctx_t *ctx = n->ctx;
  out_reset(&n->out);
  uint32_t kstart = 0;
  int rc = 0;
  for (int i = 0; rc == 0 && i < in->n; i++) {
    const char *rec = in->data + in->off[i];
    size_t len = in->stop[i] - in->off[i];
    const char *k;
    size_t klen;
    if (n->key.kind != TD_KEY_NONE) {
      if ((rc = key_of(c, node, &n->key, rec, len, &k, &klen))) break;
    } else if (keys && key_ends) {
      k = keys + kstart;
      klen = key_ends[i] - kstart;
      kstart = key_ends[i];
    } else {
      rc = fail_node(c, node, TD_EINVAL, "a keyed process got records without keys");
      break;
    }
    rc = td_keyed_set_key(ctx->keyed, k, klen);
    if (rc == TD_EINVAL) {
      rc = fail_node(c, node, rc, "a record's key belongs to a key group of another subtask "
                                  "(its exchange is not partitioned by this key)");
      break;
    }
    if (rc) {
      rc = fail(c, node, rc, "out of memory");
      break;
    }
    if ((rc = keyed_room(c, node))) break;
    ctx->in_callback = 1;
    rc = ctx->op->on_record(ctx, ctx->state, rec, len, td_in_ts(in, i), &n->out);
    ctx->in_callback = 0;
    rc = check_call(c, node, rc, "on_record", -1);
  }
  td_keyed_clear_key(ctx->keyed);
  if (rc == 0) rc = deliver_out(c, node);
  return rc;
}

static int run(td_modchain_t *c, int node, const td_batch_t *in, const char *keys,
               const uint32_t *key_ends) {
  node_t *n = &c->nodes[node];
  switch (n->ctx->op->kind) {
  case TD_OP_MAP:
  case TD_OP_FLAT_MAP: return run_process(c, node, in);
  case TD_OP_FILTER: return run_filter(c, node, in);
  case TD_OP_PROCESS: return run_keyed(c, node, in, keys, key_ends);
  case TD_OP_SINK: {
    td_module_ctx_begin(n->ctx);
    int rc = n->ctx->op->write(n->ctx, n->ctx->state, in);
    return rc < 0 ? fail_module(c, node, rc) : 0;
  }
  default:
    return fail_node(c, node, TD_EINVAL, "a source takes no input");
  }
}

static int check_node(td_modchain_t *c, int node) {
  if (node < 0 || node >= c->n_nodes) return fail(c, -1, TD_EINVAL, "no node %d", node);
  if (!c->nodes[node].ctx->opened)
    return fail_node(c, node, TD_EINVAL, "used before it was opened");
  return 0;
}

static void flush_due(td_modchain_t *c) {
  if (c->task) td_task_flush_due(c->task);
}

int td_modchain_push(td_modchain_t *c, int node, const td_batch_t *in, const char *keys,
                     const uint32_t *key_ends) {
  int rc = check_node(c, node);
  if (rc == 0 && in->n > 0) rc = run(c, node, in, keys, key_ends);
  flush_due(c);
  return rc;
}

int td_modchain_poll(td_modchain_t *c, int node, int timeout_ms, td_batch_t *ev) {
  int rc = check_node(c, node);
  if (rc) return rc;
  rc = td_task_poll(c->task, timeout_ms, ev);
  if (rc < 0) return fail(c, -1, rc, "%s", td_task_error(c->task));
  if (rc == TD_TASK_BATCH && ev->n > 0) {
    int r = run(c, node, ev, NULL, NULL);
    flush_due(c);
    if (r) return r;
  }
  return rc;
}

int td_modchain_read(td_modchain_t *c, int node, uint32_t max, uint32_t *n_out, int *ended) {
  *n_out = 0;
  *ended = 0;
  int rc = check_node(c, node);
  if (rc) return rc;
  node_t *n = &c->nodes[node];
  if (n->ctx->op->kind != TD_OP_SOURCE) return fail_node(c, node, TD_EINVAL, "not a source");
  if (max < 1) max = 1;
  if (out_room(n, max)) return fail(c, node, TD_ENOMEM, "out of memory");
  out_reset(&n->out);
  n->out.max = max;
  td_module_ctx_begin(n->ctx);
  rc = n->ctx->op->read(n->ctx, n->ctx->state, &n->out);
  if (rc == TD_SOURCE_END) *ended = 1;
  rc = check_call(c, node, rc < 0 ? rc : 0, "read", -1);
  *n_out = n->out.n;
  if (rc == 0) rc = deliver_out(c, node);
  flush_due(c);
  return rc;
}

int td_modchain_watermark(td_modchain_t *c, int node, int64_t wm) {
  int rc = check_node(c, node);
  if (rc) return rc;
  node_t *n = &c->nodes[node];
  td_ctx_t *ctx = n->ctx;
  if (wm > ctx->watermark) ctx->watermark = wm;
  if (!ctx->keyed) return 0;
  out_reset(&n->out);
  int64_t ts;
  while (rc == 0 && (rc = td_keyed_next_timer(ctx->keyed, wm, &ts)) == 1) {
    if (!ctx->op->on_timer) {
      rc = 0;
      continue;
    }
    if ((rc = keyed_room(c, node))) break;
    ctx->in_callback = 1;
    rc = ctx->op->on_timer(ctx, ctx->state, ts, &n->out);
    ctx->in_callback = 0;
    rc = check_call(c, node, rc, "on_timer", -1);
  }
  if (rc == TD_ENOMEM) rc = fail(c, node, rc, "out of memory");
  td_keyed_clear_key(ctx->keyed);
  if (rc == 0) rc = deliver_out(c, node);
  flush_due(c);
  return rc;
}

int td_modchain_finish(td_modchain_t *c, int node) {
  int rc = check_node(c, node);
  if (rc) return rc;
  node_t *n = &c->nodes[node];
  const td_op_t *op = n->ctx->op;
  if (op->kind == TD_OP_SINK) return td_modchain_pre_commit(c, node, TD_FINAL_CHECKPOINT);
  if (!op->finish) return 0;
  uint32_t max = op->kind == TD_OP_SOURCE ? 1024 : op->max_fanout;
  if (out_room(n, max)) return fail(c, node, TD_ENOMEM, "out of memory");
  out_reset(&n->out);
  n->out.max = max;
  td_module_ctx_begin(n->ctx);
  rc = op->finish(n->ctx, n->ctx->state, &n->out);
  rc = check_call(c, node, rc, "finish", -1);
  if (rc == 0) rc = deliver_out(c, node);
  flush_due(c);
  return rc;
}

int td_modchain_pre_commit(td_modchain_t *c, int node, int64_t id) {
  int rc = check_node(c, node);
  if (rc) return rc;
  node_t *n = &c->nodes[node];
  if (n->ctx->op->kind != TD_OP_SINK || !n->ctx->op->pre_commit) return 0;
  td_module_ctx_begin(n->ctx);
  rc = n->ctx->op->pre_commit(n->ctx, n->ctx->state, id);
  return rc < 0 ? fail_module(c, node, rc) : 0;
}

int td_modchain_commit(td_modchain_t *c, int node, int64_t id) {
  int rc = check_node(c, node);
  if (rc) return rc;
  node_t *n = &c->nodes[node];
  if (n->ctx->op->kind != TD_OP_SINK || !n->ctx->op->commit) return 0;
  td_module_ctx_begin(n->ctx);
  rc = n->ctx->op->commit(n->ctx, n->ctx->state, id);
  return rc < 0 ? fail_module(c, node, rc) : 0;
}

/* ---- snapshots ---- */

int td_modchain_snapshot(td_modchain_t *c, int node, td_wbuf_t *out) {
  int rc = check_node(c, node);
  if (rc) return rc;
  node_t *n = &c->nodes[node];
  td_ctx_t *ctx = n->ctx;
  rc = td_mp_write_array(out, 4);
  if (rc == 0) rc = td_mp_write_str(out, "module", 6);
  if (rc == 0) rc = td_mp_write_int(out, 1);
  if (rc == 0 && ctx->keyed) {
    td_wbuf_t k = {0};
    rc = td_keyed_snapshot(ctx->keyed, &k);
    if (rc == 0) rc = td_mp_write_str(out, k.data ? k.data : "", k.len);
    td_wbuf_destroy(&k);
  } else if (rc == 0) {
    rc = td_mp_write_nil(out);
  }
  if (rc) return fail(c, node, rc, "snapshot: %s", td_strerror(rc));
  if (!ctx->op->snapshot) return td_mp_write_nil(out) ? fail(c, node, TD_ENOMEM, "out of memory") : 0;
  td_buf_t own = {NULL, 0, 0, host_grow};
  td_module_ctx_begin(ctx);
  rc = ctx->op->snapshot(ctx, ctx->state, &own);
  if (rc < 0) {
    td_free(own.data);
    return fail_module(c, node, rc);
  }
  rc = td_mp_write_str(out, own.data ? own.data : "", own.len);
  td_free(own.data);
  return rc ? fail(c, node, rc, "out of memory") : 0;
}

static int restore_own(td_modchain_t *c, int node, const char *data, size_t len) {
  td_ctx_t *ctx = c->nodes[node].ctx;
  if (!ctx->op->restore) return 0;
  td_module_ctx_begin(ctx);
  int rc = ctx->op->restore(ctx, ctx->state, data, len);
  return rc < 0 ? fail_module(c, node, rc) : 0;
}

/* The keyed and own parts of a node's snapshot (each nil or bytes), its
 * keyed part restored (entries of this instance's key groups). */
static int restore_keyed(td_modchain_t *c, int node, const char *data, size_t len,
                         td_mp_item_t *own) {
  node_t *n = &c->nodes[node];
  const char *p = data, *end = data + len;
  td_mp_item_t it, keyed;
  if (td_mp_read(&p, end, &it) || it.type != TD_MP_ARRAY || it.v.n != 4 ||
      td_mp_read(&p, end, &it) || it.type != TD_MP_STR || it.v.s.len != 6 ||
      memcmp(it.v.s.p, "module", 6) != 0 || td_mp_read(&p, end, &it) || it.type != TD_MP_INT ||
      it.v.i != 1 || td_mp_read(&p, end, &keyed) ||
      (keyed.type != TD_MP_NIL && keyed.type != TD_MP_STR) || td_mp_read(&p, end, own) ||
      (own->type != TD_MP_NIL && own->type != TD_MP_STR))
    return fail_node(c, node, TD_ECORRUPT, "restore: not a snapshot of a module operator");
  if (keyed.type != TD_MP_STR) return 0;
  if (!n->ctx->keyed)
    return fail_node(c, node, TD_ECORRUPT, "restore: keyed state for an operator without it");
  char err[512];
  int rc = td_keyed_restore(n->ctx->keyed, keyed.v.s.p, keyed.v.s.len, err, sizeof err);
  return rc ? fail_node(c, node, rc, "restore: %s", err) : 0;
}

/* The module's own part: restored now if the node is open, else at open. */
static int restore_or_stash(td_modchain_t *c, int node, const char *data, size_t len) {
  node_t *n = &c->nodes[node];
  if (n->ctx->opened) return restore_own(c, node, data, len);
  free(n->stash);
  n->stash = malloc(len ? len : 1);
  if (!n->stash) return fail(c, node, TD_ENOMEM, "out of memory");
  if (len) memcpy(n->stash, data, len);
  n->stash_len = len;
  n->has_stash = 1;
  return 0;
}

int td_modchain_restore(td_modchain_t *c, int node, const char *data, size_t len) {
  if (node < 0 || node >= c->n_nodes) return fail(c, -1, TD_EINVAL, "no node %d", node);
  td_mp_item_t own;
  int rc = restore_keyed(c, node, data, len, &own);
  if (rc || own.type != TD_MP_STR) return rc;
  return restore_or_stash(c, node, own.v.s.p, own.v.s.len);
}

int td_modchain_rescale(td_modchain_t *c, int node, const char *data, size_t len) {
  if (node < 0 || node >= c->n_nodes) return fail(c, -1, TD_EINVAL, "no node %d", node);
  td_mp_item_t own;
  int rc = restore_keyed(c, node, data, len, &own);
  if (rc || own.type != TD_MP_STR) return rc;
  if (own.v.s.len > 0)
    return fail_node(c, node, TD_EINVAL,
                     "restore: a snapshot taken at another parallelism holds state of the "
                     "module's own (%u bytes from its snapshot callback), which cannot be split "
                     "by key group; resume at the parallelism it was taken with",
                     (unsigned)own.v.s.len);
  /* empty: the module's restore, once, with no bytes (as at the same parallelism) */
  node_t *n = &c->nodes[node];
  if (n->own_rescaled) return 0;
  n->own_rescaled = 1;
  return restore_or_stash(c, node, "", 0);
}

int td_modchain_open(td_modchain_t *c, int node, const char *config, size_t len) {
  if (node < 0 || node >= c->n_nodes) return fail(c, -1, TD_EINVAL, "no node %d", node);
  node_t *n = &c->nodes[node];
  if (n->ctx->opened) return 0;
  int rc = td_module_ctx_open(n->ctx, config, len);
  if (rc) return fail_module(c, node, rc);
  if (n->has_stash) {
    n->has_stash = 0;
    rc = restore_own(c, node, n->stash, n->stash_len);
    free(n->stash);
    n->stash = NULL;
  }
  return rc;
}

/* ---- boundaries ---- */

int td_modchain_pending(const td_modchain_t *c) {
  int k = 0;
  for (int b = 0; b < c->n_bnd; b++) k += c->bnd[b].n > 0;
  return k;
}

int td_modchain_boundaries(const td_modchain_t *c) { return c->n_bnd; }

int td_modchain_boundary(td_modchain_t *c, int b, td_batch_t *view) {
  memset(view, 0, sizeof *view);
  view->edge = -1;
  if (b < 0 || b >= c->n_bnd) return 0;
  boundary_t *bd = &c->bnd[b];
  view->n = (int)bd->n;
  view->has_ts = bd->has_ts;
  view->data = bd->data.data;
  view->off = bd->v.off;
  view->stop = bd->v.stop;
  view->ts = bd->has_ts ? bd->v.ts : NULL;
  return view->n;
}

void td_modchain_clear(td_modchain_t *c, int b) {
  if (b < 0 || b >= c->n_bnd) return;
  c->bnd[b].n = 0;
  c->bnd[b].data.len = 0;
  c->bnd[b].has_ts = 0;
}
