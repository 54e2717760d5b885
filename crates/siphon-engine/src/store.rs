//! The embedded store: one redb file holding the catalog, every table's change log, every
//! source's state and the dead letters.
//!
//! The store's one promise: [`Store::commit`] writes a table's new records, the state of the
//! source that produced them and that poll's dead letters in ONE durable transaction. After
//! a `kill -9` at any instant, either all of a poll is there or none of it, so a restarted
//! source neither loses nor repeats a record.
//!
//! Layout (redb tables):
//! * `catalog`: `"connection:<name>"` / `"table:<name>"` → definition as JSON.
//! * `log`: `(table, sequence number)` → one committed batch ([`LogEntry`] encoding). Each
//!   table's sequence numbers start at 1 and increase by one per commit, with no gaps.
//! * `sequence_floor`: table → `(last sequence, next record offset)` of the table's
//!   dropped incarnations. A table that is dropped (or replaced) and created again
//!   continues its numbering from there, so a sequence number never names two different
//!   batches of one table name: a reader resuming with `from=N` cannot be handed other
//!   data under an old number.
//! * `unkeyed_deletes`: `(table, sequence)` → how many delete rows that entry holds, for
//!   the entries of tables without a PRIMARY KEY that remove rows (pushed deletes). A
//!   reader of such a table reads these entries first to know which rows are gone; the
//!   table's other entries are pure inserts.
//! * `source_state`: table → the source's state (opaque bytes owned by the source).
//! * `dead_letters_by_table`: `(table, increasing id)` → JSON of [`DeadLetterRow`], kept
//!   within [`Retention`] (rows per table, age), oldest dropped first, and removed with
//!   the table. (Stores written before this layout had one global `dead_letters` table;
//!   [`Store::open`] moves its rows over once.)
//!
//! This is the narrow interface a second backend (NATS JetStream) implements later: commit
//! a batch with state, read by sequence, keep a catalog.

use std::path::Path;

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use serde::{Deserialize, Serialize};

const CATALOG: TableDefinition<&str, &str> = TableDefinition::new("catalog");
const LOG: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("log");
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("source_state");
/// The layout before dead letters were kept per table; migrated on open.
const LEGACY_DEAD_LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("dead_letters");
const DEAD_LETTERS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("dead_letters_by_table");
const SEQUENCE_FLOOR: TableDefinition<&str, (u64, u64)> = TableDefinition::new("sequence_floor");
const UNKEYED_DELETES: TableDefinition<(&str, u64), u64> = TableDefinition::new("unkeyed_deletes");
/// Per sink: the JSON of its [`SinkPosition`].
const SINK_POSITIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sink_positions");

/// The memory redb may use to cache the file's pages. redb's default is 1 GiB, which a
/// write-heavy server fills with pages it has just written and never reads again; reads
/// (queries, change readers) stream the log and gain little from a larger cache.
pub const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// The file name of the store inside the data directory.
pub const STORE_FILE: &str = "siphon.redb";

/// A failure of the store. None of them is retryable by the caller without operator action,
/// except `Busy`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb reported an error (I/O, corruption, a lock held by another process).
    #[error("store: {0}")]
    Db(#[from] redb::Error),
    /// The data directory could not be created or opened.
    #[error("data directory {path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another process holds the store (a running `siphon run`, or another command).
    #[error(
        "{path} is in use by another siphon process (a running `siphon run`?); only one process may hold a data directory: stop it, or go through its HTTP API (--server)"
    )]
    InUse {
        /// The store file.
        path: String,
    },
    /// The thread that writes polls stopped (a bug: it only stops with the engine).
    #[error("the store's commit thread stopped")]
    Closed,
    /// A stored value could not be decoded (a bug or a corrupted file).
    #[error("stored value for {what} is unreadable: {message}")]
    Corrupt {
        /// What was being read.
        what: String,
        /// Why it failed.
        message: String,
    },
}

macro_rules! db_err {
    ($e:expr) => {
        $e.map_err(|e| StoreError::Db(e.into()))
    };
}

/// A record that did not fit its table, kept with the reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterRow {
    /// When it was rejected.
    pub timestamp: DateTime<Utc>,
    /// The table it was meant for.
    pub table_name: String,
    /// Why it was rejected.
    pub reason: String,
    /// The offending record as received.
    pub raw: String,
}

/// Everything one poll (or one push) commits to one table.
pub struct Commit<'a> {
    /// The table.
    pub table: &'a str,
    /// New records; `None` or an empty batch stores no log entry.
    pub batch: Option<&'a RecordBatch>,
    /// The source's new state, if it changed.
    pub state: Option<&'a [u8]>,
    /// Records rejected by this poll.
    pub dead_letters: &'a [DeadLetterRow],
    /// For a table without a PRIMARY KEY: how many rows of `batch` are deletes (its
    /// [`crate::keyed::OP_COLUMN`] is -1). 0 for keyed tables and for pure inserts.
    pub unkeyed_deletes: u64,
}

/// What a commit added to a table's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitInfo {
    /// The log entry's sequence number.
    pub sequence: u64,
    /// The offset of its first record within the table (records are numbered from 0).
    pub first_record: u64,
    /// When it committed.
    pub committed_at: DateTime<Utc>,
    /// Records in the entry.
    pub records: u64,
}

/// One entry of a table's change log.
#[derive(Clone, Debug)]
pub struct LogEntry {
    /// Sequence number.
    pub sequence: u64,
    /// Offset of the first record.
    pub first_record: u64,
    /// Commit time.
    pub committed_at: DateTime<Utc>,
    /// The records.
    pub batch: RecordBatch,
}

/// How many dead letters the store keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Dead letters kept per table; the oldest go first.
    pub dead_letters_per_table: u64,
    /// Dead letters older than this are dropped (checked at each commit of their table).
    pub dead_letter_max_age: std::time::Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            dead_letters_per_table: 10_000,
            dead_letter_max_age: std::time::Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Where a sink's publishing stands: every change of its input up to `sequence` is
/// acknowledged by the target named `target` (see the sink module).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkPosition {
    /// The input and destination the position belongs to.
    pub target: String,
    /// The last sequence number of the input published whole.
    pub sequence: u64,
}

/// The embedded store.
pub struct Store {
    db: Database,
    retention: Retention,
    /// Durable write transactions of commits (polls, pushes, views) since open.
    commit_transactions: std::sync::atomic::AtomicU64,
}

impl Store {
    /// Opens (or creates) the store in `dir` with the default [`Retention`].
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Store::open_with(dir, Retention::default())
    }

    /// Opens (or creates) the store in `dir`.
    pub fn open_with(dir: &Path, retention: Retention) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join(STORE_FILE);
        let db = match Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
        {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::InUse {
                    path: path.display().to_string(),
                });
            }
            Err(e) => return Err(StoreError::Db(e.into())),
        };
        let txn = db_err!(db.begin_write())?;
        {
            db_err!(txn.open_table(CATALOG))?;
            db_err!(txn.open_table(LOG))?;
            db_err!(txn.open_table(STATE))?;
            db_err!(txn.open_table(DEAD_LETTERS))?;
            db_err!(txn.open_table(SEQUENCE_FLOOR))?;
            db_err!(txn.open_table(UNKEYED_DELETES))?;
            db_err!(txn.open_table(SINK_POSITIONS))?;
            migrate_legacy_dead_letters(&txn)?;
        }
        db_err!(txn.commit())?;
        Ok(Store {
            db,
            retention,
            commit_transactions: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Commits records, state and dead letters of one poll atomically and durably.
    /// Returns where the records landed, or `None` when there were none.
    pub fn commit(&self, commit: &Commit<'_>) -> Result<Option<CommitInfo>, StoreError> {
        let mut infos = self.commit_group(std::slice::from_ref(commit))?;
        Ok(infos.pop().flatten())
    }

    /// Commits several commits in ONE durable transaction (one fsync): all of them or none.
    /// Commits to the same table take consecutive sequence numbers in slice order. Returns
    /// where each one's records landed.
    pub fn commit_group(
        &self,
        commits: &[Commit<'_>],
    ) -> Result<Vec<Option<CommitInfo>>, StoreError> {
        let txn = db_err!(self.db.begin_write())?;
        let mut infos = Vec::with_capacity(commits.len());
        {
            let mut log = db_err!(txn.open_table(LOG))?;
            let floor = db_err!(txn.open_table(SEQUENCE_FLOOR))?;
            let mut state_table = db_err!(txn.open_table(STATE))?;
            let mut letters = db_err!(txn.open_table(DEAD_LETTERS))?;
            let mut unkeyed = db_err!(txn.open_table(UNKEYED_DELETES))?;
            for commit in commits {
                let mut info = None;
                if let Some(batch) = commit.batch.filter(|b| b.num_rows() > 0) {
                    // A table's numbering continues after its last entry, or after where its
                    // dropped incarnations stopped.
                    let (last, first_record) = match log_end(&log, commit.table)? {
                        Some(end) => end,
                        None => db_err!(floor.get(commit.table))?
                            .map(|v| v.value())
                            .unwrap_or((0, 0)),
                    };
                    let sequence = last + 1;
                    let committed_at = Utc::now();
                    let bytes = encode_entry(first_record, committed_at, batch)?;
                    db_err!(log.insert((commit.table, sequence), bytes.as_slice()))?;
                    if commit.unkeyed_deletes > 0 {
                        db_err!(unkeyed.insert((commit.table, sequence), commit.unkeyed_deletes))?;
                    }
                    info = Some(CommitInfo {
                        sequence,
                        first_record,
                        committed_at,
                        records: batch.num_rows() as u64,
                    });
                }
                if let Some(state) = commit.state {
                    db_err!(state_table.insert(commit.table, state))?;
                }
                let range = (commit.table, 0)..=(commit.table, u64::MAX);
                if !commit.dead_letters.is_empty() {
                    let next = match db_err!(letters.range(range.clone()))?.next_back() {
                        Some(last) => db_err!(last)?.0.value().1 + 1,
                        None => 0,
                    };
                    for (id, letter) in (next..).zip(commit.dead_letters) {
                        let json = serde_json::to_vec(letter).expect("dead letters serialize");
                        db_err!(letters.insert((commit.table, id), json.as_slice()))?;
                    }
                }
                // Every poll trims (age limits apply to polls that rejected nothing too); a
                // push has no dead letters and no state, and skips it.
                if !commit.dead_letters.is_empty() || commit.state.is_some() {
                    self.trim_dead_letters(&mut letters, commit.table)?;
                }
                infos.push(info);
            }
        }
        db_err!(txn.commit())?;
        self.commit_transactions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(infos)
    }

    /// Durable write transactions of commits since the store was opened: with group
    /// commit, fewer than the polls and pushes they hold.
    pub fn commit_transactions(&self) -> u64 {
        self.commit_transactions
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The saved state of a table's source.
    pub fn state(&self, table: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = db_err!(self.db.begin_read())?;
        let t = db_err!(txn.open_table(STATE))?;
        Ok(db_err!(t.get(table))?.map(|v| v.value().to_vec()))
    }

    /// Where a sink's publishing stands, if it ever published.
    pub fn sink_position(&self, sink: &str) -> Result<Option<SinkPosition>, StoreError> {
        let txn = db_err!(self.db.begin_read())?;
        let t = db_err!(txn.open_table(SINK_POSITIONS))?;
        let Some(bytes) = db_err!(t.get(sink))? else {
            return Ok(None);
        };
        serde_json::from_slice(bytes.value())
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                what: format!("the position of sink {sink}"),
                message: e.to_string(),
            })
    }

    /// Records durably where a sink's publishing stands.
    pub fn set_sink_position(&self, sink: &str, position: &SinkPosition) -> Result<(), StoreError> {
        let json = serde_json::to_vec(position).expect("positions serialize");
        let txn = db_err!(self.db.begin_write())?;
        {
            let mut t = db_err!(txn.open_table(SINK_POSITIONS))?;
            db_err!(t.insert(sink, json.as_slice()))?;
        }
        db_err!(txn.commit())?;
        Ok(())
    }

    /// A table's log entries with sequence numbers from `from` on, in order.
    pub fn read_log(&self, table: &str, from: u64) -> Result<Vec<LogEntry>, StoreError> {
        self.read_log_bounded(table, from, usize::MAX)
    }

    /// At most `max_entries` of a table's log entries with sequence numbers above `after`,
    /// in order, from one read transaction: a reader far behind reads its way forward in
    /// bounded steps instead of loading the whole log.
    pub fn read_log_range(
        &self,
        table: &str,
        after: u64,
        max_entries: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        match after.checked_add(1) {
            Some(from) => self.read_log_bounded(table, from, max_entries),
            None => Ok(Vec::new()),
        }
    }

    fn read_log_bounded(
        &self,
        table: &str,
        from: u64,
        max_entries: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let txn = db_err!(self.db.begin_read())?;
        let log = db_err!(txn.open_table(LOG))?;
        let mut entries = Vec::new();
        for item in db_err!(log.range((table, from)..=(table, u64::MAX)))?.take(max_entries) {
            let (key, value) = db_err!(item)?;
            let (_, sequence) = key.value();
            let (first_record, committed_at, batch) =
                decode_entry(value.value()).map_err(|message| StoreError::Corrupt {
                    what: format!("log entry {sequence} of table {table}"),
                    message,
                })?;
            entries.push(LogEntry {
                sequence,
                first_record,
                committed_at,
                batch,
            });
        }
        Ok(entries)
    }

    /// The header of every log entry of a table, without decoding the records.
    pub fn log_meta(&self, table: &str) -> Result<Vec<CommitInfo>, StoreError> {
        let txn = db_err!(self.db.begin_read())?;
        let log = db_err!(txn.open_table(LOG))?;
        let mut out = Vec::new();
        for item in db_err!(log.range((table, 0)..=(table, u64::MAX)))? {
            let (key, value) = db_err!(item)?;
            let (_, sequence) = key.value();
            let corrupt = || StoreError::Corrupt {
                what: format!("log entry {sequence} of table {table}"),
                message: "header unreadable".into(),
            };
            let (first, micros, rows) = decode_header(value.value()).ok_or_else(corrupt)?;
            let at = DateTime::from_timestamp_micros(micros).ok_or_else(corrupt)?;
            out.push(CommitInfo {
                sequence,
                first_record: first,
                committed_at: at,
                records: rows,
            });
        }
        Ok(out)
    }

    /// Decodes a table's log entries in order, from one consistent snapshot, handing each
    /// batch to `each` until it returns false. Memory holds one entry at a time.
    pub fn scan_log(
        &self,
        table: &str,
        each: &mut dyn FnMut(RecordBatch) -> bool,
    ) -> Result<(), StoreError> {
        self.snapshot()?
            .scan_log(table, None, &mut |_, batch| each(batch))
    }

    /// Every dead letter, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetterRow>, StoreError> {
        let txn = db_err!(self.db.begin_read())?;
        let t = db_err!(txn.open_table(DEAD_LETTERS))?;
        let mut rows = Vec::new();
        for item in db_err!(t.iter())? {
            let (key, value) = db_err!(item)?;
            let (table, id) = key.value();
            rows.push(
                serde_json::from_slice(value.value()).map_err(|e| StoreError::Corrupt {
                    what: format!("dead letter {id} of table {table}"),
                    message: e.to_string(),
                })?,
            );
        }
        rows.sort_by_key(|r: &DeadLetterRow| r.timestamp);
        Ok(rows)
    }

    /// Every catalog entry as `(key, JSON)`.
    pub fn catalog(&self) -> Result<Vec<(String, String)>, StoreError> {
        let txn = db_err!(self.db.begin_read())?;
        let t = db_err!(txn.open_table(CATALOG))?;
        let mut out = Vec::new();
        for item in db_err!(t.iter())? {
            let (k, v) = db_err!(item)?;
            out.push((k.value().to_string(), v.value().to_string()));
        }
        Ok(out)
    }

    /// Applies catalog changes in one transaction: `Some(json)` writes a key, `None`
    /// removes it. Removing `table:<name>` (or `view:<name>`) also removes its log and
    /// state; removing `sink:<name>` removes its published position.
    pub fn apply_catalog(&self, changes: &[(String, Option<String>)]) -> Result<(), StoreError> {
        let txn = db_err!(self.db.begin_write())?;
        {
            let mut catalog = db_err!(txn.open_table(CATALOG))?;
            let mut log = db_err!(txn.open_table(LOG))?;
            let mut state = db_err!(txn.open_table(STATE))?;
            let mut letters = db_err!(txn.open_table(DEAD_LETTERS))?;
            let mut floor = db_err!(txn.open_table(SEQUENCE_FLOOR))?;
            let mut unkeyed = db_err!(txn.open_table(UNKEYED_DELETES))?;
            let mut sink_positions = db_err!(txn.open_table(SINK_POSITIONS))?;
            for (key, value) in changes {
                match value {
                    Some(json) => {
                        db_err!(catalog.insert(key.as_str(), json.as_str()))?;
                    }
                    None => {
                        db_err!(catalog.remove(key.as_str()))?;
                        if let Some(sink) = key.strip_prefix("sink:") {
                            db_err!(sink_positions.remove(sink))?;
                        }
                        if let Some(table) = key
                            .strip_prefix("table:")
                            .or_else(|| key.strip_prefix("view:"))
                        {
                            // The next incarnation numbers on from the last entry.
                            if let Some(end) = log_end(&log, table)? {
                                db_err!(floor.insert(table, end))?;
                            }
                            db_err!(log.retain_in((table, 0)..=(table, u64::MAX), |_, _| false))?;
                            db_err!(
                                unkeyed.retain_in((table, 0)..=(table, u64::MAX), |_, _| false)
                            )?;
                            db_err!(state.remove(table))?;
                            db_err!(
                                letters.retain_in((table, 0)..=(table, u64::MAX), |_, _| false)
                            )?;
                        }
                    }
                }
            }
        }
        db_err!(txn.commit())?;
        Ok(())
    }

    /// A read snapshot of the whole store: every read through it sees the same commits,
    /// whatever is committed meanwhile. A query takes one, so all its scans (a self-join,
    /// two tables) read one consistent point. Holding it keeps redb from reusing the pages
    /// it reads, so it should live as long as one query, not longer.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let txn = db_err!(self.db.begin_read())?;
        Ok(Snapshot {
            txn: std::sync::Arc::new(txn),
        })
    }
}

/// One read transaction of the store, shared by the scans of one query (cheap to clone).
#[derive(Clone)]
pub struct Snapshot {
    txn: std::sync::Arc<redb::ReadTransaction>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Snapshot")
    }
}

impl Snapshot {
    /// The sequence number of a table's last log entry in this snapshot (0: none).
    pub fn last_sequence(&self, table: &str) -> Result<u64, StoreError> {
        let log = db_err!(self.txn.open_table(LOG))?;
        let last = db_err!(log.range((table, 0)..=(table, u64::MAX)))?.next_back();
        match last {
            Some(item) => {
                let (key, _) = db_err!(item)?;
                Ok(key.value().1)
            }
            None => Ok(0),
        }
    }

    /// The entries of a table without a PRIMARY KEY that delete rows, with how many
    /// deletes each holds, in sequence order.
    pub fn unkeyed_delete_entries(&self, table: &str) -> Result<Vec<(u64, u64)>, StoreError> {
        let unkeyed = db_err!(self.txn.open_table(UNKEYED_DELETES))?;
        let mut out = Vec::new();
        for item in db_err!(unkeyed.range((table, 0)..=(table, u64::MAX)))? {
            let (key, value) = db_err!(item)?;
            out.push((key.value().1, value.value()));
        }
        Ok(out)
    }

    /// One log entry of a table (all columns), if it exists in this snapshot.
    pub fn entry(&self, table: &str, sequence: u64) -> Result<Option<RecordBatch>, StoreError> {
        let log = db_err!(self.txn.open_table(LOG))?;
        let Some(value) = db_err!(log.get((table, sequence)))? else {
            return Ok(None);
        };
        decode_projected(value.value(), None)
            .map(Some)
            .map_err(|message| StoreError::Corrupt {
                what: format!("log entry {sequence} of table {table}"),
                message,
            })
    }

    /// Decodes a table's log entries in sequence order, handing `each` the sequence number
    /// and the batch until it returns false. With a projection only those columns are
    /// decoded (Arrow IPC skips the others); an empty projection decodes nothing and hands
    /// out batches with no columns and the entry's row count. Memory holds one entry at a
    /// time.
    pub fn scan_log(
        &self,
        table: &str,
        projection: Option<&[usize]>,
        each: &mut dyn FnMut(u64, RecordBatch) -> bool,
    ) -> Result<(), StoreError> {
        let log = db_err!(self.txn.open_table(LOG))?;
        for item in db_err!(log.range((table, 0)..=(table, u64::MAX)))? {
            let (key, value) = db_err!(item)?;
            let (_, sequence) = key.value();
            let batch = decode_projected(value.value(), projection).map_err(|message| {
                StoreError::Corrupt {
                    what: format!("log entry {sequence} of table {table}"),
                    message,
                }
            })?;
            if !each(sequence, batch) {
                break;
            }
        }
        Ok(())
    }
}

/// An entry's records, only the `projection` columns decoded.
fn decode_projected(bytes: &[u8], projection: Option<&[usize]>) -> Result<RecordBatch, String> {
    let (_, _, rows) = decode_header(bytes).ok_or("header too short")?;
    if projection.is_some_and(|p| p.is_empty()) {
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows as usize));
        return RecordBatch::try_new_with_options(
            std::sync::Arc::new(arrow::datatypes::Schema::empty()),
            vec![],
            &options,
        )
        .map_err(|e| e.to_string());
    }
    let reader = StreamReader::try_new(&bytes[HEADER..], projection.map(<[usize]>::to_vec))
        .map_err(|e| e.to_string())?;
    let mut batches = Vec::new();
    for batch in reader {
        batches.push(batch.map_err(|e| e.to_string())?);
    }
    let batch = match batches.len() {
        1 => batches.pop().expect("one batch"),
        n => return Err(format!("expected one batch, found {n}")),
    };
    if batch.num_rows() as u64 != rows {
        return Err(format!(
            "header says {rows} rows, batch has {}",
            batch.num_rows()
        ));
    }
    Ok(batch)
}

impl Store {
    /// Drops a table's oldest dead letters beyond the [`Retention`] limits. Ids of one table
    /// are contiguous (only the oldest are ever removed), so the count is `last - first + 1`.
    fn trim_dead_letters(
        &self,
        letters: &mut redb::Table<'_, (&'static str, u64), &'static [u8]>,
        table: &str,
    ) -> Result<(), StoreError> {
        let range = (table, 0)..=(table, u64::MAX);
        let (first, last) = {
            let mut ids = db_err!(letters.range(range.clone()))?;
            let first = match ids.next() {
                Some(item) => db_err!(item)?.0.value().1,
                None => return Ok(()),
            };
            let last = match ids.next_back() {
                Some(item) => db_err!(item)?.0.value().1,
                None => first,
            };
            (first, last)
        };
        let keep = self.retention.dead_letters_per_table;
        let mut cut = if last - first + 1 > keep {
            last + 1 - keep
        } else {
            first
        };
        let oldest_kept = Utc::now()
            - chrono::Duration::from_std(self.retention.dead_letter_max_age)
                .unwrap_or(chrono::Duration::MAX);
        // Ids grow with time: walk from the oldest until one is young enough.
        for item in db_err!(letters.range((table, cut)..=(table, last)))? {
            let (key, value) = db_err!(item)?;
            let young = serde_json::from_slice::<DeadLetterRow>(value.value())
                .map(|row| row.timestamp >= oldest_kept)
                .unwrap_or(false);
            if young {
                break;
            }
            cut = key.value().1 + 1;
        }
        if cut > first {
            db_err!(letters.retain_in((table, first)..(table, cut), |_, _| false))?;
        }
        Ok(())
    }
}

/// Moves the rows of the old global `dead_letters` table into the per-table layout.
fn migrate_legacy_dead_letters(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let has_legacy = db_err!(txn.list_tables())?.any(|t| t.name() == LEGACY_DEAD_LETTERS.name());
    if !has_legacy {
        return Ok(());
    }
    {
        let legacy = db_err!(txn.open_table(LEGACY_DEAD_LETTERS))?;
        let mut letters = db_err!(txn.open_table(DEAD_LETTERS))?;
        for item in db_err!(legacy.iter())? {
            let (key, value) = db_err!(item)?;
            let row: DeadLetterRow =
                serde_json::from_slice(value.value()).map_err(|e| StoreError::Corrupt {
                    what: format!("dead letter {}", key.value()),
                    message: e.to_string(),
                })?;
            db_err!(letters.insert((row.table_name.as_str(), key.value()), value.value()))?;
        }
    }
    db_err!(txn.delete_table(LEGACY_DEAD_LETTERS))?;
    Ok(())
}

/// Where a table's log ends: `(last sequence number, offset of the next record)`, or
/// `None` when the log holds no entry of the table.
fn log_end(
    log: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    table: &str,
) -> Result<Option<(u64, u64)>, StoreError> {
    let Some(last) = db_err!(log.range((table, 0)..=(table, u64::MAX)))?.next_back() else {
        return Ok(None);
    };
    let (key, value) = db_err!(last)?;
    let sequence = key.value().1;
    let (first, _, rows) = decode_header(value.value()).ok_or_else(|| StoreError::Corrupt {
        what: format!("log entry {sequence} of table {table}"),
        message: "header too short".into(),
    })?;
    Ok(Some((sequence, first + rows)))
}

/// Entry layout: first_record u64 LE, committed_at micros i64 LE, rows u64 LE, Arrow IPC stream.
const HEADER: usize = 24;

fn encode_entry(
    first_record: u64,
    at: DateTime<Utc>,
    batch: &RecordBatch,
) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::with_capacity(HEADER + batch.get_array_memory_size() / 2);
    bytes.extend_from_slice(&first_record.to_le_bytes());
    bytes.extend_from_slice(&at.timestamp_micros().to_le_bytes());
    bytes.extend_from_slice(&(batch.num_rows() as u64).to_le_bytes());
    let ipc_error = |e: arrow::error::ArrowError| StoreError::Corrupt {
        what: "a batch being written".into(),
        message: e.to_string(),
    };
    let mut writer = StreamWriter::try_new(&mut bytes, &batch.schema()).map_err(ipc_error)?;
    writer.write(batch).map_err(ipc_error)?;
    writer.finish().map_err(ipc_error)?;
    drop(writer);
    Ok(bytes)
}

/// `(first_record, committed_at micros, rows)`.
fn decode_header(bytes: &[u8]) -> Option<(u64, i64, u64)> {
    if bytes.len() < HEADER {
        return None;
    }
    let word = |i: usize| <[u8; 8]>::try_from(&bytes[i * 8..i * 8 + 8]).expect("8 bytes");
    Some((
        u64::from_le_bytes(word(0)),
        i64::from_le_bytes(word(1)),
        u64::from_le_bytes(word(2)),
    ))
}

fn decode_entry(bytes: &[u8]) -> Result<(u64, DateTime<Utc>, RecordBatch), String> {
    let (first, micros, _) = decode_header(bytes).ok_or("header too short")?;
    let batch = decode_projected(bytes, None)?;
    let at = DateTime::from_timestamp_micros(micros).ok_or("commit time out of range")?;
    Ok((first, at, batch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    /// Rows `(id, "n<id>")`.
    pub(super) fn batch(ids: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_second_opener_is_refused_as_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        match Store::open(dir.path()) {
            Err(StoreError::InUse { path }) => assert!(path.ends_with(STORE_FILE), "{path}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a second opener was let in"),
        }
    }

    #[test]
    fn commits_number_entries_and_records_without_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let b1 = batch(&[1, 2, 3]);
        let b2 = batch(&[4]);
        let dl = vec![DeadLetterRow {
            timestamp: Utc::now(),
            table_name: "t".into(),
            reason: "bad".into(),
            raw: "{}".into(),
        }];
        let c1 = store
            .commit(&Commit {
                table: "t",
                batch: Some(&b1),
                state: Some(b"s1"),
                dead_letters: &dl,
                unkeyed_deletes: 0,
            })
            .unwrap()
            .unwrap();
        assert_eq!((c1.sequence, c1.first_record), (1, 0));
        // An empty poll moves the state but adds no log entry.
        let none = store
            .commit(&Commit {
                table: "t",
                batch: None,
                state: Some(b"s2"),
                dead_letters: &[],
                unkeyed_deletes: 0,
            })
            .unwrap();
        assert!(none.is_none());
        let c2 = store
            .commit(&Commit {
                table: "t",
                batch: Some(&b2),
                state: Some(b"s3"),
                dead_letters: &[],
                unkeyed_deletes: 0,
            })
            .unwrap()
            .unwrap();
        assert_eq!((c2.sequence, c2.first_record), (2, 3));
        // Another table has its own numbering.
        let other = store
            .commit(&Commit {
                table: "u",
                batch: Some(&b2),
                state: None,
                dead_letters: &[],
                unkeyed_deletes: 0,
            })
            .unwrap()
            .unwrap();
        assert_eq!(other.sequence, 1);
        drop(store);

        let store = Store::open(dir.path()).unwrap();
        let log = store.read_log("t", 0).unwrap();
        assert_eq!(
            log.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(log[1].batch, b2);
        assert_eq!(store.read_log("t", 2).unwrap().len(), 1);
        assert_eq!(store.state("t").unwrap().unwrap(), b"s3");
        assert_eq!(store.dead_letters().unwrap(), dl);
    }

    fn letter(table: &str, reason: &str, age: chrono::Duration) -> DeadLetterRow {
        DeadLetterRow {
            timestamp: Utc::now() - age,
            table_name: table.into(),
            reason: reason.into(),
            raw: "{}".into(),
        }
    }

    fn reasons(store: &Store, table: &str) -> Vec<String> {
        store
            .dead_letters()
            .unwrap()
            .into_iter()
            .filter(|r| r.table_name == table)
            .map(|r| r.reason)
            .collect()
    }

    #[test]
    fn sequence_numbers_never_repeat_across_drops_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let commit = |table| {
            store
                .commit(&Commit {
                    table,
                    batch: Some(&batch(&[1, 2])),
                    state: None,
                    dead_letters: &[],
                    unkeyed_deletes: 0,
                })
                .unwrap()
                .unwrap()
        };
        commit("t");
        commit("t");
        store
            .apply_catalog(&[("table:t".into(), Some("{}".into()))])
            .unwrap();
        // A replace is a removal and a write in one transaction.
        store
            .apply_catalog(&[
                ("table:t".into(), None),
                ("table:t".into(), Some("{}".into())),
            ])
            .unwrap();
        let after_replace = commit("t");
        assert_eq!((after_replace.sequence, after_replace.first_record), (3, 4));
        store.apply_catalog(&[("table:t".into(), None)]).unwrap();
        drop(store);
        // The floor survives a restart, and an empty incarnation keeps it too.
        let store = Store::open(dir.path()).unwrap();
        store
            .apply_catalog(&[
                ("table:t".into(), Some("{}".into())),
                ("table:t".into(), None),
            ])
            .unwrap();
        let c = store
            .commit(&Commit {
                table: "t",
                batch: Some(&batch(&[9])),
                state: None,
                dead_letters: &[],
                unkeyed_deletes: 0,
            })
            .unwrap()
            .unwrap();
        assert_eq!((c.sequence, c.first_record), (4, 6));
        assert_eq!(
            store
                .read_log("t", 0)
                .unwrap()
                .iter()
                .map(|e| e.sequence)
                .collect::<Vec<_>>(),
            vec![4]
        );
    }

    #[test]
    fn dead_letters_are_kept_per_table_within_retention_and_dropped_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(
            dir.path(),
            Retention {
                dead_letters_per_table: 3,
                dead_letter_max_age: std::time::Duration::from_secs(3600),
            },
        )
        .unwrap();
        let put = |table: &str, letters: Vec<DeadLetterRow>| {
            store
                .commit(&Commit {
                    table,
                    batch: None,
                    state: None,
                    dead_letters: &letters,
                    unkeyed_deletes: 0,
                })
                .unwrap();
        };
        let now = chrono::Duration::zero();
        put("a", vec![letter("a", "a1", now), letter("a", "a2", now)]);
        put("b", vec![letter("b", "b1", now)]);
        put("a", vec![letter("a", "a3", now), letter("a", "a4", now)]);
        // The oldest of table a went; table b is untouched by a's limit.
        assert_eq!(reasons(&store, "a"), vec!["a2", "a3", "a4"]);
        assert_eq!(reasons(&store, "b"), vec!["b1"]);
        // Past the age limit: dropped at the next commit of the table, oldest first.
        put(
            "c",
            vec![
                letter("c", "older", chrono::Duration::minutes(120)),
                letter("c", "old", chrono::Duration::minutes(90)),
                letter("c", "recent", chrono::Duration::minutes(10)),
            ],
        );
        assert_eq!(reasons(&store, "c"), vec!["recent"]);
        // Dropping a table drops its dead letters.
        store.apply_catalog(&[("table:a".into(), None)]).unwrap();
        assert!(reasons(&store, "a").is_empty());
        assert_eq!(reasons(&store, "b"), vec!["b1"]);
    }

    #[test]
    fn dead_letters_of_the_old_global_layout_are_moved_per_table() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join(STORE_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut t = txn.open_table(LEGACY_DEAD_LETTERS).unwrap();
                for (id, table) in [(0u64, "x"), (1, "y"), (2, "x")] {
                    let row = letter(table, &format!("r{id}"), chrono::Duration::zero());
                    t.insert(id, serde_json::to_vec(&row).unwrap().as_slice())
                        .unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(reasons(&store, "x"), vec!["r0", "r2"]);
        assert_eq!(reasons(&store, "y"), vec!["r1"]);
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.dead_letters().unwrap().len(), 3, "migrated once");
    }

    #[test]
    fn dropping_a_table_removes_its_log_and_state_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let b = batch(&[1]);
        for t in ["a", "ab"] {
            store
                .commit(&Commit {
                    table: t,
                    batch: Some(&b),
                    state: Some(b"x"),
                    dead_letters: &[],
                    unkeyed_deletes: 0,
                })
                .unwrap();
        }
        store
            .apply_catalog(&[
                ("table:a".into(), Some("{}".into())),
                ("table:ab".into(), Some("{}".into())),
            ])
            .unwrap();
        store.apply_catalog(&[("table:a".into(), None)]).unwrap();
        assert!(store.read_log("a", 0).unwrap().is_empty());
        assert!(store.state("a").unwrap().is_none());
        assert_eq!(store.read_log("ab", 0).unwrap().len(), 1);
        assert_eq!(
            store.catalog().unwrap(),
            vec![("table:ab".to_string(), "{}".to_string())]
        );
    }
}

#[cfg(test)]
mod snapshot_tests {
    use super::tests::batch;
    use super::*;

    fn commit(store: &Store, ids: &[i64]) {
        let b = batch(ids);
        store
            .commit(&Commit {
                table: "t",
                batch: Some(&b),
                state: None,
                dead_letters: &[],
                unkeyed_deletes: 0,
            })
            .unwrap();
    }

    #[test]
    fn read_log_range_reads_at_most_n_entries_after_a_position() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 0..5 {
            commit(&store, &[i]);
        }
        let seqs = |after, max| -> Vec<u64> {
            store
                .read_log_range("t", after, max)
                .unwrap()
                .iter()
                .map(|e| e.sequence)
                .collect()
        };
        assert_eq!(seqs(0, 2), vec![1, 2]);
        assert_eq!(seqs(2, 10), vec![3, 4, 5]);
        assert_eq!(seqs(5, 10), Vec::<u64>::new());
        assert_eq!(seqs(u64::MAX, 10), Vec::<u64>::new());
    }

    fn scan(snapshot: &Snapshot, projection: Option<&[usize]>) -> Vec<(u64, RecordBatch)> {
        let mut out = Vec::new();
        snapshot
            .scan_log("t", projection, &mut |seq, b| {
                out.push((seq, b));
                true
            })
            .unwrap();
        out
    }

    #[test]
    fn a_snapshot_does_not_see_later_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        commit(&store, &[1, 2]);
        let snapshot = store.snapshot().unwrap();
        commit(&store, &[3]);
        assert_eq!(snapshot.last_sequence("t").unwrap(), 1);
        assert_eq!(snapshot.last_sequence("nope").unwrap(), 0);
        let seen = scan(&snapshot, None);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].1, batch(&[1, 2]));
        assert_eq!(store.snapshot().unwrap().last_sequence("t").unwrap(), 2);
    }

    #[test]
    fn a_projected_scan_decodes_only_the_named_columns() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        commit(&store, &[1, 2]);
        commit(&store, &[3]);
        let snapshot = store.snapshot().unwrap();
        let seen = scan(&snapshot, Some(&[1]));
        assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(seen[0].1.num_columns(), 1);
        assert_eq!(seen[0].1.schema().field(0).name(), "name");
        assert_eq!(seen[1].1.column(0).as_ref(), batch(&[3]).column(1).as_ref());
        let counted = scan(&snapshot, Some(&[]));
        assert_eq!(
            counted
                .iter()
                .map(|(_, b)| (b.num_columns(), b.num_rows()))
                .collect::<Vec<_>>(),
            vec![(0, 2), (0, 1)]
        );
    }
}
