//! SPEC §1's canonical scenario, every step, through the native core and
//! the component (the differential harness asserts identical verdicts).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use attest_tests::pki::{Canonical, KeyAlg};
use attest_tests::*;
use policy_host::{Code, EnrollmentKind};

fn scenario(alg: KeyAlg) {
    let pki = Canonical::generate(alg, ca_validity(), device_validity()).unwrap();
    let steps = pki.enrollment_steps();
    let req = |n: usize| {
        request(
            &format!("device-{n}"),
            &pki.devices[n - 1].der,
            &[&pki.issuer_of(n).der],
        )
    };
    // (step, device) -> expected: Ok(group id) or Err(code, enrollment id)
    let expected = |step: usize, n: usize| -> Result<&str, (Code, &str)> {
        match (step, n) {
            (_, 1 | 2) => Ok("all-devices"),
            (0 | 1, 3) => Ok("all-devices"),
            (2, 3) => Err((Code::IndividualEnrollmentDisabled, "device-3")),
            (0, 4 | 5) => Ok("all-devices"),
            (_, _) => Err((Code::EnrollmentGroupDisabled, "line-b")),
        }
    };
    for (step, json) in steps.iter().enumerate() {
        let set = enrollments(json);
        for n in 1..=5 {
            let outcome = resolve(&req(n), &set);
            match (expected(step, n), outcome) {
                (Ok(group), Ok(decision)) => {
                    assert_eq!(decision.enrollment.kind, EnrollmentKind::Group);
                    assert_eq!(decision.enrollment.id, group);
                    assert_eq!(decision.device_id, format!("device-{n}"));
                    assert_eq!(decision.path.len(), 3, "leaf, line CA, root");
                }
                (Err((code, entry)), Err(refusal)) => {
                    assert_eq!(refusal.code, code, "step {step} device {n}: {refusal}");
                    assert_eq!(refusal.enrollment.as_ref().unwrap().id, entry);
                    let position = refusal.certificate.as_ref().unwrap().position;
                    // The refusal names the certificate whose entry decided:
                    // the leaf for device-3, line B's CA for devices 4 and 5.
                    assert_eq!(position, if n == 3 { 0 } else { 1 });
                }
                (want, got) => panic!("step {step} device {n}: wanted {want:?}, got {got:?}"),
            }
            // With a valid proof of possession, attest agrees with resolve.
            let proof = challenge_proof(&format!("device-{n}"), &pki.devices[n - 1].key);
            let attested = attest(&req(n), &proof, &set);
            assert_eq!(attested.is_ok(), expected(step, n).is_ok());
        }
    }
}

#[test]
fn canonical_scenario_p256() {
    scenario(KeyAlg::P256);
}

#[test]
fn canonical_scenario_p384() {
    scenario(KeyAlg::P384);
}

#[test]
fn canonical_scenario_ed25519() {
    scenario(KeyAlg::Ed25519);
}

#[test]
fn canonical_scenario_rsa2048() {
    scenario(KeyAlg::Rsa2048);
}

#[test]
fn a_device_without_its_key_is_refused_before_enrollment_is_revealed() {
    let pki = Canonical::generate(KeyAlg::P256, ca_validity(), device_validity()).unwrap();
    let set = enrollments(&pki.enrollment_steps()[2]);
    // device-3's disabled individual enrollment is not disclosed to a caller
    // that cannot sign with device-3's key.
    let req = request("device-3", &pki.devices[2].der, &[&pki.line_a.der]);
    let wrong_key = challenge_proof("device-3", &pki.devices[0].key);
    let refusal = attest(&req, &wrong_key, &set).unwrap_err();
    assert_eq!(refusal.code, Code::ProofOfPossessionFailed);
    assert!(refusal.enrollment.is_none());
    // A signature for another registration ID does not transfer.
    let req1 = request("device-1", &pki.devices[0].der, &[&pki.line_a.der]);
    let for_other_id = challenge_proof("device-2", &pki.devices[0].key);
    assert_eq!(
        attest(&req1, &for_other_id, &set).unwrap_err().code,
        Code::ProofOfPossessionFailed
    );
}

#[test]
fn group_on_an_intermediate_is_its_own_trust_anchor() {
    // Only line A is enrolled (no root group): line A's CA anchors the path.
    let pki = Canonical::generate(KeyAlg::P256, ca_validity(), device_validity()).unwrap();
    let set = enrollments(&serde_json::json!({
        "enrollmentGroups": [group_json("line-a", &pki.line_a.pem, true)]
    }));
    let d = resolve(
        &request("device-2", &pki.devices[1].der, &[&pki.line_a.der]),
        &set,
    )
    .unwrap();
    assert_eq!(d.enrollment.id, "line-a");
    assert_eq!(d.path.len(), 2);
    // Device 4 (line B) has no enrollment anywhere in its chain and no anchor.
    let r = resolve(
        &request("device-4", &pki.devices[3].der, &[&pki.line_b.der]),
        &set,
    )
    .unwrap_err();
    assert_eq!(r.code, Code::UnknownIssuer);
}

#[test]
fn no_enrollment_for_a_valid_chain() {
    // The root is trusted (a verified CA) but no entry covers the chain.
    let pki = Canonical::generate(KeyAlg::P256, ca_validity(), device_validity()).unwrap();
    let mut set = attest_dps::EnrollmentSet::from_json("{}").unwrap();
    set.add_anchor(pki.root.der.clone()).unwrap();
    let set = std::sync::Arc::new(set);
    let r = resolve(
        &request("device-1", &pki.devices[0].der, &[&pki.line_a.der]),
        &set,
    )
    .unwrap_err();
    assert_eq!(r.code, Code::NoEnrollment);
}
