//! Positional reads and writes, so transfer threads share one file handle without seeking, and a
//! part travels from disk to socket (or back) through a small buffer, never whole in memory.

use std::fs::File;
use std::io::{self, Read};

use md5::{Digest as _, Md5};

use crate::etag::Digest;

/// Buffer size for hashing and for copying response bodies to disk.
pub const BUFFER: usize = 256 * 1024;

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(unix)]
pub fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(windows)]
pub fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(file, buf, offset)?;
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// The bytes `[offset, offset + len)` of a file as a request body, hashed as they are read
/// (progress counts a part once the server answered it, not as it is read here). A local read failure is kept aside so the caller can tell it from a network one
/// (ureq reports both as I/O errors).
pub struct RangeReader<'a> {
    file: &'a File,
    offset: u64,
    remaining: u64,
    /// `None` when the caller knows the range's MD5 already.
    md5: Option<Md5>,
    pub local_error: Option<io::Error>,
}

impl<'a> RangeReader<'a> {
    pub fn new(file: &'a File, offset: u64, len: u64) -> RangeReader<'a> {
        RangeReader { file, offset, remaining: len, md5: Some(Md5::new()), local_error: None }
    }

    /// The same reader without hashing: for a range whose MD5 was computed before.
    pub fn unhashed(self) -> RangeReader<'a> {
        RangeReader { md5: None, ..self }
    }

    /// The MD5 of the range, once every byte of it was read (never, when [`unhashed`]).
    ///
    /// [`unhashed`]: RangeReader::unhashed
    pub fn digest(&self) -> Option<Digest> {
        let md5 = self.md5.as_ref().filter(|_| self.remaining == 0)?;
        Some(md5.clone().finalize().into())
    }
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = loop {
            match read_at(self.file, &mut buf[..want], self.offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(0) => {
                    break Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank while it was being sent"))
                }
                other => break other,
            }
        };
        match n {
            Ok(n) => {
                if let Some(md5) = &mut self.md5 {
                    md5.update(&buf[..n]);
                }
                self.offset += n as u64;
                self.remaining -= n as u64;
                Ok(n)
            }
            Err(e) => {
                self.local_error = Some(io::Error::new(e.kind(), e.to_string()));
                Err(e)
            }
        }
    }
}

/// The MD5 of `[offset, offset + len)` of a file.
pub fn md5_range(file: &File, offset: u64, len: u64) -> io::Result<Digest> {
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; BUFFER];
    let (mut offset, end) = (offset, offset + len);
    while offset < end {
        let want = buf.len().min(usize::try_from(end - offset).unwrap_or(usize::MAX));
        match read_at(file, &mut buf[..want], offset) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file is shorter than expected")),
            Ok(n) => {
                md5.update(&buf[..n]);
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(md5.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_range_reader_hashes_exactly_its_range() {
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        file.write_all(&data).unwrap();
        let mut reader = RangeReader::new(&file, 1_000, 50_000);
        assert_eq!(reader.digest(), None);
        let mut sent = Vec::new();
        let mut small = [0u8; 7_000];
        loop {
            let n = reader.read(&mut small).unwrap();
            if n == 0 {
                break;
            }
            sent.extend_from_slice(&small[..n]);
        }
        assert_eq!(sent, &data[1_000..51_000]);
        assert_eq!(reader.digest(), Some(crate::etag::md5(&data[1_000..51_000])));
        assert_eq!(md5_range(&file, 1_000, 50_000).unwrap(), crate::etag::md5(&data[1_000..51_000]));
    }

    #[test]
    fn a_file_that_shrank_is_a_local_error() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&[1, 2, 3]).unwrap();
        let mut reader = RangeReader::new(&file, 0, 10);
        let mut buf = [0u8; 16];
        assert_eq!(reader.read(&mut buf).unwrap(), 3);
        assert!(reader.read(&mut buf).is_err());
        assert!(reader.local_error.is_some());
        assert!(md5_range(&file, 0, 10).is_err());
    }
}
