//! A request body read for an append: 1 MiB at a time with workerd's BYOB `readAtLeast`,
//! sliced at part boundaries, hashed on the way for `Upload-Checksum`; or handed on whole when
//! one piece takes all of it. A body that breaks off while it is read is the client's
//! `body_incomplete`.

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStream, WritableStreamDefaultWriter};

use crate::error::{internal, ApiError, ApiResult, OrInternalJs};
use crate::upload::digest::Digesting;

#[wasm_bindgen]
extern "C" {
    /// workerd's `ReadableStreamBYOBReader`, with its `readAtLeast` extension.
    #[wasm_bindgen(extends = js_sys::Object)]
    type ByobReader;

    #[wasm_bindgen(method, js_name = readAtLeast)]
    fn read_at_least(this: &ByobReader, min_bytes: u32, view: &Uint8Array) -> js_sys::Promise;
}

/// How many bytes a cut append reads at a time. The stream's own chunks are small (a network
/// read's worth); each one copied on by itself costs a JS round trip and an R2 write, which made
/// a cut append about twice as costly as a whole one. `readAtLeast` fills this much natively.
const READ_BYTES: u32 = 1 << 20;

/// Reads a stream of `length` bytes [`READ_BYTES`] at a time, keeping the unread end of a read
/// cut at a boundary; or hands the whole stream on untouched, when one piece takes all of it.
pub struct Source {
    /// The stream until its first read (or until [`Source::whole`] takes it).
    stream: Option<ReadableStream>,
    reader: Option<ByobReader>,
    /// Bytes not yet handed on.
    left: u64,
    pending: Option<Uint8Array>,
    /// Hashes every byte read, for tus's `Upload-Checksum`.
    digest: Option<Digesting>,
}

impl Source {
    pub fn new(stream: Option<ReadableStream>, length: u64) -> Source {
        Source { stream, reader: None, left: length, pending: None, digest: None }
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
        if self.reader.is_none() {
            let Some(stream) = self.stream.take() else { return Ok(None) };
            self.reader = Some(byob_reader(&stream).or_internal_js("a BYOB reader")?);
        }
        let reader = self.reader.as_ref().ok_or_else(|| internal("append", "no reader"))?;
        loop {
            // Fills the view unless the stream ends first; `done` comes with an empty view.
            let view = Uint8Array::new_with_length(READ_BYTES);
            let read = JsFuture::from(reader.read_at_least(READ_BYTES, &view)).await;
            // The body broke off: the client's doing (see `http::body`).
            let result = read.map_err(|_| ApiError::BodyIncomplete)?;
            let done = Reflect::get(&result, &"done".into()).ok().and_then(|d| d.as_bool()).unwrap_or(true);
            let value = Reflect::get(&result, &"value".into()).or_internal_js("a chunk")?;
            if let Some(chunk) = value.dyn_into::<Uint8Array>().ok().filter(|c| c.length() > 0) {
                if let Some(digest) = &self.digest {
                    digest.write(&chunk).await?;
                }
                return Ok(Some(chunk));
            }
            if done {
                return Ok(None);
            }
        }
    }

    /// Writes exactly `n` bytes to `writer`. A body that ends early is the client's doing.
    pub(super) async fn copy(&mut self, writer: &WritableStreamDefaultWriter, mut n: u64) -> ApiResult<()> {
        while n > 0 {
            let chunk = self.next().await?.ok_or(ApiError::BodyIncomplete)?;
            let len = u64::from(chunk.length());
            let chunk = if len > n {
                self.pending = Some(chunk.subarray(n as u32, len as u32));
                chunk.subarray(0, n as u32)
            } else {
                chunk
            };
            n -= u64::from(chunk.length());
            self.left = self.left.saturating_sub(u64::from(chunk.length()));
            JsFuture::from(writer.write_with_chunk(&chunk)).await.or_internal_js("writing to R2")?;
        }
        Ok(())
    }

    /// The untouched stream, if it is exactly the next `n` bytes and nothing needs to see them
    /// (no digest): R2 then reads it natively, with no JS round trip per chunk. An aligned
    /// append, the usual case, sends its body this way, exactly like a REST part.
    pub(super) fn whole(&mut self, n: u64) -> Option<ReadableStream> {
        if self.reader.is_some() || self.digest.is_some() || self.pending.is_some() || n != self.left {
            return None;
        }
        self.left = 0;
        self.stream.take()
    }

    /// Whether the stream has no bytes left.
    pub async fn is_done(&mut self) -> ApiResult<bool> {
        let chunk = self.next().await?;
        let done = chunk.is_none();
        self.pending = chunk;
        Ok(done)
    }
}

/// `stream.getReader({ mode: "byob" })`.
fn byob_reader(stream: &ReadableStream) -> Result<ByobReader, JsValue> {
    let options = js_sys::Object::new();
    Reflect::set(&options, &"mode".into(), &"byob".into())?;
    let get_reader: js_sys::Function = Reflect::get(stream, &"getReader".into())?.dyn_into()?;
    Ok(get_reader.call1(stream, &options)?.unchecked_into())
}
