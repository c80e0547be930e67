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
    pub(crate) id: String,
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
    id TEXT PRIMARY KEY, group_id TEXT, doc TEXT NOT NULL, etag TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS registrations_by_group ON registrations (group_id, id);
CREATE TABLE IF NOT EXISTS operations (
    id TEXT PRIMARY KEY, registration_id TEXT NOT NULL, leaf_sha256 BLOB NOT NULL,
    doc TEXT NOT NULL);
";

impl Store {
    /// Opens (creating if needed) `attest.db` in `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Store> {
        let path = dir.join("attest.db");
        let conn =
            Connection::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)
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

    pub(crate) fn certificate(&self, name: &str) -> Result<Option<CaCert>> {
        get_certificate(&self.lock(), name)
    }

    pub(crate) fn certificates(&self) -> Result<Vec<CaCert>> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT name, der, verified, code, etag, created FROM certificates ORDER BY name",
        )?;
        let rows = stmt.query_map([], ca_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub(crate) fn registration(&self, id: &str) -> Result<Option<Doc>> {
        get_registration(&self.lock(), id)
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

    pub(crate) fn operation(&self, id: &str) -> Result<Option<(String, Vec<u8>, Value)>> {
        let conn = self.lock();
        conn.query_row(
            "SELECT registration_id, leaf_sha256, doc FROM operations WHERE id = ?1",
            params![id],
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

fn parse_doc((id, doc, etag): (String, String, String)) -> Result<Doc> {
    Ok(Doc {
        id,
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

pub(crate) fn put_registration(
    conn: &Connection,
    id: &str,
    group_id: Option<&str>,
    doc: &Value,
    etag: &str,
) -> Result<()> {
    conn.execute(
        "INSERT INTO registrations (id, group_id, doc, etag) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET group_id = excluded.group_id, doc = excluded.doc,
           etag = excluded.etag",
        params![id.to_ascii_lowercase(), group_id, doc.to_string(), etag],
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

pub(crate) fn put_operation(
    conn: &Connection,
    id: &str,
    registration_id: &str,
    leaf_sha256: &[u8],
    doc: &Value,
) -> Result<()> {
    conn.execute(
        "INSERT INTO operations (id, registration_id, leaf_sha256, doc) VALUES (?1, ?2, ?3, ?4)",
        params![
            id,
            registration_id.to_ascii_lowercase(),
            leaf_sha256,
            doc.to_string()
        ],
    )?;
    Ok(())
}
