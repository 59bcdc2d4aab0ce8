//! The capability response (RFC 5804 §1.7): sent as the greeting, after STARTTLS, and for
//! CAPABILITY. Each line is a capability name and maybe a value, both strings.

use crate::options::Options;
use crate::response::write_string;

/// Where the session stands, for what it offers.
pub struct State<'a> {
    pub tls: bool,
    /// Plaintext SASL mechanisms may be used now (TLS, or a secure network).
    pub plaintext_ok: bool,
    /// The logged-in user.
    pub user: Option<&'a str>,
}

/// The extensions a client may require, without those whose actions this server refuses
/// (a client such as Roundcube then hides, say, its vacation form instead of failing on
/// upload).
pub fn sieve_extensions(options: &Options) -> Vec<&'static str> {
    let mail = options.mail;
    ringmail_sieve::CAPABILITIES
        .iter()
        .copied()
        .filter(|ext| match *ext {
            "vacation" | "vacation-seconds" => mail.relay,
            "reject" | "ereject" => mail.relay || mail.reject_by_reply,
            _ => true,
        })
        .collect()
}

/// The capability lines, each `name [value]` without the line end.
pub fn capabilities(options: &Options, state: &State<'_>) -> Vec<(&'static str, Option<String>)> {
    let mut caps: Vec<(&'static str, Option<String>)> = vec![
        ("IMPLEMENTATION", Some(options.implementation.clone())),
        ("SIEVE", Some(sieve_extensions(options).join(" "))),
    ];
    let max_redirects = if options.mail.relay {
        options.limits.max_redirects
    } else {
        0
    };
    caps.push(("MAXREDIRECTS", Some(max_redirects.to_string())));
    // No NOTIFY: the enotify extension is not supported (RFC 5804 §1.7 ties the two).
    match state.user {
        None => {
            let sasl = if state.plaintext_ok {
                "PLAIN LOGIN"
            } else {
                ""
            };
            caps.push(("SASL", Some(sasl.into())));
            if options.starttls && !state.tls {
                caps.push(("STARTTLS", None));
            }
        }
        Some(user) => caps.push(("OWNER", Some(user.into()))),
    }
    caps.push(("LANGUAGE", Some("en".into())));
    caps.push(("UNAUTHENTICATE", None));
    caps.push(("VERSION", Some("1.0".into())));
    caps
}

/// Appends the capability lines (not the OK that ends them).
pub fn write(out: &mut Vec<u8>, options: &Options, state: &State<'_>) {
    for (name, value) in capabilities(options, state) {
        write_string(out, name.as_bytes());
        if let Some(v) = value {
            out.push(b' ');
            write_string(out, v.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::MailPolicy;

    fn text(options: &Options, state: &State<'_>) -> String {
        let mut out = Vec::new();
        write(&mut out, options, state);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn before_login_without_tls() {
        let options = Options {
            starttls: true,
            ..Options::default()
        };
        let t = text(
            &options,
            &State {
                tls: false,
                plaintext_ok: false,
                user: None,
            },
        );
        assert!(
            t.starts_with(
                "\"IMPLEMENTATION\" \"ringmail\"\r\n\"SIEVE\" \"fileinto reject ereject envelope"
            ),
            "{t}"
        );
        assert!(t.contains("\"SASL\" \"\"\r\n\"STARTTLS\"\r\n"), "{t}");
        assert!(t.contains("\"MAXREDIRECTS\" \"0\"\r\n"), "no relay: {t}");
        assert!(!t.contains("vacation"), "no relay: {t}");
        assert!(!t.contains("OWNER"), "{t}");
        assert!(
            t.ends_with("\"LANGUAGE\" \"en\"\r\n\"UNAUTHENTICATE\"\r\n\"VERSION\" \"1.0\"\r\n"),
            "{t}"
        );
    }

    #[test]
    fn after_tls_and_login() {
        let options = Options {
            starttls: true,
            mail: MailPolicy {
                relay: true,
                reject_by_reply: true,
            },
            ..Options::default()
        };
        let tls = State {
            tls: true,
            plaintext_ok: true,
            user: None,
        };
        let t = text(&options, &tls);
        assert!(t.contains("\"SASL\" \"PLAIN LOGIN\"\r\n"), "{t}");
        assert!(!t.contains("STARTTLS"), "{t}");
        assert!(t.contains(" vacation vacation-seconds "), "{t}");
        assert!(t.contains("\"MAXREDIRECTS\" \"4\"\r\n"), "{t}");
        let t = text(
            &options,
            &State {
                user: Some("alice@example.com"),
                ..tls
            },
        );
        assert!(t.contains("\"OWNER\" \"alice@example.com\"\r\n"), "{t}");
        assert!(!t.contains("SASL"), "{t}");
    }

    #[test]
    fn reject_follows_the_policy() {
        let strict = Options {
            mail: MailPolicy {
                relay: false,
                reject_by_reply: false,
            },
            ..Options::default()
        };
        let exts = sieve_extensions(&strict);
        assert!(!exts.contains(&"reject") && !exts.contains(&"ereject"));
        assert!(exts.contains(&"fileinto") && exts.contains(&"regex"));
    }
}
