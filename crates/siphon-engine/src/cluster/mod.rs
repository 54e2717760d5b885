//! Sharing sources between siphon nodes through NATS JetStream (SPEC §7).
//!
//! The design (issue 15): nodes running the same pipeline files share the sources. Each
//! source is leased to one node through a JetStream key-value bucket; a node polls only
//! the sources it holds, publishes each poll to the source's stream with a message id of
//! (source, poll) together with the state it leads to, and every node applies the streams
//! to its own store, so queries on any node read every table. A node that dies stops
//! renewing its leases, they expire after the TTL, and the others take its sources and
//! resume from the state in the stream.
//!
//! Built so far: [`lease`], the leases and the fair share of each node. The poll
//! publishing, the appliers and `siphon run --cluster` come next; nothing here runs in a
//! single-node `siphon run`.

pub mod lease;
