//! Shared fixtures for attest's cross-host tests and benchmarks: PKIs
//! generated in-process at a fixed validity window, and the differential
//! harness that runs every input through the native core and the component
//! and insists on identical verdicts.

use std::sync::{Arc, OnceLock};

use host_cli::enrollments::EnrollmentSet;
use host_cli::pki::Validity;
use policy_host::{
    AttestRequest, AwsLcVerifier, CertificateInfo, ChainRequest, Decision, Policy, Proof, Refusal,
};
use time::OffsetDateTime;
use time::macros::datetime;

pub use host_cli::pki;

pub mod corpus;
pub mod forge;

/// The fixed validation time of every test: 2026-06-01T00:00:00Z.
pub const VALIDATION_TIME: i64 = datetime!(2026-06-01 00:00 UTC).unix_timestamp();

/// CA certificates: 2025-01-01 to 2035-01-01.
pub fn ca_validity() -> Validity {
    Validity {
        not_before: datetime!(2025-01-01 00:00 UTC),
        not_after: datetime!(2035-01-01 00:00 UTC),
    }
}

/// Device certificates: 2025-06-01 to 2028-06-01.
pub fn device_validity() -> Validity {
    Validity {
        not_before: datetime!(2025-06-01 00:00 UTC),
        not_after: datetime!(2028-06-01 00:00 UTC),
    }
}

/// A validity window from two Unix times.
pub fn validity(not_before: i64, not_after: i64) -> Validity {
    Validity {
        not_before: OffsetDateTime::from_unix_timestamp(not_before).expect("time"),
        not_after: OffsetDateTime::from_unix_timestamp(not_after).expect("time"),
    }
}

/// The policy component, loaded once per test process.
pub fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| Policy::new().expect("policy component loads"))
}

/// An enrollment set from DPS JSON.
pub fn enrollments(json: &serde_json::Value) -> Arc<EnrollmentSet> {
    Arc::new(EnrollmentSet::from_json(&json.to_string()).expect("valid enrollment set"))
}

/// Chain validation through the native core and the component; asserts
/// they agree and returns the verdict.
pub fn validate_chain(request: &ChainRequest) -> Result<Vec<CertificateInfo>, Refusal> {
    let native = policy_core::validate_chain(request, &AwsLcVerifier);
    let component = policy().validate_chain(request).expect("component call");
    assert_eq!(native, component, "native core and component disagree");
    native
}

/// Resolution through both paths; asserts they agree.
pub fn resolve(request: &AttestRequest, set: &Arc<EnrollmentSet>) -> Result<Decision, Refusal> {
    let native = policy_core::resolve(request, &AwsLcVerifier, set.as_ref());
    let component = policy()
        .resolve(request, set.clone())
        .expect("component call");
    assert_eq!(native, component, "native core and component disagree");
    native
}

/// Attestation through both paths; asserts they agree.
pub fn attest(
    request: &AttestRequest,
    proof: &Proof,
    set: &Arc<EnrollmentSet>,
) -> Result<Decision, Refusal> {
    let native = policy_core::attest(request, proof, &AwsLcVerifier, set.as_ref());
    let component = policy()
        .attest(request, proof, set.clone())
        .expect("component call");
    assert_eq!(native, component, "native core and component disagree");
    native
}

/// CA proof of possession through both paths; asserts they agree.
pub fn verify_ca_possession(
    ca: &[u8],
    verification: &[u8],
    code: &str,
    time: i64,
) -> Result<CertificateInfo, Refusal> {
    let native = policy_core::verify_ca_possession(ca, verification, code, time, &AwsLcVerifier);
    let component = policy()
        .verify_ca_possession(ca, verification, code, time)
        .expect("component call");
    assert_eq!(native, component, "native core and component disagree");
    native
}

/// A challenge proof for `registration_id` signed with `key`.
pub fn challenge_proof(registration_id: &str, key: &rcgen::KeyPair) -> Proof {
    let challenge = vec![0x5a; 32];
    let message = policy_core::challenge_message(registration_id, &challenge).expect("message");
    let signature = rcgen::SigningKey::sign(key, &message).expect("sign");
    Proof::ChallengeSignature {
        challenge,
        signature,
    }
}

/// A device request: leaf and intermediates as given, at the fixed time.
pub fn request(registration_id: &str, leaf: &[u8], intermediates: &[&[u8]]) -> AttestRequest {
    AttestRequest {
        registration_id: registration_id.to_string(),
        leaf: leaf.to_vec(),
        intermediates: intermediates.iter().map(|c| c.to_vec()).collect(),
        time: VALIDATION_TIME,
        purpose: policy_host::Purpose::ClientAuth,
    }
}

/// A chain request at the fixed time for clientAuth.
pub fn chain_request(leaf: &[u8], intermediates: &[&[u8]], anchors: &[&[u8]]) -> ChainRequest {
    ChainRequest {
        leaf: leaf.to_vec(),
        intermediates: intermediates.iter().map(|c| c.to_vec()).collect(),
        trust_anchors: anchors.iter().map(|c| c.to_vec()).collect(),
        time: VALIDATION_TIME,
        purpose: policy_host::Purpose::ClientAuth,
    }
}

/// A group enrollment JSON entry.
pub fn group_json(id: &str, pem: &str, enabled: bool) -> serde_json::Value {
    serde_json::json!({
        "enrollmentGroupId": id,
        "provisioningStatus": if enabled { "enabled" } else { "disabled" },
        "attestation": {"type": "x509", "x509": {"signingCertificates": {"primary": {"certificate": pem}}}}
    })
}

/// An individual enrollment JSON entry.
pub fn individual_json(id: &str, pem: &str, enabled: bool) -> serde_json::Value {
    serde_json::json!({
        "registrationId": id,
        "provisioningStatus": if enabled { "enabled" } else { "disabled" },
        "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": pem}}}}
    })
}
