//! Issue #12: `r2mpu uploads`, `r2mpu abort --key`, and resuming an upload on another machine
//! (no local record), against a real `wrangler dev`.

mod util;

use std::fs;

use r2mpu_api::types::{UploadStatus, UploadSummary};
use util::{multipart_etag, wait_until, Env, Run, Running, Worker, PART};

const PART_SIZE: &str = "5MiB";

/// Starts uploading `name` one part at a time, with `Content-MD5` so that the server records
/// every part's MD5, and SIGKILLs the CLI once the server holds at least `parts` parts.
/// Returns the upload ID.
fn start_and_kill(env: &Env, name: &str, key: &str, parts: usize) -> String {
    start_and_kill_in(env, name, key, parts, PART_SIZE)
}

/// [`start_and_kill`] in parts of `part_size`.
fn start_and_kill_in(env: &Env, name: &str, key: &str, parts: usize, part_size: &str) -> String {
    let args = ["upload", name, key, "--part-size", part_size, "--concurrency", "1", "--verify-parts"];
    let mut running = Running::start(env.command(&args));
    let id = running.upload_id();
    wait_until("parts on the server", || env.upload_state(&id).parts.len() >= parts);
    assert!(running.kill(), "the upload finished before it could be killed; make the file larger");
    // The part in flight at the kill may still land (and be logged) seconds later on a busy
    // machine: wait until neither the parts nor the log have changed for five seconds.
    let settled = || (part_puts(env.worker, &id), env.upload_state(&id).parts.len());
    let mut last = (usize::MAX, usize::MAX);
    while settled() != last {
        last = settled();
        std::thread::sleep(std::time::Duration::from_secs(5));
    }
    id
}

/// How many part PUTs of `upload_id` the Worker has logged, whatever their outcome (its
/// structured log, src/http/log.rs).
fn part_puts(worker: &Worker, upload_id: &str) -> usize {
    let records = worker.log_records().into_iter();
    records
        .filter(|line| line["route"] == "/uploads/{uploadId}/parts/{partNumber}" && line["uploadId"] == upload_id)
        .count()
}

fn note_number(stderr: &str, prefix: &str, word: usize) -> usize {
    let line = stderr.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no `{prefix}` in\n{stderr}"));
    line.split_whitespace().nth(word).unwrap().parse().unwrap()
}

#[test]
fn an_upload_started_elsewhere_resumes_without_a_local_record_sending_only_what_is_missing() {
    let env = Env::new("elsewhere");
    let (_, data) = env.file("big.bin", 12 * PART + 3);
    let id = start_and_kill(&env, "big.bin", "elsewhere/big.bin", 3);
    let held = env.upload_state(&id).parts.len();

    // Another machine: its own copy of the file, with part 2 changed (same size), and no
    // resume records at all.
    let other = tempfile::tempdir().unwrap();
    let mut copy = data.clone();
    copy[PART + 10] ^= 0xff;
    fs::write(other.path().join("big.bin"), &copy).unwrap();
    let puts_before = part_puts(env.worker, &id);
    let mut command = env.command(&["upload", "big.bin", "elsewhere/big.bin", "--part-size", PART_SIZE]);
    command.current_dir(other.path()).env("R2MPU_STATE_DIR", other.path().join("state"));
    let run = Run::of(command).expect(0);

    assert!(run.stderr.contains(&format!("found upload {id} of elsewhere/big.bin")), "{}", run.stderr);
    // Every part the server held matched the file but part 2, which is sent again.
    let matching = note_number(&run.stderr, "found upload ", 8);
    assert_eq!((matching, note_number(&run.stderr, "found upload ", 11)), (held - 1, held), "{}", run.stderr);
    assert_eq!(note_number(&run.stderr, "resumed: ", 1), held - 1, "{}", run.stderr);
    let sent = note_number(&run.stderr, "sent: ", 1);
    assert_eq!(sent, 13 - (held - 1), "{}", run.stderr);
    wait_until("the Worker logged every PUT", || part_puts(env.worker, &id) >= puts_before + sent);
    assert_eq!(part_puts(env.worker, &id) - puts_before, sent, "PUTs the Worker saw");
    assert_eq!(run.field("etag"), multipart_etag(&copy, PART), "the object is the second machine's file");
    assert_eq!(env.upload_state(&id).status, UploadStatus::Completed);
}

#[test]
fn an_upload_started_elsewhere_in_other_parts_than_this_machines_default_still_resumes() {
    // The default part size depends on the link, so another machine may have picked another.
    let env = Env::new("other-parts");
    let (_, data) = env.file("o.bin", 12 * PART + 3);
    let id = start_and_kill_in(&env, "o.bin", "other-parts/o.bin", 2, "6MiB");
    fs::remove_dir_all(env.state.path()).unwrap();
    let held = env.upload_state(&id).parts.len();
    let puts_before = part_puts(env.worker, &id);

    let run = env.run(&["upload", "o.bin", "other-parts/o.bin"]).expect(0);
    assert!(run.stderr.contains(&format!("found upload {id} of other-parts/o.bin")), "{}", run.stderr);
    // The server's parts (6 MiB, not this machine's default) are taken, not sent again.
    assert_eq!(note_number(&run.stderr, "found upload ", 8), held, "every held part matches: {}", run.stderr);
    assert_eq!(note_number(&run.stderr, "resumed: ", 1), held, "{}", run.stderr);
    let parts = (12 * PART + 3).div_ceil(6 * util::MIB);
    let sent = note_number(&run.stderr, "sent: ", 1);
    assert_eq!(sent, parts - held, "only the missing parts are sent: {}", run.stderr);
    wait_until("the Worker logged every PUT", || part_puts(env.worker, &id) >= puts_before + sent);
    assert_eq!(part_puts(env.worker, &id) - puts_before, sent, "PUTs the Worker saw");
    assert_eq!(run.field("etag"), multipart_etag(&data, 6 * util::MIB));
    assert_eq!(env.upload_state(&id).status, UploadStatus::Completed);
}

#[test]
fn restart_starts_a_new_upload_instead_of_resuming_the_listed_one() {
    let env = Env::new("restart");
    let (_, data) = env.file("r.bin", 12 * PART);
    let old = start_and_kill(&env, "r.bin", "restart/r.bin", 1);
    fs::remove_dir_all(env.state.path()).unwrap();

    let run = env.run(&["upload", "r.bin", "restart/r.bin", "--part-size", PART_SIZE, "--restart"]).expect(0);
    assert!(!run.stderr.contains("found upload") && !run.stderr.contains("resumed"), "{}", run.stderr);
    assert_eq!(note_number(&run.stderr, "sent: ", 1), 12);
    assert_eq!(run.field("etag"), multipart_etag(&data, PART));
    assert_eq!(env.upload_state(&old).status, UploadStatus::Open, "the other upload is left alone");
}

#[test]
fn uploads_lists_what_is_unfinished_and_abort_by_key_clears_it() {
    let env = Env::new("unfinished");
    env.file("u.bin", 12 * PART);
    env.file("done.bin", 3);
    let id = start_and_kill(&env, "u.bin", "unfinished/u.bin", 2);
    env.run(&["upload", "done.bin", "unfinished/done.bin"]).expect(0);

    // Not a terminal: tab-separated, no header.
    let run = env.run(&["uploads", "unfinished/"]).expect(0);
    let lines: Vec<Vec<&str>> = run.stdout.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 1, "the completed upload is not listed:\n{}", run.stdout);
    assert_eq!(&lines[0][..3], [id.as_str(), "unfinished/u.bin", "open"]);
    assert!(lines[0][3].ends_with("/12"), "parts of 12: {}", run.stdout);

    let run = env.run(&["uploads", "--json"]).expect(0);
    let listed: Vec<UploadSummary> = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].upload_id.as_str(), listed[0].size), (id.as_str(), Some(12 * PART as u64)));
    assert!(listed[0].parts >= 2 && listed[0].bytes == u64::from(listed[0].parts) * PART as u64);

    env.run(&["abort", "--key", "unfinished/u.bin"]).expect(0);
    assert_eq!(env.upload_state(&id).status, UploadStatus::Aborted);
    assert_eq!(env.run(&["uploads"]).expect(0).stdout, "");
    let run = env.run(&["abort", "--key", "unfinished/u.bin"]).expect(1);
    assert!(run.error_line().contains("no unfinished upload"), "{}", run.stderr);
}

#[test]
fn the_server_records_part_md5s_only_for_parts_sent_with_content_md5() {
    let env = Env::new("recorded-md5");
    let (_, data) = env.file("m.bin", 2 * PART + 3);
    for (flags, checked) in [(&["--verify-parts"][..], true), (&[][..], false)] {
        let mut args = vec!["upload", "m.bin", "recorded-md5/m.bin", "--part-size", PART_SIZE];
        args.extend(flags);
        let run = env.run(&args).expect(0);
        assert_eq!(run.field("etag"), multipart_etag(&data, PART));
        let note = run.stderr.lines().find(|l| l.starts_with("upload ")).expect("the upload note");
        let id = note.split_whitespace().nth(1).unwrap().trim_end_matches(':').to_string();
        let parts = env.upload_state(&id).parts;
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.md5.is_some() == checked), "{flags:?}: {parts:?}");
    }
}
