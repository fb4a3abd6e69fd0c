//! Local records that let an interrupted transfer continue where it stopped.
//!
//! A record is a journal: one JSON header line saying which transfer it belongs to, then one line
//! per finished piece (`{"n":3,"md5":"…"}`), appended as the piece finishes. Appending costs the
//! same for the ten-thousandth part as for the first, and a kill at any moment leaves a usable
//! file: a torn last line is skipped, and at worst that piece is sent again.
//!
//! Upload records live in the state directory (see [`state_dir`]), one per endpoint + absolute
//! path + key. Download records sit beside the file being written, as `FILE.r2mpu-download`.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::etag::{self, Digest};

/// Where upload records are kept: `$R2MPU_STATE_DIR`, else `$XDG_STATE_HOME/r2mpu`, else
/// `~/.local/state/r2mpu`.
pub fn state_dir() -> Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("R2MPU_STATE_DIR") {
        return Ok(dir);
    }
    if let Some(dir) = var("XDG_STATE_HOME") {
        return Ok(dir.join("r2mpu"));
    }
    match var("HOME") {
        Some(home) => Ok(home.join(".local/state/r2mpu")),
        None => Err(Error::Usage("cannot find a directory for resume records: set XDG_STATE_HOME or HOME".into())),
    }
}

/// What an upload record belongs to and the layout it was started with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadRecord {
    pub endpoint: String,
    pub path: PathBuf,
    pub key: String,
    pub upload_id: String,
    pub size: u64,
    /// The file's modification time in nanoseconds since the epoch, when the upload began.
    pub mtime_ns: u64,
    pub part_size: u64,
}

impl UploadRecord {
    /// The path of the record for this endpoint, file and key, inside `dir`.
    pub fn location(dir: &Path, endpoint: &str, path: &Path, key: &str) -> PathBuf {
        let identity = format!("{endpoint}\n{}\n{key}", path.display());
        dir.join("uploads").join(format!("{}.jsonl", etag::hex(&etag::md5(identity.as_bytes()))))
    }

    /// Why this record cannot be continued for the file as it is now, if it cannot: its parts
    /// were cut from other bytes, or (with `--part-size`) the user asked for another layout.
    pub fn stale_because(&self, size: u64, mtime_ns: u64, part_size: Option<u64>) -> Option<String> {
        if self.size != size {
            return Some(format!("the file's size changed from {} to {size} bytes", self.size));
        }
        if self.mtime_ns != mtime_ns {
            return Some("the file was modified".into());
        }
        match part_size {
            Some(wanted) if wanted != self.part_size => {
                Some(format!("--part-size {wanted} differs from the {} bytes it was started with", self.part_size))
            }
            _ => None,
        }
    }
}

/// What a download record belongs to: the object as it was when the download began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadRecord {
    pub endpoint: String,
    pub key: String,
    pub size: u64,
    /// Unquoted.
    pub etag: String,
    /// The part size the object was uploaded with (given or guessed), which its ETag is
    /// checked with.
    pub part_size: u64,
    /// Bytes per ranged request, dividing `part_size` (see `ranges::Plan`); entries number
    /// ranges from 1. A record without `part_size` (before ranges could split parts) does not
    /// parse, so it is started over rather than read as one range per part.
    pub range_size: u64,
}

impl DownloadRecord {
    /// The sidecar beside `file`.
    pub fn location(file: &Path) -> PathBuf {
        let mut name = file.as_os_str().to_owned();
        name.push(".r2mpu-download");
        PathBuf::from(name)
    }

    /// Why the ranges in this record cannot be kept for `now`, if they cannot. The range size
    /// is not compared: a resumed download keeps the ranges it started with.
    pub fn stale_because(&self, now: &DownloadRecord) -> Option<String> {
        if self.endpoint != now.endpoint || self.key != now.key {
            Some("it was for another object".into())
        } else if self.etag != now.etag || self.size != now.size {
            Some("the object changed on the server".into())
        } else if self.part_size != now.part_size {
            Some(format!("its part size {} differs from {}", self.part_size, now.part_size))
        } else {
            None
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Entry {
    n: u32,
    md5: String,
}

/// A record file: its header and the pieces finished so far, with their MD5s.
pub struct Journal<H> {
    path: PathBuf,
    pub header: H,
    pub done: BTreeMap<u32, Digest>,
    file: File,
}

impl<H: Serialize + DeserializeOwned> Journal<H> {
    /// Reads the record at `path`. `None` when there is none, or its header is unreadable (a
    /// record from another version is as good as none).
    pub fn open(path: &Path) -> Result<Option<Journal<H>>> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        let mut lines = text.lines();
        let Some(header) = lines.next().and_then(|line| serde_json::from_str(line).ok()) else {
            return Ok(None);
        };
        let done = lines
            .filter_map(|line| serde_json::from_str::<Entry>(line).ok())
            .filter_map(|entry| Some((entry.n, etag::parse_hex(&entry.md5)?)))
            .collect();
        let mut file = append(path)?;
        if !text.ends_with('\n') {
            // A kill tore the last line; start the next entry on a fresh one.
            file.write_all(b"\n").map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        }
        Ok(Some(Journal { path: path.to_owned(), header, done, file }))
    }

    /// Starts a new record at `path`, replacing any old one.
    pub fn create(path: &Path, header: H) -> Result<Journal<H>> {
        let failed = |e| Error::io(format!("writing {}", path.display()), e);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(failed)?;
        }
        let mut line = serde_json::to_vec(&header).expect("headers serialize");
        line.push(b'\n');
        let temporary = path.with_extension("tmp");
        fs::write(&temporary, &line).map_err(failed)?;
        fs::rename(&temporary, path).map_err(failed)?;
        Ok(Journal { path: path.to_owned(), header, done: BTreeMap::new(), file: append(path)? })
    }

    /// Notes that piece `n` is finished and had this MD5.
    pub fn record(&mut self, n: u32, md5: Digest) -> Result<()> {
        let mut line = serde_json::to_vec(&Entry { n, md5: etag::hex(&md5) }).expect("entries serialize");
        line.push(b'\n');
        self.file.write_all(&line).map_err(|e| Error::io(format!("writing {}", self.path.display()), e))?;
        self.done.insert(n, md5);
        Ok(())
    }

    /// Deletes the record: the transfer is over.
    pub fn remove(self) -> Result<()> {
        remove(&self.path)
    }
}

/// Deletes a record file, if there is one.
pub fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(format!("removing {}", path.display()), e)),
        _ => Ok(()),
    }
}

/// Forgets every upload record in `dir` that points at `upload_id`; returns how many there were.
pub fn forget_upload(dir: &Path, upload_id: &str) -> usize {
    let Ok(entries) = fs::read_dir(dir.join("uploads")) else { return 0 };
    let mut forgotten = 0;
    for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
        if path.extension().is_some_and(|ext| ext == "jsonl") {
            let record = Journal::<UploadRecord>::open(&path).ok().flatten();
            if record.is_some_and(|r| r.header.upload_id == upload_id) && remove(&path).is_ok() {
                forgotten += 1;
            }
        }
    }
    forgotten
}

fn append(path: &Path) -> Result<File> {
    OpenOptions::new().append(true).open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> UploadRecord {
        UploadRecord {
            endpoint: "http://127.0.0.1:8787".into(),
            path: "/data/movie.mp4".into(),
            key: "movie.mp4".into(),
            upload_id: "u1".into(),
            size: 100,
            mtime_ns: 7,
            part_size: 5 << 20,
        }
    }

    #[test]
    fn an_upload_record_is_stale_when_the_file_or_requested_layout_changed() {
        let r = record();
        assert_eq!(r.stale_because(100, 7, None), None);
        assert_eq!(r.stale_because(100, 7, Some(5 << 20)), None);
        assert!(r.stale_because(101, 7, None).unwrap().contains("size"));
        assert!(r.stale_because(100, 8, None).unwrap().contains("modified"));
        assert!(r.stale_because(100, 7, Some(6 << 20)).unwrap().contains("--part-size"));
    }

    #[test]
    fn upload_records_are_keyed_by_endpoint_path_and_key() {
        let dir = Path::new("/state");
        let at = |e, p: &str, k| UploadRecord::location(dir, e, Path::new(p), k);
        let a = at("http://a", "/f", "k");
        assert_eq!(a, at("http://a", "/f", "k"));
        assert_ne!(a, at("http://b", "/f", "k"));
        assert_ne!(a, at("http://a", "/g", "k"));
        assert_ne!(a, at("http://a", "/f", "j"));
        assert!(a.starts_with("/state/uploads"));
    }

    #[test]
    fn a_download_record_is_stale_when_the_object_changed() {
        let r = DownloadRecord {
            endpoint: "e".into(),
            key: "k".into(),
            size: 10,
            etag: "x-1".into(),
            part_size: 10,
            range_size: 5,
        };
        assert_eq!(r.stale_because(&r.clone()), None);
        assert!(r.stale_because(&DownloadRecord { etag: "y-1".into(), ..r.clone() }).is_some());
        assert!(r.stale_because(&DownloadRecord { size: 11, ..r.clone() }).is_some());
        assert!(r.stale_because(&DownloadRecord { part_size: 5, ..r.clone() }).is_some());
        assert_eq!(r.stale_because(&DownloadRecord { range_size: 10, ..r.clone() }), None, "ranges are kept");
        assert_eq!(DownloadRecord::location(Path::new("out/a.bin")), Path::new("out/a.bin.r2mpu-download"));
    }

    #[test]
    fn a_journal_survives_reopening_and_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("uploads/x.jsonl");
        let mut journal = Journal::create(&path, record()).unwrap();
        journal.record(1, etag::md5(b"one")).unwrap();
        journal.record(2, etag::md5(b"two")).unwrap();
        drop(journal);
        // A kill in the middle of the third entry.
        OpenOptions::new().append(true).open(&path).unwrap().write_all(br#"{"n":3,"md5":"ab"#).unwrap();

        let mut journal = Journal::<UploadRecord>::open(&path).unwrap().unwrap();
        assert_eq!(journal.header, record());
        assert_eq!(journal.done.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(journal.done[&2], etag::md5(b"two"));
        journal.record(4, etag::md5(b"four")).unwrap();
        drop(journal);

        let journal = Journal::<UploadRecord>::open(&path).unwrap().unwrap();
        assert_eq!(journal.done.keys().copied().collect::<Vec<_>>(), vec![1, 2, 4]);
        journal.remove().unwrap();
        assert!(Journal::<UploadRecord>::open(&path).unwrap().is_none());
    }

    #[test]
    fn an_unreadable_header_counts_as_no_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        fs::write(&path, "{\"something\":\"else\"}\n").unwrap();
        assert!(Journal::<UploadRecord>::open(&path).unwrap().is_none());
    }

    #[test]
    fn forgetting_an_upload_removes_only_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let mine = UploadRecord::location(dir.path(), "e", Path::new("/a"), "a");
        let other = UploadRecord::location(dir.path(), "e", Path::new("/b"), "b");
        Journal::create(&mine, record()).unwrap();
        Journal::create(&other, UploadRecord { upload_id: "u2".into(), ..record() }).unwrap();
        assert_eq!(forget_upload(dir.path(), "u1"), 1);
        assert!(!mine.exists());
        assert!(other.exists());
    }
}
