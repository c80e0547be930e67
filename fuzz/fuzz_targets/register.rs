//! The service's HTTP request handling (`host_http::Harness`: the real
//! routing, limits, device and management APIs, store and policy, without
//! the network). The input is raw HTTP/1.1 bytes, served with device-4's
//! valid TLS evidence; every answer must be well-formed and below 500, and
//! device-1's record must never change.
#![no_main]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use host_http::{Evidence, Harness};
use rcgen::SigningKey as _;

struct Fixture {
    harness: Harness,
    runtime: tokio::runtime::Runtime,
    /// Device-4's evidence: every fuzz input is served with it.
    evidence: Evidence,
    /// Device-1's, to read its record through the status route.
    owner: Evidence,
    record: String,
    runs: AtomicUsize,
    _dir: tempfile::TempDir,
}

/// Device-1's registration record, as its status route shows it to device-1.
fn record(harness: &Harness, runtime: &tokio::runtime::Runtime, owner: &Evidence) -> String {
    let answer = runtime.block_on(harness.serve(
        b"POST /0ne00000001/registrations/device-1 HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n",
        owner.clone(),
    ));
    let text = String::from_utf8_lossy(&answer);
    // The body: everything after the blank line.
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        let v = attest_pki::Validity {
            not_before: time_of(now - 86_400),
            not_after: time_of(now + 30 * 86_400),
        };
        let pki = attest_pki::Canonical::generate(attest_pki::KeyAlg::P256, v, v)
            .expect("PKI");
        let file = dir.path().join("enrollments.json");
        std::fs::write(&file, pki.enrollment_steps()[1].to_string()).expect("write");
        let harness = Harness::new(&host_http::Options {
            listen: "127.0.0.1:0".parse().expect("address"),
            database: None,
            signature_memo: host_http::DEFAULT_SIGNATURE_MEMO,
            mqtt_listen: None,
            id_scope: "0ne00000001".into(),
            data: dir.path().join("data"),
            tls_cert: None,
            tls_key: None,
            enrollments: Some(file),
            idle_timeout: host_http::DEFAULT_IDLE_TIMEOUT_SECONDS,
            snapshot_key: None,
            snapshot_history: 100_000,
            audit: None,
            metrics_listen: None,
        })
        .expect("harness");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let evidence = |n: usize| {
            let message = b"TLS 1.3, client CertificateVerify (stand-in content)".to_vec();
            let signature = pki.devices[n - 1].key.sign(&message).expect("sign");
            Evidence {
                chain: Some(host_http::EvidenceChain {
                    leaf: pki.devices[n - 1].der.clone(),
                    intermediates: vec![pki.issuer_of(n).der.clone()],
                }),
                proof: Some(policy_host::Proof::TlsSignature { scheme: 0x0403, message, signature }),
                ..Evidence::default()
            }
        };
        let first = runtime.block_on(harness.serve(
            b"PUT /0ne00000001/registrations/device-1/register HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}",
            evidence(1),
        ));
        assert!(first.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&first));
        let owner = evidence(1);
        let record = record(&harness, &runtime, &owner);
        assert!(record.contains("\"assigned\""), "{record}");
        Fixture {
            harness,
            runtime,
            evidence: evidence(4),
            owner,
            record,
            runs: AtomicUsize::new(0),
            _dir: dir,
        }
    })
}

fn time_of(unix: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(unix).expect("time")
}

// The fixture (a PKI, a store, the policy component) is built before the
// first input, so its set-up never counts against an input's timeout.
libfuzzer_sys::fuzz_target!(init: { fixture(); }, |data: &[u8]| {
    let f = fixture();
    let answer = f
        .runtime
        .block_on(f.harness.serve(data, f.evidence.clone()));
    if !answer.is_empty() {
        let text = String::from_utf8_lossy(&answer);
        // hyper answers in the request's version (HTTP/1.0 or 1.1).
        assert!(
            text.starts_with("HTTP/1.1 ") || text.starts_with("HTTP/1.0 "),
            "{text}"
        );
        let status: u16 = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!((200..500).contains(&status), "{status}: {text}");
    }
    // Every 16th input: device-1's record is still what device-1 wrote.
    if f.runs.fetch_add(1, Ordering::Relaxed) % 16 == 0 {
        assert_eq!(
            record(&f.harness, &f.runtime, &f.owner),
            f.record,
            "device-1's record changed"
        );
    }
});
