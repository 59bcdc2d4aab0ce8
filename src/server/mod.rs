//! Executors, listeners, PROXY protocol, TLS and the hand-over between cores.
pub mod proxy;
