//! `/objects`: reading, listing and deleting what uploads produced. Bodies are R2's own
//! streams handed to the response, never pulled through wasm.

use percent_encoding::percent_decode_str;
use r2mpu_api::key::check_key;
use r2mpu_api::time::rfc3339;
use r2mpu_api::types::{ObjectInfo, ObjectList};
use worker::{Conditional, Object, Range};
use worker::{Headers, Response};

use crate::auth::Claims;
use crate::error::{internal, ApiError, ApiResult, OrInternal};
use crate::faults::Faults;
use crate::http::{json, no_content, Ctx};

/// The most objects one page of `listObjects` returns (R2's own page limit).
const MAX_LIST: u32 = 1000;

/// `getObject`: the object or a `Range` of it, `304` when `If-None-Match` matches.
pub async fn get(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let key = object_key(&cx, &claims)?;
    let bucket = cx.bucket()?;
    let range = cx.header("range").and_then(|h| parse_range(&h));
    let mut request = bucket.get(key.clone());
    if let Some(range) = &range {
        request = request.range(range.clone());
    }
    if let Some(etag) = cx.header("if-none-match").as_deref().and_then(first_etag) {
        request = request.only_if(Conditional { etag_does_not_match: Some(etag), ..Default::default() });
    }
    Faults::of(&cx).r2("get").await?;
    let object = match request.execute().await {
        Ok(Some(object)) => object,
        Ok(None) => return Err(ApiError::ObjectNotFound),
        Err(e) if range.is_some() => {
            return match bucket.head(key).await.or_internal("R2 head")? {
                Some(head) => Err(ApiError::RangeNotSatisfiable { size: head.size() }),
                None => Err(internal("R2 ranged get", e)),
            };
        }
        Err(e) => return Err(internal("R2 get", e)),
    };
    let headers = object_headers(&object)?;
    let Some(body) = object.body() else {
        return Ok(Response::empty().or_internal("304")?.with_status(304).with_headers(headers));
    };
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
    let body = body.response_body().or_internal("object body")?;
    Ok(Response::from_body(body).or_internal("object response")?.with_status(status).with_headers(headers))
}

/// `headObject`: the object's headers, without its body.
pub async fn head(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let key = object_key(&cx, &claims)?;
    Faults::of(&cx).r2("head").await?;
    let object = cx.bucket()?.head(key).await.or_internal("R2 head")?.ok_or(ApiError::ObjectNotFound)?;
    let headers = object_headers(&object)?;
    let matches = cx.header("if-none-match").as_deref().and_then(first_etag) == Some(object.etag());
    let status = if matches { 304 } else { 200 };
    Ok(Response::empty().or_internal("head")?.with_status(status).with_headers(headers))
}

/// `deleteObject`: `204` whether or not the object existed, so retries are safe.
pub async fn delete(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let key = object_key(&cx, &claims)?;
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
        request = request.cursor(cursor.clone());
    }
    Faults::of(&cx).r2("list").await?;
    let page = match request.execute().await {
        Ok(page) => page,
        Err(_) if cursor.is_some() => {
            return Err(ApiError::invalid_field("cursor", "not a cursor from a previous page"))
        }
        Err(e) => return Err(internal("R2 list", e)),
    };
    let objects = page
        .objects()
        .iter()
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

/// The `{*key}` path parameter, percent-decoded, checked against the key rules and the token.
pub(crate) fn object_key(cx: &Ctx, claims: &Claims) -> ApiResult<String> {
    let key = percent_decode_str(cx.param("key"))
        .decode_utf8()
        .map_err(|_| ApiError::InvalidKey { reason: "the key is not UTF-8".into() })?
        .into_owned();
    check_key(&key).map_err(|reason| ApiError::InvalidKey { reason })?;
    claims.check_key(&key)?;
    Ok(key)
}

/// The entity tag of an `If-None-Match` header, unquoted, weak or strong alike. Only the first
/// tag of a list counts: R2 compares one.
fn first_etag(header: &str) -> Option<String> {
    let tag = header.split(',').next()?.trim().trim_start_matches("W/").trim_matches('"');
    (!tag.is_empty()).then(|| tag.to_string())
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
            (end >= start).then(|| Range::OffsetWithLength { offset: start, length: end - start + 1 })
        }
        (true, true) => None,
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

    #[test]
    fn other_ranges_are_ignored() {
        for header in ["bytes=5-2", "bytes=0-1,3-4", "items=0-1", "bytes=-", "bytes=a-b"] {
            assert_eq!(parse_range(header), None, "{header}");
        }
    }

    #[test]
    fn if_none_match_yields_its_first_tag_unquoted() {
        assert_eq!(first_etag(r#""abc-2""#), Some("abc-2".into()));
        assert_eq!(first_etag(r#"W/"abc", "def""#), Some("abc".into()));
        assert_eq!(first_etag("abc"), Some("abc".into()));
        assert_eq!(first_etag(" "), None);
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
