//! Presigned part URLs fetched ahead of need, so that a direct part costs no round trip to the
//! Worker before its PUT (issue 22): a new upload's create asks for the first 1,000 parts'
//! URLs in its own answer (`partUrls`), and after that, or on a resume, the first part that
//! needs a URL asks for it and for the next parts in sending order in one
//! `POST /uploads/{id}/urls` (up to 1,000), and the parts after it find theirs waiting. A URL
//! about to expire is not handed out but fetched again, with the parts after it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use r2mpu_api::types::{PartUrl, PartUrlItem, DEFAULT_PART_URL_SECS, MAX_PART_URLS};

use crate::client::Client;
use crate::error::{Error, Result};

/// The most parts one `POST /uploads/{id}/urls`, or a create, may ask URLs for.
pub const BATCH: usize = MAX_PART_URLS as usize;

/// When URLs signed now for [`DEFAULT_PART_URL_SECS`] stop being worth using, by this machine's
/// clock: taken before the request that asks for them, as the server's clock starts no earlier.
pub fn deadline_from_now() -> Instant {
    Instant::now() + Duration::from_secs(DEFAULT_PART_URL_SECS)
}

/// A URL with less than this left is fetched again rather than used: R2 checks the expiry when
/// the PUT starts, and the part may wait a moment for its connection.
const MARGIN: Duration = Duration::from_secs(60);

/// Whether a URL good until `deadline` is still worth handing out at `now`.
fn fresh(deadline: Instant, now: Instant) -> bool {
    deadline.saturating_duration_since(now) > MARGIN
}

/// The parts to ask URLs for when part `n` needs one: `n`, then the parts after it in `order`
/// that hold no fresh URL (`has_fresh`), at most [`BATCH`] in all.
fn batch(n: u16, order: &[u16], has_fresh: impl Fn(u16) -> bool) -> Vec<u16> {
    let after = order.iter().position(|&m| m == n).map_or(&[][..], |at| &order[at + 1..]);
    std::iter::once(n).chain(after.iter().copied().filter(|&m| !has_fresh(m))).take(BATCH).collect()
}

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

    /// Keeps URLs fetched elsewhere (the create's `partUrls`) for the parts that need them.
    pub fn keep(&self, urls: Vec<PartUrl>, deadline: Instant) {
        let mut kept = self.urls.lock().unwrap_or_else(|e| e.into_inner());
        kept.extend(urls.into_iter().map(|url| (url.part_number, (url, deadline))));
    }

    /// Part `n`'s URL, from a batch fetched earlier when it is still fresh, else from a new
    /// batch: `n` and the parts after it in sending order that hold no fresh URL. `None`: the
    /// server offers no direct parts. A URL is handed out once; ask again for a fresh one (R2
    /// refused it as expired).
    pub fn take(&self, n: u16) -> Result<Option<PartUrl>> {
        let mut urls = self.urls.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some((url, deadline)) = urls.remove(&n) {
            if fresh(deadline, now) {
                return Ok(Some(url));
            }
        }
        let wanted = batch(n, self.order, |m| urls.get(&m).is_some_and(|&(_, deadline)| fresh(deadline, now)));
        let items = wanted
            .iter()
            .map(|&part_number| PartUrlItem { part_number, content_md5: None, length: None, expires_in: None })
            .collect();
        let deadline = deadline_from_now();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_the_part_and_the_next_ones_without_a_fresh_url_up_to_the_limit() {
        let order: Vec<u16> = (1..=2500).collect();
        assert_eq!(batch(1, &order, |_| false), (1..=1000).collect::<Vec<_>>());
        // Parts 2 to 5 hold fresh URLs: not asked for again; the batch reaches further instead.
        let expected: Vec<u16> = std::iter::once(1).chain(6..=1004).collect();
        assert_eq!(batch(1, &order, |m| (2..=5).contains(&m)), expected);
        // Near the end, only what is left; a part outside the order (sent again) alone.
        assert_eq!(batch(2499, &order, |_| false), vec![2499, 2500]);
        assert_eq!(batch(7, &[1, 2], |_| false), vec![7]);
    }

    #[test]
    fn a_url_within_a_minute_of_its_expiry_is_not_handed_out() {
        let now = Instant::now();
        assert!(fresh(now + Duration::from_secs(DEFAULT_PART_URL_SECS), now));
        assert!(fresh(now + MARGIN + Duration::from_secs(1), now));
        assert!(!fresh(now + MARGIN, now));
        assert!(!fresh(now, now + Duration::from_secs(5)));
    }
}
