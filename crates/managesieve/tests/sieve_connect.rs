//! A real client: Debian's sieve-connect uploads, activates, lists, downloads and deletes
//! scripts against sessions served on a loopback TCP port, over STARTTLS and, from a
//! secure network, in the clear.
//!
//! Without sieve-connect the test is skipped with a message, except under CI (CI set),
//! where it fails: CI installs it (.ci/run).

mod common;
// The one sieve-connect runner, shared with the server's tests.
#[path = "../../../tests/common/sieve_connect.rs"]
mod sieve_connect;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use common::{serve, Tls};
use ringmail_managesieve::{MemoryScripts, Options, ScriptStore, Security};
use sieve_connect::installed;

/// A server on a loopback port: each connection gets a session, one after the other.
struct Server {
    port: u16,
    scripts: Arc<MemoryScripts>,
}

impl Server {
    fn start(starttls: bool, security: Security) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let scripts = Arc::new(MemoryScripts::new());
        let options = Arc::new(Options {
            starttls,
            ..Options::default()
        });
        let tls = starttls.then(|| Tls::new().server);
        let store = scripts.clone();
        // Ends with the test process; each session is bounded by the socket timeout.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                stream
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                let handle = serve(
                    Box::new(stream),
                    options.clone(),
                    security,
                    store.clone(),
                    tls.clone(),
                );
                let _ = handle.join();
            }
        });
        Server { port, scripts }
    }

    /// Runs sieve-connect as alice with `extra` and `args`; its exit status and output.
    fn client(&self, extra: &[&str], args: &[&str]) -> (bool, String) {
        let all: Vec<&str> = extra.iter().chain(args).copied().collect();
        sieve_connect::run("127.0.0.1", self.port, "alice", "secret", &all)
    }
}

const SCRIPT: &str = "require [\"fileinto\", \"imap4flags\"];\nif header :contains \"subject\" \"[ringmail]\" {\n  addflag \"\\\\Flagged\";\n  fileinto \"Projects\";\n}\n";

fn upload_activate_list_download_delete(server: &Server, extra: &[&str]) {
    let dir = std::env::temp_dir().join(format!(
        "ringmail-sieve-connect-{}-{}",
        std::process::id(),
        server.port
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let local = dir.join("rules.sieve");
    std::fs::write(&local, SCRIPT).unwrap();
    let local = local.to_str().unwrap();

    let (ok, out) = server.client(
        extra,
        &["--upload", "--localsieve", local, "--remotesieve", "rules"],
    );
    assert!(ok, "upload: {out}");
    let (ok, out) = server.client(extra, &["--activate", "--remotesieve", "rules"]);
    assert!(ok, "activate: {out}");
    let (ok, out) = server.client(extra, &["--list"]);
    assert!(ok, "list: {out}");
    assert!(out.contains("rules"), "list: {out}");

    let fetched = dir.join("fetched.sieve");
    let fetched_path = fetched.to_str().unwrap();
    let (ok, out) = server.client(
        extra,
        &[
            "--download",
            "--remotesieve",
            "rules",
            "--localsieve",
            fetched_path,
        ],
    );
    assert!(ok, "download: {out}");
    assert_eq!(std::fs::read_to_string(&fetched).unwrap(), SCRIPT);

    // An invalid script is refused with the line and the reason, which the user sees.
    let bad = dir.join("bad.sieve");
    std::fs::write(&bad, "keep;\nfileinto \"x\";\n").unwrap();
    let (ok, out) = server.client(
        extra,
        &[
            "--upload",
            "--localsieve",
            bad.to_str().unwrap(),
            "--remotesieve",
            "bad",
        ],
    );
    assert!(!ok, "an invalid script was accepted: {out}");
    assert!(out.contains("line 2, column 1"), "{out}");

    let store = &*server.scripts;
    futures_lite::future::block_on(async {
        assert_eq!(store.get_active("alice").await, Ok(Some("rules".into())));
        assert_eq!(store.get("alice", "rules").await, Ok(SCRIPT.into()));
        assert_eq!(store.get("alice", "bad").await.ok(), None);
    });

    let (ok, out) = server.client(extra, &["--deactivate"]);
    assert!(ok, "deactivate: {out}");
    let (ok, out) = server.client(extra, &["--delete", "--remotesieve", "rules"]);
    assert!(ok, "delete: {out}");
    futures_lite::future::block_on(async {
        assert_eq!(store.list("alice").await, Ok(vec![]));
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sieve_connect_over_starttls() {
    if !installed() {
        return;
    }
    let server = Server::start(
        true,
        Security {
            tls: false,
            secure_network: false,
        },
    );
    upload_activate_list_download_delete(&server, &["--notlsverify"]);
}

#[test]
fn sieve_connect_in_the_clear_from_a_secure_network() {
    if !installed() {
        return;
    }
    let server = Server::start(
        false,
        Security {
            tls: false,
            secure_network: true,
        },
    );
    upload_activate_list_download_delete(&server, &["--notlsverify", "--clearchan"]);
}
