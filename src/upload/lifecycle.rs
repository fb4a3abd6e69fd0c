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

    pub(super) async fn alarm_at(&self, when_ms: u64) -> ApiResult<()> {
        let wait = when_ms.saturating_sub(now_ms()).max(1);
        self.state.storage().set_alarm(Duration::from_millis(wait)).await.or_internal("set alarm")
    }
}
