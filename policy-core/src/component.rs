//! The component adapter: wit-bindgen glue that exports the `attest:policy`
//! world. It only converts WIT types to core types and back; every decision
//! is made by the functions it calls.
#![allow(unsafe_code)] // generated ABI glue

mod bindings {
    #![allow(missing_docs, unreachable_pub, unsafe_code, clippy::all)]
    wit_bindgen::generate!({
        world: "policy",
        path: "../wit",
    });
}

use bindings::attest::policy::types as wit;
use bindings::attest::policy::{crypto, enrollments, revocation};
use bindings::exports::attest::policy::{attestation, chain};

use crate::{
    AttestRequest, Attested, CertRef, CertificateInfo, ChainRequest, Code, Decision,
    EnrollmentGroup, EnrollmentKind, EnrollmentRef, EnrollmentSource, IndividualEnrollment,
    Lenience, Proof, Purpose, Refusal, RevocationMode, RevocationPolicy, SignatureAlgorithm,
    SignatureVerifier,
};

struct Component;

bindings::export!(Component with_types_in bindings);

/// Signature arithmetic through the host's `crypto` import.
struct HostCrypto;

impl SignatureVerifier for HostCrypto {
    fn verify_signature(
        &self,
        algorithm: SignatureAlgorithm,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        crypto::verify_signature(algorithm_to_wit(algorithm), public_key, message, signature)
    }
}

/// Enrollment lookups through the host's `enrollments` import.
struct HostEnrollments;

impl EnrollmentSource for HostEnrollments {
    fn individual(&self, registration_id: &str) -> Option<IndividualEnrollment> {
        enrollments::individual(registration_id).map(|e| IndividualEnrollment {
            registration_id: e.registration_id,
            device_id: e.device_id,
            enabled: e.enabled,
            certificates: e
                .certificates
                .iter()
                .filter_map(|t| <[u8; 32]>::try_from(t.as_slice()).ok())
                .collect(),
        })
    }

    fn group(&self, ca_identity: &[u8; 32]) -> Option<EnrollmentGroup> {
        enrollments::group(ca_identity).map(|g| EnrollmentGroup {
            group_id: g.group_id,
            enabled: g.enabled,
        })
    }

    fn trust_anchors(&self, subject_key: &[u8; 32]) -> Vec<Vec<u8>> {
        enrollments::trust_anchors(subject_key)
    }

    fn revocation(&self, entry: &EnrollmentRef) -> RevocationPolicy {
        let policy = enrollments::revocation(&enrollment_to_wit(entry.clone()));
        let lenience = |admit: bool| {
            if admit {
                Lenience::Warn
            } else {
                Lenience::Refuse
            }
        };
        RevocationPolicy {
            mode: match policy.check {
                wit::RevocationCheck::Off => RevocationMode::Off,
                wit::RevocationCheck::Leaf => RevocationMode::Leaf,
                wit::RevocationCheck::Chain => RevocationMode::Chain,
                wit::RevocationCheck::Configured => RevocationMode::Configured,
            },
            undetermined: lenience(policy.admit_undetermined),
            expired: lenience(policy.admit_expired),
        }
    }
}

/// CRLs through the host's `revocation` import.
fn host_crls() -> crate::crl::FetchedCrls<impl Fn(&[u8; 32]) -> Vec<Vec<u8>>> {
    crate::crl::FetchedCrls::new(|key: &[u8; 32]| revocation::crls(key))
}

fn chain_request_from_wit(request: chain::ChainRequest) -> ChainRequest {
    ChainRequest {
        leaf: request.leaf,
        intermediates: request.intermediates,
        trust_anchors: request.trust_anchors,
        time: request.time,
        purpose: purpose_from_wit(request.purpose),
    }
}

impl chain::Guest for Component {
    fn validate(request: chain::ChainRequest) -> Result<Vec<wit::CertificateInfo>, wit::Refusal> {
        let request = chain_request_from_wit(request);
        crate::validate_chain(&request, &HostCrypto)
            .map(|path| path.into_iter().map(info_to_wit).collect())
            .map_err(refusal_to_wit)
    }

    fn index_crl(crl: Vec<u8>) -> Result<Vec<u8>, String> {
        crate::crl_issuer_key(&crl).map(|k| k.to_vec())
    }

    fn validate_with_revocation(
        request: chain::ChainRequest,
        policy: chain::RevocationPolicy,
    ) -> Result<chain::Validated, wit::Refusal> {
        let request = chain_request_from_wit(request);
        let lenience = |l: chain::Lenience| match l {
            chain::Lenience::Refuse => Lenience::Refuse,
            chain::Lenience::Warn => Lenience::Warn,
        };
        let policy = RevocationPolicy {
            mode: match policy.mode {
                chain::RevocationMode::Off => RevocationMode::Off,
                chain::RevocationMode::Leaf => RevocationMode::Leaf,
                chain::RevocationMode::Chain => RevocationMode::Chain,
                chain::RevocationMode::Configured => RevocationMode::Configured,
            },
            undetermined: lenience(policy.undetermined),
            expired: lenience(policy.expired),
        };
        crate::attest::validate_with_crls(&request, &host_crls(), policy, &HostCrypto)
            .map(|v| chain::Validated {
                path: v.path.into_iter().map(info_to_wit).collect(),
                warnings: v.warnings.into_iter().map(refusal_to_wit).collect(),
            })
            .map_err(refusal_to_wit)
    }
}

impl attestation::Guest for Component {
    fn resolve(request: attestation::AttestRequest) -> Result<attestation::Decision, wit::Refusal> {
        Self::resolve_with_warnings(request).map(|a| a.decision)
    }

    fn attest(
        request: attestation::AttestRequest,
        proof: wit::Proof,
    ) -> Result<attestation::Decision, wit::Refusal> {
        Self::attest_with_warnings(request, proof).map(|a| a.decision)
    }

    fn resolve_with_warnings(
        request: attestation::AttestRequest,
    ) -> Result<attestation::Attested, wit::Refusal> {
        crate::attest::resolve_with_crls(
            &attest_request(request),
            &HostCrypto,
            &HostEnrollments,
            &host_crls(),
        )
        .map(attested_to_wit)
        .map_err(refusal_to_wit)
    }

    fn attest_with_warnings(
        request: attestation::AttestRequest,
        proof: wit::Proof,
    ) -> Result<attestation::Attested, wit::Refusal> {
        let proof = match proof {
            wit::Proof::ChallengeSignature(p) => Proof::ChallengeSignature {
                challenge: p.challenge,
                signature: p.signature,
            },
            wit::Proof::TlsSignature(p) => Proof::TlsSignature {
                scheme: p.scheme,
                message: p.message,
                signature: p.signature,
            },
        };
        crate::attest::attest_with_crls(
            &attest_request(request),
            &proof,
            &HostCrypto,
            &HostEnrollments,
            &host_crls(),
        )
        .map(attested_to_wit)
        .map_err(refusal_to_wit)
    }

    fn challenge_message(
        registration_id: String,
        challenge: Vec<u8>,
    ) -> Result<Vec<u8>, wit::Refusal> {
        crate::challenge_message(&registration_id, &challenge).map_err(refusal_to_wit)
    }

    fn index_certificate(certificate: Vec<u8>) -> Result<wit::CertificateKeys, wit::Refusal> {
        crate::certificate_keys(&certificate)
            .map(|k| wit::CertificateKeys {
                sha256: k.sha256.to_vec(),
                subject_key: k.subject_key.to_vec(),
                ca_identity: k.ca_identity.to_vec(),
            })
            .map_err(refusal_to_wit)
    }

    fn verify_ca_possession(
        ca_certificate: Vec<u8>,
        verification_certificate: Vec<u8>,
        verification_code: String,
        time: i64,
    ) -> Result<wit::CertificateInfo, wit::Refusal> {
        crate::verify_ca_possession(
            &ca_certificate,
            &verification_certificate,
            &verification_code,
            time,
            &HostCrypto,
        )
        .map(info_to_wit)
        .map_err(refusal_to_wit)
    }
}

fn attest_request(r: attestation::AttestRequest) -> AttestRequest {
    AttestRequest {
        registration_id: r.registration_id,
        leaf: r.leaf,
        intermediates: r.intermediates,
        time: r.time,
        purpose: purpose_from_wit(r.purpose),
    }
}

fn purpose_from_wit(p: wit::Purpose) -> Purpose {
    match p {
        wit::Purpose::ClientAuth => Purpose::ClientAuth,
        wit::Purpose::ServerAuth => Purpose::ServerAuth,
        wit::Purpose::Any => Purpose::Any,
    }
}

fn info_to_wit(i: CertificateInfo) -> wit::CertificateInfo {
    wit::CertificateInfo {
        subject: i.subject,
        issuer: i.issuer,
        common_name: i.common_name,
        serial: i.serial,
        sha256: i.sha256.to_vec(),
        not_before: i.not_before,
        not_after: i.not_after,
    }
}

fn enrollment_to_wit(e: EnrollmentRef) -> wit::EnrollmentRef {
    wit::EnrollmentRef {
        kind: match e.kind {
            EnrollmentKind::Individual => wit::EnrollmentKind::Individual,
            EnrollmentKind::Group => wit::EnrollmentKind::Group,
        },
        id: e.id,
    }
}

fn decision_to_wit(d: Decision) -> attestation::Decision {
    attestation::Decision {
        registration_id: d.registration_id,
        device_id: d.device_id,
        enrollment: enrollment_to_wit(d.enrollment),
        path: d.path.into_iter().map(info_to_wit).collect(),
    }
}

fn attested_to_wit(a: Attested) -> attestation::Attested {
    attestation::Attested {
        decision: decision_to_wit(a.decision),
        warnings: a.warnings.into_iter().map(refusal_to_wit).collect(),
    }
}

fn cert_ref_to_wit(c: CertRef) -> wit::CertificateRef {
    wit::CertificateRef {
        position: c.position,
        subject: c.subject,
        sha256: c.sha256.to_vec(),
    }
}

fn refusal_to_wit(r: Refusal) -> wit::Refusal {
    wit::Refusal {
        code: code_to_wit(r.code),
        message: r.message,
        certificate: r.certificate.map(cert_ref_to_wit),
        enrollment: r.enrollment.map(enrollment_to_wit),
    }
}

fn algorithm_to_wit(a: SignatureAlgorithm) -> wit::SignatureAlgorithm {
    macro_rules! to_wit {
        ($($variant:ident $name:literal $doc:literal;)*) => {
            match a {
                $(SignatureAlgorithm::$variant => wit::SignatureAlgorithm::$variant,)*
            }
        };
    }
    crate::foreach_signature_algorithm!(to_wit)
}

/// Generated from the code table: exhaustive both ways, so a code missing
/// on either side (core table or WIT) fails to compile here.
fn code_to_wit(c: Code) -> wit::RefusalCode {
    macro_rules! to_wit {
        ($($variant:ident $name:literal $rank:literal $stage:ident $doc:literal;)*) => {
            match c {
                $(Code::$variant => wit::RefusalCode::$variant,)*
            }
        };
    }
    crate::foreach_refusal_code!(to_wit)
}
