//! A host-http instance on loopback with a fresh data directory, the
//! canonical PKI, and blocking HTTPS clients (management API with a SAS
//! token; device API with a client certificate).

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;

use attest_pki::{Canonical, KeyAlg, Validity};
use time::OffsetDateTime;

pub const SCOPE: &str = "0ne00000001";

/// Device certificates valid now (the service validates at the current time).
pub fn canonical() -> Canonical {
    let now = OffsetDateTime::now_utc();
    let v = Validity {
        not_before: now - time::Duration::days(1),
        not_after: now + time::Duration::days(365),
    };
    Canonical::generate(KeyAlg::P256, v, v).expect("PKI")
}

/// Options for a service on a free loopback port with development TLS.
pub fn options(data: &Path, enrollments: Option<&Path>) -> host_http::Options {
    host_http::Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        database: None,
        signature_memo: attest_service::DEFAULT_SIGNATURE_MEMO,
        mqtt_listen: None,
        id_scope: SCOPE.into(),
        data: data.to_path_buf(),
        tls_cert: None,
        tls_key: None,
        enrollments: enrollments.map(Path::to_path_buf),
        idle_timeout: host_http::DEFAULT_IDLE_TIMEOUT_SECONDS,
        snapshot_key: None,
        snapshot_history: attest_service::store::DEFAULT_HISTORY,
        audit: None,
        metrics_listen: None,
    }
}

pub struct Server {
    pub runtime: tokio::runtime::Runtime,
    pub running: Option<host_http::Running>,
    pub data: PathBuf,
    pub addr: SocketAddr,
    /// The MQTT listener's address, when started with one.
    pub mqtt_addr: Option<SocketAddr>,
}

impl Server {
    /// Starts host-http on 127.0.0.1 (free port) with `data` as its data
    /// directory and, optionally, an enrollment file.
    pub fn start(data: &Path, enrollments: Option<&Path>) -> Server {
        Server::start_with(options(data, enrollments))
    }

    /// Starts host-http with `options`.
    pub fn start_with(options: host_http::Options) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let data = options.data.clone();
        let running = runtime
            .block_on(host_http::start(options))
            .expect("host-http starts");
        let (addr, mqtt_addr) = (running.addr, running.mqtt_addr);
        Server {
            runtime,
            running: Some(running),
            data,
            addr,
            mqtt_addr,
        }
    }

    /// Graceful shutdown.
    pub fn stop(mut self) {
        if let Some(r) = self.running.take() {
            self.runtime.block_on(r.shutdown());
        }
    }

    pub fn ca(&self) -> PathBuf {
        self.data.join("tls").join("dev-server-ca.pem")
    }

    pub fn token(&self) -> String {
        let text = std::fs::read_to_string(self.data.join("config.json")).unwrap();
        let config: host_http::ServiceConfig = serde_json::from_str(&text).unwrap();
        let expiry = OffsetDateTime::now_utc().unix_timestamp() + 600;
        attest_dps::sas::token(&config.shared_access_policies[0], "localhost", expiry).unwrap()
    }

    pub fn client(&self) -> Client {
        Client {
            addr: self.addr,
            ca: std::fs::read(self.ca()).unwrap(),
            identity: None,
            tls12_only: false,
            any_key: false,
            p521_scheme: None,
        }
    }

    /// Uploads `ca` as CA certificate `name` and proves possession of its
    /// key (DPS verification code flow); returns the verify answer.
    pub fn verify_ca(&self, name: &str, ca: &attest_pki::Ca) -> Answer {
        let up = self.admin(
            "PUT",
            &format!("/certificates/{name}"),
            Some(&serde_json::json!({"certificate": ca.pem})),
        );
        assert_eq!(up.status, 200, "{up:?}");
        let coded = self.admin_if(
            "POST",
            &format!("/certificates/{name}/generateVerificationCode"),
            None,
            up.body["etag"].as_str().expect("an etag"),
        );
        let code = coded.body["properties"]["verificationCode"]
            .as_str()
            .expect("a verification code")
            .to_string();
        self.admin_if(
            "POST",
            &format!("/certificates/{name}/verify"),
            Some(&serde_json::json!({"certificate": verification_certificate(ca, &code)})),
            coded.body["etag"].as_str().expect("an etag"),
        )
    }

    pub fn device(&self, chain_pem: &str, key_pem: &str) -> Client {
        Client {
            identity: Some((chain_pem.to_string(), key_pem.to_string())),
            ..self.client()
        }
    }

    /// A management API call with a valid token.
    pub fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        self.client().call(
            method,
            path,
            body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
            &[("authorization", &self.token())],
        )
    }

    /// [`Server::admin`] with `If-Match: etag` (DPS requires it to change
    /// or delete a CA certificate).
    pub fn admin_if(&self, method: &str, path: &str, body: Option<&Value>, etag: &str) -> Answer {
        self.client().call(
            method,
            path,
            body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
            &[("authorization", &self.token()), ("if-match", etag)],
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.runtime.block_on(r.shutdown());
        }
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Value,
    pub raw: String,
}

#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    ca: Vec<u8>,
    identity: Option<(String, String)>,
    /// Offer TLS 1.2 only (embedded device stacks often stop there).
    pub tls12_only: bool,
    /// Present the identity's chain even if the key is not the leaf's (an
    /// attacker holding only a device's public certificate).
    pub any_key: bool,
    /// Sign the CertificateVerify of a P-521 identity with this ECDSA
    /// scheme's hash, as OpenSSL does in TLS 1.2 (0x0403: SHA-256).
    pub p521_scheme: Option<rustls::SignatureScheme>,
}

/// A P-521 key that signs with the hash of a fixed ECDSA scheme.
#[derive(Debug)]
struct P521Key {
    pkcs8: Vec<u8>,
    scheme: rustls::SignatureScheme,
}

#[derive(Debug)]
struct P521Signer(aws_lc_rs::signature::EcdsaKeyPair, rustls::SignatureScheme);

impl rustls::sign::SigningKey for P521Key {
    fn choose_scheme(
        &self,
        offered: &[rustls::SignatureScheme],
    ) -> Option<Box<dyn rustls::sign::Signer>> {
        use aws_lc_rs::signature as s;
        let alg = match self.scheme {
            rustls::SignatureScheme::ECDSA_NISTP256_SHA256 => &s::ECDSA_P521_SHA256_ASN1_SIGNING,
            rustls::SignatureScheme::ECDSA_NISTP384_SHA384 => &s::ECDSA_P521_SHA384_ASN1_SIGNING,
            _ => &s::ECDSA_P521_SHA512_ASN1_SIGNING,
        };
        let pair = s::EcdsaKeyPair::from_pkcs8(alg, &self.pkcs8).ok()?;
        offered
            .contains(&self.scheme)
            .then(|| Box::new(P521Signer(pair, self.scheme)) as Box<dyn rustls::sign::Signer>)
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        rustls::SignatureAlgorithm::ECDSA
    }
}

impl rustls::sign::Signer for P521Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.0
            .sign(&rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| rustls::Error::General("signing failed".into()))
    }

    fn scheme(&self) -> rustls::SignatureScheme {
        self.1
    }
}

/// Always presents one certified key, matching or not.
#[derive(Debug)]
struct AnyKey(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for AnyKey {
    fn resolve(
        &self,
        _: &[&[u8]],
        _: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
    fn has_certs(&self) -> bool {
        true
    }
}

impl Client {
    /// A client without a certificate for a server at `addr` whose CA is in `ca`.
    pub fn new(addr: SocketAddr, ca: &Path) -> Client {
        Client {
            addr,
            ca: std::fs::read(ca).unwrap(),
            identity: None,
            tls12_only: false,
            any_key: false,
            p521_scheme: None,
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The TLS client configuration (server CA, and the identity if any).
    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&self.ca) {
            roots.add(c.unwrap()).unwrap();
        }
        let versions: &[&rustls::SupportedProtocolVersion] = if self.tls12_only {
            &[&rustls::version::TLS12]
        } else {
            rustls::DEFAULT_VERSIONS
        };
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
        Arc::new(match &self.identity {
            None => builder.with_no_client_auth(),
            Some((chain, key)) if self.p521_scheme.is_some() => {
                let chain: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(chain.as_bytes())
                        .map(Result::unwrap)
                        .collect();
                let PrivateKeyDer::Pkcs8(pkcs8) =
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap()
                else {
                    panic!("a P-521 identity is a PKCS#8 key")
                };
                let signing = P521Key {
                    pkcs8: pkcs8.secret_pkcs8_der().to_vec(),
                    scheme: self.p521_scheme.unwrap(),
                };
                builder.with_client_cert_resolver(Arc::new(AnyKey(Arc::new(
                    rustls::sign::CertifiedKey::new(chain, Arc::new(signing)),
                ))))
            }
            Some((chain, key)) if self.any_key => {
                let chain: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(chain.as_bytes())
                        .map(Result::unwrap)
                        .collect();
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
                let signing = rustls::crypto::aws_lc_rs::default_provider()
                    .key_provider
                    .load_private_key(key)
                    .unwrap();
                builder.with_client_cert_resolver(Arc::new(AnyKey(Arc::new(
                    rustls::sign::CertifiedKey::new(chain, signing),
                ))))
            }
            Some((chain, key)) => {
                let chain: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(chain.as_bytes())
                        .map(Result::unwrap)
                        .collect();
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
        })
    }

    /// One request on a fresh connection.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Answer {
        self.try_call(method, path, body, headers)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// [`Client::call`], with a connection that fails (a server that is
    /// gone) as an error.
    pub fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let tcp = tokio::net::TcpStream::connect(self.addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(self.config())
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| format!("HTTP handshake: {e}"))?;
            tokio::spawn(conn);
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header("host", "localhost")
                .header("content-type", "application/json");
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let response = tokio::time::timeout(
                Duration::from_secs(60),
                sender.send_request(req.body(Full::new(Bytes::from(body))).unwrap()),
            )
            .await
            .map_err(|_| "no answer within 60 s".to_string())?
            .map_err(|e| format!("request: {e}"))?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            let raw = String::from_utf8_lossy(&bytes).into_owned();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            Ok(Answer {
                status,
                headers,
                body,
                raw,
            })
        })
    }

    /// This client with a device identity (chain PEM, key PEM).
    pub fn with_identity(self, chain_pem: &str, key_pem: &str) -> Client {
        Client {
            identity: Some((chain_pem.to_string(), key_pem.to_string())),
            ..self
        }
    }

    pub fn register(&self, registration_id: &str) -> Answer {
        self.call(
            "PUT",
            &format!("/{SCOPE}/registrations/{registration_id}/register?api-version=2021-06-01"),
            format!("{{\"registrationId\":\"{registration_id}\"}}").into_bytes(),
            &[],
        )
    }
}

/// Device `n`'s (chain PEM, key PEM).
pub fn device(pki: &Canonical, n: usize) -> (String, String) {
    (pki.chain_pem(n), pki.devices[n - 1].key.serialize_pem())
}

/// A DPS verification certificate: CN = `code`, signed by `ca`'s key,
/// base64 DER.
pub fn verification_certificate(ca: &attest_pki::Ca, code: &str) -> String {
    let now = OffsetDateTime::now_utc();
    let mut params = attest_pki::device_params(
        code,
        Validity {
            not_before: now - time::Duration::hours(1),
            not_after: now + time::Duration::days(1),
        },
    );
    params.extended_key_usages = vec![];
    let key = KeyAlg::P256.generate().expect("key");
    let der = ca.sign(&params, &key).expect("sign");
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(der)
}

/// A device certificate named `cn` issued by `ca` (valid now), as
/// (chain PEM, key PEM): the leaf, then `ca`.
pub fn issue(ca: &attest_pki::Ca, cn: &str) -> (String, String) {
    let now = OffsetDateTime::now_utc();
    let v = Validity {
        not_before: now - time::Duration::days(1),
        not_after: now + time::Duration::days(30),
    };
    let d = ca.device(cn, KeyAlg::P256, v).expect("device");
    (format!("{}{}", d.pem, ca.pem), d.key.serialize_pem())
}

/// An enrollment group document (DPS shape) on the CA in `pem`.
pub fn group(id: &str, pem: &str, enabled: bool) -> Value {
    serde_json::json!({
        "enrollmentGroupId": id,
        "provisioningStatus": if enabled { "enabled" } else { "disabled" },
        "attestation": {"type": "x509", "x509": {"signingCertificates": {"primary": {"certificate": pem}}}}
    })
}

/// An individual enrollment document (DPS shape) for the device certificate in `pem`.
pub fn individual(id: &str, pem: &str, enabled: bool) -> Value {
    serde_json::json!({
        "registrationId": id,
        "provisioningStatus": if enabled { "enabled" } else { "disabled" },
        "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": pem}}}}
    })
}

/// Runs a command with a deadline; panics with its output on failure.
pub fn run(cmd: &mut std::process::Command, limit: Duration) -> String {
    attest_tests::process::run(cmd, limit)
}

/// The `openssl x509 -fingerprint` of a PEM certificate, as DPS writes
/// thumbprints (upper-case hex, no colons).
pub fn openssl_fingerprint(pem: &str, digest: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.pem");
    std::fs::write(&path, pem).unwrap();
    let out = run(
        std::process::Command::new("openssl")
            .args([
                "x509",
                "-noout",
                "-fingerprint",
                &format!("-{digest}"),
                "-in",
            ])
            .arg(&path),
        Duration::from_secs(10),
    );
    out.trim()
        .split_once('=')
        .unwrap()
        .1
        .replace(':', "")
        .to_ascii_uppercase()
}

/// What devices 1..=5 of `pki` get from `server` (`assigned`, `disabled`,
/// or the HTTP status of the refusal); never a 5xx.
pub fn statuses(server: &Server, pki: &Canonical) -> Vec<String> {
    (1..=5)
        .map(|n| {
            let (chain, key) = device(pki, n);
            let a = server.device(&chain, &key).register(&format!("device-{n}"));
            assert!(a.status < 500, "device-{n}: {a:?}");
            match a.status {
                200 => a.body["status"].as_str().unwrap().to_string(),
                s => s.to_string(),
            }
        })
        .collect()
}

/// A new, empty database on the suite's PostgreSQL server.
pub fn fresh_database() -> String {
    attest_tests::postgres::fresh_database("attest_replicas")
}

/// A service whose one enrollment group is on the canonical root, with
/// line A's CA certificate held (unverified: it signs line A's CRLs) and,
/// when `mqtt`, an MQTT listener. Devices 1 and 2 are line A's.
pub fn revocation_service(dir: &Path, database: Option<String>, mqtt: bool) -> (Server, Canonical) {
    let pki = canonical();
    let file = dir.join("enrollments.json");
    let set = serde_json::json!({"enrollmentGroups": [group("fleet", &pki.root.pem, true)]});
    std::fs::write(&file, set.to_string()).unwrap();
    let mut options = options(&dir.join("data"), Some(&file));
    options.database = database;
    if mqtt {
        options.mqtt_listen = Some("127.0.0.1:0".parse().unwrap());
    }
    let server = Server::start_with(options);
    let put = server.admin(
        "PUT",
        "/certificates/line-a",
        Some(&serde_json::json!({"certificate": pki.line_a.pem})),
    );
    assert_eq!(put.status, 200, "{}", put.raw);
    (server, pki)
}

/// Line A's CRL: `revoked` device numbers, CRL `number`, thisUpdate and
/// nextUpdate in days from now.
pub fn line_a_crl(
    pki: &Canonical,
    revoked: &[usize],
    number: u64,
    this: i64,
    next: i64,
) -> Vec<u8> {
    let now = OffsetDateTime::now_utc();
    let entries: Vec<(Vec<u8>, OffsetDateTime)> = revoked
        .iter()
        .map(|n| {
            (
                attest_tests::serial(&pki.devices[n - 1].der),
                now - time::Duration::days(3),
            )
        })
        .collect();
    pki.line_a
        .crl(
            &entries,
            now + time::Duration::days(this),
            now + time::Duration::days(next),
            number,
        )
        .unwrap()
}

impl Server {
    /// `PUT /attest/crls/{name}` with `body` (DER or PEM).
    pub fn put_crl(&self, name: &str, body: &[u8]) -> Answer {
        self.client().call(
            "PUT",
            &format!("/attest/crls/{name}"),
            body.to_vec(),
            &[("authorization", &self.token())],
        )
    }
}
