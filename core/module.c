/*
 * module.c - loading C modules, their operators, instances and the host's
 * routine table (see module.h and the module API in tide.h).
 */
#include "module.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "error.h"

#define DEFAULT_FANOUT 16u
#define MAX_FANOUT 65536u
#define MAX_OPS 256

struct td_module {
  struct td_module *next;
  char *path;          /* resolved */
  void *handle;
  char *name, *version;
  uint32_t abi;
  td_op_t ops[MAX_OPS];
  char *op_names[MAX_OPS];
  int n_ops;
  int initializing;    /* register_op is allowed */
  char err[512];       /* init's message */
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static td_module_t *g_modules;

/* ---- the routine table ---- */

static int valid_name(const char *s) {
  if (!s || !*s) return 0;
  for (const char *p = s; *p; p++) {
    int alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_';
    if (!alpha && !(p > s && *p >= '0' && *p <= '9')) return 0;
  }
  return strlen(s) < 64;
}

__attribute__((format(printf, 3, 4))) static int api_module_error(td_module_t *m, int code,
                                                                 const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m->err, sizeof m->err, fmt, ap);
  va_end(ap);
  return code;
}

static int api_register_op(td_module_t *m, const td_op_t *op) {
  if (!m->initializing) return TD_EINVAL; /* no message: m->err is init's */
  if (!op || op->size < offsetof(td_op_t, open))
    return api_module_error(m, TD_EINVAL, "register_op: not a td_op_t (size %u)",
                            op ? op->size : 0);
  td_op_t o;
  memset(&o, 0, sizeof o);
  /* only the bytes the module's struct has; zero for what it lacks */
  memcpy(&o, op, op->size < sizeof o ? op->size : sizeof o);
  o.size = sizeof o;
  if (!valid_name(o.name))
    return api_module_error(m, TD_EINVAL,
                            "register_op: bad operator name '%s' (expected [A-Za-z_][A-Za-z0-9_]*)",
                            o.name ? o.name : "(null)");
  for (int i = 0; i < m->n_ops; i++)
    if (strcmp(m->op_names[i], o.name) == 0)
      return api_module_error(m, TD_EINVAL, "register_op: operator '%s' registered twice", o.name);
  if (m->n_ops == MAX_OPS)
    return api_module_error(m, TD_EINVAL, "register_op: more than %d operators", MAX_OPS);
  const char *need = NULL;
  switch (o.kind) {
  case TD_OP_MAP:
  case TD_OP_FLAT_MAP: need = o.process ? NULL : "process"; break;
  case TD_OP_FILTER: need = o.filter ? NULL : "filter"; break;
  case TD_OP_PROCESS: need = o.on_record ? NULL : "on_record"; break;
  case TD_OP_SOURCE: need = o.read ? NULL : "read"; break;
  case TD_OP_SINK: need = o.write ? NULL : "write"; break;
  default:
    return api_module_error(m, TD_EINVAL, "register_op: operator '%s' has unknown kind %u", o.name,
                            o.kind);
  }
  if (need)
    return api_module_error(m, TD_EINVAL, "register_op: %s operator '%s' has no %s function",
                            td_module_kind_name(o.kind), o.name, need);
  if (o.max_fanout > MAX_FANOUT)
    return api_module_error(m, TD_EINVAL, "register_op: operator '%s': max_fanout %u above %u",
                            o.name, o.max_fanout, MAX_FANOUT);
  if (o.kind == TD_OP_MAP) o.max_fanout = 1;
  else if (o.max_fanout == 0) o.max_fanout = DEFAULT_FANOUT;
  char *name = strdup(o.name);
  if (!name) return api_module_error(m, TD_ENOMEM, "out of memory");
  o.name = name;
  m->op_names[m->n_ops] = name;
  m->ops[m->n_ops++] = o;
  return 0;
}

__attribute__((format(printf, 3, 4))) static int api_error(td_ctx_t *ctx, int code,
                                                          const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->err, sizeof ctx->err, fmt, ap);
  va_end(ap);
  for (char *p = ctx->err; *p; p++) /* one line */
    if (*p == '\n' || *p == '\r') *p = ' ';
  return code;
}

__attribute__((format(printf, 2, 3))) static void api_warn(td_ctx_t *ctx, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (!ctx->warn) return;
  char full[1400];
  snprintf(full, sizeof full, "module '%s' operator '%s' (uid '%s'): %s", ctx->info.module,
           ctx->info.op, ctx->info.uid, line);
  ctx->warn(ctx->warn_ud, full);
}

static const td_info_t *api_info(const td_ctx_t *ctx) { return &ctx->info; }

static int64_t api_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Keyed state and timers: a keyed process only, with a current key. */
static int keyed_check(td_ctx_t *ctx, int need_key) {
  if (!ctx->keyed)
    return api_error(ctx, TD_EINVAL, "keyed state and timers are only for a keyed process (%s)",
                     td_module_kind_name(ctx->op->kind));
  if (need_key && !ctx->in_callback)
    return api_error(ctx, TD_EINVAL, "keyed state and timers need a current key: use them in "
                                     "on_record or on_timer");
  return 0;
}

static int api_state(td_ctx_t *ctx, const char *name, uint32_t *id) {
  int rc = keyed_check(ctx, 0);
  if (rc) return rc;
  rc = td_keyed_state_id(ctx->keyed, name, id);
  if (rc == TD_EINVAL) return api_error(ctx, rc, "state: a state needs a non-empty name");
  return rc;
}

static int api_value_get(td_ctx_t *ctx, uint32_t sid, const void *ns, size_t nslen,
                         const char **val, size_t *len) {
  int rc = keyed_check(ctx, 1);
  if (rc) return rc;
  rc = td_keyed_get(ctx->keyed, sid, ns, nslen, val, len);
  if (rc == TD_EINVAL) return api_error(ctx, rc, "value_get: unknown state id %u", sid);
  return rc;
}

static int api_value_put(td_ctx_t *ctx, uint32_t sid, const void *ns, size_t nslen,
                         const void *val, size_t len) {
  int rc = keyed_check(ctx, 1);
  if (rc) return rc;
  rc = td_keyed_put(ctx->keyed, sid, ns, nslen, val, len);
  if (rc == TD_EINVAL) return api_error(ctx, rc, "value_put: unknown state id %u", sid);
  return rc;
}

static int api_value_clear(td_ctx_t *ctx, uint32_t sid, const void *ns, size_t nslen) {
  int rc = keyed_check(ctx, 1);
  if (rc) return rc;
  rc = td_keyed_clear(ctx->keyed, sid, ns, nslen);
  if (rc == TD_EINVAL) return api_error(ctx, rc, "value_clear: unknown state id %u", sid);
  return rc;
}

static int api_current_key(td_ctx_t *ctx, const char **key, size_t *len) {
  int rc = keyed_check(ctx, 1);
  return rc ? rc : td_keyed_key(ctx->keyed, key, len);
}

static int api_timer_register(td_ctx_t *ctx, int64_t ts) {
  int rc = keyed_check(ctx, 1);
  return rc ? rc : td_keyed_timer_add(ctx->keyed, ts);
}

static int api_timer_delete(td_ctx_t *ctx, int64_t ts) {
  int rc = keyed_check(ctx, 1);
  return rc ? rc : td_keyed_timer_del(ctx->keyed, ts);
}

static int64_t api_watermark(const td_ctx_t *ctx) { return ctx->watermark; }

static const td_api_t g_api = {
    .size = sizeof(td_api_t),
    .abi = TIDE_ABI_VERSION,
    .register_op = api_register_op,
    .module_error = api_module_error,
    .error = api_error,
    .warn = api_warn,
    .info = api_info,
    .now_ms = api_now_ms,
    .strerror = td_strerror,
    .state = api_state,
    .value_get = api_value_get,
    .value_put = api_value_put,
    .value_clear = api_value_clear,
    .current_key = api_current_key,
    .timer_register = api_timer_register,
    .timer_delete = api_timer_delete,
    .watermark = api_watermark,
};

const td_api_t *td_module_api(void) { return &g_api; }

/* ---- loading ---- */

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen, int rc,
                                                     const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return rc;
}

static void free_module(td_module_t *m) {
  if (!m) return;
  for (int i = 0; i < m->n_ops; i++) free(m->op_names[i]);
  free(m->path);
  free(m->name);
  free(m->version);
  free(m);
}

/* Load and initialize the file at real (not registered yet). */
static int load(td_module_t **out, const char *path, const char *real, char *err, size_t errlen) {
  void *h = dlopen(real, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *why = dlerror();
    return fail(err, errlen, TD_EINVAL, "cannot load module '%s': %s", path,
                why ? why : "dlopen failed");
  }
  const td_module_decl_t *d = dlsym(h, TIDE_MODULE_SYMBOL);
  if (!d) {
    dlclose(h);
    return fail(err, errlen, TD_EINVAL,
                "'%s' is not a Tide module: it defines no '%s' symbol (TIDE_MODULE in tide.h)", path,
                TIDE_MODULE_SYMBOL);
  }
  if (d->magic != TIDE_MODULE_MAGIC) {
    dlclose(h);
    return fail(err, errlen, TD_EINVAL, "'%s' is not a Tide module: its '%s' symbol is not a "
                                        "module declaration (bad magic)", path, TIDE_MODULE_SYMBOL);
  }
  /* the frozen prefix: magic, abi, size, name (copied: the text goes
   * with the object when it is closed) */
  char name[128];
  snprintf(name, sizeof name, "%s", d->name ? d->name : "?");
  unsigned maj = d->abi >> 16, min = d->abi & 0xffff;
  if (maj != TIDE_ABI_MAJOR || min > TIDE_ABI_MINOR) {
    dlclose(h);
    return fail(err, errlen, TD_EABI,
                "module '%s' (%s) was built for Tide ABI %u.%u, %s this core's ABI %d.%d: rebuild "
                "it against this core's tide.h",
                name, path, maj, min, maj != TIDE_ABI_MAJOR ? "incompatible with" : "newer than",
                TIDE_ABI_MAJOR, TIDE_ABI_MINOR);
  }
  if (d->size < offsetof(td_module_decl_t, init) + sizeof d->init || !d->init) {
    dlclose(h);
    return fail(err, errlen, TD_EINVAL, "module '%s' (%s): its declaration has no init function",
                name, path);
  }
  td_module_t *m = calloc(1, sizeof *m);
  if (m) {
    m->path = strdup(real);
    m->name = strdup(name);
    m->version = strdup(d->version ? d->version : "");
  }
  if (!m || !m->path || !m->name || !m->version) {
    free_module(m);
    dlclose(h);
    return fail(err, errlen, TD_ENOMEM, "out of memory");
  }
  m->handle = h;
  m->abi = d->abi;
  m->initializing = 1;
  int rc = d->init(m, &g_api);
  m->initializing = 0;
  if (rc != 0) {
    if (rc > 0) rc = TD_EINVAL;
    fail(err, errlen, rc, "module '%s' (%s): init failed: %s", name, path,
         m->err[0] ? m->err : td_strerror(rc));
    free_module(m);
    dlclose(h);
    return rc;
  }
  *out = m;
  return 0;
}

int td_module_load(td_module_t **out, const char *path, char *err, size_t errlen) {
  *out = NULL;
  struct stat sb;
  if (stat(path, &sb) != 0)
    return fail(err, errlen, -errno, "cannot load module '%s': %s", path, strerror(errno));
  if (!S_ISREG(sb.st_mode))
    return fail(err, errlen, TD_EINVAL, "cannot load module '%s': not a regular file", path);
  char real[PATH_MAX];
  if (!realpath(path, real))
    return fail(err, errlen, -errno, "cannot load module '%s': %s", path, strerror(errno));
  pthread_mutex_lock(&g_mu);
  td_module_t *m;
  for (m = g_modules; m; m = m->next)
    if (strcmp(m->path, real) == 0) break;
  int rc = 0;
  if (!m) {
    rc = load(&m, path, real, err, errlen);
    if (rc == 0) {
      m->next = g_modules;
      g_modules = m;
    }
  }
  pthread_mutex_unlock(&g_mu);
  if (rc == 0) *out = m;
  return rc;
}

const char *td_module_name(const td_module_t *m) { return m->name; }
const char *td_module_version(const td_module_t *m) { return m->version; }
const char *td_module_path(const td_module_t *m) { return m->path; }
uint32_t td_module_abi(const td_module_t *m) { return m->abi; }
int td_module_op_count(const td_module_t *m) { return m->n_ops; }
const td_op_t *td_module_op(const td_module_t *m, int i) {
  return i >= 0 && i < m->n_ops ? &m->ops[i] : NULL;
}

const td_op_t *td_module_find_op(const td_module_t *m, const char *name) {
  for (int i = 0; i < m->n_ops; i++)
    if (strcmp(m->ops[i].name, name) == 0) return &m->ops[i];
  return NULL;
}

const char *td_module_kind_name(uint32_t kind) {
  static const char *const names[] = {"?", "map", "flat_map", "filter", "process", "source", "sink"};
  return kind < sizeof names / sizeof names[0] ? names[kind] : "?";
}

/* ---- instances ---- */

int td_module_ctx_new(td_ctx_t **out, const td_module_t *m, const td_op_t *op,
                      const td_module_spec_t *spec) {
  *out = NULL;
  if (spec->parallelism < 1 || spec->subtask < 0 || spec->subtask >= spec->parallelism)
    return TD_EINVAL;
  td_ctx_t *ctx = calloc(1, sizeof *ctx);
  if (!ctx) return TD_ENOMEM;
  const char *uid = spec->uid ? spec->uid : op->name;
  const char *name = spec->name ? spec->name : op->name;
  const char *job = spec->job ? spec->job : "";
  size_t lu = strlen(uid) + 1, ln = strlen(name) + 1, lj = strlen(job) + 1;
  ctx->strings = malloc(lu + ln + lj);
  int rc = ctx->strings ? 0 : TD_ENOMEM;
  if (rc == 0 && op->kind == TD_OP_PROCESS) {
    int maxp = spec->max_parallelism > 0 ? spec->max_parallelism : 128;
    rc = td_keyed_new(&ctx->keyed, spec->subtask, spec->parallelism, maxp);
  }
  if (rc) {
    free(ctx->strings);
    free(ctx);
    return rc;
  }
  memcpy(ctx->strings, uid, lu);
  memcpy(ctx->strings + lu, name, ln);
  memcpy(ctx->strings + lu + ln, job, lj);
  ctx->module = m;
  ctx->op = op;
  ctx->watermark = INT64_MIN;
  ctx->warn = spec->warn;
  ctx->warn_ud = spec->warn_ud;
  td_info_t *in = &ctx->info;
  in->size = sizeof *in;
  in->subtask = spec->subtask;
  in->parallelism = spec->parallelism;
  in->max_parallelism = spec->max_parallelism;
  in->uid = ctx->strings;
  in->name = ctx->strings + lu;
  in->job = ctx->strings + lu + ln;
  in->module = m->name;
  in->op = op->name;
  *out = ctx;
  return 0;
}

void td_module_ctx_free(td_ctx_t *ctx) {
  if (!ctx) return;
  if (ctx->opened && ctx->op->close) ctx->op->close(ctx, ctx->state);
  td_keyed_free(ctx->keyed);
  free(ctx->strings);
  free(ctx);
}

int td_module_ctx_open(td_ctx_t *ctx, const char *config, size_t len) {
  if (ctx->opened) return 0;
  static const char nil = (char)0xc0;
  if (!config || !len) {
    config = &nil;
    len = 1;
  }
  td_module_ctx_begin(ctx);
  int rc = ctx->op->open ? ctx->op->open(ctx, config, len, &ctx->state) : 0;
  if (rc > 0) rc = TD_EINVAL;
  if (rc == 0) ctx->opened = 1;
  return rc;
}

void td_module_ctx_message(const td_ctx_t *ctx, int rc, char *buf, size_t len) {
  snprintf(buf, len, "module '%s' operator '%s' (uid '%s'): %s", ctx->info.module, ctx->info.op,
           ctx->info.uid, ctx->err[0] ? ctx->err : td_strerror(rc));
}
