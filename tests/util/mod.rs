//! Helpers for the integration tests: a tiny HTTP client for the r2mpu API and test data.

#![allow(dead_code)] // each test binary uses its own subset

use std::time::{Duration, Instant};

use serde_json::Value;
use ureq::http::{Method, Request};

#[allow(unused_imports)]
pub use r2mpu_testkit::{claims, multipart_etag, random_bytes, Options, Worker, ALL_SCOPES};

pub const MIB: usize = 1 << 20;
/// R2's smallest part (but the last): the part size the tests use.
pub const PART: usize = 5 * MIB;

/// An answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The problem document's `code`, checking it is one.
    pub fn code(&self) -> String {
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "{self:?}");
        self.json()["code"].as_str().expect("a code").to_string()
    }

    /// Asserts a problem with `status` and `code`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.code().as_str()), (status, code), "{}", String::from_utf8_lossy(&self.body));
    }
}

/// A client of one Worker, with one token (or none).
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: Option<String>,
    agent: ureq::Agent,
}

impl Api {
    pub fn new(worker: &Worker, token: Option<String>) -> Api {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Api { base: worker.url.clone(), token, agent }
    }

    /// A client for `sub` with every scope.
    pub fn of(worker: &Worker, sub: &str) -> Api {
        Api::new(worker, Some(worker.token(sub, ALL_SCOPES)))
    }

    pub fn with_token(&self, token: &str) -> Api {
        Api { token: Some(token.to_string()), ..self.clone() }
    }

    /// The same client, reaching the Worker through `base` (a proxy in front of it).
    pub fn via(&self, base: &str) -> Api {
        Api { base: base.to_string(), ..self.clone() }
    }

    /// Sends a request; `body` of `None` sends none at all.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Reply {
        self.try_send(method, path, headers, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// [`Api::send`], answering a connection that broke (or no answer) as an error.
    pub fn try_send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Reply, String> {
        let mut builder = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let result = match body {
            Some(bytes) => self.agent.run(builder.body(bytes).unwrap()),
            None => self.agent.run(builder.body(()).unwrap()),
        };
        let mut response = result.map_err(|e| e.to_string())?;
        // A header that is not text, or a body that breaks off, is a failure of the Worker: say so.
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                let text = v.to_str().unwrap_or_else(|_| panic!("{method} {path}: header {k} is not text: {v:?}"));
                (k.to_string(), text.to_string())
            })
            .collect();
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .map_err(|e| format!("the {status} answer's body could not be read: {e}"))?;
        Ok(Reply { status, headers, body })
    }

    pub fn post_json(&self, path: &str, json: &Value) -> Reply {
        let body = serde_json::to_vec(json).unwrap();
        self.send("POST", path, &[("content-type", "application/json")], Some(&body))
    }

    pub fn create(&self, json: Value) -> Reply {
        self.post_json("/uploads", &json)
    }

    /// Creates an upload and returns its id, asserting `201`.
    pub fn create_id(&self, json: Value) -> String {
        let reply = self.create(json);
        assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
        reply.json()["uploadId"].as_str().unwrap().to_string()
    }

    pub fn put_part(&self, id: &str, n: impl std::fmt::Display, bytes: &[u8]) -> Reply {
        self.send(
            "PUT",
            &format!("/uploads/{id}/parts/{n}"),
            &[("content-type", "application/octet-stream")],
            Some(bytes),
        )
    }

    pub fn state(&self, id: &str) -> Reply {
        self.send("GET", &format!("/uploads/{id}"), &[], None)
    }

    pub fn complete(&self, id: &str, body: Option<Value>) -> Reply {
        match body {
            Some(json) => self.post_json(&format!("/uploads/{id}/complete"), &json),
            None => self.send("POST", &format!("/uploads/{id}/complete"), &[], None),
        }
    }

    pub fn abort(&self, id: &str) -> Reply {
        self.send("DELETE", &format!("/uploads/{id}"), &[], None)
    }

    pub fn object(&self, key: &str, headers: &[(&str, &str)]) -> Reply {
        self.send("GET", &format!("/objects/{}", encode_key(key)), headers, None)
    }

    /// `PUT` a part with faults named in `x-r2mpu-fault` (the fault build, src/faults.rs).
    pub fn put_part_with(&self, id: &str, n: usize, bytes: &[u8], fault: &str) -> Reply {
        let headers = [("content-type", "application/octet-stream"), ("x-r2mpu-fault", fault)];
        self.send("PUT", &format!("/uploads/{id}/parts/{n}"), &headers, Some(bytes))
    }

    /// `POST .../complete` with faults named in `x-r2mpu-fault`.
    pub fn complete_with(&self, id: &str, fault: &str) -> Reply {
        self.send("POST", &format!("/uploads/{id}/complete"), &[("x-r2mpu-fault", fault)], None)
    }

    /// Creates an upload of `data` in parts of `part_size` and sends every part, in order,
    /// asserting each `200`; returns the upload's id.
    pub fn send_parts(&self, key: &str, data: &[u8], part_size: usize) -> String {
        let id = self.create_id(serde_json::json!({"key": key, "size": data.len(), "partSize": part_size}));
        for (i, chunk) in chunks(data, part_size).enumerate() {
            let reply = self.put_part(&id, i + 1, chunk);
            assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
        }
        id
    }

    /// Uploads `data` under `key` in parts of `part_size`, in order, and completes; returns the
    /// completed object JSON.
    pub fn upload(&self, key: &str, data: &[u8], part_size: usize) -> Value {
        let id = self.send_parts(key, data, part_size);
        let done = self.complete(&id, None);
        assert_eq!(done.status, 200, "{}", String::from_utf8_lossy(&done.body));
        done.json()
    }
}

/// `data` cut into parts; an empty object is one empty part.
pub fn chunks(data: &[u8], part_size: usize) -> std::vec::IntoIter<&[u8]> {
    let empty: &[u8] = &[];
    let parts: Vec<&[u8]> = if data.is_empty() { vec![empty] } else { data.chunks(part_size).collect() };
    parts.into_iter()
}

/// Percent-encodes each `/`-separated segment of a key for a URL path.
pub fn encode_key(key: &str) -> String {
    key.split('/')
        .map(|segment| {
            segment
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The Worker's first JSON log line (one per request, `http::log`) that `matches`, waiting up to
/// `within` for wrangler to write it.
pub fn log_line_where(worker: &Worker, within: Duration, matches: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        if let Some(line) = worker.log_records().into_iter().find(|line| matches(line)) {
            return line;
        }
        assert!(Instant::now() < deadline, "no such log line in\n{}", worker.log_tail());
        std::thread::sleep(Duration::from_millis(100));
    }
}
