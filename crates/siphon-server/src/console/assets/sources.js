// The sources page: every table with its source's state, filtered, sorted and paged.
//
// Thousands of sources stay fast because only one page of rows (50 to 500) is ever in
// the DOM; filtering and sorting run over plain objects. Data: `/v1/tables` (every table,
// also those without a polling source) and the shared `/v1/status` loop.

import { getJson, subscribeStatus } from './api.js';
import { fill, fmtNum, h, stateBadge, tableHref, timeCell } from './dom.js';

const STATES = ['running', 'backoff', 'circuit_open', 'paused', 'failed'];
// Worst first, so sorting by state puts trouble on top.
const SEVERITY = { failed: 0, circuit_open: 1, backoff: 2, paused: 3, running: 4 };
const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });

const COLUMNS = [
  { key: 'name', label: 'Table', type: 'text' },
  { key: 'connector', label: 'Connector', type: 'text' },
  { key: 'state', label: 'State', type: 'state' },
  { key: 'last_success_at', label: 'Last success', type: 'time' },
  { key: 'last_error', label: 'Last error', type: 'text' },
  { key: 'requests', label: 'Requests', type: 'num' },
  { key: 'records', label: 'Records', type: 'num' },
  { key: 'next_poll_at', label: 'Next poll', type: 'time' },
];

// Kept across visits of the page, for the tab's lifetime.
const view = { filter: '', state: '', sort: 'name', dir: 1, page: 0, size: 100 };

function compare(column) {
  const { key, type } = column;
  return (a, b) => {
    const x = a[key];
    const y = b[key];
    // Missing values sort last whatever the direction.
    const xm = x === null || x === undefined;
    const ym = y === null || y === undefined;
    if (xm || ym) return xm === ym ? 0 : xm ? 1 : -1;
    switch (type) {
      case 'num': return view.dir * (x - y);
      case 'time': return view.dir * (Date.parse(x) - Date.parse(y));
      case 'state': return view.dir * ((SEVERITY[x] ?? 9) - (SEVERITY[y] ?? 9));
      default: return view.dir * collator.compare(String(x), String(y));
    }
  };
}

function merge(tables, statuses) {
  const byName = new Map();
  for (const t of tables) {
    byName.set(t.name, {
      name: t.name, connector: t.connector, connection: t.connection, state: null,
      last_success_at: null, last_error: null, last_error_at: null, requests: null,
      records: null, next_poll_at: null,
    });
  }
  for (const s of statuses) {
    byName.set(s.table_name, {
      ...(byName.get(s.table_name) || {}),
      name: s.table_name,
      connector: s.connector_name,
      connection: s.connection_name,
      state: s.state,
      last_success_at: s.last_success_at,
      last_error: s.last_error,
      last_error_at: s.last_error_at,
      consecutive_failures: s.consecutive_failures,
      requests: s.requests,
      records: s.records,
      next_poll_at: s.next_poll_at,
    });
  }
  return [...byName.values()];
}

export function mount(main) {
  document.title = 'Sources · siphon console';
  let tables = [];
  let statuses = [];
  let loadError = null;
  let statusError = null;
  let shownProblems = '';
  let loaded = false;

  const filterInput = h('input', { id: 'sources-filter', type: 'search', placeholder: 'name, connector or error', autocomplete: 'off' });
  filterInput.value = view.filter;
  const stateSelect = h('select', { id: 'sources-state' },
    h('option', { value: '' }, 'every state'),
    STATES.map((st) => h('option', { value: st }, st.replace('_', ' '))),
    h('option', { value: 'none' }, 'no polling (push, view)'));
  stateSelect.value = view.state;
  // The same sorting as the column headers, for narrow layouts where they are hidden.
  const sortSelect = h('select', { id: 'sources-sort' },
    COLUMNS.map((c) => h('option', { value: c.key }, c.label)));
  const orderButton = h('button', { type: 'button', id: 'sources-order' });
  const sizeSelect = h('select', { id: 'sources-size' },
    [50, 100, 250, 500].map((n) => h('option', { value: n }, String(n))));
  sizeSelect.value = String(view.size);

  const summary = h('div', { class: 'summary', role: 'group', 'aria-label': 'Tables by state' });
  const announce = h('p', { class: 'visually-hidden', 'aria-live': 'polite' });
  const errorBox = h('div', { role: 'alert' });
  const headRow = h('tr');
  const tbody = h('tbody');
  const pagerTop = h('nav', { class: 'pager', 'aria-label': 'Pages of sources' });
  const pagerBottom = h('nav', { class: 'pager', 'aria-label': 'Pages of sources (bottom)' });

  for (const column of COLUMNS) {
    const button = h('button', { type: 'button', class: 'sort', 'data-sort': column.key }, column.label,
      h('span', { class: 'sort-mark', 'aria-hidden': 'true' }));
    button.addEventListener('click', () => {
      if (view.sort === column.key) view.dir = -view.dir;
      else {
        view.sort = column.key;
        // Numbers and times read best largest/newest first.
        view.dir = column.type === 'num' || column.type === 'time' ? -1 : 1;
      }
      view.page = 0;
      render(true);
    });
    headRow.appendChild(h('th', { scope: 'col', 'data-col': column.key }, button));
  }

  fill(main,
    h('div', { class: 'page-head' },
      h('h1', null, 'Sources'),
      h('p', { class: 'muted' }, 'Every table, with the state of the source that feeds it.')),
    errorBox,
    summary,
    h('div', { class: 'controls' },
      h('div', { class: 'field' }, h('label', { for: 'sources-filter' }, 'Filter'), filterInput),
      h('div', { class: 'field' }, h('label', { for: 'sources-state' }, 'State'), stateSelect),
      h('div', { class: 'field' }, h('label', { for: 'sources-sort' }, 'Sort by'),
        h('div', { class: 'inline' }, sortSelect, orderButton)),
      h('div', { class: 'field' }, h('label', { for: 'sources-size' }, 'Rows per page'), sizeSelect)),
    announce,
    pagerTop,
    h('div', { class: 'table-wrap' },
      h('table', { class: 'data sources', id: 'sources-table' },
        h('caption', { class: 'visually-hidden' }, 'Sources; column headers sort'),
        h('thead', null, headRow),
        tbody)),
    pagerBottom);

  function filtered(all) {
    const needle = view.filter.trim().toLowerCase();
    let rows = all;
    if (view.state === 'none') rows = rows.filter((r) => !r.state);
    else if (view.state) rows = rows.filter((r) => r.state === view.state);
    if (needle) {
      rows = rows.filter((r) => [r.name, r.connector, r.connection, r.last_error]
        .some((v) => v && String(v).toLowerCase().includes(needle)));
    }
    const column = COLUMNS.find((c) => c.key === view.sort) || COLUMNS[0];
    rows.sort(compare(column));
    return rows;
  }

  function renderSummary(all) {
    const counts = new Map();
    for (const r of all) counts.set(r.state || 'none', (counts.get(r.state || 'none') || 0) + 1);
    const chip = (value, label, n) => {
      const b = h('button', { type: 'button', class: `chip ${value ? `state-${value}` : ''}`, 'data-focus-key': `chip:${value}`, 'aria-pressed': String(view.state === value) },
        h('strong', null, fmtNum(n)), ' ', label);
      b.addEventListener('click', () => {
        view.state = view.state === value ? '' : value;
        stateSelect.value = view.state;
        view.page = 0;
        render(true);
      });
      return b;
    };
    fill(summary,
      chip('', all.length === 1 ? 'table' : 'tables', all.length),
      [...STATES, 'none'].filter((st) => counts.get(st))
        .map((st) => chip(st, st === 'none' ? 'no polling' : st.replace('_', ' '), counts.get(st))));
  }

  function renderPager(nav, where, total, pages) {
    const first = total ? view.page * view.size + 1 : 0;
    const last = Math.min(total, (view.page + 1) * view.size);
    const go = (label, page, disabled) => {
      const b = h('button', { type: 'button', disabled, 'data-focus-key': `${where}:${label}` }, label);
      b.addEventListener('click', () => {
        view.page = page;
        render(true);
        // On the first or last page this button is disabled now: focus one that works.
        if (!nav.contains(document.activeElement)) nav.querySelector('button:not([disabled])')?.focus();
      });
      return b;
    };
    fill(nav,
      go('First', 0, view.page === 0),
      go('Previous', view.page - 1, view.page === 0),
      h('span', { class: 'pager-text' }, `${fmtNum(first)}–${fmtNum(last)} of ${fmtNum(total)} · page ${fmtNum(view.page + 1)} of ${fmtNum(pages)}`),
      go('Next', view.page + 1, view.page >= pages - 1),
      go('Last', pages - 1, view.page >= pages - 1));
  }

  function row(r, now) {
    const cells = {
      name: h('a', { href: tableHref(r.name), 'data-focus-key': `row:${r.name}` }, r.name),
      connector: [r.connector || '—', r.connection ? h('span', { class: 'muted' }, ` (${r.connection})`) : null],
      state: [stateBadge(r.state), r.consecutive_failures ? h('span', { class: 'muted' }, ` ×${fmtNum(r.consecutive_failures)}`) : null],
      last_success_at: timeCell(r.last_success_at, now),
      last_error: r.last_error
        ? [h('span', { class: 'error-text clamp', title: r.last_error }, r.last_error), ' ', timeCell(r.last_error_at, now)]
        : h('span', { class: 'muted' }, '—'),
      requests: fmtNum(r.requests),
      records: fmtNum(r.records),
      next_poll_at: timeCell(r.next_poll_at, now),
    };
    return h('tr', { 'data-table': r.name },
      COLUMNS.map((c) => h(c.key === 'name' ? 'th' : 'td',
        { 'data-label': c.label, class: c.type === 'num' ? 'num' : null, scope: c.key === 'name' ? 'row' : null },
        cells[c.key])));
  }

  // Everything below is drawn again at each refresh: keep keyboard focus on the element
  // with the same focus key (a chip, a pager button, a table's link).
  function render(announceIt = false) {
    const focused = main.contains(document.activeElement) ? document.activeElement.dataset.focusKey : undefined;
    draw(announceIt);
    if (focused !== undefined && !main.contains(document.activeElement)) {
      [...main.querySelectorAll('[data-focus-key]')].find((e) => e.dataset.focusKey === focused && !e.disabled)?.focus();
    }
  }

  function draw(announceIt) {
    const all = merge(tables, statuses);
    renderSummary(all);
    const rows = filtered(all);
    const pages = Math.max(1, Math.ceil(rows.length / view.size));
    view.page = Math.min(view.page, pages - 1);
    renderPager(pagerTop, 'top', rows.length, pages);
    renderPager(pagerBottom, 'bottom', rows.length, pages);
    sortSelect.value = view.sort;
    orderButton.textContent = view.dir > 0 ? 'Ascending' : 'Descending';
    orderButton.setAttribute('aria-label', `Order: ${view.dir > 0 ? 'ascending' : 'descending'}; press to reverse`);
    for (const th of headRow.children) {
      const col = th.dataset.col;
      if (col === view.sort) th.setAttribute('aria-sort', view.dir > 0 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
      th.querySelector('.sort-mark').textContent = col === view.sort ? (view.dir > 0 ? ' ▲' : ' ▼') : '';
    }
    const now = Date.now();
    const slice = rows.slice(view.page * view.size, (view.page + 1) * view.size);
    fill(tbody, slice.map((r) => row(r, now)));
    if (!rows.length) {
      tbody.appendChild(h('tr', null, h('td', { colspan: COLUMNS.length, class: 'muted' },
        all.length ? 'No table matches the filter.' : loaded ? 'No tables yet.' : 'Loading…')));
    }
    if (announceIt) announce.textContent = `${fmtNum(rows.length)} of ${fmtNum(all.length)} tables shown`;
    // An alert is announced when it changes, so it is only drawn again when it does.
    const problems = [loadError, statusError].filter(Boolean);
    if (problems.join('\n') !== shownProblems) {
      shownProblems = problems.join('\n');
      fill(errorBox, problems.map((p) => h('p', { class: 'error' }, p)));
    }
  }

  let debounce = null;
  filterInput.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      view.filter = filterInput.value;
      view.page = 0;
      render(true);
    }, 120);
  });
  stateSelect.addEventListener('change', () => {
    view.state = stateSelect.value;
    view.page = 0;
    render(true);
  });
  sortSelect.addEventListener('change', () => {
    const column = COLUMNS.find((c) => c.key === sortSelect.value);
    view.sort = column.key;
    view.dir = column.type === 'num' || column.type === 'time' ? -1 : 1;
    view.page = 0;
    render(true);
  });
  orderButton.addEventListener('click', () => {
    view.dir = -view.dir;
    view.page = 0;
    render(true);
  });
  sizeSelect.addEventListener('change', () => {
    view.size = Number(sizeSelect.value);
    view.page = 0;
    render(true);
  });

  let stopped = false;
  async function loadTables() {
    try {
      tables = (await getJson('/v1/tables')).tables;
      loadError = null;
      loaded = true;
    } catch (error) {
      loadError = `Cannot list the tables: ${error.message}`;
    }
    if (!stopped) render();
  }
  loadTables();
  const tablesTimer = setInterval(loadTables, 30000);
  const unsubscribe = subscribeStatus((state) => {
    if (state.ok) {
      statuses = state.status.sources;
      statusError = null;
    } else {
      statusError = `Cannot read the status: ${state.error.message}`;
    }
    render();
  });
  render();

  return () => {
    stopped = true;
    clearInterval(tablesTimer);
    clearTimeout(debounce);
    unsubscribe();
  };
}
