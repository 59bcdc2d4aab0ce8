//! FETCH attributes and modifiers (RFC 9051 §6.4.5, BINARY, CONDSTORE/QRESYNC, OBJECTID,
//! PREVIEW, SAVEDATE).

use super::ast::{FetchAttr, FetchModifiers, Partial, Section, SectionText};
use super::cursor::{err, Cursor, PResult};

/// `fetch-att` / `(fetch-att ...)` / a macro, expanded into attributes.
pub(crate) fn fetch_items<'a>(c: &mut Cursor<'a>) -> PResult<Vec<FetchAttr<'a>>> {
    if c.peek() == Some(b'(') {
        return c.paren_list(fetch_attr);
    }
    let save = c.clone_pos();
    let kw = c.keyword()?;
    let expanded = match kw.as_bytes() {
        b"ALL" => vec![
            FetchAttr::Flags,
            FetchAttr::InternalDate,
            FetchAttr::Rfc822Size,
            FetchAttr::Envelope,
        ],
        b"FAST" => vec![
            FetchAttr::Flags,
            FetchAttr::InternalDate,
            FetchAttr::Rfc822Size,
        ],
        b"FULL" => vec![
            FetchAttr::Flags,
            FetchAttr::InternalDate,
            FetchAttr::Rfc822Size,
            FetchAttr::Envelope,
            FetchAttr::Body,
        ],
        _ => {
            c.restore_pos(save);
            vec![fetch_attr(c)?]
        }
    };
    Ok(expanded)
}

/// One fetch attribute.
fn fetch_attr<'a>(c: &mut Cursor<'a>) -> PResult<FetchAttr<'a>> {
    let kw = c.keyword()?;
    Ok(match kw.as_bytes() {
        b"ENVELOPE" => FetchAttr::Envelope,
        b"FLAGS" => FetchAttr::Flags,
        b"INTERNALDATE" => FetchAttr::InternalDate,
        b"RFC822" => FetchAttr::Rfc822,
        b"RFC822.HEADER" => FetchAttr::Rfc822Header,
        b"RFC822.SIZE" => FetchAttr::Rfc822Size,
        b"RFC822.TEXT" => FetchAttr::Rfc822Text,
        b"BODYSTRUCTURE" => FetchAttr::BodyStructure,
        b"UID" => FetchAttr::Uid,
        b"MODSEQ" => FetchAttr::ModSeq,
        b"EMAILID" => FetchAttr::EmailId,
        b"THREADID" => FetchAttr::ThreadId,
        b"SAVEDATE" => FetchAttr::SaveDate,
        b"PREVIEW" => {
            let lazy = if c.peek_is(b" (") && c.peek_ci_at(2, b"LAZY") {
                c.sp()?;
                c.open()?;
                if !c.eat_ci(b"LAZY") {
                    return err("expected PREVIEW (LAZY)");
                }
                c.close()?;
                true
            } else {
                false
            };
            FetchAttr::Preview { lazy }
        }
        b"BODY" if c.peek() != Some(b'[') => FetchAttr::Body,
        b"BODY" | b"BODY.PEEK" => {
            let peek = kw.as_bytes() == b"BODY.PEEK";
            c.expect(b'[', "expected '['")?;
            let section = section(c)?;
            let partial = partial(c)?;
            FetchAttr::BodySection {
                peek,
                section,
                partial,
            }
        }
        b"BINARY" | b"BINARY.PEEK" => {
            let peek = kw.as_bytes() == b"BINARY.PEEK";
            c.expect(b'[', "expected '['")?;
            let part = section_part(c)?;
            c.expect(b']', "expected ']'")?;
            let partial = partial(c)?;
            FetchAttr::Binary {
                peek,
                part,
                partial,
            }
        }
        b"BINARY.SIZE" => {
            c.expect(b'[', "expected '['")?;
            let part = section_part(c)?;
            c.expect(b']', "expected ']'")?;
            FetchAttr::BinarySize { part }
        }
        _ => return err("unknown FETCH attribute"),
    })
}

/// `nz-number *("." nz-number)` possibly empty (the part of a section before its text).
fn section_part(c: &mut Cursor<'_>) -> PResult<Vec<u32>> {
    let mut part = Vec::new();
    while c.peek().is_some_and(|b| b.is_ascii_digit()) {
        part.push(c.nz_number()?);
        if !c.eat(b'.') {
            break;
        }
        if !c.peek().is_some_and(|b| b.is_ascii_digit()) {
            // "1.HEADER": the dot introduced the text specifier.
            c.unread_one();
            break;
        }
    }
    Ok(part)
}

/// The inside of `[...]` after `BODY[`, including the closing `]`.
fn section<'a>(c: &mut Cursor<'a>) -> PResult<Section<'a>> {
    let part = section_part(c)?;
    if c.eat(b']') {
        return Ok(Section { part, text: None });
    }
    if !part.is_empty() {
        c.expect(b'.', "expected '.' in section")?;
    }
    let kw = c.keyword()?;
    let text = match kw.as_bytes() {
        b"HEADER" => SectionText::Header,
        b"TEXT" => SectionText::Text,
        b"MIME" if !part.is_empty() => SectionText::Mime,
        b"HEADER.FIELDS" => {
            c.sp()?;
            SectionText::HeaderFields(c.paren_list(|c| c.astring())?)
        }
        b"HEADER.FIELDS.NOT" => {
            c.sp()?;
            SectionText::HeaderFieldsNot(c.paren_list(|c| c.astring())?)
        }
        _ => return err("bad section specifier"),
    };
    c.expect(b']', "expected ']'")?;
    Ok(Section {
        part,
        text: Some(text),
    })
}

/// `<offset.length>`, optional.
fn partial(c: &mut Cursor<'_>) -> PResult<Option<Partial>> {
    if !c.eat(b'<') {
        return Ok(None);
    }
    let offset = c.number()?;
    c.expect(b'.', "expected '.' in partial")?;
    let length = c.nz_number()?;
    c.expect(b'>', "expected '>'")?;
    Ok(Some(Partial { offset, length }))
}

/// `(CHANGEDSINCE n [VANISHED])` and friends, after `SP`.
pub(crate) fn fetch_modifiers(c: &mut Cursor<'_>, uid: bool) -> PResult<FetchModifiers> {
    let mut m = FetchModifiers::default();
    c.paren_list(|c| {
        let kw = c.keyword()?;
        match kw.as_bytes() {
            b"CHANGEDSINCE" => {
                c.sp()?;
                m.changed_since = Some(c.number64()?);
            }
            b"VANISHED" if uid => m.vanished = true,
            _ => return err("unknown FETCH modifier"),
        }
        Ok(())
    })?;
    if m.vanished && m.changed_since.is_none() {
        return err("VANISHED requires CHANGEDSINCE");
    }
    Ok(m)
}
