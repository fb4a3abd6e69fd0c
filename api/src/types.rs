//! Request and response bodies, field for field as `openapi.yaml` names them (camelCase).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationError};

use crate::key::validate_key;

/// The largest JSON body any route reads: room for a complete that lists 10,000 parts with
/// R2's longest ETags. Metadata has its own, smaller cap.
pub const MAX_JSON_BODY: u64 = 2 * 1024 * 1024;
/// R2's limit on custom metadata: keys and values together, in bytes.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;

/// `POST /uploads`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUpload {
    /// The object key the upload becomes.
    #[validate(custom(function = "validate_key"))]
    pub key: String,
    /// Stored as the object's `Content-Type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(custom(function = "validate_content_type"))]
    pub content_type: Option<String>,
    /// Stored as the object's custom metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(custom(function = "validate_metadata"))]
    pub metadata: Option<BTreeMap<String, String>>,
    /// The object's size in bytes, when known: every part's length is then checked on arrival.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integral::option")]
    pub size: Option<u64>,
    /// Bytes per part (all but the last). Defaults to 16 MiB, or more for very large sizes.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integral::option")]
    pub part_size: Option<u64>,
    /// Presigned URLs for the first parts, in the create's own answer: a client sending parts
    /// straight to R2 then needs no round trip for them before its first PUT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(custom(function = "validate_first_part_urls"))]
    pub part_urls: Option<FirstPartUrls>,
}

/// `partUrls` in `POST /uploads`: URLs for parts 1 to `count` (at most the part count, when
/// `size` is declared), each signed at its length in the layout (`partSize` when the size is
/// open), without `Content-MD5`: a part's MD5 is known only once it is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FirstPartUrls {
    #[serde(deserialize_with = "integral::part_number")]
    pub count: u16,
    /// As in [`PartUrlRequest::expires_in`].
    #[serde(default, deserialize_with = "integral::option", skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

/// The most URLs one request may ask for: `POST /uploads/{uploadId}/urls`, or a create's
/// `partUrls`.
pub const MAX_PART_URLS: u16 = 1000;

/// `POST /uploads`' answer: the upload's state and, when the create asked for `partUrls`,
/// whether direct parts are offered and the URLs (absent if they are not, or if the upload is
/// no longer open: a create replayed with its `Idempotency-Key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedUpload {
    #[serde(flatten)]
    pub upload: Upload,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_parts: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_urls: Option<Vec<PartUrl>>,
}

/// Where an upload is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadStatus {
    Open,
    Completing,
    Completed,
    Aborted,
}

/// A part the server has received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    pub part_number: u16,
    pub etag: String,
    pub size: u64,
    /// The part's MD5 (lowercase hex), when the server checked it on arrival (`Content-MD5`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
}

/// An upload's state: everything a client needs to resume it. `GET /uploads/{uploadId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Upload {
    pub upload_id: String,
    pub key: String,
    pub status: UploadStatus,
    pub part_size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// How many parts make the object, when `size` was declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_count: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Received parts, by part number.
    pub parts: Vec<Part>,
    pub created_at: String,
    /// When an open upload is aborted if nothing more arrives; for a finished one, when its
    /// record is forgotten.
    pub expires_at: String,
    /// The object, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<CompletedObject>,
}

/// An unfinished upload in `GET /uploads`, with how far it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadSummary {
    pub upload_id: String,
    pub key: String,
    /// `open` or `completing`: finished uploads are not listed.
    pub status: UploadStatus,
    pub part_size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Parts received so far, and their bytes.
    pub parts: u32,
    pub bytes: u64,
    pub created_at: String,
    pub expires_at: String,
}

/// `GET /uploads`: a page of the caller's unfinished uploads, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadList {
    pub uploads: Vec<UploadSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A part named in `POST /uploads/{uploadId}/complete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartRef {
    #[serde(deserialize_with = "integral::part_number")]
    pub part_number: u16,
    pub etag: String,
}

/// `POST /uploads/{uploadId}/complete`. Without `parts`, the server completes from the parts it
/// recorded; with them, it checks the client's view against its own first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompleteUpload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 1, max = 10000))]
    pub parts: Option<Vec<PartRef>>,
}

/// A completed upload's object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletedObject {
    pub key: String,
    /// R2's ETag, unquoted: `hex(MD5(part MD5s))-N` for a multipart object.
    pub etag: String,
    pub size: u64,
}

/// An object in `GET /objects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub uploaded: String,
}

/// `GET /objects`: a page of objects under a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectList {
    pub objects: Vec<ObjectInfo>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// JSON Schema's `integer` includes `5.0`; so do we, where clients send numbers.
mod integral {
    use serde::{de::Error, Deserialize, Deserializer};

    fn whole<'de, D: Deserializer<'de>>(value: serde_json::Number) -> Result<u64, D::Error> {
        if let Some(n) = value.as_u64() {
            return Ok(n);
        }
        match value.as_f64() {
            Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= 2f64.powi(53) => Ok(f as u64),
            _ => Err(D::Error::custom(format!("expected a non-negative integer, got {value}"))),
        }
    }

    pub fn option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Option::<serde_json::Number>::deserialize(d)? {
            Some(n) => whole::<D>(n).map(Some),
            None => Ok(None),
        }
    }

    pub fn part_number<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
        let n = whole::<D>(serde_json::Number::deserialize(d)?)?;
        u16::try_from(n).map_err(|_| D::Error::custom(format!("part number {n} is out of range")))
    }
}

fn validate_content_type(value: &str) -> Result<(), ValidationError> {
    let printable = value.bytes().all(|b| (0x20..0x7f).contains(&b));
    if value.is_empty() || value.len() > 255 || !printable || !value.contains('/') {
        return Err(ValidationError::new("invalid_content_type")
            .with_message("must be a media type such as `video/mp4`, printable ASCII, at most 255 bytes".into()));
    }
    Ok(())
}

/// Checked before the upload is created, so that a create never fails after it: the URL
/// routes check `expiresIn` as they sign.
fn validate_first_part_urls(asked: &FirstPartUrls) -> Result<(), ValidationError> {
    if !(1..=MAX_PART_URLS).contains(&asked.count) {
        return Err(
            ValidationError::new("part_url_count").with_message(format!("count must be 1 to {MAX_PART_URLS}").into())
        );
    }
    if asked.expires_in.is_some_and(|secs| !(1..=MAX_PART_URL_SECS).contains(&secs)) {
        return Err(ValidationError::new("part_url_expiry")
            .with_message(format!("expiresIn must be 1 to {MAX_PART_URL_SECS} seconds").into()));
    }
    Ok(())
}

fn validate_metadata(metadata: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    let bytes: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_METADATA_BYTES {
        return Err(ValidationError::new("metadata_too_large")
            .with_message(format!("metadata is {bytes} bytes; the limit is {MAX_METADATA_BYTES}").into()));
    }
    if metadata.keys().any(|k| k.is_empty() || !k.bytes().all(|b| b.is_ascii_graphic())) {
        return Err(ValidationError::new("invalid_metadata_name")
            .with_message("metadata names must be non-empty printable ASCII without spaces".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(json: serde_json::Value) -> CreateUpload {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_minimal_create_is_valid() {
        assert!(create(serde_json::json!({"key": "a/b.bin"})).validate().is_ok());
    }

    #[test]
    fn create_rejects_bad_keys_content_types_and_metadata_by_field() {
        let bad = create(serde_json::json!({
            "key": "../x", "contentType": "text\nplain", "metadata": {"a b": "c"}
        }));
        let errors = bad.validate().unwrap_err();
        let fields = errors.field_errors();
        assert!(fields.contains_key("key"));
        assert!(fields.contains_key("content_type"));
        assert!(fields.contains_key("metadata"));
    }

    #[test]
    fn integral_floats_count_as_integers_but_fractions_and_negatives_do_not() {
        assert_eq!(create(serde_json::json!({"key": "k", "size": 49.0})).size, Some(49));
        for bad in [serde_json::json!(1.5), serde_json::json!(-1), serde_json::json!("7")] {
            assert!(serde_json::from_value::<CreateUpload>(serde_json::json!({"key": "k", "size": bad})).is_err());
        }
    }

    #[test]
    fn unknown_fields_are_refused_so_typos_do_not_pass_silently() {
        let result = serde_json::from_value::<CreateUpload>(serde_json::json!({"key": "k", "partsize": 1}));
        assert!(result.is_err());
    }

    #[test]
    fn complete_with_an_empty_part_list_is_invalid() {
        let body = CompleteUpload { parts: Some(vec![]) };
        assert!(body.validate().is_err());
        assert!(CompleteUpload::default().validate().is_ok());
    }
}

/// `POST /credentials`: S3 credentials derived from the bearer token, in the JSON aws-cli's
/// `credential_process` reads. The session token is the bearer token itself; the secret is
/// derived from it with a key only the Worker holds, so nothing is stored and the credentials
/// expire with the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3Credentials {
    /// Always 1: the version of the `credential_process` format.
    pub version: u8,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// The token's `exp`, RFC 3339.
    pub expiration: String,
}

/// `POST /uploads/{uploadId}/parts/{partNumber}/url`: what to sign besides the part's method,
/// key, upload and number. Every field may be left out (so may the whole body).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartUrlRequest {
    /// The part's MD5, base64 as in `Content-MD5`: signed, so R2 refuses other bytes
    /// (`400 BadDigest`) and the part is recorded with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_md5: Option<String>,
    /// Only for an upload whose size is open: this part is the last, of this many bytes (1 to
    /// `partSize`). Without it such a part is signed at `partSize`. With a declared size the
    /// layout fixes every length, and a `length` must agree with it.
    #[serde(default, deserialize_with = "integral::option", skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// Seconds the URL stays valid: default [`DEFAULT_PART_URL_SECS`], never past the upload's
    /// `expiresAt` nor R2's seven days.
    #[serde(default, deserialize_with = "integral::option", skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

/// How long a part URL lives unless the request asks for less or more.
pub const DEFAULT_PART_URL_SECS: u64 = 600;
/// The longest a part URL may live: R2's seven days for a presigned request.
pub const MAX_PART_URL_SECS: u64 = 7 * 24 * 3600;

/// One part in `POST /uploads/{uploadId}/urls`: its number and its [`PartUrlRequest`]'s fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartUrlItem {
    #[serde(deserialize_with = "integral::part_number")]
    pub part_number: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_md5: Option<String>,
    #[serde(default, deserialize_with = "integral::option", skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    #[serde(default, deserialize_with = "integral::option", skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

impl PartUrlItem {
    /// The part's own request, as the one-part route takes it.
    pub fn request(&self) -> PartUrlRequest {
        PartUrlRequest { content_md5: self.content_md5.clone(), length: self.length, expires_in: self.expires_in }
    }
}

/// `POST /uploads/{uploadId}/urls`: URLs for many parts in one call (at most 1,000).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartUrlsRequest {
    #[validate(length(min = 1, max = 1000))]
    pub parts: Vec<PartUrlItem>,
}

/// A presigned UploadPart for R2's S3 endpoint: send the part's bytes with `method` to `url`
/// with exactly `headers` (the signed `Content-Length`, and `Content-MD5` when asked for) before
/// `expiresAt`, then report R2's `ETag` (`POST /uploads/{uploadId}/parts/{partNumber}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartUrl {
    pub part_number: u16,
    pub url: String,
    pub method: String,
    pub headers: BTreeMap<String, String>,
    pub expires_at: String,
}

/// `POST /uploads/{uploadId}/urls`' answer, in the order asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartUrls {
    pub parts: Vec<PartUrl>,
}

/// `POST /uploads/{uploadId}/parts/{partNumber}`: a part sent directly to R2 with a URL from
/// this server, reported with the ETag R2 answered (and the `Content-MD5` it was signed with).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartReport {
    #[validate(length(min = 1, max = 1024))]
    pub etag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_md5: Option<String>,
}
