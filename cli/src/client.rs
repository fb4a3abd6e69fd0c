//! HTTP to the Worker: the one place that knows the endpoint, the token, how routes are spelled,
//! which failures are worth retrying and how long to wait before trying again.
//!
//! Every request goes through [`Client::with_retries`]: connection errors, 408, 429, 5xx,
//! `part_in_flight` and `upload_completing` are retried with exponential backoff and full jitter
//! (or after the server's `Retry-After`) until the request's deadline (`--retry-for`, two
//! minutes by default) or, if given, `--retries` retries; other 4xx answers come back at once as
//! [`Error::Refused`] with the server's problem document. A deadline rather than a count,
//! because what a client waits out is time: a part still leased by a broken connection, a
//! complete in progress, a Worker restarting, none of which a number of tries measures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use r2mpu_api::types::{
    CompleteUpload, CompletedObject, CreateUpload, CreatedUpload, ObjectList, Part, PartReport, PartUrl, PartUrlItem,
    PartUrlRequest, PartUrls, PartUrlsRequest, Upload,
};
use r2mpu_api::Problem;
use serde::de::DeserializeOwned;
use ureq::http::Response;
use ureq::typestate::{WithBody, WithoutBody};
use ureq::{Agent, Body, RequestBuilder};

use crate::error::{Error, Result};
use crate::progress;

/// How long to keep retrying one request and how long to wait in between.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// No retry starts after this long from the first attempt.
    pub deadline: Duration,
    /// At most this many retries after the first attempt, if given (`--retries`).
    pub retries: Option<u32>,
    /// The ceiling of the first wait; it doubles with each retry.
    pub base: Duration,
    /// No wait is longer than this, whatever the doubling or `Retry-After` say.
    pub cap: Duration,
}

impl RetryPolicy {
    /// The CLI's default deadline: long enough to outwait a lease or a restarting Worker, short
    /// enough that a server that is really gone is reported in minutes.
    pub const DEADLINE: Duration = Duration::from_secs(120);

    pub fn new(deadline: Duration, retries: Option<u32>) -> RetryPolicy {
        RetryPolicy { deadline, retries, base: Duration::from_millis(500), cap: Duration::from_secs(60) }
    }

    /// The wait before retry number `retry`, `elapsed` after the first attempt began, or `None`
    /// to give up: the deadline has passed or the retries are used up. A wait never runs past
    /// the deadline, so the last try happens at it rather than never.
    pub fn next(&self, retry: u32, elapsed: Duration, retry_after: Option<Duration>, unit: f64) -> Option<Duration> {
        if elapsed >= self.deadline || self.retries.is_some_and(|most| retry >= most) {
            return None;
        }
        Some(self.delay(retry, retry_after, unit).min(self.deadline - elapsed))
    }

    /// The wait before retry number `retry` (0 for the first). The server's `Retry-After` wins
    /// when given; otherwise "full jitter": uniform in `[0, min(cap, base * 2^retry))`, so that
    /// many clients failing together do not come back together. `unit` is a random number in
    /// `[0, 1)`.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.cap);
        }
        let ceiling = self.base.saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX)).min(self.cap);
        ceiling.mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// How a single attempt failed.
#[derive(Debug)]
pub enum Attempt {
    /// Worth trying again, after the server's `Retry-After` if it sent one.
    Transient { reason: String, retry_after: Option<Duration> },
    /// Trying again will not help.
    Fatal(Error),
}

impl From<Error> for Attempt {
    fn from(error: Error) -> Attempt {
        Attempt::Fatal(error)
    }
}

/// Whether a status means "try again later" rather than "you asked for something wrong".
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..=599).contains(&status)
}

/// Whether a transport failure might go away by itself.
fn retryable_transport(error: &ureq::Error) -> bool {
    use ureq::Error::*;
    matches!(error, Io(_) | Timeout(_) | HostNotFound | ConnectionFailed | Protocol(_) | BodyStalled)
}

/// The Worker's base URL, the bearer token and a pool of connections.
#[derive(Clone)]
pub struct Client {
    agent: Agent,
    endpoint: String,
    token: Option<String>,
    pub retry: RetryPolicy,
    /// Attempts that failed and were retried: the adaptive concurrency backs off on them. Shared
    /// by the clones a download's fetching threads own.
    pub setbacks: Arc<AtomicU64>,
}

impl Client {
    /// `connections` is how many requests may be in flight at once: that many idle connections
    /// per host are kept alive, so that each transfer thread finds its own again for its next part
    /// instead of paying a new handshake (ureq keeps only 10 by default).
    pub fn new(endpoint: &str, token: Option<String>, retry: RetryPolicy, connections: usize) -> Client {
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("r2mpu/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(10)))
            // No total limit (a part may take minutes on a slow link), but a connection that
            // stops moving for two minutes is dead.
            .timeout_per_read(Some(Duration::from_secs(120)))
            .timeout_per_write(Some(Duration::from_secs(120)))
            // Twice over in all: with direct parts each thread keeps one to the Worker and one
            // to R2's endpoint.
            .max_idle_connections(2 * connections.max(1))
            .max_idle_connections_per_host(connections.max(1))
            .build();
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        Client { agent: config.into(), endpoint, token, retry, setbacks: Arc::new(AtomicU64::new(0)) }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint)
    }

    fn authorize<B>(&self, request: RequestBuilder<B>) -> RequestBuilder<B> {
        match &self.token {
            Some(token) => request.header("Authorization", format!("Bearer {token}")),
            None => request,
        }
    }

    /// How long a first request takes on a new connection, its handshake included: `GET
    /// /healthz`, which the Worker answers without work, so this is the link's latency, not the
    /// server's. `None` if it fails (the transfer's own requests then say why). It goes through
    /// an agent of its own, so that a connection an earlier request left in the pool cannot
    /// hide the handshake.
    pub fn first_round_trip(&self) -> Option<Duration> {
        let probe = Agent::new_with_config(self.agent.config().clone());
        let started = Instant::now();
        let response = probe.get(self.url("/healthz")).call().ok()?;
        (response.status() == 200).then(|| started.elapsed())
    }

    pub fn get(&self, path: &str) -> RequestBuilder<WithoutBody> {
        self.authorize(self.agent.get(self.url(path)))
    }

    pub fn head(&self, path: &str) -> RequestBuilder<WithoutBody> {
        self.authorize(self.agent.head(self.url(path)))
    }

    pub fn delete(&self, path: &str) -> RequestBuilder<WithoutBody> {
        self.authorize(self.agent.delete(self.url(path)))
    }

    pub fn post(&self, path: &str) -> RequestBuilder<WithBody> {
        self.authorize(self.agent.post(self.url(path)))
    }

    pub fn put(&self, path: &str) -> RequestBuilder<WithBody> {
        self.authorize(self.agent.put(self.url(path)))
    }

    /// Runs `attempt` until it succeeds, fails for good, or the policy gives up.
    pub fn with_retries<T>(&self, what: &str, mut attempt: impl FnMut() -> Result<T, Attempt>) -> Result<T> {
        let started = Instant::now();
        let mut retry = 0;
        loop {
            match attempt() {
                Ok(value) => return Ok(value),
                Err(Attempt::Fatal(error)) => return Err(error),
                Err(Attempt::Transient { reason, retry_after }) => {
                    self.setbacks.fetch_add(1, Ordering::Relaxed);
                    let elapsed = started.elapsed();
                    let Some(wait) = self.retry.next(retry, elapsed, retry_after, random_unit()) else {
                        let tries = if retry == 0 { "1 attempt".into() } else { format!("{} attempts", retry + 1) };
                        return Err(Error::Unavailable(format!(
                            "{what}: {reason} (gave up after {tries} in {:.1}s)",
                            elapsed.as_secs_f64()
                        )));
                    };
                    progress::note(format!("{what}: {reason}; retrying in {:.1}s", wait.as_secs_f64()));
                    thread::sleep(wait);
                    retry += 1;
                }
            }
        }
    }

    /// `POST /uploads`, with an `Idempotency-Key` of its own: a retry after the answer was lost
    /// gets the upload the first attempt created, not a second one left behind to expire.
    pub fn create_upload(&self, body: &CreateUpload) -> Result<CreatedUpload> {
        let json = serde_json::to_vec(body).expect("CreateUpload serializes");
        let key = idempotency_key();
        self.with_retries("create upload", || {
            let response = self
                .post("/uploads")
                .header("Content-Type", "application/json")
                .header("Idempotency-Key", &key)
                .send(&json[..]);
            read_json(check("create upload", response)?)
        })
    }

    /// `GET /uploads/{uploadId}`.
    pub fn get_upload(&self, upload_id: &str) -> Result<Upload> {
        let what = format!("get upload {upload_id}");
        self.with_retries(&what, || read_json(check(&what, self.get(&upload_path(upload_id)).call())?))
    }

    /// `POST /uploads/{uploadId}/complete`. Repeating it is harmless: a completed upload answers
    /// with the same object.
    pub fn complete_upload(&self, upload_id: &str, body: &CompleteUpload) -> Result<CompletedObject> {
        let json = serde_json::to_vec(body).expect("CompleteUpload serializes");
        let path = format!("{}/complete", upload_path(upload_id));
        self.with_retries("complete upload", || {
            let response = self.post(&path).header("Content-Type", "application/json").send(&json[..]);
            read_json(check("complete upload", response)?)
        })
    }

    /// `POST /uploads/{uploadId}/parts/{n}/url`: a presigned PUT to send part `n` straight to R2
    /// (with `Content-MD5` signed when given), or `None` when the server offers no direct parts
    /// (`501 direct_parts_unavailable`).
    pub fn part_url(&self, upload_id: &str, n: u16, content_md5: Option<String>) -> Result<Option<PartUrl>> {
        let json = serde_json::to_vec(&PartUrlRequest { content_md5, ..PartUrlRequest::default() })
            .expect("PartUrlRequest serializes");
        let (path, what) = (format!("{}/url", part_path(upload_id, n)), format!("URL for part {n}"));
        self.with_retries(&what, || {
            let response = self.post(&path).header("Content-Type", "application/json").send(&json[..]);
            if response.as_ref().is_ok_and(|r| r.status().as_u16() == 501) {
                return Ok(None);
            }
            read_json(check(&what, response)?).map(Some)
        })
    }

    /// `POST /uploads/{uploadId}/urls`: presigned PUTs for many parts in one round trip (at most
    /// 1,000), in the order asked, or `None` when the server offers no direct parts
    /// (`501 direct_parts_unavailable`).
    pub fn part_urls(&self, upload_id: &str, parts: Vec<PartUrlItem>) -> Result<Option<Vec<PartUrl>>> {
        let json = serde_json::to_vec(&PartUrlsRequest { parts }).expect("PartUrlsRequest serializes");
        let path = format!("{}/urls", upload_path(upload_id));
        self.with_retries("part URLs", || {
            let response = self.post(&path).header("Content-Type", "application/json").send(&json[..]);
            if response.as_ref().is_ok_and(|r| r.status().as_u16() == 501) {
                return Ok(None);
            }
            read_json::<PartUrls>(check("part URLs", response)?).map(|urls| Some(urls.parts))
        })
    }

    /// The presigned request in `url`, to R2 itself: without the bearer token, which is the
    /// Worker's and never R2's business.
    pub fn put_direct(&self, url: &PartUrl) -> RequestBuilder<WithBody> {
        let mut request = self.agent.put(&url.url);
        for (name, value) in &url.headers {
            request = request.header(name, value);
        }
        request
    }

    /// `POST /uploads/{uploadId}/parts/{n}`: records a part sent straight to R2.
    pub fn report_part(&self, upload_id: &str, n: u16, report: &PartReport) -> Result<Part> {
        let json = serde_json::to_vec(report).expect("PartReport serializes");
        let (path, what) = (part_path(upload_id, n), format!("report part {n}"));
        self.with_retries(&what, || {
            let response = self.post(&path).header("Content-Type", "application/json").send(&json[..]);
            read_json(check_report(&what, response)?)
        })
    }

    /// `POST /credentials`: the token as S3 credentials.
    pub fn credentials(&self) -> Result<r2mpu_api::types::S3Credentials> {
        self.with_retries("credentials", || read_json(check("credentials", self.post("/credentials").send_empty())?))
    }

    /// `DELETE /uploads/{uploadId}`.
    pub fn abort_upload(&self, upload_id: &str) -> Result<()> {
        let what = format!("abort upload {upload_id}");
        self.with_retries(&what, || check(&what, self.delete(&upload_path(upload_id)).call()).map(drop))
    }

    /// `HEAD /objects/{key}`: the object's size and (unquoted) ETag.
    pub fn head_object(&self, key: &str) -> Result<(u64, String)> {
        let what = format!("head {key}");
        let response = self.with_retries(&what, || check(&what, self.head(&object_path(key)).call()))?;
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
        let size = header("content-length").and_then(|v| v.parse().ok());
        let etag = header("etag").map(|v| crate::etag::unquote(v).to_owned());
        match (size, etag) {
            (Some(size), Some(etag)) => Ok((size, etag)),
            _ => Err(Error::Unavailable(format!("{what}: the answer lacks Content-Length or ETag"))),
        }
    }

    /// `DELETE /objects/{key}`.
    pub fn delete_object(&self, key: &str) -> Result<()> {
        let what = format!("delete {key}");
        self.with_retries(&what, || check(&what, self.delete(&object_path(key)).call()).map(drop))
    }

    /// `GET /objects`: one page.
    pub fn list_objects(&self, prefix: &str, cursor: Option<&str>) -> Result<ObjectList> {
        self.with_retries("list objects", || {
            let mut request = self.get("/objects").query("prefix", prefix);
            if let Some(cursor) = cursor {
                request = request.query("cursor", cursor);
            }
            read_json(check("list objects", request.call())?)
        })
    }
}

/// Characters kept as they are in a path segment: RFC 3986 unreserved.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `/objects/{key}` with each `/`-separated segment percent-encoded and `/` kept.
pub fn object_path(key: &str) -> String {
    let segments: Vec<String> = key.split('/').map(|s| utf8_percent_encode(s, SEGMENT).to_string()).collect();
    format!("/objects/{}", segments.join("/"))
}

pub fn upload_path(upload_id: &str) -> String {
    format!("/uploads/{}", utf8_percent_encode(upload_id, SEGMENT))
}

pub fn part_path(upload_id: &str, part_number: u16) -> String {
    format!("{}/parts/{part_number}", upload_path(upload_id))
}

/// Sorts out what came back from one attempt: a 2xx (or 304) passes; anything else becomes a
/// transient or fatal [`Attempt`] failure with the server's problem document read from its body.
pub fn check(what: &str, result: Result<Response<Body>, ureq::Error>) -> Result<Response<Body>, Attempt> {
    let mut response = match result {
        Ok(response) => response,
        Err(error) if retryable_transport(&error) => {
            return Err(Attempt::Transient { reason: error.to_string(), retry_after: None })
        }
        Err(ureq::Error::BadUri(uri)) => {
            return Err(Error::Usage(format!("the endpoint gives a bad URL: {uri}")).into())
        }
        Err(error) => return Err(Error::Unavailable(format!("{what}: {error}")).into()),
    };
    let status = response.status().as_u16();
    if (200..300).contains(&status) || status == 304 {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after(v, SystemTime::now()));
    let body = response.body_mut().with_config().limit(64 * 1024).read_to_string().unwrap_or_default();
    let problem = serde_json::from_str::<Problem>(&body).ok().map(Box::new);
    let transient = retryable_status(status) || problem.as_ref().is_some_and(|p| p.error.is_retryable());
    if transient {
        let reason = match &problem {
            Some(p) => format!("{status} {}", p.error.code()),
            None => format!("HTTP {status}"),
        };
        return Err(Attempt::Transient { reason, retry_after });
    }
    if (400..500).contains(&status) {
        return Err(Error::Refused { what: what.to_owned(), status, problem }.into());
    }
    Err(Error::Unavailable(format!("{what}: unexpected HTTP {status}")).into())
}

/// [`check`] for a direct part's report: `upload_completing` is final, not worth a retry. Only
/// this run's own complete makes its upload `completing`, and that complete lists the part, so
/// the report is moot (the server records the part from the list).
fn check_report(what: &str, result: Result<Response<Body>, ureq::Error>) -> Result<Response<Body>, Attempt> {
    let completing = format!("409 {}", r2mpu_api::ApiError::UploadCompleting.code());
    match check(what, result) {
        Err(Attempt::Transient { reason, .. }) if reason == completing => {
            Err(Error::Refused { what: what.to_owned(), status: 409, problem: None }.into())
        }
        checked => checked,
    }
}

/// A `Retry-After` value as a wait from `now`: delay-seconds, or an HTTP date (RFC 9110 §10.2.3),
/// which is as long as it takes to get there (nothing when it is past).
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = UNIX_EPOCH + Duration::from_secs(http_date(value)?);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Seconds since the epoch of an IMF-fixdate, the HTTP date servers send:
/// `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(text: &str) -> Option<u64> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [_weekday, day, month, year, time, "GMT"] = fields[..] else { return None };
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let clock: Vec<i64> = time.split(':').map(|t| t.parse().ok()).collect::<Option<_>>()?;
    let [hour, minute, second] = clock[..] else { return None };
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Days from 1970-01-01 to the civil date (H. Hinnant's `days_from_civil`).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    u64::try_from(days * 86_400 + hour * 3_600 + minute * 60 + second).ok()
}

/// Reads a JSON success body. A body cut short is worth retrying; one that is not the JSON the
/// contract promises is not.
pub fn read_json<T: DeserializeOwned>(mut response: Response<Body>) -> Result<T, Attempt> {
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| Attempt::Transient { reason: format!("reading the answer: {e}"), retry_after: None })?;
    serde_json::from_str(&text).map_err(|e| {
        Error::Unavailable(format!("the server's answer is not what the API promises ({e}): {text:.200}")).into()
    })
}

/// 128 random bits as 32 hex digits: one create, however many times it is sent.
fn idempotency_key() -> String {
    let (a, b) = (getrandom::u64().expect("random bits"), getrandom::u64().expect("random bits"));
    format!("{a:016x}{b:016x}")
}

/// A random number in `[0, 1)` for jitter.
fn random_unit() -> f64 {
    let bits = getrandom::u64().unwrap_or(0x9e37_79b9_7f4a_7c15);
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_timeouts_throttling_and_server_errors_are_retried() {
        for status in [408, 429, 500, 502, 503, 504, 599] {
            assert!(retryable_status(status), "{status}");
        }
        for status in [200, 304, 400, 401, 403, 404, 409, 411, 413, 415, 416] {
            assert!(!retryable_status(status), "{status}");
        }
    }

    #[test]
    fn backoff_doubles_under_a_cap_and_jitters_down_to_zero() {
        let policy = RetryPolicy { cap: Duration::from_secs(10), ..RetryPolicy::new(RetryPolicy::DEADLINE, None) };
        assert_eq!(policy.delay(0, None, 0.0), Duration::ZERO);
        assert_eq!(policy.delay(0, None, 0.5), Duration::from_millis(250));
        assert!(policy.delay(0, None, 0.999_999) < Duration::from_millis(500));
        assert!(policy.delay(3, None, 0.999_999) < Duration::from_secs(4));
        assert!(policy.delay(3, None, 0.999_999) > Duration::from_millis(3_990));
        assert_eq!(policy.delay(5, None, 1.0), Duration::from_secs(10));
        assert_eq!(policy.delay(200, None, 1.0), Duration::from_secs(10));
        for retry in 0..40 {
            for unit in [0.0, 0.3, 0.7, 0.999] {
                assert!(policy.delay(retry, None, unit) <= policy.cap);
            }
        }
    }

    #[test]
    fn retry_after_wins_over_backoff_but_not_over_the_cap() {
        let policy = RetryPolicy { cap: Duration::from_secs(10), ..RetryPolicy::new(RetryPolicy::DEADLINE, None) };
        assert_eq!(policy.delay(0, Some(Duration::from_secs(3)), 0.0), Duration::from_secs(3));
        assert_eq!(policy.delay(4, Some(Duration::from_secs(300)), 0.5), Duration::from_secs(10));
    }

    /// Issue 19, item 2: what ends the retries is the deadline, not a count, and the server's
    /// `Retry-After` is followed up to it.
    #[test]
    fn retries_follow_retry_after_until_the_deadline_and_never_wait_past_it() {
        let policy = RetryPolicy::new(Duration::from_secs(120), None);
        let asked = Some(Duration::from_secs(2));
        assert_eq!(policy.next(0, Duration::ZERO, asked, 0.5), Some(Duration::from_secs(2)));
        assert_eq!(
            policy.next(59, Duration::from_secs(118), asked, 0.5),
            Some(Duration::from_secs(2)),
            "no count ends it"
        );
        assert_eq!(
            policy.next(60, Duration::from_millis(119_500), asked, 0.5),
            Some(Duration::from_millis(500)),
            "the last try is at the deadline"
        );
        assert_eq!(policy.next(61, Duration::from_secs(120), asked, 0.5), None, "the deadline has passed");
        let counted = RetryPolicy::new(Duration::from_secs(120), Some(2));
        assert!(counted.next(1, Duration::ZERO, None, 0.5).is_some());
        assert_eq!(counted.next(2, Duration::ZERO, None, 0.5), None, "--retries still bounds the count");
    }

    #[test]
    fn a_request_that_outlasts_its_deadline_fails_saying_how_long_it_tried() {
        let policy =
            RetryPolicy { base: Duration::from_millis(10), ..RetryPolicy::new(Duration::from_millis(300), None) };
        let client = Client::new("http://127.0.0.1:9", None, policy, 1);
        let started = Instant::now();
        let mut attempts = 0;
        let error = client
            .with_retries("PUT part 5", || -> Result<(), Attempt> {
                attempts += 1;
                Err(Attempt::Transient {
                    reason: "409 part_in_flight".into(),
                    retry_after: Some(Duration::from_millis(50)),
                })
            })
            .unwrap_err();
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(2), "{took:?}");
        assert!(attempts >= 5, "Retry-After 50 ms within 300 ms: {attempts} attempts");
        let message = error.to_string();
        assert!(message.starts_with("PUT part 5: 409 part_in_flight (gave up after "), "{message}");
        assert!(message.contains(&format!("{attempts} attempts in 0.")), "{message}");
    }

    #[test]
    fn jitter_is_in_the_unit_interval() {
        for _ in 0..1000 {
            let unit = random_unit();
            assert!((0.0..1.0).contains(&unit));
        }
    }

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Result<Response<Body>, ureq::Error> {
        let mut builder = Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        Ok(builder.body(Body::builder().data(body)).unwrap())
    }

    fn problem(error: r2mpu_api::ApiError) -> String {
        serde_json::to_string(&Problem::from(error)).unwrap()
    }

    #[test]
    fn successes_pass_and_server_trouble_is_transient_with_its_retry_after() {
        assert!(check("x", response(200, &[], "{}")).is_ok());
        assert!(check("x", response(206, &[], "")).is_ok());
        let busy = check("x", response(503, &[("Retry-After", "3")], ""));
        assert!(matches!(busy, Err(Attempt::Transient { retry_after: Some(d), .. }) if d == Duration::from_secs(3)));
        let internal = check("x", response(500, &[], &problem(r2mpu_api::ApiError::Internal)));
        assert!(matches!(internal, Err(Attempt::Transient { reason, retry_after: None }) if reason == "500 internal"));
        assert!(matches!(check("x", response(429, &[], "")), Err(Attempt::Transient { .. })));
    }

    /// Issue 8, item 11: `Retry-After` may be an HTTP date.
    #[test]
    fn retry_after_is_read_as_seconds_or_as_an_http_date() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::ZERO));
        assert_eq!(retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now), Some(Duration::ZERO), "already past");
        assert_eq!(retry_after("Thu, 01 Jan 1970 00:00:00 GMT", UNIX_EPOCH), Some(Duration::ZERO));
        let leap_day = UNIX_EPOCH + Duration::from_secs(1_709_164_800); // 2024-02-29 00:00:00
        assert_eq!(retry_after("Thu, 29 Feb 2024 00:00:05 GMT", leap_day), Some(Duration::from_secs(5)));
        assert_eq!(retry_after("Sat, 01 Jan 2000 00:00:00 GMT", UNIX_EPOCH), Some(Duration::from_secs(946_684_800)));
        for junk in ["soon", "-1", "Sun, 06 Nov 1994 08:49:37 PST", "Sun, 32 Nov 1994 08:49:37 GMT", ""] {
            assert_eq!(retry_after(junk, now), None, "{junk}");
        }
        let date_in_5s = "Sun, 06 Nov 1994 08:49:42 GMT";
        let reply = check("x", response(503, &[("Retry-After", date_in_5s)], ""));
        assert!(matches!(reply, Err(Attempt::Transient { retry_after: Some(_), .. })), "{reply:?}");
    }

    #[test]
    fn a_completing_upload_is_the_one_4xx_worth_waiting_for() {
        let body = problem(r2mpu_api::ApiError::UploadCompleting);
        let completing = check("x", response(409, &[("Retry-After", "1")], &body));
        assert!(matches!(completing, Err(Attempt::Transient { retry_after: Some(_), .. })));
        let body = problem(r2mpu_api::ApiError::UploadCompleted);
        assert!(matches!(
            check("x", response(409, &[], &body)),
            Err(Attempt::Fatal(Error::Refused { status: 409, .. }))
        ));
    }

    #[test]
    fn a_report_meeting_its_own_complete_is_not_retried_but_other_waits_still_are() {
        let body = problem(r2mpu_api::ApiError::UploadCompleting);
        let completing = check_report("x", response(409, &[("Retry-After", "1")], &body));
        assert!(matches!(completing, Err(Attempt::Fatal(Error::Refused { status: 409, .. }))), "{completing:?}");
        let body = problem(r2mpu_api::ApiError::PartInFlight { part_number: 1, retry_after: 1 });
        let in_flight = check_report("x", response(409, &[("Retry-After", "1")], &body));
        assert!(matches!(in_flight, Err(Attempt::Transient { .. })), "{in_flight:?}");
        assert!(matches!(check_report("x", response(503, &[], "")), Err(Attempt::Transient { .. })));
    }

    #[test]
    fn client_errors_are_refused_at_once_with_the_problem_parsed() {
        let body = problem(r2mpu_api::ApiError::UploadNotFound);
        match check("get upload u", response(404, &[], &body)) {
            Err(Attempt::Fatal(error)) => {
                assert_eq!(error.problem(), Some(&r2mpu_api::ApiError::UploadNotFound));
                assert_eq!(error.to_string(), "get upload u: refused with 404 upload_not_found: no such upload");
            }
            other => panic!("{other:?}"),
        }
        match check("head k", response(404, &[], "")) {
            Err(Attempt::Fatal(Error::Refused { problem: None, .. })) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_client_that_gives_up_reports_every_attempt() {
        let mut client = Client::new("http://127.0.0.1:1/", None, RetryPolicy::new(RetryPolicy::DEADLINE, Some(2)), 1);
        client.retry.base = Duration::from_millis(1);
        assert_eq!(client.endpoint(), "http://127.0.0.1:1");
        let mut attempts = 0;
        let result: Result<()> = client.with_retries("thing", || {
            attempts += 1;
            Err(Attempt::Transient { reason: "flaky".into(), retry_after: None })
        });
        assert_eq!(attempts, 3);
        assert_eq!(result.unwrap_err().to_string(), "thing: flaky (gave up after 3 attempts in 0.0s)");
        let mut attempts = 0;
        let result: Result<()> = client.with_retries("thing", || {
            attempts += 1;
            Err(Error::Usage("no".into()).into())
        });
        assert_eq!(attempts, 1);
        assert!(matches!(result, Err(Error::Usage(_))));
    }

    #[test]
    fn keys_are_encoded_segment_by_segment() {
        assert_eq!(object_path("a/b.bin"), "/objects/a/b.bin");
        assert_eq!(object_path("dir/with space/ü?#%.txt"), "/objects/dir/with%20space/%C3%BC%3F%23%25.txt");
        assert_eq!(object_path("dir/"), "/objects/dir/");
        assert_eq!(part_path("u 1", 7), "/uploads/u%201/parts/7");
    }
}
