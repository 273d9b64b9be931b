// convnetpy dashboard: server-sent events for the run, polling for snapshots; drawn here.
"use strict";
const token = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);
let steps = [], history = [], version = 0, layers = [], exampleSize = [1, 1];

function fmt(v, d = 4) { return v === null || v === undefined ? "-" : (+v).toPrecision(d); }
function pct(v) { return v === null || v === undefined ? "-" : (100 * v).toFixed(2) + "%"; }

function bars(el, top) {
  el.innerHTML = "";
  for (const t of top) {
    const row = document.createElement("div");
    row.className = "bar";
    row.innerHTML = `<span></span><div><div class="fill"></div></div><span></span>`;
    row.children[0].textContent = t.class;
    row.children[1].firstChild.style.width = (100 * t.p).toFixed(1) + "%";
    row.children[2].textContent = (100 * t.p).toFixed(1) + "%";
    el.appendChild(row);
  }
}

function chart(canvas, series) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, P = 34;
  ctx.clearRect(0, 0, W, H);
  const pts = series.flatMap((s) => s.points);
  if (!pts.length) return;
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 - y0 < 1e-9) { y0 -= 0.5; y1 += 0.5; }
  ctx.strokeStyle = "#2c313b"; ctx.strokeRect(P, 6, W - P - 6, H - P);
  ctx.fillStyle = "#9aa3b2"; ctx.font = "11px system-ui";
  ctx.fillText(y1.toPrecision(3), 2, 14); ctx.fillText(y0.toPrecision(3), 2, H - P + 4);
  ctx.fillText("step " + x1, W - 70, H - 10);
  const X = (x) => P + (x - x0) / (x1 - x0) * (W - P - 6);
  const Y = (y) => 6 + (1 - (y - y0) / (y1 - y0)) * (H - P);
  for (const s of series) {
    ctx.strokeStyle = s.color; ctx.fillStyle = s.color; ctx.lineWidth = s.dots ? 2 : 1;
    ctx.beginPath();
    s.points.forEach((p, i) => (i ? ctx.lineTo(X(p[0]), Y(p[1])) : ctx.moveTo(X(p[0]), Y(p[1]))));
    ctx.stroke();
    if (s.dots) for (const p of s.points) { ctx.beginPath(); ctx.arc(X(p[0]), Y(p[1]), 3, 0, 7); ctx.fill(); }
  }
}

function smooth(points, k = 20, most = 600) {
  // running mean over k steps, then at most `most` points to draw
  const out = [];
  let acc = 0;
  points.forEach((p, i) => {
    acc += p[1];
    if (i >= k) acc -= points[i - k][1];
    out.push([p[0], acc / Math.min(i + 1, k)]);
  });
  const every = Math.ceil(out.length / most);
  return every > 1 ? out.filter((_, i) => i % every === 0 || i === out.length - 1) : out;
}

function drawRun(st) {
  const status = $("status");
  status.textContent = st.status; status.className = "pill " + st.status;
  $("pause").textContent = st.paused ? "Resume" : "Pause";
  const changed = st.steps.length > 0 || st.history.length !== history.length;
  steps = steps.concat(st.steps).slice(-5000);
  history = st.history;
  const last = steps[steps.length - 1];
  if (last) {
    $("n-step").textContent = last.step; $("n-loss").textContent = fmt(last.loss);
    $("n-acc").textContent = pct(last.acc); $("n-ips").textContent = Math.round(last.img_s);
    $("n-ms").textContent = last.ms.toFixed(1); $("n-lr").textContent = fmt(last.lr, 3);
    if (document.activeElement !== $("lr")) $("lr").value = fmt(last.lr, 3);
  }
  const ev = history[history.length - 1];
  if (ev) { $("n-val").textContent = pct(ev.val_acc); $("progress").textContent = `epoch ${ev.epoch}`; }
  drawHealth(st.health, st.health_warnings || []);
  if (st.version !== version) loadSnapshot();
  if (!changed) return;
  const xs = (k) => steps.map((s) => [s.step, s[k]]);
  const ep = (k) => history.map((h) => [h.step, h[k]]);
  chart($("loss-chart"), [{ points: smooth(xs("loss")), color: "#4c9be8" },
                          { points: ep("val_loss"), color: "#f0754e", dots: true }]);
  chart($("acc-chart"), [{ points: smooth(xs("acc")), color: "#4c9be8" },
                         { points: ep("val_acc"), color: "#f0754e", dots: true }]);
}

const esc = (t) => String(t).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

function drawHealth(h, warnings) {  // the latest health record and every warning so far
  const ul = $("health-warnings");
  if (ul.children.length !== warnings.length) {
    ul.innerHTML = "";
    for (const w of warnings) {
      const li = document.createElement("li");
      li.textContent = `step ${w.step}: ${w.message}`;
      ul.appendChild(li);
    }
  }
  if (!h) return;
  const e = (v, d = 2) => (v === null || v === undefined ? "-" : (+v).toExponential(d));
  let html = `step ${h.step}` + (h.init ? `; first loss ${fmt(h.init.loss, 3)} against ln(${h.init.num_classes}) = ${fmt(h.init.chance_loss, 3)}` : "");
  html += "<table><tr><th>layer</th><th>update/param (healthy ~1e-3)</th><th>grad norm</th><th>param norm</th></tr>";
  for (const L of h.layers) html += `<tr><td>${esc(L.layer)}</td><td>${e(L.ratio)}</td><td>${e(L.grad_norm)}</td><td>${e(L.param_norm)}</td></tr>`;
  html += "</table>";
  if (h.activations.length) {
    html += "<table><tr><th>activation</th><th>dead units</th><th>mean</th><th>std</th></tr>";
    for (const A of h.activations) html += `<tr><td>${esc(A.layer)} ${esc(A.type)}</td><td>${A.dead === null ? "-" : pct(A.dead)}</td><td>${fmt(A.mean, 3)}</td><td>${fmt(A.std, 3)}</td></tr>`;
    html += "</table>";
  }
  $("health-table").innerHTML = html;
}

async function loadSnapshot() {
  const snap = await (await fetch("/api/snapshot")).json();
  if (!snap.version || snap.version === version) return;
  version = snap.version;
  if (snap.error) { $("ex-name").textContent = "snapshot failed: " + snap.error; return; }
  if (!$("ex-name").textContent.startsWith(snap.example.name)) {  // a new example: old unit is stale
    $("unit").textContent = "Click a unit of an activation map to see the input window it sees and the dot product that made it.";
    drawRF(null);
    $("upload-msg").textContent = "";
  }
  $("ex-img").src = snap.example.image; $("ex-name").textContent = `${snap.example.name} (step ${snap.step})`;
  exampleSize = snap.example.size;
  bars($("ex-top"), snap.example.top);
  drawWhy(snap.explain);
  layers = snap.layers;
  drawLayers();
  drawPreds(snap.predictions || []);
}

function drawWhy(why) {  // saliency and Grad-CAM of the predicted class over the example
  for (const [key, label] of [["saliency", "saliency |d score/d pixel|"], ["gradcam", "Grad-CAM"]]) {
    const w = why[key], img = $("why-" + key), cap = $("why-" + key + "-cap");
    img.hidden = !w.image;
    if (w.image) img.src = w.image;
    cap.textContent = w.error ? w.error
      : `${label}${w.layer ? " on " + w.layer : ""} for "${why.target}" (max ${fmt(w.max, 3)})`;
  }
}

function layerText(L) {
  const s = L.stats, g = (v) => (v === null ? "-" : fmt(v, 3));
  return `<b>${L.kind}</b> <span>${L.path}</span><br>
      output ${L.shape.join("x")}<br>params ${L.params.toLocaleString()}
      ${L.param_formula ? "<br>" + L.param_formula : ""}
      ${L.formula.length ? "<br>" + L.formula.join("<br>") : ""}
      <br>activations min ${g(s.min)} max ${g(s.max)} mean ${g(s.mean)}
      <br>gradients min ${g(s.grad_min)} max ${g(s.grad_max)} mean ${g(s.grad_mean)}`;
}

const PICS = [["act", "activations"], ["grad", "activation gradients"], ["filters", "filters"],
              ["weight_grad", "weight gradients"]];
let cards = [];  // per layer: {meta, imgs: {key: img}}, reused while the layers stay the same

function drawLayers() {
  const same = cards.length === layers.length && layers.every((L, i) => cards[i].path === L.path);
  if (!same) buildLayers();
  layers.forEach((L, i) => {  // in place: new text and pictures, no new elements
    cards[i].meta.innerHTML = layerText(L);
    for (const [key] of PICS) if (L[key] && cards[i].imgs[key]) cards[i].imgs[key].src = L[key];
  });
}

function buildLayers() {
  const root = $("layers");
  root.innerHTML = "";
  cards = layers.map((L) => {
    const card = document.createElement("div");
    card.className = "card layer";
    card.innerHTML = `<div class="meta"></div><div class="pics"></div>`;
    const pics = card.querySelector(".pics"), imgs = {};
    for (const [key, label] of PICS) {
      if (!L[key]) continue;
      const d = document.createElement("div");
      d.innerHTML = `<span>${label}</span><img>`;
      imgs[key] = d.querySelector("img");
      pics.appendChild(d);
    }
    if (imgs.act && L.spatial) {
      imgs.act.className = "act";
      imgs.act.addEventListener("click", (e) => clickUnit(layers[L.index], imgs.act, e));
    }
    root.appendChild(card);
    return { path: L.path, meta: card.querySelector(".meta"), imgs };
  });
}

async function clickUnit(L, img, e) {
  const r = img.getBoundingClientRect(), G = L.act_grid;
  const px = (e.clientX - r.left) * img.naturalWidth / r.width;
  const py = (e.clientY - r.top) * img.naturalHeight / r.height;
  const tw = G.w * G.scale + G.gap, th = G.h * G.scale + G.gap;
  const c = Math.floor(py / th) * G.cols + Math.floor(px / tw);
  const y = Math.floor((py % th) / G.scale), x = Math.floor((px % tw) / G.scale);
  if (y >= G.h || x >= G.w) return;
  const res = await fetch(`/api/unit?layer=${L.index}&c=${c}&y=${y}&x=${x}`);
  const u = await res.json();
  const box = $("unit");
  if (!res.ok) { box.textContent = u.error; return; }
  let html = `<b>${u.kind} ${u.layer}</b>, channel ${c}, row ${y}, column ${x}: value ${fmt(u.value)}`;
  if (u.input_window) html += `<br>sees input rows ${u.input_window.rows[0]}..${u.input_window.rows[1] - 1}, columns ${u.input_window.cols[0]}..${u.input_window.cols[1] - 1} (receptive field ${u.input_window.size.join("x")})`;
  const table = (m, win) => "<table>" + m.map((row, i) => "<tr>" + row.map((v, j) =>
    `<td class="${win && win[0] === i && win[1] === j ? "win" : ""}">${v === null ? "pad" : fmt(v, 3)}</td>`).join("") + "</tr>").join("") + "</table>";
  if (u.weights) {
    const shown = Math.min(3, u.window.length);
    for (let k = 0; k < shown; k++)
      html += `<br>input channel ${k}: window${table(u.window[k])}weights${table(u.weights[k])}`;
    if (u.window.length > shown) html += `(channels ${shown}..${u.window.length - 1} not shown)<br>`;
    html += `sum over all channels of window x weights = ${fmt(u.dot)}, + bias ${fmt(u.bias)} = <b>${fmt(u.total)}</b>`;
    if (u.relu !== undefined) html += `, then ReLU: max(0, ${fmt(u.total)}) = <b>${fmt(u.relu)}</b>`;
  } else if (u.winner) {
    html += `<br>pooling window; the winner is highlighted${table(u.window, u.winner)}`;
  }
  box.innerHTML = html;
  drawRF(u.input_window);
}

function drawRF(w) {
  const img = $("ex-img"), cv = $("rf");
  cv.width = img.clientWidth; cv.height = img.clientHeight;
  const ctx = cv.getContext("2d");
  ctx.clearRect(0, 0, cv.width, cv.height);
  if (!w) return;
  const sy = cv.height / exampleSize[0], sx = cv.width / exampleSize[1];
  ctx.strokeStyle = "#ffd84d"; ctx.lineWidth = 2;
  ctx.strokeRect(w.cols[0] * sx, w.rows[0] * sy, (w.cols[1] - w.cols[0]) * sx, (w.rows[1] - w.rows[0]) * sy);
}

function drawPreds(preds) {
  const root = $("preds");
  root.innerHTML = "";
  for (const p of preds) {
    const d = document.createElement("div");
    d.className = "pred " + (p.label === null ? "" : p.correct ? "ok" : "bad");
    d.innerHTML = `<img><div>${p.label === null ? "" : (p.correct ? "&#10003; " : "&#10007; ") + p.label}</div><div class="bars"></div>`;
    d.querySelector("img").src = p.image;
    bars(d.querySelector(".bars"), p.top);
    root.appendChild(d);
  }
}

async function drawClasses() {
  $("classes-msg").textContent = "drawing (a few seconds)...";
  const [ok, r] = await post("/api/class_images", "", "application/json");
  if (!ok) { $("classes-msg").textContent = r.error; return; }
  $("classes-msg").textContent = `${r.steps} ascent steps on the weights of step ${r.step}`;
  const root = $("class-images");
  root.innerHTML = "";
  for (const c of r.images) {
    const d = document.createElement("div");
    d.className = "pred";
    d.innerHTML = `<img><div><b></b><br>score ${fmt(c.score, 3)}<br>p ${pct(c.p)}</div>`;
    d.querySelector("img").src = c.image;
    d.querySelector("b").textContent = c.class;
    root.appendChild(d);
  }
}

async function post(path, body, type) {
  const res = await fetch(path, { method: "POST", body, headers: { "X-Token": token, "Content-Type": type } });
  return [res.ok, await res.json()];
}

$("pause").addEventListener("click", () =>
  post("/api/control", JSON.stringify({ action: $("pause").textContent === "Pause" ? "pause" : "resume" }), "application/json"));
$("setlr").addEventListener("click", async () => {
  const [ok, r] = await post("/api/control", JSON.stringify({ action: "lr", lr: +$("lr").value }), "application/json");
  if (!ok) alert(r.error);
});
$("draw-classes").addEventListener("click", drawClasses);
$("upload").addEventListener("change", async (e) => {
  const f = e.target.files[0];
  if (!f) return;
  const [ok, r] = await post("/api/upload", f, f.type || "application/octet-stream");
  $("upload-msg").textContent = ok ? "classified; the layer panels follow shortly" : r.error;
  if (ok) bars($("ex-top"), r.top.slice(0, 3));
});

fetch("/api/summary").then((r) => r.json()).then((s) => { $("summary").textContent = s.summary; });
const events = new EventSource("/api/events");
events.onmessage = (e) => drawRun(JSON.parse(e.data));
events.onerror = () => { $("status").textContent = "disconnected"; $("status").className = "pill"; };
