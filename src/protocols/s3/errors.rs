//! The one mapping from [`ApiError`] to S3's error codes and statuses, and the XML error body
//! S3 clients parse (`<Error><Code>..</Code><Message>..</Message></Error>`). Every error of a
//! path under `/s3` leaves through [`render`] (the route table's `render_errors`).

use worker::{Headers, Response};

use super::xml::escape;
use crate::error::ApiError;
use crate::http::auth::EXPIRED;

/// S3's code and status for `error`.
pub fn s3_code(error: &ApiError) -> (&'static str, u16) {
    use ApiError::*;
    match error {
        MissingToken | InsufficientScope { .. } | KeyOutsidePrefix { .. } | PresignExpired => ("AccessDenied", 403),
        InvalidToken { reason } if reason == EXPIRED => ("ExpiredToken", 400),
        InvalidToken { .. } => ("InvalidToken", 400),
        SignatureMismatch => ("SignatureDoesNotMatch", 403),
        AccessKeyUnknown => ("InvalidAccessKeyId", 403),
        MalformedSignature { .. } => ("AuthorizationHeaderMalformed", 400),
        RequestTimeSkewed => ("RequestTimeTooSkewed", 403),
        BucketNotFound => ("NoSuchBucket", 404),
        ContentSha256Mismatch => ("XAmzContentSHA256Mismatch", 400),
        DigestMismatch { .. } | ChecksumMismatch | TrailerChecksumMismatch => ("BadDigest", 400),
        MalformedXml { .. } => ("MalformedXML", 400),
        NotImplemented { .. } | NotFound | DirectPartsUnavailable => ("NotImplemented", 501),
        MethodNotAllowed { .. } => ("MethodNotAllowed", 405),
        UploadNotFound | UploadCompleted | UploadAborted => ("NoSuchUpload", 404),
        ObjectNotFound => ("NoSuchKey", 404),
        LengthRequired => ("MissingContentLength", 411),
        BodyIncomplete => ("IncompleteBody", 400),
        BodyTooLarge { .. } | BeyondLength { .. } => ("EntityTooLarge", 400),
        PartSizeMismatch { expected, actual, .. } if actual > expected => ("EntityTooLarge", 400),
        InvalidLayout { .. } => ("EntityTooSmall", 400),
        PartsMissing { .. }
        | PartNotUploaded { .. }
        | EtagMismatch { .. }
        | PartsRejected { .. }
        | PartNotSigned { .. } => ("InvalidPart", 400),
        DuplicatePart { .. } => ("InvalidPartOrder", 400),
        // A copy of the part is still arriving, or a complete runs: every SDK retries SlowDown.
        UploadCompleting | PartInFlight { .. } => ("SlowDown", 503),
        RangeNotSatisfiable { .. } => ("InvalidRange", 416),
        PreconditionFailed => ("PreconditionFailed", 412),
        Internal => ("InternalError", 500),
        InvalidJson { .. }
        | InvalidRequest { .. }
        | InvalidKey { .. }
        | UnsupportedMediaType { .. }
        | InvalidPartNumber { .. }
        | PartSizeMismatch { .. }
        | IdempotencyKeyReused
        | OffsetMismatch { .. }
        | UnsupportedTusVersion => ("InvalidArgument", 400),
    }
}

/// `error` as S3's XML error document. A `HEAD` answer's body is dropped by the runtime; its
/// status and `x-amz-error-code` still tell.
pub fn render(error: ApiError) -> Response {
    let (code, status) = s3_code(&error);
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message></Error>",
        escape(&error.to_string())
    );
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/xml");
    let _ = headers.set("x-amz-error-code", code);
    if let ApiError::PartInFlight { retry_after, .. } = error {
        let _ = headers.set("retry-after", &retry_after.to_string());
    }
    if let ApiError::UploadCompleting = error {
        let _ = headers.set("retry-after", "1");
    }
    Response::ok(body)
        .map(|r| r.with_status(status).with_headers(headers))
        .unwrap_or_else(|_| Response::empty().unwrap().with_status(500))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_errors_s3_clients_act_on_get_s3s_codes() {
        let code = |e: ApiError| s3_code(&e);
        assert_eq!(code(ApiError::UploadNotFound), ("NoSuchUpload", 404));
        assert_eq!(code(ApiError::ObjectNotFound), ("NoSuchKey", 404));
        assert_eq!(code(ApiError::InvalidToken { reason: EXPIRED.into() }), ("ExpiredToken", 400));
        assert_eq!(code(ApiError::KeyOutsidePrefix { prefix: "a/".into() }), ("AccessDenied", 403));
        assert_eq!(code(ApiError::PartInFlight { part_number: 1, retry_after: 1 }), ("SlowDown", 503));
        assert_eq!(code(ApiError::Internal), ("InternalError", 500));
    }
}
