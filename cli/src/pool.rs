//! The thread pool both transfers share: parts worked on in parallel by scoped threads, each
//! result handed back to the calling thread, which alone records it (journal, progress).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

use crate::error::Result;
use crate::progress::Progress;

/// Runs `work` on each part of `todo`, on `concurrency` threads (at least one, at most one a
/// part), and passes each result to `finished` on this thread as it arrives. A part counts as
/// done on `progress`, out of `count` parts in all (those not in `todo` were done earlier), once
/// `finished` accepts it. The first error `finished` returns (usually the part's own) stops the
/// threads from starting new parts; parts already under way still reach `finished`, and that
/// first error is what this returns.
pub fn run<T: Send>(
    todo: &[u16],
    count: usize,
    concurrency: usize,
    progress: &Progress,
    work: impl Fn(u16) -> Result<T> + Sync,
    mut finished: impl FnMut(u16, Result<T>) -> Result<()>,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (sender, results) = mpsc::channel::<(u16, Result<T>)>();
    thread::scope(|scope| {
        for _ in 0..concurrency.clamp(1, todo.len().max(1)) {
            let sender = sender.clone();
            let (next, stop, work) = (&next, &stop, &work);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some(&n) = todo.get(next.fetch_add(1, Ordering::Relaxed)) else { break };
                    if sender.send((n, work(n))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        let mut first_error = None;
        let mut done = count - todo.len();
        for (n, result) in results {
            match finished(n, result) {
                Ok(()) => {
                    done += 1;
                    progress.piece_done(done, count);
                }
                Err(error) => {
                    stop.store(true, Ordering::Relaxed);
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::atomic::AtomicU32;
    use std::sync::Barrier;
    use std::time::Duration;

    use super::*;
    use crate::error::Error;

    fn quiet() -> Progress {
        Progress::start("test", "parts", 0, 0, true)
    }

    #[test]
    fn every_part_is_worked_on_once_and_finished_on_this_thread() {
        let todo: Vec<u16> = (3..=40).collect();
        let here = thread::current().id();
        let mut seen = BTreeSet::new();
        let result = run(
            &todo,
            40,
            8,
            &quiet(),
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
        let result = run(&[], 1, 4, &quiet(), |_| Ok(called.fetch_add(1, Ordering::Relaxed)), |_, _| Ok(()));
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
        let result = run(&[1, 2, 3], 3, 3, &quiet(), work, |n, part| {
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
        let result = run(&todo, 1000, 2, &quiet(), work, |n, _| match n {
            1 => Err(Error::Usage("cannot record part 1".into())),
            _ => Ok(()),
        });
        assert!(matches!(result, Err(Error::Usage(_))));
        assert!(started.into_inner() < 1000);
    }
}
