//! The listener and the connection lifecycle: accept, connection limits,
//! TLS handshake with evidence capture, HTTP/1.1 serving, graceful
//! shutdown. Nothing here decides anything about a device.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use attest_service::events::Transport;
use attest_service::{DeviceEvidence, Service};

use crate::Options;
use crate::http::route;
use crate::ops::{Metrics, Ops, Phase};
use crate::slots::{MAX_CONNECTIONS, MAX_CONNECTIONS_PER_PEER, Slot, Slots};
use crate::tls::{self, EvidenceSlot, Tls};

/// Time a new connection has to send its first byte (the TLS ClientHello).
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for the rest of the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// At shutdown, time a connection that has carried no request yet is
/// given for its first one to begin.
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// The running service.
pub struct Running {
    /// The bound HTTPS address.
    pub addr: SocketAddr,
    /// The bound MQTT address, if MQTT is served.
    pub mqtt_addr: Option<SocketAddr>,
    /// The bound metrics and health address, if served.
    pub metrics_addr: Option<SocketAddr>,
    /// Things to tell the operator at start (first-start key, dev CA path).
    pub notes: Vec<String>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    accepting: Arc<std::sync::atomic::AtomicBool>,
    service: Arc<Service>,
    ops: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
}

impl Running {
    /// `/readyz` answers 503 from now on (the first step of [`Running::shutdown`]).
    pub fn not_ready(&self) {
        self.accepting
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Shuts down gracefully: `/readyz` answers 503 from the first moment;
    /// the listeners stop accepting; requests in flight finish (up to 10
    /// s) and every connection closes; the audit trail gets its `stop` line
    /// and is flushed to disk; then the metrics listener closes.
    pub async fn shutdown(self) {
        self.not_ready();
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        if let Some(trail) = self.service.audit_trail() {
            match tokio::task::spawn_blocking(move || trail.close()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!("audit trail: {e:#}"),
                Err(e) => tracing::error!("audit trail: {e}"),
            }
        }
        if let Some((stop, task)) = self.ops {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }
}

/// The server certificate: the one given, or the development one in the
/// data directory (made on first start).
fn server_tls(options: &Options, notes: &mut Vec<String>) -> Result<Tls> {
    match (&options.tls_cert, &options.tls_key) {
        (Some(cert), Some(key)) => Tls::load(cert, key),
        (None, None) => {
            let (dev, created) = tls::dev_certificate(&options.data.join("tls"))?;
            notes.push(format!(
                "{} development TLS certificate for localhost; clients trust {}",
                if created { "created a" } else { "using the" },
                dev.ca.display()
            ));
            Tls::load(&dev.cert, &dev.key)
        }
        _ => Err(anyhow!("give both --tls-cert and --tls-key, or neither")),
    }
}

/// What a listener speaks after the TLS handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    /// HTTP/1.1: the device and management APIs.
    Https,
    /// MQTT 3.1.1: the device API.
    Mqtt,
}

impl Protocol {
    /// The listener's name in metrics labels.
    fn label(self) -> &'static str {
        match self {
            Protocol::Https => "https",
            Protocol::Mqtt => "mqtt",
        }
    }

    /// The ALPN protocols offered (MQTT clients on 8883 send none).
    fn alpn(self) -> &'static [&'static [u8]] {
        match self {
            Protocol::Https => &[b"http/1.1"],
            Protocol::Mqtt => &[],
        }
    }
}

/// What every connection of every listener shares: the service, the TLS
/// material, and the connection limits (one budget across listeners).
#[derive(Clone)]
struct Shared {
    service: Arc<Service>,
    tls: Arc<Tls>,
    slots: Slots,
    idle_timeout: Duration,
    metrics: Arc<Metrics>,
}

/// Opens the service (store, configuration, policy, `--enrollments`),
/// loads or creates the TLS material, binds the HTTPS listener (and the
/// MQTT one, if asked for), and serves until [`Running::shutdown`].
pub async fn start(options: Options) -> Result<Running> {
    let service_options = options.service();
    let (service, mut notes) =
        tokio::task::spawn_blocking(move || Service::open(&service_options)).await??;
    let metrics = Arc::new(Metrics::new(service.audit_trail()));
    let service = Arc::new(service.with_observer(Arc::clone(&metrics) as _));
    let shared = Shared {
        tls: Arc::new(server_tls(&options, &mut notes)?),
        service: Arc::clone(&service),
        slots: Slots::default(),
        idle_timeout: Duration::from_secs(options.idle_timeout),
        metrics: Arc::clone(&metrics),
    };
    let accepting = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let ops_listener = match options.metrics_listen {
        Some(at) => Some(TcpListener::from_std(crate::ops::bind(at)?)?),
        None => None,
    };
    let metrics_addr = ops_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let listener =
        listen(options.listen).with_context(|| format!("cannot listen on {}", options.listen))?;
    let addr = listener.local_addr()?;
    let mqtt = match options.mqtt_listen {
        Some(at) => Some(listen(at).with_context(|| format!("cannot listen on {at} (MQTT)"))?),
        None => None,
    };
    let mqtt_addr = mqtt.as_ref().map(TcpListener::local_addr).transpose()?;
    let (shutdown, stop) = watch::channel(false);
    let https = tokio::spawn(accept(
        listener,
        Protocol::Https,
        shared.clone(),
        stop.clone(),
    ));
    // CRLs with a distribution point are fetched again before they expire.
    tokio::spawn(crate::crl_fetch::run(
        Arc::clone(&service),
        Arc::default(),
        stop.clone(),
    ));
    let mqtt = mqtt.map(|l| tokio::spawn(accept(l, Protocol::Mqtt, shared, stop)));
    let task = tokio::spawn(async move {
        let _ = https.await;
        if let Some(mqtt) = mqtt {
            let _ = mqtt.await;
        }
    });
    let ops = ops_listener.map(|listener| {
        let (stop_ops, stopped) = watch::channel(false);
        let ops = Arc::new(Ops {
            metrics,
            service: Arc::clone(&service),
            accepting: Arc::clone(&accepting),
        });
        (
            stop_ops,
            tokio::spawn(crate::ops::serve(listener, ops, stopped)),
        )
    });
    Ok(Running {
        addr,
        mqtt_addr,
        metrics_addr,
        notes,
        shutdown,
        task,
        accepting,
        service,
        ops,
    })
}

/// Accepts connections until `stop`, then lets them finish (up to 10 s).
/// Accept first, then decide: a connection over a limit is closed at
/// once, so idle sockets never stall the accept queue for others.
async fn accept(
    listener: TcpListener,
    protocol: Protocol,
    shared: Shared,
    mut stop: watch::Receiver<bool>,
) {
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
        let Some(slot) = shared.slots.admit(peer.ip()) else {
            shared.metrics.shed(protocol.label());
            tracing::debug!(%peer, "{MAX_CONNECTIONS_PER_PEER} connections open from this address, or all {MAX_CONNECTIONS} held by admitted clients; closing this one");
            continue;
        };
        let shared = shared.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            let slot = Arc::new(slot);
            let metrics = Arc::clone(&shared.metrics);
            let _open = metrics.opened(protocol.label());
            tokio::select! {
                () = serve_connection(shared, protocol, tcp, peer, Arc::clone(&slot), stop) => {}
                () = slot.evicted() => {
                    metrics.shed(protocol.label());
                    tracing::debug!(%peer, "closed to make room: the connection had proved nothing");
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        tracing::warn!("{protocol:?} connections still open after 10 s; closing them");
    }
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

/// hyper's HTTP/1.1 server settings.
fn http1() -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder
}

/// The hyper service for one connection: every request is routed with the
/// connection's evidence.
fn handler(
    service: Arc<Service>,
    connection: Arc<Connection>,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = hyper::Response<crate::http::Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<hyper::Response<crate::http::Body>, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |req| {
        let service = Arc::clone(&service);
        let connection = Arc::clone(&connection);
        async move {
            let _busy = connection.activity.begin();
            Ok::<_, Infallible>(route(service, connection.clone(), req).await)
        }
    })
}

async fn serve_connection(
    shared: Shared,
    protocol: Protocol,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    slot: Arc<Slot>,
    mut stop: watch::Receiver<bool>,
) {
    // A silent socket is closed after FIRST_BYTE_TIMEOUT, not held for the
    // whole handshake allowance.
    if !matches!(
        tokio::time::timeout(FIRST_BYTE_TIMEOUT, tcp.readable()).await,
        Ok(Ok(()))
    ) {
        tracing::debug!(%peer, "no data within {FIRST_BYTE_TIMEOUT:?}; closing");
        shared.metrics.timed_out(protocol.label(), Phase::FirstByte);
        return;
    }
    // Answers are small and each waits for the last: without this, Nagle's
    // algorithm holds a second reply (SUBACK after CONNACK) for the peer's
    // delayed ACK, ~40 ms.
    let _ = tcp.set_nodelay(true);
    let captured = EvidenceSlot::default();
    let config = match shared.tls.config(Arc::clone(&captured), protocol.alpn()) {
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
            shared.metrics.timed_out(protocol.label(), Phase::Handshake);
            return;
        }
    };
    let mut evidence = captured.lock().map(|e| e.clone()).unwrap_or_default();
    evidence.peer = Some(peer.ip());
    evidence.transport = match protocol {
        Protocol::Https => Transport::Https,
        Protocol::Mqtt => Transport::Mqtt,
    };
    slot.connected();
    let connection = Arc::new(Connection {
        evidence,
        slot: Some(slot),
        activity: Activity::default(),
        metrics: Arc::clone(&shared.metrics),
    });
    if protocol == Protocol::Mqtt {
        crate::mqtt::serve(shared.service, connection, stream, peer, stop).await;
        return;
    }
    let idle_timeout = shared.idle_timeout;
    let watched = Arc::clone(&connection);
    let conn = http1().serve_connection(TokioIo::new(stream), handler(shared.service, connection));
    tokio::pin!(conn);
    // hyper's header read timeout covers the first request only; between
    // requests of a kept-alive connection nothing would ever close it, so
    // a device (or anyone with a valid certificate) could hold slots for
    // ever. Idle for `idle_timeout` with no request in progress: closed.
    let check = (idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let mut stopping: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r { tracing::debug!(%peer, "connection: {e}"); }
                return;
            }
            _ = stop.changed(), if stopping.is_none() => {
                // A connection that has carried a request is closed after
                // the one in progress (hyper answers it with `Connection:
                // close`). A new one may have its first request on the
                // way: closing it now would reset a request the device
                // already sent, so it gets FIRST_REQUEST_GRACE to begin.
                if watched.activity.begun() {
                    break;
                }
                stopping = Some(tokio::time::Instant::now());
            }
            _ = tokio::time::sleep(if stopping.is_some() { Duration::from_millis(20) } else { check }) => {
                if let Some(since) = stopping {
                    if watched.activity.begun() || since.elapsed() >= FIRST_REQUEST_GRACE {
                        break;
                    }
                    continue;
                }
                if watched.activity.idle_for().is_some_and(|idle| idle >= idle_timeout) {
                    tracing::debug!(%peer, "idle for {idle_timeout:?}; closing");
                    watched.metrics.timed_out(protocol.label(), Phase::Idle);
                    break;
                }
            }
        }
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// Requests in progress on a connection and when the last one ended.
#[derive(Debug)]
pub(crate) struct Activity {
    in_flight: std::sync::atomic::AtomicUsize,
    begun: std::sync::atomic::AtomicBool,
    last: std::sync::Mutex<tokio::time::Instant>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            begun: std::sync::atomic::AtomicBool::new(false),
            last: std::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }
}

impl Activity {
    /// A request began; the guard ends it (also when the request is cancelled).
    fn begin(&self) -> ActivityGuard<'_> {
        self.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.begun.store(true, std::sync::atomic::Ordering::SeqCst);
        ActivityGuard(self)
    }

    /// Whether a request has begun on the connection.
    fn begun(&self) -> bool {
        self.begun.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How long the connection has had no request in progress (`None`
    /// while one is).
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            return None;
        }
        self.last.lock().ok().map(|last| last.elapsed())
    }
}

struct ActivityGuard<'a>(&'a Activity);

/// A request in progress that outlives its handler (a streamed response
/// body): the connection is busy until it is dropped.
pub(crate) struct Streaming(Arc<Connection>);

impl Streaming {
    /// Marks `connection` busy until the returned guard is dropped.
    pub(crate) fn begin(connection: &Arc<Connection>) -> Streaming {
        connection
            .activity
            .in_flight
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Streaming(Arc::clone(connection))
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        drop(ActivityGuard(&self.0.activity));
    }
}

impl Drop for ActivityGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut last) = self.0.last.lock() {
            *last = tokio::time::Instant::now();
        }
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// One connection as the routes see it: what the device proved in the
/// handshake (with the refusals decided on it), and its slot.
pub(crate) struct Connection {
    pub(crate) evidence: DeviceEvidence,
    slot: Option<Arc<Slot>>,
    activity: Activity,
    pub(crate) metrics: Arc<Metrics>,
}

impl Connection {
    /// The service admitted a device or an operator on this connection:
    /// it keeps its slot (see [`crate::slots`]).
    pub(crate) fn prove(&self) {
        if let Some(slot) = &self.slot {
            slot.prove();
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
    metrics: Arc<Metrics>,
    /// What start-up said (as [`Running::notes`]).
    pub notes: Vec<String>,
}

/// The TLS evidence a [`Harness`] request carries.
#[doc(hidden)]
pub type Evidence = DeviceEvidence;

/// The certificates an [`Evidence`] carries.
#[doc(hidden)]
pub type EvidenceChain = attest_service::Chain;

impl Harness {
    /// Opens the service as [`start`] does (data directory, config,
    /// enrollments), without TLS material or a listener.
    pub fn new(options: &Options) -> Result<Harness> {
        let (service, notes) = Service::open(&options.service())?;
        let metrics = Arc::new(Metrics::new(service.audit_trail()));
        Ok(Harness {
            service: Arc::new(service.with_observer(Arc::clone(&metrics) as _)),
            metrics,
            notes,
        })
    }

    /// Serves `request` (bytes as a client would send them on one
    /// connection) and returns everything the service wrote back.
    pub async fn serve(&self, request: &[u8], evidence: Evidence) -> Vec<u8> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(256 << 10);
        let connection = Connection {
            evidence,
            slot: None,
            activity: Activity::default(),
            metrics: Arc::clone(&self.metrics),
        };
        let handler = handler(Arc::clone(&self.service), Arc::new(connection));
        // The request is written whole and the write side shut: answer it
        // rather than treat the EOF as an abort.
        let conn = tokio::spawn(
            http1()
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
