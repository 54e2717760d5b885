//! Group commit of polls: the polls of many sources that finish at about the same time
//! share one durable transaction (one fsync), instead of one each.
//!
//! A poll's commit is prepared by [`crate::Engine::commit`] under its table's commit lock
//! (the diff, the views' changes) and handed here with everything it writes. One thread
//! takes every poll waiting in its queue (up to [`MAX_GROUP_BYTES`] of batches), writes
//! them with one [`Store::commit_group`], and answers each with where its entries landed.
//! Each poll still holds its own table's commit lock while it waits, so two polls of a
//! group never touch the same table, and a push (which takes the same lock) never
//! interleaves with a poll of its table.
//!
//! A group that fails is written again one poll at a time, so one poll that cannot be
//! stored (a batch the store refuses) fails alone and never takes the others with it.
//!
//! Invariant: a poll is answered only after the transaction holding it committed; a poll
//! that gets an error stored nothing.

use std::sync::Arc;
use std::sync::mpsc;

use arrow::array::RecordBatch;
use tokio::sync::oneshot;

use crate::store::{Commit, CommitInfo, DeadLetterRow, Store, StoreError};
use crate::view::{self, ViewChange};

/// A group stops growing once its batches hold this many bytes (it takes at least one).
pub const MAX_GROUP_BYTES: usize = 64 << 20;

/// Everything one poll writes: its table's entry, state and dead letters, and its views'
/// entries.
pub(crate) struct PollWrite {
    pub table: String,
    pub batch: Option<RecordBatch>,
    pub state: Option<Vec<u8>>,
    pub dead_letters: Vec<DeadLetterRow>,
    pub view_changes: Vec<ViewChange>,
}

impl PollWrite {
    fn bytes(&self) -> usize {
        self.batch
            .as_ref()
            .map_or(0, RecordBatch::get_array_memory_size)
            + self
                .view_changes
                .iter()
                .map(|c| c.batch.get_array_memory_size())
                .sum::<usize>()
    }

    /// Its commits: the table's first, then its views' in order.
    fn commits(&self) -> Vec<Commit<'_>> {
        let mut commits = vec![Commit {
            table: &self.table,
            batch: self.batch.as_ref(),
            state: self.state.as_deref(),
            dead_letters: &self.dead_letters,
            unkeyed_deletes: 0,
        }];
        commits.extend(view::commits(&self.view_changes));
        commits
    }
}

/// What a poll's write did: one `CommitInfo` per commit (the table's, then each view's),
/// and the view changes back, to apply in memory.
pub(crate) type Written = Result<(Vec<Option<CommitInfo>>, Vec<ViewChange>), StoreError>;

struct Job {
    write: PollWrite,
    reply: oneshot::Sender<Written>,
}

/// The handle polls are queued through; the thread ends when it is dropped.
pub(crate) struct GroupCommitter {
    queue: mpsc::Sender<Job>,
}

impl GroupCommitter {
    /// Starts the thread over `store`.
    pub(crate) fn start(store: Arc<Store>) -> std::io::Result<GroupCommitter> {
        let (queue, jobs) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("siphon-poll-commit".into())
            .spawn(move || {
                while let Ok(first) = jobs.recv() {
                    let mut bytes = first.write.bytes();
                    let mut group = vec![first];
                    while bytes < MAX_GROUP_BYTES {
                        match jobs.try_recv() {
                            Ok(job) => {
                                bytes += job.write.bytes();
                                group.push(job);
                            }
                            Err(_) => break,
                        }
                    }
                    write_group(&store, group);
                }
            })?;
        Ok(GroupCommitter { queue })
    }

    /// Writes `write` durably, in a group with whatever polls are waiting.
    pub(crate) async fn write(&self, write: PollWrite) -> Written {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { write, reply })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// Writes a group in one transaction; when that fails and there is more than one poll,
/// each one alone, so only the poll at fault fails.
fn write_group(store: &Store, group: Vec<Job>) {
    let result = {
        let commits: Vec<Commit<'_>> = group.iter().flat_map(|job| job.write.commits()).collect();
        store.commit_group(&commits)
    };
    match result {
        Ok(infos) => {
            let mut infos = infos.into_iter();
            for job in group {
                let count = 1 + job.write.view_changes.len();
                let mine: Vec<Option<CommitInfo>> = infos.by_ref().take(count).collect();
                let _ = job.reply.send(Ok((mine, job.write.view_changes)));
            }
        }
        Err(e) if group.len() == 1 => {
            let job = group.into_iter().next().expect("one job");
            let _ = job.reply.send(Err(e));
        }
        Err(_) => {
            for job in group {
                let result = store.commit_group(&job.write.commits());
                let _ = job
                    .reply
                    .send(result.map(|infos| (infos, job.write.view_changes)));
            }
        }
    }
}
