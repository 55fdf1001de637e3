// The console's math the page needs between server renders, written as mixdown computes it so
// that what the page draws and plays matches the exact render:
// * panGains: the pan law of mixdown.dsp.pan (constant power, -3 dB centre; stereo stems balanced);
// * biquad / eqCurveDb: the RBJ biquads of mixdown.dsp.eq and their magnitude response;
// * staticGainReductionDb: the compressor's static curve (mixdown.dsp.compressor, soft knee).
// tests/test_studio_browser.py checks these against the Python functions.

// Left/right gains of a channel at pan p in [-1, 1]: (cos t, sin t), t = (p + 1) pi / 4; a
// stereo stem is balanced by the same law times sqrt(2), so at centre it passes at unity.
export function panGains(pan, stereo) {
  const theta = (Math.min(1, Math.max(-1, pan)) + 1) * Math.PI / 4;
  const scale = stereo ? Math.SQRT2 : 1;
  return [scale * Math.cos(theta), scale * Math.sin(theta)];
}

export const dbToGain = (db) => (db === null || db === undefined || db === -Infinity ? 0 : 10 ** (db / 20));
export const gainToDb = (gain) => (gain > 0 ? 20 * Math.log10(gain) : -Infinity);

// RBJ Audio EQ Cookbook coefficients, normalised to a0 = 1: { b: [b0, b1, b2], a: [1, a1, a2] }.
export function biquad(type, freqHz, gainDb, q, sampleRate) {
  const w0 = 2 * Math.PI * freqHz / sampleRate;
  const cos = Math.cos(w0), alpha = Math.sin(w0) / (2 * q);
  const A = 10 ** (gainDb / 40);
  const sa = 2 * Math.sqrt(A) * alpha;
  let b, a;
  switch (type) {
    case 'peak':
      b = [1 + alpha * A, -2 * cos, 1 - alpha * A]; a = [1 + alpha / A, -2 * cos, 1 - alpha / A]; break;
    case 'low_shelf':
      b = [A * ((A + 1) - (A - 1) * cos + sa), 2 * A * ((A - 1) - (A + 1) * cos), A * ((A + 1) - (A - 1) * cos - sa)];
      a = [(A + 1) + (A - 1) * cos + sa, -2 * ((A - 1) + (A + 1) * cos), (A + 1) + (A - 1) * cos - sa]; break;
    case 'high_shelf':
      b = [A * ((A + 1) + (A - 1) * cos + sa), -2 * A * ((A - 1) + (A + 1) * cos), A * ((A + 1) + (A - 1) * cos - sa)];
      a = [(A + 1) - (A - 1) * cos + sa, 2 * ((A - 1) - (A + 1) * cos), (A + 1) - (A - 1) * cos - sa]; break;
    case 'highpass':
      b = [(1 + cos) / 2, -(1 + cos), (1 + cos) / 2]; a = [1 + alpha, -2 * cos, 1 - alpha]; break;
    case 'lowpass':
      b = [(1 - cos) / 2, 1 - cos, (1 - cos) / 2]; a = [1 + alpha, -2 * cos, 1 - alpha]; break;
    default:
      return { b: [1, 0, 0], a: [1, 0, 0] };
  }
  return { b: b.map((c) => c / a[0]), a: [1, a[1] / a[0], a[2] / a[0]] };
}

const RESPONSE_FLOOR = 1e-30;  // mixdown.dsp.eq.RESPONSE_FLOOR_DB (-300 dB) as a power

// |C(e^jw)|^2 of a real biquad polynomial c from its real and imaginary parts, as
// mixdown.dsp.eq._biquad_power_db (and scipy.signal.freqz) evaluate it.
function power(c, cos1, cos2, sin1, sin2) {
  const re = c[0] + c[1] * cos1 + c[2] * cos2, im = c[1] * sin1 + c[2] * sin2;
  return re * re + im * im;
}

// Magnitude response in dB of a cascade of bands ({type, freq_hz, gain_db, q}) at freqs (Hz).
export function eqCurveDb(bands, freqs, sampleRate) {
  const coefficients = bands.map((band) => biquad(band.type, band.freq_hz, band.gain_db, band.q, sampleRate));
  return freqs.map((f) => {
    const w = 2 * Math.PI * f / sampleRate;
    const trig = [Math.cos(w), Math.cos(2 * w), Math.sin(w), Math.sin(2 * w)];
    let db = 0;
    for (const { b, a } of coefficients) {
      db += 10 * Math.log10(Math.max(power(b, ...trig), RESPONSE_FLOOR) / Math.max(power(a, ...trig), RESPONSE_FLOOR));
    }
    return db;
  });
}

// The compressor's static gain reduction (dB, >= 0) at an input level (dB): Giannoulis et al.
// 2012 eq. 4, soft knee of width knee_db centred on the threshold.
export function staticGainReductionDb(levelDb, { threshold_db: threshold, ratio, knee_db: knee }) {
  const over = levelDb - threshold;
  const slope = 1 - 1 / ratio;
  if (2 * over > knee) return slope * over;
  if (2 * over < -knee || knee <= 0) return 0;
  const u = over + knee / 2;
  return slope * u * u / (2 * knee);
}

// The input level whose static reduction is `reductionDb` (inverse of the above; for the
// transfer curve's operating point). Returns null for no reduction.
export function levelForReductionDb(reductionDb, comp) {
  if (!(reductionDb > 0) || comp.ratio <= 1) return null;
  let lo = comp.threshold_db - comp.knee_db / 2, hi = 40;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (staticGainReductionDb(mid, comp) < reductionDb) lo = mid; else hi = mid;
  }
  return (lo + hi) / 2;
}
