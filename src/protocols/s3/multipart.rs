//! S3's multipart upload over the upload interface: the upload id S3 clients carry is r2mpu's
//! own, so an upload begun over S3 is listed by `GET /uploads` and can be inspected, resumed or
//! aborted over any protocol. S3 declares no size or part size up front: as the guide's
//! protocol, any part up to `MAX_PART_SIZE` is taken, R2's rule (equal parts but the last, at
//! least 5 MiB) held at complete (`EntityTooSmall`).

use std::collections::BTreeMap;

use r2mpu_api::auth::Scope;
use r2mpu_api::layout::{parse_part_number, Layout};
use r2mpu_api::types::CreateUpload;
use validator::Validate;
use worker::Response;

use super::auth::{check_body, expected_digests};
use super::xml::{complete_parts, document, element};
use super::{check_bucket, origin};
use crate::error::{ApiError, ApiResult, OrInternal};
use crate::http::auth::Claims;
use crate::http::{no_content, with_etag, Ctx};
use crate::upload::{self, Caller, Command, UploadHandle};

/// The largest `CompleteMultipartUpload` body read (10,000 parts of about 100 bytes).
const MAX_COMPLETE_BODY: u64 = 2 << 20;

/// `POST /s3/{bucket}/{key}?uploads` (CreateMultipartUpload) or `?uploadId=`
/// (CompleteMultipartUpload).
pub async fn post(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    check_bucket(&cx)?;
    claims.require(Scope::UploadsWrite)?;
    let key = cx.key(&claims)?;
    if cx.query("uploads").is_some() {
        create(cx, claims, key).await
    } else if let Some(upload_id) = cx.query("uploadId") {
        complete(cx, claims, key, upload_id).await
    } else {
        Err(ApiError::NotImplemented { reason: "POST on an object takes ?uploads or ?uploadId=".into() })
    }
}

/// CreateMultipartUpload: `Content-Type` and `x-amz-meta-*` are stored with the object.
async fn create(cx: Ctx, claims: Claims, key: String) -> ApiResult<Response> {
    let max = cx.config.max_part_size;
    let layout = Layout::plan(None, Some(max), max)?;
    let body = new_upload(&cx, key)?;
    let record = upload::start(&cx, &claims, body, layout).await?;
    let inner = format!(
        "{}{}{}",
        element("Bucket", &cx.config.s3_bucket),
        element("Key", &record.upload.key),
        element("UploadId", &record.upload.upload_id)
    );
    document("InitiateMultipartUploadResult", &inner)
}

/// The upload to start for `key`, with the request's `Content-Type` and `x-amz-meta-*`.
pub(super) fn new_upload(cx: &Ctx, key: String) -> ApiResult<CreateUpload> {
    let mut metadata = BTreeMap::new();
    for (name, value) in cx.req.headers().entries() {
        if let Some(name) = name.strip_prefix("x-amz-meta-") {
            metadata.insert(name.to_string(), value);
        }
    }
    let content_type = cx.header("content-type").filter(|t| !t.trim().is_empty());
    let metadata = (!metadata.is_empty()).then_some(metadata);
    let body = CreateUpload { key, content_type, metadata, ..Default::default() };
    body.validate().map_err(|e| ApiError::invalid_field("x-amz-meta-*", e.to_string()))?;
    Ok(body)
}

/// UploadPart: the body streamed into R2 under the part's lease, checked against its
/// `Content-MD5` and `x-amz-content-sha256` on the way; the part's ETag in the `ETag` header.
pub async fn upload_part(cx: Ctx, claims: Claims, key: String, upload_id: String) -> ApiResult<Response> {
    let part_number = parse_part_number(&cx.query("partNumber").unwrap_or_default())?;
    let expected = expected_digests(&cx)?;
    let caller = Caller::of(&claims).naming(&key);
    let part = upload::receive_checked(&cx, &upload_id, part_number, caller, expected).await?;
    with_etag(Response::empty().or_internal("part")?, &part.etag)
}

/// CompleteMultipartUpload: the listed parts, whose ETags must be the ones recorded.
async fn complete(mut cx: Ctx, claims: Claims, key: String, upload_id: String) -> ApiResult<Response> {
    let body = cx.read_bounded(MAX_COMPLETE_BODY).await?;
    check_body(&cx, &body)?;
    let text = String::from_utf8(body).map_err(|_| ApiError::MalformedXml { reason: "not UTF-8".into() })?;
    let parts = complete_parts(&text)?;
    let object = upload::finish(&cx, &upload_id, Some(parts), Caller::of(&claims).naming(&key)).await?;
    let location = format!("{}/s3/{}/{}", origin(&cx), cx.config.s3_bucket, cx.param("key"));
    let inner = format!(
        "{}{}{}{}",
        element("Location", &location),
        element("Bucket", &cx.config.s3_bucket),
        element("Key", &object.key),
        element("ETag", &format!("\"{}\"", object.etag))
    );
    document("CompleteMultipartUploadResult", &inner)
}

/// AbortMultipartUpload: `204`, also for an upload already aborted.
pub async fn abort(cx: Ctx, claims: Claims, key: String, upload_id: String) -> ApiResult<Response> {
    match upload::cancel(&cx, &upload_id, Caller::of(&claims).naming(&key)).await {
        Ok(()) | Err(ApiError::UploadAborted) => no_content(),
        Err(error) => Err(error),
    }
}

/// ListParts: the parts received, a page of `max-parts` (default 1000) after
/// `part-number-marker`.
pub async fn list_parts(cx: Ctx, claims: Claims, key: String, upload_id: String) -> ApiResult<Response> {
    let number = |name: &str, default: u64| -> ApiResult<u64> {
        match cx.query(name) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|_| ApiError::invalid_field(name, "must be an integer")),
        }
    };
    let marker = number("part-number-marker", 0)?;
    let max = number("max-parts", 1000)?.clamp(1, 1000) as usize;
    let caller = Caller::of(&claims).naming(&key);
    let record = UploadHandle::of(&cx, &upload_id, caller)?.send(Command::Get).await?;
    record.ensure_open()?;
    let mut parts: Vec<_> = record.upload.parts.iter().filter(|p| u64::from(p.part_number) > marker).collect();
    let truncated = parts.len() > max;
    parts.truncate(max);
    let next = parts.last().map_or(marker, |p| u64::from(p.part_number));
    let mut inner = format!(
        "{}{}{}{}{}{}{}",
        element("Bucket", &cx.config.s3_bucket),
        element("Key", &record.upload.key),
        element("UploadId", &record.upload.upload_id),
        element("PartNumberMarker", &marker.to_string()),
        element("NextPartNumberMarker", &next.to_string()),
        element("MaxParts", &max.to_string()),
        element("IsTruncated", &truncated.to_string()),
    );
    inner.push_str(&element("StorageClass", "STANDARD"));
    for part in parts {
        inner.push_str(&format!(
            "<Part>{}{}{}{}</Part>",
            element("PartNumber", &part.part_number.to_string()),
            element("LastModified", &record.upload.created_at),
            element("ETag", &format!("\"{}\"", part.etag)),
            element("Size", &part.size.to_string())
        ));
    }
    document("ListPartsResult", &inner)
}
