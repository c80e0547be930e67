//! One parsed certificate: the fields path validation needs, extracted once.
//!
//! Parsing fails only when the DER cannot be read as an X.509 certificate at
//! all (RFC 5280 §4.1). Profile defects that concern one certificate (unknown
//! critical extensions, duplicates, a bad serial, mismatched signature
//! algorithms) are kept in [`Cert::defect`] and refused when the certificate
//! is used, so that an unusable extra intermediate does not spoil a path that
//! does not need it.

use der::asn1::{Ia5StringRef, ObjectIdentifier, PrintableStringRef, Utf8StringRef};
use der::{Decode, Encode, Header, Reader, SliceReader};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::certificate::Version;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAltName,
    SubjectKeyIdentifier,
};
use x509_cert::name::Name;

use crate::alg::{self, PublicKey};
use crate::error::{CertRef, Code, Refusal};
use crate::info::CertificateInfo;
use crate::names::{self, Constraints};

/// Largest certificate accepted, in bytes. Device and CA certificates are
/// typically under 2 KiB; RSA-8192 with many extensions stays under 8 KiB.
pub const MAX_CERTIFICATE_SIZE: usize = 16 * 1024;

pub(crate) mod oid {
    use der::asn1::ObjectIdentifier as Oid;
    pub(crate) const CN: Oid = Oid::new_unwrap("2.5.4.3");
    pub(crate) const BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
    pub(crate) const KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
    pub(crate) const EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37");
    pub(crate) const SUBJECT_ALT_NAME: Oid = Oid::new_unwrap("2.5.29.17");
    pub(crate) const SUBJECT_KEY_ID: Oid = Oid::new_unwrap("2.5.29.14");
    pub(crate) const AUTHORITY_KEY_ID: Oid = Oid::new_unwrap("2.5.29.35");
    pub(crate) const NAME_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.30");
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

/// The DER of an empty Name (an RDNSequence with no RDNs).
const EMPTY_NAME: &[u8] = &[0x30, 0x00];

/// A certificate and the fields attest uses.
#[derive(Debug)]
pub(crate) struct Cert {
    pub(crate) der: Vec<u8>,
    tbs: core::ops::Range<usize>,
    pub(crate) sha256: [u8; 32],
    pub(crate) version: Version,
    pub(crate) serial: Vec<u8>,
    pub(crate) subject: Vec<u8>,
    pub(crate) issuer: Vec<u8>,
    pub(crate) subject_text: String,
    pub(crate) issuer_text: String,
    pub(crate) common_name: Option<String>,
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
    pub(crate) signature_algorithm: spki::AlgorithmIdentifierOwned,
    pub(crate) signature: Vec<u8>,
    pub(crate) key: Result<PublicKey, (Code, String)>,
    /// The SPKI DER, for loop detection (same subject and key = same CA).
    pub(crate) spki_der: Vec<u8>,
    pub(crate) basic_constraints: Option<BasicConstraints>,
    pub(crate) key_usage: Option<KeyUsage>,
    pub(crate) ext_key_usage: Option<Vec<ObjectIdentifier>>,
    pub(crate) subject_key_id: Option<Vec<u8>>,
    pub(crate) authority_key_id: Option<Vec<u8>>,
    /// subjectAltName entries (empty when the extension is absent).
    pub(crate) alt_names: Vec<GeneralName>,
    /// Whether subjectAltName is present and critical.
    alt_names_critical: bool,
    /// nameConstraints, parsed and checked (RFC 5280 §4.2.1.10).
    pub(crate) name_constraints: Option<Constraints>,
    /// The first profile defect found, refused when the certificate is used.
    pub(crate) defect: Option<(Code, String)>,
}

impl Cert {
    /// Parses a DER certificate. `Err` carries a code and message; the
    /// caller knows the position and attaches it.
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
        let malformed = |e: der::Error| {
            (
                Code::MalformedCertificate,
                format!("not a DER X.509 certificate (RFC 5280 §4.1): {e}"),
            )
        };
        let cert = Certificate::from_der(der).map_err(malformed)?;
        let tbs = tbs_range(der).map_err(malformed)?;
        let tbs_cert = &cert.tbs_certificate;
        let sha256: [u8; 32] = Sha256::digest(der).into();

        // The signed bytes themselves, not a re-encoding: what the issuer
        // signed is what gets compared, and no encoder runs per certificate.
        let fields = tbs_fields(der, tbs.clone()).map_err(malformed)?;
        let subject = der[fields.subject].to_vec();
        let issuer = der[fields.issuer].to_vec();
        let not_before = unix(&tbs_cert.validity.not_before);
        let not_after = unix(&tbs_cert.validity.not_after);
        let signature = cert
            .signature
            .as_bytes()
            .ok_or_else(|| {
                (
                    Code::MalformedCertificate,
                    "signature BIT STRING has unused bits".to_string(),
                )
            })?
            .to_vec();
        let spki_der = der[fields.spki].to_vec();

        let mut parsed = Cert {
            der: der.to_vec(),
            tbs,
            sha256,
            version: tbs_cert.version,
            serial: tbs_cert.serial_number.as_bytes().to_vec(),
            subject_text: format_name(&tbs_cert.subject),
            issuer_text: format_name(&tbs_cert.issuer),
            common_name: common_name(&tbs_cert.subject),
            subject,
            issuer,
            not_before,
            not_after,
            signature_algorithm: cert.signature_algorithm.clone(),
            signature,
            key: alg::parse_public_key(&tbs_cert.subject_public_key_info).map_err(
                |(code, message)| {
                    if message.contains("RFC ") {
                        (code, message)
                    } else {
                        (
                            code,
                            format!("{message} (RFC 5280 §4.1.2.7; attest profile, SPEC §2)"),
                        )
                    }
                },
            ),
            spki_der,
            basic_constraints: None,
            key_usage: None,
            ext_key_usage: None,
            subject_key_id: None,
            authority_key_id: None,
            alt_names: Vec::new(),
            alt_names_critical: false,
            name_constraints: None,
            defect: None,
        };
        parsed.defect = parsed.read_extensions(&cert).err();
        if parsed.defect.is_none() {
            parsed.defect = parsed.check_structure(&cert).err();
        }
        Ok(parsed)
    }

    /// The DER of tbsCertificate: the bytes the issuer signed.
    pub(crate) fn tbs(&self) -> &[u8] {
        &self.der[self.tbs.clone()]
    }

    /// Whether subject and issuer are the same name (RFC 5280 §3.2, "self-issued").
    pub(crate) fn is_self_issued(&self) -> bool {
        self.subject == self.issuer
    }

    /// Whether the subject is the empty Name.
    pub(crate) fn subject_is_empty(&self) -> bool {
        self.subject == EMPTY_NAME
    }

    /// The names that name constraints apply to (subject, its
    /// emailAddress attributes, subjectAltName).
    pub(crate) fn constrained_names(&self) -> Result<Vec<names::Form>, String> {
        names::names_of(&self.subject, &self.alt_names)
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

    fn read_extensions(&mut self, cert: &Certificate) -> Result<(), (Code, String)> {
        let Some(extensions) = &cert.tbs_certificate.extensions else {
            return Ok(());
        };
        if cert.tbs_certificate.version != Version::V3 {
            return Err((
                Code::UnsupportedCertificateVersion,
                "extensions present in a certificate that is not v3 (RFC 5280 §4.1.2.9)".into(),
            ));
        }
        let mut seen: Vec<ObjectIdentifier> = Vec::with_capacity(extensions.len());
        for ext in extensions {
            if seen.contains(&ext.extn_id) {
                return Err((
                    Code::DuplicateExtension,
                    format!(
                        "extension {} appears more than once (RFC 5280 §4.2)",
                        ext.extn_id
                    ),
                ));
            }
            seen.push(ext.extn_id);
            let value = ext.extn_value.as_bytes();
            let bad = |name: &str, e: der::Error| {
                (
                    Code::MalformedExtension,
                    format!("malformed {name} extension (RFC 5280 §4.2): {e}"),
                )
            };
            match ext.extn_id {
                oid::BASIC_CONSTRAINTS => {
                    self.basic_constraints = Some(
                        BasicConstraints::from_der(value)
                            .map_err(|e| bad("basicConstraints", e))?,
                    );
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
                    let ski = SubjectKeyIdentifier::from_der(value)
                        .map_err(|e| bad("subjectKeyIdentifier", e))?;
                    self.subject_key_id = Some(ski.0.as_bytes().to_vec());
                }
                oid::AUTHORITY_KEY_ID => {
                    let aki = AuthorityKeyIdentifier::from_der(value)
                        .map_err(|e| bad("authorityKeyIdentifier", e))?;
                    self.authority_key_id = aki.key_identifier.map(|k| k.as_bytes().to_vec());
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
                    self.name_constraints = Some(Constraints::parse(value)?);
                }
                _ => {}
            }
            if ext.critical && !PROCESSED_CRITICAL.contains(&ext.extn_id) {
                return Err((
                    Code::UnknownCriticalExtension,
                    format!(
                        "critical extension {} is not processed by attest (RFC 5280 §4.2)",
                        ext.extn_id
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_structure(&self, cert: &Certificate) -> Result<(), (Code, String)> {
        if cert.signature_algorithm != cert.tbs_certificate.signature {
            return Err((
                Code::SignatureAlgorithmMismatch,
                format!(
                    "signatureAlgorithm {} differs from the tbsCertificate signature field {} (RFC 5280 §4.1.1.2)",
                    cert.signature_algorithm.oid, cert.tbs_certificate.signature.oid
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

/// The byte range of tbsCertificate inside the certificate DER.
fn tbs_range(der: &[u8]) -> der::Result<core::ops::Range<usize>> {
    let mut reader = SliceReader::new(der)?;
    let _outer = Header::decode(&mut reader)?;
    let start = usize::try_from(reader.position())?;
    let tbs_header = Header::decode(&mut reader)?;
    let end = usize::try_from((reader.position() + tbs_header.length)?)?;
    if end > der.len() {
        return Err(der::ErrorKind::Incomplete {
            expected_len: tbs_header.length,
            actual_len: der::Length::try_from(der.len())?,
        }
        .into());
    }
    Ok(start..end)
}

/// Byte ranges (in the certificate DER) of tbsCertificate's issuer,
/// subject and subjectPublicKeyInfo elements, tag and length included.
struct TbsFields {
    issuer: core::ops::Range<usize>,
    subject: core::ops::Range<usize>,
    spki: core::ops::Range<usize>,
}

fn tbs_fields(der: &[u8], tbs: core::ops::Range<usize>) -> der::Result<TbsFields> {
    let base = tbs.start;
    let mut reader = SliceReader::new(&der[tbs])?;
    let _sequence = Header::decode(&mut reader)?;
    let element = |r: &mut SliceReader<'_>| -> der::Result<core::ops::Range<usize>> {
        let start = usize::try_from(r.position())?;
        let header = Header::decode(r)?;
        r.read_slice(header.length)?;
        let end = usize::try_from(r.position())?;
        Ok(base + start..base + end)
    };
    // version [0] EXPLICIT, optional (RFC 5280 §4.1.2.1).
    if reader.peek_tag()?.is_context_specific() {
        element(&mut reader)?;
    }
    let _serial = element(&mut reader)?;
    let _signature = element(&mut reader)?;
    let issuer = element(&mut reader)?;
    let _validity = element(&mut reader)?;
    let subject = element(&mut reader)?;
    let spki = element(&mut reader)?;
    Ok(TbsFields {
        issuer,
        subject,
        spki,
    })
}

fn unix(time: &x509_cert::time::Time) -> i64 {
    i64::try_from(time.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

/// The subject's first commonName, if it is a string type attest reads.
pub(crate) fn common_name(name: &Name) -> Option<String> {
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid == oid::CN {
                return attribute_string(&atv.value);
            }
        }
    }
    None
}

/// Short names for the attribute types RFC 4514 §3 lists (and a few that
/// device PKIs use); other types print as dotted OIDs.
const ATTRIBUTE_NAMES: &[(ObjectIdentifier, &str)] = &[
    (oid::CN, "CN"),
    (ObjectIdentifier::new_unwrap("2.5.4.6"), "C"),
    (ObjectIdentifier::new_unwrap("2.5.4.7"), "L"),
    (ObjectIdentifier::new_unwrap("2.5.4.8"), "ST"),
    (ObjectIdentifier::new_unwrap("2.5.4.9"), "STREET"),
    (ObjectIdentifier::new_unwrap("2.5.4.10"), "O"),
    (ObjectIdentifier::new_unwrap("2.5.4.11"), "OU"),
    (ObjectIdentifier::new_unwrap("2.5.4.5"), "serialNumber"),
    (
        ObjectIdentifier::new_unwrap("0.9.2342.19200300.100.1.25"),
        "DC",
    ),
    (
        ObjectIdentifier::new_unwrap("0.9.2342.19200300.100.1.1"),
        "UID",
    ),
    (
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.1"),
        "emailAddress",
    ),
];

/// RFC 4514 string form of a Name: RDNs last to first, separated by ",",
/// multi-valued RDNs joined by "+", special characters escaped, values of
/// non-string types as "#" and the hex of their DER.
pub(crate) fn format_name(name: &Name) -> String {
    let mut out = String::new();
    for (i, rdn) in name.0.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.0.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            match ATTRIBUTE_NAMES.iter().find(|(o, _)| *o == atv.oid) {
                Some((_, short)) => out.push_str(short),
                None => out.push_str(&atv.oid.to_string()),
            }
            out.push('=');
            match attribute_string(&atv.value) {
                Some(v) => escape_rfc4514(&v, &mut out),
                None => {
                    out.push('#');
                    out.push_str(&hex_upper(&atv.value.to_der().unwrap_or_default()));
                }
            }
        }
    }
    out
}

fn attribute_string(value: &der::asn1::Any) -> Option<String> {
    if let Ok(s) = Utf8StringRef::try_from(value) {
        return Some(s.as_str().to_string());
    }
    if let Ok(s) = PrintableStringRef::try_from(value) {
        return Some(s.as_str().to_string());
    }
    if let Ok(s) = Ia5StringRef::try_from(value) {
        return Some(s.as_str().to_string());
    }
    None
}

fn escape_rfc4514(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
            out.push(c);
        } else if c.is_control() {
            for b in c.to_string().bytes() {
                out.push_str(&format!("\\{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
}

/// Upper-case hex.
pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
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
    fn names_format_per_rfc_4514() {
        use core::str::FromStr;
        let name = Name::from_str("CN=dev\\,ice+serialNumber=42,O=Acme,C=DE").unwrap();
        // Multi-valued RDNs come out in DER SET OF order.
        assert_eq!(
            format_name(&name),
            "serialNumber=42+CN=dev\\,ice,O=Acme,C=DE"
        );
        let empty = Name::default();
        assert_eq!(format_name(&empty), "");
    }

    #[test]
    fn hex_is_upper() {
        assert_eq!(hex_upper(&[0x0a, 0xff]), "0AFF");
    }
}
