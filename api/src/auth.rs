//! What a token may carry besides the registered JWT claims, and the scopes routes require.

use serde::{Deserialize, Serialize};

/// A permission a route requires and a token grants in its space-separated `scope` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Create, feed, inspect, complete and abort uploads.
    UploadsWrite,
    /// Read and list objects.
    ObjectsRead,
    /// Delete objects.
    ObjectsDelete,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::UploadsWrite, Scope::ObjectsRead, Scope::ObjectsDelete];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::UploadsWrite => "uploads:write",
            Scope::ObjectsRead => "objects:read",
            Scope::ObjectsDelete => "objects:delete",
        }
    }

    /// Reads a `scope` claim; names it does not know are ignored, as RFC 8693 suggests.
    pub fn parse_claim(claim: &str) -> Vec<Scope> {
        claim.split_ascii_whitespace().filter_map(|name| Scope::ALL.into_iter().find(|s| s.as_str() == name)).collect()
    }
}

/// The claims r2mpu reads beyond `sub`, `exp`, `nbf`, `iss` and `aud`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Space-separated scopes, e.g. `"uploads:write objects:read"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// When present, every key the token touches must start with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// A JSON Web Key (RFC 7517) as r2mpu reads and writes them: Ed25519 (`OKP`), P-256 (`EC`) or
/// HMAC (`oct`). Members are base64url without padding. `d` is the private half; the Worker
/// ignores it, the CLI signs with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<String>,
}

/// A JWK Set: the value of the Worker's `AUTH_JWKS` secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    /// The same set without private halves (`d`, and `oct` keys, which are all secret).
    pub fn public(&self) -> JwkSet {
        let keys = self.keys.iter().filter(|k| k.kty != "oct").map(|k| Jwk { d: None, ..k.clone() }).collect();
        JwkSet { keys }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_claims_are_space_separated_and_unknown_names_are_ignored() {
        assert_eq!(
            Scope::parse_claim("objects:read  uploads:write admin"),
            vec![Scope::ObjectsRead, Scope::UploadsWrite]
        );
        assert!(Scope::parse_claim("").is_empty());
    }
}
