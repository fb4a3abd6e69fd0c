//! A part's trip through the Worker: leased, streamed into R2's `uploadPart` with its
//! `Content-MD5` checked on the way, then recorded. Shared by the REST API and the guide's
//! protocol.

use r2mpu_api::types::Part;
use worker::Data;

use crate::error::{internal, ApiError, ApiResult, OrInternal};
use crate::faults::{Action, Faults};
use crate::hex::hex;
use crate::http::body::in_large_chunks;
use crate::http::Ctx;
use crate::upload::aws_chunked::{self, AwsChunked};
use crate::upload::command::{Caller, Command, PartGrant};
use crate::upload::digest::{parse_content_md5, DigestsOf};
use crate::upload::handle::UploadHandle;
use crate::upload::lease::Held;
use crate::upload::r2::is_no_such_upload;

/// Streams the request body straight into R2's `uploadPart` (the bytes never enter wasm), then
/// records the part. The part's number is leased for the whole trip, so that a second copy sent
/// at the same time gets `409 part_in_flight` and the record always names the copy R2 holds;
/// the lease lives only while the bytes flow ([`Held`]), so a copy whose client is gone frees
/// the number within seconds for the client's re-send.
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
    receive_checked(cx, upload_id, part_number, caller, Expected::md5_of(cx)?).await
}

/// The digests a part's bytes must have, checked as they stream: a mismatch records nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expected {
    /// `Content-MD5`.
    pub md5: Option<[u8; 16]>,
    /// S3's `x-amz-content-sha256`, when it is a hex digest.
    pub sha256: Option<[u8; 32]>,
    /// An `aws-chunked` body: decoded on the way, its length the decoded one, its trailing
    /// checksum checked before R2 has the last byte.
    pub chunked: Option<AwsChunked>,
}

impl Expected {
    /// The request's `Content-MD5`, if any.
    pub fn md5_of(cx: &Ctx) -> ApiResult<Expected> {
        let md5 = cx.header("content-md5").map(|h| parse_content_md5(&h)).transpose()?;
        Ok(Expected { md5, ..Expected::default() })
    }

    fn algorithms(&self) -> Vec<&'static str> {
        let mut algorithms = Vec::new();
        if self.md5.is_some() {
            algorithms.push("MD5");
        }
        if self.sha256.is_some() {
            algorithms.push("SHA-256");
        }
        algorithms
    }

    /// The error for the first digest in `got` (in [`Expected::algorithms`]' order) that differs.
    fn check(&self, part_number: u16, got: &[Vec<u8>]) -> ApiResult<()> {
        let mut got = got.iter();
        if let Some(md5) = self.md5 {
            if got.next().map(Vec::as_slice) != Some(&md5[..]) {
                return Err(ApiError::DigestMismatch { part_number });
            }
        }
        if let Some(sha256) = self.sha256 {
            if got.next().map(Vec::as_slice) != Some(&sha256[..]) {
                return Err(ApiError::ContentSha256Mismatch);
            }
        }
        Ok(())
    }
}

/// [`receive_part`] for any protocol: any media type, the bytes checked against `expected`.
pub async fn receive_checked(
    cx: &Ctx,
    upload_id: &str,
    part_number: u16,
    caller: Caller,
    expected: Expected,
) -> ApiResult<Part> {
    let length = match expected.chunked {
        Some(chunked) => chunked.decoded_length,
        None => content_length(cx)?,
    };
    let declared_md5 = expected.md5;
    let faults = cx.faults();
    let upload = UploadHandle::of(cx, upload_id, caller)?;
    let asked = js_sys::Date::now();
    let grant = upload.begin_part(part_number, length).await?;
    let token = grant.token;
    // An upload fed by tus appends counts its bytes by offset: a part sent beside them would
    // break that count.
    if grant.appendable {
        upload.end_part(part_number, token, false).await?;
        let fed_by_tus = "this upload is fed by tus appends (PATCH /tus/{uploadId}), not by parts";
        return Err(ApiError::invalid_field("partNumber", fed_by_tus));
    }
    let held = Held::new(upload.clone(), part_number, token, length, asked);
    let sent = held.keep(async {
        let etag = stream_to_r2(cx, &grant, &held, part_number, length, expected, &faults).await?;
        // Recorded when the bytes were checked on arrival, so that another client can check its
        // own copy against it (`GET /uploads/{id}`; R2's part ETags are not always MD5s).
        let md5 = declared_md5.map(|digest| hex(&digest));
        let part = Part { part_number, etag, size: length, md5 };
        upload
            .record_part(part.clone(), token, cx.config.upload_ttl_ms)
            .await
            .map_err(|error| Unsent::Unrecorded { error })?;
        Ok(part)
    });
    match sent.await {
        Ok(part) => Ok(part),
        // R2 ended the upload (its seven days, or a complete whose answer was lost): the
        // upload's state says which, as the error.
        Err(Unsent::Gone) => {
            upload.end_part(part_number, token, false).await?;
            upload.send(Command::R2Gone).await?;
            Err(internal("R2Gone", "answered without an error"))
        }
        // Give the part number back; forget the recorded copy if R2 may now hold another one.
        Err(Unsent::Failed { error, forget }) => {
            upload.end_part(part_number, token, forget).await?;
            Err(error)
        }
        Err(Unsent::Unrecorded { error }) => Err(error),
    }
}

/// Why a part was not recorded.
enum Unsent {
    /// R2 no longer knows the multipart upload.
    Gone,
    /// `forget`: R2 may hold these bytes (or part of them) for the part now.
    Failed { error: ApiError, forget: bool },
    /// R2 took the part, and the record refused it (the lease was lost, the upload finished).
    Unrecorded { error: ApiError },
}

/// The part's trip to R2 under its lease: the body streamed into `uploadPart` and its
/// `Content-MD5` checked on the way. Answers R2's ETag for it.
async fn stream_to_r2(
    cx: &Ctx,
    grant: &PartGrant,
    held: &Held,
    part_number: u16,
    length: u64,
    expected: Expected,
    faults: &Faults,
) -> Result<String, Unsent> {
    let before = |error: ApiError| Unsent::Failed { error, forget: false };
    let after = |error: ApiError| Unsent::Failed { error, forget: true };
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
    // Test builds: R2's uploadPart fails before it reads a byte.
    faults.r2("upload-part").await.map_err(before)?;
    // The body is piped only now, to R2 at once: a body locked by a pipe nobody reads could not
    // be drained after an early answer, and the client would see its connection dropped.
    let (body, decoding) = match (cx.req.inner().body(), expected.chunked) {
        (Some(body), Some(chunked)) => {
            let framed = content_length(cx).unwrap_or(u64::MAX);
            let (decoded, decoding) = aws_chunked::decode(in_large_chunks(&body, framed), chunked).map_err(before)?;
            (Some(decoded), Some(decoding))
        }
        (body, _) => (body, None),
    };
    let digests = DigestsOf::new(&expected.algorithms()).map_err(before)?;
    // A framed body is read to its end even when it carries no data: its trailer is checked.
    let (body, watch) = match body.filter(|_| length > 0 || decoding.is_some()) {
        Some(stream) => {
            let (watched, watch) = held.watch(stream, length, digests.hashers()).map_err(before)?;
            (Data::ReadableStream(watched), Some(watch))
        }
        None => (Data::Bytes(Vec::new()), None),
    };
    let uploaded = multipart.upload_part(part_number, body).await.map_err(|e| e.to_string());
    // The lease was lost while the bytes came (taken over by a re-send, or the upload finished),
    // or the body broke off: either way R2 did not take this copy.
    if uploaded.is_err() {
        // The framing or the trailer's checksum failed the stream before R2 had all of it.
        if let Some(failure) = decoding.as_ref().and_then(|d| d.failure.get()) {
            return Err(before(failure));
        }
        if let Some(failure) = held.failure(watch.as_ref()).await {
            return Err(before(failure));
        }
    }
    let uploaded = match uploaded {
        Ok(uploaded) => uploaded,
        Err(e) if is_no_such_upload(&e) => return Err(Unsent::Gone),
        Err(e) => return Err(before(internal("R2 uploadPart", e))),
    };
    if !digests.is_empty() {
        expected.check(part_number, &digests.finish().await.map_err(after)?).map_err(after)?;
    }
    // Test builds: the record is not reached, and R2 holds a copy it does not name.
    faults.at("part.after-r2").await.map_err(after)?;
    Ok(uploaded.etag())
}

/// R2 must know a part's length before the first byte, so chunked bodies are refused.
fn content_length(cx: &Ctx) -> ApiResult<u64> {
    let header = cx.header("content-length").ok_or(ApiError::LengthRequired)?;
    header.trim().parse::<u64>().map_err(|_| ApiError::LengthRequired)
}
