//! Progress of a transfer: an indicatif bar with rate and ETA when stderr is a terminal, a plain
//! line per finished piece (at most one a second) when it is not (logs, CI), nothing with
//! `--quiet`. Worker threads report bytes as they move; the coordinating thread reports pieces.
//!
//! What is shown (position, rate, ETA) counts only bytes the far end holds: an upload's parts
//! once the Worker (or R2) answered them, a download's bytes once written. Bytes handed to a
//! socket are not there yet: counting them showed `439 MiB/s … ETA 1s` in the first second of a
//! 45 MB/s upload, while the kernel's buffers filled. The rate and ETA are this run's bytes held
//! over its time, on the bar as on the plain lines ([`pace`]); indicatif's own estimate took a
//! resumed upload's earlier bytes for this run's first fraction of a second.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressState, ProgressStyle};

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
                "{prefix} [{bar:30}] {binary_bytes}/{binary_total_bytes} {rate} {msg}{eta}",
            )
            .expect("the template is valid")
            .with_key("rate", move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let (rate, _) = pace(state.pos(), total, resumed, state.elapsed());
                let _ = write!(w, "{}/s", HumanBytes(rate as u64));
            })
            .with_key("eta", move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                if let (_, Some(eta)) = pace(state.pos(), total, resumed, state.elapsed()) {
                    let _ = write!(w, " ETA {}", HumanDuration(eta));
                }
            })
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
            level: AtomicUsize::new(0),
            recent_rate: AtomicU64::new(0),
            started: Instant::now(),
            bar,
            last_line: (!quiet && !terminal).then(|| Mutex::new(None)),
        }
    }

    /// Bytes the far end now holds: a part the Worker answered, bytes of a range written.
    pub fn arrived(&self, bytes: u64) {
        self.arrived.fetch_add(bytes, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
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
        let (rate, eta) = pace(moved, self.total, self.resumed, self.started.elapsed());
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
        if let Some(eta) = eta.filter(|_| done < of) {
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

/// This run's rate (bytes/s) and the time the rest would take at it, from `held` bytes of
/// `total` the far end holds, `resumed` of them held before this run, `elapsed` into it. No ETA
/// before this run's first byte is held.
fn pace(held: u64, total: u64, resumed: u64, elapsed: Duration) -> (f64, Option<Duration>) {
    let held = held.min(total);
    let rate = held.saturating_sub(resumed) as f64 / elapsed.as_secs_f64().max(0.001);
    let eta = (rate > 0.0).then(|| Duration::from_secs_f64((total - held) as f64 / rate));
    (rate, eta)
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_pace_counts_only_this_runs_bytes_held() {
        // Nothing answered yet: no rate, no ETA, however much went into sockets.
        assert_eq!(pace(0, 300 * MIB, 0, Duration::from_secs(1)), (0.0, None));
        // 45 MiB held after a second: 45 MiB/s, 255 MiB to go.
        let (rate, eta) = pace(45 * MIB, 300 * MIB, 0, Duration::from_secs(1));
        assert_eq!(rate, 45.0 * MIB as f64);
        assert_eq!(eta.map(|d| d.as_secs()), Some(5));
        // Resumed with 250 MiB on the server: a tenth of a second in, nothing of this run yet.
        assert_eq!(pace(250 * MIB, 300 * MIB, 250 * MIB, Duration::from_millis(100)), (0.0, None));
        let (rate, _) = pace(260 * MIB, 300 * MIB, 250 * MIB, Duration::from_secs(2));
        assert_eq!(rate, 5.0 * MIB as f64);
    }
}
