//! Whole conversations with a session over a socket pair, as a client sees them.

mod common;

use std::sync::Arc;

use common::{b64, lit, serve, socket_pair, Client, Tls};
use ringmail_managesieve::{Exit, MemoryScripts, Options, ScriptStore, Security};

const PLAIN: Security = Security {
    tls: false,
    secure_network: false,
};

fn options() -> Options {
    Options {
        starttls: true,
        max_scripts: 3,
        ..Options::default()
    }
}

fn connect(
    options: Options,
    security: Security,
) -> (
    Client,
    std::thread::JoinHandle<Vec<Exit>>,
    Arc<MemoryScripts>,
    Tls,
) {
    let tls = Tls::new();
    let scripts = Arc::new(MemoryScripts::new());
    let (server, client) = socket_pair();
    let handle = serve(
        server,
        Arc::new(options),
        security,
        scripts.clone(),
        Some(tls.server.clone()),
    );
    (Client::new(client), handle, scripts, tls)
}

const RULES: &str = "require \"fileinto\";\r\nif header :contains \"list-id\" \"rust\" {\r\n  fileinto \"Lists\";\r\n}\r\n";

#[test]
fn full_conversation() {
    let (mut c, server, scripts, tls) = connect(options(), PLAIN);

    // The greeting is the capabilities: no password mechanism in the clear, STARTTLS.
    let greeting = c.response();
    assert!(
        greeting.starts_with("\"IMPLEMENTATION\" \"ringmail\"\r\n"),
        "{greeting}"
    );
    assert!(
        greeting.contains("\"SASL\" \"\"\r\n\"STARTTLS\"\r\n"),
        "{greeting}"
    );
    assert!(greeting.contains("\"VERSION\" \"1.0\"\r\n"), "{greeting}");
    assert!(
        greeting.ends_with("OK \"ringmail ready.\"\r\n"),
        "{greeting}"
    );

    let r = c.command(&format!(
        "AUTHENTICATE \"PLAIN\" \"{}\"\r\n",
        b64(b"\0alice\0secret")
    ));
    assert_eq!(
        r,
        "NO (ENCRYPT-NEEDED) \"Passwords are only accepted over TLS: use STARTTLS first.\"\r\n"
    );
    assert!(c
        .command("LISTSCRIPTS\r\n")
        .starts_with("NO \"LISTSCRIPTS: authenticate first\""));

    // STARTTLS with a command pipelined after it: that command is dropped, and the
    // capabilities come again over TLS.
    c.send(b"STARTTLS\r\nLOGOUT\r\n");
    assert_eq!(c.response(), "OK \"Begin TLS negotiation now.\"\r\n");
    c.start_tls(tls.client.clone());
    let caps = c.response();
    assert!(caps.contains("\"SASL\" \"PLAIN LOGIN\"\r\n"), "{caps}");
    assert!(!caps.contains("STARTTLS"), "{caps}");
    assert!(caps.ends_with("OK \"ringmail ready.\"\r\n"), "{caps}");
    assert_eq!(
        c.command("STARTTLS\r\n"),
        "NO \"TLS is already active.\"\r\n"
    );

    // A wrong password, then LOGIN's two challenges.
    let r = c.command(&format!(
        "AUTHENTICATE \"PLAIN\" \"{}\"\r\n",
        b64(b"\0alice\0wrong")
    ));
    assert_eq!(r, "NO \"Authentication failed.\"\r\n");
    c.send(b"AUTHENTICATE \"LOGIN\"\r\n");
    assert_eq!(c.line().unwrap(), "\"VXNlcm5hbWU6\"\r\n");
    c.send(format!("\"{}\"\r\n", b64(b"alice")).as_bytes());
    assert_eq!(c.line().unwrap(), "\"UGFzc3dvcmQ6\"\r\n");
    c.send(format!("{}\r\n", lit(&b64(b"secret"))).as_bytes());
    assert_eq!(c.response(), "OK \"Logged in.\"\r\n");

    let caps = c.command("CAPABILITY\r\n");
    assert!(caps.contains("\"OWNER\" \"alice\"\r\n"), "{caps}");
    assert!(!caps.contains("SASL"), "{caps}");
    assert!(caps.ends_with("OK \"Capability completed.\"\r\n"));

    // PUTSCRIPT: valid, invalid (the line and the reason), {n} literal, and a script that
    // would send mail on a server without a relay.
    assert_eq!(
        c.command(&format!("PUTSCRIPT \"rules\" {}\r\n", lit(RULES))),
        "OK \"Script stored.\"\r\n"
    );
    let r = c.command(&format!(
        "PUTSCRIPT \"bad\" {}\r\n",
        lit("keep;\r\nfileinto \"x\";\r\n")
    ));
    assert!(r.starts_with("NO \"line 2, column 1: "), "{r}");
    assert!(r.contains("fileinto"), "{r}");
    assert_eq!(
        c.command("PUTSCRIPT \"other\" {8}\r\ndiscard;\r\n"),
        "OK \"Script stored.\"\r\n"
    );
    let r = c.command(&format!(
        "PUTSCRIPT \"away\" {}\r\n",
        lit("require \"vacation\";\r\nvacation \"Back soon.\";\r\n")
    ));
    assert!(
        r.starts_with("NO \"line 2: vacation would send mail"),
        "{r}"
    );
    assert_eq!(
        c.command("LISTSCRIPTS\r\n"),
        "\"other\"\r\n\"rules\"\r\nOK \"Listscripts completed.\"\r\n"
    );

    // SETACTIVE, GETSCRIPT.
    assert_eq!(
        c.command("SETACTIVE \"rules\"\r\n"),
        "OK \"Script activated.\"\r\n"
    );
    assert_eq!(
        c.command("SETACTIVE \"nope\"\r\n"),
        "NO (NONEXISTENT) \"There is no script named \\\"nope\\\".\"\r\n"
    );
    assert_eq!(
        c.command("LISTSCRIPTS\r\n"),
        "\"other\"\r\n\"rules\" ACTIVE\r\nOK \"Listscripts completed.\"\r\n"
    );
    assert_eq!(
        c.command("GETSCRIPT \"rules\"\r\n"),
        format!(
            "{{{}}}\r\n{RULES}\r\nOK \"Getscript completed.\"\r\n",
            RULES.len()
        )
    );
    assert!(c
        .command("GETSCRIPT \"nope\"\r\n")
        .starts_with("NO (NONEXISTENT)"));

    // RENAMESCRIPT keeps the active mark; DELETESCRIPT refuses the active script.
    assert_eq!(
        c.command("RENAMESCRIPT \"rules\" \"main\"\r\n"),
        "OK \"Script renamed.\"\r\n"
    );
    assert_eq!(
        c.command("RENAMESCRIPT \"main\" \"other\"\r\n"),
        "NO (ALREADYEXISTS) \"A script named \\\"other\\\" exists already.\"\r\n"
    );
    assert!(c
        .command("RENAMESCRIPT \"nope\" \"x\"\r\n")
        .starts_with("NO (NONEXISTENT)"));
    let r = c.command("DELETESCRIPT \"main\"\r\n");
    assert!(
        r.starts_with("NO (ACTIVE) \"\\\"main\\\" is the active script"),
        "{r}"
    );
    assert_eq!(
        c.command("DELETESCRIPT \"other\"\r\n"),
        "OK \"Script deleted.\"\r\n"
    );
    assert!(c
        .command("DELETESCRIPT \"other\"\r\n")
        .starts_with("NO (NONEXISTENT)"));

    // HAVESPACE: size and number of scripts (3 allowed).
    assert_eq!(
        c.command("HAVESPACE \"new\" 100\r\n"),
        "OK \"Putscript would succeed.\"\r\n"
    );
    assert_eq!(
        c.command("HAVESPACE \"new\" 2000000\r\n"),
        "NO (QUOTA/MAXSIZE) \"the script has 2000000 bytes, more than the limit of 1048576 bytes\"\r\n"
    );
    for name in ["two", "three"] {
        let r = c.command(&format!("PUTSCRIPT \"{name}\" \"keep;\"\r\n"));
        assert_eq!(r, "OK \"Script stored.\"\r\n");
    }
    let full =
        "NO (QUOTA/MAXSCRIPTS) \"You have as many scripts as allowed (3): delete one first.\"\r\n";
    assert_eq!(c.command("HAVESPACE \"new\" 10\r\n"), full);
    assert_eq!(c.command("PUTSCRIPT \"new\" \"keep;\"\r\n"), full);
    assert_eq!(
        c.command("PUTSCRIPT \"two\" \"discard;\"\r\n"),
        "OK \"Script stored.\"\r\n",
        "replacing a script needs no room"
    );

    // A script over the size limit: refused, and its bytes not taken for commands.
    let big = format!("# {}\r\nLOGOUT\r\n", "x".repeat(1 << 20));
    assert_eq!(
        c.command(&format!("PUTSCRIPT \"big\" {}\r\n", lit(&big))),
        format!(
            "NO (QUOTA/MAXSIZE) \"the script has {} bytes, more than the limit of 1048576 bytes\"\r\n",
            big.len()
        )
    );

    // CHECKSCRIPT stores nothing.
    assert_eq!(
        c.command("CHECKSCRIPT \"keep;\"\r\n"),
        "OK \"Script is valid.\"\r\n"
    );
    let r = c.command(&format!(
        "CHECKSCRIPT {}\r\n",
        lit("if true {\r\n  keep;\r\n")
    ));
    assert!(r.starts_with("NO \"line "), "{r}");
    assert_eq!(c.command("NOOP \"t1\"\r\n"), "OK (TAG \"t1\") \"Done\"\r\n");
    assert_eq!(c.command("NOOP\r\n"), "OK \"NOOP completed.\"\r\n");

    // UNAUTHENTICATE, then PLAIN with the initial response.
    assert_eq!(
        c.command("UNAUTHENTICATE\r\n"),
        "OK \"Logged out; authenticate again.\"\r\n"
    );
    assert!(c.command("LISTSCRIPTS\r\n").starts_with("NO"));
    let r = c.command(&format!(
        "AUTHENTICATE \"PLAIN\" \"{}\"\r\n",
        b64(b"\0alice\0secret")
    ));
    assert_eq!(r, "OK \"Logged in.\"\r\n");
    assert_eq!(c.command("LOGOUT\r\n"), "OK \"Logout completed.\"\r\n");
    assert!(c.closed());

    assert_eq!(server.join().unwrap(), vec![Exit::StartTls, Exit::Logout]);
    let store = &*scripts;
    futures_lite::future::block_on(async {
        assert_eq!(store.get_active("alice").await, Ok(Some("main".into())));
        assert_eq!(store.get("alice", "main").await, Ok(RULES.into()));
        assert_eq!(store.get("alice", "two").await, Ok("discard;".into()));
        assert_eq!(store.list("alice").await.unwrap().len(), 3);
    });
}

#[test]
fn secure_network_sasl_exchanges() {
    let secure = Security {
        tls: false,
        secure_network: true,
    };
    let (mut c, server, _, _) = connect(options(), secure);
    assert!(c.response().contains("\"SASL\" \"PLAIN LOGIN\"\r\n"));
    // PLAIN without an initial response gets an empty challenge; "*" cancels.
    c.send(b"AUTHENTICATE \"PLAIN\"\r\n");
    assert_eq!(c.line().unwrap(), "\"\"\r\n");
    assert_eq!(
        c.command("\"*\"\r\n"),
        "NO \"Authentication cancelled.\"\r\n"
    );
    // Another identity than one's own is refused; so is nonsense.
    let r = c.command(&format!(
        "AUTHENTICATE \"PLAIN\" \"{}\"\r\n",
        b64(b"bob\0alice\0secret")
    ));
    assert_eq!(r, "NO \"Authentication failed.\"\r\n");
    let r = c.command("AUTHENTICATE \"PLAIN\" \"%%%\"\r\n");
    assert_eq!(r, "NO \"AUTHENTICATE: invalid base64\"\r\n");
    assert_eq!(
        c.command("AUTHENTICATE \"CRAM-MD5\"\r\n"),
        "NO \"Unsupported SASL mechanism: use PLAIN or LOGIN.\"\r\n"
    );
    let r = c.command(&format!(
        "AUTHENTICATE \"PLAIN\" \"{}\"\r\n",
        b64(b"\0down\0x")
    ));
    assert_eq!(
        r,
        "NO (TRYLATER) \"Authentication is temporarily unavailable; try again later.\"\r\n"
    );
    // LOGIN answered with something else than one string, then cancelled.
    c.send(b"AUTHENTICATE \"LOGIN\"\r\n");
    assert_eq!(c.line().unwrap(), "\"VXNlcm5hbWU6\"\r\n");
    assert_eq!(
        c.command("alice\r\n"),
        "NO \"AUTHENTICATE: expected one string as the response\"\r\n"
    );
    c.send(format!("AUTHENTICATE \"LOGIN\" \"{}\"\r\n", b64(b"alice")).as_bytes());
    assert_eq!(c.line().unwrap(), "\"UGFzc3dvcmQ6\"\r\n");
    assert_eq!(
        c.command("\"*\"\r\n"),
        "NO \"Authentication cancelled.\"\r\n"
    );
    c.send(b"AUTHENTICATE \"PLAIN\"\r\n");
    assert_eq!(c.line().unwrap(), "\"\"\r\n");
    assert_eq!(
        c.command(&format!("\"{}\"\r\n", b64(b"\0alice\0secret"))),
        "OK \"Logged in.\"\r\n"
    );
    assert_eq!(
        c.command(&format!(
            "AUTHENTICATE \"PLAIN\" \"{}\"\r\n",
            b64(b"\0alice\0secret")
        )),
        "NO \"Already authenticated.\"\r\n"
    );
    // The client goes away in the middle of a literal.
    c.send(b"PUTSCRIPT \"x\" {100+}\r\nkeep;");
    drop(c);
    assert_eq!(server.join().unwrap(), vec![Exit::Closed]);
}

#[test]
fn failed_logins_end_the_connection() {
    let secure = Security {
        tls: true,
        secure_network: false,
    };
    let (mut c, server, _, _) = connect(options(), secure);
    c.response();
    let wrong = format!("AUTHENTICATE \"PLAIN\" \"{}\"\r\n", b64(b"\0alice\0guess"));
    assert_eq!(c.command(&wrong), "NO \"Authentication failed.\"\r\n");
    assert_eq!(c.command(&wrong), "NO \"Authentication failed.\"\r\n");
    c.send(wrong.as_bytes());
    assert_eq!(c.line().unwrap(), "NO \"Authentication failed.\"\r\n");
    assert_eq!(c.line().unwrap(), "BYE \"Too many failed logins.\"\r\n");
    assert!(c.closed());
    assert_eq!(server.join().unwrap(), vec![Exit::Bye]);
}

#[test]
fn invalid_commands_end_the_connection() {
    let o = Options {
        max_bad_commands: 3,
        ..options()
    };
    let (mut c, server, _, _) = connect(o, PLAIN);
    c.response();
    assert_eq!(c.command("FOO\r\n"), "NO \"unknown command FOO\"\r\n");
    assert_eq!(
        c.command("NOOP \"a\\nb\"\r\n"),
        "NO \"only \\\\\\\" and \\\\\\\\ may be escaped in a quoted string\"\r\n"
    );
    // The third: a literal on a refused line is skipped, not run.
    c.send(b"NOOP x y z w v u t {8+}\r\nLOGOUT\r\n\r\n");
    assert_eq!(c.line().unwrap(), "NO \"too many arguments\"\r\n");
    assert_eq!(c.line().unwrap(), "BYE \"Too many invalid commands.\"\r\n");
    assert!(c.closed());
    assert_eq!(server.join().unwrap(), vec![Exit::Bye]);
}

#[test]
fn starttls_not_offered_without_a_certificate() {
    let o = Options {
        starttls: false,
        ..options()
    };
    let (mut c, server, _, _) = connect(o, PLAIN);
    let greeting = c.response();
    assert!(!greeting.contains("STARTTLS"), "{greeting}");
    assert_eq!(
        c.command("STARTTLS\r\n"),
        "NO \"TLS is not available.\"\r\n"
    );
    assert_eq!(c.command("LOGOUT\r\n"), "OK \"Logout completed.\"\r\n");
    assert_eq!(server.join().unwrap(), vec![Exit::Logout]);
}
