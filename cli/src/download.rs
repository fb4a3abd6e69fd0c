//! `r2mpu download`: parallel ranged GETs written in place into a preallocated file, resumable
//! through a sidecar record, and checked against the object's ETag.
//!
//! Ranges never cross the object's part boundaries when they can be known, so the multipart
//! ETag can be recomputed from part MD5s: a range that is a whole part is hashed while it is
//! written; parts cut into several ranges (an object of few parts, see [`ranges`]) are read back
//! once written.
//!
//! [`ranges`]: crate::ranges

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Instant;

use r2mpu_api::layout::{default_part_size, Layout, MAX_PARTS};

use crate::client::{check, object_path, Attempt, Client};
use crate::concurrency::{Concurrency, Sizing};
use crate::error::{Error, Result};
use crate::etag::{self, Digest, Etag};
use crate::fileio::{md5_range, write_all_at, BUFFER};
use crate::hedge::{Activity, Policy, Written, POLICY};
use crate::parts::part_len;
use crate::pool;
use crate::progress::{note, Progress};
use crate::ranges::{PartHashes, Plan};
use crate::resume::{DownloadRecord, Journal};

pub struct DownloadArgs {
    pub key: String,
    pub file: Option<PathBuf>,
    pub part_size: Option<u64>,
    pub concurrency: Concurrency,
    pub force: bool,
    pub quiet: bool,
}

/// What came down and how far it could be checked.
pub struct Downloaded {
    pub path: PathBuf,
    pub size: u64,
    pub etag: String,
    pub verdict: Verdict,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The recomputed ETag matches; says how it was computed.
    Verified(String),
    /// Nothing contradicts the bytes, but the ETag could not be recomputed; says why.
    NotVerified(String),
}

pub fn download(client: &Client, args: &DownloadArgs) -> Result<Downloaded> {
    let mut sizing = Sizing::start(args.concurrency, client);
    let (size, etag) = client.head_object(&args.key)?;
    let path = match &args.file {
        Some(file) => file.clone(),
        None => default_file_name(&args.key)?,
    };
    let part_size = part_size(size, &etag, args.part_size)?;
    let concurrency = sizing.get();
    let fresh = Plan::new(size, part_size, concurrency.start().0);
    let wanted = DownloadRecord {
        endpoint: client.endpoint().to_owned(),
        key: args.key.clone(),
        size,
        etag: etag.clone(),
        part_size,
        range_size: fresh.ranges.part_size,
    };

    let (mut journal, file) = open_or_resume(&path, wanted, args)?;
    // A resumed download keeps the ranges it was started with, whatever the level is now.
    let plan =
        Plan::resumed(size, part_size, journal.header.range_size).expect("open_or_resume keeps only fitting ranges");
    let (layout, count) = (plan.ranges, plan.range_count());
    let todo: Vec<u16> = (1..=count).filter(|&n| size > 0 && !journal.done.contains_key(&u32::from(n))).collect();
    if plan.split() > 1 && !args.quiet {
        let parts = plan.part_count();
        note(format!("fetching {parts} parts as {count} ranges of {} bytes", layout.part_size));
    }
    if !journal.done.is_empty() && !args.quiet {
        note(format!("resumed: {} of {count} ranges already downloaded", journal.done.len()));
    }
    let already = size - todo.iter().map(|&n| part_len(&layout, n)).sum::<u64>();
    // Only a multipart ETag is made of part MD5s; a plain one is checked against the whole file.
    let multipart = matches!(Etag::parse(&etag), Etag::Multipart { .. });
    let hashes = (plan.split() > 1 && size > 0 && multipart).then(|| PartHashes::new(plan, &todo));
    let progress = Arc::new(Progress::start("download", "ranges", size, already, args.quiet));
    let fetching = Arc::new(Fetching {
        client: client.clone(),
        file: file.try_clone().map_err(|e| Error::io(format!("opening {}", path.display()), e))?,
        layout,
        key: args.key.clone(),
        etag: etag.clone(),
        progress: Arc::clone(&progress),
        activity: Activity::default(),
        policy: POLICY,
    });
    fetching.run(&todo, concurrency, &mut journal, hashes.as_ref())?;
    progress.finish();
    file.sync_all().map_err(|e| Error::io(format!("writing {}", path.display()), e))?;

    let reading = |e| Error::io(format!("reading {}", path.display()), e);
    let md5s: Vec<Digest> = match (size, hashes) {
        (0, _) => vec![etag::md5(b"")],
        (_, Some(hashes)) => hashes.finish(&file).map_err(reading)?,
        (_, None) => (1..=u32::from(count)).map(|n| journal.done[&n]).collect(),
    };
    // Whatever the verdict, these ranges are done with; a rerun after a mismatch starts afresh.
    journal.remove()?;
    let verdict = verify(&etag, &md5s, part_size, args.part_size.is_some(), &file).map_err(reading)?;
    match verdict {
        Ok(verdict) => Ok(Downloaded { path, size, etag, verdict }),
        Err(mismatch) => Err(Error::Integrity(format!("{}: {mismatch}", path.display()))),
    }
}

/// The part size: `--part-size`, else the part size the ETag implies, else the uploader's
/// default (the ETag will then not be checkable, but the download is as fast).
fn part_size(size: u64, etag: &str, part_size: Option<u64>) -> Result<u64> {
    let part_size = match (part_size, Etag::parse(etag)) {
        (Some(part_size), _) => part_size,
        (None, Etag::Multipart { parts }) => {
            etag::guess_part_size(size, parts).unwrap_or(default_part_size(Some(size)))
        }
        (None, _) => default_part_size(Some(size)),
    };
    if part_size == 0 || size.div_ceil(part_size) > u64::from(MAX_PARTS) {
        return Err(Error::Usage(format!(
            "--part-size {part_size} cuts this {size}-byte object into more than {MAX_PARTS} parts"
        )));
    }
    Ok(part_size)
}

/// Resumes from the sidecar when it describes this object and the file is still there;
/// otherwise starts a new sidecar (with `wanted`'s ranges) and an empty file of the object's
/// size. A sidecar this version cannot read (another version's) is started over too: it says
/// the file is a partial download, but not of which ranges.
fn open_or_resume(path: &Path, wanted: DownloadRecord, args: &DownloadArgs) -> Result<(Journal<DownloadRecord>, File)> {
    let sidecar = DownloadRecord::location(path);
    let size = wanted.size;
    let failed = |e| Error::io(format!("writing {}", path.display()), e);
    let previous = Journal::<DownloadRecord>::open(&sidecar)?;
    if let Some(journal) = previous {
        let on_disk = fs::metadata(path).map(|m| m.len()).ok();
        let header = &journal.header;
        let stale = match header.stale_because(&wanted) {
            Some(reason) => Some(reason),
            None if Plan::resumed(size, header.part_size, header.range_size).is_none() => {
                Some(format!("its {}-byte ranges do not cut the parts evenly", header.range_size))
            }
            None if on_disk != Some(size) => Some("the partial file is missing or has the wrong size".into()),
            None => None,
        };
        match stale {
            None => {
                let file = OpenOptions::new().write(true).read(true).open(path).map_err(failed)?;
                return Ok((journal, file));
            }
            Some(reason) if !args.quiet => note(format!("starting over, not resuming the download: {reason}")),
            Some(_) => {}
        }
    } else if sidecar.exists() {
        if !args.quiet {
            note("starting over, not resuming the download: its record is from another version of r2mpu");
        }
    } else if path.exists() && !args.force {
        return Err(Error::Usage(format!("{} exists; pass --force to overwrite it", path.display())));
    }
    let journal = Journal::create(&sidecar, wanted)?;
    let file = OpenOptions::new().write(true).read(true).create(true).truncate(true).open(path).map_err(failed)?;
    file.set_len(size).map_err(failed)?;
    Ok((journal, file))
}

/// Checks the downloaded bytes against the ETag. The outer error is a local read failure; the
/// inner one says how the bytes and the ETag disagree.
fn verify(
    etag: &str,
    part_md5s: &[Digest],
    part_size: u64,
    part_size_given: bool,
    file: &File,
) -> std::io::Result<Result<Verdict, String>> {
    Ok(match Etag::parse(etag) {
        Etag::Multipart { parts } => check_multipart(etag, parts, part_md5s, part_size, part_size_given),
        Etag::Plain(expected) => {
            let got = md5_range(file, 0, file.metadata()?.len())?;
            match got == expected {
                true => Ok(Verdict::Verified("the MD5 matches the ETag".into())),
                false => {
                    Err(format!("the MD5 {} of the downloaded bytes differs from the ETag {etag}", etag::hex(&got)))
                }
            }
        }
        Etag::Opaque => Ok(Verdict::NotVerified(format!("the ETag {etag} is not an MD5 we can recompute"))),
    })
}

/// A multipart ETag can only be recomputed with the part size the object was uploaded with.
/// A mismatch fails only when the user named that part size; a guessed one may simply be wrong.
pub fn check_multipart(
    etag: &str,
    parts: u16,
    part_md5s: &[Digest],
    part_size: u64,
    part_size_given: bool,
) -> Result<Verdict, String> {
    if part_md5s.len() != usize::from(parts) {
        return Ok(Verdict::NotVerified(format!(
            "the ETag says {parts} parts but {part_size}-byte parts make {}; pass the --part-size it was uploaded with",
            part_md5s.len()
        )));
    }
    let got = etag::multipart_etag(part_md5s);
    if got == etag {
        Ok(Verdict::Verified(format!("the multipart ETag matches ({parts} parts of {part_size} bytes)")))
    } else if part_size_given {
        Err(format!("the bytes make the ETag {got} with {part_size}-byte parts, not {etag}"))
    } else {
        Ok(Verdict::NotVerified(format!(
            "the ETag does not match with a guessed part size of {part_size} bytes; pass --part-size to check"
        )))
    }
}

/// The last segment of the key, when it makes a plain file name in the current directory.
/// A key is the server's text, not a path: `\` separates too (a Windows path), and a name
/// that is empty, `.`, `..`, a drive (`C:`) or anything but one plain component is refused,
/// so that no key can make the download write outside the directory it runs in.
fn default_file_name(key: &str) -> Result<PathBuf> {
    let name = key.rsplit(['/', '\\']).next().unwrap_or("");
    let mut components = Path::new(name).components();
    let plain = matches!(components.next(), Some(std::path::Component::Normal(_))) && components.next().is_none();
    if plain && name != "." && name != ".." && !name.contains(':') && !name.chars().any(char::is_control) {
        return Ok(PathBuf::from(name));
    }
    Err(Error::Usage(format!("`{key}` does not end in a plain file name; give FILE")))
}

/// What every fetching thread shares. Owned, not borrowed: a stalled request's thread cannot be
/// interrupted, only abandoned, and may outlive the range (and the download) it was fetching.
struct Fetching {
    client: Client,
    file: File,
    layout: Layout,
    key: String,
    /// The ETag from HEAD; every range must come from the same object.
    etag: String,
    progress: Arc<Progress>,
    activity: Activity,
    policy: Policy,
}

impl Fetching {
    /// Fetches `todo`, `concurrency` ranges at a time, journaling each finished range from this
    /// thread. With `hashes` (parts cut into several ranges), the thread that wrote a part's last
    /// range hashes that part before taking the next range.
    fn run(
        self: &Arc<Self>,
        todo: &[u16],
        concurrency: Concurrency,
        journal: &mut Journal<DownloadRecord>,
        hashes: Option<&PartHashes>,
    ) -> Result<()> {
        let fetch = |n| {
            let md5 = self.fetch_range(n)?;
            if let Some(hashes) = hashes {
                hashes.landed(n, &self.file).map_err(|e| Error::io("reading the downloaded file", e))?;
            }
            Ok(md5)
        };
        pool::run(todo, &self.layout, concurrency, &self.progress, &self.client.setbacks, fetch, |n, md5| {
            commit_range(&self.file, journal, n, md5?)
        })
    }

    /// Range `n`, written at its offset; returns its MD5. A retry asks only for the bytes not yet
    /// written.
    fn fetch_range(self: &Arc<Self>, n: u16) -> Result<Digest> {
        let (start, end) = self.layout.part_range(n);
        let what = format!("GET range {n} (bytes {start}-{})", end - 1);
        let range = Arc::new(Written::new(start, end));
        self.activity.begin(n, Instant::now());
        let result = self.client.with_retries(&what, || self.race(n, &range, &what));
        self.activity.end(n);
        result.map(|()| range.digest())
    }

    /// One request for what is left of range `n`, and another from the first byte not yet
    /// written (a hedge) whenever the range stalls while other ranges move; the range is done when
    /// its bytes are, whichever request delivered them. Fails only when every request did.
    fn race(self: &Arc<Self>, n: u16, range: &Arc<Written>, what: &str) -> Result<(), Attempt> {
        let (done, results) = mpsc::channel();
        let start_request = || {
            let (fetching, range, done) = (Arc::clone(self), Arc::clone(range), done.clone());
            thread::spawn(move || {
                let _ = done.send(fetching.request(n, &range));
            });
        };
        start_request();
        let (mut in_flight, mut hedges) = (1, 0);
        loop {
            match results.recv_timeout(self.policy.tick) {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(Attempt::Transient { .. })) if in_flight > 1 => in_flight -= 1,
                Ok(Err(failure)) => return Err(failure),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let now = Instant::now();
                    if hedges < self.policy.hedges && self.activity.stalled(n, now, &self.policy) {
                        let left = range.end - range.at();
                        note(format!("{what}: stalled; asking again for its {left} bytes not yet written"));
                        self.activity.begin(n, now);
                        (in_flight, hedges) = (in_flight + 1, hedges + 1);
                        start_request();
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => unreachable!("`done` is still held here"),
            }
        }
    }

    /// `GET /objects/{key}` with `Range` for the bytes of range `n` not yet written, handed to
    /// `range` as they come; ends when the range is complete, whoever completed it.
    fn request(&self, n: u16, range: &Written) -> Result<(), Attempt> {
        let (from, end) = (range.at(), range.end);
        if from >= end {
            return Ok(());
        }
        let what = format!("GET range {n} (bytes {from}-{})", end - 1);
        let request = self.client.get(&object_path(&self.key)).header("Range", format!("bytes={from}-{}", end - 1));
        let mut response = check(&what, request.call())?;
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        if let Some(now) = header("etag") {
            if etag::unquote(&now) != self.etag {
                return Err(Error::Integrity(format!(
                    "{}: the object changed during the download (ETag {} is now {}); run the command again",
                    self.key,
                    self.etag,
                    etag::unquote(&now)
                ))
                .into());
            }
        }
        let whole = from == 0 && Some(end) == self.layout.size;
        let content_range = header("content-range");
        let range_ok = match response.status().as_u16() {
            206 => content_range.as_deref().is_some_and(|r| fits(r, from, end)),
            200 => whole,
            _ => false,
        };
        if !range_ok {
            return Err(Error::Unavailable(format!(
                "{what}: the server answered {} with Content-Range {content_range:?}",
                response.status()
            ))
            .into());
        }
        let mut reader = response.body_mut().as_reader();
        let (mut offset, mut buf) = (from, vec![0u8; BUFFER]);
        while offset < end && !range.is_complete() {
            let want = buf.len().min(usize::try_from(end - offset).unwrap_or(usize::MAX));
            let got = match reader.read(&mut buf[..want]) {
                Ok(0) => {
                    let reason = format!("the body ended after {} of {} bytes", offset - from, end - from);
                    return Err(Attempt::Transient { reason, retry_after: None });
                }
                Ok(got) => got,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Attempt::Transient { reason: format!("reading the body: {e}"), retry_after: None })
                }
            };
            let new = range
                .accept(offset, &buf[..got], |at, bytes| write_all_at(&self.file, bytes, at))
                .map_err(|e| Error::io("writing the downloaded file", e))?;
            if new > 0 {
                self.progress.arrived(new);
                self.activity.moved(n, Instant::now());
            }
            offset += got as u64;
        }
        // Reading past the last byte lets the client see the body end and keep the connection
        // for the next range; a body that stops early is simply not reused.
        if offset == end {
            let _ = reader.read(&mut buf[..1]);
        }
        Ok(())
    }
}

/// The one thing a range needs from its file before it is journaled (a `File`; tests stand in
/// a disk that fails).
trait SyncData {
    fn sync_data(&self) -> std::io::Result<()>;
}

impl SyncData for File {
    fn sync_data(&self) -> std::io::Result<()> {
        File::sync_data(self)
    }
}

/// Journals range `n` once its bytes are on disk: a crash must never leave a range marked done
/// whose bytes were still in the page cache, since a rerun would not fetch it again.
fn commit_range(file: &impl SyncData, journal: &mut Journal<DownloadRecord>, n: u16, md5: Digest) -> Result<()> {
    file.sync_data().map_err(|e| Error::io("flushing the downloaded file", e))?;
    journal.record(u32::from(n), md5)
}

/// Whether a `Content-Range` header says `bytes start-(end-1)/…`.
fn fits(content_range: &str, start: u64, end: u64) -> bool {
    let expected = format!("bytes {start}-{}/", end - 1);
    content_range.trim().starts_with(&expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_part_size_is_the_one_given_or_the_one_the_etag_implies() {
        let multipart = "6805d11194c542d5bd8c0e56d87973cb-4";
        assert_eq!(part_size(15 * MIB + 17, multipart, None).unwrap(), 5 * MIB);
        assert_eq!(part_size(15 * MIB + 17, multipart, Some(8 * MIB)).unwrap(), 8 * MIB);
        assert_eq!(part_size(100 * MIB, "d41d8cd98f00b204e9800998ecf8427e", None).unwrap(), 16 * MIB);
        // 10 MiB in 3 parts has no whole-MiB part size: fall back to the default.
        assert_eq!(part_size(10 * MIB, "6805d11194c542d5bd8c0e56d87973cb-3", None).unwrap(), 16 * MIB);
        assert!(part_size(100 * MIB, multipart, Some(1)).is_err());
        assert!(part_size(100 * MIB, multipart, Some(0)).is_err());
    }

    #[test]
    fn a_multipart_mismatch_fails_only_when_the_part_size_was_given() {
        let md5s = [etag::md5(b"hello "), etag::md5(b"world")];
        let right = "e09e4fd6265b36115fe3db32df945d84-2";
        let wrong = "00000000000000000000000000000000-2";
        assert!(matches!(check_multipart(right, 2, &md5s, 6, false), Ok(Verdict::Verified(_))));
        assert!(matches!(check_multipart(wrong, 2, &md5s, 6, false), Ok(Verdict::NotVerified(_))));
        assert!(check_multipart(wrong, 2, &md5s, 6, true).is_err());
        assert!(matches!(check_multipart(right, 3, &md5s, 6, true), Ok(Verdict::NotVerified(_))));
    }

    #[test]
    fn a_plain_etag_is_checked_against_the_whole_file() {
        use std::io::Write;
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"hello world").unwrap();
        let right = etag::hex(&etag::md5(b"hello world"));
        assert!(matches!(verify(&right, &[], 16 * MIB, false, &file).unwrap(), Ok(Verdict::Verified(_))));
        let wrong = etag::hex(&etag::md5(b"hello"));
        assert!(verify(&wrong, &[], 16 * MIB, false, &file).unwrap().is_err());
        assert!(matches!(verify("opaque", &[], 16 * MIB, false, &file).unwrap(), Ok(Verdict::NotVerified(_))));
    }

    #[test]
    fn content_ranges_must_be_the_range_asked_for() {
        assert!(fits("bytes 0-5242879/15728657", 0, 5 * MIB));
        assert!(!fits("bytes 0-5242878/15728657", 0, 5 * MIB));
        assert!(!fits("bytes 1-5242879/15728657", 0, 5 * MIB));
    }

    #[test]
    fn the_default_file_name_is_the_last_key_segment() {
        assert_eq!(default_file_name("a/b/c.bin").unwrap(), PathBuf::from("c.bin"));
        assert_eq!(default_file_name("c.bin").unwrap(), PathBuf::from("c.bin"));
        assert!(default_file_name("a/b/").is_err());
    }

    /// Issue 8, item 11: a range is journaled only after its bytes were flushed to disk.
    #[test]
    fn a_range_is_journaled_only_once_its_bytes_are_flushed() {
        use std::cell::Cell;
        struct Disk {
            fails: bool,
            syncs: Cell<u32>,
        }
        impl SyncData for Disk {
            fn sync_data(&self) -> std::io::Result<()> {
                self.syncs.set(self.syncs.get() + 1);
                match self.fails {
                    true => Err(std::io::Error::other("disk full")),
                    false => Ok(()),
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin.r2mpu-download");
        let header = DownloadRecord {
            endpoint: "e".into(),
            key: "k".into(),
            size: 2,
            etag: "t".into(),
            part_size: 1,
            range_size: 1,
        };
        let mut journal = Journal::create(&path, header).unwrap();
        let md5 = etag::md5(b"x");

        let failing = Disk { fails: true, syncs: Cell::new(0) };
        assert!(commit_range(&failing, &mut journal, 1, md5).is_err());
        assert_eq!(failing.syncs.get(), 1);
        assert!(journal.done.is_empty());
        let working = Disk { fails: false, syncs: Cell::new(0) };
        commit_range(&working, &mut journal, 2, md5).unwrap();
        assert_eq!(working.syncs.get(), 1);
        let reopened = Journal::<DownloadRecord>::open(&path).unwrap().unwrap();
        assert_eq!(reopened.done.keys().copied().collect::<Vec<_>>(), vec![2], "only the flushed range");
    }

    /// Issue 23: a sidecar from before ranges could split parts (no `partSize`) is started
    /// over, neither read as one range per part nor refused as a file in the way; one of this
    /// version, for the same object, resumes.
    #[test]
    fn a_sidecar_from_before_split_ranges_is_started_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        let sidecar = DownloadRecord::location(&path);
        let entry = format!("{{\"n\":1,\"md5\":\"{}\"}}\n", etag::hex(&etag::md5(b"x")));
        let args = DownloadArgs {
            key: "k".into(),
            file: Some(path.clone()),
            part_size: None,
            concurrency: Concurrency::Fixed(4),
            force: false,
            quiet: true,
        };
        let wanted = DownloadRecord {
            endpoint: "e".into(),
            key: "k".into(),
            size: 10,
            etag: "00000000000000000000000000000000-2".into(),
            part_size: 5,
            range_size: 5,
        };
        let header =
            |record: &str| format!(r#"{{"endpoint":"e","key":"k","size":10,"etag":"{}",{record}}}"#, wanted.etag);

        fs::write(&path, [7u8; 10]).unwrap();
        fs::write(&sidecar, format!("{}\n{entry}", header(r#""rangeSize":5"#))).unwrap();
        let (journal, _) = open_or_resume(&path, wanted.clone(), &args).unwrap();
        assert!(journal.done.is_empty(), "no range of the old record is kept");
        assert_eq!(journal.header, wanted);
        assert_eq!(fs::read(&path).unwrap(), [0u8; 10], "the file starts over");

        fs::write(&path, [7u8; 10]).unwrap();
        fs::write(&sidecar, format!("{}\n{entry}", header(r#""partSize":5,"rangeSize":5"#))).unwrap();
        let (journal, _) = open_or_resume(&path, wanted.clone(), &args).unwrap();
        assert_eq!(journal.done.keys().copied().collect::<Vec<_>>(), [1], "this version's record resumes");
        assert_eq!(fs::read(&path).unwrap(), [7u8; 10]);
    }

    /// Issue 8, item 11: whatever the key holds, the default name is one plain component.
    #[test]
    fn no_key_makes_a_default_file_name_that_leaves_the_directory() {
        assert_eq!(default_file_name("dir\\..\\..\\escape.bin").unwrap(), PathBuf::from("escape.bin"));
        assert_eq!(default_file_name("C:\\Windows\\evil.dll").unwrap(), PathBuf::from("evil.dll"));
        assert_eq!(default_file_name("/etc/passwd").unwrap(), PathBuf::from("passwd"));
        for key in ["..", "a/..", "a\\..", "a\\.", "C:", "a/C:evil", "a/", "a\\", "x/nul\0"] {
            assert!(default_file_name(key).is_err(), "{key:?}");
        }
    }
}
