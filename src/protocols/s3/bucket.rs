//! The bucket operations: ListBuckets (the one bucket served), HeadBucket, GetBucketLocation,
//! ListObjectsV2 from R2's own listing, and ListMultipartUploads from the caller's upload index.

use r2mpu_api::auth::Scope;
use r2mpu_api::key::RESERVED_PREFIX;
use r2mpu_api::time::rfc3339;
use worker::Response;

use super::check_bucket;
use super::xml::{document, element};
use crate::error::{internal, ApiError, ApiResult, OrInternal};
use crate::http::auth::Claims;
use crate::http::Ctx;
use crate::protocols::listing;

/// The region S3 clients are told: R2's.
pub const REGION: &str = "auto";

/// `GET /s3`: ListBuckets, the one bucket served.
pub async fn list_buckets(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let owner = format!("<Owner>{}{}</Owner>", element("ID", &claims.sub), element("DisplayName", &claims.sub));
    let bucket = format!(
        "<Buckets><Bucket>{}{}</Bucket></Buckets>",
        element("Name", &cx.config.s3_bucket),
        element("CreationDate", &rfc3339(0))
    );
    document("ListAllMyBucketsResult", &format!("{owner}{bucket}"))
}

/// `HEAD /s3/{bucket}`: HeadBucket.
pub async fn head(cx: Ctx, _claims: Claims) -> ApiResult<Response> {
    check_bucket(&cx)?;
    let response = Response::empty().or_internal("head bucket")?;
    response.headers().set("x-amz-bucket-region", REGION).or_internal("region")?;
    Ok(response)
}

/// `GET /s3/{bucket}`: GetBucketLocation (`?location`) or ListObjectsV2.
pub async fn get(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    check_bucket(&cx)?;
    if cx.query("location").is_some() {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint xmlns=\"{}\">{REGION}</LocationConstraint>",
            super::xml::NS
        );
        let response = Response::ok(body).or_internal("location")?;
        response.headers().set("content-type", "application/xml").or_internal("content-type")?;
        return Ok(response);
    }
    if cx.query("uploads").is_some() {
        claims.require(Scope::UploadsWrite)?;
        return list_uploads(cx, claims).await;
    }
    claims.require(Scope::ObjectsRead)?;
    list_objects(cx, claims).await
}

/// ListMultipartUploads (`prefix`, `max-uploads`): the caller's unfinished uploads from their
/// index, as `GET /uploads` lists them, newest first (not by key as S3 orders them), so the next
/// page is asked with r2mpu's cursor, carried as `upload-id-marker`. No `delimiter`.
async fn list_uploads(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let prefix = cx.query("prefix").or_else(|| claims.prefix.clone()).unwrap_or_default();
    let max = match cx.query("max-uploads") {
        None => 1000,
        Some(text) => {
            text.parse::<usize>().map_err(|_| ApiError::invalid_field("max-uploads", "must be an integer"))?
        }
    }
    .clamp(1, 1000);
    let marker = cx.query("upload-id-marker").filter(|m| !m.is_empty());
    let (uploads, next) = listing::page(&cx, &claims, prefix.clone(), max, marker.clone()).await?;
    let mut inner = format!(
        "{}{}{}{}{}",
        element("Bucket", &cx.config.s3_bucket),
        element("KeyMarker", ""),
        element("UploadIdMarker", marker.as_deref().unwrap_or_default()),
        element("Prefix", &prefix),
        element("MaxUploads", &max.to_string()),
    );
    if let (Some(next), Some(last)) = (&next, uploads.last()) {
        inner.push_str(&element("NextKeyMarker", &last.key));
        inner.push_str(&element("NextUploadIdMarker", next));
    }
    inner.push_str(&element("IsTruncated", &next.is_some().to_string()));
    let owner = format!("{}{}", element("ID", &claims.sub), element("DisplayName", &claims.sub));
    for upload in uploads {
        inner.push_str(&format!(
            "<Upload>{}{}<Initiator>{owner}</Initiator><Owner>{owner}</Owner>{}{}</Upload>",
            element("Key", &upload.key),
            element("UploadId", &upload.upload_id),
            element("StorageClass", "STANDARD"),
            element("Initiated", &upload.created_at)
        ));
    }
    document("ListMultipartUploadsResult", &inner)
}

/// ListObjectsV2 (`prefix`, `delimiter`, `max-keys`, `continuation-token`, `start-after`),
/// within the token's prefix. The continuation token is R2's cursor.
async fn list_objects(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let prefix = cx.query("prefix").or_else(|| claims.prefix.clone()).unwrap_or_default();
    claims.check_key(&prefix)?;
    let max_keys = match cx.query("max-keys") {
        None => 1000,
        Some(text) => text.parse::<u32>().map_err(|_| ApiError::invalid_field("max-keys", "must be an integer"))?,
    }
    .clamp(1, 1000);
    let bucket = cx.bucket()?;
    let mut request = bucket.list().prefix(prefix.clone()).limit(max_keys);
    let delimiter = cx.query("delimiter").filter(|d| !d.is_empty());
    if let Some(delimiter) = &delimiter {
        request = request.delimiter(delimiter.clone());
    }
    let token = cx.query("continuation-token").filter(|t| !t.is_empty());
    if let Some(token) = &token {
        request = request.cursor(token.clone());
    }
    if let Some(after) = cx.query("start-after").filter(|a| !a.is_empty()) {
        request = request.start_after(after);
    }
    let page = request.execute().await.map_err(|e| internal("R2 list", e))?;
    let objects: Vec<_> = page.objects().into_iter().filter(|o| !o.key().starts_with(RESERVED_PREFIX)).collect();
    let prefixes = page.delimited_prefixes();
    let mut inner = format!(
        "{}{}{}{}",
        element("Name", &cx.config.s3_bucket),
        element("Prefix", &prefix),
        element("MaxKeys", &max_keys.to_string()),
        element("KeyCount", &(objects.len() + prefixes.len()).to_string()),
    );
    if let Some(delimiter) = &delimiter {
        inner.push_str(&element("Delimiter", delimiter));
    }
    if let Some(token) = &token {
        inner.push_str(&element("ContinuationToken", token));
    }
    let next = if page.truncated() { page.cursor() } else { None };
    inner.push_str(&element("IsTruncated", &next.is_some().to_string()));
    if let Some(next) = next {
        inner.push_str(&element("NextContinuationToken", &next));
    }
    for object in objects {
        inner.push_str(&format!(
            "<Contents>{}{}{}{}{}</Contents>",
            element("Key", &object.key()),
            element("LastModified", &rfc3339(object.uploaded().as_millis())),
            element("ETag", &object.http_etag()),
            element("Size", &object.size().to_string()),
            element("StorageClass", "STANDARD")
        ));
    }
    for prefix in prefixes {
        inner.push_str(&format!("<CommonPrefixes>{}</CommonPrefixes>", element("Prefix", &prefix)));
    }
    document("ListBucketResult", &inner)
}
