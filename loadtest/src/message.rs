//! The messages sessions APPEND: read from an mbox file, or generated with the structure and
//! size spread of real mail (plain text, text+HTML alternatives, attachments), from a seed.
//!
//! Generated messages draw words from a fixed vocabulary, so SEARCH BODY/SUBJECT/FROM for
//! [`SEARCH_WORDS`] and [`SENDERS`] find some messages and miss others.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Messages kept in memory; sessions pick from them at random.
const POOL_SIZE: usize = 200;

/// Display names and addresses of generated senders.
pub const SENDERS: [(&str, &str); 8] = [
    ("Alice Martin", "alice@example.com"),
    ("Bob Nguyen", "bob@example.org"),
    ("Carol Schmidt", "carol@example.net"),
    ("Dmitri Ivanov", "dmitri@example.com"),
    ("Eve Tanaka", "eve@example.org"),
    ("Farah Haddad", "farah@example.net"),
    ("Gustavo Silva", "gustavo@example.com"),
    ("Hanna Berg", "hanna@example.org"),
];

/// Words used in subjects and bodies that searches look for.
pub const SEARCH_WORDS: [&str; 8] = [
    "invoice",
    "meeting",
    "quarterly",
    "holiday",
    "contract",
    "delivery",
    "report",
    "birthday",
];

const FILLER: [&str; 40] = [
    "the", "of", "and", "to", "a", "in", "for", "is", "on", "that", "by", "this", "with", "you",
    "it", "not", "or", "be", "are", "from", "at", "as", "your", "all", "have", "new", "more", "an",
    "was", "we", "will", "can", "about", "please", "thanks", "team", "project", "week", "attached",
    "regards",
];

/// Messages ready to APPEND, CRLF line endings.
#[derive(Clone)]
pub struct MessagePool {
    messages: Arc<Vec<Vec<u8>>>,
}

/// Why the message source cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The mbox could not be read.
    #[error("reading {path}: {err}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        err: std::io::Error,
    },
    /// The mbox holds no messages.
    #[error("{0} holds no messages")]
    Empty(String),
}

impl MessagePool {
    /// Generated messages of at most `max_size` bytes.
    pub fn generate(seed: u64, max_size: usize) -> MessagePool {
        let mut rng = StdRng::seed_from_u64(seed);
        let messages = (0..POOL_SIZE)
            .map(|i| generate_one(&mut rng, i, max_size))
            .collect();
        MessagePool {
            messages: Arc::new(messages),
        }
    }

    /// The first messages of an mbox file (up to the pool size), line endings made CRLF and
    /// `>From ` quoting undone.
    pub fn from_mbox(path: &Path, max_size: usize) -> Result<MessagePool, SourceError> {
        let data = std::fs::read(path).map_err(|err| SourceError::Read {
            path: path.display().to_string(),
            err,
        })?;
        let messages = split_mbox(&data, max_size);
        if messages.is_empty() {
            return Err(SourceError::Empty(path.display().to_string()));
        }
        Ok(MessagePool {
            messages: Arc::new(messages),
        })
    }

    /// A message chosen with `rng`.
    pub fn pick<'a>(&'a self, rng: &mut impl Rng) -> &'a [u8] {
        let i = rng.gen_range(0..self.messages.len().max(1));
        self.messages
            .get(i)
            .map_or(b"Subject: empty\r\n\r\n\r\n".as_slice(), |m| m.as_slice())
    }

    /// Every message, in pool order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.messages.iter().map(Vec::as_slice)
    }

    /// Number of distinct messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether there are none (never, once constructed).
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

/// Splits mbox data at `From ` lines. Messages over `max_size` are skipped.
fn split_mbox(data: &[u8], max_size: usize) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b"From ") {
            if let Some(m) = current.take() {
                push_message(&mut messages, m, max_size);
            }
            if messages.len() >= POOL_SIZE {
                return messages;
            }
            current = Some(Vec::new());
            continue;
        }
        if let Some(m) = current.as_mut() {
            // mboxrd quoting: ">From " and ">>From " lose one '>'.
            let unquoted = match line.iter().position(|&b| b != b'>') {
                Some(n) if n > 0 && line[n..].starts_with(b"From ") => &line[1..],
                _ => line,
            };
            if m.len() <= max_size {
                m.extend_from_slice(unquoted);
                m.extend_from_slice(b"\r\n");
            }
        }
    }
    if let Some(m) = current {
        push_message(&mut messages, m, max_size);
    }
    messages
}

fn push_message(messages: &mut Vec<Vec<u8>>, mut m: Vec<u8>, max_size: usize) {
    // The line before the next "From " is the separator blank line, not part of the message.
    if m.ends_with(b"\r\n\r\n") {
        m.truncate(m.len() - 2);
    }
    if !m.is_empty() && m.len() <= max_size && messages.len() < POOL_SIZE {
        messages.push(m);
    }
}

fn words(rng: &mut StdRng, count: usize, out: &mut String) {
    for i in 0..count {
        if i > 0 {
            out.push(if i % 12 == 0 { '\n' } else { ' ' });
        }
        if rng.gen_bool(0.03) {
            out.push_str(SEARCH_WORDS[rng.gen_range(0..SEARCH_WORDS.len())]);
        } else {
            out.push_str(FILLER[rng.gen_range(0..FILLER.len())]);
        }
    }
}

/// Text of about `bytes` bytes, lines under 100 characters.
fn text(rng: &mut StdRng, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 64);
    words(rng, bytes / 5 + 1, &mut s);
    s.replace('\n', "\r\n")
}

fn generate_one(rng: &mut StdRng, index: usize, max_size: usize) -> Vec<u8> {
    let (name, addr) = SENDERS[rng.gen_range(0..SENDERS.len())];
    let mut subject = String::new();
    let n = rng.gen_range(2..7);
    words(rng, n, &mut subject);
    let subject = subject.replace('\n', " ");
    let day = rng.gen_range(1..=28);
    let mut m = format!(
        "Return-Path: <{addr}>\r\n\
         Received: from mx.example.net (mx.example.net [192.0.2.1])\r\n\tby imap.example.com with ESMTPS id {index:08x}\r\n\
         From: {name} <{addr}>\r\n\
         To: Test User <user@example.com>\r\n\
         Subject: {subject}\r\n\
         Date: Mon, {day} Jan 2024 10:{:02}:00 +0000\r\n\
         Message-ID: <{index}.{}@example.com>\r\n\
         MIME-Version: 1.0\r\n",
        rng.gen_range(0..60),
        rng.gen::<u32>(),
    );
    // The shares of plain, alternative and attachment messages, and their sizes, follow
    // what mailbox studies report: most mail is small, a few attachments carry most bytes.
    let kind = rng.gen_range(0..100);
    let boundary = format!("=_b{index}_{}", rng.gen::<u32>());
    if kind < 60 {
        let len = rng.gen_range(300..6000);
        let body = text(rng, len);
        m.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
        m.push_str(&body);
        m.push_str("\r\n");
    } else if kind < 85 {
        let len = rng.gen_range(500..8000);
        let plain = text(rng, len);
        let html = format!(
            "<html><body><p>{}</p></body></html>",
            plain.replace("\r\n", "<br>\r\n")
        );
        m.push_str(&format!(
            "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n\
             --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{plain}\r\n\
             --{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n\
             --{boundary}--\r\n"
        ));
    } else {
        let len = rng.gen_range(200..2000);
        let plain = text(rng, len);
        // Log-uniform attachment size: 10 KB to max_size.
        let lo = (10_000f64).ln();
        let hi = (max_size.max(20_000) as f64).ln();
        let size = rng.gen_range(lo..hi).exp() as usize;
        let mut raw = vec![0u8; size * 3 / 4];
        rng.fill(raw.as_mut_slice());
        let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
        m.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n\
             --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{plain}\r\n\
             --{boundary}\r\nContent-Type: application/pdf; name=\"{index}.pdf\"\r\n\
             Content-Disposition: attachment; filename=\"{index}.pdf\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n"
        ));
        for chunk in encoded.as_bytes().chunks(76) {
            m.push_str(&String::from_utf8_lossy(chunk));
            m.push_str("\r\n");
        }
        m.push_str(&format!("--{boundary}--\r\n"));
    }
    let mut bytes = m.into_bytes();
    bytes.truncate(max_size);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_seeded_and_bounded() {
        let a = MessagePool::generate(7, 100_000);
        let b = MessagePool::generate(7, 100_000);
        assert_eq!(a.messages, b.messages);
        assert_eq!(a.len(), POOL_SIZE);
        assert!(a.messages.iter().all(|m| m.len() <= 100_000));
        // Mixed structure: some multipart, some plain.
        let multipart = a
            .messages
            .iter()
            .filter(|m| memchr::memmem::find(m, b"multipart/").is_some())
            .count();
        assert!(
            multipart > POOL_SIZE / 10 && multipart < POOL_SIZE * 6 / 10,
            "{multipart}"
        );
        // Only CRLF line ends.
        for m in a.messages.iter() {
            for (i, &b) in m.iter().enumerate() {
                if b == b'\n' {
                    assert_eq!(m.get(i.wrapping_sub(1)), Some(&b'\r'));
                }
            }
        }
    }

    #[test]
    fn mbox_split_unquotes_and_normalizes() {
        let mbox = b"From a@b Mon Jan 1 00:00:00 2024\nSubject: one\n\n>From here\nbody\n\nFrom c@d Mon Jan 1 00:00:00 2024\nSubject: two\n\nx\n";
        let msgs = split_mbox(mbox, 1000);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0], b"Subject: one\r\n\r\nFrom here\r\nbody\r\n");
        assert_eq!(msgs[1], b"Subject: two\r\n\r\nx\r\n");
    }
}
