//! The service fails closed (issue "Fail closed in the service"): no
//! record, entry or code path that a device, a stored document or a file
//! can steer. Each test names the defect it pins; each failed on the
//! previous main.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod support;

use serde_json::{Value, json};
use support::{SCOPE, Server, canonical, device, group, individual, issue};

fn with_enrollments(dir: &std::path::Path, step: usize) -> (Server, attest_pki::Canonical) {
    let pki = canonical();
    let file = dir.join("enrollments.json");
    std::fs::write(&file, pki.enrollment_steps()[step].to_string()).unwrap();
    (Server::start(&dir.join("data"), Some(&file)), pki)
}

/// A root CA outside the canonical PKI, verified with the service (a
/// trusted CA without an enrollment group).
fn verified_other_root(server: &Server) -> attest_pki::Ca {
    let now = time::OffsetDateTime::now_utc();
    let validity = attest_pki::Validity {
        not_before: now - time::Duration::days(1),
        not_after: now + time::Duration::days(30),
    };
    let other = attest_pki::Ca::root("Other Root", attest_pki::KeyAlg::P256, validity).unwrap();
    assert_eq!(server.verify_ca("other-root", &other).status, 200);
    other
}

fn status_of(server: &Server, chain: &str, key: &str, id: &str) -> support::Answer {
    server
        .device(chain, key)
        .call("POST", &format!("/{SCOPE}/registrations/{id}"), vec![], &[])
}

/// Item 1: the holder of a disabled CA's key (or of a verified CA without
/// a group) signs CN=device-1. Registering used to overwrite device-1's
/// record (assigned → disabled/failed) and the status route returned it.
#[test]
fn a_refused_chain_cannot_overwrite_or_read_another_devices_record() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pki) = with_enrollments(dir.path(), 1);
    let (c1, k1) = device(&pki, 1);
    assert_eq!(
        server.device(&c1, &k1).register("device-1").body["status"],
        "assigned"
    );
    let before = server.admin("GET", "/registrations/device-1", None);

    let other = verified_other_root(&server);
    for (issuer, code, answered) in [
        (&pki.line_b, "enrollment-group-disabled", 200),
        (&other, "no-enrollment", 401),
    ] {
        let (chain, key) = issue(issuer, "device-1");
        let refused = server.device(&chain, &key).register("device-1");
        // Answered as any refusal of its kind is (issue 18, item 7): a
        // disabled entry's status document, or the 401 of no enrollment.
        assert_eq!(refused.status, answered, "{refused:?}");
        assert!(refused.raw.contains(code), "{}", refused.raw);
        assert!(!refused.raw.contains("assignedHub"), "{}", refused.raw);
        let status = status_of(&server, &chain, &key, "device-1");
        assert_eq!(
            status.status, 401,
            "the record must not be shown: {status:?}"
        );
        assert!(!status.raw.contains("assignedHub"), "{}", status.raw);
        let after = server.admin("GET", "/registrations/device-1", None);
        assert_eq!(after.body, before.body, "device-1's record is untouched");
    }

    // A refused device still gets a record of its own (the operator sees
    // it), but reads nothing back: since issue 18, item 7, a refused
    // caller's read answers its refusal whatever is stored.
    let (c4, k4) = device(&pki, 4);
    let own = server.device(&c4, &k4).register("device-4");
    assert_eq!(own.body["status"], "disabled", "{own:?}");
    let read = status_of(&server, &c4, &k4, "device-4");
    assert_eq!(read.status, 401, "{read:?}");
    let recorded = server.admin("GET", "/registrations/device-4", None);
    assert_eq!(recorded.body["status"], "disabled", "{recorded:?}");
}

/// Issue 18, item 7: a trusted but refused chain learned whether another
/// registration ID had a record: status answered 401 vs 404, register 401
/// vs 200. Now a refused caller gets the same answer whatever exists: the
/// same status, the same fields, the same message.
#[test]
fn a_refused_caller_cannot_tell_whether_a_device_exists() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pki) = with_enrollments(dir.path(), 1);
    let (c1, k1) = device(&pki, 1);
    assert_eq!(server.device(&c1, &k1).register("device-1").status, 200);
    let other = verified_other_root(&server);
    // What a caller can compare: status, field names, the message with
    // the registration ID taken out, and the state's own fields.
    let shape = |a: &support::Answer, id: &str| {
        let mut fields: Vec<String> = a
            .body
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        fields.sort();
        let state = &a.body["registrationState"];
        let mut state_fields: Vec<String> = state
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        state_fields.sort();
        (
            a.status,
            fields,
            state_fields,
            a.body["message"].as_str().unwrap_or("").replace(id, "ID"),
            state["errorMessage"]
                .as_str()
                .unwrap_or("")
                .replace(id, "ID"),
            state["status"].clone(),
            state["createdDateTimeUtc"].is_string(),
        )
    };
    for issuer in [&pki.line_b, &other] {
        let mut answers = Vec::new();
        // device-1 has a record (another certificate's); device-77 has none.
        for id in ["device-1", "device-77"] {
            let (chain, key) = issue(issuer, id);
            let client = server.device(&chain, &key);
            let register = client.register(id);
            let status = status_of(&server, &chain, &key, id);
            let op = register.body["operationId"]
                .as_str()
                .unwrap_or("none")
                .to_string();
            let poll = client.call(
                "GET",
                &format!("/{SCOPE}/registrations/{id}/operations/{op}"),
                vec![],
                &[],
            );
            answers.push((shape(&register, id), shape(&status, id), shape(&poll, id)));
        }
        assert_eq!(
            answers[0],
            answers[1],
            "{} refused differently",
            issuer.pem.len()
        );
        assert_eq!(answers[0].1.0, 401, "a refused caller reads nothing");
    }
    // device-1's record is still its own.
    let record = server.admin("GET", "/registrations/device-1", None);
    assert_eq!(record.body["status"], "assigned", "{record:?}");
}

/// Item 2: the operation-status route compared the leaf's hash but never
/// checked the handshake signature: the public certificate and any key
/// read the operation.
#[test]
fn operation_status_needs_proof_of_possession() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pki) = with_enrollments(dir.path(), 0);
    let (chain, key) = device(&pki, 1);
    let op = server.device(&chain, &key).register("device-1").body["operationId"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/{SCOPE}/registrations/device-1/operations/{op}");
    let mut thief = server.device(&chain, &pki.devices[1].key.serialize_pem());
    thief.any_key = true;
    let stolen = thief.call("GET", &path, vec![], &[]);
    assert_eq!(stolen.status, 401, "{stolen:?}");
    assert!(
        stolen.raw.contains("proof-of-possession-failed"),
        "{}",
        stolen.raw
    );
    let mine = server.device(&chain, &key).call("GET", &path, vec![], &[]);
    assert_eq!(mine.status, 200, "{mine:?}");
    assert_eq!(mine.body["status"], "assigned");
}

/// Item 3: a second group on a CA that has one was accepted (and the index
/// silently dropped the disabled one); a CA certificate a group references
/// could be re-uploaded (unverifying it) or deleted. All are 409 now, and
/// the disabled group keeps deciding.
#[test]
fn management_writes_are_validated_against_the_whole_store() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pki) = with_enrollments(dir.path(), 1);
    let again = server.admin(
        "PUT",
        "/enrollmentGroups/line-b-again",
        Some(&group("line-b-again", &pki.line_b.pem, true)),
    );
    assert_eq!(again.status, 409, "{again:?}");
    assert!(again.raw.contains("line-b"), "{}", again.raw);
    let (c4, k4) = device(&pki, 4);
    assert_eq!(
        server.device(&c4, &k4).register("device-4").body["status"],
        "disabled"
    );

    assert_eq!(server.verify_ca("line-a-ca", &pki.line_a).status, 200);
    let by_ref = json!({"enrollmentGroupId": "line-a", "attestation": {"type": "x509",
        "x509": {"caReferences": {"primary": "line-a-ca"}}}});
    assert_eq!(
        server
            .admin("PUT", "/enrollmentGroups/line-a", Some(&by_ref))
            .status,
        200
    );
    let reupload = server.admin_if(
        "PUT",
        "/certificates/line-a-ca",
        Some(&json!({"certificate": pki.line_a.pem})),
        "*",
    );
    assert_eq!(reupload.status, 409, "{reupload:?}");
    let delete = server.admin_if("DELETE", "/certificates/line-a-ca", None, "*");
    assert_eq!(delete.status, 409, "{delete:?}");
    let (c1, k1) = device(&pki, 1);
    let a = server.device(&c1, &k1).register("device-1");
    assert_eq!(
        a.body["registrationState"]["x509"]["enrollmentGroupId"], "line-a",
        "{a:?}"
    );
    // Once the group is gone, the certificate may go too.
    assert_eq!(
        server
            .admin("DELETE", "/enrollmentGroups/line-a", None)
            .status,
        204
    );
    assert_eq!(
        server
            .admin_if("DELETE", "/certificates/line-a-ca", None, "*")
            .status,
        204
    );
}

/// Item 3: `"ProvisioningStatus": "disabled"` (and other spellings) gave
/// an *enabled* entry. Keys match case-insensitively, as DPS's service
/// does; near misses and null are refused.
#[test]
fn provisioning_status_is_read_case_insensitively_and_strictly() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pki) = with_enrollments(dir.path(), 0);
    let mut doc = group("line-b", &pki.line_b.pem, true);
    doc.as_object_mut().unwrap().remove("provisioningStatus");
    doc["ProvisioningStatus"] = json!("disabled");
    let put = server.admin("PUT", "/enrollmentGroups/line-b", Some(&doc));
    assert_eq!(put.status, 200, "{put:?}");
    assert_eq!(
        put.body["provisioningStatus"], "disabled",
        "stored in DPS spelling"
    );
    let (c4, k4) = device(&pki, 4);
    assert_eq!(
        server.device(&c4, &k4).register("device-4").body["status"],
        "disabled"
    );
    for (key, value) in [
        ("provisioning_status", json!("enabled")),
        ("provisioningStatus", Value::Null),
        ("provisioningStatus", json!(false)),
    ] {
        let mut doc = group("line-b", &pki.line_b.pem, true);
        doc.as_object_mut().unwrap().remove("provisioningStatus");
        doc[key] = value.clone();
        let put = server.admin("PUT", "/enrollmentGroups/line-b", Some(&doc));
        assert_eq!(put.status, 400, "{key}: {value}: {put:?}");
    }
    assert_eq!(
        server.device(&c4, &k4).register("device-4").body["status"],
        "disabled"
    );
}

/// Item 3: a stored document that could not be loaded was skipped at start
/// with a warning, so a disabled group's devices were admitted. Now the
/// devices under it are refused and start-up says so.
#[test]
fn stored_entries_that_cannot_be_loaded_refuse_their_devices() {
    let dir = tempfile::tempdir().unwrap();
    let pki = canonical();
    let file = dir.path().join("enrollments.json");
    std::fs::write(&file, pki.enrollment_steps()[2].to_string()).unwrap();
    let data = dir.path().join("data");
    Server::start(&data, Some(&file)).stop();
    let corrupt = |kind: &str, id: &str, edit: &dyn Fn(&str) -> String| {
        let db = rusqlite::Connection::open(data.join("attest.db")).unwrap();
        let doc: String = db
            .query_row(
                "SELECT doc FROM enrollments WHERE kind = ?1 AND id = ?2",
                [kind, id],
                |r| r.get(0),
            )
            .unwrap();
        db.execute(
            "UPDATE enrollments SET doc = ?1 WHERE kind = ?2 AND id = ?3",
            [edit(&doc).as_str(), kind, id],
        )
        .unwrap();
    };
    let register = |server: &Server, n: usize| {
        let (chain, key) = device(&pki, n);
        let a = server.device(&chain, &key).register(&format!("device-{n}"));
        assert!(a.status < 500, "{a:?}");
        a.body["status"].as_str().unwrap_or("refused").to_string()
    };

    // A status no one can read: line B's CA is still known, so only its
    // devices are refused.
    corrupt("group", "line-b", &|d| {
        d.replace("\"disabled\"", "\"disabled \"")
    });
    let server = Server::start(&data, None);
    let notes = server.running.as_ref().unwrap().notes.join("\n");
    assert!(
        notes.contains("ERROR: enrollment group 'line-b' cannot be loaded"),
        "{notes}"
    );
    assert_ne!(register(&server, 4), "assigned");
    assert_eq!(register(&server, 1), "assigned");
    server.stop();

    // A broken individual enrollment refuses its device (no fall-through
    // to the root's group).
    corrupt("individual", "device-3", &|_| "{not json".into());
    let server = Server::start(&data, None);
    assert_ne!(register(&server, 3), "assigned");
    assert_eq!(register(&server, 2), "assigned");
    server.stop();

    // A group whose CA cannot be read might have disabled any CA: every
    // group-decided device is refused until it is repaired.
    corrupt("group", "line-b", &|_| "not json at all".into());
    let server = Server::start(&data, None);
    let notes = server.running.as_ref().unwrap().notes.join("\n");
    assert!(notes.contains("cannot be determined"), "{notes}");
    for n in [1, 2, 4, 5] {
        assert_ne!(register(&server, n), "assigned", "device-{n}");
    }
}

/// Item 4: an empty management key started the service (anyone could mint
/// tokens), and tokens could be valid for ever.
#[test]
fn weak_management_keys_and_long_lived_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("config.json"),
        json!({"sharedAccessPolicies": [{"keyName": "owner", "primaryKey": ""}],
               "defaultIotHubHostName": "hub.example"})
        .to_string(),
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let started = runtime.block_on(host_http::start(support::options(&data, None)));
    let err = format!("{:#}", started.err().expect("refused to start"));
    assert!(err.contains("at least 32"), "{err}");

    std::fs::remove_file(data.join("config.json")).unwrap();

    // Item 9: an enrollment "file" that never ends (a FIFO, /dev/zero) was
    // read until memory ran out; the read is bounded now.
    let endless = runtime.block_on(host_http::start(support::options(
        &data,
        Some(std::path::Path::new("/dev/zero")),
    )));
    let err = format!("{:#}", endless.err().expect("refused to start"));
    assert!(err.contains("byte limit"), "{err}");

    let server = Server::start(&data, None);
    let text = std::fs::read_to_string(data.join("config.json")).unwrap();
    let config: host_http::ServiceConfig = serde_json::from_str(&text).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let forever = attest_dps::sas::token(
        &config.shared_access_policies[0],
        "localhost",
        now + 2 * 365 * 86_400,
    )
    .unwrap();
    let r = server.client().call(
        "GET",
        "/certificates",
        vec![],
        &[("authorization", &forever)],
    );
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.raw.contains("maxTokenLifetimeSeconds"), "{}", r.raw);
}

/// Items 6 and 7: every registration added an operation row that was never
/// deleted; an individual enrollment without deviceId took its device ID
/// from the URL's letter case (three hub identities for one device).
#[test]
fn operations_do_not_pile_up_and_device_ids_ignore_url_case() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pki) = with_enrollments(dir.path(), 0);
    let put = server.admin(
        "PUT",
        "/enrollments/device-1",
        Some(&individual("device-1", &pki.devices[0].pem, true)),
    );
    assert_eq!(put.status, 200, "{put:?}");
    let (chain, key) = device(&pki, 1);
    let mut operations = Vec::new();
    for url_id in ["device-1", "DEVICE-1", "Device-1", "device-1", "dEvIcE-1"] {
        let a = server.device(&chain, &key).register(url_id);
        assert_eq!(a.body["status"], "assigned", "{a:?}");
        assert_eq!(
            a.body["registrationState"]["deviceId"], "device-1",
            "{url_id}"
        );
        assert_eq!(
            a.body["registrationState"]["registrationId"], "device-1",
            "{url_id}"
        );
        operations.push(a.body["operationId"].as_str().unwrap().to_string());
    }
    let db = rusqlite::Connection::open(server.data.join("attest.db")).unwrap();
    let rows: i64 = db
        .query_row("SELECT count(*) FROM operations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1, "one operation per registration");
    let old = server.device(&chain, &key).call(
        "GET",
        &format!(
            "/{SCOPE}/registrations/device-1/operations/{}",
            operations[0]
        ),
        vec![],
        &[],
    );
    assert_eq!(old.status, 404, "{old:?}");
    let records = server.admin("POST", "/registrations/all-devices/query", Some(&json!({})));
    assert_eq!(
        records.body.as_array().map(Vec::len),
        Some(0),
        "no group record"
    );
}

/// Item 11: the verification-code mismatch error printed the valid code; a
/// PUT carrying a read-only `registrationState` was stored and returned.
#[test]
fn secrets_and_read_only_fields_are_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pki) = with_enrollments(dir.path(), 0);
    server.admin(
        "PUT",
        "/certificates/line-a-ca",
        Some(&json!({"certificate": pki.line_a.pem})),
    );
    let coded = server.admin_if(
        "POST",
        "/certificates/line-a-ca/generateVerificationCode",
        None,
        "*",
    );
    let code = coded.body["properties"]["verificationCode"]
        .as_str()
        .unwrap()
        .to_string();
    let wrong = server.admin_if(
        "POST",
        "/certificates/line-a-ca/verify",
        Some(&json!({"certificate": support::verification_certificate(&pki.line_a, "not-it")})),
        "*",
    );
    assert_eq!(wrong.status, 400, "{wrong:?}");
    assert!(
        !wrong.raw.contains(&code),
        "the valid code leaked: {}",
        wrong.raw
    );

    let mut doc = individual("device-1", &pki.devices[0].pem, true);
    doc["registrationState"] = json!({"assignedHub": "evil.example", "status": "assigned"});
    let put = server.admin("PUT", "/enrollments/device-1", Some(&doc));
    assert_eq!(put.status, 200, "{put:?}");
    let got = server.admin("GET", "/enrollments/device-1", None);
    assert!(got.body.get("registrationState").is_none(), "{}", got.raw);
    assert!(!got.raw.contains("evil.example"), "{}", got.raw);
}

/// Item 5: the accept loop took a connection slot before accepting and a
/// silent socket kept it for the whole 10 s handshake allowance, so ~1,100
/// idle sockets stalled every device for seconds. Now a silent socket is
/// closed after the first-byte timeout (2 s), one address holds at most
/// `MAX_CONNECTIONS_PER_PEER` connections (more are closed at once), and a
/// device from another address registers while 300 idle sockets are open.
/// (The latency effect is measured by `cargo bench -p host-http --bench
/// load -- --idle 2000`; this test checks behaviour, not time: every idle
/// socket must see the server close it well before the old 10 s allowance.)
#[test]
fn idle_connections_are_shed_not_queued() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pki) = with_enrollments(dir.path(), 0);
    let addr = server.addr;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let idle: Vec<tokio::net::TcpStream> = runtime.block_on(async {
        let mut out = Vec::new();
        for _ in 0..300 {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
            out.push(socket.connect(addr).await.unwrap());
        }
        out
    });
    let (chain, key) = device(&pki, 1);
    let a = server.device(&chain, &key).register("device-1");
    assert_eq!(a.body["status"], "assigned", "{a:?}");
    let closed = runtime.block_on(async {
        let mut closed = 0;
        for mut s in idle {
            use tokio::io::AsyncReadExt;
            let mut b = [0u8; 1];
            let read = tokio::time::timeout(std::time::Duration::from_secs(8), s.read(&mut b));
            // Closed: end of stream, or reset; not closed: data, or the timeout.
            if let Ok(Ok(0) | Err(_)) = read.await {
                closed += 1;
            }
        }
        closed
    });
    assert_eq!(closed, 300, "every silent socket is closed by the server");
}

/// Issue 18, item 4: a group with both `signingCertificates` and
/// `caReferences` was stored, and decisions read only the first, so the
/// devices under the referenced CA were admitted by the parent group. Now
/// such a write is a 400 that says why, and a stored one does not load:
/// every CA it names refuses its devices, also after a restart.
#[test]
fn a_group_that_names_its_ca_two_ways_is_refused_and_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pki) = with_enrollments(dir.path(), 0);
    assert_eq!(server.verify_ca("line-b-ca", &pki.line_b).status, 200);
    let mut both = group("both", &pki.line_a.pem, false);
    both["attestation"]["x509"]["caReferences"] = json!({"primary": "line-b-ca"});
    let put = server.admin("PUT", "/enrollmentGroups/both", Some(&both));
    assert_eq!(put.status, 400, "{put:?}");
    assert!(put.raw.contains("caReferences"), "{}", put.raw);
    // Stored anyway (an older version, a hand edit): it loads as nothing.
    let ok = server.admin(
        "PUT",
        "/enrollmentGroups/both",
        Some(&group("both", &pki.line_a.pem, false)),
    );
    assert_eq!(ok.status, 200, "{ok:?}");
    let data = server.data.clone();
    server.stop();
    let db = rusqlite::Connection::open(data.join("attest.db")).unwrap();
    db.execute(
        "UPDATE enrollments SET doc = ?1 WHERE id = 'both'",
        [both.to_string()],
    )
    .unwrap();
    drop(db);
    let server = Server::start(&data, None);
    for n in [1, 4] {
        let (chain, key) = device(&pki, n);
        let answer = server.device(&chain, &key).register(&format!("device-{n}"));
        assert_ne!(
            answer.body["status"], "assigned",
            "device-{n} admitted past a group that names two CAs: {answer:?}"
        );
    }
}

/// Issue 18, item 8: owners were prefix strings stripped repeatedly, so a
/// group whose ID starts with `group:` read another group's ID and never
/// admitted; the record named "fleet (cannot be loaded)".
#[test]
fn a_group_id_that_looks_like_an_owner_prefix_is_that_group() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None);
    let pki = canonical();
    let put = server.admin(
        "PUT",
        "/enrollmentGroups/group:fleet",
        Some(&group("group:fleet", &pki.line_a.pem, true)),
    );
    assert_eq!(put.status, 200, "{put:?}");
    let (chain, key) = device(&pki, 1);
    let answer = server.device(&chain, &key).register("device-1");
    assert_eq!(answer.body["status"], "assigned", "{answer:?}");
    let record = server.admin("GET", "/registrations/device-1", None);
    assert_eq!(
        record.body["x509"]["enrollmentGroupId"], "group:fleet",
        "{record:?}"
    );
}

/// Issue 18, item 9: `reprovisionPolicy` keys were case-sensitive:
/// `UpdateHubAssignment: false` was stored and ignored (the device moved
/// hubs), and the near miss `update_hub_assignment` was a 200. Nested DPS
/// objects follow the same case rules as the top level.
#[test]
fn nested_dps_fields_match_case_insensitively_and_near_misses_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None);
    let pki = canonical();
    let entry = |hub: &str, policy: serde_json::Value| {
        let mut g = group("line-a", &pki.line_a.pem, true);
        g["allocationPolicy"] = json!("static");
        g["iotHubHostName"] = json!(hub);
        g["reprovisionPolicy"] = policy;
        g
    };
    for near_miss in [
        json!({"update_hub_assignment": false}),
        json!({"migrate-device-data": false}),
    ] {
        let put = server.admin(
            "PUT",
            "/enrollmentGroups/line-a",
            Some(&entry("hub-a.example", near_miss.clone())),
        );
        assert_eq!(put.status, 400, "{near_miss}: {put:?}");
    }
    let mut bad = entry("hub-a.example", json!({}));
    bad["customAllocationDefinition"] = json!({"webhook_url": "https://x"});
    assert_eq!(
        server
            .admin("PUT", "/enrollmentGroups/line-a", Some(&bad))
            .status,
        400
    );
    let put = server.admin(
        "PUT",
        "/enrollmentGroups/line-a",
        Some(&entry(
            "hub-a.example",
            json!({"UpdateHubAssignment": false}),
        )),
    );
    assert_eq!(put.status, 200, "{put:?}");
    assert_eq!(
        put.body["reprovisionPolicy"],
        json!({"updateHubAssignment": false}),
        "stored in DPS spelling"
    );
    let (chain, key) = device(&pki, 1);
    let first = server.device(&chain, &key).register("device-1");
    assert_eq!(
        first.body["registrationState"]["assignedHub"],
        "hub-a.example"
    );
    let etag = put.body["etag"].as_str().unwrap().to_string();
    let moved = server.admin_if(
        "PUT",
        "/enrollmentGroups/line-a",
        Some(&entry(
            "hub-b.example",
            json!({"UPDATEHUBASSIGNMENT": false}),
        )),
        &etag,
    );
    assert_eq!(moved.status, 200, "{moved:?}");
    let again = server.device(&chain, &key).register("device-1");
    assert_eq!(
        again.body["registrationState"]["assignedHub"], "hub-a.example",
        "updateHubAssignment false keeps the hub: {again:?}"
    );
}

/// Issue 18, item 5: `--enrollments` was re-applied over the store at
/// every start, so a group disabled through the management API came back
/// enabled after a restart, silently. Now the file seeds only what the
/// store does not have, and start-up says which stored entries differ.
#[test]
fn enrollments_file_never_reverts_the_management_api() {
    let dir = tempfile::tempdir().unwrap();
    let pki = canonical();
    let file = dir.path().join("enrollments.json");
    // Step 0: one enabled group on the root.
    std::fs::write(&file, pki.enrollment_steps()[0].to_string()).unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, Some(&file));
    let root = server.admin("GET", "/enrollmentGroups/all-devices", None);
    assert_eq!(root.status, 200, "{root:?}");
    let mut disabled = root.body.clone();
    disabled["provisioningStatus"] = json!("disabled");
    let put = server.admin_if(
        "PUT",
        "/enrollmentGroups/all-devices",
        Some(&disabled),
        root.body["etag"].as_str().unwrap(),
    );
    assert_eq!(put.status, 200, "{put:?}");
    server.stop();

    // Restart with the same file: the API's state stands, and says so.
    let server = Server::start(&data, Some(&file));
    let notes = server.running.as_ref().unwrap().notes.join("\n");
    assert!(
        notes.contains("WARNING") && notes.contains("'all-devices'"),
        "{notes}"
    );
    let after = server.admin("GET", "/enrollmentGroups/all-devices", None);
    assert_eq!(after.body["provisioningStatus"], "disabled", "{after:?}");
    let (chain, key) = device(&pki, 1);
    let answer = server.device(&chain, &key).register("device-1");
    assert_eq!(answer.body["status"], "disabled", "{answer:?}");
    server.stop();

    // An entry the store does not have is still seeded; one it has in the
    // same version is not reported.
    std::fs::write(&file, pki.enrollment_steps()[1].to_string()).unwrap();
    let server = Server::start(&data, Some(&file));
    let notes = server.running.as_ref().unwrap().notes.join("\n");
    assert!(
        notes.contains("seeded 0 individual enrollment(s) and 1 enrollment group(s)"),
        "{notes}"
    );
    assert_eq!(
        server.admin("GET", "/enrollmentGroups/line-b", None).status,
        200
    );
}

/// Issue 18, "also refuse at write time": a group on a certificate that
/// cannot issue (a device certificate) and an individual enrollment on a
/// CA certificate were stored as entries that could never admit. Both are
/// a 400 that says why.
#[test]
fn entries_that_could_never_admit_are_refused_on_write() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None);
    let pki = canonical();
    let on_a_device = server.admin(
        "PUT",
        "/enrollmentGroups/devices",
        Some(&group("devices", &pki.devices[0].pem, true)),
    );
    assert_eq!(on_a_device.status, 400, "{on_a_device:?}");
    assert!(
        on_a_device.raw.contains("not a CA certificate"),
        "{}",
        on_a_device.raw
    );
    let on_a_ca = server.admin(
        "PUT",
        "/enrollments/device-1",
        Some(&individual("device-1", &pki.line_a.pem, true)),
    );
    assert_eq!(on_a_ca.status, 400, "{on_a_ca:?}");
    assert!(
        on_a_ca.raw.contains("is a CA certificate"),
        "{}",
        on_a_ca.raw
    );
    // The right way round is fine.
    for (path, doc) in [
        (
            "/enrollmentGroups/line-a",
            group("line-a", &pki.line_a.pem, true),
        ),
        (
            "/enrollments/device-1",
            individual("device-1", &pki.devices[0].pem, true),
        ),
    ] {
        assert_eq!(server.admin("PUT", path, Some(&doc)).status, 200, "{path}");
    }
}
