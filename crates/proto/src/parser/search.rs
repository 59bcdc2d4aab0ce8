//! SEARCH, SORT and THREAD arguments: search keys (RFC 9051 §6.4.4, RFC 3501, CONDSTORE,
//! WITHIN, OBJECTID, SAVEDATE), ESEARCH return options, sort criteria, thread algorithms.

use super::ast::{
    AString, EntryType, SearchKey, SearchReturn, SortCriterion, SortKey, ThreadAlgorithm,
};
use super::cursor::{err, Cursor, PResult};

/// `[SP RETURN (opts)]`, when the input continues with ` RETURN`.
pub(crate) fn return_opts(c: &mut Cursor<'_>) -> PResult<Option<Vec<SearchReturn>>> {
    if !(c.peek_is(b" ") && c.peek_ci_at(1, b"RETURN ")) {
        return Ok(None);
    }
    c.sp()?;
    c.keyword()?;
    c.sp()?;
    c.open()?;
    let mut opts = Vec::new();
    if !c.eat(b')') {
        loop {
            let kw = c.keyword()?;
            opts.push(match kw.as_bytes() {
                b"MIN" => SearchReturn::Min,
                b"MAX" => SearchReturn::Max,
                b"ALL" => SearchReturn::All,
                b"COUNT" => SearchReturn::Count,
                b"SAVE" => SearchReturn::Save,
                _ => return err("unknown RETURN option"),
            });
            if !c.eat(b' ') {
                break;
            }
        }
        c.close()?;
    } else {
        c.unnest();
    }
    Ok(Some(opts))
}

/// search-program after `SEARCH [RETURN (..)] SP`: `[CHARSET x SP] key *(SP key)`.
pub(crate) fn search_program<'a>(
    c: &mut Cursor<'a>,
) -> PResult<(Option<AString<'a>>, Vec<SearchKey<'a>>)> {
    let charset = if c.peek_ci_at(0, b"CHARSET ") {
        c.keyword()?;
        c.sp()?;
        let cs = c.astring()?;
        c.sp()?;
        Some(cs)
    } else {
        None
    };
    Ok((charset, search_keys(c)?))
}

/// `key *(SP key)` up to the end of the command.
pub(crate) fn search_keys<'a>(c: &mut Cursor<'a>) -> PResult<Vec<SearchKey<'a>>> {
    let mut keys = vec![search_key(c)?];
    while c.eat(b' ') {
        keys.push(search_key(c)?);
    }
    Ok(keys)
}

/// One search key.
fn search_key<'a>(c: &mut Cursor<'a>) -> PResult<SearchKey<'a>> {
    match c.peek() {
        Some(b'(') => {
            c.open()?;
            let mut keys = vec![search_key(c)?];
            while c.eat(b' ') {
                keys.push(search_key(c)?);
            }
            c.close()?;
            return Ok(SearchKey::And(keys));
        }
        Some(b'0'..=b'9') | Some(b'*') | Some(b'$') => {
            return Ok(SearchKey::SequenceSet(c.sequence_set()?));
        }
        _ => {}
    }
    let kw = c.keyword()?;
    let key = match kw.as_bytes() {
        b"ALL" => SearchKey::All,
        b"ANSWERED" => SearchKey::Answered,
        b"DELETED" => SearchKey::Deleted,
        b"DRAFT" => SearchKey::Draft,
        b"FLAGGED" => SearchKey::Flagged,
        b"NEW" => SearchKey::New,
        b"OLD" => SearchKey::Old,
        b"RECENT" => SearchKey::Recent,
        b"SEEN" => SearchKey::Seen,
        b"UNANSWERED" => SearchKey::Unanswered,
        b"UNDELETED" => SearchKey::Undeleted,
        b"UNDRAFT" => SearchKey::Undraft,
        b"UNFLAGGED" => SearchKey::Unflagged,
        b"UNSEEN" => SearchKey::Unseen,
        b"SAVEDATESUPPORTED" => SearchKey::SaveDateSupported,
        b"BCC" => SearchKey::Bcc(arg_astring(c)?),
        b"BODY" => SearchKey::Body(arg_astring(c)?),
        b"CC" => SearchKey::Cc(arg_astring(c)?),
        b"FROM" => SearchKey::From(arg_astring(c)?),
        b"SUBJECT" => SearchKey::Subject(arg_astring(c)?),
        b"TEXT" => SearchKey::Text(arg_astring(c)?),
        b"TO" => SearchKey::To(arg_astring(c)?),
        b"HEADER" => {
            let field = arg_astring(c)?;
            SearchKey::Header(field, arg_astring(c)?)
        }
        b"KEYWORD" => {
            c.sp()?;
            SearchKey::Keyword(c.atom_str()?)
        }
        b"UNKEYWORD" => {
            c.sp()?;
            SearchKey::Unkeyword(c.atom_str()?)
        }
        b"BEFORE" => SearchKey::Before(arg_date(c)?),
        b"ON" => SearchKey::On(arg_date(c)?),
        b"SINCE" => SearchKey::Since(arg_date(c)?),
        b"SENTBEFORE" => SearchKey::SentBefore(arg_date(c)?),
        b"SENTON" => SearchKey::SentOn(arg_date(c)?),
        b"SENTSINCE" => SearchKey::SentSince(arg_date(c)?),
        b"SAVEDBEFORE" => SearchKey::SavedBefore(arg_date(c)?),
        b"SAVEDON" => SearchKey::SavedOn(arg_date(c)?),
        b"SAVEDSINCE" => SearchKey::SavedSince(arg_date(c)?),
        b"LARGER" => SearchKey::Larger(arg_number(c)?),
        b"SMALLER" => SearchKey::Smaller(arg_number(c)?),
        b"OLDER" => SearchKey::Older(arg_interval(c)?),
        b"YOUNGER" => SearchKey::Younger(arg_interval(c)?),
        b"UID" => {
            c.sp()?;
            SearchKey::Uid(c.sequence_set()?)
        }
        b"EMAILID" => {
            c.sp()?;
            SearchKey::EmailId(objectid(c)?)
        }
        b"THREADID" => {
            c.sp()?;
            SearchKey::ThreadId(objectid(c)?)
        }
        b"NOT" => {
            c.sp()?;
            c.nest()?;
            let inner = search_key(c)?;
            c.unnest();
            SearchKey::Not(Box::new(inner))
        }
        b"OR" => {
            c.sp()?;
            c.nest()?;
            let a = search_key(c)?;
            c.sp()?;
            let b = search_key(c)?;
            c.unnest();
            SearchKey::Or(Box::new(a), Box::new(b))
        }
        b"MODSEQ" => {
            c.sp()?;
            let entry = if c.peek() == Some(b'"') {
                let name = c.quoted()?;
                c.sp()?;
                let kw = c.keyword()?;
                let ty = match kw.as_bytes() {
                    b"PRIV" => EntryType::Private,
                    b"SHARED" => EntryType::Shared,
                    b"ALL" => EntryType::All,
                    _ => return err("bad MODSEQ entry type"),
                };
                c.sp()?;
                Some((name, ty))
            } else {
                None
            };
            SearchKey::ModSeq {
                entry,
                modseq: c.number64()?,
            }
        }
        _ => return err("unknown search key"),
    };
    Ok(key)
}

/// `SP astring`
fn arg_astring<'a>(c: &mut Cursor<'a>) -> PResult<AString<'a>> {
    c.sp()?;
    c.astring()
}

/// `SP date`
fn arg_date(c: &mut Cursor<'_>) -> PResult<super::ast::Date> {
    c.sp()?;
    c.date()
}

/// `SP number64`
fn arg_number(c: &mut Cursor<'_>) -> PResult<u64> {
    c.sp()?;
    c.number64()
}

/// `SP nz-number` (WITHIN intervals are at least one second).
fn arg_interval(c: &mut Cursor<'_>) -> PResult<u64> {
    c.sp()?;
    match c.number64()? {
        0 => err("interval must not be zero"),
        n => Ok(n),
    }
}

/// objectid: 1*255(ALPHA / DIGIT / "_" / "-") (RFC 8474).
fn objectid<'a>(c: &mut Cursor<'a>) -> PResult<&'a str> {
    let id = c.take_while(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if id.is_empty() || id.len() > 255 {
        return err("bad object id");
    }
    std::str::from_utf8(id).or_else(|_| err("bad object id"))
}

/// `(sort-criterion *(SP sort-criterion))`.
pub(crate) fn sort_criteria(c: &mut Cursor<'_>) -> PResult<Vec<SortCriterion>> {
    c.paren_list(|c| {
        let mut kw = c.keyword()?;
        let reverse = kw.as_bytes() == b"REVERSE";
        if reverse {
            c.sp()?;
            kw = c.keyword()?;
        }
        let key = match kw.as_bytes() {
            b"ARRIVAL" => SortKey::Arrival,
            b"CC" => SortKey::Cc,
            b"DATE" => SortKey::Date,
            b"FROM" => SortKey::From,
            b"SIZE" => SortKey::Size,
            b"SUBJECT" => SortKey::Subject,
            b"TO" => SortKey::To,
            b"DISPLAYFROM" => SortKey::DisplayFrom,
            b"DISPLAYTO" => SortKey::DisplayTo,
            _ => return err("unknown sort key"),
        };
        Ok(SortCriterion { reverse, key })
    })
}

/// A THREAD algorithm name.
pub(crate) fn thread_algorithm(c: &mut Cursor<'_>) -> PResult<ThreadAlgorithm> {
    let kw = c.keyword()?;
    match kw.as_bytes() {
        b"ORDEREDSUBJECT" => Ok(ThreadAlgorithm::OrderedSubject),
        b"REFERENCES" => Ok(ThreadAlgorithm::References),
        b"REFS" => Ok(ThreadAlgorithm::Refs),
        _ => err("unknown THREAD algorithm"),
    }
}
