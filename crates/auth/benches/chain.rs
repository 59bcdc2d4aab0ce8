//! Logins through the backend chain with a warm auth cache: a passwd-file user against a
//! directory user (the target: LDAP at least 90% of passwd-file logins/s), and, for scale,
//! a directory user with the cache off (one search and one bind per login).
//!
//! Starts its own slapd (tests/support/slapd.rs); without slapd it says so and measures
//! nothing.

#[path = "../tests/support/slapd.rs"]
mod slapd;

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ringmail_auth::config::{AuthConfig, BackendKind, LdapConfig, LdapVerify};
use ringmail_auth::{Argon2Cost, AuthOptions, Authenticator, UsersFile};

fn authenticator(dir: &Path, slapd: &slapd::Slapd, cache_ttl: Duration) -> Authenticator {
    let users = dir.join("users");
    if !users.exists() {
        let mut f = UsersFile::load_or_empty(&users).unwrap();
        f.add("paula", b"paula-pw").unwrap();
        f.save().unwrap();
        std::fs::write(dir.join("ldap.secret"), slapd::SEARCH_PASSWORD).unwrap();
    }
    let auth = AuthConfig {
        users_file: users,
        backends: vec![BackendKind::PasswdFile, BackendKind::Ldap],
        ..AuthConfig::default()
    };
    let ldap = LdapConfig {
        uri: slapd.uri(),
        base: slapd::BASE.into(),
        bind_dn: Some(slapd::SEARCH_DN.into()),
        bind_password_file: Some("ldap.secret".into()),
        verify: LdapVerify::Bind,
        ..LdapConfig::default()
    };
    let options = AuthOptions {
        cache_ttl,
        cache_max_entries: 1000,
        hash_cost: Argon2Cost::default(),
    };
    let root = dir.to_owned();
    Authenticator::from_config_with(&auth, Some(&ldap), None, |p| root.join(p), options).unwrap()
}

fn chain(c: &mut Criterion) {
    let Some(slapd) = slapd::Slapd::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let warm = authenticator(dir.path(), &slapd, Duration::from_secs(300));
    assert!(warm.verify("paula", b"paula-pw").is_ok());
    assert!(warm.verify("alice", b"alice-pw").is_ok());
    let mut group = c.benchmark_group("login_warm_cache");
    group.bench_function("passwd-file", |b| {
        b.iter(|| assert!(warm.verify("paula", b"paula-pw").is_ok()))
    });
    group.bench_function("ldap", |b| {
        b.iter(|| assert!(warm.verify("alice", b"alice-pw").is_ok()))
    });
    group.finish();

    let cold = authenticator(dir.path(), &slapd, Duration::ZERO);
    let mut group = c.benchmark_group("login_cold_cache");
    group.sample_size(20);
    group.bench_function("ldap_search_and_bind", |b| {
        b.iter(|| assert!(cold.verify("alice", b"alice-pw").is_ok()))
    });
    group.finish();
}

criterion_group!(benches, chain);
criterion_main!(benches);
