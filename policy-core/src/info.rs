//! Requests, results and the enrollment data the host supplies. Each type
//! mirrors one WIT type of `wit/attest.wit`.

use crate::error::EnrollmentRef;

/// The extended key usage a caller requires of the leaf (RFC 5280 §4.2.1.12).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Purpose {
    /// id-kp-clientAuth: device attestation's default.
    #[default]
    ClientAuth,
    /// id-kp-serverAuth.
    ServerAuth,
    /// Any EKU, or none.
    Any,
}

/// A certificate as reported back to callers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Subject DN, RFC 4514 string form.
    pub subject: String,
    /// Issuer DN, RFC 4514 string form.
    pub issuer: String,
    /// Subject common name, if any.
    pub common_name: Option<String>,
    /// Serial number, upper-case hex of its content octets.
    pub serial: String,
    /// SHA-256 of the DER.
    pub sha256: [u8; 32],
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
}

/// A plain path validation request (WIT `chain-request`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainRequest {
    /// Leaf certificate, DER.
    pub leaf: Vec<u8>,
    /// Untrusted intermediates in any order, DER.
    pub intermediates: Vec<Vec<u8>>,
    /// Trust anchors, DER certificates.
    pub trust_anchors: Vec<Vec<u8>>,
    /// Validation time, Unix seconds.
    pub time: i64,
    /// Required extended key usage of the leaf.
    pub purpose: Purpose,
}

/// A path that validated with revocation checking
/// ([`crate::validate_chain_revocation`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validated {
    /// The path from leaf (first) to trust anchor (last).
    pub path: Vec<CertificateInfo>,
    /// What a lenient revocation policy let through: an UNDETERMINED status
    /// or a CRL past its nextUpdate, one refusal-shaped warning each.
    pub warnings: Vec<crate::error::Refusal>,
}

/// A device's attestation request (WIT `attest-request`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestRequest {
    /// The registration ID the device claims (must equal the leaf subject CN).
    pub registration_id: String,
    /// Leaf certificate, DER.
    pub leaf: Vec<u8>,
    /// Untrusted intermediates in any order, DER.
    pub intermediates: Vec<Vec<u8>>,
    /// Validation time, Unix seconds.
    pub time: i64,
    /// Required extended key usage of the leaf.
    pub purpose: Purpose,
}

/// An admission (WIT `decision`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The registration ID, as claimed.
    pub registration_id: String,
    /// The device ID to provision.
    pub device_id: String,
    /// The enrollment entry that decided.
    pub enrollment: EnrollmentRef,
    /// The trusted path, leaf first (only the leaf for an individual enrollment).
    pub path: Vec<CertificateInfo>,
}

/// An admission and what a lenient revocation policy let through (WIT
/// `attested`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attested {
    /// The admission.
    pub decision: Decision,
    /// An UNDETERMINED status or a CRL past its nextUpdate that the
    /// deciding entry's policy admits, one refusal-shaped warning each.
    pub warnings: Vec<crate::error::Refusal>,
}

/// Proof that the device holds its leaf private key (WIT `proof`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proof {
    /// A signature over [`crate::challenge_message`] for a service-issued challenge.
    ChallengeSignature {
        /// The challenge bytes (16 to 256).
        challenge: Vec<u8>,
        /// The device's signature.
        signature: Vec<u8>,
    },
    /// A TLS CertificateVerify from the handshake.
    TlsSignature {
        /// TLS SignatureScheme code point (RFC 8446 §4.2.3).
        scheme: u16,
        /// The content the client signed.
        message: Vec<u8>,
        /// The signature.
        signature: Vec<u8>,
    },
}

/// An individual enrollment as the host stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndividualEnrollment {
    /// Registration ID.
    pub registration_id: String,
    /// Device ID to assign; the registration ID when absent.
    pub device_id: Option<String>,
    /// provisioningStatus enabled (true) or disabled (false).
    pub enabled: bool,
    /// SHA-256 of the enrolled certificate(s): primary, then secondary.
    pub certificates: Vec<[u8; 32]>,
}

/// An enrollment group as the host stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollmentGroup {
    /// Enrollment group ID.
    pub group_id: String,
    /// provisioningStatus enabled (true) or disabled (false).
    pub enabled: bool,
}

/// Enrollment data, looked up by the host (WIT `enrollments` import).
///
/// Hosts index their CA certificates by [`crate::certificate_keys`].
pub trait EnrollmentSource {
    /// The individual enrollment for a registration ID (case-insensitive).
    fn individual(&self, registration_id: &str) -> Option<IndividualEnrollment>;
    /// The group whose CA certificate (primary or secondary) has this CA
    /// identity ([`CertificateKeys::ca_identity`]): any certificate of the
    /// same CA (same subject, same key) matches the group.
    fn group(&self, ca_identity: &[u8; 32]) -> Option<EnrollmentGroup>;
    /// Trusted anchor certificates (verified CAs and group CA certificates),
    /// DER, whose subject name key ([`CertificateKeys::subject_key`]) is
    /// `subject_key`. Returning more is allowed; the core ignores the rest.
    fn trust_anchors(&self, subject_key: &[u8; 32]) -> Vec<Vec<u8>>;
    /// The revocation policy of an enrollment entry (WIT
    /// `enrollments.revocation`, 0.6.0): what its `revocation` field says,
    /// else [`crate::RevocationPolicy::CONFIGURED`], the default here.
    fn revocation(&self, entry: &EnrollmentRef) -> crate::RevocationPolicy {
        let _ = entry;
        crate::RevocationPolicy::CONFIGURED
    }
}

/// The keys a host indexes a certificate by (WIT `certificate-keys`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CertificateKeys {
    /// SHA-256 of the DER (individual enrollments hold these).
    pub sha256: [u8; 32],
    /// SHA-256 of the subject name's RFC 4518-prepared canonical form:
    /// equal for names that RFC 5280 §7.1 says are the same.
    pub subject_key: [u8; 32],
    /// The CA identity: the prepared subject and the public key. Re-issued
    /// certificates of one CA (same subject, same key) share it.
    pub ca_identity: [u8; 32],
}
