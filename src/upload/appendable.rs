//! The commands of an appendable upload (tus and the IETF draft): `OpenAppends`,
//! `DeclareLength`, `FitParts` and `Append`, which records what the append engine
//! ([`super::append`]) sent to R2, all at once.

use std::ops::Range;

use r2mpu_api::layout::Layout;
use r2mpu_api::types::Part;

use crate::error::{ApiError, ApiResult};
use crate::faults::Faults;
use crate::upload::command::Record;
use crate::upload::machine;
use crate::upload::object::{now_ms, UploadState};
use crate::upload::rows::UploadRow;

impl UploadState {
    pub(super) fn open_appends(&self) -> ApiResult<Record> {
        if self.appends()?.is_none() && self.parts()?.is_empty() {
            self.sql("INSERT INTO appends (id, offset, tail_size) VALUES (1, 0, 0)", vec![])?;
        }
        self.record()
    }

    /// Sets a deferred length once; the same length again is fine.
    pub(super) fn declare_length(&self, row: UploadRow, size: u64) -> ApiResult<Record> {
        machine::status_error(row.facts().status)?;
        let appends = self.appends()?.ok_or(ApiError::UploadNotFound)?;
        match row.size.map(|s| s as u64) {
            Some(declared) if declared == size => {}
            Some(_) => return Err(ApiError::invalid_field("Upload-Length", "the upload's length is already set")),
            None if size < appends.offset => return Err(ApiError::BeyondLength { size }),
            None => {
                Layout::plan(Some(size), Some(row.part_size as u64), u64::MAX)?;
                self.sql("UPDATE upload SET size = ? WHERE id = 1", vec![(size as i64).into()])?;
            }
        }
        self.record()
    }

    /// Sets the part size of an appendable upload that holds nothing yet; otherwise leaves it,
    /// and the append that asked goes on with the recorded one (the answer tells it which).
    pub(super) fn fit_parts(&self, row: UploadRow, part_size: u64) -> ApiResult<Record> {
        machine::status_error(row.facts().status)?;
        let appends = self.appends()?.ok_or(ApiError::UploadNotFound)?;
        let size = row.size.map(|s| s as u64);
        let empty = appends.offset == 0 && self.parts()?.is_empty() && self.part_in_flight()?.is_none();
        if empty && Layout::plan(size, Some(part_size), u64::MAX).is_ok() {
            self.sql("UPDATE upload SET part_size = ? WHERE id = 1", vec![(part_size as i64).into()])?;
        }
        self.record()
    }

    /// Records an append all at once, if the offset is still where it began and each part's
    /// lease is still its sender's. The old tail's key comes back in the record's `appends`
    /// only if it is still the current tail (then nothing was recorded).
    pub(super) async fn append(
        &self,
        row: UploadRow,
        Range { start: from, end: to }: Range<u64>,
        parts: Vec<(Part, i64)>,
        tail: Option<(String, u64)>,
        ttl_ms: u64,
        faults: &Faults,
    ) -> ApiResult<Record> {
        let appends = self.appends()?.ok_or(ApiError::UploadNotFound)?;
        let mut facts = row.facts();
        let before = facts.clone();
        facts.append(ttl_ms, now_ms())?;
        if appends.offset != from {
            return Err(ApiError::OffsetMismatch { expected_offset: appends.offset, provided_offset: from });
        }
        for (part, token) in &parts {
            if self.part_lease(part.part_number)?.map(|l| l.token) != Some(*token) {
                return Err(ApiError::PartInFlight { part_number: part.part_number, retry_after: 1 });
            }
        }
        self.save(&before, &facts, None)?;
        for (part, _) in parts {
            let number = i64::from(part.part_number);
            self.sql(
                "INSERT INTO parts (part_number, etag, size) VALUES (?, ?, ?)
                 ON CONFLICT (part_number) DO UPDATE SET etag = excluded.etag, size = excluded.size",
                vec![number.into(), part.etag.into(), (part.size as i64).into()],
            )?;
            self.sql("DELETE FROM part_leases WHERE part_number = ?", vec![number.into()])?;
        }
        let (tail_key, tail_size) = tail.map_or((None, 0), |(key, size)| (Some(key), size as i64));
        self.sql(
            "UPDATE appends SET offset = ?, tail_key = ?, tail_size = ? WHERE id = 1",
            vec![(to as i64).into(), tail_key.into(), tail_size.into()],
        )?;
        if row.size.is_some_and(|size| size as u64 == to) {
            // The last byte: the Worker completes the upload next. Should that fail, the alarm
            // finishes it soon ([`UploadState::finish_appended`]), not at the deadline.
            self.alarm_at(facts.expires_ms.min(now_ms() + machine::COMPLETING_LEASE_MS)).await?;
        } else if facts.expires_ms != before.expires_ms {
            self.alarm_at(facts.expires_ms).await?;
        }
        faults.at("append.after-record").await?;
        self.record()
    }
}
