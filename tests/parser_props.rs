//! Property tests of the command reader: hostile input never panics and never makes the
//! reader hold more than one command's worth of memory; chunking never changes the result.

use proptest::prelude::*;
use ringmail::imap::parser::{CommandReader, Limits, Next};

/// Small limits so that the properties reach them often.
fn limits() -> Limits {
    Limits {
        max_line: 256,
        max_literal: 512,
        max_depth: 8,
        max_literals: 4,
    }
}

/// Largest chunk the strategies feed at once.
const MAX_CHUNK: usize = 64;

/// Valid commands whose mutations make good hostile input.
const SEEDS: &[&[u8]] = &[
    b"a1 LOGIN {5}\r\nalice {6+}\r\nsecret\r\n",
    b"a2 UID FETCH 1:*,5:2 (FLAGS BODY.PEEK[1.HEADER.FIELDS (From To)]<0.512>) (CHANGEDSINCE 9 VANISHED)\r\n",
    b"a3 APPEND Sent (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" ~{5+}\r\nhe\0lo {2}\r\nhi\r\n",
    b"a4 UID SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR (FROM \"x\\\"y\" NOT SEEN) UID $\r\n",
    b"a5 SELECT INBOX (QRESYNC (1 2 1:9 (1,2 3,4)))\r\n",
    b"a6 LIST (SUBSCRIBED) \"\" (% \"a*\") RETURN (STATUS (MESSAGES SIZE))\r\n",
    b"a7 STORE 1 (UNCHANGEDSINCE 5) +FLAGS.SILENT (\\Deleted $Junk)\r\n",
    b"a8 SORT RETURN (ALL) (REVERSE DATE) UTF-8 SINCE 1-Jan-2020\r\n",
    b"a9 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n",
];

/// Feeds `input` in the given chunk sizes, draining after each feed, and checks the
/// memory bound; returns a summary of the events. With `raw_lines`, chunks starting with
/// `D` are also read with `next_line` (as IDLE's DONE would be).
fn run(input: &[u8], chunks: &[usize], raw_lines: bool) -> Vec<String> {
    let l = limits();
    let biggest = chunks.iter().copied().max().unwrap_or(1);
    let bound = l.max_line + l.max_literal as usize + biggest + 64;
    let mut r = CommandReader::new(l);
    let mut events = Vec::new();
    let mut rest = input;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let n = sizes.next().copied().unwrap_or(1).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        r.feed(chunk);
        loop {
            match r.next() {
                Next::Command(c) => events.push(format!("{c:?}")),
                Next::Continue => events.push("+".to_owned()),
                Next::Reject(rej) => events.push(format!("{rej:?}")),
                Next::NeedMore => break,
            }
        }
        assert!(
            r.buffered_capacity() <= bound,
            "reader holds {} bytes (bound {bound})",
            r.buffered_capacity()
        );
        // Raw lines (IDLE DONE) are read with the same buffer; they must not panic either.
        if raw_lines && chunk.first() == Some(&b'D') {
            let _ = r.next_line();
        }
    }
    events
}

/// A mutation of a seed command: flip, insert or delete bytes, or truncate.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(SEEDS),
        prop::collection::vec((any::<u8>(), any::<usize>(), 0u8..4), 0..6),
    )
        .prop_map(|(seed, edits)| {
            let mut v = seed.to_vec();
            for (byte, at, op) in edits {
                let i = at % (v.len() + 1);
                match op {
                    0 if i < v.len() => v[i] = byte,
                    1 => v.insert(i, byte),
                    2 if i < v.len() => {
                        v.remove(i);
                    }
                    _ => v.truncate(i),
                }
            }
            v
        })
}

/// Bytes biased towards IMAP syntax, so literals, parentheses and CRLFs are common.
fn imapish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        any::<u8>().prop_map(|b| vec![b]),
        prop::sample::select(vec![
            &b"\r\n"[..],
            b"{3}\r\n",
            b"{4+}\r\n",
            b"~{2}\r\n",
            b"{99999999999}\r\n",
            b"{600+}\r\n",
            b"(",
            b")",
            b"\"",
            b" ",
            b"a FETCH 1 ",
            b"b APPEND x ",
            b"NOT ",
            b"OR ",
            b"BODY[",
        ])
        .prop_map(|t| t.to_vec()),
    ];
    prop::collection::vec(token, 0..200).prop_map(|ts| ts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_nor_overallocate(
        input in prop::collection::vec(any::<u8>(), 0..2048),
        chunks in prop::collection::vec(1usize..MAX_CHUNK, 1..8),
    ) {
        run(&input, &chunks, true);
    }

    #[test]
    fn imap_like_streams_never_panic_nor_overallocate(
        input in imapish_bytes(),
        chunks in prop::collection::vec(1usize..MAX_CHUNK, 1..8),
    ) {
        run(&input, &chunks, true);
    }

    #[test]
    fn mutated_commands_never_panic(
        cmds in prop::collection::vec(mutated(), 1..6),
        chunks in prop::collection::vec(1usize..MAX_CHUNK, 1..8),
    ) {
        run(&cmds.concat(), &chunks, true);
    }

    /// Valid pipelined commands give the same events however the stream is cut.
    #[test]
    fn chunking_does_not_change_the_result(
        picks in prop::collection::vec(prop::sample::select(SEEDS), 1..6),
        chunks in prop::collection::vec(1usize..MAX_CHUNK, 1..8),
    ) {
        let input = picks.concat();
        let whole = run(&input, &[input.len().max(1)], false);
        prop_assert!(whole.iter().all(|e| !e.starts_with("Rejection")), "{:?}", whole);
        prop_assert_eq!(run(&input, &chunks, false), whole);
    }
}
