//! The header-search values (`search_fields`) stay aligned with the index through APPEND,
//! COPY, MOVE, EXPUNGE, replay, checkpoints, and a checkpoint written before they existed.

use std::path::Path;

use ringmail_mime::search_header::SearchField;

use super::checkpoint;
use super::search_fields::SearchFields;
use super::test_support::{open, run, tmp_partition, user_with_copy_mailbox};
use super::{NewMessage, Partition, SieveLogEntry};

const ALL_FIELDS: [SearchField; 11] = [
    SearchField::From,
    SearchField::To,
    SearchField::Cc,
    SearchField::Bcc,
    SearchField::HeaderFrom,
    SearchField::HeaderTo,
    SearchField::HeaderCc,
    SearchField::HeaderBcc,
    SearchField::HeaderSubject,
    SearchField::Sort,
    SearchField::SentDay,
];

/// Message `i`: varied headers (encoded words, folding, several To fields, no header).
fn message(i: usize) -> Vec<u8> {
    let header = match i % 5 {
        0 => format!(
            "From: Ann {i} <ann{i}@x.test>\r\nSubject: plain {i}\r\n\
             Date: {} Mar 2020 10:00:00 +0100\r\n",
            i + 1
        ),
        1 => format!(
            "From: =?utf-8?q?J=C3=B6rg_{i}?= <j@x.de>\r\nTo: a@b.test\r\nTo: c{i}@d.test\r\n\
             Subject: =?iso-8859-1?q?caf=E9?= {i}\r\n"
        ),
        2 => format!("Cc: team: z{i}@y.test;\r\nSubject: folded\r\n line {i}\r\n"),
        3 => "Bcc: hidden@x.test\r\n".to_string(),
        _ => String::new(),
    };
    format!("{header}\r\nbody {i}\r\n").into_bytes()
}

/// Every value of every message, field by field.
fn dump(fields: &SearchFields) -> Vec<Vec<(bool, Vec<u8>)>> {
    let mut out = Vec::new();
    for field in ALL_FIELDS {
        let arena = fields.arena(field).expect("complete");
        for pos in 0..arena.len() {
            out.push(
                arena
                    .values(pos)
                    .map(|v| (v.plain, v.text.to_vec()))
                    .collect(),
            );
        }
    }
    out
}

/// What the values of messages `ids` (in this order) must be.
fn expected(ids: &[usize]) -> Vec<Vec<(bool, Vec<u8>)>> {
    let mut f = SearchFields::new();
    for &i in ids {
        f.push_message(&message(i));
    }
    dump(&f)
}

fn stored(p: &Partition, mailbox: &str) -> Vec<Vec<(bool, Vec<u8>)>> {
    p.with_mailbox("u", mailbox, |v| {
        assert_eq!(
            v.search_fields().map(SearchFields::len),
            Some(v.messages().len())
        );
        dump(v.search_fields().unwrap())
    })
    .unwrap()
}

async fn check_state(p: &Partition) {
    // INBOX lost 0, 3 and 4 to EXPUNGE and 7 to MOVE; Copy got 1, 2 and 7.
    assert_eq!(stored(p, "INBOX"), expected(&[1, 2, 5, 6, 8, 9]), "INBOX");
    assert_eq!(stored(p, "Copy"), expected(&[1, 2, 7]), "Copy");
}

#[test]
fn values_follow_the_index_through_changes_replay_and_checkpoints() {
    let (_tmp, dir) = tmp_partition();
    let d = dir.clone();
    run(move || async move {
        let p = open(&d).await;
        user_with_copy_mailbox(&p).await;
        let bodies: Vec<Vec<u8>> = (0..10).map(message).collect();
        let msgs: Vec<NewMessage<'_>> = bodies.iter().map(|b| NewMessage::plain(b)).collect();
        p.append("u", "INBOX", &msgs).await.unwrap();
        assert_eq!(stored(&p, "INBOX"), expected(&(0..10).collect::<Vec<_>>()));
        p.copy("u", "INBOX", &[(2, 3)], "Copy").await.unwrap();
        p.move_messages("u", "INBOX", &[(8, 8)], "Copy")
            .await
            .unwrap();
        p.expunge("u", "INBOX", &[(1, 1), (4, 5)]).await.unwrap();
        check_state(&p).await;
        // Dropped without a checkpoint: the next open replays the log.
        std::mem::forget(p);
    });
    let d = dir.clone();
    run(move || async move {
        let p = open(&d).await;
        check_state(&p).await;
        p.close().await.unwrap();
    });
    assert_eq!(version_of_newest(&dir), checkpoint::VERSION);
    let d = dir.clone();
    run(move || async move {
        let p = open(&d).await;
        check_state(&p).await;
        p.close().await.unwrap();
    });
}

fn version_of_newest(dir: &Path) -> u32 {
    let newest = checkpoint::list(dir).unwrap()[0];
    let image = std::fs::read(checkpoint::path(dir, newest)).unwrap();
    u32::from_le_bytes(image[8..12].try_into().unwrap())
}

/// A checkpoint of an older release (version 1, or version 3 with a Sieve error log) has
/// no values: they are rebuilt from the messages, and the rest of it still loads.
#[test]
fn a_checkpoint_without_values_is_rebuilt_from_the_messages() {
    for with_sieve_log in [false, true] {
        rebuilt_from_older_checkpoint(with_sieve_log);
    }
}

fn rebuilt_from_older_checkpoint(with_sieve_log: bool) {
    let (_tmp, dir) = tmp_partition();
    let d = dir.clone();
    run(move || async move {
        let p = open(&d).await;
        user_with_copy_mailbox(&p).await;
        if with_sieve_log {
            p.put_script("u", "s", "keep;").await.unwrap();
            p.log_sieve_error("u", log_entry()).await.unwrap();
        }
        for i in 0..10 {
            p.append("u", "INBOX", &[NewMessage::plain(&message(i))])
                .await
                .unwrap();
        }
        p.copy("u", "INBOX", &[(2, 3)], "Copy").await.unwrap();
        p.checkpoint().await.unwrap();
        // After the checkpoint: replayed onto the rebuilt values.
        p.move_messages("u", "INBOX", &[(8, 8)], "Copy")
            .await
            .unwrap();
        p.expunge("u", "INBOX", &[(1, 1), (4, 5)]).await.unwrap();
        std::mem::forget(p);
    });
    // Rewrite the newest checkpoint as an older ringmail would have: no values.
    let newest = checkpoint::list(&dir).unwrap()[0];
    let path = checkpoint::path(&dir, newest);
    let (mut index, pos) = checkpoint::decode(&std::fs::read(&path).unwrap()).unwrap();
    for mb in index.users.get_mut("u").unwrap().mailboxes.values_mut() {
        mb.fields = SearchFields::default();
    }
    let old = checkpoint::encode(&index, pos).unwrap();
    let version = if with_sieve_log {
        checkpoint::VERSION_LOGS
    } else {
        1
    };
    assert_eq!(u32::from_le_bytes(old[8..12].try_into().unwrap()), version);
    std::fs::write(&path, old).unwrap();
    run(move || async move {
        let p = open(&dir).await;
        check_state(&p).await;
        let log = if with_sieve_log {
            vec![log_entry()]
        } else {
            vec![]
        };
        assert_eq!(p.sieve_log("u"), log);
        p.close().await.unwrap();
    });
}

fn log_entry() -> SieveLogEntry {
    SieveLogEntry {
        time: 1_700_000_000,
        script: "s".into(),
        line: 1,
        message: "m".into(),
    }
}

/// Values brought by the appending session (from its own analysis) are the ones kept, and
/// equal what the store extracts itself, in one MULTIAPPEND that mixes both.
#[test]
fn values_brought_by_the_session_equal_those_the_store_extracts() {
    let (_tmp, dir) = tmp_partition();
    run(move || async move {
        let p = open(&dir).await;
        p.ensure_user("u").await.unwrap();
        let bodies: Vec<Vec<u8>> = (0..10).map(message).collect();
        let analyses: Vec<_> = bodies
            .iter()
            .map(|b| ringmail_mime::analyze_for_store(b))
            .collect();
        let msgs: Vec<NewMessage<'_>> = bodies
            .iter()
            .zip(&analyses)
            .enumerate()
            .map(|(i, (b, a))| NewMessage {
                meta: &a.meta,
                search: (i % 2 == 0).then_some(&a.search),
                ..NewMessage::plain(b)
            })
            .collect();
        p.append("u", "INBOX", &msgs).await.unwrap();
        assert_eq!(stored(&p, "INBOX"), expected(&(0..10).collect::<Vec<_>>()));
        p.close().await.unwrap();
    });
}

/// A checkpoint of a ringmail that kept fewer fields (no sent days: ten arenas) loads, and
/// its values are rebuilt from the messages with every field.
#[test]
fn values_with_fewer_fields_are_rebuilt_from_the_messages() {
    let (_tmp, dir) = tmp_partition();
    let d = dir.clone();
    run(move || async move {
        let p = open(&d).await;
        user_with_copy_mailbox(&p).await;
        for i in 0..10 {
            p.append("u", "INBOX", &[NewMessage::plain(&message(i))])
                .await
                .unwrap();
        }
        p.copy("u", "INBOX", &[(2, 3)], "Copy").await.unwrap();
        p.move_messages("u", "INBOX", &[(8, 8)], "Copy")
            .await
            .unwrap();
        p.expunge("u", "INBOX", &[(1, 1), (4, 5)]).await.unwrap();
        p.checkpoint().await.unwrap();
        std::mem::forget(p);
    });
    let newest = checkpoint::list(&dir).unwrap()[0];
    let path = checkpoint::path(&dir, newest);
    let (mut index, pos) = checkpoint::decode(&std::fs::read(&path).unwrap()).unwrap();
    for mb in index.users.get_mut("u").unwrap().mailboxes.values_mut() {
        mb.fields.keep_first_fields(ALL_FIELDS.len() - 1);
    }
    std::fs::write(&path, checkpoint::encode(&index, pos).unwrap()).unwrap();
    run(move || async move {
        let p = open(&dir).await;
        check_state(&p).await;
        p.close().await.unwrap();
    });
}

/// A walk over the first values of a run of messages gives what `values` gives message by
/// message, for fields with none, one and several values per message, from any start.
#[test]
fn first_values_are_each_messages_first_value() {
    let mut fields = SearchFields::new();
    (0..40).for_each(|i| fields.push_message(&message(i)));
    for field in ALL_FIELDS {
        let arena = fields.arena(field).expect("complete");
        for start in [0, 1, 3, 17, 39, 40] {
            for end in [start, start + 1, 25.max(start), 40] {
                let walked: Vec<Option<Vec<u8>>> = arena
                    .first_values(start..end.min(40))
                    .map(|v| v.map(<[u8]>::to_vec))
                    .collect();
                let each: Vec<Option<Vec<u8>>> = (start..end.min(40))
                    .map(|pos| arena.values(pos).next().map(|v| v.text.to_vec()))
                    .collect();
                assert_eq!(walked, each, "{field:?} {start}..{end}");
            }
        }
    }
}
