//! Issue 21: the S3 surface (`/s3`) and its credentials (`POST /credentials`), driven by real S3
//! clients (boto3 and aws-cli from PyPI) against a real `wrangler dev`.

mod util;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Once;

use jwt_simple::prelude::Duration;
use r2mpu_testkit::repo_root;
use serde_json::Value;
use util::{claims, Api, Worker};

/// The `r2mpu` CLI, built once per test binary.
fn cli() -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let status = Command::new("cargo").args(["build", "--quiet", "-p", "r2mpu"]).current_dir(repo_root()).status();
        assert!(status.expect("cargo").success(), "building the CLI failed");
    });
    repo_root().join("target/debug/r2mpu")
}

fn credentials(worker: &Worker, token: &str) -> Value {
    let reply = Api::new(worker, Some(token.to_string())).send("POST", "/credentials", &[], None);
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()
}

#[test]
fn credentials_carry_the_token_expire_with_it_and_are_stored_nowhere() {
    let worker = Worker::shared();
    let mut claims = claims("s3-creds", &["objects:read"]);
    claims.expires_at = Some(Duration::from_secs(4_102_444_800)); // 2100-01-01T00:00:00Z
    let token = worker.sign(claims);
    let json = credentials(worker, &token);
    assert_eq!(json["Version"], 1);
    assert_eq!(json["SessionToken"], token.as_str());
    assert_eq!(json["Expiration"], "2100-01-01T00:00:00.000Z");
    let key = json["AccessKeyId"].as_str().unwrap();
    assert!(key.starts_with("R2MPU") && key.len() == 20, "{key}");
    assert_eq!(json["SecretAccessKey"].as_str().unwrap().len(), 40);
    // A function of the token alone: the same again, another for another token.
    assert_eq!(credentials(worker, &token), json);
    let other = credentials(worker, &worker.token("s3-creds", &["objects:read"]));
    assert_ne!(other["SecretAccessKey"], json["SecretAccessKey"]);

    Api::new(worker, None).send("POST", "/credentials", &[], None).assert_problem(401, "missing_token");
    let mut expired = util::claims("s3-creds", &["objects:read"]);
    expired.expires_at = Some(Duration::from_secs(1_000_000_000));
    Api::new(worker, Some(worker.sign(expired)))
        .send("POST", "/credentials", &[], None)
        .assert_problem(401, "invalid_token");
}

#[test]
fn the_cli_prints_the_credentials_for_credential_process() {
    let worker = Worker::shared();
    let token = worker.token("s3-cli", &["uploads:write"]);
    let output = Command::new(cli())
        .arg("credentials")
        .env("R2MPU_ENDPOINT", &worker.url)
        .env("R2MPU_TOKEN", &token)
        .output()
        .expect("r2mpu");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, credentials(worker, &token));
}

/// The venv's Python, for boto3 and aws-cli (`python -m awscli`).
fn python() -> PathBuf {
    repo_root().join(".venv/bin/python")
}

/// A command for a real S3 client: no `AWS_*` settings of this machine (a CA bundle, a
/// profile) leak in; its config and home are `dir`'s.
fn s3_client(program: PathBuf, dir: &std::path::Path) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            command.env_remove(&name);
        }
    }
    command
        .env("HOME", dir)
        .env("AWS_CONFIG_FILE", dir.join("aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("aws-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .current_dir(dir);
    command
}

fn run_ok(command: &mut Command) -> String {
    let output = command.output().expect("running an S3 client");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{command:?} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

fn bucket_url(worker: &Worker) -> String {
    format!("{}/s3", worker.url)
}

#[test]
fn boto3_uploads_in_parts_and_downloads_byte_identical_with_credentials_from_the_worker() {
    let worker = Worker::shared();
    let owner = Api::of(worker, "s3-boto");
    let token = worker.token("s3-boto", util::ALL_SCOPES);
    let dir = tempfile::tempdir().unwrap();
    let data = util::random_bytes(3 * util::PART + 1234, 21);
    std::fs::write(dir.path().join("up.bin"), &data).unwrap();
    let key = "s3-boto/ünï code+plus.bin";
    let creds = credentials(worker, &token).to_string();
    let script = repo_root().join("tests/s3/boto_round_trip.py");
    let out = run_ok(s3_client(python(), dir.path()).arg(script).args([
        &bucket_url(worker),
        "r2mpu",
        &creds,
        "up.bin",
        key,
        "down.bin",
    ]));
    let result: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(std::fs::read(dir.path().join("down.bin")).unwrap() == data, "the download differs");
    assert_eq!(result["etag"], format!("\"{}\"", util::multipart_etag(&data, util::PART)), "4 parts of 5 MiB");
    assert_eq!(result["size"], data.len());
    assert_eq!(result["listed"], serde_json::json!([key]));
    assert_eq!(result["buckets"], serde_json::json!(["r2mpu"]));
    // The same object over REST.
    let reply = owner.object(key, &[]);
    assert!(reply.status == 200 && reply.body == data);
}

/// Over https botocore sends every part (and PutObject) as aws-chunked with a CRC32 trailer: the
/// Worker decodes it as it streams, R2 gets the decoded length, and a body whose bytes do not
/// match its trailer is refused before R2 has all of it (BadDigest, nothing stored).
#[test]
fn boto3_over_https_sends_aws_chunked_parts_with_a_crc_trailer_and_a_bad_trailer_stores_nothing() {
    let worker = Worker::start_https(util::Options::default());
    let token = worker.token("s3-chunked", util::ALL_SCOPES);
    let dir = tempfile::tempdir().unwrap();
    let data = util::random_bytes(3 * util::PART + 4321, 2124);
    std::fs::write(dir.path().join("up.bin"), &data).unwrap();
    let creds = credentials_over_curl(&worker, &token);
    let script = repo_root().join("tests/s3/boto_chunked.py");
    let out = run_ok(s3_client(python(), dir.path()).arg(script).args([
        &bucket_url(&worker),
        "r2mpu",
        &creds,
        "up.bin",
        "s3-chunked/parts.bin",
        "down.bin",
    ]));
    let out: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(std::fs::read(dir.path().join("down.bin")).unwrap() == data, "the download differs");
    assert_eq!(out["etag"], format!("\"{}\"", util::multipart_etag(&data, util::PART)), "4 parts of 5 MiB: {out}");
    assert_eq!(out["size"], data.len());
    let parts = out["parts_sent"].as_array().unwrap();
    assert_eq!(parts.len(), 4, "{out}");
    for part in parts {
        assert_eq!(part["sha256"], "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "{part}");
        assert_eq!(part["trailer"], "x-amz-checksum-crc32", "{part}");
        assert_eq!(part["encoding"], "aws-chunked", "{part}");
    }
    assert_eq!(out["bad_put"], "BadDigest", "{out}");
    assert_eq!(out["bad_put_stored"], "404", "no object: {out}");
    assert_eq!(out["bad_part"], "BadDigest", "{out}");
    assert_eq!(out["bad_parts_listed"], 0, "no part recorded: {out}");
}

/// `POST /credentials` over https (the test's own HTTP client speaks no TLS).
fn credentials_over_curl(worker: &Worker, token: &str) -> String {
    let output = Command::new("curl")
        .args(["-ksf", "-X", "POST", "-H"])
        .arg(format!("authorization: Bearer {token}"))
        .arg(format!("{}/credentials", worker.url))
        .output()
        .expect("curl");
    assert!(output.status.success(), "POST /credentials over https: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// ListMultipartUploads answers from the caller's upload index, as `GET /uploads` does: an
/// upload begun over S3 and one begun over REST are both listed, `prefix` narrows them.
#[test]
fn boto3_lists_multipart_uploads_begun_over_s3_and_over_rest() {
    let worker = Worker::shared();
    let owner = Api::of(worker, "s3-list");
    let rest = owner.create_id(serde_json::json!({ "key": "s3-list/rest-made.bin" }));
    let creds = credentials(worker, &worker.token("s3-list", util::ALL_SCOPES)).to_string();
    let dir = tempfile::tempdir().unwrap();
    let script = repo_root().join("tests/s3/list_uploads.py");
    let out =
        run_ok(s3_client(python(), dir.path()).arg(script).args([&bucket_url(worker), "r2mpu", &creds, "s3-list/"]));
    let out: Value = serde_json::from_str(out.trim()).unwrap();
    let made = out["made"].as_str().unwrap();
    assert_eq!(
        out["all"],
        serde_json::json!([["s3-list/rest-made.bin", rest], ["s3-list/s3-made.bin", made]]),
        "{out}"
    );
    assert_eq!(out["rest"], serde_json::json!([["s3-list/rest-made.bin", rest]]), "{out}");
}

/// GetObject's `Range`, and the conditionals of GetObject and HeadObject: `If-Match` and
/// `If-Unmodified-Since` failing are `412`, `If-None-Match` matching and `If-Modified-Since`
/// with no change since are `304`.
#[test]
fn boto3_reads_a_range_and_each_conditional_answers_304_or_412() {
    let worker = Worker::shared();
    let creds = credentials(worker, &worker.token("s3-cond", util::ALL_SCOPES)).to_string();
    let dir = tempfile::tempdir().unwrap();
    let script = repo_root().join("tests/s3/conditionals.py");
    let out = run_ok(s3_client(python(), dir.path()).arg(script).args([
        &bucket_url(worker),
        "r2mpu",
        &creds,
        "s3-cond/object.bin",
    ]));
    let out: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(out["range"], serde_json::json!((5..15).collect::<Vec<u8>>()));
    assert_eq!(out["content_range"], "bytes 5-14/1024");
    assert_eq!(out["range_status"], 206);
    let expected = serde_json::json!({
        "if_match": 200, "if_match_other": 412, "if_none_match": 304, "if_none_match_other": 200,
        "if_modified_since_later": 304, "if_modified_since_earlier": 200,
        "if_unmodified_since_earlier": 412, "if_unmodified_since_later": 200,
    });
    assert_eq!(out["get"], expected, "GetObject: {out}");
    assert_eq!(out["head"], expected, "HeadObject: {out}");
}

/// Credentials as the Worker derives them, for a token `/credentials` would refuse.
fn derived(token: &str) -> Value {
    let derived = r2mpu_worker::protocols::s3::credentials::derive(r2mpu_testkit::S3_CREDENTIALS_KEY.as_bytes(), token);
    serde_json::json!({
        "AccessKeyId": derived.access_key_id, "SecretAccessKey": derived.secret_access_key, "SessionToken": token,
    })
}

#[test]
fn refusals_carry_s3s_codes_and_store_nothing() {
    let worker = Worker::shared();
    let sign = |sub: &str, scopes: &[&str], prefix: Option<&str>, expires: Option<u64>| {
        let mut claims = claims(sub, scopes);
        claims.custom.prefix = prefix.map(str::to_string);
        if let Some(expires) = expires {
            claims.expires_at = Some(Duration::from_secs(expires));
        }
        worker.sign(claims)
    };
    let good = sign("s3-refuse", util::ALL_SCOPES, Some("s3-refuse/"), None);
    let settings = serde_json::json!({
        "endpoint": bucket_url(worker),
        "bucket": "r2mpu",
        "good": credentials(worker, &good),
        "expired": derived(&sign("s3-refuse", util::ALL_SCOPES, None, Some(1_000_000_000))),
        "read_only": credentials(worker, &sign("s3-refuse", &["objects:read"], Some("s3-refuse/"), None)),
        "other": credentials(worker, &sign("s3-refuse-other", util::ALL_SCOPES, None, None)),
    });
    let dir = tempfile::tempdir().unwrap();
    let script = repo_root().join("tests/s3/refusals.py");
    let out = run_ok(s3_client(python(), dir.path()).arg(script).arg(settings.to_string()));
    let out: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        out["results"],
        serde_json::json!({
            "tampered": "SignatureDoesNotMatch",
            "wrong_secret": "SignatureDoesNotMatch",
            "expired": "ExpiredToken",
            "outside_prefix": "AccessDenied",
            "read_only_writing": "AccessDenied",
            "unknown_bucket": "NoSuchBucket",
            "other_subjects_upload": "NoSuchUpload",
            "sha256_put": "XAmzContentSHA256Mismatch",
            "sha256_part": "XAmzContentSHA256Mismatch",
            "presigned_altered": "SignatureDoesNotMatch",
        })
    );
    assert_eq!(out["made"]["presigned_body"], "presigned bytes");
    // Nothing of any refused request was stored.
    let owner = Api::with_token(&Api::new(worker, None), &good);
    for key in ["tampered", "wrong", "expired", "read-only", "nope", "altered"] {
        owner.object(&format!("s3-refuse/{key}"), &[]).assert_problem(404, "object_not_found");
    }
    let everyone = Api::of(worker, "s3-refuse");
    everyone.object("elsewhere/x", &[]).assert_problem(404, "object_not_found");
    let upload = owner.state(out["made"]["upload_id"].as_str().unwrap());
    assert_eq!(upload.status, 200);
    assert_eq!(upload.json()["parts"], serde_json::json!([]), "neither the other subject's part nor the altered one");
    // An upload begun over S3 is an r2mpu upload: listed with the others.
    let listed = owner.send("GET", "/uploads", &[], None).json();
    let ids: Vec<&str> =
        listed["uploads"].as_array().unwrap().iter().map(|u| u["uploadId"].as_str().unwrap()).collect();
    assert!(ids.contains(&out["made"]["upload_id"].as_str().unwrap()), "{listed}");
}

#[test]
fn aws_cli_copies_up_and_down_in_parts_with_credential_process_r2mpu_credentials() {
    let worker = Worker::shared();
    let token = worker.token("s3-awscli", util::ALL_SCOPES);
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[default]\nregion = auto\ncredential_process = {} credentials\nrequest_checksum_calculation = when_required\ns3 =\n  addressing_style = path\n",
        cli().display()
    );
    std::fs::write(dir.path().join("aws-config"), config).unwrap();
    // Above aws-cli's 8 MiB multipart threshold: three parts of 8, 8 and 1 MiB.
    let data = util::random_bytes(17 * util::MIB, 2121);
    std::fs::write(dir.path().join("up.bin"), &data).unwrap();
    let aws = |args: &[&str]| {
        let mut command = s3_client(python(), dir.path());
        command.args(["-m", "awscli"]).args(args).args(["--endpoint-url", &bucket_url(worker)]);
        command.env("R2MPU_ENDPOINT", &worker.url).env("R2MPU_TOKEN", &token);
        run_ok(&mut command)
    };
    aws(&["s3", "cp", "up.bin", "s3://r2mpu/s3-awscli/big.bin"]);
    aws(&["s3", "cp", "s3://r2mpu/s3-awscli/big.bin", "down.bin"]);
    assert!(std::fs::read(dir.path().join("down.bin")).unwrap() == data, "the download differs");
    let head: Value =
        serde_json::from_str(&aws(&["s3api", "head-object", "--bucket", "r2mpu", "--key", "s3-awscli/big.bin"]))
            .unwrap();
    assert_eq!(head["ETag"], format!("\"{}\"", util::multipart_etag(&data, 8 * util::MIB)), "three parts");
    let listed = aws(&["s3", "ls", "s3://r2mpu/s3-awscli/"]);
    assert!(listed.contains("big.bin") && listed.contains(&data.len().to_string()), "{listed}");
}

#[test]
fn lib_storage_uploads_parts_in_parallel_and_get_object_reads_them_back() {
    let worker = Worker::shared();
    let token = worker.token("s3-js", util::ALL_SCOPES);
    let dir = tempfile::tempdir().unwrap();
    let data = util::random_bytes(4 * util::PART + 99, 2122);
    std::fs::write(dir.path().join("up.bin"), &data).unwrap();
    let key = "s3-js/lib storage.bin";
    let mut command = s3_client(repo_root().join("node_modules/.bin/node"), dir.path());
    command
        .arg(repo_root().join("tests/s3/lib_storage.mjs"))
        .args(["up.bin", key, "down.bin"])
        .env("NODE_PATH", repo_root().join("node_modules"))
        .env("S3_ENDPOINT", bucket_url(worker))
        .env("S3_BUCKET", "r2mpu")
        .env("S3_CREDENTIALS", credentials(worker, &token).to_string());
    let out: Value = serde_json::from_str(run_ok(&mut command).trim()).unwrap();
    assert!(std::fs::read(dir.path().join("down.bin")).unwrap() == data, "the download differs");
    assert_eq!(out["etag"], format!("\"{}\"", util::multipart_etag(&data, util::PART)), "{out}");
    assert!(out["mostInFlight"].as_u64().unwrap() > 1, "parts went one at a time: {out}");
}

#[test]
fn rclone_copies_to_and_from_the_bucket_in_parts_byte_identical() {
    let worker = Worker::shared();
    let token = worker.token("s3-rclone", util::ALL_SCOPES);
    let creds = credentials(worker, &token);
    let dir = tempfile::tempdir().unwrap();
    let data = util::random_bytes(2 * util::PART + 7, 2123);
    std::fs::write(dir.path().join("up.bin"), &data).unwrap();
    let rclone = |args: &[&str]| {
        let mut command = s3_client(PathBuf::from("rclone"), dir.path());
        let field = |name: &str| creds[name].as_str().unwrap().to_string();
        command
            .args(args)
            .args(["--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", "--s3-list-version", "2"])
            .args(["--retries", "1", "--low-level-retries", "1", "--config", "/dev/null"])
            .env("RCLONE_CONFIG_R2MPU_TYPE", "s3")
            .env("RCLONE_CONFIG_R2MPU_PROVIDER", "Other")
            .env("RCLONE_CONFIG_R2MPU_ENDPOINT", bucket_url(worker))
            .env("RCLONE_CONFIG_R2MPU_REGION", "auto")
            .env("RCLONE_CONFIG_R2MPU_FORCE_PATH_STYLE", "true")
            .env("RCLONE_CONFIG_R2MPU_NO_CHECK_BUCKET", "true")
            .env("RCLONE_CONFIG_R2MPU_ACCESS_KEY_ID", field("AccessKeyId"))
            .env("RCLONE_CONFIG_R2MPU_SECRET_ACCESS_KEY", field("SecretAccessKey"))
            .env("RCLONE_CONFIG_R2MPU_SESSION_TOKEN", field("SessionToken"));
        run_ok(&mut command)
    };
    rclone(&["copyto", "up.bin", "r2mpu:r2mpu/s3-rclone/copied.bin"]);
    // rclone signs `Accept-Encoding: gzip`, which arrives as `br, gzip`.
    rclone(&["copyto", "r2mpu:r2mpu/s3-rclone/copied.bin", "down.bin"]);
    assert!(std::fs::read(dir.path().join("down.bin")).unwrap() == data, "the download differs");
    let etag = Api::of(worker, "s3-rclone").object("s3-rclone/copied.bin", &[]).header("etag").map(str::to_string);
    assert_eq!(etag, Some(format!("\"{}\"", util::multipart_etag(&data, util::PART))), "uploaded in three parts");
}
