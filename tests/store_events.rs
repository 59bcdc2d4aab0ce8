//! Change notification between sessions on one mailbox: the pull model keeps a session's
//! sequence numbers right, and IDLE wakes on a change.

use std::rc::Rc;
use std::time::Duration;

use ringmail::store::{flag, FlagMode, NewMessage, Options, Partition};

fn new(b: &[u8]) -> NewMessage<'_> {
    NewMessage {
        body: b,
        flags: 0,
        keywords: &[],
        internal_date: 0,
        meta: b"",
        search: None,
        text: &[],
    }
}

#[test]
fn changes_since_gives_expunge_numbers_in_the_sessions_view() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p-0000");
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            let p = Rc::new(Partition::open(&dir, Options::default()).await.unwrap());
            p.ensure_user("jo").await.unwrap();
            let b = b"Subject: x\r\n\r\n".to_vec();
            p.append(
                "jo",
                "INBOX",
                &[new(&b), new(&b), new(&b), new(&b), new(&b)],
            )
            .await
            .unwrap();
            // Session A syncs here: 5 messages, UIDs 1..=5.
            let st = p.status("jo", "INBOX").unwrap();
            let (since, view_uidnext, mbox) = (st.highest_modseq, st.uidnext, st.id);

            // IDLE in A wakes on B's change.
            let idle = glommio::spawn_local({
                let p = p.clone();
                async move { p.wait_for_change("jo", mbox, since).await }
            });
            glommio::timer::sleep(Duration::from_millis(5)).await;
            // Session B: expunge 2 and 4, flag 5, append one.
            p.expunge("jo", "INBOX", &[(2, 2), (4, 4)]).await.unwrap();
            idle.await;
            p.store_flags(
                "jo",
                "INBOX",
                &[(5, 5)],
                FlagMode::Add,
                flag::FLAGGED,
                &[],
                None,
            )
            .await
            .unwrap();
            p.append("jo", "INBOX", &[new(&b)]).await.unwrap();

            // Before A is told, its numbers still follow its old view [1,2,3,4,5].
            let old_view: Vec<Option<(u32, bool)>> = p
                .with_mailbox("jo", mbox, |v| {
                    (0..=6)
                        .map(|msn| v.uid_in_view(msn, since, view_uidnext))
                        .collect()
                })
                .unwrap();
            assert_eq!(
                old_view,
                vec![
                    None,
                    Some((1, false)),
                    Some((2, true)),
                    Some((3, false)),
                    Some((4, true)),
                    Some((5, false)),
                    None
                ]
            );
            let c = p.changes_since("jo", mbox, since, view_uidnext).unwrap();
            // A's view was [1,2,3,4,5]: EXPUNGE 4 (uid 4) then EXPUNGE 2 (uid 2).
            assert_eq!(c.expunge_msns, vec![4, 2]);
            assert_eq!(c.vanished, vec![2, 4]);
            assert_eq!(c.exists, 4);
            assert!(c.complete);
            let flagged: Vec<(u32, u32)> = c
                .flag_changes
                .iter()
                .map(|(msn, m)| (*msn, m.uid))
                .collect();
            assert_eq!(flagged, vec![(3, 5)]);
            assert_eq!(c.uidnext, 7);
            assert!(c.highest_modseq > since);
            // Nothing new since the new sync point.
            let again = p
                .changes_since("jo", mbox, c.highest_modseq, c.uidnext)
                .unwrap();
            assert!(again.expunge_msns.is_empty() && again.flag_changes.is_empty());
            p.with_mailbox("jo", mbox, |v| {
                let (uids, complete) = v.vanished_since(since);
                assert_eq!((uids, complete), (vec![2, 4], true));
            })
            .unwrap();
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn a_copy_or_move_racing_an_expunge_of_its_messages_reports_what_it_made() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p-0000");
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            let b = b"Subject: x\r\n\r\nhi\r\n".to_vec();
            let uids = |p: &Partition, mailbox: &str| -> Vec<u32> {
                p.with_mailbox("jo", mailbox, |v| {
                    v.messages().iter().map(|m| m.uid).collect()
                })
                .unwrap()
            };
            let p = Partition::open(&dir, Options::default()).await.unwrap();
            p.ensure_user("jo").await.unwrap();
            p.create_mailbox("jo", "Dst", 0).await.unwrap();
            let mut made = Vec::new();
            for is_move in [false, true] {
                let new_uids = p
                    .append("jo", "INBOX", &[new(&b), new(&b), new(&b)])
                    .await
                    .unwrap()
                    .uids;
                let (first, middle, last) = (new_uids[0], new_uids[1], new_uids[2]);
                // Both are submitted before either is applied: the copy finds all three in
                // the index, but the expunge ahead of it in the log removes one first.
                let gone = [(middle, middle)];
                let expunge = p.expunge("jo", "INBOX", &gone);
                let copy = async {
                    let set = [(first, last)];
                    if is_move {
                        p.move_messages("jo", "INBOX", &set, "Dst").await
                    } else {
                        p.copy("jo", "INBOX", &set, "Dst").await
                    }
                };
                let (expunged, copied) = futures_lite::future::zip(expunge, copy).await;
                assert_eq!(expunged.unwrap(), vec![middle]);
                // The result names exactly the copies that exist, not the expunged one.
                let pairs = copied.unwrap().pairs;
                let sources: Vec<u32> = pairs.iter().map(|p| p.0).collect();
                assert_eq!(sources, vec![first, last], "move {is_move}");
                made.extend(pairs.iter().map(|p| p.1));
                assert_eq!(uids(&p, "Dst"), made, "move {is_move}");
                let inbox = uids(&p, "INBOX");
                assert_eq!(
                    inbox.ends_with(&[first, last]),
                    !is_move,
                    "move {is_move}: {inbox:?}"
                );
            }
            let inbox = uids(&p, "INBOX");
            p.close().await.unwrap();
            // Replaying the log comes to the same state.
            let p = Partition::open(&dir, Options::default()).await.unwrap();
            assert_eq!(uids(&p, "Dst"), made);
            assert_eq!(uids(&p, "INBOX"), inbox);
            p.close().await.unwrap();
        })
        .unwrap()
        .join()
        .unwrap();
}
