// The hotline dashboard: four tabs over the admin API. No framework and no build step;
// charts are drawn as SVG here. Every request goes to this server with the session
// cookie (same origin); the live view comes as Server-Sent Events from /live.
"use strict";

const OUTCOMES = ["self_service", "agent", "abandoned_in_menu", "abandoned_in_queue",
  "callback", "voicemail", "transferred", "failed", "interrupted"];
const TABLES = ["summary", "outcomes", "steps", "reasons", "tags", "queues", "agents",
  "survey", "repeat_callers", "hours"];

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, c =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function secs(s) {
  if (s === null || s === undefined || isNaN(s)) return "–";
  s = Math.max(0, Math.floor(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const two = n => String(n).padStart(2, "0");
  return h ? `${h}:${two(m)}:${two(r)}` : `${m}:${two(r)}`;
}

function pct(v) { return v === null || v === undefined ? "–" : `${Math.round(v * 10) / 10}%`; }

async function api(path, options = {}) {
  const r = await fetch(path, { credentials: "same-origin", ...options });
  if (r.status === 401) { location.reload(); throw new Error("signed out"); }
  const type = r.headers.get("content-type") || "";
  const body = type.startsWith("application/json") ? await r.json() : await r.text();
  if (!r.ok) throw new Error((body && body.error) || `${r.status}`);
  return body;
}

// ---- login page ----------------------------------------------------------------------
if ($("#login")) {
  if (location.search.includes("failed")) $("#failed").hidden = false;
}

// ---- tabs ----------------------------------------------------------------------------
const loaded = {};
function show(tab) {
  if (!$("#" + tab) || !$("#tabs")) return;
  $$("section.tab").forEach(s => { s.hidden = s.id !== tab; });
  $$("#tabs a").forEach(a => a.classList.toggle("active", a.dataset.tab === tab));
  if (!loaded[tab]) {
    loaded[tab] = true;
    ({ flows: loadFlows, reports: loadReport, calls: search })[tab]?.();
  }
}
if ($("#tabs")) {
  window.addEventListener("hashchange", () => show(location.hash.slice(1) || "now"));
  show(location.hash.slice(1) || "now");
}

// ---- Now -----------------------------------------------------------------------------
// The view last received and when, so the clocks on the page tick between views.
let view = null, viewAt = 0, today = {};

function since(s) { return s + (performance.now() - viewAt) / 1000; }

function renderNow() {
  if (!view) return;
  const calls = $("#calls tbody");
  calls.innerHTML = view.calls.map(c => `<tr data-call="${esc(c.call_id)}">
    <td class="caller">${esc(c.caller)}</td><td>${esc(c.current_flow || c.flow)}</td>
    <td class="step">${esc(c.step || "–")}</td><td class="tick" data-base="${c.step_seconds}">${secs(since(c.step_seconds))}</td>
    <td>${esc(c.language || "–")}</td><td class="queue">${esc(c.queue || "")}</td>
    <td class="position">${c.position ?? ""}</td><td class="tick" data-base="${c.elapsed_seconds}">${secs(since(c.elapsed_seconds))}</td></tr>`).join("")
    || `<tr class="empty"><td colspan="8">No calls in progress.</td></tr>`;
  $("#call-count").textContent = view.calls.length;

  if (view.queues_on) {
    $("#queues").innerHTML = view.queues.map(q => {
      const longest = Math.max(0, ...q.waiting.map(w => w.waited_secs));
      const t = today[q.name];
      const sl = t && t.service_level !== null && t.service_level !== undefined
        ? { value: t.service_level * 100, label: "today" }
        : { value: q.stats.service_level_percent, label: "since start" };
      const colour = slColour(sl.value, q.target_percent);
      const states = Object.entries(q.agents_by_state)
        .map(([s, n]) => `<span class="pill ${esc(s)}">${esc(s.replace("_", " "))} ${n}</span>`).join(" ");
      return `<div class="card ${colour}" data-queue="${esc(q.name)}">
        <h3>${esc(q.name)}</h3>
        <div class="figures">
          <div><span class="big waiting">${q.waiting.length}</span><span>waiting</span></div>
          <div><span class="big tick" data-base="${q.waiting.length ? longest : ""}">${q.waiting.length ? secs(since(longest)) : "–"}</span><span>longest wait</span></div>
          <div><span class="big sl">${pct(sl.value)}</span><span>service level ${esc(sl.label)} (target ${q.target_percent}% in ${q.service_level_secs}s)</span></div>
        </div>
        <div class="agents-by-state">${states || '<span class="muted">no agents</span>'}</div>
      </div>`;
    }).join("");
  }

  $("#agents tbody").innerHTML = view.agents.map(a => `<tr data-agent="${esc(a.name)}">
    <td>${esc(a.name)}</td><td><span class="pill state ${esc(a.state)}">${esc(a.state.replace("_", " "))}</span>${a.reason ? ` <span class="muted">${esc(a.reason)}</span>` : ""}</td>
    <td class="tick" data-base="${a.since_secs}">${secs(since(a.since_secs))}</td><td>${esc(a.call || "")}</td><td>${a.answered}</td>
    <td>${a.state === "paused"
      ? `<button class="resume" data-name="${esc(a.name)}">Resume</button>`
      : `<button class="pause" data-name="${esc(a.name)}" ${a.state === "logged_out" ? "disabled" : ""}>Pause</button>`}</td></tr>`).join("")
    || `<tr class="empty"><td colspan="6">No agents.</td></tr>`;
}

function slColour(value, target) {
  if (value === null || value === undefined) return "none";
  if (value >= target) return "green";
  if (value >= target - 10) return "amber";
  return "red";
}

function tick() {
  $$("td.tick, span.tick").forEach(el => {
    if (el.dataset.base !== "") el.textContent = secs(since(parseFloat(el.dataset.base)));
  });
}

async function agentCommand(name, action) {
  const err = $("#agent-error");
  err.hidden = true;
  try {
    await api(`/agents/${encodeURIComponent(name)}/${action}`, { method: "POST" });
  } catch (e) {
    err.textContent = `${name}: ${e.message}`;
    err.hidden = false;
  }
}

// Today's service level per queue from the records (the live figures count since start).
async function loadToday() {
  try {
    const r = await api(`/reports?since=${localDate()}&time_zone=${encodeURIComponent(zone())}`);
    today = Object.fromEntries((r.queues || []).map(q => [q.queue, q]));
    renderNow();
  } catch (_) { /* records off: the live figures stay */ }
}

function connect() {
  const status = $("#status");
  const source = new EventSource("/live");
  source.addEventListener("now", e => {
    view = JSON.parse(e.data);
    viewAt = performance.now();
    status.textContent = "live";
    status.className = "status live";
    renderNow();
  });
  source.onerror = () => { status.textContent = "reconnecting…"; status.className = "status down"; };
}

if ($("#now")) {
  $("#agents").addEventListener("click", e => {
    const b = e.target.closest("button");
    if (b) agentCommand(b.dataset.name, b.classList.contains("pause") ? "pause" : "resume");
  });
  connect();
  loadToday();
  setInterval(tick, 1000);
  setInterval(loadToday, 60000);
}

// ---- Flows ---------------------------------------------------------------------------
function localDate() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}
function zone() { return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; }

let graphs = null, steps = [];

async function loadFlows() {
  graphs = await api("/graphs");
  const pick = $("#flow-pick");
  pick.innerHTML = graphs.flows.map(f => `<option>${esc(f.name)}</option>`).join("");
  pick.onchange = refreshFlow;
  await refreshFlow();
}

// Today's figures again, then the chosen flow with them.
async function refreshFlow() {
  try {
    const r = await api(`/reports?since=${localDate()}&time_zone=${encodeURIComponent(zone())}`);
    steps = r.steps || [];
  } catch (e) {
    $("#flow-note").textContent = `No traffic shown: ${e.message}`;
  }
  drawFlow();
}

function drawFlow() {
  const name = $("#flow-pick").value;
  const g = graphs.flows.find(f => f.name === name);
  if (!g) return;
  const box = $("#flow-graph");
  box.innerHTML = g.svg;
  const mine = new Map(steps.filter(s => s.flow === name).map(s => [s.step, s]));
  const most = Math.max(1, ...Array.from(mine.values()).map(s => s.visits));
  const svg = $("svg", box);
  const NS = "http://www.w3.org/2000/svg";
  $$("g.node", svg).forEach((node, i) => {
    const s = mine.get(g.nodes[i]);
    const rect = $("rect", node);
    if (!s || !rect) return;
    const x = parseFloat(rect.getAttribute("x")), y = parseFloat(rect.getAttribute("y"));
    const w = parseFloat(rect.getAttribute("width")), h = parseFloat(rect.getAttribute("height"));
    // The busier the step, the deeper its blue.
    rect.setAttribute("fill", `rgba(41,128,185,${0.12 + 0.5 * s.visits / most})`);
    const keys = keyShares(s);
    const lines = [`${s.visits} visits · ${s.hangups} hung up`];
    if (s.timeouts || s.invalid) lines.push(`${s.timeouts} timeouts · ${s.invalid} invalid`);
    if (keys) lines.push(keys);
    lines.forEach((line, k) => {
      const t = document.createElementNS(NS, "text");
      t.setAttribute("x", x + w / 2);
      t.setAttribute("y", y + h + 11 + 11 * k);
      t.setAttribute("text-anchor", "middle");
      t.setAttribute("font-size", "10");
      t.setAttribute("class", "traffic");
      t.setAttribute("fill", s.hangups ? "#a93226" : "#1f618d");
      t.textContent = line;
      node.appendChild(t);
    });
  });
  const rows = Array.from(mine.values()).sort((a, b) => b.visits - a.visits);
  $("#funnel tbody").innerHTML = rows.map(s => `<tr><td>${esc(s.step)}</td><td>${s.visits}</td><td>${s.calls}</td>
    <td>${s.hangups}</td><td>${s.timeouts}</td><td>${s.invalid}</td><td>${esc(keyShares(s))}</td></tr>`).join("")
    || `<tr class="empty"><td colspan="7">No calls in this flow today.</td></tr>`;
}

function keyShares(s) {
  const total = Object.values(s.keys || {}).reduce((a, b) => a + b, 0);
  if (!total) return "";
  return Object.entries(s.keys).sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k}: ${Math.round(100 * n / total)}%`).join("  ");
}

// ---- Reports -------------------------------------------------------------------------
function periodQuery() {
  const p = $("#period").value;
  const since = p === "today" ? localDate() : p;
  return `since=${encodeURIComponent(since)}&time_zone=${encodeURIComponent(zone())}`;
}

async function loadReport() {
  $("#period").onchange = loadReport;
  const q = periodQuery();
  let r;
  try {
    r = await api(`/reports?${q}`);
  } catch (e) {
    $("#report-note").textContent = e.message;
    return;
  }
  $("#report-note").textContent = `${r.calls} calls, ${r.in_progress} in progress`;
  $("#chart-hours").innerHTML = stacked(r.hours || []);
  $("#chart-outcomes").innerHTML = bars(OUTCOMES.map(o => [o.replaceAll("_", " "), r.outcomes[o] || 0]));
  $("#chart-reasons").innerHTML = bars((r.tags.reasons || []).map(x => [x.reason, x.calls]));
  $("#chart-sl").innerHTML = bars((r.queues || []).map(x => [x.queue, x.service_level === null ? 0 : Math.round(x.service_level * 1000) / 10]), 100);
  $("#chart-asa").innerHTML = bars((r.queues || []).map(x => [x.queue, Math.round((x.asa_seconds || 0) * 10) / 10]));
  const survey = [["all", r.survey.overall.mean_score || 0]]
    .concat((r.survey.queues || []).map(g => [g.name, g.scores.mean_score || 0]));
  $("#chart-survey").innerHTML = r.survey.overall.responses ? bars(survey.map(([n, v]) => [n, Math.round(v * 100) / 100])) : empty();
  const out = [];
  for (const t of TABLES) {
    const csv = await api(`/reports?${q}&format=csv&table=${t}`);
    out.push(`<h3>${esc(t.replaceAll("_", " "))} <a class="csv" download="${t}.csv" href="/reports?${esc(q)}&amp;format=csv&amp;table=${t}">CSV</a></h3>${csvTable(csv)}`);
  }
  $("#report-tables").innerHTML = out.join("");
}

function csvRows(text) {
  const rows = []; let row = [], cell = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; }
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(cell); cell = ""; }
    else if (c === "\n") { row.push(cell); rows.push(row); row = []; cell = ""; }
    else if (c !== "\r") cell += c;
  }
  if (cell || row.length) { row.push(cell); rows.push(row); }
  return rows;
}

function csvTable(text) {
  const [head, ...rows] = csvRows(text);
  if (!head) return empty();
  return `<table class="report"><thead><tr>${head.map(h => `<th>${esc(h)}</th>`).join("")}</tr></thead>
    <tbody>${rows.map(r => `<tr>${r.map(c => `<td>${esc(c)}</td>`).join("")}</tr>`).join("") || `<tr class="empty"><td colspan="${head.length}">none</td></tr>`}</tbody></table>`;
}

function empty() { return `<p class="muted">No data for this period.</p>`; }

// Horizontal bars, one per [label, value].
function bars(items, max) {
  if (!items.length) return empty();
  const top = max || Math.max(1, ...items.map(i => i[1]));
  const row = 22, left = 150, width = 420, h = items.length * row + 4;
  const parts = items.map(([label, v], i) => {
    const w = Math.max(0, (width - left - 50) * v / top);
    const y = i * row + 2;
    return `<text x="${left - 6}" y="${y + 14}" text-anchor="end" font-size="12">${esc(label)}</text>
      <rect x="${left}" y="${y + 3}" width="${w}" height="14" rx="2" fill="#2e86c1"/>
      <text x="${left + w + 4}" y="${y + 14}" font-size="11" fill="#444">${v}</text>`;
  });
  return `<svg class="chart" viewBox="0 0 ${width} ${h}" width="${width}" height="${h}">${parts.join("")}</svg>`;
}

// Calls per hour: answered (green) under abandoned (red), the rest grey.
function stacked(hours) {
  if (!hours.length) return empty();
  const top = Math.max(1, ...hours.map(h => h.calls));
  const width = 520, height = 180, base = 150, bw = (width - 40) / 24;
  const parts = [];
  for (let hr = 0; hr < 24; hr++) {
    const f = hours.find(h => h.hour === hr) || { calls: 0, answered: 0, abandoned: 0 };
    const x = 30 + hr * bw;
    const scale = v => (base - 10) * v / top;
    const other = Math.max(0, f.calls - f.answered - f.abandoned);
    let y = base;
    for (const [v, colour] of [[f.answered, "#27ae60"], [f.abandoned, "#c0392b"], [other, "#aab7b8"]]) {
      const hgt = scale(v);
      y -= hgt;
      if (hgt > 0) parts.push(`<rect x="${x + 1}" y="${y}" width="${bw - 2}" height="${hgt}"><title>${hr}:00 ${v}</title></rect>`.replace("<rect", `<rect fill="${colour}"`));
    }
    if (hr % 3 === 0) parts.push(`<text x="${x + bw / 2}" y="${base + 14}" font-size="10" text-anchor="middle">${hr}</text>`);
  }
  parts.push(`<text x="4" y="14" font-size="10">${top}</text><line x1="28" y1="${base}" x2="${width - 8}" y2="${base}" stroke="#888"/>`);
  parts.push(`<text x="30" y="${height - 4}" font-size="10" fill="#27ae60">answered</text><text x="100" y="${height - 4}" font-size="10" fill="#c0392b">abandoned</text><text x="170" y="${height - 4}" font-size="10" fill="#7f8c8d">other</text>`);
  return `<svg class="chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}">${parts.join("")}</svg>`;
}

// ---- Calls ---------------------------------------------------------------------------
if ($("#search")) {
  const sel = $("#search select[name=outcome]");
  sel.innerHTML += OUTCOMES.map(o => `<option value="${o}">${o.replaceAll("_", " ")}</option>`).join("");
  $("#search").addEventListener("submit", e => { e.preventDefault(); search(); });
  $("#records").addEventListener("click", e => {
    const tr = e.target.closest("tr[data-call]");
    if (tr) showCall(tr.dataset.call);
  });
}

async function search() {
  const form = new FormData($("#search"));
  const q = new URLSearchParams();
  for (const [k, v] of form) if (String(v).trim()) q.set(k, String(v).trim());
  const body = $("#records tbody");
  try {
    const r = await api(`/records?${q}`);
    body.innerHTML = r.calls.slice().reverse().map(c => `<tr data-call="${esc(c.call_id)}" class="link">
      <td>${esc(c.started_at.replace("T", " ").slice(0, 19))}</td><td>${esc(c.caller)}</td><td>${esc(c.flow)}</td>
      <td>${esc(c.outcome || "in progress")}</td><td>${c.duration_seconds ?? ""}</td><td>${esc(c.queue || "")}</td>
      <td>${esc(c.agent || "")}</td><td>${esc(c.reason || "")}</td><td>${c.recordings || ""}</td></tr>`).join("")
      || `<tr class="empty"><td colspan="9">No calls found.</td></tr>`;
  } catch (e) {
    body.innerHTML = `<tr class="empty"><td colspan="9">${esc(e.message)}</td></tr>`;
  }
}

async function showCall(id) {
  const box = $("#timeline");
  try {
    const t = await api(`/records/${encodeURIComponent(id)}`);
    const c = t.call;
    box.innerHTML = `<h3>Call ${esc(c.call_id)}</h3>
      <p>${esc(c.caller)} → ${esc(c.dialed)}, flow ${esc(c.flow)}, ${esc(c.language)}; ${esc(c.outcome || "in progress")}${c.reason ? `, reason ${esc(c.reason)}` : ""}</p>
      ${t.recordings.map(r => `<p>Recording ${r.index + 1} (${r.duration_seconds}s): <audio controls preload="none" src="${esc(r.url)}"></audio></p>`).join("")}
      <ol class="events">${t.events.map(e => `<li><span class="at">+${e.offset_seconds.toFixed(1)}s</span>
        <span class="kind">${esc(e.kind)}</span> <span class="detail">${esc(detail(e.detail))}</span></li>`).join("")}</ol>`;
  } catch (e) {
    box.innerHTML = `<p class="error">${esc(e.message)}</p>`;
  }
}

function detail(d) {
  if (!d || typeof d !== "object") return String(d ?? "");
  return Object.entries(d).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join("  ");
}
