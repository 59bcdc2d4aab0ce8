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

/// The address list in the form SEARCH FROM / TO / CC / BCC compare the string with:
/// comments, folding and stray spaces gone, each mailbox `Name <local@domain>` (the name
/// quoted where RFC 5322 needs it) or `<local@domain>`, each group `name: <a@b>, <c@d>;`.
/// So `user@domain.org` finds `<user (comment)@ (comment) domain.org>`, a display name or
/// a group's name finds the message, and a comment does not. Dovecot matches the same form
/// (it also quotes names that are plain words with spaces). Encoded words in names are kept
/// for the caller to decode with the rest.
pub(crate) fn search_form(items: &[AddressItem]) -> Vec<u8> {
    let mut out = Vec::new();
    // Just after `name:`: the first member follows a space, not a comma.
    let mut group_opened = false;
    for item in items {
        let separate = |out: &mut Vec<u8>| {
            if group_opened {
                out.push(b' ');
            } else if !out.is_empty() {
                out.extend_from_slice(b", ");
            }
        };
        match item {
            AddressItem::GroupStart(name) => {
                separate(&mut out);
                write_name(&mut out, name);
                out.push(b':');
                group_opened = true;
                continue;
            }
            AddressItem::GroupEnd => out.push(b';'),
            AddressItem::Mailbox {
                name,
                route,
                mailbox,
                host,
            } => {
                separate(&mut out);
                if let Some(name) = name {
                    write_name(&mut out, name);
                    out.push(b' ');
                }
                out.push(b'<');
                if let Some(route) = route {
                    out.extend_from_slice(route);
                    out.push(b':');
                }
                out.extend_from_slice(mailbox);
                if let Some(host) = host {
                    out.push(b'@');
                    out.extend_from_slice(host);
                }
                out.push(b'>');
            }
        }
        group_opened = false;
    }
    out
}

/// A display or group name as RFC 5322 writes it: an atom sequence as it is, anything else
/// quoted. Encoded words stay unquoted (RFC 2047 section 5 forbids them in quoted strings),
/// so they can still be decoded.
fn write_name(out: &mut Vec<u8>, name: &[u8]) {
    let is_atext =
        |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(b) || *b >= 0x80;
    let plain = name
        .split(|&b| b == b' ')
        .all(|word| !word.is_empty() && word.iter().all(is_atext));
    if plain || memchr::memmem::find(name, b"=?").is_some() {
        out.extend_from_slice(name);
        return;
    }
    out.push(b'"');
    for &b in name {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
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
    fn search_form_drops_comments_and_keeps_names_and_groups() {
        let form = |v: &[u8]| String::from_utf8(search_form(&parse_address_list(v))).unwrap();
        // RFC 5322 appendix A.5: comments and white space anywhere.
        assert_eq!(
            form(b"Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>"),
            "Pete <pete@silly.test>"
        );
        assert_eq!(
            form(
                b"A Group(Some people):Chris Jones <c@(Chris's host.)public.example>, \
                  joe@example.org, John <jdoe@one.test> (my dear friend); (the end of the group)"
            ),
            "A Group: Chris Jones <c@public.example>, <joe@example.org>, John <jdoe@one.test>;"
        );
        assert_eq!(
            form(b"(Empty list)(start)Hidden recipients  :(nobody(that I know))  ;"),
            "Hidden recipients:;"
        );
        // A name that needs quoting gets it; an encoded word is left for decoding.
        assert_eq!(
            form(b"\"Doe, John\" <john@example.com>, =?utf-8?q?J=C3=B6rg?= <j@x.de>"),
            "\"Doe, John\" <john@example.com>, =?utf-8?q?J=C3=B6rg?= <j@x.de>"
        );
        assert_eq!(
            form(b"<@r1,@r2:b@y.org>, user@host (Real Name)"),
            "<@r1,@r2:b@y.org>, Real Name <user@host>"
        );
        assert_eq!(form(b""), "");
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
