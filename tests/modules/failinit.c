/* failinit.c - a module whose init refuses to load, with a message; and
 * registers an operator with a missing function first. */
#include <tide.h>

static int init(td_module_t *m, const td_api_t *api) {
  td_op_t op = {.size = sizeof(td_op_t), .kind = TD_OP_MAP, .name = "broken"};
  int rc = api->register_op(m, &op); /* no process: TD_EINVAL, message set */
  return rc ? rc : api->module_error(m, TD_EINVAL, "unexpected");
}

TIDE_MODULE("failinit", "0", init);
