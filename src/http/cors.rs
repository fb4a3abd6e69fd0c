//! CORS, declared once for the whole route table: browsers on the origins `ALLOWED_ORIGINS`
//! grants may call every route, with the headers resumable upload clients (ours, S3-style and
//! tus ones) send and read. Other origins get no grant, so their browsers block them. Requests
//! without an `Origin` (the CLI, servers) and the Worker's own page (same-origin) need none.

use worker::{Request, Response};

use crate::config::Config;
use crate::error::ApiResult;
use crate::http::response::no_content;

/// Request headers a page may send: ours (`Authorization`, `Content-MD5`, ...) and tus's, so
/// that tus clients work without touching CORS again.
pub const ALLOW_HEADERS: &str = "Authorization, Content-Type, Content-MD5, Idempotency-Key, Tus-Resumable, \
     Upload-Length, Upload-Offset, Upload-Metadata, Upload-Defer-Length, Upload-Checksum, Upload-Concat, \
     Upload-Complete, Upload-Draft-Interop-Version, X-HTTP-Method-Override, X-Requested-With";

/// Response headers a page may read: a part's `ETag`, a new upload's `Location`, ... and tus's.
pub const EXPOSE_HEADERS: &str = "ETag, Location, Content-Range, Retry-After, Content-Length, X-Request-Id, \
     Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm, Upload-Offset, \
     Upload-Length, Upload-Expires, Upload-Metadata, Upload-Complete, Upload-Limit, \
     Upload-Draft-Interop-Version, Accept-Patch";

/// How long a browser may cache a preflight, in seconds (Chromium caps it at two hours).
pub const MAX_AGE: &str = "7200";

/// What CORS grants one request: the origin to echo, if it is allowed.
pub struct Cors {
    granted: Option<String>,
}

impl Cors {
    /// Reads the request's `Origin` against `ALLOWED_ORIGINS`. A malformed configuration
    /// (`None`) grants nothing here; the request itself then fails loudly on it.
    pub fn of(req: &Request, config: Option<&Config>) -> Cors {
        let origin = req.headers().get("origin").ok().flatten();
        let granted = origin.filter(|origin| config.is_some_and(|config| config.allowed_origins.allows(origin)));
        Cors { granted }
    }

    /// Whether `req` is a preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
    pub fn is_preflight(req: &Request) -> bool {
        let has = |name: &str| req.headers().has(name).unwrap_or(false);
        req.inner().method() == "OPTIONS" && has("origin") && has("access-control-request-method")
    }

    /// The answer to a preflight for a route serving `methods`: `204`, with the grant when the
    /// origin is allowed and without it (so the browser stops there) when it is not. No token.
    pub fn preflight(&self, methods: &[String]) -> ApiResult<Response> {
        let response = no_content()?;
        if self.granted.is_some() {
            let headers = response.headers();
            let _ = headers.set("access-control-allow-methods", &methods.join(", "));
            let _ = headers.set("access-control-allow-headers", ALLOW_HEADERS);
            let _ = headers.set("access-control-max-age", MAX_AGE);
        }
        Ok(response)
    }

    /// Adds the grant (if any) and `Vary: Origin` to any response, errors included.
    pub fn apply(&self, response: Response) -> Response {
        let headers = response.headers();
        let _ = headers.append("vary", "Origin");
        if let Some(origin) = &self.granted {
            let _ = headers.set("access-control-allow-origin", origin);
            let _ = headers.set("access-control-expose-headers", EXPOSE_HEADERS);
        }
        response
    }
}
