//! Deployment settings, read from the Worker's environment (wrangler.toml `[vars]` and secrets).

use r2mpu_api::layout::{DEFAULT_MAX_PART_SIZE, MIN_PART_SIZE};
use r2mpu_api::units::{parse_duration, parse_size};
use worker::Env;

use crate::sigv4::Credentials;

/// How long an upload may sit idle before its alarm aborts it, unless `UPLOAD_TTL` says otherwise.
pub const DEFAULT_UPLOAD_TTL_MS: u64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `MAX_PART_SIZE`: the largest part accepted, in bytes (`100MiB`, `100M`; see
    /// [`parse_size`]).
    pub max_part_size: u64,
    /// `UPLOAD_TTL`: idle time after which an open upload is aborted, and after which a finished
    /// upload's record is forgotten (`90s`, `30m`, `24h`, `7d`, or seconds).
    pub upload_ttl_ms: u64,
    /// `AUTH_ISSUER`: when set, tokens must carry this `iss`.
    pub issuer: Option<String>,
    /// `AUTH_AUDIENCE`: when set, tokens must carry this `aud`.
    pub audience: Option<String>,
    /// `ACTION_PROTOCOL`: `on` (default) serves the guide's `/{key}?action=` protocol beside the
    /// REST API, for clients written against it; `off` answers it with `404`.
    pub action_protocol: bool,
    /// `ALLOWED_ORIGINS`: which other origins' pages may call the API from a browser (CORS):
    /// comma-separated origins (`https://app.example.com`), or `*`. Unset: none; the upload
    /// page the Worker serves itself is same-origin and needs no grant.
    pub allowed_origins: AllowedOrigins,
    /// `S3_BUCKET`: the bucket name S3 clients address (`/s3/{bucket}/...`, ListBuckets);
    /// default `r2mpu`. Objects land in the `BUCKET` binding whatever it is called.
    pub s3_bucket: String,
    /// Direct parts (issue 22): R2's S3 endpoint and a key for it, from which part URLs are
    /// signed. `None` when not configured: then direct parts are not offered (`501
    /// direct_parts_unavailable`) and everything else works as ever.
    pub direct: Option<DirectParts>,
}

/// `R2_S3_ENDPOINT`, `R2_S3_BUCKET`, `R2_S3_ACCESS_KEY_ID`, `R2_S3_SECRET_ACCESS_KEY` (the last
/// two as secrets: `wrangler secret put`): all four, or none.
#[derive(Clone, PartialEq, Eq)]
pub struct DirectParts {
    /// `scheme://host[:port]` of the endpoint (`https://<account>.r2.cloudflarestorage.com`).
    pub origin: String,
    /// The endpoint's path before the bucket, without a trailing slash: empty on R2, and
    /// `/cdn-cgi/local/r2/s3` for `wrangler dev`'s local R2.
    pub path_prefix: String,
    /// The bucket's name at that endpoint (the `BUCKET` binding's bucket).
    pub bucket: String,
    pub credentials: Credentials,
}

/// The names of the direct-part settings, in the order they are reported missing.
pub const DIRECT_VARS: [&str; 4] = ["R2_S3_ENDPOINT", "R2_S3_BUCKET", "R2_S3_ACCESS_KEY_ID", "R2_S3_SECRET_ACCESS_KEY"];

impl std::fmt::Debug for DirectParts {
    /// The secret stays out of any log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectParts")
            .field("origin", &self.origin)
            .field("path_prefix", &self.path_prefix)
            .field("bucket", &self.bucket)
            .field("access_key_id", &self.credentials.access_key_id)
            .finish_non_exhaustive()
    }
}

impl DirectParts {
    fn parse(values: [Option<String>; 4]) -> Result<Option<DirectParts>, String> {
        let given: Vec<&str> = DIRECT_VARS.iter().zip(&values).filter(|(_, v)| v.is_some()).map(|(n, _)| *n).collect();
        let [Some(endpoint), Some(bucket), Some(access_key_id), Some(secret_access_key)] = values else {
            if given.is_empty() {
                return Ok(None);
            }
            let missing: Vec<&str> = DIRECT_VARS.iter().filter(|n| !given.contains(n)).copied().collect();
            return Err(format!("direct parts need all of {}; missing {}", DIRECT_VARS.join(", "), missing.join(", ")));
        };
        let endpoint = endpoint.trim().trim_end_matches('/');
        let not_url =
            || format!("R2_S3_ENDPOINT `{endpoint}` is not a URL like https://ACCOUNT.r2.cloudflarestorage.com");
        let (scheme, rest) = endpoint.split_once("://").ok_or_else(not_url)?;
        if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains(['?', '#']) {
            return Err(not_url());
        }
        let (host, path_prefix) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, ""),
        };
        if host.is_empty() {
            return Err(not_url());
        }
        Ok(Some(DirectParts {
            origin: format!("{scheme}://{host}"),
            path_prefix: path_prefix.to_string(),
            bucket: bucket.trim().to_string(),
            credentials: Credentials {
                access_key_id: access_key_id.trim().to_string(),
                secret_access_key: secret_access_key.trim().to_string(),
                session_token: None,
            },
        }))
    }
}

/// The bucket name S3 clients address unless `S3_BUCKET` says otherwise.
pub const DEFAULT_S3_BUCKET: &str = "r2mpu";

/// The origins granted CORS access.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AllowedOrigins {
    #[default]
    None,
    Any,
    /// Exact origins, lower-cased, without a trailing slash.
    List(Vec<String>),
}

impl AllowedOrigins {
    fn parse(text: &str) -> Result<AllowedOrigins, String> {
        if text.trim() == "*" {
            return Ok(AllowedOrigins::Any);
        }
        let mut origins = Vec::new();
        for origin in text.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let origin = origin.trim_end_matches('/').to_ascii_lowercase();
            let host = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
            if host.is_none_or(|host| host.is_empty() || host.contains('/')) {
                return Err(format!("ALLOWED_ORIGINS: `{origin}` is not an origin like https://app.example.com"));
            }
            origins.push(origin);
        }
        Ok(if origins.is_empty() { AllowedOrigins::None } else { AllowedOrigins::List(origins) })
    }

    /// Whether a request's `Origin` header value is granted.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            AllowedOrigins::None => false,
            AllowedOrigins::Any => true,
            AllowedOrigins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }
}

impl Config {
    /// Reads the settings. A malformed value is a deployment mistake: it fails every request
    /// loudly (500, logged) rather than falling back to a default nobody chose.
    pub fn from_env(env: &Env) -> Result<Config, String> {
        Config::from_vars(|name| env.var(name).ok().map(|v| v.to_string()))
    }

    /// [`Config::from_env`] over any source of variables; a blank value counts as unset.
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let text = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let max_part_size = match text("MAX_PART_SIZE") {
            Some(v) => parse_size(&v).map_err(|_| format!("MAX_PART_SIZE `{v}` is not a size"))?,
            None => DEFAULT_MAX_PART_SIZE,
        };
        if max_part_size < MIN_PART_SIZE {
            return Err(format!("MAX_PART_SIZE must be at least {MIN_PART_SIZE} (R2's minimum part)"));
        }
        // `parse_duration` refuses zero: an upload must not be aborted the moment it is created.
        let upload_ttl_ms = match text("UPLOAD_TTL") {
            Some(v) => parse_duration(&v)
                .ok()
                .and_then(|ttl| u64::try_from(ttl.as_millis()).ok())
                .ok_or_else(|| format!("UPLOAD_TTL `{v}` is not a duration"))?,
            None => DEFAULT_UPLOAD_TTL_MS,
        };
        let action_protocol = match text("ACTION_PROTOCOL").as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => return Err(format!("ACTION_PROTOCOL must be `on` or `off`, not `{other}`")),
        };
        let allowed_origins = match text("ALLOWED_ORIGINS") {
            Some(v) => AllowedOrigins::parse(&v)?,
            None => AllowedOrigins::None,
        };
        Ok(Config {
            max_part_size,
            upload_ttl_ms,
            issuer: text("AUTH_ISSUER"),
            audience: text("AUTH_AUDIENCE"),
            action_protocol,
            allowed_origins,
            s3_bucket: text("S3_BUCKET").map_or_else(|| DEFAULT_S3_BUCKET.to_string(), |b| b.trim().to_string()),
            direct: DirectParts::parse(DIRECT_VARS.map(text))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_vars(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn unset_and_blank_settings_take_the_defaults() {
        let defaults = Config {
            max_part_size: DEFAULT_MAX_PART_SIZE,
            upload_ttl_ms: DEFAULT_UPLOAD_TTL_MS,
            issuer: None,
            audience: None,
            action_protocol: true,
            allowed_origins: AllowedOrigins::None,
            s3_bucket: DEFAULT_S3_BUCKET.into(),
            direct: None,
        };
        assert_eq!(config(&[]), Ok(defaults.clone()));
        assert_eq!(config(&[("MAX_PART_SIZE", " "), ("UPLOAD_TTL", ""), ("AUTH_ISSUER", "")]), Ok(defaults));
    }

    #[test]
    fn sizes_and_durations_take_the_shared_units() {
        let parsed = config(&[("MAX_PART_SIZE", "100MiB"), ("UPLOAD_TTL", "24h")]).unwrap();
        assert_eq!((parsed.max_part_size, parsed.upload_ttl_ms), (100 << 20, DEFAULT_UPLOAD_TTL_MS));
        let parsed = config(&[("MAX_PART_SIZE", "104857600"), ("UPLOAD_TTL", "86400")]).unwrap();
        assert_eq!((parsed.max_part_size, parsed.upload_ttl_ms), (100 << 20, DEFAULT_UPLOAD_TTL_MS));
        assert_eq!(config(&[("UPLOAD_TTL", "3s")]).unwrap().upload_ttl_ms, 3000);
    }

    #[test]
    fn malformed_settings_say_which_and_why() {
        assert_eq!(config(&[("MAX_PART_SIZE", "-1")]), Err("MAX_PART_SIZE `-1` is not a size".into()));
        // `MB` is decimal: 5MB is under R2's 5 MiB minimum.
        assert_eq!(
            config(&[("MAX_PART_SIZE", "5MB")]),
            Err(format!("MAX_PART_SIZE must be at least {MIN_PART_SIZE} (R2's minimum part)"))
        );
        assert_eq!(config(&[("UPLOAD_TTL", "1w")]), Err("UPLOAD_TTL `1w` is not a duration".into()));
        let protocol = config(&[("ACTION_PROTOCOL", "yes")]);
        assert_eq!(protocol, Err("ACTION_PROTOCOL must be `on` or `off`, not `yes`".into()));
    }

    #[test]
    fn a_zero_upload_ttl_is_refused() {
        for zero in ["0", "0s", "0h"] {
            assert_eq!(config(&[("UPLOAD_TTL", zero)]), Err(format!("UPLOAD_TTL `{zero}` is not a duration")));
        }
    }

    #[test]
    fn allowed_origins_are_a_list_or_any_and_nothing_by_default() {
        let origins = |v: &str| config(&[("ALLOWED_ORIGINS", v)]).map(|c| c.allowed_origins);
        let list = origins(" https://App.example.com/ , http://127.0.0.1:8080").unwrap();
        assert_eq!(list, AllowedOrigins::List(vec!["https://app.example.com".into(), "http://127.0.0.1:8080".into()]));
        assert!(list.allows("https://app.example.com") && list.allows("http://127.0.0.1:8080"));
        assert!(!list.allows("https://evil.example.com") && !list.allows("null"));
        assert!(origins("*").unwrap().allows("https://anyone.example"));
        assert!(!config(&[]).unwrap().allowed_origins.allows("https://app.example.com"));
        assert_eq!(
            origins("app.example.com"),
            Err("ALLOWED_ORIGINS: `app.example.com` is not an origin like https://app.example.com".into())
        );
        assert!(origins("https://app.example.com/path").is_err());
    }

    #[test]
    fn direct_parts_take_all_four_settings_or_none() {
        let local = [
            ("R2_S3_ENDPOINT", "http://127.0.0.1:8787/cdn-cgi/local/r2/s3/"),
            ("R2_S3_BUCKET", "r2mpu"),
            ("R2_S3_ACCESS_KEY_ID", "id"),
            ("R2_S3_SECRET_ACCESS_KEY", "secret"),
        ];
        let direct = config(&local).unwrap().direct.unwrap();
        assert_eq!(
            (direct.origin.as_str(), direct.path_prefix.as_str()),
            ("http://127.0.0.1:8787", "/cdn-cgi/local/r2/s3")
        );
        assert_eq!((direct.bucket.as_str(), direct.credentials.secret_access_key.as_str()), ("r2mpu", "secret"));
        assert!(!format!("{direct:?}").contains("secret"), "the secret is never in Debug output");
        let at = |endpoint| config(&[("R2_S3_ENDPOINT", endpoint), local[1], local[2], local[3]]);
        let direct = at("https://acc.r2.cloudflarestorage.com").unwrap().direct.unwrap();
        assert_eq!((direct.origin.as_str(), direct.path_prefix.as_str()), ("https://acc.r2.cloudflarestorage.com", ""));
        assert_eq!(config(&[]).unwrap().direct, None);
        assert_eq!(
            config(&local[..2]),
            Err(
                "direct parts need all of R2_S3_ENDPOINT, R2_S3_BUCKET, R2_S3_ACCESS_KEY_ID, R2_S3_SECRET_ACCESS_KEY; \
                 missing R2_S3_ACCESS_KEY_ID, R2_S3_SECRET_ACCESS_KEY"
                    .into()
            )
        );
        assert!(at("ftp://x").unwrap_err().starts_with("R2_S3_ENDPOINT `ftp://x` is not a URL"));
        assert!(at("https://").is_err() && at("https:///path").is_err());
    }
}
