//! Bearer-token authentication: JWTs verified against the JWK Set in the `AUTH_JWKS` secret.
//!
//! Keys are chosen by the token's `kid` (or, without one, the set must hold a single key), and a
//! key only verifies the algorithm of its own type, so `alg: none` or an HS256 token "signed"
//! with a public key never passes. `exp` is required; `exp`/`nbf` are checked with
//! [`CLOCK_SKEW_SECS`] of leeway against the runtime's clock.
//!
//! Every part of an upload carries the same token, so a token that verified is remembered by
//! its isolate until its `exp` ([`Accepted`]): the signature is checked once, not per request.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use jwt_simple::prelude::*;
use jwt_simple::reexports::ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use r2mpu_api::auth::{Jwk, JwkSet, Scope, TokenClaims};

use crate::error::{ApiError, ApiResult};

/// The `reason` of an [`ApiError::InvalidToken`] whose token is past its `exp` (S3 calls it
/// `ExpiredToken`).
pub const EXPIRED: &str = "the token has expired";

/// Leeway for clock differences between the token issuer and Cloudflare.
pub const CLOCK_SKEW_SECS: u64 = 30;

/// Who is calling, once their token has been verified. Handlers that need a caller take one as
/// a parameter; the route table is the only thing that makes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub scopes: Vec<Scope>,
    pub prefix: Option<String>,
    /// The token's `exp`, in seconds since the epoch: credentials derived from the token
    /// (`POST /credentials`) expire with it.
    pub expires: u64,
}

impl Claims {
    pub fn require(&self, scope: Scope) -> ApiResult<()> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(ApiError::InsufficientScope { scope: scope.as_str().into() })
        }
    }

    /// Refuses keys outside the token's `prefix` claim.
    pub fn check_key(&self, key: &str) -> ApiResult<()> {
        match &self.prefix {
            Some(prefix) if !key.starts_with(prefix.as_str()) => {
                Err(ApiError::KeyOutsidePrefix { prefix: prefix.clone() })
            }
            _ => Ok(()),
        }
    }
}

enum VerifyingKey {
    Ed25519(Ed25519PublicKey),
    Es256(ES256PublicKey),
    Hs256(HS256Key),
}

/// The keys of `AUTH_JWKS` and the `iss`/`aud` a token must carry, and the tokens they accepted.
pub struct Verifier {
    keys: Vec<(Option<String>, VerifyingKey)>,
    options: VerificationOptions,
    accepted: RefCell<Accepted>,
}

/// Tokens this verifier accepted, by the SHA-256 of the whole token (signature included, so a
/// token that differs from an accepted one in any byte is verified afresh), with their claims.
/// An entry answers only while its `exp`, with the leeway, has not passed; past it, the token
/// is verified again (and refused). Refusals are never kept. It lives and dies with its
/// [`Verifier`], so a changed `AUTH_JWKS` (a key removed) starts empty.
#[derive(Default)]
struct Accepted(HashMap<[u8; 32], Claims>);

/// At most this many tokens are remembered per isolate: a full cache drops its expired entries,
/// and everything if none had expired.
const MAX_ACCEPTED: usize = 1024;

impl Accepted {
    fn get(&mut self, digest: &[u8; 32], now: u64) -> Option<Claims> {
        let claims = self.0.get(digest)?;
        if now < claims.expires.saturating_add(CLOCK_SKEW_SECS) {
            return Some(claims.clone());
        }
        self.0.remove(digest);
        None
    }

    fn insert(&mut self, digest: [u8; 32], claims: Claims, now: u64) {
        if self.0.len() >= MAX_ACCEPTED {
            self.0.retain(|_, c| now < c.expires.saturating_add(CLOCK_SKEW_SECS));
            if self.0.len() >= MAX_ACCEPTED {
                self.0.clear();
            }
        }
        self.0.insert(digest, claims);
    }
}

thread_local! {
    /// The verifier for the configuration last seen: parsed once per isolate, not per request.
    static CACHED: std::cell::RefCell<Option<(String, std::rc::Rc<Verifier>)>> = const { std::cell::RefCell::new(None) };
}

impl Verifier {
    /// [`Verifier::new`], reused while `AUTH_JWKS`, `AUTH_ISSUER` and `AUTH_AUDIENCE` stay the same.
    pub fn cached(jwks: &str, issuer: Option<&str>, audience: Option<&str>) -> Result<std::rc::Rc<Verifier>, String> {
        let config = format!("{jwks}\n{issuer:?}\n{audience:?}");
        if let Some(verifier) = CACHED.with_borrow(|c| c.as_ref().filter(|(k, _)| *k == config).map(|(_, v)| v.clone()))
        {
            return Ok(verifier);
        }
        let verifier = std::rc::Rc::new(Verifier::new(jwks, issuer, audience)?);
        CACHED.with_borrow_mut(|c| *c = Some((config, verifier.clone())));
        Ok(verifier)
    }

    /// Parses a JWK Set. Any key it cannot use is a configuration error, reported whole.
    pub fn new(jwks: &str, issuer: Option<&str>, audience: Option<&str>) -> Result<Verifier, String> {
        let set: JwkSet = serde_json::from_str(jwks).map_err(|e| format!("AUTH_JWKS is not a JWK Set: {e}"))?;
        if set.keys.is_empty() {
            return Err("AUTH_JWKS holds no keys".into());
        }
        let keys = set
            .keys
            .iter()
            .map(|jwk| Ok((jwk.kid.clone(), verifying_key(jwk)?)))
            .collect::<Result<Vec<_>, String>>()?;
        let options = VerificationOptions {
            time_tolerance: Some(Duration::from_secs(CLOCK_SKEW_SECS)),
            allowed_issuers: issuer.map(|i| HashSet::from([i.to_string()])),
            allowed_audiences: audience.map(|a| HashSet::from([a.to_string()])),
            max_token_length: Some(8 * 1024),
            ..Default::default()
        };
        Ok(Verifier { keys, options, accepted: RefCell::default() })
    }

    /// Verifies `token` and returns its claims: from [`Accepted`] while this isolate holds them,
    /// else by its signature and claims.
    pub fn verify(&self, token: &str) -> ApiResult<Claims> {
        let digest = hmac_sha256::Hash::hash(token.as_bytes());
        let now = Clock::now_since_epoch().as_secs();
        if let Some(claims) = self.accepted.borrow_mut().get(&digest, now) {
            return Ok(claims);
        }
        let claims = self.verify_signed(token)?;
        self.accepted.borrow_mut().insert(digest, claims.clone(), now);
        Ok(claims)
    }

    /// Checks `token`'s signature against the key its `kid` names, then its claims.
    fn verify_signed(&self, token: &str) -> ApiResult<Claims> {
        let invalid = |reason: &str| ApiError::InvalidToken { reason: reason.into() };
        let metadata = Token::decode_metadata(token).map_err(|_| invalid("malformed token"))?;
        let key = match metadata.key_id() {
            Some(kid) => self.keys.iter().find(|(k, _)| k.as_deref() == Some(kid)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        };
        let (_, key) = key.ok_or_else(|| invalid("unknown key id"))?;
        let options = Some(self.options.clone());
        let verified = match key {
            VerifyingKey::Ed25519(k) => k.verify_token::<TokenClaims>(token, options),
            VerifyingKey::Es256(k) => k.verify_token::<TokenClaims>(token, options),
            VerifyingKey::Hs256(k) => k.verify_token::<TokenClaims>(token, options),
        };
        let claims = verified.map_err(|e| invalid(&describe(&e)))?;
        let expires = claims.expires_at.ok_or_else(|| invalid("the token has no exp"))?.as_secs();
        let sub = claims.subject.filter(|s| !s.is_empty()).ok_or_else(|| invalid("the token has no sub"))?;
        let custom = claims.custom;
        let scopes = Scope::parse_claim(custom.scope.as_deref().unwrap_or(""));
        Ok(Claims { sub, scopes, prefix: custom.prefix, expires })
    }
}

/// Reads the token out of `Authorization: Bearer <token>`.
pub fn bearer(header: Option<&str>) -> ApiResult<&str> {
    let header = header.ok_or(ApiError::MissingToken)?;
    let (scheme, token) = header.trim().split_once(' ').ok_or(ApiError::MissingToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::MissingToken);
    }
    Ok(token.trim())
}

fn verifying_key(jwk: &Jwk) -> Result<VerifyingKey, String> {
    let name = jwk.kid.as_deref().unwrap_or("(no kid)");
    let member = |value: &Option<String>, member: &str| -> Result<Vec<u8>, String> {
        let text = value.as_deref().ok_or_else(|| format!("key {name}: missing `{member}`"))?;
        Base64UrlSafeNoPadding::decode_to_vec(text, None)
            .map_err(|_| format!("key {name}: `{member}` is not base64url"))
    };
    let check_alg = |expected: &str| match jwk.alg.as_deref() {
        Some(alg) if alg != expected => Err(format!("key {name}: alg {alg} does not fit a {} key", jwk.kty)),
        _ => Ok(()),
    };
    let bad = |e: jwt_simple::Error| format!("key {name}: {e}");
    match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("OKP", Some("Ed25519")) => {
            check_alg("EdDSA")?;
            Ed25519PublicKey::from_bytes(&member(&jwk.x, "x")?).map(VerifyingKey::Ed25519).map_err(bad)
        }
        ("EC", Some("P-256")) => {
            check_alg("ES256")?;
            let mut sec1 = vec![0x04];
            sec1.extend(member(&jwk.x, "x")?);
            sec1.extend(member(&jwk.y, "y")?);
            ES256PublicKey::from_bytes(&sec1).map(VerifyingKey::Es256).map_err(bad)
        }
        ("oct", _) => {
            check_alg("HS256")?;
            let secret = member(&jwk.k, "k")?;
            if secret.len() < 32 {
                return Err(format!("key {name}: an HS256 secret needs at least 32 bytes"));
            }
            Ok(VerifyingKey::Hs256(HS256Key::from_bytes(&secret)))
        }
        (kty, crv) => Err(format!("key {name}: unsupported key type {kty} {}", crv.unwrap_or(""))),
    }
}

/// A short reason for the client: enough to fix their token, nothing about our keys.
fn describe(error: &jwt_simple::Error) -> String {
    use jwt_simple::JWTError;
    match error.downcast_ref::<JWTError>() {
        Some(JWTError::TokenHasExpired) => EXPIRED.into(),
        Some(JWTError::TokenNotValidYet) | Some(JWTError::ClockDrift) => "the token is not valid yet".into(),
        Some(JWTError::RequiredIssuerMismatch) | Some(JWTError::RequiredIssuerMissing) => "wrong issuer".into(),
        Some(JWTError::RequiredAudienceMismatch) | Some(JWTError::RequiredAudienceMissing) => "wrong audience".into(),
        Some(JWTError::AlgorithmMismatch) => "the token's alg does not match its key".into(),
        _ => "signature or encoding is invalid".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jwt_simple::reexports::ct_codecs::Encoder;

    fn b64(bytes: &[u8]) -> String {
        Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap()
    }

    struct Keys {
        ed: Ed25519KeyPair,
        es: ES256KeyPair,
        hs: HS256Key,
        jwks: String,
    }

    fn keys() -> Keys {
        let ed = Ed25519KeyPair::generate().with_key_id("ed");
        let es = ES256KeyPair::generate().with_key_id("es");
        let hs = HS256Key::from_bytes(&[7u8; 32]).with_key_id("hs");
        let point = es.public_key().public_key().to_bytes_uncompressed();
        let jwks = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(&ed.public_key().to_bytes())},
            {"kty": "EC", "crv": "P-256", "kid": "es", "alg": "ES256", "x": b64(&point[1..33]), "y": b64(&point[33..])},
            {"kty": "oct", "kid": "hs", "k": b64(&[7u8; 32])},
        ]});
        Keys { ed, es, hs, jwks: jwks.to_string() }
    }

    fn claims(scope: &str) -> JWTClaims<TokenClaims> {
        jwt_simple::prelude::Claims::with_custom_claims(
            TokenClaims { scope: Some(scope.into()), prefix: Some("p/".into()) },
            Duration::from_mins(5),
        )
        .with_subject("alice")
    }

    #[test]
    fn each_key_type_verifies_its_own_tokens() {
        let k = keys();
        let verifier = Verifier::new(&k.jwks, None, None).unwrap();
        for token in [
            k.ed.sign(claims("uploads:write")).unwrap(),
            k.es.sign(claims("uploads:write")).unwrap(),
            k.hs.authenticate(claims("uploads:write")).unwrap(),
        ] {
            let got = verifier.verify(&token).unwrap();
            let expires = got.expires;
            assert!(expires.abs_diff(Clock::now_since_epoch().as_secs() + 300) < 5, "{expires}");
            let scopes = vec![Scope::UploadsWrite];
            assert_eq!(got, super::Claims { sub: "alice".into(), scopes, prefix: Some("p/".into()), expires });
        }
    }

    #[test]
    fn unknown_kids_expired_and_unsigned_tokens_fail() {
        let k = keys();
        let verifier = Verifier::new(&k.jwks, None, None).unwrap();
        let stranger = Ed25519KeyPair::generate().with_key_id("other");
        assert!(verifier.verify(&stranger.sign(claims("x")).unwrap()).is_err());
        let mut old = claims("x");
        old.expires_at = Some(Clock::now_since_epoch() - Duration::from_secs(CLOCK_SKEW_SECS + 60));
        assert!(
            matches!(verifier.verify(&k.ed.sign(old).unwrap()), Err(ApiError::InvalidToken { reason }) if reason.contains("expired"))
        );
        let none =
            format!("{}.{}.", b64(br#"{"alg":"none","kid":"ed"}"#), b64(br#"{"sub":"alice","exp":99999999999}"#));
        assert!(verifier.verify(&none).is_err());
        let mut forever = claims("x");
        forever.expires_at = None;
        assert!(verifier.verify(&k.ed.sign(forever).unwrap()).is_err());
    }

    #[test]
    fn an_accepted_token_answers_from_the_cache_only_until_its_exp() {
        let k = keys();
        let verifier = Verifier::new(&k.jwks, None, None).unwrap();
        let token = k.ed.sign(claims("uploads:write")).unwrap();
        let got = verifier.verify(&token).unwrap();
        let digest = hmac_sha256::Hash::hash(token.as_bytes());
        let mut accepted = verifier.accepted.borrow_mut();
        assert_eq!(accepted.get(&digest, got.expires), Some(got.clone()));
        assert_eq!(accepted.get(&digest, got.expires + CLOCK_SKEW_SECS), None, "past exp and the leeway");
        assert!(accepted.0.is_empty(), "the expired entry is dropped");
    }

    #[test]
    fn refused_tokens_are_never_remembered_and_the_cache_stays_bounded() {
        let k = keys();
        let verifier = Verifier::new(&k.jwks, None, None).unwrap();
        let stranger = Ed25519KeyPair::generate().with_key_id("ed");
        assert!(verifier.verify(&stranger.sign(claims("x")).unwrap()).is_err());
        assert!(verifier.accepted.borrow().0.is_empty());
        let mut accepted = Accepted::default();
        let one = super::Claims { sub: "a".into(), scopes: vec![], prefix: None, expires: 100 };
        for n in 0..=MAX_ACCEPTED as u32 {
            let mut digest = [0u8; 32];
            digest[..4].copy_from_slice(&n.to_le_bytes());
            accepted.insert(digest, one.clone(), 50);
        }
        assert!(accepted.0.len() <= MAX_ACCEPTED, "{}", accepted.0.len());
    }

    #[test]
    fn issuer_and_audience_are_enforced_when_configured() {
        let k = keys();
        let verifier = Verifier::new(&k.jwks, Some("iss-a"), Some("aud-a")).unwrap();
        let right = claims("x").with_issuer("iss-a").with_audience("aud-a");
        let wrong = claims("x").with_issuer("iss-b").with_audience("aud-a");
        assert!(verifier.verify(&k.ed.sign(right).unwrap()).is_ok());
        assert!(verifier.verify(&k.ed.sign(wrong).unwrap()).is_err());
        assert!(verifier.verify(&k.ed.sign(claims("x")).unwrap()).is_err());
    }

    #[test]
    fn bad_jwks_are_configuration_errors() {
        assert!(Verifier::new("{}", None, None).is_err());
        assert!(Verifier::new(r#"{"keys":[]}"#, None, None).is_err());
        assert!(Verifier::new(r#"{"keys":[{"kty":"oct","k":"c2hvcnQ"}]}"#, None, None).is_err());
        assert!(Verifier::new(r#"{"keys":[{"kty":"RSA","n":"AQAB"}]}"#, None, None).is_err());
    }

    #[test]
    fn bearer_headers_are_parsed_case_insensitively() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Ok("abc"));
        assert_eq!(bearer(Some("Basic abc")), Err(ApiError::MissingToken));
        assert_eq!(bearer(None), Err(ApiError::MissingToken));
    }

    #[test]
    fn scopes_and_prefixes_gate_access() {
        let c =
            super::Claims { sub: "a".into(), scopes: vec![Scope::ObjectsRead], prefix: Some("a/".into()), expires: 0 };
        assert!(c.require(Scope::ObjectsRead).is_ok());
        assert!(matches!(c.require(Scope::UploadsWrite), Err(ApiError::InsufficientScope { .. })));
        assert!(c.check_key("a/x").is_ok());
        assert!(matches!(c.check_key("b/x"), Err(ApiError::KeyOutsidePrefix { .. })));
    }
}
