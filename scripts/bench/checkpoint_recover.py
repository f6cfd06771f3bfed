"""Recovery benchmark of scripts/bench/checkpoint.sh (goal 3).

    python3 checkpoint_recover.py TIDE JOB_LUA CKPT_DIR KEYS [RUN_ARG...] [+ RESUME_ARG...]

RUN_ARGs go to both runs' command lines (e.g. --state-backend rocksdb
--state-dir D, --parallelism 2), RESUME_ARGs after "+" to the resumed run
only (e.g. --parallelism 4: a rescale).

1. Runs JOB_LUA (checkpoint_state.lua) without end over KEYS keys, with
   checkpoints every second into CKPT_DIR.
2. Once every key has state (the job's ALLKEYS line), waits for a
   checkpoint triggered after that moment to complete (its _metadata
   appears), then kills the job and its snapshot children with SIGKILL.
3. Starts the same command with --resume and reads its stderr until the
   first record after the restore (the job's RESUMED line), then kills it.

Prints one line:
    RESTORE_MS FIRST_RECORD_MS CHECKPOINT_ID STATE_BYTES
RESTORE_MS is the runtime's "restored in X ms" (the slowest subtask);
FIRST_RECORD_MS is the wall time from starting the resumed process to its
first record processed. Exits 1 when a step fails or the restored count of
the first record's key does not match the restored source position.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time

# seconds each step may take (CKPT_RECOVER_TIMEOUT: filling 10M keys on
# RocksDB takes longer than the default)
TIMEOUT_S = float(os.environ.get("CKPT_RECOVER_TIMEOUT", "60"))


def die(msg):
    print("checkpoint_recover: " + msg, file=sys.stderr)
    sys.exit(1)


def children(pid):
    """Pids whose parent is pid (the snapshot children of a tide process)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    # the command may hold spaces: the parent pid follows ") S "
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def kill(proc):
    """SIGKILL a tide process and the snapshot children it forked."""
    kids = children(proc.pid)
    for pid in [proc.pid] + kids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    deadline = time.time() + 10
    for pid in kids:  # orphans are reaped by init; wait until they are gone
        while os.path.exists("/proc/%d" % pid) and time.time() < deadline:
            time.sleep(0.01)


class Lines:
    """Reads a process's stderr on a thread; wait_for(regex) -> match."""

    def __init__(self, stream):
        self.lines, self.cond = [], threading.Condition()
        self.done = False
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for raw in stream:
            with self.cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.done = True
            self.cond.notify_all()

    def wait_for(self, pattern, timeout=TIMEOUT_S):
        rx, i, end = re.compile(pattern), 0, time.time() + timeout
        with self.cond:
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    i += 1
                    if m:
                        return m
                if self.done or time.time() > end:
                    return None
                self.cond.wait(0.05)


def chk_ids(job_dir, complete):
    """Checkpoint ids in job_dir (only those with _metadata if complete)."""
    ids = []
    for name in os.listdir(job_dir) if os.path.isdir(job_dir) else []:
        m = re.fullmatch(r"chk-(\d+)", name)
        if m and (not complete or os.path.exists(os.path.join(job_dir, name, "_metadata"))):
            ids.append(int(m.group(1)))
    return ids


def main():
    tide, job, ckpt_dir, keys = sys.argv[1:5]
    extra = sys.argv[5:]
    run_extra = extra[:extra.index("+")] if "+" in extra else extra
    resume_extra = extra[extra.index("+") + 1:] if "+" in extra else []
    env = dict(os.environ, TIDE_CHECKPOINT_STATS="1")
    cmd = [tide, "run", job, "--parallelism", "1", "--checkpoint-dir", ckpt_dir,
           "--checkpoint-interval", "1s"] + run_extra
    args = ["--", "0", keys]
    job_dir = os.path.join(ckpt_dir, "checkpoint_state")

    run = subprocess.Popen(cmd + args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = Lines(run.stderr)
    if not err.wait_for(r"^ALLKEYS "):
        kill(run)
        die("the job did not report ALLKEYS: " + " | ".join(err.lines[-5:]))
    # a checkpoint triggered after this moment (its directory does not exist yet)
    after = max(chk_ids(job_dir, False), default=0)
    end, done = time.time() + TIMEOUT_S, []
    while not done and time.time() < end and run.poll() is None:
        done = [i for i in chk_ids(job_dir, True) if i > after]
        if not done:
            time.sleep(0.01)
    kill(run)
    if not done:
        die("no checkpoint completed after every key had state")
    chk = max(chk_ids(job_dir, True))
    size = sum(os.path.getsize(os.path.join(job_dir, "chk-%d" % chk, f))
               for f in os.listdir(os.path.join(job_dir, "chk-%d" % chk)))

    t0 = time.time()
    run = subprocess.Popen(cmd + resume_extra + ["--resume"] + args, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    err = Lines(run.stderr)
    m = err.wait_for(r"^RESUMED (\d+) (\d+) (\d+) (\d+) (\d+)$")
    kill(run)
    if not m:
        die("the resumed job processed no record: " + " | ".join(err.lines[-5:]))
    first_ms = int(m.group(1)) - t0 * 1000
    i, key, count, expected = (int(m.group(g)) for g in (2, 3, 4, 5))
    if count != expected or i <= int(keys):
        die("restored from chk-%d: record %d, key %d has count %d, the source position implies %d"
            % (chk, i, key, count, expected))
    restored = [float(x) for x in re.findall(r"restored in ([0-9.]+) ms", "\n".join(err.lines))]
    if not restored:
        die("no 'restored in' line (TIDE_CHECKPOINT_STATS)")
    print("%.1f %.1f %d %d" % (max(restored), first_ms, chk, size))


if __name__ == "__main__":
    main()
