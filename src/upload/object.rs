//! Upload state: one Durable Object per upload, holding what R2's Worker binding cannot tell us
//! (which parts arrived, with their ETags and sizes) and owning the upload's life cycle:
//! open → completing → completed, or open → aborted. Part bodies never pass through here; the
//! Worker streams them to R2 under a lease on the part number and then records the part.
//!
//! This is the shell around [`crate::upload::machine`]: it loads the machine's facts from the row, asks
//! the machine, writes the outcome back with a compare-and-set, and only then acts on R2 or the
//! alarm. Each transition has one method here: [`UploadState::create`], `begin_part`,
//! `record_part`, `end_part`, `complete`, `abort`, `r2_gone`, `settle` and the alarm.
//!
//! Requests come from the Worker only, as one JSON [`Envelope`] per call: who is asking and the
//! [`Command`]. The object answers with a problem document, or: for the part commands, what the
//! part's sender needs and no more (a [`PartGrant`], or `null`), so that a part's calls cost the
//! same at part 10,000 as at part 1; for the others, the upload's [`Record`].

use std::cell::Cell;
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
use crate::faults::{Action, Faults};
use crate::upload::machine::{self, Alarm, Attempt, Begin, Facts, Lease, Next, R2Complete, Seen};

/// How long a complete may wait for a concurrent one, or for parts in flight, before giving up
/// with `upload_completing` or `part_in_flight`.
const COMPLETE_WAIT: Duration = Duration::from_secs(30);

/// Who asks: the token's subject and prefix, and the key they name when their protocol names
/// one (the guide's `/{key}?action=`). Every command but `Create` checks them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Caller {
    pub sub: String,
    pub prefix: Option<String>,
    pub key: Option<String>,
}

impl Caller {
    pub fn of(claims: &crate::http::auth::Claims) -> Caller {
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
    /// A part of `length` bytes is about to be sent to R2: check it and lease its number.
    /// Answers a [`PartGrant`], never the record.
    BeginPart {
        part_number: u16,
        length: u64,
    },
    /// R2 took the part sent under the lease `token`. Answers nothing (`null`).
    RecordPart {
        part: Part,
        token: i64,
        ttl_ms: u64,
    },
    /// The part sent under `token` was not recorded: give its number back. `forget`: R2 may now
    /// hold bytes for it that were never recorded (a digest mismatch, a failure after R2 took
    /// it), so drop what we recorded for it too. Answers nothing (`null`).
    EndPart {
        part_number: u16,
        token: i64,
        forget: bool,
    },
    /// R2 answered a part with `NoSuchUpload`: the multipart upload is gone.
    R2Gone,
    Complete {
        parts: Option<Vec<PartRef>>,
        ttl_ms: u64,
    },
    Abort {
        ttl_ms: u64,
    },
    /// Makes a new upload appendable (tus, the IETF draft): offset 0, no tail.
    OpenAppends,
    /// A deferred length becomes known (tus `Upload-Length` on a `PATCH`).
    DeclareLength {
        size: u64,
    },
    /// An append from offset `from` reached R2 (see `append.rs`): record its parts (each with
    /// the lease it was sent under), the new offset `to` and the new tail, all or nothing.
    Append {
        from: u64,
        to: u64,
        parts: Vec<(Part, i64)>,
        tail: Option<(String, u64)>,
        ttl_ms: u64,
    },
    /// An appendable upload's first append sets its part size (see `append::fitted_part_size`),
    /// if no byte or part has arrived yet.
    FitParts {
        part_size: u64,
    },
}

impl Command {
    /// Whether the command can take the upload from unfinished to completed or aborted, so that
    /// its index entry must go (see [`UploadState::unlist_if_finished`]). The part commands
    /// cannot: they skip the two extra reads of the row that check it.
    fn may_finish(&self) -> bool {
        matches!(self, Command::Complete { .. } | Command::Abort { .. } | Command::R2Gone)
    }
}

/// What a part's sender needs before it streams the part to R2, answered by `BeginPart` with
/// the lease: the same few fields at part 1 and at part 10,000 (the parts are never listed).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartGrant {
    /// The lease token to record or end the part with.
    pub token: i64,
    pub key: String,
    pub r2_upload_id: String,
    /// The upload is fed by tus appends, which count its bytes by offset.
    pub appendable: bool,
}

/// What the Durable Object answers: a command's own small reply, or the whole record.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Reply {
    Record(Box<Record>),
    Grant(PartGrant),
    /// `null`: the command took effect (`RecordPart`, `EndPart`).
    Done,
}

impl From<Record> for Reply {
    fn from(record: Record) -> Reply {
        Reply::Record(Box::new(record))
    }
}

/// An appendable upload's durable progress: `offset` bytes received, the last `tail_size` of them
/// (less than a part) in the R2 object `tail_key`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Appends {
    pub offset: u64,
    pub tail_key: Option<String>,
    pub tail_size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Envelope {
    caller: Caller,
    command: Command,
    #[serde(default)]
    faults: Faults,
}

/// What the Worker learns about an upload: its public view and R2's own upload id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub r2_upload_id: String,
    pub upload: Upload,
    /// For an appendable upload: its offset and tail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appends: Option<Appends>,
}

impl Record {
    pub fn layout(&self) -> Layout {
        Layout { part_size: self.upload.part_size, size: self.upload.size }
    }

    /// The error a write to this upload gets unless it is open.
    pub fn ensure_open(&self) -> ApiResult<()> {
        machine::status_error(self.upload.status)
    }
}

/// The Worker's handle on one upload's Durable Object.
pub struct UploadHandle {
    stub: worker::Stub,
    caller: Caller,
    faults: Faults,
}

impl UploadHandle {
    pub fn new(env: &Env, upload_id: &str, caller: Caller) -> ApiResult<UploadHandle> {
        let namespace = env.durable_object("UPLOADS").or_internal("UPLOADS binding")?;
        let stub = namespace.get_by_name(upload_id).or_internal("durable object stub")?;
        Ok(UploadHandle { stub, caller, faults: Faults::default() })
    }

    /// Sends the request's injected faults along with every command (test builds only).
    pub fn with_faults(self, faults: Faults) -> UploadHandle {
        UploadHandle { faults, ..self }
    }

    /// Sends a command that answers with the upload's record (all but the part commands).
    pub async fn send(&self, command: Command) -> ApiResult<Record> {
        self.call(command).await
    }

    /// Leases part `part_number` for a sender of `length` bytes (`409 part_in_flight` while
    /// another sender holds it) and answers what the sender needs to stream it.
    pub async fn begin_part(&self, part_number: u16, length: u64) -> ApiResult<PartGrant> {
        self.call(Command::BeginPart { part_number, length }).await
    }

    /// Records `part`, which R2 took under the lease `token`.
    pub async fn record_part(&self, part: Part, token: i64, ttl_ms: u64) -> ApiResult<()> {
        self.call(Command::RecordPart { part, token, ttl_ms }).await
    }

    /// Gives back the lease `token` on `part_number`; `forget`: see [`Command::EndPart`].
    pub async fn end_part(&self, part_number: u16, token: i64, forget: bool) -> ApiResult<()> {
        self.call(Command::EndPart { part_number, token, forget }).await
    }

    async fn call<T: serde::de::DeserializeOwned>(&self, command: Command) -> ApiResult<T> {
        let envelope = Envelope { caller: self.caller.clone(), command, faults: self.faults.clone() };
        let body = serde_json::to_string(&envelope).or_internal("encoding command")?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(body.into()));
        let request = Request::new_with_init("https://upload-state/", &init).or_internal("state request")?;
        let mut response = self.stub.fetch_with_request(request).await.or_internal("state call")?;
        let text = response.text().await.or_internal("state response")?;
        if response.status_code() == 200 {
            serde_json::from_str(&text).or_internal("decoding the upload state's answer")
        } else {
            Err(serde_json::from_str::<ApiError>(&text).or_internal("decoding error")?)
        }
    }
}

#[durable_object]
pub struct UploadState {
    state: State,
    env: Env,
    /// The lease token of the complete this instance is running, if any. It dies with the
    /// instance, which is how a later request knows a `completing` upload's runner is gone.
    running: Cell<Option<i64>>,
    /// Whether the tables exist: `deleteAll()` drops them when a record is forgotten.
    schema_ready: Cell<bool>,
}

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
    CREATE TABLE IF NOT EXISTS appends (
        id INTEGER PRIMARY KEY CHECK (id = 1), offset INTEGER NOT NULL, tail_key TEXT,
        tail_size INTEGER NOT NULL);";

#[derive(Debug, Clone, Deserialize)]
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
    expires_ms: f64,
    ttl_ms: f64,
    next_token: f64,
    lease_token: Option<f64>,
    lease_until_ms: Option<f64>,
    attempt_since_ms: Option<f64>,
    attempt_size: Option<f64>,
    attempt_parts: Option<String>,
    etag: Option<String>,
    object_size: Option<f64>,
}

impl UploadRow {
    fn facts(&self) -> Facts {
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

impl DurableObject for UploadState {
    fn new(state: State, env: Env) -> Self {
        UploadState { state, env, running: Cell::new(None), schema_ready: Cell::new(false) }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let envelope: Envelope = req.json().await?;
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
        let mut facts = row.facts();
        let before = facts.clone();
        let now = now_ms();
        match facts.alarm(self.running.get(), now) {
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
            Command::EndPart { part_number, token, forget } => return self.end_part(part_number, token, forget),
            Command::Get => self.record(),
            Command::R2Gone => self.r2_gone(row, &faults).await,
            Command::Complete { parts, ttl_ms } => self.complete(parts, ttl_ms, &faults).await,
            Command::Abort { ttl_ms } => self.abort(row, ttl_ms, &faults).await,
            Command::OpenAppends => self.open_appends(),
            Command::DeclareLength { size } => self.declare_length(row, size),
            Command::Append { from, to, parts, tail, ttl_ms } => self.append(row, from, to, parts, tail, ttl_ms).await,
            Command::FitParts { part_size } => self.fit_parts(row, part_size),
        };
        record.map(Reply::from)
    }

    async fn create(&self, caller: Caller, new: NewUpload, faults: &Faults) -> ApiResult<Record> {
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
        let created = async {
            faults.r2("create").await?;
            builder
                .custom_metadata(metadata.clone().into_iter().collect::<std::collections::HashMap<_, _>>())
                .execute()
                .await
                .or_internal("R2 createMultipartUpload")
        };
        // The owner's index hears of the upload while R2 creates it, not after: one Durable
        // Object call less on the create's path. If R2 fails, the entry names an upload that
        // never was; a listing hides it (its object answers 404) and drops it once it is older
        // than a create can take (`index::CREATING_MS`), so it never drops one being created.
        let now = now_ms();
        let entry =
            crate::index::Entry { upload_id: upload_id.clone(), key: key.clone(), created_ms: now, part_size, size };
        let (created, ()) =
            futures_util::future::join(created, crate::index::opened(&self.state, &self.env, &caller.sub, entry)).await;
        let multipart = created?;
        let r2_upload_id = multipart.upload_id().await;
        // The same Idempotency-Key, sent again while R2 answered us, may have created it first.
        if let Some(row) = self.row()? {
            if let Err(e) = multipart.abort().await {
                worker::console_warn!("R2 abort of a duplicate create of {upload_id}: {e}");
            }
            // Our entry may have landed after the first create's: put back the one it made.
            let entry = crate::index::Entry {
                upload_id: upload_id.clone(),
                key: row.key.clone(),
                created_ms: row.created_ms as u64,
                part_size: row.part_size as u64,
                size: row.size.map(|s| s as u64),
            };
            crate::index::opened(&self.state, &self.env, &caller.sub, entry).await;
            return self.replay(&caller, &new, &row);
        }
        let facts = Facts::new(now, ttl_ms);
        self.sql(
            "INSERT INTO upload (id, upload_id, owner, key, r2_upload_id, part_size, size, content_type,
                 metadata, status, created_ms, updated_ms, expires_ms, ttl_ms, next_token)
             VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?)",
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
                (facts.expires_ms as i64).into(),
                (ttl_ms as i64).into(),
                facts.next_token.into(),
            ],
        )?;
        self.alarm_at(facts.expires_ms).await?;
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

    /// Checks the part against the upload's status and layout and leases its number. Touches
    /// the upload's row and the part's lease row only: its cost and its answer do not grow with
    /// the parts already recorded.
    fn begin_part(&self, row: UploadRow, part_number: u16, length: u64) -> ApiResult<Reply> {
        let mut facts = row.facts();
        let before = facts.clone();
        machine::status_error(facts.status)?;
        Layout { part_size: row.part_size as u64, size: row.size.map(|s| s as u64) }.check_part(part_number, length)?;
        let lease = facts.begin_part(part_number, self.part_lease(part_number)?, length, now_ms())?;
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
    async fn record_part(&self, row: UploadRow, part: Part, token: i64, ttl_ms: u64) -> ApiResult<Reply> {
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

    fn end_part(&self, part_number: u16, token: i64, forget: bool) -> ApiResult<Reply> {
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
    async fn r2_gone(&self, row: UploadRow, faults: &Faults) -> ApiResult<Record> {
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

    /// Completes in R2 once, whoever asks and however often: a second complete waits for the
    /// first and gets the same object; a complete whose runner died is taken over and repeated.
    async fn complete(&self, listed: Option<Vec<PartRef>>, ttl_ms: u64, faults: &Faults) -> ApiResult<Record> {
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
        if first.status == "open" && first.attempt_parts.is_none() && self.part_in_flight()?.is_none() {
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
                return Err(ApiError::PartInFlight { part_number });
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
    fn plan_attempt(&self, row: &UploadRow, recorded: &[Part], listed: Option<Vec<PartRef>>) -> ApiResult<Attempt> {
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

    fn release_complete(&self, token: i64) -> ApiResult<()> {
        let mut facts = self.facts()?;
        let before = facts.clone();
        if facts.release_complete(token) {
            self.save(&before, &facts, None)?;
        }
        Ok(())
    }

    /// Another request took this complete over: answer with the upload's true state.
    fn lost(&self) -> ApiResult<Record> {
        let record = self.record()?;
        match record.upload.status {
            UploadStatus::Completed => Ok(record),
            status => machine::status_error(status).and(Err(ApiError::UploadCompleting)),
        }
    }

    async fn abort(&self, row: UploadRow, ttl_ms: u64, faults: &Faults) -> ApiResult<Record> {
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

    fn open_appends(&self) -> ApiResult<Record> {
        if self.appends()?.is_none() && self.parts()?.is_empty() {
            self.sql("INSERT INTO appends (id, offset, tail_size) VALUES (1, 0, 0)", vec![])?;
        }
        self.record()
    }

    /// Sets a deferred length once; the same length again is fine.
    fn declare_length(&self, row: UploadRow, size: u64) -> ApiResult<Record> {
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
    fn fit_parts(&self, row: UploadRow, part_size: u64) -> ApiResult<Record> {
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
    async fn append(
        &self,
        row: UploadRow,
        from: u64,
        to: u64,
        parts: Vec<(Part, i64)>,
        tail: Option<(String, u64)>,
        ttl_ms: u64,
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
                return Err(ApiError::PartInFlight { part_number: part.part_number });
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
        if facts.expires_ms != before.expires_ms {
            self.alarm_at(facts.expires_ms).await?;
        }
        self.record()
    }

    fn appends(&self) -> ApiResult<Option<Appends>> {
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

    /// R2 no longer has the multipart upload, or nobody knows whether a complete reached it:
    /// look at the key's object and let the machine decide; free R2's parts if it is aborted.
    async fn settle(&self, row: &UploadRow, faults: &Faults) -> ApiResult<UploadStatus> {
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
        // A tus upload's bytes past its last full part wait in a temporary object: free it too.
        if let (Ok(Some(Appends { tail_key: Some(tail), .. })), Ok(bucket)) = (self.appends(), self.bucket()) {
            if let Err(e) = bucket.delete(tail).await {
                worker::console_warn!("deleting the tus tail of {}: {e}", row.upload_id);
            }
        }
    }

    /// Test builds: `r2.forget=now` makes R2 drop the multipart upload behind our back.
    async fn r2_forget_if_asked(&self, row: &UploadRow, faults: &Faults) -> ApiResult<()> {
        if faults.at("r2.forget").await? == Some(Action::Now) {
            self.abort_in_r2(row).await;
        }
        Ok(())
    }

    /// Tells the owner's upload index (`src/index.rs`) to stop listing this upload once a
    /// command or the alarm took it from unfinished (`before`) to completed or aborted. Every
    /// status change goes through [`UploadState::save`]; this runs after each of them.
    async fn unlist_if_finished(&self, before: Option<&UploadRow>) {
        if let Some((owner, upload_id)) = self.newly_finished(before) {
            crate::index::finished(&self.state, &self.env, &owner, &upload_id).await;
        }
    }

    /// [`UploadState::unlist_if_finished`] after the answer has gone out, so that a complete or
    /// an abort does not wait for a second Durable Object. Safe because a listing never trusts
    /// the index alone: it asks each listed upload's own object and hides (and unlists) those
    /// that are finished, so an entry removed a moment late, or never (a crash), is never shown.
    fn unlist_later_if_finished(&self, before: Option<&UploadRow>) {
        if let Some((owner, upload_id)) = self.newly_finished(before) {
            use wasm_bindgen::JsCast;
            let raw: &wasm_bindgen::JsValue = self.state.as_raw().as_ref();
            let (state, env) =
                (State::from(raw.clone().unchecked_into::<worker::worker_sys::DurableObjectState>()), self.env.clone());
            self.state.wait_until(async move { crate::index::finished(&state, &env, &owner, &upload_id).await });
        }
    }

    /// The owner and id of the upload if `before` shows it unfinished and its row now finished.
    fn newly_finished(&self, before: Option<&UploadRow>) -> Option<(String, String)> {
        let unfinished =
            |row: &UploadRow| matches!(parse_status(&row.status), UploadStatus::Open | UploadStatus::Completing);
        let before = before.filter(|row| unfinished(row))?;
        let finished = self.row().ok().flatten().is_some_and(|now| !unfinished(&now));
        finished.then(|| (before.owner.clone(), before.upload_id.clone()))
    }

    /// Forgets a finished upload entirely: `deleteAll()` frees the object's storage, tables
    /// included; they are recreated on next use.
    async fn forget(&self) -> worker::Result<()> {
        self.state.storage().delete_alarm().await?;
        self.state.storage().delete_all().await?;
        self.schema_ready.set(false);
        Ok(())
    }

    async fn alarm_at(&self, when_ms: u64) -> ApiResult<()> {
        let wait = when_ms.saturating_sub(now_ms()).max(1);
        self.state.storage().set_alarm(Duration::from_millis(wait)).await.or_internal("set alarm")
    }

    /// Writes the machine's new facts if the row still holds the old ones (compare-and-set), and
    /// the completed object when there is one. A lost race is answered with the true state.
    /// Every status change after `create` is written here.
    fn save(&self, before: &Facts, after: &Facts, object: Option<&Seen>) -> ApiResult<()> {
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

    fn facts(&self) -> ApiResult<Facts> {
        Ok(self.row()?.ok_or(ApiError::UploadNotFound)?.facts())
    }

    fn part_lease(&self, part_number: u16) -> ApiResult<Option<Lease>> {
        let rows = self.select_with::<LeaseRow>(
            "SELECT part_number, token, until_ms FROM part_leases WHERE part_number = ?",
            vec![i64::from(part_number).into()],
        )?;
        Ok(rows.first().map(|r| Lease { token: r.token as i64, until_ms: r.until_ms as u64 }))
    }

    /// A part whose sender still holds its lease.
    fn part_in_flight(&self) -> ApiResult<Option<u16>> {
        let rows = self.select_with::<LeaseRow>(
            "SELECT part_number, token, until_ms FROM part_leases WHERE until_ms > ? ORDER BY part_number LIMIT 1",
            vec![(now_ms() as i64).into()],
        )?;
        Ok(rows.first().map(|r| r.part_number as u16))
    }

    fn record(&self) -> ApiResult<Record> {
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
    fn row(&self) -> ApiResult<Option<UploadRow>> {
        if !self.schema_ready.get() {
            let tables = self.state.storage().sql().exec("SELECT name FROM sqlite_master WHERE name = 'upload'", None);
            let tables: Vec<serde_json::Value> = tables.and_then(|c| c.to_array()).or_internal("reading the schema")?;
            if tables.is_empty() {
                return Ok(None);
            }
        }
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
        self.select_with(query, vec![])
    }

    fn select_with<T: serde::de::DeserializeOwned>(
        &self,
        query: &str,
        bindings: Vec<worker::SqlStorageValue>,
    ) -> ApiResult<Vec<T>> {
        self.ensure_schema()?;
        self.state.storage().sql().exec(query, bindings).and_then(|c| c.to_array()).or_internal("reading upload state")
    }

    fn sql(&self, query: &str, bindings: Vec<worker::SqlStorageValue>) -> ApiResult<()> {
        self.ensure_schema()?;
        self.state.storage().sql().exec(query, bindings).map(|_| ()).or_internal("writing upload state")
    }

    fn ensure_schema(&self) -> ApiResult<()> {
        if !self.schema_ready.get() {
            self.state.storage().sql().exec(SCHEMA, None).or_internal("creating the upload schema")?;
            self.schema_ready.set(true);
        }
        Ok(())
    }

    fn bucket(&self) -> ApiResult<Bucket> {
        self.env.bucket("BUCKET").or_internal("BUCKET binding")
    }
}

/// Marks this instance as running the complete holding `token` until dropped (also when the
/// request is cancelled mid-way).
struct Running<'a> {
    cell: &'a Cell<Option<i64>>,
    token: i64,
}

impl<'a> Running<'a> {
    fn start(cell: &'a Cell<Option<i64>>, token: i64) -> Running<'a> {
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

fn seen(object: &worker::Object) -> Seen {
    Seen { etag: object.etag(), size: object.size(), uploaded_ms: object.uploaded().as_millis() }
}

/// R2's answer to a complete, by its error code (10024 `NoSuchUpload`, 10025 `InvalidPart`).
fn classify_complete_error(message: &str) -> R2Complete {
    if is_no_such_upload(message) {
        R2Complete::Gone
    } else if message.contains("(10025)") || message.contains("InvalidPart") {
        R2Complete::InvalidPart
    } else {
        worker::console_error!("R2 complete: {message}");
        R2Complete::Failed
    }
}

/// Whether an R2 error is `NoSuchUpload` (code 10024): the multipart upload is gone.
pub fn is_no_such_upload(message: &str) -> bool {
    message.contains("(10024)") || message.contains("NoSuchUpload")
}

fn parse_status(status: &str) -> UploadStatus {
    match status {
        "completing" => UploadStatus::Completing,
        "completed" => UploadStatus::Completed,
        "aborted" => UploadStatus::Aborted,
        _ => UploadStatus::Open,
    }
}

fn status_name(status: UploadStatus) -> &'static str {
    match status {
        UploadStatus::Open => "open",
        UploadStatus::Completing => "completing",
        UploadStatus::Completed => "completed",
        UploadStatus::Aborted => "aborted",
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
