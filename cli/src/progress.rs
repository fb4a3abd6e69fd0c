//! Progress of a transfer: an indicatif bar with rate and ETA when stderr is a terminal, a plain
//! line per finished piece (at most one a second) when it is not (logs, CI), nothing with
//! `--quiet`. Worker threads report bytes as they move; the coordinating thread reports pieces.
//!
//! What is shown (position, rate, ETA) counts only bytes the far end holds: an upload's parts
//! once the Worker answered them, a download's bytes once written. Bytes handed to a socket
//! are not there yet: counting them showed `439 MiB/s … ETA 1s` in the first second of a
//! 45 MB/s upload, while the kernel's buffers filled. They are counted apart ([`Progress::handed`]),
//! for the adaptive concurrency's measure.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressStyle};

/// The bar on screen, if any, so that [`note`] can print above it instead of through it.
static ACTIVE_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Prints a line on stderr without tearing a progress bar.
pub fn note(message: impl std::fmt::Display) {
    match ACTIVE_BAR.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        Some(bar) => bar.println(message.to_string()),
        None => eprintln!("{message}"),
    }
}

pub struct Progress {
    verb: &'static str,
    /// What the pieces are called: parts, ranges.
    pieces: &'static str,
    total: u64,
    /// Bytes done before this run (resumed), so the rate counts only what this run moved.
    resumed: u64,
    /// Bytes the far end holds (a part answered, a range written), resumed ones included.
    arrived: AtomicU64,
    /// Bytes handed to the network, answered or not (uploads), resumed ones included.
    handed: AtomicU64,
    /// Parts in flight now, and the throughput last measured (bytes/s; 0 before the first).
    level: AtomicUsize,
    recent_rate: AtomicU64,
    started: Instant,
    bar: Option<ProgressBar>,
    /// When the last plain line was printed; `None` when plain lines are off.
    last_line: Option<Mutex<Option<Instant>>>,
}

impl Progress {
    /// Starts reporting a transfer of `total` bytes in `pieces`, of which `resumed` bytes were
    /// moved by earlier runs.
    pub fn start(verb: &'static str, pieces: &'static str, total: u64, resumed: u64, quiet: bool) -> Progress {
        let terminal = !quiet && std::io::stderr().is_terminal();
        let bar = terminal.then(|| {
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {msg} ETA {eta}",
            )
            .expect("the template is valid")
            .progress_chars("=> ");
            let bar = ProgressBar::new(total).with_style(style).with_prefix(verb).with_position(resumed);
            bar.enable_steady_tick(Duration::from_millis(200));
            *ACTIVE_BAR.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
            bar
        });
        Progress {
            verb,
            pieces,
            total,
            resumed,
            arrived: AtomicU64::new(resumed),
            handed: AtomicU64::new(resumed),
            level: AtomicUsize::new(0),
            recent_rate: AtomicU64::new(0),
            started: Instant::now(),
            bar,
            last_line: (!quiet && !terminal).then(|| Mutex::new(None)),
        }
    }

    /// Bytes handed to the network on their way to the far end (any thread); shown only once
    /// they have [`Progress::arrived`].
    pub fn handed(&self, bytes: u64) {
        self.handed.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes handed by an attempt that failed and will be sent again.
    pub fn take_back(&self, bytes: u64) {
        self.handed.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Bytes the far end now holds: a part the Worker answered, bytes of a range written.
    pub fn arrived(&self, bytes: u64) {
        self.arrived.fetch_add(bytes, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    /// Bytes moved so far, by this run and earlier ones, as the adaptive concurrency measures
    /// them: handed to the network (an upload), or arrived (a download, where they are one).
    pub fn moved(&self) -> u64 {
        self.handed.load(Ordering::Relaxed).max(self.arrived.load(Ordering::Relaxed))
    }

    /// How many pieces are in flight now, and the throughput that level was chosen on.
    pub fn set_level(&self, level: usize, rate: Option<f64>) {
        self.level.store(level, Ordering::Relaxed);
        if let Some(rate) = rate {
            self.recent_rate.store(rate as u64, Ordering::Relaxed);
        }
        if let Some(bar) = &self.bar {
            bar.set_message(format!("x{level}"));
        }
    }

    /// A piece finished: print a plain line if one is due.
    pub fn piece_done(&self, done: usize, of: usize) {
        let Some(last_line) = &self.last_line else { return };
        let mut last_line = last_line.lock().unwrap_or_else(|e| e.into_inner());
        let due = last_line.is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
        if due || done == of {
            *last_line = Some(Instant::now());
            eprintln!("{}", self.line(done, of));
        }
    }

    fn line(&self, done: usize, of: usize) -> String {
        let moved = self.arrived.load(Ordering::Relaxed).min(self.total);
        let elapsed = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = (moved - self.resumed.min(moved)) as f64 / elapsed;
        let percent = (moved * 100).checked_div(self.total).unwrap_or(100);
        let mut line = format!(
            "{}: {done}/{of} {}, {} of {} ({percent}%), {}/s",
            self.verb,
            self.pieces,
            HumanBytes(moved),
            HumanBytes(self.total),
            HumanBytes(rate as u64)
        );
        let level = self.level.load(Ordering::Relaxed);
        if done < of && level > 0 {
            // What the transfer does now; the average above also counts its start.
            line.push_str(&format!(", {level} in flight"));
            let recent = self.recent_rate.load(Ordering::Relaxed);
            if recent > 0 {
                line.push_str(&format!(" at {}/s", HumanBytes(recent)));
            }
        }
        if done < of && rate > 0.0 {
            let eta = Duration::from_secs_f64((self.total - moved) as f64 / rate);
            line.push_str(&format!(", ETA {}", HumanDuration(eta)));
        }
        line
    }

    /// Takes the bar off the screen.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            *ACTIVE_BAR.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
