//! A TCP proxy that breaks connections for real: armed with a [`Break`], it lets a matching
//! request's head and its first N body bytes through to the Worker and then drops the
//! connection, as a dropped Wi-Fi or a killed laptop would. Everything else passes untouched,
//! both ways, so any client (ours, tus-js-client, a browser) can be pointed at [`ResetProxy::url`].
//!
//! Two ways to drop, because the Worker sees them differently:
//! - [`Break::after`]: both sides get a TCP reset (`SO_LINGER` 0, then close). The Worker's
//!   request body errors at once.
//! - [`Break::vanish`]: the client gets a reset, but the Worker's side is kept open and silent
//!   until the proxy is dropped, as when the client's network disappears without a word: the
//!   Worker only ever learns from the missing bytes.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// When and how to break one request's connection.
#[derive(Debug, Clone)]
pub struct Break {
    after: u64,
    method: Option<String>,
    path: Option<String>,
    vanish: bool,
    held: bool,
    /// Not a break: after the hold, the bytes flow on.
    stall: bool,
    /// Counts the bytes of the answer to the request, not of its body.
    response: bool,
}

impl Break {
    /// Reset both sides once `bytes` of a request body have reached the Worker.
    pub fn after(bytes: usize) -> Break {
        Break {
            after: bytes as u64,
            method: None,
            path: None,
            vanish: false,
            held: false,
            stall: false,
            response: false,
        }
    }

    /// Reset the client once `bytes` of a body have reached the Worker, and leave the Worker
    /// waiting, silently, for the rest.
    pub fn vanish(bytes: usize) -> Break {
        Break { vanish: true, ..Break::after(bytes) }
    }

    /// Reset both sides once `bytes` of the answer to a matching request have reached the
    /// client (a download cut off mid-range).
    pub fn response_after(bytes: usize) -> Break {
        Break { response: true, ..Break::after(bytes) }
    }

    /// No break: once `bytes` of a body are through, forward nothing more until
    /// [`ResetProxy::release`], then go on as if nothing happened (a link that stalls).
    pub fn stall(bytes: usize) -> Break {
        Break { held: true, stall: true, ..Break::after(bytes) }
    }

    /// Once the bytes are through, forward nothing more until [`ResetProxy::release`], then
    /// break: for a test that watches what the Worker does with the bytes it got first.
    pub fn held(self) -> Break {
        Break { held: true, ..self }
    }

    /// Only a request with this method.
    pub fn method(self, method: &str) -> Break {
        Break { method: Some(method.to_ascii_uppercase()), ..self }
    }

    /// Only a request whose target contains `part` (`"/parts/2"`, `"/tus/"`, `"action=mpu-uploadpart"`).
    pub fn path(self, part: &str) -> Break {
        Break { path: Some(part.to_string()), ..self }
    }

    fn matches(&self, method: &str, target: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m == method) && self.path.as_deref().is_none_or(|p| target.contains(p))
    }
}

#[derive(Default)]
struct Shared {
    /// Armed breaks, each used once, the first matching one first.
    armed: Mutex<Vec<Break>>,
    /// When each break happened.
    broke: Mutex<Vec<Instant>>,
    /// The Worker's side of vanished connections, held open and silent.
    silent: Mutex<Vec<TcpStream>>,
    forwarded: AtomicUsize,
    /// Held breaks wait for this.
    released: AtomicBool,
    /// Connections held right now.
    holding: AtomicUsize,
    stop: AtomicBool,
}

/// The proxy: listens on a free loopback port and forwards to one upstream. Dropping it stops
/// it and closes every connection it still holds.
pub struct ResetProxy {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    shared: Arc<Shared>,
    port: u16,
}

impl ResetProxy {
    /// A proxy in front of `upstream` (`http://127.0.0.1:PORT`).
    pub fn to(upstream: &str) -> ResetProxy {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let accepting = Arc::clone(&shared);
        thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let shared = Arc::clone(&accepting);
                let upstream = upstream.clone();
                thread::spawn(move || {
                    if let Ok(server) = TcpStream::connect(&upstream) {
                        relay(client, server, &shared);
                    }
                });
            }
        });
        ResetProxy { url: format!("http://127.0.0.1:{port}"), shared, port }
    }

    /// Arms a break for the next request it matches.
    pub fn arm(&self, rule: Break) {
        self.shared.armed.lock().unwrap().push(rule);
    }

    /// How many connections were broken so far.
    pub fn resets(&self) -> usize {
        self.shared.broke.lock().unwrap().len()
    }

    /// When the `n`th break (from 1) happened, waiting for it up to `timeout`.
    pub fn wait_reset(&self, n: usize, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self.shared.broke.lock().unwrap().get(n - 1) {
                return *at;
            }
            assert!(Instant::now() < deadline, "no break number {n} within {timeout:?}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many connections a held break or stall holds right now.
    pub fn holding(&self) -> usize {
        self.shared.holding.load(Ordering::SeqCst)
    }

    /// Lets a held break happen, or a stall go on.
    pub fn release(&self) {
        self.shared.released.store(true, Ordering::SeqCst);
    }

    /// Body bytes forwarded to the Worker so far, over every connection.
    pub fn forwarded(&self) -> usize {
        self.shared.forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for ResetProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.released.store(true, Ordering::SeqCst);
        self.shared.silent.lock().unwrap().clear();
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Where the client's side of a connection is in its current request.
enum Reading {
    /// The head so far.
    Head(Vec<u8>),
    /// `left` body bytes to go; `limit`: break once this many more are forwarded.
    Body { left: u64, limit: Option<Break> },
}

/// Forwards both ways until either side closes, or a break drops the connection.
fn relay(mut client: TcpStream, mut server: TcpStream, shared: &Shared) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut reading = Reading::Head(Vec::new());
    // A break armed on the answer to the request last read.
    let mut answer: Option<Break> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let mut fds = [
            libc::pollfd { fd: client.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: server.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, 200) } < 0 {
            return;
        }
        if fds[1].revents != 0 {
            match server.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = client.shutdown(Shutdown::Write);
                    return;
                }
                Ok(n) => {
                    let take = answer.as_ref().map_or(n, |rule| n.min(rule.after as usize));
                    if client.write_all(&buf[..take]).is_err() {
                        return;
                    }
                    if let Some(rule) = &mut answer {
                        rule.after -= take as u64;
                        if rule.after == 0 {
                            drop_connection(&mut client, &mut server, rule.vanish, shared);
                            return;
                        }
                    }
                }
            }
        }
        if fds[0].revents == 0 {
            continue;
        }
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = server.shutdown(Shutdown::Write);
                // Let the answer through, then end.
                let _ = std::io::copy(&mut server, &mut client);
                return;
            }
            Ok(n) => n,
        };
        if !feed(&mut reading, &mut answer, &buf[..n], &mut client, &mut server, shared) {
            return;
        }
    }
}

/// Forwards what the client sent (the rest of a head, body bytes, the next request), breaking
/// the connection when an armed limit is reached. Answers whether the connection lives on.
fn feed(
    reading: &mut Reading,
    answer: &mut Option<Break>,
    mut bytes: &[u8],
    client: &mut TcpStream,
    server: &mut TcpStream,
    shared: &Shared,
) -> bool {
    while !bytes.is_empty() {
        match reading {
            Reading::Head(head) => {
                let from = head.len().saturating_sub(3);
                head.extend_from_slice(bytes);
                let Some(end) = head[from..].windows(4).position(|w| w == b"\r\n\r\n") else { return true };
                let rest = head.split_off(from + end + 4);
                let (method, target, length) = parse_head(head);
                let mut limit = {
                    let mut armed = shared.armed.lock().unwrap();
                    let found = armed.iter().position(|b| b.matches(&method, &target));
                    found.map(|i| armed.remove(i))
                };
                if limit.as_ref().is_some_and(|rule| rule.response) {
                    *answer = limit.take();
                }
                if server.write_all(head).is_err() {
                    return false;
                }
                *reading = if length == 0 { Reading::Head(Vec::new()) } else { Reading::Body { left: length, limit } };
                return feed(reading, answer, &rest, client, server, shared);
            }
            Reading::Body { left, limit } => {
                let mut take = (*left).min(bytes.len() as u64);
                if let Some(rule) = limit {
                    take = take.min(rule.after);
                }
                if server.write_all(&bytes[..take as usize]).is_err() {
                    return false;
                }
                shared.forwarded.fetch_add(take as usize, Ordering::SeqCst);
                bytes = &bytes[take as usize..];
                *left -= take;
                if let Some(rule) = limit {
                    rule.after -= take;
                    if rule.after == 0 {
                        shared.holding.fetch_add(1, Ordering::SeqCst);
                        while rule.held && !shared.released.swap(false, Ordering::SeqCst) {
                            thread::sleep(Duration::from_millis(5));
                        }
                        shared.holding.fetch_sub(1, Ordering::SeqCst);
                        if !rule.stall {
                            drop_connection(client, server, rule.vanish, shared);
                            return false;
                        }
                        *limit = None;
                    }
                }
                if *left == 0 {
                    *reading = Reading::Head(Vec::new());
                }
            }
        }
    }
    true
}

/// The request line's method and target, and the body's `Content-Length` (0 without one).
fn parse_head(head: &[u8]) -> (String, String, u64) {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_ascii_uppercase();
    let target = request_line.next().unwrap_or_default().to_string();
    let length = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    (method, target, length)
}

/// Resets the client; resets the Worker's side too, or keeps it open and silent (`vanish`).
fn drop_connection(client: &mut TcpStream, server: &mut TcpStream, vanish: bool, shared: &Shared) {
    shared.broke.lock().unwrap().push(Instant::now());
    reset(client);
    if vanish {
        if let Ok(held) = server.try_clone() {
            shared.silent.lock().unwrap().push(held);
        }
    } else {
        reset(server);
    }
}

/// `SO_LINGER` 0: the close that follows (when the last handle on the socket goes) sends RST.
fn reset(stream: &TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
