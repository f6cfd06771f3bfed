/*
 * error.h - Tide's error codes.
 *
 * Fallible functions return 0 or a negative code: -errno for system errors,
 * or one of the TD_E* codes below (all below -4000 so they never collide
 * with errno values). One X-macro list generates the enum, td_strerror()
 * and td_err_name(), and the Lua constants (libuv's UV_ERRNO_MAP pattern).
 */
#ifndef TD_ERROR_H
#define TD_ERROR_H

#define TD_ERRNO_MAP(X)                                                   \
  X(EINVAL,    -4001, "invalid argument")                                 \
  X(ENOMEM,    -4002, "out of memory")                                    \
  X(ECODEC,    -4003, "value cannot be encoded")                          \
  X(ECORRUPT,  -4004, "malformed or truncated data")                      \
  X(EPARSE,    -4005, "malformed input line")                             \
  X(ECANCELED, -4006, "job was cancelled")                                \
  X(ESCRIPT,   -4007, "error in job script")                              \
  X(EIO,       -4008, "input/output error")                               \
  X(ESTATE,    -4009, "state backend error")

enum {
#define TD_ERR_ENUM(name, code, msg) TD_##name = (code),
  TD_ERRNO_MAP(TD_ERR_ENUM)
#undef TD_ERR_ENUM
};

/*
 * td_strerror - a human-readable message for an error code.
 * code: 0, a negative errno, or a TD_E* code. Returns a static string;
 * never NULL (unknown codes give "unknown error").
 */
const char *td_strerror(int code);

/*
 * td_err_name - the symbolic name of an error code ("EINVAL", "ENOENT").
 * Returns a static string; "UNKNOWN" for codes it does not know.
 */
const char *td_err_name(int code);

#endif
