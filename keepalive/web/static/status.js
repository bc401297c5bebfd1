// The status page: polls api/status every 5 s and renders it.
// Data only ever enters the page through textContent, append(string) and setAttribute, never
// innerHTML, so a target named "<script>alert(1)</script>" is shown as text and never run.
"use strict";

(function () {
  const REFRESH_MS = 5000;
  const FETCH_TIMEOUT_MS = 4000;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const SEVERITY = { down: 0, failing: 1, unknown: 2, up: 3 };
  const SPARK = { w: 140, h: 30, pad: 3 };

  // Monitor clock minus browser clock. Ages are computed on the monitor's clock, so a phone
  // whose clock is off still reads "12 s ago" correctly.
  let clockOffsetMs = 0;
  let lastUpdateMs = null;

  const byId = (id) => document.getElementById(id);
  const now = () => Date.now() + clockOffsetMs;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
    return node;
  }

  // The label is what a phone shows before the value once the table has become cards; the
  // value is one wrapper so the card lays out "label | value" however many parts it has.
  function cell(label, className, ...children) {
    const td = el("td", className);
    td.setAttribute("data-label", label);
    const value = el("span", "value");
    value.append(...children);
    td.append(value);
    return td;
  }

  // A cell with nothing to say: shown as "–" in the table, left out of a phone's card.
  function blank(td, isBlank) {
    if (isBlank) td.classList.add("blank");
    return td;
  }

  function knownState(state) {
    return Object.prototype.hasOwnProperty.call(SEVERITY, state) ? state : "unknown";
  }

  function formatDuration(seconds) {
    // Rounded down, as clocks are: "1 min" from 60 s to 119 s.
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) {
      const h = Math.floor(s / 3600);
      const m = Math.floor((s % 3600) / 60);
      return m ? h + " h " + m + " min" : h + " h";
    }
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    return h ? d + " d " + h + " h" : d + " d";
  }

  function formatSince(node) {
    const seconds = (now() - Number(node.dataset.ts)) / 1000;
    return node.dataset.format === "for" ? "for " + formatDuration(seconds) : formatDuration(seconds) + " ago";
  }

  // A self-updating "12 s ago" (or "for 5 min"); the ISO time is kept in the tooltip.
  function timeSpan(iso, format, emptyText) {
    const ms = iso ? Date.parse(iso) : NaN;
    if (Number.isNaN(ms)) return el("span", "none", emptyText);
    const span = el("span", "age");
    span.dataset.ts = String(ms);
    span.dataset.format = format;
    span.title = new Date(ms).toLocaleString();
    span.textContent = formatSince(span);
    return span;
  }

  function updateAges() {
    for (const node of document.querySelectorAll("[data-ts]")) node.textContent = formatSince(node);
  }

  function formatLatency(ms) {
    if (ms === null || ms === undefined) return "–";
    if (ms < 10) return ms.toFixed(1) + " ms";
    if (ms < 1000) return Math.round(ms) + " ms";
    return (ms / 1000).toFixed(2) + " s";
  }

  function formatPercent(p) {
    if (p === null || p === undefined) return "–";
    return (p >= 100 ? "100" : p.toFixed(2)) + " %";
  }

  // history: [[epoch_seconds, latency_ms_or_null, ok], ...], oldest first.
  function sparkline(history) {
    const chart = svg("svg", { class: "spark", viewBox: `0 0 ${SPARK.w} ${SPARK.h}`, role: "img" });
    const title = svg("title");
    chart.append(title);
    const points = Array.isArray(history) ? history : [];
    if (points.length === 0) {
      title.textContent = "no checks yet";
      return chart;
    }
    const okLatencies = points.filter((p) => p[2] && Number.isFinite(p[1])).map((p) => p[1]);
    // Scaled to successful checks only: one 10 s timeout would flatten everything else.
    const top = Math.max(1, ...okLatencies);
    const t0 = points[0][0];
    const t1 = points[points.length - 1][0];
    const width = SPARK.w - 2 * SPARK.pad;
    const height = SPARK.h - 2 * SPARK.pad;
    const x = (t) => (t1 === t0 ? SPARK.w / 2 : SPARK.pad + ((t - t0) / (t1 - t0)) * width);
    const y = (ms) => SPARK.pad + height - (Math.min(Math.max(ms, 0), top) / top) * height;
    const base = y(0).toFixed(1);
    chart.append(svg("line", { class: "base", x1: 0, x2: SPARK.w, y1: base, y2: base }));

    // A failed check breaks the line and is drawn as a red bar, so an outage is a red band.
    let run = [];
    const flush = () => {
      if (run.length > 1) chart.append(svg("polyline", { class: "line", points: run.join(" ") }));
      else if (run.length === 1) {
        const [cx, cy] = run[0].split(",");
        chart.append(svg("circle", { class: "dot", cx, cy, r: 1.5 }));
      }
      run = [];
    };
    const failures = [];
    for (const [t, ms, ok] of points) {
      if (ok && Number.isFinite(ms)) run.push(`${x(t).toFixed(1)},${y(ms).toFixed(1)}`);
      else {
        flush();
        if (!ok) failures.push([t, ms]);
      }
    }
    flush();
    const barWidth = Math.max(2, width / Math.max(points.length, 1));
    for (const [t] of failures) {
      const left = Math.min(Math.max(x(t) - barWidth / 2, 0), SPARK.w - barWidth);
      chart.append(svg("rect", { class: "fail", x: left.toFixed(1), y: 0, width: barWidth.toFixed(1), height: SPARK.h }));
    }
    const low = okLatencies.length ? Math.min(...okLatencies) : null;
    title.textContent =
      `last ${points.length} checks, ${failures.length} failed` +
      (low === null ? "" : `, latency ${formatLatency(low)} to ${formatLatency(top)}`);
    return chart;
  }

  function sub(...children) {
    const span = el("span", "sub");
    span.append(...children);
    return span;
  }

  function targetRow(target) {
    const state = knownState(target.state);
    const tr = el("tr", state);
    tr.dataset.target = target.name;

    const stateParts = [el("span", "badge " + state, state)];
    if (state !== "up" && state !== "unknown" && target.since) stateParts.push(sub(timeSpan(target.since, "for", "")));

    const reasonParts = [target.last_reason || "–"];
    const n = target.consecutive_failures;
    if (n > 0) reasonParts.push(sub(n === 1 ? "1 failure" : `${n} failures in a row`));

    const uptime = blank(cell("Uptime", "num", formatPercent(target.uptime_percent)), target.uptime_percent == null);
    uptime.title = `${target.checks_ok_total} ok, ${target.checks_failed_total} failed`;

    tr.append(
      cell("State", "state", ...stateParts),
      cell("Target", "head", el("span", "name", target.name), el("span", "url", target.url)),
      blank(cell("Latency", "num", formatLatency(target.last_latency_ms)), target.last_latency_ms == null),
      cell("Last check", "checked", timeSpan(target.last_check, "ago", "never")),
      blank(cell("Reason", "reason", ...reasonParts), !target.last_reason),
      uptime,
      blank(cell("History", "history", sparkline(target.history)), !(target.history && target.history.length)),
    );
    return tr;
  }

  function channelRow(channel) {
    const tr = el("tr", channel.enabled ? "on" : "off");
    tr.dataset.channel = channel.name;
    const errorParts = channel.last_error
      ? [el("span", "error", channel.last_error), sub(timeSpan(channel.last_error_at, "ago", ""))]
      : [el("span", "none", "none")];
    const onOff = channel.enabled ? "on" : "off";
    tr.append(
      cell("Channel", "head", el("span", "name", channel.name), sub(channel.why)),
      cell("Status", "", el("span", "badge " + onOff, onOff)),
      cell("Last success", "", timeSpan(channel.last_success, "ago", "never")),
      cell("Last error", "last-error", ...errorParts),
      cell("Sent / failed", "num", `${channel.sent_total} / ${channel.failed_total}`),
    );
    return tr;
  }

  function renderSummary(monitor) {
    for (const state of ["up", "failing", "down", "unknown"]) {
      const count = monitor["targets_" + state];
      const node = byId("count-" + state);
      node.textContent = String(count);
      node.parentElement.classList.toggle("nonzero", count > 0);
    }
    byId("outbox-depth").textContent = String(monitor.outbox_depth);
    const oldest = monitor.oldest_undelivered_age_seconds;
    byId("outbox-label").textContent =
      oldest === null || oldest === undefined ? "alerts queued" : `alerts queued, oldest ${formatDuration(oldest)}`;

    const ok = monitor.status === "ok";
    const badge = byId("monitor-status");
    badge.className = "badge " + (ok ? "ok" : "stalled");
    // "stalled" or "alert_path_failing"; the reasons, one a line, on hover.
    badge.textContent = "monitor " + String(monitor.status || "unknown").replace(/_/g, " ");
    badge.title = (monitor.problems || []).join("\n");

    const lag = monitor.schedule_lag_seconds || {};
    const parts = [monitor.host, "version " + monitor.version, "running " + formatDuration(monitor.uptime_seconds)];
    parts.push(`${monitor.checks_total} checks, ${monitor.checks_missed_total} missed`);
    if (Number.isFinite(lag.p99)) parts.push(`schedule lag p99 ${formatLatency(lag.p99 * 1000)}`);
    byId("monitor-meta").textContent = parts.join(" · ");

    const problem = monitor.targets_down
      ? `${monitor.targets_down} down`
      : monitor.targets_failing
        ? `${monitor.targets_failing} failing`
        : `${monitor.targets_up} up`;
    document.title = `${problem} · Keep-Alive Monitor`;
  }

  function render(doc) {
    const started = Date.parse(doc.monitor.started_at);
    if (!Number.isNaN(started)) clockOffsetMs = started + doc.monitor.uptime_seconds * 1000 - Date.now();
    renderSummary(doc.monitor);

    const targets = Array.isArray(doc.targets) ? [...doc.targets] : [];
    // Problems first; sort() is stable, so within a state the monitor's own order is kept.
    targets.sort((a, b) => SEVERITY[knownState(a.state)] - SEVERITY[knownState(b.state)]);
    byId("target-rows").replaceChildren(...targets.map(targetRow));
    byId("targets").hidden = targets.length === 0;
    byId("no-targets").hidden = targets.length > 0;

    const channels = Array.isArray(doc.channels) ? doc.channels : [];
    byId("channel-rows").replaceChildren(...channels.map(channelRow));
  }

  function showConnection(problem) {
    document.body.classList.toggle("stale", problem !== null);
    byId("banner").hidden = problem === null;
    if (problem !== null) {
      byId("banner-text").textContent = `${problem}. Retrying every ${REFRESH_MS / 1000} s.`;
      const since = byId("banner-since");
      since.replaceChildren();
      if (lastUpdateMs !== null) since.append("Last update ", timeSpan(new Date(lastUpdateMs).toISOString(), "ago", ""), ".");
    }
    const updated = byId("updated");
    updated.replaceChildren();
    if (lastUpdateMs !== null) updated.append("Updated ", timeSpan(new Date(lastUpdateMs).toISOString(), "ago", ""));
    else updated.append("No data yet");
  }

  const HISTORY_LIMIT = 300;
  let withHistory = true;

  async function refresh() {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
    try {
      let response;
      try {
        // With hundreds of targets the charts' history is most of the answer's weight (and of
        // the monitor's work to build it): beyond HISTORY_LIMIT targets the page goes without.
        const url = withHistory ? "api/status" : "api/status?history=0";
        response = await fetch(url, { cache: "no-store", signal: controller.signal });
      } catch (err) {
        throw new Error(
          "Connection lost: " + (controller.signal.aborted ? "the monitor did not answer in time" : "the monitor is not reachable"),
        );
      }
      if (!response.ok) throw new Error(`Connection lost: the monitor answered HTTP ${response.status}`);
      let doc;
      try {
        doc = await response.json();
        withHistory = !(doc && Array.isArray(doc.targets) && doc.targets.length > HISTORY_LIMIT);
        render(doc);
      } catch (err) {
        throw new Error("Update failed: the monitor's answer could not be read (" + (err instanceof Error ? err.message : err) + ")");
      }
      lastUpdateMs = now();
      showConnection(null);
    } catch (err) {
      showConnection(err instanceof Error ? err.message : String(err));
    } finally {
      clearTimeout(timer);
      // Chained rather than setInterval, so a slow answer never stacks up requests.
      setTimeout(refresh, REFRESH_MS);
    }
  }

  setInterval(updateAges, 1000);
  refresh();
})();
