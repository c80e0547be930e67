//! Test and demo PKIs: root → intermediate CAs → device certificates, made
//! with rcgen. `host-cli pki demo` writes the concept document's hierarchy;
//! the test suites build the same hierarchy at a fixed validity window.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use time::OffsetDateTime;

/// Key and signature algorithm of a generated certificate's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlg {
    /// ECDSA P-256, signing with SHA-256.
    P256,
    /// ECDSA P-384, signing with SHA-384.
    P384,
    /// ECDSA P-521, signing with SHA-512.
    P521,
    /// RSA 2048, signing with PKCS#1 v1.5 SHA-256.
    Rsa2048,
    /// Ed25519.
    Ed25519,
}

impl KeyAlg {
    fn rcgen(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyAlg::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlg::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyAlg::P521 => &rcgen::PKCS_ECDSA_P521_SHA512,
            KeyAlg::Rsa2048 => &rcgen::PKCS_RSA_SHA256,
            KeyAlg::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }

    /// A fresh key pair of this kind.
    pub fn generate(self) -> Result<KeyPair> {
        KeyPair::generate_for(self.rcgen()).context("generating a key pair")
    }
}

/// A validity window.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
}

/// A CA certificate with its key, able to issue.
pub struct Ca {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The certificate, PEM.
    pub pem: String,
    /// The key pair.
    pub key: KeyPair,
    params: CertificateParams,
}

/// A device (end-entity) certificate with its key.
pub struct Device {
    /// The registration ID (= subject CN).
    pub name: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The certificate, PEM.
    pub pem: String,
    /// The key pair.
    pub key: KeyPair,
}

fn serial(counter: &str) -> SerialNumber {
    // Positive, unique enough per name for a demo: SHA-256 prefix of the name
    // and the time, with the top bit cleared.
    use sha2::{Digest, Sha256};
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    let mut h = Sha256::new();
    h.update(counter.as_bytes());
    h.update(nanos.to_be_bytes());
    let mut bytes = h.finalize()[..16].to_vec();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from(bytes)
}

fn base_params(cn: &str, validity: Validity) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params.serial_number = Some(serial(cn));
    params
}

/// Parameters of a CA certificate: cA, keyCertSign + cRLSign.
pub fn ca_params(cn: &str, validity: Validity, path_len: Option<u8>) -> CertificateParams {
    let mut params = base_params(cn, validity);
    params.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.use_authority_key_identifier_extension = true;
    params
}

/// Parameters of a device certificate: digitalSignature, clientAuth.
pub fn device_params(cn: &str, validity: Validity) -> CertificateParams {
    let mut params = base_params(cn, validity);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params
}

impl Ca {
    /// A self-signed root CA.
    pub fn root(cn: &str, alg: KeyAlg, validity: Validity) -> Result<Ca> {
        Ca::self_signed(ca_params(cn, validity, None), alg.generate()?)
    }

    /// A self-signed CA from explicit parameters and key.
    pub fn self_signed(params: CertificateParams, key: KeyPair) -> Result<Ca> {
        let cert = params.self_signed(&key).context("self-signing a CA")?;
        Ok(Ca {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            key,
            params,
        })
    }

    /// An intermediate CA issued by this CA.
    pub fn intermediate(&self, cn: &str, alg: KeyAlg, validity: Validity) -> Result<Ca> {
        self.issue_ca(ca_params(cn, validity, None), alg.generate()?)
    }

    /// A CA certificate with explicit parameters and key, issued by this CA.
    pub fn issue_ca(&self, params: CertificateParams, key: KeyPair) -> Result<Ca> {
        let cert = params
            .signed_by(&key, &self.issuer())
            .context("issuing a CA certificate")?;
        Ok(Ca {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            key,
            params,
        })
    }

    /// A device certificate (CN = `name`) issued by this CA.
    pub fn device(&self, name: &str, alg: KeyAlg, validity: Validity) -> Result<Device> {
        self.issue_device(device_params(name, validity), alg.generate()?, name)
    }

    /// A device certificate with explicit parameters and key, issued by this CA.
    pub fn issue_device(
        &self,
        params: CertificateParams,
        key: KeyPair,
        name: &str,
    ) -> Result<Device> {
        let cert = params
            .signed_by(&key, &self.issuer())
            .context("issuing a device certificate")?;
        Ok(Device {
            name: name.to_string(),
            der: cert.der().to_vec(),
            pem: cert.pem(),
            key,
        })
    }

    /// Signs an arbitrary certificate (e.g. a CA verification certificate).
    pub fn sign(&self, params: &CertificateParams, key: &KeyPair) -> Result<Vec<u8>> {
        Ok(params.signed_by(key, &self.issuer())?.der().to_vec())
    }

    /// A CRL from this CA (RFC 5280 §5) listing `revoked` (serial content
    /// octets, revocation time), with `number` as its cRLNumber.
    pub fn crl(
        &self,
        revoked: &[(Vec<u8>, OffsetDateTime)],
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
        number: u64,
    ) -> Result<Vec<u8>> {
        let with_reason: Vec<_> = revoked
            .iter()
            .map(|(s, t)| (s.clone(), *t, rcgen::RevocationReason::KeyCompromise))
            .collect();
        self.crl_with_reasons(&with_reason, this_update, next_update, number)
    }

    /// [`Ca::crl`] with each entry's reasonCode.
    pub fn crl_with_reasons(
        &self,
        revoked: &[(Vec<u8>, OffsetDateTime, rcgen::RevocationReason)],
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
        number: u64,
    ) -> Result<Vec<u8>> {
        let params = rcgen::CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|(serial, at, reason)| rcgen::RevokedCertParams {
                    serial_number: SerialNumber::from(serial.clone()),
                    revocation_time: *at,
                    reason_code: Some(*reason),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer())?.der().to_vec())
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }
}

impl Device {
    /// A self-signed device certificate (individual enrollment without a CA).
    pub fn self_signed(name: &str, alg: KeyAlg, validity: Validity) -> Result<Device> {
        let key = alg.generate()?;
        let cert = device_params(name, validity)
            .self_signed(&key)
            .context("self-signing a device certificate")?;
        Ok(Device {
            name: name.to_string(),
            der: cert.der().to_vec(),
            pem: cert.pem(),
            key,
        })
    }
}

/// A root and `depth - 1` CAs below it, each issued by the previous one
/// ("Deep 0" … "Deep {depth-1}"): deep-chain and budget tests.
pub fn ca_line(depth: usize, alg: KeyAlg, validity: Validity) -> Result<Vec<Ca>> {
    let mut cas = vec![Ca::root("Deep 0", alg, validity)?];
    for i in 1..depth {
        let next = cas[i - 1].intermediate(&format!("Deep {i}"), alg, validity)?;
        cas.push(next);
    }
    Ok(cas)
}

/// The concept document's hierarchy: root → line A → devices 1, 2, 3 and
/// root → line B → devices 4, 5.
pub struct Canonical {
    /// The root CA.
    pub root: Ca,
    /// Intermediate CA "A".
    pub line_a: Ca,
    /// Intermediate CA "B".
    pub line_b: Ca,
    /// device-1 … device-5, in order.
    pub devices: Vec<Device>,
}

impl Canonical {
    /// Generates the hierarchy with one key algorithm throughout.
    pub fn generate(alg: KeyAlg, ca_validity: Validity, device_validity: Validity) -> Result<Self> {
        let root = Ca::root("attest demo root CA", alg, ca_validity)?;
        let line_a = root.intermediate("attest demo line A CA", alg, ca_validity)?;
        let line_b = root.intermediate("attest demo line B CA", alg, ca_validity)?;
        let mut devices = Vec::new();
        for n in 1..=5 {
            let issuer = if n <= 3 { &line_a } else { &line_b };
            devices.push(issuer.device(&format!("device-{n}"), alg, device_validity)?);
        }
        Ok(Canonical {
            root,
            line_a,
            line_b,
            devices,
        })
    }

    /// The intermediate that issued device `n` (1-based).
    pub fn issuer_of(&self, n: usize) -> &Ca {
        if n <= 3 { &self.line_a } else { &self.line_b }
    }

    /// Device `n`'s chain file: leaf then its intermediate, PEM.
    pub fn chain_pem(&self, n: usize) -> String {
        format!("{}{}", self.devices[n - 1].pem, self.issuer_of(n).pem)
    }

    /// The three enrollment sets of SPEC §1's scenario, in DPS JSON shapes:
    /// 1. an enabled group on the root; 2. plus a disabled group on line B;
    /// 3. plus a disabled individual enrollment for device-3.
    pub fn enrollment_steps(&self) -> [serde_json::Value; 3] {
        use serde_json::json;
        let group = |id: &str, pem: &str, status: &str| {
            json!({
                "enrollmentGroupId": id,
                "provisioningStatus": status,
                "attestation": {"type": "x509", "x509": {"signingCertificates": {"primary": {"certificate": pem}}}}
            })
        };
        let root = group("all-devices", &self.root.pem, "enabled");
        let line_b = group("line-b", &self.line_b.pem, "disabled");
        let device_3 = json!({
            "registrationId": "device-3",
            "provisioningStatus": "disabled",
            "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": self.devices[2].pem}}}}
        });
        [
            json!({"individualEnrollments": [], "enrollmentGroups": [root.clone()]}),
            json!({"individualEnrollments": [], "enrollmentGroups": [root.clone(), line_b.clone()]}),
            json!({"individualEnrollments": [device_3], "enrollmentGroups": [root, line_b]}),
        ]
    }
}
