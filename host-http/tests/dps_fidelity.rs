//! DPS fidelity, against a live host-http over real TLS: what the tools,
//! samples and runtimes written for Azure DPS expect of the management and
//! device APIs (queries, keyset paging, reprovisioning and substatus,
//! certificate `info`, CA certificate resources, `registrationState`,
//! identifier rules, error codes, attestation mechanism, operations of
//! deleted records).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod support;

use serde_json::{Value, json};
use support::{SCOPE, Server, canonical, device, group, individual, issue, openssl_fingerprint};

fn ids(answer: &support::Answer, field: &str) -> Vec<String> {
    answer
        .body
        .as_array()
        .unwrap_or_else(|| panic!("an array: {answer:?}"))
        .iter()
        .map(|e| e[field].as_str().unwrap().to_string())
        .collect()
}

/// Items 1 and 2: SQL-style queries, and a DPS-style cleanup (query a
/// page, delete it, ask for the next) that misses nothing.
#[test]
fn select_queries_and_a_delete_as_you_page_cleanup() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None);
    let pki = canonical();
    for n in 1..=6 {
        let (chain, _) = issue(&pki.line_a, &format!("cleanup-{n}"));
        let pem = chain
            .split_inclusive("-----END CERTIFICATE-----\n")
            .next()
            .unwrap();
        let put = server.admin(
            "PUT",
            &format!("/enrollments/cleanup-{n}"),
            Some(&individual(&format!("cleanup-{n}"), pem, true)),
        );
        assert_eq!(put.status, 200, "{put:?}");
    }
    server.admin(
        "PUT",
        "/enrollmentGroups/line-a",
        Some(&group("line-a", &pki.line_a.pem, true)),
    );

    for (route, query) in [
        ("/enrollments/query", "SELECT * FROM enrollments"),
        ("/enrollments/query", "select * from ENROLLMENTS"),
        ("/enrollments/query", "*"),
        ("/enrollmentGroups/query", "SELECT * FROM enrollmentGroups"),
    ] {
        let a = server.admin("POST", route, Some(&json!({ "query": query })));
        assert_eq!(a.status, 200, "{query}: {a:?}");
    }
    let filtered = server.admin(
        "POST",
        "/enrollments/query",
        Some(&json!({"query": "SELECT * FROM enrollments WHERE registrationId = 'cleanup-1'"})),
    );
    assert_eq!(filtered.status, 400);
    assert!(
        filtered.raw.contains("WHERE clauses are not supported"),
        "{}",
        filtered.raw
    );

    // The C# cleanup sample's loop, page size 2: every entry seen once.
    let client = server.client();
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut headers = vec![
            ("authorization", server.token()),
            ("x-ms-max-item-count", "2".into()),
        ];
        if let Some(t) = &token {
            headers.push(("x-ms-continuation", t.clone()));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = client.call(
            "POST",
            "/enrollments/query?api-version=2021-10-01",
            br#"{"query":"SELECT * FROM enrollments"}"#.to_vec(),
            &headers,
        );
        assert_eq!(page.status, 200, "{page:?}");
        assert_eq!(page.headers["x-ms-max-item-count"], "2");
        let page_ids = ids(&page, "registrationId");
        assert!(page_ids.len() <= 2);
        for id in &page_ids {
            let deleted = server.admin("DELETE", &format!("/enrollments/{id}"), None);
            assert_eq!(deleted.status, 204);
        }
        seen.extend(page_ids);
        token = page
            .headers
            .get("x-ms-continuation")
            .map(|v| v.to_str().unwrap().to_string());
        if token.is_none() {
            break;
        }
    }
    let expected: Vec<String> = (1..=6).map(|n| format!("cleanup-{n}")).collect();
    assert_eq!(seen, expected);
    let rest = server.admin("POST", "/enrollments/query", Some(&json!({"query": "*"})));
    assert_eq!(rest.body, json!([]));
    // A token for another collection, or one not issued here, is a 400.
    for bad in ["offset:2", "k1.bm90LWl0"] {
        let a = client.call(
            "POST",
            "/enrollmentGroups/query",
            b"{}".to_vec(),
            &[
                ("authorization", &server.token()),
                ("x-ms-continuation", bad),
            ],
        );
        assert_eq!(a.status, 400, "{bad}: {a:?}");
    }
}

/// Item 3: every `reprovisionPolicy` combination, and the substatus of a
/// first registration, a re-registration without a change, and one after
/// the entry moved to another hub.
#[test]
fn reprovision_policy_table() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None);
    let pki = canonical();
    let (chain, key) = device(&pki, 1);
    // (updateHubAssignment, migrateDeviceData, hub after the move, substatus after the move)
    let table = [
        (true, true, "hub-b.example", "deviceDataMigrated"),
        (true, false, "hub-b.example", "deviceDataReset"),
        (
            false,
            true,
            "hub-a.example",
            "reprovisionedToInitialAssignment",
        ),
        (
            false,
            false,
            "hub-a.example",
            "reprovisionedToInitialAssignment",
        ),
    ];
    for (update, migrate, hub_after, substatus_after) in table {
        let entry = |hub: &str| {
            let mut g = group("line-a", &pki.line_a.pem, true);
            g["allocationPolicy"] = json!("static");
            g["iotHubHostName"] = json!(hub);
            g["reprovisionPolicy"] =
                json!({"updateHubAssignment": update, "migrateDeviceData": migrate});
            g
        };
        // A fresh device record each round.
        server.admin("DELETE", "/registrations/device-1", None);
        server.admin(
            "PUT",
            "/enrollmentGroups/line-a",
            Some(&entry("hub-a.example")),
        );
        let case = format!("update {update}, migrate {migrate}");
        let state = |a: &support::Answer| {
            let s = &a.body["registrationState"];
            (
                s["assignedHub"].as_str().unwrap_or_default().to_string(),
                s["substatus"].as_str().unwrap_or_default().to_string(),
            )
        };
        let first = server.device(&chain, &key).register("device-1");
        assert_eq!(
            state(&first),
            ("hub-a.example".into(), "initialAssignment".into()),
            "{case}"
        );
        let again = server.device(&chain, &key).register("device-1");
        assert_eq!(
            state(&again),
            (
                "hub-a.example".into(),
                "reprovisionedToInitialAssignment".into()
            ),
            "{case}"
        );
        let etag = server.admin("GET", "/enrollmentGroups/line-a", None).body["etag"].clone();
        let moved = server.admin_if(
            "PUT",
            "/enrollmentGroups/line-a",
            Some(&entry("hub-b.example")),
            etag.as_str().unwrap(),
        );
        assert_eq!(moved.status, 200, "{moved:?}");
        let after = server.device(&chain, &key).register("device-1");
        assert_eq!(
            state(&after),
            (hub_after.into(), substatus_after.into()),
            "{case}"
        );
        let record = server.admin("GET", "/registrations/device-1", None);
        assert_eq!(record.body["substatus"], substatus_after, "{case}");
    }
    // A reprovisionPolicy that is not booleans is refused on write.
    let mut bad = group("line-b", &pki.line_b.pem, true);
    bad["reprovisionPolicy"] = json!({"updateHubAssignment": "yes"});
    assert_eq!(
        server
            .admin("PUT", "/enrollmentGroups/line-b", Some(&bad))
            .status,
        400
    );
}

/// Item 4: certificates are parsed on write (garbage is a 400 with the
/// reason) and every response carries DPS's `info` block, whose
/// thumbprints are OpenSSL's fingerprints.
#[test]
fn certificates_are_parsed_on_write_and_shown_with_info() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None);
    let pki = canonical();
    let garbage = individual("device-1", "bm90IGEgY2VydGlmaWNhdGU=", true);
    let refused = server.admin("PUT", "/enrollments/device-1", Some(&garbage));
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(
        refused
            .raw
            .contains("clientCertificates.primary is not a usable certificate"),
        "{}",
        refused.raw
    );

    let mut doc = individual("device-1", &pki.devices[0].pem, true);
    // An `info` a caller sends is replaced, never stored as sent.
    doc["attestation"]["x509"]["clientCertificates"]["primary"]["info"] =
        json!({"subjectName": "CN=forged"});
    let put = server.admin("PUT", "/enrollments/device-1", Some(&doc));
    assert_eq!(put.status, 200, "{put:?}");
    let get = server.admin("GET", "/enrollments/device-1", None);
    let info = &get.body["attestation"]["x509"]["clientCertificates"]["primary"]["info"];
    assert_eq!(info["subjectName"], "CN=device-1");
    assert_eq!(info["issuerName"], "CN=attest demo line A CA");
    assert_eq!(info["version"], 3);
    assert_eq!(
        info["sha1Thumbprint"],
        openssl_fingerprint(&pki.devices[0].pem, "sha1")
    );
    assert_eq!(
        info["sha256Thumbprint"],
        openssl_fingerprint(&pki.devices[0].pem, "sha256")
    );
    for field in ["notBeforeUtc", "notAfterUtc", "serialNumber"] {
        assert!(info[field].is_string(), "{field}: {info}");
    }
    let g = server.admin(
        "PUT",
        "/enrollmentGroups/line-b",
        Some(&group("line-b", &pki.line_b.pem, true)),
    );
    let info = &g.body["attestation"]["x509"]["signingCertificates"]["primary"]["info"];
    assert_eq!(
        info["sha256Thumbprint"],
        openssl_fingerprint(&pki.line_b.pem, "sha256")
    );

    // Item 8: the attestation mechanism route, and signingCertificateInfo
    // in a group registration.
    let mechanism = server.admin(
        "POST",
        "/enrollmentGroups/line-b/attestationmechanism",
        None,
    );
    assert_eq!(mechanism.status, 200, "{mechanism:?}");
    assert_eq!(mechanism.body["type"], "x509");
    assert!(mechanism.body["x509"]["signingCertificates"]["primary"]["info"].is_object());
    let (c4, k4) = device(&pki, 4);
    let a = server.device(&c4, &k4).register("device-4");
    let signing = &a.body["registrationState"]["x509"]["signingCertificateInfo"];
    assert_eq!(
        signing["sha256Thumbprint"],
        openssl_fingerprint(&pki.line_b.pem, "sha256"),
        "{a:?}"
    );
}

/// Item 5: CA certificate resources: `isVerified` on upload, `If-Match`
/// where DPS requires it, the full subject, and RFC 1123 dates.
#[test]
fn ca_certificate_resources_follow_dps() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None);
    let pki = canonical();
    let up = server.admin(
        "PUT",
        "/certificates/root",
        Some(&json!({"properties": {"certificate": pki.root.pem, "isVerified": true}})),
    );
    assert_eq!(up.status, 200, "{up:?}");
    let p = &up.body["properties"];
    assert_eq!(p["isVerified"], true);
    assert_eq!(p["subject"], "CN=attest demo root CA");
    for field in ["expiry", "created", "updated"] {
        let t = p[field].as_str().unwrap();
        assert!(t.ends_with(" GMT") && t.contains(", "), "{field}: {t}");
    }
    // Verified at upload: a group may reference it, and devices are admitted.
    let by_ref = json!({"enrollmentGroupId": "by-ref", "attestation": {"type": "x509",
        "x509": {"caReferences": {"primary": "root"}}}});
    assert_eq!(
        server
            .admin("PUT", "/enrollmentGroups/by-ref", Some(&by_ref))
            .status,
        200
    );
    let (c1, k1) = device(&pki, 1);
    assert_eq!(
        server.device(&c1, &k1).register("device-1").body["status"],
        "assigned"
    );

    // If-Match is required to replace, delete, generate a code or verify.
    let other = server.admin(
        "PUT",
        "/certificates/line-b",
        Some(&json!({"certificate": pki.line_b.pem})),
    );
    assert_eq!(other.status, 200);
    let etag = other.body["etag"].as_str().unwrap().to_string();
    for (method, path, body) in [
        (
            "PUT",
            "/certificates/line-b",
            Some(json!({"certificate": pki.line_b.pem})),
        ),
        (
            "POST",
            "/certificates/line-b/generateVerificationCode",
            None,
        ),
        (
            "POST",
            "/certificates/line-b/verify",
            Some(json!({"certificate": "x"})),
        ),
        ("DELETE", "/certificates/line-b", None),
    ] {
        let a = server.admin(method, path, body.as_ref());
        assert_eq!(a.status, 412, "{method} {path}: {a:?}");
        assert!(a.raw.contains("If-Match"), "{}", a.raw);
    }
    let stale = server.admin_if("DELETE", "/certificates/line-b", None, "\"stale\"");
    assert_eq!(stale.status, 412);
    assert_eq!(stale.body["errorCode"], 412002);
    assert_eq!(
        server
            .admin_if("DELETE", "/certificates/line-b", None, &etag)
            .status,
        204
    );
    let bad = server.admin(
        "PUT",
        "/certificates/x",
        Some(&json!({"certificate": pki.line_b.pem, "isVerified": "yes"})),
    );
    assert_eq!(bad.status, 400);
}

/// Items 6, 7 and 8: `registrationState` on enrollments, identifier
/// rules, six-digit error codes, and operations of deleted records.
#[test]
fn registration_state_identifiers_and_error_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None);
    let pki = canonical();
    let put = server.admin(
        "PUT",
        "/enrollments/device-2",
        Some(&individual("device-2", &pki.devices[1].pem, true)),
    );
    assert_eq!(put.status, 200);
    assert!(
        put.body.get("registrationState").is_none(),
        "no registration yet"
    );
    let (c2, k2) = device(&pki, 2);
    let registered = server.device(&c2, &k2).register("device-2");
    assert_eq!(registered.body["status"], "assigned");
    let get = server.admin("GET", "/enrollments/device-2", None);
    assert_eq!(get.body["registrationState"]["status"], "assigned");
    assert_eq!(get.body["registrationState"]["registrationId"], "device-2");
    let queried = server.admin("POST", "/enrollments/query", Some(&json!({"query": "*"})));
    assert_eq!(
        queried.body[0]["registrationState"]["assignedHub"],
        "hub.attest.local"
    );

    // Identifier rules (DPS: no special character at either end; group IDs
    // without spaces or slashes).
    for id in ["-device", "device.", "_d", "d:"] {
        let a = server.admin(
            "PUT",
            &format!("/enrollments/{id}"),
            Some(&individual(id, &pki.devices[1].pem, true)),
        );
        assert_eq!(a.status, 400, "{id}: {a:?}");
    }
    for id in ["line%20a", "line%2Fa", "-line", "line."] {
        let a = server.admin(
            "PUT",
            &format!("/enrollmentGroups/{id}"),
            Some(&json!({"attestation": {"type": "x509",
            "x509": {"signingCertificates": {"primary": {"certificate": pki.line_a.pem}}}}})),
        );
        assert_eq!(a.status, 400, "{id}: {a:?}");
    }
    let mut spaced = individual("device-9", &pki.devices[1].pem, true);
    spaced["deviceId"] = json!("device 9");
    let a = server.admin("PUT", "/enrollments/device-9", Some(&spaced));
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.raw.contains("IoT Hub's device ID rules"), "{}", a.raw);
    let device_side = server.device(&c2, &k2).register("device-2.");
    assert_eq!(device_side.status, 400);

    // Six-digit codes.
    let code = |a: &support::Answer| a.body["errorCode"].as_u64().unwrap();
    assert_eq!(
        code(&server.admin("GET", "/enrollments/nobody", None)),
        404201
    );
    assert_eq!(
        code(&server.admin("GET", "/enrollmentGroups/nothing", None)),
        404201
    );
    assert_eq!(
        code(&server.admin("DELETE", "/enrollments/nobody", None)),
        404201
    );
    assert_eq!(
        code(&server.admin("GET", "/registrations/nobody", None)),
        404202
    );
    let stale = server.admin_if("DELETE", "/enrollments/device-2", None, "\"stale\"");
    assert_eq!((stale.status, code(&stale)), (412, 412002));

    // Polling an operation whose record was deleted: 404, not the old answer.
    let operation = registered.body["operationId"].as_str().unwrap();
    let poll = |server: &Server| {
        server.device(&c2, &k2).call(
            "GET",
            &format!("/{SCOPE}/registrations/device-2/operations/{operation}"),
            Vec::new(),
            &[],
        )
    };
    assert_eq!(poll(&server).status, 200);
    assert_eq!(
        server
            .admin("DELETE", "/registrations/device-2", None)
            .status,
        204
    );
    assert_eq!(poll(&server).status, 404);
    let status: Value = server
        .device(&c2, &k2)
        .call(
            "POST",
            &format!("/{SCOPE}/registrations/device-2"),
            Vec::new(),
            &[],
        )
        .body;
    assert_eq!(status["errorCode"], 404202);
}

/// Issue 12 (bulk operations): `POST /enrollments` with DPS's modes; each
/// entry judged as a single write would be, the refused ones listed in the
/// `BulkEnrollmentOperationResult`.
#[test]
fn bulk_enrollment_operations() {
    bulk_enrollment_operations_on(None);
}

/// The same on PostgreSQL, whose store reads a bulk operation's entries in
/// one query and writes them in one statement.
#[test]
fn bulk_enrollment_operations_on_postgresql() {
    bulk_enrollment_operations_on(Some(support::fresh_database()));
}

fn bulk_enrollment_operations_on(database: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = support::options(dir.path(), None);
    options.database = database;
    let server = Server::start_with(options);
    let pki = canonical();
    let entry = |n: usize| individual(&format!("device-{n}"), &pki.devices[n - 1].pem, true);
    let bulk = |mode: &str, entries: Vec<Value>| {
        server.admin(
            "POST",
            "/enrollments/?api-version=2021-10-01",
            Some(&json!({"mode": mode, "enrollments": entries})),
        )
    };
    let created = bulk("create", vec![entry(1), entry(2), entry(3)]);
    assert_eq!(created.status, 200, "{created:?}");
    assert_eq!(created.body, json!({"isSuccessful": true, "errors": []}));
    // create refuses what exists; a malformed entry is refused alone.
    let mut bad = entry(4);
    bad["registrationId"] = json!("-device-4");
    let again = bulk("create", vec![entry(1), entry(5), bad]);
    assert_eq!(again.body["isSuccessful"], false);
    let codes: Vec<(String, u64)> = again.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["registrationId"].as_str().unwrap().to_string(),
                e["errorCode"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("device-1".to_string(), 409000),
            ("-device-4".to_string(), 400004)
        ]
    );
    assert_eq!(
        server.admin("GET", "/enrollments/device-5", None).status,
        200,
        "device-5 was created"
    );
    // updateIfMatchETag: a stale etag is refused, the current one applies.
    let current = server.admin("GET", "/enrollments/device-2", None).body["etag"].clone();
    let mut fresh = individual("device-2", &pki.devices[1].pem, false);
    fresh["etag"] = current;
    let mut stale = individual("device-3", &pki.devices[2].pem, false);
    stale["etag"] = json!("\"stale\"");
    let conditional = bulk("updateIfMatchETag", vec![fresh, stale]);
    assert_eq!(conditional.body["errors"][0]["registrationId"], "device-3");
    assert_eq!(conditional.body["errors"][0]["errorCode"], 412002);
    assert_eq!(
        server.admin("GET", "/enrollments/device-2", None).body["provisioningStatus"],
        "disabled"
    );
    // The decisions follow at once: device-2 is disabled now.
    let (c2, k2) = device(&pki, 2);
    assert_eq!(
        server.device(&c2, &k2).register("device-2").body["status"],
        "disabled"
    );
    let deleted = bulk("delete", vec![entry(1), entry(4)]);
    assert_eq!(deleted.body["errors"][0]["registrationId"], "device-4");
    assert_eq!(deleted.body["errors"][0]["errorCode"], 404201);
    assert_eq!(
        server.admin("GET", "/enrollments/device-1", None).status,
        404
    );
    // One operation is as if its entries were written one by one: the
    // second of two creates of one ID sees the first; a delete after a
    // create in the same operation leaves nothing.
    let extra = |id: &str| individual(id, &pki.devices[0].pem, true);
    let twice = bulk("create", vec![extra("device-6"), extra("device-6")]);
    assert_eq!(
        twice.body["errors"].as_array().unwrap().len(),
        1,
        "{twice:?}"
    );
    assert_eq!(twice.body["errors"][0]["errorCode"], 409000);
    assert_eq!(
        server.admin("GET", "/enrollments/device-6", None).status,
        200
    );
    let created = bulk("create", vec![extra("device-7")]);
    assert_eq!(created.body["isSuccessful"], true);
    let mixed = server.admin(
        "POST",
        "/enrollments/?api-version=2021-10-01",
        Some(&json!({"mode": "delete", "enrollments": [extra("device-7"), extra("device-7")]})),
    );
    assert_eq!(mixed.body["errors"][0]["errorCode"], 404201, "{mixed:?}");
    assert_eq!(
        server.admin("GET", "/enrollments/device-7", None).status,
        404
    );
    assert_eq!(bulk("replace", vec![entry(1)]).status, 400);
    assert_eq!(bulk("create", vec![entry(1); 1001]).status, 400);
}
