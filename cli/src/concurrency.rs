//! How many parts a transfer keeps in flight: pinned by `--concurrency`, or found by
//! [`Controller`] from the throughput it measures.
//!
//! A connection moves at most its window per round trip, so a long link needs many connections
//! in flight where loopback needs four. The AWS CRT transfer manager sizes its connection count
//! as a target throughput divided by a per-connection rate; we know neither the link's ceiling
//! nor its per-connection rate in advance, so the controller measures them. While the link
//! limits each connection, throughput grows with the connections; at the ceiling it stays
//! flat. So the controller doubles the level while each step still brings at least half the
//! growth the added connections would bring on their own (a doubling 1.5x, a quarter more
//! 1.125x: plain noise rarely does that), halves the gap between the best level and the one
//! that stopped rising until it is small, settles on the best level, probes a quarter higher
//! now and then in case the link changed, and halves on retried failures (errors, timeouts),
//! the sign of an overloaded path.
//! Each sample is the throughput of parts begun and answered at the level it judges (see
//! [`throughput`]): not of bytes handed to sockets, which new connections fill with megabytes
//! the link never carried yet (that once cost every change a window only to settle). It is
//! plain arithmetic on samples, so tests drive it with a simulated link.
//!
//! [`throughput`]: crate::throughput

use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::client::Client;

/// Parts in flight before anything is measured. 4 saturate a local `wrangler dev`, and 16 do
/// no worse there (1 GiB: 25.1 and 29.0 s at 16, 29.7 and 30.9 s at 4, on this machine), while
/// a 200 ms link gets four times as much before the first measurement: its samples are slow to
/// come, since a part there takes seconds to be answered.
pub const START: usize = 16;
/// The most parts in flight, and so connections: the guide's client opens 25; a 256 KiB window
/// over 200 ms moves 1.3 MB/s, so 64 reach 80 MB/s. Each costs a thread and a 256 KiB buffer.
pub const MAX: usize = 64;
/// How long each sample measures the throughput at one level: long enough to smooth out part
/// boundaries and new connections' first round trips, short enough to ramp 16 to 64 in 4 s
/// where parts are answered within a window.
pub const WINDOW: Duration = Duration::from_secs(2);
/// A higher level is kept when it brings at least this share of the growth its added
/// connections would bring on a link that limits each one: below it the link (or the server)
/// is the ceiling and more connections only add load.
const GAIN: f64 = 0.5;
/// Samples held at the settled level before probing higher again.
const PROBE_AFTER: u32 = 5;

/// The fewest parts to start with: 4 saturate a local `wrangler dev`, where 16 cost it more CPU
/// per byte read (downloads at 0.78x of curl started at 16, with 1.23x its workerd CPU) and put
/// more bytes at risk in a crash.
pub const NEAR_START: usize = 4;
/// The throughput the starting level aims at, and the window each connection is assumed to
/// move per round trip, to size the start as the AWS CRT sizes its connections: target rate
/// over per-connection rate (window / RTT). 80 MB/s (a 640 Mb/s uplink, and what one local
/// workerd thread carries) at 256 KiB: 7 connections at 20 ms, 25 at 80 ms, 61 at 200 ms. Where
/// the guess is short the controller grows from there. Aiming higher costs where the server is
/// the bottleneck: each connection adds its own reads and each part its own control calls, so
/// at 80 ms, 250 MiB in 5 MiB parts went at 59 MB/s behind 33 connections (sized for 100 MB/s)
/// and 64 MB/s behind 26 (three runs each, alternating, on one `wrangler dev`).
const TARGET_RATE: f64 = 80e6;
const ASSUMED_WINDOW: f64 = 256.0 * 1024.0;

/// The user's choice: a fixed level, or the controller's from a starting level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    Fixed(usize),
    Adaptive { start: usize },
}

impl Concurrency {
    /// From `--concurrency`: absent means adaptive.
    pub fn from_flag(flag: Option<u16>) -> Concurrency {
        flag.map_or(Concurrency::Adaptive { start: START }, |n| Concurrency::Fixed(usize::from(n).max(1)))
    }

    /// Sizes the adaptive start from the time a first request took on a new connection (see
    /// `Client::first_round_trip`: a handshake and a request, so two round trips): as many
    /// connections as [`TARGET_RATE`] needs at [`ASSUMED_WINDOW`] per round trip, from
    /// [`NEAR_START`] to [`MAX`]. Starting right matters on a far link, where throughput samples
    /// are slow to come (a part takes seconds to be answered) and each doubling
    /// costs two windows. A fixed level is not measured; without a measurement the start stays.
    pub fn sized_for(self, first_round_trip: impl FnOnce() -> Option<Duration>) -> Concurrency {
        let Concurrency::Adaptive { .. } = self else { return self };
        match first_round_trip() {
            Some(took) => {
                let rtt = took.as_secs_f64() / 2.0;
                let needed = (TARGET_RATE * rtt / ASSUMED_WINDOW).ceil() as usize;
                Concurrency::Adaptive { start: needed.clamp(NEAR_START, MAX) }
            }
            None => self,
        }
    }

    /// The most parts ever in flight, to size the pool of connections kept alive.
    pub fn most(self) -> usize {
        match self {
            Concurrency::Fixed(n) => n,
            Concurrency::Adaptive { .. } => MAX,
        }
    }

    /// The level to start at, and the controller that moves it (none when it is fixed).
    pub fn start(self) -> (usize, Option<Controller>) {
        match self {
            Concurrency::Fixed(n) => (n, None),
            Concurrency::Adaptive { start } => (start, Some(Controller::new(start, MAX))),
        }
    }
}

/// A [`Concurrency`] being sized ([`Concurrency::sized_for`]) on a thread of its own, so that
/// the probe's two round trips overlap the requests a transfer makes before its first part (a
/// lookup, a `HEAD`) instead of adding to them: 160 ms at 80 ms RTT.
pub struct Sizing {
    /// As given until the probe is joined, then as sized.
    concurrency: Concurrency,
    probe: Option<JoinHandle<Concurrency>>,
}

impl Sizing {
    /// Starts the probe, if there is anything to size.
    pub fn start(concurrency: Concurrency, client: &Client) -> Sizing {
        let probe = matches!(concurrency, Concurrency::Adaptive { .. }).then(|| {
            let client = client.clone();
            thread::spawn(move || concurrency.sized_for(|| client.first_round_trip()))
        });
        Sizing { concurrency, probe }
    }

    /// The sized concurrency, waiting for the probe the first time.
    pub fn get(&mut self) -> Concurrency {
        if let Some(probe) = self.probe.take() {
            self.concurrency = probe.join().unwrap_or(self.concurrency);
        }
        self.concurrency
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Doubling while the throughput follows.
    Growing,
    /// At the best level found, for this many samples.
    Holding(u32),
    /// One sample a quarter above the best level.
    Probing,
}

/// The adaptive level: see the module's documentation.
#[derive(Debug)]
pub struct Controller {
    level: usize,
    max: usize,
    /// The best level so far and the throughput (bytes/s) measured at it.
    best: Option<(usize, f64)>,
    phase: Phase,
}

impl Controller {
    pub fn new(start: usize, max: usize) -> Controller {
        let max = max.max(1);
        Controller { level: start.clamp(1, max), max, best: None, phase: Phase::Growing }
    }

    #[cfg(test)]
    fn level(&self) -> usize {
        self.level
    }

    /// Takes one sample, the throughput in bytes/s measured at the current level and the number
    /// of attempts that failed and were retried in its window, and returns the level for the
    /// next window.
    pub fn sample(&mut self, rate: f64, setbacks: u64) -> usize {
        self.step(rate, setbacks);
        self.level
    }

    fn step(&mut self, rate: f64, setbacks: u64) {
        if setbacks > 0 {
            self.level = (self.level / 2).max(1);
            self.best = None;
            self.phase = Phase::Holding(0);
            return;
        }
        match (self.phase, self.best) {
            (Phase::Holding(held), best) => {
                // What this level gives now, but one slow window (a stall on the server) must
                // not make the next probe look like growth: the baseline falls by at most a
                // tenth a window, so it follows a link that really got slower within a minute.
                let baseline = best.map_or(rate, |(_, before)| rate.max(before * 0.9));
                self.best = Some((self.level, baseline));
                if held + 1 >= PROBE_AFTER && self.level < self.max {
                    self.phase = Phase::Probing;
                    self.level = (self.level + self.level.div_ceil(4)).min(self.max);
                } else {
                    self.phase = Phase::Holding(held + 1);
                }
            }
            (_, Some((level, best))) if rate < best * (1.0 + GAIN * (self.level as f64 / level as f64 - 1.0)) => {
                // No (worthwhile) gain: the ceiling lies between the best level and this one.
                // Halve the gap until it is a quarter of the best level, then hold there.
                let gap = self.level.saturating_sub(level);
                match gap > level.div_ceil(4) {
                    true => {
                        self.level = level + gap / 2;
                        self.phase = Phase::Probing;
                    }
                    false => {
                        self.level = level;
                        self.phase = Phase::Holding(0);
                    }
                }
            }
            _ => {
                self.best = Some((self.level, rate));
                match self.level >= self.max {
                    true => self.phase = Phase::Holding(0),
                    false => {
                        self.phase = Phase::Growing;
                        self.level = (self.level * 2).min(self.max);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: f64 = 1e6;

    /// A link as TCP sees it: each connection moves one window per round trip, and all of them
    /// share a ceiling (the bottleneck: a line rate, or one busy workerd thread on loopback).
    struct Link {
        window: f64,
        rtt: f64,
        ceiling: f64,
    }

    impl Link {
        fn rate(&self, connections: usize) -> f64 {
            (connections as f64 * self.window / self.rtt).min(self.ceiling)
        }
    }

    /// Runs the controller for `samples` windows on `link`, with up to ±`noise` of measurement
    /// noise (deterministic), and returns the levels it chose and the rates it saw.
    fn drive(link: &Link, samples: usize, noise: f64) -> (Vec<usize>, Vec<f64>) {
        let mut controller = Controller::new(START, MAX);
        let mut seed = 0x2545_f491_u64;
        let (mut levels, mut rates) = (vec![], vec![]);
        for _ in 0..samples {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let jitter = 1.0 + noise * (((seed >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0);
            let rate = link.rate(controller.level()) * jitter;
            levels.push(controller.level());
            rates.push(rate);
            controller.sample(rate, 0);
        }
        (levels, rates)
    }

    /// The share of the ceiling reached over the last `tail` samples.
    fn utilisation(link: &Link, levels: &[usize], tail: usize) -> f64 {
        let last = &levels[levels.len() - tail..];
        last.iter().map(|&n| link.rate(n)).sum::<f64>() / tail as f64 / link.ceiling
    }

    /// Measured in bench/RESULTS.md: 21.5 MB/s per connection, ~80 MB/s for workerd's one thread.
    const LOOPBACK: Link = Link { window: 21.5 * MB, rtt: 1.0, ceiling: 80.0 * MB };
    /// A 256 KiB window over 200 ms is 1.3 MB/s a connection; a 60 MB/s line needs 46 of them.
    const LONG: Link = Link { window: 262_144.0, rtt: 0.200, ceiling: 60.0 * MB };

    #[test]
    fn on_loopback_it_stays_at_its_start_above_the_four_that_saturate_workerd() {
        let (levels, _) = drive(&LOOPBACK, 60, 0.0);
        assert!(levels.iter().all(|&n| n <= 2 * START), "{levels:?}");
        assert!(utilisation(&LOOPBACK, &levels, 50) >= 0.99, "{levels:?}");
        // Most of the time at the settled level: a probe every 6 windows.
        assert!(levels.iter().filter(|&&n| n == START).count() >= 42, "{levels:?}");
    }

    #[test]
    fn on_a_200_ms_link_it_grows_to_the_ceiling_within_a_few_samples() {
        let (levels, _) = drive(&LONG, 60, 0.0);
        // A step every window: at 64 by the third.
        assert_eq!(levels[..3], [16, 32, 64]);
        assert!(utilisation(&LONG, &levels, 52) >= 0.99, "{levels:?}");
        assert!(levels.iter().all(|&n| n <= MAX));
    }

    #[test]
    fn with_measurement_noise_it_still_converges_near_the_ceiling() {
        for link in [LOOPBACK, LONG] {
            let (levels, _) = drive(&link, 120, 0.05);
            assert!(utilisation(&link, &levels, 100) >= 0.95, "{levels:?}");
        }
        let (levels, _) = drive(&LOOPBACK, 120, 0.05);
        assert!(levels[20..].iter().all(|&n| n <= 2 * START), "noise must not drift it up: {levels:?}");
    }

    #[test]
    fn a_link_whose_ceiling_is_beyond_reach_gets_the_upper_bound() {
        let wide = Link { ceiling: 10_000.0 * MB, ..LONG };
        let (levels, _) = drive(&wide, 30, 0.0);
        assert_eq!(levels[4..], [MAX; 26]);
    }

    #[test]
    fn it_halves_on_failures_and_grows_back_once_they_stop() {
        let mut controller = Controller::new(START, MAX);
        while controller.level() < MAX {
            let rate = LONG.rate(controller.level());
            controller.sample(rate, 0);
        }
        assert_eq!(controller.sample(LONG.rate(MAX), 3), MAX / 2);
        assert_eq!(controller.sample(LONG.rate(MAX / 2), 1), MAX / 4);
        let mut levels = vec![];
        for _ in 0..30 {
            let rate = LONG.rate(controller.level());
            levels.push(controller.sample(rate, 0));
        }
        assert!(LONG.rate(*levels.last().unwrap()) >= 0.99 * LONG.ceiling, "{levels:?}");
        // Failures never take it to zero.
        let mut failing = Controller::new(START, MAX);
        for _ in 0..10 {
            assert!(failing.sample(1.0, 1) >= 1);
        }
    }

    #[test]
    fn one_slow_window_while_holding_does_not_pass_for_growth_at_the_next_probe() {
        let mut controller = Controller::new(4, MAX);
        let mut levels = vec![];
        // Loopback at its ceiling: 4 is measured, 8, 6 and 5 bring nothing; back at 4 it holds
        // and probes 5 after five windows, again in vain; the window just before the next probe
        // stalls, and that probe brings nothing either.
        for rate in [80, 80, 80, 80, 80, 80, 80, 80, 80, 80, 80, 80, 80, 10, 80, 80, 80] {
            levels.push(controller.sample(f64::from(rate) * MB, 0));
        }
        assert_eq!(levels, [8, 6, 5, 4, 4, 4, 4, 4, 5, 4, 4, 4, 4, 4, 5, 4, 4]);
    }

    #[test]
    fn it_follows_a_link_whose_connections_get_slower() {
        let mut controller = Controller::new(4, MAX);
        for _ in 0..10 {
            controller.sample(LOOPBACK.rate(controller.level()), 0);
        }
        assert!(controller.level() <= 8);
        // Now each connection moves a window per 200 ms: the baseline decays to what the level
        // gives, and the periodic probes then find the connections the link needs.
        let mut levels = vec![];
        for _ in 0..60 {
            levels.push(controller.sample(LONG.rate(controller.level()), 0));
        }
        assert!(LONG.rate(controller.level()) >= 0.95 * LONG.ceiling, "{levels:?}");
    }

    #[test]
    fn a_fixed_level_has_no_controller() {
        assert_eq!(Concurrency::from_flag(Some(7)).start().0, 7);
        assert_eq!(
            Concurrency::from_flag(Some(7)).sized_for(|| unreachable!("a fixed level is not measured")),
            Concurrency::Fixed(7)
        );
        assert!(Concurrency::from_flag(Some(7)).start().1.is_none());
        assert_eq!(Concurrency::from_flag(None).most(), MAX);
        assert_eq!(Concurrency::from_flag(None).start().0, START);
    }

    #[test]
    fn the_start_is_sized_from_the_first_round_trip() {
        let adaptive = Concurrency::from_flag(None);
        let start = |ms| adaptive.sized_for(|| Some(Duration::from_millis(ms))).start().0;
        assert_eq!(start(2), NEAR_START, "loopback");
        assert_eq!(start(40), 7, "20 ms: 80 MB/s needs 7 windows of 256 KiB");
        assert_eq!(start(160), 25, "80 ms");
        assert_eq!(start(400), 62, "200 ms");
        assert_eq!(start(600), MAX, "300 ms would need 92");
        assert_eq!(adaptive.sized_for(|| None).start().0, START, "not measured");
        assert!(adaptive.sized_for(|| Some(Duration::from_millis(2))).start().1.is_some(), "still adaptive");
    }
}
