// The SQL page: an editor that completes table and column names (from
// information_schema.columns), results as a table with time and row count, and the
// same query downloaded as CSV or JSON through /v1/query.

import { query } from './api.js';
import { fill, fmtNum, h, rowsTable, sqlIdent } from './dom.js';

const SHOWN = 1000;
const MAX_SUGGESTIONS = 12;
const KEYWORDS = ['SELECT', 'FROM', 'WHERE', 'GROUP BY', 'ORDER BY', 'LIMIT', 'COUNT(*)', 'DESC', 'AND', 'OR', 'AS', 'JOIN', 'ON', 'HAVING', 'DISTINCT'];

// The last query of this tab, kept across visits of the page.
let lastSql = 'SELECT * FROM system.connector_status';

/** Table and column names, for completion. */
async function loadNames() {
  const rows = await query(`SELECT table_schema, table_name, column_name FROM information_schema.columns
                            WHERE table_schema NOT IN ('information_schema')
                            ORDER BY table_schema, table_name, ordinal_position`);
  const tables = new Map(); // shown name -> columns
  for (const r of rows) {
    const shown = r.table_schema === 'system' ? `system.${r.table_name}` : sqlIdent(r.table_name);
    if (!tables.has(shown)) tables.set(shown, []);
    tables.get(shown).push(sqlIdent(r.column_name));
  }
  return tables;
}

export function mount(main, { q }) {
  document.title = 'SQL · siphon console';
  let stopped = false;
  let names = new Map();
  if (q) lastSql = q;

  const editor = h('textarea', {
    id: 'sql-editor', rows: 8, spellcheck: 'false', autocomplete: 'off', autocapitalize: 'off',
    'aria-autocomplete': 'list', 'aria-controls': 'sql-suggestions', 'aria-expanded': 'false',
    'aria-describedby': 'sql-help',
  });
  editor.value = lastSql;
  const list = h('ul', { id: 'sql-suggestions', role: 'listbox', class: 'suggestions', 'aria-label': 'Completions', hidden: true });
  const run = h('button', { type: 'button', id: 'sql-run', class: 'primary' }, 'Run');
  const csv = h('button', { type: 'button', id: 'sql-csv' }, 'Download CSV');
  const json = h('button', { type: 'button', id: 'sql-json' }, 'Download JSON');
  const info = h('p', { id: 'sql-info', role: 'status' });
  const results = h('div', { id: 'sql-results' });

  fill(main,
    h('div', { class: 'page-head' }, h('h1', null, 'SQL'),
      h('p', { class: 'muted' }, 'Read-only queries over tables, views and system tables.')),
    h('div', { class: 'editor' },
      h('label', { for: 'sql-editor' }, 'Query'),
      h('div', { class: 'editor-box' }, editor, list),
      h('p', { id: 'sql-help', class: 'hint' },
        'Ctrl+Enter runs the query. Ctrl+Space completes table and column names; ',
        'arrow keys choose, Enter or Tab takes, Escape closes.')),
    h('div', { class: 'toolbar' }, run, csv, json),
    info,
    results);

  loadNames().then((n) => { names = n; }).catch(() => { /* completion is a help, not a need */ });

  // --- completion ---
  let items = [];
  let active = -1;

  function wordAtCaret() {
    const upto = editor.value.slice(0, editor.selectionStart);
    const m = /[A-Za-z0-9_."]*$/.exec(upto);
    return { word: m[0], start: upto.length - m[0].length };
  }

  function candidates(word) {
    const lower = word.toLowerCase();
    const dot = word.lastIndexOf('.');
    const out = [];
    if (dot > 0) {
      // `table.` → that table's columns (system.x is a table, not table.column).
      const head = word.slice(0, dot);
      const tail = lower.slice(dot + 1);
      for (const [table, columns] of names) {
        if (table.toLowerCase() === head.toLowerCase()) {
          for (const c of columns) if (c.toLowerCase().startsWith(tail)) out.push({ text: `${head}.${c}`, kind: 'column' });
        }
      }
    }
    for (const table of names.keys()) {
      if (table.toLowerCase().startsWith(lower)) out.push({ text: table, kind: 'table' });
    }
    const seen = new Set(out.map((o) => o.text));
    for (const columns of names.values()) {
      for (const c of columns) {
        if (!seen.has(c) && c.toLowerCase().startsWith(lower)) {
          seen.add(c);
          out.push({ text: c, kind: 'column' });
        }
      }
    }
    for (const k of KEYWORDS) if (k.toLowerCase().startsWith(lower) && lower) out.push({ text: k, kind: 'keyword' });
    return out.filter((o) => o.text !== word).slice(0, MAX_SUGGESTIONS);
  }

  function close() {
    items = [];
    active = -1;
    list.hidden = true;
    editor.setAttribute('aria-expanded', 'false');
    editor.removeAttribute('aria-activedescendant');
  }

  function show(force = false) {
    const { word } = wordAtCaret();
    if (!word && !force) return close();
    items = candidates(word);
    if (!items.length) return close();
    active = 0;
    fill(list, items.map((item, i) => {
      const li = h('li', { role: 'option', id: `sql-opt-${i}`, 'aria-selected': String(i === active) },
        item.text, ' ', h('span', { class: 'kind' }, item.kind));
      li.addEventListener('mousedown', (event) => {
        event.preventDefault(); // keep the editor's focus
        accept(i);
      });
      return li;
    }));
    list.hidden = false;
    editor.setAttribute('aria-expanded', 'true');
    highlight();
  }

  function highlight() {
    [...list.children].forEach((li, i) => li.setAttribute('aria-selected', String(i === active)));
    if (active >= 0) {
      editor.setAttribute('aria-activedescendant', `sql-opt-${active}`);
      list.children[active]?.scrollIntoView({ block: 'nearest' });
    }
  }

  function accept(i) {
    const item = items[i];
    if (!item) return;
    const { start } = wordAtCaret();
    const end = editor.selectionStart;
    editor.setRangeText(item.text, start, end, 'end');
    close();
    editor.focus();
  }

  editor.addEventListener('input', () => show());
  editor.addEventListener('blur', () => close());
  editor.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      close();
      execute();
      return;
    }
    if (event.key === ' ' && event.ctrlKey) {
      event.preventDefault();
      show(true);
      return;
    }
    if (list.hidden) return;
    if (event.key === 'ArrowDown') {
      event.preventDefault();
      active = (active + 1) % items.length;
      highlight();
    } else if (event.key === 'ArrowUp') {
      event.preventDefault();
      active = (active - 1 + items.length) % items.length;
      highlight();
    } else if (event.key === 'Enter' || event.key === 'Tab') {
      event.preventDefault();
      accept(active);
    } else if (event.key === 'Escape') {
      event.preventDefault();
      close();
    }
  });

  // --- running ---
  let controller = null;
  async function execute() {
    const sql = editor.value.trim();
    if (!sql) return;
    lastSql = editor.value;
    controller?.abort();
    controller = new AbortController();
    run.disabled = true;
    info.textContent = 'Running…';
    info.className = '';
    const started = performance.now();
    try {
      const rows = await query(sql, { signal: controller.signal });
      if (stopped) return;
      const ms = performance.now() - started;
      const shown = rows.slice(0, SHOWN);
      info.textContent = `${fmtNum(rows.length)} ${rows.length === 1 ? 'row' : 'rows'} in ${ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`}`
        + (rows.length > SHOWN ? ` (showing the first ${fmtNum(SHOWN)}; download for all)` : '');
      fill(results, rowsTable(shown, { caption: 'Query result', empty: 'The query returned no rows.' }));
    } catch (error) {
      if (stopped || error.name === 'AbortError') return;
      info.textContent = `Error: ${error.message}`;
      info.className = 'error';
      fill(results);
    } finally {
      run.disabled = false;
    }
  }

  async function download(format) {
    const sql = editor.value.trim();
    if (!sql) return;
    info.textContent = `Preparing ${format.toUpperCase()}…`;
    info.className = '';
    try {
      const response = await query(sql, { format });
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const a = document.createElement('a');
      a.href = url;
      a.download = `siphon-query.${format}`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      info.textContent = `Downloaded siphon-query.${format} (${fmtNum(blob.size)} bytes)`;
    } catch (error) {
      info.textContent = `Error: ${error.message}`;
      info.className = 'error';
    }
  }

  run.addEventListener('click', execute);
  csv.addEventListener('click', () => download('csv'));
  json.addEventListener('click', () => download('json'));

  if (q) execute();

  return () => {
    stopped = true;
    controller?.abort();
    lastSql = editor.value;
  };
}
