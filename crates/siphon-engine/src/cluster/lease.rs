//! Leases on sources in a JetStream key-value bucket: which node polls which source.
//!
//! A lease is a key (the source's name, escaped to the characters a key may hold) whose
//! value is the holder's node id. The bucket's `max_age` is the lease's TTL: a key not
//! written for that long disappears, so a dead node's leases lapse on their own. A node
//! takes a lease with `create` (it fails when another node holds it), renews it by writing
//! it again with `update` at the revision it last wrote (compare-and-set: it fails once
//! another node has taken the lapsed key, so two nodes never both believe they hold it),
//! and hands it back with a delete at that revision. A node that restarts with the same
//! id finds its own unexpired leases and takes them over at their revision.
//!
//! Membership uses a second bucket the same way: each node keeps its key alive, so the
//! live nodes are the bucket's keys, and [`fair_share`] says how many leases each takes.
//!
//! Invariant: at any instant at most one node holds a given lease at the bucket's latest
//! revision; a node acts on a lease only between a successful take or renew and the TTL
//! counted from it.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::StreamExt;

/// Why a lease operation failed (the bucket could not be reached or refused it).
#[derive(Debug, thiserror::Error)]
#[error("lease bucket {bucket}: {message}")]
pub struct LeaseError {
    /// The bucket.
    pub bucket: String,
    /// What failed.
    pub message: String,
}

/// A lease this node holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The source it is on.
    pub name: String,
    /// The bucket revision this node last wrote it at.
    pub revision: u64,
}

/// The leases of one bucket, seen from one node.
pub struct Leases {
    kv: kv::Store,
    bucket: String,
    node: String,
    ttl: Duration,
}

impl Leases {
    /// Opens (creating it when missing) the bucket `bucket` whose entries live `ttl`, for
    /// node `node`. Every node must use the same TTL: a bucket created with another one is
    /// refused, with both values named.
    pub async fn open(
        context: &jetstream::Context,
        bucket: &str,
        node: &str,
        ttl: Duration,
    ) -> Result<Leases, LeaseError> {
        let failed = |message: String| LeaseError {
            bucket: bucket.to_string(),
            message,
        };
        // The bucket's stream is created as `create_key_value` would, without its account
        // query, whose answer nats-server 2.9 words in a way this client cannot read.
        context
            .get_or_create_stream(jetstream::stream::Config {
                name: format!("KV_{bucket}"),
                subjects: vec![format!("$KV.{bucket}.>")],
                max_messages_per_subject: 1,
                max_age: ttl,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: jetstream::stream::DiscardPolicy::New,
                ..Default::default()
            })
            .await
            .map_err(|e| failed(format!("creating it: {}", siphon_connect::error_chain(&e))))?;
        let kv = context
            .get_key_value(bucket)
            .await
            .map_err(|e| failed(siphon_connect::error_chain(&e)))?;
        let status = kv
            .status()
            .await
            .map_err(|e| failed(siphon_connect::error_chain(&e)))?;
        if status.max_age() != ttl {
            return Err(failed(format!(
                "its entries live {} ms but this node uses a lease TTL of {} ms: every node \
                 must use the same TTL",
                status.max_age().as_millis(),
                ttl.as_millis()
            )));
        }
        Ok(Leases {
            kv,
            bucket: bucket.to_string(),
            node: node.to_string(),
            ttl,
        })
    }

    /// The TTL of a lease: it must be renewed well within it.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn error(&self, message: String) -> LeaseError {
        LeaseError {
            bucket: self.bucket.clone(),
            message,
        }
    }

    /// Takes the lease on `name` if no other node holds it: `Some` when this node holds it
    /// now (newly, or again after its own restart), `None` when another node does.
    pub async fn try_take(&self, name: &str) -> Result<Option<Lease>, LeaseError> {
        let key = escape_key(name);
        let value = Bytes::from(self.node.clone().into_bytes());
        match self.kv.create(&key, value.clone()).await {
            Ok(revision) => {
                return Ok(Some(Lease {
                    name: name.to_string(),
                    revision,
                }));
            }
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(self.error(siphon_connect::error_chain(&e))),
        }
        // Held: by this node before a restart (take it over at its revision), or another.
        let entry = self
            .kv
            .entry(&key)
            .await
            .map_err(|e| self.error(siphon_connect::error_chain(&e)))?;
        match entry {
            Some(entry)
                if entry.operation == kv::Operation::Put && entry.value == self.node.as_bytes() =>
            {
                match self.kv.update(&key, value, entry.revision).await {
                    Ok(revision) => Ok(Some(Lease {
                        name: name.to_string(),
                        revision,
                    })),
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
                    Err(e) => Err(self.error(siphon_connect::error_chain(&e))),
                }
            }
            _ => Ok(None),
        }
    }

    /// Renews `lease` for another TTL. `false`: it was lost (it lapsed and another node
    /// took it); the caller must stop acting on it at once.
    pub async fn renew(&self, lease: &mut Lease) -> Result<bool, LeaseError> {
        let value = Bytes::from(self.node.clone().into_bytes());
        match self
            .kv
            .update(escape_key(&lease.name), value, lease.revision)
            .await
        {
            Ok(revision) => {
                lease.revision = revision;
                Ok(true)
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(self.error(siphon_connect::error_chain(&e))),
        }
    }

    /// Hands `lease` back at once (a node leaving on SIGTERM, or shedding its surplus), so
    /// another node can take it without waiting for the TTL. A lease lost meanwhile is
    /// left alone.
    pub async fn release(&self, lease: Lease) -> Result<(), LeaseError> {
        match self
            .kv
            .delete_expect_revision(escape_key(&lease.name), Some(lease.revision))
            .await
        {
            Ok(()) => Ok(()),
            // Refused at that revision: fine when another node holds it by now.
            Err(e) => match self.holder(&lease.name).await? {
                Some(holder) if holder == self.node => {
                    Err(self.error(siphon_connect::error_chain(&e)))
                }
                _ => Ok(()),
            },
        }
    }

    /// The node holding `name`, if any.
    pub async fn holder(&self, name: &str) -> Result<Option<String>, LeaseError> {
        let entry = self
            .kv
            .entry(escape_key(name))
            .await
            .map_err(|e| self.error(siphon_connect::error_chain(&e)))?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| String::from_utf8_lossy(&e.value).into_owned()))
    }

    /// The names of every live lease (the live nodes, for the membership bucket).
    pub async fn names(&self) -> Result<Vec<String>, LeaseError> {
        let mut keys = match self.kv.keys().await {
            Ok(keys) => keys,
            Err(e) => return Err(self.error(siphon_connect::error_chain(&e))),
        };
        let mut names = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| self.error(siphon_connect::error_chain(&e)))?;
            names.push(unescape_key(&key));
        }
        names.sort();
        Ok(names)
    }
}

/// How many of `sources` leases a node takes when `nodes` nodes are live: an even share,
/// rounded up so that every source finds a node.
pub fn fair_share(sources: usize, nodes: usize) -> usize {
    sources.div_ceil(nodes.max(1))
}

/// A source name as a key: letters, digits, `-` and `_` as they are, every other byte as
/// `=XX` (hex), so any table name maps to a valid, distinct key.
pub fn escape_key(name: &str) -> String {
    let mut key = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            key.push(b as char);
        } else {
            key.push_str(&format!("={b:02X}"));
        }
    }
    key
}

/// The inverse of [`escape_key`].
pub fn unescape_key(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&key[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};

    #[test]
    fn keys_hold_any_name_and_shares_cover_every_source() {
        for name in ["orders", "Orders_2", "a.b", "a=b", "é x/y", "=41"] {
            let key = escape_key(name);
            assert!(
                key.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b)),
                "{key}"
            );
            assert_eq!(unescape_key(&key), name);
        }
        assert_ne!(escape_key("a.b"), escape_key("a_b"));
        assert_eq!(fair_share(100, 3), 34);
        assert_eq!(fair_share(100, 0), 100);
        assert_eq!(fair_share(0, 3), 0);
        assert!(fair_share(7, 3) * 3 >= 7);
    }

    struct Nats(Child, u16);

    impl Drop for Nats {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    async fn nats(store: &std::path::Path) -> Nats {
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("nats-server is missing: run scripts/install-test-deps.sh");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while async_nats::connect(format!("127.0.0.1:{port}"))
            .await
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Nats(child, port)
    }

    async fn node(port: u16, id: &str, ttl: Duration) -> Result<Leases, LeaseError> {
        let client = async_nats::connect(format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        Leases::open(&jetstream::new(client), "leases", id, ttl).await
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_a_lapsed_lease_passes_on() {
        let dir = tempfile::tempdir().unwrap();
        let server = nats(dir.path()).await;
        let ttl = Duration::from_millis(1500);
        let a = node(server.1, "node-a", ttl).await.unwrap();
        let b = node(server.1, "node-b", ttl).await.unwrap();

        let mut lease = a.try_take("orders").await.unwrap().expect("free");
        assert_eq!(b.try_take("orders").await.unwrap(), None);
        assert_eq!(b.holder("orders").await.unwrap().as_deref(), Some("node-a"));
        assert!(a.renew(&mut lease).await.unwrap());

        // node-a restarts: it takes its own lease over, and the old revision is dead.
        let a_again = node(server.1, "node-a", ttl).await.unwrap();
        let mut taken_over = a_again.try_take("orders").await.unwrap().expect("own");
        assert!(
            !a.renew(&mut lease).await.unwrap(),
            "a stale revision renewed"
        );

        // node-a dies: after the TTL the lease is free, node-b takes it, and node-a's
        // last revision can no longer renew it.
        tokio::time::sleep(ttl + Duration::from_millis(700)).await;
        let b_lease = b.try_take("orders").await.unwrap().expect("lapsed");
        assert!(!a_again.renew(&mut taken_over).await.unwrap());
        assert_eq!(a.holder("orders").await.unwrap().as_deref(), Some("node-b"));

        // Released, it is free at once.
        b.release(b_lease).await.unwrap();
        assert!(a.try_take("orders").await.unwrap().is_some());
        assert_eq!(a.names().await.unwrap(), ["orders"]);

        // Every node must use the same TTL.
        let Err(e) = node(server.1, "node-c", Duration::from_secs(9)).await else {
            panic!("a bucket with another TTL was accepted");
        };
        assert!(
            e.message.contains("every node must use the same TTL"),
            "{e}"
        );
    }
}
