/* log.c - the process's log lines on stderr (log.h). */
#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

static td_log_level_t max_level = TD_LOG_INFO;
static int as_json;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char *job; /* mu */
static char status[256]; /* mu: the status line shown on the terminal */

static const char *const names[] = {"error", "warn", "info", "debug"};

int td_log_level_parse(const char *name, td_log_level_t *out) {
  for (int i = 0; i < 4; i++) {
    if (strcmp(name, names[i]) == 0) {
      *out = (td_log_level_t)i;
      return 0;
    }
  }
  return -1;
}

void td_log_configure(td_log_level_t level, int json) {
  max_level = level;
  as_json = json != 0;
}

void td_log_set_job(const char *job_id) {
  char *copy = job_id ? strdup(job_id) : NULL;
  pthread_mutex_lock(&mu);
  free(job);
  job = copy;
  pthread_mutex_unlock(&mu);
}

int td_log_enabled(td_log_level_t level) { return level <= max_level; }

void td_log(td_log_level_t level, const char *component, const char *subtask,
            const char *message) {
  if (!td_log_enabled(level)) return;
  if (!as_json) {
    const char *warn = level == TD_LOG_WARN && strncmp(message, "warning: ", 9) != 0 ? "warning: " : "";
    pthread_mutex_lock(&mu);
    /* over the status line, which comes back below the event */
    fprintf(stderr, "%stide: %s%s\n%s", status[0] ? "\r\033[K" : "", warn, message, status);
    pthread_mutex_unlock(&mu);
    return;
  }
  if (level == TD_LOG_WARN && strncmp(message, "warning: ", 9) == 0) message += 9;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  json_t *o = json_pack("{s:I, s:s, s:s}", "ts",
                        (json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, "level",
                        names[level], "component", component ? component : "tide");
  pthread_mutex_lock(&mu);
  if (o && job) json_object_set_new(o, "job", json_string(job));
  pthread_mutex_unlock(&mu);
  if (o && subtask) json_object_set_new(o, "subtask", json_string(subtask));
  if (o) json_object_set_new(o, "message", json_string(message));
  char *line = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
  json_decref(o);
  if (line) {
    fprintf(stderr, "%s\n", line);
    free(line);
  } else {
    fprintf(stderr, "tide: %s\n", message); /* out of memory: the text */
  }
}

void td_log_status(const char *text) {
  pthread_mutex_lock(&mu);
  if (text && *text) {
    snprintf(status, sizeof status, "%s", text);
    fprintf(stderr, "\r\033[K%s", status);
  } else if (status[0]) {
    status[0] = 0;
    fputs("\r\033[K", stderr);
  }
  fflush(stderr);
  pthread_mutex_unlock(&mu);
}
