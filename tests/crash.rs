//! A crash in the middle of a complete loses nothing: `wrangler dev` (wrangler and workerd, the
//! whole process group) is SIGKILLed while a complete of a 16-part upload runs, restarted on the
//! same state directory, and a repeated complete ends `200` with the byte-identical object.

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
