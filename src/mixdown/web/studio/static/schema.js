// The console's parameter schema as /api/config sends it ("schema", generated from
// mixdown.params.SCHEMA): one entry per numeric setting with its JSON path, key, level
// ("channel", "band", "master"), group (the object holding it: "compressor", "reverb" or ""),
// min, max, default, unit, scale ("linear" or "log"), digits and whether it may be null.
// The page's controls take their ranges, units, slider scales, defaults and input checks
// from here; nothing numeric about a setting is written in the page itself.

import { clamp } from './widgets.js';

export { scaleMap } from './widgets.js';

export class Schema {
  constructor(entries) {
    this.entries = entries;
    this.byTensor = Object.fromEntries(entries.map((spec) => [spec.tensor, spec]));
  }

  // The entry of a tensor name (e.g. 'gain_db', 'reverb_send_db').
  spec(tensor) {
    const spec = this.byTensor[tensor];
    if (!spec) throw new Error(`the server's schema has no parameter ${tensor}`);
    return spec;
  }

  // Entries held directly by one object: a channel ('channel', ''), its compressor
  // ('channel', 'compressor'), an EQ band ('band'), the master ('master', ''), its reverb.
  at(level, group = '') {
    return this.entries.filter((spec) => spec.level === level && spec.group === group);
  }

  // A new object of that kind at the schema defaults (a compressor switched on, a new band).
  defaults(level, group = '') {
    return Object.fromEntries(this.at(level, group).map((spec) => [spec.key, spec.default]));
  }
}

// The highest value a setting may take at a sample rate: frequencies stay under
// `fraction` of it (the server's band_freq_fraction), as the server's methods keep them.
export function maxAt(spec, sampleRate, fraction) {
  return spec.unit === 'Hz' ? Math.min(spec.max, Math.floor(fraction * sampleRate)) : spec.max;
}

// A typed or dragged value made valid for `spec`: a number clamped to its range (`max`
// lowered by maxAt where it applies) and rounded to its digits; null when not a number.
export function checkValue(spec, value, max = spec.max) {
  if (value === null || value === undefined || (typeof value === 'string' && !value.trim())) return null;
  const x = Number(value);
  if (!Number.isFinite(x)) return null;
  return Number(clamp(x, spec.min, max).toFixed(spec.digits));
}

// A short name from the JSON key: its unit suffix dropped ('attack_ms' -> 'attack', 'q' -> 'Q').
export function label(spec) {
  const name = spec.key.replace(/_(hz|db|dbtp|lufs|ms|s)$/, '').replace(/_/g, ' ');
  return name.length === 1 ? name.toUpperCase() : name;
}

// Step of a number box: the digits the settings keep.
export function inputStep(spec) {
  return 10 ** -spec.digits;
}

// Step of a knob over [min, max]: about 1/200 of a linear throw, rounded to 1, 2 or 5
// times a power of ten; on a log scale the digits kept.
export function knobStep(spec, min = spec.min, max = spec.max) {
  if (spec.scale === 'log') return inputStep(spec);
  const raw = (max - min) / 200;
  const power = 10 ** Math.floor(Math.log10(raw));
  const mantissa = raw / power;
  return (mantissa <= 1 ? 1 : mantissa <= 2 ? 2 : mantissa <= 5 ? 5 : 10) * power;
}

// A value for reading: the spec's digits without trailing zeros, gains signed, with its unit.
// `compact` (knobs): no space before the unit, and none for dB (the sign says it is a gain).
export function fmtValue(spec, value, { compact = false, digits = spec.digits } = {}) {
  const db = spec.unit.startsWith('dB');
  if (value === null || value === undefined || !Number.isFinite(value)) return db ? '−∞' : 'off';
  let text = String(Number(value.toFixed(digits)));
  if (db && Number(text) > 0) text = `+${text}`;
  text = text.replace('-', '−');
  if (!spec.unit || (compact && db)) return text;
  return `${text}${compact || spec.unit.startsWith(':') ? '' : ' '}${spec.unit}`;
}

// Read and write a setting on the object at its level (a channel, a band, the master).
export function getValue(spec, obj) {
  return spec.group ? obj[spec.group]?.[spec.key] : obj[spec.key];
}

export function setValue(spec, obj, value) {
  (spec.group ? obj[spec.group] : obj)[spec.key] = value;
}
