/* client.c - one request to a job's control endpoint (see client.h). */
#include "client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "error.h"

static long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for events or the deadline passed: 0 or -ETIMEDOUT. */
static int wait_fd(int fd, short events, long long deadline) {
  for (;;) {
    long long left = deadline - mono_ms();
    if (left <= 0) return -ETIMEDOUT;
    struct pollfd p = {.fd = fd, .events = events};
    int r = poll(&p, 1, (int)left);
    if (r > 0) return 0;
    if (r < 0 && errno != EINTR) return -errno;
  }
}

int td_client_request(const char *address, const char *method, const char *path,
                      const char *body, int timeout_ms, int *status, char **response, char *err,
                      size_t errlen) {
  *response = NULL;
  *status = 0;
  char host[128];
  const char *colon = strrchr(address, ':');
  if (!colon || (size_t)(colon - address) >= sizeof host) {
    snprintf(err, errlen, "bad control address '%s'", address);
    return TD_EINVAL;
  }
  snprintf(host, sizeof host, "%.*s", (int)(colon - address), address);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)atoi(colon + 1));
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    snprintf(err, errlen, "bad control address '%s'", address);
    return TD_EINVAL;
  }
  long long deadline = mono_ms() + timeout_ms;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int e = errno;
    snprintf(err, errlen, "socket: %s", strerror(e));
    return -e;
  }
  int rc = 0;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) rc = -errno;
  char head[1024];
  size_t blen = body ? strlen(body) : 0;
  int hlen = snprintf(head, sizeof head,
                      "%s %s HTTP/1.0\r\nHost: %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      method, path, address, blen);
  const char *parts[2] = {head, body};
  size_t lens[2] = {(size_t)hlen, blen};
  for (int i = 0; rc == 0 && i < 2; i++) {
    for (size_t off = 0; rc == 0 && off < lens[i];) {
      ssize_t w = send(fd, parts[i] + off, lens[i] - off, MSG_NOSIGNAL);
      if (w > 0) off += (size_t)w;
      else if (errno != EINTR) rc = -errno;
    }
  }
  char *buf = NULL;
  size_t len = 0, cap = 0;
  while (rc == 0) {
    if ((rc = wait_fd(fd, POLLIN, deadline)) != 0) break;
    if (len + 4096 + 1 > cap) {
      cap = cap ? 2 * cap : 8192;
      char *b = realloc(buf, cap);
      if (!b) {
        rc = TD_ENOMEM;
        break;
      }
      buf = b;
    }
    ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
    if (r == 0) break;
    if (r > 0) len += (size_t)r;
    else if (errno != EINTR) rc = -errno;
  }
  close(fd);
  if (rc) {
    free(buf);
    snprintf(err, errlen, "cannot reach the job's control endpoint at %s: %s", address,
             rc == -ETIMEDOUT ? "no answer in time" : td_strerror(rc));
    return rc;
  }
  if (buf) buf[len] = 0;
  int code = 0;
  char *sep = buf ? strstr(buf, "\r\n\r\n") : NULL;
  if (!buf || sscanf(buf, "HTTP/%*d.%*d %d", &code) != 1 || !sep) {
    free(buf);
    snprintf(err, errlen, "%s did not answer in HTTP", address);
    return TD_ECORRUPT;
  }
  sep += 4;
  memmove(buf, sep, len - (size_t)(sep - buf) + 1);
  *status = code;
  *response = buf;
  return 0;
}
