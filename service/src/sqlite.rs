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
use rusqlite::Connection;
use rusqlite::types::ValueRef;

use crate::sql::{Cell, Dialect, Driver, Param, Row, Sql};
use crate::store::{Snapshot, Store, StoreError, StoreResult, Transaction};

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

/// Prepared statements kept per connection: every statement of
/// `crate::sql` (each is parsed once per connection).
const STATEMENT_CACHE: usize = 32;

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
        work(&Sql(conn))
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
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
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
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
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
        work(&Sql(&*tx))?;
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

impl Driver for Connection {
    const DIALECT: Dialect = Dialect::Sqlite;

    fn execute(&self, sql: &'static str, params: &[Param<'_>]) -> StoreResult<u64> {
        let params = bound(params)?;
        let mut statement = self.prepare_cached(sql)?;
        let changed = statement.execute(rusqlite::params_from_iter(params))?;
        Ok(u64::try_from(changed).unwrap_or(u64::MAX))
    }

    fn query(&self, sql: &'static str, params: &[Param<'_>]) -> StoreResult<Vec<Row>> {
        let params = bound(params)?;
        let mut statement = self.prepare_cached(sql)?;
        let columns = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut cells = Vec::with_capacity(columns);
            for i in 0..columns {
                cells.push(match row.get_ref(i)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(n) => Cell::Int(n),
                    ValueRef::Text(t) => Cell::Text(
                        String::from_utf8(t.to_vec())
                            .map_err(|e| StoreError::Database(e.into()))?,
                    ),
                    ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
                    ValueRef::Real(_) => {
                        return Err(StoreError::Database(anyhow::anyhow!(
                            "column {i} holds a REAL, which attest never writes"
                        )));
                    }
                });
            }
            out.push(Row(cells));
        }
        Ok(out)
    }
}

/// Parameters as rusqlite binds them (booleans as INTEGER 0 or 1).
fn bound<'a>(params: &'a [Param<'a>]) -> StoreResult<Vec<&'a dyn rusqlite::ToSql>> {
    params
        .iter()
        .map(|param| -> StoreResult<&'a dyn rusqlite::ToSql> {
            Ok(match param {
                Param::Text(v) => v,
                Param::MaybeText(v) => v,
                Param::Blob(v) => v,
                Param::MaybeBlob(v) => v,
                Param::Int(v) => v,
                Param::Flag(v) => v,
                Param::Texts(_) => {
                    return Err(StoreError::Database(anyhow::anyhow!(
                        "SQLite has no array parameters (a PostgreSQL statement was sent to SQLite)"
                    )));
                }
            })
        })
        .collect()
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
