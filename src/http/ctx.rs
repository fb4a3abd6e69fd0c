//! [`Ctx`]: one request on its way through a handler: its parameters, headers, JSON body
//! (parsed and validated in one step) and the configuration.

use std::collections::BTreeMap;
use std::rc::Rc;

use futures_util::StreamExt;
use percent_encoding::percent_decode_str;
use r2mpu_api::key::check_key;
use r2mpu_api::types::MAX_JSON_BODY;
use serde::de::DeserializeOwned;
use validator::{Validate, ValidationErrors};
use worker::{Env, Request};

use crate::config::Config;
use crate::error::{internal, ApiError, ApiResult, OrInternal};
use crate::faults::Faults;
use crate::http::auth::{bearer, Claims, Verifier};

pub type Params = Vec<(String, String)>;

/// One request on its way through a handler.
pub struct Ctx {
    pub req: Request,
    pub env: Env,
    pub config: Rc<Config>,
    params: Params,
}

impl Ctx {
    pub(super) fn new(req: Request, env: Env, config: Rc<Config>, params: Params) -> Ctx {
        Ctx { req, env, config, params }
    }

    /// A path parameter, still percent-encoded. The table guarantees declared names exist.
    pub fn param(&self, name: &str) -> &str {
        self.params.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }

    /// The `{*key}` path parameter, percent-decoded, checked against the key rules and the
    /// token's prefix.
    pub fn key(&self, claims: &Claims) -> ApiResult<String> {
        let key = percent_decode_str(self.param("key"))
            .decode_utf8()
            .map_err(|_| ApiError::InvalidKey { reason: "the key is not UTF-8".into() })?
            .into_owned();
        check_key(&key).map_err(|reason| ApiError::InvalidKey { reason })?;
        claims.check_key(&key)?;
        Ok(key)
    }

    /// A query parameter, decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        query_param(&self.req, name)
    }

    /// The body's media type without parameters, lower-cased (`application/json`), if any.
    pub fn media_type(&self) -> Option<String> {
        let header = self.header("content-type")?;
        Some(header.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
    }

    /// The R2 bucket objects land in.
    pub fn bucket(&self) -> ApiResult<worker::Bucket> {
        self.env.bucket("BUCKET").or_internal("BUCKET binding")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.req.headers().get(name).ok().flatten()
    }

    /// The failures the request asks to have injected (test builds only; none otherwise).
    pub fn faults(&self) -> Faults {
        Faults::of(&self.req)
    }

    pub(super) fn authenticate(&self) -> ApiResult<Claims> {
        let header = self.header("authorization");
        self.verify_token(bearer(header.as_deref())?)
    }

    /// The request's bearer token, as sent (`POST /credentials` hands it on).
    pub fn bearer_token(&self) -> ApiResult<String> {
        let header = self.header("authorization");
        bearer(header.as_deref()).map(str::to_string)
    }

    /// Verifies a JWT against `AUTH_JWKS` as a bearer token is, wherever the request carried it
    /// (S3's session token).
    pub fn verify_token(&self, token: &str) -> ApiResult<Claims> {
        let jwks = self
            .env
            .var("AUTH_JWKS")
            .map(|v| v.to_string())
            .map_err(|_| internal("configuration", "AUTH_JWKS is not set"))?;
        let verifier = Verifier::cached(&jwks, self.config.issuer.as_deref(), self.config.audience.as_deref())
            .map_err(|e| internal("configuration", e))?;
        verifier.verify(token)
    }

    /// Reads, parses and validates a JSON body, refusing it at the door if it is not JSON or is
    /// larger than [`MAX_JSON_BODY`]. An empty body reads as `T::default()` when `optional`.
    async fn read_json<T>(&mut self, optional: bool) -> ApiResult<T>
    where
        T: DeserializeOwned + Validate + Default,
    {
        let bytes = self.read_bounded(MAX_JSON_BODY).await?;
        if bytes.is_empty() && optional {
            return Ok(T::default());
        }
        if self.media_type().as_deref() != Some("application/json") {
            return Err(ApiError::UnsupportedMediaType { accept: "application/json".into() });
        }
        // Every body the API reads is an object; serde would also take a struct as an array.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::InvalidJson { reason: "the body must be a JSON object".into() });
        }
        let value: T = serde_json::from_slice(&bytes).map_err(|e| ApiError::InvalidJson { reason: e.to_string() })?;
        value.validate().map_err(validation_error)?;
        Ok(value)
    }

    pub async fn json<T: DeserializeOwned + Validate + Default>(&mut self) -> ApiResult<T> {
        self.read_json(false).await
    }

    pub async fn json_or_default<T: DeserializeOwned + Validate + Default>(&mut self) -> ApiResult<T> {
        self.read_json(true).await
    }

    /// The whole body, refused with `413 body_too_large` past `limit` bytes.
    pub async fn read_bounded(&mut self, limit: u64) -> ApiResult<Vec<u8>> {
        let too_large = ApiError::BodyTooLarge { limit };
        if let Some(length) = self.header("content-length").and_then(|v| v.trim().parse::<u64>().ok()) {
            if length > limit {
                return Err(too_large);
            }
        }
        let mut bytes = Vec::new();
        if self.req.inner().body().is_none() {
            return Ok(bytes);
        }
        let mut stream = self.req.stream().or_internal("request body")?;
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::InvalidJson { reason: format!("the body could not be read: {e}") })?;
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(too_large);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

/// A query parameter of `req`, decoded as `Url::query_pairs` would. Not through `req.url()`:
/// parsing the whole URL links the url crate and its IDNA tables into the Worker (~70 KiB gzip).
pub(super) fn query_param(req: &Request, name: &str) -> Option<String> {
    let url = req.inner().url();
    let query = url.split_once('?')?.1;
    let query = query.split_once('#').map_or(query, |(query, _)| query);
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// validator's field errors, keyed by the JSON (camelCase) name of the field.
fn validation_error(errors: ValidationErrors) -> ApiError {
    let mut fields = BTreeMap::new();
    for (field, list) in errors.field_errors() {
        let name = camel_case(&field);
        let messages =
            list.iter().map(|e| e.message.as_ref().map_or_else(|| e.code.to_string(), |m| m.to_string())).collect();
        fields.insert(name, messages);
    }
    ApiError::InvalidRequest { errors: fields }
}

fn camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::camel_case;

    #[test]
    fn field_names_are_reported_as_the_json_spells_them() {
        assert_eq!(camel_case("content_type"), "contentType");
        assert_eq!(camel_case("key"), "key");
    }
}
