//! The search columns (`columns`) stay equal to what the index entries give through APPEND,
//! flag changes, COPY, MOVE, EXPUNGE, replay of the log and checkpoint reloads.

use super::columns::Columns;
use super::test_support::{open, run, tmp_partition, user_with_copy_mailbox};
use super::{flag, FlagMode, NewMessage, Partition};

/// The columns of `mailbox` and the UIDs, flags, keyword names, dates and sizes they must
/// hold (from the entries), after checking that they equal the entries' own columns.
fn columns(p: &Partition, mailbox: &str) -> Vec<(u32, u8, Vec<String>, i64, u32)> {
    p.with_mailbox("u", mailbox, |v| {
        let c = v.columns();
        assert_eq!(
            *c,
            Columns::of(v.messages()),
            "{mailbox}: columns follow the entries"
        );
        (0..c.len())
            .map(|i| {
                let names = v.keyword_set(c.kwsets()[i]);
                (
                    c.uids()[i],
                    c.flags()[i],
                    names.into_iter().map(str::to_string).collect(),
                    c.internal_dates()[i],
                    c.sizes()[i],
                )
            })
            .collect()
    })
    .unwrap()
}

fn body(i: u32) -> Vec<u8> {
    format!("Subject: {i}\r\n\r\n{}\r\n", "x".repeat(i as usize)).into_bytes()
}

/// INBOX after the changes below: 1..=10 appended (date 1000 + i, size of body(i)), 2..=6
/// flagged and keyword "k", 4 unflagged, 3 and 5 expunged, 8 moved out.
fn expected_inbox() -> Vec<(u32, u8, Vec<String>, i64, u32)> {
    [1, 2, 4, 6, 7, 9, 10]
        .into_iter()
        .map(|i| {
            let marked = (2..=6).contains(&i);
            let flags = if marked && i != 4 { flag::FLAGGED } else { 0 } | flag::SEEN;
            let kw = if marked {
                vec!["k".to_string()]
            } else {
                vec![]
            };
            (i, flags, kw, 1000 + i64::from(i), body(i).len() as u32)
        })
        .collect()
}

async fn check_state(p: &Partition) {
    assert_eq!(columns(p, "INBOX"), expected_inbox());
    let copy = columns(p, "Copy");
    // Copy got 2 (with its flags) as UID 1 and 8 as UID 2.
    let from_inbox = |i: u32, uid: u32, flags: u8, kw: Vec<String>| {
        (uid, flags, kw, 1000 + i64::from(i), body(i).len() as u32)
    };
    assert_eq!(
        copy,
        vec![
            from_inbox(2, 1, flag::FLAGGED | flag::SEEN, vec!["k".into()]),
            from_inbox(8, 2, flag::SEEN, vec![]),
        ]
    );
}

#[test]
fn columns_follow_the_entries_through_changes_replay_and_checkpoints() {
    let (_tmp, dir) = tmp_partition();
    let d = dir.clone();
    run(move || async move {
        let p = open(&d).await;
        user_with_copy_mailbox(&p).await;
        let bodies: Vec<Vec<u8>> = (1..=10).map(body).collect();
        let msgs: Vec<NewMessage<'_>> = bodies
            .iter()
            .zip(1..)
            .map(|(b, i)| NewMessage {
                flags: flag::SEEN,
                internal_date: 1000 + i,
                ..NewMessage::plain(b)
            })
            .collect();
        p.append("u", "INBOX", &msgs).await.unwrap();
        let mark = FlagMode::Add;
        p.store_flags("u", "INBOX", &[(2, 6)], mark, flag::FLAGGED, &["k"], None)
            .await
            .unwrap();
        p.store_flags(
            "u",
            "INBOX",
            &[(4, 4)],
            FlagMode::Remove,
            flag::FLAGGED,
            &[],
            None,
        )
        .await
        .unwrap();
        p.copy("u", "INBOX", &[(2, 2)], "Copy").await.unwrap();
        p.move_messages("u", "INBOX", &[(8, 8)], "Copy")
            .await
            .unwrap();
        p.expunge("u", "INBOX", &[(3, 3), (5, 5)]).await.unwrap();
        check_state(&p).await;
        // Dropped without a checkpoint: the next open replays the log.
        std::mem::forget(p);
    });
    let d = dir.clone();
    run(move || async move {
        let p = open(&d).await;
        check_state(&p).await;
        // Closing writes a checkpoint: the next open loads it and rebuilds the columns.
        p.close().await.unwrap();
    });
    let d = dir.clone();
    run(move || async move {
        let p = open(&d).await;
        check_state(&p).await;
        // A change after the checkpoint, replayed onto the rebuilt columns.
        p.store_flags(
            "u",
            "INBOX",
            &[(1, 1)],
            FlagMode::Replace,
            flag::DRAFT,
            &["z"],
            None,
        )
        .await
        .unwrap();
        std::mem::forget(p);
    });
    run(move || async move {
        let p = open(&dir).await;
        let got = columns(&p, "INBOX");
        assert_eq!(got[0].1, flag::DRAFT);
        assert_eq!(got[0].2, vec!["z".to_string()]);
        assert_eq!(got[1..], expected_inbox()[1..]);
        p.close().await.unwrap();
    });
}
