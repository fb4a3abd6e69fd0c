//! `/tus`: the tus 1.0 resumable upload protocol (https://tus.io/protocols/resumable-upload), and
//! the IETF draft "Resumable Uploads for HTTP" for requests naming an `Upload-Draft-Interop-Version`, on
//! the same uploads as the REST API: a tus upload's id is its REST `uploadId`, its bytes are
//! appended by the upload's append engine (`upload::append`), and the same token, scope and prefix rules apply.
//! Extensions: creation, creation-with-upload, creation-defer-length, termination, expiration,
//! checksum (sha1, md5, sha256; a mismatch is `460` and nothing of the chunk is kept).
//!
//! The draft's creation is always "careful" or plain "optimistic": a Worker cannot send the
//! `104 (Upload Resumption Supported)` interim response (workerd's `fetch` handler answers once),
//! so a client learns the upload's URL from the final `201`. An interrupted optimistic creation is
//! started over; `Upload-Complete: ?0` with an empty body gets the URL first.

mod appending;
mod headers;

use r2mpu_api::layout::{default_part_size, Layout, MAX_PARTS};
use r2mpu_api::types::{CreateUpload, UploadStatus};
use validator::Validate;
use worker::Response;

use crate::error::{ApiError, ApiResult, OrInternal};
use crate::http::auth::Claims;
use crate::http::Ctx;
use crate::upload::{self, Caller, Command, Record, UploadHandle};
use appending::{append_body, check_append, finish_if_due, offset_of};
use headers::{
    check_media_type, content_length, disposition_filename, encode_metadata, inconsistent_length, parse_metadata,
    parse_u64, protocol, upload_complete, Protocol, CHECKSUMS, OFFSET_OCTET_STREAM, PARTIAL_UPLOAD, TUS_VERSION,
};

const EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum";

/// `OPTIONS /tus`: what this server speaks, for discovery (no token needed; it tells nothing).
pub async fn options(cx: Ctx) -> ApiResult<Response> {
    let response = Response::empty().or_internal("response")?.with_status(204);
    let headers = response.headers();
    headers.set("tus-version", TUS_VERSION).or_internal("header")?;
    headers.set("tus-extension", EXTENSIONS).or_internal("header")?;
    let max = tus_max_size(&cx);
    headers.set("tus-max-size", &max.to_string()).or_internal("header")?;
    let algorithms: Vec<&str> = CHECKSUMS.iter().map(|(name, _)| *name).collect();
    headers.set("tus-checksum-algorithm", &algorithms.join(",")).or_internal("header")?;
    // The draft's discovery: the append media type, and the limits any upload gets.
    headers.set("accept-patch", PARTIAL_UPLOAD).or_internal("header")?;
    headers.set("upload-limit", &upload_limit(max, &cx)).or_internal("header")?;
    Ok(response)
}

/// `POST /tus` (creation): `Upload-Length` or `Upload-Defer-Length: 1`, `Upload-Metadata`
/// naming the key (`key`, else `filename`, else a generated name); with a body, its first bytes.
pub async fn create(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let protocol = protocol(&cx)?;
    let declared = cx.header("upload-length").map(|length| parse_u64("Upload-Length", &length)).transpose()?;
    let size = match protocol {
        Protocol::Tus => match (declared, cx.header("upload-defer-length")) {
            (Some(size), None) => Some(size),
            (None, Some(defer)) if defer.trim() == "1" => None,
            _ => return Err(ApiError::invalid_field("Upload-Length", "send Upload-Length or Upload-Defer-Length: 1")),
        },
        // The draft: `Upload-Complete: ?1` says the body is all of it.
        Protocol::Draft(_) => match (upload_complete(&cx)?, declared) {
            (true, Some(size)) if Some(size) != content_length(&cx)? => return Err(inconsistent_length()),
            (true, _) => Some(content_length(&cx)?.ok_or(ApiError::LengthRequired)?),
            (false, declared) => declared,
        },
    };
    let max_size = tus_max_size(&cx);
    if size.is_some_and(|size| size > max_size) {
        return Err(ApiError::BeyondLength { size: max_size });
    }
    let metadata = parse_metadata(cx.header("upload-metadata").as_deref())?;
    // The draft names the representation as any request does: `Content-Disposition`'s file
    // name and `Content-Type`.
    let (named, typed) = match protocol {
        Protocol::Tus => (None, None),
        Protocol::Draft(_) => (
            cx.header("content-disposition").and_then(|h| disposition_filename(&h)),
            cx.header("content-type").filter(|_| cx.media_type().is_some_and(|m| m != PARTIAL_UPLOAD)),
        ),
    };
    // Kept in the metadata as given: HEAD answers it back (the creation extension's MUST).
    let key = match metadata.get("key").or_else(|| metadata.get("filename")).cloned().or(named) {
        Some(key) => key,
        None => format!("{}{}", claims.prefix.clone().unwrap_or_default(), random_name()?),
    };
    r2mpu_api::key::check_key(&key).map_err(|reason| ApiError::InvalidKey { reason })?;
    let content_type =
        metadata.get("filetype").or_else(|| metadata.get("type")).cloned().or(typed).filter(|t| !t.is_empty());
    let body = CreateUpload { key, content_type, metadata: Some(metadata), size, part_size: None, part_urls: None };
    body.validate().map_err(|e| ApiError::invalid_field("Upload-Metadata", e.to_string()))?;
    // The usual part size, or the deployment's largest part if that is smaller.
    let part_size = default_part_size(size).min(cx.config.max_part_size);
    let layout = Layout::plan(size, Some(part_size), cx.config.max_part_size)?;
    let has_body = content_length(&cx)?.is_some_and(|n| n > 0) || size == Some(0);
    // A body the upload cannot take is refused before there is an upload nobody could reach.
    if has_body {
        check_append(&cx, protocol, layout, 0)?;
    }
    let record = upload::start(&cx, &claims, body, layout).await?;
    // The same Idempotency-Key again (a retry after a lost answer): the first create opened the
    // appends and sent its body, so the replay answers the upload as it is, at its offset.
    let replay = record.appends.is_some();
    let upload = handle(&cx, &record.upload.upload_id, &claims)?;
    let mut record = upload.send(Command::OpenAppends).await?;
    if record.appends.is_none() {
        // An Idempotency-Key that named a REST upload.
        return Err(ApiError::IdempotencyKeyReused);
    }
    if has_body && !replay {
        record = match append_body(&cx, &upload, record).await {
            Ok(record) => record,
            Err(error) => {
                abandon(&cx, &upload, &error).await;
                return Err(error);
            }
        };
    }
    let response = Response::empty().or_internal("response")?.with_status(201);
    response.headers().set("location", &format!("/tus/{}", record.upload.upload_id)).or_internal("location")?;
    if has_body || protocol != Protocol::Tus {
        response.headers().set("upload-offset", &offset_of(&record).to_string()).or_internal("offset")?;
    }
    with_state(response, &record, protocol, &cx)
}

/// `HEAD /tus/{uploadId}`: the durable offset to resume from.
pub async fn head(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let upload = handle(&cx, cx.param("uploadId"), &claims)?;
    let protocol = protocol(&cx)?;
    let record = appendable(upload.send(Command::Get).await?)?;
    let record = finish_if_due(&cx, &upload, record).await?;
    let status = if protocol == Protocol::Tus { 200 } else { 204 };
    let response = Response::empty().or_internal("response")?.with_status(status);
    let headers = response.headers();
    headers.set("cache-control", "no-store").or_internal("header")?;
    headers.set("upload-offset", &offset_of(&record).to_string()).or_internal("header")?;
    match (record.upload.size, protocol) {
        (Some(size), _) => headers.set("upload-length", &size.to_string()),
        (None, Protocol::Tus) => headers.set("upload-defer-length", "1"),
        (None, Protocol::Draft(_)) => Ok(()),
    }
    .or_internal("header")?;
    if !record.upload.metadata.is_empty() {
        headers.set("upload-metadata", &encode_metadata(&record.upload.metadata)).or_internal("header")?;
    }
    with_state(response, &record, protocol, &cx)
}

/// `PATCH /tus/{uploadId}`: appends the body at `Upload-Offset`; `204` with the new offset.
pub async fn patch(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let upload = handle(&cx, cx.param("uploadId"), &claims)?;
    let protocol = protocol(&cx)?;
    match protocol {
        Protocol::Tus => check_media_type(&cx, OFFSET_OCTET_STREAM)?,
        // Interop version 5 (draft 03) predates the media type.
        Protocol::Draft(5) => {}
        Protocol::Draft(_) => check_media_type(&cx, PARTIAL_UPLOAD)?,
    }
    let offset = parse_u64("Upload-Offset", &cx.header("upload-offset").unwrap_or_default())?;
    let record = appendable(upload.send(Command::Get).await?)?;
    let mut record = finish_if_due(&cx, &upload, record).await?;
    // The draft: bytes appended to a completed upload are an inconsistent length.
    let has_bytes = content_length(&cx)?.is_some_and(|n| n > 0);
    if matches!(protocol, Protocol::Draft(_)) && record.upload.status == UploadStatus::Completed && has_bytes {
        return Err(inconsistent_length());
    }
    let declared = match protocol {
        Protocol::Tus => cx.header("upload-length").map(|length| parse_u64("Upload-Length", &length)).transpose()?,
        // `Upload-Complete: ?1`: this body is the rest, so the length is known now.
        Protocol::Draft(_) if upload_complete(&cx)? => {
            let incoming = content_length(&cx)?.ok_or(ApiError::LengthRequired)?;
            let too_long =
                || ApiError::invalid_field("Upload-Offset", "Upload-Offset + Content-Length is above 2^64 - 1");
            Some(offset.checked_add(incoming).ok_or_else(too_long)?)
        }
        Protocol::Draft(_) => None,
    };
    if let Some(size) = declared {
        if record.upload.size.is_some_and(|known| known != size) && protocol != Protocol::Tus {
            return Err(inconsistent_length());
        }
        // Past `Tus-Max-Size` no upload can go (and past 2^53 no number survives the trip to
        // the Durable Object).
        if size > tus_max_size(&cx) {
            return Err(ApiError::BeyondLength { size: tus_max_size(&cx) });
        }
    }
    // A refused PATCH changes nothing: its offset and its bytes are checked before its length
    // is declared.
    if offset != offset_of(&record) {
        return Err(ApiError::OffsetMismatch { expected_offset: offset_of(&record), provided_offset: offset });
    }
    if record.upload.status == UploadStatus::Completed && !has_bytes {
        // An empty PATCH at the end of a completed upload (a client confirming it): its offset.
        return patched(&record, protocol, &cx);
    }
    record.ensure_open()?;
    let layout = Layout { size: record.upload.size.or(declared), ..record.layout() };
    check_append(&cx, protocol, layout, offset)?;
    if let Some(size) = declared {
        record = upload.send(Command::DeclareLength { size }).await?;
    }
    let record = append_body(&cx, &upload, record).await?;
    patched(&record, protocol, &cx)
}

/// The answer to a PATCH: `204` with the new offset.
fn patched(record: &Record, protocol: Protocol, cx: &Ctx) -> ApiResult<Response> {
    let response = Response::empty().or_internal("response")?.with_status(204);
    response.headers().set("upload-offset", &offset_of(record).to_string()).or_internal("offset")?;
    with_state(response, record, protocol, cx)
}

/// `DELETE /tus/{uploadId}` (termination): aborts the upload and frees its parts and tail.
pub async fn terminate(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let upload = handle(&cx, cx.param("uploadId"), &claims)?;
    protocol(&cx)?;
    let record = appendable(upload.send(Command::Get).await?)?;
    upload::cancel(&cx, cx.param("uploadId"), Caller::of(&claims)).await?;
    delete_tail(&cx, &record).await;
    Ok(Response::empty().or_internal("response")?.with_status(204))
}

/// A create whose body failed: its client holds no URL for the upload, so it is aborted, unless
/// the client can reach it again (its `Idempotency-Key`: a retry, perhaps running now, gets it)
/// and the body itself was not refused (a checksum that does not match).
async fn abandon(cx: &Ctx, upload: &UploadHandle, error: &ApiError) {
    if cx.header("idempotency-key").is_some() && *error != ApiError::ChecksumMismatch {
        return;
    }
    if let Err(e) = upload.send(Command::Abort { ttl_ms: cx.config.upload_ttl_ms }).await {
        worker::console_warn!("aborting an upload whose create failed: {e}");
    }
}

/// The most a tus upload may hold: `Tus-Max-Size`, 10,000 of the deployment's largest parts.
fn tus_max_size(cx: &Ctx) -> u64 {
    cx.config.max_part_size.saturating_mul(u64::from(MAX_PARTS))
}

/// Only appendable uploads are tus uploads; an aborted one is gone for tus clients.
fn appendable(record: Record) -> ApiResult<Record> {
    if record.appends.is_none() || record.upload.status == UploadStatus::Aborted {
        return Err(ApiError::UploadNotFound);
    }
    Ok(record)
}

async fn delete_tail(cx: &Ctx, record: &Record) {
    if let (Some(key), Ok(bucket)) = (record.appends.as_ref().and_then(|a| a.tail_key.clone()), cx.bucket()) {
        if let Err(e) = bucket.delete(key).await {
            worker::console_warn!("deleting a tail: {e}");
        }
    }
}

/// The upload's handle; an id of the wrong shape is `404` before anything else is looked at.
fn handle(cx: &Ctx, upload_id: &str, claims: &Claims) -> ApiResult<UploadHandle> {
    UploadHandle::of(cx, upload_id, Caller::of(claims))
}

/// The upload's state in the protocol's headers: tus's `Upload-Expires`; the draft's
/// `Upload-Complete` and `Upload-Limit`.
fn with_state(response: Response, record: &Record, protocol: Protocol, cx: &Ctx) -> ApiResult<Response> {
    let Protocol::Draft(version) = protocol else {
        return with_expiry(response, record);
    };
    let headers = response.headers();
    let complete = if record.upload.status == UploadStatus::Completed { "?1" } else { "?0" };
    headers.set("upload-complete", complete).or_internal("header")?;
    headers.set("upload-draft-interop-version", &version.to_string()).or_internal("header")?;
    // R2's limits: 10,000 parts of this upload's size; no append is too small (the tail keeps
    // it) and the upload lives until its TTL runs out without activity.
    let max_size = record.upload.part_size.saturating_mul(u64::from(MAX_PARTS));
    headers.set("upload-limit", &upload_limit(max_size, cx)).or_internal("header")?;
    Ok(response)
}

/// The draft's `Upload-Limit` for uploads of at most `max_size` bytes.
fn upload_limit(max_size: u64, cx: &Ctx) -> String {
    let max_age = cx.config.upload_ttl_ms / 1000;
    format!("max-size={max_size}, max-append-size={MAX_APPEND}, max-age={max_age}")
}

/// Cloudflare's request body limit on the free and pro plans.
const MAX_APPEND: u64 = 100 * 1024 * 1024;

/// `Upload-Expires`: when the upload is aborted if left idle, as an HTTP date.
fn with_expiry(response: Response, record: &Record) -> ApiResult<Response> {
    if record.upload.status == UploadStatus::Open {
        let when = js_sys::Date::new(&record.upload.expires_at.as_str().into());
        let date: String = when.to_utc_string().into();
        response.headers().set("upload-expires", &date).or_internal("upload-expires")?;
    }
    Ok(response)
}

/// Marks a tus response (every response under `/tus`) with the version it speaks.
pub fn stamp(path: &str, response: Response) -> Response {
    if path == "/tus" || path.starts_with("/tus/") {
        let _ = response.headers().set("tus-resumable", TUS_VERSION);
        if response.status_code() == 412 || path == "/tus" {
            let _ = response.headers().set("tus-version", TUS_VERSION);
        }
    }
    response
}

fn random_name() -> ApiResult<String> {
    Ok(format!("tus/{}", crate::hex::random_hex::<16>().or_internal("random key")?))
}
