// The console's only way to the server: the public HTTP API, with the API key the user
// gave (kept in sessionStorage, so it lives as long as the tab) as a bearer token.

const KEY = 'siphon.apiKey';

export function apiKey() {
  try {
    return sessionStorage.getItem(KEY) || '';
  } catch {
    return '';
  }
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

/** An API error: its HTTP status and the server's `{"error", "detail"}`. */
export class ApiError extends Error {
  constructor(status, message, detail) {
    super(message);
    this.status = status;
    this.detail = detail;
  }
}

function headers(extra) {
  const h = new Headers(extra || {});
  const key = apiKey();
  if (key) h.set('Authorization', `Bearer ${key}`);
  return h;
}

/** fetch with the key; throws ApiError on a non-2xx answer. */
export async function apiFetch(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers) });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    let detail = null;
    try {
      const body = await response.json();
      if (body && body.error) message = body.error;
      detail = body ? body.detail : null;
    } catch {
      // not JSON: keep the status line
    }
    if (response.status === 401) {
      window.dispatchEvent(new CustomEvent('siphon:unauthorized', { detail: message }));
    }
    throw new ApiError(response.status, message, detail);
  }
  return response;
}

export async function getJson(path, options) {
  return (await apiFetch(path, options)).json();
}

/** Runs a query; `format` json gives the rows, any other format the Response. */
export async function query(sql, { format = 'json', signal } = {}) {
  const response = await apiFetch(`/v1/query?format=${encodeURIComponent(format)}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ sql }),
    signal,
  });
  return format === 'json' ? response.json() : response;
}

/** Whether a key is needed and whether ours is good (never a 401). */
export async function session() {
  const response = await fetch('/console/session', { headers: headers(), cache: 'no-store' });
  return response.json();
}

export async function setPaused(paused) {
  return (await apiFetch(paused ? '/v1/pause' : '/v1/resume', { method: 'POST' })).json();
}

// `/v1/status` is polled by one shared loop for every subscriber (the header's pause
// state, the sources page, a table's page), and not while the tab is hidden.
const subscribers = new Set();
let latest = null;
let timer = null;
let inFlight = false;
let again = false;

async function pollStatus() {
  timer = null;
  if (inFlight) {
    again = true;
    return;
  }
  if (!subscribers.size) return;
  if (!document.hidden) {
    inFlight = true;
    try {
      latest = { ok: true, status: await getJson('/v1/status'), at: Date.now() };
    } catch (error) {
      latest = { ok: false, error, at: Date.now() };
    } finally {
      inFlight = false;
    }
    for (const fn of subscribers) fn(latest);
  }
  if (timer) return; // a refresh was asked for meanwhile
  if (again) {
    again = false;
    timer = setTimeout(pollStatus, 0);
    return;
  }
  // Many sources make a large answer: poll less often.
  const n = latest?.status?.sources?.length || 0;
  timer = setTimeout(pollStatus, n > 2000 ? 5000 : 2000);
}

/** Calls `fn` with every status answer (and the latest at once); returns the unsubscribe. */
export function subscribeStatus(fn) {
  subscribers.add(fn);
  if (latest) fn(latest);
  if (!timer && !inFlight) timer = setTimeout(pollStatus, 0);
  return () => subscribers.delete(fn);
}

/** Asks for a status answer now (after pause/resume, say). */
export function refreshStatus() {
  if (timer) clearTimeout(timer);
  timer = setTimeout(pollStatus, 0);
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden) refreshStatus();
});
