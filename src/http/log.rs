//! Structured logs: one JSON line per request through `console.log`, as `wrangler tail` and
//! Logpush show them (runtime failures get a line of their own: `error::cause`).
//!
//! A request's line holds: `time`, `requestId` (Cloudflare's `cf-ray` when present, else a
//! random one; echoed in the `X-Request-Id` response header so a user can quote it), `method`,
//! `route` (the table's pattern, never the raw path, which may hold keys or query strings),
//! `status`, `code` (the problem's, on errors), `durationMs`, `subject`, `uploadId`,
//! `bytesIn` and `bytesOut` (from `Content-Length`, when known). Never a token, a signature or
//! a query string.

use r2mpu_api::time::rfc3339;
use serde::Serialize;
use worker::{console_log, Date, Request, Response};

/// The response header that carries the request id.
pub const REQUEST_ID: &str = "x-request-id";

/// What is known about one request so far; [`Entry::finish`] writes it out.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    time: String,
    request_id: String,
    method: String,
    pub route: Option<String>,
    status: u16,
    code: Option<&'static str>,
    duration_ms: u64,
    pub subject: Option<String>,
    pub upload_id: Option<String>,
    bytes_in: Option<u64>,
    bytes_out: Option<u64>,
    #[serde(skip)]
    started_ms: u64,
}

impl Entry {
    pub fn begin(req: &Request) -> Entry {
        let header = |name: &str| req.headers().get(name).ok().flatten();
        let started_ms = Date::now().as_millis();
        Entry {
            time: rfc3339(started_ms),
            request_id: header("cf-ray").filter(|r| !r.is_empty()).unwrap_or_else(random_id),
            method: req.inner().method(),
            route: None,
            status: 0,
            code: None,
            duration_ms: 0,
            subject: None,
            upload_id: None,
            bytes_in: header("content-length").and_then(|v| v.trim().parse().ok()),
            bytes_out: None,
            started_ms,
        }
    }

    /// The request failed with this problem code.
    pub fn failed(&mut self, code: &'static str) {
        self.code = Some(code);
    }

    /// Logs the line and returns `response` with the `X-Request-Id` header.
    pub fn finish(mut self, response: Response) -> Response {
        let headers = response.headers();
        let _ = headers.set(REQUEST_ID, &self.request_id);
        self.status = response.status_code();
        self.bytes_out = headers.get("content-length").ok().flatten().and_then(|v| v.trim().parse().ok());
        if self.upload_id.is_none() {
            // A create names its new upload only in the answer.
            let location = headers.get("location").ok().flatten();
            self.upload_id = location.and_then(|l| l.strip_prefix("/uploads/").map(str::to_string));
        }
        self.duration_ms = Date::now().as_millis().saturating_sub(self.started_ms);
        console_log!("{}", serde_json::to_string(&self).unwrap_or_default());
        response
    }
}

fn random_id() -> String {
    crate::hex::random_hex::<8>().unwrap_or_default()
}
