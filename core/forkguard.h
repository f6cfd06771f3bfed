/*
 * forkguard.h - fork a snapshot child while other threads may be unwinding.
 *
 * A checkpoint's asynchronous part runs in a child forked by a task thread
 * (checkpoint.h). After fork() only the forking thread exists in the
 * child, and a lock another thread held at that moment stays locked there
 * forever. One such lock is libgcc's unwinder lock (object_mutex): once
 * any code registered unwind tables at run time (LuaJIT does, for its
 * machine code), every FDE lookup takes it, and LuaJIT unwinds with it on
 * every error and on every aborted trace recording. A child whose LuaJIT
 * aborted a trace while another subtask's thread was unwinding at the
 * fork hung on that lock for good (the checkpoint then waited for its
 * timeout, 10 minutes by default).
 *
 * So the executables define the unwinder's entry points that take the
 * lock (_Unwind_Find_FDE, which libgcc_s itself calls through its PLT,
 * __register_frame, __deregister_frame): each holds the guard for reading
 * around the real one (found with dlsym(RTLD_NEXT)), and a fork holds it
 * for writing. No thread is inside the unwinder's lock when the child is
 * made. Interposition works for code loaded with the executable (LuaJIT,
 * librocksdb, libstdc++); a Lua module loaded with RTLD_LOCAL (busted's
 * tide.core) does not interpose, and forks nothing with threads running.
 */
#ifndef TD_FORKGUARD_H
#define TD_FORKGUARD_H

#include <sys/types.h>

/*
 * td_fork_guarded - fork(2) with no other thread inside the unwinder's
 * lock: waits (microseconds) for FDE lookups in progress to end. Same
 * return values and errno as fork(2).
 */
pid_t td_fork_guarded(void);

#endif
