//! What an operator scrapes and probes: Prometheus metrics and the health
//! probes, served over plain HTTP on `--metrics-listen`:
//!
//! - `GET /metrics`: Prometheus text format (0.0.4), by `prometheus-client`.
//! - `GET /healthz`: 200 while the process serves requests at all.
//! - `GET /readyz`: 200 when the store answers a read and commits a write
//!   and the audit trail's last write succeeded; 503 (with the reason) when
//!   not, and from the moment shutdown begins.
//!
//! Label values come from fixed sets (transport, outcome, refusal or DPS
//! error code, route template, status, listener): never a registration ID,
//! an address or anything else a caller chooses.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use attest_service::Service;
use attest_service::audit::AuditTrail;
use attest_service::events::{DecisionEvent, Observer};
use attest_service::stats::{self, ComponentFailure};

use crate::http::{Body, full};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegistrationLabels {
    transport: &'static str,
    outcome: &'static str,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabels {
    transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ManagementLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    api: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TimeoutLabels {
    listener: &'static str,
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// When a connection was closed for taking too long.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Phase {
    /// No first byte (TLS ClientHello) in time.
    FirstByte,
    /// The TLS handshake did not finish in time.
    Handshake,
    /// Idle (no request in progress) for `--idle-timeout`.
    Idle,
}

/// The service's metrics: counted by the transports and, through
/// [`Observer`], by the service's decisions.
pub(crate) struct Metrics {
    registry: Registry,
    registrations: Family<RegistrationLabels, Counter>,
    decision_seconds: Family<TransportLabels, Histogram>,
    management: Family<ManagementLabels, Counter>,
    unavailable: Family<ApiLabels, Counter>,
    open: Family<ListenerLabels, Gauge>,
    shed: Family<ListenerLabels, Counter>,
    timed_out: Family<TimeoutLabels, Counter>,
    snapshots: Family<KindLabels, Counter>,
    store_version: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Every metric, registered; `audit`: the trail whose line count is
    /// exported.
    pub(crate) fn new(audit: Option<Arc<AuditTrail>>) -> Metrics {
        let mut registry = Registry::with_prefix("attest");
        let registrations = Family::<RegistrationLabels, Counter>::default();
        registry.register(
            "registrations",
            "Device registration requests by transport, outcome (admitted, refused, not-decided) and refusal or DPS error code",
            registrations.clone(),
        );
        let decision_seconds = Family::<TransportLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_5, 2.0, 14))
        });
        registry.register_with_unit(
            "decision_duration",
            "Time from a registration request's decision start to its recorded answer",
            prometheus_client::registry::Unit::Seconds,
            decision_seconds.clone(),
        );
        let management = Family::<ManagementLabels, Counter>::default();
        registry.register(
            "management_requests",
            "Management API requests by route template and HTTP status",
            management.clone(),
        );
        let unavailable = Family::<ApiLabels, Counter>::default();
        registry.register(
            "unavailable_responses",
            "Answers 503 (store unreachable, component busy, audit trail not writable, over budget) by API",
            unavailable.clone(),
        );
        let open = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "connections_open",
            "Connections open, by listener",
            open.clone(),
        );
        let shed = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "connections_shed",
            "Connections closed at once or evicted because a connection limit was reached, by listener",
            shed.clone(),
        );
        let timed_out = Family::<TimeoutLabels, Counter>::default();
        registry.register(
            "connections_timed_out",
            "Connections closed for taking too long, by listener and phase (first-byte, handshake, idle)",
            timed_out.clone(),
        );
        let snapshots = Family::<KindLabels, Counter>::default();
        registry.register(
            "snapshots_served",
            "Edge snapshots begun for gateways, by kind (full, delta)",
            snapshots.clone(),
        );
        let store_version = Gauge::default();
        registry.register(
            "store_version",
            "The store's version (its newest write), which edge snapshots carry; read at each scrape",
            store_version.clone(),
        );
        registry.register_collector(Box::new(ProcessCounters { audit }));
        Metrics {
            registry,
            registrations,
            decision_seconds,
            management,
            unavailable,
            open,
            shed,
            timed_out,
            snapshots,
            store_version,
        }
    }

    /// An edge snapshot was begun (`delta`: with `?since=`).
    pub(crate) fn snapshot(&self, delta: bool) {
        let kind = if delta { "delta" } else { "full" };
        self.snapshots.get_or_create(&KindLabels { kind }).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!("encoding metrics: {e}");
        }
        out
    }

    /// A management request answered `status` on `route` (a template).
    pub(crate) fn management(&self, route: &'static str, status: u16) {
        self.management
            .get_or_create(&ManagementLabels { route, status })
            .inc();
    }

    /// A 503 answered on `api` (`device`, `management`, `edge`).
    pub(crate) fn unavailable(&self, api: &'static str) {
        self.unavailable.get_or_create(&ApiLabels { api }).inc();
    }

    /// A connection was admitted on `listener`; open until the guard drops.
    pub(crate) fn opened(self: &Arc<Self>, listener: &'static str) -> OpenConnection {
        self.open.get_or_create(&ListenerLabels { listener }).inc();
        OpenConnection {
            metrics: Arc::clone(self),
            listener,
        }
    }

    /// A connection was refused or evicted by a limit.
    pub(crate) fn shed(&self, listener: &'static str) {
        self.shed.get_or_create(&ListenerLabels { listener }).inc();
    }

    /// A connection was closed for taking too long.
    pub(crate) fn timed_out(&self, listener: &'static str, phase: Phase) {
        let phase = match phase {
            Phase::FirstByte => "first-byte",
            Phase::Handshake => "handshake",
            Phase::Idle => "idle",
        };
        self.timed_out
            .get_or_create(&TimeoutLabels { listener, phase })
            .inc();
    }
}

/// An open connection, counted until dropped.
pub(crate) struct OpenConnection {
    metrics: Arc<Metrics>,
    listener: &'static str,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics
            .open
            .get_or_create(&ListenerLabels {
                listener: self.listener,
            })
            .dec();
    }
}

impl Observer for Metrics {
    fn decision(&self, event: &DecisionEvent<'_>) {
        let transport = event.transport.as_str();
        self.registrations
            .get_or_create(&RegistrationLabels {
                transport,
                outcome: event.verdict.outcome(),
                code: event.verdict.code().unwrap_or_default(),
            })
            .inc();
        self.decision_seconds
            .get_or_create(&TransportLabels { transport })
            .observe(event.elapsed.as_secs_f64());
    }
}

/// The service's process-wide counters ([`attest_service::stats`]) and the
/// audit trail's length, read at each scrape.
#[derive(Debug)]
struct ProcessCounters {
    audit: Option<Arc<AuditTrail>>,
}

impl Collector for ProcessCounters {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let counter = |encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64| {
            let c = ConstCounter::new(value);
            let m = encoder.encode_descriptor(name, help, None, c.metric_type())?;
            c.encode(m)
        };
        counter(
            &mut encoder,
            "store_errors",
            "Store operations that failed (answered 500 or 503)",
            stats::store_errors(),
        )?;
        counter(
            &mut encoder,
            "component_calls",
            "Decision calls into the policy component",
            stats::component_calls(),
        )?;
        {
            let kind = ConstCounter::new(0u64);
            let mut family = encoder.encode_descriptor(
                "component_failures",
                "Component calls that ended without a verdict, by kind (fuel, deadline, busy, trap, other)",
                None,
                kind.metric_type(),
            )?;
            for kind in ComponentFailure::ALL {
                let labels = KindLabels {
                    kind: kind.as_str(),
                };
                ConstCounter::new(stats::component_failures(kind))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        if let Some(audit) = &self.audit {
            counter(
                &mut encoder,
                "audit_lines",
                "Lines in the audit trail, counting those of the file it continues",
                audit.lines(),
            )?;
        }
        Ok(())
    }
}

/// The operator's listener: `/metrics`, `/healthz`, `/readyz`.
pub(crate) struct Ops {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) service: Arc<Service>,
    /// Cleared when shutdown begins: `/readyz` answers 503 from then on.
    pub(crate) accepting: Arc<AtomicBool>,
}

/// Serves the operator's listener until `stop`.
pub(crate) async fn serve(listener: TcpListener, ops: Arc<Ops>, mut stop: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        let (tcp, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("metrics listener: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let ops = Arc::clone(&ops);
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let ops = Arc::clone(&ops);
                async move { Ok::<_, Infallible>(answer(&ops, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .keep_alive(false)
                .serve_connection(TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
        });
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

async fn answer(ops: &Ops, req: Request<hyper::body::Incoming>) -> Response<Body> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            // The store's version: one read off the reactor, bounded.
            let service = Arc::clone(&ops.service);
            if let Ok(Ok(Ok(version))) = tokio::time::timeout(
                Duration::from_secs(5),
                tokio::task::spawn_blocking(move || service.store_version()),
            )
            .await
            {
                ops.metrics
                    .store_version
                    .set(i64::try_from(version).unwrap_or(i64::MAX));
            }
            let mut r = text(StatusCode::OK, ops.metrics.encode());
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(
                    prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                ),
            );
            r
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => {
            if !ops.accepting.load(Ordering::SeqCst) {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: shutting down\n".into(),
                );
            }
            let service = Arc::clone(&ops.service);
            let ready = tokio::time::timeout(
                Duration::from_secs(5),
                tokio::task::spawn_blocking(move || service.ready()),
            )
            .await;
            match ready {
                Ok(Ok(Ok(()))) => text(StatusCode::OK, "ready\n".into()),
                Ok(Ok(Err(why))) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {why}\n"),
                ),
                Ok(Err(e)) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: the check failed: {e}\n"),
                ),
                Err(_) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: the store did not answer within 5 s\n".into(),
                ),
            }
        }
        other => text(
            StatusCode::NOT_FOUND,
            format!("no {other} here: /metrics, /healthz, /readyz\n"),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Binds the operator's listener.
pub(crate) fn bind(addr: SocketAddr) -> Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot listen on {addr} (--metrics-listen)"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}
