//! Who may do what: bearer JWTs checked inside workerd against `AUTH_JWKS`, scopes, prefixes.

mod util;

use jwt_simple::prelude::*;
use jwt_simple::reexports::ct_codecs::{Base64UrlSafeNoPadding, Encoder};
use serde_json::json;
use util::*;

fn b64(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap()
}

/// A request that needs `uploads:write`, made with `token`.
fn create_with(token: Option<&str>) -> Reply {
    let worker = Worker::shared();
    let api = Api::new(worker, token.map(str::to_string));
    api.create(json!({"key": "auth/probe.bin"}))
}

#[test]
fn requests_without_a_valid_token_are_401_with_a_bearer_challenge() {
    let worker = Worker::shared();
    let missing = create_with(None);
    missing.assert_problem(401, "missing_token");
    assert!(missing.header("www-authenticate").unwrap().starts_with("Bearer "));

    let mut expired = claims("auth", ALL_SCOPES);
    expired.expires_at = Some(Clock::now_since_epoch() - Duration::from_secs(120));
    let mut early = claims("auth", ALL_SCOPES);
    early.invalid_before = Some(Clock::now_since_epoch() + Duration::from_secs(120));
    let mut immortal = claims("auth", ALL_SCOPES);
    immortal.expires_at = None;
    let stranger = Ed25519KeyPair::generate().with_key_id("test-ed");
    let unsigned = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), b64(br#"{"sub":"auth","exp":9999999999}"#));
    let valid = worker.token("auth", ALL_SCOPES);
    let (head, rest) = valid.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let tampered =
        format!("{head}.{}.{signature}", b64(br#"{"sub":"admin","scope":"uploads:write","exp":9999999999}"#));
    let mut no_kid_header = claims("auth", ALL_SCOPES);
    no_kid_header.subject = Some("auth".into());
    let wrong_kid = Ed25519KeyPair::from_bytes(&worker.keys.ed25519.to_bytes()).unwrap().with_key_id("rotated-away");

    for (what, token) in [
        ("garbage", "not.a.jwt".to_string()),
        ("expired", worker.sign(expired)),
        ("not yet valid", worker.sign(early)),
        ("without exp", worker.sign(immortal)),
        ("signed by a stranger", stranger.sign(claims("auth", ALL_SCOPES)).unwrap()),
        ("alg none", unsigned),
        ("tampered payload", tampered),
        ("unknown kid", wrong_kid.sign(no_kid_header).unwrap()),
    ] {
        let reply = create_with(Some(&token));
        assert_eq!(reply.status, 401, "{what}");
        assert_eq!(reply.code(), "invalid_token", "{what}");
        assert!(reply.header("www-authenticate").unwrap().contains(r#"error="invalid_token""#), "{what}");
    }
}

#[test]
fn hs256_signed_with_the_public_key_does_not_pass() {
    let worker = Worker::shared();
    // The classic confusion attack: use the (public) Ed25519 key bytes as an HMAC secret.
    let public = worker.keys.ed25519.public_key().to_bytes();
    let forged = HS256Key::from_bytes(&public).with_key_id("test-ed").authenticate(claims("auth", ALL_SCOPES)).unwrap();
    create_with(Some(&forged)).assert_problem(401, "invalid_token");
}

#[test]
fn every_key_type_in_the_set_is_accepted_so_keys_can_rotate() {
    let worker = Worker::shared();
    let tokens = [
        worker.keys.ed25519.sign(claims("rotation", ALL_SCOPES)).unwrap(),
        worker.keys.es256.sign(claims("rotation", ALL_SCOPES)).unwrap(),
        worker.keys.hs256.authenticate(claims("rotation", ALL_SCOPES)).unwrap(),
    ];
    for token in tokens {
        assert_eq!(create_with(Some(&token)).status, 201);
    }
}

#[test]
fn a_token_without_the_scope_is_403() {
    let worker = Worker::shared();
    let reader = Api::new(worker, Some(worker.token("scopes", &["objects:read"])));
    let reply = reader.create(json!({"key": "scopes/x"}));
    reply.assert_problem(403, "insufficient_scope");
    assert!(reply.header("www-authenticate").unwrap().contains(r#"scope="uploads:write""#));

    let writer = Api::new(worker, Some(worker.token("scopes", &["uploads:write"])));
    writer.upload("scopes/x", b"data", PART);
    writer.object("scopes/x", &[]).assert_problem(403, "insufficient_scope");
    writer.send("DELETE", "/objects/scopes/x", &[], None).assert_problem(403, "insufficient_scope");
    assert_eq!(reader.object("scopes/x", &[]).body, b"data");
}

#[test]
fn a_prefix_claim_confines_every_key_the_token_touches() {
    let worker = Worker::shared();
    let mut confined = claims("tenant", ALL_SCOPES);
    confined.custom.prefix = Some("tenant-a/".into());
    let tenant = Api::new(worker, Some(worker.sign(confined)));

    tenant.create(json!({"key": "tenant-b/x"})).assert_problem(403, "key_outside_prefix");
    tenant.object("tenant-b/x", &[]).assert_problem(403, "key_outside_prefix");
    tenant.send("GET", "/objects?prefix=tenant-b/", &[], None).assert_problem(403, "key_outside_prefix");
    tenant.upload("tenant-a/x", b"mine", PART);
    assert_eq!(tenant.object("tenant-a/x", &[]).body, b"mine");
    let listed = tenant.send("GET", "/objects", &[], None).json();
    assert!(listed["objects"].as_array().unwrap().iter().all(|o| o["key"].as_str().unwrap().starts_with("tenant-a/")));

    // The same subject with a narrower token cannot reach its own upload outside that prefix.
    let broad = Api::of(worker, "tenant");
    let id = broad.create_id(json!({"key": "tenant-b/y"}));
    tenant.state(&id).assert_problem(403, "key_outside_prefix");
}

#[test]
fn issuer_and_audience_are_checked_when_configured() {
    let worker = Worker::start_with(Options {
        vars: vec![("AUTH_ISSUER".into(), "https://issuer.test".into()), ("AUTH_AUDIENCE".into(), "r2mpu".into())],
    });
    let api = |claims: JWTClaims<_>| Api::new(&worker, Some(worker.sign(claims))).create(json!({"key": "iss/x"}));
    let right = claims("iss", ALL_SCOPES).with_issuer("https://issuer.test").with_audience("r2mpu");
    assert_eq!(api(right).status, 201);
    api(claims("iss", ALL_SCOPES).with_issuer("https://evil.test").with_audience("r2mpu"))
        .assert_problem(401, "invalid_token");
    api(claims("iss", ALL_SCOPES).with_issuer("https://issuer.test").with_audience("other"))
        .assert_problem(401, "invalid_token");
    api(claims("iss", ALL_SCOPES)).assert_problem(401, "invalid_token");
}
