/*
 * client.h - the command line's side of a job's control endpoint
 * (core/control.h): one HTTP/1.0 request to host:port on loopback (or
 * wherever --rest-bind put it), the response read whole. Small on
 * purpose: the endpoint is ours, answers with Content-Length and closes.
 *
 * Thread safety: no shared state.
 */
#ifndef TD_CLIENT_H
#define TD_CLIENT_H

#include <stddef.h>

/*
 * td_client_request - send `method path` with body (NULL: none; sent as
 * application/json) to address ("host:port", an IPv4 host) and wait up to
 * timeout_ms for the whole response. Returns 0 with the HTTP status in
 * *status and the response body in *response (NUL-terminated, malloc'ed:
 * free it); -errno (cannot connect, ...), -ETIMEDOUT or TD_ECORRUPT (not
 * an HTTP response) with a message in err.
 */
int td_client_request(const char *address, const char *method, const char *path,
                      const char *body, int timeout_ms, int *status, char **response, char *err,
                      size_t errlen);

#endif
