/*
 * module.h - C modules (tide.h's module API): loading a shared object
 * with the handshake tide.h describes, the operators it registers, and
 * instances of those operators (the td_ctx_t a module's callbacks get,
 * with the host's routine table td_api_t).
 *
 * Loading is process-wide: a path (resolved with realpath) is loaded and
 * initialized once, whatever the number of Lua VMs that ask for it (the
 * planning VM, then every subtask's), and stays loaded until the process
 * exits (no dlclose: instances on other threads may still run its code).
 *
 * An instance belongs to one subtask and is used by its thread only. It
 * keeps the module's last error message; module.c formats a failure as
 * "module 'NAME' operator 'OP' (uid 'UID'): MESSAGE".
 */
#ifndef TD_MODULE_H
#define TD_MODULE_H

#include <stddef.h>
#include <stdint.h>

#include "keyed.h"
#include "tide.h"

/*
 * td_module_load - load the module at path (once per process) and run its
 * init. Returns 0 and *out (owned by the process-wide registry: never
 * freed); or with a one-line message in err: -errno (the file cannot be
 * read), TD_EINVAL (not a Tide module: no tide_module symbol, a bad magic,
 * or dlopen refuses it), TD_EABI (built for another ABI major, or a newer
 * minor), or the code init returned.
 */
int td_module_load(td_module_t **out, const char *path, char *err, size_t errlen);

/* td_module_name, td_module_version ("" when none), td_module_path (the
 * resolved path), td_module_abi (the ABI version it was built for). */
const char *td_module_name(const td_module_t *m);
const char *td_module_version(const td_module_t *m);
const char *td_module_path(const td_module_t *m);
uint32_t td_module_abi(const td_module_t *m);

/* td_module_op_count / td_module_op - the registered operators, in the
 * order init registered them (host copies, valid for the process). */
int td_module_op_count(const td_module_t *m);
const td_op_t *td_module_op(const td_module_t *m, int i);

/* td_module_find_op - the operator called name, or NULL. */
const td_op_t *td_module_find_op(const td_module_t *m, const char *name);

/* td_module_kind_name - "map", "flat_map", "filter", "process", "source",
 * "sink" ("?" for others). */
const char *td_module_kind_name(uint32_t kind);

/* What an instance is created with. Strings are copied. */
typedef struct td_module_spec {
  const char *uid, *name, *job;
  int subtask, parallelism, max_parallelism;
  /* a warning line of the module (api->warn); NULL: dropped */
  void (*warn)(void *ud, const char *line);
  void *warn_ud;
} td_module_spec_t;

/* An instance of a module's operator: the td_ctx_t of tide.h. */
struct td_ctx {
  const td_module_t *module;
  const td_op_t *op;
  td_info_t info;
  td_keyed_t *keyed;   /* a keyed process's state and timers, else NULL */
  int64_t watermark;   /* INT64_MIN before the first */
  void *state;         /* the module's, from open */
  int opened;
  int in_callback;     /* a keyed process has a current key */
  void (*warn)(void *ud, const char *line);
  void *warn_ud;
  char *strings;       /* uid, name, job (one allocation) */
  char err[1024];      /* the module's message for the code it returns */
};

/* td_module_ctx_new - an instance of op (of m) for spec. A keyed process
 * gets its keyed state (keyed.h). Returns 0 and *out, TD_EINVAL (bad
 * parallelism), TD_ENOMEM. The module's open is not called (see
 * td_module_ctx_open). */
int td_module_ctx_new(td_ctx_t **out, const td_module_t *m, const td_op_t *op,
                      const td_module_spec_t *spec);

/* td_module_ctx_free - close the instance (the module's close, if it was
 * opened) and free it (NULL is a no-op). */
void td_module_ctx_free(td_ctx_t *ctx);

/* td_module_ctx_open - the module's open with config (MessagePack bytes;
 * NULL/0: nil). 0, or its code (message: td_module_ctx_message). */
int td_module_ctx_open(td_ctx_t *ctx, const char *config, size_t len);

/* td_module_ctx_begin - before a callback: clears the last message. */
static inline void td_module_ctx_begin(td_ctx_t *ctx) { ctx->err[0] = 0; }

/*
 * td_module_ctx_message - the failure of code rc in this instance as one
 * line into buf: "module 'NAME' operator 'OP' (uid 'UID'): MESSAGE" with
 * the module's message (or td_strerror(rc) when it set none).
 */
void td_module_ctx_message(const td_ctx_t *ctx, int rc, char *buf, size_t len);

/* td_module_api - the host's routine table (static). */
const td_api_t *td_module_api(void);

#endif
