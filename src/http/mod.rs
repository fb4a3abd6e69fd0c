//! The HTTP machinery under the route table (`routes.rs`), naming no protocol and no route:
//! - [`table`]: matchit matching, the auth layer endpoints declare, serving one request.
//! - [`ctx`]: the [`Ctx`] a handler works with; [`response`]: the responses handlers build.
//! - [`auth`]: bearer JWTs verified against the `AUTH_JWKS` key set.
//! - [`cors`]: which other origins' pages may call the API, declared once for every route.
//! - [`problem`]: how an `ApiError` leaves the Worker, as problem+json (RFC 9457).
//! - [`log`]: one structured JSON log line per request.
//! - [`body`]: a request body that broke off, told apart from a failure of its reader.

pub mod auth;
pub mod body;
pub mod cors;
pub mod ctx;
pub mod log;
pub mod problem;
pub mod response;
pub mod table;

pub use ctx::Ctx;
pub use response::{json, no_content, with_etag};
pub use table::Table;
