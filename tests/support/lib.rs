//! Shared fixtures for attest's cross-host tests and benchmarks: PKIs
//! generated in-process at a fixed validity window, and the differential
//! harness that runs every input through the native core and the component
//! and insists on identical verdicts.

// Test support: a fixture that cannot be built is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, OnceLock};

use attest_dps::EnrollmentSet;
use attest_pki::Validity;
use policy_host::{
    AttestRequest, AwsLcVerifier, CertificateInfo, ChainRequest, Decision, Policy, Proof, Refusal,
};
use time::OffsetDateTime;
use time::macros::datetime;

pub use attest_pki as pki;

pub mod corpus;
pub mod forge;
pub mod mutation;
pub mod pkits;
pub mod postgres;
pub mod process;

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

/// Resolution with revocation checking against `crls` through both
/// paths; asserts they agree.
pub fn resolve_checked(
    request: &AttestRequest,
    set: &Arc<EnrollmentSet>,
    crls: &[Vec<u8>],
) -> Result<policy_host::Attested, Refusal> {
    let native = policy_core::resolve_checked(
        request,
        &AwsLcVerifier,
        set.as_ref(),
        &policy_core::CrlSet::parse(crls).expect("CRLs parse"),
    );
    let held = Arc::new(policy_host::Crls::from_der(crls).expect("CRLs load"));
    let component = policy()
        .resolve_checked(request, set.clone(), held)
        .expect("component call");
    assert_eq!(native, component, "native core and component disagree");
    native
}

/// Attestation with revocation checking through both paths; asserts they
/// agree.
pub fn attest_checked(
    request: &AttestRequest,
    proof: &Proof,
    set: &Arc<EnrollmentSet>,
    crls: &[Vec<u8>],
) -> Result<policy_host::Attested, Refusal> {
    let native = policy_core::attest_checked(
        request,
        proof,
        &AwsLcVerifier,
        set.as_ref(),
        &policy_core::CrlSet::parse(crls).expect("CRLs parse"),
    );
    let held = Arc::new(policy_host::Crls::from_der(crls).expect("CRLs load"));
    let component = policy()
        .attest_checked(request, proof, set.clone(), held)
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

/// A conformance case in the fuzz targets' input format
/// (`fuzz/src/lib.rs`): flags, a zero day offset, then the leaf, the
/// intermediates and the anchors, each with a 2-byte length. The number
/// of anchors (1 to 4) goes into flags bits 2-3; `flags` supplies the rest.
pub fn fuzz_input(flags: u8, case: &corpus::Case) -> Vec<u8> {
    let anchors = case.anchors.len().clamp(1, 4);
    let count_bits = u8::try_from(anchors - 1).expect("0..=3") << 2;
    let mut out = vec![(flags & !0x0c) | count_bits, 0, 0];
    let days = (case.time - VALIDATION_TIME).div_euclid(86_400);
    out[1..3].copy_from_slice(&i16::try_from(days).unwrap_or(0).to_be_bytes());
    let certs = std::iter::once(&case.leaf)
        .chain(&case.intermediates)
        .chain(case.anchors.iter().take(anchors));
    for der in certs {
        let len = u16::try_from(der.len()).expect("certificates are under 64 KiB");
        out.extend(len.to_be_bytes());
        out.extend_from_slice(der);
    }
    out
}

/// The benchmarks' chain: "Bench Root" → `depth` intermediates ("Bench CA
/// 0", …) → the device "bench-device", all with `alg` keys.
pub struct BenchChain {
    /// The root CA.
    pub root: pki::Ca,
    /// The intermediates, root side first.
    pub intermediates: Vec<pki::Ca>,
    /// The device.
    pub device: pki::Device,
}

/// Builds a [`BenchChain`].
pub fn bench_chain(alg: pki::KeyAlg, depth: usize) -> BenchChain {
    let root = pki::Ca::root("Bench Root", alg, ca_validity()).unwrap();
    let mut intermediates: Vec<pki::Ca> = Vec::new();
    for i in 0..depth {
        let parent = intermediates.last().unwrap_or(&root);
        let next = parent
            .intermediate(&format!("Bench CA {i}"), alg, ca_validity())
            .unwrap();
        intermediates.push(next);
    }
    let device = intermediates
        .last()
        .unwrap_or(&root)
        .device("bench-device", alg, device_validity())
        .unwrap();
    BenchChain {
        root,
        intermediates,
        device,
    }
}

/// A root, a CA under it, and two devices of that CA: one a test revokes,
/// its sibling not (CNs `{label} Root`, `{label} CA`, `revoked-device`,
/// `sibling-device`).
pub struct RevocationPki {
    /// The trust anchor.
    pub root: pki::Ca,
    /// The devices' issuer.
    pub ca: pki::Ca,
    /// The device a test revokes.
    pub revoked: pki::Device,
    /// Its unrevoked sibling.
    pub sibling: pki::Device,
}

/// Generates a [`RevocationPki`] (P-256, the fixed validity periods).
pub fn revocation_pki(label: &str) -> RevocationPki {
    let root =
        pki::Ca::root(&format!("{label} Root"), pki::KeyAlg::P256, ca_validity()).expect("root");
    let ca = root
        .intermediate(&format!("{label} CA"), pki::KeyAlg::P256, ca_validity())
        .expect("CA");
    let device = |name: &str| {
        ca.device(name, pki::KeyAlg::P256, device_validity())
            .expect("device")
    };
    let (revoked, sibling) = (device("revoked-device"), device("sibling-device"));
    RevocationPki {
        root,
        ca,
        revoked,
        sibling,
    }
}

/// A certificate's serial number (content octets), as a CRL entry names it.
pub fn serial(der: &[u8]) -> Vec<u8> {
    use der::Decode;
    x509_cert::Certificate::from_der(der)
        .expect("a certificate")
        .tbs_certificate
        .serial_number
        .as_bytes()
        .to_vec()
}

/// [`VALIDATION_TIME`] moved by whole days (CRL times in tests).
pub fn days_from_validation(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(VALIDATION_TIME).expect("a time")
        + time::Duration::days(days)
}

/// One PEM block of `der` under `label` ("CERTIFICATE", "X509 CRL").
pub fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// SplitMix64: a small deterministic generator for property and mutation
/// tests (a fixed seed makes every failure reproducible).
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with `percent` % probability.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}
