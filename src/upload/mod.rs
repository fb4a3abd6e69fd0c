//! One upload: the interface every protocol speaks, and the Durable Object behind it.
//!
//! ## The interface (what protocols use)
//! - [`command`]: the [`Command`]s an upload answers, its [`Record`], the [`Caller`].
//! - [`handle`]: the Worker's [`UploadHandle`] on one upload, and the create, complete and
//!   abort every protocol shares ([`start`], [`finish`], [`cancel`]).
//! - [`part`]: a part's trip through the Worker into R2 under its lease ([`receive_part`]).
//! - [`direct`]: parts sent straight to R2's S3 endpoint with URLs signed here, and their
//!   reports; the Durable Object's half (what was signed, what is recorded).
//! - [`lease`]: a part's lease, held by its sender and renewed only while its bytes flow.
//! - [`append`]: the append engine: any stream of bytes cut at the upload's part boundaries,
//!   the rest kept durably in R2 as a tail (tus and the IETF draft).
//!   [`append::Source`] reads the body it appends.
//! - [`digest`]: `Content-MD5` and `Upload-Checksum` digests computed inside the runtime as
//!   the bytes stream to R2. [`aws_chunked`]: an `aws-chunked` body decoded as it streams,
//!   its trailing checksum checked before R2 has the last byte.
//!
//! ## The Durable Object (what the interface reaches)
//! - [`machine`]: the life cycle as plain data: statuses, transitions, who wins a race.
//! - [`object`]: the `UploadState` shell that receives commands and the alarm, with one file
//!   per concern beside it: `create`, `parts`, `complete`, `appendable`, `lifecycle`;
//!   its tables and SQL in `rows`; R2's answers read in `r2`.
//!
//! Nothing here knows a protocol: the REST API, tus and the guide's protocol
//! (`crate::protocols`) all reach an upload through this interface alone.

pub mod append;
mod appendable;
pub mod aws_chunked;
pub mod command;
mod complete;
mod create;
pub mod digest;
pub mod direct;
pub mod handle;
pub mod lease;
mod lifecycle;
pub mod machine;
pub mod object;
pub mod part;
mod parts;
mod r2;
mod rows;
mod source;

pub use command::{Appends, Caller, Command, NewUpload, PartGrant, PartToSign, Record, Signing};
pub use handle::{cancel, finish, start, UploadHandle};
pub use part::{receive_checked, receive_part, Expected};
