// Small UI pieces: element builder, rotary knob, number formats, EQ curve plot.

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

// Plot an EQ magnitude response (dB at log-spaced frequencies) on a canvas.
export function drawEqCurve(canvas, freqs, gains, { rangeDb = 18, grid = false, color = '#38c6ad' } = {}) {
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width, height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * dpr)) { canvas.width = Math.round(width * dpr); canvas.height = Math.round(height * dpr); }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const lo = Math.log(freqs[0]), hi = Math.log(freqs[freqs.length - 1]);
  const x = (f) => (Math.log(f) - lo) / (hi - lo) * width;
  const y = (db) => height / 2 - clamp(db, -rangeDb, rangeDb) / rangeDb * (height / 2 - 4);
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
}
