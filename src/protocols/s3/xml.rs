//! S3's XML, by hand (no XML crate in the Worker's bundle): escaping what we write, a response
//! with the S3 namespace, and reading the one body S3 clients send us, the part list of
//! `CompleteMultipartUpload`.

use r2mpu_api::layout::parse_part_number;
use r2mpu_api::types::PartRef;
use worker::Response;

use crate::error::{ApiError, ApiResult, OrInternal};

/// The namespace every S3 result document declares.
pub const NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// `text` escaped for an XML element or attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `<name>escaped text</name>`.
pub fn element(name: &str, text: &str) -> String {
    format!("<{name}>{}</{name}>", escape(text))
}

/// A `200` result document `<root xmlns=..>inner</root>`.
pub fn document(root: &str, inner: &str) -> ApiResult<Response> {
    let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root} xmlns=\"{NS}\">{inner}</{root}>");
    let response = Response::ok(body).or_internal("xml response")?;
    response.headers().set("content-type", "application/xml").or_internal("content-type")?;
    Ok(response)
}

/// The parts of a `CompleteMultipartUpload` body, in the order listed, ETags unquoted.
pub fn complete_parts(body: &str) -> ApiResult<Vec<PartRef>> {
    let malformed = |reason: &str| ApiError::MalformedXml { reason: reason.into() };
    if !body.contains("<CompleteMultipartUpload") {
        return Err(malformed("the body is not a CompleteMultipartUpload"));
    }
    let mut parts = Vec::new();
    for part in body.split("<Part>").skip(1) {
        let part = part.split("</Part>").next().unwrap_or("");
        let number = text_of(part, "PartNumber").ok_or_else(|| malformed("a Part without a PartNumber"))?;
        let etag = text_of(part, "ETag").ok_or_else(|| malformed("a Part without an ETag"))?;
        let etag = unescape(&etag);
        let etag = etag.trim().trim_matches('"').to_string();
        parts.push(PartRef { part_number: parse_part_number(number.trim())?, etag });
    }
    if parts.is_empty() {
        return Err(malformed("the part list is empty"));
    }
    Ok(parts)
}

/// The text of the first `<name>..</name>` in `xml`.
fn text_of(xml: &str, name: &str) -> Option<String> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].to_string())
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_body_gives_its_parts_in_order_with_bare_etags() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Part><ETag>"aa11"</ETag><PartNumber>1</PartNumber></Part>
  <Part><PartNumber>2</PartNumber><ETag>&quot;bb22&quot;</ETag><ChecksumCRC32>x</ChecksumCRC32></Part>
</CompleteMultipartUpload>"#;
        let parts = complete_parts(body).unwrap();
        let got: Vec<(u16, &str)> = parts.iter().map(|p| (p.part_number, p.etag.as_str())).collect();
        assert_eq!(got, [(1, "aa11"), (2, "bb22")]);
        assert!(matches!(complete_parts("<x/>"), Err(ApiError::MalformedXml { .. })));
        assert!(complete_parts("<CompleteMultipartUpload></CompleteMultipartUpload>").is_err());
        assert!(
            complete_parts("<CompleteMultipartUpload><Part><PartNumber>0</PartNumber><ETag>a</ETag></Part>").is_err()
        );
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(element("Key", "a<&>\"b'"), "<Key>a&lt;&amp;&gt;&quot;b&apos;</Key>");
    }
}
