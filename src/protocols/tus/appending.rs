//! Appending a request body at a tus or draft upload's offset, and finishing an upload that
//! holds every byte: the protocol side of `upload::append` (which cuts and sends the bytes),
//! with the `Upload-Checksum` and `Content-Length` rules of the two protocols.

use r2mpu_api::layout::Layout;
use r2mpu_api::types::UploadStatus;

use super::headers::{check_media_type, content_length, parse_checksum, OFFSET_OCTET_STREAM};
use super::Protocol;
use crate::error::{ApiError, ApiResult};
use crate::http::Ctx;
use crate::upload::append::{self, Keep, Source};
use crate::upload::digest::Digesting;
use crate::upload::{Command, Record, UploadHandle};

/// Appends the request body at the record's offset (see `upload::append`); completes the upload in R2
/// when its last byte arrived. Answers the upload's record afterwards.
pub(super) async fn append_body(cx: &Ctx, upload: &UploadHandle, record: Record) -> ApiResult<Record> {
    record.ensure_open()?;
    let incoming = content_length(cx)?.ok_or(ApiError::LengthRequired)?;
    let stream = cx.req.inner().body();
    if stream.is_none() && incoming > 0 {
        return Err(ApiError::LengthRequired);
    }
    let checksum = cx.header("upload-checksum").map(|h| parse_checksum(&h)).transpose()?;
    append(cx, upload, record, incoming, Source::new(stream, incoming), checksum).await
}

/// Appends `body` (`incoming` bytes, checked against `checksum` if there is one) at the
/// record's offset, as [`append_body`] does for a request's body.
async fn append(
    cx: &Ctx,
    upload: &UploadHandle,
    mut record: Record,
    incoming: u64,
    mut body: Source,
    checksum: Option<(&'static str, Vec<u8>)>,
) -> ApiResult<Record> {
    let mut appends = record.appends.clone().ok_or(ApiError::UploadNotFound)?;
    if appends.offset == 0 && record.upload.parts.is_empty() {
        if let Some(part_size) = append::fitted_part_size(record.layout(), incoming, cx.config.max_part_size) {
            record = upload.send(Command::FitParts { part_size }).await?;
            appends = record.appends.clone().ok_or(ApiError::UploadNotFound)?;
        }
    }
    let layout = record.layout();
    let pieces = append::cut(layout.part_size, appends.offset, appends.tail_size, incoming, layout.size)?;
    let bucket = cx.bucket()?;
    if let Some((algorithm, _)) = &checksum {
        body = body.hashed(Digesting::new(algorithm)?);
    }
    let keep = match checksum {
        Some(_) => Keep::AllOrNothing,
        None => Keep::EachPart { ttl_ms: cx.config.upload_ttl_ms },
    };
    let sent = match append::send(&bucket, &record, &appends, &pieces, &mut body, upload, keep).await {
        Ok(sent) => sent,
        Err(stopped) => {
            for (part_number, token) in stopped.leases {
                upload.end_part(part_number, token, false).await?;
            }
            return Err(stopped.error);
        }
    };
    // A chunk that does not match its checksum is not kept: nothing of it is recorded.
    if let Some((_, declared)) = checksum {
        let matches = body.digest().await.map(|digest| digest == Some(declared));
        if !matches.as_ref().is_ok_and(|m| *m) {
            sent.give_back(&bucket, upload).await?;
            matches?;
            return Err(ApiError::ChecksumMismatch);
        }
    }
    let to = appends.offset + incoming;
    let record = match sent.recorded {
        // Every byte went into parts, each recorded as it landed.
        Some(recorded) if sent.offset == to && sent.tail.is_none() => recorded,
        _ => {
            let command = Command::Append {
                from: sent.offset,
                to,
                parts: sent.parts.clone(),
                tail: sent.tail.clone(),
                ttl_ms: cx.config.upload_ttl_ms,
            };
            match upload.send(command).await {
                Ok(record) => record,
                // Refused: the record names none of it. Without an answer it may name all of it,
                // so the new tail stays (and its parts' leases lapse by themselves).
                Err(error) if error != ApiError::Internal => {
                    sent.give_back(&bucket, upload).await?;
                    return Err(error);
                }
                Err(error) => return Err(error),
            }
        }
    };
    append::delete_old_tail(&bucket, &appends).await;
    if layout.size == Some(to) {
        return upload.send(Command::Complete { parts: None, ttl_ms: cx.config.upload_ttl_ms }).await;
    }
    Ok(record)
}

/// The bytes received durably: all of them once the upload is completed.
pub(super) fn offset_of(record: &Record) -> u64 {
    match (record.upload.status, record.upload.size) {
        (UploadStatus::Completed, Some(size)) => size,
        _ => record.appends.as_ref().map_or(0, |a| a.offset),
    }
}

/// Checks an append of the request's body at `offset` before anything of it is sent or
/// recorded: its media type (tus), its length (known, and within the upload's `layout`: its
/// declared length, or the 10,000 parts of its part size while the length is deferred), and
/// its `Upload-Checksum` header.
pub(super) fn check_append(cx: &Ctx, protocol: Protocol, layout: Layout, offset: u64) -> ApiResult<()> {
    let incoming = content_length(cx)?.ok_or(ApiError::LengthRequired)?;
    if protocol == Protocol::Tus && incoming > 0 {
        check_media_type(cx, OFFSET_OCTET_STREAM)?;
    }
    append::end_of(layout, offset, incoming)?;
    cx.header("upload-checksum").map(|h| parse_checksum(&h)).transpose()?;
    Ok(())
}

/// An upload whose last byte is recorded (offset = length, no tail) but that is not completed:
/// the complete that followed its last append failed. Finish it as a repeated complete does
/// (a complete that died is taken over and repeated), so that the offset a client is told
/// never stands for an object that does not exist.
///
/// The same when the last bytes still wait in the tail: a deferred length declared once every
/// byte had arrived, whose tail never became the last part (R2 failed, the request died). An
/// append of nothing sends the tail as the last part and completes.
pub(super) async fn finish_if_due(cx: &Ctx, upload: &UploadHandle, record: Record) -> ApiResult<Record> {
    let Some(appends) = record.appends.as_ref().filter(|a| Some(a.offset) == record.upload.size) else {
        return Ok(record);
    };
    match record.upload.status {
        UploadStatus::Open if appends.tail_size > 0 => append(cx, upload, record, 0, Source::new(None, 0), None).await,
        UploadStatus::Open | UploadStatus::Completing if appends.tail_size == 0 => {
            upload.send(Command::Complete { parts: None, ttl_ms: cx.config.upload_ttl_ms }).await
        }
        _ => Ok(record),
    }
}
