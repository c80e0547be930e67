//! Enrollment resolution and proof of possession (attest SPEC §1).

use std::collections::HashMap;
use std::rc::Rc;

use sha2::{Digest, Sha256};

use crate::alg::{self, SignatureVerifier};
use crate::cert::Cert;
use crate::crl::{Checker, CrlSet, CrlSource, RevocationMode, RevocationPolicy};
use crate::error::{CertRef, Code, EnrollmentKind, EnrollmentRef, Refusal};
use crate::info::{
    AttestRequest, Attested, CertificateInfo, CertificateKeys, ChainRequest, Decision,
    EnrollmentGroup, EnrollmentSource, IndividualEnrollment, Proof, Validated,
};
use crate::verify::{
    AnchorList, AnchorSource, Flow, MAX_INTERMEDIATES, MAX_TRUST_ANCHORS, check_leaf,
    check_validity, keep_best, search_paths, verify_signed_by,
};

/// Longest registration ID (DPS: 128 characters).
pub const MAX_REGISTRATION_ID_LEN: usize = 128;
/// Shortest challenge accepted, bytes: 128 bits of service randomness.
pub const MIN_CHALLENGE_LEN: usize = 16;
/// Longest challenge accepted, bytes.
pub const MAX_CHALLENGE_LEN: usize = 256;
/// Longest TLS signed content accepted (TLS 1.3 CertificateVerify content
/// is 64 + 34 + hash length bytes; TLS 1.2 transcripts are longer).
pub const MAX_TLS_MESSAGE_LEN: usize = 64 * 1024;
/// Domain-separation prefix of the challenge message (version 1).
pub const CHALLENGE_CONTEXT: &[u8] = b"attest-pop-v1";

/// Validates `request.leaf` up to one of `request.trust_anchors`
/// (RFC 5280 §6 under attest's profile). On success, the path from leaf
/// (first) to anchor (last).
pub fn validate_chain(
    request: &ChainRequest,
    crypto: &dyn SignatureVerifier,
) -> Result<Vec<CertificateInfo>, Refusal> {
    let (leaf, intermediates, anchors) = parse_chain(request)?;
    // Any valid path will do: the first in the search's canonical order.
    let mut found = None;
    let searched = search_paths(
        leaf,
        &intermediates,
        &mut AnchorList(anchors),
        request.time,
        request.purpose,
        crypto,
        &mut |path| {
            found = Some(path.iter().map(|c| c.info()).collect());
            Flow::Stop
        },
    );
    searched.ended?;
    found.ok_or(searched.failure)
}

/// A chain request's certificates, parsed: leaf, intermediates, anchors.
type ParsedChain = (Cert, Vec<Rc<Cert>>, Vec<Rc<Cert>>);

/// Parses a chain request's certificates ([`ParsedChain`]).
fn parse_chain(request: &ChainRequest) -> Result<ParsedChain, Refusal> {
    check_count(
        request.trust_anchors.len(),
        MAX_TRUST_ANCHORS,
        "trust anchors",
    )?;
    let leaf = parse_presented(&request.leaf, 0)?;
    let intermediates = parse_intermediates(&request.intermediates)?;
    let anchors = request
        .trust_anchors
        .iter()
        .enumerate()
        .map(|(i, der)| {
            Cert::parse(der).map(Rc::new).map_err(|(code, message)| {
                Refusal::new(code, format!("trust anchor #{}: {message}", i + 1))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((leaf, intermediates, anchors))
}

/// [`validate_chain`] with revocation checking (RFC 5280 §6.3) against
/// `crls` under `policy`. Every path the search finds is checked; a path
/// with a revoked or undetermined certificate is refused and the search
/// goes on (another path may avoid that certificate). When no path
/// passes, the most specific refusal is reported.
pub fn validate_chain_revocation(
    request: &ChainRequest,
    crls: &CrlSet,
    policy: RevocationPolicy,
    crypto: &dyn SignatureVerifier,
) -> Result<Validated, Refusal> {
    validate_with_crls(request, crls, policy, crypto)
}

/// [`validate_chain_revocation`] with CRLs from any source (the
/// component's comes through its `revocation` import).
pub(crate) fn validate_with_crls(
    request: &ChainRequest,
    crls: &dyn CrlSource,
    policy: RevocationPolicy,
    crypto: &dyn SignatureVerifier,
) -> Result<Validated, Refusal> {
    let (leaf, intermediates, anchors) = parse_chain(request)?;
    let checker = Checker::new(crls, policy, &intermediates, request.time, crypto);
    let mut found = None;
    let mut refused: Option<Refusal> = None;
    let searched = search_paths(
        leaf,
        &intermediates,
        &mut AnchorList(anchors),
        request.time,
        request.purpose,
        crypto,
        &mut |path| match checker.check_path(path) {
            Ok(warnings) => {
                found = Some(Validated {
                    path: path.iter().map(|c| c.info()).collect(),
                    warnings,
                });
                Flow::Stop
            }
            Err(r) => {
                keep_best(&mut refused, r);
                Flow::Settled
            }
        },
    );
    searched.ended?;
    if let Some(found) = found {
        return Ok(found);
    }
    let mut best = refused;
    keep_best(&mut best, searched.failure);
    Err(best.unwrap_or_else(|| Refusal::new(Code::UnknownIssuer, "no path to a trust anchor")))
}

/// Resolves the enrollment for a chain without a proof of possession: what
/// [`attest`] would decide for a device that proves its key. Revocation is
/// checked as in [`resolve_checked`], with no CRLs held (an entry whose
/// policy requires a CRL refuses); use that to see the warnings.
pub fn resolve(
    request: &AttestRequest,
    crypto: &dyn SignatureVerifier,
    enrollments: &dyn EnrollmentSource,
) -> Result<Decision, Refusal> {
    resolve_checked(request, crypto, enrollments, &CrlSet::default()).map(|a| a.decision)
}

/// [`resolve`] with revocation checking: the deciding entry's revocation
/// policy ([`EnrollmentSource::revocation`]) applied to its path against
/// `crls`.
pub fn resolve_checked(
    request: &AttestRequest,
    crypto: &dyn SignatureVerifier,
    enrollments: &dyn EnrollmentSource,
    crls: &CrlSet,
) -> Result<Attested, Refusal> {
    resolve_with_crls(request, crypto, enrollments, crls)
}

pub(crate) fn resolve_with_crls(
    request: &AttestRequest,
    crypto: &dyn SignatureVerifier,
    enrollments: &dyn EnrollmentSource,
    crls: &dyn CrlSource,
) -> Result<Attested, Refusal> {
    let leaf = claimed_leaf(request)?;
    decide(request, leaf, crypto, enrollments, crls)
}

/// Full attestation: the leaf matches the registration ID, the device
/// proves possession of the leaf key, then the chain is validated and the
/// most specific enrollment entry decides (SPEC §1). Revocation is checked
/// as in [`attest_checked`] with no CRLs held.
///
/// The proof is checked before any enrollment is looked up, so that someone
/// holding only a device's public certificate learns nothing about its
/// enrollment state.
pub fn attest(
    request: &AttestRequest,
    proof: &Proof,
    crypto: &dyn SignatureVerifier,
    enrollments: &dyn EnrollmentSource,
) -> Result<Decision, Refusal> {
    attest_checked(request, proof, crypto, enrollments, &CrlSet::default()).map(|a| a.decision)
}

/// [`attest`] with revocation checking: after the entry is resolved, its
/// revocation policy ([`EnrollmentSource::revocation`]) is applied to the
/// path that entry decided on, against `crls` (RFC 5280 §6.3). A revoked
/// certificate (or, unless the policy is lenient, an undetermined status)
/// on any enrolled path refuses the device.
pub fn attest_checked(
    request: &AttestRequest,
    proof: &Proof,
    crypto: &dyn SignatureVerifier,
    enrollments: &dyn EnrollmentSource,
    crls: &CrlSet,
) -> Result<Attested, Refusal> {
    attest_with_crls(request, proof, crypto, enrollments, crls)
}

pub(crate) fn attest_with_crls(
    request: &AttestRequest,
    proof: &Proof,
    crypto: &dyn SignatureVerifier,
    enrollments: &dyn EnrollmentSource,
    crls: &dyn CrlSource,
) -> Result<Attested, Refusal> {
    let leaf = claimed_leaf(request)?;
    check_proof(&leaf, &request.registration_id, proof, crypto)?;
    decide(request, leaf, crypto, enrollments, crls)
}

/// The exact bytes a device signs to answer `challenge` (version 1):
///
/// ```text
/// "attest-pop-v1" 0x00 lowercase(registration ID) 0x00 challenge
/// ```
///
/// The context string keeps the signature from being valid for any other
/// protocol; the registration ID keeps it from being replayed for another
/// device. Registration IDs cannot contain 0x00, so the encoding is
/// unambiguous.
pub fn challenge_message(registration_id: &str, challenge: &[u8]) -> Result<Vec<u8>, Refusal> {
    check_registration_id(registration_id)?;
    if !(MIN_CHALLENGE_LEN..=MAX_CHALLENGE_LEN).contains(&challenge.len()) {
        return Err(Refusal::new(
            Code::InvalidProof,
            format!(
                "challenge is {} bytes; it must be {MIN_CHALLENGE_LEN} to {MAX_CHALLENGE_LEN}",
                challenge.len()
            ),
        ));
    }
    let mut message =
        Vec::with_capacity(CHALLENGE_CONTEXT.len() + 2 + registration_id.len() + challenge.len());
    message.extend_from_slice(CHALLENGE_CONTEXT);
    message.push(0);
    message.extend(registration_id.bytes().map(|b| b.to_ascii_lowercase()));
    message.push(0);
    message.extend_from_slice(challenge);
    Ok(message)
}

/// CA proof of possession (DPS "verify certificate"): the verification
/// certificate's subject CN equals `verification_code`, its signature
/// verifies with the CA's key, and both are valid at `time`; the CA
/// certificate is a CA. Returns the CA's summary.
pub fn verify_ca_possession(
    ca_certificate: &[u8],
    verification_certificate: &[u8],
    verification_code: &str,
    time: i64,
    crypto: &dyn SignatureVerifier,
) -> Result<CertificateInfo, Refusal> {
    if verification_code.is_empty() || verification_code.len() > 256 {
        return Err(Refusal::new(
            Code::InputTooLarge,
            "verification code must be 1 to 256 characters",
        ));
    }
    let verification = parse_presented(verification_certificate, 0)?;
    let ca = parse_presented(ca_certificate, 1)?;
    if let Some((code, message)) = &ca.defect {
        return Err(ca.refuse(1, *code, message.clone()));
    }
    if !ca.is_ca() {
        return Err(ca.refuse(
            1,
            Code::IssuerNotCa,
            "the CA certificate's basicConstraints does not assert cA (RFC 5280 §4.2.1.9)".into(),
        ));
    }
    if ca.key_usage.as_ref().is_some_and(|ku| !ku.key_cert_sign()) {
        return Err(ca.refuse(
            1,
            Code::MissingKeyCertSign,
            "the CA certificate's keyUsage lacks keyCertSign (RFC 5280 §4.2.1.3)".into(),
        ));
    }
    check_validity(&ca, 1, "CA certificate", time)?;
    if let Some((code, message)) = &verification.defect {
        return Err(verification.refuse(0, *code, message.clone()));
    }
    check_validity(&verification, 0, "verification certificate", time)?;
    if verification.common_name_count != 1
        || verification.common_name.as_deref() != Some(verification_code)
    {
        return Err(verification.refuse(
            0,
            Code::VerificationCodeMismatch,
            // Never echo the expected code: whoever asks must already hold it.
            format!(
                "verification certificate CN {:?} is not the verification code issued for this CA (it must be the only CN)",
                verification.common_name.as_deref().unwrap_or("")
            ),
        ));
    }
    verify_signed_by(&verification, 0, &ca, crypto)?;
    Ok(ca.info())
}

/// The keys a host indexes a CA certificate by: its SHA-256, the key of its
/// subject name (the `enrollments.trust-anchors` lookup) and its CA
/// identity (the `enrollments.group` lookup).
pub fn certificate_keys(der: &[u8]) -> Result<CertificateKeys, Refusal> {
    let cert = parse_presented(der, 0)?;
    Ok(CertificateKeys {
        sha256: cert.sha256,
        subject_key: cert.subject_key,
        ca_identity: cert.identity,
    })
}

/// What a management API shows of a certificate (DPS `X509CertificateInfo`):
/// its summary and its X.509 version (1 to 3).
pub fn certificate_details(der: &[u8]) -> Result<(CertificateInfo, u8), Refusal> {
    let cert = parse_presented(der, 0)?;
    let version = match cert.version {
        x509_cert::certificate::Version::V1 => 1,
        x509_cert::certificate::Version::V2 => 2,
        x509_cert::certificate::Version::V3 => 3,
    };
    Ok((cert.info(), version))
}

/// A certificate's subject common name, if any (hosts use it as the
/// default registration ID, as DPS clients do).
pub fn certificate_common_name(der: &[u8]) -> Result<Option<String>, Refusal> {
    Ok(parse_presented(der, 0)?.common_name)
}

/// DPS registration ID rules: 1 to 128 of `a-z 0-9 - . _ :`, beginning
/// and ending with a letter or digit (DPS forbids its special characters
/// at either end), compared case-insensitively (so upper-case letters are
/// accepted as well).
pub fn check_registration_id(registration_id: &str) -> Result<(), Refusal> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':');
    let ends_alphanumeric = registration_id
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && registration_id
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if registration_id.len() > MAX_REGISTRATION_ID_LEN
        || !registration_id.chars().all(valid_char)
        || !ends_alphanumeric
    {
        let shown: String = registration_id.chars().take(40).collect();
        return Err(Refusal::new(
            Code::InvalidRegistrationId,
            format!(
                "registration ID {shown:?} must be 1 to {MAX_REGISTRATION_ID_LEN} characters of a-z 0-9 - . _ :, beginning and ending with a letter or digit"
            ),
        ));
    }
    Ok(())
}

fn parse_presented(der: &[u8], position: usize) -> Result<Cert, Refusal> {
    Cert::parse(der).map_err(|(code, message)| {
        Refusal::new(code, message).at(CertRef {
            position: u32::try_from(position).unwrap_or(u32::MAX),
            subject: String::new(),
            sha256: Sha256::digest(der).into(),
        })
    })
}

fn check_count(count: usize, max: usize, what: &str) -> Result<(), Refusal> {
    if count > max {
        return Err(Refusal::new(
            Code::InputTooLarge,
            format!("{count} {what} presented; the limit is {max}"),
        ));
    }
    Ok(())
}

fn parse_intermediates(ders: &[Vec<u8>]) -> Result<Vec<Rc<Cert>>, Refusal> {
    check_count(ders.len(), MAX_INTERMEDIATES, "intermediate certificates")?;
    ders.iter()
        .enumerate()
        .map(|(i, der)| parse_presented(der, i + 1).map(Rc::new))
        .collect()
}

/// Parses the leaf and checks it names the claimed registration ID.
fn claimed_leaf(request: &AttestRequest) -> Result<Cert, Refusal> {
    check_registration_id(&request.registration_id)?;
    check_count(
        request.intermediates.len(),
        MAX_INTERMEDIATES,
        "intermediate certificates",
    )?;
    let leaf = parse_presented(&request.leaf, 0)?;
    if leaf.common_name_count > 1 {
        return Err(leaf.refuse(
            0,
            Code::AmbiguousCommonName,
            format!(
                "the leaf subject has {} commonName attributes; a device certificate names its registration ID exactly once",
                leaf.common_name_count
            ),
        ));
    }
    match &leaf.common_name {
        Some(cn) if cn.eq_ignore_ascii_case(&request.registration_id) => Ok(leaf),
        Some(cn) => Err(leaf.refuse(
            0,
            Code::RegistrationIdMismatch,
            format!(
                "leaf subject CN {cn:?} does not equal registration ID {:?}",
                request.registration_id
            ),
        )),
        None => Err(leaf.refuse(
            0,
            Code::RegistrationIdMismatch,
            format!(
                "leaf subject has no common name; it must equal registration ID {:?}",
                request.registration_id
            ),
        )),
    }
}

fn check_proof(
    leaf: &Cert,
    registration_id: &str,
    proof: &Proof,
    crypto: &dyn SignatureVerifier,
) -> Result<(), Refusal> {
    let key = leaf
        .key
        .as_ref()
        .map_err(|(code, message)| leaf.refuse(0, *code, message.clone()))?;
    let (algorithm, message, signature) = match proof {
        Proof::ChallengeSignature {
            challenge,
            signature,
        } => (
            alg::challenge_algorithm(key),
            challenge_message(registration_id, challenge)?,
            signature,
        ),
        Proof::TlsSignature {
            scheme,
            message,
            signature,
        } => {
            if message.len() > MAX_TLS_MESSAGE_LEN {
                return Err(Refusal::new(
                    Code::InputTooLarge,
                    format!("TLS signed content is longer than {MAX_TLS_MESSAGE_LEN} bytes"),
                ));
            }
            let algorithm = alg::tls_algorithm(*scheme, key, message)
                .map_err(|m| leaf.refuse(0, Code::UnsupportedSignatureScheme, m))?;
            (algorithm, message.clone(), signature)
        }
    };
    if crypto.verify_signature(algorithm, &key.bytes, &message, signature) {
        Ok(())
    } else {
        Err(leaf.refuse(
            0,
            Code::ProofOfPossessionFailed,
            format!(
                "proof-of-possession signature does not verify with the leaf key ({algorithm:?})"
            ),
        ))
    }
}

/// Trust anchors from the host's store, parsed once per subject.
struct StoreAnchors<'a> {
    source: &'a dyn EnrollmentSource,
    cache: HashMap<[u8; 32], Vec<Rc<Cert>>>,
}

impl AnchorSource for StoreAnchors<'_> {
    fn anchors_for(&mut self, name_key: &[u8; 32]) -> Vec<Rc<Cert>> {
        if let Some(found) = self.cache.get(name_key) {
            return found.clone();
        }
        let found: Vec<Rc<Cert>> = self
            .source
            .trust_anchors(name_key)
            .iter()
            // Bounded even if the host answers with its whole store.
            .take(MAX_TRUST_ANCHORS)
            // A malformed certificate in the host's store cannot anchor
            // anything; hosts validate certificates when they are stored.
            .filter_map(|der| Cert::parse(der).ok())
            .filter(|c| c.subject_key == *name_key)
            .take(MAX_INTERMEDIATES)
            .map(Rc::new)
            .collect();
        self.cache.insert(*name_key, found.clone());
        found
    }
}

/// What one valid path decides: the first certificate above the leaf
/// whose CA identity has an enrollment group (SPEC §1).
struct Finding {
    position: usize,
    group: EnrollmentGroup,
    path: Vec<Rc<Cert>>,
    /// What the group's lenient revocation policy let through on this path.
    warnings: Vec<Refusal>,
}

impl Finding {
    /// The order-independent preference among findings: nearest the leaf,
    /// then the lowest group ID, then the path with the lowest sequence of
    /// certificate SHA-256s.
    fn key(&self) -> (usize, &str, Vec<[u8; 32]>) {
        (
            self.position,
            &self.group.group_id,
            self.path.iter().map(|c| c.sha256).collect(),
        )
    }
}

/// SPEC §1 resolution: individual enrollment for the leaf, else, on every
/// valid path, the group of the first certificate above the leaf that has
/// one. A path's first entry decides that path; a disabled entry on any
/// valid path refuses the device, whatever other paths say; among
/// admissions the entry nearest the leaf wins (ties: lowest group ID).
fn decide(
    request: &AttestRequest,
    leaf: Cert,
    crypto: &dyn SignatureVerifier,
    enrollments: &dyn EnrollmentSource,
    crls: &dyn CrlSource,
) -> Result<Attested, Refusal> {
    // Registration IDs compare case-insensitively (DPS): the decision and
    // a defaulted device ID use the canonical lower-case form, so the
    // letter case of a URL cannot mint a second identity for one device.
    let registration_id = request.registration_id.to_ascii_lowercase();
    match enrollments.individual(&registration_id) {
        Some(individual) => decide_individual(
            request,
            registration_id,
            leaf,
            individual,
            Revocation {
                crypto,
                enrollments,
                crls,
            },
        ),
        None => decide_by_groups(request, registration_id, leaf, crypto, enrollments, crls),
    }
}

/// The individual enrollment for the registration ID decides alone: it
/// must hold this very leaf, which must pass the leaf rules, and be enabled.
fn decide_individual(
    request: &AttestRequest,
    registration_id: String,
    leaf: Cert,
    individual: IndividualEnrollment,
    revocation: Revocation<'_>,
) -> Result<Attested, Refusal> {
    let entry = EnrollmentRef {
        kind: EnrollmentKind::Individual,
        id: individual.registration_id.clone(),
    };
    if !individual.certificates.contains(&leaf.sha256) {
        return Err(leaf
            .refuse(
                0,
                Code::IndividualCertificateMismatch,
                "the individual enrollment for this registration ID holds a different certificate (SHA-256 differs)".into(),
            )
            .with_enrollment(entry));
    }
    check_leaf(&leaf, request.time, request.purpose)
        .map_err(|r| r.with_enrollment(entry.clone()))?;
    if !individual.enabled {
        return Err(leaf
            .refuse(
                0,
                Code::IndividualEnrollmentDisabled,
                "the individual enrollment for this device is disabled".into(),
            )
            .with_enrollment(entry));
    }
    let policy = revocation.enrollments.revocation(&entry);
    let leaf = Rc::new(leaf);
    let warnings = revocation
        .individual(request, &leaf, policy)
        .map_err(|r| r.with_enrollment(entry.clone()))?;
    Ok(Attested {
        decision: Decision {
            device_id: individual
                .device_id
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| registration_id.clone()),
            registration_id,
            enrollment: entry,
            path: vec![leaf.info()],
        },
        warnings,
    })
}

/// What an entry's revocation check needs.
struct Revocation<'a> {
    crypto: &'a dyn SignatureVerifier,
    enrollments: &'a dyn EnrollmentSource,
    crls: &'a dyn CrlSource,
}

impl Revocation<'_> {
    /// An individual enrollment pins the leaf and builds no path, so only
    /// the leaf is checked (whatever the mode beyond `off`), against the
    /// CRLs of its issuer: an issuer certificate that signed it, from the
    /// certificates the device sent or the host's trust anchors, verifies
    /// them. With none at hand a status that must be checked is
    /// UNDETERMINED.
    fn individual(
        &self,
        request: &AttestRequest,
        leaf: &Rc<Cert>,
        policy: RevocationPolicy,
    ) -> Result<Vec<Refusal>, Refusal> {
        if policy.mode == RevocationMode::Off {
            return Ok(Vec::new());
        }
        // The device's other certificates only help find the issuer here:
        // one that does not parse is skipped, as a path search would.
        let intermediates: Vec<Rc<Cert>> = request
            .intermediates
            .iter()
            .take(MAX_INTERMEDIATES)
            .filter_map(|der| Cert::parse(der).ok().map(Rc::new))
            .collect();
        let leaf_only = RevocationPolicy {
            mode: match policy.mode {
                RevocationMode::Configured => RevocationMode::Configured,
                _ => RevocationMode::Leaf,
            },
            ..policy
        };
        let checker = Checker::new(
            self.crls,
            leaf_only,
            &intermediates,
            request.time,
            self.crypto,
        );
        if policy.mode == RevocationMode::Configured && !checker.configured_for(leaf) {
            return Ok(Vec::new());
        }
        let mut anchors = StoreAnchors {
            source: self.enrollments,
            cache: HashMap::new(),
        };
        let issuers = intermediates
            .iter()
            .filter(|c| c.subject_key == leaf.issuer_key)
            .cloned()
            .chain(anchors.anchors_for(&leaf.issuer_key));
        let mut best: Option<Refusal> = None;
        for issuer in issuers {
            if verify_signed_by(leaf, 0, &issuer, self.crypto).is_err() {
                continue;
            }
            match checker.check_path(&[Rc::clone(leaf), issuer]) {
                Ok(warnings) => return Ok(warnings),
                Err(r) => keep_best(&mut best, r),
            }
        }
        if let Some(refusal) = best {
            return Err(refusal);
        }
        let mut warnings = Vec::new();
        checker.leaf_undetermined(
            leaf,
            format!(
                "no certificate of its issuer '{}' that signed it is at hand to verify a CRL with",
                leaf.issuer_text
            ),
            &mut warnings,
        )?;
        Ok(warnings)
    }
}

/// No individual enrollment: every valid path is searched for the group of
/// the first CA above the leaf that has one (see [`decide`]).
fn decide_by_groups(
    request: &AttestRequest,
    registration_id: String,
    leaf: Cert,
    crypto: &dyn SignatureVerifier,
    enrollments: &dyn EnrollmentSource,
    crls: &dyn CrlSource,
) -> Result<Attested, Refusal> {
    let intermediates = parse_intermediates(&request.intermediates)?;
    let device_id = leaf
        .common_name
        .clone()
        .unwrap_or_else(|| registration_id.clone());
    let mut anchors = StoreAnchors {
        source: enrollments,
        cache: HashMap::new(),
    };
    let mut groups: HashMap<[u8; 32], Option<EnrollmentGroup>> = HashMap::new();
    let mut policies: HashMap<String, RevocationPolicy> = HashMap::new();
    let mut admitted: Option<Finding> = None;
    let mut refused: Option<Finding> = None;
    let mut revoked: Option<Refusal> = None;
    let mut unenrolled: Option<Vec<Rc<Cert>>> = None;
    let searched = search_paths(
        leaf,
        &intermediates,
        &mut anchors,
        request.time,
        request.purpose,
        crypto,
        &mut |path| {
            for (position, cert) in path.iter().enumerate().skip(1) {
                let group = groups
                    .entry(cert.identity)
                    .or_insert_with(|| enrollments.group(&cert.identity));
                let Some(group) = group else { continue };
                let mut finding = Finding {
                    position,
                    group: group.clone(),
                    path: path.to_vec(),
                    warnings: Vec::new(),
                };
                if group.enabled {
                    // The group decides this path: its revocation policy
                    // applies to the whole path, and a path it refuses
                    // refuses the device (as a disabled entry would).
                    let entry = EnrollmentRef {
                        kind: EnrollmentKind::Group,
                        id: group.group_id.clone(),
                    };
                    let policy = *policies
                        .entry(group.group_id.clone())
                        .or_insert_with(|| enrollments.revocation(&entry));
                    let checker = Checker::new(crls, policy, &intermediates, request.time, crypto);
                    match checker.check_path(path) {
                        Ok(warnings) => finding.warnings = warnings,
                        Err(r) => {
                            keep_best(&mut revoked, r.with_enrollment(entry));
                            return Flow::Settled;
                        }
                    }
                }
                let slot = if group.enabled {
                    &mut admitted
                } else {
                    &mut refused
                };
                if slot.as_ref().is_none_or(|f| finding.key() < f.key()) {
                    *slot = Some(finding);
                }
                // Every longer path through this one meets the same first entry.
                return Flow::Settled;
            }
            let shas = |p: &[Rc<Cert>]| p.iter().map(|c| c.sha256).collect::<Vec<_>>();
            if unenrolled.as_deref().is_none_or(|u| shas(path) < shas(u)) {
                unenrolled = Some(path.to_vec());
            }
            Flow::Continue
        },
    );
    // A disabled entry on any valid path refuses the device, even when the
    // budget stopped the search; an admission needs the whole search.
    if let Some(Finding {
        position,
        group,
        path,
        ..
    }) = refused
    {
        return Err(path[position]
            .refuse(
                position,
                Code::EnrollmentGroupDisabled,
                "the enrollment group of this CA is disabled".into(),
            )
            .with_enrollment(EnrollmentRef {
                kind: EnrollmentKind::Group,
                id: group.group_id,
            }));
    }
    // Likewise a path its group's revocation policy refuses.
    if let Some(refusal) = revoked {
        return Err(refusal);
    }
    searched.ended?;
    if let Some(Finding {
        group,
        path,
        warnings,
        ..
    }) = admitted
    {
        return Ok(Attested {
            decision: Decision {
                registration_id,
                device_id,
                enrollment: EnrollmentRef {
                    kind: EnrollmentKind::Group,
                    id: group.group_id,
                },
                path: path.iter().map(|c| c.info()).collect(),
            },
            warnings,
        });
    }
    if let Some(path) = unenrolled {
        let top = path.len() - 1;
        return Err(path[top].refuse(
            top,
            Code::NoEnrollment,
            "the chain is valid but no enrollment exists for the leaf or any certificate above it"
                .into(),
        ));
    }
    Err(searched.failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_ids() {
        assert!(check_registration_id("device-01.a_b:c").is_ok());
        assert!(check_registration_id("Device-01").is_ok());
        for bad in ["", "dev ice", "dev/ice", "dévice", &"a".repeat(129)] {
            assert_eq!(
                check_registration_id(bad).unwrap_err().code,
                Code::InvalidRegistrationId,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn challenge_message_binds_context_and_device() {
        let m = challenge_message("Dev-1", &[7; 16]).unwrap();
        let mut expected = b"attest-pop-v1\0dev-1\0".to_vec();
        expected.extend([7; 16]);
        assert_eq!(m, expected);
        assert_ne!(m, challenge_message("dev-2", &[7; 16]).unwrap());
        assert_eq!(
            challenge_message("dev-1", &[7; 15]).unwrap_err().code,
            Code::InvalidProof
        );
        assert_eq!(
            challenge_message("dev-1", &[7; 257]).unwrap_err().code,
            Code::InvalidProof
        );
    }
}
