//! The service's request handling under mutated requests (a structured
//! mutation harness over `host_http::Harness`: the real routing, limits,
//! device and management APIs, store and policy, without the network).
//! Every answer is well-formed HTTP and never a 5xx, and no request whose
//! TLS evidence is not device-1's may change device-1's record. The
//! coverage-guided `register` fuzz target (`fuzz/run.sh --service`) explores
//! further.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod support;

use attest_tests::Rng;
use host_http::{Evidence, Harness};
use rcgen::SigningKey as _;
use support::{SCOPE, canonical};

const PIECES: &[&[u8]] = &[
    b"PUT ",
    b"GET ",
    b"POST ",
    b"DELETE ",
    b"/register",
    b"/operations/",
    b"/registrations/",
    b"device-1",
    b"DEVICE-1",
    b"%2e%2e",
    b"%00",
    b"..",
    b"//",
    b"?api-version=2021-06-01",
    b"\r\n",
    b"\r\n\r\n",
    b"content-length: 99999999\r\n",
    b"transfer-encoding: chunked\r\n",
    b"0\r\n\r\n",
    b"{\"registrationId\":",
    b"\"payload\":{}",
    b"null",
    b"[]",
    b"\xff\xfe",
    b"authorization: SharedAccessSignature sr=a&sig=b&se=9999999999&skn=x\r\n",
    b"/enrollmentGroups/",
    b"/enrollments/query",
    b"/certificates/x/verify",
];

fn mutate(rng: &mut Rng, request: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(request.len() + 1);
        match rng.below(5) {
            0 if at < request.len() => request[at] = rng.next_u64() as u8,
            1 => request.truncate(at),
            2 => {
                let piece = PIECES[rng.below(PIECES.len())];
                request.splice(at..at, piece.iter().copied());
            }
            3 if at < request.len() => {
                let end = (at + 1 + rng.below(16)).min(request.len());
                request.drain(at..end);
            }
            _ => {
                let copy = request[at..].to_vec();
                request.extend_from_slice(&copy[..copy.len().min(64)]);
            }
        }
    }
}

#[test]
fn mutated_requests_never_crash_or_touch_another_devices_record() {
    let dir = tempfile::tempdir().unwrap();
    let pki = canonical();
    let file = dir.path().join("enrollments.json");
    std::fs::write(&file, pki.enrollment_steps()[1].to_string()).unwrap();
    let harness = Harness::new(&support::options(&dir.path().join("data"), Some(&file))).unwrap();
    let evidence = |n: usize| {
        let message = b"TLS 1.3, client CertificateVerify (stand-in content)".to_vec();
        let signature = pki.devices[n - 1].key.sign(&message).unwrap();
        Evidence {
            chain: Some(host_http::EvidenceChain {
                leaf: pki.devices[n - 1].der.clone(),
                intermediates: vec![pki.issuer_of(n).der.clone()],
            }),
            proof: Some(policy_host::Proof::TlsSignature {
                scheme: 0x0403,
                message,
                signature,
            }),
            ..Evidence::default()
        }
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let record = || {
        let db = rusqlite::Connection::open(dir.path().join("data/attest.db")).unwrap();
        db.query_row(
            "SELECT doc FROM registrations WHERE id = 'device-1'",
            [],
            |r| r.get::<_, String>(0),
        )
        .unwrap()
    };
    let register = |id: &str| {
        let body = format!("{{\"registrationId\":\"{id}\"}}");
        format!(
            "PUT /{SCOPE}/registrations/{id}/register?api-version=2021-06-01 HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    let first = runtime.block_on(harness.serve(&register("device-1"), evidence(1)));
    assert!(
        first.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first)
    );
    let before = record();

    let seeds: Vec<Vec<u8>> = vec![
        register("device-1"),
        register("device-4"),
        format!(
            "POST /{SCOPE}/registrations/device-1 HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n"
        )
        .into_bytes(),
        format!("GET /{SCOPE}/registrations/device-1/operations/abc HTTP/1.1\r\nhost: x\r\n\r\n")
            .into_bytes(),
        b"PUT /enrollmentGroups/g HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}".to_vec(),
    ];
    let mut rng = Rng(0x5e41_ce00_0001);
    let mut served = 0;
    for round in 0..600 {
        let mut request = seeds[rng.below(seeds.len())].clone();
        mutate(&mut rng, &mut request);
        // Device-4's own evidence, or none: never device-1's.
        let who = if rng.below(2) == 0 {
            evidence(4)
        } else {
            Evidence::default()
        };
        let answer = runtime.block_on(harness.serve(&request, who));
        if answer.is_empty() {
            continue; // hyper closed an unparsable request without answering
        }
        let text = String::from_utf8_lossy(&answer);
        // hyper answers in the request's version (HTTP/1.0 or 1.1).
        assert!(
            text.starts_with("HTTP/1.1 ") || text.starts_with("HTTP/1.0 "),
            "round {round}: {text}"
        );
        let status: u16 = text[9..12].parse().unwrap_or(0);
        assert!(
            (200..500).contains(&status),
            "round {round}: {status} for {:?}: {text}",
            String::from_utf8_lossy(&request)
        );
        served += 1;
    }
    assert!(served > 300, "{served} answered");
    assert_eq!(record(), before, "device-1's record is untouched");
}
