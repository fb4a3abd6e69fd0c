//! Issue #12, operating r2mpu: listing unfinished uploads (`GET /uploads`), the index behind it
//! catching up after a crash, and the structured log line of every request.

mod util;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use util::*;

fn api(sub: &str) -> Api {
    Api::of(Worker::shared(), sub)
}

/// `GET /uploads` with `query`, asserting `200`; returns the page.
fn list(api: &Api, query: &str) -> Value {
    let reply = api.send("GET", &format!("/uploads{query}"), &[], None);
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()
}

fn ids(page: &Value) -> Vec<String> {
    page["uploads"].as_array().unwrap().iter().map(|u| u["uploadId"].as_str().unwrap().to_string()).collect()
}

fn create(api: &Api, key: &str) -> String {
    api.create_id(json!({"key": key, "size": 2 * PART, "partSize": PART}))
}

// ---- Listing ---------------------------------------------------------------------------------

#[test]
fn the_listing_holds_only_the_callers_unfinished_uploads_newest_first() {
    let alice = api("list-alice");
    let bob = api("list-bob");
    let first = create(&alice, "list/a/first.bin");
    let aborted = create(&alice, "list/a/aborted.bin");
    let third = create(&alice, "list/b/third.bin");
    let done = alice.create_id(json!({"key": "list/a/done.bin", "size": 3, "partSize": PART}));
    let theirs = create(&bob, "list/a/bobs.bin");
    assert_eq!(alice.put_part(&first, 1, &random_bytes(PART, 1)).status, 200);
    assert_eq!(alice.abort(&aborted).status, 204);
    assert_eq!(alice.put_part(&done, 1, b"abc").status, 200);
    assert_eq!(alice.complete(&done, None).status, 200);

    let page = list(&alice, "");
    assert_eq!(ids(&page), vec![third.clone(), first.clone()], "newest first; finished ones hidden");
    assert!(page.get("cursor").is_none(), "one page");
    let item = &page["uploads"][1];
    assert_eq!(item["key"], "list/a/first.bin");
    assert_eq!(item["status"], "open");
    assert_eq!((item["parts"].as_u64(), item["bytes"].as_u64()), (Some(1), Some(PART as u64)));
    assert_eq!((item["size"].as_u64(), item["partSize"].as_u64()), (Some(2 * PART as u64), Some(PART as u64)));
    for field in ["createdAt", "expiresAt"] {
        assert!(item[field].as_str().is_some_and(|t| t.ends_with('Z')), "{field}: {item}");
    }
    assert_eq!(ids(&list(&bob, "")), vec![theirs], "another subject sees only its own");

    assert_eq!(ids(&list(&alice, "?prefix=list/a/")), vec![first.clone()]);
    assert_eq!(ids(&list(&alice, "?prefix=list/c/")), Vec::<String>::new());

    // A token confined to a prefix sees only keys under it, and cannot ask for others.
    let mut claims = claims("list-alice", &["uploads:write"]);
    claims.custom.prefix = Some("list/b/".into());
    let confined = alice.with_token(&Worker::shared().sign(claims));
    assert_eq!(ids(&list(&confined, "")), vec![third]);
    confined.send("GET", "/uploads?prefix=list/a/", &[], None).assert_problem(403, "key_outside_prefix");
    // Listing needs uploads:write.
    let reader = alice.with_token(&Worker::shared().token("list-alice", &["objects:read"]));
    reader.send("GET", "/uploads", &[], None).assert_problem(403, "insufficient_scope");
}

#[test]
fn pages_of_a_small_limit_visit_every_upload_once_and_bad_parameters_are_refused() {
    let api = api("list-pages");
    let mut created: Vec<String> = (0..5).map(|i| create(&api, &format!("pages/{i}.bin"))).collect();
    created.reverse();

    let mut seen = Vec::new();
    let mut query = "?limit=2".to_string();
    let mut pages = 0;
    loop {
        let page = list(&api, &query);
        pages += 1;
        assert!(page["uploads"].as_array().unwrap().len() <= 2);
        seen.extend(ids(&page));
        match page["cursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, created, "newest first, each once");
    assert_eq!(pages, 3);

    for bad in ["?limit=0", "?limit=1001", "?limit=ten", "?cursor=nonsense"] {
        api.send("GET", &format!("/uploads{bad}"), &[], None).assert_problem(400, "invalid_request");
    }
}

/// The directory where local workerd keeps the `UploadIndex` objects' SQLite files.
fn index_dir(worker: &Worker) -> PathBuf {
    let dir = worker.state_dir().join("v3/do");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let found = entries.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| p.to_string_lossy().ends_with("UploadIndex"));
    found.unwrap_or_else(|| panic!("no UploadIndex directory in {}", dir.display()))
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

/// The upload ids in the index's own rows (every `UploadIndex` object's SQLite file, read while
/// the Worker is stopped), sorted.
fn index_rows(worker: &Worker) -> Vec<String> {
    let read = r#"
import glob, sqlite3, sys
for f in sorted(glob.glob(sys.argv[1] + "/*.sqlite")):
    db = sqlite3.connect(f)
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'uploads'").fetchone():
        for (upload_id,) in db.execute("SELECT upload_id FROM uploads"):
            print(upload_id)
"#;
    let out = std::process::Command::new(r2mpu_testkit::repo_root().join(".venv/bin/python"))
        .args(["-c", read])
        .arg(index_dir(worker))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut rows: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect();
    rows.sort();
    rows
}

/// An index entry is kept, whatever its upload object says, while it may be a create in progress
/// (`CREATING_MS`, a minute); the fault build takes `TEST_CREATING_MS` so that the stale entries
/// here, seconds old, are past it and the listing's repair can be seen in the index's rows.
#[test]
fn the_listing_never_shows_a_finished_upload_even_when_a_crash_left_the_index_behind() {
    let mut worker = Worker::start_with_faults(Options { vars: vec![("TEST_CREATING_MS".into(), "1000".into())] });
    let api = Api::of(&worker, "crash");
    let completed = api.create_id(json!({"key": "crash/completed.bin", "size": 3, "partSize": PART}));
    let aborted = create(&api, "crash/aborted.bin");
    let open = create(&api, "crash/open.bin");
    assert_eq!(ids(&list(&api, "")), vec![open.clone(), aborted.clone(), completed.clone()]);

    // The index as it was while all three were open...
    worker.kill();
    let snapshot = worker.state_dir().with_file_name("index-snapshot");
    copy_dir(&index_dir(&worker), &snapshot);
    worker.start_again();
    assert_eq!(api.put_part(&completed, 1, b"abc").status, 200);
    assert_eq!(api.complete(&completed, None).status, 200);
    assert_eq!(api.abort(&aborted).status, 204);

    // ...is what a crash before the index heard of the two transitions leaves behind.
    worker.kill();
    copy_dir(&snapshot, &index_dir(&worker));
    let mut all = vec![open.clone(), aborted.clone(), completed.clone()];
    all.sort();
    assert_eq!(index_rows(&worker), all, "the index still lists all three");
    worker.start_again();

    assert_eq!(ids(&list(&api, "")), vec![open.clone()], "each upload's own object has the last word");
    assert_eq!(ids(&list(&api, "?limit=1")), vec![open.clone()]);
    assert_eq!(api.state(&completed).json()["status"], "completed");
    worker.kill();
    assert_eq!(index_rows(&worker), vec![open], "the listing repaired the index: its rows are the open upload's");
}

/// A create that R2 refused after the owner's index heard of it (`r2.create=fail`; the two run
/// at once) leaves an entry naming an upload that never was: no listing shows it, and once it is
/// older than a create can take (`TEST_CREATING_MS` here, a minute in production) the next
/// listing drops it from the index's own rows.
#[test]
fn a_create_r2_refused_is_never_listed_and_the_listing_drops_its_entry_once_stale() {
    let mut worker = Worker::start_with_faults(Options { vars: vec![("TEST_CREATING_MS".into(), "1000".into())] });
    let api = Api::of(&worker, "phantom");
    let body = serde_json::to_vec(&json!({"key": "phantom/file.bin", "size": 2 * PART, "partSize": PART})).unwrap();
    let headers = [("content-type", "application/json"), ("x-r2mpu-fault", "r2.create=fail")];
    api.send("POST", "/uploads", &headers, Some(&body)).assert_problem(500, "internal");
    assert_eq!(ids(&list(&api, "")), Vec::<String>::new(), "a young entry with no upload is hidden");
    worker.kill();
    let phantom = index_rows(&worker);
    assert_eq!(phantom.len(), 1, "the index heard of the create before R2 refused it: {phantom:?}");
    worker.start_again();
    // The entry's age must pass TEST_CREATING_MS (1 s); this waits on the clock, not on a request.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(ids(&list(&api, "")), Vec::<String>::new());
    worker.kill();
    assert_eq!(index_rows(&worker), Vec::<String>::new(), "the listing dropped the entry of the upload that never was");
}

/// An index update that failed (`index.update=fail` on a create: the upload is made, its owner's
/// index never hears of it) is kept by the upload's own object and retried from its alarm, and
/// a crash in between loses neither: after a SIGKILL and a restart the upload is listed within a
/// minute (the retry is half a minute out).
#[test]
fn an_index_update_that_failed_is_retried_from_the_alarm_even_across_a_crash() {
    let mut worker = Worker::start_with_faults(Options::default());
    let api = Api::of(&worker, "index-retry");
    let body = serde_json::to_vec(&json!({"key": "index-retry/file.bin", "size": 2 * PART, "partSize": PART})).unwrap();
    let headers = [("content-type", "application/json"), ("x-r2mpu-fault", "index.update=fail")];
    let created = api.send("POST", "/uploads", &headers, Some(&body));
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.json()["uploadId"].as_str().unwrap().to_string();
    assert_eq!(ids(&list(&api, "")), Vec::<String>::new(), "the index never heard of it");
    worker.crash_and_restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while ids(&list(&api, "")) != [id.clone()] {
        assert!(std::time::Instant::now() < deadline, "not listed a minute after the crash");
        std::thread::sleep(Duration::from_millis(500));
    }
}

// ---- Logs ------------------------------------------------------------------------------------

/// The JSON log line whose `requestId` is `id`, waiting for wrangler to write it.
fn log_line(worker: &Worker, id: &str) -> Value {
    log_line_where(worker, Duration::from_secs(10), |line| line["requestId"] == id)
}

#[test]
fn every_request_logs_one_json_line_with_its_route_status_and_sizes_and_never_the_token() {
    let worker = Worker::shared();
    let api = api("logged");
    let id = create(&api, "logged/file.bin");
    let part = random_bytes(PART, 5);
    let reply = api.put_part(&id, 1, &part);
    assert_eq!(reply.status, 200);
    let request_id = reply.header("x-request-id").expect("X-Request-Id").to_string();

    let line = log_line(worker, &request_id);
    assert_eq!(line["method"], "PUT");
    assert_eq!(line["route"], "/uploads/{uploadId}/parts/{partNumber}", "the pattern, not the path");
    assert_eq!(line["status"], 200);
    assert_eq!(line["subject"], "logged");
    assert_eq!(line["uploadId"], id.as_str());
    assert_eq!(line["bytesIn"], PART as u64);
    assert_eq!(line["bytesOut"], reply.body.len() as u64);
    assert!(line["code"].is_null(), "{line}");
    assert!(line["durationMs"].is_u64(), "{line}");
    assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{line}");

    // A failure names its problem code; a create names the upload it made.
    let missing = api.state("0123456789abcdef0123456789abcdef");
    let line = log_line(worker, missing.header("x-request-id").unwrap());
    assert_eq!((line["status"].as_u64(), line["code"].as_str()), (Some(404), Some("upload_not_found")));
    assert_eq!(line["route"], "/uploads/{uploadId}");
    let created = api.create(json!({"key": "logged/other.bin", "partSize": PART}));
    let line = log_line(worker, created.header("x-request-id").unwrap());
    assert_eq!(line["uploadId"], created.json()["uploadId"]);
    assert_eq!(line["route"], "/uploads");

    // Unauthenticated and unrouted requests are logged too, with the id echoed.
    let anonymous = Api::new(worker, None).send("GET", "/nowhere/at/all?secret=1", &[], None);
    let line = log_line(worker, anonymous.header("x-request-id").unwrap());
    assert_eq!((line["status"].as_u64(), line["code"].as_str()), (Some(404), Some("not_found")));
    assert!(line["route"].is_null() && line["subject"].is_null(), "{line}");

    // Behind Cloudflare, the request id is the cf-ray.
    let ray = "8e2f0c1a9b3d4e5f-LHR";
    let behind = api.send("GET", &format!("/uploads/{id}"), &[("cf-ray", ray)], None);
    assert_eq!(behind.header("x-request-id"), Some(ray));
    assert_eq!(log_line(worker, ray)["route"], "/uploads/{uploadId}");

    let log = std::fs::read_to_string(worker.log_path()).unwrap();
    let token = api.token.as_deref().unwrap();
    let signature = token.rsplit('.').next().unwrap();
    assert!(!log.contains(signature), "a token's signature reached the log");
    assert!(!log.contains("secret=1"), "a raw query string reached the log");
}

/// No refused token reaches the log, whatever is wrong with it, and neither does the token of a
/// request that failed inside (whose `{"level":"error","context","cause"}` line is the one most
/// likely to carry what the request held): for each, its own log line is found by request id,
/// then the whole log is searched for the token and for its signature.
#[test]
fn no_token_reaches_the_log_on_refusals_or_in_the_cause_of_an_internal_failure() {
    use jwt_simple::prelude::{Clock, Ed25519KeyPair, EdDSAKeyPairLike};
    let worker = Worker::shared_faults();
    let mut expired = claims("logged-refusals", ALL_SCOPES);
    expired.expires_at = Some(Clock::now_since_epoch() - jwt_simple::prelude::Duration::from_hours(1));
    let stranger = Ed25519KeyPair::generate().with_key_id("test-ed");
    let valid = worker.token("logged-refusals", ALL_SCOPES);
    let (head, rest) = valid.split_once('.').unwrap();
    let tampered = format!("{head}.e30{}", &rest[rest.find('.').unwrap()..]);
    let cases = [
        ("garbage", "garbage-token-do-not-log.Zm9vYmFy.c2VjcmV0LXNpZ25hdHVyZS1kby1ub3QtbG9n".to_string(), 401),
        ("expired", worker.sign(expired), 401),
        ("signed by a stranger", stranger.sign(claims("logged-refusals", ALL_SCOPES)).unwrap(), 401),
        ("tampered", tampered, 401),
        ("without the scope", worker.token("logged-refusals", &["objects:read"]), 403),
    ];
    let mut sent = Vec::new();
    for (what, token, status) in cases {
        let reply = Api::new(worker, Some(token.clone())).send("GET", "/uploads", &[], None);
        assert_eq!(reply.status, status, "{what}: {reply:?}");
        let line = log_line(worker, reply.header("x-request-id").unwrap());
        assert_eq!(line["status"], status, "{what}: its own line: {line}");
        sent.push((what, token));
    }
    // A failure inside, with a valid token: R2 fails a read, and the cause is logged.
    let api = Api::new(worker, Some(valid.clone()));
    api.upload("logged-refusals/x.bin", b"x", PART);
    let failed = api.send("GET", "/objects/logged-refusals/x.bin", &[("x-r2mpu-fault", "r2.get=fail")], None);
    failed.assert_problem(500, "internal");
    let request_id = failed.header("x-request-id").unwrap().to_string();
    log_line(worker, &request_id);
    let cause = log_line_where(worker, Duration::from_secs(10), |line| {
        line["level"] == "error" && line["cause"].as_str().is_some_and(|c| c.contains("injected fault"))
    });
    assert!(cause["context"].is_string(), "the failure's cause line: {cause}");
    sent.push(("valid, failed inside", valid));

    let log = std::fs::read_to_string(worker.log_path()).unwrap();
    for (what, token) in sent {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!signature.is_empty() && !log.contains(signature), "{what}: the token's signature reached the log");
        assert!(!log.contains(&token), "{what}: the token reached the log");
    }
}

// ---- Part MD5s -------------------------------------------------------------------------------

#[test]
fn a_part_checked_on_arrival_shows_its_md5_so_another_client_can_check_it_too() {
    use jwt_simple::reexports::ct_codecs::{Base64, Encoder};
    use md5::{Digest, Md5};
    let api = api("part-md5");
    let id = create(&api, "part-md5/file.bin");
    let part = random_bytes(PART, 9);
    let md5 = Md5::digest(&part);
    let b64 = Base64::encode_to_string(md5).unwrap();
    let headers = [("content-type", "application/octet-stream"), ("content-md5", b64.as_str())];
    assert_eq!(api.send("PUT", &format!("/uploads/{id}/parts/1"), &headers, Some(&part)).status, 200);
    assert_eq!(api.put_part(&id, 2, &random_bytes(PART, 10)).status, 200);

    let parts = api.state(&id).json()["parts"].clone();
    let hex: String = md5.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(parts[0]["md5"], hex.as_str());
    assert!(parts[1].get("md5").is_none(), "a part sent without Content-MD5 was not checked: {parts}");
}
