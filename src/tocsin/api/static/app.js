// tocsin dashboard: plain JS over the JSON API, no build step. Polls /v1/stats every second.
"use strict";

const KEY_STORAGE = "tocsin.apiKey";
const state = { timer: null, role: null, cursor: null, filters: {}, words: null };
// what the pipeline calls its things (GET /v1/vocabulary): until it answers, the generic words
const GENERIC_WORDS = { entity: "entity", entities: "entities", label: "label", labels: "labels", events: "events", metrics: [] };
const $ = (sel, root = document) => root.querySelector(sel);

function apiKey() { return localStorage.getItem(KEY_STORAGE) || ""; }

async function api(path, options = {}) {
  const headers = Object.assign({ "Content-Type": "application/json" }, options.headers || {});
  if (apiKey()) headers["X-API-Key"] = apiKey();
  // same-origin, not the page's no-referrer: a browser following the Fetch spec to the letter would send
  // "Origin: null" with a POST under no-referrer, which a server without auth refuses as cross-origin
  const response = await fetch(path, Object.assign({ referrerPolicy: "same-origin" }, options, { headers }));
  if (response.status === 401) { showLogin(true); throw new Error("unauthorized"); }
  if (!response.ok) {
    let detail = response.statusText;
    try { const body = await response.json(); detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail); } catch (e) { /* not JSON */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response.status === 204 ? null : response.json();
}

// "{entity}", "{Entities}", "{events}"… in the pipeline's words (hosts, cards, readings)
function words(template) {
  const w = state.words || GENERIC_WORDS;
  return template.replace(/\{(\w+)\}/g, (all, name) => {
    const word = w[name.toLowerCase()];
    if (typeof word !== "string") return all;
    return name[0] === name[0].toUpperCase() ? word[0].toUpperCase() + word.slice(1) : word;
  });
}
// every element with a data-words template says it in the pipeline's words
function applyWords(root = document) { root.querySelectorAll("[data-words]").forEach(el => { el.textContent = words(el.dataset.words); }); }

async function loadWords() {
  if (state.words) return;
  try { state.words = await api("/v1/vocabulary"); } catch (e) { return; }
  document.title = `tocsin — ${state.words.pipeline}: live anomalies`;
  applyWords();
}

function showLogin(visible) { $("#login").classList.toggle("hidden", !visible); $("#view").classList.toggle("hidden", visible); }
// fmtTime, fmtNum and toDate come from format.js (never throw on a time Date cannot hold)
function esc(s) { return String(s ?? "").replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c])); }
function why(explanation) { return (explanation || []).map(e => e.text).join("; "); }
function pulse() { const dot = $("#live"); dot.classList.add("on"); setTimeout(() => dot.classList.remove("on"), 400); }

function alertRow(a) {
  return `<tr data-alert-id="${esc(a.id)}">
    <td>${a.id}</td><td>${fmtTime(a.event_time)}</td><td>${esc(a.entity)}</td>
    <td class="sev ${a.severity}">${a.severity}</td><td>${fmtNum(a.score * 100, 2)}</td>
    <td class="status ${a.status}" data-testid="status-${a.id}">${a.status}</td><td>${esc(why(a.explanation))}</td></tr>`;
}

function mount(templateId) {
  if (state.timer) { clearInterval(state.timer); state.timer = null; }
  const view = $("#view");
  view.replaceChildren($(templateId).content.cloneNode(true));
  applyWords(view);
  return view;
}

function every(ms, fn) { fn(); state.timer = setInterval(fn, ms); }

// --- overview ------------------------------------------------------------------------------
function renderOverview() {
  const view = mount("#tpl-overview");
  let plotted = false;
  every(1000, async () => {
    let stats;
    try { stats = await api("/v1/stats"); } catch (e) { return; }
    pulse();
    $('[data-testid="events-total"]', view).textContent = fmtNum(stats.events);
    $('[data-testid="events-per-s"]', view).textContent = fmtNum(stats.events_per_s, 1);
    $('[data-testid="anomaly-rate"]', view).textContent = fmtNum(stats.anomaly_rate * 100, 2) + " %";
    $('[data-testid="anomalies-total"]', view).textContent = fmtNum(stats.anomalies);
    $('[data-testid="alerts-warning"]', view).textContent = fmtNum(stats.alerts_by_severity.warning || 0);
    $('[data-testid="alerts-critical"]', view).textContent = fmtNum(stats.alerts_by_severity.critical || 0);
    const s = stats.alerts_by_status;
    $('[data-testid="alerts-status"]', view).textContent = `${fmtNum(s.open || 0)} / ${fmtNum(s.acknowledged || 0)} / ${fmtNum(s.resolved || 0)}`;
    $('[data-testid="model-status"]', view).textContent = stats.model_status === "warm" ? "scoring live" : "warming up";
    const x = stats.series.map(p => toDate(p.t));
    const traces = [
      { x, y: stats.series.map(p => p.events), name: words("{events}/s"), type: "scatter", mode: "lines", line: { color: "#2563eb" } },
      { x, y: stats.series.map(p => p.anomalies), name: "anomalies/s", type: "bar", yaxis: "y2", marker: { color: "#dc2626" } },
    ];
    const layout = { margin: { t: 24, r: 50, b: 36, l: 50 }, legend: { orientation: "h" }, yaxis: { title: words("{events}/s") },
      yaxis2: { title: "anomalies/s", overlaying: "y", side: "right" }, title: { text: words("{events} and anomalies per second"), font: { size: 13 } } };
    if (window.Plotly) { (plotted ? Plotly.react : Plotly.newPlot)("rate-chart", traces, layout, { displayModeBar: false, responsive: true }); plotted = true; }
    try {
      const latest = await api("/v1/alerts?limit=8");
      $('[data-testid="latest-alerts"]', view).innerHTML = latest.items.map(alertRow).join("");
    } catch (e) { /* shown on next tick */ }
  });
}

// --- alerts list ---------------------------------------------------------------------------
function alertsQuery(cursor) {
  const params = new URLSearchParams({ limit: "50" });
  for (const [k, v] of Object.entries(state.filters)) if (v) params.append(k, v);
  if (cursor) params.set("cursor", cursor);
  return "/v1/alerts?" + params.toString();
}

function renderAlerts() {
  const view = mount("#tpl-alerts");
  const form = $("#alert-filters", view);
  for (const [k, v] of Object.entries(state.filters)) if (form.elements[k]) form.elements[k].value = v;
  const load = async (append) => {
    const page = await api(alertsQuery(append ? state.cursor : null));
    const body = $('[data-testid="alerts-rows"]', view);
    body.innerHTML = (append ? body.innerHTML : "") + page.items.map(alertRow).join("");
    state.cursor = page.next_cursor;
    $("#more", view).classList.toggle("hidden", !page.next_cursor);
    pulse();
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    state.filters = { severity: form.elements.severity.value, status: form.elements.status.value, entity: form.elements.entity.value.trim() };
    load(false);
  });
  $("#more", view).addEventListener("click", () => load(true));
  every(3000, () => { if (!state.cursor || !$("#more", view).offsetParent) load(false).catch(() => {}); });
}

// --- one alert ------------------------------------------------------------------------------
const anomalies = (n) => `${fmtNum(n)} ${n === 1 ? "anomaly" : "anomalies"}`;

async function renderAlert(id) {
  const view = mount("#tpl-alert");
  const alert = await api(`/v1/alerts/${id}`);
  const show = (a) => {
    $('[data-testid="alert-id"]', view).textContent = a.id;
    $('[data-testid="alert-entity"]', view).innerHTML = `<a href="#/entities/${encodeURIComponent(a.entity)}">${esc(a.entity)}</a>`;
    const status = $('[data-testid="alert-status"]', view);
    status.textContent = a.status; status.className = `value small status ${a.status}`;
    $('[data-testid="alert-severity"]', view).innerHTML = `<span class="sev ${a.severity}">${a.severity}</span>`;
    $('[data-testid="alert-score"]', view).textContent = fmtNum(a.score * 100, 2);
    $('[data-testid="alert-time"]', view).textContent = fmtTime(a.event_time);
    $('[data-testid="alert-explanation"]', view).innerHTML = (a.explanation || []).map(e => e.feature === "supervised"
      ? `<li class="supervised" data-testid="supervised-part">${esc(e.text)}</li>`  // what labels added to the score
      : `<li>${esc(e.text)} <span class="muted">(${esc(e.feature)}, contribution ${fmtNum(e.contribution, 3)})</span></li>`).join("") || "<li class='muted'>no explanation</li>";
    $('[data-testid="alert-mutes"]', view).innerHTML = (a.mutes || []).map(m =>
      `<li class="mute">muted by ${esc(m.author || "unknown")}: ${esc(m.entity)} ${m.pattern ? `with pattern ${esc(m.pattern)}` : "(every pattern)"}` +
      ` until ${fmtTime(m.until)}${m.lifted_at ? ` — lifted by ${esc(m.lifted_by || "unknown")} at ${fmtTime(m.lifted_at)}` : ""}</li>`).join("");
  };
  const verdicts = (a) => {
    $('[data-testid="alert-verdicts"]', view).textContent = (a.verdicts || []).length
      ? "verdicts: " + a.verdicts.map(v => `${v.label.replace("_", " ")} by ${v.author || "unknown"} on ${anomalies(v.anomalies)} (${fmtTime(v.created_at)})`).join("; ")
      : "no verdict yet";
  };
  show(alert);
  verdicts(alert);
  const canAct = state.role === "analyst" || state.role === "admin";
  view.querySelectorAll("[data-action]").forEach(button => {
    button.disabled = !canAct;
    if (!canAct) button.title = "needs the analyst role";
    button.addEventListener("click", async () => {
      const action = button.dataset.action, result = $('[data-testid="action-result"]', view);
      try {
        if (action === "ack" || action === "resolve") {
          show(await api(`/v1/alerts/${id}/${action}`, { method: "POST" }));
          result.textContent = action === "ack" ? "acknowledged" : "resolved";
        } else {
          const days = $('[data-testid="mute-days"]', view).value;
          const body = { alert_id: alert.id, label: action };
          if (days && action === "false_positive") body.mute = { days: Number(days), scope: $('[data-testid="mute-scope"]', view).value };
          const answer = await api("/v1/feedback", { method: "POST", body: JSON.stringify(body) });
          const current = await api(`/v1/alerts/${id}`);
          show(current);
          verdicts(current);
          result.textContent = `feedback recorded: ${action.replace("_", " ")} on ${anomalies(answer.anomalies)}` +
            (answer.mute ? `, muted until ${fmtTime(answer.mute.until)}` : "");
        }
      } catch (e) { result.textContent = e.message; }
    });
  });
  try {
    const entity = await api(`/v1/entities/${encodeURIComponent(alert.entity)}`);
    plotEntity("entity-chart", entity, alert.first_event_id);
  } catch (e) { $("#entity-chart", view).textContent = words("no recent {events} of this {entity} in this service: ") + e.message; }
}

function plotEntity(elementId, entity, highlightId) {
  if (entity.metrics && entity.metrics.length) return plotMetrics($("#" + elementId), entity, highlightId);
  const events = entity.recent_events;
  const numeric = events.length ? Object.keys(events[0].values).find(k => typeof events[0].values[k] === "number") : null;
  const y = events.map(e => numeric ? e.values[numeric] : e.score_100);
  const x = events.map(e => toDate(e.event_time));
  const flagged = events.map((e, i) => i).filter(i => events[i].is_anomaly);
  const traces = [
    { x, y, name: numeric || "score", type: "scatter", mode: "lines+markers", marker: { size: 6, color: events.map(e => e.score_100 ?? 0), colorscale: "Bluered", cmin: 0, cmax: 100 },
      text: events.map(e => `${e.event_id}<br>score ${e.score_100 ?? "warming up"}`) },
    { x: flagged.map(i => x[i]), y: flagged.map(i => y[i]), name: "anomaly", type: "scatter", mode: "markers",
      marker: { symbol: "x", size: 13, color: "#dc2626", line: { width: 2 } }, text: flagged.map(i => events[i].event_id) },
  ];
  const hi = events.findIndex(e => e.event_id === highlightId);
  if (hi >= 0) traces.push({ x: [x[hi]], y: [y[hi]], name: "this alert", type: "scatter", mode: "markers", marker: { size: 18, color: "rgba(0,0,0,0)", line: { color: "#111827", width: 2 } } });
  const layout = { margin: { t: 28, r: 20, b: 36, l: 50 }, legend: { orientation: "h" }, yaxis: { title: numeric || "score" },
    title: { text: `${entity.key}: ` + words(`last ${events.length} {events} (anomalies marked ✕)`), font: { size: 13 } } };
  if (window.Plotly) Plotly.newPlot(elementId, traces, layout, { displayModeBar: false, responsive: true });
}

const SEVERITY_COLOR = { info: "#0891b2", warning: "#d97706", critical: "#dc2626" };

// the entity's silences (anomalies with no event) as [from, to] epoch seconds, reminders of one silence merged
function silences(entity) {
  const spans = new Map();
  for (const a of entity.anomalies || []) {
    if (a.detector !== "silence" || !a.explanation || !a.explanation.length) continue;
    const since = a.event_time - (a.explanation[0].value || 0);
    spans.set(since, Math.max(spans.get(since) ?? since, a.event_time));
  }
  return [...spans].map(([since, until]) => ({ since, until }));
}

// A series pipeline's entity: one chart per metric, as people read Grafana: the readings, the band its series model
// expected (expected ± 2σ), the anomalies it explains (✕, by severity), silences shaded, this alert's reading ringed.
function plotMetrics(container, entity, highlightId) {
  container.classList.remove("chart");
  container.classList.add("metrics");
  const charts = entity.metrics.map(m => {
    const div = document.createElement("div");
    div.className = "chart metric";
    div.dataset.metric = m.metric;
    div.dataset.testid = "metric-plot";
    return div;
  });
  container.replaceChildren(...charts);
  if (!window.Plotly) return;
  const hi = entity.recent_events.findIndex(e => e.event_id === highlightId);
  const first = entity.metrics.length ? entity.metrics[0].times[0] : null;
  const quiet = silences(entity).filter(s => first == null || s.until >= first);
  entity.metrics.forEach((m, n) => {
    const x = m.times.map(toDate);
    const traces = [
      { x, y: m.low, name: "usual low", type: "scatter", mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false },
      { x, y: m.high, name: "usual: expected ± 2σ", type: "scatter", mode: "lines", fill: "tonexty", fillcolor: "rgba(37,99,235,0.15)",
        line: { width: 0 }, hoverinfo: "skip" },
      { x, y: m.expected, name: "expected", type: "scatter", mode: "lines", line: { color: "#2563eb", width: 1, dash: "dot" },
        text: m.sigma.map(s => `σ ${fmtNum(s, 2)}`), hovertemplate: "expected %{y:.4g} (%{text})<extra></extra>" },
      { x, y: m.values, name: m.metric, type: "scatter", mode: "lines", line: { color: "#111827", width: 1.5 },
        hovertemplate: `${m.metric} %{y:.4g}<extra>%{x}</extra>` },
      { x: m.anomalies.map(a => toDate(a.event_time)), y: m.anomalies.map(a => a.value), name: "anomaly", type: "scatter", mode: "markers",
        marker: { symbol: "x", size: 12, color: m.anomalies.map(a => SEVERITY_COLOR[a.severity] || "#dc2626"), line: { width: 2 } },
        text: m.anomalies.map(a => `${esc(a.why || "anomaly")}<br>${a.severity || ""} · score ${fmtNum(a.score_100, 2)}`),
        hovertemplate: "%{text}<extra></extra>" },
    ];
    if (hi >= 0) traces.push({ x: [x[hi]], y: [m.values[hi]], name: "this alert", type: "scatter", mode: "markers",
      marker: { size: 18, color: "rgba(0,0,0,0)", line: { color: "#111827", width: 2 } } });
    const shapes = quiet.map(s => ({ type: "rect", xref: "x", yref: "paper", x0: toDate(s.since), x1: toDate(s.until), y0: 0, y1: 1,
      fillcolor: "rgba(220,38,38,0.12)", line: { width: 0 } }));
    const annotations = quiet.map(s => ({ x: toDate(s.until), xref: "x", y: 1, yref: "paper", text: "silent", showarrow: false,
      xanchor: "right", font: { size: 10, color: "#dc2626" } }));
    const layout = { margin: { t: 34, r: 20, b: 30, l: 55 }, showlegend: true,
      legend: { orientation: "h", x: 1, xanchor: "right", y: 1.02, yanchor: "bottom", font: { size: 11 } }, yaxis: { title: m.metric }, shapes, annotations,
      title: { text: `${esc(entity.key)}: ${esc(m.metric)}` + (n === 0 ? words(` over its last ${m.times.length} {events}`) : ""),
        x: 0.01, xanchor: "left", font: { size: 13 } } };
    Plotly.newPlot(charts[n], traces, layout, { displayModeBar: false, responsive: true });
  });
}

// --- entities ------------------------------------------------------------------------------
function renderEntities(key) {
  const view = mount("#tpl-entities");
  const form = $("#entity-search", view);
  const show = async (k) => {
    const out = $("#entity-result", view);
    try {
      const entity = await api(`/v1/entities/${encodeURIComponent(k)}`);
      const rows = Object.entries(entity.state).map(([n, v]) => `<tr><td>${esc(n)}</td><td>${fmtNum(v, 3)}</td></tr>`).join("");
      const anomalies = entity.anomalies.map(a => `<tr><td>${fmtTime(a.event_time)}</td><td>${esc(a.event_id)}</td><td class="sev ${a.severity}">${a.severity}</td><td>${fmtNum(a.score_100, 2)}</td><td>${esc(why(a.explanation))}</td></tr>`).join("");
      out.innerHTML = `<h2 data-testid="entity-title">${esc(words("{Entity}"))} ${esc(entity.key)}</h2>
        <div id="entity-plot" class="chart" data-testid="entity-plot"></div>
        <h3>Feature state</h3><table class="list"><tbody>${rows || "<tr><td class='muted'>none</td></tr>"}</tbody></table>
        <h3>Stored anomalies</h3><table class="list"><thead><tr><th>event time</th><th>event</th><th>severity</th><th>score</th><th>why</th></tr></thead><tbody>${anomalies}</tbody></table>`;
      plotEntity("entity-plot", entity, null);
    } catch (e) { out.innerHTML = `<p class="error">${esc(e.message)}</p>`; }
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); const k = form.elements.key.value.trim(); if (k) location.hash = `#/entities/${encodeURIComponent(k)}`; });
  if (key) { form.elements.key.value = key; show(key); }
}

// --- models (admin) --------------------------------------------------------------------------
function modelRow(v, canAct) {
  const aliases = v.aliases.map(a => `<span class="alias ${esc(a)}">${esc(a)}</span>`).join(" ") || "<span class='muted'>–</span>";
  const metrics = Object.entries(v.metrics || {}).map(([k, x]) => `${esc(k)} ${x == null ? "–" : fmtNum(x, 3)}`).join("<br>") || "–";
  const promote = (alias) => `<button data-promote="${alias}" data-version="${v.version}" data-testid="promote-${alias}-${v.version}"` +
    `${canAct && !v.aliases.includes(alias) ? "" : " disabled"}>${alias}</button>`;
  return `<tr data-version="${v.version}"><td>${v.version}</td><td data-testid="aliases-${v.version}">${aliases}</td><td>${esc(v.detector)}</td>
    <td>${fmtTime(v.trained_from)}<br>${fmtTime(v.trained_until)}</td><td>${fmtNum(v.rows)}</td><td>${metrics}</td>
    <td>${fmtTime(v.created_at)}<br><span class="muted">by ${esc(v.created_by)}</span></td><td class="row-actions">${promote("champion")} ${promote("challenger")}</td></tr>`;
}

async function loadComparison(view) {
  const status = $('[data-testid="compare-status"]', view), rows = $('[data-testid="compare-rows"]', view);
  let c;
  try { c = await api("/v1/models/compare"); } catch (e) {
    status.textContent = e.message; rows.innerHTML = ""; return;
  }
  const rate = (x) => x == null ? "–" : fmtNum(x, 3);
  status.textContent = `v${c.challenger} beside champion v${c.champions.join(", v")} over ${fmtNum(c.events)} events; ` +
    `flagged by both: ${fmtNum(c.both_anomalies)}` + (c.overlap == null ? "" : ` (${fmtNum(100 * c.overlap, 1)}% of those either flagged)`);
  $('[data-testid="compare-champion"]', view).textContent = `champion v${c.champion}`;
  $('[data-testid="compare-challenger"]', view).textContent = `challenger v${c.challenger}`;
  rows.innerHTML = [["anomalies", fmtNum(c.champion_anomalies), fmtNum(c.challenger_anomalies)],
    ["precision", rate(c.champion_precision), rate(c.challenger_precision)],
    ["recall", rate(c.champion_recall), rate(c.challenger_recall)]]
    .map(([k, a, b]) => `<tr data-row="${k}"><td>${k}</td><td>${a}</td><td>${b}</td></tr>`).join("");
  const bins = c.champion_scores.map((_, i) => (i + 0.5) / c.champion_scores.length);
  const traces = [{ x: bins, y: c.champion_scores, name: `champion v${c.champion}`, type: "bar", opacity: 0.6 },
    { x: bins, y: c.challenger_scores, name: `challenger v${c.challenger}`, type: "bar", opacity: 0.6 }];
  const layout = { barmode: "overlay", margin: { t: 28, r: 20, b: 36, l: 50 }, legend: { orientation: "h" },
    yaxis: { title: "events", type: "log" }, xaxis: { title: "calibrated score" }, title: { text: "score distributions, same events", font: { size: 13 } } };
  if (window.Plotly) Plotly.react("compare-chart", traces, layout, { displayModeBar: false, responsive: true });
}

async function loadDrift(view) {
  const status = $('[data-testid="drift-status"]', view), rows = $('[data-testid="drift-rows"]', view);
  try {
    const d = await api("/v1/models/drift");
    status.textContent = `model ${d.model_version ? "v" + d.model_version : "fitted by the pipeline"}; a model-drift alert past PSI ` +
      (d.psi_alert == null ? "(off)" : fmtNum(d.psi_alert, 2));
    rows.innerHTML = d.features.map(f => `<tr data-feature="${esc(f.feature)}"><td>${esc(f.feature)}</td><td>${fmtNum(f.psi, 3)}</td>` +
      `<td>${fmtNum(f.ks, 3)}</td><td>${f.drifted ? '<span class="sev warning">drifted</span>' : ""}</td></tr>`).join("") ||
      "<tr><td colspan='4' class='muted'>not enough scored events yet</td></tr>";
  } catch (e) { status.textContent = e.message; }
}

function renderModels() {
  const view = mount("#tpl-models");
  const panel = $("#models-panel", view), result = $('[data-testid="models-result"]', view);
  const canAct = state.role === "admin";
  if (!canAct) {
    panel.querySelectorAll("button").forEach(b => { b.disabled = true; });
    result.textContent = "the models view needs the admin role";
    return;
  }
  const load = async () => {
    try {
      const versions = await api("/v1/models/versions");
      $('[data-testid="models-rows"]', view).innerHTML = versions.map(v => modelRow(v, canAct)).join("") ||
        "<tr><td colspan='8' class='muted'>no versions yet: <code>tocsin train SPEC --data FILE</code> registers one</td></tr>";
      pulse();
    } catch (e) { result.textContent = e.message; }
    await Promise.all([loadComparison(view), loadDrift(view)]);
  };
  // one listener on the panel (a fresh node each time the view mounts), not inline handlers: the CSP runs none
  panel.addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-promote], button[data-rollback]");
    if (!button) return;
    try {
      const moved = button.dataset.promote
        ? await api(`/v1/models/versions/${button.dataset.version}/promote?alias=${button.dataset.promote}`, { method: "POST" })
        : await api(`/v1/models/rollback?alias=${button.dataset.rollback}`, { method: "POST" });
      result.textContent = `${moved.alias} is now version ${moved.version}` + (moved.previous != null ? ` (was ${moved.previous})` : "");
    } catch (err) { result.textContent = err.message; }
    await load();
  });
  every(5000, load);
}

// --- routing -------------------------------------------------------------------------------
async function route() {
  const parts = (location.hash || "#/overview").slice(2).split("/");
  document.querySelectorAll("[data-nav]").forEach(a => a.classList.toggle("active", a.dataset.nav === parts[0]));
  try {
    const me = await api("/v1/whoami");
    state.role = me.role;
    $("#whoami").textContent = `${me.subject} · ${me.role}`;
    showLogin(false);
  } catch (e) { return; }
  await loadWords();
  if (parts[0] === "alerts" && parts[1]) return renderAlert(parts[1]);
  if (parts[0] === "alerts") return renderAlerts();
  if (parts[0] === "entities") return renderEntities(parts[1] ? decodeURIComponent(parts[1]) : null);
  if (parts[0] === "models") return renderModels();
  return renderOverview();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    localStorage.setItem(KEY_STORAGE, $("#api-key").value.trim());
    $("#login-error").textContent = "";
    await route();
    if (!$("#login").classList.contains("hidden")) $("#login-error").textContent = "that key was refused";
  });
  window.addEventListener("hashchange", route);
  // alert rows open their alert (a listener, not inline onclick: the page's CSP runs no inline script)
  document.addEventListener("click", (e) => {
    const row = e.target.closest && e.target.closest("tr[data-alert-id]");
    if (row) location.hash = `#/alerts/${row.dataset.alertId}`;
  });
  route();
});
