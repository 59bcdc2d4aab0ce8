//! Mail the way people send it: a multipart message with a short text part and a base64
//! attachment, at the sizes real mail comes in (100 KB to 50 MB).

use base64::Engine;

/// A message and the attachment it carries (decoded), so a test can compare both what FETCH
/// BODY[] and what BINARY[2] return.
pub struct Sample {
    /// The whole message, CRLF line ends.
    pub message: Vec<u8>,
    /// The attachment's bytes as BINARY[2] must return them.
    pub attachment: Vec<u8>,
}

/// Builds a message of about `size` bytes whose attachment is pseudo-random (NUL bytes
/// included, so BINARY must use literal8) and different for each `seed`.
pub fn sample(size: usize, seed: u64) -> Sample {
    // base64 with 76-character lines grows the data by 4/3 and 2 bytes per line.
    let attachment_len = size.saturating_sub(1024) / 78 * 57;
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let attachment: Vec<u8> = (0..attachment_len)
        .map(|_| {
            // xorshift64: cheap, deterministic, and covers every byte value.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&attachment);
    let mut message = format!(
        "From: Alice Example <alice@example.com>\r\n\
         To: Bob Example <bob@example.com>\r\n\
         Subject: Report {seed} ({size} bytes)\r\n\
         Date: Mon, 7 Dec 2026 10:00:00 +0100\r\n\
         Message-ID: <report-{seed}-{size}@example.com>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"=-b{seed}\"\r\n\
         \r\n\
         --=-b{seed}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Hi Bob, the report is attached.\r\n\
         \r\n\
         --=-b{seed}\r\n\
         Content-Type: application/octet-stream; name=\"report-{seed}.bin\"\r\n\
         Content-Disposition: attachment; filename=\"report-{seed}.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         \r\n"
    )
    .into_bytes();
    message.reserve(encoded.len() + encoded.len() / 38 + 64);
    for line in encoded.as_bytes().chunks(76) {
        message.extend_from_slice(line);
        message.extend_from_slice(b"\r\n");
    }
    message.extend_from_slice(format!("--=-b{seed}--\r\n").as_bytes());
    Sample {
        message,
        attachment,
    }
}

/// The sizes the real-client tests send: 100 KB, 1 MB and 50 MB.
pub const REAL_SIZES: [usize; 3] = [100 * 1024, 1024 * 1024, 50 * 1024 * 1024];

/// `[limits]` keys that let a test server take the largest of `REAL_SIZES`.
pub const LARGE_LITERALS: &str = "max_literal = 67108864\n";
