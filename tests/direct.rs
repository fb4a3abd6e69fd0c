//! Direct parts (issue 22) against a real `wrangler dev`, whose local R2 is also served over S3
//! (wrangler.toml's `local_dev` credentials; testkit sets the `R2_S3_*` settings for its port):
//! the Worker signs UploadPart URLs, a plain HTTP client PUTs the bytes to local R2 with them,
//! R2 enforces what was signed, and the reported parts complete to the identical object.

mod util;

use std::time::Duration;

use jwt_simple::reexports::ct_codecs::{Base64, Encoder};
use md5::{Digest, Md5};
use serde_json::{json, Value};
use util::*;

fn api(sub: &str) -> Api {
    Api::of(Worker::shared(), sub)
}

/// A client with no token and no base: it sends to the absolute URLs it is given (R2's).
fn plain() -> Api {
    Api::new(Worker::shared(), None).via("")
}

fn content_md5(bytes: &[u8]) -> String {
    Base64::encode_to_string(Md5::digest(bytes)).unwrap()
}

/// `POST /uploads/{id}/parts/{n}/url` with `body` (none when `Value::Null`).
fn part_url(api: &Api, id: &str, n: u16, body: Value) -> Reply {
    let path = format!("/uploads/{id}/parts/{n}/url");
    if body.is_null() {
        api.send("POST", &path, &[], None)
    } else {
        api.post_json(&path, &body)
    }
}

/// The presigned request in `url` (a `PartUrl`) sent with `bytes`: the signed headers but
/// `Content-Length`, which the client sets from the body itself.
fn put_direct(url: &Value, bytes: &[u8]) -> Reply {
    put_direct_with(url, bytes, true)
}

fn put_direct_with(url: &Value, bytes: &[u8], with_md5: bool) -> Reply {
    assert_eq!(url["method"], "PUT");
    let headers: Vec<(&str, &str)> = url["headers"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("content-length"))
        .filter(|(name, _)| with_md5 || !name.eq_ignore_ascii_case("content-md5"))
        .map(|(name, value)| (name.as_str(), value.as_str().unwrap()))
        .collect();
    plain().send("PUT", url["url"].as_str().unwrap(), &headers, Some(bytes))
}

fn report(api: &Api, id: &str, n: u16, body: Value) -> Reply {
    api.post_json(&format!("/uploads/{id}/parts/{n}"), &body)
}

/// R2's ETag from a direct PUT's answer, unquoted.
fn etag_of(reply: &Reply) -> String {
    assert_eq!(reply.status, 200, "R2 refused the part: {}", String::from_utf8_lossy(&reply.body));
    reply.header("etag").expect("R2 answers an ETag").trim_matches('"').to_string()
}

fn recorded_parts(api: &Api, id: &str) -> Vec<Value> {
    api.state(id).json()["parts"].as_array().unwrap().clone()
}

#[test]
fn parts_sent_straight_to_r2_with_presigned_urls_complete_to_the_identical_object() {
    let api = api("direct-round-trip");
    let data = random_bytes(2 * PART + 4321, 22);
    let key = "direct/round trip/file.bin";
    let id = api.create_id(json!({"key": key, "size": data.len(), "partSize": PART}));
    let parts: Vec<&[u8]> = chunks(&data, PART).collect();

    // Parts 1 and 2 in one batch, signed with their MD5s; part 3 alone, with none.
    let asked = json!({"parts": [
        {"partNumber": 1, "contentMd5": content_md5(parts[0])},
        {"partNumber": 2, "contentMd5": content_md5(parts[1])},
    ]});
    let batch = api.post_json(&format!("/uploads/{id}/urls"), &asked);
    assert_eq!(batch.status, 200, "{}", String::from_utf8_lossy(&batch.body));
    let mut urls = batch.json()["parts"].as_array().unwrap().clone();
    let single = part_url(&api, &id, 3, Value::Null);
    assert_eq!(single.status, 200, "{}", String::from_utf8_lossy(&single.body));
    urls.push(single.json());

    let r2 = format!("{}/cdn-cgi/local/r2/s3/r2mpu/direct/round%20trip/file.bin?", Worker::shared().url);
    for (i, url) in urls.iter().enumerate() {
        let n = i as u16 + 1;
        assert_eq!(url["partNumber"], n);
        assert!(url["url"].as_str().unwrap().starts_with(&r2), "R2's S3 endpoint, not the Worker: {url}");
        let length = parts[i].len().to_string();
        assert_eq!(url["headers"]["Content-Length"], length.as_str(), "the layout's exact length");
        let etag = etag_of(&put_direct(url, parts[i]));
        let mut body = json!({"etag": etag});
        if let Some(md5) = url["headers"]["Content-MD5"].as_str() {
            body["contentMd5"] = md5.into();
        }
        let recorded = report(&api, &id, n, body);
        assert_eq!(recorded.status, 200, "{}", String::from_utf8_lossy(&recorded.body));
        assert_eq!(
            (recorded.json()["etag"].as_str(), recorded.json()["size"].as_u64()),
            (Some(etag.as_str()), Some(parts[i].len() as u64))
        );
    }
    let state = recorded_parts(&api, &id);
    let md5_hex: String = Md5::digest(parts[0]).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(state[0]["md5"], md5_hex.as_str(), "a signed MD5 is recorded");
    assert!(state[2].get("md5").is_none());

    let done = api.complete(&id, None);
    assert_eq!(done.status, 200, "{}", String::from_utf8_lossy(&done.body));
    assert_eq!(done.json()["etag"], multipart_etag(&data, PART));
    assert!(api.object(key, &[]).body == data, "the object's bytes differ");
}

/// A create may ask for its first parts' URLs (`partUrls`), so that a client needs no round
/// trip for them before its first PUT: parts 1 to `count`, no more than the upload has, each at
/// its length in the layout, signed as the URL routes sign them; they work against R2, and a
/// complete that lists the parts (none reported) makes the identical object.
#[test]
fn a_create_that_asks_for_part_urls_answers_them_and_they_complete_to_the_identical_object() {
    let api = api("direct-create-urls");
    let data = random_bytes(2 * PART + 4321, 35);
    let key = "direct/create-urls.bin";
    let asked = json!({"key": key, "size": data.len(), "partSize": PART, "partUrls": {"count": 10, "expiresIn": 120}});
    let created = api.create(asked);
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    let created = created.json();
    assert_eq!(created["directParts"], true, "{created}");
    let id = created["uploadId"].as_str().unwrap().to_string();
    let urls = created["partUrls"].as_array().unwrap_or_else(|| panic!("no partUrls: {created}")).clone();
    let numbers: Vec<u64> = urls.iter().map(|u| u["partNumber"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [1, 2, 3], "10 asked for, the upload's 3 given");
    let parts: Vec<&[u8]> = chunks(&data, PART).collect();
    let mut listed = Vec::new();
    for (url, bytes) in urls.iter().zip(&parts) {
        assert_eq!(url["headers"]["Content-Length"], bytes.len().to_string().as_str(), "the layout's length");
        assert!(url["headers"].get("Content-MD5").is_none(), "no MD5 in this form: {url}");
        assert!(url["url"].as_str().unwrap().contains("X-Amz-Expires=120&"), "expiresIn is honoured: {url}");
        listed.push(json!({"partNumber": url["partNumber"], "etag": etag_of(&put_direct(url, bytes))}));
    }
    let done = api.complete(&id, Some(json!({ "parts": listed })));
    assert_eq!(done.status, 200, "{}", String::from_utf8_lossy(&done.body));
    assert_eq!(done.json()["etag"], multipart_etag(&data, PART));
    assert!(api.object(key, &[]).body == data, "the object's bytes differ");

    // An open size: parts 1 to `count`, each at `partSize`. Without `partUrls`, the answer is as ever.
    let open = api.create(json!({"key": "direct/create-open.bin", "partSize": PART, "partUrls": {"count": 2}})).json();
    let lengths: Vec<&str> =
        open["partUrls"].as_array().unwrap().iter().map(|u| u["headers"]["Content-Length"].as_str().unwrap()).collect();
    assert_eq!(lengths, [PART.to_string(), PART.to_string()]);
    let plain = api.create(json!({"key": "direct/create-plain.bin", "partSize": PART})).json();
    assert!(plain.get("partUrls").is_none() && plain.get("directParts").is_none(), "{plain}");
    // Refused before anything is created: a count of 0 or past 1,000, an expiry past 7 days.
    let before = api.send("GET", "/uploads", &[], None).json()["uploads"].as_array().unwrap().len();
    for bad in [
        json!({"count": 0}),
        json!({"count": 1001}),
        json!({"count": 1, "expiresIn": 604801}),
        json!({"count": 1, "contentMd5": "x"}),
    ] {
        let refused = api.create(json!({"key": "direct/create-bad.bin", "partSize": PART, "partUrls": bad}));
        assert_eq!(refused.status, 400, "{bad}: {}", String::from_utf8_lossy(&refused.body));
    }
    // The create's own checks come first: no upload, so no URL, outside the token's prefix or
    // without `uploads:write`.
    let worker = Worker::shared();
    let mut confined = claims("direct-create-urls", ALL_SCOPES);
    confined.custom.prefix = Some("elsewhere/".into());
    let confined = api.with_token(&worker.sign(confined));
    let reader = api.with_token(&worker.token("direct-create-urls", &["objects:read"]));
    let asked = json!({"key": "direct/create-bad.bin", "partSize": PART, "partUrls": {"count": 1}});
    confined.create(asked.clone()).assert_problem(403, "key_outside_prefix");
    reader.create(asked).assert_problem(403, "insufficient_scope");
    let after = api.send("GET", "/uploads", &[], None).json()["uploads"].as_array().unwrap().len();
    assert_eq!(after, before, "no upload created by a refused create");
}

#[test]
fn an_open_size_upload_signs_the_part_size_but_for_the_part_declared_last() {
    let api = api("direct-open-size");
    let data = random_bytes(PART + 777, 23);
    let id = api.create_id(json!({"key": "direct/open.bin", "partSize": PART}));
    let first = part_url(&api, &id, 1, Value::Null).json();
    assert_eq!(first["headers"]["Content-Length"], PART.to_string().as_str());
    let last = part_url(&api, &id, 2, json!({"length": 777})).json();
    assert_eq!(last["headers"]["Content-Length"], "777");
    part_url(&api, &id, 2, json!({"length": PART + 1})).assert_problem(400, "part_size_mismatch");
    for (n, (url, bytes)) in [(first, &data[..PART]), (last, &data[PART..])].iter().enumerate() {
        let etag = etag_of(&put_direct(url, bytes));
        assert_eq!(report(&api, &id, n as u16 + 1, json!({"etag": etag})).status, 200);
    }
    let done = api.complete(&id, None);
    assert_eq!(done.json()["etag"], multipart_etag(&data, PART), "{}", String::from_utf8_lossy(&done.body));
    assert!(api.object("direct/open.bin", &[]).body == data);
}

#[test]
fn r2_refuses_a_presigned_part_of_another_length_digest_part_number_upload_or_key() {
    let api = api("direct-refusals");
    // The refusals are tried on the small last part: local R2 checks the signature before it
    // reads the body, and drops the connection of a large body it did not read (a 500 of
    // miniflare's, "Network connection lost"), where R2 proper answers the same 403.
    const LAST: usize = 1000;
    let bytes = random_bytes(LAST, 24);
    let other = random_bytes(LAST, 25);
    let size = PART + LAST;
    let id = api.create_id(json!({"key": "direct/refused.bin", "size": size, "partSize": PART}));
    let url = part_url(&api, &id, 2, json!({"contentMd5": content_md5(&bytes)})).json();
    assert_eq!(url["headers"]["Content-Length"], LAST.to_string().as_str());
    let href = url["url"].as_str().unwrap().to_string();
    let refused = |url: &Value, bytes: &[u8], status: u16, code: &str| {
        let reply = put_direct(url, bytes);
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        assert_eq!(reply.status, status, "{text}");
        assert!(text.contains(&format!("<Code>{code}</Code>")), "{text}");
    };
    refused(&url, &bytes[..LAST - 1], 403, "SignatureDoesNotMatch");
    refused(&url, &[&bytes[..], b"!"].concat(), 403, "SignatureDoesNotMatch");
    refused(&url, &other, 400, "BadDigest");
    // The MD5 is signed: leaving the header out does not escape it.
    let reply = put_direct_with(&url, &other, false);
    assert_eq!(reply.status, 403, "{}", String::from_utf8_lossy(&reply.body));

    let elsewhere = |href: String| json!({"method": "PUT", "url": href, "headers": url["headers"]});
    refused(&elsewhere(href.replace("partNumber=2&", "partNumber=1&")), &bytes, 403, "SignatureDoesNotMatch");
    let moved = href.replace("/direct/refused.bin?", "/direct/elsewhere.bin?");
    refused(&elsewhere(moved), &bytes, 403, "SignatureDoesNotMatch");
    // Another upload's R2 id, from a URL signed for it.
    let second = api.create_id(json!({"key": "direct/refused.bin", "size": size, "partSize": PART}));
    let theirs = part_url(&api, &second, 2, Value::Null).json();
    let upload_id = |href: &str| href.split("uploadId=").nth(1).unwrap().split('&').next().unwrap().to_string();
    let swapped = href.replace(&upload_id(&href), &upload_id(theirs["url"].as_str().unwrap()));
    refused(&elsewhere(swapped), &bytes, 403, "SignatureDoesNotMatch");

    // After its expiry, R2 refuses the URL too.
    let short = part_url(&api, &id, 2, json!({"expiresIn": 1})).json();
    assert!(short["url"].as_str().unwrap().contains("X-Amz-Expires=1&"), "{short}");
    // Signed at a whole second, valid one more: past it in 2.5 s whatever the rounding.
    std::thread::sleep(Duration::from_millis(2500));
    let reply = put_direct(&short, &bytes);
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    assert_eq!(reply.status, 403, "an expired URL: {text}");
    assert!(text.contains("expired"), "{text}");

    // The right bytes still go through, and nothing refused was ever recorded.
    etag_of(&put_direct(&url, &bytes));
    assert_eq!(recorded_parts(&api, &id), Vec::<Value>::new());
}

#[test]
fn a_url_lives_minutes_by_default_never_past_the_upload_nor_longer_than_asked_allows() {
    let api = api("direct-lifetime");
    let id = api.create_id(json!({"key": "direct/lifetime.bin", "partSize": PART}));
    let expires = |url: &Value| -> u64 {
        let href = url["url"].as_str().unwrap();
        href.split("X-Amz-Expires=").nth(1).unwrap().split('&').next().unwrap().parse().unwrap()
    };
    assert_eq!(expires(&part_url(&api, &id, 1, Value::Null).json()), 600);
    // A week asked for, a day given: the upload's expiresAt (UPLOAD_TTL 24 h) comes first.
    let week = part_url(&api, &id, 1, json!({"expiresIn": 7 * 24 * 3600})).json();
    assert!((24 * 3600 - 60..=24 * 3600).contains(&expires(&week)), "{week}");
    part_url(&api, &id, 1, json!({"expiresIn": 7 * 24 * 3600 + 1})).assert_problem(400, "invalid_request");
    part_url(&api, &id, 1, json!({"expiresIn": 0})).assert_problem(400, "invalid_request");
    // serde would read the struct from an array too; the API reads objects only (schemathesis).
    part_url(&api, &id, 1, json!([null, null])).assert_problem(400, "invalid_json");
}

#[test]
fn no_url_for_a_token_without_uploads_write_another_subject_or_a_key_outside_its_prefix() {
    let worker = Worker::shared();
    let owner = api("direct-owner");
    let id = owner.create_id(json!({"key": "direct/owned.bin", "partSize": PART}));
    let reader = owner.with_token(&worker.token("direct-owner", &["objects:read"]));
    part_url(&reader, &id, 1, Value::Null).assert_problem(403, "insufficient_scope");
    reader
        .post_json(&format!("/uploads/{id}/urls"), &json!({"parts": [{"partNumber": 1}]}))
        .assert_problem(403, "insufficient_scope");
    let stranger = api("direct-stranger");
    part_url(&stranger, &id, 1, Value::Null).assert_problem(404, "upload_not_found");
    stranger
        .post_json(&format!("/uploads/{id}/urls"), &json!({"parts": [{"partNumber": 1}]}))
        .assert_problem(404, "upload_not_found");
    let mut confined = claims("direct-owner", ALL_SCOPES);
    confined.custom.prefix = Some("elsewhere/".into());
    let confined = owner.with_token(&worker.sign(confined));
    part_url(&confined, &id, 1, Value::Null).assert_problem(403, "key_outside_prefix");
    // Nor may they report a part to it.
    report(&stranger, &id, 1, json!({"etag": "x"})).assert_problem(404, "upload_not_found");
    report(&confined, &id, 1, json!({"etag": "x"})).assert_problem(403, "key_outside_prefix");
}

#[test]
fn a_report_for_a_part_never_signed_or_against_its_signed_md5_is_refused_and_not_recorded() {
    let api = api("direct-reports");
    let bytes = random_bytes(PART, 26);
    let id = api.create_id(json!({"key": "direct/reports.bin", "size": 2 * PART, "partSize": PART}));
    report(&api, &id, 2, json!({"etag": "made-up"})).assert_problem(400, "part_not_signed");

    let md5 = content_md5(&bytes);
    let url = part_url(&api, &id, 1, json!({"contentMd5": md5})).json();
    let etag = etag_of(&put_direct(&url, &bytes));
    // Signed with an MD5: a report without it, or with another, matches no signature.
    report(&api, &id, 1, json!({"etag": etag})).assert_problem(400, "part_not_signed");
    let other_md5 = content_md5(b"other bytes");
    report(&api, &id, 1, json!({"etag": etag, "contentMd5": other_md5})).assert_problem(400, "part_not_signed");
    // An ETag that is an MD5 (production R2's) must be the signed one.
    let other_hex: String = Md5::digest(b"other bytes").iter().map(|b| format!("{b:02x}")).collect();
    report(&api, &id, 1, json!({"etag": other_hex, "contentMd5": md5})).assert_problem(400, "digest_mismatch");
    assert_eq!(recorded_parts(&api, &id), Vec::<Value>::new(), "nothing refused was recorded");

    assert_eq!(report(&api, &id, 1, json!({"etag": etag, "contentMd5": md5})).status, 200);
    assert_eq!(recorded_parts(&api, &id).len(), 1);
}

#[test]
fn a_reported_etag_r2_does_not_hold_is_refused_at_complete_naming_the_part() {
    let api = api("direct-wrong-etag");
    let data = random_bytes(PART + 10, 27);
    let id = api.create_id(json!({"key": "direct/wrong-etag.bin", "size": data.len(), "partSize": PART}));
    for (i, bytes) in chunks(&data, PART).enumerate() {
        let n = i as u16 + 1;
        let url = part_url(&api, &id, n, Value::Null).json();
        let etag = etag_of(&put_direct(&url, bytes));
        let reported = if n == 2 { format!("{etag}x") } else { etag };
        assert_eq!(report(&api, &id, n, json!({"etag": reported})).status, 200);
    }
    let refused = api.complete(&id, None);
    refused.assert_problem(409, "parts_rejected");
    // R2's InvalidPart does not say which part: the answer names the parts R2 was given.
    assert!(refused.json()["partNumbers"].as_array().unwrap().contains(&json!(2)), "{}", refused.json());
    // The upload is open again: part 2 sent again (here through the Worker) completes it.
    assert_eq!(api.put_part(&id, 2, &data[PART..]).status, 200);
    assert_eq!(api.complete(&id, None).json()["etag"], multipart_etag(&data, PART));
    assert!(api.object("direct/wrong-etag.bin", &[]).body == data);
}

#[test]
fn without_the_settings_no_urls_are_offered_and_parts_go_through_the_worker_as_ever() {
    let worker = Worker::start_with(Options::without_direct_parts());
    let api = Api::of(&worker, "direct-off");
    let data = random_bytes(PART + 99, 28);
    // A create that asks for URLs still creates the upload, and says there are none.
    let created =
        api.create(json!({"key": "direct/off.bin", "size": data.len(), "partSize": PART, "partUrls": {"count": 2}}));
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    let created = created.json();
    assert_eq!((created["directParts"].as_bool(), created.get("partUrls")), (Some(false), None), "{created}");
    let id = created["uploadId"].as_str().unwrap().to_string();
    part_url(&api, &id, 1, Value::Null).assert_problem(501, "direct_parts_unavailable");
    api.post_json(&format!("/uploads/{id}/urls"), &json!({"parts": [{"partNumber": 1}]}))
        .assert_problem(501, "direct_parts_unavailable");
    report(&api, &id, 1, json!({"etag": "x"})).assert_problem(400, "part_not_signed");
    for (i, bytes) in chunks(&data, PART).enumerate() {
        assert_eq!(api.put_part(&id, i + 1, bytes).status, 200);
    }
    assert_eq!(api.complete(&id, None).json()["etag"], multipart_etag(&data, PART));
    assert!(api.object("direct/off.bin", &[]).body == data);
}

/// A report while a copy of the same part comes through the Worker (held by the fault build
/// after R2 took it, its lease renewed) is `409 part_in_flight`: that copy is the one R2 keeps,
/// and the record names it.
#[test]
fn a_report_while_a_copy_of_the_part_comes_through_the_worker_is_409_and_the_record_names_that_copy() {
    let worker = Worker::shared_faults();
    let api = Api::of(worker, "direct-race");
    let first = random_bytes(PART, 29);
    let (direct, through_worker) = (random_bytes(1000, 30), random_bytes(1000, 31));
    let id = api.create_id(json!({"key": "direct/race.bin", "size": PART + 1000, "partSize": PART}));
    assert_eq!(api.put_part(&id, 1, &first).status, 200);
    let url = part_url(&api, &id, 2, Value::Null).json();
    let direct_etag = etag_of(&put_direct(&url, &direct));

    let tag = r#""tag":"direct-race""#;
    let held = {
        let (api, id, bytes) = (api.clone(), id.clone(), through_worker.clone());
        std::thread::spawn(move || api.put_part_with(&id, 2, &bytes, "part.after-r2=pause:3000,tag=direct-race"))
    };
    worker.wait_for_log(&[r#""fault":"paused""#, tag], 120);
    let refused = report(&api, &id, 2, json!({"etag": direct_etag}));
    let log = std::fs::read_to_string(worker.log_path()).unwrap();
    let inside = !log.lines().any(|line| line.contains(r#""fault":"resumed""#) && line.contains(tag));
    assert!(inside, "the report came while the Worker's copy was held");
    refused.assert_problem(409, "part_in_flight");
    let held = held.join().unwrap();
    assert_eq!(held.status, 200, "{}", String::from_utf8_lossy(&held.body));

    let parts = recorded_parts(&api, &id);
    assert_eq!(parts[1]["etag"], held.json()["etag"], "the record names the copy R2 holds");
    let done = api.complete(&id, None);
    assert_eq!(done.status, 200, "{}", String::from_utf8_lossy(&done.body));
    assert!(api.object("direct/race.bin", &[]).body == [first, through_worker].concat());
}

/// The text of the first `<name>` element of an S3 XML answer.
fn xml_text(reply: &Reply, name: &str) -> String {
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    let open = format!("<{name}>");
    let start = text.find(&open).unwrap_or_else(|| panic!("no <{name}> in {text}")) + open.len();
    text[start..].split(&format!("</{name}>")).next().unwrap().to_string()
}

/// A client may complete without waiting for its reports, or never send them (Uppy's
/// `@uppy/aws-s3` with a `signRequest` hook only signs): a complete whose list names a part
/// signed for direct sending takes the listed ETag as that part's report.
#[test]
fn a_complete_that_lists_parts_sent_straight_to_r2_records_those_never_reported() {
    let api = api("direct-listed");
    let data = random_bytes(2 * PART + 500, 32);
    let key = "direct/listed.bin";
    let id = api.create_id(json!({"key": key, "size": data.len(), "partSize": PART}));
    let parts: Vec<&[u8]> = chunks(&data, PART).collect();
    let asked = json!({"parts": [{"partNumber": 1, "contentMd5": content_md5(parts[0])}, {"partNumber": 2}, {"partNumber": 3}]});
    let urls = api.post_json(&format!("/uploads/{id}/urls"), &asked).json()["parts"].as_array().unwrap().clone();
    let etags: Vec<String> = urls.iter().zip(&parts).map(|(url, bytes)| etag_of(&put_direct(url, bytes))).collect();
    assert_eq!(report(&api, &id, 2, json!({"etag": etags[1]})).status, 200, "only part 2 is reported");

    let listed: Vec<Value> = etags.iter().enumerate().map(|(i, e)| json!({"partNumber": i + 1, "etag": e})).collect();
    let done = api.complete(&id, Some(json!({ "parts": listed })));
    assert_eq!(done.status, 200, "{}", String::from_utf8_lossy(&done.body));
    assert_eq!(done.json()["etag"], multipart_etag(&data, PART));
    assert!(api.object(key, &[]).body == data, "the object's bytes differ");
    let state = recorded_parts(&api, &id);
    let sizes: Vec<u64> = state.iter().map(|p| p["size"].as_u64().unwrap()).collect();
    assert_eq!(sizes, [PART as u64, PART as u64, 500], "each at its signed length: {state:?}");
    let md5_hex: String = Md5::digest(parts[0]).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(state[0]["md5"], md5_hex.as_str(), "part 1's only URL was signed with its MD5");
}

/// Uppy's way over the S3 surface, without Uppy: CreateMultipartUpload and
/// CompleteMultipartUpload on `/s3` with a bearer token, each part PUT straight to R2 with a URL
/// signed at the length the client names (S3 declares no size up front), none reported.
#[test]
fn an_s3_multipart_upload_whose_parts_went_straight_to_r2_completes_from_its_list() {
    let api = api("direct-s3-listed");
    let data = random_bytes(PART + 4321, 33);
    let path = "/s3/r2mpu/direct/s3-listed.bin";
    let created = api.send("POST", &format!("{path}?uploads"), &[], None);
    assert_eq!(created.status, 200, "{}", String::from_utf8_lossy(&created.body));
    let id = xml_text(&created, "UploadId");
    let mut listed = String::new();
    for (i, bytes) in chunks(&data, PART).enumerate() {
        let url = part_url(&api, &id, i as u16 + 1, json!({"length": bytes.len()})).json();
        assert_eq!(url["headers"]["Content-Length"], bytes.len().to_string().as_str(), "{url}");
        let etag = etag_of(&put_direct(&url, bytes));
        listed.push_str(&format!("<Part><PartNumber>{}</PartNumber><ETag>\"{etag}\"</ETag></Part>", i + 1));
    }
    let body = format!("<CompleteMultipartUpload>{listed}</CompleteMultipartUpload>");
    let done = api.send("POST", &format!("{path}?uploadId={id}"), &[], Some(body.as_bytes()));
    assert_eq!(done.status, 200, "{}", String::from_utf8_lossy(&done.body));
    assert_eq!(xml_text(&done, "ETag"), format!("&quot;{}&quot;", multipart_etag(&data, PART)));
    assert!(api.object("direct/s3-listed.bin", &[]).body == data, "the object's bytes differ");
}

/// What a list cannot make a part: one never signed nor sent is still `part_not_uploaded` (the
/// list still stands as the report of the part it names rightly); an ETag that is an MD5
/// (production R2's) other than the one signed is `digest_mismatch`, and the record stays; an
/// ETag R2 does not hold is R2's to refuse (`parts_rejected`), the upload stays open, and the
/// right list then completes it.
#[test]
fn a_listed_part_never_signed_against_its_signed_md5_or_unknown_to_r2_is_refused() {
    let api = api("direct-listed-refused");
    let data = random_bytes(PART + 10, 34);
    let key = "direct/listed-refused.bin";
    let id = api.create_id(json!({"key": key, "size": data.len(), "partSize": PART}));
    let (first, last) = data.split_at(PART);
    let url = part_url(&api, &id, 1, json!({"contentMd5": content_md5(first)})).json();
    let etag = etag_of(&put_direct(&url, first));
    let list =
        |one: &str, two: &str| json!({"parts": [{"partNumber": 1, "etag": one}, {"partNumber": 2, "etag": two}]});
    let etag_recorded = |api: &Api| {
        let parts = recorded_parts(api, &id);
        parts.iter().find(|p| p["partNumber"] == 1).map(|p| p["etag"].as_str().unwrap().to_string())
    };

    api.complete(&id, Some(list(&etag, "never-sent"))).assert_problem(400, "part_not_uploaded");
    assert_eq!(etag_recorded(&api).as_deref(), Some(etag.as_str()), "the list stood as part 1's report");
    assert_eq!(api.put_part(&id, 2, last).status, 200);
    let two = recorded_parts(&api, &id)[1]["etag"].as_str().unwrap().to_string();
    let other_hex: String = Md5::digest(b"other bytes").iter().map(|b| format!("{b:02x}")).collect();
    api.complete(&id, Some(list(&other_hex, &two))).assert_problem(400, "digest_mismatch");
    assert_eq!(etag_recorded(&api).as_deref(), Some(etag.as_str()), "the refused ETag was not recorded");

    let refused = api.complete(&id, Some(list(&format!("{etag}x"), &two)));
    refused.assert_problem(409, "parts_rejected");
    assert_eq!(api.state(&id).json()["status"], "open");
    let done = api.complete(&id, Some(list(&etag, &two)));
    assert_eq!(done.status, 200, "{}", String::from_utf8_lossy(&done.body));
    assert_eq!(done.json()["etag"], multipart_etag(&data, PART));
    assert!(api.object(key, &[]).body == data);
}
