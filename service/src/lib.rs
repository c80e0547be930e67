//! attest's provisioning service, without a transport: the DPS device
//! operations (register, operation status, registration status) and the
//! management operations (enrollments, registration records, CA
//! certificates), over a [`Store`] and the policy component.
//!
//! Every operation is one synchronous call that returns a [`Reply`] or a
//! [`DpsError`]; a transport (host-http's HTTPS and MQTT) runs it off its
//! reactor (one `spawn_blocking`) and frames the answer. No hyper, no TLS
//! here: what a device proved in its handshake arrives as [`DeviceEvidence`].
//!
//! The admission decision is the component's (`policy-host`); what may be
//! recorded of it is the core's ([`policy_host::Stage`]); the documents
//! are `attest-dps`'s.
#![deny(unsafe_code)]

pub mod audit;
pub mod budget;
mod config;
mod device;
pub mod edge;
pub mod events;
pub mod files;
mod index;
mod management;
pub use management::crls::{CrlRefused, crl_der};
pub use policy_host::CrlDetails;
pub mod postgres;
pub mod replica;
pub mod snapshot;
mod sql;
pub mod sqlite;
pub mod stats;
pub mod store;

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use serde_json::Value;

use attest_dps::{DpsError, ErrorKind};
use policy_host::Policy;

pub use attest_dps::sas::SasPolicy;
pub use config::ServiceConfig;
pub use device::{Chain, Decided, DeviceEvidence};
pub use index::Seeded;
pub use store::Store;

/// How to open the service.
#[derive(Clone, Debug)]
pub struct Options {
    /// The DPS ID scope devices name in their requests.
    pub id_scope: String,
    /// Data directory: database and configuration.
    pub data: PathBuf,
    /// Enrollment set (DPS JSON) to seed at start: entries the store does
    /// not have are written; stored ones are never overwritten.
    pub enrollments: Option<PathBuf>,
    /// A PostgreSQL URL (`postgres://user@host/db`): store everything there,
    /// shared with other replicas. `None`: SQLite in `data`.
    pub database: Option<String>,
    /// Positive signature checks the policy's host remembers
    /// ([`policy_host::SignatureMemo`]); 0: none.
    pub signature_memo: usize,
    /// The edge snapshot signing key (Ed25519 PKCS#8 PEM); `None`:
    /// `snapshot-key.pem` in `data`, created at first start.
    pub snapshot_key: Option<PathBuf>,
    /// Versions of deletes kept for snapshot deltas
    /// ([`store::DEFAULT_HISTORY`]): a gateway further behind takes a full
    /// snapshot.
    pub snapshot_history: u64,
    /// The audit trail ([`audit`]): a file (appended to; its chain
    /// continues) or `-` for standard output. `None`: no audit trail.
    pub audit: Option<PathBuf>,
}

/// Signature checks remembered by default: the CA-to-CA links of a few
/// thousand lines, about 100 KiB.
pub const DEFAULT_SIGNATURE_MEMO: usize = 4096;

/// A successful answer: a status, an optional JSON body, and the DPS
/// headers that go with it.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// HTTP status (200, 204).
    pub status: u16,
    /// The JSON body, if any.
    pub body: Option<Value>,
    /// The entity's etag (`ETag`).
    pub etag: Option<String>,
    /// The next page's token (`x-ms-continuation`).
    pub continuation: Option<String>,
    /// The item type of a query page (`x-ms-item-type`).
    pub item_type: Option<&'static str>,
    /// The page size of a query page (`x-ms-max-item-count`).
    pub max_item_count: Option<usize>,
    /// The etag the written entity had before this write (`None`: it did
    /// not exist, or the call wrote nothing). Not sent on the wire: the
    /// audit trail records it beside the new one.
    pub replaced_etag: Option<String>,
}

impl Reply {
    /// 200 with a body.
    pub fn ok(body: Value) -> Reply {
        Reply {
            status: 200,
            body: Some(body),
            etag: None,
            continuation: None,
            item_type: None,
            max_item_count: None,
            replaced_etag: None,
        }
    }

    /// 200 with a body and its `etag` field as the ETag.
    pub fn entity(body: Value) -> Reply {
        let etag = body.get("etag").and_then(Value::as_str).map(str::to_string);
        Reply {
            etag,
            ..Reply::ok(body)
        }
    }

    /// This reply with the entity's etag (`ETag`).
    pub fn with_etag(self, etag: String) -> Reply {
        Reply {
            etag: Some(etag),
            ..self
        }
    }

    /// This reply, recording the etag the entity had before the write.
    pub fn replacing(self, replaced_etag: Option<String>) -> Reply {
        Reply {
            replaced_etag,
            ..self
        }
    }

    /// 204, no body.
    pub fn no_content() -> Reply {
        Reply {
            status: 204,
            body: None,
            etag: None,
            continuation: None,
            item_type: None,
            max_item_count: None,
            replaced_etag: None,
        }
    }
}

/// What an operation answers.
pub type Answer = Result<Reply, DpsError>;

/// The provisioning service: the policy component, the store, the
/// configuration.
pub struct Service {
    policy: Policy,
    store: Box<dyn Store>,
    id_scope: String,
    config: ServiceConfig,
    refused_time: budget::RefusedTime,
    refusal_records: budget::RefusalRecords,
    snapshot_key: Option<std::sync::Arc<snapshot::SigningKey>>,
    snapshot_streams: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    audit: Option<std::sync::Arc<audit::AuditTrail>>,
    observer: Option<std::sync::Arc<dyn events::Observer>>,
}

impl Service {
    /// Opens the service in `options.data`: loads (or creates) the
    /// configuration, opens the store (SQLite in `data`, or PostgreSQL),
    /// loads the policy component,
    /// seeds `options.enrollments` (see [`Service::seed_file`]), and derives the lookup keys
    /// decisions read (see `index`).
    /// Blocking (a PostgreSQL store must not be opened on an async
    /// runtime's thread). Returns what to tell the operator (a problem loading a stored entry
    /// is an `ERROR:` note; the entry's devices are refused).
    pub fn open(options: &Options) -> Result<(Service, Vec<String>)> {
        check_id_scope(&options.id_scope)?;
        std::fs::create_dir_all(&options.data)
            .with_context(|| format!("cannot create {}", options.data.display()))?;
        let mut notes = Vec::new();
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
        let snapshot_key = match &options.snapshot_key {
            Some(path) => snapshot::SigningKey::load(path)?,
            None => {
                let path = Service::snapshot_key_path(&options.data);
                let (key, created) = snapshot::SigningKey::load_or_create(&path)?;
                if created {
                    notes.push(format!(
                        "created the edge snapshot signing key {} (gateways trust its public key: host-http snapshot-key --data {})",
                        path.display(),
                        options.data.display()
                    ));
                }
                key
            }
        };
        let store: Box<dyn Store> = match options.database.as_deref() {
            None => Box::new(
                sqlite::SqliteStore::open(&options.data)?.with_history(options.snapshot_history),
            ),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Box::new(postgres::PostgresStore::open(url)?.with_history(options.snapshot_history))
            }
            Some(_) => {
                return Err(anyhow!(
                    "the database URL must start with postgres:// (SQLite needs none: it lives in --data)"
                ));
            }
        };
        let policy = if options.signature_memo == 0 {
            Policy::new()
        } else {
            let memo =
                policy_host::SignatureMemo::new(policy_host::AwsLcVerifier, options.signature_memo);
            Policy::with_verifier(
                policy_host::Limits::default(),
                policy_host::CacheMode::default(),
                std::sync::Arc::new(memo),
            )
        };
        let service = Service::new(
            policy.context("loading the policy component")?,
            store,
            options.id_scope.clone(),
            config,
        )
        .with_snapshot_key(snapshot_key);
        if let Some(path) = &options.enrollments {
            let seeded = service.seed_file(path)?;
            notes.push(format!(
                "seeded {} individual enrollment(s) and {} enrollment group(s) from {} (entries already stored are kept as stored)",
                seeded.individuals,
                seeded.groups,
                path.display()
            ));
            if !seeded.kept.is_empty() {
                notes.push(format!(
                    "WARNING: {} differ(s) from {} and kept the stored version (the store may be newer: change entries through the management API, or delete them there to seed them again): {}",
                    if seeded.kept.len() == 1 { "1 stored entry".to_string() } else { format!("{} stored entries", seeded.kept.len()) },
                    path.display(),
                    seeded.kept.join(", ")
                ));
            }
        }
        for problem in service.derive_lookup_keys()? {
            notes.push(format!("ERROR: {problem}"));
        }
        let service = match &options.audit {
            Some(path) => {
                let trail = audit::AuditTrail::open(path)?;
                if path.as_os_str() != "-" {
                    notes.push(format!(
                        "writing the audit trail {} ({} line(s) so far; check it with: host-cli audit verify {})",
                        path.display(),
                        trail.lines(),
                        path.display()
                    ));
                }
                service.with_audit(std::sync::Arc::new(trail))
            }
            None => service,
        };
        Ok((service, notes))
    }

    /// A service over any store (whose lookup keys are current: see
    /// [`Service::derive_lookup_keys`]).
    pub fn new(
        policy: Policy,
        store: Box<dyn Store>,
        id_scope: String,
        config: ServiceConfig,
    ) -> Service {
        Service {
            policy,
            store,
            id_scope,
            config,
            refused_time: budget::RefusedTime::default(),
            refusal_records: budget::RefusalRecords::default(),
            snapshot_key: None,
            snapshot_streams: std::sync::Arc::default(),
            audit: None,
            observer: None,
        }
    }

    /// The service writing an audit trail.
    pub fn with_audit(mut self, trail: std::sync::Arc<audit::AuditTrail>) -> Service {
        self.audit = Some(trail);
        self
    }

    /// The service reporting its decisions to `observer` (metrics).
    pub fn with_observer(mut self, observer: std::sync::Arc<dyn events::Observer>) -> Service {
        self.observer = Some(observer);
        self
    }

    /// The audit trail, if the service writes one.
    pub fn audit_trail(&self) -> Option<std::sync::Arc<audit::AuditTrail>> {
        self.audit.clone()
    }

    /// Records a management write in the audit trail (if there is one)
    /// before it is answered; a line that cannot be written is a 503.
    pub fn audit_management(&self, event: &audit::ManagementEvent<'_>) -> Result<(), DpsError> {
        match &self.audit {
            Some(trail) => trail.management(event).map_err(unaudited),
            None => Ok(()),
        }
    }

    /// Whether the service can serve: the store answers a read and commits
    /// a write (one row, the probe's own), and the audit trail's last
    /// write succeeded. Blocking. `Err` says what is wrong.
    ///
    /// The answer goes to an unauthenticated probe: it names what failed,
    /// never the store's own error (a host name, a user); that is logged.
    pub fn ready(&self) -> Result<(), String> {
        self.store
            .read_with(|tx| tx.versions().map(|_| ()))
            .map_err(|e| {
                tracing::warn!("readiness: the store cannot be read: {e:#}");
                "the store cannot be read (the service's log says why)".to_string()
            })?;
        self.store
            .write_with(|tx| tx.put_edge_state(READY_PROBE_KEY, &now_rfc3339()))
            .map_err(|e| {
                tracing::warn!("readiness: the store cannot be written: {e:#}");
                "the store cannot be written (the service's log says why)".to_string()
            })?;
        if let Some(trail) = &self.audit {
            trail.health()?;
        }
        Ok(())
    }
}

impl Service {
    /// The store's version (its newest write; edge snapshots carry it). Blocking.
    pub fn store_version(&self) -> Result<u64, String> {
        self.store
            .read_with(|tx| tx.versions())
            .map(|v| v.version)
            .map_err(|e| {
                tracing::warn!("the store cannot be read: {e:#}");
                "the store cannot be read".to_string()
            })
    }
}

/// The row [`Service::ready`] writes (in the store's key-value table).
const READY_PROBE_KEY: &str = "attest:ready-probe";

/// The answer when the audit trail cannot take a request's line.
pub(crate) fn unaudited(e: anyhow::Error) -> DpsError {
    tracing::error!("audit trail: {e:#}");
    DpsError::new(
        ErrorKind::Unavailable,
        "the request could not be written to the audit trail; it is not acknowledged; retry shortly",
    )
}

impl Service {
    /// The service with a key to sign edge snapshots with (without one,
    /// it serves none).
    pub fn with_snapshot_key(mut self, key: snapshot::SigningKey) -> Service {
        self.snapshot_key = Some(std::sync::Arc::new(key));
        self
    }

    /// The ID scope devices must name.
    pub fn id_scope(&self) -> &str {
        &self.id_scope
    }

    /// The service configuration.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }
}

/// `id_scope` as DPS issues them: 1 to 64 ASCII letters and digits.
fn check_id_scope(id_scope: &str) -> Result<()> {
    if id_scope.is_empty()
        || id_scope.len() > 64
        || !id_scope.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(anyhow!(
            "--id-scope {id_scope:?} must be 1 to 64 ASCII letters and digits (e.g. 0ne00000001)"
        ));
    }
    Ok(())
}

/// A store failure, logged with its cause and answered without it.
fn internal(what: &str, e: &anyhow::Error) -> DpsError {
    stats::store_error();
    tracing::error!("{what}: {e:#}");
    DpsError::new(ErrorKind::Internal, what)
}

/// A store that cannot be reached: 503, retry (nothing was decided).
fn unavailable(what: &str, e: &anyhow::Error) -> DpsError {
    stats::store_error();
    tracing::error!("{what}: {e:#}");
    DpsError::new(ErrorKind::Unavailable, format!("{what}; retry shortly"))
}

/// `n` random bytes from the system generator; its failure is an error,
/// never a weaker value.
fn random<const N: usize>() -> Result<[u8; N], DpsError> {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| {
        tracing::error!("the system random generator failed");
        DpsError::new(
            ErrorKind::Internal,
            "no system randomness; nothing was changed",
        )
    })?;
    Ok(b)
}

/// A random identifier (UUID v4 form).
pub fn random_id() -> Result<String, DpsError> {
    let mut b = random::<16>()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// A fresh etag.
fn new_etag() -> Result<String, DpsError> {
    Ok(format!("\"{}\"", hex::encode(random::<8>()?)))
}

/// Now, Unix seconds.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Now, RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    attest_dps::documents::rfc3339(now_unix())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_v4_and_etags_differ() {
        let id = random_id().unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(new_etag().unwrap(), new_etag().unwrap());
    }

    #[test]
    fn id_scopes() {
        assert!(check_id_scope("0ne00000001").is_ok());
        assert!(check_id_scope("").is_err());
        assert!(check_id_scope("a/b").is_err());
        assert!(check_id_scope(&"a".repeat(65)).is_err());
    }
}
