//! One implementation of [`Transaction`] over two SQL dialects. Each
//! statement is written once, with SQLite's numbered `?N` placeholders;
//! the PostgreSQL store prepares it with them rewritten to `$N`
//! ([`postgres_text`]). A store supplies a [`Driver`]: run a statement
//! with [`Param`]s, answer [`Row`]s of [`Cell`]s. What differs between the
//! dialects is here, in one place: the column types (`verified` is an
//! INTEGER in SQLite, a boolean in PostgreSQL: [`Row::flag`] reads both)
//! and the bulk statements only PostgreSQL has (`ANY`, `unnest`), which
//! SQLite runs as one statement per entry in the same transaction.

use anyhow::anyhow;
use serde_json::Value;

use attest_dps::documents::CaCert;
use policy_host::EnrollmentKind;

use crate::store::{
    Doc, LookupKey, LookupKind, OPERATION_TTL, Operation, Registration, StoreError, StoreResult,
    StoredCrl, Transaction, Versions, kind_str, limit_of, parse_stored,
};

/// The SQL dialect of a [`Driver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A value bound to a placeholder.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Param<'a> {
    Text(&'a str),
    MaybeText(Option<&'a str>),
    Blob(&'a [u8]),
    MaybeBlob(Option<&'a [u8]>),
    Int(i64),
    Flag(bool),
    /// A text array (PostgreSQL only).
    Texts(&'a [&'a str]),
}

/// A value read from a column.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cell {
    Null,
    Text(String),
    Blob(Vec<u8>),
    Int(i64),
    Flag(bool),
}

/// A row read, its cells by column index.
#[derive(Debug)]
pub(crate) struct Row(pub(crate) Vec<Cell>);

impl Row {
    fn take(&mut self, i: usize) -> Cell {
        self.0
            .get_mut(i)
            .map_or(Cell::Null, |c| std::mem::replace(c, Cell::Null))
    }

    fn mismatch(i: usize, want: &str, got: &Cell) -> StoreError {
        StoreError::Database(anyhow!(
            "column {i} holds {got:?} where {want} was expected"
        ))
    }

    /// A text column.
    pub(crate) fn text(&mut self, i: usize) -> StoreResult<String> {
        match self.take(i) {
            Cell::Text(s) => Ok(s),
            other => Err(Row::mismatch(i, "text", &other)),
        }
    }

    /// A text column that may be NULL.
    pub(crate) fn maybe_text(&mut self, i: usize) -> StoreResult<Option<String>> {
        match self.take(i) {
            Cell::Null => Ok(None),
            Cell::Text(s) => Ok(Some(s)),
            other => Err(Row::mismatch(i, "text or NULL", &other)),
        }
    }

    /// A blob (`BYTEA`) column.
    pub(crate) fn blob(&mut self, i: usize) -> StoreResult<Vec<u8>> {
        match self.take(i) {
            Cell::Blob(b) => Ok(b),
            other => Err(Row::mismatch(i, "bytes", &other)),
        }
    }

    /// A blob column that may be NULL.
    pub(crate) fn maybe_blob(&mut self, i: usize) -> StoreResult<Option<Vec<u8>>> {
        match self.take(i) {
            Cell::Null => Ok(None),
            Cell::Blob(b) => Ok(Some(b)),
            other => Err(Row::mismatch(i, "bytes or NULL", &other)),
        }
    }

    /// A boolean: PostgreSQL's BOOLEAN, SQLite's INTEGER 0 or 1.
    pub(crate) fn flag(&mut self, i: usize) -> StoreResult<bool> {
        match self.take(i) {
            Cell::Flag(b) => Ok(b),
            Cell::Int(0) => Ok(false),
            Cell::Int(1) => Ok(true),
            other => Err(Row::mismatch(i, "a boolean", &other)),
        }
    }
}

/// What a store's connection (or transaction on it) runs statements with.
pub(crate) trait Driver {
    /// Its dialect.
    const DIALECT: Dialect;
    /// Runs a statement of this module; the number of rows changed.
    fn execute(&self, sql: &'static str, params: &[Param<'_>]) -> StoreResult<u64>;
    /// Runs a query of this module; its rows.
    fn query(&self, sql: &'static str, params: &[Param<'_>]) -> StoreResult<Vec<Row>>;
}

impl<D: Driver> Driver for &D {
    const DIALECT: Dialect = D::DIALECT;
    fn execute(&self, sql: &'static str, params: &[Param<'_>]) -> StoreResult<u64> {
        (**self).execute(sql, params)
    }
    fn query(&self, sql: &'static str, params: &[Param<'_>]) -> StoreResult<Vec<Row>> {
        (**self).query(sql, params)
    }
}

/// A unit of work over a [`Driver`]: the one [`Transaction`] both stores
/// hand out, with the snapshot version it writes at.
pub(crate) struct Sql<D>(pub(crate) D, pub(crate) Versioning);

/// How a unit of work versions what it changes (edge snapshots): the first
/// change to an enrollment or CA certificate bumps the store's version
/// once, and every change records that version for its document. Writes
/// are serialised (SQLite's one writer, PostgreSQL's advisory lock), so
/// versions commit in order and a reader's snapshot holds every version up
/// to the one it reads, and none after.
pub(crate) struct Versioning {
    /// The version this unit of work writes at, once it has one.
    version: std::cell::Cell<Option<i64>>,
    /// Versions of tombstones kept ([`crate::store::DEFAULT_HISTORY`]).
    history: i64,
}

impl Versioning {
    /// Versioning for a unit of work of a store that keeps `history`
    /// versions of tombstones.
    pub(crate) fn new(history: u64) -> Versioning {
        Versioning {
            version: std::cell::Cell::new(None),
            history: i64::try_from(history).unwrap_or(i64::MAX),
        }
    }
}

/// One enrollment by kind and stored key.
pub(crate) const ENROLLMENT: &str =
    "SELECT id, doc, etag FROM enrollments WHERE kind = ?1 AND id = ?2";
/// A keyset page of enrollments of a kind.
pub(crate) const ENROLLMENTS_AFTER: &str =
    "SELECT id, doc, etag FROM enrollments WHERE kind = ?1 AND id > ?2 ORDER BY id LIMIT ?3";
/// Creates or replaces an enrollment.
pub(crate) const PUT_ENROLLMENT: &str =
    "INSERT INTO enrollments (kind, id, doc, etag) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (kind, id) DO UPDATE SET doc = excluded.doc, etag = excluded.etag";
/// Deletes an enrollment.
pub(crate) const DELETE_ENROLLMENT: &str = "DELETE FROM enrollments WHERE kind = ?1 AND id = ?2";

/// PostgreSQL only: the enrollments of a kind with any of these keys.
pub(crate) const ENROLLMENTS_BY_KEYS: &str =
    "SELECT id, doc, etag FROM enrollments WHERE kind = ?1 AND id = ANY(?2)";
/// PostgreSQL only: creates or replaces enrollments from three arrays.
pub(crate) const PUT_ENROLLMENTS: &str = "INSERT INTO enrollments (kind, id, doc, etag)
     SELECT ?1, id, doc, etag FROM unnest(?2::text[], ?3::text[], ?4::text[]) AS e(id, doc, etag)
     ON CONFLICT (kind, id) DO UPDATE SET doc = excluded.doc, etag = excluded.etag";
/// PostgreSQL only: deletes the enrollments of a kind with any of these keys.
pub(crate) const DELETE_ENROLLMENTS: &str =
    "DELETE FROM enrollments WHERE kind = ?1 AND id = ANY(?2)";

/// The columns of a CA certificate row, in [`crate::store`]'s order.
macro_rules! certificate_columns {
    () => {
        "name, der, verified, code, etag, created, updated"
    };
}
/// One CA certificate by name.
pub(crate) const CERTIFICATE: &str = concat!(
    "SELECT ",
    certificate_columns!(),
    " FROM certificates WHERE name = ?1"
);
/// Every CA certificate.
pub(crate) const CERTIFICATES: &str = concat!(
    "SELECT ",
    certificate_columns!(),
    " FROM certificates ORDER BY name"
);
/// Creates or replaces a CA certificate (its creation time stays).
pub(crate) const PUT_CERTIFICATE: &str = concat!(
    "INSERT INTO certificates (",
    certificate_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
     ON CONFLICT (name) DO UPDATE SET der = excluded.der, verified = excluded.verified,
       code = excluded.code, etag = excluded.etag, updated = excluded.updated"
);
/// Deletes a CA certificate.
pub(crate) const DELETE_CERTIFICATE: &str = "DELETE FROM certificates WHERE name = ?1";

/// One CRL.
pub(crate) const CRL: &str =
    "SELECT name, der, issuer_key, source, etag, created, updated FROM crls WHERE name = ?1";
/// Every CRL.
pub(crate) const CRLS: &str =
    "SELECT name, der, issuer_key, source, etag, created, updated FROM crls ORDER BY name";
/// The CRLs of one issuer (by name key), in name order.
pub(crate) const CRLS_BY_ISSUER: &str = "SELECT der FROM crls WHERE issuer_key = ?1 ORDER BY name";
/// Creates or replaces a CRL (its creation time stays).
pub(crate) const PUT_CRL: &str =
    "INSERT INTO crls (name, der, issuer_key, source, etag, created, updated)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
     ON CONFLICT (name) DO UPDATE SET der = excluded.der, issuer_key = excluded.issuer_key,
       source = excluded.source, etag = excluded.etag, updated = excluded.updated";
/// Deletes a CRL.
pub(crate) const DELETE_CRL: &str = "DELETE FROM crls WHERE name = ?1";

/// One registration record, with the certificate it belongs to.
pub(crate) const REGISTRATION: &str =
    "SELECT id, doc, etag, leaf_sha256 FROM registrations WHERE id = ?1";
/// A keyset page of a group's registration records.
pub(crate) const REGISTRATIONS_OF_GROUP: &str =
    "SELECT id, doc, etag FROM registrations WHERE group_id = ?1 AND id > ?2
     ORDER BY id LIMIT ?3";
/// Creates or replaces a registration record.
pub(crate) const PUT_REGISTRATION: &str =
    "INSERT INTO registrations (id, group_id, doc, etag, leaf_sha256)
     VALUES (?1, ?2, ?3, ?4, ?5)
     ON CONFLICT (id) DO UPDATE SET group_id = excluded.group_id, doc = excluded.doc,
       etag = excluded.etag, leaf_sha256 = excluded.leaf_sha256";
/// Deletes a registration record.
pub(crate) const DELETE_REGISTRATION: &str = "DELETE FROM registrations WHERE id = ?1";
/// Deletes a registration's operation.
pub(crate) const DELETE_OPERATIONS_OF: &str = "DELETE FROM operations WHERE registration_id = ?1";

/// Deletes the lookup keys of an owner.
pub(crate) const DELETE_LOOKUP_KEYS: &str = "DELETE FROM lookup_keys WHERE owner = ?1";
/// Adds a lookup key.
pub(crate) const PUT_LOOKUP_KEY: &str =
    "INSERT INTO lookup_keys (kind, value, owner, der) VALUES (?1, ?2, ?3, ?4)";
/// The owners of a lookup key, ordered.
pub(crate) const LOOKUP: &str =
    "SELECT owner, der FROM lookup_keys WHERE kind = ?1 AND value = ?2 ORDER BY owner";
/// Every lookup key.
pub(crate) const LOOKUP_KEYS: &str = "SELECT owner, kind, value, der FROM lookup_keys";

/// An operation that has not expired.
pub(crate) const OPERATION: &str = "SELECT registration_id, leaf_sha256, doc FROM operations
     WHERE id = ?1 AND created >= ?2";
/// Deletes a registration's operation and every expired one (rows from
/// before `created` was kept have none: they are expired).
pub(crate) const DELETE_OLD_OPERATIONS: &str =
    "DELETE FROM operations WHERE registration_id = ?1 OR created IS NULL OR created < ?2";
/// Adds an operation.
pub(crate) const PUT_OPERATION: &str =
    "INSERT INTO operations (id, registration_id, leaf_sha256, doc, created)
     VALUES (?1, ?2, ?3, ?4, ?5)";

/// Bumps the store's version; the new one.
pub(crate) const BUMP_VERSION: &str =
    "UPDATE meta SET value = value + 1 WHERE key = 'version' RETURNING value";
/// The store's version and history horizon.
pub(crate) const VERSIONS: &str =
    "SELECT key, value FROM meta WHERE key = 'version' OR key = 'horizon'";
/// Records that a document changed (or went: `deleted`) at a version.
pub(crate) const PUT_CHANGE: &str = "INSERT INTO changes (kind, id, version, deleted)
     VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (kind, id) DO UPDATE SET version = excluded.version, deleted = excluded.deleted";
/// PostgreSQL only: records that documents changed at a version.
pub(crate) const PUT_CHANGES: &str = "INSERT INTO changes (kind, id, version, deleted)
     SELECT ?1, id, ?2, ?3 FROM unnest(?4::text[]) AS c(id)
     ON CONFLICT (kind, id) DO UPDATE SET version = excluded.version, deleted = excluded.deleted";
/// A keyset page of the documents changed after a version.
pub(crate) const CHANGES_AFTER: &str = "SELECT kind, id FROM changes
     WHERE version > ?1 AND (kind > ?2 OR (kind = ?2 AND id > ?3))
     ORDER BY kind, id LIMIT ?4";
/// The newest tombstone at or before a version.
pub(crate) const NEWEST_TOMBSTONE: &str =
    "SELECT max(version) FROM changes WHERE deleted = ?1 AND version <= ?2";
/// Prunes the tombstones at or before a version.
pub(crate) const PRUNE_TOMBSTONES: &str =
    "DELETE FROM changes WHERE deleted = ?1 AND version <= ?2";
/// Raises the history horizon.
pub(crate) const RAISE_HORIZON: &str =
    "UPDATE meta SET value = ?1 WHERE key = 'horizon' AND value < ?1";
/// An edge replica's state.
pub(crate) const EDGE_STATE: &str = "SELECT value FROM edge_state WHERE key = ?1";
/// Sets an edge replica's state.
pub(crate) const PUT_EDGE_STATE: &str = "INSERT INTO edge_state (key, value) VALUES (?1, ?2)
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";
/// An edge replica's full snapshot replaces every document and key.
pub(crate) const CLEAR_ENROLLMENTS: &str = "DELETE FROM enrollments";
/// See [`CLEAR_ENROLLMENTS`].
pub(crate) const CLEAR_CERTIFICATES: &str = "DELETE FROM certificates";
/// See [`CLEAR_ENROLLMENTS`].
pub(crate) const CLEAR_LOOKUP_KEYS: &str = "DELETE FROM lookup_keys";
/// See [`CLEAR_ENROLLMENTS`].
pub(crate) const CLEAR_CHANGES: &str = "DELETE FROM changes";

/// The `kind` of a CA certificate's row in `changes`.
pub(crate) const CERTIFICATE_KIND: &str = "certificate";

/// `(id, doc, etag)` columns as a key and a document.
fn doc_of(mut row: Row) -> StoreResult<(String, StoreResult<Doc>)> {
    let id = row.text(0)?;
    let doc = row.text(1)?;
    let etag = row.text(2)?;
    Ok((id, parse_stored(&doc).map(|doc| Doc { doc, etag })))
}

/// The columns of [`CERTIFICATE`] as a CA certificate.
fn crl_of(mut row: Row) -> StoreResult<StoredCrl> {
    Ok(StoredCrl {
        name: row.text(0)?,
        der: row.blob(1)?,
        issuer_key: row.blob(2)?,
        source: row.maybe_text(3)?,
        etag: row.text(4)?,
        created: row.text(5)?,
        updated: row.text(6)?,
    })
}

fn ca_of(mut row: Row) -> StoreResult<CaCert> {
    Ok(CaCert {
        name: row.text(0)?,
        der: row.blob(1)?,
        verified: row.flag(2)?,
        code: row.maybe_text(3)?,
        etag: row.text(4)?,
        created: row.text(5)?,
        updated: row.text(6)?,
    })
}

impl<D: Driver> Sql<D> {
    /// The first row a query answers, if any.
    fn one(&self, sql: &'static str, params: &[Param<'_>]) -> StoreResult<Option<Row>> {
        Ok(self.0.query(sql, params)?.into_iter().next())
    }

    /// The version this unit of work writes at (bumping the store's the
    /// first time it is asked).
    fn version(&self) -> StoreResult<i64> {
        if let Some(v) = self.1.version.get() {
            return Ok(v);
        }
        let mut row = self
            .one(BUMP_VERSION, &[])?
            .ok_or_else(|| StoreError::Database(anyhow!("the store has no version row")))?;
        let v = match row.take(0) {
            Cell::Int(v) => v,
            other => return Err(Row::mismatch(0, "an integer", &other)),
        };
        self.1.version.set(Some(v));
        Ok(v)
    }

    /// Records that documents of `kind` (a stored enrollment kind or
    /// [`CERTIFICATE_KIND`]) changed or went in this unit of work; a
    /// delete also prunes the tombstones older than the history kept.
    fn changed(&self, kind: &str, ids: &[&str], deleted: bool) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let version = self.version()?;
        match D::DIALECT {
            Dialect::Postgres if ids.len() > 1 => {
                let params = [
                    Param::Text(kind),
                    Param::Int(version),
                    Param::Flag(deleted),
                    Param::Texts(ids),
                ];
                self.0.execute(PUT_CHANGES, &params)?;
            }
            _ => {
                for id in ids {
                    let params = [
                        Param::Text(kind),
                        Param::Text(id),
                        Param::Int(version),
                        Param::Flag(deleted),
                    ];
                    self.0.execute(PUT_CHANGE, &params)?;
                }
            }
        }
        if deleted && version > self.1.history {
            let bound = version - self.1.history;
            let params = [Param::Flag(true), Param::Int(bound)];
            let newest = match self.one(NEWEST_TOMBSTONE, &params)? {
                Some(mut row) => match row.take(0) {
                    Cell::Int(v) => Some(v),
                    _ => None,
                },
                None => None,
            };
            if let Some(newest) = newest {
                self.0.execute(PRUNE_TOMBSTONES, &params)?;
                self.0.execute(RAISE_HORIZON, &[Param::Int(newest)])?;
            }
        }
        Ok(())
    }
}

impl<D: Driver> Transaction for Sql<D> {
    fn enrollment(&self, kind: EnrollmentKind, key: &str) -> StoreResult<Option<Doc>> {
        let params = [Param::Text(kind_str(kind)), Param::Text(key)];
        match self.one(ENROLLMENT, &params)? {
            Some(row) => Ok(Some(doc_of(row)?.1?)),
            None => Ok(None),
        }
    }

    fn enrollments(
        &self,
        kind: EnrollmentKind,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, StoreResult<Doc>)>> {
        let params = [
            Param::Text(kind_str(kind)),
            Param::Text(after.unwrap_or("")),
            Param::Int(limit_of(limit)),
        ];
        self.0
            .query(ENROLLMENTS_AFTER, &params)?
            .into_iter()
            .map(doc_of)
            .collect()
    }

    fn put_enrollment(
        &self,
        kind: EnrollmentKind,
        key: &str,
        doc: &Value,
        etag: &str,
    ) -> StoreResult<()> {
        self.put_enrollment_text(kind, key, &doc.to_string(), etag)
    }

    fn put_enrollment_text(
        &self,
        kind: EnrollmentKind,
        key: &str,
        doc: &str,
        etag: &str,
    ) -> StoreResult<()> {
        let params = [
            Param::Text(kind_str(kind)),
            Param::Text(key),
            Param::Text(doc),
            Param::Text(etag),
        ];
        self.0.execute(PUT_ENROLLMENT, &params)?;
        self.changed(kind_str(kind), &[key], false)
    }

    fn delete_enrollment(&self, kind: EnrollmentKind, key: &str) -> StoreResult<()> {
        let params = [Param::Text(kind_str(kind)), Param::Text(key)];
        self.0.execute(DELETE_ENROLLMENT, &params)?;
        self.changed(kind_str(kind), &[key], true)
    }

    fn enrollments_by_keys(
        &self,
        kind: EnrollmentKind,
        keys: &[String],
    ) -> StoreResult<Vec<(String, Doc)>> {
        let mut out = Vec::new();
        match D::DIALECT {
            Dialect::Postgres => {
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                let params = [Param::Text(kind_str(kind)), Param::Texts(&keys)];
                for row in self.0.query(ENROLLMENTS_BY_KEYS, &params)? {
                    let (key, doc) = doc_of(row)?;
                    out.push((key, doc?));
                }
            }
            Dialect::Sqlite => {
                for key in keys {
                    if let Some(doc) = self.enrollment(kind, key)? {
                        out.push((key.clone(), doc));
                    }
                }
            }
        }
        Ok(out)
    }

    fn put_enrollments(&self, kind: EnrollmentKind, entries: &[(String, Doc)]) -> StoreResult<()> {
        match D::DIALECT {
            Dialect::Postgres if !entries.is_empty() => {
                let ids: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
                let docs: Vec<String> = entries.iter().map(|(_, d)| d.doc.to_string()).collect();
                let docs: Vec<&str> = docs.iter().map(String::as_str).collect();
                let etags: Vec<&str> = entries.iter().map(|(_, d)| d.etag.as_str()).collect();
                let params = [
                    Param::Text(kind_str(kind)),
                    Param::Texts(&ids),
                    Param::Texts(&docs),
                    Param::Texts(&etags),
                ];
                self.0.execute(PUT_ENROLLMENTS, &params)?;
                self.changed(kind_str(kind), &ids, false)?;
            }
            _ => {
                for (key, doc) in entries {
                    self.put_enrollment(kind, key, &doc.doc, &doc.etag)?;
                }
            }
        }
        Ok(())
    }

    fn delete_enrollments(&self, kind: EnrollmentKind, keys: &[String]) -> StoreResult<()> {
        match D::DIALECT {
            Dialect::Postgres if !keys.is_empty() => {
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                let params = [Param::Text(kind_str(kind)), Param::Texts(&keys)];
                self.0.execute(DELETE_ENROLLMENTS, &params)?;
                self.changed(kind_str(kind), &keys, true)?;
            }
            _ => {
                for key in keys {
                    self.delete_enrollment(kind, key)?;
                }
            }
        }
        Ok(())
    }

    fn certificate(&self, name: &str) -> StoreResult<Option<CaCert>> {
        self.one(CERTIFICATE, &[Param::Text(name)])?
            .map(ca_of)
            .transpose()
    }

    fn certificates(&self) -> StoreResult<Vec<CaCert>> {
        self.0
            .query(CERTIFICATES, &[])?
            .into_iter()
            .map(ca_of)
            .collect()
    }

    fn put_certificate(&self, ca: &CaCert) -> StoreResult<()> {
        let params = [
            Param::Text(&ca.name),
            Param::Blob(&ca.der),
            Param::Flag(ca.verified),
            Param::MaybeText(ca.code.as_deref()),
            Param::Text(&ca.etag),
            Param::Text(&ca.created),
            Param::Text(&ca.updated),
        ];
        self.0.execute(PUT_CERTIFICATE, &params)?;
        self.changed(CERTIFICATE_KIND, &[&ca.name], false)
    }

    fn delete_certificate(&self, name: &str) -> StoreResult<()> {
        self.0.execute(DELETE_CERTIFICATE, &[Param::Text(name)])?;
        self.changed(CERTIFICATE_KIND, &[name], true)
    }

    fn crl(&self, name: &str) -> StoreResult<Option<StoredCrl>> {
        self.one(CRL, &[Param::Text(name)])?.map(crl_of).transpose()
    }

    fn crls(&self) -> StoreResult<Vec<StoredCrl>> {
        self.0.query(CRLS, &[])?.into_iter().map(crl_of).collect()
    }

    fn crls_by_issuer(&self, issuer_key: &[u8]) -> StoreResult<Vec<Vec<u8>>> {
        self.0
            .query(CRLS_BY_ISSUER, &[Param::Blob(issuer_key)])?
            .into_iter()
            .map(|mut row| row.blob(0))
            .collect()
    }

    fn put_crl(&self, crl: &StoredCrl) -> StoreResult<()> {
        let params = [
            Param::Text(&crl.name),
            Param::Blob(&crl.der),
            Param::Blob(&crl.issuer_key),
            Param::MaybeText(crl.source.as_deref()),
            Param::Text(&crl.etag),
            Param::Text(&crl.created),
            Param::Text(&crl.updated),
        ];
        self.0.execute(PUT_CRL, &params)?;
        Ok(())
    }

    fn delete_crl(&self, name: &str) -> StoreResult<()> {
        self.0.execute(DELETE_CRL, &[Param::Text(name)])?;
        Ok(())
    }

    fn registration(&self, registration_id: &str) -> StoreResult<Option<Registration>> {
        let id = registration_id.to_ascii_lowercase();
        let Some(mut row) = self.one(REGISTRATION, &[Param::Text(&id)])? else {
            return Ok(None);
        };
        let leaf_sha256 = row.maybe_blob(3)?;
        Ok(Some(Registration {
            doc: doc_of(row)?.1?,
            leaf_sha256,
        }))
    }

    fn registrations_of_group(
        &self,
        group_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, Doc)>> {
        let params = [
            Param::Text(group_id),
            Param::Text(after.unwrap_or("")),
            Param::Int(limit_of(limit)),
        ];
        self.0
            .query(REGISTRATIONS_OF_GROUP, &params)?
            .into_iter()
            .map(|row| {
                let (id, doc) = doc_of(row)?;
                Ok((id, doc?))
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
        let id = registration_id.to_ascii_lowercase();
        let doc = doc.to_string();
        let params = [
            Param::Text(&id),
            Param::MaybeText(group_id),
            Param::Text(&doc),
            Param::Text(etag),
            Param::Blob(leaf_sha256),
        ];
        self.0.execute(PUT_REGISTRATION, &params)?;
        Ok(())
    }

    fn delete_registration(&self, registration_id: &str) -> StoreResult<()> {
        let id = registration_id.to_ascii_lowercase();
        self.0.execute(DELETE_REGISTRATION, &[Param::Text(&id)])?;
        self.0.execute(DELETE_OPERATIONS_OF, &[Param::Text(&id)])?;
        Ok(())
    }

    fn set_lookup_keys(&self, owner: &str, keys: &[LookupKey]) -> StoreResult<()> {
        self.0.execute(DELETE_LOOKUP_KEYS, &[Param::Text(owner)])?;
        for key in keys {
            let params = [
                Param::Text(key.kind.as_str()),
                Param::Blob(&key.value),
                Param::Text(owner),
                Param::MaybeBlob(key.der.as_deref()),
            ];
            self.0.execute(PUT_LOOKUP_KEY, &params)?;
        }
        Ok(())
    }

    fn lookup(
        &self,
        kind: LookupKind,
        value: &[u8],
    ) -> StoreResult<Vec<(String, Option<Vec<u8>>)>> {
        let params = [Param::Text(kind.as_str()), Param::Blob(value)];
        self.0
            .query(LOOKUP, &params)?
            .into_iter()
            .map(|mut row| Ok((row.text(0)?, row.maybe_blob(1)?)))
            .collect()
    }

    fn lookup_keys(&self) -> StoreResult<Vec<(String, LookupKey)>> {
        self.0
            .query(LOOKUP_KEYS, &[])?
            .into_iter()
            .map(|mut row| {
                let owner = row.text(0)?;
                let kind = LookupKind::parse(&row.text(1)?)?;
                Ok((
                    owner,
                    LookupKey {
                        kind,
                        value: row.blob(2)?,
                        der: row.maybe_blob(3)?,
                    },
                ))
            })
            .collect()
    }

    fn versions(&self) -> StoreResult<Versions> {
        let mut out = Versions::default();
        for mut row in self.0.query(VERSIONS, &[])? {
            let key = row.text(0)?;
            let value = match row.take(1) {
                Cell::Int(v) => u64::try_from(v).unwrap_or(0),
                other => return Err(Row::mismatch(1, "an integer", &other)),
            };
            match key.as_str() {
                "version" => out.version = value,
                _ => out.horizon = value,
            }
        }
        Ok(out)
    }

    fn changes_after(
        &self,
        since: u64,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> StoreResult<Vec<(String, String)>> {
        let (kind, id) = after.unwrap_or(("", ""));
        let params = [
            Param::Int(i64::try_from(since).unwrap_or(i64::MAX)),
            Param::Text(kind),
            Param::Text(id),
            Param::Int(limit_of(limit)),
        ];
        self.0
            .query(CHANGES_AFTER, &params)?
            .into_iter()
            .map(|mut row| Ok((row.text(0)?, row.text(1)?)))
            .collect()
    }

    fn edge_state(&self, key: &str) -> StoreResult<Option<String>> {
        self.one(EDGE_STATE, &[Param::Text(key)])?
            .map(|mut row| row.text(0))
            .transpose()
    }

    fn put_edge_state(&self, key: &str, value: &str) -> StoreResult<()> {
        self.0
            .execute(PUT_EDGE_STATE, &[Param::Text(key), Param::Text(value)])?;
        Ok(())
    }

    fn clear_documents(&self) -> StoreResult<()> {
        for sql in [
            CLEAR_ENROLLMENTS,
            CLEAR_CERTIFICATES,
            CLEAR_LOOKUP_KEYS,
            CLEAR_CHANGES,
        ] {
            self.0.execute(sql, &[])?;
        }
        Ok(())
    }

    fn operation(&self, operation_id: &str, now: i64) -> StoreResult<Option<Operation>> {
        let params = [Param::Text(operation_id), Param::Int(now - OPERATION_TTL)];
        let Some(mut row) = self.one(OPERATION, &params)? else {
            return Ok(None);
        };
        let registration_id = row.text(0)?;
        let leaf_sha256 = row.blob(1)?;
        Operation::from_stored(registration_id, leaf_sha256, &row.text(2)?).map(Some)
    }

    fn put_operation(
        &self,
        operation_id: &str,
        operation: &Operation,
        now: i64,
    ) -> StoreResult<()> {
        let registration_id = operation.registration_id.to_ascii_lowercase();
        let params = [
            Param::Text(&registration_id),
            Param::Int(now - OPERATION_TTL),
        ];
        self.0.execute(DELETE_OLD_OPERATIONS, &params)?;
        let doc = operation.doc.to_string();
        let params = [
            Param::Text(operation_id),
            Param::Text(&registration_id),
            Param::Blob(&operation.leaf_sha256),
            Param::Text(&doc),
            Param::Int(now),
        ];
        self.0.execute(PUT_OPERATION, &params)?;
        Ok(())
    }
}

/// A statement's text for PostgreSQL: each `?N` placeholder as `$N`. The
/// statements above hold no other `?` (no string literal, no JSON
/// operator), which a test checks.
pub(crate) fn postgres_text(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[&str] = &[
        ENROLLMENT,
        ENROLLMENTS_AFTER,
        PUT_ENROLLMENT,
        DELETE_ENROLLMENT,
        ENROLLMENTS_BY_KEYS,
        PUT_ENROLLMENTS,
        DELETE_ENROLLMENTS,
        CERTIFICATE,
        CERTIFICATES,
        PUT_CERTIFICATE,
        DELETE_CERTIFICATE,
        REGISTRATION,
        REGISTRATIONS_OF_GROUP,
        PUT_REGISTRATION,
        DELETE_REGISTRATION,
        DELETE_OPERATIONS_OF,
        DELETE_LOOKUP_KEYS,
        PUT_LOOKUP_KEY,
        LOOKUP,
        LOOKUP_KEYS,
        OPERATION,
        DELETE_OLD_OPERATIONS,
        PUT_OPERATION,
        BUMP_VERSION,
        VERSIONS,
        PUT_CHANGE,
        PUT_CHANGES,
        CHANGES_AFTER,
        NEWEST_TOMBSTONE,
        PRUNE_TOMBSTONES,
        RAISE_HORIZON,
        EDGE_STATE,
        PUT_EDGE_STATE,
        CLEAR_ENROLLMENTS,
        CLEAR_CERTIFICATES,
        CLEAR_LOOKUP_KEYS,
        CLEAR_CHANGES,
    ];

    #[test]
    fn placeholders_are_numbered_and_rewritten_one_for_one() {
        for sql in ALL {
            let pg = postgres_text(sql);
            assert!(!pg.contains('?'), "a `?` that is not a placeholder: {sql}");
            assert_eq!(sql.matches('?').count(), pg.matches('$').count(), "{sql}");
            // Numbered from 1 without gaps, so both drivers bind the same
            // parameter to the same place.
            let mut numbers: Vec<u32> = sql
                .split('?')
                .skip(1)
                .map(|rest| {
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse().unwrap_or(0)
                })
                .collect();
            numbers.sort_unstable();
            numbers.dedup();
            let expected: Vec<u32> = (1..=u32::try_from(numbers.len()).unwrap_or(0)).collect();
            assert_eq!(numbers, expected, "{sql}");
        }
        assert_eq!(
            postgres_text("SELECT a FROM t WHERE x = ?1 AND y = ?12"),
            "SELECT a FROM t WHERE x = $1 AND y = $12"
        );
    }
}
