/*
 * test_forkguard.c - a snapshot child forked while other threads unwind
 * (core/forkguard.h) can itself unwind.
 *
 * As LuaJIT does, the test registers unwind tables at run time (one
 * hand-built CIE and FDE for a dummy code range), after which every FDE
 * lookup takes libgcc's lock. Threads walk their stacks (_Unwind_Backtrace)
 * without pause while the main thread forks children that walk theirs and
 * exit. With a plain fork() a child inherits the lock held by a walking
 * thread about once in a few forks and never exits; td_fork_guarded must
 * give children that all exit.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <unwind.h>

#include "forkguard.h"
#include "testlib.h"

void __register_frame(void *begin);
void __deregister_frame(void *begin);

/* .eh_frame bytes: a CIE (version 1, "zR", absolute 8-byte pointers, CFA
 * = rsp + 8, return address at CFA - 8), an FDE covering 'code', and the
 * zero terminator. */
static unsigned char g_code[64];
static _Alignas(8) unsigned char g_eh[64];

static void build_eh_frame(void) {
  unsigned char *p = g_eh;
  static const unsigned char cie[] = {
      20, 0, 0, 0,            /* length of what follows */
      0, 0, 0, 0,             /* CIE id */
      1, 'z', 'R', 0,         /* version, augmentation */
      1, 0x78, 16,            /* code align 1, data align -8, RA column 16 */
      1, 0x00,                /* augmentation data: FDE encoding absptr */
      0x0c, 7, 8, 0x90, 1, 0, 0 /* def_cfa rsp+8; offset r16 cfa-8; nops */
  };
  memcpy(p, cie, sizeof cie);
  p += sizeof cie;
  uint32_t len = 4 + 8 + 8 + 1 + 3; /* CIE pointer, begin, range, aug len, nops */
  memcpy(p, &len, 4);
  uint32_t back = (uint32_t)(p + 4 - g_eh);
  memcpy(p + 4, &back, 4);
  uint64_t begin = (uint64_t)(uintptr_t)g_code, range = sizeof g_code;
  memcpy(p + 8, &begin, 8);
  memcpy(p + 16, &range, 8);
  memset(p + 24, 0, 4); /* augmentation length 0, nops */
  p += 4 + len;
  memset(p, 0, 4);
}

static atomic_int g_stop;
static atomic_long g_walks;

static _Unwind_Reason_Code count_frame(struct _Unwind_Context *ctx, void *arg) {
  (void)ctx;
  ++*(int *)arg;
  return _URC_NO_REASON;
}

static void *walker(void *arg) {
  (void)arg;
  while (!atomic_load(&g_stop)) {
    int frames = 0;
    _Unwind_Backtrace(count_frame, &frames);
    atomic_fetch_add(&g_walks, 1);
  }
  return NULL;
}

/* Wait up to ms for pid; 1 if it exited with status 0, 0 otherwise (a
 * child still running is killed). */
static int exits_within(pid_t pid, int ms) {
  for (int waited = 0; waited < ms; waited++) {
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) && WEXITSTATUS(st) == 0;
    struct timespec ts = {0, 1000000L};
    nanosleep(&ts, NULL);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return 0;
}

TD_TEST(test_forkguard_children_unwind_while_threads_do) {
  build_eh_frame();
  __register_frame(g_eh);
  pthread_t th[2];
  for (int i = 0; i < 2; i++) TD_CHECK(pthread_create(&th[i], NULL, walker, NULL) == 0);
  while (atomic_load(&g_walks) < 100) sched_yield();
  int forks = 300, hung = 0, walked = 0;
  for (int i = 0; i < forks; i++) {
    pid_t pid = td_fork_guarded();
    if (pid == 0) {
      int frames = 0;
      _Unwind_Backtrace(count_frame, &frames);
      _exit(frames > 0 ? 0 : 1);
    }
    TD_CHECK(pid > 0);
    if (pid < 0) break;
    if (exits_within(pid, 5000)) walked++;
    else if (++hung == 3) break; /* enough to know */
  }
  atomic_store(&g_stop, 1);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  __deregister_frame(g_eh);
  if (hung) fprintf(stderr, "  %d children of %d did not exit\n", hung, walked + hung);
  TD_CHECK_INT(walked, forks);
}

TD_TEST_MAIN(test_forkguard_children_unwind_while_threads_do)
