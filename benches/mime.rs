//! MIME analysis at APPEND and the metadata round trip at FETCH.
//!
//! Run: `cargo bench --bench mime`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringmail::mime::{analyze, section_range, MessageMeta, SectionSpec, SectionText};

/// A typical newsletter-sized message: multipart/alternative, QP text and HTML.
fn newsletter() -> Vec<u8> {
    let mut m = String::from(
        "From: \"News Desk\" <news@example.com>\r\nTo: reader@example.org\r\n\
         Subject: =?UTF-8?Q?Weekly_update_=E2=80=94_issue_42?=\r\n\
         Date: Wed, 4 Mar 2020 09:00:00 -0500\r\nMessage-ID: <n42@example.com>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n\
         --alt\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\r\n",
    );
    for i in 0..60 {
        m.push_str(&format!(
            "Line {i} of the plain text part, caf=C3=A9 and more text.\r\n"
        ));
    }
    m.push_str("--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>\r\n");
    for i in 0..60 {
        m.push_str(&format!(
            "<p>Paragraph {i} with <b>bold</b> &amp; links.</p>\r\n"
        ));
    }
    m.push_str("</body></html>\r\n--alt--\r\n");
    m.into_bytes()
}

/// A message carrying a 1 MiB base64 attachment.
fn with_attachment() -> Vec<u8> {
    let mut m = String::from(
        "From: a@example.com\r\nTo: b@example.com\r\nSubject: file\r\n\
         Content-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n--mix\r\n\
         Content-Type: text/plain\r\n\r\nSee attached.\r\n--mix\r\n\
         Content-Type: application/octet-stream; name=\"a.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n",
    );
    let line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n";
    while m.len() < (1 << 20) {
        m.push_str(line);
    }
    m.push_str("--mix--\r\n");
    m.into_bytes()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("mime");
    for (name, raw) in [
        ("newsletter", newsletter()),
        ("attachment_1MiB", with_attachment()),
    ] {
        g.throughput(Throughput::Bytes(raw.len() as u64));
        g.bench_with_input(BenchmarkId::new("analyze", name), &raw, |b, raw| {
            b.iter(|| analyze(raw))
        });
        let blob = analyze(&raw).to_bytes();
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(
            BenchmarkId::new("meta_from_bytes", name),
            &blob,
            |b, blob| b.iter(|| MessageMeta::from_bytes(blob)),
        );
        let meta = analyze(&raw);
        let spec = SectionSpec {
            part: vec![2],
            text: SectionText::Full,
        };
        g.bench_with_input(BenchmarkId::new("section_range", name), &meta, |b, meta| {
            b.iter(|| section_range(meta, raw.len(), &spec))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
