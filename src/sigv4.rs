//! AWS Signature Version 4, the parts S3 needs (pure Rust: HMAC-SHA256 from `hmac-sha256`):
//! URI encoding, the canonical query and headers, the canonical request, the string to sign,
//! the signing key and the signature. What a request must carry, and what is checked against
//! what, is the protocol's business (`protocols::s3::auth`).
//! Reference: <https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>.

use crate::hex::hex;

/// RFC 3986 percent-encoding as SigV4 has it: unreserved characters (`A-Z a-z 0-9 - . _ ~`) as
/// they are, every other byte as `%XY` (upper-case hex); `/` kept unless `encode_slash`.
pub fn uri_encode(text: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(byte as char),
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The canonical query string of decoded `(name, value)` pairs: each encoded, sorted by name
/// then value, joined with `&`.
pub fn canonical_query(pairs: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> =
        pairs.iter().map(|(k, v)| (uri_encode(k, true), uri_encode(v, true))).collect();
    encoded.sort();
    encoded.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// The canonical headers of `(lower-case name, value)` pairs in signed-header order: one
/// `name:value\n` each, the value trimmed and its inner runs of spaces made one.
pub fn canonical_headers(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .map(|(name, value)| {
            format!("{}:{}\n", name.to_ascii_lowercase(), value.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .collect()
}

/// A canonical request, its parts already canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalRequest {
    pub method: String,
    /// The URI-encoded path.
    pub path: String,
    /// [`canonical_query`].
    pub query: String,
    /// [`canonical_headers`].
    pub headers: String,
    /// `host;x-amz-date;...`
    pub signed_headers: String,
    /// Hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`.
    pub payload_hash: String,
}

impl CanonicalRequest {
    pub fn text(&self) -> String {
        let CanonicalRequest { method, path, query, headers, signed_headers, payload_hash } = self;
        format!("{method}\n{path}\n{query}\n{headers}\n{signed_headers}\n{payload_hash}")
    }
}

/// The string to sign for a request signed at `amz_date` (`YYYYMMDDTHHMMSSZ`) in `scope`
/// (`DATE/REGION/SERVICE/aws4_request`).
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    let hash = hex(&hmac_sha256::Hash::hash(canonical_request.as_bytes()));
    format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hash}")
}

/// The key derived from the secret for one day, region and service.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mac = |key: &[u8], data: &str| hmac_sha256::HMAC::mac(data.as_bytes(), key);
    let k_date = mac(format!("AWS4{secret}").as_bytes(), date);
    let k_region = mac(&k_date, region);
    let k_service = mac(&k_region, service);
    mac(&k_service, "aws4_request")
}

/// The hex signature of `string_to_sign` under `signing_key`.
pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex(&hmac_sha256::HMAC::mac(string_to_sign.as_bytes(), signing_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's documented example: "GET Object" from the S3 SigV4 header-signing page.
    #[test]
    fn the_s3_documentation_example_signs_as_documented() {
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let headers = [
            ("host".to_string(), "examplebucket.s3.amazonaws.com".to_string()),
            ("range".to_string(), "bytes=0-9".to_string()),
            ("x-amz-content-sha256".to_string(), empty.to_string()),
            ("x-amz-date".to_string(), "20130524T000000Z".to_string()),
        ];
        let request = CanonicalRequest {
            method: "GET".into(),
            path: uri_encode("/test.txt", false),
            query: canonical_query(&[]),
            headers: canonical_headers(&headers),
            signed_headers: "host;range;x-amz-content-sha256;x-amz-date".into(),
            payload_hash: empty.into(),
        };
        let to_sign = string_to_sign("20130524T000000Z", "20130524/us-east-1/s3/aws4_request", &request.text());
        assert!(to_sign.ends_with("7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"), "{to_sign}");
        let key = signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3");
        assert_eq!(signature(&key, &to_sign), "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    }

    #[test]
    fn encoding_keeps_unreserved_characters_and_slashes_on_request() {
        assert_eq!(uri_encode("a b/c~d+é", false), "a%20b/c~d%2B%C3%A9");
        assert_eq!(uri_encode("a/b", true), "a%2Fb");
        let pairs = [("uploadId".to_string(), "x y".to_string()), ("partNumber".to_string(), "2".to_string())];
        assert_eq!(canonical_query(&pairs), "partNumber=2&uploadId=x%20y");
    }
}
