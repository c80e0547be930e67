//! The embedded store: SQLite in the data directory, WAL journal,
//! `synchronous=FULL`, so a committed write survives a crash or power loss
//! before the response that acknowledges it is sent.
//!
//! Documents are stored as the JSON the APIs return (DPS shapes), with the
//! columns needed to look them up. One connection behind a mutex: SQLite
//! has one writer anyway, and it serialises concurrent registrations of
//! the same device (each is one transaction: read record, decide hub,
//! write record and operation).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use attest_dps::documents::CaCert;
use policy_host::EnrollmentKind;

use crate::store::{
    Doc, LookupKey, LookupKind, OPERATION_TTL, Operation, Registration, Snapshot, Store,
    StoreResult, Transaction, kind_str, limit_of, parse_stored,
};

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// The database file, for read connections.
    path: PathBuf,
    /// Idle read connections for snapshots (WAL lets them read beside the
    /// writer, each from its own consistent state).
    readers: Arc<Mutex<Vec<Connection>>>,
}

/// Most idle read connections kept.
const MAX_IDLE_READERS: usize = 16;

/// A read transaction on a connection of its own.
struct SqliteSnapshot {
    conn: Option<Connection>,
    readers: Arc<Mutex<Vec<Connection>>>,
}

impl Snapshot for SqliteSnapshot {
    fn read(&mut self, work: &mut dyn FnMut(&dyn Transaction) -> Result<()>) -> Result<()> {
        let conn = self
            .conn
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the snapshot has ended"))?;
        work(conn)
    }
}

impl Drop for SqliteSnapshot {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && conn.execute_batch("ROLLBACK").is_ok()
        {
            let mut idle = self.readers.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
    }
}

mod migrations {
    refinery::embed_migrations!("migrations/sqlite");
}

/// Columns added before migrations were versioned: (table, column,
/// definition). A database from then may lack them; they are added before
/// the versioned migrations run. Rows from before have NULL, which every
/// reader treats as "unknown", never as a match.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    // The SHA-256 of the device certificate a record belongs to.
    ("registrations", "leaf_sha256", "BLOB"),
    // When an operation was created (Unix seconds), for expiry.
    ("operations", "created", "INTEGER"),
];

/// Adds [`ADDED_COLUMNS`] to the tables of an unversioned database.
fn add_legacy_columns(conn: &Connection) -> Result<()> {
    for (table, column, definition) in ADDED_COLUMNS {
        let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
        let columns = stmt
            .query_map([], |r| r.get::<_, String>(1))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        if !columns.is_empty() && !columns.iter().any(|c| c == column) {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition}"
            ))?;
        }
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) `attest.db` in `dir`, readable by its
    /// owner only (SQLite gives the WAL and shared-memory files the same
    /// permissions).
    pub fn open(dir: &Path) -> Result<SqliteStore> {
        let path = dir.join("attest.db");
        private_file(&path)?;
        let conn =
            Connection::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        add_legacy_columns(&conn).with_context(|| format!("cannot upgrade {}", path.display()))?;
        let mut conn = conn;
        migrations::migrations::runner()
            .run(&mut conn)
            .with_context(|| format!("cannot migrate {}", path.display()))?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path,
            readers: Arc::default(),
        })
    }

    /// A read connection: an idle one, or a new one.
    fn reader(&self) -> Result<Connection> {
        if let Some(conn) = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open {}", self.path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(conn)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction half
        // done (rusqlite rolls back on drop), so a poisoned lock is usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SqliteStore {
    /// One unit of work in a transaction of `behavior`, committed when
    /// `work` succeeds (rolled back when it fails: rusqlite rolls back on drop).
    fn unit(
        &self,
        behavior: rusqlite::TransactionBehavior,
        work: &mut dyn FnMut(&dyn Transaction) -> Result<()>,
    ) -> Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(behavior)?;
        work(&*tx)?;
        tx.commit()?;
        Ok(())
    }
}

impl Store for SqliteStore {
    /// An IMMEDIATE transaction: the write lock is taken at the start, so
    /// a read-decide-write unit never fails half-way on a lock upgrade.
    fn write(&self, work: &mut dyn FnMut(&dyn Transaction) -> Result<()>) -> Result<()> {
        self.unit(rusqlite::TransactionBehavior::Immediate, work)
    }

    fn read(&self, work: &mut dyn FnMut(&dyn Transaction) -> Result<()>) -> Result<()> {
        self.unit(rusqlite::TransactionBehavior::Deferred, work)
    }

    /// A read transaction on a read connection; its state is fixed by its
    /// first read (SQLite's WAL snapshots) and kept until it is dropped.
    fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        let conn = self.reader()?;
        conn.execute_batch("BEGIN DEFERRED")?;
        Ok(Box::new(SqliteSnapshot {
            conn: Some(conn),
            readers: Arc::clone(&self.readers),
        }))
    }
}

fn doc_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

fn parse_doc((_id, doc, etag): (String, String, String)) -> StoreResult<Doc> {
    Ok(Doc {
        doc: parse_stored(&doc)?,
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
        updated: r.get(6)?,
    })
}

impl Transaction for Connection {
    fn enrollment(&self, kind: EnrollmentKind, key: &str) -> StoreResult<Option<Doc>> {
        self.query_row(
            "SELECT id, doc, etag FROM enrollments WHERE kind = ?1 AND id = ?2",
            params![kind_str(kind), key],
            doc_row,
        )
        .optional()?
        .map(parse_doc)
        .transpose()
    }

    fn enrollments(
        &self,
        kind: EnrollmentKind,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, StoreResult<Doc>)>> {
        let mut stmt = self.prepare(
            "SELECT id, doc, etag FROM enrollments WHERE kind = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![kind_str(kind), after.unwrap_or(""), limit_of(limit)],
            doc_row,
        )?;
        rows.map(|r| {
            let row = r?;
            Ok((row.0.clone(), parse_doc(row)))
        })
        .collect()
    }

    fn put_enrollment(
        &self,
        kind: EnrollmentKind,
        key: &str,
        doc: &Value,
        etag: &str,
    ) -> StoreResult<()> {
        self.execute(
            "INSERT INTO enrollments (kind, id, doc, etag) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (kind, id) DO UPDATE SET doc = excluded.doc, etag = excluded.etag",
            params![kind_str(kind), key, doc.to_string(), etag],
        )?;
        Ok(())
    }

    fn delete_enrollment(&self, kind: EnrollmentKind, key: &str) -> StoreResult<()> {
        self.execute(
            "DELETE FROM enrollments WHERE kind = ?1 AND id = ?2",
            params![kind_str(kind), key],
        )?;
        Ok(())
    }

    fn certificate(&self, name: &str) -> StoreResult<Option<CaCert>> {
        Ok(self
            .query_row(
                "SELECT name, der, verified, code, etag, created, updated FROM certificates WHERE name = ?1",
                params![name],
                ca_row,
            )
            .optional()?)
    }

    fn certificates(&self) -> StoreResult<Vec<CaCert>> {
        let mut stmt = self.prepare(
            "SELECT name, der, verified, code, etag, created, updated FROM certificates ORDER BY name",
        )?;
        let rows = stmt.query_map([], ca_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn put_certificate(&self, ca: &CaCert) -> StoreResult<()> {
        self.execute(
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
                ca.updated
            ],
        )?;
        Ok(())
    }

    fn delete_certificate(&self, name: &str) -> StoreResult<()> {
        self.execute("DELETE FROM certificates WHERE name = ?1", params![name])?;
        Ok(())
    }

    fn registration(&self, registration_id: &str) -> StoreResult<Option<Registration>> {
        self.query_row(
            "SELECT id, doc, etag, leaf_sha256 FROM registrations WHERE id = ?1",
            params![registration_id.to_ascii_lowercase()],
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

    fn registrations_of_group(
        &self,
        group_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, Doc)>> {
        let mut stmt = self.prepare(
            "SELECT id, doc, etag FROM registrations WHERE group_id = ?1 AND id > ?2
             ORDER BY id LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![group_id, after.unwrap_or(""), limit_of(limit)],
            doc_row,
        )?;
        rows.map(|r| {
            let row = r?;
            Ok((row.0.clone(), parse_doc(row)?))
        })
        .collect()
    }

    fn put_registration(
        &self,
        registration_id: &str,
        group_id: Option<&str>,
        doc: &Value,
        etag: &str,
        leaf_sha256: &[u8],
    ) -> StoreResult<()> {
        self.execute(
            "INSERT INTO registrations (id, group_id, doc, etag, leaf_sha256)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (id) DO UPDATE SET group_id = excluded.group_id, doc = excluded.doc,
               etag = excluded.etag, leaf_sha256 = excluded.leaf_sha256",
            params![
                registration_id.to_ascii_lowercase(),
                group_id,
                doc.to_string(),
                etag,
                leaf_sha256
            ],
        )?;
        Ok(())
    }

    fn delete_registration(&self, registration_id: &str) -> StoreResult<()> {
        let id = registration_id.to_ascii_lowercase();
        self.execute("DELETE FROM registrations WHERE id = ?1", params![id])?;
        self.execute(
            "DELETE FROM operations WHERE registration_id = ?1",
            params![id],
        )?;
        Ok(())
    }

    fn set_lookup_keys(&self, owner: &str, keys: &[LookupKey]) -> StoreResult<()> {
        self.execute("DELETE FROM lookup_keys WHERE owner = ?1", params![owner])?;
        let mut insert = self.prepare_cached(
            "INSERT INTO lookup_keys (kind, value, owner, der) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for key in keys {
            insert.execute(params![key.kind.as_str(), key.value, owner, key.der])?;
        }
        Ok(())
    }

    fn lookup(
        &self,
        kind: LookupKind,
        value: &[u8],
    ) -> StoreResult<Vec<(String, Option<Vec<u8>>)>> {
        let mut stmt = self.prepare_cached(
            "SELECT owner, der FROM lookup_keys WHERE kind = ?1 AND value = ?2 ORDER BY owner",
        )?;
        let rows = stmt.query_map(params![kind.as_str(), value], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn lookup_keys(&self) -> StoreResult<Vec<(String, LookupKey)>> {
        let mut stmt = self.prepare("SELECT owner, kind, value, der FROM lookup_keys")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Option<Vec<u8>>>(3)?,
            ))
        })?;
        rows.map(|r| {
            let (owner, kind, value, der) = r?;
            Ok((
                owner,
                LookupKey {
                    kind: LookupKind::parse(&kind)?,
                    value,
                    der,
                },
            ))
        })
        .collect()
    }

    fn operation(&self, operation_id: &str, now: i64) -> StoreResult<Option<Operation>> {
        self.query_row(
            "SELECT registration_id, leaf_sha256, doc FROM operations
             WHERE id = ?1 AND created >= ?2",
            params![operation_id, now - OPERATION_TTL],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, String>(2)?,
                ))
            },
        )
        .optional()?
        .map(|(registration_id, leaf_sha256, doc)| {
            Ok(Operation {
                registration_id,
                leaf_sha256,
                doc: serde_json::from_str(&doc).context("stored operation is not JSON")?,
            })
        })
        .transpose()
    }

    fn put_operation(
        &self,
        operation_id: &str,
        operation: &Operation,
        now: i64,
    ) -> StoreResult<()> {
        let registration_id = operation.registration_id.to_ascii_lowercase();
        self.execute(
            "DELETE FROM operations WHERE registration_id = ?1 OR created IS NULL OR created < ?2",
            params![registration_id, now - OPERATION_TTL],
        )?;
        self.execute(
            "INSERT INTO operations (id, registration_id, leaf_sha256, doc, created)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                operation_id,
                registration_id,
                operation.leaf_sha256,
                operation.doc.to_string(),
                now
            ],
        )?;
        Ok(())
    }
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
