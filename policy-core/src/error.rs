//! Refusals: one stable code per reason, a one-line message, and where it happened.
//!
//! [`Code`] maps one-to-one onto the WIT `refusal-code` enum (`wit/attest.wit`);
//! `policy-host`'s tests parse the WIT file and hold the two in sync.

use core::fmt;

/// The table of refusal codes: one line per code, in the order of the WIT
/// `refusal-code` enum. Calls `$mac!` with every line as
/// `Variant "wit-name" rank stage "doc";`, where
///
/// - `wit-name` is the WIT case (and the stable string form),
/// - `rank` orders path-building failures when every candidate fails
///   (higher is more specific, see [`Code::rank`]),
/// - `stage` is [`Stage::Trusted`] when the refusal can only come after the
///   device's chain was trusted (an enrollment entry decided, or a verified
///   CA that no entry covers), else [`Stage::Untrusted`].
///
/// Everything that lists codes is generated from it: [`Code`], [`Code::ALL`],
/// [`Code::as_str`], [`Code::rank`], [`Code::stage`], and the two WIT mappers
/// (the component's in this crate, the host's in `policy-host`). A new code
/// costs one line in `wit/attest.wit` and one line here; `policy-host`'s
/// tests compare this table with the WIT file.
#[macro_export]
macro_rules! foreach_refusal_code {
    ($mac:ident) => {
        $mac! {
            InputTooLarge                   "input-too-large"                    2 Untrusted "Input exceeds a fixed limit (certificate count or size, string length).";
            MalformedCertificate            "malformed-certificate"              2 Untrusted "A certificate is not valid DER X.509 (RFC 5280 §4.1).";
            MalformedExtension              "malformed-extension"                2 Untrusted "A certificate extension is malformed (RFC 5280 §4.2).";
            DuplicateExtension              "duplicate-extension"                2 Untrusted "An extension appears more than once in a certificate (RFC 5280 §4.2).";
            UnknownCriticalExtension        "unknown-critical-extension"         2 Untrusted "A critical extension attest does not process (RFC 5280 §4.2).";
            InvalidSerialNumber             "invalid-serial-number"              2 Untrusted "The serial number is not a positive integer of at most 20 octets (RFC 5280 §4.1.2.2).";
            UnsupportedCertificateVersion   "unsupported-certificate-version"    2 Untrusted "A certificate version not accepted where it appears (RFC 5280 §4.1.2.1).";
            UnsupportedSignatureAlgorithm   "unsupported-signature-algorithm"    1 Untrusted "A signature algorithm attest does not know.";
            WeakSignatureAlgorithm          "weak-signature-algorithm"           1 Untrusted "A signature algorithm known to be weak (SHA-1, MD5, DSA).";
            SignatureAlgorithmMismatch      "signature-algorithm-mismatch"       2 Untrusted "The outer signatureAlgorithm differs from the TBS signature field (RFC 5280 §4.1.1.2).";
            KeyAlgorithmMismatch            "key-algorithm-mismatch"             1 Untrusted "The issuer's key type does not match the signature algorithm.";
            UnsupportedPublicKey            "unsupported-public-key"             1 Untrusted "A public key attest does not know or cannot parse.";
            WeakPublicKey                   "weak-public-key"                    1 Untrusted "A public key that is too weak (RSA < 2048 bits, curves below P-256).";
            ExplicitCurveParameters         "explicit-curve-parameters"          1 Untrusted "A public key with explicit EC domain parameters (RFC 5480 §2.1.1).";
            BadSignature                    "bad-signature"                      1 Untrusted "A signature does not verify.";
            CertificateExpired              "certificate-expired"                2 Untrusted "The validation time is after notAfter (RFC 5280 §4.1.2.5).";
            CertificateNotYetValid          "certificate-not-yet-valid"          2 Untrusted "The validation time is before notBefore (RFC 5280 §4.1.2.5).";
            IssuerNotCa                     "issuer-not-ca"                      2 Untrusted "An issuer is not a CA (RFC 5280 §4.2.1.9).";
            CaUsedAsEndEntity               "ca-used-as-end-entity"              2 Untrusted "A CA certificate was presented as the leaf.";
            PathLengthExceeded              "path-length-exceeded"               2 Untrusted "A pathLenConstraint is exceeded (RFC 5280 §4.2.1.9).";
            MissingKeyCertSign              "missing-key-cert-sign"              2 Untrusted "An issuer's keyUsage lacks keyCertSign (RFC 5280 §4.2.1.3).";
            MissingDigitalSignature         "missing-digital-signature"          2 Untrusted "The leaf's keyUsage lacks digitalSignature (RFC 5280 §4.2.1.3).";
            LeafKeyCertSign                 "leaf-key-cert-sign"                 2 Untrusted "The leaf carries keyCertSign but is not a CA (RFC 5280 §4.2.1.3).";
            ExtendedKeyUsageNotPermitted    "extended-key-usage-not-permitted"   2 Untrusted "The required extended key usage is not permitted (RFC 5280 §4.2.1.12).";
            NameConstraintViolation         "name-constraint-violation"          2 Untrusted "A name violates an issuer's name constraints (RFC 5280 §4.2.1.10).";
            InvalidNameConstraints          "invalid-name-constraints"           2 Untrusted "A name constraints extension is malformed or unsupported (RFC 5280 §4.2.1.10).";
            EmptySubject                    "empty-subject"                      2 Untrusted "The subject is empty and no critical subjectAltName stands in (RFC 5280 §4.1.2.6).";
            UnknownIssuer                   "unknown-issuer"                     0 Untrusted "No path to a trust anchor: the issuer is unknown (RFC 5280 §6.1).";
            PathBudgetExceeded              "path-budget-exceeded"               2 Untrusted "Path building stopped at a limit (depth, candidates, signature checks).";
            InvalidRegistrationId           "invalid-registration-id"            2 Untrusted "The registration ID is empty, too long or uses characters outside `a-z 0-9 - . _ :`.";
            RegistrationIdMismatch          "registration-id-mismatch"           2 Untrusted "The leaf's subject CN does not equal the registration ID.";
            IndividualCertificateMismatch   "individual-certificate-mismatch"    2 Untrusted "The individual enrollment for this registration ID holds a different certificate.";
            IndividualEnrollmentDisabled    "individual-enrollment-disabled"     2 Trusted   "The deciding individual enrollment is disabled.";
            EnrollmentGroupDisabled         "enrollment-group-disabled"          2 Trusted   "The deciding enrollment group is disabled.";
            NoEnrollment                    "no-enrollment"                      3 Trusted   "No enrollment exists for the leaf or any certificate above it.";
            InvalidProof                    "invalid-proof"                      2 Untrusted "The proof of possession is malformed (challenge too short or too long).";
            ProofOfPossessionFailed         "proof-of-possession-failed"         2 Untrusted "The proof-of-possession signature does not verify with the leaf's key.";
            UnsupportedSignatureScheme      "unsupported-signature-scheme"       2 Untrusted "The TLS signature scheme does not fit the leaf's key or is not allowed.";
            VerificationCodeMismatch        "verification-code-mismatch"         2 Untrusted "A verification certificate's subject CN is not the expected verification code.";
            AmbiguousCommonName             "ambiguous-common-name"              2 Untrusted "The leaf names more than one commonName, so its registration ID is ambiguous.";
            EnrollmentsStale                "enrollments-stale"                  2 Untrusted "The enrollments an edge gateway holds are older than its maximum age: it refuses every device until it syncs.";
            CertificateRevoked              "certificate-revoked"                3 Trusted   "A certificate of the path is revoked by a CRL in scope (RFC 5280 §6.3.3); the message names the reason and date.";
            RevocationStatusUnknown         "revocation-status-unknown"          3 Trusted   "No usable CRL covers a certificate of the path, or all its reasons: its status is UNDETERMINED (RFC 5280 §6.3.3).";
            CrlExpired                      "crl-expired"                        3 Trusted   "The only CRLs covering a certificate are past their nextUpdate (RFC 5280 §6.3.3(a)).";
        }
    };
}

/// Whether a refusal can be the answer about a trusted device
/// ([`Code::stage`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Decided before (or instead of) trusting the chain: whoever sent it
    /// may hold nothing but a key and a certificate naming someone else's
    /// registration ID. A service records nothing and shows nothing of the
    /// registration for it.
    Untrusted,
    /// Decided after the chain reached a verified CA and the proof of
    /// possession held: an enrollment entry refused (disabled), or no entry
    /// covers it. A service may record it for the certificate that sent it.
    Trusted,
}

macro_rules! define_codes {
    ($($variant:ident $name:literal $rank:literal $stage:ident $doc:literal;)*) => {
        /// Why a request was refused. Stable: the string form
        /// ([`Code::as_str`]) is part of attest's public contract and is
        /// never renamed or reused. Generated from [`foreach_refusal_code!`].
        #[non_exhaustive]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $(#[doc = $doc] $variant,)*
        }

        impl Code {
            /// Every code, in the order of the WIT `refusal-code` enum.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The stable string form: the WIT case name (kebab-case).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }

            /// How specific a path-building failure is: when every candidate
            /// path fails, the refusal with the highest rank is reported.
            /// "Unknown issuer" says least (nothing matched at all); a failure
            /// found after the signatures verified says most.
            pub const fn rank(self) -> u8 {
                match self {
                    $(Code::$variant => $rank,)*
                }
            }

            /// Whether the refusal comes after the device's chain was
            /// trusted ([`Stage`]): the one rule for what a service may record
            /// and show of a refused registration.
            pub const fn stage(self) -> Stage {
                match self {
                    $(Code::$variant => Stage::$stage,)*
                }
            }
        }
    };
}

foreach_refusal_code!(define_codes);

impl Code {
    /// Parses the stable string form back into a code.
    pub fn from_str_code(s: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == s)
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

/// Why a step of the search failed: rustls-webpki's `ControlFlow<Error,
/// Error>`, with names.
#[derive(Debug)]
pub(crate) enum Failed<E = Refusal> {
    /// This candidate (or this path) fails; the search tries the others.
    Candidate(E),
    /// The search ends here: a budget ran out.
    Search(Refusal),
}

impl From<Refusal> for Failed<String> {
    /// A spent budget ends the search.
    fn from(r: Refusal) -> Self {
        Failed::Search(r)
    }
}

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
    fn the_table_has_every_code_once_and_its_trusted_stages() {
        assert_eq!(Code::ALL.len(), 44);
        let trusted: Vec<Code> = Code::ALL
            .iter()
            .copied()
            .filter(|c| c.stage() == Stage::Trusted)
            .collect();
        assert_eq!(
            trusted,
            [
                Code::IndividualEnrollmentDisabled,
                Code::EnrollmentGroupDisabled,
                Code::NoEnrollment,
                // Revocation is checked on a path that validated: the
                // certificate's own record may say so (issue: a revocation
                // refusal is recorded like any trusted refusal).
                Code::CertificateRevoked,
                Code::RevocationStatusUnknown,
                Code::CrlExpired,
            ]
        );
        assert_eq!(Code::UnknownIssuer.rank(), 0);
        assert_eq!(Code::BadSignature.rank(), 1);
        assert_eq!(Code::CertificateExpired.rank(), 2);
        assert_eq!(Code::NoEnrollment.rank(), 3);
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
