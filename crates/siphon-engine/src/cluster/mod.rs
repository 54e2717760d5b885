//! Sharing sources between siphon nodes through NATS JetStream (SPEC §7).
//!
//! The design (issue 15): nodes running the same pipeline files share the sources.
//!
//! * Each source is leased to one node through a JetStream key-value bucket ([`lease`]);
//!   a node holds about [`lease::fair_share`] of them, renews them while it lives, and
//!   hands them back on SIGTERM; a dead node's leases lapse after the TTL.
//! * A node polls only the sources it holds. A poll is not committed locally: it is
//!   published to the polls stream with the message id `<table>:<poll number>`, and the
//!   message carries the poll's records, whether they are the whole list, its dead letters
//!   *and the state it leads to*. State travels with the records, so a poll whose publish
//!   JetStream drops as a duplicate (a zombie node's, or a re-publish after a crash) never
//!   moves the state on without its records.
//! * Every node applies the polls stream to its own store in stream order, through the same
//!   `Engine::commit` a local poll uses (keyed diffs and views are deterministic given the
//!   same prior rows), recording the stream sequence it applied with each commit, so a
//!   redelivery is skipped and every node's tables are the same replay: queries on any node
//!   read every table.
//! * The leaseholder takes its next state from its own store after the applier has applied
//!   the message its publish was acknowledged at, so the stream is the one truth about
//!   where a source stands; a node that takes a source over first catches up to the last
//!   message on that source's subject.
//!
//! Built so far: [`lease`]. The polls stream, the applier and `siphon run --cluster` come
//! next; nothing here runs in a single-node `siphon run`.

pub mod lease;
