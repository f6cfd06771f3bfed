"""How busy the machine was with other work during a benchmark run.

Used by run.sh's report scripts: compares the CPU time the whole machine
spent between two /proc/stat snapshots with the measured processes' own.
"""


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
