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
use std::sync::atomic::AtomicBool;
use std::time::{Instant, UNIX_EPOCH};

use r2mpu_api::key::check_key;
use r2mpu_api::layout::{Layout, DEFAULT_PART_SIZE, MAX_PARTS, MIB, MIN_PART_SIZE};
use r2mpu_api::types::{
    CompleteUpload, CompletedObject, CreateUpload, FirstPartUrls, Part, PartRef, PartUrl, Upload, UploadStatus,
    MAX_PART_URLS,
};
use r2mpu_api::ApiError;

use crate::client::Client;
use crate::concurrency::{Concurrency, Sizing};
use crate::direct::{deadline_from_now, UrlBook};
use crate::error::{Error, Result};
use crate::etag::{self, Digest};
use crate::parts::part_len;
use crate::progress::{note, Progress};
use crate::resume::{state_dir, Journal, UploadRecord};
use crate::send::Sending;

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
    let Started { mut journal, upload, resumed, offer } =
        start_or_resume(client, &record_path, &file, wanted, args, default_part_size)?;
    let id = upload.upload_id.clone();
    let layout = Layout { part_size: upload.part_size, size: Some(size) };
    let count = layout.part_count().expect("the size is declared");
    if !args.quiet {
        note(format!("upload {id}: {size} bytes in {count} parts of {} bytes", layout.part_size));
    }

    let mut md5s: BTreeMap<u16, Digest> =
        journal.done.iter().filter_map(|(&n, &md5)| Some((u16::try_from(n).ok()?, md5))).collect();
    let object = match (upload.status, upload.object.clone()) {
        (UploadStatus::Completed, Some(object)) => object,
        _ => {
            let todo = missing_parts(&layout, &upload.parts, &md5s);
            if resumed && !args.quiet {
                note(format!("resumed: {} of {count} parts already on the server", usize::from(count) - todo.len()));
            }
            let mut etags: BTreeMap<u16, String> =
                upload.parts.iter().map(|p| (p.part_number, p.etag.clone())).collect();
            let already: u64 = (1..=count).filter(|n| !todo.contains(n)).map(|n| part_len(&layout, n)).sum();
            let progress = Progress::start("upload", "parts", size, already, args.quiet);
            let offered = offer.as_ref().is_none_or(|offer| offer.urls.is_some());
            if !offered && !args.quiet {
                note("the server offers no direct parts: sending them through the Worker");
            }
            let sending = Sending {
                client,
                file: &file,
                layout,
                upload_id: &id,
                verify: args.verify_parts,
                direct: AtomicBool::new(!args.via_worker && offered),
                urls: UrlBook::new(client, &id, &todo),
                quiet: args.quiet,
                progress: &progress,
            };
            if let Some(Offer { urls: Some(urls), deadline }) = offer {
                sending.urls.keep(urls, deadline);
            }
            let mut sent = BTreeMap::new();
            let pending = sending.run(&todo, sizing.get(), &mut journal, &mut sent)?;
            progress.finish();
            if !args.quiet {
                note(format!("sent: {} parts", todo.len()));
            }
            for (n, (etag, md5)) in sent {
                etags.insert(n, etag);
                md5s.insert(n, md5);
            }
            // Reports still on their way are not waited for: the list records their parts.
            let parts = etags.into_iter().map(|(part_number, etag)| PartRef { part_number, etag }).collect();
            match client.complete_upload(&id, &CompleteUpload { parts: Some(parts) }) {
                Ok(object) => object,
                Err(error) => {
                    // Best effort: a part left out of the journal is only sent again on resume.
                    let _ = pending.settle(&mut journal);
                    return Err(error);
                }
            }
        }
    };

    let every_md5: Option<Vec<Digest>> = (1..=count).map(|n| md5s.get(&n).copied()).collect();
    let verdict = every_md5.map(|md5s| etag::multipart_etag(&md5s));
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
/// grown to fit R2's 10,000 parts: the file goes in whole waves of that many parts, each as
/// large as it can be.
/// - Far from the server, each part a connection sends after its first costs it a round trip
///   waiting for the answer, and a last wave thinner than the first leaves the link idle: at
///   80 ms, 250 MiB in 50 parts of 5 MiB behind 26 connections went at 64 MB/s, in 25 parts of
///   10 MiB at 67 (three runs each, alternating). At 200 ms, 1 GiB as 64 parts of 16 MiB behind
///   61 connections would end with 3 parts alone for 13 s; in two waves of 9 MiB parts it does not.
/// - Near it (loopback, a LAN: [`NEAR_START`] in flight), the Worker's CPU is the limit, and
///   it is paid per part (two Durable Object calls and the lease's renewals) as much as per
///   byte: 256 MiB in 52 parts of 5 MiB went at 0.89x the guide's pair (26 parts of 10 MiB),
///   1 GiB in 64 parts of 16 MiB at 0.97x with the same CPU per GiB (bench/RESULTS.md, the
///   sweep). So near the server a file goes in parts of 16 MiB, at least [`NEAR_START`] of them
///   where R2's 5 MiB minimum allows. A download is not bound to these parts: it splits them
///   into as many ranges as its link needs.
///
/// [`NEAR_START`]: crate::concurrency::NEAR_START
fn part_size_for(size: u64, parallel: usize) -> u64 {
    let parallel = parallel.max(1) as u64;
    let parts = size.div_ceil(parallel * DEFAULT_PART_SIZE).max(1) * parallel;
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

/// An upload to send parts to: its journal, the server's view of it, whether it was resumed,
/// and for a new one what its create said of direct parts.
struct Started {
    journal: Journal<UploadRecord>,
    upload: Upload,
    resumed: bool,
    offer: Option<Offer>,
}

/// A create's answer to `partUrls`: the first parts' URLs (`None`: the server offers no direct
/// parts), and when they stop being worth using.
struct Offer {
    urls: Option<Vec<PartUrl>>,
    deadline: Instant,
}

/// Continues the upload in the record at `record_path` if it still fits the file and is alive
/// on the server; otherwise aborts it (best effort). Without a record, continues an open upload
/// of the key with the same size (and `--part-size`, if given) that the server lists (see
/// [`uploads`]). Else creates a new one, in parts of `--part-size` or `default_part_size()`,
/// asking for its first parts' URLs unless its parts go through the Worker (`--via-worker`) or
/// take URLs signed with their MD5 (`--verify-parts`).
///
/// [`uploads`]: crate::uploads
fn start_or_resume(
    client: &Client,
    record_path: &Path,
    file: &File,
    wanted: Wanted,
    args: &UploadArgs,
    default_part_size: impl FnOnce() -> u64,
) -> Result<Started> {
    let resumed = |journal, upload| Ok(Started { journal, upload, resumed: true, offer: None });
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
                Ok(upload) => return resumed(journal, upload),
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
            return resumed(journal, upload);
        }
    }
    let part_size = args.part_size.unwrap_or_else(default_part_size);
    let parts = Layout { part_size, size: Some(wanted.size) }.part_count().unwrap_or(1);
    let ask = (!args.via_worker && !args.verify_parts)
        .then(|| FirstPartUrls { count: parts.min(MAX_PART_URLS), expires_in: None });
    let deadline = deadline_from_now();
    let body = |part_urls| CreateUpload {
        key: wanted.key.clone(),
        content_type: args.content_type.clone(),
        metadata: None,
        size: Some(wanted.size),
        part_size: Some(part_size),
        part_urls,
    };
    let created = match client.create_upload(&body(ask)) {
        // A Worker older than `partUrls` refuses the field (and creates nothing): ask as it
        // knows, and take the URLs in batches, as before.
        Err(error) if ask.is_some() && refuses_field(&error, "partUrls") => client.create_upload(&body(None))?,
        created => created?,
    };
    let offer = ask.map(|_| Offer {
        urls: match created.direct_parts {
            Some(false) => None,
            _ => Some(created.part_urls.unwrap_or_default()),
        },
        deadline,
    });
    let journal = Journal::create(record_path, wanted.record(&created.upload))?;
    Ok(Started { journal, upload: created.upload, resumed: false, offer })
}

/// Whether the server refused a request for a field it does not know (`invalid_json`, serde's
/// "unknown field `name`").
fn refuses_field(error: &Error, name: &str) -> bool {
    matches!(error.problem(), Some(ApiError::InvalidJson { reason }) if reason.contains(&format!("`{name}`")))
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
                (Some(part), Some(md5)) => !etag::agrees(&part.etag, md5),
                _ => true,
            }
        })
        .collect()
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
    use crate::concurrency::{self, NEAR_START};

    const P: u64 = 5 << 20;

    #[test]
    fn near_the_server_the_default_part_size_is_the_largest_that_keeps_the_starting_level_busy() {
        // 250 MiB: 16 parts of 16 MiB, not 50 of 5 MiB; 64 MiB: one part per connection.
        assert_eq!(part_size_for(250 * MIB, NEAR_START), DEFAULT_PART_SIZE);
        assert_eq!(part_size_for(64 * MIB, NEAR_START), DEFAULT_PART_SIZE);
        assert_eq!(part_size_for(1 << 30, NEAR_START), DEFAULT_PART_SIZE);
        // 16 MiB: 4 parts of R2's smallest (the last 1 MiB), not one part on one connection.
        assert_eq!(part_size_for(16 * MIB, NEAR_START), MIN_PART_SIZE);
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
        for parallel in NEAR_START..=concurrency::MAX {
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
}
