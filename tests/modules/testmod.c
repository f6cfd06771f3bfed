/*
 * testmod.c - a Tide module for the tests of bad behaviour (test_module.c,
 * tests/e2e/test_modules.sh): every operator misbehaves in one way.
 *
 *   map fail_open        open fails: {message}
 *   map fail_process     process fails at record {after} (counting from 1)
 *   flat_map overflow    max_fanout 1, emits 2 records per record
 *   map miscount         a map that drops every other record
 *   process keyed_sum    keyed: sums integer records per key in value
 *                        state; {timer = ts}: registers a timer at ts,
 *                        emitting [key, sum] when it fires
 *   source fail_read     fails at its second read
 */
#include <stdlib.h>
#include <string.h>

#include <tide.h>

static const td_api_t *T;

static int fail_open_open(td_ctx_t *ctx, const char *cfg, size_t len, void **state) {
  const char *m = "refusing to open";
  size_t n = strlen(m);
  td_cfg_str(cfg, len, "message", &m, &n);
  return T->error(ctx, TD_EINVAL, "%.*s", (int)n, m);
}

static int copy_process(td_ctx_t *ctx, void *state, const td_batch_t *in, td_out_t *out) {
  for (int i = 0; i < in->n; i++) {
    size_t len;
    const char *r = td_in_record(in, i, &len);
    int rc = td_out_emit(out, r, len, td_in_ts(in, i));
    if (rc) return rc;
  }
  return 0;
}

typedef struct counter {
  int64_t after, seen;
} counter_t;

static int counter_open(td_ctx_t *ctx, const char *cfg, size_t len, void **state) {
  counter_t *c = calloc(1, sizeof *c);
  if (!c) return TD_ENOMEM;
  c->after = 1;
  td_cfg_int(cfg, len, "after", &c->after);
  *state = c;
  return 0;
}

static void free_state(td_ctx_t *ctx, void *state) { free(state); }

static int fail_process(td_ctx_t *ctx, void *state, const td_batch_t *in, td_out_t *out) {
  counter_t *c = state;
  for (int i = 0; i < in->n; i++) {
    if (++c->seen >= c->after)
      return T->error(ctx, TD_EPARSE, "record %lld is not to my liking", (long long)c->seen);
    size_t len;
    const char *r = td_in_record(in, i, &len);
    int rc = td_out_emit(out, r, len, td_in_ts(in, i));
    if (rc) return rc;
  }
  return 0;
}

static int overflow_process(td_ctx_t *ctx, void *state, const td_batch_t *in, td_out_t *out) {
  for (int i = 0; i < in->n; i++) {
    size_t len;
    const char *r = td_in_record(in, i, &len);
    td_out_emit(out, r, len, td_in_ts(in, i));
    td_out_emit(out, r, len, td_in_ts(in, i)); /* the code ignored: the host sees it anyway */
  }
  return 0;
}

static int miscount_process(td_ctx_t *ctx, void *state, const td_batch_t *in, td_out_t *out) {
  for (int i = 0; i < in->n; i += 2) {
    size_t len;
    const char *r = td_in_record(in, i, &len);
    int rc = td_out_emit(out, r, len, td_in_ts(in, i));
    if (rc) return rc;
  }
  return 0;
}

typedef struct ksum {
  uint32_t sum;
  int64_t timer;
} ksum_t;

static int ksum_open(td_ctx_t *ctx, const char *cfg, size_t len, void **state) {
  ksum_t *k = calloc(1, sizeof *k);
  if (!k) return TD_ENOMEM;
  *state = k;
  k->timer = INT64_MIN;
  td_cfg_int(cfg, len, "timer", &k->timer);
  return T->state(ctx, "sum", &k->sum);
}

static int ksum_record(td_ctx_t *ctx, void *state, const char *rec, size_t len, int64_t ts,
                       td_out_t *out) {
  ksum_t *k = state;
  td_mp_item_t it;
  const char *p = rec;
  if (td_mp_read(&p, rec + len, &it) != 0) return TD_ECORRUPT;
  int64_t x = 0;
  if (it.type == TD_MP_ARRAY && it.v.n == 2) { /* [key, value] */
    if (td_mp_skip(&p, rec + len) != 0 || td_mp_read(&p, rec + len, &it) != 0) return TD_ECORRUPT;
  }
  if (it.type != TD_MP_INT) return T->error(ctx, TD_EINVAL, "not an integer");
  x = it.v.i;
  const char *v;
  size_t vlen;
  int64_t sum = 0;
  int rc = T->value_get(ctx, k->sum, NULL, 0, &v, &vlen);
  if (rc < 0) return rc;
  if (rc == 1) memcpy(&sum, v, sizeof sum);
  sum += x;
  rc = T->value_put(ctx, k->sum, NULL, 0, &sum, sizeof sum);
  if (rc == 0 && k->timer != INT64_MIN) rc = T->timer_register(ctx, k->timer);
  return rc;
}

static int ksum_timer(td_ctx_t *ctx, void *state, int64_t ts, td_out_t *out) {
  ksum_t *k = state;
  const char *v, *key;
  size_t vlen, klen;
  int64_t sum = 0;
  int rc = T->value_get(ctx, k->sum, NULL, 0, &v, &vlen);
  if (rc == 1) memcpy(&sum, v, sizeof sum);
  if (rc < 0 || (rc = T->current_key(ctx, &key, &klen)) != 0) return rc;
  rc = td_mp_put_array(&out->buf, 2);
  if (rc == 0) rc = td_mp_put_raw(&out->buf, key, klen);
  if (rc == 0) rc = td_mp_put_int(&out->buf, sum);
  return rc ? rc : td_out_end(out, ts);
}

static int fail_read(td_ctx_t *ctx, void *state, td_out_t *out) {
  counter_t *c = state;
  if (++c->seen >= 2) return T->error(ctx, TD_EIO, "the source's device caught fire");
  int rc = td_mp_put_int(&out->buf, 1);
  return rc ? rc : td_out_end(out, TD_NO_TIMESTAMP);
}

static int init(td_module_t *m, const td_api_t *api) {
  T = api;
  const td_op_t ops[] = {
      {.size = sizeof(td_op_t), .kind = TD_OP_MAP, .name = "fail_open", .open = fail_open_open,
       .process = copy_process},
      {.size = sizeof(td_op_t), .kind = TD_OP_MAP, .name = "fail_process", .open = counter_open,
       .close = free_state, .process = fail_process},
      {.size = sizeof(td_op_t), .kind = TD_OP_FLAT_MAP, .name = "overflow", .max_fanout = 1,
       .process = overflow_process},
      {.size = sizeof(td_op_t), .kind = TD_OP_MAP, .name = "miscount", .process = miscount_process},
      {.size = sizeof(td_op_t), .kind = TD_OP_PROCESS, .name = "keyed_sum", .open = ksum_open,
       .close = free_state, .on_record = ksum_record, .on_timer = ksum_timer},
      {.size = sizeof(td_op_t), .kind = TD_OP_SOURCE, .name = "fail_read", .open = counter_open,
       .close = free_state, .read = fail_read},
  };
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    int rc = api->register_op(m, &ops[i]);
    if (rc) return rc;
  }
  return 0;
}

TIDE_MODULE("testmod", "0.1", init);
