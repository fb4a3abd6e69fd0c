//! The part commands: `BeginPart` leases a part number, `RenewPart` keeps the lease while the
//! part's bytes flow, `RecordPart` records what R2 took under the lease, `EndPart` gives it back; `R2Gone` when R2 no longer knows the upload. Each touches
//! the upload's row and the part's rows only, so a part costs the same at part 10,000 as at 1.

use r2mpu_api::layout::Layout;
use r2mpu_api::types::Part;

use crate::error::{ApiError, ApiResult};
use crate::faults::Faults;
use crate::upload::command::{PartGrant, Record, Reply};
use crate::upload::machine::{self, Next};
use crate::upload::object::{now_ms, UploadState};
use crate::upload::rows::UploadRow;

impl UploadState {
    /// Checks the part against the upload's status and layout and leases its number. Touches
    /// the upload's row and the part's lease row only: its cost and its answer do not grow with
    /// the parts already recorded.
    pub(super) fn begin_part(&self, row: UploadRow, part_number: u16, length: u64) -> ApiResult<Reply> {
        let mut facts = row.facts();
        let before = facts.clone();
        machine::status_error(facts.status)?;
        Layout { part_size: row.part_size as u64, size: row.size.map(|s| s as u64) }.check_part(part_number, length)?;
        let lease = facts.begin_part(part_number, self.part_lease(part_number)?, now_ms())?;
        self.save(&before, &facts, None)?;
        self.sql(
            "INSERT INTO part_leases (part_number, token, until_ms) VALUES (?, ?, ?)
             ON CONFLICT (part_number) DO UPDATE SET token = excluded.token, until_ms = excluded.until_ms",
            vec![i64::from(part_number).into(), lease.token.into(), (lease.until_ms as i64).into()],
        )?;
        Ok(Reply::Grant(PartGrant {
            token: lease.token,
            key: row.key,
            r2_upload_id: row.r2_upload_id,
            appendable: self.appends()?.is_some(),
        }))
    }

    /// Records the part if its sender still holds the lease. One row written, one lease row
    /// deleted, nothing listed back. The alarm is moved only when the deadline came nearer (a
    /// smaller `UPLOAD_TTL`): an alarm that fires before a deadline activity pushed out just
    /// sets itself again ([`Facts::alarm`]), so the usual part needs no alarm write.
    pub(super) async fn record_part(&self, row: UploadRow, part: Part, token: i64, ttl_ms: u64) -> ApiResult<Reply> {
        let mut facts = row.facts();
        let before = facts.clone();
        facts.record_part(part.part_number, token, self.part_lease(part.part_number)?, ttl_ms, now_ms())?;
        self.save(&before, &facts, None)?;
        let number = i64::from(part.part_number);
        self.sql(
            "INSERT INTO parts (part_number, etag, size, md5) VALUES (?, ?, ?, ?)
             ON CONFLICT (part_number) DO UPDATE SET etag = excluded.etag, size = excluded.size, md5 = excluded.md5",
            vec![number.into(), part.etag.into(), (part.size as i64).into(), part.md5.into()],
        )?;
        self.sql("DELETE FROM part_leases WHERE part_number = ?", vec![number.into()])?;
        if facts.expires_ms < before.expires_ms {
            self.alarm_at(facts.expires_ms).await?;
        }
        Ok(Reply::Done)
    }

    /// Renews the lease of a sender whose bytes still flow: one lease row read and written.
    pub(super) fn renew_part(&self, row: UploadRow, part_number: u16, token: i64) -> ApiResult<Reply> {
        let lease = row.facts().renew_part(part_number, token, self.part_lease(part_number)?, now_ms())?;
        self.sql(
            "UPDATE part_leases SET until_ms = ? WHERE part_number = ? AND token = ?",
            vec![(lease.until_ms as i64).into(), i64::from(part_number).into(), token.into()],
        )?;
        Ok(Reply::Done)
    }

    pub(super) fn end_part(&self, part_number: u16, token: i64, forget: bool) -> ApiResult<Reply> {
        if self.part_lease(part_number)?.map(|lease| lease.token) == Some(token) {
            let number = i64::from(part_number);
            self.sql("DELETE FROM part_leases WHERE part_number = ?", vec![number.into()])?;
            if forget {
                self.sql("DELETE FROM parts WHERE part_number = ?", vec![number.into()])?;
            }
        }
        Ok(Reply::Done)
    }

    /// A part met R2's `NoSuchUpload`: mark the upload aborted, unless a complete may have
    /// finished it (then R2's object decides). Answers the true state as the error.
    pub(super) async fn r2_gone(&self, row: UploadRow, faults: &Faults) -> ApiResult<Record> {
        let mut facts = row.facts();
        let before = facts.clone();
        match facts.r2_gone(self.running.get(), now_ms())? {
            Next::Settle => {
                self.settle(&row, faults).await?;
            }
            _ => {
                self.save(&before, &facts, None)?;
                self.alarm_at(facts.expires_ms).await?;
            }
        }
        machine::status_error(self.record()?.upload.status)?;
        Err(ApiError::UploadAborted)
    }
}
