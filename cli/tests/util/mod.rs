//! Helpers for driving the real `r2mpu` binary against a real `wrangler dev`.

#![allow(dead_code)] // not every test uses every helper

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use r2mpu_api::types::Upload;
pub use r2mpu_testkit::{multipart_etag, random_bytes, Worker, ALL_SCOPES};

pub const MIB: usize = 1 << 20;
/// R2's smallest part: what the tests upload with, so that files stay small.
pub const PART: usize = 5 * MIB;

/// One test's world: the shared Worker, a subject of its own, and private directories for data
/// and resume records.
pub struct Env {
    pub worker: &'static Worker,
    pub sub: String,
    pub token: String,
    pub dir: tempfile::TempDir,
    pub state: tempfile::TempDir,
}

impl Env {
    pub fn new(sub: &str) -> Env {
        let worker = Worker::shared();
        Env {
            worker,
            sub: sub.to_owned(),
            token: worker.token(sub, ALL_SCOPES),
            dir: tempfile::tempdir().unwrap(),
            state: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `size` bytes of test data named `name` and returns the path and the bytes.
    pub fn file(&self, name: &str, size: usize) -> (PathBuf, Vec<u8>) {
        let data = data(size, name);
        let path = self.path(name);
        std::fs::write(&path, &data).unwrap();
        (path, data)
    }

    /// `r2mpu ARGS` with this test's endpoint, token and state directory.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_r2mpu"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("R2MPU_ENDPOINT", &self.worker.url)
            .env("R2MPU_TOKEN", &self.token)
            .env("R2MPU_STATE_DIR", self.state.path())
            .env_remove("R2MPU_KEY");
        command
    }

    /// Runs `r2mpu ARGS` to the end.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::of(self.command(args))
    }

    /// Runs `r2mpu ARGS` with another token (or none).
    pub fn run_with_token(&self, token: Option<&str>, args: &[&str]) -> Run {
        let mut command = self.command(args);
        match token {
            Some(token) => command.env("R2MPU_TOKEN", token),
            None => command.env_remove("R2MPU_TOKEN"),
        };
        Run::of(command)
    }

    /// `GET /uploads/{id}` as this test's subject.
    pub fn upload_state(&self, upload_id: &str) -> Upload {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut response = agent
            .get(format!("{}/uploads/{upload_id}", self.worker.url))
            .header("Authorization", format!("Bearer {}", self.token))
            .call()
            .unwrap();
        let text = response.body_mut().read_to_string().unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET /uploads/{upload_id}: {e}: {text}"))
    }
}

/// A finished run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(mut command: Command) -> Run {
        let output = command.output().expect("running r2mpu");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, showing the output when it is another.
    #[track_caller]
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(self.code, code, "exit code\n--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    /// The value of a `name: value` line on stdout.
    #[track_caller]
    pub fn field(&self, name: &str) -> &str {
        field(&self.stdout, name).unwrap_or_else(|| panic!("no `{name}:` line in\n{}", self.stdout))
    }

    /// The one error line on stderr.
    #[track_caller]
    pub fn error_line(&self) -> &str {
        let errors: Vec<&str> = self.stderr.lines().filter(|l| l.starts_with("r2mpu: ")).collect();
        assert_eq!(errors.len(), 1, "one error line expected in\n{}", self.stderr);
        errors[0]
    }
}

pub fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(": "))
}

/// A running `r2mpu`, its stderr read line by line as it comes.
pub struct Running {
    pub child: Child,
    lines: Receiver<String>,
    pub stderr: Vec<String>,
}

impl Running {
    pub fn start(mut command: Command) -> Running {
        let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines, stderr: Vec::new() }
    }

    /// Waits for a stderr line that `pick` accepts and returns what it picked.
    pub fn wait_for<T>(&mut self, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    let picked = pick(&line);
                    self.stderr.push(line);
                    if let Some(picked) = picked {
                        return picked;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("the line never came; stderr so far:\n{}", self.stderr.join("\n"));
    }

    /// The upload ID from the `upload ID: …` note.
    pub fn upload_id(&mut self) -> String {
        self.wait_for(|line| Some(line.strip_prefix("upload ")?.split_once(':')?.0.to_owned()))
    }

    /// Waits for the exit; returns its code and the whole of stderr.
    pub fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        self.stderr.extend(self.lines.iter());
        (status.code(), self.stderr.join("\n"))
    }

    /// SIGKILL, as a crash or a pulled plug would; returns whether it was still running.
    pub fn kill(mut self) -> bool {
        let running = self.child.try_wait().unwrap().is_none();
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        running
    }
}

/// A count that threads wait on, for a proxy rule that holds a request until others have come
/// ([`Action::ForwardWhen`]).
#[derive(Default)]
pub struct Tally {
    count: Mutex<usize>,
    grew: std::sync::Condvar,
}

impl Tally {
    pub fn add(&self) {
        *self.count.lock().unwrap() += 1;
        self.grew.notify_all();
    }

    /// Waits until the count reaches `wanted`, for at most `within`; whether it did.
    pub fn wait_for(&self, wanted: usize, within: Duration) -> bool {
        let count = self.count.lock().unwrap();
        let (count, _) = self.grew.wait_timeout_while(count, within, |count| *count < wanted).unwrap();
        *count >= wanted
    }
}

/// Polls until `done` holds, for up to two minutes.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Deterministic bytes that differ per name.
pub fn data(size: usize, name: &str) -> Vec<u8> {
    let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |s, b| (s ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    random_bytes(size, seed)
}

/// The lines of a download's sidecar record, or 0 when there is none; any other read error fails.
pub fn sidecar_lines(file: &Path) -> usize {
    let mut name = file.as_os_str().to_owned();
    name.push(".r2mpu-download");
    match std::fs::read_to_string(&name) {
        Ok(text) => text.lines().count(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => panic!("reading {}: {e}", Path::new(&name).display()),
    }
}

/// One request that went through the [`Proxy`], as the Worker would have seen it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// How many earlier requests had the same method and path (0 for the first).
    pub earlier: usize,
    /// Its place in [`Proxy::seen`].
    pub index: usize,
    /// The earlier requests (by index) the proxy was still answering when this one arrived; a
    /// stalled answer counts until its client hangs up.
    pub answering: Vec<usize>,
    /// When its head had arrived (its body may have taken longer).
    pub began: Instant,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `Some(n)` for a `PUT` of part `n`.
    pub fn part_number(&self) -> Option<u16> {
        if self.method != "PUT" {
            return None;
        }
        self.path.split_once("/parts/")?.1.parse().ok()
    }
}

/// What the [`Proxy`] does with a request.
pub enum Action {
    /// Pass it to the Worker and its answer back.
    Forward,
    /// Pass it on after this long: slows the transfer down enough to act in the middle of it.
    ForwardAfter(Duration),
    /// Pass it on once this returns: holds it until something else has happened (the test's
    /// closure waits for it, with a deadline of its own).
    ForwardWhen(Box<dyn FnOnce() + Send>),
    /// Append this to the query (`&limit=2`) and pass it on.
    AppendQuery(&'static str),
    /// Pass it on, then let this change the answer, or lose it, before the client sees it:
    /// corruption and lost answers the CLI cannot tell from the real thing.
    Edit(Box<dyn FnOnce(&mut Answer) -> Fate + Send>),
    /// Read the whole request, then answer it with this status (`503 Service Unavailable`) and
    /// `Retry-After: 0`: a transient failure the CLI cannot tell from the real thing.
    Fail(&'static str),
    /// Answer it at once with this status (`200 OK`) and no body, never asking the Worker: a
    /// fast `/healthz` for the CLI's first round trip, so that its start is the loopback one.
    Answer(&'static str),
    /// Pass it on, send the answer's head and the first this many bytes of its body, then
    /// nothing more until the client hangs up: a body that stalls and never ends by itself.
    Stall(usize),
    /// Like [`Action::Stall`], but the rest of the body follows after this long.
    Pause(usize, Duration),
}

/// The Worker's answer on its way back through the [`Proxy`].
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Without `Content-Length`, `Transfer-Encoding` and `Connection`, which the proxy sets.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What becomes of an answer an [`Action::Edit`] saw.
pub enum Fate {
    /// Send it (as edited) to the client.
    Deliver,
    /// Close the connection without a word: the server acted, the client never hears of it.
    Drop,
}

/// A loopback HTTP/1.1 proxy in front of the Worker that records every request and lets a test
/// fail, slow down, rewrite, lose or stall the ones it picks. One request per connection: each
/// answer says `Connection: close`.
pub struct Proxy {
    pub url: String,
    shared: Arc<Shared>,
}

/// How one answer's body went out to the client ([`Proxy::deliveries`]).
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The request's place in [`Proxy::seen`].
    pub index: usize,
    /// The whole body was written (the client did not hang up on it).
    pub whole: bool,
    /// When the answer's head went out, and when its last byte did (or the write failed).
    pub started: Instant,
    pub ended: Instant,
    /// For [`Action::Pause`]: when the bytes before the pause had gone out.
    pub paused: Option<Instant>,
}

/// What the proxy's connections share.
struct Shared {
    log: Mutex<Vec<Seen>>,
    delivered: Mutex<Vec<Delivery>>,
    /// The requests (by index) being answered.
    answering: Mutex<Vec<usize>>,
    upstream: String,
}

impl Proxy {
    /// `rule` decides, for each request in the order they arrive, what becomes of it.
    pub fn start(upstream: &str, rule: impl Fn(&Seen) -> Action + Send + Sync + 'static) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_end_matches('/').to_string();
        let shared = Arc::new(Shared {
            log: Mutex::default(),
            delivered: Mutex::default(),
            answering: Mutex::default(),
            upstream,
        });
        let (proxy, rule) = (Arc::clone(&shared), Arc::new(rule));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (shared, rule) = (Arc::clone(&shared), Arc::clone(&rule));
                std::thread::spawn(move || {
                    let _ = serve(client, &shared, &*rule);
                });
            }
        });
        Proxy { url, shared: proxy }
    }

    /// Every request so far, in the order they arrived.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.log.lock().unwrap().clone()
    }
    /// Every answer whose body went out in full or was cut off by the client, in the order they ended.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.delivered.lock().unwrap().clone()
    }
}

fn serve(
    mut client: TcpStream,
    shared: &Shared,
    rule: &(dyn Fn(&Seen) -> Action + Send + Sync),
) -> std::io::Result<()> {
    let Some(mut request) = read_request(&mut client) else { return Ok(()) };
    let upstream = &shared.upstream;
    let action = {
        let mut log = shared.log.lock().unwrap();
        let mut answering = shared.answering.lock().unwrap();
        (request.index, request.answering) = (log.len(), answering.clone());
        answering.push(request.index);
        request.earlier = log.iter().filter(|s| s.method == request.method && s.path == request.path).count();
        log.push(request.clone());
        rule(&request)
    };
    let _answered = Answered(shared, request.index);
    let (mut edit, mut stall, mut pause) = (None, None, None);
    match action {
        Action::Forward => {}
        Action::ForwardAfter(wait) => std::thread::sleep(wait),
        Action::ForwardWhen(ready) => ready(),
        Action::AppendQuery(extra) => request.path.push_str(extra),
        Action::Edit(f) => edit = Some(f),
        Action::Stall(after) => stall = Some(after),
        Action::Pause(after, wait) => (stall, pause) = (Some(after), Some(wait)),
        Action::Fail(status) => {
            let reply =
                format!("HTTP/1.1 {status}\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return client.write_all(reply.as_bytes());
        }
        Action::Answer(status) => {
            let reply = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return client.write_all(reply.as_bytes());
        }
    }

    let mut forward =
        ureq::http::Request::builder().method(request.method.as_str()).uri(format!("{upstream}{}", request.path));
    for (name, value) in &request.headers {
        if !["host", "connection", "content-length", "transfer-encoding"].contains(&name.as_str()) {
            forward = forward.header(name, value);
        }
    }
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
    let mut response = agent.run(forward.body(request.body).unwrap()).map_err(std::io::Error::other)?;
    let head_length = response.headers().get("content-length").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut answer = Answer {
        status: response.status().as_u16(),
        headers: response
            .headers()
            .iter()
            .filter(|(k, _)| !["content-length", "transfer-encoding", "connection"].contains(&k.as_str()))
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: response.body_mut().with_config().limit(u64::MAX).read_to_vec().unwrap_or_default(),
    };
    if let Some(Fate::Drop) = edit.map(|edit| edit(&mut answer)) {
        return client.shutdown(std::net::Shutdown::Both);
    }
    // A HEAD answer has no body but the length of the one a GET would have.
    let length = match (request.method.as_str(), head_length) {
        ("HEAD", Some(length)) => length,
        _ => answer.body.len().to_string(),
    };
    let mut out = format!("HTTP/1.1 {} Relayed\r\n", answer.status);
    for (name, value) in &answer.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("content-length: {length}\r\nconnection: close\r\n\r\n"));
    client.write_all(out.as_bytes())?;
    let started = Instant::now();
    let delivered = |written: &std::io::Result<()>, paused| {
        let whole = written.is_ok();
        let delivery = Delivery { index: request.index, whole, started, ended: Instant::now(), paused };
        shared.delivered.lock().unwrap().push(delivery);
    };
    let Some(after) = stall else {
        let written = client.write_all(&answer.body).and_then(|()| client.flush());
        delivered(&written, None);
        return written;
    };
    let (head, rest) = answer.body.split_at(after.min(answer.body.len()));
    client.write_all(head)?;
    client.flush()?;
    if let Some(wait) = pause {
        let paused = Instant::now();
        std::thread::sleep(wait);
        let written = client.write_all(rest).and_then(|()| client.flush());
        delivered(&written, Some(paused));
        return written;
    }
    // Nothing more: wait for the client to give up on the body (it closes, or its process ends).
    let mut rest = [0u8; 1024];
    while matches!(client.read(&mut rest), Ok(n) if n > 0) {}
    Ok(())
}

/// Takes a request off the list of those being answered, however its answer ends.
struct Answered<'a>(&'a Shared, usize);

impl Drop for Answered<'_> {
    fn drop(&mut self) {
        self.0.answering.lock().unwrap().retain(|&i| i != self.1);
    }
}

/// Reads one request whose body has a `Content-Length` (the CLI never sends chunked bodies).
fn read_request(client: &mut TcpStream) -> Option<Seen> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let (end, began) = loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            break (end, Instant::now());
        }
        let n = client.read(&mut chunk).ok().filter(|&n| n > 0)?;
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buffer[..end].to_vec()).expect("a text request head");
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap().split(' ');
    let (method, path) = (first.next().unwrap().to_string(), first.next().unwrap().to_string());
    let headers: Vec<(String, String)> = lines
        .map(|l| l.split_once(':').expect("a header line"))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    assert!(!headers.iter().any(|(k, _)| k == "transfer-encoding"), "the proxy reads only Content-Length bodies");
    let length: usize = headers.iter().find(|(k, _)| k == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = buffer[end + 4..].to_vec();
    while body.len() < length {
        let n = client.read(&mut chunk).ok().filter(|&n| n > 0)?;
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Seen { method, path, headers, body, earlier: 0, index: 0, answering: Vec::new(), began })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A plain TCP relay in front of the Worker that counts the connections clients open through
/// it: whether a client keeps its connections alive.
pub struct Relay {
    pub url: String,
    /// The clients' addresses, in the order their connections were accepted.
    accepted: Arc<Mutex<Vec<SocketAddr>>>,
    /// Our own probes' addresses ([`Relay::connections`]), not counted.
    probes: Mutex<Vec<SocketAddr>>,
}

impl Relay {
    pub fn start(upstream: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let counted = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                counted.lock().unwrap().push(client.peer_addr().unwrap());
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Relay { url, accepted, probes: Mutex::default() }
    }

    /// Connections opened so far, every one made before this call counted: the relay accepts
    /// on another thread, so a connection the client made just before it exited may not be
    /// counted yet. A probe connection of our own is accepted after all of them (the listen
    /// queue is first in, first out); the answer is how many clients' came before it.
    pub fn connections(&self) -> usize {
        let probe = TcpStream::connect(self.url.trim_start_matches("http://")).unwrap();
        let ours = probe.local_addr().unwrap();
        let mut probes = self.probes.lock().unwrap();
        probes.push(ours);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let accepted = self.accepted.lock().unwrap();
            if let Some(at) = accepted.iter().position(|&a| a == ours) {
                return accepted[..at].iter().filter(|a| !probes.contains(a)).count();
            }
            drop(accepted);
            assert!(Instant::now() < deadline, "the relay never accepted its own probe");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
