// Small UI pieces: element builder, rotary knob, number formats, EQ curve plot with handles,
// level meters, compressor transfer curve.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, '');
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));

// Value <-> position in [0, 1], linearly or on a log axis (a parameter's scale in the schema).
export function scaleMap(min, max, scale = 'linear') {
  if (scale === 'log') {
    const lo = Math.log(min), hi = Math.log(max);
    return { toUnit: (v) => (Math.log(v) - lo) / (hi - lo), fromUnit: (u) => Math.exp(lo + clamp(u, 0, 1) * (hi - lo)) };
  }
  return { toUnit: (v) => (v - min) / (max - min), fromUnit: (u) => min + clamp(u, 0, 1) * (max - min) };
}

export function fmtDb(db, digits = 1) {
  if (db === null || db === undefined || !Number.isFinite(db)) return '−∞';
  const text = db.toFixed(digits);
  return db > 0 ? `+${text}` : text.replace('-', '−');
}

export function fmtPan(pan) {
  if (Math.abs(pan) < 0.005) return 'C';
  return `${Math.round(Math.abs(pan) * 100)}${pan < 0 ? 'L' : 'R'}`;
}

export function fmtHz(hz) {
  return hz >= 1000 ? `${(hz / 1000).toFixed(hz >= 10000 ? 1 : 2)}k` : `${Math.round(hz)}`;
}

export function fmtTime(seconds) {
  const s = Math.max(0, seconds);
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(1).padStart(4, '0')}`;
}

// A rotary control. Drag up/down (Shift: fine), wheel, arrow keys; double-click resets.
// Its throw maps [min, max] on `scale` ('linear' or 'log'); values are rounded to `step`.
// `value` may be null when `offAtMin` is set (the leftmost position means "off").
export function knob({ label, min, max, value, step = 0.1, scale = 'linear', defaultValue = min,
                       format = (v) => v.toFixed(1), bipolar = false, offAtMin = false, onInput, onChange, title }) {
  const { toUnit, fromUnit } = scaleMap(min, max, scale);
  // One wheel notch or arrow press moves one step (linear) or 1/200 of the throw (log).
  const unitStep = scale === 'log' ? 1 / 200 : step / (max - min);
  const size = 34;
  const svgNs = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(svgNs, 'svg');
  svg.setAttribute('viewBox', '0 0 34 34');
  svg.setAttribute('width', size);
  svg.setAttribute('height', size);
  const track = document.createElementNS(svgNs, 'path');
  const arc = document.createElementNS(svgNs, 'path');
  const pointer = document.createElementNS(svgNs, 'line');
  track.setAttribute('stroke', '#394050');
  arc.setAttribute('stroke', 'var(--accent)');
  for (const p of [track, arc]) {
    p.setAttribute('fill', 'none');
    p.setAttribute('stroke-width', '3.2');
    p.setAttribute('stroke-linecap', 'round');
  }
  pointer.setAttribute('stroke', '#e6e8ec');
  pointer.setAttribute('stroke-width', '2');
  pointer.setAttribute('stroke-linecap', 'round');
  const body = document.createElementNS(svgNs, 'circle');
  body.setAttribute('cx', 17); body.setAttribute('cy', 17); body.setAttribute('r', 10.5);
  body.setAttribute('fill', '#2a2f39'); body.setAttribute('stroke', '#444b59');
  svg.append(track, arc, body, pointer);

  const node = el('div', { class: 'knob', tabindex: 0, role: 'slider', 'aria-label': label, title });
  node.append(svg);
  const valueText = el('div', { class: 'knob-value' });
  const wrap = el('div', { class: 'knob-wrap' }, node, el('div', { class: 'knob-label' }, label), valueText);

  const a0 = -135, a1 = 135;
  const polar = (deg, r) => [17 + r * Math.sin(deg * Math.PI / 180), 17 - r * Math.cos(deg * Math.PI / 180)];
  const arcPath = (from, to, r) => {
    const [x0, y0] = polar(from, r), [x1, y1] = polar(to, r);
    return `M ${x0} ${y0} A ${r} ${r} 0 ${Math.abs(to - from) > 180 ? 1 : 0} ${to > from ? 1 : 0} ${x1} ${y1}`;
  };
  track.setAttribute('d', arcPath(a0, a1, 14.5));
  let current = value;

  function draw() {
    const v = current === null ? min : current;
    const angle = a0 + toUnit(clamp(v, min, max)) * (a1 - a0);
    const origin = bipolar ? 0 : a0;
    arc.setAttribute('d', Math.abs(angle - origin) < 0.5 ? '' : arcPath(Math.min(origin, angle), Math.max(origin, angle), 14.5));
    arc.style.opacity = current === null ? 0 : 1;
    const [px, py] = polar(angle, 9);
    const [qx, qy] = polar(angle, 3);
    pointer.setAttribute('x1', qx); pointer.setAttribute('y1', qy);
    pointer.setAttribute('x2', px); pointer.setAttribute('y2', py);
    valueText.textContent = current === null ? 'off' : format(current);
    node.setAttribute('aria-valuenow', current === null ? min : current);
  }
  function set(v, commit) {
    const next = Number(clamp(Math.round(clamp(v, min, max) / step) * step, min, max).toFixed(6));
    const off = offAtMin && next <= min;
    const nextValue = off ? null : next;
    if (nextValue !== current) {
      current = nextValue;
      draw();
      onInput?.(current);
    }
    if (commit) onChange?.(current);
  }

  const position = () => toUnit(current === null ? min : clamp(current, min, max));
  const nudge = (steps) => set(fromUnit(position() + steps * unitStep), true);

  let drag = null;
  node.addEventListener('pointerdown', (e) => {
    node.setPointerCapture(e.pointerId);
    drag = { y: e.clientY, start: position() };
    node.focus();
  });
  node.addEventListener('pointermove', (e) => {
    if (!drag) return;
    set(fromUnit(drag.start + (drag.y - e.clientY) / (e.shiftKey ? 1500 : 150)), false);
  });
  const end = () => { if (drag) { drag = null; onChange?.(current); } };
  node.addEventListener('pointerup', end);
  node.addEventListener('pointercancel', end);
  node.addEventListener('dblclick', () => set(defaultValue, true));
  node.addEventListener('wheel', (e) => {
    e.preventDefault();
    nudge((e.deltaY < 0 ? 1 : -1) * (e.shiftKey ? 1 : 5));
  }, { passive: false });
  node.addEventListener('keydown', (e) => {
    const direction = { ArrowUp: 1, ArrowRight: 1, ArrowDown: -1, ArrowLeft: -1 }[e.key];
    if (direction === undefined) return;
    e.preventDefault();
    nudge(direction * (e.shiftKey ? 1 : 10));
  });
  draw();
  wrap.setValue = (v) => { current = v; draw(); };
  return wrap;
}

// A canvas sized to its CSS box at the device's pixel ratio, drawing in CSS pixels.
function canvas2d(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width, height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
    canvas.width = Math.round(width * dpr); canvas.height = Math.round(height * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return { ctx, width, height };
}

// The axes of an EQ plot: log frequency across, dB up, on a canvas of `width` x `height`.
export function eqAxes(freqs, width, height, rangeDb = 18) {
  const lo = Math.log(freqs[0]), hi = Math.log(freqs[freqs.length - 1]);
  const half = height / 2 - 4;
  return {
    x: (f) => (Math.log(f) - lo) / (hi - lo) * width,
    y: (db) => height / 2 - clamp(db, -rangeDb, rangeDb) / rangeDb * half,
    freq: (x) => Math.exp(lo + clamp(x / width, 0, 1) * (hi - lo)),
    db: (y) => clamp((height / 2 - y) / half * rangeDb, -rangeDb, rangeDb),
  };
}

// Plot an EQ magnitude response (dB at log-spaced frequencies) on a canvas; with `handles`
// ([{x, y, label, bypassed, active}] in CSS pixels) draws the bands' drag handles over it.
export function drawEqCurve(canvas, freqs, gains, { rangeDb = 18, grid = false, color = '#38c6ad', handles = [] } = {}) {
  const { ctx, width, height } = canvas2d(canvas);
  const { x, y } = eqAxes(freqs, width, height, rangeDb);
  ctx.strokeStyle = '#262b34';
  ctx.lineWidth = 1;
  ctx.beginPath(); ctx.moveTo(0, y(0)); ctx.lineTo(width, y(0)); ctx.stroke();
  if (grid) {
    ctx.fillStyle = '#6c7482';
    ctx.font = '10px system-ui';
    for (const f of [50, 100, 200, 500, 1000, 2000, 5000, 10000]) {
      if (f < freqs[0] || f > freqs[freqs.length - 1]) continue;
      ctx.beginPath(); ctx.moveTo(x(f), 0); ctx.lineTo(x(f), height); ctx.stroke();
      ctx.fillText(fmtHz(f), x(f) + 3, height - 4);
    }
    for (const db of [-12, -6, 6, 12]) {
      ctx.beginPath(); ctx.moveTo(0, y(db)); ctx.lineTo(width, y(db)); ctx.stroke();
      ctx.fillText(`${db > 0 ? '+' : ''}${db}`, 3, y(db) - 2);
    }
  }
  if (!gains) return;
  ctx.beginPath();
  freqs.forEach((f, i) => (i ? ctx.lineTo(x(f), y(gains[i])) : ctx.moveTo(x(f), y(gains[i]))));
  ctx.strokeStyle = color;
  ctx.lineWidth = grid ? 2 : 1.5;
  ctx.stroke();
  ctx.lineTo(width, y(0)); ctx.lineTo(0, y(0)); ctx.closePath();
  ctx.fillStyle = color + '22';
  ctx.fill();
  for (const handle of handles) {
    ctx.beginPath();
    ctx.arc(handle.x, handle.y, handle.active ? 8 : 6.5, 0, 2 * Math.PI);
    ctx.fillStyle = handle.bypassed ? '#2a2f39' : handle.active ? '#f2d14b' : '#1b1e25';
    ctx.strokeStyle = handle.bypassed ? '#6c7482' : color;
    ctx.lineWidth = 1.5;
    ctx.setLineDash(handle.bypassed ? [2, 2] : []);
    ctx.fill(); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = handle.active ? '#222' : '#e6e8ec';
    ctx.font = '10px system-ui';
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.fillText(handle.label, handle.x, handle.y + 0.5);
    ctx.textAlign = 'start';
    ctx.textBaseline = 'alphabetic';
  }
}

// A vertical level meter over [floorDb, topDb] dBFS (the fader's scale beside it): RMS (solid)
// inside peak (lighter), a peak-hold line, red over 0 dBFS, and, when `reductionDb` is given,
// the gain reduction hanging from the top (amber, 0-24 dB).
export function drawMeter(canvas, { peakDb = -Infinity, rmsDb = -Infinity, holdDb = -Infinity, reductionDb = null,
                                    dimmed = false, floorDb = -60, topDb = 12 } = {}) {
  const { ctx, width, height } = canvas2d(canvas);
  const level = (db) => height - clamp((db - floorDb) / (topDb - floorDb), 0, 1) * height;
  const grWidth = reductionDb === null ? 0 : Math.max(3, Math.floor(width / 3));
  const barWidth = width - grWidth - (grWidth ? 1 : 0);
  ctx.fillStyle = '#0c0e12';
  ctx.fillRect(0, 0, width, height);
  const zero = level(0);
  const bar = (db, colorLow, colorHigh) => {
    if (!Number.isFinite(db) || db <= floorDb) return;
    const top = level(db);
    ctx.fillStyle = colorLow;
    ctx.fillRect(0, Math.max(top, zero), barWidth, height - Math.max(top, zero));
    if (top < zero) { ctx.fillStyle = colorHigh; ctx.fillRect(0, top, barWidth, zero - top); }
  };
  ctx.globalAlpha = dimmed ? 0.35 : 1;
  bar(peakDb, '#2f8f7e', '#d9534f');
  bar(rmsDb, '#46d7bd', '#ef5d5d');
  if (Number.isFinite(holdDb) && holdDb > floorDb) {
    ctx.fillStyle = holdDb > 0 ? '#ef5d5d' : '#e6e8ec';
    ctx.fillRect(0, level(holdDb) - 1, barWidth, 2);
  }
  ctx.fillStyle = '#3a414d';
  ctx.fillRect(0, zero, barWidth, 1);
  if (grWidth) {
    const gr = clamp(reductionDb || 0, 0, 24) / 24 * height;
    ctx.fillStyle = '#151820';
    ctx.fillRect(barWidth + 1, 0, grWidth, height);
    ctx.fillStyle = '#f2a44b';
    ctx.fillRect(barWidth + 1, 0, grWidth, gr);
  }
  ctx.globalAlpha = 1;
}

// The compressor's static transfer curve (input dB -> output dB, makeup included) over
// [floorDb, 0], the threshold marked, and the operating point at the live gain reduction.
export function drawTransferCurve(canvas, comp, reduction, { floorDb = -60, gainReductionDb, levelForReductionDb } = {}) {
  const { ctx, width, height } = canvas2d(canvas);
  const span = -floorDb;
  const x = (db) => (db - floorDb) / span * width;
  const y = (db) => height - (clamp(db, floorDb, 12) - floorDb) / (span + 12) * height;
  ctx.strokeStyle = '#262b34';
  ctx.lineWidth = 1;
  for (let db = floorDb; db <= 0; db += 12) {
    ctx.beginPath(); ctx.moveTo(x(db), 0); ctx.lineTo(x(db), height); ctx.stroke();
    ctx.beginPath(); ctx.moveTo(0, y(db)); ctx.lineTo(width, y(db)); ctx.stroke();
  }
  ctx.strokeStyle = '#394050';
  ctx.beginPath(); ctx.moveTo(x(floorDb), y(floorDb)); ctx.lineTo(x(0), y(0)); ctx.stroke();  // unity
  if (!comp) return;
  ctx.strokeStyle = '#6c7482';
  ctx.setLineDash([3, 3]);
  ctx.beginPath(); ctx.moveTo(x(comp.threshold_db), 0); ctx.lineTo(x(comp.threshold_db), height); ctx.stroke();
  ctx.setLineDash([]);
  ctx.beginPath();
  for (let i = 0; i <= 120; i++) {
    const input = floorDb + i / 120 * span;
    const output = input - gainReductionDb(input, comp) + comp.makeup_db;
    if (i === 0) ctx.moveTo(x(input), y(output)); else ctx.lineTo(x(input), y(output));
  }
  ctx.strokeStyle = '#38c6ad';
  ctx.lineWidth = 2;
  ctx.stroke();
  const level = levelForReductionDb(reduction, comp);
  if (level !== null) {
    ctx.beginPath();
    ctx.arc(x(level), y(level - reduction + comp.makeup_db), 5, 0, 2 * Math.PI);
    ctx.fillStyle = '#f2a44b';
    ctx.fill();
  }
  ctx.fillStyle = '#8d95a3';
  ctx.font = '10px system-ui';
  ctx.fillText(`GR ${reduction > 0.05 ? '−' + reduction.toFixed(1) : '0.0'} dB`, 6, 12);
}
