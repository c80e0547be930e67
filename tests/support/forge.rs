//! Certificates rcgen will not make: take a well-formed certificate, change
//! its DER (version, serial, algorithms, extensions, keys, raw bytes), and
//! sign the result again with the issuer's key, so that the defect under
//! test is the only thing wrong with it.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, RsaEncoding, RsaKeyPair};
use der::asn1::{Any, BitString, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use rcgen::{KeyPair, SigningKey};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::ext::Extension;

/// Well-known OIDs used by the corpus.
pub mod oid {
    use der::asn1::ObjectIdentifier as Oid;
    /// sha1WithRSAEncryption.
    pub const SHA1_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.5");
    /// md5WithRSAEncryption.
    pub const MD5_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.4");
    /// sha256WithRSAEncryption.
    pub const SHA256_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
    /// sha384WithRSAEncryption.
    pub const SHA384_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
    /// sha512WithRSAEncryption.
    pub const SHA512_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");
    /// id-RSASSA-PSS.
    pub const RSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
    /// id-mgf1.
    pub const MGF1: Oid = Oid::new_unwrap("1.2.840.113549.1.1.8");
    /// ecdsa-with-SHA1.
    pub const ECDSA_SHA1: Oid = Oid::new_unwrap("1.2.840.10045.4.1");
    /// ecdsa-with-SHA256.
    pub const ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
    /// ecdsa-with-SHA384.
    pub const ECDSA_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
    /// dsa-with-SHA256.
    pub const DSA_SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.3.2");
    /// id-dsa.
    pub const DSA: Oid = Oid::new_unwrap("1.2.840.10040.4.1");
    /// id-ecPublicKey.
    pub const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
    /// rsaEncryption.
    pub const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
    /// secp192r1.
    pub const P192: Oid = Oid::new_unwrap("1.2.840.10045.3.1.1");
    /// SHA-1 (for PSS parameters).
    pub const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
    /// SHA-256.
    pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
    /// SHA-384.
    pub const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
    /// SHA-512.
    pub const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
    /// basicConstraints.
    pub const BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
    /// extendedKeyUsage.
    pub const EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37");
    /// subjectAltName.
    pub const SUBJECT_ALT_NAME: Oid = Oid::new_unwrap("2.5.29.17");
    /// nameConstraints.
    pub const NAME_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.30");
    /// authorityKeyIdentifier.
    pub const AUTHORITY_KEY_ID: Oid = Oid::new_unwrap("2.5.29.35");
    /// keyUsage.
    pub const KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
}

/// How the forged TBS gets its signature.
pub enum Signer<'a> {
    /// The key's own algorithm (as rcgen signs with it).
    Key(&'a KeyPair),
    /// RSA PKCS#1 v1.5 with SHA-`bits`.
    RsaPkcs1(&'a KeyPair, u16),
    /// RSASSA-PSS with SHA-`bits`, MGF1 with the same hash, salt = hash length.
    RsaPss(&'a KeyPair, u16),
    /// 64 bytes of zeros: for algorithms refused before any signature check.
    Garbage,
}

impl Signer<'_> {
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rsa = |key: &KeyPair, encoding: &'static dyn RsaEncoding| {
            let pair = RsaKeyPair::from_pkcs8(&key.serialize_der()).expect("RSA key");
            let mut sig = vec![0; pair.public_modulus_len()];
            pair.sign(encoding, &SystemRandom::new(), message, &mut sig)
                .expect("RSA sign");
            sig
        };
        match self {
            Signer::Key(key) => key.sign(message).expect("sign"),
            Signer::RsaPkcs1(key, bits) => rsa(
                key,
                match bits {
                    256 => &signature::RSA_PKCS1_SHA256,
                    384 => &signature::RSA_PKCS1_SHA384,
                    _ => &signature::RSA_PKCS1_SHA512,
                },
            ),
            Signer::RsaPss(key, bits) => rsa(
                key,
                match bits {
                    256 => &signature::RSA_PSS_SHA256,
                    384 => &signature::RSA_PSS_SHA384,
                    _ => &signature::RSA_PSS_SHA512,
                },
            ),
            Signer::Garbage => vec![0; 64],
        }
    }
}

/// Decodes `der`, lets `edit` change it, and signs the new TBS with `signer`.
pub fn forge(der: &[u8], signer: Signer<'_>, edit: impl FnOnce(&mut Certificate)) -> Vec<u8> {
    let mut cert = Certificate::from_der(der).expect("a certificate to forge");
    edit(&mut cert);
    let tbs = cert.tbs_certificate.to_der().expect("TBS encodes");
    let alg = cert
        .signature_algorithm
        .to_der()
        .expect("algorithm encodes");
    assemble(&tbs, &alg, &signer.sign(&tbs))
}

/// Like [`forge`], then replaces `from` with `to` (same length) inside the
/// TBS DER before signing: for encodings the `der` crate will not produce.
pub fn forge_bytes(der: &[u8], signer: Signer<'_>, from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len(), "same-length replacement");
    let cert = Certificate::from_der(der).expect("a certificate to forge");
    let mut tbs = cert.tbs_certificate.to_der().expect("TBS encodes");
    let at = tbs
        .windows(from.len())
        .position(|w| w == from)
        .expect("bytes to replace are in the TBS");
    tbs[at..at + to.len()].copy_from_slice(to);
    let alg = cert
        .signature_algorithm
        .to_der()
        .expect("algorithm encodes");
    assemble(&tbs, &alg, &signer.sign(&tbs))
}

/// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }.
pub fn assemble(tbs: &[u8], alg: &[u8], signature: &[u8]) -> Vec<u8> {
    let bits = BitString::from_bytes(signature)
        .expect("bit string")
        .to_der()
        .expect("bit string encodes");
    let mut body = tbs.to_vec();
    body.extend_from_slice(alg);
    body.extend_from_slice(&bits);
    tlv(0x30, &body)
}

/// A DER TLV with a short or long-form length.
pub fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(body);
    out
}

/// An AlgorithmIdentifier.
pub fn alg(oid: ObjectIdentifier, parameters: Option<Any>) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid, parameters }
}

/// Sets both the outer signatureAlgorithm and the TBS signature field.
pub fn set_algorithm(cert: &mut Certificate, algorithm: AlgorithmIdentifierOwned) {
    cert.tbs_certificate.signature = algorithm.clone();
    cert.signature_algorithm = algorithm;
}

/// RSASSA-PSS AlgorithmIdentifier (RFC 4055 §3.1) with SHA-`hash` (hash
/// parameters NULL), MGF1 with SHA-`mgf_hash`, and `salt`.
pub fn pss(hash: u16, mgf_hash: u16, salt: u32) -> AlgorithmIdentifierOwned {
    let sha = |bits: u16| {
        alg(
            match bits {
                1 => oid::SHA1,
                256 => oid::SHA256,
                384 => oid::SHA384,
                _ => oid::SHA512,
            },
            Some(Any::null()),
        )
    };
    let mgf = alg(
        oid::MGF1,
        Some(Any::encode_from(&sha(mgf_hash)).expect("any")),
    );
    let mut body = tlv(0xa0, &sha(hash).to_der().expect("hash"));
    body.extend(tlv(0xa1, &mgf.to_der().expect("mgf")));
    body.extend(tlv(0xa2, &salt.to_der().expect("salt")));
    let params = Any::from_der(&tlv(0x30, &body)).expect("params");
    alg(oid::RSA_PSS, Some(params))
}

/// Adds an extension, or replaces the first one with the same OID.
pub fn set_extension(cert: &mut Certificate, oid: ObjectIdentifier, critical: bool, value: &[u8]) {
    let ext = Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value).expect("octets"),
    };
    let exts = cert.tbs_certificate.extensions.get_or_insert_with(Vec::new);
    match exts.iter_mut().find(|e| e.extn_id == oid) {
        Some(e) => *e = ext,
        None => exts.push(ext),
    }
}

/// Appends an extension even if one with the same OID exists.
pub fn push_extension(cert: &mut Certificate, oid: ObjectIdentifier, critical: bool, value: &[u8]) {
    cert.tbs_certificate
        .extensions
        .get_or_insert_with(Vec::new)
        .push(Extension {
            extn_id: oid,
            critical,
            extn_value: OctetString::new(value).expect("octets"),
        });
}

/// Removes every extension with `oid`.
pub fn remove_extension(cert: &mut Certificate, oid: ObjectIdentifier) {
    if let Some(exts) = &mut cert.tbs_certificate.extensions {
        exts.retain(|e| e.extn_id != oid);
    }
}

/// Replaces the subjectPublicKeyInfo.
pub fn set_public_key(cert: &mut Certificate, algorithm: AlgorithmIdentifierOwned, key: &[u8]) {
    cert.tbs_certificate.subject_public_key_info = spki::SubjectPublicKeyInfoOwned {
        algorithm,
        subject_public_key: BitString::from_bytes(key).expect("bit string"),
    };
}

/// An RSAPublicKey DER with a modulus of exactly `bits` bits (not a real
/// key: for keys refused before any signature is checked with them).
pub fn fake_rsa_key(bits: usize) -> Vec<u8> {
    let mut n = vec![0xa5u8; bits.div_ceil(8)];
    let top = bits % 8;
    n[0] = if top == 0 { 0xc1 } else { (1 << (top - 1)) | 1 };
    let n = der::asn1::UintRef::new(&n).expect("modulus");
    let e = der::asn1::UintRef::new(&[1, 0, 1]).expect("exponent");
    let mut body = n.to_der().expect("n");
    body.extend(e.to_der().expect("e"));
    tlv(0x30, &body)
}

/// A tbsCertificate as the DER of each field, for encodings the `der`
/// crate will not produce (explicit DEFAULT values, unsorted SETs, names
/// and times written byte by byte).
#[derive(Clone, Debug)]
pub struct RawTbs {
    /// The whole `[0]` version element; empty for the v1 default.
    pub version: Vec<u8>,
    /// serialNumber.
    pub serial: Vec<u8>,
    /// signature (AlgorithmIdentifier).
    pub signature: Vec<u8>,
    /// issuer Name.
    pub issuer: Vec<u8>,
    /// validity.
    pub validity: Vec<u8>,
    /// subject Name.
    pub subject: Vec<u8>,
    /// subjectPublicKeyInfo.
    pub spki: Vec<u8>,
    /// Each Extension's DER; `Some(vec![])` encodes an empty `[3]` list.
    pub extensions: Option<Vec<Vec<u8>>>,
}

impl RawTbs {
    /// The fields of a well-formed certificate.
    pub fn of(der: &[u8]) -> RawTbs {
        let cert = Certificate::from_der(der).expect("a certificate to forge");
        let t = cert.tbs_certificate;
        let enc = |e: &dyn Fn() -> der::Result<Vec<u8>>| e().expect("field encodes");
        RawTbs {
            version: match t.version {
                x509_cert::certificate::Version::V1 => Vec::new(),
                v => tlv(0xa0, &[0x02, 0x01, v as u8]),
            },
            serial: enc(&|| t.serial_number.to_der()),
            signature: enc(&|| t.signature.to_der()),
            issuer: enc(&|| t.issuer.to_der()),
            validity: enc(&|| t.validity.to_der()),
            subject: enc(&|| t.subject.to_der()),
            spki: enc(&|| t.subject_public_key_info.to_der()),
            extensions: t.extensions.as_ref().map(|exts| {
                exts.iter()
                    .map(|e| e.to_der().expect("extension encodes"))
                    .collect()
            }),
        }
    }

    /// The tbsCertificate DER.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        for part in [
            &self.version,
            &self.serial,
            &self.signature,
            &self.issuer,
            &self.validity,
            &self.subject,
            &self.spki,
        ] {
            body.extend_from_slice(part);
        }
        if let Some(exts) = &self.extensions {
            body.extend(tlv(0xa3, &tlv(0x30, &exts.concat())));
        }
        tlv(0x30, &body)
    }

    /// Replaces the extension with `oid` (or appends one) by raw DER.
    pub fn set_extension(&mut self, oid: ObjectIdentifier, ext: Vec<u8>) {
        let prefix = tlv(0x06, oid.as_bytes());
        let exts = self.extensions.get_or_insert_with(Vec::new);
        match exts.iter_mut().find(|e| {
            let body = &e[header_len(e)..];
            body.starts_with(&prefix)
        }) {
            Some(e) => *e = ext,
            None => exts.push(ext),
        }
    }
}

fn header_len(tlv: &[u8]) -> usize {
    match tlv.get(1) {
        Some(b) if b & 0x80 != 0 => 2 + usize::from(b & 0x7f),
        _ => 2,
    }
}

/// Decodes `der` into raw fields, lets `edit` change them, and signs the
/// result with `signer` (the certificate's own signature algorithm).
pub fn forge_raw(der: &[u8], signer: Signer<'_>, edit: impl FnOnce(&mut RawTbs)) -> Vec<u8> {
    let cert = Certificate::from_der(der).expect("a certificate to forge");
    let mut raw = RawTbs::of(der);
    edit(&mut raw);
    let tbs = raw.encode();
    let alg = cert
        .signature_algorithm
        .to_der()
        .expect("algorithm encodes");
    assemble(&tbs, &alg, &signer.sign(&tbs))
}

/// An Extension; `critical: Some(false)` encodes the DEFAULT explicitly.
pub fn extension_der(oid: ObjectIdentifier, critical: Option<bool>, value: &[u8]) -> Vec<u8> {
    let mut body = tlv(0x06, oid.as_bytes());
    if let Some(c) = critical {
        body.extend([0x01, 0x01, if c { 0xff } else { 0x00 }]);
    }
    body.extend(tlv(0x04, value));
    tlv(0x30, &body)
}

/// A Name from RDNs of (attribute OID, string tag, value bytes), written
/// in the order given (so SETs may be left unsorted on purpose).
pub fn name_der(rdns: &[&[(&str, u8, &[u8])]]) -> Vec<u8> {
    let mut body = Vec::new();
    for rdn in rdns {
        let mut set = Vec::new();
        for (oid, tag, value) in *rdn {
            let mut atv = tlv(0x06, ObjectIdentifier::new_unwrap(oid).as_bytes());
            atv.extend(tlv(*tag, value));
            set.extend(tlv(0x30, &atv));
        }
        body.extend(tlv(0x31, &set));
    }
    tlv(0x30, &body)
}

/// Validity from two times written as given, each with its tag (0x17
/// UTCTime, 0x18 GeneralizedTime).
pub fn validity_der(not_before: (u8, &str), not_after: (u8, &str)) -> Vec<u8> {
    let mut body = tlv(not_before.0, not_before.1.as_bytes());
    body.extend(tlv(not_after.0, not_after.1.as_bytes()));
    tlv(0x30, &body)
}

/// String tags for [`name_der`].
pub mod tag {
    /// UTF8String.
    pub const UTF8: u8 = 0x0c;
    /// PrintableString.
    pub const PRINTABLE: u8 = 0x13;
    /// TeletexString.
    pub const TELETEX: u8 = 0x14;
    /// IA5String.
    pub const IA5: u8 = 0x16;
    /// BMPString.
    pub const BMP: u8 = 0x1e;
}
