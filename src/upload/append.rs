//! Appends: the bytes of tus and IETF-draft `PATCH`es, cut at the upload's part boundaries.
//!
//! R2 wants every part but the last the same size; tus clients send any number of bytes per
//! request. An appendable upload therefore holds, durably, an offset and a *tail*: the bytes past
//! the last full part (fewer than one part), kept in a temporary R2 object of their own
//! ([`TAIL_PREFIX`], a new key per append, so R2's one write per second per key never bites).
//! An append streams the old tail and then the request body into R2: every full part to
//! `uploadPart` as it fills, the rest into a new tail object, and the last part, when the upload's
//! length is reached. Each part is recorded, with the offset past it, as soon as R2 has it
//! ([`Keep::EachPart`]), so a request that breaks off keeps its whole parts; the rest (the new
//! tail) is recorded once the body has ended. An append whose `Upload-Checksum` covers the whole
//! body records nothing until it is checked ([`Keep::AllOrNothing`]). Either way a record names
//! only bytes R2 holds, and a request cut short, a checksum that does not match or a crash
//! leaves the offset at a durable byte, so `HEAD` reports exactly what a client may resume from.
//!
//! Each part's lease lives only while its bytes flow ([`Held`]), so a `PATCH` whose client is
//! gone frees its offset within seconds for the client's resumed `PATCH`.
//!
//! Bytes never enter wasm ([`Source`] reads the body). An append that is one piece (the usual case: a client sending chunks
//! of the part size, see [`fitted_part_size`]) hands its request body to R2 untouched. Otherwise
//! the body is read 1 MiB at a time into JS `Uint8Array`s, sliced with `subarray` at a boundary
//! and written to a `FixedLengthStream` that R2 reads. Each write is awaited, so the isolate
//! holds about one read (1 MiB) per stream whatever the request's size.

use r2mpu_api::layout::{Layout, MAX_PARTS};
use r2mpu_api::types::Part;
use wasm_bindgen_futures::JsFuture;
use worker::worker_sys::FixedLengthStream;
use worker::{Bucket, Data, MultipartUpload, ResponseBody, UploadedPart};

use crate::error::{internal, ApiError, ApiResult, OrInternal, OrInternalJs};
use crate::http::body;
use crate::upload::command::{Appends, Command, Record};
use crate::upload::digest::Hashers;
use crate::upload::handle::UploadHandle;
use crate::upload::lease::Held;
use crate::upload::r2::is_no_such_upload;
pub use crate::upload::source::Source;

/// Where tails live in the bucket: `{TAIL_PREFIX}{uploadId}/{random}`, under the key space
/// users cannot reach ([`r2mpu_api::key::RESERVED_PREFIX`]).
pub const TAIL_PREFIX: &str = ".r2mpu/tails/";

/// Where one piece of an append goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// R2 part `n`: full, or the last one.
    Part(u16),
    /// The new tail object.
    Tail,
}

/// One piece of an append: the first `from_tail` bytes of the old tail (only ever the first
/// piece has any), then the next `from_body` bytes of the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub dest: Dest,
    pub from_tail: u64,
    pub from_body: u64,
}

impl Piece {
    pub fn bytes(&self) -> u64 {
        self.from_tail + self.from_body
    }
}

/// Cuts an append of `incoming` bytes at `offset` (of which the last `tail` bytes are the tail)
/// into pieces, for an upload of `part_size` parts and `size` bytes if known. The last byte of
/// `size` makes the rest the last part; otherwise the rest is the new tail.
pub fn cut(part_size: u64, offset: u64, tail: u64, incoming: u64, size: Option<u64>) -> ApiResult<Vec<Piece>> {
    let end = end_of(Layout { part_size, size }, offset, incoming)?;
    let room = part_size.saturating_mul(u64::from(MAX_PARTS));
    let full_parts = (offset - tail) / part_size;
    let finishes = size == Some(end);
    let (mut tail_left, mut body_left) = (tail, incoming);
    let mut pieces = Vec::new();
    let mut next = u16::try_from(full_parts + 1).map_err(|_| ApiError::BeyondLength { size: room })?;
    while tail_left + body_left >= part_size {
        let from_tail = tail_left.min(part_size);
        let from_body = part_size - from_tail;
        pieces.push(Piece { dest: Dest::Part(next), from_tail, from_body });
        (tail_left, body_left, next) = (tail_left - from_tail, body_left - from_body, next + 1);
    }
    let rest = Piece { dest: Dest::Tail, from_tail: tail_left, from_body: body_left };
    if finishes {
        // The last part: what is left, or an empty object's one empty part.
        if rest.bytes() > 0 || offset + incoming == 0 {
            pieces.push(Piece { dest: Dest::Part(next), ..rest });
        }
    } else if rest.bytes() > 0 {
        pieces.push(rest);
    }
    Ok(pieces)
}

/// Where an append of `incoming` bytes at `offset` ends, if the upload of `layout` can take it:
/// within its length, and within R2's 10,000 parts of its part size (all a deferred length may
/// grow to), with no number wrapping past 2^64.
pub fn end_of(layout: Layout, offset: u64, incoming: u64) -> ApiResult<u64> {
    let room = layout.part_size.saturating_mul(u64::from(MAX_PARTS));
    let limit = layout.size.unwrap_or(room);
    match offset.checked_add(incoming) {
        Some(end) if limit <= room && end <= limit => Ok(end),
        _ => Err(ApiError::BeyondLength { size: limit.min(room) }),
    }
}

/// The part size for an upload whose first append, of `incoming` bytes, arrives while it holds
/// no byte yet: the append's own length, when that is a valid layout for the upload, so that a
/// client sending chunks of one size (tus clients do) fills exactly one part per request and
/// never needs a tail. `None` keeps `layout` as it is: a chunk that is the whole upload, one
/// below R2's 5 MiB minimum or above the deployment's largest part, or one that would leave a
/// deferred-length upload room for less than its current 10,000 parts hold.
pub fn fitted_part_size(layout: Layout, incoming: u64, max_part_size: u64) -> Option<u64> {
    let room = match layout.size {
        Some(size) => size,
        None => layout.part_size.saturating_mul(u64::from(MAX_PARTS)),
    };
    let fits = incoming != layout.part_size
        && incoming < room
        && incoming.saturating_mul(u64::from(MAX_PARTS)) >= room
        && Layout::plan(Some(room), Some(incoming), max_part_size).is_ok();
    fits.then_some(incoming)
}

/// When an append's parts are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Each part as soon as R2 has it, with the offset past it: a request that breaks off keeps
    /// every whole part that reached R2 (tus 1.0: the server SHOULD keep what it received).
    EachPart { ttl_ms: u64 },
    /// None until the whole body is checked: an `Upload-Checksum` covers all of it.
    AllOrNothing,
}

/// What an append sent to R2 and has not recorded yet, for the last `Append` command.
pub struct Sent {
    /// Each part with the lease it was sent under.
    pub parts: Vec<(Part, i64)>,
    /// The new tail object, if any, and its size.
    pub tail: Option<(String, u64)>,
    /// The offset recorded so far: where the last `Append` starts.
    pub offset: u64,
    /// The record after the parts recorded on the way ([`Keep::EachPart`]), if any were.
    pub recorded: Option<Record>,
}

impl Sent {
    /// Undoes what was sent and not recorded: each part's lease given back, the new tail's
    /// object deleted.
    pub async fn give_back(&self, bucket: &Bucket, upload: &UploadHandle) -> ApiResult<()> {
        for (part, token) in &self.parts {
            upload.end_part(part.part_number, *token, false).await?;
        }
        if let Some((key, _)) = &self.tail {
            let _ = bucket.delete(key.clone()).await;
        }
        Ok(())
    }
}

/// Why an append stopped: the error, and the leases it still holds (to give back).
pub struct Stopped {
    pub error: ApiError,
    pub leases: Vec<(u16, i64)>,
}

/// Streams `piece` (old tail bytes, then body bytes) into one `FixedLengthStream` and hands its
/// readable side to `send` (R2's `uploadPart` or `put`), writing while R2 reads.
async fn pipe<F, Fut, T>(tail: &mut Option<Source>, body: &mut Source, piece: Piece, send: F) -> ApiResult<T>
where
    F: FnOnce(Data) -> Fut,
    Fut: std::future::Future<Output = ApiResult<T>>,
{
    if piece.from_tail == 0 && piece.from_body > 0 {
        if let Some(stream) = body.whole(piece.from_body) {
            return send(Data::ReadableStream(stream)).await;
        }
    }
    let fixed =
        FixedLengthStream::new_big_int(js_sys::BigInt::from(piece.bytes())).or_internal_js("FixedLengthStream")?;
    let writer = fixed.writable().get_writer().or_internal_js("FixedLengthStream writer")?;
    let data = if piece.bytes() == 0 { Data::Bytes(Vec::new()) } else { Data::ReadableStream(fixed.readable()) };
    let write = async {
        let written = async {
            if piece.from_tail > 0 {
                let tail = tail.as_mut().ok_or_else(|| internal("append", "no tail to read"))?;
                tail.copy(&writer, piece.from_tail).await?;
            }
            body.copy(&writer, piece.from_body).await
        }
        .await;
        match written {
            Ok(()) => JsFuture::from(writer.close()).await.map(|_| ()).or_internal_js("closing a part"),
            Err(e) => {
                // R2's read fails too, so `send` returns.
                let _ = JsFuture::from(writer.abort()).await;
                Err(e)
            }
        }
    };
    let (written, sent) = futures_util::future::join(write, send(data)).await;
    match (written, sent) {
        // The write failed because R2 stopped reading: R2's error says why.
        (Err(ApiError::Internal), Err(sent)) => Err(sent),
        (Err(written), _) => Err(written),
        (Ok(()), sent) => sent,
    }
}

/// Sends an append's pieces to R2 in order, each full or last part under a lease taken with
/// `BeginPart` and kept while its bytes flow ([`Held`]); with [`Keep::EachPart`], records each
/// part as it lands, and deletes the old tail's object once a record no longer names it.
pub async fn send(
    bucket: &Bucket,
    record: &Record,
    appends: &Appends,
    pieces: &[Piece],
    body: &mut Source,
    upload: &UploadHandle,
    keep: Keep,
) -> Result<Sent, Stopped> {
    let mut taken: Vec<(u16, i64)> = Vec::new();
    let mut sent = Sent { parts: Vec::new(), tail: None, offset: appends.offset, recorded: None };
    let result: ApiResult<()> = async {
        let mut tail = match (&appends.tail_key, pieces.first()) {
            (Some(key), Some(first)) if first.from_tail > 0 => {
                let object = bucket.get(key.clone()).execute().await.or_internal("R2 get tail")?;
                let object = object.ok_or_else(|| internal("append", format!("tail {key} is missing")))?;
                let body = object.body().ok_or_else(|| internal("append", "tail without a body"))?;
                match body.response_body().or_internal("tail body")? {
                    ResponseBody::Stream(stream) => Some(Source::new(Some(stream), appends.tail_size)),
                    _ => return Err(internal("append", "tail body is not a stream")),
                }
            }
            _ => None,
        };
        let multipart = bucket
            .resume_multipart_upload(record.upload.key.clone(), record.r2_upload_id.clone())
            .or_internal("R2 resumeMultipartUpload")?;
        for piece in pieces {
            match piece.dest {
                Dest::Part(n) => {
                    let asked = js_sys::Date::now();
                    let token = upload.begin_part(n, piece.bytes()).await?.token;
                    taken.push((n, token));
                    upload.faults().r2("append-part").await?;
                    let held = Held::new(upload.clone(), n, token, piece.bytes(), asked);
                    let send = |data| upload_part(&multipart, &held, n, data, piece.bytes());
                    let uploaded = held
                        .keep(async {
                            let uploaded = pipe(&mut tail, body, *piece, send).await?;
                            // Test builds: R2 holds the part, its record is not written, its
                            // lease is still renewed.
                            upload.faults().at("append.after-r2").await?;
                            Ok::<_, ApiError>(uploaded)
                        })
                        .await?;
                    let part = Part { part_number: n, etag: uploaded.etag(), size: piece.bytes(), md5: None };
                    let Keep::EachPart { ttl_ms } = keep else {
                        sent.parts.push((part, token));
                        continue;
                    };
                    let to = sent.offset + piece.from_body;
                    let command =
                        Command::Append { from: sent.offset, to, parts: vec![(part, token)], tail: None, ttl_ms };
                    let recorded = upload.send(command).await?;
                    taken.retain(|(number, _)| *number != n);
                    if sent.recorded.is_none() {
                        delete_old_tail(bucket, appends).await;
                    }
                    (sent.offset, sent.recorded) = (to, Some(recorded));
                }
                Dest::Tail => {
                    let key = new_tail_key(&record.upload.upload_id)?;
                    pipe(&mut tail, body, *piece, |data| async {
                        let stream = match &data {
                            Data::ReadableStream(stream) => Some(stream.clone()),
                            _ => None,
                        };
                        let Err(e) = bucket.put(key.clone(), data).execute().await else { return Ok(()) };
                        match stream {
                            Some(stream) if body::broke(&stream).await => Err(ApiError::BodyIncomplete),
                            _ => Err(internal("R2 put tail", e)),
                        }
                    })
                    .await?;
                    sent.tail = Some((key, piece.bytes()));
                }
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => Ok(sent),
        Err(error) => {
            if let Some((key, _)) = &sent.tail {
                let _ = bucket.delete(key.clone()).await;
            }
            Err(Stopped { error, leases: taken })
        }
    }
}

/// One part into R2's `uploadPart`, its stream watched by its lease: a lease lost meanwhile, or
/// a body that broke off, is the error, since it is why R2's read failed ([`Held::failure`]).
async fn upload_part(
    multipart: &MultipartUpload,
    held: &Held,
    part_number: u16,
    data: Data,
    length: u64,
) -> ApiResult<UploadedPart> {
    let (data, watch) = match data {
        Data::ReadableStream(stream) => {
            let (watched, watch) = held.watch(stream, length, Hashers::default())?;
            (Data::ReadableStream(watched), Some(watch))
        }
        other => (other, None),
    };
    let e = match multipart.upload_part(part_number, data).await {
        Ok(uploaded) => return Ok(uploaded),
        Err(e) => e.to_string(),
    };
    if let Some(failure) = held.failure(watch.as_ref()).await {
        return Err(failure);
    }
    Err(if is_no_such_upload(&e) { ApiError::UploadAborted } else { internal("R2 uploadPart", e) })
}

/// The old tail's object, once no record names it.
pub async fn delete_old_tail(bucket: &Bucket, appends: &Appends) {
    if let Some(old) = appends.tail_key.clone().filter(|_| appends.tail_size > 0) {
        if let Err(e) = bucket.delete(old).await {
            worker::console_warn!("deleting a tail: {e}");
        }
    }
}

fn new_tail_key(upload_id: &str) -> ApiResult<String> {
    let random = crate::hex::random_hex::<8>().or_internal("random tail key")?;
    Ok(format!("{TAIL_PREFIX}{upload_id}/{random}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 5;

    fn part(n: u16, from_tail: u64, from_body: u64) -> Piece {
        Piece { dest: Dest::Part(n), from_tail, from_body }
    }

    fn tail(from_tail: u64, from_body: u64) -> Piece {
        Piece { dest: Dest::Tail, from_tail, from_body }
    }

    #[test]
    fn tails_live_where_users_cannot_reach() {
        assert!(TAIL_PREFIX.starts_with(r2mpu_api::key::RESERVED_PREFIX));
    }

    #[test]
    fn a_short_append_only_grows_the_tail() {
        assert_eq!(cut(P, 0, 0, 3, None), Ok(vec![tail(0, 3)]));
        assert_eq!(cut(P, 3, 3, 1, Some(100)), Ok(vec![tail(3, 1)]));
    }

    #[test]
    fn the_old_tail_opens_the_next_part_and_full_parts_go_as_they_fill() {
        // 2 parts done, 3 tail bytes, 9 more: part 3 = 3 + 2, part 4 = 5, tail 2.
        assert_eq!(cut(P, 13, 3, 9, None), Ok(vec![part(3, 3, 2), part(4, 0, 5), tail(0, 2)]));
        assert_eq!(cut(P, 13, 3, 2, None), Ok(vec![part(3, 3, 2)]), "exactly one part: no tail");
    }

    #[test]
    fn the_last_byte_makes_the_rest_the_last_part() {
        assert_eq!(cut(P, 3, 3, 9, Some(12)), Ok(vec![part(1, 3, 2), part(2, 0, 5), part(3, 0, 2)]));
        assert_eq!(cut(P, 5, 0, 5, Some(10)), Ok(vec![part(2, 0, 5)]), "a size of whole parts");
        assert_eq!(cut(P, 0, 0, 0, Some(0)), Ok(vec![part(1, 0, 0)]), "an empty object is one empty part");
        assert_eq!(cut(P, 10, 0, 0, Some(10)), Ok(vec![]), "nothing left to send");
    }

    #[test]
    fn a_first_append_of_a_valid_part_size_sets_the_part_size() {
        const MIB: u64 = 1 << 20;
        let known = |size| Layout { part_size: 16 * MIB, size: Some(size) };
        let deferred = Layout { part_size: 16 * MIB, size: None };
        assert_eq!(fitted_part_size(known(256 * MIB), 8 * MIB, 100 * MIB), Some(8 * MIB), "tus-js-client's 8 MiB");
        assert_eq!(fitted_part_size(known(256 * MIB), 4 * MIB, 100 * MIB), None, "below R2's minimum");
        assert_eq!(fitted_part_size(known(256 * MIB), 200 * MIB, 100 * MIB), None, "above MAX_PART_SIZE");
        assert_eq!(fitted_part_size(known(8 * MIB), 8 * MIB, 100 * MIB), None, "the whole upload: one part anyway");
        assert_eq!(fitted_part_size(known(100_000 * MIB), 8 * MIB, 100 * MIB), None, "more than 10,000 parts");
        assert_eq!(fitted_part_size(known(256 * MIB), 16 * MIB, 100 * MIB), None, "already that size");
        assert_eq!(fitted_part_size(deferred, 8 * MIB, 100 * MIB), None, "less room for a deferred length");
        assert_eq!(fitted_part_size(deferred, 32 * MIB, 100 * MIB), Some(32 * MIB));
    }

    #[test]
    fn an_append_past_the_length_is_refused() {
        assert_eq!(cut(P, 3, 3, 8, Some(10)), Err(ApiError::BeyondLength { size: 10 }));
    }

    /// Issue 19, items 9 and 11: nothing wraps, whatever the numbers.
    #[test]
    fn an_append_past_2_64_bytes_or_10000_parts_is_refused_not_wrapped() {
        let room = P * u64::from(MAX_PARTS);
        assert_eq!(cut(P, 3, 3, u64::MAX, None), Err(ApiError::BeyondLength { size: room }));
        assert_eq!(cut(P, room - 1, 4, 2, None), Err(ApiError::BeyondLength { size: room }), "part 10,001");
        assert_eq!(cut(P, 3, 3, u64::MAX, Some(u64::MAX)), Err(ApiError::BeyondLength { size: room }));
        assert_eq!(cut(P, room - 5, 0, 5, Some(room)), Ok(vec![part(10_000, 0, 5)]), "the last part fits");
    }
}
