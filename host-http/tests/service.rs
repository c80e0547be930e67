//! host-http over real TLS on loopback: SPEC §1's canonical scenario via
//! the management API, records across a restart, SAS and ETags, every
//! refusal shape, malformed requests (never a 5xx), CA proof of
//! possession, allocation, and concurrent registrations of one device.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod support;

use serde_json::json;
use support::{SCOPE, Server, canonical, device, group, individual, statuses};

#[test]
fn canonical_scenario_through_the_management_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None);
    let pki = canonical();
    assert_eq!(statuses(&server, &pki), ["401"; 5], "no enrollment yet");

    let put = server.admin(
        "PUT",
        "/enrollmentGroups/all-devices?api-version=2021-10-01",
        Some(&group("all-devices", &pki.root.pem, true)),
    );
    assert_eq!(put.status, 200, "{put:?}");
    assert_eq!(statuses(&server, &pki), ["assigned"; 5]);

    let put = server.admin(
        "PUT",
        "/enrollmentGroups/line-b",
        Some(&group("line-b", &pki.line_b.pem, false)),
    );
    assert_eq!(put.status, 200, "{put:?}");
    assert_eq!(
        statuses(&server, &pki),
        ["assigned", "assigned", "assigned", "disabled", "disabled"]
    );

    let put = server.admin(
        "PUT",
        "/enrollments/device-3",
        Some(&individual("device-3", &pki.devices[2].pem, false)),
    );
    assert_eq!(put.status, 200, "{put:?}");
    assert_eq!(
        statuses(&server, &pki),
        ["assigned", "assigned", "disabled", "disabled", "disabled"]
    );

    // The records say who decided and why.
    let r4 = server.admin("GET", "/registrations/device-4", None);
    assert_eq!(r4.body["status"], "disabled");
    assert_eq!(r4.body["x509"]["enrollmentGroupId"], "line-b");
    let message = r4.body["errorMessage"].as_str().unwrap();
    assert!(message.contains("enrollment-group-disabled"), "{message}");
    let r1 = server.admin("GET", "/registrations/device-1", None);
    assert_eq!(r1.body["status"], "assigned");
    assert_eq!(r1.body["deviceId"], "device-1");
    assert_eq!(r1.body["assignedHub"], "hub.attest.local");
    // device-1 registered three times: only the first was the initial
    // assignment (DPS substatus).
    assert_eq!(r1.body["substatus"], "reprovisionedToInitialAssignment");
    for field in ["createdDateTimeUtc", "lastUpdatedDateTimeUtc", "etag"] {
        assert!(r1.body[field].is_string(), "{field} in {}", r1.raw);
    }
    let group_records = server.admin("POST", "/registrations/all-devices/query", Some(&json!({})));
    let ids: Vec<&str> = group_records
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["registrationId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["device-1", "device-2"]);
}

#[test]
fn records_survive_a_restart_and_enrollment_files_are_upserted() {
    let dir = tempfile::tempdir().unwrap();
    let pki = canonical();
    let file = dir.path().join("enrollments.json");
    std::fs::write(&file, pki.enrollment_steps()[1].to_string()).unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, Some(&file));
    let (chain, key) = device(&pki, 1);
    let first = server.device(&chain, &key).register("device-1");
    assert_eq!(first.body["status"], "assigned", "{first:?}");
    let operation = first.body["operationId"].as_str().unwrap().to_string();
    let (c4, k4) = device(&pki, 4);
    assert_eq!(
        server.device(&c4, &k4).register("device-4").body["status"],
        "disabled"
    );
    server.stop();

    let server = Server::start(&data, None);
    let record = server.admin("GET", "/registrations/device-1", None);
    assert_eq!(record.status, 200);
    assert_eq!(record.body, first.body["registrationState"]);
    let op = server.device(&chain, &key).call(
        "GET",
        &format!("/{SCOPE}/registrations/device-1/operations/{operation}?api-version=2019-03-31"),
        b"{}".to_vec(),
        &[],
    );
    assert_eq!(op.status, 200, "{op:?}");
    assert_eq!(op.body, first.body);
    // Another device cannot read it.
    let other = server.device(&c4, &k4).call(
        "GET",
        &format!("/{SCOPE}/registrations/device-1/operations/{operation}"),
        Vec::new(),
        &[],
    );
    assert_eq!(other.status, 401);
    // Re-registering keeps the creation time and the hub.
    let again = server.device(&chain, &key).register("device-1");
    let (a, b) = (
        &again.body["registrationState"],
        &first.body["registrationState"],
    );
    assert_eq!(a["createdDateTimeUtc"], b["createdDateTimeUtc"]);
    assert_eq!(a["assignedHub"], b["assignedHub"]);
    assert_ne!(a["etag"], b["etag"]);
    // Registration status (POST) re-attests and returns the record.
    let status = server.device(&chain, &key).call(
        "POST",
        &format!("/{SCOPE}/registrations/device-1?api-version=2021-06-01"),
        b"{\"registrationId\":\"device-1\"}".to_vec(),
        &[],
    );
    assert_eq!(status.status, 200);
    assert_eq!(status.body, *a);
}

#[test]
fn management_api_needs_a_valid_sas_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None);
    let client = server.client();
    let config: host_http::ServiceConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    let policy = &config.shared_access_policies[0];
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let expired = attest_dps::sas::token(policy, "localhost", now - 1).unwrap();
    let wrong_key = attest_dps::sas::token(
        &attest_dps::sas::SasPolicy {
            key_name: policy.key_name.clone(),
            primary_key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
            rights: None,
        },
        "localhost",
        now + 600,
    )
    .unwrap();
    for (what, headers) in [
        ("no token", vec![]),
        ("expired", vec![("authorization", expired.as_str())]),
        ("wrong key", vec![("authorization", wrong_key.as_str())]),
        (
            "garbage",
            vec![("authorization", "SharedAccessSignature nonsense")],
        ),
        ("bearer", vec![("authorization", "Bearer abc")]),
    ] {
        for (method, path) in [
            ("GET", "/enrollments/device-1"),
            ("POST", "/enrollmentGroups/query"),
            ("GET", "/registrations/device-1"),
            ("PUT", "/certificates/root"),
        ] {
            let a = client.call(method, path, b"{}".to_vec(), &headers);
            assert_eq!(a.status, 401, "{what} {method} {path}: {a:?}");
            assert!(a.body["errorCode"].is_number() && a.body["trackingId"].is_string());
            assert!(a.body["message"].is_string() && a.body["timestampUtc"].is_string());
        }
    }
}

#[test]
fn etags_if_match_and_paging() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None);
    let pki = canonical();
    let created = server.admin(
        "PUT",
        "/enrollmentGroups/g",
        Some(&group("g", &pki.root.pem, true)),
    );
    assert_eq!(created.status, 200);
    let etag = created.body["etag"].as_str().unwrap().to_string();
    assert_eq!(created.headers["etag"], etag.as_str());
    let client = server.client();
    let token = server.token();
    let body = group("g", &pki.root.pem, false).to_string().into_bytes();
    let stale = client.call(
        "PUT",
        "/enrollmentGroups/g",
        body.clone(),
        &[("authorization", &token), ("if-match", "\"stale\"")],
    );
    assert_eq!(stale.status, 412, "{stale:?}");
    let updated = client.call(
        "PUT",
        "/enrollmentGroups/g",
        body,
        &[("authorization", &token), ("if-match", &etag)],
    );
    assert_eq!(updated.status, 200);
    assert_eq!(updated.body["provisioningStatus"], "disabled");
    assert_eq!(
        updated.body["createdDateTimeUtc"],
        created.body["createdDateTimeUtc"]
    );
    let new_etag = updated.body["etag"].as_str().unwrap().to_string();
    assert_ne!(new_etag, etag);
    let del = client.call(
        "DELETE",
        "/enrollmentGroups/g",
        vec![],
        &[("authorization", &token), ("if-match", &etag)],
    );
    assert_eq!(del.status, 412);
    let del = client.call(
        "DELETE",
        "/enrollmentGroups/g",
        vec![],
        &[("authorization", &token), ("if-match", &new_etag)],
    );
    assert_eq!(del.status, 204);
    assert_eq!(server.admin("GET", "/enrollmentGroups/g", None).status, 404);
    assert_eq!(
        server.admin("DELETE", "/enrollmentGroups/g", None).status,
        404
    );

    // Five individual enrollments, two per page.
    for (n, d) in pki.devices.iter().enumerate() {
        let id = format!("device-{}", n + 1);
        let a = server.admin(
            "PUT",
            &format!("/enrollments/{id}"),
            Some(&individual(&id, &d.pem, true)),
        );
        assert_eq!(a.status, 200, "{a:?}");
    }
    let mut seen = Vec::new();
    let mut continuation: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut headers = vec![
            ("authorization", token.as_str()),
            ("x-ms-max-item-count", "2"),
        ];
        if let Some(c) = &continuation {
            headers.push(("x-ms-continuation", c.as_str()));
        }
        let page = client.call(
            "POST",
            "/enrollments/query?api-version=2021-10-01",
            b"{\"query\":\"*\"}".to_vec(),
            &headers,
        );
        assert_eq!(page.status, 200, "{page:?}");
        pages += 1;
        for e in page.body.as_array().unwrap() {
            seen.push(e["registrationId"].as_str().unwrap().to_string());
        }
        match page.headers.get("x-ms-continuation") {
            Some(c) => continuation = Some(c.to_str().unwrap().to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen,
        ["device-1", "device-2", "device-3", "device-4", "device-5"]
    );
    let bad = client.call(
        "POST",
        "/enrollments/query",
        vec![],
        &[("authorization", &token), ("x-ms-continuation", "nope")],
    );
    assert_eq!(bad.status, 400);
    let bad = client.call(
        "POST",
        "/enrollments/query",
        vec![],
        &[("authorization", &token), ("x-ms-max-item-count", "0")],
    );
    assert_eq!(bad.status, 400);
}

#[test]
fn refusals_and_malformed_requests_have_dps_shapes_and_no_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None);
    let pki = canonical();
    server.admin(
        "PUT",
        "/enrollmentGroups/a",
        Some(&group("a", &pki.line_a.pem, true)),
    );
    let (chain1, key1) = device(&pki, 1);
    let (chain4, key4) = device(&pki, 4);
    let dev1 = server.device(&chain1, &key1);
    let anonymous = server.client();
    let register = |c: &support::Client, id: &str, body: &[u8]| {
        c.call(
            "PUT",
            &format!("/{SCOPE}/registrations/{id}/register?api-version=2021-06-01"),
            body.to_vec(),
            &[],
        )
    };
    // (what, answer, HTTP status, DPS errorCode, text in the message)
    type Case<'a> = (&'a str, support::Answer, u16, Option<u64>, Option<&'a str>);
    let cases: Vec<Case<'_>> = vec![
        (
            "no client certificate",
            register(&anonymous, "device-1", b"{}"),
            401,
            Some(401_002),
            Some("no client certificate"),
        ),
        (
            "wrong scope",
            anonymous.call(
                "PUT",
                "/0neWRONG/registrations/device-1/register",
                b"{}".to_vec(),
                &[],
            ),
            404,
            None,
            Some("unknown ID scope"),
        ),
        (
            "chain to no enrolled CA",
            register(&server.device(&chain4, &key4), "device-4", b"{}"),
            401,
            Some(401_002),
            Some("unknown-issuer"),
        ),
        (
            "registration ID is not the leaf CN",
            register(&dev1, "device-2", b"{}"),
            401,
            Some(401_002),
            Some("registration-id-mismatch"),
        ),
        (
            "invalid registration ID",
            register(&dev1, "bad%20id", b"{}"),
            400,
            Some(400_004),
            None,
        ),
        (
            "body registrationId differs",
            register(&dev1, "device-1", b"{\"registrationId\":\"device-9\"}"),
            400,
            Some(400_004),
            None,
        ),
        (
            "bad JSON",
            register(&dev1, "device-1", b"{not json"),
            400,
            Some(400_001),
            Some("not JSON"),
        ),
        (
            "JSON that is not an object",
            register(&dev1, "device-1", b"[1,2]"),
            400,
            None,
            None,
        ),
        (
            "oversized body",
            register(&dev1, "device-1", &vec![b' '; host_http::MAX_BODY + 1]),
            413,
            None,
            None,
        ),
        (
            "unknown device path",
            dev1.call(
                "GET",
                &format!("/{SCOPE}/registrations/device-1/nothing"),
                vec![],
                &[],
            ),
            404,
            None,
            None,
        ),
        (
            "unknown operation",
            dev1.call(
                "GET",
                &format!("/{SCOPE}/registrations/device-1/operations/nope"),
                vec![],
                &[],
            ),
            404,
            None,
            None,
        ),
        (
            "root path",
            anonymous.call("GET", "/", vec![], &[]),
            404,
            None,
            None,
        ),
        (
            "admin bad JSON",
            server.client().call(
                "PUT",
                "/enrollments/x",
                b"{".to_vec(),
                &[("authorization", &server.token())],
            ),
            400,
            None,
            None,
        ),
        (
            "admin not an enrollment",
            server.admin(
                "PUT",
                "/enrollments/x",
                Some(&json!({"registrationId": "x"})),
            ),
            400,
            None,
            Some("attestation"),
        ),
        (
            "admin id mismatch",
            server.admin(
                "PUT",
                "/enrollments/x",
                Some(&individual("y", &pki.devices[0].pem, true)),
            ),
            400,
            None,
            None,
        ),
        (
            "admin tpm attestation",
            server.admin(
                "PUT",
                "/enrollmentGroups/t",
                Some(&json!({"enrollmentGroupId": "t", "attestation": {"type": "tpm"}})),
            ),
            400,
            None,
            Some("tpm"),
        ),
        (
            "admin unsupported query",
            server.admin(
                "POST",
                "/enrollments/query",
                Some(&json!({"query": "SELECT * FROM enrollments WHERE x"})),
            ),
            400,
            None,
            None,
        ),
        (
            "admin unknown resource",
            server.admin("GET", "/enrollments", None),
            404,
            None,
            None,
        ),
    ];
    for (what, a, status, code, text) in cases {
        assert_eq!(a.status, status, "{what}: {a:?}");
        assert!(a.body["errorCode"].is_number(), "{what}: {}", a.raw);
        assert!(
            a.body["trackingId"].is_string() && a.body["timestampUtc"].is_string(),
            "{what}"
        );
        if let Some(code) = code {
            assert_eq!(a.body["errorCode"], code, "{what}: {}", a.raw);
            assert_eq!(
                a.headers["x-ms-error-code"],
                code.to_string().as_str(),
                "{what}"
            );
        }
        if let Some(text) = text {
            assert!(a.raw.contains(text), "{what}: {}", a.raw);
        }
    }
    // The service is still healthy.
    assert_eq!(dev1.register("device-1").body["status"], "assigned");
}

#[test]
fn ca_certificate_proof_of_possession_and_ca_references() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None);
    let pki = canonical();
    let (chain, key) = device(&pki, 2);
    let up = server.admin(
        "PUT",
        "/certificates/factory-root",
        Some(&json!({"certificate": pki.root.pem})),
    );
    assert_eq!(up.status, 200, "{up:?}");
    assert_eq!(up.body["properties"]["isVerified"], false);
    // A group cannot reference an unverified CA.
    let by_ref = json!({"enrollmentGroupId": "by-ref", "attestation": {"type": "x509",
        "x509": {"caReferences": {"primary": "factory-root"}}}});
    let refused = server.admin("PUT", "/enrollmentGroups/by-ref", Some(&by_ref));
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(refused.raw.contains("not a verified CA"), "{}", refused.raw);

    let coded = server.admin_if(
        "POST",
        "/certificates/factory-root/generateVerificationCode",
        None,
        up.body["etag"].as_str().unwrap(),
    );
    assert_eq!(coded.status, 200);
    let code = coded.body["properties"]["verificationCode"]
        .as_str()
        .unwrap()
        .to_string();
    let sign = |cn: &str| {
        let now = time::OffsetDateTime::now_utc();
        let mut params = attest_pki::device_params(
            cn,
            attest_pki::Validity {
                not_before: now - time::Duration::hours(1),
                not_after: now + time::Duration::days(1),
            },
        );
        params.extended_key_usages = vec![];
        let key = attest_pki::KeyAlg::P256.generate().unwrap();
        let der = pki.root.sign(&params, &key).unwrap();
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(der)
    };
    let etag = coded.body["etag"].as_str().unwrap();
    let wrong = server.admin_if(
        "POST",
        "/certificates/factory-root/verify",
        Some(&json!({"certificate": sign("not-the-code")})),
        etag,
    );
    assert_eq!(wrong.status, 400);
    assert!(
        wrong.raw.contains("verification-code-mismatch"),
        "{}",
        wrong.raw
    );
    let verified = server.admin_if(
        "POST",
        "/certificates/factory-root/verify",
        Some(&json!({"certificate": sign(&code)})),
        etag,
    );
    assert_eq!(verified.status, 200, "{verified:?}");
    assert_eq!(verified.body["properties"]["isVerified"], true);

    let accepted = server.admin("PUT", "/enrollmentGroups/by-ref", Some(&by_ref));
    assert_eq!(accepted.status, 200, "{accepted:?}");
    let a = server.device(&chain, &key).register("device-2");
    assert_eq!(a.body["status"], "assigned", "{a:?}");
    assert_eq!(
        a.body["registrationState"]["x509"]["enrollmentGroupId"],
        "by-ref"
    );
    let list = server.admin("GET", "/certificates", None);
    assert_eq!(list.body["value"][0]["name"], "factory-root");
}

#[test]
fn allocation_is_static_or_hashed_and_reprovisioning_keeps_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None);
    let pki = canonical();
    let hubs = ["hub-a.example", "hub-b.example", "hub-c.example"];
    let mut hashed = group("line-a", &pki.line_a.pem, true);
    hashed["allocationPolicy"] = json!("hashed");
    hashed["iotHubs"] = json!(hubs);
    server.admin("PUT", "/enrollmentGroups/line-a", Some(&hashed));
    let mut fixed = group("line-b", &pki.line_b.pem, true);
    fixed["allocationPolicy"] = json!("static");
    fixed["iotHubHostName"] = json!("hub-static.example");
    server.admin("PUT", "/enrollmentGroups/line-b", Some(&fixed));
    for n in 1..=5 {
        let (chain, key) = device(&pki, n);
        let id = format!("device-{n}");
        let first = server.device(&chain, &key).register(&id);
        let hub = first.body["registrationState"]["assignedHub"]
            .as_str()
            .unwrap()
            .to_string();
        if n <= 3 {
            assert!(hubs.contains(&hub.as_str()), "{hub}");
        } else {
            assert_eq!(hub, "hub-static.example");
        }
        let again = server.device(&chain, &key).register(&id);
        assert_eq!(again.body["registrationState"]["assignedHub"], hub.as_str());
    }
}

#[test]
fn concurrent_registrations_of_one_device_are_serialised() {
    let dir = tempfile::tempdir().unwrap();
    let pki = canonical();
    let file = dir.path().join("enrollments.json");
    std::fs::write(&file, pki.enrollment_steps()[0].to_string()).unwrap();
    let server = Server::start(&dir.path().join("data"), Some(&file));
    let (chain, key) = device(&pki, 1);
    let answers: Vec<support::Answer> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| server.device(&chain, &key).register("device-1")))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut operations = std::collections::HashSet::new();
    let mut etags = std::collections::HashSet::new();
    let created: std::collections::HashSet<String> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, 200, "{a:?}");
            operations.insert(a.body["operationId"].as_str().unwrap().to_string());
            etags.insert(
                a.body["registrationState"]["etag"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
            a.body["registrationState"]["createdDateTimeUtc"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // One record, created once: every later writer saw the first one.
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(operations.len(), 8);
    assert_eq!(etags.len(), 8);
    let record = server.admin("GET", "/registrations/device-1", None);
    assert!(etags.contains(record.body["etag"].as_str().unwrap()));
    let all = server.admin("POST", "/registrations/all-devices/query", Some(&json!({})));
    assert_eq!(all.body.as_array().unwrap().len(), 1);
}

#[test]
fn host_cli_register_speaks_the_device_api() {
    let dir = tempfile::tempdir().unwrap();
    let pki = canonical();
    let file = dir.path().join("enrollments.json");
    std::fs::write(&file, pki.enrollment_steps()[2].to_string()).unwrap();
    let server = Server::start(&dir.path().join("data"), Some(&file));
    let files = tempfile::tempdir().unwrap();
    let run = |n: usize| {
        let (chain, key) = device(&pki, n);
        let cert = files.path().join(format!("d{n}.pem"));
        let key_path = files.path().join(format!("d{n}.key"));
        std::fs::write(&cert, chain).unwrap();
        std::fs::write(&key_path, key).unwrap();
        host_cli::register::register(&host_cli::register::RegisterArgs {
            server: format!("https://localhost:{}", server.addr.port()),
            transport: host_cli::register::Transport::Https,
            id_scope: SCOPE.into(),
            cert,
            key: key_path,
            ca: server.ca(),
            registration_id: None,
            json: false,
        })
        .unwrap()
    };
    let (id, one) = run(1);
    assert_eq!((id.as_str(), one.status()), ("device-1", "assigned"));
    assert!(one.human(&id).contains("assigned hub  hub.attest.local"));
    let (id, three) = run(3);
    assert_eq!(three.status(), "disabled");
    assert!(
        three.human(&id).contains("individual-enrollment-disabled"),
        "{}",
        three.human(&id)
    );
}

#[test]
fn tls12_and_tls13_with_ec_and_rsa_device_keys() {
    let dir = tempfile::tempdir().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let v = attest_pki::Validity {
        not_before: now - time::Duration::days(1),
        not_after: now + time::Duration::days(30),
    };
    let rsa = attest_pki::Canonical::generate(attest_pki::KeyAlg::Rsa2048, v, v).unwrap();
    let ec = canonical();
    let file = dir.path().join("enrollments.json");
    let mut set = ec.enrollment_steps()[0].clone();
    set["enrollmentGroups"]
        .as_array_mut()
        .unwrap()
        .push(group("rsa", &rsa.root.pem, true));
    std::fs::write(&file, set.to_string()).unwrap();
    let server = Server::start(&dir.path().join("data"), Some(&file));
    for pki in [&ec, &rsa] {
        for tls12_only in [true, false] {
            let (chain, key) = device(pki, 1);
            let mut client = server.device(&chain, &key);
            client.tls12_only = tls12_only;
            let a = client.register("device-1");
            assert_eq!(
                a.body["status"], "assigned",
                "TLS 1.2 only: {tls12_only}: {a:?}"
            );
        }
    }
}

/// A P-521 device whose TLS 1.2 CertificateVerify uses scheme 0x0403 or
/// 0x0503 (OpenSSL's choice: TLS 1.2 ECDSA schemes name only the hash) is
/// admitted; the same scheme in TLS 1.3, where it means P-256 or P-384, is
/// refused.
#[test]
fn p521_devices_sign_tls12_handshakes_with_any_allowed_hash() {
    use rustls::SignatureScheme as S;
    let dir = tempfile::tempdir().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let v = attest_pki::Validity {
        not_before: now - time::Duration::days(1),
        not_after: now + time::Duration::days(30),
    };
    let pki = attest_pki::Canonical::generate(attest_pki::KeyAlg::P521, v, v).unwrap();
    let file = dir.path().join("enrollments.json");
    std::fs::write(&file, pki.enrollment_steps()[0].to_string()).unwrap();
    let server = Server::start(&dir.path().join("data"), Some(&file));
    let (chain, key) = device(&pki, 1);
    for (scheme, tls12_only, admitted) in [
        (S::ECDSA_NISTP256_SHA256, true, true),
        (S::ECDSA_NISTP384_SHA384, true, true),
        (S::ECDSA_NISTP521_SHA512, true, true),
        (S::ECDSA_NISTP521_SHA512, false, true),
        (S::ECDSA_NISTP256_SHA256, false, false),
        (S::ECDSA_NISTP384_SHA384, false, false),
    ] {
        let mut client = server.device(&chain, &key);
        client.tls12_only = tls12_only;
        client.p521_scheme = Some(scheme);
        let a = client.register("device-1");
        let what = format!("{scheme:?}, TLS 1.2 only: {tls12_only}: {a:?}");
        if admitted {
            assert_eq!(a.body["status"], "assigned", "{what}");
        } else {
            assert_eq!(a.status, 401, "{what}");
            assert!(a.raw.contains("unsupported-signature-scheme"), "{what}");
        }
    }
}

#[test]
fn an_untrusted_certificate_with_a_devices_name_cannot_touch_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let pki = canonical();
    let file = dir.path().join("enrollments.json");
    std::fs::write(&file, pki.enrollment_steps()[0].to_string()).unwrap();
    let server = Server::start(&dir.path().join("data"), Some(&file));
    let (chain, key) = device(&pki, 1);
    let first = server.device(&chain, &key).register("device-1");
    assert_eq!(first.body["status"], "assigned");
    // Someone with their own key and a self-signed "CN=device-1".
    let now = time::OffsetDateTime::now_utc();
    let forged = attest_pki::Device::self_signed(
        "device-1",
        attest_pki::KeyAlg::P256,
        attest_pki::Validity {
            not_before: now - time::Duration::days(1),
            not_after: now + time::Duration::days(1),
        },
    )
    .unwrap();
    let impostor = server.device(&forged.pem, &forged.key.serialize_pem());
    let refused = impostor.register("device-1");
    assert_eq!(refused.status, 401, "{refused:?}");
    assert!(refused.raw.contains("unknown-issuer"), "{}", refused.raw);
    let status = impostor.call(
        "POST",
        &format!("/{SCOPE}/registrations/device-1"),
        vec![],
        &[],
    );
    assert_eq!(
        status.status, 401,
        "the record must not be readable: {status:?}"
    );
    let record = server.admin("GET", "/registrations/device-1", None);
    assert_eq!(record.body, first.body["registrationState"], "unchanged");
}

/// DPS's shared access policy rights, honoured on every management route:
/// a token of a policy without the right a route needs is a 401 naming the
/// missing right; with it, the request goes through. A policy can be made
/// that reads enrollments and nothing else.
#[test]
fn shared_access_policy_rights_are_honoured_on_every_route() {
    use attest_dps::sas::{Right, Rights, SasPolicy};
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    Server::start(dir.path(), None).stop();
    let path = dir.path().join("config.json");
    let mut config: host_http::ServiceConfig =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // The generated owner policy lists every right.
    assert_eq!(config.shared_access_policies[0].rights, Some(Rights::all()));
    let owner = config.shared_access_policies[0].clone();
    let with = |name: &str, key: u8, rights: &[Right]| SasPolicy {
        key_name: name.into(),
        primary_key: base64::engine::general_purpose::STANDARD.encode(
            (0..32u8)
                .map(|i| i.wrapping_mul(key).wrapping_add(key))
                .collect::<Vec<_>>(),
        ),
        rights: Some(Rights::of(rights)),
    };
    let single: Vec<(Right, SasPolicy)> = Right::ALL
        .iter()
        .enumerate()
        .map(|(i, r)| (*r, with(&format!("only-{r}"), 3 + 2 * i as u8, &[*r])))
        .collect();
    config
        .shared_access_policies
        .extend(single.iter().map(|(_, p)| p.clone()));
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();

    let server = Server::start(dir.path(), None);
    let pki = canonical();
    assert_eq!(
        server
            .admin(
                "PUT",
                "/enrollmentGroups/g",
                Some(&group("g", &pki.root.pem, true))
            )
            .status,
        200
    );
    let client = server.client();
    let expiry = time::OffsetDateTime::now_utc().unix_timestamp() + 600;
    let token = |p: &SasPolicy| attest_dps::sas::token(p, "localhost", expiry).unwrap();
    let g = group("g", &pki.root.pem, true).to_string();
    // (method, path, body, the right it needs), every route of the API.
    let routes: Vec<(&str, &str, String, Right)> = vec![
        (
            "GET",
            "/enrollmentGroups/g",
            String::new(),
            Right::EnrollmentRead,
        ),
        (
            "POST",
            "/enrollmentGroups/query",
            "{}".into(),
            Right::EnrollmentRead,
        ),
        (
            "POST",
            "/enrollmentGroups/g/attestationmechanism",
            String::new(),
            Right::EnrollmentRead,
        ),
        (
            "GET",
            "/enrollments/device-1",
            String::new(),
            Right::EnrollmentRead,
        ),
        (
            "POST",
            "/enrollments/query",
            "{}".into(),
            Right::EnrollmentRead,
        ),
        (
            "POST",
            "/enrollments/device-1/attestationmechanism",
            String::new(),
            Right::EnrollmentRead,
        ),
        (
            "PUT",
            "/enrollmentGroups/g",
            g.clone(),
            Right::EnrollmentWrite,
        ),
        (
            "DELETE",
            "/enrollments/device-1",
            String::new(),
            Right::EnrollmentWrite,
        ),
        (
            "POST",
            "/enrollments",
            r#"{"mode":"create","enrollments":[]}"#.into(),
            Right::EnrollmentWrite,
        ),
        (
            "GET",
            "/registrations/device-1",
            String::new(),
            Right::RegistrationStatusRead,
        ),
        (
            "POST",
            "/registrations/g/query",
            "{}".into(),
            Right::RegistrationStatusRead,
        ),
        (
            "DELETE",
            "/registrations/device-1",
            String::new(),
            Right::RegistrationStatusWrite,
        ),
        ("GET", "/certificates", String::new(), Right::ServiceConfig),
        (
            "GET",
            "/certificates/root",
            String::new(),
            Right::ServiceConfig,
        ),
        (
            "PUT",
            "/certificates/root",
            "{}".into(),
            Right::ServiceConfig,
        ),
        (
            "DELETE",
            "/certificates/root",
            String::new(),
            Right::ServiceConfig,
        ),
        (
            "POST",
            "/certificates/root/generateVerificationCode",
            String::new(),
            Right::ServiceConfig,
        ),
        (
            "POST",
            "/certificates/root/verify",
            "{}".into(),
            Right::ServiceConfig,
        ),
        // attest's own, for edge gateways.
        (
            "GET",
            "/attest/snapshot",
            String::new(),
            Right::SnapshotRead,
        ),
        (
            "POST",
            "/attest/edgeDecisions",
            r#"{"decisions":[]}"#.into(),
            Right::EdgeDecisionWrite,
        ),
    ];
    for (method, route, body, needed) in &routes {
        for (has, policy) in &single {
            let t = token(policy);
            let a = client.call(
                method,
                route,
                body.clone().into_bytes(),
                &[("authorization", t.as_str())],
            );
            if has == needed {
                assert_ne!(
                    a.status, 401,
                    "{} may {method} {route}: {a:?}",
                    policy.key_name
                );
            } else {
                assert_eq!(
                    a.status, 401,
                    "{} must not {method} {route}: {a:?}",
                    policy.key_name
                );
                let message = a.body["message"].as_str().unwrap();
                assert!(
                    message.contains(&format!("does not grant {needed}")),
                    "{message}"
                );
            }
        }
        let t = token(&owner);
        let a = client.call(
            method,
            route,
            body.clone().into_bytes(),
            &[("authorization", t.as_str())],
        );
        assert_ne!(a.status, 401, "the owner may {method} {route}: {a:?}");
    }
    // A route that is no resource: 404 for any valid token.
    let t = token(&single[1].1);
    assert_eq!(
        client
            .call(
                "GET",
                "/nothing",
                Vec::new(),
                &[("authorization", t.as_str())]
            )
            .status,
        404
    );
    server.stop();

    // A right attest does not know keeps the service from starting.
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "\"EnrollmentRead\"",
        "\"EnrollmentReed\"",
        1,
    );
    std::fs::write(&path, text).unwrap();
    let err = host_http::ServiceConfig::load(dir.path()).unwrap_err();
    assert!(format!("{err:#}").contains("EnrollmentReed"), "{err:#}");
}
