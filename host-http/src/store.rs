//! The embedded store: SQLite in the data directory, WAL journal,
//! `synchronous=FULL`, so a committed write survives a crash or power loss
//! before the response that acknowledges it is sent.
//!
//! Documents are stored as the JSON the APIs return (DPS shapes), with the
//! columns needed to look them up. One connection behind a mutex: SQLite
//! has one writer anyway, and it serialises concurrent registrations of
//! the same device (each is one transaction: read record, decide hub,
//! write record and operation).

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::Value;

/// Enrollment kinds as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Individual,
    Group,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Individual => "individual",
            Kind::Group => "group",
        }
    }
}

/// A stored document and its etag.
#[derive(Clone, Debug)]
pub(crate) struct Doc {
    pub(crate) doc: Value,
    pub(crate) etag: String,
}

/// A stored CA certificate.
#[derive(Clone, Debug)]
pub(crate) struct CaCert {
    pub(crate) name: String,
    pub(crate) der: Vec<u8>,
    pub(crate) verified: bool,
    pub(crate) code: Option<String>,
    pub(crate) etag: String,
    pub(crate) created: String,
}

/// The store.
#[derive(Debug)]
pub(crate) struct Store {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS enrollments (
    kind TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL, etag TEXT NOT NULL,
    PRIMARY KEY (kind, id));
CREATE TABLE IF NOT EXISTS certificates (
    name TEXT PRIMARY KEY, der BLOB NOT NULL, verified INTEGER NOT NULL,
    code TEXT, etag TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS registrations (
    id TEXT PRIMARY KEY, group_id TEXT, doc TEXT NOT NULL, etag TEXT NOT NULL,
    leaf_sha256 BLOB);
CREATE INDEX IF NOT EXISTS registrations_by_group ON registrations (group_id, id);
CREATE TABLE IF NOT EXISTS operations (
    id TEXT PRIMARY KEY, registration_id TEXT NOT NULL, leaf_sha256 BLOB NOT NULL,
    doc TEXT NOT NULL, created INTEGER);
";

/// Columns added after the first release of the schema: (table, column,
/// definition). Added at start when missing; rows from before have NULL,
/// which every reader treats as "unknown", never as a match.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    // The SHA-256 of the device certificate a record belongs to.
    ("registrations", "leaf_sha256", "BLOB"),
    // When an operation was created (Unix seconds), for expiry.
    ("operations", "created", "INTEGER"),
];

const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS operations_by_created ON operations (created);
CREATE INDEX IF NOT EXISTS operations_by_registration ON operations (registration_id);
";

/// How long an operation stays queryable, seconds. DPS keeps operations
/// only for polling, which clients do within seconds of registering.
pub(crate) const OPERATION_TTL: i64 = 3600;

/// A registration record and the certificate it belongs to.
#[derive(Clone, Debug)]
pub(crate) struct Registration {
    pub(crate) doc: Doc,
    /// SHA-256 of the device certificate that registered; `None` for
    /// records from before it was kept (they belong to no certificate).
    pub(crate) leaf_sha256: Option<Vec<u8>>,
}

impl Registration {
    /// Whether the record belongs to the certificate with this SHA-256.
    pub(crate) fn owned_by(&self, leaf_sha256: &[u8]) -> bool {
        self.leaf_sha256.as_deref() == Some(leaf_sha256)
    }
}

impl Store {
    /// Opens (creating if needed) `attest.db` in `dir`, readable by its
    /// owner only (SQLite gives the WAL and shared-memory files the same
    /// permissions).
    pub(crate) fn open(dir: &Path) -> Result<Store> {
        let path = dir.join("attest.db");
        private_file(&path)?;
        let conn =
            Connection::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)
            .with_context(|| format!("cannot initialise {}", path.display()))?;
        for (table, column, definition) in ADDED_COLUMNS {
            let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
            let present = stmt
                .query_map([], |r| r.get::<_, String>(1))?
                .collect::<rusqlite::Result<Vec<_>>>()?
                .iter()
                .any(|c| c == column);
            if !present {
                conn.execute_batch(&format!(
                    "ALTER TABLE {table} ADD COLUMN {column} {definition}"
                ))
                .with_context(|| format!("cannot upgrade {}", path.display()))?;
            }
        }
        conn.execute_batch(INDEXES)
            .with_context(|| format!("cannot initialise {}", path.display()))?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction half
        // done (rusqlite rolls back on drop), so a poisoned lock is usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in one IMMEDIATE transaction (committed if `f` succeeds).
    pub(crate) fn transaction<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    pub(crate) fn enrollment(&self, kind: Kind, id: &str) -> Result<Option<Doc>> {
        get_enrollment(&self.lock(), kind, id)
    }

    /// Every enrollment of a kind, ordered by ID.
    pub(crate) fn enrollments(&self, kind: Kind) -> Result<Vec<Doc>> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare("SELECT id, doc, etag FROM enrollments WHERE kind = ?1 ORDER BY id")?;
        let rows = stmt.query_map(params![kind.as_str()], doc_row)?;
        rows.map(|r| r.map_err(Into::into).and_then(parse_doc))
            .collect()
    }

    /// Every enrollment of a kind as stored, each document parsed on its
    /// own: one that is not JSON any more is reported, not fatal to the rest.
    pub(crate) fn enrollments_raw(&self, kind: Kind) -> Result<Vec<(String, Result<Value>)>> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare("SELECT id, doc FROM enrollments WHERE kind = ?1 ORDER BY id")?;
        let rows = stmt.query_map(params![kind.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        rows.map(|r| {
            let (id, doc) = r?;
            Ok((
                id,
                serde_json::from_str(&doc).context("stored document is not JSON"),
            ))
        })
        .collect()
    }

    pub(crate) fn certificate(&self, name: &str) -> Result<Option<CaCert>> {
        get_certificate(&self.lock(), name)
    }

    pub(crate) fn certificates(&self) -> Result<Vec<CaCert>> {
        all_certificates(&self.lock())
    }

    pub(crate) fn registration(&self, id: &str) -> Result<Option<Doc>> {
        get_registration(&self.lock(), id)
    }

    /// A registration record with the certificate it belongs to.
    pub(crate) fn registration_owned(&self, id: &str) -> Result<Option<Registration>> {
        get_registration_owned(&self.lock(), id)
    }

    /// Registration records of a group, ordered by ID.
    pub(crate) fn registrations_of_group(&self, group_id: &str) -> Result<Vec<Doc>> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT id, doc, etag FROM registrations WHERE group_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map(params![group_id], doc_row)?;
        rows.map(|r| r.map_err(Into::into).and_then(parse_doc))
            .collect()
    }

    /// An operation that has not expired at `now`: (registration ID,
    /// leaf SHA-256, document).
    pub(crate) fn operation(&self, id: &str, now: i64) -> Result<Option<(String, Vec<u8>, Value)>> {
        let conn = self.lock();
        conn.query_row(
            "SELECT registration_id, leaf_sha256, doc FROM operations
             WHERE id = ?1 AND created >= ?2",
            params![id, now - OPERATION_TTL],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, String>(2)?,
                ))
            },
        )
        .optional()?
        .map(|(reg, leaf, doc)| Ok((reg, leaf, serde_json::from_str(&doc)?)))
        .transpose()
    }
}

fn doc_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

fn parse_doc((_id, doc, etag): (String, String, String)) -> Result<Doc> {
    Ok(Doc {
        doc: serde_json::from_str(&doc).context("stored document is not JSON")?,
        etag,
    })
}

fn ca_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CaCert> {
    Ok(CaCert {
        name: r.get(0)?,
        der: r.get(1)?,
        verified: r.get::<_, i64>(2)? != 0,
        code: r.get(3)?,
        etag: r.get(4)?,
        created: r.get(5)?,
    })
}

pub(crate) fn get_enrollment(conn: &Connection, kind: Kind, id: &str) -> Result<Option<Doc>> {
    conn.query_row(
        "SELECT id, doc, etag FROM enrollments WHERE kind = ?1 AND id = ?2",
        params![kind.as_str(), id],
        doc_row,
    )
    .optional()?
    .map(parse_doc)
    .transpose()
}

pub(crate) fn put_enrollment(
    conn: &Connection,
    kind: Kind,
    id: &str,
    doc: &Value,
    etag: &str,
) -> Result<()> {
    conn.execute(
        "INSERT INTO enrollments (kind, id, doc, etag) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (kind, id) DO UPDATE SET doc = excluded.doc, etag = excluded.etag",
        params![kind.as_str(), id, doc.to_string(), etag],
    )?;
    Ok(())
}

pub(crate) fn delete_enrollment(conn: &Connection, kind: Kind, id: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM enrollments WHERE kind = ?1 AND id = ?2",
        params![kind.as_str(), id],
    )?;
    Ok(())
}

/// Every enrollment group document (IDs with their documents; ones that
/// are not JSON are left out: they cannot reference or claim anything).
pub(crate) fn group_docs(conn: &Connection) -> Result<Vec<(String, Value)>> {
    let mut stmt = conn.prepare("SELECT id, doc FROM enrollments WHERE kind = 'group'")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (id, doc) = row?;
        if let Ok(doc) = serde_json::from_str(&doc) {
            out.push((id, doc));
        }
    }
    Ok(out)
}

/// All CA certificates, inside a transaction.
pub(crate) fn all_certificates(conn: &Connection) -> Result<Vec<CaCert>> {
    let mut stmt = conn.prepare(
        "SELECT name, der, verified, code, etag, created FROM certificates ORDER BY name",
    )?;
    let rows = stmt.query_map([], ca_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn get_certificate(conn: &Connection, name: &str) -> Result<Option<CaCert>> {
    Ok(conn
        .query_row(
            "SELECT name, der, verified, code, etag, created FROM certificates WHERE name = ?1",
            params![name],
            ca_row,
        )
        .optional()?)
}

pub(crate) fn put_certificate(conn: &Connection, ca: &CaCert, updated: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO certificates (name, der, verified, code, etag, created, updated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (name) DO UPDATE SET der = excluded.der, verified = excluded.verified,
           code = excluded.code, etag = excluded.etag, updated = excluded.updated",
        params![
            ca.name,
            ca.der,
            i64::from(ca.verified),
            ca.code,
            ca.etag,
            ca.created,
            updated
        ],
    )?;
    Ok(())
}

pub(crate) fn delete_certificate(conn: &Connection, name: &str) -> Result<()> {
    conn.execute("DELETE FROM certificates WHERE name = ?1", params![name])?;
    Ok(())
}

pub(crate) fn get_registration(conn: &Connection, id: &str) -> Result<Option<Doc>> {
    conn.query_row(
        "SELECT id, doc, etag FROM registrations WHERE id = ?1",
        params![id.to_ascii_lowercase()],
        doc_row,
    )
    .optional()?
    .map(parse_doc)
    .transpose()
}

pub(crate) fn get_registration_owned(conn: &Connection, id: &str) -> Result<Option<Registration>> {
    conn.query_row(
        "SELECT id, doc, etag, leaf_sha256 FROM registrations WHERE id = ?1",
        params![id.to_ascii_lowercase()],
        |r| {
            Ok((
                (r.get(0)?, r.get(1)?, r.get(2)?),
                r.get::<_, Option<Vec<u8>>>(3)?,
            ))
        },
    )
    .optional()?
    .map(|(row, leaf_sha256)| {
        Ok(Registration {
            doc: parse_doc(row)?,
            leaf_sha256,
        })
    })
    .transpose()
}

/// Writes a registration record, which belongs to the certificate with
/// SHA-256 `leaf_sha256`.
pub(crate) fn put_registration(
    conn: &Connection,
    id: &str,
    group_id: Option<&str>,
    doc: &Value,
    etag: &str,
    leaf_sha256: &[u8],
) -> Result<()> {
    conn.execute(
        "INSERT INTO registrations (id, group_id, doc, etag, leaf_sha256)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET group_id = excluded.group_id, doc = excluded.doc,
           etag = excluded.etag, leaf_sha256 = excluded.leaf_sha256",
        params![
            id.to_ascii_lowercase(),
            group_id,
            doc.to_string(),
            etag,
            leaf_sha256
        ],
    )?;
    Ok(())
}

pub(crate) fn delete_registration(conn: &Connection, id: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM registrations WHERE id = ?1",
        params![id.to_ascii_lowercase()],
    )?;
    Ok(())
}

/// Stores an operation created at `now`. It replaces the registration's
/// previous operation (at most one per registration), and operations older
/// than [`OPERATION_TTL`] go: the table stays as large as the fleet, however
/// often devices register.
pub(crate) fn put_operation(
    conn: &Connection,
    id: &str,
    registration_id: &str,
    leaf_sha256: &[u8],
    doc: &Value,
    now: i64,
) -> Result<()> {
    let registration_id = registration_id.to_ascii_lowercase();
    conn.execute(
        "DELETE FROM operations WHERE registration_id = ?1 OR created IS NULL OR created < ?2",
        params![registration_id, now - OPERATION_TTL],
    )?;
    conn.execute(
        "INSERT INTO operations (id, registration_id, leaf_sha256, doc, created)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, registration_id, leaf_sha256, doc.to_string(), now],
    )?;
    Ok(())
}

/// Creates `path` readable and writable by its owner only, or narrows an
/// existing file to that.
fn private_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))
}
