//! What the audit trail costs a registration: `Service::register` (the
//! component's decision with proof of possession, the SQLite record and
//! operation, committed) side by side without a trail, with a file trail
//! (`--audit FILE`), and with the decision refused (a disabled group:
//! trusted, recorded) and audited.
//!
//! ```text
//! cargo bench -p attest-service --bench audit
//! ```
//!
//! Prints criterion's estimates and a last line with the ratios:
//! `ratios: audited_vs_plain=X refused_audited_vs_plain=X`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a bench fails by panicking
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, black_box};
use rcgen::SigningKey as _;

use attest_pki::{Canonical, KeyAlg, Validity};
use attest_service::audit::AuditTrail;
use attest_service::{Chain, DeviceEvidence, Options, Service};

fn pki() -> Canonical {
    let now = time::OffsetDateTime::now_utc();
    let v = Validity {
        not_before: now - time::Duration::days(1),
        not_after: now + time::Duration::days(30),
    };
    Canonical::generate(KeyAlg::P256, v, v).unwrap()
}

fn evidence(pki: &Canonical, n: usize) -> DeviceEvidence {
    let message = b"TLS 1.3, client CertificateVerify (stand-in content)".to_vec();
    let signature = pki.devices[n - 1].key.sign(&message).unwrap();
    DeviceEvidence {
        chain: Some(Chain {
            leaf: pki.devices[n - 1].der.clone(),
            intermediates: vec![pki.issuer_of(n).der.clone()],
        }),
        proof: Some(policy_host::Proof::TlsSignature {
            scheme: 0x0403,
            message,
            signature,
        }),
        ..DeviceEvidence::default()
    }
}

fn service(dir: &std::path::Path, pki: &Canonical, audit: bool) -> Service {
    let file = dir.join("enrollments.json");
    std::fs::write(&file, pki.enrollment_steps()[1].to_string()).unwrap();
    let (service, _) = Service::open(&Options {
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
    if audit {
        let trail = AuditTrail::open(&dir.join("audit.jsonl")).unwrap();
        service.with_audit(Arc::new(trail))
    } else {
        service
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let pki = pki();
    let cases: Vec<_> = [
        ("register/plain", false, 1),
        ("register/audited", true, 1),
        ("register-refused/audited", true, 4),
    ]
    .into_iter()
    .map(|(name, audited, device)| {
        let dir = tempfile::tempdir().unwrap();
        let service = service(dir.path(), &pki, audited);
        (
            name,
            audited,
            dir,
            service,
            evidence(&pki, device),
            format!("device-{device}"),
        )
    })
    .collect();
    // Each call decides afresh: a connection's refusal memo would
    // otherwise answer a refused device from memory.
    let register = |service: &Service, evidence: &DeviceEvidence, id: &str| {
        let e = DeviceEvidence {
            decided: Default::default(),
            ..evidence.clone()
        };
        black_box(service.register(&e, id, b"{}")).ok();
    };
    let mut group = c.benchmark_group("service");
    for (name, _, _, service, evidence, id) in &cases {
        group.bench_function(*name, |b| b.iter(|| register(service, evidence, id)));
    }
    group.finish();
    // The ratios: the three cases interleaved, round by round, so that
    // the machine's drift falls on all of them alike.
    let mut spent = [Duration::ZERO; 3];
    for _ in 0..300 {
        for (i, (_, _, _, service, evidence, id)) in cases.iter().enumerate() {
            let started = std::time::Instant::now();
            register(service, evidence, id);
            spent[i] += started.elapsed();
        }
    }
    for (name, audited, dir, _, _, _) in &cases {
        if *audited {
            let lines = std::fs::read(dir.path().join("audit.jsonl")).unwrap();
            assert!(
                matches!(
                    attest_service::audit::verify(&lines[..]).unwrap(),
                    attest_service::audit::Verification::Intact { .. }
                ),
                "{name}: the trail is broken"
            );
        }
    }
    c.final_summary();
    let ratio = |i: usize| spent[i].as_secs_f64() / spent[0].as_secs_f64();
    println!(
        "ratios: audited_vs_plain={:.3} refused_audited_vs_plain={:.3}",
        ratio(1),
        ratio(2)
    );
}
