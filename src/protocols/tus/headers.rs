//! Which protocol a `/tus` request speaks (tus 1.0, or the IETF draft at an interop version)
//! and its headers parsed: lengths, offsets, `Upload-Metadata`, `Upload-Checksum`,
//! `Content-Disposition`, the media types.

use std::collections::BTreeMap;

use jwt_simple::reexports::ct_codecs::{Base64, Decoder};

use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;

/// The one tus version spoken.
pub const TUS_VERSION: &str = "1.0.0";

/// `Upload-Checksum` algorithms, as tus names them and as `crypto.DigestStream` does.
pub(super) const CHECKSUMS: [(&str, &str); 3] = [("sha1", "SHA-1"), ("md5", "MD5"), ("sha256", "SHA-256")];

pub(super) const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

/// The IETF draft's media type of an append (interop version 6 and later).
pub(super) const PARTIAL_UPLOAD: &str = "application/partial-upload";

/// The draft's interop versions spoken: 5 (draft 03) and 6 (draft 05), which tus-js-client
/// sends, 7 (drafts 06 to 08) and 8 (draft 09 and later, the latest).
const INTEROP_VERSIONS: [u8; 4] = [5, 6, 7, 8];

/// Which protocol a request speaks: the draft when it names an interop version, else tus 1.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    Tus,
    /// The IETF draft at this interop version.
    Draft(u8),
}

pub(super) fn protocol(cx: &Ctx) -> ApiResult<Protocol> {
    if let Some(version) = cx.header("upload-draft-interop-version") {
        return match version.trim().parse::<u8>() {
            Ok(version) if INTEROP_VERSIONS.contains(&version) => Ok(Protocol::Draft(version)),
            _ => Err(ApiError::invalid_field("Upload-Draft-Interop-Version", "this server speaks 5, 6, 7 and 8")),
        };
    }
    match cx.header("tus-resumable") {
        Some(version) if version.trim() == TUS_VERSION => Ok(Protocol::Tus),
        _ => Err(ApiError::UnsupportedTusVersion),
    }
}

/// The draft's `Upload-Complete` (a structured-field boolean), required on creation and append.
pub(super) fn upload_complete(cx: &Ctx) -> ApiResult<bool> {
    match cx.header("upload-complete").as_deref().map(str::trim) {
        Some("?1") => Ok(true),
        Some("?0") => Ok(false),
        _ => Err(ApiError::invalid_field("Upload-Complete", "must be ?0 or ?1")),
    }
}

pub(super) fn inconsistent_length() -> ApiError {
    ApiError::invalid_field("Upload-Length", "inconsistent with the upload's length or Upload-Complete")
}

pub(super) fn check_media_type(cx: &Ctx, expected: &str) -> ApiResult<()> {
    match cx.media_type() {
        Some(media) if media == expected => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType { accept: expected.into() }),
    }
}

pub(super) fn content_length(cx: &Ctx) -> ApiResult<Option<u64>> {
    cx.header("content-length").map(|h| h.trim().parse::<u64>().map_err(|_| ApiError::LengthRequired)).transpose()
}

pub(super) fn parse_u64(name: &str, value: &str) -> ApiResult<u64> {
    value.trim().parse::<u64>().map_err(|_| ApiError::invalid_field(name, "must be a non-negative integer"))
}

/// `Upload-Metadata`: comma-separated `key base64value` pairs (the value may be absent).
pub(super) fn parse_metadata(header: Option<&str>) -> ApiResult<BTreeMap<String, String>> {
    let mut pairs = BTreeMap::new();
    for pair in header.unwrap_or_default().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let invalid = || ApiError::invalid_field("Upload-Metadata", format!("`{pair}` is not `key base64value`"));
        let (name, value) = pair.split_once(' ').unwrap_or((pair, ""));
        let value = Base64::decode_to_vec(value.trim(), None).map_err(|_| invalid())?;
        let value = String::from_utf8(value).map_err(|_| invalid())?;
        if name.is_empty() || pairs.insert(name.to_string(), value).is_some() {
            return Err(invalid());
        }
    }
    Ok(pairs)
}

/// `Upload-Metadata` for `pairs`, as [`parse_metadata`] reads it: a name alone for an empty value.
pub(super) fn encode_metadata(pairs: &BTreeMap<String, String>) -> String {
    use jwt_simple::reexports::ct_codecs::Encoder;
    let encoded = pairs.iter().map(|(name, value)| match value.is_empty() {
        true => name.clone(),
        false => format!("{name} {}", Base64::encode_to_string(value).unwrap_or_default()),
    });
    encoded.collect::<Vec<_>>().join(",")
}

/// The file name in a `Content-Disposition` (RFC 6266): `filename*=UTF-8''<percent-encoded>`,
/// else `filename="<name>"`. (Parameters are split at `;`; a quoted name holding one is cut.)
pub(super) fn disposition_filename(header: &str) -> Option<String> {
    let mut plain = None;
    for param in header.split(';').skip(1) {
        let Some((name, value)) = param.split_once('=') else { continue };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "filename*" => {
                let encoded =
                    value.get(7..).filter(|_| value.get(..7).is_some_and(|c| c.eq_ignore_ascii_case("UTF-8''")));
                if let Some(name) = encoded.and_then(|e| percent_encoding::percent_decode_str(e).decode_utf8().ok()) {
                    return Some(name.into_owned()).filter(|n| !n.is_empty());
                }
            }
            "filename" => plain = Some(value.trim_matches('"').to_string()).filter(|n| !n.is_empty()),
            _ => {}
        }
    }
    plain
}

/// `Upload-Checksum: <algorithm> <base64 digest>`: the `crypto.DigestStream` name and the digest.
pub(super) fn parse_checksum(header: &str) -> ApiResult<(&'static str, Vec<u8>)> {
    let invalid = || ApiError::invalid_field("Upload-Checksum", "must be `sha1|md5|sha256 <base64 digest>`");
    let (name, digest) = header.trim().split_once(' ').ok_or_else(invalid)?;
    let (_, algorithm) = CHECKSUMS.iter().find(|(known, _)| known.eq_ignore_ascii_case(name)).ok_or_else(invalid)?;
    let digest = Base64::decode_to_vec(digest.trim(), None).map_err(|_| invalid())?;
    Ok((algorithm, digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_name_of_a_content_disposition_prefers_the_utf8_form() {
        let both = r#"inline; filename="file name.jpg"; filename*=UTF-8''f%C3%BCr%20mich.jpg"#;
        assert_eq!(disposition_filename(both).as_deref(), Some("für mich.jpg"));
        assert_eq!(disposition_filename(r#"inline; filename="a/b.txt""#).as_deref(), Some("a/b.txt"));
        assert_eq!(disposition_filename("attachment; FILENAME=plain.bin").as_deref(), Some("plain.bin"));
        assert_eq!(disposition_filename("inline"), None);
        assert_eq!(disposition_filename(r#"inline; filename="""#), None);
    }

    #[test]
    fn metadata_is_pairs_of_a_name_and_base64_value() {
        let parsed = parse_metadata(Some("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==, is_confidential")).unwrap();
        assert_eq!(parsed["filename"], "world_domination_plan.pdf");
        assert_eq!(parsed["is_confidential"], "");
        assert!(parse_metadata(Some("a !!!")).is_err());
        assert!(parse_metadata(Some("a YQ==,a YQ==")).is_err(), "a name twice");
        assert!(parse_metadata(None).unwrap().is_empty());
        assert_eq!(parse_metadata(Some(&encode_metadata(&parsed))).unwrap(), parsed, "encoded as parsed");
    }
}
