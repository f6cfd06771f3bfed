/*
 * error.h - Tide's error codes.
 *
 * Fallible functions return 0 or a negative code: -errno for system errors,
 * or one of the TD_E* codes (all below -4000 so they never collide with
 * errno values). The X-macro list TD_ERRNO_MAP is in tide.h, the public
 * ABI (modules return these codes); it generates the enum, td_strerror()
 * and td_err_name(), and the Lua constants (libuv's UV_ERRNO_MAP pattern).
 */
#ifndef TD_ERROR_H
#define TD_ERROR_H

#include "tide.h" /* TD_ERRNO_MAP and the TD_E* codes: public */

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
