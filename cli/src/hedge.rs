//! Hedged range requests: a download range that stops receiving bytes while other ranges still
//! move is asked for again, from its first byte not yet written, and whichever request delivers
//! a byte first writes it. A stalled request cannot be interrupted (it sits in a socket read), so
//! it is abandoned instead; since every request writes only past what the range already holds,
//! in order and under one lock, no byte is written twice and the range's MD5 stays the MD5 of its
//! bytes in order, whatever mix of requests delivered them.
//!
//! Without this, one stalled range held a whole download until the 120 s per-read timeout.

use std::collections::HashMap;
use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use md5::{Digest as _, Md5};

use crate::etag::Digest;

/// When a range counts as stalled.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// A range whose bytes stopped this long ago while another range received bytes since.
    pub stall: Duration,
    /// A range whose bytes stopped this long ago with no other range to compare it with (the
    /// last range, or `--concurrency 1`): such a range may just be on a slow link, so it gets
    /// longer, but still far less than the per-read timeout.
    pub lone_stall: Duration,
    /// How often a range's request is looked at.
    pub tick: Duration,
    /// Hedges one attempt at a range may start.
    pub hedges: u32,
}

pub const POLICY: Policy = Policy {
    stall: Duration::from_secs(3),
    lone_stall: Duration::from_secs(15),
    tick: Duration::from_millis(250),
    hedges: 2,
};

impl Policy {
    /// Whether a range whose last byte arrived at `last` is stalled at `now`, when bytes of
    /// another range last arrived at `others_last`. Far behind its peers means: it received
    /// nothing for `stall` while the download went on without it.
    pub fn stalled(&self, now: Instant, last: Instant, others_last: Option<Instant>) -> bool {
        let idle = now.saturating_duration_since(last);
        let peers_moved = others_last.is_some_and(|others| others > last);
        idle >= self.stall && (peers_moved || idle >= self.lone_stall)
    }
}

/// When each range in flight last received a byte (or was last asked for again), and when the
/// latest finished range received its last byte: what a range is compared with.
#[derive(Default)]
pub struct Activity {
    inner: Mutex<Moves>,
}

#[derive(Default)]
struct Moves {
    in_flight: HashMap<u16, Instant>,
    finished: Option<Instant>,
}

impl Activity {
    /// Range `n` starts (or was just asked for again) at `now`.
    pub fn begin(&self, n: u16, now: Instant) {
        self.lock().in_flight.insert(n, now);
    }

    /// Range `n` received bytes at `now`. Once it is done with, a request abandoned earlier that
    /// still delivers changes nothing.
    pub fn moved(&self, n: u16, now: Instant) {
        if let Some(last) = self.lock().in_flight.get_mut(&n) {
            *last = now;
        }
    }

    /// Range `n` is done with, whether it finished or failed.
    pub fn end(&self, n: u16) {
        let mut moves = self.lock();
        if let Some(last) = moves.in_flight.remove(&n) {
            moves.finished = moves.finished.max(Some(last));
        }
    }

    /// Whether range `n` is stalled at `now` under `policy`.
    pub fn stalled(&self, n: u16, now: Instant, policy: &Policy) -> bool {
        let moves = self.lock();
        let Some(&last) = moves.in_flight.get(&n) else { return false };
        let others = moves.in_flight.iter().filter(|(&other, _)| other != n).map(|(_, &at)| at);
        policy.stalled(now, last, others.chain(moves.finished).max())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Moves> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The bytes `[start, end)` of one range, as far as they are written: every request for the
/// range hands its bytes here, and only those past what is already written are written.
pub struct Written {
    pub end: u64,
    cursor: Mutex<Cursor>,
}

struct Cursor {
    /// Bytes before this offset are written and hashed.
    at: u64,
    md5: Md5,
}

impl Written {
    pub fn new(start: u64, end: u64) -> Written {
        Written { end, cursor: Mutex::new(Cursor { at: start, md5: Md5::new() }) }
    }

    /// The first byte not yet written: where a new request for the range starts.
    pub fn at(&self) -> u64 {
        self.lock().at
    }

    pub fn is_complete(&self) -> bool {
        self.at() >= self.end
    }

    /// Takes `chunk`, which a request received for the offset `offset`, and writes (with
    /// `write(offset, bytes)`) and hashes only its bytes past the written ones. Returns how many
    /// bytes were new. A chunk starting past the written bytes would leave a hole: refused.
    pub fn accept(
        &self,
        offset: u64,
        chunk: &[u8],
        write: impl FnOnce(u64, &[u8]) -> io::Result<()>,
    ) -> io::Result<u64> {
        let mut cursor = self.lock();
        if offset > cursor.at {
            return Err(io::Error::other(format!("bytes at {offset} came before those at {}", cursor.at)));
        }
        let stop = (offset + chunk.len() as u64).min(self.end);
        if stop <= cursor.at {
            return Ok(0);
        }
        let from = usize::try_from(cursor.at - offset).expect("within a chunk");
        let to = usize::try_from(stop - offset).expect("within a chunk");
        let new = &chunk[from..to];
        write(cursor.at, new)?;
        cursor.md5.update(new);
        cursor.at = stop;
        Ok(new.len() as u64)
    }

    /// The MD5 of the bytes written so far (of the whole range once it is complete).
    pub fn digest(&self) -> Digest {
        self.lock().md5.clone().finalize().into()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cursor> {
        self.cursor.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etag;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_range_is_stalled_when_it_went_quiet_while_others_moved() {
        let t = Instant::now();
        let p = POLICY;
        assert!(p.stalled(t + 3 * S, t, Some(t + S)), "quiet 3 s, another range moved since");
        assert!(!p.stalled(t + 2 * S, t, Some(t + S)), "not quiet for long enough");
        assert!(!p.stalled(t + 3 * S, t, Some(t)), "the others stopped when it did: the link, not the range");
        assert!(!p.stalled(t + 10 * S, t, Some(t - S)), "nothing moved since it went quiet");
        assert!(!p.stalled(t + 14 * S, t, None), "alone, it may be a slow link");
        assert!(p.stalled(t + 15 * S, t, None), "alone, but quiet far longer than any healthy stream");
        assert!(p.stalled(t + 15 * S, t, Some(t - S)));
        assert!(p.lone_stall < Duration::from_secs(120), "well before the per-read timeout");
    }

    #[test]
    fn activity_compares_a_range_with_the_ranges_in_flight_and_the_latest_finished() {
        let t = Instant::now();
        let activity = Activity::default();
        assert!(!activity.stalled(1, t + 60 * S, &POLICY), "a range not in flight is never stalled");
        activity.moved(1, t);
        assert!(!activity.stalled(1, t + 60 * S, &POLICY), "bytes of an abandoned request do not begin it");
        activity.begin(1, t);
        activity.begin(2, t);
        assert!(!activity.stalled(1, t + 5 * S, &POLICY), "both went quiet together");
        activity.moved(2, t + S);
        assert!(activity.stalled(1, t + 5 * S, &POLICY));
        assert!(!activity.stalled(2, t + 5 * S, &POLICY), "range 2 moved last");
        activity.end(2);
        assert!(activity.stalled(1, t + 5 * S, &POLICY), "range 2 finished after range 1 went quiet");
        activity.begin(1, t + 5 * S);
        assert!(!activity.stalled(1, t + 6 * S, &POLICY), "asked for again: a fresh grace");
        activity.end(1);
        assert!(!activity.stalled(1, t + 60 * S, &POLICY));
    }

    /// Two requests for one range, the second (a hedge) starting where the first stalled and
    /// both delivering overlapping chunks: every byte is written once, in order.
    #[test]
    fn overlapping_requests_write_each_byte_once_and_hash_in_order() {
        let bytes: Vec<u8> = (0..100u8).collect();
        let written = Written::new(1000, 1100);
        let mut file = vec![0u8; 100];
        let mut writes = Vec::new();
        let mut give = |offset: u64, len: usize| {
            let at = usize::try_from(offset - 1000).unwrap();
            let chunk = &bytes[at..(at + len).min(100)];
            written
                .accept(offset, chunk, |to, new| {
                    let to_at = usize::try_from(to - 1000).unwrap();
                    file[to_at..to_at + new.len()].copy_from_slice(new);
                    writes.push((to, new.len()));
                    Ok(())
                })
                .unwrap()
        };
        assert_eq!(give(1000, 30), 30, "the first request");
        assert_eq!(give(1030, 10), 10, "the hedge starts where the first stopped");
        assert_eq!(give(1030, 20), 10, "the first wakes up: only its bytes past 1040 are new");
        assert_eq!(give(1040, 10), 0, "the hedge delivers what the first already wrote");
        assert_eq!(give(1050, 80), 50, "the last chunk, cut at the range's end");
        assert_eq!(give(1060, 10), 0, "a straggler after the end writes nothing");
        assert_eq!(writes, [(1000, 30), (1030, 10), (1040, 10), (1050, 50)]);
        assert_eq!(file, bytes);
        assert!(written.is_complete());
        assert_eq!(written.digest(), etag::md5(&bytes));
    }

    #[test]
    fn a_chunk_past_the_written_bytes_or_a_failed_write_moves_nothing() {
        let written = Written::new(0, 10);
        assert!(written.accept(5, b"abc", |_, _| Ok(())).is_err(), "a hole");
        assert!(written.accept(0, b"abc", |_, _| Err(io::Error::other("disk full"))).is_err());
        assert_eq!(written.at(), 0);
        assert_eq!(written.digest(), etag::md5(b""));
        assert_eq!(written.accept(0, b"abc", |_, _| Ok(())).unwrap(), 3);
        assert_eq!(written.at(), 3);
    }
}
