//! Change streams: a reader that follows one table's change log from a position, for
//! `GET /v1/egress/{table}`.
//!
//! A [`ChangeReader`] hands out the table's log entries in sequence order, one chunk per
//! entry, each with the entry's sequence number. It starts at `beginning` (every entry),
//! `now` (only commits after it opened) or after a sequence number `N` (entries above `N`:
//! a reader that reconnects with the last number it saw gets no gap and no duplicate, also
//! across restarts, because the log is durable and sequence numbers never repeat).
//!
//! The store is the buffer. A reader reads the durable log in bounded steps
//! ([`READ_STEP`] entries per read transaction) and waits on the table's
//! [`TableData::watch_sequence`] when it has caught up, so it only ever sees durable,
//! visible commits, and a slow reader never slows a source or loses a change
//! (`backpressure=true`). With `backpressure=false`, a reader that falls more than
//! [`DROP_WINDOW`] chunks behind the head skips the oldest ones, counts them in
//! `siphon_egress_dropped_chunks_total{table}` and reports them on its next chunk.
//!
//! Readers near the head share the encoding of each entry through a [`ChunkCache`]
//! (one per engine): per (table, sequence, format) the first reader encodes, the others
//! wait for it and reuse the bytes.
//!
//! Invariants: chunks are handed out in increasing sequence order, each at most once per
//! reader; with backpressure every entry from the start position on is handed out; a
//! sequence number above the table's head is a position in the future (the reader waits
//! for `N + 1`); entries missing below the first stored entry belong to a dropped
//! incarnation of the table and are passed over (they are not counted as drops).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use tokio::sync::{OnceCell, watch};

use crate::Engine;
use crate::observe::Observer;
use crate::store::{LogEntry, Store, StoreError};
use crate::tables::TableRef;

/// A reader with `backpressure=false` keeps at most this many chunks pending.
pub const DROP_WINDOW: u64 = 100;
/// Log entries read per store read transaction.
pub const READ_STEP: usize = 32;
/// Default size of the engine's shared cache of encoded chunks.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// Where a reader starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Every entry of the log.
    Beginning,
    /// Only commits after the reader opened.
    Now,
    /// Entries with a sequence number above this one.
    After(u64),
}

impl Start {
    /// Parses `from=`: `beginning`, `now` or a sequence number.
    pub fn parse(text: &str) -> Option<Start> {
        match text.to_ascii_lowercase().as_str() {
            "beginning" => Some(Start::Beginning),
            "now" => Some(Start::Now),
            n => n.parse().ok().map(Start::After),
        }
    }
}

/// How a reader reads.
#[derive(Clone, Copy, Debug)]
pub struct ReaderOptions {
    /// Where it starts.
    pub start: Start,
    /// `true`: every change, at the reader's pace. `false`: at most [`DROP_WINDOW`]
    /// pending chunks, the oldest skipped beyond that.
    pub backpressure: bool,
    /// `false`: the reader ends after the last entry committed when it opened.
    pub follow: bool,
    /// When set, a reader that waited this long for a change returns [`Event::Idle`].
    pub idle: Option<Duration>,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            start: Start::Now,
            backpressure: true,
            follow: true,
            idle: None,
        }
    }
}

/// Why a reader could not open or go on.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// No table has that name.
    #[error("unknown table `{0}`")]
    UnknownTable(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Encoding a chunk failed.
    #[error("encoding log entry {sequence}: {message}")]
    Encode {
        /// The entry.
        sequence: u64,
        /// Why.
        message: String,
    },
    /// Something that should not happen.
    #[error("internal error: {0}")]
    Internal(String),
}

/// One log entry, decoded.
#[derive(Clone, Debug)]
pub struct Change {
    /// The entry's sequence number.
    pub sequence: u64,
    /// Chunks skipped (backpressure=false) since the reader's previous chunk.
    pub dropped: u64,
    /// The records; may carry the last column [`crate::keyed::OP_COLUMN`].
    pub batch: RecordBatch,
}

/// One log entry, encoded (shared with other readers through the [`ChunkCache`]).
#[derive(Clone, Debug)]
pub struct EncodedChange {
    /// The entry's sequence number.
    pub sequence: u64,
    /// Chunks skipped (backpressure=false) since the reader's previous chunk.
    pub dropped: u64,
    /// What the encoder made of the entry's batch.
    pub bytes: Arc<[u8]>,
}

/// What a reader hands out next.
#[derive(Clone, Debug)]
pub enum Event<T> {
    /// The next chunk.
    Chunk(T),
    /// No change arrived for [`ReaderOptions::idle`].
    Idle,
}

/// Turns an entry's batch into the bytes readers share.
pub type Encode = dyn Fn(&RecordBatch) -> Result<Vec<u8>, String> + Send + Sync;

impl Engine {
    /// Opens a reader of `table`'s changes.
    pub async fn egress(
        &self,
        table: &str,
        options: ReaderOptions,
    ) -> Result<ChangeReader, EgressError> {
        let data = self
            .table(table)
            .ok_or_else(|| EgressError::UnknownTable(table.to_string()))?;
        ChangeReader::open(
            data,
            self.store.clone(),
            self.observer.clone(),
            self.egress_cache.clone(),
            self.shutdown.subscribe(),
            options,
        )
        .await
    }

    /// The shared cache of encoded chunks.
    pub fn egress_cache(&self) -> &ChunkCache {
        &self.egress_cache
    }
}

/// Follows one table's change log. Dropping it closes it.
pub struct ChangeReader {
    name: Arc<str>,
    store: Arc<Store>,
    observer: Arc<Observer>,
    cache: Arc<ChunkCache>,
    head: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    /// The next sequence number to hand out.
    next: u64,
    /// `follow=false`: the last sequence number to hand out.
    end: Option<u64>,
    backpressure: bool,
    idle: Option<Duration>,
    /// Skipped since the last chunk handed out.
    dropped: u64,
    /// Entries read ahead, in order, all at or above `next` once trimmed.
    buffer: VecDeque<LogEntry>,
}

impl std::fmt::Debug for ChangeReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeReader")
            .field("table", &self.name)
            .field("next", &self.next)
            .field("end", &self.end)
            .finish()
    }
}

impl Drop for ChangeReader {
    fn drop(&mut self) {
        self.observer.egress_readers(&self.name, -1);
    }
}

/// An internal outcome of fetching an entry: the entry, or where the log really goes on.
enum Fetch {
    Entry(LogEntry),
    /// No entry `next` in the log; the next stored one is this (a dropped incarnation).
    Jump(u64),
}

impl ChangeReader {
    /// A reader of `table` over `store` (what [`Engine::egress`] builds).
    pub async fn open(
        table: TableRef,
        store: Arc<Store>,
        observer: Arc<Observer>,
        cache: Arc<ChunkCache>,
        shutdown: watch::Receiver<bool>,
        options: ReaderOptions,
    ) -> Result<ChangeReader, EgressError> {
        let head = table.watch_sequence();
        let now = *head.borrow();
        let next = match options.start {
            Start::Beginning => 1,
            Start::Now => now.saturating_add(1),
            Start::After(n) => n.saturating_add(1),
        };
        let name: Arc<str> = Arc::from(table.def.name.as_str());
        observer.egress_readers(&name, 1);
        let mut reader = ChangeReader {
            name,
            store,
            observer,
            cache,
            head,
            shutdown,
            next,
            end: (!options.follow).then_some(now),
            backpressure: options.backpressure,
            idle: options.idle,
            dropped: 0,
            buffer: VecDeque::new(),
        };
        // A position below the first stored entry (the log of a dropped incarnation is
        // gone): start at the first stored one, so no phantom gap is counted as drops.
        if next <= now {
            let entries = reader.read(next, 1).await?;
            if let Some(first) = entries.into_iter().next() {
                reader.next = first.sequence;
                reader.buffer.push_back(first);
            }
        }
        Ok(reader)
    }

    /// The next sequence number this reader will hand out (or wait for).
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The next change, decoded; `None` when the reader ended (`follow=false` reached its
    /// end, the engine shut down).
    pub async fn next(&mut self) -> Result<Option<Event<Change>>, EgressError> {
        loop {
            let Some(seq) = self.advance().await? else {
                return Ok(None);
            };
            let Some(seq) = seq else {
                return Ok(Some(Event::Idle));
            };
            match self.fetch(seq).await? {
                Fetch::Jump(to) => self.next = to,
                Fetch::Entry(entry) => {
                    let change = Change {
                        sequence: entry.sequence,
                        dropped: std::mem::take(&mut self.dropped),
                        batch: entry.batch,
                    };
                    self.next = change.sequence + 1;
                    return Ok(Some(Event::Chunk(change)));
                }
            }
        }
    }

    /// The next change, encoded by `encode` under the cache key `format`: readers of the
    /// same table and format share one encoding per entry.
    pub async fn next_encoded(
        &mut self,
        format: &'static str,
        encode: &Encode,
    ) -> Result<Option<Event<EncodedChange>>, EgressError> {
        loop {
            let Some(seq) = self.advance().await? else {
                return Ok(None);
            };
            let Some(seq) = seq else {
                return Ok(Some(Event::Idle));
            };
            let key = (self.name.clone(), seq, format);
            let cell = self.cache.cell(&key);
            let mut jump = None;
            let (this, jump_to) = (&mut *self, &mut jump);
            let encoded = cell
                .get_or_try_init(move || async move {
                    match this.fetch(seq).await? {
                        Fetch::Jump(to) => {
                            *jump_to = Some(to);
                            Err(EgressError::Internal("jump".into()))
                        }
                        Fetch::Entry(entry) => {
                            let bytes =
                                encode(&entry.batch).map_err(|message| EgressError::Encode {
                                    sequence: seq,
                                    message,
                                })?;
                            Ok::<Arc<[u8]>, EgressError>(Arc::from(bytes))
                        }
                    }
                })
                .await;
            if let Some(to) = jump {
                self.next = to;
                continue;
            }
            let bytes = encoded?.clone();
            self.cache.account(&key, bytes.len());
            // Entries read ahead that other readers encoded are no longer needed.
            while self.buffer.front().is_some_and(|e| e.sequence <= seq) {
                self.buffer.pop_front();
            }
            self.next = seq + 1;
            return Ok(Some(Event::Chunk(EncodedChange {
                sequence: seq,
                dropped: std::mem::take(&mut self.dropped),
                bytes,
            })));
        }
    }

    /// Waits until the entry `next` is committed (or the reader ends, `None`), applies the
    /// drop window, and returns the sequence to hand out; `Some(None)` when it waited
    /// [`ReaderOptions::idle`] in vain. Cancel-safe: state changes only after the wait.
    async fn advance(&mut self) -> Result<Option<Option<u64>>, EgressError> {
        let deadline = self.idle.map(|d| tokio::time::Instant::now() + d);
        loop {
            if self.end.is_some_and(|end| self.next > end) || *self.shutdown.borrow() {
                return Ok(None);
            }
            let committed = *self.head.borrow_and_update();
            if committed >= self.next {
                let head = self.end.map_or(committed, |end| committed.min(end));
                let pending = head - self.next + 1;
                if !self.backpressure && pending > DROP_WINDOW {
                    let skipped = pending - DROP_WINDOW;
                    self.next += skipped;
                    self.dropped += skipped;
                    self.observer.egress_dropped(&self.name, skipped);
                    while self.buffer.front().is_some_and(|e| e.sequence < self.next) {
                        self.buffer.pop_front();
                    }
                }
                return Ok(Some(Some(self.next)));
            }
            let (head, shutdown) = (&mut self.head, &mut self.shutdown);
            let changed = async move {
                tokio::select! {
                    r = head.changed() => r.is_ok(),
                    r = shutdown.changed() => r.is_ok(),
                }
            };
            let alive = match deadline {
                None => changed.await,
                Some(at) => match tokio::time::timeout_at(at, changed).await {
                    Ok(alive) => alive,
                    Err(_) => return Ok(Some(None)),
                },
            };
            if !alive {
                // The table or the engine is gone.
                return Ok(None);
            }
        }
    }

    /// The entry `seq` from the read-ahead buffer or the store (reading up to
    /// [`READ_STEP`] entries, never past the committed head).
    async fn fetch(&mut self, seq: u64) -> Result<Fetch, EgressError> {
        while self.buffer.front().is_some_and(|e| e.sequence < seq) {
            self.buffer.pop_front();
        }
        if self.buffer.is_empty() {
            let committed = *self.head.borrow();
            let limit = committed.saturating_sub(seq).saturating_add(1);
            let limit = usize::try_from(limit).unwrap_or(usize::MAX).min(READ_STEP);
            let entries = self.read(seq, limit).await?;
            self.buffer.extend(entries);
        }
        match self.buffer.front() {
            Some(e) if e.sequence == seq => {
                Ok(Fetch::Entry(self.buffer.pop_front().expect("front exists")))
            }
            Some(e) => Ok(Fetch::Jump(e.sequence)),
            None => Err(EgressError::Internal(format!(
                "log entry {seq} of table {} is committed but not in the store",
                self.name
            ))),
        }
    }

    /// Up to `limit` entries from `from` on, read on a blocking thread.
    async fn read(&self, from: u64, limit: usize) -> Result<Vec<LogEntry>, EgressError> {
        let store = self.store.clone();
        let name = self.name.clone();
        tokio::task::spawn_blocking(move || {
            store.read_log_range(&name, from.saturating_sub(1), limit.max(1))
        })
        .await
        .map_err(|e| EgressError::Internal(e.to_string()))?
        .map_err(EgressError::from)
    }
}

type CacheKey = (Arc<str>, u64, &'static str);

struct Slot {
    cell: Arc<OnceCell<Arc<[u8]>>>,
    bytes: usize,
}

#[derive(Default)]
struct CacheInner {
    slots: HashMap<CacheKey, Slot>,
    order: VecDeque<CacheKey>,
    bytes: usize,
}

/// Encoded chunks shared by readers, per (table, sequence, format), bounded by total bytes
/// (and entries); the oldest inserted go first. A reader that holds a slot's cell keeps
/// its bytes alive after eviction; eviction only stops later readers from sharing them.
pub struct ChunkCache {
    max_bytes: usize,
    max_entries: usize,
    inner: Mutex<CacheInner>,
}

impl std::fmt::Debug for ChunkCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (entries, bytes) = self.usage();
        write!(f, "ChunkCache({entries} entries, {bytes} bytes)")
    }
}

impl ChunkCache {
    /// A cache holding at most `max_bytes` of encoded chunks.
    pub fn new(max_bytes: usize) -> Self {
        ChunkCache {
            max_bytes,
            max_entries: 16_384,
            inner: Mutex::new(CacheInner::default()),
        }
    }

    /// `(entries, bytes)` held.
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.inner.lock().expect("chunk cache lock");
        (inner.slots.len(), inner.bytes)
    }

    /// The cell for a key, created empty when missing.
    fn cell(&self, key: &CacheKey) -> Arc<OnceCell<Arc<[u8]>>> {
        let mut inner = self.inner.lock().expect("chunk cache lock");
        if let Some(slot) = inner.slots.get(key) {
            return slot.cell.clone();
        }
        let cell = Arc::new(OnceCell::new());
        inner.slots.insert(
            key.clone(),
            Slot {
                cell: cell.clone(),
                bytes: 0,
            },
        );
        inner.order.push_back(key.clone());
        self.evict(&mut inner);
        cell
    }

    /// Counts a filled cell's bytes (once) and evicts beyond the bounds.
    fn account(&self, key: &CacheKey, bytes: usize) {
        let mut inner = self.inner.lock().expect("chunk cache lock");
        let Some(slot) = inner.slots.get_mut(key) else {
            return;
        };
        if slot.bytes != 0 || slot.cell.get().is_none() {
            return;
        }
        slot.bytes = bytes.max(1);
        inner.bytes += bytes.max(1);
        self.evict(&mut inner);
    }

    fn evict(&self, inner: &mut CacheInner) {
        while inner.bytes > self.max_bytes || inner.slots.len() > self.max_entries {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(slot) = inner.slots.remove(&oldest) {
                inner.bytes -= slot.bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests;
