// keyflow's dashboard: plain browser JavaScript, no build step. It reads this server's own API with
// the key the user enters (kept in sessionStorage, sent as a bearer token) or with none when the
// server is open. Everything a client chose (keys, event types, errors) is shown with textContent.
"use strict";

const POLL_MS = 2000;
const KEEP_POINTS = 300; // 10 minutes of 2 s polls
const KEY_STORAGE = "keyflow.dashboard.key";
const $ = (id) => document.getElementById(id);

const state = {
  key: sessionStorage.getItem(KEY_STORAGE) || "",
  waitingForKey: false,
  /** A round of polls has completed with the current key. */
  polled: false,
  /** The previous /metrics sample, for rates and latency over the last interval. */
  previous: null,
  problems: new Map(),
};

function authHeaders() {
  return state.key ? { authorization: `Bearer ${state.key}` } : {};
}

/** GET a JSON or text route; throws an Error naming the route and status when it answers otherwise. */
async function get(path, as = "json") {
  const res = await fetch(path, { headers: { ...authHeaders(), accept: as === "json" ? "application/json" : "text/plain" }, cache: "no-store" });
  if (!res.ok) {
    let message = `${res.status}`;
    try {
      const body = await res.json();
      if (body && body.error && typeof body.error.message === "string") message += ` ${body.error.message}`;
    } catch {
      // not JSON: the status says enough
    }
    const error = new Error(`${path.split("?")[0]}: ${message}`);
    error.status = res.status;
    throw error;
  }
  return as === "json" ? res.json() : res.text();
}

// ---- Prometheus text format -------------------------------------------------------------------

/** Samples of a Prometheus text exposition: [{ name, labels: Map, value }]. */
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    let i = 0;
    while (i < line.length && line[i] !== "{" && line[i] !== " ") i++;
    const name = line.slice(0, i);
    const labels = new Map();
    if (line[i] === "{") {
      i++;
      while (line[i] !== "}" && i < line.length) {
        const eq = line.indexOf("=", i);
        const label = line.slice(i, eq).trim();
        let value = "";
        for (i = eq + 2; i < line.length && line[i] !== '"'; i++) {
          if (line[i] === "\\") {
            i++;
            value += line[i] === "n" ? "\n" : line[i];
          } else value += line[i];
        }
        labels.set(label, value);
        i++; // closing quote
        if (line[i] === ",") i++;
      }
      i++; // closing brace
    }
    const text = line.slice(i).trim().split(/\s+/)[0];
    const value = text === "+Inf" ? Infinity : text === "-Inf" ? -Infinity : Number(text);
    samples.push({ name, labels, value });
  }
  return samples;
}

/** The sum of a metric's samples, grouped by one label (or all together when `by` is omitted). */
function sumBy(samples, name, by) {
  const sums = new Map();
  for (const s of samples) {
    if (s.name !== name) continue;
    const group = by ? s.labels.get(by) || "" : "";
    sums.set(group, (sums.get(group) || 0) + s.value);
  }
  return sums;
}

const total = (samples, name) => sumBy(samples, name).get("") || 0;

/** A histogram's cumulative bucket counts summed over its other labels: [[le, count]] by le. */
function buckets(samples, name) {
  return [...sumBy(samples, `${name}_bucket`, "le")]
    .map(([le, count]) => [le === "+Inf" ? Infinity : Number(le), count])
    .sort((a, b) => a[0] - b[0]);
}

/** The q-quantile of the observations between two bucket snapshots (as histogram_quantile does), or null. */
function quantile(q, now, before) {
  const then = new Map(before || []);
  const delta = now.map(([le, count]) => [le, count - (then.get(le) || 0)]);
  const all = delta.length ? delta[delta.length - 1][1] : 0;
  if (all <= 0) return null;
  const rank = q * all;
  let lowerLe = 0;
  let lowerCount = 0;
  for (const [le, count] of delta) {
    if (count >= rank) {
      if (le === Infinity) return lowerLe;
      return lowerLe + ((le - lowerLe) * (rank - lowerCount)) / Math.max(count - lowerCount, 1e-12);
    }
    lowerLe = le;
    lowerCount = count;
  }
  return null;
}

/** A counter's increase per second; a counter that went down (a restart) counts from zero. */
function rate(now, before, seconds) {
  if (before === undefined || seconds <= 0) return null;
  return (now >= before ? now - before : now) / seconds;
}

// ---- charts (uPlot) ---------------------------------------------------------------------------

const charts = [];

/** A time chart of `series` (uPlot series options); `right` names a second scale drawn on the right. */
function chart(el, series, { bars = false, points = bars, y = "", right = "", xPad = () => 1 } = {}) {
  const opts = {
    width: Math.max(el.clientWidth, 300),
    height: 200,
    // Time in seconds; a single point gets some room on either side.
    scales: { x: { time: true, range: (u, min, max) => (min === max || bars ? [min - xPad(), max + xPad()] : [min, max]) } },
    axes: [{}, { label: y, size: 60 }, ...(right ? [{ scale: right, label: right, side: 1, size: 60, grid: { show: false } }] : [])],
    series: [{}, ...series.map((s) => ({ spanGaps: false, width: 2, points: { show: points, size: 5 }, ...s }))],
  };
  if (bars) opts.series[1].paths = uPlot.paths.bars({ size: [0.6, 40] }); // the first series as bars, the others as lines
  const c = { el, series, plot: new uPlot(opts, [[], ...series.map(() => [])], el), data: [[], ...series.map(() => [])] };
  charts.push(c);
  return c;
}

/** Appends one point per series at time t (seconds), keeping the last KEEP_POINTS. */
function append(c, t, values) {
  c.data[0].push(t);
  values.forEach((v, i) => c.data[i + 1].push(v));
  if (c.data[0].length > KEEP_POINTS) for (const column of c.data) column.shift();
  c.plot.setData(c.data);
  c.el.dataset.points = String(c.data[0].length);
}

function replace(c, data) {
  c.data = data;
  c.plot.setData(data);
  c.el.dataset.points = String(data[0].length);
}

window.addEventListener("resize", () => {
  for (const c of charts) c.plot.setSize({ width: Math.max(c.el.clientWidth, 300), height: 200 });
});

// ---- formatting and small DOM helpers ---------------------------------------------------------

const fmt = (n, digits = 1) => (n === null || n === undefined || Number.isNaN(n) ? "–" : n.toLocaleString("en", { maximumFractionDigits: digits }));
const fmtMs = (seconds) => (seconds === null ? "–" : seconds < 1 ? `${fmt(seconds * 1000, 1)} ms` : `${fmt(seconds, 2)} s`);

function setText(id, text) {
  $(id).textContent = text;
}

/** A table row of text cells; `statusClass` marks a cell from a fixed set of states. */
function row(cells, statusCell = -1) {
  const tr = document.createElement("tr");
  cells.forEach((text, i) => {
    const td = document.createElement("td");
    td.textContent = text;
    if (i === statusCell && ["ok", "degraded", "down"].includes(text)) td.className = `status-${text}`;
    tr.append(td);
  });
  return tr;
}

function problem(area, error) {
  if (error) state.problems.set(area, error.message);
  else state.problems.delete(area);
  const status = $("status");
  if (state.waitingForKey) {
    status.textContent = "enter an API key with the read and metrics scopes";
    status.className = "status warn";
  } else if (!state.polled) {
    status.textContent = "connecting…";
    status.className = "status";
  } else if (state.problems.size) {
    status.textContent = [...state.problems.values()].join(" · ");
    status.className = "status warn";
  } else {
    status.textContent = `live · every ${POLL_MS / 1000} s`;
    status.className = "status ok";
  }
}

/** A 401 stops the polls until a key is entered: without one the server will not answer. */
function needsKey(error) {
  if (error && error.status === 401) {
    state.waitingForKey = true;
    $("api-key").focus();
    return true;
  }
  return false;
}

// ---- the overview: /metrics, /ready, /v1/top-keys ---------------------------------------------

let eventsChart;
let latencyChart;
let httpChart;

async function pollMetrics() {
  let text;
  try {
    text = await get("/metrics", "text");
  } catch (error) {
    if (needsKey(error)) return;
    // 404: metrics are off (KEYFLOW_METRICS=off) or not served on this host (Workers).
    problem("metrics", error.status === 404 ? new Error("/metrics is not served here") : error);
    return;
  }
  problem("metrics", null);
  const samples = parseMetrics(text);
  const now = { t: Date.now() / 1000, samples };
  const before = state.previous;
  state.previous = now;
  const seconds = before ? now.t - before.t : 0;

  const outcomes = sumBy(samples, "keyflow_events_total", "outcome");
  const previousOutcomes = before ? sumBy(before.samples, "keyflow_events_total", "outcome") : new Map();
  const rates = ["accepted", "duplicate", "rejected"].map((o) => rate(outcomes.get(o) || 0, before ? previousOutcomes.get(o) || 0 : undefined, seconds));
  const requests = total(samples, "keyflow_http_requests_total");
  const requestRate = rate(requests, before ? total(before.samples, "keyflow_http_requests_total") : undefined, seconds);
  const ingest = buckets(samples, "keyflow_ingest_duration_seconds");
  const previousIngest = before ? buckets(before.samples, "keyflow_ingest_duration_seconds") : null;
  const p50 = before ? quantile(0.5, ingest, previousIngest) : null;
  const p99 = before ? quantile(0.99, ingest, previousIngest) : null;

  setText("n-accepted", fmt(outcomes.get("accepted") || 0, 0));
  setText("n-rate", fmt(rates[0]));
  setText("n-p99", fmtMs(p99));
  setText("n-http", fmt(requestRate));
  setText("n-dlq", fmt(total(samples, "keyflow_dead_letters"), 0));
  setText("n-actors", fmt(total(samples, "keyflow_actors_in_memory"), 0));
  if (before) {
    append(eventsChart, now.t, rates);
    append(latencyChart, now.t, [p50 === null ? null : p50 * 1000, p99 === null ? null : p99 * 1000]);
    append(httpChart, now.t, [requestRate]);
  }
  return samples;
}

async function pollSinks(samples) {
  // /ready answers anyone (200 ready, 503 not_ready: a sink down too long); sinks only for a metrics key.
  let ready = null;
  try {
    const res = await fetch("/ready", { headers: authHeaders(), cache: "no-store" });
    ready = await res.json();
    problem("ready", ready.status === "ready" ? null : new Error(`/ready: ${res.status} ${ready.status}`));
  } catch (error) {
    problem("ready", error);
  }
  const bySink = new Map();
  const sink = (name) => bySink.get(name) || bySink.set(name, { name }).get(name);
  for (const s of (ready && ready.sinks) || []) Object.assign(sink(s.sink), { status: s.status, error: s.last_error, latency: s.latency_ms });
  if (samples) {
    for (const [name, v] of sumBy(samples, "keyflow_sink_backlog_records", "sink")) sink(name).backlog = v;
    for (const [name, v] of sumBy(samples, "keyflow_sink_oldest_undelivered_age_seconds", "sink")) sink(name).oldest = v;
    for (const [name, v] of sumBy(samples, "keyflow_sink_delivered_total", "sink")) sink(name).delivered = v;
    for (const [name, v] of sumBy(samples, "keyflow_sink_dead_lettered_total", "sink")) sink(name).deadLettered = v;
  }
  const rows = [...bySink.values()].map((s) =>
    row(
      [s.name, s.status || "?", s.error || "", s.latency == null ? "–" : `${fmt(s.latency)} ms`, fmt(s.backlog, 0), s.oldest ? fmtMs(s.oldest) : "–", fmt(s.delivered, 0), fmt(s.deadLettered, 0)],
      1,
    ),
  );
  $("sinks").tBodies[0].replaceChildren(...rows);
  const dlq = samples ? total(samples, "keyflow_dead_letters") : null;
  setText(
    "sinks-note",
    `${rows.length ? "" : "No sinks configured. "}Dead letters held by actors in memory: ${fmt(dlq, 0)}. Backlog and age count the actors in memory.`,
  );
}

async function pollTopKeys() {
  let answer;
  try {
    answer = await get("/v1/top-keys?limit=10");
    problem("top-keys", null);
  } catch (error) {
    if (!needsKey(error)) problem("top-keys", error);
    return;
  }
  const rows = answer.keys.map((k) => {
    const tr = row([k.key, fmt(k.events, 0), fmt(k.error_bound, 0)]);
    tr.className = "pick";
    tr.title = "Watch this key's windows";
    tr.addEventListener("click", () => watch(k.key));
    return tr;
  });
  $("top-keys").tBodies[0].replaceChildren(...rows);
  setText("top-keys-note", `${rows.length ? "" : "No events yet. "}Counted since ${new Date(answer.since).toLocaleString()} by this server process (approximate: ± is the most a count may overstate).`);
}

async function poll() {
  try {
    if (!state.waitingForKey) {
      const samples = await pollMetrics();
      await Promise.all([pollSinks(samples), pollTopKeys()]);
      state.polled = !state.waitingForKey;
    }
  } finally {
    problem("poll", null);
    setTimeout(poll, POLL_MS);
  }
}

// ---- one actor's windows: GET /v1/actors/:key/windows, then live from /v1/actors/:key/live -----

const actor = {
  key: "",
  /** Windows by "size start": the latest view or record of each. */
  windows: new Map(),
  events: [],
  abort: null,
  lastEventId: "",
  mode: "",
};

let windowsChart;

function watch(key) {
  if (actor.abort) actor.abort.abort();
  $("actor-key").value = key;
  Object.assign(actor, { key, windows: new Map(), events: [], abort: new AbortController(), lastEventId: "", mode: "" });
  $("live-events").replaceChildren();
  drawWindows();
  if (key) void follow(actor.abort.signal);
}

/** Loads the windows, then follows the live stream; falls back to polling /windows while /live answers 404. */
async function follow(signal) {
  const path = `/v1/actors/${encodeURIComponent(actor.key)}`;
  let liveRetryAt = 0;
  while (!signal.aborted) {
    try {
      await loadWindows(path, signal);
      if (Date.now() >= liveRetryAt) {
        const res = await fetch(`${path}/live`, {
          headers: { ...authHeaders(), accept: "text/event-stream", ...(actor.lastEventId ? { "last-event-id": actor.lastEventId } : {}) },
          cache: "no-store",
          signal,
        });
        if (res.ok && res.body) {
          actor.mode = "live";
          drawWindows();
          await readEvents(res.body, signal);
          actor.mode = "reconnecting"; // the stream ended: reload the windows, reconnect with Last-Event-ID
        } else if (res.status === 404) {
          actor.mode = "polling";
          liveRetryAt = Date.now() + 30_000; // no live route here (yet): poll, and ask again later
        } else throw new Error(`${path}/live: ${res.status}`);
      }
      drawWindows();
    } catch (error) {
      if (signal.aborted) return;
      actor.mode = error.status === 404 ? "no events yet" : `error: ${error.message}`;
      drawWindows();
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function loadWindows(path, signal) {
  const answer = await get(`${path}/windows`);
  if (signal.aborted) return;
  for (const w of answer.windows) takeWindow(w);
  drawWindows();
}

/** Reads a text/event-stream body (EventSource cannot send a bearer key) until it ends. */
async function readEvents(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  signal.addEventListener("abort", () => reader.cancel().catch(() => {}), { once: true });
  let buffer = "";
  let event = "message";
  let data = [];
  for (;;) {
    const { value, done } = await reader.read().catch(() => ({ done: true }));
    if (done || signal.aborted) return;
    buffer += value;
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0 && !signal.aborted) {
      const line = buffer.slice(0, nl).replace(/\r$/, "");
      buffer = buffer.slice(nl + 1);
      if (line === "") {
        if (data.length) onMessage(event, data.join("\n"), signal);
        event = "message";
        data = [];
        continue;
      }
      if (line[0] === ":") continue; // keepalive
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = text;
      else if (field === "data") data.push(text);
      else if (field === "id") actor.lastEventId = text;
    }
  }
}

/** `event` and `window` carry records as sinks get them; after a `gap` (missed messages) the windows are reloaded. */
function onMessage(event, data, signal) {
  if (event === "gap") return void loadWindows(`/v1/actors/${encodeURIComponent(actor.key)}`, signal).catch(() => {});
  let record;
  try {
    record = JSON.parse(data);
  } catch {
    return;
  }
  if (event === "window") {
    takeWindow(record);
    drawWindows();
  } else if (event === "event") {
    actor.events.unshift(record);
    actor.events.length = Math.min(actor.events.length, 20);
    drawEvents();
  }
}

/** A window from /windows (closed) or the stream (final): the newest revision of each is kept. */
function takeWindow(w) {
  if (!w || typeof w.size !== "string" || typeof w.start !== "string") return;
  const id = `${w.size} ${w.start}`;
  const held = actor.windows.get(id);
  if (held && held.revision !== undefined && w.revision !== undefined && w.revision < held.revision) return;
  actor.windows.set(id, { size: w.size, start: Date.parse(w.start), count: w.count, sum: w.sum, closed: Boolean(w.closed || w.final), revision: w.revision });
}

function drawWindows() {
  const select = $("window-size");
  const sizes = [...new Set([...actor.windows.values()].map((w) => w.size))].sort((a, b) => sizeSeconds(a) - sizeSeconds(b));
  const chosen = select.value;
  if (sizes.join() !== [...select.options].map((o) => o.value).join()) {
    select.replaceChildren(...sizes.map((size) => Object.assign(document.createElement("option"), { value: size, textContent: size })));
    select.value = sizes.includes(chosen) ? chosen : sizes[0] || "";
  }
  const shown = [...actor.windows.values()].filter((w) => w.size === select.value).sort((a, b) => a.start - b.start).slice(-KEEP_POINTS);
  replace(windowsChart, [shown.map((w) => w.start / 1000), shown.map((w) => w.count), shown.map((w) => w.sum)]);
  windowsChart.el.dataset.events = String(shown.reduce((n, w) => n + w.count, 0));
  const open = shown.filter((w) => !w.closed).length;
  setText(
    "actor-status",
    actor.key ? `${actor.key}: ${shown.length} windows of ${select.value || "–"} (${open} open) · ${actor.mode || "loading"}` : "Enter a key, or click one in Top keys.",
  );
}

/** A window size's length in seconds ("30s", "1m", "5m/1m": 300), for ordering and spacing. */
function sizeSeconds(size) {
  const m = /^(\d+)(ms|s|m|h|d)/.exec(size);
  return m ? Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 }[m[2]] : Infinity;
}

function drawEvents() {
  const items = actor.events.map((e) => {
    const li = document.createElement("li");
    const value = e.value === undefined ? "" : ` value ${e.value}`;
    li.textContent = `${e.timestamp} ${e.event_type}${value}${e.late ? " (late)" : ""} · ${e.event_id}`;
    return li;
  });
  $("live-events").replaceChildren(...items);
}

// ---- start ------------------------------------------------------------------------------------

function start() {
  eventsChart = chart($("chart-events"), [
    { label: "accepted", stroke: "#2a7" },
    { label: "duplicate", stroke: "#c90" },
    { label: "rejected", stroke: "#d33" },
  ], { y: "events/s" });
  latencyChart = chart($("chart-latency"), [
    { label: "p50 ms", stroke: "#27c" },
    { label: "p99 ms", stroke: "#a3c" },
  ], { y: "ms", points: true });
  httpChart = chart($("chart-http"), [{ label: "requests/s", stroke: "#555" }], { y: "requests/s" });
  windowsChart = chart($("chart-windows"), [
    { label: "count", stroke: "#27c", fill: "rgba(34,119,204,0.35)" },
    { label: "sum", stroke: "#2a7", scale: "sum" },
  ], { bars: true, y: "events", right: "sum", xPad: () => Math.min(sizeSeconds($("window-size").value), 86400) });

  $("api-key").value = state.key;
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.key = $("api-key").value.trim();
    if (state.key) sessionStorage.setItem(KEY_STORAGE, state.key);
    else sessionStorage.removeItem(KEY_STORAGE);
    state.waitingForKey = false;
    state.polled = false;
    state.previous = null;
    problem("key", null);
    if (actor.key) watch(actor.key);
  });
  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    state.key = "";
    $("api-key").value = "";
  });
  $("actor-form").addEventListener("submit", (e) => {
    e.preventDefault();
    watch($("actor-key").value.trim());
  });
  $("window-size").addEventListener("change", drawWindows);
  drawWindows();
  void poll();
}

start();
