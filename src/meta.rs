//! Unauthenticated endpoints about the service itself.

use worker::Response;

use crate::error::{ApiResult, OrInternal};
use crate::http::{json, Ctx};

/// The contract, served by the Worker that implements it so clients can be generated from it.
const OPENAPI: &str = include_str!("../openapi.yaml");

/// `getHealth`: answers as long as the Worker runs.
pub async fn health(_cx: Ctx) -> ApiResult<Response> {
    json(200, &serde_json::json!({ "status": "ok" }))
}

/// `getOpenApi`.
pub async fn openapi(_cx: Ctx) -> ApiResult<Response> {
    let response = Response::ok(OPENAPI).or_internal("openapi")?;
    response.headers().set("content-type", "application/yaml").or_internal("content-type")?;
    Ok(response)
}
