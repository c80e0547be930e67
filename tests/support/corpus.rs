//! The conformance corpus: for each rule of attest's path-validation
//! profile (SPEC §2, RFC 5280), at least one accepting and one refusing
//! case, generated here at the fixed validation time. rcgen makes the
//! certificates; [`crate::forge`] re-signs them with the defects rcgen will
//! not express.
//!
//! The same cases run through the native core and the component
//! (`tests/conformance.rs`), through `host-cli verify`
//! (`host-cli/tests/conformance.rs`) and through `openssl verify
//! -x509_strict`, whose disagreements are listed in `docs/conformance.md`.

use std::collections::HashSet;
use std::sync::OnceLock;

use der::Tag;
use der::asn1::{Any, GeneralizedTime};
use policy_host::{Code, Purpose};
use rcgen::{
    CidrSubnet, CustomExtension, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, KeyPair, KeyUsagePurpose, NameConstraints, RsaKeySize, SanType,
    SerialNumber,
};
use x509_cert::certificate::Version;
use x509_cert::time::Time;

use crate::forge::{self, Signer, oid, tlv};
use crate::pki::{Ca, Device, KeyAlg, ca_params, device_params};
use crate::{VALIDATION_TIME, ca_validity, device_validity, validity};

/// One conformance case: a chain, its trust anchors, a time and purpose,
/// and the verdict attest must give.
#[derive(Clone, Debug)]
pub struct Case {
    /// Stable kebab-case identifier (used by `docs/conformance.md`).
    pub id: String,
    /// RFC 5280 section the rule comes from, e.g. "4.2.1.10".
    pub section: &'static str,
    /// The rule, in a few words.
    pub rule: String,
    /// The leaf certificate, DER.
    pub leaf: Vec<u8>,
    /// Presented intermediates, DER, in the order presented.
    pub intermediates: Vec<Vec<u8>>,
    /// Trust anchors, DER.
    pub anchors: Vec<Vec<u8>>,
    /// Validation time (Unix seconds).
    pub time: i64,
    /// Required purpose.
    pub purpose: Purpose,
    /// `None`: accepted; `Some(code)`: refused with this code.
    pub expect: Option<Code>,
}

impl Case {
    /// The request for `policy_core::validate_chain`.
    pub fn request(&self) -> policy_host::ChainRequest {
        policy_host::ChainRequest {
            leaf: self.leaf.clone(),
            intermediates: self.intermediates.clone(),
            trust_anchors: self.anchors.clone(),
            time: self.time,
            purpose: self.purpose,
        }
    }
}

/// The corpus, generated once per process.
pub fn corpus() -> &'static [Case] {
    static CORPUS: OnceLock<Vec<Case>> = OnceLock::new();
    CORPUS.get_or_init(build)
}

#[derive(Default)]
struct Corpus {
    cases: Vec<Case>,
    section: &'static str,
}

impl Corpus {
    fn section(&mut self, section: &'static str) {
        self.section = section;
    }

    fn case(
        &mut self,
        id: &str,
        rule: &str,
        expect: Option<Code>,
        leaf: &[u8],
        intermediates: &[&[u8]],
        anchors: &[&[u8]],
    ) -> &mut Case {
        self.cases.push(Case {
            id: id.to_string(),
            section: self.section,
            rule: rule.to_string(),
            leaf: leaf.to_vec(),
            intermediates: intermediates.iter().map(|c| c.to_vec()).collect(),
            anchors: anchors.iter().map(|c| c.to_vec()).collect(),
            time: VALIDATION_TIME,
            purpose: Purpose::ClientAuth,
            expect,
        });
        self.cases.last_mut().expect("just pushed")
    }

    fn accept(
        &mut self,
        id: &str,
        rule: &str,
        leaf: &[u8],
        intermediates: &[&[u8]],
        anchors: &[&[u8]],
    ) -> &mut Case {
        self.case(id, rule, None, leaf, intermediates, anchors)
    }

    fn refuse(
        &mut self,
        id: &str,
        rule: &str,
        code: Code,
        leaf: &[u8],
        intermediates: &[&[u8]],
        anchors: &[&[u8]],
    ) -> &mut Case {
        self.case(id, rule, Some(code), leaf, intermediates, anchors)
    }
}

fn key(alg: KeyAlg) -> KeyPair {
    alg.generate().expect("key")
}

fn device_with(ca: &Ca, edit: impl FnOnce(&mut rcgen::CertificateParams)) -> Device {
    let mut params = device_params("device-1", device_validity());
    edit(&mut params);
    ca.issue_device(params, key(KeyAlg::P256), "device-1")
        .expect("device")
}

fn ca_with(issuer: &Ca, cn: &str, edit: impl FnOnce(&mut rcgen::CertificateParams)) -> Ca {
    let mut params = ca_params(cn, ca_validity(), None);
    edit(&mut params);
    issuer.issue_ca(params, key(KeyAlg::P256)).expect("CA")
}

fn root_with(cn: &str, edit: impl FnOnce(&mut rcgen::CertificateParams)) -> Ca {
    let mut params = ca_params(cn, ca_validity(), None);
    edit(&mut params);
    Ca::self_signed(params, key(KeyAlg::P256)).expect("root")
}

fn dns(name: &str) -> SanType {
    SanType::DnsName(name.try_into().expect("ia5"))
}

fn email(name: &str) -> SanType {
    SanType::Rfc822Name(name.try_into().expect("ia5"))
}

fn constraints(permitted: Vec<GeneralSubtree>, excluded: Vec<GeneralSubtree>) -> NameConstraints {
    NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: excluded,
    }
}

fn build() -> Vec<Case> {
    let mut c = Corpus::default();
    let root = Ca::root("Conformance Root", KeyAlg::P256, ca_validity()).expect("root");
    let ica = root
        .intermediate("Conformance CA", KeyAlg::P256, ca_validity())
        .expect("CA");
    let leaf = ica
        .device("device-1", KeyAlg::P256, device_validity())
        .expect("leaf");
    let other_root = Ca::root("Unrelated Root", KeyAlg::P256, ca_validity()).expect("root");

    signatures(&mut c, &root, &ica, &leaf);
    keys(&mut c, &root, &ica, &leaf);
    structure(&mut c, &root, &ica, &leaf);
    validity_rules(&mut c, &root, &ica);
    extensions(&mut c, &root, &ica, &leaf);
    constraints_rules(&mut c, &root, &ica);
    name_constraints(&mut c, &root);
    path_building(&mut c, &root, &ica, &leaf, &other_root);
    strict_der(&mut c, &root, &ica, &leaf);
    name_matching(&mut c, &root);
    hard_constraints(&mut c, &root);
    soup(&mut c);

    let mut ids = HashSet::new();
    for case in &c.cases {
        assert!(ids.insert(case.id.clone()), "duplicate case id {}", case.id);
    }
    c.cases
}

/// RFC 5280 §4.1.1.2 / §4.1.1.3 and the algorithm RFCs it points to.
fn signatures(c: &mut Corpus, root: &Ca, ica: &Ca, leaf: &Device) {
    c.section("4.1.1.2");
    c.accept(
        "sig-ecdsa-p256-sha256",
        "ECDSA P-256 with SHA-256",
        &leaf.der,
        &[&ica.der],
        &[&root.der],
    );
    let r384 = Ca::root("P-384 Root", KeyAlg::P384, ca_validity()).expect("root");
    let d384 = r384
        .device("device-1", KeyAlg::P384, device_validity())
        .expect("leaf");
    c.accept(
        "sig-ecdsa-p384-sha384",
        "ECDSA P-384 with SHA-384",
        &d384.der,
        &[],
        &[&r384.der],
    );
    let k521 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).expect("P-521 key");
    let r521 = Ca::self_signed(ca_params("P-521 Root", ca_validity(), None), k521).expect("root");
    let d521 = r521
        .device("device-1", KeyAlg::P256, device_validity())
        .expect("leaf");
    c.accept(
        "sig-ecdsa-p521-sha512",
        "ECDSA P-521 with SHA-512",
        &d521.der,
        &[],
        &[&r521.der],
    );
    let red = Ca::root("Ed25519 Root", KeyAlg::Ed25519, ca_validity()).expect("root");
    let ded = red
        .device("device-1", KeyAlg::Ed25519, device_validity())
        .expect("leaf");
    c.accept("sig-ed25519", "Ed25519", &ded.der, &[], &[&red.der]);

    let rsa = Ca::root("RSA-2048 Root", KeyAlg::Rsa2048, ca_validity()).expect("root");
    let drsa = rsa
        .device("device-1", KeyAlg::P256, device_validity())
        .expect("leaf");
    c.accept(
        "sig-rsa-pkcs1-sha256",
        "RSA-2048 PKCS#1 v1.5 with SHA-256",
        &drsa.der,
        &[],
        &[&rsa.der],
    );
    for (id, size, alg) in [
        (
            "sig-rsa3072-pkcs1-sha384",
            RsaKeySize::_3072,
            &rcgen::PKCS_RSA_SHA384,
        ),
        (
            "sig-rsa4096-pkcs1-sha512",
            RsaKeySize::_4096,
            &rcgen::PKCS_RSA_SHA512,
        ),
    ] {
        let k = KeyPair::generate_rsa_for(alg, size).expect("RSA key");
        let r = Ca::self_signed(ca_params(id, ca_validity(), None), k).expect("root");
        let d = r
            .device("device-1", KeyAlg::P256, device_validity())
            .expect("leaf");
        c.accept(
            id,
            "RSA 3072/4096 PKCS#1 v1.5 with SHA-384/512",
            &d.der,
            &[],
            &[&r.der],
        );
    }
    for bits in [256u16, 384, 512] {
        let pss = forge::forge(&drsa.der, Signer::RsaPss(&rsa.key, bits), |cert| {
            forge::set_algorithm(cert, forge::pss(bits, bits, u32::from(bits / 8)));
        });
        c.accept(
            &format!("sig-rsa-pss-sha{bits}"),
            "RSASSA-PSS, MGF1 with the same hash, salt = hash length (RFC 4055)",
            &pss,
            &[],
            &[&rsa.der],
        );
    }
    let salt20 = forge::forge(&drsa.der, Signer::RsaPss(&rsa.key, 256), |cert| {
        forge::set_algorithm(cert, forge::pss(256, 256, 20));
    });
    c.refuse(
        "sig-rsa-pss-salt-mismatch",
        "RSASSA-PSS salt length other than the hash length",
        Code::UnsupportedSignatureAlgorithm,
        &salt20,
        &[],
        &[&rsa.der],
    );
    let mgf_sha1 = forge::forge(&drsa.der, Signer::RsaPss(&rsa.key, 256), |cert| {
        forge::set_algorithm(cert, forge::pss(256, 1, 32));
    });
    c.refuse(
        "sig-rsa-pss-mgf1-sha1",
        "RSASSA-PSS with MGF1 over a different hash",
        Code::UnsupportedSignatureAlgorithm,
        &mgf_sha1,
        &[],
        &[&rsa.der],
    );
    let pss_default = forge::forge(&drsa.der, Signer::RsaPss(&rsa.key, 256), |cert| {
        forge::set_algorithm(cert, forge::alg(oid::RSA_PSS, None));
    });
    c.refuse(
        "sig-rsa-pss-default-sha1",
        "RSASSA-PSS without parameters (defaults to SHA-1)",
        Code::WeakSignatureAlgorithm,
        &pss_default,
        &[],
        &[&rsa.der],
    );
    for (id, alg, rule) in [
        (
            "sig-sha1-rsa",
            forge::alg(oid::SHA1_RSA, Some(Any::null())),
            "sha1WithRSAEncryption",
        ),
        (
            "sig-md5-rsa",
            forge::alg(oid::MD5_RSA, Some(Any::null())),
            "md5WithRSAEncryption",
        ),
    ] {
        let weak = forge::forge(&drsa.der, Signer::RsaPkcs1(&rsa.key, 256), |cert| {
            forge::set_algorithm(cert, alg);
        });
        c.refuse(
            id,
            rule,
            Code::WeakSignatureAlgorithm,
            &weak,
            &[],
            &[&rsa.der],
        );
    }
    let ec_sha1 = forge::forge(&leaf.der, Signer::Key(&ica.key), |cert| {
        forge::set_algorithm(cert, forge::alg(oid::ECDSA_SHA1, None));
    });
    c.refuse(
        "sig-ecdsa-sha1",
        "ecdsa-with-SHA1",
        Code::WeakSignatureAlgorithm,
        &ec_sha1,
        &[&ica.der],
        &[&root.der],
    );
    let dsa = forge::forge(&leaf.der, Signer::Garbage, |cert| {
        forge::set_algorithm(cert, forge::alg(oid::DSA_SHA256, None));
    });
    c.refuse(
        "sig-dsa-sha256",
        "dsa-with-SHA256",
        Code::WeakSignatureAlgorithm,
        &dsa,
        &[&ica.der],
        &[&root.der],
    );
    let unknown = forge::forge(&leaf.der, Signer::Key(&ica.key), |cert| {
        forge::set_algorithm(
            cert,
            forge::alg(
                der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.55555.1"),
                None,
            ),
        );
    });
    c.refuse(
        "sig-unknown-algorithm",
        "an algorithm attest does not know",
        Code::UnsupportedSignatureAlgorithm,
        &unknown,
        &[&ica.der],
        &[&root.der],
    );
    let mismatch = forge::forge(&leaf.der, Signer::Key(&ica.key), |cert| {
        cert.tbs_certificate.signature = forge::alg(oid::ECDSA_SHA384, None);
    });
    c.refuse(
        "sig-outer-inner-mismatch",
        "signatureAlgorithm differs from tbsCertificate.signature (§4.1.1.2)",
        Code::SignatureAlgorithmMismatch,
        &mismatch,
        &[&ica.der],
        &[&root.der],
    );
    let wrong_family = forge::forge(&leaf.der, Signer::Key(&ica.key), |cert| {
        forge::set_algorithm(cert, forge::alg(oid::SHA256_RSA, Some(Any::null())));
    });
    c.refuse(
        "sig-rsa-algorithm-ec-key",
        "an RSA signature algorithm with an EC issuer key",
        Code::KeyAlgorithmMismatch,
        &wrong_family,
        &[&ica.der],
        &[&root.der],
    );
    let mut tampered = leaf.der.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    c.refuse(
        "sig-bad-signature",
        "a signature that does not verify",
        Code::BadSignature,
        &tampered,
        &[&ica.der],
        &[&root.der],
    );
}

/// RFC 5280 §4.1.2.7 with RFC 3279 / 5480 / 4055 / 8410.
fn keys(c: &mut Corpus, root: &Ca, ica: &Ca, leaf: &Device) {
    c.section("4.1.2.7");
    let null = || Some(Any::null());
    let mut leaf_key = |id: &str, rule: &str, code: Option<Code>, alg, key: Vec<u8>| {
        let forged = forge::forge(&leaf.der, Signer::Key(&ica.key), |cert| {
            forge::set_public_key(cert, alg, &key);
        });
        c.case(id, rule, code, &forged, &[&ica.der], &[&root.der]);
    };
    leaf_key(
        "key-rsa-1024",
        "RSA key below 2048 bits",
        Some(Code::WeakPublicKey),
        forge::alg(oid::RSA_ENCRYPTION, null()),
        forge::fake_rsa_key(1024),
    );
    leaf_key(
        "key-rsa-2049-bits",
        "RSA key size not a multiple of 8",
        Some(Code::UnsupportedPublicKey),
        forge::alg(oid::RSA_ENCRYPTION, null()),
        forge::fake_rsa_key(2049),
    );
    leaf_key(
        "key-rsa-8200-bits",
        "RSA key above 8192 bits",
        Some(Code::UnsupportedPublicKey),
        forge::alg(oid::RSA_ENCRYPTION, null()),
        forge::fake_rsa_key(8200),
    );
    leaf_key(
        "key-ec-p192",
        "EC curve below P-256",
        Some(Code::WeakPublicKey),
        forge::alg(oid::EC_PUBLIC_KEY, Some(Any::from(oid::P192))),
        vec![4; 49],
    );
    leaf_key(
        "key-ec-explicit-parameters",
        "EC key with explicit domain parameters (RFC 5480 §2.1.1)",
        Some(Code::ExplicitCurveParameters),
        forge::alg(
            oid::EC_PUBLIC_KEY,
            Some(Any::new(Tag::Sequence, vec![0x02, 0x01, 0x01]).expect("any")),
        ),
        vec![4; 65],
    );
    leaf_key(
        "key-dsa",
        "DSA key",
        Some(Code::WeakPublicKey),
        forge::alg(oid::DSA, None),
        vec![0x02, 0x01, 0x05],
    );
    leaf_key(
        "key-ec-point-truncated",
        "an EC point of the wrong length (unparsable key)",
        Some(Code::UnsupportedPublicKey),
        forge::alg(
            oid::EC_PUBLIC_KEY,
            Some(Any::from(der::asn1::ObjectIdentifier::new_unwrap(
                "1.2.840.10045.3.1.7",
            ))),
        ),
        vec![4; 64],
    );
    let rsa_leaf = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
    let rsa_spki = rcgen::PublicKeyData::der_bytes(&rsa_leaf).to_vec();
    leaf_key(
        "key-rsassa-pss-spki",
        "an id-RSASSA-PSS subject key without parameters (RFC 4055 §1.2)",
        None,
        forge::alg(oid::RSA_PSS, None),
        rsa_spki,
    );
    let weak_ca = forge::forge(&ica.der, Signer::Key(&root.key), |cert| {
        forge::set_public_key(
            cert,
            forge::alg(oid::RSA_ENCRYPTION, null()),
            &forge::fake_rsa_key(1024),
        );
    });
    c.refuse(
        "key-weak-intermediate",
        "an intermediate with an RSA-1024 key",
        Code::WeakPublicKey,
        &leaf.der,
        &[&weak_ca],
        &[&root.der],
    );
}

/// RFC 5280 §4.1.2.1 (version), §4.1.2.2 (serial), §4.1.2.6 (subject).
fn structure(c: &mut Corpus, root: &Ca, ica: &Ca, leaf: &Device) {
    c.section("4.1.2.1");
    let v1 = |der: &[u8], signer: &KeyPair| {
        forge::forge(der, Signer::Key(signer), |cert| {
            cert.tbs_certificate.version = Version::V1;
            cert.tbs_certificate.extensions = None;
        })
    };
    let v1_root = v1(&root.der, &root.key);
    let direct = root
        .device("device-1", KeyAlg::P256, device_validity())
        .expect("leaf");
    c.accept(
        "version-v1-trust-anchor",
        "a v1 certificate as trust anchor (§6.1.4(k))",
        &direct.der,
        &[],
        &[&v1_root],
    );
    let v1_ca = v1(&ica.der, &root.key);
    c.refuse(
        "version-v1-intermediate",
        "a v1 certificate as intermediate CA (§6.1.4(k))",
        Code::UnsupportedCertificateVersion,
        &leaf.der,
        &[&v1_ca],
        &[&root.der],
    );
    let v1_leaf = v1(&leaf.der, &ica.key);
    c.refuse(
        "version-v1-leaf",
        "a v1 end-entity certificate",
        Code::UnsupportedCertificateVersion,
        &v1_leaf,
        &[&ica.der],
        &[&root.der],
    );
    let v2_ext = forge::forge(&leaf.der, Signer::Key(&ica.key), |cert| {
        cert.tbs_certificate.version = Version::V2;
    });
    c.refuse(
        "version-v2-with-extensions",
        "extensions in a certificate that is not v3 (§4.1.2.9)",
        Code::UnsupportedCertificateVersion,
        &v2_ext,
        &[&ica.der],
        &[&root.der],
    );

    c.section("4.1.2.2");
    let with_serial =
        |bytes: Vec<u8>| device_with(ica, |p| p.serial_number = Some(SerialNumber::from(bytes)));
    c.accept(
        "serial-20-octets",
        "a 20-octet positive serial number",
        &with_serial(vec![0x7f; 20]).der,
        &[&ica.der],
        &[&root.der],
    );
    c.accept(
        "serial-20-octets-high-bit",
        "a 20-octet serial whose top bit needs a leading zero octet",
        &with_serial(vec![0xff; 20]).der,
        &[&ica.der],
        &[&root.der],
    );
    c.refuse(
        "serial-21-octets",
        "a serial number longer than 20 octets",
        Code::InvalidSerialNumber,
        &with_serial(vec![0x7f; 21]).der,
        &[&ica.der],
        &[&root.der],
    );
    let negative = forge::forge_bytes(
        &with_serial(vec![0x11; 16]).der,
        Signer::Key(&ica.key),
        &[0x02, 0x10, 0x11, 0x11],
        &[0x02, 0x10, 0x91, 0x11],
    );
    c.refuse(
        "serial-negative",
        "a negative serial number",
        Code::InvalidSerialNumber,
        &negative,
        &[&ica.der],
        &[&root.der],
    );
    let zero = forge::forge_bytes(
        &with_serial(vec![0x11]).der,
        Signer::Key(&ica.key),
        &[0x02, 0x01, 0x11],
        &[0x02, 0x01, 0x00],
    );
    c.accept(
        "serial-zero",
        "serial number zero (accepted: §4.1.2.2 asks to handle it gracefully)",
        &zero,
        &[&ica.der],
        &[&root.der],
    );

    c.section("4.1.2.6");
    let empty_subject = device_with(ica, |p| {
        p.distinguished_name = DistinguishedName::new();
        p.subject_alt_names = vec![dns("device-1.example.com")];
    });
    c.accept(
        "subject-empty-critical-san",
        "an empty subject with a critical subjectAltName",
        &empty_subject.der,
        &[&ica.der],
        &[&root.der],
    );
    let empty_no_san = device_with(ica, |p| p.distinguished_name = DistinguishedName::new());
    c.refuse(
        "subject-empty-no-san",
        "an empty subject without subjectAltName",
        Code::EmptySubject,
        &empty_no_san.der,
        &[&ica.der],
        &[&root.der],
    );
    let noncritical = forge::forge(&empty_subject.der, Signer::Key(&ica.key), |cert| {
        let exts = cert
            .tbs_certificate
            .extensions
            .as_mut()
            .expect("extensions");
        let san = exts
            .iter_mut()
            .find(|e| e.extn_id == oid::SUBJECT_ALT_NAME)
            .expect("SAN");
        san.critical = false;
    });
    c.refuse(
        "subject-empty-noncritical-san",
        "an empty subject with a non-critical subjectAltName",
        Code::EmptySubject,
        &noncritical,
        &[&ica.der],
        &[&root.der],
    );
}

/// RFC 5280 §4.1.2.5: validity.
fn validity_rules(c: &mut Corpus, root: &Ca, ica: &Ca) {
    c.section("4.1.2.5");
    let nb = VALIDATION_TIME - 3600;
    let na = VALIDATION_TIME + 3600;
    let short = ica
        .device("device-1", KeyAlg::P256, validity(nb, na))
        .expect("leaf");
    c.accept(
        "validity-at-not-before",
        "valid at notBefore exactly",
        &short.der,
        &[&ica.der],
        &[&root.der],
    )
    .time = nb;
    c.accept(
        "validity-at-not-after",
        "valid at notAfter exactly",
        &short.der,
        &[&ica.der],
        &[&root.der],
    )
    .time = na;
    c.refuse(
        "validity-second-after-not-after",
        "expired one second after notAfter",
        Code::CertificateExpired,
        &short.der,
        &[&ica.der],
        &[&root.der],
    )
    .time = na + 1;
    c.refuse(
        "validity-second-before-not-before",
        "not yet valid one second before notBefore",
        Code::CertificateNotYetValid,
        &short.der,
        &[&ica.der],
        &[&root.der],
    )
    .time = nb - 1;

    let old = validity(VALIDATION_TIME - 86_400 * 400, VALIDATION_TIME - 1);
    let future = validity(VALIDATION_TIME + 1, VALIDATION_TIME + 86_400 * 400);
    let expired_root = Ca::root("Expired Root", KeyAlg::P256, old).expect("root");
    let under_expired = expired_root
        .device("device-1", KeyAlg::P256, device_validity())
        .expect("leaf");
    c.refuse(
        "validity-expired-trust-anchor",
        "an expired trust anchor",
        Code::CertificateExpired,
        &under_expired.der,
        &[],
        &[&expired_root.der],
    );
    for (id, rule, window, code) in [
        (
            "validity-expired-intermediate",
            "an expired intermediate",
            old,
            Code::CertificateExpired,
        ),
        (
            "validity-not-yet-valid-intermediate",
            "an intermediate not yet valid",
            future,
            Code::CertificateNotYetValid,
        ),
    ] {
        let ca = root
            .intermediate("Windowed CA", KeyAlg::P256, window)
            .expect("CA");
        let d = ca
            .device("device-1", KeyAlg::P256, device_validity())
            .expect("leaf");
        c.refuse(id, rule, code, &d.der, &[&ca.der], &[&root.der]);
    }
    let expired_leaf = ica.device("device-1", KeyAlg::P256, old).expect("leaf");
    c.refuse(
        "validity-expired-leaf",
        "an expired leaf",
        Code::CertificateExpired,
        &expired_leaf.der,
        &[&ica.der],
        &[&root.der],
    );
    let y2050 = validity(
        VALIDATION_TIME - 86_400,
        time::macros::datetime!(2050-06-01 00:00 UTC).unix_timestamp(),
    );
    let long = ica.device("device-1", KeyAlg::P256, y2050).expect("leaf");
    c.accept(
        "validity-generalized-time-2050",
        "notAfter in 2050 as GeneralizedTime (§4.1.2.5.2)",
        &long.der,
        &[&ica.der],
        &[&root.der],
    );
    let generalized = forge::forge(&short.der, Signer::Key(&ica.key), |cert| {
        let secs = u64::try_from(nb).expect("positive");
        cert.tbs_certificate.validity.not_before = Time::GeneralTime(
            GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(secs))
                .expect("time"),
        );
    });
    c.accept(
        "validity-generalized-time-before-2050",
        "a pre-2050 date as GeneralizedTime (accepted; the MUST is on CAs)",
        &generalized,
        &[&ica.der],
        &[&root.der],
    );
    let offset = forge::forge_bytes(
        &ica.device("device-1", KeyAlg::P256, device_validity())
            .expect("leaf")
            .der,
        Signer::Key(&ica.key),
        b"250601000000Z",
        b"2506010000+00",
    );
    c.refuse(
        "validity-utctime-offset",
        "UTCTime without seconds and with an offset instead of Z (§4.1.2.5.1)",
        Code::MalformedCertificate,
        &offset,
        &[&ica.der],
        &[&root.der],
    );
}

/// RFC 5280 §4.2: extension handling; §4.2.1.1 AKI; §4.2.1.6 SAN.
fn extensions(c: &mut Corpus, root: &Ca, ica: &Ca, leaf: &Device) {
    c.section("4.2");
    let unknown = |critical: bool| {
        let mut ext =
            CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 55555, 7], vec![0x05, 0x00]);
        ext.set_criticality(critical);
        ext
    };
    let crit_leaf = device_with(ica, |p| p.custom_extensions = vec![unknown(true)]);
    c.refuse(
        "ext-unknown-critical-leaf",
        "an unknown critical extension in the leaf",
        Code::UnknownCriticalExtension,
        &crit_leaf.der,
        &[&ica.der],
        &[&root.der],
    );
    let crit_ca = ca_with(root, "Conformance CA", |p| {
        p.custom_extensions = vec![unknown(true)]
    });
    let under = crit_ca
        .device("device-1", KeyAlg::P256, device_validity())
        .expect("leaf");
    c.refuse(
        "ext-unknown-critical-intermediate",
        "an unknown critical extension in an intermediate",
        Code::UnknownCriticalExtension,
        &under.der,
        &[&crit_ca.der],
        &[&root.der],
    );
    let noncrit = device_with(ica, |p| p.custom_extensions = vec![unknown(false)]);
    c.accept(
        "ext-unknown-noncritical",
        "an unknown non-critical extension",
        &noncrit.der,
        &[&ica.der],
        &[&root.der],
    );
    let duplicate = forge::forge(&leaf.der, Signer::Key(&ica.key), |cert| {
        forge::push_extension(cert, oid::KEY_USAGE, true, &[0x03, 0x02, 0x07, 0x80]);
    });
    c.refuse(
        "ext-duplicate",
        "the same extension twice",
        Code::DuplicateExtension,
        &duplicate,
        &[&ica.der],
        &[&root.der],
    );
    let bad_bc = forge::forge(&ica.der, Signer::Key(&root.key), |cert| {
        forge::set_extension(cert, oid::BASIC_CONSTRAINTS, true, &[0x04, 0x00]);
    });
    c.refuse(
        "ext-malformed-basic-constraints",
        "a basicConstraints value that is not a SEQUENCE",
        Code::MalformedExtension,
        &leaf.der,
        &[&bad_bc],
        &[&root.der],
    );

    c.section("4.2.1.1");
    let other_aki = forge::forge(&leaf.der, Signer::Key(&ica.key), |cert| {
        forge::set_extension(
            cert,
            oid::AUTHORITY_KEY_ID,
            false,
            &tlv(0x30, &tlv(0x80, &[0x42; 20])),
        );
    });
    c.accept(
        "aki-mismatch-is-not-fatal",
        "an authorityKeyIdentifier that names another key (an aid, not a rule)",
        &other_aki,
        &[&ica.der],
        &[&root.der],
    );

    let bad_aki = forge::forge(&leaf.der, Signer::Key(&ica.key), |cert| {
        forge::set_extension(cert, oid::AUTHORITY_KEY_ID, false, &[0x04, 0x01, 0x00]);
    });
    c.refuse(
        "aki-malformed",
        "an authorityKeyIdentifier that is not a SEQUENCE",
        Code::MalformedExtension,
        &bad_aki,
        &[&ica.der],
        &[&root.der],
    );

    c.section("4.2.1.6");
    let names = device_with(ica, |p| {
        p.subject_alt_names = vec![
            dns("device-1.example.com"),
            SanType::IpAddress("10.0.0.1".parse().expect("ip")),
            email("ops@example.com"),
        ];
    });
    c.accept(
        "san-dns-ip-email",
        "a subjectAltName with DNS, IP and email entries",
        &names.der,
        &[&ica.der],
        &[&root.der],
    );
    for (id, rule, value) in [
        ("san-empty", "an empty subjectAltName", tlv(0x30, &[])),
        (
            "san-ip-5-octets",
            "an iPAddress of 5 octets",
            tlv(0x30, &tlv(0x87, &[10, 0, 0, 1, 2])),
        ),
    ] {
        let forged = forge::forge(&leaf.der, Signer::Key(&ica.key), |cert| {
            forge::set_extension(cert, oid::SUBJECT_ALT_NAME, false, &value);
        });
        c.refuse(
            id,
            rule,
            Code::MalformedExtension,
            &forged,
            &[&ica.der],
            &[&root.der],
        );
    }
}

/// RFC 5280 §4.2.1.3 keyUsage, §4.2.1.9 basicConstraints, §4.2.1.12 EKU.
fn constraints_rules(c: &mut Corpus, root: &Ca, ica: &Ca) {
    c.section("4.2.1.3");
    let crl_only = ca_with(root, "Conformance CA", |p| {
        p.key_usages = vec![KeyUsagePurpose::CrlSign];
    });
    let under = crl_only
        .device("device-1", KeyAlg::P256, device_validity())
        .expect("leaf");
    c.refuse(
        "ku-issuer-without-key-cert-sign",
        "an issuer whose keyUsage lacks keyCertSign",
        Code::MissingKeyCertSign,
        &under.der,
        &[&crl_only.der],
        &[&root.der],
    );
    let no_ds = device_with(ica, |p| {
        p.key_usages = vec![KeyUsagePurpose::KeyEncipherment]
    });
    c.refuse(
        "ku-leaf-without-digital-signature",
        "a leaf keyUsage without digitalSignature",
        Code::MissingDigitalSignature,
        &no_ds.der,
        &[&ica.der],
        &[&root.der],
    );
    let kcs = device_with(ica, |p| {
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
        ];
    });
    c.refuse(
        "ku-leaf-key-cert-sign",
        "a non-CA leaf asserting keyCertSign",
        Code::LeafKeyCertSign,
        &kcs.der,
        &[&ica.der],
        &[&root.der],
    );
    let no_ku = device_with(ica, |p| p.key_usages = vec![]);
    c.accept(
        "ku-leaf-absent",
        "a leaf without keyUsage",
        &no_ku.der,
        &[&ica.der],
        &[&root.der],
    );

    c.section("4.2.1.9");
    let leaf = ica
        .device("device-1", KeyAlg::P256, device_validity())
        .expect("leaf");
    for (id, rule, is_ca) in [
        (
            "bc-intermediate-missing",
            "an intermediate without basicConstraints",
            IsCa::NoCa,
        ),
        (
            "bc-intermediate-ca-false",
            "an intermediate with cA false",
            IsCa::ExplicitNoCa,
        ),
    ] {
        let ca = ca_with(root, "Conformance CA", |p| p.is_ca = is_ca);
        let d = ca
            .device("device-1", KeyAlg::P256, device_validity())
            .expect("leaf");
        c.refuse(
            id,
            rule,
            Code::IssuerNotCa,
            &d.der,
            &[&ca.der],
            &[&root.der],
        );
    }
    let noncritical_root = forge::forge(&root.der, Signer::Key(&root.key), |cert| {
        let exts = cert
            .tbs_certificate
            .extensions
            .as_mut()
            .expect("extensions");
        let bc = exts
            .iter_mut()
            .find(|e| e.extn_id == oid::BASIC_CONSTRAINTS)
            .expect("BC");
        bc.critical = false;
    });
    c.accept(
        "bc-trust-anchor-noncritical",
        "a trust anchor whose basicConstraints is not critical",
        &leaf.der,
        &[&ica.der],
        &[&noncritical_root],
    );
    let bare_root = forge::forge(&root.der, Signer::Key(&root.key), |cert| {
        forge::remove_extension(cert, oid::BASIC_CONSTRAINTS);
    });
    c.refuse(
        "bc-trust-anchor-missing",
        "a v3 trust anchor without basicConstraints",
        Code::IssuerNotCa,
        &leaf.der,
        &[&ica.der],
        &[&bare_root],
    );
    let pl0 = Ca::self_signed(
        ca_params("PathLen0 Root", ca_validity(), Some(0)),
        key(KeyAlg::P256),
    )
    .expect("root");
    let sub = pl0
        .intermediate("PathLen0 Sub", KeyAlg::P256, ca_validity())
        .expect("CA");
    let under_sub = sub
        .device("device-1", KeyAlg::P256, device_validity())
        .expect("leaf");
    c.refuse(
        "bc-path-length-exceeded",
        "an intermediate below a pathLenConstraint 0 CA",
        Code::PathLengthExceeded,
        &under_sub.der,
        &[&sub.der],
        &[&pl0.der],
    );
    let direct = pl0
        .device("device-1", KeyAlg::P256, device_validity())
        .expect("leaf");
    c.accept(
        "bc-path-length-zero-direct",
        "a leaf directly below a pathLenConstraint 0 CA",
        &direct.der,
        &[],
        &[&pl0.der],
    );
    let rollover = pl0
        .issue_ca(
            ca_params("PathLen0 Root", ca_validity(), None),
            key(KeyAlg::P256),
        )
        .expect("self-issued CA");
    let under_rollover = rollover
        .device("device-1", KeyAlg::P256, device_validity())
        .expect("leaf");
    c.accept(
        "bc-path-length-self-issued-exempt",
        "a self-issued (key rollover) intermediate does not count against pathLen",
        &under_rollover.der,
        &[&rollover.der],
        &[&pl0.der],
    );
    c.refuse(
        "bc-ca-as-leaf",
        "a CA certificate presented as the leaf",
        Code::CaUsedAsEndEntity,
        &ica.der,
        &[],
        &[&root.der],
    );

    c.section("4.2.1.12");
    let with_eku =
        |ekus: Vec<ExtendedKeyUsagePurpose>| device_with(ica, |p| p.extended_key_usages = ekus);
    let server = with_eku(vec![ExtendedKeyUsagePurpose::ServerAuth]);
    c.refuse(
        "eku-server-only-for-client-auth",
        "a leaf EKU without the required clientAuth",
        Code::ExtendedKeyUsageNotPermitted,
        &server.der,
        &[&ica.der],
        &[&root.der],
    );
    c.accept(
        "eku-server-for-server-auth",
        "serverAuth required and present",
        &server.der,
        &[&ica.der],
        &[&root.der],
    )
    .purpose = Purpose::ServerAuth;
    c.accept(
        "eku-purpose-any",
        "no purpose required",
        &server.der,
        &[&ica.der],
        &[&root.der],
    )
    .purpose = Purpose::Any;
    c.accept(
        "eku-any-extended-key-usage",
        "anyExtendedKeyUsage satisfies clientAuth",
        &with_eku(vec![ExtendedKeyUsagePurpose::Any]).der,
        &[&ica.der],
        &[&root.der],
    );
    c.accept(
        "eku-absent",
        "no EKU permits every purpose",
        &with_eku(vec![]).der,
        &[&ica.der],
        &[&root.der],
    );
    let empty = forge::forge(&leaf.der, Signer::Key(&ica.key), |cert| {
        forge::set_extension(cert, oid::EXT_KEY_USAGE, false, &tlv(0x30, &[]));
    });
    c.refuse(
        "eku-empty",
        "an empty extendedKeyUsage (SIZE (1..MAX))",
        Code::MalformedExtension,
        &empty,
        &[&ica.der],
        &[&root.der],
    );
    let server_ca = ca_with(root, "Conformance CA", |p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    });
    let under = server_ca
        .device("device-1", KeyAlg::P256, device_validity())
        .expect("leaf");
    c.refuse(
        "eku-intermediate-restricts",
        "an intermediate's EKU without clientAuth constrains the leaf",
        Code::ExtendedKeyUsageNotPermitted,
        &under.der,
        &[&server_ca.der],
        &[&root.der],
    );
}

/// RFC 5280 §4.2.1.10.
fn name_constraints(c: &mut Corpus, root: &Ca) {
    c.section("4.2.1.10");
    let nc_ca = |cn: &str, permitted: Vec<GeneralSubtree>, excluded: Vec<GeneralSubtree>| {
        ca_with(root, cn, |p| {
            p.name_constraints = Some(constraints(permitted, excluded));
        })
    };
    let mut with_names =
        |id: &str, rule: &str, ca: &Ca, names: Vec<SanType>, expect: Option<Code>| {
            let d = device_with(ca, |p| p.subject_alt_names = names);
            c.case(id, rule, expect, &d.der, &[&ca.der], &[&root.der]);
        };
    let violation = Some(Code::NameConstraintViolation);

    let dns_ca = nc_ca(
        "DNS CA",
        vec![GeneralSubtree::DnsName("example.com".into())],
        vec![GeneralSubtree::DnsName("bad.example.com".into())],
    );
    with_names(
        "nc-dns-permitted",
        "a dNSName inside the permitted subtree",
        &dns_ca,
        vec![dns("dev.example.com")],
        None,
    );
    with_names(
        "nc-dns-outside-permitted",
        "a dNSName outside the permitted subtree",
        &dns_ca,
        vec![dns("dev.example.org")],
        violation,
    );
    with_names(
        "nc-dns-suffix-is-not-a-label",
        "badexample.com is not under example.com",
        &dns_ca,
        vec![dns("badexample.com")],
        violation,
    );
    with_names(
        "nc-dns-excluded",
        "a dNSName inside an excluded subtree",
        &dns_ca,
        vec![dns("x.bad.example.com")],
        violation,
    );
    with_names(
        "nc-dns-one-bad-name-of-several",
        "every name must satisfy the constraints",
        &dns_ca,
        vec![dns("a.example.com"), dns("b.example.net")],
        violation,
    );

    let ip_ca = nc_ca(
        "IP CA",
        vec![GeneralSubtree::IpAddress(CidrSubnet::V4(
            [10, 0, 0, 0],
            [255, 0, 0, 0],
        ))],
        vec![GeneralSubtree::IpAddress(CidrSubnet::V6(
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ))],
    );
    let ip = |s: &str| SanType::IpAddress(s.parse().expect("ip"));
    with_names(
        "nc-ipv4-permitted",
        "an IPv4 address inside the permitted network",
        &ip_ca,
        vec![ip("10.1.2.3")],
        None,
    );
    with_names(
        "nc-ipv4-outside-permitted",
        "an IPv4 address outside the permitted network",
        &ip_ca,
        vec![ip("192.168.1.1")],
        violation,
    );
    with_names(
        "nc-ipv6-excluded",
        "an IPv6 address inside an excluded network",
        &ip_ca,
        vec![ip("2001:db8::1")],
        violation,
    );
    with_names(
        "nc-ipv6-outside-ipv4-only-permitted",
        "iPAddress is one form: with only IPv4 subtrees permitted, an IPv6 address is outside",
        &ip_ca,
        vec![ip("2001:db9::1")],
        violation,
    );

    let mail_ca = nc_ca(
        "Mail CA",
        vec![GeneralSubtree::Rfc822Name("example.com".into())],
        vec![],
    );
    with_names(
        "nc-email-permitted",
        "a mailbox at the permitted host",
        &mail_ca,
        vec![email("ops@example.com")],
        None,
    );
    with_names(
        "nc-email-subdomain-not-host",
        "a host form does not cover subdomains",
        &mail_ca,
        vec![email("ops@mail.example.com")],
        violation,
    );
    let subject_email = device_with(&mail_ca, |p| {
        p.distinguished_name.push(
            DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
            DnValue::Ia5String("ops@evil.example.org".try_into().expect("ia5")),
        );
    });
    c.refuse(
        "nc-email-in-subject-dn",
        "an emailAddress attribute in the subject is an rfc822 name",
        Code::NameConstraintViolation,
        &subject_email.der,
        &[&mail_ca.der],
        &[&root.der],
    );

    let mut acme = DistinguishedName::new();
    acme.push(DnType::OrganizationName, "Acme");
    let dir_ca = nc_ca(
        "Directory CA",
        vec![GeneralSubtree::DirectoryName(acme)],
        vec![],
    );
    for (id, rule, org, expect) in [
        (
            "nc-dirname-permitted",
            "a subject inside the permitted directory subtree",
            "Acme",
            None,
        ),
        (
            "nc-dirname-outside-permitted",
            "a subject outside the permitted directory subtree",
            "Other",
            violation,
        ),
    ] {
        let mut params = device_params("device-1", device_validity());
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, org);
        dn.push(DnType::CommonName, "device-1");
        params.distinguished_name = dn;
        let d = dir_ca
            .issue_device(params, key(KeyAlg::P256), "device-1")
            .expect("leaf");
        c.case(id, rule, expect, &d.der, &[&dir_ca.der], &[&root.der]);
    }

    let nc_leaf = device_with(&dns_ca, |p| {
        p.name_constraints = Some(constraints(
            vec![GeneralSubtree::DnsName("example.com".into())],
            vec![],
        ));
    });
    c.refuse(
        "nc-in-end-entity",
        "nameConstraints in an end-entity certificate",
        Code::InvalidNameConstraints,
        &nc_leaf.der,
        &[&dns_ca.der],
        &[&root.der],
    );
    let leaf = device_with(&dns_ca, |p| {
        p.subject_alt_names = vec![dns("dev.example.com")]
    });
    for (id, rule, value) in [
        (
            "nc-empty",
            "nameConstraints with neither permitted nor excluded subtrees",
            tlv(0x30, &[]),
        ),
        (
            "nc-minimum-not-zero",
            "a subtree with minimum 1",
            tlv(
                0x30,
                &tlv(
                    0xa0,
                    &tlv(0x30, &[tlv(0x82, b"example.com"), tlv(0x80, &[1])].concat()),
                ),
            ),
        ),
        (
            "nc-ip-mask-not-contiguous",
            "an iPAddress constraint with a non-contiguous mask",
            tlv(
                0x30,
                &tlv(0xa0, &tlv(0x30, &tlv(0x87, &[10, 0, 0, 0, 255, 0, 255, 0]))),
            ),
        ),
    ] {
        let ca = forge::forge(&dns_ca.der, Signer::Key(&root.key), |cert| {
            forge::set_extension(cert, oid::NAME_CONSTRAINTS, true, &value);
        });
        c.refuse(
            id,
            rule,
            Code::InvalidNameConstraints,
            &leaf.der,
            &[&ca],
            &[&root.der],
        );
    }
    // URI constraints apply to the URI's host (§4.2.1.10).
    let uri_nc = tlv(0x30, &tlv(0xa0, &tlv(0x30, &tlv(0x86, b".example.com"))));
    let uri_ca = forge::forge(&dns_ca.der, Signer::Key(&root.key), |cert| {
        forge::set_extension(cert, oid::NAME_CONSTRAINTS, true, &uri_nc);
    });
    for (id, rule, uri, expect) in [
        (
            "nc-uri-host-permitted",
            "a URI whose host is under the permitted .domain",
            "https://dev.example.com/device",
            None,
        ),
        (
            "nc-uri-host-outside-permitted",
            "a URI whose host is outside the permitted .domain",
            "https://dev.example.net/device",
            violation,
        ),
        (
            "nc-uri-without-host",
            "a URN has no host, so no permitted URI subtree can hold it",
            "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
            violation,
        ),
    ] {
        let d = device_with(&dns_ca, |p| {
            p.subject_alt_names = vec![SanType::URI(uri.try_into().expect("ia5"))];
        });
        c.case(id, rule, expect, &d.der, &[&uri_ca], &[&root.der]);
    }

    let nc_root = root_with("Constrained Root", |p| {
        p.name_constraints = Some(constraints(
            vec![GeneralSubtree::DnsName("example.com".into())],
            vec![],
        ));
    });
    let sub = ca_with(&nc_root, "Sub CA", |p| {
        p.name_constraints = Some(constraints(
            vec![GeneralSubtree::DnsName("a.example.com".into())],
            vec![],
        ));
    });
    for (id, rule, name, expect) in [
        (
            "nc-nested-both-satisfied",
            "a name inside the subtrees of the root and the intermediate",
            "x.a.example.com",
            None,
        ),
        (
            "nc-nested-intermediate-narrows",
            "the intermediate narrows the root's subtree",
            "b.example.com",
            violation,
        ),
        (
            "nc-trust-anchor-applies",
            "a trust anchor's constraints apply",
            "a.example.org",
            violation,
        ),
    ] {
        let d = device_with(&sub, |p| p.subject_alt_names = vec![dns(name)]);
        c.case(id, rule, expect, &d.der, &[&sub.der], &[&nc_root.der]);
    }

    // A comparison budget: 1,200 subtrees × 1,200 names, each name matching
    // only the last subtree, is 1.44 M comparisons: refused at 50,000.
    let many: Vec<GeneralSubtree> = (0..1200)
        .map(|i| GeneralSubtree::DnsName(format!("n{i}.ex")))
        .collect();
    let big_ca = nc_ca("Busy CA", many, vec![]);
    let big = device_with(&big_ca, |p| {
        p.subject_alt_names = (0..1200).map(|_| dns("n1199.ex")).collect();
    });
    c.refuse(
        "nc-comparison-budget",
        "1,200 subtrees × 1,200 names exceed the comparison budget",
        Code::PathBudgetExceeded,
        &big.der,
        &[&big_ca.der],
        &[&root.der],
    );
}

/// RFC 5280 §6.1: path building.
fn path_building(c: &mut Corpus, root: &Ca, ica: &Ca, leaf: &Device, other_root: &Ca) {
    c.section("6.1");
    let i1 = root
        .intermediate("Factory CA", KeyAlg::P256, ca_validity())
        .expect("CA");
    let i2 = i1
        .intermediate("Line CA", KeyAlg::P256, ca_validity())
        .expect("CA");
    let deep = i2
        .device("device-1", KeyAlg::P256, device_validity())
        .expect("leaf");
    c.accept(
        "path-intermediates-any-order-with-extras",
        "intermediates out of order, with unrelated extras",
        &deep.der,
        &[&other_root.der, &i2.der, &ica.der, &i1.der],
        &[&root.der],
    );
    c.accept(
        "path-intermediate-as-trust-anchor",
        "an intermediate configured as the trust anchor",
        &leaf.der,
        &[],
        &[&ica.der],
    );
    c.refuse(
        "path-unknown-issuer",
        "no path to any trust anchor",
        Code::UnknownIssuer,
        &leaf.der,
        &[&ica.der],
        &[&other_root.der],
    );

    // Cross-signing: the same CA (subject and key) issued by an old and a
    // new root; only the new root is trusted.
    let old_root = Ca::root("Old Root", KeyAlg::P256, ca_validity()).expect("root");
    let cross_key = key(KeyAlg::P256);
    let cross_key_der = cross_key.serialize_der();
    let rekey = || {
        KeyPair::from_pkcs8_der_and_sign_algo(
            &cross_key_der.as_slice().into(),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        )
        .expect("key")
    };
    let x_old = old_root
        .issue_ca(ca_params("Cross CA", ca_validity(), None), rekey())
        .expect("CA");
    let x_new = root
        .issue_ca(ca_params("Cross CA", ca_validity(), None), rekey())
        .expect("CA");
    let crossed = x_new
        .device("device-1", KeyAlg::P256, device_validity())
        .expect("leaf");
    c.accept(
        "path-cross-signed",
        "a cross-signed CA: the copy under the untrusted root is skipped",
        &crossed.der,
        &[&x_old.der, &x_new.der],
        &[&root.der],
    );

    // Backtracking: a failing copy of the issuer presented first.
    let copy = |window, edit: &dyn Fn(&mut rcgen::CertificateParams)| {
        let mut params = ca_params("Cross CA", window, None);
        edit(&mut params);
        root.issue_ca(params, rekey()).expect("CA").der
    };
    let expired = copy(
        validity(VALIDATION_TIME - 86_400 * 400, VALIDATION_TIME - 1),
        &|_| {},
    );
    let not_ca = copy(ca_validity(), &|p| p.is_ca = IsCa::ExplicitNoCa);
    let server_only = copy(ca_validity(), &|p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    });
    let constrained = copy(ca_validity(), &|p| {
        p.name_constraints = Some(constraints(
            vec![GeneralSubtree::DnsName("example.org".into())],
            vec![],
        ));
    });
    let named = {
        let mut params = device_params("device-1", device_validity());
        params.subject_alt_names = vec![dns("dev.example.com")];
        x_new
            .issue_device(params, key(KeyAlg::P256), "device-1")
            .expect("leaf")
    };
    for (id, rule, bad) in [
        (
            "path-backtrack-expired",
            "past an expired candidate issuer",
            &expired,
        ),
        (
            "path-backtrack-not-ca",
            "past a candidate issuer that is not a CA",
            &not_ca,
        ),
        (
            "path-backtrack-wrong-eku",
            "past a candidate issuer whose EKU excludes clientAuth",
            &server_only,
        ),
        (
            "path-backtrack-name-constraints",
            "past a candidate issuer whose name constraints exclude the leaf",
            &constrained,
        ),
    ] {
        c.accept(id, rule, &named.der, &[bad, &x_new.der], &[&root.der]);
    }
    let impostor = Ca::root("Cross CA", KeyAlg::P256, ca_validity()).expect("impostor");
    c.refuse(
        "path-all-candidates-fail-ranked",
        "every candidate fails: the most specific reason (expired) beats a bad signature",
        Code::CertificateExpired,
        &named.der,
        &[&impostor.der, &expired],
        &[&root.der],
    );

    // A cycle: A issued by B, B issued by A, neither trusted.
    let b_key = key(KeyAlg::P256);
    let b_seed = Ca::self_signed(ca_params("Cycle B", ca_validity(), None), b_key).expect("B");
    let a = b_seed
        .issue_ca(ca_params("Cycle A", ca_validity(), None), key(KeyAlg::P256))
        .expect("A");
    let b = a
        .issue_ca(
            ca_params("Cycle B", ca_validity(), None),
            KeyPair::from_pkcs8_der_and_sign_algo(
                &b_seed.key.serialize_der().as_slice().into(),
                &rcgen::PKCS_ECDSA_P256_SHA256,
            )
            .expect("key"),
        )
        .expect("B");
    let in_cycle = a
        .device("device-1", KeyAlg::P256, device_validity())
        .expect("leaf");
    c.refuse(
        "path-cycle",
        "two intermediates that issued each other, and no anchor",
        Code::UnknownIssuer,
        &in_cycle.der,
        &[&a.der, &b.der],
        &[&root.der],
    );

    let line = crate::pki::ca_line(12, KeyAlg::P256, ca_validity()).expect("line");
    let bottom = line[11]
        .device("device-1", KeyAlg::P256, device_validity())
        .expect("leaf");
    let ints: Vec<&[u8]> = line[1..].iter().rev().map(|ca| ca.der.as_slice()).collect();
    c.refuse(
        "path-too-long",
        "a path of 13 certificates exceeds the 10-certificate limit",
        Code::PathBudgetExceeded,
        &bottom.der,
        &ints,
        &[&line[0].der],
    );
    let ints: Vec<&[u8]> = line[1..8]
        .iter()
        .rev()
        .map(|ca| ca.der.as_slice())
        .collect();
    let eight = line[7]
        .device("device-1", KeyAlg::P256, device_validity())
        .expect("leaf");
    c.accept(
        "path-nine-certificates",
        "a path of 9 certificates is within the limit",
        &eight.der,
        &ints,
        &[&line[0].der],
    );

    // 32 look-alike issuers (same subject, other keys): all fail fast.
    let lookalikes: Vec<Vec<u8>> = (0..32)
        .map(|_| {
            root.issue_ca(
                ca_params("Conformance CA", ca_validity(), None),
                key(KeyAlg::P256),
            )
            .expect("CA")
            .der
        })
        .collect();
    let refs: Vec<&[u8]> = lookalikes.iter().map(Vec::as_slice).collect();
    c.refuse(
        "path-many-lookalike-issuers",
        "32 candidate issuers with the right name and the wrong key",
        Code::BadSignature,
        &leaf.der,
        &refs,
        &[&root.der],
    );
}

/// DER as RFC 5280 §4.1 requires it (X.690 §10, §11): one encoding per
/// certificate, so no parser reads it two ways.
fn strict_der(c: &mut Corpus, root: &Ca, ica: &Ca, leaf: &Device) {
    c.section("4.1");
    let private = "1.3.6.1.4.1.57264.99";
    let explicit_false = forge::forge_raw(&leaf.der, Signer::Key(&ica.key), |t| {
        t.extensions
            .get_or_insert_with(Vec::new)
            .push(forge::extension_der(
                der::asn1::ObjectIdentifier::new_unwrap(private),
                Some(false),
                &[0x05, 0x00],
            ));
    });
    c.refuse(
        "der-explicit-critical-false",
        "critical FALSE encoded explicitly (DER omits DEFAULT values, X.690 §11.5)",
        Code::MalformedCertificate,
        &explicit_false,
        &[&ica.der],
        &[&root.der],
    );
    let empty_extensions = forge::forge_raw(&leaf.der, Signer::Key(&ica.key), |t| {
        t.extensions = Some(Vec::new());
    });
    c.refuse(
        "der-empty-extensions",
        "an extensions [3] field with no extension (SIZE (1..MAX))",
        Code::MalformedCertificate,
        &empty_extensions,
        &[&ica.der],
        &[&root.der],
    );
    let v1_root = root_with("Explicit v1 Root", |_| {});
    let explicit_v1 = forge::forge_raw(&v1_root.der, Signer::Key(&v1_root.key), |t| {
        t.version = tlv(0xa0, &[0x02, 0x01, 0x00]);
        t.extensions = None;
    });
    let v1_leaf = v1_root
        .device("device-1", KeyAlg::P256, device_validity())
        .expect("leaf");
    c.refuse(
        "der-explicit-version-v1",
        "version v1 encoded explicitly (DEFAULT v1 is omitted in DER)",
        Code::MalformedCertificate,
        &v1_leaf.der,
        &[],
        &[&explicit_v1],
    );
    let (cn, serial) = ("2.5.4.3", "2.5.4.5");
    let sorted = forge::forge_raw(&leaf.der, Signer::Key(&ica.key), |t| {
        // DER orders SET OF elements by their whole encoding: the shorter
        // serialNumber attribute (30 09 …) before the CN (30 0f …).
        t.subject = forge::name_der(&[&[
            (serial, forge::tag::PRINTABLE, b"42"),
            (cn, forge::tag::UTF8, b"device-1"),
        ]]);
    });
    c.accept(
        "der-multi-valued-rdn-sorted",
        "a multi-valued RDN in DER SET OF order",
        &sorted,
        &[&ica.der],
        &[&root.der],
    );
    let unsorted = forge::forge_raw(&leaf.der, Signer::Key(&ica.key), |t| {
        t.subject = forge::name_der(&[&[
            (cn, forge::tag::UTF8, b"device-1"),
            (serial, forge::tag::PRINTABLE, b"42"),
        ]]);
    });
    c.refuse(
        "der-multi-valued-rdn-unsorted",
        "a multi-valued RDN whose attributes are not in DER SET OF order (X.690 §11.6)",
        Code::MalformedCertificate,
        &unsorted,
        &[&ica.der],
        &[&root.der],
    );

    c.section("4.2.1.9");
    let explicit_ca_false = forge::forge(&leaf.der, Signer::Key(&ica.key), |cert| {
        forge::set_extension(
            cert,
            oid::BASIC_CONSTRAINTS,
            true,
            &[0x30, 0x03, 0x01, 0x01, 0x00],
        );
    });
    c.refuse(
        "bc-explicit-ca-false",
        "basicConstraints with cA FALSE encoded explicitly",
        Code::MalformedExtension,
        &explicit_ca_false,
        &[&ica.der],
        &[&root.der],
    );
    let big = root_with("Path Length 300 Root", |_| {});
    let big_root = forge::forge(&big.der, Signer::Key(&big.key), |cert| {
        forge::set_extension(
            cert,
            oid::BASIC_CONSTRAINTS,
            true,
            &[0x30, 0x07, 0x01, 0x01, 0xff, 0x02, 0x02, 0x01, 0x2c],
        );
    });
    let big_leaf = big
        .device("device-1", KeyAlg::P256, device_validity())
        .expect("leaf");
    c.accept(
        "bc-path-length-300",
        "a pathLenConstraint of 300 (any non-negative INTEGER)",
        &big_leaf.der,
        &[],
        &[&big_root],
    );

    c.section("4.1.2.5");
    let sixties = forge::forge_raw(&leaf.der, Signer::Key(&ica.key), |t| {
        t.validity = forge::validity_der((0x17, "650101000000Z"), (0x17, "280601000000Z"));
    });
    c.accept(
        "validity-utctime-1965",
        "UTCTime years 50-99 are 1950-1999 (§4.1.2.5.1)",
        &sixties,
        &[&ica.der],
        &[&root.der],
    );
}

/// RFC 5280 §7.1: names compare after RFC 4518 preparation (case,
/// insignificant spaces, string type), not byte for byte.
fn name_matching(c: &mut Corpus, root: &Ca) {
    c.section("7.1");
    let cn = "2.5.4.3";
    let leaf = root
        .device("device-1", KeyAlg::P256, device_validity())
        .expect("leaf");
    for (id, rule, issuer) in [
        (
            "name-issuer-printable-string",
            "issuer as PrintableString, CA subject as UTF8String",
            forge::name_der(&[&[(cn, forge::tag::PRINTABLE, b"Conformance Root")]]),
        ),
        (
            "name-issuer-case-and-spaces",
            "issuer differs in case and insignificant spaces",
            forge::name_der(&[&[(cn, forge::tag::UTF8, b"  CONFORMANCE   root ")]]),
        ),
    ] {
        let variant = forge::forge_raw(&leaf.der, Signer::Key(&root.key), |t| t.issuer = issuer);
        c.accept(id, rule, &variant, &[], &[&root.der]);
    }
    let other = forge::forge_raw(&leaf.der, Signer::Key(&root.key), |t| {
        t.issuer = forge::name_der(&[&[(cn, forge::tag::UTF8, b"Conformance Roots")]]);
    });
    c.refuse(
        "name-issuer-different",
        "an issuer name that differs in more than case and spacing",
        Code::UnknownIssuer,
        &other,
        &[],
        &[&root.der],
    );
}

/// Name constraints that must not be escaped by re-encoding a name, and
/// constraint bases or names attest cannot interpret (fail closed).
fn hard_constraints(c: &mut Corpus, root: &Ca) {
    c.section("4.2.1.10");
    let violation = Code::NameConstraintViolation;
    let mut contoso = DistinguishedName::new();
    contoso.push(
        DnType::CountryName,
        DnValue::PrintableString("US".try_into().expect("printable")),
    );
    contoso.push(
        DnType::OrganizationName,
        DnValue::Utf8String("Contoso Ltd".into()),
    );
    let excluded_ca = ca_with(root, "Excluding CA", |p| {
        p.name_constraints = Some(constraints(
            vec![],
            vec![GeneralSubtree::DirectoryName(contoso.clone())],
        ));
    });
    let permitted_ca = ca_with(root, "Permitting CA", |p| {
        p.name_constraints = Some(constraints(
            vec![GeneralSubtree::DirectoryName(contoso)],
            vec![],
        ));
    });
    let base = device_with(&excluded_ca, |_| {});
    let (c_oid, o_oid, cn) = ("2.5.4.6", "2.5.4.10", "2.5.4.3");
    let subject = |country: &[u8], org_tag: u8, org: &[u8]| {
        forge::name_der(&[
            &[(c_oid, forge::tag::PRINTABLE, country)],
            &[(o_oid, org_tag, org)],
            &[(cn, forge::tag::UTF8, b"device-1")],
        ])
    };
    let permitted_base = device_with(&permitted_ca, |_| {});
    let with_subject = |ca: &Ca, name: Vec<u8>| {
        let base = if std::ptr::eq(ca, &permitted_ca) {
            &permitted_base
        } else {
            &base
        };
        forge::forge_raw(&base.der, Signer::Key(&ca.key), |t| t.subject = name)
    };
    for (id, rule, name) in [
        (
            "nc-dirname-excluded-lower-case",
            "O=contoso ltd is inside excluded O=Contoso Ltd (RFC 4518 case folding)",
            subject(b"US", forge::tag::UTF8, b"contoso ltd"),
        ),
        (
            "nc-dirname-excluded-printable-string",
            "the same value as a PrintableString is inside the excluded subtree",
            subject(b"US", forge::tag::PRINTABLE, b"Contoso Ltd"),
        ),
        (
            "nc-dirname-excluded-double-space",
            "insignificant spaces do not escape an excluded subtree",
            subject(b"US", forge::tag::UTF8, b"Contoso  Ltd "),
        ),
        (
            "nc-dirname-excluded-country-case",
            "C=us is inside excluded C=US",
            subject(b"us", forge::tag::UTF8, b"Contoso Ltd"),
        ),
        (
            "nc-dirname-excluded-unpreparable",
            "a TeletexString beyond ASCII cannot be prepared: inside an excluded subtree (fail closed)",
            subject(b"US", forge::tag::TELETEX, b"Contoso Lt\xe9"),
        ),
    ] {
        c.refuse(
            id,
            rule,
            violation,
            &with_subject(&excluded_ca, name),
            &[&excluded_ca.der],
            &[&root.der],
        );
    }
    c.accept(
        "nc-dirname-excluded-other-org",
        "O=Fabrikam is outside excluded O=Contoso Ltd",
        &with_subject(&excluded_ca, subject(b"US", forge::tag::UTF8, b"Fabrikam")),
        &[&excluded_ca.der],
        &[&root.der],
    );
    c.accept(
        "nc-dirname-permitted-case-folded",
        "C=us, O=CONTOSO LTD is inside permitted C=US, O=Contoso Ltd",
        &with_subject(
            &permitted_ca,
            subject(b"us", forge::tag::UTF8, b"CONTOSO LTD"),
        ),
        &[&permitted_ca.der],
        &[&root.der],
    );

    // rfc822Name: "@host" excludes every mailbox at host (as OpenSSL reads it).
    let at_host = tlv(0x30, &tlv(0xa1, &tlv(0x30, &tlv(0x81, b"@evil.com"))));
    let mail = ca_with(root, "At-Host CA", |_| {});
    let mail_ca = forge::forge(&mail.der, Signer::Key(&root.key), |cert| {
        forge::set_extension(cert, oid::NAME_CONSTRAINTS, true, &at_host);
    });
    for (id, rule, addr, expect) in [
        (
            "nc-email-at-host-excluded",
            "excluded @evil.com covers x@evil.com",
            "x@evil.com",
            Some(violation),
        ),
        (
            "nc-email-at-host-other-host",
            "excluded @evil.com does not cover x@good.com",
            "x@good.com",
            None,
        ),
        (
            "nc-email-malformed-name",
            "an rfc822Name with no host under a name-constrained CA",
            "x@",
            Some(violation),
        ),
    ] {
        let d = device_with(&mail, |p| p.subject_alt_names = vec![email(addr)]);
        c.case(id, rule, expect, &d.der, &[&mail_ca], &[&root.der]);
    }

    // URIs: excluded subtrees cannot be escaped by a URI without "//".
    let excluded_uri = tlv(0x30, &tlv(0xa1, &tlv(0x30, &tlv(0x86, b".evil.com"))));
    let uri = ca_with(root, "URI CA", |_| {});
    let uri_ca = forge::forge(&uri.der, Signer::Key(&root.key), |cert| {
        forge::set_extension(cert, oid::NAME_CONSTRAINTS, true, &excluded_uri);
    });
    for (id, rule, name, expect) in [
        (
            "nc-uri-no-authority-excluded",
            "a URI without an authority under a URI constraint",
            "https:x.evil.com",
            Some(violation),
        ),
        (
            "nc-uri-excluded-trailing-dot",
            "a trailing dot does not escape an excluded .domain",
            "https://x.evil.com./",
            Some(violation),
        ),
        (
            "nc-uri-outside-excluded",
            "a URI whose host is outside the excluded .domain",
            "https://x.good.com/",
            None,
        ),
    ] {
        let d = device_with(&uri, |p| {
            p.subject_alt_names = vec![SanType::URI(name.try_into().expect("ia5"))];
        });
        c.case(id, rule, expect, &d.der, &[&uri_ca], &[&root.der]);
    }
    let bad_base = tlv(
        0x30,
        &tlv(0xa1, &tlv(0x30, &tlv(0x86, b"https://evil.com/path"))),
    );
    let bad_ca = forge::forge(&uri.der, Signer::Key(&root.key), |cert| {
        forge::set_extension(cert, oid::NAME_CONSTRAINTS, true, &bad_base);
    });
    let plain = device_with(&uri, |_| {});
    c.refuse(
        "nc-uri-base-uninterpretable",
        "a URI subtree base that is not a host or .domain",
        Code::InvalidNameConstraints,
        &plain.der,
        &[&bad_ca],
        &[&root.der],
    );

    // Malformed names below a constrained CA, and non-critical constraints.
    let dns = ca_with(root, "Leading Dot CA", |p| {
        p.name_constraints = Some(constraints(
            vec![],
            vec![GeneralSubtree::DnsName("evil.com".into())],
        ));
    });
    // Outside the excluded subtree: only the syntax rule refuses it.
    let dotted = device_with(&dns, |p| {
        p.subject_alt_names = vec![self::dns(".x.good.com")]
    });
    c.refuse(
        "nc-dns-leading-period-name",
        "a dNSName with a leading period under a name-constrained CA",
        violation,
        &dotted.der,
        &[&dns.der],
        &[&root.der],
    );
    let dns_nc = tlv(0x30, &tlv(0xa1, &tlv(0x30, &tlv(0x82, b"evil.com"))));
    let lax = forge::forge(&dns.der, Signer::Key(&root.key), |cert| {
        forge::set_extension(cert, oid::NAME_CONSTRAINTS, false, &dns_nc);
    });
    let fine = device_with(&dns, |p| {
        p.subject_alt_names = vec![self::dns("x.good.com")]
    });
    c.refuse(
        "nc-not-critical",
        "nameConstraints not marked critical (§4.2.1.10: MUST be critical)",
        Code::InvalidNameConstraints,
        &fine.der,
        &[&lax],
        &[&root.der],
    );

    c.section("4.2");
    let policy = ca_with(root, "Policy CA", |_| {});
    let policy_ca = forge::forge(&policy.der, Signer::Key(&root.key), |cert| {
        forge::set_extension(
            cert,
            der::asn1::ObjectIdentifier::new_unwrap("2.5.29.36"),
            false,
            &[0x30, 0x03, 0x80, 0x01, 0x00],
        );
    });
    let under_policy = device_with(&policy, |_| {});
    c.refuse(
        "ext-policy-constraints-not-critical",
        "policyConstraints not marked critical (§4.2.1.11: MUST be critical)",
        Code::MalformedExtension,
        &under_policy.der,
        &[&policy_ca],
        &[&root.der],
    );
}

/// A PKI "soup": 40 presented certificates (a bridge between two roots,
/// look-alike CAs, the real path) validate within the path budget.
fn soup(c: &mut Corpus) {
    c.section("6.1");
    let r1 = Ca::root("Soup Root One", KeyAlg::P256, ca_validity()).expect("root");
    let r2 = Ca::root("Soup Root Two", KeyAlg::P256, ca_validity()).expect("root");
    // The bridge: root one's key certified by root two, and back.
    let r1_by_r2 = r2
        .issue_ca(
            ca_params("Soup Root One", ca_validity(), None),
            KeyPair::from_pem(&r1.key.serialize_pem()).expect("key"),
        )
        .expect("bridge");
    let r2_by_r1 = r1
        .issue_ca(
            ca_params("Soup Root Two", ca_validity(), None),
            KeyPair::from_pem(&r2.key.serialize_pem()).expect("key"),
        )
        .expect("bridge");
    let i1 = r1
        .intermediate("Soup Factory", KeyAlg::P256, ca_validity())
        .expect("CA");
    let i2 = i1
        .intermediate("Soup Line", KeyAlg::P256, ca_validity())
        .expect("CA");
    let leaf = i2
        .device("device-1", KeyAlg::P256, device_validity())
        .expect("leaf");
    let mut presented: Vec<Vec<u8>> = vec![
        r1_by_r2.der.clone(),
        r2_by_r1.der.clone(),
        i1.der.clone(),
        i2.der.clone(),
    ];
    // Look-alikes: same names, other keys, issued by the right parents.
    for i in 0..36 {
        let decoy = match i % 3 {
            0 => r1.intermediate("Soup Factory", KeyAlg::P256, ca_validity()),
            1 => i1.intermediate("Soup Line", KeyAlg::P256, ca_validity()),
            _ => r2.intermediate("Soup Factory", KeyAlg::P256, ca_validity()),
        };
        presented.push(decoy.expect("decoy").der);
    }
    let refs: Vec<&[u8]> = presented.iter().map(Vec::as_slice).collect();
    c.accept(
        "path-soup-40-certificates",
        "40 presented certificates with a bridge and look-alike CAs, anchored at the other root",
        &leaf.der,
        &refs,
        &[&r2.der],
    );
}

/// The RFC 5280 sections the corpus covers, in order.
pub fn sections() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for case in corpus() {
        if !out.contains(&case.section) {
            out.push(case.section);
        }
    }
    out
}

/// PEM of one DER certificate.
pub fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("ascii"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}
