//! Edge snapshots as a gateway reads them: any bytes, and any mutation of
//! a valid signed snapshot, are refused with an error (never a panic or a
//! hang) and leave the replica as it was; only the snapshot the service
//! signed applies.
#![no_main]

use std::sync::OnceLock;

use attest_service::replica::Replica;
use attest_service::snapshot::TrustKey;

struct Fixture {
    _dir: tempfile::TempDir,
    replica: Replica,
    key: TrustKey,
    valid: Vec<u8>,
    now: i64,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let (service, _) = attest_service::Service::open(&attest_service::Options {
            id_scope: "0ne00000001".into(),
            data: dir.path().join("data"),
            enrollments: None,
            database: None,
            signature_memo: 0,
            snapshot_key: None,
            snapshot_history: 100_000,
            audit: None,
        })
        .expect("service");
        let doc = serde_json::json!({"registrationId": "device-1", "provisioningStatus": "disabled",
            "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": "MAo="}}}}});
        let _ = service.put_enrollment(policy_host::EnrollmentKind::Individual, "device-1", &doc, None);
        let mut valid = Vec::new();
        service
            .snapshot(None)
            .expect("snapshot")
            .write(&mut |chunk| {
                valid.extend_from_slice(&chunk);
                Ok(())
            })
            .expect("write");
        let key = attest_service::snapshot::SigningKey::load(
            &attest_service::Service::snapshot_key_path(&dir.path().join("data")),
        )
        .expect("key");
        let key = TrustKey::from_pem(key.public_pem().as_bytes()).expect("trust key");
        let replica = Replica::open(&dir.path().join("gateway")).expect("replica");
        Fixture {
            _dir: dir,
            replica,
            key,
            valid,
            now: attest_service::now_unix(),
        }
    })
}

// The fixture (a PKI, a store, the policy component) is built before the
// first input, so its set-up never counts against an input's timeout.
libfuzzer_sys::fuzz_target!(init: { fixture(); }, |data: &[u8]| {
    let f = fixture();
    let before = f.replica.state().expect("state");
    // The input as a snapshot: the fuzzer cannot forge Ed25519.
    assert!(f.replica.apply(&mut &data[..], &f.key, f.now).is_err());
    assert_eq!(f.replica.state().expect("state"), before);
    // The input as edits of the valid snapshot: (position, xor) triples.
    let mut edited = f.valid.clone();
    for e in data.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([e[0], e[1]])) % edited.len();
        edited[at] ^= e[2];
    }
    let applied = f.replica.apply(&mut &edited[..], &f.key, f.now);
    if edited != f.valid {
        assert!(applied.is_err(), "an altered snapshot applied");
        assert_eq!(f.replica.state().expect("state"), before);
    } else {
        assert!(
            applied.is_ok(),
            "the signed snapshot was refused: {applied:?}"
        );
    }
});
