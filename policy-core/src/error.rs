//! Refusals: one stable code per reason, a one-line message, and where it happened.
//!
//! [`Code`] maps one-to-one onto the WIT `refusal-code` enum (`wit/attest.wit`);
//! `policy-host`'s tests parse the WIT file and hold the two in sync.

use core::fmt;

/// Why a request was refused. Stable: the string form ([`Code::as_str`]) is
/// part of attest's public contract and is never renamed or reused.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    /// Input exceeds a fixed limit (certificate count or size, string length).
    InputTooLarge,
    /// A certificate is not valid DER X.509 (RFC 5280 §4.1).
    MalformedCertificate,
    /// A certificate extension is malformed (RFC 5280 §4.2).
    MalformedExtension,
    /// An extension appears more than once in a certificate (RFC 5280 §4.2).
    DuplicateExtension,
    /// A critical extension attest does not process (RFC 5280 §4.2).
    UnknownCriticalExtension,
    /// The serial number is not a positive integer of at most 20 octets (RFC 5280 §4.1.2.2).
    InvalidSerialNumber,
    /// A certificate version not accepted where it appears (RFC 5280 §4.1.2.1).
    UnsupportedCertificateVersion,
    /// A signature algorithm attest does not know.
    UnsupportedSignatureAlgorithm,
    /// A signature algorithm known to be weak (SHA-1, MD5, DSA).
    WeakSignatureAlgorithm,
    /// The outer signatureAlgorithm differs from the TBS signature field (RFC 5280 §4.1.1.2).
    SignatureAlgorithmMismatch,
    /// The issuer's key type does not match the signature algorithm.
    KeyAlgorithmMismatch,
    /// A public key attest does not know or cannot parse.
    UnsupportedPublicKey,
    /// A public key that is too weak (RSA < 2048 bits, curves below P-256).
    WeakPublicKey,
    /// A public key with explicit EC domain parameters (RFC 5480 §2.1.1).
    ExplicitCurveParameters,
    /// A signature does not verify.
    BadSignature,
    /// The validation time is after notAfter (RFC 5280 §4.1.2.5).
    CertificateExpired,
    /// The validation time is before notBefore (RFC 5280 §4.1.2.5).
    CertificateNotYetValid,
    /// An issuer is not a CA (RFC 5280 §4.2.1.9).
    IssuerNotCa,
    /// A CA certificate was presented as the leaf.
    CaUsedAsEndEntity,
    /// A pathLenConstraint is exceeded (RFC 5280 §4.2.1.9).
    PathLengthExceeded,
    /// An issuer's keyUsage lacks keyCertSign (RFC 5280 §4.2.1.3).
    MissingKeyCertSign,
    /// The leaf's keyUsage lacks digitalSignature (RFC 5280 §4.2.1.3).
    MissingDigitalSignature,
    /// The leaf carries keyCertSign but is not a CA (RFC 5280 §4.2.1.3).
    LeafKeyCertSign,
    /// The required extended key usage is not permitted (RFC 5280 §4.2.1.12).
    ExtendedKeyUsageNotPermitted,
    /// A name violates an issuer's name constraints (RFC 5280 §4.2.1.10).
    NameConstraintViolation,
    /// A name constraints extension is malformed or unsupported (RFC 5280 §4.2.1.10).
    InvalidNameConstraints,
    /// The subject is empty and no critical subjectAltName stands in (RFC 5280 §4.1.2.6).
    EmptySubject,
    /// No path to a trust anchor: the issuer is unknown (RFC 5280 §6.1).
    UnknownIssuer,
    /// Path building stopped at a limit (depth, candidates, signature checks).
    PathBudgetExceeded,
    /// The registration ID is empty, too long or uses characters outside `a-z 0-9 - . _ :`.
    InvalidRegistrationId,
    /// The leaf's subject CN does not equal the registration ID.
    RegistrationIdMismatch,
    /// The individual enrollment for this registration ID holds a different certificate.
    IndividualCertificateMismatch,
    /// The deciding individual enrollment is disabled.
    IndividualEnrollmentDisabled,
    /// The deciding enrollment group is disabled.
    EnrollmentGroupDisabled,
    /// No enrollment exists for the leaf or any certificate above it.
    NoEnrollment,
    /// The proof of possession is malformed (challenge too short or too long).
    InvalidProof,
    /// The proof-of-possession signature does not verify with the leaf's key.
    ProofOfPossessionFailed,
    /// The TLS signature scheme does not fit the leaf's key or is not allowed.
    UnsupportedSignatureScheme,
    /// A verification certificate's subject CN is not the expected verification code.
    VerificationCodeMismatch,
    /// The leaf names more than one commonName, so its registration ID is ambiguous.
    AmbiguousCommonName,
}

impl Code {
    /// Every code, in the order of the WIT `refusal-code` enum.
    pub const ALL: &'static [Code] = &[
        Code::InputTooLarge,
        Code::MalformedCertificate,
        Code::MalformedExtension,
        Code::DuplicateExtension,
        Code::UnknownCriticalExtension,
        Code::InvalidSerialNumber,
        Code::UnsupportedCertificateVersion,
        Code::UnsupportedSignatureAlgorithm,
        Code::WeakSignatureAlgorithm,
        Code::SignatureAlgorithmMismatch,
        Code::KeyAlgorithmMismatch,
        Code::UnsupportedPublicKey,
        Code::WeakPublicKey,
        Code::ExplicitCurveParameters,
        Code::BadSignature,
        Code::CertificateExpired,
        Code::CertificateNotYetValid,
        Code::IssuerNotCa,
        Code::CaUsedAsEndEntity,
        Code::PathLengthExceeded,
        Code::MissingKeyCertSign,
        Code::MissingDigitalSignature,
        Code::LeafKeyCertSign,
        Code::ExtendedKeyUsageNotPermitted,
        Code::NameConstraintViolation,
        Code::InvalidNameConstraints,
        Code::EmptySubject,
        Code::UnknownIssuer,
        Code::PathBudgetExceeded,
        Code::InvalidRegistrationId,
        Code::RegistrationIdMismatch,
        Code::IndividualCertificateMismatch,
        Code::IndividualEnrollmentDisabled,
        Code::EnrollmentGroupDisabled,
        Code::NoEnrollment,
        Code::InvalidProof,
        Code::ProofOfPossessionFailed,
        Code::UnsupportedSignatureScheme,
        Code::VerificationCodeMismatch,
        Code::AmbiguousCommonName,
    ];

    /// The stable string form: the WIT case name (kebab-case).
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::InputTooLarge => "input-too-large",
            Code::MalformedCertificate => "malformed-certificate",
            Code::MalformedExtension => "malformed-extension",
            Code::DuplicateExtension => "duplicate-extension",
            Code::UnknownCriticalExtension => "unknown-critical-extension",
            Code::InvalidSerialNumber => "invalid-serial-number",
            Code::UnsupportedCertificateVersion => "unsupported-certificate-version",
            Code::UnsupportedSignatureAlgorithm => "unsupported-signature-algorithm",
            Code::WeakSignatureAlgorithm => "weak-signature-algorithm",
            Code::SignatureAlgorithmMismatch => "signature-algorithm-mismatch",
            Code::KeyAlgorithmMismatch => "key-algorithm-mismatch",
            Code::UnsupportedPublicKey => "unsupported-public-key",
            Code::WeakPublicKey => "weak-public-key",
            Code::ExplicitCurveParameters => "explicit-curve-parameters",
            Code::BadSignature => "bad-signature",
            Code::CertificateExpired => "certificate-expired",
            Code::CertificateNotYetValid => "certificate-not-yet-valid",
            Code::IssuerNotCa => "issuer-not-ca",
            Code::CaUsedAsEndEntity => "ca-used-as-end-entity",
            Code::PathLengthExceeded => "path-length-exceeded",
            Code::MissingKeyCertSign => "missing-key-cert-sign",
            Code::MissingDigitalSignature => "missing-digital-signature",
            Code::LeafKeyCertSign => "leaf-key-cert-sign",
            Code::ExtendedKeyUsageNotPermitted => "extended-key-usage-not-permitted",
            Code::NameConstraintViolation => "name-constraint-violation",
            Code::InvalidNameConstraints => "invalid-name-constraints",
            Code::EmptySubject => "empty-subject",
            Code::UnknownIssuer => "unknown-issuer",
            Code::PathBudgetExceeded => "path-budget-exceeded",
            Code::InvalidRegistrationId => "invalid-registration-id",
            Code::RegistrationIdMismatch => "registration-id-mismatch",
            Code::IndividualCertificateMismatch => "individual-certificate-mismatch",
            Code::IndividualEnrollmentDisabled => "individual-enrollment-disabled",
            Code::EnrollmentGroupDisabled => "enrollment-group-disabled",
            Code::NoEnrollment => "no-enrollment",
            Code::InvalidProof => "invalid-proof",
            Code::ProofOfPossessionFailed => "proof-of-possession-failed",
            Code::UnsupportedSignatureScheme => "unsupported-signature-scheme",
            Code::VerificationCodeMismatch => "verification-code-mismatch",
            Code::AmbiguousCommonName => "ambiguous-common-name",
        }
    }

    /// Parses the stable string form back into a code.
    pub fn from_str_code(s: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == s)
    }

    /// How specific a path-building failure is: when every candidate path
    /// fails, the refusal with the highest rank is reported. "Unknown issuer"
    /// says least (nothing matched at all); a failure found after the
    /// signatures verified says most.
    pub(crate) const fn rank(self) -> u8 {
        match self {
            Code::UnknownIssuer => 0,
            Code::UnsupportedSignatureAlgorithm
            | Code::WeakSignatureAlgorithm
            | Code::KeyAlgorithmMismatch
            | Code::UnsupportedPublicKey
            | Code::WeakPublicKey
            | Code::ExplicitCurveParameters
            | Code::BadSignature => 1,
            Code::NoEnrollment => 3,
            _ => 2,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two kinds of enrollment entry (attest SPEC §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EnrollmentKind {
    /// Keyed by registration ID; holds one device certificate.
    Individual,
    /// Keyed by group ID; holds one CA certificate.
    Group,
}

impl fmt::Display for EnrollmentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EnrollmentKind::Individual => "individual enrollment",
            EnrollmentKind::Group => "enrollment group",
        })
    }
}

/// An enrollment entry, by kind and ID.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EnrollmentRef {
    /// Individual enrollment or enrollment group.
    pub kind: EnrollmentKind,
    /// Registration ID (individual) or enrollment group ID (group).
    pub id: String,
}

impl fmt::Display for EnrollmentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} '{}'", self.kind, self.id)
    }
}

/// Which certificate a refusal concerns.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CertRef {
    /// 0 is the leaf, 1 the certificate above it, and so on along the path
    /// being built (or the presented chain, before path building).
    pub position: u32,
    /// Subject DN, RFC 4514 string form ("" if unparsable).
    pub subject: String,
    /// SHA-256 of the certificate's DER.
    pub sha256: [u8; 32],
}

impl fmt::Display for CertRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = match self.position {
            0 => "leaf".to_string(),
            n => format!("chain position {n}"),
        };
        if self.subject.is_empty() {
            write!(f, "{role}")
        } else {
            write!(f, "{role} '{}'", self.subject)
        }
    }
}

/// A refusal: a stable code, a one-line message, and where it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Stable machine-readable reason.
    pub code: Code,
    /// One line for a human: names the rule and the values involved.
    pub message: String,
    /// The certificate concerned, if any.
    pub certificate: Option<CertRef>,
    /// The enrollment entry concerned, if any.
    pub enrollment: Option<EnrollmentRef>,
}

impl Refusal {
    /// A refusal about no particular certificate or enrollment.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
            certificate: None,
            enrollment: None,
        }
    }

    /// Attaches the certificate concerned.
    pub fn at(mut self, cert: CertRef) -> Self {
        self.certificate = Some(cert);
        self
    }

    /// Attaches the enrollment entry concerned.
    pub fn with_enrollment(mut self, enrollment: EnrollmentRef) -> Self {
        self.enrollment = Some(enrollment);
        self
    }
}

impl fmt::Display for Refusal {
    /// `code: message [certificate] [enrollment]`, one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(c) = &self.certificate {
            write!(f, " [{c}]")?;
        }
        if let Some(e) = &self.enrollment {
            write!(f, " [{e}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for Refusal {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {c}");
            assert_eq!(Code::from_str_code(c.as_str()), Some(*c));
        }
        assert_eq!(Code::from_str_code("no-such-code"), None);
    }

    #[test]
    fn all_is_exhaustive() {
        // An exhaustive match: adding a variant without listing it in ALL
        // fails to compile here, and the count check catches a missing entry.
        let count = |c: Code| match c {
            Code::InputTooLarge
            | Code::MalformedCertificate
            | Code::MalformedExtension
            | Code::DuplicateExtension
            | Code::UnknownCriticalExtension
            | Code::InvalidSerialNumber
            | Code::UnsupportedCertificateVersion
            | Code::UnsupportedSignatureAlgorithm
            | Code::WeakSignatureAlgorithm
            | Code::SignatureAlgorithmMismatch
            | Code::KeyAlgorithmMismatch
            | Code::UnsupportedPublicKey
            | Code::WeakPublicKey
            | Code::ExplicitCurveParameters
            | Code::BadSignature
            | Code::CertificateExpired
            | Code::CertificateNotYetValid
            | Code::IssuerNotCa
            | Code::CaUsedAsEndEntity
            | Code::PathLengthExceeded
            | Code::MissingKeyCertSign
            | Code::MissingDigitalSignature
            | Code::LeafKeyCertSign
            | Code::ExtendedKeyUsageNotPermitted
            | Code::NameConstraintViolation
            | Code::InvalidNameConstraints
            | Code::EmptySubject
            | Code::UnknownIssuer
            | Code::PathBudgetExceeded
            | Code::InvalidRegistrationId
            | Code::RegistrationIdMismatch
            | Code::IndividualCertificateMismatch
            | Code::IndividualEnrollmentDisabled
            | Code::EnrollmentGroupDisabled
            | Code::NoEnrollment
            | Code::InvalidProof
            | Code::ProofOfPossessionFailed
            | Code::UnsupportedSignatureScheme
            | Code::VerificationCodeMismatch
            | Code::AmbiguousCommonName => 1,
        };
        assert_eq!(Code::ALL.iter().map(|c| count(*c)).sum::<usize>(), 40);
    }

    #[test]
    fn display_is_one_line_with_location() {
        let r = Refusal::new(Code::CertificateExpired, "expired at X")
            .at(CertRef {
                position: 1,
                subject: "CN=Line A".into(),
                sha256: [0; 32],
            })
            .with_enrollment(EnrollmentRef {
                kind: EnrollmentKind::Group,
                id: "line-a".into(),
            });
        assert_eq!(
            r.to_string(),
            "certificate-expired: expired at X [chain position 1 'CN=Line A'] [enrollment group 'line-a']"
        );
    }
}
