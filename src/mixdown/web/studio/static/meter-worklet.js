// Level meters computed on the audio thread from what the page plays (an AudioWorklet).
//
// Per input (stereo; a mono input counts as both sides), reported about 30 times a second:
// * peak: the largest |sample| since the last report, per side;
// * rms: over the last 300 ms, both sides' power averaged (a full-scale sine reads -3 dB);
// * momentary / short-term loudness (LUFS): ITU-R BS.1770-4 / EBU Tech 3341, the mean square
//   of the K-weighted signal over the last 400 ms / 3 s, summed over the two sides,
//   -0.691 + 10 log10(sum). The K-weighting is mixdown.dsp.loudness's: the shelf and the RLB
//   high-pass re-derived at this context's rate from the analogue prototype;
// * true peak (when `truePeak` is given): the largest |value| since the last report of the
//   signal oversampled with the server's BS.1770-4 Annex 2 interpolator (mixdown.dsp.true_peak:
//   `taps[p][k]` weighs x[n + first + k] for the value between samples n and n + 1; the sample
//   itself is the remaining phase), so the page reads true peak as the server measures it.

const REPORT_HZ = 30;
const RMS_S = 0.3, MOMENTARY_S = 0.4, SHORT_TERM_S = 3.0;

// BS.1770 K-weighting biquads ({b, a}, a0 = 1) at `rate`: mixdown.dsp.loudness.k_weighting_coefficients.
export function kWeighting(rate) {
  let k = Math.tan(Math.PI * 1681.974450955533 / rate);
  let q = 0.7071752369554196;
  const vh = 10 ** (3.999843853973347 / 20), vb = vh ** 0.4996667741545416;
  let a0 = 1 + k / q + k * k;
  const shelf = { b: [(vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0],
                  a: [1, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0] };
  k = Math.tan(Math.PI * 38.13547087602444 / rate);
  q = 0.5003270373238773;
  a0 = 1 + k / q + k * k;
  const highpass = { b: [1, -2, 1], a: [1, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0] };
  return [shelf, highpass];
}

// A running sum over the last `length` values of a stream.
class Window {
  constructor(length) {
    this.values = new Float64Array(Math.max(1, length));
    this.index = 0;
    this.sum = 0;
    this.filled = 0;
  }

  push(value) {
    this.sum += value - this.values[this.index];
    this.values[this.index] = value;
    this.index = (this.index + 1) % this.values.length;
    if (this.filled < this.values.length) this.filled++;
  }

  mean() { return this.filled ? Math.max(0, this.sum) / this.values.length : 0; }
}

class MeterProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const rate = sampleRate;  // the AudioWorkletGlobalScope's
    this.phases = options.processorOptions?.truePeak?.taps || null;
    this.filters = kWeighting(rate);
    this.reportEvery = Math.round(rate / REPORT_HZ);
    this.port.onmessage = (event) => { if (event.data === 'reset') this.reset(); };
    this.windows = { rms: Math.round(RMS_S * rate), momentary: Math.round(MOMENTARY_S * rate),
                     shortTerm: Math.round(SHORT_TERM_S * rate) };
    this.reset();
  }

  reset() {
    this.rms = new Window(this.windows.rms);
    this.momentary = new Window(this.windows.momentary);
    this.shortTerm = new Window(this.windows.shortTerm);
    this.state = [0, 1].map(() => this.filters.map(() => [0, 0]));  // per side, per biquad: transposed DF2 state
    this.history = [0, 1].map(() => new Float64Array(this.phases ? this.phases[0].length : 1));
    this.peak = [0, 0];
    this.truePeak = 0;
    this.sinceReport = 0;
  }

  process(inputs, outputs) {
    const input = inputs[0];
    const frames = outputs[0]?.[0]?.length || 128;
    const left = input && input.length ? input[0] : null;
    const right = input && input.length > 1 ? input[1] : left;
    for (let n = 0; n < frames; n++) {
      const x = [left ? left[n] : 0, right ? right[n] : 0];
      let power = 0, kPower = 0;
      for (let c = 0; c < 2; c++) {
        const v = x[c];
        const magnitude = Math.abs(v);
        if (magnitude > this.peak[c]) this.peak[c] = magnitude;
        power += v * v;
        let y = v;
        for (let f = 0; f < this.filters.length; f++) {  // K-weighting: two biquads, transposed direct form II
          const { b, a } = this.filters[f];
          const s = this.state[c][f];
          const out = b[0] * y + s[0];
          s[0] = b[1] * y - a[1] * out + s[1];
          s[1] = b[2] * y - a[2] * out;
          y = out;
        }
        kPower += y * y;
        if (this.phases) {
          // h[j] = x[n - j]; the interval evaluated now starts at m = n - (first + T - 1), whose
          // taps read x[m + first + k] = h[T - 1 - k]: every interval is read once, a few samples late.
          const h = this.history[c];
          h.copyWithin(1, 0);
          h[0] = v;
          const last = h.length - 1;
          for (const taps of this.phases) {
            let acc = 0;
            for (let k = 0; k < taps.length; k++) acc += taps[k] * h[last - k];
            const m = Math.abs(acc);
            if (m > this.truePeak) this.truePeak = m;
          }
        }
      }
      this.rms.push(power / 2);
      this.momentary.push(kPower);
      this.shortTerm.push(kPower);
    }
    this.sinceReport += frames;
    if (this.sinceReport >= this.reportEvery) {
      this.sinceReport = 0;
      const lufs = (power) => (power > 0 ? -0.691 + 10 * Math.log10(power) : -Infinity);
      this.port.postMessage({
        frame: currentFrame,
        peak: this.peak,
        rms: Math.sqrt(this.rms.mean()),
        momentary: lufs(this.momentary.mean()),
        shortTerm: lufs(this.shortTerm.mean()),
        truePeak: this.phases ? Math.max(this.truePeak, this.peak[0], this.peak[1]) : null,
      });
      this.peak = [0, 0];
      this.truePeak = 0;
    }
    return true;
  }
}

registerProcessor('mixdown-meter', MeterProcessor);
