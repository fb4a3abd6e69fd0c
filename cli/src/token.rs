//! `r2mpu token` and `r2mpu keygen`: development tokens signed with a private JWK Set, and the
//! key pair to make them with. The Worker only ever sees the public half (`AUTH_JWKS`).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use jwt_simple::prelude::*;
use jwt_simple::reexports::ct_codecs::{Base64UrlSafeNoPadding, Decoder, Encoder};
use r2mpu_api::auth::{Jwk, JwkSet, Scope, TokenClaims};

use crate::error::{Error, Result};
use crate::etag;

/// What goes into a token besides the time claims.
pub struct Grant {
    pub sub: String,
    pub scopes: Vec<Scope>,
    pub prefix: Option<String>,
    pub ttl: std::time::Duration,
}

/// Reads a JWK Set file.
pub fn read_jwks(path: &Path) -> Result<JwkSet> {
    let text =
        fs::read_to_string(path).map_err(|e| Error::io(format!("reading the key file {}", path.display()), e))?;
    serde_json::from_str(&text).map_err(|e| Error::Usage(format!("{} is not a JWK Set: {e}", path.display())))
}

/// Signs a token for `grant` with the key `kid` of `set` (or its first private key), with
/// `iat` and `nbf` now, `exp` after the TTL, and the key's `kid` in the header: EdDSA for an
/// `OKP` Ed25519 key, ES256 for an `EC` P-256 key, HS256 for an `oct` key.
pub fn mint(set: &JwkSet, kid: Option<&str>, grant: &Grant) -> Result<String> {
    let jwk = signing_key(set, kid)?;
    let scope = grant.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ");
    let custom = TokenClaims { scope: Some(scope), prefix: grant.prefix.clone() };
    let claims = Claims::with_custom_claims(custom, Duration::from_secs(grant.ttl.as_secs())).with_subject(&grant.sub);
    let name = jwk.kid.as_deref().unwrap_or("(no kid)");
    let unusable = |e: jwt_simple::Error| Error::Usage(format!("key {name} cannot sign: {e}"));
    let as_json = || serde_json::to_string(jwk).expect("a JWK serializes");
    let token = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("OKP", Some("Ed25519")) => Ed25519KeyPair::from_jwk(&as_json()).map_err(unusable)?.sign(claims),
        ("EC", Some("P-256")) => ES256KeyPair::from_jwk(&as_json()).map_err(unusable)?.sign(claims),
        ("oct", _) => {
            let secret = jwk.k.as_deref().unwrap_or_default();
            let secret = Base64UrlSafeNoPadding::decode_to_vec(secret, None)
                .map_err(|_| Error::Usage(format!("key {name}: `k` is not base64url")))?;
            let key = HS256Key::from_bytes(&secret);
            let key = match &jwk.kid {
                Some(kid) => key.with_key_id(kid),
                None => key,
            };
            key.authenticate(claims)
        }
        (kty, crv) => {
            return Err(Error::Usage(format!("key {name}: cannot sign with a {kty} {} key", crv.unwrap_or(""))))
        }
    };
    token.map_err(unusable)
}

/// The key named `kid`, or the first key with a private half.
fn signing_key<'a>(set: &'a JwkSet, kid: Option<&str>) -> Result<&'a Jwk> {
    let private = |k: &&Jwk| k.d.is_some() || (k.kty == "oct" && k.k.is_some());
    match kid {
        Some(kid) => {
            let key = set.keys.iter().find(|k| k.kid.as_deref() == Some(kid));
            let key = key.ok_or_else(|| Error::Usage(format!("the key file has no key with kid `{kid}`")))?;
            Some(key).filter(private).ok_or_else(|| Error::Usage(format!("key `{kid}` has no private half (`d`)")))
        }
        None => set.keys.iter().find(private).ok_or_else(|| {
            Error::Usage("the key file holds no private key (`d`, or `k` for an oct key); is it the public set?".into())
        }),
    }
}

/// A new Ed25519 key with a random `kid`, as a private JWK Set.
pub fn keygen() -> Result<JwkSet> {
    let mut kid = [0u8; 8];
    getrandom::fill(&mut kid).map_err(|e| Error::Io(format!("no randomness for the key id: {e}")))?;
    let pair = Ed25519KeyPair::generate();
    let bytes = pair.to_bytes();
    let (seed, public) = bytes.split_at(32);
    let b64 = |bytes: &[u8]| Base64UrlSafeNoPadding::encode_to_string(bytes).expect("base64url of a key fits");
    let jwk = Jwk {
        kty: "OKP".into(),
        kid: Some(etag::hex(&kid)),
        alg: Some("EdDSA".into()),
        use_: Some("sig".into()),
        crv: Some("Ed25519".into()),
        x: Some(b64(public)),
        d: Some(b64(seed)),
        ..Jwk::default()
    };
    Ok(JwkSet { keys: vec![jwk] })
}

/// Writes a private JWK Set readable by its owner only, refusing to replace a file unless `force`.
pub fn write_private(path: &Path, set: &JwkSet, force: bool) -> Result<()> {
    let mut options = OpenOptions::new();
    options.write(true);
    match force {
        true => options.create(true).truncate(true),
        false => options.create_new(true),
    };
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let failed = |e| Error::io(format!("writing {}", path.display()), e);
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            Error::Usage(format!("{} exists; pass --force to replace it", path.display()))
        }
        _ => failed(e),
    })?;
    // `mode` applies only to a file created now; a replaced one keeps its old permissions.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600)).map_err(failed)?;
    let mut text = serde_json::to_string_pretty(set).expect("a JWK Set serializes");
    text.push('\n');
    file.write_all(text.as_bytes()).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant {
            sub: "alice".into(),
            scopes: Scope::ALL.to_vec(),
            prefix: Some("alice/".into()),
            ttl: std::time::Duration::from_secs(3600),
        }
    }

    fn b64(bytes: &[u8]) -> String {
        Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap()
    }

    fn x(jwk: &Jwk) -> Vec<u8> {
        Base64UrlSafeNoPadding::decode_to_vec(jwk.x.as_deref().unwrap(), None).unwrap()
    }

    fn assert_claims(claims: &JWTClaims<TokenClaims>) {
        assert_eq!(claims.subject.as_deref(), Some("alice"));
        assert_eq!(claims.custom.scope.as_deref(), Some("uploads:write objects:read objects:delete"));
        assert_eq!(claims.custom.prefix.as_deref(), Some("alice/"));
        let iat = claims.issued_at.unwrap();
        assert_eq!(claims.invalid_before, Some(iat));
        assert_eq!(claims.expires_at, Some(iat + Duration::from_secs(3600)));
    }

    #[test]
    fn a_generated_key_mints_eddsa_tokens_its_public_half_verifies() {
        let set = keygen().unwrap();
        let jwk = &set.keys[0];
        let kid = jwk.kid.clone().unwrap();
        assert_eq!(kid.len(), 16);
        let token = mint(&set, None, &grant()).unwrap();

        let public = set.public();
        assert_eq!(public.keys[0].d, None);
        let key = Ed25519PublicKey::from_bytes(&x(&public.keys[0])).unwrap();
        let claims = key.verify_token::<TokenClaims>(&token, None).unwrap();
        assert_claims(&claims);
        let metadata = Token::decode_metadata(&token).unwrap();
        assert_eq!(metadata.key_id(), Some(kid.as_str()));
        assert_eq!(metadata.algorithm(), "EdDSA");
        // Another key's signature does not pass.
        let other = keygen().unwrap();
        let other_key = Ed25519PublicKey::from_bytes(&x(&other.keys[0])).unwrap();
        assert!(other_key.verify_token::<TokenClaims>(&token, None).is_err());
    }

    #[test]
    fn es256_and_hs256_keys_sign_with_their_own_algorithms() {
        let es = ES256KeyPair::generate();
        let point = es.public_key().public_key().to_bytes_uncompressed();
        let secret = [9u8; 32];
        let set = JwkSet {
            keys: vec![
                Jwk {
                    kty: "EC".into(),
                    kid: Some("es".into()),
                    crv: Some("P-256".into()),
                    x: Some(b64(&point[1..33])),
                    y: Some(b64(&point[33..])),
                    d: Some(b64(&es.to_bytes())),
                    ..Jwk::default()
                },
                Jwk { kty: "oct".into(), kid: Some("hs".into()), k: Some(b64(&secret)), ..Jwk::default() },
            ],
        };
        let token = mint(&set, Some("es"), &grant()).unwrap();
        assert_claims(&es.public_key().verify_token::<TokenClaims>(&token, None).unwrap());
        assert_eq!(Token::decode_metadata(&token).unwrap().key_id(), Some("es"));

        let token = mint(&set, Some("hs"), &grant()).unwrap();
        assert_claims(&HS256Key::from_bytes(&secret).verify_token::<TokenClaims>(&token, None).unwrap());
        assert_eq!(Token::decode_metadata(&token).unwrap().algorithm(), "HS256");
    }

    #[test]
    fn public_keys_and_unknown_kids_cannot_sign() {
        let set = keygen().unwrap();
        assert!(matches!(mint(&set.public(), None, &grant()), Err(Error::Usage(_))));
        assert!(matches!(mint(&set, Some("nope"), &grant()), Err(Error::Usage(_))));
    }

    #[test]
    fn the_private_key_file_is_owner_only_and_not_replaced_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.json");
        let set = keygen().unwrap();
        write_private(&path, &set, false).unwrap();
        assert_eq!(read_jwks(&path).unwrap(), set);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(matches!(write_private(&path, &keygen().unwrap(), false), Err(Error::Usage(_))));
        assert_eq!(read_jwks(&path).unwrap(), set);
        write_private(&path, &keygen().unwrap(), true).unwrap();
        assert_ne!(read_jwks(&path).unwrap(), set);
    }
}
