//! The upload's life cycle as plain data: statuses, the transitions between them, the R2 effect
//! each transition asks for, and who wins when two requests meet. No I/O here: the Durable
//! Object (`object.rs`) loads [`Facts`] from its row, asks the machine, writes the new facts back
//! with a compare-and-set, and performs the effect. `cargo test` checks every transition and
//! every interleaving of two commands against a model of R2 (tests below).
//!
//! The rules that keep the record and R2 in agreement:
//! - Mark first, then act on R2: a status change is written before the R2 call it stands for,
//!   so a request that arrives while R2 works sees the new status and gets its true `409`.
//! - One sender per part: a part's PUT holds a lease on its number from before R2's
//!   `uploadPart` until it is recorded, so the record names the copy R2 holds. The lease is
//!   short and renewed while the part's bytes flow ([`PART_LEASE_MS`]), so a sender whose
//!   client is gone gives the number up within seconds.
//! - One complete at a time, owned by a lease that dies with the Durable Object instance running
//!   it. A `completing` upload whose runner is gone is settled by asking R2 (see [`Facts::settle`]).
//! - R2 is the truth about objects: when R2 says a complete succeeded, the upload is completed.

use r2mpu_api::types::UploadStatus;
use r2mpu_api::ApiError;

/// R2 drops an unfinished multipart upload this long after it was created.
pub const R2_LIFETIME_MS: u64 = 7 * 24 * 3600 * 1000;
/// How long a complete may hold `completing` before another request may take over.
pub const COMPLETING_LEASE_MS: u64 = 120_000;
/// How far R2's upload time of an object may lag behind the clock of the complete that made it.
const CLOCK_SKEW_MS: u64 = 5_000;

/// A lease: who holds it (a token the machine hands out) and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub token: i64,
    pub until_ms: u64,
}

impl Lease {
    pub fn live(&self, now: u64) -> bool {
        now < self.until_ms
    }

    /// Whole seconds until the lease lapses, at least 1: a truthful `Retry-After`.
    pub fn seconds_left(&self, now: u64) -> u64 {
        self.until_ms.saturating_sub(now).div_ceil(1000).max(1)
    }
}

/// What a complete asked R2 for, so that its object can be recognised after a crash: the
/// object's size and part count, and when the first attempt began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub since_ms: u64,
    pub size: u64,
    pub part_numbers: Vec<u16>,
}

/// An object R2 holds under the upload's key, as `head` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub etag: String,
    pub size: u64,
    pub uploaded_ms: u64,
}

impl Seen {
    /// The part count of a multipart object, from its ETag's `-N` suffix.
    pub fn part_count(&self) -> Option<usize> {
        let (_, count) = self.etag.trim_matches('"').rsplit_once('-')?;
        count.parse().ok()
    }
}

/// The stored facts of one upload that its life cycle depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub status: UploadStatus,
    pub created_ms: u64,
    /// When the alarm acts: aborts an open upload, forgets a finished one.
    pub expires_ms: u64,
    /// The deployment's `UPLOAD_TTL` when the upload was last touched.
    pub ttl_ms: u64,
    /// The complete in charge while `completing`; `None` once it gave up without an answer.
    pub lease: Option<Lease>,
    /// The complete R2 was (or may have been) asked for.
    pub attempt: Option<Attempt>,
    /// The next lease token to hand out.
    pub next_token: i64,
}

/// What a complete does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// Already completed: answer with the object.
    Done,
    /// Another complete is running: wait for it.
    Wait,
    /// This complete holds the lease `token`; `attempt` is an earlier attempt to repeat.
    Go { token: i64, attempt: Option<Attempt> },
}

/// How R2 answered a complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum R2Complete {
    Completed(Seen),
    /// `NoSuchUpload`: completed before (by us?) or aborted (by R2?). Settle it.
    Gone,
    /// `InvalidPart`: R2 holds other bytes than a recorded part.
    InvalidPart,
    /// Anything else, including no answer: the outcome is unknown.
    Failed,
}

/// What to do with a `completing` upload whose runner is gone, or an upload R2 no longer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing more to do in R2.
    Nothing,
    /// Free the parts in R2 (mark first: already done).
    AbortInR2,
    /// Look at the object under the key (`head`) and call [`Facts::settle`] with it.
    Settle,
}

/// What the alarm does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alarm {
    /// Not yet: set the alarm again for this time.
    At(u64),
    /// Act as [`Next`] says, then set the alarm for `expires_ms`.
    Then(Next),
    /// The finished upload's time is up: forget it entirely.
    Forget,
}

/// The error a write to an upload in `status` gets, if any.
pub fn status_error(status: UploadStatus) -> Result<(), ApiError> {
    match status {
        UploadStatus::Open => Ok(()),
        UploadStatus::Completing => Err(ApiError::UploadCompleting),
        UploadStatus::Completed => Err(ApiError::UploadCompleted),
        UploadStatus::Aborted => Err(ApiError::UploadAborted),
    }
}

/// How long a part's sender holds its part number unless it renews it. A sender renews once half
/// of it has gone by, while its bytes flow and once all of them have passed, until it is recorded
/// (`upload::lease`): so a live request keeps its part however slow its link, and a request
/// whose client vanished or reset gives it up at most this long after its last byte, when a
/// re-send takes it over (issue 19: within 2 s). Every renewal is a Durable Object call: a part
/// that takes 4 s on a far link renews about 5 times, where a renewal every 250 ms made 16 calls
/// and cost the Worker more CPU than the part itself (issue 23).
pub const PART_LEASE_MS: u64 = 1_200;

/// `409 part_in_flight` while `held` is someone's lease, with the seconds it has left.
fn in_flight(part_number: u16, held: Option<Lease>, now: u64) -> ApiError {
    ApiError::PartInFlight { part_number, retry_after: held.map_or(1, |lease| lease.seconds_left(now)) }
}

impl Facts {
    /// A new open upload.
    pub fn new(now: u64, ttl_ms: u64) -> Facts {
        let mut facts = Facts {
            status: UploadStatus::Open,
            created_ms: now,
            expires_ms: 0,
            ttl_ms,
            lease: None,
            attempt: None,
            next_token: 1,
        };
        facts.touch(now, ttl_ms);
        facts
    }

    /// Activity pushes the deadline out by a TTL, never past R2's own end of the upload while it
    /// is unfinished.
    fn touch(&mut self, now: u64, ttl_ms: u64) {
        self.ttl_ms = ttl_ms;
        self.expires_ms = match self.status {
            UploadStatus::Open | UploadStatus::Completing => (now + ttl_ms).min(self.created_ms + R2_LIFETIME_MS),
            UploadStatus::Completed | UploadStatus::Aborted => now + ttl_ms,
        };
    }

    fn token(&mut self) -> i64 {
        let token = self.next_token;
        self.next_token += 1;
        token
    }

    /// Whether the complete in charge is still running: its lease is live and it runs in this
    /// very instance (`running`: the token of the complete this instance runs, if any).
    pub fn runner_alive(&self, running: Option<i64>, now: u64) -> bool {
        self.lease.is_some_and(|lease| lease.live(now) && running == Some(lease.token))
    }

    fn finish(&mut self, status: UploadStatus, now: u64) {
        self.status = status;
        self.lease = None;
        if status != UploadStatus::Completed {
            self.attempt = None;
        }
        self.touch(now, self.ttl_ms);
    }

    /// A part's sender asks for part `n`, of which `held` is the current lease (if any): a live
    /// one refuses it, a lapsed one is taken over (its sender learns so when it next renews).
    pub fn begin_part(&mut self, part_number: u16, held: Option<Lease>, now: u64) -> Result<Lease, ApiError> {
        status_error(self.status)?;
        if held.is_some_and(|lease| lease.live(now)) {
            return Err(in_flight(part_number, held, now));
        }
        Ok(Lease { token: self.token(), until_ms: now + PART_LEASE_MS })
    }

    /// The sender holding `token` on part `n` is still moving bytes: its lease runs on, lapsed
    /// or not, unless another sender took it over meanwhile; then it is lost for good, and its
    /// copy must not reach R2 whole. A finished upload takes no more bytes.
    pub fn renew_part(&self, part_number: u16, token: i64, held: Option<Lease>, now: u64) -> Result<Lease, ApiError> {
        match self.status {
            UploadStatus::Open | UploadStatus::Completing => {}
            finished => status_error(finished)?,
        }
        match held {
            Some(lease) if lease.token == token => Ok(Lease { token, until_ms: now + PART_LEASE_MS }),
            other => Err(in_flight(part_number, other, now)),
        }
    }

    /// R2 took the part sent under `token`: record it if the lease is still the sender's. An
    /// upload that became `completing` meanwhile still takes it (its complete waits for parts in
    /// flight); a finished one does not.
    pub fn record_part(
        &mut self,
        part_number: u16,
        token: i64,
        held: Option<Lease>,
        ttl_ms: u64,
        now: u64,
    ) -> Result<(), ApiError> {
        match self.status {
            UploadStatus::Open | UploadStatus::Completing => {}
            finished => status_error(finished)?,
        }
        if held.map(|lease| lease.token) != Some(token) {
            return Err(in_flight(part_number, held, now));
        }
        if self.status == UploadStatus::Open {
            self.touch(now, ttl_ms);
        }
        Ok(())
    }

    /// A part sent straight to R2 with a URL signed here is reported (`held`: the part's
    /// lease, if a copy is coming through the Worker). Only an open upload takes it: a complete
    /// under way has already chosen its parts. A live lease refuses it, since that copy's bytes
    /// are on their way to R2 and will be the ones R2 keeps; a lapsed one does not matter.
    pub fn report_part(
        &mut self,
        part_number: u16,
        held: Option<Lease>,
        ttl_ms: u64,
        now: u64,
    ) -> Result<(), ApiError> {
        status_error(self.status)?;
        if held.is_some_and(|lease| lease.live(now)) {
            return Err(in_flight(part_number, held, now));
        }
        self.touch(now, ttl_ms);
        Ok(())
    }

    /// An append's parts and offset are about to be recorded: only an open upload takes them,
    /// and the activity pushes its deadline out.
    pub fn append(&mut self, ttl_ms: u64, now: u64) -> Result<(), ApiError> {
        status_error(self.status)?;
        self.touch(now, ttl_ms);
        Ok(())
    }

    /// A complete arrives (`running`: see [`Facts::runner_alive`]).
    pub fn begin_complete(&mut self, running: Option<i64>, now: u64) -> Result<Begin, ApiError> {
        match self.status {
            UploadStatus::Completed => Ok(Begin::Done),
            UploadStatus::Aborted => Err(ApiError::UploadAborted),
            UploadStatus::Completing if self.runner_alive(running, now) => Ok(Begin::Wait),
            UploadStatus::Open | UploadStatus::Completing => {
                let token = self.token();
                self.status = UploadStatus::Completing;
                self.lease = Some(Lease { token, until_ms: now + COMPLETING_LEASE_MS });
                Ok(Begin::Go { token, attempt: self.attempt.clone() })
            }
        }
    }

    /// The complete holding `token` gives up before asking R2 (a part was missing, or a part
    /// stayed in flight): the upload is open again.
    pub fn release_complete(&mut self, token: i64) -> bool {
        if self.status != UploadStatus::Completing || self.lease.map(|l| l.token) != Some(token) {
            return false;
        }
        self.status = UploadStatus::Open;
        self.lease = None;
        true
    }

    /// The complete holding `token` is about to ask R2 for `attempt`: remember it first.
    pub fn plan(&mut self, token: i64, attempt: Attempt) -> bool {
        if self.status != UploadStatus::Completing || self.lease.map(|l| l.token) != Some(token) {
            return false;
        }
        self.attempt = Some(attempt);
        true
    }

    /// R2 answered the complete holding `token`. What R2 says happened, happened: a completed
    /// object completes the upload whoever holds the lease now.
    pub fn finish_complete(&mut self, token: i64, answer: &R2Complete, now: u64) -> Result<Next, ApiError> {
        let ours = self.status == UploadStatus::Completing && self.lease.map(|l| l.token) == Some(token);
        match answer {
            R2Complete::Completed(_) => {
                self.finish(UploadStatus::Completed, now);
                Ok(Next::Nothing)
            }
            // Another complete took over meanwhile: it answers for the upload.
            _ if !ours => match self.status {
                UploadStatus::Completed => Ok(Next::Nothing),
                status => Err(status_error(status).err().unwrap_or(ApiError::UploadCompleting)),
            },
            R2Complete::Gone => Ok(Next::Settle),
            R2Complete::InvalidPart => {
                let parts = self.attempt.take().map(|a| a.part_numbers).unwrap_or_default();
                self.status = UploadStatus::Open;
                self.lease = None;
                Err(ApiError::PartsRejected { part_numbers: parts })
            }
            R2Complete::Failed => {
                // Unknown outcome: stay `completing` (R2 may have completed), runner gone, so
                // that the next complete, abort or alarm settles it.
                self.lease = None;
                Err(ApiError::Internal)
            }
        }
    }

    /// R2 no longer knows the multipart upload, and `seen` is what its key holds. If it is the
    /// object our attempt asked for (same size, same part count, uploaded after the attempt
    /// began), the upload completed; otherwise it is gone for good: aborted.
    pub fn settle(&mut self, seen: Option<&Seen>, now: u64) -> UploadStatus {
        let ours = match (&self.attempt, seen) {
            (Some(attempt), Some(seen)) => {
                seen.size == attempt.size
                    && seen.part_count() == Some(attempt.part_numbers.len())
                    && seen.uploaded_ms + CLOCK_SKEW_MS >= attempt.since_ms
            }
            _ => false,
        };
        let status = if ours { UploadStatus::Completed } else { UploadStatus::Aborted };
        self.finish(status, now);
        status
    }

    /// The owner aborts.
    pub fn abort(&mut self, running: Option<i64>, now: u64) -> Result<Next, ApiError> {
        match self.status {
            UploadStatus::Aborted => Ok(Next::Nothing),
            UploadStatus::Completed => Err(ApiError::UploadCompleted),
            UploadStatus::Completing if self.runner_alive(running, now) => Err(ApiError::UploadCompleting),
            UploadStatus::Completing => Ok(Next::Settle),
            UploadStatus::Open => {
                self.finish(UploadStatus::Aborted, now);
                Ok(Next::AbortInR2)
            }
        }
    }

    /// A part met R2's `NoSuchUpload`: R2 ended the upload (its 7 days ran out), or a complete
    /// whose answer we lost finished it.
    pub fn r2_gone(&mut self, running: Option<i64>, now: u64) -> Result<Next, ApiError> {
        match self.status {
            UploadStatus::Completing if self.runner_alive(running, now) => Err(ApiError::UploadCompleting),
            UploadStatus::Open if self.attempt.is_none() => {
                self.finish(UploadStatus::Aborted, now);
                Ok(Next::Nothing)
            }
            UploadStatus::Open | UploadStatus::Completing => Ok(Next::Settle),
            finished => status_error(finished).map(|_| Next::Nothing),
        }
    }

    /// The alarm fires.
    pub fn alarm(&mut self, running: Option<i64>, now: u64) -> Alarm {
        if now < self.expires_ms {
            return Alarm::At(self.expires_ms);
        }
        match self.status {
            UploadStatus::Open => {
                self.finish(UploadStatus::Aborted, now);
                Alarm::Then(Next::AbortInR2)
            }
            UploadStatus::Completing if self.runner_alive(running, now) => {
                Alarm::At(self.lease.map_or(now + COMPLETING_LEASE_MS, |l| l.until_ms))
            }
            UploadStatus::Completing => Alarm::Then(Next::Settle),
            UploadStatus::Completed | UploadStatus::Aborted => Alarm::Forget,
        }
    }
}

#[cfg(test)]
mod tests;
