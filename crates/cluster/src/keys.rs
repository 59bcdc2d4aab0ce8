//! The etcd key layout. Everything of cluster `<name>` lives under `/ringmail/<name>/`:
//!
//! | key | value | lifetime |
//! | --- | --- | --- |
//! | `meta` | `{"partitions":P,"created":secs}` | created once, never changed |
//! | `nodes/<id>` | the node's addresses and start time | bound to the node's lease |
//! | `balancer` | the id of the node running the balancer | bound to that node's lease |
//! | `drain/<id>` | empty | from `drain` until `undrain` |
//! | `map/<p>` | `{"owner":..,"epoch":..,"state":..}` | written by claims and moves, never deleted |
//!
//! Partition numbers are zero-padded to five digits so the keys sort in partition order.
//! A partition whose key does not exist yet has no owner and epoch 0.

/// Builds and parses the keys of one cluster.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

/// What a key under the cluster prefix names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    Meta,
    Node(String),
    Balancer,
    Drain(String),
    Partition(u32),
}

impl Keys {
    pub(crate) fn new(cluster: &str) -> Keys {
        Keys {
            prefix: format!("/ringmail/{cluster}/"),
        }
    }

    /// Every key of the cluster starts with this.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn meta(&self) -> String {
        format!("{}meta", self.prefix)
    }

    pub(crate) fn node(&self, id: &str) -> String {
        format!("{}nodes/{id}", self.prefix)
    }

    pub(crate) fn balancer(&self) -> String {
        format!("{}balancer", self.prefix)
    }

    pub(crate) fn drain(&self, id: &str) -> String {
        format!("{}drain/{id}", self.prefix)
    }

    pub(crate) fn partition(&self, p: u32) -> String {
        format!("{}map/{p:05}", self.prefix)
    }

    /// What `key` names; `None` for keys of other clusters or that this release does not know
    /// (a later release's keys are ignored rather than fatal).
    pub(crate) fn parse(&self, key: &[u8]) -> Option<Key> {
        let rest = std::str::from_utf8(key).ok()?.strip_prefix(&self.prefix)?;
        match rest {
            "meta" => Some(Key::Meta),
            "balancer" => Some(Key::Balancer),
            _ => {
                if let Some(id) = rest.strip_prefix("nodes/") {
                    (!id.is_empty()).then(|| Key::Node(id.to_string()))
                } else if let Some(id) = rest.strip_prefix("drain/") {
                    (!id.is_empty()).then(|| Key::Drain(id.to_string()))
                } else {
                    let digits = rest.strip_prefix("map/")?;
                    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    digits.parse().ok().map(Key::Partition)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let keys = Keys::new("prod");
        assert_eq!(keys.partition(7), "/ringmail/prod/map/00007");
        assert_eq!(keys.node("n1"), "/ringmail/prod/nodes/n1");
        let cases = [
            (keys.meta(), Key::Meta),
            (keys.balancer(), Key::Balancer),
            (keys.node("n-1.a"), Key::Node("n-1.a".into())),
            (keys.drain("n2"), Key::Drain("n2".into())),
            (keys.partition(0), Key::Partition(0)),
            (keys.partition(65535), Key::Partition(65535)),
            (keys.partition(123456), Key::Partition(123456)),
        ];
        for (key, expected) in cases {
            assert_eq!(keys.parse(key.as_bytes()), Some(expected), "{key}");
        }
    }

    #[test]
    fn other_keys_are_ignored() {
        let keys = Keys::new("prod");
        for key in [
            "/ringmail/staging/meta",
            "/ringmail/prod",
            "/ringmail/prod/map/",
            "/ringmail/prod/map/12x",
            "/ringmail/prod/nodes/",
            "/ringmail/prod/future/thing",
        ] {
            assert_eq!(keys.parse(key.as_bytes()), None, "{key}");
        }
        // Sorting by key sorts by partition, which makes `etcdctl get --prefix` readable.
        assert!(keys.partition(9) < keys.partition(10));
    }
}
