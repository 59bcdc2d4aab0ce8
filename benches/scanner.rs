//! The SEARCH scanner alone: case-insensitive substring search over a large buffer of
//! mail-like text, in GB/s. The needle sits at the very end, so every run scans the whole
//! buffer, as a search that finds nothing does.
//!
//! "rare" is a needle with uncommon letters (the prefilter's candidates are few);
//! "frequent" is made only of the commonest letters of English (a candidate every few
//! bytes), the scanner's worst case.
//!
//! Run: `cargo bench --bench scanner`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ringmail::imap::search::scanner::Finder;

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "you",
    "that",
    "it",
    "he",
    "was",
    "for",
    "on",
    "are",
    "as",
    "with",
    "his",
    "they",
    "at",
    "be",
    "this",
    "have",
    "from",
    "or",
    "one",
    "had",
    "by",
    "word",
    "but",
    "not",
    "what",
    "all",
    "were",
    "we",
    "when",
    "your",
    "can",
    "said",
    "there",
    "use",
    "an",
    "each",
    "which",
    "she",
    "do",
    "how",
    "their",
    "if",
    "will",
    "up",
    "other",
    "about",
    "out",
    "many",
    "then",
    "them",
    "these",
    "so",
    "some",
    "her",
    "would",
    "make",
    "like",
    "him",
    "into",
    "time",
    "has",
    "look",
    "two",
    "more",
    "write",
    "go",
    "see",
    "number",
    "Meeting",
    "Report",
    "Regards,",
    "Thanks!",
    "invoice",
    "2024",
    "https://example.com/x",
];

/// About `len` bytes of mail-like text: words, punctuation, CRLF every ~70 bytes.
fn corpus(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 128);
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut line = 0;
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let word = WORDS[(state % WORDS.len() as u64) as usize];
        out.extend_from_slice(word.as_bytes());
        line += word.len() + 1;
        if line > 70 {
            out.extend_from_slice(b"\r\n");
            line = 0;
        } else {
            out.push(b' ');
        }
    }
    out
}

fn scanner(c: &mut Criterion) {
    let mut haystack = corpus(64 * 1024 * 1024);
    let cases = [("rare", "Quixotic Jukebox"), ("frequent", "seat notes")];
    for (_, needle) in &cases {
        // Present once, at the end, in another case.
        haystack.extend_from_slice(needle.to_ascii_uppercase().as_bytes());
    }
    let mut group = c.benchmark_group("scanner");
    group.throughput(Throughput::Bytes(haystack.len() as u64));
    group.sample_size(10);
    for (name, needle) in cases {
        let finder = Finder::new(needle.as_bytes());
        assert!(finder.is_match(&haystack));
        group.bench_function(format!("{name} literal, case-insensitive"), |b| {
            b.iter(|| finder.is_match(black_box(&haystack)))
        });
    }
    group.finish();
}

criterion_group!(benches, scanner);
criterion_main!(benches);
