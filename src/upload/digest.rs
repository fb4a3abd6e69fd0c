//! Checking a part's `Content-MD5` (and S3's `x-amz-content-sha256`) without its bytes entering
//! wasm or piling up in the isolate: the part's one watching `TransformStream` (its lease's,
//! [`super::lease::Held::watch`]) writes each chunk to a `crypto.DigestStream` per algorithm
//! before passing it on to R2, and takes the next chunk only when every digest has room for it.
//! Backpressure holds end to end: the body is read no faster than R2 and the digests take it,
//! where a `tee()` would buffer whatever the faster branch ran ahead by, up to the whole part.
//! One stream stage rather than a hashing one in front of the lease's: each stage costs workerd
//! a pipe and a promise per chunk, which is also why the stage reads the body in large chunks
//! (`http::body::in_large_chunks`). `aws s3 cp` through `/s3` (a SHA-256 on every part) cost
//! workerd 34 s per GiB through two stages and 4 KiB chunks, 32 s through one, and 18-22 s
//! re-chunked, against 16-17 s for REST parts without a digest (bench/RESULTS.md).

use jwt_simple::reexports::ct_codecs::{Base64, Decoder};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::WritableStreamDefaultWriter;

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

/// Reads a `Content-MD5` header: base64 of the 16-byte digest.
pub fn parse_content_md5(header: &str) -> ApiResult<[u8; 16]> {
    let invalid = || ApiError::invalid_field("Content-MD5", "must be the base64 of a 16-byte MD5 digest");
    let bytes = Base64::decode_to_vec(header.trim(), None).map_err(|_| invalid())?;
    bytes.try_into().map_err(|_| invalid())
}

/// The running digests (MD5 for `Content-MD5`, SHA-256 for S3's `x-amz-content-sha256`) of a
/// body on its way to R2; none when nothing is to be checked.
pub struct DigestsOf {
    digests: Vec<(DigestStream, WritableStreamDefaultWriter)>,
}

/// What the watching stream writes each chunk to: the digests' writers (none by default).
#[derive(Clone, Default)]
pub struct Hashers(Vec<WritableStreamDefaultWriter>);

impl DigestsOf {
    /// A digest for each of `algorithms`, fed by [`DigestsOf::hashers`].
    pub fn new(algorithms: &[&'static str]) -> ApiResult<DigestsOf> {
        let mut digests = Vec::new();
        for algorithm in algorithms {
            let digest = DigestStream::new(algorithm).or_internal_js("DigestStream")?;
            let writer = digest.get_writer().or_internal_js("DigestStream writer")?;
            digests.push((digest, writer));
        }
        Ok(DigestsOf { digests })
    }

    /// Whether there is anything to hash.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    pub fn hashers(&self) -> Hashers {
        Hashers(self.digests.iter().map(|(_, w)| w.clone()).collect())
    }

    /// The digests, in the order of the algorithms, once R2 has taken the whole body (every
    /// chunk was hashed before R2 got it; an empty body is the digest of nothing).
    pub async fn finish(self) -> ApiResult<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for (digest, writer) in self.digests {
            JsFuture::from(writer.close()).await.or_internal_js("digesting the part")?;
            let buffer = JsFuture::from(digest.digest()).await.or_internal_js("part digest")?;
            out.push(js_sys::Uint8Array::new(&buffer).to_vec());
        }
        Ok(out)
    }
}

impl Hashers {
    /// Hashes `chunk`; the promise settles once every digest has room for the next one. A
    /// failed write also rejects `ready`, and later `close`.
    pub fn write(&self, chunk: &JsValue) -> js_sys::Promise {
        for hasher in &self.0 {
            let _ = hasher.write_with_chunk(chunk);
        }
        match self.0.as_slice() {
            [] => js_sys::Promise::resolve(&JsValue::UNDEFINED),
            [one] => one.ready(),
            many => js_sys::Promise::all(&many.iter().map(|h| JsValue::from(h.ready())).collect::<js_sys::Array>()),
        }
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
        let empty = [0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04, 0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8, 0x42, 0x7e];
        assert_eq!(parse_content_md5("1B2M2Y8AsgTpgAmY7PhCfg==").unwrap(), empty);
        for bad in ["", "not base64!", "AAAA", "1B2M2Y8AsgTpgAmY7PhCfg"] {
            assert!(parse_content_md5(bad).is_err(), "{bad:?}");
        }
    }
}
