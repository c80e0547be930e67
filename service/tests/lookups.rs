//! Decisions read enrollments through indexed lookups in one snapshot of
//! the store (no index in memory). What must hold for that never to widen
//! admission: a store failure during a decision voids it (503, nothing
//! recorded), lookup keys that disagree with the documents refuse, and the
//! keys are re-derived from the documents at start.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use anyhow::{Result, bail};
mod support;

use attest_pki::Canonical;
use attest_service::sqlite::SqliteStore;
use attest_service::store::{LookupKey, LookupKind, Snapshot, Store, Transaction};
use attest_service::{Service, ServiceConfig};
use policy_host::EnrollmentKind;
use support::pki;

/// A store whose snapshots fail after `reads` reads (a database that goes
/// away in the middle of a decision).
struct Failing {
    inner: SqliteStore,
    reads: usize,
}

struct FailingSnapshot {
    inner: Box<dyn Snapshot>,
    left: usize,
}

impl Snapshot for FailingSnapshot {
    fn read(&mut self, work: &mut dyn FnMut(&dyn Transaction) -> Result<()>) -> Result<()> {
        if self.left == 0 {
            bail!("injected: the connection was lost");
        }
        self.left -= 1;
        self.inner.read(work)
    }
}

impl Store for Failing {
    fn write(&self, work: &mut dyn FnMut(&dyn Transaction) -> Result<()>) -> Result<()> {
        self.inner.write(work)
    }
    fn read(&self, work: &mut dyn FnMut(&dyn Transaction) -> Result<()>) -> Result<()> {
        self.inner.read(work)
    }
    fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        Ok(Box::new(FailingSnapshot {
            inner: self.inner.snapshot()?,
            left: self.reads,
        }))
    }
}

/// A service over `store` in `data` with the canonical enrollments.
fn service(data: &std::path::Path, pki: &Canonical, store: Box<dyn Store>) -> Service {
    let (config, _) = ServiceConfig::load_or_create(data).unwrap();
    let service = Service::new(
        policy_host::Policy::new().unwrap(),
        store,
        "0ne00000001".into(),
        config,
    );
    let file = data.join("enrollments.json");
    std::fs::write(&file, pki.enrollment_steps()[2].to_string()).unwrap();
    service.seed_file(&file).unwrap();
    assert!(service.derive_lookup_keys().unwrap().is_empty());
    service
}

/// A service on SQLite, and a second connection to its database for
/// writing behind its back.
fn with_a_second_connection(pki: &Canonical) -> (tempfile::TempDir, Service, Box<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let service = service(
        dir.path(),
        pki,
        Box::new(SqliteStore::open(dir.path()).unwrap()),
    );
    let behind: Box<dyn Store> = Box::new(SqliteStore::open(dir.path()).unwrap());
    (dir, service, behind)
}

/// What device `n` gets: its status, or the HTTP status of the error.
fn outcome(service: &Service, pki: &Canonical, n: usize) -> String {
    match service.register(&support::evidence(pki, n, n), &format!("device-{n}"), b"{}") {
        Ok(reply) => reply.body.unwrap()["status"].as_str().unwrap().to_string(),
        Err(e) => e.kind.status().to_string(),
    }
}

const CANONICAL: [&str; 5] = ["assigned", "assigned", "disabled", "disabled", "disabled"];

#[test]
fn a_store_failure_during_a_decision_voids_it() {
    let pki = pki();
    for reads in 0..8 {
        let dir = tempfile::tempdir().unwrap();
        let store = Failing {
            inner: SqliteStore::open(dir.path()).unwrap(),
            reads,
        };
        let service = service(dir.path(), &pki, Box::new(store));
        for n in 1..=5 {
            let got = outcome(&service, &pki, n);
            // Either the store lasted the whole decision, or 503: never
            // the refusal a failed lookup stands in for, never an admission.
            assert!(
                got == CANONICAL[n - 1] || got == "503",
                "reads {reads}, device-{n}: {got}"
            );
            if reads == 0 {
                assert_eq!(got, "503", "device-{n}");
            }
            if got == "503" {
                // Nothing was recorded.
                let record = SqliteStore::open(dir.path()).unwrap();
                let record: &dyn Store = &record;
                assert!(
                    record
                        .read_with(|tx| tx.registration(&format!("device-{n}")))
                        .unwrap()
                        .is_none(),
                    "reads {reads}, device-{n}"
                );
            }
        }
    }
    // With enough reads every decision completes.
    let dir = tempfile::tempdir().unwrap();
    let store = Failing {
        inner: SqliteStore::open(dir.path()).unwrap(),
        reads: 64,
    };
    let service = service(dir.path(), &pki, Box::new(store));
    let got: Vec<String> = (1..=5).map(|n| outcome(&service, &pki, n)).collect();
    assert_eq!(got, CANONICAL);
}

fn key(kind: LookupKind, value: &[u8]) -> LookupKey {
    LookupKey {
        kind,
        value: value.to_vec(),
        der: None,
    }
}

#[test]
fn keys_that_disagree_with_the_documents_refuse() {
    let pki = pki();
    let (_dir, service, behind) = with_a_second_connection(&pki);
    let root = policy_host::certificate_keys(&pki.root.der).unwrap();
    assert_eq!(outcome(&service, &pki, 1), "assigned");

    // A second group on the root's CA, written behind the service's back:
    // neither decides.
    behind
        .write_with(|tx| {
            tx.set_lookup_keys(
                "group:intruder",
                &[key(LookupKind::GroupCa, &root.ca_identity)],
            )
        })
        .unwrap();
    assert_eq!(outcome(&service, &pki, 1), "disabled");
    behind
        .write_with(|tx| tx.set_lookup_keys("group:intruder", &[]))
        .unwrap();
    assert_eq!(outcome(&service, &pki, 1), "assigned");

    // The root's group rewritten to another CA without its keys: the keys
    // still find it by the root, and the document says otherwise.
    let moved = behind
        .read_with(|tx| tx.enrollment(EnrollmentKind::Group, "all-devices"))
        .unwrap()
        .unwrap();
    let text = moved.doc.to_string().replace(
        &pki.root.pem.replace('\n', "\\n"),
        &pki.line_b.pem.replace('\n', "\\n"),
    );
    assert_ne!(text, moved.doc.to_string(), "the CA was replaced");
    behind
        .write_with(|tx| {
            tx.put_enrollment(
                EnrollmentKind::Group,
                "all-devices",
                &serde_json::from_str(&text).map_err(anyhow::Error::from)?,
                &moved.etag,
            )
        })
        .unwrap();
    assert_eq!(outcome(&service, &pki, 1), "disabled");

    // A group whose CA cannot be determined: every group decision refuses.
    behind
        .write_with(|tx| {
            tx.put_enrollment(
                EnrollmentKind::Group,
                "all-devices",
                &moved.doc,
                &moved.etag,
            )?;
            tx.set_lookup_keys("group:broken", &[key(LookupKind::Unloadable, &[])])
        })
        .unwrap();
    assert_eq!(outcome(&service, &pki, 1), "disabled");
    assert_eq!(outcome(&service, &pki, 3), "disabled");
}

#[test]
fn lookup_keys_are_derived_again_at_start() {
    let pki = pki();
    let (_dir, service, behind) = with_a_second_connection(&pki);
    let all = behind.read_with(|tx| tx.lookup_keys()).unwrap();
    // Both groups are found by their CA, and are anchors of their own.
    let count = |kind| all.iter().filter(|(_, k)| k.kind == kind).count();
    assert_eq!(count(LookupKind::GroupCa), 2, "{all:?}");
    assert_eq!(count(LookupKind::Anchor), 2, "{all:?}");
    // Lost keys (a restore of the documents alone): nothing is admitted…
    behind
        .write_with(|tx| {
            for (owner, _) in &all {
                tx.set_lookup_keys(owner, &[])?;
            }
            tx.set_lookup_keys("group:gone", &[key(LookupKind::Unloadable, &[])])
        })
        .unwrap();
    assert_ne!(outcome(&service, &pki, 1), "assigned");
    // …until the keys are derived again (what every start does); keys of
    // documents that are gone go.
    assert!(service.derive_lookup_keys().unwrap().is_empty());
    let got: Vec<String> = (1..=5).map(|n| outcome(&service, &pki, n)).collect();
    assert_eq!(got, CANONICAL);
    let mut again = behind.read_with(|tx| tx.lookup_keys()).unwrap();
    let mut before = all;
    let order = |a: &(String, LookupKey), b: &(String, LookupKey)| {
        (&a.0, a.1.kind.as_str(), &a.1.value).cmp(&(&b.0, b.1.kind.as_str(), &b.1.value))
    };
    again.sort_by(order);
    before.sort_by(order);
    assert_eq!(again, before);
}

/// An individual enrollment is found by its key; a stored document under
/// a device's key that names another registration ID (written behind the
/// service's back) refuses that device: it is never read as "no
/// individual enrollment", which would hand the device to its group.
#[test]
fn an_individual_enrollment_stored_under_another_key_refuses() {
    let pki = pki();
    let (_dir, service, behind) = with_a_second_connection(&pki);
    assert_eq!(outcome(&service, &pki, 1), "assigned");
    let other = behind
        .read_with(|tx| tx.enrollment(EnrollmentKind::Individual, "device-3"))
        .unwrap()
        .unwrap();
    let mut doc = other.doc.clone();
    doc["registrationId"] = "device-9".into();
    doc["provisioningStatus"] = "enabled".into();
    behind
        .write_with(|tx| {
            tx.put_enrollment(EnrollmentKind::Individual, "device-1", &doc, &other.etag)
        })
        .unwrap();
    // Refused as an entry that cannot be loaded is (it holds no
    // certificate of this device): 401, not the group's assignment.
    assert_eq!(outcome(&service, &pki, 1), "401");
    // The same document under its own key is simply another device's.
    behind
        .write_with(|tx| {
            tx.delete_enrollment(EnrollmentKind::Individual, "device-1")?;
            tx.put_enrollment(EnrollmentKind::Individual, "device-9", &doc, &other.etag)
        })
        .unwrap();
    assert_eq!(outcome(&service, &pki, 1), "assigned");
}
