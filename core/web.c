/* web.c - the dashboard's files, taken in at build time (web.h). */
#include "web.h"

#include <stdint.h>
#include <string.h>

/* Each file at a symbol in .rodata, its size in bytes at another; the
 * paths are relative to the directory make runs in (the source tree's
 * top). */
#define TD_WEB_INCBIN(sym, file)                                       \
  __asm__(".section .rodata\n"                                         \
          ".global " #sym "\n"                                         \
          ".hidden " #sym "\n"                                         \
          ".global " #sym "_size\n"                                    \
          ".hidden " #sym "_size\n"                                    \
          ".balign 16\n" #sym ":\n"                                    \
          ".incbin \"" file "\"\n"                                     \
          "1:\n"                                                       \
          ".byte 0\n"                                                  \
          ".balign 8\n" #sym "_size:\n"                                \
          ".quad 1b - " #sym "\n"                                      \
          ".previous\n");                                              \
  extern const unsigned char sym[];                                    \
  extern const uint64_t sym##_size

TD_WEB_INCBIN(td_web_index, "core/web/index.html");
TD_WEB_INCBIN(td_web_js, "core/web/dashboard.js");
TD_WEB_INCBIN(td_web_css, "core/web/dashboard.css");

int td_web_file(const char *path, td_web_file_t *out) {
  if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0)
    *out = (td_web_file_t){"/", "text/html; charset=utf-8", td_web_index,
                           (size_t)td_web_index_size};
  else if (strcmp(path, "/dashboard.js") == 0)
    *out = (td_web_file_t){"/dashboard.js", "text/javascript; charset=utf-8", td_web_js,
                           (size_t)td_web_js_size};
  else if (strcmp(path, "/dashboard.css") == 0)
    *out = (td_web_file_t){"/dashboard.css", "text/css; charset=utf-8", td_web_css,
                           (size_t)td_web_css_size};
  else
    return 0;
  return 1;
}
