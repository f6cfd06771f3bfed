"""Helpers of the benchmark reports (run.sh, checkpoint.sh, unaligned.sh):
the times lib.sh's `timed` wrote, and how busy the machine was with other
work during a run (the CPU time the whole machine spent between two
/proc/stat snapshots, against the measured processes' own).
"""


def read_times(path):
    """{row: [(wall_s, cpu_s), ...]} and {row: highest peak RSS in KiB}
    from a file of "NAME WALL_S RSS_KB USER_S SYS_S" lines."""
    walls, rss = {}, {}
    for line in open(path):
        name, wall, kb, user, sys_ = line.split()
        walls.setdefault(name, []).append((float(wall), float(user) + float(sys_)))
        rss[name] = max(rss.get(name, 0), int(kb))
    return walls, rss


def cpu_busy(path):
    """(busy, total) CPU ticks from the first line of a /proc/stat copy."""
    f = open(path).read().split()
    if len(f) < 5 or f[0] != "cpu":
        return None
    v = [int(x) for x in f[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v[:8]) - idle, sum(v[:8])


def other_load_line(stat0, stat1, hz, walls, label):
    """The "Other load during ..." line, or None without /proc/stat.
    walls: {row: [(wall_s, cpu_s), ...]} of the measured processes."""
    b0, b1 = cpu_busy(stat0), cpu_busy(stat1)
    if not (b0 and b1):
        return None
    hz = int(hz)
    ours = sum(c for v in walls.values() for _, c in v)
    busy, total = (b1[0] - b0[0]) / hz, (b1[1] - b0[1]) / hz
    other = max(0.0, busy - ours)
    return "Other load during %s: about %.0f CPU s of %.0f available (%.0f%%)%s" % (
        label, other, total, 100 * other / total if total else 0,
        "; the machine was busy, so the figures are pessimistic: rerun on a quiet machine"
        if total and other / total > 0.1 else ".")


def print_verdicts(title, verdicts, wall_line, stat0, stat1, hz, walls, label):
    """The end of a report: "TITLE:", the verdict lines, the wall time
    line, and the other-load line when /proc/stat was read."""
    print()
    print(title + ":")
    for v in verdicts:
        print(v)
    print()
    print(wall_line)
    line = other_load_line(stat0, stat1, hz, walls, label)
    if line:
        print(line)
