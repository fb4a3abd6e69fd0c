//! Requests that race: whatever the interleaving, the object is one consistent version and an
//! aborted upload is never completed. The first tests let requests race freely; the rest force
//! the interleavings that matter with the fault build's pauses (`x-r2mpu-fault`, src/faults.rs):
//! one request is held at a chosen point while the other runs.

mod util;

use std::thread;
use std::time::Duration;

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
fn complete_racing_abort_has_one_winner_and_a_consistent_end() {
    let api = api("race-abort");
    let data = random_bytes(PART + 5, 3);
    for round in 0..4 {
        let key = format!("race/abort-{round}.bin");
        let id = api.send_parts(&key, &data, PART);
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
                assert_eq!(completed.code(), "parts_missing", "a complete missing parts holds nobody up");
                assert_eq!(sent.status, 200);
                assert_eq!(api.complete(&id, None).status, 200, "completing again succeeds");
            }
            other => panic!("round {round}: complete answered {other}"),
        }
        assert!(api.object(&key, &[]).body == data, "round {round}");
    }
}

/// The fault build's client for `sub`.
fn faulty(sub: &str) -> Api {
    Api::of(Worker::shared_faults(), sub)
}

/// Runs `held` (a request paused inside by its fault) and, once it is surely held, `other`.
fn while_held(held: impl FnOnce() -> Reply + Send + 'static, other: impl FnOnce() -> Reply) -> (Reply, Reply) {
    let held = thread::spawn(held);
    thread::sleep(Duration::from_millis(700));
    let other = other();
    (held.join().unwrap(), other)
}

const HOLD_PART: &str = "part.after-r2=pause:2500";
const HOLD_COMPLETE: &str = "complete.before-r2=pause:2500";

#[test]
fn the_same_part_sent_twice_at_once_gets_409_and_the_record_names_the_copy_r2_holds() {
    let api = faulty("race-part");
    let (one, other) = (random_bytes(PART, 1), random_bytes(PART, 2));
    let id = api.create_id(json!({"key": "race/part.bin", "size": PART, "partSize": PART}));
    let (held, second) = {
        let (api1, id1, one) = (api.clone(), id.clone(), one.clone());
        while_held(move || api1.put_part_with(&id1, 1, &one, HOLD_PART), || api.put_part(&id, 1, &other))
    };
    second.assert_problem(409, "part_in_flight");
    assert!(second.header("retry-after").is_some());
    assert_eq!(held.status, 200);
    assert_eq!(api.state(&id).json()["parts"][0]["etag"], held.json()["etag"]);
    assert_eq!(api.complete(&id, None).status, 200);
    assert!(api.object("race/part.bin", &[]).body == one, "the object is the copy that was recorded");
}

#[test]
fn a_digest_mismatch_never_erases_a_good_copy_sent_at_the_same_time() {
    let api = faulty("race-digest");
    let good = random_bytes(PART, 5);
    let id = api.create_id(json!({"key": "race/digest.bin", "size": PART, "partSize": PART}));
    let (held, bad) = {
        let (api1, id1, good) = (api.clone(), id.clone(), good.clone());
        let wrong_md5 = [("content-type", "application/octet-stream"), ("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==")];
        let path = format!("/uploads/{id}/parts/1");
        while_held(
            move || api1.put_part_with(&id1, 1, &good, HOLD_PART),
            || api.send("PUT", &path, &wrong_md5, Some(&random_bytes(PART, 6))),
        )
    };
    assert_eq!(held.status, 200);
    bad.assert_problem(409, "part_in_flight");
    assert_eq!(api.state(&id).json()["parts"].as_array().unwrap().len(), 1, "the good copy is recorded");
    assert_eq!(api.complete(&id, None).status, 200);
    assert!(api.object("race/digest.bin", &[]).body == good);
}

#[test]
fn a_part_recorded_while_a_complete_runs_is_in_the_object() {
    let api = faulty("race-recorded");
    let data = random_bytes(2 * PART + 9, 7);
    let parts: Vec<Vec<u8>> = chunks(&data, PART).map(|c| c.to_vec()).collect();
    let id = api.create_id(json!({"key": "race/recorded.bin", "size": data.len(), "partSize": PART}));
    assert_eq!(api.put_part(&id, 1, &parts[0]).status, 200);
    assert_eq!(api.put_part(&id, 2, &parts[1]).status, 200);
    let (sent, completed) = {
        let (api1, id1, last) = (api.clone(), id.clone(), parts[2].clone());
        while_held(move || api1.put_part_with(&id1, 3, &last, HOLD_PART), || api.complete(&id, None))
    };
    assert_eq!(sent.status, 200, "{}", String::from_utf8_lossy(&sent.body));
    assert_eq!(completed.status, 200, "the complete waited for the part: {}", String::from_utf8_lossy(&completed.body));
    assert!(api.object("race/recorded.bin", &[]).body == data);
}

#[test]
fn an_abort_while_completing_gets_409_and_the_complete_wins() {
    let api = faulty("race-abort-completing");
    let data = random_bytes(PART + 5, 8);
    let id = api.send_parts("race/abort-completing.bin", &data, PART);
    let (completed, aborted) = {
        let (api1, id1) = (api.clone(), id.clone());
        while_held(move || api1.complete_with(&id1, HOLD_COMPLETE), || api.abort(&id))
    };
    aborted.assert_problem(409, "upload_completing");
    assert_eq!(completed.status, 200);
    assert_eq!(api.state(&id).json()["status"], "completed");
    assert!(api.object("race/abort-completing.bin", &[]).body == data);
}

#[test]
fn a_part_racing_an_abort_is_refused_and_never_recorded() {
    let api = faulty("race-part-abort");
    let data = random_bytes(PART + 5, 9);
    let parts: Vec<&[u8]> = chunks(&data, PART).collect();
    let id = api.create_id(json!({"key": "race/part-abort.bin", "size": data.len(), "partSize": PART}));
    assert_eq!(api.put_part(&id, 1, parts[0]).status, 200);
    let (sent, aborted) = {
        let (api1, id1, last) = (api.clone(), id.clone(), parts[1].to_vec());
        while_held(move || api1.put_part_with(&id1, 2, &last, HOLD_PART), || api.abort(&id))
    };
    assert_eq!(aborted.status, 204);
    sent.assert_problem(409, "upload_aborted");
    let state = api.state(&id).json();
    assert_eq!((state["status"].as_str(), state["parts"].as_array().unwrap().len()), (Some("aborted"), 1));
    api.complete(&id, None).assert_problem(409, "upload_aborted");
}

#[test]
fn a_part_resent_during_a_complete_is_refused_and_the_object_is_whole() {
    let api = faulty("race-resent");
    let data = random_bytes(PART + 5, 10);
    let id = api.send_parts("race/resent.bin", &data, PART);
    let (completed, resent) = {
        let (api1, id1) = (api.clone(), id.clone());
        while_held(move || api1.complete_with(&id1, HOLD_COMPLETE), || api.put_part(&id, 1, &random_bytes(PART, 99)))
    };
    resent.assert_problem(409, "upload_completing");
    assert_eq!(completed.status, 200);
    assert!(api.object("race/resent.bin", &[]).body == data);
}
