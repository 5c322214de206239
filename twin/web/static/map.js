// The city twin's web map: planner (3D city, scenarios), emergency (risk one map, storms,
// roads, alerts) and grid worker (cell card, tasks). Plain script, no build step: MapLibre GL JS
// is served by this server from web/node_modules, tiles and data from its own API.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const MODES = ["planner", "emergency", "grid"];
const PITCH = { planner: 55, emergency: 0, grid: 0 };

// Which map layers each mode shows; every other layer of ours is hidden in that mode.
const MODE_LAYERS = {
  planner: ["parcels-fill", "admin-line", "roads-line", "columns", "buildings-3d", "run-flood", "run-traffic"],
  emergency: ["admin-line", "roads-line", "buildings-flat", "risk-fill", "flood-fill", "flood-roads", "traffic-line", "alerts-circle", "sensors-circle"],
  grid: ["parcels-fill", "admin-line", "roads-line", "buildings-flat", "cells-fill", "cells-line", "cells-selected"],
};

const USE_COLORS = {
  residential: "#f6c76b", commercial: "#e06666", office: "#6fa8dc", industrial: "#8e7cc3",
  warehouse: "#b4a7d6", education: "#93c47d", health: "#76a5af", transport: "#999999",
  other: "#cccccc",
};
const CLASS_COLORS = {
  R: "#f6d27a", A: "#f29e9e", B: "#e06666", M: "#b4a7d6", W: "#9f8fc7", S: "#cccccc",
  U: "#76a5af", G: "#93c47d", E: "#6aa84f",
};
const BAND_COLORS = {
  "free-flowing": "#38a800", slow: "#e6b800", congested: "#e67300", "severely congested": "#b30000",
};
const DEPTH_STOPS = [[0.01, "#c6dbef"], [0.15, "#6baed6"], [0.3, "#2171b5"], [0.6, "#08519c"], [1.0, "#08306b"]];
// Column height per unit of each metric (m): tall enough to read, short enough to see past.
const COLUMN_SCALE = { population: 0.4, jobs: 0.4, floor_area_m2: 0.004 };
const CARD_FIELDS = [
  ["population", "People"], ["elderly", "Aged 60+"], ["jobs", "Jobs"], ["buildings", "Buildings"],
  ["floor_area_m2", "Floor area (m²)"], ["height_mean_m", "Mean height (m)"],
  ["enterprises", "Enterprises"], ["hazard_sites", "Hazard sites"], ["events_open", "Open events"],
  ["events_30d", "Events, last 30 days"],
];
const PEOPLE_FIELDS = new Set(["population", "elderly", "jobs"]);

const state = { mode: null, map: null, runs: [], layers: [], risk: "onemap", selected: null, card: null,
  me: { name: "anonymous", role: "public", clearance: "general", can_run_simulations: false, can_operate: false } };
window.twinMap = state; // for the browser tests and the curious

// ----------------------------------------------------------------------------- helpers
// A bearer token (from `twin users add`), kept for this tab only: the API and the tiles then
// answer within the user's role and scope.
const TOKEN_KEY = "twin.token";
function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
// What the caller may read and do (GET /api/me); the public until that answers.
const CLEARANCE = ["general", "important", "core"];
function cleared(level) { return CLEARANCE.indexOf(state.me.clearance) >= CLEARANCE.indexOf(level); }
// A link from `twin demo` carries the token in the fragment (never sent to a server): keep it
// for this tab and take it out of the address bar.
function tokenFromLink() {
  const m = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (!m) return;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
  history.replaceState(null, "", location.pathname + location.search);
}
function authHeaders() { return token() ? { Authorization: `Bearer ${token()}` } : {}; }

async function api(path, options = {}) {
  const init = { ...options, headers: { Accept: "application/json", ...authHeaders() } };
  if (options.body !== undefined) {
    init.body = JSON.stringify(options.body);
    init.headers["Content-Type"] = "application/json";
  }
  const r = await fetch(path, init);
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = { detail: text }; }
  if (!r.ok) {
    const d = body && body.detail;
    throw new Error(typeof d === "string" ? d : d ? JSON.stringify(d) : `${r.status} ${r.statusText}`);
  }
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null && c !== false) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function fmt(v, digits = 0) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  return v.toLocaleString("en", { maximumFractionDigits: digits });
}

function say(text, error = false) {
  const s = $("#status");
  s.textContent = text;
  s.classList.toggle("error", error);
}

function legend(target, entries) {
  $(target).replaceChildren(...entries.map(([color, label]) => el("span", { style: `--c:${color}` }, label)));
}

function setVisible(id, on) {
  if (state.map.getLayer(id)) state.map.setLayoutProperty(id, "visibility", on ? "visible" : "none");
}

function shown(id) {
  return MODE_LAYERS[state.mode].includes(id) && layerWanted(id);
}

function layerWanted(id) {
  if (id === "buildings-3d") return $("#show-buildings").checked;
  if (id === "parcels-fill" && state.mode === "planner") return $("#show-parcels").checked;
  if (id === "columns") return $("#show-columns").checked;
  return true;
}

function applyVisibility() {
  const ours = new Set(Object.values(MODE_LAYERS).flat());
  for (const id of ours) setVisible(id, shown(id));
}

// Replace a vector source (and the layers drawing it) with the tiles of another layer.
function setVectorSource(id, tileLayer, layers, drop = []) {
  const map = state.map;
  for (const layerId of [...drop, ...layers.map((l) => l.id)]) if (map.getLayer(layerId)) map.removeLayer(layerId);
  if (map.getSource(id)) map.removeSource(id);
  if (!tileLayer) return;
  map.addSource(id, { type: "vector", url: `${location.origin}/tiles/${tileLayer}.json` });
  for (const layer of layers) {
    map.addLayer({ ...layer, source: id, "source-layer": tileLayer }, layer.before && map.getLayer(layer.before) ? layer.before : undefined);
  }
  applyVisibility();
}

// ----------------------------------------------------------------------------- the map
function baseStyle() {
  const src = (name) => ({ type: "vector", url: `${location.origin}/tiles/${name}.json` });
  const matchColor = (prop, table, fallback) => ["match", ["get", prop], ...Object.entries(table).flat(), fallback];
  return {
    version: 8,
    sources: {
      admin_areas: src("admin_areas"), parcels: src("parcels"), roads: src("roads"),
      buildings: src("buildings"), cells: src("cells"),
      alerts: { type: "geojson", data: { type: "FeatureCollection", features: [] } },
      sensors: { type: "geojson", data: { type: "FeatureCollection", features: [] } },
    },
    layers: [
      { id: "background", type: "background", paint: { "background-color": "#f4f1ea" } },
      { id: "parcels-fill", type: "fill", source: "parcels", "source-layer": "parcels",
        paint: { "fill-color": matchColor("class", CLASS_COLORS, "#dddddd"), "fill-opacity": 0.45 } },
      { id: "cells-fill", type: "fill", source: "cells", "source-layer": "cells",
        paint: { "fill-color": ["interpolate", ["linear"], ["coalesce", ["get", "population"], 0],
          0, "#f7fbff", 500, "#9ecae1", 2000, "#3182bd", 5000, "#08519c"], "fill-opacity": 0.35 } },
      { id: "admin-line", type: "line", source: "admin_areas", "source-layer": "admin_areas",
        paint: { "line-color": "#6d5d8c", "line-opacity": 0.6,
          "line-width": ["match", ["get", "level"], "city", 3, "district", 2.2, "street", 1.4, 0.7] } },
      { id: "roads-line", type: "line", source: "roads", "source-layer": "roads",
        paint: { "line-color": "#9a9a9a", "line-width": ["interpolate", ["linear"], ["zoom"], 10, 0.5, 16, 3] } },
      { id: "buildings-flat", type: "fill", source: "buildings", "source-layer": "buildings",
        paint: { "fill-color": matchColor("use", USE_COLORS, "#cccccc"), "fill-opacity": 0.7 } },
      { id: "cells-line", type: "line", source: "cells", "source-layer": "cells",
        paint: { "line-color": "#3182bd", "line-width": 0.6, "line-opacity": 0.7 } },
      { id: "cells-selected", type: "line", source: "cells", "source-layer": "cells",
        filter: ["==", ["get", "h3"], ""], paint: { "line-color": "#d40000", "line-width": 3 } },
      { id: "columns", type: "fill-extrusion", source: "cells", "source-layer": "cells", paint: {} },
      { id: "buildings-3d", type: "fill-extrusion", source: "buildings", "source-layer": "buildings",
        paint: { "fill-extrusion-color": matchColor("use", USE_COLORS, "#cccccc"),
          "fill-extrusion-height": ["coalesce", ["get", "height_m"], 3], "fill-extrusion-opacity": 0.9 } },
      { id: "alerts-circle", type: "circle", source: "alerts",
        paint: { "circle-radius": 7, "circle-stroke-color": "#fff", "circle-stroke-width": 1.5,
          "circle-color": ["match", ["get", "level"], "red", "#cc0000", "orange", "#e69138", "yellow", "#e6b800", "#3d85c6"] } },
      // Sensors (SensorThings Datastreams) with their latest reading, kept current by /api/live.
      { id: "sensors-circle", type: "circle", source: "sensors",
        paint: { "circle-radius": ["case", ["get", "fresh"], 7, 5], "circle-stroke-color": "#fff",
          "circle-stroke-width": 1, "circle-color": ["case", ["get", "fresh"], "#00a3a3", "#5f7f7f"] } },
    ],
  };
}

function columnPaint(metric) {
  const v = ["coalesce", ["get", metric], 0];
  const h = ["*", v, COLUMN_SCALE[metric]];
  state.map.setPaintProperty("columns", "fill-extrusion-height", h);
  state.map.setPaintProperty("columns", "fill-extrusion-opacity", 0.75);
  state.map.setPaintProperty("columns", "fill-extrusion-color", ["case", ["==", ["get", metric], null], "#bbbbbb",
    ["interpolate", ["linear"], h, 0, "#ffffcc", 200, "#fd8d3c", 800, "#bd0026"]]);
}

const RUN_LAYERS = {
  flood: (prefix, before) => [{ id: `${prefix}flood${prefix ? "" : "-fill"}`, type: "fill", before,
    paint: { "fill-opacity": 0.75, "fill-color": ["interpolate", ["linear"], ["get", "max_depth_m"], ...DEPTH_STOPS.flat()] } }],
  traffic: (prefix, before) => [{ id: `${prefix}traffic${prefix ? "" : "-line"}`, type: "line", before,
    paint: { "line-width": ["case", ["get", "closed"], 4, 2.5],
      "line-color": ["case", ["get", "closed"], "#000000", ["match", ["get", "band"], ...Object.entries(BAND_COLORS).flat(), "#38a800"]],
      "line-dasharray": [2, 1] } }],
};

function floodRoadLayers() {
  return [{ id: "flood-roads", type: "line", before: "alerts-circle", filter: ["!=", ["get", "state"], "passable"],
    paint: { "line-width": 3, "line-color": ["match", ["get", "state"], "closed", "#7a0000", "#e67300"] } }];
}

// ----------------------------------------------------------------------------- runs
function runLabel(r) {
  const when = (r.finished_at || r.created_at || "").slice(0, 16).replace("T", " ");
  const s = r.summary || {};
  const what = r.kind === "flood"
    ? `${fmt((r.params || {}).return_period_years)}-yr storm`
    : `${(r.params || {}).period || "traffic"}${s.delay_index ? ` · index ${fmt(s.delay_index, 2)}` : ""}`;
  return `#${r.id} ${r.kind} · ${what} · ${r.status}${when ? ` · ${when}` : ""}`;
}

async function loadRuns() {
  const { runs } = await api("/api/simulations?limit=100");
  const baselines = new Set(runs.map((r) => (r.params || {}).baseline_for ? r.id : null).filter(Boolean));
  state.runs = runs.filter((r) => !baselines.has(r.id));
  const ok = state.runs.filter((r) => r.status === "succeeded");
  const fill = (sel, list, keep, none = "none") => {
    const node = $(sel);
    const old = keep ? node.value : "";
    node.replaceChildren(el("option", { value: "" }, none), ...list.map((r) => el("option", { value: r.id }, runLabel(r))));
    if (old && list.some((r) => String(r.id) === old)) node.value = old;
    return node;
  };
  fill("#run-a", ok, true);
  fill("#run-b", ok, true);
  fill("#flood-run", ok.filter((r) => r.kind === "flood"), true);
  fill("#traffic-run", ok.filter((r) => r.kind === "traffic"), true);
}

function pickLatest(sel) {
  const node = $(sel);
  if (!node.value && node.options.length > 1) node.value = node.options[1].value;
}

const COMPARE = [
  ["Kind", (r) => r.kind],
  ["Return period (years)", (r) => r.params?.return_period_years],
  ["Storm duration (min)", (r) => r.params?.duration_s && r.params.duration_s / 60],
  ["Rain (mm)", (r) => r.summary?.rain_mm, 1],
  ["Max depth (m)", (r) => r.summary?.max_depth_m, 2],
  ["Flooded area (m²)", (r) => r.summary?.flooded_area_m2],
  ["Buildings affected", (r) => r.summary?.affected_buildings],
  ["People affected", (r) => r.summary?.affected_people],
  ["Roads closed", (r) => r.summary?.closed_links],
  ["Roads slowed", (r) => r.summary?.slowed_links],
  ["Delay index", (r) => r.summary?.delay_index, 3],
  ["Delay band", (r) => r.summary?.delay_band],
  ["Trips", (r) => r.summary?.trips],
  ["Total travel time (veh·h)", (r) => r.summary?.tstt_veh_h, 1],
];

function renderCompare() {
  const runs = ["#run-a", "#run-b"].map((s) => state.runs.find((r) => String(r.id) === $(s).value));
  const table = $("#compare");
  if (!runs.some(Boolean)) { table.replaceChildren(); return; }
  const head = el("tr", {}, el("th"), ...runs.map((r, i) => el("th", {}, r ? `${"AB"[i]}: #${r.id}` : "–")));
  const rows = COMPARE.filter(([, get]) => runs.some((r) => r && get(r) !== undefined && get(r) !== null))
    .map(([label, get, digits]) => el("tr", {}, el("td", {}, label),
      ...runs.map((r) => el("td", { class: "num" }, r ? fmt(get(r), digits || 0) : "–"))));
  table.replaceChildren(head, ...rows);
  const a = runs[0];
  setVectorSource("run-a", a ? `${a.kind}_${a.id}` : null, a ? RUN_LAYERS[a.kind]("run-", "buildings-3d") : [],
    ["run-flood", "run-traffic"]);
}

// ----------------------------------------------------------------------------- emergency
async function loadRiskLayers() {
  const { layers } = await api("/api/layers");
  state.layers = layers;
  const node = $("#risk-layer");
  node.replaceChildren(...layers.map((l) => el("option", { value: l.id },
    `${l.title} · ${l.title_zh}${l.status === "no data" ? " (no data · 无数据)" : ""}`)));
  node.value = layers.some((l) => l.id === state.risk) ? state.risk : layers[0]?.id || "";
  showRisk();
}

function showRisk() {
  const layer = state.layers.find((l) => l.id === $("#risk-layer").value);
  if (!layer) return;
  state.risk = layer.id;
  const colors = (layer.style && layer.style.colors) || {};
  const levels = ["blue", "yellow", "orange", "red"];
  const th = layer.levels || {};
  // A layer without data is said to be so, never drawn as an all-clear blue map.
  legend("#risk-legend", layer.status === "no data" ? [["#cccccc", "no data: its inputs are empty (无数据)"]]
    : levels.map((lvl) => [colors[lvl] || lvl, `${lvl}${th[lvl] !== undefined ? ` ≥ ${th[lvl]}` : ""} (${fmt(layer.cells?.[lvl])})`]));
  setVectorSource("risk", `risk_${layer.id}`, [{ id: "risk-fill", type: "fill", before: "buildings-flat",
    paint: { "fill-opacity": 0.6, "fill-color": ["match", ["get", "level"], ...levels.flatMap((l) => [l, colors[l] || l]), "#cccccc"] } }]);
}

function showFlood() {
  const id = $("#flood-run").value;
  setVectorSource("flood", id ? `flood_${id}` : null, RUN_LAYERS.flood("", "buildings-flat"));
  setVectorSource("flood-roads", id ? `flood_roads_${id}` : null, floodRoadLayers());
}

function showTraffic() {
  const id = $("#traffic-run").value;
  setVectorSource("traffic", id ? `traffic_${id}` : null, RUN_LAYERS.traffic("", "alerts-circle"));
}

async function loadAlerts() {
  if (!cleared("important")) { // alerts are important data: the public sees the risk map only
    $("#alert-count").textContent = "";
    $("#alerts").replaceChildren(el("li", { class: "hint" }, "Sign in (viewer or above) to see alerts."));
    return;
  }
  if (state.historyAt) return; // the time slider shows the past: the stream resumes on "live"
  const { alerts } = await api("/api/alerts?status=active&limit=200");
  drawAlerts(alerts);
}
function drawAlerts(alerts) {
  $("#alert-count").textContent = `(${alerts.length})`;
  const features = alerts.filter((a) => a.lon !== null && a.lon !== undefined).map((a) => ({
    type: "Feature", geometry: { type: "Point", coordinates: [a.lon, a.lat] },
    properties: { id: a.id, level: a.level, message: a.message },
  }));
  state.map.getSource("alerts").setData({ type: "FeatureCollection", features });
  $("#alerts").replaceChildren(...alerts.slice(0, 50).map((a) => el("li", {
    dataset: { alert: a.id },
    onclick: () => a.lon !== null && a.lon !== undefined && state.map.jumpTo({ center: [a.lon, a.lat], zoom: 15 }),
  }, el("span", { class: `lvl ${a.level}` }, a.level), " ", a.message)));
}

// ----------------------------------------------------------------------------- live sensors
// Each Datastream with a place, and its latest reading; /api/live pushes new readings, read
// with fetch (EventSource cannot send the bearer token), reconnecting after a break.
async function loadSensors() {
  if (!cleared("important")) return;
  const page = await api("/sta/v1.1/Datastreams?$top=10000&$select=id,name,unitOfMeasurement,observedArea" +
    "&$expand=Observations($top=1;$orderby=phenomenonTime desc;$select=result,phenomenonTime)");
  state.sensors = new Map();
  for (const d of page.value) {
    if (!d.observedArea) continue;
    const last = (d.Observations || [])[0] || {};
    state.sensors.set(d["@iot.id"], { type: "Feature", geometry: d.observedArea, properties: {
      id: d["@iot.id"], name: d.name, unit: d.unitOfMeasurement.symbol, value: last.result ?? null,
      time: last.phenomenonTime ?? null, fresh: false } });
  }
  drawSensors();
  followLive();
}
function drawSensors() {
  state.map.getSource("sensors").setData({ type: "FeatureCollection", features: [...state.sensors.values()] });
}
// One Server-Sent Events stream, read with fetch (EventSource cannot send the bearer token):
// `onEvents` gets the parsed events ({event, id, data}) of each chunk. The stream is opened again
// after it ends (streams last a minute) or breaks; a newer call with the same key replaces it
// (a new sign-in or mode: its token may differ).
function parseEvent(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const at = line.indexOf(": ");
    out[line.slice(0, at)] = line.slice(at + 2);
  }
  if (out.data !== undefined) out.data = JSON.parse(out.data);
  return out;
}
async function follow(key, url, onEvents, onRefused) {
  const slot = `${key}Abort`;
  if (state[slot]) state[slot].abort();
  const ctrl = new AbortController();
  state[slot] = ctrl;
  const again = (ms) => { if (state[slot] === ctrl) setTimeout(() => follow(key, url, onEvents, onRefused), ms); };
  try {
    const r = await fetch(url(), {
      headers: { Accept: "text/event-stream", ...authHeaders() }, signal: ctrl.signal });
    // 400: the stream refuses the resume point (e.g. an event id from before a database
    // restore); `onRefused` drops it, and the stream opens again from now.
    if (r.status === 400 && onRefused) { onRefused(); again(200); return; }
    if (!r.ok || !r.body) throw new Error(`${key}: ${r.status}`);
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      const chunks = buffer.split("\n\n");
      buffer = chunks.pop();
      const events = chunks.map(parseEvent).filter((e) => e.event);
      if (events.length) onEvents(events);
    }
    again(200);
    return;
  } catch (err) {
    if (ctrl.signal.aborted) return; // replaced by a newer stream
    console.warn(err);
  }
  again(5000);
}
function followLive() {
  follow("live", () => "/api/live", (events) => {
    if (state.historyAt) return; // the time slider shows the past
    let changed = false;
    for (const { event, data: o } of events) {
      if (event !== "observation") continue;
      const f = state.sensors.get(o.Datastream && o.Datastream["@iot.id"]);
      if (!f) continue;
      Object.assign(f.properties, { value: o.result, time: o.phenomenonTime, fresh: true });
      changed = true;
      state.live = (state.live || 0) + 1;
    }
    if (changed) drawSensors();
  });
}

// ----------------------------------------------------------------------------- push channel
// /api/stream pushes alerts, task transitions and tile-data version bumps as they commit,
// scoped to the caller. Alert and task events carry ids: a reconnect passes the last one
// (since=) and gets every change after it, so nothing is missed between two streams.
function debounced(fn, ms) {
  let timer = null;
  return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
}
const refreshAlerts = debounced(() => loadAlerts().catch(console.warn), 300);
const refreshCard = debounced(() => {
  if (state.selected && !$("#card").hidden) openCard(state.selected).catch(console.warn);
}, 300);
const refreshTiles = debounced(() => {
  // A layer's data changed: reload every vector source (bumps are rare: a risk compute, a run).
  for (const id of Object.keys(state.map.getStyle().sources)) {
    const source = state.map.getSource(id);
    if (source && source.type === "vector" && source.url) source.setUrl(source.url);
  }
}, 500);
function followStream() {
  if (!cleared("important")) return;
  const url = () => (state.streamCursor ? `/api/stream?since=${encodeURIComponent(state.streamCursor)}` : "/api/stream");
  follow("stream", url, (events) => {
    for (const { event, id, data } of events) {
      if (id) state.streamCursor = id;
      if (event === "alert") { state.streamed = (state.streamed || 0) + 1; refreshAlerts(); }
      else if (event === "task") { state.streamed = (state.streamed || 0) + 1; refreshCard(); }
      else if (event === "tiles") {
        // the first tiles event of a stream is the current versions: only a change is a bump
        const known = state.tileVersions;
        if (known && Object.entries(data).some(([layer, v]) => known[layer] !== v)) refreshTiles();
        state.tileVersions = { ...(known || {}), ...data };
      }
    }
  }, () => { state.streamCursor = null; refreshAlerts(); refreshCard(); });
}

// ----------------------------------------------------------------------------- time slider
// The slider's values are instants (ms since 1970): from the first recorded change to now. Off
// its right end the map shows the twin as it stood then (/api/history: alerts open then with
// their status then, sensors' readings then); at the right end it is live again.
async function setupTimeSlider() {
  const slider = $("#time-slider");
  if (!cleared("important")) { slider.disabled = true; return; }
  const { span } = await api("/api/history?limit=1");
  const now = Date.now();
  const first = span.first ? Date.parse(span.first) : now - 6 * 3600e3;
  slider.min = String(Math.min(first, now - 3600e3));
  slider.max = String(now);
  slider.value = String(now);
  const show = debounced(() => showTime(Number(slider.value)).catch(console.warn), 200);
  slider.addEventListener("input", show);
  $("#time-live").addEventListener("click", () => { slider.value = slider.max; showTime(Number(slider.max)); });
}
async function showTime(ms) {
  const slider = $("#time-slider");
  const label = $("#time-label");
  if (ms >= Number(slider.max)) {
    state.historyAt = null;
    label.textContent = "live";
    label.dataset.at = "";
    $("#time-live").hidden = true;
    await Promise.all([loadAlerts(), loadSensors().catch(console.warn)]);
    return;
  }
  const at = new Date(ms).toISOString();
  state.historyAt = at;
  const past = await api(`/api/history?at=${encodeURIComponent(at)}`);
  if (state.historyAt !== at) return; // the slider moved on meanwhile
  label.textContent = new Date(ms).toLocaleString();
  label.dataset.at = at;
  $("#time-live").hidden = false;
  drawAlerts(past.alerts);
  if (state.sensors) {
    const seen = new Map(past.readings.map((r) => [r.datastream, r]));
    for (const [id, f] of state.sensors) {
      const r = seen.get(id);
      Object.assign(f.properties, { value: r ? r.value : null, time: r ? r.observed_at : null, fresh: false });
    }
    drawSensors();
  }
}

async function runStorm(event) {
  event.preventDefault();
  const button = $("#run-storm");
  const bar = $("#storm-progress");
  const label = $("#storm-state");
  button.disabled = true;
  bar.hidden = false;
  bar.value = 0;
  try {
    const run = await api("/api/simulations/flood", { method: "POST", body: {
      return_period_years: Number($("#storm-years").value),
      duration_min: Number($("#storm-duration").value),
      after_min: Number($("#storm-after").value),
    } });
    label.textContent = `run #${run.id} ${run.status}`;
    label.dataset.run = run.id;
    let now = run;
    while (!["succeeded", "failed"].includes(now.status)) {
      await new Promise((ok) => setTimeout(ok, 700));
      now = await api(`/api/simulations/${run.id}`);
      bar.value = now.progress || 0;
      label.textContent = `run #${run.id} ${now.status} ${Math.round((now.progress || 0) * 100)}%`;
    }
    label.dataset.status = now.status;
    if (now.status === "failed") throw new Error(`run #${run.id} failed: ${now.error}`);
    label.textContent = `run #${run.id} succeeded: max depth ${fmt(now.summary.max_depth_m, 2)} m, ${fmt(now.summary.flooded_area_m2)} m² flooded`;
    await loadRuns();
    $("#flood-run").value = String(run.id);
    showFlood();
    await Promise.all([loadAlerts(), loadRiskLayers()]);
  } catch (err) {
    label.textContent = err.message;
    say(err.message, true);
  } finally {
    button.disabled = !state.me.can_run_simulations;
  }
}

// ----------------------------------------------------------------------------- grid worker
function pickCell(e) {
  if (state.mode !== "grid") return;
  const hits = state.map.queryRenderedFeatures(e.point, { layers: ["cells-fill"] });
  if (hits.length) openCard(hits[0].properties.h3);
}

async function openCard(h3, message) {
  state.selected = h3;
  state.map.setFilter("cells-selected", ["==", ["get", "h3"], h3]);
  const card = $("#card");
  card.hidden = false;
  card.dataset.h3 = h3;
  card.dataset.loaded = "";
  try {
    state.card = await api(`/api/cells/${h3}`);
  } catch (err) {
    card.replaceChildren(el("p", { class: "msg error" }, `${h3}: ${err.message}`));
    card.dataset.loaded = "error";
    return;
  }
  renderCard(state.card, message);
  card.dataset.loaded = "yes";
}

function countCell(field, value) {
  const hidden = value === null && PEOPLE_FIELDS.has(field);
  return el("td", { class: "num", dataset: { field, value: JSON.stringify(value ?? null) },
    title: hidden ? "hidden: fewer than k people" : undefined }, hidden ? "< k" : fmt(value, 1));
}

function renderCard(c, message) {
  const cell = c.cell;
  const rows = CARD_FIELDS.filter(([f]) => f in cell).map(([f, label]) => el("tr", {}, el("td", {}, label), countCell(f, cell[f])));
  const risks = c.risks.map((r) => el("li", {}, el("span", { class: `lvl ${r.level}` }, r.level), ` ${r.title}`,
    r.score === null ? " (score hidden)" : ` · ${fmt(r.score, 0)}`));
  const events = c.open_events.map((ev) => el("li", {}, `${ev.type} · severity ${ev.severity} · ${ev.status} · ${(ev.occurred_at || "").slice(0, 10)}`));
  const buildings = c.buildings.slice(0, 10).map((b) => el("li", {}, `#${b.id} ${b.use} · ${fmt(b.height_m, 0)} m · ${fmt(b.floors)} floors`));
  const patch = c.tasks.area;
  $("#card").replaceChildren(
      el("h3", {}, `Cell ${cell.h3}`, el("span", { class: "count" }, ` res ${cell.res}`)),
      el("div", { class: "areas" }, c.areas.map((a) => `${a.name} (${a.level})`).join(" › ")),
      message ? el("p", { class: "msg", id: "card-msg" }, message) : el("p", { class: "msg", id: "card-msg" }),
      el("table", { class: "counts" }, rows),
      el("h3", {}, "Risks"), risks.length ? el("ul", {}, risks) : el("p", { class: "hint" }, "not scored yet"),
      el("h3", {}, `Tasks of ${patch ? patch.name : "the patch"}`, el("span", { class: "count" }, ` (${c.tasks.total})`)),
      c.withheld.includes("tasks") ? el("p", { class: "hint" }, "Sign in to see the tasks.")
        : c.tasks.tasks.length ? el("div", {}, c.tasks.tasks.map(renderTask)) : el("p", { class: "hint" }, "no open tasks"),
      el("h3", {}, "Open events", el("span", { class: "count" }, ` (${c.withheld.includes("open_events") ? cell.events_open : c.open_events.length})`)),
      c.withheld.includes("open_events") ? el("p", { class: "hint" }, "Sign in to see the events.")
        : events.length ? el("ul", {}, events) : el("p", { class: "hint" }, "none"),
      el("h3", {}, "Buildings", el("span", { class: "count" }, ` (${c.buildings.length})`)),
    buildings.length ? el("ul", {}, buildings) : el("p", { class: "hint" }, "none"),
  );
}

function renderTask(t) {
  const note = el("input", { type: "text", placeholder: "note (needed to reject)", "aria-label": "note" });
  const moves = (t.next_states || []).filter((s) => s !== "reassigned").map((s) =>
    el("button", { type: "button", dataset: { task: t.id, state: s }, onclick: () => moveTask(t, s, note.value) }, s.replace("_", " ")));
  if ((t.next_states || []).includes("reassigned")) {
    moves.push(el("button", { type: "button", dataset: { task: t.id, escalate: "1" }, onclick: () => moveTask(t, null, note.value) }, "escalate"));
  }
  for (const b of moves) { // a viewer sees the tasks of its patch but may not move them
    b.disabled = !state.me.can_operate;
    if (b.disabled) b.title = "needs the operator role";
  }
  return el("div", { class: "task", dataset: { task: t.id, taskState: t.state } },
    el("div", {}, `#${t.id} `, el("span", { class: "state" }, t.state.replace("_", " ")), ` · P${t.priority} · `, t.title),
    el("div", { class: "hint" }, `due ${(t.due_at || "").slice(0, 16).replace("T", " ")}`, t.overdue ? el("span", { class: "late" }, " · overdue") : ""),
    moves, moves.length ? note : "");
}

async function moveTask(task, to, note) {
  const body = to ? { state: to } : { escalate: true };
  if (note) body.note = note;
  try {
    const done = await api(`/api/tasks/${task.id}`, { method: "PATCH", body });
    await openCard(state.selected, `Task #${task.id}: ${task.state} → ${done.state}${to ? "" : ` (to ${done.area?.name})`}`);
  } catch (err) {
    const msg = $("#card-msg");
    if (msg) { msg.textContent = `Task #${task.id}: ${err.message}`; msg.classList.add("error"); }
  }
}

async function search(event) {
  event.preventDefault();
  const q = $("#search").value.trim();
  if (!q) return;
  const list = $("#search-results");
  try {
    const { addresses } = await api(`/api/addresses?q=${encodeURIComponent(q)}&limit=10`);
    list.replaceChildren(...(addresses.length ? addresses.map((a) => el("li", { onclick: () => {
      state.map.jumpTo({ center: [a.lon, a.lat], zoom: Math.max(state.map.getZoom(), 15) });
      if (a.h3) openCard(a.h3);
    } }, a.text)) : [el("li", {}, "no match")]));
  } catch (err) {
    list.replaceChildren(el("li", { class: "msg error" }, err.message));
  }
}

// ----------------------------------------------------------------------------- modes
function setMode(mode) {
  if (!MODES.includes(mode)) mode = "planner";
  state.mode = mode;
  document.body.dataset.mode = mode;
  for (const b of document.querySelectorAll("#modes button")) b.setAttribute("aria-pressed", String(b.dataset.mode === mode));
  for (const s of document.querySelectorAll("[data-panel]")) s.hidden = s.dataset.panel !== mode;
  const url = new URL(location.href);
  url.searchParams.set("mode", mode);
  history.replaceState(null, "", url);
  state.map.jumpTo({ pitch: PITCH[mode], bearing: mode === "planner" ? -20 : 0 });
  applyVisibility();
}

async function signIn(event) {
  event.preventDefault();
  const value = $("#token").value.trim();
  if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
  location.reload(); // every source and list again, as the new caller
}

async function showWho() {
  try {
    state.me = await api("/api/me");
    if (token()) {
      const me = state.me;
      $("#who").textContent = `${me.name} · ${me.role}${me.scope.length ? ` · ${me.scope.join(", ")}` : ""}`;
      $("#sign-in").textContent = "Switch";
    }
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.me = await api("/api/me");
    say(`sign-in failed: ${err.message}`, true);
  }
  if (!token()) $("#who").textContent = "public";
  const storm = $("#run-storm");
  storm.disabled = !state.me.can_run_simulations;
  storm.title = storm.disabled ? "Running a storm needs the analyst role: sign in" : "";
}

async function start() {
  tokenFromLink();
  const params = new URLSearchParams(location.search);
  $("#token-form").addEventListener("submit", signIn);
  await showWho();
  const city = await api("/tiles/admin_areas.json");
  const [x0, y0, x1, y1] = city.bounds;
  const center = params.get("center") ? params.get("center").split(",").map(Number) : null;
  const map = new maplibregl.Map({
    container: "map", style: baseStyle(), attributionControl: false,
    bounds: center ? undefined : [[x0, y0], [x1, y1]], fitBoundsOptions: { padding: 20 },
    center: center || undefined, zoom: params.get("zoom") ? Number(params.get("zoom")) : undefined,
    canvasContextAttributes: { preserveDrawingBuffer: true }, // so screenshots read the canvas
    // Tiles and TileJSON of this server carry the token too (scoped layers, private caching).
    transformRequest: (url) => (url.startsWith(location.origin) && token() ? { url, headers: authHeaders() } : { url }),
  });
  state.map = map;
  map.addControl(new maplibregl.NavigationControl({ visualizePitch: true }), "top-right");
  map.addControl(new maplibregl.ScaleControl(), "bottom-left");
  await new Promise((ok) => map.once("load", ok));
  legend("#use-legend", Object.entries(USE_COLORS).map(([use, color]) => [color, use]));
  legend("#depth-legend", DEPTH_STOPS.map(([d, color]) => [color, `≥ ${d} m`]));
  legend("#traffic-legend", [...Object.entries(BAND_COLORS).map(([b, color]) => [color, b]), ["#000000", "closed"]]);
  columnPaint($("#column-metric").value);
  setMode(params.get("mode"));
  await Promise.all([loadRuns(), loadRiskLayers(), loadAlerts(), loadSensors().catch(console.warn)]);
  followStream();
  setupTimeSlider().catch(console.warn);
  pickLatest("#flood-run");
  pickLatest("#traffic-run");
  pickLatest("#run-a");
  showFlood();
  showTraffic();
  renderCompare();

  for (const b of document.querySelectorAll("#modes button")) b.addEventListener("click", () => setMode(b.dataset.mode));
  for (const id of ["#show-buildings", "#show-parcels", "#show-columns"]) $(id).addEventListener("change", applyVisibility);
  $("#column-metric").addEventListener("change", (e) => columnPaint(e.target.value));
  $("#run-a").addEventListener("change", renderCompare);
  $("#run-b").addEventListener("change", renderCompare);
  $("#risk-layer").addEventListener("change", showRisk);
  $("#flood-run").addEventListener("change", showFlood);
  $("#traffic-run").addEventListener("change", showTraffic);
  $("#storm-form").addEventListener("submit", runStorm);
  $("#search-form").addEventListener("submit", search);
  map.on("click", pickCell);
  map.on("click", "sensors-circle", (e) => {
    const p = e.features[0].properties;
    new maplibregl.Popup().setLngLat(e.lngLat)
      .setText(`${p.name}: ${p.value ?? "no reading"} ${p.unit} ${p.time ?? ""}`).addTo(map);
  });
  for (const id of ["cells-fill", "alerts-circle", "sensors-circle"]) {
    map.on("mouseenter", id, () => { map.getCanvas().style.cursor = "pointer"; });
    map.on("mouseleave", id, () => { map.getCanvas().style.cursor = ""; });
  }
  map.on("click", "alerts-circle", (e) => {
    const p = e.features[0].properties;
    new maplibregl.Popup().setLngLat(e.lngLat).setText(p.message).addTo(map);
  });
  say("ready");
  document.body.dataset.ready = "yes";
}

// The same tab given a sign-in link: a fragment change does not reload the page by itself.
window.addEventListener("hashchange", () => {
  if (/(?:^#|&)token=/.test(location.hash)) { tokenFromLink(); location.reload(); }
});
start().catch((err) => { say(err.message, true); console.error(err); });
