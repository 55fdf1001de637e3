// mixdown studio: open a session, edit the console, listen, download. Talks to /api (see app.py).
//
// Every edit is heard at once through the live preview (player.js: the channel strips the
// server computed, with fader, pan, mute, solo, sends and the master gain applied in the
// page), while the server renders the exact mix in the background; the page crossfades to
// the exact render when it arrives. Meters (meter-worklet.js) read what the page plays.

import { clamp, drawEqCurve, drawMeter, drawTransferCurve, el, eqAxes, fmtDb, fmtPan, fmtTime, knob,
  scaleMap } from './widgets.js';
import { Player } from './player.js';
import { eqCurveDb, levelForReductionDb, staticGainReductionDb } from './dsp.js';
import { Schema, checkValue, fmtValue, getValue, inputStep, knobStep, label, maxAt, setValue } from './schema.js';

const $ = (selector) => document.querySelector(selector);
const COMMIT_DELAY_MS = 120;

// Purely visual choices. Every setting's range, default, unit, scale and digits come from
// the server's parameter schema (app.schema); these only shape the controls.
// A channel fader's throw is narrower than the schema's gain range (-80..+24 dB): below
// -60 dB a channel is lost in any mix and above +12 dB it clips, so the throw spends its
// length where mixing happens. The dB box beside it takes the full range.
const FADER_MIN_DB = -60, FADER_MAX_DB = 12, FADER_SCALE_STEP_DB = 12;
// The master trim follows loudness normalisation, so it only corrects by a few dB; a bus
// fader offsets its members by as much.
const MASTER_FADER_MIN_DB = -24, MASTER_FADER_MAX_DB = 12, MASTER_SCALE_STEP_DB = 6;
const FADER_STEP_DB = 0.1;  // finer than a level change anyone hears
// The send knob's leftmost position is "off" (null); sends under -60 dB are inaudible, so
// the knob's throw starts there. Settings files keep the schema's full range.
const SEND_KNOB_FLOOR_DB = -60;
const NEW_BAND_TYPE = 'peak';  // the band engineers add most; its values are the schema defaults
const SLIDER_STEPS = 1000;  // positions of a compressor slider over its range
const EQ_RANGE_DB = 18;  // the EQ plot's vertical range (band gains beyond it are typed)
const Q_WHEEL_STEP = 1.1;  // one wheel notch over an EQ handle multiplies or divides its Q by this
const HANDLE_RADIUS_PX = 10;  // how close a click must land to grab an EQ handle
// Switching a compressor on starts from this preset, not from the schema's defaults: those
// are the settings at which the compressor does nothing (0 dB threshold, 1:1), right for a
// settings file's "neutral" value but useless as a starting point. -18 dB / 3:1 with a 10 ms
// attack and 120 ms release is a common moderate channel setting: a few dB of reduction on
// typical stems, transients kept; the knee and makeup are the schema's defaults.
const COMPRESSOR_PRESET = { threshold_db: -18, ratio: 3, attack_ms: 10, release_ms: 120 };
// Peak-hold on the meters: the highest peak stays this long, then falls at this rate.
const PEAK_HOLD_MS = 1000, PEAK_FALL_DB_PER_S = 20;
// The live preview holds every channel strip decoded in the page (4 bytes a sample); above this
// many samples (512 MiB: e.g. 32 mono stems of 1.5 min) it is off and edits wait for the server.
const PREVIEW_MAX_SAMPLES = 2 ** 27;
// Channel classes the "group drums" button gathers into a "drums" bus.
const DRUM_CLASSES = ['kick', 'snare', 'hihat', 'tom', 'overhead', 'room'];

const app = {
  config: null,
  schema: null,     // the parameter schema (Schema of config.schema)
  session: null,     // the server's state of the open session
  params: null,      // the settings shown (may be ahead of the server while an edit is in flight)
  solo: [],          // soloed channels as shown (may be ahead of the server)
  selected: null,    // channel shown in the detail panel
  files: [],
  polling: null,
  inflight: false,
  pending: false,
  commitTimer: null,
  loaded: {},        // edit number / method of the audio loaded per source
  exactKey: null,    // the settings (and solo) of the exact edited mix loaded
  strips: {},        // channel -> key of the strip loaded for the preview
  reverbKey: null,   // the reverb settings of the impulse response loaded
  groups: [],        // buses: [{name, members, gain_db}] (kept in the browser per session)
  groupDrag: null,   // {name, deltaDb} while a bus fader moves
  bypassed: {},      // channel -> EQ bands switched off (kept in the browser per session)
  holds: {},         // meter id -> {db, at}: peak hold
  player: null,
};
window.mixdownStudio = app;  // for tests and the browser console

// ---------------------------------------------------------------- HTTP

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body instanceof FormData) options.body = body;
  else if (body !== undefined) { options.body = JSON.stringify(body); options.headers['Content-Type'] = 'application/json'; }
  const response = await fetch(path, options);
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try { detail = (await response.json()).detail || detail; } catch { /* not JSON */ }
    throw new Error(detail);
  }
  return response.status === 204 ? null : response.json();
}

function toast(message, kind = 'error') {
  const node = $('#toast');
  node.textContent = message;
  node.className = `toast ${kind}`;
  node.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { node.hidden = true; }, kind === 'error' ? 7000 : 3000);
}

function setBusy(busy, text) {
  document.body.dataset.busy = busy ? 'true' : 'false';
  const status = $('#render-status');
  status.textContent = text ?? (busy ? 'rendering…' : '');
  status.classList.toggle('busy', busy);
}

// ---------------------------------------------------------------- views

function show(view) {
  for (const id of ['open-view', 'progress-view', 'studio-view']) $(`#${id}`).hidden = id !== view;
  $('#session-actions').hidden = view !== 'studio-view';
  if (view !== 'studio-view') { $('#session-info').textContent = ''; $('#warnings').hidden = true; }
}

async function route() {
  clearTimeout(app.polling);
  app.player?.stop();
  const id = location.hash.slice(1);
  if (!id) { await showOpen(); return; }
  app.session = null;
  app.loaded = {};
  app.selected = null;
  await poll(id);
}

async function showOpen() {
  show('open-view');
  document.title = 'mixdown studio';
  const { sessions } = await api('GET', '/api/sessions');
  const list = $('#recent');
  list.replaceChildren();
  if (!sessions.length) list.append(el('li', { class: 'muted' }, 'No sessions yet.'));
  for (const s of sessions) {
    const when = new Date(s.created_s * 1000).toLocaleString();
    list.append(el('li', { onclick: () => { location.hash = s.id; } },
      el('div', { class: 'what' },
        el('div', {}, s.stems.length ? s.stems.join(', ') : '(stems loading)'),
        el('div', { class: 'muted small' }, `${when} · ${s.method} · ${s.source}`)),
      el('span', { class: `badge ${s.status}` }, s.status),
      el('button', { class: 'small', title: 'Delete session', onclick: async (e) => {
        e.stopPropagation();
        if (!confirm('Delete this session?')) return;
        await api('DELETE', `/api/sessions/${s.id}`);
        showOpen();
      } }, '×')));
  }
}

async function poll(id) {
  let state;
  try {
    state = await api('GET', `/api/sessions/${id}`);
  } catch (error) {
    show('progress-view');
    showProgressError(error.message);
    return;
  }
  if (location.hash.slice(1) !== id) return;
  if (state.status === 'mixing') {
    show('progress-view');
    $('#progress-title').textContent = `Mixing with ${state.method}…`;
    $('#progress-stage').textContent = state.progress.stage;
    $('#mix-bar').style.width = `${Math.round(100 * progressFraction(state.progress))}%`;
    $('#progress-error').hidden = true;
    $('#progress-back').hidden = true;
    app.polling = setTimeout(() => poll(id), 200);
    return;
  }
  if (state.status === 'error') {
    show('progress-view');
    $('#progress-title').textContent = 'The session could not be mixed';
    showProgressError(state.message);
    return;
  }
  openStudio(state);
}

function progressFraction({ stage, fraction }) {
  const base = { queued: 0, 'loading stems': 0.05 }[stage];
  if (base !== undefined) return base;
  return stage === 'rendering' ? 0.55 + 0.45 * fraction : 0.25;
}

function showProgressError(message) {
  $('#progress-error').textContent = message;
  $('#progress-error').hidden = false;
  $('#progress-back').hidden = false;
  $('#mix-bar').style.width = '0';
  $('#progress-stage').textContent = '';
}

// ---------------------------------------------------------------- opening a session

function setupOpenForm() {
  const zone = $('#drop-zone');
  const addFiles = (files) => {
    for (const file of files) {
      if (!app.files.some((f) => f.name === file.name)) app.files.push(file);
    }
    renderFileList();
  };
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => { e.preventDefault(); zone.classList.remove('over'); addFiles(e.dataTransfer.files); });
  $('#stem-files').addEventListener('change', (e) => { addFiles(e.target.files); e.target.value = ''; });
  $('#folder').addEventListener('change', renderFileList);
  $('#open-form').addEventListener('submit', (e) => { e.preventDefault(); startSession(); });
  $('#progress-back').addEventListener('click', () => { location.hash = ''; });
}

function renderFileList() {
  const list = $('#file-list');
  list.replaceChildren(...app.files.map((file, i) => el('li', {},
    el('span', {}, file.name, /\.(rpp|mmpz?)$/i.test(file.name) ? el('span', { class: 'badge' }, 'project') : null),
    el('span', { class: 'muted' }, `${(file.size / 2 ** 20).toFixed(1)} MiB`),
    el('button', { class: 'small', type: 'button', title: 'Remove', onclick: () => { app.files.splice(i, 1); renderFileList(); } }, '×'))));
  $('#start').disabled = !app.files.length && !$('#folder').value;
}

async function startSession() {
  const form = new FormData();
  form.append('method', $('#method').value);
  if (app.files.length) for (const file of app.files) form.append('stems', file, file.name);
  else form.append('folder', $('#folder').value);
  // Sent with the stems, so that a method mixing like it (style) sees it from the start.
  const reference = $('#reference-file').files[0];
  if (reference && app.files.length) form.append('reference', reference, reference.name);
  $('#start').disabled = true;
  const bar = $('#upload-progress');
  bar.hidden = false;
  try {
    const state = await upload('/api/sessions', form, (done) => {
      bar.querySelector('.bar').style.width = `${Math.round(done * 100)}%`;
      bar.querySelector('.label').textContent = done < 1 ? `uploading ${Math.round(done * 100)}%` : 'checking…';
    });
    if (reference && !app.files.length) {
      const refForm = new FormData();
      refForm.append('reference', reference, reference.name);
      await api('PUT', `/api/sessions/${state.id}/reference`, refForm).catch((error) => toast(`reference: ${error.message}`));
    }
    app.files = [];
    renderFileList();
    location.hash = state.id;
  } catch (error) {
    toast(error.message);
    $('#start').disabled = false;
  } finally {
    bar.hidden = true;
  }
}

// fetch() has no upload progress; XMLHttpRequest does.
function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new Error(body?.detail || `${xhr.status} ${xhr.statusText}`));
    };
    xhr.onerror = () => reject(new Error('upload failed: the server closed the connection (file too large?)'));
    xhr.send(form);
  });
}

// ---------------------------------------------------------------- the studio

async function openStudio(state) {
  show('studio-view');
  await app.player.open(state.sample_rate, state.true_peak_meter);
  app.exactKey = null;
  app.strips = {};
  app.reverbKey = null;
  app.groupDrag = null;
  app.groups = stored(state.id, 'groups', []);
  app.bypassed = stored(state.id, 'bypassed', {});
  for (const s of state.stems) app.player.addChannel(s.name, s.channels === 2);
  applyState(state);
  buildConsole();
  await loadAudio();
  loadPreview();
}

// Page-side state of a session (buses, bypassed EQ bands), kept in the browser.
function stored(id, what, fallback) {
  try { return JSON.parse(localStorage.getItem(`mixdown:${id}:${what}`)) ?? fallback; } catch { return fallback; }
}

function store(what, value) {
  try { localStorage.setItem(`mixdown:${app.session.id}:${what}`, JSON.stringify(value)); } catch { /* private mode */ }
}

function applyState(state, { keepParams = false } = {}) {
  app.session = state;
  if (!keepParams) { app.params = structuredClone(state.params); app.solo = [...state.solo]; }
  document.body.dataset.edit = String(state.edit);
  document.title = `mixdown studio · ${state.stems.map((s) => s.name).slice(0, 3).join(', ')}`;
  $('#session-info').replaceChildren(
    el('b', {}, `${state.stems.length} stems`), ` · ${state.duration_s.toFixed(1)} s · ${state.sample_rate} Hz · `,
    `method ${state.method} · edit ${state.edit}`);
  $('#undo').disabled = !state.can_undo;
  $('#redo').disabled = !state.can_redo;
  const id = state.id;
  $('#dl-mix').href = `/api/sessions/${id}/mix.wav?download=1`;
  $('#dl-params').href = `/api/sessions/${id}/params.json`;
  $('#dl-sheet').href = `/api/sessions/${id}/sheet.csv`;
  $('#dl-reaper').href = `/api/sessions/${id}/reaper.zip?platform=${clientPlatform()}`;
  const warnings = $('#warnings');
  warnings.hidden = !state.warnings.length;
  warnings.textContent = state.warnings.map((w) => `⚠ ${w}`).join('   ');
  $('[data-source=reference]').disabled = !state.reference;
  updateReadings();
}

// The server's readings of the exact mix (integrated loudness, true peak) and the EQ thumbnails.
function updateReadings() {
  const s = app.session;
  const lufs = s.mix.loudness_lufs;
  const master = $('#master');
  if (master.querySelector('.lufs')) {
    master.querySelector('.lufs .value').textContent = lufs === null ? '−∞' : lufs.toFixed(1);
    const ceiling = app.params.master.ceiling_dbtp;
    master.querySelector('.lufs .peak').textContent =
      `mix ${fmtDb(s.mix.true_peak_dbtp)} dBTP · ceiling ${ceiling === null ? 'off' : `${fmtDb(ceiling)} dBTP`}`;
  }
  $('[data-source=edited] small').textContent = lufs === null ? '' : `${lufs.toFixed(1)} LUFS`;
  $('[data-source=reference] small').textContent = s.reference?.loudness_lufs != null ? `${s.reference.loudness_lufs.toFixed(1)} LUFS` : '';
  drawThumbnails();
  if (app.selected) drawDetailCurve();
  applyLevelMatch();
}

function drawThumbnails() {
  for (const strip of document.querySelectorAll('.strip[data-name]')) {
    const ch = channel(strip.dataset.name);
    drawEqCurve(strip.querySelector('.eq-thumb'), app.session.eq.freqs_hz,
      eqCurveDb(ch.eq, app.session.eq.freqs_hz, app.session.sample_rate));
  }
}

// Decoded audio and the loudness the server measured (X-Loudness-LUFS), if it sent one.
async function fetchAudio(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error((await response.json()).detail);
  const lufs = response.headers.get('X-Loudness-LUFS');
  const key = response.headers.get('X-Strip-Key');
  return { buffer: await app.player.decode(await response.arrayBuffer()), lufs: lufs === null ? null : Number(lufs), key };
}

// The exact mixes: the edited one (with solo), the model's, the reference.
async function loadAudio() {
  const s = app.session;
  const soloKey = s.solo.join('|');
  const jobs = [];
  const editedKey = `${s.edit}:${soloKey}`;
  if (app.loaded.edited !== editedKey) {
    const exactKey = settingsKey(s.params, s.solo);
    jobs.push(fetchAudio(`/api/sessions/${s.id}/mix.wav?monitor=1&edit=${s.edit}`).then(({ buffer }) => {
      app.player.set('edited', buffer);
      app.loaded.edited = editedKey;
      app.exactKey = exactKey;
    }));
  }
  const modelKey = `${soloKey}:${app.loaded.remixes || 0}`;
  if (app.loaded.model !== modelKey) {
    jobs.push(fetchAudio(`/api/sessions/${s.id}/mix.wav?which=model&monitor=1&k=${encodeURIComponent(modelKey)}`).then(({ buffer, lufs }) => {
      app.player.set('model', buffer);
      $('[data-source=model] small').textContent = Number.isFinite(lufs) ? `${lufs.toFixed(1)} LUFS` : '';
      app.loaded.model = modelKey;
    }));
  }
  if (s.reference && !app.loaded.reference) {
    jobs.push(fetchAudio(`/api/sessions/${s.id}/reference.wav`).then(({ buffer }) => {
      app.player.set('reference', buffer);
      app.loaded.reference = true;
    }));
  }
  try {
    await Promise.all(jobs);
  } catch (error) {
    toast(error.message);
  }
  applyLevelMatch();
  updatePreview();
}

// The preview's material: each channel's strip whose EQ or compressor changed, its gain
// reduction, and the reverb's impulse response when its decay or pre-delay changed.
async function loadPreview() {
  const s = app.session;
  const samples = s.stems.reduce((sum, stem) => sum + stem.channels, 0) * s.duration_s * s.sample_rate;
  if (samples > PREVIEW_MAX_SAMPLES) {
    document.body.dataset.preview = 'off';
    $('#render-status').title = 'live preview off: the stems are too long to hold in the page';
    return;
  }
  const jobs = s.strips.map(async (strip, index) => {
    if (app.strips[strip.name] === strip.key) return;
    const [{ buffer, key }, reduction] = await Promise.all([
      fetchAudio(`/api/sessions/${s.id}/strips/${index}.wav?key=${strip.key}`),
      strip.compressor ? api('GET', `/api/sessions/${s.id}/strips/${index}/gain_reduction?key=${strip.key}`) : null]);
    app.player.setStrip(strip.name, buffer,
      reduction && { hop: reduction.hop_frames, values: Float32Array.from(reduction.gain_reduction_db) });
    app.strips[strip.name] = key;
  });
  const reverb = s.params.master.reverb;
  const reverbKey = `${reverb.decay_s}:${reverb.predelay_ms}`;
  if (app.reverbKey !== reverbKey) {
    jobs.push(fetchAudio(`/api/sessions/${s.id}/reverb.wav?k=${encodeURIComponent(reverbKey)}`).then(({ buffer }) => {
      app.player.setReverbIr(buffer);
      app.reverbKey = reverbKey;
    }));
  }
  try {
    await Promise.all(jobs);
  } catch (error) {
    toast(`preview: ${error.message}`);
  }
  updatePreview();
  document.body.dataset.preview = app.player.hasPreview() ? 'ready' : 'loading';
}

// What the exact render of the edited mix depends on.
function settingsKey(params, solo) {
  return JSON.stringify([params, [...solo].sort()]);
}

// The strip settings (EQ, compressor) the preview would need for the settings shown.
function previewMatches() {
  if (!app.player.hasPreview()) return false;
  const server = app.session.params;
  const reverb = (p) => `${p.master.reverb.decay_s}:${p.master.reverb.predelay_ms}`;
  if (reverb(app.params) !== reverb(server) || app.reverbKey !== reverb(server)) return false;
  return app.params.channels.every((ch) => {
    const loaded = server.channels.find((c) => c.name === ch.name);
    const stripKey = app.session.strips.find((st) => st.name === ch.name)?.key;
    return loaded && app.strips[ch.name] === stripKey
      && JSON.stringify([ch.eq, ch.compressor]) === JSON.stringify([loaded.eq, loaded.compressor]);
  });
}

// Set the preview console from the settings shown and choose what is heard of the edited
// mix: the exact render when it is of these settings, else the preview if it can play them.
function updatePreview() {
  const player = app.player;
  if (!player?.ctx || !app.params) return;
  const offsets = groupOffsets();
  for (const ch of app.params.channels) {
    player.setChannel(ch.name, {
      gainDb: ch.gain_db + (offsets[ch.name] || 0), pan: ch.pan, sendDb: ch.reverb_send_db,
      audible: !ch.mute && (!app.solo.length || app.solo.includes(ch.name)) });
  }
  // The master's gain: the loudness normalisation of the last exact render, plus any trim since.
  player.setMasterGainDb(app.session.mix.master_gain_db + app.params.master.gain_db - app.session.params.master.gain_db);
  player.setReturnDb(app.params.master.reverb.return_db);
  const fresh = app.exactKey === settingsKey(app.params, app.solo) && !app.groupDrag;
  const preview = !fresh && previewMatches();
  if (preview !== player.previewing) player.setPreview(preview);
  document.body.dataset.hearing = preview ? 'preview' : 'exact';
  $('#render-status').title = preview ? 'hearing the live preview (no limiter) until the exact render arrives' : '';
}

// Bus faders offset their members: during a drag, by how far the fader moved.
function groupOffsets() {
  const offsets = {};
  if (app.groupDrag) {
    const group = app.groups.find((g) => g.name === app.groupDrag.name);
    for (const member of group?.members || []) offsets[member] = app.groupDrag.deltaDb;
  }
  return offsets;
}

function applyLevelMatch() {
  const s = app.session;
  const on = $('#level-match').checked;
  const target = s.mix.loudness_lufs;
  const ref = s.reference?.loudness_lufs;
  app.player?.setLevelGainDb('reference', on && target != null && ref != null ? target - ref : 0);
}

// REAPER finds its plug-ins by file name, which differs by system.
function clientPlatform() {
  const agent = navigator.userAgent;
  return /Mac/.test(agent) ? 'macos' : /Linux|X11/.test(agent) && !/Android/.test(agent) ? 'linux' : 'windows';
}

// -- edits

function edit(mutate, { now = false } = {}) {
  mutate(app.params);
  for (const strip of document.querySelectorAll('.strip[data-name]')) refreshSummary(strip, channel(strip.dataset.name));
  updatePreview();
  drawThumbnails();
  clearTimeout(app.commitTimer);
  setBusy(true);
  app.commitTimer = setTimeout(commit, now ? 0 : COMMIT_DELAY_MS);
}

async function commit() {
  if (app.inflight) { app.pending = true; return; }
  app.inflight = true;
  setBusy(true);
  const id = app.session.id;
  try {
    const state = await api('PUT', `/api/sessions/${id}/params`, app.params);
    applyState(state, { keepParams: app.pending || app.groupDrag !== null });
    await loadAudio();
    loadPreview();
  } catch (error) {
    toast(error.message);
    const state = await api('GET', `/api/sessions/${id}`);
    applyState(state);
    buildConsole();
  } finally {
    app.inflight = false;
    if (app.pending) { app.pending = false; commit(); } else setBusy(false);
  }
}

async function step(direction) {
  if (!app.session || app.inflight) return;
  setBusy(true);
  try {
    applyState(await api('POST', `/api/sessions/${app.session.id}/${direction}`));
    buildConsole();
    await loadAudio();
    loadPreview();
  } catch (error) {
    toast(error.message);
  } finally {
    setBusy(false);
  }
}

function channel(name) { return app.params.channels.find((c) => c.name === name); }

// -- console

function buildConsole() {
  const strips = $('#strips');
  const scroll = strips.scrollLeft;
  strips.replaceChildren(...app.params.channels.map(buildStrip), ...app.groups.map(buildGroupStrip),
    el('div', { class: 'add-bus' },
      el('button', { class: 'small', id: 'group-drums', title: 'A bus of the drum channels (kick, snare, hihat, tom, overhead, room)',
        onclick: groupDrums }, '+ drums bus'),
      el('button', { class: 'small', id: 'add-bus', title: 'A new empty bus: add channels with their bus selector',
        onclick: () => addGroup(nextGroupName(), []) }, '+ bus')));
  strips.scrollLeft = scroll;
  buildMaster();
  updateReadings();
  updatePreview();
  for (const group of app.groups) app.player.setGroup(group.name, group.members);
  if (app.selected) buildDetail();
}

function buildStrip(ch) {
  const cfg = app.config;
  const isSolo = app.solo.includes(ch.name);
  const strip = el('div', { class: `strip${app.selected === ch.name ? ' selected' : ''}`, dataset: { name: ch.name } });
  const select = () => { app.selected = ch.name; document.querySelectorAll('.strip').forEach((s) => s.classList.toggle('selected', s.dataset.name === ch.name)); buildDetail(); };
  const classes = el('select', { class: 'cls', title: 'Instrument class (used by Re-mix)',
    onchange: (e) => edit((p) => { channel(ch.name).instrument = e.target.value; }) },
  cfg.instrument_classes.map((c) => el('option', { value: c, selected: c === ch.instrument }, c)));
  const group = app.groups.find((g) => g.members.includes(ch.name));
  const bus = el('select', { class: 'grp', title: 'Bus: a bus fader moves its members together', 'aria-label': `${ch.name} bus`,
    onchange: (e) => setMembership(ch.name, e.target.value) },
  el('option', { value: '' }, 'no bus'), app.groups.map((g) => el('option', { value: g.name, selected: g === group }, g.name)),
  el('option', { value: '+' }, '+ new bus'));
  const S = app.schema;
  const panSpec = S.spec('pan'), sendSpec = S.spec('reverb_send_db'), gainSpec = S.spec('gain_db');
  const panKnob = knob({ label: 'pan', min: panSpec.min, max: panSpec.max, step: knobStep(panSpec), scale: panSpec.scale,
    value: ch.pan, defaultValue: panSpec.default, bipolar: panSpec.min < 0, format: fmtPan,
    title: 'Pan (drag, wheel, arrows; double-click: centre)',
    onInput: (v) => { channel(ch.name).pan = v; updatePreview(); },
    onChange: (v) => edit((p) => { channel(ch.name).pan = v; }) });
  const sendKnob = knob({ label: 'rev', min: SEND_KNOB_FLOOR_DB, max: sendSpec.max, scale: sendSpec.scale,
    step: knobStep(sendSpec, SEND_KNOB_FLOOR_DB, sendSpec.max), value: ch.reverb_send_db, defaultValue: sendSpec.default,
    offAtMin: sendSpec.nullable, format: (v) => fmtValue(sendSpec, v, { compact: true, digits: 1 }),
    title: `Reverb send, ${sendSpec.unit} (leftmost: off)`,
    onInput: (v) => { channel(ch.name).reverb_send_db = v; updatePreview(); },
    onChange: (v) => edit((p) => { channel(ch.name).reverb_send_db = v; }) });
  const fader = el('input', { type: 'range', class: 'fader', min: FADER_MIN_DB, max: FADER_MAX_DB, step: FADER_STEP_DB,
    value: clamp(ch.gain_db, FADER_MIN_DB, FADER_MAX_DB), 'aria-label': `${ch.name} fader`, title: `Fader (${gainSpec.unit})` });
  const box = el('input', { type: 'number', class: 'db', step: inputStep(gainSpec), min: gainSpec.min, max: gainSpec.max,
    value: ch.gain_db.toFixed(1), 'aria-label': `${ch.name} gain dB` });
  // Heard during the drag: every input event moves the preview's fader at once.
  fader.addEventListener('input', () => {
    box.value = Number(fader.value).toFixed(1);
    channel(ch.name).gain_db = Number(fader.value);
    updatePreview();
  });
  fader.addEventListener('change', () => edit((p) => { channel(ch.name).gain_db = Number(fader.value); }));
  fader.addEventListener('dblclick', () => {
    fader.value = gainSpec.default;
    box.value = gainSpec.default.toFixed(1);
    edit((p) => { channel(ch.name).gain_db = gainSpec.default; });
  });
  box.addEventListener('change', () => {
    const v = checkValue(gainSpec, box.value);
    if (v === null) return;
    fader.value = clamp(v, FADER_MIN_DB, FADER_MAX_DB);
    edit((p) => { channel(ch.name).gain_db = v; });
  });
  const scale = faderScale(FADER_MAX_DB, FADER_MIN_DB, FADER_SCALE_STEP_DB);
  strip.append(
    el('div', { class: 'strip-name', title: ch.name }, ch.name),
    classes,
    bus,
    el('canvas', { class: 'eq-thumb', title: 'EQ — click to edit', onclick: select }),
    el('button', { class: 'comp-thumb', title: 'Compressor — click to edit', onclick: select }),
    el('div', { class: 'knobs' }, sendKnob, panKnob),
    el('div', { class: 'ms' },
      el('button', { class: 'mute', title: 'Mute',
        onclick: () => edit((p) => { channel(ch.name).mute = !channel(ch.name).mute; }, { now: true }) }, 'M'),
      el('button', { class: `solo${isSolo ? ' on' : ''}`, title: 'Solo in place (monitoring only)', 'aria-pressed': String(isSolo),
        onclick: () => toggleSolo(ch.name) }, 'S')),
    el('div', { class: 'fader-wrap' }, scale, fader,
      el('canvas', { class: 'meter', dataset: { meter: `ch:${ch.name}`, gr: ch.name, floor: FADER_MIN_DB, top: FADER_MAX_DB },
        title: 'Peak and RMS after the fader (dBFS); amber: compressor gain reduction' })),
    box);
  refreshSummary(strip, ch);
  return strip;
}

// Tick labels of a fader's scale, top to bottom.
function faderScale(top, bottom, step) {
  const ticks = [];
  for (let db = top; db >= bottom; db -= step) ticks.push(db > 0 ? `+${db}` : String(db).replace('-', '−'));
  return el('div', { class: 'scale' }, ticks.map((t) => el('span', {}, t)));
}

// The parts of a strip that follow edits made elsewhere (mute state, compressor summary).
function refreshSummary(strip, ch) {
  const comp = ch.compressor;
  const thumb = strip.querySelector('.comp-thumb');
  const S = app.schema;
  thumb.textContent = comp
    ? `${fmtValue(S.spec('threshold_db'), comp.threshold_db, { digits: 0 })} ${fmtValue(S.spec('ratio'), comp.ratio, { digits: 1 })}`
    : 'comp off';
  thumb.classList.toggle('on', !!comp);
  const mute = strip.querySelector('.mute');
  mute.classList.toggle('on', ch.mute);
  mute.setAttribute('aria-pressed', String(ch.mute));
  strip.classList.toggle('muted-ch', ch.mute);
}

// Solo is heard at once in the preview; the server then renders the exact soloed mix.
async function toggleSolo(name) {
  const solo = new Set(app.solo);
  if (solo.has(name)) solo.delete(name); else solo.add(name);
  app.solo = app.params.channels.map((c) => c.name).filter((n) => solo.has(n));
  for (const button of document.querySelectorAll('.strip[data-name] .solo')) {
    const on = app.solo.includes(button.closest('.strip').dataset.name);
    button.classList.toggle('on', on);
    button.setAttribute('aria-pressed', String(on));
  }
  updatePreview();
  setBusy(true);
  try {
    const state = await api('PUT', `/api/sessions/${app.session.id}/solo`, { names: app.solo });
    const solo = app.solo;
    applyState(state, { keepParams: true });
    app.solo = solo;
    await loadAudio();
  } catch (error) {
    toast(error.message);
  } finally {
    setBusy(false);
  }
}

// -- buses (groups): a bus fader offsets its members' faders; the settings keep member gains

function nextGroupName() {
  let n = app.groups.length + 1;
  while (app.groups.some((g) => g.name === `bus ${n}`)) n++;
  return `bus ${n}`;
}

function addGroup(name, members) {
  for (const g of app.groups) g.members = g.members.filter((m) => !members.includes(m));
  app.groups.push({ name, members, gain_db: 0 });
  store('groups', app.groups);
  buildConsole();
}

function groupDrums() {
  const members = app.params.channels.filter((c) => DRUM_CLASSES.includes(c.instrument)).map((c) => c.name);
  if (!members.length) { toast('no drum channels (kick, snare, hihat, tom, overhead, room)', 'info'); return; }
  const existing = app.groups.find((g) => g.name === 'drums');
  if (existing) { existing.members = members; store('groups', app.groups); buildConsole(); return; }
  addGroup('drums', members);
}

function setMembership(name, groupName) {
  if (groupName === '+') { addGroup(nextGroupName(), [name]); return; }
  for (const g of app.groups) g.members = g.members.filter((m) => m !== name);
  const group = app.groups.find((g) => g.name === groupName);
  if (group) group.members.push(name);
  store('groups', app.groups);
  buildConsole();
}

function buildGroupStrip(group) {
  const strip = el('div', { class: 'strip group-strip', dataset: { group: group.name } });
  const fader = el('input', { type: 'range', class: 'fader', min: MASTER_FADER_MIN_DB, max: MASTER_FADER_MAX_DB,
    step: FADER_STEP_DB, value: clamp(group.gain_db, MASTER_FADER_MIN_DB, MASTER_FADER_MAX_DB),
    'aria-label': `${group.name} bus fader`, title: 'Bus fader: moves its members by as many dB' });
  const box = el('input', { type: 'number', class: 'db', step: FADER_STEP_DB, value: group.gain_db.toFixed(1),
    'aria-label': `${group.name} bus dB`, readonly: true });
  fader.addEventListener('input', () => {
    app.groupDrag = { name: group.name, deltaDb: Number(fader.value) - group.gain_db };
    box.value = Number(fader.value).toFixed(1);
    updatePreview();
  });
  fader.addEventListener('change', () => {
    const delta = Number(fader.value) - group.gain_db;
    const gainSpec = app.schema.spec('gain_db');
    group.gain_db = Number(fader.value);
    store('groups', app.groups);
    edit((p) => {
      for (const member of group.members) {
        const ch = p.channels.find((c) => c.name === member);
        if (ch) ch.gain_db = checkValue(gainSpec, ch.gain_db + delta);
      }
    }, { now: true });
    app.groupDrag = null;
    for (const member of group.members) {  // the members' faders show their new gains
      const memberStrip = document.querySelector(`.strip[data-name="${CSS.escape(member)}"]`);
      const ch = channel(member);
      if (!memberStrip || !ch) continue;
      memberStrip.querySelector('.fader').value = clamp(ch.gain_db, FADER_MIN_DB, FADER_MAX_DB);
      memberStrip.querySelector('.db').value = ch.gain_db.toFixed(1);
    }
    updatePreview();
  });
  const remove = el('button', { class: 'small', title: 'Remove the bus (its members keep their gains)', onclick: () => {
    app.groups = app.groups.filter((g) => g !== group);
    app.player.removeGroup(group.name);
    store('groups', app.groups);
    buildConsole();
  } }, '×');
  strip.append(
    el('div', { class: 'strip-name', title: group.name }, group.name, ' ', remove),
    el('div', { class: 'muted small members' }, group.members.length ? group.members.join(', ') : 'no channels'),
    el('div', { class: 'fader-wrap' }, faderScale(MASTER_FADER_MAX_DB, MASTER_FADER_MIN_DB, MASTER_SCALE_STEP_DB), fader,
      el('canvas', { class: 'meter', dataset: { meter: `group:${group.name}`, floor: MASTER_FADER_MIN_DB, top: MASTER_FADER_MAX_DB },
        title: 'Sum of its members (dBFS)' })),
    box);
  return strip;
}

function buildMaster() {
  const m = app.params.master;
  const S = app.schema;
  const master = $('#master');
  const gainSpec = S.spec('master_gain_db');
  // The master's own settings but its fader: number boxes, with an on/off box where null means off.
  const row = (spec) => {
    const on = m[spec.key] !== null;
    const input = el('input', { type: 'number', step: inputStep(spec), min: spec.min, max: spec.max,
      value: on ? m[spec.key] : spec.default, disabled: !on, 'aria-label': label(spec),
      onchange: (e) => {
        const v = checkValue(spec, e.target.value);
        if (v === null) { e.target.value = m[spec.key] ?? spec.default; return; }
        e.target.value = v;
        edit((p) => { p.master[spec.key] = v; });
      } });
    const check = spec.nullable ? el('input', { type: 'checkbox', checked: on, title: `${label(spec)} on/off`,
      onchange: (e) => edit((p) => { p.master[spec.key] = e.target.checked ? checkValue(spec, input.value) : null; }, { now: true }) }) : null;
    return el('div', { class: 'master-row' }, el('label', {}, check, label(spec)), el('span', {}, input, ` ${spec.unit}`));
  };
  const fader = el('input', { type: 'range', class: 'fader', min: MASTER_FADER_MIN_DB, max: MASTER_FADER_MAX_DB, step: FADER_STEP_DB,
    value: clamp(m.gain_db, MASTER_FADER_MIN_DB, MASTER_FADER_MAX_DB),
    'aria-label': 'master fader', title: `Master trim after loudness normalisation (${gainSpec.unit})` });
  const box = el('input', { type: 'number', class: 'db', step: inputStep(gainSpec), min: gainSpec.min, max: gainSpec.max,
    value: m.gain_db.toFixed(1), 'aria-label': 'master gain dB' });
  fader.addEventListener('input', () => {
    box.value = Number(fader.value).toFixed(1);
    app.params.master.gain_db = Number(fader.value);
    updatePreview();
  });
  fader.addEventListener('change', () => edit((p) => { p.master.gain_db = Number(fader.value); }));
  box.addEventListener('change', () => {
    const v = checkValue(gainSpec, box.value);
    if (v === null) return;
    fader.value = clamp(v, MASTER_FADER_MIN_DB, MASTER_FADER_MAX_DB);
    edit((p) => { p.master.gain_db = v; });
  });
  const reverbKnobs = S.at('master', 'reverb').map((spec) => knob({
    label: label(spec), min: spec.min, max: spec.max, scale: spec.scale, step: knobStep(spec),
    value: getValue(spec, m), defaultValue: spec.default, title: `Reverb ${label(spec)} (${spec.unit})`,
    format: (v) => fmtValue(spec, v, { compact: true, digits: Math.min(spec.digits, 2) }),
    onInput: (v) => { setValue(spec, app.params.master, v); updatePreview(); },
    onChange: (v) => edit((p) => { setValue(spec, p.master, v); }) }));
  master.replaceChildren(
    el('div', { class: 'strip-name' }, 'MASTER'),
    el('div', { class: 'lufs', title: 'Integrated loudness of the exact mix (BS.1770), its true peak and the limiter ceiling' },
      el('div', {}, el('span', { class: 'value', id: 'mix-lufs' }, '–'), el('span', { class: 'unit' }, ' LUFS')),
      el('div', { class: 'peak' })),
    el('div', { class: 'live-readings', title: 'Live, from what plays: momentary (400 ms) and short-term (3 s) loudness, true peak' },
      el('div', {}, 'M ', el('b', { id: 'lufs-m' }, '−∞'), ' · S ', el('b', { id: 'lufs-s' }, '−∞'), ' LUFS'),
      el('div', {}, 'TP ', el('b', { id: 'true-peak' }, '−∞'), ' dBTP', el('span', { id: 'ceiling-note' }))),
    ...S.at('master').filter((spec) => spec !== gainSpec).map(row),
    el('div', { class: 'knobs' }, reverbKnobs),
    el('div', { class: 'fader-wrap' }, faderScale(MASTER_FADER_MAX_DB, MASTER_FADER_MIN_DB, MASTER_SCALE_STEP_DB), fader,
      el('canvas', { class: 'meter master-meter', dataset: { meter: 'master', floor: MASTER_FADER_MIN_DB, top: MASTER_FADER_MAX_DB },
        title: 'Peak and RMS of what plays (dBFS)' })),
    box);
}

// -- meters: drawn every frame from the latest worklet readings

function meterReading(id) {
  const reading = app.player?.meters[id];
  const stale = !reading || performance.now() - reading.at > 250;
  const peakDb = stale ? -Infinity : 20 * Math.log10(Math.max(reading.peak[0], reading.peak[1], 1e-12));
  const rmsDb = stale ? -Infinity : 20 * Math.log10(Math.max(reading.rms, 1e-12));
  const now = performance.now();
  let hold = app.holds[id];
  if (!hold || peakDb >= hold.db) hold = app.holds[id] = { db: peakDb, at: now };
  const holdDb = now - hold.at < PEAK_HOLD_MS ? hold.db : hold.db - (now - hold.at - PEAK_HOLD_MS) / 1000 * PEAK_FALL_DB_PER_S;
  return { peakDb, rmsDb, holdDb, reading: stale ? null : reading };
}

function drawMeters() {
  if (!app.session || $('#studio-view').hidden) return;
  for (const canvas of document.querySelectorAll('canvas.meter')) {
    const { peakDb, rmsDb, holdDb } = meterReading(canvas.dataset.meter);
    const gr = canvas.dataset.gr;
    const comp = gr ? channel(gr)?.compressor : null;
    drawMeter(canvas, { peakDb, rmsDb, holdDb, reductionDb: comp ? app.player.gainReductionDb(gr) : null,
      floorDb: Number(canvas.dataset.floor), topDb: Number(canvas.dataset.top),
      dimmed: canvas.dataset.meter.startsWith('ch:') && app.player.current !== 'edited' });
  }
  const { reading } = meterReading('master');
  const show = (id, value) => { const node = $(id); if (node) node.textContent = fmtDb(value); };
  show('#lufs-m', reading ? reading.momentary : -Infinity);
  show('#lufs-s', reading ? reading.shortTerm : -Infinity);
  const truePeak = reading?.truePeak ? 20 * Math.log10(reading.truePeak) : -Infinity;
  app.holds.truePeak = Math.max(app.holds.truePeak ?? -Infinity, truePeak);
  show('#true-peak', app.holds.truePeak);
  const ceiling = app.params?.master.ceiling_dbtp;
  const note = $('#ceiling-note');
  if (note) {
    note.textContent = ceiling === null || ceiling === undefined ? '' : ` / ceiling ${fmtDb(ceiling)}`;
    note.classList.toggle('over', ceiling !== null && app.holds.truePeak > ceiling + 0.05);
  }
  if (app.selected) drawCompressorCurve();
}

// -- detail panel: EQ (drag handles, per-band bypass) and compressor of the selected channel

// A channel's EQ as the panel lists it: its bands, then the bypassed ones (kept by the page).
function bandRows(name) {
  const ch = channel(name);
  return [...ch.eq.map((band, index) => ({ band, index, bypassed: false })),
    ...(app.bypassed[name] || []).map((band, index) => ({ band, index, bypassed: true }))];
}

// Switch a band off (out of the settings, kept by the page) or back on (appended: the EQ's
// biquads are in series, so the order does not change the sound).
function setBypass(name, row, bypassed) {
  const list = app.bypassed[name] || (app.bypassed[name] = []);
  edit((p) => {
    const ch = p.channels.find((c) => c.name === name);
    if (bypassed) list.push(...ch.eq.splice(row.index, 1));
    else ch.eq.push(...list.splice(row.index, 1));
  }, { now: true });
  store('bypassed', app.bypassed);
  buildDetail();
}

function buildDetail() {
  const panel = $('#detail');
  const ch = channel(app.selected);
  if (!ch) { panel.hidden = true; return; }
  panel.hidden = false;
  const cfg = app.config;
  const S = app.schema;
  const bandSpecs = S.at('band');
  const rows = bandRows(ch.name).map((row, k) => {
    const { band, index, bypassed } = row;
    const cell = (spec) => {
      const max = maxAt(spec, app.session.sample_rate, cfg.band_freq_fraction);
      const input = el('input', { type: 'number', value: band[spec.key], min: spec.min, max, step: inputStep(spec),
        'aria-label': `band ${k + 1} ${spec.key}`, disabled: bypassed,
        onchange: (e) => {
          const v = checkValue(spec, e.target.value, max);
          if (v === null) { e.target.value = band[spec.key]; return; }
          e.target.value = v;
          edit((p) => { channel(ch.name).eq[index][spec.key] = v; });
        } });
      if (spec.unit === 'dB' && band.type.endsWith('pass')) Object.assign(input, { disabled: true, title: 'Pass filters have no gain' });
      return el('td', {}, input, spec.unit ? ` ${spec.unit}` : '');
    };
    return el('tr', { class: bypassed ? 'bypassed' : '', dataset: { band: String(k) } },
      el('td', { class: 'muted' }, String(k + 1)),
      el('td', {}, el('input', { type: 'checkbox', class: 'band-on', checked: !bypassed, title: 'Band on (off: bypassed)',
        'aria-label': `band ${k + 1} on`, onchange: (e) => setBypass(ch.name, row, !e.target.checked) })),
      el('td', {}, el('select', { 'aria-label': `band ${k + 1} type`, disabled: bypassed,
        onchange: (e) => edit((p) => { channel(ch.name).eq[index].type = e.target.value; drawDetailCurve(); }) },
      cfg.eq_band_types.map((t) => el('option', { value: t, selected: t === band.type }, t.replace('_', ' '))))),
      bandSpecs.map(cell),
      el('td', {}, el('button', { class: 'small', title: 'Remove band', onclick: () => {
        if (bypassed) { app.bypassed[ch.name].splice(index, 1); store('bypassed', app.bypassed); buildDetail(); return; }
        edit((p) => { channel(ch.name).eq.splice(index, 1); }, { now: true });
        buildDetail();
      } }, '×')));
  });
  const addBand = el('button', { class: 'small', disabled: ch.eq.length >= cfg.max_eq_bands,
    onclick: () => { edit((p) => { channel(ch.name).eq.push({ type: NEW_BAND_TYPE, ...S.defaults('band') }); }, { now: true }); buildDetail(); } }, '+ band');
  const comp = ch.compressor;
  const compOn = el('input', { type: 'checkbox', checked: !!comp, 'aria-label': 'compressor on', onchange: (e) => {
    edit((p) => { channel(ch.name).compressor = e.target.checked ? compressorPreset() : null; }, { now: true });
    buildDetail();
  } });
  const compValues = comp || compressorPreset();
  const slider = (spec) => {
    const { toUnit, fromUnit } = scaleMap(spec.min, spec.max, spec.scale);
    const valueAt = (position) => checkValue(spec, fromUnit(position / SLIDER_STEPS));
    const value = el('span', { class: 'val' }, fmtValue(spec, compValues[spec.key]));
    const range = el('input', { type: 'range', min: 0, max: SLIDER_STEPS, step: 1, value: Math.round(toUnit(compValues[spec.key]) * SLIDER_STEPS),
      disabled: !comp, 'aria-label': `compressor ${label(spec)}` });
    range.addEventListener('input', () => {
      value.textContent = fmtValue(spec, valueAt(Number(range.value)));
      channel(ch.name).compressor[spec.key] = valueAt(Number(range.value));  // the curve follows the drag
    });
    range.addEventListener('change', () => edit((p) => { channel(ch.name).compressor[spec.key] = valueAt(Number(range.value)); }));
    return el('div', { class: 'slider-row' }, el('label', {}, label(spec)), range, value);
  };
  const curve = el('canvas', { id: 'detail-curve', title: 'Drag a band: frequency and gain; wheel (or Shift+drag): Q; double-click: bypass' });
  setupEqHandles(curve, ch.name);
  panel.replaceChildren(
    el('div', {},
      el('h3', {}, el('span', {}, `${ch.name} · EQ`), el('span', {}, addBand)),
      curve,
      el('table', { class: 'bands' },
        el('tr', {}, ['#', 'on', 'type', ...bandSpecs.map(label), ''].map((t) => el('th', {}, t))), rows),
      rows.length ? null : el('div', { class: 'muted small' }, 'No EQ bands: the channel is flat.')),
    el('div', { class: comp ? '' : 'comp-off' },
      el('h3', {}, el('span', {}, 'Compressor'), el('label', { class: 'check' }, compOn, 'on'),
        el('button', { class: 'small', title: 'Close', onclick: () => { app.selected = null; panel.hidden = true; document.querySelectorAll('.strip').forEach((s) => s.classList.remove('selected')); } }, 'close')),
      el('canvas', { id: 'comp-curve', title: 'Transfer curve (input -> output dB, makeup included); the dot: the live gain reduction' }),
      S.at('channel', 'compressor').map(slider)));
  drawDetailCurve();
  drawCompressorCurve();
}

// The compressor a channel gets when switched on: COMPRESSOR_PRESET over the schema's defaults.
function compressorPreset() {
  const S = app.schema;
  const values = S.defaults('channel', 'compressor');
  for (const [key, value] of Object.entries(COMPRESSOR_PRESET)) {
    values[key] = checkValue(S.at('channel', 'compressor').find((spec) => spec.key === key), value);
  }
  return values;
}

function drawCompressorCurve() {
  const canvas = $('#comp-curve');
  if (!canvas || !app.selected) return;
  const ch = channel(app.selected);
  drawTransferCurve(canvas, ch?.compressor, ch?.compressor ? app.player.gainReductionDb(ch.name) : 0,
    { gainReductionDb: staticGainReductionDb, levelForReductionDb });
}

// Where each band's handle sits on the plot: at its frequency and gain (pass filters at 0 dB).
function eqHandles(name, axes, active = null) {
  return bandRows(name).map((row, k) => ({
    row, label: String(k + 1), bypassed: row.bypassed, active: k === active,
    x: axes.x(row.band.freq_hz), y: axes.y(row.band.type.endsWith('pass') ? 0 : row.band.gain_db) }));
}

function drawDetailCurve(active = app.eqDrag?.k ?? null) {
  const canvas = $('#detail-curve');
  if (!canvas || !app.selected) return;
  const ch = channel(app.selected);
  const freqs = app.session.eq.freqs_hz;
  const axes = eqAxes(freqs, canvas.clientWidth, canvas.clientHeight, EQ_RANGE_DB);
  const handles = eqHandles(ch.name, axes, active);
  app.eqHandles = handles.map(({ x, y, bypassed, label }) => ({ x, y, bypassed, label }));  // for tests
  drawEqCurve(canvas, freqs, eqCurveDb(ch.eq, freqs, app.session.sample_rate),
    { grid: true, rangeDb: EQ_RANGE_DB, handles });
}

// Drag a handle: frequency across, gain up and down (Shift: Q instead of gain); wheel: Q;
// double-click: bypass. The curve follows the pointer; the settings are sent on release.
function setupEqHandles(canvas, name) {
  const S = app.schema;
  const specs = { freq: S.spec('eq_freq_hz'), gain: S.spec('eq_gain_db'), q: S.spec('eq_q') };
  const maxFreq = maxAt(specs.freq, app.session.sample_rate, app.config.band_freq_fraction);
  const pick = (e) => {
    const rect = canvas.getBoundingClientRect();
    const px = e.clientX - rect.left, py = e.clientY - rect.top;
    const axes = eqAxes(app.session.eq.freqs_hz, rect.width, rect.height, EQ_RANGE_DB);
    let best = null;
    eqHandles(name, axes).forEach((handle, k) => {
      const d = Math.hypot(handle.x - px, handle.y - py);
      if (d <= HANDLE_RADIUS_PX && (!best || d < best.d)) best = { d, k, row: handle.row };
    });
    return { best, px, py, axes };
  };
  const refreshRow = (k, band) => {  // the table follows the drag
    for (const key of ['freq_hz', 'gain_db', 'q']) {
      const input = document.querySelector(`#detail input[aria-label="band ${k + 1} ${key}"]`);
      if (input) input.value = band[key];
    }
  };
  canvas.addEventListener('pointerdown', (e) => {
    const { best, py } = pick(e);
    if (!best || best.row.bypassed) return;
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    app.eqDrag = { k: best.k, row: best.row, y: py, q: best.row.band.q, moved: false };
    drawDetailCurve();
  });
  canvas.addEventListener('pointermove', (e) => {
    const drag = app.eqDrag;
    if (!drag) return;
    const { px, py, axes } = pick(e);
    const band = drag.row.band;
    if (e.shiftKey) {
      band.q = checkValue(specs.q, drag.q * 2 ** ((drag.y - py) / 40));  // 40 px per octave of Q
    } else {
      band.freq_hz = checkValue(specs.freq, axes.freq(px), maxFreq);
      if (!band.type.endsWith('pass')) band.gain_db = checkValue(specs.gain, axes.db(py));
    }
    drag.moved = true;
    refreshRow(drag.k, band);
    drawDetailCurve();
    drawThumbnails();
  });
  const release = () => {
    const drag = app.eqDrag;
    app.eqDrag = null;
    if (drag?.moved) edit(() => {}, { now: true });  // the band's values are set: send them
    drawDetailCurve();
  };
  canvas.addEventListener('pointerup', release);
  canvas.addEventListener('pointercancel', release);
  canvas.addEventListener('wheel', (e) => {
    const { best } = pick(e);
    if (!best || best.row.bypassed) return;
    e.preventDefault();
    const band = best.row.band;
    band.q = checkValue(specs.q, band.q * (e.deltaY < 0 ? Q_WHEEL_STEP : 1 / Q_WHEEL_STEP));
    refreshRow(best.k, band);
    drawDetailCurve(best.k);
    edit(() => {});
  }, { passive: false });
  canvas.addEventListener('dblclick', (e) => {
    const { best } = pick(e);
    if (best) setBypass(name, best.row, !best.row.bypassed);
  });
}

// ---------------------------------------------------------------- wiring

function setupStudio() {
  app.player = new Player($('#scope'), (position, duration) => {
    $('#clock').textContent = `${fmtTime(position)} / ${fmtTime(duration)}`;
  });
  const meters = () => { drawMeters(); requestAnimationFrame(meters); };
  requestAnimationFrame(meters);
  $('#play').addEventListener('click', togglePlay);
  for (const button of document.querySelectorAll('.ab button')) {
    button.addEventListener('click', () => selectSource(button.dataset.source));
  }
  for (const button of document.querySelectorAll('.view-toggle button')) {
    button.addEventListener('click', () => {
      app.player.view = button.dataset.view;
      document.querySelectorAll('.view-toggle button').forEach((b) => b.classList.toggle('active', b === button));
    });
  }
  $('#level-match').addEventListener('change', applyLevelMatch);
  $('#undo').addEventListener('click', () => step('undo'));
  $('#redo').addEventListener('click', () => step('redo'));
  $('#remix').addEventListener('click', remix);
  $('#load-params').addEventListener('change', async (e) => {
    const file = e.target.files[0];
    e.target.value = '';
    if (!file) return;
    let data;
    try { data = JSON.parse(await file.text()); } catch (error) { toast(`${file.name}: not valid JSON (${error.message})`); return; }
    setBusy(true);
    try {
      applyState(await api('PUT', `/api/sessions/${app.session.id}/params`, data));
      buildConsole();
      await loadAudio();
      loadPreview();
      toast(`loaded ${file.name}`, 'info');
    } catch (error) {
      toast(`${file.name}: ${error.message}`);
    } finally {
      setBusy(false);
    }
  });
  $('#reference-upload').addEventListener('change', async (e) => {
    const file = e.target.files[0];
    e.target.value = '';
    if (!file) return;
    const form = new FormData();
    form.append('reference', file, file.name);
    setBusy(true, 'uploading reference…');
    try {
      applyState(await api('PUT', `/api/sessions/${app.session.id}/reference`, form), { keepParams: true });
      app.loaded.reference = false;
      await loadAudio();
    } catch (error) {
      toast(`reference: ${error.message}`);
    } finally {
      setBusy(false);
    }
  });
  const toggleMenu = (open) => {
    $('#download-menu').hidden = !open;
    $('#download-toggle').setAttribute('aria-expanded', String(open));
  };
  $('#download-toggle').addEventListener('click', (e) => { e.stopPropagation(); toggleMenu($('#download-menu').hidden); });
  document.addEventListener('click', () => toggleMenu(false));
  document.addEventListener('keydown', (e) => {
    const typing = ['INPUT', 'SELECT', 'TEXTAREA'].includes(document.activeElement?.tagName) && document.activeElement.type !== 'range';
    if ($('#studio-view').hidden) return;
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'z') { e.preventDefault(); step(e.shiftKey ? 'redo' : 'undo'); return; }
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'y') { e.preventDefault(); step('redo'); return; }
    if (typing) return;
    if (e.key === ' ') { e.preventDefault(); togglePlay(); }
    const source = { 1: 'model', 2: 'edited', 3: 'reference' }[e.key];
    if (source) selectSource(source);
  });
}

async function togglePlay() {
  await app.player.toggle();
  app.holds = {};
  $('#play').classList.toggle('playing', app.player.playing);
  $('#play').innerHTML = app.player.playing ? '&#9632;' : '&#9654;';
}

function selectSource(source) {
  if (!app.player.buffers[source]) return;
  app.player.select(source);
  document.querySelectorAll('.ab button').forEach((b) => b.classList.toggle('active', b.dataset.source === source));
}

async function remix() {
  const method = $('#remix-method').value;
  setBusy(true, `re-mixing with ${method}…`);
  try {
    applyState(await api('POST', `/api/sessions/${app.session.id}/remix`, { method }));
    app.loaded.remixes = (app.loaded.remixes || 0) + 1;
    buildConsole();
    await loadAudio();
    loadPreview();
  } catch (error) {
    toast(error.message);
  } finally {
    setBusy(false);
  }
}

async function main() {
  app.config = await api('GET', '/api/config');
  app.schema = new Schema(app.config.schema);
  const methods = app.config.methods.map((m) => el('option', { value: m, selected: m === 'rules' }, m));
  $('#method').replaceChildren(...methods);
  $('#remix-method').replaceChildren(...methods.map((o) => o.cloneNode(true)));
  const mib = (n) => `${Math.round(n / 2 ** 20)} MiB`;
  $('#limits-hint').textContent = `WAV, FLAC or AIFF · up to ${app.config.max_stems} stems · ${mib(app.config.max_file_bytes)} per file · `
    + 'add a REAPER (.rpp) or LMMS (.mmp, .mmpz) project to open its settings';
  if (app.config.folders) {
    const { folders } = await api('GET', '/api/folders');
    $('#folder-row').hidden = !folders.length;
    $('#folder').append(...folders.map((f) => el('option', { value: f }, f)));
  }
  setupOpenForm();
  setupStudio();
  window.addEventListener('hashchange', route);
  route();
}

main().catch((error) => toast(error.message));
