//! What happens to uploads over time: they survive restarts; activity keeps them open; idle
//! ones are aborted by their alarm, which frees their parts in R2; finished ones are forgotten a
//! TTL later; one whose complete died is settled by its alarm; none outlives R2's seven days.

mod util;

use std::time::{Duration, Instant};

use serde_json::json;
use util::*;

#[test]
fn uploads_and_objects_survive_a_restart_and_resume_after_it() {
    let mut worker = Worker::start();
    let api = Api::of(&worker, "durable");
    let data = random_bytes(2 * PART + 9, 31);
    let parts: Vec<&[u8]> = chunks(&data, PART).collect();
    api.upload("durable/done.bin", &data, PART);
    let id = api.create_id(json!({"key": "durable/half.bin", "size": data.len(), "partSize": PART}));
    assert_eq!(api.put_part(&id, 1, parts[0]).status, 200);

    worker.restart();

    assert!(api.object("durable/done.bin", &[]).body == data, "a finished object is still there");
    let state = api.state(&id).json();
    assert_eq!(state["status"], "open");
    assert_eq!(state["parts"].as_array().unwrap().len(), 1, "the part sent before the restart is remembered");
    assert_eq!(api.put_part(&id, 2, parts[1]).status, 200);
    assert_eq!(api.put_part(&id, 3, parts[2]).status, 200);
    assert_eq!(api.complete(&id, None).status, 200);
    assert!(api.object("durable/half.bin", &[]).body == data);
}

#[test]
fn activity_keeps_an_upload_open_and_one_idle_past_its_ttl_is_aborted_and_freed_in_r2() {
    let worker = Worker::start_with(Options { vars: vec![("UPLOAD_TTL".into(), "4s".into())] });
    let api = Api::of(&worker, "idle");
    let id = api.create_id(json!({"key": "idle/file.bin", "partSize": PART}));
    let created_expiry = api.state(&id).json()["expiresAt"].as_str().unwrap().to_string();

    // A part sent just before expiry pushes it out by a whole TTL: a second before it, however
    // long the create took on a busy machine.
    let created_deadline = ms_of(&created_expiry);
    std::thread::sleep(Duration::from_millis(created_deadline.saturating_sub(1000).saturating_sub(now_ms())));
    assert_eq!(api.put_part(&id, 1, b"abandoned").status, 200);
    let pushed = api.state(&id).json()["expiresAt"].as_str().unwrap().to_string();
    assert!(ms_of(&pushed) >= ms_of(&created_expiry) + 2500, "{created_expiry} -> {pushed}");
    // Just past the first deadline (not a fixed sleep: a busy machine delays the part itself).
    std::thread::sleep(Duration::from_millis((created_deadline + 300).saturating_sub(now_ms())));
    assert_eq!(api.state(&id).json()["status"], "open", "past the first deadline, still open");
    assert_eq!(r2_upload_states(&worker, "idle/file.bin"), ["in progress"]);

    let aborted = wait_until(|| api.state(&id).json()["status"] != "open");
    assert!(aborted, "the upload is still open long after its TTL");
    let state = api.state(&id).json();
    assert_eq!(state["status"], "aborted");
    api.put_part(&id, 2, b"late").assert_problem(409, "upload_aborted");
    assert_eq!(r2_upload_states(&worker, "idle/file.bin"), ["aborted"], "the alarm freed the parts in R2");

    // The aborted record stays until its expiresAt, as openapi.yaml says, and is then forgotten.
    let forget_at = ms_of(state["expiresAt"].as_str().unwrap());
    assert!(wait_until(|| api.state(&id).status == 404), "the aborted upload's record was never forgotten");
    assert!(now_ms() + 1000 >= forget_at, "forgotten before its expiresAt");
    api.state(&id).assert_problem(404, "upload_not_found");
    api.object("idle/file.bin", &[]).assert_problem(404, "object_not_found");
}

#[test]
fn a_completed_uploads_record_is_forgotten_one_ttl_later_and_its_object_stays() {
    let worker = Worker::start_with(Options { vars: vec![("UPLOAD_TTL".into(), "3s".into())] });
    let api = Api::of(&worker, "forget");
    let data = random_bytes(PART + 1, 41);
    let id = api.send_parts("forget/done.bin", &data, PART);
    assert_eq!(api.complete(&id, None).status, 200);
    let expires = ms_of(api.state(&id).json()["expiresAt"].as_str().unwrap());
    let (files, tables) = durable_object_tables(&worker);
    assert!(files > 0 && !tables.is_empty(), "the upload's storage is found and holds tables: {files} {tables:?}");
    assert!(wait_until(|| api.state(&id).status == 404), "the completed upload's record was never forgotten");
    assert!(now_ms() + 1000 >= expires, "forgotten before its expiresAt");
    assert!(api.object("forget/done.bin", &[]).body == data);
    assert_eq!(durable_object_tables(&worker).1, Vec::<String>::new(), "deleteAll() freed the upload's storage");
}

#[test]
fn an_upload_stuck_in_completing_is_settled_by_its_alarm_which_never_aborts_a_running_complete() {
    let worker = Worker::start_with_faults(Options { vars: vec![("UPLOAD_TTL".into(), "3s".into())] });
    let api = Api::of(&worker, "stuck");
    let data = random_bytes(PART + 2, 42);
    let upload = |key: &str| api.send_parts(key, &data, PART);

    // R2 completed, then the complete died: its alarm finds the object and completes the record.
    let done = upload("stuck/done.bin");
    assert_eq!(api.complete_with(&done, "complete.after-r2=fail").status, 500);
    // The complete died before R2: its alarm finds no object, aborts, and frees the parts.
    let never = upload("stuck/never.bin");
    assert_eq!(api.complete_with(&never, "complete.before-r2=fail").status, 500);
    assert_eq!(api.state(&done).json()["status"], "completing");
    assert_eq!(api.state(&never).json()["status"], "completing");

    // Watched before anything else runs: a settled record is forgotten one TTL (3 s) later.
    assert!(wait_until(|| api.state(&done).json()["status"] == "completed"), "never settled");
    assert_eq!(api.state(&done).json()["object"]["etag"], multipart_etag(&data, PART));
    assert!(api.object("stuck/done.bin", &[]).body == data);
    assert!(wait_until(|| api.state(&never).json()["status"] == "aborted"), "never settled");
    assert_eq!(r2_upload_states(&worker, "stuck/never.bin"), ["aborted"]);

    // The alarm fires while a complete runs (held for longer than the TTL): it leaves it alone.
    // The fault build logs each alarm's decision: this upload's, due while its complete was held,
    // is to look again when the complete's lease ends (`At`), not to settle or abort it.
    let held = upload("stuck/held.bin");
    std::thread::scope(|scope| {
        let completing = scope.spawn(|| api.complete_with(&held, "complete.before-r2=pause:5000"));
        let fired = worker.wait_for_log(&[r#""fault":"alarm""#, &held, r#""due":true"#], 30);
        assert!(!completing.is_finished(), "the alarm fired while the complete was held: {fired}");
        assert!(fired.contains(r#""decision":"At("#), "the alarm left the running complete alone: {fired}");
        let completed = completing.join().unwrap();
        assert_eq!(completed.status, 200, "{}", String::from_utf8_lossy(&completed.body));
    });
    assert!(api.object("stuck/held.bin", &[]).body == data);
}

#[test]
fn an_upload_never_outlives_r2s_seven_days_whatever_the_ttl() {
    let worker = Worker::start_with(Options { vars: vec![("UPLOAD_TTL".into(), "30d".into())] });
    let api = Api::of(&worker, "week");
    let id = api.create_id(json!({"key": "week/file.bin", "partSize": PART}));
    assert_eq!(api.put_part(&id, 1, b"x").status, 200);
    let state = api.state(&id).json();
    let created = ms_of(state["createdAt"].as_str().unwrap());
    let expires = ms_of(state["expiresAt"].as_str().unwrap());
    assert_eq!(expires - created, 7 * 24 * 3600 * 1000, "R2 drops unfinished uploads after 7 days");
}

/// The states local R2 holds for the multipart uploads of `key` (its SQLite store under
/// wrangler's `--persist-to`), oldest first.
fn r2_upload_states(worker: &Worker, key: &str) -> Vec<String> {
    let script = r#"
import glob, sqlite3, sys
names = {0: "in progress", 1: "completed", 2: "aborted"}
for path in glob.glob(sys.argv[1] + "/v3/r2/**/*.sqlite", recursive=True):
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT state FROM _mf_multipart_uploads WHERE key = ? ORDER BY rowid", (sys.argv[2],))
        for (state,) in rows:
            print(names[state])
    except sqlite3.OperationalError:
        pass
"#;
    let output = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(worker.state_dir())
        .arg(key)
        .output()
        .expect("python3");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().lines().map(str::to_string).collect()
}

/// How many SQLite files the upload Durable Objects have (local workerd's, under
/// `--persist-to`) and the tables they hold, without the runtime's own. The count shows the
/// glob found them: no tables in no files would prove nothing.
fn durable_object_tables(worker: &Worker) -> (usize, Vec<String>) {
    let script = r#"
import glob, sqlite3, sys
paths = [p for p in glob.glob(sys.argv[1] + "/v3/do/*UploadState/*.sqlite") if not p.endswith("metadata.sqlite")]
print(len(paths))
for path in paths:
    for (name,) in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        if not name.startswith(("_cf_", "__miniflare", "sqlite_")):
            print(name)
"#;
    let output = std::process::Command::new("python3").args(["-c", script]).arg(worker.state_dir()).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let mut lines = text.lines();
    let files = lines.next().unwrap().parse().unwrap();
    (files, lines.map(str::to_string).collect())
}

/// Milliseconds since the epoch of an RFC 3339 instant as the API writes it
/// (`YYYY-MM-DDTHH:MM:SS.mmmZ`).
fn ms_of(text: &str) -> u64 {
    let n = |range: std::ops::Range<usize>| text[range].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19);
    (secs * 1000 + n(20..23)) as u64
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Polls `done` every half second for up to 30 seconds.
fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    false
}
