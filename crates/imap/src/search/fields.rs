//! Header keys answered from the mailbox's header-search values (the store's
//! `SearchFields`): one scan of a field's arena per key and chunk of messages, with the
//! SIMD [`Finder`], instead of reading and parsing each message's header.
//!
//! The scanner runs over the arena's contiguous bytes; each hit is mapped back to its
//! message by offset, and that message's values are then compared one by one exactly as
//! the header path compares the fields it reads (`program::header_matches` and the address
//! keys), so a match spanning two values or two messages never counts, and the answers are
//! the same. A needle with non-ASCII letters with case is compared value by value, after
//! Unicode lowercasing, as the header path does.

use std::ops::Range;

use ringmail_store::{FieldArena, FieldValue, SearchFields};

use super::program::{IndexedKey, Program};

/// The verdicts of every [`Program::indexed`] key for messages `positions` of the mailbox:
/// row per key, column per message (position minus `positions.start`). `None` when the
/// program has no such key.
pub fn scan(
    program: &Program,
    fields: &SearchFields,
    positions: Range<usize>,
) -> Option<Vec<Vec<bool>>> {
    if program.indexed().is_empty() {
        return None;
    }
    program
        .indexed()
        .iter()
        .map(|key| {
            let arena = fields.arena(key.field)?;
            Some(scan_key(key, arena, positions.clone()))
        })
        .collect()
}

fn scan_key(key: &IndexedKey, arena: &FieldArena, positions: Range<usize>) -> Vec<bool> {
    let mut row = vec![false; positions.len()];
    let first = positions.start;
    if key.finder.is_empty() {
        // Every message that has the field at all.
        for (pos, hit) in positions.zip(row.iter_mut()) {
            *hit = arena.has_values(pos);
        }
        return row;
    }
    if key.finder.needs_unicode() {
        for (pos, hit) in positions.zip(row.iter_mut()) {
            *hit = arena.values(pos).any(|v| value_matches(key, v));
        }
        return row;
    }
    let bytes = arena.bytes();
    let span = arena.byte_range(positions);
    let mut at = span.start;
    while let Some(offset) = bytes.get(at..span.end).and_then(|b| key.finder.find(b)) {
        let pos = arena.message_at(at + offset);
        if let Some(hit) = row.get_mut(pos.wrapping_sub(first)) {
            *hit = arena.values(pos).any(|v| value_matches(key, v));
        }
        // On to the next message: this one is decided.
        at = arena.byte_range(pos..pos + 1).end.max(at + offset + 1);
    }
    row
}

/// One value against one key, as the header path compares a field it has read.
fn value_matches(key: &IndexedKey, v: FieldValue<'_>) -> bool {
    if !key.finder.needs_unicode() {
        return key.finder.is_match(v.text);
    }
    if v.text.is_ascii() && !key.finder.is_ascii() {
        // ASCII text lowercases to ASCII, which holds no non-ASCII needle: no need to fold.
        return false;
    }
    if v.plain {
        // The header path decodes a plain value for a Unicode needle.
        return key
            .finder
            .is_match_text(&ringmail_mime::decode_header_value(v.text));
    }
    key.finder.is_match_text(&String::from_utf8_lossy(v.text))
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use ringmail_proto::parser::SearchKey as K;
    use ringmail_store::MessageEntry;

    use super::*;
    use crate::recent::RecentUids;
    use crate::search::header::header_block;
    use crate::search::program::{Content, Context, Message, Tri};
    use crate::selected::View;

    /// Headers that exercise decoding, folding, comments, groups, repeated and missing
    /// fields, raw 8-bit text and values that only match across a boundary.
    fn corpus() -> Vec<Vec<u8>> {
        let headers = [
            "From: Pete(A nice \\) chap) <pete(his account)@silly.test>\r\nSubject: Re: hello\r\n",
            "From: =?utf-8?q?J=C3=B6rg?= <j@x.de>\r\nTo: a@b.test\r\nTo: c@d.test\r\nSubject: =?iso-8859-1?q?caf=E9_CR=C8ME?=\r\n",
            "To: A Group(Some people):Chris Jones <c@(Chris's host.)public.example>;\r\nCc: kim@x.test\r\n",
            "Subject: folded\r\n  over two lines\r\nBcc: hidden@x.test, other@y.test\r\n",
            "From: \"Ünïcödé Name\" <u@x.test>\r\nSubject: ÉTÉ chaud\r\n",
            "From: raw latin \u{e9}t\u{e9} <l@x.test>\r\nSubject:  leading  spaces\r\n",
            "Cc: undisclosed-recipients:;\r\nSubject:\r\n",
            "From: KELVIN \u{212a} <k@x.test>\r\nSubject: \u{212a}elvin\r\n",
            "Subject: =?utf-8?b?w4l0w6kgc3VyIGxhIHBsYWdl?=\r\nFrom: a@b.test\r\n",
            "",
            "From: abc@x.test\r\nTo: def@x.test\r\nSubject: ab\r\nSubject: c\r\n",
        ];
        let mut out: Vec<Vec<u8>> = Vec::new();
        for round in 0..3 {
            for h in headers {
                let mut raw = h.as_bytes().to_vec();
                if round == 1 {
                    // Raw Latin-1 bytes (not UTF-8): what some clients send.
                    raw = String::from_utf8(raw)
                        .unwrap()
                        .chars()
                        .flat_map(|c| match u8::try_from(u32::from(c)) {
                            Ok(b) if c != '\u{212a}' => vec![b],
                            _ => c.to_string().into_bytes(),
                        })
                        .collect();
                }
                if round == 2 {
                    raw.extend_from_slice(b"X-Raw: \xe9\xe8\r\n");
                }
                raw.extend_from_slice(b"\r\nbody text\r\n");
                out.push(raw);
            }
        }
        out
    }

    fn needles() -> Vec<&'static str> {
        vec![
            "",
            "a",
            "pete",
            "PETE@SILLY",
            "his account",
            "pete <pete@",
            "jörg",
            "JÖRG <j@x.de>",
            "a@b.test",
            "test c@d",
            "b.testc",
            "a group: chris jones <c@public",
            "kim",
            "hidden",
            "other@y",
            "over two",
            "folded over",
            "café",
            "CRÈME",
            "ünïcödé",
            "été",
            "ete",
            "\u{e9}t",
            "leading  spaces",
            " leading",
            "undisclosed",
            "kelvin",
            "k",
            "\u{212a}",
            "sur la",
            "abc",
            "ab",
            "bc",
            "abc@x.testdef",
            "\r\n",
            ":",
            "@",
        ]
    }

    fn keys(needle: &'static str) -> Vec<K<'static>> {
        let s = || Cow::Borrowed(needle.as_bytes());
        let h = |name: &'static str| K::Header(Cow::Borrowed(name.as_bytes()), s());
        vec![
            K::From(s()),
            K::To(s()),
            K::Cc(s()),
            K::Bcc(s()),
            K::Subject(s()),
            h("FROM"),
            h("to"),
            h("Cc"),
            h("bcc"),
            h("subject"),
        ]
    }

    fn entry(uid: u32) -> MessageEntry {
        MessageEntry {
            modseq: 1,
            internal_date: 0,
            save_date: 0,
            email_id: 1,
            uid,
            kwset: 0,
            size: 100,
            segment: 0,
            offset: 0,
            meta_len: 0,
            flags: 0,
        }
    }

    #[test]
    fn answers_equal_the_header_path() {
        let corpus = corpus();
        let mut fields = SearchFields::new();
        for raw in &corpus {
            fields.push_message(raw);
        }
        let view = View {
            uids: (1..=corpus.len() as u32).collect(),
            gone: Vec::new(),
        };
        let cx = Context {
            view: &view,
            saved: &[],
            now: 0,
            recent: &RecentUids::default(),
        };
        let mut matched = 0;
        for needle in needles() {
            for key in keys(needle) {
                let program = Program::compile(std::slice::from_ref(&key), &cx).unwrap();
                assert_eq!(program.indexed().len(), 1, "{key:?} is kept in memory");
                // Chunks that start mid-mailbox, as the index pass uses them.
                for start in [0, 5] {
                    let rows = scan(&program, &fields, start..corpus.len()).unwrap();
                    for (pos, raw) in corpus.iter().enumerate().skip(start) {
                        let e = entry(pos as u32 + 1);
                        let header = header_block(raw).unwrap();
                        let read = program.eval(&Message {
                            msn: pos as u32 + 1,
                            entry: &e,
                            keywords: 0,
                            content: Content::Header(header),
                            indexed: None,
                        });
                        let kept = program.eval(&Message {
                            msn: pos as u32 + 1,
                            entry: &e,
                            keywords: 0,
                            content: Content::None,
                            indexed: Some((&rows, pos - start)),
                        });
                        assert_ne!(kept, Tri::Unknown);
                        assert_eq!(kept, read, "{key:?} on message {pos}");
                        matched += usize::from(read == Tri::True);
                    }
                }
            }
        }
        // Not a vacuous comparison.
        assert!(matched > 200, "{matched}");
    }

    #[test]
    fn other_fields_still_read_the_header() {
        let cx_view = View {
            uids: vec![1],
            gone: Vec::new(),
        };
        let cx = Context {
            view: &cx_view,
            saved: &[],
            now: 0,
            recent: &RecentUids::default(),
        };
        let key = K::Header(Cow::Borrowed(b"X-Spam"), Cow::Borrowed(b"yes"));
        let program = Program::compile(&[key], &cx).unwrap();
        assert!(program.indexed().is_empty());
        assert!(scan(&program, &SearchFields::new(), 0..0).is_none());
    }
}
