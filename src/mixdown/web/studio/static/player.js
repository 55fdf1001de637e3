// Web Audio playback: the A/B/C sources crossfaded in sync, the live preview of the console,
// meters on every channel and the master, and the scope view.
//
// Graph (all sources start together and loop, so switching never loses the place):
//
//   model mix ──────────────────────────────────────────────► gain[model] ─────┐
//   edited mix (exact render) ─► exact ─┐                                       ├─► sum ─► output ─► speakers
//   preview: strips ─► channel ─► bus ─► master ─► preview ─┴─► gain[edited] ──┤    ├─► master meter (worklet)
//   reference ──────────────────────────────────────────────► gain[reference] ─┘    └─► analyser, probe
//
// The preview plays each channel's strip (its EQ and compressor as the server computed them,
// `/strips/{i}.wav`) through a fader, mute and pan gains with the console's pan law
// (dsp.js panGains), a post-fader send to a ConvolverNode holding the console's own reverb
// impulse response, and the master's gain (the loudness normalisation and trim of the last
// exact render). So a fader, pan, mute, solo, send or return move is heard at once; the page
// crossfades to the exact render (which adds the limiter and re-normalises) when it arrives.
// Every channel also feeds its own meter, so the channel meters work whichever source is heard.

import { dbToGain, panGains } from './dsp.js';

export const SOURCE_COLORS = { model: '#f2a44b', edited: '#38c6ad', reference: '#a08cff' };
const SOURCES = ['model', 'edited', 'reference'];
// A/B/C switches and the preview <-> exact handover are linear crossfades of this length: long
// enough to hide the cut (no click), short enough to compare two mixes note against note.
export const AB_CROSSFADE_S = 0.04;
export const PREVIEW_CROSSFADE_S = 0.02;
// Fader, pan and mute moves glide to their new gain with this time constant (no zipper noise;
// 95 % of the way within 3 time constants, 15 ms).
const GAIN_GLIDE_S = 0.005;
const START_AHEAD_S = 0.02;  // sources are scheduled this far ahead so they start together

export class Player {
  constructor(canvas, onTick) {
    this.ctx = null;
    this.canvas = canvas;
    this.onTick = onTick;
    this.view = 'wave';
    this.buffers = {};
    this.peaks = {};
    this.levelGainDb = {};   // level-match per source
    this.current = 'edited';
    this.previewing = false;
    this.playing = false;
    this.offset = 0;
    this.startedAt = 0;
    this.sources = {};       // running AudioBufferSourceNodes by key (sources and strips)
    this.channels = new Map();  // name -> channel graph (see addChannel)
    this.groups = new Map();    // name -> { sum, meter }
    this.meters = {};        // id -> latest reading from its worklet
    canvas.addEventListener('click', (e) => {
      const rect = canvas.getBoundingClientRect();
      this.seek((e.clientX - rect.left) / rect.width * this.duration());
    });
    const loop = () => { this.draw(); requestAnimationFrame(loop); };
    requestAnimationFrame(loop);
  }

  // A context at the session's rate (no resampling: the meters read what the server measured),
  // its master chain and the meter worklet. Reuses the context when the rate is unchanged.
  // `truePeak`: the server's BS.1770 interpolator at this rate ({taps, first}, the state's true_peak_meter).
  async open(sampleRate, truePeak) {
    this.truePeak = truePeak;
    if (this.ctx && this.ctx.sampleRate === sampleRate) { this.clear(); return; }
    if (this.ctx) { this.stop(); this.ctx.close(); }
    this.ctx = new AudioContext({ sampleRate, latencyHint: 'interactive' });
    this.worklet = false;
    try {
      await this.ctx.audioWorklet.addModule('/static/meter-worklet.js');
      this.worklet = true;
    } catch (error) {
      console.warn(`meters off: no AudioWorklet (${error.message})`);  // e.g. an insecure context
    }
    const ctx = this.ctx;
    this.sum = ctx.createGain();
    this.output = ctx.createGain();
    this.analyser = ctx.createAnalyser();
    this.analyser.fftSize = 4096;
    this.analyser.smoothingTimeConstant = 0.75;
    this.probe = ctx.createAnalyser();  // short window: the level heard now (levelDb)
    this.probe.fftSize = 1024;
    this.sum.connect(this.output).connect(ctx.destination);
    this.output.connect(this.analyser);
    this.output.connect(this.probe);
    this.masterMeter = this.meterNode('master', true);
    if (this.masterMeter) this.output.connect(this.masterMeter);
    this.gains = {};
    for (const key of SOURCES) {
      this.gains[key] = ctx.createGain();
      this.gains[key].gain.value = key === this.current ? 1 : 0;
      this.gains[key].connect(this.sum);
    }
    this.exact = ctx.createGain();
    this.preview = ctx.createGain();
    this.exact.connect(this.gains.edited);
    this.preview.connect(this.gains.edited);
    this.exact.gain.value = 1;
    this.preview.gain.value = 0;
    this.bus = ctx.createGain();
    this.master = ctx.createGain();
    this.bus.connect(this.master).connect(this.preview);
    this.reverbIn = ctx.createGain();
    this.convolver = ctx.createConvolver();
    this.convolver.normalize = false;  // the impulse response is the console's, unit energy per side
    this.reverbReturn = ctx.createGain();
    this.reverbIn.connect(this.convolver).connect(this.reverbReturn).connect(this.bus);
    this.clear();
  }

  // Forget the session's audio (a new session opens in the same context).
  clear() {
    this.stop();
    this.offset = 0;
    for (const name of [...this.channels.keys()]) this.removeChannel(name);
    for (const name of [...this.groups.keys()]) this.removeGroup(name);
    this.buffers = {};
    this.peaks = {};
    this.meters = {};
    if (this.convolver) this.convolver.buffer = null;
    this.setPreview(false, 0);
  }

  meterNode(id, truePeak = false) {
    if (!this.worklet) return null;
    const node = new AudioWorkletNode(this.ctx, 'mixdown-meter', {
      numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1], channelCount: 2,
      channelCountMode: 'explicit', channelInterpretation: 'speakers',
      processorOptions: { truePeak: truePeak ? this.truePeak : null } });
    node.port.onmessage = (event) => { this.meters[id] = { ...event.data, at: performance.now() }; };
    const silent = this.ctx.createGain();  // keeps the worklet pulled by the graph, adds nothing
    silent.gain.value = 0;
    node.connect(silent).connect(this.ctx.destination);
    return node;
  }

  // -- the preview console

  addChannel(name, stereo) {
    if (this.channels.has(name)) return this.channels.get(name);
    const ctx = this.ctx;
    const ch = { name, stereo, fader: ctx.createGain(), mute: ctx.createGain(), left: ctx.createGain(),
                 right: ctx.createGain(), merger: ctx.createChannelMerger(2), out: ctx.createGain(),
                 send: ctx.createGain(), buffer: null, gainReduction: null, state: {} };
    ch.fader.connect(ch.mute);
    if (stereo) {
      ch.splitter = ctx.createChannelSplitter(2);
      ch.mute.connect(ch.splitter);
      ch.splitter.connect(ch.left, 0);
      ch.splitter.connect(ch.right, 1);
    } else {
      ch.mute.connect(ch.left);
      ch.mute.connect(ch.right);
    }
    ch.left.connect(ch.merger, 0, 0);
    ch.right.connect(ch.merger, 0, 1);
    ch.merger.connect(ch.out);
    ch.out.connect(this.bus);
    ch.out.connect(ch.send).connect(this.reverbIn);
    ch.send.gain.value = 0;
    ch.meter = this.meterNode(`ch:${name}`);
    if (ch.meter) ch.out.connect(ch.meter);
    this.channels.set(name, ch);
    return ch;
  }

  removeChannel(name) {
    const ch = this.channels.get(name);
    if (!ch) return;
    this.stopSource(`strip:${name}`);
    for (const node of [ch.fader, ch.mute, ch.splitter, ch.left, ch.right, ch.merger, ch.out, ch.send, ch.meter]) {
      node?.disconnect();
    }
    this.channels.delete(name);
  }

  setStrip(name, buffer, gainReduction) {
    const ch = this.channels.get(name);
    ch.buffer = buffer;
    ch.gainReduction = gainReduction;
    if (this.playing) this.resync(`strip:${name}`);
  }

  hasPreview() {
    return this.channels.size > 0 && [...this.channels.values()].every((ch) => ch.buffer);
  }

  // A channel's fader (dB, group offset included), pan, audibility (mute and solo) and send (dB or null).
  setChannel(name, { gainDb, pan, audible, sendDb }, now = false) {
    const ch = this.channels.get(name);
    if (!ch) return;
    const glide = (param, value) => {
      if (now || !this.playing) { param.cancelScheduledValues(0); param.value = value; return; }
      param.cancelScheduledValues(this.ctx.currentTime);
      param.setTargetAtTime(value, this.ctx.currentTime, GAIN_GLIDE_S);
    };
    const [left, right] = panGains(pan, ch.stereo);
    glide(ch.fader.gain, dbToGain(gainDb));
    glide(ch.mute.gain, audible ? 1 : 0);
    glide(ch.left.gain, left);
    glide(ch.right.gain, right);
    glide(ch.send.gain, sendDb === null ? 0 : dbToGain(sendDb));
    ch.state = { gainDb, pan, audible, sendDb };
  }

  setMasterGainDb(db) { this.master.gain.setTargetAtTime(dbToGain(db), this.ctx.currentTime, GAIN_GLIDE_S); }

  setReturnDb(db) { this.reverbReturn.gain.setTargetAtTime(dbToGain(db), this.ctx.currentTime, GAIN_GLIDE_S); }

  setReverbIr(buffer) { this.convolver.buffer = buffer; }

  // Hear the preview (true) or the exact render (false) of the edited mix: a short crossfade.
  setPreview(on, fadeS = PREVIEW_CROSSFADE_S) {
    this.previewing = on;
    if (!this.exact) return;
    this.fade(this.exact.gain, on ? 0 : 1, fadeS);
    this.fade(this.preview.gain, on ? 1 : 0, fadeS);
  }

  fade(param, value, seconds) {
    const t = this.ctx.currentTime;
    param.cancelScheduledValues(t);
    if (seconds <= 0) { param.value = value; return; }
    param.setValueAtTime(param.value, t);
    param.linearRampToValueAtTime(value, t + seconds);
  }

  // A bus meter: the sum of its members' channel outputs.
  setGroup(name, members) {
    this.removeGroup(name);
    if (!this.worklet) return;
    const sum = this.ctx.createGain();
    const meter = this.meterNode(`group:${name}`);
    sum.connect(meter);
    for (const member of members) this.channels.get(member)?.out.connect(sum);
    this.groups.set(name, { sum, meter, members });
  }

  removeGroup(name) {
    const group = this.groups.get(name);
    if (!group) return;
    for (const member of group.members) {
      try { this.channels.get(member)?.out.disconnect(group.sum); } catch { /* not connected */ }
    }
    group.sum.disconnect();
    group.meter.disconnect();
    this.groups.delete(name);
    delete this.meters[`group:${name}`];
  }

  // The compressor's gain reduction (dB) of a channel now, from the server's envelope.
  gainReductionDb(name) {
    const gr = this.channels.get(name)?.gainReduction;
    if (!gr || !gr.values.length || !this.playing) return 0;
    const index = Math.floor(this.position() * this.ctx.sampleRate / gr.hop);
    return gr.values[Math.min(gr.values.length - 1, index)] || 0;
  }

  // RMS level (dBFS) of what is heard over the last 1024 samples: the probe of tests and benchmarks.
  levelDb() {
    const data = new Float32Array(this.probe.fftSize);
    this.probe.getFloatTimeDomainData(data);
    let sum = 0;
    for (const v of data) sum += v * v;
    return sum > 0 ? 10 * Math.log10(sum / data.length) : -Infinity;
  }

  // -- sources and transport

  async decode(arrayBuffer) {
    return this.ctx.decodeAudioData(arrayBuffer);
  }

  duration() {
    const buffer = this.buffers.edited || this.buffers[this.current];
    return buffer ? buffer.duration : 0;
  }

  position(at = this.ctx?.currentTime ?? 0) {
    if (!this.playing) return this.offset;
    const d = this.duration();
    return d ? (this.offset + Math.max(0, at - this.startedAt)) % d : 0;
  }

  set(key, buffer) {
    this.buffers[key] = buffer;
    this.peaks[key] = buffer ? computePeaks(buffer, 2000) : null;
    if (this.playing) this.resync(key);
  }

  setLevelGainDb(key, db) {
    this.levelGainDb[key] = db;
    if (this.gains && key === this.current) this.fade(this.gains[key].gain, dbToGain(db), AB_CROSSFADE_S);
  }

  // Listen to `key`: the outgoing source fades out while the incoming one fades in.
  select(key) {
    if (!this.buffers[key] && !(key === 'edited' && this.hasPreview())) return;
    this.current = key;
    for (const k of SOURCES) {
      this.fade(this.gains[k].gain, k === key ? dbToGain(this.levelGainDb[k] || 0) : 0, AB_CROSSFADE_S);
    }
  }

  async play() {
    if (!this.duration()) return;
    await this.ctx.resume();
    this.startAll(this.offset);
  }

  stop() {
    if (!this.ctx) return;
    this.offset = this.position();
    for (const key of Object.keys(this.sources)) this.stopSource(key);
    this.playing = false;
  }

  toggle() { return this.playing ? this.stop() : this.play(); }

  seek(t) {
    const pos = Math.max(0, Math.min(t, this.duration() - 0.01));
    if (this.playing) this.startAll(pos); else this.offset = pos;
  }

  startAll(pos) {
    for (const key of Object.keys(this.sources)) this.stopSource(key);
    const when = this.ctx.currentTime + START_AHEAD_S;
    this.offset = pos;
    this.startedAt = when;
    this.playing = true;
    for (const key of [...SOURCES, ...[...this.channels.keys()].map((n) => `strip:${n}`)]) this.startSource(key, when);
    for (const id of Object.keys(this.meters)) delete this.meters[id];
    for (const node of this.meterNodes()) node.port.postMessage('reset');
  }

  meterNodes() {
    return [this.masterMeter, ...[...this.channels.values()].map((c) => c.meter),
            ...[...this.groups.values()].map((g) => g.meter)].filter(Boolean);
  }

  // (Re)start one source in step with the others.
  resync(key) {
    this.stopSource(key);
    this.startSource(key, this.ctx.currentTime + START_AHEAD_S);
  }

  startSource(key, when) {
    const strip = key.startsWith('strip:') ? this.channels.get(key.slice(6)) : null;
    const buffer = strip ? strip.buffer : this.buffers[key];
    if (!buffer) return;
    const destination = strip ? strip.fader : key === 'edited' ? this.exact : this.gains[key];
    const source = this.ctx.createBufferSource();
    source.buffer = buffer;
    source.loop = true;
    source.connect(destination);
    source.start(when, this.position(when) % buffer.duration);
    this.sources[key] = source;
  }

  stopSource(key) {
    const source = this.sources[key];
    if (!source) return;
    try { source.stop(); } catch { /* never started */ }
    source.disconnect();
    delete this.sources[key];
  }

  // -- the scope

  draw() {
    const canvas = this.canvas;
    if (!this.ctx || !canvas.isConnected || canvas.offsetParent === null) return;
    const dpr = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    if (canvas.width !== Math.round(width * dpr)) { canvas.width = Math.round(width * dpr); canvas.height = Math.round(height * dpr); }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const color = SOURCE_COLORS[this.current];
    if (this.view === 'spectrum') this.drawSpectrum(ctx, width, height, color);
    else this.drawWave(ctx, width, height, color);
    this.onTick?.(this.position(), this.duration());
  }

  drawWave(ctx, width, height, color) {
    const peaks = this.peaks[this.current] || this.peaks.edited;
    const mid = height / 2;
    ctx.strokeStyle = '#232833';
    ctx.beginPath(); ctx.moveTo(0, mid); ctx.lineTo(width, mid); ctx.stroke();
    if (!peaks) return;
    const n = peaks.length / 2;
    ctx.fillStyle = color + 'cc';
    for (let x = 0; x < width; x++) {
      const i = Math.floor(x / width * n);
      const lo = peaks[2 * i], hi = peaks[2 * i + 1];
      ctx.fillRect(x, mid - hi * (mid - 2), 1, Math.max(1, (hi - lo) * (mid - 2)));
    }
    const x = this.position() / (this.duration() || 1) * width;
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(x, 0, 1.5, height);
  }

  drawSpectrum(ctx, width, height, color) {
    const bins = new Float32Array(this.analyser.frequencyBinCount);
    this.analyser.getFloatFrequencyData(bins);
    const nyquist = this.ctx.sampleRate / 2;
    const lo = Math.log(20), hi = Math.log(Math.min(20000, nyquist));
    ctx.fillStyle = '#6c7482';
    ctx.font = '10px system-ui';
    for (const f of [50, 100, 200, 500, 1000, 2000, 5000, 10000]) {
      const x = (Math.log(f) - lo) / (hi - lo) * width;
      ctx.fillRect(x, 0, 1, height);
      ctx.fillText(f >= 1000 ? `${f / 1000}k` : `${f}`, x + 3, height - 4);
    }
    if (!this.playing) {
      ctx.fillStyle = '#8d95a3';
      ctx.fillText('spectrum of what is playing — press play', 10, 16);
      return;
    }
    ctx.beginPath();
    for (let x = 0; x < width; x++) {
      const f = Math.exp(lo + x / width * (hi - lo));
      const db = bins[Math.min(bins.length - 1, Math.round(f / nyquist * bins.length))];
      const y = height - (Math.max(-100, Math.min(0, db)) + 100) / 100 * height;
      if (x === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    }
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.stroke();
  }
}

// Min/max pairs of the channel sum over `columns` slices of a buffer.
function computePeaks(buffer, columns) {
  const channels = [...Array(buffer.numberOfChannels).keys()].map((c) => buffer.getChannelData(c));
  const step = Math.max(1, Math.floor(buffer.length / columns));
  const out = new Float32Array(2 * columns);
  for (let i = 0; i < columns; i++) {
    let lo = 0, hi = 0;
    const end = Math.min(buffer.length, (i + 1) * step);
    for (let j = i * step; j < end; j++) {
      let v = 0;
      for (const data of channels) v += data[j];
      v /= channels.length;
      if (v < lo) lo = v; else if (v > hi) hi = v;
    }
    out[2 * i] = lo; out[2 * i + 1] = hi;
  }
  return out;
}
