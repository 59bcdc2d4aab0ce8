//! What a ringmail process serves, wired from the config: the protocols' listeners and tasks
//! handed to the runtime, which itself knows no protocol.

use std::path::Path;

use crate::config::Config;
use crate::metrics::Listener;
use crate::server::runtime::{Services, TcpService};

/// The listeners and tasks `config` asks for.
pub fn from_config(config: &Config, data_dir: &Path) -> Services {
    Services {
        tcp: vec![
            TcpService {
                addrs: config.imap.listen.clone(),
                config_key: "[imap] listen",
                kind: Listener::Imap,
                start: |exec, conn| crate::imap::session::accept(exec, conn, false),
            },
            TcpService {
                addrs: config.imap.listen_tls.clone(),
                config_key: "[imap] listen_tls",
                kind: Listener::Imaps,
                start: |exec, conn| crate::imap::session::accept(exec, conn, true),
            },
            TcpService {
                addrs: config.lmtp.listen.clone(),
                config_key: "[lmtp] listen",
                kind: Listener::Lmtp,
                start: crate::lmtp::start,
            },
            TcpService {
                addrs: config.managesieve.listen.clone(),
                config_key: "[managesieve] listen",
                kind: Listener::ManageSieve,
                start: crate::managesieve::server::start,
            },
        ],
        tasks: vec![crate::admin::server::task],
        cleanup: config.admin_socket(data_dir).into_iter().collect(),
        // A cluster node's map, link and handlers are added by `serve` once the node has
        // joined (src/cluster.rs).
        peer: None,
        open_hooks: None,
    }
}
