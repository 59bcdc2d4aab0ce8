//! TEMPORARY (replaced by the auth branch's proxy.rs at merge).
use std::net::SocketAddr;
pub struct ProxyHeader {
    pub source: Option<SocketAddr>,
    pub destination: Option<SocketAddr>,
}
pub enum ProxyParse {
    NotProxy,
    Incomplete,
    Done {
        header: ProxyHeader,
        consumed: usize,
    },
    Invalid(&'static str),
}
pub fn parse(_buf: &[u8]) -> ProxyParse {
    ProxyParse::NotProxy
}
pub fn is_proxy_signature(_buf: &[u8]) -> bool {
    false
}
