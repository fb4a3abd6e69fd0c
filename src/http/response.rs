//! The few responses handlers build themselves (errors are rendered by [`super::problem`]).

use serde::Serialize;
use worker::Response;

use crate::error::{ApiResult, OrInternal};

/// A JSON response with `status`.
pub fn json<T: Serialize>(status: u16, value: &T) -> ApiResult<Response> {
    let body = serde_json::to_vec(value).or_internal("rendering json")?;
    let headers = worker::Headers::new();
    headers.set("content-type", "application/json").or_internal("content-type")?;
    // Known here, so the log line (`log.rs`) can count the bytes out.
    headers.set("content-length", &body.len().to_string()).or_internal("content-length")?;
    Ok(Response::from_bytes(body).or_internal("json response")?.with_status(status).with_headers(headers))
}

/// `204 No Content`.
pub fn no_content() -> ApiResult<Response> {
    Ok(Response::empty().or_internal("empty response")?.with_status(204))
}

/// Sets `ETag` to `etag`, quoted as HTTP (and S3) have it.
pub fn with_etag(response: Response, etag: &str) -> ApiResult<Response> {
    response.headers().set("etag", &format!("\"{etag}\"")).or_internal("etag")?;
    Ok(response)
}
