//! A Durable Object called with one JSON body and answered with one: how the Worker (and an
//! upload's object) reaches the upload and index objects.
//!
//! workerd's own `stub.fetch(url, init)` and `Response.text()` do the work, one promise each
//! way, where the worker crate's `Stub::fetch_with_request` builds a `Request` first and its
//! `Response::text` reads the answer chunk by chunk through a Rust stream. Every part makes
//! two such calls (its lease, then its record), a create and a complete one each besides the
//! index's.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// A Durable Object stub as workerd hands it out.
    type RawStub;
    #[wasm_bindgen(method, catch)]
    fn fetch(this: &RawStub, url: &str, init: &js_sys::Object) -> Result<js_sys::Promise, JsValue>;

    /// The `Response` a stub's `fetch` answers.
    type RawResponse;
    #[wasm_bindgen(method, getter)]
    fn status(this: &RawResponse) -> u16;
    #[wasm_bindgen(method, catch)]
    fn text(this: &RawResponse) -> Result<js_sys::Promise, JsValue>;
}

/// One Durable Object, called at `url` (which only names the call in the object's logs).
pub struct JsonStub {
    stub: RawStub,
    url: &'static str,
}

impl JsonStub {
    pub fn new(stub: worker::Stub, url: &'static str) -> JsonStub {
        JsonStub { stub: stub.into_rpc(), url }
    }

    /// POSTs `body`; answers the status and the text of the answer.
    pub async fn post(&self, body: &str) -> worker::Result<(u16, String)> {
        let init = js_sys::Object::new();
        js_sys::Reflect::set(&init, &"method".into(), &"POST".into())?;
        js_sys::Reflect::set(&init, &"body".into(), &body.into())?;
        let response: RawResponse = JsFuture::from(self.stub.fetch(self.url, &init)?).await?.unchecked_into();
        let text = JsFuture::from(response.text()?).await?;
        Ok((response.status(), text.as_string().unwrap_or_default()))
    }
}
