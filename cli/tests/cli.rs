//! Issue #3: the `r2mpu` binary against a real `wrangler dev` (local R2 and Durable Objects).
//! Every test drives the binary as a user would and checks bytes, exit codes and what it says.

mod util;

use std::fs;

use jwt_simple::reexports::ct_codecs::{Base64, Encoder};
use md5::{Digest, Md5};
use r2mpu_api::types::UploadStatus;
use util::{
    multipart_etag, sidecar_lines, wait_until, Action, Env, Fate, Proxy, Relay, Run, Running, Seen, Tally, MIB, PART,
};

const PART_SIZE: &str = "5MiB";

/// Uploads `data` from `name` in 5 MiB parts and returns the reported ETag, after checking it
/// against one computed here.
fn upload(env: &Env, name: &str, data: &[u8], key: &str) -> String {
    let run = env.run(&["upload", name, key, "--part-size", PART_SIZE]).expect(0);
    assert_eq!(run.field("key"), key);
    assert_eq!(run.field("size"), data.len().to_string());
    assert_eq!(run.field("etag"), multipart_etag(data, PART));
    run.field("etag").to_owned()
}

#[test]
fn uploads_and_downloads_round_trip_byte_for_byte_around_part_boundaries() {
    let env = Env::new("round-trip");
    for size in [1, PART - 1, PART, PART + 1, 3 * PART + 17] {
        let name = format!("boundary-{size}.bin");
        let (_, data) = env.file(&name, size);
        let key = format!("round-trip/{name}");
        let etag = upload(&env, &name, &data, &key);

        let out = format!("down-{size}.bin");
        let run = env.run(&["download", &key, &out]).expect(0);
        assert_eq!(run.field("etag"), etag);
        assert!(run.field("verified").contains("multipart ETag matches"), "{}", run.stdout);
        assert!(fs::read(env.path(&out)).unwrap() == data, "{size} bytes came back different");
        assert_eq!(sidecar_lines(&env.path(&out)), 0, "the sidecar is removed on success");
    }
}

#[test]
fn the_key_defaults_to_the_file_name_and_the_file_name_to_the_key() {
    let env = Env::new("defaults");
    let (_, data) = env.file("defaults-42.bin", 42);
    let run = env.run(&["upload", "defaults-42.bin"]).expect(0);
    assert_eq!(run.field("key"), "defaults-42.bin");
    // Default part size: one part.
    assert_eq!(run.field("etag"), multipart_etag(&data, 16 * MIB));

    fs::remove_file(env.path("defaults-42.bin")).unwrap();
    env.run(&["download", "defaults-42.bin"]).expect(0);
    assert!(fs::read(env.path("defaults-42.bin")).unwrap() == data);
    // A second download will not overwrite what the first wrote, unless forced.
    let run = env.run(&["download", "defaults-42.bin"]).expect(1);
    assert!(run.error_line().contains("--force"), "{}", run.stderr);
    env.run(&["download", "defaults-42.bin", "--force"]).expect(0);
}

#[test]
fn an_empty_file_uploads_as_one_empty_part() {
    let env = Env::new("empty");
    let (_, data) = env.file("empty.bin", 0);
    upload(&env, "empty.bin", &data, "empty/empty.bin");
    let run = env.run(&["download", "empty/empty.bin", "back.bin"]).expect(0);
    assert!(run.field("verified").contains("matches"), "{}", run.stdout);
    assert_eq!(fs::read(env.path("back.bin")).unwrap().len(), 0);
}

/// The `Content-MD5` of `bytes`.
fn content_md5(bytes: &[u8]) -> String {
    Base64::encode_to_string(Md5::digest(bytes)).unwrap()
}

/// The part `PUT`s the proxy saw, in order.
fn part_puts(proxy: &Proxy) -> Vec<Seen> {
    proxy.seen().into_iter().filter(|s| s.part_number().is_some()).collect()
}

#[test]
fn parts_hashed_before_sending_carry_content_md5_and_still_round_trip() {
    let env = Env::new("verify-parts");
    let (_, data) = env.file("verify.bin", 2 * PART + 3);
    let proxy = Proxy::start(&env.worker.url, |_| Action::Forward);
    let mut command =
        env.command(&["upload", "verify.bin", "verify/verify.bin", "--part-size", PART_SIZE, "--via-worker"]);
    command.arg("--verify-parts").env("R2MPU_ENDPOINT", &proxy.url);
    let run = Run::of(command).expect(0);
    assert_eq!(run.field("etag"), multipart_etag(&data, PART));

    let puts = part_puts(&proxy);
    assert_eq!(puts.len(), 3, "{puts:?}");
    for put in &puts {
        let n = usize::from(put.part_number().unwrap());
        let range = &data[(n - 1) * PART..(n * PART).min(data.len())];
        assert_eq!(put.header("content-md5"), Some(content_md5(range).as_str()), "part {n}");
        assert!(put.body == range, "part {n} carried other bytes");
    }
    env.run(&["download", "verify/verify.bin", "back.bin"]).expect(0);
    assert!(fs::read(env.path("back.bin")).unwrap() == data);
}

/// Starts an upload of `name` with one part at a time and SIGKILLs it once the server holds
/// at least `parts` parts. Returns the upload ID.
fn upload_and_kill(env: &Env, name: &str, key: &str, parts: usize) -> String {
    let mut running =
        Running::start(env.command(&["upload", name, key, "--part-size", PART_SIZE, "--concurrency", "1"]));
    let id = running.upload_id();
    wait_until("parts on the server", || env.upload_state(&id).parts.len() >= parts);
    assert!(running.kill(), "the upload finished before it could be killed; make the file larger");
    id
}

/// The N of a `resumed: N of M parts` (or ranges) note.
fn resumed(stderr: &str) -> (usize, usize) {
    let line =
        stderr.lines().find(|l| l.starts_with("resumed: ")).unwrap_or_else(|| panic!("no resumed line in\n{stderr}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    (words[1].parse().unwrap(), words[3].parse().unwrap())
}

fn sent(stderr: &str) -> usize {
    let line = stderr.lines().find(|l| l.starts_with("sent: ")).unwrap_or_else(|| panic!("no sent line in\n{stderr}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_killed_upload_resumes_and_sends_only_the_missing_parts() {
    let env = Env::new("resume");
    let (_, data) = env.file("resume.bin", 12 * PART + 3);
    let id = upload_and_kill(&env, "resume.bin", "resume/resume.bin", 3);
    let on_server = env.upload_state(&id).parts.len();

    let run = env.run(&["upload", "resume.bin", "resume/resume.bin", "--part-size", PART_SIZE]).expect(0);
    let (already, of) = resumed(&run.stderr);
    assert_eq!(of, 13);
    // A part that landed just before the kill may not have reached the local record; it is
    // then sent again. Nothing else is.
    assert!(already >= 3.min(on_server - 1) && already <= on_server, "{already} of {on_server}\n{}", run.stderr);
    assert_eq!(sent(&run.stderr), 13 - already, "{}", run.stderr);
    assert_eq!(run.field("etag"), multipart_etag(&data, PART));
    assert_eq!(env.upload_state(&id).status, UploadStatus::Completed);

    let run = env.run(&["download", "resume/resume.bin", "back.bin"]).expect(0);
    assert!(run.field("verified").contains("matches"));
    assert!(fs::read(env.path("back.bin")).unwrap() == data);
}

#[test]
fn a_file_changed_since_the_interrupted_upload_starts_over_and_aborts_the_old_one() {
    let env = Env::new("changed");
    let (path, mut data) = env.file("changed.bin", 12 * PART);
    let old = upload_and_kill(&env, "changed.bin", "changed/changed.bin", 2);
    data.extend_from_slice(b"more");
    fs::write(&path, &data).unwrap();

    let run = env.run(&["upload", "changed.bin", "changed/changed.bin", "--part-size", PART_SIZE]).expect(0);
    assert!(
        run.stderr.contains(&format!("starting over, not resuming upload {old}: the file's size changed")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("resumed:"), "{}", run.stderr);
    assert_eq!(run.field("etag"), multipart_etag(&data, PART));
    assert_eq!(env.upload_state(&old).status, UploadStatus::Aborted);
}

#[test]
fn an_upload_aborted_on_the_server_starts_over() {
    let env = Env::new("aborted");
    let (_, data) = env.file("aborted.bin", 12 * PART);
    let old = upload_and_kill(&env, "aborted.bin", "aborted/aborted.bin", 2);
    // Behind the CLI's back: its record still names the upload.
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let response = agent
        .delete(format!("{}/uploads/{old}", env.worker.url))
        .header("Authorization", format!("Bearer {}", env.token))
        .call()
        .unwrap();
    assert_eq!(response.status(), 204);

    let run = env.run(&["upload", "aborted.bin", "aborted/aborted.bin", "--part-size", PART_SIZE]).expect(0);
    assert!(run.stderr.contains(&format!("starting over, not resuming upload {old}")), "{}", run.stderr);
    assert_eq!(run.field("etag"), multipart_etag(&data, PART));
}

#[test]
fn abort_discards_an_interrupted_upload_and_its_resume_record() {
    let env = Env::new("abort");
    env.file("abort.bin", 12 * PART);
    let id = upload_and_kill(&env, "abort.bin", "abort/abort.bin", 2);
    let run = env.run(&["status", &id]).expect(0);
    assert_eq!(run.field("status"), "open");

    env.run(&["abort", &id]).expect(0);
    assert_eq!(env.run(&["status", &id]).expect(0).field("status"), "aborted");
    // The record went with it: the next run starts a new upload without complaint.
    let run = env.run(&["upload", "abort.bin", "abort/abort.bin", "--part-size", PART_SIZE]).expect(0);
    assert!(!run.stderr.contains("resum"), "{}", run.stderr);
}

#[test]
fn a_killed_download_resumes_from_its_sidecar() {
    let env = Env::new("download-resume");
    let (_, data) = env.file("big.bin", 16 * PART + 9);
    upload(&env, "big.bin", &data, "download-resume/big.bin");

    let out = env.path("back.bin");
    let args = ["download", "download-resume/big.bin", "back.bin", "--concurrency", "1"];
    let running = Running::start(env.command(&args));
    // The sidecar holds its header line, then one line per finished range.
    wait_until("ranges in the sidecar", || sidecar_lines(&out) >= 3);
    assert!(running.kill(), "the download finished before it could be killed; make the file larger");

    let run = env.run(&args).expect(0);
    let (already, of) = resumed(&run.stderr);
    assert_eq!(of, 17);
    assert!(already >= 2, "{}", run.stderr);
    assert!(run.field("verified").contains("matches"), "{}", run.stdout);
    assert!(fs::read(&out).unwrap() == data);
    assert_eq!(sidecar_lines(&out), 0);
}

/// The `GET /objects/…` requests that asked for a range, as their `Range` headers.
fn ranges_asked(proxy: &Proxy) -> Vec<Seen> {
    proxy.seen().into_iter().filter(|s| s.method == "GET" && s.header("range").is_some()).collect()
}

/// The first and last byte a `Range: bytes=A-B` header asks for.
fn range_of(seen: &Seen) -> Option<(usize, usize)> {
    let (from, to) = seen.header("range")?.strip_prefix("bytes=")?.split_once('-')?;
    Some((from.parse().ok()?, to.parse().ok()?))
}

/// 16 MiB uploaded as 5 + 5 + 5 + 1 MiB: fewer parts than a download keeps in flight.
const FEW_PARTS: usize = 3 * PART + MIB;
/// What `--concurrency 16` cuts those parts into: 4 ranges of 1.25 MiB a part, 13 in all.
const SPLIT_RANGE: usize = PART / 4;

/// Issue 23: an object of 4 parts downloaded with 16 ranges in flight is fetched in more ranges
/// than it has parts, none across a part boundary, and its multipart ETag is still recomputed
/// from the parts' MD5s (read back from the file).
#[test]
fn an_object_of_few_parts_downloads_in_more_ranges_than_parts_and_verifies() {
    let env = Env::new("split-ranges");
    let (_, data) = env.file("few.bin", FEW_PARTS);
    upload(&env, "few.bin", &data, "split/few.bin");
    let proxy = Proxy::start(&env.worker.url, |_| Action::Forward);
    let mut command = env.command(&["download", "split/few.bin", "back.bin", "--concurrency", "16"]);
    command.env("R2MPU_ENDPOINT", &proxy.url);
    let run = Run::of(command).expect(0);

    assert!(fs::read(env.path("back.bin")).unwrap() == data, "the file came back different");
    assert!(run.field("verified").contains("multipart ETag matches (4 parts of 5242880 bytes)"), "{}", run.stdout);
    let asked: Vec<(usize, usize)> = ranges_asked(&proxy).iter().filter_map(range_of).collect();
    for &(from, to) in &asked {
        assert_eq!(from / PART, to / PART, "bytes {from}-{to} cross a part boundary");
    }
    let expected: Vec<(usize, usize)> =
        (0..FEW_PARTS).step_by(SPLIT_RANGE).map(|from| (from, (from + SPLIT_RANGE).min(FEW_PARTS) - 1)).collect();
    assert_eq!(expected.len(), 13);
    for range in &expected {
        assert!(asked.contains(range), "{range:?} was never asked for: {asked:?}");
    }
    assert!(run.stderr.contains("fetching 4 parts as 13 ranges of 1310720 bytes"), "{}", run.stderr);
    assert_eq!(sidecar_lines(&env.path("back.bin")), 0);
}

/// Issue 23: a download killed while its parts were cut into ranges resumes with the ranges it
/// started with (though a rerun at another level would cut them otherwise) and verifies, the
/// part it had finished before the kill read back from the file.
#[test]
fn a_killed_download_in_split_ranges_resumes_with_its_ranges_and_verifies() {
    let env = Env::new("split-resume");
    let (_, data) = env.file("few.bin", FEW_PARTS);
    upload(&env, "few.bin", &data, "split-resume/few.bin");
    // The first part's ranges go through; the others are held until the CLI was killed.
    let killed = std::sync::Arc::new(Tally::default());
    let held = std::sync::Arc::clone(&killed);
    let proxy = Proxy::start(&env.worker.url, move |seen| match range_of(seen) {
        Some((from, _)) if from >= PART => {
            let held = std::sync::Arc::clone(&held);
            Action::ForwardWhen(Box::new(move || {
                held.wait_for(1, std::time::Duration::from_secs(60));
            }))
        }
        _ => Action::Forward,
    });
    let out = env.path("back.bin");
    let mut command = env.command(&["download", "split-resume/few.bin", "back.bin", "--concurrency", "16"]);
    command.env("R2MPU_ENDPOINT", &proxy.url);
    let running = Running::start(command);
    wait_until("the first part's 4 ranges in the sidecar", || sidecar_lines(&out) >= 5);
    assert!(running.kill(), "the download finished while ranges were held");
    killed.add();

    // Fresh, 8 in flight would cut each part in 2; the sidecar's 4 ranges a part are kept. (The
    // proxy again: the sidecar is for the endpoint it was written through.)
    let mut command = env.command(&["download", "split-resume/few.bin", "back.bin", "--concurrency", "8"]);
    command.env("R2MPU_ENDPOINT", &proxy.url);
    let run = Run::of(command).expect(0);
    assert_eq!(resumed(&run.stderr), (4, 13), "{}", run.stderr);
    assert!(run.field("verified").contains("multipart ETag matches (4 parts of 5242880 bytes)"), "{}", run.stdout);
    assert!(fs::read(&out).unwrap() == data, "the file came back different");
    assert_eq!(sidecar_lines(&out), 0);
}

/// Issue 11: one range's body stops after its first MiB and never ends (the proxy holds the
/// connection open until the CLI hangs up), as one of wrangler dev's ranged reads once did for
/// two minutes. The CLI sees that range fall behind the others and, while the stalled request is
/// still open, asks again for the rest of it, from no later than the first byte it lacks; the
/// file comes out identical and its ETag verifies, so each byte was written once, hashed in order.
#[test]
fn a_stalled_range_is_asked_for_again_while_it_hangs_and_the_download_is_identical() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let env = Env::new("stalled-range");
    let (_, data) = env.file("stalled.bin", 5 * PART + 11);
    upload(&env, "stalled.bin", &data, "stalled/stalled.bin");

    let third = format!("bytes={}-{}", 2 * PART, 3 * PART - 1);
    let stalled = AtomicBool::new(false);
    let rule_range = third.clone();
    let proxy = Proxy::start(&env.worker.url, move |seen| {
        let first_ask = seen.header("range") == Some(rule_range.as_str()) && !stalled.swap(true, Ordering::SeqCst);
        if first_ask {
            Action::Stall(MIB)
        } else {
            Action::Forward
        }
    });
    // Pinned at 4 (the loopback start) so that ranges stay parts: a slow first round trip
    // would size the start higher and cut these 6 parts into more ranges (issue 23).
    let mut command = env.command(&["download", "stalled/stalled.bin", "back.bin", "--concurrency", "4"]);
    command.env("R2MPU_ENDPOINT", &proxy.url);
    let run = Run::of(command).expect(0);

    assert!(fs::read(env.path("back.bin")).unwrap() == data, "the file came back different");
    assert!(run.field("verified").contains("multipart ETag matches"), "{}", run.stdout);
    assert!(run.stderr.contains("GET range 3 (bytes 10485760-15728639): stalled"), "{}", run.stderr);
    let third_end = format!("-{}", 3 * PART - 1);
    let asks: Vec<Seen> = ranges_asked(&proxy)
        .into_iter()
        .filter(|s| s.header("range").is_some_and(|r| r.ends_with(&third_end)))
        .collect();
    assert!(asks.len() >= 2, "the stalled range and its hedge: {asks:#?}");
    assert_eq!(asks[0].header("range"), Some(third.as_str()));
    let hedge = &asks[1];
    assert!(hedge.answering.contains(&asks[0].index), "asked again while the stalled answer still hung: {hedge:#?}");
    // Normally exactly the bytes after the delivered MiB; on a loaded machine the hedge may come
    // before that MiB arrived, and then asks for more, never for less.
    let from: usize = hedge.header("range").unwrap()["bytes=".len()..].split('-').next().unwrap().parse().unwrap();
    assert!((2 * PART..=2 * PART + MIB).contains(&from), "{hedge:#?}");
    assert_eq!(sidecar_lines(&env.path("back.bin")), 0);
}

/// Issue 11: both the stalled answer and the hedge pause after their first MiB, and the stalled
/// one wakes up while the hedge is paused: the two deliver overlapping bytes, whichever comes
/// first is written, and the file and its ETag still come out right.
#[test]
fn a_stalled_range_that_wakes_up_during_its_hedge_still_writes_each_byte_once() {
    let env = Env::new("waking-range");
    let (_, data) = env.file("waking.bin", 5 * PART + 11);
    upload(&env, "waking.bin", &data, "waking/waking.bin");

    let third_end = format!("-{}", 3 * PART - 1);
    let rule_end = third_end.clone();
    let proxy = Proxy::start(&env.worker.url, move |seen| match seen.header("range") {
        Some(range) if range.ends_with(&rule_end) => Action::Pause(MIB, std::time::Duration::from_secs(8)),
        _ => Action::Forward,
    });
    // Pinned at 4 (the loopback start) so that ranges stay parts: a slow first round trip
    // would size the start higher and cut these 6 parts into more ranges (issue 23).
    let mut command = env.command(&["download", "waking/waking.bin", "back.bin", "--concurrency", "4"]);
    command.env("R2MPU_ENDPOINT", &proxy.url);
    let run = Run::of(command).expect(0);

    assert!(fs::read(env.path("back.bin")).unwrap() == data, "the file came back different");
    assert!(run.field("verified").contains("multipart ETag matches"), "{}", run.stdout);
    let asked: Vec<Seen> = ranges_asked(&proxy)
        .into_iter()
        .filter(|s| s.header("range").is_some_and(|r| r.ends_with(&third_end)))
        .collect();
    let third: Vec<&str> = asked.iter().map(|s| s.header("range").unwrap()).collect();
    assert!(third.len() >= 2, "the paused range and its hedge: {third:?}");
    assert_eq!(third[0], format!("bytes={}{third_end}", 2 * PART));
    let from: usize = third[1]["bytes=".len()..].split('-').next().unwrap().parse().unwrap();
    assert!((2 * PART..=2 * PART + MIB).contains(&from), "{third:?}");
    assert!(!run.stderr.contains("retrying"), "{}", run.stderr);
    // The bytes both copies hold really arrived twice: the hedge's first MiB (from the first
    // byte the stalled copy lacked) had gone out before the stalled copy, delivered whole, ended.
    // (The hedge itself is cut off: the download is done before its pause ends.)
    let delivery = |seen: &Seen| proxy.deliveries().into_iter().find(|d| d.index == seen.index);
    wait_until("both copies' answers ended", || delivery(&asked[0]).is_some() && delivery(&asked[1]).is_some());
    let (stalled, hedge) = (delivery(&asked[0]).unwrap(), delivery(&asked[1]).unwrap());
    assert!(stalled.whole, "the stalled copy was delivered whole: {stalled:#?}");
    assert!(hedge.paused.is_some_and(|p| p < stalled.ended), "the copies overlapped: {stalled:#?} {hedge:#?}");
}

/// Issue 11: a download reads each range's body to its end, so its ranges share one kept-alive
/// connection instead of paying a new one each (a round trip more per range on a real link).
#[test]
fn a_download_keeps_its_connection_alive_from_range_to_range() {
    let env = Env::new("keep-alive");
    let (_, data) = env.file("alive.bin", 4 * PART + 3);
    upload(&env, "alive.bin", &data, "keep-alive/alive.bin");
    let relay = Relay::start(&env.worker.url);
    let mut command = env.command(&["download", "keep-alive/alive.bin", "back.bin", "--concurrency", "1"]);
    command.env("R2MPU_ENDPOINT", &relay.url);
    let run = Run::of(command).expect(0);
    assert!(run.field("verified").contains("5 parts"), "{}", run.stdout);
    assert!(fs::read(env.path("back.bin")).unwrap() == data);
    assert_eq!(relay.connections(), 1, "HEAD and 5 ranges, one after another, on one connection");
}

#[test]
fn a_download_checked_with_the_wrong_part_size_is_an_integrity_failure() {
    let env = Env::new("integrity");
    let (_, data) = env.file("four.bin", 3 * PART + 17);
    upload(&env, "four.bin", &data, "integrity/four.bin");
    // 4 MiB parts also make 4 parts, with other boundaries: the recomputed ETag must differ.
    let run = env.run(&["download", "integrity/four.bin", "a.bin", "--part-size", "4MiB"]).expect(4);
    assert!(run.error_line().contains("the bytes make the ETag"), "{}", run.stderr);
    // Without --part-size the right one is found.
    let run = env.run(&["download", "integrity/four.bin", "b.bin"]).expect(0);
    assert!(run.field("verified").contains("4 parts of 5242880 bytes"), "{}", run.stdout);
}

#[test]
fn bad_tokens_are_refused_with_exit_2_and_the_servers_code() {
    let env = Env::new("refused");
    env.file("small.bin", 10);
    let run = env.run_with_token(Some("not.a.jwt"), &["upload", "small.bin"]).expect(2);
    assert!(run.error_line().contains("401 invalid_token"), "{}", run.stderr);
    let run = env.run_with_token(None, &["upload", "small.bin"]).expect(2);
    assert!(run.error_line().contains("401 missing_token"), "{}", run.stderr);
    let reader = env.worker.token("refused", &["objects:read"]);
    let run = env.run_with_token(Some(&reader), &["upload", "small.bin"]).expect(2);
    assert!(run.error_line().contains("403 insufficient_scope"), "{}", run.stderr);
}

#[test]
fn bad_input_gets_the_exit_code_of_its_kind() {
    let env = Env::new("bad-input");
    env.file("small.bin", 10);
    // Usage.
    env.run(&["upload"]).expect(1);
    env.run(&["upload", "small.bin", "--part-size", "lots"]).expect(1);
    let run = env.run(&["upload", "small.bin", "a/../b"]).expect(1);
    assert!(run.error_line().contains("`a/../b` cannot be a key"), "{}", run.stderr);
    // The server's rule: parts of at least 5 MiB.
    let run = env.run(&["upload", "small.bin", "--part-size", "1MiB"]).expect(2);
    assert!(run.error_line().contains("400 invalid_layout"), "{}", run.stderr);
    let run = env.run(&["download", "bad-input/absent.bin"]).expect(2);
    assert!(run.error_line().contains("404"), "{}", run.stderr);
    let run = env.run(&["status", "0123456789abcdef0123456789abcdef"]).expect(2);
    assert!(run.error_line().contains("404 upload_not_found"), "{}", run.stderr);
    // Local I/O.
    let run = env.run(&["upload", "no-such-file.bin"]).expect(5);
    assert!(run.error_line().contains("no-such-file.bin"), "{}", run.stderr);
}

#[test]
fn a_local_mistake_is_reported_before_the_cli_makes_any_request() {
    let env = Env::new("local-mistakes");
    env.file("small.bin", 10);
    let relay = Relay::start(&env.worker.url);
    let run = |args: &[&str], code| {
        let mut command = env.command(args);
        command.env("R2MPU_ENDPOINT", &relay.url);
        Run::of(command).expect(code)
    };
    let bad_key = run(&["upload", "small.bin", "a/../b"], 1);
    assert!(bad_key.error_line().contains("`a/../b` cannot be a key"), "{}", bad_key.stderr);
    let missing = run(&["upload", "no-such-file.bin"], 5);
    assert!(missing.error_line().contains("no-such-file.bin"), "{}", missing.stderr);
    // Not even the round trip that sizes the parts in flight: on a server that does not answer
    // it would hold the error back for the read timeout.
    assert_eq!(relay.connections(), 0);
}

#[test]
fn an_unreachable_endpoint_is_exit_3_after_the_retries() {
    let env = Env::new("unreachable");
    env.file("small.bin", 10);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut command = env.command(&["upload", "small.bin", "--retries", "2"]);
    command.env("R2MPU_ENDPOINT", format!("http://{closed}"));
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("gave up after 3 attempts"), "{stderr}");
    assert_eq!(stderr.lines().filter(|l| l.contains("retrying in")).count(), 2, "{stderr}");
}

/// The parts done of the plain progress lines (`upload: 2/3 parts, ...`), in order.
fn progress_parts(stderr: &str) -> Vec<u64> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("upload: "))
        .map(|l| l.split_once('/').unwrap().0.parse().unwrap())
        .collect()
}

/// The percentages of the plain progress lines (`upload: 2/3 parts, ... (99%), ...`), in order.
fn progress_percents(stderr: &str) -> Vec<u64> {
    stderr
        .lines()
        .filter(|l| l.starts_with("upload: "))
        .map(|l| l.split_once('(').unwrap().1.split_once("%)").unwrap().0.parse().unwrap())
        .collect()
}

/// Progress counts what the Worker holds, not what the kernel took: four parts in flight at
/// once, each sent whole at once into the relay, answered about 1.6 s apart. Every line says a
/// quarter for each part answered, the first one a quarter; counting bytes handed to sockets
/// said 100% (and an ETA of nothing) after the first. Lines come at most one a second, so a
/// busy machine that answers two parts close together may print one line for both.
#[test]
fn progress_counts_the_parts_the_worker_answered_not_the_bytes_handed_to_sockets() {
    let env = Env::new("progress");
    let (_, data) = env.file("progress.bin", 4 * PART);
    let proxy = Proxy::start(&env.worker.url, |seen| match seen.part_number() {
        Some(n) => Action::ForwardAfter(std::time::Duration::from_millis(1600 * u64::from(n))),
        None => Action::Forward,
    });
    let mut command =
        env.command(&["upload", "progress.bin", "progress/progress.bin", "--part-size", PART_SIZE, "--via-worker"]);
    command.args(["--concurrency", "4"]).env("R2MPU_ENDPOINT", &proxy.url);
    let run = Run::of(command).expect(0);
    let lines: Vec<(u64, u64)> = progress_parts(&run.stderr).into_iter().zip(progress_percents(&run.stderr)).collect();
    assert_eq!(lines.first(), Some(&(1, 25)), "{}", run.stderr);
    assert_eq!(lines.last(), Some(&(4, 100)), "{}", run.stderr);
    assert!(lines.iter().all(|&(done, percent)| percent == done * 25), "{}", run.stderr);
    assert!(lines.windows(2).all(|w| w[0].0 < w[1].0), "{}", run.stderr);
    let download = env.run(&["download", "progress/progress.bin", "back.bin"]).expect(0);
    assert!(std::fs::read(env.path("back.bin")).unwrap() == data, "{}", download.stderr);
}

/// The parts in flight of every progress line that follows a measured window (`…, 2 in flight
/// at 9 MiB/s`), in order. A line before the first window's end shows the start (no `at`).
fn measured_levels(stderr: &str) -> Vec<usize> {
    let level = |l: &str| l.split_once(" in flight at ")?.0.rsplit_once(", ")?.1.parse().ok();
    stderr.lines().filter_map(level).collect()
}

/// Issue 20: the adaptive level is the real client's, not only the simulated link's. With no
/// `--concurrency`, an upload on loopback starts with 4 or more parts in flight; the first
/// attempt of each of the first four parts fails (503, retried), so the first window's end
/// halves the level and it stays low, and the last parts went fewer at a time (the proxy counts
/// the part PUTs it was still answering when each arrived). Answers come 0.8 s late, so the
/// upload spans several 2-second windows. The start is read from the proxy, not from the first
/// progress line, which on a busy machine comes after the first window: every part begun
/// before the first answer went out was begun at the start, each in a slot of its own.
#[test]
fn retried_failures_halve_the_parts_in_flight_of_an_adaptive_upload() {
    let env = Env::new("adaptive");
    let parts = 16;
    let (_, data) = env.file("adaptive.bin", parts * PART);
    let proxy = Proxy::start(&env.worker.url, |seen| match (seen.part_number(), seen.earlier) {
        (Some(1..=4), 0) => Action::Fail("503 Service Unavailable"),
        (Some(_), _) => Action::ForwardAfter(std::time::Duration::from_millis(800)),
        // The first round trip as loopback's, however busy the Worker: a start below 16 parts.
        _ if seen.path == "/healthz" => Action::Answer("200 OK"),
        _ => Action::Forward,
    });
    let mut command =
        env.command(&["upload", "adaptive.bin", "adaptive/adaptive.bin", "--part-size", PART_SIZE, "--via-worker"]);
    command.env("R2MPU_ENDPOINT", &proxy.url);
    let run = Run::of(command).expect(0);

    let puts = part_puts(&proxy);
    let first_answer =
        proxy.deliveries().iter().filter(|d| puts.iter().any(|p| p.index == d.index)).map(|d| d.started).min();
    let first_answer = first_answer.expect("parts were answered");
    let begun: std::collections::BTreeSet<u16> =
        puts.iter().filter(|p| p.began < first_answer).filter_map(Seen::part_number).collect();
    let start = begun.len();
    assert!((4..parts).contains(&start), "loopback starts at 4 or more, below {parts}: {begun:?}\n{}", run.stderr);
    assert_eq!(begun.last().map(|&n| usize::from(n)), Some(start), "the start's parts are the first ones");
    // Halved at the first window's end; a busy machine may stretch the upload to the controller's
    // next probe, which adds a quarter of the level (one part here), never back to the start.
    let (halved, most) = (start / 2, start / 2 + (start / 2).div_ceil(4));
    let levels = measured_levels(&run.stderr);
    assert_eq!(levels.first(), Some(&halved), "halved from {start}: {levels:?}\n{}", run.stderr);
    assert!(levels.iter().all(|&l| l <= most), "held low: {levels:?}\n{}", run.stderr);
    assert_eq!(puts.len(), parts + 4, "each part once, and the four failed attempts again");
    let in_flight = |put: &Seen| 1 + put.answering.iter().filter(|&&i| puts.iter().any(|p| p.index == i)).count();
    let last: Vec<usize> = puts[puts.len() - 4..].iter().map(in_flight).collect();
    assert!(last.iter().all(|&n| n <= most), "the last part PUTs went at most {most} at a time: {last:?}");
    let download = env.run(&["download", "adaptive/adaptive.bin", "back.bin"]).expect(0);
    assert!(std::fs::read(env.path("back.bin")).unwrap() == data, "{}", download.stderr);
}

#[test]
fn transient_failures_are_retried_and_the_upload_still_lands_intact() {
    for status in ["503 Service Unavailable", "429 Too Many Requests"] {
        let env = Env::new("flaky");
        let (_, data) = env.file("flaky.bin", 4 * PART);
        // The create fails once, the first two attempts at part 2 and the first at part 3 fail
        // after the whole part was sent. Answers to parts come a second apart, so every progress
        // line is printed.
        let proxy = Proxy::start(&env.worker.url, move |seen| match (seen.part_number(), seen.earlier) {
            (None, 0) if seen.method == "POST" && seen.path == "/uploads" => Action::Fail(status),
            (Some(2), 0 | 1) | (Some(3), 0) => Action::Fail(status),
            (Some(_), _) => Action::ForwardAfter(std::time::Duration::from_millis(1100)),
            _ => Action::Forward,
        });
        let mut command =
            env.command(&["upload", "flaky.bin", "flaky/flaky.bin", "--part-size", PART_SIZE, "--via-worker"]);
        command.args(["--concurrency", "1"]).env("R2MPU_ENDPOINT", &proxy.url);
        let run = Run::of(command).expect(0);
        assert_eq!(run.stderr.lines().filter(|l| l.contains("retrying in")).count(), 4, "{status}: {}", run.stderr);

        // Each attempt sent the part's own bytes; a re-send also tells the server their MD5.
        let attempts: Vec<(u16, Option<String>)> = part_puts(&proxy)
            .iter()
            .map(|p| (p.part_number().unwrap(), p.header("content-md5").map(Into::into)))
            .collect();
        let range = |n: usize| &data[(n - 1) * PART..n * PART];
        let md5 = |n: usize| Some(content_md5(range(n)));
        assert_eq!(
            attempts,
            vec![(1, None), (2, None), (2, md5(2)), (2, md5(2)), (3, None), (3, md5(3)), (4, None)],
            "{status}"
        );
        for put in part_puts(&proxy) {
            let n = usize::from(put.part_number().unwrap());
            assert!(put.body == range(n), "{status}: an attempt at part {n} carried other bytes");
        }
        // The bytes of a failed attempt are not counted twice. When part k is done, at most the
        // next part is in flight: between k and k + 1 quarters of the file have moved. Counting
        // part 2's failed attempts too would put the line after part 2 at 4 quarters.
        let percents = progress_percents(&run.stderr);
        assert_eq!(percents.len(), 4, "{status}: {}", run.stderr);
        for (k, percent) in percents.into_iter().enumerate() {
            let (least, most) = (25 * (k as u64 + 1), (25 * (k as u64 + 2)).min(100));
            assert!((least..=most).contains(&percent), "{status}: after part {}: {percent}%\n{}", k + 1, run.stderr);
        }

        let download = env.run(&["download", "flaky/flaky.bin", "back.bin"]).expect(0);
        assert!(std::fs::read(env.path("back.bin")).unwrap() == data, "{status}: {}", download.stderr);
    }
}

/// Flips the first character of the `"etag"` member of a JSON answer, keeping its length.
fn corrupt_etag(body: &mut [u8]) {
    let at = body.windows(8).position(|w| w == br#""etag":""#).expect("an etag member") + 8;
    body[at] = if body[at] == b'0' { b'1' } else { b'0' };
}

#[test]
fn an_etag_from_r2_that_differs_from_the_md5s_sent_exits_4() {
    let env = Env::new("etag-mismatch");
    env.file("mismatch.bin", PART + 9);
    let proxy = Proxy::start(&env.worker.url, |seen| match seen.path.ends_with("/complete") {
        true => Action::Edit(Box::new(|answer| {
            corrupt_etag(&mut answer.body);
            Fate::Deliver
        })),
        false => Action::Forward,
    });
    let mut command = env.command(&["upload", "mismatch.bin", "etag/mismatch.bin", "--part-size", PART_SIZE]);
    command.env("R2MPU_ENDPOINT", &proxy.url);
    let run = Run::of(command).expect(4);
    assert!(run.error_line().contains("differs from"), "{}", run.stderr);
    assert!(run.error_line().contains("the object is corrupt"), "{}", run.stderr);
}

#[test]
fn a_file_that_changes_during_its_upload_exits_4() {
    let env = Env::new("changing");
    let (path, mut data) = env.file("changing.bin", 3 * PART);
    let proxy = Proxy::start(&env.worker.url, |seen| match seen.part_number() {
        Some(_) => Action::ForwardAfter(std::time::Duration::from_millis(500)),
        None => Action::Forward,
    });
    let mut command =
        env.command(&["upload", "changing.bin", "changing/changing.bin", "--part-size", PART_SIZE, "--via-worker"]);
    command.args(["--concurrency", "1"]).env("R2MPU_ENDPOINT", &proxy.url);
    let running = Running::start(command);
    wait_until("the first part on its way", || !part_puts(&proxy).is_empty());
    // Same size, other bytes in the last part, which is not sent yet.
    data[3 * PART - 1] ^= 0xff;
    fs::write(&path, &data).unwrap();
    let (code, stderr) = running.finish();
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("changed while it was being uploaded"), "{stderr}");
}

/// The upload ID from the `upload ID: …` note of a finished run.
fn upload_id_of(run: &Run) -> String {
    let line = run.stderr.lines().find_map(|line| line.strip_prefix("upload ")?.split_once(':'));
    line.unwrap_or_else(|| panic!("no upload note in\n{}", run.stderr)).0.to_owned()
}

/// Issue 8, item 10: R2's part ETags are the MD5 of the part. One that names other bytes is
/// caught before the part is journaled and before complete could replace an object.
#[test]
fn a_part_etag_that_is_not_the_md5_sent_stops_the_upload_before_complete() {
    let env = Env::new("etag-check");
    let (_, data) = env.file("etag.bin", 3 * PART + 9);
    let proxy = Proxy::start(&env.worker.url, |seen| match (seen.part_number(), seen.earlier) {
        (Some(2), 0) => Action::Edit(Box::new(|answer| {
            if answer.status != 200 {
                return Fate::Deliver;
            }
            let mut part: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
            part["etag"] = "0123456789abcdef0123456789abcdef".into();
            answer.body = serde_json::to_vec(&part).unwrap();
            Fate::Deliver
        })),
        _ => Action::Forward,
    });
    let mut command = env.command(&["upload", "etag.bin", "etag/etag.bin", "--part-size", PART_SIZE, "--via-worker"]);
    command.env("R2MPU_ENDPOINT", &proxy.url);
    let run = Run::of(command).expect(4);
    assert!(run.error_line().contains("part 2"), "{}", run.stderr);
    let id = upload_id_of(&run);
    assert_eq!(env.upload_state(&id).status, UploadStatus::Open, "never completed");
    assert_eq!(env.run(&["ls", "etag/"]).expect(0).stdout, "", "no object was made");

    // The suspect part was not journaled: a rerun sends it again and the object lands whole.
    let mut command = env.command(&["upload", "etag.bin", "etag/etag.bin", "--part-size", PART_SIZE, "--via-worker"]);
    command.env("R2MPU_ENDPOINT", &proxy.url);
    let rerun = Run::of(command).expect(0);
    assert!(rerun.stderr.contains("resumed: "), "{}", rerun.stderr);
    assert_eq!(upload_id_of(&rerun), id, "the same upload, resumed");
    assert_eq!(rerun.field("etag"), multipart_etag(&data, PART));
}

/// Issue 8, item 11: the answer to `POST /uploads` is lost after the server acted on it. The
/// retry carries the same `Idempotency-Key` and gets the same upload, not an orphan.
#[test]
fn a_create_whose_answer_was_lost_is_retried_into_the_same_upload() {
    use std::sync::{Arc, Mutex};
    let env = Env::new("lost-create");
    let (_, data) = env.file("lost.bin", PART + 1);
    let created = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&created);
    let proxy = Proxy::start(&env.worker.url, move |seen| {
        if seen.method != "POST" || seen.path != "/uploads" {
            return Action::Forward;
        }
        let (log, first) = (Arc::clone(&log), seen.earlier == 0);
        Action::Edit(Box::new(move |answer| {
            let upload: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
            log.lock().unwrap().push((answer.status, upload["uploadId"].as_str().unwrap_or("").to_owned()));
            if first {
                Fate::Drop
            } else {
                Fate::Deliver
            }
        }))
    });
    let mut command = env.command(&["upload", "lost.bin", "lost/lost.bin", "--part-size", PART_SIZE]);
    command.env("R2MPU_ENDPOINT", &proxy.url);
    let run = Run::of(command).expect(0);
    assert_eq!(run.field("etag"), multipart_etag(&data, PART));
    let created = created.lock().unwrap().clone();
    assert_eq!(created.len(), 2, "one lost answer, one retry: {created:?}");
    assert_eq!(created[0].0, 201);
    assert_eq!(created[0], created[1], "the retry reached the upload the first attempt created");
    assert_eq!(upload_id_of(&run), created[0].1);
}

/// Issue 8, item 11: a key is the server's text; its last segment names the file only when it
/// is a plain name, whatever `\`, `..` or drive letters the key holds.
#[test]
fn a_download_named_after_its_key_stays_in_the_directory_it_runs_in() {
    let env = Env::new("dl-names");
    let (_, data) = env.file("names.bin", 1000);
    let key = "dl-names\\..\\..\\escape.bin";
    env.run(&["upload", "names.bin", key]).expect(0);
    let inner = env.path("inner");
    fs::create_dir(&inner).unwrap();
    let mut command = env.command(&["download", key]);
    command.current_dir(&inner);
    let run = Run::of(command).expect(0);
    assert_eq!(run.field("file"), "escape.bin");
    assert!(fs::read(inner.join("escape.bin")).unwrap() == data);
    let written: Vec<_> = fs::read_dir(&inner).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(written, ["escape.bin"], "one plain file in the directory, nothing else");
    let mut outside: Vec<_> = fs::read_dir(env.dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    outside.sort();
    assert_eq!(outside, ["inner", "names.bin"], "nothing written beside it");

    // A key that ends in no plain name needs FILE.
    env.run(&["upload", "names.bin", "dl-names/trailing\\"]).expect(0);
    let run = env.run(&["download", "dl-names/trailing\\"]).expect(1);
    assert!(run.error_line().contains("give FILE"), "{}", run.stderr);
}

#[test]
fn ls_follows_the_listing_and_rm_deletes() {
    let env = Env::new("listing");
    let names = ["a.bin", "b.bin", "c.bin", "d.bin", "e.bin"];
    for name in names {
        env.file(name, 3);
        env.run(&["upload", name, &format!("listing/{name}")]).expect(0);
    }
    // Pages of two objects: `ls` must follow the cursor through three of them.
    let proxy = Proxy::start(&env.worker.url, |seen| match seen.path.starts_with("/objects?") {
        true => Action::AppendQuery("&limit=2"),
        false => Action::Forward,
    });
    let ls = |env: &Env| {
        let mut command = env.command(&["ls", "listing/"]);
        command.env("R2MPU_ENDPOINT", &proxy.url);
        Run::of(command).expect(0)
    };
    let run = ls(&env);
    let keys: Vec<&str> = run.stdout.lines().map(|l| l.rsplit('\t').next().unwrap()).collect();
    let expected: Vec<String> = names.iter().map(|n| format!("listing/{n}")).collect();
    assert_eq!(keys, expected);
    let first: Vec<&str> = run.stdout.lines().next().unwrap().split('\t').collect();
    assert_eq!(first[0], "3");
    let pages: Vec<Seen> = proxy.seen().into_iter().filter(|s| s.path.starts_with("/objects?")).collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages[1..].iter().all(|p| p.path.contains("cursor=")), "{pages:?}");

    env.run(&["rm", "listing/b.bin"]).expect(0);
    env.run(&["rm", "listing/b.bin"]).expect(0);
    let run = ls(&env);
    assert_eq!(run.stdout.lines().count(), 4, "{}", run.stdout);
}

#[test]
fn tokens_minted_from_the_private_jwks_are_accepted_with_their_scopes() {
    let env = Env::new("minted");
    let key = env.worker.private_jwks_path();
    let key = key.to_str().unwrap();
    env.file("m.bin", 5);
    for kid in ["test-ed", "test-es", "test-hs"] {
        let run = env.run(&["token", "--key", key, "--kid", kid, "--sub", "minted", "--ttl", "10m"]).expect(0);
        let token = run.stdout.trim();
        env.run_with_token(Some(token), &["upload", "m.bin", "minted/m.bin"]).expect(0);
    }
    let run = env.run(&["token", "--key", key, "--sub", "minted", "--scope", "objects:read"]).expect(0);
    let reader = run.stdout.trim();
    env.run_with_token(Some(reader), &["ls", "minted/"]).expect(0);
    let run = env.run_with_token(Some(reader), &["rm", "minted/m.bin"]).expect(2);
    assert!(run.error_line().contains("403 insufficient_scope"), "{}", run.stderr);
    let run = env.run(&["token", "--key", key, "--sub", "minted", "--prefix", "elsewhere/"]).expect(0);
    let fenced = run.stdout.trim();
    let run = env.run_with_token(Some(fenced), &["upload", "m.bin", "minted/m.bin"]).expect(2);
    assert!(run.error_line().contains("403 key_outside_prefix"), "{}", run.stderr);
}

#[test]
fn keygen_writes_a_private_key_and_prints_its_public_set() {
    let env = Env::new("keygen");
    let run = env.run(&["keygen", "--out", "k.json"]).expect(0);
    let public: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(public["keys"][0]["kty"], "OKP");
    assert!(public["keys"][0].get("d").is_none());
    let private = fs::read_to_string(env.path("k.json")).unwrap();
    assert!(private.contains("\"d\""));
    env.run(&["keygen", "--out", "k.json"]).expect(1);
    env.run(&["token", "--key", "k.json"]).expect(0);
}

/// Issue 11: each transfer thread reuses its connection for its next part; a new one per part
/// would cost a handshake round trip each on a real link. Parts through the Worker: with
/// direct parts, reports go to the Worker from reporter threads of their own, off the senders'
/// connections (cli/src/direct.rs), so the Worker sees more than the senders' three.
#[test]
fn parts_and_ranges_reuse_their_connections() {
    let env = Env::new("keep-alive");
    let (_, data) = env.file("keep.bin", 12 * PART + 3);
    let relay = Relay::start(&env.worker.url);
    let mut command = env.command(&["upload", "keep.bin", "keep/keep.bin", "--part-size", PART_SIZE]);
    command.args(["--concurrency", "3", "--via-worker"]).env("R2MPU_ENDPOINT", &relay.url);
    Run::of(command).expect(0);
    // Create and complete ride on the senders' connections; 13 parts, 3 at a time.
    assert!(relay.connections() <= 3, "{} connections for 13 parts, 3 at a time", relay.connections());

    let relay = Relay::start(&env.worker.url);
    let mut command = env.command(&["download", "keep/keep.bin", "back.bin", "--part-size", PART_SIZE]);
    command.args(["--concurrency", "3"]).env("R2MPU_ENDPOINT", &relay.url);
    Run::of(command).expect(0);
    assert!(relay.connections() <= 3, "{} connections for 13 ranges, 3 at a time", relay.connections());
    assert!(fs::read(env.path("back.bin")).unwrap() == data);
}
