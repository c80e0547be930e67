//! `host-cli register`: act as a device against a DPS-compatible service
//! (attest's host-http, or Azure DPS): mutual TLS with the device chain,
//! then over HTTPS `PUT /{idScope}/registrations/{id}/register`, or over
//! MQTT (`--transport mqtt`) a publish to
//! `$dps/registrations/PUT/iotdps-register/?$rid=…`; poll while
//! `assigning`, print the final registration state.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};

use crate::input;

/// DPS api-version sent (any value is accepted by host-http).
pub const API_VERSION: &str = "2021-06-01";
/// Most polls of an `assigning` operation.
const MAX_POLLS: usize = 30;
/// Largest response body read.
const MAX_RESPONSE: usize = 1 << 20;

/// The device transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// DPS's HTTPS device API.
    #[default]
    Https,
    /// DPS's MQTT 3.1.1 device API (over TLS; DPS's port is 8883).
    Mqtt,
}

/// Arguments of `register`.
#[derive(Debug, clap::Args)]
pub struct RegisterArgs {
    /// Service URL: https://localhost:8443, or for MQTT mqtts://localhost:8883
    /// (default ports 443 and 8883).
    #[arg(long)]
    pub server: String,
    /// Device transport.
    #[arg(long, value_enum, default_value_t = Transport::Https)]
    pub transport: Transport,
    /// DPS ID scope.
    #[arg(long)]
    pub id_scope: String,
    /// Device certificate chain, PEM: the leaf first, then intermediates.
    #[arg(long)]
    pub cert: PathBuf,
    /// Device private key, PEM (PKCS#8, SEC1 or PKCS#1).
    #[arg(long)]
    pub key: PathBuf,
    /// CA certificate(s) that issued the server's certificate, PEM.
    #[arg(long)]
    pub ca: PathBuf,
    /// Registration ID (default: the leaf's subject CN).
    #[arg(long)]
    pub registration_id: Option<String>,
    /// Print the service's final answer as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What the service answered.
#[derive(Debug)]
pub struct Registration {
    /// HTTP status of the final answer.
    pub http_status: u16,
    /// The final JSON body (RegistrationOperationStatus or a DPS error).
    pub body: Value,
}

impl Registration {
    /// `assigned`, `failed`, `disabled`, … or `error` for an HTTP error.
    pub fn status(&self) -> &str {
        if self.http_status >= 400 {
            return "error";
        }
        self.body
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
    }

    /// A few lines for people.
    pub fn human(&self, registration_id: &str) -> String {
        let state = &self.body["registrationState"];
        match self.status() {
            "assigned" => {
                let via = match state["x509"]["enrollmentGroupId"].as_str() {
                    Some(g) => format!("enrollment group '{g}'"),
                    None => "individual enrollment".to_string(),
                };
                format!(
                    "registration '{registration_id}': assigned\n  device ID     {}\n  assigned hub  {}\n  decided by    {via}\n  operation     {}",
                    state["deviceId"].as_str().unwrap_or("?"),
                    state["assignedHub"].as_str().unwrap_or("?"),
                    self.body["operationId"].as_str().unwrap_or("?"),
                )
            }
            "error" => format!(
                "registration '{registration_id}': refused (HTTP {}, errorCode {})\n  {}",
                self.http_status,
                self.body["errorCode"],
                self.body["message"].as_str().unwrap_or("(no message)")
            ),
            status => format!(
                "registration '{registration_id}': {status}\n  {}",
                state["errorMessage"].as_str().unwrap_or("(no message)")
            ),
        }
    }
}

/// Registers the device; the registration ID used is returned with the answer.
pub fn register(args: &RegisterArgs) -> Result<(String, Registration)> {
    let chain = input::pem_file(&args.cert)?;
    let key_bytes = input::read_limited(&args.key, input::MAX_PEM_FILE)?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes)
        .map_err(|e| anyhow!("{} is not a PEM private key: {e}", args.key.display()))?;
    let roots = input::pem_file(&args.ca)?;
    let registration_id = match &args.registration_id {
        Some(id) => id.clone(),
        None => crate::common_name_of(&chain[0])?,
    };
    let (host, port) = parse_server(&args.server, args.transport)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let answer = runtime.block_on(async {
        let config = client_config(&chain, key, &roots, args.transport)?;
        let mut channel = match args.transport {
            Transport::Https => Channel::Https(connect(&host, port, config).await?),
            Transport::Mqtt => Channel::Mqtt(Box::new(
                crate::mqtt::Session::connect(
                    &host,
                    port,
                    config,
                    &args.id_scope,
                    &registration_id,
                )
                .await?,
            )),
        };
        let (mut status, mut value, mut retry) = channel
            .request(&host, &args.id_scope, &registration_id, None)
            .await?;
        let mut polls = 0;
        while status == 202 || value.get("status").and_then(Value::as_str) == Some("assigning") {
            polls += 1;
            if polls > MAX_POLLS {
                bail!("still assigning after {MAX_POLLS} polls");
            }
            let operation = value["operationId"]
                .as_str()
                .ok_or_else(|| anyhow!("202 without an operationId: {value}"))?
                .to_string();
            tokio::time::sleep(retry).await;
            (status, value, retry) = channel
                .request(&host, &args.id_scope, &registration_id, Some(&operation))
                .await?;
        }
        channel.close().await;
        Ok::<_, anyhow::Error>(Registration {
            http_status: status,
            body: value,
        })
    })?;
    Ok((registration_id, answer))
}

/// A device's connection to the service, over either transport.
enum Channel {
    Https(SendRequest<Full<Bytes>>),
    Mqtt(Box<crate::mqtt::Session>),
}

impl Channel {
    /// Registers (`operation` `None`) or polls an operation; the status,
    /// the JSON answer, and when to poll again.
    async fn request(
        &mut self,
        host: &str,
        id_scope: &str,
        registration_id: &str,
        operation: Option<&str>,
    ) -> Result<(u16, Value, Duration)> {
        match self {
            Channel::Https(sender) => {
                let (method, path, body) = match operation {
                    None => (
                        Method::PUT,
                        format!(
                            "/{id_scope}/registrations/{registration_id}/register?api-version={API_VERSION}"
                        ),
                        json!({ "registrationId": registration_id }),
                    ),
                    Some(op) => (
                        Method::GET,
                        format!(
                            "/{id_scope}/registrations/{registration_id}/operations/{op}?api-version={API_VERSION}"
                        ),
                        json!({}),
                    ),
                };
                send(sender, host, method, &path, &body, None).await
            }
            Channel::Mqtt(session) => session.request(registration_id, operation).await,
        }
    }

    async fn close(self) {
        if let Channel::Mqtt(session) = self {
            session.disconnect().await;
        }
    }
}

/// `when` to poll again: the service's `retry-after` seconds, clamped to
/// 1–30 (2 when absent).
pub(crate) fn retry_after(seconds: Option<&str>) -> Duration {
    seconds
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(2), |s| {
            Duration::from_secs(s.clamp(1, 30))
        })
}

fn parse_server(server: &str, transport: Transport) -> Result<(String, u16)> {
    let (scheme, default_port) = match transport {
        Transport::Https => ("https://", 443),
        Transport::Mqtt => ("mqtts://", 8883),
    };
    let rest = server.strip_prefix(scheme).ok_or_else(|| {
        anyhow!("--server {server:?} must start with {scheme} for --transport {transport:?}")
    })?;
    let authority = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, port) = v6
            .split_once(']')
            .ok_or_else(|| anyhow!("--server {server:?}: unterminated [IPv6] address"))?;
        let port = match port.strip_prefix(':') {
            Some(p) => p
                .parse()
                .map_err(|_| anyhow!("--server {server:?}: bad port"))?,
            None => default_port,
        };
        return Ok((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Ok((
            host.to_string(),
            port.parse()
                .map_err(|_| anyhow!("--server {server:?}: bad port {port:?}"))?,
        )),
        None => Ok((authority.to_string(), default_port)),
    }
}

/// `https://host[:port]` as host and port.
pub(crate) fn parse_https_server(server: &str) -> Result<(String, u16)> {
    parse_server(server, Transport::Https)
}

/// The `--ca` certificates as trust anchors.
fn root_store(roots: &[Vec<u8>]) -> Result<rustls::RootCertStore> {
    let mut store = rustls::RootCertStore::empty();
    for der in roots {
        store
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| anyhow!("--ca certificate is not usable as a trust anchor: {e}"))?;
    }
    Ok(store)
}

/// A TLS client configuration that trusts `roots` and has no client
/// certificate (management calls authenticate with SAS tokens).
pub(crate) fn server_config(roots: &[Vec<u8>]) -> Result<Arc<rustls::ClientConfig>> {
    let store = root_store(roots)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn client_config(
    chain: &[Vec<u8>],
    key: PrivateKeyDer<'static>,
    roots: &[Vec<u8>],
    transport: Transport,
) -> Result<Arc<rustls::ClientConfig>> {
    let store = root_store(roots)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(store)
        .with_client_auth_cert(
            chain
                .iter()
                .map(|c| CertificateDer::from(c.clone()))
                .collect(),
            key,
        )
        .map_err(|e| anyhow!("the device certificate and key do not fit together: {e}"))?;
    let mut config = config;
    if transport == Transport::Https {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    Ok(Arc::new(config))
}

/// A TCP connection to `host:port` (10 s) and a TLS handshake over it.
pub(crate) async fn tls_connect(
    host: &str,
    port: u16,
    config: Arc<rustls::ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| anyhow!("connecting to {host}:{port} timed out"))?
    .with_context(|| format!("cannot connect to {host}:{port}"))?;
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| anyhow!("{host:?} is not a server name: {e}"))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS handshake with {host}:{port} failed"))
}

pub(crate) async fn connect(
    host: &str,
    port: u16,
    config: Arc<rustls::ClientConfig>,
) -> Result<SendRequest<Full<Bytes>>> {
    let tls = tls_connect(host, port, config).await?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .context("HTTP handshake failed")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// One request on a connection: the status, the JSON answer, and when to
/// try again (`retry-after`). `authorization` is sent when given.
pub(crate) async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    host: &str,
    method: Method,
    path: &str,
    body: &Value,
    authorization: Option<&str>,
) -> Result<(u16, Value, Duration)> {
    let mut request = Request::builder();
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let request = request
        .method(method)
        .uri(path)
        .header("host", host)
        .header("content-type", "application/json; charset=utf-8")
        .header("accept", "application/json")
        .header(
            "user-agent",
            concat!("attest-host-cli/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(body.to_string())))?;
    sender.ready().await.context("connection closed")?;
    let response = tokio::time::timeout(Duration::from_secs(60), sender.send_request(request))
        .await
        .map_err(|_| anyhow!("no answer within 60 s"))?
        .context("request failed")?;
    let status = response.status().as_u16();
    let retry = retry_after(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
    );
    let bytes = Limited::new(response.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| anyhow!("reading the answer: {e}"))?
        .to_bytes();
    Ok((status, answer_json(status, &bytes)?, retry))
}

/// A service answer's JSON body (`{}` when empty).
pub(crate) fn answer_json(status: u16, bytes: &[u8]) -> Result<Value> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        anyhow!(
            "status {status}: the answer is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        let https = |s| parse_server(s, Transport::Https);
        assert_eq!(
            https("https://localhost:8443").unwrap(),
            ("localhost".into(), 8443)
        );
        assert_eq!(
            https("https://dps.example/").unwrap(),
            ("dps.example".into(), 443)
        );
        assert_eq!(https("https://[::1]:9000").unwrap(), ("::1".into(), 9000));
        assert!(https("http://x").is_err());
        assert!(https("https://x:notaport").is_err());
        let mqtt = |s| parse_server(s, Transport::Mqtt);
        assert_eq!(
            mqtt("mqtts://dps.example").unwrap(),
            ("dps.example".into(), 8883)
        );
        assert_eq!(
            mqtt("mqtts://localhost:9883").unwrap(),
            ("localhost".into(), 9883)
        );
        assert!(mqtt("https://localhost:8883").is_err());
    }
}
