//! Edge snapshots end to end without a transport: a service's signed
//! snapshot applied to a replica decides exactly as the service does, on
//! both stores; everything a gateway could be handed instead (tampered,
//! truncated, another key, a rollback, a delta onto the wrong version) is
//! refused and leaves the replica as it was.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use attest_dps::ErrorKind;
use attest_pki::Canonical;
use attest_service::replica::{Replica, stale};
use attest_service::snapshot::{SigningKey, TrustKey};
use attest_service::{Options, Service};
use attest_tests::Rng;
use policy_host::EnrollmentKind::{Group, Individual};
use policy_host::{AttestRequest, Code, Decision, Purpose, Refusal};

/// A service in `dir` (SQLite there, or a fresh PostgreSQL database).
fn open(dir: &Path, postgres: bool, history: u64) -> Service {
    let (service, notes) = Service::open(&Options {
        id_scope: "0ne00000001".into(),
        data: dir.join("data"),
        enrollments: None,
        database: postgres.then(support::fresh_database),
        signature_memo: 0,
        snapshot_key: None,
        snapshot_history: history,
        audit: None,
    })
    .unwrap();
    assert!(notes.iter().all(|n| !n.starts_with("ERROR")), "{notes:?}");
    service
}

/// A service, its trusted key, the canonical PKI and an empty replica.
struct Setup {
    dir: tempfile::TempDir,
    service: Service,
    key: TrustKey,
    pki: Canonical,
    replica: Replica,
}

/// [`Setup`], the service seeded with the canonical scenario's step 3
/// unless `seeded` is false.
fn setup(postgres: bool, history: u64, seeded: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let service = open(dir.path(), postgres, history);
    let key = trust(dir.path());
    let pki = support::pki();
    if seeded {
        seed(&service, &pki);
    }
    let replica = Replica::open(&dir.path().join("gateway")).unwrap();
    Setup {
        dir,
        service,
        key,
        pki,
        replica,
    }
}

fn trust(dir: &Path) -> TrustKey {
    let (key, _) =
        SigningKey::load_or_create(&Service::snapshot_key_path(&dir.join("data"))).unwrap();
    TrustKey::from_pem(key.public_pem().as_bytes()).unwrap()
}

/// The snapshot's bytes.
fn snapshot(service: &Service, since: Option<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    service
        .snapshot(since)
        .unwrap()
        .write(&mut |chunk| {
            out.extend_from_slice(&chunk);
            Ok(())
        })
        .unwrap();
    out
}

/// Brings `replica` up to date: a delta when it holds a version, else full.
fn sync(service: &Service, replica: &Replica, key: &TrustKey) {
    let since = replica.state().unwrap().map(|s| s.version);
    let bytes = snapshot(service, since);
    replica.apply(&mut &bytes[..], key, support::now()).unwrap();
}

fn request(pki: &Canonical, n: usize, id: &str) -> AttestRequest {
    AttestRequest {
        registration_id: id.into(),
        leaf: pki.devices[n - 1].der.clone(),
        intermediates: vec![pki.issuer_of(n).der.clone()],
        time: support::now(),
        purpose: Purpose::ClientAuth,
    }
}

/// What a decision says, compared field by field.
fn summary(d: &Result<Decision, Refusal>) -> Value {
    match d {
        Ok(d) => json!({"admitted": format!("{:?}", d.enrollment), "device": d.device_id}),
        Err(r) => json!({"code": r.code.as_str(), "message": r.message,
            "enrollment": format!("{:?}", r.enrollment), "certificate": format!("{:?}", r.certificate)}),
    }
}

/// Every device (and a registration ID that is not its CN) decided by the
/// service and by the replica: the same answers.
fn assert_same(
    service: &Service,
    replica: &Replica,
    pki: &Canonical,
    context: &str,
) -> Vec<String> {
    let mut outcomes = Vec::new();
    let policy = policy_host::Policy::with_options(
        policy_host::Limits::one_shot(),
        policy_host::CacheMode::default(),
    )
    .unwrap();
    for n in 1..=5 {
        for id in [format!("device-{n}"), "device-9".to_string()] {
            let req = request(pki, n, &id);
            let at_service = service.decision(&req, None).unwrap();
            let at_edge = replica
                .decide(&policy, &req, None, Duration::from_secs(3600))
                .unwrap();
            assert_eq!(
                summary(&at_service),
                summary(&at_edge),
                "{context}: device-{n} as {id}"
            );
            outcomes.push(match &at_edge {
                Ok(_) => "admitted".to_string(),
                Err(r) => r.code.as_str().to_string(),
            });
        }
    }
    outcomes
}

fn steps(pki: &Canonical) -> Value {
    pki.enrollment_steps()[2].clone()
}

/// Creates or replaces an enrollment through the management API.
fn upsert(
    service: &Service,
    kind: policy_host::EnrollmentKind,
    id: &str,
    doc: &Value,
) -> Result<attest_service::Reply, attest_dps::DpsError> {
    service
        .put_enrollment(kind, id, doc, None)
        .or_else(|_| service.put_enrollment(kind, id, doc, Some("*")))
}

fn put(service: &Service, kind: policy_host::EnrollmentKind, id: &str, doc: &Value) {
    upsert(service, kind, id, doc).unwrap();
}

fn seed(service: &Service, pki: &Canonical) {
    let s = steps(pki);
    for g in s["enrollmentGroups"].as_array().unwrap() {
        put(service, Group, g["enrollmentGroupId"].as_str().unwrap(), g);
    }
    for i in s["individualEnrollments"].as_array().unwrap() {
        put(
            service,
            Individual,
            i["registrationId"].as_str().unwrap(),
            i,
        );
    }
}

fn with_status(doc: &Value, status: &str) -> Value {
    let mut d = doc.clone();
    d["provisioningStatus"] = json!(status);
    d
}

fn full_then_deltas_decide_as_the_service(postgres: bool) {
    let setup = setup(postgres, 1000, true);
    let (service, key, replica) = (&setup.service, &setup.key, &setup.replica);
    let pki = &setup.pki;
    sync(service, replica, key);
    let v1 = replica.state().unwrap().unwrap();
    assert_eq!(v1.service, "0ne00000001");
    assert_same(service, replica, pki, "full");
    let policy = policy_host::Policy::new().unwrap();
    let decide = |n: usize| {
        replica
            .decide(
                &policy,
                &request(pki, n, &format!("device-{n}")),
                None,
                Duration::from_secs(3600),
            )
            .unwrap()
    };
    assert!(decide(1).is_ok());

    // The root's group disabled on the service: the delta carries it.
    let s = steps(pki);
    put(
        service,
        Group,
        "all-devices",
        &with_status(&s["enrollmentGroups"][0], "disabled"),
    );
    sync(service, replica, key);
    let v2 = replica.state().unwrap().unwrap();
    assert!(v2.version > v1.version);
    assert_eq!(decide(1).unwrap_err().code, Code::EnrollmentGroupDisabled);
    assert_same(service, replica, pki, "after a disable");

    // A delta across a delete: device-3's individual enrollment goes, then
    // the root's group comes back enabled.
    service
        .delete_enrollment(Individual, "device-3", Some("*"))
        .unwrap();
    put(service, Group, "all-devices", &s["enrollmentGroups"][0]);
    sync(service, replica, key);
    assert!(
        decide(3).is_ok(),
        "device-3 falls through to the root's group"
    );
    assert_same(service, replica, pki, "after a delete");

    // Nothing changed: an empty delta, still verified, version the same.
    let before = replica.state().unwrap().unwrap().version;
    sync(service, replica, key);
    assert_eq!(replica.state().unwrap().unwrap().version, before);

    // A verified CA certificate and a group that references it by name.
    service
        .put_certificate(
            "line-a",
            &json!({"certificate": pki.line_a.pem, "isVerified": true}),
            None,
        )
        .unwrap();
    put(
        service,
        Group,
        "by-reference",
        &json!({"enrollmentGroupId": "by-reference", "provisioningStatus": "disabled",
            "attestation": {"type": "x509", "x509": {"caReferences": {"primary": "line-a"}}}}),
    );
    sync(service, replica, key);
    assert_eq!(decide(1).unwrap_err().code, Code::EnrollmentGroupDisabled);
    assert_same(service, replica, pki, "with caReferences");
}

#[test]
fn sqlite_full_then_deltas_decide_as_the_service() {
    full_then_deltas_decide_as_the_service(false);
}

#[test]
fn postgres_full_then_deltas_decide_as_the_service() {
    full_then_deltas_decide_as_the_service(true);
}

/// Whatever else a gateway is handed fails to apply and leaves the replica
/// exactly as it was.
#[test]
fn tampered_truncated_foreign_and_rolled_back_snapshots_change_nothing() {
    let setup = setup(false, 1000, true);
    let (service, key, replica) = (&setup.service, &setup.key, &setup.replica);
    let (dir, pki) = (&setup.dir, &setup.pki);
    let old_full = snapshot(service, None);
    sync(service, replica, key);
    let s = steps(pki);
    put(
        service,
        Group,
        "line-b",
        &with_status(&s["enrollmentGroups"][1], "enabled"),
    );
    let held = replica.state().unwrap().unwrap();
    let delta = snapshot(service, Some(held.version));
    let line_b_refused = |context: &str| {
        let policy = policy_host::Policy::new().unwrap();
        let d = replica
            .decide(
                &policy,
                &request(pki, 4, "device-4"),
                None,
                Duration::from_secs(3600),
            )
            .unwrap();
        assert_eq!(
            d.unwrap_err().code,
            Code::EnrollmentGroupDisabled,
            "{context}"
        );
    };

    let refused = |bytes: &[u8], key: &TrustKey, what: &str| -> String {
        let e = replica
            .apply(&mut &bytes[..], key, support::now())
            .expect_err(what);
        assert_eq!(replica.state().unwrap().unwrap(), held, "{what}: {e:#}");
        line_b_refused(what);
        format!("{e:#}")
    };
    // Every byte of the delta flipped, one at a time (a sample): refused.
    let mut rng = Rng(0x5eed);
    for _ in 0..200 {
        let mut bytes = delta.clone();
        let i = rng.below(bytes.len());
        bytes[i] ^= 1 << rng.below(8);
        refused(&bytes, key, &format!("byte {i} flipped"));
    }
    // Cut anywhere: refused.
    for _ in 0..100 {
        let cut = rng.below(delta.len());
        refused(&delta[..cut], key, &format!("cut at {cut}"));
    }
    // Lines dropped, duplicated or reordered: refused.
    let lines: Vec<&[u8]> = delta.split_inclusive(|&b| b == b'\n').collect();
    assert!(lines.len() >= 3, "header, a record, signature");
    for i in 0..lines.len() - 1 {
        let mut dropped = lines.clone();
        dropped.remove(i);
        refused(&dropped.concat(), key, &format!("line {i} dropped"));
        let mut doubled = lines.clone();
        doubled.insert(i, lines[i]);
        refused(&doubled.concat(), key, &format!("line {i} doubled"));
    }
    // Trailing bytes after the signature: refused.
    refused(
        &[delta.clone(), b"{}\n".to_vec()].concat(),
        key,
        "trailing line",
    );
    // Another service's key.
    let other = {
        let (k, _) = SigningKey::load_or_create(&dir.path().join("other.pem")).unwrap();
        TrustKey::from_pem(k.public_pem().as_bytes()).unwrap()
    };
    let e = refused(&delta, &other, "another key");
    assert!(e.contains("another key"), "{e}");
    // Rollback: the older full snapshot (a lower version).
    sync(service, replica, key);
    let newer = replica.state().unwrap().unwrap();
    let e = replica
        .apply(&mut &old_full[..], key, support::now())
        .expect_err("rollback");
    assert!(format!("{e:#}").contains("rollback"), "{e:#}");
    assert_eq!(replica.state().unwrap().unwrap(), newer);
    // A delta that does not start at the version held.
    let e = replica
        .apply(&mut &delta[..], key, support::now())
        .expect_err("a delta from an older version");
    let e = format!("{e:#}");
    assert!(
        ["rollback", "replay", "starts at"]
            .iter()
            .any(|w| e.contains(w)),
        "{e}"
    );
    assert_eq!(replica.state().unwrap().unwrap(), newer);
}

/// A delta from before the history kept is refused with 410 (the gateway
/// then takes a full snapshot); one from a version the service never had
/// is a 409.
#[test]
fn lost_history_is_410_and_a_future_version_is_409() {
    let dir = tempfile::tempdir().unwrap();
    let service = open(dir.path(), false, 2);
    let pki = support::pki();
    seed(&service, &pki);
    let v = service.snapshot(None).unwrap().header().version;
    service
        .delete_enrollment(Individual, "device-3", Some("*"))
        .unwrap();
    for i in 0..3 {
        put(
            &service,
            Individual,
            &format!("extra-{i}"),
            &json!({"registrationId": format!("extra-{i}"),
            "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": pki.devices[0].pem}}}}}),
        );
    }
    service
        .delete_enrollment(Individual, "extra-0", Some("*"))
        .unwrap();
    let e = service.snapshot(Some(v)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::SnapshotHistoryGone, "{}", e.message);
    assert_eq!(e.kind.status(), 410);
    let now = service.snapshot(None).unwrap().header().version;
    assert!(service.snapshot(Some(now)).is_ok());
    let e = service.snapshot(Some(now + 1)).unwrap_err();
    assert_eq!(e.kind.status(), 409, "{}", e.message);
}

/// Snapshots taken while bulk operations commit hold each one whole: every
/// batch of ten enrollments is in a snapshot entirely or not at all.
fn consistent_while_writes_go_on(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let service = open(dir.path(), postgres, 100_000);
    let pki = support::pki();
    let pem = pki.devices[0].pem.clone();
    let batches = 30;
    std::thread::scope(|s| {
        s.spawn(|| {
            for b in 0..batches {
                let entries: Vec<Value> = (0..10)
                    .map(|i| json!({"registrationId": format!("b{b}-{i}"),
                        "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": pem}}}}}))
                    .collect();
                let answer = service
                    .bulk_enrollments(&json!({"mode": "create", "enrollments": entries}))
                    .unwrap();
                assert_eq!(answer.body.unwrap()["isSuccessful"], json!(true));
            }
        });
        let mut seen = 0;
        while seen < batches * 10 {
            let bytes = snapshot(&service, None);
            let text = String::from_utf8(bytes).unwrap();
            let mut per_batch = std::collections::HashMap::<String, usize>::new();
            for line in text.lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                if let Some(id) = v["id"].as_str() {
                    let batch = id.split('-').next().unwrap().to_string();
                    *per_batch.entry(batch).or_default() += 1;
                }
            }
            for (batch, n) in &per_batch {
                assert_eq!(*n, 10, "batch {batch} is half in the snapshot");
            }
            seen = per_batch.values().sum();
        }
    });
}

#[test]
fn sqlite_snapshots_hold_each_write_whole() {
    consistent_while_writes_go_on(false);
}

#[test]
fn postgres_snapshots_hold_each_write_whole() {
    consistent_while_writes_go_on(true);
}

/// The maximum age, with the time as an input: fresh up to it, every
/// device refused `enrollments-stale` after it (also one the snapshot
/// admits), and a replica without a snapshot decides nothing.
#[test]
fn a_snapshot_past_its_maximum_age_refuses_every_device() {
    let setup = setup(false, 1000, true);
    let (service, key, replica) = (&setup.service, &setup.key, &setup.replica);
    let pki = &setup.pki;
    let policy = policy_host::Policy::new().unwrap();
    assert!(
        replica
            .decide(
                &policy,
                &request(pki, 1, "device-1"),
                None,
                Duration::from_secs(60)
            )
            .is_err(),
        "an empty replica decides nothing"
    );
    sync(service, replica, key);
    let state = replica.state().unwrap().unwrap();
    let max = Duration::from_secs(3600);
    for (offset, fresh) in [
        (0, true),
        (3600, true),
        (3601, false),
        (86_400 * 365, false),
    ] {
        let mut req = request(pki, 1, "device-1");
        req.time = state.made_at + offset;
        let d = replica.decide(&policy, &req, None, max).unwrap();
        match (fresh, d) {
            (true, Ok(_)) => {}
            (false, Err(r)) => {
                assert_eq!(r.code, Code::EnrollmentsStale);
                assert!(r.message.contains("maximum age"), "{}", r.message);
                assert!(r.enrollment.is_none() && r.certificate.is_none());
            }
            (fresh, d) => panic!("offset {offset}: fresh {fresh}, decided {d:?}"),
        }
    }
    assert!(
        stale(&state, state.made_at - 10, max).is_none(),
        "a time before it is fresh"
    );
}

/// The decision-equality property: random enrollment stores (groups on
/// the root and on line B, individual enrollments with the right or a
/// wrong certificate, verified and unverified CA certificates referenced
/// by name, each enabled or disabled, written and deleted at random),
/// synced by deltas and now and then a full snapshot: after every sync,
/// every device decides the same at the edge as at the service.
fn decisions_are_equal_for_random_stores(postgres: bool, seed: u64, rounds: usize) {
    let setup = setup(postgres, 1000, false);
    let (service, key, replica) = (&setup.service, &setup.key, &setup.replica);
    let pki = &setup.pki;
    let mut rng = Rng(seed);
    let status = |rng: &mut Rng| {
        if rng.chance(70) {
            "enabled"
        } else {
            "disabled"
        }
    };
    let cas = [&pki.root, &pki.line_a, &pki.line_b];
    let names = ["root", "line-a", "line-b"];
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for round in 0..rounds {
        for _ in 0..1 + rng.below(4) {
            match rng.below(7) {
                0 | 1 => {
                    let c = rng.below(3);
                    let id = format!("group-{c}-{}", rng.below(2));
                    let doc = json!({"enrollmentGroupId": id, "provisioningStatus": status(&mut rng),
                        "attestation": {"type": "x509", "x509": {"signingCertificates": {"primary": {"certificate": cas[c].pem}}}}});
                    let _ = upsert(service, Group, &id, &doc);
                }
                2 => {
                    let n = 1 + rng.below(5);
                    let cert = if rng.chance(80) { n } else { 1 + rng.below(5) };
                    let id = format!("device-{n}");
                    let doc = json!({"registrationId": id, "provisioningStatus": status(&mut rng),
                        "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": pki.devices[cert - 1].pem}}}}});
                    let _ = upsert(service, Individual, &id, &doc);
                }
                3 => {
                    let c = rng.below(3);
                    let body = json!({"certificate": cas[c].pem, "isVerified": rng.chance(60)});
                    let _ = service
                        .put_certificate(names[c], &body, None)
                        .or_else(|_| service.put_certificate(names[c], &body, Some("*")));
                }
                4 => {
                    let c = rng.below(3);
                    let id = format!("ref-{c}");
                    let doc = json!({"enrollmentGroupId": id, "provisioningStatus": status(&mut rng),
                        "attestation": {"type": "x509", "x509": {"caReferences": {"primary": names[c]}}}});
                    let _ = upsert(service, Group, &id, &doc);
                }
                5 => {
                    let id = format!("device-{}", 1 + rng.below(5));
                    let _ = service.delete_enrollment(Individual, &id, Some("*"));
                }
                _ => {
                    let what = rng.below(3);
                    match what {
                        0 => {
                            let id = format!("group-{}-{}", rng.below(3), rng.below(2));
                            let _ = service.delete_enrollment(Group, &id, Some("*"));
                        }
                        1 => {
                            let id = format!("ref-{}", rng.below(3));
                            let _ = service.delete_enrollment(Group, &id, Some("*"));
                        }
                        _ => {
                            let _ = service.delete_certificate(names[rng.below(3)], Some("*"));
                        }
                    }
                }
            }
        }
        if rng.chance(15) {
            let bytes = snapshot(service, None);
            replica.apply(&mut &bytes[..], key, support::now()).unwrap();
        } else {
            sync(service, replica, key);
        }
        for outcome in assert_same(
            service,
            replica,
            pki,
            &format!("seed {seed:#x} round {round}"),
        ) {
            *seen.entry(outcome).or_default() += 1;
        }
    }
    // The stores were not trivial: admissions and several kinds of refusal.
    assert!(seen.contains_key("admitted"), "{seen:?}");
    assert!(seen.len() >= 4, "{seen:?}");
    eprintln!("seed {seed:#x}: {seen:?}");
}

#[test]
fn sqlite_gateway_decisions_equal_the_services_for_random_stores() {
    for seed in [1, 2, 3] {
        decisions_are_equal_for_random_stores(false, seed, 25);
    }
}

#[test]
fn postgres_gateway_decisions_equal_the_services_for_random_stores() {
    decisions_are_equal_for_random_stores(true, 7, 25);
}

/// A gateway's logged decisions, uploaded: each kept as the device's
/// record marked as decided at the edge, with the snapshot version; an
/// untrusted refusal and a refusal the service would admit are not; a
/// second upload changes nothing; where the service now refuses what the
/// gateway admitted, the record says they disagreed.
#[test]
fn edge_decisions_are_recorded_as_the_service_would_and_marked() {
    let setup = setup(false, 1000, true);
    let (service, key, replica) = (&setup.service, &setup.key, &setup.replica);
    let (dir, pki) = (&setup.dir, &setup.pki);
    sync(service, replica, key);
    let version = replica.state().unwrap().unwrap().version;
    let policy = policy_host::Policy::new().unwrap();
    let decide_and_log = |n: usize, id: &str| {
        let req = request(pki, n, id);
        let outcome = replica
            .decide(&policy, &req, None, Duration::from_secs(3600))
            .unwrap();
        replica.log(&req, false, &outcome).unwrap()
    };
    let d1 = decide_and_log(1, "device-1");
    let d4 = decide_and_log(4, "device-4");
    let forged = decide_and_log(2, "device-1");
    assert_eq!(d1.verdict, "admitted");
    assert_eq!(d4.verdict, "enrollment-group-disabled");
    assert_eq!(forged.verdict, "registration-id-mismatch");
    // A crash half-way through appending leaves a line without its end:
    // it is not uploaded.
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("gateway/decisions.ndjson"))
        .unwrap()
        .write_all(b"{\"id\":\"half")
        .unwrap();
    let (pending, offset) = replica.pending(100).unwrap();
    assert_eq!(pending, [d1.clone(), d4.clone(), forged.clone()]);

    let upload = |decisions: &[attest_service::edge::EdgeDecision]| {
        service
            .edge_decisions("gateway-7", &json!({"decisions": decisions}))
            .unwrap()
            .body
            .unwrap()
    };
    let answer = upload(&pending);
    assert_eq!(answer["recorded"], 2, "{answer}");
    assert_eq!(answer["skipped"][0]["id"], json!(forged.id), "{answer}");
    replica.uploaded_to(offset).unwrap();
    assert!(replica.pending(100).unwrap().0.is_empty());

    let record = |id: &str| service.get_registration(id).unwrap().body.unwrap();
    let r1 = record("device-1");
    assert_eq!(r1["status"], "assigned");
    assert_eq!(r1["attestEdge"]["decisionId"], json!(d1.id));
    assert_eq!(r1["attestEdge"]["snapshotVersion"], json!(version));
    assert_eq!(r1["attestEdge"]["gateway"], "gateway-7");
    assert_eq!(r1["attestEdge"]["agreed"], true);
    let r4 = record("device-4");
    assert_eq!(r4["status"], "disabled");
    assert_eq!(r4["attestEdge"]["verdict"], "enrollment-group-disabled");

    // Uploaded again: nothing changes.
    let again = upload(&pending);
    assert_eq!(again["recorded"], 0, "{again}");
    assert_eq!(record("device-1"), r1);

    // The root's group disabled after the gateway's snapshot: a later
    // edge admission of device-2 is recorded as the service's refusal,
    // marked as a disagreement.
    let s = steps(pki);
    put(
        service,
        Group,
        "all-devices",
        &with_status(&s["enrollmentGroups"][0], "disabled"),
    );
    let mut d2 = decide_and_log(2, "device-2");
    assert_eq!(d2.verdict, "admitted");
    d2.decided_at = support::now() + 1;
    let answer = upload(&[d2.clone()]);
    assert_eq!(answer["recorded"], 1, "{answer}");
    let r2 = record("device-2");
    assert_eq!(r2["status"], "disabled");
    assert_eq!(r2["attestEdge"]["verdict"], "admitted");
    assert_eq!(r2["attestEdge"]["agreed"], false);

    // A gateway refusal where the service admits records nothing.
    put(service, Group, "all-devices", &s["enrollmentGroups"][0]);
    let mut stale = d2.clone();
    stale.id = "stale-1".into();
    stale.registration_id = "device-3".into();
    stale.leaf = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&pki.devices[2].der)
    };
    stale.verdict = "enrollments-stale".into();
    stale.decided_at = support::now() + 2;
    service
        .delete_enrollment(Individual, "device-3", Some("*"))
        .unwrap();
    let answer = upload(&[stale]);
    assert_eq!(answer["recorded"], 0, "{answer}");
    assert!(service.get_registration("device-3").is_err());
    // Garbage in an upload is skipped, never a failure of the others.
    let answer = service
        .edge_decisions("g", &json!({"decisions": [{"id": 1}, "x", null]}))
        .unwrap()
        .body
        .unwrap();
    assert_eq!(answer["skipped"].as_array().unwrap().len(), 3);
    assert!(
        service
            .edge_decisions("g", &json!({"nothing": []}))
            .is_err()
    );
}

/// At most `MAX_STREAMS` snapshots stream at once (each holds a read
/// transaction while its gateway reads); one more is a 503 to retry, and
/// a stream that ends gives its place back.
#[test]
fn concurrent_snapshots_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let service = open(dir.path(), false, 1000);
    let open_streams: Vec<_> = (0..attest_service::snapshot::MAX_STREAMS)
        .map(|_| service.snapshot(None).unwrap())
        .collect();
    let e = service.snapshot(None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{}", e.message);
    assert!(e.retry_after().is_some());
    drop(open_streams);
    let one = service.snapshot(None).unwrap();
    one.write(&mut |_| Ok(())).unwrap();
    assert!(service.snapshot(None).is_ok());
}

/// The property at length (not in CI): 40 seeds × 60 rounds.
/// `cargo test -p attest-service --test snapshot -- --ignored`
#[test]
#[ignore]
fn sqlite_gateway_decisions_equal_the_services_at_length() {
    for seed in 100..140 {
        decisions_are_equal_for_random_stores(false, seed, 60);
    }
}

/// A gateway directory pointed at a service's own data directory (or any
/// store that is not a replica) is never replaced by a snapshot.
#[test]
fn a_store_that_is_not_a_replica_is_never_replaced() {
    let setup = setup(false, 1000, true);
    let data = setup.dir.path().join("data");
    let bytes = snapshot(&setup.service, None);
    let not_a_replica = Replica::open(&data).unwrap();
    let e = not_a_replica
        .apply(&mut &bytes[..], &setup.key, support::now())
        .unwrap_err();
    assert!(format!("{e:#}").contains("not an edge replica"), "{e:#}");
    assert!(not_a_replica.state().unwrap().is_none());
    assert!(setup.service.get_enrollment(Individual, "device-3").is_ok());
}
