//! ringmail: a thread-per-core IMAP server. See ../shared/DESIGN.md for the architecture.

pub mod admin;
pub mod auth;
pub mod config;
pub mod doctor;
pub mod imap;
pub mod lmtp;
pub mod metrics;
pub mod mime;
pub mod server;
pub mod services;
pub mod store;
pub mod tools;
