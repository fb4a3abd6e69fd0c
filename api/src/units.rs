//! Sizes and durations as people type them, one way for both sides: the CLI's flags
//! (`--part-size 8M`, `--ttl 12h`) and the Worker's settings (`MAX_PART_SIZE = "100MiB"`,
//! `UPLOAD_TTL = "24h"`).

use std::time::Duration;

/// Parses `5242880`, `16MiB`, `8M`, `512k`, `1GiB`, `100MB`. `K`/`M`/`G` with or without `i`/`iB`
/// are binary (1024-based), as part sizes always are; `KB`/`MB`/`GB` are decimal. Case and a
/// space before the unit do not matter.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kib" => 1 << 10,
        "m" | "mi" | "mib" => 1 << 20,
        "g" | "gi" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(format!("`{text}` is not a size: use bytes, or a number with KiB, MiB or GiB")),
    };
    let number: u64 =
        number.parse().map_err(|_| format!("`{text}` is not a size: it must start with a whole number"))?;
    number.checked_mul(scale).ok_or_else(|| format!("`{text}` is too large"))
}

/// Parses `3600` (seconds), `90s`, `30m`, `12h`, `7d`; a space before the unit does not matter.
/// Zero is refused: a token, timeout or TTL that is over before it starts is a mistake.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds: u64 = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}` is not a duration: use seconds, or a number with s, m, h or d")),
    };
    let number: u64 =
        number.parse().map_err(|_| format!("`{text}` is not a duration: it must start with a whole number"))?;
    match number.checked_mul(seconds) {
        Some(0) => Err("the duration must be longer than zero".into()),
        Some(total) => Ok(Duration::from_secs(total)),
        None => Err(format!("`{text}` is too long")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn sizes_take_bytes_and_binary_or_decimal_units() {
        assert_eq!(parse_size("5242880"), Ok(5 * MIB));
        assert_eq!(parse_size("104857600"), Ok(100 * MIB));
        assert_eq!(parse_size("16MiB"), Ok(16 * MIB));
        assert_eq!(parse_size("100MiB"), Ok(100 * MIB));
        assert_eq!(parse_size("8M"), Ok(8 * MIB));
        assert_eq!(parse_size("8m"), Ok(8 * MIB));
        assert_eq!(parse_size("16 MiB"), Ok(16 * MIB));
        assert_eq!(parse_size("512k"), Ok(512 * 1024));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("100MB"), Ok(100_000_000));
        assert_eq!(parse_size("5MB"), Ok(5_000_000));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn malformed_and_overflowing_sizes_are_refused() {
        for bad in ["", "MiB", "-1", "1.5MiB", "16 furlongs", "0x10", "99999999999999999999", "17179869184GiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_take_unit_suffixes_and_are_never_zero() {
        assert_eq!(parse_duration("3600"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("86400"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        for bad in ["0", "0h", "1w", "h", "-5s", "1.5h", "99999999999999999999", "999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
