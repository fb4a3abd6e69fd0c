//! One error type for the whole API. Each variant has a stable `code` (its serde tag) that
//! clients may match on, and one HTTP status ([`ApiError::status`]). The Worker renders it as
//! `application/problem+json` (RFC 9457); the CLI parses the same body back into this enum.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum ApiError {
    /// 401: no `Authorization: Bearer` header.
    MissingToken,
    /// 401: the token is malformed, badly signed, expired, not yet valid or for someone else.
    InvalidToken { reason: String },
    /// 403: the token lacks the scope the route requires.
    InsufficientScope { scope: String },
    /// 403: the key is outside the token's `prefix` claim.
    KeyOutsidePrefix { prefix: String },
    /// 404: no route has this path.
    NotFound,
    /// 405: the path exists, the method does not; `allow` lists the methods that do.
    MethodNotAllowed { allow: Vec<String> },
    /// 404: no such upload, or it belongs to another subject (never revealed).
    UploadNotFound,
    /// 404: no object under this key.
    ObjectNotFound,
    /// 400: the body is not the JSON the route expects.
    InvalidJson { reason: String },
    /// 400: the JSON parsed but broke a rule; `errors` maps each field to its messages.
    InvalidRequest { errors: BTreeMap<String, Vec<String>> },
    /// 400: the object key breaks the key rules.
    InvalidKey { reason: String },
    /// 415: the body has the wrong `Content-Type`.
    UnsupportedMediaType { accept: String },
    /// 413: a JSON body is larger than the server accepts.
    BodyTooLarge { limit: u64 },
    /// 411: a part was sent without `Content-Length` (R2 needs the length up front).
    LengthRequired,
    /// 400: the request body broke off before its `Content-Length` (the client reset or went
    /// away); nothing of the unfinished part was recorded.
    BodyIncomplete,
    /// 400: the part number is not an integer in 1..=10000 (or beyond the declared size).
    InvalidPartNumber { reason: String },
    /// 400: the part's length breaks the upload's layout.
    PartSizeMismatch { part_number: u16, expected: u64, actual: u64 },
    /// 400: the declared size and part size need more than 10,000 parts, or the part size is
    /// outside the server's limits.
    InvalidLayout { reason: String },
    /// 400: the part's `Content-MD5` does not match its bytes; the part was not recorded.
    DigestMismatch { part_number: u16 },
    /// 400: complete was asked for with parts missing.
    PartsMissing { missing: Vec<u16> },
    /// 400: complete listed a part the server has not received.
    PartNotUploaded { part_number: u16 },
    /// 400: complete listed a part with an ETag other than the one recorded.
    EtagMismatch { part_number: u16 },
    /// 400: complete listed the same part twice.
    DuplicatePart { part_number: u16 },
    /// 409: the upload is completed; it takes no more parts.
    UploadCompleted,
    /// 409: the upload was aborted (by its owner or after `UPLOAD_TTL` idle).
    UploadAborted,
    /// 409: a complete of this upload is under way; retry after `Retry-After`.
    UploadCompleting,
    /// 409: another copy of this part is being sent right now; retry after `Retry-After`, which
    /// is `retry_after`: the seconds left on that copy's lease (it lapses within seconds once its
    /// bytes stop flowing).
    PartInFlight {
        part_number: u16,
        #[serde(default = "one_second")]
        retry_after: u64,
    },
    /// 409: R2 refused to complete with these parts (its `InvalidPart`): it holds other bytes
    /// for one of them than the server recorded. The upload is open again; re-send them.
    PartsRejected { part_numbers: Vec<u16> },
    /// 422: this `Idempotency-Key` already created an upload from a different request.
    IdempotencyKeyReused,
    /// 416: the `Range` header does not fit the object.
    RangeNotSatisfiable { size: u64 },
    /// 412: the object fails the request's `If-Match` or `If-Unmodified-Since`.
    PreconditionFailed,
    /// 409: an append (tus or the IETF draft) did not start at the upload's offset, which the
    /// server holds durably; `expected-offset` is where the client must resume. Its problem type
    /// is the draft's `mismatching-upload-offset`, with the draft's member names.
    OffsetMismatch {
        #[serde(rename = "expected-offset")]
        expected_offset: u64,
        #[serde(rename = "provided-offset")]
        provided_offset: u64,
    },
    /// 413: an append would carry the upload past its declared length, or past the most it may
    /// hold (then `size` is that limit): `Tus-Max-Size`, or 10,000 parts while its length is deferred.
    BeyondLength { size: u64 },
    /// 412: the request's `Tus-Resumable` names a tus version other than 1.0.0.
    UnsupportedTusVersion,
    /// 460 (tus's checksum extension): the chunk does not match its `Upload-Checksum`; it was not kept.
    ChecksumMismatch,
    /// 403: an S3 request's SigV4 signature is not the one its credentials make.
    SignatureMismatch,
    /// 403: an S3 request's access key id is not the one its session token derives.
    AccessKeyUnknown,
    /// 400: an S3 request's signature (header or presigned query) is malformed or incomplete.
    MalformedSignature { reason: String },
    /// 403: an S3 request was signed more than 15 minutes from the Worker's clock.
    RequestTimeSkewed,
    /// 403: a presigned URL is past its `X-Amz-Expires`.
    PresignExpired,
    /// 404: an S3 request names a bucket other than the one the Worker serves.
    BucketNotFound,
    /// 400: the body does not match its `x-amz-content-sha256`; nothing was stored.
    ContentSha256Mismatch,
    /// 400: an aws-chunked body does not match the checksum in its trailer (`x-amz-checksum-*`);
    /// the stream was failed before its last bytes, so nothing was stored.
    TrailerChecksumMismatch,
    /// 400: an S3 XML body could not be read.
    MalformedXml { reason: String },
    /// 501: an S3 feature r2mpu does not offer; `reason` says what to do instead.
    NotImplemented { reason: String },
    /// 501: this server is not configured to sign part URLs for R2's S3 endpoint (the
    /// `R2_S3_*` settings); send parts through `PUT /uploads/{uploadId}/parts/{partNumber}`.
    DirectPartsUnavailable,
    /// 400: a direct part was reported that this server never signed a URL for (with this
    /// `Content-MD5`, or without one); it was not recorded.
    PartNotSigned { part_number: u16 },
    /// 500: the server failed; the detail is logged, never sent.
    Internal,
}

impl ApiError {
    /// The HTTP status this error is sent with. The one place errors meet HTTP.
    pub fn status(&self) -> u16 {
        use ApiError::*;
        match self {
            MissingToken | InvalidToken { .. } => 401,
            InsufficientScope { .. } | KeyOutsidePrefix { .. } => 403,
            NotFound | UploadNotFound | ObjectNotFound => 404,
            MethodNotAllowed { .. } => 405,
            LengthRequired => 411,
            BodyIncomplete => 400,
            BodyTooLarge { .. } => 413,
            UnsupportedMediaType { .. } => 415,
            RangeNotSatisfiable { .. } => 416,
            PreconditionFailed => 412,
            UploadCompleted | UploadAborted | UploadCompleting | PartInFlight { .. } | PartsRejected { .. } => 409,
            IdempotencyKeyReused => 422,
            OffsetMismatch { .. } => 409,
            BeyondLength { .. } => 413,
            UnsupportedTusVersion => 412,
            ChecksumMismatch => 460,
            SignatureMismatch | AccessKeyUnknown | RequestTimeSkewed | PresignExpired => 403,
            BucketNotFound => 404,
            NotImplemented { .. } | DirectPartsUnavailable => 501,
            MalformedSignature { .. } | ContentSha256Mismatch | TrailerChecksumMismatch | MalformedXml { .. } => 400,
            InvalidJson { .. }
            | InvalidRequest { .. }
            | InvalidKey { .. }
            | InvalidPartNumber { .. }
            | PartSizeMismatch { .. }
            | InvalidLayout { .. }
            | DigestMismatch { .. }
            | PartsMissing { .. }
            | PartNotUploaded { .. }
            | EtagMismatch { .. }
            | DuplicatePart { .. }
            | PartNotSigned { .. } => 400,
            Internal => 500,
        }
    }

    /// The stable machine code, as sent in the problem's `code` member: the serde tag (a test
    /// holds the two together).
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            MissingToken => "missing_token",
            InvalidToken { .. } => "invalid_token",
            InsufficientScope { .. } => "insufficient_scope",
            KeyOutsidePrefix { .. } => "key_outside_prefix",
            NotFound => "not_found",
            MethodNotAllowed { .. } => "method_not_allowed",
            UploadNotFound => "upload_not_found",
            ObjectNotFound => "object_not_found",
            InvalidJson { .. } => "invalid_json",
            InvalidRequest { .. } => "invalid_request",
            InvalidKey { .. } => "invalid_key",
            UnsupportedMediaType { .. } => "unsupported_media_type",
            BodyTooLarge { .. } => "body_too_large",
            LengthRequired => "length_required",
            BodyIncomplete => "body_incomplete",
            InvalidPartNumber { .. } => "invalid_part_number",
            PartSizeMismatch { .. } => "part_size_mismatch",
            InvalidLayout { .. } => "invalid_layout",
            DigestMismatch { .. } => "digest_mismatch",
            PartsMissing { .. } => "parts_missing",
            PartNotUploaded { .. } => "part_not_uploaded",
            EtagMismatch { .. } => "etag_mismatch",
            DuplicatePart { .. } => "duplicate_part",
            UploadCompleted => "upload_completed",
            UploadAborted => "upload_aborted",
            UploadCompleting => "upload_completing",
            PartInFlight { .. } => "part_in_flight",
            PartsRejected { .. } => "parts_rejected",
            IdempotencyKeyReused => "idempotency_key_reused",
            RangeNotSatisfiable { .. } => "range_not_satisfiable",
            PreconditionFailed => "precondition_failed",
            OffsetMismatch { .. } => "offset_mismatch",
            BeyondLength { .. } => "beyond_length",
            UnsupportedTusVersion => "unsupported_tus_version",
            ChecksumMismatch => "checksum_mismatch",
            SignatureMismatch => "signature_mismatch",
            AccessKeyUnknown => "access_key_unknown",
            MalformedSignature { .. } => "malformed_signature",
            RequestTimeSkewed => "request_time_skewed",
            PresignExpired => "presign_expired",
            BucketNotFound => "bucket_not_found",
            ContentSha256Mismatch => "content_sha256_mismatch",
            TrailerChecksumMismatch => "trailer_checksum_mismatch",
            MalformedXml { .. } => "malformed_xml",
            NotImplemented { .. } => "not_implemented",
            DirectPartsUnavailable => "direct_parts_unavailable",
            PartNotSigned { .. } => "part_not_signed",
            Internal => "internal",
        }
    }

    /// `invalid_request` for one field (or query parameter, or header) and one message.
    pub fn invalid_field(name: &str, message: impl Into<String>) -> ApiError {
        ApiError::InvalidRequest { errors: [(name.to_string(), vec![message.into()])].into() }
    }

    /// Whether a client may retry the same request and expect another outcome.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ApiError::UploadCompleting | ApiError::PartInFlight { .. } | ApiError::Internal)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ApiError::*;
        match self {
            MissingToken => write!(f, "an Authorization: Bearer token is required"),
            InvalidToken { reason } => write!(f, "the bearer token is not valid: {reason}"),
            InsufficientScope { scope } => write!(f, "the token lacks the scope `{scope}`"),
            KeyOutsidePrefix { prefix } => {
                write!(f, "the token may only touch keys starting with `{prefix}`")
            }
            NotFound => write!(f, "no such route"),
            MethodNotAllowed { allow } => {
                write!(f, "method not allowed here; allowed: {}", allow.join(", "))
            }
            UploadNotFound => write!(f, "no such upload"),
            ObjectNotFound => write!(f, "no such object"),
            InvalidJson { reason } => write!(f, "the body is not valid JSON for this route: {reason}"),
            InvalidRequest { errors } => {
                write!(f, "the request is invalid:")?;
                for (field, messages) in errors {
                    write!(f, " {field}: {};", messages.join(", "))?;
                }
                Ok(())
            }
            InvalidKey { reason } => write!(f, "invalid object key: {reason}"),
            UnsupportedMediaType { accept } => write!(f, "the body must be {accept}"),
            BodyTooLarge { limit } => write!(f, "the body is larger than {limit} bytes"),
            LengthRequired => write!(f, "a part needs a Content-Length header; chunked bodies are refused"),
            BodyIncomplete => write!(f, "the request body broke off before its Content-Length"),
            InvalidPartNumber { reason } => write!(f, "invalid part number: {reason}"),
            PartSizeMismatch { part_number, expected, actual } => {
                write!(f, "part {part_number} is {actual} bytes; this upload's layout needs {expected}")
            }
            InvalidLayout { reason } => write!(f, "invalid upload layout: {reason}"),
            DigestMismatch { part_number } => {
                write!(f, "part {part_number} does not match its Content-MD5; it was not stored")
            }
            PartsMissing { missing } => {
                let shown: Vec<String> = missing.iter().take(20).map(u16::to_string).collect();
                let more = if missing.len() > 20 { ", ..." } else { "" };
                write!(f, "parts missing: {}{more}", shown.join(", "))
            }
            PartNotUploaded { part_number } => write!(f, "part {part_number} was never uploaded"),
            EtagMismatch { part_number } => {
                write!(f, "part {part_number}'s etag differs from the one the server recorded")
            }
            DuplicatePart { part_number } => write!(f, "part {part_number} is listed twice"),
            UploadCompleted => write!(f, "the upload is already completed"),
            UploadAborted => write!(f, "the upload was aborted"),
            UploadCompleting => write!(f, "the upload is being completed; retry shortly"),
            PartInFlight { part_number, retry_after } => {
                write!(f, "another copy of part {part_number} is being received; retry in {retry_after} s")
            }
            PartsRejected { part_numbers } => {
                let shown: Vec<String> = part_numbers.iter().take(20).map(u16::to_string).collect();
                let more = if part_numbers.len() > 20 { ", ..." } else { "" };
                write!(
                    f,
                    "R2 holds other bytes than recorded for one of parts {}{more}; re-send them",
                    shown.join(", ")
                )
            }
            IdempotencyKeyReused => {
                write!(f, "this Idempotency-Key already created an upload from a different request; use a new key")
            }
            RangeNotSatisfiable { size } => write!(f, "the range does not fit the object's {size} bytes"),
            PreconditionFailed => write!(f, "the object does not meet the request's If-Match or If-Unmodified-Since"),
            OffsetMismatch { expected_offset, provided_offset } => {
                write!(f, "the upload's offset is {expected_offset}, not {provided_offset}; append from there")
            }
            BeyondLength { size } => write!(f, "the append would carry the upload past its length of {size} bytes"),
            UnsupportedTusVersion => write!(f, "this server speaks tus 1.0.0 only"),
            ChecksumMismatch => write!(f, "the chunk does not match its Upload-Checksum; it was not kept"),
            SignatureMismatch => write!(f, "the request signature does not match the one its credentials make"),
            AccessKeyUnknown => write!(f, "the access key id does not belong to the session token"),
            MalformedSignature { reason } => write!(f, "the request signature is malformed: {reason}"),
            RequestTimeSkewed => write!(f, "the request was signed more than 15 minutes from the server's time"),
            PresignExpired => write!(f, "the presigned request has expired"),
            BucketNotFound => write!(f, "no such bucket"),
            ContentSha256Mismatch => {
                write!(f, "the body does not match its x-amz-content-sha256; nothing was stored")
            }
            TrailerChecksumMismatch => {
                write!(f, "the body does not match the checksum in its trailer; nothing was stored")
            }
            MalformedXml { reason } => write!(f, "the XML body could not be read: {reason}"),
            NotImplemented { reason } => write!(f, "not implemented: {reason}"),
            DirectPartsUnavailable => {
                write!(f, "this server does not sign part URLs for R2; send parts through the Worker")
            }
            PartNotSigned { part_number } => {
                write!(f, "no URL was signed for part {part_number} with this Content-MD5; it was not recorded")
            }
            Internal => write!(f, "internal error"),
        }
    }
}

impl std::error::Error for ApiError {}

/// A `part_in_flight` from a server that did not say how long: the `Retry-After` it sent, 1.
fn one_second() -> u64 {
    1
}

/// An RFC 9457 problem document: the standard members, then the error's own (`code` and its
/// fields) flattened beside them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(flatten)]
    pub error: ApiError,
}

/// The problem type of [`ApiError::OffsetMismatch`], as the IETF resumable-upload draft has it.
pub const MISMATCHING_UPLOAD_OFFSET: &str = "https://iana.org/assignments/http-problem-types#mismatching-upload-offset";

impl From<ApiError> for Problem {
    fn from(error: ApiError) -> Self {
        let code = error.code();
        let type_ = match error {
            // The IETF draft "Resumable Uploads for HTTP" registers this one.
            ApiError::OffsetMismatch { .. } => MISMATCHING_UPLOAD_OFFSET.to_string(),
            _ => format!("urn:r2mpu:error:{code}"),
        };
        Problem { type_, title: code.replace('_', " "), status: error.status(), detail: error.to_string(), error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_carries_the_code_and_fields_beside_the_standard_members() {
        let problem = Problem::from(ApiError::PartSizeMismatch { part_number: 3, expected: 5_242_880, actual: 10 });
        let json = serde_json::to_value(&problem).unwrap();
        assert_eq!(json["code"], "part_size_mismatch");
        assert_eq!(json["status"], 400);
        assert_eq!(json["type"], "urn:r2mpu:error:part_size_mismatch");
        assert_eq!(json["expected"], 5_242_880);
        assert_eq!(json["partNumber"], 3, "fields are camelCase like the rest of the API");
        let back: Problem = serde_json::from_value(json).unwrap();
        assert_eq!(back, problem);
    }

    #[test]
    fn every_code_is_the_serde_tag_of_its_variant() {
        use ApiError::*;
        let every_variant = [
            MissingToken,
            InvalidToken { reason: String::new() },
            InsufficientScope { scope: String::new() },
            KeyOutsidePrefix { prefix: String::new() },
            NotFound,
            MethodNotAllowed { allow: vec![] },
            UploadNotFound,
            ObjectNotFound,
            InvalidJson { reason: String::new() },
            InvalidRequest { errors: BTreeMap::new() },
            InvalidKey { reason: String::new() },
            UnsupportedMediaType { accept: String::new() },
            BodyTooLarge { limit: 1 },
            LengthRequired,
            BodyIncomplete,
            InvalidPartNumber { reason: String::new() },
            PartSizeMismatch { part_number: 1, expected: 1, actual: 1 },
            InvalidLayout { reason: String::new() },
            DigestMismatch { part_number: 1 },
            PartsMissing { missing: vec![] },
            PartNotUploaded { part_number: 1 },
            EtagMismatch { part_number: 1 },
            DuplicatePart { part_number: 1 },
            UploadCompleted,
            UploadAborted,
            UploadCompleting,
            PartInFlight { part_number: 1, retry_after: 1 },
            PartsRejected { part_numbers: vec![1] },
            IdempotencyKeyReused,
            RangeNotSatisfiable { size: 1 },
            PreconditionFailed,
            OffsetMismatch { expected_offset: 1, provided_offset: 2 },
            BeyondLength { size: 1 },
            UnsupportedTusVersion,
            ChecksumMismatch,
            SignatureMismatch,
            AccessKeyUnknown,
            MalformedSignature { reason: String::new() },
            RequestTimeSkewed,
            PresignExpired,
            BucketNotFound,
            ContentSha256Mismatch,
            TrailerChecksumMismatch,
            MalformedXml { reason: String::new() },
            NotImplemented { reason: String::new() },
            DirectPartsUnavailable,
            PartNotSigned { part_number: 1 },
            Internal,
        ];
        for error in every_variant {
            assert_eq!(serde_json::to_value(&error).unwrap()["code"], error.code(), "{error:?}");
        }
    }

    #[test]
    fn a_mismatching_offset_is_the_resumable_upload_drafts_problem() {
        let json =
            serde_json::to_value(Problem::from(ApiError::OffsetMismatch { expected_offset: 7, provided_offset: 3 }));
        let json = json.unwrap();
        assert_eq!(json["type"], MISMATCHING_UPLOAD_OFFSET);
        assert_eq!((json["status"].as_u64(), json["code"].as_str()), (Some(409), Some("offset_mismatch")));
        assert_eq!((json["expected-offset"].as_u64(), json["provided-offset"].as_u64()), (Some(7), Some(3)));
    }

    #[test]
    fn unit_errors_round_trip_through_their_code() {
        for error in [ApiError::UploadNotFound, ApiError::UploadCompleting, ApiError::Internal] {
            let problem = Problem::from(error.clone());
            let text = serde_json::to_string(&problem).unwrap();
            let back: Problem = serde_json::from_str(&text).unwrap();
            assert_eq!(back.error, error);
        }
    }

    #[test]
    fn client_mistakes_are_never_5xx() {
        let samples = [
            ApiError::InvalidJson { reason: String::new() },
            ApiError::LengthRequired,
            ApiError::PartsMissing { missing: vec![2] },
            ApiError::UploadAborted,
            ApiError::IdempotencyKeyReused,
        ];
        for error in samples {
            assert!((400..500).contains(&error.status()), "{error:?}");
        }
    }
}
