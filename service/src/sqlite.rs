//! The embedded store: SQLite in the data directory, WAL journal,
//! `synchronous=FULL`, so a committed write survives a crash or power loss
//! before the response that acknowledges it is sent. Writes are group
//! committed: the units that queue behind one fsync share the next.
//!
//! Documents are stored as the JSON the APIs return (DPS shapes), with the
//! columns needed to look them up. One connection behind a mutex: SQLite
//! has one writer anyway, and it serialises concurrent registrations of
//! the same device (each is one unit of work — read record, decide hub,
//! write record and operation — in a savepoint of its own).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};
use rusqlite::Connection;
use rusqlite::types::ValueRef;

use crate::sql::{Cell, Dialect, Driver, Param, Row, Sql, Versioning};
use crate::store::{DEFAULT_HISTORY, Snapshot, Store, StoreError, StoreResult, Transaction};

/// The SQLite store.
pub struct SqliteStore {
    writer: Mutex<Writer>,
    /// Units of work waiting for the writer connection (group commit: the
    /// last of them commits).
    queued: std::sync::atomic::AtomicUsize,
    /// The database file, for read connections.
    path: PathBuf,
    /// Idle read connections for snapshots (WAL lets them read beside the
    /// writer, each from its own consistent state).
    readers: Arc<Mutex<Vec<Connection>>>,
    /// Versions of deletes kept for snapshot deltas.
    history: u64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Prepared statements kept per connection: every statement of
/// `crate::sql` (each is parsed once per connection).
const STATEMENT_CACHE: usize = 64;

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
        work(&Sql(conn, Versioning::new(0)))
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
            writer: Mutex::new(Writer { conn, batch: None }),
            queued: 0.into(),
            path,
            readers: Arc::default(),
            history: DEFAULT_HISTORY,
        })
    }

    /// Keeps `versions` versions of deletes for snapshot deltas (see
    /// [`crate::store::Versions`]) instead of [`DEFAULT_HISTORY`].
    pub fn with_history(mut self, versions: u64) -> SqliteStore {
        self.history = versions;
        self
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

    fn lock(&self) -> MutexGuard<'_, Writer> {
        // A unit's panic is caught and its savepoint undone before the
        // lock is released (`run_unit`), so a poisoned lock is usable.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Most units of work one commit makes durable: a waiting writer's delay
/// is bounded by this many units ahead of it, however busy the store.
const MAX_BATCH: usize = 64;
/// Longest a batch stays open to take in more units (it is committed
/// sooner as soon as no writer is waiting for the connection).
const MAX_BATCH_AGE: std::time::Duration = std::time::Duration::from_millis(20);

/// The writer connection and the batch whose transaction is open on it.
struct Writer {
    conn: Connection,
    batch: Option<Arc<Batch>>,
}

/// Units of work that share one transaction, and so one commit and one
/// fsync: group commit. Each unit runs in a savepoint of its own (its
/// failure undoes only its own writes); none is acknowledged before the
/// commit that makes all of them durable has returned.
struct Batch {
    units: std::sync::atomic::AtomicUsize,
    opened: std::time::Instant,
    /// `None` while open; the commit's outcome once it has run.
    outcome: Mutex<Option<Result<(), String>>>,
    done: std::sync::Condvar,
}

impl Batch {
    fn finish(&self, outcome: Result<(), String>) {
        *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
        self.done.notify_all();
    }

    /// Blocks until the batch has been committed (or failed to be).
    fn wait(&self) -> Result<()> {
        let mut outcome = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match &*outcome {
                Some(Ok(())) => return Ok(()),
                Some(Err(why)) => {
                    return Err(anyhow::anyhow!("the store could not commit: {why}"));
                }
                None => {
                    outcome = self.done.wait(outcome).unwrap_or_else(|p| p.into_inner());
                }
            }
        }
    }
}

impl SqliteStore {
    /// One unit of work, group-committed: it joins the transaction that is
    /// open on the writer connection (or begins one, `BEGIN IMMEDIATE`, so
    /// that a read-decide-write unit never fails half-way on a lock
    /// upgrade), runs in a savepoint, and returns only once that
    /// transaction is committed: a unit that succeeded is durable when this
    /// returns `Ok`. The unit that leaves no writer waiting for the
    /// connection commits (so a lone writer commits at once, as before);
    /// the writers that queued behind an fsync share the next one. A unit
    /// that fails is rolled back to its savepoint and reports its own
    /// error at once. Reads take the same path: what they see includes
    /// units not yet committed, so they too wait for that commit.
    fn unit(&self, work: &mut dyn FnMut(&dyn Transaction) -> Result<()>) -> Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        self.queued.fetch_add(1, SeqCst);
        let mut writer = self.lock();
        self.queued.fetch_sub(1, SeqCst);
        let batch = match &writer.batch {
            Some(batch) => Arc::clone(batch),
            None => {
                writer.conn.execute_batch("BEGIN IMMEDIATE")?;
                let batch = Arc::new(Batch {
                    units: 0.into(),
                    opened: std::time::Instant::now(),
                    outcome: Mutex::new(None),
                    done: std::sync::Condvar::new(),
                });
                writer.batch = Some(Arc::clone(&batch));
                batch
            }
        };
        let (outcome, panic) = match run_unit(&writer.conn, self.history, work) {
            Ok(outcome) => (outcome, None),
            Err(panic) => (
                Err(anyhow::anyhow!("the unit of work panicked")),
                Some(panic),
            ),
        };
        // SQLite rolls a whole transaction back on some errors (disk full,
        // I/O): then the batch's earlier units are gone too, and fail.
        let lost = writer.conn.is_autocommit();
        let mine = match outcome {
            Ok(()) if !lost => Some(batch.units.fetch_add(1, SeqCst) + 1),
            Ok(()) => None,
            Err(e) => {
                if lost {
                    writer.batch = None;
                    batch.finish(Err(format!("{e:#}")));
                } else if self.commit_now(&writer, &batch) {
                    // Its own failure: the batch's other units stand, and
                    // are committed here if no one else will.
                    self.commit(&mut writer);
                }
                drop(writer);
                if let Some(panic) = panic {
                    std::panic::resume_unwind(panic);
                }
                return Err(e);
            }
        };
        if mine.is_none() {
            writer.batch = None;
            batch.finish(Err("the transaction was rolled back".into()));
            return batch.wait();
        }
        if self.commit_now(&writer, &batch) {
            self.commit(&mut writer);
        }
        drop(writer);
        batch.wait()
    }

    /// Whether the open batch should be committed now: nobody is waiting
    /// to add to it, or it is full or old enough.
    fn commit_now(&self, writer: &Writer, batch: &Batch) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        writer.batch.is_some()
            && (self.queued.load(SeqCst) == 0
                || batch.units.load(SeqCst) >= MAX_BATCH
                || batch.opened.elapsed() >= MAX_BATCH_AGE)
    }

    /// Commits the open batch and tells its units the outcome.
    fn commit(&self, writer: &mut Writer) {
        let Some(batch) = writer.batch.take() else {
            return;
        };
        let outcome = match writer.conn.execute_batch("COMMIT") {
            Ok(()) => Ok(()),
            Err(e) => {
                // A failed COMMIT may leave the transaction open: end it,
                // so the next unit begins afresh.
                if !writer.conn.is_autocommit() {
                    let _ = writer.conn.execute_batch("ROLLBACK");
                }
                Err(format!("{e:#}"))
            }
        };
        batch.finish(outcome);
    }
}

/// A panic's payload, to resume once the batch is looked after.
type Panic = Box<dyn std::any::Any + Send>;

/// Runs `work` in a savepoint of the open transaction: released when it
/// succeeds, rolled back to when it fails or panics (the panic is handed
/// back, after the savepoint is undone, so the batch stays usable).
fn run_unit(
    conn: &Connection,
    history: u64,
    work: &mut dyn FnMut(&dyn Transaction) -> Result<()>,
) -> std::result::Result<Result<()>, Panic> {
    if let Err(e) = conn.execute_batch("SAVEPOINT unit") {
        return Ok(Err(e.into()));
    }
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        work(&Sql(conn, Versioning::new(history)))
    }));
    let undo = |conn: &Connection| {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK TO unit; RELEASE unit");
        }
    };
    match outcome {
        Ok(Ok(())) => match conn.execute_batch("RELEASE unit") {
            Ok(()) => Ok(Ok(())),
            Err(e) => {
                undo(conn);
                Ok(Err(e.into()))
            }
        },
        Ok(Err(e)) => {
            undo(conn);
            Ok(Err(e))
        }
        Err(panic) => {
            undo(conn);
            Err(panic)
        }
    }
}

impl Store for SqliteStore {
    /// A group-committed unit of work (see `SqliteStore::unit`).
    fn write(&self, work: &mut dyn FnMut(&dyn Transaction) -> Result<()>) -> Result<()> {
        self.unit(work)
    }

    fn read(&self, work: &mut dyn FnMut(&dyn Transaction) -> Result<()>) -> Result<()> {
        self.unit(work)
    }

    /// A read transaction on a read connection; its state is fixed by its
    /// first read (SQLite's WAL snapshots) and kept until it is dropped.
    /// It sees committed units only.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

    use policy_host::EnrollmentKind;

    const IND: EnrollmentKind = EnrollmentKind::Individual;

    fn put(tx: &dyn Transaction, key: &str) -> StoreResult<()> {
        tx.put_enrollment(IND, key, &serde_json::json!({"registrationId": key}), "e")
    }

    fn stored(store: &SqliteStore, key: &str) -> bool {
        let mut found = false;
        store
            .read(&mut |tx| {
                found = tx.enrollment(IND, key)?.is_some();
                Ok(())
            })
            .unwrap();
        found
    }

    /// Counts commits on the writer connection; `fail` turns the next
    /// commits into rollbacks (as a full disk or an I/O error would).
    fn hook(store: &SqliteStore) -> (Arc<AtomicUsize>, Arc<AtomicBool>) {
        let (commits, fail) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (c, f) = (Arc::clone(&commits), Arc::clone(&fail));
        store.lock().conn.commit_hook(Some(move || {
            c.fetch_add(1, SeqCst);
            f.load(SeqCst)
        }));
        (commits, fail)
    }

    /// Runs two units so that B queues for the connection while A works:
    /// `a` runs first and returns once B is waiting; then `b` runs. Returns
    /// both outcomes (a panic in `b` is returned as `Err`).
    fn two_units(
        store: &SqliteStore,
        a: impl FnMut(&dyn Transaction) -> Result<()> + Send,
        mut b: impl FnMut(&dyn Transaction) -> Result<()> + Send,
    ) -> (Result<()>, std::thread::Result<Result<()>>) {
        let inside = AtomicBool::new(false);
        let mut a = a;
        std::thread::scope(|s| {
            let first = s.spawn(|| {
                store.write(&mut |tx| {
                    a(tx)?;
                    inside.store(true, SeqCst);
                    while store.queued.load(SeqCst) == 0 {
                        std::thread::yield_now();
                    }
                    Ok(())
                })
            });
            while !inside.load(SeqCst) {
                std::thread::yield_now();
            }
            let second = s.spawn(|| store.write(&mut b));
            (first.join().unwrap(), second.join())
        })
    }

    #[test]
    fn units_queued_behind_one_share_its_commit_and_both_are_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let (commits, _) = hook(&store);
        let (a, b) = two_units(&store, |tx| Ok(put(tx, "a")?), |tx| Ok(put(tx, "b")?));
        a.unwrap();
        b.unwrap().unwrap();
        assert_eq!(commits.load(SeqCst), 1, "one commit for both units");
        // Durable: another connection (a new process's) reads both.
        drop(store);
        let reopened = SqliteStore::open(dir.path()).unwrap();
        assert!(stored(&reopened, "a") && stored(&reopened, "b"));
    }

    /// The promise group commit must keep: a unit is acknowledged only
    /// once the commit that makes it durable has succeeded. A commit that
    /// fails fails every unit of its batch, including the one that had
    /// finished its work first and was waiting.
    #[test]
    fn a_failed_commit_fails_every_unit_of_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let (commits, fail) = hook(&store);
        fail.store(true, SeqCst);
        let (a, b) = two_units(&store, |tx| Ok(put(tx, "a")?), |tx| Ok(put(tx, "b")?));
        assert!(a.is_err(), "A was acknowledged but never committed");
        assert!(b.unwrap().is_err());
        assert_eq!(commits.load(SeqCst), 1);
        fail.store(false, SeqCst);
        assert!(!stored(&store, "a") && !stored(&store, "b"));
        // And the store goes on: the next unit commits on its own.
        store.write(&mut |tx| Ok(put(tx, "c")?)).unwrap();
        assert!(stored(&store, "c"));
    }

    #[test]
    fn a_unit_that_fails_undoes_only_its_own_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let (a, b) = two_units(
            &store,
            |tx| Ok(put(tx, "a")?),
            |tx| {
                put(tx, "b")?;
                Err(anyhow::anyhow!("B changed its mind"))
            },
        );
        a.unwrap();
        assert!(
            b.unwrap()
                .unwrap_err()
                .to_string()
                .contains("changed its mind")
        );
        assert!(stored(&store, "a"), "A's write stands");
        assert!(!stored(&store, "b"), "B's write is undone");
    }

    #[test]
    fn a_unit_that_panics_is_undone_and_the_batch_it_joined_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let (a, b) = two_units(
            &store,
            |tx| Ok(put(tx, "a")?),
            |tx| {
                put(tx, "b")?;
                panic!("a bug in a unit of work")
            },
        );
        a.unwrap();
        assert!(b.is_err(), "the panic reaches B's caller");
        assert!(
            stored(&store, "a"),
            "A is not left waiting, and is committed"
        );
        assert!(!stored(&store, "b"));
        store.write(&mut |tx| Ok(put(tx, "c")?)).unwrap();
        assert!(stored(&store, "c"));
    }

    /// Many writers at once: every one that is told `Ok` is there after a
    /// reopen.
    #[test]
    fn concurrent_writers_are_all_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        std::thread::scope(|s| {
            for t in 0..8 {
                let store = &store;
                s.spawn(move || {
                    for i in 0..25 {
                        let key = format!("t{t}-{i}");
                        store.write(&mut |tx| Ok(put(tx, &key)?)).unwrap();
                    }
                });
            }
        });
        drop(store);
        let reopened = SqliteStore::open(dir.path()).unwrap();
        for t in 0..8 {
            for i in 0..25 {
                assert!(stored(&reopened, &format!("t{t}-{i}")));
            }
        }
    }
}
