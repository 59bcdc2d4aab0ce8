//! `search::run` over a partition of more than one column block (65,536 messages): each
//! form a search keeps (whole hits, UIDs, message numbers) gives the answer of the
//! message-by-message evaluator, for matches on both sides of the block boundary, decided
//! from the columns or by the index walk, before and after an expunge, told to the session
//! or not yet.

use ringmail_store::{flag, NewMessage, Options, Partition};

use super::header::header_block;
use super::program::{compile_text, Content, Context, Message, Program, Tri};
use super::{run, Collect, Scope, COLUMN_CHUNK};
use crate::recent::RecentUids;
use crate::selected::View;

/// Messages: the first block and some of the second.
const N: u32 = COLUMN_CHUNK as u32 + 2_500;

/// Message `i`: a Date field on most (days around 2020-03-12), a body whose length varies.
fn message(i: u32) -> Vec<u8> {
    let date = match i % 11 {
        0 => String::new(),
        _ => format!("Date: {} Mar 2020 12:00:00 +0000\r\n", 1 + i % 28),
    };
    let body = "x".repeat((i % 97) as usize);
    format!("{date}Subject: m{i}\r\n\r\n{body}\r\n").into_bytes()
}

fn flags(i: u32) -> u8 {
    (i.wrapping_mul(7) % 32) as u8 & flag::ALL
}

const SEARCHES: [&str; 13] = [
    "ALL",
    "UNSEEN",
    "SEEN FLAGGED",
    "DELETED",
    "LARGER 120",
    "SINCE 8-Mar-2020",
    "SENTSINCE 10-Mar-2020",
    "SENTON 12-Mar-2020",
    "OR DRAFT SMALLER 80",
    "NOT UID 100:60000",
    "65000:66000 UNSEEN",
    "UID 65530:65540,67000:*",
    "SUBJECT m6553",
];

fn program(view: &View, text: &str) -> Program {
    let recent = RecentUids::default();
    let cx = Context {
        view,
        saved: &[],
        now: 0,
        recent: &recent,
    };
    compile_text(text, &cx)
}

/// (message number, UID) of every message of `view` that `program` matches, message by
/// message; expunged ones match nothing.
fn expected(p: &Partition, view: &View, program: &Program) -> Vec<(u32, u32)> {
    p.with_mailbox("u", "INBOX", |v| {
        let mut out = Vec::new();
        for (i, &uid) in view.uids.iter().enumerate() {
            let Some(entry) = v.message(uid) else {
                continue;
            };
            let raw = message(uid - 1);
            let verdict = program.eval(&Message {
                msn: i as u32 + 1,
                entry: &entry,
                keywords: 0,
                content: Content::Header(header_block(&raw).unwrap()),
                indexed: None,
            });
            assert_ne!(verdict, Tri::Unknown);
            if verdict == Tri::True {
                out.push((i as u32 + 1, uid));
            }
        }
        out
    })
    .unwrap()
}

async fn check(p: &Partition, mailbox: u64, view: &View, what: &str) {
    let recent = RecentUids::default();
    let never = || false;
    let scope = Scope {
        mail: p,
        user: "u",
        mailbox,
        view,
        saved: &[],
        recent: &recent,
        abandon: &never,
    };
    for text in SEARCHES {
        let program = program(view, text);
        let want = expected(p, view, &program);
        let msns: Vec<u32> = want.iter().map(|w| w.0).collect();
        let uids: Vec<u32> = want.iter().map(|w| w.1).collect();
        let hits = run(&scope, &program, Collect::Hits).await.unwrap();
        let got: Vec<(u32, u32)> = hits.hits.iter().map(|h| (h.msn, h.uid)).collect();
        assert_eq!(got, want, "{text} {what}: hits");
        assert_eq!(hits.numbers(false), msns, "{text} {what}: hits' numbers");
        let found = run(&scope, &program, Collect::Uids).await.unwrap();
        assert_eq!(found.numbers(true), uids, "{text} {what}: UIDs");
        let found = run(&scope, &program, Collect::Msns).await.unwrap();
        assert_eq!(found.numbers(false), msns, "{text} {what}: message numbers");
        // What the answers were meant to show: matches on both sides of the boundary.
        if text == "UNSEEN" {
            let edge = COLUMN_CHUNK as u32;
            assert!(msns.iter().any(|&m| m <= edge) && msns.iter().any(|&m| m > edge));
        }
    }
}

#[test]
fn every_form_a_search_keeps_answers_as_the_evaluator_across_blocks() {
    glommio::LocalExecutorBuilder::default()
        .spawn(|| async {
            let tmp = tempfile::tempdir().unwrap();
            let p = Partition::open(tmp.path().join("p-0000"), Options::default())
                .await
                .unwrap();
            p.ensure_user("u").await.unwrap();
            let bodies: Vec<Vec<u8>> = (0..N).map(message).collect();
            for batch in (0..N).collect::<Vec<_>>().chunks(4_096) {
                let msgs: Vec<NewMessage<'_>> = batch
                    .iter()
                    .map(|&i| NewMessage {
                        flags: flags(i),
                        internal_date: 1_583_020_800 + i64::from(i) * 20,
                        ..NewMessage::plain(&bodies[i as usize])
                    })
                    .collect();
                p.append("u", "INBOX", &msgs).await.unwrap();
            }
            let (mailbox, uids) = p
                .with_mailbox("u", "INBOX", |v| (v.id(), v.columns().uids().to_vec()))
                .unwrap();
            assert_eq!(uids, (1..=N).collect::<Vec<_>>());
            let view = View {
                uids: uids.clone(),
                gone: Vec::new(),
            };
            check(&p, mailbox, &view, "whole").await;

            // Expunged from both blocks, the session not told yet: its view keeps them.
            let gone = [(3, 3), (65_530, 65_540), (N - 5, N - 5)];
            p.expunge("u", "INBOX", &gone).await.unwrap();
            let gone_uids: Vec<u32> = gone.iter().flat_map(|&(a, b)| a..=b).collect();
            let stale = View {
                uids: uids.clone(),
                gone: gone_uids.clone(),
            };
            check(&p, mailbox, &stale, "expunged, not told").await;

            // Told: the message numbers after them move down.
            let told = View {
                uids: uids
                    .iter()
                    .copied()
                    .filter(|u| !gone_uids.contains(u))
                    .collect(),
                gone: Vec::new(),
            };
            check(&p, mailbox, &told, "expunged, told").await;
        })
        .unwrap()
        .join()
        .unwrap();
}
