//! Issue 22: `r2mpu upload` sends parts straight to R2 when the Worker offers direct parts (the
//! test Worker does: testkit gives it local R2's S3 endpoint), `--via-worker` sends them through
//! the Worker, a part R2 cannot take falls back to the Worker, and a killed upload resumes.
//! The URLs come with the create, or in batches ahead of need, a URL R2 refuses as expired is
//! fetched again, and complete does not wait for the parts' reports.

mod util;

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use r2mpu_api::types::UploadStatus;
use util::{multipart_etag, wait_until, Action, Env, Fate, Proxy, Run, Running, Tally, Worker, PART};

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

/// Whether the Worker's answer to `seen` carries presigned URLs: a create's (`partUrls`) or
/// `POST /uploads/{id}/urls`'.
fn answers_urls(seen: &util::Seen) -> bool {
    seen.method == "POST" && (seen.path == "/uploads" || seen.path.ends_with("/urls"))
}

/// The proxy's rule for the answers that carry URLs ([`answers_urls`]): the presigned URLs,
/// which name local R2 at the Worker's origin, rewritten to name the proxy (`proxy`, known once
/// it has started), which forwards them to local R2 unchanged, `Host` included, so that it
/// sees the PUTs to R2 too.
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

/// An upload whose parts fit the first batch takes their URLs from its create's answer: no
/// `POST /uploads/{id}/urls` nor a URL asked for alone, and no part through the Worker.
#[test]
fn an_upload_whose_parts_fit_one_batch_takes_their_urls_from_the_create_and_reads_back_identical() {
    let env = Env::new("cli-direct");
    let (_, data) = env.file("direct.bin", 5 * PART + 11);
    let run = env.run(&["upload", "direct.bin", "direct/direct.bin", "--part-size", PART_SIZE]).expect(0);
    assert_eq!(run.field("etag"), multipart_etag(&data, PART));
    let id = upload_id_of(&run.stderr);
    let saw = logged(env.worker, &id);
    assert_eq!(count(&saw, &format!("POST {URLS_ROUTE}")), 0, "the create brought every URL: {saw:?}");
    assert_eq!(count(&saw, &format!("POST {URL_ROUTE}")), 0, "no URL asked for alone: {saw:?}");
    assert_eq!(count(&saw, &format!("PUT {PART_ROUTE}")), 0, "no part through the Worker: {saw:?}");

    env.run(&["download", "direct/direct.bin", "back.bin"]).expect(0);
    assert!(fs::read(env.path("back.bin")).unwrap() == data);
}

/// Complete does not wait for the parts' reports: the proxy holds every report until the
/// Worker has answered the complete (30 s at most), and the upload still completes to the
/// identical object, its list standing as the reports; each held report, let through after,
/// finds the upload completed.
#[test]
fn a_complete_that_lands_before_the_held_reports_still_completes_identical() {
    let env = Env::new("cli-direct-held");
    let (_, data) = env.file("held.bin", 3 * PART + 7);
    let completed = Arc::new(Tally::default());
    let answered = Arc::clone(&completed);
    let proxy = Proxy::start(&env.worker.url, move |seen| {
        let is_report = seen.method == "POST" && seen.path.contains("/parts/") && !seen.path.ends_with("/url");
        if seen.method == "POST" && seen.path.ends_with("/complete") {
            let answered = Arc::clone(&answered);
            return Action::Edit(Box::new(move |_| {
                answered.add();
                Fate::Deliver
            }));
        }
        match is_report {
            true => {
                let completed = Arc::clone(&completed);
                Action::ForwardWhen(Box::new(move || {
                    completed.wait_for(1, Duration::from_secs(30));
                }))
            }
            false => Action::Forward,
        }
    });
    let mut command = env.command(&["upload", "held.bin", "held/held.bin", "--part-size", PART_SIZE]);
    command.env("R2MPU_ENDPOINT", &proxy.url);
    let run = Run::of(command).expect(0);
    assert_eq!(run.field("etag"), multipart_etag(&data, PART));
    let id = upload_id_of(&run.stderr);
    let reports_after_complete = || {
        let records = env.worker.log_records();
        let mine: Vec<&serde_json::Value> = records.iter().filter(|r| r["uploadId"] == id.as_str()).collect();
        let complete = mine.iter().position(|r| r["route"] == "/uploads/{uploadId}/complete");
        let reports: Vec<(usize, u64)> = (0..mine.len())
            .filter(|&i| mine[i]["method"] == "POST" && mine[i]["route"] == PART_ROUTE)
            .map(|i| (i, mine[i]["status"].as_u64().unwrap_or(0)))
            .collect();
        (complete, reports)
    };
    wait_until("the held reports reach the Worker", || reports_after_complete().1.len() == 4);
    let (complete, reports) = reports_after_complete();
    let complete = complete.expect("the complete is logged");
    assert!(
        reports.iter().all(|&(at, status)| at > complete && status == 409),
        "every report came after the complete and found it done (409): complete at {complete}, reports {reports:?}"
    );
    env.run(&["download", "held/held.bin", "back.bin"]).expect(0);
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
    let proxy = Proxy::start(&env.worker.url, |seen| match answers_urls(seen) {
        true => Action::Edit(Box::new(|answer| {
            let mut urls: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
            let field = if urls.get("partUrls").is_some() { "partUrls" } else { "parts" };
            let list = urls.get_mut(field).and_then(|l| l.as_array_mut());
            for url in list.into_iter().flatten().filter(|u| u["partNumber"] == 2) {
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
        if answers_urls(seen) {
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
    assert_eq!(seen.iter().filter(|s| s.path.ends_with("/urls")).count(), 1, "the create's URLs, then part 2's again");
    let puts: Vec<u16> = seen.iter().filter_map(|s| s.part_number()).collect();
    assert!(puts.is_empty(), "no part through the Worker: {puts:?}");
    env.run(&["download", "expired/expired.bin", "back.bin"]).expect(0);
    assert!(fs::read(env.path("back.bin")).unwrap() == data);
}

/// A part's report does not hold the next part's start, and a report the Worker fails is
/// retried: with one part in flight, part 1's report is slowed (1.5 s) and part 2's PUT to R2
/// must arrive while it is still being answered; part 2's first report gets a `503` and goes
/// again (the complete, which no longer waits for reports, is held until it has, 30 s at
/// most). The URLs are bent through the proxy as in the test above, so it sees the PUTs to R2.
#[test]
fn a_reports_wait_does_not_hold_the_next_part_and_a_failed_report_is_retried() {
    let env = Env::new("cli-direct-reports");
    let (_, data) = env.file("reports.bin", 3 * PART + 5);
    let me: Arc<OnceLock<String>> = Arc::default();
    let (worker, here) = (env.worker.url.trim_end_matches('/').to_owned(), Arc::clone(&me));
    let report_of = |seen: &util::Seen, n: u16| seen.method == "POST" && seen.path.ends_with(&format!("/parts/{n}"));
    let reports_of_2 = Arc::new(Tally::default());
    let proxy = Proxy::start(&env.worker.url, move |seen| {
        if answers_urls(seen) {
            return urls_through(&worker, &here);
        }
        if report_of(seen, 2) {
            reports_of_2.add();
        }
        if seen.method == "POST" && seen.path.ends_with("/complete") {
            let reports_of_2 = Arc::clone(&reports_of_2);
            return Action::ForwardWhen(Box::new(move || {
                reports_of_2.wait_for(2, Duration::from_secs(30));
            }));
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
    let complete = seen.iter().position(|s| s.path.ends_with("/complete")).expect("the complete");
    let reports_2: Vec<usize> = seen.iter().filter(|s| report_of(s, 2)).map(|s| s.index).collect();
    assert_eq!(reports_2.len(), 2, "part 2's report once failed, once sent again");
    assert!(reports_2[1] < complete, "sent again before the complete, which the proxy held for it: {reports_2:?}");
    env.run(&["download", "reports/reports.bin", "back.bin"]).expect(0);
    assert!(fs::read(env.path("back.bin")).unwrap() == data);
}

/// A Worker older than the create's `partUrls` refuses the field (`400 invalid_json`, serde's
/// "unknown field") and creates nothing: the CLI creates again without it and takes its URLs in
/// a batch, as before. The older Worker is the real one's refusal of another unknown field,
/// renamed, answered by the proxy to every create that asks for `partUrls`.
#[test]
fn a_worker_that_knows_no_part_urls_in_the_create_gets_a_create_without_them() {
    let env = Env::new("cli-direct-older");
    let (_, data) = env.file("older.bin", 2 * PART + 5);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut refused = agent
        .post(format!("{}/uploads", env.worker.url))
        .header("Authorization", format!("Bearer {}", env.token))
        .header("Content-Type", "application/json")
        .send(r#"{"key": "older/older.bin", "size": 1, "unheardOf": {"count": 1}}"#)
        .unwrap();
    assert_eq!(refused.status(), 400);
    let problem = refused.body_mut().read_to_string().unwrap();
    assert!(problem.contains("unknown field `unheardOf`"), "{problem}");
    let problem = problem.replace("unheardOf", "partUrls");
    let proxy = Proxy::start(&env.worker.url, move |seen| {
        let asks_urls = String::from_utf8_lossy(&seen.body).contains("partUrls");
        if !(seen.method == "POST" && seen.path == "/uploads" && asks_urls) {
            return Action::Forward;
        }
        let problem = problem.clone();
        Action::Edit(Box::new(move |answer| {
            answer.status = 400;
            answer.headers = vec![("content-type".into(), "application/problem+json".into())];
            answer.body = problem.into_bytes();
            Fate::Deliver
        }))
    });
    let mut command = env.command(&["upload", "older.bin", "older/older.bin", "--part-size", PART_SIZE]);
    command.env("R2MPU_ENDPOINT", &proxy.url);
    let run = Run::of(command).expect(0);
    assert_eq!(run.field("etag"), multipart_etag(&data, PART));
    let creates: Vec<bool> = proxy
        .seen()
        .iter()
        .filter(|s| s.method == "POST" && s.path == "/uploads")
        .map(|s| String::from_utf8_lossy(&s.body).contains("partUrls"))
        .collect();
    assert_eq!(creates, [true, false], "asked once with partUrls, then without: {}", run.stderr);
    let saw = logged(env.worker, &upload_id_of(&run.stderr));
    assert_eq!(count(&saw, &format!("POST {URLS_ROUTE}")), 1, "the URLs in a batch: {saw:?}");
    assert_eq!(count(&saw, &format!("PUT {PART_ROUTE}")), 0, "still direct: {saw:?}");
    env.run(&["download", "older/older.bin", "back.bin"]).expect(0);
    assert!(fs::read(env.path("back.bin")).unwrap() == data);
}
