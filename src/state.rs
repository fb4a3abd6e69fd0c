//! Upload state: one Durable Object per upload, holding what R2's Worker binding cannot tell us
//! (which parts arrived, with their ETags and sizes) and owning the upload's life cycle:
//! open → completing → completed, or open → aborted. Part bodies never pass through here; the
//! Worker streams them to R2 and then records the part.
//!
//! Requests come from the Worker only, as one JSON [`Envelope`] per call: who is asking and the
//! [`Command`]. The object answers with a [`Record`] or a problem document.

use std::collections::BTreeMap;
use std::time::Duration;

use r2mpu_api::layout::Layout;
use r2mpu_api::time::rfc3339;
use r2mpu_api::types::{CompletedObject, Part, PartRef, Upload, UploadStatus};
use serde::{Deserialize, Serialize};
use worker::{
    durable_object, Bucket, Date, Delay, DurableObject, Env, HttpMetadata, Method, Request, RequestInit, Response,
    State, UploadedPart,
};

use crate::error::{ApiError, ApiResult, OrInternal};

/// How long a complete may wait for a concurrent one before giving up with `upload_completing`.
const COMPLETE_WAIT: Duration = Duration::from_secs(30);
/// After this long in `completing` the runner is presumed dead and the upload reopens.
const COMPLETING_LEASE_MS: u64 = 120_000;

/// Who asks: the token's subject and prefix, and the key they name when their protocol names
/// one (the guide's `/{key}?action=`). Every command but `Create` checks them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Caller {
    pub sub: String,
    pub prefix: Option<String>,
    pub key: Option<String>,
}

impl Caller {
    pub fn of(claims: &crate::auth::Claims) -> Caller {
        Caller { sub: claims.sub.clone(), prefix: claims.prefix.clone(), key: None }
    }

    /// The same caller, naming the upload's key: another key means another upload (404).
    pub fn naming(self, key: &str) -> Caller {
        Caller { key: Some(key.to_string()), ..self }
    }
}

/// An upload to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewUpload {
    pub upload_id: String,
    pub key: String,
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub size: Option<u64>,
    pub part_size: u64,
    pub ttl_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Command {
    Create(NewUpload),
    Get,
    RecordPart {
        part: Part,
        ttl_ms: u64,
    },
    /// R2 holds bytes for this part that failed their check: drop what we recorded for it.
    ForgetPart {
        part_number: u16,
    },
    Complete {
        parts: Option<Vec<PartRef>>,
        ttl_ms: u64,
    },
    Abort {
        ttl_ms: u64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Envelope {
    caller: Caller,
    command: Command,
}

/// What the Worker learns about an upload: its public view and R2's own upload id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub r2_upload_id: String,
    pub upload: Upload,
}

impl Record {
    pub fn layout(&self) -> Layout {
        Layout { part_size: self.upload.part_size, size: self.upload.size }
    }

    /// The error a write to this upload gets unless it is open.
    pub fn ensure_open(&self) -> ApiResult<()> {
        status_error(self.upload.status)
    }
}

fn status_error(status: UploadStatus) -> ApiResult<()> {
    match status {
        UploadStatus::Open => Ok(()),
        UploadStatus::Completing => Err(ApiError::UploadCompleting),
        UploadStatus::Completed => Err(ApiError::UploadCompleted),
        UploadStatus::Aborted => Err(ApiError::UploadAborted),
    }
}

/// The Worker's handle on one upload's Durable Object.
pub struct UploadHandle {
    stub: worker::Stub,
    caller: Caller,
}

impl UploadHandle {
    pub fn new(env: &Env, upload_id: &str, caller: Caller) -> ApiResult<UploadHandle> {
        let namespace = env.durable_object("UPLOADS").or_internal("UPLOADS binding")?;
        let stub = namespace.get_by_name(upload_id).or_internal("durable object stub")?;
        Ok(UploadHandle { stub, caller })
    }

    pub async fn send(&self, command: Command) -> ApiResult<Record> {
        let body = serde_json::to_string(&Envelope { caller: self.caller.clone(), command })
            .or_internal("encoding command")?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(body.into()));
        let request = Request::new_with_init("https://upload-state/", &init).or_internal("state request")?;
        let mut response = self.stub.fetch_with_request(request).await.or_internal("state call")?;
        let text = response.text().await.or_internal("state response")?;
        if response.status_code() == 200 {
            serde_json::from_str(&text).or_internal("decoding record")
        } else {
            Err(serde_json::from_str::<ApiError>(&text).or_internal("decoding error")?)
        }
    }
}

#[durable_object]
pub struct UploadState {
    state: State,
    env: Env,
}

#[derive(Debug, Deserialize)]
struct UploadRow {
    upload_id: String,
    owner: String,
    key: String,
    r2_upload_id: String,
    part_size: f64,
    size: Option<f64>,
    content_type: Option<String>,
    metadata: String,
    status: String,
    created_ms: f64,
    updated_ms: f64,
    expires_ms: f64,
    etag: Option<String>,
    object_size: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct PartRow {
    part_number: f64,
    etag: String,
    size: f64,
    md5: Option<String>,
}

impl DurableObject for UploadState {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        let schema = "CREATE TABLE IF NOT EXISTS upload (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                upload_id TEXT NOT NULL, owner TEXT NOT NULL, key TEXT NOT NULL,
                r2_upload_id TEXT NOT NULL, part_size INTEGER NOT NULL, size INTEGER,
                content_type TEXT, metadata TEXT NOT NULL, status TEXT NOT NULL,
                created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL,
                etag TEXT, object_size INTEGER);
            CREATE TABLE IF NOT EXISTS parts (
                part_number INTEGER PRIMARY KEY, etag TEXT NOT NULL, size INTEGER NOT NULL);";
        if let Err(e) = sql.exec(schema, None) {
            worker::console_error!("creating the upload schema: {e}");
        }
        let _ = sql.exec("ALTER TABLE parts ADD COLUMN md5 TEXT", None); // ops: part MD5s (fails once added)
        UploadState { state, env }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let envelope: Envelope = req.json().await?;
        // Errors travel to the Worker as the bare ApiError; the Worker renders the problem.
        Ok(match self.apply(envelope).await {
            Ok(record) => Response::from_json(&record)?,
            Err(error) => Response::from_json(&error)?.with_status(error.status()),
        })
    }

    /// Aborts an upload left idle past its TTL and frees its parts in R2; forgets the record of
    /// a finished upload once its TTL has passed again.
    async fn alarm(&self) -> worker::Result<Response> {
        crate::index::retry_pending(&self.state, &self.env).await; // ops: index hook
        let Some(row) = self.row().ok().flatten() else {
            return Response::empty();
        };
        let now = now_ms();
        if (row.expires_ms as u64) > now {
            self.state.storage().set_alarm(Duration::from_millis(row.expires_ms as u64 - now)).await?;
            return Response::empty();
        }
        let failed = |e: ApiError| worker::Error::RustError(e.to_string());
        match self.live_status(&row) {
            // A complete is under way: never abort under it; look again when its lease ends.
            UploadStatus::Completing => {
                self.state.storage().set_alarm(Duration::from_millis(COMPLETING_LEASE_MS)).await?;
            }
            UploadStatus::Open => {
                let ttl = (row.expires_ms - row.updated_ms) as u64;
                self.abort_in_r2(&row).await;
                self.set_status("aborted", now, now + ttl).map_err(failed)?;
                self.state.storage().set_alarm(Duration::from_millis(ttl)).await?;
                // ops: index hook
                crate::index::finished(&self.state, &self.env, &row.owner, &row.upload_id).await;
            }
            // Forget it. Rows, not `deleteAll()`: that would also drop the schema this live
            // instance was constructed with.
            UploadStatus::Completed | UploadStatus::Aborted => {
                self.sql("DELETE FROM parts; DELETE FROM upload;", vec![]).map_err(failed)?;
                // ops: index hook
                crate::index::finished(&self.state, &self.env, &row.owner, &row.upload_id).await;
            }
        }
        Response::empty()
    }
}

impl UploadState {
    async fn apply(&self, Envelope { caller, command }: Envelope) -> ApiResult<Record> {
        if let Command::Create(new) = command {
            return self.create(caller, new).await;
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
        match command {
            Command::Create(_) => unreachable!("handled above"),
            Command::Get => self.record(),
            Command::RecordPart { part, ttl_ms } => self.record_part(row, part, ttl_ms).await,
            Command::ForgetPart { part_number } => {
                self.sql("DELETE FROM parts WHERE part_number = ?", vec![i64::from(part_number).into()])?;
                self.record()
            }
            Command::Complete { parts, ttl_ms } => self.complete(parts, ttl_ms).await,
            Command::Abort { ttl_ms } => self.abort(row, ttl_ms).await,
        }
    }

    async fn create(&self, caller: Caller, new: NewUpload) -> ApiResult<Record> {
        if let Some(row) = self.row()? {
            return self.replay(&caller, &new, &row);
        }
        let NewUpload { upload_id, key, content_type, metadata, size, part_size, ttl_ms } = new.clone();
        let bucket = self.bucket()?;
        let mut builder = bucket.create_multipart_upload(key.clone());
        if let Some(content_type) = &content_type {
            builder =
                builder.http_metadata(HttpMetadata { content_type: Some(content_type.clone()), ..Default::default() });
        }
        let multipart = builder
            .custom_metadata(metadata.clone().into_iter().collect::<std::collections::HashMap<_, _>>())
            .execute()
            .await
            .or_internal("R2 createMultipartUpload")?;
        let r2_upload_id = multipart.upload_id().await;
        // The same Idempotency-Key, sent again while R2 answered us, may have created it first.
        if let Some(row) = self.row()? {
            if let Err(e) = multipart.abort().await {
                worker::console_warn!("R2 abort of a duplicate create of {upload_id}: {e}");
            }
            return self.replay(&caller, &new, &row);
        }
        let now = now_ms();
        self.sql(
            "INSERT INTO upload (id, upload_id, owner, key, r2_upload_id, part_size, size, content_type,
                 metadata, status, created_ms, updated_ms, expires_ms)
             VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?)",
            vec![
                upload_id.clone().into(),
                caller.sub.clone().into(),
                key.clone().into(),
                r2_upload_id.into(),
                (part_size as i64).into(),
                size.map(|s| s as i64).into(),
                content_type.into(),
                serde_json::to_string(&metadata).or_internal("metadata")?.into(),
                (now as i64).into(),
                (now as i64).into(),
                ((now + ttl_ms) as i64).into(),
            ],
        )?;
        self.state.storage().set_alarm(Duration::from_millis(ttl_ms)).await.or_internal("set alarm")?;
        let index_entry = crate::index::Entry { upload_id, key, created_ms: now, part_size, size }; // ops: index hook
        crate::index::opened(&self.state, &self.env, &caller.sub, index_entry).await; // ops: index hook
        self.record()
    }

    /// A create for an upload id that exists: its `Idempotency-Key` was used before. The same
    /// owner with the same request gets the upload back; anything else is refused.
    fn replay(&self, caller: &Caller, new: &NewUpload, row: &UploadRow) -> ApiResult<Record> {
        if row.owner != caller.sub {
            return Err(crate::error::internal("create", "upload id collision"));
        }
        let metadata: BTreeMap<String, String> = serde_json::from_str(&row.metadata).unwrap_or_default();
        let same = row.key == new.key
            && row.content_type == new.content_type
            && metadata == new.metadata
            && row.size.map(|s| s as u64) == new.size
            && row.part_size as u64 == new.part_size;
        if !same {
            return Err(ApiError::IdempotencyKeyReused);
        }
        self.record()
    }

    async fn record_part(&self, row: UploadRow, part: Part, ttl_ms: u64) -> ApiResult<Record> {
        status_error(self.live_status(&row))?;
        let now = now_ms();
        self.sql(
            "INSERT INTO parts (part_number, etag, size, md5) VALUES (?, ?, ?, ?)
             ON CONFLICT (part_number) DO UPDATE SET etag = excluded.etag, size = excluded.size, md5 = excluded.md5",
            vec![i64::from(part.part_number).into(), part.etag.into(), (part.size as i64).into(), part.md5.into()],
        )?;
        self.sql(
            "UPDATE upload SET updated_ms = ?, expires_ms = ?",
            vec![(now as i64).into(), ((now + ttl_ms) as i64).into()],
        )?;
        self.record()
    }

    /// Completes in R2 once, whoever asks and however often: a second complete waits for the
    /// first and gets the same object.
    async fn complete(&self, listed: Option<Vec<PartRef>>, ttl_ms: u64) -> ApiResult<Record> {
        let deadline = now_ms() + COMPLETE_WAIT.as_millis() as u64;
        let row = loop {
            let row = self.row()?.ok_or(ApiError::UploadNotFound)?;
            match self.live_status(&row) {
                UploadStatus::Completed => return self.record(),
                UploadStatus::Aborted => return Err(ApiError::UploadAborted),
                UploadStatus::Open => break row,
                UploadStatus::Completing if now_ms() > deadline => return Err(ApiError::UploadCompleting),
                UploadStatus::Completing => Delay::from(Duration::from_millis(100)).await,
            }
        };
        let recorded = self.parts()?;
        let chosen = choose_parts(&recorded, listed)?;
        let layout = Layout { part_size: row.part_size as u64, size: row.size.map(|s| s as u64) };
        let sizes: Vec<(u16, u64)> = chosen.iter().map(|p| (p.part_number, p.size)).collect();
        layout.check_complete(&sizes)?;

        self.set_status("completing", now_ms(), row.expires_ms as u64)?;
        let uploaded = chosen.iter().map(|p| UploadedPart::new(p.part_number, p.etag.clone()));
        let result = match self.bucket()?.resume_multipart_upload(row.key.clone(), row.r2_upload_id.clone()) {
            Ok(multipart) => multipart.complete(uploaded).await,
            Err(e) => Err(e),
        };
        let now = now_ms();
        match result {
            Ok(object) => {
                self.sql(
                    "UPDATE upload SET status = 'completed', etag = ?, object_size = ?, updated_ms = ?, expires_ms = ?",
                    vec![
                        object.etag().into(),
                        (object.size() as i64).into(),
                        (now as i64).into(),
                        ((now + ttl_ms) as i64).into(),
                    ],
                )?;
                self.state.storage().set_alarm(Duration::from_millis(ttl_ms)).await.or_internal("set alarm")?;
                crate::index::finished(&self.state, &self.env, &row.owner, &row.upload_id).await; // ops: index hook
                self.record()
            }
            Err(e) => {
                self.set_status("open", now, row.expires_ms as u64)?;
                Err(crate::error::internal("R2 complete", e))
            }
        }
    }

    async fn abort(&self, row: UploadRow, ttl_ms: u64) -> ApiResult<Record> {
        match self.live_status(&row) {
            UploadStatus::Aborted => return self.record(),
            UploadStatus::Completed => return Err(ApiError::UploadCompleted),
            UploadStatus::Completing => return Err(ApiError::UploadCompleting),
            UploadStatus::Open => {}
        }
        let now = now_ms();
        self.set_status("aborted", now, now + ttl_ms)?;
        self.abort_in_r2(&row).await;
        self.state.storage().set_alarm(Duration::from_millis(ttl_ms)).await.or_internal("set alarm")?;
        crate::index::finished(&self.state, &self.env, &row.owner, &row.upload_id).await; // ops: index hook
        self.record()
    }

    /// Frees the parts in R2. Failure is logged, not raised: the upload is aborted for us either
    /// way, and R2 itself drops unfinished uploads after seven days.
    async fn abort_in_r2(&self, row: &UploadRow) {
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
    }

    /// The stored status, except that a `completing` whose runner vanished reopens.
    fn live_status(&self, row: &UploadRow) -> UploadStatus {
        match row.status.as_str() {
            "completing" if now_ms() > row.updated_ms as u64 + COMPLETING_LEASE_MS => UploadStatus::Open,
            "completing" => UploadStatus::Completing,
            "completed" => UploadStatus::Completed,
            "aborted" => UploadStatus::Aborted,
            _ => UploadStatus::Open,
        }
    }

    fn set_status(&self, status: &str, now: u64, expires_ms: u64) -> ApiResult<()> {
        self.sql(
            "UPDATE upload SET status = ?, updated_ms = ?, expires_ms = ?",
            vec![status.into(), (now as i64).into(), (expires_ms as i64).into()],
        )
    }

    fn record(&self) -> ApiResult<Record> {
        let row = self.row()?.ok_or(ApiError::UploadNotFound)?;
        let status = self.live_status(&row);
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
            status,
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
        Ok(Record { r2_upload_id: row.r2_upload_id, upload })
    }

    fn row(&self) -> ApiResult<Option<UploadRow>> {
        Ok(self.select::<UploadRow>("SELECT * FROM upload WHERE id = 1")?.into_iter().next())
    }

    fn parts(&self) -> ApiResult<Vec<Part>> {
        let rows = self.select::<PartRow>("SELECT part_number, etag, size, md5 FROM parts ORDER BY part_number")?;
        Ok(rows
            .into_iter()
            .map(|r| Part { part_number: r.part_number as u16, etag: r.etag, size: r.size as u64, md5: r.md5 })
            .collect())
    }

    fn select<T: serde::de::DeserializeOwned>(&self, query: &str) -> ApiResult<Vec<T>> {
        self.state.storage().sql().exec(query, None).and_then(|c| c.to_array()).or_internal("reading upload state")
    }

    fn sql(&self, query: &str, bindings: Vec<worker::SqlStorageValue>) -> ApiResult<()> {
        self.state.storage().sql().exec(query, bindings).map(|_| ()).or_internal("writing upload state")
    }

    fn bucket(&self) -> ApiResult<Bucket> {
        self.env.bucket("BUCKET").or_internal("BUCKET binding")
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

fn now_ms() -> u64 {
    Date::now().as_millis()
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
