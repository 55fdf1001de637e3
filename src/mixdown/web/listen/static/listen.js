// The MUSHRA listening-test page: plain JS, no build step.
// Views: start (participant ID) -> training (trial 1 without sliders) -> trials -> closing comment.
// Playback: every version of a trial is decoded into an AudioBuffer; switching starts the new
// version at the current position with a short crossfade, so versions stay in sync.
"use strict";

const FADE_S = 0.008;          // crossfade when switching or stopping
const MIN_LOOP_S = 0.5;        // shortest loop region
const TOKEN_HEADER = "X-Participant-Token";
const REFERENCE = "reference";

const $ = (id) => document.getElementById(id);
const slotLabel = (slot) => {
  let label = "";
  for (let n = slot + 1; n > 0; n = Math.floor((n - 1) / 26)) label = String.fromCharCode(65 + ((n - 1) % 26)) + label;
  return label;
};

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

const app = {
  test: null,        // GET /api/test
  token: null,
  trial: null,       // {index, slots, duration_s, mode}
  ratings: [],
  played: new Set(),
};

async function request(method, path, body, binary = false) {
  const headers = {};
  if (app.token) headers[TOKEN_HEADER] = app.token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, "The server is not reachable. Everything you submitted is saved; try again in a moment.");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const data = await response.json();
      detail = typeof data.detail === "string" ? data.detail : "the request was not accepted";
    } catch (err) { /* not JSON: keep the status text */ }
    throw new ApiError(response.status, detail);
  }
  $("connection").hidden = true;
  return binary ? response.arrayBuffer() : response.json();
}

function showError(err) {
  $("connection").textContent = err.message;
  $("connection").hidden = false;
}

function show(view) {
  for (const id of ["view-start", "view-trial", "view-done", "view-thanks"]) $(id).hidden = id !== view;
}

const storageKey = (what) => `mixdown-listen:${app.test.test_id}:${what}`;

// ---------------------------------------------------------------- playback

class Player {
  constructor() {
    this.context = new AudioContext();
    this.buffers = new Map();
    this.duration = 0;
    this.loopStart = 0;
    this.loopEnd = 0;
    this.active = null;       // key of the version playing or last selected
    this.playing = false;
    this.node = null;         // {source, gain} now sounding
    this.startedAt = 0;       // context time of the last start
    this.startOffset = 0;     // excerpt position at that time
    this.offset = 0;          // position while stopped
    this.onActivate = () => {};
  }

  async load(urls) {
    this.stop();
    this.buffers = new Map();
    const entries = await Promise.all([...urls].map(async ([key, path]) => {
      const data = await request("GET", path, undefined, true);
      return [key, await this.context.decodeAudioData(data)];
    }));
    this.buffers = new Map(entries);
    this.duration = Math.min(...entries.map(([, buffer]) => buffer.duration));
    this.loopStart = 0;
    this.loopEnd = this.duration;
    this.offset = 0;
    this.active = null;
  }

  position() {
    if (!this.playing) return this.offset;
    let t = this.startOffset + (this.context.currentTime - this.startedAt);
    if (t >= this.loopEnd) t = this.loopStart + ((t - this.loopStart) % (this.loopEnd - this.loopStart));
    return t;
  }

  play(key) {
    if (this.context.state === "suspended") this.context.resume();
    let position = this.position();
    if (position < this.loopStart || position >= this.loopEnd - 0.01) position = this.loopStart;
    const now = this.context.currentTime;
    this.fadeOut(now);
    const source = this.context.createBufferSource();
    source.buffer = this.buffers.get(key);
    source.loop = true;
    source.loopStart = this.loopStart;
    source.loopEnd = this.loopEnd;
    const gain = this.context.createGain();
    gain.gain.setValueAtTime(0, now);
    gain.gain.linearRampToValueAtTime(1, now + FADE_S);
    source.connect(gain).connect(this.context.destination);
    source.start(now, position);
    this.node = { source, gain };
    this.startedAt = now;
    this.startOffset = position;
    this.playing = true;
    this.active = key;
    this.onActivate(key);
  }

  fadeOut(now) {
    if (!this.node) return;
    const { source, gain } = this.node;
    gain.gain.cancelScheduledValues(now);
    gain.gain.setValueAtTime(gain.gain.value, now);
    gain.gain.linearRampToValueAtTime(0, now + FADE_S);
    source.stop(now + FADE_S + 0.005);
    this.node = null;
  }

  stop() {
    if (!this.playing) return;
    this.offset = this.position();
    this.playing = false;
    this.fadeOut(this.context.currentTime);
  }

  seek(seconds) {
    this.offset = Math.max(0, Math.min(seconds, this.duration));
    if (this.playing) { this.playing = false; this.play(this.active); }
  }

  setLoop(start, end) {
    const position = this.position();
    this.loopStart = start;
    this.loopEnd = end;
    if (this.playing) { this.playing = false; this.offset = position; this.play(this.active); }
  }
}

let player = null;

function tick() {
  if (player && app.trial && player.duration > 0) {
    const position = player.position();
    $("playhead").style.left = `${(100 * position) / player.duration}%`;
    $("time").textContent = `${position.toFixed(1)} s`;
  }
  requestAnimationFrame(tick);
}

// ---------------------------------------------------------------- trials

function conditionColumn(key, label) {
  const column = document.createElement("div");
  column.className = "condition" + (key === REFERENCE ? " reference" : "");
  column.dataset.key = key;
  const value = document.createElement("div");
  value.className = "value";
  column.append(value);
  if (key === REFERENCE) {
    const placeholder = document.createElement("div");
    placeholder.className = "placeholder";
    placeholder.textContent = "reference (not rated)";
    column.append(placeholder);
  } else {
    const slider = document.createElement("input");
    slider.type = "range";
    slider.min = "0";
    slider.max = "100";
    slider.step = "1";
    slider.value = String(app.ratings[key]);
    slider.setAttribute("aria-label", `Rating of ${label}`);
    slider.dataset.slot = key;
    value.textContent = slider.value;
    slider.addEventListener("input", () => {
      app.ratings[key] = Number(slider.value);
      value.textContent = slider.value;
      saveDraft();
    });
    column.append(slider);
  }
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.title = key === REFERENCE ? "Play the reference (R)" : `Play ${label} (${Number(key) + 1})`;
  button.addEventListener("click", () => player.play(key));
  column.append(button);
  return column;
}

function markActive(key) {
  for (const column of document.querySelectorAll(".condition")) {
    column.classList.toggle("active", column.dataset.key === String(key));
  }
  if (key !== REFERENCE) {
    app.played.add(Number(key));
    const button = document.querySelector(`.condition[data-key="${key}"] button`);
    if (button) button.classList.add("played");
    saveDraft();
  }
  updateStatus();
}

function updateStatus() {
  if (!app.trial) return;
  const missing = [];
  for (let slot = 0; slot < app.trial.slots; slot++) if (!app.played.has(slot)) missing.push(slotLabel(slot));
  const next = $("next");
  if (app.trial.mode === "training") {
    $("trial-status").textContent = "Listen to every version to get to know them; the ratings come next.";
    next.disabled = false;
    return;
  }
  next.disabled = missing.length > 0;
  $("trial-status").textContent = missing.length
    ? `Play every version before continuing (not played yet: ${missing.join(", ")}).`
    : "All versions played. Adjust your ratings, then continue.";
}

function saveDraft() {
  if (!app.trial || app.trial.mode !== "trial") return;
  const draft = { ratings: app.ratings, played: [...app.played], comment: $("trial-comment").value };
  localStorage.setItem(storageKey(`draft:${app.token}:${app.trial.index}`), JSON.stringify(draft));
}

function loadDraft(index) {
  try {
    return JSON.parse(localStorage.getItem(storageKey(`draft:${app.token}:${index}`)) || "null");
  } catch (err) {
    return null;
  }
}

async function openTrial(index, mode) {
  player.stop();
  show("view-trial");
  $("player").hidden = true;
  $("loading").hidden = false;
  const info = await request("GET", `api/trials/${index}`);
  app.trial = { index, slots: info.slots, duration: info.duration_s, mode };
  const draft = mode === "trial" ? loadDraft(index) : null;
  app.ratings = draft && draft.ratings.length === info.slots ? draft.ratings : new Array(info.slots).fill(0);
  app.played = new Set(draft ? draft.played : []);
  $("trial-comment").value = draft ? draft.comment : "";
  $("progress").textContent = mode === "training" ? "Training" : `Trial ${index + 1} of ${info.trials}`;
  $("trial-heading").textContent = mode === "training"
    ? "Training: get to know the versions"
    : `Trial ${index + 1} of ${info.trials}`;
  $("trial-instructions").textContent = mode === "training"
    ? `${app.test.instructions} In this training round you only listen: play the reference and every ` +
      "version (the buttons below), switch between them while playing, and try the loop. " +
      "You will rate them in the test."
    : app.test.instructions;
  const urls = [[REFERENCE, `api/trials/${index}/audio/${REFERENCE}`]];
  for (let slot = 0; slot < info.slots; slot++) urls.push([slot, `api/trials/${index}/audio/${slot}`]);
  await player.load(urls);
  const container = $("conditions");
  container.replaceChildren(conditionColumn(REFERENCE, "Reference"));
  for (let slot = 0; slot < info.slots; slot++) {
    container.append(conditionColumn(slot, slotLabel(slot)));
  }
  for (const slot of app.played) {
    const button = document.querySelector(`.condition[data-key="${slot}"] button`);
    if (button) button.classList.add("played");
  }
  $("player").classList.toggle("training", mode === "training");
  $("comment-label").hidden = $("trial-comment").hidden = mode === "training";
  $("next").textContent = mode === "training" ? "Start the test"
    : (index + 1 < info.trials ? "Next" : "Save and continue");
  setupLoop();
  $("loading").hidden = true;
  $("player").hidden = false;
  updateStatus();
}

function setupLoop() {
  const start = $("loop-start");
  const end = $("loop-end");
  for (const input of [start, end]) input.max = String(player.duration);
  start.value = "0";
  end.value = String(player.duration);
  drawLoop();
}

function drawLoop() {
  const start = player.loopStart;
  const end = player.loopEnd;
  $("loop-region").style.left = `${(100 * start) / player.duration}%`;
  $("loop-region").style.width = `${(100 * (end - start)) / player.duration}%`;
  $("loop-label").textContent = `${start.toFixed(1)} s - ${end.toFixed(1)} s`;
}

function onLoopInput(event) {
  let start = Number($("loop-start").value);
  let end = Number($("loop-end").value);
  if (end - start < MIN_LOOP_S) {
    if (event.target.id === "loop-start") start = Math.max(0, end - MIN_LOOP_S);
    else end = Math.min(player.duration, start + MIN_LOOP_S);
    $("loop-start").value = String(start);
    $("loop-end").value = String(end);
  }
  player.setLoop(start, end);
  drawLoop();
}

async function onNext() {
  const trial = app.trial;
  $("next").disabled = true;
  try {
    if (trial.mode === "training") {
      localStorage.setItem(storageKey(`trained:${app.token}`), "1");
      await openTrial(0, "trial");
      return;
    }
    const played = Array.from({ length: trial.slots }, (_, slot) => app.played.has(slot));
    const session = await request("POST", `api/trials/${trial.index}`,
      { ratings: app.ratings, played, comment: $("trial-comment").value });
    localStorage.removeItem(storageKey(`draft:${app.token}:${trial.index}`));
    await resume(session);
  } catch (err) {
    showError(err);
    updateStatus();
  }
}

// ---------------------------------------------------------------- session

async function resume(session) {
  $("title").textContent = app.test.name;
  if (session.next_trial === null) {
    player.stop();
    app.trial = null;
    $("progress").textContent = "";
    show(session.finished ? "view-thanks" : "view-done");
    return;
  }
  const trained = localStorage.getItem(storageKey(`trained:${app.token}`));
  await openTrial(session.next_trial, session.next_trial === 0 && !trained ? "training" : "trial");
}

async function onStart(event) {
  event.preventDefault();
  $("start-error").textContent = "";
  try {
    const session = await request("POST", "api/participants", { participant_id: $("participant-id").value });
    app.token = session.token;
    localStorage.setItem(storageKey("token"), app.token);
    await resume(session);
  } catch (err) {
    $("start-error").textContent = err.message;
  }
}

async function onFinish() {
  $("finish").disabled = true;
  try {
    await resume(await request("POST", "api/finish", { comment: $("final-comment").value }));
  } catch (err) {
    $("done-status").textContent = err.message;
    $("finish").disabled = false;
  }
}

function onKey(event) {
  const tag = event.target.tagName;
  const typing = tag === "TEXTAREA" || (tag === "INPUT" && event.target.type !== "range");
  if (!app.trial || $("player").hidden || $("view-trial").hidden || typing) return;
  if (event.key === " ") {
    event.preventDefault();
    if (player.playing) player.stop(); else player.play(player.active ?? REFERENCE);
  } else if (event.key === "r" || event.key === "R") {
    player.play(REFERENCE);
  } else if (/^[1-9]$/.test(event.key) && Number(event.key) <= app.trial.slots) {
    player.play(Number(event.key) - 1);
  }
}

async function init() {
  player = new Player();
  player.onActivate = markActive;
  $("start-form").addEventListener("submit", onStart);
  $("play").addEventListener("click", () => player.play(player.active ?? REFERENCE));
  $("stop").addEventListener("click", () => player.stop());
  $("next").addEventListener("click", onNext);
  $("finish").addEventListener("click", onFinish);
  $("loop-start").addEventListener("input", onLoopInput);
  $("loop-end").addEventListener("input", onLoopInput);
  $("loop-reset").addEventListener("click", () => {
    $("loop-start").value = "0";
    $("loop-end").value = String(player.duration);
    player.setLoop(0, player.duration);
    drawLoop();
  });
  $("timeline").addEventListener("click", (event) => {
    const box = event.currentTarget.getBoundingClientRect();
    player.seek(((event.clientX - box.left) / box.width) * player.duration);
  });
  $("trial-comment").addEventListener("input", saveDraft);
  document.addEventListener("keydown", onKey);
  requestAnimationFrame(tick);
  try {
    app.test = await request("GET", "api/test");
    document.title = app.test.name;
    $("title").textContent = app.test.name;
    $("start-instructions").textContent = app.test.instructions;
    app.token = localStorage.getItem(storageKey("token"));
    if (app.token) {
      try {
        await resume(await request("GET", "api/session"));
        return;
      } catch (err) {
        if (err.status !== 401) throw err;
        localStorage.removeItem(storageKey("token"));
        app.token = null;
      }
    }
    show("view-start");
  } catch (err) {
    showError(err);
  }
}

init();
