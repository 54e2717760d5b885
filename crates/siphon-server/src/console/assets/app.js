// The console's shell: the API key, the header (pause/resume of all inputs), and the
// router (#/ sources, #/table/NAME, #/sql) that mounts one page at a time. A page module
// exports `mount(main, params)` and returns a function that stops its timers and streams.

import { apiKey, session, setApiKey, setPaused, subscribeStatus, refreshStatus } from './api.js';
import { fill, h } from './dom.js';
import * as sources from './sources.js';
import * as table from './table.js';
import * as sql from './sql.js';

const main = document.getElementById('main');
const keyPanel = document.getElementById('key-panel');
const keyForm = document.getElementById('key-form');
const keyInput = document.getElementById('key-input');
const keyMessage = document.getElementById('key-message');
const pauseButton = document.getElementById('pause-toggle');
const inputsState = document.getElementById('inputs-state');

let unmount = null;
let paused = null;

function route() {
  const hash = location.hash || '#/';
  if (hash.startsWith('#/table/')) {
    let name = hash.slice(8);
    try {
      name = decodeURIComponent(name);
    } catch {
      // not percent-encoded as the console writes it: take it as it is
    }
    return { page: table, name: 'sources', params: { table: name } };
  }
  if (hash === '#/sql' || hash.startsWith('#/sql?')) {
    const q = new URLSearchParams(hash.slice(6)).get('q');
    return { page: sql, name: 'sql', params: { q } };
  }
  return { page: sources, name: 'sources', params: {} };
}

function render({ focus = true } = {}) {
  if (unmount) unmount();
  unmount = null;
  const { page, name, params } = route();
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  fill(main);
  try {
    unmount = page.mount(main, params) || null;
  } catch (error) {
    fill(main, h('p', { class: 'error', role: 'alert' }, `The page failed: ${error.message}`));
  }
  if (focus) {
    // Keyboard and screen-reader users land on the new page's heading.
    const heading = main.querySelector('h1');
    if (heading) {
      heading.setAttribute('tabindex', '-1');
      heading.focus({ preventScroll: true });
    }
    window.scrollTo(0, 0);
  }
}

function showKeyPanel(message) {
  keyMessage.textContent = message;
  keyPanel.hidden = false;
  keyInput.value = '';
  keyInput.focus();
}

keyForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  setApiKey(keyInput.value.trim());
  let s;
  try {
    s = await session();
  } catch (error) {
    showKeyPanel(`Cannot reach siphon: ${error.message}`);
    return;
  }
  if (s.authorized) {
    keyPanel.hidden = true;
    start();
  } else {
    showKeyPanel('That key is not valid for this server. Enter another one.');
  }
});

document.getElementById('key-forget').addEventListener('click', () => {
  setApiKey('');
  showKeyPanel('The key was forgotten. Enter a key to use the console.');
});

document.getElementById('key-button').addEventListener('click', () => {
  if (keyPanel.hidden) showKeyPanel(apiKey() ? 'Enter another key, or forget this one.' : 'Enter an API key.');
  else keyPanel.hidden = true;
});

window.addEventListener('siphon:unauthorized', (event) => {
  showKeyPanel(`The server refused the key: ${event.detail}`);
});

document.querySelector('.skip').addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});

function showInputs(state) {
  if (!state.ok) return;
  paused = Boolean(state.status.paused);
  pauseButton.hidden = false;
  pauseButton.textContent = paused ? 'Resume all inputs' : 'Pause all inputs';
  inputsState.textContent = paused ? 'Inputs paused' : 'Inputs running';
  inputsState.className = paused ? 'inputs paused' : 'inputs running';
}

pauseButton.addEventListener('click', async () => {
  pauseButton.disabled = true;
  try {
    const answer = await setPaused(!paused);
    showInputs({ ok: true, status: { paused: answer.paused } });
    refreshStatus();
  } catch (error) {
    inputsState.textContent = `Pause/resume failed: ${error.message}`;
  } finally {
    pauseButton.disabled = false;
  }
});

let started = false;

async function start() {
  if (!started) {
    started = true;
    subscribeStatus(showInputs);
    window.addEventListener('hashchange', () => render());
  }
  render({ focus: false });
}

async function boot() {
  let s;
  try {
    s = await session();
  } catch (error) {
    fill(main, h('p', { class: 'error', role: 'alert' }, `Cannot reach siphon: ${error.message}`));
    return;
  }
  // The key button only where the API takes keys.
  document.getElementById('key-button').hidden = !s.auth_required;
  if (s.authorized) {
    start();
  } else {
    fill(main, h('h1', null, 'siphon console'), h('p', null, 'Enter the API key to continue.'));
    showKeyPanel(apiKey()
      ? 'The saved key is not valid for this server. Enter another one.'
      : 'This server needs an API key for its API.');
  }
}

boot();
