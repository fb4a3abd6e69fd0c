//! Deployment settings, read from the Worker's environment (wrangler.toml `[vars]` and secrets).

use r2mpu_api::layout::{DEFAULT_MAX_PART_SIZE, MIN_PART_SIZE};
use r2mpu_api::units::{parse_duration, parse_size};
use worker::Env;

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
}
