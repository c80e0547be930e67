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
use postgres::{GenericClient, IsolationLevel, Row, Statement};
use r2d2_postgres::{PostgresConnectionManager, r2d2};
use rustls_pki_types::pem::PemObject;
use serde_json::Value;
use tokio_postgres_rustls::MakeRustlsConnect;

use attest_dps::documents::CaCert;
use policy_host::EnrollmentKind;

use crate::store::{
    Doc, LookupKey, LookupKind, OPERATION_TTL, Operation, Registration, Snapshot, Store,
    StoreResult, Transaction, kind_str, limit_of, parse_stored,
};

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
        Ok(PostgresStore { pool: Some(pool) })
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
            let tx = PgTx::new(&mut tx, statements);
            if write {
                tx.0.borrow_mut()
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

/// Queries by their SQL text, each prepared once per connection.
struct Queries<'a> {
    conn: &'a mut dyn Conn,
    statements: &'a mut HashMap<&'static str, Statement>,
}

impl Queries<'_> {
    fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.conn.prepare(sql)?;
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
    ) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.conn.query(&statement, params)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
    ) -> Result<Option<Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.conn.query_opt(&statement, params)
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
    ) -> Result<Vec<Row>, postgres::Error>;
    fn query_opt(
        &mut self,
        statement: &Statement,
        params: &Params<'_>,
    ) -> Result<Option<Row>, postgres::Error>;
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
    ) -> Result<Vec<Row>, postgres::Error> {
        GenericClient::query(self, statement, params)
    }
    fn query_opt(
        &mut self,
        statement: &Statement,
        params: &Params<'_>,
    ) -> Result<Option<Row>, postgres::Error> {
        GenericClient::query_opt(self, statement, params)
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
        work(&PgTx::new(client, statements))
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

fn doc_of(row: &postgres::Row) -> StoreResult<(String, Doc)> {
    let id: String = row.get(0);
    let doc: String = row.get(1);
    Ok((
        id,
        Doc {
            doc: parse_stored(&doc)?,
            etag: row.get(2),
        },
    ))
}

fn ca_of(row: &postgres::Row) -> CaCert {
    CaCert {
        name: row.get(0),
        der: row.get(1),
        verified: row.get(2),
        code: row.get(3),
        etag: row.get(4),
        created: row.get(5),
        updated: row.get(6),
    }
}

impl Transaction for PgTx<'_> {
    fn enrollment(&self, kind: EnrollmentKind, key: &str) -> StoreResult<Option<Doc>> {
        self.0
            .borrow_mut()
            .query_opt(
                "SELECT id, doc, etag FROM enrollments WHERE kind = $1 AND id = $2",
                &[&kind_str(kind), &key],
            )?
            .map(|r| doc_of(&r).map(|(_, d)| d))
            .transpose()
    }

    fn enrollments(
        &self,
        kind: EnrollmentKind,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, StoreResult<Doc>)>> {
        let rows = self.0.borrow_mut().query(
            "SELECT id, doc, etag FROM enrollments WHERE kind = $1 AND id > $2
             ORDER BY id LIMIT $3",
            &[&kind_str(kind), &after.unwrap_or(""), &limit_of(limit)],
        )?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), doc_of(r).map(|(_, d)| d)))
            .collect())
    }

    fn put_enrollment(
        &self,
        kind: EnrollmentKind,
        key: &str,
        doc: &Value,
        etag: &str,
    ) -> StoreResult<()> {
        self.0.borrow_mut().execute(
            "INSERT INTO enrollments (kind, id, doc, etag) VALUES ($1, $2, $3, $4)
             ON CONFLICT (kind, id) DO UPDATE SET doc = excluded.doc, etag = excluded.etag",
            &[&kind_str(kind), &key, &doc.to_string(), &etag],
        )?;
        Ok(())
    }

    fn delete_enrollment(&self, kind: EnrollmentKind, key: &str) -> StoreResult<()> {
        self.0.borrow_mut().execute(
            "DELETE FROM enrollments WHERE kind = $1 AND id = $2",
            &[&kind_str(kind), &key],
        )?;
        Ok(())
    }

    fn enrollments_by_keys(
        &self,
        kind: EnrollmentKind,
        keys: &[String],
    ) -> StoreResult<Vec<(String, Doc)>> {
        let rows = self.0.borrow_mut().query(
            "SELECT id, doc, etag FROM enrollments WHERE kind = $1 AND id = ANY($2)",
            &[&kind_str(kind), &keys],
        )?;
        rows.iter().map(doc_of).collect()
    }

    fn put_enrollments(&self, kind: EnrollmentKind, entries: &[(String, Doc)]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        let docs: Vec<String> = entries.iter().map(|(_, d)| d.doc.to_string()).collect();
        let etags: Vec<&str> = entries.iter().map(|(_, d)| d.etag.as_str()).collect();
        self.0.borrow_mut().execute(
            "INSERT INTO enrollments (kind, id, doc, etag)
             SELECT $1, id, doc, etag FROM unnest($2::text[], $3::text[], $4::text[]) AS e(id, doc, etag)
             ON CONFLICT (kind, id) DO UPDATE SET doc = excluded.doc, etag = excluded.etag",
            &[&kind_str(kind), &ids, &docs, &etags],
        )?;
        Ok(())
    }

    fn delete_enrollments(&self, kind: EnrollmentKind, keys: &[String]) -> StoreResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.0.borrow_mut().execute(
            "DELETE FROM enrollments WHERE kind = $1 AND id = ANY($2)",
            &[&kind_str(kind), &keys],
        )?;
        Ok(())
    }

    fn certificate(&self, name: &str) -> StoreResult<Option<CaCert>> {
        Ok(self
            .0
            .borrow_mut()
            .query_opt(
                "SELECT name, der, verified, code, etag, created, updated FROM certificates
                 WHERE name = $1",
                &[&name],
            )?
            .map(|r| ca_of(&r)))
    }

    fn certificates(&self) -> StoreResult<Vec<CaCert>> {
        Ok(self
            .0
            .borrow_mut()
            .query(
                "SELECT name, der, verified, code, etag, created, updated FROM certificates
                 ORDER BY name",
                &[],
            )?
            .iter()
            .map(ca_of)
            .collect())
    }

    fn put_certificate(&self, ca: &CaCert) -> StoreResult<()> {
        self.0.borrow_mut().execute(
            "INSERT INTO certificates (name, der, verified, code, etag, created, updated)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (name) DO UPDATE SET der = excluded.der, verified = excluded.verified,
               code = excluded.code, etag = excluded.etag, updated = excluded.updated",
            &[
                &ca.name,
                &ca.der,
                &ca.verified,
                &ca.code,
                &ca.etag,
                &ca.created,
                &ca.updated,
            ],
        )?;
        Ok(())
    }

    fn delete_certificate(&self, name: &str) -> StoreResult<()> {
        self.0
            .borrow_mut()
            .execute("DELETE FROM certificates WHERE name = $1", &[&name])?;
        Ok(())
    }

    fn registration(&self, registration_id: &str) -> StoreResult<Option<Registration>> {
        self.0
            .borrow_mut()
            .query_opt(
                "SELECT id, doc, etag, leaf_sha256 FROM registrations WHERE id = $1",
                &[&registration_id.to_ascii_lowercase()],
            )?
            .map(|r| {
                Ok(Registration {
                    doc: doc_of(&r)?.1,
                    leaf_sha256: r.get(3),
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
        let rows = self.0.borrow_mut().query(
            "SELECT id, doc, etag FROM registrations WHERE group_id = $1 AND id > $2
             ORDER BY id LIMIT $3",
            &[&group_id, &after.unwrap_or(""), &limit_of(limit)],
        )?;
        rows.iter().map(doc_of).collect()
    }

    fn put_registration(
        &self,
        registration_id: &str,
        group_id: Option<&str>,
        doc: &Value,
        etag: &str,
        leaf_sha256: &[u8],
    ) -> StoreResult<()> {
        self.0.borrow_mut().execute(
            "INSERT INTO registrations (id, group_id, doc, etag, leaf_sha256)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET group_id = excluded.group_id, doc = excluded.doc,
               etag = excluded.etag, leaf_sha256 = excluded.leaf_sha256",
            &[
                &registration_id.to_ascii_lowercase(),
                &group_id,
                &doc.to_string(),
                &etag,
                &leaf_sha256,
            ],
        )?;
        Ok(())
    }

    fn delete_registration(&self, registration_id: &str) -> StoreResult<()> {
        let id = registration_id.to_ascii_lowercase();
        let mut tx = self.0.borrow_mut();
        tx.execute("DELETE FROM registrations WHERE id = $1", &[&id])?;
        tx.execute("DELETE FROM operations WHERE registration_id = $1", &[&id])?;
        Ok(())
    }

    fn set_lookup_keys(&self, owner: &str, keys: &[LookupKey]) -> StoreResult<()> {
        let mut tx = self.0.borrow_mut();
        tx.execute("DELETE FROM lookup_keys WHERE owner = $1", &[&owner])?;
        for key in keys {
            tx.execute(
                "INSERT INTO lookup_keys (kind, value, owner, der) VALUES ($1, $2, $3, $4)",
                &[&key.kind.as_str(), &key.value, &owner, &key.der],
            )?;
        }
        Ok(())
    }

    fn lookup(
        &self,
        kind: LookupKind,
        value: &[u8],
    ) -> StoreResult<Vec<(String, Option<Vec<u8>>)>> {
        Ok(self
            .0
            .borrow_mut()
            .query(
                "SELECT owner, der FROM lookup_keys WHERE kind = $1 AND value = $2 ORDER BY owner",
                &[&kind.as_str(), &value],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    fn lookup_keys(&self) -> StoreResult<Vec<(String, LookupKey)>> {
        self.0
            .borrow_mut()
            .query("SELECT owner, kind, value, der FROM lookup_keys", &[])?
            .iter()
            .map(|r| {
                Ok((
                    r.get(0),
                    LookupKey {
                        kind: LookupKind::parse(r.get(1))?,
                        value: r.get(2),
                        der: r.get(3),
                    },
                ))
            })
            .collect()
    }

    fn operation(&self, operation_id: &str, now: i64) -> StoreResult<Option<Operation>> {
        self.0
            .borrow_mut()
            .query_opt(
                "SELECT registration_id, leaf_sha256, doc FROM operations
                 WHERE id = $1 AND created >= $2",
                &[&operation_id, &(now - OPERATION_TTL)],
            )?
            .map(|r| {
                let doc: String = r.get(2);
                Ok(Operation {
                    registration_id: r.get(0),
                    leaf_sha256: r.get(1),
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
        let mut tx = self.0.borrow_mut();
        tx.execute(
            "DELETE FROM operations WHERE registration_id = $1 OR created < $2",
            &[&registration_id, &(now - OPERATION_TTL)],
        )?;
        tx.execute(
            "INSERT INTO operations (id, registration_id, leaf_sha256, doc, created)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &operation_id,
                &registration_id,
                &operation.leaf_sha256,
                &operation.doc.to_string(),
                &now,
            ],
        )?;
        Ok(())
    }
}
