//! Issue 8, items 6-9 and 11: HTTP semantics a client relies on, against a real `wrangler dev`.
//! Ranges that cannot be satisfied and only those are `416`; `If-None-Match` lists and `*`,
//! `If-Range`; the guide's `?action=` acting on the key it names; `Content-MD5` still checked as
//! the part streams through; creates made idempotent by `Idempotency-Key`.

mod util;

use jwt_simple::reexports::ct_codecs::{Base64, Encoder};
use md5::{Digest, Md5};
use serde_json::json;
use util::*;

fn api(sub: &str) -> Api {
    Api::of(Worker::shared(), sub)
}

// ---- Ranges (item 6) --------------------------------------------------------------------------

#[test]
fn a_range_is_416_with_the_size_only_when_it_starts_at_or_past_the_end() {
    let api = api("http-416");
    let data = random_bytes(1000, 81);
    api.upload("http-416/file.bin", &data, PART);
    let get = |range: &str| api.object("http-416/file.bin", &[("range", range)]);

    for unsatisfiable in ["bytes=1000-", "bytes=1000-1010", "bytes=5000-", "bytes=-0"] {
        let reply = get(unsatisfiable);
        reply.assert_problem(416, "range_not_satisfiable");
        assert_eq!(reply.header("content-range"), Some("bytes */1000"), "{unsatisfiable}");
    }
    // The last byte, and ranges that run past the end, are satisfiable: clipped, not refused.
    let last = get("bytes=999-");
    assert_eq!((last.status, last.header("content-range")), (206, Some("bytes 999-999/1000")));
    assert!(last.body == data[999..]);
    let clipped = get("bytes=900-5000");
    assert_eq!((clipped.status, clipped.header("content-range")), (206, Some("bytes 900-999/1000")));
    assert!(clipped.body == data[900..]);
    let longer_suffix = get("bytes=-5000");
    assert_eq!((longer_suffix.status, longer_suffix.header("content-range")), (206, Some("bytes 0-999/1000")));
    assert!(longer_suffix.body == data);
    // An object that is not there is 404 whatever the range.
    api.object("http-416/none.bin", &[("range", "bytes=5000-")]).assert_problem(404, "object_not_found");
}

#[test]
fn a_cursor_that_never_came_from_a_listing_is_the_clients_400() {
    let api = api("http-cursor");
    for name in ["a", "b"] {
        api.upload(&format!("http-cursor/{name}"), name.as_bytes(), PART);
    }
    let page = api.send("GET", "/objects?prefix=http-cursor/&limit=1", &[], None).json();
    let cursor = page["cursor"].as_str().expect("a cursor").to_string();
    let next =
        api.send("GET", &format!("/objects?prefix=http-cursor/&limit=1&cursor={}", encode_key(&cursor)), &[], None);
    assert_eq!(next.status, 200);
    assert_eq!(next.json()["objects"][0]["key"], "http-cursor/b");
    for junk in ["not%20a%20cursor", "%E2%9C%93", ""] {
        let reply = api.send("GET", &format!("/objects?prefix=http-cursor/&cursor={junk}"), &[], None);
        reply.assert_problem(400, "invalid_request");
        assert!(reply.json()["errors"]["cursor"].is_array(), "{junk}");
    }
}

// ---- Conditional requests (item 7) ------------------------------------------------------------

#[test]
fn if_none_match_with_a_list_a_weak_tag_or_a_star_is_304_on_get_and_head() {
    let api = api("http-inm");
    let data = random_bytes(3000, 82);
    api.upload("http-inm/file.bin", &data, PART);
    let etag = api.object("http-inm/file.bin", &[]).header("etag").unwrap().to_string();
    let weak = format!("W/{etag}");
    let listed = format!("\"something-else\", {etag}");
    let listed_weak = format!("\"x\",\"y\",  {weak}");

    for header in [etag.as_str(), &listed, &weak, &listed_weak, "*"] {
        for method in ["GET", "HEAD"] {
            let reply = api.send(method, "/objects/http-inm/file.bin", &[("if-none-match", header)], None);
            assert_eq!((reply.status, reply.body.len()), (304, 0), "{method} If-None-Match: {header}");
            assert_eq!(reply.header("etag"), Some(etag.as_str()), "{method} {header}");
        }
    }
    // None of the tags: the object.
    for header in ["\"a\", \"b\"", "W/\"a\""] {
        let get = api.send("GET", "/objects/http-inm/file.bin", &[("if-none-match", header)], None);
        assert_eq!(get.status, 200, "{header}");
        assert!(get.body == data);
        let head = api.send("HEAD", "/objects/http-inm/file.bin", &[("if-none-match", header)], None);
        assert_eq!(head.status, 200, "{header}");
    }
    // `*` matches any object that exists, none that does not.
    api.object("http-inm/none.bin", &[("if-none-match", "*")]).assert_problem(404, "object_not_found");
    // If-None-Match is decided before the range: a match is 304 even with an unsatisfiable range.
    let both = api.object("http-inm/file.bin", &[("if-none-match", "*"), ("range", "bytes=9999-")]);
    assert_eq!(both.status, 304);
}

#[test]
fn a_range_with_an_if_range_that_does_not_match_gets_the_whole_object() {
    let api = api("http-if-range");
    let data = random_bytes(4000, 83);
    api.upload("http-if-range/file.bin", &data, PART);
    let etag = api.object("http-if-range/file.bin", &[]).header("etag").unwrap().to_string();
    let get =
        |if_range: &str, range: &str| api.object("http-if-range/file.bin", &[("range", range), ("if-range", if_range)]);

    let same = get(&etag, "bytes=10-19");
    assert_eq!((same.status, same.header("content-range")), (206, Some("bytes 10-19/4000")));
    assert!(same.body == data[10..20]);

    // Another tag, a weak one (If-Range compares strongly) or a date: the object changed, or might
    // have, so a resuming client gets all of it rather than a piece of something else.
    for stale in ["\"an-older-etag\"", &format!("W/{etag}"), "Wed, 21 Oct 2015 07:28:00 GMT"] {
        let whole = get(stale, "bytes=10-19");
        assert_eq!((whole.status, whole.header("content-range")), (200, None), "If-Range: {stale}");
        assert_eq!(whole.header("content-length"), Some("4000"));
        assert!(whole.body == data, "If-Range: {stale}");
        // Not even an unsatisfiable range is refused then: it no longer applies.
        assert_eq!(get(stale, "bytes=9999-").status, 200, "If-Range: {stale}");
    }
}

// ---- The guide's protocol acts on the key it names (item 8) ----------------------------------

#[test]
fn a_guide_action_on_a_path_under_objects_or_uploads_acts_on_that_whole_key() {
    let api = api("http-actions");
    let data = random_bytes(700, 84);
    // Two objects a confused router would mix up: `x` (REST `/objects/x`) and `objects/x`.
    api.upload("x", b"the object x", PART);
    api.upload("objects/x", &data, PART);

    let got = api.send("GET", "/objects/x?action=get", &[], None);
    assert_eq!(got.status, 200);
    assert!(got.body == data, "?action=get read the key `objects/x`");
    assert_eq!(api.send("DELETE", "/objects/x?action=delete", &[], None).status, 204);
    api.object("objects/x", &[]).assert_problem(404, "object_not_found");
    assert_eq!(api.object("x", &[]).body, b"the object x", "the object `x` is untouched");

    // The guide's whole upload under a key that starts with `uploads/`.
    let created = api.send("POST", "/uploads/guide.bin?action=mpu-create", &[], None);
    assert_eq!(created.status, 200, "{}", String::from_utf8_lossy(&created.body));
    let created = created.json();
    assert_eq!(created["key"], "uploads/guide.bin");
    let id = created["uploadId"].as_str().unwrap();
    let part = api.send(
        "PUT",
        &format!("/uploads/guide.bin?action=mpu-uploadpart&uploadId={id}&partNumber=1"),
        &[],
        Some(&data),
    );
    assert_eq!(part.status, 200, "{}", String::from_utf8_lossy(&part.body));
    let etag = part.json()["etag"].as_str().unwrap().to_string();
    let done = api.post_json(
        &format!("/uploads/guide.bin?action=mpu-complete&uploadId={id}"),
        &json!({"parts": [{"partNumber": 1, "etag": etag}]}),
    );
    assert_eq!(done.status, 200, "{}", String::from_utf8_lossy(&done.body));
    assert!(api.object("uploads/guide.bin", &[]).body == data);

    // An action under a method that does not serve it is refused, not handed to a REST route.
    assert_eq!(api.send("DELETE", "/objects/uploads/guide.bin?action=get", &[], None).status, 404);
    assert_eq!(api.object("uploads/guide.bin", &[]).status, 200);
}

// ---- Content-MD5 through the hashing stream (item 9) -----------------------------------------

#[test]
fn content_md5_is_still_checked_on_a_large_part_and_a_corrupted_one_is_refused() {
    let api = api("http-md5");
    let md5 = |bytes: &[u8]| Base64::encode_to_string(Md5::digest(bytes)).unwrap();
    let data = random_bytes(24 * MIB + 5, 85);
    let (first, last) = data.split_at(24 * MIB);
    let id = api.create_id(json!({"key": "http-md5/big.bin", "size": data.len(), "partSize": 24 * MIB}));
    let put = |n: u16, bytes: &[u8], digest: &str| {
        api.send("PUT", &format!("/uploads/{id}/parts/{n}"), &[("content-md5", digest)], Some(bytes))
    };
    let mut corrupted = first.to_vec();
    corrupted[17 * MIB + 3] ^= 0x40; // one bit, deep inside the part
    put(1, &corrupted, &md5(first)).assert_problem(400, "digest_mismatch");
    assert!(api.state(&id).json()["parts"].as_array().unwrap().is_empty());
    assert_eq!(put(1, first, &md5(first)).status, 200);
    assert_eq!(put(2, last, &md5(last)).status, 200);
    assert_eq!(api.complete(&id, None).status, 200);
    let back = api.object("http-md5/big.bin", &[]);
    assert!(back.body == data, "the object is the bytes sent");
    assert_eq!(back.header("etag"), Some(format!("\"{}\"", multipart_etag(&data, 24 * MIB)).as_str()));
}

// ---- Idempotent create (item 11) --------------------------------------------------------------

#[test]
fn a_create_repeated_with_its_idempotency_key_gets_the_same_upload() {
    let api = api("http-idem");
    let body = serde_json::to_vec(&json!({"key": "http-idem/file.bin", "size": 10, "partSize": PART})).unwrap();
    let create = |api: &Api, key: &str, body: &[u8]| {
        api.send("POST", "/uploads", &[("content-type", "application/json"), ("idempotency-key", key)], Some(body))
    };

    let first = create(&api, "upload-1", &body);
    assert_eq!(first.status, 201, "{}", String::from_utf8_lossy(&first.body));
    let id = first.json()["uploadId"].as_str().unwrap().to_string();
    let again = create(&api, "upload-1", &body);
    assert_eq!(again.status, 201);
    assert_eq!(again.json()["uploadId"], id.as_str(), "the retry reaches the upload the first made");
    assert_eq!(again.header("location"), Some(format!("/uploads/{id}").as_str()));

    // Still the same upload once it has parts and is completed: the key holds for the TTL.
    assert_eq!(api.put_part(&id, 1, &[7; 10]).status, 200);
    assert_eq!(api.complete(&id, None).status, 200);
    let later = create(&api, "upload-1", &body);
    assert_eq!((later.status, later.json()["status"].as_str()), (201, Some("completed")));

    // The same key with another request is refused; another key, or none, is another upload.
    let other = serde_json::to_vec(&json!({"key": "http-idem/other.bin", "size": 10, "partSize": PART})).unwrap();
    create(&api, "upload-1", &other).assert_problem(422, "idempotency_key_reused");
    let other_key = create(&api, "upload-2", &body);
    assert_ne!(other_key.json()["uploadId"], id.as_str());
    assert_ne!(api.create_id(json!({"key": "http-idem/file.bin", "size": 10, "partSize": PART})), id);
    // Another subject's same key is its own upload; it never sees this one.
    let mallory = Api::of(Worker::shared(), "http-idem-other");
    let theirs = create(&mallory, "upload-1", &body);
    assert_eq!(theirs.status, 201);
    assert_ne!(theirs.json()["uploadId"], id.as_str());
    // A key that is not printable ASCII is refused at the door.
    create(&api, &"k".repeat(256), &body).assert_problem(400, "invalid_request");
}

// ---- CORS against the running Worker (issue 20) ------------------------------------------------

/// A preflight for `POST /uploads` and a `GET /uploads` with a token, both from a page of `origin`.
fn from_a_page_of(worker: &Worker, origin: &str) -> (Reply, Reply) {
    let preflight = [
        ("origin", origin),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "authorization, content-type"),
    ];
    let preflight = Api::new(worker, None).send("OPTIONS", "/uploads", &preflight, None);
    let get = Api::of(worker, "cors").send("GET", "/uploads", &[("origin", origin)], None);
    (preflight, get)
}

/// `ALLOWED_ORIGINS="*"` grants every origin, by echoing it (never the literal `*`) and never
/// with `Access-Control-Allow-Credentials`: tokens travel in `Authorization`, never in cookies,
/// so no page can ride a session. Unset, no origin is granted anything.
#[test]
fn cors_with_a_star_grants_each_origin_by_name_without_credentials_and_unset_grants_none() {
    let star = Worker::start_with(Options { vars: vec![("ALLOWED_ORIGINS".into(), "*".into())] });
    for origin in ["https://anywhere.example", "http://127.0.0.1:9"] {
        let (preflight, get) = from_a_page_of(&star, origin);
        assert_eq!((preflight.status, get.status), (204, 200), "{origin}");
        for reply in [&preflight, &get] {
            assert_eq!(reply.header("access-control-allow-origin"), Some(origin), "echoed, never `*`");
            assert_eq!(reply.header("access-control-allow-credentials"), None, "{origin}: never with credentials");
            assert!(reply.header("vary").is_some_and(|v| v.contains("Origin")), "{reply:?}");
        }
        let allowed = preflight.header("access-control-allow-headers").unwrap_or_default().to_ascii_lowercase();
        assert!(allowed.contains("authorization") && allowed.contains("content-type"), "{allowed}");
        assert!(preflight.header("access-control-allow-methods").is_some_and(|m| m.contains("POST")));
        assert!(get.header("access-control-expose-headers").is_some_and(|h| h.contains("ETag")));
    }

    // The shared Worker has no ALLOWED_ORIGINS.
    let (preflight, get) = from_a_page_of(Worker::shared(), "https://anywhere.example");
    for reply in [&preflight, &get] {
        assert_eq!(reply.header("access-control-allow-origin"), None, "{reply:?}");
        assert_eq!(reply.header("access-control-allow-methods"), None, "{reply:?}");
        assert_eq!(reply.header("access-control-allow-credentials"), None, "{reply:?}");
    }
}
