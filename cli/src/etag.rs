//! R2's ETags, recomputed on our side so a finished transfer can be checked end to end.
//!
//! A single-request object's ETag is the hex MD5 of its bytes. A multipart object's is
//! `hex(MD5(concat of each part's binary MD5)) + "-" + N`, so checking it needs each part's MD5
//! and therefore the part size the object was uploaded with.

use jwt_simple::reexports::ct_codecs::{Base64, Encoder};
use md5::{Digest as _, Md5};
use r2mpu_api::layout::{default_part_size, MAX_PARTS, MIB, MIN_PART_SIZE};

/// A binary MD5.
pub type Digest = [u8; 16];

pub fn md5(bytes: &[u8]) -> Digest {
    Md5::digest(bytes).into()
}

/// The ETag R2 gives an object completed from parts with these MD5s, in part order.
pub fn multipart_etag(part_md5s: &[Digest]) -> String {
    let mut outer = Md5::new();
    for digest in part_md5s {
        outer.update(digest);
    }
    format!("{}-{}", hex(&outer.finalize()), part_md5s.len())
}

/// What an ETag says about how to check the bytes behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Etag {
    /// `hex-N`: a multipart object of `parts` parts.
    Multipart { parts: u16 },
    /// 32 hex digits: the MD5 of the whole object.
    Plain(Digest),
    /// Anything else: nothing we can recompute.
    Opaque,
}

impl Etag {
    /// Reads an ETag as R2 sends it, quoted or not (a weak `W/` prefix is dropped).
    pub fn parse(etag: &str) -> Etag {
        let etag = unquote(etag);
        if let Some((digest, count)) = etag.split_once('-') {
            let count_ok = !count.is_empty() && count.bytes().all(|b| b.is_ascii_digit());
            return match (parse_hex(digest), count_ok.then(|| count.parse::<u16>())) {
                (Some(_), Some(Ok(parts))) if (1..=MAX_PARTS).contains(&parts) => Etag::Multipart { parts },
                _ => Etag::Opaque,
            };
        }
        parse_hex(etag).map_or(Etag::Opaque, Etag::Plain)
    }
}

/// An ETag header value without its quotes or weak marker.
pub fn unquote(etag: &str) -> &str {
    let etag = etag.trim();
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    etag.strip_prefix('"').and_then(|e| e.strip_suffix('"')).unwrap_or(etag)
}

/// The part size a multipart object of `size` bytes in `parts` parts was most likely uploaded
/// with: [`default_part_size`] when it fits (what `r2mpu upload` picks), else the smallest whole
/// MiB of at least [`MIN_PART_SIZE`] that cuts `size` into exactly `parts` parts. `None` when no
/// whole-MiB size does; the ETag can then not be checked without being told the part size.
pub fn guess_part_size(size: u64, parts: u16) -> Option<u64> {
    let parts = u64::from(parts);
    let cuts = |part_size: u64| size.div_ceil(part_size).max(1) == parts;
    let default = default_part_size(Some(size));
    if cuts(default) {
        return Some(default);
    }
    let smallest = size.div_ceil(parts).div_ceil(MIB).max(1) * MIB;
    let smallest = smallest.max(MIN_PART_SIZE);
    cuts(smallest).then_some(smallest)
}

/// The value of a `Content-MD5` header: base64 of the binary digest.
pub fn content_md5(digest: &Digest) -> String {
    Base64::encode_to_string(digest).expect("base64 of 16 bytes fits")
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 hex digits (either case) as a digest.
pub fn parse_hex(text: &str) -> Option<Digest> {
    if text.len() != 32 || !text.is_ascii() {
        return None;
    }
    let mut digest = [0u8; 16];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(digest)
}

/// Whether a part's ETag is consistent with the MD5 of the bytes sent for it: equal when the
/// ETag is an MD5 (R2 in production), unknowable (so not contradicted) when it is opaque.
pub fn agrees(part_etag: &str, md5: &Digest) -> bool {
    match Etag::parse(part_etag) {
        Etag::Plain(digest) => digest == *md5,
        Etag::Multipart { .. } | Etag::Opaque => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors computed independently with Python's hashlib:
    //   md = lambda b: hashlib.md5(b).digest()
    //   hashlib.md5(md(b"hello ") + md(b"world")).hexdigest() + "-2"
    //     == "e09e4fd6265b36115fe3db32df945d84-2"
    //   hashlib.md5(md(b"")).hexdigest() + "-1" == "59adb24ef3cdbe0297f05b395827453f-1"
    //   data = bytes(i % 251 for i in range(2 * 5 * 2**20 + 17)), cut into 5 MiB parts:
    //     "6805d11194c542d5bd8c0e56d87973cb-3"
    //   base64.b64encode(md(b"hello ")) == b"+BSJN3e8wilf/wXwDlCNpg=="
    #[test]
    fn multipart_etags_match_independently_computed_vectors() {
        assert_eq!(multipart_etag(&[md5(b"hello "), md5(b"world")]), "e09e4fd6265b36115fe3db32df945d84-2");
        assert_eq!(multipart_etag(&[md5(b"")]), "59adb24ef3cdbe0297f05b395827453f-1");
        let data: Vec<u8> = (0..2 * 5 * MIB + 17).map(|i| (i % 251) as u8).collect();
        let parts: Vec<Digest> = data.chunks(5 * MIB as usize).map(md5).collect();
        assert_eq!(multipart_etag(&parts), "6805d11194c542d5bd8c0e56d87973cb-3");
    }

    #[test]
    fn content_md5_is_base64_of_the_binary_digest() {
        assert_eq!(content_md5(&md5(b"hello ")), "+BSJN3e8wilf/wXwDlCNpg==");
    }

    #[test]
    fn etags_are_read_quoted_or_not() {
        assert_eq!(Etag::parse("\"e09e4fd6265b36115fe3db32df945d84-2\""), Etag::Multipart { parts: 2 });
        assert_eq!(Etag::parse("e09e4fd6265b36115fe3db32df945d84-10000"), Etag::Multipart { parts: 10_000 });
        assert_eq!(Etag::parse("W/\"d41d8cd98f00b204e9800998ecf8427e\""), Etag::Plain(md5(b"")));
        for opaque in [
            "",
            "\"\"",
            "abc",
            "e09e4fd6265b36115fe3db32df945d84-0",
            "e09e4fd6265b36115fe3db32df945d84-10001",
            "e09e4fd6265b36115fe3db32df945d84-+2",
            "zz9e4fd6265b36115fe3db32df945d84-2",
        ] {
            assert_eq!(Etag::parse(opaque), Etag::Opaque, "{opaque:?}");
        }
    }

    #[test]
    fn hex_round_trips() {
        let digest = md5(b"x");
        assert_eq!(parse_hex(&hex(&digest)), Some(digest));
        assert_eq!(parse_hex(&hex(&digest).to_uppercase()), Some(digest));
        assert_eq!(parse_hex("123"), None);
    }

    #[test]
    fn the_guessed_part_size_prefers_the_uploaders_default_then_the_smallest_whole_mib() {
        // What `r2mpu upload` picks without --part-size.
        assert_eq!(guess_part_size(100 * MIB, 7), Some(16 * MIB));
        // Uploaded with 5 MiB parts: 3 x 5 MiB + 17 bytes is 4 parts.
        assert_eq!(guess_part_size(15 * MIB + 17, 4), Some(5 * MIB));
        assert_eq!(guess_part_size(1, 1), Some(16 * MIB));
        assert_eq!(guess_part_size(0, 1), Some(16 * MIB));
        // 10 MiB in 3 parts: 5 MiB makes 2, and nothing smaller is allowed.
        assert_eq!(guess_part_size(10 * MIB, 3), None);
        // Whatever is guessed really does cut the object into that many parts.
        for (size, parts) in [(7 * MIB + 3, 2), (64 * MIB, 4), (1 << 40, 9_987)] {
            let part = guess_part_size(size, parts).unwrap();
            assert_eq!(size.div_ceil(part), u64::from(parts), "{size} {parts}");
        }
    }

    #[test]
    fn a_part_etag_agrees_with_its_md5_unless_it_is_another_md5() {
        let part = md5(b"part");
        assert!(agrees(&hex(&part), &part));
        assert!(agrees(&format!("\"{}\"", hex(&part).to_uppercase()), &part));
        assert!(!agrees(&hex(&md5(b"other")), &part));
        assert!(agrees("opaque-local-etag", &part));
    }
}
