//! The guide's `/{key}?action=` protocol, served from the same route table: its own Python
//! client (`compat/mpuscript.py`, the guide's script with only a bearer header added) uploads
//! against our Worker and the file comes back identical.

mod util;

use std::process::Command;

use r2mpu_testkit::repo_root;
use serde_json::json;
use util::*;

#[test]
fn the_guides_own_client_uploads_a_file_that_comes_back_identical() {
    let worker = Worker::shared();
    let api = Api::of(worker, "guide");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("guide-file.bin");
    let data = random_bytes(2 * 10 * MIB + 12_345, 51); // three 10 MB parts, the last short
    std::fs::write(&file, &data).unwrap();

    let output = Command::new(repo_root().join(".venv/bin/python"))
        .arg(repo_root().join("tests/compat/mpuscript.py"))
        .arg(&file)
        .env("WORKER_ENDPOINT", format!("{}/", worker.url))
        .env("TOKEN", api.token.as_deref().unwrap())
        .output()
        .expect("python (run `make install`)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("successfully completed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let via_action = api.send("GET", "/guide-file.bin?action=get", &[], None);
    assert_eq!(via_action.status, 200);
    assert!(via_action.body == data, "?action=get returned other bytes");
    assert_eq!(via_action.header("etag"), Some(format!("\"{}\"", multipart_etag(&data, 10 * MIB)).as_str()));
    assert!(api.object("guide-file.bin", &[]).body == data, "the REST API sees the same object");
}

#[test]
fn the_guides_protocol_shares_auth_state_and_validation_with_the_rest_api() {
    let worker = Worker::shared();
    let api = Api::of(worker, "guide-rules");
    let created = api.send("POST", "/guide/a.bin?action=mpu-create", &[], None);
    assert_eq!(created.status, 200);
    let id = created.json()["uploadId"].as_str().unwrap().to_string();
    assert_eq!(created.json()["key"], "guide/a.bin");

    // The upload is an ordinary upload: the REST API sees it.
    assert_eq!(api.state(&id).json()["key"], "guide/a.bin");
    let part = |n: &str, bytes: &[u8]| {
        api.send("PUT", &format!("/guide/a.bin?action=mpu-uploadpart&uploadId={id}&partNumber={n}"), &[], Some(bytes))
    };
    let first = part("1", &random_bytes(PART, 1));
    assert_eq!(first.status, 200);
    assert_eq!(first.json().as_object().unwrap().len(), 2, "exactly {{partNumber, etag}}: {}", first.json());
    part("0", b"x").assert_problem(400, "invalid_part_number");
    api.send("PUT", &format!("/other/key?action=mpu-uploadpart&uploadId={id}&partNumber=2"), &[], Some(b"x"))
        .assert_problem(404, "upload_not_found");
    Api::of(worker, "someone-else")
        .send("PUT", &format!("/guide/a.bin?action=mpu-uploadpart&uploadId={id}&partNumber=2"), &[], Some(b"x"))
        .assert_problem(404, "upload_not_found");
    Api::new(worker, None)
        .send("POST", "/guide/b.bin?action=mpu-create", &[], None)
        .assert_problem(401, "missing_token");
    api.send(
        "POST",
        "/guide/a.bin?action=mpu-complete",
        &[("content-type", "application/json")],
        Some(b"{\"parts\":[]}"),
    )
    .assert_problem(400, "invalid_request");

    assert_eq!(api.send("DELETE", &format!("/guide/a.bin?action=mpu-abort&uploadId={id}"), &[], None).status, 204);
    assert_eq!(api.state(&id).json()["status"], "aborted");
    api.send("GET", "/guide/a.bin", &[], None).assert_problem(404, "not_found");

    api.upload("guide/c.bin", b"bytes", PART);
    assert_eq!(api.send("DELETE", "/guide/c.bin?action=delete", &[], None).status, 204);
    api.object("guide/c.bin", &[]).assert_problem(404, "object_not_found");
}

#[test]
fn the_guides_protocol_can_be_switched_off() {
    let worker = Worker::start_with(Options { vars: vec![("ACTION_PROTOCOL".into(), "off".into())] });
    let api = Api::of(&worker, "guide-off");
    api.send("POST", "/x.bin?action=mpu-create", &[], None).assert_problem(404, "not_found");
    assert_eq!(api.create(json!({"key": "x.bin"})).status, 201, "the REST API is unaffected");
}
