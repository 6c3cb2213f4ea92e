// The dashboard: entries table, live-checked KFL filter, entry detail, statistics.
// Plain browser JavaScript talking to the REST API; no framework, no build step.
"use strict";

const PAGE = 100;
const RECENT_KEY = "streamtap.recentQueries";
const $ = (sel) => document.querySelector(sel);

const state = {
  query: "",        // the applied filter
  cursor: null,     // next page of the current listing (null at the end)
  last: null,       // key of the last row shown: new entries are fetched after it
  loading: false,
  selected: null,
  view: "entries",
  storeEntries: -1,
  jobsRunning: false,
};

// ---------- helpers ----------
function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;" })[c]);
}
function api(path, params = {}) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) u.searchParams.set(k, v);
  return u;
}
async function getJSON(path, params) {
  const r = await fetch(api(path, params));
  const body = await r.json();
  if (!r.ok) throw Object.assign(new Error("request failed"), { body, status: r.status });
  return body;
}
function fmtTime(ms) {
  const d = new Date(ms);
  return d.toISOString().replace("T", " ").slice(0, 23);
}
function fmtSize(n) {
  if (n >= 1048576) return (n / 1048576).toFixed(1) + " MB";
  if (n >= 1024) return (n / 1024).toFixed(1) + " kB";
  return n + " B";
}
function endpoint(name, ip, port) {
  const addr = `${ip ?? ""}${port ? ":" + port : ""}`;
  return name
    ? `<span class="name">${esc(name)}</span> <span class="addr">${esc(addr)}</span>`
    : `<span class="name">${esc(addr)}</span>`;
}
function statusClass(row) {
  if (row.protocol === "dns") return row.rcode ? "st-err" : "st-2";
  if (row.status == null) return "";
  return "st-" + Math.floor(row.status / 100);
}

// ---------- recent queries ----------
function recent() {
  try { return JSON.parse(localStorage.getItem(RECENT_KEY) || "[]"); } catch { return []; }
}
function remember(q) {
  if (!q.trim()) return;
  const list = [q, ...recent().filter((x) => x !== q)].slice(0, 10);
  localStorage.setItem(RECENT_KEY, JSON.stringify(list));
  renderRecent();
}
function renderRecent() {
  const list = recent();
  $("#recent").innerHTML = list.map((q) => `<option value="${esc(q)}">`).join("");
  const box = $("#recent-list");
  box.innerHTML = "";
  list.slice(0, 6).forEach((q) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = q;
    b.title = "use this recent query";
    b.onclick = () => { $("#kfl").value = q; apply(); };
    box.append(b);
  });
}

// ---------- KFL live check ----------
let checkTimer = null;
let checkSeq = 0;
async function check(text) {
  const seq = ++checkSeq;
  const r = await fetch("/api/kfl/check", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ query: text }),
  });
  const body = await r.json();
  if (seq !== checkSeq) return null; // a newer keystroke already asked
  showCheck(body);
  return body;
}
function showCheck(body) {
  const input = $("#kfl"), box = $("#kfl-error");
  input.classList.toggle("invalid", !body.ok);
  input.classList.toggle("valid", body.ok && input.value.trim() !== "");
  if (body.ok) { box.hidden = true; box.textContent = ""; return; }
  box.hidden = false;
  box.textContent = body.error.caret;
}

// ---------- entries ----------
function rowHTML(r) {
  const req = r.summary || "";
  const st = r.protocol === "dns" ? r.status_text : (r.status ?? "");
  return `<td>${fmtTime(r.timestamp)}</td>` +
    `<td><span class="proto ${esc(r.abbr)}">${esc(r.abbr)}</span></td>` +
    `<td class="ep">${endpoint(r.src_name, r.src_ip, r.src_port)} → ` +
    `${endpoint(r.dst_name, r.dst_ip, r.dst_port)}</td>` +
    `<td class="req" title="${esc(req)}">${esc(req)}</td>` +
    `<td class="${statusClass(r)}">${esc(st)}</td>` +
    `<td class="num">${r.elapsed ? r.elapsed + " ms" : ""}</td>` +
    `<td class="num">${fmtSize(r.size)}</td>`;
}
function appendRows(rows) {
  const tbody = $("#entries tbody");
  const frag = document.createDocumentFragment();
  for (const r of rows) {
    const tr = document.createElement("tr");
    tr.dataset.id = r.id;
    tr.dataset.stream = r.stream;
    tr.innerHTML = rowHTML(r);
    tr.onclick = () => openEntry(r.id, r.stream, tr);
    frag.append(tr);
  }
  tbody.append(frag);
}
async function loadPage(reset) {
  if (state.loading) return;
  state.loading = true;
  try {
    if (reset) {
      $("#entries tbody").innerHTML = "";
      state.cursor = null;
      state.last = null;
    }
    const page = await getJSON("/api/entries", { q: state.query, cursor: state.cursor, size: PAGE });
    appendRows(page.rows);
    state.cursor = page.cursor;
    state.last = page.last;
    $("#more").hidden = !page.cursor;
  } catch (err) {
    if (err.body && err.body.detail && err.body.detail.caret) showCheck({ ok: false, error: err.body.detail });
  } finally {
    state.loading = false;
  }
}
async function loadNew() {
  // The replay is still filling the store: fetch what arrived after the last row shown.
  if (state.cursor || state.loading) return;
  state.loading = true;
  try {
    const page = await getJSON("/api/entries", { q: state.query, cursor: state.last, size: PAGE });
    appendRows(page.rows);
    state.cursor = page.cursor;
    state.last = page.last;
    $("#more").hidden = !page.cursor;
  } catch { /* a failed poll is retried on the next tick */ } finally {
    state.loading = false;
  }
}
async function loadCount() {
  const el = $("#count");
  el.textContent = "counting…";
  try {
    const c = await getJSON("/api/count", { q: state.query });
    el.textContent = state.query
      ? `${c.count.toLocaleString()} of ${c.total.toLocaleString()} entries match`
      : `${c.total.toLocaleString()} entries`;
  } catch { el.textContent = ""; }
}
async function apply() {
  const text = $("#kfl").value;
  const res = await check(text);
  if (res && !res.ok) return;
  state.query = text;
  remember(text);
  const url = new URL(location.href);
  if (text) url.searchParams.set("q", text); else url.searchParams.delete("q");
  history.replaceState(null, "", url);
  $("#download-matching").href = api("/api/pcap", { q: text || null }).toString();
  closeDetail();
  await loadPage(true);
  loadCount();
  if (state.view === "stats") loadStats();
}

// ---------- detail ----------
function kvTable(obj) {
  const rows = Object.entries(obj || {});
  if (!rows.length) return '<p class="addr">none</p>';
  return `<table class="kv">${rows.map(([k, v]) =>
    `<tr><td>${esc(k)}</td><td>${esc(typeof v === "object" ? JSON.stringify(v) : v)}</td></tr>`).join("")}</table>`;
}
function bodyBlock(text, mime, encoding) {
  if (text == null || text === "") return "";
  let shown = text;
  if (encoding === "base64") {
    try { const raw = atob(text); if (/^[\x09\x0a\x0d\x20-\x7e]*$/.test(raw)) shown = raw; } catch { /* keep */ }
  }
  if (/json/i.test(mime || "") || /^\s*[{[]/.test(shown)) {
    try { shown = JSON.stringify(JSON.parse(shown), null, 2); } catch { /* not JSON after all */ }
  }
  return `<pre class="body">${esc(shown)}</pre>`;
}
function dnsRecords(list) {
  if (!list || !list.length) return '<p class="addr">none</p>';
  return `<table class="kv">${list.map((r) => {
    const { name, type, ttl, class: _c, ...rest } = r;
    const data = Object.values(rest).map((v) => typeof v === "object" ? JSON.stringify(v) : v).join(" ");
    return `<tr><td>${esc(name)} ${esc(type)}</td><td>${ttl !== undefined ? "ttl " + esc(ttl) + " " : ""}${esc(data)}</td></tr>`;
  }).join("")}</table>`;
}
function detailHTML(e) {
  const p = e.protocol || {}, req = e.request || {}, res = e.response;
  let html = "<h3>Overview</h3>" + kvTable({
    id: e.id, stream: e.stream, protocol: `${p.abbr || p.name} ${p.version || ""} over ${p.layer4 || ""}`,
    source: `${e.src?.name || ""} ${e.src?.ip}:${e.src?.port}`,
    destination: `${e.dst?.name || ""} ${e.dst?.ip}:${e.dst?.port}`,
    time: fmtTime(e.timestamp), elapsed: `${e.elapsedTime ?? 0} ms`,
    "request size": e.requestSize, "response size": e.responseSize, node: e.node?.name,
  });
  if (p.name === "dns") {
    html += "<h3>Question</h3>" + kvTable({ opCode: req.opCode, id: req.id });
    html += dnsRecords(req.questions);
    if (res) {
      html += "<h3>Response</h3>" + kvTable({ code: res.code, rcode: res.rcode });
      html += "<h3>Answers</h3>" + dnsRecords(res.answers);
      html += "<h3>Authorities</h3>" + dnsRecords(res.authorities);
      html += "<h3>Additionals</h3>" + dnsRecords(res.additionals);
    } else html += '<h3>Response</h3><p class="addr">no answer seen</p>';
  } else if (req.method) {
    html += `<h3>Request</h3><p><code>${esc(req.method)} ${esc(req.url)} ${esc(req.httpVersion || "")}</code></p>`;
    html += "<h3>Request headers</h3>" + kvTable(req.headers);
    if (req.queryString && Object.keys(req.queryString).length) html += "<h3>Query</h3>" + kvTable(req.queryString);
    if (req.postData) html += "<h3>Request body</h3>" + bodyBlock(req.postData.text, req.postData.mimeType);
    if (res) {
      html += `<h3>Response</h3><p><code>${esc(res.httpVersion || "")} ${esc(res.status)} ${esc(res.statusText || "")}</code></p>`;
      html += "<h3>Response headers</h3>" + kvTable(res.headers);
      const c = res.content || {};
      if (c.text) html += `<h3>Response body (${esc(c.mimeType || "")}, ${fmtSize(c.size || 0)})</h3>` + bodyBlock(c.text, c.mimeType, c.encoding);
    } else html += '<h3>Response</h3><p class="addr">no response seen</p>';
  }
  html += `<h3>Raw entry</h3><pre class="body">${esc(JSON.stringify(e, null, 2))}</pre>`;
  return html;
}
async function openEntry(id, stream, tr) {
  document.querySelectorAll("#entries tr.selected").forEach((x) => x.classList.remove("selected"));
  tr?.classList.add("selected");
  const e = await getJSON(`/api/entries/${encodeURIComponent(id)}`, { q: state.query || null });
  state.selected = id;
  $("#detail-title").textContent = `${e.protocol?.abbr || ""} ${id}`;
  $("#detail-body").innerHTML = detailHTML(e);
  const link = $("#download-stream");
  link.href = `/api/streams/${encodeURIComponent(stream)}/pcap`;
  link.setAttribute("download", `${stream}.pcap`);
  $("#detail").hidden = false;
}
function closeDetail() {
  $("#detail").hidden = true;
  state.selected = null;
  document.querySelectorAll("#entries tr.selected").forEach((x) => x.classList.remove("selected"));
}

// ---------- statistics ----------
async function loadStats() {
  let s;
  try { s = await getJSON("/api/stats", { q: state.query }); } catch { return; }
  Charts.donut($("#chart-protocols"), s.protocols);
  Charts.stacked($("#chart-status"), s.status_over_time, s.buckets);
  Charts.hbars($("#chart-talkers"), s.top_talkers, (t) => t.name, (t) => t.entries,
    (t) => `${t.name}: ${t.entries} entries, ${fmtSize(t.bytes)}`);
  Charts.latency($("#chart-latency"), s.latency_ms);
  Charts.stacked($("#chart-timeline"), s.timeline, s.buckets);
  Charts.serviceMap($("#chart-map"), s.service_map);
}
function show(view) {
  state.view = view;
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.view === view));
  $("#view-entries").hidden = view !== "entries";
  $("#view-stats").hidden = view !== "stats";
  if (view === "stats") loadStats();
}

// ---------- replay progress ----------
async function poll() {
  try {
    const s = await getJSON("/api/status");
    const running = s.jobs.filter((j) => j.state === "running" || j.state === "queued");
    const el = $("#status");
    if (running.length) {
      const j = running[0];
      const pct = j.bytes_total ? Math.round((100 * j.bytes_done) / j.bytes_total) : 0;
      el.innerHTML = `replaying ${j.objects_done}/${j.objects_selected} objects` +
        `<span class="bar"><i style="width:${pct}%"></i></span>${s.entries.toLocaleString()} entries`;
    } else {
      el.textContent = `${s.entries.toLocaleString()} entries · ${s.streams.toLocaleString()} streams`;
    }
    const wasRunning = state.jobsRunning;
    state.jobsRunning = running.length > 0;
    if (s.entries !== state.storeEntries) {
      const first = state.storeEntries < 0;
      state.storeEntries = s.entries;
      if (!first) { loadNew(); loadCount(); }
    }
    if (wasRunning && !state.jobsRunning) {
      // The replay finished: streams close out of time order, so list everything afresh once.
      await loadPage(true);
      loadCount();
      if (state.view === "stats") loadStats();
    }
  } catch { /* the server may be restarting; try again */ }
  setTimeout(poll, state.jobsRunning ? 1000 : 3000);
}

// ---------- wiring ----------
function init() {
  renderRecent();
  const q = new URL(location.href).searchParams.get("q") || "";
  $("#kfl").value = q;
  $("#kfl").addEventListener("input", () => {
    clearTimeout(checkTimer);
    checkTimer = setTimeout(() => check($("#kfl").value), 200);
  });
  $("#filter-form").addEventListener("submit", (ev) => { ev.preventDefault(); apply(); });
  $("#more").onclick = () => loadPage(false);
  $("#table-wrap").addEventListener("scroll", (ev) => {
    const t = ev.target;
    if (state.cursor && t.scrollTop + t.clientHeight > t.scrollHeight - 200) loadPage(false);
  });
  $("#detail-close").onclick = closeDetail;
  document.querySelectorAll(".tab").forEach((t) => (t.onclick = () => show(t.dataset.view)));
  apply();
  poll();
}
init();
