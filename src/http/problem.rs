//! How an [`ApiError`] leaves the Worker: `application/problem+json` (RFC 9457) with the headers
//! its status calls for, rendered here once for every route.

use r2mpu_api::Problem;
use worker::{Headers, Response};

use crate::error::ApiError;

/// Renders `error` as a problem response.
pub fn problem_response(error: ApiError) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/problem+json");
    match &error {
        ApiError::MissingToken => {
            let _ = headers.set(
                "www-authenticate",
                r#"Bearer realm="r2mpu", error="invalid_token", error_description="missing bearer token""#,
            );
        }
        ApiError::InvalidToken { reason } => {
            let reason = reason.replace('"', "'");
            let _ = headers.set(
                "www-authenticate",
                &format!(r#"Bearer realm="r2mpu", error="invalid_token", error_description="{reason}""#),
            );
        }
        ApiError::InsufficientScope { scope } => {
            let _ = headers.set(
                "www-authenticate",
                &format!(r#"Bearer realm="r2mpu", error="insufficient_scope", scope="{scope}""#),
            );
        }
        ApiError::MethodNotAllowed { allow } => {
            let _ = headers.set("allow", &allow.join(", "));
        }
        ApiError::RangeNotSatisfiable { size } => {
            let _ = headers.set("content-range", &format!("bytes */{size}"));
        }
        // The IETF draft: a `409` for a wrong offset carries the right one.
        ApiError::OffsetMismatch { expected_offset, .. } => {
            let _ = headers.set("upload-offset", &expected_offset.to_string());
        }
        ApiError::UploadCompleting => {
            let _ = headers.set("retry-after", "1");
        }
        ApiError::PartInFlight { retry_after, .. } => {
            let _ = headers.set("retry-after", &retry_after.to_string());
        }
        _ => {}
    }
    let status = error.status();
    let body = serde_json::to_vec(&Problem::from(error)).unwrap_or_default();
    Response::from_bytes(body)
        .map(|r| r.with_status(status).with_headers(headers))
        .unwrap_or_else(|_| Response::empty().unwrap().with_status(500))
}

#[cfg(test)]
mod tests {
    use crate::error::ApiError;

    /// Every `code` `ApiError` has, in declaration order, read from serde itself: deserializing
    /// an unknown tag fails with "expected one of `a`, `b`, ...", listing every variant, so a
    /// variant added later cannot be left out of the comparison below.
    fn every_code() -> Vec<String> {
        let error = serde_json::from_str::<ApiError>(r#"{"code":"?"}"#).unwrap_err().to_string();
        let listed = error.split("expected one of ").nth(1).unwrap_or_else(|| panic!("{error}"));
        listed.split(", ").map(|code| code.split('`').nth(1).unwrap().to_string()).collect()
    }

    /// openapi.yaml's `ProblemCode` enum is exactly `ApiError`'s codes, in the same order, and
    /// its description gives each code the status the Worker sends it with.
    #[test]
    fn openapi_yaml_lists_exactly_the_problem_codes_of_api_error() {
        let spec: serde_yaml::Value = serde_yaml::from_str(include_str!("../../openapi.yaml")).unwrap();
        let schema = &spec["components"]["schemas"]["ProblemCode"];
        let documented: Vec<String> =
            schema["enum"].as_sequence().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
        let codes = every_code();
        assert!(codes.len() > 20 && codes.contains(&"internal".to_string()), "{codes:?}");
        assert_eq!(documented, codes);

        // "`missing_token`, `invalid_token` (401); ... every other code is 400."
        let description = schema["description"].as_str().unwrap();
        for code in &codes {
            let error: ApiError = serde_json::from_value(example(code)).unwrap_or_else(|e| panic!("{code}: {e}"));
            let after = description.split(&format!("`{code}`")).nth(1);
            let documented = match after {
                Some(rest) => rest.split('(').nth(1).and_then(|s| s.get(..3)).unwrap_or("?").to_string(),
                None => "400".to_string(),
            };
            assert_eq!(documented, error.status().to_string(), "{code}");
        }
    }

    /// A problem body with `code` and every field any variant carries, so each one parses.
    fn example(code: &str) -> serde_json::Value {
        serde_json::json!({
            "code": code, "reason": "", "scope": "", "prefix": "", "allow": [], "errors": {}, "accept": "",
            "limit": 1, "partNumber": 1, "partNumbers": [1], "expected": 1, "actual": 1, "missing": [], "size": 1,
            "expected-offset": 1, "provided-offset": 1,
        })
    }
}
