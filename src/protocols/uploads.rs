//! `/uploads`: creating, feeding, inspecting, completing and aborting multipart uploads, over
//! the upload interface ([`crate::upload`]). Each handler names its operation in `openapi.yaml`.

use r2mpu_api::layout::{parse_part_number, Layout};
use r2mpu_api::types::{CompleteUpload, CreateUpload, CreatedUpload};
use worker::Response;

use crate::error::{ApiResult, OrInternal};
use crate::http::auth::Claims;
use crate::http::{json, no_content, with_etag, Ctx};
use crate::protocols::direct::first_part_urls;
use crate::upload::{self, Caller, Command, UploadHandle};

/// `createUpload`: fixes the layout, starts the R2 multipart upload, answers with its state,
/// and with the first parts' URLs when asked (`partUrls`).
pub async fn create(mut cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let body: CreateUpload = cx.json().await?;
    let asked = body.part_urls;
    let layout = Layout::plan(body.size, body.part_size, cx.config.max_part_size)?;
    let record = upload::start(&cx, &claims, body, layout).await?;
    let (direct_parts, part_urls) = match asked {
        Some(asked) => (Some(cx.config.direct.is_some()), first_part_urls(&cx, &claims, &record, asked).await?),
        None => (None, None),
    };
    let location = format!("/uploads/{}", record.upload.upload_id);
    let response = json(201, &CreatedUpload { upload: record.upload, direct_parts, part_urls })?;
    response.headers().set("location", &location).or_internal("location")?;
    Ok(response)
}

/// `getUpload`: the state a client resumes from.
pub async fn get(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let record = UploadHandle::of(&cx, cx.param("uploadId"), Caller::of(&claims))?.send(Command::Get).await?;
    json(200, &record.upload)
}

/// `uploadPart`: the part, also with its ETag in an `ETag` header, as S3 answers.
pub async fn put_part(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let part_number = parse_part_number(cx.param("partNumber"))?;
    let part = upload::receive_part(&cx, cx.param("uploadId"), part_number, Caller::of(&claims)).await?;
    with_etag(json(200, &part)?, &part.etag)
}

/// `completeUpload`: idempotent; a repeat returns the same object.
pub async fn complete(mut cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let body: CompleteUpload = cx.json_or_default().await?;
    let object = upload::finish(&cx, cx.param("uploadId"), body.parts, Caller::of(&claims)).await?;
    json(200, &object)
}

/// `abortUpload`: frees the parts; aborting twice is fine.
pub async fn abort(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    upload::cancel(&cx, cx.param("uploadId"), Caller::of(&claims)).await?;
    no_content()
}
