//! Direct parts, the Durable Object's half: a part's bytes go from the client straight to R2's
//! S3 endpoint with a URL the Worker signed (`crate::protocols::direct`), never through the
//! Worker; the object decides what may be signed (`SignParts`) and records what was sent: when
//! the client reports it (`ReportPart`), or when a complete lists it (`adopt_listed`).
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
//!   while it lives), unless its complete lists it with R2's ETag. The object writes nothing
//!   before R2 has the bytes, so a crash of the Worker or the object at any point leaves a
//!   record that names only parts R2 took.

use std::collections::BTreeMap;

use r2mpu_api::layout::Layout;
use r2mpu_api::types::{Part, PartRef};
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
        part_number: u16,
        etag: String,
        md5: Option<String>,
        ttl_ms: u64,
    ) -> ApiResult<Reply> {
        let signed = self.signed(Some(part_number))?.remove(&part_number).unwrap_or_default();
        let Some(signed) = signed.iter().find(|s| s.md5 == md5) else {
            return Err(ApiError::PartNotSigned { part_number });
        };
        if let (Some(md5), Some(etag_md5)) = (&md5, md5_of_etag(&etag)) {
            if *md5 != etag_md5 {
                return Err(ApiError::DigestMismatch { part_number });
            }
        }
        let part = Part { part_number, etag, size: signed.length, md5 };
        let (before, after) = self.record_direct(&part, ttl_ms)?;
        if after < before {
            self.alarm_at(after).await?;
        }
        Ok(Reply::Part(part))
    }

    /// A complete's list naming a part sent straight to R2 whose report never came (the client
    /// completes without waiting for it, or does not report at all, as Uppy's `@uppy/aws-s3`
    /// with a `signRequest` hook), or came for another copy: the part is recorded under the
    /// listed ETag, as its report would have been, if a URL was signed for it. R2 checks every
    /// ETag at complete, so a wrong one costs the client a `parts_rejected`, never a wrong
    /// object. A part never signed, or whose copy through the Worker is in flight, is left to
    /// the complete's own checks (`part_not_uploaded`, `etag_mismatch`, waiting for it).
    /// Answers the deadline the alarm must move to, if it came earlier.
    pub(super) fn adopt_listed(&self, listed: &[PartRef], ttl_ms: u64) -> ApiResult<Option<u64>> {
        let mut signed = self.signed(None)?;
        if signed.is_empty() {
            return Ok(None);
        }
        let recorded: BTreeMap<u16, String> =
            self.parts()?.into_iter().map(|p| (p.part_number, p.etag.trim_matches('"').to_string())).collect();
        let mut earlier = None;
        for wanted in listed {
            let (n, etag) = (wanted.part_number, wanted.etag.trim_matches('"'));
            if recorded.get(&n).is_some_and(|e| e == etag) || self.part_lease(n)?.is_some_and(|l| l.live(now_ms())) {
                continue;
            }
            let Some((md5, size)) = signature_of(&signed.remove(&n).unwrap_or_default(), n, etag)? else {
                continue;
            };
            let part = Part { part_number: n, etag: etag.to_string(), size, md5 };
            let (before, after) = self.record_direct(&part, ttl_ms)?;
            if after < before {
                earlier = Some(after);
            }
        }
        Ok(earlier)
    }

    /// The URLs signed for each part (or for part `only`): one per MD5 asked for (or none).
    fn signed(&self, only: Option<u16>) -> ApiResult<BTreeMap<u16, Vec<Signed>>> {
        #[derive(Deserialize)]
        struct Row {
            part_number: f64,
            md5: String,
            length: f64,
        }
        let select = "SELECT part_number, md5, length FROM signed_parts";
        let rows: Vec<Row> = match only {
            Some(n) => self.select_with(&format!("{select} WHERE part_number = ?"), vec![i64::from(n).into()])?,
            None => self.select(select)?,
        };
        let mut signed: BTreeMap<u16, Vec<Signed>> = BTreeMap::new();
        for r in rows {
            let md5 = (!r.md5.is_empty()).then_some(r.md5);
            signed.entry(r.part_number as u16).or_default().push(Signed { md5, length: r.length as u64 });
        }
        Ok(signed)
    }

    /// Writes `part` down as sent straight to R2, under the rules of a report (an open upload,
    /// no copy through the Worker in flight), and answers the upload's deadline before and after.
    fn record_direct(&self, part: &Part, ttl_ms: u64) -> ApiResult<(u64, u64)> {
        let mut facts = self.facts()?;
        let before = facts.clone();
        facts.report_part(part.part_number, self.part_lease(part.part_number)?, ttl_ms, now_ms())?;
        self.save(&before, &facts, None)?;
        self.sql(
            "INSERT INTO parts (part_number, etag, size, md5) VALUES (?, ?, ?, ?)
             ON CONFLICT (part_number) DO UPDATE SET etag = excluded.etag, size = excluded.size, md5 = excluded.md5",
            vec![
                i64::from(part.part_number).into(),
                part.etag.clone().into(),
                (part.size as i64).into(),
                part.md5.clone().into(),
            ],
        )?;
        Ok((before.expires_ms, facts.expires_ms))
    }
}

/// A URL signed for a part: the MD5 it was signed with (hex), if any, and the exact length.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Signed {
    md5: Option<String>,
    length: u64,
}

/// The MD5 (if one was signed) and length of the copy R2 answered `etag` for, among the URLs
/// signed for part `n`; `None` if none was. A production ETag is the part's MD5, so it must be
/// one signed, unless a URL without an MD5 was signed too (`digest_mismatch` otherwise). Local
/// R2's opaque ETags say nothing: the URL without an MD5 if there is one, else the only one.
fn signature_of(signed: &[Signed], n: u16, etag: &str) -> ApiResult<Option<(Option<String>, u64)>> {
    let unsigned = signed.iter().find(|s| s.md5.is_none());
    let chosen = match md5_of_etag(etag) {
        _ if signed.is_empty() => return Ok(None),
        Some(md5) => match signed.iter().find(|s| s.md5.as_ref() == Some(&md5)).or(unsigned) {
            Some(s) => s,
            None => return Err(ApiError::DigestMismatch { part_number: n }),
        },
        None => match (unsigned, signed) {
            (Some(s), _) | (None, [s]) => s,
            (None, _) => return Ok(Some((None, signed[0].length))),
        },
    };
    Ok(Some((chosen.md5.clone(), chosen.length)))
}

/// The MD5 an ETag is, lowercase hex, when it is one (production R2's part ETags); local R2's
/// opaque ETags are not.
pub fn md5_of_etag(etag: &str) -> Option<String> {
    let bare = etag.trim().trim_start_matches("W/").trim_matches('"');
    (bare.len() == 32 && bare.bytes().all(|b| b.is_ascii_hexdigit())).then(|| bare.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::{md5_of_etag, signature_of, Signed};
    use crate::error::ApiError;

    #[test]
    fn a_listed_part_takes_the_signature_its_etag_can_have_come_from() {
        let md5 = "9e107d9d372bb6826bd81d3542a419d6";
        let other = "e4d909c290d0fb1ca068ffaddf22cbd0";
        let with_md5 = Signed { md5: Some(md5.into()), length: 5 };
        let without = Signed { md5: None, length: 5 };
        assert_eq!(signature_of(&[], 1, md5), Ok(None), "never signed: not adopted");
        let both = [with_md5.clone(), without.clone()];
        assert_eq!(signature_of(&both, 1, md5), Ok(Some((Some(md5.into()), 5))), "production: its MD5");
        assert_eq!(signature_of(&both, 1, other), Ok(Some((None, 5))), "the URL without an MD5");
        assert_eq!(
            signature_of(std::slice::from_ref(&with_md5), 1, other),
            Err(ApiError::DigestMismatch { part_number: 1 }),
            "an MD5 ETag against the only, other, signed MD5"
        );
        let opaque = "nmTFOqoGQquUCNAV9sWxxn2-RKgtYEZBdYDPEbNLR9Q";
        assert_eq!(signature_of(&both, 1, opaque), Ok(Some((None, 5))));
        assert_eq!(
            signature_of(std::slice::from_ref(&with_md5), 1, opaque),
            Ok(Some((Some(md5.into()), 5))),
            "the only URL"
        );
        let two = [with_md5, Signed { md5: Some(other.into()), length: 5 }];
        assert_eq!(signature_of(&two, 1, opaque), Ok(Some((None, 5))), "which MD5 is unknowable locally");
    }

    #[test]
    fn an_etag_is_an_md5_only_when_it_is_32_hex_digits() {
        let md5 = "9e107d9d372bb6826bd81d3542a419d6";
        assert_eq!(md5_of_etag(&format!("\"{}\"", md5.to_uppercase())).as_deref(), Some(md5));
        assert_eq!(md5_of_etag(md5).as_deref(), Some(md5));
        assert_eq!(md5_of_etag("nmTFOqoGQquUCNAV9sWxxn2-RKgtYEZBdYDPEbNLR9Q"), None, "local R2's opaque ETag");
        assert_eq!(md5_of_etag("\"9e107d9d372bb6826bd81d3542a419d6-2\""), None, "a multipart object's");
    }
}
