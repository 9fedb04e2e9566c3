// The ivos web editor: one page over the public HTTP API of `ivos serve` (see README, "Web
// editor"). Image sessions: clicks -> mask. Video sessions: clicks on any frame, several
// objects, propagation as a job (progress over Server-Sent Events, cancel), a timeline of
// per-frame confidence with the suggested frame, corrections on propagated frames (refine),
// exports. The server is the source of truth; this page keeps only what it shows.

import { Api, ApiError, saveBlob } from "./api.js";
import { cutoutPng, decodeRle, maskPng, paintOverlay } from "./masks.js";

const PALETTE = ["#3da5ff", "#ff3d7f", "#ffd23d", "#a45cff", "#3dff8b", "#ff8c3d", "#3dfff2", "#ff3df2", "#b5ff3d"];
const FRAME_CACHE_BYTES = 384 * 2 ** 20; // decoded frames kept (LRU), at most this much memory
const FRAME_CACHE_MAX = 240;
const PREFETCH = 4; // frames fetched ahead of the one shown
const $ = (id) => document.getElementById(id);

const api = new Api();

// ---- state ---------------------------------------------------------------------------------
const S = {
  kind: null, // "video" | "image"
  id: null,
  width: 0,
  height: 0,
  numFrames: 1,
  fps: 25,
  frame: 0,
  objects: [], // [{id, color}]
  selected: 1,
  masks: new Map(), // frame -> Map(obj -> COCO RLE), decoded on demand (maskOf)
  sources: new Map(), // frame -> Map(obj -> "annotated" | "propagated")
  confidence: new Map(), // frame -> Map(obj -> number)
  clicks: new Map(), // "obj:frame" -> [[x, y, label], ...]
  serverObjects: new Set(), // objects the server knows
  job: null, // the last job (its JSON)
  seenFrames: new Set(), // frames propagated by the running job
  suggestion: null, // {frame_idx, obj_id, score}
  propagated: false, // every annotated object has a mask on every frame
  showMask: true,
  busy: new Map(), // what runs -> label
  lastClick: null, // {paint_ms, server_ms, ...}
};

// what tests and the benchmark read (window.ivosEditor)
const metrics = { clicks: [] };
window.ivosEditor = { state: S, metrics, api, ready: false };

// ---- small helpers -------------------------------------------------------------------------
function toast(message, { kind = "error", code = "", timeout = 9000 } = {}) {
  const box = document.createElement("div");
  box.className = `toast ${kind}`;
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  const msg = document.createElement("div");
  msg.className = "msg";
  msg.textContent = message;
  if (code) {
    const c = document.createElement("span");
    c.className = "code";
    c.textContent = code;
    msg.appendChild(c);
  }
  const close = document.createElement("button");
  close.textContent = "✕";
  close.title = "Dismiss";
  close.onclick = () => box.remove();
  box.append(msg, close);
  $("toasts").appendChild(box);
  while ($("toasts").children.length > 4) $("toasts").firstChild.remove();
  if (timeout) setTimeout(() => box.remove(), timeout);
}

function showError(e, what) {
  if (e && e.name === "AbortError") return;
  console.error(what, e);
  if (e instanceof ApiError) {
    toast(`${what}: ${e.readable}`, { code: e.status ? `HTTP ${e.status} · ${e.code}` : e.code });
    if (e.status === 401) openSettings();
  } else {
    toast(`${what}: ${e && e.message ? e.message : e}`);
  }
  status(`${what} failed.`);
}

function status(text) {
  $("status-text").textContent = text;
}

function setBusy(key, label) {
  if (label) S.busy.set(key, label);
  else S.busy.delete(key);
  const labels = [...S.busy.values()];
  $("busy").hidden = labels.length === 0;
  $("busy-text").textContent = labels.join(" · ");
  $("status-running").textContent = labels.length ? `Running: ${labels.join(", ")}` : "Idle";
}

async function busy(key, label, fn) {
  setBusy(key, label);
  try {
    return await fn();
  } finally {
    setBusy(key, null);
  }
}

const jobRunning = () => S.job && (S.job.status === "queued" || S.job.status === "running");
const objectColor = (id) => (S.objects.find((o) => o.id === id) || { color: PALETTE[0] }).color;
const frameMap = (map, frame) => {
  if (!map.has(frame)) map.set(frame, new Map());
  return map.get(frame);
};

// ---- the frame and its overlay --------------------------------------------------------------
const frameCanvas = $("frame-canvas");
const maskCanvas = $("mask-canvas");
const clickCanvas = $("click-canvas");
const frameCache = new Map(); // idx -> Promise<HTMLImageElement>

function frameUrl(idx) {
  return S.kind === "image" ? `/v1/images/${S.id}/image` : `/v1/videos/${S.id}/frames/${idx}/image`;
}

function loadFrame(idx) {
  const key = `${S.id}:${idx}`;
  if (frameCache.has(key)) {
    const p = frameCache.get(key);
    frameCache.delete(key); // LRU: most recent last
    frameCache.set(key, p);
    return p;
  }
  const p = (async () => {
    const response = await api.raw("GET", frameUrl(idx));
    const blob = await response.blob();
    return createImageBitmap(blob);
  })();
  p.catch(() => frameCache.delete(key));
  frameCache.set(key, p);
  const keep = Math.max(8, Math.min(FRAME_CACHE_MAX, Math.floor(FRAME_CACHE_BYTES / (4 * S.width * S.height))));
  while (frameCache.size > keep) {
    const oldest = frameCache.keys().next().value;
    frameCache.get(oldest).then((bitmap) => bitmap.close(), () => {});
    frameCache.delete(oldest);
  }
  return p;
}

function prefetch(idx) {
  for (let k = 1; k <= PREFETCH; k++) {
    if (idx + k < S.numFrames) loadFrame(idx + k).catch(() => {});
  }
}

function layout() {
  if (!S.id) return;
  const stage = $("stage").getBoundingClientRect();
  const pad = 24;
  const scale = Math.min((stage.width - 2 * pad) / S.width, (stage.height - 2 * pad) / S.height);
  const w = Math.max(1, Math.floor(S.width * scale));
  const h = Math.max(1, Math.floor(S.height * scale));
  const box = $("canvas-box");
  box.style.width = `${w}px`;
  box.style.height = `${h}px`;
  const dpr = window.devicePixelRatio || 1;
  clickCanvas.width = Math.round(w * dpr);
  clickCanvas.height = Math.round(h * dpr);
  drawClicks();
  drawTimeline();
}

// zoom and pan: a CSS transform of the canvas box (getBoundingClientRect follows it, so click
// coordinates stay exact at any zoom)
const view = { zoom: 1, tx: 0, ty: 0 };

function applyView() {
  $("canvas-box").style.transform = `translate(${view.tx}px, ${view.ty}px) scale(${view.zoom})`;
  $("canvas-box").style.transformOrigin = "0 0";
  $("zoom-label").textContent = view.zoom === 1 ? "" : `${Math.round(view.zoom * 100)}% · 0 fits`;
}

function resetView0() {
  view.zoom = 1;
  view.tx = 0;
  view.ty = 0;
  applyView();
}

function zoomAt(clientX, clientY, factor) {
  const box = $("canvas-box");
  const rect = box.getBoundingClientRect(); // transformed
  const z = Math.max(1, Math.min(16, view.zoom * factor));
  // keep the image point under the cursor in place
  const px = (clientX - rect.left) / view.zoom, py = (clientY - rect.top) / view.zoom;
  view.tx += px * (view.zoom - z);
  view.ty += py * (view.zoom - z);
  view.zoom = z;
  if (z === 1) {
    view.tx = 0;
    view.ty = 0;
  }
  applyView();
}

let frameToken = 0;
async function showFrame(idx, { fetchMasks = true, user = true } = {}) {
  if (!S.id) return;
  idx = Math.max(0, Math.min(S.numFrames - 1, idx | 0));
  if (user && jobRunning() && idx !== S.frame) $("follow").checked = false; // the person takes over
  S.frame = idx;
  const token = ++frameToken;
  updateFacts();
  drawTimeline();
  drawOverlay();
  drawClicks();
  try {
    const bitmap = await loadFrame(idx);
    if (token !== frameToken) return;
    const ctx = frameCanvas.getContext("2d");
    ctx.drawImage(bitmap, 0, 0);
    frameCanvas.dataset.frame = String(idx);
  } catch (e) {
    if (token === frameToken) showError(e, `Loading frame ${idx + 1}`);
    return;
  }
  if (S.kind === "video") {
    prefetch(idx);
    if (fetchMasks && jobRunning() && !S.masks.has(idx)) refreshFrameMasks(idx).catch(() => {});
  }
}

function visibleMasks(frame) {
  const per = S.masks.get(frame);
  if (!per) return [];
  // the selected object last: drawn on top
  const ids = [...per.keys()].filter((k) => S.objects.some((o) => o.id === k));
  ids.sort((a, b) => (a === S.selected) - (b === S.selected) || a - b);
  return ids.map((k) => ({ mask: maskOf(frame, k), color: objectColor(k) }));
}

function drawOverlay() {
  const ctx = maskCanvas.getContext("2d");
  if (!S.showMask) {
    ctx.clearRect(0, 0, maskCanvas.width, maskCanvas.height);
    maskCanvas.dataset.frame = String(S.frame);
    return;
  }
  const image = ctx.createImageData(S.width, S.height);
  paintOverlay(image, visibleMasks(S.frame));
  ctx.putImageData(image, 0, 0);
  maskCanvas.dataset.frame = String(S.frame);
}

function clicksOf(frame, obj = S.selected) {
  return S.kind === "image" ? S.clicks.get("image") || [] : S.clicks.get(`${obj}:${frame}`) || [];
}

function drawClicks(pending = null) {
  const ctx = clickCanvas.getContext("2d");
  ctx.clearRect(0, 0, clickCanvas.width, clickCanvas.height);
  if (!S.id) return;
  const sx = clickCanvas.width / S.width;
  const sy = clickCanvas.height / S.height;
  const dpr = window.devicePixelRatio || 1;
  const list = [];
  for (const o of S.objects) {
    for (const c of clicksOf(S.frame, o.id)) list.push({ c, own: o.id === S.selected });
    if (S.kind === "image") break;
  }
  if (pending) list.push({ c: pending, own: true, pending: true });
  for (const { c, own, pending: p } of list) {
    const [x, y, label] = c;
    const r = (own ? 6 : 4.5) * dpr;
    ctx.beginPath();
    ctx.arc(x * sx, y * sy, r, 0, Math.PI * 2);
    ctx.fillStyle = label ? "#2ee6a6" : "#ff4d4d";
    ctx.globalAlpha = p ? 0.6 : own ? 1 : 0.55;
    ctx.fill();
    ctx.lineWidth = 2 * dpr;
    ctx.strokeStyle = "#000";
    ctx.stroke();
    ctx.fillStyle = "#000";
    ctx.fillRect(x * sx - 2.5 * dpr, y * sy - 0.75 * dpr, 5 * dpr, 1.5 * dpr);
    if (label) ctx.fillRect(x * sx - 0.75 * dpr, y * sy - 2.5 * dpr, 1.5 * dpr, 5 * dpr);
  }
  ctx.globalAlpha = 1;
}

// ---- timeline -------------------------------------------------------------------------------
const timelineCanvas = $("timeline-canvas");

const CONFIDENCE_RED = 0.75;
function confidenceColor(c) {
  // confidence: 1 - the share of uncertain pixels (0.2 < p < 0.8) in the object; a quarter
  // uncertain (0.75) and below is red, none green
  const t = Math.max(0, Math.min(1, (c - CONFIDENCE_RED) / (1 - CONFIDENCE_RED)));
  return `hsl(${Math.round(t * 130)}, 62%, ${44 + (1 - t) * 6}%)`;
}

function frameConfidence(frame) {
  const per = S.confidence.get(frame);
  const src = S.sources.get(frame);
  if (!per || !per.size) return null;
  let worst = null; // the least confident propagated object; null: none known yet (a running job)
  for (const [k, c] of per) {
    if (src && src.get(k) === "annotated") worst = worst === null ? 1 : worst;
    else if (typeof c === "number") worst = worst === null ? c : Math.min(worst, c);
  }
  return worst;
}

function drawTimeline() {
  if (S.kind !== "video") return;
  const rect = timelineCanvas.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  const W = Math.max(1, Math.round(rect.width * dpr));
  const H = Math.max(1, Math.round(rect.height * dpr));
  if (timelineCanvas.width !== W || timelineCanvas.height !== H) {
    timelineCanvas.width = W;
    timelineCanvas.height = H;
  }
  const ctx = timelineCanvas.getContext("2d");
  ctx.clearRect(0, 0, W, H);
  const n = S.numFrames;
  const top = 9 * dpr, bottom = H - 9 * dpr;
  const cell = W / n;
  for (let i = 0; i < n; i++) {
    const x0 = Math.floor(i * cell), x1 = Math.floor((i + 1) * cell);
    const per = S.masks.get(i);
    let color = "#262c35";
    if (per && per.size) {
      const src = S.sources.get(i);
      const annotated = src && [...src.values()].includes("annotated");
      const c = frameConfidence(i);
      color = c === null ? "#40607a" : annotated && c === 1 ? confidenceColor(1) : confidenceColor(c);
    } else if (S.seenFrames.has(i)) {
      color = "#40607a";
    }
    ctx.fillStyle = color;
    ctx.fillRect(x0, top, Math.max(1, x1 - x0 - (cell > 4 ? 1 : 0)), bottom - top);
  }
  // clicked frames: a triangle above, in the object's colour
  for (const [key, list] of S.clicks) {
    if (!list.length || key === "image") continue;
    const [obj, frame] = key.split(":").map(Number);
    const cx = (frame + 0.5) * cell;
    ctx.fillStyle = objectColor(obj);
    ctx.beginPath();
    ctx.moveTo(cx - 5 * dpr, 0);
    ctx.lineTo(cx + 5 * dpr, 0);
    ctx.lineTo(cx, 8 * dpr);
    ctx.fill();
  }
  if (S.suggestion) {
    const i = S.suggestion.frame_idx;
    const cx = (i + 0.5) * cell;
    ctx.strokeStyle = "#f2b441";
    ctx.lineWidth = 3 * dpr;
    ctx.strokeRect(Math.floor(i * cell) + dpr, top + dpr, Math.max(2 * dpr, cell - 2 * dpr), bottom - top - 2 * dpr);
    ctx.fillStyle = "#f2b441";
    ctx.beginPath();
    ctx.moveTo(cx - 6 * dpr, H);
    ctx.lineTo(cx + 6 * dpr, H);
    ctx.lineTo(cx, H - 9 * dpr);
    ctx.fill();
  }
  // playhead
  const px = (S.frame + 0.5) * cell;
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(px - dpr, 2 * dpr, 2 * dpr, H - 4 * dpr);
}

function frameAt(clientX) {
  const rect = timelineCanvas.getBoundingClientRect();
  return Math.max(0, Math.min(S.numFrames - 1, Math.floor(((clientX - rect.left) / rect.width) * S.numFrames)));
}

// ---- facts, objects, buttons ----------------------------------------------------------------
function updateFacts() {
  const video = S.kind === "video";
  $("fact-frame").textContent = S.id ? (video ? `${S.frame + 1} of ${S.numFrames}` : "image") : "–";
  const clicks = clicksOf(S.frame);
  const pos = clicks.filter((c) => c[2]).length;
  $("fact-clicks").textContent = clicks.length ? `${clicks.length} (${pos} +, ${clicks.length - pos} −)` : "0";
  const src = S.sources.get(S.frame);
  const has = S.masks.get(S.frame)?.has(S.selected);
  let source = "none";
  if (has) {
    const s = src?.get(S.selected) || "annotated";
    const c = S.confidence.get(S.frame)?.get(S.selected);
    source = s === "propagated" ? `propagated${c != null ? `, confidence ${c.toFixed(3)}` : ""} · click to correct` : "clicked";
  }
  $("fact-source").textContent = source;
  $("frame-input").value = String(S.frame + 1);
  $("frame-count").textContent = String(S.numFrames);
  const running = jobRunning();
  $("propagate-button").disabled = !video || running || !S.serverObjects.size;
  $("cancel-button").disabled = !running;
  $("undo-button").disabled = !S.id || running;
  $("reset-button").disabled = !S.id || running;
  $("add-object").disabled = !video;
  for (const b of document.querySelectorAll("[data-export]")) b.disabled = !S.propagated || running;
  for (const b of document.querySelectorAll("[data-image-export]")) b.disabled = !S.masks.get(0)?.size;
  $("export-note").textContent = video
    ? (S.propagated ? "Masks of every frame, as the server has them." : "Propagate first: exports need a mask on every frame.")
    : "The object over transparency, or its mask.";
}

function renderObjects() {
  const list = $("objects");
  list.textContent = "";
  for (const [n, o] of S.objects.entries()) {
    const li = document.createElement("li");
    li.dataset.obj = String(o.id);
    if (o.id === S.selected) li.classList.add("selected");
    const color = document.createElement("input");
    color.type = "color";
    color.value = o.color;
    color.title = "Colour of this object";
    color.oninput = () => {
      o.color = color.value;
      saveColors();
      drawOverlay();
      drawTimeline();
    };
    color.onclick = (e) => e.stopPropagation();
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = S.kind === "image" ? "Object" : `Object ${o.id}`;
    const meta = document.createElement("span");
    meta.className = "meta";
    let frames = 0;
    for (const [key, l] of S.clicks) if (key.startsWith(`${o.id}:`) && l.length) frames++;
    meta.textContent = S.kind === "video" ? `${frames} frame${frames === 1 ? "" : "s"} clicked · ${n + 1}` : "";
    li.append(color, name, meta);
    if (S.kind === "video" && S.objects.length > 1) {
      const rm = document.createElement("button");
      rm.className = "ghost remove";
      rm.textContent = "✕";
      rm.title = "Remove this object";
      rm.onclick = (e) => {
        e.stopPropagation();
        removeObject(o.id);
      };
      li.appendChild(rm);
    }
    li.onclick = () => selectObject(o.id);
    list.appendChild(li);
  }
}

function selectObject(id) {
  if (!S.objects.some((o) => o.id === id)) return;
  S.selected = id;
  renderObjects();
  updateFacts();
  drawOverlay();
  drawClicks();
  status(`Object ${id} selected: clicks now go to it.`);
}

function addObject() {
  if (S.kind !== "video") return;
  const id = Math.max(0, ...S.objects.map((o) => o.id)) + 1;
  S.objects.push({ id, color: PALETTE[(id - 1) % PALETTE.length] });
  saveColors();
  selectObject(id);
  status(`Object ${id} added: click on it in any frame.`);
}

async function removeObject(id) {
  if (jobRunning()) return toast("A propagation is running: cancel it first.", { kind: "info" });
  try {
    if (S.serverObjects.has(id)) {
      await busy("remove", `removing object ${id}`, () => api.del(`/v1/videos/${S.id}/objects/${id}`));
    }
    S.objects = S.objects.filter((o) => o.id !== id);
    for (const m of [S.masks, S.sources, S.confidence]) for (const per of m.values()) per.delete(id);
    for (const key of [...S.clicks.keys()]) if (key.startsWith(`${id}:`)) S.clicks.delete(key);
    if (S.selected === id) S.selected = S.objects[0].id;
    await refreshVideoState();
    renderObjects();
    redraw();
    status(`Object ${id} removed.`);
  } catch (e) {
    showError(e, `Removing object ${id}`);
  }
}

function colorKey() {
  return `ivos.colors.${S.id}`;
}

function saveColors() {
  try {
    localStorage.setItem(colorKey(), JSON.stringify(Object.fromEntries(S.objects.map((o) => [o.id, o.color]))));
  } catch {
    /* storage full or off: colours are a nicety */
  }
}

function savedColors() {
  try {
    return JSON.parse(localStorage.getItem(colorKey()) || "{}");
  } catch {
    return {};
  }
}

function redraw() {
  updateFacts();
  drawOverlay();
  drawClicks();
  drawTimeline();
}

// ---- opening --------------------------------------------------------------------------------
function resetView() {
  S.masks = new Map();
  S.sources = new Map();
  S.confidence = new Map();
  S.clicks = new Map();
  S.serverObjects = new Set();
  S.seenFrames = new Set();
  S.suggestion = null;
  S.propagated = false;
  S.job = null;
  S.frame = 0;
  $("suggest").hidden = true;
  $("repropagate-banner").hidden = true;
  setProgress(0, "Not propagated yet.");
}

async function openSession(kind, rec) {
  stopPlayback();
  abortEvents();
  resetView();
  S.kind = kind;
  S.id = rec.session_id;
  S.width = rec.width;
  S.height = rec.height;
  S.numFrames = kind === "video" ? rec.num_frames : 1;
  S.fps = rec.fps || 25;
  const colors = savedColors();
  S.objects = [{ id: 1, color: colors[1] || PALETTE[0] }];
  S.selected = 1;
  for (const c of [frameCanvas, maskCanvas]) {
    c.width = S.width;
    c.height = S.height;
  }
  frameCanvas.getContext("2d").clearRect(0, 0, S.width, S.height);
  resetView0();
  $("empty").hidden = true;
  $("canvas-box").hidden = false;
  $("video-card").hidden = kind !== "video";
  $("timeline-bar").style.visibility = kind === "video" ? "visible" : "hidden";
  $("exports-video").hidden = kind !== "video";
  $("exports-image").hidden = kind !== "image";
  const what = kind === "video" ? `${S.numFrames} frames · ${S.fps.toFixed(S.fps % 1 ? 2 : 0)} fps` : "image";
  $("session-info").innerHTML = "";
  const b = document.createElement("b");
  b.textContent = rec.name || (kind === "video" ? "Video" : "Image");
  $("session-info").append(b, ` · ${S.width}×${S.height} · ${what} · `);
  const code = document.createElement("code");
  code.textContent = S.id;
  code.className = "muted";
  $("session-info").append(code);
  history.replaceState(null, "", `#${S.id}`);
  layout();
  if (kind === "video") {
    await refreshVideoState({ all: true });
    const colorsNow = savedColors();
    for (const o of S.objects) if (colorsNow[o.id]) o.color = colorsNow[o.id];
  } else {
    const full = await api.get(`/v1/images/${S.id}?mask_format=rle`);
    S.clicks.set("image", full.clicks.map((c) => [c.x, c.y, c.positive ? 1 : 0]));
    if (full.mask) setMask(0, 1, full.mask.rle, "annotated", 1);
  }
  renderObjects();
  await showFrame(0);
  redraw();
  clickCanvas.focus();
  status(kind === "video"
    ? "Click on the object (right click or Shift+click to remove), then Propagate."
    : "Click on the object (right click or Shift+click to remove).");
}

async function uploadFile(file) {
  if (!file) return;
  const isImage = file.type.startsWith("image/") && file.type !== "image/gif";
  const form = new FormData();
  form.append(isImage ? "image" : "video", file, file.name);
  const mb = (file.size / 2 ** 20).toFixed(1);
  const progress = (sent, total) => {
    if (sent < 0) setBusy("upload", `${file.name}: the server is decoding every ${isImage ? "pixel" : "frame"}…`);
    else if (total) setBusy("upload", `uploading ${file.name}: ${Math.round((100 * sent) / total)}% of ${mb} MB`);
  };
  try {
    const rec = await busy("upload", `uploading ${file.name} (${mb} MB)`, () =>
      api.upload(isImage ? "/v1/images" : "/v1/videos", form, progress));
    rec.name = file.name;
    await openSession(isImage ? "image" : "video", rec);
  } catch (e) {
    showError(e, `Opening ${file.name}`);
  }
}

async function openDemo() {
  try {
    const rec = await busy("upload", "opening the demo clip", () => api.post("/v1/videos/demo"));
    rec.name = "Demo clip";
    await openSession("video", rec);
    const hint = rec.demo && rec.demo.clicks && rec.demo.clicks[0];
    if (hint) status(`Demo clip: click on the object (e.g. at ${hint.x}, ${hint.y}), then Propagate.`);
  } catch (e) {
    showError(e, "Opening the demo clip");
  }
}

async function openFromHash() {
  const id = decodeURIComponent(location.hash.slice(1));
  if (!id) return;
  const kind = id.startsWith("img_") ? "image" : id.startsWith("vid_") ? "video" : null;
  if (!kind) return;
  try {
    const rec = await api.get(`/v1/${kind === "image" ? "images" : "videos"}/${id}`);
    await openSession(kind, rec);
    if (kind === "video" && rec.job && (rec.job.status === "queued" || rec.job.status === "running")) {
      followJob(rec.job);
    }
  } catch (e) {
    showError(e, `Reopening session ${id}`);
    history.replaceState(null, "", location.pathname);
  }
}

// ---- masks from the server ------------------------------------------------------------------
// Masks are kept as the server sends them (COCO RLE: a few KB a frame, so a long video fits) and
// decoded when drawn, the last DECODED_KEEP of them kept decoded.
const DECODED_KEEP = 64;
const decoded = new Map(); // "frame:obj" -> {rle, mask}

function maskOf(frame, obj) {
  const rle = S.masks.get(frame)?.get(obj);
  if (!rle) return null;
  const key = `${frame}:${obj}`;
  let entry = decoded.get(key);
  if (entry && entry.rle === rle) {
    decoded.delete(key);
  } else {
    entry = { rle, mask: decodeRle(rle) };
  }
  decoded.set(key, entry); // most recent last
  while (decoded.size > DECODED_KEEP) decoded.delete(decoded.keys().next().value);
  return entry.mask;
}

function setMask(frame, obj, rle, source, confidence) {
  frameMap(S.masks, frame).set(obj, rle);
  frameMap(S.sources, frame).set(obj, source);
  frameMap(S.confidence, frame).set(obj, confidence);
}

function dropMask(frame, obj) {
  for (const m of [S.masks, S.sources, S.confidence]) m.get(frame)?.delete(obj);
}

/** Objects, clicks and annotated frames (GET /v1/videos/{id}); ``all`` also every mask. */
async function refreshVideoState({ all = false } = {}) {
  const rec = await api.get(`/v1/videos/${S.id}`);
  S.clicks = new Map();
  S.serverObjects = new Set();
  for (const o of rec.objects) {
    S.serverObjects.add(o.obj_id);
    if (!S.objects.some((x) => x.id === o.obj_id)) {
      S.objects.push({ id: o.obj_id, color: PALETTE[(o.obj_id - 1) % PALETTE.length] });
    }
    for (const [frame, list] of Object.entries(o.clicks)) S.clicks.set(`${o.obj_id}:${frame}`, list);
  }
  S.objects.sort((a, b) => a.id - b.id);
  if (!S.objects.length) S.objects = [{ id: 1, color: PALETTE[0] }];
  if (!S.objects.some((o) => o.id === S.selected)) S.selected = S.objects[0].id;
  S.job = rec.job;
  if (all) await refreshAllMasks();
  renderObjects();
  updateFacts();
  drawTimeline();
  drawClicks();
  return rec;
}

async function refreshAllMasks() {
  const doc = await api.get(`/v1/videos/${S.id}/masks`);
  S.masks = new Map();
  S.sources = new Map();
  S.confidence = new Map();
  for (const f of doc.frames) {
    for (const [k, rle] of Object.entries(f.masks)) {
      setMask(f.frame_idx, Number(k), rle, f.sources[k], f.confidence[k]);
    }
  }
  computePropagated();
}

async function refreshFrameMasks(frame, { draw = true } = {}) {
  const doc = await api.get(`/v1/videos/${S.id}/frames/${frame}/masks`);
  for (const [k, m] of Object.entries(doc.masks)) {
    const per = S.sources.get(frame);
    setMask(frame, Number(k), m.rle, per?.get(Number(k)) || "propagated",
      S.confidence.get(frame)?.get(Number(k)) ?? null);
  }
  if (draw && frame === S.frame) drawOverlay();
  if (draw) drawTimeline();
}

function computePropagated() {
  const annotated = [...S.serverObjects].filter((k) => [...S.clicks.keys()].some((c) => c.startsWith(`${k}:`)));
  S.propagated = S.kind === "video" && annotated.length > 0 && annotated.every((k) => {
    for (let i = 0; i < S.numFrames; i++) if (!S.masks.get(i)?.has(k)) return false;
    return true;
  });
}

// ---- clicks ---------------------------------------------------------------------------------
let clickChain = Promise.resolve();

function canvasPoint(event) {
  const rect = clickCanvas.getBoundingClientRect();
  const x = ((event.clientX - rect.left) / rect.width) * S.width;
  const y = ((event.clientY - rect.top) / rect.height) * S.height;
  // continuous pixel coordinates: pixel (i, j) spans j <= x < j + 1
  return [Math.min(Math.max(x, 0), S.width - 1e-3), Math.min(Math.max(y, 0), S.height - 1e-3)];
}

let panning = null;

function onCanvasPointer(event) {
  if (!S.id) return;
  if (event.button === 1 || (event.button === 0 && (event.ctrlKey || event.altKey))) { // pan
    event.preventDefault();
    panning = { x: event.clientX, y: event.clientY, tx: view.tx, ty: view.ty };
    clickCanvas.setPointerCapture(event.pointerId);
    return;
  }
  if (event.button !== 0 && event.button !== 2) return;
  event.preventDefault();
  clickCanvas.focus();
  const t0 = performance.now();
  const positive = event.button === 0 && !event.shiftKey;
  const [x, y] = canvasPoint(event);
  if (jobRunning()) {
    toast("A propagation is running: wait for it or cancel it (Esc) before clicking.", { kind: "info" });
    return;
  }
  const frame = S.frame, obj = S.selected;
  drawClicks([x, y, positive ? 1 : 0]);
  clickChain = clickChain.then(() => sendClick(frame, obj, x, y, positive, t0)).catch(() => {});
}

async function sendClick(frame, obj, x, y, positive, t0) {
  const label = positive ? "positive" : "negative";
  setBusy("click", `${label} click`);
  try {
    let result, refined = false, serverMs, tFetch0 = performance.now(), tFetch1;
    if (S.kind === "image") {
      const r = await api.post(`/v1/images/${S.id}/clicks?mask_format=rle`, { x, y, positive });
      tFetch1 = performance.now();
      setMask(0, 1, r.mask.rle, "annotated", 1);
      maskOf(0, 1); // decoded now (timed as decode_ms)
      S.clicks.set("image", [...(S.clicks.get("image") || []), [x, y, positive ? 1 : 0]]);
      serverMs = r.timings.total_ms;
      result = r;
    } else {
      const propagated = S.sources.get(frame)?.get(obj) === "propagated";
      const body = { frame_idx: frame, obj_id: obj, points: [[x, y]], labels: [positive ? 1 : 0] };
      const r = await api.post(`/v1/videos/${S.id}/${propagated ? "refine" : "points"}?mask_format=rle`, body);
      tFetch1 = performance.now();
      refined = propagated;
      const key = `${obj}:${frame}`;
      S.clicks.set(key, [...(S.clicks.get(key) || []), [x, y, positive ? 1 : 0]]);
      S.serverObjects.add(obj);
      setMask(frame, obj, r.mask.rle, r.source || "annotated", r.confidence ?? 1);
      maskOf(frame, obj); // decoded now (timed as decode_ms)
      serverMs = r.timings.total_ms;
      result = r;
    }
    const tDecoded = performance.now();
    if (frame === S.frame) {
      drawOverlay();
      drawClicks();
    }
    const tDrawn = performance.now();
    await new Promise((resolve) => requestAnimationFrame(() => resolve()));
    const tPaint = performance.now();
    performance.measure("ivos:click-to-paint", { start: t0, end: tPaint });
    const entry = {
      paint_ms: tPaint - t0, request_ms: tFetch1 - tFetch0, server_ms: serverMs,
      decode_ms: tDecoded - tFetch1, draw_ms: tDrawn - tDecoded, queued_ms: tFetch0 - t0,
      frame, obj, positive, refined, area: result.mask.area,
    };
    metrics.clicks.push(entry);
    S.lastClick = entry;
    $("fact-latency").textContent = `${entry.paint_ms.toFixed(0)} ms · server ${serverMs.toFixed(0)}`;
    status(`${refined ? "Corrected" : "Clicked"} ${S.kind === "video" ? `frame ${frame + 1}, object ${obj}` : "the image"}: ` +
      `mask of ${result.mask.area.toLocaleString()} px in ${entry.paint_ms.toFixed(0)} ms.`);
    if (S.kind === "video") {
      if (S.job && S.job.status === "done") offerRepropagation(frame, refined);
      computePropagated();
    }
    renderObjects();
    redraw();
  } catch (e) {
    drawClicks();
    showError(e, `${label[0].toUpperCase()}${label.slice(1)} click`);
  } finally {
    setBusy("click", null);
  }
}

function offerRepropagation(frame, refined) {
  $("repropagate-text").textContent = refined
    ? `Frame ${frame + 1} corrected: re-propagate to carry the fix through the video.`
    : `Frame ${frame + 1} changed: re-propagate to update the other frames.`;
  $("repropagate-banner").hidden = false;
}

async function undo() {
  if (!S.id || jobRunning()) return;
  await clickChain;
  try {
    if (S.kind === "image") {
      const r = await busy("undo", "undo", () => api.post(`/v1/images/${S.id}/undo?mask_format=rle`));
      const list = S.clicks.get("image") || [];
      S.clicks.set("image", list.slice(0, r.clicks));
      if (r.mask) setMask(0, 1, r.mask.rle, "annotated", 1);
      else dropMask(0, 1);
      status(r.clicks ? `Undone: ${r.clicks} click${r.clicks === 1 ? "" : "s"} left.` : "Undone: no click left.");
    } else {
      const frame = S.frame, obj = S.selected;
      const r = await busy("undo", "undo", () =>
        api.post(`/v1/videos/${S.id}/undo?mask_format=rle`, { frame_idx: frame, obj_id: obj }));
      if (r.result) setMask(frame, obj, r.result.mask.rle, r.result.source, r.result.confidence);
      else dropMask(frame, obj);
      await refreshVideoState();
      computePropagated();
      status(`Undone on frame ${frame + 1} (object ${obj}).`);
    }
    redraw();
  } catch (e) {
    showError(e, "Undo");
  }
}

async function resetAll() {
  if (!S.id || jobRunning()) return;
  const what = S.kind === "video" ? "every object's clicks and masks in every frame" : "every click";
  if (!window.confirm(`Reset: forget ${what}?`)) return;
  await clickChain;
  try {
    await busy("reset", "reset", () => api.post(`/v1/${S.kind === "video" ? "videos" : "images"}/${S.id}/reset`));
    const colors = S.objects;
    resetView();
    S.objects = colors.slice(0, 1);
    S.selected = S.objects[0].id;
    if (S.kind === "video") await refreshVideoState();
    renderObjects();
    redraw();
    status("Reset: click on the object to start again.");
  } catch (e) {
    showError(e, "Reset");
  }
}

// ---- propagation ----------------------------------------------------------------------------
let eventsAbort = null;

function abortEvents() {
  if (eventsAbort) eventsAbort.abort();
  eventsAbort = null;
}

function setProgress(fraction, text) {
  const pct = Math.max(0, Math.min(100, Math.round(fraction * 100)));
  $("progress-bar").style.width = `${pct}%`;
  $("progress").setAttribute("aria-valuenow", String(pct));
  $("progress-text").textContent = text;
}

function describeJob(job) {
  const stage = job.stage || job.status;
  if (stage.startsWith("finetune:")) {
    const obj = stage.split(":")[1];
    return [job.total ? job.done / job.total : 0,
      `Fine-tuning object ${obj} on its clicked frames${job.total ? `: step ${job.done} of ${job.total}` : "…"}`];
  }
  if (stage === "propagate") return [job.total ? job.done / job.total : 0, `Segmenting frames: ${job.done} of ${job.total}`];
  if (stage === "load" || stage === "queued") return [0, job.status === "queued" ? "Queued…" : "Loading…"];
  return [0, stage];
}

async function propagate() {
  if (S.kind !== "video" || jobRunning()) return;
  await clickChain;
  $("repropagate-banner").hidden = true;
  const before = $("progress-text").textContent;
  setProgress(0, "Starting…");
  try {
    const job = await api.post(`/v1/videos/${S.id}/propagate`, {});
    S.seenFrames = new Set();
    S.suggestion = null;
    $("suggest").hidden = true;
    followJob(job);
  } catch (e) {
    setProgress(0, before);
    showError(e, "Propagate");
  }
}

async function followJob(job) {
  abortEvents();
  S.job = job;
  const started = performance.now();
  $("progress").classList.add("running");
  setBusy("job", "propagation");
  updateFacts();
  eventsAbort = new AbortController();
  const signal = eventsAbort.signal;
  let following = false; // one frame (image + masks) fetched at a time; shown when both are here
  const onJob = (j) => {
    S.job = j;
    const [fraction, text] = describeJob(j);
    setProgress(fraction, text);
    setBusy("job", text.toLowerCase());
    if (j.stage === "propagate" && j.frame_idx != null) {
      S.seenFrames.add(j.frame_idx);
      if ($("follow").checked && !following) {
        following = true;
        const f = j.frame_idx;
        Promise.all([loadFrame(f), refreshFrameMasks(f, { draw: false })])
          .then(() => $("follow").checked && jobRunning() && showFrame(f, { fetchMasks: false, user: false }))
          .catch(() => {})
          .finally(() => (following = false));
      }
      drawTimeline();
    }
    updateFacts();
  };
  let final = null;
  try {
    final = await api.events(`/v1/videos/${S.id}/jobs/${job.job_id}/events`, (type, data) => onJob(data), signal);
  } catch (e) {
    if (e.name === "AbortError") return;
    // the stream broke (a proxy, a restart): poll instead
    try {
      for (;;) {
        if (signal.aborted) return;
        const j = await api.get(`/v1/videos/${S.id}/jobs/${job.job_id}`);
        onJob(j);
        if (!["queued", "running"].includes(j.status)) {
          final = j;
          break;
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    } catch (e2) {
      showError(e2, "Following the propagation");
    }
  }
  $("progress").classList.remove("running");
  setBusy("job", null);
  if (!final || signal.aborted) return;
  S.job = final;
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  try {
    await refreshVideoState({ all: true });
  } catch (e) {
    showError(e, "Reading the masks");
  }
  if (final.status === "done") {
    setProgress(1, `Done: ${final.total} frames in ${seconds} s.`);
    status("Propagated. The timeline shows each frame's confidence; the suggested frame is marked.");
    await loadSuggestion();
  } else if (final.status === "cancelled") {
    setProgress(final.total ? final.done / final.total : 0, `Cancelled after ${final.done} of ${final.total} frames (kept).`);
    toast("Propagation cancelled: the frames done so far are kept.", { kind: "info", timeout: 5000 });
    status("Propagation cancelled.");
  } else {
    setProgress(0, `Failed: ${final.error || final.status}`);
    toast(`Propagation ${final.status}: ${final.error || "no reason given"}`, { code: `job ${final.status}` });
    status("Propagation failed.");
  }
  await showFrame(S.frame);
  redraw();
}

async function cancelJob() {
  if (!jobRunning()) return;
  try {
    await api.post(`/v1/videos/${S.id}/jobs/${S.job.job_id}/cancel`);
    setProgress(Number($("progress").getAttribute("aria-valuenow")) / 100, "Cancelling…");
  } catch (e) {
    showError(e, "Cancel");
  }
}

async function loadSuggestion() {
  try {
    const s = await api.get(`/v1/videos/${S.id}/suggest`);
    S.suggestion = s;
    $("suggest").hidden = false;
    $("suggest-frame").textContent = String(s.frame_idx + 1);
    $("suggest-button").dataset.frame = String(s.frame_idx);
    $("suggest-score").textContent = S.objects.length > 1 ? `(object ${s.obj_id})` : "";
    drawTimeline();
  } catch (e) {
    showError(e, "Suggesting a frame");
  }
}

function goToSuggestion() {
  if (!S.suggestion) return;
  if (S.objects.some((o) => o.id === S.suggestion.obj_id)) selectObject(S.suggestion.obj_id);
  showFrame(S.suggestion.frame_idx);
  status(`Frame ${S.suggestion.frame_idx + 1} is the most likely wrong: click to correct it.`);
}

// ---- exports --------------------------------------------------------------------------------
async function exportVideo(format) {
  const names = { sticker: "sticker", "png-zip": "PNG masks", coco: "COCO RLE JSON" };
  try {
    const got = await busy("export", `exporting ${names[format]}`, () =>
      api.download(`/v1/videos/${S.id}/export?format=${format}`, `${S.id}-${format}`));
    status(`Downloaded ${got.name} (${(got.size / 1024).toFixed(0)} KB).`);
    window.ivosEditor.lastDownload = got;
  } catch (e) {
    showError(e, `Export ${names[format]}`);
  }
}

async function exportImage(kind) {
  const mask = maskOf(0, 1);
  if (!mask) return toast("Click on the object first.", { kind: "info" });
  try {
    const blob = kind === "mask" ? await maskPng(mask, S.width, S.height)
      : await cutoutPng(await loadFrame(0), mask, S.width, S.height);
    const name = `${S.id}-${kind}.png`;
    saveBlob(blob, name);
    window.ivosEditor.lastDownload = { name, size: blob.size, type: blob.type };
    status(`Downloaded ${name}.`);
  } catch (e) {
    showError(e, "Export");
  }
}

// ---- playback -------------------------------------------------------------------------------
let playTimer = null;

function stopPlayback() {
  if (playTimer) clearInterval(playTimer);
  playTimer = null;
  $("play-button").textContent = "▶";
}

function togglePlayback() {
  if (S.kind !== "video") return;
  if (playTimer) return stopPlayback();
  $("play-button").textContent = "❚❚";
  playTimer = setInterval(() => {
    if (S.frame >= S.numFrames - 1) return stopPlayback();
    showFrame(S.frame + 1, { fetchMasks: false, user: false });
  }, 1000 / Math.min(30, S.fps || 12));
}

// ---- dialogs --------------------------------------------------------------------------------
function openHelp() {
  $("help").hidden = false;
}

function openSettings() {
  $("api-key").value = api.apiKey;
  $("settings").hidden = false;
  $("api-key").focus();
}

function closeDialogs() {
  let closed = false;
  for (const d of document.querySelectorAll(".overlay")) {
    if (!d.hidden) closed = true;
    d.hidden = true;
  }
  return closed;
}

// ---- recent sessions ------------------------------------------------------------------------
function ago(seconds) {
  const s = Date.now() / 1000 - seconds;
  if (s < 90) return "just now";
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

async function openRecent() {
  const list = $("recent-list");
  list.textContent = "";
  $("recent").hidden = false;
  let sessions;
  try {
    sessions = (await api.get("/v1/sessions?limit=50")).sessions;
  } catch (e) {
    $("recent").hidden = true;
    return showError(e, "Listing your sessions");
  }
  if (!sessions.length) {
    const li = document.createElement("li");
    li.className = "empty-note";
    li.textContent = "No sessions yet on this server for this key.";
    list.appendChild(li);
  }
  for (const rec of sessions) {
    const li = document.createElement("li");
    if (rec.session_id === S.id) li.classList.add("current");
    const what = document.createElement("span");
    what.className = "what";
    const kind = rec.kind === "video" ? `Video · ${rec.num_frames} frames` : "Image";
    what.textContent = `${kind} · ${rec.width}×${rec.height} · changed ${ago(rec.updated)} `;
    const code = document.createElement("code");
    code.textContent = rec.session_id;
    what.appendChild(code);
    const open = document.createElement("button");
    open.textContent = rec.session_id === S.id ? "Open (current)" : "Open";
    open.onclick = () => {
      closeDialogs();
      location.hash = rec.session_id;
    };
    const del = document.createElement("button");
    del.className = "danger";
    del.textContent = "Delete";
    del.title = "Delete this session and its files on the server";
    del.onclick = async () => {
      if (!window.confirm(`Delete session ${rec.session_id} and its files on the server?`)) return;
      try {
        await api.del(`/v1/${rec.kind === "video" ? "videos" : "images"}/${rec.session_id}`);
        li.remove();
        if (rec.session_id === S.id) location.replace(location.pathname);
      } catch (e) {
        showError(e, "Deleting the session");
      }
    };
    li.append(what, open, del);
    list.appendChild(li);
  }
}

// ---- server state ---------------------------------------------------------------------------
async function watchServer() {
  const pill = $("server-pill");
  for (;;) {
    try {
      const r = await fetch("/readyz");
      const body = await r.json().catch(() => ({}));
      if (r.ok) {
        pill.textContent = `ready · ${String(body.model || "").split(":").slice(0, 2).join(":")}`;
        pill.title = `click model: ${body.model}\nOSVOS: ${body.osvos}`;
        pill.className = "pill ok";
        return true;
      }
      pill.textContent = body.error?.code === "not_ready" ? "loading models…" : "not ready";
      pill.title = body.error?.message || "";
      pill.className = "pill bad";
    } catch {
      pill.textContent = "server unreachable";
      pill.className = "pill bad";
    }
    await new Promise((r) => setTimeout(r, 1500));
  }
}

// ---- wiring ---------------------------------------------------------------------------------
function wire() {
  $("file-input").addEventListener("change", (e) => {
    uploadFile(e.target.files[0]);
    e.target.value = "";
  });
  $("demo-button").onclick = openDemo;
  $("demo-button-2").onclick = openDemo;
  $("help-button").onclick = openHelp;
  $("recent-button").onclick = openRecent;
  $("settings-button").onclick = openSettings;
  $("settings-save").onclick = () => {
    api.setKey($("api-key").value);
    closeDialogs();
    toast(api.apiKey ? "API key saved in this browser." : "API key cleared.", { kind: "info", timeout: 3000 });
  };
  for (const b of document.querySelectorAll("[data-close]")) b.onclick = closeDialogs;
  for (const d of document.querySelectorAll(".overlay")) d.addEventListener("click", (e) => {
    if (e.target === d) closeDialogs();
  });
  $("add-object").onclick = addObject;
  $("undo-button").onclick = undo;
  $("reset-button").onclick = resetAll;
  $("show-mask").onchange = (e) => {
    S.showMask = e.target.checked;
    drawOverlay();
  };
  $("propagate-button").onclick = propagate;
  $("repropagate-button").onclick = propagate;
  $("repropagate-dismiss").onclick = () => ($("repropagate-banner").hidden = true);
  $("cancel-button").onclick = cancelJob;
  $("suggest-button").onclick = goToSuggestion;
  for (const b of document.querySelectorAll("[data-export]")) b.onclick = () => exportVideo(b.dataset.export);
  for (const b of document.querySelectorAll("[data-image-export]")) b.onclick = () => exportImage(b.dataset.imageExport);
  $("prev-frame").onclick = () => showFrame(S.frame - 1);
  $("next-frame").onclick = () => showFrame(S.frame + 1);
  $("play-button").onclick = togglePlayback;
  $("frame-input").onchange = (e) => showFrame(Number(e.target.value) - 1);

  clickCanvas.addEventListener("pointerdown", onCanvasPointer);
  clickCanvas.addEventListener("pointermove", (e) => {
    if (!panning) return;
    view.tx = panning.tx + e.clientX - panning.x;
    view.ty = panning.ty + e.clientY - panning.y;
    applyView();
  });
  clickCanvas.addEventListener("pointerup", () => (panning = null));
  clickCanvas.addEventListener("auxclick", (e) => e.preventDefault());
  $("stage").addEventListener("wheel", (e) => {
    if (!S.id) return;
    e.preventDefault();
    zoomAt(e.clientX, e.clientY, Math.exp(-e.deltaY * 0.0015));
  }, { passive: false });
  clickCanvas.addEventListener("contextmenu", (e) => e.preventDefault());

  let scrubbing = false;
  timelineCanvas.addEventListener("pointerdown", (e) => {
    if (S.kind !== "video") return;
    scrubbing = true;
    timelineCanvas.setPointerCapture(e.pointerId);
    stopPlayback();
    showFrame(frameAt(e.clientX));
  });
  timelineCanvas.addEventListener("pointermove", (e) => {
    if (!scrubbing) {
      if (S.kind !== "video") return;
      const f = frameAt(e.clientX);
      const c = frameConfidence(f);
      const src = S.sources.get(f);
      const kind = !src || !src.size ? "no mask yet" : [...src.values()].includes("annotated") ? "clicked" : "propagated";
      const marks = S.suggestion && S.suggestion.frame_idx === f ? " · suggested: most likely wrong" : "";
      timelineCanvas.title = `Frame ${f + 1}: ${kind}${c !== null && kind === "propagated" ? `, confidence ${c.toFixed(3)}` : ""}${marks}`;
      return;
    }
    const f = frameAt(e.clientX);
    if (f !== S.frame) showFrame(f);
  });
  timelineCanvas.addEventListener("pointerup", () => (scrubbing = false));

  const stage = $("stage");
  stage.addEventListener("dragover", (e) => {
    e.preventDefault();
    stage.classList.add("dragging");
  });
  stage.addEventListener("dragleave", () => stage.classList.remove("dragging"));
  stage.addEventListener("drop", (e) => {
    e.preventDefault();
    stage.classList.remove("dragging");
    if (e.dataTransfer.files.length) uploadFile(e.dataTransfer.files[0]);
  });

  window.addEventListener("resize", layout);
  window.addEventListener("hashchange", () => {
    if (location.hash.slice(1) !== S.id) openFromHash();
  });
  document.addEventListener("keydown", onKey);
}

function onKey(e) {
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement?.tagName) &&
    document.activeElement.type !== "checkbox";
  if (e.key === "Escape") {
    if (!closeDialogs()) cancelJob();
    return;
  }
  if (typing || e.altKey || e.metaKey) return;
  const ctrl = e.ctrlKey;
  const k = e.key;
  const step = e.shiftKey ? 10 : 1;
  const handled = () => e.preventDefault();
  if (ctrl && (k === "z" || k === "Z")) return handled(), undo();
  if (ctrl) return;
  switch (k) {
    case "ArrowLeft": handled(); return showFrame(S.frame - step);
    case "ArrowRight": handled(); return showFrame(S.frame + step);
    case "Home": handled(); return showFrame(0);
    case "End": handled(); return showFrame(S.numFrames - 1);
    case " ": handled(); return togglePlayback();
    case "z": case "Z": handled(); return undo();
    case "r": case "R": handled(); return resetAll();
    case "p": case "P": handled(); return propagate();
    case "s": case "S": handled(); return goToSuggestion();
    case "n": case "N": handled(); return addObject();
    case "m": case "M":
      handled();
      $("show-mask").checked = !$("show-mask").checked;
      S.showMask = $("show-mask").checked;
      return drawOverlay();
    case "o": case "O": handled(); return $("file-input").click();
    case "d": case "D": handled(); return openDemo();
    case "?": handled(); return openHelp();
    case "0": handled(); return resetView0();
    case "+": case "=": {
      handled();
      const r = $("canvas-box").getBoundingClientRect();
      return zoomAt(r.left + r.width / 2, r.top + r.height / 2, 1.25);
    }
    case "-": {
      handled();
      const r = $("canvas-box").getBoundingClientRect();
      return zoomAt(r.left + r.width / 2, r.top + r.height / 2, 0.8);
    }
    default:
      if (/^[1-9]$/.test(k) && S.objects[Number(k) - 1]) {
        handled();
        selectObject(S.objects[Number(k) - 1].id);
      }
  }
}

wire();
setBusy("none", null);
updateFacts();
watchServer().then(() => openFromHash()).finally(() => {
  window.ivosEditor.ready = true;
});
