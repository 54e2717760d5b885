// A live tail of one table's changes through `GET /v1/egress/{table}`, read with a
// ReadableStream reader, one JSON object per CRLF-terminated line.
//
// It starts at once with `from=now`. `from=N` streams the commits *after* N, so on
// reconnect it asks for `from=<last sequence_number seen>`: nothing is repeated and
// nothing skipped. Before the first change it resumes from the stream's
// `x-siphon-start-after` header, which says where a `from=now` stream started. The server
// sends a keepalive `{}` at least every 3 s; 10 s of silence counts as a lost connection.

import { apiFetch } from './api.js';
import { sleep } from './dom.js';

const SILENCE_MS = 10000;

export class Tail {
  /**
   * `onChange({sequence_number, json_data, dropped})` for each change;
   * `onStatus(kind, text)` with kind `connecting`, `live` or `retrying`.
   */
  constructor(table, { onChange, onStatus, from = 'now' }) {
    this.table = table;
    this.onChange = onChange;
    this.onStatus = onStatus;
    this.from = from;
    this.last = null; // last sequence number handed out
    this.stopped = false;
    this.controller = null;
  }

  start() {
    this.run();
    return this;
  }

  stop() {
    this.stopped = true;
    this.controller?.abort();
  }

  async run() {
    let backoff = 500;
    while (!this.stopped) {
      const controller = new AbortController();
      this.controller = controller;
      let watchdog = null;
      const arm = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => controller.abort(), SILENCE_MS);
      };
      try {
        this.onStatus('connecting', this.from === 'now' ? 'connecting' : `resuming after #${this.from}`);
        arm();
        const url = `/v1/egress/${encodeURIComponent(this.table)}?from=${encodeURIComponent(this.from)}`;
        const response = await apiFetch(url, { signal: controller.signal });
        const startAfter = response.headers.get('x-siphon-start-after');
        if (this.last === null && startAfter !== null && /^\d+$/.test(startAfter)) {
          // Where this stream starts: the place to resume from if it drops before a change.
          this.from = startAfter;
        }
        this.onStatus('live', `live, after #${this.from}`);
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          arm();
          buffer += value;
          let end;
          while ((end = buffer.indexOf('\n')) >= 0) {
            const line = buffer.slice(0, end).trim();
            buffer = buffer.slice(end + 1);
            if (!line || line === '{}') continue;
            const change = JSON.parse(line);
            const seq = change.sequence_number;
            if (this.last !== null && seq <= this.last) continue; // never twice
            this.last = seq;
            this.from = String(seq);
            backoff = 500;
            this.onChange(change);
            this.onStatus('live', `live, last change #${seq}`);
          }
        }
      } catch (error) {
        if (this.stopped) break;
        if (error.status === 404) {
          // The table is gone: nothing to follow.
          this.onStatus('retrying', `stopped: ${error.message}`);
          break;
        }
        this.onStatus('retrying', `connection lost (${error.name === 'AbortError' ? 'no data for 10 s' : error.message}); retrying`);
      } finally {
        clearTimeout(watchdog);
      }
      if (this.stopped) break;
      this.onStatus('retrying', `reconnecting in ${(backoff / 1000).toFixed(1)} s`);
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 10000);
    }
  }
}
