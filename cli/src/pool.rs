//! The thread pool both transfers share: parts worked on in parallel by scoped threads, each
//! result handed back to the calling thread, which alone records it (journal, progress), and
//! which also sets how many parts may be in flight (see [`concurrency`]).
//!
//! Threads are started as the level rises and wait at a gate when it falls; each keeps its own
//! connection alive in the client's pool between parts, so a grown pool does not pay a
//! handshake per part. The level follows the throughput of the parts answered (see
//! [`throughput`]), timed from the moment a thread began each one.
//!
//! [`concurrency`]: crate::concurrency
//! [`throughput`]: crate::throughput

use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use r2mpu_api::layout::Layout;

use crate::concurrency::{Concurrency, WINDOW};
use crate::error::Result;
use crate::parts::part_len;
use crate::progress::Progress;
use crate::throughput::Meter;

/// How often the calling thread looks at the clock while no result arrives.
const TICK: Duration = Duration::from_millis(100);

/// Runs `work` on each part of `todo` (numbered as in `layout`) and passes each result to
/// `finished` on this thread as it arrives. At most `concurrency` parts are in flight (at least
/// one, at most one a part); when adaptive, the level follows the throughput of the parts
/// `finished` accepted and the attempts counted in `setbacks` (retried failures). A part counts
/// as done on `progress`, out of the layout's parts (those not in `todo` were done earlier),
/// once `finished` accepts it. The first error
/// `finished` returns (usually the part's own) stops the threads from starting new parts;
/// parts already under way still reach `finished`, and that first error is what this returns.
pub fn run<T: Send>(
    todo: &[u16],
    layout: &Layout,
    concurrency: Concurrency,
    progress: &Progress,
    setbacks: &AtomicU64,
    work: impl Fn(u16) -> Result<T> + Sync,
    mut finished: impl FnMut(u16, Result<T>) -> Result<()>,
) -> Result<()> {
    let count = usize::from(layout.part_count().unwrap_or(0));
    let next = AtomicUsize::new(0);
    let (mut level, mut controller) = concurrency.start();
    let gate = Gate::new(level);
    let (sender, results) = mpsc::channel::<Finished<T>>();
    let mut sender = Some(sender);
    let worker = |sender: mpsc::Sender<Finished<T>>| {
        let (next, gate, work) = (&next, &gate, &work);
        move || {
            while gate.enter() {
                let Some(&n) = todo.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    // Nothing left to start: let the threads waiting at the gate go too.
                    gate.close();
                    break;
                };
                let begun = Instant::now();
                let result = work(n);
                let ended = Instant::now();
                gate.leave();
                if sender.send((n, begun..ended, result)).is_err() {
                    break;
                }
            }
        }
    };
    thread::scope(|scope| {
        let mut threads = 0;
        let mut spawn_up_to = |level: usize, sender: &Option<mpsc::Sender<_>>| {
            while let Some(sender) = sender.as_ref().filter(|_| threads < level.min(todo.len())) {
                scope.spawn(worker(sender.clone()));
                threads += 1;
            }
        };
        spawn_up_to(level, &sender);
        progress.set_level(level, None);
        let mut window = Window::start(setbacks);
        let mut meter = Meter::new(window.started);
        let mut first_error = None;
        let mut done = count - todo.len();
        loop {
            if gate.is_closed() || next.load(Ordering::Relaxed) >= todo.len() {
                // No thread will be started: once the running ones are done, the channel closes.
                sender = None;
            }
            match results.recv_timeout(TICK) {
                Ok((n, took, result)) => match finished(n, result) {
                    Ok(()) => {
                        meter.answered(part_len(layout, n), took.start, took.end);
                        done += 1;
                        progress.piece_done(done, count);
                    }
                    Err(error) => {
                        gate.close();
                        first_error.get_or_insert(error);
                    }
                },
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if sender.is_none() || window.started.elapsed() < WINDOW {
                continue;
            }
            let (rate, failures) = (meter.rate(level), window.setbacks(setbacks));
            // Without a piece answered at this level there is nothing to go on but failures.
            if let Some(controller) = controller.as_mut().filter(|_| rate.is_some() || failures > 0) {
                let (before, changed) = (level, Instant::now());
                level = controller.sample(rate.unwrap_or(0.0), failures);
                gate.set_limit(level);
                spawn_up_to(level, &sender);
                progress.set_level(level, rate);
                window = Window::start(setbacks);
                if level != before {
                    meter = Meter::new(changed);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    })
}

/// A part handed back by a thread: its number, from when to when the thread worked on it, and
/// the result.
type Finished<T> = (u16, Range<Instant>, Result<T>);

/// One window between the controller's samples: when it began, and the failure count then.
struct Window {
    started: Instant,
    setbacks: u64,
}

impl Window {
    fn start(setbacks: &AtomicU64) -> Window {
        Window { started: Instant::now(), setbacks: setbacks.load(Ordering::Relaxed) }
    }

    /// The attempts that failed since the window began.
    fn setbacks(&self, setbacks: &AtomicU64) -> u64 {
        setbacks.load(Ordering::Relaxed).saturating_sub(self.setbacks)
    }
}

/// Lets at most `limit` threads work at once; closed, it lets none in and wakes all waiters.
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

struct GateState {
    limit: usize,
    busy: usize,
    closed: bool,
}

impl Gate {
    fn new(limit: usize) -> Gate {
        Gate { state: Mutex::new(GateState { limit, busy: 0, closed: false }), changed: Condvar::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a free place; false once the gate is closed.
    fn enter(&self) -> bool {
        let mut state = self.lock();
        while !state.closed && state.busy >= state.limit {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.busy += usize::from(!state.closed);
        !state.closed
    }

    fn leave(&self) {
        self.lock().busy -= 1;
        self.changed.notify_one();
    }

    fn set_limit(&self, limit: usize) {
        self.lock().limit = limit.max(1);
        self.changed.notify_all();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicBool, AtomicU32};
    use std::sync::Barrier;
    use std::time::Duration;

    use super::*;
    use crate::error::Error;

    fn quiet() -> Progress {
        Progress::start("test", "parts", 0, 0, true)
    }

    /// `count` parts of 1 MB.
    fn parts(count: u16) -> Layout {
        Layout { part_size: 1_000_000, size: Some(u64::from(count) * 1_000_000) }
    }

    #[test]
    fn every_part_is_worked_on_once_and_finished_on_this_thread() {
        let todo: Vec<u16> = (3..=40).collect();
        let here = thread::current().id();
        let mut seen = BTreeSet::new();
        let result = run(
            &todo,
            &parts(40),
            Concurrency::Fixed(8),
            &quiet(),
            &AtomicU64::new(0),
            |n| Ok(u32::from(n) * 2),
            |n, doubled| {
                assert_eq!(thread::current().id(), here);
                assert_eq!(doubled?, u32::from(n) * 2);
                assert!(seen.insert(n), "part {n} came back twice");
                Ok(())
            },
        );
        assert!(result.is_ok());
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), todo);
    }

    #[test]
    fn nothing_to_do_finishes_at_once() {
        let called = AtomicU32::new(0);
        let result = run(
            &[],
            &parts(1),
            Concurrency::Fixed(4),
            &quiet(),
            &AtomicU64::new(0),
            |_| Ok(called.fetch_add(1, Ordering::Relaxed)),
            |_, _| Ok(()),
        );
        assert!(result.is_ok());
        assert_eq!(called.into_inner(), 0);
    }

    #[test]
    fn parts_under_way_still_finish_after_the_first_error_which_is_returned() {
        // Three threads, one part each, all in flight before part 1 fails.
        let all_started = Barrier::new(3);
        let error_seen = AtomicBool::new(false);
        let work = |n: u16| {
            all_started.wait();
            if n != 1 {
                while !error_seen.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(1));
                }
            }
            match n {
                2 => Ok(()),
                _ => Err(Error::Unavailable(format!("part {n} failed"))),
            }
        };
        let mut seen = BTreeSet::new();
        let result =
            run(&[1, 2, 3], &parts(3), Concurrency::Fixed(3), &quiet(), &AtomicU64::new(0), work, |n, part| {
                seen.insert(n);
                error_seen.store(true, Ordering::Relaxed);
                part
            });
        assert!(matches!(result, Err(Error::Unavailable(message)) if message == "part 1 failed"));
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn an_error_from_finished_stops_new_parts() {
        let todo: Vec<u16> = (1..=1000).collect();
        let started = AtomicU32::new(0);
        let work = |_| {
            started.fetch_add(1, Ordering::Relaxed);
            thread::sleep(Duration::from_millis(1));
            Ok(())
        };
        let result =
            run(&todo, &parts(1000), Concurrency::Fixed(2), &quiet(), &AtomicU64::new(0), work, |n, _| match n {
                1 => Err(Error::Usage("cannot record part 1".into())),
                _ => Ok(()),
            });
        assert!(matches!(result, Err(Error::Usage(_))));
        assert!(started.into_inner() < 1000);
    }

    /// Counts the parts in flight and keeps the highest count seen.
    #[derive(Default)]
    struct InFlight {
        now: AtomicUsize,
        peak: AtomicUsize,
    }

    impl InFlight {
        fn during<T>(&self, work: impl FnOnce() -> T) -> T {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            let result = work();
            self.now.fetch_sub(1, Ordering::SeqCst);
            result
        }
    }

    #[test]
    fn a_pinned_level_is_never_exceeded() {
        let todo: Vec<u16> = (1..=60).collect();
        let in_flight = InFlight::default();
        let work = |_| {
            in_flight.during(|| thread::sleep(Duration::from_millis(2)));
            Ok(())
        };
        let result = run(&todo, &parts(60), Concurrency::Fixed(3), &quiet(), &AtomicU64::new(0), work, |_, r| r);
        assert!(result.is_ok());
        assert_eq!(in_flight.peak.into_inner(), 3);
    }

    /// Parts that each move 1 MB in 20 ms: a link whose throughput follows the parts in flight.
    /// After a window at the starting level (some 1,500 parts), the pool doubles it, and the
    /// rest are begun before the next window ends.
    #[test]
    fn an_adaptive_pool_grows_while_the_throughput_follows() {
        let todo: Vec<u16> = (1..=2800).collect();
        let progress = quiet();
        let in_flight = InFlight::default();
        let work = |_| {
            in_flight.during(|| thread::sleep(Duration::from_millis(20)));
            progress.arrived(1_000_000);
            Ok(())
        };
        let result = run(
            &todo,
            &parts(2800),
            Concurrency::Adaptive { start: crate::concurrency::START },
            &progress,
            &AtomicU64::new(0),
            work,
            |_, r| r,
        );
        assert!(result.is_ok());
        assert_eq!(in_flight.peak.into_inner(), 2 * crate::concurrency::START);
    }

    /// The same link, but every window sees a retried failure: the pool never grows.
    #[test]
    fn an_adaptive_pool_does_not_grow_while_attempts_fail() {
        let todo: Vec<u16> = (1..=2400).collect();
        let (progress, setbacks) = (quiet(), AtomicU64::new(0));
        let in_flight = InFlight::default();
        let work = |_| {
            in_flight.during(|| thread::sleep(Duration::from_millis(20)));
            progress.arrived(1_000_000);
            setbacks.fetch_add(1, Ordering::Relaxed);
            Ok(())
        };
        let result = run(
            &todo,
            &parts(2400),
            Concurrency::Adaptive { start: crate::concurrency::START },
            &progress,
            &setbacks,
            work,
            |_, r| r,
        );
        assert!(result.is_ok());
        assert_eq!(in_flight.peak.into_inner(), crate::concurrency::START);
    }

    /// Issue 23: the first wave's parts went into socket buffers (or a proxy that holds them)
    /// and none is answered for more than two windows. Nothing is known of the link yet, so the
    /// level stays where it started; a measure of bytes handed to sockets read 16 parts' worth
    /// in the first window and doubled the level at the second.
    #[test]
    fn bytes_handed_without_an_answer_never_raise_the_level() {
        let start = crate::concurrency::START;
        let todo: Vec<u16> = (1..=64).collect();
        let progress = quiet();
        let (in_flight, released) = (InFlight::default(), AtomicBool::new(false));
        let peak_while_held = AtomicUsize::new(0);
        thread::scope(|scope| {
            scope.spawn(|| {
                thread::sleep(WINDOW * 2 + Duration::from_millis(600));
                peak_while_held.store(in_flight.peak.load(Ordering::SeqCst), Ordering::SeqCst);
                released.store(true, Ordering::SeqCst);
            });
            let work = |_| {
                in_flight.during(|| {
                    while !released.load(Ordering::SeqCst) {
                        thread::sleep(Duration::from_millis(5));
                    }
                });
                progress.arrived(1_000_000);
                Ok(())
            };
            let adaptive = Concurrency::Adaptive { start };
            let result = run(&todo, &parts(64), adaptive, &progress, &AtomicU64::new(0), work, |_, r| r);
            assert!(result.is_ok());
        });
        assert_eq!(peak_while_held.into_inner(), start, "the parts in flight while none was answered");
    }
}
