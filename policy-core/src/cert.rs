//! One parsed certificate: the fields path validation needs, extracted once.
//!
//! Parsing fails only when the DER cannot be read as an X.509 certificate at
//! all (RFC 5280 §4.1). Profile defects that concern one certificate (unknown
//! critical extensions, duplicates, a bad serial, mismatched signature
//! algorithms) are kept in [`Cert::defect`] and refused when the certificate
//! is used, so that an unusable extra intermediate does not spoil a path that
//! does not need it.

use der::asn1::ObjectIdentifier;
use der::{Decode, Header, Reader, SliceReader, Tag};
use sha2::{Digest, Sha256};
use x509_cert::certificate::Version;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, ExtendedKeyUsage, KeyUsage, SubjectAltName, SubjectKeyIdentifier,
};

use crate::alg::{self, PublicKey};
use crate::dn::{self, DistinguishedName, format_name, hex_upper};
use crate::error::{CertRef, Code, Refusal};
use crate::info::CertificateInfo;
use crate::names::{self, Constraints};

/// Largest certificate accepted, in bytes. Device and CA certificates are
/// typically under 2 KiB; RSA-8192 with many extensions stays under 8 KiB.
pub const MAX_CERTIFICATE_SIZE: usize = 16 * 1024;

pub(crate) mod oid {
    use der::asn1::ObjectIdentifier as Oid;
    pub(crate) const BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
    pub(crate) const KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
    pub(crate) const EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37");
    pub(crate) const SUBJECT_ALT_NAME: Oid = Oid::new_unwrap("2.5.29.17");
    pub(crate) const SUBJECT_KEY_ID: Oid = Oid::new_unwrap("2.5.29.14");
    pub(crate) const AUTHORITY_KEY_ID: Oid = Oid::new_unwrap("2.5.29.35");
    pub(crate) const NAME_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.30");
    pub(crate) const POLICY_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.36");
    pub(crate) const CRL_DISTRIBUTION_POINTS: Oid = Oid::new_unwrap("2.5.29.31");
    pub(crate) const KP_SERVER_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.1");
    pub(crate) const KP_CLIENT_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.2");
    pub(crate) const ANY_EXTENDED_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37.0");
}

/// Extensions whose semantics attest enforces, and which may therefore be
/// marked critical. Everything else that is critical is refused
/// (RFC 5280 §4.2: "A certificate-using system MUST reject the certificate if
/// it encounters a critical extension it does not recognize").
const PROCESSED_CRITICAL: &[ObjectIdentifier] = &[
    oid::BASIC_CONSTRAINTS,
    oid::KEY_USAGE,
    oid::EXT_KEY_USAGE,
    oid::SUBJECT_ALT_NAME,
    oid::NAME_CONSTRAINTS,
];

/// basicConstraints (RFC 5280 §4.2.1.9), read strictly: an explicit
/// `cA FALSE` is a DER violation, and pathLenConstraint may be any
/// non-negative INTEGER (values beyond `u64` saturate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Basic {
    pub(crate) ca: bool,
    pub(crate) path_len: Option<u64>,
}

/// One Extension, as encoded.
struct Ext<'a> {
    oid: ObjectIdentifier,
    critical: bool,
    value: &'a [u8],
}

/// A certificate and the fields attest uses.
#[derive(Debug)]
pub(crate) struct Cert {
    pub(crate) der: Vec<u8>,
    tbs: core::ops::Range<usize>,
    pub(crate) sha256: [u8; 32],
    pub(crate) version: Version,
    pub(crate) serial: Vec<u8>,
    pub(crate) subject_name: DistinguishedName,
    pub(crate) issuer_name: DistinguishedName,
    /// The issuer Name as encoded (nameRelativeToCRLIssuer is relative to it).
    pub(crate) issuer_der: Vec<u8>,
    /// Name keys (RFC 4518-prepared) of subject and issuer.
    pub(crate) subject_key: [u8; 32],
    pub(crate) issuer_key: [u8; 32],
    /// The CA identity: prepared subject and public key (see `dn`).
    pub(crate) identity: [u8; 32],
    pub(crate) subject_text: String,
    pub(crate) issuer_text: String,
    /// The first commonName readable as text.
    pub(crate) common_name: Option<String>,
    /// How many commonName attributes the subject has.
    pub(crate) common_name_count: usize,
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
    pub(crate) signature_algorithm: spki::AlgorithmIdentifierOwned,
    pub(crate) signature: Vec<u8>,
    pub(crate) key: Result<PublicKey, (Code, String)>,
    pub(crate) basic_constraints: Option<Basic>,
    pub(crate) key_usage: Option<KeyUsage>,
    pub(crate) ext_key_usage: Option<Vec<ObjectIdentifier>>,
    /// subjectAltName entries (empty when the extension is absent).
    pub(crate) alt_names: Vec<GeneralName>,
    /// Whether subjectAltName is present and critical.
    alt_names_critical: bool,
    /// nameConstraints, parsed and checked (RFC 5280 §4.2.1.10).
    pub(crate) name_constraints: Option<Constraints>,
    /// cRLDistributionPoints (RFC 5280 §4.2.1.13), read for revocation
    /// checking only (a malformed one makes the status undetermined, it does
    /// not spoil the certificate when revocation is off); `None` when the
    /// extension is absent.
    pub(crate) crl_distribution_points: Option<Result<Vec<crate::crl::DistributionPoint>, String>>,
    /// The first profile defect found, refused when the certificate is used.
    pub(crate) defect: Option<(Code, String)>,
}

impl Cert {
    /// Parses a DER certificate. `Err` carries a code and message; the
    /// caller knows the position and attaches it.
    ///
    /// The structure is walked by hand (RFC 5280 §4.1) so that DER rules
    /// that general-purpose decoders relax are enforced: no explicitly
    /// encoded DEFAULT values (version v1, critical FALSE), no empty
    /// extensions list, names in DER SET OF order; and so that UTCTime
    /// covers its whole range, 1950 to 2049 (§4.1.2.5.1).
    pub(crate) fn parse(der: &[u8]) -> Result<Cert, (Code, String)> {
        if der.len() > MAX_CERTIFICATE_SIZE {
            return Err((
                Code::InputTooLarge,
                format!(
                    "certificate is {} bytes; the limit is {MAX_CERTIFICATE_SIZE}",
                    der.len()
                ),
            ));
        }
        let malformed = |e: String| {
            (
                Code::MalformedCertificate,
                format!("not a DER X.509 certificate (RFC 5280 §4.1): {e}"),
            )
        };
        let raw = RawCert::read(der).map_err(malformed)?;
        let subject_name = DistinguishedName::parse(&der[raw.subject.clone()])
            .map_err(|e| malformed(format!("subject: {e}")))?;
        let issuer_name = DistinguishedName::parse(&der[raw.issuer.clone()])
            .map_err(|e| malformed(format!("issuer: {e}")))?;
        let spki_der = der[raw.spki.clone()].to_vec();
        let spki = spki::SubjectPublicKeyInfoOwned::from_der(&spki_der)
            .map_err(|e| malformed(format!("subjectPublicKeyInfo: {e}")))?;
        let signature_algorithm =
            spki::AlgorithmIdentifierOwned::from_der(&der[raw.outer_algorithm.clone()])
                .map_err(|e| malformed(format!("signatureAlgorithm: {e}")))?;
        let common_names = subject_name.common_names();
        let mut parsed = Cert {
            der: der.to_vec(),
            tbs: raw.tbs.clone(),
            sha256: Sha256::digest(der).into(),
            version: raw.version,
            serial: raw.serial.clone(),
            subject_key: subject_name.key(),
            issuer_key: issuer_name.key(),
            identity: subject_name.identity(&spki_der),
            subject_text: format_name(&subject_name),
            issuer_text: format_name(&issuer_name),
            common_name: common_names
                .iter()
                .flatten()
                .next()
                .map(|s| (*s).to_string()),
            common_name_count: common_names.len(),
            subject_name,
            issuer_name,
            issuer_der: der[raw.issuer.clone()].to_vec(),
            not_before: raw.not_before,
            not_after: raw.not_after,
            signature_algorithm,
            signature: raw.signature.clone(),
            key: alg::parse_public_key(&spki).map_err(|(code, message)| {
                if message.contains("RFC ") {
                    (code, message)
                } else {
                    (
                        code,
                        format!("{message} (RFC 5280 §4.1.2.7; attest profile, SPEC §2)"),
                    )
                }
            }),
            basic_constraints: None,
            key_usage: None,
            ext_key_usage: None,
            alt_names: Vec::new(),
            alt_names_critical: false,
            name_constraints: None,
            crl_distribution_points: None,
            defect: None,
        };
        let extensions = raw.extensions(der).map_err(malformed)?;
        parsed.defect = parsed.read_extensions(extensions.as_deref()).err();
        if parsed.defect.is_none() {
            parsed.defect = parsed.check_structure(der, &raw).err();
        }
        Ok(parsed)
    }

    /// The DER of tbsCertificate: the bytes the issuer signed.
    pub(crate) fn tbs(&self) -> &[u8] {
        &self.der[self.tbs.clone()]
    }

    /// Whether subject and issuer are the same name (RFC 5280 §3.2, "self-issued").
    pub(crate) fn is_self_issued(&self) -> bool {
        self.subject_name.matches(&self.issuer_name)
    }

    /// Whether the subject is the empty Name.
    pub(crate) fn subject_is_empty(&self) -> bool {
        self.subject_name.is_empty()
    }

    /// The names that name constraints apply to (subject, its
    /// emailAddress attributes, subjectAltName).
    pub(crate) fn constrained_names(&self) -> Result<Vec<names::Form>, String> {
        names::names_of(&self.subject_name, &self.alt_names)
    }

    /// Whether basicConstraints asserts cA.
    pub(crate) fn is_ca(&self) -> bool {
        self.basic_constraints.as_ref().is_some_and(|bc| bc.ca)
    }

    /// A reference to this certificate at a path position.
    pub(crate) fn at(&self, position: usize) -> CertRef {
        CertRef {
            position: u32::try_from(position).unwrap_or(u32::MAX),
            subject: self.subject_text.clone(),
            sha256: self.sha256,
        }
    }

    /// A refusal concerning this certificate at a path position.
    pub(crate) fn refuse(&self, position: usize, code: Code, message: String) -> Refusal {
        Refusal::new(code, message).at(self.at(position))
    }

    /// The summary reported to callers.
    pub(crate) fn info(&self) -> CertificateInfo {
        CertificateInfo {
            subject: self.subject_text.clone(),
            issuer: self.issuer_text.clone(),
            common_name: self.common_name.clone(),
            serial: hex_upper(&self.serial),
            sha256: self.sha256,
            not_before: self.not_before,
            not_after: self.not_after,
        }
    }

    fn read_extensions(&mut self, extensions: Option<&[Ext<'_>]>) -> Result<(), (Code, String)> {
        let Some(extensions) = extensions else {
            return Ok(());
        };
        if self.version != Version::V3 {
            return Err((
                Code::UnsupportedCertificateVersion,
                "extensions present in a certificate that is not v3 (RFC 5280 §4.1.2.9)".into(),
            ));
        }
        let mut seen: Vec<ObjectIdentifier> = Vec::with_capacity(extensions.len());
        for ext in extensions {
            if seen.contains(&ext.oid) {
                return Err((
                    Code::DuplicateExtension,
                    format!(
                        "extension {} appears more than once (RFC 5280 §4.2)",
                        ext.oid
                    ),
                ));
            }
            seen.push(ext.oid);
            let value = ext.value;
            let bad = |name: &str, e: der::Error| {
                (
                    Code::MalformedExtension,
                    format!("malformed {name} extension (RFC 5280 §4.2): {e}"),
                )
            };
            match ext.oid {
                oid::BASIC_CONSTRAINTS => {
                    self.basic_constraints = Some(read_basic_constraints(value)?);
                }
                oid::KEY_USAGE => {
                    self.key_usage =
                        Some(KeyUsage::from_der(value).map_err(|e| bad("keyUsage", e))?);
                }
                oid::EXT_KEY_USAGE => {
                    let eku = ExtendedKeyUsage::from_der(value)
                        .map_err(|e| bad("extendedKeyUsage", e))?;
                    if eku.0.is_empty() {
                        return Err((
                            Code::MalformedExtension,
                            "extendedKeyUsage is empty (RFC 5280 §4.2.1.12: SIZE (1..MAX))".into(),
                        ));
                    }
                    self.ext_key_usage = Some(eku.0);
                }
                oid::SUBJECT_KEY_ID => {
                    SubjectKeyIdentifier::from_der(value)
                        .map_err(|e| bad("subjectKeyIdentifier", e))?;
                }
                oid::AUTHORITY_KEY_ID => {
                    AuthorityKeyIdentifier::from_der(value)
                        .map_err(|e| bad("authorityKeyIdentifier", e))?;
                }
                oid::SUBJECT_ALT_NAME => {
                    let san =
                        SubjectAltName::from_der(value).map_err(|e| bad("subjectAltName", e))?;
                    if san.0.is_empty() {
                        return Err((
                            Code::MalformedExtension,
                            "subjectAltName is empty (RFC 5280 §4.2.1.6: SIZE (1..MAX))".into(),
                        ));
                    }
                    for name in &san.0 {
                        names::check_alt_name(name).map_err(|e| {
                            (
                                Code::MalformedExtension,
                                format!("malformed subjectAltName (RFC 5280 §4.2.1.6): {e}"),
                            )
                        })?;
                    }
                    self.alt_names = san.0;
                    self.alt_names_critical = ext.critical;
                }
                oid::NAME_CONSTRAINTS => {
                    if !ext.critical {
                        return Err((
                            Code::InvalidNameConstraints,
                            "nameConstraints is not marked critical (RFC 5280 §4.2.1.10: conforming CAs MUST mark it critical)".into(),
                        ));
                    }
                    self.name_constraints = Some(Constraints::parse(value)?);
                }
                oid::CRL_DISTRIBUTION_POINTS => {
                    self.crl_distribution_points =
                        Some(crate::crl::read_distribution_points(value).map_err(|e| {
                            format!(
                                "malformed cRLDistributionPoints extension (RFC 5280 §4.2.1.13): {e}"
                            )
                        }));
                }
                oid::POLICY_CONSTRAINTS if !ext.critical => {
                    return Err((
                        Code::MalformedExtension,
                        "policyConstraints is not marked critical (RFC 5280 §4.2.1.11: conforming CAs MUST mark it critical)".into(),
                    ));
                }
                _ => {}
            }
            if ext.critical && !PROCESSED_CRITICAL.contains(&ext.oid) {
                return Err((
                    Code::UnknownCriticalExtension,
                    format!(
                        "critical extension {} is not processed by attest (RFC 5280 §4.2)",
                        ext.oid
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_structure(&self, der: &[u8], raw: &RawCert) -> Result<(), (Code, String)> {
        if der[raw.outer_algorithm.clone()] != der[raw.tbs_algorithm.clone()] {
            let inner = spki::AlgorithmIdentifierOwned::from_der(&der[raw.tbs_algorithm.clone()])
                .map(|a| a.oid.to_string())
                .unwrap_or_else(|_| "(unreadable)".into());
            return Err((
                Code::SignatureAlgorithmMismatch,
                format!(
                    "signatureAlgorithm {} differs from the tbsCertificate signature field {inner} (RFC 5280 §4.1.1.2)",
                    self.signature_algorithm.oid
                ),
            ));
        }
        // RFC 5280 §4.1.2.6: an empty subject needs a critical subjectAltName.
        if self.subject_is_empty() && !self.alt_names_critical {
            return Err((
                Code::EmptySubject,
                if self.alt_names.is_empty() {
                    "subject is empty and there is no subjectAltName (RFC 5280 §4.1.2.6)"
                } else {
                    "subject is empty and subjectAltName is not critical (RFC 5280 §4.1.2.6)"
                }
                .into(),
            ));
        }
        // RFC 5280 §4.1.2.2: a positive INTEGER of at most 20 octets. A
        // 20-octet value with its top bit set needs a leading zero octet, so
        // 21 content octets are accepted when the first is that zero.
        let serial = &self.serial;
        let negative = serial.first().is_some_and(|b| b & 0x80 != 0);
        let too_long = serial.len() > 21 || (serial.len() == 21 && serial[0] != 0);
        if negative || too_long {
            return Err((
                Code::InvalidSerialNumber,
                format!(
                    "serial number {} is {} (RFC 5280 §4.1.2.2: positive, at most 20 octets)",
                    hex_upper(serial),
                    if negative { "negative" } else { "too long" }
                ),
            ));
        }
        Ok(())
    }
}

/// basicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE,
/// pathLenConstraint INTEGER (0..MAX) OPTIONAL } (RFC 5280 §4.2.1.9).
fn read_basic_constraints(value: &[u8]) -> Result<Basic, (Code, String)> {
    let bad = |why: String| {
        (
            Code::MalformedExtension,
            format!("malformed basicConstraints extension (RFC 5280 §4.2.1.9): {why}"),
        )
    };
    let body = dn::expect(value, Tag::Sequence).map_err(|e| bad(e.to_string()))?;
    let mut reader = SliceReader::new(body).map_err(|e| bad(e.to_string()))?;
    let mut basic = Basic {
        ca: false,
        path_len: None,
    };
    if !reader.is_finished() && reader.peek_tag().map_err(|e| bad(e.to_string()))? == Tag::Boolean {
        basic.ca = bool::decode(&mut reader).map_err(|e| bad(e.to_string()))?;
        if !basic.ca {
            return Err(bad(
                "cA FALSE is encoded explicitly; DER omits DEFAULT values (X.690 §11.5)".into(),
            ));
        }
    }
    if !reader.is_finished() {
        let n = der::asn1::IntRef::decode(&mut reader).map_err(|e| bad(e.to_string()))?;
        let bytes = n.as_bytes();
        if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            return Err(bad("pathLenConstraint is negative".into()));
        }
        let significant: &[u8] = match bytes {
            [0, rest @ ..] => rest,
            all => all,
        };
        basic.path_len = Some(if significant.len() > 8 {
            u64::MAX
        } else {
            significant
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
        });
    }
    reader.finish(basic).map_err(|e| bad(e.to_string()))
}

/// Byte ranges of a certificate's parts, read strictly (RFC 5280 §4.1).
struct RawCert {
    tbs: core::ops::Range<usize>,
    outer_algorithm: core::ops::Range<usize>,
    tbs_algorithm: core::ops::Range<usize>,
    version: Version,
    serial: Vec<u8>,
    issuer: core::ops::Range<usize>,
    subject: core::ops::Range<usize>,
    spki: core::ops::Range<usize>,
    not_before: i64,
    not_after: i64,
    signature: Vec<u8>,
    /// `[3]` extensions: the content of the inner SEQUENCE.
    extensions: Option<core::ops::Range<usize>>,
}

/// A DER reader over `der` that reports positions in `der`.
struct Walk<'a> {
    der: &'a [u8],
    reader: SliceReader<'a>,
    base: usize,
}

impl<'a> Walk<'a> {
    /// A walk over the content of the element that fills `range` of `der`.
    fn into(der: &'a [u8], range: core::ops::Range<usize>, tag: Tag) -> Result<Walk<'a>, String> {
        let element = &der[range.clone()];
        let mut reader = SliceReader::new(element).map_err(|e| e.to_string())?;
        let header = Header::decode(&mut reader).map_err(|e| e.to_string())?;
        if header.tag != tag {
            return Err(format!("expected {tag}, found {}", header.tag));
        }
        let start = range.start + usize::try_from(reader.position()).map_err(|e| e.to_string())?;
        let body = &der[start..range.end];
        Ok(Walk {
            der,
            reader: SliceReader::new(body).map_err(|e| e.to_string())?,
            base: start,
        })
    }

    /// The next element's tag, if any.
    fn peek(&self) -> Result<Option<Tag>, String> {
        if self.reader.is_finished() {
            return Ok(None);
        }
        self.reader.peek_tag().map(Some).map_err(|e| e.to_string())
    }

    /// The next element (tag and length included), which must have `tag`.
    fn element(&mut self, tag: Tag, what: &str) -> Result<core::ops::Range<usize>, String> {
        let start = usize::try_from(self.reader.position()).map_err(|e| e.to_string())?;
        let tlv = self
            .reader
            .tlv_bytes()
            .map_err(|e| format!("{what}: {e}"))?;
        let header =
            Header::decode(&mut SliceReader::new(tlv).map_err(|e| format!("{what}: {e}"))?)
                .map_err(|e| format!("{what}: {e}"))?;
        if header.tag != tag {
            return Err(format!("{what}: expected {tag}, found {}", header.tag));
        }
        Ok(self.base + start..self.base + start + tlv.len())
    }

    fn finish(self, what: &str) -> Result<(), String> {
        if self.reader.is_finished() {
            Ok(())
        } else {
            Err(format!("trailing data after {what}"))
        }
    }

    fn bytes(&self, range: core::ops::Range<usize>) -> &'a [u8] {
        &self.der[range]
    }
}

impl RawCert {
    fn read(der: &[u8]) -> Result<RawCert, String> {
        let whole = {
            let mut reader = SliceReader::new(der).map_err(|e| e.to_string())?;
            let tlv = reader.tlv_bytes().map_err(|e| e.to_string())?;
            if !reader.is_finished() {
                return Err("trailing data after the certificate".into());
            }
            0..tlv.len()
        };
        let mut cert = Walk::into(der, whole, Tag::Sequence)?;
        let tbs_element = cert.element(Tag::Sequence, "tbsCertificate")?;
        let outer_algorithm = cert.element(Tag::Sequence, "signatureAlgorithm")?;
        let signature_element = cert.element(Tag::BitString, "signature")?;
        let signature_der = cert.bytes(signature_element);
        cert.finish("signature")?;
        let signature = der::asn1::BitStringRef::from_der(signature_der)
            .map_err(|e| format!("signature: {e}"))?
            .as_bytes()
            .ok_or("signature BIT STRING has unused bits")?
            .to_vec();

        let mut tbs = Walk::into(der, tbs_element.clone(), Tag::Sequence)?;
        let tbs_range = tbs_element;
        let version_tag = Tag::ContextSpecific {
            constructed: true,
            number: der::TagNumber::N0,
        };
        let version = if tbs.peek()? == Some(version_tag) {
            let element = tbs.element(version_tag, "version")?;
            let body =
                dn::expect(tbs.bytes(element), version_tag).map_err(|e| format!("version: {e}"))?;
            match u8::from_der(body).map_err(|e| format!("version: {e}"))? {
                0 => {
                    return Err(
                        "version v1 is encoded explicitly; DER omits DEFAULT values (X.690 §11.5)"
                            .into(),
                    );
                }
                1 => Version::V2,
                2 => Version::V3,
                n => {
                    return Err(format!(
                        "version {} is not v1, v2 or v3 (RFC 5280 §4.1.2.1)",
                        u32::from(n) + 1
                    ));
                }
            }
        } else {
            Version::V1
        };
        let serial_element = tbs.element(Tag::Integer, "serialNumber")?;
        let serial = der::asn1::IntRef::from_der(tbs.bytes(serial_element))
            .map_err(|e| format!("serialNumber: {e}"))?
            .as_bytes()
            .to_vec();
        let tbs_algorithm = tbs.element(Tag::Sequence, "signature")?;
        let issuer = tbs.element(Tag::Sequence, "issuer")?;
        let validity = tbs.element(Tag::Sequence, "validity")?;
        let subject = tbs.element(Tag::Sequence, "subject")?;
        let spki = tbs.element(Tag::Sequence, "subjectPublicKeyInfo")?;
        let mut extensions = None;
        for (number, what) in [
            (der::TagNumber::N1, "issuerUniqueID"),
            (der::TagNumber::N2, "subjectUniqueID"),
        ] {
            let tag = Tag::ContextSpecific {
                constructed: false,
                number,
            };
            if tbs.peek()? == Some(tag) {
                if version == Version::V1 {
                    return Err(format!("{what} in a v1 certificate (RFC 5280 §4.1.2.8)"));
                }
                tbs.element(tag, what)?;
            }
        }
        let extensions_tag = Tag::ContextSpecific {
            constructed: true,
            number: der::TagNumber::N3,
        };
        if tbs.peek()? == Some(extensions_tag) {
            let element = tbs.element(extensions_tag, "extensions")?;
            let mut explicit = Walk::into(der, element, extensions_tag)?;
            let list = explicit.element(Tag::Sequence, "extensions")?;
            explicit.finish("extensions")?;
            let content = Walk::into(der, list.clone(), Tag::Sequence)?;
            if content.peek()?.is_none() {
                return Err(
                    "extensions [3] is an empty SEQUENCE (RFC 5280 §4.1: SIZE (1..MAX))".into(),
                );
            }
            extensions = Some(list);
        }
        tbs.finish("tbsCertificate")?;

        let mut times = Walk::into(der, validity, Tag::Sequence)?;
        let not_before = read_time(&mut times, "notBefore")?;
        let not_after = read_time(&mut times, "notAfter")?;
        times.finish("validity")?;

        Ok(RawCert {
            tbs: tbs_range,
            outer_algorithm,
            tbs_algorithm,
            version,
            serial,
            issuer,
            subject,
            spki,
            not_before,
            not_after,
            signature,
            extensions,
        })
    }

    /// The extensions, each SEQUENCE { extnID, critical DEFAULT FALSE, extnValue }.
    fn extensions<'a>(&self, der: &'a [u8]) -> Result<Option<Vec<Ext<'a>>>, String> {
        let Some(list) = self.extensions.clone() else {
            return Ok(None);
        };
        let mut walk = Walk::into(der, list, Tag::Sequence)?;
        let mut out = Vec::new();
        while walk.peek()?.is_some() {
            let element = walk.element(Tag::Sequence, "Extension")?;
            let body = dn::expect(walk.bytes(element), Tag::Sequence).map_err(|e| e.to_string())?;
            let mut r = SliceReader::new(body).map_err(|e| e.to_string())?;
            let oid = ObjectIdentifier::decode(&mut r).map_err(|e| format!("extnID: {e}"))?;
            let mut critical = false;
            if r.peek_tag().map_err(|e| e.to_string())? == Tag::Boolean {
                critical = bool::decode(&mut r).map_err(|e| format!("critical: {e}"))?;
                if !critical {
                    return Err(format!(
                        "extension {oid}: critical FALSE is encoded explicitly; DER omits DEFAULT values (X.690 §11.5)"
                    ));
                }
            }
            let value = der::asn1::OctetStringRef::decode(&mut r)
                .map_err(|e| format!("extnValue: {e}"))?
                .as_bytes();
            r.finish(()).map_err(|e| format!("Extension: {e}"))?;
            out.push(Ext {
                oid,
                critical,
                value,
            });
        }
        Ok(Some(out))
    }
}

/// Time ::= UTCTime | GeneralizedTime in the RFC 5280 §4.1.2.5 DER forms
/// `YYMMDDHHMMSSZ` (years 1950–2049) and `YYYYMMDDHHMMSSZ`, as Unix seconds.
fn read_time(walk: &mut Walk<'_>, what: &str) -> Result<i64, String> {
    let (tag, digits) = match walk.peek()? {
        Some(Tag::UtcTime) => (Tag::UtcTime, 12),
        Some(Tag::GeneralizedTime) => (Tag::GeneralizedTime, 14),
        _ => return Err(format!("{what}: not a UTCTime or GeneralizedTime")),
    };
    let element = walk.element(tag, what)?;
    let body = dn::expect(walk.bytes(element), tag).map_err(|e| format!("{what}: {e}"))?;
    let bad = || {
        format!(
            "{what}: not in the DER form {} (RFC 5280 §4.1.2.5)",
            if digits == 12 {
                "YYMMDDHHMMSSZ"
            } else {
                "YYYYMMDDHHMMSSZ"
            }
        )
    };
    if body.len() != digits + 1
        || body[digits] != b'Z'
        || !body[..digits].iter().all(u8::is_ascii_digit)
    {
        return Err(bad());
    }
    let number = |range: core::ops::Range<usize>| {
        body[range]
            .iter()
            .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'))
    };
    let (year, rest) = if digits == 12 {
        let yy = number(0..2);
        (if yy < 50 { 2000 + yy } else { 1900 + yy }, 2)
    } else {
        (number(0..4), 4)
    };
    let month = number(rest..rest + 2);
    let day = number(rest + 2..rest + 4);
    let hour = number(rest + 4..rest + 6);
    let minute = number(rest + 6..rest + 8);
    let second = number(rest + 8..rest + 10);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[usize::try_from(month - 1).unwrap_or(0)]
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(bad());
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 form of a Unix time, for messages.
pub(crate) fn rfc3339(t: i64) -> String {
    u64::try_from(t)
        .ok()
        .and_then(|s| der::DateTime::from_unix_duration(core::time::Duration::from_secs(s)).ok())
        .map_or_else(|| format!("@{t}"), |d| d.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_malformed() {
        let (code, _) = Cert::parse(b"\x30\x03\x02\x01\x01").unwrap_err();
        assert_eq!(code, Code::MalformedCertificate);
        let (code, _) = Cert::parse(b"").unwrap_err();
        assert_eq!(code, Code::MalformedCertificate);
    }

    #[test]
    fn oversized_is_refused_before_parsing() {
        let (code, _) = Cert::parse(&vec![0u8; MAX_CERTIFICATE_SIZE + 1]).unwrap_err();
        assert_eq!(code, Code::InputTooLarge);
    }

    #[test]
    fn rfc3339_formats_and_tolerates_negative() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(-5), "@-5");
    }

    #[test]
    fn utc_time_covers_1950_to_2049() {
        let at = |s: &[u8]| {
            let der = [
                &[
                    0x30,
                    u8::try_from(s.len() + 2).unwrap(),
                    0x17,
                    u8::try_from(s.len()).unwrap(),
                ][..],
                s,
            ]
            .concat();
            let mut walk = Walk::into(&der, 0..der.len(), Tag::Sequence).unwrap();
            read_time(&mut walk, "t")
        };
        assert_eq!(at(b"500101000000Z").unwrap(), -631_152_000);
        assert_eq!(at(b"691231235959Z").unwrap(), -1);
        assert_eq!(at(b"700101000000Z").unwrap(), 0);
        assert_eq!(at(b"491231235959Z").unwrap(), 2_524_607_999);
        assert_eq!(at(b"240229120000Z").unwrap(), 1_709_208_000);
        for bad in [
            &b"230229120000Z"[..],
            b"241301000000Z",
            b"2401010000Z",
            b"240101000000+0100",
            b"24010100000aZ",
        ] {
            assert!(at(bad).is_err(), "{bad:?}");
        }
    }
}
