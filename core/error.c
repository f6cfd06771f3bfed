/* error.c - messages and names for Tide's error codes (see error.h). */
#include "error.h"

#include <errno.h>
#include <string.h>

const char *td_strerror(int code) {
  if (code == 0) return "success";
  switch (code) {
#define TD_ERR_MSG(name, c, msg) case c: return msg;
    TD_ERRNO_MAP(TD_ERR_MSG)
#undef TD_ERR_MSG
  }
  if (code < 0 && code > -4000) return strerror(-code);
  return "unknown error";
}

const char *td_err_name(int code) {
  switch (code) {
#define TD_ERR_NAME(name, c, msg) case c: return #name;
    TD_ERRNO_MAP(TD_ERR_NAME)
#undef TD_ERR_NAME
  case -ENOENT: return "ENOENT";
  case -EACCES: return "EACCES";
  case -EISDIR: return "EISDIR";
  case -ENOTDIR: return "ENOTDIR";
  case -EEXIST: return "EEXIST";
  case -ENOSPC: return "ENOSPC";
  case -EIO: return "EIO";
  }
  return "UNKNOWN";
}
