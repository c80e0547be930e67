//! Signature algorithms and public keys: attest's allow-list.
//!
//! The core decides *which* algorithm applies (from the signed object's
//! AlgorithmIdentifier and the signer's key) and refuses anything outside the
//! allow-list; the arithmetic itself is delegated to a [`SignatureVerifier`]
//! (in the component, the host's `crypto` import).

use der::asn1::{Any, ObjectIdentifier as Oid, UintRef};
use der::{Decode, Reader, SliceReader, Tag, TagMode, TagNumber, Tagged};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use crate::error::Code;

/// The table of signature algorithms, in the order of the WIT
/// `signature-algorithm` enum: calls `$mac!` with `Variant "wit-name"
/// "doc";` per algorithm. [`SignatureAlgorithm`], its `ALL` and the WIT
/// mappers (component and host) are generated from it; `policy-host`'s
/// tests compare it with `wit/attest.wit`.
#[macro_export]
macro_rules! foreach_signature_algorithm {
    ($mac:ident) => {
        $mac! {
            EcdsaP256Sha256  "ecdsa-p256-sha256"  "ECDSA over P-256 with SHA-256, ASN.1 DER signature.";
            EcdsaP256Sha384  "ecdsa-p256-sha384"  "ECDSA over P-256 with SHA-384, ASN.1 DER signature.";
            EcdsaP384Sha256  "ecdsa-p384-sha256"  "ECDSA over P-384 with SHA-256, ASN.1 DER signature.";
            EcdsaP384Sha384  "ecdsa-p384-sha384"  "ECDSA over P-384 with SHA-384, ASN.1 DER signature.";
            EcdsaP521Sha512  "ecdsa-p521-sha512"  "ECDSA over P-521 with SHA-512, ASN.1 DER signature.";
            RsaPkcs1Sha256   "rsa-pkcs1-sha256"   "RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 §8.2).";
            RsaPkcs1Sha384   "rsa-pkcs1-sha384"   "RSASSA-PKCS1-v1_5 with SHA-384.";
            RsaPkcs1Sha512   "rsa-pkcs1-sha512"   "RSASSA-PKCS1-v1_5 with SHA-512.";
            RsaPssSha256     "rsa-pss-sha256"     "RSASSA-PSS with SHA-256, MGF1-SHA-256, salt 32 (RFC 8017 §8.1).";
            RsaPssSha384     "rsa-pss-sha384"     "RSASSA-PSS with SHA-384, MGF1-SHA-384, salt 48.";
            RsaPssSha512     "rsa-pss-sha512"     "RSASSA-PSS with SHA-512, MGF1-SHA-512, salt 64.";
            Ed25519          "ed25519"            "Ed25519 (RFC 8032).";
            EcdsaP256Sha512  "ecdsa-p256-sha512"  "ECDSA over P-256 with SHA-512, ASN.1 DER signature (TLS 1.2 only).";
            EcdsaP384Sha512  "ecdsa-p384-sha512"  "ECDSA over P-384 with SHA-512, ASN.1 DER signature (TLS 1.2 only).";
            EcdsaP521Sha256  "ecdsa-p521-sha256"  "ECDSA over P-521 with SHA-256, ASN.1 DER signature (TLS 1.2 only).";
            EcdsaP521Sha384  "ecdsa-p521-sha384"  "ECDSA over P-521 with SHA-384, ASN.1 DER signature (TLS 1.2 only).";
        }
    };
}

macro_rules! define_algorithms {
    ($($variant:ident $name:literal $doc:literal;)*) => {
        /// A concrete signature verification algorithm (WIT
        /// `signature-algorithm`), generated from [`foreach_signature_algorithm!`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum SignatureAlgorithm {
            $(#[doc = $doc] $variant,)*
        }

        impl SignatureAlgorithm {
            /// Every algorithm, in the order of the WIT enum.
            pub const ALL: &'static [SignatureAlgorithm] = &[$(SignatureAlgorithm::$variant,)*];

            /// The WIT case name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(SignatureAlgorithm::$variant => $name,)*
                }
            }
        }
    };
}

foreach_signature_algorithm!(define_algorithms);

/// Signature arithmetic. Implemented natively by `policy-host` (aws-lc-rs)
/// and, inside the component, by a call to the host's `crypto` import, so
/// the native core and the component run identical policy.
pub trait SignatureVerifier {
    /// Whether `signature` is valid over `message` under `public_key` (the
    /// subjectPublicKey BIT STRING content: an uncompressed EC point, an
    /// RSAPublicKey DER, or 32 Ed25519 bytes).
    fn verify_signature(
        &self,
        algorithm: SignatureAlgorithm,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> bool;
}

/// Named curves attest accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
    P521,
}

/// A public key on the allow-list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PublicKey {
    pub(crate) kind: KeyKind,
    /// subjectPublicKey BIT STRING content.
    pub(crate) bytes: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Ec(Curve),
    /// An rsaEncryption key: PKCS#1 v1.5 and PSS signatures.
    Rsa {
        bits: usize,
    },
    /// An id-RSASSA-PSS key (RFC 4055 §1.2): PSS signatures only, with
    /// `hash` when the key's parameters restrict it.
    RsaPss {
        bits: usize,
        hash: Option<u16>,
    },
    Ed25519,
}

mod oids {
    use super::Oid;
    pub(super) const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
    pub(super) const P256: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
    pub(super) const P384: Oid = Oid::new_unwrap("1.3.132.0.34");
    pub(super) const P521: Oid = Oid::new_unwrap("1.3.132.0.35");
    pub(super) const P192: Oid = Oid::new_unwrap("1.2.840.10045.3.1.1");
    pub(super) const P224: Oid = Oid::new_unwrap("1.3.132.0.33");
    pub(super) const SECP256K1: Oid = Oid::new_unwrap("1.3.132.0.10");
    pub(super) const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
    pub(super) const ED25519: Oid = Oid::new_unwrap("1.3.101.112");
    pub(super) const DSA: Oid = Oid::new_unwrap("1.2.840.10040.4.1");

    pub(super) const ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
    pub(super) const ECDSA_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
    pub(super) const ECDSA_SHA512: Oid = Oid::new_unwrap("1.2.840.10045.4.3.4");
    pub(super) const RSA_SHA256: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
    pub(super) const RSA_SHA384: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
    pub(super) const RSA_SHA512: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");
    pub(super) const RSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
    pub(super) const MGF1: Oid = Oid::new_unwrap("1.2.840.113549.1.1.8");
    pub(super) const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
    pub(super) const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
    pub(super) const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
    pub(super) const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");

    /// Known-weak signature algorithms, with a name for messages.
    pub(super) const WEAK: &[(Oid, &str)] = &[
        (
            Oid::new_unwrap("1.2.840.113549.1.1.2"),
            "md2WithRSAEncryption",
        ),
        (
            Oid::new_unwrap("1.2.840.113549.1.1.4"),
            "md5WithRSAEncryption",
        ),
        (
            Oid::new_unwrap("1.2.840.113549.1.1.5"),
            "sha1WithRSAEncryption",
        ),
        (
            Oid::new_unwrap("1.2.840.113549.1.1.14"),
            "sha224WithRSAEncryption",
        ),
        (Oid::new_unwrap("1.2.840.10045.4.1"), "ecdsa-with-SHA1"),
        (Oid::new_unwrap("1.2.840.10045.4.3.1"), "ecdsa-with-SHA224"),
        (Oid::new_unwrap("1.2.840.10040.4.3"), "dsa-with-SHA1"),
        (Oid::new_unwrap("2.16.840.1.101.3.4.3.1"), "dsa-with-SHA224"),
        (Oid::new_unwrap("2.16.840.1.101.3.4.3.2"), "dsa-with-SHA256"),
        (
            Oid::new_unwrap("1.3.14.3.2.29"),
            "sha1WithRSASignature (OIW)",
        ),
    ];
}

/// RSA modulus sizes accepted (SPEC §2: 2048–8192 bits).
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 8192;

/// Reads a SubjectPublicKeyInfo into an allow-listed key, or says why not.
pub(crate) fn parse_public_key(
    spki: &SubjectPublicKeyInfoOwned,
) -> Result<PublicKey, (Code, String)> {
    let bytes = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| {
            (
                Code::UnsupportedPublicKey,
                "subjectPublicKey BIT STRING has unused bits".to_string(),
            )
        })?
        .to_vec();
    let alg = &spki.algorithm;
    let kind = match alg.oid {
        oids::EC_PUBLIC_KEY => KeyKind::Ec(named_curve(alg)?),
        oids::RSA_ENCRYPTION => {
            if !params_absent_or_null(alg) {
                return Err((
                    Code::UnsupportedPublicKey,
                    "rsaEncryption parameters must be NULL (RFC 3279 §2.3.1)".into(),
                ));
            }
            KeyKind::Rsa {
                bits: rsa_modulus_bits(&bytes)?,
            }
        }
        oids::RSA_PSS => {
            // RFC 4055 §3.1: absent parameters leave the key unrestricted;
            // present ones restrict it to one PSS parameter set.
            let hash = match &alg.parameters {
                None => None,
                Some(params) => Some(pss_hash(Some(params)).map_err(|(code, message)| {
                    let code = match code {
                        Code::WeakSignatureAlgorithm => Code::WeakPublicKey,
                        _ => Code::UnsupportedPublicKey,
                    };
                    (code, format!("id-RSASSA-PSS key parameters: {message}"))
                })?),
            };
            KeyKind::RsaPss {
                bits: rsa_modulus_bits(&bytes)?,
                hash,
            }
        }
        oids::ED25519 => {
            if alg.parameters.is_some() || bytes.len() != 32 {
                return Err((
                    Code::UnsupportedPublicKey,
                    "Ed25519 key must be 32 bytes with absent parameters (RFC 8410 §3)".into(),
                ));
            }
            KeyKind::Ed25519
        }
        oids::DSA => {
            return Err((Code::WeakPublicKey, "DSA keys are not accepted".to_string()));
        }
        other => {
            return Err((
                Code::UnsupportedPublicKey,
                format!("public key algorithm {other} is not supported"),
            ));
        }
    };
    if let KeyKind::Ec(curve) = kind {
        let expected = match curve {
            Curve::P256 => 65,
            Curve::P384 => 97,
            Curve::P521 => 133,
        };
        if bytes.len() != expected || bytes.first() != Some(&0x04) {
            return Err((
                Code::UnsupportedPublicKey,
                format!("EC public key is not an uncompressed {curve:?} point (RFC 5480 §2.2)"),
            ));
        }
    }
    Ok(PublicKey { kind, bytes })
}

fn named_curve(alg: &AlgorithmIdentifierOwned) -> Result<Curve, (Code, String)> {
    let Some(params) = &alg.parameters else {
        return Err((
            Code::UnsupportedPublicKey,
            "id-ecPublicKey without a named curve (RFC 5480 §2.1.1)".into(),
        ));
    };
    if params.tag() == Tag::Sequence {
        return Err((
            Code::ExplicitCurveParameters,
            "EC key with explicit curve parameters; only named curves are accepted (RFC 5480 §2.1.1)"
                .into(),
        ));
    }
    let curve: Oid = params.decode_as().map_err(|e| {
        (
            Code::UnsupportedPublicKey,
            format!("EC key parameters are not a named curve OID: {e}"),
        )
    })?;
    match curve {
        oids::P256 => Ok(Curve::P256),
        oids::P384 => Ok(Curve::P384),
        oids::P521 => Ok(Curve::P521),
        oids::P192 | oids::P224 => Err((
            Code::WeakPublicKey,
            format!("EC curve {curve} is below P-256"),
        )),
        oids::SECP256K1 => Err((
            Code::UnsupportedPublicKey,
            "EC curve secp256k1 is not supported".to_string(),
        )),
        other => Err((
            Code::UnsupportedPublicKey,
            format!("EC curve {other} is not supported"),
        )),
    }
}

fn params_absent_or_null(alg: &AlgorithmIdentifierOwned) -> bool {
    match &alg.parameters {
        None => true,
        Some(p) => p.tag() == Tag::Null && p.value().is_empty(),
    }
}

fn params_null(alg: &AlgorithmIdentifierOwned) -> bool {
    matches!(&alg.parameters, Some(p) if p.tag() == Tag::Null && p.value().is_empty())
}

/// Bits in an RSAPublicKey's modulus (RFC 8017 §A.1.1), checked against the
/// accepted range.
fn rsa_modulus_bits(key: &[u8]) -> Result<usize, (Code, String)> {
    let bad = |e: der::Error| {
        (
            Code::UnsupportedPublicKey,
            format!("RSAPublicKey is malformed (RFC 8017 §A.1.1): {e}"),
        )
    };
    let mut reader = SliceReader::new(key).map_err(bad)?;
    let (modulus, exponent) = reader
        .sequence(|r| {
            let n = UintRef::decode(r)?;
            let e = UintRef::decode(r)?;
            Ok((n, e))
        })
        .map_err(bad)?;
    reader.finish(()).map_err(bad)?;
    let n = modulus.as_bytes();
    let bits = match n.first() {
        None => 0,
        Some(first) => (n.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    };
    let e = exponent.as_bytes();
    if e.is_empty() || e.last().is_some_and(|b| b & 1 == 0) || (e.len() == 1 && e[0] < 3) {
        return Err((
            Code::UnsupportedPublicKey,
            "RSA public exponent must be odd and at least 3".into(),
        ));
    }
    if bits < RSA_MIN_BITS {
        return Err((
            Code::WeakPublicKey,
            format!("RSA key is {bits} bits; at least {RSA_MIN_BITS} are required"),
        ));
    }
    if bits > RSA_MAX_BITS || bits % 8 != 0 {
        return Err((
            Code::UnsupportedPublicKey,
            format!(
                "RSA key is {bits} bits; attest accepts multiples of 8 from {RSA_MIN_BITS} to {RSA_MAX_BITS}"
            ),
        ));
    }
    Ok(bits)
}

/// The verification algorithm for a signature made with `sig_alg` by the
/// holder of `key`, or why it is refused.
pub(crate) fn select(
    sig_alg: &AlgorithmIdentifierOwned,
    key: &PublicKey,
) -> Result<SignatureAlgorithm, (Code, String)> {
    use SignatureAlgorithm as S;
    enum Family {
        Ecdsa(u16),
        RsaPkcs1(u16),
        RsaPss(u16),
        Ed25519,
    }
    let family = match sig_alg.oid {
        oids::ECDSA_SHA256 | oids::ECDSA_SHA384 | oids::ECDSA_SHA512 => {
            if sig_alg.parameters.is_some() {
                return Err((
                    Code::UnsupportedSignatureAlgorithm,
                    "ECDSA signature algorithm parameters must be absent (RFC 5758 §3.2)".into(),
                ));
            }
            Family::Ecdsa(match sig_alg.oid {
                oids::ECDSA_SHA256 => 256,
                oids::ECDSA_SHA384 => 384,
                _ => 512,
            })
        }
        oids::RSA_SHA256 | oids::RSA_SHA384 | oids::RSA_SHA512 => {
            if !params_null(sig_alg) {
                return Err((
                    Code::UnsupportedSignatureAlgorithm,
                    "RSA PKCS#1 v1.5 signature algorithm parameters must be NULL (RFC 4055 §5)"
                        .into(),
                ));
            }
            Family::RsaPkcs1(match sig_alg.oid {
                oids::RSA_SHA256 => 256,
                oids::RSA_SHA384 => 384,
                _ => 512,
            })
        }
        oids::ED25519 => {
            if sig_alg.parameters.is_some() {
                return Err((
                    Code::UnsupportedSignatureAlgorithm,
                    "Ed25519 signature algorithm parameters must be absent (RFC 8410 §3)".into(),
                ));
            }
            Family::Ed25519
        }
        oids::RSA_PSS => Family::RsaPss(pss_hash(sig_alg.parameters.as_ref())?),
        other => {
            if let Some((_, name)) = oids::WEAK.iter().find(|(o, _)| *o == other) {
                return Err((
                    Code::WeakSignatureAlgorithm,
                    format!(
                        "signature algorithm {name} is weak and refused (RFC 5280 §4.1.1.2; attest profile, SPEC §2)"
                    ),
                ));
            }
            return Err((
                Code::UnsupportedSignatureAlgorithm,
                format!(
                    "signature algorithm {other} is not supported (RFC 5280 §4.1.1.2; attest profile, SPEC §2)"
                ),
            ));
        }
    };
    let mismatch = |what: &str| {
        Err((
            Code::KeyAlgorithmMismatch,
            format!(
                "a {what} signature cannot be made by a {:?} key (RFC 5280 §4.1.1.2)",
                key.kind
            ),
        ))
    };
    match (family, key.kind) {
        (Family::Ecdsa(hash), KeyKind::Ec(curve)) => match (curve, hash) {
            (Curve::P256, 256) => Ok(S::EcdsaP256Sha256),
            (Curve::P256, 384) => Ok(S::EcdsaP256Sha384),
            (Curve::P384, 256) => Ok(S::EcdsaP384Sha256),
            (Curve::P384, 384) => Ok(S::EcdsaP384Sha384),
            (Curve::P521, 512) => Ok(S::EcdsaP521Sha512),
            (curve, hash) => Err((
                Code::UnsupportedSignatureAlgorithm,
                format!("ECDSA with SHA-{hash} over {curve:?} is not supported"),
            )),
        },
        (Family::RsaPkcs1(hash), KeyKind::Rsa { .. }) => Ok(match hash {
            256 => S::RsaPkcs1Sha256,
            384 => S::RsaPkcs1Sha384,
            _ => S::RsaPkcs1Sha512,
        }),
        (Family::RsaPss(hash), KeyKind::RsaPss { hash: Some(h), .. }) if h != hash => Err((
            Code::KeyAlgorithmMismatch,
            format!(
                "the id-RSASSA-PSS key is restricted to SHA-{h}; the signature uses SHA-{hash} (RFC 4055 §3.1)"
            ),
        )),
        (Family::RsaPss(hash), KeyKind::Rsa { .. } | KeyKind::RsaPss { .. }) => {
            Ok(pss_algorithm(hash))
        }
        (Family::Ed25519, KeyKind::Ed25519) => Ok(S::Ed25519),
        (Family::Ecdsa(_), _) => mismatch("ECDSA"),
        (Family::RsaPkcs1(_), _) => mismatch("RSA PKCS#1 v1.5"),
        (Family::RsaPss(_), _) => mismatch("RSASSA-PSS"),
        (Family::Ed25519, _) => mismatch("Ed25519"),
    }
}

/// The algorithm a device uses for a challenge proof of possession, implied
/// by its key: ECDSA with the curve's hash (P-256/SHA-256, P-384/SHA-384,
/// P-521/SHA-512), RSA PKCS#1 v1.5 with SHA-256, or Ed25519.
pub(crate) fn challenge_algorithm(key: &PublicKey) -> SignatureAlgorithm {
    match key.kind {
        KeyKind::Ec(Curve::P256) => SignatureAlgorithm::EcdsaP256Sha256,
        KeyKind::Ec(Curve::P384) => SignatureAlgorithm::EcdsaP384Sha384,
        KeyKind::Ec(Curve::P521) => SignatureAlgorithm::EcdsaP521Sha512,
        KeyKind::Rsa { .. } => SignatureAlgorithm::RsaPkcs1Sha256,
        KeyKind::RsaPss { hash, .. } => pss_algorithm(hash.unwrap_or(256)),
        KeyKind::Ed25519 => SignatureAlgorithm::Ed25519,
    }
}

fn pss_algorithm(hash: u16) -> SignatureAlgorithm {
    match hash {
        256 => SignatureAlgorithm::RsaPssSha256,
        384 => SignatureAlgorithm::RsaPssSha384,
        _ => SignatureAlgorithm::RsaPssSha512,
    }
}

/// Checks RSASSA-PSS-params (RFC 4055 §3.1) and returns the hash size.
///
/// Accepted: SHA-256/384/512, MGF1 with the same hash, a salt as long as
/// the hash, trailer field 1 — the parameter sets RFC 4055 §3.3 and CA/B
/// Forum profiles use, and the only ones the host's verifier implements.
/// Absent parameters (or an absent hash) mean SHA-1 and are refused as weak.
fn pss_hash(params: Option<&Any>) -> Result<u16, (Code, String)> {
    let weak = || {
        (
            Code::WeakSignatureAlgorithm,
            "RSASSA-PSS with the default hash SHA-1 is weak and refused (RFC 4055 §3.1)"
                .to_string(),
        )
    };
    let Some(params) = params else {
        return Err(weak());
    };
    let malformed = |e: der::Error| {
        (
            Code::UnsupportedSignatureAlgorithm,
            format!("RSASSA-PSS parameters are malformed (RFC 4055 §3.1): {e}"),
        )
    };
    if params.tag() != Tag::Sequence {
        return Err((
            Code::UnsupportedSignatureAlgorithm,
            "RSASSA-PSS parameters are not a SEQUENCE (RFC 4055 §3.1)".into(),
        ));
    }
    let mut reader = SliceReader::new(params.value()).map_err(malformed)?;
    let explicit = TagMode::Explicit;
    let hash: Option<AlgorithmIdentifierOwned> = reader
        .context_specific(TagNumber::N0, explicit)
        .map_err(malformed)?;
    let mgf: Option<AlgorithmIdentifierOwned> = reader
        .context_specific(TagNumber::N1, explicit)
        .map_err(malformed)?;
    let salt: Option<u32> = reader
        .context_specific(TagNumber::N2, explicit)
        .map_err(malformed)?;
    let trailer: Option<u32> = reader
        .context_specific(TagNumber::N3, explicit)
        .map_err(malformed)?;
    reader.finish(()).map_err(malformed)?;

    let hash = hash.ok_or_else(weak)?;
    let bits = hash_bits(&hash)?;
    let unsupported = |what: String| {
        Err((
            Code::UnsupportedSignatureAlgorithm,
            format!(
                "RSASSA-PSS {what} (RFC 4055 §3.1; attest accepts MGF1 with the signature hash, salt = hash length, trailer 1)"
            ),
        ))
    };
    let Some(mgf) = mgf else {
        return unsupported("uses the default MGF1 with SHA-1".into());
    };
    if mgf.oid != oids::MGF1 {
        return unsupported(format!("mask generation function {} is not MGF1", mgf.oid));
    }
    let Some(mgf_params) = mgf.parameters.as_ref() else {
        return unsupported("MGF1 has no hash parameter".into());
    };
    let mgf_hash: AlgorithmIdentifierOwned = mgf_params.decode_as().map_err(malformed)?;
    let mgf_bits = match mgf_hash.oid {
        oids::SHA1 => 160,
        _ => hash_bits(&mgf_hash)?,
    };
    if mgf_bits != bits {
        return unsupported(format!("MGF1 uses SHA-{mgf_bits} with SHA-{bits}"));
    }
    let salt = salt.unwrap_or(20);
    if usize::try_from(salt).ok() != Some(usize::from(bits / 8)) {
        return unsupported(format!("salt length {salt} with SHA-{bits}"));
    }
    if trailer.unwrap_or(1) != 1 {
        return unsupported("trailer field is not 1".into());
    }
    Ok(bits)
}

/// The output size of an accepted hash AlgorithmIdentifier (parameters
/// absent or NULL, RFC 5754 §2).
fn hash_bits(hash: &AlgorithmIdentifierOwned) -> Result<u16, (Code, String)> {
    let bits = match hash.oid {
        oids::SHA256 => 256,
        oids::SHA384 => 384,
        oids::SHA512 => 512,
        oids::SHA1 => {
            return Err((
                Code::WeakSignatureAlgorithm,
                "RSASSA-PSS with SHA-1 is weak and refused".into(),
            ));
        }
        other => {
            return Err((
                Code::UnsupportedSignatureAlgorithm,
                format!("RSASSA-PSS hash {other} is not supported"),
            ));
        }
    };
    if !params_absent_or_null(hash) {
        return Err((
            Code::UnsupportedSignatureAlgorithm,
            "hash algorithm parameters must be absent or NULL (RFC 5754 §2)".into(),
        ));
    }
    Ok(bits)
}

/// The TLS signature schemes (RFC 8446 §4.2.3 code points) attest accepts
/// as a device's CertificateVerify: exactly those [`tls_algorithm`] maps
/// for some key. TLS hosts offer these in the handshake, so a scheme the
/// component would refuse is never negotiated.
pub const TLS_SIGNATURE_SCHEMES: &[u16] = &[
    0x0403, // ecdsa_secp256r1_sha256
    0x0503, // ecdsa_secp384r1_sha384
    0x0603, // ecdsa_secp521r1_sha512
    0x0807, // ed25519
    0x0804, // rsa_pss_rsae_sha256
    0x0805, // rsa_pss_rsae_sha384
    0x0806, // rsa_pss_rsae_sha512
    0x0809, // rsa_pss_pss_sha256
    0x080a, // rsa_pss_pss_sha384
    0x080b, // rsa_pss_pss_sha512
    0x0401, // rsa_pkcs1_sha256
    0x0501, // rsa_pkcs1_sha384
    0x0601, // rsa_pkcs1_sha512
];

/// The context string that starts every TLS 1.3 client CertificateVerify
/// content (RFC 8446 §4.4.3): 64 spaces, the context, a zero byte.
const TLS13_CLIENT_CONTEXT: &[u8] = b"TLS 1.3, client CertificateVerify\0";

/// Whether `message` is TLS 1.3 CertificateVerify content (RFC 8446
/// §4.4.3). Anything else is a TLS 1.2 handshake transcript (RFC 5246
/// §7.4.8), which starts with a ClientHello (type 1), never with a space.
pub(crate) fn is_tls13_content(message: &[u8]) -> bool {
    message.len() > 64
        && message[..64].iter().all(|&b| b == b' ')
        && message[64..].starts_with(TLS13_CLIENT_CONTEXT)
}

/// The algorithm for a TLS CertificateVerify with `scheme` (RFC 8446
/// §4.2.3) by the holder of `key`, over `message`.
///
/// TLS 1.3 (`message` carries the TLS 1.3 context) binds each ECDSA scheme
/// to one curve and forbids PKCS#1 v1.5 in handshake signatures. TLS 1.2
/// (anything else) does neither: an ECDSA scheme names only the hash and
/// the curve is the certificate key's (RFC 5246 §7.4.1.4.1, RFC 8422
/// §5.10), so OpenSSL signs with 0x0403 for a P-521 key. Both stay within
/// the profile: curves P-256/P-384/P-521, hashes SHA-256/384/512.
pub(crate) fn tls_algorithm(
    scheme: u16,
    key: &PublicKey,
    message: &[u8],
) -> Result<SignatureAlgorithm, String> {
    use SignatureAlgorithm as S;
    let tls13 = is_tls13_content(message);
    let version = if tls13 { "TLS 1.3" } else { "TLS 1.2" };
    let refuse = |scheme: u16, kind: KeyKind| {
        format!("{version} signature scheme 0x{scheme:04x} is not allowed for a {kind:?} key")
    };
    let alg = match (scheme, key.kind) {
        // ECDSA: TLS 1.3 pairs each scheme with its curve.
        (0x0403, KeyKind::Ec(Curve::P256)) => S::EcdsaP256Sha256,
        (0x0503, KeyKind::Ec(Curve::P384)) => S::EcdsaP384Sha384,
        (0x0603, KeyKind::Ec(Curve::P521)) => S::EcdsaP521Sha512,
        // TLS 1.2: the scheme's hash with the key's curve.
        (0x0403 | 0x0503 | 0x0603, KeyKind::Ec(curve)) if !tls13 => match (scheme, curve) {
            (0x0503, Curve::P256) => S::EcdsaP256Sha384,
            (0x0603, Curve::P256) => S::EcdsaP256Sha512,
            (0x0403, Curve::P384) => S::EcdsaP384Sha256,
            (0x0603, Curve::P384) => S::EcdsaP384Sha512,
            (0x0403, Curve::P521) => S::EcdsaP521Sha256,
            (0x0503, Curve::P521) => S::EcdsaP521Sha384,
            _ => return Err(refuse(scheme, key.kind)),
        },
        // PKCS#1 v1.5 signs TLS 1.2 handshakes only (RFC 8446 §4.2.3).
        (0x0401, KeyKind::Rsa { .. }) if !tls13 => S::RsaPkcs1Sha256,
        (0x0501, KeyKind::Rsa { .. }) if !tls13 => S::RsaPkcs1Sha384,
        (0x0601, KeyKind::Rsa { .. }) if !tls13 => S::RsaPkcs1Sha512,
        (0x0804, KeyKind::Rsa { .. }) => S::RsaPssSha256,
        (0x0805, KeyKind::Rsa { .. }) => S::RsaPssSha384,
        (0x0806, KeyKind::Rsa { .. }) => S::RsaPssSha512,
        // rsa_pss_pss_*: the key is an id-RSASSA-PSS key (RFC 8446 §4.2.3).
        (
            0x0809,
            KeyKind::RsaPss {
                hash: None | Some(256),
                ..
            },
        ) => S::RsaPssSha256,
        (
            0x080a,
            KeyKind::RsaPss {
                hash: None | Some(384),
                ..
            },
        ) => S::RsaPssSha384,
        (
            0x080b,
            KeyKind::RsaPss {
                hash: None | Some(512),
                ..
            },
        ) => S::RsaPssSha512,
        (0x0807, KeyKind::Ed25519) => S::Ed25519,
        (scheme, kind) => return Err(refuse(scheme, kind)),
    };
    Ok(alg)
}

/// What checking one signature under `key` costs, in units of about 10 µs
/// of native aws-lc-rs time (measured: P-256 40 µs, P-384 150 µs, P-521
/// 270 µs, Ed25519 27 µs, RSA-2048 17 µs, RSA-4096 55 µs, RSA-8192 200 µs).
/// No check costs less than a P-256 one, so a budget of `100 ×
/// cost(P-256)` allows at most rustls-webpki's 100 checks and far fewer
/// of the expensive ones: a chain of look-alike P-521 issuers cannot buy
/// more CPU than a chain of P-256 ones.
pub(crate) fn verification_cost(key: &PublicKey) -> usize {
    match key.kind {
        KeyKind::Ec(Curve::P256) | KeyKind::Ed25519 => P256_COST,
        KeyKind::Ec(Curve::P384) => 15,
        KeyKind::Ec(Curve::P521) => 27,
        KeyKind::Rsa { bits } | KeyKind::RsaPss { bits, .. } => {
            // Verification grows with the square of the modulus (public
            // exponent fixed): 2048 bits ≈ 1.7 units, 8192 ≈ 20.
            let units = bits * bits / (1024 * 1024 * 3);
            units.clamp(P256_COST, 24)
        }
    }
}

/// What one P-256 signature check costs in [`verification_cost`] units.
pub(crate) const P256_COST: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;
    use der::asn1::{Any, BitString};

    fn spki(alg: Oid, params: Option<Any>, key: &[u8]) -> SubjectPublicKeyInfoOwned {
        SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: alg,
                parameters: params,
            },
            subject_public_key: BitString::from_bytes(key).unwrap(),
        }
    }

    fn rsa_key(modulus_bytes: usize) -> Vec<u8> {
        use der::Encode;
        let mut n = vec![0xffu8; modulus_bytes];
        n[0] = 0xc1;
        let n = der::asn1::UintRef::new(&n).unwrap();
        let e = der::asn1::UintRef::new(&[1, 0, 1]).unwrap();
        let mut body = Vec::new();
        n.encode_to_vec(&mut body).unwrap();
        e.encode_to_vec(&mut body).unwrap();
        let mut out = vec![0x30];
        der::Length::try_from(body.len())
            .unwrap()
            .encode_to_vec(&mut out)
            .unwrap();
        out.extend(body);
        out
    }

    #[test]
    fn rsa_sizes() {
        let null = Some(Any::null());
        let ok =
            parse_public_key(&spki(oids::RSA_ENCRYPTION, null.clone(), &rsa_key(256))).unwrap();
        assert_eq!(ok.kind, KeyKind::Rsa { bits: 2048 });
        let weak =
            parse_public_key(&spki(oids::RSA_ENCRYPTION, null.clone(), &rsa_key(128))).unwrap_err();
        assert_eq!(weak.0, Code::WeakPublicKey);
        let huge = parse_public_key(&spki(oids::RSA_ENCRYPTION, null, &rsa_key(1025))).unwrap_err();
        assert_eq!(huge.0, Code::UnsupportedPublicKey);
    }

    #[test]
    fn explicit_curve_parameters_are_refused() {
        let params = Any::new(Tag::Sequence, vec![0x02, 0x01, 0x01]).unwrap();
        let err = parse_public_key(&spki(oids::EC_PUBLIC_KEY, Some(params), &[4; 65])).unwrap_err();
        assert_eq!(err.0, Code::ExplicitCurveParameters);
    }

    #[test]
    fn small_curves_are_weak_and_named_curves_accepted() {
        let p192 = Any::from(oids::P192);
        let err = parse_public_key(&spki(oids::EC_PUBLIC_KEY, Some(p192), &[4; 49])).unwrap_err();
        assert_eq!(err.0, Code::WeakPublicKey);
        let mut point = vec![4u8; 65];
        point[1] = 1;
        let ok = parse_public_key(&spki(
            oids::EC_PUBLIC_KEY,
            Some(Any::from(oids::P256)),
            &point,
        ))
        .unwrap();
        assert_eq!(ok.kind, KeyKind::Ec(Curve::P256));
    }

    #[test]
    fn weak_and_mismatched_signature_algorithms() {
        let ec = PublicKey {
            kind: KeyKind::Ec(Curve::P256),
            bytes: vec![],
        };
        let sha1 = AlgorithmIdentifierOwned {
            oid: Oid::new_unwrap("1.2.840.113549.1.1.5"),
            parameters: Some(Any::null()),
        };
        assert_eq!(
            select(&sha1, &ec).unwrap_err().0,
            Code::WeakSignatureAlgorithm
        );
        let rsa256 = AlgorithmIdentifierOwned {
            oid: oids::RSA_SHA256,
            parameters: Some(Any::null()),
        };
        assert_eq!(
            select(&rsa256, &ec).unwrap_err().0,
            Code::KeyAlgorithmMismatch
        );
        let ecdsa256 = AlgorithmIdentifierOwned {
            oid: oids::ECDSA_SHA256,
            parameters: None,
        };
        assert_eq!(
            select(&ecdsa256, &ec).unwrap(),
            SignatureAlgorithm::EcdsaP256Sha256
        );
        let ecdsa512 = AlgorithmIdentifierOwned {
            oid: oids::ECDSA_SHA512,
            parameters: None,
        };
        assert_eq!(
            select(&ecdsa512, &ec).unwrap_err().0,
            Code::UnsupportedSignatureAlgorithm
        );
    }

    /// Signed content of a TLS 1.3 client CertificateVerify.
    fn tls13() -> Vec<u8> {
        let mut m = vec![b' '; 64];
        m.extend_from_slice(TLS13_CLIENT_CONTEXT);
        m.extend_from_slice(&[0xab; 32]);
        m
    }

    /// The start of a TLS 1.2 handshake transcript (a ClientHello).
    const TLS12: &[u8] = &[0x01, 0x00, 0x01, 0x00, 0x03, 0x03];

    fn key(kind: KeyKind) -> PublicKey {
        PublicKey {
            kind,
            bytes: Vec::new(),
        }
    }

    #[test]
    fn tls_schemes_bind_key_type() {
        let ed = key(KeyKind::Ed25519);
        for message in [tls13(), TLS12.to_vec()] {
            assert_eq!(
                tls_algorithm(0x0807, &ed, &message).unwrap(),
                SignatureAlgorithm::Ed25519
            );
            assert!(tls_algorithm(0x0403, &ed, &message).is_err());
        }
    }

    /// TLS 1.2 ECDSA schemes name the hash and take the curve from the key
    /// (a P-521 key signs 0x0403 under OpenSSL); TLS 1.3 binds the curve.
    #[test]
    fn ecdsa_schemes_follow_the_tls_version() {
        use SignatureAlgorithm as S;
        let table = [
            (0x0403, Curve::P256, S::EcdsaP256Sha256, true),
            (0x0503, Curve::P256, S::EcdsaP256Sha384, false),
            (0x0603, Curve::P256, S::EcdsaP256Sha512, false),
            (0x0403, Curve::P384, S::EcdsaP384Sha256, false),
            (0x0503, Curve::P384, S::EcdsaP384Sha384, true),
            (0x0603, Curve::P384, S::EcdsaP384Sha512, false),
            (0x0403, Curve::P521, S::EcdsaP521Sha256, false),
            (0x0503, Curve::P521, S::EcdsaP521Sha384, false),
            (0x0603, Curve::P521, S::EcdsaP521Sha512, true),
        ];
        for (scheme, curve, algorithm, in_tls13) in table {
            let k = key(KeyKind::Ec(curve));
            assert_eq!(tls_algorithm(scheme, &k, TLS12), Ok(algorithm));
            let v13 = tls_algorithm(scheme, &k, &tls13());
            if in_tls13 {
                assert_eq!(v13, Ok(algorithm));
            } else {
                assert!(
                    v13.unwrap_err().contains("TLS 1.3"),
                    "{scheme:04x} {curve:?}"
                );
            }
        }
    }

    #[test]
    fn pkcs1_signs_tls12_handshakes_only() {
        let rsa = key(KeyKind::Rsa { bits: 2048 });
        for scheme in [0x0401, 0x0501, 0x0601] {
            assert!(tls_algorithm(scheme, &rsa, TLS12).is_ok());
            assert!(tls_algorithm(scheme, &rsa, &tls13()).is_err());
        }
        assert_eq!(
            tls_algorithm(0x0804, &rsa, &tls13()),
            Ok(SignatureAlgorithm::RsaPssSha256)
        );
    }

    /// Only the exact TLS 1.3 client context counts as TLS 1.3.
    #[test]
    fn tls13_content_is_recognised_exactly() {
        assert!(is_tls13_content(&tls13()));
        let mut short = tls13();
        short.remove(0);
        assert!(!is_tls13_content(&short));
        let mut server = vec![b' '; 64];
        server.extend_from_slice(b"TLS 1.3, server CertificateVerify\0");
        assert!(!is_tls13_content(&server));
        assert!(!is_tls13_content(TLS12));
        assert!(!is_tls13_content(b""));
    }

    /// `TLS_SIGNATURE_SCHEMES` is exactly the set `tls_algorithm` accepts
    /// for some key under TLS 1.2 (a superset of TLS 1.3's): every listed
    /// scheme maps for one key kind, and every other 16-bit code point is
    /// refused for all of them under either version.
    #[test]
    fn tls_schemes_are_exactly_what_the_core_accepts() {
        let kinds = [
            KeyKind::Ec(Curve::P256),
            KeyKind::Ec(Curve::P384),
            KeyKind::Ec(Curve::P521),
            KeyKind::Rsa { bits: 2048 },
            KeyKind::RsaPss {
                bits: 2048,
                hash: None,
            },
            KeyKind::Ed25519,
        ];
        let v13 = tls13();
        for scheme in 0..=u16::MAX {
            let accepted = |message: &[u8]| {
                kinds
                    .iter()
                    .any(|&kind| tls_algorithm(scheme, &key(kind), message).is_ok())
            };
            assert_eq!(
                accepted(TLS12),
                TLS_SIGNATURE_SCHEMES.contains(&scheme),
                "scheme 0x{scheme:04x}"
            );
            assert!(!accepted(&v13) || accepted(TLS12), "scheme 0x{scheme:04x}");
        }
    }

    /// No check is cheaper than a P-256 one, and costlier keys cost more.
    #[test]
    fn verification_cost_follows_the_arithmetic() {
        let cost = |kind| verification_cost(&key(kind));
        assert_eq!(cost(KeyKind::Ec(Curve::P256)), P256_COST);
        assert_eq!(cost(KeyKind::Rsa { bits: 2048 }), P256_COST);
        assert_eq!(cost(KeyKind::Ed25519), P256_COST);
        assert!(cost(KeyKind::Ec(Curve::P384)) > 3 * P256_COST);
        assert!(cost(KeyKind::Ec(Curve::P521)) > 6 * P256_COST);
        assert!(cost(KeyKind::Rsa { bits: 8192 }) > 4 * cost(KeyKind::Rsa { bits: 4096 }) / 2);
        let mut last = 0;
        for bits in (2048..=8192).step_by(8) {
            let c = cost(KeyKind::Rsa { bits });
            assert!(c >= last && c >= P256_COST, "{bits}");
            last = c;
        }
    }
}
