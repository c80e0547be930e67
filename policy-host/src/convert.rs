//! Conversions between the WIT types (as `bindgen!` generates them on the
//! host side) and policy-core's types, so that callers of [`crate::Policy`]
//! get exactly the values the native core returns.

use policy_core::{
    AttestRequest, Attested, CertRef, CertificateInfo, CertificateKeys, ChainRequest, Code,
    Decision, EnrollmentKind, EnrollmentRef, Lenience, Proof, Purpose, Refusal, RevocationMode,
    RevocationPolicy, SignatureAlgorithm, Validated,
};

use crate::bindings::attest::policy::types as wit;
use crate::bindings::exports::attest::policy::{attestation, chain};
use crate::{HostError, Verdict};

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

/// A 32-byte hash from the component; any other length breaks the WIT
/// contract and is reported, never padded into a hash of zeros.
fn hash32(what: &str, v: &[u8]) -> Result<[u8; 32], HostError> {
    <[u8; 32]>::try_from(v)
        .map_err(|_| HostError::Contract(format!("{what} is {} bytes, not 32", v.len())))
}

pub(crate) fn info_from_wit(i: wit::CertificateInfo) -> Result<CertificateInfo, HostError> {
    Ok(CertificateInfo {
        sha256: hash32("a certificate's sha256", &i.sha256)?,
        subject: i.subject,
        issuer: i.issuer,
        common_name: i.common_name,
        serial: i.serial,
        not_before: i.not_before,
        not_after: i.not_after,
    })
}

pub(crate) fn enrollment_from_wit(e: wit::EnrollmentRef) -> EnrollmentRef {
    EnrollmentRef {
        kind: match e.kind {
            wit::EnrollmentKind::Individual => EnrollmentKind::Individual,
            wit::EnrollmentKind::Group => EnrollmentKind::Group,
        },
        id: e.id,
    }
}

pub(crate) fn decision_from_wit(d: attestation::Decision) -> Result<Decision, HostError> {
    Ok(Decision {
        registration_id: d.registration_id,
        device_id: d.device_id,
        enrollment: enrollment_from_wit(d.enrollment),
        path: d
            .path
            .into_iter()
            .map(info_from_wit)
            .collect::<Result<_, _>>()?,
    })
}

pub(crate) fn refusal_from_wit(r: wit::Refusal) -> Result<Refusal, HostError> {
    let certificate = match r.certificate {
        Some(c) => Some(CertRef {
            sha256: hash32("a refusal's certificate sha256", &c.sha256)?,
            position: c.position,
            subject: c.subject,
        }),
        None => None,
    };
    Ok(Refusal {
        code: code_from_wit(r.code),
        message: r.message,
        certificate,
        enrollment: r.enrollment.map(enrollment_from_wit),
    })
}

pub(crate) fn revocation_policy_to_wit(p: RevocationPolicy) -> chain::RevocationPolicy {
    let lenience = |l: Lenience| match l {
        Lenience::Refuse => chain::Lenience::Refuse,
        Lenience::Warn => chain::Lenience::Warn,
    };
    chain::RevocationPolicy {
        mode: match p.mode {
            RevocationMode::Off => chain::RevocationMode::Off,
            RevocationMode::Leaf => chain::RevocationMode::Leaf,
            RevocationMode::Chain => chain::RevocationMode::Chain,
            RevocationMode::Configured => chain::RevocationMode::Configured,
        },
        undetermined: lenience(p.undetermined),
        expired: lenience(p.expired),
    }
}

/// An entry's policy as the `enrollments.revocation` import answers it.
pub(crate) fn entry_revocation_to_wit(p: RevocationPolicy) -> wit::EntryRevocation {
    wit::EntryRevocation {
        check: match p.mode {
            RevocationMode::Off => wit::RevocationCheck::Off,
            RevocationMode::Leaf => wit::RevocationCheck::Leaf,
            RevocationMode::Chain => wit::RevocationCheck::Chain,
            RevocationMode::Configured => wit::RevocationCheck::Configured,
        },
        admit_undetermined: p.undetermined == Lenience::Warn,
        admit_expired: p.expired == Lenience::Warn,
    }
}

pub(crate) fn attested_from_wit(a: attestation::Attested) -> Result<Attested, HostError> {
    Ok(Attested {
        decision: decision_from_wit(a.decision)?,
        warnings: a
            .warnings
            .into_iter()
            .map(refusal_from_wit)
            .collect::<Result<_, _>>()?,
    })
}

pub(crate) fn validated_from_wit(v: chain::Validated) -> Result<Validated, HostError> {
    Ok(Validated {
        path: v
            .path
            .into_iter()
            .map(info_from_wit)
            .collect::<Result<_, _>>()?,
        warnings: v
            .warnings
            .into_iter()
            .map(refusal_from_wit)
            .collect::<Result<_, _>>()?,
    })
}

/// A component answer with both arms converted: a refusal stays a
/// refusal, a malformed value becomes a [`HostError`].
pub(crate) fn verdict<T, U>(
    answer: Result<Result<T, wit::Refusal>, HostError>,
    ok: impl FnOnce(T) -> Result<U, HostError>,
) -> Verdict<U> {
    match answer? {
        Ok(value) => Ok(Ok(ok(value)?)),
        Err(refusal) => Ok(Err(refusal_from_wit(refusal)?)),
    }
}

#[cfg(test)]
pub(crate) fn algorithm_to_wit(a: SignatureAlgorithm) -> wit::SignatureAlgorithm {
    macro_rules! to_wit {
        ($($variant:ident $name:literal $doc:literal;)*) => {
            match a {
                $(SignatureAlgorithm::$variant => wit::SignatureAlgorithm::$variant,)*
            }
        };
    }
    policy_core::foreach_signature_algorithm!(to_wit)
}

/// The inverse of [`algorithm_to_wit`], from the same table.
pub(crate) fn algorithm_from_wit(a: wit::SignatureAlgorithm) -> SignatureAlgorithm {
    macro_rules! from_wit {
        ($($variant:ident $name:literal $doc:literal;)*) => {
            match a {
                $(wit::SignatureAlgorithm::$variant => SignatureAlgorithm::$variant,)*
            }
        };
    }
    policy_core::foreach_signature_algorithm!(from_wit)
}

/// Generated from the code table: a case added to the WIT `refusal-code`
/// without a table line fails to compile here.
pub(crate) fn code_from_wit(c: wit::RefusalCode) -> Code {
    macro_rules! from_wit {
        ($($variant:ident $name:literal $rank:literal $stage:ident $doc:literal;)*) => {
            match c {
                $(wit::RefusalCode::$variant => Code::$variant,)*
            }
        };
    }
    policy_core::foreach_refusal_code!(from_wit)
}

/// Each key is 32 bytes by the WIT contract.
pub(crate) fn keys_from_wit(k: wit::CertificateKeys) -> Result<CertificateKeys, HostError> {
    Ok(CertificateKeys {
        sha256: hash32("sha256", &k.sha256)?,
        subject_key: hash32("subject-key", &k.subject_key)?,
        ca_identity: hash32("ca-identity", &k.ca_identity)?,
    })
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
        let wit_names: Vec<&str> = e.cases.iter().map(|c| c.name.as_str()).collect();
        let core_names: Vec<&str> = SignatureAlgorithm::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(wit_names, core_names);
    }

    #[test]
    fn a_wrong_length_hash_is_a_contract_error_not_zeros() {
        let keys = wit::CertificateKeys {
            sha256: vec![1; 32],
            subject_key: vec![2; 31],
            ca_identity: vec![3; 32],
        };
        assert!(matches!(keys_from_wit(keys), Err(HostError::Contract(_))));
        let refusal = wit::Refusal {
            code: wit::RefusalCode::BadSignature,
            message: "m".into(),
            certificate: Some(wit::CertificateRef {
                position: 0,
                subject: String::new(),
                sha256: vec![0; 33],
            }),
            enrollment: None,
        };
        assert!(matches!(
            verdict::<(), ()>(Ok(Err(refusal)), |_| Ok(())),
            Err(HostError::Contract(_))
        ));
    }
}
