/*
 * The Tide dashboard: reads the job's control endpoint (docs/REST.md) every
 * `refresh` ms (the page's ?refresh=MS, default 1000) and draws the job,
 * its graph, its tasks' figures, its checkpoints and its exceptions.
 *
 * Backpressure levels are Flink's (BackPressureLevel): the ratio of time
 * backpressured, the most of a task's subtasks, OK <= 0.10 < LOW <= 0.50 <
 * HIGH. Event-time lag is the endpoint's clock minus the task's output
 * watermark (the least of its subtasks').
 *
 * For tests and scripts the figures are also in data- attributes: on body
 * (data-polls, data-state), on each task's row and graph box (data-vertex,
 * data-backpressure, data-bp-ratio, data-busy-ratio, data-lag-ms,
 * data-parallelism, data-records-in, data-records-out), on each checkpoint
 * row (data-checkpoint-id, data-status) and each exception (data-task,
 * data-subtask).
 */
(function () {
  "use strict";

  var MIN_WM = "-9223372036854775808";
  var MAX_WM = "9223372036854775807";
  var params = new URLSearchParams(window.location.search);
  var refresh = Math.max(100, parseInt(params.get("refresh") || "1000", 10) || 1000);

  var jobId = null;
  var plan = null;        // the plan's nodes, fetched once per job
  var prev = {};          // vertex id -> {now, in, out}: the last poll's counts
  var rates = {};         // vertex id -> {in, out}: records per second
  var openCheckpoints = {}; // checkpoint id -> true: rows showing their subtasks
  var polls = 0;

  // ---- formatting ---------------------------------------------------------

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }

  function svg(tag, attrs, children) {
    var e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }

  function setAttrs(e, attrs) {
    Object.keys(attrs || {}).forEach(function (k) {
      if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, String(attrs[k]));
    });
  }

  function append(e, children) {
    (children || []).forEach(function (c) {
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
  }

  function text(id, s) { document.getElementById(id).textContent = s; }

  function fmtInt(n) {
    return n === null || n === undefined || isNaN(n) ? "–" : Math.round(n).toLocaleString("en-US");
  }

  function fmtRate(r) { return r === undefined ? "–" : fmtInt(r); }

  function fmtPct(ratio) { return ratio === null ? "–" : Math.round(ratio * 100) + "%"; }

  function fmtMs(ms) {
    if (ms === null || ms === undefined || isNaN(ms)) return "–";
    if (ms < 1) return ms.toFixed(2) + " ms";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    var s = Math.round(ms / 1000), h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60);
    return (h ? h + " h " : "") + m + " min " + (s % 60) + " s";
  }

  function fmtBytes(b) {
    if (b === null || b === undefined) return "–";
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
    return (i ? b.toFixed(1) : String(b)) + " " + units[i];
  }

  function fmtTime(ms) {
    var d = new Date(ms);
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
  }

  function fmtWatermark(w) {
    if (w === null) return "–";
    if (w === MAX_WM) return "end of input";
    return new Date(Number(w)).toISOString().replace("T", " ").replace("Z", "");
  }

  // Flink's thresholds; null: not measured (a job run with --no-metrics)
  function level(ratio) {
    if (ratio === null) return "NA";
    return ratio <= 0.10 ? "OK" : ratio <= 0.50 ? "LOW" : "HIGH";
  }

  // ---- reading the endpoint -----------------------------------------------

  function get(path) {
    return fetch(path, { cache: "no-store" }).then(function (r) {
      if (r.ok) return r.json();
      return r.text().then(function (body) {
        var err = new Error(path + ": HTTP " + r.status + " " + body);
        err.status = r.status;
        throw err;
      });
    });
  }

  // A vertex's figures from its subtasks' metrics.
  function summarize(v, now) {
    var s = { in: 0, out: 0, busy: null, bp: null, inWm: null, outWm: null, late: 0 };
    // the least of the subtasks' watermarks so far (a, null: none yet)
    // and one more (b): a subtask without one (MIN_WM) makes it MIN_WM
    function least(a, b) {
      if (b === undefined) b = MIN_WM;
      if (a === null || b === MIN_WM || a === MAX_WM) return b;
      if (a === MIN_WM || b === MAX_WM) return a;
      return Number(b) < Number(a) ? b : a;
    }
    v.subtasks.forEach(function (st) {
      var m = st.metrics;
      s.in += m["read-records"] || 0;
      s.out += m["write-records"] || 0;
      s.late += m["late-records-dropped"] || 0;
      if (m["busy-time-ms-per-second"] !== undefined)
        s.busy = Math.max(s.busy || 0, m["busy-time-ms-per-second"] / 1000);
      if (m["backpressured-time-ms-per-second"] !== undefined)
        s.bp = Math.max(s.bp || 0, m["backpressured-time-ms-per-second"] / 1000);
      s.inWm = least(s.inWm, m["current-input-watermark"]);
      s.outWm = least(s.outWm, m["current-output-watermark"]);
    });
    if (s.inWm === MIN_WM) s.inWm = null;
    if (s.outWm === MIN_WM) s.outWm = null;
    s.lag = s.outWm !== null && s.outWm !== MAX_WM ? now - Number(s.outWm) : null;
    return s;
  }

  function poll() {
    var t0 = Date.now();
    get("jobs").then(function (jobs) {
      var id = jobs.jobs.length ? jobs.jobs[0].id : null;
      if (id !== jobId) { jobId = id; plan = null; prev = {}; rates = {}; }
      if (!id) throw new Error("no job");
      var base = "jobs/" + id;
      return Promise.all([
        get(base),
        get(base + "/checkpoints").catch(function () { return null; }),
        get(base + "/exceptions").catch(function () { return null; }),
        plan ? Promise.resolve({ plan: { nodes: plan } })
             : get(base + "/plan").catch(function () { return null; })
      ]).then(function (r) {
        var job = r[0];
        if (r[3]) plan = r[3].plan.nodes;
        return Promise.all((plan || []).map(function (n) {
          return get(base + "/vertices/" + n.id).catch(function () { return null; });
        })).then(function (vertices) {
          return { job: job, checkpoints: r[1], exceptions: r[2], vertices: vertices };
        });
      });
    }).then(function (d) {
      polls++;
      draw(d);
      document.body.setAttribute("data-polls", polls);
      var st = document.getElementById("status");
      st.className = "status";
      st.textContent = "updated " + fmtTime(Date.now()) + " · every " + fmtMs(refresh);
    }).catch(function (e) {
      var st = document.getElementById("status");
      st.className = "status down";
      st.textContent = "the endpoint does not answer (the job may have ended): " + e.message +
        (polls ? " · last figures from " + fmtTime(t0) : "");
    }).then(function () {
      window.setTimeout(poll, refresh);
    });
  }

  // ---- drawing --------------------------------------------------------------

  function draw(d) {
    var job = d.job, now = job.now || Date.now();
    document.title = "Tide · " + (job.name || job.jid);
    document.body.setAttribute("data-state", job.state);
    text("job-name", job.name || "");
    text("job-id", job.jid);
    text("job-state", job.state);
    text("job-duration", fmtMs(job.duration));
    text("job-restarts", String(job.restarts || 0));
    text("job-maxp", job["max-parallelism"] === undefined ? "–" : String(job["max-parallelism"]));
    var summaries = {};
    (plan || []).forEach(function (n, i) {
      var v = d.vertices[i];
      if (!v) return;
      var s = summarize(v, now), p = prev[n.id];
      if (p && now > p.now) {
        rates[n.id] = { in: (s.in - p.in) * 1000 / (now - p.now),
                        out: (s.out - p.out) * 1000 / (now - p.now) };
      }
      prev[n.id] = { now: now, in: s.in, out: s.out };
      summaries[n.id] = s;
    });
    if (plan) {
      drawGraph(plan, summaries);
      drawVertices(plan, summaries);
    }
    if (d.checkpoints) drawCheckpoints(d.checkpoints);
    if (d.exceptions) drawExceptions(d.exceptions.exceptions);
  }

  function operatorsOf(n) {
    return n.operators.map(function (o) { return o.uid; }).join(" → ");
  }

  function vertexData(n, s) {
    var lv = level(s.bp);
    return {
      "data-vertex": n.id, "data-backpressure": lv,
      "data-bp-ratio": s.bp === null ? "" : s.bp.toFixed(3),
      "data-busy-ratio": s.busy === null ? "" : s.busy.toFixed(3),
      "data-lag-ms": s.lag === null ? "" : s.lag,
      "data-parallelism": n.parallelism,
      "data-records-in": s.in, "data-records-out": s.out
    };
  }

  // Tasks in columns by their distance from the sources, edges between.
  function drawGraph(nodes, summaries) {
    var W = 250, H = 100, DX = 320, DY = 124, M = 16;
    var depth = {}, byId = {};
    nodes.forEach(function (n) { byId[n.id] = n; });
    function depthOf(n) {
      if (depth[n.id] !== undefined) return depth[n.id];
      depth[n.id] = 0; // a cycle (none in a plan) cannot loop
      var d = 0;
      n.inputs.forEach(function (i) { if (byId[i.id]) d = Math.max(d, depthOf(byId[i.id]) + 1); });
      depth[n.id] = d;
      return d;
    }
    // columns; within one, a task sits by the mean row of its inputs
    // (fewer crossing edges), the sources in plan order
    var columns = [], rowOf = {}, pos = {}, maxRows = 0;
    nodes.forEach(function (n) {
      var c = depthOf(n);
      (columns[c] = columns[c] || []).push(n);
    });
    columns.forEach(function (col, c) {
      var key = {};
      col.forEach(function (n, k) {
        var ins = n.inputs.filter(function (i) { return rowOf[i.id] !== undefined; });
        key[n.id] = ins.length ? ins.reduce(function (a, i) { return a + rowOf[i.id]; }, 0) / ins.length : k;
      });
      col.sort(function (a, b) { return key[a.id] - key[b.id] || Number(a.id) - Number(b.id); });
      col.forEach(function (n, r) {
        rowOf[n.id] = r;
        pos[n.id] = { x: M + c * DX, y: M + r * DY };
      });
      maxRows = Math.max(maxRows, col.length);
    });
    var cols = columns.length;
    var g = document.getElementById("graph");
    var width = M * 2 + (cols - 1) * DX + W, height = M * 2 + (maxRows - 1) * DY + H;
    g.setAttribute("viewBox", "0 0 " + width + " " + height);
    g.style.height = height + "px";
    g.style.maxWidth = width + "px";
    while (g.firstChild) g.removeChild(g.firstChild);
    nodes.forEach(function (n) {
      n.inputs.forEach(function (i) {
        var a = pos[i.id], b = pos[n.id];
        if (!a) return;
        var x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
        g.appendChild(svg("path", { class: "edge", "data-from": i.id, "data-to": n.id,
          d: "M" + x1 + "," + y1 + " C" + mx + "," + y1 + " " + mx + "," + y2 + " " + x2 + "," + y2 }));
        g.appendChild(svg("text", { class: "edge-label", x: mx, y: (y1 + y2) / 2 - 6,
          "text-anchor": "middle" }, [i.ship_strategy]));
      });
    });
    nodes.forEach(function (n) {
      var s = summaries[n.id], p = pos[n.id], r = rates[n.id];
      if (!s) return;
      var attrs = vertexData(n, s);
      attrs["class"] = "vertex " + attrs["data-backpressure"];
      attrs.transform = "translate(" + p.x + "," + p.y + ")";
      var lines = [
        "parallelism " + n.parallelism,
        "in " + fmtRate(r && r.in) + "/s · out " + fmtRate(r && r.out) + "/s",
        "busy " + fmtPct(s.busy) + " · backpressure " + fmtPct(s.bp) + " " + attrs["data-backpressure"],
        "lag " + fmtMs(s.lag)
      ];
      var title = "#" + n.id + " " + operatorsOf(n);
      if (title.length > 34) title = title.slice(0, 33) + "…";
      var kids = [svg("rect", { width: W, height: H, rx: 6 }),
                  svg("text", { class: "title", x: 10, y: 20 }, [title])];
      lines.forEach(function (l, k) { kids.push(svg("text", { x: 10, y: 40 + k * 16 }, [l])); });
      kids.push(svg("title", {}, [operatorsOf(n)]));
      g.appendChild(svg("g", attrs, kids));
    });
  }

  function drawVertices(nodes, summaries) {
    var body = document.querySelector("#vertices tbody");
    while (body.firstChild) body.removeChild(body.firstChild);
    nodes.forEach(function (n) {
      var s = summaries[n.id], r = rates[n.id];
      if (!s) return;
      var attrs = vertexData(n, s);
      var lv = attrs["data-backpressure"];
      body.appendChild(el("tr", attrs, [
        el("td", {}, ["#" + n.id]),
        el("td", {}, [operatorsOf(n)]),
        el("td", {}, [String(n.parallelism)]),
        el("td", {}, [fmtInt(s.in)]),
        el("td", {}, [fmtInt(s.out)]),
        el("td", {}, [fmtRate(r && r.in)]),
        el("td", {}, [fmtRate(r && r.out)]),
        el("td", {}, [fmtPct(s.busy)]),
        el("td", {}, [fmtPct(s.bp) + " ", el("span", { class: "bp " + lv }, [lv])]),
        el("td", {}, [fmtWatermark(s.inWm)]),
        el("td", {}, [fmtWatermark(s.outWm)]),
        el("td", { class: "lag" }, [fmtMs(s.lag)]),
        el("td", {}, [fmtInt(s.late)])
      ]));
    });
  }

  function maxOf(subs, f) {
    var m = null;
    subs.forEach(function (s) { var v = f(s); if (v !== undefined && (m === null || v > m)) m = v; });
    return m;
  }

  function subtaskTable(subs) {
    var head = el("tr", {}, ["task", "subtask", "acknowledged", "sync", "async", "alignment",
      "start delay", "size"].map(function (h) { return el("th", {}, [h]); }));
    var rows = subs.map(function (s) {
      return el("tr", {}, [
        el("td", {}, ["#" + s.task]), el("td", {}, [String(s.index)]),
        el("td", {}, [s.acknowledged ? "yes" : "no"]),
        el("td", {}, [fmtMs(s.checkpoint && s.checkpoint.sync)]),
        el("td", {}, [fmtMs(s.checkpoint && s.checkpoint.async)]),
        el("td", {}, [fmtMs(s.alignment && s.alignment.duration)]),
        el("td", {}, [fmtMs(s.start_delay)]),
        el("td", {}, [fmtBytes(s.state_size)])
      ]);
    });
    return el("table", {}, [el("thead", {}, [head]), el("tbody", {}, rows)]);
  }

  function drawCheckpoints(c) {
    var k = c.counts;
    text("checkpoint-counts", k.completed + " completed, " + k.failed + " failed, " +
      k.in_progress + " in progress");
    var body = document.querySelector("#checkpoints tbody");
    while (body.firstChild) body.removeChild(body.firstChild);
    c.history.forEach(function (h) {
      var subs = h.subtasks || [];
      var row = el("tr", { class: "checkpoint", "data-checkpoint-id": h.id, "data-status": h.status,
                           title: h.external_path || "" }, [
        el("td", {}, [String(h.id)]),
        el("td", {}, [h.is_savepoint ? "savepoint" : "checkpoint"]),
        el("td", { class: h.status }, [h.status + (h.failure_message ? ": " + h.failure_message : "")]),
        el("td", {}, [fmtTime(h.trigger_timestamp)]),
        el("td", {}, [h.status === "IN_PROGRESS" ? "–" : fmtMs(h.end_to_end_duration)]),
        el("td", {}, [fmtBytes(h.state_size)]),
        el("td", {}, [fmtMs(maxOf(subs, function (s) { return s.checkpoint && s.checkpoint.sync; }))]),
        el("td", {}, [fmtMs(maxOf(subs, function (s) { return s.checkpoint && s.checkpoint.async; }))]),
        el("td", {}, [fmtMs(maxOf(subs, function (s) { return s.alignment && s.alignment.duration; }))]),
        el("td", {}, [fmtMs(maxOf(subs, function (s) { return s.start_delay; }))])
      ]);
      row.addEventListener("click", function () {
        openCheckpoints[h.id] = !openCheckpoints[h.id];
        drawCheckpoints(c);
      });
      body.appendChild(row);
      if (openCheckpoints[h.id])
        body.appendChild(el("tr", { class: "details" }, [el("td", { colspan: 10 }, [subtaskTable(subs)])]));
    });
  }

  function drawExceptions(list) {
    var ol = document.getElementById("exceptions");
    while (ol.firstChild) ol.removeChild(ol.firstChild);
    document.getElementById("no-exceptions").style.display = list.length ? "none" : "";
    list.forEach(function (x) {
      ol.appendChild(el("li", { "data-task": x.task, "data-subtask": x.subtask }, [
        el("div", { class: "when" }, [new Date(x.timestamp).toISOString() + " · " + x.task +
          " · subtask " + x.subtask]),
        el("pre", {}, [x.message])
      ]));
    });
  }

  poll();
})();
