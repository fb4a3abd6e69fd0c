//! # r2mpu: resumable, authenticated multipart uploads into R2, as a Cloudflare Worker
//!
//! ## Layout
//! - [`routes`]: the route table, every endpoint in one place; start reading here.
//! - [`http`]: the machinery under it: matchit matching, the auth layer, the request context.
//! - [`auth`]: bearer JWTs verified against the `AUTH_JWKS` key set.
//! - [`digest`]: a part's `Content-MD5`, checked inside the runtime as the part streams to R2.
//! - [`uploads`] and [`objects`]: the handlers, one module per resource.
//! - [`tus`]: the tus 1.0 protocol on the same uploads, appending through [`append`], which cuts
//!   any stream of bytes at the upload's part boundaries and keeps the rest durably in R2.
//! - [`compat`]: the guide's `/{key}?action=` protocol, on the same table and state.
//! - [`machine`]: the upload life cycle as plain data: statuses, transitions, who wins a race.
//! - [`state`]: the `UploadState` Durable Object, one per upload: stores rows, calls R2, sets
//!   alarms, as [`machine`] decides.
//! - [`index`]: `GET /uploads` and the `UploadIndex` Durable Object (one per subject) behind it.
//! - [`log`]: one structured JSON log line per request, and runtime failures with their cause.
//! - [`meta`]: health, the OpenAPI document and the upload page (`web/`).
//! - [`error`]: how an `ApiError` becomes a problem+json response.
//! - [`cors`]: which other origins' pages may call the API, declared once for every route.
//! - [`faults`]: test builds only (feature `faults`): failures injected at named points.
//! - [`config`]: settings from the environment.
//! - [`hex`]: lowercase hex and the random ids the Worker makes.
//!
//! The wire types, error codes and part rules live in the `r2mpu-api` crate (`api/`), shared
//! with the CLI (`cli/`).

pub mod config;
pub mod error;
pub mod faults;
pub mod hex;
pub mod http;
pub mod index;
pub mod meta;
pub mod protocols;
pub mod routes;
pub mod upload;

use std::rc::Rc;

use worker::{event, Context, Env, Request, Response};

thread_local! {
    /// Built once per isolate; a bad route panics in `cargo test`, not here.
    static TABLE: Rc<http::Table> = Rc::new(routes::table());
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let table = TABLE.with(Rc::clone);
    Ok(table.serve(req, env).await)
}
