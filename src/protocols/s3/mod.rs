//! S3 for the clients people already have (aws-cli, boto3, the AWS SDKs, rclone, Uppy's S3
//! plugin), over the same upload interface as the REST API and tus.
//!
//! - [`credentials`]: `POST /credentials`, S3 credentials derived from the bearer token.

pub mod credentials;
