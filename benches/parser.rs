//! Command parsing: ringmail's reader against imap-codec's `CommandCodec::decode` on one
//! corpus of the commands Thunderbird, Apple Mail and Outlook send most.
//!
//! Run: `cargo bench --bench parser -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use imap_codec::decode::Decoder;
use imap_codec::CommandCodec;
use ringmail::imap::parser::{CommandReader, Limits, Next};

/// A message as a client would APPEND it to Sent (about 2 KiB).
fn message() -> Vec<u8> {
    let mut m = b"From: Alice <alice@example.org>\r\nTo: Bob <bob@example.net>\r\n\
Subject: Quarterly numbers\r\nDate: Tue, 12 Mar 2024 10:15:02 +0100\r\n\
Message-ID: <20240312101502.1234@example.org>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\n"
        .to_vec();
    for i in 0..28 {
        m.extend_from_slice(
            format!("Line {i:02} of the body, with enough words to look like prose.\r\n")
                .as_bytes(),
        );
    }
    m
}

/// The corpus: pipelined commands as one byte stream.
fn corpus() -> Vec<u8> {
    let thunderbird_headers = "From To Cc Bcc Subject Date Message-ID Priority X-Priority \
References Newsgroups In-Reply-To Content-Type Reply-To";
    let mut c = Vec::new();
    let mut cmd = |s: &str| c.extend_from_slice(s.as_bytes());
    // Thunderbird
    cmd("4 select \"INBOX\"\r\n");
    cmd("5 UID fetch 1:* (FLAGS)\r\n");
    cmd(&format!(
        "6 UID fetch 4837:4850 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS ({thunderbird_headers})])\r\n"
    ));
    cmd("7 UID fetch 4837 (UID RFC822.SIZE BODY.PEEK[])\r\n");
    cmd("8 UID store 4837 +FLAGS (\\Seen)\r\n");
    cmd("9 UID search UNDELETED SINCE 1-Jan-2024\r\n");
    cmd("10 UID fetch 4840,4842:4845 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From Subject Date)])\r\n");
    // Apple Mail
    cmd("2.61 UID FETCH 1:* (FLAGS UID)\r\n");
    cmd(
        "3.61 UID FETCH 38421 (BODYSTRUCTURE BODY.PEEK[HEADER] RFC822.SIZE INTERNALDATE FLAGS)\r\n",
    );
    cmd("4.61 UID FETCH 38421 BODY.PEEK[1]<0.10240>\r\n");
    cmd("5.61 UID SEARCH 1:* NOT DELETED\r\n");
    cmd("6.61 UID STORE 38421 +FLAGS.SILENT (\\Deleted)\r\n");
    cmd("7.61 STATUS \"Sent Messages\" (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)\r\n");
    // Outlook
    cmd("A0003 UID FETCH 1:* (UID FLAGS)\r\n");
    cmd("A0004 UID FETCH 123 (UID RFC822.SIZE BODY.PEEK[])\r\n");
    cmd("A0005 UID STORE 123 +FLAGS.SILENT (\\Seen \\Answered)\r\n");
    cmd("A0006 LIST \"\" \"*\"\r\n");
    cmd("A0007 UID SEARCH OR FROM \"alice@example.org\" SUBJECT \"quarterly numbers\" SINCE 1-Mar-2024\r\n");
    let msg = message();
    // APPENDs: Apple Mail (sync literal), Thunderbird (LITERAL+), Outlook (flags + date).
    c.extend_from_slice(
        format!(
            "8.61 APPEND \"Sent Messages\" (\\Seen) {{{}}}\r\n",
            msg.len()
        )
        .as_bytes(),
    );
    c.extend_from_slice(&msg);
    c.extend_from_slice(b"\r\n");
    c.extend_from_slice(format!("11 append \"Sent\" (\\Seen) {{{}+}}\r\n", msg.len()).as_bytes());
    c.extend_from_slice(&msg);
    c.extend_from_slice(b"\r\n");
    c.extend_from_slice(
        format!(
            "A0008 APPEND Drafts (\\Draft) \"12-Mar-2024 10:15:02 +0100\" {{{}}}\r\n",
            msg.len()
        )
        .as_bytes(),
    );
    c.extend_from_slice(&msg);
    c.extend_from_slice(b"\r\n");
    c
}

/// Parses the corpus with ringmail; returns the number of commands.
fn ringmail_parse(reader: &mut CommandReader, corpus: &[u8]) -> usize {
    reader.feed(corpus);
    let mut n = 0;
    loop {
        match reader.next() {
            Next::Command(c) => {
                black_box(&c);
                n += 1;
            }
            Next::Continue => {}
            Next::Reject(r) => panic!("ringmail rejected the corpus: {r:?}"),
            Next::NeedMore => return n,
        }
    }
}

/// Parses the corpus with imap-codec; returns the number of commands.
fn imap_codec_parse(corpus: &[u8]) -> usize {
    let codec = CommandCodec::new();
    let mut rest = corpus;
    let mut n = 0;
    while !rest.is_empty() {
        match codec.decode(rest) {
            Ok((remaining, cmd)) => {
                black_box(&cmd);
                rest = remaining;
                n += 1;
            }
            Err(e) => panic!("imap-codec rejected the corpus at {n}: {e:?}"),
        }
    }
    n
}

fn bench_parser(c: &mut Criterion) {
    let corpus = corpus();
    let mut reader = CommandReader::new(Limits::default());
    let ours = ringmail_parse(&mut reader, &corpus);
    let theirs = imap_codec_parse(&corpus);
    assert_eq!(ours, theirs, "both parsers must see the same commands");

    let mut group = c.benchmark_group("parse_corpus");
    group.throughput(Throughput::Bytes(corpus.len() as u64));
    group.bench_function("ringmail", |b| {
        b.iter(|| ringmail_parse(&mut reader, black_box(&corpus)))
    });
    group.bench_function("imap-codec", |b| {
        b.iter(|| imap_codec_parse(black_box(&corpus)))
    });
    group.finish();

    // Without the APPEND payloads: the command text alone, where parsing dominates.
    let text_only: Vec<u8> = corpus
        .split_inclusive(|&b| b == b'\n')
        .take_while(|line| !line.windows(6).any(|w| w.eq_ignore_ascii_case(b"APPEND")))
        .flatten()
        .copied()
        .collect();
    let mut group = c.benchmark_group("parse_commands_no_append");
    group.throughput(Throughput::Bytes(text_only.len() as u64));
    group.bench_function("ringmail", |b| {
        b.iter(|| ringmail_parse(&mut reader, black_box(&text_only)))
    });
    group.bench_function("imap-codec", |b| {
        b.iter(|| imap_codec_parse(black_box(&text_only)))
    });
    group.finish();
}

criterion_group!(benches, bench_parser);
criterion_main!(benches);
