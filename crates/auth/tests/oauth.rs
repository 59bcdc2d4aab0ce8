//! OAuth 2.0 bearer tokens: JWTs signed by test keys (tests/keys), key sets from a file or
//! served by a loopback HTTP server, token introspection, and the SASL messages that carry
//! them.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ringmail_auth::config::{AuthConfig, BackendKind, OauthConfig};
use ringmail_auth::sasl::{self, OauthBearerMessage};
use ringmail_auth::{
    Argon2Cost, AuthOptions, Authenticator, Credential, Login, LoginError, UsersFile,
};
use serde_json::{json, Value};
use support::http::TestHttp;

const ISSUER: &str = "https://id.example.org";
const AUDIENCE: &str = "imap.example.org";

struct Signer {
    key: EncodingKey,
    alg: Algorithm,
    kid: String,
    jwk: Jwk,
}

fn signer(file: &str, alg: Algorithm, kid: &str) -> Signer {
    let (key, jwk) = support::keys::load(file, alg, kid);
    Signer {
        key,
        alg,
        kid: kid.to_owned(),
        jwk,
    }
}

fn rsa1() -> Signer {
    signer("rsa1.pem", Algorithm::RS256, "r1")
}
fn rsa2() -> Signer {
    signer("rsa2.pem", Algorithm::RS256, "r2")
}
fn ec1() -> Signer {
    signer("ec1.pem", Algorithm::ES256, "e1")
}
fn ec2() -> Signer {
    signer("ec2.pem", Algorithm::ES256, "e2")
}

fn jwks(signers: &[&Signer]) -> String {
    serde_json::to_string(&JwkSet {
        keys: signers.iter().map(|s| s.jwk.clone()).collect(),
    })
    .unwrap()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(email: &str) -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "248289761001",
        "email": email,
        "iat": now(),
        "exp": now() + 600,
    })
}

fn token(s: &Signer, claims: &Value) -> String {
    let mut header = Header::new(s.alg);
    header.kid = Some(s.kid.clone());
    jsonwebtoken::encode(&header, claims, &s.key).unwrap()
}

fn options() -> AuthOptions {
    AuthOptions {
        cache_ttl: Duration::from_secs(60),
        cache_max_entries: 100,
        hash_cost: Argon2Cost::MINIMAL,
    }
}

fn authenticator(dir: &Path, backends: &[BackendKind], oauth: &OauthConfig) -> Authenticator {
    let users = dir.join("users");
    let mut f = UsersFile::load_or_empty(&users).unwrap();
    f.set_hash_cost(Argon2Cost::MINIMAL);
    if f.lookup("paula").is_none() {
        f.add("paula", b"paula-pw").unwrap();
    }
    f.save().unwrap();
    let auth = AuthConfig {
        users_file: users,
        backends: backends.to_vec(),
        ..AuthConfig::default()
    };
    let root: PathBuf = dir.to_owned();
    Authenticator::from_config_with(&auth, None, Some(oauth), |p| root.join(p), options()).unwrap()
}

fn file_config(dir: &Path, keys: &[&Signer]) -> OauthConfig {
    std::fs::write(dir.join("jwks.json"), jwks(keys)).unwrap();
    OauthConfig {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        jwks_file: Some("jwks.json".into()),
        scope: Some("openid email".into()),
        ..OauthConfig::default()
    }
}

fn bearer(auth: &Authenticator, token: &str, user: Option<&str>) -> Result<Login, LoginError> {
    auth.login(&Credential::Bearer { token, user })
}

fn refused_because(result: Result<Login, LoginError>) -> String {
    match result {
        Err(LoginError::InvalidToken(why)) => why,
        other => panic!("expected InvalidToken, got {other:?}"),
    }
}

#[test]
fn rs256_and_es256_tokens_log_in_through_both_mechanisms() {
    let dir = tempfile::tempdir().unwrap();
    let (r1, e1) = (rsa1(), ec1());
    let auth = authenticator(
        dir.path(),
        &[BackendKind::PasswdFile, BackendKind::Oauth],
        &file_config(dir.path(), &[&r1, &e1]),
    );
    assert_eq!(
        auth.sasl_mechanisms(),
        ["PLAIN", "LOGIN", "OAUTHBEARER", "XOAUTH2"]
    );
    for signer in [&r1, &e1] {
        let t = token(signer, &claims("Alice@Example.org"));
        let login = bearer(&auth, &t, None).unwrap();
        assert_eq!(login.user, "alice@example.org");
        assert_eq!(login.backend, "oauth");

        // OAUTHBEARER as a client sends it (base64 on the IMAP line).
        let msg = format!("n,a=alice@example.org,\x01host=imap.example.org\x01port=993\x01auth=Bearer {t}\x01\x01");
        let line = base64::engine::general_purpose::STANDARD.encode(msg);
        let decoded =
            sasl::decode_response_up_to(line.as_bytes(), sasl::MAX_TOKEN_RESPONSE_LEN).unwrap();
        let OauthBearerMessage::Token(c) = sasl::parse_oauthbearer(&decoded).unwrap() else {
            panic!("not a token message");
        };
        let login = bearer(&auth, &c.token, c.user.as_deref()).unwrap();
        assert_eq!(login.user, "alice@example.org");

        // XOAUTH2, as Thunderbird and imaplib's authenticate('XOAUTH2') send it.
        let msg = format!("user=alice@example.org\x01auth=Bearer {t}\x01\x01");
        let c = sasl::parse_xoauth2(msg.as_bytes()).unwrap();
        assert_eq!(
            bearer(&auth, &c.token, c.user.as_deref()).unwrap().user,
            "alice@example.org"
        );

        // The token is alice's: nobody else may use it.
        let why = refused_because(bearer(&auth, &t, Some("bob@example.org")));
        assert!(why.contains("not \"bob@example.org\""), "{why}");
    }
    // Passwords still work beside tokens.
    assert!(auth.verify("paula", b"paula-pw").is_ok());
}

#[test]
fn strip_domain_and_user_claim() {
    let dir = tempfile::tempdir().unwrap();
    let r1 = rsa1();
    let mut config = file_config(dir.path(), &[&r1]);
    config.strip_domain = true;
    let auth = authenticator(dir.path(), &[BackendKind::Oauth], &config);
    let t = token(&r1, &claims("alice@example.org"));
    assert_eq!(bearer(&auth, &t, None).unwrap().user, "alice");
    // The client may name the full address or the user.
    assert_eq!(
        bearer(&auth, &t, Some("alice@example.org")).unwrap().user,
        "alice"
    );
    assert_eq!(bearer(&auth, &t, Some("ALICE")).unwrap().user, "alice");
    assert!(bearer(&auth, &t, Some("alice@evil.example")).is_err());

    config.strip_domain = false;
    config.user_claim = "preferred_username".into();
    let auth = authenticator(dir.path(), &[BackendKind::Oauth], &config);
    let mut c = claims("alice@example.org");
    c["preferred_username"] = json!("al");
    assert_eq!(bearer(&auth, &token(&r1, &c), None).unwrap().user, "al");
    let why = refused_because(bearer(&auth, &t, None));
    assert!(why.contains("preferred_username"), "{why}");
}

#[test]
fn bad_tokens_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (r1, r2, e1) = (rsa1(), rsa2(), ec1());
    let auth = authenticator(
        dir.path(),
        &[BackendKind::Oauth],
        &file_config(dir.path(), &[&r1, &e1]),
    );
    let mut expired = claims("alice@example.org");
    expired["exp"] = json!(now() - 3600);
    assert_eq!(
        refused_because(bearer(&auth, &token(&r1, &expired), None)),
        "token expired"
    );
    // Within the 30 s leeway for clock skew it is still good.
    expired["exp"] = json!(now() - 5);
    assert!(bearer(&auth, &token(&e1, &expired), None).is_ok());

    let mut wrong_aud = claims("alice@example.org");
    wrong_aud["aud"] = json!("other-service");
    assert_eq!(
        refused_because(bearer(&auth, &token(&r1, &wrong_aud), None)),
        "wrong audience"
    );
    // aud may be a list that includes us.
    wrong_aud["aud"] = json!(["other-service", AUDIENCE]);
    assert!(bearer(&auth, &token(&r1, &wrong_aud), None).is_ok());

    let mut wrong_iss = claims("alice@example.org");
    wrong_iss["iss"] = json!("https://evil.example");
    assert_eq!(
        refused_because(bearer(&auth, &token(&e1, &wrong_iss), None)),
        "wrong issuer"
    );

    let mut not_yet = claims("alice@example.org");
    not_yet["nbf"] = json!(now() + 3600);
    assert!(refused_because(bearer(&auth, &token(&r1, &not_yet), None)).contains("nbf"));

    let mut no_exp = claims("alice@example.org");
    no_exp.as_object_mut().unwrap().remove("exp");
    assert!(refused_because(bearer(&auth, &token(&r1, &no_exp), None)).contains("exp"));

    // Tampered: alice's signature on a payload that says bob.
    for signer in [&r1, &e1] {
        let good = token(signer, &claims("alice@example.org"));
        let forged_payload = token(signer, &claims("bob@example.org"));
        let parts: Vec<&str> = good.split('.').collect();
        let other: Vec<&str> = forged_payload.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], other[1], parts[2]);
        assert_eq!(
            refused_because(bearer(&auth, &tampered, None)),
            "bad signature"
        );
    }

    // Signed by a key the issuer never published.
    let why = refused_because(bearer(
        &auth,
        &token(&r2, &claims("alice@example.org")),
        None,
    ));
    assert!(why.contains("no key r2"), "{why}");
    // The right key id, the wrong key.
    let mut impostor = rsa2();
    impostor.kid = "r1".into();
    assert_eq!(
        refused_because(bearer(
            &auth,
            &token(&impostor, &claims("alice@example.org")),
            None
        )),
        "bad signature"
    );

    // HMAC is never accepted (with the public key as the "secret" it is the classic forgery).
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("r1".into());
    let hs = jsonwebtoken::encode(
        &header,
        &claims("alice@example.org"),
        &EncodingKey::from_secret(b"secret").unwrap(),
    )
    .unwrap();
    assert!(refused_because(bearer(&auth, &hs, None)).contains("not accepted"));
    // alg "none".
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims("alice@example.org"))
    );
    assert!(bearer(&auth, &none, None).is_err());
    assert!(bearer(&auth, "not-a-token", None).is_err());

    // Each is the client's failure, answered with the RFC 7628 error challenge.
    let err = bearer(&auth, &token(&r1, &expired), None);
    let err = err.err().unwrap_or(LoginError::InvalidToken(String::new()));
    assert!(err.counts_as_failure());
    assert_eq!(err.response_code(), "AUTHENTICATIONFAILED");
    let challenge = base64::engine::general_purpose::STANDARD
        .decode(auth.oauth_error_challenge())
        .unwrap();
    let challenge: Value = serde_json::from_slice(&challenge).unwrap();
    assert_eq!(
        challenge,
        json!({"status": "invalid_token", "schemes": "bearer", "scope": "openid email"})
    );
}

fn url_config(http: &TestHttp, min_refresh_secs: u64) -> OauthConfig {
    OauthConfig {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        jwks_url: Some(http.url("/jwks")),
        jwks_min_refresh_secs: min_refresh_secs,
        timeout_ms: 2_000,
        ..OauthConfig::default()
    }
}

#[test]
fn key_rotation_is_picked_up_from_the_jwks_url() {
    let dir = tempfile::tempdir().unwrap();
    let http = TestHttp::start();
    let (r1, r2, e2) = (rsa1(), rsa2(), ec2());
    http.route("/jwks", 200, &jwks(&[&r1]));
    let auth = authenticator(dir.path(), &[BackendKind::Oauth], &url_config(&http, 60));
    assert_eq!(http.requests("/jwks").len(), 1, "fetched at start");
    assert!(bearer(&auth, &token(&r1, &claims("alice@example.org")), None).is_ok());
    assert_eq!(
        http.requests("/jwks").len(),
        1,
        "a known key needs no fetch"
    );

    // The issuer rotates: a new key is published and tokens signed with it arrive.
    http.route("/jwks", 200, &jwks(&[&r1, &e2]));
    let login = bearer(&auth, &token(&e2, &claims("alice@example.org")), None).unwrap();
    assert_eq!(login.user, "alice@example.org");
    assert_eq!(
        http.requests("/jwks").len(),
        2,
        "an unknown kid fetched the set again"
    );

    // Another unknown kid right after: rate-limited, no fetch, refused.
    http.route("/jwks", 200, &jwks(&[&r1, &e2, &r2]));
    let why = refused_because(bearer(
        &auth,
        &token(&r2, &claims("alice@example.org")),
        None,
    ));
    assert!(why.contains("no key r2"), "{why}");
    assert_eq!(http.requests("/jwks").len(), 2);
    let request = &http.requests("/jwks")[0];
    assert_eq!(request.method, "GET");
}

#[test]
fn unreachable_jwks_url_is_unavailable_until_it_answers() {
    let dir = tempfile::tempdir().unwrap();
    let http = TestHttp::start();
    let r1 = rsa1();
    http.route("/jwks", 500, "{}");
    // The server starts even though the issuer is down.
    let auth = authenticator(dir.path(), &[BackendKind::Oauth], &url_config(&http, 0));
    let t = token(&r1, &claims("alice@example.org"));
    match bearer(&auth, &t, None) {
        Err(e @ LoginError::Unavailable(_)) => {
            assert!(!e.counts_as_failure());
            assert_eq!(e.response_code(), "UNAVAILABLE");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    http.route("/jwks", 200, &jwks(&[&r1]));
    assert_eq!(bearer(&auth, &t, None).unwrap().user, "alice@example.org");
}

#[test]
fn opaque_tokens_are_introspected() {
    let dir = tempfile::tempdir().unwrap();
    let http = TestHttp::start();
    std::fs::write(dir.path().join("introspect.secret"), "s3cret\n").unwrap();
    let config = OauthConfig {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        introspection_url: Some(http.url("/introspect")),
        introspection_client_id: Some("imap".into()),
        introspection_secret_file: Some("introspect.secret".into()),
        ..OauthConfig::default()
    };
    let auth = authenticator(dir.path(), &[BackendKind::Oauth], &config);
    let active = json!({
        "active": true, "username": "Erin@example.org", "iss": ISSUER,
        "aud": [AUDIENCE], "exp": now() + 600, "token_type": "access_token"
    });
    http.route("/introspect", 200, &active.to_string());
    let login = bearer(&auth, "opaque-token-1", Some("erin@example.org")).unwrap();
    assert_eq!(login.user, "erin@example.org");
    let request = http.requests("/introspect").pop().unwrap();
    assert_eq!(request.method, "POST");
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("imap:s3cret")
    );
    assert_eq!(request.header("authorization"), Some(expected.as_str()));
    let body = String::from_utf8(request.body).unwrap();
    assert!(body.contains("token=opaque-token-1"), "{body}");

    http.route("/introspect", 200, r#"{"active": false}"#);
    assert_eq!(
        refused_because(bearer(&auth, "opaque-token-2", None)),
        "token not active"
    );
    let mut expired = active.clone();
    expired["exp"] = json!(now() - 3600);
    http.route("/introspect", 200, &expired.to_string());
    assert_eq!(
        refused_because(bearer(&auth, "opaque-token-1", None)),
        "token expired"
    );
    let mut other_aud = active.clone();
    other_aud["aud"] = json!("other");
    http.route("/introspect", 200, &other_aud.to_string());
    assert_eq!(
        refused_because(bearer(&auth, "opaque-token-1", None)),
        "wrong audience"
    );
    http.route("/introspect", 503, "{}");
    assert!(matches!(
        bearer(&auth, "opaque-token-1", None),
        Err(LoginError::Unavailable(_))
    ));
}

#[test]
fn a_jwt_as_login_password() {
    let dir = tempfile::tempdir().unwrap();
    let r1 = rsa1();
    let auth = authenticator(
        dir.path(),
        &[BackendKind::PasswdFile, BackendKind::Oauth],
        &file_config(dir.path(), &[&r1]),
    );
    let t = token(&r1, &claims("alice@example.org"));
    let login = |user: &str, pw: &str| {
        auth.login(&Credential::Password {
            user,
            authzid: None,
            password: pw.as_bytes(),
        })
    };
    assert_eq!(login("alice@example.org", &t).unwrap().backend, "oauth");
    assert_eq!(
        login("bob@example.org", &t),
        Err(LoginError::BadCredentials)
    );
    assert_eq!(
        login("someone", "plain-password"),
        Err(LoginError::UnknownUser)
    );
    assert_eq!(login("paula", "paula-pw").unwrap().backend, "passwd-file");
}

#[test]
fn tokens_are_offered_only_with_oauth() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users"), "paula:{PLAIN}pw\n").unwrap();
    let auth = Authenticator::new(dir.path().join("users"), options()).unwrap();
    assert!(!auth.takes_tokens());
    assert_eq!(auth.sasl_mechanisms(), ["PLAIN", "LOGIN"]);
    assert_eq!(
        bearer(&auth, "anything", None).err().map(|e| e.label()),
        Some("invalid_token")
    );
}
