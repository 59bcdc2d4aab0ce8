//! The partition map: who owns each partition, at which epoch, and which nodes are alive.
//!
//! A [`PartitionMap`] is an immutable copy of everything under the cluster prefix at one etcd
//! revision. The control thread builds a new one for every batch of watch events and
//! publishes it; readers keep the `Arc` they loaded as long as they like.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::keys::{Key, Keys};
use crate::Error;

/// The most partitions a cluster may have. The whole map is read in one etcd response when a
/// watch must restart (about 90 bytes a partition: 6 MB at this size).
pub const MAX_PARTITIONS: u32 = 65_536;

/// The fixed facts of a cluster, written once when the first node starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub(crate) partitions: u32,
    /// Unix seconds.
    pub(crate) created: u64,
}

/// A live member, as it registered itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    /// Client-facing addresses (e.g. `imap=10.0.0.1:143`), for operators and the status page.
    pub client: Vec<String>,
    /// The node-to-node address other nodes dial (the config's `advertise`).
    pub internal: String,
    /// Unix seconds when this process registered.
    pub started: u64,
    /// The operator's label for where the node runs (`[cluster] zone`): the balancer spreads
    /// a partition's copies over zones when it can. Empty: no zone (absent in older values).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub zone: String,
}

/// Whether a partition is being handed to another node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum PartitionState {
    /// Served by its owner.
    Active,
    /// Still served by its owner, which should hand it to `to` (the data plane copies the
    /// partition and then calls `complete_move`).
    Moving { to: String },
}

/// One partition's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// `None` until the partition is first assigned.
    pub owner: Option<String>,
    /// The fencing token: raised by one whenever the owner changes, never lowered. A write
    /// carrying an older epoch comes from a node that is no longer the owner.
    pub epoch: u64,
    pub state: PartitionState,
    /// etcd's mod revision of the key (0 while it does not exist): claims compare on it.
    pub revision: i64,
    /// Nodes holding (or being seeded with) a copy of the partition; never the owner.
    pub replicas: Vec<String>,
    /// The replicas that hold every write the owner has acknowledged (a subset of
    /// `replicas`): the owner removes a replica from here before it acknowledges a write that
    /// replica does not have, so promoting any of them loses nothing.
    pub in_sync: Vec<String>,
    /// Replicas the balancer is moving to another node (a subset of `replicas`): each stays,
    /// streamed to and possibly in sync, until the replica placed instead of it is in sync,
    /// and then is dropped. They do not count towards `[cluster] replicas`.
    pub leaving: Vec<String>,
}

impl Assignment {
    pub(crate) const UNSET: Assignment = Assignment {
        owner: None,
        epoch: 0,
        state: PartitionState::Active,
        revision: 0,
        replicas: Vec::new(),
        in_sync: Vec::new(),
        leaving: Vec::new(),
    };

    /// The node a pending move goes to.
    pub fn moving_to(&self) -> Option<&str> {
        match &self.state {
            PartitionState::Moving { to } => Some(to),
            PartitionState::Active => None,
        }
    }

    /// Whether `node` is the owner.
    pub fn owned_by(&self, node: &str) -> bool {
        self.owner.as_deref() == Some(node)
    }

    /// Whether `node` holds a replica (in sync or not).
    pub fn replicated_on(&self, node: &str) -> bool {
        self.replicas.iter().any(|r| r == node)
    }

    /// Whether `node` is an in-sync replica.
    pub fn in_sync_on(&self, node: &str) -> bool {
        self.in_sync.iter().any(|r| r == node)
    }

    /// Whether `node` holds a replica the balancer is moving elsewhere.
    pub fn leaving_on(&self, node: &str) -> bool {
        self.leaving.iter().any(|r| r == node)
    }

    /// What is stored for this entry, with `owner` (the key holds no entry without one).
    pub(crate) fn stored(&self, owner: &str) -> Stored {
        Stored {
            owner: owner.to_string(),
            epoch: self.epoch,
            state: self.state.clone(),
            replicas: self.replicas.clone(),
            in_sync: self.in_sync.clone(),
            leaving: self.leaving.clone(),
        }
    }
}

/// The entry of a partition beyond the end (a static: a constant holding a `Vec` cannot be
/// borrowed for `'static`).
static UNSET: Assignment = Assignment::UNSET;

/// What is stored at `map/<p>`: the entry without its revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub(crate) owner: String,
    pub(crate) epoch: u64,
    #[serde(flatten)]
    pub(crate) state: PartitionState,
    /// Absent in values written before replication, and while empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) replicas: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) in_sync: Vec<String>,
    /// Absent in values written before replica rebalancing, and while empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) leaving: Vec<String>,
}

impl Stored {
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a plain struct serializes")
    }

    /// The entry this value makes at `revision`.
    pub(crate) fn into_assignment(self, revision: i64) -> Assignment {
        Assignment {
            owner: Some(self.owner),
            epoch: self.epoch,
            state: self.state,
            revision,
            replicas: self.replicas,
            in_sync: self.in_sync,
            leaving: self.leaving,
        }
    }
}

/// The local copy of the cluster's state at one etcd revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMap {
    pub cluster: String,
    /// P, fixed when the cluster was created.
    pub partitions: u32,
    /// The etcd revision this copy reflects.
    pub revision: i64,
    /// Counts the copies this process has published (1 is the first).
    pub version: u64,
    /// Live nodes: those whose lease has not expired.
    pub nodes: BTreeMap<String, NodeInfo>,
    /// Nodes being drained: they get no partitions and lose the ones they have.
    pub drained: BTreeSet<String>,
    /// The node running the balancer, if one is elected.
    pub balancer: Option<String>,
    /// Indexed by partition; `assignments.len() == partitions`.
    pub assignments: Vec<Assignment>,
}

impl PartitionMap {
    /// An empty map of `partitions` partitions.
    pub(crate) fn new(cluster: &str, partitions: u32) -> PartitionMap {
        PartitionMap {
            cluster: cluster.to_string(),
            partitions,
            revision: 0,
            version: 0,
            nodes: BTreeMap::new(),
            drained: BTreeSet::new(),
            balancer: None,
            assignments: vec![Assignment::UNSET; partitions as usize],
        }
    }

    /// The entry of partition `p` (an unset one beyond the end).
    pub fn assignment(&self, p: u32) -> &Assignment {
        self.assignments.get(p as usize).unwrap_or(&UNSET)
    }

    /// Whether `node` holds a live lease.
    pub fn alive(&self, node: &str) -> bool {
        self.nodes.contains_key(node)
    }

    /// The live owner of `p`, if any.
    pub fn live_owner(&self, p: u32) -> Option<&NodeInfo> {
        self.assignment(p)
            .owner
            .as_deref()
            .and_then(|o| self.nodes.get(o))
    }

    /// How many partitions `node` owns.
    pub fn owned_count(&self, node: &str) -> usize {
        self.assignments.iter().filter(|a| a.owned_by(node)).count()
    }

    /// How many partitions `node` holds a replica of.
    pub fn replica_count(&self, node: &str) -> usize {
        self.assignments
            .iter()
            .filter(|a| a.replicated_on(node))
            .count()
    }

    /// The node-to-node address of `node` (empty while it is not alive).
    pub fn internal(&self, node: &str) -> String {
        self.nodes
            .get(node)
            .map_or_else(String::new, |n| n.internal.clone())
    }

    /// The zone `node` registered with (empty when it has none or is not alive).
    pub fn zone(&self, node: &str) -> &str {
        self.nodes.get(node).map_or("", |n| n.zone.as_str())
    }

    /// The partition holding `user`'s mail.
    pub fn partition_of(&self, user: &str) -> u32 {
        ringmail_store::partition_of(user, self.partitions)
    }

    /// Applies a put of `key` (a watch event or one key of a full read).
    pub(crate) fn apply_put(
        &mut self,
        keys: &Keys,
        key: &[u8],
        value: &[u8],
        mod_revision: i64,
    ) -> Result<(), Error> {
        let corrupt = |detail: String| Error::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            detail,
        };
        match keys.parse(key) {
            Some(Key::Node(id)) => {
                let info: NodeInfo =
                    serde_json::from_slice(value).map_err(|e| corrupt(e.to_string()))?;
                self.nodes.insert(id, info);
            }
            Some(Key::Drain(id)) => {
                self.drained.insert(id);
            }
            Some(Key::Balancer) => {
                self.balancer = Some(String::from_utf8_lossy(value).into_owned());
            }
            Some(Key::Partition(p)) => {
                // Keys beyond P cannot be written by this code; ignore rather than fail.
                if let Some(slot) = self.assignments.get_mut(p as usize) {
                    let stored: Stored =
                        serde_json::from_slice(value).map_err(|e| corrupt(e.to_string()))?;
                    *slot = stored.into_assignment(mod_revision);
                }
            }
            Some(Key::Meta) | None => {}
        }
        Ok(())
    }

    /// Applies a delete of `key`: a node's lease expired, a drain was lifted, the balancer
    /// left. Partition keys are never deleted.
    pub(crate) fn apply_delete(&mut self, keys: &Keys, key: &[u8]) {
        match keys.parse(key) {
            Some(Key::Node(id)) => {
                self.nodes.remove(&id);
            }
            Some(Key::Drain(id)) => {
                self.drained.remove(&id);
            }
            Some(Key::Balancer) => self.balancer = None,
            Some(Key::Partition(_) | Key::Meta) | None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_encoding_is_readable_and_round_trips() {
        let active = Stored {
            owner: "n1".into(),
            epoch: 3,
            state: PartitionState::Active,
            replicas: vec![],
            in_sync: vec![],
            leaving: vec![],
        };
        // Without replicas the value is what releases before replication wrote.
        assert_eq!(
            String::from_utf8(active.encode()).unwrap(),
            r#"{"owner":"n1","epoch":3,"state":"active"}"#
        );
        let moving = Stored {
            owner: "n1".into(),
            epoch: 4,
            state: PartitionState::Moving { to: "n2".into() },
            replicas: vec![],
            in_sync: vec![],
            leaving: vec![],
        };
        let text = String::from_utf8(moving.encode()).unwrap();
        assert_eq!(
            text,
            r#"{"owner":"n1","epoch":4,"state":"moving","to":"n2"}"#
        );
        assert_eq!(serde_json::from_str::<Stored>(&text).unwrap(), moving);
        let replicated = Stored {
            owner: "n1".into(),
            epoch: 7,
            state: PartitionState::Active,
            replicas: vec!["n2".into(), "n3".into()],
            in_sync: vec!["n2".into()],
            leaving: vec![],
        };
        let text = String::from_utf8(replicated.encode()).unwrap();
        assert_eq!(
            text,
            r#"{"owner":"n1","epoch":7,"state":"active","replicas":["n2","n3"],"in_sync":["n2"]}"#
        );
        assert_eq!(serde_json::from_str::<Stored>(&text).unwrap(), replicated);
        // A replica being moved: `leaving` only while there is one.
        let moving_replica = Stored {
            leaving: vec!["n2".into()],
            ..replicated
        };
        let text = String::from_utf8(moving_replica.encode()).unwrap();
        assert!(
            text.ends_with(r#""in_sync":["n2"],"leaving":["n2"]}"#),
            "{text}"
        );
        assert_eq!(
            serde_json::from_str::<Stored>(&text).unwrap(),
            moving_replica
        );
    }

    #[test]
    fn registrations_without_a_zone_parse() {
        let old = r#"{"id":"n1","client":[],"internal":"10.0.0.1:7143","started":5}"#;
        let info: NodeInfo = serde_json::from_str(old).unwrap();
        assert_eq!(info.zone, "");
        assert_eq!(serde_json::to_string(&info).unwrap(), old);
        let zoned = NodeInfo {
            zone: "fra1".into(),
            ..info
        };
        let text = serde_json::to_string(&zoned).unwrap();
        assert!(text.ends_with(r#""zone":"fra1"}"#), "{text}");
        assert_eq!(serde_json::from_str::<NodeInfo>(&text).unwrap(), zoned);
    }

    #[test]
    fn puts_and_deletes_update_the_copy() {
        let keys = Keys::new("c");
        let mut map = PartitionMap::new("c", 4);
        let node = NodeInfo {
            id: "n1".into(),
            client: vec!["imap=127.0.0.1:143".into()],
            internal: "127.0.0.1:7143".into(),
            started: 1,
            zone: String::new(),
        };
        map.apply_put(
            &keys,
            keys.node("n1").as_bytes(),
            &serde_json::to_vec(&node).unwrap(),
            5,
        )
        .unwrap();
        let value = br#"{"owner":"n1","epoch":2,"state":"moving","to":"n9"}"#;
        map.apply_put(&keys, keys.partition(2).as_bytes(), value, 7)
            .unwrap();
        assert_eq!(map.assignment(2).epoch, 2);
        assert_eq!(map.assignment(2).revision, 7);
        assert_eq!(map.assignment(2).moving_to(), Some("n9"));
        assert_eq!(map.live_owner(2).map(|n| n.id.as_str()), Some("n1"));
        assert_eq!(map.owned_count("n1"), 1);
        assert_eq!(map.assignment(3), &Assignment::UNSET);
        let value =
            br#"{"owner":"n1","epoch":3,"state":"active","replicas":["n2"],"in_sync":["n2"]}"#;
        map.apply_put(&keys, keys.partition(3).as_bytes(), value, 9)
            .unwrap();
        assert!(map.assignment(3).replicated_on("n2") && map.assignment(3).in_sync_on("n2"));
        assert_eq!(map.replica_count("n2"), 1);
        assert!(map.assignment(2).replicas.is_empty(), "old values parse");

        map.apply_delete(&keys, keys.node("n1").as_bytes());
        assert!(!map.alive("n1"));
        assert!(map.live_owner(2).is_none());
        // The entry itself stays: its epoch must never go back.
        assert_eq!(map.assignment(2).epoch, 2);

        let err = map
            .apply_put(&keys, keys.partition(1).as_bytes(), b"{", 8)
            .unwrap_err();
        assert!(err.to_string().contains("/ringmail/c/map/00001"), "{err}");
    }
}
