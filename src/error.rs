//! How an [`ApiError`] leaves the Worker: `application/problem+json` (RFC 9457) with the headers
//! its status calls for. Handlers return `Result<_, ApiError>` and never build an error response
//! themselves; runtime failures become [`ApiError::Internal`] through [`OrInternal`], logged here
//! and never shown to the client.

pub use r2mpu_api::ApiError;
use r2mpu_api::Problem;
use worker::{Headers, Response};

pub type ApiResult<T> = Result<T, ApiError>;

/// Renders `error` as a problem response.
pub fn problem_response(error: ApiError) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/problem+json");
    match &error {
        ApiError::MissingToken => {
            let _ = headers.set(
                "www-authenticate",
                r#"Bearer realm="r2mpu", error="invalid_token", error_description="missing bearer token""#,
            );
        }
        ApiError::InvalidToken { reason } => {
            let reason = reason.replace('"', "'");
            let _ = headers.set(
                "www-authenticate",
                &format!(r#"Bearer realm="r2mpu", error="invalid_token", error_description="{reason}""#),
            );
        }
        ApiError::InsufficientScope { scope } => {
            let _ = headers.set(
                "www-authenticate",
                &format!(r#"Bearer realm="r2mpu", error="insufficient_scope", scope="{scope}""#),
            );
        }
        ApiError::MethodNotAllowed { allow } => {
            let _ = headers.set("allow", &allow.join(", "));
        }
        ApiError::RangeNotSatisfiable { size } => {
            let _ = headers.set("content-range", &format!("bytes */{size}"));
        }
        ApiError::UploadCompleting => {
            let _ = headers.set("retry-after", "1");
        }
        _ => {}
    }
    let status = error.status();
    let body = serde_json::to_vec(&Problem::from(error)).unwrap_or_default();
    Response::from_bytes(body)
        .map(|r| r.with_status(status).with_headers(headers))
        .unwrap_or_else(|_| Response::empty().unwrap().with_status(500))
}

/// Logs a runtime failure with its cause (one JSON line, `log::cause`) and turns it into the
/// opaque [`ApiError::Internal`].
pub fn internal(context: &str, error: impl std::fmt::Display) -> ApiError {
    crate::log::cause(context, &error);
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
