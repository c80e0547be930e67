//! Hostile and malformed inputs: every one gets a refusal (never a trap,
//! panic or hang), and the native core and the component agree on it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use attest_tests::pki::{Canonical, KeyAlg};
use attest_tests::*;
use policy_host::Code;

#[test]
fn every_truncation_and_bit_flip_of_a_chain_is_refused_identically() {
    let pki = Canonical::generate(KeyAlg::P256, ca_validity(), device_validity()).unwrap();
    let leaf = &pki.devices[0].der;
    let set = enrollments(&pki.enrollment_steps()[0]);
    let mut refusals = 0;
    // Every truncation of the leaf.
    for len in 0..leaf.len() {
        let req = request("device-1", &leaf[..len], &[&pki.line_a.der]);
        assert!(resolve(&req, &set).is_err(), "truncated to {len} accepted");
        refusals += 1;
    }
    // A bit flip in every byte of the intermediate (stride keeps it quick).
    for i in (0..pki.line_a.der.len()).step_by(3) {
        let mut bad = pki.line_a.der.clone();
        bad[i] ^= 0x10;
        let req = request("device-1", leaf, &[&bad]);
        // Some flips land in ignored fields; the harness still asserts both
        // paths agree, and most are refused.
        if resolve(&req, &set).is_err() {
            refusals += 1;
        }
    }
    assert!(refusals > leaf.len());
}

#[test]
fn garbage_inputs_are_refusals_not_traps() {
    let set = enrollments(&serde_json::json!({}));
    for garbage in [
        vec![],
        vec![0u8; 1],
        vec![0x30, 0x82, 0xff, 0xff],
        vec![0x30; 20_000],
        b"-----BEGIN CERTIFICATE-----".to_vec(),
    ] {
        let r = resolve(&request("device-1", &garbage, &[]), &set).unwrap_err();
        assert!(
            matches!(r.code, Code::MalformedCertificate | Code::InputTooLarge),
            "{r}"
        );
        let r = validate_chain(&chain_request(&garbage, &[], &[&garbage])).unwrap_err();
        assert!(
            matches!(r.code, Code::MalformedCertificate | Code::InputTooLarge),
            "{r}"
        );
    }
}

#[test]
fn fifty_certificate_chain_is_refused_quickly() {
    // A real 50-deep chain: each CA issues the next.
    let cas = pki::ca_line(50, KeyAlg::P256, ca_validity()).unwrap();
    let leaf = cas[49]
        .device("deep-leaf", KeyAlg::P256, device_validity())
        .unwrap();
    let all: Vec<&[u8]> = cas.iter().rev().map(|c| c.der.as_slice()).collect();
    // Within the input limit but deeper than a path may be.
    for some in [&all[..], &all[..20]] {
        let r = validate_chain(&chain_request(&leaf.der, some, &[&cas[0].der])).unwrap_err();
        assert!(
            matches!(r.code, Code::PathBudgetExceeded | Code::UnknownIssuer),
            "{r}"
        );
    }
    // More intermediates than the input limit: refused before parsing.
    let flood = vec![cas[1].der.as_slice(); policy_core::MAX_INTERMEDIATES + 1];
    let r = validate_chain(&chain_request(&leaf.der, &flood, &[&cas[0].der])).unwrap_err();
    assert_eq!(r.code, Code::InputTooLarge);
}

/// Issue 18, item 3: the pool was configured and reported as 128
/// concurrent calls but held 42 (one component instance is three core
/// instances). Every one of `max_concurrent_calls` calls must get a
/// sandbox at once, and the next one must be told the pool is busy.
#[test]
fn the_sandbox_pool_holds_as_many_calls_as_it_reports() {
    use policy_host::{EnrollmentGroup, EnrollmentSource, HostError, IndividualEnrollment};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    /// Holds every call inside its first lookup until all have arrived,
    /// counting those inside.
    /// (barrier, calls inside, calls told busy)
    struct Gate(Barrier, AtomicUsize, AtomicUsize);
    impl EnrollmentSource for Gate {
        fn individual(&self, _: &str) -> Option<IndividualEnrollment> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.wait();
            None
        }
        fn group(&self, _: &[u8; 32]) -> Option<EnrollmentGroup> {
            None
        }
        fn trust_anchors(&self, _: &[u8; 32]) -> Vec<Vec<u8>> {
            Vec::new()
        }
    }

    let calls = 128;
    let policy = Arc::new(
        policy_host::Policy::with_options(
            policy_host::Limits {
                max_concurrent_calls: calls,
                deadline: None,
                ..policy_host::Limits::default()
            },
            policy_host::CacheMode::Disabled,
        )
        .unwrap(),
    );
    let pki = Canonical::generate(KeyAlg::P256, ca_validity(), device_validity()).unwrap();
    let req = Arc::new(request("device-1", &pki.devices[0].der, &[&pki.line_a.der]));
    // calls + 1 parties: the calls in their lookups, and this thread,
    // which makes one more call while they are all held.
    let gate = Arc::new(Gate(
        Barrier::new(calls as usize + 1),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    ));
    let threads: Vec<_> = (0..calls)
        .map(|_| {
            let (policy, req, gate) = (Arc::clone(&policy), Arc::clone(&req), Arc::clone(&gate));
            std::thread::spawn(move || {
                let answer = policy.resolve(&req, Arc::clone(&gate) as _);
                // A call refused a sandbox never reached the gate: arrive
                // for it, so that a pool too small fails the test, not hangs it.
                if matches!(answer, Err(HostError::Busy(_))) {
                    gate.2.fetch_add(1, Ordering::SeqCst);
                    gate.0.wait();
                }
                answer
            })
        })
        .collect();
    // Wait until all `calls` are inside the sandbox (or one of them was
    // told the pool is busy, which fails below); then an extra call is busy.
    // The extra call is made only then, so that it never takes a sandbox
    // one of the `calls` needed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let waiting = || gate.1.load(Ordering::SeqCst) + gate.2.load(Ordering::SeqCst);
    while waiting() < calls as usize {
        assert!(
            std::time::Instant::now() < deadline,
            "the calls never arrived"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let extra = (gate.2.load(Ordering::SeqCst) == 0)
        .then(|| policy.resolve(&req, Arc::new(policy_host::NoEnrollments)));
    gate.0.wait();
    for t in threads {
        let answer = t.join().unwrap();
        assert!(
            answer.is_ok(),
            "a call within the pool's size failed: {answer:?}"
        );
    }
    match extra {
        Some(Err(HostError::Busy(n))) => assert_eq!(n, calls),
        other => panic!("with {calls} calls held, one more was served: {other:?}"),
    }
}
