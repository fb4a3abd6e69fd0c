//! Deployment is real: `wrangler deploy --dry-run` from a plain shell builds and bundles the
//! Worker exactly as a deploy would (wrangler.toml's `[build]`, its bindings), and what would
//! be uploaded stays within the size budget.

use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::write::GzEncoder;
use flate2::Compression;
use r2mpu_testkit::repo_root;

/// The most the uploaded modules (the JS bundle and the wasm) may weigh, gzipped together as
/// wrangler's "Total Upload" measures them (its zlib comes out ~1.5% larger than flate2 here).
/// Cloudflare allows far more (3 MiB on Free); startup time grows with the size. Raised from
/// 300 KiB this session: the fault-safe upload life cycle (src/upload/machine.rs: part leases, settling
/// interrupted completes) costs ~15 KiB gzip; the `UploadIndex` Durable Object class 8 KiB of
/// workers-rs glue, `GET /uploads` 6 KiB, the index hooks, log lines and part MD5s ~12 KiB; tus
/// and the IETF draft (src/protocols/tus/, src/upload/append.rs) ~60 KiB. The S3 surface
/// (src/protocols/s3/, src/sigv4.rs: SigV4, XML by hand, 14 operations) 25 KiB: 395.3 KiB
/// with its routes left out of the table, 420.5 KiB with them (measured 2026-12-04). Direct
/// parts (src/protocols/direct.rs, src/upload/direct.rs: presigned part URLs, reports, their
/// types) 22.4 KiB: main at 427.8 KiB (438,092 bytes), with them 450.2 KiB (460,958 bytes),
/// measured 2026-12-04.
const GZIP_BUDGET: usize = 452 * 1024;

/// Runs `npx wrangler deploy --dry-run --outdir out`, as a user would from a fresh shell: with
/// nothing of the caller's environment but `PATH` and `HOME`. Returns its output (stdout, then
/// stderr).
fn dry_run_deploy(out: &Path) -> String {
    let mut command = Command::new("npx");
    command
        .args(["--no-install", "wrangler", "deploy", "--dry-run", "--outdir"])
        .arg(out)
        .current_dir(repo_root())
        .env_clear();
    for name in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    let output = command
        .env("WRANGLER_SEND_METRICS", "false")
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e} (run `make install`)"));
    let log = format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{command:?} failed:\n{log}");
    log
}

/// The modules wrangler would upload: every `.js` and `.wasm` file of its `--outdir`.
fn modules(out: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| matches!(path.extension().and_then(|e| e.to_str()), Some("js" | "wasm")))
        .collect();
    files.sort();
    files
}

/// The gzip size of `bytes` at the default level (6, as wrangler uses).
fn gzip_len(bytes: &[u8]) -> usize {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    std::io::Write::write_all(&mut encoder, bytes).unwrap();
    encoder.finish().unwrap().len()
}

#[test]
fn a_dry_run_deploy_bundles_the_worker_with_its_bindings_within_the_size_budget() {
    let out = tempfile::tempdir().unwrap();
    let log = dry_run_deploy(out.path());

    let has_binding = |name: &str, kind: &str| log.lines().any(|line| line.contains(name) && line.contains(kind));
    assert!(has_binding("env.BUCKET", "R2 Bucket"), "no R2 binding BUCKET in:\n{log}");
    assert!(has_binding("env.UPLOADS (UploadState)", "Durable Object"), "no Durable Object binding UPLOADS in:\n{log}");
    assert!(has_binding("env.UPLOAD_INDEX (UploadIndex)", "Durable Object"), "no binding UPLOAD_INDEX in:\n{log}");

    let files = modules(out.path());
    let is = |ext: &str| files.iter().filter(|f| f.extension().is_some_and(|e| e == ext)).count();
    assert!(
        is("js") == 1 && is("wasm") == 1,
        "expected one JS and one wasm module in {}: {files:?}",
        out.path().display()
    );

    let mut all = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy();
        eprintln!("bundle: {name}: {} bytes, {} gzip", bytes.len(), gzip_len(&bytes));
        all.extend(bytes);
    }
    let gzip = gzip_len(&all);
    eprintln!(
        "bundle: total: {} bytes, {gzip} gzip ({:.1} KiB; budget {} KiB)",
        all.len(),
        gzip as f64 / 1024.0,
        GZIP_BUDGET / 1024
    );
    if let Some(line) = log.lines().find(|line| line.contains("Total Upload")) {
        eprintln!("bundle: wrangler says {}", line.trim());
    }
    assert!(gzip <= GZIP_BUDGET, "the bundle is {gzip} bytes gzipped, over the {GZIP_BUDGET}-byte budget");
}

/// Fault injection (src/faults.rs) is test-only: the header that names faults appears in the
/// `faults` build and nowhere in what a deploy would upload.
#[test]
fn the_deploy_bundle_has_no_fault_injection() {
    const MARKER: &[u8] = b"x-r2mpu-fault";
    let contains = |haystack: &[u8]| haystack.windows(MARKER.len()).any(|w| w == MARKER);

    let out = tempfile::tempdir().unwrap();
    dry_run_deploy(out.path());
    for file in modules(out.path()) {
        assert!(!contains(&std::fs::read(&file).unwrap()), "{} carries fault injection", file.display());
    }

    // The same check finds it in the test build, so it would find it in a deploy that had it.
    let status = Command::new(repo_root().join("scripts/build.sh"))
        .arg("faults")
        .current_dir(repo_root())
        .env("PATH", r2mpu_testkit::node_path())
        .status()
        .expect("scripts/build.sh faults");
    assert!(status.success());
    let faults_wasm = std::fs::read(repo_root().join("build-faults/index_bg.wasm")).unwrap();
    assert!(contains(&faults_wasm), "the faults build lost its marker: this test proves nothing");
}
