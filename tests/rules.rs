//! One accepting and one refusing case per path-validation and resolution
//! rule, through the differential harness. Certificates are generated here
//! at the fixed validation time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use attest_tests::pki::{Ca, Device, KeyAlg, ca_params, device_params};
use attest_tests::*;
use policy_host::{Code, Proof, Purpose};
use rcgen::{CustomExtension, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose};

fn root() -> Ca {
    Ca::root("Rules Root", KeyAlg::P256, ca_validity()).unwrap()
}

fn refused(request: &policy_host::ChainRequest) -> Code {
    validate_chain(request).unwrap_err().code
}

#[test]
fn validity_bounds_are_inclusive_to_the_second() {
    let root = root();
    let nb = VALIDATION_TIME - 100;
    let na = VALIDATION_TIME + 100;
    let leaf = root.device("d", KeyAlg::P256, validity(nb, na)).unwrap();
    let mut req = chain_request(&leaf.der, &[], &[&root.der]);
    for t in [nb, na] {
        req.time = t;
        assert!(validate_chain(&req).is_ok(), "at {t}");
    }
    req.time = na + 1;
    assert_eq!(refused(&req), Code::CertificateExpired);
    req.time = nb - 1;
    assert_eq!(refused(&req), Code::CertificateNotYetValid);
}

#[test]
fn expired_intermediate_is_named() {
    let root = root();
    let old = root
        .intermediate(
            "Old CA",
            KeyAlg::P256,
            validity(VALIDATION_TIME - 1000, VALIDATION_TIME - 1),
        )
        .unwrap();
    let leaf = old.device("d", KeyAlg::P256, device_validity()).unwrap();
    let r = validate_chain(&chain_request(&leaf.der, &[&old.der], &[&root.der])).unwrap_err();
    assert_eq!(r.code, Code::CertificateExpired);
    let c = r.certificate.unwrap();
    assert_eq!((c.position, c.subject.as_str()), (1, "CN=Old CA"));
}

#[test]
fn issuer_must_be_a_ca() {
    let root = root();
    let mut params = ca_params("Not A CA", ca_validity(), None);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let not_ca = root
        .issue_ca(params, KeyAlg::P256.generate().unwrap())
        .unwrap();
    let leaf = not_ca.device("d", KeyAlg::P256, device_validity()).unwrap();
    assert_eq!(
        refused(&chain_request(&leaf.der, &[&not_ca.der], &[&root.der])),
        Code::IssuerNotCa
    );
    let ca = root
        .intermediate("A CA", KeyAlg::P256, ca_validity())
        .unwrap();
    let leaf = ca.device("d", KeyAlg::P256, device_validity()).unwrap();
    assert!(validate_chain(&chain_request(&leaf.der, &[&ca.der], &[&root.der])).is_ok());
}

#[test]
fn path_length_constraint() {
    let params = ca_params("Root pathlen 0", ca_validity(), Some(0));
    let root0 = Ca::self_signed(params, KeyAlg::P256.generate().unwrap()).unwrap();
    let sub = root0
        .intermediate("Sub", KeyAlg::P256, ca_validity())
        .unwrap();
    let leaf = sub.device("d", KeyAlg::P256, device_validity()).unwrap();
    assert_eq!(
        refused(&chain_request(&leaf.der, &[&sub.der], &[&root0.der])),
        Code::PathLengthExceeded
    );
    // Directly under the pathLen-0 root is fine.
    let direct = root0.device("d", KeyAlg::P256, device_validity()).unwrap();
    assert!(validate_chain(&chain_request(&direct.der, &[], &[&root0.der])).is_ok());
    let params = ca_params("Root pathlen 1", ca_validity(), Some(1));
    let root1 = Ca::self_signed(params, KeyAlg::P256.generate().unwrap()).unwrap();
    let sub = root1
        .intermediate("Sub", KeyAlg::P256, ca_validity())
        .unwrap();
    let leaf = sub.device("d", KeyAlg::P256, device_validity()).unwrap();
    assert!(validate_chain(&chain_request(&leaf.der, &[&sub.der], &[&root1.der])).is_ok());
}

#[test]
fn issuer_key_usage_needs_key_cert_sign() {
    let root = root();
    let mut params = ca_params("CRL only", ca_validity(), None);
    params.key_usages = vec![KeyUsagePurpose::CrlSign];
    let ca = root
        .issue_ca(params, KeyAlg::P256.generate().unwrap())
        .unwrap();
    let leaf = ca.device("d", KeyAlg::P256, device_validity()).unwrap();
    assert_eq!(
        refused(&chain_request(&leaf.der, &[&ca.der], &[&root.der])),
        Code::MissingKeyCertSign
    );
}

#[test]
fn leaf_key_usage() {
    let root = root();
    let mut params = device_params("d", device_validity());
    params.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
    let leaf = root
        .issue_device(params, KeyAlg::P256.generate().unwrap(), "d")
        .unwrap();
    assert_eq!(
        refused(&chain_request(&leaf.der, &[], &[&root.der])),
        Code::MissingDigitalSignature
    );
    let mut params = device_params("d", device_validity());
    params.key_usages = vec![];
    let no_ku = root
        .issue_device(params, KeyAlg::P256.generate().unwrap(), "d")
        .unwrap();
    assert!(validate_chain(&chain_request(&no_ku.der, &[], &[&root.der])).is_ok());
}

#[test]
fn extended_key_usage_purpose() {
    let root = root();
    let mut params = device_params("d", device_validity());
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = root
        .issue_device(params, KeyAlg::P256.generate().unwrap(), "d")
        .unwrap();
    let mut req = chain_request(&server.der, &[], &[&root.der]);
    assert_eq!(refused(&req), Code::ExtendedKeyUsageNotPermitted);
    req.purpose = Purpose::ServerAuth;
    assert!(validate_chain(&req).is_ok());
    req.purpose = Purpose::Any;
    assert!(validate_chain(&req).is_ok());
}

#[test]
fn ca_as_leaf_is_refused() {
    let root = root();
    let ca = root
        .intermediate("CA", KeyAlg::P256, ca_validity())
        .unwrap();
    assert_eq!(
        refused(&chain_request(&ca.der, &[], &[&root.der])),
        Code::CaUsedAsEndEntity
    );
}

#[test]
fn unknown_critical_extension_is_refused() {
    let root = root();
    let mut params = device_params("d", device_validity());
    let mut ext =
        CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![0x05, 0x00]);
    ext.set_criticality(true);
    params.custom_extensions = vec![ext];
    let leaf = root
        .issue_device(params, KeyAlg::P256.generate().unwrap(), "d")
        .unwrap();
    assert_eq!(
        refused(&chain_request(&leaf.der, &[], &[&root.der])),
        Code::UnknownCriticalExtension
    );
    // The same extension, not critical, is ignored.
    let mut params = device_params("d", device_validity());
    params.custom_extensions = vec![CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 4, 1, 99999, 1],
        vec![0x05, 0x00],
    )];
    let leaf = root
        .issue_device(params, KeyAlg::P256.generate().unwrap(), "d")
        .unwrap();
    assert!(validate_chain(&chain_request(&leaf.der, &[], &[&root.der])).is_ok());
}

#[test]
fn tampered_signature_is_refused() {
    let root = root();
    let leaf = root.device("d", KeyAlg::P256, device_validity()).unwrap();
    let mut der = leaf.der.clone();
    let last = der.len() - 5;
    der[last] ^= 0x01;
    let code = refused(&chain_request(&der, &[], &[&root.der]));
    assert!(
        matches!(code, Code::BadSignature | Code::MalformedCertificate),
        "{code}"
    );
    // Signed by a different key with the same issuer name.
    let impostor = Ca::root("Rules Root", KeyAlg::P256, ca_validity()).unwrap();
    let forged = impostor
        .device("d", KeyAlg::P256, device_validity())
        .unwrap();
    assert_eq!(
        refused(&chain_request(&forged.der, &[], &[&root.der])),
        Code::BadSignature
    );
}

#[test]
fn algorithms_mixed_along_the_path() {
    let root = Ca::root("RSA root", KeyAlg::Rsa2048, ca_validity()).unwrap();
    let mid = root
        .intermediate("P-384 CA", KeyAlg::P384, ca_validity())
        .unwrap();
    let low = mid
        .intermediate("Ed25519 CA", KeyAlg::Ed25519, ca_validity())
        .unwrap();
    let leaf = low.device("d", KeyAlg::P256, device_validity()).unwrap();
    let path = validate_chain(&chain_request(
        &leaf.der,
        &[&low.der, &mid.der],
        &[&root.der],
    ))
    .unwrap();
    assert_eq!(path.len(), 4);
}

#[test]
fn intermediates_in_any_order_with_extras() {
    let root = root();
    let a = root
        .intermediate("Factory", KeyAlg::P256, ca_validity())
        .unwrap();
    let b = a.intermediate("Line", KeyAlg::P256, ca_validity()).unwrap();
    let unrelated = root
        .intermediate("Unrelated", KeyAlg::P256, ca_validity())
        .unwrap();
    let leaf = b.device("d", KeyAlg::P256, device_validity()).unwrap();
    let path = validate_chain(&chain_request(
        &leaf.der,
        &[&unrelated.der, &a.der, &b.der],
        &[&root.der],
    ))
    .unwrap();
    let names: Vec<_> = path.iter().map(|c| c.subject.as_str()).collect();
    assert_eq!(names, ["CN=d", "CN=Line", "CN=Factory", "CN=Rules Root"]);
}

#[test]
fn backtracks_past_a_failing_candidate_issuer() {
    // Two CAs named "Line" with different keys: the first presented one is
    // expired (and did not sign the leaf); the search must move on.
    let root = root();
    let line_key = KeyAlg::P256.generate().unwrap();
    let good = root
        .issue_ca(ca_params("Line", ca_validity(), None), line_key)
        .unwrap();
    let expired = root
        .intermediate(
            "Line",
            KeyAlg::P256,
            validity(VALIDATION_TIME - 1000, VALIDATION_TIME - 1),
        )
        .unwrap();
    let leaf = good.device("d", KeyAlg::P256, device_validity()).unwrap();
    assert!(
        validate_chain(&chain_request(
            &leaf.der,
            &[&expired.der, &good.der],
            &[&root.der]
        ))
        .is_ok()
    );
    // With only the expired candidate, the refusal is the most specific one.
    let r = validate_chain(&chain_request(&leaf.der, &[&expired.der], &[&root.der])).unwrap_err();
    assert_eq!(r.code, Code::CertificateExpired);
}

#[test]
fn intermediate_loop_terminates() {
    // X and Y issue each other; neither reaches an anchor.
    let x_key = KeyAlg::P256.generate().unwrap();
    let y_key = KeyAlg::P256.generate().unwrap();
    let x_self = Ca::self_signed(ca_params("X", ca_validity(), None), x_key).unwrap();
    let y = x_self
        .issue_ca(ca_params("Y", ca_validity(), None), y_key)
        .unwrap();
    let x_by_y = y
        .issue_ca(
            ca_params("X", ca_validity(), None),
            rcgen::KeyPair::from_pem(&x_self.key.serialize_pem()).unwrap(),
        )
        .unwrap();
    let leaf = y.device("d", KeyAlg::P256, device_validity()).unwrap();
    let other_root = root();
    let r = validate_chain(&chain_request(
        &leaf.der,
        &[&y.der, &x_by_y.der],
        &[&other_root.der],
    ))
    .unwrap_err();
    assert_eq!(r.code, Code::UnknownIssuer);
}

#[test]
fn many_candidates_stay_within_budget() {
    // 32 presented CAs all named like the leaf's issuer, none of them its
    // signer: bounded work, a clear refusal, no hang; with the real issuer
    // among them the path is found (the budget, not a count, bounds work).
    let root = root();
    let real = root
        .intermediate("Busy", KeyAlg::P256, ca_validity())
        .unwrap();
    let leaf = real.device("d", KeyAlg::P256, device_validity()).unwrap();
    let decoys: Vec<Ca> = (0..32)
        .map(|_| {
            root.intermediate("Busy", KeyAlg::P256, ca_validity())
                .unwrap()
        })
        .collect();
    let refs: Vec<&[u8]> = decoys.iter().map(|c| c.der.as_slice()).collect();
    let code = refused(&chain_request(&leaf.der, &refs, &[&root.der]));
    assert!(
        matches!(code, Code::BadSignature | Code::PathBudgetExceeded),
        "{code}"
    );
    let mut with_real = refs.clone();
    with_real.push(&real.der);
    assert!(validate_chain(&chain_request(&leaf.der, &with_real, &[&root.der])).is_ok());
    let too_many = vec![real.der.as_slice(); policy_core::MAX_INTERMEDIATES + 1];
    assert_eq!(
        refused(&chain_request(&leaf.der, &too_many, &[&root.der])),
        Code::InputTooLarge
    );
}

/// Counts the signature checks of each algorithm and answers like aws-lc-rs.
#[derive(Default)]
struct Counting(
    std::sync::Mutex<std::collections::HashMap<policy_host::SignatureAlgorithm, usize>>,
);

impl policy_host::SignatureVerifier for Counting {
    fn verify_signature(
        &self,
        algorithm: policy_host::SignatureAlgorithm,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        *self.0.lock().unwrap().entry(algorithm).or_default() += 1;
        policy_host::AwsLcVerifier.verify_signature(algorithm, public_key, message, signature)
    }
}

/// The signature budget is a cost, not a count: look-alike issuers with
/// expensive keys buy as much arithmetic as cheap ones, never more. 40
/// P-256 decoys are all checked (160 of 400 units); of 40 P-521 decoys
/// (27 units each) at most 14 are, and the answer is `path-budget-exceeded`
/// — the same answer as from the component.
#[test]
fn the_signature_budget_weighs_each_check_by_its_cost() {
    use policy_host::SignatureAlgorithm as A;
    let root = root();
    for (alg, checked, max) in [
        (KeyAlg::P256, A::EcdsaP256Sha256, 40),
        (KeyAlg::P521, A::EcdsaP521Sha512, 14),
    ] {
        let decoys: Vec<Ca> = (0..40)
            .map(|_| root.intermediate("Twin", alg, ca_validity()).unwrap())
            .collect();
        let real = root.intermediate("Twin", alg, ca_validity()).unwrap();
        let leaf = real.device("d", KeyAlg::P256, device_validity()).unwrap();
        let refs: Vec<&[u8]> = decoys.iter().map(|c| c.der.as_slice()).collect();
        let request = chain_request(&leaf.der, &refs, &[&root.der]);
        let counting = Counting::default();
        let native = policy_core::validate_chain(&request, &counting);
        assert_eq!(
            native,
            validate_chain(&request),
            "native and component agree"
        );
        let counts = counting.0.into_inner().unwrap();
        assert_eq!(
            counts.get(&checked).copied().unwrap_or(0),
            max,
            "{alg:?}: {counts:?}"
        );
        let code = native.unwrap_err().code;
        if alg == KeyAlg::P521 {
            assert_eq!(code, Code::PathBudgetExceeded);
        } else {
            assert_eq!(code, Code::BadSignature);
        }
    }
}

#[test]
fn individual_enrollment_with_a_self_signed_device_certificate() {
    let device = Device::self_signed("sensor-7", KeyAlg::P256, device_validity()).unwrap();
    let set = enrollments(&serde_json::json!({
        "individualEnrollments": [individual_json("sensor-7", &device.pem, true)]
    }));
    let req = request("sensor-7", &device.der, &[]);
    let d = attest(&req, &challenge_proof("sensor-7", &device.key), &set).unwrap();
    assert_eq!(d.enrollment.kind, policy_host::EnrollmentKind::Individual);
    assert_eq!(d.path.len(), 1);
    // A different certificate claiming the same registration ID is refused.
    let other = Device::self_signed("sensor-7", KeyAlg::P256, device_validity()).unwrap();
    let r = resolve(&request("sensor-7", &other.der, &[]), &set).unwrap_err();
    assert_eq!(r.code, Code::IndividualCertificateMismatch);
    // Its validity still applies.
    let mut late = req.clone();
    late.time = VALIDATION_TIME + 10 * 365 * 86400;
    assert_eq!(
        resolve(&late, &set).unwrap_err().code,
        Code::CertificateExpired
    );
}

#[test]
fn registration_id_must_match_the_leaf() {
    let device = Device::self_signed("sensor-7", KeyAlg::P256, device_validity()).unwrap();
    let set = enrollments(&serde_json::json!({}));
    assert_eq!(
        resolve(&request("sensor-8", &device.der, &[]), &set)
            .unwrap_err()
            .code,
        Code::RegistrationIdMismatch
    );
    assert_eq!(
        resolve(&request("sensor 7!", &device.der, &[]), &set)
            .unwrap_err()
            .code,
        Code::InvalidRegistrationId
    );
    // Case-insensitive, as DPS.
    let set = enrollments(&serde_json::json!({
        "individualEnrollments": [individual_json("sensor-7", &device.pem, true)]
    }));
    assert!(resolve(&request("SENSOR-7", &device.der, &[]), &set).is_ok());
}

#[test]
fn verified_ca_below_the_enrolled_group() {
    // Line A is a trust anchor without a group; the root carries the group.
    // Resolution continues above the anchor to find the root's group.
    let root = root();
    let line = root
        .intermediate("Line A", KeyAlg::P256, ca_validity())
        .unwrap();
    let leaf = line
        .device("device-9", KeyAlg::P256, device_validity())
        .unwrap();
    let mut set = attest_dps::EnrollmentSet::from_json(
        &serde_json::json!({"enrollmentGroups": [group_json("root-group", &root.pem, true)]})
            .to_string(),
    )
    .unwrap();
    set.add_anchor(line.der.clone()).unwrap();
    let set = std::sync::Arc::new(set);
    let d = resolve(&request("device-9", &leaf.der, &[&line.der]), &set).unwrap();
    assert_eq!(d.enrollment.id, "root-group");
}

#[test]
fn tls_signature_proof() {
    let device = Device::self_signed("tls-dev", KeyAlg::P256, device_validity()).unwrap();
    let set = enrollments(&serde_json::json!({
        "individualEnrollments": [individual_json("tls-dev", &device.pem, true)]
    }));
    let message = b"TLS 1.3, client CertificateVerify\0transcript-hash".to_vec();
    let signature = rcgen::SigningKey::sign(&device.key, &message).unwrap();
    let req = request("tls-dev", &device.der, &[]);
    let ok = Proof::TlsSignature {
        scheme: 0x0403,
        message: message.clone(),
        signature: signature.clone(),
    };
    assert!(attest(&req, &ok, &set).is_ok());
    let wrong_scheme = Proof::TlsSignature {
        scheme: 0x0807,
        message: message.clone(),
        signature: signature.clone(),
    };
    assert_eq!(
        attest(&req, &wrong_scheme, &set).unwrap_err().code,
        Code::UnsupportedSignatureScheme
    );
    let wrong_message = Proof::TlsSignature {
        scheme: 0x0403,
        message: b"other".to_vec(),
        signature,
    };
    assert_eq!(
        attest(&req, &wrong_message, &set).unwrap_err().code,
        Code::ProofOfPossessionFailed
    );
}

#[test]
fn ca_proof_of_possession() {
    let ca = root();
    let code = "4F2A8C3B1E9D7A6B5C4D3E2F1A0B9C8D";
    let key = KeyAlg::P256.generate().unwrap();
    let mut params = device_params(code, device_validity());
    params.extended_key_usages = vec![];
    let verification = ca.sign(&params, &key).unwrap();
    let info = verify_ca_possession(&ca.der, &verification, code, VALIDATION_TIME).unwrap();
    assert_eq!(info.subject, "CN=Rules Root");
    assert_eq!(
        verify_ca_possession(&ca.der, &verification, "WRONGCODE", VALIDATION_TIME)
            .unwrap_err()
            .code,
        Code::VerificationCodeMismatch
    );
    let other = Ca::root("Rules Root", KeyAlg::P256, ca_validity()).unwrap();
    let forged = other.sign(&params, &key).unwrap();
    assert_eq!(
        verify_ca_possession(&ca.der, &forged, code, VALIDATION_TIME)
            .unwrap_err()
            .code,
        Code::BadSignature
    );
}
