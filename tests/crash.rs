//! A crash loses nothing: `wrangler dev` (wrangler and workerd, the whole process group) is
//! SIGKILLed while a complete of a 16-part upload runs, or while parts are on their way to R2,
//! and restarted on the same state directory; a repeated complete, or the re-sent parts, end
//! with the byte-identical object.

mod util;

use std::time::{Duration, Instant};

use util::*;

const PARTS: usize = 16;

/// Sends a complete that may never be answered (the server dies under it).
fn complete_in_background(api: &Api, id: &str) -> std::thread::JoinHandle<()> {
    let url = format!("{}/uploads/{id}/complete", api.base);
    let token = api.token.clone().unwrap();
    std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let _ = agent.post(&url).header("authorization", format!("Bearer {token}")).send_empty();
    })
}

#[test]
fn a_complete_killed_inside_is_finished_by_a_repeated_complete_after_restart() {
    let mut worker = Worker::start();
    let api = Api::of(&worker, "crash");
    let data = random_bytes(PARTS * PART - 123, 77);

    // How long a complete of this upload takes here: the first kill lands half-way.
    let id = api.send_parts("crash/timing.bin", &data, PART);
    let started = Instant::now();
    assert_eq!(api.complete(&id, None).status, 200);
    let took = started.elapsed();
    eprintln!("crash: a {PARTS}-part complete takes {} ms here", took.as_millis());

    // Kill points home in on the complete's inside by bisection: a kill that left the upload
    // `open` came too early (the same upload serves again), one that left it `completed` too
    // late. A kill that left it `completing` is what this test is about.
    let (mut early, mut late) = (Duration::ZERO, took);
    let (mut inside, mut round) = (0, 0);
    let mut upload = None;
    while inside < 2 && round < 14 {
        let key = format!("crash/round-{round}.bin");
        let id = upload.take().unwrap_or_else(|| (api.send_parts(&key, &data, PART), key.clone()));
        let kill_after = (early + late) / 2;
        let pending = complete_in_background(&api, &id.0);
        std::thread::sleep(kill_after);
        worker.crash_and_restart();
        pending.join().unwrap();
        round += 1;

        let state = api.state(&id.0).json()["status"].as_str().unwrap().to_string();
        eprintln!("crash: killed after {} µs: `{state}`", kill_after.as_micros());
        match state.as_str() {
            "open" => {
                early = kill_after;
                upload = Some(id);
                continue;
            }
            "completed" => late = kill_after,
            _ => inside += 1,
        }
        let done = api.complete(&id.0, None);
        assert_eq!(
            done.status,
            200,
            "killed after {} µs, found `{state}`: {}",
            kill_after.as_micros(),
            String::from_utf8_lossy(&done.body)
        );
        assert_eq!(done.json()["etag"], multipart_etag(&data, PART));
        assert_eq!(api.state(&id.0).json()["status"], "completed");
        assert!(api.object(&id.1, &[]).body == data, "killed after {kill_after:?}: the object is not byte-identical");
    }
    assert!(inside > 0, "no kill landed inside the complete in {round} tries ({early:?}..{late:?})");
}

const TUS: (&str, &str) = ("tus-resumable", "1.0.0");
const OCTETS: (&str, &str) = ("content-type", "application/offset+octet-stream");

/// Sends `attempt` until it is no longer `409 part_in_flight` and answers that reply; a lease
/// the dead instance held must lapse as any other does (about a second), so 10 s is a failure.
fn once_the_lease_lapsed(attempt: impl Fn() -> Reply) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = attempt();
        if reply.status != 409 || reply.code() != "part_in_flight" {
            return reply;
        }
        assert!(Instant::now() < deadline, "the part is still leased 10 s after the restart: {reply:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A crash while parts are on their way: `wrangler dev` is SIGKILLed while a REST part and a
/// tus append's part are each held after R2 took them (the fault build's `part.after-r2` and
/// `append.after-r2` pauses, seen in the Worker's log), their leases written in SQLite and their
/// records not. After the restart neither part is recorded, the tus offset is where it was,
/// the dead instance's leases do not hold the re-sends off, and both objects are byte-identical.
#[test]
fn a_crash_with_parts_in_flight_records_neither_and_takes_their_resends() {
    let mut worker = Worker::start_with_faults(Options::default());
    let api = Api::of(&worker, "crash-in-flight");
    let data = random_bytes(3 * PART - 11, 78);
    let parts: Vec<Vec<u8>> = chunks(&data, PART).map(<[u8]>::to_vec).collect();
    let id = api.create_id(serde_json::json!({"key": "crash/rest.bin", "size": data.len(), "partSize": PART}));
    assert_eq!(api.put_part(&id, 1, &parts[0]).status, 200);

    // The tus upload's first append sets its part size (5 MiB) and offset.
    let appended = random_bytes(3 * PART - 5, 79);
    let created = api.send("POST", "/tus", &[TUS, ("upload-length", &appended.len().to_string())], None);
    assert_eq!(created.status, 201, "{created:?}");
    let path = created.header("location").unwrap().to_string();
    let patch = move |api: &Api, path: &str, bytes: &[u8], offset: usize, fault: &str| {
        let headers = [TUS, OCTETS, ("upload-offset", &offset.to_string()), ("x-r2mpu-fault", fault)];
        api.try_send("PATCH", path, &headers, Some(&bytes[offset..]))
    };
    let first = patch(&api, &path, &appended[..PART], 0, "").unwrap();
    assert_eq!((first.status, first.header("upload-offset")), (204, Some(PART.to_string().as_str())));

    let held_part = {
        let (api, id, part) = (api.clone(), id.clone(), parts[1].clone());
        let fault = "part.after-r2=pause:60000,tag=crash-part";
        std::thread::spawn(move || {
            api.try_send("PUT", &format!("/uploads/{id}/parts/2"), &[("x-r2mpu-fault", fault)], Some(&part))
        })
    };
    let held_append = {
        let (api, path, appended) = (api.clone(), path.clone(), appended.clone());
        std::thread::spawn(move || patch(&api, &path, &appended, PART, "append.after-r2=pause:60000,tag=crash-append"))
    };
    worker.wait_for_log(&[r#""fault":"paused""#, r#""tag":"crash-part""#], 120);
    worker.wait_for_log(&[r#""fault":"paused""#, r#""tag":"crash-append""#], 120);
    worker.crash_and_restart();
    for held in [held_part, held_append] {
        let answer = held.join().unwrap();
        assert!(answer.is_err(), "a request held in the killed Worker was answered: {answer:?}");
    }

    let recorded: Vec<u64> =
        api.state(&id).json()["parts"].as_array().unwrap().iter().map(|p| p["partNumber"].as_u64().unwrap()).collect();
    assert_eq!(recorded, [1], "R2 took part 2, but its record was never written");
    let head = api.send("HEAD", &path, &[TUS], None);
    assert_eq!(head.header("upload-offset"), Some(PART.to_string().as_str()), "the offset is where it was");

    assert_eq!(once_the_lease_lapsed(|| api.put_part(&id, 2, &parts[1])).status, 200);
    assert_eq!(api.put_part(&id, 3, &parts[2]).status, 200);
    let done = api.complete(&id, None);
    assert_eq!(done.status, 200, "{done:?}");
    assert!(api.object("crash/rest.bin", &[]).body == data, "the REST object is byte-identical");

    let rest = once_the_lease_lapsed(|| patch(&api, &path, &appended, PART, "").unwrap());
    assert_eq!(rest.status, 204, "{rest:?}");
    let key = api.state(path.trim_start_matches("/tus/")).json()["key"].as_str().unwrap().to_string();
    assert!(api.object(&key, &[]).body == appended, "the tus object is byte-identical");
}
