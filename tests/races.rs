//! Requests that race: whatever the interleaving, the object is one consistent version and an
//! aborted upload is never completed. The first tests let requests race freely; the rest force
//! the interleavings that matter with the fault build's pauses (`x-r2mpu-fault`, src/faults.rs):
//! one request is held at a chosen point while the other runs.

mod util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

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

/// A smoke test: a complete and an abort sent at once, four times. Nothing makes them overlap,
/// so a serial outcome passes; the held race `an_abort_while_completing_gets_409_and_the_complete_wins`
/// below is the one that proves the interleaving.
#[test]
fn smoke_complete_and_abort_at_once_end_consistently() {
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

/// A smoke test: a complete and the last part sent at once. Nothing makes them overlap; the held
/// race `a_part_recorded_while_a_complete_runs_is_in_the_object` below proves the interleaving.
#[test]
fn smoke_complete_and_the_last_part_at_once_lose_nothing() {
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

/// How a held race went: both answers, and whether the other request ran inside the pause.
struct Raced {
    held: Reply,
    other: Reply,
    /// The other request was sent while the held one was paused (see `inside_the_pause`).
    sent_inside_the_pause: bool,
    /// The other request was answered while the held one was still paused (the Worker had
    /// logged the pause's start for the held request's tag, and not yet its end).
    inside_the_pause: bool,
    /// The other request was answered after the pause had surely ended (later than its length
    /// after the Worker was seen to reach it).
    after_the_pause: bool,
}

const HOLD_PART: &str = "part.after-r2=pause:4000";
const HOLD_COMPLETE: &str = "complete.before-r2=pause:4000";

static TAGS: AtomicUsize = AtomicUsize::new(0);

/// Sends `held` with the fault `hold` (a `pause:MS`) and a tag of its own, waits until the
/// Worker logs that this very request reached its pause, then runs `other`. A busy machine
/// that is slow to stream the held request's body delays `other`; it cannot reorder them.
fn while_held(hold: &str, held: impl FnOnce(String) -> Reply + Send + 'static, other: impl FnOnce() -> Reply) -> Raced {
    let worker = Worker::shared_faults();
    let tag = format!("race-{}", TAGS.fetch_add(1, Ordering::Relaxed));
    let (fault, tagged) = (format!("{hold},tag={tag}"), format!(r#""tag":"{tag}""#));
    let held = thread::spawn(move || held(fault));
    worker.wait_for_log(&[r#""fault":"paused""#, &tagged], 120);
    let resumed = || {
        let log = std::fs::read_to_string(worker.log_path()).unwrap();
        log.lines().any(|line| line.contains(r#""fault":"resumed""#) && line.contains(&tagged))
    };
    let sent_inside_the_pause = !resumed();
    let pause_over = Instant::now() + Duration::from_millis(hold.split("pause:").nth(1).unwrap().parse().unwrap());
    let other = other();
    let after_the_pause = Instant::now() > pause_over;
    let inside_the_pause = !resumed();
    let held = held.join().unwrap();
    worker.wait_for_log(&[r#""fault":"resumed""#, &tagged], 5);
    Raced { held, other, sent_inside_the_pause, inside_the_pause, after_the_pause }
}

/// tus and the IETF draft take one append at a time: a second `PATCH` at the same offset while
/// the first one's part is on its way (held after R2 took it, its lease renewed) is refused
/// with `409 part_in_flight`, not queued or mixed in; the first is recorded, and the object is
/// the first client's bytes.
#[test]
fn a_second_tus_append_while_the_first_ones_part_is_in_flight_is_409_part_in_flight() {
    const TUS: (&str, &str) = ("tus-resumable", "1.0.0");
    const OCTETS: (&str, &str) = ("content-type", "application/offset+octet-stream");
    fn patch(api: &Api, path: &str, offset: usize, bytes: &[u8], fault: &str) -> Reply {
        let headers = [TUS, OCTETS, ("upload-offset", &offset.to_string()), ("x-r2mpu-fault", fault)];
        api.send("PATCH", path, &headers, Some(bytes))
    }
    let api = faulty("race-tus");
    let data = random_bytes(2 * PART + 7, 31);
    let created = api.send("POST", "/tus", &[TUS, ("upload-length", &data.len().to_string())], None);
    assert_eq!(created.status, 201, "{created:?}");
    let path = created.header("location").unwrap().to_string();
    let Raced { held, other: second, inside_the_pause, .. } = {
        let (api1, path1, first) = (api.clone(), path.clone(), data[..PART].to_vec());
        let intruder = random_bytes(PART, 32);
        while_held(
            "append.after-r2=pause:4000",
            move |f| patch(&api1, &path1, 0, &first, &f),
            || patch(&api, &path, 0, &intruder, ""),
        )
    };
    assert!(inside_the_pause, "the second append came while the first one's part was held");
    second.assert_problem(409, "part_in_flight");
    assert_eq!((held.status, held.header("upload-offset")), (204, Some(PART.to_string().as_str())), "{held:?}");
    assert_eq!(patch(&api, &path, PART, &data[PART..], "").status, 204);
    let key = api.state(path.trim_start_matches("/tus/")).json()["key"].as_str().unwrap().to_string();
    assert!(api.object(&key, &[]).body == data, "the refused append left nothing behind");
}

#[test]
fn the_same_part_sent_twice_at_once_gets_409_and_the_record_names_the_copy_r2_holds() {
    let api = faulty("race-part");
    let (one, other) = (random_bytes(PART, 1), random_bytes(PART, 2));
    let id = api.create_id(json!({"key": "race/part.bin", "size": PART, "partSize": PART}));
    let Raced { held, other: second, inside_the_pause, .. } = {
        let (api1, id1, one) = (api.clone(), id.clone(), one.clone());
        while_held(HOLD_PART, move |f| api1.put_part_with(&id1, 1, &one, &f), || api.put_part(&id, 1, &other))
    };
    assert!(inside_the_pause, "the second copy came while the first was held");
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
    let Raced { held, other: bad, inside_the_pause, .. } = {
        let (api1, id1, good) = (api.clone(), id.clone(), good.clone());
        let wrong_md5 = [("content-type", "application/octet-stream"), ("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==")];
        let path = format!("/uploads/{id}/parts/1");
        while_held(
            HOLD_PART,
            move |f| api1.put_part_with(&id1, 1, &good, &f),
            || api.send("PUT", &path, &wrong_md5, Some(&random_bytes(PART, 6))),
        )
    };
    assert!(inside_the_pause, "the bad copy came while the good one was held");
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
    let Raced { held: sent, other: completed, sent_inside_the_pause, after_the_pause, .. } = {
        let (api1, id1, last) = (api.clone(), id.clone(), parts[2].clone());
        while_held(HOLD_PART, move |f| api1.put_part_with(&id1, 3, &last, &f), || api.complete(&id, None))
    };
    assert!(sent_inside_the_pause, "the complete was sent while the part was held");
    assert!(after_the_pause, "the complete was answered only after the held part left its pause");
    assert_eq!(sent.status, 200, "{}", String::from_utf8_lossy(&sent.body));
    assert_eq!(completed.status, 200, "the complete waited for the part: {}", String::from_utf8_lossy(&completed.body));
    assert!(api.object("race/recorded.bin", &[]).body == data);
}

#[test]
fn an_abort_while_completing_gets_409_and_the_complete_wins() {
    let api = faulty("race-abort-completing");
    let data = random_bytes(PART + 5, 8);
    let id = api.send_parts("race/abort-completing.bin", &data, PART);
    let Raced { held: completed, other: aborted, inside_the_pause, .. } = {
        let (api1, id1) = (api.clone(), id.clone());
        while_held(HOLD_COMPLETE, move |f| api1.complete_with(&id1, &f), || api.abort(&id))
    };
    assert!(inside_the_pause, "the abort came while the complete was held");
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
    let Raced { held: sent, other: aborted, inside_the_pause, .. } = {
        let (api1, id1, last) = (api.clone(), id.clone(), parts[1].to_vec());
        while_held(HOLD_PART, move |f| api1.put_part_with(&id1, 2, &last, &f), || api.abort(&id))
    };
    assert!(inside_the_pause, "the abort came while the part was held");
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
    let Raced { held: completed, other: resent, inside_the_pause, .. } = {
        let (api1, id1) = (api.clone(), id.clone());
        while_held(
            HOLD_COMPLETE,
            move |f| api1.complete_with(&id1, &f),
            || api.put_part(&id, 1, &random_bytes(PART, 99)),
        )
    };
    assert!(inside_the_pause, "the copy came while the complete was held");
    resent.assert_problem(409, "upload_completing");
    assert_eq!(completed.status, 200);
    assert!(api.object("race/resent.bin", &[]).body == data);
}

/// A complete sent while another runs (held before R2's complete) waits for it and answers the
/// same object: `complete` is idempotent under a real overlap, not only one after the other.
#[test]
fn a_second_complete_during_a_complete_waits_and_answers_the_same_object() {
    let api = faulty("race-complete-twice");
    let data = random_bytes(PART + 5, 11);
    let id = api.send_parts("race/complete-twice.bin", &data, PART);
    let Raced { held: first, other: second, sent_inside_the_pause, after_the_pause, .. } = {
        let (api1, id1) = (api.clone(), id.clone());
        while_held(HOLD_COMPLETE, move |f| api1.complete_with(&id1, &f), || api.complete(&id, None))
    };
    assert_eq!(first.status, 200, "{}", String::from_utf8_lossy(&first.body));
    assert_eq!(second.status, 200, "the second complete waited: {}", String::from_utf8_lossy(&second.body));
    assert!(sent_inside_the_pause, "the second complete was sent while the first was held");
    assert!(after_the_pause, "the second complete was answered only once the first had finished");
    assert_eq!(first.json(), second.json());
    assert_eq!(first.json()["etag"], multipart_etag(&data, PART));
    assert!(api.object("race/complete-twice.bin", &[]).body == data);
}
