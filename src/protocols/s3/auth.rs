//! Who sends an S3 request: AWS Signature Version 4, in the `Authorization` header or as a
//! presigned URL's query, verified here with the secret re-derived from the session token
//! ([`super::credentials`]); the session token is the JWT, verified as a bearer token is. An
//! `Authorization: Bearer` JWT is taken too (Uppy's `signRequest` hook, scripts).
//!
//! Checked: the algorithm, the credential scope (region `auto` or `us-east-1`, service `s3`),
//! the time (within [`SKEW_SECS`]; a presigned URL until its `X-Amz-Expires`), the access key
//! id (the session token's), the signature. The body's `x-amz-content-sha256` is signed as a
//! header; whether the bytes match it is checked as they stream ([`expected_digests`]).

use percent_encoding::percent_decode_str;

use super::credentials::{derive, key};
use crate::error::{ApiError, ApiResult};
use crate::http::auth::Claims;
use crate::http::Ctx;
use crate::sigv4::{self, CanonicalRequest, ALGORITHM, MAX_EXPIRES_SECS, UNSIGNED_PAYLOAD as UNSIGNED};
use crate::upload::aws_chunked::{self, AwsChunked, Checksum};
use crate::upload::Expected;

/// How far a request's signing time may be from the Worker's clock, as S3 allows.
pub const SKEW_SECS: u64 = 15 * 60;
/// The regions a request may be signed for: R2's, and the one SDKs default to.
const REGIONS: [&str; 2] = ["auto", "us-east-1"];

/// The route table's authenticator for `/s3`: the claims of a correctly signed request.
pub fn verify(cx: &Ctx) -> ApiResult<Claims> {
    let header = cx.header("authorization");
    let signed = match header.as_deref() {
        Some(header) if header.trim_start().get(..7).is_some_and(|s| s.eq_ignore_ascii_case("bearer ")) => {
            return cx.verify_token(&cx.bearer_token()?);
        }
        Some(header) => Signed::from_header(cx, header)?,
        None if cx.query("X-Amz-Signature").is_some() => Signed::from_query(cx)?,
        None => return Err(ApiError::MissingToken),
    };
    signed.check_time(now_secs())?;
    let token = signed.token.as_deref().ok_or(ApiError::MissingToken)?;
    let claims = cx.verify_token(token)?;
    let derived = derive(&key(cx)?, token);
    if signed.access_key_id != derived.access_key_id {
        return Err(ApiError::AccessKeyUnknown);
    }
    let scope = sigv4::scope(&signed.date, &signed.region, "s3");
    let signing_key = sigv4::signing_key(&derived.secret_access_key, &signed.date, &signed.region, "s3");
    let signs = |accept_encoding: Option<&str>| -> ApiResult<bool> {
        let request = signed.canonical_request(cx, accept_encoding)?;
        let expected =
            sigv4::signature(&signing_key, &sigv4::string_to_sign(&signed.amz_date, &scope, &request.text()));
        Ok(constant_time_eq(expected.as_bytes(), signed.signature.as_bytes()))
    };
    let mut verified = signs(None)?;
    for value in accept_encodings(cx, &signed) {
        verified = verified || signs(Some(&value))?;
    }
    if !verified {
        return Err(ApiError::SignatureMismatch);
    }
    Ok(claims)
}

/// The values a signed `Accept-Encoding` may have had before it reached the Worker: Cloudflare
/// (and workerd under `wrangler dev`) rewrite it (rclone's signed `gzip` arrives as `br, gzip`),
/// so each encoding the arrived value names is tried alone, and `identity`.
fn accept_encodings(cx: &Ctx, signed: &Signed) -> Vec<String> {
    if !signed.signed_headers.iter().any(|h| h == "accept-encoding") {
        return Vec::new();
    }
    let arrived = cx.header("accept-encoding").unwrap_or_default();
    let mut values: Vec<String> = arrived.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
    values.push("identity".into());
    values
}

/// What a request says about its signature.
#[derive(Debug)]
struct Signed {
    access_key_id: String,
    /// `YYYYMMDD`, from the credential scope.
    date: String,
    region: String,
    /// `YYYYMMDDTHHMMSSZ`.
    amz_date: String,
    signed_headers: Vec<String>,
    signature: String,
    token: Option<String>,
    /// Seconds a presigned URL lives; `None` for a header signature.
    expires: Option<u64>,
}

fn malformed(reason: impl Into<String>) -> ApiError {
    ApiError::MalformedSignature { reason: reason.into() }
}

impl Signed {
    /// `Authorization: AWS4-HMAC-SHA256 Credential=.., SignedHeaders=.., Signature=..`.
    fn from_header(cx: &Ctx, header: &str) -> ApiResult<Signed> {
        let rest =
            header.trim().strip_prefix(ALGORITHM).ok_or_else(|| malformed("the algorithm must be AWS4-HMAC-SHA256"))?;
        let field = |name: &str| {
            rest.split(',')
                .map(str::trim)
                .find_map(|part| part.strip_prefix(name).and_then(|p| p.strip_prefix('=')))
                .map(str::to_string)
                .ok_or_else(|| malformed(format!("no {name}")))
        };
        let amz_date = cx.header("x-amz-date").ok_or_else(|| malformed("no x-amz-date header"))?;
        Signed::new(
            &field("Credential")?,
            amz_date,
            &field("SignedHeaders")?,
            field("Signature")?,
            cx.header("x-amz-security-token"),
            None,
        )
    }

    /// A presigned URL's `X-Amz-*` query parameters.
    fn from_query(cx: &Ctx) -> ApiResult<Signed> {
        let query = |name: &str| cx.query(name).ok_or_else(|| malformed(format!("no {name}")));
        if query("X-Amz-Algorithm")? != ALGORITHM {
            return Err(malformed("the algorithm must be AWS4-HMAC-SHA256"));
        }
        let expires = query("X-Amz-Expires")?.parse::<u64>().map_err(|_| malformed("X-Amz-Expires is not a number"))?;
        if expires > MAX_EXPIRES_SECS {
            return Err(malformed("X-Amz-Expires must be at most 604800"));
        }
        let token = cx.query("X-Amz-Security-Token");
        Signed::new(
            &query("X-Amz-Credential")?,
            query("X-Amz-Date")?,
            &query("X-Amz-SignedHeaders")?,
            query("X-Amz-Signature")?,
            token,
            Some(expires),
        )
    }

    fn new(
        credential: &str,
        amz_date: String,
        signed_headers: &str,
        signature: String,
        token: Option<String>,
        expires: Option<u64>,
    ) -> ApiResult<Signed> {
        let parts: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, service, terminator] = parts[..] else {
            return Err(malformed("Credential must be KEY/DATE/REGION/s3/aws4_request"));
        };
        if service != "s3" || terminator != "aws4_request" {
            return Err(malformed("Credential must be KEY/DATE/REGION/s3/aws4_request"));
        }
        if !REGIONS.contains(&region) {
            return Err(malformed(format!("the region must be `auto` or `us-east-1`, not `{region}`")));
        }
        if !amz_date.starts_with(date) || parse_amz_date(&amz_date).is_none() {
            return Err(malformed("the request date must be YYYYMMDDTHHMMSSZ of the credential's day"));
        }
        let signed_headers: Vec<String> = signed_headers.split(';').map(|h| h.trim().to_ascii_lowercase()).collect();
        if !signed_headers.iter().any(|h| h == "host") {
            return Err(malformed("SignedHeaders must include host"));
        }
        Ok(Signed {
            access_key_id: access_key_id.to_string(),
            date: date.to_string(),
            region: region.to_string(),
            amz_date,
            signed_headers,
            signature: signature.trim().to_ascii_lowercase(),
            token: token.filter(|t| !t.is_empty()),
            expires,
        })
    }

    /// Within [`SKEW_SECS`] of `now`; a presigned URL also not past its expiry.
    fn check_time(&self, now: u64) -> ApiResult<()> {
        let signed = parse_amz_date(&self.amz_date).ok_or_else(|| malformed("bad date"))?;
        match self.expires {
            None if signed.abs_diff(now) > SKEW_SECS => Err(ApiError::RequestTimeSkewed),
            Some(_) if signed > now + SKEW_SECS => Err(ApiError::RequestTimeSkewed),
            Some(expires) if now > signed + expires => Err(ApiError::PresignExpired),
            _ => Ok(()),
        }
    }

    /// The canonical request the client signed, rebuilt from what arrived.
    /// `accept_encoding`: the value to take for that header instead of the one that arrived.
    fn canonical_request(&self, cx: &Ctx, accept_encoding: Option<&str>) -> ApiResult<CanonicalRequest> {
        let url = cx.req.inner().url();
        let after_scheme = url.find("://").map_or(0, |i| i + 3);
        let path_and_query = url[after_scheme..].find('/').map_or("/", |i| &url[after_scheme + i..]);
        let path_and_query = path_and_query.split('#').next().unwrap_or("");
        let (raw_path, raw_query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let path = percent_decode_str(raw_path).decode_utf8().map_err(|_| malformed("the path is not UTF-8"))?;
        let mut query = Vec::new();
        for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            let name = decode(name);
            if self.expires.is_some() && name == "X-Amz-Signature" {
                continue;
            }
            query.push((name, decode(value)));
        }
        let mut headers = Vec::new();
        for name in &self.signed_headers {
            let value = match accept_encoding.filter(|_| name == "accept-encoding") {
                Some(value) => value.to_string(),
                None => cx.header(name).ok_or_else(|| malformed(format!("the signed header {name} is missing")))?,
            };
            headers.push((name.clone(), value));
        }
        let payload_hash = match self.expires {
            Some(_) => cx.query("X-Amz-Content-Sha256").unwrap_or_else(|| UNSIGNED.into()),
            None => cx.header("x-amz-content-sha256").ok_or_else(|| malformed("no x-amz-content-sha256 header"))?,
        };
        let method = cx.req.inner().method();
        Ok(CanonicalRequest::new(&method, &sigv4::uri_encode(&path, false), &query, &headers, &payload_hash))
    }
}

/// The digests a body must match: its `Content-MD5`, and its `x-amz-content-sha256` when that
/// is a hex SHA-256 (`UNSIGNED-PAYLOAD` promises none); an aws-chunked body with an unsigned
/// trailer is decoded and its trailing checksum checked ([`aws_chunked`]).
pub fn expected_digests(cx: &Ctx) -> ApiResult<Expected> {
    let mut expected = Expected::md5_of(cx)?;
    match cx.header("x-amz-content-sha256").as_deref().map(str::trim) {
        Some(aws_chunked::UNSIGNED_TRAILER) => expected.chunked = Some(aws_chunked_framing(cx)?),
        _ => expected.sha256 = declared_sha256(cx)?,
    }
    Ok(expected)
}

/// What an aws-chunked request's headers declare: the decoded length, the trailing checksum.
fn aws_chunked_framing(cx: &Ctx) -> ApiResult<AwsChunked> {
    let decoded_length = cx
        .header("x-amz-decoded-content-length")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or(ApiError::LengthRequired)?;
    let checksum = match cx.header("x-amz-trailer") {
        None => None,
        Some(name) => Some(Checksum::named(&name).ok_or_else(|| ApiError::NotImplemented {
            reason: format!("the trailer {name}: send a CRC32, CRC32C, CRC64NVME, SHA-1 or SHA-256 one"),
        })?),
    };
    Ok(AwsChunked { decoded_length, checksum })
}

/// Checks a body read whole (a complete's part list) against its `x-amz-content-sha256`.
pub fn check_body(cx: &Ctx, body: &[u8]) -> ApiResult<()> {
    match declared_sha256(cx)? {
        Some(declared) if hmac_sha256::Hash::hash(body) != declared => Err(ApiError::ContentSha256Mismatch),
        _ => Ok(()),
    }
}

fn declared_sha256(cx: &Ctx) -> ApiResult<Option<[u8; 32]>> {
    let Some(value) = cx.header("x-amz-content-sha256") else { return Ok(None) };
    let value = value.trim();
    if value == UNSIGNED {
        return Ok(None);
    }
    if value.starts_with("STREAMING-") {
        return Err(ApiError::NotImplemented {
            reason: format!(
                "aws-chunked bodies with {value} are not accepted here: send STREAMING-UNSIGNED-PAYLOAD-TRAILER \
                 (https), UNSIGNED-PAYLOAD or a hex SHA-256{SIGNED_CHUNKS_HINT}"
            ),
        });
    }
    let bytes = crate::hex::parse_hex(value).filter(|b| b.len() == 32);
    let bytes = bytes
        .ok_or_else(|| ApiError::invalid_field("x-amz-content-sha256", "must be a hex SHA-256 or UNSIGNED-PAYLOAD"))?;
    Ok(Some(bytes.try_into().expect("32 bytes")))
}

/// What avoids signed chunks (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`), as the SDKs that send them
/// document it (boto3 and aws-cli never do; they send an unsigned trailer).
const SIGNED_CHUNKS_HINT: &str = "; AWS SDK for Java 1.x: S3ClientOptions disableChunkedEncoding(), 2.x: \
     S3Configuration chunkedEncodingEnabled(false), Kotlin: enableAwsChunked = false";

/// `YYYYMMDDTHHMMSSZ` as seconds since the epoch.
fn parse_amz_date(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<u64>().ok();
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year as i64, month as i64, day as i64);
    Some(days as u64 * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn now_secs() -> u64 {
    (worker::Date::now().as_millis()) / 1000
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_read_as_epoch_seconds() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20130524T000000Z"), Some(1_369_353_600));
        assert_eq!(parse_amz_date("2013-05-24T00:00:00Z"), None);
    }

    fn signed(expires: Option<u64>) -> Signed {
        Signed::new(
            "AKID/20130524/us-east-1/s3/aws4_request",
            "20130524T000000Z".into(),
            "host",
            "ab".into(),
            None,
            expires,
        )
        .unwrap()
    }

    #[test]
    fn the_clock_may_be_fifteen_minutes_off_and_a_presigned_url_lives_its_expiry() {
        let at = 1_369_353_600;
        assert!(signed(None).check_time(at + SKEW_SECS).is_ok());
        assert_eq!(signed(None).check_time(at + SKEW_SECS + 1), Err(ApiError::RequestTimeSkewed));
        assert_eq!(signed(None).check_time(at - SKEW_SECS - 1), Err(ApiError::RequestTimeSkewed));
        assert!(signed(Some(3600)).check_time(at + 3600).is_ok());
        assert_eq!(signed(Some(3600)).check_time(at + 3601), Err(ApiError::PresignExpired));
    }

    #[test]
    fn a_credential_scope_must_name_s3_and_an_accepted_region() {
        let new =
            |credential: &str| Signed::new(credential, "20130524T000000Z".into(), "host", "ab".into(), None, None);
        assert!(new("AKID/20130524/auto/s3/aws4_request").is_ok());
        assert!(new("AKID/20130524/eu-west-1/s3/aws4_request").is_err());
        assert!(new("AKID/20130524/auto/iam/aws4_request").is_err());
        assert!(new("AKID/20130525/auto/s3/aws4_request").is_err(), "another day than x-amz-date's");
    }
}
