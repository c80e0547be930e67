//! The provisioning service driven directly, without a transport: what a
//! second transport (MQTT) adapts is exactly these calls. SPEC §1's
//! canonical scenario, the operation and registration reads, and the
//! record-ownership rule.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod support;

use attest_dps::ErrorKind;
use attest_pki::Canonical;
use attest_service::{DeviceEvidence, Options, Service};
use support::{evidence, pki};

fn open(dir: &std::path::Path, pki: &Canonical) -> Service {
    let file = dir.join("enrollments.json");
    std::fs::write(&file, pki.enrollment_steps()[2].to_string()).unwrap();
    let (service, notes) = Service::open(&Options {
        id_scope: "0ne00000001".into(),
        data: dir.join("data"),
        enrollments: Some(file),
        database: None,
        signature_memo: attest_service::DEFAULT_SIGNATURE_MEMO,
        snapshot_key: None,
        snapshot_history: attest_service::store::DEFAULT_HISTORY,
        audit: None,
    })
    .unwrap();
    assert!(notes.iter().all(|n| !n.starts_with("ERROR")), "{notes:?}");
    service
}

#[test]
fn canonical_scenario_without_a_transport() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let service = open(dir.path(), &pki);
    let statuses: Vec<String> = (1..=5)
        .map(|n| {
            let id = format!("device-{n}");
            match service.register(&evidence(&pki, n, n), &id, b"{}") {
                Ok(reply) => reply.body.unwrap()["status"].as_str().unwrap().to_string(),
                Err(e) => e.kind.status().to_string(),
            }
        })
        .collect();
    assert_eq!(
        statuses,
        ["assigned", "assigned", "disabled", "disabled", "disabled"]
    );

    // The operation and the record read back, through the same proof.
    let reply = service
        .register(&evidence(&pki, 1, 1), "device-1", b"{}")
        .unwrap();
    let body = reply.body.unwrap();
    let operation_id = body["operationId"].as_str().unwrap();
    let op = service
        .operation_status(&evidence(&pki, 1, 1), "device-1", operation_id)
        .unwrap();
    assert_eq!(
        op.body.unwrap()["registrationState"]["assignedHub"],
        "hub.attest.local"
    );
    let record = service
        .registration_status(&evidence(&pki, 1, 1), "DEVICE-1")
        .unwrap();
    assert_eq!(record.body.unwrap()["status"], "assigned");
}

#[test]
fn a_refusal_before_trust_records_and_reveals_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let service = open(dir.path(), &pki);
    service
        .register(&evidence(&pki, 1, 1), "device-1", b"{}")
        .unwrap();
    // device-1's chain, signed by device-2's key: no proof of possession.
    let forged = evidence(&pki, 1, 2);
    for answer in [
        service.register(&forged, "device-1", b"{}"),
        service.registration_status(&forged, "device-1"),
    ] {
        let e = answer.unwrap_err();
        assert_eq!(e.kind, ErrorKind::DeviceUnauthorized, "{e}");
        assert!(e.message.contains("proof-of-possession-failed"), "{e}");
    }
    // No evidence at all.
    let e = service
        .register(&DeviceEvidence::default(), "device-1", b"{}")
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::DeviceUnauthorized);
    // The record is still device-1's own.
    let record = service
        .registration_status(&evidence(&pki, 1, 1), "device-1")
        .unwrap();
    assert_eq!(record.body.unwrap()["status"], "assigned");
    // Bad requests are DPS errors, not panics.
    assert_eq!(
        service
            .check_device_request("other-scope", "device-1")
            .unwrap_err()
            .kind,
        ErrorKind::DeviceNotFound
    );
    assert_eq!(
        service
            .register(&evidence(&pki, 1, 1), "device-1", b"[")
            .unwrap_err()
            .kind,
        ErrorKind::MalformedBody
    );
    assert_eq!(
        service
            .register(
                &evidence(&pki, 1, 1),
                "device-1",
                br#"{"registrationId":"device-2"}"#
            )
            .unwrap_err()
            .kind,
        ErrorKind::InvalidRegistrationId
    );
}

/// The canonical scenario on the PostgreSQL store (a new database on the
/// server `scripts/with-postgres` started).
#[test]
fn canonical_scenario_on_postgres() {
    let database = support::fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let file = dir.path().join("enrollments.json");
    std::fs::write(&file, pki.enrollment_steps()[2].to_string()).unwrap();
    let (service, notes) = Service::open(&Options {
        id_scope: "0ne00000001".into(),
        data: dir.path().join("data"),
        enrollments: Some(file),
        database: Some(database),
        signature_memo: attest_service::DEFAULT_SIGNATURE_MEMO,
        snapshot_key: None,
        snapshot_history: attest_service::store::DEFAULT_HISTORY,
        audit: None,
    })
    .unwrap();
    assert!(notes.iter().all(|n| !n.starts_with("ERROR")), "{notes:?}");
    let statuses: Vec<String> = (1..=5)
        .map(|n| {
            let id = format!("device-{n}");
            match service.register(&evidence(&pki, n, n), &id, b"{}") {
                Ok(reply) => reply.body.unwrap()["status"].as_str().unwrap().to_string(),
                Err(e) => e.to_string(),
            }
        })
        .collect();
    assert_eq!(
        statuses,
        ["assigned", "assigned", "disabled", "disabled", "disabled"]
    );
    // A management write is decided at once.
    let put = service.put_enrollment(
        policy_host::EnrollmentKind::Group,
        "line-b",
        &serde_json::json!({"enrollmentGroupId": "line-b", "provisioningStatus": "enabled",
            "attestation": {"type": "x509", "x509": {"signingCertificates": {"primary": {"certificate": pki.line_b.pem}}}}}),
        None,
    );
    assert!(put.is_ok(), "{put:?}");
    let again = service
        .register(&evidence(&pki, 4, 4), "device-4", b"{}")
        .unwrap();
    assert_eq!(again.body.unwrap()["status"], "assigned");
}

/// Issue 18, item 6: whoever holds a disabled CA's key can mint any CN,
/// but the refusals of one deciding entry create at most 100 new records
/// per hour, and no operation; every one of them gets the same answer,
/// recorded or not.
#[test]
fn a_disabled_cas_key_cannot_grow_the_store_without_bound() {
    use rcgen::SigningKey as _;
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let service = open(dir.path(), &pki);
    let disabled_line = pki.issuer_of(4);
    let at = |t| time::OffsetDateTime::from_unix_timestamp(t).unwrap();
    let validity = attest_pki::Validity {
        not_before: at(support::now() - 3_600),
        not_after: at(support::now() + 86_400),
    };
    let mut recorded = 0;
    for i in 0..130 {
        let id = format!("minted-{i}");
        let device = disabled_line
            .device(&id, attest_pki::KeyAlg::P256, validity)
            .unwrap();
        let message = b"TLS 1.3, client CertificateVerify (stand-in content)".to_vec();
        let signature = device.key.sign(&message).unwrap();
        let evidence = DeviceEvidence {
            chain: Some(attest_service::Chain {
                leaf: device.der.clone(),
                intermediates: vec![disabled_line.der.clone()],
            }),
            proof: Some(policy_host::Proof::TlsSignature {
                scheme: 0x0403,
                message,
                signature,
            }),
            ..DeviceEvidence::default()
        };
        let body = service
            .register(&evidence, &id, b"{}")
            .unwrap()
            .body
            .unwrap();
        assert_eq!(body["status"], "disabled", "{id}: {body}");
        let operation = body["operationId"].as_str().unwrap();
        assert!(
            service.operation_status(&evidence, &id, operation).is_err(),
            "{id}: a refusal writes no operation"
        );
        match service.get_registration(&id) {
            Ok(record) => {
                assert_eq!(record.body.unwrap()["status"], "disabled");
                recorded += 1;
            }
            Err(e) => assert_eq!(e.kind, ErrorKind::RegistrationNotFound, "{e}"),
        }
    }
    assert_eq!(
        recorded, 100,
        "new records from one entry's refusals per hour"
    );
    // An admitted device is recorded whatever the refusals did.
    let admitted = service
        .register(&evidence(&pki, 1, 1), "device-1", b"{}")
        .unwrap();
    assert_eq!(admitted.body.unwrap()["status"], "assigned");
    assert!(service.get_registration("device-1").is_ok());
}

/// A writer that takes `budget` bytes, then fails every write (a full disk).
struct Filling {
    budget: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    taken: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl std::io::Write for Filling {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use std::sync::atomic::Ordering;
        let left = self.budget.load(Ordering::SeqCst);
        if buf.len() > left {
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "no space left",
            ));
        }
        self.budget.fetch_sub(buf.len(), Ordering::SeqCst);
        self.taken.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Nothing is acknowledged without its audit line: once the trail cannot
/// be written, an admitted device and an operator's write are answered
/// 503, the service says it is not ready, and it recovers when the trail
/// can be written again (the chain unbroken: no line was half-written).
#[test]
fn no_acknowledgement_without_its_audit_line() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let budget = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
    let taken = std::sync::Arc::default();
    let trail = attest_service::audit::AuditTrail::to_writer(Box::new(Filling {
        budget: std::sync::Arc::clone(&budget),
        taken: std::sync::Arc::clone(&taken),
    }))
    .unwrap();
    let service = open(dir.path(), &pki).with_audit(std::sync::Arc::new(trail));
    assert!(
        service
            .register(&evidence(&pki, 1, 1), "device-1", b"{}")
            .is_ok()
    );
    assert_eq!(service.ready(), Ok(()));

    budget.store(0, Ordering::SeqCst);
    let e = service
        .register(&evidence(&pki, 1, 1), "device-1", b"{}")
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e:?}");
    assert!(e.message.contains("audit trail"), "{e:?}");
    // A refused device is not answered its refusal either.
    let e = service
        .register(&evidence(&pki, 4, 4), "device-4", b"{}")
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e:?}");
    let write = attest_service::audit::ManagementEvent {
        policy: Some("provisioningserviceowner"),
        route: "DELETE /registrations/{id}",
        resource: Some("device-1"),
        status: 204,
        code: None,
        etag_before: None,
        etag_after: None,
        peer: None,
    };
    assert_eq!(
        service.audit_management(&write).unwrap_err().kind,
        ErrorKind::Unavailable
    );
    let not_ready = service.ready().unwrap_err();
    assert!(not_ready.contains("audit trail"), "{not_ready}");

    budget.store(usize::MAX, Ordering::SeqCst);
    assert!(
        service
            .register(&evidence(&pki, 1, 1), "device-1", b"{}")
            .is_ok()
    );
    assert_eq!(service.ready(), Ok(()));
    let bytes = taken.lock().unwrap().clone();
    match attest_service::audit::verify(&bytes[..]).unwrap() {
        attest_service::audit::Verification::Intact { lines, .. } => assert_eq!(lines, 3),
        other => panic!("{other:?}"),
    }
}
