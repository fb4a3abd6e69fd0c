//! The one-request commands: `status`, `abort`, `rm` and `ls`.

use std::io::Write;

use r2mpu_api::types::{Upload, UploadStatus};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::resume;

/// `r2mpu status ID`: the server's view of an upload, as `name: value` lines or as JSON.
pub fn status(client: &Client, upload_id: &str, json: bool) -> Result<()> {
    let upload = client.get_upload(upload_id)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&upload).expect("Upload serializes"));
    } else {
        print!("{}", describe(&upload));
    }
    Ok(())
}

fn describe(upload: &Upload) -> String {
    let status = match upload.status {
        UploadStatus::Open => "open",
        UploadStatus::Completing => "completing",
        UploadStatus::Completed => "completed",
        UploadStatus::Aborted => "aborted",
    };
    let received: u64 = upload.parts.iter().map(|p| p.size).sum();
    let parts = match (upload.part_count, upload.size) {
        (Some(count), Some(size)) => format!("{} of {count} ({received} of {size} bytes)", upload.parts.len()),
        _ => format!("{} ({received} bytes)", upload.parts.len()),
    };
    let mut text = format!(
        "upload: {}\nkey: {}\nstatus: {status}\npart size: {}\nparts: {parts}\ncreated: {}\nexpires: {}\n",
        upload.upload_id, upload.key, upload.part_size, upload.created_at, upload.expires_at
    );
    if let Some(object) = &upload.object {
        text.push_str(&format!("etag: {}\nsize: {}\n", object.etag, object.size));
    }
    text
}

/// `r2mpu abort ID`: aborts the upload and forgets any local resume record of it.
pub fn abort(client: &Client, upload_id: &str) -> Result<()> {
    client.abort_upload(upload_id)?;
    if let Ok(dir) = resume::state_dir() {
        resume::forget_upload(&dir, upload_id);
    }
    println!("aborted: {upload_id}");
    Ok(())
}

/// `r2mpu rm KEY`.
pub fn remove(client: &Client, key: &str) -> Result<()> {
    client.delete_object(key)?;
    println!("deleted: {key}");
    Ok(())
}

/// `r2mpu ls [PREFIX]`: every object under the prefix, one per line (size, uploaded, etag, key,
/// tab-separated), following the cursor page by page.
pub fn list(client: &Client, prefix: &str) -> Result<()> {
    let mut cursor: Option<String> = None;
    let mut out = std::io::stdout().lock();
    loop {
        let page = client.list_objects(prefix, cursor.as_deref())?;
        for object in &page.objects {
            writeln!(out, "{}\t{}\t{}\t{}", object.size, object.uploaded, object.etag, object.key)
                .map_err(|e| Error::io("writing to stdout", e))?;
        }
        match page.cursor {
            Some(next) if Some(&next) != cursor.as_ref() => cursor = Some(next),
            _ => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use r2mpu_api::types::Part;

    #[test]
    fn status_lines_say_how_far_an_upload_got() {
        let upload = Upload {
            upload_id: "u1".into(),
            key: "k".into(),
            status: UploadStatus::Open,
            part_size: 5,
            size: Some(12),
            part_count: Some(3),
            content_type: None,
            metadata: Default::default(),
            parts: vec![Part { part_number: 1, etag: "e".into(), size: 5, md5: None }],
            created_at: "2026-01-01T00:00:00.000Z".into(),
            expires_at: "2026-01-02T00:00:00.000Z".into(),
            object: None,
        };
        let text = describe(&upload);
        assert!(text.contains("status: open\n"), "{text}");
        assert!(text.contains("parts: 1 of 3 (5 of 12 bytes)\n"), "{text}");
    }
}
