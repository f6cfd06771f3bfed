/* produce.c - a test producer with explicit partitions and timestamps:
 * reads lines "PARTITION<TAB>TIMESTAMP_MS<TAB>VALUE" from stdin and
 * produces each VALUE to TOPIC on the cluster at BOOTSTRAP, then flushes.
 * (kcat cannot set record timestamps.)
 *
 *   kafka_produce BOOTSTRAP TOPIC < lines
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failed;

static void dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  if (m->err) {
    fprintf(stderr, "kafka_produce: delivery failed: %s\n", rd_kafka_err2str(m->err));
    failed = 1;
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: kafka_produce BOOTSTRAP TOPIC < 'PARTITION<TAB>TS<TAB>VALUE' lines\n");
    return 2;
  }
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], err, sizeof err) != RD_KAFKA_CONF_OK) {
    fprintf(stderr, "kafka_produce: %s\n", err);
    return 1;
  }
  rd_kafka_conf_set_dr_msg_cb(conf, dr);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) {
    fprintf(stderr, "kafka_produce: %s\n", err);
    return 1;
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  long n = 0;
  while ((len = getline(&line, &cap, stdin)) > 0) {
    n++;
    if (line[len - 1] == '\n') line[--len] = '\0';
    char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
    if (!t2) {
      fprintf(stderr, "kafka_produce: stdin:%ld: PARTITION<TAB>TS<TAB>VALUE expected\n", n);
      return 2;
    }
    int32_t p = (int32_t)atoi(line);
    int64_t ts = atoll(t1 + 1);
    const char *v = t2 + 1;
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(argv[2]), RD_KAFKA_V_PARTITION(p),
                                  RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_VALUE((void *)v, strlen(v)),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
      rd_kafka_poll(rk, 100);
    if (e) {
      fprintf(stderr, "kafka_produce: stdin:%ld: %s\n", n, rd_kafka_err2str(e));
      return 1;
    }
    rd_kafka_poll(rk, 0);
  }
  free(line);
  if (rd_kafka_flush(rk, 30000)) {
    fprintf(stderr, "kafka_produce: not every record was acknowledged\n");
    failed = 1;
  }
  rd_kafka_destroy(rk);
  return failed;
}
