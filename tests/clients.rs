//! openapi.yaml is the contract: it is valid OpenAPI, clients generated from it by standard
//! generators do whole uploads against the real Worker, and the live Worker conforms to it.
//! The Python tools come from `.venv` (scripts/install.sh, pinned in tests/requirements.txt),
//! the TypeScript ones from `node_modules` (pinned in package.json).

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use r2mpu_testkit::repo_root;
use util::*;

fn venv(tool: &str) -> PathBuf {
    repo_root().join(".venv/bin").join(tool)
}

#[track_caller]
fn run(command: &mut Command) -> Output {
    let output =
        command.current_dir(repo_root()).output().unwrap_or_else(|e| panic!("{command:?}: {e} (run `make install`)"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn the_spec_is_valid_openapi() {
    run(Command::new(venv("openapi-spec-validator")).arg("openapi.yaml"));
}

/// Generates the Python client into `dir` and returns the directory to put on PYTHONPATH.
fn generate_python_client(dir: &Path) -> PathBuf {
    run(Command::new(venv("openapi-python-client"))
        .args([
            "generate",
            "--path",
            "openapi.yaml",
            "--overwrite",
            "--config",
            "tests/clients/openapi-python-client.yaml",
        ])
        .arg("--output-path")
        .arg(dir.join("client")));
    dir.join("client")
}

/// Runs a generated-client script (`FILE KEY OUT`, env `R2MPU_URL`, `R2MPU_TOKEN`,
/// `PART_SIZE`) on three parts of random data and checks that the download is the upload and
/// that the script saw R2's multipart ETag.
fn round_trip_through(client: &mut Command, key: &str, seed: u64) {
    let worker = Worker::shared();
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(2 * PART + 4321, seed);
    let (file, out) = (dir.path().join("in.bin"), dir.path().join("out.bin"));
    std::fs::write(&file, &data).unwrap();
    let output = run(client
        .arg(&file)
        .arg(key)
        .arg(&out)
        .env("R2MPU_URL", &worker.url)
        .env("R2MPU_TOKEN", worker.token("generated-client", ALL_SCOPES))
        .env("PART_SIZE", PART.to_string()));
    assert!(std::fs::read(&out).unwrap() == data, "the downloaded bytes differ");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("etag={}", multipart_etag(&data, PART))), "{stdout}");
}

#[test]
fn a_generated_python_client_uploads_and_downloads_a_file_intact() {
    let dir = tempfile::tempdir().unwrap();
    let client = generate_python_client(dir.path());
    let mut script = Command::new(venv("python"));
    script.arg("tests/clients/python_upload.py").env("PYTHONPATH", &client);
    round_trip_through(&mut script, "generated/python/ünï code.bin", 41);
}

/// A tool from `node_modules` (not `npx`, which may fetch what is missing).
fn node_tool(tool: &str) -> PathBuf {
    repo_root().join("node_modules/.bin").join(tool)
}

/// Generates the TypeScript types into `dir` (schema.d.ts), type-checks
/// tests/clients/ts_upload.ts against them and bundles it for node; returns the bundle.
fn build_typescript_client(dir: &Path) -> PathBuf {
    run(Command::new(node_tool("openapi-typescript")).arg("openapi.yaml").arg("-o").arg(dir.join("schema.d.ts")));
    let config = serde_json::json!({ "extends": repo_root().join("tests/clients/tsconfig.json") });
    std::fs::write(dir.join("tsconfig.json"), config.to_string()).unwrap();
    run(Command::new(node_tool("tsc")).arg("--project").arg(dir).args(["--noEmit", "--strict"]));
    let bundle = dir.join("ts_upload.mjs");
    run(Command::new(node_tool("esbuild"))
        .args(["tests/clients/ts_upload.ts", "--bundle", "--platform=node", "--format=esm", "--log-level=warning"])
        .arg(format!("--outfile={}", bundle.display())));
    bundle
}

#[test]
fn a_generated_typescript_client_uploads_and_downloads_a_file_intact() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = build_typescript_client(dir.path());
    round_trip_through(Command::new("node").arg(&bundle), "generated/typescript/ünï code.bin", 43);
}

/// Every answer the live Worker gives to schemathesis' generated requests (valid and invalid)
/// is declared by the spec, with the declared status, headers, content type and schema, and
/// none is a 5xx; and every operation but the public ones refuses a request stripped of its
/// token (`ignored_auth`). Every check runs but these, each for its reason:
const SCHEMATHESIS_EXCLUDED: &[(&str, &str)] = &[
    (
        "positive_data_acceptance",
        "expects every schema-valid body to succeed, but a part of the wrong length for its upload's \
         layout, or a complete of an upload with parts missing, is schema-valid yet refused (400)",
    ),
    (
        "use_after_free",
        "expects 404 after DELETE, but an aborted upload stays readable as `aborted` until its record expires",
    ),
];

#[test]
fn the_live_worker_conforms_to_the_spec_under_schemathesis() {
    let worker = Worker::shared();
    let token = worker.token("schemathesis", ALL_SCOPES);
    let excluded: Vec<&str> = SCHEMATHESIS_EXCLUDED.iter().map(|(check, _)| *check).collect();
    run(Command::new(venv("schemathesis"))
        .args(["run", "openapi.yaml", "--url", &worker.url])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all", "--exclude-checks", &excluded.join(",")])
        .args(["--max-examples", "25", "--generation-deterministic", "--request-timeout", "30"])
        .env("NO_COLOR", "1"));
}
