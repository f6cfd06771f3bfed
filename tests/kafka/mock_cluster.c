/* mock_cluster.c - a librdkafka mock Kafka cluster for the tests: starts
 * BROKERS brokers, creates the topics given as NAME:PARTITIONS, prints the
 * bootstrap servers on one line and serves until killed.
 *
 *   mock_cluster BROKERS [TOPIC:PARTITIONS ...]
 *
 * SIGUSR1 takes every broker down (connections closed and refused, as a
 * failed cluster), SIGUSR2 brings them up again.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop, down, up;

static void on_signal(int sig) {
  if (sig == SIGUSR1)
    down = 1;
  else if (sig == SIGUSR2)
    up = 1;
  else
    stop = sig;
}

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
  signal(SIGUSR1, on_signal);
  signal(SIGUSR2, on_signal);
  int brokers = atoi(argv[1]);
  printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
  fflush(stdout);
  while (!stop) {
    pause();
    if (down || up) {
      for (int b = 1; b <= brokers; b++)
        (down ? rd_kafka_mock_broker_set_down : rd_kafka_mock_broker_set_up)(mc, b);
      down = up = 0;
    }
  }
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return 0;
}
