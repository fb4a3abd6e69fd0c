//! Nothing is lost under faults: with failures injected at the points where the upload record
//! and R2 could drift apart (the test-only `faults` build, src/faults.rs), every answer is
//! true, a retry finishes the job, and the object is byte-identical. No fault ever shows a
//! client an R2 or Durable Object message: a `500` says `internal` and nothing more.

mod util;

use serde_json::json;
use util::*;

fn api(sub: &str) -> Api {
    Api::of(Worker::shared_faults(), sub)
}

/// A `500` whose body is the bare `internal` problem: no R2 or Durable Object wording leaks.
#[track_caller]
fn assert_opaque_500(reply: &Reply) {
    reply.assert_problem(500, "internal");
    let bare = json!({
        "type": "urn:r2mpu:error:internal", "title": "internal", "status": 500, "detail": "internal error",
        "code": "internal"
    });
    assert_eq!(reply.json(), bare, "a 500 says nothing more");
}

#[test]
fn a_part_that_reached_r2_but_not_the_record_is_forgotten_so_complete_never_uses_a_stale_copy() {
    let api = api("fault-part");
    let first = random_bytes(PART, 11);
    let second = random_bytes(PART, 12);
    let tail = random_bytes(100, 13);
    let id = api.create_id(json!({"key": "faults/part.bin", "size": PART + 100, "partSize": PART}));
    assert_eq!(api.put_part(&id, 1, &first).status, 200);
    assert_eq!(api.put_part(&id, 2, &tail).status, 200);

    // A new copy of part 1 reaches R2, then the Worker fails before recording it.
    assert_opaque_500(&api.put_part_with(&id, 1, &second, "part.after-r2=fail"));
    let parts = api.state(&id).json()["parts"].clone();
    let numbers: Vec<u64> = parts.as_array().unwrap().iter().map(|p| p["partNumber"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [2], "R2 holds a copy of part 1 the record never named: it is not listed");
    api.complete(&id, None).assert_problem(400, "parts_missing");

    assert_eq!(api.put_part(&id, 1, &second).status, 200);
    assert_eq!(api.complete(&id, None).status, 200);
    assert!(api.object("faults/part.bin", &[]).body == [second, tail].concat());
}

#[test]
fn a_complete_that_died_before_or_after_r2_completed_is_finished_by_the_next_complete() {
    let api = api("fault-complete");
    let data = random_bytes(2 * PART + 7, 21);
    for (round, fault) in ["complete.after-r2=fail", "complete.before-r2=fail"].into_iter().enumerate() {
        let key = format!("faults/complete-{round}.bin");
        let id = api.send_parts(&key, &data, PART);
        let died = api.complete_with(&id, fault);
        assert_opaque_500(&died);
        assert_eq!(api.state(&id).json()["status"], "completing", "{fault}: the record was left `completing`");

        let done = api.complete(&id, None);
        assert_eq!(done.status, 200, "{fault}: {}", String::from_utf8_lossy(&done.body));
        assert_eq!(done.json()["etag"], multipart_etag(&data, PART), "{fault}");
        assert_eq!(api.state(&id).json()["status"], "completed");
        assert!(api.object(&key, &[]).body == data, "{fault}");
        assert_eq!(api.complete(&id, None).json(), done.json(), "and it stays completed");
    }
}

#[test]
fn an_r2_failure_on_complete_is_a_retryable_500_and_the_retry_completes() {
    let api = api("fault-r2-complete");
    let data = random_bytes(PART + 5, 23);
    let id = api.send_parts("faults/r2-complete.bin", &data, PART);
    assert_opaque_500(&api.complete_with(&id, "r2.complete=fail"));
    let done = api.complete(&id, None);
    assert_eq!(done.status, 200, "{}", String::from_utf8_lossy(&done.body));
    assert!(api.object("faults/r2-complete.bin", &[]).body == data);
}

#[test]
fn an_r2_failure_on_a_part_keeps_the_recorded_copy_and_the_part_can_be_resent() {
    let api = api("fault-r2-part");
    let data = random_bytes(PART + 5, 24);
    let parts: Vec<&[u8]> = chunks(&data, PART).collect();
    let id = api.create_id(json!({"key": "faults/r2-part.bin", "size": data.len(), "partSize": PART}));
    assert_eq!(api.put_part(&id, 1, parts[0]).status, 200);
    assert_opaque_500(&api.put_part_with(&id, 2, parts[1], "r2.upload-part=fail"));
    assert_opaque_500(&api.put_part_with(&id, 1, parts[0], "r2.upload-part=fail"));
    assert_eq!(api.state(&id).json()["parts"].as_array().unwrap().len(), 1, "part 1 is still recorded");
    assert_eq!(api.put_part(&id, 2, parts[1]).status, 200, "nothing is left holding part 2");
    assert_eq!(api.complete(&id, None).status, 200);
    assert!(api.object("faults/r2-part.bin", &[]).body == data);
}

#[test]
fn r2_dropping_the_upload_marks_it_aborted_and_says_so() {
    let api = api("fault-r2-gone");
    let data = random_bytes(PART + 5, 25);
    let parts: Vec<&[u8]> = chunks(&data, PART).collect();

    // A part meets R2's NoSuchUpload (R2 ended the upload on its own, as after seven days).
    let id = api.create_id(json!({"key": "faults/gone-part.bin", "size": data.len(), "partSize": PART}));
    assert_eq!(api.put_part(&id, 1, parts[0]).status, 200);
    api.put_part_with(&id, 2, parts[1], "r2.forget=now").assert_problem(409, "upload_aborted");
    assert_eq!(api.state(&id).json()["status"], "aborted");
    api.complete(&id, None).assert_problem(409, "upload_aborted");

    // A complete meets it.
    let id = api.send_parts("faults/gone-complete.bin", &data, PART);
    api.complete_with(&id, "r2.forget=now").assert_problem(409, "upload_aborted");
    assert_eq!(api.state(&id).json()["status"], "aborted");
    api.complete(&id, None).assert_problem(409, "upload_aborted");
    api.object("faults/gone-complete.bin", &[]).assert_problem(404, "object_not_found");
}

#[test]
fn r2_failures_on_object_reads_are_opaque_500s() {
    let api = api("fault-r2-read");
    api.upload("fault-r2-read/x.bin", b"some bytes", PART);
    let fault = |point: &str| [("x-r2mpu-fault", format!("r2.{point}=fail"))];
    let get = fault("get");
    assert_opaque_500(&api.send("GET", "/objects/fault-r2-read/x.bin", &[(get[0].0, &get[0].1)], None));
    let head = fault("head");
    let reply = api.send("HEAD", "/objects/fault-r2-read/x.bin", &[(head[0].0, &head[0].1)], None);
    assert_eq!(reply.status, 500);
    let list = fault("list");
    assert_opaque_500(&api.send("GET", "/objects?prefix=fault-r2-read/", &[(list[0].0, &list[0].1)], None));
    assert!(api.object("fault-r2-read/x.bin", &[]).body == b"some bytes", "without faults it reads fine");
}

#[test]
fn r2_refusing_a_recorded_part_is_a_409_naming_the_parts_and_never_a_500() {
    let api = api("fault-invalid-part");
    let data = random_bytes(PART + 9, 26);
    let parts: Vec<&[u8]> = chunks(&data, PART).collect();
    let id = api.send_parts("faults/invalid-part.bin", &data, PART);

    // R2 now holds other bytes for part 1 than the record names: R2 answers InvalidPart.
    let refused = api.complete_with(&id, "r2.overwrite=part:1");
    refused.assert_problem(409, "parts_rejected");
    assert_eq!(refused.json()["partNumbers"], json!([1, 2]));
    assert_eq!(api.state(&id).json()["status"], "open", "the upload takes parts again");
    api.complete(&id, None).assert_problem(409, "parts_rejected");

    assert_eq!(api.put_part(&id, 1, parts[0]).status, 200);
    assert_eq!(api.complete(&id, None).status, 200);
    assert!(api.object("faults/invalid-part.bin", &[]).body == data);
}

/// The owner's index hears of an upload while R2 creates it (held here at `r2.create` until the
/// Worker logs the pause): listings during the create, each answered while it still runs, show
/// nothing, and none of them takes the young entry for a dead one and drops it.
#[test]
fn a_listing_while_an_upload_is_being_created_neither_shows_it_nor_loses_it() {
    let worker = Worker::shared_faults();
    let api = api("fault-slow-create");
    let body = serde_json::to_vec(&json!({"key": "faults/slow-create.bin", "size": PART, "partSize": PART})).unwrap();
    let listed = || -> Vec<String> {
        let list = api.send("GET", "/uploads", &[], None);
        assert_eq!(list.status, 200, "{}", String::from_utf8_lossy(&list.body));
        list.json()["uploads"].as_array().unwrap().iter().map(|u| u["uploadId"].as_str().unwrap().into()).collect()
    };
    std::thread::scope(|scope| {
        let create = scope.spawn(|| {
            let fault = ("x-r2mpu-fault", "r2.create=pause:4000,tag=slow-create");
            api.send("POST", "/uploads", &[("content-type", "application/json"), fault], Some(&body))
        });
        worker.wait_for_log(&[r#""fault":"paused""#, r#""tag":"slow-create""#], 120);
        for listing in 0..2 {
            assert_eq!(listed(), Vec::<String>::new(), "listing {listing}: not an upload yet, nothing to list");
            assert!(!create.is_finished(), "listing {listing} was answered while the create still ran");
        }
        let created = create.join().unwrap();
        assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
        // The listings above did not take it for an upload that never was and drop it.
        let id = created.json()["uploadId"].as_str().unwrap().to_string();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while listed() != [id.clone()] {
            assert!(std::time::Instant::now() < deadline, "the index lost the upload created during the listings");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    });
}

/// An append the Durable Object recorded but whose answer was lost (a `500`) keeps what it
/// recorded: its new tail stays, so the resumed `PATCH` from `HEAD`'s offset succeeds and the
/// object is whole (issue 19, item 7: the tail used to be deleted, and every later `PATCH` failed).
#[test]
fn an_append_whose_answer_was_lost_keeps_its_tail_and_the_upload_resumes() {
    const TUS: (&str, &str) = ("tus-resumable", "1.0.0");
    const OCTETS: (&str, &str) = ("content-type", "application/offset+octet-stream");
    let api = api("fault-append");
    let data = random_bytes(3 * MIB, 14);
    let created = api.send("POST", "/tus", &[TUS, ("upload-length", &data.len().to_string())], None);
    assert_eq!(created.status, 201, "{created:?}");
    let path = created.header("location").unwrap().to_string();
    let patch = |offset: usize, end: usize, fault: &str| {
        let headers = [TUS, OCTETS, ("upload-offset", &offset.to_string()), ("x-r2mpu-fault", fault)];
        api.send("PATCH", &path, &headers, Some(&data[offset..end]))
    };
    assert_opaque_500(&patch(0, MIB, "append.after-record=fail"));
    let head = api.send("HEAD", &path, &[TUS], None);
    assert_eq!(head.header("upload-offset"), Some(MIB.to_string().as_str()), "the append took effect");

    let rest = patch(MIB, data.len(), "");
    assert_eq!(rest.status, 204, "{rest:?}");
    let key = api.state(path.trim_start_matches("/tus/")).json()["key"].as_str().unwrap().to_string();
    assert!(api.object(&key, &[]).body == data);
}
