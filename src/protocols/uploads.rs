//! `/uploads`: creating, feeding, inspecting, completing and aborting multipart uploads.
//! Each REST handler names its operation in `openapi.yaml`; the functions under them are shared
//! with the guide's `?action=` protocol (`compat.rs`).

use r2mpu_api::layout::{parse_part_number, Layout};
use r2mpu_api::types::{CompleteUpload, CompletedObject, CreateUpload, Part, PartRef};
use worker::{Data, Response};

use crate::error::{internal, ApiError, ApiResult, OrInternal};
use crate::faults::{Action, Faults};
use crate::hex::{hex, random_hex};
use crate::http::auth::Claims;
use crate::http::{json, no_content, Ctx};
use crate::upload::digest::{parse_content_md5, Md5Of};
use crate::upload::object::{is_no_such_upload, Caller, Command, NewUpload, PartGrant, Record, UploadHandle};

/// `createUpload`: fixes the layout, starts the R2 multipart upload, answers with its state.
pub async fn create(mut cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let body: CreateUpload = cx.json().await?;
    let layout = Layout::plan(body.size, body.part_size, cx.config.max_part_size)?;
    let record = start(&cx, &claims, body, layout).await?;
    let response = json(201, &record.upload)?;
    let location = format!("/uploads/{}", record.upload.upload_id);
    response.headers().set("location", &location).or_internal("location")?;
    Ok(response)
}

/// `getUpload`: the state a client resumes from.
pub async fn get(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let record = handle(&cx, cx.param("uploadId"), Caller::of(&claims))?.send(Command::Get).await?;
    json(200, &record.upload)
}

/// `uploadPart`: the part, also with its ETag in an `ETag` header, as S3 answers.
pub async fn put_part(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let part_number = parse_part_number(cx.param("partNumber"))?;
    let part = receive_part(&cx, cx.param("uploadId"), part_number, Caller::of(&claims)).await?;
    with_etag(json(200, &part)?, &part.etag)
}

/// Sets `ETag` to `etag`, quoted as HTTP (and S3) have it.
pub fn with_etag(response: Response, etag: &str) -> ApiResult<Response> {
    response.headers().set("etag", &format!("\"{etag}\"")).or_internal("etag")?;
    Ok(response)
}

/// `completeUpload`: idempotent; a repeat returns the same object.
pub async fn complete(mut cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let body: CompleteUpload = cx.json_or_default().await?;
    let object = finish(&cx, cx.param("uploadId"), body.parts, Caller::of(&claims)).await?;
    json(200, &object)
}

/// `abortUpload`: frees the parts; aborting twice is fine.
pub async fn abort(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    cancel(&cx, cx.param("uploadId"), Caller::of(&claims)).await?;
    no_content()
}

/// Starts an upload of `body.key` owned by the token's subject. With an `Idempotency-Key`, the
/// upload id derives from the subject and the key, so a retried create reaches the same Durable
/// Object, which answers with the upload the first attempt made (see [`idempotent_upload_id`]).
pub async fn start(cx: &Ctx, claims: &Claims, body: CreateUpload, layout: Layout) -> ApiResult<Record> {
    claims.check_key(&body.key)?;
    let upload_id = match cx.header("idempotency-key") {
        Some(key) => idempotent_upload_id(&claims.sub, &key)?,
        None => new_upload_id()?,
    };
    handle(cx, &upload_id, Caller::of(claims))?
        .with_faults(Faults::of(cx))
        .send(Command::Create(NewUpload {
            upload_id: upload_id.clone(),
            key: body.key,
            content_type: body.content_type,
            metadata: body.metadata.unwrap_or_default(),
            size: layout.size,
            part_size: layout.part_size,
            ttl_ms: cx.config.upload_ttl_ms,
        }))
        .await
}

/// Streams the request body straight into R2's `uploadPart` (the bytes never enter wasm), then
/// records the part. The part's number is leased for the whole trip, so that a second copy sent
/// at the same time gets `409 part_in_flight` and the record always names the copy R2 holds.
/// Re-sending a part replaces it. With `Content-MD5`, a part whose bytes do not match is refused
/// and not recorded (any earlier copy of it is forgotten too, since R2 now holds the bad one).
///
/// ## Two small Durable Object calls, not one
/// `BeginPart` takes the lease and answers, in a few fixed fields, all the Worker needs before
/// streaming (the key and R2's upload id: a [`PartGrant`]); `RecordPart` writes one row and
/// answers `null`. Neither lists the parts, so a part costs the same at part 1 and at part
/// 10,000 (bench/run's part-cost phase measures it). One call would not keep issue 8's
/// guarantees:
/// - Recording only after R2, with the pre-stream facts from a per-isolate cache, cannot refuse
///   a second concurrent copy of a part: R2 keeps whichever `uploadPart` finishes last, which
///   no Durable Object call can observe, so the record could name the other copy, or both
///   senders would have been told 200 before the overlap was even noticed.
/// - Leasing only, and letting the Durable Object stream the part into R2 itself, makes one
///   object (one thread, 128 MB) carry every byte of the upload's concurrent parts.
///
/// So the lease stays before the stream, where only the object can grant it, and the cost that
/// grew with the upload (two whole records per part) is what went.
pub async fn receive_part(cx: &Ctx, upload_id: &str, part_number: u16, caller: Caller) -> ApiResult<Part> {
    if cx.media_type().is_some_and(|media| media != "application/octet-stream") {
        return Err(ApiError::UnsupportedMediaType { accept: "application/octet-stream".into() });
    }
    let length = content_length(cx)?;
    let declared_md5 = cx.header("content-md5").map(|h| parse_content_md5(&h)).transpose()?;
    let faults = Faults::of(cx);
    let upload = handle(cx, upload_id, caller)?.with_faults(faults.clone());
    let grant = upload.begin_part(part_number, length).await?;
    let token = grant.token;
    // An upload fed by tus appends counts its bytes by offset: a part sent beside them would
    // break that count.
    if grant.appendable {
        upload.end_part(part_number, token, false).await?;
        let fed_by_tus = "this upload is fed by tus appends (PATCH /tus/{uploadId}), not by parts";
        return Err(ApiError::invalid_field("partNumber", fed_by_tus));
    }
    let etag = match stream_to_r2(cx, &grant, part_number, length, declared_md5, &faults).await {
        Ok(etag) => etag,
        // R2 ended the upload (its seven days, or a complete whose answer was lost): the
        // upload's state says which, as the error.
        Err(Unsent::Gone) => {
            upload.end_part(part_number, token, false).await?;
            upload.send(Command::R2Gone).await?;
            return Err(internal("R2Gone", "answered without an error"));
        }
        // Give the part number back; forget the recorded copy if R2 may now hold another one.
        Err(Unsent::Failed { error, forget }) => {
            upload.end_part(part_number, token, forget).await?;
            return Err(error);
        }
    };
    // Recorded when the bytes were checked on arrival, so that another client can check its
    // own copy against it (`GET /uploads/{id}`; R2's part ETags are not always MD5s).
    let md5 = declared_md5.map(|digest| hex(&digest));
    let part = Part { part_number, etag, size: length, md5 };
    upload.record_part(part.clone(), token, cx.config.upload_ttl_ms).await?;
    Ok(part)
}

/// Why a part was not recorded.
enum Unsent {
    /// R2 no longer knows the multipart upload.
    Gone,
    /// `forget`: R2 may hold these bytes (or part of them) for the part now.
    Failed { error: ApiError, forget: bool },
}

/// The part's trip to R2 under its lease: the body streamed into `uploadPart` and its
/// `Content-MD5` checked on the way. Answers R2's ETag for it.
async fn stream_to_r2(
    cx: &Ctx,
    grant: &PartGrant,
    part_number: u16,
    length: u64,
    declared_md5: Option<[u8; 16]>,
    faults: &Faults,
) -> Result<String, Unsent> {
    let before = |error: ApiError| Unsent::Failed { error, forget: false };
    let after = |error: ApiError| Unsent::Failed { error, forget: true };
    let (stream, check) = match declared_md5 {
        Some(declared) => {
            let (stream, md5) = Md5Of::tee(cx.req.inner().body(), length).map_err(before)?;
            (stream, Some((md5, declared)))
        }
        None => (cx.req.inner().body().filter(|_| length > 0), None),
    };
    let body = stream.map_or(Data::Bytes(Vec::new()), Data::ReadableStream);
    let multipart = cx
        .bucket()
        .and_then(|bucket| {
            let multipart = bucket.resume_multipart_upload(grant.key.clone(), grant.r2_upload_id.clone());
            multipart.or_internal("R2 resumeMultipartUpload")
        })
        .map_err(before)?;
    if faults.at("r2.forget").await.map_err(before)? == Some(Action::Now) {
        multipart.abort().await.or_internal("R2 abort").map_err(before)?;
    }
    let uploaded = match faults.r2("upload-part").await {
        Ok(()) => multipart.upload_part(part_number, body).await.map_err(|e| e.to_string()),
        Err(_) => Err("injected fault".to_string()),
    };
    let uploaded = match uploaded {
        Ok(uploaded) => uploaded,
        Err(e) if is_no_such_upload(&e) => return Err(Unsent::Gone),
        Err(e) => return Err(before(internal("R2 uploadPart", e))),
    };
    if let Some((md5, declared)) = check {
        if md5.finish().await.map_err(after)? != declared {
            return Err(after(ApiError::DigestMismatch { part_number }));
        }
    }
    // Test builds: the record is not reached, and R2 holds a copy it does not name.
    faults.at("part.after-r2").await.map_err(after)?;
    Ok(uploaded.etag())
}

/// Completes the upload from the listed parts, or from all recorded ones.
pub async fn finish(
    cx: &Ctx,
    upload_id: &str,
    parts: Option<Vec<PartRef>>,
    caller: Caller,
) -> ApiResult<CompletedObject> {
    let upload = handle(cx, upload_id, caller)?.with_faults(Faults::of(cx));
    let record = upload.send(Command::Complete { parts, ttl_ms: cx.config.upload_ttl_ms }).await?;
    record.upload.object.ok_or_else(|| internal("complete", "no object after complete"))
}

/// Aborts the upload and frees its parts.
pub async fn cancel(cx: &Ctx, upload_id: &str, caller: Caller) -> ApiResult<()> {
    let upload = handle(cx, upload_id, caller)?.with_faults(Faults::of(cx));
    upload.send(Command::Abort { ttl_ms: cx.config.upload_ttl_ms }).await?;
    Ok(())
}

fn handle(cx: &Ctx, upload_id: &str, caller: Caller) -> ApiResult<UploadHandle> {
    if !is_upload_id(upload_id) {
        return Err(ApiError::UploadNotFound);
    }
    UploadHandle::new(&cx.env, upload_id, caller)
}

/// R2 must know a part's length before the first byte, so chunked bodies are refused.
fn content_length(cx: &Ctx) -> ApiResult<u64> {
    let header = cx.header("content-length").ok_or(ApiError::LengthRequired)?;
    header.trim().parse::<u64>().map_err(|_| ApiError::LengthRequired)
}

/// 128 random bits, as 32 lowercase hex digits: unguessable, and safe in any URL.
fn new_upload_id() -> ApiResult<String> {
    random_hex::<16>().or_internal("random upload id")
}

/// The upload id for `Idempotency-Key: key` from `subject`: SHA-256 of the two, as the 32 hex
/// digits of its first 128 bits. Another subject's same key is another upload.
fn idempotent_upload_id(subject: &str, key: &str) -> ApiResult<String> {
    let key = key.trim();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        let message = format!("must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters");
        return Err(ApiError::invalid_field("Idempotency-Key", message));
    }
    let hash = hmac_sha256::Hash::hash(format!("r2mpu upload\0{subject}\0{key}").as_bytes());
    Ok(hex(&hash[..16]))
}

/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Cheap shape check, so that junk ids never wake a Durable Object.
fn is_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_are_32_lowercase_hex_digits() {
        let id = new_upload_id().unwrap();
        assert!(is_upload_id(&id), "{id}");
        assert_ne!(id, new_upload_id().unwrap());
        assert!(!is_upload_id("../../etc"));
        assert!(!is_upload_id(&id.to_uppercase()));
    }

    #[test]
    fn an_idempotency_key_names_one_upload_per_subject() {
        let id = idempotent_upload_id("alice", "k-1").unwrap();
        assert!(is_upload_id(&id), "{id}");
        assert_eq!(idempotent_upload_id("alice", " k-1 ").unwrap(), id);
        assert_ne!(idempotent_upload_id("bob", "k-1").unwrap(), id);
        assert_ne!(idempotent_upload_id("alice", "k-2").unwrap(), id);
        // The separator keeps ("a", "b\0c") and ("a\0b", "c") apart.
        assert_ne!(idempotent_upload_id("a", "bc").unwrap(), idempotent_upload_id("ab", "c").unwrap());
        for bad in ["", "  ", "tab\there", &"k".repeat(256), "ключ"] {
            assert!(idempotent_upload_id("alice", bad).is_err(), "{bad:?}");
        }
    }
}
