//! Real components the integration tests start: slapd, and a loopback HTTP server standing in
//! for an OAuth issuer's JWKS and introspection endpoints.

pub mod http;
pub mod keys;
pub mod slapd;
