//! `r2mpu upload`: create (or resume) an upload, send the missing parts in parallel straight from
//! the file, complete it, and check R2's ETag against the part MD5s computed while sending.
//!
//! `Content-MD5` travels in the headers, before the body, so it cannot come from the read that
//! streams the body. Each part is therefore hashed as it streams; the server learns that hash
//! on any re-send of the part, and the whole upload is checked at the end through R2's ETag,
//! which is made of the MD5s of the bytes R2 actually received. `--verify-parts` hashes each
//! part before sending it instead (the file is read twice, hashed once), so the server checks
//! every part on arrival and records its MD5 for a resume from another machine; it is off by
//! default because the Worker's check costs it CPU (bench/RESULTS-content-md5.md).

use std::collections::BTreeMap;
use std::fs::{self, File, Metadata};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::UNIX_EPOCH;

use r2mpu_api::key::check_key;
use r2mpu_api::layout::{Layout, DEFAULT_PART_SIZE, MAX_PARTS, MIB, MIN_PART_SIZE};
use r2mpu_api::types::{
    CompleteUpload, CompletedObject, CreateUpload, Part, PartRef, PartReport, Upload, UploadStatus,
};
use r2mpu_api::ApiError;
use ureq::SendBody;

use crate::client::{check, part_path, read_json, Attempt, Client};
use crate::concurrency::{self, Concurrency, Sizing, NEAR_START};
use crate::direct::UrlBook;
use crate::error::{Error, Result};
use crate::etag::{self, Digest, Etag};
use crate::fileio::{md5_range, RangeReader};
use crate::parts::part_len;
use crate::pool;
use crate::progress::{note, Progress};
use crate::resume::{state_dir, Journal, UploadRecord};

pub struct UploadArgs {
    pub file: PathBuf,
    pub key: Option<String>,
    pub part_size: Option<u64>,
    pub concurrency: Concurrency,
    pub content_type: Option<String>,
    pub verify_parts: bool,
    /// Send every part through the Worker, even when it offers direct parts.
    pub via_worker: bool,
    /// Start a new upload even if one could be resumed.
    pub restart: bool,
    pub quiet: bool,
}

/// Uploads `args.file`, continuing an earlier attempt when there is one, and returns the object.
pub fn upload(client: &Client, args: &UploadArgs) -> Result<CompletedObject> {
    let path = fs::canonicalize(&args.file).map_err(|e| Error::io(format!("reading {}", args.file.display()), e))?;
    let file = File::open(&path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let metadata = file.metadata().map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if !metadata.is_file() {
        return Err(Error::Usage(format!("{} is not a regular file", path.display())));
    }
    let (size, mtime_ns) = (metadata.len(), modified_ns(&metadata, &path)?);
    let key = match &args.key {
        Some(key) => key.clone(),
        None => file_name(&path)?,
    };
    check_key(&key).map_err(|reason| Error::Usage(format!("`{key}` cannot be a key: {reason}")))?;
    // Timed beside the lookups below, and only now that the command makes sense locally.
    let mut sizing = Sizing::start(args.concurrency, client);

    let record_path = UploadRecord::location(&state_dir()?, client.endpoint(), &path, &key);
    let wanted = Wanted { endpoint: client.endpoint().to_owned(), path: path.clone(), key, size, mtime_ns };
    let default_part_size = || part_size_for(size, sizing.get().start().0);
    let (mut journal, upload, resumed) = start_or_resume(client, &record_path, &file, wanted, args, default_part_size)?;
    let id = upload.upload_id.clone();
    let layout = Layout { part_size: upload.part_size, size: Some(size) };
    let count = layout.part_count().expect("the size is declared");
    if !args.quiet {
        note(format!("upload {id}: {size} bytes in {count} parts of {} bytes", layout.part_size));
    }

    let object = match (upload.status, upload.object.clone()) {
        (UploadStatus::Completed, Some(object)) => object,
        _ => {
            let known: BTreeMap<u16, Digest> =
                journal.done.iter().filter_map(|(&n, &md5)| Some((u16::try_from(n).ok()?, md5))).collect();
            let todo = missing_parts(&layout, &upload.parts, &known);
            if resumed && !args.quiet {
                note(format!("resumed: {} of {count} parts already on the server", usize::from(count) - todo.len()));
            }
            let mut etags: BTreeMap<u16, String> =
                upload.parts.iter().map(|p| (p.part_number, p.etag.clone())).collect();
            let already: u64 = (1..=count).filter(|n| !todo.contains(n)).map(|n| part_len(&layout, n)).sum();
            let progress = Progress::start("upload", "parts", size, already, args.quiet);
            let sending = Sending {
                client,
                file: &file,
                layout,
                upload_id: &id,
                verify: args.verify_parts,
                direct: AtomicBool::new(!args.via_worker),
                urls: UrlBook::new(client, &id, &todo),
                quiet: args.quiet,
                progress: &progress,
            };
            sending.run(&todo, sizing.get(), &mut journal, &mut etags)?;
            progress.finish();
            if !args.quiet {
                note(format!("sent: {} parts", todo.len()));
            }
            let parts = etags.into_iter().map(|(part_number, etag)| PartRef { part_number, etag }).collect();
            client.complete_upload(&id, &CompleteUpload { parts: Some(parts) })?
        }
    };

    let md5s: Option<Vec<Digest>> = (1..=u32::from(count)).map(|n| journal.done.get(&n).copied()).collect();
    let verdict = md5s.map(|md5s| etag::multipart_etag(&md5s));
    journal.remove()?;
    let unchanged = fs::metadata(&path).is_ok_and(|m| m.len() == size && modified_ns(&m, &path).ok() == Some(mtime_ns));
    if !unchanged {
        return Err(Error::Integrity(format!(
            "{} changed while it was being uploaded; {} may mix old and new bytes: upload it again",
            path.display(),
            object.key
        )));
    }
    match verdict {
        Some(expected) if expected != etag::unquote(&object.etag) => Err(Error::Integrity(format!(
            "{}: R2's ETag {} differs from {expected}, computed from the bytes sent; the object is corrupt",
            object.key, object.etag
        ))),
        Some(_) => Ok(object),
        None => {
            note("not verified: the MD5s of some parts sent by an earlier run are unknown");
            Ok(object)
        }
    }
}

/// The part size when the user names none, from the number of parts the transfer starts with
/// in flight (see [`Concurrency::sized_for`]), from R2's 5 MiB to the server's default 16 MiB,
/// grown to fit R2's 10,000 parts.
/// - Far from the server, the file goes in whole waves of that many parts. Each part a
///   connection sends after its first costs it a round trip waiting for the answer, and a last
///   wave thinner than the first leaves the link idle: at 80 ms, 250 MiB in 50 parts of 5 MiB
///   behind 26 connections went at 64 MB/s, in 25 parts of 10 MiB at 67 (three runs each,
///   alternating). At 200 ms, 1 GiB as 64 parts of 16 MiB behind 61 connections would end with
///   3 parts alone for 13 s; in two waves of 9 MiB parts it does not.
/// - Near it (loopback, a LAN: [`NEAR_START`] in flight), a round trip is free, so the file is
///   cut in up to 64 parts: a far client can later download it in as many ranges (ranges follow
///   the parts, to check the multipart ETag).
fn part_size_for(size: u64, parallel: usize) -> u64 {
    let parallel = parallel.max(1) as u64;
    let parts = match parallel > NEAR_START as u64 {
        true => size.div_ceil(parallel * DEFAULT_PART_SIZE).max(1) * parallel,
        false => concurrency::MAX as u64,
    };
    let fits_max_parts = size.div_ceil(u64::from(MAX_PARTS)).next_multiple_of(MIB);
    size.div_ceil(parts).next_multiple_of(MIB).clamp(MIN_PART_SIZE, DEFAULT_PART_SIZE).max(fits_max_parts)
}

/// What the journal of a new upload of this file will say, but its upload ID and part size:
/// both come from the server's answer.
struct Wanted {
    endpoint: String,
    path: PathBuf,
    key: String,
    size: u64,
    mtime_ns: u64,
}

impl Wanted {
    fn record(self, upload: &Upload) -> UploadRecord {
        let Wanted { endpoint, path, key, size, mtime_ns } = self;
        UploadRecord {
            endpoint,
            path,
            key,
            upload_id: upload.upload_id.clone(),
            size,
            mtime_ns,
            part_size: upload.part_size,
        }
    }
}

/// Continues the upload in the record at `record_path` if it still fits the file and is alive
/// on the server; otherwise aborts it (best effort). Without a record, continues an open upload
/// of the key with the same size (and `--part-size`, if given) that the server lists (see
/// [`uploads`]). Else creates a new one, in parts of `--part-size` or `default_part_size()`.
/// Returns the record, the server's view of the upload, and whether it was resumed.
///
/// [`uploads`]: crate::uploads
fn start_or_resume(
    client: &Client,
    record_path: &Path,
    file: &File,
    wanted: Wanted,
    args: &UploadArgs,
    default_part_size: impl FnOnce() -> u64,
) -> Result<(Journal<UploadRecord>, Upload, bool)> {
    if let Some(journal) = Journal::<UploadRecord>::open(record_path)? {
        let previous = &journal.header;
        let id = previous.upload_id.clone();
        let stale = match args.restart {
            true => Some("--restart was given".into()),
            false => previous.stale_because(wanted.size, wanted.mtime_ns, args.part_size),
        };
        let gone = match stale {
            Some(reason) => Some(reason),
            None => match client.get_upload(&id) {
                Ok(upload) if upload.status == UploadStatus::Aborted => Some("it was aborted on the server".into()),
                Ok(upload) if upload.part_size != previous.part_size || upload.size != Some(previous.size) => {
                    Some("the server's layout differs from the record".into())
                }
                Ok(upload) => return Ok((journal, upload, true)),
                Err(e) if matches!(e.problem(), Some(ApiError::UploadNotFound | ApiError::UploadAborted)) => {
                    Some("it is gone from the server".into())
                }
                Err(e) => return Err(e),
            },
        };
        if let Some(reason) = gone {
            if !args.quiet {
                note(format!("starting over, not resuming upload {id}: {reason}"));
            }
            // Best effort: an upload left open is aborted by the server when it expires anyway.
            let _ = client.abort_upload(&id);
        }
    } else if !args.restart {
        if let Some(upload) = crate::uploads::find_open(client, &wanted.key, wanted.size, args.part_size)? {
            let verified = crate::uploads::verified_parts(file, &upload)?;
            if !args.quiet {
                note(format!(
                    "found upload {} of {} on the server: {} of its {} parts match the file",
                    upload.upload_id,
                    wanted.key,
                    verified.len(),
                    upload.parts.len()
                ));
            }
            let mut journal = Journal::create(record_path, wanted.record(&upload))?;
            for (n, md5) in verified {
                journal.record(u32::from(n), md5)?;
            }
            return Ok((journal, upload, true));
        }
    }
    let upload = client.create_upload(&CreateUpload {
        key: wanted.key.clone(),
        content_type: args.content_type.clone(),
        metadata: None,
        size: Some(wanted.size),
        part_size: Some(args.part_size.unwrap_or_else(default_part_size)),
    })?;
    Ok((Journal::create(record_path, wanted.record(&upload))?, upload, false))
}

/// The parts still to send, in order: those the server lacks (or holds at the wrong length),
/// those it holds but whose MD5 we do not know, since the final check needs every one, and
/// those whose ETag is an MD5 other than the one we sent (R2's part ETags are MD5s; the server
/// holds other bytes than ours).
pub fn missing_parts(layout: &Layout, on_server: &[Part], md5_known: &BTreeMap<u16, Digest>) -> Vec<u16> {
    let count = layout.part_count().unwrap_or(0);
    (1..=count)
        .filter(|&n| {
            let held = on_server.iter().find(|p| p.part_number == n && p.size == part_len(layout, n));
            match (held, md5_known.get(&n)) {
                (Some(part), Some(md5)) => !etag_agrees(&part.etag, md5),
                _ => true,
            }
        })
        .collect()
}

/// Whether a part's ETag is consistent with the MD5 of the bytes sent for it: equal when the
/// ETag is an MD5 (R2 in production), unknowable (so not contradicted) when it is opaque.
pub fn etag_agrees(part_etag: &str, md5: &Digest) -> bool {
    match Etag::parse(part_etag) {
        Etag::Plain(digest) => digest == *md5,
        Etag::Multipart { .. } | Etag::Opaque => true,
    }
}

/// What every sending thread shares.
struct Sending<'a> {
    client: &'a Client,
    file: &'a File,
    layout: Layout,
    upload_id: &'a str,
    verify: bool,
    /// Parts go straight to R2 with presigned URLs while this holds: from the start unless
    /// `--via-worker`, until the server says it offers none.
    direct: AtomicBool,
    /// Direct parts' URLs, fetched in batches ahead of need.
    urls: UrlBook<'a>,
    quiet: bool,
    progress: &'a Progress,
}

impl Sending<'_> {
    /// Sends `todo`, `concurrency` parts at a time. This thread records each finished part in the
    /// journal as it lands; the first failure stops the others from starting new parts.
    ///
    /// A part sent straight to R2 frees its place for the next part as soon as R2 has answered:
    /// its report to the Worker goes to [`REPORTERS`] threads of its own, and the part is
    /// journaled (on the server, for a resume) once the report has landed. Every report has
    /// landed, or failed, when this returns, so complete never overtakes one.
    fn run(
        &self,
        todo: &[u16],
        concurrency: Concurrency,
        journal: &mut Journal<UploadRecord>,
        etags: &mut BTreeMap<u16, String>,
    ) -> Result<()> {
        let count = usize::from(self.layout.part_count().unwrap_or(0));
        let mut record = |n: u16, landed: Result<(Part, Digest)>| -> Result<()> {
            let (part, md5) = landed?;
            journal.record(u32::from(n), md5)?;
            etags.insert(n, part.etag);
            Ok(())
        };
        let (to_report, queue) = mpsc::channel::<(u16, PartReport, Digest)>();
        let (reported, landed) = mpsc::channel::<(u16, Result<(Part, Digest)>)>();
        let queue = Mutex::new(queue);
        thread::scope(|scope| {
            let reporters = if self.direct.load(Ordering::Relaxed) { REPORTERS } else { 0 };
            for _ in 0..reporters {
                let (queue, reported) = (&queue, reported.clone());
                scope.spawn(move || loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((n, report, md5)) = next else { break };
                    let result = self.client.report_part(self.upload_id, n, &report).map(|part| (part, md5));
                    if reported.send((n, result)).is_err() {
                        break;
                    }
                });
            }
            drop(reported);
            let sent = pool::run(
                todo,
                count,
                concurrency,
                self.progress,
                &self.client.setbacks,
                |n| self.send_part(n),
                |n, sent| {
                    let sent = sent?;
                    let (start, end) = self.layout.part_range(n);
                    self.progress.arrived(end - start);
                    match sent {
                        Sent::Recorded(part, md5) => record(n, Ok((part, md5)))?,
                        Sent::ToReport(report, md5) => {
                            to_report.send((n, report, md5)).expect("the reporters wait for the queue to close")
                        }
                    }
                    // Reports that landed meanwhile: the first failure stops new parts too.
                    while let Ok((m, result)) = landed.try_recv() {
                        record(m, result)?;
                    }
                    Ok(())
                },
            );
            drop(to_report);
            let mut first_error = sent.err();
            for (m, result) in landed {
                if let Err(error) = record(m, result) {
                    first_error.get_or_insert(error);
                }
            }
            first_error.map_or(Ok(()), Err)
        })
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
            let mut body = RangeReader::new(self.file, start, len, self.progress);
            if known.is_some() {
                body = body.unhashed();
            }
            let mut response = self.client.put_direct(&url).send(SendBody::from_reader(&mut body));
            if let Some(error) = body.local_error.take() {
                self.progress.take_back(body.counted);
                return Err(read_failed(error));
            }
            if !expired_once && response.as_mut().is_ok_and(refused_as_expired) {
                self.progress.take_back(body.counted);
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
            self.progress.take_back(body.counted);
            if !self.quiet {
                let reason = match response {
                    Ok(r) => format!("HTTP {}", r.status()),
                    Err(e) => e.to_string(),
                };
                note(format!("part {n}: R2 did not take it directly ({reason}); sending it through the Worker"));
            }
            return Ok(None);
        };
        if !etag_agrees(&etag, &md5) {
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
            let mut body = RangeReader::new(self.file, start, len, self.progress);
            if known.is_some() {
                // Hashed once only: the server checks these bytes against `known` anyway.
                body = body.unhashed();
            }
            let response = request.send(SendBody::from_reader(&mut body));
            if let Some(error) = body.local_error.take() {
                self.progress.take_back(body.counted);
                return Err(Attempt::Fatal(read_failed(error)));
            }
            let streamed = body.digest();
            match check(&what, response).and_then(read_json::<Part>) {
                Ok(part) => match streamed.or(known) {
                    // Caught here, before the part is journaled or complete can replace an object.
                    Some(md5) if !etag_agrees(&part.etag, &md5) => Err(Error::Integrity(format!(
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
                    self.progress.take_back(body.counted);
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

fn modified_ns(metadata: &Metadata, path: &Path) -> Result<u64> {
    let modified = metadata.modified().map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    Ok(modified.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64))
}

fn file_name(path: &Path) -> Result<String> {
    match path.file_name().map(|name| name.to_str()) {
        Some(Some(name)) => Ok(name.to_owned()),
        _ => Err(Error::Usage(format!("{} has no UTF-8 file name to use as the key; give KEY", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 5 << 20;

    #[test]
    fn near_the_server_the_default_part_size_leaves_a_part_for_each_range_a_far_download_needs() {
        // 250 MiB: 50 parts of 5 MiB, not 16 of 16 MiB.
        assert_eq!(part_size_for(250 * MIB, NEAR_START), MIN_PART_SIZE);
        assert_eq!(part_size_for(512 * MIB, NEAR_START), 8 * MIB);
        assert_eq!(part_size_for(1 << 30, NEAR_START), DEFAULT_PART_SIZE);
        assert_eq!(part_size_for(1, NEAR_START), MIN_PART_SIZE);
        // Past 10,000 parts of 16 MiB the server's default holds, grown to fit R2's 10,000 parts.
        let huge = 200 * (1u64 << 30);
        for parallel in [NEAR_START, 25, 64] {
            assert_eq!(part_size_for(huge, parallel), r2mpu_api::layout::default_part_size(Some(huge)));
        }
    }

    #[test]
    fn far_from_the_server_the_default_part_size_fills_whole_waves_of_the_starting_level() {
        // 80 ms (25 in flight): 250 MiB in one wave of 25 parts of 10 MiB.
        assert_eq!(part_size_for(250 * MIB, 25), 10 * MIB);
        // 200 ms (61): 50 parts of R2's smallest, all at once; 1 GiB in two waves of 9 MiB
        // parts (61 and 53), not 64 of 16 MiB, whose last 3 would go alone.
        assert_eq!(part_size_for(250 * MIB, 61), MIN_PART_SIZE);
        assert_eq!(part_size_for(1 << 30, 61), 9 * MIB);
        // 20 ms (7): 250 MiB in three waves of 12 MiB parts.
        assert_eq!(part_size_for(250 * MIB, 7), 12 * MIB);
        // Every level and size: a valid part size, and no wave beyond the level's need.
        for parallel in NEAR_START + 1..=concurrency::MAX {
            for mib in [1, 5, 17, 100, 250, 333, 1024, 5000] {
                let part = part_size_for(mib * MIB, parallel);
                assert!((MIN_PART_SIZE..=DEFAULT_PART_SIZE).contains(&part), "{mib} MiB at {parallel}");
                let (parts, wave) = ((mib * MIB).div_ceil(part), parallel as u64);
                let fewest = (mib * MIB).div_ceil(wave * DEFAULT_PART_SIZE);
                assert_eq!(parts.div_ceil(wave), fewest, "{mib} MiB at {parallel}: {parts} parts");
            }
        }
    }

    fn part(n: u16, size: u64) -> Part {
        Part { part_number: n, etag: format!("e{n}"), size, md5: None }
    }

    fn known(parts: &[u16]) -> BTreeMap<u16, Digest> {
        parts.iter().map(|&n| (n, etag::md5(&n.to_le_bytes()))).collect()
    }

    #[test]
    fn a_fresh_upload_sends_every_part() {
        let layout = Layout { part_size: P, size: Some(3 * P + 17) };
        assert_eq!(missing_parts(&layout, &[], &known(&[])), vec![1, 2, 3, 4]);
        let empty = Layout { part_size: P, size: Some(0) };
        assert_eq!(missing_parts(&empty, &[], &known(&[])), vec![1]);
    }

    #[test]
    fn a_resumed_upload_sends_only_parts_missing_or_of_unknown_md5() {
        let layout = Layout { part_size: P, size: Some(3 * P + 17) };
        let on_server = [part(1, P), part(2, P), part(4, 17)];
        // Part 3 is missing; part 2 is there but its MD5 was lost with the record.
        assert_eq!(missing_parts(&layout, &on_server, &known(&[1, 4])), vec![2, 3]);
        assert_eq!(missing_parts(&layout, &on_server, &known(&[1, 2, 4])), vec![3]);
        // A part the server holds at the wrong length goes again.
        let short = [part(1, P), part(2, P), part(3, P), part(4, 16)];
        assert_eq!(missing_parts(&layout, &short, &known(&[1, 2, 3, 4])), vec![4]);
        let whole = [part(1, P), part(2, P), part(3, P), part(4, 17)];
        assert!(missing_parts(&layout, &whole, &known(&[1, 2, 3, 4])).is_empty());
    }

    /// Issue 8, item 10: R2's part ETags are the MD5 of the part; one that names other bytes than
    /// the journal's is not trusted on resume.
    #[test]
    fn a_server_part_whose_md5_etag_contradicts_the_journal_goes_again() {
        let layout = Layout { part_size: P, size: Some(2 * P) };
        let md5s = known(&[1, 2]);
        let agreeing = Part { part_number: 1, etag: etag::hex(&md5s[&1]), size: P, md5: None };
        let contradicting =
            Part { part_number: 2, etag: format!("\"{}\"", etag::hex(&etag::md5(b"other"))), size: P, md5: None };
        assert_eq!(missing_parts(&layout, &[agreeing.clone(), contradicting], &md5s), vec![2]);
        // Local R2's opaque part ETags say nothing either way.
        assert!(missing_parts(&layout, &[agreeing, part(2, P)], &md5s).is_empty());
    }

    #[test]
    fn a_part_etag_agrees_with_its_md5_unless_it_is_another_md5() {
        let md5 = etag::md5(b"part");
        assert!(etag_agrees(&etag::hex(&md5), &md5));
        assert!(etag_agrees(&format!("\"{}\"", etag::hex(&md5).to_uppercase()), &md5));
        assert!(!etag_agrees(&etag::hex(&etag::md5(b"other")), &md5));
        assert!(etag_agrees("opaque-local-etag", &md5));
    }
}
