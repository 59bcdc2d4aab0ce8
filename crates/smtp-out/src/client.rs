//! An SMTP client (RFC 5321) for handing messages to the configured relay: greeting, EHLO
//! (HELO when refused), then per message MAIL FROM, RCPT TO and DATA, and QUIT.
//!
//! No TLS and no authentication: the relay is the site's own MTA, on the local host or a
//! trusted network, as for Dovecot's `submission_host`. Timeouts are the caller's: race
//! each call against a timer (RFC 5321 §4.5.3.2 suggests 5 minutes for the greeting,
//! MAIL and RCPT, 3 minutes per data block and 10 for the reply to the final dot; a relay
//! on the local host answers in milliseconds, so a minute for the whole `send` is plenty).

use std::io;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::data;
use crate::reply::{self, Reply};

/// Who sends and who receives (the SMTP envelope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The reverse-path: an address, or empty for the null sender `<>` (vacation replies
    /// and reject notices, RFC 5230 §5 and RFC 5429 §2.1).
    pub from: String,
    pub to: Vec<String>,
}

/// What the relay said it supports in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// SIZE (RFC 1870): the largest message, 0 for no stated limit.
    pub size: Option<u64>,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
}

/// A message the relay took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The reply to the final dot (it often names the relay's queue id).
    pub reply: Reply,
    /// Recipients the relay refused, with its reply; the others got the message.
    pub refused: Vec<(String, Reply)>,
}

/// Why a message was not handed over.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connection to the SMTP relay failed: {0}")]
    Io(#[from] io::Error),
    #[error("the SMTP relay refused {command}: {reply}")]
    Refused { command: String, reply: Reply },
    #[error("the SMTP relay refused every recipient: {}", list(.0))]
    AllRecipientsRefused(Vec<(String, Reply)>),
    #[error("the SMTP relay broke the protocol: {0}")]
    Protocol(String),
    #[error("{0:?} is not an address that can be sent to")]
    BadAddress(String),
    #[error("the message has {size} bytes, more than the SMTP relay's limit of {limit}")]
    TooLarge { size: u64, limit: u64 },
    #[error("address {0:?} needs SMTPUTF8, which the SMTP relay does not support")]
    NeedsSmtpUtf8(String),
}

fn list(refused: &[(String, Reply)]) -> String {
    let items: Vec<String> = refused.iter().map(|(a, r)| format!("<{a}>: {r}")).collect();
    items.join("; ")
}

impl Error {
    /// Whether trying again cannot help (a 5xx reply, or a message or address the relay
    /// can never take); otherwise the failure may be temporary.
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::Io(_) | Error::Protocol(_) => false,
            Error::Refused { reply, .. } => reply.is_permanent(),
            Error::AllRecipientsRefused(r) => r.iter().all(|(_, reply)| reply.is_permanent()),
            Error::BadAddress(_) | Error::TooLarge { .. } | Error::NeedsSmtpUtf8(_) => true,
        }
    }
}

/// A connection to the relay.
#[derive(Debug)]
pub struct Client<S> {
    stream: S,
    /// Bytes read and not yet used.
    buf: Vec<u8>,
    extensions: Extensions,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// Reads the greeting and introduces us as `helo_name` (this host's name).
    pub async fn connect(stream: S, helo_name: &str) -> Result<Client<S>, Error> {
        check_address(helo_name)?;
        let mut client = Client {
            stream,
            buf: Vec::new(),
            extensions: Extensions::default(),
        };
        client.expect("the connection", 220).await?;
        let ehlo = client.command(&format!("EHLO {helo_name}")).await?;
        if ehlo.code == 250 {
            client.extensions = parse_extensions(&ehlo);
        } else {
            // RFC 5321 §3.2: a server that does not know EHLO may know HELO.
            client
                .command_expect(&format!("HELO {helo_name}"), 250)
                .await?;
        }
        Ok(client)
    }

    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Hands one message over. After a refusal the transaction is reset (RSET), so the
    /// connection can carry the next message.
    pub async fn send(&mut self, envelope: &Envelope, message: &[u8]) -> Result<Sent, Error> {
        let result = self.transaction(envelope, message).await;
        if matches!(
            result,
            Err(Error::Refused { .. } | Error::AllRecipientsRefused(_))
        ) {
            // Best effort: a relay that does not take RSET will refuse the next MAIL.
            let _ = self.command("RSET").await;
        }
        result
    }

    async fn transaction(&mut self, envelope: &Envelope, message: &[u8]) -> Result<Sent, Error> {
        if !envelope.from.is_empty() {
            check_address(&envelope.from)?;
        }
        for to in &envelope.to {
            check_address(to)?;
        }
        let size = message.len() as u64;
        let mut mail = format!("MAIL FROM:<{}>", envelope.from);
        if let Some(limit) = self.extensions.size {
            if limit > 0 && size > limit {
                return Err(Error::TooLarge { size, limit });
            }
            mail.push_str(&format!(" SIZE={size}"));
        }
        if self.extensions.eight_bit_mime && !message.is_ascii() {
            mail.push_str(" BODY=8BITMIME");
        }
        let addresses = std::iter::once(&envelope.from).chain(&envelope.to);
        if let Some(utf8) = addresses.into_iter().find(|a| !a.is_ascii()) {
            if !self.extensions.smtputf8 {
                return Err(Error::NeedsSmtpUtf8(utf8.clone()));
            }
            mail.push_str(" SMTPUTF8");
        }
        self.command_expect(&mail, 250).await?;

        let mut refused = Vec::new();
        for to in &envelope.to {
            let reply = self.command(&format!("RCPT TO:<{to}>")).await?;
            if !reply.is_positive() {
                refused.push((to.clone(), reply));
            }
        }
        if refused.len() == envelope.to.len() {
            return Err(Error::AllRecipientsRefused(refused));
        }
        self.command_expect("DATA", 354).await?;
        let mut out = Vec::new();
        data::stuff(message, &mut out);
        self.stream.write_all(&out).await?;
        self.stream.flush().await?;
        let reply = self.expect("the message (end of data)", 250).await?;
        Ok(Sent { reply, refused })
    }

    /// Says goodbye. The relay's answer does not matter: the messages are handed over.
    pub async fn quit(mut self) -> Result<(), Error> {
        self.command("QUIT").await?;
        let _ = self.stream.close().await;
        Ok(())
    }

    async fn command_expect(&mut self, line: &str, code: u16) -> Result<Reply, Error> {
        let reply = self.command(line).await?;
        if reply.code != code {
            return Err(Error::Refused {
                command: line.to_string(),
                reply,
            });
        }
        Ok(reply)
    }

    async fn command(&mut self, line: &str) -> Result<Reply, Error> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.stream.write_all(&bytes).await?;
        self.stream.flush().await?;
        self.read_reply().await
    }

    async fn expect(&mut self, what: &str, code: u16) -> Result<Reply, Error> {
        let reply = self.read_reply().await?;
        if reply.code != code {
            return Err(Error::Refused {
                command: what.to_string(),
                reply,
            });
        }
        Ok(reply)
    }

    async fn read_reply(&mut self) -> Result<Reply, Error> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().await?;
            let (code, more, text) = reply::parse_line(&line).map_err(Error::Protocol)?;
            if let Some(first) = lines.first().map(|(c, _): &(u16, String)| *c) {
                if first != code {
                    return Err(Error::Protocol(format!(
                        "reply lines with codes {first} and {code}"
                    )));
                }
            }
            lines.push((code, text));
            if !more {
                return Ok(Reply {
                    code,
                    lines: lines.into_iter().map(|(_, t)| t).collect(),
                });
            }
            if lines.len() >= reply::MAX_LINES {
                return Err(Error::Protocol(format!(
                    "reply of more than {} lines",
                    reply::MAX_LINES
                )));
            }
        }
    }

    /// One line without its line end (CRLF, or a bare LF).
    async fn read_line(&mut self) -> Result<Vec<u8>, Error> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.buf.len() > reply::MAX_LINE {
                return Err(Error::Protocol(format!(
                    "reply line longer than {} bytes",
                    reply::MAX_LINE
                )));
            }
            let mut chunk = [0u8; 1024];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the SMTP relay closed the connection",
                )));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// An address (or HELO name) goes inside a command line: nothing that could end or
/// extend the line, and no angle brackets or spaces.
fn check_address(a: &str) -> Result<(), Error> {
    if a.is_empty()
        || a.len() > 320
        || a.chars()
            .any(|c| c.is_control() || matches!(c, '<' | '>' | ' '))
    {
        return Err(Error::BadAddress(a.to_string()));
    }
    Ok(())
}

fn parse_extensions(ehlo: &Reply) -> Extensions {
    let mut ext = Extensions::default();
    // The first line is the greeting; each further line names an extension.
    for line in ehlo.lines.iter().skip(1) {
        let mut words = line.split_ascii_whitespace();
        match words.next().map(str::to_ascii_uppercase).as_deref() {
            Some("SIZE") => ext.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
            Some("8BITMIME") => ext.eight_bit_mime = true,
            Some("SMTPUTF8") => ext.smtputf8 = true,
            _ => {}
        }
    }
    ext
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_from_ehlo() {
        let ehlo = Reply {
            code: 250,
            lines: vec![
                "relay.example.com Hello".into(),
                "PIPELINING".into(),
                "SIZE 10240000".into(),
                "8bitmime".into(),
                "SMTPUTF8".into(),
            ],
        };
        assert_eq!(
            parse_extensions(&ehlo),
            Extensions {
                size: Some(10_240_000),
                eight_bit_mime: true,
                smtputf8: true
            }
        );
        assert_eq!(
            parse_extensions(&Reply {
                code: 250,
                lines: vec!["x".into()]
            }),
            Extensions::default()
        );
    }

    #[test]
    fn addresses_cannot_inject_commands() {
        for bad in ["a@b>\r\nRCPT TO:<c@d", "a b@c", "<a@b>", ""] {
            assert!(
                matches!(check_address(bad), Err(Error::BadAddress(_))),
                "{bad:?}"
            );
        }
        assert!(check_address("jöe@exämple.org").is_ok());
    }
}
