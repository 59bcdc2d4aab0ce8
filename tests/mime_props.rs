//! Property tests: no input makes the MIME analysis panic, every section it reports
//! lies inside the message, and stored metadata survives a round trip while damaged
//! metadata is refused without a panic.

use proptest::prelude::*;
use ringmail::mime::{
    analyze, decode_header_value, decode_part, decoded_text_for_search, section_bytes,
    section_range, MessageMeta, SectionSpec, SectionText,
};

/// Lines that steer the splitter into its interesting states.
const FRAGMENTS: &[&str] = &[
    "",
    "Content-Type: multipart/mixed; boundary=b",
    "Content-Type: multipart/digest; boundary=\"c\"",
    "Content-Type: message/rfc822",
    "Content-Type: text/html; charset=iso-8859-1",
    "Content-Type: text/plain; charset*0*=utf-8''a; charset*1=b",
    "Content-Transfer-Encoding: base64",
    "Content-Transfer-Encoding: quoted-printable",
    "Content-Disposition: attachment; filename=\"x\"",
    "From: \"A, B\" <a@b>, g: c@d;, (comment) <@r:e@f",
    "Subject: =?utf-8?B?w6k=?= =?iso-8859-1?q?=E9?=",
    "Date: Tue, 3 Mar 2020 10:15:00 +0100",
    "References: <a@b> <c@d",
    "--b",
    "--b--",
    "--c",
    "--c--",
    " folded continuation",
    "aGVsbG8gd29ybGQ=",
    "caf=E9=\r",
    "<p>html &amp; text</p>",
    "plain body text",
    "\u{e9}t\u{e9}",
];

fn structured_message() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(0..FRAGMENTS.len(), 0..40),
        prop::bool::ANY,
    )
        .prop_map(|(picks, crlf)| {
            let eol = if crlf { "\r\n" } else { "\n" };
            picks
                .into_iter()
                .map(|i| FRAGMENTS[i])
                .collect::<Vec<_>>()
                .join(eol)
                .into_bytes()
        })
}

fn all_texts() -> Vec<SectionText> {
    vec![
        SectionText::Full,
        SectionText::Header,
        SectionText::HeaderFields(vec![b"subject".to_vec()]),
        SectionText::HeaderFieldsNot(vec![b"from".to_vec()]),
        SectionText::Text,
        SectionText::Mime,
    ]
}

fn check_message(raw: &[u8]) -> Result<(), TestCaseError> {
    let meta = analyze(raw);
    let paths: Vec<Vec<u32>> = std::iter::once(vec![])
        .chain((1..4).map(|a| vec![a]))
        .chain((1..4).flat_map(|a| (1..4).map(move |b| vec![a, b])))
        .chain((1..3).map(|a| vec![a, 1, 1]))
        .collect();
    for path in &paths {
        for text in all_texts() {
            let spec = SectionSpec {
                part: path.clone(),
                text,
            };
            if let Some(r) = section_range(&meta, raw.len(), &spec) {
                prop_assert!(r.start <= r.end && r.end <= raw.len(), "{spec:?} -> {r:?}");
                prop_assert!(section_bytes(&meta, raw, &spec).is_some());
            }
        }
        let _ = decode_part(&meta, raw, path);
    }
    let _ = decoded_text_for_search(&meta, raw);
    prop_assert!(meta.preview.chars().count() <= 200);
    let bytes = meta.to_bytes();
    prop_assert_eq!(MessageMeta::from_bytes(&bytes), Ok(meta));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..1500)) {
        check_message(&raw)?;
        let _ = decode_header_value(&raw);
        let _ = MessageMeta::from_bytes(&raw);
    }

    #[test]
    fn mime_shaped_messages_never_panic(raw in structured_message()) {
        check_message(&raw)?;
    }

    #[test]
    fn damaged_metadata_is_refused_or_read(raw in structured_message(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = analyze(&raw).to_bytes();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = MessageMeta::from_bytes(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// HTML goes through mail-parser's HTML-to-text for PREVIEW and SEARCH.
    #[test]
    fn any_html_body_gives_a_preview(body in "(<[a-z/!]{0,6}|&[a-z#0-9]{0,5};?|[^<&]{0,8}|\\PC){0,60}") {
        let raw = format!("Content-Type: text/html; charset=utf-8\r\n\r\n{body}");
        let meta = analyze(raw.as_bytes());
        prop_assert!(meta.preview.chars().count() <= 200);
        prop_assert_eq!(decoded_text_for_search(&meta, raw.as_bytes()).len(), 1);
    }
}
