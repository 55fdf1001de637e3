// mixdown studio: open a session, edit the console, listen, download. Talks to /api (see app.py).

import { clamp, drawEqCurve, el, fmtDb, fmtPan, fmtTime, knob } from './widgets.js';
import { Player } from './player.js';

const $ = (selector) => document.querySelector(selector);
const FADER_MIN = -60, FADER_MAX = 12;
const COMMIT_DELAY_MS = 120;

const app = {
  config: null,
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
  const sendRange = cfg.ranges.reverb_send_db;
  const panKnob = knob({ label: 'pan', min: -1, max: 1, step: 0.01, value: ch.pan, defaultValue: 0, bipolar: true, format: fmtPan,
    title: 'Pan (drag, wheel, arrows; double-click: centre)',
    onChange: (v) => edit((p) => { channel(ch.name).pan = v; }) });
  const sendKnob = knob({ label: 'rev', min: -60, max: sendRange[1], step: 0.5, value: ch.reverb_send_db, defaultValue: -20,
    offAtMin: true, format: (v) => fmtDb(v, 0), title: 'Reverb send, dB (leftmost: off)',
    onChange: (v) => edit((p) => { channel(ch.name).reverb_send_db = v; }) });
  const fader = el('input', { type: 'range', class: 'fader', min: FADER_MIN, max: FADER_MAX, step: 0.1,
    value: clamp(ch.gain_db, FADER_MIN, FADER_MAX), 'aria-label': `${ch.name} fader`, title: 'Fader (dB)' });
  const box = el('input', { type: 'number', class: 'db', step: 0.1, value: ch.gain_db.toFixed(1), 'aria-label': `${ch.name} gain dB` });
  fader.addEventListener('input', () => { box.value = Number(fader.value).toFixed(1); channel(ch.name).gain_db = Number(fader.value); });
  fader.addEventListener('change', () => edit((p) => { channel(ch.name).gain_db = Number(fader.value); }));
  fader.addEventListener('dblclick', () => { fader.value = 0; box.value = '0.0'; edit((p) => { channel(ch.name).gain_db = 0; }); });
  box.addEventListener('change', () => {
    const [lo, hi] = cfg.ranges.gain_db;
    const v = clamp(Number(box.value), lo, hi);
    if (!Number.isFinite(v)) return;
    fader.value = clamp(v, FADER_MIN, FADER_MAX);
    edit((p) => { channel(ch.name).gain_db = v; });
  });
  const scale = el('div', { class: 'scale' }, ['+12', '0', '−12', '−24', '−36', '−48', '−60'].map((t) => el('span', {}, t)));
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

// The parts of a strip that follow edits made elsewhere (mute state, compressor summary).
function refreshSummary(strip, ch) {
  const comp = ch.compressor;
  const thumb = strip.querySelector('.comp-thumb');
  thumb.textContent = comp ? `${fmtDb(comp.threshold_db, 0)} dB ${comp.ratio.toFixed(1)}:1` : 'comp off';
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
  const r = app.config.ranges;
  const master = $('#master');
  const onOff = (key, label, range, unit, fallback) => {
    const on = m[key] !== null;
    const input = el('input', { type: 'number', step: 0.5, min: range[0], max: range[1], value: on ? m[key] : fallback, disabled: !on,
      'aria-label': label, onchange: (e) => edit((p) => { p.master[key] = clamp(Number(e.target.value), range[0], range[1]); }) });
    const check = el('input', { type: 'checkbox', checked: on, title: `${label} on/off`,
      onchange: (e) => edit((p) => { p.master[key] = e.target.checked ? Number(input.value) : null; }, { now: true }) });
    return el('div', { class: 'master-row' }, el('label', {}, check, label), el('span', {}, input, ` ${unit}`));
  };
  const fader = el('input', { type: 'range', class: 'fader', min: -24, max: 12, step: 0.1, value: clamp(m.gain_db, -24, 12),
    'aria-label': 'master fader', title: 'Master trim after loudness normalisation (dB)' });
  const box = el('input', { type: 'number', class: 'db', step: 0.1, value: m.gain_db.toFixed(1), 'aria-label': 'master gain dB' });
  fader.addEventListener('input', () => { box.value = Number(fader.value).toFixed(1); app.params.master.gain_db = Number(fader.value); });
  fader.addEventListener('change', () => edit((p) => { p.master.gain_db = Number(fader.value); }));
  box.addEventListener('change', () => {
    const v = clamp(Number(box.value), r.gain_db[0], r.gain_db[1]);
    fader.value = clamp(v, -24, 12);
    edit((p) => { p.master.gain_db = v; });
  });
  const rev = m.reverb;
  master.replaceChildren(
    el('div', { class: 'strip-name' }, 'MASTER'),
    el('div', { class: 'lufs', title: 'Integrated loudness of the mix you hear (BS.1770)' },
      el('div', {}, el('span', { class: 'value', id: 'mix-lufs' }, '–'), el('span', { class: 'unit' }, ' LUFS')),
      el('div', { class: 'peak' })),
    onOff('target_lufs', 'target', r.target_lufs, 'LUFS', -14),
    onOff('ceiling_dbtp', 'ceiling', r.ceiling_dbtp, 'dBTP', -1),
    el('div', { class: 'knobs' },
      knob({ label: 'decay', min: r.decay_s[0], max: r.decay_s[1], step: 0.05, value: rev.decay_s, defaultValue: 1.6,
        format: (v) => `${v.toFixed(2)}s`, onChange: (v) => edit((p) => { p.master.reverb.decay_s = v; }) }),
      knob({ label: 'pre', min: r.predelay_ms[0], max: r.predelay_ms[1], step: 1, value: rev.predelay_ms, defaultValue: 20,
        format: (v) => `${v.toFixed(0)}ms`, onChange: (v) => edit((p) => { p.master.reverb.predelay_ms = v; }) }),
      knob({ label: 'return', min: r.return_db[0], max: r.return_db[1], step: 0.5, value: rev.return_db, defaultValue: 0,
        format: (v) => fmtDb(v, 1), onChange: (v) => edit((p) => { p.master.reverb.return_db = v; }) })),
    el('div', { class: 'fader-wrap' },
      el('div', { class: 'scale' }, ['+12', '+6', '0', '−6', '−12', '−18', '−24'].map((t) => el('span', {}, t))), fader),
    box);
}

// -- detail panel: EQ and compressor of the selected channel

function buildDetail() {
  const panel = $('#detail');
  const ch = channel(app.selected);
  if (!ch) { panel.hidden = true; return; }
  panel.hidden = false;
  const cfg = app.config;
  const r = cfg.ranges;
  const bandRows = ch.eq.map((band, k) => {
    const num = (key, range, stepValue) => el('input', { type: 'number', value: band[key], min: range[0], max: range[1], step: stepValue,
      'aria-label': `band ${k + 1} ${key}`,
      onchange: (e) => edit((p) => { channel(ch.name).eq[k][key] = clamp(Number(e.target.value), range[0], range[1]); }) });
    return el('tr', {},
      el('td', { class: 'muted' }, String(k + 1)),
      el('td', {}, el('select', { 'aria-label': `band ${k + 1} type`, onchange: (e) => edit((p) => { channel(ch.name).eq[k].type = e.target.value; }) },
        cfg.eq_band_types.map((t) => el('option', { value: t, selected: t === band.type }, t.replace('_', ' '))))),
      el('td', {}, num('freq_hz', [r.freq_hz[0], Math.min(r.freq_hz[1], 0.45 * app.session.sample_rate)], 1), ' Hz'),
      el('td', {}, Object.assign(num('gain_db', r.eq_gain_db, 0.5), { disabled: band.type.endsWith('pass'), title: 'Pass filters have no gain' }), ' dB'),
      el('td', {}, num('q', r.q, 0.05)),
      el('td', {}, el('button', { class: 'small', title: 'Remove band', onclick: () => { edit((p) => { channel(ch.name).eq.splice(k, 1); }, { now: true }); buildDetail(); } }, '×')));
  });
  const addBand = el('button', { class: 'small', disabled: ch.eq.length >= cfg.max_eq_bands,
    onclick: () => { edit((p) => { channel(ch.name).eq.push({ type: 'peak', freq_hz: 1000, gain_db: 0, q: 1 }); }, { now: true }); buildDetail(); } }, '+ band');
  const comp = ch.compressor;
  const compOn = el('input', { type: 'checkbox', checked: !!comp, onchange: (e) => {
    edit((p) => { channel(ch.name).compressor = e.target.checked ? { threshold_db: -18, ratio: 3, attack_ms: 10, release_ms: 120, knee_db: 6, makeup_db: 0 } : null; }, { now: true });
    buildDetail();
  } });
  const compValues = comp || { threshold_db: -18, ratio: 3, attack_ms: 10, release_ms: 120, knee_db: 6, makeup_db: 0 };
  const slider = (key, label, unit, log, digits) => {
    const [lo, hi] = r[key];
    const toPos = (v) => (log ? Math.log(v / lo) / Math.log(hi / lo) : (v - lo) / (hi - lo)) * 1000;
    const fromPos = (x) => (log ? lo * (hi / lo) ** (x / 1000) : lo + (hi - lo) * x / 1000);
    const show = (v) => `${v.toFixed(digits)}${unit.startsWith(':') ? '' : ' '}${unit}`;
    const value = el('span', { class: 'val' }, show(compValues[key]));
    const range = el('input', { type: 'range', min: 0, max: 1000, step: 1, value: toPos(compValues[key]), disabled: !comp, 'aria-label': `compressor ${label}` });
    range.addEventListener('input', () => { value.textContent = show(fromPos(Number(range.value))); });
    range.addEventListener('change', () => edit((p) => { channel(ch.name).compressor[key] = Number(fromPos(Number(range.value)).toFixed(digits + 1)); }));
    return el('div', { class: 'slider-row' }, el('label', {}, label), range, value);
  };
  panel.replaceChildren(
    el('div', {},
      el('h3', {}, el('span', {}, `${ch.name} · EQ`), el('span', {}, addBand)),
      el('canvas', { id: 'detail-curve' }),
      el('table', { class: 'bands' },
        el('tr', {}, ['#', 'type', 'frequency', 'gain', 'Q', ''].map((t) => el('th', {}, t))), bandRows),
      ch.eq.length ? null : el('div', { class: 'muted small' }, 'No EQ bands: the channel is flat.')),
    el('div', { class: comp ? '' : 'comp-off' },
      el('h3', {}, el('span', {}, 'Compressor'), el('label', { class: 'check' }, compOn, 'on'),
        el('button', { class: 'small', title: 'Close', onclick: () => { app.selected = null; panel.hidden = true; document.querySelectorAll('.strip').forEach((s) => s.classList.remove('selected')); } }, 'close')),
      slider('threshold_db', 'threshold', 'dB', false, 1),
      slider('ratio', 'ratio', ':1', true, 2),
      slider('attack_ms', 'attack', 'ms', true, 1),
      slider('release_ms', 'release', 'ms', true, 0),
      slider('knee_db', 'knee', 'dB', false, 1),
      slider('makeup_db', 'makeup', 'dB', false, 1)));
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
