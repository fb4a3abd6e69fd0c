//! The browser as a client (issue 9): CORS on every route, the part's `ETag` header, and the
//! upload page (`GET /`), the last two driven in Debian's Chromium by Playwright
//! (`tests/browser/*.mjs`) against a real `wrangler dev`.
//!
//! One Worker serves every test here, with `ALLOWED_ORIGINS` naming one of two tiny static
//! sites on other loopback ports: pages from it may call the API, pages from the other may not.
//! It offers no direct parts, so the page sends every part through it as it does wherever
//! direct parts are not configured; the tests of the page and of Uppy with direct parts (issue
//! 22) start a Worker of their own that offers them.

mod util;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use r2mpu_testkit::LOCAL_S3;
use serde_json::{json, Value};
use util::*;

struct Fixture {
    worker: &'static Worker,
    /// `http://127.0.0.1:PORT` of a site `ALLOWED_ORIGINS` lists.
    allowed: String,
    /// The same kind of site on another port, not listed.
    denied: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let allowed = static_site();
        let denied = static_site();
        let vars = vec![
            ("ALLOWED_ORIGINS".to_string(), format!("https://app.example.com, {allowed}")),
            ("R2_S3_ENDPOINT".to_string(), String::new()),
        ];
        Fixture { worker: Worker::shared_with(Options { vars }), allowed, denied }
    })
}

/// A one-page site on a free loopback port, standing for somebody's web app; its origin.
fn static_site() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let page = "<!doctype html><meta charset=utf-8><title>An app</title><h1>An app of one's own</h1>";
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                page.len()
            );
            let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(page.as_bytes()));
        }
    });
    origin
}

/// Runs `tests/browser/{script}` with `vars` and returns the JSON it prints last.
fn browser(script: &str, vars: &[(&str, &str)]) -> Value {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "these tests drive Debian's Chromium: `apt-get install chromium` (as root; `make test` does it)"
    );
    let root = r2mpu_testkit::repo_root();
    let output = Command::new(root.join("node_modules/.bin/node"))
        .arg(root.join("tests/browser").join(script))
        .envs(vars.iter().copied())
        .env("ARTIFACTS", artifacts())
        .current_dir(&root)
        .output()
        .expect("running node (run `make install` first)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{script} printed no result ({e}):\n{stdout}\n{stderr}"))
}

/// Screenshots land here, to be looked at: `target/browser-artifacts/`.
fn artifacts() -> PathBuf {
    r2mpu_testkit::repo_root().join("target/browser-artifacts")
}

/// A file of `len` random bytes named `name` in a fresh directory (kept alive by the guard).
fn file(name: &str, len: usize, seed: u64) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let data = random_bytes(len, seed);
    std::fs::write(&path, &data).unwrap();
    (dir, path, data)
}

fn numbers(value: &Value) -> BTreeSet<u64> {
    value.as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect()
}

// ---- CORS, on every route (plain HTTP) ----------------------------------------------------------

/// Every documented route (openapi.yaml, which a unit test holds equal to the route table) and
/// the guide's `?action=` protocol, with its parameters filled in, and the methods it serves.
fn every_route() -> Vec<(String, Vec<String>)> {
    let spec: serde_yaml::Value = serde_yaml::from_str(include_str!("../openapi.yaml")).unwrap();
    let mut routes = Vec::new();
    for (path, item) in spec["paths"].as_mapping().unwrap() {
        let methods = item.as_mapping().unwrap().keys().filter_map(|m| m.as_str());
        let methods = methods.filter(|m| ["get", "put", "post", "delete", "head", "patch"].contains(m));
        let path = path.as_str().unwrap().replace("{uploadId}", &"0".repeat(32)).replace("{partNumber}", "1");
        routes.push((path.replace("{key}", "a/b.bin"), methods.map(str::to_uppercase).collect()));
    }
    let actions = ["mpu-create", "mpu-uploadpart", "mpu-complete", "mpu-abort", "get", "delete"];
    let methods = ["POST", "PUT", "DELETE", "GET"].map(String::from).to_vec();
    routes.extend(actions.map(|action| (format!("/a/b.bin?action={action}"), methods.clone())));
    routes
}

fn preflight(api: &Api, path: &str, origin: &str, method: &str) -> Reply {
    let headers = [
        ("origin", origin),
        ("access-control-request-method", method),
        ("access-control-request-headers", "authorization,content-type,content-md5"),
    ];
    api.send("OPTIONS", path, &headers, None)
}

fn listed(reply: &Reply, header: &str) -> Vec<String> {
    reply.header(header).unwrap_or_default().split(',').map(|h| h.trim().to_ascii_lowercase()).collect()
}

#[test]
fn preflights_to_every_route_from_an_allowed_origin_are_granted_without_a_token() {
    let fx = fixture();
    let anonymous = Api::new(fx.worker, None);
    for (path, methods) in every_route() {
        for method in &methods {
            let reply = preflight(&anonymous, &path, &fx.allowed, method);
            assert_eq!(reply.status, 204, "OPTIONS {path} for {method}: {reply:?}");
            assert_eq!(reply.header("access-control-allow-origin"), Some(fx.allowed.as_str()), "{path}");
            let allowed_methods = listed(&reply, "access-control-allow-methods");
            assert!(methods.iter().all(|m| allowed_methods.contains(&m.to_ascii_lowercase())), "{path}: {reply:?}");
            let allowed_headers = listed(&reply, "access-control-allow-headers");
            for header in ["authorization", "content-type", "content-md5", "upload-offset", "tus-resumable"] {
                assert!(allowed_headers.iter().any(|h| h == header), "{path}: {header} not allowed: {reply:?}");
            }
            assert_eq!(reply.header("access-control-max-age"), Some("7200"), "{path}");
            assert!(listed(&reply, "vary").contains(&"origin".to_string()), "{path}: {reply:?}");
        }
    }
}

#[test]
fn every_response_to_an_allowed_origin_carries_the_grant_errors_included() {
    let fx = fixture();
    let anonymous = Api::new(fx.worker, None);
    for (path, methods) in every_route() {
        for method in &methods {
            let reply = anonymous.send(method, &path, &[("origin", &fx.allowed)], None);
            assert_eq!(reply.header("access-control-allow-origin"), Some(fx.allowed.as_str()), "{method} {path}");
            let exposed = listed(&reply, "access-control-expose-headers");
            for header in ["etag", "location", "content-range", "retry-after", "upload-offset", "tus-resumable"] {
                assert!(exposed.iter().any(|h| h == header), "{method} {path}: {header} not exposed: {reply:?}");
            }
            assert!(listed(&reply, "vary").contains(&"origin".to_string()), "{method} {path}");
        }
    }
    // The other listed origin too, and a 404 off the table.
    let reply = anonymous.send("GET", "/nope", &[("origin", "https://app.example.com")], None);
    reply.assert_problem(404, "not_found");
    assert_eq!(reply.header("access-control-allow-origin"), Some("https://app.example.com"));
}

#[test]
fn another_origin_gets_no_grant_at_all_and_requests_without_origin_need_none() {
    let fx = fixture();
    let api = Api::of(fx.worker, "cors-denied");
    for (path, methods) in every_route() {
        let reply = preflight(&api, &path, &fx.denied, &methods[0]);
        assert_eq!(reply.header("access-control-allow-origin"), None, "OPTIONS {path}: {reply:?}");
        assert_eq!(reply.header("access-control-allow-methods"), None, "OPTIONS {path}");
        assert_eq!(reply.header("access-control-allow-headers"), None, "OPTIONS {path}");
        let reply = api.send(&methods[0], &path, &[("origin", &fx.denied)], None);
        assert_eq!(reply.header("access-control-allow-origin"), None, "{path}");
        assert_eq!(reply.header("access-control-expose-headers"), None, "{path}");
        assert!(listed(&reply, "vary").contains(&"origin".to_string()), "{path}");
    }
    let reply = api.send("GET", "/healthz", &[], None);
    assert_eq!((reply.status, reply.header("access-control-allow-origin")), (200, None));
    assert_eq!(reply.header("vary"), Some("Origin"));
    // An OPTIONS that is no preflight is an ordinary request: no route serves it.
    api.send("OPTIONS", "/uploads", &[], None).assert_problem(405, "method_not_allowed");
}

#[test]
fn a_part_put_answers_with_its_etag_in_a_header_as_s3_does() {
    let fx = fixture();
    let api = Api::of(fx.worker, "etag-header");
    let id = api.create_id(json!({"key": "etag-header.bin", "size": 10}));
    let reply = api.put_part(&id, 1, b"0123456789");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("etag"), Some(format!("\"{}\"", reply.json()["etag"].as_str().unwrap()).as_str()));

    let created = api.send("POST", "/guide/etag.bin?action=mpu-create", &[], None).json();
    let path = format!("/guide/etag.bin?action=mpu-uploadpart&uploadId={}&partNumber=1", created["uploadId"]);
    let reply = api.send("PUT", &path.replace('"', ""), &[], Some(b"0123456789"));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("etag"), Some(format!("\"{}\"", reply.json()["etag"].as_str().unwrap()).as_str()));
}

#[test]
fn the_page_is_served_at_the_root_without_a_token_and_may_not_be_framed() {
    let page = Api::new(fixture().worker, None).send("GET", "/", &[], None);
    assert_eq!((page.status, page.header("content-type")), (200, Some("text/html; charset=utf-8")));
    assert!(String::from_utf8_lossy(&page.body).contains(r#"<input id="file-input" type="file" multiple"#));
    assert_eq!(page.header("content-security-policy"), Some("frame-ancestors 'none'"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
}

/// The part PUTs of `upload_id` the Worker logged as starting from `from` to `until` (ms since
/// the epoch), as their log lines; read once the upload's complete is logged, which comes after
/// every part sent before it was answered.
fn part_puts_between(worker: &Worker, upload_id: &str, from: u64, until: u64) -> Vec<String> {
    worker
        .log_of_completed_upload(upload_id, std::time::Duration::from_secs(30))
        .into_iter()
        .filter(|line| line["route"] == "/uploads/{uploadId}/parts/{partNumber}")
        .filter(|line| (from..=until).contains(&ms_of(line["time"].as_str().unwrap_or_default())))
        .map(|line| line.to_string())
        .collect()
}

/// Milliseconds since the epoch of the log's RFC 3339 instants (`YYYY-MM-DDTHH:MM:SS.mmmZ`).
fn ms_of(text: &str) -> u64 {
    let n = |range: std::ops::Range<usize>| text.get(range).and_then(|t| t.parse::<i64>().ok()).unwrap_or(0);
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19);
    (secs * 1000 + n(20..23)).max(0) as u64
}

// ---- in Chromium ----------------------------------------------------------------------------------

#[test]
fn the_page_uploads_a_file_chosen_in_its_input_and_the_bytes_come_back_identical() {
    let fx = fixture();
    let mut claims = claims("page-user", ALL_SCOPES);
    claims.custom.prefix = Some("page-user/".into());
    let token = fx.worker.sign(claims);
    let (_dir, path, data) = file("holiday video.bin", 6 * PART + MIB, 9);
    let (_other, cancel_path, _) = file("not this one.bin", 2 * PART + MIB, 11);

    let seen = browser(
        "page_upload.mjs",
        &[
            ("WORKER_URL", &fx.worker.url),
            ("TOKEN", &token),
            ("FILE", path.to_str().unwrap()),
            ("CANCEL_FILE", cancel_path.to_str().unwrap()),
        ],
    );

    let key = "page-user/holiday video.bin";
    assert_eq!(seen["key"], key, "the file's name, inside the token's prefix");
    assert_eq!(seen["focusedBeforePause"], "Pause", "Tab from the file input reaches Pause: {seen}");
    assert_eq!(seen["focusAfterPause"], "Resume", "and Enter leaves the focus on Resume: {seen}");
    let (from, until) = (seen["pausedFrom"].as_u64().unwrap(), seen["pausedUntil"].as_u64().unwrap());
    let reached = part_puts_between(fx.worker, seen["uploadId"].as_str().unwrap(), from, until);
    assert_eq!(reached, Vec::<String>::new(), "no part held before the pause reached the Worker during it");
    // This Worker offers no direct parts: the page's first asks (one per lane at most) got 501,
    // and every part went through the Worker.
    let asked = statuses_logged(fx.worker, seen["uploadId"].as_str().unwrap(), "POST", URL_ROUTE);
    assert!((1..=4).contains(&asked.len()) && asked.iter().all(|&s| s == 501), "{asked:?}");
    assert_eq!(seen["sentWhilePaused"], 0, "nothing is sent while paused");
    assert_eq!(seen["part1Sent"], 2, "a part the Worker failed (503) is sent again: {seen}");
    let stored = seen["parts"].as_array().unwrap();
    assert_eq!((numbers(&seen["parts"]), stored.len()), ((1..=7).collect(), 7), "each part stored once: {seen}");
    let api = Api::new(fx.worker, Some(token));
    let object = api.object(key, &[]);
    assert_eq!(object.status, 200);
    assert!(object.body == data, "the bytes came back identical");
    assert_eq!(object.header("etag"), Some(format!("\"{}\"", multipart_etag(&data, PART)).as_str()));
    assert!(seen["listed"].as_array().unwrap().contains(&json!(key)), "listed under the caller's files: {seen}");

    let cancelled = api.state(seen["cancelledId"].as_str().unwrap());
    assert_eq!(cancelled.json()["status"], "aborted", "Cancel aborts the upload on the Worker");
    assert_eq!(api.object("page-user/not this one.bin", &[]).status, 404);

    assert!(!seen["url"].as_str().unwrap().contains("token"), "the token leaves the address bar: {seen}");
    assert_eq!(seen["tokenInSession"], true);
    assert_eq!(seen["localStorage"], "{}", "nothing left in localStorage once finished, never the token");
}

#[test]
fn a_reload_mid_upload_then_the_same_file_resumes_without_resending_stored_parts() {
    let fx = fixture();
    let token = fx.worker.token("page-resume", ALL_SCOPES);
    let (_dir, path, data) = file("big.bin", 16 * PART, 10);

    let seen = browser(
        "page_resume.mjs",
        &[("WORKER_URL", &fx.worker.url), ("TOKEN", &token), ("FILE", path.to_str().unwrap()), ("RELOAD_AFTER", "4")],
    );

    let stored_before = numbers(&seen["storedBeforeReload"]);
    let resumed_from = numbers(&seen["resumedFrom"]);
    let sent_after = numbers(&seen["sentAfterReload"]);
    assert!(stored_before.len() >= 4 && stored_before.len() < 16, "{seen}");
    let pending = seen["pending"].as_str().unwrap();
    assert!(pending.contains("big.bin") && pending.contains("of 80 MiB stored"), "the page lists it: {seen}");
    assert!(stored_before.is_subset(&resumed_from), "what was stored stays stored: {seen}");
    assert!(sent_after.is_disjoint(&resumed_from), "no stored part is sent again: {seen}");
    // Each part once, but for a retry after `409 part_in_flight`: a copy sent before the reload
    // may still be landing, and the page waits for it instead of racing it.
    let in_flight = seen["inFlightAfterReload"].as_array().unwrap().len();
    assert_eq!(
        sent_after.len() + in_flight,
        seen["sentAfterReload"].as_array().unwrap().len(),
        "each part once: {seen}"
    );
    assert_eq!(sent_after.union(&resumed_from).count(), 16, "every part is there in the end: {seen}");
    let object = Api::new(fx.worker, Some(token)).object("big.bin", &[]);
    assert!(object.status == 200 && object.body == data, "the resumed object is the file");
}

#[test]
fn a_page_from_an_allowed_origin_uploads_with_fetch_reading_etag_and_location() {
    let fx = fixture();
    let token = fx.worker.token("other-app", ALL_SCOPES);
    let size = (PART + 1000).to_string();

    let seen = browser(
        "other_origin.mjs",
        &[("WORKER_URL", &fx.worker.url), ("TOKEN", &token), ("PAGE_URL", &fx.allowed), ("SIZE", &size)],
    );

    assert_eq!(seen["origin"], fx.allowed.as_str());
    assert_eq!(seen.get("error"), None, "{seen}");
    assert_eq!(seen["createStatus"], 201);
    let id = seen["uploadId"].as_str().unwrap();
    assert_eq!(seen["location"], format!("/uploads/{id}"), "Location is readable");
    assert_eq!(seen["headerEtags"], seen["bodyEtags"], "each part's ETag is readable from its header");
    assert_eq!(seen["headerEtags"].as_array().unwrap().len(), 2);
    assert_eq!(seen["completeStatus"], 200);
    assert_eq!(seen["readStatus"], 200);
    assert_eq!(seen["readEtag"], format!("\"{}\"", seen["object"]["etag"].as_str().unwrap()));
    assert_eq!(seen["identical"], true, "the bytes read back are the bytes sent");
    assert_eq!(seen["healthStatus"], 200);
    assert_eq!(seen["corsConsole"], json!([]));
}

#[test]
fn a_page_from_an_origin_not_allowed_is_blocked_by_the_browser() {
    let fx = fixture();
    let token = fx.worker.token("blocked-app", ALL_SCOPES);

    let seen = browser(
        "other_origin.mjs",
        &[("WORKER_URL", &fx.worker.url), ("TOKEN", &token), ("PAGE_URL", &fx.denied), ("SIZE", "1000")],
    );

    assert_eq!(seen["origin"], fx.denied.as_str());
    assert_eq!(seen["error"], "TypeError: Failed to fetch", "the create never got through: {seen}");
    assert_eq!(seen.get("createStatus"), None);
    assert_eq!(seen["healthError"], "TypeError: Failed to fetch", "even a simple GET is unreadable: {seen}");
    let blocked = seen["corsConsole"].as_array().unwrap();
    assert_eq!(blocked.len(), 2, "Chromium says CORS blocked both: {seen}");
}

/// Issue 10: Uppy's tus plugin uploads from a page of another origin through `/tus` (tus's
/// headers allowed and exposed by CORS), in chunks that do not divide the part size.
#[test]
fn uppy_with_its_tus_plugin_uploads_from_another_origin() {
    let fx = fixture();
    let token = fx.worker.token("uppy-app", ALL_SCOPES);
    let size = (2 * PART + 12_345).to_string();

    let seen = browser(
        "uppy_tus.mjs",
        &[("WORKER_URL", &fx.worker.url), ("TOKEN", &token), ("PAGE_URL", &fx.allowed), ("SIZE", &size)],
    );

    assert_eq!(seen.get("error"), None, "{seen}");
    assert_eq!((seen["successful"].as_u64(), &seen["failed"]), (Some(1), &json!([])), "{seen}");
    assert!(seen["uploadURL"].as_str().is_some_and(|url| url.contains("/tus/")), "{seen}");
    assert_eq!(seen["readStatus"], 200);
    assert_eq!(seen["identical"], true, "the bytes read back are the bytes sent");
    assert_eq!(seen["corsConsole"], json!([]));
}

// ---- Uppy's S3 plugin (issue 21) -----------------------------------------------------------------

const S3_ROUTE: &str = "/s3/{bucket}/{*key}";

/// The `/s3` requests `tests/browser/uppy.mjs`'s `s3Traffic` saw the page send (`phase` "" when
/// the scenario has one), with `method` and, if given, the query parameter `with`.
fn s3_requests<'a>(seen: &'a Value, phase: &str, method: &str, with: Option<&str>) -> Vec<&'a Value> {
    let requests = seen["s3"].as_array().unwrap().iter().filter(|r| r["phase"] == phase && r["method"] == method);
    requests.filter(|r| with.is_none_or(|name| r["query"].get(name).is_some())).collect()
}

/// The Worker's log lines for requests of `subject` with `method` to `route`.
fn logged(worker: &Worker, subject: &str, method: &str, route: &str) -> Vec<Value> {
    let records = worker.log_records().into_iter();
    records.filter(|line| line["subject"] == subject && line["method"] == method && line["route"] == route).collect()
}

/// The log lines of `subject`'s requests up to its S3 complete (its second POST on `/s3`, after
/// the create), read once that is logged: a line is written as its answer goes out, and the
/// complete is answered after every part.
fn log_until_s3_complete(worker: &Worker, subject: &str) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while logged(worker, subject, "POST", S3_ROUTE).len() < 2 {
        assert!(std::time::Instant::now() < deadline, "the Worker never logged the complete");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut lines: Vec<Value> = worker.log_records().into_iter().filter(|line| line["subject"] == subject).collect();
    let is_s3_post = |line: &Value| line["method"] == "POST" && line["route"] == S3_ROUTE;
    let complete = lines.iter().enumerate().filter(|(_, line)| is_s3_post(line)).nth(1).unwrap().0;
    lines.truncate(complete + 1);
    lines
}

/// `FILE` of `len` random bytes uploaded by `uppy_s3.mjs` to `key`, signed as `signing` says;
/// what the page saw, after asserting that the upload succeeded and reads back identical.
fn upload_with_uppys_s3_plugin(signing: &str, subject: &str, key: &str, len: usize, seed: u64) -> (String, Value) {
    let fx = fixture();
    let token = fx.worker.token(subject, ALL_SCOPES);
    let (_dir, path, data) = file("from-uppy.bin", len, seed);
    let vars = [
        ("WORKER_URL", fx.worker.url.as_str()),
        ("TOKEN", &token),
        ("PAGE_URL", &fx.allowed),
        ("FILE", path.to_str().unwrap()),
        ("KEY", key),
        ("SIGNING", signing),
    ];
    let seen = browser("uppy_s3.mjs", &vars);
    assert_eq!(seen.get("error"), None, "{seen}");
    assert_eq!((seen["successful"].as_u64(), &seen["failed"]), (Some(1), &json!([])), "{seen}");
    assert_ne!(seen["origin"], fx.worker.url.as_str(), "the page is on another origin");
    assert_eq!(seen["corsConsole"], json!([]));
    assert_eq!((&seen["readStatus"], &seen["identical"]), (&json!(200), &json!(true)), "read back in the page: {seen}");
    let object = Api::new(fx.worker, Some(token.clone())).object(key, &[]);
    assert_eq!(object.status, 200);
    assert!(object.body == data, "the bytes came back identical");
    let etag = format!("\"{}\"", multipart_etag(&data, PART));
    assert_eq!(object.header("etag"), Some(etag.as_str()), "sent in 5 MiB parts: {seen}");
    (token, seen)
}

/// Issue 21: Uppy's S3 plugin (`@uppy/aws-s3` 6.3.1) on another origin, with no code of ours:
/// `getCredentials` asks `POST /credentials`, the plugin presigns each S3 request itself
/// (create, 3 parts, complete) against `/s3/r2mpu`, reading each part's `ETag` through CORS.
#[test]
fn uppys_s3_plugin_uploads_in_parts_with_credentials_from_the_worker() {
    let key = "uppy-s3/from-uppy.bin";
    let (_, seen) = upload_with_uppys_s3_plugin("credentials", "uppy-s3", key, 2 * PART + 2 * MIB, 31);
    assert!(seen["credentialCalls"].as_u64() >= Some(1), "{seen}");
    let parts = s3_requests(&seen, "", "PUT", Some("partNumber"));
    assert_eq!(parts.len(), 3, "{seen}");
    for request in &seen["s3"].as_array().unwrap()[..] {
        assert!(request["query"].get("X-Amz-Signature").is_some(), "presigned: {request}");
        assert_eq!(request["authorization"], Value::Null, "{request}");
    }
}

/// Issue 21: the same plugin with a `signRequest` hook and no S3 credentials at all: the hook
/// names each request's URL on `/s3/r2mpu/{key}` (`?uploads`, `?partNumber=&uploadId=`,
/// `?uploadId=`) and gives the page's JWT as `Authorization: Bearer`, which the plugin sends
/// with every S3 request, from another origin (CORS), reading each part's `ETag`.
#[test]
fn uppys_s3_plugin_uploads_in_parts_with_a_sign_request_hook_and_the_bearer_token() {
    let key = "uppy-bearer/in parts.bin";
    let (token, seen) = upload_with_uppys_s3_plugin("bearer", "uppy-bearer", key, 3 * PART + 3 * MIB, 32);
    assert_eq!(seen["credentialCalls"], 0, "{seen}");
    let bearer = json!(format!("Bearer {token}"));
    let all = seen["s3"].as_array().unwrap();
    for request in all {
        assert_eq!(request["authorization"], bearer, "every S3 request carries the JWT: {request}");
        assert!(request["query"].as_object().unwrap().keys().all(|k| !k.starts_with("X-Amz-")), "{request}");
        assert_eq!(request["path"], "/s3/r2mpu/uppy-bearer/in%20parts.bin", "{request}");
    }
    let create = s3_requests(&seen, "", "POST", Some("uploads"));
    assert_eq!((create.len(), &create[0]["status"]), (1, &json!(200)), "{seen}");
    let parts = s3_requests(&seen, "", "PUT", Some("partNumber"));
    let numbers: Vec<_> = parts.iter().map(|p| p["query"]["partNumber"].as_str().unwrap()).collect();
    assert_eq!(numbers, ["1", "2", "3", "4"], "each part once, in order: {seen}");
    assert!(parts.iter().all(|p| p["status"] == 200), "{seen}");
    let upload_id = &parts[0]["query"]["uploadId"];
    assert!(parts.iter().all(|p| &p["query"]["uploadId"] == upload_id), "{seen}");
    let complete = s3_requests(&seen, "", "POST", Some("uploadId"));
    assert_eq!((complete.len(), &complete[0]["status"]), (1, &json!(200)), "{seen}");
    assert_eq!(&complete[0]["query"]["uploadId"], upload_id);
}

/// `uppy_s3_resume.mjs`: Uppy uploads a file of `len` random bytes in 5 MiB parts to
/// `{subject}/resumed.bin` over S3 (signRequest + bearer), the page reloads as part `hold_from`
/// goes out, and the reloaded page resumes the upload Golden Retriever restored. Asserts what a
/// user relies on: the same upload id, a ListParts for it that names the parts stored before the
/// reload, only the others sent after it, and the object byte-identical; returns what it saw.
fn resume_uppys_s3_upload_after_a_reload(subject: &str, len: usize, hold_from: u64, keeps_blob: bool) -> Value {
    let fx = fixture();
    let token = fx.worker.token(subject, ALL_SCOPES);
    let key = format!("{subject}/resumed.bin");
    let (_dir, path, data) = file("resumed.bin", len, hold_from);
    let vars = [
        ("WORKER_URL", fx.worker.url.as_str()),
        ("TOKEN", &token),
        ("PAGE_URL", &fx.allowed),
        ("FILE", path.to_str().unwrap()),
        ("KEY", &key),
        ("HOLD_FROM", &hold_from.to_string()),
        ("KEEPS_BLOB", &keeps_blob.to_string()),
    ];
    let seen = browser("uppy_s3_resume.mjs", &vars);
    let (before, after) = (&seen["before"], &seen["after"]);
    assert_eq!(after.get("error"), None, "{seen}");
    assert_eq!(before["heldPart"], hold_from, "{seen}");
    assert_eq!(before["uploadError"], Value::Null, "the upload was cut off, not failed: {seen}");
    let part_numbers = |requests: Vec<&Value>| -> Vec<u64> {
        requests.iter().map(|p| p["query"]["partNumber"].as_str().unwrap().parse().unwrap()).collect()
    };

    assert_eq!(s3_requests(&seen, "before", "POST", Some("uploads")).len(), 1, "{seen}");
    let parts_before = s3_requests(&seen, "before", "PUT", Some("partNumber"));
    let stored_before = part_numbers(parts_before.into_iter().filter(|p| p["status"] == 200).collect());
    assert_eq!(stored_before, (1..hold_from).collect::<Vec<_>>(), "part {hold_from} never reached the Worker: {seen}");
    let upload_id = before["saved"]["s3Multipart"]["uploadId"].as_str().unwrap();
    assert_eq!(after["restored"]["s3Multipart"]["uploadId"], upload_id, "restored with its upload id: {seen}");
    assert_eq!(after["restored"]["isGhost"], !keeps_blob, "{seen}");

    let listed = s3_requests(&seen, "after", "GET", Some("uploadId"));
    assert_eq!(listed.len(), 1, "one ListParts after the reload: {seen}");
    assert_eq!((&listed[0]["query"]["uploadId"], &listed[0]["status"]), (&json!(upload_id), &json!(200)), "{seen}");
    let body = listed[0]["body"].as_str().unwrap();
    assert!(body.contains(&format!("<UploadId>{upload_id}</UploadId>")), "{body}");
    let listed_parts: Vec<u64> =
        body.split("<PartNumber>").skip(1).map(|rest| rest[..rest.find('<').unwrap()].parse().unwrap()).collect();
    assert_eq!(listed_parts, stored_before, "ListParts names the parts stored before the reload: {body}");

    let sent_after = s3_requests(&seen, "after", "PUT", Some("partNumber"));
    let part_count = len.div_ceil(PART) as u64;
    assert_eq!(
        part_numbers(sent_after.clone()),
        (hold_from..=part_count).collect::<Vec<_>>(),
        "only the missing parts: {seen}"
    );
    assert!(sent_after.iter().all(|p| p["query"]["uploadId"] == upload_id && p["status"] == 200), "{seen}");
    assert_eq!(s3_requests(&seen, "after", "POST", Some("uploads")), Vec::<&Value>::new(), "no new upload: {seen}");
    let complete = s3_requests(&seen, "after", "POST", Some("uploadId"));
    assert_eq!((complete.len(), &complete[0]["query"]["uploadId"]), (1, &json!(upload_id)), "{seen}");
    assert_eq!((after["successful"].as_u64(), &after["failed"]), (Some(1), &json!([])), "{seen}");
    // The Worker saw exactly those part PUTs, before the complete.
    log_until_s3_complete(fx.worker, subject);
    let puts = logged(fx.worker, subject, "PUT", S3_ROUTE);
    let statuses: Vec<_> = puts.iter().map(|line| line["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, vec![200; part_count as usize], "each part reached the Worker once: {puts:?}");
    let gets = logged(fx.worker, subject, "GET", S3_ROUTE);
    assert_eq!(
        gets.iter().map(|line| &line["status"]).collect::<Vec<_>>(),
        [200],
        "its one S3 GET, the ListParts: {gets:?}"
    );
    assert_eq!(seen["corsConsole"], json!([]));

    let object = Api::new(fx.worker, Some(token)).object(&key, &[]);
    assert_eq!(object.status, 200);
    assert!(object.body == data, "the bytes came back identical");
    let etag = format!("\"{}\"", multipart_etag(&data, PART));
    assert_eq!(object.header("etag"), Some(etag.as_str()));
    assert_eq!(after["etag"], etag.as_str(), "{seen}");
    seen
}

/// Issue 21: an Uppy S3 multipart upload resumes after a reload. Golden Retriever (6.0.0, for
/// Uppy 6) keeps the file, its bytes and its `s3Multipart` {uploadId, key} in IndexedDB; the
/// reloaded page confirms the restore, the plugin asks ListParts (`GET ?uploadId=`) for that
/// upload, sends only the part it does not list, and completes it. 10 MiB is the largest file
/// whose bytes Golden Retriever keeps (its IndexedDBStore's `maxFileSize`): two parts.
#[test]
fn uppys_s3_upload_resumes_after_a_reload_through_list_parts() {
    resume_uppys_s3_upload_after_a_reload("uppy-resume", 2 * PART, 2, true);
}

/// The same for a file too large for Golden Retriever to keep (18 MiB, four parts, cut off at
/// the third): it restores the file as a ghost with its upload state, and once the user adds
/// the same file again the upload resumes where it was, through ListParts.
#[test]
fn uppys_s3_upload_of_a_larger_file_resumes_after_a_reload_once_the_file_is_chosen_again() {
    let seen = resume_uppys_s3_upload_after_a_reload("uppy-resume-big", 3 * PART + 3 * MIB, 3, false);
    let reselected = &seen["after"]["reselected"];
    assert_eq!((&reselected["isGhost"], &reselected["size"]), (&json!(false), &json!(3 * PART + 3 * MIB)), "{seen}");
    assert_eq!(reselected["s3Multipart"], seen["before"]["saved"]["s3Multipart"], "{seen}");
}

// ---- the page with direct parts (issue 22) ------------------------------------------------------

const PART_ROUTE: &str = "/uploads/{uploadId}/parts/{partNumber}";
const URL_ROUTE: &str = "/uploads/{uploadId}/parts/{partNumber}/url";

/// The `method route` of each request for `upload_id` in `worker`'s log (src/http/log.rs), read
/// once its complete is logged, which comes after every part's lines. Requests to local R2's S3
/// endpoint never appear there: wrangler's entry worker answers them before the Worker's code.
fn worker_saw(worker: &Worker, upload_id: &str) -> Vec<String> {
    let records = worker.log_of_completed_upload(upload_id, std::time::Duration::from_secs(30)).into_iter();
    records
        .map(|line| format!("{} {}", line["method"].as_str().unwrap_or(""), line["route"].as_str().unwrap_or("")))
        .collect()
}

/// The statuses `worker` logged for `upload_id`'s requests with `method` to `route`.
fn statuses_logged(worker: &Worker, upload_id: &str, method: &str, route: &str) -> Vec<u64> {
    let records = worker.log_records().into_iter();
    records
        .filter(|line| line["uploadId"] == upload_id && line["method"] == method && line["route"] == route)
        .map(|line| line["status"].as_u64().unwrap_or(0))
        .collect()
}

fn count(lines: &[String], method: &str, route: &str) -> usize {
    lines.iter().filter(|line| **line == format!("{method} {route}")).count()
}

/// Of `page_direct.mjs`'s records in `list` ("r2", "urls", "reports", "workerPuts") from
/// `phase`, the part numbers of those `keep` accepts, in order.
fn parts_of(seen: &Value, list: &str, phase: &str, keep: impl Fn(&Value) -> bool) -> Vec<u64> {
    let records = seen[list].as_array().unwrap().iter().filter(|r| r["phase"] == phase && keep(r));
    records.map(|r| r["partNumber"].as_u64().unwrap()).collect()
}

fn sorted(mut numbers: Vec<u64>) -> Vec<u64> {
    numbers.sort();
    numbers
}

/// Runs `page_direct.mjs` against `worker` (which offers direct parts) for a file of `len`
/// random bytes under `subject`, with the scenario's `extra` settings. The page is opened at
/// `http://localhost:PORT`, the Worker's own port under another host name: the presigned URLs
/// name `127.0.0.1:PORT` (the testkit's `R2_S3_ENDPOINT`), so each part's PUT is cross-origin
/// and Chromium sends it only after a CORS preflight that local R2 itself answers (miniflare's
/// `workers/r2/s3/index.worker.ts` puts hono's `cors({origin: "*", allowMethods: [.., "PUT", ..],
/// exposeHeaders: ["*"]})` before every S3 route, and its entry worker lets `/cdn-cgi/` requests
/// from a loopback `Origin` through): no stand-in for the bucket's CORS rule is needed. Asserts
/// that the upload finished, every request to R2 came from the page's origin, Chromium logged
/// no CORS error, and the object is the file; returns what the page saw and the upload's id.
fn upload_directly_from_the_page(
    worker: &Worker,
    subject: &str,
    len: usize,
    extra: &[(&str, &str)],
) -> (Value, String) {
    let token = worker.token(subject, ALL_SCOPES);
    let (_dir, path, data) = file("direct.bin", len, len as u64);
    let page_url = worker.url.replace("127.0.0.1", "localhost");
    let mut vars = vec![("PAGE_URL", page_url.as_str()), ("TOKEN", &token), ("FILE", path.to_str().unwrap())];
    vars.extend_from_slice(extra);
    let seen = browser("page_direct.mjs", &vars);

    assert_eq!(seen["pageOrigin"], page_url.as_str(), "{seen}");
    assert_eq!(seen["status"], "Uploaded", "{seen}");
    assert_eq!(seen["corsConsole"], json!([]), "{seen}");
    let r2_origin = worker.url.trim_start_matches("http://");
    for request in seen["r2"].as_array().unwrap().iter().filter(|r| r.get("status").is_some()) {
        assert_eq!((request["method"].as_str(), request["host"].as_str()), (Some("PUT"), Some(r2_origin)), "{request}");
        assert_eq!(request["origin"], page_url.as_str(), "a cross-origin request: {request}");
    }
    let key = seen["key"].as_str().unwrap();
    let object = Api::new(worker, Some(token)).object(key, &[]);
    assert_eq!(object.status, 200);
    assert!(object.body == data, "the bytes came back identical");
    assert_eq!(object.header("etag"), Some(format!("\"{}\"", multipart_etag(&data, PART)).as_str()), "{seen}");
    let created = seen["created"].as_array().unwrap();
    assert_eq!(created.len(), 1, "one upload: {seen}");
    let upload_id = created[0].as_str().unwrap().to_string();
    (seen, upload_id)
}

/// Each report the page sent in `phase` carries the ETag R2 answered that part's PUT with,
/// which the page could read only because local R2 exposes it through CORS.
fn assert_reports_name_r2s_etags(seen: &Value, phase: &str) {
    let r2 = seen["r2"].as_array().unwrap();
    for report in seen["reports"].as_array().unwrap().iter().filter(|r| r["phase"] == phase) {
        let n = &report["partNumber"];
        let put = r2.iter().find(|r| r["phase"] == phase && &r["partNumber"] == n && r["status"] == 200);
        let etag =
            put.and_then(|put| put["etag"].as_str()).unwrap_or_else(|| panic!("no PUT of part {n} to R2: {seen}"));
        assert_eq!(report["body"], json!({"etag": etag.trim_matches('"')}), "{seen}");
        assert_eq!(report["status"], 200, "{seen}");
    }
}

/// The page sends each part straight to R2 when the Worker offers direct parts: a URL asked
/// and a report sent to the Worker per part, the bytes to R2 (cross-origin, through local
/// R2's own CORS: no Playwright route is installed, which would answer the preflights instead;
/// its `ETag` read and reported), none on the Worker's part route.
#[test]
fn the_page_sends_its_parts_straight_to_r2_and_the_bytes_come_back_identical() {
    let worker = Worker::start();
    // What local R2 answers the preflight of such a PUT, as Chromium sends it.
    let page_origin = worker.url.replace("127.0.0.1", "localhost");
    let s3 = format!("{}/{}/page-direct/direct.bin?partNumber=1&uploadId=u", LOCAL_S3.path, LOCAL_S3.bucket);
    let headers = [
        ("origin", page_origin.as_str()),
        ("access-control-request-method", "PUT"),
        ("access-control-request-headers", "content-type"),
    ];
    let preflight = Api::new(&worker, None).send("OPTIONS", &s3, &headers, None);
    assert_eq!((preflight.status, preflight.header("access-control-allow-origin")), (204, Some("*")), "{preflight:?}");
    assert!(listed(&preflight, "access-control-allow-methods").contains(&"put".to_string()), "{preflight:?}");
    assert_eq!(preflight.header("access-control-allow-headers"), Some("content-type"), "{preflight:?}");
    let (seen, id) = upload_directly_from_the_page(&worker, "page-direct", 2 * PART + 12_345, &[]);

    assert_eq!(sorted(parts_of(&seen, "r2", "before", |r| r["status"] == 200)), [1, 2, 3], "{seen}");
    assert_eq!(seen["r2"].as_array().unwrap().len(), 3, "one PUT to R2 per part, none failed: {seen}");
    assert_reports_name_r2s_etags(&seen, "before");
    assert_eq!(sorted(parts_of(&seen, "reports", "before", |_| true)), [1, 2, 3], "{seen}");
    assert_eq!(seen["workerPuts"], json!([]), "{seen}");
    let saw = worker_saw(&worker, &id);
    assert_eq!(count(&saw, "POST", URL_ROUTE), 3, "a URL per part: {saw:?}");
    assert_eq!(count(&saw, "POST", PART_ROUTE), 3, "a report per part: {saw:?}");
    assert_eq!(count(&saw, "PUT", PART_ROUTE), 0, "no part through the Worker: {saw:?}");
    let detail = seen["detail"].as_str().unwrap();
    assert!(detail.contains("this tab sent 3 parts straight to R2, 0 through the Worker"), "the page says how: {seen}");
}

/// A part the browser cannot reach R2 for (its PUT fails as a refused connection) goes
/// through the Worker, that one alone; the others still go straight to R2. The refusal is a
/// Playwright route, and while one is installed Playwright answers every CORS preflight itself
/// (playwright-core's crNetworkManager, `isInterceptedOptionsPreflight`): this test is about the
/// fallback; the other two show local R2's own CORS letting the page through.
#[test]
fn a_part_the_page_cannot_reach_r2_for_goes_through_the_worker_alone() {
    let worker = Worker::start();
    let extra = [("UNREACHABLE", "2")];
    let (seen, id) = upload_directly_from_the_page(&worker, "page-direct-fallback", 2 * PART + 999, &extra);

    assert_eq!(sorted(parts_of(&seen, "r2", "before", |r| r["status"] == 200)), [1, 3], "{seen}");
    let refused = parts_of(&seen, "r2", "before", |r| r["failure"] == "net::ERR_CONNECTION_REFUSED");
    assert_eq!(refused, [2], "{seen}");
    assert_reports_name_r2s_etags(&seen, "before");
    assert_eq!(sorted(parts_of(&seen, "reports", "before", |_| true)), [1, 3], "{seen}");
    assert_eq!(parts_of(&seen, "workerPuts", "before", |r| r["status"] == 200), [2], "{seen}");
    assert_eq!(seen["workerPuts"].as_array().unwrap().len(), 1, "{seen}");
    let saw = worker_saw(&worker, &id);
    assert_eq!(count(&saw, "PUT", PART_ROUTE), 1, "part 2 through the Worker: {saw:?}");
    assert_eq!(count(&saw, "POST", PART_ROUTE), 2, "parts 1 and 3 reported: {saw:?}");
    let detail = seen["detail"].as_str().unwrap();
    assert!(detail.contains("this tab sent 2 parts straight to R2, 1 through the Worker"), "{seen}");
}

/// A reload while direct parts are on their way, then the same file chosen again: the page
/// asks the Worker which parts it holds (at least those reported before the reload), sends
/// only the others, straight to R2, to the same upload, and completes it. No route is
/// installed, so every preflight here too is local R2's own.
#[test]
fn a_reload_mid_upload_with_direct_parts_resumes_sending_only_the_missing_parts_to_r2() {
    let worker = Worker::start();
    let extra = [("RELOAD_AFTER", "2")];
    let (seen, id) = upload_directly_from_the_page(&worker, "page-direct-resume", 7 * PART + 777, &extra);

    let reported_before = numbers(&seen["reportedBeforeReload"]);
    let resumed_from = numbers(&seen["resumedFrom"]);
    assert!(reported_before.len() >= 2 && reported_before.is_subset(&resumed_from), "{seen}");
    assert!(resumed_from.len() < 8, "the reload came mid-upload: {seen}");
    assert!(seen["pending"].as_str().unwrap().contains("MiB of 35 MiB stored"), "the page lists it: {seen}");
    let sent_after = parts_of(&seen, "r2", "after", |r| r.get("status").is_some());
    let sent_after_set: BTreeSet<u64> = sent_after.iter().copied().collect();
    assert_eq!(sent_after.len(), sent_after_set.len(), "each missing part once: {seen}");
    assert!(sent_after_set.is_disjoint(&resumed_from), "no stored part is sent again: {seen}");
    assert_eq!(sent_after_set.union(&resumed_from).count(), 8, "every part is there in the end: {seen}");
    assert!(
        seen["r2"].as_array().unwrap().iter().filter(|r| r["phase"] == "after").all(|r| r["status"] == 200),
        "{seen}"
    );
    assert_reports_name_r2s_etags(&seen, "after");
    assert_eq!(sorted(parts_of(&seen, "reports", "after", |_| true)), sorted(sent_after), "each reported: {seen}");
    let reports = seen["reports"].as_array().unwrap();
    assert!(reports.iter().all(|r| r["uploadId"] == id.as_str()), "one upload, resumed: {seen}");
    assert_eq!(seen["workerPuts"], json!([]), "{seen}");
    let saw = worker_saw(&worker, &id);
    assert!(count(&saw, "POST", PART_ROUTE) >= 8, "every part reported: {saw:?}");
    assert_eq!(count(&saw, "PUT", PART_ROUTE), 0, "no part through the Worker: {saw:?}");
}

// ---- Uppy's S3 plugin with direct parts (issue 22) ----------------------------------------------

/// A Worker that offers direct parts (the testkit's local R2 settings) to pages of `site`.
fn direct_worker_for(site: &str) -> Worker {
    Worker::start_with(Options { vars: vec![("ALLOWED_ORIGINS".to_string(), site.to_string())] })
}

/// `uppy_s3_direct.mjs` against `worker`, from a page of `site` (an origin its
/// `ALLOWED_ORIGINS` lists): Uppy uploads a file of `len` random bytes to `{subject}/direct.bin`
/// with the scenario's `extra` settings. Asserts that the upload succeeded with no CORS refusal
/// and no header the browser refused to send, and that the object is the file, in 5 MiB parts;
/// returns the subject's token and what the page saw.
fn upload_with_uppys_direct_parts(
    worker: &Worker,
    site: &str,
    subject: &str,
    len: usize,
    extra: &[(&str, &str)],
) -> (String, Value) {
    let token = worker.token(subject, ALL_SCOPES);
    let key = format!("{subject}/direct.bin");
    let (_dir, path, data) = file("direct.bin", len, len as u64 + 22);
    let mut vars = vec![
        ("WORKER_URL", worker.url.as_str()),
        ("TOKEN", &token),
        ("PAGE_URL", site),
        ("FILE", path.to_str().unwrap()),
        ("KEY", &key),
    ];
    vars.extend_from_slice(extra);
    let seen = browser("uppy_s3_direct.mjs", &vars);
    let done = seen.get("after").unwrap_or(&seen);
    assert_eq!(done.get("error"), None, "{seen}");
    assert_eq!((done["successful"].as_u64(), &done["failed"]), (Some(1), &json!([])), "{seen}");
    assert_eq!(seen["origin"], site, "the page is on another origin than the Worker: {seen}");
    assert_eq!((&seen["corsConsole"], &seen["refusedHeaders"]), (&json!([]), &json!([])), "{seen}");
    let object = Api::new(worker, Some(token.clone())).object(&key, &[]);
    assert_eq!(object.status, 200);
    assert!(object.body == data, "the bytes came back identical");
    let etag = format!("\"{}\"", multipart_etag(&data, PART));
    assert_eq!(object.header("etag"), Some(etag.as_str()), "sent in 5 MiB parts: {seen}");
    assert_eq!(done["etag"], etag.as_str(), "read back in the page: {seen}");
    (token, seen)
}

/// Of `uppy_s3_direct.mjs`'s records in `list` ("r2", "direct") from `phase` with `kind`
/// (for "direct": "url" or "report"), `(partNumber, field)` of each, in order.
fn direct_records(seen: &Value, list: &str, phase: &str, kind: Option<&str>, field: &str) -> Vec<(u64, Value)> {
    let records = seen[list].as_array().unwrap().iter();
    let records = records.filter(|r| r["phase"] == phase && kind.is_none_or(|kind| r["kind"] == kind));
    records.map(|r| (r["partNumber"].as_u64().unwrap(), r[field].clone())).collect()
}

/// `method route -> status` of each line, in order.
fn routes_and_statuses(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            format!("{} {} {}", l["method"].as_str().unwrap_or(""), l["route"].as_str().unwrap_or(""), l["status"])
        })
        .collect()
}

/// Issue 22, Uppy: `testkit.directParts` as the plugin's `signRequest` (the README's "S3
/// clients"), with no report listener. Each of the 4 parts' URL comes from the Worker, signed
/// for the length the hook works out as the plugin cuts the file (5, 5, 5 and 3 MiB), and its
/// bytes go straight to R2: cross-origin, through local R2's own CORS (no Playwright route is
/// installed), without the token. Create and complete go to `/s3` with the bearer token, and
/// the complete records the parts it lists, none of them reported (R2 checks their ETags).
#[test]
fn uppys_s3_plugin_sends_its_parts_straight_to_r2_with_a_sign_request_hook() {
    let site = static_site();
    let worker = direct_worker_for(&site);
    let subject = "uppy-direct";
    let extra = [("REPORTS", "false")];
    let (token, seen) = upload_with_uppys_direct_parts(&worker, &site, subject, 3 * PART + 3 * MIB, &extra);

    let r2_host = worker.url.trim_start_matches("http://");
    let r2 = seen["r2"].as_array().unwrap();
    assert_eq!(r2.iter().map(|r| r["partNumber"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3, 4], "{seen}");
    for put in r2 {
        assert_eq!((put["method"].as_str(), put["host"].as_str()), (Some("PUT"), Some(r2_host)), "{put}");
        assert_eq!((&put["status"], &put["origin"]), (&json!(200), &json!(site)), "cross-origin, taken: {put}");
        assert_eq!(put["authorization"], Value::Null, "the URL is the credential: {put}");
    }
    let lengths = direct_records(&seen, "direct", "", Some("url"), "length");
    let parts = [(1, PART), (2, PART), (3, PART), (4, 3 * MIB)];
    assert_eq!(lengths, parts.map(|(n, len)| (n, json!(len))), "each part's length, as the plugin cuts: {seen}");
    let statuses = direct_records(&seen, "direct", "", Some("url"), "status");
    assert!(statuses.iter().all(|(_, status)| status == 200), "{seen}");
    assert_eq!(direct_records(&seen, "direct", "", Some("report"), "status"), [], "no reports: {seen}");

    assert_eq!(s3_requests(&seen, "", "PUT", None), Vec::<&Value>::new(), "no part through /s3: {seen}");
    let bearer = json!(format!("Bearer {token}"));
    for (what, with) in [("create", "uploads"), ("complete", "uploadId")] {
        let requests = s3_requests(&seen, "", "POST", Some(with));
        assert_eq!(requests.len(), 1, "one {what}: {seen}");
        assert_eq!((&requests[0]["status"], &requests[0]["authorization"]), (&json!(200), &bearer), "{what}: {seen}");
    }
    let log = routes_and_statuses(&log_until_s3_complete(&worker, subject));
    let expected = [
        format!("POST {S3_ROUTE} 200"),
        format!("POST {URL_ROUTE} 200"),
        format!("POST {URL_ROUTE} 200"),
        format!("POST {URL_ROUTE} 200"),
        format!("POST {URL_ROUTE} 200"),
        format!("POST {S3_ROUTE} 200"),
    ];
    assert_eq!(log, expected, "the Worker saw the create, 4 URL asks and the complete, no part: {log:?}");
}

/// Issue 22, Uppy resuming with direct parts: the same hook with its report listener, and
/// Golden Retriever. The page reloads as part 3 of 4 is about to be signed (18 MiB: a ghost
/// after the reload, chosen again), once parts 1 and 2 are in R2 and reported. The reloaded
/// page resumes the same upload: its ListParts names parts 1 and 2, only parts 3 and 4 are
/// sent, straight to R2, each reported with the ETag R2 answered, and the object is the file.
#[test]
fn uppys_s3_upload_with_direct_parts_resumes_after_a_reload_from_the_parts_it_reported() {
    let site = static_site();
    let worker = direct_worker_for(&site);
    let subject = "uppy-direct-resume";
    let extra = [("REPORTS", "true"), ("HOLD_FROM", "3")];
    let (_, seen) = upload_with_uppys_direct_parts(&worker, &site, subject, 3 * PART + 3 * MIB, &extra);
    let (before, after) = (&seen["before"], &seen["after"]);
    assert_eq!((&before["heldPart"], &before["uploadError"]), (&json!(3), &Value::Null), "cut off, not failed: {seen}");
    assert_eq!(before["reports"], json!([200, 200]), "parts 1 and 2 reported: {seen}");
    let upload_id = before["saved"]["s3Multipart"]["uploadId"].as_str().unwrap();
    assert_eq!(after["restored"]["s3Multipart"]["uploadId"], upload_id, "restored with its upload id: {seen}");
    assert_eq!(after["reselected"]["isGhost"], false, "{seen}");

    let taken = |phase| direct_records(&seen, "r2", phase, None, "status");
    assert_eq!(taken("before"), [(1, json!(200)), (2, json!(200))], "{seen}");
    let listed = s3_requests(&seen, "after", "GET", Some("uploadId"));
    assert_eq!(listed.len(), 1, "one ListParts after the reload: {seen}");
    assert_eq!((&listed[0]["query"]["uploadId"], &listed[0]["status"]), (&json!(upload_id), &json!(200)), "{seen}");
    let body = listed[0]["body"].as_str().unwrap();
    let listed_parts: Vec<u64> =
        body.split("<PartNumber>").skip(1).map(|rest| rest[..rest.find('<').unwrap()].parse().unwrap()).collect();
    assert_eq!(listed_parts, [1, 2], "ListParts names the parts reported before the reload: {body}");

    assert_eq!(taken("after"), [(3, json!(200)), (4, json!(200))], "only the missing parts, to R2: {seen}");
    let asked = direct_records(&seen, "direct", "after", Some("url"), "uploadId");
    assert_eq!(asked, [(3, json!(upload_id)), (4, json!(upload_id))], "{seen}");
    let etags = direct_records(&seen, "r2", "after", None, "etag");
    let reported = direct_records(&seen, "direct", "after", Some("report"), "etag");
    let bare = |etags: Vec<(u64, Value)>| -> Vec<(u64, String)> {
        etags.into_iter().map(|(n, etag)| (n, etag.as_str().unwrap().trim_matches('"').to_string())).collect()
    };
    assert_eq!(bare(reported), bare(etags), "each reported with R2's ETag: {seen}");
    let report_statuses = direct_records(&seen, "direct", "after", Some("report"), "status");
    assert_eq!(report_statuses, [(3, json!(200)), (4, json!(200))], "{seen}");
    assert_eq!(s3_requests(&seen, "after", "POST", Some("uploads")), Vec::<&Value>::new(), "no new upload: {seen}");
    assert_eq!(s3_requests(&seen, "before", "PUT", None), Vec::<&Value>::new(), "{seen}");
    assert_eq!(s3_requests(&seen, "after", "PUT", None), Vec::<&Value>::new(), "{seen}");

    let log = routes_and_statuses(&log_until_s3_complete(&worker, subject));
    let saw = |method: &str, route: &str| log.iter().filter(|l| l.starts_with(&format!("{method} {route} "))).count();
    assert_eq!((saw("POST", URL_ROUTE), saw("POST", PART_ROUTE)), (4, 4), "a URL and a report per part: {log:?}");
    assert_eq!((saw("PUT", S3_ROUTE), saw("PUT", PART_ROUTE)), (0, 0), "no part through the Worker: {log:?}");
}

/// Issue 22, Uppy against a Worker that offers no direct parts (this file's shared one): the
/// hook's first URL ask is answered `501 direct_parts_unavailable`, after which it signs that
/// part and every later one for `/s3` with the bearer token and asks no more; the report
/// listener reports none of them (the Worker recorded each as it came through).
#[test]
fn uppys_direct_parts_hook_sends_every_part_through_s3_when_the_worker_offers_none() {
    let fx = fixture();
    let subject = "uppy-direct-unavailable";
    let extra = [("REPORTS", "true")];
    let (token, seen) = upload_with_uppys_direct_parts(fx.worker, &fx.allowed, subject, 3 * PART + 3 * MIB, &extra);

    let asked = direct_records(&seen, "direct", "", Some("url"), "code");
    assert_eq!(asked, [(1, json!("direct_parts_unavailable"))], "one ask, refused: {seen}");
    assert_eq!(direct_records(&seen, "direct", "", Some("url"), "status"), [(1, json!(501))], "{seen}");
    assert_eq!(direct_records(&seen, "direct", "", Some("report"), "status"), [], "{seen}");
    assert_eq!(seen["r2"], json!([]), "{seen}");
    let parts = s3_requests(&seen, "", "PUT", Some("partNumber"));
    let numbers: Vec<_> = parts.iter().map(|p| p["query"]["partNumber"].as_str().unwrap()).collect();
    assert_eq!(numbers, ["1", "2", "3", "4"], "{seen}");
    let bearer = json!(format!("Bearer {token}"));
    assert!(parts.iter().all(|p| p["status"] == 200 && p["authorization"] == bearer), "{seen}");
}

/// The README's `directParts` is, line for line, the hook the tests above run (`testkit.directParts`
/// in tests/browser/uppy.mjs), so what users copy is what was tested.
#[test]
fn the_readmes_direct_parts_hook_is_the_one_the_browser_tests_run() {
    let root = r2mpu_testkit::repo_root();
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
    /// The lines after the one starting with `opening`, up to the first that is `closing`.
    fn body<'a>(text: &'a str, opening: &str, closing: &str) -> Vec<&'a str> {
        let mut lines = text.lines().skip_while(|line| !line.starts_with(opening));
        assert!(lines.next().is_some(), "no line starts with {opening:?}");
        lines.take_while(|line| *line != closing).collect()
    }
    let (tested, readme) = (read("tests/browser/uppy.mjs"), read("README.md"));
    let tested: Vec<&str> =
        body(&tested, "    directParts: (", "    },").iter().map(|l| l.strip_prefix("    ").unwrap_or(l)).collect();
    let shown = body(&readme, "function directParts(", "}");
    assert!(tested.len() > 20, "{tested:?}");
    assert_eq!(shown, tested, "README.md's directParts against tests/browser/uppy.mjs's");
}
