/* mock_cluster.c - a librdkafka mock Kafka cluster for the tests: starts
 * BROKERS brokers, creates the topics given as NAME:PARTITIONS, prints the
 * bootstrap servers on one line and serves until killed.
 *
 *   mock_cluster BROKERS [TOPIC:PARTITIONS ...]
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig) { stop = sig; }

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: mock_cluster BROKERS [TOPIC:PARTITIONS ...]\n");
    return 2;
  }
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) {
    fprintf(stderr, "mock_cluster: %s\n", err);
    return 1;
  }
  rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, atoi(argv[1]));
  if (!mc) {
    fprintf(stderr, "mock_cluster: cannot start the mock cluster\n");
    return 1;
  }
  for (int i = 2; i < argc; i++) {
    char *colon = strrchr(argv[i], ':');
    if (!colon) {
      fprintf(stderr, "mock_cluster: %s: TOPIC:PARTITIONS expected\n", argv[i]);
      return 2;
    }
    *colon = '\0';
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, argv[i], atoi(colon + 1), 1);
    if (e) {
      fprintf(stderr, "mock_cluster: topic %s: %s\n", argv[i], rd_kafka_err2str(e));
      return 1;
    }
  }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
  fflush(stdout);
  while (!stop) pause();
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return 0;
}
