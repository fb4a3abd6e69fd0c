//! The machine against a model of R2: single transitions first, then every interleaving of
//! two commands, each split into the steps between which the real Durable Object awaits (and so
//! lets another request in). After every step the record must agree with R2.

use std::collections::BTreeMap;

use super::*;

const TTL: u64 = 1_000;
const T0: u64 = 1_000_000;

// ---------------------------------------------------------------------------------------------
// Single transitions.

fn open() -> Facts {
    Facts::new(T0, TTL)
}

fn with_status(status: UploadStatus) -> Facts {
    Facts { status, ..open() }
}

#[test]
fn a_new_upload_is_open_until_a_ttl_from_now() {
    let facts = open();
    assert_eq!((facts.status, facts.expires_ms), (UploadStatus::Open, T0 + TTL));
}

#[test]
fn expiry_never_passes_r2s_seven_days_however_long_the_ttl_or_the_activity() {
    let ttl = 30 * 24 * 3600 * 1000;
    let mut facts = Facts::new(T0, ttl);
    assert_eq!(facts.expires_ms, T0 + R2_LIFETIME_MS);
    let lease = facts.begin_part(1, None, T0 + 6 * R2_LIFETIME_MS / 7).unwrap();
    facts.record_part(1, lease.token, Some(lease), ttl, T0 + 6 * R2_LIFETIME_MS / 7).unwrap();
    assert_eq!(facts.expires_ms, T0 + R2_LIFETIME_MS);
    // A finished record is kept a TTL, whatever R2 does with unfinished uploads.
    facts.abort(None, T0 + 10).unwrap();
    assert_eq!(facts.expires_ms, T0 + 10 + ttl);
}

#[test]
fn a_part_extends_the_ttl_from_when_it_is_recorded() {
    let mut facts = open();
    let lease = facts.begin_part(1, None, T0 + 500).unwrap();
    facts.record_part(1, lease.token, Some(lease), TTL, T0 + 900).unwrap();
    assert_eq!(facts.expires_ms, T0 + 900 + TTL);
}

#[test]
fn only_an_open_upload_takes_parts() {
    for (status, error) in [
        (UploadStatus::Completing, ApiError::UploadCompleting),
        (UploadStatus::Completed, ApiError::UploadCompleted),
        (UploadStatus::Aborted, ApiError::UploadAborted),
    ] {
        assert_eq!(with_status(status).begin_part(1, None, T0), Err(error));
    }
}

/// Issue 22: a part sent straight to R2 takes no lease, but a copy coming through the Worker
/// holds its number against the report until its lease lapses; only an open upload takes one.
#[test]
fn a_direct_part_report_waits_for_a_copy_through_the_worker_and_needs_an_open_upload() {
    let mut facts = open();
    let lease = facts.begin_part(1, None, T0).unwrap();
    let in_flight = facts.report_part(1, Some(lease), TTL, T0 + 100);
    assert!(matches!(in_flight, Err(ApiError::PartInFlight { part_number: 1, .. })), "{in_flight:?}");
    assert_eq!(facts.expires_ms, T0 + TTL, "a refused report is no activity");
    // Once that copy's lease lapsed (its client is gone), the report is taken and pushes expiry.
    let lapsed = T0 + PART_LEASE_MS + 1;
    assert_eq!(facts.report_part(1, Some(lease), TTL, lapsed), Ok(()));
    assert_eq!(facts.expires_ms, lapsed + TTL);
    assert_eq!(facts.report_part(2, None, TTL, lapsed), Ok(()));
    for (status, error) in [
        (UploadStatus::Completing, ApiError::UploadCompleting),
        (UploadStatus::Completed, ApiError::UploadCompleted),
        (UploadStatus::Aborted, ApiError::UploadAborted),
    ] {
        assert_eq!(with_status(status).report_part(1, None, TTL, T0), Err(error));
    }
}

#[test]
fn a_part_in_flight_holds_its_number_while_it_renews_and_loses_it_once_it_stops() {
    let mut facts = open();
    let first = facts.begin_part(3, None, T0).unwrap();
    assert_eq!(first.until_ms, T0 + PART_LEASE_MS);
    // While its bytes flow its sender renews: a re-send is refused and told how long is left.
    let renewed = facts.renew_part(3, first.token, Some(first), T0 + 1_000).unwrap();
    assert_eq!(renewed, Lease { token: first.token, until_ms: T0 + 1_000 + PART_LEASE_MS });
    let refused = facts.begin_part(3, Some(renewed), renewed.until_ms - 900);
    assert_eq!(refused, Err(ApiError::PartInFlight { part_number: 3, retry_after: 1 }));
    let slow = Lease { token: 9, until_ms: T0 + 2_500 };
    assert_eq!((slow.seconds_left(T0), slow.seconds_left(T0 + 2_499), slow.seconds_left(T0 + 9_000)), (3, 1, 1));
    // A sender that stopped renewing (its client gone) loses the number to the next copy...
    let second = facts.begin_part(3, Some(renewed), renewed.until_ms).unwrap();
    assert_ne!(second.token, first.token);
    // ... and learns so at its next renewal, before its copy can reach R2 whole, or at its record.
    let later = renewed.until_ms + 1;
    assert_eq!(
        facts.renew_part(3, first.token, Some(second), later),
        Err(ApiError::PartInFlight { part_number: 3, retry_after: (PART_LEASE_MS - 1).div_ceil(1000) })
    );
    assert!(facts.record_part(3, first.token, Some(second), TTL, later).is_err());
    assert_eq!(facts.record_part(3, second.token, Some(second), TTL, later + 1), Ok(()));
}

#[test]
fn a_lapsed_lease_nobody_took_over_renews_and_records() {
    let mut facts = open();
    let lease = facts.begin_part(1, None, T0).unwrap();
    let late = T0 + 10 * PART_LEASE_MS;
    assert_eq!(facts.renew_part(1, lease.token, Some(lease), late).map(|l| l.until_ms), Ok(late + PART_LEASE_MS));
    assert_eq!(facts.record_part(1, lease.token, Some(lease), TTL, late), Ok(()));
    // A finished upload takes no more bytes: the renewal says why.
    let aborted = with_status(UploadStatus::Aborted);
    assert_eq!(aborted.renew_part(1, lease.token, Some(lease), late), Err(ApiError::UploadAborted));
}

#[test]
fn a_part_sent_before_a_complete_began_is_recorded_while_it_runs_but_not_after_it() {
    let mut facts = open();
    let lease = facts.begin_part(1, None, T0).unwrap();
    let Ok(Begin::Go { token, .. }) = facts.begin_complete(None, T0) else { panic!() };
    assert_eq!(facts.record_part(1, lease.token, Some(lease), TTL, T0), Ok(()));
    facts.finish_complete(token, &R2Complete::Completed(seen(5, 1, T0)), T0).unwrap();
    let late = Lease { token: 99, until_ms: T0 + 10 };
    assert_eq!(facts.record_part(2, 99, Some(late), TTL, T0), Err(ApiError::UploadCompleted));
}

#[test]
fn one_complete_runs_at_a_time_and_a_dead_runner_is_taken_over() {
    let mut facts = open();
    let Ok(Begin::Go { token, attempt: None }) = facts.begin_complete(None, T0) else { panic!() };
    assert_eq!(facts.status, UploadStatus::Completing);
    // The runner lives in this instance: others wait.
    assert_eq!(facts.begin_complete(Some(token), T0 + 1), Ok(Begin::Wait));
    assert_eq!(facts.abort(Some(token), T0 + 1), Err(ApiError::UploadCompleting));
    // Same lease, but the instance restarted (nothing running): take over at once, repeating
    // the attempt if one was made.
    let attempt = Attempt { since_ms: T0, size: 10, part_numbers: vec![1, 2] };
    assert!(facts.plan(token, attempt.clone()));
    let Ok(Begin::Go { token: next, attempt: Some(again) }) = facts.begin_complete(None, T0 + 2) else { panic!() };
    assert_eq!((again, next > token), (attempt, true));
    // Same instance, but the lease ran out: take over too.
    assert_eq!(
        facts.begin_complete(Some(next), T0 + 2 + COMPLETING_LEASE_MS),
        Ok(Begin::Go { token: next + 1, attempt: facts.attempt.clone() })
    );
    // The old runner can no longer reopen it, and its late answers do not count, but for R2's
    // own word that the object exists.
    assert!(!facts.release_complete(token));
    assert_eq!(facts.status, UploadStatus::Completing);
    assert_eq!(facts.finish_complete(token, &R2Complete::Failed, T0 + 3), Err(ApiError::UploadCompleting));
    assert_eq!(facts.finish_complete(token, &R2Complete::Gone, T0 + 3), Err(ApiError::UploadCompleting));
    assert_eq!(facts.status, UploadStatus::Completing);
    assert_eq!(facts.finish_complete(token, &R2Complete::Completed(seen(10, 2, T0)), T0 + 3), Ok(Next::Nothing));
    assert_eq!(facts.status, UploadStatus::Completed);
}

#[test]
fn what_r2_says_decides_how_a_complete_ends() {
    let go = || {
        let mut facts = open();
        let Ok(Begin::Go { token, .. }) = facts.begin_complete(None, T0) else { panic!() };
        facts.plan(token, Attempt { since_ms: T0, size: 10, part_numbers: vec![1, 2] });
        (facts, token)
    };
    let (mut facts, token) = go();
    assert_eq!(facts.finish_complete(token, &R2Complete::Completed(seen(10, 2, T0)), T0 + 5), Ok(Next::Nothing));
    assert_eq!((facts.status, facts.expires_ms), (UploadStatus::Completed, T0 + 5 + TTL));

    let (mut facts, token) = go();
    assert_eq!(facts.finish_complete(token, &R2Complete::Gone, T0), Ok(Next::Settle));

    let (mut facts, token) = go();
    assert_eq!(
        facts.finish_complete(token, &R2Complete::InvalidPart, T0),
        Err(ApiError::PartsRejected { part_numbers: vec![1, 2] })
    );
    assert_eq!((facts.status, facts.lease, facts.attempt.clone()), (UploadStatus::Open, None, None));

    let (mut facts, token) = go();
    assert_eq!(facts.finish_complete(token, &R2Complete::Failed, T0), Err(ApiError::Internal));
    assert_eq!((facts.status, facts.lease), (UploadStatus::Completing, None), "unknown: settled by the next request");
    assert!(matches!(facts.begin_complete(None, T0 + 1), Ok(Begin::Go { attempt: Some(_), .. })));
}

#[test]
fn settling_recognises_the_attempts_object_by_size_part_count_and_time() {
    let settle = |seen: Option<Seen>| {
        let mut facts = with_status(UploadStatus::Completing);
        facts.attempt = Some(Attempt { since_ms: T0, size: 10, part_numbers: vec![1, 2] });
        facts.settle(seen.as_ref(), T0 + 50)
    };
    assert_eq!(settle(Some(seen(10, 2, T0 + 40))), UploadStatus::Completed);
    assert_eq!(settle(None), UploadStatus::Aborted);
    assert_eq!(settle(Some(seen(11, 2, T0 + 40))), UploadStatus::Aborted, "another size");
    assert_eq!(settle(Some(seen(10, 3, T0 + 40))), UploadStatus::Aborted, "another part count");
    assert_eq!(settle(Some(seen(10, 2, T0 - 60_000))), UploadStatus::Aborted, "an older object");
    let mut never_tried = with_status(UploadStatus::Completing);
    assert_eq!(never_tried.settle(Some(&seen(10, 2, T0)), T0), UploadStatus::Aborted);
}

#[test]
fn the_etag_suffix_gives_the_part_count() {
    assert_eq!(seen(1, 16, 0).part_count(), Some(16));
    assert_eq!(Seen { etag: "\"abc-3\"".into(), size: 1, uploaded_ms: 0 }.part_count(), Some(3));
    assert_eq!(Seen { etag: "abc".into(), size: 1, uploaded_ms: 0 }.part_count(), None);
}

#[test]
fn abort_marks_first_and_keeps_the_record_a_ttl() {
    let mut facts = open();
    assert_eq!(facts.abort(None, T0 + 7), Ok(Next::AbortInR2));
    assert_eq!((facts.status, facts.expires_ms), (UploadStatus::Aborted, T0 + 7 + TTL));
    assert_eq!(facts.abort(None, T0 + 8), Ok(Next::Nothing), "aborting twice is fine");
    assert_eq!(with_status(UploadStatus::Completed).abort(None, T0), Err(ApiError::UploadCompleted));
    let mut stuck = with_status(UploadStatus::Completing);
    stuck.lease = Some(Lease { token: 5, until_ms: T0 + 10 });
    assert_eq!(stuck.abort(None, T0), Ok(Next::Settle), "its runner is gone: ask R2");
}

#[test]
fn r2_forgetting_an_upload_aborts_it_unless_a_complete_may_have_finished_it() {
    let mut facts = open();
    assert_eq!(facts.r2_gone(None, T0), Ok(Next::Nothing));
    assert_eq!(facts.status, UploadStatus::Aborted);
    let mut tried = open();
    tried.attempt = Some(Attempt { since_ms: T0, size: 1, part_numbers: vec![1] });
    assert_eq!(tried.r2_gone(None, T0), Ok(Next::Settle));
    assert_eq!(with_status(UploadStatus::Completed).r2_gone(None, T0), Err(ApiError::UploadCompleted));
}

#[test]
fn the_alarm_aborts_an_idle_upload_waits_for_a_live_complete_and_forgets_finished_ones() {
    let mut facts = open();
    assert_eq!(facts.alarm(None, T0 + 1), Alarm::At(T0 + TTL));
    assert_eq!(facts.alarm(None, T0 + TTL), Alarm::Then(Next::AbortInR2));
    assert_eq!((facts.status, facts.expires_ms), (UploadStatus::Aborted, T0 + 2 * TTL));
    assert_eq!(facts.alarm(None, T0 + 2 * TTL), Alarm::Forget);

    let mut completing = open();
    let Ok(Begin::Go { token, .. }) = completing.begin_complete(None, T0) else { panic!() };
    assert_eq!(completing.alarm(Some(token), T0 + TTL), Alarm::At(T0 + COMPLETING_LEASE_MS));
    assert_eq!(completing.status, UploadStatus::Completing, "never aborted under a running complete");
    assert_eq!(completing.alarm(None, T0 + TTL), Alarm::Then(Next::Settle));
}

fn seen(size: u64, parts: usize, uploaded_ms: u64) -> Seen {
    Seen { etag: format!("0123-{parts}"), size, uploaded_ms }
}

// ---------------------------------------------------------------------------------------------
// Every interleaving of two commands, against a model of R2.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum R2Upload {
    InProgress,
    Completed,
    Aborted,
}

/// R2 as the binding sees it: one multipart upload and the key's object.
#[derive(Debug, Clone)]
struct R2 {
    upload: R2Upload,
    parts: BTreeMap<u16, String>,
    object: Option<Seen>,
}

/// The Durable Object: its facts, recorded parts and part leases, and the complete it runs.
#[derive(Debug, Clone)]
struct World {
    now: u64,
    facts: Facts,
    parts: BTreeMap<u16, String>,
    leases: BTreeMap<u16, Lease>,
    running: Option<i64>,
    r2: R2,
    /// R2 dropped the upload on its own: the record learns it at its next contact with R2.
    r2_expired: bool,
}

/// One command's progress through its steps, and what it answered.
#[derive(Debug, Clone, Default)]
struct Run {
    lease: Option<Lease>,
    token: Option<i64>,
    r2_answer: Option<Result<(), ()>>,
    complete_answer: Option<R2Complete>,
    next: Option<Next>,
    answer: Option<Result<(), ApiError>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    /// Part `n` with the body called `copy`.
    Part(u16, &'static str),
    Complete,
    Abort,
    Alarm,
    /// R2 drops the upload on its own (its seven days are up).
    R2Expires,
    /// The Durable Object instance restarts: what it ran in memory is gone.
    Reset,
}

impl Cmd {
    fn steps(self) -> usize {
        match self {
            Cmd::Part(..) => 3,
            Cmd::Complete => 4,
            Cmd::Abort => 3,
            Cmd::Alarm => 3,
            Cmd::R2Expires | Cmd::Reset => 1,
        }
    }
}

impl World {
    fn new() -> World {
        let mut world = World {
            now: T0,
            facts: open(),
            parts: BTreeMap::new(),
            leases: BTreeMap::new(),
            running: None,
            r2: R2 { upload: R2Upload::InProgress, parts: BTreeMap::new(), object: None },
            r2_expired: false,
        };
        // Part 1 is already in, as the same copy in the record and R2.
        world.parts.insert(1, "p1".into());
        world.r2.parts.insert(1, "p1".into());
        world
    }

    fn head(&self) -> Option<Seen> {
        self.r2.object.clone()
    }

    /// A settle, as the shell does it: head, settle, and free R2's parts unless completed.
    fn settle(&mut self) -> UploadStatus {
        let seen = self.head();
        let status = self.facts.settle(seen.as_ref(), self.now);
        if status == UploadStatus::Aborted && self.r2.upload == R2Upload::InProgress {
            self.r2.upload = R2Upload::Aborted;
        }
        self.running = None;
        status
    }

    fn step(&mut self, cmd: Cmd, step: usize, run: &mut Run) {
        self.now += 1;
        if run.answer.is_some() {
            return;
        }
        match (cmd, step) {
            (Cmd::Part(n, _), 0) => match self.facts.begin_part(n, self.leases.get(&n).copied(), self.now) {
                Ok(lease) => {
                    self.leases.insert(n, lease);
                    run.lease = Some(lease);
                }
                Err(e) => run.answer = Some(Err(e)),
            },
            (Cmd::Part(n, copy), 1) => {
                run.r2_answer = Some(if self.r2.upload == R2Upload::InProgress {
                    self.r2.parts.insert(n, copy.into());
                    Ok(())
                } else {
                    Err(())
                });
            }
            (Cmd::Part(n, copy), 2) => {
                let lease = run.lease.unwrap();
                if run.r2_answer == Some(Err(())) {
                    if self.leases.get(&n) == Some(&lease) {
                        self.leases.remove(&n);
                    }
                    let answer = match self.facts.r2_gone(self.running, self.now) {
                        Ok(Next::Settle) => match self.settle() {
                            UploadStatus::Completed => Err(ApiError::UploadCompleted),
                            _ => Err(ApiError::UploadAborted),
                        },
                        Ok(_) => Err(ApiError::UploadAborted),
                        Err(e) => Err(e),
                    };
                    run.answer = Some(answer);
                    return;
                }
                let held = self.leases.get(&n).copied();
                let answer = self.facts.record_part(n, lease.token, held, TTL, self.now);
                if answer.is_ok() {
                    self.parts.insert(n, copy.into());
                    self.leases.remove(&n);
                }
                run.answer = Some(answer);
            }
            (Cmd::Complete, 0) => match self.facts.begin_complete(self.running, self.now) {
                Ok(Begin::Done) => run.answer = Some(Ok(())),
                // The real complete polls; here it gives up, as it does at its deadline.
                Ok(Begin::Wait) => run.answer = Some(Err(ApiError::UploadCompleting)),
                Ok(Begin::Go { token, attempt }) => {
                    run.token = Some(token);
                    self.running = Some(token);
                    if let Some(attempt) = attempt {
                        // A repeat: ask R2 for the same parts again, as planned.
                        let _ = attempt;
                    }
                }
                Err(e) => run.answer = Some(Err(e)),
            },
            (Cmd::Complete, 1) => {
                let token = run.token.unwrap();
                // The real complete waits for parts in flight; at its deadline it gives up.
                if let Some((&n, _)) = self.leases.iter().find(|(_, lease)| lease.live(self.now)) {
                    if self.facts.release_complete(token) {
                        self.running = None;
                    }
                    run.answer = Some(Err(ApiError::PartInFlight { part_number: n, retry_after: 1 }));
                    return;
                }
                if self.facts.status != UploadStatus::Completing || self.facts.lease.map(|l| l.token) != Some(token) {
                    run.answer = Some(status_error(self.facts.status).or(Err(ApiError::UploadCompleting)));
                    return;
                }
                let attempt = self.facts.attempt.clone().unwrap_or(Attempt {
                    since_ms: self.now,
                    size: self.parts.len() as u64,
                    part_numbers: self.parts.keys().copied().collect(),
                });
                assert!(self.facts.plan(token, attempt));
            }
            (Cmd::Complete, 2) => {
                let Some(attempt) = self.facts.attempt.clone() else {
                    run.answer = Some(status_error(self.facts.status));
                    return;
                };
                run.complete_answer = Some(if self.r2.upload != R2Upload::InProgress {
                    R2Complete::Gone
                } else if attempt.part_numbers.iter().any(|n| self.r2.parts.get(n) != self.parts.get(n)) {
                    R2Complete::InvalidPart
                } else {
                    let object = seen(attempt.size, attempt.part_numbers.len(), self.now);
                    self.r2.upload = R2Upload::Completed;
                    self.r2.object = Some(object.clone());
                    R2Complete::Completed(object)
                });
            }
            (Cmd::Complete, 3) => {
                let token = run.token.unwrap();
                let answer = run.complete_answer.clone().unwrap();
                if self.running == Some(token) {
                    self.running = None;
                }
                run.answer = Some(match self.facts.finish_complete(token, &answer, self.now) {
                    Ok(Next::Settle) => match self.settle() {
                        UploadStatus::Completed => Ok(()),
                        _ => Err(ApiError::UploadAborted),
                    },
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                });
            }
            (Cmd::Abort | Cmd::Alarm, 0) => {
                let next = if cmd == Cmd::Abort {
                    self.facts.abort(self.running, self.now)
                } else {
                    self.now = self.now.max(self.facts.expires_ms);
                    match self.facts.alarm(self.running, self.now) {
                        Alarm::Then(next) => Ok(next),
                        _ => Ok(Next::Nothing),
                    }
                };
                match next {
                    Ok(next) => run.next = Some(next),
                    Err(e) => run.answer = Some(Err(e)),
                }
            }
            (Cmd::Abort | Cmd::Alarm, 1) => match run.next.unwrap() {
                Next::AbortInR2 => {
                    if self.r2.upload == R2Upload::InProgress {
                        self.r2.upload = R2Upload::Aborted;
                    }
                }
                Next::Settle => {
                    if self.settle() == UploadStatus::Completed && cmd == Cmd::Abort {
                        run.answer = Some(Err(ApiError::UploadCompleted));
                    }
                }
                Next::Nothing => {}
            },
            (Cmd::Abort | Cmd::Alarm, 2) => run.answer = Some(Ok(())),
            (Cmd::R2Expires, 0) => {
                if self.r2.upload == R2Upload::InProgress {
                    self.r2.upload = R2Upload::Aborted;
                    self.r2_expired = true;
                }
                run.answer = Some(Ok(()));
            }
            (Cmd::Reset, 0) => {
                self.running = None;
                run.answer = Some(Ok(()));
            }
            _ => unreachable!("{cmd:?} has no step {step}"),
        }
    }

    /// The record and R2 agree. `settled`: no command is half-way.
    fn check(&self, settled: bool, trace: &str) {
        match self.facts.status {
            UploadStatus::Open if self.r2_expired => {}
            UploadStatus::Open => {
                assert_eq!(self.r2.upload, R2Upload::InProgress, "open, but R2's upload is gone: {trace}");
                for (n, copy) in &self.parts {
                    let in_flight = self.leases.get(n).is_some_and(|l| l.live(self.now));
                    if !in_flight {
                        assert_eq!(self.r2.parts.get(n), Some(copy), "part {n}: record and R2 differ: {trace}");
                    }
                }
            }
            UploadStatus::Completed => {
                assert_eq!(self.r2.upload, R2Upload::Completed, "completed, but R2 did not complete: {trace}");
            }
            UploadStatus::Aborted => {
                assert_ne!(self.r2.upload, R2Upload::Completed, "aborted, but R2 completed it: {trace}");
                if settled {
                    assert_ne!(self.r2.upload, R2Upload::InProgress, "aborted, but R2 still holds the parts: {trace}");
                }
            }
            UploadStatus::Completing => {
                assert!(!settled || self.facts.lease.is_none() || self.running.is_none(), "{trace}");
            }
        }
    }
}

/// Every way to interleave `a` steps with `b` steps: which command moves at each step.
fn interleavings(a: usize, b: usize) -> Vec<Vec<bool>> {
    if a == 0 || b == 0 {
        return vec![std::iter::repeat_n(true, a).chain(std::iter::repeat_n(false, b)).collect()];
    }
    let mut all = Vec::new();
    for mut rest in interleavings(a - 1, b) {
        rest.insert(0, true);
        all.push(rest);
    }
    for mut rest in interleavings(a, b - 1) {
        rest.insert(0, false);
        all.push(rest);
    }
    all
}

/// Runs `first` and `second` in every interleaving from `world`; checks the record against R2
/// after every step, and `outcome` on the final world and both answers.
fn every_interleaving(
    world: &World,
    first: Cmd,
    second: Cmd,
    outcome: impl Fn(&World, &Result<(), ApiError>, &Result<(), ApiError>, &str),
) -> usize {
    let orders = interleavings(first.steps(), second.steps());
    for order in &orders {
        let mut world = world.clone();
        let (mut a, mut b) = (Run::default(), Run::default());
        let (mut i, mut j) = (0, 0);
        let trace = format!("{first:?} / {second:?} in order {order:?}");
        for &first_moves in order {
            if first_moves {
                world.step(first, i, &mut a);
                i += 1;
            } else {
                world.step(second, j, &mut b);
                j += 1;
            }
            world.check(false, &trace);
        }
        world.check(true, &trace);
        let (a, b) = (a.answer.expect("first answered"), b.answer.expect("second answered"));
        outcome(&world, &a, &b, &trace);
    }
    orders.len()
}

/// What every pair must satisfy: answers tell the truth about the final state.
fn truthful(world: &World, answers: [(Cmd, &Result<(), ApiError>); 2], trace: &str) {
    for (cmd, answer) in answers {
        match (cmd, answer) {
            (Cmd::Complete, Ok(())) => assert_eq!(world.facts.status, UploadStatus::Completed, "{trace}"),
            (Cmd::Abort, Ok(())) => assert_eq!(world.facts.status, UploadStatus::Aborted, "{trace}"),
            (Cmd::Part(n, _), Ok(())) if world.facts.status == UploadStatus::Open => {
                // The record names a copy that was answered 200 (the later one, if both were).
                let recorded = world.parts.get(&n).map(String::as_str);
                let accepted = answers
                    .iter()
                    .any(|(c, a)| a.is_ok() && matches!(c, Cmd::Part(m, copy) if *m == n && Some(*copy) == recorded));
                assert!(accepted, "part {n} records {recorded:?}: {trace}");
            }
            (_, Err(ApiError::Internal)) => panic!("a 500 in the model: {trace}"),
            _ => {}
        }
    }
}

#[test]
fn every_interleaving_of_two_commands_keeps_the_record_and_r2_in_agreement() {
    let commands = [
        Cmd::Part(1, "p1-again"),
        Cmd::Part(2, "p2"),
        Cmd::Part(2, "p2-other"),
        Cmd::Complete,
        Cmd::Abort,
        Cmd::Alarm,
        Cmd::R2Expires,
        Cmd::Reset,
    ];
    let mut runs = 0;
    for first in commands {
        for second in commands {
            runs += every_interleaving(&World::new(), first, second, |world, a, b, trace| {
                truthful(world, [(first, a), (second, b)], trace);
            });
        }
    }
    assert!(runs > 500, "{runs} interleavings");
}

#[test]
fn the_same_part_sent_twice_at_once_is_recorded_as_the_copy_r2_holds() {
    let world = World::new();
    every_interleaving(&world, Cmd::Part(2, "a"), Cmd::Part(2, "b"), |world, a, b, trace| {
        let held = world.r2.parts.get(&2).cloned();
        assert_eq!(world.parts.get(&2).cloned(), held, "{trace}");
        assert!(a.is_ok() || b.is_ok(), "one copy wins: {trace}");
        for answer in [a, b] {
            assert!(matches!(answer, Ok(()) | Err(ApiError::PartInFlight { part_number: 2, .. })), "{trace}");
        }
    });
}

#[test]
fn a_complete_racing_an_abort_has_one_winner() {
    every_interleaving(&World::new(), Cmd::Complete, Cmd::Abort, |world, complete, abort, trace| {
        match (complete, abort) {
            (Ok(()), Err(e)) => {
                assert!(matches!(e, ApiError::UploadCompleted | ApiError::UploadCompleting), "{trace}");
                assert_eq!(world.r2.upload, R2Upload::Completed, "{trace}");
            }
            (Err(ApiError::UploadAborted), Ok(())) => assert_eq!(world.r2.upload, R2Upload::Aborted, "{trace}"),
            other => panic!("{other:?}: {trace}"),
        }
    });
}

#[test]
fn a_complete_whose_instance_restarts_is_finished_by_the_next_complete() {
    // The first complete dies after any number of its steps; then another complete runs alone.
    for dies_after in 0..=Cmd::Complete.steps() {
        let mut world = World::new();
        let mut run = Run::default();
        for step in 0..dies_after {
            world.step(Cmd::Complete, step, &mut run);
        }
        world.running = None;
        let mut again = Run::default();
        for step in 0..Cmd::Complete.steps() {
            world.step(Cmd::Complete, step, &mut again);
        }
        assert_eq!(again.answer, Some(Ok(())), "dies after {dies_after} steps");
        assert_eq!((world.facts.status, world.r2.upload), (UploadStatus::Completed, R2Upload::Completed));
    }
}

#[test]
fn a_complete_after_r2_dropped_the_upload_answers_aborted() {
    let mut world = World::new();
    world.r2.upload = R2Upload::Aborted;
    let mut run = Run::default();
    for step in 0..Cmd::Complete.steps() {
        world.step(Cmd::Complete, step, &mut run);
    }
    assert_eq!(run.answer, Some(Err(ApiError::UploadAborted)));
    assert_eq!(world.facts.status, UploadStatus::Aborted);
}
