//! The LDAP backend against a real slapd (started by tests/support/slapd.rs).

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringmail_auth::config::{AuthConfig, BackendKind, LdapAttributes, LdapConfig, LdapVerify};
use ringmail_auth::{
    Argon2Cost, AuthOptions, AuthResult, Authenticator, Credential, Login, LoginError, UsersFile,
};
use support::slapd::{self, Slapd, BASE, SEARCH_DN, SEARCH_PASSWORD};

fn options() -> AuthOptions {
    AuthOptions {
        cache_ttl: Duration::from_secs(60),
        cache_max_entries: 100,
        hash_cost: Argon2Cost::MINIMAL,
    }
}

/// A users file with passwd-file users, and the search account's password file.
fn files(dir: &Path) -> PathBuf {
    let users = dir.join("users");
    let mut f = UsersFile::load_or_empty(&users).unwrap();
    f.set_hash_cost(Argon2Cost::MINIMAL);
    for (name, pw) in [("paula", "paula-pw"), ("support", "support-pw")] {
        if f.lookup(name).is_none() {
            f.add(name, pw.as_bytes()).unwrap();
        }
    }
    f.save().unwrap();
    std::fs::write(dir.join("ldap.secret"), format!("{SEARCH_PASSWORD}\n")).unwrap();
    users
}

fn ldap_config(uri: String, verify: LdapVerify) -> LdapConfig {
    LdapConfig {
        uri,
        base: BASE.into(),
        bind_dn: Some(SEARCH_DN.into()),
        bind_password_file: Some("ldap.secret".into()),
        verify,
        timeout_ms: 2_000,
        pool_size: 2,
        attributes: LdapAttributes {
            name: Some("mail".into()),
            quota: Some("mailQuota".into()),
            enabled: Some("mailEnabled".into()),
        },
        ..LdapConfig::default()
    }
}

fn authenticator(
    dir: &Path,
    backends: &[BackendKind],
    ldap: &LdapConfig,
    masters: &[&str],
) -> Authenticator {
    let auth = AuthConfig {
        users_file: files(dir),
        backends: backends.to_vec(),
        masters: masters.iter().map(|m| m.to_string()).collect(),
        ..AuthConfig::default()
    };
    let root = dir.to_owned();
    Authenticator::from_config_with(&auth, Some(ldap), None, |p| root.join(p), options()).unwrap()
}

fn login(auth: &Authenticator, user: &str, pw: &str) -> Result<Login, LoginError> {
    auth.login(&Credential::Password {
        user,
        authzid: None,
        password: pw.as_bytes(),
    })
}

fn user_of(result: Result<Login, LoginError>) -> String {
    match result {
        Ok(l) => l.user,
        Err(e) => panic!("expected a login, got {e:?}"),
    }
}

fn is_unavailable(result: &Result<Login, LoginError>) -> bool {
    matches!(result, Err(LoginError::Unavailable(_)))
}

const BOTH: [BackendKind; 2] = [BackendKind::PasswdFile, BackendKind::Ldap];

#[test]
fn bind_verifies_and_maps_attributes() {
    let Some(slapd) = Slapd::start() else { return };
    let ldap = ldap_config(slapd.uri(), LdapVerify::Bind);
    let auth = authenticator(slapd.dir(), &BOTH, &ldap, &[]);

    let first = login(&auth, "Alice", "alice-pw").unwrap();
    // The canonical name comes from the mail attribute, the quota from mailQuota.
    assert_eq!(first.user, "alice@example.org");
    assert_eq!(first.backend, "ldap");
    assert_eq!(first.quota_bytes, Some(1 << 30));
    assert!(!first.cache_hit);
    let again = login(&auth, "alice", "alice-pw").unwrap();
    assert!(again.cache_hit);
    assert_eq!(again.quota_bytes, Some(1 << 30));

    // {CRYPT} and {ARGON2} userPasswords, checked by slapd itself on bind.
    assert_eq!(user_of(login(&auth, "bob", "bob-pw")), "bob@example.org");
    assert_eq!(
        user_of(login(&auth, "carol", "carol-pw")),
        "carol@example.org"
    );

    assert_eq!(
        login(&auth, "alice", "wrong"),
        Err(LoginError::BadCredentials)
    );
    assert_eq!(login(&auth, "nobody", "x"), Err(LoginError::UnknownUser));
    // An empty password would be an unauthenticated bind (RFC 4513 section 5.1.2), which
    // slapd may take as anonymous: it must never log anyone in.
    assert_eq!(login(&auth, "bob", ""), Err(LoginError::BadCredentials));
    // Filter metacharacters are escaped, not wildcards.
    assert_eq!(login(&auth, "*", "alice-pw"), Err(LoginError::UnknownUser));
    assert_eq!(
        login(&auth, "al*", "alice-pw"),
        Err(LoginError::UnknownUser)
    );

    // The disabled user: right password, mailEnabled FALSE.
    assert_eq!(login(&auth, "dave", "dave-pw"), Err(LoginError::Disabled));
    assert_eq!(
        login(&auth, "dave", "nope"),
        Err(LoginError::BadCredentials)
    );
    assert_eq!(auth.verify("dave", b"dave-pw"), AuthResult::Disabled);

    // A filter that matches two entries is the directory's problem, not a login.
    let ambiguous = LdapConfig {
        base: "dc=example,dc=org".into(),
        ..ldap.clone()
    };
    let auth2 = authenticator(slapd.dir(), &[BackendKind::Ldap], &ambiguous, &[]);
    match login(&auth2, "twin", "twin-pw") {
        Err(LoginError::Unavailable(why)) => assert!(why.contains("more than one"), "{why}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }

    // passwd-file users go on working beside the directory.
    let paula = login(&auth, "paula", "paula-pw").unwrap();
    assert_eq!(
        (paula.user.as_str(), paula.backend),
        ("paula", "passwd-file")
    );
}

#[test]
fn compare_checks_ssha_crypt_and_argon2_here() {
    let Some(slapd) = Slapd::start() else { return };
    let ldap = ldap_config(slapd.uri(), LdapVerify::Compare);
    let auth = authenticator(slapd.dir(), &[BackendKind::Ldap], &ldap, &[]);
    // alice {SSHA}, bob {CRYPT} ($6$), carol {ARGON2}: all made by slappasswd.
    for (uid, pw, _, _) in &slapd::USERS[..3] {
        assert_eq!(user_of(login(&auth, uid, pw)), format!("{uid}@example.org"));
        assert_eq!(
            login(&auth, uid, "not-it"),
            Err(LoginError::BadCredentials),
            "{uid}"
        );
        assert_eq!(
            login(&auth, uid, ""),
            Err(LoginError::BadCredentials),
            "{uid}"
        );
    }
    assert_eq!(login(&auth, "nobody", "x"), Err(LoginError::UnknownUser));
    assert_eq!(login(&auth, "dave", "dave-pw"), Err(LoginError::Disabled));

    // Without read access to userPassword (anonymous search), compare cannot work: the
    // login is Unavailable (a configuration problem), never a wrong password.
    let dir = slapd.dir().join("anon");
    std::fs::create_dir_all(&dir).unwrap();
    let anonymous = LdapConfig {
        bind_dn: None,
        bind_password_file: None,
        ..ldap.clone()
    };
    let backend = ringmail_auth::LdapBackend::new(&anonymous, Path::to_path_buf).unwrap();
    let auth = Authenticator::builder(options())
        .backend(Arc::new(backend))
        .build()
        .unwrap();
    match login(&auth, "alice", "alice-pw") {
        Err(LoginError::Unavailable(why)) => assert!(why.contains("userPassword"), "{why}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[test]
fn unreachable_directory_is_unavailable_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens: refused at once.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // Listens but never answers (accepted by the kernel, never read): only the timeout ends it.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    for (addr, timeout_ms) in [(closed, 1_500u64), (silent_addr, 700)] {
        let mut ldap = ldap_config(format!("ldap://{addr}"), LdapVerify::Bind);
        ldap.timeout_ms = timeout_ms;
        // passwd-file after the directory: its users still log in while it is down.
        let auth = authenticator(
            dir.path(),
            &[BackendKind::Ldap, BackendKind::PasswdFile],
            &ldap,
            &[],
        );
        let t0 = Instant::now();
        let result = login(&auth, "alice", "alice-pw");
        let took = t0.elapsed();
        assert!(is_unavailable(&result), "{addr}: {result:?}");
        assert!(
            took < Duration::from_millis(timeout_ms + 700),
            "{addr}: took {took:?}"
        );
        assert!(matches!(
            auth.verify("alice", b"alice-pw"),
            AuthResult::Unavailable(_)
        ));
        assert_eq!(
            login(&auth, "paula", "paula-pw").unwrap().backend,
            "passwd-file"
        );
        assert_eq!(
            login(&auth, "paula", "wrong"),
            Err(LoginError::BadCredentials)
        );
    }
    drop(silent);
}

#[test]
fn slow_directory_does_not_hold_up_passwd_file_logins() {
    let Some(slapd) = Slapd::start() else { return };
    let mut ldap = ldap_config(slapd.uri(), LdapVerify::Bind);
    ldap.timeout_ms = 1_500;
    ldap.pool_size = 2;
    let auth = Arc::new(authenticator(slapd.dir(), &BOTH, &ldap, &[]));
    // Open the pool's connections while the directory is well.
    assert_eq!(
        user_of(login(&auth, "alice", "alice-pw")),
        "alice@example.org"
    );

    slapd.pause();
    // Four LDAP logins at once (cache misses), twice the pool: two wait on the directory,
    // two on the pool; all four must end by the timeout.
    let t0 = Instant::now();
    let users = [
        ("bob", "bob-pw"),
        ("carol", "carol-pw"),
        ("alice", "x"),
        ("dave", "dave-pw"),
    ];
    let ldap_logins: Vec<_> = users
        .into_iter()
        .map(|(user, pw)| {
            let auth = Arc::clone(&auth);
            std::thread::spawn(move || {
                let result = login(&auth, user, pw);
                (result, t0.elapsed())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // Meanwhile passwd-file users log in at their usual pace.
    for _ in 0..10 {
        let t = Instant::now();
        let result = login(&auth, "paula", "paula-pw");
        assert_eq!(result.map(|l| l.user), Ok("paula".to_owned()));
        assert!(
            t.elapsed() < Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(
            login(&auth, "support", "bad"),
            Err(LoginError::BadCredentials)
        );
    }
    assert!(
        t0.elapsed() < Duration::from_millis(1_400),
        "the passwd-file logins were held up: {:?}",
        t0.elapsed()
    );
    for handle in ldap_logins {
        let (result, took) = handle.join().unwrap();
        assert!(is_unavailable(&result), "{result:?}");
        assert!(took >= Duration::from_millis(1_300), "{took:?}");
        assert!(took < Duration::from_millis(2_500), "{took:?}");
    }
    slapd.resume();
    // The directory answers again; the timed-out connections were closed, not reused.
    assert_eq!(user_of(login(&auth, "bob", "bob-pw")), "bob@example.org");
}

#[test]
fn pool_reconnects_after_slapd_restarts() {
    let Some(mut slapd) = Slapd::start() else {
        return;
    };
    let ldap = ldap_config(slapd.uri(), LdapVerify::Bind);
    // A zero-TTL cache, so that every login goes to the directory.
    let auth = {
        let config = AuthConfig {
            users_file: files(slapd.dir()),
            backends: vec![BackendKind::Ldap],
            ..AuthConfig::default()
        };
        let root = slapd.dir().to_owned();
        let options = AuthOptions {
            cache_ttl: Duration::ZERO,
            ..options()
        };
        Authenticator::from_config_with(&config, Some(&ldap), None, |p| root.join(p), options)
            .unwrap()
    };
    assert_eq!(user_of(login(&auth, "bob", "bob-pw")), "bob@example.org");
    slapd.restart();
    // The pooled connection died with the old process; the first login after the restart
    // must still succeed (a dead idle connection is replaced, once).
    let after = login(&auth, "bob", "bob-pw").unwrap();
    assert!(!after.cache_hit);
    assert_eq!(
        login(&auth, "bob", "wrong"),
        Err(LoginError::BadCredentials)
    );

    // Down: Unavailable; back up: logins again.
    slapd.stop();
    assert!(is_unavailable(&login(&auth, "bob", "bob-pw")));
    slapd.restart();
    assert_eq!(user_of(login(&auth, "bob", "bob-pw")), "bob@example.org");
}

#[test]
fn starttls_and_ldaps_verify_the_directory_certificate() {
    let Some(slapd) = Slapd::start() else { return };
    let ca: PathBuf = slapd.ca_file.clone();
    let starttls = LdapConfig {
        starttls: true,
        ca_file: Some(ca.clone()),
        ..ldap_config(slapd.uri(), LdapVerify::Bind)
    };
    let ldaps = LdapConfig {
        ca_file: Some(ca),
        ..ldap_config(slapd.ldaps_uri(), LdapVerify::Compare)
    };
    for config in [&starttls, &ldaps] {
        let auth = authenticator(slapd.dir(), &[BackendKind::Ldap], config, &[]);
        assert_eq!(
            user_of(login(&auth, "alice", "alice-pw")),
            "alice@example.org"
        );
        assert_eq!(
            login(&auth, "alice", "nope"),
            Err(LoginError::BadCredentials)
        );
    }
    // A CA that did not sign slapd's certificate: no connection, Unavailable.
    let other = slapd::other_ca(slapd.dir());
    for config in [&starttls, &ldaps] {
        let wrong = LdapConfig {
            ca_file: Some(other.clone()),
            ..config.clone()
        };
        let auth = authenticator(slapd.dir(), &[BackendKind::Ldap], &wrong, &[]);
        let result = login(&auth, "alice", "alice-pw");
        assert!(is_unavailable(&result), "{result:?}");
    }
}

#[test]
fn master_user_logs_in_as_a_directory_user() {
    let Some(slapd) = Slapd::start() else { return };
    let ldap = ldap_config(slapd.uri(), LdapVerify::Bind);
    let auth = authenticator(slapd.dir(), &BOTH, &ldap, &["support"]);
    // The master is in the passwd-file, the target in the directory.
    let l = login(&auth, "alice*support", "support-pw").unwrap();
    assert_eq!(l.user, "alice@example.org");
    assert_eq!(l.master.as_deref(), Some("support"));
    assert_eq!(l.backend, "ldap");
    assert_eq!(l.quota_bytes, Some(1 << 30));
    assert_eq!(
        login(&auth, "dave*support", "support-pw"),
        Err(LoginError::Disabled)
    );
    assert_eq!(
        login(&auth, "nobody*support", "support-pw"),
        Err(LoginError::UnknownUser)
    );
    // A directory user who is not a master may not.
    assert_eq!(
        login(&auth, "paula*bob", "bob-pw"),
        Err(LoginError::NotAuthorized)
    );
}
