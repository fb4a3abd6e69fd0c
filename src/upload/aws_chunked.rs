//! S3's `aws-chunked` body framing with an unsigned trailer
//! (`x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER`), which current aws-cli, boto3
//! and the AWS JS SDK send by default over https: `hex-size\r\n` + bytes + `\r\n`, repeated,
//! then `0\r\n`, trailer lines such as `x-amz-checksum-crc32:<base64>\r\n`, and `\r\n`.
//!
//! Decoded as the body streams ([`decode`]): the framing is read in wasm (a few bytes per
//! chunk), the data passes on as views of the chunks that arrived (never copied into wasm) to
//! R2 and to the trailer's `crypto.DigestStream`. The last data view is held back until the
//! trailer has been read and the checksum compared, so a mismatch errors the stream before R2
//! has every byte of the part, and R2 stores nothing.

use std::cell::RefCell;
use std::rc::Rc;

use jwt_simple::reexports::ct_codecs::{Base64, Decoder as _};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    ReadableStream, TransformStream, TransformStreamDefaultController, Transformer, WritableStreamDefaultWriter,
};

use worker::worker_sys::FixedLengthStream;

use super::digest::DigestStream;
use crate::error::{ApiError, ApiResult, OrInternalJs};

/// The `x-amz-content-sha256` of an aws-chunked body with unsigned chunks and a trailer.
pub const UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

/// The longest framing line read (a chunk size or a trailer line).
const MAX_LINE: usize = 4096;

/// What an aws-chunked request declares in its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsChunked {
    /// `x-amz-decoded-content-length`: the bytes of the object (or part) itself.
    pub decoded_length: u64,
    /// `x-amz-trailer`, when it names a checksum this Worker checks.
    pub checksum: Option<Checksum>,
}

/// A trailing checksum header and the `crypto.DigestStream` algorithm that computes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checksum {
    pub header: &'static str,
    pub algorithm: &'static str,
}

/// The trailing checksums S3 clients send, all of which workerd's `DigestStream` computes.
const CHECKSUMS: [Checksum; 5] = [
    Checksum { header: "x-amz-checksum-crc32", algorithm: "crc32" },
    Checksum { header: "x-amz-checksum-crc32c", algorithm: "crc32c" },
    Checksum { header: "x-amz-checksum-crc64nvme", algorithm: "crc64nvme" },
    Checksum { header: "x-amz-checksum-sha1", algorithm: "SHA-1" },
    Checksum { header: "x-amz-checksum-sha256", algorithm: "SHA-256" },
];

impl Checksum {
    /// The checksum an `x-amz-trailer` header names; `None` for a name it knows no digest of.
    pub fn named(header: &str) -> Option<Checksum> {
        let header = header.trim().to_ascii_lowercase();
        CHECKSUMS.iter().copied().find(|c| c.header == header)
    }
}

/// The framing, read byte by byte (only its few framing bytes enter wasm).
#[derive(Debug, Default)]
pub struct Decoder {
    state: State,
    line: Vec<u8>,
    decoded: u64,
    trailers: Vec<(String, String)>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a `hex-size\r\n` line.
    #[default]
    Size,
    /// This many data bytes of the current chunk are still due.
    Data(u64),
    /// Reading the `\r\n` after a chunk's data.
    DataEnd,
    /// Reading trailer lines, until an empty one.
    Trailers,
    Done,
}

impl Decoder {
    /// Data bytes of the current chunk still due: while above 0, the next bytes are data.
    pub fn data_due(&self) -> u64 {
        match self.state {
            State::Data(due) => due,
            _ => 0,
        }
    }

    /// `n` data bytes (at most [`Decoder::data_due`]) were passed on.
    pub fn took_data(&mut self, n: u64) {
        let due = self.data_due() - n;
        self.decoded += n;
        self.state = if due == 0 { State::DataEnd } else { State::Data(due) };
    }

    /// Reads framing from `bytes`; answers how many it used, stopping where data begins or the
    /// body ends.
    pub fn framing(&mut self, bytes: &[u8]) -> Result<usize, &'static str> {
        let mut used = 0;
        for &byte in bytes {
            if matches!(self.state, State::Data(_)) {
                break;
            }
            if self.state == State::Done {
                return Err("bytes after the trailer");
            }
            used += 1;
            self.line.push(byte);
            if self.line.len() > MAX_LINE {
                return Err("a framing line is too long");
            }
            if self.line.ends_with(b"\r\n") {
                let line = std::mem::take(&mut self.line);
                self.end_line(&line[..line.len() - 2])?;
            }
        }
        Ok(used)
    }

    fn end_line(&mut self, line: &[u8]) -> Result<(), &'static str> {
        let text = std::str::from_utf8(line).map_err(|_| "framing that is not UTF-8")?;
        match self.state {
            State::Size => {
                // A signed chunk would carry `;chunk-signature=`: not this framing.
                let size = u64::from_str_radix(text, 16).map_err(|_| "a chunk size that is not hex")?;
                self.state = if size == 0 { State::Trailers } else { State::Data(size) };
            }
            State::DataEnd if text.is_empty() => self.state = State::Size,
            State::DataEnd => return Err("a chunk is longer than its size"),
            State::Trailers if text.is_empty() => self.state = State::Done,
            State::Trailers => {
                let (name, value) = text.split_once(':').ok_or("a trailer line without `:`")?;
                self.trailers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
            State::Data(_) | State::Done => unreachable!("no line is read in these states"),
        }
        Ok(())
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The data bytes decoded so far.
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// A trailer's value, by its lower-case name.
    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Whether the body, read to its end, was whole: every chunk, the trailers, and `length`
    /// bytes of data.
    pub fn check_end(&self, length: u64) -> ApiResult<()> {
        if !self.is_done() {
            return Err(ApiError::BodyIncomplete);
        }
        if self.decoded != length {
            return Err(ApiError::invalid_field("x-amz-decoded-content-length", "not what the chunks carry"));
        }
        Ok(())
    }
}

/// Why a decoding stream failed, for the part's answer once R2's `uploadPart` has failed too.
#[derive(Clone, Default)]
pub struct Failure(Rc<RefCell<Option<ApiError>>>);

impl Failure {
    fn set(&self, error: ApiError) -> JsValue {
        let message = JsValue::from_str(&error.to_string());
        self.0.borrow_mut().get_or_insert(error);
        message
    }

    pub fn get(&self) -> Option<ApiError> {
        self.0.borrow().clone()
    }
}

type TransformFn = dyn FnMut(JsValue, TransformStreamDefaultController) -> Result<js_sys::Promise, JsValue>;
type FlushFn = dyn FnMut(TransformStreamDefaultController) -> js_sys::Promise;

/// A decoding stream's callbacks and its failure; kept as long as the body flows.
pub struct Decoding {
    _transform: Closure<TransformFn>,
    _flush: Closure<FlushFn>,
    pub failure: Failure,
}

struct Shared {
    decoder: Decoder,
    /// The last data view, passed on only once the next one (or the verified trailer) came.
    held: Option<js_sys::Uint8Array>,
    length: u64,
    checksum: Option<Checksum>,
    digest: Option<(DigestStream, WritableStreamDefaultWriter)>,
}

/// Decodes `body` (aws-chunked as `framing` declares) into its data, a stream of the decoded
/// length, checking the trailer's checksum before the last data bytes pass on.
pub fn decode(body: ReadableStream, framing: AwsChunked) -> ApiResult<(ReadableStream, Decoding)> {
    let digest = match framing.checksum {
        Some(checksum) => {
            let digest = DigestStream::new(checksum.algorithm).or_internal_js("DigestStream")?;
            let writer = digest.get_writer().or_internal_js("DigestStream writer")?;
            Some((digest, writer))
        }
        None => None,
    };
    let shared = Rc::new(RefCell::new(Shared {
        decoder: Decoder::default(),
        held: None,
        length: framing.decoded_length,
        checksum: framing.checksum,
        digest,
    }));
    let failure = Failure::default();

    let (state, failed) = (Rc::clone(&shared), failure.clone());
    let transform = Closure::new(move |chunk: JsValue, controller: TransformStreamDefaultController| {
        let bytes: js_sys::Uint8Array = chunk.dyn_into().map_err(|_| failed.set(ApiError::Internal))?;
        let mut shared = state.borrow_mut();
        let (len, mut pos) = (bytes.length(), 0u32);
        while pos < len {
            let due = shared.decoder.data_due();
            if due == 0 {
                let window = bytes.subarray(pos, len.min(pos + 64)).to_vec();
                let used = shared
                    .decoder
                    .framing(&window)
                    .map_err(|reason| failed.set(ApiError::invalid_field("aws-chunked body", reason)))?;
                pos += used as u32;
                continue;
            }
            let n = (len - pos).min(due.min(u64::from(u32::MAX)) as u32);
            let view = bytes.subarray(pos, pos + n);
            shared.decoder.took_data(u64::from(n));
            pos += n;
            if shared.decoder.decoded() > shared.length {
                return Err(
                    failed.set(ApiError::invalid_field("x-amz-decoded-content-length", "not what the chunks carry"))
                );
            }
            if let Some((_, writer)) = &shared.digest {
                let _ = writer.write_with_chunk(&view); // a failure also rejects `ready` and `close`
            }
            if let Some(previous) = shared.held.replace(view) {
                controller.enqueue_with_chunk(&previous)?;
            }
        }
        Ok(match &shared.digest {
            Some((_, writer)) => writer.ready(),
            None => js_sys::Promise::resolve(&JsValue::UNDEFINED),
        })
    });

    let (state, failed) = (Rc::clone(&shared), failure.clone());
    let flush = Closure::new(move |controller: TransformStreamDefaultController| {
        let (state, failed) = (Rc::clone(&state), failed.clone());
        wasm_bindgen_futures::future_to_promise(async move {
            let checked = check_trailer(&state).await;
            checked.map_err(|error| failed.set(error))?;
            if let Some(last) = state.borrow_mut().held.take() {
                controller.enqueue_with_chunk(&last)?;
            }
            Ok(JsValue::UNDEFINED)
        })
    });

    let transformer = Transformer::new();
    transformer.set_transform(transform.as_ref().unchecked_ref());
    transformer.set_flush(flush.as_ref().unchecked_ref());
    let decoding = TransformStream::new_with_transformer(&transformer).or_internal_js("TransformStream")?;
    // R2 must know the length before the first byte: the decoded one.
    let fixed = FixedLengthStream::new_big_int(js_sys::BigInt::from(framing.decoded_length))
        .or_internal_js("FixedLengthStream")?;
    // Both settle as R2 reads; a failure surfaces in R2's uploadPart.
    let _ = body.pipe_to(&decoding.writable());
    let _ = decoding.readable().pipe_to(&fixed.writable());
    Ok((fixed.readable(), Decoding { _transform: transform, _flush: flush, failure }))
}

/// At the body's end: whole, and its data matching the trailer's checksum.
async fn check_trailer(state: &Rc<RefCell<Shared>>) -> ApiResult<()> {
    let (digest, expected) = {
        let mut shared = state.borrow_mut();
        shared.decoder.check_end(shared.length)?;
        let (Some((digest, writer)), Some(Checksum { header, .. })) = (shared.digest.take(), shared.checksum) else {
            return Ok(());
        };
        let value = shared.decoder.trailer(header).ok_or(ApiError::TrailerChecksumMismatch)?;
        let expected =
            Base64::decode_to_vec(value, None).map_err(|_| ApiError::invalid_field(header, "must be base64"))?;
        (Some((digest, writer)), expected)
    };
    let Some((digest, writer)) = digest else { return Ok(()) };
    JsFuture::from(writer.close()).await.or_internal_js("trailer digest")?;
    let got = JsFuture::from(digest.digest()).await.or_internal_js("trailer digest")?;
    match js_sys::Uint8Array::new(&got).to_vec() == expected {
        true => Ok(()),
        false => Err(ApiError::TrailerChecksumMismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `body` fed in pieces of `step` bytes; answers the data.
    fn decode_all(body: &[u8], step: usize) -> Result<(Vec<u8>, Decoder), &'static str> {
        let mut decoder = Decoder::default();
        let mut data = Vec::new();
        for piece in body.chunks(step) {
            let mut pos = 0;
            while pos < piece.len() {
                let due = decoder.data_due() as usize;
                if due == 0 {
                    pos += decoder.framing(&piece[pos..])?;
                } else {
                    let n = due.min(piece.len() - pos);
                    data.extend_from_slice(&piece[pos..pos + n]);
                    decoder.took_data(n as u64);
                    pos += n;
                }
            }
        }
        Ok((data, decoder))
    }

    const BODY: &[u8] = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";

    #[test]
    fn chunks_decode_to_their_data_in_pieces_of_any_size() {
        for step in [1, 2, 3, 7, 64, BODY.len()] {
            let (data, decoder) = decode_all(BODY, step).unwrap();
            assert_eq!(data, b"hello world", "step {step}");
            assert!(decoder.is_done());
            assert_eq!(decoder.trailer("x-amz-checksum-crc32"), Some("DUoRhQ=="));
            assert!(decoder.check_end(11).is_ok());
            assert!(decoder.check_end(12).is_err());
        }
    }

    #[test]
    fn broken_framing_is_refused() {
        assert!(decode_all(b"5\r\nhello!\r\n", 64).is_err(), "data longer than its size");
        assert!(decode_all(b"zz\r\n", 64).is_err());
        assert!(decode_all(b"5;chunk-signature=ab\r\nhello\r\n", 64).is_err(), "signed chunks");
        assert!(decode_all(b"0\r\n\r\nmore", 64).is_err(), "bytes after the end");
        let (_, cut) = decode_all(b"5\r\nhel", 64).unwrap();
        assert_eq!(cut.check_end(5), Err(ApiError::BodyIncomplete));
    }

    #[test]
    fn trailers_name_the_checksums_workerd_computes() {
        assert_eq!(Checksum::named("X-Amz-Checksum-CRC32C").map(|c| c.algorithm), Some("crc32c"));
        assert_eq!(Checksum::named("x-amz-checksum-crc64nvme").map(|c| c.algorithm), Some("crc64nvme"));
        assert_eq!(Checksum::named("x-amz-checksum-md5"), None);
    }
}
