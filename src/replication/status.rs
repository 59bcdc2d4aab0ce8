//! Replication progress for `ringmail cluster status`: each owner's node reports, for every
//! partition it has open, its log end and each replica's position and lag. The map in etcd
//! holds none of this (it changes with every batch), so the status command asks every live
//! node over the node-to-node link ([`KIND_STATUS`]) and merges the answers into what it read
//! from etcd.
//!
//! The answer is text, one line per partition, fields separated by tabs:
//!
//! ```text
//! P  END_SEGMENT  END_OFFSET  { NODE  STATE  AT_SEGMENT  AT_OFFSET  LAG_BATCHES  LAG_RECORDS  LAG_MS }*
//! ```
//!
//! with `-` for a position not known yet, then one line per stale copy the node holds
//! (stale.rs: what its last sweep found):
//!
//! ```text
//! stale  P  DIR  KIND  STATE
//! ```

use std::sync::Arc;
use std::time::Duration;

use ringmail_cluster::{LogPosition, ReplicaProgress, StaleCopyStatus, Status};
use ringmail_peer::{Link, LinkConfig, RpcPool};
use ringmail_runtime::route::{self, OwnerJob};

use super::*;

/// RPC kind: this node's replication progress (answered by any node to a holder of the
/// cluster secret; it changes nothing).
pub const KIND_STATUS: u16 = 0x0406;

/// How long the status command waits for each node's answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// One partition's report: its log end and its replicas' progress.
type Report = (u32, LogPosition, Vec<(String, ReplicaProgress)>);

/// A stale copy a node reported: partition, directory, kind, state.
type StaleReport = (u32, String, String, String);

/// What one node answers.
type Answer = (Vec<Report>, Vec<StaleReport>);

/// The reports of one executor's open partitions.
struct LocalProgress;

impl OwnerJob for LocalProgress {
    type Answer = Vec<Report>;

    async fn run(self, _exec: Rc<Executor>) -> Self::Answer {
        let Some(local) = node::local() else {
            return Vec::new();
        };
        let shippers: Vec<(u32, Rc<_>)> = local
            .shippers
            .borrow()
            .iter()
            .map(|(p, s)| (*p, s.clone()))
            .collect();
        shippers
            .into_iter()
            .filter(|(_, s)| s.serving())
            .filter_map(|(p, s)| {
                let (end, replicas) = s.progress()?;
                Some((p, shipper::position(end), replicas))
            })
            .collect()
    }
}

/// Answers [`KIND_STATUS`]: the reports of every executor of this node.
pub(super) async fn serve_status(exec: &Rc<Executor>) -> Vec<u8> {
    let mut reports = Vec::new();
    for owner in 0..exec.count {
        // An executor shutting down has nothing to report.
        if let Ok(mut r) = route::ask(exec, owner, LocalProgress).await {
            reports.append(&mut r);
        }
    }
    reports.sort_by_key(|r| r.0);
    let stale: Vec<StaleReport> = super::stale::seen()
        .into_iter()
        .map(|s| (s.p, s.dir, s.kind.to_string(), s.state))
        .collect();
    encode(&reports, &stale).into_bytes()
}

fn encode(reports: &[Report], stale: &[StaleReport]) -> String {
    let mut out = String::new();
    for (p, end, replicas) in reports {
        out += &format!("{p}\t{}\t{}", end.segment, end.offset);
        for (node, r) in replicas {
            let (seg, off) = match r.position {
                Some(at) => (at.segment.to_string(), at.offset.to_string()),
                None => ("-".into(), "-".into()),
            };
            out += &format!(
                "\t{node}\t{}\t{seg}\t{off}\t{}\t{}\t{}",
                r.state, r.lag_batches, r.lag_records, r.lag_ms
            );
        }
        out.push('\n');
    }
    for (p, dir, kind, state) in stale {
        // The state is prose: no tab or newline may end up in it.
        let state = state.replace(['\t', '\n'], " ");
        out += &format!("stale\t{p}\t{dir}\t{kind}\t{state}\n");
    }
    out
}

fn decode(text: &str) -> Option<Answer> {
    let mut reports = Vec::new();
    let mut stale = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f[0] == "stale" {
            let [_, p, dir, kind, state] = f[..] else {
                return None;
            };
            stale.push((p.parse().ok()?, dir.into(), kind.into(), state.into()));
            continue;
        }
        if f.len() < 3 || !(f.len() - 3).is_multiple_of(7) {
            return None;
        }
        let end = LogPosition {
            segment: f[1].parse().ok()?,
            offset: f[2].parse().ok()?,
        };
        let mut replicas = Vec::new();
        for r in f[3..].chunks(7) {
            let state = match r[1] {
                "streaming" => "streaming",
                "seeding" => "seeding",
                _ => return None,
            };
            let position = match (r[2], r[3]) {
                ("-", "-") => None,
                (seg, off) => Some(LogPosition {
                    segment: seg.parse().ok()?,
                    offset: off.parse().ok()?,
                }),
            };
            replicas.push((
                r[0].to_string(),
                ReplicaProgress {
                    state,
                    position,
                    lag_batches: r[4].parse().ok()?,
                    lag_records: r[5].parse().ok()?,
                    lag_ms: r[6].parse().ok()?,
                },
            ));
        }
        reports.push((f[0].parse().ok()?, end, replicas));
    }
    Some((reports, stale))
}

/// Asks every live node of `status` for its replication progress and merges the answers
/// in. A node that does not answer within [`ASK_TIMEOUT`] is left out; the lines of its
/// partitions then show the map only. Returns the nodes that did not answer, with why.
pub fn add_progress(
    status: &mut Status,
    cluster: &str,
    secret: Vec<u8>,
) -> Result<Vec<String>, String> {
    let nodes: Vec<(String, String)> = status
        .nodes
        .iter()
        .filter(|n| n.alive)
        .filter_map(|n| Some((n.id.clone(), n.internal.clone()?)))
        .collect();
    // The link's node id names the asker in the nodes' logs; it owns nothing.
    let me = format!("status-{}", std::process::id());
    let link = Link::new(LinkConfig::new(cluster, &me, secret)).map_err(|e| e.to_string())?;
    ringmail_runtime::limits::raise_memlock()?;
    let answers = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("cluster-status")
        .spawn(move || ask_all(link, nodes))
        .map_err(|e| format!("could not start an executor: {e}"))?
        .join()
        .map_err(|e| format!("asking the nodes failed: {e}"))?;
    let mut silent = Vec::new();
    for (node, answer) in answers {
        match answer {
            Ok((reports, stale)) => {
                for (p, end, replicas) in reports {
                    status.set_progress(p, end, &replicas);
                }
                status.stale_copies.extend(stale.into_iter().map(
                    |(partition, dir, kind, state)| StaleCopyStatus {
                        node: node.clone(),
                        partition,
                        dir,
                        kind,
                        state,
                    },
                ));
            }
            Err(why) => silent.push(format!("{node}: {why}")),
        }
    }
    Ok(silent)
}

/// Asks all `nodes` at once, so a node that does not answer costs [`ASK_TIMEOUT`] once.
async fn ask_all(
    link: Arc<Link>,
    nodes: Vec<(String, String)>,
) -> Vec<(String, Result<Answer, String>)> {
    let pool = Rc::new(RpcPool::new(link));
    let asks: Vec<_> = nodes
        .into_iter()
        .map(|(node, addr)| {
            let pool = pool.clone();
            glommio::spawn_local(async move {
                let answer = future::or(ask(&pool, &node, &addr), async {
                    glommio::timer::sleep(ASK_TIMEOUT).await;
                    Err(format!("no answer within {} s", ASK_TIMEOUT.as_secs()))
                })
                .await;
                (node, answer)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for ask in asks {
        answers.push(ask.await);
    }
    pool.close();
    answers
}

async fn ask(pool: &RpcPool, node: &str, addr: &str) -> Result<Answer, String> {
    match pool.call(node, addr, KIND_STATUS, &[]).await {
        Ok(a) if a.status == OK => String::from_utf8(a.payload)
            .ok()
            .and_then(|text| decode(&text))
            .ok_or_else(|| "malformed answer".to_string()),
        Ok(a) => Err(String::from_utf8_lossy(&a.payload).into_owned()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_survive_the_wire() {
        let at = |segment, offset| LogPosition { segment, offset };
        let progress = |state, position, lag_records| ReplicaProgress {
            state,
            position,
            lag_batches: lag_records / 2,
            lag_records,
            lag_ms: lag_records * 10,
        };
        let reports: Vec<Report> = vec![
            (0, at(1, 4096), Vec::new()),
            (
                7,
                at(3, 123_456_789),
                vec![
                    (
                        "n1".into(),
                        progress("streaming", Some(at(3, 123_456_789)), 0),
                    ),
                    ("n-2".into(), progress("seeding", None, 14)),
                ],
            ),
        ];
        let stale: Vec<StaleReport> = vec![
            (
                3,
                "p-0003".into(),
                "old-owner".into(),
                "kept for the operator: with\ttabs".into(),
            ),
            (
                9,
                "p-0009.replica".into(),
                "replica".into(),
                "kept: x".into(),
            ),
        ];
        let (got_reports, got_stale) = decode(&encode(&reports, &stale)).unwrap();
        assert_eq!(got_reports, reports);
        assert_eq!(got_stale[0].3, "kept for the operator: with tabs");
        assert_eq!(got_stale[1], stale[1]);
        assert_eq!(decode(&encode(&reports, &[])), Some((reports, Vec::new())));
        assert_eq!(decode("stale\t1\tp-0001"), None);
        assert_eq!(decode("1\t2"), None);
        assert_eq!(decode("1\t2\t3\tn1\tfloating\t-\t-\t0\t0\t0"), None);
    }
}
