//! The upload interface every protocol speaks: the [`Command`]s one upload's Durable Object
//! answers, who sends them (a [`Caller`]) and what comes back (a [`Record`], or for the part
//! commands a [`PartGrant`] or nothing). The Worker sends them through an
//! [`UploadHandle`](super::UploadHandle); the object ([`super::object`]) applies them.

use std::collections::BTreeMap;

use r2mpu_api::layout::Layout;
use r2mpu_api::types::{Part, PartRef, Upload};
use serde::{Deserialize, Serialize};

use crate::error::ApiResult;
use crate::faults::Faults;
use crate::http::auth::Claims;
use crate::upload::machine;

/// Who asks: the token's subject and prefix, and the key they name when their protocol names
/// one (the guide's `/{key}?action=`). Every command but `Create` checks them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Caller {
    pub sub: String,
    pub prefix: Option<String>,
    pub key: Option<String>,
}

impl Caller {
    pub fn of(claims: &Claims) -> Caller {
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
    /// The part sent under `token` is still moving bytes: its lease runs on (`409
    /// part_in_flight` if another copy took it over). Answers nothing (`null`).
    RenewPart {
        part_number: u16,
        token: i64,
    },
    /// The part sent under `token` was not recorded: give its number back. `forget`: R2 may now
    /// hold bytes for it that were never recorded (a digest mismatch, a failure after R2 took
    /// it), so drop what we recorded for it too. Answers nothing (`null`).
    EndPart {
        part_number: u16,
        token: i64,
        forget: bool,
    },
    /// URLs are about to be signed for these parts, to be sent straight to R2 (see
    /// [`super::direct`]): check them against the layout and remember what is signed. Answers a
    /// [`Signing`], never the record.
    SignParts {
        parts: Vec<PartToSign>,
    },
    /// A part sent straight to R2 with a URL signed here: record it if it was signed so.
    /// Answers the recorded [`Part`].
    ReportPart {
        part_number: u16,
        etag: String,
        /// Lowercase hex, when the client says it sent the part with a signed `Content-MD5`.
        md5: Option<String>,
        ttl_ms: u64,
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
    /// An append from offset `from` reached R2 (see [`super::append`]): record its parts (each with
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
    pub(super) fn may_finish(&self) -> bool {
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

/// One part a URL is asked for: its number, the length the client declares when it is the last
/// part of an upload whose size is open, and the MD5 (lowercase hex) to sign.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartToSign {
    pub part_number: u16,
    pub length: Option<u64>,
    pub md5: Option<String>,
}

/// What the Worker needs to sign part URLs, answered by `SignParts`: R2's names for the upload,
/// when it expires, and each asked part's length from the layout, in the order asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Signing {
    pub key: String,
    pub r2_upload_id: String,
    pub expires_ms: u64,
    pub lengths: Vec<u64>,
}

/// What the Durable Object answers: a command's own small reply, or the whole record.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(super) enum Reply {
    Record(Box<Record>),
    Grant(PartGrant),
    Signing(Signing),
    Part(Part),
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
pub(super) struct Envelope {
    pub(super) caller: Caller,
    pub(super) command: Command,
    #[serde(default)]
    pub(super) faults: Faults,
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
