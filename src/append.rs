//! Appends: the bytes of tus and IETF-draft `PATCH`es, cut at the upload's part boundaries.
//!
//! R2 wants every part but the last the same size; tus clients send any number of bytes per
//! request. An appendable upload therefore holds, durably, an offset and a *tail*: the bytes past
//! the last full part (fewer than one part), kept in a temporary R2 object of their own
//! ([`TAIL_PREFIX`], a new key per append, so R2's one write per second per key never bites).
//! An append streams the old tail and then the request body into R2: every full part to
//! `uploadPart` as it fills, the rest into a new tail object, and the last part, when the upload's
//! length is reached. Only then does one `Append` command record the parts, the new offset and
//! the new tail in the Durable Object, all at once: a request cut short, a checksum that does not
//! match or a crash leaves the offset where it was, so `HEAD` reports exactly the durable bytes.
//!
//! Bytes never enter wasm: chunks stay JS `Uint8Array`s, sliced with `subarray` at a boundary and
//! written to a `FixedLengthStream` that R2 reads. Each write is awaited, so the isolate holds
//! about one chunk per stream whatever the request's size.

use js_sys::{Reflect, Uint8Array};
use r2mpu_api::types::Part;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStream, ReadableStreamDefaultReader, WritableStreamDefaultWriter};
use worker::worker_sys::FixedLengthStream;
use worker::{Bucket, Data, ResponseBody};

use crate::digest::Digesting;
use crate::error::{internal, ApiError, ApiResult, OrInternal};
use crate::state::{is_no_such_upload, Appends, Record, UploadHandle};

/// Where tails live in the bucket: `{TAIL_PREFIX}{uploadId}/{random}`.
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
    if let Some(size) = size {
        if offset + incoming > size {
            return Err(ApiError::BeyondLength { size });
        }
    }
    let full_parts = (offset - tail) / part_size;
    let finishes = size == Some(offset + incoming);
    let (mut tail_left, mut body_left) = (tail, incoming);
    let mut pieces = Vec::new();
    let mut next = full_parts as u16 + 1;
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

/// What an append sent to R2, for the `Append` command to record.
pub struct Sent {
    /// Each part with the lease it was sent under.
    pub parts: Vec<(Part, i64)>,
    /// The new tail object, if any, and its size.
    pub tail: Option<(String, u64)>,
}

/// Reads a stream chunk by chunk, keeping the unread end of a chunk cut at a boundary.
pub struct Source {
    reader: ReadableStreamDefaultReader,
    pending: Option<Uint8Array>,
    /// Hashes every byte read, for tus's `Upload-Checksum`.
    digest: Option<Digesting>,
}

impl Source {
    pub fn new(stream: ReadableStream) -> ApiResult<Source> {
        let reader = stream.get_reader().unchecked_into::<ReadableStreamDefaultReader>();
        Ok(Source { reader, pending: None, digest: None })
    }

    /// The same source, hashing every byte it reads with `digest`.
    pub fn hashed(self, digest: Digesting) -> Source {
        Source { digest: Some(digest), ..self }
    }

    /// The digest of everything read, once the body is read to its end.
    pub async fn digest(&mut self) -> ApiResult<Option<Vec<u8>>> {
        if !self.is_done().await? {
            return Err(ApiError::invalid_field("Content-Length", "the body is longer"));
        }
        match self.digest.take() {
            Some(digest) => Ok(Some(digest.finish().await?)),
            None => Ok(None),
        }
    }

    async fn next(&mut self) -> ApiResult<Option<Uint8Array>> {
        if let Some(chunk) = self.pending.take() {
            return Ok(Some(chunk));
        }
        loop {
            let result = JsFuture::from(self.reader.read()).await.map_err(|e| internal("reading a body", js(&e)))?;
            let done = Reflect::get(&result, &"done".into()).ok().and_then(|d| d.as_bool()).unwrap_or(true);
            if done {
                return Ok(None);
            }
            let value = Reflect::get(&result, &"value".into()).map_err(|e| internal("a chunk", js(&e)))?;
            let chunk: Uint8Array = value.dyn_into().map_err(|_| internal("a chunk", "not bytes"))?;
            if chunk.length() > 0 {
                if let Some(digest) = &self.digest {
                    digest.write(&chunk).await?;
                }
                return Ok(Some(chunk));
            }
        }
    }

    /// Writes exactly `n` bytes to `writer`. A body that ends early is the client's doing.
    async fn copy(&mut self, writer: &WritableStreamDefaultWriter, mut n: u64) -> ApiResult<()> {
        while n > 0 {
            let chunk = self.next().await?.ok_or(ApiError::invalid_field("Content-Length", "the body ended early"))?;
            let len = u64::from(chunk.length());
            let chunk = if len > n {
                self.pending = Some(chunk.subarray(n as u32, len as u32));
                chunk.subarray(0, n as u32)
            } else {
                chunk
            };
            n -= u64::from(chunk.length());
            JsFuture::from(writer.write_with_chunk(&chunk)).await.map_err(|e| internal("writing to R2", js(&e)))?;
        }
        Ok(())
    }

    /// Whether the stream has no bytes left.
    pub async fn is_done(&mut self) -> ApiResult<bool> {
        let chunk = self.next().await?;
        let done = chunk.is_none();
        self.pending = chunk;
        Ok(done)
    }
}

/// Streams `piece` (old tail bytes, then body bytes) into one `FixedLengthStream` and hands its
/// readable side to `send` (R2's `uploadPart` or `put`), writing while R2 reads.
async fn pipe<F, Fut, T>(tail: &mut Option<Source>, body: &mut Source, piece: Piece, send: F) -> ApiResult<T>
where
    F: FnOnce(Data) -> Fut,
    Fut: std::future::Future<Output = ApiResult<T>>,
{
    let fixed = FixedLengthStream::new_big_int(js_sys::BigInt::from(piece.bytes()))
        .map_err(|e| internal("FixedLengthStream", js(&e)))?;
    let writer = fixed.writable().get_writer().map_err(|e| internal("FixedLengthStream writer", js(&e)))?;
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
            Ok(()) => JsFuture::from(writer.close()).await.map(|_| ()).map_err(|e| internal("closing a part", js(&e))),
            Err(e) => {
                // R2's read fails too, so `send` returns.
                let _ = JsFuture::from(writer.abort()).await;
                Err(e)
            }
        }
    };
    let (written, sent) = futures_util::future::join(write, send(data)).await;
    written?;
    sent
}

/// Sends an append's pieces to R2 in order, each full or last part under a lease taken with
/// `BeginPart`. On failure the leases taken so far are returned for giving back.
pub async fn send(
    bucket: &Bucket,
    record: &Record,
    appends: &Appends,
    pieces: &[Piece],
    body: &mut Source,
    upload: &UploadHandle,
) -> Result<Sent, (ApiError, Vec<(u16, i64)>)> {
    let mut taken: Vec<(u16, i64)> = Vec::new();
    let mut sent = Sent { parts: Vec::new(), tail: None };
    let result: ApiResult<()> = async {
        let mut tail = match (&appends.tail_key, pieces.first()) {
            (Some(key), Some(first)) if first.from_tail > 0 => {
                let object = bucket.get(key.clone()).execute().await.or_internal("R2 get tail")?;
                let object = object.ok_or_else(|| internal("append", format!("tail {key} is missing")))?;
                let body = object.body().ok_or_else(|| internal("append", "tail without a body"))?;
                match body.response_body().or_internal("tail body")? {
                    ResponseBody::Stream(stream) => Some(Source::new(stream)?),
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
                    let token = upload.begin_part(n, piece.bytes()).await?.token;
                    taken.push((n, token));
                    let uploaded = pipe(&mut tail, body, *piece, |data| async {
                        multipart.upload_part(n, data).await.map_err(|e| {
                            let e = e.to_string();
                            if is_no_such_upload(&e) {
                                ApiError::UploadAborted
                            } else {
                                internal("R2 uploadPart", e)
                            }
                        })
                    })
                    .await?;
                    sent.parts
                        .push((Part { part_number: n, etag: uploaded.etag(), size: piece.bytes(), md5: None }, token));
                }
                Dest::Tail => {
                    let key = new_tail_key(&record.upload.upload_id)?;
                    pipe(&mut tail, body, *piece, |data| async {
                        bucket.put(key.clone(), data).execute().await.map(|_| ()).or_internal("R2 put tail")
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
        Err(e) => {
            if let Some((key, _)) = &sent.tail {
                let _ = bucket.delete(key.clone()).await;
            }
            Err((e, taken))
        }
    }
}

fn new_tail_key(upload_id: &str) -> ApiResult<String> {
    let random = crate::hex::random_hex::<8>().or_internal("random tail key")?;
    Ok(format!("{TAIL_PREFIX}{upload_id}/{random}"))
}

fn js(value: &wasm_bindgen::JsValue) -> String {
    value.as_string().unwrap_or_else(|| format!("{value:?}"))
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
    fn an_append_past_the_length_is_refused() {
        assert_eq!(cut(P, 3, 3, 8, Some(10)), Err(ApiError::BeyondLength { size: 10 }));
    }
}
