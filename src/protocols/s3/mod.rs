//! `/s3`: an S3-compatible surface, path-style (`/s3/{bucket}/{key}`), for the clients people
//! already have (aws-cli, boto3, the AWS SDKs, rclone, Uppy's S3 plugin), over the same upload
//! interface as the REST API and tus: an S3 upload id is an r2mpu upload id, the part rules,
//! leases, listing and logs are the same.
//!
//! - [`credentials`]: `POST /credentials`, S3 credentials derived from the bearer token.
//! - [`auth`]: SigV4 (header or presigned query) verified with the re-derived secret, or a
//!   bearer token; the body's `x-amz-content-sha256`.
//! - [`bucket`]: ListBuckets, HeadBucket, GetBucketLocation, ListObjectsV2, ListMultipartUploads.
//! - [`objects`]: PutObject, GetObject, HeadObject, DeleteObject; each object operation routes
//!   its multipart variants (`?uploads`, `?uploadId=`) to [`multipart`].
//! - [`multipart`]: Create, UploadPart, Complete, Abort, ListParts.
//! - [`xml`]: S3's XML, by hand. [`errors`]: `ApiError` as S3's codes, once.
//!
//! One bucket is served, named by `S3_BUCKET`; any other is `NoSuchBucket`.

pub mod auth;
pub mod bucket;
pub mod credentials;
pub mod errors;
pub mod multipart;
pub mod objects;
pub mod xml;

pub use auth::verify;
pub use errors::render;

use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;

/// Refuses a `{bucket}` other than the one served.
fn check_bucket(cx: &Ctx) -> ApiResult<()> {
    match cx.param("bucket") == cx.config.s3_bucket {
        true => Ok(()),
        false => Err(ApiError::BucketNotFound),
    }
}

/// The request's origin (`https://host`), for the `Location` S3 answers carry.
fn origin(cx: &Ctx) -> String {
    let url = cx.req.inner().url();
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..].find('/').map_or(url.len(), |i| i + after_scheme);
    url[..end].to_string()
}
