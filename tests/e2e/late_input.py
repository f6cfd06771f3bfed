"""tests/e2e/late_input.py OUT.csv - the input of the late-records test and
its oracle: prints how many rows a 1-hour tumbling event-time window with
1 h allowed lateness drops behind a per-record watermark with a 1 h bound
(Flink's definitions: the watermark is the largest timestamp seen minus the
bound minus 1 ms; a row is dropped when its window is late, i.e. the window's
max timestamp + lateness <= the watermark, WindowOperator.isWindowLate; the
row itself is then late too).

Rows k,t: t rises 1 s per row; every 997th row lags 30 min (out of order,
never late); from row 20000 every 5000th row lags 14 h (late). Each row is
late or on time whether the watermark reaches the window after every row or
up to 10000 rows later (the runtime may deliver watermarks in batches), and
the script checks that, so the count does not depend on batching."""
import sys

N, BOUND, LATENESS, SIZE, SLACK = 100000, 3600000, 3600000, 3600000, 10000
BASE = 1700000000000
ts = []
for i in range(N):
    t = BASE + i * 1000
    if i >= 20000 and i % 5000 == 0:
        t -= 14 * 3600000
    elif i % 997 == 0:
        t -= 1800000
    ts.append(t)
late, prefix_max = 0, []
m = None
for t in ts:
    prefix_max.append(m)
    m = t if m is None else max(m, t)
for i, t in enumerate(ts):
    newest = prefix_max[i]  # the watermark after every row
    oldest = prefix_max[i - SLACK] if i >= SLACK else None  # SLACK rows behind
    max_ts = t - t % SIZE + SIZE - 1  # the end of t's window - 1
    late_now = newest is not None and max_ts + LATENESS <= newest - BOUND - 1
    late_then = oldest is not None and max_ts + LATENESS <= oldest - BOUND - 1
    if late_now != late_then:
        sys.exit("row %d is late or not depending on when the watermark arrives" % i)
    late += late_now
with open(sys.argv[1], "w") as f:
    f.write("k,t\n")
    for i, t in enumerate(ts):
        f.write("k%d,%d\n" % (i % 7, t))
print(late)
