//! Header fields of a raw message, as the header search keys read them. The walker lives in
//! `ringmail_mime::search_header`, where the store also uses it to fill the header-search
//! arenas at APPEND, so both paths read fields the same way.

pub use ringmail_mime::search_header::{fields, header_block, is_plain, Field};
