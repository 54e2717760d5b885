// The request chart of a table's page, drawn by hand in SVG: requests per minute over
// the last hour as bars (failed ones stacked in red), average latency as a line on its
// own scale. The numbers are also given as text for those who do not see the chart.

import { fmtMs, fmtNum, h, s } from './dom.js';

const W = 720;
const H = 220;
const PAD = { left: 44, right: 56, top: 14, bottom: 30 };
const MINUTES = 60;

/** A round upper bound for an axis. */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * `points`: rows of {minute, requests, failed, avg_ms, max_ms}, one per minute that had
 * requests; `now`: the chart's right edge (ms since the epoch).
 */
export function requestChart(points, now = Date.now()) {
  const end = Math.floor(now / 60000) * 60000;
  const start = end - (MINUTES - 1) * 60000;
  const byMinute = new Map();
  for (const p of points) {
    const t = Math.floor(Date.parse(p.minute) / 60000) * 60000;
    if (t >= start && t <= end) byMinute.set(t, p);
  }
  const minutes = [];
  for (let t = start; t <= end; t += 60000) minutes.push({ t, p: byMinute.get(t) });

  const total = points.reduce((a, p) => a + Number(p.requests || 0), 0);
  const failed = points.reduce((a, p) => a + Number(p.failed || 0), 0);
  const maxReq = niceMax(Math.max(0, ...minutes.map((m) => Number(m.p?.requests || 0))));
  const maxMs = niceMax(Math.max(0, ...minutes.map((m) => Number(m.p?.avg_ms || 0))));
  const weighted = points.reduce((a, p) => a + Number(p.avg_ms || 0) * Number(p.requests || 0), 0);
  const avg = total ? weighted / total : null;
  const peak = points.reduce((a, p) => Math.max(a, Number(p.max_ms || 0)), 0);

  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (i / MINUTES) * plotW;
  const yReq = (v) => PAD.top + plotH - (v / maxReq) * plotH;
  const yMs = (v) => PAD.top + plotH - (v / maxMs) * plotH;
  const barW = Math.max(1, plotW / MINUTES - 2);

  const grid = [];
  for (let k = 0; k <= 4; k += 1) {
    const y = PAD.top + (plotH * k) / 4;
    grid.push(s('line', { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: 'grid' }));
    grid.push(s('text', { x: PAD.left - 6, y: y + 4, class: 'axis req', 'text-anchor': 'end' },
      fmtNum(Math.round((maxReq * (4 - k)) / 4 * 10) / 10)));
    grid.push(s('text', { x: W - PAD.right + 6, y: y + 4, class: 'axis ms', 'text-anchor': 'start' },
      fmtMs((maxMs * (4 - k)) / 4)));
  }
  const ticks = [0, 15, 30, 45, 59].map((i) => s('text', {
    x: x(i) + barW / 2, y: H - 10, class: 'axis', 'text-anchor': 'middle',
  }, i === 59 ? 'now' : `−${59 - i} min`));

  const bars = [];
  const line = [];
  minutes.forEach(({ p }, i) => {
    if (!p) return;
    const req = Number(p.requests || 0);
    const bad = Number(p.failed || 0);
    const good = req - bad;
    if (good > 0) {
      bars.push(s('rect', { x: x(i) + 1, y: yReq(req), width: barW, height: yReq(bad) - yReq(req), class: 'bar ok' }));
    }
    if (bad > 0) {
      bars.push(s('rect', { x: x(i) + 1, y: yReq(bad), width: barW, height: yReq(0) - yReq(bad), class: 'bar failed' }));
    }
    line.push(`${(x(i) + 1 + barW / 2).toFixed(1)},${yMs(Number(p.avg_ms || 0)).toFixed(1)}`);
  });

  const summary = total
    ? `${fmtNum(total)} requests in the last hour, ${fmtNum(failed)} failed; average latency ${fmtMs(avg)}, slowest ${fmtMs(peak)}.`
    : 'No requests in the last hour.';
  const svg = s('svg', {
    viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `Requests per minute and latency. ${summary}`,
  },
  s('title', null, 'Requests per minute and average latency over the last hour'),
  grid, ticks, bars,
  line.length > 1 ? s('polyline', { points: line.join(' '), class: 'latency' }) : null,
  line.length === 1 ? s('circle', { cx: line[0].split(',')[0], cy: line[0].split(',')[1], r: 3, class: 'latency-dot' }) : null);

  return h('figure', { class: 'chart-figure' },
    svg,
    h('figcaption', null,
      h('span', { class: 'legend ok' }, 'requests / min'), ' ',
      h('span', { class: 'legend failed' }, 'failed'), ' ',
      h('span', { class: 'legend latency' }, 'average latency (right scale)'),
      h('p', { class: 'chart-summary' }, summary)));
}
