//! ID (RFC 2971). The client's fields are logged (they name the client, which helps when one
//! misbehaves); the server answers with its name, version and the executor serving the
//! session, which tells an operator where a user's session lives.

use std::borrow::Cow;

use crate::session::Session;
use ringmail_proto::response::data::Id;
use ringmail_proto::response::Reply;

/// One `key value` pair of an ID command (the value may be NIL).
type IdField<'a> = (Cow<'a, [u8]>, Option<Cow<'a, [u8]>>);

/// Most client fields logged; RFC 2971 allows at most 30 pairs anyway.
const MAX_LOGGED_FIELDS: usize = 30;

/// `ID NIL` or `ID (key value ...)`
pub fn run(session: &mut Session, params: Option<&[IdField<'_>]>) -> Reply {
    if let Some(params) = params {
        let fields: Vec<String> = params
            .iter()
            .take(MAX_LOGGED_FIELDS)
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    String::from_utf8_lossy(k),
                    v.as_deref()
                        .map_or(Cow::Borrowed("NIL"), String::from_utf8_lossy)
                )
            })
            .collect();
        tracing::info!(client_id = %fields.join(" "), "client ID");
    }
    let executor = session.exec.id.to_string();
    let fields = [
        ("name", "ringmail"),
        ("version", env!("CARGO_PKG_VERSION")),
        ("x-executor", executor.as_str()),
    ];
    session.send(&Id(Some(&fields)));
    Reply::ok("ID completed")
}
