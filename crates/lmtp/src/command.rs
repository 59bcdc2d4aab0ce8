//! LMTP command lines (RFC 2033, with the SMTP grammar of RFC 5321 it borrows).
//!
//! Parsing is strict where a mistake would deliver mail to the wrong place (the paths) and
//! lenient where MTAs differ in harmless ways (case of verbs, spaces after the colon).

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `LHLO domain`
    Lhlo(String),
    /// `MAIL FROM:<path> [SIZE=n] [BODY=7BIT|8BITMIME]`
    MailFrom {
        /// The reverse path without brackets (empty for the null sender `<>`).
        sender: String,
        /// The size the client announced.
        size: Option<u64>,
    },
    /// `RCPT TO:<path>`
    RcptTo(String),
    /// `DATA`
    Data,
    /// `RSET`
    Rset,
    /// `NOOP`
    Noop,
    /// `QUIT`
    Quit,
    /// `HELO` or `EHLO`: an SMTP greeting on an LMTP port.
    SmtpGreeting,
    /// `VRFY`: answered without saying whether the user exists.
    Vrfy,
    /// `STARTTLS` (RFC 3207)
    StartTls,
}

/// Why a line is not a command we accept: the SMTP reply to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject(pub &'static str);

/// Parses one command line (without CRLF).
pub fn parse(line: &[u8]) -> Result<Command, Reject> {
    let line = std::str::from_utf8(line).map_err(|_| Reject("500 5.5.2 Command is not UTF-8"))?;
    let (verb, rest) = match line.find(' ') {
        Some(i) => (&line[..i], line[i + 1..].trim()),
        None => (line, ""),
    };
    match verb.to_ascii_uppercase().as_str() {
        "LHLO" if !rest.is_empty() => Ok(Command::Lhlo(rest.to_string())),
        "LHLO" => Err(Reject("501 5.5.4 LHLO needs a domain")),
        "MAIL" => mail_from(rest),
        "RCPT" => {
            let path =
                after_keyword(rest, "TO:").ok_or(Reject("501 5.5.4 Use RCPT TO:<address>"))?;
            let (path, params) = split_path(path)?;
            if path.is_empty() {
                return Err(Reject("501 5.1.3 Empty recipient"));
            }
            if !params.trim().is_empty() {
                return Err(Reject("555 5.5.4 RCPT TO parameters are not supported"));
            }
            Ok(Command::RcptTo(path.to_string()))
        }
        "DATA" => Ok(Command::Data),
        "RSET" => Ok(Command::Rset),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => Ok(Command::Quit),
        "HELO" | "EHLO" => Ok(Command::SmtpGreeting),
        "VRFY" => Ok(Command::Vrfy),
        "STARTTLS" if rest.is_empty() => Ok(Command::StartTls),
        "STARTTLS" => Err(Reject("501 5.5.4 STARTTLS takes no parameters")),
        _ => Err(Reject("500 5.5.1 Unknown command")),
    }
}

fn mail_from(rest: &str) -> Result<Command, Reject> {
    let path = after_keyword(rest, "FROM:").ok_or(Reject("501 5.5.4 Use MAIL FROM:<address>"))?;
    let (sender, params) = split_path(path)?;
    let mut size = None;
    for param in params.split_ascii_whitespace() {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        match key.to_ascii_uppercase().as_str() {
            "SIZE" => {
                size = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| Reject("501 5.5.4 Bad SIZE parameter"))?,
                )
            }
            "BODY"
                if value.eq_ignore_ascii_case("7BIT") || value.eq_ignore_ascii_case("8BITMIME") => {
            }
            "BODY" => return Err(Reject("501 5.5.4 BODY must be 7BIT or 8BITMIME")),
            _ => return Err(Reject("555 5.5.4 Unsupported MAIL FROM parameter")),
        }
    }
    Ok(Command::MailFrom {
        sender: sender.to_string(),
        size,
    })
}

/// `rest` after a case-insensitive `keyword` (e.g. `FROM:`), spaces after it skipped.
fn after_keyword<'a>(rest: &'a str, keyword: &str) -> Option<&'a str> {
    let head = rest.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| rest[keyword.len()..].trim_start())
}

/// Splits `<path> params` into the path (brackets removed) and the parameters. A source
/// route (`<@a,@b:user@c>`) is dropped, as RFC 5321 tells receivers to.
fn split_path(s: &str) -> Result<(&str, &str), Reject> {
    let inner = s
        .strip_prefix('<')
        .ok_or(Reject("501 5.5.2 Address must be in <brackets>"))?;
    let end = inner
        .find('>')
        .ok_or(Reject("501 5.5.2 Address must be in <brackets>"))?;
    let path = &inner[..end];
    let path = match path.strip_prefix('@') {
        Some(route) => route.split_once(':').map_or("", |(_, p)| p),
        None => path,
    };
    if path.chars().any(|c| c.is_control() || c == ' ') {
        return Err(Reject("501 5.1.3 Bad address syntax"));
    }
    Ok((path, &inner[end + 1..]))
}

/// A recipient address taken apart: the user candidates to look up and the detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// `user@domain` with the detail removed.
    pub address: String,
    /// The local part with the detail removed.
    pub local: String,
    /// The detail (`folder` in `user+folder@domain`), if any.
    pub detail: Option<String>,
}

impl Recipient {
    /// Splits `path` at the last `@` and the local part at the first `delimiter`.
    pub fn parse(path: &str, delimiter: &str) -> Recipient {
        let (local, domain) = match path.rfind('@') {
            Some(i) => (&path[..i], Some(&path[i + 1..])),
            None => (path, None),
        };
        let (local, detail) = match (delimiter.is_empty(), local.split_once(delimiter)) {
            (false, Some((user, detail))) if !user.is_empty() => (user, Some(detail.to_string())),
            _ => (local, None),
        };
        let address = match domain {
            Some(d) => format!("{local}@{d}"),
            None => local.to_string(),
        };
        Recipient {
            address,
            local: local.to_string(),
            detail: detail.filter(|d| !d.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(
            parse(b"lhlo mx.example.com"),
            Ok(Command::Lhlo("mx.example.com".into()))
        );
        assert_eq!(
            parse(b"MAIL FROM:<a@b.c> SIZE=1234 BODY=8BITMIME"),
            Ok(Command::MailFrom {
                sender: "a@b.c".into(),
                size: Some(1234)
            })
        );
        assert_eq!(
            parse(b"MAIL FROM: <>"),
            Ok(Command::MailFrom {
                sender: String::new(),
                size: None
            })
        );
        assert_eq!(parse(b"RCPT TO:<u@x>"), Ok(Command::RcptTo("u@x".into())));
        assert_eq!(
            parse(b"RCPT TO:<@relay.example:u@x>"),
            Ok(Command::RcptTo("u@x".into()))
        );
        assert_eq!(parse(b"data"), Ok(Command::Data));
        assert_eq!(parse(b"StartTLS"), Ok(Command::StartTls));
        assert!(parse(b"STARTTLS now").is_err());
        assert!(parse(b"RCPT TO:u@x").is_err());
        assert!(parse(b"RCPT TO:<>").is_err());
        assert!(parse(b"MAIL FROM:<a> SIZE=x").is_err());
        assert!(parse(b"MAIL FROM:<a> XYZ=1").is_err());
        assert!(parse(b"BDAT 10").is_err());
        assert!(parse(b"RCPT TO:<a\tb@x>").is_err());
        assert!(parse(&[0xff, b' ']).is_err());
    }

    #[test]
    fn recipients() {
        let r = Recipient::parse("bob+lists@example.com", "+");
        assert_eq!(r.address, "bob@example.com");
        assert_eq!(r.local, "bob");
        assert_eq!(r.detail.as_deref(), Some("lists"));
        let r = Recipient::parse("bob", "+");
        assert_eq!((r.address.as_str(), r.detail), ("bob", None));
        let r = Recipient::parse("+x@example.com", "+");
        assert_eq!(r.local, "+x");
        let r = Recipient::parse("bob+x@example.com", "");
        assert_eq!(r.local, "bob+x");
    }
}
