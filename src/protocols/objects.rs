//! `/objects`: reading, listing and deleting what uploads produced. Bodies are R2's own
//! streams handed to the response, never pulled through wasm.

use r2mpu_api::key::RESERVED_PREFIX;
use r2mpu_api::time::rfc3339;
use r2mpu_api::types::{ObjectInfo, ObjectList};
use worker::{Bucket, Object, Range};
use worker::{Headers, Response};

use crate::error::{internal, ApiError, ApiResult, OrInternal};
use crate::http::auth::Claims;
use crate::http::{json, no_content, Ctx};

/// The most objects one page of `listObjects` returns (R2's own page limit).
const MAX_LIST: u32 = 1000;

/// `getObject`: the object or a `Range` of it (RFC 9110 §14), `412` or `304` as its
/// preconditions say ([`preconditions`]), the whole object when an `If-Range` does not hold
/// (§13.1.5).
pub async fn get(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let key = cx.key(&claims)?;
    let bucket = cx.bucket()?;
    let mut range = cx.header("range").and_then(|h| parse_range(&h));
    cx.faults().r2("get").await?;
    let mut read = read(&bucket, &key, range.as_ref()).await?;
    let etag = read.object().etag();
    if preconditions(&cx, read.object())? {
        let headers = object_headers(read.object())?;
        return Ok(Response::empty().or_internal("304")?.with_status(304).with_headers(headers));
    }
    if range.is_some() && cx.header("if-range").is_some_and(|header| !if_range_holds(&header, &etag)) {
        range = None;
        read = self::read(&bucket, &key, None).await?;
    }
    let object = match read {
        Read::Unsatisfiable(head) => return Err(ApiError::RangeNotSatisfiable { size: head.size() }),
        Read::Object(object) => object,
    };
    let headers = object_headers(&object)?;
    let size = object.size();
    let status = match &range {
        Some(range) => {
            let (start, end) = resolve_range(range, size).ok_or(ApiError::RangeNotSatisfiable { size })?;
            set(&headers, "content-range", &format!("bytes {start}-{end}/{size}"))?;
            set(&headers, "content-length", &(end + 1 - start).to_string())?;
            206
        }
        None => 200,
    };
    let body = object.body().ok_or_else(|| internal("R2 get", "an object without a body"))?;
    let body = body.response_body().or_internal("object body")?;
    Ok(Response::from_body(body).or_internal("object response")?.with_status(status).with_headers(headers))
}

/// What reading an object with an optional range gave.
enum Read {
    /// The object, its body holding the range asked for.
    Object(Object),
    /// The object exists, but the range selects none of its bytes; its metadata only.
    Unsatisfiable(Object),
}

impl Read {
    fn object(&self) -> &Object {
        match self {
            Read::Object(object) | Read::Unsatisfiable(object) => object,
        }
    }
}

/// Reads `key`, or `range` of it. R2 refuses a range past the end with an error; whether that
/// error means `416` is decided from the object's real size, so that any other R2 failure stays
/// a retryable `500`.
async fn read(bucket: &Bucket, key: &str, range: Option<&Range>) -> ApiResult<Read> {
    let mut request = bucket.get(key);
    if let Some(range) = range {
        request = request.range(within_js(range));
    }
    match request.execute().await {
        Ok(Some(object)) if object.body().is_some() => Ok(Read::Object(object)),
        Ok(Some(_)) => Err(internal("R2 get", "an object without a body")),
        Ok(None) => Err(ApiError::ObjectNotFound),
        Err(e) => match range {
            None => Err(internal("R2 get", e)),
            Some(range) => {
                let head = bucket.head(key).await.or_internal("R2 head")?.ok_or(ApiError::ObjectNotFound)?;
                match resolve_range(range, head.size()) {
                    None => Ok(Read::Unsatisfiable(head)),
                    // A range past the end selects up to the end (RFC 9110 §14.1.2): ask R2 for
                    // exactly those bytes.
                    Some((start, end)) => {
                        let exact = Range::OffsetWithLength { offset: start, length: end + 1 - start };
                        match bucket.get(key).range(exact).execute().await {
                            Ok(Some(object)) if object.body().is_some() => Ok(Read::Object(object)),
                            Ok(Some(_)) => Err(internal("R2 get", "an object without a body")),
                            Ok(None) => Err(ApiError::ObjectNotFound),
                            Err(_) => Err(internal("R2 ranged get", e)),
                        }
                    }
                }
            }
        },
    }
}

/// `headObject`: the object's headers, without its body; `412` or `304` as [`preconditions`] say.
pub async fn head(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let key = cx.key(&claims)?;
    cx.faults().r2("head").await?;
    let object = cx.bucket()?.head(key).await.or_internal("R2 head")?.ok_or(ApiError::ObjectNotFound)?;
    let headers = object_headers(&object)?;
    let status = if preconditions(&cx, &object)? { 304 } else { 200 };
    Ok(Response::empty().or_internal("head")?.with_status(status).with_headers(headers))
}

/// `deleteObject`: `204` whether or not the object existed, so retries are safe.
pub async fn delete(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let key = cx.key(&claims)?;
    cx.bucket()?.delete(key).await.or_internal("R2 delete")?;
    no_content()
}

/// `listObjects`: one page of objects under `prefix` (within the token's own prefix).
pub async fn list(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let query = |name: &str| cx.query(name);
    let prefix = query("prefix").or_else(|| claims.prefix.clone()).unwrap_or_default();
    claims.check_key(&prefix)?;
    let limit = match query("limit") {
        None => MAX_LIST,
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=MAX_LIST).contains(&n) => n,
            _ => return Err(ApiError::invalid_field("limit", format!("must be an integer from 1 to {MAX_LIST}"))),
        },
    };
    let bucket = cx.bucket()?;
    let mut request = bucket.list().prefix(prefix).limit(limit);
    let cursor = query("cursor");
    if let Some(cursor) = &cursor {
        if !is_cursor(cursor) {
            return Err(bad_cursor());
        }
        request = request.cursor(cursor.clone());
    }
    cx.faults().r2("list").await?;
    let page = request.execute().await.map_err(|e| list_failure(cursor.is_some(), e))?;
    // The server's own objects (tus tails) are no user's: left out of every page.
    let objects = page
        .objects()
        .iter()
        .filter(|o| !o.key().starts_with(RESERVED_PREFIX))
        .map(|o| ObjectInfo {
            key: o.key(),
            size: o.size(),
            etag: o.etag(),
            uploaded: rfc3339(o.uploaded().as_millis()),
        })
        .collect();
    let cursor = if page.truncated() { page.cursor() } else { None };
    json(200, &ObjectList { objects, cursor })
}

/// A read's preconditions in RFC 9110 §13.2.2's order: `If-Match` (else `If-Unmodified-Since`)
/// failing is `412`; then whether the answer is `304`: `If-None-Match` matching (else
/// `If-Modified-Since` with no change since). S3 reads them the same way.
fn preconditions(cx: &Ctx, object: &Object) -> ApiResult<bool> {
    let etag = object.etag();
    let modified_secs = object.uploaded().as_millis() / 1000;
    let if_match = cx.header("if-match");
    let holds = match &if_match {
        Some(header) => header.trim() == "*" || entity_tags(header).any(|(weak, tag)| !weak && tag == etag),
        None => cx.header("if-unmodified-since").and_then(|h| http_date_secs(&h)).is_none_or(|at| modified_secs <= at),
    };
    if !holds {
        return Err(ApiError::PreconditionFailed);
    }
    Ok(match cx.header("if-none-match") {
        Some(header) => none_match_fails(&header, &etag),
        None => cx.header("if-modified-since").and_then(|h| http_date_secs(&h)).is_some_and(|at| modified_secs <= at),
    })
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, or what `Date.parse` reads) as seconds since
/// the epoch; `None` for one that is not a date, which the precondition then ignores (§13.1.3).
fn http_date_secs(header: &str) -> Option<u64> {
    let ms = js_sys::Date::parse(header.trim());
    (ms.is_finite() && ms >= 0.0).then(|| (ms / 1000.0) as u64)
}

/// Whether an `If-None-Match` header matches the object's `etag` (unquoted), so that a GET or
/// HEAD answers `304`: `*`, or a list of entity tags compared weakly (RFC 9110 §13.1.2, §8.8.3.2).
fn none_match_fails(header: &str, etag: &str) -> bool {
    header.trim() == "*" || entity_tags(header).any(|(_, tag)| tag == etag)
}

/// Whether an `If-Range` header lets a `Range` apply: only a strong entity tag equal to the
/// object's (§13.1.5). A date, a weak tag or another tag means "send the whole object".
fn if_range_holds(header: &str, etag: &str) -> bool {
    let header = header.trim();
    header.starts_with('"') && entity_tags(header).collect::<Vec<_>>() == [(false, etag)]
}

/// The entity tags of a list header, each as `(weak, opaque-tag without quotes)`; anything that
/// is not a quoted tag is skipped.
fn entity_tags(header: &str) -> impl Iterator<Item = (bool, &str)> {
    header.split(',').filter_map(|item| {
        let item = item.trim();
        let (weak, quoted) = match item.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, item),
        };
        let tag = quoted.strip_prefix('"')?.strip_suffix('"')?;
        Some((weak, tag))
    })
}

/// R2's cursors are base64 text; anything else never came from a listing.
fn is_cursor(cursor: &str) -> bool {
    (1..=4096).contains(&cursor.len())
        && cursor.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'))
}

fn bad_cursor() -> ApiError {
    ApiError::invalid_field("cursor", "not a cursor from a previous page")
}

/// A failed R2 listing: R2's "invalid argument" (10029) with a cursor is the caller's cursor;
/// anything else is R2's trouble, a `500` the client may retry.
fn list_failure(with_cursor: bool, error: impl std::fmt::Display) -> ApiError {
    let message = error.to_string();
    match blames_the_cursor(with_cursor, &message) {
        true => bad_cursor(),
        false => internal("R2 list", message),
    }
}

fn blames_the_cursor(with_cursor: bool, r2_message: &str) -> bool {
    with_cursor && r2_message.contains("(10029)")
}

fn object_headers(object: &Object) -> ApiResult<Headers> {
    let headers = Headers::new();
    // `Headers::clone` copies; R2 must write into this very JS object.
    object.write_http_metadata(Headers(headers.0.clone())).or_internal("http metadata")?;
    if !headers.has("content-type").unwrap_or(false) {
        set(&headers, "content-type", "application/octet-stream")?;
    }
    set(&headers, "etag", &object.http_etag())?;
    set(&headers, "accept-ranges", "bytes")?;
    // IMF-fixdate (RFC 9110 §5.6.7), as JS's toUTCString writes it; S3 clients read it.
    let uploaded = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(object.uploaded().as_millis() as f64));
    set(&headers, "last-modified", &String::from(uploaded.to_utc_string()))?;
    set(&headers, "content-length", &object.size().to_string())?;
    Ok(headers)
}

fn set(headers: &Headers, name: &str, value: &str) -> ApiResult<()> {
    headers.set(name, value).or_internal("header")
}

/// A single `bytes=` range; anything else (several ranges, other units, nonsense) is ignored
/// and the whole object is sent, as RFC 9110 allows.
fn parse_range(header: &str) -> Option<Range> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let number = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, false) => Some(Range::Suffix { suffix: number(last)? }),
        (false, true) => Some(Range::OffsetToEnd { offset: number(first)? }),
        (false, false) => {
            let (start, end) = (number(first)?, number(last)?);
            (end >= start).then(|| Range::OffsetWithLength { offset: start, length: (end - start).saturating_add(1) })
        }
        (true, true) => None,
    }
}

/// The largest integer a JS number holds exactly: R2's binding takes ranges as JS numbers, and
/// a larger one (`bytes=18446744073709551615-`) used to hang the request. No object is this
/// large, so a range clamped to it selects the same bytes.
const MAX_SAFE: u64 = (1 << 53) - 1;

/// `range` with every number clamped to [`MAX_SAFE`], selecting the same bytes of any object.
fn within_js(range: &Range) -> Range {
    match *range {
        Range::OffsetWithLength { offset, length } => {
            let offset = offset.min(MAX_SAFE);
            Range::OffsetWithLength { offset, length: length.min(MAX_SAFE - offset) }
        }
        Range::OffsetToEnd { offset } => Range::OffsetToEnd { offset: offset.min(MAX_SAFE) },
        Range::Prefix { length } => Range::Prefix { length: length.min(MAX_SAFE) },
        Range::Suffix { suffix } => Range::Suffix { suffix: suffix.min(MAX_SAFE) },
    }
}

/// The inclusive byte positions a range selects in an object of `size` bytes; `None` when it
/// selects nothing.
fn resolve_range(range: &Range, size: u64) -> Option<(u64, u64)> {
    let (start, end) = match *range {
        Range::OffsetWithLength { offset, length } => (offset, offset.saturating_add(length).min(size)),
        Range::OffsetToEnd { offset } => (offset, size),
        Range::Prefix { length } => (0, length.min(size)),
        Range::Suffix { suffix } => (size - suffix.min(size), size),
    };
    (start < end).then(|| (start, end - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_byte_ranges_are_understood() {
        assert_eq!(parse_range("bytes=0-99"), Some(Range::OffsetWithLength { offset: 0, length: 100 }));
        assert_eq!(parse_range("bytes=100-"), Some(Range::OffsetToEnd { offset: 100 }));
        assert_eq!(parse_range("bytes=-5"), Some(Range::Suffix { suffix: 5 }));
    }

    /// Issue 19, item 11: the limits of the grammar neither overflow nor reach R2 unclamped.
    #[test]
    fn huge_ranges_parse_without_overflow_and_reach_r2_within_a_js_number() {
        let max = u64::MAX;
        let whole = parse_range(&format!("bytes=0-{max}")).unwrap();
        assert_eq!(whole, Range::OffsetWithLength { offset: 0, length: max });
        assert_eq!(resolve_range(&whole, 10), Some((0, 9)), "past the end means to the end");
        assert_eq!(within_js(&whole), Range::OffsetWithLength { offset: 0, length: MAX_SAFE });
        let far = parse_range(&format!("bytes={max}-")).unwrap();
        assert_eq!((resolve_range(&far, 10), within_js(&far)), (None, Range::OffsetToEnd { offset: MAX_SAFE }));
        let suffix = parse_range(&format!("bytes=-{max}")).unwrap();
        assert_eq!(
            (resolve_range(&suffix, 10), within_js(&suffix)),
            (Some((0, 9)), Range::Suffix { suffix: MAX_SAFE })
        );
        let edge = parse_range(&format!("bytes={}-{}", max - 1, max)).unwrap();
        assert_eq!(within_js(&edge), Range::OffsetWithLength { offset: MAX_SAFE, length: 0 });
        assert_eq!(parse_range("bytes=0-18446744073709551616"), None, "past u64: not a range we serve");
    }

    #[test]
    fn other_ranges_are_ignored() {
        for header in ["bytes=5-2", "bytes=0-1,3-4", "items=0-1", "bytes=-", "bytes=a-b"] {
            assert_eq!(parse_range(header), None, "{header}");
        }
    }

    /// Issue 8, item 7.
    #[test]
    fn if_none_match_matches_any_tag_of_a_list_weakly_or_anything_with_a_star() {
        let etag = "abc-2";
        for header in [r#""abc-2""#, r#""x", "abc-2""#, r#"W/"abc-2""#, r#""x",W/"abc-2""#, "*", " * "] {
            assert!(none_match_fails(header, etag), "{header}");
        }
        for header in [r#""x", "y""#, r#""abc""#, "abc-2", "", r#"W/"abc-20""#] {
            assert!(!none_match_fails(header, etag), "{header}");
        }
    }

    #[test]
    fn if_range_lets_a_range_apply_only_with_the_same_strong_tag() {
        assert!(if_range_holds(r#""abc-2""#, "abc-2"));
        assert!(if_range_holds(r#" "abc-2" "#, "abc-2"));
        for header in [r#""other""#, r#"W/"abc-2""#, "Wed, 21 Oct 2015 07:28:00 GMT", r#""abc-2", "x""#, ""] {
            assert!(!if_range_holds(header, "abc-2"), "{header}");
        }
    }

    /// Issue 8, item 6: only the client's own cursor is a 4xx; R2 failing is a 500 to retry.
    #[test]
    fn a_listing_fails_as_the_clients_mistake_only_for_a_cursor_r2_calls_invalid() {
        assert!(is_cursor("cGhvdG9zLzIwMjYvY2F0LmpwZw=="));
        for bad in ["", "not a cursor", "a\u{e9}", &"A".repeat(4097)] {
            assert!(!is_cursor(bad), "{bad}");
        }
        let refused = "list: Invalid argument (10029)";
        assert!(blames_the_cursor(true, refused));
        assert!(!blames_the_cursor(false, refused));
        assert!(!blames_the_cursor(true, "list: We encountered an internal error. Please try again. (10001)"));
        assert!(!blames_the_cursor(true, "Network connection lost."));
        assert_eq!(bad_cursor().status(), 400);
        assert!(ApiError::Internal.is_retryable(), "what every other failure becomes");
    }

    #[test]
    fn ranges_resolve_against_the_object_size() {
        let size = 10;
        assert_eq!(resolve_range(&Range::OffsetWithLength { offset: 2, length: 100 }, size), Some((2, 9)));
        assert_eq!(resolve_range(&Range::Suffix { suffix: 3 }, size), Some((7, 9)));
        assert_eq!(resolve_range(&Range::Suffix { suffix: 30 }, size), Some((0, 9)));
        assert_eq!(resolve_range(&Range::OffsetToEnd { offset: 10 }, size), None);
    }
}
