//! Checking a part's `Content-MD5` (and S3's `x-amz-content-sha256`) without its bytes entering wasm or piling up in the isolate:
//! the body flows through an identity `TransformStream` whose `transform` writes each chunk to
//! `crypto.DigestStream` and passes it on, through a `FixedLengthStream` (so that R2 still knows
//! the length), to R2, taking the next chunk only when the digest has room for it. Backpressure
//! holds end to end: the body is read no faster than R2 and the digest take it, and the stream
//! holds at most about 2 × [`QUEUED_BYTES`] at any time, where a `tee()` would buffer whatever
//! the faster branch ran ahead by, up to the whole part.

use jwt_simple::reexports::ct_codecs::{Base64, Decoder};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    ByteLengthQueuingStrategy, QueuingStrategy, QueuingStrategyInit, ReadableStream, TransformStream,
    TransformStreamDefaultController, Transformer, WritableStreamDefaultWriter,
};
use worker::worker_sys::FixedLengthStream;

use crate::error::{ApiError, ApiResult, OrInternalJs};

#[wasm_bindgen(js_namespace = crypto)]
extern "C" {
    /// workerd's `crypto.DigestStream`: a WritableStream that hashes what is written to it.
    #[wasm_bindgen(extends = web_sys::WritableStream)]
    pub(super) type DigestStream;

    #[wasm_bindgen(constructor, catch)]
    pub(super) fn new(algorithm: &str) -> Result<DigestStream, JsValue>;

    #[wasm_bindgen(method, getter)]
    pub(super) fn digest(this: &DigestStream) -> js_sys::Promise;
}

/// How many bytes each side of the hashing stream may queue before it pushes back: the most a
/// part holds in the isolate at any time is about twice this, whatever its size.
const QUEUED_BYTES: f64 = 1024.0 * 1024.0;

/// MD5 of nothing: what an empty part must declare.
const EMPTY_MD5: [u8; 16] =
    [0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04, 0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8, 0x42, 0x7e];

/// Reads a `Content-MD5` header: base64 of the 16-byte digest.
pub fn parse_content_md5(header: &str) -> ApiResult<[u8; 16]> {
    let invalid = || ApiError::invalid_field("Content-MD5", "must be the base64 of a 16-byte MD5 digest");
    let bytes = Base64::decode_to_vec(header.trim(), None).map_err(|_| invalid())?;
    bytes.try_into().map_err(|_| invalid())
}

/// The running digests (MD5 for `Content-MD5`, SHA-256 for S3's `x-amz-content-sha256`) of a
/// body on its way to R2.
pub struct DigestsOf {
    piped: Option<Piped>,
    algorithms: Vec<&'static str>,
}

struct Piped {
    digests: Vec<(DigestStream, WritableStreamDefaultWriter)>,
    /// The `transform` callback: JS calls it until the body ends, so it lives as long as this.
    _transform: Closure<dyn FnMut(JsValue, TransformStreamDefaultController) -> Result<js_sys::Promise, JsValue>>,
}

impl DigestsOf {
    /// Passes `body` (`length` bytes, possibly none) through a stream hashing it with each of
    /// `algorithms`; returns the stream for R2 and the running digests.
    pub fn tee(
        body: Option<ReadableStream>,
        length: u64,
        algorithms: &[&'static str],
    ) -> ApiResult<(Option<ReadableStream>, DigestsOf)> {
        let algorithms = algorithms.to_vec();
        let Some(body) = body.filter(|_| length > 0) else {
            return Ok((None, DigestsOf { piped: None, algorithms }));
        };
        let mut digests = Vec::new();
        for algorithm in &algorithms {
            let digest = DigestStream::new(algorithm).or_internal_js("DigestStream")?;
            let writer = digest.get_writer().or_internal_js("DigestStream writer")?;
            digests.push((digest, writer));
        }
        let hashers: Vec<WritableStreamDefaultWriter> = digests.iter().map(|(_, w)| w.clone()).collect();
        // Each chunk goes to the digests first, then on to R2; the next is not taken until the
        // digests have room for it (`ready`). No Rust future per chunk: this runs for every chunk.
        let transform = Closure::new(move |chunk: JsValue, controller: TransformStreamDefaultController| {
            for hasher in &hashers {
                let _ = hasher.write_with_chunk(&chunk); // a failure also rejects `ready` and `close`
            }
            controller.enqueue_with_chunk(&chunk)?;
            Ok::<_, JsValue>(match hashers.as_slice() {
                [one] => one.ready(),
                many => js_sys::Promise::all(&many.iter().map(|h| JsValue::from(h.ready())).collect::<js_sys::Array>()),
            })
        });
        let transformer = Transformer::new();
        transformer.set_transform(transform.as_ref().unchecked_ref());
        // A bounded queue on each side lets hashing and R2 overlap without running apart.
        let queue = || -> ApiResult<QueuingStrategy> {
            let strategy = ByteLengthQueuingStrategy::new(&QueuingStrategyInit::new(QUEUED_BYTES))
                .or_internal_js("ByteLengthQueuingStrategy")?;
            Ok(strategy.unchecked_into())
        };
        let hashing = TransformStream::new_with_transformer_and_writable_strategy_and_readable_strategy(
            &transformer,
            &queue()?,
            &queue()?,
        )
        .or_internal_js("TransformStream")?;
        let fixed = FixedLengthStream::new_big_int(js_sys::BigInt::from(length)).or_internal_js("FixedLengthStream")?;
        // Both settle as R2 reads; a failure surfaces in R2's uploadPart.
        let _ = body.pipe_to(&hashing.writable());
        let _ = hashing.readable().pipe_to(&fixed.writable());
        let piped = Piped { digests, _transform: transform };
        Ok((Some(fixed.readable()), DigestsOf { piped: Some(piped), algorithms }))
    }

    /// The digests, in the order of the algorithms, once R2 has taken the whole body (every
    /// chunk was hashed before R2 got it).
    pub async fn finish(self) -> ApiResult<Vec<Vec<u8>>> {
        let Some(Piped { digests, _transform }) = self.piped else {
            return Ok(self.algorithms.iter().map(|a| empty_digest(a)).collect());
        };
        let mut out = Vec::new();
        for (digest, writer) in digests {
            JsFuture::from(writer.close()).await.or_internal_js("digesting the part")?;
            let buffer = JsFuture::from(digest.digest()).await.or_internal_js("part digest")?;
            out.push(js_sys::Uint8Array::new(&buffer).to_vec());
        }
        Ok(out)
    }
}

/// The digest of nothing, for an empty body.
fn empty_digest(algorithm: &str) -> Vec<u8> {
    match algorithm {
        "MD5" => EMPTY_MD5.to_vec(),
        _ => hmac_sha256::Hash::hash(b"").to_vec(),
    }
}

/// A digest of bytes fed to it chunk by chunk as JS `Uint8Array`s (they never enter wasm), with
/// any algorithm `crypto.DigestStream` knows (`SHA-1`, `MD5`, `SHA-256`, ...): tus's
/// `Upload-Checksum`.
pub struct Digesting {
    digest: DigestStream,
    writer: WritableStreamDefaultWriter,
}

impl Digesting {
    pub fn new(algorithm: &str) -> ApiResult<Digesting> {
        let digest = DigestStream::new(algorithm).or_internal_js("DigestStream")?;
        let writer = digest.get_writer().or_internal_js("DigestStream writer")?;
        Ok(Digesting { digest, writer })
    }

    /// Hashes `chunk`, waiting until the digest has taken it.
    pub async fn write(&self, chunk: &js_sys::Uint8Array) -> ApiResult<()> {
        JsFuture::from(self.writer.write_with_chunk(chunk)).await.or_internal_js("digesting")?;
        Ok(())
    }

    pub async fn finish(self) -> ApiResult<Vec<u8>> {
        JsFuture::from(self.writer.close()).await.or_internal_js("digesting")?;
        let buffer = JsFuture::from(self.digest.digest()).await.or_internal_js("digest")?;
        Ok(js_sys::Uint8Array::new(&buffer).to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_md5_is_base64_of_sixteen_bytes() {
        assert_eq!(parse_content_md5("1B2M2Y8AsgTpgAmY7PhCfg==").unwrap(), EMPTY_MD5);
        for bad in ["", "not base64!", "AAAA", "1B2M2Y8AsgTpgAmY7PhCfg"] {
            assert!(parse_content_md5(bad).is_err(), "{bad:?}");
        }
    }
}
