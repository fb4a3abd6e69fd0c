//! The server's list of unfinished uploads (`GET /uploads`): `r2mpu uploads`, `r2mpu abort
//! --key`, and finding the upload of a file to resume when there is no local record of it
//! (another machine started it, or the record was lost).

use std::fs::File;
use std::io::{IsTerminal, Write};

use r2mpu_api::types::{Part, Upload, UploadList, UploadSummary};

use crate::client::{check, read_json, Client};
use crate::error::{Error, Result};
use crate::etag::{self, Digest};
use crate::fileio::md5_range;
use crate::parts::part_len;

/// Every unfinished upload of the caller under `prefix`, newest first, page after page.
pub fn all(client: &Client, prefix: &str) -> Result<Vec<UploadSummary>> {
    let mut uploads = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page: UploadList = client.with_retries("list uploads", || {
            let mut request = client.get("/uploads").query("prefix", prefix).query("limit", "1000");
            if let Some(cursor) = &cursor {
                request = request.query("cursor", cursor);
            }
            read_json(check("list uploads", request.call())?)
        })?;
        uploads.extend(page.uploads);
        match page.cursor {
            Some(next) if Some(&next) != cursor.as_ref() => cursor = Some(next),
            _ => return Ok(uploads),
        }
    }
}

/// `r2mpu uploads [PREFIX]`: an aligned table on a terminal, tab-separated lines otherwise,
/// or the JSON array with `--json`.
pub fn list(client: &Client, prefix: &str, json: bool) -> Result<()> {
    let uploads = all(client, prefix)?;
    let mut out = std::io::stdout().lock();
    let text = if json {
        format!("{}\n", serde_json::to_string_pretty(&uploads).expect("uploads serialize"))
    } else {
        table(&uploads, out.is_terminal())
    };
    out.write_all(text.as_bytes()).map_err(|e| Error::io("writing to stdout", e))
}

/// One line per upload: id, key, status, parts (of how many), bytes (of how many), created.
fn table(uploads: &[UploadSummary], aligned: bool) -> String {
    let mut rows: Vec<[String; 6]> = Vec::with_capacity(uploads.len() + 1);
    if aligned {
        rows.push(["UPLOAD", "KEY", "STATUS", "PARTS", "BYTES", "CREATED"].map(String::from));
    }
    for u in uploads {
        let of = |n: String, total: Option<u64>| total.map_or(n.clone(), |t| format!("{n}/{t}"));
        let part_count = u.size.map(|size| size.div_ceil(u.part_size).max(1));
        let status = serde_json::to_value(u.status).expect("a status serializes");
        rows.push([
            u.upload_id.clone(),
            u.key.clone(),
            status.as_str().unwrap_or("").to_string(),
            of(u.parts.to_string(), part_count),
            of(u.bytes.to_string(), u.size),
            u.created_at.clone(),
        ]);
    }
    let mut text = String::new();
    if !aligned {
        for row in rows {
            text.push_str(&row.join("\t"));
            text.push('\n');
        }
        return text;
    }
    let widths: Vec<usize> = (0..6).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// `r2mpu abort --key KEY`: aborts every unfinished upload of exactly KEY.
pub fn abort_key(client: &Client, key: &str) -> Result<()> {
    let matching: Vec<UploadSummary> = all(client, key)?.into_iter().filter(|u| u.key == key).collect();
    if matching.is_empty() {
        return Err(Error::Usage(format!("no unfinished upload of {key}")));
    }
    for upload in matching {
        crate::manage::abort(client, &upload.upload_id)?;
    }
    Ok(())
}

/// The newest open upload of `key` with this declared size and, when the user named one, this
/// part size (the default depends on the link, so a run elsewhere may have picked another).
pub fn find_open(client: &Client, key: &str, size: u64, part_size: Option<u64>) -> Result<Option<Upload>> {
    let found = all(client, key)?.into_iter().find(|u| {
        u.key == key
            && u.size == Some(size)
            && part_size.is_none_or(|p| u.part_size == p)
            && u.status == r2mpu_api::types::UploadStatus::Open
    });
    found.map(|u| client.get_upload(&u.upload_id)).transpose()
}

/// The parts the server holds that are the file's own bytes, with their MD5s: checked against
/// the MD5 the server recorded (`Content-MD5`), or the part's ETag where that is an MD5. A part
/// that cannot be checked, or does not match, is left out and so sent again.
pub fn verified_parts(file: &File, upload: &Upload) -> Result<Vec<(u16, Digest)>> {
    let layout = r2mpu_api::layout::Layout { part_size: upload.part_size, size: upload.size };
    let mut verified = Vec::new();
    for part in &upload.parts {
        let Some(expected) = server_md5(part) else { continue };
        if part.size != part_len(&layout, part.part_number) {
            continue;
        }
        let (start, _) = layout.part_range(part.part_number);
        let md5 = md5_range(file, start, part.size)
            .map_err(|e| Error::io(format!("reading part {} of the file", part.part_number), e))?;
        if md5 == expected {
            verified.push((part.part_number, md5));
        }
    }
    Ok(verified)
}

/// What the server knows of a part's MD5: the one it checked, else an ETag that is an MD5.
fn server_md5(part: &Part) -> Option<Digest> {
    part.md5.as_deref().and_then(etag::parse_hex).or_else(|| etag::parse_hex(etag::unquote(&part.etag)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use r2mpu_api::types::UploadStatus;

    fn summary(id: &str, key: &str, parts: u32, bytes: u64, size: Option<u64>) -> UploadSummary {
        UploadSummary {
            upload_id: id.into(),
            key: key.into(),
            status: UploadStatus::Open,
            part_size: 5,
            size,
            parts,
            bytes,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            expires_at: "2026-01-02T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn the_table_says_how_far_each_upload_got() {
        let uploads = [summary("u1", "a/long/key.bin", 1, 5, Some(12)), summary("u2", "k", 0, 0, None)];
        let lines: Vec<String> = table(&uploads, true).lines().map(String::from).collect();
        assert!(lines[0].starts_with("UPLOAD  KEY"), "{lines:?}");
        assert_eq!(lines[1], "u1      a/long/key.bin  open    1/3    5/12   2026-01-01T00:00:00.000Z");
        assert_eq!(lines[2], "u2      k               open    0      0      2026-01-01T00:00:00.000Z");
        assert_eq!(table(&uploads[1..], false), "u2\tk\topen\t0\t0\t2026-01-01T00:00:00.000Z\n");
    }

    #[test]
    fn a_part_is_checkable_by_its_recorded_md5_or_an_md5_etag_only() {
        let md5 = etag::md5(b"x");
        let part = |etag: &str, md5: Option<String>| Part { part_number: 1, etag: etag.into(), size: 1, md5 };
        assert_eq!(server_md5(&part("opaque-r2-etag", Some(etag::hex(&md5)))), Some(md5));
        assert_eq!(server_md5(&part(&format!("\"{}\"", etag::hex(&md5)), None)), Some(md5));
        assert_eq!(server_md5(&part("opaque-r2-etag", None)), None);
    }
}
