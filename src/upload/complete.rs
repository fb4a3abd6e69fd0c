//! `Complete`: once in R2, whoever asks and however often. A second complete waits for the first
//! and gets the same object; a complete whose runner died is taken over and repeats exactly the
//! attempt it had written down.

use std::time::Duration;

use r2mpu_api::layout::Layout;
use r2mpu_api::types::{Part, PartRef, UploadStatus};
use worker::{Delay, UploadedPart};

use crate::error::{ApiError, ApiResult, OrInternal};
use crate::faults::{Action, Faults};
use crate::upload::command::Record;
use crate::upload::machine::{self, Attempt, Begin, Next, R2Complete};
use crate::upload::object::{now_ms, Running, UploadState};
use crate::upload::r2::{classify_complete_error, seen};
use crate::upload::rows::UploadRow;

/// How long a complete may wait for a concurrent one, or for parts in flight, before giving up
/// with `upload_completing` or `part_in_flight`.
const COMPLETE_WAIT: Duration = Duration::from_secs(30);

impl UploadState {
    /// Completes in R2 once, whoever asks and however often: a second complete waits for the
    /// first and gets the same object; a complete whose runner died is taken over and repeated.
    pub(super) async fn complete(
        &self,
        listed: Option<Vec<PartRef>>,
        ttl_ms: u64,
        faults: &Faults,
    ) -> ApiResult<Record> {
        // A tus upload's bytes past its last full part wait in a tail object, not in R2's
        // multipart upload: completing now would leave them out. Its last PATCH completes it.
        if self.appends()?.is_some_and(|appends| appends.tail_size > 0) {
            let fed_by_tus = "this upload is fed by tus appends; its last PATCH completes it";
            return Err(ApiError::invalid_field("uploadId", fed_by_tus));
        }
        let deadline = now_ms() + COMPLETE_WAIT.as_millis() as u64;
        // A first complete that cannot succeed fails before it holds up anyone, unless parts
        // are still on their way (then it waits for them, below).
        let first = self.row()?.ok_or(ApiError::UploadNotFound)?;
        let first_attempt = first.status == "open" && first.attempt_parts.is_none();
        // Parts the list names that were sent straight to R2 and never reported count as
        // reported now (see `adopt_listed`); a running complete's attempt is already fixed.
        if let (true, Some(listed)) = (first_attempt, &listed) {
            if let Some(expires_ms) = self.adopt_listed(listed, ttl_ms)? {
                self.alarm_at(expires_ms).await?;
            }
        }
        if first_attempt && self.part_in_flight()?.is_none() {
            self.plan_attempt(&first, &self.parts()?, listed.clone())?;
        }
        let (row, token, attempt) = loop {
            let row = self.row()?.ok_or(ApiError::UploadNotFound)?;
            let mut facts = row.facts();
            facts.ttl_ms = ttl_ms;
            let before = facts.clone();
            match facts.begin_complete(self.running.get(), now_ms())? {
                Begin::Done => return self.record(),
                Begin::Wait if now_ms() > deadline => return Err(ApiError::UploadCompleting),
                Begin::Wait => Delay::from(Duration::from_millis(100)).await,
                Begin::Go { token, attempt } => {
                    self.save(&before, &facts, None)?;
                    break (row, token, attempt);
                }
            }
        };
        let _running = Running::start(&self.running, token);

        // Parts already on their way to R2 were sent while the upload was open: wait for them.
        while let Some(part_number) = self.part_in_flight()? {
            if now_ms() > deadline {
                self.release_complete(token)?;
                return Err(ApiError::PartInFlight { part_number, retry_after: 1 });
            }
            Delay::from(Duration::from_millis(100)).await;
        }
        let recorded = self.parts()?;
        let attempt = match attempt {
            // A complete whose runner died: repeat exactly what it asked R2 for.
            Some(attempt) => attempt,
            None => match self.plan_attempt(&row, &recorded, listed) {
                Ok(attempt) => attempt,
                Err(e) => {
                    self.release_complete(token)?;
                    return Err(e);
                }
            },
        };
        let mut facts = self.facts()?;
        let before = facts.clone();
        if !facts.plan(token, attempt.clone()) {
            return self.lost();
        }
        self.save(&before, &facts, None)?;
        faults.at("complete.before-r2").await?;
        self.r2_forget_if_asked(&row, faults).await?;
        if let Some(Action::Part(n)) = faults.at("r2.overwrite").await? {
            let size = recorded.iter().find(|p| p.part_number == n).map_or(0, |p| p.size as usize);
            let multipart = self.bucket()?.resume_multipart_upload(row.key.clone(), row.r2_upload_id.clone());
            let multipart = multipart.or_internal("R2 resumeMultipartUpload")?;
            multipart.upload_part(n, worker::Data::Bytes(vec![0; size])).await.or_internal("R2 uploadPart")?;
        }

        let uploaded: Vec<UploadedPart> = attempt
            .part_numbers
            .iter()
            .filter_map(|n| recorded.iter().find(|p| p.part_number == *n))
            .map(|p| UploadedPart::new(p.part_number, p.etag.clone()))
            .collect();
        if uploaded.len() != attempt.part_numbers.len() {
            // Never complete another object than the attempt names.
            return Err(crate::error::internal("complete", "a part of the attempt is no longer recorded"));
        }
        let answer = match faults.r2("complete").await {
            Err(_) => R2Complete::Failed,
            Ok(()) => match self.bucket()?.resume_multipart_upload(row.key.clone(), row.r2_upload_id.clone()) {
                Ok(multipart) => match multipart.complete(uploaded).await {
                    Ok(object) => R2Complete::Completed(seen(&object)),
                    Err(e) => classify_complete_error(&e.to_string()),
                },
                Err(e) => classify_complete_error(&e.to_string()),
            },
        };
        if let R2Complete::Completed(_) = answer {
            // As if this instance died here: nothing more is written, and nobody runs it.
            faults.at("complete.after-r2").await?;
        }
        let mut facts = self.facts()?;
        let before = facts.clone();
        let object = match &answer {
            R2Complete::Completed(seen) => Some(seen),
            _ => None,
        };
        match facts.finish_complete(token, &answer, now_ms()) {
            Ok(Next::Settle) => match self.settle(&row, faults).await? {
                UploadStatus::Completed => self.record(),
                _ => Err(ApiError::UploadAborted),
            },
            Ok(_) => {
                self.save(&before, &facts, object)?;
                self.alarm_at(facts.expires_ms).await?;
                self.record()
            }
            // R2's failure was logged where it was classified.
            Err(e) => {
                self.save(&before, &facts, None)?;
                Err(e)
            }
        }
    }

    /// The attempt a first complete makes: the recorded parts, or the client's list checked
    /// against them, in the upload's layout.
    pub(super) fn plan_attempt(
        &self,
        row: &UploadRow,
        recorded: &[Part],
        listed: Option<Vec<PartRef>>,
    ) -> ApiResult<Attempt> {
        let chosen = choose_parts(recorded, listed)?;
        let layout = Layout { part_size: row.part_size as u64, size: row.size.map(|s| s as u64) };
        let sizes: Vec<(u16, u64)> = chosen.iter().map(|p| (p.part_number, p.size)).collect();
        layout.check_complete(&sizes)?;
        Ok(Attempt {
            since_ms: now_ms(),
            size: chosen.iter().map(|p| p.size).sum(),
            part_numbers: chosen.iter().map(|p| p.part_number).collect(),
        })
    }

    pub(super) fn release_complete(&self, token: i64) -> ApiResult<()> {
        let mut facts = self.facts()?;
        let before = facts.clone();
        if facts.release_complete(token) {
            self.save(&before, &facts, None)?;
        }
        Ok(())
    }

    /// Another request took this complete over: answer with the upload's true state.
    pub(super) fn lost(&self) -> ApiResult<Record> {
        let record = self.record()?;
        match record.upload.status {
            UploadStatus::Completed => Ok(record),
            status => machine::status_error(status).and(Err(ApiError::UploadCompleting)),
        }
    }
}

/// The parts to complete with: all recorded ones, or the client's list checked against them.
fn choose_parts(recorded: &[Part], listed: Option<Vec<PartRef>>) -> ApiResult<Vec<Part>> {
    let Some(mut listed) = listed else {
        return Ok(recorded.to_vec());
    };
    listed.sort_by_key(|p| p.part_number);
    let mut chosen: Vec<Part> = Vec::with_capacity(listed.len());
    for wanted in listed {
        if chosen.last().is_some_and(|p| p.part_number == wanted.part_number) {
            return Err(ApiError::DuplicatePart { part_number: wanted.part_number });
        }
        let part = recorded
            .iter()
            .find(|p| p.part_number == wanted.part_number)
            .ok_or(ApiError::PartNotUploaded { part_number: wanted.part_number })?;
        if part.etag.trim_matches('"') != wanted.etag.trim_matches('"') {
            return Err(ApiError::EtagMismatch { part_number: wanted.part_number });
        }
        chosen.push(part.clone());
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: u16, etag: &str) -> Part {
        Part { part_number: n, etag: etag.into(), size: 5, md5: None }
    }

    fn listed(n: u16, etag: &str) -> PartRef {
        PartRef { part_number: n, etag: etag.into() }
    }

    #[test]
    fn without_a_list_every_recorded_part_is_used() {
        let recorded = vec![part(1, "a"), part(2, "b")];
        assert_eq!(choose_parts(&recorded, None), Ok(recorded.clone()));
    }

    #[test]
    fn a_listed_part_must_have_been_recorded_with_the_same_etag_and_only_once() {
        let recorded = vec![part(1, "a"), part(2, "b")];
        assert_eq!(choose_parts(&recorded, Some(vec![listed(2, "\"b\""), listed(1, "a")])), Ok(recorded.clone()));
        assert_eq!(
            choose_parts(&recorded, Some(vec![listed(3, "c")])),
            Err(ApiError::PartNotUploaded { part_number: 3 })
        );
        assert_eq!(choose_parts(&recorded, Some(vec![listed(1, "x")])), Err(ApiError::EtagMismatch { part_number: 1 }));
        assert_eq!(
            choose_parts(&recorded, Some(vec![listed(1, "a"), listed(1, "a")])),
            Err(ApiError::DuplicatePart { part_number: 1 })
        );
    }
}
