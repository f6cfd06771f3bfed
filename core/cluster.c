/* cluster.c - what the job manager, task managers and job masters share:
 * the secret, control messages, the job spec on the wire (cluster.h). */
#include "cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "host.h"

int td_cluster_read_secret(const char *path, unsigned char **secret, size_t *len, char *err,
                           size_t errlen) {
  *secret = NULL;
  *len = 0;
  if (sodium_init() < 0) {
    snprintf(err, errlen, "cannot initialise libsodium");
    return TD_EINVAL;
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    snprintf(err, errlen, "cannot open the secret file '%s': %s", path, strerror(e));
    return -e;
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    snprintf(err, errlen, "the secret file '%s' is not a regular file", path);
    return TD_EINVAL;
  }
  if (sb.st_mode & 077) {
    close(fd);
    snprintf(err, errlen, "the secret file '%s' may be read by others (mode %03o): make it "
             "private (chmod 600)", path, (unsigned)(sb.st_mode & 0777));
    return TD_EINVAL;
  }
  unsigned char *buf = sodium_malloc(4097);
  if (!buf) {
    close(fd);
    snprintf(err, errlen, "out of memory");
    return TD_ENOMEM;
  }
  size_t n = 0;
  while (n < 4097) {
    ssize_t r = read(fd, buf + n, 4097 - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += (size_t)r;
  }
  close(fd);
  while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
  if (n < 16 || n > 4096) {
    sodium_free(buf);
    snprintf(err, errlen, "the secret in '%s' must be 16 to 4096 bytes long (it has %zu%s)",
             path, n, n > 4096 ? " or more" : "");
    return TD_EINVAL;
  }
  *secret = buf;
  *len = n;
  return 0;
}

int td_cluster_open(const char *cmd, const char *secret_file, td_net_config_t *cfg,
                    unsigned char **secret, size_t *len) {
  char err[512];
  if (td_cluster_read_secret(secret_file, secret, len, err, sizeof err) != 0) {
    fprintf(stderr, "tide %s: %s\n", cmd, err);
    return 2;
  }
  td_cluster_net_config(cfg, *secret, *len);
  return 0;
}

void td_cluster_block_signals(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, set, NULL);
}

void td_cluster_free_secret(unsigned char *secret, size_t len) {
  (void)len;
  if (secret) sodium_free(secret); /* sodium_free wipes */
}

void td_cluster_net_config(td_net_config_t *cfg, const unsigned char *secret, size_t len) {
  static const unsigned char label[] = "tide cluster id v1";
  crypto_generichash(cfg->cluster_id, TD_WIRE_CLUSTER_ID, secret, len, label, sizeof label - 1);
  cfg->secret = secret;
  cfg->secret_len = len;
  /* a peer behind a link that stays down: closed after 30 s, so a task
   * manager registers again and a job master notices (the job manager's
   * heartbeat timeout finds it first) */
  cfg->dead_peer_ms = 30000;
}

int td_cluster_parse_address(const char *s, int dflt, char *host, size_t hostlen, int *port) {
  const char *colon = strrchr(s, ':');
  size_t hl = colon ? (size_t)(colon - s) : strlen(s);
  if (hl == 0 || hl >= hostlen) return TD_EINVAL;
  memcpy(host, s, hl);
  host[hl] = 0;
  if (strcmp(host, "localhost") == 0) snprintf(host, hostlen, "127.0.0.1");
  *port = dflt;
  if (colon) {
    char *end;
    long v = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || v < 0 || v > 65535) return TD_EINVAL;
    *port = (int)v;
  }
  return 0;
}

int td_cluster_parse_duration(const char *s, int64_t *ms) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || v < 0) return TD_EINVAL;
  double mul = strcmp(end, "") == 0 || strcmp(end, "ms") == 0 ? 1
               : strcmp(end, "s") == 0                        ? 1e3
               : strcmp(end, "m") == 0                        ? 60e3
               : strcmp(end, "h") == 0                        ? 3600e3
                                                              : -1;
  if (mul < 0) return TD_EINVAL;
  *ms = (int64_t)(v * mul);
  return 0;
}

int td_cluster_send(td_net_peer_t *p, json_t *msg) {
  char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
  json_decref(msg);
  if (!text) return TD_ENOMEM;
  size_t len = strlen(text);
  int rc = len > TD_WIRE_MAX_FRAME_DEFAULT
               ? TD_EINVAL
               : td_net_send(p, TD_CLUSTER_CONTROL, TD_WIRE_DATA, TD_NET_UNCOUNTED, text,
                             (uint32_t)len);
  free(text);
  return rc;
}

/* ---- shipped files ------------------------------------------------------------ */

int td_cluster_is_hash(const char *s) {
  return s && strlen(s) == TD_CLUSTER_HASH_HEX - 1 && strspn(s, "0123456789abcdef") == strlen(s);
}

int td_cluster_hash_file(const char *path, char hex[TD_CLUSTER_HASH_HEX], uint64_t *size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  crypto_generichash_state st;
  unsigned char buf[65536], out[32];
  crypto_generichash_init(&st, NULL, 0, sizeof out);
  uint64_t total = 0;
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n < 0) continue;
    crypto_generichash_update(&st, buf, (unsigned long long)n);
    total += (uint64_t)n;
  }
  int rc = n < 0 ? -errno : 0;
  close(fd);
  if (rc) return rc;
  crypto_generichash_final(&st, out, sizeof out);
  sodium_bin2hex(hex, TD_CLUSTER_HASH_HEX, out, sizeof out);
  *size = total;
  return 0;
}

/* Raw bytes per "file" message: base64 makes 4/3 of it, under the frame
 * limit with room for the JSON around it. */
#define FILE_CHUNK (512u * 1024u)

int td_cluster_send_file(td_net_peer_t *p, const char *tag, const char *hash, const char *path) {
  int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
  int rc = fd < 0 ? (path ? -errno : -ENOENT) : 0;
  struct stat st;
  if (rc == 0 && fstat(fd, &st) != 0) rc = -errno;
  unsigned char *buf = rc == 0 ? malloc(FILE_CHUNK) : NULL;
  size_t b64len = sodium_base64_ENCODED_LEN(FILE_CHUNK, sodium_base64_VARIANT_ORIGINAL);
  char *b64 = buf ? malloc(b64len) : NULL;
  if (rc == 0 && !b64) rc = TD_ENOMEM;
  uint64_t off = 0, size = rc == 0 ? (uint64_t)st.st_size : 0;
  do {
    if (rc) break;
    ssize_t n = pread(fd, buf, FILE_CHUNK, (off_t)off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (n == 0 && off < size)) {
      rc = n < 0 ? -errno : TD_ECORRUPT; /* shrunk meanwhile */
      break;
    }
    sodium_bin2base64(b64, b64len, buf, (size_t)n, sodium_base64_VARIANT_ORIGINAL);
    rc = td_cluster_send(p, json_pack("{s:s,s:s,s:s,s:I,s:I,s:s}", "type", "file", "tag", tag,
                                      "hash", hash, "offset", (json_int_t)off, "size",
                                      (json_int_t)size, "data", b64));
    off += (uint64_t)n;
  } while (rc == 0 && off < size);
  free(buf);
  free(b64);
  if (fd >= 0) close(fd);
  if (rc == 0 && size == 0)
    rc = td_cluster_send(p, json_pack("{s:s,s:s,s:s,s:I,s:I,s:s}", "type", "file", "tag", tag,
                                      "hash", hash, "offset", (json_int_t)0, "size",
                                      (json_int_t)0, "data", ""));
  if (rc && rc != TD_ECANCELED) {
    char why[300];
    snprintf(why, sizeof why, "cannot read %.200s: %s", path ? path : "(unknown file)",
             td_strerror(rc));
    return td_cluster_send(p, json_pack("{s:s,s:s,s:s,s:s}", "type", "file", "tag", tag, "hash",
                                        hash, "error", why));
  }
  return rc;
}

int td_cluster_store_chunk(const char *dir, json_t *msg, char *err, size_t errlen) {
  const char *hash = json_string_value(json_object_get(msg, "hash"));
  const char *tag = json_string_value(json_object_get(msg, "tag"));
  const char *data = json_string_value(json_object_get(msg, "data"));
  const char *why = json_string_value(json_object_get(msg, "error"));
  json_int_t off = json_integer_value(json_object_get(msg, "offset"));
  json_int_t size = json_integer_value(json_object_get(msg, "size"));
  if (!td_cluster_is_hash(hash) || !tag || strchr(tag, '/')) {
    snprintf(err, errlen, "a malformed file message");
    return TD_EINVAL;
  }
  if (why) {
    snprintf(err, errlen, "the job master could not send a file: %s", why);
    return TD_EINVAL;
  }
  if (!data || off < 0 || size < off) {
    snprintf(err, errlen, "a malformed file message");
    return TD_EINVAL;
  }
  char part[4400], path[4400];
  snprintf(part, sizeof part, "%s/%s.%.100s.part", dir, hash, tag);
  snprintf(path, sizeof path, "%s/%s", dir, hash);
  size_t dlen = strlen(data), blen = 0;
  unsigned char *bin = malloc(dlen / 4 * 3 + 3);
  int rc = bin ? 0 : TD_ENOMEM;
  if (rc == 0 && sodium_base642bin(bin, dlen / 4 * 3 + 3, data, dlen, NULL, &blen, NULL,
                                   sodium_base64_VARIANT_ORIGINAL) != 0)
    rc = TD_EINVAL;
  if (rc == 0 && (uint64_t)off + blen > (uint64_t)size) rc = TD_EINVAL;
  int fd = -1;
  if (rc == 0 && (fd = open(part, O_WRONLY | O_CREAT | O_CLOEXEC | (off == 0 ? O_TRUNC : 0), 0600)) < 0)
    rc = -errno;
  for (size_t done = 0; rc == 0 && done < blen;) {
    ssize_t n = pwrite(fd, bin + done, blen - done, (off_t)(off + (json_int_t)done));
    if (n < 0 && errno != EINTR) rc = -errno;
    if (n > 0) done += (size_t)n;
  }
  if (fd >= 0 && close(fd) != 0 && rc == 0) rc = -errno;
  free(bin);
  if (rc) {
    snprintf(err, errlen, "cannot store a shipped file in %s: %s", dir, td_strerror(rc));
    unlink(part);
    return rc;
  }
  if ((uint64_t)off + blen < (uint64_t)size) return 0;
  char hex[TD_CLUSTER_HASH_HEX];
  uint64_t got = 0;
  rc = td_cluster_hash_file(part, hex, &got);
  if (rc == 0 && (got != (uint64_t)size || strcmp(hex, hash) != 0)) rc = TD_ECORRUPT;
  if (rc == 0 && rename(part, path) != 0) rc = -errno;
  if (rc) {
    snprintf(err, errlen, "a shipped file (%.16s...) arrived %s", hash,
             rc == TD_ECORRUPT ? "with other content than its name says (changed on the job "
                                 "master's host while it was sent?)"
                               : td_strerror(rc));
    unlink(part);
    return rc;
  }
  return 1;
}

json_t *td_cluster_parse(uint8_t frame_type, uint32_t channel, const unsigned char *payload,
                         size_t len, const char **type) {
  if (frame_type != TD_WIRE_DATA || channel != TD_CLUSTER_CONTROL) return NULL;
  json_t *j = json_loadb((const char *)payload, len, 0, NULL);
  const char *t = j ? json_string_value(json_object_get(j, "type")) : NULL;
  if (!t) {
    json_decref(j);
    return NULL;
  }
  *type = t;
  return j;
}

/* ---- the spec on the wire ------------------------------------------------ */

static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

json_t *td_cluster_spec_encode(const td_job_spec_t *s) {
  json_t *j = json_object();
  json_t *args = json_array(), *ops = json_array(), *par = json_array(), *edges = json_array();
  for (int i = 0; i < s->n_args; i++) json_array_append_new(args, json_string(s->args[i]));
  for (int i = 0; i < s->n_operators; i++)
    json_array_append_new(ops, json_pack("{s:i,s:o,s:o,s:o}", "task", s->operators[i].task,
                                         "uid", str_or_null(s->operators[i].uid), "name",
                                         str_or_null(s->operators[i].name), "kind",
                                         str_or_null(s->operators[i].kind)));
  for (int t = 0; t < s->n_tasks; t++) json_array_append_new(par, json_integer(s->parallelism[t]));
  for (int e = 0; e < s->n_edges; e++)
    json_array_append_new(edges, json_pack("{s:i,s:i,s:i}", "from", s->edges[e].from, "to",
                                           s->edges[e].to, "partition",
                                           (int)s->edges[e].partition));
  json_object_set_new(j, "name", str_or_null(s->name));
  json_object_set_new(j, "script", str_or_null(s->script));
  json_object_set_new(j, "script_text", json_stringn(s->script_text, s->script_len));
  json_object_set_new(j, "args", args);
  json_object_set_new(j, "lua_path", str_or_null(s->lua_path));
  json_object_set_new(j, "lua_cpath", str_or_null(s->lua_cpath));
  json_object_set_new(j, "fingerprint", str_or_null(s->fingerprint));
  json_object_set_new(j, "job_id", str_or_null(s->job_id));
  json_object_set_new(j, "run_id", str_or_null(s->run_id));
  json_object_set_new(j, "savepoint_dir", str_or_null(s->savepoint_dir));
  json_object_set_new(j, "operators", ops);
  json_object_set_new(j, "job_index", json_integer(s->job_index));
  json_object_set_new(j, "default_parallelism", json_integer(s->default_parallelism));
  json_object_set_new(j, "max_parallelism", json_integer(s->max_parallelism));
  json_object_set_new(j, "parallelism", par);
  json_object_set_new(j, "edges", edges);
  json_object_set_new(j, "align_mode", json_integer(s->align_mode));
  json_object_set_new(j, "buffer_timeout_ms", json_integer(s->buffer_timeout_ms));
  json_object_set_new(j, "align_timeout_ms", json_integer(s->align_timeout_ms));
  json_object_set_new(j, "restore_dir", str_or_null(s->restore_dir));
  if (s->checkpoint) {
    const td_ckpt_config_t *c = s->checkpoint;
    json_t *ck = json_object(), *ex = json_array();
    char *info = malloc(c->job_info_len * 2 + 1);
    if (info) sodium_bin2hex(info, c->job_info_len * 2 + 1, c->job_info, c->job_info_len);
    int total = 0;
    for (int t = 0; t < s->n_tasks; t++) total += s->parallelism[t];
    for (int i = 0; c->expected && i < total; i++)
      json_array_append_new(ex, json_string(c->expected[i] ? c->expected[i] : ""));
    json_object_set_new(ck, "dir", str_or_null(c->dir));
    json_object_set_new(ck, "interval_ms", json_integer(c->interval_ms));
    json_object_set_new(ck, "timeout_ms", json_integer(c->timeout_ms));
    json_object_set_new(ck, "min_pause_ms", json_integer(c->min_pause_ms));
    json_object_set_new(ck, "max_concurrent", json_integer(c->max_concurrent));
    json_object_set_new(ck, "retained", json_integer(c->retained));
    json_object_set_new(ck, "first_id", json_integer(c->first_id));
    json_object_set_new(ck, "tolerable_failed", json_integer(c->tolerable_failed));
    json_object_set_new(ck, "job_info", info ? json_string(info) : json_null());
    free(info);
    json_object_set_new(ck, "expected", ex);
    json_object_set_new(j, "checkpoint", ck);
  }
  td_host_defaults_t d;
  td_host_get_defaults(&d);
  json_object_set_new(
      j, "defaults",
      json_pack("{s:i,s:i,s:b,s:b,s:b,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "parallelism",
                d.parallelism, "max_parallelism", d.max_parallelism, "resume", d.resume,
                "allow_existing_output", d.allow_existing_output, "allow_non_restored",
                d.allow_non_restored, "checkpoint_dir", str_or_null(d.checkpoint_dir),
                "checkpoint_interval", str_or_null(d.checkpoint_interval), "buffer_timeout",
                str_or_null(d.buffer_timeout), "state_backend", str_or_null(d.state_backend),
                "state_dir", str_or_null(d.state_dir), "run_id", str_or_null(d.run_id),
                "from_savepoint", str_or_null(d.from_savepoint)));
  return j;
}

static const char *get_str(json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}

static int64_t get_int(json_t *o, const char *k) {
  return (int64_t)json_integer_value(json_object_get(o, k));
}

void td_cluster_spec_free(td_cluster_spec_t *s) {
  free(s->args);
  free(s->operators);
  free(s->parallelism);
  free(s->edges);
  free(s->expected);
  free(s->job_info);
  json_decref(s->root);
  memset(s, 0, sizeof *s);
}

int td_cluster_spec_decode(json_t *j, td_cluster_spec_t *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  td_job_spec_t *s = &out->spec;
  json_t *args = json_object_get(j, "args"), *ops = json_object_get(j, "operators");
  json_t *par = json_object_get(j, "parallelism"), *edges = json_object_get(j, "edges");
  json_t *text = json_object_get(j, "script_text"), *d = json_object_get(j, "defaults");
  if (!json_is_array(args) || !json_is_array(ops) || !json_is_array(par) ||
      !json_is_array(edges) || !json_is_string(text) || !json_is_object(d) ||
      json_array_size(par) == 0) {
    snprintf(err, errlen, "a malformed job in a deploy message");
    return TD_EINVAL;
  }
  out->root = json_incref(j);
  s->n_args = (int)json_array_size(args);
  s->n_operators = (int)json_array_size(ops);
  s->n_tasks = (int)json_array_size(par);
  s->n_edges = (int)json_array_size(edges);
  out->args = calloc((size_t)s->n_args + 1, sizeof *out->args);
  out->operators = calloc((size_t)s->n_operators + 1, sizeof *out->operators);
  out->parallelism = calloc((size_t)s->n_tasks + 1, sizeof *out->parallelism);
  out->edges = calloc((size_t)s->n_edges + 1, sizeof *out->edges);
  if (!out->args || !out->operators || !out->parallelism || !out->edges) {
    td_cluster_spec_free(out);
    snprintf(err, errlen, "out of memory");
    return TD_ENOMEM;
  }
  for (int i = 0; i < s->n_args; i++) out->args[i] = json_string_value(json_array_get(args, i));
  for (int i = 0; i < s->n_operators; i++) {
    json_t *o = json_array_get(ops, i);
    out->operators[i] = (td_job_operator_t){(int)get_int(o, "task"), get_str(o, "uid"),
                                            get_str(o, "name"), get_str(o, "kind")};
  }
  int bad = 0;
  for (int t = 0; t < s->n_tasks; t++) {
    out->parallelism[t] = (int)json_integer_value(json_array_get(par, t));
    if (out->parallelism[t] < 1) bad = 1;
  }
  for (int e = 0; e < s->n_edges; e++) {
    json_t *o = json_array_get(edges, e);
    out->edges[e] = (td_job_edge_t){(int)get_int(o, "from"), (int)get_int(o, "to"),
                                    (td_partition_t)get_int(o, "partition")};
    if (out->edges[e].from < 0 || out->edges[e].from >= s->n_tasks || out->edges[e].to < 0 ||
        out->edges[e].to >= s->n_tasks)
      bad = 1;
  }
  if (bad) {
    td_cluster_spec_free(out);
    snprintf(err, errlen, "a malformed job graph in a deploy message");
    return TD_EINVAL;
  }
  s->name = get_str(j, "name");
  s->script = get_str(j, "script");
  s->script_text = json_string_value(text);
  s->script_len = json_string_length(text);
  s->args = out->args;
  s->lua_path = get_str(j, "lua_path");
  s->lua_cpath = get_str(j, "lua_cpath");
  s->fingerprint = get_str(j, "fingerprint");
  s->job_id = get_str(j, "job_id");
  s->run_id = get_str(j, "run_id");
  s->savepoint_dir = get_str(j, "savepoint_dir");
  s->operators = out->operators;
  s->job_index = (int)get_int(j, "job_index");
  s->default_parallelism = (int)get_int(j, "default_parallelism");
  s->max_parallelism = (int)get_int(j, "max_parallelism");
  s->parallelism = out->parallelism;
  s->edges = out->edges;
  s->align_mode = (int)get_int(j, "align_mode");
  s->buffer_timeout_ms = get_int(j, "buffer_timeout_ms");
  s->align_timeout_ms = get_int(j, "align_timeout_ms");
  s->restore_dir = get_str(j, "restore_dir");
  json_t *ck = json_object_get(j, "checkpoint");
  if (json_is_object(ck)) {
    td_ckpt_config_t *c = &out->checkpoint;
    c->dir = get_str(ck, "dir");
    c->interval_ms = get_int(ck, "interval_ms");
    c->timeout_ms = get_int(ck, "timeout_ms");
    c->min_pause_ms = get_int(ck, "min_pause_ms");
    c->max_concurrent = (int)get_int(ck, "max_concurrent");
    c->retained = (int)get_int(ck, "retained");
    c->first_id = get_int(ck, "first_id");
    c->tolerable_failed = (int)get_int(ck, "tolerable_failed");
    const char *info = get_str(ck, "job_info");
    size_t il = info ? strlen(info) / 2 : 0;
    out->job_info = malloc(il + 1);
    if (out->job_info && info &&
        sodium_hex2bin(out->job_info, il + 1, info, strlen(info), NULL, &il, NULL) == 0) {
      c->job_info = out->job_info;
      c->job_info_len = il;
    }
    json_t *ex = json_object_get(ck, "expected");
    size_t n = json_array_size(ex);
    if (n) {
      out->expected = calloc(n, sizeof *out->expected);
      for (size_t i = 0; out->expected && i < n; i++)
        out->expected[i] = json_string_value(json_array_get(ex, i));
      c->expected = out->expected;
    }
    s->checkpoint = c;
  }
  out->defaults = (td_host_defaults_t){
      (int)get_int(d, "parallelism"),     (int)get_int(d, "max_parallelism"),
      json_is_true(json_object_get(d, "resume")),
      json_is_true(json_object_get(d, "allow_existing_output")),
      json_is_true(json_object_get(d, "allow_non_restored")),
      get_str(d, "checkpoint_dir"),       get_str(d, "checkpoint_interval"),
      get_str(d, "buffer_timeout"),       get_str(d, "state_backend"),
      get_str(d, "state_dir"),            get_str(d, "run_id"),
      get_str(d, "from_savepoint")};
  s->host_defaults = &out->defaults;
  return 0;
}
