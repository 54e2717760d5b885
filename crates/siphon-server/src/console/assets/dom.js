// Building the page from data, and formatting values.
//
// The one rule: text that comes from tables or the API becomes a text node or an
// attribute value, never markup. `h` is the only way the console makes elements; it has
// no way to parse HTML, refuses event-handler attributes, and only takes links inside
// the console.

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (/^on/i.test(name)) throw new Error(`event handler attribute ${name}: use addEventListener`);
    if (name === 'href' && !/^(#|\/[^/])/.test(String(value))) {
      throw new Error('links stay inside the console');
    }
    el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** An HTML element: `h('a', {href: '#/'}, 'text', otherNode)`. */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** The console link of a table's page. */
export function tableHref(name) {
  return `#/table/${encodeURIComponent(name)}`;
}

/** A SQL string literal. */
export function sqlString(text) {
  return `'${String(text).replaceAll("'", "''")}'`;
}

/** A SQL identifier, quoted unless it is a plain lower-case name. */
export function sqlIdent(name) {
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : `"${String(name).replaceAll('"', '""')}"`;
}

const numberFormat = new Intl.NumberFormat('en-US');

/** 12,345 */
export function fmtNum(n) {
  return n === null || n === undefined ? '—' : numberFormat.format(n);
}

/** Milliseconds, to a sensible precision. */
export function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms >= 10000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 100) return `${Math.round(ms)} ms`;
  return `${Number(ms).toFixed(1)} ms`;
}

/** An instant as the browser's local time, with the date when it is not today. */
export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

/** "12 s ago", "in 3 s". */
export function fmtRelative(iso, now = Date.now()) {
  if (!iso) return '—';
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return String(iso);
  const diff = Math.round((t - now) / 1000);
  const abs = Math.abs(diff);
  let text;
  if (abs < 1) return 'now';
  if (abs < 90) text = `${abs} s`;
  else if (abs < 5400) text = `${Math.round(abs / 60)} min`;
  else if (abs < 172800) text = `${Math.round(abs / 3600)} h`;
  else text = `${Math.round(abs / 86400)} d`;
  return diff < 0 ? `${text} ago` : `in ${text}`;
}

/** A time element showing a relative time, with the exact time as its title. */
export function timeCell(iso, now) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: iso, title: fmtTime(iso) }, fmtRelative(iso, now));
}

/** A query result value as text: NULL, JSON for objects and arrays. */
export function valueText(value) {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** A table cell for a query result value. */
export function valueCell(value) {
  const td = h('td', value === null ? { class: 'null' } : null, valueText(value));
  if (typeof value === 'number') td.classList.add('num');
  return td;
}

/** A table of rows (objects), columns in the order of the first row's keys. */
export function rowsTable(rows, { caption, empty = 'No rows.', columns } = {}) {
  if (!rows.length) return h('p', { class: 'muted' }, empty);
  const cols = columns || Object.keys(rows[0]);
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'data' },
      caption ? h('caption', null, caption) : null,
      h('thead', null, h('tr', null, cols.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, rows.map((r) => h('tr', null, cols.map((c) => valueCell(r[c])))))));
}

/** The state badge of a source. */
export function stateBadge(state) {
  const label = state ? state.replace('_', ' ') : 'no polling';
  return h('span', { class: `badge state-${state || 'none'}` }, label);
}

/** Sleeps `ms`, or until `signal` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}
