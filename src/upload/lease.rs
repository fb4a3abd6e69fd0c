//! A part's lease, held by the request sending it and kept only while its bytes flow.
//!
//! A request whose client is gone must stop holding its part at once (issue 19): a reset client
//! errors the request body, but one whose network vanished sends nothing, ever, and the Worker
//! cannot tell it from a slow one but by the bytes that stop coming. So the lease is short
//! ([`PART_LEASE_MS`]) and [`Held`] renews it once half of it has gone by ([`RENEW_AFTER_MS`])
//! while bytes pass (since its last check, every [`CHECK_EVERY`]), and once they have all passed
//! (R2 finishing, the record being written). A silent request stops renewing; its lease lapses;
//! a re-send takes the part over. Half, not sooner: each renewal is a Durable Object call, and a
//! part on a far link takes seconds; not later: a renewal slowed by a busy object must land
//! before the lease lapses.
//!
//! The lapsed sender must then never complete its copy in R2, or R2 would hold it while the
//! record names the re-send's: every chunk passes through a `TransformStream` that, when the
//! lease may have lapsed, renews it before passing the chunk on. A renewal refused (taken over,
//! or the upload finished) errors the stream, and with it R2's `uploadPart`.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStream, StreamPipeOptions, TransformStream, TransformStreamDefaultController, Transformer};
use worker::worker_sys::FixedLengthStream;
use worker::Delay;

use crate::error::{ApiError, ApiResult, OrInternalJs};
use crate::http::body::in_large_chunks;
use crate::upload::digest::Hashers;
use crate::upload::handle::UploadHandle;
use crate::upload::machine::PART_LEASE_MS;

/// How often a flowing part checks whether its lease is due for renewal.
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// A lease this old (by this isolate's clock) is renewed at the next check, if bytes passed.
const RENEW_AFTER_MS: f64 = PART_LEASE_MS as f64 / 2.0;

/// A chunk passes without a renewal only while the last one granted has at least this long left,
/// by this isolate's clock (the Durable Object's may differ by a little).
const MARGIN_MS: f64 = 250.0;

/// The lease on one part, held by the request sending it.
#[derive(Clone)]
pub struct Held {
    inner: Rc<Inner>,
}

struct Inner {
    upload: UploadHandle,
    part_number: u16,
    token: i64,
    flow: RefCell<Flow>,
}

struct Flow {
    /// The part's length, and the bytes passed on to R2 so far.
    length: u64,
    passed: u64,
    /// `passed` at the last check for renewal: a lease is renewed only for bytes that passed
    /// since, so a request whose bytes stopped renews at most once more, within a check.
    passed_at_check: u64,
    /// When the lease was last granted or renewed (the request's send time, so never later
    /// than the object's grant): it lasts at least [`PART_LEASE_MS`] from then.
    granted_ms: f64,
    /// Why the lease was lost, once it was.
    lost: Option<ApiError>,
}

impl Held {
    /// The lease `token` on `part_number`, just granted for a part of `length` bytes.
    pub fn new(upload: UploadHandle, part_number: u16, token: i64, length: u64, granted_ms: f64) -> Held {
        let flow = Flow { length, passed: 0, passed_at_check: 0, granted_ms, lost: None };
        Held { inner: Rc::new(Inner { upload, part_number, token, flow: RefCell::new(flow) }) }
    }

    /// Why the lease was lost, if it was: the error for the request whose copy R2 refused.
    fn lost(&self) -> Option<ApiError> {
        self.inner.flow.borrow().lost.clone()
    }

    /// Why R2's read of this part's body failed, when it was not R2's doing: the lease was lost
    /// meanwhile (the watching stream stopped the copy), or the body itself broke off (the
    /// client's `body_incomplete`). `None`: R2's own failure.
    pub async fn failure(&self, watch: Option<&Watch>) -> Option<ApiError> {
        if let Some(lost) = self.lost() {
            return Some(lost);
        }
        match watch {
            Some(watch) if watch.broke().await => Some(ApiError::BodyIncomplete),
            _ => None,
        }
    }

    /// Runs `work` (the part's trip to R2 and whatever must happen under the lease after it),
    /// renewing the lease once [`RENEW_AFTER_MS`] old while bytes flow or once they all have.
    pub async fn keep<T>(&self, work: impl Future<Output = T>) -> T {
        let renewing = async {
            loop {
                Delay::from(CHECK_EVERY).await;
                let due = {
                    let mut flow = self.inner.flow.borrow_mut();
                    let old = js_sys::Date::now() >= flow.granted_ms + RENEW_AFTER_MS;
                    let flowing = flow.passed > flow.passed_at_check || flow.passed == flow.length;
                    flow.passed_at_check = flow.passed;
                    flow.lost.is_none() && old && flowing
                };
                if due {
                    let _ = self.inner.renew().await;
                }
            }
        };
        futures_util::pin_mut!(work);
        futures_util::pin_mut!(renewing);
        match futures_util::future::select(work, renewing).await {
            futures_util::future::Either::Left((done, _)) => done,
            futures_util::future::Either::Right((never, _)) => never,
        }
    }

    /// `body` on its way to R2, counted, hashed by `hashers` (see [`super::digest`]), and held
    /// back chunk by chunk while the lease may have lapsed until it is renewed; errored once the
    /// lease is lost. Its length is `length`. Read in large chunks ([`in_large_chunks`]): the
    /// stage costs workerd per chunk, not per byte.
    pub fn watch(&self, body: ReadableStream, length: u64, hashers: Hashers) -> ApiResult<(ReadableStream, Watch)> {
        let inner = Rc::clone(&self.inner);
        let transform = Closure::new(move |chunk: JsValue, controller: TransformStreamDefaultController| {
            let size = chunk.dyn_ref::<js_sys::Uint8Array>().map_or(0, |c| u64::from(c.length()));
            if let Some(lost) = &inner.flow.borrow().lost {
                return Err(JsValue::from_str(&lost.to_string()));
            }
            let fresh = js_sys::Date::now() < inner.flow.borrow().granted_ms + PART_LEASE_MS as f64 - MARGIN_MS;
            if fresh {
                inner.flow.borrow_mut().passed += size;
                let hashed = hashers.write(&chunk);
                controller.enqueue_with_chunk(&chunk)?;
                return Ok(hashed);
            }
            // The lease may have lapsed (the bytes stopped for a while): renew it first, so
            // that a copy taken over never reaches R2 whole.
            let (inner, hashers) = (Rc::clone(&inner), hashers.clone());
            Ok(wasm_bindgen_futures::future_to_promise(async move {
                inner.renew().await.map_err(|e| JsValue::from_str(&e.to_string()))?;
                inner.flow.borrow_mut().passed += size;
                let hashed = hashers.write(&chunk);
                controller.enqueue_with_chunk(&chunk)?;
                JsFuture::from(hashed).await
            }))
        });
        let transformer = Transformer::new();
        transformer.set_transform(transform.as_ref().unchecked_ref());
        let watching = TransformStream::new_with_transformer(&transformer).or_internal_js("TransformStream")?;
        let fixed = FixedLengthStream::new_big_int(js_sys::BigInt::from(length)).or_internal_js("FixedLengthStream")?;
        // Both settle as R2 reads; a failure surfaces in R2's uploadPart. A failure downstream
        // leaves `body` as it is, so that [`Watch::broke`] can tell whose failure it was.
        let options = StreamPipeOptions::new();
        options.set_prevent_cancel(true);
        let piped = in_large_chunks(&body, length).pipe_to_with_options(&watching.writable(), &options);
        let _ = watching.readable().pipe_to(&fixed.writable());
        Ok((fixed.readable(), Watch { _transform: transform, body, piped }))
    }
}

/// Keeps the watching stream's `transform` callback alive while R2 reads: hold it until
/// `uploadPart` has answered.
pub struct Watch {
    _transform: Closure<dyn FnMut(JsValue, TransformStreamDefaultController) -> Result<js_sys::Promise, JsValue>>,
    body: ReadableStream,
    piped: js_sys::Promise,
}

impl Watch {
    /// After R2's `uploadPart` failed: whether the body broke off (the client's doing), rather
    /// than R2 or the lease.
    pub async fn broke(&self) -> bool {
        let _ = JsFuture::from(self.piped.clone()).await;
        crate::http::body::broke(&self.body).await
    }
}

impl Inner {
    /// Renews the lease; a refusal is kept as the reason it was lost.
    async fn renew(&self) -> ApiResult<()> {
        let sent = js_sys::Date::now();
        match self.upload.renew_part(self.part_number, self.token).await {
            Ok(()) => {
                let mut flow = self.flow.borrow_mut();
                flow.granted_ms = flow.granted_ms.max(sent);
                Ok(())
            }
            // A definite refusal loses the lease; a failed call may be the network: the next
            // chunk or tick tries again, and the lease lapses meanwhile if it must.
            Err(ApiError::Internal) => Err(ApiError::Internal),
            Err(refused) => {
                self.flow.borrow_mut().lost = Some(refused.clone());
                Err(refused)
            }
        }
    }
}
