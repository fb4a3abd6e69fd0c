//! Requests that race: whatever the interleaving, the object is one consistent version and an
//! aborted upload is never completed.

mod util;

use std::thread;

use serde_json::json;
use util::*;

fn api(sub: &str) -> Api {
    Api::of(Worker::shared(), sub)
}

/// Runs `a` and `b` at the same time and returns both replies.
fn race(a: impl FnOnce() -> Reply + Send + 'static, b: impl FnOnce() -> Reply + Send + 'static) -> (Reply, Reply) {
    let (a, b) = (thread::spawn(a), thread::spawn(b));
    (a.join().unwrap(), b.join().unwrap())
}

#[test]
fn the_same_part_sent_twice_at_once_leaves_one_whole_version() {
    let api = api("race-part");
    let (one, other) = (random_bytes(PART, 1), random_bytes(PART, 2));
    for round in 0..3 {
        let key = format!("race/part-{round}.bin");
        let id = api.create_id(json!({"key": key, "size": PART, "partSize": PART}));
        let (a, b) = {
            let (api1, api2, id1, id2) = (api.clone(), api.clone(), id.clone(), id.clone());
            let (one, other) = (one.clone(), other.clone());
            race(move || api1.put_part(&id1, 1, &one), move || api2.put_part(&id2, 1, &other))
        };
        assert_eq!((a.status, b.status), (200, 200));
        assert_eq!(api.state(&id).json()["parts"].as_array().unwrap().len(), 1);
        assert_eq!(api.complete(&id, None).status, 200);
        let body = api.object(&key, &[]).body;
        assert!(body == one || body == other, "round {round}: the object mixes both versions");
    }
}

#[test]
fn complete_racing_abort_has_one_winner_and_a_consistent_end() {
    let api = api("race-abort");
    let data = random_bytes(PART + 5, 3);
    for round in 0..4 {
        let key = format!("race/abort-{round}.bin");
        let id = api.create_id(json!({"key": key, "size": data.len(), "partSize": PART}));
        for (i, chunk) in chunks(&data, PART).enumerate() {
            assert_eq!(api.put_part(&id, i + 1, chunk).status, 200);
        }
        let (api1, api2, id1, id2) = (api.clone(), api.clone(), id.clone(), id.clone());
        let (completed, aborted) = race(move || api1.complete(&id1, None), move || api2.abort(&id2));
        let status = api.state(&id).json()["status"].as_str().unwrap().to_string();
        match (completed.status, aborted.status) {
            (200, 409) => {
                assert!(["upload_completed", "upload_completing"].contains(&aborted.code().as_str()));
                assert_eq!(status, "completed");
                assert!(api.object(&key, &[]).body == data);
            }
            (409, 204) => {
                assert_eq!(completed.code(), "upload_aborted");
                assert_eq!(status, "aborted");
                api.object(&key, &[]).assert_problem(404, "object_not_found");
                api.complete(&id, None).assert_problem(409, "upload_aborted");
            }
            other => panic!("round {round}: unexpected outcome {other:?}"),
        }
    }
}

#[test]
fn complete_racing_the_last_part_loses_nothing() {
    let api = api("race-last");
    let data = random_bytes(2 * PART + 9, 4);
    let parts: Vec<Vec<u8>> = chunks(&data, PART).map(|c| c.to_vec()).collect();
    for round in 0..3 {
        let key = format!("race/last-{round}.bin");
        let id = api.create_id(json!({"key": key, "size": data.len(), "partSize": PART}));
        assert_eq!(api.put_part(&id, 1, &parts[0]).status, 200);
        assert_eq!(api.put_part(&id, 2, &parts[1]).status, 200);
        let (api1, api2, id1, id2, last) = (api.clone(), api.clone(), id.clone(), id.clone(), parts[2].clone());
        let (completed, sent) = race(move || api1.complete(&id1, None), move || api2.put_part(&id2, 3, &last));
        match completed.status {
            200 => assert_eq!(sent.status, 200, "complete saw part 3, so it was recorded"),
            400 => {
                assert_eq!(completed.code(), "parts_missing");
                assert_eq!(sent.status, 200);
                assert_eq!(api.complete(&id, None).status, 200, "completing again succeeds");
            }
            other => panic!("round {round}: complete answered {other}"),
        }
        assert!(api.object(&key, &[]).body == data, "round {round}");
    }
}
