//! TLS: the server certificate, and a client-certificate verifier that
//! decides nothing.
//!
//! The device's chain and its handshake signature are the attestation
//! evidence, and the decision over them is the policy component's. So the
//! verifier only *captures* them: the chain from `verify_client_cert`, the
//! CertificateVerify signature and the exact signed bytes from
//! `verify_tls1{2,3}_signature`. The request handler then hands both to the
//! component's `attest` (proof = `tls-signature`), which checks the
//! signature with the leaf key, validates the chain and resolves the
//! enrollment. Nothing is served on the strength of the handshake alone:
//! every device API call goes through the component.
//!
//! Each connection gets its own verifier (and so its own capture slot).
//! Session resumption is off: a resumed session has no CertificateVerify,
//! hence no proof of possession.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use attest_service::{Chain, DeviceEvidence};
use policy_host::Proof;

/// Slot shared between one connection's verifier and its request handler.
pub(crate) type EvidenceSlot = Arc<Mutex<DeviceEvidence>>;

#[derive(Debug)]
struct CapturingVerifier {
    slot: EvidenceSlot,
    schemes: Vec<SignatureScheme>,
}

impl CapturingVerifier {
    fn capture_signature(
        &self,
        message: &[u8],
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if let Ok(mut e) = self.slot.lock() {
            e.proof = Some(Proof::TlsSignature {
                scheme: u16::from(dss.scheme),
                message: message.to_vec(),
                signature: dss.signature().to_vec(),
            });
        }
        Ok(HandshakeSignatureValid::assertion())
    }
}

impl ClientCertVerifier for CapturingVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    /// Optional at the TLS layer so that the management API (SAS tokens)
    /// shares the listener, and so a device without a certificate gets a
    /// DPS error body instead of a handshake alert.
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if let Ok(mut e) = self.slot.lock() {
            e.chain = Some(Chain {
                leaf: end_entity.to_vec(),
                intermediates: intermediates.iter().map(|c| c.to_vec()).collect(),
            });
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        _cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.capture_signature(message, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        _cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.capture_signature(message, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// The server's certificate and key, loaded once; makes one rustls config
/// per connection.
#[derive(Debug)]
pub(crate) struct Tls {
    provider: Arc<CryptoProvider>,
    certified: Arc<FixedCert>,
}

impl Tls {
    /// Loads a PEM certificate chain and PEM private key.
    pub(crate) fn load(cert: &Path, key: &Path) -> Result<Tls> {
        // Bounded reads: a FIFO or a device given as a file costs 1 MiB at most.
        let read = |p: &Path| {
            policy_host::input::read_limited(p, 1 << 20)
                .with_context(|| format!("cannot read {}", p.display()))
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(cert)?)
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow!("{} is not a PEM certificate chain: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(anyhow!("{} contains no certificate", cert.display()));
        }
        let key = PrivateKeyDer::from_pem_slice(&read(key)?)
            .map_err(|e| anyhow!("{} is not a PEM private key: {e}", key.display()))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let signing = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| anyhow!("the server key is not usable: {e}"))?;
        let certified = CertifiedKey::new(chain, signing);
        Ok(Tls {
            provider,
            certified: Arc::new(FixedCert(Arc::new(certified))),
        })
    }

    /// A rustls server config whose client verifier captures into `slot`.
    /// `alpn`: the application protocols offered (none: the client's
    /// choice is not checked, as MQTT clients send none).
    pub(crate) fn config(&self, slot: EvidenceSlot, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>> {
        // Exactly the schemes the policy accepts as a proof of possession:
        // a handshake never settles on one the component would refuse.
        let verifier = CapturingVerifier {
            slot,
            schemes: policy_host::TLS_SIGNATURE_SCHEMES
                .iter()
                .map(|&s| SignatureScheme::from(s))
                .collect(),
        };
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_cert_resolver(self.certified.clone());
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// Paths of the development TLS material in the data directory.
pub(crate) struct DevTls {
    /// The development CA that issued the server certificate (give it to
    /// clients as the server CA).
    pub(crate) ca: PathBuf,
    /// Server certificate chain.
    pub(crate) cert: PathBuf,
    /// Server private key.
    pub(crate) key: PathBuf,
}

/// Creates (first start) or reuses a development CA and a server
/// certificate for localhost / 127.0.0.1 / ::1 in `dir`. Returns the paths
/// and whether they were created now.
pub(crate) fn dev_certificate(dir: &Path) -> Result<(DevTls, bool)> {
    let paths = DevTls {
        ca: dir.join("dev-server-ca.pem"),
        cert: dir.join("dev-server.pem"),
        key: dir.join("dev-server.key"),
    };
    if paths.cert.exists() && paths.key.exists() && paths.ca.exists() {
        return Ok((paths, false));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ca_key = rcgen::KeyPair::generate().context("generating the dev CA key")?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "attest host-http development CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let now = time::OffsetDateTime::now_utc();
    ca_params.not_before = now - time::Duration::days(1);
    ca_params.not_after = now + time::Duration::days(3650);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);

    let key = rcgen::KeyPair::generate().context("generating the server key")?;
    let mut params = rcgen::CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.not_before = ca_params.not_before;
    params.not_after = now + time::Duration::days(825);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer)?;

    attest_service::files::write_private(&paths.key, key.serialize_pem().as_bytes())?;
    std::fs::write(&paths.ca, ca_cert.pem())?;
    std::fs::write(&paths.cert, cert.pem())?;
    Ok((paths, true))
}
