// The status page. Fed by api/events (Server-Sent Events): a "reset" event makes it fetch
// api/status (the list, without history); "update" events carry the rows checked since the
// last one. When the stream cannot be opened it polls api/status every 5 s instead.
//
// Sized for 10,000 targets: every target is kept in a Map, but only the rows on screen (plus
// a few either side) are in the DOM; two spacer rows stand in for the rest (virtual scrolling).
// Data only ever enters the page through textContent, append(string) and setAttribute, never
// innerHTML, so a target named "<script>alert(1)</script>" is shown as text and never run.
"use strict";

(function () {
  const POLL_MS = 5000;
  const FETCH_TIMEOUT_MS = 8000;
  // Without a first picture this long after opening the stream, fetch it anyway (a proxy
  // that buffers the stream would otherwise leave the page empty).
  const FIRST_PICTURE_MS = 2000;
  const STREAM_RETRY_MS = 30000;
  const DETAIL_REFRESH_MS = 2000;
  const OVERSCAN = 8;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const SEVERITY = { down: 0, failing: 1, held: 2, maintenance: 3, unknown: 4, up: 5 };
  const STATES = ["up", "failing", "down", "unknown"];

  const targets = new Map(); // name -> row as in api/status
  let order = []; // the names shown, filtered and sorted
  let orderStale = true;
  let renderQueued = false;
  let paused = false;
  const waiting = new Map(); // rows that arrived while paused, newest per target
  let clockOffsetMs = 0; // monitor clock minus browser clock
  let lastUpdateMs = null;
  let haveList = false;
  let replica = null; // api/status "replica": which share of the targets file this monitor checks
  let source = null;
  let mode = "connecting";
  let pollTimer = null;
  let detailName = null;
  let detailFetched = 0;
  let detailTimer = null;

  const byId = (id) => document.getElementById(id);
  const now = () => Date.now() + clockOffsetMs;
  const tbody = byId("target-rows");

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

  function sub(...children) {
    const span = el("span", "sub");
    span.append(...children);
    return span;
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
    if (node.dataset.format === "for") return "for " + formatDuration(seconds);
    if (node.dataset.format === "in") return "in " + formatDuration(-seconds); // a time to come
    return formatDuration(seconds) + " ago";
  }

  // A self-updating "12 s ago" (or "for 5 min"); the local time is kept in the tooltip.
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
    updateCerts();
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

  // ------------------------------------------------------------------ data in

  // Rows reach the page from two sources (the api/status picture and the stream), in either
  // order: a row never replaces one from a later check.
  function newer(row, old) {
    return !old || !old.last_check || !row.last_check || row.last_check >= old.last_check;
  }

  function applyRow(row) {
    if (!row || typeof row.name !== "string") return;
    if (paused) {
      if (newer(row, waiting.get(row.name))) waiting.set(row.name, row);
      return;
    }
    const old = targets.get(row.name);
    if (!newer(row, old)) return;
    targets.set(row.name, row);
    orderStale = true;
  }

  function applyList(doc) {
    const fresh = new Map();
    for (const row of Array.isArray(doc.targets) ? doc.targets : []) {
      if (!row || typeof row.name !== "string") continue;
      const old = targets.get(row.name);
      fresh.set(row.name, newer(row, old) ? row : old);
    }
    targets.clear();
    for (const [name, row] of fresh) targets.set(name, row);
    waiting.clear();
    orderStale = true;
    haveList = true;
    replica = doc.replica || null; // changes only on a reload, which sends a reset
    applyMonitor(doc.monitor, doc.channels);
    applySilences(doc.silences);
  }

  function applyMonitor(monitor, channels) {
    if (monitor) {
      const started = Date.parse(monitor.started_at);
      if (!Number.isNaN(started)) clockOffsetMs = started + monitor.uptime_seconds * 1000 - Date.now();
      renderMonitor(monitor);
      updateAges(); // the ages already shown were computed on the browser's clock
    }
    if (Array.isArray(channels)) byId("channel-rows").replaceChildren(...channels.map(channelRow));
  }

  function applyUpdate(update) {
    for (const row of Array.isArray(update.targets) ? update.targets : []) applyRow(row);
    applyMonitor(update.monitor, update.channels);
    applySilences(update.silences); // with the monitor summary, every few seconds
    if (detailName !== null && (update.targets || []).some((row) => row.name === detailName)) refreshDetailSoon();
    touched();
    queueRender();
  }

  function touched() {
    lastUpdateMs = now();
    showConnection(null);
  }

  // ------------------------------------------------------------------ list

  function matches(row, text, state) {
    if (state === "problems") {
      if (row.state !== "down" && row.state !== "failing") return false;
    } else if (state && row.state !== state) return false;
    return !text || row.name.toLowerCase().includes(text);
  }

  function comparator(sort) {
    const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    const severity = (a, b) => SEVERITY[knownState(a.state)] - SEVERITY[knownState(b.state)];
    if (sort === "name") return byName;
    if (sort === "latency") {
      const value = (r) => (Number.isFinite(r.last_latency_ms) ? r.last_latency_ms : -1);
      return (a, b) => value(b) - value(a) || byName(a, b);
    }
    if (sort === "change") {
      const value = (r) => r.since || "";
      return (a, b) => (value(a) < value(b) ? 1 : value(a) > value(b) ? -1 : byName(a, b));
    }
    // Problems first; the longest outage first among them.
    return (a, b) => severity(a, b) || (a.since || "").localeCompare(b.since || "") || byName(a, b);
  }

  function rebuildOrder() {
    const text = byId("filter").value.trim().toLowerCase();
    const state = byId("state-filter").value;
    const rows = [];
    for (const row of targets.values()) if (matches(row, text, state)) rows.push(row);
    rows.sort(comparator(byId("sort").value));
    order = rows.map((row) => row.name);
    orderStale = false;
  }

  // Every row is as tall as the style sheet says (--row-h; taller on a phone, where a row is
  // a card), but borders and margins add to it: a row on screen is measured at each draw.
  function rowHeight() {
    const row = tbody.querySelector("tr.row");
    if (row) {
      const style = getComputedStyle(row);
      const height = row.getBoundingClientRect().height + parseFloat(style.marginTop) + parseFloat(style.marginBottom);
      if (height > 0) return height;
    }
    const value = parseFloat(getComputedStyle(tbody).getPropertyValue("--row-h"));
    return Number.isFinite(value) && value > 0 ? value : 48;
  }

  function spacer(height) {
    const tr = el("tr", "spacer");
    tr.setAttribute("aria-hidden", "true");
    const td = el("td");
    td.colSpan = 6;
    tr.style.height = height + "px";
    tr.append(td);
    return tr;
  }

  function cell(label, className, ...children) {
    const td = el("td", className);
    td.setAttribute("data-label", label);
    td.append(...children);
    return td;
  }

  function heldText(row) {
    let text = String(row.silenced_by);
    if (row.held_until) text += ` (until ${new Date(row.held_until).toLocaleString()})`;
    if (row.held_alert) text += "; a DOWN waits for the hold to end";
    return text;
  }

  function downtimeText(row) {
    let text = formatDuration(row.downtime_seconds);
    const planned = [];
    if (row.downtime_in_maintenance_seconds > 0) planned.push(`${formatDuration(row.downtime_in_maintenance_seconds)} in maintenance`);
    if (row.downtime_held_by_dependency_seconds > 0) {
      planned.push(`${formatDuration(row.downtime_held_by_dependency_seconds)} while a dependency was down`);
    }
    if (planned.length) text += ", of it " + planned.join(", ");
    return text;
  }

  // ------------------------------------------------------------------ kinds of check (SPEC 14)

  const CERT_SOON_DAYS = 14; // amber below this many days left
  const CERT_URGENT_DAYS = 3; // red below this (and once expired)

  // Days left on an https target's certificate on the monitor's clock (as every age on the
  // page), from its expiry; the monitor's own figure when only that came; null when unknown.
  function certDaysLeft(row) {
    const expires = row.cert_expires_at ? Date.parse(row.cert_expires_at) : NaN;
    if (!Number.isNaN(expires)) return (expires - now()) / 86400000;
    return Number.isFinite(row.cert_days_left) ? row.cert_days_left : null;
  }

  // keepalive.status_report.kind_note's words, but in hours once less than a day is left:
  // never "0 days" while hours remain.
  function certLeftText(days) {
    if (days <= 0) return "expired";
    if (days >= 1) {
      const n = Math.round(days);
      return `${n} ${n === 1 ? "day" : "days"} left`;
    }
    const hours = Math.floor(days * 24);
    return hours >= 1 ? `${hours} h left` : "less than an hour left";
  }

  function certLevel(days) {
    return days < CERT_URGENT_DAYS ? "cert-urgent" : days < CERT_SOON_DAYS ? "cert-soon" : "";
  }

  // Kept current by updateAges, as ages are (the page may stay open for days, and the
  // monitor's clock is known only once api/status has answered).
  function certSpan(row, prefix) {
    const days = certDaysLeft(row);
    const span = el("span", certLevel(days), prefix + certLeftText(days));
    const expires = row.cert_expires_at ? Date.parse(row.cert_expires_at) : NaN;
    if (!Number.isNaN(expires)) {
      span.dataset.expires = String(expires);
      span.dataset.prefix = prefix;
    }
    return span;
  }

  function updateCerts() {
    for (const node of document.querySelectorAll("[data-expires]")) {
      const days = (Number(node.dataset.expires) - now()) / 86400000;
      node.className = certLevel(days);
      node.textContent = node.dataset.prefix + certLeftText(days);
    }
  }

  // What a push, log or https target's last check learned, as the row's reason says it (new
  // nodes each call: an age span can be in one place only).
  function kindNote(row) {
    if (row.kind === "push") return row.last_ping ? ["last ping ", timeSpan(row.last_ping, "ago", "?")] : ["never pinged"];
    if (row.kind === "log") {
      if (!row.log_file) return null;
      if (!row.last_match) return [row.log_file + " · no match yet"];
      return [row.log_file + " · last match ", timeSpan(row.last_match_at, "ago", "?"), ": " + row.last_match];
    }
    return certDaysLeft(row) === null ? null : [certSpan(row, "certificate: ")];
  }

  function kindMarker(row) {
    if (typeof row.kind !== "string" || row.kind === "http" || !/^[a-z]{1,16}$/.test(row.kind)) return [];
    const marker = el("span", "kind", row.kind);
    marker.title = `a ${row.kind} check`;
    return [marker];
  }

  function targetRow(row, index) {
    const state = knownState(row.state);
    const tr = el("tr", "row " + state);
    tr.dataset.target = row.name;
    tr.setAttribute("aria-rowindex", String(index + 2)); // the header is row 1
    const stateCell = cell("State", "c-state", el("span", "badge " + state, state));
    const outage = state !== "up" && state !== "unknown" && row.since;
    if (row.silenced_by) {
      // SPEC 13: notifications held (silence, maintenance, dependency); who/why/until on hover.
      const line = sub(el("span", "held", "held"), ...(outage ? [" · ", timeSpan(row.since, "for", "")] : []));
      line.title = heldText(row);
      stateCell.append(line);
    } else if (outage) stateCell.append(sub(timeSpan(row.since, "for", "")));
    const address = el("span", "url");
    address.append(...kindMarker(row), row.url);
    const link = el("a", "name", row.name);
    link.href = "?target=" + encodeURIComponent(row.name);
    const n = row.consecutive_failures;
    // A reason first; a push, log or https target's own fact takes its place when there is
    // none, and goes below it when there is.
    const note = kindNote(row);
    const reasonCell = row.last_reason || !note ? cell("Reason", "c-reason", row.last_reason || "–") : cell("Reason", "c-reason", ...note);
    const below = n > 0 ? [n === 1 ? "1 failure" : `${n} failures in a row`] : [];
    if (row.last_reason && note) below.push(...(below.length ? [" · "] : []), ...note);
    if (below.length) reasonCell.append(sub(...below));
    reasonCell.title = row.last_reason || row.last_match || "";
    const uptime = cell("Uptime", "c-uptime num", formatPercent(row.uptime_percent));
    uptime.title = `${row.checks_ok_total} ok, ${row.checks_failed_total} failed`;
    tr.append(
      stateCell,
      cell("Target", "c-name", link, address),
      cell("Latency", "c-latency num", formatLatency(row.last_latency_ms)),
      cell("Last check", "c-checked", timeSpan(row.last_check, "ago", "never")),
      reasonCell,
      uptime,
    );
    return tr;
  }

  function renderList() {
    if (orderStale) rebuildOrder();
    byId("targets").hidden = targets.size === 0; // first: a hidden row measures 0
    const total = order.length;
    const height = rowHeight();
    const top = tbody.getBoundingClientRect().top; // relative to the viewport
    const first = Math.max(0, Math.min(total, Math.floor(-top / height) - OVERSCAN));
    const count = Math.ceil(window.innerHeight / height) + 2 * OVERSCAN;
    const last = Math.min(total, first + count);
    const rows = [];
    if (first > 0) rows.push(spacer(first * height));
    for (let i = first; i < last; i++) rows.push(targetRow(targets.get(order[i]), i));
    if (last < total) rows.push(spacer((total - last) * height));
    tbody.replaceChildren(...rows);
    // Drawn from an estimate (the first draw, or the layout changed): again, from the measure.
    if (last > first && Math.abs(rowHeight() - height) > 0.01) queueRender();
    byId("targets").setAttribute("aria-rowcount", String(total + 1));
    byId("no-targets").hidden = !haveList || targets.size > 0;
    byId("no-match").hidden = targets.size === 0 || total > 0;
    byId("shown").textContent =
      total === targets.size ? `${targets.size} targets` : `${total} of ${targets.size} targets shown`;
  }

  function renderCounts() {
    const counts = {};
    for (const row of targets.values()) counts[row.state] = (counts[row.state] || 0) + 1;
    const summary = byId("summary");
    for (const state of Object.keys(counts)) {
      // States the page does not know yet (held, maintenance) get a tile of their own.
      if (!byId("count-" + state) && /^[a-z_]{1,32}$/.test(state)) {
        const tile = el("button", "tile " + state);
        tile.type = "button";
        tile.dataset.state = state;
        tile.setAttribute("aria-pressed", "false");
        const number = el("span", "count", "0");
        number.id = "count-" + state;
        tile.append(number, el("span", "label", state));
        summary.insertBefore(tile, summary.querySelector(".outbox"));
      }
    }
    for (const tile of summary.querySelectorAll("[data-state]")) {
      const state = tile.dataset.state;
      const count = counts[state] || 0;
      byId("count-" + state).textContent = haveList ? String(count) : "–";
      tile.classList.toggle("nonzero", count > 0);
      tile.setAttribute("aria-pressed", String(byId("state-filter").value === state));
    }
    const problem = counts.down ? `${counts.down} down` : counts.failing ? `${counts.failing} failing` : `${counts.up || 0} up`;
    document.title = `${problem} · Keep-Alive Monitor`;
  }

  function render() {
    renderQueued = false;
    renderCounts();
    renderList();
    byId("pause").textContent = paused ? (waiting.size ? `Resume (${waiting.size} updated)` : "Resume") : "Pause";
  }

  function queueRender() {
    if (!renderQueued) {
      renderQueued = true;
      requestAnimationFrame(render);
    }
  }

  function renderMonitor(monitor) {
    const ok = monitor.status === "ok";
    const badge = byId("monitor-status");
    badge.className = "badge " + (ok ? "ok" : "stalled");
    badge.textContent = "monitor " + String(monitor.status || "unknown").replace(/_/g, " ");
    badge.title = (monitor.problems || []).join("\n");
    const lag = monitor.schedule_lag_seconds || {};
    const parts = [monitor.host, "version " + monitor.version, "running " + formatDuration(monitor.uptime_seconds)];
    if (replica && replica.replicas.length) {
      parts.push(`replica ${replica.name} of ${replica.replicas.length}: checks ${replica.checks} of ${replica.of} targets`);
    }
    parts.push(`${monitor.checks_total} checks, ${monitor.checks_missed_total} missed`);
    if (monitor.targets_held) {
      const inWindow = monitor.targets_in_maintenance ? `, ${monitor.targets_in_maintenance} in maintenance` : "";
      parts.push(`${monitor.targets_held} held${inWindow}`);
    }
    if (Number.isFinite(lag.p99)) parts.push(`schedule lag p99 ${formatLatency(lag.p99 * 1000)}`);
    byId("monitor-meta").textContent = parts.join(" · ");
    // Targets whose alerts are held on purpose, and those inside a maintenance window: the
    // monitor's counts (a held target keeps its state), as tiles once the monitor reports them.
    for (const [key, label] of [["targets_held", "held"], ["targets_in_maintenance", "in maintenance"]]) {
      if (!Number.isFinite(monitor[key])) continue;
      const id = "count-" + key;
      if (!byId(id)) {
        const tile = el("div", "tile quiet");
        const number = el("span", "count");
        number.id = id;
        tile.append(number, el("span", "label", label));
        byId("summary").insertBefore(tile, byId("summary").querySelector(".outbox"));
      }
      byId(id).textContent = String(monitor[key]);
      byId(id).parentElement.classList.toggle("nonzero", monitor[key] > 0);
    }
    byId("outbox-depth").textContent = String(monitor.outbox_depth);
    const oldest = monitor.oldest_undelivered_age_seconds;
    byId("outbox-label").textContent =
      oldest === null || oldest === undefined ? "alerts queued" : `alerts queued, oldest ${formatDuration(oldest)}`;
  }

  function channelRow(channel) {
    const tr = el("tr", channel.enabled ? "on" : "off");
    tr.dataset.channel = channel.name;
    const errorParts = channel.last_error
      ? [el("span", "error", channel.last_error), sub(timeSpan(channel.last_error_at, "ago", ""))]
      : [el("span", "none", "none")];
    const onOff = channel.enabled ? "on" : "off";
    const head = el("td", "head");
    head.setAttribute("data-label", "Channel");
    head.append(el("span", "name", channel.name), el("span", "sub", channel.why));
    tr.append(
      head,
      cell("Status", "", el("span", "badge " + onOff, onOff)),
      cell("Last success", "", timeSpan(channel.last_success, "ago", "never")),
      cell("Last error", "last-error", ...errorParts),
      cell("Sent / failed", "num", `${channel.sent_total} / ${channel.failed_total}`),
    );
    return tr;
  }

  // The active silences (SPEC 13), read-only: making and removing one takes the API token,
  // which the page never holds (the command line, the write API or Telegram do it).
  function silenceRow(silence) {
    const tr = el("tr", "");
    tr.dataset.silence = String(silence.id);
    const head = el("td", "head");
    head.setAttribute("data-label", "Silence");
    head.append(el("span", "name", String(silence.id).slice(0, 8)));
    tr.append(
      head,
      cell("Targets", "", (Array.isArray(silence.targets) ? silence.targets : []).join(", ")),
      cell("When", "", silenceWhen(silence)),
      cell("By", "", silence.created_by ? String(silence.created_by) : "–"),
      cell("Comment", "", silence.comment ? String(silence.comment) : "–"),
    );
    return tr;
  }

  // "in 1 h 30 min" (until it ends) for an active silence; a scheduled one says when it starts.
  function silenceWhen(silence) {
    const starts = Date.parse(silence.starts_at);
    if (!(starts > now())) return timeSpan(silence.ends_at, "in", "–");
    const when = el("span", "scheduled", "starts ");
    when.append(timeSpan(silence.starts_at, "in", "–"));
    return when;
  }

  function applySilences(list) {
    if (!Array.isArray(list)) return; // an update without the summary says nothing of them
    byId("silence-rows").replaceChildren(...list.map(silenceRow));
    byId("silences").hidden = list.length === 0;
    byId("no-silences").hidden = list.length !== 0;
  }

  // ------------------------------------------------------------------ detail

  function chart(history) {
    const W = 600;
    const H = 120;
    const pad = 4;
    const node = svg("svg", { class: "history", viewBox: `0 0 ${W} ${H}`, role: "img", preserveAspectRatio: "none" });
    const title = svg("title");
    node.append(title);
    const points = Array.isArray(history) ? history : [];
    if (points.length === 0) {
      title.textContent = "no checks yet";
      return node;
    }
    const okLatencies = points.filter((p) => p[2] && Number.isFinite(p[1])).map((p) => p[1]);
    // Scaled to successful checks only: one 10 s timeout would flatten everything else.
    const top = Math.max(1, ...okLatencies);
    const t0 = points[0][0];
    const t1 = points[points.length - 1][0];
    const x = (t) => (t1 === t0 ? W / 2 : pad + ((t - t0) / (t1 - t0)) * (W - 2 * pad));
    const y = (ms) => pad + (H - 2 * pad) - (Math.min(Math.max(ms, 0), top) / top) * (H - 2 * pad);
    node.append(svg("line", { class: "base", x1: 0, x2: W, y1: y(0), y2: y(0) }));
    let run = [];
    const flush = () => {
      if (run.length > 1) node.append(svg("polyline", { class: "line", points: run.join(" ") }));
      else if (run.length === 1) {
        const [cx, cy] = run[0].split(",");
        node.append(svg("circle", { class: "dot", cx, cy, r: 2 }));
      }
      run = [];
    };
    let failed = 0;
    const bar = Math.min(12, Math.max(2, (W - 2 * pad) / points.length));
    for (const [t, ms, ok] of points) {
      if (ok && Number.isFinite(ms)) run.push(`${x(t).toFixed(1)},${y(ms).toFixed(1)}`);
      else {
        flush();
        if (!ok) {
          failed += 1;
          const left = Math.min(Math.max(x(t) - bar / 2, 0), W - bar);
          node.append(svg("rect", { class: "fail", x: left.toFixed(1), y: 0, width: bar.toFixed(1), height: H }));
        }
      }
    }
    flush();
    const low = okLatencies.length ? Math.min(...okLatencies) : null;
    title.textContent =
      `last ${points.length} checks, ${failed} failed` +
      (low === null ? "" : `, latency ${formatLatency(low)} to ${formatLatency(top)}`);
    return node;
  }

  function fact(list, label, ...value) {
    const dt = el("dt", "", label);
    const dd = el("dd");
    dd.append(...value);
    list.append(dt, dd);
  }

  // The section of a push, log or https target: what its kind of check watches and learned.
  function showKind(row) {
    const list = byId("detail-kind-facts");
    list.replaceChildren();
    let heading = null;
    if (row.kind === "push") {
      heading = "Push check";
      fact(list, "Last ping", row.last_ping ? timeSpan(row.last_ping, "ago", "?") : el("span", "none", "never pinged"));
      fact(list, "Expected every", formatDuration(row.interval_seconds));
      const grace = Number.isFinite(row.grace_seconds) ? row.grace_seconds : row.interval_seconds;
      fact(list, "Grace", formatDuration(grace));
      fact(list, "Failed after", `${formatDuration(row.interval_seconds + grace)} without a ping`);
    } else if (row.kind === "log") {
      heading = "Log file";
      fact(list, "File", row.log_file || "–");
      fact(list, "Last match", row.last_match ? el("code", "log-line", row.last_match) : el("span", "none", "none yet"));
      if (row.last_match) fact(list, "Found", timeSpan(row.last_match_at, "ago", "–"));
      fact(list, "Note", row.log_note || el("span", "none", "none"));
    } else {
      const days = certDaysLeft(row);
      const expires = row.cert_expires_at ? Date.parse(row.cert_expires_at) : NaN;
      if (days !== null) {
        heading = "TLS certificate";
        if (!Number.isNaN(expires)) {
          // UTC, as the EXPIRING alert says it; the local time on hover.
          const when = el("span", "", new Date(expires).toISOString().slice(0, 16).replace("T", " ") + " UTC");
          when.title = new Date(expires).toLocaleString();
          fact(list, "Expires", when);
        }
        fact(list, "Time left", certSpan(row, ""));
      }
    }
    byId("detail-kind").hidden = heading === null;
    if (heading !== null) byId("detail-kind-heading").textContent = heading;
  }

  function showDetail(doc) {
    const row = doc.target;
    const state = knownState(row.state);
    byId("detail-name").textContent = row.name;
    byId("detail-state").className = "badge " + state;
    byId("detail-state").textContent = state;
    byId("detail-url").textContent = row.url;
    byId("detail-error").hidden = true;
    const facts = byId("detail-facts");
    facts.replaceChildren();
    fact(facts, state === "up" || state === "unknown" ? "Since" : "Outage since", timeSpan(row.since, "ago", "–"));
    fact(facts, "Last check", timeSpan(row.last_check, "ago", "never"));
    fact(facts, "Latency", formatLatency(row.last_latency_ms));
    fact(facts, "Last reason", row.last_reason || "–");
    fact(facts, "Failures in a row", String(row.consecutive_failures));
    fact(facts, "Uptime (recent checks)", formatPercent(row.uptime_percent));
    fact(facts, "Checks", `${row.checks_ok_total} ok, ${row.checks_failed_total} failed`);
    fact(facts, "Interval", formatDuration(row.interval_seconds));
    if (row.silenced_by) fact(facts, "Notifications held", heldText(row));
    if (row.downtime_seconds > 0) fact(facts, "Downtime recorded", downtimeText(row));
    const run = row.remediation; // SPEC 15: the last run of its on_down
    if (run) {
      fact(facts, "Last remediation", `${run.summary} (by ${run.trigger}, `, timeSpan(run.started_at, "ago", "–"), ")");
      if (Array.isArray(run.output) && run.output.length) {
        fact(facts, "Its last output", el("pre", "remediation-output", run.output.join("\n")));
      }
    }
    showKind(row);
    byId("detail-chart").replaceChildren(chart(row.history));
    const changes = Array.isArray(doc.changes) ? [...doc.changes].reverse() : [];
    byId("detail-change-rows").replaceChildren(
      ...changes.map((change) => {
        const tr = el("tr", "change " + knownState(change.to));
        tr.append(
          cell("When", "", timeSpan(change.at, "ago", "–")),
          cell("From", "", el("span", "badge " + knownState(change.from), change.from)),
          cell("To", "", el("span", "badge " + knownState(change.to), change.to)),
          cell("Reason", "c-reason", change.reason || "–"),
        );
        return tr;
      }),
    );
    byId("detail-changes").hidden = changes.length === 0;
    byId("detail-no-changes").hidden = changes.length > 0;
    showAlerts(doc);
  }

  // What became of each recent alert, channel by channel (never who the recipients are).
  function deliveryText(channel) {
    const parts = [];
    if (channel.sent) parts.push(`${channel.sent} sent`);
    if (channel.pending) {
      let waiting = `${channel.pending} retrying (attempt ${channel.attempts}`;
      if (channel.last_error) waiting += `: ${channel.last_error}`;
      parts.push(waiting + ")");
    }
    if (channel.failed) parts.push(`${channel.failed} failed` + (channel.pending ? "" : `: ${channel.last_error || "refused"}`));
    return `${channel.channel}: ${parts.join(", ") || "nothing to send"}`;
  }

  function showAlerts(doc) {
    const alerts = Array.isArray(doc.alerts) ? doc.alerts : [];
    byId("detail-alert-rows").replaceChildren(
      ...alerts.map((alert) => {
        const channels = Array.isArray(alert.channels) ? alert.channels : [];
        const failing = channels.some((c) => c.failed || c.pending);
        const tr = el("tr", "alert-row" + (failing ? " undelivered" : ""));
        const delivery = el("ul", "deliveries");
        delivery.append(...channels.map((c) => el("li", c.failed ? "failed" : c.pending ? "pending" : "sent", deliveryText(c))));
        if (!channels.length) delivery.append(el("li", "none", "no channel was on"));
        tr.append(
          cell("When", "", timeSpan(alert.at, "ago", "–")),
          cell("Alert", "", el("span", "kind", String(alert.kind)), sub(String(alert.reason || ""))),
          cell("Delivery", "", delivery),
        );
        return tr;
      }),
    );
    byId("detail-alerts").hidden = alerts.length === 0;
    const empty = byId("detail-no-alerts");
    empty.hidden = alerts.length > 0;
    empty.textContent = doc.alerts === null ? "The outbox cannot be read now (see /health)." : "No alert of this target in the outbox.";
  }

  async function loadDetail(name) {
    detailFetched = Date.now();
    try {
      const response = await fetchWithin("api/targets/" + encodeURIComponent(name));
      if (detailName !== name) return;
      if (response.status === 404) throw new Error(`No target named "${name}" is checked by this monitor.`);
      if (!response.ok) throw new Error(`The monitor answered HTTP ${response.status}.`);
      showDetail(await response.json());
    } catch (err) {
      if (detailName !== name) return;
      byId("detail-name").textContent = name;
      const error = byId("detail-error");
      error.textContent = err instanceof Error ? err.message : String(err);
      error.hidden = false;
    }
  }

  function refreshDetailSoon() {
    if (detailTimer !== null || paused) return;
    const wait = Math.max(0, DETAIL_REFRESH_MS - (Date.now() - detailFetched));
    detailTimer = setTimeout(() => {
      detailTimer = null;
      if (detailName !== null) loadDetail(detailName);
    }, wait);
  }

  // The address says what is shown: "/?target=name" opens that target's detail.
  function followAddress() {
    const name = new URLSearchParams(location.search).get("target");
    detailName = name;
    byId("detail").hidden = name === null;
    if (name === null) return;
    byId("detail-name").textContent = name;
    byId("detail-facts").replaceChildren();
    byId("detail-kind").hidden = true;
    byId("detail-kind-facts").replaceChildren();
    byId("detail-chart").replaceChildren();
    byId("detail-change-rows").replaceChildren();
    byId("detail-error").hidden = true;
    loadDetail(name);
    byId("detail-name").focus();
    window.scrollTo(0, 0);
  }

  function navigate(href) {
    history.pushState(null, "", href);
    followAddress();
  }

  // ------------------------------------------------------------------ connection

  async function fetchWithin(url) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
    try {
      return await fetch(url, { cache: "no-store", signal: controller.signal });
    } catch (err) {
      throw new Error(
        "Connection lost: " + (controller.signal.aborted ? "the monitor did not answer in time" : "the monitor is not reachable"),
      );
    } finally {
      clearTimeout(timer);
    }
  }

  async function loadList() {
    try {
      const response = await fetchWithin("api/status");
      if (!response.ok) throw new Error(`Connection lost: the monitor answered HTTP ${response.status}`);
      let doc;
      try {
        doc = await response.json();
      } catch (err) {
        throw new Error("Update failed: the monitor's answer could not be read");
      }
      applyList(doc);
      touched();
      queueRender();
    } catch (err) {
      showConnection(err instanceof Error ? err.message : String(err));
    }
  }

  function setMode(next) {
    mode = next;
    const node = byId("connection");
    node.className = "connection " + next;
    node.textContent = { live: "live", polling: "polling every 5 s", connecting: "connecting…" }[next] || next;
  }

  function startPolling() {
    if (pollTimer !== null) return;
    setMode("polling");
    const poll = async () => {
      await loadList();
      if (mode === "polling") pollTimer = setTimeout(poll, POLL_MS);
    };
    poll();
    // The stream may come back (after a restart, or once a stream slot is free).
    setTimeout(openStream, STREAM_RETRY_MS);
  }

  function stopPolling() {
    if (pollTimer !== null) clearTimeout(pollTimer);
    pollTimer = null;
  }

  function openStream() {
    if (typeof EventSource !== "function") {
      startPolling();
      return;
    }
    if (source !== null) source.close();
    const stream = new EventSource("api/events");
    source = stream;
    const firstPicture = setTimeout(() => {
      if (!haveList) loadList();
    }, FIRST_PICTURE_MS);
    stream.addEventListener("open", () => {
      stopPolling();
      setMode("live");
    });
    stream.addEventListener("reset", () => {
      clearTimeout(firstPicture);
      loadList();
    });
    stream.addEventListener("update", (event) => {
      try {
        applyUpdate(JSON.parse(event.data));
      } catch (err) {
        showConnection("Update failed: an event could not be read");
      }
    });
    stream.addEventListener("error", () => {
      if (stream.readyState === EventSource.CLOSED) {
        // Refused (too many streams, or no stream at all): poll, and try again later.
        source = null;
        startPolling();
      } else {
        setMode("connecting");
        showConnection("Connection lost: reconnecting");
      }
    });
  }

  function showConnection(problem) {
    document.body.classList.toggle("stale", problem !== null);
    byId("banner").hidden = problem === null;
    if (problem !== null) {
      byId("banner-text").textContent = `${problem}.`;
      const since = byId("banner-since");
      since.replaceChildren();
      if (lastUpdateMs !== null) since.append("Last update ", timeSpan(new Date(lastUpdateMs).toISOString(), "ago", ""), ".");
    }
    const updated = byId("updated");
    updated.replaceChildren();
    if (lastUpdateMs !== null) updated.append("Updated ", timeSpan(new Date(lastUpdateMs).toISOString(), "ago", ""));
    else updated.append("No data yet");
  }

  // ------------------------------------------------------------------ controls

  function setPaused(value) {
    paused = value;
    byId("pause").setAttribute("aria-pressed", String(paused));
    document.body.classList.toggle("paused", paused);
    if (!paused) {
      for (const row of waiting.values()) applyRow(row);
      waiting.clear();
      if (detailName !== null) loadDetail(detailName);
    }
    queueRender();
  }

  function refilter() {
    orderStale = true;
    queueRender();
  }

  byId("filter").addEventListener("input", refilter);
  byId("state-filter").addEventListener("change", refilter);
  byId("sort").addEventListener("change", refilter);
  byId("controls").addEventListener("submit", (event) => event.preventDefault());
  byId("pause").addEventListener("click", () => setPaused(!paused));
  byId("summary").addEventListener("click", (event) => {
    const tile = event.target instanceof Element ? event.target.closest("[data-state]") : null;
    if (!tile) return;
    const select = byId("state-filter");
    const state = tile.dataset.state;
    if (![...select.options].some((option) => option.value === state)) select.append(new Option(state, state));
    select.value = select.value === state ? "" : state;
    refilter();
  });
  tbody.addEventListener("click", (event) => {
    const link = event.target instanceof Element ? event.target.closest("a.name") : null;
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate(link.getAttribute("href"));
  });
  byId("detail-close").addEventListener("click", (event) => {
    event.preventDefault();
    navigate(location.pathname);
  });
  window.addEventListener("popstate", followAddress);
  window.addEventListener("scroll", queueRender, { passive: true });
  window.addEventListener("resize", queueRender);
  // A font that arrives after the first draw changes every row's height: draw again.
  if (document.fonts) document.fonts.addEventListener("loadingdone", queueRender);

  setInterval(updateAges, 1000);
  followAddress();
  openStream();
})();
