//! Address lists (From, To, Cc, ...) parsed from raw header bytes, the way IMAP
//! ENVELOPE needs them: display names kept in their raw form (encoded words are
//! the client's business), group syntax preserved, nothing ever rejected.

use super::lexer::{lex, Token, ADDRESS_SPECIALS};

/// One element of an ENVELOPE address list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AddressItem {
    /// A mailbox: `(name adl mailbox host)`.
    Mailbox {
        name: Option<Vec<u8>>,
        route: Option<Vec<u8>>,
        mailbox: Vec<u8>,
        host: Option<Vec<u8>>,
    },
    /// `name:` opening a group: `(NIL NIL name NIL)`.
    GroupStart(Vec<u8>),
    /// `;` closing a group: `(NIL NIL NIL NIL)`.
    GroupEnd,
}

/// Parses an unfolded address-list value. Never fails; what cannot be understood
/// is dropped or kept as a mailbox without a host.
pub(crate) fn parse_address_list(value: &[u8]) -> Vec<AddressItem> {
    let lexed = lex(value, ADDRESS_SPECIALS);
    let toks = &lexed.tokens;
    let comment_between = |start: usize, end: usize| {
        lexed
            .comments
            .iter()
            .find(|(at, text)| *at > start && *at <= end && !text.is_empty())
            .map(|(_, text)| text.clone())
    };
    let mut items = Vec::new();
    let mut in_group = false;
    let mut i = 0;
    while i < toks.len() {
        let start = i;
        // A phrase: the display name, a group name, or an addr-spec's local part.
        while i < toks.len() && !is_special_in(&toks[i], b"<@:,;>") {
            i += 1;
        }
        let phrase = &toks[start..i];
        match toks.get(i) {
            Some(Token::Special(b':')) if !in_group => {
                items.push(AddressItem::GroupStart(render_phrase(phrase)));
                in_group = true;
                i += 1;
            }
            Some(Token::Special(b'<')) => {
                i += 1;
                let route_start = i;
                if matches!(toks.get(i), Some(Token::Special(b'@'))) {
                    while i < toks.len() && !is_special_in(&toks[i], b":>") {
                        i += 1;
                    }
                }
                let route = (i > route_start).then(|| render_atoms(&toks[route_start..i]));
                if matches!(toks.get(i), Some(Token::Special(b':'))) {
                    i += 1;
                }
                let local_start = i;
                while i < toks.len() && !is_special_in(&toks[i], b"@>") {
                    i += 1;
                }
                let mailbox = render_atoms(&toks[local_start..i]);
                let mut host = None;
                if matches!(toks.get(i), Some(Token::Special(b'@'))) {
                    i += 1;
                    let host_start = i;
                    while i < toks.len() && !is_special_in(&toks[i], b">") {
                        i += 1;
                    }
                    host = Some(render_atoms(&toks[host_start..i]));
                }
                if i < toks.len() {
                    i += 1; // '>'
                }
                let name = if phrase.is_empty() {
                    comment_between(start, i)
                } else {
                    Some(render_phrase(phrase))
                };
                items.push(mailbox_item(name, route, mailbox, host));
            }
            Some(Token::Special(b'@')) => {
                i += 1;
                let host_start = i;
                while i < toks.len() && !is_special_in(&toks[i], b",;<>") {
                    i += 1;
                }
                let host = render_atoms(&toks[host_start..i]);
                let name = comment_between(start, i);
                items.push(mailbox_item(name, None, render_atoms(phrase), Some(host)));
            }
            other => {
                if !phrase.is_empty() {
                    let name = comment_between(start, i);
                    items.push(mailbox_item(name, None, render_atoms(phrase), None));
                }
                if matches!(other, Some(Token::Special(b';'))) && in_group {
                    items.push(AddressItem::GroupEnd);
                    in_group = false;
                }
                i += 1; // ',', ';', a stray '>' or ':' (past the end is harmless)
            }
        }
    }
    if in_group {
        items.push(AddressItem::GroupEnd);
    }
    items
}

fn mailbox_item(
    name: Option<Vec<u8>>,
    route: Option<Vec<u8>>,
    mailbox: Vec<u8>,
    host: Option<Vec<u8>>,
) -> AddressItem {
    AddressItem::Mailbox {
        name: name.filter(|n| !n.is_empty()),
        route,
        mailbox,
        host: host.filter(|h| !h.is_empty()),
    }
}

fn is_special_in(t: &Token, set: &[u8]) -> bool {
    matches!(t, Token::Special(c) if set.contains(c))
}

/// A display name: words separated by single spaces, quoted strings unquoted.
fn render_phrase(toks: &[Token]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in toks {
        match t {
            Token::Word { text, .. } | Token::DomainLiteral(text) => {
                if !out.is_empty() {
                    out.push(b' ');
                }
                out.extend_from_slice(text);
            }
            Token::Special(c) => out.push(*c),
        }
    }
    out
}

/// A local part, domain or route: tokens concatenated, quoted strings unquoted
/// (Dovecot answers `"john doe"@example.com` with mailbox `john doe`).
fn render_atoms(toks: &[Token]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in toks {
        match t {
            Token::Word { text, .. } | Token::DomainLiteral(text) => out.extend_from_slice(text),
            Token::Special(c) => out.push(*c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(name: Option<&str>, mailbox: &str, host: Option<&str>) -> AddressItem {
        AddressItem::Mailbox {
            name: name.map(|s| s.as_bytes().to_vec()),
            route: None,
            mailbox: mailbox.as_bytes().to_vec(),
            host: host.map(|s| s.as_bytes().to_vec()),
        }
    }

    #[test]
    fn common_forms() {
        let got = parse_address_list(
            b"\"Doe, John\" <john@example.com>, jane@example.org (Jane R.), =?utf-8?q?J=C3=B6rg?= <j@x.de>",
        );
        assert_eq!(
            got,
            vec![
                mb(Some("Doe, John"), "john", Some("example.com")),
                mb(Some("Jane R."), "jane", Some("example.org")),
                mb(Some("=?utf-8?q?J=C3=B6rg?="), "j", Some("x.de")),
            ]
        );
    }

    #[test]
    fn groups_and_routes() {
        let got =
            parse_address_list(b"Team: a@x.org, <@r1,@r2:b@y.org>;, undisclosed-recipients:;");
        assert_eq!(got.len(), 6);
        assert_eq!(got[0], AddressItem::GroupStart(b"Team".to_vec()));
        assert_eq!(got[1], mb(None, "a", Some("x.org")));
        assert_eq!(
            got[2],
            AddressItem::Mailbox {
                name: None,
                route: Some(b"@r1,@r2".to_vec()),
                mailbox: b"b".to_vec(),
                host: Some(b"y.org".to_vec())
            }
        );
        assert_eq!(got[3], AddressItem::GroupEnd);
        assert_eq!(
            got[4],
            AddressItem::GroupStart(b"undisclosed-recipients".to_vec())
        );
        assert_eq!(got[5], AddressItem::GroupEnd);
    }

    #[test]
    fn broken_input_is_kept_sensibly() {
        assert_eq!(
            parse_address_list(b"just-a-user"),
            vec![mb(None, "just-a-user", None)]
        );
        assert_eq!(
            parse_address_list(b"Name <a@b"),
            vec![mb(Some("Name"), "a", Some("b"))]
        );
        assert!(parse_address_list(b"").is_empty());
        assert!(parse_address_list(b",,;>:").len() <= 2);
    }
}
