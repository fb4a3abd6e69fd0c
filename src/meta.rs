//! Unauthenticated endpoints about the service itself, and the upload page.

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
    asset(cx, "application/yaml").await
}

/// `getUploadPage`: the browser upload page, `web/index.html` (a static asset too). The token
/// it holds is the caller's own; still, no other site may frame it.
pub async fn page(cx: Ctx) -> ApiResult<Response> {
    let response = asset(cx, "text/html; charset=utf-8").await?;
    let headers = response.headers();
    headers.set("content-security-policy", "frame-ancestors 'none'").or_internal("csp")?;
    headers.set("referrer-policy", "no-referrer").or_internal("referrer-policy")?;
    headers.set("cache-control", "no-cache").or_internal("cache-control")?;
    Ok(response)
}

/// The static asset at the request's path, as `content_type`.
async fn asset(cx: Ctx, content_type: &str) -> ApiResult<Response> {
    let path = cx.req.path();
    let assets = cx.env.assets("ASSETS").or_internal("ASSETS binding")?;
    let asset = assets.fetch_request(cx.req).await.or_internal("asset")?;
    if asset.status_code() != 200 {
        return Err(crate::error::internal(&format!("asset {path}"), asset.status_code()));
    }
    let response = Response::from_body(asset.body().clone()).or_internal("asset body")?;
    response.headers().set("content-type", content_type).or_internal("content-type")?;
    Ok(response)
}
