//! Unauthenticated endpoints about the service itself.

use worker::Response;

use crate::error::{ApiResult, OrInternal};
use crate::http::{json, Ctx};

/// `getHealth`: answers as long as the Worker runs.
pub async fn health(_cx: Ctx) -> ApiResult<Response> {
    json(200, &serde_json::json!({ "status": "ok" }))
}

/// `getOpenApi`: the contract, served by the Worker that implements it so clients can be
/// generated from it. It is a static asset (`scripts/build.sh` puts it in `build/assets/`),
/// not embedded in the wasm, where it would cost a thirtieth of the size budget.
pub async fn openapi(cx: Ctx) -> ApiResult<Response> {
    let assets = cx.env.assets("ASSETS").or_internal("ASSETS binding")?;
    let asset = assets.fetch_request(cx.req).await.or_internal("openapi.yaml asset")?;
    if asset.status_code() != 200 {
        return Err(crate::error::internal("openapi.yaml asset", asset.status_code()));
    }
    let response = Response::from_body(asset.body().clone()).or_internal("openapi")?;
    response.headers().set("content-type", "application/yaml").or_internal("content-type")?;
    Ok(response)
}
