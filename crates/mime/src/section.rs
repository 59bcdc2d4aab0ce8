//! `BODY[section]` addressing (RFC 9051 §6.4.5): which bytes of the stored
//! message a section is, so FETCH can answer with a positioned read.

use std::borrow::Cow;
use std::ops::Range;

use super::header::filter_header_fields;
use super::meta::{MessageMeta, PartKind, PartMeta};

/// A `BODY[...]` / `BINARY[...]` section: a part path and what of that part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionSpec {
    /// Part numbers, 1-based: `[]` is the message itself, `[2, 1]` is `2.1`.
    pub part: Vec<u32>,
    /// What of the part is wanted.
    pub text: SectionText,
}

/// The section-text of a [`SectionSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    /// No section-text: the whole message (`BODY[]`) or the part's body (`BODY[1.2]`).
    Full,
    /// `HEADER`: the message's, or the embedded message's for a message/rfc822 part.
    Header,
    /// `HEADER.FIELDS (...)`: the header filtered to these field names.
    HeaderFields(Vec<Vec<u8>>),
    /// `HEADER.FIELDS.NOT (...)`: the header without these field names.
    HeaderFieldsNot(Vec<Vec<u8>>),
    /// `TEXT`: the body of the message or of the embedded message.
    Text,
    /// `MIME`: the part's own MIME header (only with a part number).
    Mime,
}

/// The byte range of `raw` that `section` is, or `None` when the message has no
/// such section. For `HeaderFields`/`HeaderFieldsNot` this is the whole header;
/// pass its bytes through [`filter_header_fields`] (or use [`section_bytes`]).
/// The range always lies within `0..raw_len`.
pub fn section_range(
    meta: &MessageMeta,
    raw_len: usize,
    section: &SectionSpec,
) -> Option<Range<usize>> {
    let range = if section.part.is_empty() {
        let root = &meta.root;
        match section.text {
            SectionText::Full => 0..raw_len,
            SectionText::Header
            | SectionText::HeaderFields(_)
            | SectionText::HeaderFieldsNot(_) => header_range(root),
            SectionText::Text => body_range(root),
            SectionText::Mime => return None,
        }
    } else {
        let part = find_part(&meta.root, &section.part)?;
        match section.text {
            SectionText::Full => body_range(part),
            SectionText::Mime => header_range(part),
            SectionText::Header
            | SectionText::HeaderFields(_)
            | SectionText::HeaderFieldsNot(_)
            | SectionText::Text => {
                if part.kind != PartKind::Message {
                    return None;
                }
                let inner = part.children.first()?;
                if section.text == SectionText::Text {
                    body_range(inner)
                } else {
                    header_range(inner)
                }
            }
        }
    };
    let end = range.end.min(raw_len);
    (range.start <= end).then_some(range.start..end)
}

/// The bytes of `section`, header filtering applied: borrowed from `raw` except
/// for `HEADER.FIELDS` / `HEADER.FIELDS.NOT`.
pub fn section_bytes<'r>(
    meta: &MessageMeta,
    raw: &'r [u8],
    section: &SectionSpec,
) -> Option<Cow<'r, [u8]>> {
    let range = section_range(meta, raw.len(), section)?;
    let bytes = raw.get(range)?;
    Some(match &section.text {
        SectionText::HeaderFields(names) | SectionText::HeaderFieldsNot(names) => {
            let names: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
            let not = matches!(section.text, SectionText::HeaderFieldsNot(_));
            Cow::Owned(filter_header_fields(bytes, &names, not))
        }
        _ => Cow::Borrowed(bytes),
    })
}

fn header_range(p: &PartMeta) -> Range<usize> {
    p.header_start as usize..p.header_end as usize
}

fn body_range(p: &PartMeta) -> Range<usize> {
    p.body_start as usize..p.body_end as usize
}

/// The part a non-empty part path names (`[]` gives the root).
///
/// Part numbers index the body parts of a multipart. A message/rfc822 part is
/// entered through its embedded message, and a message that is not multipart (the
/// top level or an embedded one) has exactly one part, `1`: its own body.
pub(crate) fn find_part<'m>(root: &'m PartMeta, path: &[u32]) -> Option<&'m PartMeta> {
    let mut current = root;
    // The top level behaves like an embedded message whose root is `root`.
    let mut in_message = true;
    for &n in path {
        let index = usize::try_from(n).ok()?.checked_sub(1)?;
        let container = if !in_message && current.kind == PartKind::Message {
            current.children.first()?
        } else {
            current
        };
        let entering_message = in_message || current.kind == PartKind::Message;
        current = if container.kind == PartKind::Multipart {
            container.children.get(index)?
        } else if entering_message && index == 0 {
            container
        } else {
            return None;
        };
        in_message = false;
    }
    Some(current)
}
