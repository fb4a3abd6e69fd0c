//! Direct parts, the Durable Object's half: a part's bytes go from the client straight to R2's
//! S3 endpoint with a URL the Worker signed (`crate::protocols::direct`), never through the
//! Worker; the object decides what may be signed (`SignParts`) and records what was sent
//! (`ReportPart`).
//!
//! ## What R2 enforces, what the object enforces
//! The signature covers the method, the key, R2's upload id, the part number, the exact
//! `Content-Length` the layout gives the part, and `Content-MD5` when the client asked for one:
//! R2 refuses any other (`403`, `400 BadDigest`), and after `X-Amz-Expires`. So the object only
//! signs for an open upload of the caller (ownership, prefix and scope are checked as for every
//! command, before anything is signed), with lengths from its own layout; it remembers each
//! signed `(part number, MD5 or none)` with its length in `signed_parts`, and records a reported
//! part only when it matches one of them. Where R2's part ETag is an MD5 (production R2 answers
//! the hex MD5 of the part) and an MD5 was signed, the two must agree. Local R2's part ETags are
//! opaque strings, neither MD5s nor checkable here: there the report is taken as given, and a
//! wrong ETag is caught where R2 checks every ETag, at complete (`InvalidPart`, the `409
//! parts_rejected` that names the parts to send again).
//!
//! ## Leases, the part race and crashes
//! A direct part takes no lease: its bytes never pass the Worker, so there is no stream to
//! keep alive or to cut. What the lease guarantees for parts through the Worker still holds:
//! - A report while a copy of the same part comes through the Worker (its lease is live) is
//!   `409 part_in_flight`: that copy will be the one R2 keeps, and its own record follows.
//! - Two copies sent directly at once are both R2's to order; whichever report lands last is
//!   recorded. With a signed MD5 both copies are the same bytes, and R2's ETag for them is the
//!   same in production. Otherwise the record may name the copy R2 did not keep, which
//!   complete finds (R2 checks each ETag) and answers with `parts_rejected` naming the part: the
//!   upload stays open and the part is sent again. Never a wrong object.
//! - A client that crashes between its PUT to R2 and its report loses only the report: the
//!   part is not recorded, and a resumed upload sends it again (a fresh URL, or the old one
//!   while it lives). The object writes nothing before R2 has the bytes, so a crash of the
//!   Worker or the object at any point leaves a record that names only parts R2 took.

use r2mpu_api::layout::Layout;
use r2mpu_api::types::Part;
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::upload::command::{PartToSign, Reply, Signing};
use crate::upload::machine;
use crate::upload::object::{now_ms, UploadState};
use crate::upload::rows::UploadRow;

impl UploadState {
    /// Checks each part against the upload's status and layout, notes it as signed, and
    /// answers what the Worker signs with. Writes nothing else: signing is not activity.
    pub(super) fn sign_parts(&self, row: UploadRow, parts: &[PartToSign]) -> ApiResult<Reply> {
        machine::status_error(row.facts().status)?;
        if self.appends()?.is_some() {
            let fed_by_tus = "this upload is fed by tus appends (PATCH /tus/{uploadId}), not by parts";
            return Err(ApiError::invalid_field("partNumber", fed_by_tus));
        }
        let layout = Layout { part_size: row.part_size as u64, size: row.size.map(|s| s as u64) };
        let mut lengths = Vec::with_capacity(parts.len());
        for part in parts {
            let n = part.part_number;
            let length = match (layout.size, part.length) {
                (_, Some(length)) => length,
                (Some(_), None) => {
                    let (start, end) = layout.part_range(n);
                    end - start
                }
                (None, None) => layout.part_size,
            };
            layout.check_part(n, length)?;
            lengths.push(length);
        }
        for (part, length) in parts.iter().zip(&lengths) {
            self.sql(
                "INSERT INTO signed_parts (part_number, md5, length) VALUES (?, ?, ?)
                 ON CONFLICT (part_number, md5) DO UPDATE SET length = excluded.length",
                vec![
                    i64::from(part.part_number).into(),
                    part.md5.clone().unwrap_or_default().into(),
                    (*length as i64).into(),
                ],
            )?;
        }
        Ok(Reply::Signing(Signing {
            key: row.key,
            r2_upload_id: row.r2_upload_id,
            expires_ms: row.expires_ms as u64,
            lengths,
        }))
    }

    /// Records a part sent straight to R2, if a URL was signed for it with this MD5 (or none),
    /// at the signed length. See the module's doc for what is checked and why.
    pub(super) async fn report_part(
        &self,
        row: UploadRow,
        part_number: u16,
        etag: String,
        md5: Option<String>,
        ttl_ms: u64,
    ) -> ApiResult<Reply> {
        #[derive(Deserialize)]
        struct Signed {
            length: f64,
        }
        let number = i64::from(part_number);
        let signed: Vec<Signed> = self.select_with(
            "SELECT length FROM signed_parts WHERE part_number = ? AND md5 = ?",
            vec![number.into(), md5.clone().unwrap_or_default().into()],
        )?;
        let Some(signed) = signed.first() else {
            return Err(ApiError::PartNotSigned { part_number });
        };
        if let (Some(md5), Some(etag_md5)) = (&md5, md5_of_etag(&etag)) {
            if *md5 != etag_md5 {
                return Err(ApiError::DigestMismatch { part_number });
            }
        }
        let mut facts = row.facts();
        let before = facts.clone();
        facts.report_part(part_number, self.part_lease(part_number)?, ttl_ms, now_ms())?;
        self.save(&before, &facts, None)?;
        let part = Part { part_number, etag, size: signed.length as u64, md5 };
        self.sql(
            "INSERT INTO parts (part_number, etag, size, md5) VALUES (?, ?, ?, ?)
             ON CONFLICT (part_number) DO UPDATE SET etag = excluded.etag, size = excluded.size, md5 = excluded.md5",
            vec![number.into(), part.etag.clone().into(), (part.size as i64).into(), part.md5.clone().into()],
        )?;
        if facts.expires_ms < before.expires_ms {
            self.alarm_at(facts.expires_ms).await?;
        }
        Ok(Reply::Part(part))
    }
}

/// The MD5 an ETag is, lowercase hex, when it is one (production R2's part ETags); local R2's
/// opaque ETags are not.
pub fn md5_of_etag(etag: &str) -> Option<String> {
    let bare = etag.trim().trim_start_matches("W/").trim_matches('"');
    (bare.len() == 32 && bare.bytes().all(|b| b.is_ascii_hexdigit())).then(|| bare.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::md5_of_etag;

    #[test]
    fn an_etag_is_an_md5_only_when_it_is_32_hex_digits() {
        let md5 = "9e107d9d372bb6826bd81d3542a419d6";
        assert_eq!(md5_of_etag(&format!("\"{}\"", md5.to_uppercase())).as_deref(), Some(md5));
        assert_eq!(md5_of_etag(md5).as_deref(), Some(md5));
        assert_eq!(md5_of_etag("nmTFOqoGQquUCNAV9sWxxn2-RKgtYEZBdYDPEbNLR9Q"), None, "local R2's opaque ETag");
        assert_eq!(md5_of_etag("\"9e107d9d372bb6826bd81d3542a419d6-2\""), None, "a multipart object's");
    }
}
