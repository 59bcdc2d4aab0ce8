//! SEARCH BODY and TEXT answer the same from the searchable text stored at APPEND
//! (`ringmail_mime::search_text`) as from the message itself (`body::contains`,
//! `body::text_contains`, still the path for messages stored without one), over generated
//! messages in many charsets, transfer encodings, HTML, nested messages and encoded headers,
//! and needles taken from their text in changed case, with non-ASCII letters, and across
//! part boundaries.

use base64::Engine as _;
use ringmail_mime::search_text::{any_haystack, message_extent, search_text, Scope};

use super::body;
use super::header::header_block;
use super::program::{Content, Message, Program, Tri};
use super::scanner::Finder;

/// A small deterministic generator (xorshift), so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

const WORDS: &[&str] = &[
    "report",
    "Café",
    "CRÈME",
    "straße",
    "STRASSE",
    "été",
    "ÉTÉ",
    "\u{212A}elvin",
    "kelvin",
    "İstanbul",
    "ﬁle",
    "テスト",
    "東京",
    "Привет",
    "мир",
    "a&b",
    "x<y",
    "zebra-42",
    "naïve",
    "Ǆemal",
    "ΣΊΣΥΦΟΣ",
    "σίσυφος",
    "ok",
    "the",
    "and",
];

const CHARSETS: &[Option<&str>] = &[
    None,
    Some("us-ascii"),
    Some("utf-8"),
    Some("UTF-8"),
    Some("iso-8859-1"),
    Some("windows-1252"),
    Some("koi8-r"),
    Some("shift_jis"),
    Some("iso-2022-jp"),
    Some("x-no-such-charset"),
];

const ENCODINGS: &[Option<&str>] = &[
    None,
    Some("7bit"),
    Some("8bit"),
    Some("base64"),
    Some("quoted-printable"),
    Some("x-uuencode"),
];

fn words(rng: &mut Rng, n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        if i > 0 {
            out.push_str(if rng.below(8) == 0 { "\r\n" } else { " " });
        }
        out.push_str(rng.pick(WORDS));
    }
    out
}

fn quoted_printable(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        if i > 0 && i % 60 == 0 {
            out.extend_from_slice(b"=\r\n");
        }
        if b == b'=' || b >= 0x80 || (b < 0x20 && b != b'\r' && b != b'\n') {
            out.extend_from_slice(format!("={b:02X}").as_bytes());
        } else {
            out.push(b);
        }
    }
    out
}

/// A text part: header and body, the text in `charset`, transfer-encoded.
fn text_part(rng: &mut Rng) -> Vec<u8> {
    let html = rng.below(3) == 0;
    let n = 3 + rng.below(20);
    let mut text = words(rng, n);
    if html {
        text = format!(
            "<html><body><p>{}</p><b>bold</b> &amp; &eacute;t&eacute; &lt;tag&gt;</body></html>",
            text.replace("\r\n", "<br>\r\n")
        );
    }
    let charset = rng.pick(CHARSETS);
    let mut bytes = match charset.and_then(|c| encoding_rs::Encoding::for_label(c.as_bytes())) {
        Some(enc) if !matches!(charset, Some("us-ascii" | "utf-8" | "UTF-8")) => {
            enc.encode(&text).0.into_owned()
        }
        _ => text.into_bytes(),
    };
    if rng.below(10) == 0 {
        bytes.extend_from_slice(b" \xff\xfe broken \xc3");
    }
    let encoding = rng.pick(ENCODINGS);
    let body = match encoding {
        Some("base64") => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
            let lines: Vec<&str> = b64
                .as_bytes()
                .chunks(76)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            lines.join("\r\n").into_bytes()
        }
        Some("quoted-printable") => quoted_printable(&bytes),
        _ => bytes,
    };
    let mut out = format!(
        "Content-Type: text/{}{}\r\n",
        if html { "html" } else { "plain" },
        charset.map_or(String::new(), |c| format!("; charset={c}"))
    )
    .into_bytes();
    if let Some(e) = encoding {
        out.extend_from_slice(format!("Content-Transfer-Encoding: {e}\r\n").as_bytes());
    }
    if rng.below(4) == 0 {
        out.extend_from_slice(b"Content-Description: =?utf-8?q?R=C3=A9sum=C3=A9?=\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    out
}

fn header(rng: &mut Rng) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(b"From: =?iso-8859-1?q?J=F6rg?= <joerg@example.de>\r\n");
    match rng.below(4) {
        0 => h.extend_from_slice(b"Subject: =?utf-8?b?R3LDvMOfZSBhdXMgV2llbg==?=\r\n"),
        1 => h.extend_from_slice(b"Subject: folded\r\n subject line\r\n"),
        2 => h.extend_from_slice(b"Subject: Gr\xfc\xdfe in Latin-1\r\n"),
        _ => h.extend_from_slice(format!("Subject: {}\r\n", words(rng, 4)).as_bytes()),
    }
    h.extend_from_slice(b"X-Tag: Zebra-42\r\nMIME-Version: 1.0\r\n");
    h
}

/// A message (or, at `depth` > 0, an embedded one) of one or more parts.
fn message(rng: &mut Rng, depth: usize) -> Vec<u8> {
    let mut m = header(rng);
    match rng.below(if depth < 2 { 4 } else { 2 }) {
        0 => {
            // Single part: the part's header joins the message header.
            m.extend_from_slice(&text_part(rng));
        }
        1 => {
            m.extend_from_slice(
                b"Content-Type: application/octet-stream\r\n\r\nreport Caf\xc3\xa9 binary\r\n",
            );
        }
        kind => {
            let b = format!("b{depth}x{}", rng.below(1000));
            let sub = if kind == 2 { "alternative" } else { "mixed" };
            m.extend_from_slice(
                format!(
                    "Content-Type: multipart/{sub}; boundary=\"{b}\"\r\n\r\npreamble report\r\n"
                )
                .as_bytes(),
            );
            for _ in 0..1 + rng.below(3) {
                m.extend_from_slice(format!("--{b}\r\n").as_bytes());
                match rng.below(5) {
                    0 => {
                        m.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
                        m.extend_from_slice(&message(rng, depth + 1));
                    }
                    1 => m.extend_from_slice(
                        b"Content-Type: application/pdf; name=\"report.pdf\"\r\n\
                          Content-Transfer-Encoding: base64\r\n\r\nQ2Fmw6kgcmVwb3J0\r\n",
                    ),
                    _ => m.extend_from_slice(&text_part(rng)),
                }
                m.extend_from_slice(b"\r\n");
            }
            m.extend_from_slice(format!("--{b}--\r\nepilogue\r\n").as_bytes());
        }
    }
    m
}

/// Needles: pieces of the message's own decoded text in changed case (some across part
/// boundaries when joined), fixed ones with non-ASCII letters, markup, escapes.
fn needles(rng: &mut Rng, raw: &[u8], meta: &ringmail_mime::MessageMeta) -> Vec<String> {
    let mut out: Vec<String> = [
        "",
        "report",
        "REPORT",
        "café",
        "CAFÉ",
        "crème",
        "STRASSE",
        "straße",
        "ÉTÉ",
        "été",
        "kelvin",
        "KELVIN",
        "\u{212A}",
        "i̇stanbul",
        "İSTANBUL",
        "file",
        "ﬁle",
        "テスト",
        "東京",
        "привет",
        "ПРИВЕТ мир",
        "a&b",
        "&amp;",
        "<b>",
        "bold",
        "bold &",
        "x<y",
        "=E9",
        "=C3",
        "zebra-42",
        "jörg",
        "joerg",
        "grüße",
        "subject line",
        "subject: folded",
        "résumé",
        "report.pdf",
        "preamble",
        "epilogue",
        "binary",
        "\u{fffd}",
        "broken",
        "σίσυφος",
        "ΣΊΣΥΦΟΣ",
        "ǆemal",
        "Ǆ",
        "naïve",
        "the and",
        "<br>",
        "&eacute;",
        "étè",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut texts = ringmail_mime::decoded_text_for_search(meta, raw);
    texts.push(String::from_utf8_lossy(raw).into_owned());
    let joined = texts.join("");
    for text in texts.iter().chain(std::iter::once(&joined)) {
        let chars: Vec<char> = text.chars().collect();
        for _ in 0..4 {
            if chars.is_empty() {
                break;
            }
            let start = rng.below(chars.len());
            let len = 1 + rng.below(12.min(chars.len() - start));
            let piece: String = chars[start..start + len].iter().collect();
            out.push(match rng.below(3) {
                0 => piece.to_uppercase(),
                1 => piece.to_lowercase(),
                _ => piece,
            });
        }
    }
    out
}

fn old_body(finder: &Finder, raw: &[u8], meta: &ringmail_mime::MessageMeta) -> bool {
    body::contains(finder, meta, raw)
}

fn old_text(finder: &Finder, raw: &[u8], meta: &ringmail_mime::MessageMeta) -> bool {
    // What `read_and_eval` hands TEXT: the header up to the root's header end.
    let end = (meta.root.header_end as usize).min(raw.len());
    body::text_contains(finder, &raw[..end], meta, raw)
}

fn new(finder: &Finder, stored: &[u8], raw: &[u8], scope: Scope) -> bool {
    // The search reads the message only as far as the references reach.
    let extent = message_extent(stored).expect("a stored text this version reads");
    any_haystack(stored, &raw[..extent], scope, |h| finder.is_match(h))
        .expect("a stored text this version reads")
}

fn check(raw: &[u8], needles: &[String], what: &str) -> usize {
    let meta = ringmail_mime::analyze(raw);
    let stored = search_text(&meta, raw);
    let mut hits = 0;
    for needle in needles {
        let finder = Finder::new(needle.as_bytes());
        let body = old_body(&finder, raw, &meta);
        let text = old_text(&finder, raw, &meta);
        assert_eq!(
            new(&finder, &stored, raw, Scope::Body),
            body,
            "BODY {needle:?} in {what}:\n{}",
            String::from_utf8_lossy(raw)
        );
        assert_eq!(
            new(&finder, &stored, raw, Scope::Text),
            text,
            "TEXT {needle:?} in {what}:\n{}",
            String::from_utf8_lossy(raw)
        );
        hits += usize::from(body) + usize::from(text);
    }
    hits
}

#[test]
fn stored_text_answers_as_the_message_does() {
    let mut checked = 0;
    let mut hits = 0;
    for seed in 1..=1500u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let raw = message(&mut rng, 0);
        let meta = ringmail_mime::analyze(&raw);
        let list = needles(&mut rng, &raw, &meta);
        hits += check(&raw, &list, &format!("seed {seed}"));
        checked += list.len();
    }
    // Not a vacuous comparison: many needles match, many do not.
    assert!(
        hits > checked / 4 && hits < checked * 2,
        "{hits} of {checked}"
    );
}

#[test]
fn edge_messages_answer_alike() {
    let messages: [&[u8]; 6] = [
        b"",
        b"no header at all, no blank line",
        b"Subject: only a header\r\n",
        b"\r\nbody without header \xe9t\xe9",
        b"Content-Type: text/plain; charset=utf-16le\r\n\r\nh\0i\0",
        b"Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n\r\nimplicit text\r\n--z--\r\n",
    ];
    let needles: Vec<String> = ["", "body", "été", "ÉTÉ", "hi", "h", "implicit", "subject"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for (i, raw) in messages.iter().enumerate() {
        check(raw, &needles, &format!("edge message {i}"));
    }
}

/// The program reads BODY / TEXT from `Content::Stored` as from `Content::Full`.
#[test]
fn programs_evaluate_stored_text() {
    use ringmail_proto::parser::SearchKey as K;
    use std::borrow::Cow;
    let raw = b"Subject: =?utf-8?q?caf=C3=A9?=\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n<p>cr\xe8me &amp; more</p>\r\n";
    let meta = ringmail_mime::analyze(raw);
    let stored = search_text(&meta, raw);
    let header = header_block(raw).unwrap();
    let entry = ringmail_store::MessageEntry {
        modseq: 1,
        internal_date: 0,
        save_date: 0,
        email_id: 1,
        uid: 1,
        kwset: 0,
        size: raw.len() as u32,
        segment: 0,
        offset: 0,
        meta_len: 0,
        flags: 0,
    };
    let view = crate::selected::View {
        uids: vec![1],
        gone: Vec::new(),
    };
    let recent = crate::recent::RecentUids::default();
    let cx = super::program::Context {
        view: &view,
        saved: &[],
        now: 0,
        recent: &recent,
    };
    let s = |t: &str| Cow::Owned(t.as_bytes().to_vec());
    for (keys, want) in [
        (vec![K::Body(s("CRÈME & MORE"))], Tri::True),
        (vec![K::Body(s("café"))], Tri::False),
        (vec![K::Text(s("CAFÉ"))], Tri::True),
        (vec![K::Not(Box::new(K::Body(s("<p>"))))], Tri::True),
        (vec![K::Text(s("absent")), K::Body(s("more"))], Tri::False),
    ] {
        let program = Program::compile(&keys, &cx).unwrap();
        let eval = |content| {
            program.eval(&Message {
                msn: 1,
                entry: &entry,
                keywords: 0,
                content,
                indexed: None,
            })
        };
        let full = eval(Content::Full {
            raw,
            header,
            meta: &meta,
        });
        let from_stored = eval(Content::Stored {
            header: None,
            text: &stored,
            message: raw,
        });
        assert_eq!((full, from_stored), (want, want), "{keys:?}");
        // Without the message bytes its references point into, the program cannot tell:
        // unknown, and the search reads the message instead.
        let short = eval(Content::Stored {
            header: None,
            text: &stored,
            message: &raw[..10],
        });
        assert_eq!(short, Tri::Unknown, "{keys:?}");
    }
}
