//! The r2mpu wire contract, shared by the Worker (`src/`) and the CLI (`cli/`) so that neither
//! writes it twice. Everything here is plain data and pure functions: no I/O, no runtime.
//!
//! - [`types`]: request and response bodies, exactly as `openapi.yaml` describes them.
//! - [`error`]: [`ApiError`], every failure with its stable machine `code` and HTTP status.
//! - [`layout`]: how an upload is cut into parts, and the part rules R2 enforces at complete.
//! - [`key`]: which object keys are acceptable.
//! - [`auth`]: the JWT claims and scopes a token carries.
//! - [`time`]: RFC 3339 rendering of the millisecond timestamps the Worker stores.
//! - [`units`]: sizes and durations as people type them (`16MiB`, `8M`, `24h`), for the CLI's
//!   flags and the Worker's settings alike.

pub mod auth;
pub mod error;
pub mod key;
pub mod layout;
pub mod time;
pub mod types;
pub mod units;

pub use error::{ApiError, Problem};
