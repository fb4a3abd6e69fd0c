//! Issue 19: a broken connection costs `r2mpu` seconds, never the transfer. Each test puts a
//! [`ResetProxy`] between the binary and a real `wrangler dev`, breaks one part's connection in
//! the middle of its body, and checks that the upload still finishes byte-identical, and soon:
//! the time from the break to the end of the whole run bounds how long the re-send of the broken
//! part waited. On a server whose dead request keeps the part leased (about 65 s before issue 19)
//! the re-send gets `409 part_in_flight` until the lease runs out, so the bound fails there.

mod util;

use std::process::Stdio;
use std::time::{Duration, Instant};

use r2mpu_testkit::{Break, ResetProxy};
use util::{multipart_etag, Env, Run, MIB, PART};

/// From a break to the run's end: the re-send plus the rest of a small upload, well under the
/// old server's 65 s hold.
const RESEND_BOUND: Duration = Duration::from_secs(10);

/// Uploads three 5 MiB parts through a proxy armed with `rule` (aimed at part 2), and returns
/// how long after the break the run ended; checks the object is the file, byte for byte.
fn upload_through_a_break(env: &Env, rule: Break) -> Duration {
    let (_, data) = env.file("broken.bin", 3 * PART);
    let key = format!("{}/broken.bin", env.sub);
    let proxy = ResetProxy::to(&env.worker.url);
    proxy.arm(rule);
    let mut command =
        env.command(&["upload", "broken.bin", &key, "--part-size", "5MiB", "--concurrency", "1", "--via-worker"]);
    command.env("R2MPU_ENDPOINT", &proxy.url).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = command.spawn().expect("starting r2mpu");
    let broke = proxy.wait_reset(1, Duration::from_secs(60));
    let output = child.wait_with_output().unwrap();
    let waited = Instant::now() - broke;
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
    .expect(0);
    assert_eq!(proxy.resets(), 1);
    assert_eq!(run.field("etag"), multipart_etag(&data, PART), "{}", run.stderr);
    let back = env.run(&["download", &key, "back.bin"]).expect(0);
    assert!(back.field("verified").contains("matches"), "{}", back.stdout);
    assert!(std::fs::read(env.path("back.bin")).unwrap() == data, "the object is not the file");
    eprintln!("{}: the run ended {:.2}s after the break\n{}", env.sub, waited.as_secs_f64(), run.stderr);
    waited
}

#[test]
fn a_part_reset_mid_body_is_sent_again_within_seconds_and_the_upload_is_identical() {
    let env = Env::new("reset-part");
    let waited = upload_through_a_break(&env, Break::after(2 * MIB).method("PUT").path("/parts/2"));
    assert!(waited < RESEND_BOUND, "the re-send of part 2 waited {waited:?} after the reset");
}

/// The Worker's side stays open and silent: it learns of the loss only from missing bytes.
#[test]
fn a_part_whose_client_vanished_mid_body_is_sent_again_within_seconds_and_the_upload_is_identical() {
    let env = Env::new("vanish-part");
    let waited = upload_through_a_break(&env, Break::vanish(2 * MIB).method("PUT").path("/parts/2"));
    assert!(waited < RESEND_BOUND, "the re-send of part 2 waited {waited:?} after the client vanished");
}

/// A download whose range is cut off mid-answer fetches that range again, and the file is the
/// object, byte for byte, verified.
#[test]
fn a_range_reset_mid_answer_is_fetched_again_and_the_download_is_identical() {
    let env = Env::new("reset-range");
    let (_, data) = env.file("up.bin", 3 * PART);
    let key = format!("{}/up.bin", env.sub);
    env.run(&["upload", "up.bin", &key, "--part-size", "5MiB"]).expect(0);
    let proxy = ResetProxy::to(&env.worker.url);
    proxy.arm(Break::response_after(2 * MIB).method("GET").path("/objects/"));
    let mut command = env.command(&["download", &key, "back.bin", "--concurrency", "1"]);
    command.env("R2MPU_ENDPOINT", &proxy.url);
    let output = command.output().expect("running r2mpu");
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
    .expect(0);
    assert_eq!(proxy.resets(), 1, "the proxy cut one range off");
    assert!(run.field("verified").contains("matches"), "{}", run.stdout);
    assert!(std::fs::read(env.path("back.bin")).unwrap() == data, "the download is not the object");
}
