//! Master users: `LOGIN target*master password` and SASL PLAIN with an authorization
//! identity, for the users `[auth] masters` names.

use std::path::Path;
use std::time::Duration;

use ringmail_auth::config::AuthConfig;
use ringmail_auth::{
    sasl, Argon2Cost, AuthOptions, AuthResult, Authenticator, Credential, Login, LoginError,
    UsersFile,
};

fn authenticator(dir: &Path, masters: &[&str], separator: &str) -> Authenticator {
    let users = dir.join("users");
    let mut f = UsersFile::load_or_empty(&users).unwrap();
    f.set_hash_cost(Argon2Cost::MINIMAL);
    for (name, pw) in [
        ("alice", "alice-pw"),
        ("bob", "bob-pw"),
        ("support", "support-pw"),
    ] {
        if f.lookup(name).is_none() {
            f.add(name, pw.as_bytes()).unwrap();
        }
    }
    f.save().unwrap();
    let config = AuthConfig {
        users_file: users,
        masters: masters.iter().map(|m| m.to_string()).collect(),
        master_separator: separator.into(),
        ..AuthConfig::default()
    };
    let options = AuthOptions {
        cache_ttl: Duration::from_secs(60),
        cache_max_entries: 10,
        hash_cost: Argon2Cost::MINIMAL,
    };
    Authenticator::from_config_with(&config, None, None, |p| p.to_path_buf(), options).unwrap()
}

fn login(
    auth: &Authenticator,
    user: &str,
    authzid: Option<&str>,
    pw: &str,
) -> Result<Login, LoginError> {
    auth.login(&Credential::Password {
        user,
        authzid,
        password: pw.as_bytes(),
    })
}

#[test]
fn login_as_target_star_master() {
    let dir = tempfile::tempdir().unwrap();
    let auth = authenticator(dir.path(), &["Support"], "*");
    let l = login(&auth, "Alice*support", None, "support-pw").unwrap();
    assert_eq!(l.user, "alice");
    assert_eq!(l.master.as_deref(), Some("support"));
    assert_eq!(l.backend, "passwd-file");
    // The master's own password, not the target's.
    assert_eq!(
        login(&auth, "alice*support", None, "alice-pw"),
        Err(LoginError::BadCredentials)
    );
    // A user not listed as master may not, even with the right password.
    let e = login(&auth, "alice*bob", None, "bob-pw").unwrap_err();
    assert_eq!(e, LoginError::NotAuthorized);
    assert_eq!(e.response_code(), "AUTHORIZATIONFAILED");
    assert_eq!(
        login(&auth, "nobody*support", None, "support-pw"),
        Err(LoginError::UnknownUser)
    );
    // Logging in as oneself is plain.
    let own = login(&auth, "support", None, "support-pw").unwrap();
    assert_eq!(
        (own.user.as_str(), own.master.as_deref()),
        ("support", None)
    );
    // The older verify() answers for the target too.
    assert_eq!(
        auth.verify("bob*support", b"support-pw"),
        AuthResult::Ok {
            user: "bob".into(),
            cache_hit: true
        }
    );
}

#[test]
fn plain_with_an_authorization_identity() {
    let dir = tempfile::tempdir().unwrap();
    let auth = authenticator(dir.path(), &["support"], "*");
    let c = sasl::parse_plain_authz(b"alice\0support\0support-pw").unwrap();
    let l = login(&auth, &c.username, c.authzid.as_deref(), "support-pw").unwrap();
    assert_eq!(
        (l.user.as_str(), l.master.as_deref()),
        ("alice", Some("support"))
    );
    let c = sasl::parse_plain_authz(b"alice\0bob\0bob-pw").unwrap();
    assert_eq!(
        login(&auth, &c.username, c.authzid.as_deref(), "bob-pw"),
        Err(LoginError::NotAuthorized)
    );
    // authzid = authcid is an ordinary login.
    let c = sasl::parse_plain_authz(b"bob\0bob\0bob-pw").unwrap();
    assert_eq!(c.authzid, None);
    assert_eq!(
        login(&auth, &c.username, None, "bob-pw").unwrap().master,
        None
    );
}

#[test]
fn without_masters_the_separator_is_just_a_character() {
    let dir = tempfile::tempdir().unwrap();
    let auth = authenticator(dir.path(), &[], "*");
    assert_eq!(
        login(&auth, "alice*support", None, "support-pw"),
        Err(LoginError::UnknownUser)
    );
    assert_eq!(
        login(&auth, "support", Some("alice"), "support-pw"),
        Err(LoginError::NotAuthorized)
    );
    // Another separator.
    let auth = authenticator(dir.path(), &["support"], "%");
    assert_eq!(
        login(&auth, "alice%support", None, "support-pw")
            .unwrap()
            .user,
        "alice"
    );
    assert_eq!(
        login(&auth, "alice*support", None, "support-pw"),
        Err(LoginError::UnknownUser)
    );
}
