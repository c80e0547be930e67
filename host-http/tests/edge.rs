//! Edge snapshots over HTTPS: `GET /attest/snapshot` streamed and applied
//! to a gateway replica; a policy that can read snapshots and nothing
//! else; bad queries; a fleet too large to answer in one buffer; the
//! decisions a gateway made uploaded to `POST /attest/edgeDecisions`; and
//! snapshots through either of two replicas on one PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use attest_dps::sas::{Right, Rights, SasPolicy};
use attest_service::replica::Replica;
use attest_service::snapshot::{SigningKey, TrustKey};
use support::{Server, canonical, fresh_database, group, individual};

/// The service's snapshot public key, as a gateway trusts it.
fn trust_key(data: &Path) -> TrustKey {
    let key = SigningKey::load(&data.join("snapshot-key.pem")).unwrap();
    TrustKey::from_pem(key.public_pem().as_bytes()).unwrap()
}

/// Adds a `gateway` policy (SnapshotRead, EdgeDecisionWrite) to the
/// configuration in `data`; returns it.
fn add_gateway_policy(data: &Path) -> SasPolicy {
    use base64::Engine as _;
    let path = data.join("config.json");
    let mut config: host_http::ServiceConfig =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let policy = SasPolicy {
        key_name: "gateway".into(),
        primary_key: base64::engine::general_purpose::STANDARD.encode(
            (0..32u8)
                .map(|i| i.wrapping_mul(29).wrapping_add(11))
                .collect::<Vec<_>>(),
        ),
        rights: Some(Rights::of(&[Right::SnapshotRead, Right::EdgeDecisionWrite])),
    };
    config.shared_access_policies.push(policy.clone());
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    policy
}

/// A service in `dir` whose configuration has the `gateway` policy.
fn with_gateway_policy(dir: &Path) -> (Server, SasPolicy) {
    Server::start(dir, None).stop();
    let gateway = add_gateway_policy(dir);
    (Server::start(dir, None), gateway)
}

/// Device `n` of the canonical PKI asking, now.
fn request(pki: &attest_pki::Canonical, n: usize) -> policy_host::AttestRequest {
    policy_host::AttestRequest {
        registration_id: format!("device-{n}"),
        leaf: pki.devices[n - 1].der.clone(),
        intermediates: vec![pki.issuer_of(n).der.clone()],
        time: attest_service::now_unix(),
        purpose: policy_host::Purpose::ClientAuth,
    }
}

fn token(policy: &SasPolicy) -> String {
    let expiry = time::OffsetDateTime::now_utc().unix_timestamp() + 600;
    attest_dps::sas::token(policy, "localhost", expiry).unwrap()
}

/// `host-cli sync`'s arguments for a gateway in `dir/gw` of the service
/// whose data directory is `dir`, trusting its key (written to `dir/trust.pem`).
fn sync_args(server: &Server, dir: &Path, token: String) -> host_cli::sync::SyncArgs {
    let trust = dir.join("trust.pem");
    let key = SigningKey::load(&dir.join("snapshot-key.pem")).unwrap();
    std::fs::write(&trust, key.public_pem()).unwrap();
    host_cli::sync::SyncArgs {
        server: format!("https://localhost:{}", server.addr.port()),
        ca: server.ca(),
        token,
        trust_key: trust,
        dir: dir.join("gw"),
    }
}

fn get_snapshot(server: &Server, token: &str, query: &str) -> support::Answer {
    server.client().call(
        "GET",
        &format!("/attest/snapshot{query}"),
        Vec::new(),
        &[("authorization", token)],
    )
}

#[test]
fn a_gateway_policy_reads_snapshots_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (server, gateway) = with_gateway_policy(dir.path());
    let pki = canonical();
    for (path, doc) in [
        (
            "/enrollmentGroups/all-devices",
            group("all-devices", &pki.root.pem, true),
        ),
        (
            "/enrollmentGroups/line-b",
            group("line-b", &pki.line_b.pem, false),
        ),
        (
            "/enrollments/device-3",
            individual("device-3", &pki.devices[2].pem, false),
        ),
    ] {
        assert_eq!(server.admin("PUT", path, Some(&doc)).status, 200, "{path}");
    }
    let t = token(&gateway);
    let a = get_snapshot(&server, &t, "");
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(a.headers["content-type"], "application/x-ndjson");
    let version: u64 = a.headers["x-attest-snapshot-version"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let lines: Vec<Value> = a
        .raw
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["version"], json!(version));
    assert_eq!(
        lines.len(),
        1 + 3 + 1,
        "header, 2 groups and 1 individual, signature"
    );
    assert!(lines.last().unwrap()["signature"].is_string());

    // The stream applies to a replica, which decides as the service does.
    let replica = Replica::open(&dir.path().join("gw")).unwrap();
    let key = trust_key(dir.path());
    replica
        .apply(&mut a.raw.as_bytes(), &key, attest_service::now_unix())
        .unwrap();
    let policy = policy_host::Policy::new().unwrap();
    let verdicts: Vec<bool> = (1..=5)
        .map(|n| {
            let req = request(&pki, n);
            replica
                .decide(&policy, &req, None, Duration::from_secs(60))
                .unwrap()
                .is_ok()
        })
        .collect();
    assert_eq!(verdicts, [true, true, false, false, false]);

    // Nothing else: no enrollment, registration or certificate route.
    for (method, path) in [
        ("GET", "/enrollmentGroups/all-devices"),
        ("POST", "/enrollments/query"),
        ("GET", "/registrations/device-1"),
        ("GET", "/certificates"),
        ("DELETE", "/enrollments/device-3"),
    ] {
        let a = server
            .client()
            .call(method, path, b"{}".to_vec(), &[("authorization", &t)]);
        assert_eq!(a.status, 401, "{method} {path}: {a:?}");
    }
    // Bad queries and unknown resources.
    for (query, status) in [
        ("?since=x", 400),
        ("?since=-1", 400),
        ("?full=1", 400),
        (&format!("?since={}", version + 1) as &str, 409),
    ] {
        let a = get_snapshot(&server, &t, query);
        assert_eq!(a.status, status, "{query}: {}", a.raw);
    }
    let a = server.client().call(
        "GET",
        "/attest/nothing",
        Vec::new(),
        &[("authorization", &t)],
    );
    assert_eq!(a.status, 404, "{a:?}");
    let a = server
        .client()
        .call("GET", "/attest/snapshot", Vec::new(), &[]);
    assert_eq!(a.status, 401, "no token");
    // An empty delta is still a signed snapshot.
    let a = get_snapshot(&server, &t, &format!("?since={version}"));
    assert_eq!(a.status, 200);
    replica
        .apply(&mut a.raw.as_bytes(), &key, attest_service::now_unix())
        .unwrap();
}

/// A fleet's snapshot is streamed in chunks as it is read (here 5,000
/// enrollments, ~9 MB), and a gateway's decision log is uploaded in
/// batches through the gateway policy.
#[test]
fn a_fleet_streams_and_edge_decisions_upload() {
    let dir = tempfile::tempdir().unwrap();
    Server::start(dir.path(), None).stop();
    let gateway = add_gateway_policy(dir.path());
    let trail = dir.path().join("audit.jsonl");
    let mut o = support::options(dir.path(), None);
    o.audit = Some(trail.clone());
    let server = Server::start_with(o);
    let pki = canonical();
    assert_eq!(
        server
            .admin(
                "PUT",
                "/enrollmentGroups/all-devices",
                Some(&group("all-devices", &pki.root.pem, true))
            )
            .status,
        200
    );
    let pem = &pki.devices[0].pem;
    for batch in 0..5 {
        let entries: Vec<Value> = (0..1000)
            .map(|i| individual(&format!("fleet-{batch}-{i:04}"), pem, true))
            .collect();
        let a = server.admin(
            "POST",
            "/enrollments",
            Some(&json!({"mode": "create", "enrollments": entries})),
        );
        assert_eq!(a.status, 200, "{a:?}");
    }
    let t = token(&gateway);
    let a = get_snapshot(&server, &t, "");
    assert_eq!(a.status, 200);
    assert_eq!(a.raw.lines().count(), 1 + 1 + 5000 + 1);
    let replica = Replica::open(&dir.path().join("gw")).unwrap();
    let key = trust_key(dir.path());
    let applied = replica
        .apply(&mut a.raw.as_bytes(), &key, attest_service::now_unix())
        .unwrap();
    assert_eq!(applied.records, 5001);

    // Decisions at the edge, uploaded by host-cli's sync.
    let policy = policy_host::Policy::new().unwrap();
    for n in [1, 2, 4] {
        let req = request(&pki, n);
        let outcome = replica
            .decide(&policy, &req, None, Duration::from_secs(60))
            .unwrap();
        replica.log(&req, false, &outcome).unwrap();
    }
    let args = sync_args(&server, dir.path(), t.clone());
    let synced = host_cli::sync::sync(&args).unwrap();
    assert_eq!(synced.uploaded, (3, 3), "{}", synced.summary());
    assert!(
        synced
            .summary()
            .contains("uploaded 3 edge decision(s), 3 recorded")
    );
    let record = server.admin("GET", "/registrations/device-1", None);
    assert_eq!(record.status, 200);
    assert_eq!(record.body["status"], "assigned");
    assert_eq!(record.body["attestEdge"]["gateway"], "gateway");
    // Nothing left to upload; a second sync uploads nothing.
    let again = host_cli::sync::sync(&args).unwrap();
    assert_eq!(again.uploaded, (0, 0));
    // The audit trail: the service's decision on each uploaded one
    // (transport edge), and the upload as the gateway policy's write.
    server.stop();
    let lines: Vec<Value> = std::fs::read_to_string(&trail)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let edge: Vec<&Value> = lines
        .iter()
        .filter(|l| l["kind"] == "decision" && l["transport"] == "edge")
        .collect();
    assert_eq!(edge.len(), 3, "{lines:?}");
    assert!(edge.iter().all(|l| l["verdict"] == "admitted"), "{edge:?}");
    let uploads: Vec<&Value> = lines
        .iter()
        .filter(|l| l["route"] == "POST /attest/edgeDecisions")
        .collect();
    assert_eq!(
        uploads.len(),
        1,
        "the second sync had nothing to send: {lines:?}"
    );
    assert!(
        uploads
            .iter()
            .all(|l| l["policy"] == "gateway" && l["status"] == 200)
    );
    assert!(matches!(
        attest_service::audit::verify(std::fs::File::open(&trail).unwrap()).unwrap(),
        attest_service::audit::Verification::Intact { closed: true, .. }
    ));
}

/// Replicas on one PostgreSQL database share the signing key: a gateway
/// syncs through either, full or delta, and decides the writes made
/// through the other.
#[test]
fn snapshots_through_either_replica() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database();
    let key_path = dir.path().join("shared-snapshot-key.pem");
    SigningKey::load_or_create(&key_path).unwrap();
    let start = |name: &str| {
        let mut options = support::options(&dir.path().join(name), None);
        options.database = Some(database.clone());
        options.snapshot_key = Some(key_path.clone());
        Server::start_with(options)
    };
    let (a, b) = (start("a"), start("b"));
    let pki = canonical();
    assert_eq!(
        a.admin(
            "PUT",
            "/enrollmentGroups/all-devices",
            Some(&group("all-devices", &pki.root.pem, true))
        )
        .status,
        200
    );
    let key = {
        let k = SigningKey::load(&key_path).unwrap();
        TrustKey::from_pem(k.public_pem().as_bytes()).unwrap()
    };
    let replica = Replica::open(&dir.path().join("gw")).unwrap();
    let full = get_snapshot(&b, &b.token(), "");
    assert_eq!(full.status, 200, "{}", full.raw);
    replica
        .apply(&mut full.raw.as_bytes(), &key, attest_service::now_unix())
        .unwrap();
    let v = replica.state().unwrap().unwrap().version;
    let put = b.admin(
        "PUT",
        "/enrollmentGroups/line-b",
        Some(&group("line-b", &pki.line_b.pem, false)),
    );
    assert_eq!(put.status, 200, "{put:?}");
    let delta = get_snapshot(&a, &a.token(), &format!("?since={v}"));
    assert_eq!(delta.status, 200, "{}", delta.raw);
    let applied = replica
        .apply(&mut delta.raw.as_bytes(), &key, attest_service::now_unix())
        .unwrap();
    assert_eq!((applied.full, applied.records), (false, 1));
    let policy = policy_host::Policy::new().unwrap();
    let req = request(&pki, 4);
    let d = replica
        .decide(&policy, &req, None, Duration::from_secs(60))
        .unwrap();
    assert_eq!(
        d.unwrap_err().code,
        policy_host::Code::EnrollmentGroupDisabled
    );
}

/// A gateway further behind than the history the service keeps is told
/// so (410), and `sync` takes a full snapshot by itself: deletes it could
/// no longer hear of are gone from its copy too.
#[test]
fn sync_takes_a_full_snapshot_when_the_history_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = support::options(dir.path(), None);
    options.snapshot_history = 1;
    let server = Server::start_with(options);
    let pki = canonical();
    for n in [1, 2] {
        let a = server.admin(
            "PUT",
            &format!("/enrollments/device-{n}"),
            Some(&individual(
                &format!("device-{n}"),
                &pki.devices[n - 1].pem,
                false,
            )),
        );
        assert_eq!(a.status, 200, "{a:?}");
    }
    let args = sync_args(&server, dir.path(), server.token());
    let first = host_cli::sync::sync(&args).unwrap();
    assert_eq!(first.applied.records, 2);
    // Two deletes, two versions apart: the first one's tombstone is pruned.
    for n in [1, 2] {
        let a = server.client().call(
            "DELETE",
            &format!("/enrollments/device-{n}"),
            Vec::new(),
            &[("authorization", &server.token()), ("if-match", "*")],
        );
        assert_eq!(a.status, 204, "{a:?}");
    }
    let a = get_snapshot(
        &server,
        &server.token(),
        &format!("?since={}", first.applied.version),
    );
    assert_eq!(a.status, 410, "{}", a.raw);
    let second = host_cli::sync::sync(&args).unwrap();
    assert!(second.applied.full, "{}", second.summary());
    assert_eq!(second.applied.records, 0, "both enrollments are gone");
    assert!(
        second
            .summary()
            .contains("full snapshot, replacing version")
    );
}
