//! `GET /uploads` (`listUploads`): the caller's unfinished uploads from their index
//! ([`crate::index`]), each checked against its own upload object, which is the truth.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;

use r2mpu_api::types::{UploadList, UploadStatus, UploadSummary};
use worker::Response;

use crate::error::{cause, ApiError, ApiResult, OrInternal};
use crate::http::auth::Claims;
use crate::http::{json, Ctx};
use crate::index::{creating_ms, Entry, IndexCommand, IndexHandle, Page, Position};
use crate::upload::{Caller, Command, UploadHandle};

/// The default and largest page of `listUploads`.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// Upload objects asked at once while reconciling a page.
const FAN_OUT: usize = 50;

/// `listUploads`: the caller's unfinished uploads, newest first, a page at a time.
pub async fn list(cx: Ctx, claims: Claims) -> ApiResult<Response> {
    let prefix = cx.query("prefix").or_else(|| claims.prefix.clone()).unwrap_or_default();
    let limit = match cx.query("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => return Err(ApiError::invalid_field("limit", format!("must be an integer from 1 to {MAX_LIMIT}"))),
        },
    };
    let (uploads, cursor) = page(&cx, &claims, prefix, limit, cx.query("cursor")).await?;
    json(200, &UploadList { uploads, cursor })
}

/// A page of the caller's unfinished uploads under `prefix` (at most `limit`, after `cursor`),
/// newest first, and the cursor of the next page: `listUploads`, and S3's ListMultipartUploads.
pub async fn page(
    cx: &Ctx,
    claims: &Claims,
    prefix: String,
    limit: usize,
    cursor: Option<String>,
) -> ApiResult<(Vec<UploadSummary>, Option<String>)> {
    claims.check_key(&prefix)?;
    let after = cursor.map(|c| Position::parse(&c)).transpose()?;
    let index = IndexHandle::of(&cx.env, &claims.sub).or_internal("UPLOAD_INDEX binding")?;
    let page: Page =
        index.send(&IndexCommand::List { prefix, limit, after }).await.or_internal("listing the upload index")?;

    let mut uploads = Vec::with_capacity(page.entries.len());
    for batch in page.entries.chunks(FAN_OUT) {
        let states = join(batch.iter().map(|entry| Box::pin(live_state(cx, claims, entry)) as _).collect()).await;
        for (entry, state) in batch.iter().zip(states) {
            match state? {
                Some(summary) => uploads.push(summary),
                // Finished or gone: hidden, and the index learns it (best effort; the next read
                // repairs what this one could not). A young entry may be a create in progress:
                // hidden, but kept.
                None if entry.created_ms + creating_ms(&cx.env) > worker::Date::now().as_millis() => {}
                None => {
                    let remove = IndexCommand::Remove { upload_id: entry.upload_id.clone() };
                    if let Err(e) = index.send::<()>(&remove).await {
                        cause("repairing the upload index", &e);
                    }
                }
            }
        }
    }
    Ok((uploads, page.next.map(|p| p.cursor())))
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
