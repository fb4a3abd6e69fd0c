//! The protocol of Cloudflare's guide "Use the R2 multipart API from Workers": `/{key}?action=`
//! with `mpu-create`, `mpu-uploadpart`, `mpu-complete`, `mpu-abort`, `get` and `delete`. Served
//! from the same route table as the REST API, with the same bearer auth, upload state and
//! validation, and answers shaped as the guide's client expects. `ACTION_PROTOCOL=off` turns it off.
//!
//! The guide declares no part size, so its uploads take any part size up to `MAX_PART_SIZE`,
//! held to R2's rule (equal parts but the last) at complete.

use r2mpu_api::layout::{parse_part_number, Layout};
use r2mpu_api::types::{CompleteUpload, CreateUpload, PartRef};
use serde_json::json;
use worker::Response;

use crate::error::{ApiError, ApiResult, OrInternal};
use crate::http::auth::Claims;
use crate::http::{self, no_content, with_etag, Ctx};
use crate::upload::{self, Caller};

/// `POST /{key}?action=mpu-create` → `{key, uploadId}`.
pub async fn create(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let key = cx.key(&claims)?;
    let max = cx.config.max_part_size;
    let layout = Layout::plan(None, Some(max), max)?;
    let record = upload::start(&cx, &claims, CreateUpload { key, ..Default::default() }, layout).await?;
    http::json(200, &json!({ "key": record.upload.key, "uploadId": record.upload.upload_id }))
}

/// `PUT /{key}?action=mpu-uploadpart&uploadId=&partNumber=` → `{partNumber, etag}`, the ETag
/// also in a header.
pub async fn upload_part(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let (upload_id, caller) = upload_of(&cx, &claims)?;
    let part_number = parse_part_number(&required(&cx, "partNumber")?)?;
    let part = upload::receive_part(&cx, &upload_id, part_number, caller).await?;
    let response = http::json(200, &PartRef { part_number: part.part_number, etag: part.etag.clone() })?;
    with_etag(response, &part.etag)
}

/// `POST /{key}?action=mpu-complete&uploadId=` with `{parts}` → `200`, the ETag in a header.
pub async fn complete(mut cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let body: CompleteUpload = cx.json().await?;
    let (upload_id, caller) = upload_of(&cx, &claims)?;
    let object = upload::finish(&cx, &upload_id, body.parts, caller).await?;
    with_etag(Response::empty().or_internal("complete")?, &object.etag)
}

/// `DELETE /{key}?action=mpu-abort&uploadId=` → `204`.
pub async fn abort(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let (upload_id, caller) = upload_of(&cx, &claims)?;
    upload::cancel(&cx, &upload_id, caller).await?;
    no_content()
}

/// The `uploadId` query parameter, and the caller naming the path's key: an upload id used
/// under another key is not found.
fn upload_of(cx: &Ctx, claims: &Claims) -> ApiResult<(String, Caller)> {
    let key = cx.key(claims)?;
    Ok((required(cx, "uploadId")?, Caller::of(claims).naming(&key)))
}

fn required(cx: &Ctx, name: &str) -> ApiResult<String> {
    cx.query(name).ok_or_else(|| ApiError::invalid_field(name, "this query parameter is required"))
}
