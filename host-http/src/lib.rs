//! attest's provisioning service: the DPS device API (registration over
//! mutual TLS) and the DPS management API (enrollments, registration
//! records, CA certificates; SAS-token authenticated) on one HTTPS
//! listener. Every admission decision is the policy component's; this
//! crate is the glue between hyper/rustls, the SQLite store and
//! `policy-host`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use policy_host::dps::EnrollmentSet;
use policy_host::{EnrollmentKind, Policy};

mod admin;
mod device;
pub mod sas;
mod store;
mod tls;

use store::{Kind, Store};
use tls::{ClientEvidence, EvidenceSlot, Tls};

/// Largest request body accepted, bytes. DPS bodies are a registration ID
/// and an optional payload; enrollment documents carry up to two PEM
/// certificates.
pub const MAX_BODY: usize = 64 * 1024;
/// Most connections served at once. Beyond it a new connection is
/// accepted and closed at once (the client retries) rather than left
/// waiting in the kernel's queue behind idle sockets.
pub const MAX_CONNECTIONS: usize = 1024;
/// Most connections served at once from one IP address: one host holding
/// idle sockets cannot take the whole [`MAX_CONNECTIONS`].
pub const MAX_CONNECTIONS_PER_PEER: usize = 64;
/// Time a new connection has to send its first byte (the TLS ClientHello).
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for the rest of the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a request body (at most [`MAX_BODY`] bytes): a client
/// trickling bytes must not hold a connection slot for ever.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start the service.
#[derive(Clone, Debug)]
pub struct Options {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The DPS ID scope devices use in their URLs.
    pub id_scope: String,
    /// Data directory: database, configuration, development TLS material.
    pub data: PathBuf,
    /// Server certificate chain (PEM); a development one is made if absent.
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Enrollment set (DPS JSON) to upsert at start.
    pub enrollments: Option<PathBuf>,
}

/// The service's configuration file (`config.json` in the data directory),
/// created with a fresh management key on first start.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConfig {
    /// SAS policies for the management API.
    pub shared_access_policies: Vec<SasPolicy>,
    /// Hub assigned when the deciding enrollment names none.
    pub default_iot_hub_host_name: String,
    /// Longest a management SAS token may be valid for, seconds (default
    /// one year; tokens expiring later are refused).
    #[serde(default = "default_max_token_lifetime")]
    pub max_token_lifetime_seconds: i64,
}

fn default_max_token_lifetime() -> i64 {
    sas::DEFAULT_MAX_TOKEN_LIFETIME
}

/// One shared access policy (DPS: name and base64 key).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SasPolicy {
    /// Policy name (`skn` in tokens).
    pub key_name: String,
    /// Base64 HMAC-SHA256 key.
    pub primary_key: String,
}

impl ServiceConfig {
    /// Loads `config.json` from `data`, creating it (with a random key) if
    /// absent; the flag says whether it was created now.
    pub fn load_or_create(data: &std::path::Path) -> Result<(ServiceConfig, bool)> {
        let path = data.join("config.json");
        if path.exists() {
            let text = policy_host::input::read_limited_text(&path, 1 << 20)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let config: ServiceConfig = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a host-http configuration", path.display()))?;
            if config.shared_access_policies.is_empty() {
                return Err(anyhow!(
                    "{} has no sharedAccessPolicies; the management API would be unusable",
                    path.display()
                ));
            }
            for policy in &config.shared_access_policies {
                sas::check_key(policy).map_err(|e| anyhow!("{}: {e}", path.display()))?;
            }
            if config.max_token_lifetime_seconds < 1 {
                return Err(anyhow!(
                    "{}: maxTokenLifetimeSeconds must be positive",
                    path.display()
                ));
            }
            return Ok((config, false));
        }
        std::fs::create_dir_all(data)
            .with_context(|| format!("cannot create {}", data.display()))?;
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).map_err(|_| anyhow!("no system randomness"))?;
        use base64::Engine as _;
        let config = ServiceConfig {
            shared_access_policies: vec![SasPolicy {
                key_name: "provisioningserviceowner".into(),
                primary_key: base64::engine::general_purpose::STANDARD.encode(key),
            }],
            default_iot_hub_host_name: "hub.attest.local".into(),
            max_token_lifetime_seconds: sas::DEFAULT_MAX_TOKEN_LIFETIME,
        };
        tls::write_private(&path, serde_json::to_string_pretty(&config)?.as_bytes())?;
        Ok((config, true))
    }
}

/// The running service.
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// Things to tell the operator at start (first-start key, dev CA path).
    pub notes: Vec<String>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (up to 10 s), and
    /// returns when every connection has closed.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Shared state of the service.
pub(crate) struct Service {
    pub(crate) policy: Policy,
    pub(crate) store: Store,
    tls: Tls,
    pub(crate) id_scope: String,
    pub(crate) config: ServiceConfig,
    index: RwLock<Arc<EnrollmentSet>>,
}

impl Service {
    /// The current enrollment index (rebuilt after every management write).
    pub(crate) fn index(&self) -> Arc<EnrollmentSet> {
        Arc::clone(&self.index.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Rebuilds the in-memory enrollment index from the store: verified CA
    /// certificates are trust anchors; groups may reference them by name.
    ///
    /// Fails closed: an entry that cannot be loaded is never skipped. A
    /// broken individual enrollment refuses its registration ID; a broken
    /// group disables its CA, or, when its CA cannot be read either, every
    /// group (see `EnrollmentSet::poison_group`). Each is logged as an
    /// error and returned, so that start-up and management writes say so.
    pub(crate) fn rebuild_index(&self) -> Result<Vec<String>> {
        let mut set = EnrollmentSet::default();
        let mut problems = Vec::new();
        let cas = self.store.certificates()?;
        for ca in cas.iter().filter(|c| c.verified) {
            if let Err(e) = set.add_anchor(ca.der.clone()) {
                // An anchor that cannot be read anchors nothing: only ever
                // fewer admissions.
                problems.push(format!(
                    "verified CA certificate '{}' is not usable: {e}",
                    ca.name
                ));
            }
        }
        let lookup = |name: &str| {
            cas.iter()
                .find(|c| c.name == name && c.verified)
                .map(|c| c.der.clone())
        };
        for (id, doc) in self.store.enrollments_raw(Kind::Individual)? {
            if let Err(e) = doc
                .map_err(|e| format!("{e:#}"))
                .and_then(|d| set.insert_individual(&d).map_err(|e| e.to_string()))
            {
                set.poison_individual(&id);
                problems.push(format!(
                    "individual enrollment '{id}' cannot be loaded ({e}); the device is refused until it is repaired"
                ));
            }
        }
        for (id, doc) in self.store.enrollments_raw(Kind::Group)? {
            let loaded = match &doc {
                Ok(d) => set.insert_group(d, &lookup).map_err(|e| e.to_string()),
                Err(e) => Err(format!("{e:#}")),
            };
            if let Err(e) = loaded {
                set.poison_group(&id, doc.as_ref().ok(), &lookup);
                problems.push(format!(
                    "enrollment group '{id}' cannot be loaded ({e}); the devices under its CA are refused until it is repaired"
                ));
            }
        }
        if !set.unloadable_groups().is_empty() {
            problems.push(format!(
                "the CA of enrollment group(s) {} cannot be determined: every device decided by a group is refused until they are repaired",
                set.unloadable_groups().join(", ")
            ));
        }
        for p in &problems {
            tracing::error!("{p}");
        }
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
        Ok(problems)
    }

    /// The hub an admitted device goes to: the deciding entry's allocation,
    /// else the service default.
    pub(crate) fn allocation(
        &self,
        index: &EnrollmentSet,
        kind: EnrollmentKind,
        id: &str,
    ) -> policy_host::dps::Allocation {
        index.allocation(kind, id).cloned().unwrap_or_default()
    }
}

/// Opens the store, loads the policy, upserts `--enrollments` and builds
/// the enrollment index (problems become `ERROR:` notes).
fn build_service(
    options: &Options,
    tls: Tls,
    config: ServiceConfig,
    notes: &mut Vec<String>,
) -> Result<Arc<Service>> {
    let store = Store::open(&options.data)?;
    let service = Arc::new(Service {
        policy: Policy::new().context("loading the policy component")?,
        store,
        tls,
        id_scope: options.id_scope.clone(),
        config,
        index: RwLock::new(Arc::new(EnrollmentSet::default())),
    });
    if let Some(path) = &options.enrollments {
        let (individuals, groups) = admin::upsert_file(&service, path)?;
        notes.push(format!(
            "upserted {individuals} individual enrollment(s) and {groups} enrollment group(s) from {}",
            path.display()
        ));
    }
    for problem in service.rebuild_index()? {
        notes.push(format!("ERROR: {problem}"));
    }

    Ok(service)
}

/// Starts the service: opens the store, loads or creates configuration and
/// TLS material, upserts `--enrollments`, binds, and serves until
/// [`Running::shutdown`].
pub async fn start(options: Options) -> Result<Running> {
    let mut notes = Vec::new();
    if options.id_scope.is_empty()
        || options.id_scope.len() > 64
        || !options.id_scope.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(anyhow!(
            "--id-scope {:?} must be 1 to 64 ASCII letters and digits (e.g. 0ne00000001)",
            options.id_scope
        ));
    }
    std::fs::create_dir_all(&options.data)
        .with_context(|| format!("cannot create {}", options.data.display()))?;
    let (config, created) = ServiceConfig::load_or_create(&options.data)?;
    if created {
        let p = &config.shared_access_policies[0];
        notes.push(format!(
            "created {} with management policy '{}', key {} (shown once; it stays in that file)",
            options.data.join("config.json").display(),
            p.key_name,
            p.primary_key
        ));
    }
    let tls = match (&options.tls_cert, &options.tls_key) {
        (Some(cert), Some(key)) => Tls::load(cert, key)?,
        (None, None) => {
            let (dev, created) = tls::dev_certificate(&options.data.join("tls"))?;
            notes.push(format!(
                "{} development TLS certificate for localhost; clients trust {}",
                if created { "created a" } else { "using the" },
                dev.ca.display()
            ));
            Tls::load(&dev.cert, &dev.key)?
        }
        _ => return Err(anyhow!("give both --tls-cert and --tls-key, or neither")),
    };
    let service = build_service(&options, tls, config, &mut notes)?;
    let listener =
        listen(options.listen).with_context(|| format!("cannot listen on {}", options.listen))?;
    let addr = listener.local_addr()?;
    let (shutdown, mut stop) = watch::channel(false);
    let task = tokio::spawn(async move {
        // Accept first, then decide: a connection over a limit is closed at
        // once, so idle sockets never stall the accept queue for others.
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let peers = PeerCounts::default();
        let mut connections = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.changed() => break,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                tracing::debug!(%peer, "{MAX_CONNECTIONS} connections open; closing this one");
                continue;
            };
            let Some(peer_slot) = peers.take(peer.ip()) else {
                tracing::debug!(%peer, "{MAX_CONNECTIONS_PER_PEER} connections open from this address; closing this one");
                continue;
            };
            let service = Arc::clone(&service);
            let stop = stop.clone();
            connections.spawn(async move {
                serve_connection(service, tcp, peer, stop).await;
                drop(peer_slot);
                drop(permit);
            });
            while connections.try_join_next().is_some() {}
        }
        drop(listener);
        let drain = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(10), drain)
            .await
            .is_err()
        {
            tracing::warn!("connections still open after 10 s; closing them");
        }
    });
    Ok(Running {
        addr,
        notes,
        shutdown,
        task,
    })
}

/// A listener with a deep accept queue (the kernel caps it at
/// `net.core.somaxconn`): under a burst of connections, devices wait in
/// the queue instead of having their SYNs dropped (a 1 s retransmit).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Open connections per peer address.
#[derive(Clone, Default)]
struct PeerCounts(Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>);

/// One counted connection of a peer; uncounted when dropped.
struct PeerSlot {
    counts: PeerCounts,
    ip: std::net::IpAddr,
}

impl PeerCounts {
    /// A slot for `ip`, unless it has [`MAX_CONNECTIONS_PER_PEER`] already.
    fn take(&self, ip: std::net::IpAddr) -> Option<PeerSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= MAX_CONNECTIONS_PER_PEER {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// The service's request handling without the network: raw HTTP/1.1 bytes
/// are served as if they had arrived over a mutual-TLS connection with the
/// given client evidence (routing, limits, device and management APIs,
/// store and policy are the real ones). For fuzzing and tests.
#[doc(hidden)]
pub struct Harness {
    service: Arc<Service>,
    /// What start-up said (as [`Running::notes`]).
    pub notes: Vec<String>,
}

/// The TLS evidence a [`Harness`] request carries.
#[doc(hidden)]
#[derive(Clone, Debug, Default)]
pub struct Evidence {
    /// Leaf DER and intermediates DER.
    pub chain: Option<(Vec<u8>, Vec<Vec<u8>>)>,
    /// TLS signature scheme, signed content, signature.
    pub signature: Option<(u16, Vec<u8>, Vec<u8>)>,
}

impl Harness {
    /// Builds the service as [`start`] does (data directory, config,
    /// enrollments), without TLS material or a listener.
    pub fn new(options: &Options) -> Result<Harness> {
        std::fs::create_dir_all(&options.data)
            .with_context(|| format!("cannot create {}", options.data.display()))?;
        let (config, _) = ServiceConfig::load_or_create(&options.data)?;
        let (dev, _) = tls::dev_certificate(&options.data.join("tls"))?;
        let tls = Tls::load(&dev.cert, &dev.key)?;
        let mut notes = Vec::new();
        let service = build_service(options, tls, config, &mut notes)?;
        Ok(Harness { service, notes })
    }

    /// Serves `request` (bytes as a client would send them on one
    /// connection) and returns everything the service wrote back.
    pub async fn serve(&self, request: &[u8], evidence: Evidence) -> Vec<u8> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(256 << 10);
        let evidence = Arc::new(ClientEvidence {
            chain: evidence.chain,
            signature: evidence.signature,
        });
        let service = Arc::clone(&self.service);
        let handler = hyper::service::service_fn(move |req| {
            let service = Arc::clone(&service);
            let evidence = Arc::clone(&evidence);
            async move { Ok::<_, Infallible>(route(service, evidence, req).await) }
        });
        let conn = tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                // The request is written whole and the write side shut:
                // answer it rather than treat the EOF as an abort.
                .half_close(true)
                .serve_connection(TokioIo::new(server), handler),
        );
        let _ = client.write_all(request).await;
        let _ = client.shutdown().await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut out)).await;
        conn.abort();
        out
    }
}

async fn serve_connection(
    service: Arc<Service>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    // A silent socket is closed after FIRST_BYTE_TIMEOUT, not held for the
    // whole handshake allowance.
    if !matches!(
        tokio::time::timeout(FIRST_BYTE_TIMEOUT, tcp.readable()).await,
        Ok(Ok(()))
    ) {
        tracing::debug!(%peer, "no data within {FIRST_BYTE_TIMEOUT:?}; closing");
        return;
    }
    let slot = EvidenceSlot::default();
    let config = match service.tls.config(Arc::clone(&slot)) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("TLS configuration: {e:#}");
            return;
        }
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let evidence: Arc<ClientEvidence> =
        Arc::new(slot.lock().map(|e| e.clone()).unwrap_or_default());
    let handler = hyper::service::service_fn(move |req| {
        let service = Arc::clone(&service);
        let evidence = Arc::clone(&evidence);
        async move { Ok::<_, Infallible>(route(service, evidence, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), handler);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r { tracing::debug!(%peer, "connection: {e}"); }
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// A response body.
pub(crate) type Body = Full<Bytes>;

async fn route(
    service: Arc<Service>,
    evidence: Arc<ClientEvidence>,
    req: Request<Incoming>,
) -> Response<Body> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let response = match segments.first().map(String::as_str) {
        Some("enrollments" | "enrollmentGroups" | "registrations" | "certificates") => {
            admin::handle(&service, req, &segments).await
        }
        Some(scope) if !scope.is_empty() && segments.len() >= 3 => {
            device::handle(&service, &evidence, req, &segments).await
        }
        _ => dps_error(
            StatusCode::NOT_FOUND,
            404_000,
            &format!("no resource at {path}"),
        ),
    };
    tracing::info!(
        %method,
        %path,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

/// Reads a request body of at most [`MAX_BODY`] bytes.
pub(crate) async fn read_body(req: Request<Incoming>) -> Result<Bytes, Response<Body>> {
    let read = Limited::new(req.into_body(), MAX_BODY).collect();
    let Ok(collected) = tokio::time::timeout(BODY_TIMEOUT, read).await else {
        return Err(dps_error(
            StatusCode::REQUEST_TIMEOUT,
            408_000,
            &format!("request body not received within {BODY_TIMEOUT:?}"),
        ));
    };
    match collected {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(dps_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    413_000,
                    &format!("request body exceeds {MAX_BODY} bytes"),
                ))
            } else {
                Err(dps_error(
                    StatusCode::BAD_REQUEST,
                    400_001,
                    &format!("request body could not be read: {e}"),
                ))
            }
        }
    }
}

/// Reads and parses a JSON request body (see [`read_body`], [`json_body`]).
pub(crate) async fn read_json(req: Request<Incoming>) -> Result<Value, Response<Body>> {
    json_body(&read_body(req).await?)
}

/// Parses a JSON body; an empty body is `{}` (the Node SDK sends `{}` or
/// nothing on GET).
pub(crate) fn json_body(bytes: &[u8]) -> Result<Value, Response<Body>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        dps_error(
            StatusCode::BAD_REQUEST,
            400_001,
            &format!("request body is not JSON: {e}"),
        )
    })
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// A DPS error: `{"errorCode","trackingId","message","timestampUtc"}` and
/// the `x-ms-error-code` header.
pub(crate) fn dps_error(status: StatusCode, code: u32, message: &str) -> Response<Body> {
    let tracking = random_id();
    tracing::debug!(code, tracking = %tracking, "{message}");
    let mut r = json_response(
        status,
        &json!({
            "errorCode": code,
            "trackingId": tracking,
            "message": message,
            "timestampUtc": now_rfc3339(),
        }),
    );
    if let Ok(v) = HeaderValue::from_str(&code.to_string()) {
        r.headers_mut().insert("x-ms-error-code", v);
    }
    r
}

/// A random identifier (UUID v4 form).
pub(crate) fn random_id() -> String {
    let mut b = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        b = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos().to_be_bytes())
            .unwrap_or_default();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A fresh etag.
pub(crate) fn new_etag() -> String {
    let mut b = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut b);
    format!("\"{}\"", hex::encode(b))
}

/// Now, Unix seconds.
pub(crate) fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Now, RFC 3339 UTC.
pub(crate) fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub(crate) fn unix_rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .map(rfc3339)
        .unwrap_or_default()
}
