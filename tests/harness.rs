//! The test harness's own promise, which every other suite leans on: a `Worker` the testkit
//! hands out is the one it started. Test binaries start Workers at once on ports `free_port`
//! only found free, so another server may bind the port first; it must never be mistaken for
//! ours (it would answer `/healthz`, and refuse our tokens: `401 invalid_token` in a test about
//! something else entirely).

mod util;

use std::io::{Read, Write};
use std::net::TcpListener;

use serde_json::json;
use util::*;

#[test]
fn a_port_another_server_holds_is_never_taken_for_the_workers_own() {
    let impostor = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = impostor.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in impostor.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    let worker = Worker::start_trying(Options::default(), port);
    assert!(!worker.url.ends_with(&format!(":{port}")), "the impostor's port: {}", worker.url);
    let created = Api::of(&worker, "harness").create(json!({"key": "harness/file.bin", "size": 1}));
    assert_eq!(created.status, 201, "our token, our Worker: {}", String::from_utf8_lossy(&created.body));
}
