//! A request body that broke off (its client reset, vanished or sent less than its
//! `Content-Length`), told apart from a failure of what read it.
//!
//! R2 raises the same error ("Network connection lost") whichever side of a stream broke, and
//! a broken body is the client's doing, not a fault to alarm operators with: `400
//! body_incomplete`, not a logged `500`. The body itself knows: one that broke is errored, one
//! whose reader failed is not (its pipe is made with `preventCancel`). A reader on an errored
//! stream has its `closed` promise rejected at once.

use std::time::Duration;

use futures_util::future::{select, Either};
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
