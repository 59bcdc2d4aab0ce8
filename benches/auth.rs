//! Login cost: a full Argon2id verification at the default (OWASP) cost against an
//! auth-cache hit, a Dovecot SHA512-CRYPT hash for comparison, and PROXY header parsing.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ringmail::auth::{hash, Argon2Cost, AuthOptions, Authenticator, StoredHash, UsersFile};
use ringmail::server::proxy;

fn password_hashes(c: &mut Criterion) {
    let mut group = c.benchmark_group("auth");
    group.sample_size(20);
    let argon = hash::hash_new(b"correct horse", Argon2Cost::default()).expect("hash");
    group.bench_function("verify_argon2id_default_cost", |b| {
        b.iter(|| black_box(argon.verify(black_box(b"correct horse"))))
    });
    // Made by glibc crypt(3): crypt.crypt('secret', '$6$saltsalt$').
    let sha = StoredHash::parse("{SHA512-CRYPT}$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1").expect("parse");
    group.bench_function("verify_sha512_crypt_5000_rounds", |b| {
        b.iter(|| black_box(sha.verify(black_box(b"secret"))))
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("users");
    let mut file = UsersFile::load_or_empty(&path).expect("users");
    file.add("alice", b"correct horse").expect("add");
    file.save().expect("save");
    let auth = Authenticator::new(
        &path,
        AuthOptions {
            cache_ttl: Duration::from_secs(3600),
            ..AuthOptions::default()
        },
    )
    .expect("authenticator");
    assert!(auth.verify("alice", b"correct horse").is_ok());
    group.bench_function("verify_cache_hit", |b| {
        b.iter(|| black_box(auth.verify(black_box("alice"), black_box(b"correct horse"))))
    });
    group.finish();
}

fn proxy_headers(c: &mut Criterion) {
    let v1 = b"PROXY TCP6 2001:db8::1 2001:db8::2 56324 993\r\na001 CAPABILITY\r\n";
    c.bench_function("proxy/parse_v1_tcp6", |b| {
        b.iter(|| black_box(proxy::parse(black_box(v1))))
    });
    let mut v2 = proxy::V2_SIGNATURE.to_vec();
    v2.extend_from_slice(&[
        0x21, 0x11, 0x00, 0x0c, 192, 0, 2, 1, 10, 0, 0, 1, 0xdc, 0x04, 0x03, 0xe1,
    ]);
    c.bench_function("proxy/parse_v2_tcp4", |b| {
        b.iter(|| black_box(proxy::parse(black_box(&v2))))
    });
}

criterion_group!(benches, password_hashes, proxy_headers);
criterion_main!(benches);
