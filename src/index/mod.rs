//! `GET /uploads` and the index behind it: one `UploadIndex` Durable Object per subject, a small
//! SQLite table of that subject's unfinished uploads, kept by each upload's own object
//! (`state.rs`) on create, complete, abort and expiry.
//!
//! ## Why a Durable Object per subject, not D1
//! - Writes stay where the reads are: a subject's uploads are one small table in one object, so
//!   a page is one indexed range read (`created_ms DESC, upload_id DESC`), however many other
//!   subjects exist; thousands of rows per subject are a few hundred KB, far under the object's
//!   limits, and no query ever crosses subjects.
//! - No new kind of resource: D1 would add a database, its migrations and a binding to create
//!   per environment, and one database for every subject serializes all writers through it;
//!   with D1 every create/complete/abort anywhere is a write to the same primary.
//! - The same tool as `state.rs`: local `wrangler dev` runs it exactly as Cloudflare does.
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

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;

use r2mpu_api::types::{UploadList, UploadStatus, UploadSummary};
use serde::{Deserialize, Serialize};
use worker::{durable_object, DurableObject, Env, Method, Request, RequestInit, Response, State};

use crate::error::{ApiError, ApiResult, OrInternal};
use crate::http::auth::Claims;
use crate::http::{json, Ctx};
use crate::upload::object::{Caller, Command, UploadHandle};

/// The default and largest page of `listUploads`.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// Upload objects asked at once while reconciling a page.
const FAN_OUT: usize = 50;
/// The upload object's storage key for an index update that has not landed yet.
const PENDING: &str = "index-pending";
/// How soon the upload object's alarm retries an index update that failed.
const RETRY_MS: u64 = 30_000;
/// How long an entry whose upload object does not know it yet is kept: the index hears of a
/// create while R2 works on it (`state.rs`), before the object writes its row.
pub const CREATING_MS: u64 = 60_000;

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
struct Page {
    entries: Vec<Entry>,
    next: Option<Position>,
}

/// The Worker's (and upload objects') handle on one subject's index.
struct IndexHandle {
    stub: worker::Stub,
}

impl IndexHandle {
    fn of(env: &Env, subject: &str) -> worker::Result<IndexHandle> {
        let stub = env.durable_object("UPLOAD_INDEX")?.get_by_name(subject)?;
        Ok(IndexHandle { stub })
    }

    async fn send<T: serde::de::DeserializeOwned>(&self, command: &IndexCommand) -> worker::Result<T> {
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(serde_json::to_string(command)?.into()));
        let request = Request::new_with_init("https://upload-index/", &init)?;
        let mut response = self.stub.fetch_with_request(request).await?;
        if response.status_code() != 200 {
            return Err(worker::Error::RustError(format!("index answered {}", response.status_code())));
        }
        response.json().await
    }
}

/// `listUploads`: the caller's unfinished uploads, newest first, a page at a time.
pub async fn list(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let prefix = cx.query("prefix").or_else(|| claims.prefix.clone()).unwrap_or_default();
    claims.check_key(&prefix)?;
    let limit = match cx.query("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => return Err(ApiError::invalid_field("limit", format!("must be an integer from 1 to {MAX_LIMIT}"))),
        },
    };
    let after = cx.query("cursor").map(|c| Position::parse(&c)).transpose()?;
    let index = IndexHandle::of(&cx.env, &claims.sub).or_internal("UPLOAD_INDEX binding")?;
    let page: Page =
        index.send(&IndexCommand::List { prefix, limit, after }).await.or_internal("listing the upload index")?;

    let mut uploads = Vec::with_capacity(page.entries.len());
    for batch in page.entries.chunks(FAN_OUT) {
        let states = join(batch.iter().map(|entry| Box::pin(live_state(&cx, &claims, entry)) as _).collect()).await;
        for (entry, state) in batch.iter().zip(states) {
            match state? {
                Some(summary) => uploads.push(summary),
                // Finished or gone: hidden, and the index learns it (best effort; the next read
                // repairs what this one could not). A young entry may be a create in progress:
                // hidden, but kept.
                None if entry.created_ms + CREATING_MS > worker::Date::now().as_millis() => {}
                None => {
                    let remove = IndexCommand::Remove { upload_id: entry.upload_id.clone() };
                    if let Err(e) = index.send::<()>(&remove).await {
                        crate::http::log::cause("repairing the upload index", &e);
                    }
                }
            }
        }
    }
    json(200, &UploadList { uploads, cursor: page.next.map(|p| p.cursor()) })
}

/// Runs `futures` concurrently; their outputs in order. A minimal `join_all`: the futures
/// crate's pulls `FuturesOrdered` into the Worker (4 KiB of the gzip budget, tests/deploy.rs).
async fn join<'a, T>(mut futures: Vec<Pin<Box<dyn Future<Output = T> + 'a>>>) -> Vec<T> {
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()).filter(|(_, o)| o.is_none()) {
            match future.as_mut().poll(cx) {
                Poll::Ready(value) => *output = Some(value),
                Poll::Pending => pending = true,
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("every future finished")).collect()
}

/// The upload's state from its own object, as a summary; `None` once it is finished or gone.
async fn live_state(cx: &Ctx, claims: &Claims, entry: &Entry) -> ApiResult<Option<UploadSummary>> {
    let handle = UploadHandle::new(&cx.env, &entry.upload_id, Caller::of(claims))?;
    let record = match handle.send(Command::Get).await {
        Ok(record) => record,
        Err(ApiError::UploadNotFound) => return Ok(None),
        Err(e) => return Err(e),
    };
    let upload = record.upload;
    if !matches!(upload.status, UploadStatus::Open | UploadStatus::Completing) {
        return Ok(None);
    }
    Ok(Some(UploadSummary {
        parts: upload.parts.len() as u32,
        bytes: upload.parts.iter().map(|p| p.size).sum(),
        upload_id: upload.upload_id,
        key: upload.key,
        status: upload.status,
        part_size: upload.part_size,
        size: upload.size,
        created_at: upload.created_at,
        expires_at: upload.expires_at,
    }))
}

// ---- Called by each upload's own object (state.rs) at its transitions -------------------------

/// An update the upload object still owes the index.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    subject: String,
    command: IndexCommand,
}

/// The upload was created: list it. Best effort; see [`retry_pending`].
pub async fn opened(state: &State, env: &Env, subject: &str, entry: Entry) {
    update(state, env, Pending { subject: subject.to_string(), command: IndexCommand::Put { entry } }).await
}

/// The upload was completed, aborted or forgotten: stop listing it. Idempotent.
pub async fn finished(state: &State, env: &Env, subject: &str, upload_id: &str) {
    let command = IndexCommand::Remove { upload_id: upload_id.to_string() };
    update(state, env, Pending { subject: subject.to_string(), command }).await
}

/// From the upload object's alarm (set [`RETRY_MS`] ahead when an update fails, if it was due
/// later): sends the update an earlier call could not.
pub async fn retry_pending(state: &State, env: &Env) {
    let stored = state.storage().get::<String>(PENDING).await.ok().flatten();
    if let Some(pending) = stored.and_then(|json| serde_json::from_str(&json).ok()) {
        update(state, env, pending).await;
    }
}

async fn update(state: &State, env: &Env, pending: Pending) {
    let storage = state.storage();
    // Written ahead, so that a crash between here and the index leaves the update to retry.
    let json = serde_json::to_string(&pending).unwrap_or_default();
    if let Err(e) = storage.put(PENDING, json).await {
        crate::http::log::cause("recording the pending index update", &e);
    }
    let sent = match IndexHandle::of(env, &pending.subject) {
        Ok(index) => index.send::<()>(&pending.command).await,
        Err(e) => Err(e),
    };
    let kept = match sent {
        Ok(()) => storage.delete(PENDING).await.map(|_| ()),
        Err(e) => {
            crate::http::log::cause("updating the upload index (kept for an alarm to retry)", &e);
            // An earlier alarm is harmless to the upload: its handler puts its own back.
            match storage.get_alarm().await {
                Ok(Some(at)) if at <= (worker::Date::now().as_millis() + RETRY_MS) as i64 => Ok(()),
                _ => storage.set_alarm(std::time::Duration::from_millis(RETRY_MS)).await,
            }
        }
    };
    if let Err(e) = kept {
        crate::http::log::cause("after an index update", &e);
    }
}

// ---- The index object ------------------------------------------------------------------------

#[durable_object]
pub struct UploadIndex {
    state: State,
}

#[derive(Debug, Deserialize)]
struct EntryRow {
    upload_id: String,
    key: String,
    created_ms: f64,
    part_size: f64,
    size: Option<f64>,
}

impl DurableObject for UploadIndex {
    fn new(state: State, _env: Env) -> Self {
        let schema = "CREATE TABLE IF NOT EXISTS uploads (
                upload_id TEXT PRIMARY KEY, key TEXT NOT NULL, created_ms INTEGER NOT NULL,
                part_size INTEGER NOT NULL, size INTEGER);
            CREATE INDEX IF NOT EXISTS newest_first ON uploads (created_ms DESC, upload_id DESC);";
        if let Err(e) = state.storage().sql().exec(schema, None) {
            crate::http::log::cause("creating the upload index schema", &e);
        }
        UploadIndex { state }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let command: IndexCommand = req.json().await?;
        let sql = self.state.storage().sql();
        match command {
            IndexCommand::Put { entry } => {
                sql.exec(
                    "INSERT OR REPLACE INTO uploads (upload_id, key, created_ms, part_size, size)
                     VALUES (?, ?, ?, ?, ?)",
                    vec![
                        entry.upload_id.into(),
                        entry.key.into(),
                        (entry.created_ms as i64).into(),
                        (entry.part_size as i64).into(),
                        entry.size.map(|s| s as i64).into(),
                    ],
                )?;
                Response::from_json(&())
            }
            IndexCommand::Remove { upload_id } => {
                sql.exec("DELETE FROM uploads WHERE upload_id = ?", vec![upload_id.into()])?;
                Response::from_json(&())
            }
            IndexCommand::List { prefix, limit, after } => {
                let (ms, id) = after.map_or((i64::MAX, String::new()), |p| (p.0 as i64, p.1));
                // One more than asked, to know whether another page follows.
                let rows: Vec<EntryRow> = sql
                    .exec(
                        "SELECT upload_id, key, created_ms, part_size, size FROM uploads
                         WHERE substr(key, 1, length(?1)) = ?1
                           AND (created_ms < ?2 OR (created_ms = ?2 AND (?3 = '' OR upload_id < ?3)))
                         ORDER BY created_ms DESC, upload_id DESC LIMIT ?4",
                        vec![prefix.into(), ms.into(), id.into(), ((limit + 1) as i64).into()],
                    )?
                    .to_array()?;
                let mut entries: Vec<Entry> = rows
                    .into_iter()
                    .map(|r| Entry {
                        upload_id: r.upload_id,
                        key: r.key,
                        created_ms: r.created_ms as u64,
                        part_size: r.part_size as u64,
                        size: r.size.map(|s| s as u64),
                    })
                    .collect();
                let next = (entries.len() > limit).then(|| {
                    entries.truncate(limit);
                    let last = entries.last().expect("limit is at least 1");
                    Position(last.created_ms, last.upload_id.clone())
                });
                Response::from_json(&Page { entries, next })
            }
        }
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
