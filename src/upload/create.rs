//! `Create`: starts the R2 multipart upload and writes the upload's row; a repeated create
//! (the same `Idempotency-Key`) gets the upload back.

use std::collections::BTreeMap;

use worker::HttpMetadata;

use crate::error::{ApiError, ApiResult, OrInternal};
use crate::faults::Faults;
use crate::upload::command::{Caller, NewUpload, Record};
use crate::upload::machine::Facts;
use crate::upload::object::{now_ms, UploadState};
use crate::upload::rows::UploadRow;

impl UploadState {
    pub(super) async fn create(&self, caller: Caller, new: NewUpload, faults: &Faults) -> ApiResult<Record> {
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
        let (created, ()) = futures_util::future::join(
            created,
            crate::index::opened(&self.state, &self.env, &caller.sub, entry, faults),
        )
        .await;
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
            crate::index::opened(&self.state, &self.env, &caller.sub, entry, faults).await;
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
    pub(super) fn replay(&self, caller: &Caller, new: &NewUpload, row: &UploadRow) -> ApiResult<Record> {
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
}
