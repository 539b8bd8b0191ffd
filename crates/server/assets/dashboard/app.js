// The tollgate dashboard: reads GET v1/stats every few seconds (the StatsReport of
// crates/server/src/stats/report.rs), fills the tables and draws the charts on <canvas> by hand.
// Plain JavaScript with no dependencies: the page is served from the binary and works offline.
'use strict';
(function () {
  // The series colours; style.css uses the same ones, and tests/dashboard.rs looks for them.
  const COLORS = {
    allowed: '#1f9d55', denied: '#d93f3f', p50: '#2f6fd6', p99: '#e0841a',
    waiting: '#7b4fc9', completed: '#138f8f', grid: '#e6e9ed', axis: '#66707c', empty: '#eef0f3',
  };
  const WINDOW_MS = 300000; // the charts' longest span: the server keeps five minutes
  const DEFAULT_INTERVAL_MS = 2000;

  const $ = (id) => document.getElementById(id);
  const intervalMs = parseInterval(new URLSearchParams(location.search).get('interval'));
  let last = null; // the last report read
  let lastOkAt = 0; // when it was read (this browser's clock)
  let failure = null; // why the last read failed, or null
  // The admin token, when the server's config sets one (/v1/stats names the keys denied
  // most). Session storage: it lives as long as the tab and is never sent anywhere else.
  let token = sessionStorage.getItem('tollgate-admin-token');

  // `?interval=5`, `5s` or `500ms`; anything else (or out of 0.25 s ..= 10 min) keeps 2 s.
  function parseInterval(text) {
    if (text === null) return DEFAULT_INTERVAL_MS;
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*$/.exec(text);
    const ms = m ? Number(m[1]) * (m[2] === 'ms' ? 1 : 1000) : NaN;
    if (!(ms >= 250 && ms <= 600000)) {
      console.warn('tollgate: ignoring ?interval=' + text + ' (expected seconds, like 2 or 500ms)');
      return DEFAULT_INTERVAL_MS;
    }
    return ms;
  }

  // ---- formatting ----
  const fmtInt = (n) => Number(n).toLocaleString('en-US');
  function fmtNum(x) {
    if (x === 0) return '0';
    if (Math.abs(x) >= 100) return fmtInt(Math.round(x));
    if (Math.abs(x) >= 10) return x.toFixed(1);
    return x.toFixed(2);
  }
  function fmtMs(x) {
    if (x === 0) return '0';
    if (x >= 100) return fmtInt(Math.round(x));
    if (x >= 1) return x.toFixed(x >= 10 ? 1 : 2);
    return x.toFixed(3);
  }
  function fmtDuration(ms) {
    const s = Math.round(Math.abs(ms) / 1000);
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
    return Math.floor(s / 86400) + 'd ' + Math.floor((s % 86400) / 3600) + 'h';
  }
  // A moment relative to the report's time: "in 3m 20s" or "12 s ago".
  function fmtWhen(ms, nowMs) {
    return ms >= nowMs ? 'in ' + fmtDuration(ms - nowMs) : fmtDuration(nowMs - ms) + ' ago';
  }
  function fmtAxis(v) {
    if (v >= 1e6) return +(v / 1e6).toFixed(1) + 'M';
    if (v >= 1e3) return +(v / 1e3).toFixed(1) + 'k';
    return String(+v.toFixed(3));
  }

  // ---- DOM helpers (text only: keys and names come from clients, never parsed as HTML) ----
  function td(text, cls, field) {
    const el = document.createElement('td');
    el.textContent = text;
    if (cls) el.className = cls;
    if (field) el.dataset.k = field;
    return el;
  }
  function tag(text, kind) {
    const el = document.createElement('span');
    el.className = 'tag ' + kind;
    el.textContent = text;
    return el;
  }
  function tr(cells, attrs) {
    const el = document.createElement('tr');
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    el.append(...cells);
    return el;
  }
  function fill(bodyId, emptyId, rows) {
    $(bodyId).replaceChildren(...rows);
    if (emptyId) $(emptyId).hidden = rows.length > 0;
  }

  // ---- reading ----
  async function poll() {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), Math.max(2 * intervalMs, 5000));
    try {
      const headers = token ? { Authorization: 'Bearer ' + token } : {};
      const resp = await fetch('v1/stats', { cache: 'no-store', headers, signal: abort.signal });
      $('token-form').hidden = resp.status !== 401;
      const text = await resp.text();
      let body;
      try {
        body = JSON.parse(text);
      } catch (_) {
        throw new Error('the server answered ' + resp.status + ' with something that is not JSON');
      }
      if (!resp.ok) {
        const why = body && body.error ? body.error.code + ': ' + body.error.message : '';
        throw new Error('the server answered ' + resp.status + (why ? ' (' + why + ')' : ''));
      }
      if (!body || typeof body.decisions !== 'object' || !Array.isArray(body.history)) {
        throw new Error('the answer is not a stats report');
      }
      last = body;
      lastOkAt = Date.now();
      failure = null;
      render(body);
    } catch (e) {
      // fetch rejects with a TypeError when no answer came at all (refused, reset, offline).
      const unreachable = e.name === 'AbortError' || e instanceof TypeError;
      failure = (unreachable ? 'Cannot reach the server: ' : 'Cannot read the server\'s stats: ')
        + (e.name === 'AbortError' ? 'no answer within ' + fmtDuration(Math.max(2 * intervalMs, 5000)) : e.message);
    } finally {
      clearTimeout(timer);
      showStatus();
      setTimeout(poll, intervalMs);
    }
  }

  // The banner and the "updated" line; also ticks every second so "N s ago" stays true.
  function showStatus() {
    const banner = $('banner');
    const ago = lastOkAt ? fmtDuration(Date.now() - lastOkAt) + ' ago' : null;
    document.body.dataset.status = failure ? 'error' : last ? 'ok' : 'loading';
    if (failure) {
      banner.textContent = failure + '. '
        + (ago ? 'Last update ' + ago + '; the figures below are from then. ' : 'No data yet. ')
        + 'Retrying every ' + (intervalMs < 1000 ? intervalMs + ' ms' : fmtDuration(intervalMs)) + '.';
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
    $('updated').textContent = ago ? 'updated ' + ago : failure ? 'no data' : 'connecting…';
  }

  // ---- rendering ----
  function render(r) {
    $('version').textContent = 'v' + r.version;
    $('uptime').textContent = 'up ' + fmtDuration(r.uptime_s * 1000);
    renderStore(r.store);
    const d = r.decisions;
    $('t-allowed').textContent = fmtNum(d.allowed_per_s);
    $('t-denied').textContent = fmtNum(d.denied_per_s);
    $('t-denied-pct').textContent = fmtNum(d.denied_percent) + ' %';
    $('t-latency').textContent = fmtMs(r.latency.p50_ms) + ' / ' + fmtMs(r.latency.p99_ms) + ' ms';
    $('t-totals').textContent = fmtInt(d.allowed_total) + ' / ' + fmtInt(d.denied_total);
    renderAlerts(r);
    renderPolicies(r.policies);
    renderQueues(r);
    renderControllers(r);
    drawCharts(r);
  }

  function renderStore(s) {
    const el = $('store');
    const parts = ['store: ' + s.kind];
    let ok = s.ready;
    if (s.breaker) {
      parts.push('breaker ' + s.breaker);
      ok = ok && s.breaker === 'closed';
    }
    if (s.open_slots > 0) parts.push(s.open_slots + ' slots open');
    if (!s.ready) parts.push('DOWN' + (s.error ? ': ' + s.error : ''));
    if (s.tracked_keys !== null && s.tracked_keys !== undefined) parts.push(fmtInt(s.tracked_keys) + ' keys');
    el.textContent = parts.join(' · ');
    el.className = 'badge ' + (ok ? 'ok' : 'bad');
    el.title = 'store failures ' + s.failures_total + ', fallback decisions ' + s.fallback_decisions_total
      + ', breaker opened ' + s.breaker_opened_total + ' times';
  }

  function renderAlerts(r) {
    $('alerts').hidden = r.alerts.length === 0;
    fill('alerts-body', null, r.alerts.map((a) => tr([
      td(a.rule, null, 'rule'), td(a.kind), td(a.message, 'key-cell'), td(fmtWhen(a.since_ms, r.now_ms)),
    ], { 'data-alert': a.rule })));
  }

  function renderPolicies(policies) {
    fill('policies-body', 'policies-empty', policies.map((p) => tr([
      td(p.name, null, 'name'), td(p.rate || '–'), td(p.algorithm || '–'),
      td(fmtNum(p.decisions.allowed_per_s), 'num', 'allowed_per_s'),
      td(fmtNum(p.decisions.denied_per_s), 'num', 'denied_per_s'),
      td(fmtNum(p.decisions.denied_percent) + ' %', 'num', 'denied_percent'),
      td(fmtInt(p.decisions.allowed_total), 'num', 'allowed_total'),
      td(fmtInt(p.decisions.denied_total), 'num', 'denied_total'),
    ], { 'data-policy': p.name })));
    // Every policy's heavy hitters together, most denied first.
    const denied = policies.flatMap((p) => p.top_denied.map((k) => ({ policy: p.name, ...k })));
    denied.sort((a, b) => b.denied - a.denied);
    fill('denied-body', 'denied-empty', denied.map((k) => {
      // The summary may overcount by `error`: show the range the true count is in.
      const count = k.error > 0 ? fmtInt(Math.max(0, k.denied - k.error)) + '–' + fmtInt(k.denied) : fmtInt(k.denied);
      return tr([td(k.policy), td(k.key, 'key-cell', 'key'), td(count, 'num', 'denied')],
        { 'data-policy': k.policy });
    }));
  }

  function renderQueues(r) {
    const err = $('queues-error');
    err.hidden = !r.queues_error;
    err.textContent = r.queues_error ? 'Cannot read the queues: ' + r.queues_error : '';
    fill('queues-body', 'queues-empty', r.queues.map((q) => {
      const backlog = q.waiting + q.delayed + q.in_flight;
      const finish = backlog === 0 ? 'idle' : q.projected_finish_ms == null ? '–' : fmtWhen(q.projected_finish_ms, r.now_ms);
      const state = document.createElement('td');
      if (q.deadline_at_risk) state.append(tag('at risk', 'bad'));
      else if (q.deadline_at_risk === false) state.append(tag('on time', 'ok'));
      if (!q.active) state.append(tag('paused', 'warn'));
      if (q.dead > 0) state.append(tag('dead tasks', 'warn'));
      if (!state.childNodes.length) state.append(tag('running', 'ok'));
      state.dataset.k = 'state';
      const waiting = td(fmtInt(q.waiting), 'num', 'waiting');
      waiting.title = (q.waiting_by_priority || []).map((p) => 'priority ' + p.priority + ': ' + p.waiting).join('\n');
      return tr([
        td(q.name, null, 'name'), td(q.rate + (q.burst ? ' (burst ' + q.burst + ')' : '')), waiting,
        td(fmtInt(q.in_flight), 'num', 'in_flight'), td(fmtInt(q.delayed), 'num', 'delayed'),
        td(fmtInt(q.dead), 'num', 'dead'), td(fmtNum(q.started_per_s), 'num'),
        td(fmtNum(q.completed_per_s), 'num'), td(fmtNum(q.throughput_per_s), 'num'),
        td(finish, null, 'finish'), td(q.deadline_ms == null ? '–' : fmtWhen(q.deadline_ms, r.now_ms)), state,
      ], { 'data-queue': q.name, class: q.deadline_at_risk ? 'risk' : '' });
    }));
  }

  function renderControllers(r) {
    const tiers = { normal: 'ok', moderate: 'warn' };
    fill('controllers-body', 'controllers-empty', r.controllers.map((c) => {
      const tier = document.createElement('td');
      tier.append(tag(c.tier, tiers[c.tier] || 'bad'));
      const seen = td(fmtWhen(c.received_ms, r.now_ms));
      if (c.stale) seen.append(' ', tag('stale', 'bad'));
      return tr([
        td(c.name, null, 'name'), td(fmtNum(c.usage_percent) + ' %', 'num', 'usage_percent'), tier,
        td(fmtInt(c.waiting), 'num'), td(fmtInt(c.granted), 'num'), td(fmtInt(c.sla_violations), 'num'), seen,
      ], { 'data-controller': c.name });
    }));
  }

  // ---- charts ----
  function drawCharts(r) {
    const t1 = r.now_ms;
    const h = r.history;
    // A young server's charts span whole minutes of what it has, growing to five.
    const age = h.length ? t1 - h[0].t_ms + 1000 : 0;
    const t0 = t1 - Math.min(WINDOW_MS, Math.max(60000, Math.ceil(age / 60000) * 60000));
    const busy = (s) => s.allowed + s.denied > 0; // latency means nothing in an idle second
    chart($('chart-decisions'), t0, t1, h, [
      { kind: 'bar', color: COLORS.allowed, value: (s) => s.allowed },
      { kind: 'bar', color: COLORS.denied, value: (s) => s.denied },
    ]);
    chart($('chart-latency'), t0, t1, h, [
      { kind: 'line', color: COLORS.p50, value: (s) => (busy(s) ? s.p50_ms : null) },
      { kind: 'line', color: COLORS.p99, value: (s) => (busy(s) ? s.p99_ms : null) },
    ]);
    chart($('chart-queue-depth'), t0, t1, h, [
      { kind: 'line', color: COLORS.waiting, value: (s) => s.queue_waiting },
    ]);
    chart($('chart-queue-throughput'), t0, t1, h, [
      { kind: 'bar', color: COLORS.completed, value: (s) => s.queue_completed },
    ]);
    strip($('chart-store'), t0, t1, h);
  }

  // Sizes the canvas to its CSS box at the screen's pixel density; answers the 2-D context
  // in CSS pixels and records the plot area (page coordinates) for tests and debugging.
  function canvasContext(canvas, pad) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth;
    const h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const plot = { x: pad.left, y: pad.top, w: w - pad.left - pad.right, h: h - pad.top - pad.bottom };
    const box = canvas.getBoundingClientRect();
    canvas.dataset.plot = [box.left + scrollX + plot.x, box.top + scrollY + plot.y, plot.w, plot.h]
      .map(Math.round).join(',');
    return { ctx, plot };
  }

  // The largest of 1, 2 or 5 × 10^n steps that splits `max` into about four.
  function niceStep(max) {
    const raw = max / 4;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  }

  // A time chart of one value per one-second sample: `bar` series stack, `line` series don't.
  function chart(canvas, t0, t1, samples, series) {
    const { ctx, plot } = canvasContext(canvas, { left: 46, right: 8, top: 8, bottom: 18 });
    const x = (t) => plot.x + ((t - t0) / (t1 - t0)) * plot.w;
    const bars = series.filter((s) => s.kind === 'bar');
    let max = 0;
    for (const s of samples) {
      max = Math.max(max, bars.reduce((sum, b) => sum + b.value(s), 0));
      for (const l of series) if (l.kind === 'line') max = Math.max(max, l.value(s) || 0);
    }
    const step = max > 0 ? niceStep(max) : 1;
    const top = max > 0 ? Math.ceil(max / step) * step : 4;
    const y = (v) => plot.y + plot.h - (v / top) * plot.h;
    axes(ctx, plot, t0, t1, x, y, step, top);
    const visible = samples.filter((s) => s.t_ms > t0 && s.t_ms <= t1);
    if (!visible.length) return noData(ctx, plot);
    ctx.save();
    ctx.beginPath();
    ctx.rect(plot.x, plot.y, plot.w, plot.h);
    ctx.clip();
    for (const { s, left, width } of columns(visible, x)) {
      let base = 0;
      for (const b of bars) {
        const v = b.value(s);
        if (v <= 0) continue;
        const yTop = Math.round(y(base + v));
        const yBottom = Math.round(y(base));
        ctx.fillStyle = b.color;
        ctx.fillRect(left, yTop, width, Math.max(1, yBottom - yTop));
        base += v;
      }
    }
    // Lines join the middle of each second; a missing second or a null value breaks them.
    ctx.lineWidth = 2;
    ctx.lineJoin = 'round';
    for (const l of series.filter((s) => s.kind === 'line')) {
      ctx.strokeStyle = l.color;
      ctx.fillStyle = l.color;
      ctx.beginPath();
      let prev = null;
      for (const s of visible) {
        const v = l.value(s);
        if (v === null) { prev = null; continue; }
        const px = x(s.t_ms - 500);
        const py = y(v);
        if (prev && s.t_ms - prev <= 1500) ctx.lineTo(px, py);
        else { ctx.moveTo(px, py); ctx.fillRect(px - 1.5, py - 1.5, 3, 3); }
        prev = s.t_ms;
      }
      ctx.stroke();
    }
    ctx.restore();
  }

  // Each sample's column: the second it covers, from the previous sample when that came on
  // time (samples are not exactly 1000 ms apart: no hairline gaps), snapped to whole pixels
  // so the colours are exact; a missing second stays a gap.
  function columns(samples, x) {
    return samples.map((s, i) => {
      const prev = i > 0 ? samples[i - 1].t_ms : -Infinity;
      const left = Math.round(x(s.t_ms - prev <= 1500 ? prev : s.t_ms - 1000));
      return { s, left, width: Math.max(1, Math.round(x(s.t_ms)) - left) };
    });
  }

  function axes(ctx, plot, t0, t1, x, y, step, top) {
    ctx.font = '11px system-ui, sans-serif';
    ctx.lineWidth = 1;
    ctx.fillStyle = COLORS.axis;
    ctx.strokeStyle = COLORS.grid;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let v = 0; v <= top + step / 2; v += step) {
      const py = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(plot.x, py);
      ctx.lineTo(plot.x + plot.w, py);
      ctx.stroke();
      ctx.fillText(fmtAxis(v), plot.x - 6, py);
    }
    timeLabels(ctx, plot, t0, t1, x);
  }

  // "-5m" … "now" under the plot: one a minute, or every 15 s or 30 s on a short span.
  function timeLabels(ctx, plot, t0, t1, x) {
    ctx.fillStyle = COLORS.axis;
    ctx.textBaseline = 'top';
    const span = Math.round((t1 - t0) / 1000);
    const step = span <= 60 ? 15 : span <= 120 ? 30 : 60;
    for (let ago = span; ago >= 0; ago -= step) {
      ctx.textAlign = ago === span ? 'left' : ago === 0 ? 'right' : 'center';
      const label = ago === 0 ? 'now' : ago % 60 === 0 ? '-' + ago / 60 + 'm' : '-' + ago + 's';
      ctx.fillText(label, x(t1 - ago * 1000), plot.y + plot.h + 4);
    }
  }

  function noData(ctx, plot) {
    ctx.fillStyle = COLORS.axis;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.fillText('no samples yet', plot.x + plot.w / 2, plot.y + plot.h / 2);
  }

  // The store's health as a strip: green seconds up, red seconds down, grey unknown.
  function strip(canvas, t0, t1, samples) {
    const { ctx, plot } = canvasContext(canvas, { left: 46, right: 8, top: 4, bottom: 18 });
    const x = (t) => plot.x + ((t - t0) / (t1 - t0)) * plot.w;
    ctx.fillStyle = COLORS.empty;
    ctx.fillRect(plot.x, plot.y, plot.w, plot.h);
    for (const { s, left, width } of columns(samples.filter((s) => s.t_ms > t0 && s.t_ms <= t1), x)) {
      ctx.fillStyle = s.store_down ? COLORS.denied : COLORS.allowed;
      ctx.fillRect(left, plot.y, width, plot.h);
    }
    ctx.font = '11px system-ui, sans-serif';
    timeLabels(ctx, plot, t0, t1, x);
  }

  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    token = $('token').value.trim();
    sessionStorage.setItem('tollgate-admin-token', token);
    $('token-form').hidden = true; // the next read shows whether it was right
  });
  $('interval').textContent = String(intervalMs / 1000);
  setInterval(showStatus, 1000);
  addEventListener('resize', () => { if (last) drawCharts(last); });
  poll();
})();
