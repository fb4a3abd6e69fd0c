//! The protocols, each speaking HTTP for its clients over the one upload interface
//! ([`crate::upload`]):
//! - [`uploads`]: the REST API's `/uploads` (create, parts, resume, complete, abort);
//!   [`listing`]: `GET /uploads`, from the per-subject index ([`crate::index`]).
//! - [`direct`]: direct parts: presigned URLs to send parts straight to R2's S3 endpoint, and
//!   their reports.
//! - [`objects`]: `/objects`: list, read (ranges, conditionals), delete.
//! - [`tus`]: tus 1.0 and the IETF draft "Resumable Uploads for HTTP" at `/tus`, appending
//!   through the upload's append engine.
//! - [`guide`]: the guide's `/{key}?action=` protocol, for clients written against it.
//! - [`s3`]: S3 at `/s3/{bucket}/{key}`, and `POST /credentials`, its credentials.
//!
//! No protocol imports another, but for S3's GetObject, HeadObject and DeleteObject, which are
//! the objects protocol's own handlers; what else two of them share lives below, in `upload` or
//! `http`.

pub mod direct;
pub mod guide;
pub mod listing;
pub mod objects;
pub mod s3;
pub mod tus;
pub mod uploads;
