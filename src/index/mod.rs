//! The index behind `GET /uploads` (`protocols::listing`): one `UploadIndex` Durable Object per subject, a small
//! SQLite table of that subject's unfinished uploads, kept by each upload's own object
//! (`crate::upload`) on create, complete, abort and expiry.
//!
//! ## Why a Durable Object per subject, not D1
//! - Writes stay where the reads are: a subject's uploads are one small table in one object, so
//!   a page is one indexed range read (`created_ms DESC, upload_id DESC`), however many other
//!   subjects exist; thousands of rows per subject are a few hundred KB, far under the object's
//!   limits, and no query ever crosses subjects.
//! - No new kind of resource: D1 would add a database, its migrations and a binding to create
//!   per environment, and one database for every subject serializes all writers through it;
//!   with D1 every create/complete/abort anywhere is a write to the same primary.
//! - The same tool as the upload's own object: local `wrangler dev` runs it exactly as Cloudflare does.
//!
//! ## Consistency
//! The upload's own object is the truth; the index is a cache of "which uploads may be open".
//! Its updates are best effort: the upload object writes each one down before sending it and
//! crosses it off once the index has it; one that failed is retried from an alarm half a minute
//! later, one cut short by a crash from the upload's next alarm ([`retry_pending`]). A listing
//! never trusts the index alone: for the page it returns it asks each listed upload's object
//! for its state (in parallel), drops those that are finished or gone, and repairs their index
//! entries. That read also supplies the live part and byte counts, so the index holds only what
//! never changes.
//!
//! ## Layout
//! - here: what the index holds ([`Entry`]) and the [`IndexHandle`] that asks it;
//! - [`updates`]: the calls each upload's own object makes at its transitions;
//! - [`object`]: the `UploadIndex` Durable Object and its table.

use serde::{Deserialize, Serialize};
use worker::Env;

use crate::error::{ApiError, ApiResult};
use crate::stub::JsonStub;

pub mod object;
pub mod updates;

pub use updates::{finished, opened, pending, retry_pending, RETRY_MS};

/// How long an entry whose upload object does not know it yet is kept: the index hears of a
/// create while R2 works on it (`upload::create`), before the object writes its row.
pub const CREATING_MS: u64 = 60_000;

/// [`CREATING_MS`]; in the fault build the Worker's `TEST_CREATING_MS` when set, so that a test
/// sees stale entries repaired without waiting a minute (tests/operate.rs).
#[allow(unused_variables)]
pub fn creating_ms(env: &Env) -> u64 {
    #[cfg(feature = "faults")]
    if let Some(ms) = env.var("TEST_CREATING_MS").ok().and_then(|v| v.to_string().parse().ok()) {
        return ms;
    }
    CREATING_MS
}

/// What the index keeps about one unfinished upload: what never changes while it is open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub upload_id: String,
    pub key: String,
    pub created_ms: u64,
    pub part_size: u64,
    pub size: Option<u64>,
}

/// One call to a subject's index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum IndexCommand {
    Put { entry: Entry },
    Remove { upload_id: String },
    List { prefix: String, limit: usize, after: Option<Position> },
}

/// Where a page ends: the last entry's `(created_ms, upload_id)`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position(pub u64, pub String);

impl Position {
    /// The opaque cursor clients pass back: `created_ms.upload_id`.
    pub fn cursor(&self) -> String {
        format!("{}.{}", self.0, self.1)
    }

    pub fn parse(cursor: &str) -> ApiResult<Position> {
        let invalid = || ApiError::invalid_field("cursor", "must be a cursor returned by listUploads");
        let (ms, id) = cursor.split_once('.').ok_or_else(invalid)?;
        let ms = ms.parse().map_err(|_| invalid())?;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        Ok(Position(ms, id.to_string()))
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Page {
    pub entries: Vec<Entry>,
    pub next: Option<Position>,
}

/// The Worker's (and upload objects') handle on one subject's index.
pub struct IndexHandle {
    stub: JsonStub,
}

impl IndexHandle {
    pub fn of(env: &Env, subject: &str) -> worker::Result<IndexHandle> {
        let stub = env.durable_object("UPLOAD_INDEX")?.get_by_name(subject)?;
        Ok(IndexHandle { stub: JsonStub::new(stub, "https://upload-index/") })
    }

    pub async fn send<T: serde::de::DeserializeOwned>(&self, command: &IndexCommand) -> worker::Result<T> {
        let (status, text) = self.stub.post(&serde_json::to_string(command)?).await?;
        if status != 200 {
            return Err(worker::Error::RustError(format!("index answered {status}")));
        }
        Ok(serde_json::from_str(&text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let p = Position(1_764_000_000_123, "0123abcd".into());
        assert_eq!(Position::parse(&p.cursor()), Ok(p));
        for bad in ["", "12", "x.abc", "12.", "12.not-hex", "12.ab'; DROP"] {
            assert!(Position::parse(bad).is_err(), "{bad:?}");
        }
    }
}
