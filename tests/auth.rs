//! Who may do what: bearer JWTs checked inside workerd against `AUTH_JWKS`, scopes, prefixes.

mod util;

use jwt_simple::prelude::*;
use jwt_simple::reexports::ct_codecs::{Base64UrlSafeNoPadding, Decoder, Encoder};
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
    // A `kid` that names a real key: refused for its algorithm, not for lacking a key.
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT","kid":"test-ed"}"#),
        b64(br#"{"sub":"auth","scope":"uploads:write","exp":9999999999}"#)
    );
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
        if what == "alg none" {
            assert_eq!(reply.json()["reason"], "the token's alg does not match its key");
        }
    }
}

// Issue 23, item 5: a token that verified is remembered by the isolate until its `exp`.
#[test]
fn a_remembered_token_is_refused_once_past_its_exp() {
    let worker = Worker::shared();
    // Valid now only thanks to the 30 s leeway, which runs out a few seconds from now.
    let exp = Clock::now_since_epoch().as_secs() - 27;
    let mut claims = claims("cache-exp", ALL_SCOPES);
    claims.expires_at = Some(Duration::from_secs(exp));
    let token = worker.sign(claims);
    assert_eq!(create_with(Some(&token)).status, 201, "accepted within the leeway, and remembered");
    while Clock::now_since_epoch().as_secs() <= exp + 31 {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let reply = create_with(Some(&token));
    assert_eq!(reply.status, 401, "past its exp and the leeway, though remembered");
    reply.assert_problem(401, "invalid_token");
    assert_eq!(reply.json()["reason"], "the token has expired");
}

#[test]
fn a_wrong_signature_is_refused_while_the_token_it_was_copied_from_is_remembered() {
    let worker = Worker::shared();
    let valid = worker.token("cache-sig", ALL_SCOPES);
    assert_eq!(create_with(Some(&valid)).status, 201);
    let (signed, signature) = valid.rsplit_once('.').unwrap();
    let mut bytes = Base64UrlSafeNoPadding::decode_to_vec(signature, None).unwrap();
    bytes[10] ^= 1;
    let forged = format!("{signed}.{}", b64(&bytes));
    let reply = create_with(Some(&forged));
    assert_eq!(reply.status, 401, "a wrong signature, with the claims of a remembered token");
    reply.assert_problem(401, "invalid_token");
    assert_eq!(create_with(Some(&valid)).status, 201, "the real token still passes");
}

#[test]
fn hs256_signed_with_the_public_key_does_not_pass() {
    let worker = Worker::shared();
    // The classic confusion attack: use the (public) Ed25519 key bytes as an HMAC secret.
    let public = worker.keys.ed25519.public_key().to_bytes();
    let forged = HS256Key::from_bytes(&public).with_key_id("test-ed").authenticate(claims("auth", ALL_SCOPES)).unwrap();
    let reply = create_with(Some(&forged));
    assert_eq!(reply.status, 401, "a wrong signature, with the claims of a remembered token");
    reply.assert_problem(401, "invalid_token");
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

/// Claims for `sub` with every scope whose `exp` and `nbf` are the given whole seconds since
/// the epoch, minted at the start of a second so that the request reaches workerd within it.
fn at_second_start() -> u64 {
    loop {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        if now.subsec_millis() < 50 {
            return now.as_secs();
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn exp_and_nbf_have_30_seconds_of_leeway_and_not_one_more() {
    let worker = Worker::shared();
    // (what, exp offset, nbf offset, expected status): offsets from the current second.
    let cases: [(&str, i64, i64, u16); 4] = [
        ("expired 29 s ago", -29, -60, 201),
        ("expired 31 s ago", -31, -60, 401),
        ("valid from 29 s on", 3600, 29, 201),
        ("valid from 31 s on", 3600, 31, 401),
    ];
    for (what, exp, nbf, expected) in cases {
        // A request that takes a whole second (a busy machine) could cross the edge: try again.
        let mut attempts = 0;
        let reply = loop {
            attempts += 1;
            let now = at_second_start() as i64;
            let mut claims = claims("leeway", ALL_SCOPES);
            claims.issued_at = Some(Duration::from_secs((now - 60) as u64));
            claims.expires_at = Some(Duration::from_secs((now + exp) as u64));
            claims.invalid_before = Some(Duration::from_secs((now + nbf) as u64));
            let started = std::time::Instant::now();
            let reply = create_with(Some(&worker.sign(claims)));
            if started.elapsed() < std::time::Duration::from_millis(900) || attempts == 5 {
                break reply;
            }
        };
        assert_eq!(reply.status, expected, "{what}: {}", String::from_utf8_lossy(&reply.body));
        if expected == 401 {
            assert_eq!(reply.code(), "invalid_token", "{what}");
        }
    }
}

#[test]
fn a_token_without_a_subject_is_refused() {
    let worker = Worker::shared();
    let mut nobody = claims("", ALL_SCOPES);
    nobody.subject = None;
    let reply = create_with(Some(&worker.sign(nobody)));
    reply.assert_problem(401, "invalid_token");
    assert_eq!(reply.json()["reason"], "the token has no sub");
    let empty = claims("", ALL_SCOPES);
    create_with(Some(&worker.sign(empty))).assert_problem(401, "invalid_token");
}

#[test]
fn a_token_without_a_kid_is_refused_when_the_set_holds_several_keys() {
    let worker = Worker::shared();
    let anonymous_key = Ed25519KeyPair::from_bytes(&worker.keys.ed25519.to_bytes()).unwrap();
    let reply = create_with(Some(&anonymous_key.sign(claims("no-kid", ALL_SCOPES)).unwrap()));
    reply.assert_problem(401, "invalid_token");
    assert_eq!(reply.json()["reason"], "unknown key id");
}

#[test]
fn a_set_of_one_key_without_a_kid_verifies_tokens_without_a_kid() {
    let key = Ed25519KeyPair::generate();
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": b64(&key.public_key().to_bytes())}]});
    // The env file's later AUTH_JWKS replaces the testkit's set of three keys with kids.
    let worker = Worker::start_with(Options { vars: vec![("AUTH_JWKS".into(), jwks.to_string())] });
    let with = |token: String| Api::new(&worker, Some(token)).create(json!({"key": "single/x"}));

    assert_eq!(with(key.sign(claims("single", ALL_SCOPES)).unwrap()).status, 201);
    let stranger = Ed25519KeyPair::generate();
    with(stranger.sign(claims("single", ALL_SCOPES)).unwrap()).assert_problem(401, "invalid_token");
    // A kid the set does not name is refused even though the one key would verify it.
    let named = Ed25519KeyPair::from_bytes(&key.to_bytes()).unwrap().with_key_id("named");
    let reply = with(named.sign(claims("single", ALL_SCOPES)).unwrap());
    reply.assert_problem(401, "invalid_token");
    assert_eq!(reply.json()["reason"], "unknown key id");
    // The testkit's own keys are gone with the set they were in.
    with(worker.token("single", ALL_SCOPES)).assert_problem(401, "invalid_token");
}

#[test]
fn a_prefix_claim_confines_the_guides_actions_and_object_deletes_and_heads() {
    let worker = Worker::shared();
    let mut confined = claims("tenant-actions", ALL_SCOPES);
    confined.custom.prefix = Some("tenant-a/".into());
    let tenant = Api::new(worker, Some(worker.sign(confined)));
    let broad = Api::of(worker, "tenant-actions");
    broad.upload("tenant-b/kept.bin", b"not yours", PART);
    let created = broad.send("POST", "/tenant-b/up.bin?action=mpu-create", &[], None);
    let id = created.json()["uploadId"].as_str().unwrap().to_string();
    let etag = broad.put_part(&id, 1, b"part").json()["etag"].as_str().unwrap().to_string();

    let q = format!("uploadId={id}&partNumber=1");
    let complete = json!({"parts": [{"partNumber": 1, "etag": etag}]}).to_string();
    for (method, path, body) in [
        ("POST", "/tenant-b/new.bin?action=mpu-create".to_string(), None),
        ("PUT", format!("/tenant-b/up.bin?action=mpu-uploadpart&{q}"), Some(&b"other"[..])),
        ("POST", format!("/tenant-b/up.bin?action=mpu-complete&{q}"), Some(complete.as_bytes())),
        ("DELETE", format!("/tenant-b/up.bin?action=mpu-abort&{q}"), None),
        ("GET", "/tenant-b/kept.bin?action=get".to_string(), None),
        ("DELETE", "/tenant-b/kept.bin?action=delete".to_string(), None),
        ("DELETE", "/objects/tenant-b/kept.bin".to_string(), None),
    ] {
        tenant
            .send(method, &path, &[("content-type", "application/json")], body)
            .assert_problem(403, "key_outside_prefix");
    }
    let head = tenant.send("HEAD", "/objects/tenant-b/kept.bin", &[], None);
    assert_eq!((head.status, head.header("etag")), (403, None), "HEAD tells nothing about the object");

    // Nothing happened: the object is there, the upload still open with its one part.
    assert_eq!(broad.object("tenant-b/kept.bin", &[]).body, b"not yours");
    let state = broad.state(&id).json();
    assert_eq!((state["status"].as_str(), state["parts"][0]["etag"].as_str()), (Some("open"), Some(etag.as_str())));
    // Inside its prefix the same token works through the guide's protocol.
    let own = tenant.send("POST", "/tenant-a/mine.bin?action=mpu-create", &[], None);
    assert_eq!(own.status, 200, "{}", String::from_utf8_lossy(&own.body));
}

/// A request for each endpoint the route table serves, with a body that would make it act.
struct Probe {
    method: String,
    path: String,
    content_type: &'static str,
    body: Option<Vec<u8>>,
    scope: &'static str,
    action: Option<&'static str>,
}

impl Probe {
    fn send(&self, api: &Api) -> Reply {
        api.send(&self.method, &self.path, &[("content-type", self.content_type)], self.body.as_deref())
    }
}

/// One [`Probe`] per authenticated endpoint of the route table itself (REST and `?action=`), so
/// that a route added later is probed too. `key` is the key of the open upload `id` (whose
/// part 1 has `etag`); `object` is a stored object.
fn probes(id: &str, etag: &str, key: &str, object: &str) -> Vec<Probe> {
    let mut probes = Vec::new();
    for endpoint in r2mpu_worker::routes::table().endpoints() {
        let Some(scope) = endpoint.scope else {
            // The only routes meant for anyone (SECURITY.md): the upload page (it holds no data;
            // the token is the visitor's own), liveness, the contract and tus discovery.
            assert!(
                !endpoint.public
                    || [("GET", "/"), ("GET", "/healthz"), ("GET", "/openapi.yaml"), ("OPTIONS", "/tus")]
                        .contains(&(endpoint.method.as_str(), &endpoint.path)),
                "{endpoint:?} is public"
            );
            // Any valid token may ask for S3 credentials; S3's own routes check each
            // operation's scope: both refusals are tested in tests/s3.rs.
            continue;
        };
        let on_object = endpoint.path.starts_with("/objects/") || matches!(endpoint.action, Some("get" | "delete"));
        let mut path = endpoint
            .path
            .replace("{uploadId}", id)
            .replace("{partNumber}", "1")
            .replace("{*key}", if on_object { object } else { key });
        if let Some(action) = endpoint.action {
            path.push_str(&format!("?action={action}&uploadId={id}&partNumber=1"));
        }
        let complete = json!({"parts": [{"partNumber": 1, "etag": etag}]}).to_string().into_bytes();
        let (content_type, body) = match (endpoint.method.as_str(), endpoint.action) {
            ("POST", None) if endpoint.path == "/uploads" => {
                ("application/json", Some(json!({"key": format!("{key}.new")}).to_string().into_bytes()))
            }
            ("POST", _) => ("application/json", Some(complete)),
            ("PUT", _) => ("application/octet-stream", Some(b"replacement bytes".to_vec())),
            _ => ("application/json", None),
        };
        let (method, action) = (endpoint.method, endpoint.action);
        probes.push(Probe { method, path, content_type, body, scope: scope.as_str(), action });
    }
    probes
}

#[test]
fn every_route_refuses_a_missing_bad_expired_or_underscoped_token_and_changes_nothing() {
    let worker = Worker::shared();
    let owner = Api::of(worker, "every-route");
    let (key, object) = ("every-route/upload.bin", "every-route/object.bin");
    owner.upload(object, b"the stored object", PART);
    let id = owner.create_id(json!({"key": key}));
    let etag = owner.put_part(&id, 1, b"part one").json()["etag"].as_str().unwrap().to_string();
    let snapshot = || {
        let listing = owner.send("GET", "/objects?prefix=every-route/", &[], None).json();
        (owner.state(&id).json(), owner.object(object, &[]).body, listing)
    };
    let before = snapshot();

    let mut expired = claims("every-route", ALL_SCOPES);
    expired.expires_at = Some(Clock::now_since_epoch() - Duration::from_secs(120));
    let expired = worker.sign(expired);
    let probes = probes(&id, &etag, key, object);
    assert!(probes.len() >= 15, "every authenticated route: 9 REST, 6 actions at least");
    for probe in &probes {
        let others: Vec<&str> = ALL_SCOPES.iter().copied().filter(|s| *s != probe.scope).collect();
        let underscoped = worker.token("every-route", &others);
        for (what, token, status, code) in [
            ("no token", None, 401, "missing_token"),
            ("garbage", Some("garbage"), 401, "invalid_token"),
            ("expired", Some(expired.as_str()), 401, "invalid_token"),
            ("without the scope", Some(underscoped.as_str()), 403, "insufficient_scope"),
        ] {
            let api = Api::new(worker, token.map(str::to_string));
            let reply = probe.send(&api);
            let case = format!("{} {} with {what}", probe.method, probe.path);
            assert_eq!(reply.status, status, "{case}: {}", String::from_utf8_lossy(&reply.body));
            let challenge = reply.header("www-authenticate").unwrap_or_else(|| panic!("{case}: no challenge"));
            assert!(challenge.starts_with("Bearer "), "{case}: {challenge}");
            if probe.method != "HEAD" {
                assert_eq!(reply.code(), code, "{case}");
            }
        }
    }
    assert_eq!(snapshot(), before, "a refused request changed something");
}

#[test]
fn action_protocol_off_answers_every_action_with_404_and_does_nothing() {
    let worker = Worker::start_with(Options { vars: vec![("ACTION_PROTOCOL".into(), "off".into())] });
    let api = Api::of(&worker, "protocol-off");
    let (key, object) = ("protocol-off/upload.bin", "protocol-off/object.bin");
    api.upload(object, b"kept", PART);
    let id = api.create_id(json!({"key": key}));
    let etag = api.put_part(&id, 1, b"part one").json()["etag"].as_str().unwrap().to_string();
    let before = (api.state(&id).json(), api.object(object, &[]).body);

    let actions: Vec<Probe> = probes(&id, &etag, key, object).into_iter().filter(|p| p.action.is_some()).collect();
    assert_eq!(actions.len(), 6);
    for probe in &actions {
        probe.send(&api).assert_problem(404, "not_found");
    }
    assert_eq!((api.state(&id).json(), api.object(object, &[]).body), before);
    // The REST API is untouched by the setting.
    assert_eq!(api.complete(&id, None).status, 200);
    assert_eq!(api.object(key, &[]).body, b"part one");
}

/// What every `500` says, whatever broke: the code, and nothing about R2, Durable Objects,
/// bindings or configuration, which are logged instead.
fn assert_opaque_500(reply: &Reply, case: &str) {
    assert_eq!(reply.status, 500, "{case}: {}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.header("content-type"), Some("application/problem+json"), "{case}");
    if !reply.body.is_empty() {
        let expected = json!({
            "type": "urn:r2mpu:error:internal", "title": "internal", "status": 500,
            "detail": "internal error", "code": "internal",
        });
        assert_eq!(reply.json(), expected, "{case}");
    }
}

#[test]
fn a_500_says_internal_and_nothing_about_the_configuration_r2_or_durable_objects() {
    let id = "0123456789abcdef0123456789abcdef";
    // A broken key set fails every authenticated route; the log shows why. (Without fault
    // injection a test cannot make R2 or a Durable Object fail: variables do not shadow their
    // bindings, and a malformed MAX_PART_SIZE breaks `/healthz`, so the Worker never starts.)
    let broken: [(&str, &str, &str); 2] = [
        ("AUTH_JWKS", "", "AUTH_JWKS is not a JWK Set"),
        (
            "AUTH_JWKS",
            r#"{"keys":[{"kty":"oct","kid":"short","k":"c2hvcnQ"}]}"#,
            "an HS256 secret needs at least 32 bytes",
        ),
    ];
    for (name, value, logged) in broken {
        let worker = Worker::start_with(Options { vars: vec![(name.to_string(), value.to_string())] });
        let api = Api::of(&worker, "broken");
        for probe in probes(id, "etag", "broken/upload.bin", "broken/object.bin") {
            let case = format!("{name}: {} {}", probe.method, probe.path);
            assert_opaque_500(&probe.send(&api), &case);
        }
        // wrangler writes workerd's console a moment later.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !worker.log_tail().contains(logged) {
            assert!(std::time::Instant::now() < deadline, "{name}: the cause is logged:\n{}", worker.log_tail());
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}
