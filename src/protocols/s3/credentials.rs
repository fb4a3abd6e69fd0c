//! S3 credentials made from a bearer token, stored nowhere: `POST /credentials` answers them,
//! and [`super::auth`] re-derives them from the session token of every signed request.
//!
//! As R2's own temporary credentials are built: the session token *is* the JWT (so its `sub`,
//! `scope`, `prefix` and `exp` carry over), and the secret key is an HMAC, under a key only the
//! Worker holds (`S3_CREDENTIALS_KEY`), of that token. Nothing can be revoked but by the JWT's
//! own expiry; rotating `S3_CREDENTIALS_KEY` invalidates every credential at once.

use r2mpu_api::time::rfc3339;
use r2mpu_api::types::S3Credentials;
use worker::Response;

use crate::error::{internal, ApiResult};
use crate::hex::hex;
use crate::http::auth::Claims;
use crate::http::{json, Ctx};

/// The Worker secret the credentials are derived with (at least 32 bytes).
pub const KEY_VAR: &str = "S3_CREDENTIALS_KEY";

/// The access key id and secret key a session token derives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// `R2MPU` and 15 hex digits: 20 characters, as AWS's own.
    pub access_key_id: String,
    /// 40 hex digits (160 bits).
    pub secret_access_key: String,
}

/// The credentials `token` derives under `key`.
pub fn derive(key: &[u8], token: &str) -> Derived {
    let mac = |label: &str| hex(&hmac_sha256::HMAC::mac(format!("r2mpu s3 {label}\0{token}"), key));
    Derived {
        access_key_id: format!("R2MPU{}", mac("access key id")[..15].to_ascii_uppercase()),
        secret_access_key: mac("secret access key")[..40].to_string(),
    }
}

/// The derivation key, from the Worker's secrets; a missing or short one is a deployment
/// mistake (logged `500`).
pub fn key(cx: &Ctx) -> ApiResult<Vec<u8>> {
    match cx.env.var(KEY_VAR).map(|v| v.to_string()) {
        Ok(key) if key.len() >= 32 => Ok(key.into_bytes()),
        Ok(_) => Err(internal("configuration", format!("{KEY_VAR} must be at least 32 characters"))),
        Err(_) => Err(internal("configuration", format!("{KEY_VAR} is not set"))),
    }
}

/// `createCredentials`: the caller's bearer token as S3 credentials, valid until it expires.
pub async fn issue(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let token = cx.bearer_token()?;
    let derived = derive(&key(&cx)?, &token);
    json(
        200,
        &S3Credentials {
            version: 1,
            access_key_id: derived.access_key_id,
            secret_access_key: derived.secret_access_key,
            session_token: token,
            expiration: rfc3339(claims.expires * 1000),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_a_function_of_the_token_and_the_key() {
        let key = [7u8; 32];
        let one = derive(&key, "token-one");
        assert_eq!(one, derive(&key, "token-one"));
        assert_eq!(one.access_key_id.len(), 20);
        assert!(one.access_key_id.starts_with("R2MPU"));
        assert_eq!(one.secret_access_key.len(), 40);
        assert_ne!(one, derive(&key, "token-two"));
        assert_ne!(one, derive(&[8u8; 32], "token-one"));
    }
}
