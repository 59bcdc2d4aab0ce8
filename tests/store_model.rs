//! Model test: random operations applied to the store and to a plain in-memory model, with
//! clean restarts and crashes (drop without close, plus a garbage unsynced tail) at random
//! points, and explicit compactions. After every operation the two agree (UIDNEXT included,
//! which raise_uidnext and expunges of the newest messages set apart from the highest UID);
//! after every restart the store equals what it was before, down to modseqs and ids.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringmail::store::{flag, FlagMode, NewMessage, Options, Partition, Quota, StoreError};

#[derive(Debug, Clone, PartialEq)]
struct MMsg {
    body: Vec<u8>,
    meta: Vec<u8>,
    flags: u8,
    kw: BTreeSet<String>,
}

#[derive(Debug, Clone, Default)]
struct MBox {
    uidnext: u32,
    msgs: BTreeMap<u32, MMsg>,
}

#[derive(Debug, Default)]
struct MUser {
    boxes: BTreeMap<String, MBox>,
    subs: BTreeSet<String>,
    quota_bytes: u64,
}

impl MUser {
    fn new() -> MUser {
        let mut u = MUser {
            quota_bytes: u64::MAX,
            ..MUser::default()
        };
        u.boxes.insert(
            "INBOX".into(),
            MBox {
                uidnext: 1,
                ..MBox::default()
            },
        );
        u
    }
    fn used(&self) -> u64 {
        self.boxes
            .values()
            .flat_map(|b| b.msgs.values())
            .map(|m| m.body.len() as u64)
            .sum()
    }
}

fn err_name(e: &StoreError) -> &'static str {
    match e {
        StoreError::NoSuchMailbox => "nomailbox",
        StoreError::AlreadyExists => "exists",
        StoreError::InvalidName => "invalid",
        StoreError::NotPermitted(_) => "notpermitted",
        StoreError::OverQuota => "overquota",
        other => panic!("unexpected store error {other:?}"),
    }
}

const NAMES: &[&str] = &["INBOX", "a", "b", "a/x", "a/y", "c", "INBOX/z", "inbox"];
const KWS: &[&str] = &["$Junk", "work", "$Forwarded"];
const USERS: &[&str] = &["alice", "bob"];

fn canon(n: &str) -> String {
    ringmail::store::normalize_name(n).unwrap()
}

fn ranges_in(rng: &mut StdRng, uidnext: u32) -> Vec<(u32, u32)> {
    let a = rng.gen_range(1..=uidnext.max(1));
    let b = rng.gen_range(a..=uidnext.max(1) + 1);
    vec![(a, b)]
}

fn in_ranges(uid: u32, r: &[(u32, u32)]) -> bool {
    r.iter().any(|&(a, b)| uid >= a && uid <= b)
}

/// Everything observable through the public API, for before/after-restart comparison.
async fn dump(p: &Partition) -> String {
    let mut out = String::new();
    for user in USERS {
        out += &format!(
            "user {user} subs {:?} quota {:?}\n",
            p.subscriptions(user),
            p.quota(user)
        );
        for l in p.list_mailboxes(user) {
            out += &format!("{l:?} {:?}\n", p.status(user, l.id).unwrap());
            let entries = p
                .with_mailbox(user, l.id, |v| {
                    v.messages()
                        .iter()
                        .map(|m| {
                            (
                                *m,
                                v.keywords(m)
                                    .iter()
                                    .map(|s| s.to_string())
                                    .collect::<Vec<_>>(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap();
            for (m, kw) in entries {
                let body = p.read_message(user, l.id, m.uid, None).await.unwrap();
                let meta = p.read_meta(user, l.id, m.uid).await.unwrap();
                // Where the body lies (segment, offset) may differ: a crash between
                // compaction's switch and its checkpoint recovers the old, equal copy.
                let (mut logical, bytes) = (m, (&body[..], &meta[..]));
                logical.segment = 0;
                logical.offset = 0;
                out += &format!("  {logical:?} {kw:?} {bytes:?}\n");
            }
        }
    }
    out
}

/// Compares the store with the model.
async fn compare(p: &Partition, model: &BTreeMap<String, MUser>) {
    for (user, mu) in model {
        let names: Vec<String> = p.list_mailboxes(user).into_iter().map(|l| l.name).collect();
        let want: Vec<String> = mu.boxes.keys().cloned().collect();
        assert_eq!(names, want, "mailboxes of {user}");
        assert_eq!(
            p.subscriptions(user),
            mu.subs.iter().cloned().collect::<Vec<_>>()
        );
        assert_eq!(p.quota(user).used_bytes, mu.used());
        for (name, mb) in &mu.boxes {
            let st = p.status(user, name.as_str()).unwrap();
            assert_eq!(st.uidnext, mb.uidnext, "uidnext of {name}");
            assert_eq!(st.messages as usize, mb.msgs.len(), "count of {name}");
            let got = p
                .with_mailbox(user, name.as_str(), |v| {
                    v.messages()
                        .iter()
                        .map(|m| {
                            (
                                m.uid,
                                m.flags,
                                v.keywords(m)
                                    .iter()
                                    .map(|s| s.to_string())
                                    .collect::<BTreeSet<_>>(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap();
            let want: Vec<_> = mb
                .msgs
                .iter()
                .map(|(u, m)| (*u, m.flags, m.kw.clone()))
                .collect();
            assert_eq!(got, want, "messages of {name}");
            for (uid, m) in &mb.msgs {
                let body = p
                    .read_message(user, name.as_str(), *uid, None)
                    .await
                    .unwrap();
                assert_eq!(&body[..], &m.body[..]);
                let meta = p.read_meta(user, name.as_str(), *uid).await.unwrap();
                assert_eq!(&meta[..], &m.meta[..]);
            }
        }
    }
}

fn options(rng: &mut StdRng) -> Options {
    Options {
        segment_size: rng.gen_range(600..8_000),
        checkpoint_every: rng.gen_range(3..40),
        // Low thresholds so background compaction runs often during the test.
        compact_dead_share: rng.gen_range(0.0..0.5),
        ..Options::default()
    }
}

/// Appends garbage to the active (highest) segment, as a torn unsynced write would.
fn scribble_tail(dir: &Path, rng: &mut StdRng) {
    use std::io::Write;
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segs.sort();
    if let Some(last) = segs.last() {
        let mut f = std::fs::OpenOptions::new().append(true).open(last).unwrap();
        let n = rng.gen_range(1..100);
        let junk: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
        f.write_all(&junk).unwrap();
    }
}

async fn run_case(seed: u64, steps: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p-0000");
    let mut p = Partition::open(&dir, options(&mut rng)).await.unwrap();
    let mut model: BTreeMap<String, MUser> = BTreeMap::new();
    for u in USERS {
        p.ensure_user(u).await.unwrap();
        model.insert(u.to_string(), MUser::new());
    }
    for step in 0..steps {
        let user = USERS[rng.gen_range(0..USERS.len())];
        let mu = model.get_mut(user).unwrap();
        let name = canon(NAMES[rng.gen_range(0..NAMES.len())]);
        let op = rng.gen_range(0..100);
        match op {
            0..=5 => {
                let want = if mu.boxes.contains_key(&name) {
                    Err("exists")
                } else {
                    Ok(())
                };
                let got = p.create_mailbox(user, &name, 0).await.map(|_| ());
                assert_eq!(
                    got.as_ref().map_err(err_name).copied(),
                    want,
                    "step {step} create {name}"
                );
                if want.is_ok() {
                    mu.boxes.insert(
                        name,
                        MBox {
                            uidnext: 1,
                            ..MBox::default()
                        },
                    );
                }
            }
            6..=8 => {
                let to = canon(NAMES[rng.gen_range(0..NAMES.len())]);
                let child = format!("{name}/");
                let want = if !mu.boxes.contains_key(&name) {
                    Err("nomailbox")
                } else if mu.boxes.contains_key(&to) {
                    Err("exists")
                } else if to.starts_with(&child) {
                    Err("invalid")
                } else if name != "INBOX"
                    && mu.boxes.keys().any(|k| {
                        k.strip_prefix(&child)
                            .is_some_and(|r| mu.boxes.contains_key(&format!("{to}/{r}")))
                    })
                {
                    Err("exists")
                } else {
                    Ok(())
                };
                let got = p.rename_mailbox(user, &name, &to).await;
                assert_eq!(
                    got.as_ref().map_err(err_name).copied(),
                    want,
                    "step {step} rename {name} {to}"
                );
                if want.is_ok() {
                    let b = mu.boxes.remove(&name).unwrap();
                    if name == "INBOX" {
                        mu.boxes.insert(
                            "INBOX".into(),
                            MBox {
                                uidnext: 1,
                                ..MBox::default()
                            },
                        );
                    } else {
                        let kids: Vec<String> = mu
                            .boxes
                            .keys()
                            .filter(|k| k.starts_with(&child))
                            .cloned()
                            .collect();
                        for k in kids {
                            let kb = mu.boxes.remove(&k).unwrap();
                            mu.boxes.insert(format!("{to}/{}", &k[child.len()..]), kb);
                        }
                    }
                    mu.boxes.insert(to, b);
                }
            }
            9..=10 => {
                let want = if name == "INBOX" {
                    Err("notpermitted")
                } else if !mu.boxes.contains_key(&name) {
                    Err("nomailbox")
                } else {
                    Ok(())
                };
                let got = p.delete_mailbox(user, &name).await;
                assert_eq!(
                    got.as_ref().map_err(err_name).copied(),
                    want,
                    "step {step} delete {name}"
                );
                if want.is_ok() {
                    mu.boxes.remove(&name);
                }
            }
            11..=13 => {
                let on = rng.gen_bool(0.6);
                p.subscribe(user, &name, on).await.unwrap();
                if on {
                    mu.subs.insert(name);
                } else {
                    mu.subs.remove(&name);
                }
            }
            14 => {
                let q = if rng.gen_bool(0.5) {
                    u64::MAX
                } else {
                    mu.used() + rng.gen_range(0..3000)
                };
                p.set_quota(
                    user,
                    Quota {
                        max_bytes: q,
                        max_messages: u64::MAX,
                    },
                )
                .await
                .unwrap();
                mu.quota_bytes = q;
            }
            15..=49 => {
                let n = rng.gen_range(1..=3);
                let msgs: Vec<MMsg> = (0..n)
                    .map(|_| MMsg {
                        body: (0..rng.gen_range(10..600))
                            .map(|_| rng.gen_range(32..127u8))
                            .collect(),
                        meta: (0..rng.gen_range(0..50)).map(|_| rng.gen()).collect(),
                        flags: rng.gen::<u8>() & flag::ALL,
                        kw: KWS
                            .iter()
                            .filter(|_| rng.gen_bool(0.3))
                            .map(|s| s.to_string())
                            .collect(),
                    })
                    .collect();
                let kws: Vec<Vec<&str>> = msgs
                    .iter()
                    .map(|m| m.kw.iter().map(|s| s.as_str()).collect())
                    .collect();
                let new: Vec<NewMessage> = msgs
                    .iter()
                    .zip(&kws)
                    .map(|(m, k)| NewMessage {
                        body: &m.body,
                        flags: m.flags,
                        keywords: k,
                        internal_date: 1_700_000_000,
                        meta: &m.meta,
                        search: None,
                        text: &[],
                    })
                    .collect();
                let bytes: u64 = msgs.iter().map(|m| m.body.len() as u64).sum();
                let want = match mu.boxes.get(&name) {
                    None => Err("nomailbox"),
                    Some(_) if mu.used().saturating_add(bytes) > mu.quota_bytes => Err("overquota"),
                    Some(b) => Ok((b.uidnext..b.uidnext + n).collect::<Vec<u32>>()),
                };
                let got = p.append(user, name.as_str(), &new).await.map(|r| r.uids);
                assert_eq!(
                    got.as_ref().map_err(err_name),
                    want.as_ref().map_err(|e| *e),
                    "step {step} append"
                );
                if let Ok(uids) = want {
                    let b = mu.boxes.get_mut(&name).unwrap();
                    for (u, m) in uids.into_iter().zip(msgs) {
                        b.msgs.insert(u, m);
                    }
                    b.uidnext += n;
                }
            }
            50..=69 => {
                let Some(b) = mu.boxes.get_mut(&name) else {
                    continue;
                };
                let r = ranges_in(&mut rng, b.uidnext);
                let mode =
                    [FlagMode::Add, FlagMode::Remove, FlagMode::Replace][rng.gen_range(0..3)];
                let fl = rng.gen::<u8>() & flag::ALL;
                let kw: BTreeSet<String> = KWS
                    .iter()
                    .filter(|_| rng.gen_bool(0.4))
                    .map(|s| s.to_string())
                    .collect();
                let kwv: Vec<&str> = kw.iter().map(|s| s.as_str()).collect();
                p.store_flags(user, name.as_str(), &r, mode, fl, &kwv, None)
                    .await
                    .unwrap();
                for (_, m) in b.msgs.iter_mut().filter(|(u, _)| in_ranges(**u, &r)) {
                    match mode {
                        FlagMode::Add => {
                            m.flags |= fl;
                            m.kw.extend(kw.iter().cloned());
                        }
                        FlagMode::Remove => {
                            m.flags &= !fl;
                            m.kw.retain(|k| !kw.contains(k));
                        }
                        FlagMode::Replace => {
                            m.flags = fl;
                            m.kw = kw.clone();
                        }
                    }
                }
            }
            70..=79 => {
                let to = canon(NAMES[rng.gen_range(0..NAMES.len())]);
                let is_move = rng.gen_bool(0.5);
                let (Some(sb), true) = (mu.boxes.get(&name), mu.boxes.contains_key(&to)) else {
                    continue;
                };
                let r = ranges_in(&mut rng, sb.uidnext);
                let moving: Vec<(u32, MMsg)> = sb
                    .msgs
                    .iter()
                    .filter(|(u, _)| in_ranges(**u, &r))
                    .map(|(u, m)| (*u, m.clone()))
                    .collect();
                let bytes: u64 = moving.iter().map(|(_, m)| m.body.len() as u64).sum();
                let over = !is_move && mu.used().saturating_add(bytes) > mu.quota_bytes;
                let got = if is_move {
                    p.move_messages(user, name.as_str(), &r, to.as_str()).await
                } else {
                    p.copy(user, name.as_str(), &r, to.as_str()).await
                };
                if over {
                    assert_eq!(got.map_err(|e| err_name(&e)), Err("overquota"));
                    continue;
                }
                let got = got.unwrap();
                let dst_next = mu.boxes[&to].uidnext;
                let want: Vec<(u32, u32)> = moving
                    .iter()
                    .enumerate()
                    .map(|(i, (u, _))| (*u, dst_next + i as u32))
                    .collect();
                assert_eq!(got.pairs, want, "step {step} copy pairs");
                // The source loses the moved messages before the destination gains the
                // copies: a move into the mailbox itself keeps them under their new UIDs.
                if is_move {
                    let sb = mu.boxes.get_mut(&name).unwrap();
                    sb.msgs.retain(|u, _| !in_ranges(*u, &r));
                }
                let db = mu.boxes.get_mut(&to).unwrap();
                for ((_, m), (_, du)) in moving.into_iter().zip(&want) {
                    db.msgs.insert(*du, m);
                }
                db.uidnext += want.len() as u32;
            }
            87..=88 => {
                // Sometimes below or at UIDNEXT (a no-op), mostly above it.
                let cur = mu.boxes.get(&name).map_or(1, |b| b.uidnext);
                let v = cur.saturating_sub(3) + rng.gen_range(0..30);
                let want = match mu.boxes.get(&name) {
                    None => Err("nomailbox"),
                    Some(b) => Ok(b.uidnext.max(v)),
                };
                let got = p.raise_uidnext(user, &name, v).await;
                assert_eq!(
                    got.as_ref().map_err(err_name).copied(),
                    want,
                    "step {step} raise_uidnext {name} {v}"
                );
                if let Ok(n) = want {
                    mu.boxes.get_mut(&name).unwrap().uidnext = n;
                }
            }
            89 => {
                // Compaction drops the records that set UIDNEXT (appends of expunged
                // messages, raises); the checkpoint must keep it.
                p.compact().await.unwrap();
            }
            80..=86 => {
                let Some(b) = mu.boxes.get_mut(&name) else {
                    continue;
                };
                let r = ranges_in(&mut rng, b.uidnext);
                let want: Vec<u32> = b
                    .msgs
                    .keys()
                    .copied()
                    .filter(|u| in_ranges(*u, &r))
                    .collect();
                let got = p.expunge(user, name.as_str(), &r).await.unwrap();
                assert_eq!(got, want);
                b.msgs.retain(|u, _| !in_ranges(*u, &r));
            }
            _ => {
                let before = dump(&p).await;
                let crash = rng.gen_bool(0.5);
                if crash {
                    p.crash().await;
                    if rng.gen_bool(0.5) {
                        scribble_tail(&dir, &mut rng);
                    }
                } else {
                    p.close().await.unwrap();
                }
                p = Partition::open(&dir, options(&mut rng)).await.unwrap();
                let after = dump(&p).await;
                assert_eq!(
                    before, after,
                    "seed {seed} step {step}: state changed across restart (crash={crash})"
                );
            }
        }
        compare(&p, &model).await;
    }
    p.close().await.unwrap();
}

#[test]
fn store_matches_model_across_restarts() {
    glommio::LocalExecutorBuilder::default()
        .spawn(|| async move {
            for seed in 0..10u64 {
                run_case(seed, 120).await;
            }
        })
        .unwrap()
        .join()
        .unwrap();
}
