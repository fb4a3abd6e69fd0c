//! The REST API, driven over HTTP against a real `wrangler dev` with local R2. Each test reads
//! as a use of the API and asserts what a client relies on: bytes, statuses, error codes.

mod util;

use std::thread;

use serde_json::json;
use util::*;

fn api(sub: &str) -> Api {
    Api::of(Worker::shared(), sub)
}

// ---- Uploading -------------------------------------------------------------------------------

#[test]
fn objects_round_trip_byte_for_byte_at_sizes_around_part_boundaries() {
    let api = api("round-trip");
    for (i, size) in [1, PART - 1, PART, PART + 1, 3 * PART + 17].into_iter().enumerate() {
        let data = random_bytes(size, i as u64);
        let key = format!("round-trip/{size}.bin");
        let done = api.upload(&key, &data, PART);
        assert_eq!(done["size"], size, "{key}");
        assert_eq!(done["etag"], multipart_etag(&data, PART), "{key}");

        let got = api.object(&key, &[]);
        assert_eq!(got.status, 200);
        assert_eq!(got.header("etag"), Some(format!("\"{}\"", multipart_etag(&data, PART)).as_str()));
        assert_eq!(got.header("content-length"), Some(size.to_string().as_str()));
        assert!(got.body == data, "{key}: the bytes differ");
    }
}

#[test]
fn parts_may_arrive_in_parallel_and_out_of_order_without_a_declared_size() {
    let api = api("parallel");
    let data = random_bytes(5 * PART + 1234, 7);
    let id = api.create_id(json!({"key": "parallel/file.bin", "partSize": PART}));
    let parts: Vec<(usize, Vec<u8>)> = chunks(&data, PART).map(|c| c.to_vec()).enumerate().rev().collect();
    let handles: Vec<_> = parts
        .into_iter()
        .map(|(i, bytes)| {
            let (api, id) = (api.clone(), id.clone());
            thread::spawn(move || api.put_part(&id, i + 1, &bytes).status)
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().unwrap(), 200);
    }
    let done = api.complete(&id, None);
    assert_eq!(done.status, 200);
    assert_eq!(done.json()["etag"], multipart_etag(&data, PART));
    assert!(api.object("parallel/file.bin", &[]).body == data);
}

#[test]
fn part_ten_thousand_is_answered_like_part_one_and_the_upload_still_lists_every_part() {
    let api = api("many-parts");
    // Without a declared size any part up to the part size is taken until complete: 1-byte
    // parts make a large part count cheap to reach.
    let id = api.create_id(json!({"key": "many-parts/file.bin", "partSize": PART}));
    let numbers: Vec<u16> = (1..=200).chain([9_999, 10_000]).collect();
    let handles: Vec<_> = numbers
        .chunks(51)
        .map(|chunk| {
            let (api, id, chunk) = (api.clone(), id.clone(), chunk.to_vec());
            thread::spawn(move || chunk.into_iter().map(|n| (n, api.put_part(&id, n, &[n as u8]))).collect::<Vec<_>>())
        })
        .collect();
    let mut answers: Vec<(u16, Reply)> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    answers.sort_by_key(|(n, _)| *n);
    for (n, reply) in &answers {
        assert_eq!(reply.status, 200, "part {n}: {}", String::from_utf8_lossy(&reply.body));
        let part = reply.json();
        let mut fields: Vec<&str> = part.as_object().unwrap().keys().map(String::as_str).collect();
        fields.sort();
        assert_eq!(fields, ["etag", "partNumber", "size"], "part {n}: the part and nothing else");
        assert_eq!((part["partNumber"].as_u64(), part["size"].as_u64()), (Some(u64::from(*n)), Some(1)));
        assert_eq!(reply.header("etag"), Some(format!("\"{}\"", part["etag"].as_str().unwrap()).as_str()));
    }
    let (first, last) = (&answers[0].1, &answers[answers.len() - 1].1);
    let digits = "10000".len() - "1".len();
    assert_eq!(last.body.len(), first.body.len() + digits, "part 10,000's answer is part 1's, but for its number");

    let listed = api.state(&id).json()["parts"].as_array().unwrap().clone();
    let listed: Vec<(u64, String)> =
        listed.iter().map(|p| (p["partNumber"].as_u64().unwrap(), p["etag"].as_str().unwrap().to_string())).collect();
    let sent: Vec<(u64, String)> =
        answers.iter().map(|(n, r)| (u64::from(*n), r.json()["etag"].as_str().unwrap().to_string())).collect();
    assert_eq!(listed, sent, "every part is listed, in order, with the ETag its PUT answered");
    assert_eq!(api.abort(&id).status, 204);
    api.put_part(&id, 10_000, b"x").assert_problem(409, "upload_aborted");
}

/// Sends the headers of a `PUT` of part `n` announcing `len` bytes, then only `sent` of them,
/// and drops the connection: a client killed, or a network cut, in the middle of a part.
fn put_part_and_hang_up(api: &Api, id: &str, n: u16, len: usize, sent: &[u8]) {
    use std::io::Write;
    let address = api.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let head = format!(
        "PUT /uploads/{id}/parts/{n} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n",
        api.token.as_deref().unwrap()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(sent).unwrap();
    stream.flush().unwrap();
    // Let the bytes reach the Worker and the part start streaming into R2, then cut.
    thread::sleep(std::time::Duration::from_millis(500));
    stream.shutdown(std::net::Shutdown::Both).unwrap();
}

#[test]
fn an_interrupted_upload_resumes_from_the_parts_the_server_lists() {
    let api = api("resume");
    let data = random_bytes(3 * PART + 5, 3);
    let parts: Vec<&[u8]> = chunks(&data, PART).collect();
    let id = api.create_id(json!({"key": "resume/file.bin", "size": data.len(), "partSize": PART}));
    assert_eq!(api.put_part(&id, 1, parts[0]).status, 200);
    assert_eq!(api.put_part(&id, 4, parts[3]).status, 200);
    // The connection drops halfway through part 2.
    put_part_and_hang_up(&api, &id, 2, PART, &parts[1][..PART / 2]);

    // A new client process knows only the upload id. Part 2 is not there, not even in part.
    let parts_listed = || {
        let state = api.state(&id).json();
        assert_eq!(state["status"], "open");
        assert_eq!(state["partCount"], 4);
        let have: Vec<(u64, u64)> = state["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["partNumber"].as_u64().unwrap(), p["size"].as_u64().unwrap()))
            .collect();
        have
    };
    // The Worker may take a moment to notice the cut; it never records the half part.
    for _ in 0..10 {
        assert_eq!(parts_listed(), vec![(1, PART as u64), (4, 5)]);
        thread::sleep(std::time::Duration::from_millis(200));
    }
    for n in [2, 3] {
        assert_eq!(api.put_part(&id, n, parts[n as usize - 1]).status, 200);
    }
    let done = api.complete(&id, None);
    assert_eq!(done.status, 200, "{}", String::from_utf8_lossy(&done.body));
    assert_eq!(done.json()["etag"], multipart_etag(&data, PART));
    assert!(api.object("resume/file.bin", &[]).body == data);
}

#[test]
fn re_sending_a_part_replaces_it() {
    let api = api("replace");
    let data = random_bytes(PART + 10, 11);
    let id = api.create_id(json!({"key": "replace/file.bin", "size": data.len(), "partSize": PART}));
    let wrong = random_bytes(PART, 99);
    assert_eq!(api.put_part(&id, 1, &wrong).status, 200);
    assert_eq!(api.put_part(&id, 1, &data[..PART]).status, 200);
    assert_eq!(api.put_part(&id, 2, &data[PART..]).status, 200);
    assert_eq!(api.state(&id).json()["parts"].as_array().unwrap().len(), 2);
    assert_eq!(api.complete(&id, None).status, 200);
    assert!(api.object("replace/file.bin", &[]).body == data);
}

#[test]
fn complete_checks_a_client_part_list_against_the_recorded_parts() {
    let api = api("listed");
    let data = random_bytes(PART + 3, 5);
    let id = api.create_id(json!({"key": "listed/file.bin", "size": data.len(), "partSize": PART}));
    let e1 = api.put_part(&id, 1, &data[..PART]).json()["etag"].as_str().unwrap().to_string();
    let e2 = api.put_part(&id, 2, &data[PART..]).json()["etag"].as_str().unwrap().to_string();

    let listed = |parts: serde_json::Value| api.complete(&id, Some(json!({ "parts": parts })));
    listed(json!([{"partNumber": 1, "etag": e1}, {"partNumber": 2, "etag": "nope"}]))
        .assert_problem(400, "etag_mismatch");
    listed(json!([{"partNumber": 1, "etag": e1}, {"partNumber": 1, "etag": e1}])).assert_problem(400, "duplicate_part");
    listed(json!([{"partNumber": 1, "etag": e1}, {"partNumber": 3, "etag": e2}]))
        .assert_problem(400, "part_not_uploaded");
    listed(json!([{"partNumber": 2, "etag": e2}])).assert_problem(400, "parts_missing");
    listed(json!([])).assert_problem(400, "invalid_request");

    // None of that harmed the upload.
    let done = listed(json!([{"partNumber": 2, "etag": e2}, {"partNumber": 1, "etag": e1}]));
    assert_eq!(done.status, 200);
    assert_eq!(done.json()["etag"], multipart_etag(&data, PART));
}

/// A smoke test: two completes sent at once both answer the object. Nothing makes them overlap
/// (they may run one after the other); tests/races.rs
/// `a_second_complete_during_a_complete_waits_and_answers_the_same_object` holds the first.
#[test]
fn smoke_two_completes_at_once_both_answer_the_object() {
    let api = api("idempotent");
    let data = random_bytes(2 * PART, 13);
    let id = api.send_parts("idempotent/file.bin", &data, PART);
    let racers: Vec<_> = (0..2)
        .map(|_| {
            let (api, id) = (api.clone(), id.clone());
            thread::spawn(move || api.complete(&id, None))
        })
        .collect();
    let results: Vec<Reply> = racers.into_iter().map(|h| h.join().unwrap()).collect();
    for reply in &results {
        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
        assert_eq!(reply.json()["etag"], multipart_etag(&data, PART));
    }
    let again = api.complete(&id, None);
    assert_eq!(again.status, 200);
    assert_eq!(again.json(), results[0].json());
    assert_eq!(api.state(&id).json()["status"], "completed");
    api.put_part(&id, 1, &data[..PART]).assert_problem(409, "upload_completed");
    api.abort(&id).assert_problem(409, "upload_completed");
}

#[test]
fn an_aborted_upload_takes_no_parts_and_cannot_be_completed() {
    let api = api("abort");
    let data = random_bytes(PART, 17);
    let id = api.create_id(json!({"key": "abort/file.bin", "partSize": PART}));
    assert_eq!(api.put_part(&id, 1, &data).status, 200);
    assert_eq!(api.abort(&id).status, 204);
    assert_eq!(api.abort(&id).status, 204, "aborting twice is fine");
    assert_eq!(api.state(&id).json()["status"], "aborted");
    api.put_part(&id, 2, &data).assert_problem(409, "upload_aborted");
    api.complete(&id, None).assert_problem(409, "upload_aborted");
    api.object("abort/file.bin", &[]).assert_problem(404, "object_not_found");
}

#[test]
fn an_empty_object_is_one_empty_part() {
    let api = api("empty");
    let done = api.upload("empty/zero.bin", &[], PART);
    assert_eq!(done["size"], 0);
    let got = api.object("empty/zero.bin", &[]);
    assert_eq!((got.status, got.body.len()), (200, 0));
}

#[test]
fn create_answers_201_with_location_defaults_and_metadata() {
    let api = api("create");
    let reply = api.create(json!({"key": "create/a.txt", "contentType": "text/plain", "metadata": {"owner": "qa"}}));
    assert_eq!(reply.status, 201);
    let upload = reply.json();
    let id = upload["uploadId"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    assert_eq!(reply.header("location"), Some(format!("/uploads/{id}").as_str()));
    assert_eq!(upload["partSize"], 16 * MIB, "the default part size");
    assert_eq!(upload["status"], "open");
    assert_eq!(upload["metadata"]["owner"], "qa");
    assert!(upload["expiresAt"].as_str().unwrap() > upload["createdAt"].as_str().unwrap());

    assert_eq!(api.put_part(id, 1, b"hello").status, 200);
    assert_eq!(api.complete(id, None).status, 200);
    let got = api.object("create/a.txt", &[]);
    assert_eq!(got.header("content-type"), Some("text/plain"));
    assert_eq!(got.body, b"hello");
}

#[test]
fn a_part_whose_content_md5_does_not_match_is_refused_and_not_recorded() {
    use jwt_simple::reexports::ct_codecs::{Base64, Encoder};
    use md5::{Digest, Md5};
    let md5 = |bytes: &[u8]| Base64::encode_to_string(Md5::digest(bytes)).unwrap();
    let api = api("content-md5");
    let data = random_bytes(PART + 77, 61);
    let (first, last) = data.split_at(PART);
    let id = api.create_id(json!({"key": "md5/file.bin", "size": data.len(), "partSize": PART}));
    let put = |n: u16, bytes: &[u8], digest: &str| {
        api.send("PUT", &format!("/uploads/{id}/parts/{n}"), &[("content-md5", digest)], Some(bytes))
    };

    assert_eq!(put(1, first, &md5(first)).status, 200);
    put(2, last, &md5(b"something else")).assert_problem(400, "digest_mismatch");
    let parts = |state: serde_json::Value| -> Vec<u64> {
        state["parts"].as_array().unwrap().iter().map(|p| p["partNumber"].as_u64().unwrap()).collect()
    };
    assert_eq!(parts(api.state(&id).json()), vec![1], "the bad part was not recorded");

    // A corrupted re-send of a recorded part voids the earlier copy too: R2 holds the bad bytes.
    let mut corrupted = first.to_vec();
    corrupted[0] ^= 1;
    put(1, &corrupted, &md5(first)).assert_problem(400, "digest_mismatch");
    assert!(parts(api.state(&id).json()).is_empty());
    put(1, first, "not base64").assert_problem(400, "invalid_request");

    assert_eq!(put(1, first, &md5(first)).status, 200);
    assert_eq!(put(2, last, &md5(last)).status, 200);
    assert_eq!(api.complete(&id, None).status, 200);
    assert!(api.object("md5/file.bin", &[]).body == data);
}

// ---- Validation at the door -----------------------------------------------------------------

#[test]
fn part_numbers_outside_1_to_10000_are_refused() {
    let api = api("part-numbers");
    let id = api.create_id(json!({"key": "pn/file.bin", "partSize": PART}));
    for bad in ["0", "10001", "-1", "1e3", "abc", "99999999999999999999", "1.5"] {
        api.put_part(&id, bad, b"x").assert_problem(400, "invalid_part_number");
    }
    let declared = api.create_id(json!({"key": "pn/sized.bin", "size": 10, "partSize": PART}));
    api.put_part(&declared, 2, b"x").assert_problem(400, "invalid_part_number");
    assert_eq!(api.put_part(&id, 10000, b"x").status, 200, "10000 is a valid part number");
}

#[test]
fn parts_of_the_wrong_size_are_refused_before_reaching_r2() {
    let api = api("part-sizes");
    let data = random_bytes(PART + 10, 31);
    let id = api.create_id(json!({"key": "ps/file.bin", "size": data.len(), "partSize": PART}));
    let good = api.put_part(&id, 1, &data[..PART]);
    assert_eq!(good.status, 200);
    let recorded = api.state(&id).json()["parts"].clone();

    // Copies of part 1 one byte short and one byte long, then a last part of the wrong length.
    for wrong in [&data[..PART - 1], &random_bytes(PART + 1, 1)[..]] {
        let reply = api.put_part(&id, 1, wrong);
        reply.assert_problem(400, "part_size_mismatch");
        assert_eq!(
            (reply.json()["expected"].as_u64(), reply.json()["actual"].as_u64()),
            (Some(PART as u64), Some(wrong.len() as u64))
        );
    }
    api.put_part(&id, 2, &random_bytes(11, 1)).assert_problem(400, "part_size_mismatch");
    // The good part 1 survived the wrong copies: same record, and its bytes make the object.
    assert_eq!(api.state(&id).json()["parts"], recorded);
    assert_eq!(api.put_part(&id, 2, &data[PART..]).status, 200);
    let done = api.complete(&id, None);
    assert_eq!(done.status, 200, "{}", String::from_utf8_lossy(&done.body));
    assert_eq!(done.json()["etag"], multipart_etag(&data, PART));
    assert!(api.object("ps/file.bin", &[]).body == data, "the good bytes of part 1 were lost");

    let open = api.create_id(json!({"key": "ps/open.bin", "partSize": PART}));
    api.put_part(&open, 1, &random_bytes(PART + 1, 1)).assert_problem(400, "part_size_mismatch");
    api.put_part(&open, 1, b"").assert_problem(400, "part_size_mismatch");
    // Short parts are fine until complete shows they are not the last.
    assert_eq!(api.put_part(&open, 1, b"short").status, 200);
    assert_eq!(api.put_part(&open, 2, b"tail").status, 200);
    api.complete(&open, None).assert_problem(400, "part_size_mismatch");
    // ...and the upload is unharmed: fix part 1 and complete.
    let first = random_bytes(PART, 2);
    assert_eq!(api.put_part(&open, 1, &first).status, 200);
    assert_eq!(api.complete(&open, None).status, 200);
}

#[test]
fn a_part_needs_a_content_length_and_a_binary_content_type() {
    let api = api("part-headers");
    let id = api.create_id(json!({"key": "ph/file.bin", "partSize": PART}));
    let chunked = {
        let mut reader: &[u8] = b"some bytes";
        let mut request = ureq::http::Request::builder()
            .method("PUT")
            .uri(format!("{}/uploads/{id}/parts/1", api.base))
            .header("authorization", format!("Bearer {}", api.token.as_deref().unwrap()));
        request = request.header("content-type", "application/octet-stream");
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut response = agent.run(request.body(ureq::SendBody::from_reader(&mut reader)).unwrap()).unwrap();
        (response.status().as_u16(), response.body_mut().read_to_string().unwrap())
    };
    assert_eq!(chunked.0, 411, "{}", chunked.1);
    assert!(chunked.1.contains("\"code\":\"length_required\""));

    api.send(
        "PUT",
        &format!("/uploads/{id}/parts/1"),
        &[("content-type", "multipart/form-data; boundary=x")],
        Some(b"x"),
    )
    .assert_problem(415, "unsupported_media_type");
    assert_eq!(api.send("PUT", &format!("/uploads/{id}/parts/1"), &[], Some(b"no content type is fine")).status, 200);
}

#[test]
fn create_refuses_bad_json_keys_and_layouts_with_their_own_codes() {
    let api = api("create-validation");
    api.send("POST", "/uploads", &[("content-type", "application/json")], Some(b"{not json"))
        .assert_problem(400, "invalid_json");
    api.send("POST", "/uploads", &[("content-type", "text/plain")], Some(br#"{"key":"a"}"#))
        .assert_problem(415, "unsupported_media_type");
    api.create(json!({"key": "a", "partsize": 1})).assert_problem(400, "invalid_json");
    api.create(json!({"key": 5})).assert_problem(400, "invalid_json");
    api.create(json!({"key": "a", "size": -1})).assert_problem(400, "invalid_json");

    for key in ["", "../etc/passwd", "a/../../b", "a/./b", "tab\tkey", &"k".repeat(1025)] {
        let reply = api.create(json!({ "key": key }));
        reply.assert_problem(400, "invalid_request");
        assert!(reply.json()["errors"]["key"].is_array(), "{key:?}");
    }
    let reply = api.create(json!({"key": "a", "contentType": "not a type\n"}));
    reply.assert_problem(400, "invalid_request");
    assert!(reply.json()["errors"]["contentType"].is_array());

    api.create(json!({"key": "a", "partSize": PART - 1})).assert_problem(400, "invalid_layout");
    api.create(json!({"key": "a", "partSize": 101 * MIB})).assert_problem(400, "invalid_layout");
    api.create(json!({"key": "a", "size": 10_001u64 * PART as u64, "partSize": PART}))
        .assert_problem(400, "invalid_layout");

    let huge = json!({"key": "a", "metadata": {"pad": "x".repeat(3 * MIB)}});
    api.create(huge).assert_problem(413, "body_too_large");
    let fat = json!({"key": "a", "metadata": {"pad": "x".repeat(9 * 1024)}});
    api.create(fat).assert_problem(400, "invalid_request");
}

#[test]
fn unknown_and_foreign_uploads_are_404_and_unknown_routes_404_or_405() {
    let worker = Worker::shared();
    let alice = Api::of(worker, "alice");
    let mallory = Api::of(worker, "mallory");
    let id = alice.create_id(json!({"key": "alice/file.bin", "partSize": PART}));

    // Another subject cannot even learn that the upload exists.
    mallory.state(&id).assert_problem(404, "upload_not_found");
    mallory.put_part(&id, 1, b"x").assert_problem(404, "upload_not_found");
    mallory.complete(&id, None).assert_problem(404, "upload_not_found");
    mallory.abort(&id).assert_problem(404, "upload_not_found");
    assert_eq!(alice.state(&id).json()["status"], "open", "the owner's upload is untouched");

    alice.state("0123456789abcdef0123456789abcdef").assert_problem(404, "upload_not_found");
    alice.state("not-an-id").assert_problem(404, "upload_not_found");
    alice.send("GET", "/nothing/here", &[], None).assert_problem(404, "not_found");
    let wrong = alice.send("PATCH", &format!("/uploads/{id}"), &[], None);
    wrong.assert_problem(405, "method_not_allowed");
    assert_eq!(wrong.header("allow"), Some("GET, DELETE"));
}

// ---- Objects ---------------------------------------------------------------------------------

#[test]
fn objects_serve_ranges_conditional_gets_and_heads() {
    let api = api("ranges");
    let data = random_bytes(PART + 100, 21);
    api.upload("ranges/file.bin", &data, PART);

    let part = api.object("ranges/file.bin", &[("range", "bytes=100-199")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some(format!("bytes 100-199/{}", data.len()).as_str()));
    assert!(part.body == data[100..200]);
    let tail = api.object("ranges/file.bin", &[("range", "bytes=-10")]);
    assert_eq!(tail.status, 206);
    assert!(tail.body == data[data.len() - 10..]);
    let rest = api.object("ranges/file.bin", &[("range", &format!("bytes={}-", PART))]);
    assert!(rest.body == data[PART..]);
    api.object("ranges/file.bin", &[("range", "bytes=999999999-")]).assert_problem(416, "range_not_satisfiable");

    let etag = api.object("ranges/file.bin", &[]).header("etag").unwrap().to_string();
    let unchanged = api.object("ranges/file.bin", &[("if-none-match", &etag)]);
    assert_eq!((unchanged.status, unchanged.body.len()), (304, 0));
    assert_eq!(api.object("ranges/file.bin", &[("if-none-match", "\"other\"")]).status, 200);

    let head = api.send("HEAD", "/objects/ranges/file.bin", &[], None);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    assert_eq!(head.header("content-length"), Some(data.len().to_string().as_str()));
    assert!(head.body.is_empty());
}

#[test]
fn keys_may_hold_slashes_spaces_and_any_unicode() {
    let api = api("keys");
    for key in ["keys/a b/c+d.bin", "keys/ünïcødé/ファイル.bin", "keys/100%/#hash?.bin"] {
        let data = random_bytes(1000, key.len() as u64);
        api.upload(key, &data, PART);
        let got = api.object(key, &[]);
        assert_eq!(got.status, 200, "{key}");
        assert!(got.body == data, "{key}");
    }
    api.send("GET", "/objects/keys/%FF", &[], None).assert_problem(400, "invalid_key");
}

#[test]
fn objects_are_listed_by_prefix_and_deleted_idempotently() {
    let api = api("listing");
    for name in ["a", "b", "c"] {
        api.upload(&format!("listing/{name}"), name.as_bytes(), PART);
    }
    let page = api.send("GET", "/objects?prefix=listing/&limit=2", &[], None).json();
    assert_eq!(page["objects"].as_array().unwrap().len(), 2);
    let cursor = page["cursor"].as_str().expect("a cursor for the next page").to_string();
    let next =
        api.send("GET", &format!("/objects?prefix=listing/&limit=2&cursor={}", encode_key(&cursor)), &[], None).json();
    let keys: Vec<&str> = next["objects"].as_array().unwrap().iter().map(|o| o["key"].as_str().unwrap()).collect();
    assert_eq!(keys, vec!["listing/c"]);
    assert!(next.get("cursor").is_none());
    api.send("GET", "/objects?limit=0", &[], None).assert_problem(400, "invalid_request");

    assert_eq!(api.send("DELETE", "/objects/listing/a", &[], None).status, 204);
    assert_eq!(api.send("DELETE", "/objects/listing/a", &[], None).status, 204);
    api.object("listing/a", &[]).assert_problem(404, "object_not_found");
}

// ---- Service ----------------------------------------------------------------------------------

#[test]
fn health_and_the_openapi_document_are_public() {
    let anonymous = Api::new(Worker::shared(), None);
    let health = anonymous.send("GET", "/healthz", &[], None);
    assert_eq!((health.status, health.json()["status"].as_str()), (200, Some("ok")));
    let spec = anonymous.send("GET", "/openapi.yaml", &[], None);
    assert_eq!(spec.status, 200);
    assert_eq!(spec.header("content-type"), Some("application/yaml"));
    assert!(spec.body == std::fs::read(r2mpu_testkit::repo_root().join("openapi.yaml")).unwrap());
}
