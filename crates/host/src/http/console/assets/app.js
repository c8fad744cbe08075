/*
 * Nimbus web console: the browser side of the admin endpoint's console.
 *
 * A plain script (no framework, no build step, nothing loaded from the
 * network) that the host embeds and serves as /assets/app.js. It reads the
 * JSON API of docs/CONSOLE.md and renders three hash-routed views:
 *
 *   #/                       the host: process, host-wide charts, workloads
 *   #/workloads/NS/NAME      one workload: wiring graph, components, requests
 *   #/cluster                the cluster's hosts and deployments
 *
 * Each view polls its endpoints (at most one request of a kind in flight).
 * A 401 asks for the admin token, kept in session storage. Server data is
 * only ever inserted as text or attribute values, never parsed as HTML:
 * paths, hosts and labels come from untrusted clients.
 */
'use strict';
(function () {
  const SVGNS = 'http://www.w3.org/2000/svg';
  const TOKEN_KEY = 'nimbus-admin-token';
  const DASH = '–';

  // ---------------------------------------------------------------- DOM

  /** Builds an element: attrs `text` sets textContent, `on*` adds listeners. */
  function build(node, attrs, kids) {
    for (const k in attrs || {}) {
      const v = attrs[k];
      if (v == null || v === false) continue;
      if (k === 'text') node.textContent = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid != null && kid !== false) node.append(kid instanceof Node ? kid : String(kid));
    }
    return node;
  }
  const h = (tag, attrs, ...kids) => build(document.createElement(tag), attrs, kids);
  const s = (tag, attrs, ...kids) => build(document.createElementNS(SVGNS, tag), attrs, kids);

  /** Sets text (and optionally the class) only when it changed. */
  function setText(node, text, cls) {
    if (node.textContent !== text) node.textContent = text;
    if (cls !== undefined && node.getAttribute('class') !== cls) node.setAttribute('class', cls);
  }

  /** Keeps `tbody`'s rows in the order of `items`, reusing rows by key. */
  function syncRows(tbody, items, keyOf, create, update) {
    const old = tbody._rows || new Map();
    const next = new Map();
    items.forEach((item, i) => {
      const key = keyOf(item);
      const tr = old.get(key) || create(item);
      update(tr, item);
      next.set(key, tr);
      const at = tbody.children[i];
      if (at !== tr) tbody.insertBefore(tr, at || null);
    });
    for (const [key, tr] of old) if (!next.has(key)) tr.remove();
    tbody._rows = next;
  }

  // --------------------------------------------------------- formatting

  const isNum = (v) => typeof v === 'number' && isFinite(v);
  const fmtRate = (v) => (isNum(v) ? v.toFixed(1) : DASH);
  const fmtInt = (v) => (isNum(v) ? String(Math.round(v)) : DASH);

  function fmtBytes(v) {
    if (!isNum(v)) return DASH;
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return i === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
  }

  /** A duration in seconds: µs, ms or s. */
  function fmtSecs(v) {
    if (!isNum(v)) return DASH;
    if (v === 0) return '0';
    if (v < 1e-3) return `${Math.round(v * 1e6)} µs`;
    if (v < 1) return `${(v * 1e3).toFixed(v < 0.01 ? 2 : 1)} ms`;
    return `${v.toFixed(2)} s`;
  }

  function fmtCores(v) {
    if (!isNum(v)) return DASH;
    return v === 0 ? '0' : v.toFixed(v < 0.1 ? 3 : 2);
  }

  /** A span of seconds, two units at most: 45s, 12m 3s, 3h 12m, 2d 4h. */
  function fmtSpan(sec) {
    if (!isNum(sec)) return DASH;
    sec = Math.max(0, Math.floor(sec));
    const d = Math.floor(sec / 86400), hr = Math.floor(sec / 3600) % 24;
    const m = Math.floor(sec / 60) % 60, x = sec % 60;
    if (d) return `${d}d ${hr}h`;
    if (hr) return `${hr}h ${m}m`;
    if (m) return `${m}m ${x}s`;
    return `${x}s`;
  }

  const pad = (n, w = 2) => String(n).padStart(w, '0');
  function fmtClock(ms, millis) {
    if (!isNum(ms)) return DASH;
    const t = new Date(ms);
    const base = `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
    return millis ? `${base}.${pad(t.getMilliseconds(), 3)}` : base;
  }
  function fmtDate(ms) {
    if (!isNum(ms)) return DASH;
    const t = new Date(ms);
    return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${fmtClock(ms)}`;
  }
  const fmtAgo = (ms) => (isNum(ms) ? `${fmtSpan((Date.now() - ms) / 1000)} ago` : '');

  /** `sha256:0123…` → `0123456789ab`. */
  const shortDigest = (d) => (d ? String(d).replace(/^[a-z0-9]+:/, '').slice(0, 12) : DASH);

  function truncate(text, max) {
    text = String(text == null ? '' : text);
    return text.length > max ? `${text.slice(0, max - 1)}…` : text;
  }

  // ---------------------------------------------------------------- API

  let memoryToken = null; // the token when session storage is unavailable

  function getToken() {
    try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }
  function setToken(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage disabled: the token lives for this page only */ }
    memoryToken = token;
  }

  class ApiError extends Error {
    constructor(status, message, token) { super(message); this.status = status; this.token = token; }
  }
  const currentToken = () => getToken() || memoryToken || null;

  /** GET an /api path as JSON; throws ApiError (status 0: not reached). */
  async function api(path) {
    const headers = { Accept: 'application/json' };
    const token = currentToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 10000);
    try {
      let res;
      try {
        res = await fetch(path, { headers, signal: abort.signal, cache: 'no-store' });
      } catch (e) {
        throw new ApiError(0, e && e.name === 'AbortError' ? 'no answer in 10 s' : 'cannot reach the host');
      }
      if (res.status === 401) throw new ApiError(401, 'token required', token);
      let body = null;
      try { body = await res.json(); } catch (e) { /* checked below */ }
      if (!res.ok) throw new ApiError(res.status, (body && body.error) || `HTTP ${res.status}`);
      if (body == null || typeof body !== 'object') throw new ApiError(res.status, 'answer is not JSON');
      return body;
    } finally {
      clearTimeout(timer);
    }
  }

  // ------------------------------------------------------------ polling

  const wlApiPath = (r) => `/api/workloads/${encodeURIComponent(r.ns)}/${encodeURIComponent(r.name)}`;
  const wlHref = (ns, name) => `#/workloads/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;

  /** What each view polls: key → path and period. */
  const sources = {
    host: { path: () => '/api/host', every: 1000 },
    workloads: { path: () => '/api/workloads', every: 1000 },
    history: { path: () => '/api/history', every: 1000 },
    workload: { path: () => wlApiPath(route), every: 1000 },
    cluster: { path: () => '/api/cluster', every: 2000 },
  };
  const VIEW_SOURCES = {
    host: ['host', 'workloads', 'history'],
    workload: ['host', 'workload'],
    cluster: ['host', 'cluster'],
  };
  for (const key in sources) Object.assign(sources[key], { key, busy: false, started: 0 });

  let route = { view: 'host' };
  let routeGen = 0;      // bumped on every route change: late answers are dropped
  let view = null;       // the current view's object: { root, apply(key, data), missing? }
  let authNeeded = false;
  let lastHost = null;   // the last /api/host answer (header, access log note)
  const failures = new Map(); // source key → message

  function tick() {
    if (authNeeded || !view) return;
    const now = Date.now();
    for (const key of VIEW_SOURCES[route.view]) {
      const src = sources[key];
      if (!src.busy && now - src.started >= src.every) poll(src);
    }
  }

  async function poll(src) {
    src.busy = true;
    src.started = Date.now();
    const gen = routeGen;
    let data;
    try {
      data = await api(src.path());
      failures.delete(src.key);
    } catch (e) {
      // A 401 for a token since replaced (or for none) says nothing of the new one.
      if (e.status === 401) { if (e.token === currentToken()) askToken(); }
      else if (e.status === 404 && src.key === 'workload') {
        failures.delete(src.key);
        if (gen === routeGen && view.missing) view.missing();
      } else failures.set(src.key, e.message || String(e));
      return;
    } finally {
      src.busy = false;
      showFailures();
    }
    if (src.key === 'host') applyHeader(data);
    if (gen === routeGen && !authNeeded) view.apply(src.key, data);
  }

  // ------------------------------------------------------- header, auth

  const $ = (sel) => document.querySelector(sel);

  function applyHeader(host) {
    setText($('#host-name'), host.hostname || DASH);
    setText($('#host-version'), host.version ? `v${host.version}` : '');
    setText($('#host-uptime'), `up ${fmtSpan(host.uptimeSeconds)}`);
    $('#nav-cluster').hidden = !host.cluster;
    lastHost = host;
    const title = `Nimbus · ${host.hostname || 'host'}`;
    if (document.title !== title) document.title = title;
  }

  function showFailures() {
    let banner = $('[data-testid=disconnected]');
    if (!failures.size || authNeeded) { if (banner) banner.remove(); return; }
    if (!banner) {
      banner = h('div', { class: 'banner', 'data-testid': 'disconnected', role: 'status' });
      $('#banner-slot').append(banner);
    }
    const [msg] = failures.values();
    setText(banner, `disconnected: ${msg} (retrying)`);
  }

  function askToken() {
    const rejected = !!currentToken();
    setToken(null);
    authNeeded = true;
    failures.clear();
    showFailures();
    const slot = $('#auth-slot');
    if (slot.firstChild) return;
    const input = h('input', { name: 'token', type: 'password', autocomplete: 'off', required: true,
      placeholder: 'admin token', 'aria-label': 'admin token' });
    const form = h('form', { 'data-testid': 'token-form', class: 'token-form', onsubmit: (ev) => {
      ev.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      setToken(token);
      authNeeded = false;
      slot.replaceChildren();
      for (const key in sources) sources[key].started = 0;
      tick();
    } },
    h('h2', { text: 'Admin token required' }),
    h('p', {}, 'This admin endpoint needs its bearer token (', h('code', { text: '--admin-token' }), '). It is kept for this tab only.'),
    rejected ? h('p', { class: 'error', text: 'The token was not accepted.' }) : null,
    h('div', { class: 'row' }, input, h('button', { type: 'submit', text: 'Continue' })));
    slot.append(h('div', { class: 'overlay' }, form));
    input.focus();
  }

  // ------------------------------------------------------------- charts

  /** Rounds up to 1, 2 or 5 times a power of ten. */
  function niceCeil(v) {
    if (!(v > 0)) return 0;
    const e = Math.pow(10, Math.floor(Math.log10(v)));
    const f = v / e;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * e;
  }

  /** Rounds bytes up to 1, 2 or 5 times a power of ten of KiB, MiB or GiB. */
  function niceBytes(v) {
    if (!(v > 0)) return 0;
    const unit = Math.pow(1024, Math.max(0, Math.min(4, Math.floor(Math.log(v) / Math.log(1024)))));
    return niceCeil(v / unit) * unit;
  }

  /** A titled chart panel; `series` is [{name, get(point), color}]. */
  function chartPanel(testid, title, series, fmt) {
    const svg = s('svg', { 'data-testid': testid, class: 'chart', height: 120, 'data-points': 0, 'data-last': '' });
    const value = h('span', { class: 'chart-value' });
    const panel = { svg, value, series, fmt, points: [], bytes: fmt === fmtBytes };
    svg.addEventListener('mousemove', (ev) => {
      const box = svg.getBoundingClientRect();
      panel.hoverX = ev.clientX - box.left;
      drawHover(panel);
    });
    svg.addEventListener('mouseleave', () => { panel.hoverX = null; drawHover(panel); });
    panel.el = h('div', { class: 'chart-panel' },
      h('div', { class: 'chart-head' }, h('span', { class: 'chart-title', text: title }), value), svg);
    return panel;
  }

  /** Draws `points` (oldest first, each with `at`) into a chart panel. */
  function drawChart(panel, points) {
    const { svg, series, fmt } = panel;
    const W = Math.max(160, Math.round(svg.getBoundingClientRect().width) || 300), H = 120;
    const L = 52, R = 8, T = 8, B = 16;
    const kids = [];
    let max = 0;
    for (const p of points) for (const se of series) { const v = se.get(p); if (isNum(v) && v > max) max = v; }
    const top = (panel.bytes ? niceBytes(max) : niceCeil(max)) || 1;
    const t1 = points.length ? points[points.length - 1].at : Date.now();
    const t0 = points.length > 1 ? points[0].at : t1 - 1000;
    const x = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - R);
    const y = (v) => T + (1 - v / top) * (H - T - B);
    for (const v of [0, top / 2, top]) kids.push(s('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    kids.push(s('text', { class: 'axis', x: L - 4, y: y(top) + 4, 'text-anchor': 'end', text: fmt(top) }));
    kids.push(s('text', { class: 'axis', x: L - 4, y: y(0), 'text-anchor': 'end', text: fmt(0) }));
    kids.push(s('text', { class: 'axis', x: L, y: H - 3, text: `−${fmtSpan((t1 - t0) / 1000)}` }));
    kids.push(s('text', { class: 'axis', x: W - R, y: H - 3, 'text-anchor': 'end', text: 'now' }));
    series.forEach((se, i) => {
      // Line segments, broken where a value is null; an area under the first series.
      let line = '', area = '', run = [];
      const flush = () => {
        if (!run.length) return;
        line += run.map(([px, py], j) => `${j ? 'L' : 'M'}${px.toFixed(1)},${py.toFixed(1)}`).join('') + (run.length === 1 ? 'h0.01' : '');
        area += `M${run[0][0].toFixed(1)},${y(0)}` + run.map(([px, py]) => `L${px.toFixed(1)},${py.toFixed(1)}`).join('') +
          `L${run[run.length - 1][0].toFixed(1)},${y(0)}Z`;
        run = [];
      };
      for (const p of points) { const v = se.get(p); if (isNum(v)) run.push([x(p.at), y(v)]); else flush(); }
      flush();
      if (i === 0 && area) kids.push(s('path', { class: 'area', d: area, fill: se.color }));
      if (line) kids.push(s('path', { class: 'line', d: line, stroke: se.color }));
    });
    if (!points.length) kids.push(s('text', { class: 'axis', x: (L + W) / 2, y: H / 2, 'text-anchor': 'middle', text: 'no data yet' }));
    panel.hover = s('g', { class: 'hover' });
    kids.push(panel.hover);
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svg.replaceChildren(...kids);
    Object.assign(panel, { points, x, y, L, R, W, H, T, B });

    // Test hooks and the current value(s) in the panel's head.
    const last = (se) => { for (let i = points.length - 1; i >= 0; i--) { const v = se.get(points[i]); if (isNum(v)) return v; } return null; };
    const first = last(series[0]);
    svg.setAttribute('data-points', points.length);
    svg.setAttribute('data-last', first == null ? '' : String(first));
    setText(panel.value, series.map((se) => (series.length > 1 ? `${se.name} ` : '') + fmt(last(se))).join(' · '));
    drawHover(panel);
  }

  /** The readout under the mouse: a guide line and the nearest point's values. */
  function drawHover(panel) {
    if (!panel.hover) return;
    panel.hover.replaceChildren();
    const pts = panel.points;
    if (panel.hoverX == null || !pts.length) return;
    let best = pts[0];
    for (const p of pts) if (Math.abs(panel.x(p.at) - panel.hoverX) < Math.abs(panel.x(best.at) - panel.hoverX)) best = p;
    const px = panel.x(best.at);
    const lines = [fmtClock(best.at), ...panel.series.map((se) => (panel.series.length > 1 ? `${se.name} ` : '') + panel.fmt(se.get(best)))];
    const right = px > panel.W / 2;
    panel.hover.append(s('line', { x1: px, x2: px, y1: panel.T, y2: panel.H - panel.B }),
      ...lines.map((text, i) => s('text', { x: right ? px - 4 : px + 4, y: panel.T + 10 + i * 12, 'text-anchor': right ? 'end' : 'start', text })));
  }

  const C = { blue: '#2563eb', red: '#dc2626', violet: '#7c3aed', green: '#059669', amber: '#d97706', slate: '#64748b' };
  const hostCharts = () => [
    chartPanel('chart-requests', 'Requests/s', [{ name: 'req/s', get: (p) => p.requestsPerSecond, color: C.blue }], fmtRate),
    chartPanel('chart-errors', 'Errors/s (5xx)', [{ name: 'err/s', get: (p) => p.errorsPerSecond, color: C.red }], fmtRate),
    chartPanel('chart-latency', 'Latency', [
      { name: 'p99', get: (p) => p.p99Seconds, color: C.violet },
      { name: 'p50', get: (p) => p.p50Seconds, color: C.slate }], fmtSecs),
    chartPanel('chart-cpu', 'CPU cores', [{ name: 'cores', get: (p) => p.cpuCores, color: C.green }], fmtCores),
    chartPanel('chart-memory', 'Memory', [{ name: 'memory', get: (p) => p.memoryBytes, color: C.amber }], fmtBytes),
  ];

  /** A small line of recent values (no axes). */
  function drawSparkline(svg, values) {
    const W = 80, H = 20;
    const max = Math.max(...values, 0) || 1;
    // A fixed scale of 60 points, newest at the right edge.
    const pts = values.map((v, i) => `${(W - ((values.length - 1 - i) * W) / 59).toFixed(1)},${(H - 1 - (v / max) * (H - 2)).toFixed(1)}`);
    const line = svg.firstChild || svg.appendChild(s('polyline', {}));
    if (pts.length === 1) pts.unshift(`${W - 2},${pts[0].split(',')[1]}`); // one value: a short dash
    line.setAttribute('points', pts.join(' '));
    svg.setAttribute('data-points', values.length);
    let title = svg.querySelector('title');
    if (!title) title = svg.appendChild(s('title'));
    setText(title, `last ${values.length} s, peak ${fmtRate(Math.max(...values, 0))} req/s`);
  }

  // -------------------------------------------------------- host view

  const status = (f, k) => (f && f.statusPerSecond ? f.statusPerSecond[k] : null);
  /** Figure columns of workload and component rows: [data-field, heading, value of figures, format]. */
  const FIGURES = [
    ['requestsPerSecond', 'req/s', (f) => f.requestsPerSecond, fmtRate],
    ['2xx', '2xx', (f) => status(f, '2xx'), fmtRate],
    ['4xx', '4xx', (f) => status(f, '4xx'), fmtRate],
    ['5xx', '5xx', (f) => status(f, '5xx'), fmtRate],
    ['503', '503', (f) => status(f, '503'), fmtRate],
    ['504', '504', (f) => status(f, '504'), fmtRate],
    ['p50Seconds', 'p50', (f) => f.p50Seconds, fmtSecs],
    ['p99Seconds', 'p99', (f) => f.p99Seconds, fmtSecs],
    ['cpuCores', 'CPU', (f) => f.cpuCores, fmtCores],
    ['throttledCores', 'throttled', (f) => f.throttledCores, fmtCores],
    ['memoryBytes', 'memory', (f) => f.memoryBytes, fmtBytes],
    ['memoryPeakBytes', 'peak / limit', (f) => f.memoryPeakBytes, fmtBytes],
    ['instances', 'inst.', (f) => f.instances, fmtInt],
    ['inFlight', 'in flight', (f) => f.inFlight, fmtInt],
    ['requestsTotal', 'total', (f) => f.requestsTotal, fmtInt],
  ];
  const ERROR_FIELDS = new Set(['5xx', '503', '504', 'throttledCores']);

  function hostView() {
    const root = h('div', { class: 'view', 'data-testid': 'host-view', 'aria-busy': 'true' });
    const tiles = h('div', { class: 'tiles' });
    const charts = hostCharts();
    const tbody = h('tbody');
    const sparks = new Map(); // workload id → {at, values[]}
    root.append(
      h('section', {}, h('h2', { text: 'Process' }), tiles),
      h('section', {}, h('h2', { text: 'Host traffic' }), h('div', { class: 'charts' }, charts.map((c) => c.el))),
      h('section', {}, h('h2', { text: 'Workloads' }),
        h('div', { class: 'table-wrap' }, h('table', { class: 'figures', 'data-testid': 'workloads-table' },
          h('thead', {}, h('tr', {},
            h('th', { text: 'workload / component' }), h('th', { text: 'state' }), h('th', { text: 'hosts' }),
            h('th', { text: 'last minute' }), FIGURES.map(([, title]) => h('th', { class: 'num', text: title })))),
          tbody))));

    function tile(label, value, sub) {
      return h('div', { class: 'tile' }, h('div', { class: 'tile-label', text: label }),
        h('div', { class: 'tile-value', text: value }), sub ? h('div', { class: 'tile-sub', text: sub }) : null);
    }
    function applyHost(host) {
      const p = host.process || {};
      const f = host.figures || {};
      tiles.replaceChildren(
        tile('resident memory', fmtBytes(p.residentBytes), isNum(p.virtualBytes) ? `virtual ${fmtBytes(p.virtualBytes)}` : null),
        tile('open fds', fmtInt(p.openFds), isNum(p.maxFds) ? `of ${p.maxFds}` : null),
        tile('CPU time', isNum(p.cpuSeconds) ? `${p.cpuSeconds.toFixed(1)} s` : DASH),
        tile('threads', fmtInt(p.threads)),
        tile('uptime', fmtSpan(host.uptimeSeconds), isNum(host.startedAt) ? `since ${Date.now() - host.startedAt < 864e5 ? fmtClock(host.startedAt) : fmtDate(host.startedAt).slice(0, 10)}` : null),
        tile('connections', fmtInt(host.connections)),
        tile('workloads', fmtInt(host.workloadCount), `${fmtInt(host.componentCount)} components`),
        tile('requests/s', fmtRate(f.requestsPerSecond), `p99 ${fmtSecs(f.p99Seconds)}`),
        tile('guest CPU cores', fmtCores(f.cpuCores), `memory ${fmtBytes(f.memoryBytes)}`),
        tile('requests', fmtInt(f.requestsTotal), `${fmtInt(f.inFlight)} in flight`));
    }

    function createRow(item) {
      const { w, c } = item;
      const attrs = c
        ? { 'data-testid': 'component-row', 'data-workload': w.id, 'data-component': c.name, class: 'component-row' }
        : { 'data-testid': 'workload-row', 'data-workload': w.id, class: 'workload-row' };
      const tr = h('tr', attrs);
      tr._cells = {};
      const cell = (field, cls) => (tr._cells[field] = h('td', { 'data-field': field, class: cls }));
      if (c) {
        tr.append(h('td', { class: 'name indent', title: `${c.name} (${c.digest || 'no digest'})` }, h('span', { class: 'tree', text: '└ ' }), c.name));
        tr.append(cell('http', 'muted'), h('td', {}), h('td', {}));
      } else {
        tr.append(h('td', { class: 'name' }, h('a', { href: wlHref(w.namespace, w.name), text: w.id })));
        tr.append(cell('state'), cell('hosts', 'hosts'));
        const spark = s('svg', { class: 'spark', viewBox: '0 0 80 20', width: 64, height: 20, preserveAspectRatio: 'none', 'data-testid': 'sparkline' });
        tr.append(h('td', { class: 'spark-cell' }, spark));
        tr._spark = spark;
      }
      for (const [field] of FIGURES) tr.append(cell(field, 'num'));
      return tr;
    }
    function updateRow(tr, item) {
      const { w, c } = item;
      const f = (c ? c.figures : w.figures) || {};
      if (c) setText(tr._cells.http, c.http ? `http ${c.http}` : 'no http');
      else {
        setText(tr._cells.state, w.state || DASH, `state-${String(w.state || 'unknown').replace(/[^a-z]/gi, '')}`);
        const hosts = (w.hosts || []).join(', ');
        setText(tr._cells.hosts, hosts || DASH);
        tr._cells.hosts.title = hosts;
        const spark = sparks.get(w.id);
        drawSparkline(tr._spark, spark ? spark.values.slice(-60) : []);
      }
      for (const [field, , get, fmt] of FIGURES) {
        const v = get(f);
        let text = fmt(v);
        if (field === 'memoryPeakBytes' && c && c.limits && isNum(c.limits.memoryBytes)) text += ` / ${fmtBytes(c.limits.memoryBytes)}`;
        const zero = !isNum(v) || v === 0;
        setText(tr._cells[field], text, `num${zero ? ' zero' : ''}${!zero && ERROR_FIELDS.has(field) ? ' bad' : ''}`);
      }
    }

    function applyWorkloads(data) {
      const list = Array.isArray(data.workloads) ? data.workloads : [];
      const at = isNum(data.at) ? data.at : Date.now();
      const seen = new Set();
      for (const w of list) {
        seen.add(w.id);
        let sp = sparks.get(w.id);
        if (!sp) sparks.set(w.id, (sp = { at: null, values: [] }));
        if (sp.at !== at) {
          sp.at = at;
          sp.values.push(isNum(w.figures && w.figures.requestsPerSecond) ? w.figures.requestsPerSecond : 0);
          if (sp.values.length > 120) sp.values.splice(0, sp.values.length - 120);
        }
      }
      for (const id of [...sparks.keys()]) if (!seen.has(id)) sparks.delete(id);
      const items = [];
      for (const w of list) {
        items.push({ w });
        for (const c of w.components || []) items.push({ w, c });
      }
      const empty = tbody.querySelector('tr.empty-row');
      if (empty) empty.remove();
      syncRows(tbody, items, (it) => (it.c ? `c\u0000${it.w.id}\u0000${it.c.name}` : `w\u0000${it.w.id}`), createRow, updateRow);
      if (!list.length) {
        tbody.append(h('tr', { class: 'empty-row' }, h('td', { colspan: 4 + FIGURES.length, class: 'empty', text: 'No workloads run on this host.' })));
      }
    }

    return {
      root,
      apply(key, data) {
        if (key === 'host') applyHost(data);
        else if (key === 'workloads') { applyWorkloads(data); root.removeAttribute('aria-busy'); }
        else if (key === 'history') for (const c of charts) drawChart(c, Array.isArray(data.points) ? data.points : []);
      },
    };
  }

  // ---------------------------------------------------- workload view

  const KIND_RANK = { ingress: 0, middleware: 1, handler: 2, component: 3, service: 4, plugin: 5, outbound: 6 };
  const NODE_W = 176, COL_GAP = 132, ROW_GAP = 18, PAD = 14;
  const LABEL_CHARS = 21; // edge labels that fit a column gap (the <title> has all of it)

  /**
   * Columns of nodes, left to right. A node's column is its longest path
   * from the nodes without incoming edges; ingress is first; plugins and
   * outbound that something uses are last; a plugin that only calls in (a
   * message handler's source) sits just before what it calls. An edge that
   * skips columns passes through a lane (a dummy node) in each column it
   * crosses, below the nodes. Within a column: ingress, middleware by
   * order, handler, other components, plugins, outbound, lanes; ties near
   * their predecessors. Returns {cols, lanes: edge → [lane ids]}.
   */
  function layoutGraph(nodes, edges) {
    const layer = new Map(nodes.map((n) => [n.id, 0]));
    const inner = edges.filter((e) => e.from !== e.to);
    const hasIn = new Set(inner.map((e) => e.to));
    for (let round = 0; round < nodes.length; round++) {
      let changed = false;
      for (const e of inner) {
        const l = layer.get(e.from) + 1;
        if (l > layer.get(e.to) && l < nodes.length) { layer.set(e.to, l); changed = true; }
      }
      if (!changed) break;
    }
    const sink = (n) => (n.kind === 'plugin' || n.kind === 'outbound') && hasIn.has(n.id);
    let last = 0;
    for (const n of nodes) if (!sink(n)) last = Math.max(last, layer.get(n.id));
    for (const n of nodes) if (sink(n)) layer.set(n.id, last + 1);
    for (const n of nodes) {
      if (n.kind === 'ingress') layer.set(n.id, 0);
      else if (!hasIn.has(n.id)) {
        const targets = inner.filter((e) => e.from === n.id).map((e) => layer.get(e.to));
        if (targets.length) layer.set(n.id, Math.max(0, Math.min(...targets) - 1));
      }
    }
    // Number the used layers 0, 1, 2…, then add the lanes of long edges.
    const used = [...new Set(layer.values())].sort((a, b) => a - b);
    for (const [id, l] of layer) layer.set(id, used.indexOf(l));
    const cols = used.map(() => []);
    for (const n of nodes) cols[layer.get(n.id)].push(n);
    const links = []; // [from, to] including lanes, for ordering
    const lanes = new Map();
    for (const e of inner) {
      const a = layer.get(e.from), b = layer.get(e.to);
      let prev = e.from;
      const via = [];
      for (let l = a + 1; l < b; l++) {
        const lane = { id: `lane${lanes.size}.${l}`, lane: true };
        cols[l].push(lane);
        via.push(lane.id);
        links.push([prev, lane.id]);
        prev = lane.id;
      }
      links.push([prev, e.to]);
      lanes.set(e, via);
    }
    const row = new Map();
    for (const col of cols) {
      const bary = (n) => {
        const ys = links.filter(([, to]) => to === n.id).map(([from]) => row.get(from)).filter(isNum);
        return ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : 0;
      };
      const keyed = col.map((n) => [n, n.lane ? 99 : KIND_RANK[n.kind] ?? 3, isNum(n.order) ? n.order : 0, bary(n)]);
      keyed.sort((a, b) => a[1] - b[1] || a[2] - b[2] || a[3] - b[3] || String(a[0].label).localeCompare(String(b[0].label)));
      keyed.forEach(([n], i) => row.set(n.id, i));
      col.splice(0, col.length, ...keyed.map((k) => k[0]));
    }
    return { cols, lanes };
  }

  /** The node's outline for its kind. */
  function nodeShape(kind, w, hh) {
    const poly = (pts) => s('polygon', { class: 'shape', points: pts.map((p) => p.join(',')).join(' ') });
    switch (kind) {
      case 'ingress': return s('rect', { class: 'shape', width: w, height: hh, rx: Math.min(18, hh / 2) });
      case 'plugin': return poly([[10, 0], [w - 10, 0], [w, hh / 2], [w - 10, hh], [10, hh], [0, hh / 2]]);
      case 'outbound': return poly([[0, 0], [w - 14, 0], [w, hh / 2], [w - 14, hh], [0, hh]]);
      case 'component': case 'service': return s('rect', { class: 'shape', width: w, height: hh, rx: 9 });
      default: return s('rect', { class: 'shape', width: w, height: hh, rx: 3 });
    }
  }

  /** A curve from p to q leaving and arriving horizontally. */
  const curve = (p, q) => {
    const dx = Math.max(20, (q[0] - p[0]) / 2);
    return `C${p[0] + dx},${p[1]} ${q[0] - dx},${q[1]} ${q[0]},${q[1]}`;
  };

  /** The wiring graph as SVG; returns {svg, figures: [{component, l1, l2}]}. */
  function buildGraph(graph) {
    const nodes = (Array.isArray(graph.nodes) ? graph.nodes : []).filter((n) => n && n.id != null);
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const edges = (Array.isArray(graph.edges) ? graph.edges : []).filter((e) => byId.has(e.from) && byId.has(e.to));
    const { cols, lanes } = layoutGraph(nodes, edges);
    // Ingress shows its hosts on a second line; components their figures on two more.
    const split = (n) => {
      const label = String(n.label || n.id);
      const i = label.indexOf(': ');
      return n.kind === 'ingress' && i > 0 ? [label.slice(0, i), label.slice(i + 2)] : [label, null];
    };
    const heightOf = (n) => (n.lane ? 4 : n.component ? 60 : split(n)[1] ? 46 : 34);
    const colH = cols.map((col) => col.reduce((a, n) => a + heightOf(n), 0) + ROW_GAP * Math.max(0, col.length - 1));
    const totalH = Math.max(60, ...colH) + PAD * 2;
    const totalW = PAD * 2 + cols.length * NODE_W + Math.max(0, cols.length - 1) * COL_GAP;
    const pos = new Map();
    cols.forEach((col, ci) => {
      let y = PAD + (totalH - PAD * 2 - colH[ci]) / 2;
      for (const n of col) {
        pos.set(n.id, { x: PAD + ci * (NODE_W + COL_GAP), y, h: heightOf(n), col: ci });
        y += heightOf(n) + ROW_GAP;
      }
    });

    // Ports: a node's forward edges leave its right side and enter its
    // left side spread out, in the order of the other end's height.
    const forward = edges.filter((e) => pos.get(e.to).col > pos.get(e.from).col);
    const firstHop = (e) => pos.get((lanes.get(e) || [])[0] || e.to);
    const lastHop = (e) => pos.get((lanes.get(e) || []).slice(-1)[0] || e.from);
    const ports = new Map();
    const spread = (list, at, key) => list.sort((p, q) => at(p).y - at(q).y).forEach((e, i, all) => {
      const n = pos.get(key === 'out' ? e.from : e.to);
      ports.set(`${key}:${edges.indexOf(e)}`, n.y + (n.h * (i + 1)) / (all.length + 1));
    });
    for (const n of nodes) {
      spread(forward.filter((e) => e.from === n.id), firstHop, 'out');
      spread(forward.filter((e) => e.to === n.id), lastHop, 'in');
    }

    const svg = s('svg', { 'data-testid': 'workload-graph', class: 'graph', width: totalW, height: totalH,
      viewBox: `0 0 ${totalW} ${totalH}`, role: 'img', 'aria-label': 'wiring graph' },
    s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      s('path', { d: 'M0,0L10,5L0,10z', class: 'arrowhead' }))));
    const edgeLayer = s('g', { class: 'edges' });
    const labels = [];
    edges.forEach((e, i) => {
      const a = pos.get(e.from), b = pos.get(e.to);
      let d, at, anchor = 'middle';
      if (e.from === e.to) {
        const x = a.x + NODE_W, y = a.y + a.h / 2;
        d = `M${x},${y - 8}C${x + 40},${y - 40} ${x + 40},${y + 40} ${x},${y + 8}`;
        at = [x + 34, y - 4];
      } else if (b.col > a.col) {
        // Through the lanes, then into the target; the label just before its arrow.
        let p = [a.x + NODE_W, ports.get(`out:${i}`)];
        d = `M${p}`;
        for (const id of lanes.get(e) || []) {
          const l = pos.get(id), y = l.y + l.h / 2;
          d += `${curve(p, [l.x, y])}L${l.x + NODE_W},${y}`;
          p = [l.x + NODE_W, y];
        }
        const q = [b.x, ports.get(`in:${i}`)];
        d += curve(p, q);
        at = [q[0] - 9, q[1] - 4];
        anchor = 'end';
      } else {
        // Same column or backward: under the nodes.
        const p0 = [a.x + NODE_W / 2, a.y + a.h], p3 = [b.x + NODE_W / 2, b.y + b.h];
        d = `M${p0}C${p0[0]},${p0[1] + 40} ${p3[0]},${p3[1] + 40} ${p3}`;
        at = [(p0[0] + p3[0]) / 2, Math.max(p0[1], p3[1]) + 34];
      }
      const label = String(e.label || '');
      edgeLayer.append(s('g', { class: 'edge', 'data-testid': 'graph-edge', 'data-from': e.from, 'data-to': e.to },
        s('title', { text: label }), s('path', { d, 'marker-end': 'url(#arrow)' })));
      if (label) labels.push({ label, x: at[0], y: at[1], anchor });
    });
    // A label that would overlap one already placed moves down a line.
    labels.forEach((l, i) => {
      for (let moves = 0, hit = true; hit && moves <= i; moves++) {
        const o = labels.slice(0, i).find((p) => Math.abs(p.x - l.x) < 120 && Math.abs(p.y - l.y) < 11);
        hit = !!o;
        if (o) l.y = o.y + 11;
      }
    });
    const labelLayer = s('g', { class: 'edge-labels' }, labels.map((l) =>
      s('text', { class: 'edge-label', x: l.x, y: l.y, 'text-anchor': l.anchor }, s('title', { text: l.label }),
        // A long label loses its versions first, then its end.
        truncate(l.label.length > LABEL_CHARS ? l.label.replace(/@[^\s,)}]+/g, '') : l.label, LABEL_CHARS))));

    const figures = [];
    const nodeLayer = s('g', { class: 'nodes' });
    for (const n of nodes) {
      const p = pos.get(n.id);
      const kind = String(n.kind || 'component');
      const [title, sub] = split(n);
      const g = s('g', { class: `node kind-${kind.replace(/[^a-z]/gi, '')}`, transform: `translate(${p.x},${p.y})`,
        'data-testid': 'graph-node', 'data-kind': kind, 'data-label': n.label || '', 'data-id': n.id,
        'data-component': n.component || null, 'data-plugin': n.plugin || null },
      s('title', { text: n.label || n.id }), nodeShape(kind, NODE_W, p.h),
      s('text', { class: 'node-label', x: NODE_W / 2, y: n.component || sub ? 18 : 21, 'text-anchor': 'middle', text: truncate(title, 24) }),
      sub ? s('text', { class: 'node-fig', x: NODE_W / 2, y: 34, 'text-anchor': 'middle', text: truncate(sub, 28) }) : null);
      if (n.component) {
        const l1 = s('text', { class: 'node-fig', x: NODE_W / 2, y: 35, 'text-anchor': 'middle' });
        const l2 = s('text', { class: 'node-fig', x: NODE_W / 2, y: 50, 'text-anchor': 'middle' });
        g.append(l1, l2);
        figures.push({ component: n.component, l1, l2 });
      }
      nodeLayer.append(g);
    }
    svg.append(edgeLayer, nodeLayer, labelLayer);
    return { svg, figures };
  }

  /** Limits as short lines; null fields are the host's default. */
  function limitLines(l) {
    if (!l) return ['host defaults'];
    const lines = [];
    if (isNum(l.memoryBytes)) lines.push(`memory ${fmtBytes(l.memoryBytes)}`);
    if (isNum(l.cpuCores)) lines.push(`cpu ${l.cpuCores} cores`);
    if (isNum(l.timeoutMs)) lines.push(`timeout ${l.timeoutMs % 1000 ? `${l.timeoutMs} ms` : `${l.timeoutMs / 1000} s`}`);
    if (isNum(l.maxConcurrentRequests)) lines.push(`max concurrent ${l.maxConcurrentRequests}`);
    if (Array.isArray(l.allowedHosts)) lines.push(`allowed hosts ${l.allowedHosts.length ? l.allowedHosts.join(', ') : 'none'}`);
    return lines.length ? lines : ['host defaults'];
  }

  function collapsible(items, noun) {
    items = Array.isArray(items) ? items : [];
    if (!items.length) return h('span', { class: 'muted', text: DASH });
    return h('details', {}, h('summary', { text: `${items.length} ${noun}${items.length === 1 ? '' : 's'}` }),
      h('ul', { class: 'plain' }, items.map((i) => h('li', { text: i }))));
  }

  function workloadView(ns, name) {
    const id = `${ns}/${name}`;
    const root = h('div', { class: 'view', 'data-testid': 'workload-view', 'data-workload': id, 'aria-busy': 'true' });
    const state = h('span', { class: 'badge' });
    const meta = h('div', { class: 'meta' });
    const graphBox = h('div', { class: 'graph-wrap' });
    const compBody = h('tbody');
    const charts = [
      chartPanel('workload-chart-requests', 'Requests/s', [{ name: 'req/s', get: (p) => p.requestsPerSecond, color: C.blue }], fmtRate),
      chartPanel('workload-chart-latency', 'p99 latency', [{ name: 'p99', get: (p) => p.p99Seconds, color: C.violet }], fmtSecs),
      chartPanel('workload-chart-cpu', 'CPU cores', [{ name: 'cores', get: (p) => p.cpuCores, color: C.green }], fmtCores),
    ];
    const reqBody = h('tbody');
    let graphSig = null, compSig = null, graphFigures = [];
    root.append(
      h('div', { class: 'title-row' }, h('h1', { text: id }), state),
      meta,
      h('section', {}, h('h2', { text: 'Wiring' }), graphBox),
      h('section', {}, h('h2', { text: 'Components' }), h('div', { class: 'table-wrap' }, h('table', { class: 'detail' },
        h('thead', {}, h('tr', {}, ['component', 'digest', 'http', 'limits', 'config keys', 'imports', 'exports'].map((t) => h('th', { text: t })))),
        compBody))),
      h('section', {}, h('h2', { text: 'History' }), h('div', { class: 'charts three' }, charts.map((c) => c.el))),
      h('section', {}, h('h2', { text: 'Recent requests' }), h('div', { class: 'table-wrap' }, h('table', { class: 'figures requests' },
        h('thead', {}, h('tr', {}, ['time', 'method', 'host', 'path', 'status', 'duration', 'CPU', 'memory peak']
          .map((t, i) => h('th', { class: i >= 5 && i <= 7 ? 'num' : null, text: t })))),
        reqBody))));

    const parts = [...root.childNodes];
    let shownMissing = false;

    function apply(w) {
      root.removeAttribute('aria-busy');
      if (shownMissing) { shownMissing = false; root.replaceChildren(...parts); }
      setText(state, w.state || DASH, `badge state-${String(w.state || '').replace(/[^a-z]/gi, '')}`);
      const f = w.figures || {};
      meta.replaceChildren(
        h('span', {}, h('b', { text: 'hosts ' }), (w.hosts || []).join(', ') || DASH),
        h('span', {}, h('b', { text: 'started ' }), `${fmtDate(w.startedAt)} (${fmtAgo(w.startedAt)})`),
        h('span', {}, h('b', { text: 'middleware ' }), (w.middleware || []).join(' → ') || 'none'),
        h('span', {}, h('b', { text: 'now ' }), `${fmtRate(f.requestsPerSecond)} req/s · p99 ${fmtSecs(f.p99Seconds)} · ${fmtCores(f.cpuCores)} cores · ${fmtBytes(f.memoryBytes)}`));

      // The graph is rebuilt only when it changes; its figures every time.
      const sig = JSON.stringify([w.graph, w.graphError]);
      if (sig !== graphSig) {
        graphSig = sig;
        if (w.graph) {
          const built = buildGraph(w.graph);
          graphFigures = built.figures;
          graphBox.replaceChildren(built.svg);
        } else {
          graphFigures = [];
          graphBox.replaceChildren(h('p', { class: 'error', 'data-testid': 'graph-error', text: `No graph: ${w.graphError || 'not available'}` }));
        }
      }
      const comps = new Map((w.components || []).map((c) => [c.name, c]));
      for (const g of graphFigures) {
        const c = comps.get(g.component);
        const cf = c && c.figures;
        setText(g.l1, cf ? `${fmtRate(cf.requestsPerSecond)} req/s · p99 ${fmtSecs(cf.p99Seconds)}` : 'no figures');
        setText(g.l2, cf ? `CPU ${fmtCores(cf.cpuCores)} · ${fmtBytes(cf.memoryBytes)}` : '');
      }

      const csig = JSON.stringify((w.components || []).map((c) => [c.name, c.digest, c.http, c.limits, c.configKeys, c.imports, c.exports]));
      if (csig !== compSig) {
        compSig = csig;
        compBody.replaceChildren(...(w.components || []).map((c) => h('tr', { 'data-testid': 'component-detail', 'data-component': c.name },
          h('td', { class: 'name', text: c.name }),
          h('td', { class: 'mono', title: c.digest || '', text: shortDigest(c.digest) }),
          h('td', { text: c.http || 'none' }),
          h('td', { class: 'limits' }, limitLines(c.limits).map((l) => h('div', { text: l }))),
          h('td', { text: (c.configKeys || []).join(', ') || DASH }),
          h('td', { class: 'mono' }, collapsible(c.imports, 'import')),
          h('td', { class: 'mono' }, collapsible(c.exports, 'export')))));
      }

      const history = Array.isArray(w.history) ? w.history : [];
      for (const c of charts) drawChart(c, history);

      const reqs = Array.isArray(w.recentRequests) ? w.recentRequests : [];
      reqBody.replaceChildren(...reqs.map((r) => {
        const code = isNum(r.status) ? r.status : 0;
        return h('tr', { 'data-testid': 'recent-request' },
          h('td', { class: 'mono', title: fmtDate(r.at), text: fmtClock(r.at, true) }),
          h('td', { text: r.method || DASH }),
          h('td', { class: 'hosts', title: r.host || '', text: r.host || DASH }),
          h('td', { class: 'path mono', title: r.path || '', text: r.path || DASH }),
          h('td', { class: `status s${Math.floor(code / 100)}` }, code ? String(code) : DASH,
            r.complete === false ? h('span', { class: 'muted', text: ' (incomplete)' }) : null),
          h('td', { class: 'num', text: fmtSecs(isNum(r.durationUs) ? r.durationUs / 1e6 : null) }),
          h('td', { class: 'num', text: fmtSecs(isNum(r.cpuUs) ? r.cpuUs / 1e6 : null) }),
          h('td', { class: 'num', text: fmtBytes(r.memoryPeakBytes) }));
      }));
      if (!reqs.length) reqBody.append(h('tr', {}, h('td', { colspan: 8, class: 'empty', text: 'No requests yet.' })));
    }

    return {
      root,
      apply(key, data) {
        if (key === 'workload') apply(data);
      },
      missing() {
        root.removeAttribute('aria-busy');
        if (shownMissing) return;
        shownMissing = true;
        root.replaceChildren(h('div', { class: 'title-row' }, h('h1', { text: id })),
          h('p', { class: 'error', 'data-testid': 'workload-missing' }, `No workload ${id} runs on this host. `, h('a', { href: '#/', text: 'Back to the host' })));
      },
    };
  }

  // ----------------------------------------------------- cluster view

  function clusterView() {
    const root = h('div', { class: 'view', 'data-testid': 'cluster-view', 'aria-busy': 'true' });
    const body = h('div');
    root.append(h('div', { class: 'title-row' }, h('h1', { text: 'Cluster' })), body);

    function table(cols, rows) {
      return h('div', { class: 'table-wrap' }, h('table', { class: 'figures' },
        h('thead', {}, h('tr', {}, cols.map((c) => h('th', { class: c.startsWith('#') ? 'num' : null, text: c.replace(/^#/, '') })))),
        h('tbody', {}, rows)));
    }
    const badge = (ok, yes, no) => h('span', { class: `badge ${ok ? 'ok' : 'bad'}`, text: ok ? yes : no });

    function placementChip(p) {
      const down = p.hostReady === false, old = p.current === false;
      const failed = !down && typeof p.message === 'string' && p.message !== '';
      const title = [down ? 'host not ready' : 'host ready', old ? 'previous generation' : '', p.message || '']
        .filter(Boolean).join(', ');
      return h('span', {
        class: `chip${down || failed ? ' bad' : ''}${old ? ' old' : ''}`,
        title,
        text: `${p.host}×${p.replicas}${down ? ' (not ready)' : failed ? ' (failed)' : ''}`,
      });
    }
    /** The `n` latest events, newest first (ISO timestamps sort as text). */
    const newest = (events, n) => (Array.isArray(events) ? [...events] : [])
      .sort((a, b) => String(b.lastTimestamp || '').localeCompare(String(a.lastTimestamp || ''))).slice(0, n);
    function eventLine(e) {
      const last = Date.parse(e.lastTimestamp);
      const where = `${e.host ? `on ${e.host} ` : ''}${e.count > 1 ? `×${e.count} ` : ''}${isNaN(last) ? e.lastTimestamp || '' : fmtDate(last)}`;
      return h('div', { class: `event${e.type === 'Warning' ? ' bad' : ''}` },
        h('b', { text: `${e.type || ''} ${e.reason || ''}` }), ` ${e.message || ''} `, h('span', { class: 'muted', text: where }));
    }
    function deploymentRow(d) {
      return h('tr', { 'data-testid': 'cluster-deployment', 'data-deployment': d.id },
        h('td', { class: 'name', text: d.id }),
        h('td', { class: 'muted', text: d.kind || DASH }),
        h('td', { class: 'num', text: fmtInt(d.generation) }),
        h('td', {}, h('span', { class: `badge phase-${String(d.phase || '').replace(/[^a-z]/gi, '')}`, text: d.phase || DASH })),
        h('td', { class: 'num', text: `${fmtInt(d.ready)} / ${fmtInt(d.desired)}` }),
        h('td', { class: 'message', text: d.message || '' }),
        h('td', {}, (d.placements || []).map(placementChip)),
        h('td', { class: 'events' }, newest(d.events, 3).map(eventLine)));
    }

    function apply(c) {
      root.removeAttribute('aria-busy');
      const parts = [];
      if (c.error) parts.push(h('p', { class: 'error', 'data-testid': 'cluster-error', text: `The cluster's store could not be read: ${c.error}` }));
      if (!c.member) {
        parts.push(h('p', { class: 'note', 'data-testid': 'cluster-none', text: 'This host is not part of a cluster.' }));
        body.replaceChildren(...parts);
        return;
      }
      parts.push(h('p', { class: 'meta' }, h('b', { text: 'this host ' }), c.hostId || DASH));
      const hosts = Array.isArray(c.hosts) ? c.hosts : [];
      parts.push(h('section', {}, h('h2', { text: `Hosts (${hosts.length})` }), table(
        ['host', 'status', 'hostname', 'labels', 'version', 'http address', '#cpus', '#memory', '#max instances', '#workloads', '#replicas', 'started'],
        hosts.map((x) => {
          const cap = x.capacity || {};
          const labels = Object.entries(x.labels || {}).map(([k, v]) => `${k}=${v}`);
          return h('tr', { 'data-testid': 'cluster-host', 'data-host': x.id, 'data-ready': x.ready ? 'true' : 'false', class: x.id === c.hostId ? 'self' : null },
            h('td', { class: 'name', text: x.id }), h('td', {}, badge(x.ready, 'ready', 'not ready')),
            h('td', { text: x.hostname || DASH }),
            h('td', {}, labels.length ? labels.map((l) => h('span', { class: 'chip', text: l })) : DASH),
            h('td', { text: x.version || DASH }), h('td', { class: 'mono', text: x.httpAddress || DASH }),
            h('td', { class: 'num', text: fmtInt(cap.cpus) }), h('td', { class: 'num', text: fmtBytes(cap.memoryBytes) }),
            h('td', { class: 'num', text: fmtInt(cap.maxInstances) }), h('td', { class: 'num', text: fmtInt(x.workloadCount) }),
            h('td', { class: 'num', text: fmtInt(x.replicaCount) }),
            h('td', { title: fmtDate(x.startedAt), text: fmtAgo(x.startedAt) || DASH }));
        }))));
      const deps = Array.isArray(c.deployments) ? c.deployments : [];
      parts.push(h('section', {}, h('h2', { text: `Deployments (${deps.length})` }), table(
        ['deployment', 'kind', '#gen.', 'phase', '#ready', 'message', 'placements', 'recent events'], deps.map(deploymentRow))));
      body.replaceChildren(...parts);
    }

    return { root, apply(key, data) { if (key === 'cluster') apply(data); } };
  }

  // ------------------------------------------------------------ routing

  function parseRoute() {
    const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean);
    const dec = (x) => { try { return decodeURIComponent(x); } catch (e) { return x; } };
    if (parts[0] === 'workloads' && parts.length === 3) return { view: 'workload', ns: dec(parts[1]), name: dec(parts[2]) };
    if (parts[0] === 'cluster') return { view: 'cluster' };
    return { view: 'host' };
  }

  function onRoute() {
    route = parseRoute();
    routeGen++;
    view = route.view === 'workload' ? workloadView(route.ns, route.name)
      : route.view === 'cluster' ? clusterView() : hostView();
    $('#main').replaceChildren(view.root);
    for (const a of document.querySelectorAll('#nav a')) {
      if (a.dataset.view === route.view) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    for (const key in sources) sources[key].started = 0;
    for (const key of [...failures.keys()]) if (!VIEW_SOURCES[route.view].includes(key)) failures.delete(key);
    showFailures();
    if (lastHost) { applyHeader(lastHost); view.apply('host', lastHost); }
    tick();
  }

  window.addEventListener('hashchange', onRoute);
  onRoute();
  setInterval(tick, 200);
})();
