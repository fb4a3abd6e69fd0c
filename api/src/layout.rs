//! How an upload is cut into parts. R2 completes a multipart upload only if every part but the
//! last has the same size and is at least 5 MiB; it says so at complete, after the client has
//! sent everything. A [`Layout`] fixed at create lets the server refuse a wrong part when it
//! arrives, and lets the client cut the file the same way.

use crate::ApiError;

pub const MIB: u64 = 1 << 20;
/// R2's minimum for every part but the last.
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// R2's maximum number of parts.
pub const MAX_PARTS: u16 = 10_000;
/// The part size when the client names none: large enough to keep per-part overhead small,
/// small enough that a retry re-sends little.
pub const DEFAULT_PART_SIZE: u64 = 16 * MIB;
/// The largest part the Worker accepts unless `MAX_PART_SIZE` says otherwise: the request body
/// limit of Cloudflare's free and pro plans.
pub const DEFAULT_MAX_PART_SIZE: u64 = 100 * MIB;

/// The part size, and the object's total size when the client declared it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub part_size: u64,
    pub size: Option<u64>,
}

impl Layout {
    /// Fixes the layout at create: the requested part size, or the default grown until the
    /// declared size fits in [`MAX_PARTS`].
    pub fn plan(size: Option<u64>, part_size: Option<u64>, max_part_size: u64) -> Result<Self, ApiError> {
        let part_size = part_size.unwrap_or_else(|| default_part_size(size));
        let invalid = |reason: String| Err(ApiError::InvalidLayout { reason });
        if part_size < MIN_PART_SIZE {
            return invalid(format!("partSize {part_size} is below R2's minimum of {MIN_PART_SIZE}"));
        }
        if part_size > max_part_size {
            return invalid(format!("partSize {part_size} is above this server's maximum of {max_part_size}"));
        }
        let layout = Layout { part_size, size };
        if let Some(size) = size {
            let parts = size.div_ceil(part_size);
            if parts > u64::from(MAX_PARTS) {
                return invalid(format!(
                    "size {size} in parts of {part_size} needs {parts} parts; R2 allows {MAX_PARTS}"
                ));
            }
        }
        Ok(layout)
    }

    /// How many parts the object has, when its size was declared. An empty object is one empty part.
    pub fn part_count(&self) -> Option<u16> {
        self.size.map(|size| size.div_ceil(self.part_size).max(1) as u16)
    }

    /// The byte range `[start, end)` of part `n` in the object.
    pub fn part_range(&self, n: u16) -> (u64, u64) {
        let start = u64::from(n - 1) * self.part_size;
        let end = start + self.part_size;
        match self.size {
            Some(size) => (start.min(size), end.min(size)),
            None => (start, end),
        }
    }

    /// Checks a part as it arrives, from its number and `Content-Length` alone.
    pub fn check_part(&self, n: u16, len: u64) -> Result<(), ApiError> {
        let mismatch = |expected| ApiError::PartSizeMismatch { part_number: n, expected, actual: len };
        match self.part_count() {
            Some(count) => {
                if n > count {
                    return Err(ApiError::InvalidPartNumber {
                        reason: format!("the declared size makes {count} parts; there is no part {n}"),
                    });
                }
                let (start, end) = self.part_range(n);
                if len != end - start {
                    return Err(mismatch(end - start));
                }
            }
            None if len == 0 || len > self.part_size => return Err(mismatch(self.part_size)),
            None => {}
        }
        Ok(())
    }

    /// Checks, before asking R2, that the received parts (sorted by number, with their sizes) make
    /// a whole object, and returns its size. With a declared size every part must have its
    /// exact length; without one, `part_size` is only a maximum and R2's own rule applies: all
    /// parts but the last have one size, at least [`MIN_PART_SIZE`], and the last is no larger.
    pub fn check_complete(&self, parts: &[(u16, u64)]) -> Result<u64, ApiError> {
        let last = match self.part_count() {
            Some(count) => count,
            None => parts.last().map_or(1, |&(n, _)| n),
        };
        let present: std::collections::BTreeSet<u16> = parts.iter().map(|&(n, _)| n).collect();
        let missing: Vec<u16> = (1..=last).filter(|n| !present.contains(n)).collect();
        if !missing.is_empty() {
            return Err(ApiError::PartsMissing { missing });
        }
        if self.size.is_none() && last > 1 {
            let uniform = parts[0].1;
            for &(n, len) in parts {
                let expected = uniform.max(MIN_PART_SIZE);
                if (n < last && len != expected) || (n == last && len > uniform) {
                    return Err(ApiError::PartSizeMismatch { part_number: n, expected, actual: len });
                }
            }
        }
        Ok(parts.iter().map(|&(_, len)| len).sum())
    }
}

/// [`DEFAULT_PART_SIZE`], or the smallest whole number of MiB that fits `size` in [`MAX_PARTS`].
pub fn default_part_size(size: Option<u64>) -> u64 {
    let needed = size.map_or(0, |size| size.div_ceil(u64::from(MAX_PARTS)).div_ceil(MIB) * MIB);
    needed.max(DEFAULT_PART_SIZE)
}

/// Parses a part number from a path segment: decimal digits only, 1..=10000.
pub fn parse_part_number(segment: &str) -> Result<u16, ApiError> {
    let invalid =
        || ApiError::InvalidPartNumber { reason: format!("`{segment}` is not an integer from 1 to {MAX_PARTS}") };
    if segment.is_empty() || segment.len() > 5 || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match segment.parse::<u16>() {
        Ok(n) if (1..=MAX_PARTS).contains(&n) => Ok(n),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = MIN_PART_SIZE;

    #[test]
    fn the_default_part_size_grows_to_fit_ten_thousand_parts() {
        assert_eq!(default_part_size(None), DEFAULT_PART_SIZE);
        assert_eq!(default_part_size(Some(1 << 30)), DEFAULT_PART_SIZE);
        let huge = 500 * 1024 * MIB; // 500 GiB
        let part = default_part_size(Some(huge));
        assert!(huge.div_ceil(part) <= u64::from(MAX_PARTS));
        assert_eq!(part % MIB, 0);
    }

    #[test]
    fn plan_refuses_part_sizes_outside_the_limits_and_layouts_over_ten_thousand_parts() {
        let max = DEFAULT_MAX_PART_SIZE;
        assert!(Layout::plan(None, Some(P - 1), max).is_err());
        assert!(Layout::plan(None, Some(max + 1), max).is_err());
        assert!(Layout::plan(Some(P * 10_001), Some(P), max).is_err());
        assert_eq!(Layout::plan(Some(P * 10_000), Some(P), max).unwrap().part_count(), Some(10_000));
        assert_eq!(Layout::plan(Some(0), None, max).unwrap().part_count(), Some(1));
    }

    #[test]
    fn with_a_declared_size_every_part_length_is_known() {
        let layout = Layout { part_size: P, size: Some(2 * P + 7) };
        assert_eq!(layout.part_count(), Some(3));
        assert_eq!(layout.check_part(1, P), Ok(()));
        assert_eq!(layout.check_part(3, 7), Ok(()));
        assert_eq!(
            layout.check_part(2, P - 1),
            Err(ApiError::PartSizeMismatch { part_number: 2, expected: P, actual: P - 1 })
        );
        assert!(matches!(layout.check_part(3, P), Err(ApiError::PartSizeMismatch { expected: 7, .. })));
        assert!(matches!(layout.check_part(4, 1), Err(ApiError::InvalidPartNumber { .. })));
    }

    #[test]
    fn without_a_size_parts_may_be_short_but_never_long_or_empty() {
        let layout = Layout { part_size: P, size: None };
        assert_eq!(layout.check_part(9, 1), Ok(()));
        assert!(layout.check_part(1, P + 1).is_err());
        assert!(layout.check_part(1, 0).is_err());
    }

    #[test]
    fn complete_needs_every_part_and_full_parts_before_the_last() {
        let declared = Layout { part_size: P, size: Some(2 * P + 7) };
        assert_eq!(declared.check_complete(&[(1, P), (2, P), (3, 7)]), Ok(2 * P + 7));
        assert_eq!(declared.check_complete(&[(1, P), (3, 7)]), Err(ApiError::PartsMissing { missing: vec![2] }));
        let open = Layout { part_size: 2 * P, size: None };
        assert_eq!(open.check_complete(&[(1, P), (2, P), (3, 3)]), Ok(2 * P + 3), "parts may be smaller than partSize");
        assert_eq!(open.check_complete(&[(1, 7)]), Ok(7), "a single part may be small");
        assert!(matches!(
            open.check_complete(&[(1, 3), (2, 3)]),
            Err(ApiError::PartSizeMismatch { part_number: 1, .. })
        ));
        assert!(matches!(
            open.check_complete(&[(1, P), (2, P + 1), (3, 3)]),
            Err(ApiError::PartSizeMismatch { part_number: 2, .. })
        ));
        assert!(matches!(
            open.check_complete(&[(1, P), (2, P + 1)]),
            Err(ApiError::PartSizeMismatch { part_number: 2, .. })
        ));
        assert_eq!(open.check_complete(&[]), Err(ApiError::PartsMissing { missing: vec![1] }));
    }

    #[test]
    fn part_numbers_are_plain_decimal_integers_from_1_to_10000() {
        assert_eq!(parse_part_number("1"), Ok(1));
        assert_eq!(parse_part_number("10000"), Ok(10_000));
        assert_eq!(parse_part_number("007"), Ok(7));
        for bad in ["0", "10001", "-1", "1e3", "+1", " 1", "", "99999999999", "1.0", "٣"] {
            assert!(parse_part_number(bad).is_err(), "{bad:?}");
        }
    }
}
