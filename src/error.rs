//! The one error type, [`ApiError`] (its stable codes live in the `r2mpu-api` crate), and how a
//! runtime failure becomes one: [`OrInternal`] logs its cause once ([`cause`]) and turns it into
//! the opaque [`ApiError::Internal`], never shown to the client. Handlers return
//! `Result<_, ApiError>`; `http::problem` renders it, once, for every route.

use r2mpu_api::time::rfc3339;
pub use r2mpu_api::ApiError;
use serde::Serialize;
use worker::Date;

pub type ApiResult<T> = Result<T, ApiError>;

/// Logs a runtime failure with its cause (one JSON line, `log::cause`) and turns it into the
/// opaque [`ApiError::Internal`].
pub fn internal(context: &str, error: impl std::fmt::Display) -> ApiError {
    cause(context, &error);
    ApiError::Internal
}

/// `.or_internal("what we were doing")?` on any runtime `Result`.
pub trait OrInternal<T> {
    fn or_internal(self, context: &str) -> ApiResult<T>;
}

impl<T, E: std::fmt::Display> OrInternal<T> for Result<T, E> {
    fn or_internal(self, context: &str) -> ApiResult<T> {
        self.map_err(|e| internal(context, e))
    }
}

/// [`OrInternal`] for the `JsValue` errors of JS calls (streams, readers, promises).
pub trait OrInternalJs<T> {
    fn or_internal_js(self, context: &str) -> ApiResult<T>;
}

impl<T> OrInternalJs<T> for Result<T, wasm_bindgen::JsValue> {
    fn or_internal_js(self, context: &str) -> ApiResult<T> {
        self.map_err(worker::Error::from).or_internal(context)
    }
}

/// Logs a runtime failure (R2, a Durable Object, the configuration) with its cause, as one
/// JSON line. [`internal`] calls it where such a failure becomes a problem, so each is
/// logged once.
pub fn cause(context: &str, error: &dyn std::fmt::Display) {
    #[derive(Serialize)]
    struct Cause<'a> {
        time: String,
        level: &'static str,
        context: &'a str,
        cause: String,
    }
    let line = Cause { time: rfc3339(Date::now().as_millis()), level: "error", context, cause: error.to_string() };
    worker::console_error!("{}", serde_json::to_string(&line).unwrap_or_default());
}
