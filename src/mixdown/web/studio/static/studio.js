// mixdown studio: open a session, edit the console, listen, download. Talks to /api (see app.py).

import { clamp, drawEqCurve, el, fmtDb, fmtPan, fmtTime, knob, scaleMap } from './widgets.js';
import { Player } from './player.js';
import { Schema, checkValue, fmtValue, getValue, inputStep, knobStep, label, maxAt, setValue } from './schema.js';

const $ = (selector) => document.querySelector(selector);
const COMMIT_DELAY_MS = 120;

// Purely visual choices. Every setting's range, default, unit, scale and digits come from
// the server's parameter schema (app.schema); these only shape the controls.
// A channel fader's throw is narrower than the schema's gain range (-80..+24 dB): below
// -60 dB a channel is lost in any mix and above +12 dB it clips, so the throw spends its
// length where mixing happens. The dB box beside it takes the full range.
const FADER_MIN_DB = -60, FADER_MAX_DB = 12, FADER_SCALE_STEP_DB = 12;
// The master trim follows loudness normalisation, so it only corrects by a few dB.
const MASTER_FADER_MIN_DB = -24, MASTER_FADER_MAX_DB = 12, MASTER_SCALE_STEP_DB = 6;
const FADER_STEP_DB = 0.1;  // finer than a level change anyone hears
// The send knob's leftmost position is "off" (null); sends under -60 dB are inaudible, so
// the knob's throw starts there. Settings files keep the schema's full range.
const SEND_KNOB_FLOOR_DB = -60;
const NEW_BAND_TYPE = 'peak';  // the band engineers add most; its values are the schema defaults
const SLIDER_STEPS = 1000;  // positions of a compressor slider over its range

const app = {
  config: null,
  schema: null,     // the parameter schema (Schema of config.schema)
  session: null,     // the server's state of the open session
  params: null,      // the settings shown (may be ahead of the server while an edit is in flight)
  selected: null,    // channel shown in the detail panel
  files: [],
  polling: null,
  inflight: false,
  pending: false,
  commitTimer: null,
  loaded: {},        // edit number / method of the audio loaded per source
  player: null,
};

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
    el('span', {}, file.name), el('span', { class: 'muted' }, `${(file.size / 2 ** 20).toFixed(1)} MiB`),
    el('button', { class: 'small', type: 'button', title: 'Remove', onclick: () => { app.files.splice(i, 1); renderFileList(); } }, '×'))));
  $('#start').disabled = !app.files.length && !$('#folder').value;
}

async function startSession() {
  const form = new FormData();
  form.append('method', $('#method').value);
  if (app.files.length) for (const file of app.files) form.append('stems', file, file.name);
  else form.append('folder', $('#folder').value);
  const reference = $('#reference-file').files[0];
  $('#start').disabled = true;
  const bar = $('#upload-progress');
  bar.hidden = false;
  try {
    const state = await upload('/api/sessions', form, (done) => {
      bar.querySelector('.bar').style.width = `${Math.round(done * 100)}%`;
      bar.querySelector('.label').textContent = done < 1 ? `uploading ${Math.round(done * 100)}%` : 'checking…';
    });
    if (reference) {
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

function openStudio(state) {
  show('studio-view');
  applyState(state);
  buildConsole();
  loadAudio();
}

function applyState(state, { keepParams = false } = {}) {
  app.session = state;
  if (!keepParams) app.params = structuredClone(state.params);
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
  updateMeters();
}

function updateMeters() {
  const s = app.session;
  const lufs = s.mix.loudness_lufs;
  const master = $('#master');
  if (master.querySelector('.lufs')) {
    master.querySelector('.lufs .value').textContent = lufs === null ? '−∞' : lufs.toFixed(1);
    master.querySelector('.lufs .peak').textContent = `peak ${fmtDb(s.mix.peak_dbfs)} dBFS`;
  }
  $('[data-source=edited] small').textContent = lufs === null ? '' : `${lufs.toFixed(1)} LUFS`;
  $('[data-source=reference] small').textContent = s.reference?.loudness_lufs != null ? `${s.reference.loudness_lufs.toFixed(1)} LUFS` : '';
  for (const strip of document.querySelectorAll('.strip[data-name]')) {
    const canvas = strip.querySelector('.eq-thumb');
    drawEqCurve(canvas, s.eq.freqs_hz, s.eq.curves[strip.dataset.name]);
  }
  if (app.selected) drawDetailCurve();
  applyLevelMatch();
}

// Decoded audio and the loudness the server measured (X-Loudness-LUFS), if it sent one.
async function fetchAudio(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error((await response.json()).detail);
  const lufs = response.headers.get('X-Loudness-LUFS');
  return { buffer: await app.player.decode(await response.arrayBuffer()), lufs: lufs === null ? null : Number(lufs) };
}

async function loadAudio() {
  const s = app.session;
  const soloKey = s.solo.join('|');
  const jobs = [];
  const editedKey = `${s.edit}:${soloKey}`;
  if (app.loaded.edited !== editedKey) {
    jobs.push(fetchAudio(`/api/sessions/${s.id}/mix.wav?monitor=1&edit=${s.edit}`).then(({ buffer }) => {
      app.player.set('edited', buffer);
      app.loaded.edited = editedKey;
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
}

function applyLevelMatch() {
  const s = app.session;
  const on = $('#level-match').checked;
  const target = s.mix.loudness_lufs;
  const ref = s.reference?.loudness_lufs;
  app.player?.setGainDb('reference', on && target != null && ref != null ? target - ref : 0);
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
    applyState(state, { keepParams: app.pending });
    await loadAudio();
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
  strips.replaceChildren(...app.params.channels.map(buildStrip));
  strips.scrollLeft = scroll;
  buildMaster();
  updateMeters();
  if (app.selected) buildDetail();
}

function buildStrip(ch) {
  const cfg = app.config;
  const isSolo = app.session.solo.includes(ch.name);
  const strip = el('div', { class: `strip${app.selected === ch.name ? ' selected' : ''}`, dataset: { name: ch.name } });
  const select = () => { app.selected = ch.name; document.querySelectorAll('.strip').forEach((s) => s.classList.toggle('selected', s.dataset.name === ch.name)); buildDetail(); };
  const classes = el('select', { class: 'cls', title: 'Instrument class (used by Re-mix)',
    onchange: (e) => edit((p) => { channel(ch.name).instrument = e.target.value; }) },
  cfg.instrument_classes.map((c) => el('option', { value: c, selected: c === ch.instrument }, c)));
  const S = app.schema;
  const panSpec = S.spec('pan'), sendSpec = S.spec('reverb_send_db'), gainSpec = S.spec('gain_db');
  const panKnob = knob({ label: 'pan', min: panSpec.min, max: panSpec.max, step: knobStep(panSpec), scale: panSpec.scale,
    value: ch.pan, defaultValue: panSpec.default, bipolar: panSpec.min < 0, format: fmtPan,
    title: 'Pan (drag, wheel, arrows; double-click: centre)',
    onChange: (v) => edit((p) => { channel(ch.name).pan = v; }) });
  const sendKnob = knob({ label: 'rev', min: SEND_KNOB_FLOOR_DB, max: sendSpec.max, scale: sendSpec.scale,
    step: knobStep(sendSpec, SEND_KNOB_FLOOR_DB, sendSpec.max), value: ch.reverb_send_db, defaultValue: sendSpec.default,
    offAtMin: sendSpec.nullable, format: (v) => fmtValue(sendSpec, v, { compact: true, digits: 1 }),
    title: `Reverb send, ${sendSpec.unit} (leftmost: off)`,
    onChange: (v) => edit((p) => { channel(ch.name).reverb_send_db = v; }) });
  const fader = el('input', { type: 'range', class: 'fader', min: FADER_MIN_DB, max: FADER_MAX_DB, step: FADER_STEP_DB,
    value: clamp(ch.gain_db, FADER_MIN_DB, FADER_MAX_DB), 'aria-label': `${ch.name} fader`, title: `Fader (${gainSpec.unit})` });
  const box = el('input', { type: 'number', class: 'db', step: inputStep(gainSpec), min: gainSpec.min, max: gainSpec.max,
    value: ch.gain_db.toFixed(1), 'aria-label': `${ch.name} gain dB` });
  fader.addEventListener('input', () => { box.value = Number(fader.value).toFixed(1); channel(ch.name).gain_db = Number(fader.value); });
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
    el('canvas', { class: 'eq-thumb', title: 'EQ — click to edit', onclick: select }),
    el('button', { class: 'comp-thumb', title: 'Compressor — click to edit', onclick: select }),
    el('div', { class: 'knobs' }, sendKnob, panKnob),
    el('div', { class: 'ms' },
      el('button', { class: 'mute', title: 'Mute',
        onclick: () => edit((p) => { channel(ch.name).mute = !channel(ch.name).mute; }, { now: true }) }, 'M'),
      el('button', { class: `solo${isSolo ? ' on' : ''}`, title: 'Solo (monitoring only)', 'aria-pressed': String(isSolo),
        onclick: () => toggleSolo(ch.name) }, 'S')),
    el('div', { class: 'fader-wrap' }, scale, fader),
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

async function toggleSolo(name) {
  const solo = new Set(app.session.solo);
  if (solo.has(name)) solo.delete(name); else solo.add(name);
  setBusy(true);
  try {
    applyState(await api('PUT', `/api/sessions/${app.session.id}/solo`, { names: [...solo] }), { keepParams: true });
    buildConsole();
    await loadAudio();
  } catch (error) {
    toast(error.message);
  } finally {
    setBusy(false);
  }
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
  fader.addEventListener('input', () => { box.value = Number(fader.value).toFixed(1); app.params.master.gain_db = Number(fader.value); });
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
    onChange: (v) => edit((p) => { setValue(spec, p.master, v); }) }));
  master.replaceChildren(
    el('div', { class: 'strip-name' }, 'MASTER'),
    el('div', { class: 'lufs', title: 'Integrated loudness of the mix you hear (BS.1770)' },
      el('div', {}, el('span', { class: 'value', id: 'mix-lufs' }, '–'), el('span', { class: 'unit' }, ' LUFS')),
      el('div', { class: 'peak' })),
    ...S.at('master').filter((spec) => spec !== gainSpec).map(row),
    el('div', { class: 'knobs' }, reverbKnobs),
    el('div', { class: 'fader-wrap' }, faderScale(MASTER_FADER_MAX_DB, MASTER_FADER_MIN_DB, MASTER_SCALE_STEP_DB), fader),
    box);
}

// -- detail panel: EQ and compressor of the selected channel

function buildDetail() {
  const panel = $('#detail');
  const ch = channel(app.selected);
  if (!ch) { panel.hidden = true; return; }
  panel.hidden = false;
  const cfg = app.config;
  const S = app.schema;
  const bandSpecs = S.at('band');
  const bandRows = ch.eq.map((band, k) => {
    const cell = (spec) => {
      const max = maxAt(spec, app.session.sample_rate, cfg.band_freq_fraction);
      const input = el('input', { type: 'number', value: band[spec.key], min: spec.min, max, step: inputStep(spec),
        'aria-label': `band ${k + 1} ${spec.key}`,
        onchange: (e) => {
          const v = checkValue(spec, e.target.value, max);
          if (v === null) { e.target.value = band[spec.key]; return; }
          e.target.value = v;
          edit((p) => { channel(ch.name).eq[k][spec.key] = v; });
        } });
      if (spec.unit === 'dB' && band.type.endsWith('pass')) Object.assign(input, { disabled: true, title: 'Pass filters have no gain' });
      return el('td', {}, input, spec.unit ? ` ${spec.unit}` : '');
    };
    return el('tr', {},
      el('td', { class: 'muted' }, String(k + 1)),
      el('td', {}, el('select', { 'aria-label': `band ${k + 1} type`, onchange: (e) => edit((p) => { channel(ch.name).eq[k].type = e.target.value; }) },
        cfg.eq_band_types.map((t) => el('option', { value: t, selected: t === band.type }, t.replace('_', ' '))))),
      bandSpecs.map(cell),
      el('td', {}, el('button', { class: 'small', title: 'Remove band', onclick: () => { edit((p) => { channel(ch.name).eq.splice(k, 1); }, { now: true }); buildDetail(); } }, '×')));
  });
  const addBand = el('button', { class: 'small', disabled: ch.eq.length >= cfg.max_eq_bands,
    onclick: () => { edit((p) => { channel(ch.name).eq.push({ type: NEW_BAND_TYPE, ...S.defaults('band') }); }, { now: true }); buildDetail(); } }, '+ band');
  const comp = ch.compressor;
  const compOn = el('input', { type: 'checkbox', checked: !!comp, onchange: (e) => {
    edit((p) => { channel(ch.name).compressor = e.target.checked ? S.defaults('channel', 'compressor') : null; }, { now: true });
    buildDetail();
  } });
  const compValues = comp || S.defaults('channel', 'compressor');
  const slider = (spec) => {
    const { toUnit, fromUnit } = scaleMap(spec.min, spec.max, spec.scale);
    const valueAt = (position) => checkValue(spec, fromUnit(position / SLIDER_STEPS));
    const value = el('span', { class: 'val' }, fmtValue(spec, compValues[spec.key]));
    const range = el('input', { type: 'range', min: 0, max: SLIDER_STEPS, step: 1, value: Math.round(toUnit(compValues[spec.key]) * SLIDER_STEPS),
      disabled: !comp, 'aria-label': `compressor ${label(spec)}` });
    range.addEventListener('input', () => { value.textContent = fmtValue(spec, valueAt(Number(range.value))); });
    range.addEventListener('change', () => edit((p) => { channel(ch.name).compressor[spec.key] = valueAt(Number(range.value)); }));
    return el('div', { class: 'slider-row' }, el('label', {}, label(spec)), range, value);
  };
  panel.replaceChildren(
    el('div', {},
      el('h3', {}, el('span', {}, `${ch.name} · EQ`), el('span', {}, addBand)),
      el('canvas', { id: 'detail-curve' }),
      el('table', { class: 'bands' },
        el('tr', {}, ['#', 'type', ...bandSpecs.map(label), ''].map((t) => el('th', {}, t))), bandRows),
      ch.eq.length ? null : el('div', { class: 'muted small' }, 'No EQ bands: the channel is flat.')),
    el('div', { class: comp ? '' : 'comp-off' },
      el('h3', {}, el('span', {}, 'Compressor'), el('label', { class: 'check' }, compOn, 'on'),
        el('button', { class: 'small', title: 'Close', onclick: () => { app.selected = null; panel.hidden = true; document.querySelectorAll('.strip').forEach((s) => s.classList.remove('selected')); } }, 'close')),
      S.at('channel', 'compressor').map(slider)));
  drawDetailCurve();
}

function drawDetailCurve() {
  const canvas = $('#detail-curve');
  if (!canvas || !app.selected) return;
  drawEqCurve(canvas, app.session.eq.freqs_hz, app.session.eq.curves[app.selected], { grid: true, rangeDb: 18 });
}

// ---------------------------------------------------------------- wiring

function setupStudio() {
  app.player = new Player($('#scope'), (position, duration) => {
    $('#clock').textContent = `${fmtTime(position)} / ${fmtTime(duration)}`;
  });
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
  $('#limits-hint').textContent = `WAV, FLAC or AIFF · up to ${app.config.max_stems} stems · ${mib(app.config.max_file_bytes)} per file`;
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
