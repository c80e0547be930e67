//! The PostgreSQL store, for deployments that outgrow one machine: several
//! stateless host-http replicas on one database. Same documents and
//! columns as the SQLite store; versioned migrations (refinery) run at
//! start under an advisory lock, so replicas starting at once migrate once.
//!
//! Writes are serialised across replicas by a transaction-level advisory
//! lock (the SQLite store's single writer, across machines): a
//! read-decide-write unit (a registration, an `If-Match` update) never
//! interleaves with another, so ETags and record ownership hold across
//! replicas, and a commit is durable (`synchronous_commit` on) before the
//! service answers. Reads run in REPEATABLE READ snapshots.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use postgres::types::{ToSql, Type};
use postgres::{GenericClient, IsolationLevel, Statement};
use r2d2_postgres::{PostgresConnectionManager, r2d2};
use rustls_pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::sql::{Cell, Dialect, Driver, Param, Row, Sql, Versioning};
use crate::store::{DEFAULT_HISTORY, Snapshot, Store, StoreError, StoreResult, Transaction};

mod migrations {
    refinery::embed_migrations!("migrations/postgres");
}

/// The advisory lock every write transaction takes.
const WRITE_LOCK: i64 = 0x6174_7465_7374_0001;
/// The advisory lock held while migrating.
const MIGRATION_LOCK: i64 = 0x6174_7465_7374_0002;

/// Connections per replica.
const POOL_SIZE: u32 = 16;

/// The PostgreSQL store.
pub struct PostgresStore {
    /// `None` only while dropping.
    pool: Option<r2d2::Pool<Manager>>,
    /// Versions of deletes kept for snapshot deltas.
    history: u64,
}

/// A connection and the statements prepared on it: each query is parsed
/// and planned once per connection, and then costs one round trip.
struct Cached {
    client: postgres::Client,
    statements: HashMap<&'static str, Statement>,
}

/// r2d2's PostgreSQL manager, with a statement cache per connection.
struct Manager(PostgresConnectionManager<MakeRustlsConnect>);

impl r2d2::ManageConnection for Manager {
    type Connection = Cached;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Cached, postgres::Error> {
        Ok(Cached {
            client: self.0.connect()?,
            statements: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut Cached) -> Result<(), postgres::Error> {
        self.0.is_valid(&mut conn.client)
    }

    fn has_broken(&self, conn: &mut Cached) -> bool {
        self.0.has_broken(&mut conn.client)
    }
}

impl Drop for PostgresStore {
    /// The synchronous client closes its connections by blocking on its
    /// own runtime, which panics on an async runtime's thread (where a
    /// service is usually dropped): close them on a thread of their own.
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let _ = std::thread::spawn(move || drop(pool)).join();
        }
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/db`, with
    /// libpq's `sslmode` and `sslrootcert` parameters for TLS: see
    /// `connection`) and migrates the schema.
    pub fn open(url: &str) -> Result<PostgresStore> {
        let (mut config, tls) = connection(url)?;
        config.connect_timeout(Duration::from_secs(5));
        // One connection first, for the migrations and for an error that
        // says why (the pool's says only that it timed out).
        let mut conn = config
            .connect(tls.clone())
            .map_err(anyhow::Error::new)
            .context("cannot connect to PostgreSQL")?;
        conn.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
        let migrated = migrations::migrations::runner().run(&mut conn);
        conn.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])?;
        migrated.context("cannot migrate the PostgreSQL schema")?;
        drop(conn);
        let manager = Manager(PostgresConnectionManager::new(config, tls));
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .connection_timeout(Duration::from_secs(5))
            .build(manager)
            .context("cannot connect to PostgreSQL")?;
        Ok(PostgresStore {
            pool: Some(pool),
            history: DEFAULT_HISTORY,
        })
    }

    /// Keeps `versions` versions of deletes for snapshot deltas (see
    /// [`crate::store::Versions`]) instead of [`DEFAULT_HISTORY`].
    pub fn with_history(mut self, versions: u64) -> PostgresStore {
        self.history = versions;
        self
    }

    fn unit(
        &self,
        write: bool,
        work: &mut dyn FnMut(&dyn Transaction) -> Result<()>,
    ) -> Result<()> {
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the store is closing"))?;
        let mut conn = pool.get().context("no PostgreSQL connection")?;
        let Cached { client, statements } = &mut *conn;
        let mut tx = client
            .build_transaction()
            .isolation_level(if write {
                IsolationLevel::ReadCommitted
            } else {
                IsolationLevel::RepeatableRead
            })
            .read_only(!write)
            .start()?;
        {
            let tx = Sql(
                PgTx::new(&mut tx, statements),
                Versioning::new(self.history),
            );
            if write {
                tx.0.0
                    .borrow_mut()
                    .execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
            }
            work(&tx)?;
        }
        tx.commit()?;
        Ok(())
    }
}

impl Store for PostgresStore {
    fn write(&self, work: &mut dyn FnMut(&dyn Transaction) -> Result<()>) -> Result<()> {
        self.unit(true, work)
    }

    fn read(&self, work: &mut dyn FnMut(&dyn Transaction) -> Result<()>) -> Result<()> {
        self.unit(false, work)
    }

    fn snapshot(&self) -> Result<Box<dyn Snapshot>> {
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the store is closing"))?;
        let mut conn = pool.get().context("no PostgreSQL connection")?;
        conn.client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        Ok(Box::new(PgSnapshot { conn: Some(conn) }))
    }
}

/// The connection settings and TLS connector of a database URL.
///
/// TLS follows the URL's `sslmode`: `require` (or `prefer`) connects over
/// TLS and verifies the server's certificate and name (what libpq calls
/// `verify-full`) against `sslrootcert` (a PEM file), or against the
/// system's roots when it is absent or `system`. Without `sslmode` the
/// connection is plaintext (`disable`), for a database on the same host
/// or private network; `sslrootcert` without `sslmode` is an error, never
/// a silent plaintext connection.
fn connection(url: &str) -> Result<(postgres::Config, MakeRustlsConnect)> {
    const NOT_A_URL: &str = "the database URL is not a PostgreSQL connection string";
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut root_cert = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslrootcert", value)) => {
                root_cert = Some(
                    percent_encoding::percent_decode_str(value)
                        .decode_utf8()
                        .context(NOT_A_URL)?
                        .into_owned(),
                );
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config: postgres::Config = url.parse().context(NOT_A_URL)?;
    let explicit = kept.iter().any(|p| p.starts_with("sslmode="));
    if !explicit {
        if root_cert.is_some() {
            anyhow::bail!(
                "the database URL names sslrootcert but no sslmode: add sslmode=require to connect over TLS"
            );
        }
        config.ssl_mode(postgres::config::SslMode::Disable);
    }
    let mut roots = rustls::RootCertStore::empty();
    match root_cert.as_deref() {
        Some(path) if path != "system" => {
            let pem =
                std::fs::read(path).with_context(|| format!("cannot read sslrootcert {path}"))?;
            for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.with_context(|| format!("sslrootcert {path} is not PEM"))?;
                roots
                    .add(cert)
                    .with_context(|| format!("sslrootcert {path}: not a usable CA certificate"))?;
            }
            if roots.is_empty() {
                anyhow::bail!("sslrootcert {path} holds no certificate");
            }
        }
        _ => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS settings for PostgreSQL")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((config, MakeRustlsConnect::new(tls)))
}

/// One PostgreSQL transaction behind the `&self` methods of [`Transaction`]:
/// a `postgres::Transaction`, or a client in a transaction a snapshot
/// opened itself, with the connection's statement cache.
struct PgTx<'a>(RefCell<Queries<'a>>);

impl<'a> PgTx<'a> {
    fn new(conn: &'a mut dyn Conn, statements: &'a mut HashMap<&'static str, Statement>) -> Self {
        PgTx(RefCell::new(Queries { conn, statements }))
    }
}

/// Queries by their SQL text ([`crate::sql`]), each prepared once per
/// connection.
struct Queries<'a> {
    conn: &'a mut dyn Conn,
    statements: &'a mut HashMap<&'static str, Statement>,
}

impl Queries<'_> {
    fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.conn.prepare(&crate::sql::postgres_text(sql))?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    fn execute(&mut self, sql: &'static str, params: &Params<'_>) -> Result<u64, postgres::Error> {
        let statement = self.statement(sql)?;
        self.conn.execute(&statement, params)
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
    ) -> Result<Vec<postgres::Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.conn.query(&statement, params)
    }
}

type Params<'p> = [&'p (dyn postgres::types::ToSql + Sync)];

/// What [`Queries`] needs of a client or a transaction.
trait Conn {
    fn prepare(&mut self, sql: &str) -> Result<Statement, postgres::Error>;
    fn execute(
        &mut self,
        statement: &Statement,
        params: &Params<'_>,
    ) -> Result<u64, postgres::Error>;
    fn query(
        &mut self,
        statement: &Statement,
        params: &Params<'_>,
    ) -> Result<Vec<postgres::Row>, postgres::Error>;
}

impl<C: GenericClient> Conn for C {
    fn prepare(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        GenericClient::prepare(self, sql)
    }
    fn execute(
        &mut self,
        statement: &Statement,
        params: &Params<'_>,
    ) -> Result<u64, postgres::Error> {
        GenericClient::execute(self, statement, params)
    }
    fn query(
        &mut self,
        statement: &Statement,
        params: &Params<'_>,
    ) -> Result<Vec<postgres::Row>, postgres::Error> {
        GenericClient::query(self, statement, params)
    }
}

/// A REPEATABLE READ transaction on a pooled connection of its own.
struct PgSnapshot {
    conn: Option<Pooled>,
}

type Pooled = r2d2::PooledConnection<Manager>;

impl Snapshot for PgSnapshot {
    fn read(&mut self, work: &mut dyn FnMut(&dyn Transaction) -> Result<()>) -> Result<()> {
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("the snapshot has ended"))?;
        let Cached { client, statements } = &mut **conn;
        work(&Sql(PgTx::new(client, statements), Versioning::new(0)))
    }
}

impl Drop for PgSnapshot {
    /// Ends the transaction (read only: nothing to keep). A ROLLBACK fails
    /// only on a broken connection, which r2d2 discards on return.
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            let _ = conn.client.batch_execute("ROLLBACK");
        }
    }
}

impl Driver for PgTx<'_> {
    const DIALECT: Dialect = Dialect::Postgres;

    fn execute(&self, sql: &'static str, params: &[Param<'_>]) -> StoreResult<u64> {
        Ok(self.0.borrow_mut().execute(sql, &bound(params))?)
    }

    fn query(&self, sql: &'static str, params: &[Param<'_>]) -> StoreResult<Vec<Row>> {
        let rows = self.0.borrow_mut().query(sql, &bound(params))?;
        rows.iter().map(cells).collect()
    }
}

/// Parameters as the PostgreSQL client binds them.
fn bound<'a>(params: &'a [Param<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params
        .iter()
        .map(|param| -> &'a (dyn ToSql + Sync) {
            match param {
                Param::Text(v) => v,
                Param::MaybeText(v) => v,
                Param::Blob(v) => v,
                Param::MaybeBlob(v) => v,
                Param::Int(v) => v,
                Param::Flag(v) => v,
                Param::Texts(v) => v,
            }
        })
        .collect()
}

/// A row's cells, by the column types attest's schema uses.
fn cells(row: &postgres::Row) -> StoreResult<Row> {
    let mut out = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let cell = if *ty == Type::TEXT || *ty == Type::VARCHAR {
            row.try_get::<_, Option<String>>(i)?.map(Cell::Text)
        } else if *ty == Type::BYTEA {
            row.try_get::<_, Option<Vec<u8>>>(i)?.map(Cell::Blob)
        } else if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?.map(Cell::Int)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?
                .map(|n| Cell::Int(n.into()))
        } else if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)?.map(Cell::Flag)
        } else {
            return Err(StoreError::Database(anyhow::anyhow!(
                "column {} has type {ty}, which attest's schema does not use",
                column.name()
            )));
        };
        out.push(cell.unwrap_or(Cell::Null));
    }
    Ok(Row(out))
}
