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
