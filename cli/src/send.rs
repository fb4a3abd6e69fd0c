//! An upload's parts on their way, some at a time: each through the Worker (`PUT` of the part,
//! recorded by the Worker as it answers), or straight to R2 with a presigned URL, then
//! reported to the Worker from threads of their own, so that a report never holds the next
//! part's start, nor the complete (issue 22). [`Sending::run`] journals each part once the
//! server holds it.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;

use r2mpu_api::layout::Layout;
use r2mpu_api::types::{Part, PartReport};
use ureq::SendBody;

use crate::client::{check, part_path, read_json, Attempt, Client};
use crate::concurrency::Concurrency;
use crate::direct::UrlBook;
use crate::error::{Error, Result};
use crate::etag::{self, Digest};
use crate::fileio::{md5_range, RangeReader};
use crate::pool;
use crate::progress::{note, Progress};
use crate::resume::{Journal, UploadRecord};

/// What every sending thread shares.
pub struct Sending<'a> {
    pub client: &'a Client,
    pub file: &'a File,
    pub layout: Layout,
    pub upload_id: &'a str,
    pub verify: bool,
    /// Parts go straight to R2 with presigned URLs while this holds: from the start unless
    /// `--via-worker`, until the server says it offers none.
    pub direct: AtomicBool,
    /// Direct parts' URLs, fetched in batches ahead of need.
    pub urls: UrlBook<'a>,
    pub quiet: bool,
    pub progress: &'a Progress,
}

impl Sending<'_> {
    /// Sends `todo`, `concurrency` parts at a time, noting each part's ETag (for complete's
    /// list) and MD5 (for the final check) as it goes out. This thread records each part in the
    /// journal once the server holds it; the first failure stops the others from starting new
    /// parts.
    ///
    /// A part sent straight to R2 frees its place for the next part as soon as R2 has answered:
    /// its report to the Worker goes to [`REPORTERS`] threads of its own, and the part is
    /// journaled (on the server, for a resume) once the report has landed. The reports still on
    /// their way when the last part is out are answered as [`Pending`]: complete need not wait
    /// for them, since a complete that lists a part sent directly records it (the server's
    /// `adopt_listed`).
    pub fn run(
        &self,
        todo: &[u16],
        concurrency: Concurrency,
        journal: &mut Journal<UploadRecord>,
        sent: &mut BTreeMap<u16, (String, Digest)>,
    ) -> Result<Pending> {
        let (to_report, landed) = self.reporters();
        let result = pool::run(
            todo,
            &self.layout,
            concurrency,
            self.progress,
            &self.client.setbacks,
            |n| self.send_part(n),
            |n, outcome| {
                let (start, end) = self.layout.part_range(n);
                match outcome? {
                    Sent::Recorded(part, md5) => {
                        journal.record(u32::from(n), md5)?;
                        sent.insert(n, (part.etag, md5));
                    }
                    Sent::ToReport(report, md5) => {
                        sent.insert(n, (report.etag.clone(), md5));
                        to_report.send((n, report, md5)).expect("the reporters wait for the queue to close");
                    }
                }
                self.progress.arrived(end - start);
                // Reports that landed meanwhile: the first failure stops new parts too.
                while let Ok((m, reported)) = landed.try_recv() {
                    journal.record(u32::from(m), reported?)?;
                }
                Ok(())
            },
        );
        drop(to_report);
        let pending = Pending { landed };
        match result {
            Ok(()) => Ok(pending),
            Err(error) => {
                // Nothing is completed now: whatever else landed is worth a resume's knowing.
                let _ = pending.settle(journal);
                Err(error)
            }
        }
    }

    /// Starts the threads that report direct parts (none when parts go through the Worker): a
    /// part goes in with its report and its MD5, and comes out with the MD5 once the report
    /// landed. They own what they use, so that nobody waits for them to end: a report still on
    /// its way once complete succeeded has nothing left to do.
    fn reporters(&self) -> (Sender<ToReport>, Receiver<Reported>) {
        let (to_report, queue) = mpsc::channel::<ToReport>();
        let (reported, landed) = mpsc::channel();
        let queue = Arc::new(Mutex::new(queue));
        let reporters = if self.direct.load(Ordering::Relaxed) { REPORTERS } else { 0 };
        for _ in 0..reporters {
            let (queue, reported) = (Arc::clone(&queue), reported.clone());
            let (client, upload_id) = (self.client.clone(), self.upload_id.to_owned());
            thread::spawn(move || loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                let Ok((n, report, md5)) = next else { break };
                let result = client.report_part(&upload_id, n, &report).map(|_| md5);
                if reported.send((n, result)).is_err() {
                    break;
                }
            });
        }
        (to_report, landed)
    }

    /// Sends part `n` straight to R2 when the server offers it, else (or when R2 cannot be
    /// reached for it) through the Worker. Returns the server's part and the MD5 of the bytes
    /// that went out.
    fn send_part(&self, n: u16) -> Result<Sent> {
        if self.direct.load(Ordering::Relaxed) {
            if let Some((report, md5)) = self.send_direct(n)? {
                return Ok(Sent::ToReport(report, md5));
            }
        }
        self.send_via_worker(n).map(|(part, md5)| Sent::Recorded(part, md5))
    }

    /// Part `n` to R2 with a presigned PUT (`Content-MD5` signed with `--verify-parts`), and the
    /// report to make to the Worker with R2's ETag. A URL R2 refuses as expired is fetched
    /// again once. `None`: the server offers no direct parts, or R2 did not take the part
    /// (unreachable, refused); the caller sends it through the Worker.
    fn send_direct(&self, n: u16) -> Result<Option<(PartReport, Digest)>> {
        let (start, end) = self.layout.part_range(n);
        let len = end - start;
        let read_failed = |e| Error::io(format!("reading part {n} of the file"), e);
        let known = match self.verify {
            true => Some(md5_range(self.file, start, len).map_err(read_failed)?),
            false => None,
        };
        let content_md5 = known.as_ref().map(etag::content_md5);
        let mut expired_once = false;
        let (response, body) = loop {
            // A signed MD5 is the part's own: such URLs cannot be fetched before the part is hashed.
            let url = match &content_md5 {
                Some(_) => self.client.part_url(self.upload_id, n, content_md5.clone())?,
                None => self.urls.take(n)?,
            };
            let Some(url) = url else {
                if self.direct.swap(false, Ordering::Relaxed) && !self.quiet {
                    note("the server offers no direct parts: sending them through the Worker");
                }
                return Ok(None);
            };
            let mut body = RangeReader::new(self.file, start, len);
            if known.is_some() {
                body = body.unhashed();
            }
            let mut response = self.client.put_direct(&url).send(SendBody::from_reader(&mut body));
            if let Some(error) = body.local_error.take() {
                return Err(read_failed(error));
            }
            if !expired_once && response.as_mut().is_ok_and(refused_as_expired) {
                expired_once = true;
                continue;
            }
            break (response, body);
        };
        let etag = match &response {
            Ok(r) if r.status().is_success() => {
                r.headers().get("etag").and_then(|v| v.to_str().ok()).map(|v| v.trim().trim_matches('"').to_owned())
            }
            _ => None,
        };
        let (Some(etag), Some(md5)) = (etag, body.digest().or(known)) else {
            if !self.quiet {
                let reason = match response {
                    Ok(r) => format!("HTTP {}", r.status()),
                    Err(e) => e.to_string(),
                };
                note(format!("part {n}: R2 did not take it directly ({reason}); sending it through the Worker"));
            }
            return Ok(None);
        };
        if !etag::agrees(&etag, &md5) {
            return Err(Error::Integrity(format!(
                "part {n}: R2's ETag {etag} is not the MD5 {} of the bytes sent; the part is corrupt",
                etag::hex(&md5)
            )));
        }
        Ok(Some((PartReport { etag, content_md5 }, md5)))
    }

    /// `PUT /uploads/{id}/parts/{n}`, streamed from the file, with retries.
    fn send_via_worker(&self, n: u16) -> Result<(Part, Digest)> {
        let (start, end) = self.layout.part_range(n);
        let len = end - start;
        let read_failed = |e| Error::io(format!("reading part {n} of the file"), e);
        let mut known = match self.verify {
            true => Some(md5_range(self.file, start, len).map_err(read_failed)?),
            false => None,
        };
        let what = format!("PUT part {n}");
        let path = part_path(self.upload_id, n);
        self.client.with_retries(&what, || {
            let mut request = self
                .client
                .put(&path)
                .header("Content-Type", "application/octet-stream")
                .header("Content-Length", len.to_string());
            if let Some(md5) = &known {
                request = request.header("Content-MD5", etag::content_md5(md5));
            }
            let mut body = RangeReader::new(self.file, start, len);
            if known.is_some() {
                // Hashed once only: the server checks these bytes against `known` anyway.
                body = body.unhashed();
            }
            let response = request.send(SendBody::from_reader(&mut body));
            if let Some(error) = body.local_error.take() {
                return Err(Attempt::Fatal(read_failed(error)));
            }
            let streamed = body.digest();
            match check(&what, response).and_then(read_json::<Part>) {
                Ok(part) => match streamed.or(known) {
                    // Caught here, before the part is journaled or complete can replace an object.
                    Some(md5) if !etag::agrees(&part.etag, &md5) => Err(Error::Integrity(format!(
                        "part {n}: the server's ETag {} is not the MD5 {} of the bytes sent; the part is corrupt",
                        part.etag,
                        etag::hex(&md5)
                    ))
                    .into()),
                    Some(md5) => Ok((part, md5)),
                    None => {
                        Err(Error::Unavailable(format!("{what}: the server answered before the whole part was sent"))
                            .into())
                    }
                },
                Err(failure) => {
                    // The next attempt can tell the server what to expect.
                    known = known.or(streamed);
                    Err(failure)
                }
            }
        })
    }
}

/// How many threads report direct parts to the Worker, each one round trip per part.
const REPORTERS: usize = 8;

/// A direct part for a reporter: its number, its report and the MD5 of the bytes sent.
type ToReport = (u16, PartReport, Digest);
/// A report's outcome: the part's number, and its MD5 once the report landed.
type Reported = (u16, Result<Digest>);

/// The reports of direct parts still on their way once every part is out.
pub struct Pending {
    landed: Receiver<Reported>,
}

impl Pending {
    /// Waits for every report still on its way, journaling each part whose report landed: after
    /// a complete that failed, so that a resume does not send those parts again. The first
    /// failure, of a report or of the journal, is answered once all have been waited for.
    pub fn settle(self, journal: &mut Journal<UploadRecord>) -> Result<()> {
        let mut first_error = None;
        for (n, reported) in self.landed {
            if let Err(error) = reported.and_then(|md5| journal.record(u32::from(n), md5)) {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// A part that went out: through the Worker, which recorded it, or straight to R2, with the
/// report the Worker records it by.
enum Sent {
    Recorded(Part, Digest),
    ToReport(PartReport, Digest),
}

/// Whether R2 answered a presigned PUT with `403` because the URL expired: `AccessDenied`,
/// "Request has expired" in production, `ExpiredRequest` locally. Reads the answer's body.
fn refused_as_expired(response: &mut ureq::http::Response<ureq::Body>) -> bool {
    if response.status() != 403 {
        return false;
    }
    let text = response.body_mut().with_config().limit(64 * 1024).read_to_string().unwrap_or_default();
    text.to_ascii_lowercase().contains("expired")
}
