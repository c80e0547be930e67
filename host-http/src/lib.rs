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

mod device;
mod http;
mod management;
mod mqtt;
pub mod server;
mod slots;
mod tls;

pub use attest_service::ServiceConfig;
pub use http::{MAX_BODY, MAX_MANAGEMENT_BODY};
/// Largest MQTT packet the MQTT device transport accepts, bytes.
pub const MAX_MQTT_PACKET: usize = mqtt::MAX_PACKET;
pub use server::{Evidence, EvidenceChain, Harness, Running, start};
pub use slots::{MAX_CONNECTIONS, MAX_CONNECTIONS_PER_PEER, MAX_UNPROVEN};

/// How to start the service.
#[derive(Clone, Debug)]
pub struct Options {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Address for the DPS MQTT device transport (DPS uses port 8883);
    /// `None`: MQTT is not served.
    pub mqtt_listen: Option<SocketAddr>,
    /// The DPS ID scope devices use in their URLs.
    pub id_scope: String,
    /// Data directory: database, configuration, development TLS material.
    pub data: PathBuf,
    /// Server certificate chain (PEM); a development one is made if absent.
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Enrollment set (DPS JSON) to seed at start: entries the store does
    /// not have are written; stored ones are never overwritten.
    pub enrollments: Option<PathBuf>,
    /// PostgreSQL URL; `None`: SQLite in `data`.
    pub database: Option<String>,
}

impl Options {
    /// The transport-independent part.
    fn service(&self) -> attest_service::Options {
        attest_service::Options {
            id_scope: self.id_scope.clone(),
            data: self.data.clone(),
            enrollments: self.enrollments.clone(),
            database: self.database.clone(),
        }
    }
}
