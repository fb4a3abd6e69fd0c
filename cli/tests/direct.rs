//! Issue 22: `r2mpu upload` sends parts straight to R2 when the Worker offers direct parts (the
//! test Worker does: testkit gives it local R2's S3 endpoint), `--via-worker` sends them through
//! the Worker, a part R2 cannot take falls back to the Worker, and a killed upload resumes.
//! The URLs come in batches ahead of need, and a URL R2 refuses as expired is fetched again.

mod util;

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use r2mpu_api::types::UploadStatus;
use util::{multipart_etag, wait_until, Action, Env, Fate, Proxy, Run, Running, Worker, PART};

const PART_SIZE: &str = "5MiB";
const PART_ROUTE: &str = "/uploads/{uploadId}/parts/{partNumber}";
const URL_ROUTE: &str = "/uploads/{uploadId}/parts/{partNumber}/url";
const URLS_ROUTE: &str = "/uploads/{uploadId}/urls";

fn count(lines: &[String], wanted: &str) -> usize {
    lines.iter().filter(|line| *line == wanted).count()
}

fn upload_id_of(stderr: &str) -> String {
    let note = stderr.lines().find(|l| l.starts_with("upload ")).expect("the upload note");
    note.split_whitespace().nth(1).unwrap().trim_end_matches(':').to_string()
}

/// The `method route` of each request for `upload_id` in the Worker's log (src/http/log.rs),
/// once its complete is logged (a line is written as its answer goes out, which may be a moment
/// after the CLI read it); every part's lines came before.
fn logged(worker: &Worker, upload_id: &str) -> Vec<String> {
    let records = worker.log_of_completed_upload(upload_id, Duration::from_secs(120)).into_iter();
    records
        .map(|line| format!("{} {}", line["method"].as_str().unwrap_or(""), line["route"].as_str().unwrap_or("")))
        .collect()
}

/// The proxy's rule for the Worker's `/urls` answers: the presigned URLs, which name local R2 at
/// the Worker's origin, rewritten to name the proxy (`proxy`, known once it has started), which
/// forwards them to local R2 unchanged, `Host` included, so that it sees the PUTs to R2 too.
fn urls_through(worker: &str, proxy: &OnceLock<String>) -> Action {
    let (from, to) = (format!("{worker}/cdn-cgi/"), format!("{}/cdn-cgi/", proxy.get().unwrap()));
    Action::Edit(Box::new(move |answer| {
        let text = String::from_utf8(answer.body.clone()).unwrap();
        answer.body = text.replace(&from, &to).into_bytes();
        Fate::Deliver
    }))
}

/// Whether `path` is part `n`'s PUT to local R2 (a presigned URL bent through the proxy).
fn to_r2_for_part(path: &str, n: u16) -> bool {
    path.starts_with("/cdn-cgi/") && path.contains(&format!("partNumber={n}&"))
}

/// The parts' URLs come in batches (`POST /uploads/{id}/urls`), not one request per part before
/// its PUT, and each part's report, though it no longer holds the next part's start, lands
/// before complete.
#[test]
fn an_upload_sends_its_parts_straight_to_r2_with_batched_urls_and_reads_back_identical() {
    let env = Env::new("cli-direct");
    let (_, data) = env.file("direct.bin", 5 * PART + 11);
    let run = env.run(&["upload", "direct.bin", "direct/direct.bin", "--part-size", PART_SIZE]).expect(0);
    assert_eq!(run.field("etag"), multipart_etag(&data, PART));
    let id = upload_id_of(&run.stderr);
    let saw = logged(env.worker, &id);
    let url_requests = count(&saw, &format!("POST {URLS_ROUTE}")) + count(&saw, &format!("POST {URL_ROUTE}"));
    assert!(url_requests < 6, "{url_requests} URL requests for 6 parts: {saw:?}");
    assert_eq!(count(&saw, &format!("POST {URL_ROUTE}")), 0, "no URL asked for alone: {saw:?}");
    let reports: Vec<usize> = (0..saw.len()).filter(|&i| saw[i] == format!("POST {PART_ROUTE}")).collect();
    assert_eq!(reports.len(), 6, "a report per part: {saw:?}");
    let complete = saw.iter().position(|l| l == "POST /uploads/{uploadId}/complete").unwrap();
    assert!(reports.iter().all(|&i| i < complete), "every report before complete: {saw:?}");
    assert_eq!(count(&saw, &format!("PUT {PART_ROUTE}")), 0, "no part through the Worker: {saw:?}");

    env.run(&["download", "direct/direct.bin", "back.bin"]).expect(0);
    assert!(fs::read(env.path("back.bin")).unwrap() == data);
}

#[test]
fn via_worker_sends_every_part_through_the_worker() {
    let env = Env::new("cli-via-worker");
    let (_, data) = env.file("via.bin", 2 * PART + 5);
    let args = ["upload", "via.bin", "via/via.bin", "--part-size", PART_SIZE, "--via-worker"];
    let run = env.run(&args).expect(0);
    assert_eq!(run.field("etag"), multipart_etag(&data, PART));
    let id = upload_id_of(&run.stderr);
    let saw = logged(env.worker, &id);
    assert_eq!(count(&saw, &format!("PUT {PART_ROUTE}")), 3, "{saw:?}");
    assert_eq!(count(&saw, &format!("POST {URL_ROUTE}")), 0, "{saw:?}");
    assert_eq!(count(&saw, &format!("POST {URLS_ROUTE}")), 0, "{saw:?}");
}

#[test]
fn a_part_r2_cannot_be_reached_for_goes_through_the_worker_and_the_rest_go_direct() {
    let env = Env::new("cli-direct-fallback");
    let (_, data) = env.file("fallback.bin", 2 * PART + 5);
    // Part 2's URL is bent to a port nothing listens on: R2 cannot be reached for it.
    let proxy = Proxy::start(&env.worker.url, |seen| match seen.path.ends_with("/urls") {
        true => Action::Edit(Box::new(|answer| {
            let mut urls: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
            for url in urls["parts"].as_array_mut().unwrap().iter_mut().filter(|u| u["partNumber"] == 2) {
                let text = url["url"].as_str().unwrap();
                let rest = &text[text.find("/cdn-cgi/").unwrap()..];
                url["url"] = format!("http://127.0.0.1:9{rest}").into();
            }
            answer.body = serde_json::to_vec(&urls).unwrap();
            Fate::Deliver
        })),
        false => Action::Forward,
    });
    let mut command = env.command(&["upload", "fallback.bin", "fallback/fallback.bin", "--part-size", PART_SIZE]);
    command.env("R2MPU_ENDPOINT", &proxy.url);
    let run = Run::of(command).expect(0);
    assert_eq!(run.field("etag"), multipart_etag(&data, PART));
    assert!(run.stderr.contains("part 2: R2 did not take it directly"), "{}", run.stderr);
    let puts: Vec<u16> = proxy.seen().iter().filter_map(|s| s.part_number()).collect();
    assert_eq!(puts, vec![2], "only part 2 through the Worker");
    env.run(&["download", "fallback/fallback.bin", "back.bin"]).expect(0);
    assert!(fs::read(env.path("back.bin")).unwrap() == data);
}

#[test]
fn a_killed_direct_upload_resumes_sending_only_the_missing_parts_direct() {
    let env = Env::new("cli-direct-resume");
    let (_, data) = env.file("resume.bin", 12 * PART + 3);
    let args = ["upload", "resume.bin", "resume/resume.bin", "--part-size", PART_SIZE, "--concurrency", "1"];
    let mut running = Running::start(env.command(&args));
    let id = running.upload_id();
    wait_until("parts on the server", || env.upload_state(&id).parts.len() >= 3);
    assert!(running.kill(), "the upload finished before it could be killed; make the file larger");
    let on_server = env.upload_state(&id).parts.len();

    let run = env.run(&["upload", "resume.bin", "resume/resume.bin", "--part-size", PART_SIZE]).expect(0);
    let resumed = run.stderr.lines().find(|l| l.starts_with("resumed: ")).unwrap_or_else(|| panic!("{}", run.stderr));
    let already: usize = resumed.split_whitespace().nth(1).unwrap().parse().unwrap();
    // A part that landed just before the kill may not have reached the local record.
    assert!(already >= 3.min(on_server - 1) && already <= on_server, "{already} of {on_server}\n{}", run.stderr);
    assert_eq!(run.field("etag"), multipart_etag(&data, PART));
    assert_eq!(env.upload_state(&id).status, UploadStatus::Completed);
    let saw = logged(env.worker, &id);
    assert_eq!(count(&saw, &format!("PUT {PART_ROUTE}")), 0, "every part went direct: {saw:?}");

    env.run(&["download", "resume/resume.bin", "back.bin"]).expect(0);
    assert!(fs::read(env.path("back.bin")).unwrap() == data);
}

/// A URL R2 refuses as expired (`403 ExpiredRequest`, as local R2 words it) is fetched again
/// and the part still goes straight to R2, not through the Worker. The URLs are bent through a
/// proxy (it forwards them to local R2 unchanged, `Host` included) that refuses part 2's first
/// PUT as R2 does an expired one.
#[test]
fn a_url_r2_refuses_as_expired_is_fetched_again_and_the_part_still_goes_direct() {
    let env = Env::new("cli-direct-expired");
    let (_, data) = env.file("expired.bin", 2 * PART + 5);
    let me: Arc<OnceLock<String>> = Arc::default();
    let refused = AtomicBool::new(false);
    let (worker, here) = (env.worker.url.trim_end_matches('/').to_owned(), Arc::clone(&me));
    let proxy = Proxy::start(&env.worker.url, move |seen| {
        if seen.path.ends_with("/urls") {
            return urls_through(&worker, &here);
        }
        let part_2_to_r2 = seen.method == "PUT" && to_r2_for_part(&seen.path, 2);
        match part_2_to_r2 && !refused.swap(true, Ordering::Relaxed) {
            true => Action::Edit(Box::new(|answer| {
                answer.status = 403;
                answer.headers.retain(|(name, _)| name != "etag");
                answer.body = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>ExpiredRequest</Code>\
                    <Message>Request has expired</Message></Error>"
                    .to_vec();
                Fate::Deliver
            })),
            false => Action::Forward,
        }
    });
    me.set(proxy.url.clone()).unwrap();
    let mut command = env.command(&["upload", "expired.bin", "expired/expired.bin", "--part-size", PART_SIZE]);
    command.env("R2MPU_ENDPOINT", &proxy.url);
    let run = Run::of(command).expect(0);
    assert_eq!(run.field("etag"), multipart_etag(&data, PART));
    assert!(!run.stderr.contains("did not take it directly"), "{}", run.stderr);
    let seen = proxy.seen();
    let to_r2: Vec<&str> = seen.iter().filter(|s| s.path.starts_with("/cdn-cgi/")).map(|s| s.path.as_str()).collect();
    assert_eq!(to_r2.iter().filter(|p| to_r2_for_part(p, 2)).count(), 2, "part 2 twice to R2: {to_r2:?}");
    assert_eq!(to_r2.len(), 4, "{to_r2:?}");
    assert_eq!(seen.iter().filter(|s| s.path.ends_with("/urls")).count(), 2, "a batch, then part 2's again");
    let puts: Vec<u16> = seen.iter().filter_map(|s| s.part_number()).collect();
    assert!(puts.is_empty(), "no part through the Worker: {puts:?}");
    env.run(&["download", "expired/expired.bin", "back.bin"]).expect(0);
    assert!(fs::read(env.path("back.bin")).unwrap() == data);
}

/// A part's report does not hold the next part's start, and a report the Worker fails is
/// retried: with one part in flight, part 1's report is slowed (1.5 s) and part 2's PUT to R2
/// must arrive while it is still being answered; part 2's first report gets a `503` and goes
/// again. The URLs are bent through the proxy as in the test above, so it sees the PUTs to R2.
#[test]
fn a_reports_wait_does_not_hold_the_next_part_and_a_failed_report_is_retried() {
    let env = Env::new("cli-direct-reports");
    let (_, data) = env.file("reports.bin", 3 * PART + 5);
    let me: Arc<OnceLock<String>> = Arc::default();
    let (worker, here) = (env.worker.url.trim_end_matches('/').to_owned(), Arc::clone(&me));
    let report_of = |seen: &util::Seen, n: u16| seen.method == "POST" && seen.path.ends_with(&format!("/parts/{n}"));
    let proxy = Proxy::start(&env.worker.url, move |seen| {
        if seen.path.ends_with("/urls") {
            return urls_through(&worker, &here);
        }
        match (report_of(seen, 1), report_of(seen, 2) && seen.earlier == 0) {
            (true, _) => Action::ForwardAfter(std::time::Duration::from_millis(1500)),
            (_, true) => Action::Fail("503 Service Unavailable"),
            _ => Action::Forward,
        }
    });
    me.set(proxy.url.clone()).unwrap();
    let args = ["upload", "reports.bin", "reports/reports.bin", "--part-size", PART_SIZE, "--concurrency", "1"];
    let mut command = env.command(&args);
    command.env("R2MPU_ENDPOINT", &proxy.url);
    let run = Run::of(command).expect(0);
    assert_eq!(run.field("etag"), multipart_etag(&data, PART));
    let seen = proxy.seen();
    let report_1 = seen.iter().find(|s| report_of(s, 1)).expect("part 1's report").index;
    let put_2 = seen.iter().find(|s| to_r2_for_part(&s.path, 2)).unwrap();
    assert!(put_2.answering.contains(&report_1), "part 2 waited for part 1's report: {:?}", put_2.answering);
    assert_eq!(seen.iter().filter(|s| report_of(s, 2)).count(), 2, "part 2's report once failed, once landed");
    let saw = logged(env.worker, &upload_id_of(&run.stderr));
    assert_eq!(count(&saw, &format!("POST {PART_ROUTE}")), 4, "every part reported: {saw:?}");
    env.run(&["download", "reports/reports.bin", "back.bin"]).expect(0);
    assert!(fs::read(env.path("back.bin")).unwrap() == data);
}
