//! attest's provisioning service over HTTPS: the DPS device API
//! (registration over mutual TLS) and the DPS management API (SAS-token
//! authenticated) on one listener.
//!
//! This crate is the HTTP transport only: hyper and rustls adapters over
//! [`attest_service::Service`], which holds every rule. Each request is
//! routed to one blocking call into the service, and its [`Reply`] or
//! [`DpsError`] is framed as an HTTP response.
//!
//! - [`server`]: listener, connection limits, TLS handshake, lifecycle.
//! - [`tls`]: the server certificate and the client-evidence capture.
//! - `device`, `management`: the HTTP routes; `mqtt`: the DPS MQTT device
//!   transport (same TLS, limits and service).
//!
//! [`Reply`]: attest_service::Reply
//! [`DpsError`]: attest_dps::DpsError

use std::net::SocketAddr;
use std::path::PathBuf;

mod console;
mod crl_fetch;
mod device;
mod edge;
mod http;
mod management;
mod mqtt;
mod ops;
pub mod server;
mod slots;
mod tls;

pub use attest_service::ServiceConfig;

/// Every route the HTTPS listener serves, as `METHOD /path/{param}`: the
/// management API's (DPS's and attest's own), the document and the
/// console, and the DPS device API. docs/openapi.json documents exactly
/// these (a test holds them equal).
pub fn routes() -> Vec<&'static str> {
    let mut all = management::ROUTES.to_vec();
    all.extend([
        "GET /openapi.json",
        "GET /console/",
        "PUT /{idScope}/registrations/{registrationId}/register",
        "GET /{idScope}/registrations/{registrationId}/operations/{operationId}",
        "POST /{idScope}/registrations/{registrationId}",
    ]);
    all
}

/// The OpenAPI 3.1 document of the HTTPS listener (docs/openapi.json),
/// served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");
pub use http::{MAX_BODY, MAX_MANAGEMENT_BODY};
/// Largest MQTT packet the MQTT device transport accepts, bytes.
pub const MAX_MQTT_PACKET: usize = mqtt::MAX_PACKET;
pub use attest_service::DEFAULT_SIGNATURE_MEMO;
pub use server::{Evidence, EvidenceChain, Harness, Running, start};
pub use slots::{MAX_CONNECTIONS, MAX_CONNECTIONS_PER_PEER, MAX_UNPROVEN};

/// How to start the service: also `host-http`'s command line (each field
/// is the flag of the same name), so the options are declared once.
#[derive(Clone, Debug, clap::Args)]
pub struct Options {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Also serve the DPS device API over MQTT 3.1.1 on this address (DPS: port 8883),
    /// with the same TLS settings, store and limits.
    #[arg(long)]
    pub mqtt_listen: Option<SocketAddr>,
    /// DPS ID scope devices use in their URLs.
    #[arg(long, default_value = "0ne00000001")]
    pub id_scope: String,
    /// Data directory: database, config.json (management key), dev TLS material.
    #[arg(long, default_value = "attest-data")]
    pub data: PathBuf,
    /// Server certificate chain, PEM (default: a development certificate in DATA/tls).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Server private key, PEM.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Enrollment set in DPS JSON shapes to seed at start: entries the store
    /// does not have yet; a stored entry is never overwritten by the file.
    #[arg(long)]
    pub enrollments: Option<PathBuf>,
    /// PostgreSQL URL (postgres://user[:password]@host[:port]/db) shared by several
    /// replicas; default: SQLite in --data. TLS: add ?sslmode=require (the server's
    /// certificate and name verified against the system's roots) and
    /// &sslrootcert=/path/ca.pem for a private CA. Prefer the environment variable,
    /// which keeps a password out of `ps`.
    #[arg(long, env = "ATTEST_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
    /// Positive signature checks to remember (CA-to-CA links seen again on every
    /// registration of a line; a device's own leaf and proof are always checked);
    /// 0: off. Kept in this process's memory only.
    #[arg(long, default_value_t = attest_service::DEFAULT_SIGNATURE_MEMO)]
    pub signature_memo: usize,
    /// Seconds an HTTPS connection may sit idle (no request in progress)
    /// before the service closes it, proven or not; a device reconnects
    /// for its next registration.
    #[arg(long, default_value_t = DEFAULT_IDLE_TIMEOUT_SECONDS, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: u64,
    /// The edge snapshot signing key (Ed25519, PKCS#8 PEM); default:
    /// DATA/snapshot-key.pem, created at first start. Replicas on one
    /// PostgreSQL database must share one key (gateways trust one).
    #[arg(long)]
    pub snapshot_key: Option<PathBuf>,
    /// Versions of deletes remembered for snapshot deltas (`?since=N`); a
    /// gateway further behind is told to take a full snapshot.
    #[arg(long, default_value_t = attest_service::store::DEFAULT_HISTORY, value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_history: u64,
    /// Serve Prometheus metrics (/metrics) and the health probes (/healthz,
    /// /readyz) over plain HTTP on this address (keep it on a private network).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Write the audit trail: one hash-chained JSON line per decision and per
    /// management write, to FILE (appended to; its chain continues) or - for
    /// standard output. Check it with `host-cli audit verify FILE`.
    #[arg(long, value_name = "FILE|-")]
    pub audit: Option<PathBuf>,
}

/// Default of `--idle-timeout`, seconds.
pub const DEFAULT_IDLE_TIMEOUT_SECONDS: u64 = 60;

impl Options {
    /// The transport-independent part.
    fn service(&self) -> attest_service::Options {
        attest_service::Options {
            id_scope: self.id_scope.clone(),
            data: self.data.clone(),
            enrollments: self.enrollments.clone(),
            database: self.database.clone(),
            signature_memo: self.signature_memo,
            snapshot_key: self.snapshot_key.clone(),
            snapshot_history: self.snapshot_history,
            audit: self.audit.clone(),
        }
    }
}
