//! How `r2mpu download` cuts an object into ranges, and how it gets the part MD5s that recompute
//! a multipart ETag when ranges are smaller than parts.
//!
//! A multipart ETag is the MD5 of the part MD5s, so no range may cross a part boundary. With one
//! range per part, each range's MD5 (computed as it is written) is a part's MD5 and nothing is
//! read back. But an object of few parts then downloads in few ranges, and a connection moves
//! one window per round trip: 4 ranges over 80 ms go at 4 windows per round trip whatever the
//! line. So when the parts are fewer than the ranges the download wants in flight, each part is
//! cut into `k` equal ranges, and a part's MD5 is read back from the written file (still in the
//! page cache) by the thread whose range completed it, while the other ranges still download.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread;

use r2mpu_api::layout::{Layout, MIB};

use crate::etag::Digest;
use crate::fileio::md5_range;

/// The smallest range a part is cut into: each range costs a request and a round trip before its
/// first byte, which a MiB (4 windows of 256 KiB) still repays; smaller ones would mostly wait.
pub const MIN_RANGE: u64 = MIB;

/// The parts an object was uploaded in, and the ranges a download fetches: each range lies in
/// one part, and every part but the last is exactly [`Plan::split`] ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub parts: Layout,
    pub ranges: Layout,
}

impl Plan {
    /// The plan for `size` bytes uploaded in `part_size` parts, fetched with `level` ranges in
    /// flight: parts as they are when there are at least `level` of them (a large object pays
    /// nothing), else each cut into `k` ranges so that there are about `level` ranges.
    ///
    /// `k` starts as `level / parts`, rounded up, and moves to the nearest count that divides the
    /// part size exactly (so that ranges are equal and part boundaries are range boundaries):
    /// the next larger one up to twice as many, since a few more ranges than in flight keep
    /// threads busy (and let an adaptive level grow), else the next smaller one. Ranges are never
    /// below [`MIN_RANGE`]; `k = 1` always qualifies.
    pub fn new(size: u64, part_size: u64, level: usize) -> Plan {
        let parts = Layout { part_size, size: Some(size) };
        let count = u64::from(parts.part_count().expect("the size is known"));
        let level = level as u64;
        let k = match count >= level {
            true => 1,
            false => {
                let wanted = level.div_ceil(count);
                let fits = |k: &u64| part_size.is_multiple_of(*k) && (*k == 1 || part_size / k >= MIN_RANGE);
                let above = (wanted..=2 * wanted).find(fits);
                above.unwrap_or_else(|| (1..wanted).rev().find(fits).unwrap_or(1))
            }
        };
        Plan { parts, ranges: Layout { part_size: part_size / k, size: Some(size) } }
    }

    /// The plan a sidecar recorded, if its range size still cuts these parts evenly (any other
    /// would make ranges straddle parts: the record is then not to be trusted).
    pub fn resumed(size: u64, part_size: u64, range_size: u64) -> Option<Plan> {
        let fits = range_size > 0 && part_size.is_multiple_of(range_size);
        fits.then_some(Plan {
            parts: Layout { part_size, size: Some(size) },
            ranges: Layout { part_size: range_size, size: Some(size) },
        })
    }

    /// How many ranges each part is cut into.
    pub fn split(&self) -> u64 {
        self.parts.part_size / self.ranges.part_size
    }

    pub fn range_count(&self) -> u16 {
        self.ranges.part_count().expect("the size is known")
    }

    pub fn part_count(&self) -> u16 {
        self.parts.part_count().expect("the size is known")
    }

    /// The part range `n` lies in (both numbered from 1).
    pub fn part_of(&self, n: u16) -> u16 {
        let part = u64::from(n - 1) / self.split() + 1;
        u16::try_from(part).expect("a part number fits when its ranges' numbers do")
    }
}

/// The MD5 of each part, read back from the downloaded file by whichever thread writes a part's
/// last range. Parts that had no range left to fetch (a resumed download) are hashed at the end.
pub struct PartHashes {
    plan: Plan,
    /// Per part, its ranges this run still has to write.
    left: Vec<AtomicU32>,
    md5s: Vec<OnceLock<Digest>>,
}

impl PartHashes {
    /// Hashes for `plan`, whose ranges `todo` are still to be fetched.
    pub fn new(plan: Plan, todo: &[u16]) -> PartHashes {
        let parts = usize::from(plan.part_count());
        let left: Vec<AtomicU32> = (0..parts).map(|_| AtomicU32::new(0)).collect();
        for &n in todo {
            left[usize::from(plan.part_of(n) - 1)].fetch_add(1, Ordering::Relaxed);
        }
        PartHashes { plan, left, md5s: (0..parts).map(|_| OnceLock::new()).collect() }
    }

    /// Range `n` is written to `file`: when it was the last of its part, hashes that part.
    pub fn landed(&self, n: u16, file: &File) -> io::Result<()> {
        let part = self.plan.part_of(n);
        if self.left[usize::from(part - 1)].fetch_sub(1, Ordering::AcqRel) == 1 {
            self.hash(part, file)?;
        }
        Ok(())
    }

    /// Every part's MD5 in order, hashing those not hashed yet from `file`, in parallel.
    pub fn finish(self, file: &File) -> io::Result<Vec<Digest>> {
        let missing: Vec<u16> =
            (1..=self.plan.part_count()).filter(|&p| self.md5s[usize::from(p - 1)].get().is_none()).collect();
        let threads = thread::available_parallelism().map_or(1, |n| n.get()).min(missing.len());
        let next = AtomicUsize::new(0);
        thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| -> io::Result<()> {
                        while let Some(&part) = missing.get(next.fetch_add(1, Ordering::Relaxed)) {
                            self.hash(part, file)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            workers.into_iter().try_for_each(|w| w.join().expect("hashing does not panic"))
        })?;
        Ok(self.md5s.into_iter().map(|md5| md5.into_inner().expect("every part was hashed")).collect())
    }

    fn hash(&self, part: u16, file: &File) -> io::Result<()> {
        let (start, end) = self.plan.parts.part_range(part);
        let md5 = md5_range(file, start, end - start)?;
        let _ = self.md5s[usize::from(part - 1)].set(md5);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etag;
    use std::io::Write;

    const PART: u64 = 5 * MIB;

    #[test]
    fn few_parts_are_cut_into_about_as_many_ranges_as_in_flight() {
        // 16 MiB uploaded as 5 + 5 + 5 + 1 MiB, 16 in flight: 4 ranges of 1.25 MiB a part.
        let plan = Plan::new(16 * MIB, PART, 16);
        assert_eq!((plan.split(), plan.ranges.part_size, plan.range_count()), (4, 1_310_720, 13));
        // 64 MiB in 4 parts of 16 MiB at 25 (an 80 ms link): 7 does not divide 16 MiB, 8 does.
        let plan = Plan::new(64 * MIB, 16 * MIB, 25);
        assert_eq!((plan.split(), plan.range_count()), (8, 32));
        // One part alone, 61 in flight (200 ms): a MiB is as small as ranges get.
        assert_eq!(Plan::new(16 * MIB, 16 * MIB, 61).range_count(), 16);
    }

    #[test]
    fn enough_parts_are_fetched_as_they_are() {
        for (size, part_size, level) in [(256 * MIB, 16 * MIB, 16), (1 << 30, 16 * MIB, 61), (15 * MIB, PART, 1)] {
            let plan = Plan::new(size, part_size, level);
            assert_eq!(plan.split(), 1, "{size} {part_size} {level}");
            assert_eq!(plan.ranges, plan.parts);
        }
    }

    #[test]
    fn ranges_are_never_below_a_mib_nor_straddle_parts() {
        // 5 MiB parts make at most 5 ranges each, however many are wanted.
        assert_eq!(Plan::new(5 * MIB, PART, 64).split(), 5);
        // A part smaller than a MiB is never cut.
        assert_eq!(Plan::new(3 * 1000, 1000, 64).split(), 1);
        // A part size with no divisor near the one wanted: the next smaller one.
        let odd = 3 * 1_048_583; // a prime number of bytes just over a MiB, times three
        assert_eq!(Plan::new(odd, odd, 16).split(), 3);
        for size in [1, MIB, 16 * MIB + 1, 100 * MIB + 7] {
            for part_size in [PART, 6 * MIB, 16 * MIB, 7 * MIB + 1, 64 * MIB] {
                for level in [1, 4, 7, 16, 25, 61, 64] {
                    let plan = Plan::new(size, part_size, level);
                    let range = plan.ranges.part_size;
                    assert_eq!(part_size % range, 0, "{size} {part_size} {level}");
                    assert!(plan.split() == 1 || range >= MIN_RANGE, "{size} {part_size} {level}");
                    assert!(plan.split() <= 2 * level as u64, "{size} {part_size} {level}");
                    assert!(usize::from(plan.range_count()) <= 2 * level + 2 * usize::from(plan.part_count()));
                    for n in 1..=plan.range_count() {
                        let (start, end) = plan.ranges.part_range(n);
                        let (part_start, part_end) = plan.parts.part_range(plan.part_of(n));
                        assert!(part_start <= start && end <= part_end, "range {n} of {plan:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_recorded_range_size_is_kept_only_when_it_cuts_the_parts_evenly() {
        let plan = Plan::resumed(16 * MIB, PART, 1_310_720).unwrap();
        assert_eq!(plan, Plan::new(16 * MIB, PART, 16));
        assert!(Plan::resumed(16 * MIB, PART, 2 * MIB).is_none());
        assert!(Plan::resumed(16 * MIB, PART, 0).is_none());
    }

    /// Part MD5s come from the file, whatever order the ranges land in, and parts a resumed
    /// download had finished before are hashed at the end.
    #[test]
    fn part_md5s_are_read_back_from_the_file() {
        let size = 3 * PART + 17;
        let data = pattern(size);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&data).unwrap();
        let plan = Plan::new(size, PART, 20);
        assert_eq!(plan.split(), 5);
        let expected: Vec<Digest> = data.chunks(PART as usize).map(etag::md5).collect();

        let all: Vec<u16> = (1..=plan.range_count()).rev().collect();
        let hashes = PartHashes::new(plan, &all);
        for &n in &all {
            hashes.landed(n, &file).unwrap();
        }
        assert!(hashes.md5s.iter().all(|md5| md5.get().is_some()), "each part hashed as its last range landed");
        assert_eq!(hashes.finish(&file).unwrap(), expected);

        // Resumed: parts 1 and 3 were done before; part 2 lacks two ranges, part 4 its only one.
        let todo = [7, 9, 16];
        let hashes = PartHashes::new(plan, &todo);
        hashes.landed(7, &file).unwrap();
        assert!(hashes.md5s[1].get().is_none(), "part 2 still lacks range 9");
        for n in [16, 9] {
            hashes.landed(n, &file).unwrap();
        }
        assert_eq!(hashes.finish(&file).unwrap(), expected);
    }

    /// Bytes that never repeat a part (xorshift), so a part hashed in another's place shows.
    fn pattern(size: u64) -> Vec<u8> {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        (0..size)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }
}
