# End-to-end: the web dashboard (GET / of the control endpoint, core/web/)
# in headless Chromium, on tests/e2e/dashboard_job.lua at parallelism 2: a
# fast source behind a slow sink, a source whose watermark lags 5 s, one
# failure and restart, checkpoints every 300 ms.
#
# The page's files are served as built (byte for byte the files of
# core/web/); /metrics shows the source backpressured and the sink busy. Chromium (Debian's, headless) loads the page, lets it poll
# the endpoint for 5 s of virtual time and dumps the DOM: the checks read
# the figures the page shows (its data- attributes and texts), against what
# the job was built to do and what the checkpoint directory holds. A
# screenshot (of the same run) shows the graph's boxes in the colours of
# their backpressure levels (tests/e2e/png_colors.py counts the pixels). Without chromium
# (`make deps-browser` could not install it) the browser checks are
# skipped with a message.
. tests/e2e/lib.sh

CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
LINE=$(grep -n 'error("dashboard: failing once' tests/e2e/dashboard_job.lua | cut -d: -f1)

mkdir -p "$TMP/dir"
start_tide dash run tests/e2e/dashboard_job.lua -p 2 --checkpoint-dir "$TMP/ck" \
  --checkpoint-interval 300ms -- "$TMP/dir" 1
check "the job serves its control endpoint ($ADDR)" test -n "$ADDR"

check "the job failed once, restarted, and completed 3 checkpoints" "$PYTHON" - "$ADDR" "$ID" <<'PY'
import json, sys, time, urllib.request
addr, jid = sys.argv[1:3]
for _ in range(300):
    try:
        c = json.load(urllib.request.urlopen(f"http://{addr}/jobs/{jid}/checkpoints", timeout=5))
        j = json.load(urllib.request.urlopen(f"http://{addr}/jobs/{jid}", timeout=5))
        if j["restarts"] >= 1 and j["state"] == "RUNNING" and c["counts"]["completed"] >= 3:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.1)
sys.exit(f"restarts {j['restarts']}, state {j['state']}, checkpoints {c['counts']}")
PY

check "GET / is the page, GET /dashboard.js and /dashboard.css its files as built, with their types" \
  "$PYTHON" - "$ADDR" <<'PY'
import sys, urllib.request
addr = sys.argv[1]
def get(path):
    r = urllib.request.urlopen(f"http://{addr}{path}", timeout=10)
    return r.headers["Content-Type"], r.read()
for path, file, ctype in (("/", "core/web/index.html", "text/html"),
                          ("/index.html", "core/web/index.html", "text/html"),
                          ("/dashboard.js", "core/web/dashboard.js", "text/javascript"),
                          ("/dashboard.css", "core/web/dashboard.css", "text/css")):
    t, body = get(path)
    if not t.startswith(ctype) or body != open(file, "rb").read():
        sys.exit(f"{path}: {t}, {len(body)} bytes")
PY
check "POST / answers 405, GET /nothing.js 404" "$PYTHON" - "$ADDR" <<'PY'
import sys, urllib.error, urllib.request
addr = sys.argv[1]
def status(path, method):
    try:
        return urllib.request.urlopen(urllib.request.Request(f"http://{addr}{path}", method=method), timeout=10).status
    except urllib.error.HTTPError as e:
        return e.code
sys.exit(not (status("/", "POST") == 405 and status("/nothing.js", "GET") == 404))
PY

check "GET /metrics: the source backpressured and the slow sink busy (> 500 ms/s, the most of their subtasks)" \
  "$PYTHON" - "$ADDR" <<'PY'
import re, sys, urllib.request
body = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=10).read().decode()
def most(metric, task):
    vals = []
    for m in re.finditer(r"^(\w+)\{([^}]*)\} (\S+)$", body, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        if m.group(1) == metric and labels.get("task") == task:
            vals.append(float(m.group(3)))
    return max(vals) if vals else None
bp = most("tide_subtask_backpressured_time_ms_per_second", "0")
busy = most("tide_subtask_busy_time_ms_per_second", "3")
if not (bp and bp > 500 and busy and busy > 500):
    sys.exit(f"source backpressured {bp}, sink busy {busy}")
PY

# chromium ARG...: headless, as root too, with a profile of its own
chromium() {
  timeout 90 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --no-first-run --no-default-browser-check --hide-scrollbars --user-data-dir="$TMP/profile" \
    "$@" 2>>"$TMP/chromium.err"
}

if [ -z "$CHROMIUM" ]; then
  echo "# SKIP the browser checks: chromium is not installed (make deps-browser could not install it)"
else
  # one run of the browser for the DOM and the screenshot (a start of it
  # costs seconds of CPU)
  chromium --virtual-time-budget=5000 --window-size=1280,1000 --dump-dom --screenshot="$TMP/shot.png" \
    "http://$ADDR/?refresh=500" >"$TMP/dom.html"
  check "Chromium loaded the dashboard ($(wc -c <"$TMP/dom.html" | tr -d ' ') bytes of DOM)" \
    grep -q 'data-vertex' "$TMP/dom.html"
  [ -s "$TMP/dom.html" ] || diag "$TMP/chromium.err"
  NEWEST=$(newest_checkpoint "$TMP/ck/dashboard")
  cat >"$TMP/dom.py" <<'PY'
import html.parser, re, sys
# dom.py DOM LINE NEWEST WHAT...: a line "WHAT ok", or "WHAT failed: why",
# for each WHAT
dom, line, newest, whats = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]

class Page(html.parser.HTMLParser):
    """Elements with their attributes and text; ids to elements."""
    def __init__(self):
        super().__init__()
        self.stack, self.all, self.ids = [], [], {}
    def handle_starttag(self, tag, attrs):
        e = {"tag": tag, "attrs": dict(attrs), "text": "", "children": []}
        if self.stack:
            self.stack[-1]["children"].append(e)
        self.all.append(e)
        if "id" in e["attrs"]:
            self.ids[e["attrs"]["id"]] = e
        if tag not in ("meta", "link", "br", "img", "input"):
            self.stack.append(e)
    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()["tag"] == tag:
                break
    def handle_data(self, data):
        for e in self.stack:
            e["text"] += data

class Failed(Exception):
    pass
p = Page()
p.feed(open(dom, encoding="utf-8").read())
def fail(why):
    raise Failed(why)
body = [e for e in p.all if e["tag"] == "body"][0]["attrs"]
rows = [e for e in p.all if e["tag"] == "tr" and "data-vertex" in e["attrs"]]
boxes = [e for e in p.all if e["tag"] == "g" and "data-vertex" in e["attrs"]]
def row(ops):
    for r in rows:
        if r["children"][1]["text"] == ops:
            return r["attrs"]
    fail(f"no row for {ops}: " + str([r["children"][1]["text"] for r in rows]))
def judge(what):
    if what == "live":
        if not (int(body["data-polls"]) >= 3 and body["data-state"] == "RUNNING"):
            fail(str(body))
    elif what == "tasks":
        if len(rows) != 4 or any(r["attrs"]["data-parallelism"] != "2" for r in rows):
            fail(str([r["attrs"] for r in rows]))
    elif what == "backpressure":
        if row("numbers → flaky")["data-backpressure"] != "HIGH":
            fail(str([r["attrs"] for r in rows]))
    elif what == "busy":
        a = row("slow-sink → sink")
        if not (float(a["data-busy-ratio"]) > 0.5 and a["data-backpressure"] == "OK"):
            fail(str(a))
    elif what == "lag":
        a = row("ticks → lagged → drop")
        if not (4000 <= float(a["data-lag-ms"]) <= 6000 and a["data-backpressure"] == "OK"):
            fail(str(a))
    elif what == "graph":
        levels = {r["attrs"]["data-vertex"]: r["attrs"]["data-backpressure"] for r in rows}
        got = {b["attrs"]["data-vertex"]: b["attrs"]["class"] for b in boxes}
        if got != {v: "vertex " + lv for v, lv in levels.items()}:
            fail(f"{got} vs {levels}")
        edges = sorted((e["attrs"]["data-from"], e["attrs"]["data-to"]) for e in p.all
                       if e["tag"] == "path" and "data-from" in e["attrs"])
        if edges != [("0", "3"), ("1", "2")]:
            fail(str(edges))
    elif what == "checkpoints":
        done = [int(e["attrs"]["data-checkpoint-id"]) for e in p.all
                if e["tag"] == "tr" and e["attrs"].get("data-status") == "COMPLETED"]
        counts = p.ids["checkpoint-counts"]["text"]
        m = re.match(r"(\d+) completed, (\d+) failed, (\d+) in progress$", counts)
        if not (len(done) >= 2 and max(done) <= newest and m and int(m.group(1)) >= len(done)):
            fail(f"completed rows {done}, newest on disk {newest}, '{counts}'")
    elif what == "exceptions":
        items = [e for e in p.all if e["tag"] == "li" and "data-task" in e["attrs"]]
        want = f"dashboard_job.lua:{line}: dashboard: failing once at 2000"
        if not (len(items) == 1 and items[0]["attrs"]["data-task"] == "generate -> map"
                and want in items[0]["text"] and p.ids["job-restarts"]["text"] == "1"):
            fail(str([(i["attrs"], i["text"][:300]) for i in items]))
for what in whats:
    try:
        judge(what)
        print(what, "ok")
    except Failed as e:
        print(what, "failed:", str(e).replace("\n", " "))
PY
  "$PYTHON" "$TMP/dom.py" "$TMP/dom.html" "$LINE" "$NEWEST" live tasks backpressure busy lag graph \
    checkpoints exceptions >"$TMP/dom.out" 2>&1
  dom() { grep -qx "$1 ok" "$TMP/dom.out" || { grep "^$1 " "$TMP/dom.out" || cat "$TMP/dom.out"; false; }; }
  check "live: the page polled the endpoint at least 3 times, the job RUNNING" dom live
  check "4 tasks, each at parallelism 2" dom tasks
  check "the source before the slow sink: HIGH backpressure" dom backpressure
  check "the slow sink: busy more than half of the time, backpressure OK" dom busy
  check "the watermark stamped now - 5 s: event-time lag 5 s within 1 s, no backpressure" dom lag
  check "the graph: a box per task coloured by its level, edges 0->3, 1->2" dom graph
  check "checkpoint history: completed ones listed, none newer than the newest on disk ($NEWEST), counts shown" \
    dom checkpoints
  check "the exception (dashboard_job.lua:$LINE) with its task, and 1 restart" dom exceptions

  if [ -s "$TMP/shot.png" ]; then
    "$PYTHON" tests/e2e/png_colors.py "$TMP/shot.png" d0312d 3c8d40 >"$TMP/colors"
    HIGH=$(sed -n 's/^d0312d //p' "$TMP/colors")
    OK=$(sed -n 's/^3c8d40 //p' "$TMP/colors")
  fi
  # a box is 250 x 100 pixels, the legend's and the table's labels less
  # than 2000 in all
  check "screenshot: a box in HIGH's red (${HIGH:-?} pixels), three in OK's green (${OK:-?})" \
    test "${HIGH:-0}" -gt 20000 -a "${OK:-0}" -gt 65000
fi

"$PYTHON" -c "import sys, urllib.request; urllib.request.urlopen(urllib.request.Request('http://' + sys.argv[1] + '/jobs/' + sys.argv[2] + '/cancel', method='POST'), timeout=10)" "$ADDR" "$ID"
wait_tide dash
check "the job ends when cancelled" test "$RC" -ne 124
finish
