//! What R2's answers mean to the upload: an object as the machine sees it, and R2's error codes.

use crate::upload::machine::{R2Complete, Seen};

pub(super) fn seen(object: &worker::Object) -> Seen {
    Seen { etag: object.etag(), size: object.size(), uploaded_ms: object.uploaded().as_millis() }
}

/// R2's answer to a complete, by its error code (10024 `NoSuchUpload`, 10025 `InvalidPart`).
pub(super) fn classify_complete_error(message: &str) -> R2Complete {
    if is_no_such_upload(message) {
        R2Complete::Gone
    } else if message.contains("(10025)") || message.contains("InvalidPart") {
        R2Complete::InvalidPart
    } else {
        worker::console_error!("R2 complete: {message}");
        R2Complete::Failed
    }
}

/// Whether an R2 error is `NoSuchUpload` (code 10024): the multipart upload is gone.
pub fn is_no_such_upload(message: &str) -> bool {
    message.contains("(10024)") || message.contains("NoSuchUpload")
}
