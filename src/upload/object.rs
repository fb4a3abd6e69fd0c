//! The `UploadState` Durable Object, one per upload: it holds what R2's Worker binding cannot
//! tell us (which parts arrived, with their ETags and sizes) and owns the upload's life cycle:
//! open → completing → completed, or open → aborted. Part bodies never pass through here; the
//! Worker streams them to R2 under a lease on the part number and then records the part.
//!
//! This is the shell around [`super::machine`]: it loads the machine's facts from the row, asks
//! the machine, writes the outcome back with a compare-and-set, and only then acts on R2 or the
//! alarm. This file receives the calls and the alarm; each concern has its own file beside it:
//! `create`, `parts`, `complete`, `appendable` (tus and the
//! draft), `lifecycle` (abort, settling, the alarm's work, the index), and
//! `rows` (the tables and every SQL statement).
//!
//! Requests come from the Worker only, as one JSON envelope per call: who is asking and the
//! [`Command`]. The object answers with a problem document, or: for the part commands, what the
//! part's sender needs and no more (a `PartGrant`, or `null`), so that a part's calls cost the
//! same at part 10,000 as at part 1; for the others, the upload's `Record`.

use std::cell::Cell;

use worker::{durable_object, Bucket, Date, DurableObject, Env, Request, Response, State};

use crate::error::{ApiError, ApiResult, OrInternal};
use crate::faults::Faults;
use crate::upload::command::{Command, Envelope, Reply};
use crate::upload::machine::{Alarm, Next};

#[durable_object]
pub struct UploadState {
    pub(super) state: State,
    pub(super) env: Env,
    /// The lease token of the complete this instance is running, if any. It dies with the
    /// instance, which is how a later request knows a `completing` upload's runner is gone.
    pub(super) running: Cell<Option<i64>>,
    /// Whether the tables exist: `deleteAll()` drops them when a record is forgotten.
    pub(super) schema_ready: Cell<bool>,
}

impl DurableObject for UploadState {
    fn new(state: State, env: Env) -> Self {
        UploadState { state, env, running: Cell::new(None), schema_ready: Cell::new(false) }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        // As text, parsed in wasm: one string across, where `Request::json` walks the parsed
        // object field by field.
        let envelope: Envelope = serde_json::from_str(&req.text().await?)?;
        let may_finish = envelope.command.may_finish();
        let before = if may_finish { self.row().ok().flatten() } else { None };
        let applied = self.apply(envelope).await;
        if may_finish {
            self.unlist_later_if_finished(before.as_ref());
        }
        // Errors travel to the Worker as the bare ApiError; the Worker renders the problem.
        Ok(match applied {
            Ok(record) => Response::from_json(&record)?,
            Err(error) => Response::from_json(&error)?.with_status(error.status()),
        })
    }

    /// Aborts an upload left idle past its TTL and frees its parts in R2; settles one whose
    /// complete lost its runner; forgets a finished upload entirely once its TTL has passed again.
    async fn alarm(&self) -> worker::Result<Response> {
        crate::index::retry_pending(&self.state, &self.env).await;
        let failed = |e: ApiError| worker::Error::RustError(e.to_string());
        let Some(row) = self.row().map_err(failed)? else {
            return Response::empty();
        };
        if self.finish_appended(&row).await.map_err(failed)? {
            self.unlist_if_finished(Some(&row)).await;
            return Response::empty();
        }
        let Some(row) = self.row().map_err(failed)? else {
            return Response::empty();
        };
        let mut facts = row.facts();
        let before = facts.clone();
        let now = now_ms();
        let decision = facts.alarm(self.running.get(), now);
        crate::faults::alarm_fired(&row.upload_id, now >= before.expires_ms, &decision);
        match decision {
            Alarm::At(when) => self.alarm_at(when).await.map_err(failed)?,
            Alarm::Then(Next::AbortInR2) => {
                self.save(&before, &facts, None).map_err(failed)?;
                self.abort_in_r2(&row).await;
                self.alarm_at(facts.expires_ms).await.map_err(failed)?;
            }
            Alarm::Then(Next::Settle) => {
                self.settle(&row, &Faults::default()).await.map_err(failed)?;
            }
            Alarm::Then(Next::Nothing) => {}
            Alarm::Forget => self.forget().await?,
        }
        self.unlist_if_finished(Some(&row)).await;
        Response::empty()
    }
}

impl UploadState {
    async fn apply(&self, Envelope { caller, command, faults }: Envelope) -> ApiResult<Reply> {
        if let Command::Create(new) = command {
            return self.create(caller, new, &faults).await.map(Reply::from);
        }
        let row = self.row()?.ok_or(ApiError::UploadNotFound)?;
        if row.owner != caller.sub || caller.key.as_ref().is_some_and(|key| *key != row.key) {
            return Err(ApiError::UploadNotFound);
        }
        if let Some(prefix) = &caller.prefix {
            if !row.key.starts_with(prefix.as_str()) {
                return Err(ApiError::KeyOutsidePrefix { prefix: prefix.clone() });
            }
        }
        let record = match command {
            Command::Create(_) => unreachable!("handled above"),
            Command::BeginPart { part_number, length } => return self.begin_part(row, part_number, length),
            Command::RecordPart { part, token, ttl_ms } => return self.record_part(row, part, token, ttl_ms).await,
            Command::RenewPart { part_number, token } => return self.renew_part(row, part_number, token),
            Command::EndPart { part_number, token, forget } => return self.end_part(part_number, token, forget),
            Command::SignParts { parts } => return self.sign_parts(row, &parts),
            Command::ReportPart { part_number, etag, md5, ttl_ms } => {
                return self.report_part(part_number, etag, md5, ttl_ms).await
            }
            Command::Get => self.record(),
            Command::R2Gone => self.r2_gone(row, &faults).await,
            Command::Complete { parts, ttl_ms } => self.complete(parts, ttl_ms, &faults).await,
            Command::Abort { ttl_ms } => self.abort(row, ttl_ms, &faults).await,
            Command::OpenAppends => self.open_appends(),
            Command::DeclareLength { size } => self.declare_length(row, size),
            Command::Append { from, to, parts, tail, ttl_ms } => {
                self.append(row, from..to, parts, tail, ttl_ms, &faults).await
            }
            Command::FitParts { part_size } => self.fit_parts(row, part_size),
        };
        record.map(Reply::from)
    }

    pub(super) fn bucket(&self) -> ApiResult<Bucket> {
        self.env.bucket("BUCKET").or_internal("BUCKET binding")
    }
}

/// Marks this instance as running the complete holding `token` until dropped (also when the
/// request is cancelled mid-way).
pub(super) struct Running<'a> {
    cell: &'a Cell<Option<i64>>,
    token: i64,
}

impl<'a> Running<'a> {
    pub(super) fn start(cell: &'a Cell<Option<i64>>, token: i64) -> Running<'a> {
        cell.set(Some(token));
        Running { cell, token }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if self.cell.get() == Some(self.token) {
            self.cell.set(None);
        }
    }
}

pub(super) fn now_ms() -> u64 {
    Date::now().as_millis()
}
