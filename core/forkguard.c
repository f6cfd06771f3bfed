/* forkguard.c - fork while other threads may be unwinding (forkguard.h). */
#include "forkguard.h"

#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>

static pthread_rwlock_t g_guard = PTHREAD_RWLOCK_INITIALIZER;

typedef const void *(*find_fde_fn)(void *pc, void *bases);
typedef void (*frame_fn)(void *begin);

static find_fde_fn g_find_fde;
static frame_fn g_register, g_deregister;

/* Resolve the real entry points before any thread runs: dlsym takes the
 * loader's lock and may allocate, which an unwinding thread must not. */
__attribute__((constructor)) static void resolve(void) {
  g_find_fde = (find_fde_fn)dlsym(RTLD_NEXT, "_Unwind_Find_FDE");
  g_register = (frame_fn)dlsym(RTLD_NEXT, "__register_frame");
  g_deregister = (frame_fn)dlsym(RTLD_NEXT, "__deregister_frame");
}

/* The unwinder's own: the FDE of pc, or NULL (libgcc's unwind-dw2-fde.h;
 * bases is its struct dwarf_eh_bases). */
const void *_Unwind_Find_FDE(void *pc, void *bases);
void __register_frame(void *begin);
void __deregister_frame(void *begin);

const void *_Unwind_Find_FDE(void *pc, void *bases) {
  if (!g_find_fde) return NULL; /* no libgcc_s: nothing can unwind */
  pthread_rwlock_rdlock(&g_guard);
  const void *r = g_find_fde(pc, bases);
  pthread_rwlock_unlock(&g_guard);
  return r;
}

void __register_frame(void *begin) {
  if (!g_register) return;
  pthread_rwlock_rdlock(&g_guard);
  g_register(begin);
  pthread_rwlock_unlock(&g_guard);
}

void __deregister_frame(void *begin) {
  if (!g_deregister) return;
  pthread_rwlock_rdlock(&g_guard);
  g_deregister(begin);
  pthread_rwlock_unlock(&g_guard);
}

pid_t td_fork_guarded(void) {
  pthread_rwlock_wrlock(&g_guard);
  pid_t pid = fork();
  if (pid == 0) {
    /* the child's copy names the parent's thread as its writer: this
     * thread, the child's only one, starts it afresh (as an atfork child
     * handler would) */
    pthread_rwlock_t fresh = PTHREAD_RWLOCK_INITIALIZER;
    g_guard = fresh;
  } else {
    pthread_rwlock_unlock(&g_guard);
  }
  return pid;
}
