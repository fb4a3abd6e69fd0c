//! How an upload ends and what follows: `Abort`, settling an upload whose complete lost its
//! runner (R2's object decides), freeing R2's parts and a tus tail, the alarm, and telling the
//! owner's index ([`crate::index`]) when an upload is finished.

use std::time::Duration;

use r2mpu_api::types::UploadStatus;
use worker::State;

use crate::error::{ApiError, ApiResult, OrInternal};
use crate::faults::{Action, Faults};
use crate::upload::command::{Appends, Record};
use crate::upload::machine::Next;
use crate::upload::object::{now_ms, UploadState};
use crate::upload::r2::seen;
use crate::upload::rows::{parse_status, UploadRow};

impl UploadState {
    pub(super) async fn abort(&self, row: UploadRow, ttl_ms: u64, faults: &Faults) -> ApiResult<Record> {
        let mut facts = row.facts();
        facts.ttl_ms = ttl_ms;
        let before = facts.clone();
        match facts.abort(self.running.get(), now_ms())? {
            Next::AbortInR2 => {
                self.save(&before, &facts, None)?;
                self.abort_in_r2(&row).await;
                self.alarm_at(facts.expires_ms).await?;
            }
            Next::Settle => {
                if self.settle(&row, faults).await? == UploadStatus::Completed {
                    return Err(ApiError::UploadCompleted);
                }
            }
            Next::Nothing => {}
        }
        self.record()
    }

    /// R2 no longer has the multipart upload, or nobody knows whether a complete reached it:
    /// look at the key's object and let the machine decide; free R2's parts if it is aborted.
    pub(super) async fn settle(&self, row: &UploadRow, faults: &Faults) -> ApiResult<UploadStatus> {
        faults.r2("head").await?;
        let head = self.bucket()?.head(row.key.clone()).await.or_internal("R2 head")?;
        let seen = head.as_ref().map(seen);
        let mut facts = self.facts()?;
        let before = facts.clone();
        let status = facts.settle(seen.as_ref(), now_ms());
        self.save(&before, &facts, seen.as_ref().filter(|_| status == UploadStatus::Completed))?;
        if status == UploadStatus::Aborted {
            self.abort_in_r2(row).await;
        }
        self.alarm_at(facts.expires_ms).await?;
        Ok(status)
    }

    /// Frees the parts in R2. Failure is logged, not raised: the upload is aborted for us either
    /// way, and R2 itself drops unfinished uploads after seven days.
    pub(super) async fn abort_in_r2(&self, row: &UploadRow) {
        let result = match self.bucket() {
            Ok(bucket) => match bucket.resume_multipart_upload(row.key.clone(), row.r2_upload_id.clone()) {
                Ok(multipart) => multipart.abort().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = result {
            worker::console_warn!("R2 abort of {}: {e}", row.upload_id);
        }
        // A tus upload's bytes past its last full part wait in a temporary object: free it too.
        if let (Ok(Some(Appends { tail_key: Some(tail), .. })), Ok(bucket)) = (self.appends(), self.bucket()) {
            if let Err(e) = bucket.delete(tail).await {
                worker::console_warn!("deleting the tus tail of {}: {e}", row.upload_id);
            }
        }
    }

    /// Whether the upload is an appendable one (tus, the draft) holding every byte of its length,
    /// no tail, and not completed: the complete its last append asked for failed.
    pub(super) fn appended_in_full(&self, row: &UploadRow) -> ApiResult<bool> {
        let unfinished = matches!(parse_status(&row.status), UploadStatus::Open | UploadStatus::Completing);
        let size = row.size.map(|s| s as u64);
        Ok(unfinished && self.appends()?.is_some_and(|a| Some(a.offset) == size && a.tail_size == 0))
    }

    /// From the alarm: completes an upload [appended in full](UploadState::appended_in_full) whose
    /// complete has no runner, as a repeated complete does, instead of aborting it at its
    /// deadline: its client sent everything. Answers whether it is completed now; if not (R2
    /// refused or failed again) the alarm goes on as for any upload.
    pub(super) async fn finish_appended(&self, row: &UploadRow) -> ApiResult<bool> {
        if !self.appended_in_full(row)? || row.facts().runner_alive(self.running.get(), now_ms()) {
            return Ok(false);
        }
        match self.complete(None, row.ttl_ms as u64, &Faults::default()).await {
            Ok(record) => Ok(record.upload.status == UploadStatus::Completed),
            Err(e) => {
                crate::error::cause("the alarm's complete of an upload appended in full", &e);
                Ok(false)
            }
        }
    }

    /// Test builds: `r2.forget=now` makes R2 drop the multipart upload behind our back.
    pub(super) async fn r2_forget_if_asked(&self, row: &UploadRow, faults: &Faults) -> ApiResult<()> {
        if faults.at("r2.forget").await? == Some(Action::Now) {
            self.abort_in_r2(row).await;
        }
        Ok(())
    }

    /// Tells the owner's upload index ([`crate::index`]) to stop listing this upload once a
    /// command or the alarm took it from unfinished (`before`) to completed or aborted. Every
    /// status change goes through [`UploadState::save`]; this runs after each of them.
    pub(super) async fn unlist_if_finished(&self, before: Option<&UploadRow>) {
        if let Some((owner, upload_id)) = self.newly_finished(before) {
            crate::index::finished(&self.state, &self.env, &owner, &upload_id).await;
        }
    }

    /// [`UploadState::unlist_if_finished`] after the answer has gone out, so that a complete or
    /// an abort does not wait for a second Durable Object. Safe because a listing never trusts
    /// the index alone: it asks each listed upload's own object and hides (and unlists) those
    /// that are finished, so an entry removed a moment late, or never (a crash), is never shown.
    pub(super) fn unlist_later_if_finished(&self, before: Option<&UploadRow>) {
        if let Some((owner, upload_id)) = self.newly_finished(before) {
            use wasm_bindgen::JsCast;
            let raw: &wasm_bindgen::JsValue = self.state.as_raw().as_ref();
            let (state, env) =
                (State::from(raw.clone().unchecked_into::<worker::worker_sys::DurableObjectState>()), self.env.clone());
            self.state.wait_until(async move { crate::index::finished(&state, &env, &owner, &upload_id).await });
        }
    }

    /// The owner and id of the upload if `before` shows it unfinished and its row now finished.
    pub(super) fn newly_finished(&self, before: Option<&UploadRow>) -> Option<(String, String)> {
        let unfinished =
            |row: &UploadRow| matches!(parse_status(&row.status), UploadStatus::Open | UploadStatus::Completing);
        let before = before.filter(|row| unfinished(row))?;
        let finished = self.row().ok().flatten().is_some_and(|now| !unfinished(&now));
        finished.then(|| (before.owner.clone(), before.upload_id.clone()))
    }

    /// Sets the alarm for `when_ms`, or sooner while an index update is owed: its retry
    /// ([`crate::index::RETRY_MS`] ahead) is never put off to the upload's own deadline (the
    /// create that failed to list an upload would otherwise have it listed one TTL later).
    pub(super) async fn alarm_at(&self, when_ms: u64) -> ApiResult<()> {
        let when_ms = match crate::index::pending(&self.state).await {
            true => when_ms.min(now_ms() + crate::index::RETRY_MS),
            false => when_ms,
        };
        let wait = when_ms.saturating_sub(now_ms()).max(1);
        self.state.storage().set_alarm(Duration::from_millis(wait)).await.or_internal("set alarm")
    }
}
