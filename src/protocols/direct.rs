//! Direct parts (issue 22), the Worker's half: presigned UploadPart URLs for R2's S3 endpoint,
//! one part at a time or many at once, and the report that records a part sent with one. The
//! upload's Durable Object decides what may be signed and what is recorded (see
//! [`crate::upload::direct`], which also says how leases and the part race hold); this file
//! signs ([`crate::sigv4::presign`]) with the key in the `R2_S3_*` settings.
//!
//! Ownership, `prefix` and scope are checked exactly as for a part sent through the Worker: the
//! route needs `uploads:write`, and the upload's object refuses another subject (`404`) or a
//! key outside the token's prefix (`403`) before anything is signed.

use std::collections::BTreeMap;

use r2mpu_api::layout::parse_part_number;
use r2mpu_api::time::rfc3339;
use r2mpu_api::types::{
    FirstPartUrls, PartReport, PartUrl, PartUrlRequest, PartUrls, PartUrlsRequest, UploadStatus, DEFAULT_PART_URL_SECS,
};
use worker::Response;

use crate::config::DirectParts;
use crate::error::{ApiError, ApiResult};
use crate::hex::hex;
use crate::http::auth::Claims;
use crate::http::{json, with_etag, Ctx};
use crate::sigv4::{amz_date, presign, Presign, MAX_EXPIRES_SECS};
use crate::upload::digest::parse_content_md5;
use crate::upload::{Caller, PartToSign, Record, UploadHandle};

/// `createPartUrl`: one presigned UploadPart.
pub async fn part_url(mut cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let direct = configured(&cx)?;
    let part_number = parse_part_number(cx.param("partNumber"))?;
    let request: PartUrlRequest = cx.json_or_default().await?;
    let mut urls = sign(&cx, &claims, &direct, cx.param("uploadId"), &[(part_number, request)]).await?;
    json(200, &urls.remove(0))
}

/// `createPartUrls`: presigned UploadParts for many parts, in the order asked.
pub async fn part_urls(mut cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let direct = configured(&cx)?;
    let request: PartUrlsRequest = cx.json().await?;
    let asked: Vec<(u16, PartUrlRequest)> = request.parts.iter().map(|p| (p.part_number, p.request())).collect();
    for &(n, _) in &asked {
        parse_part_number(&n.to_string())?;
    }
    let parts = sign(&cx, &claims, &direct, cx.param("uploadId"), &asked).await?;
    json(200, &PartUrls { parts })
}

/// `partUrls` in `createUpload`: URLs for the new upload's parts 1 to `count` (no more than it
/// has), signed as `createPartUrls` signs them, so that the create is the only round trip
/// before the first PUT. `None` when direct parts are not configured, or the upload is no
/// longer open (a create replayed with its `Idempotency-Key`): the create stands either way.
pub async fn first_part_urls(
    cx: &Ctx,
    claims: &Claims,
    record: &Record,
    asked: FirstPartUrls,
) -> ApiResult<Option<Vec<PartUrl>>> {
    let Some(direct) = cx.config.direct.clone() else { return Ok(None) };
    if record.upload.status != UploadStatus::Open {
        return Ok(None);
    }
    let count = record.upload.part_count.map_or(asked.count, |parts| parts.min(asked.count));
    let request = PartUrlRequest { expires_in: asked.expires_in, ..PartUrlRequest::default() };
    let parts: Vec<(u16, PartUrlRequest)> = (1..=count).map(|n| (n, request.clone())).collect();
    sign(cx, claims, &direct, &record.upload.upload_id, &parts).await.map(Some)
}

/// `reportPart`: records a part sent with a URL from [`part_url`], with the ETag R2 answered.
pub async fn report_part(mut cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let part_number = parse_part_number(cx.param("partNumber"))?;
    let report: PartReport = cx.json().await?;
    let md5 = report.content_md5.as_deref().map(parse_content_md5).transpose()?.map(|d| hex(&d));
    let etag = report.etag.trim().to_string();
    let upload = UploadHandle::of(&cx, cx.param("uploadId"), Caller::of(&claims))?;
    let part = upload.report_part(part_number, etag, md5, cx.config.upload_ttl_ms).await?;
    with_etag(json(200, &part)?, &part.etag)
}

fn configured(cx: &Ctx) -> ApiResult<DirectParts> {
    cx.config.direct.clone().ok_or(ApiError::DirectPartsUnavailable)
}

/// Asks the upload's object to check and note the parts, then signs a URL for each.
async fn sign(
    cx: &Ctx,
    claims: &Claims,
    direct: &DirectParts,
    upload_id: &str,
    asked: &[(u16, PartUrlRequest)],
) -> ApiResult<Vec<PartUrl>> {
    let mut parts = Vec::with_capacity(asked.len());
    for (part_number, request) in asked {
        let md5 = request.content_md5.as_deref().map(parse_content_md5).transpose()?;
        if request.expires_in.is_some_and(|secs| secs == 0 || secs > MAX_EXPIRES_SECS) {
            return Err(ApiError::invalid_field("expiresIn", format!("must be 1 to {MAX_EXPIRES_SECS} seconds")));
        }
        parts.push(PartToSign { part_number: *part_number, length: request.length, md5: md5.map(|d| hex(&d)) });
    }
    let upload = UploadHandle::of(cx, upload_id, Caller::of(claims))?;
    let signing = upload.sign_parts(parts).await?;
    let now_ms = js_sys::Date::now() as u64;
    // Whole seconds, so the URL's own clock (X-Amz-Date) is the one its expiry counts from.
    let now_secs = now_ms / 1000;
    let date = amz_date(now_secs);
    let left_secs = (signing.expires_ms / 1000).saturating_sub(now_secs);
    let path = format!("{}/{}/{}", direct.path_prefix, direct.bucket, signing.key);
    let mut urls = Vec::with_capacity(asked.len());
    for ((part_number, request), length) in asked.iter().zip(&signing.lengths) {
        let expires_secs =
            request.expires_in.unwrap_or(DEFAULT_PART_URL_SECS).min(left_secs).clamp(1, MAX_EXPIRES_SECS);
        let length_text = length.to_string();
        let mut headers = BTreeMap::from([("content-length".to_string(), length_text)]);
        if let Some(md5) = &request.content_md5 {
            headers.insert("content-md5".to_string(), md5.trim().to_string());
        }
        let signed: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let number = part_number.to_string();
        let url = presign(&Presign {
            credentials: &direct.credentials,
            region: "auto",
            service: "s3",
            amz_date: &date,
            expires_secs,
            method: "PUT",
            origin: &direct.origin,
            path: &path,
            query: &[("partNumber", &number), ("uploadId", &signing.r2_upload_id)],
            headers: &signed,
        });
        urls.push(PartUrl {
            part_number: *part_number,
            url,
            method: "PUT".into(),
            headers: headers.into_iter().map(|(k, v)| (display_name(&k), v)).collect(),
            expires_at: rfc3339((now_secs + expires_secs) * 1000),
        });
    }
    Ok(urls)
}

/// A signed header's name as clients usually write it (`Content-Length`); HTTP ignores case.
fn display_name(name: &str) -> String {
    match name {
        "content-length" => "Content-Length".into(),
        "content-md5" => "Content-MD5".into(),
        other => other.into(),
    }
}
