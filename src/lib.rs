//! # r2mpu: resumable, authenticated multipart uploads into R2, as a Cloudflare Worker
//!
//! ## Layout, top to bottom (each layer imports only the ones below it)
//! - [`routes`]: the route table, every endpoint in one place; start reading here.
//! - [`protocols`]: one module per protocol, each speaking HTTP for its clients over the one
//!   upload interface: the REST API ([`protocols::uploads`], [`protocols::listing`], and
//!   [`protocols::direct`]: presigned part URLs straight to R2's S3 endpoint),
//!   [`protocols::objects`], tus 1.0 and the IETF draft ([`protocols::tus`]), and the guide's
//!   `?action=` protocol ([`protocols::guide`]). [`meta`]: health, the OpenAPI document, the page.
//! - [`upload`]: the upload interface ([`upload::UploadHandle`], [`upload::Command`],
//!   [`upload::Record`]), the part and append paths into R2 (and what direct parts may be
//!   signed and recorded, [`upload::direct`]), and the `UploadState` Durable
//!   Object behind them (one per upload), its pure life-cycle [`upload::machine`] and its rows.
//! - [`index`]: the `UploadIndex` Durable Object (one per subject) that lists unfinished uploads.
//! - [`http`]: the machinery under the table, naming no route or protocol: matching, the auth
//!   layer (JWTs), the request context, CORS, problem rendering, the request log line.
//! - At the bottom, used by all: [`error`] (one error type; runtime failures logged once),
//!   [`config`] (settings from the environment), [`faults`] (test builds only: failures
//!   injected at named points), [`hex`] (lowercase hex and random ids), [`sigv4`] (AWS
//!   Signature Version 4: presigned URLs for R2's S3 endpoint, and checking signed requests),
//!   [`stub`] (a Durable Object called with one JSON body and answered with one).
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
pub mod sigv4;
pub mod stub;
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
