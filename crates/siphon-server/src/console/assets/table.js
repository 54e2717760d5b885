// A table's page: its source's status, its definition (secrets as ***), its requests
// (chart and list, from system.http_metrics), its dead letters, its latest rows and a
// live tail of its changes.

import { apiFetch, getJson, query, subscribeStatus } from './api.js';
import { requestChart } from './chart.js';
import {
  fill, fmtMs, fmtNum, fmtTime, h, rowsTable, sqlIdent, sqlString, stateBadge, timeCell, valueText,
} from './dom.js';
import { Tail } from './tail.js';

const REFRESH_MS = 10000;
const RETRY_MS = 2000;
const TAIL_KEEP = 200;
const LATEST = 50;

function section(id, title, ...body) {
  return h('section', { class: 'panel', 'aria-labelledby': `${id}-title`, id },
    h('h2', { id: `${id}-title` }, title), ...body);
}

function quoteValue(v) {
  return `'${String(v).replaceAll("'", "''")}'`;
}

function withBlock(options, extra = []) {
  const lines = [...extra, ...Object.entries(options).map(([k, v]) => `${k} = ${quoteValue(v)}`)];
  return lines.length ? ` WITH (\n    ${lines.join(',\n    ')}\n)` : '';
}

/** The definition as the statements that would declare it. */
function definitionText(def) {
  if (def.kind === 'view') return `CREATE VIEW ${sqlIdent(def.name)} AS\n${def.query};`;
  const parts = [];
  if (def.connection) {
    parts.push(`CREATE CONNECTION ${sqlIdent(def.connection)} FROM ${def.connector}${withBlock(def.connection_options)};`);
  }
  const cols = def.columns.map((c) => `    ${sqlIdent(c.name)} ${c.type}${c.nullable ? '' : ' NOT NULL'}`);
  if (def.primary_key.length) cols.push(`    PRIMARY KEY (${def.primary_key.map(sqlIdent).join(', ')})`);
  const extra = [`connector = ${quoteValue(def.connector)}`];
  if (def.connection) extra.push(`connection = ${quoteValue(def.connection)}`);
  parts.push(`CREATE TABLE ${sqlIdent(def.name)} (\n${cols.join(',\n')}\n)${withBlock(def.options, extra)};`);
  return parts.join('\n\n');
}

/** The changes of the last commits, newest first, up to `LATEST` inserted rows. */
async function latestInserts(name, lastSeq) {
  let back = 1;
  let rows = [];
  for (;;) {
    const from = Math.max(0, lastSeq - back);
    const response = await apiFetch(`/v1/egress/${encodeURIComponent(name)}?from=${from}&follow=false`);
    const text = await response.text();
    rows = [];
    for (const line of text.split('\r\n')) {
      if (!line || line === '{}') continue;
      const change = JSON.parse(line);
      for (const item of change.json_data || []) {
        if (item.insert) rows.push({ seq: change.sequence_number, row: item.insert });
      }
    }
    if (rows.length >= LATEST || from === 0 || back >= 64) break;
    back *= 4;
  }
  return rows.reverse().slice(0, LATEST);
}

export function mount(main, { table: name }) {
  let stopped = false;
  const timers = [];
  let tail = null;
  const lit = sqlString(name);

  const stateLine = h('p', { class: 'meta' });
  const statusBody = h('div');
  const defBody = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  const chartBody = h('div');
  const requestsBody = h('div');
  const deadBody = h('div');
  const latestBody = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  const tailStatus = h('p', { class: 'tail-status', id: 'tail-status', role: 'status' }, 'connecting');
  const tailBody = h('tbody', { id: 'tail-body' });
  const tailEmpty = h('p', { class: 'muted', id: 'tail-empty' }, 'Waiting for changes…');
  const clearButton = h('button', { type: 'button', class: 'quiet' }, 'Clear');
  clearButton.addEventListener('click', () => {
    fill(tailBody);
    tailEmpty.hidden = false;
  });
  const reloadLatest = h('button', { type: 'button', class: 'quiet' }, 'Reload');

  document.title = `${name} · siphon console`;
  fill(main,
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/' }, 'Sources'), ' / ', name),
    h('div', { class: 'page-head' },
      h('h1', null, name),
      stateLine,
      h('p', null, h('a', { href: `#/sql?q=${encodeURIComponent(`SELECT * FROM ${sqlIdent(name)} LIMIT 100`)}`, class: 'button-link' }, 'Query this table'))),
    h('div', { class: 'grid-2' },
      section('status', 'Source', statusBody),
      section('requests', 'Requests in the last hour', chartBody)),
    section('tail', 'Live changes',
      h('div', { class: 'toolbar' }, tailStatus, clearButton),
      tailEmpty,
      h('div', { class: 'table-wrap' },
        h('table', { class: 'data tail' },
          h('caption', { class: 'visually-hidden' }, 'Changes as they are committed, newest first'),
          h('thead', null, h('tr', null,
            h('th', { scope: 'col' }, 'Sequence'), h('th', { scope: 'col' }, 'Change'), h('th', { scope: 'col' }, 'Row'))),
          tailBody))),
    h('div', { class: 'grid-2' },
      section('definition', 'Definition', defBody),
      section('latest', 'Latest rows', h('div', { class: 'toolbar' }, reloadLatest), latestBody)),
    section('recent-requests', 'Recent requests', requestsBody),
    section('dead-letters', 'Dead letters', deadBody));

  // The source's status, from the shared status loop.
  const unsubscribe = subscribeStatus((state) => {
    if (!state.ok) return;
    const s = state.status.sources.find((x) => x.table_name === name);
    if (!s) {
      fill(stateLine, stateBadge(null), ' no polling source: rows are pushed, or computed by a view');
      fill(statusBody, h('p', { class: 'muted' }, 'This table has no polling source.'));
      return;
    }
    const now = Date.now();
    fill(stateLine, stateBadge(s.state), ` ${s.connector_name}`, s.connection_name ? ` · connection ${s.connection_name}` : '');
    const item = (label, ...value) => [h('dt', null, label), h('dd', null, ...value)];
    fill(statusBody, h('dl', { class: 'facts' },
      item('State', stateBadge(s.state)),
      item('Last success', timeCell(s.last_success_at, now)),
      item('Last error', s.last_error ? h('span', { class: 'error-text' }, s.last_error) : '—',
        s.last_error_at ? [' ', timeCell(s.last_error_at, now)] : null),
      item('Failures in a row', fmtNum(s.consecutive_failures)),
      item('Requests', fmtNum(s.requests)),
      item('Records', fmtNum(s.records)),
      item('Next poll', timeCell(s.next_poll_at, now)),
      s.in_flight_pages ? item('Poll in flight', `${fmtNum(s.in_flight_pages)} pages, ${fmtNum(s.in_flight_records)} records`) : null));
  });

  const failed = (el, what) => (error) => {
    if (!stopped) fill(el, h('p', { class: 'error' }, `${what}: ${error.message}`));
  };

  async function loadRequests() {
    const [points, recent] = await Promise.all([
      query(`SELECT date_trunc('minute', timestamp) AS minute, count(*) AS requests,
               sum(CASE WHEN status_code >= 200 AND status_code < 400 THEN 0 ELSE 1 END) AS failed,
               avg(response_time_ms) AS avg_ms, max(response_time_ms) AS max_ms
             FROM system.http_metrics
             WHERE table_name = ${lit} AND timestamp >= now() - INTERVAL '1 hour'
             GROUP BY 1 ORDER BY 1`),
      query(`SELECT timestamp, method, url, status_code, response_time_ms, bytes, pages, attempt
             FROM system.http_metrics WHERE table_name = ${lit}
             ORDER BY timestamp DESC LIMIT 20`),
    ]);
    if (stopped) return;
    fill(chartBody, requestChart(points));
    const rows = recent.map((r) => ({
      time: fmtTime(r.timestamp),
      request: `${r.method} ${r.url}`,
      status: r.status_code === null ? 'no answer' : r.status_code,
      latency: fmtMs(r.response_time_ms),
      bytes: r.bytes,
      pages: r.pages,
      attempt: r.attempt,
    }));
    fill(requestsBody, rowsTable(rows, { empty: 'No requests recorded.' }));
    for (const tr of requestsBody.querySelectorAll('tbody tr')) {
      const code = Number(tr.children[2].textContent);
      if (!(code >= 200 && code < 400)) tr.children[2].classList.add('error-text');
    }
  }

  async function loadDeadLetters() {
    const rows = await query(`SELECT timestamp, reason, raw FROM system.dead_letters
                              WHERE table_name = ${lit} ORDER BY timestamp DESC LIMIT 20`);
    if (stopped) return;
    if (!rows.length) {
      fill(deadBody, h('p', { class: 'muted' }, 'No dead letters.'));
      return;
    }
    fill(deadBody, h('ol', { class: 'dead-letters' }, rows.map((r) => h('li', null,
      h('p', null, h('time', { datetime: r.timestamp }, fmtTime(r.timestamp)), ' ', h('span', { class: 'error-text' }, r.reason)),
      h('details', null, h('summary', null, 'Raw record'), h('pre', { class: 'raw' }, valueText(r.raw)))))));
  }

  let def = null;
  async function loadLatest() {
    if (!def) return;
    if (def.kind === 'view' || def.primary_key.length) {
      const rows = await query(`SELECT * FROM ${sqlIdent(name)} LIMIT ${LATEST}`);
      if (stopped) return;
      fill(latestBody,
        h('p', { class: 'muted' }, def.kind === 'view'
          ? 'Rows of the view (up to 50).'
          : 'Current rows (up to 50; a keyed table keeps the latest row per key).'),
        rowsTable(rows, { empty: 'The table is empty.', columns: def.columns.map((c) => c.name) }));
      return;
    }
    const commits = await query(`SELECT max(sequence_number) AS seq FROM system.commits WHERE table_name = ${lit}`);
    const lastSeq = Number(commits[0]?.seq || 0);
    const rows = lastSeq ? await latestInserts(name, lastSeq) : [];
    if (stopped) return;
    const columns = ['#', ...def.columns.map((c) => c.name)];
    fill(latestBody,
      h('p', { class: 'muted' }, 'The rows of the newest commits, newest first (up to 50).'),
      rowsTable(rows.map((r) => ({ '#': r.seq, ...r.row })), { empty: 'The table is empty.', columns }));
  }
  // Each panel loads on its own: every REFRESH_MS while the tab is visible (the
  // definition once), and again RETRY_MS after a failure (siphon restarting, say), so a
  // panel never stays broken.
  function keepLoading(load, el, what, every) {
    let timer = null;
    const run = async () => {
      clearTimeout(timer);
      if (stopped) return;
      let next = every;
      if (!document.hidden) {
        try {
          await load();
        } catch (error) {
          failed(el, what)(error);
          next = RETRY_MS;
        }
      }
      if (!stopped && next) timer = setTimeout(run, next);
    };
    timers.push(() => clearTimeout(timer));
    run();
    return run;
  }

  keepLoading(async () => {
    const d = await getJson(`/v1/tables/${encodeURIComponent(name)}`);
    if (stopped) return;
    def = d;
    fill(defBody,
      h('pre', { class: 'sql', tabindex: '0', 'aria-label': 'Definition' }, definitionText(def)),
      h('p', { class: 'muted' }, 'Options as declared; secrets are shown as ***.'));
    const latest = keepLoading(loadLatest, latestBody, 'Cannot read the rows', REFRESH_MS);
    reloadLatest.addEventListener('click', latest);
  }, defBody, 'Cannot read the definition', 0);
  keepLoading(loadRequests, chartBody, 'Cannot read the requests', REFRESH_MS);
  keepLoading(loadDeadLetters, deadBody, 'Cannot read the dead letters', REFRESH_MS);

  tail = new Tail(name, {
    onStatus: (kind, text) => {
      tailStatus.textContent = text;
      tailStatus.dataset.kind = kind;
    },
    onChange: (change) => {
      tailEmpty.hidden = true;
      const rows = [];
      const items = change.json_data || [];
      if (change.dropped) {
        rows.push(h('tr', { class: 'dropped' }, h('td', { colspan: 3 }, `${fmtNum(change.dropped)} changes skipped (reader too slow)`)));
      }
      items.forEach((item, i) => {
        const op = item.insert ? 'insert' : 'delete';
        rows.push(h('tr', { class: `tail-row ${op}`, 'data-seq': change.sequence_number },
          h('td', { class: 'num' }, i === 0 ? `#${change.sequence_number}` : ''),
          h('td', null, h('span', { class: `op op-${op}` }, op)),
          h('td', null, h('code', null, JSON.stringify(item.insert || item.delete)))));
      });
      tailBody.prepend(...rows);
      while (tailBody.children.length > TAIL_KEEP) tailBody.lastElementChild.remove();
    },
  }).start();

  return () => {
    stopped = true;
    tail?.stop();
    unsubscribe();
    for (const cancel of timers) cancel();
  };
}
