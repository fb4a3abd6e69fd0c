//! The object operations at `/s3/{bucket}/{key}`, each method routing its multipart variant
//! (named by `?uploadId=`) to [`super::multipart`]. Reads and deletes are the objects
//! protocol's own handlers ([`crate::protocols::objects`]: ranges, conditionals, the same
//! headers); only their errors differ, rendered as S3's by the route table.

use r2mpu_api::auth::Scope;
use r2mpu_api::layout::Layout;
use worker::Response;

use super::auth::expected_digests;
use super::check_bucket;
use super::multipart::{self, new_upload};
use crate::error::{ApiError, ApiResult, OrInternal};
use crate::http::auth::Claims;
use crate::http::{with_etag, Ctx};
use crate::protocols::objects as stored;
use crate::upload::{self, Caller};

/// `PUT`: UploadPart (`?partNumber=&uploadId=`) or PutObject.
pub async fn put(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    check_bucket(&cx)?;
    claims.require(Scope::UploadsWrite)?;
    let key = cx.key(&claims)?;
    if let Some(upload_id) = cx.query("uploadId") {
        return multipart::upload_part(cx, claims, key, upload_id).await;
    }
    if cx.header("x-amz-copy-source").is_some() {
        return Err(ApiError::NotImplemented { reason: "CopyObject and UploadPartCopy are not offered".into() });
    }
    put_object(cx, claims, key).await
}

/// PutObject, up to `MAX_PART_SIZE`: an upload of one part, completed at once, so that the
/// object appears whole or not at all (a body not matching its digests aborts the upload and
/// leaves any earlier object of the key as it was).
async fn put_object(cx: Ctx, claims: Claims, key: String) -> ApiResult<Response> {
    let max = cx.config.max_part_size;
    let expected = expected_digests(&cx)?;
    let length = match expected.chunked {
        Some(chunked) => Some(chunked.decoded_length),
        None => cx.header("content-length").and_then(|v| v.trim().parse::<u64>().ok()),
    };
    let length = length.ok_or(ApiError::LengthRequired)?;
    if length > max {
        return Err(ApiError::BodyTooLarge { limit: max });
    }
    let layout = Layout::plan(Some(length), Some(max), max)?;
    let record = upload::start(&cx, &claims, new_upload(&cx, key)?, layout).await?;
    let upload_id = record.upload.upload_id;
    let caller = Caller::of(&claims);
    if let Err(error) = upload::receive_checked(&cx, &upload_id, 1, caller.clone(), expected).await {
        // Best effort: an upload left open is aborted by its alarm anyway.
        let _ = upload::cancel(&cx, &upload_id, caller).await;
        return Err(error);
    }
    let object = upload::finish(&cx, &upload_id, None, caller).await?;
    with_etag(Response::empty().or_internal("put object")?, &object.etag)
}

/// `GET`: ListParts (`?uploadId=`) or GetObject (`Range`, `If-None-Match`, `If-Range`).
pub async fn get(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    check_bucket(&cx)?;
    if let Some(upload_id) = cx.query("uploadId") {
        claims.require(Scope::UploadsWrite)?;
        let key = cx.key(&claims)?;
        return multipart::list_parts(cx, claims, key, upload_id).await;
    }
    claims.require(Scope::ObjectsRead)?;
    stored::get(cx, claims).await
}

/// `HEAD`: HeadObject.
pub async fn head(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    check_bucket(&cx)?;
    claims.require(Scope::ObjectsRead)?;
    stored::head(cx, claims).await
}

/// `DELETE`: AbortMultipartUpload (`?uploadId=`) or DeleteObject.
pub async fn delete(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    check_bucket(&cx)?;
    if let Some(upload_id) = cx.query("uploadId") {
        claims.require(Scope::UploadsWrite)?;
        let key = cx.key(&claims)?;
        return multipart::abort(cx, claims, key, upload_id).await;
    }
    claims.require(Scope::ObjectsDelete)?;
    stored::delete(cx, claims).await
}
