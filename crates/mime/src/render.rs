//! Rendering of ENVELOPE (RFC 9051 §7.5.2) and BODY / BODYSTRUCTURE from the
//! parsed header and part tree. Done once at APPEND; FETCH copies the bytes.

use super::address::AddressItem;
use super::header::unfold;
use super::meta::{PartKind, PartMeta};
use super::parsed::{Name, ParsedHeader};
use ringmail_proto::response::ResponseWriter;

// These bytes are rendered once at APPEND and replayed verbatim to every client, so the
// choice between quoted string and literal must be valid for any client: the writer runs
// outside UTF-8 mode, so 8-bit data goes out as a literal (legal in either mode),
// everything short and plain as a quoted string.

/// Appends `NIL` for `None`, otherwise [`string`].
fn nstring(out: &mut Vec<u8>, value: Option<&[u8]>) {
    ResponseWriter::new(out, false).header_nstring(value);
}

/// Appends a header value as a quoted string when that is allowed, otherwise as a literal.
fn string(out: &mut Vec<u8>, value: &[u8]) {
    ResponseWriter::new(out, false).header_string(value);
}

/// Renders the ENVELOPE of a message from its header block.
pub(crate) fn envelope(header: &[u8]) -> Vec<u8> {
    envelope_of(&ParsedHeader::of(header))
}

/// Renders the ENVELOPE from a header's fields (their address lists parsed once, shared
/// with the SORT keys and the header-search values).
pub(crate) fn envelope_of(h: &ParsedHeader<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.push(b'(');
    unstructured(&mut out, h.value(Name::Date));
    out.push(b' ');
    unstructured(&mut out, h.value(Name::Subject));
    let from = h.list(Name::From);
    // RFC 9051: Sender and Reply-To default to From when absent (or empty).
    let or_from = |name| h.list(name).filter(|l| !l.is_empty()).or(from);
    for list in [
        from,
        or_from(Name::Sender),
        or_from(Name::ReplyTo),
        h.list(Name::To),
        h.list(Name::Cc),
        h.list(Name::Bcc),
    ] {
        out.push(b' ');
        address_list(&mut out, list.unwrap_or_default());
    }
    out.push(b' ');
    unstructured(&mut out, h.value(Name::InReplyTo));
    out.push(b' ');
    unstructured(&mut out, h.value(Name::MessageId));
    out.push(b')');
    out
}

fn unstructured(out: &mut Vec<u8>, value: Option<&[u8]>) {
    // A field that is present but empty is "", not NIL (as Dovecot answers).
    nstring(out, value.map(unfold).as_deref());
}

fn address_list(out: &mut Vec<u8>, items: &[AddressItem]) {
    if items.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for item in items {
        match item {
            AddressItem::Mailbox {
                name,
                route,
                mailbox,
                host,
            } => {
                out.push(b'(');
                nstring(out, name.as_deref());
                out.push(b' ');
                nstring(out, route.as_deref());
                out.push(b' ');
                // Like Dovecot, fill in what a broken address lacks so that clients
                // do not mistake it for group syntax (NIL host).
                let mailbox: &[u8] = if mailbox.is_empty() {
                    b"MISSING_MAILBOX"
                } else {
                    mailbox
                };
                string(out, mailbox);
                out.push(b' ');
                string(out, host.as_deref().unwrap_or(b"MISSING_DOMAIN"));
                out.push(b')');
            }
            AddressItem::GroupStart(name) => {
                out.extend_from_slice(b"(NIL NIL ");
                string(out, name);
                out.extend_from_slice(b" NIL)");
            }
            AddressItem::GroupEnd => out.extend_from_slice(b"(NIL NIL NIL NIL)"),
        }
    }
    out.push(b')');
}

/// Renders BODYSTRUCTURE (`extensible`) or BODY of a part tree.
pub(crate) fn body_structure(part: &PartMeta, extensible: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_part(&mut out, part, extensible);
    out
}

fn write_part(out: &mut Vec<u8>, p: &PartMeta, ext: bool) {
    out.push(b'(');
    if p.kind == PartKind::Multipart {
        for c in &p.children {
            write_part(out, c, ext);
        }
        out.push(b' ');
        string(out, &p.subtype);
        if ext {
            out.push(b' ');
            params(out, &p.params);
            write_common_ext(out, p);
        }
        out.push(b')');
        return;
    }
    string(out, &p.media_type);
    out.push(b' ');
    string(out, &p.subtype);
    out.push(b' ');
    params(out, &p.params);
    out.push(b' ');
    nstring(out, p.id.as_deref());
    out.push(b' ');
    nstring(out, p.description.as_deref());
    out.push(b' ');
    string(out, p.encoding.as_deref().unwrap_or(b"7bit"));
    out.push(b' ');
    out.extend_from_slice(p.size.to_string().as_bytes());
    match p.kind {
        PartKind::Text => {
            out.push(b' ');
            out.extend_from_slice(p.lines.to_string().as_bytes());
        }
        PartKind::Message => {
            out.push(b' ');
            out.extend_from_slice(p.envelope.as_deref().unwrap_or(b"NIL"));
            out.push(b' ');
            match p.children.first() {
                Some(c) => write_part(out, c, ext),
                None => out.extend_from_slice(EMPTY_BODY),
            }
            out.push(b' ');
            out.extend_from_slice(p.lines.to_string().as_bytes());
        }
        PartKind::Basic | PartKind::Multipart => {}
    }
    if ext {
        out.push(b' ');
        nstring(out, p.md5.as_deref());
        write_common_ext(out, p);
    }
    out.push(b')');
}

/// The body of an embedded message that could not be analysed (too deep).
const EMPTY_BODY: &[u8] = b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)";

/// Disposition, language and location: the extension data shared by all parts.
fn write_common_ext(out: &mut Vec<u8>, p: &PartMeta) {
    out.push(b' ');
    match &p.disposition {
        None => out.extend_from_slice(b"NIL"),
        Some((value, ps)) => {
            out.push(b'(');
            string(out, value);
            out.push(b' ');
            params(out, ps);
            out.push(b')');
        }
    }
    out.push(b' ');
    if p.language.is_empty() {
        out.extend_from_slice(b"NIL");
    } else {
        out.push(b'(');
        for (i, l) in p.language.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            string(out, l);
        }
        out.push(b')');
    }
    out.push(b' ');
    nstring(out, p.location.as_deref());
}

fn params(out: &mut Vec<u8>, ps: &[(Vec<u8>, Vec<u8>)]) {
    if ps.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in ps.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, k);
        out.push(b' ');
        string(out, v);
    }
    out.push(b')');
}
