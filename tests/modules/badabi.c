/*
 * badabi.c - a module declaring another ABI than the core's: major
 * BADABI_MAJOR (default 99) and minor BADABI_MINOR (default 0). Built
 * twice by the Makefile: badabi.so (major 99) and newminor.so (the core's
 * major, a minor above the core's). Its init must never run.
 */
#include <stdlib.h>

#include <tide.h>

#ifndef BADABI_MAJOR
#define BADABI_MAJOR 99
#endif
#ifndef BADABI_MINOR
#define BADABI_MINOR 0
#endif

static int init(td_module_t *m, const td_api_t *api) {
  abort(); /* the host must refuse the module before calling it */
}

TIDE_EXPORT const td_module_decl_t tide_module = {
    TIDE_MODULE_MAGIC, (BADABI_MAJOR << 16) | BADABI_MINOR, sizeof(td_module_decl_t), "badabi",
    "0", init};
