//! The Worker's side of the upload interface: an [`UploadHandle`] sends one upload's Durable
//! Object its [`Command`]s; [`start`], [`finish`] and [`cancel`] are the create, complete and
//! abort every protocol shares (parts: [`super::part`]).

use std::rc::Rc;

use r2mpu_api::layout::Layout;
use r2mpu_api::types::{CompletedObject, CreateUpload, Part, PartRef};
use worker::Env;

use crate::error::{internal, ApiError, ApiResult, OrInternal};
use crate::faults::Faults;
use crate::hex::{hex, random_hex};
use crate::http::auth::Claims;
use crate::http::Ctx;
use crate::stub::JsonStub;
use crate::upload::command::{Caller, Command, Envelope, NewUpload, PartGrant, PartToSign, Record, Signing};

/// The Worker's handle on one upload's Durable Object; a clone reaches the same object (a part's
/// lease keeps one to renew itself, [`super::lease`]).
#[derive(Clone)]
pub struct UploadHandle {
    stub: Rc<JsonStub>,
    caller: Caller,
    faults: Faults,
}

impl UploadHandle {
    pub fn new(env: &Env, upload_id: &str, caller: Caller) -> ApiResult<UploadHandle> {
        let namespace = env.durable_object("UPLOADS").or_internal("UPLOADS binding")?;
        let stub = namespace.get_by_name(upload_id).or_internal("durable object stub")?;
        let stub = Rc::new(JsonStub::new(stub, "https://upload-state/"));
        Ok(UploadHandle { stub, caller, faults: Faults::default() })
    }

    /// The handle on `upload_id` for a request, sending the request's injected faults (test
    /// builds only) along with every command: an id of the wrong shape is `404` before any
    /// Durable Object wakes.
    pub fn of(cx: &Ctx, upload_id: &str, caller: Caller) -> ApiResult<UploadHandle> {
        if !is_upload_id(upload_id) {
            return Err(ApiError::UploadNotFound);
        }
        Ok(UploadHandle { faults: cx.faults(), ..UploadHandle::new(&cx.env, upload_id, caller)? })
    }

    /// The request's injected faults, for the R2 calls made on the upload's behalf.
    pub fn faults(&self) -> &Faults {
        &self.faults
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

    /// Keeps the lease `token` on `part_number` for a sender whose bytes still flow.
    pub async fn renew_part(&self, part_number: u16, token: i64) -> ApiResult<()> {
        self.call(Command::RenewPart { part_number, token }).await
    }

    /// Gives back the lease `token` on `part_number`; `forget`: see [`Command::EndPart`].
    pub async fn end_part(&self, part_number: u16, token: i64, forget: bool) -> ApiResult<()> {
        self.call(Command::EndPart { part_number, token, forget }).await
    }

    /// Checks parts against the layout and notes them as signed (see [`super::direct`]).
    pub async fn sign_parts(&self, parts: Vec<PartToSign>) -> ApiResult<Signing> {
        self.call(Command::SignParts { parts }).await
    }

    /// Records a part sent straight to R2 with a signed URL, answering the recorded part.
    pub async fn report_part(
        &self,
        part_number: u16,
        etag: String,
        md5: Option<String>,
        ttl_ms: u64,
    ) -> ApiResult<Part> {
        self.call(Command::ReportPart { part_number, etag, md5, ttl_ms }).await
    }

    async fn call<T: serde::de::DeserializeOwned>(&self, command: Command) -> ApiResult<T> {
        let envelope = Envelope { caller: self.caller.clone(), command, faults: self.faults.clone() };
        let body = serde_json::to_string(&envelope).or_internal("encoding command")?;
        let (status, text) = self.stub.post(&body).await.or_internal("state call")?;
        if status == 200 {
            serde_json::from_str(&text).or_internal("decoding the upload state's answer")
        } else {
            Err(serde_json::from_str::<ApiError>(&text).or_internal("decoding error")?)
        }
    }
}

/// Starts an upload of `body.key` owned by the token's subject. With an `Idempotency-Key`, the
/// upload id derives from the subject and the key, so a retried create reaches the same Durable
/// Object, which answers with the upload the first attempt made (see [`idempotent_upload_id`]).
pub async fn start(cx: &Ctx, claims: &Claims, body: CreateUpload, layout: Layout) -> ApiResult<Record> {
    claims.check_key(&body.key)?;
    let upload_id = match cx.header("idempotency-key") {
        Some(key) => idempotent_upload_id(&claims.sub, &key)?,
        None => new_upload_id()?,
    };
    UploadHandle::of(cx, &upload_id, Caller::of(claims))?
        .send(Command::Create(NewUpload {
            upload_id: upload_id.clone(),
            key: body.key,
            content_type: body.content_type,
            metadata: body.metadata.unwrap_or_default(),
            size: layout.size,
            part_size: layout.part_size,
            ttl_ms: cx.config.upload_ttl_ms,
        }))
        .await
}

/// Completes the upload from the listed parts, or from all recorded ones.
pub async fn finish(
    cx: &Ctx,
    upload_id: &str,
    parts: Option<Vec<PartRef>>,
    caller: Caller,
) -> ApiResult<CompletedObject> {
    let upload = UploadHandle::of(cx, upload_id, caller)?;
    let record = upload.send(Command::Complete { parts, ttl_ms: cx.config.upload_ttl_ms }).await?;
    record.upload.object.ok_or_else(|| internal("complete", "no object after complete"))
}

/// Aborts the upload and frees its parts.
pub async fn cancel(cx: &Ctx, upload_id: &str, caller: Caller) -> ApiResult<()> {
    let upload = UploadHandle::of(cx, upload_id, caller)?;
    upload.send(Command::Abort { ttl_ms: cx.config.upload_ttl_ms }).await?;
    Ok(())
}

/// 128 random bits, as 32 lowercase hex digits: unguessable, and safe in any URL.
fn new_upload_id() -> ApiResult<String> {
    random_hex::<16>().or_internal("random upload id")
}

/// The upload id for `Idempotency-Key: key` from `subject`: SHA-256 of the two, as the 32 hex
/// digits of its first 128 bits. Another subject's same key is another upload.
fn idempotent_upload_id(subject: &str, key: &str) -> ApiResult<String> {
    let key = key.trim();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        let message = format!("must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters");
        return Err(ApiError::invalid_field("Idempotency-Key", message));
    }
    let hash = hmac_sha256::Hash::hash(format!("r2mpu upload\0{subject}\0{key}").as_bytes());
    Ok(hex(&hash[..16]))
}

/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Cheap shape check, so that junk ids never wake a Durable Object.
fn is_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_are_32_lowercase_hex_digits() {
        let id = new_upload_id().unwrap();
        assert!(is_upload_id(&id), "{id}");
        assert_ne!(id, new_upload_id().unwrap());
        assert!(!is_upload_id("../../etc"));
        assert!(!is_upload_id(&id.to_uppercase()));
    }

    #[test]
    fn an_idempotency_key_names_one_upload_per_subject() {
        let id = idempotent_upload_id("alice", "k-1").unwrap();
        assert!(is_upload_id(&id), "{id}");
        assert_eq!(idempotent_upload_id("alice", " k-1 ").unwrap(), id);
        assert_ne!(idempotent_upload_id("bob", "k-1").unwrap(), id);
        assert_ne!(idempotent_upload_id("alice", "k-2").unwrap(), id);
        // The separator keeps ("a", "b\0c") and ("a\0b", "c") apart.
        assert_ne!(idempotent_upload_id("a", "bc").unwrap(), idempotent_upload_id("ab", "c").unwrap());
        for bad in ["", "  ", "tab\there", &"k".repeat(256), "ключ"] {
            assert!(idempotent_upload_id("alice", bad).is_err(), "{bad:?}");
        }
    }
}
