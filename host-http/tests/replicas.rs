//! Two host-http replicas on one PostgreSQL database (the server that
//! `scripts/with-postgres` starts for the test suite): any replica answers
//! any request. SPEC §1's canonical scenario managed through one replica
//! and decided by the other; a registration through A polled and read
//! through B; an ETag conflict across replicas; one device registering
//! through both at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod support;

use serde_json::json;
use support::{SCOPE, Server, canonical, device, fresh_database, group, individual, statuses};

/// Two replicas (own data directories: configuration and TLS material)
/// on one new database.
fn replicas(dir: &std::path::Path) -> (Server, Server) {
    let database = fresh_database();
    let start = |name: &str| {
        let mut options = support::options(&dir.join(name), None);
        options.database = Some(database.clone());
        Server::start_with(options)
    };
    (start("a"), start("b"))
}

#[test]
fn management_through_one_replica_is_decided_by_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = replicas(dir.path());
    let pki = canonical();
    assert_eq!(statuses(&b, &pki), ["401"; 5], "no enrollment yet");
    let put = a.admin(
        "PUT",
        "/enrollmentGroups/all-devices",
        Some(&group("all-devices", &pki.root.pem, true)),
    );
    assert_eq!(put.status, 200, "{put:?}");
    assert_eq!(statuses(&b, &pki), ["assigned"; 5]);
    a.admin(
        "PUT",
        "/enrollmentGroups/line-b",
        Some(&group("line-b", &pki.line_b.pem, false)),
    );
    assert_eq!(
        statuses(&b, &pki),
        ["assigned", "assigned", "assigned", "disabled", "disabled"]
    );
    b.admin(
        "PUT",
        "/enrollments/device-3",
        Some(&individual("device-3", &pki.devices[2].pem, false)),
    );
    assert_eq!(
        statuses(&a, &pki),
        ["assigned", "assigned", "disabled", "disabled", "disabled"]
    );
    // Records are shared: B's registrations are A's to read.
    let r4 = a.admin("GET", "/registrations/device-4", None);
    assert_eq!(r4.body["status"], "disabled");
    assert_eq!(r4.body["x509"]["enrollmentGroupId"], "line-b");
}

#[test]
fn a_registration_through_one_replica_is_polled_and_read_through_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = replicas(dir.path());
    let pki = canonical();
    a.admin(
        "PUT",
        "/enrollmentGroups/all-devices",
        Some(&group("all-devices", &pki.root.pem, true)),
    );
    let (chain, key) = device(&pki, 1);
    let registered = a.device(&chain, &key).register("device-1");
    assert_eq!(registered.body["status"], "assigned", "{registered:?}");
    let operation = registered.body["operationId"].as_str().unwrap();
    let polled = b.device(&chain, &key).call(
        "GET",
        &format!("/{SCOPE}/registrations/device-1/operations/{operation}"),
        Vec::new(),
        &[],
    );
    assert_eq!(polled.status, 200, "{polled:?}");
    assert_eq!(polled.body, registered.body);
    let status = b.device(&chain, &key).call(
        "POST",
        &format!("/{SCOPE}/registrations/device-1"),
        Vec::new(),
        &[],
    );
    assert_eq!(status.body, registered.body["registrationState"]);
    // Another device cannot read it through either replica.
    let (c2, k2) = device(&pki, 2);
    let other = b.device(&c2, &k2).call(
        "GET",
        &format!("/{SCOPE}/registrations/device-1/operations/{operation}"),
        Vec::new(),
        &[],
    );
    assert_eq!(other.status, 401);
}

#[test]
fn etags_hold_across_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = replicas(dir.path());
    let pki = canonical();
    let created = a.admin(
        "PUT",
        "/enrollmentGroups/line-a",
        Some(&group("line-a", &pki.line_a.pem, true)),
    );
    let etag = created.body["etag"].as_str().unwrap().to_string();
    // B changes it, with the current etag.
    let changed = b.admin_if(
        "PUT",
        "/enrollmentGroups/line-a",
        Some(&group("line-a", &pki.line_a.pem, false)),
        &etag,
    );
    assert_eq!(changed.status, 200, "{changed:?}");
    // A's copy is stale now: 412, and the entry stays as B left it.
    let stale = a.admin_if(
        "PUT",
        "/enrollmentGroups/line-a",
        Some(&group("line-a", &pki.line_a.pem, true)),
        &etag,
    );
    assert_eq!(stale.status, 412, "{stale:?}");
    let stale_delete = a.admin_if("DELETE", "/enrollmentGroups/line-a", None, &etag);
    assert_eq!(stale_delete.status, 412);
    let now = a.admin("GET", "/enrollmentGroups/line-a", None);
    assert_eq!(now.body["provisioningStatus"], "disabled");
    assert_eq!(now.body["etag"], changed.body["etag"]);
}

#[test]
fn one_device_registering_through_both_replicas_at_once_gets_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = replicas(dir.path());
    let pki = canonical();
    a.admin(
        "PUT",
        "/enrollmentGroups/all-devices",
        Some(&group("all-devices", &pki.root.pem, true)),
    );
    let (chain, key) = device(&pki, 1);
    let answers: Vec<support::Answer> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let server = if i % 2 == 0 { &a } else { &b };
                let (chain, key) = (&chain, &key);
                s.spawn(move || server.device(chain, key).register("device-1"))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for answer in &answers {
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(
            answer.body["registrationState"]["assignedHub"],
            "hub.attest.local"
        );
    }
    // One record, created once (every later registration kept its
    // creation time), whose etag is the etag of one of the answers.
    let record = b.admin("GET", "/registrations/device-1", None);
    let created: std::collections::HashSet<String> = answers
        .iter()
        .map(|a| {
            a.body["registrationState"]["createdDateTimeUtc"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
    assert!(
        answers
            .iter()
            .any(|a| a.body["registrationState"]["etag"] == record.body["etag"]),
        "{record:?}"
    );
    let substatus: Vec<&str> = answers
        .iter()
        .filter_map(|a| a.body["registrationState"]["substatus"].as_str())
        .filter(|s| *s == "initialAssignment")
        .collect();
    assert_eq!(substatus.len(), 1, "exactly one first registration");
    let query = a.admin("POST", "/registrations/all-devices/query", Some(&json!({})));
    assert_eq!(query.body.as_array().unwrap().len(), 1);
}
