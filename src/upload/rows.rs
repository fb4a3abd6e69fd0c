//! The upload object's tables and every SQL statement it runs: the one `upload` row (the
//! machine's facts and the completed object), `parts`, `part_leases`, `signed_parts` (what part
//! URLs were signed for, [`super::direct`]) and `appends`.

use r2mpu_api::layout::Layout;
use r2mpu_api::time::rfc3339;
use r2mpu_api::types::{CompletedObject, Part, Upload, UploadStatus};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult, OrInternal};
use crate::upload::command::{Appends, Record};
use crate::upload::machine::{self, Attempt, Facts, Lease, Seen};
use crate::upload::object::{now_ms, UploadState};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS upload (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        upload_id TEXT NOT NULL, owner TEXT NOT NULL, key TEXT NOT NULL,
        r2_upload_id TEXT NOT NULL, part_size INTEGER NOT NULL, size INTEGER,
        content_type TEXT, metadata TEXT NOT NULL, status TEXT NOT NULL,
        created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL,
        ttl_ms INTEGER NOT NULL, next_token INTEGER NOT NULL,
        lease_token INTEGER, lease_until_ms INTEGER,
        attempt_since_ms INTEGER, attempt_size INTEGER, attempt_parts TEXT,
        etag TEXT, object_size INTEGER);
    CREATE TABLE IF NOT EXISTS parts (
        part_number INTEGER PRIMARY KEY, etag TEXT NOT NULL, size INTEGER NOT NULL, md5 TEXT);
    CREATE TABLE IF NOT EXISTS part_leases (
        part_number INTEGER PRIMARY KEY, token INTEGER NOT NULL, until_ms INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS signed_parts (
        part_number INTEGER NOT NULL, md5 TEXT NOT NULL, length INTEGER NOT NULL,
        PRIMARY KEY (part_number, md5));
    CREATE TABLE IF NOT EXISTS appends (
        id INTEGER PRIMARY KEY CHECK (id = 1), offset INTEGER NOT NULL, tail_key TEXT,
        tail_size INTEGER NOT NULL);";

#[derive(Debug, Clone, Deserialize)]
/// The `upload` row as SQLite answers it (numbers as `f64`).
pub(super) struct UploadRow {
    pub(super) upload_id: String,
    pub(super) owner: String,
    pub(super) key: String,
    pub(super) r2_upload_id: String,
    pub(super) part_size: f64,
    pub(super) size: Option<f64>,
    pub(super) content_type: Option<String>,
    pub(super) metadata: String,
    pub(super) status: String,
    pub(super) created_ms: f64,
    pub(super) expires_ms: f64,
    pub(super) ttl_ms: f64,
    pub(super) next_token: f64,
    pub(super) lease_token: Option<f64>,
    pub(super) lease_until_ms: Option<f64>,
    pub(super) attempt_since_ms: Option<f64>,
    pub(super) attempt_size: Option<f64>,
    pub(super) attempt_parts: Option<String>,
    pub(super) etag: Option<String>,
    pub(super) object_size: Option<f64>,
}

impl UploadRow {
    pub(super) fn facts(&self) -> Facts {
        let attempt = match (self.attempt_since_ms, self.attempt_size, &self.attempt_parts) {
            (Some(since), Some(size), Some(parts)) => Some(Attempt {
                since_ms: since as u64,
                size: size as u64,
                part_numbers: serde_json::from_str(parts).unwrap_or_default(),
            }),
            _ => None,
        };
        Facts {
            status: parse_status(&self.status),
            created_ms: self.created_ms as u64,
            expires_ms: self.expires_ms as u64,
            ttl_ms: self.ttl_ms as u64,
            lease: match (self.lease_token, self.lease_until_ms) {
                (Some(token), Some(until)) => Some(Lease { token: token as i64, until_ms: until as u64 }),
                _ => None,
            },
            attempt,
            next_token: self.next_token as i64,
        }
    }
}

#[derive(Debug, Deserialize)]
struct PartRow {
    part_number: f64,
    etag: String,
    size: f64,
    md5: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LeaseRow {
    part_number: f64,
    token: f64,
    until_ms: f64,
}

impl UploadState {
    /// Writes the machine's new facts if the row still holds the old ones (compare-and-set), and
    /// the completed object when there is one. A lost race is answered with the true state.
    /// Every status change after `create` is written here.
    pub(super) fn save(&self, before: &Facts, after: &Facts, object: Option<&Seen>) -> ApiResult<()> {
        let attempt = after.attempt.as_ref();
        let cursor = self
            .state
            .storage()
            .sql()
            .exec(
                "UPDATE upload SET status = ?, updated_ms = ?, expires_ms = ?, ttl_ms = ?, next_token = ?,
                     lease_token = ?, lease_until_ms = ?, attempt_since_ms = ?, attempt_size = ?,
                     attempt_parts = ?, etag = COALESCE(?, etag), object_size = COALESCE(?, object_size)
                 WHERE status = ? AND next_token = ? AND lease_token IS ?",
                vec![
                    status_name(after.status).into(),
                    (now_ms() as i64).into(),
                    (after.expires_ms as i64).into(),
                    (after.ttl_ms as i64).into(),
                    after.next_token.into(),
                    after.lease.map(|l| l.token).into(),
                    after.lease.map(|l| l.until_ms as i64).into(),
                    attempt.map(|a| a.since_ms as i64).into(),
                    attempt.map(|a| a.size as i64).into(),
                    attempt.map(|a| serde_json::to_string(&a.part_numbers).unwrap_or_default()).into(),
                    object.map(|o| o.etag.clone()).into(),
                    object.map(|o| o.size as i64).into(),
                    status_name(before.status).into(),
                    before.next_token.into(),
                    before.lease.map(|l| l.token).into(),
                ],
            )
            .or_internal("writing upload state")?;
        if cursor.rows_written() == 1 {
            return Ok(());
        }
        let status = self.row()?.ok_or(ApiError::UploadNotFound)?.facts().status;
        machine::status_error(status).and(Err(ApiError::UploadCompleting))
    }

    pub(super) fn facts(&self) -> ApiResult<Facts> {
        Ok(self.row()?.ok_or(ApiError::UploadNotFound)?.facts())
    }

    pub(super) fn part_lease(&self, part_number: u16) -> ApiResult<Option<Lease>> {
        let rows = self.select_with::<LeaseRow>(
            "SELECT part_number, token, until_ms FROM part_leases WHERE part_number = ?",
            vec![i64::from(part_number).into()],
        )?;
        Ok(rows.first().map(|r| Lease { token: r.token as i64, until_ms: r.until_ms as u64 }))
    }

    /// A part whose sender still holds its lease.
    pub(super) fn part_in_flight(&self) -> ApiResult<Option<u16>> {
        let rows = self.select_with::<LeaseRow>(
            "SELECT part_number, token, until_ms FROM part_leases WHERE until_ms > ? ORDER BY part_number LIMIT 1",
            vec![(now_ms() as i64).into()],
        )?;
        Ok(rows.first().map(|r| r.part_number as u16))
    }

    pub(super) fn record(&self) -> ApiResult<Record> {
        let row = self.row()?.ok_or(ApiError::UploadNotFound)?;
        let layout = Layout { part_size: row.part_size as u64, size: row.size.map(|s| s as u64) };
        let object = match (&row.etag, row.object_size) {
            (Some(etag), Some(size)) => {
                Some(CompletedObject { key: row.key.clone(), etag: etag.clone(), size: size as u64 })
            }
            _ => None,
        };
        let upload = Upload {
            upload_id: row.upload_id,
            key: row.key,
            status: parse_status(&row.status),
            part_size: layout.part_size,
            size: layout.size,
            part_count: layout.part_count(),
            content_type: row.content_type,
            metadata: serde_json::from_str(&row.metadata).unwrap_or_default(),
            parts: self.parts()?,
            created_at: rfc3339(row.created_ms as u64),
            expires_at: rfc3339(row.expires_ms as u64),
            object,
        };
        Ok(Record { r2_upload_id: row.r2_upload_id, upload, appends: self.appends()? })
    }

    /// The upload's row. Reading a forgotten upload does not recreate its tables.
    pub(super) fn row(&self) -> ApiResult<Option<UploadRow>> {
        if !self.schema_ready.get() {
            let tables = self.state.storage().sql().exec("SELECT name FROM sqlite_master WHERE name = 'upload'", None);
            let tables: Vec<serde_json::Value> = tables.and_then(|c| c.to_array()).or_internal("reading the schema")?;
            if tables.is_empty() {
                return Ok(None);
            }
        }
        Ok(self.select::<UploadRow>("SELECT * FROM upload WHERE id = 1")?.into_iter().next())
    }

    pub(super) fn parts(&self) -> ApiResult<Vec<Part>> {
        let rows = self.select::<PartRow>("SELECT part_number, etag, size, md5 FROM parts ORDER BY part_number")?;
        Ok(rows
            .into_iter()
            .map(|r| Part { part_number: r.part_number as u16, etag: r.etag, size: r.size as u64, md5: r.md5 })
            .collect())
    }

    pub(super) fn appends(&self) -> ApiResult<Option<Appends>> {
        #[derive(Deserialize)]
        struct Row {
            offset: f64,
            tail_key: Option<String>,
            tail_size: f64,
        }
        let rows = self.select::<Row>("SELECT offset, tail_key, tail_size FROM appends WHERE id = 1")?;
        Ok(rows.into_iter().next().map(|r| Appends {
            offset: r.offset as u64,
            tail_key: r.tail_key,
            tail_size: r.tail_size as u64,
        }))
    }

    pub(super) fn select<T: serde::de::DeserializeOwned>(&self, query: &str) -> ApiResult<Vec<T>> {
        self.select_with(query, vec![])
    }

    pub(super) fn select_with<T: serde::de::DeserializeOwned>(
        &self,
        query: &str,
        bindings: Vec<worker::SqlStorageValue>,
    ) -> ApiResult<Vec<T>> {
        self.ensure_schema()?;
        self.state.storage().sql().exec(query, bindings).and_then(|c| c.to_array()).or_internal("reading upload state")
    }

    pub(super) fn sql(&self, query: &str, bindings: Vec<worker::SqlStorageValue>) -> ApiResult<()> {
        self.ensure_schema()?;
        self.state.storage().sql().exec(query, bindings).map(|_| ()).or_internal("writing upload state")
    }

    pub(super) fn ensure_schema(&self) -> ApiResult<()> {
        if !self.schema_ready.get() {
            self.state.storage().sql().exec(SCHEMA, None).or_internal("creating the upload schema")?;
            self.schema_ready.set(true);
        }
        Ok(())
    }

    /// Forgets a finished upload entirely: `deleteAll()` frees the object's storage, tables
    /// included; they are recreated on next use.
    pub(super) async fn forget(&self) -> worker::Result<()> {
        self.state.storage().delete_alarm().await?;
        self.state.storage().delete_all().await?;
        self.schema_ready.set(false);
        Ok(())
    }
}

pub(super) fn parse_status(status: &str) -> UploadStatus {
    match status {
        "completing" => UploadStatus::Completing,
        "completed" => UploadStatus::Completed,
        "aborted" => UploadStatus::Aborted,
        _ => UploadStatus::Open,
    }
}

pub(super) fn status_name(status: UploadStatus) -> &'static str {
    match status {
        UploadStatus::Open => "open",
        UploadStatus::Completing => "completing",
        UploadStatus::Completed => "completed",
        UploadStatus::Aborted => "aborted",
    }
}
