/*
 * web.h - the web dashboard's static files, built into the binary (the
 * page makes no request but to its own control endpoint; control.h serves
 * them at GET /, /dashboard.js and /dashboard.css).
 *
 * The files are core/web/index.html, dashboard.js and dashboard.css, taken
 * in at build time (web.c, the assembler's .incbin): editing one rebuilds
 * web.o (Makefile).
 */
#ifndef TD_WEB_H
#define TD_WEB_H

#include <stddef.h>

typedef struct td_web_file {
  const char *path;         /* as requested: "/", "/dashboard.js", ... */
  const char *content_type; /* its Content-Type header */
  const unsigned char *data;
  size_t len;               /* bytes */
} td_web_file_t;

/* td_web_file - the built-in file served at path (the URL's path, without
 * query; "/index.html" is "/"): 1 and *out, or 0 when there is none. */
int td_web_file(const char *path, td_web_file_t *out);

#endif
