// The listening-test page: plain JS, no build step.
// Views: start (participant ID) -> training (trial 1 without answers) -> trials -> closing comment.
// Test types (GET api/test .type): "mushra" (reference + every condition rated 0-100), "bs1116"
// (reference + A and B graded 1.0-5.0), "ab" (which of A and B is preferred), "abx" (is X A or B?).
// Playback: every version of a trial is decoded into an AudioBuffer; switching starts the new
// version at the current position with a short crossfade, so versions stay in sync. The loop is
// drawn by dragging across the waveform of the excerpt.
"use strict";

const FADE_S = 0.008;          // crossfade when switching or stopping
const MIN_LOOP_S = 0.5;        // shortest loop region
const DRAG_PX = 4;             // a pointer moving less than this is a click (seek), not a loop
const TOKEN_HEADER = "X-Participant-Token";
const REFERENCE = "reference"; // the open reference (the page never learns which slot hides it)
const X = "x";                 // ABX's X
const SCALES = {
  mushra: ["Excellent", "Good", "Fair", "Poor", "Bad"],
  bs1116: ["5 Imperceptible", "4 Perceptible, not annoying", "3 Slightly annoying", "2 Annoying", "1 Very annoying"],
};
const RANGES = { mushra: { min: 0, max: 100, step: 1, start: 0 }, bs1116: { min: 1, max: 5, step: 0.1, start: 5 } };
const QUESTIONS = {
  ab: { question: "Which version do you prefer?", labels: ["I prefer A", "I prefer B"], missing: "choose the version you prefer" },
  abx: { question: "Is X the same as A or as B?", labels: ["X is A", "X is B"], missing: "say whether X is A or B" },
};

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
  trial: null,       // {index, slots, duration, mode, type, required: [keys to play]}
  ratings: [],       // MUSHRA ratings or BS.1116 grades, per slot
  choice: null,      // AB / ABX answer: 0 (A) or 1 (B)
  played: new Set(), // keys played: slot numbers and "x"
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
    this.first = null;        // key of the first version loaded (played by Play before any choice)
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
    this.first = entries[0][0];
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
    else if (position < start || position >= end) this.offset = start;
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

// ---------------------------------------------------------------- waveform and loop

function drawWaveform(buffer) {
  const canvas = $("waveform");
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, width, height);
  if (!buffer) return;
  const channels = Array.from({ length: buffer.numberOfChannels }, (_, c) => buffer.getChannelData(c));
  const perColumn = Math.max(1, Math.floor(buffer.length / width));
  let peak = 1e-6;  // drawn to the excerpt's own peak (loudness-matched excerpts are quiet)
  for (const data of channels) for (let i = 0; i < data.length; i++) peak = Math.max(peak, Math.abs(data[i]));
  context.fillStyle = "#7b8794";
  const middle = height / 2;
  for (let x = 0; x < width; x++) {
    let low = 0;
    let high = 0;
    const start = Math.floor((x * buffer.length) / width);
    for (const data of channels) {
      for (let i = start; i < Math.min(start + perColumn, data.length); i++) {
        if (data[i] < low) low = data[i];
        if (data[i] > high) high = data[i];
      }
    }
    const top = middle - (high / peak) * middle * 0.95;
    const bottom = middle - (low / peak) * middle * 0.95;
    context.fillRect(x, top, 1, Math.max(1, bottom - top));
  }
}

function timeAt(clientX) {
  const box = $("timeline").getBoundingClientRect();
  return Math.max(0, Math.min(1, (clientX - box.left) / box.width)) * player.duration;
}

function showLoop(start, end) {
  $("loop-region").style.left = `${(100 * start) / player.duration}%`;
  $("loop-region").style.width = `${(100 * (end - start)) / player.duration}%`;
  const whole = start <= 0 && end >= player.duration;
  $("loop-label").textContent = whole ? "Loop: whole excerpt" : `Loop: ${start.toFixed(1)} s - ${end.toFixed(1)} s`;
}

function drawLoop() {
  showLoop(player.loopStart, player.loopEnd);
}

// Drag across the waveform: the loop region follows the pointer and is set on release.
// A press that hardly moves is a click: it moves the playback position instead.
const drag = { active: false, x0: 0, t0: 0, moved: false };

function onPointerDown(event) {
  if (!player.duration) return;
  event.preventDefault();
  $("timeline").setPointerCapture(event.pointerId);
  Object.assign(drag, { active: true, x0: event.clientX, t0: timeAt(event.clientX), moved: false });
}

function dragRegion(clientX) {
  const t = timeAt(clientX);
  let start = Math.min(drag.t0, t);
  let end = Math.max(drag.t0, t);
  if (end - start < MIN_LOOP_S) {
    end = Math.min(player.duration, start + MIN_LOOP_S);
    start = Math.max(0, end - MIN_LOOP_S);
  }
  return [start, end];
}

function onPointerMove(event) {
  if (!drag.active) return;
  if (Math.abs(event.clientX - drag.x0) >= DRAG_PX) drag.moved = true;
  if (drag.moved) showLoop(...dragRegion(event.clientX));
}

function onPointerUp(event) {
  if (!drag.active) return;
  drag.active = false;
  if (drag.moved) {
    player.setLoop(...dragRegion(event.clientX));
  } else {
    player.seek(timeAt(event.clientX));
  }
  drawLoop();
}

function resetLoop() {
  player.setLoop(0, player.duration);
  drawLoop();
}

// ---------------------------------------------------------------- trials

const isSlot = (key) => typeof key === "number";
const keyLabel = (key) => (key === REFERENCE ? "Reference" : key === X ? "X" : slotLabel(key));
const keyTitle = (key) => (key === REFERENCE ? "Play the reference (R)" : key === X ? "Play X (X)" : `Play ${slotLabel(key)} (${key + 1})`);

function conditionColumn(key) {
  const type = app.trial.type;
  const label = keyLabel(key);
  const column = document.createElement("div");
  column.className = "condition" + (key === REFERENCE ? " reference" : "");
  column.dataset.key = String(key);
  const rated = isSlot(key) && RANGES[type];
  if (RANGES[type]) {
    const value = document.createElement("div");
    value.className = "value";
    column.append(value);
    if (!rated) {
      const placeholder = document.createElement("div");
      placeholder.className = "placeholder";
      placeholder.textContent = "reference (not rated)";
      column.append(placeholder);
    } else {
      const range = RANGES[type];
      const slider = document.createElement("input");
      slider.type = "range";
      slider.min = String(range.min);
      slider.max = String(range.max);
      slider.step = String(range.step);
      slider.value = String(app.ratings[key]);
      slider.setAttribute("aria-label", `${type === "bs1116" ? "Grade" : "Rating"} of ${label}`);
      slider.dataset.slot = key;
      const show = () => { value.textContent = type === "bs1116" ? Number(slider.value).toFixed(1) : slider.value; };
      show();
      slider.addEventListener("input", () => {
        app.ratings[key] = Number(slider.value);
        show();
        saveDraft();
      });
      column.append(slider);
    }
  }
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.title = keyTitle(key);
  button.addEventListener("click", () => player.play(key));
  column.append(button);
  return column;
}

function markActive(key) {
  for (const column of document.querySelectorAll(".condition")) {
    column.classList.toggle("active", column.dataset.key === String(key));
  }
  if (key !== REFERENCE) {
    app.played.add(key);
    const button = document.querySelector(`.condition[data-key="${key}"] button`);
    if (button) button.classList.add("played");
    saveDraft();
  }
  updateStatus();
}

function updateStatus() {
  if (!app.trial) return;
  const missing = app.trial.required.filter((key) => !app.played.has(key)).map(keyLabel);
  const next = $("next");
  if (app.trial.mode === "training") {
    $("trial-status").textContent = "Listen to every version to get to know them; the answers come next.";
    next.disabled = false;
    return;
  }
  const question = QUESTIONS[app.trial.type];
  const unanswered = question && app.choice === null;
  next.disabled = missing.length > 0 || unanswered;
  $("trial-status").textContent = missing.length
    ? `Play every version before continuing (not played yet: ${missing.join(", ")}).`
    : unanswered ? `All versions played: now ${question.missing}.`
      : question ? "Answered. Change your answer if you like, then continue."
        : `All versions played. Adjust your ${app.trial.type === "bs1116" ? "grades" : "ratings"}, then continue.`;
}

function saveDraft() {
  if (!app.trial || app.trial.mode !== "trial") return;
  const draft = { ratings: app.ratings, choice: app.choice, played: [...app.played], comment: $("trial-comment").value };
  localStorage.setItem(storageKey(`draft:${app.token}:${app.trial.index}`), JSON.stringify(draft));
}

function loadDraft(index) {
  try {
    return JSON.parse(localStorage.getItem(storageKey(`draft:${app.token}:${index}`)) || "null");
  } catch (err) {
    return null;
  }
}

function setupScale(type) {
  const scale = $("scale");
  scale.className = `scale ${SCALES[type] ? type : "none"}`;
  scale.replaceChildren(...(SCALES[type] || []).map((text) => {
    const span = document.createElement("span");
    span.textContent = text;
    return span;
  }));
}

function setupChoice(type) {
  const question = QUESTIONS[type];
  $("choice").hidden = !question;
  for (const input of document.querySelectorAll('input[name="choice"]')) {
    input.checked = app.choice !== null && Number(input.value) === app.choice;
  }
  if (!question) return;
  $("choice-question").textContent = question.question;
  question.labels.forEach((text, i) => { $(`choice-label-${i}`).textContent = text; });
}

async function openTrial(index, mode) {
  player.stop();
  show("view-trial");
  $("player").hidden = true;
  $("loading").hidden = false;
  const info = await request("GET", `api/trials/${index}`);
  const type = info.type;
  const slots = Array.from({ length: info.slots }, (_, slot) => slot);
  const urls = [];
  if (info.known) urls.push([REFERENCE, info.known]);
  slots.forEach((slot) => urls.push([slot, info.slot_urls[slot]]));
  if (info.x) urls.push([X, info.x]);
  const required = info.x ? [...slots, X] : slots;
  app.trial = { index, slots: info.slots, duration: info.duration_s, mode, type, required };
  const draft = mode === "trial" ? loadDraft(index) : null;
  const range = RANGES[type];
  app.ratings = draft && Array.isArray(draft.ratings) && draft.ratings.length === info.slots
    ? draft.ratings : new Array(info.slots).fill(range ? range.start : 0);
  app.choice = draft && (draft.choice === 0 || draft.choice === 1) ? draft.choice : null;
  app.played = new Set(draft ? draft.played : []);
  $("trial-comment").value = draft ? draft.comment : "";
  $("progress").textContent = mode === "training" ? "Training" : `Trial ${index + 1} of ${info.trials}`;
  $("trial-heading").textContent = mode === "training"
    ? "Training: get to know the versions"
    : `Trial ${index + 1} of ${info.trials}`;
  $("trial-instructions").textContent = mode === "training"
    ? `${app.test.instructions} In this training round you only listen: play every version (the buttons ` +
      "below), switch between them while playing, and drag across the waveform to loop a passage. " +
      "You will answer in the test."
    : app.test.instructions;
  await player.load(urls);
  const container = $("conditions");
  container.replaceChildren(...urls.map(([key]) => conditionColumn(key)));
  for (const key of app.played) {
    const button = document.querySelector(`.condition[data-key="${key}"] button`);
    if (button) button.classList.add("played");
  }
  setupScale(type);
  setupChoice(type);
  $("player").classList.toggle("training", mode === "training");
  $("comment-label").hidden = $("trial-comment").hidden = mode === "training";
  $("next").textContent = mode === "training" ? "Start the test"
    : (index + 1 < info.trials ? "Next" : "Save and continue");
  $("loading").hidden = true;
  $("player").hidden = false;
  // the waveform of the first version (the reference where there is one): what every version plays
  drawWaveform(player.buffers.get(urls[0][0]));
  drawLoop();
  updateStatus();
}

function answer() {
  const trial = app.trial;
  const played = (keys) => keys.map((key) => app.played.has(key));
  const comment = $("trial-comment").value;
  if (trial.type === "mushra") return { ratings: app.ratings, played: played(trial.required), comment };
  if (trial.type === "bs1116") return { grades: app.ratings, played: played(trial.required), comment };
  return { choice: app.choice, played: played(trial.required), comment };
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
    const session = await request("POST", `api/trials/${trial.index}`, answer());
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
    if (player.playing) player.stop(); else player.play(player.active ?? player.first);
  } else if ((event.key === "r" || event.key === "R") && player.buffers.has(REFERENCE)) {
    player.play(REFERENCE);
  } else if ((event.key === "x" || event.key === "X") && player.buffers.has(X)) {
    player.play(X);
  } else if (/^[1-9]$/.test(event.key) && Number(event.key) <= app.trial.slots) {
    player.play(Number(event.key) - 1);
  }
}

async function init() {
  player = new Player();
  player.onActivate = markActive;
  $("start-form").addEventListener("submit", onStart);
  $("play").addEventListener("click", () => player.play(player.active ?? player.first));
  $("stop").addEventListener("click", () => player.stop());
  $("next").addEventListener("click", onNext);
  $("finish").addEventListener("click", onFinish);
  $("loop-reset").addEventListener("click", resetLoop);
  $("timeline").addEventListener("pointerdown", onPointerDown);
  $("timeline").addEventListener("pointermove", onPointerMove);
  $("timeline").addEventListener("pointerup", onPointerUp);
  $("timeline").addEventListener("pointercancel", () => { drag.active = false; drawLoop(); });
  for (const input of document.querySelectorAll('input[name="choice"]')) {
    input.addEventListener("change", () => {
      app.choice = Number(input.value);
      saveDraft();
      updateStatus();
    });
  }
  window.addEventListener("resize", () => {
    if (app.trial && player.buffers.size) drawWaveform(player.buffers.values().next().value);
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
