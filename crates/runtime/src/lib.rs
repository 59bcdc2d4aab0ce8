//! Executors, listeners, PROXY protocol, TLS and the hand-over between cores.

pub mod admission;
pub mod conn;
pub mod conn_io;
pub mod cpus;
pub mod datadir;
pub mod limits;
pub mod lock;
pub mod login;
pub mod nodes;
pub mod partition;
pub mod partitions;
pub mod proxy;
pub mod route;
pub mod runtime;
pub mod sockets;
pub mod tls;
