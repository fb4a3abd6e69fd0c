//! Presigned part URLs fetched ahead of need, so that a direct part costs no round trip to the
//! Worker before its PUT (issue 22): the first part that needs a URL asks for it and for the
//! next parts in sending order in one `POST /uploads/{id}/urls` (up to 1,000), and the parts
//! after it find theirs waiting. A URL about to expire is not handed out but fetched again,
//! with the parts after it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use r2mpu_api::types::{PartUrl, PartUrlItem, DEFAULT_PART_URL_SECS};

use crate::client::Client;
use crate::error::{Error, Result};

/// The most parts one `POST /uploads/{id}/urls` may ask for.
pub const BATCH: usize = 1000;

/// A URL with less than this left is fetched again rather than used: R2 checks the expiry when
/// the PUT starts, and the part may wait a moment for its connection.
const MARGIN: Duration = Duration::from_secs(60);

/// The URLs fetched for an upload's parts and not used yet.
pub struct UrlBook<'a> {
    client: &'a Client,
    upload_id: &'a str,
    /// The parts to send, in the order they are sent: a batch is the part asked for and the
    /// ones after it.
    order: &'a [u16],
    /// Part number → its URL and when (by this machine's clock) it stops being worth using.
    /// Held while a batch is fetched: the threads that need a URL from it wait for it.
    urls: Mutex<BTreeMap<u16, (PartUrl, Instant)>>,
}

impl<'a> UrlBook<'a> {
    pub fn new(client: &'a Client, upload_id: &'a str, order: &'a [u16]) -> UrlBook<'a> {
        UrlBook { client, upload_id, order, urls: Mutex::new(BTreeMap::new()) }
    }

    /// Part `n`'s URL, from a batch fetched earlier when it is still fresh, else from a new
    /// batch: `n` and the parts after it in sending order that hold no fresh URL. `None`: the
    /// server offers no direct parts. A URL is handed out once; ask again for a fresh one (R2
    /// refused it as expired).
    pub fn take(&self, n: u16) -> Result<Option<PartUrl>> {
        let mut urls = self.urls.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = |deadline: &Instant| deadline.saturating_duration_since(Instant::now()) > MARGIN;
        if let Some((url, deadline)) = urls.remove(&n) {
            if fresh(&deadline) {
                return Ok(Some(url));
            }
        }
        let after = self.order.iter().position(|&m| m == n).map_or(&[][..], |at| &self.order[at + 1..]);
        let wanted: Vec<u16> = std::iter::once(n)
            .chain(after.iter().copied().filter(|m| !urls.get(m).is_some_and(|(_, deadline)| fresh(deadline))))
            .take(BATCH)
            .collect();
        let items = wanted
            .iter()
            .map(|&part_number| PartUrlItem { part_number, content_md5: None, length: None, expires_in: None })
            .collect();
        // Timed from before the request: the server's clock starts no earlier.
        let deadline = Instant::now() + Duration::from_secs(DEFAULT_PART_URL_SECS);
        let Some(fetched) = self.client.part_urls(self.upload_id, items)? else {
            return Ok(None);
        };
        let mut mine = None;
        for url in fetched {
            match url.part_number == n {
                true => mine = Some(url),
                false => {
                    urls.insert(url.part_number, (url, deadline));
                }
            }
        }
        mine.map(Some).ok_or_else(|| Error::Unavailable(format!("part URLs: the server's answer lacks part {n}")))
    }
}
