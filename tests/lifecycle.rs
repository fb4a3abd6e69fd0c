//! What happens to uploads over time: they survive restarts, and idle ones are aborted.

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
fn an_upload_idle_past_its_ttl_is_aborted_by_its_alarm() {
    let worker = Worker::start_with(Options { vars: vec![("UPLOAD_TTL".into(), "3s".into())] });
    let api = Api::of(&worker, "idle");
    let id = api.create_id(json!({"key": "idle/file.bin", "partSize": PART}));
    assert_eq!(api.put_part(&id, 1, b"abandoned").status, 200);

    let aborted = wait_until(|| api.state(&id).json()["status"] != "open");
    assert!(aborted, "the upload is still open long after its TTL");
    assert_eq!(api.state(&id).json()["status"], "aborted");
    api.put_part(&id, 2, b"late").assert_problem(409, "upload_aborted");

    // Another TTL later, even its record is gone.
    assert!(wait_until(|| api.state(&id).status == 404), "the aborted upload's record was never forgotten");
    api.state(&id).assert_problem(404, "upload_not_found");
    api.object("idle/file.bin", &[]).assert_problem(404, "object_not_found");
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
