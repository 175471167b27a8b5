// The rock-envs dashboard: polls /dashboard/api/* with the token kept in localStorage.
"use strict";

const KEY = "rock-envs-token";
const TICK_MS = 1000;
const esc = Charts.esc;
const view = { job: null, jobLog: "", jobOffset: 0, jobSandbox: null, filesPath: ".", frames: {} };
let last = null; // the previous overview, for rates

function token() { return localStorage.getItem(KEY); }

function showLogin(message) {
  document.getElementById("login").hidden = false;
  document.getElementById("logout").hidden = true;
  if (message !== undefined) document.getElementById("login-error").textContent = message;
  document.getElementById("token").focus();
}

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: "Bearer " + token() }, cache: "no-store" });
  if (response.status === 401) {
    localStorage.removeItem(KEY);
    throw new AuthError("That token was refused (401): paste the token the server printed.");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).error.message; } catch (e) { /* not JSON */ }
    throw new Error(`${path}: ${response.status} ${detail}`);
  }
  return response;
}

class AuthError extends Error {}

const fmt = {
  secs(s) {
    if (s === null || s === undefined) return "–";
    s = Math.max(0, s);
    if (s < 60) return s.toFixed(0) + " s";
    if (s < 3600) return (s / 60).toFixed(1) + " min";
    return (s / 3600).toFixed(1) + " h";
  },
  bytes(b) {
    if (b === null || b === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
    return b.toFixed(i ? 1 : 0) + " " + units[i];
  },
  num(v) { return v === null || v === undefined ? "–" : Charts.format(v); },
};

function card(label, value, id) {
  return `<div class="card"><div class="label">${esc(label)}</div><div class="value" id="${id}">${esc(value)}</div></div>`;
}

function table(headers, rows, rowAttrs) {
  const head = headers.map((h) => `<th>${esc(h)}</th>`).join("");
  const body = rows.map((cells, k) => `<tr ${rowAttrs ? rowAttrs(k) : ""}>${cells.map((c) => `<td>${c}</td>`).join("")}</tr>`);
  return `<table><thead><tr>${head}</tr></thead><tbody>${body.join("") || `<tr><td colspan="${headers.length}" class="muted">none</td></tr>`}</tbody></table>`;
}

function sample(o) {
  const t = o.time;
  const s = o.stats;
  Charts.add("running", t, s.running);
  Charts.add("pending", t, o.model.pending);
  if (last) {
    const dt = t - last.time;
    if (dt > 0) {
      Charts.add("creates", t, (o.creates.count - last.creates.count) / dt);
      Charts.add("frames", t, (o.relay.frames_in - last.relay.frames_in) / dt);
      const n = o.exec.count - last.exec.count;
      Charts.add("exec", t, n > 0 ? ((o.exec.sum - last.exec.sum) / n) * 1000 : 0);
    }
  }
  last = o;
}

function overview(o) {
  const s = o.stats;
  const pools = o.pools.map((p) => [esc(p.name), p.size, p.ready, p.starting, p.claimed, p.claims, p.misses]);
  return `<h2>Overview</h2>
    <div class="cards">
      ${card("running", s.running, "running")}${card("starting", s.starting, "starting")}
      ${card("pooled", s.pooled, "pooled")}${card("dead", s.dead, "dead")}
      ${card("waiting to start", s.waiting_to_start, "waiting")}${card("TTL reaped", s.ttl_reaped, "reaped")}
      ${card("model calls pending", o.model.pending, "model-pending")}${card("env workers", o.relay.channels, "channels")}
      ${card("GEM envs", o.gem_envs, "gem-envs")}
    </div>
    <div class="charts">
      ${Charts.svg("running", "sandboxes running")}${Charts.svg("creates", "creates/s")}
      ${Charts.svg("exec", "exec latency", "ms")}${Charts.svg("pending", "model calls pending")}
      ${Charts.svg("frames", "env steps/s (frames to workers)")}
    </div>
    <h3>Warm pools</h3>
    ${table(["pool", "size", "ready", "starting", "claimed", "claims (hit)", "misses"], pools)}`;
}

function sandboxes(data) {
  const rows = data.sandboxes.map((r) => [
    `<code>${esc(r.id)}</code>`, esc(r.state), esc(r.runtime), esc(r.image), fmt.secs(r.age), fmt.secs(r.idle),
    fmt.secs(r.ttl_left), r.cpu === null ? "–" : r.cpu.toFixed(2) + " s", fmt.bytes(r.memory), fmt.num(r.pids),
    fmt.num(r.sessions), fmt.num(r.jobs),
  ]);
  const attrs = (k) => `class="link" data-sandbox="${esc(data.sandboxes[k].id)}"`;
  return `<h2>Sandboxes <span class="muted">(${data.total})</span></h2>
    ${table(["id", "state", "runtime", "image", "age", "idle", "TTL left", "CPU", "memory", "pids", "sessions", "jobs"], rows, attrs)}`;
}

async function sandbox(sid) {
  const d = await (await api("/dashboard/api/sandboxes/" + encodeURIComponent(sid))).json();
  if (view.job && view.jobSandbox === sid) {
    const q = `?stream=stdout&offset=${view.jobOffset}`;
    const logs = await (await api(`/sandboxes/${encodeURIComponent(sid)}/jobs/${encodeURIComponent(view.job)}/logs${q}`)).json();
    view.jobLog += logs.data;
    view.jobOffset = logs.next_offset;
  }
  const r = d.sandbox;
  const procs = d.processes.map((p) => [esc(p.pid), `<code>${esc(p.command)}</code>`]);
  const cmds = d.commands.map((c) => [`<code>${esc(c.cmd)}</code>`, c.timed_out ? '<span class="error">timed out</span>' : (c.exit_code === 0 ? `<span class="ok">0</span>` : `<span class="error">${esc(c.exit_code)}</span>`), (c.seconds * 1000).toFixed(0) + " ms"]);
  const jobs = d.jobs.map((j) => [`<a href="#sandbox/${esc(sid)}" data-job="${esc(j.job_id)}">${esc(j.job_id)}</a>`, `<code>${esc(j.command)}</code>`, esc(j.status), fmt.num(j.exit_code)]);
  const files = d.files.map((f) => [esc(f.name), esc(f.type), fmt.bytes(f.size)]);
  const log = view.job && view.jobSandbox === sid ? `<h3>Job ${esc(view.job)}: live log</h3><pre id="job-log">${esc(view.jobLog)}</pre>` : "";
  return `<h2>Sandbox <code>${esc(sid)}</code> <span class="muted">${esc(r.state)}, ${esc(r.runtime)}</span></h2>
    <div class="cards">${card("age", fmt.secs(r.age), "age")}${card("idle", fmt.secs(r.idle), "idle")}${card("TTL left", fmt.secs(r.ttl_left), "ttl")}
      ${card("CPU", r.cpu === null ? "–" : r.cpu.toFixed(2) + " s", "cpu")}${card("memory", fmt.bytes(r.memory), "memory")}${card("pids", fmt.num(r.pids), "pids")}</div>
    <div class="grid2"><div><h3>Processes</h3>${table(["pid", "command"], procs)}</div>
      <div><h3>Recent commands</h3>${table(["command", "exit", "took"], cmds)}</div></div>
    <h3>Jobs</h3>${table(["job", "command", "status", "exit"], jobs)}${log}
    <h3>Files</h3>${table(["name", "type", "size"], files)}`;
}

function model(data) {
  const rows = data.sandboxes.map((b) => [
    `<code>${esc(b.sandbox_id)}</code>${b.live ? "" : ' <span class="muted">(stopped)</span>'}`, esc(b.mode || "–"), b.calls, b.waiting,
    `<button type="button" data-jsonl="${esc(b.sandbox_id)}">trajectory .jsonl</button>`,
  ]);
  const calls = data.sandboxes.flatMap((b) => b.recent.map((c) => [
    `<code>${esc(b.sandbox_id)}</code> #${c.index}`, esc(c.status),
    `<code>${esc(lastMessage(c.request))}</code>`, c.answer === null ? `<span class="error">${esc(c.error ? c.error.message : "–")}</span>` : `<code>${esc(c.answer)}</code>`,
    c.seconds === null ? "–" : (c.seconds * 1000).toFixed(0) + " ms",
  ]));
  return `<h2>ModelService <span class="muted">${data.pending} pending, ${data.unclaimed} not taken by a trainer</span></h2>
    ${table(["sandbox", "mode", "calls", "waiting", ""], rows)}
    <h3>Calls</h3>${table(["call", "status", "request (last message)", "answer", "took"], calls)}`;
}

function lastMessage(request) {
  if (request.messages && request.messages.length) return String(request.messages[request.messages.length - 1].content);
  return String(request.prompt || "");
}

function workers(data) {
  const rows = data.channels.map((c) => [`<code>${esc(c.sandbox_id)}</code>`, fmt.num(c.envs === null ? null : Number(c.envs)), c.frames_in, c.frames_out, `<span data-restarts="${esc(c.key)}">${c.restarts}</span>`, fmt.secs(c.seconds)]);
  const r = data.relay;
  return `<h2>Env workers</h2>
    <div class="cards">${card("workers", r.channels, "workers")}${card("frames to workers", r.frames_in, "frames-in")}
      ${card("frames to clients", r.frames_out, "frames-out")}${card("bytes routed", fmt.bytes(r.bytes_in + r.bytes_out), "bytes")}
      ${card("restarts", r.restarts, "restarts")}</div>
    ${Charts.svg("frames", "steps/s (frames to workers)")}
    <h3>Workers</h3>${table(["sandbox", "envs", "frames in", "frames out", "restarts", "open for"], rows)}`;
}

function envs(data, workers) {
  if (!data.envs.length && !workers.channels.length) return `<h2>Live env</h2><p class="muted">No env is hosted here yet: make one over GEM's wire (<code>POST /apis/v1/envs/gem/make</code>) or a vector env with <code>backend="remote"</code>.</p>`;
  const cards = data.envs.map((e) => {
    const o = e.observation;
    let shown = '<p class="muted">not reset yet</p>';
    if (o.kind === "text") shown = `<pre class="obs">${esc(o.text)}</pre>`;
    if (e.board) shown = `<pre class="board">${esc(e.board)}</pre><div class="label">last observation</div>` + shown;
    if (o.kind === "image") shown = `<canvas class="frame" width="${o.width}" height="${o.height}" data-frame="${esc(e.id)}"></canvas>`;
    return `<div class="card env" data-env="${esc(e.id)}"><div class="label">${esc(e.env_id)} · <code>${esc(e.id)}</code> · step ${e.steps} · reward ${fmt.num(e.reward)}</div>${shown}</div>`;
  });
  const frames = workers.channels.map((c) => {
    const url = view.frames[c.key];
    const shown = url ? `<img class="frame" alt="frame of worker ${esc(c.key)}" src="${url}" data-worker-frame="${esc(c.key)}">`
      : '<p class="muted">no frame yet: its envs need <code>render_mode="rgb_array"</code>, and it draws one after its next step</p>';
    return `<div class="card env" data-worker="${esc(c.key)}"><div class="label">env worker · <code>${esc(c.sandbox_id)}</code> · its first env</div>${shown}</div>`;
  });
  return `<h2>Live env</h2><div class="envs">${cards.join("")}${frames.join("")}</div>`;
}

async function fetchFrames(workers) {
  const open = new Set(workers.channels.map((c) => c.key));
  for (const key of Object.keys(view.frames)) if (!open.has(key)) { URL.revokeObjectURL(view.frames[key]); delete view.frames[key]; }
  await Promise.all(workers.channels.map(async (c) => {
    const response = await api(`/dashboard/api/workers/${encodeURIComponent(c.key)}/frame`);
    if (response.status !== 200) return;
    const before = view.frames[c.key];
    view.frames[c.key] = URL.createObjectURL(await response.blob());
    if (before) URL.revokeObjectURL(before);
  }));
}

function paintFrames(data) {
  for (const e of data.envs) {
    const canvas = document.querySelector(`canvas[data-frame="${CSS.escape(e.id)}"]`);
    if (!canvas) continue;
    const o = e.observation, image = canvas.getContext("2d").createImageData(o.width, o.height);
    o.pixels.forEach((row, y) => row.forEach((px, x) => { const k = 4 * (y * o.width + x); image.data.set([px[0], px[1], px[2], 255], k); }));
    canvas.getContext("2d").putImageData(image, 0, 0);
    canvas.style.width = Math.max(256, o.width) + "px";
  }
}

async function render() {
  const page = (location.hash || "#overview").slice(1);
  const [name, arg] = page.split("/");
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === (name === "sandbox" ? "sandboxes" : name)));
  const o = await (await api("/dashboard/api/overview")).json();
  sample(o);
  let html;
  if (name === "sandboxes") html = sandboxes(await (await api("/dashboard/api/sandboxes")).json());
  else if (name === "sandbox" && arg) html = await sandbox(decodeURIComponent(arg));
  else if (name === "model") html = model(await (await api("/dashboard/api/model")).json());
  else if (name === "workers") html = workers(await (await api("/dashboard/api/workers")).json());
  else if (name === "envs") {
    const data = await (await api("/dashboard/api/envs")).json();
    const open = await (await api("/dashboard/api/workers")).json();
    await fetchFrames(open);
    document.getElementById("main").innerHTML = envs(data, open);
    paintFrames(data);
    return;
  } else html = overview(o);
  document.getElementById("main").innerHTML = html;
}

async function tick() {
  if (!token()) return showLogin();
  try {
    await render();
    document.getElementById("status").textContent = "updated " + new Date().toLocaleTimeString();
    document.getElementById("logout").hidden = false;
  } catch (e) {
    if (e instanceof AuthError) showLogin(e.message);
    else document.getElementById("status").textContent = String(e.message || e);
  }
}

async function downloadJsonl(sid) {
  const text = await (await api(`/model/trajectories/${encodeURIComponent(sid)}?format=jsonl`)).text();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type: "application/x-ndjson" }));
  link.download = sid + ".jsonl";
  link.click();
  URL.revokeObjectURL(link.href);
}

document.getElementById("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  localStorage.setItem(KEY, document.getElementById("token").value.trim());
  document.getElementById("token").value = "";
  document.getElementById("login").hidden = true;
  tick();
});
document.getElementById("logout").addEventListener("click", () => { localStorage.removeItem(KEY); showLogin(); });
document.getElementById("main").addEventListener("click", (event) => {
  const row = event.target.closest("[data-sandbox]");
  if (row) { location.hash = "#sandbox/" + encodeURIComponent(row.dataset.sandbox); return; }
  const job = event.target.closest("[data-job]");
  if (job) { event.preventDefault(); view.job = job.dataset.job; view.jobSandbox = decodeURIComponent(location.hash.split("/")[1]); view.jobLog = ""; view.jobOffset = 0; tick(); return; }
  const jsonl = event.target.closest("[data-jsonl]");
  if (jsonl) downloadJsonl(jsonl.dataset.jsonl).catch((e) => { document.getElementById("status").textContent = String(e.message); });
});
window.addEventListener("hashchange", tick);
tick();
setInterval(tick, TICK_MS);
