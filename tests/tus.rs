//! tus 1.0 (issue 10) against the real Worker: raw HTTP for every header, status and extension,
//! then the real clients (tuspy, tus-js-client). The Worker runs with `MAX_PART_SIZE` at R2's
//! minimum, so tus uploads use 5 MiB parts and a few MiB cross part boundaries.

mod util;

use std::process::Command;

use r2mpu_testkit::{node_path, repo_root};
use util::*;

const TUS: (&str, &str) = ("tus-resumable", "1.0.0");
const OCTETS: (&str, &str) = ("content-type", "application/offset+octet-stream");

fn small_parts() -> Options {
    Options { vars: vec![("MAX_PART_SIZE".into(), PART.to_string())] }
}

fn b64(text: &str) -> String {
    use jwt_simple::reexports::ct_codecs::{Base64, Encoder};
    Base64::encode_to_string(text.as_bytes()).unwrap()
}

/// `POST /tus` for `size` bytes named `key`; answers the upload's path.
fn create(api: &Api, key: &str, size: usize) -> String {
    let metadata = format!("filename {},filetype {}", b64(key), b64("application/x-test"));
    let reply =
        api.send("POST", "/tus", &[TUS, ("upload-length", &size.to_string()), ("upload-metadata", &metadata)], None);
    assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.header("tus-resumable"), Some("1.0.0"));
    assert!(reply.header("upload-expires").is_some_and(|d| d.ends_with(" GMT")), "{reply:?}");
    reply.header("location").unwrap().to_string()
}

/// `POST /tus` with `Upload-Defer-Length: 1` for `key`; answers the upload's path.
fn create_deferred(api: &Api, key: &str) -> String {
    let metadata = format!("key {}", b64(key));
    let reply = api.send("POST", "/tus", &[TUS, ("upload-defer-length", "1"), ("upload-metadata", &metadata)], None);
    assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
    reply.header("location").unwrap().to_string()
}

fn patch(api: &Api, path: &str, offset: usize, bytes: &[u8]) -> Reply {
    api.send("PATCH", path, &[TUS, OCTETS, ("upload-offset", &offset.to_string())], Some(bytes))
}

fn offset(api: &Api, path: &str) -> usize {
    let head = api.send("HEAD", path, &[TUS], None);
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("cache-control"), Some("no-store"));
    head.header("upload-offset").unwrap().parse().unwrap()
}

/// Appends cut across part boundaries, a kill of the Worker between two appends, and a resume
/// from `HEAD`: the offset is exactly the durable bytes, and the object comes back identical.
#[test]
fn appends_of_any_size_survive_a_kill_between_them_and_complete_into_the_object() {
    let mut worker = Worker::start_with(small_parts());
    let api = Api::of(&worker, "tus-crash");
    let data = random_bytes(2 * PART + 1_234_567, 10);
    let path = create(&api, "tus/crash.bin", data.len());
    let id = path.trim_start_matches("/tus/").to_string();
    assert_eq!(offset(&api, &path), 0);

    // 3 MiB + 1 appends: the 2nd fills part 1 from the tail and the new bytes, and so on.
    let chunk = 3 * MIB + 1;
    let mut at = 0;
    for _ in 0..2 {
        let end = (at + chunk).min(data.len());
        let reply = patch(&api, &path, at, &data[at..end]);
        assert_eq!(reply.status, 204, "{}", String::from_utf8_lossy(&reply.body));
        assert_eq!(reply.header("upload-offset"), Some(end.to_string().as_str()));
        at = end;
    }
    let state = api.state(&id).json();
    assert_eq!((state["status"].as_str(), state["parts"].as_array().unwrap().len()), (Some("open"), 1), "{state}");

    worker.crash_and_restart();
    assert_eq!(offset(&api, &path), at, "HEAD reports exactly the durable bytes after a kill");
    let behind = patch(&api, &path, at - 1, b"x");
    behind.assert_problem(409, "offset_mismatch");
    assert_eq!(behind.json()["expected-offset"], at);
    while at < data.len() {
        let end = (at + chunk).min(data.len());
        assert_eq!(patch(&api, &path, at, &data[at..end]).status, 204);
        at = end;
    }
    let state = api.state(&id).json();
    assert_eq!(state["status"], "completed", "{state}");
    assert_eq!(state["parts"].as_array().unwrap().len(), 3);
    let object = api.object("tus/crash.bin", &[]);
    assert_eq!(object.status, 200);
    assert!(object.body == data, "the object is the bytes sent");
    assert_eq!(object.header("content-type"), Some("application/x-test"));
    assert_eq!(offset(&api, &path), data.len(), "a completed upload reports all its bytes");
}

/// A client that sends one chunk size (tus-js-client, Uppy) gets parts of that size: its first
/// `PATCH` sets the part size, so every chunk goes to R2 as one whole part, with no tail to
/// write and read back. A later chunk of another size still works (through the tail), and a
/// deferred-length upload keeps the room its part size gave it.
#[test]
fn the_first_chunk_sets_the_part_size_so_chunks_of_that_size_need_no_tail() {
    let worker = Worker::start();
    let api = Api::of(&worker, "tus-fit");
    let data = random_bytes(20 * MIB + 3, 14);
    let path = create(&api, "tus-fit/file.bin", data.len());
    let id = path.trim_start_matches("/tus/").to_string();
    assert_eq!(api.state(&id).json()["partSize"], 16 * MIB, "the usual part size until a byte arrives");

    assert_eq!(patch(&api, &path, 0, &data[..6 * MIB]).status, 204);
    let state = api.state(&id).json();
    assert_eq!(state["partSize"], 6 * MIB, "{state}");
    let parts = state["parts"].as_array().unwrap();
    assert_eq!((parts.len(), &parts[0]["size"]), (1, &serde_json::json!(6 * MIB)), "the chunk is part 1: {state}");

    // Another chunk size: part 2 fills, 1 MiB waits in the tail; the rest completes.
    assert_eq!(patch(&api, &path, 6 * MIB, &data[6 * MIB..13 * MIB]).status, 204);
    assert_eq!(api.state(&id).json()["parts"].as_array().unwrap().len(), 2);
    assert_eq!(patch(&api, &path, 13 * MIB, &data[13 * MIB..]).status, 204);
    let state = api.state(&id).json();
    assert_eq!((state["status"].as_str(), state["parts"].as_array().unwrap().len()), (Some("completed"), 4));
    assert!(api.object("tus-fit/file.bin", &[]).body == data, "the object is the bytes sent");

    // A deferred length: 6 MiB parts would hold less than the 16 MiB ones it was created with.
    let path = create_deferred(&api, "tus-fit/deferred.bin");
    assert_eq!(patch(&api, &path, 0, &data[..6 * MIB]).status, 204);
    let state = api.state(path.trim_start_matches("/tus/")).json();
    assert_eq!((&state["partSize"], state["parts"].as_array().unwrap().len()), (&serde_json::json!(16 * MIB), 0));
}

#[test]
fn tus_headers_statuses_and_extensions() {
    let worker = Worker::shared_with(small_parts());
    let api = Api::of(worker, "tus-raw");

    let options = Api::new(worker, None).send("OPTIONS", "/tus", &[], None);
    assert_eq!(options.status, 204);
    assert_eq!(options.header("tus-version"), Some("1.0.0"));
    assert_eq!(options.header("tus-resumable"), Some("1.0.0"));
    let extensions = options.header("tus-extension").unwrap();
    let all = ["creation", "creation-with-upload", "creation-defer-length", "termination", "expiration", "checksum"];
    for extension in all {
        assert!(extensions.split(',').any(|e| e == extension), "{extensions}");
    }
    assert_eq!(options.header("tus-checksum-algorithm"), Some("sha1,md5,sha256"));
    assert_eq!(options.header("tus-max-size"), Some((PART as u64 * 10_000).to_string().as_str()));
    // The IETF draft's discovery (draft 09 on): OPTIONS names the append media type and the limits.
    assert_eq!(options.header("accept-patch"), Some("application/partial-upload"));
    let limit = options.header("upload-limit").unwrap();
    assert!(limit.starts_with(&format!("max-size={}, max-append-size=104857600, max-age=", PART as u64 * 10_000)));

    // Another version is 412, with the version spoken.
    let old = api.send("POST", "/tus", &[("tus-resumable", "0.2.2"), ("upload-length", "5")], None);
    old.assert_problem(412, "unsupported_tus_version");
    assert_eq!(old.header("tus-version"), Some("1.0.0"));
    // Auth: no token is 401, still a tus answer.
    let anonymous = Api::new(worker, None).send("POST", "/tus", &[TUS, ("upload-length", "5")], None);
    anonymous.assert_problem(401, "missing_token");
    assert_eq!(anonymous.header("tus-resumable"), Some("1.0.0"));

    // creation-with-upload, then a wrong offset, a wrong media type, bytes past the length.
    let metadata = format!("key {}", b64("tus-raw/small.txt"));
    let created = api.send(
        "POST",
        "/tus",
        &[TUS, OCTETS, ("upload-length", "11"), ("upload-metadata", &metadata)],
        Some(b"hello"),
    );
    assert_eq!((created.status, created.header("upload-offset")), (201, Some("5")), "{created:?}");
    let path = created.header("location").unwrap().to_string();
    patch(&api, &path, 4, b" world").assert_problem(409, "offset_mismatch");
    let json = api.send("PATCH", &path, &[TUS, ("upload-offset", "5"), ("content-type", "text/plain")], Some(b"x"));
    json.assert_problem(415, "unsupported_media_type");
    patch(&api, &path, 5, b" world and more").assert_problem(413, "beyond_length");
    let head = api.send("HEAD", &path, &[TUS], None);
    assert_eq!((head.header("upload-offset"), head.header("upload-length")), (Some("5"), Some("11")));
    assert!(head.header("upload-expires").is_some());
    // Another subject does not see it; a token confined to another prefix may not create there.
    assert_eq!(Api::of(worker, "tus-other").send("HEAD", &path, &[TUS], None).status, 404);
    let mut confined = claims("tus-raw", ALL_SCOPES);
    confined.custom.prefix = Some("mine/".into());
    let confined = api.with_token(&worker.sign(confined));
    confined
        .send("POST", "/tus", &[TUS, ("upload-length", "1"), ("upload-metadata", &metadata)], None)
        .assert_problem(403, "key_outside_prefix");
    // A REST part sent into a tus upload would break its offset: refused, the offset unchanged.
    let id = path.rsplit('/').next().unwrap();
    api.put_part(id, 1, b"hello world").assert_problem(400, "invalid_request");
    assert_eq!(offset(&api, &path), 5);
    assert_eq!(patch(&api, &path, 5, b" world").status, 204);
    assert_eq!(api.object("tus-raw/small.txt", &[]).body, b"hello world");

    // creation-defer-length: the length comes with a later PATCH.
    let path = create_deferred(&api, "tus-raw/deferred");
    assert_eq!(api.send("HEAD", &path, &[TUS], None).header("upload-defer-length"), Some("1"));
    assert_eq!(patch(&api, &path, 0, b"abc").status, 204);
    let last = api.send("PATCH", &path, &[TUS, OCTETS, ("upload-offset", "3"), ("upload-length", "6")], Some(b"def"));
    assert_eq!(last.status, 204, "{last:?}");
    assert_eq!(api.object("tus-raw/deferred", &[]).body, b"abcdef");
    // A REST complete of a deferred-length upload holding a full part and a tail would make an
    // object without the tail: refused, and the tus upload goes on.
    let path = create_deferred(&api, "tus-raw/tailed");
    let data = random_bytes(PART + 3, 13);
    assert_eq!(patch(&api, &path, 0, &data).status, 204);
    api.complete(path.rsplit('/').next().unwrap(), None).assert_problem(400, "invalid_request");
    let end = [TUS, OCTETS, ("upload-offset", &*(PART + 3).to_string()), ("upload-length", &*(PART + 3).to_string())];
    assert_eq!(api.send("PATCH", &path, &end, Some(b"")).status, 204);
    assert!(api.object("tus-raw/tailed", &[]).body == data);

    // checksum: a chunk that does not match is 460 and not kept; a matching one is.
    let path = create(&api, "tus-raw/checksum", PART + 3);
    let chunk = random_bytes(PART + 2, 12);
    let md5 = |bytes: &[u8]| {
        use jwt_simple::reexports::ct_codecs::{Base64, Encoder};
        use md5::Digest;
        format!("md5 {}", Base64::encode_to_string(md5::Md5::digest(bytes)).unwrap())
    };
    let wrong = md5(b"other bytes");
    let send = |checksum: &str| {
        let headers = [TUS, OCTETS, ("upload-offset", "0"), ("upload-checksum", checksum)];
        api.send("PATCH", &path, &headers, Some(&chunk))
    };
    send(&wrong).assert_problem(460, "checksum_mismatch");
    assert_eq!(offset(&api, &path), 0, "the chunk was not kept");
    assert!(api.state(path.trim_start_matches("/tus/")).json()["parts"].as_array().unwrap().is_empty());
    // (A small body: the header is refused before the body is read.)
    let unknown = [TUS, OCTETS, ("upload-offset", "0"), ("upload-checksum", "crc32 AAAA")];
    api.send("PATCH", &path, &unknown, Some(b"x")).assert_problem(400, "invalid_request");
    assert_eq!(send(&md5(&chunk)).status, 204);
    assert_eq!(offset(&api, &path), PART + 2);

    // termination: gone for tus, aborted for REST.
    let path = create(&api, "tus-raw/terminated", 10);
    assert_eq!(patch(&api, &path, 0, b"12345").status, 204);
    assert_eq!(api.send("DELETE", &path, &[TUS], None).status, 204);
    assert_eq!(api.send("HEAD", &path, &[TUS], None).status, 404);
    assert_eq!(api.state(path.trim_start_matches("/tus/")).json()["status"], "aborted");
}

/// The bytes a tus upload holds between appends (its tail, an R2 object under `.r2mpu/`) are
/// the server's: they show in no listing, and no one reads, deletes or overwrites them through
/// `/objects` or a new upload.
#[test]
fn tails_are_not_objects_anyone_can_list_read_or_delete() {
    let worker = Worker::shared_with(small_parts());
    let api = Api::of(worker, "tus-tails");
    let path = create_deferred(&api, "tus-tails/waiting.bin");
    let data = random_bytes(3 * MIB, 15);
    assert_eq!(patch(&api, &path, 0, &data).status, 204, "3 MiB wait in a tail");
    let id = path.trim_start_matches("/tus/");

    for listing in ["/objects", "/objects?prefix=.", "/objects?prefix=.r2mpu/tails/"] {
        let page = api.send("GET", listing, &[], None);
        assert_eq!(page.status, 200, "{listing}");
        let page = page.json();
        let keys: Vec<&str> = page["objects"].as_array().unwrap().iter().map(|o| o["key"].as_str().unwrap()).collect();
        assert!(keys.iter().all(|key| !key.starts_with(".r2mpu/")), "{listing}: {keys:?}");
    }
    let tail = format!("/objects/.r2mpu/tails/{id}/0123456789abcdef");
    for method in ["GET", "HEAD", "DELETE"] {
        let reply = api.send(method, &tail, &[], None);
        assert_eq!(reply.status, 400, "{method} {tail}");
        if method != "HEAD" {
            reply.assert_problem(400, "invalid_key");
        }
    }
    let body = serde_json::json!({ "key": format!(".r2mpu/tails/{id}/mine") });
    api.create(body).assert_problem(400, "invalid_request");
    let metadata = format!("key {}", b64(".r2mpu/tails/x"));
    let created = api.send("POST", "/tus", &[TUS, ("upload-length", "5"), ("upload-metadata", &metadata)], None);
    created.assert_problem(400, "invalid_key");

    // The tail is intact: the upload completes with its bytes.
    let end = [TUS, OCTETS, ("upload-offset", &*data.len().to_string()), ("upload-length", &*data.len().to_string())];
    assert_eq!(api.send("PATCH", &path, &end, Some(b"")).status, 204);
    assert!(api.object("tus-tails/waiting.bin", &[]).body == data);
}

/// `Upload-Checksum: ALGORITHM BASE64` for `bytes` (Python's hashlib: the tests have no sha1).
fn checksum(algorithm: &str, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chunk");
    std::fs::write(&file, bytes).unwrap();
    let script = "import base64, hashlib, sys\n\
        print(base64.b64encode(hashlib.new(sys.argv[1], open(sys.argv[2], 'rb').read()).digest()).decode())";
    let out = Command::new(repo_root().join(".venv/bin/python")).args(["-c", script, algorithm]).arg(&file).output();
    let out = out.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    format!("{algorithm} {}", String::from_utf8(out.stdout).unwrap().trim())
}

/// Every algorithm `Tus-Checksum-Algorithm` names is checked, not only md5: a sha1 or sha256
/// that does not match is `460` and keeps nothing (the offset stays); the right one is taken.
#[test]
fn sha1_and_sha256_checksums_are_checked_a_mismatch_is_460_and_the_offset_stays() {
    let worker = Worker::shared_with(small_parts());
    let api = Api::of(worker, "tus-checksums");
    let chunk = random_bytes(MIB + 5, 13);
    for algorithm in ["sha1", "sha256"] {
        let path = create(&api, &format!("tus-checksums/{algorithm}"), 2 * MIB);
        let send = |checksum: &str| {
            let headers = [TUS, OCTETS, ("upload-offset", "0"), ("upload-checksum", checksum)];
            api.send("PATCH", &path, &headers, Some(&chunk))
        };
        send(&checksum(algorithm, b"other bytes")).assert_problem(460, "checksum_mismatch");
        assert_eq!(offset(&api, &path), 0, "{algorithm}: the chunk was not kept");
        let right = send(&checksum(algorithm, &chunk));
        assert_eq!(right.status, 204, "{algorithm}: {}", String::from_utf8_lossy(&right.body));
        assert_eq!(offset(&api, &path), chunk.len(), "{algorithm}: the matching chunk was kept");
    }
}

/// tuspy (PyPI) and tus-js-client (npm) upload with chunks that do not divide the part size,
/// stop half-way, and a fresh client resumes from the upload URL alone (no endpoint to create a
/// new upload with): from at least where the first stopped, and no other upload is left over.
#[test]
fn real_tus_clients_upload_stop_and_resume_from_the_url() {
    let worker = Worker::shared_with(small_parts());
    let token = worker.token("tus-clients", ALL_SCOPES);
    let api = Api::of(worker, "tus-clients");
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(2 * PART + 777_777, 11);
    let file = dir.path().join("in.bin");
    std::fs::write(&file, &data).unwrap();
    let clients = [
        ("python", "tus-v1", "tus-clients/tuspy.bin"),
        ("node", "tus-v1", "tus-clients/tus-js-client.bin"),
        ("node", "ietf-draft-05", "tus-clients/tus-js-client-draft-05.bin"),
        ("node", "ietf-draft-03", "tus-clients/tus-js-client-draft-03.bin"),
    ];
    for (client, protocol, key) in clients {
        let mut command = match client {
            "python" => {
                let mut c = Command::new(repo_root().join(".venv/bin/python"));
                c.arg(repo_root().join("tests/tus/tuspy_client.py"));
                c
            }
            _ => {
                let mut c = Command::new("node");
                c.arg(repo_root().join("tests/tus/tus_js_client.mjs")).env("PATH", node_path());
                c
            }
        };
        let output = command
            .arg(&file)
            .arg(key)
            .env("R2MPU_URL", &worker.url)
            .env("R2MPU_TOKEN", &token)
            .env("CHUNK_SIZE", (3 * MIB + 17).to_string())
            .env("TUS_PROTOCOL", protocol)
            .current_dir(repo_root())
            .output()
            .unwrap();
        let log = format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "{client} {protocol}: {log}");
        // The fresh client resumed this upload at its offset: it did not start one afresh.
        let (stopped, resumed) = (number_after(&log, "stopped at "), number_after(&log, "resumed from "));
        assert!(stopped > 0 && resumed >= stopped, "{client} {protocol}: stopped at {stopped}, resumed from {resumed}");
        assert_eq!(listed(&api), Vec::<String>::new(), "{client} {protocol}: no second upload was made");
        let object = api.object(key, &[]);
        assert_eq!(object.status, 200, "{client} {protocol}");
        assert!(object.body == data, "{client} {protocol}: the object is the file");
    }
}

/// The number that follows `label` in a client's log (0 if none).
fn number_after(log: &str, label: &str) -> usize {
    let rest = log.split(label).nth(1).unwrap_or_default();
    rest.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// The IETF draft at interop versions 7 (drafts 06 to 08) and 8 (draft 09 and later; 5 and 6
/// through tus-js-client above): careful creation, offset retrieval, appends with
/// `application/partial-upload` and `Upload-Complete`, the draft's problem for a mismatching
/// offset, `Upload-Limit` on creation and on `HEAD`, cancellation.
#[test]
fn the_ietf_draft_creates_appends_resumes_and_cancels() {
    let worker = Worker::shared_with(small_parts());
    let api = Api::of(worker, "tus-draft");
    for version in ["7", "8"] {
        the_draft_at(&api, version);
    }
    let unknown = api.send("POST", "/tus", &[("upload-draft-interop-version", "99"), ("upload-complete", "?0")], None);
    unknown.assert_problem(400, "invalid_request");
}

fn the_draft_at(api: &Api, version: &str) {
    let draft = ("upload-draft-interop-version", version);
    const PARTIAL: (&str, &str) = ("content-type", "application/partial-upload");
    // 10,000 parts of this Worker's 5 MiB, Cloudflare's 100 MiB body, the configured 24 h TTL.
    let limit = format!("max-size={}, max-append-size=104857600, max-age=86400", PART as u64 * 10_000);
    let data = random_bytes(PART + 1000, 13);
    let key = format!("tus-draft/v{version}/file.bin");
    let metadata = format!("key {}", b64(&key));
    let created = api.send("POST", "/tus", &[draft, ("upload-complete", "?0"), ("upload-metadata", &metadata)], None);
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!((created.header("upload-offset"), created.header("upload-complete")), (Some("0"), Some("?0")));
    assert_eq!(created.header("upload-draft-interop-version"), Some(version), "answered in the version asked");
    assert_eq!(created.header("upload-limit"), Some(limit.as_str()));
    let path = created.header("location").unwrap().to_string();
    let append = |offset: usize, complete: &str, bytes: &[u8], media: (&str, &str)| {
        let offset = offset.to_string();
        api.send(
            "PATCH",
            &path,
            &[draft, media, ("upload-offset", &offset), ("upload-complete", complete)],
            Some(bytes),
        )
    };

    let first = append(0, "?0", &data[..3 * MIB], PARTIAL);
    assert_eq!(
        (first.status, first.header("upload-offset")),
        (204, Some((3 * MIB).to_string().as_str())),
        "v{version}"
    );
    append(3 * MIB, "?0", b"x", OCTETS).assert_problem(415, "unsupported_media_type");
    let behind = append(MIB, "?0", b"x", PARTIAL);
    behind.assert_problem(409, "offset_mismatch");
    assert_eq!(behind.header("upload-offset"), Some("3145728"), "a 409 carries the right offset");
    let problem = behind.json();
    assert_eq!(problem["type"], "https://iana.org/assignments/http-problem-types#mismatching-upload-offset");
    assert_eq!(
        (problem["expected-offset"].as_u64(), problem["provided-offset"].as_u64()),
        (Some(3 << 20), Some(1 << 20))
    );

    let head = api.send("HEAD", &path, &[draft], None);
    assert_eq!(head.status, 204);
    assert_eq!((head.header("upload-offset"), head.header("upload-complete")), (Some("3145728"), Some("?0")));
    assert_eq!(head.header("upload-limit"), Some(limit.as_str()), "HEAD says the limits too");
    assert_eq!(head.header("upload-draft-interop-version"), Some(version));
    assert_eq!(head.header("cache-control"), Some("no-store"));
    let last = append(3 * MIB, "?1", &data[3 * MIB..], PARTIAL);
    assert_eq!((last.status, last.header("upload-complete")), (204, Some("?1")), "{last:?}");
    assert!(api.object(&key, &[]).body == data, "v{version}");
    // Bytes past a completed upload are the draft's inconsistent length, wherever they claim to go.
    for offset in [data.len(), 0] {
        append(offset, "?0", b"x", PARTIAL).assert_problem(400, "invalid_request");
    }

    // Optimistic creation of a whole small object, named as the draft names it (the file name of
    // its Content-Disposition, its Content-Type), and cancellation of another.
    let named_key = format!("tus-draft/v{version}/all at once.txt");
    let disposition =
        format!(r#"inline; filename="x"; filename*=UTF-8''{}"#, named_key.replace('/', "%2F").replace(' ', "%20"));
    let named =
        [draft, ("upload-complete", "?1"), ("content-type", "text/plain"), ("content-disposition", &disposition)];
    let whole = api.send("POST", "/tus", &named, Some(b"all at once"));
    assert_eq!((whole.status, whole.header("upload-complete")), (201, Some("?1")), "{whole:?}");
    let stored = api.state(whole.header("location").unwrap().trim_start_matches("/tus/")).json()["key"].clone();
    assert_eq!(stored, named_key.as_str());
    let object = api.object(&named_key, &[]);
    assert_eq!((object.body.as_slice(), object.header("content-type")), (&b"all at once"[..], Some("text/plain")));
    let cancelled = api.send("POST", "/tus", &[draft, ("upload-complete", "?0")], None);
    let path = cancelled.header("location").unwrap();
    assert_eq!(api.send("DELETE", path, &[draft], None).status, 204);
    assert_eq!(api.send("HEAD", path, &[draft], None).status, 404);
}

/// `GET /uploads` for `api`'s subject: the ids of its unfinished uploads.
fn listed(api: &Api) -> Vec<String> {
    let list = api.send("GET", "/uploads", &[], None);
    assert_eq!(list.status, 200, "{}", String::from_utf8_lossy(&list.body));
    list.json()["uploads"].as_array().unwrap().iter().map(|u| u["uploadId"].as_str().unwrap().into()).collect()
}

/// Issue 19, item 4: a create-with-upload sent again with the same `Idempotency-Key` (a retry
/// after a lost answer) gets the upload as it is, at its offset: its body is not appended twice.
#[test]
fn a_repeated_create_with_upload_answers_the_upload_and_never_appends_its_body_again() {
    let worker = Worker::shared_with(small_parts());
    let api = Api::of(worker, "tus-replay");
    let metadata = format!("key {}", b64("tus-replay/hello.txt"));
    let headers = [TUS, OCTETS, ("upload-length", "10"), ("upload-metadata", &metadata), ("idempotency-key", "k-1")];
    let first = api.send("POST", "/tus", &headers, Some(b"hello"));
    assert_eq!((first.status, first.header("upload-offset")), (201, Some("5")), "{first:?}");
    let again = api.send("POST", "/tus", &headers, Some(b"hello"));
    assert_eq!((again.status, again.header("upload-offset")), (201, Some("5")), "{again:?}");
    assert_eq!(again.header("location"), first.header("location"), "the same upload");
    let path = first.header("location").unwrap();
    assert_eq!(offset(&api, path), 5, "the replay appended nothing");
    assert_eq!(patch(&api, path, 5, b"world").status, 204);
    assert_eq!(api.object("tus-replay/hello.txt", &[]).body, b"helloworld");
}

/// Issue 19, item 5: a PATCH that is refused changes nothing, not even the deferred length it
/// declares; and an offset plus length past 2^64 is a client's error, not arithmetic that wraps.
#[test]
fn a_refused_patch_changes_nothing_not_even_a_deferred_length() {
    let worker = Worker::shared_with(small_parts());
    let api = Api::of(worker, "tus-refused");
    let path = create_deferred(&api, "tus-refused/file.txt");
    assert_eq!(patch(&api, &path, 0, b"hello").status, 204);
    let deferred = || {
        let head = api.send("HEAD", &path, &[TUS], None);
        (head.header("upload-offset").map(String::from), head.header("upload-defer-length").map(String::from))
    };

    // A stale offset declaring the length: 409, and the length is still deferred.
    let stale = [TUS, OCTETS, ("upload-offset", "0"), ("upload-length", "5")];
    api.send("PATCH", &path, &stale, Some(b"")).assert_problem(409, "offset_mismatch");
    assert_eq!(deferred(), (Some("5".into()), Some("1".into())));
    // A body longer than the length it declares: 413, and the length is still deferred.
    let long = [TUS, OCTETS, ("upload-offset", "5"), ("upload-length", "7")];
    api.send("PATCH", &path, &long, Some(b"world")).assert_problem(413, "beyond_length");
    assert_eq!(deferred(), (Some("5".into()), Some("1".into())));
    // The draft's length is offset + Content-Length: past u64::MAX it is refused as it is.
    let draft = [
        ("upload-draft-interop-version", "8"),
        ("content-type", "application/partial-upload"),
        ("upload-offset", "18446744073709551615"),
        ("upload-complete", "?1"),
    ];
    api.send("PATCH", &path, &draft, Some(b"!")).assert_problem(400, "invalid_request");
    assert_eq!(deferred(), (Some("5".into()), Some("1".into())));

    let last = [TUS, OCTETS, ("upload-offset", "5"), ("upload-length", "10")];
    assert_eq!(api.send("PATCH", &path, &last, Some(b"world")).status, 204);
    assert_eq!(api.object("tus-refused/file.txt", &[]).body, b"helloworld");
}

/// Issue 19, item 8: a create refused for its body (its media type, its checksum, its length)
/// leaves no upload behind: nothing new is listed.
#[test]
fn a_create_refused_for_its_body_creates_no_upload() {
    let worker = Worker::shared_with(small_parts());
    let api = Api::of(worker, "tus-refused-create");
    let metadata = format!("key {}", b64("tus-refused-create/file.txt"));
    let create = |extra: &[(&str, &str)], body: &[u8]| {
        let mut headers = vec![TUS, ("upload-length", "10"), ("upload-metadata", metadata.as_str())];
        headers.extend_from_slice(extra);
        api.send("POST", "/tus", &headers, Some(body))
    };
    create(&[("content-type", "text/plain")], b"hello").assert_problem(415, "unsupported_media_type");
    assert_eq!(listed(&api), Vec::<String>::new(), "after a 415");
    create(&[OCTETS, ("upload-checksum", "sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA=")], b"hello")
        .assert_problem(460, "checksum_mismatch");
    assert_eq!(listed(&api), Vec::<String>::new(), "after a 460");
    create(&[OCTETS], b"hello world").assert_problem(413, "beyond_length");
    assert_eq!(listed(&api), Vec::<String>::new(), "after a 413");
    assert_eq!(create(&[OCTETS], b"hello").status, 201);
    assert_eq!(listed(&api).len(), 1, "an accepted create is listed");
}

/// Issue 19, item 9: `HEAD` gives back the `Upload-Metadata` of the creation (tus's creation
/// extension: MUST); a length above `Tus-Max-Size` is `413`.
#[test]
fn head_returns_the_metadata_and_lengths_beyond_the_limits_are_413() {
    let worker = Worker::shared_with(small_parts());
    let api = Api::of(worker, "tus-limits");
    let metadata = format!("filename {},filetype {},empty", b64("tus-limits/a.txt"), b64("text/plain"));
    let created = api.send("POST", "/tus", &[TUS, ("upload-length", "3"), ("upload-metadata", &metadata)], None);
    assert_eq!(created.status, 201, "{created:?}");
    let path = created.header("location").unwrap();
    let head = api.send("HEAD", path, &[TUS], None);
    let mut pairs: Vec<&str> = head.header("upload-metadata").expect("Upload-Metadata").split(',').collect();
    pairs.sort();
    let mut expected: Vec<&str> = metadata.split(',').collect();
    expected.sort();
    assert_eq!(pairs, expected);

    let max = PART as u64 * 10_000;
    let too_long = (max + 1).to_string();
    let refused = api.send("POST", "/tus", &[TUS, ("upload-length", &too_long)], None);
    refused.assert_problem(413, "beyond_length");
    assert_eq!(listed(&api).len(), 1, "only the first upload");
}

/// Polls `check` every 200 ms until it answers `Some`, for at most `seconds`.
fn within<T>(seconds: u64, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Issue 19, item 6: the last PATCH records the last byte, then its complete fails (the fault
/// build injects it, before or in R2). The next HEAD, or the next PATCH, finishes the upload as
/// a repeated complete does: the object is the bytes sent.
#[test]
fn a_tus_upload_whose_last_complete_failed_is_finished_by_the_next_head_or_patch() {
    let worker = Worker::shared_faults();
    let api = Api::of(worker, "tus-finish");
    for (round, fault) in ["r2.complete=fail", "complete.before-r2=fail", "complete.after-r2=fail"].iter().enumerate() {
        for next in ["HEAD", "PATCH"] {
            let key = format!("tus-finish/{round}-{next}.txt");
            let path = create(&api, &key, 10);
            assert_eq!(patch(&api, &path, 0, b"hello").status, 204);
            let headers = [TUS, OCTETS, ("upload-offset", "5"), ("x-r2mpu-fault", fault)];
            let failed = api.send("PATCH", &path, &headers, Some(b"world"));
            failed.assert_problem(500, "internal");
            let state = api.state(path.trim_start_matches("/tus/")).json();
            assert_eq!(state["status"], "completing", "{fault}: the record holds every byte, not completed");

            let answer = match next {
                "HEAD" => api.send("HEAD", &path, &[TUS], None),
                _ => patch(&api, &path, 10, b""),
            };
            assert_eq!(answer.status, if next == "HEAD" { 200 } else { 204 }, "{fault}, {next}: {answer:?}");
            assert_eq!(answer.header("upload-offset"), Some("10"), "{fault}, {next}");
            assert_eq!(api.state(path.trim_start_matches("/tus/")).json()["status"], "completed", "{fault}, {next}");
            assert_eq!(api.object(&key, &[]).body, b"helloworld", "{fault}, {next}");
        }
    }
}

/// The same for a deferred length declared by an empty PATCH once every byte has arrived: its
/// bytes wait in the tail, and the PATCH that declares the length turns the tail into the last
/// part. When that fails in R2, the length stands (offset = length), so a client that HEADs
/// is told it is done: that HEAD, or the next PATCH, sends the tail as the last part and
/// completes, so the offset never stands for an object that does not exist.
#[test]
fn a_deferred_length_declared_once_every_byte_arrived_is_finished_by_the_next_head_or_patch() {
    let worker = Worker::shared_faults();
    let api = Api::of(worker, "tus-finish-tail");
    for next in ["HEAD", "PATCH"] {
        let key = format!("tus-finish-tail/{next}.txt");
        let path = create_deferred(&api, &key);
        assert_eq!(patch(&api, &path, 0, b"helloworld").status, 204);
        let headers =
            [TUS, OCTETS, ("upload-offset", "10"), ("upload-length", "10"), ("x-r2mpu-fault", "r2.append-part=fail")];
        api.send("PATCH", &path, &headers, Some(b"")).assert_problem(500, "internal");

        let answer = match next {
            "HEAD" => api.send("HEAD", &path, &[TUS], None),
            _ => api.send("PATCH", &path, &[TUS, OCTETS, ("upload-offset", "10"), ("upload-length", "10")], Some(b"")),
        };
        assert_eq!(answer.status, if next == "HEAD" { 200 } else { 204 }, "{next}: {answer:?}");
        assert_eq!(answer.header("upload-offset"), Some("10"), "{next}: {answer:?}");
        assert_eq!(api.state(path.trim_start_matches("/tus/")).json()["status"], "completed", "{next}");
        assert_eq!(api.object(&key, &[]).body, b"helloworld", "{next}");
    }
}

/// Issue 19, item 6: with no HEAD or PATCH after the failed complete, the upload's alarm
/// finishes it when its TTL runs out, instead of aborting an upload that holds every byte.
#[test]
fn the_alarm_finishes_a_tus_upload_whose_last_complete_failed() {
    let worker = Worker::start_with_faults(Options { vars: vec![("UPLOAD_TTL".into(), "3s".into())] });
    let api = Api::of(&worker, "tus-alarm-finish");
    let path = create(&api, "tus-alarm/file.txt", 10);
    let id = path.trim_start_matches("/tus/").to_string();
    let headers = [TUS, OCTETS, ("upload-offset", "0"), ("x-r2mpu-fault", "r2.complete=fail")];
    api.send("PATCH", &path, &headers, Some(b"helloworld")).assert_problem(500, "internal");
    let settled = within(30, || {
        let status = api.state(&id).json()["status"].as_str().unwrap().to_string();
        (status != "open" && status != "completing").then_some(status)
    });
    assert_eq!(settled.as_deref(), Some("completed"));
    assert_eq!(api.object("tus-alarm/file.txt", &[]).body, b"helloworld");
}

/// Issue 19, item 10: an index write that fails while an upload is created is retried half a
/// minute later (not one `UPLOAD_TTL`, a day, later): the upload is listed soon.
#[test]
fn an_index_write_that_failed_at_create_is_retried_within_a_minute() {
    let worker = Worker::shared_faults();
    let api = Api::of(worker, "tus-index-retry");
    let metadata = format!("key {}", b64("tus-index/file.txt"));
    let headers =
        [TUS, ("upload-length", "10"), ("upload-metadata", &metadata), ("x-r2mpu-fault", "index.update=fail")];
    let created = api.send("POST", "/tus", &headers, None);
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.header("location").unwrap().trim_start_matches("/tus/").to_string();
    assert_eq!(listed(&api), Vec::<String>::new(), "the index never heard of it");
    let started = std::time::Instant::now();
    let seen = within(60, || listed(&api).contains(&id).then_some(()));
    assert!(seen.is_some(), "listed {:?} after the create", started.elapsed());
}
