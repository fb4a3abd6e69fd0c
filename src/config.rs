//! Deployment settings, read from the Worker's environment (wrangler.toml `[vars]` and secrets).

use r2mpu_api::layout::{DEFAULT_MAX_PART_SIZE, MIN_PART_SIZE};
use worker::Env;

/// How long an upload may sit idle before its alarm aborts it, unless `UPLOAD_TTL` says otherwise.
pub const DEFAULT_UPLOAD_TTL_MS: u64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `MAX_PART_SIZE`: the largest part accepted, in bytes (suffixes `KiB`, `MiB`, `GiB` allowed).
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
}

impl Config {
    /// Reads the settings. A malformed value is a deployment mistake: it fails every request
    /// loudly (500, logged) rather than falling back to a default nobody chose.
    pub fn from_env(env: &Env) -> Result<Config, String> {
        let text = |name: &str| env.var(name).ok().map(|v| v.to_string()).filter(|v| !v.trim().is_empty());
        let max_part_size = match text("MAX_PART_SIZE") {
            Some(v) => parse_bytes(&v).ok_or_else(|| format!("MAX_PART_SIZE `{v}` is not a size"))?,
            None => DEFAULT_MAX_PART_SIZE,
        };
        if max_part_size < MIN_PART_SIZE {
            return Err(format!("MAX_PART_SIZE must be at least {MIN_PART_SIZE} (R2's minimum part)"));
        }
        let upload_ttl_ms = match text("UPLOAD_TTL") {
            Some(v) => parse_duration_ms(&v).ok_or_else(|| format!("UPLOAD_TTL `{v}` is not a duration"))?,
            None => DEFAULT_UPLOAD_TTL_MS,
        };
        let action_protocol = match text("ACTION_PROTOCOL").as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => return Err(format!("ACTION_PROTOCOL must be `on` or `off`, not `{other}`")),
        };
        Ok(Config {
            max_part_size,
            upload_ttl_ms,
            issuer: text("AUTH_ISSUER"),
            audience: text("AUTH_AUDIENCE"),
            action_protocol,
        })
    }
}

/// `104857600`, `100MiB`, `512KiB`, `1GiB`.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(scale)
}

/// `86400` (seconds), `90s`, `30m`, `24h`, `7d`, in milliseconds; never zero.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    let ms = number.parse::<u64>().ok()?.checked_mul(seconds * 1000)?;
    (ms > 0).then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_bytes("104857600"), Some(100 << 20));
        assert_eq!(parse_bytes("100MiB"), Some(100 << 20));
        assert_eq!(parse_bytes("1GiB"), Some(1 << 30));
        assert_eq!(parse_bytes("5MB"), None);
        assert_eq!(parse_bytes("-1"), None);
    }

    #[test]
    fn durations_take_unit_suffixes_and_are_never_zero() {
        assert_eq!(parse_duration_ms("86400"), Some(DEFAULT_UPLOAD_TTL_MS));
        assert_eq!(parse_duration_ms("24h"), Some(DEFAULT_UPLOAD_TTL_MS));
        assert_eq!(parse_duration_ms("3s"), Some(3000));
        assert_eq!(parse_duration_ms("0"), None);
        assert_eq!(parse_duration_ms("1w"), None);
    }
}
