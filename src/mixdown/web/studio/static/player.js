// Web Audio player with sample-accurate A/B switching between sources, and the scope view.

export const SOURCE_COLORS = { model: '#f2a44b', edited: '#38c6ad', reference: '#a08cff' };

export class Player {
  constructor(canvas, onTick) {
    this.ctx = new AudioContext();
    this.analyser = this.ctx.createAnalyser();
    this.analyser.fftSize = 4096;
    this.analyser.smoothingTimeConstant = 0.75;
    this.out = this.ctx.createGain();
    this.out.connect(this.analyser).connect(this.ctx.destination);
    this.buffers = {};
    this.peaks = {};
    this.gainsDb = {};
    this.current = 'edited';
    this.source = null;
    this.sourceGain = null;
    this.offset = 0;
    this.startedAt = 0;
    this.playing = false;
    this.view = 'wave';
    this.canvas = canvas;
    this.onTick = onTick;
    canvas.addEventListener('click', (e) => {
      const rect = canvas.getBoundingClientRect();
      this.seek((e.clientX - rect.left) / rect.width * this.duration());
    });
    const loop = () => { this.draw(); requestAnimationFrame(loop); };
    requestAnimationFrame(loop);
  }

  async decode(arrayBuffer) {
    return this.ctx.decodeAudioData(arrayBuffer);
  }

  duration() {
    const buffer = this.buffers[this.current] || this.buffers.edited;
    return buffer ? buffer.duration : 0;
  }

  position() {
    if (!this.playing) return this.offset;
    const t = this.ctx.currentTime - this.startedAt + this.offset;
    return this.duration() ? t % this.duration() : 0;
  }

  set(key, buffer) {
    this.buffers[key] = buffer;
    this.peaks[key] = buffer ? computePeaks(buffer, 2000) : null;
    if (key === this.current && this.playing) this.restart();
  }

  setGainDb(key, db) {
    this.gainsDb[key] = db;
    if (key === this.current && this.sourceGain) this.sourceGain.gain.value = 10 ** (db / 20);
  }

  select(key) {
    if (!this.buffers[key] || key === this.current) { this.current = this.buffers[key] ? key : this.current; return; }
    const pos = this.position();
    this.current = key;
    if (this.playing) this.startAt(pos);
  }

  async play() {
    if (!this.buffers[this.current]) return;
    await this.ctx.resume();
    this.startAt(this.offset);
  }

  stop() {
    this.offset = this.position();
    this.stopSource();
    this.playing = false;
  }

  toggle() { return this.playing ? this.stop() : this.play(); }

  seek(t) {
    const pos = Math.max(0, Math.min(t, this.duration() - 0.01));
    if (this.playing) this.startAt(pos); else this.offset = pos;
  }

  restart() { this.startAt(this.position()); }

  startAt(pos) {
    this.stopSource();
    const buffer = this.buffers[this.current];
    if (!buffer) return;
    const source = this.ctx.createBufferSource();
    source.buffer = buffer;
    source.loop = true;
    const gain = this.ctx.createGain();
    gain.gain.value = 10 ** ((this.gainsDb[this.current] || 0) / 20);
    source.connect(gain).connect(this.out);
    source.start(0, pos % buffer.duration);
    this.source = source;
    this.sourceGain = gain;
    this.startedAt = this.ctx.currentTime;
    this.offset = pos;
    this.playing = true;
  }

  stopSource() {
    if (this.source) {
      this.source.stop();
      this.source.disconnect();
      this.source = null;
    }
  }

  draw() {
    const canvas = this.canvas;
    if (!canvas.isConnected || canvas.offsetParent === null) return;
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
    const peaks = this.peaks[this.current];
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
