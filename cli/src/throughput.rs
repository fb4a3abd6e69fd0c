//! The throughput the adaptive concurrency decides on, measured from pieces the far end answered
//! (a part the Worker or R2 took, a range written whole), never from bytes handed to sockets.
//!
//! Bytes handed to a socket are in the kernel's buffers, not across the link: a new connection
//! takes megabytes at once and a held one takes a part whole, so a count of them jumps when the
//! level changes and says nothing of what the link carries. A piece answered says it all: its
//! bytes over the time it took are what its connection carried, from its first byte to the
//! server's answer, round trips included. Pieces answered are few and lumpy in any one window
//! (a 10 MiB part over an 80 ms link takes seconds), so their sum over a window swings with
//! where the window's edges fall; the rate of each connection does not, and the throughput of
//! the level is that rate times the connections at work.

use std::time::Instant;

/// Pieces answered since the level now in force was set.
#[derive(Debug)]
pub struct Meter {
    /// When the level was set: a piece begun earlier moved partly at another level.
    since: Instant,
    bytes: u64,
    /// The seconds the counted pieces took, one connection each.
    busy: f64,
    pieces: usize,
}

impl Meter {
    /// Measures the level set at `since`.
    pub fn new(since: Instant) -> Meter {
        Meter { since, bytes: 0, busy: 0.0, pieces: 0 }
    }

    /// A piece of `bytes` begun at `begun` was answered at `answered`.
    pub fn answered(&mut self, bytes: u64, begun: Instant, answered: Instant) {
        if begun < self.since {
            return;
        }
        self.bytes += bytes;
        self.busy += answered.saturating_duration_since(begun).as_secs_f64();
        self.pieces += 1;
    }

    /// The throughput (bytes/s) of `level` connections: each one's rate, from the pieces begun
    /// and answered at this level, times `level`. `None` until half the level's connections
    /// have had a piece answered: one piece is one connection's luck.
    pub fn rate(&self, level: usize) -> Option<f64> {
        let enough = self.pieces >= level.div_ceil(2).max(1) && self.busy > 0.0;
        enough.then(|| self.bytes as f64 / self.busy * level as f64)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MB: u64 = 1_000_000;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn the_rate_is_each_connections_rate_times_the_level() {
        let t = Instant::now();
        let mut meter = Meter::new(t);
        // Eight connections, four answered so far: 10 MB in 2 s each, 5 MB/s a connection.
        for begun in [0, 100, 200, 300] {
            meter.answered(10 * MB, at(t, begun), at(t, begun + 2000));
        }
        assert_eq!(meter.rate(8), Some(40.0 * MB as f64));
    }

    #[test]
    fn nothing_answered_is_no_rate_however_long_it_has_been() {
        let t = Instant::now();
        let meter = Meter::new(t);
        assert_eq!(meter.rate(1), None);
        assert_eq!(meter.rate(16), None);
    }

    #[test]
    fn pieces_begun_before_the_level_was_set_are_left_out_and_one_piece_is_not_enough() {
        let t = Instant::now();
        let mut meter = Meter::new(at(t, 1000));
        // Begun at the old level: fast or slow, it says nothing of the new one.
        for n in 0..10 {
            meter.answered(100 * MB, at(t, n), at(t, 1500));
        }
        assert_eq!(meter.rate(4), None);
        meter.answered(4 * MB, at(t, 1000), at(t, 3000));
        assert_eq!(meter.rate(4), None, "one of four connections");
        meter.answered(4 * MB, at(t, 1200), at(t, 3200));
        assert_eq!(meter.rate(4), Some(8.0 * MB as f64));
    }
}
