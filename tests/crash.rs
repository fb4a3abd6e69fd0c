//! A crash in the middle of a complete loses nothing: `wrangler dev` (wrangler and workerd, the
//! whole process group) is SIGKILLed while a complete of a 16-part upload runs, restarted on the
//! same state directory, and a repeated complete ends `200` with the byte-identical object.

mod util;

use std::time::{Duration, Instant};

use serde_json::json;
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

fn send_parts(api: &Api, key: &str, data: &[u8]) -> String {
    let id = api.create_id(json!({"key": key, "size": data.len(), "partSize": PART}));
    for (i, chunk) in chunks(data, PART).enumerate() {
        assert_eq!(api.put_part(&id, i + 1, chunk).status, 200);
    }
    id
}

#[test]
fn a_complete_killed_at_any_point_is_finished_by_a_repeated_complete_after_restart() {
    let mut worker = Worker::start();
    let api = Api::of(&worker, "crash");
    let data = random_bytes(PARTS * PART - 123, 77);

    // How long a complete of this upload takes here: the kill points are fractions of it.
    let id = send_parts(&api, "crash/timing.bin", &data);
    let started = Instant::now();
    assert_eq!(api.complete(&id, None).status, 200);
    let took = started.elapsed();
    eprintln!("crash: a {PARTS}-part complete takes {} ms here", took.as_millis());

    for (round, fraction) in [0.1, 0.5, 0.9].into_iter().enumerate() {
        let key = format!("crash/round-{round}.bin");
        let id = send_parts(&api, &key, &data);
        let kill_after = took.mul_f64(fraction).max(Duration::from_millis(5));
        let pending = complete_in_background(&api, &id);
        std::thread::sleep(kill_after);
        worker.crash_and_restart();
        pending.join().unwrap();

        let state = api.state(&id).json()["status"].as_str().unwrap().to_string();
        let done = api.complete(&id, None);
        assert_eq!(
            done.status,
            200,
            "round {round} (killed after {} ms, then `{state}`): {}",
            kill_after.as_millis(),
            String::from_utf8_lossy(&done.body)
        );
        eprintln!("crash: killed after {} ms, found `{state}`, completed again", kill_after.as_millis());
        assert_eq!(done.json()["etag"], multipart_etag(&data, PART), "round {round}");
        assert_eq!(api.state(&id).json()["status"], "completed");
        assert!(api.object(&key, &[]).body == data, "round {round}: the object is not byte-identical");
    }
}
