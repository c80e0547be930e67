//! Conversions between the WIT types (as `bindgen!` generates them on the
//! host side) and policy-core's types, so that callers of [`crate::Policy`]
//! get exactly the values the native core returns.

use policy_core::{
    AttestRequest, CertRef, CertificateInfo, CertificateKeys, ChainRequest, Code, Decision,
    EnrollmentKind, EnrollmentRef, Proof, Purpose, Refusal,
};

use crate::bindings::attest::policy::types as wit;
use crate::bindings::exports::attest::policy::{attestation, chain};

pub(crate) fn purpose_to_wit(p: Purpose) -> wit::Purpose {
    match p {
        Purpose::ClientAuth => wit::Purpose::ClientAuth,
        Purpose::ServerAuth => wit::Purpose::ServerAuth,
        Purpose::Any => wit::Purpose::Any,
    }
}

pub(crate) fn chain_request_to_wit(r: &ChainRequest) -> chain::ChainRequest {
    chain::ChainRequest {
        leaf: r.leaf.clone(),
        intermediates: r.intermediates.clone(),
        trust_anchors: r.trust_anchors.clone(),
        time: r.time,
        purpose: purpose_to_wit(r.purpose),
    }
}

pub(crate) fn attest_request_to_wit(r: &AttestRequest) -> attestation::AttestRequest {
    attestation::AttestRequest {
        registration_id: r.registration_id.clone(),
        leaf: r.leaf.clone(),
        intermediates: r.intermediates.clone(),
        time: r.time,
        purpose: purpose_to_wit(r.purpose),
    }
}

pub(crate) fn proof_to_wit(p: &Proof) -> wit::Proof {
    match p {
        Proof::ChallengeSignature {
            challenge,
            signature,
        } => wit::Proof::ChallengeSignature(wit::ChallengeSignature {
            challenge: challenge.clone(),
            signature: signature.clone(),
        }),
        Proof::TlsSignature {
            scheme,
            message,
            signature,
        } => wit::Proof::TlsSignature(wit::TlsSignature {
            scheme: *scheme,
            message: message.clone(),
            signature: signature.clone(),
        }),
    }
}

fn thumbprint(v: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if v.len() == 32 {
        out.copy_from_slice(v);
    }
    out
}

pub(crate) fn info_from_wit(i: wit::CertificateInfo) -> CertificateInfo {
    CertificateInfo {
        subject: i.subject,
        issuer: i.issuer,
        common_name: i.common_name,
        serial: i.serial,
        sha256: thumbprint(&i.sha256),
        not_before: i.not_before,
        not_after: i.not_after,
    }
}

fn enrollment_from_wit(e: wit::EnrollmentRef) -> EnrollmentRef {
    EnrollmentRef {
        kind: match e.kind {
            wit::EnrollmentKind::Individual => EnrollmentKind::Individual,
            wit::EnrollmentKind::Group => EnrollmentKind::Group,
        },
        id: e.id,
    }
}

pub(crate) fn decision_from_wit(d: attestation::Decision) -> Decision {
    Decision {
        registration_id: d.registration_id,
        device_id: d.device_id,
        enrollment: enrollment_from_wit(d.enrollment),
        path: d.path.into_iter().map(info_from_wit).collect(),
    }
}

pub(crate) fn refusal_from_wit(r: wit::Refusal) -> Refusal {
    Refusal {
        code: code_from_wit(r.code),
        message: r.message,
        certificate: r.certificate.map(|c| CertRef {
            position: c.position,
            subject: c.subject,
            sha256: thumbprint(&c.sha256),
        }),
        enrollment: r.enrollment.map(enrollment_from_wit),
    }
}

#[cfg(test)]
pub(crate) fn algorithm_to_wit(a: policy_core::SignatureAlgorithm) -> wit::SignatureAlgorithm {
    use policy_core::SignatureAlgorithm;
    use wit::SignatureAlgorithm as W;
    match a {
        SignatureAlgorithm::EcdsaP256Sha256 => W::EcdsaP256Sha256,
        SignatureAlgorithm::EcdsaP256Sha384 => W::EcdsaP256Sha384,
        SignatureAlgorithm::EcdsaP384Sha256 => W::EcdsaP384Sha256,
        SignatureAlgorithm::EcdsaP384Sha384 => W::EcdsaP384Sha384,
        SignatureAlgorithm::EcdsaP521Sha512 => W::EcdsaP521Sha512,
        SignatureAlgorithm::RsaPkcs1Sha256 => W::RsaPkcs1Sha256,
        SignatureAlgorithm::RsaPkcs1Sha384 => W::RsaPkcs1Sha384,
        SignatureAlgorithm::RsaPkcs1Sha512 => W::RsaPkcs1Sha512,
        SignatureAlgorithm::RsaPssSha256 => W::RsaPssSha256,
        SignatureAlgorithm::RsaPssSha384 => W::RsaPssSha384,
        SignatureAlgorithm::RsaPssSha512 => W::RsaPssSha512,
        SignatureAlgorithm::Ed25519 => W::Ed25519,
    }
}

/// Exhaustive over the WIT enum: a case added to `refusal-code` without a
/// core counterpart fails to compile here.
pub(crate) fn code_from_wit(c: wit::RefusalCode) -> Code {
    use wit::RefusalCode as W;
    match c {
        W::InputTooLarge => Code::InputTooLarge,
        W::MalformedCertificate => Code::MalformedCertificate,
        W::MalformedExtension => Code::MalformedExtension,
        W::DuplicateExtension => Code::DuplicateExtension,
        W::UnknownCriticalExtension => Code::UnknownCriticalExtension,
        W::InvalidSerialNumber => Code::InvalidSerialNumber,
        W::UnsupportedCertificateVersion => Code::UnsupportedCertificateVersion,
        W::UnsupportedSignatureAlgorithm => Code::UnsupportedSignatureAlgorithm,
        W::WeakSignatureAlgorithm => Code::WeakSignatureAlgorithm,
        W::SignatureAlgorithmMismatch => Code::SignatureAlgorithmMismatch,
        W::KeyAlgorithmMismatch => Code::KeyAlgorithmMismatch,
        W::UnsupportedPublicKey => Code::UnsupportedPublicKey,
        W::WeakPublicKey => Code::WeakPublicKey,
        W::ExplicitCurveParameters => Code::ExplicitCurveParameters,
        W::BadSignature => Code::BadSignature,
        W::CertificateExpired => Code::CertificateExpired,
        W::CertificateNotYetValid => Code::CertificateNotYetValid,
        W::IssuerNotCa => Code::IssuerNotCa,
        W::CaUsedAsEndEntity => Code::CaUsedAsEndEntity,
        W::PathLengthExceeded => Code::PathLengthExceeded,
        W::MissingKeyCertSign => Code::MissingKeyCertSign,
        W::MissingDigitalSignature => Code::MissingDigitalSignature,
        W::LeafKeyCertSign => Code::LeafKeyCertSign,
        W::ExtendedKeyUsageNotPermitted => Code::ExtendedKeyUsageNotPermitted,
        W::NameConstraintViolation => Code::NameConstraintViolation,
        W::InvalidNameConstraints => Code::InvalidNameConstraints,
        W::EmptySubject => Code::EmptySubject,
        W::UnknownIssuer => Code::UnknownIssuer,
        W::PathBudgetExceeded => Code::PathBudgetExceeded,
        W::InvalidRegistrationId => Code::InvalidRegistrationId,
        W::RegistrationIdMismatch => Code::RegistrationIdMismatch,
        W::IndividualCertificateMismatch => Code::IndividualCertificateMismatch,
        W::IndividualEnrollmentDisabled => Code::IndividualEnrollmentDisabled,
        W::EnrollmentGroupDisabled => Code::EnrollmentGroupDisabled,
        W::NoEnrollment => Code::NoEnrollment,
        W::InvalidProof => Code::InvalidProof,
        W::ProofOfPossessionFailed => Code::ProofOfPossessionFailed,
        W::UnsupportedSignatureScheme => Code::UnsupportedSignatureScheme,
        W::VerificationCodeMismatch => Code::VerificationCodeMismatch,
        W::AmbiguousCommonName => Code::AmbiguousCommonName,
    }
}

/// Each key is 32 bytes by the WIT contract; a short one (which the
/// component never returns) becomes zeros rather than a panic.
pub(crate) fn keys_from_wit(k: wit::CertificateKeys) -> CertificateKeys {
    let key = |v: Vec<u8>| <[u8; 32]>::try_from(v.as_slice()).unwrap_or([0; 32]);
    CertificateKeys {
        sha256: key(k.sha256),
        subject_key: key(k.subject_key),
        ca_identity: key(k.ca_identity),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The WIT enum and the core enum list the same codes in the same order
    /// under the same names: parsed from `wit/attest.wit` itself.
    #[test]
    fn refusal_codes_match_the_wit_file() {
        let mut resolve = wit_parser::Resolve::default();
        let wit_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../wit");
        resolve.push_dir(wit_dir).unwrap();
        let (_, ty) = resolve
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some("refusal-code"))
            .expect("refusal-code in the WIT");
        let wit_parser::TypeDefKind::Enum(e) = &ty.kind else {
            panic!("refusal-code is not an enum")
        };
        let wit_names: Vec<&str> = e.cases.iter().map(|c| c.name.as_str()).collect();
        let core_names: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(wit_names, core_names);
    }

    #[test]
    fn signature_algorithms_match_the_wit_file() {
        let mut resolve = wit_parser::Resolve::default();
        resolve
            .push_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit"))
            .unwrap();
        let (_, ty) = resolve
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some("signature-algorithm"))
            .unwrap();
        let wit_parser::TypeDefKind::Enum(e) = &ty.kind else {
            panic!("signature-algorithm is not an enum")
        };
        assert_eq!(e.cases.len(), policy_core::SignatureAlgorithm::ALL.len());
    }
}
