//! A request body that broke off (its client reset, vanished or sent less than its
//! `Content-Length`), told apart from a failure of what read it.
//!
//! R2 raises the same error ("Network connection lost") whichever side of a stream broke, and
//! a broken body is the client's doing, not a fault to alarm operators with: `400
//! body_incomplete`, not a logged `500`. The body itself knows: one that broke is errored, one
//! whose reader failed is not (its pipe is made with `preventCancel`). A reader on an errored
//! stream has its `closed` promise rejected at once.
//!
//! Also: a body re-chunked into large reads ([`in_large_chunks`]) for the streams that look at
//! every chunk on its way to R2.

use std::time::Duration;

use futures_util::future::{select, Either};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStream, ReadableStreamDefaultReader};
use worker::Delay;

/// Whether `stream` (no longer locked by whatever read it) is errored: the body broke off.
pub async fn broke(stream: &ReadableStream) -> bool {
    if stream.locked() {
        return false;
    }
    let Ok(reader) = stream.get_reader().dyn_into::<ReadableStreamDefaultReader>() else { return false };
    let closed = JsFuture::from(reader.closed());
    futures_util::pin_mut!(closed);
    let broke = matches!(select(closed, Delay::from(Duration::from_millis(1))).await, Either::Left((Err(_), _)));
    reader.release_lock();
    broke
}

#[wasm_bindgen(inline_js = r#"
export function in_large_chunks(body, atLeast, atMost, length) {
  try {
    body.getReader({ mode: "byob" }).releaseLock();
  } catch {
    return body;
  }
  let left = length;
  return new ReadableStream({
    async pull(controller) {
      const reader = body.getReader({ mode: "byob" });
      try {
        const size = Math.max(1, Math.min(atMost, left));
        const { done, value } = await reader.readAtLeast(Math.min(atLeast, size), new Uint8Array(size));
        left -= value ? value.byteLength : 0;
        if (value && value.byteLength > 0) controller.enqueue(value);
        if (done) controller.close();
      } finally {
        reader.releaseLock();
      }
    },
  }, { highWaterMark: 0 });
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = in_large_chunks)]
    fn in_large_chunks_js(body: &ReadableStream, at_least: u32, at_most: u32, length: f64) -> ReadableStream;
}

/// The least a re-chunked read waits for, and the most it takes: whatever the body holds by
/// then, up to [`AT_MOST`]. A slow client's bytes still pass every 64 KiB (its part's lease is
/// renewed as they do); a fast one's come 1 MiB at a time.
const AT_LEAST: u32 = 64 << 10;
const AT_MOST: u32 = 1 << 20;

/// `body` read in large chunks with workerd's BYOB `readAtLeast`, for a stream stage that
/// handles each chunk (the part's lease and digests, the aws-chunked decoder). A request body's
/// own chunks are a network read's worth (4 KiB on loopback), and every chunk costs such a
/// stage a promise, and ours a call into wasm besides. Measured alone under `wrangler dev`, 256
/// MiB through a bare JS stage cost workerd 1.9-2.5 s of CPU in 4 KiB chunks and 0.5 s
/// re-chunked; a SHA-256 on the way 0.3-0.6 s more, against 0.1 s. With it, `aws s3 cp` through
/// `/s3` went from 0.65x to 1.03x of `r2mpu upload` (bench/RESULTS.md, the S3 phase).
///
/// Each read takes the body's lock and gives it back, so between reads the body is unlocked,
/// as a pipe left it: [`broke`] can probe it, and a body left unread after a refusal can be
/// drained. The new stream is never cancelled into `body`, for the same reason. A stream that
/// is not a byte stream (the aws-chunked decoder's output, already in large chunks) is answered
/// as it is.
///
/// `length` is what the body holds (its `Content-Length`): no read asks for more room than
/// that, or one byte to see the end. With a 1 MiB buffer for every read, a 1-byte part made
/// two; in a V8 profile of 150 create/part/complete rounds under `wrangler dev` these reads
/// cost 332 ms of JS self time, and 56 ms once sized.
pub fn in_large_chunks(body: &ReadableStream, length: u64) -> ReadableStream {
    in_large_chunks_js(body, AT_LEAST, AT_MOST, length as f64)
}
