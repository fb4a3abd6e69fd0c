//! Object key rules, checked at the door so that R2 never sees a key it would reject and no key
//! can be read as a path that climbs out of its prefix.

/// R2's limit on a key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// Keys the server keeps for itself in the bucket (the bytes a tus upload holds between two
/// appends): no user creates, reads, deletes or lists anything under it.
pub const RESERVED_PREFIX: &str = ".r2mpu/";

/// Accepts any UTF-8 key up to [`MAX_KEY_BYTES`] without control characters, without `.` or
/// `..` path segments and outside [`RESERVED_PREFIX`]. `/` is an ordinary character (keys look
/// like paths).
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the key is empty".into());
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(format!("the key is {} bytes; the limit is {MAX_KEY_BYTES}", key.len()));
    }
    if key.chars().any(char::is_control) {
        return Err("the key contains a control character".into());
    }
    if key.split('/').any(|segment| segment == "." || segment == "..") {
        return Err("the key contains a `.` or `..` segment".into());
    }
    if key.starts_with(RESERVED_PREFIX) {
        return Err(format!("keys under `{RESERVED_PREFIX}` are the server's own"));
    }
    Ok(())
}

/// [`check_key`] in the shape `validator` wants for `#[validate(custom(...))]`.
pub fn validate_key(key: &str) -> Result<(), validator::ValidationError> {
    check_key(key).map_err(|reason| validator::ValidationError::new("invalid_key").with_message(reason.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_and_non_ascii_keys_pass() {
        for key in
            ["a", "photos/2026/cat.jpg", "ünïcødé/ファイル.bin", "a..b", ".hidden", "dir/", ".r2mpu", "x/.r2mpu/y"]
        {
            assert_eq!(check_key(key), Ok(()), "{key}");
        }
    }

    #[test]
    fn traversal_empty_control_and_oversized_keys_fail() {
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        let reserved = ".r2mpu/tails/0123/abcd";
        for key in ["", "..", "../etc/passwd", "a/../b", "a/./b", "a/..", "tab\there", "nul\0", &long, reserved] {
            assert!(check_key(key).is_err(), "{key:?}");
        }
        assert_eq!(check_key(&"k".repeat(MAX_KEY_BYTES)), Ok(()));
    }
}
