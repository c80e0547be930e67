//! What the service needs of a store: DPS documents by key, with etags, in
//! transactions. [`crate::sqlite::SqliteStore`] is the embedded
//! implementation and [`crate::postgres::PostgresStore`] the shared one;
//! both hand out the one [`Transaction`] of `crate::sql` (each statement
//! written once, over the two dialects). Another SQL database adds a
//! driver there; any other store implements [`Store`], [`Snapshot`] and
//! [`Transaction`], whose operations fail with a [`StoreError`].
//!
//! Every method of [`Transaction`] runs inside one atomic unit of work
//! opened by [`Store::write`] (serialised against other writes, committed
//! durably before it returns) or [`Store::read`] (a consistent snapshot).

use anyhow::Result;
use serde_json::Value;

use attest_dps::documents::CaCert;
use policy_host::EnrollmentKind;

/// A stored document and its etag.
#[derive(Clone, Debug)]
pub struct Doc {
    /// The document as the APIs return it.
    pub doc: Value,
    /// Its current etag.
    pub etag: String,
}

/// What a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A stored document that is not JSON any more: a fact about that one
    /// document (it refuses its devices), not a failure of the store.
    #[error("stored document is not JSON: {0}")]
    Unreadable(#[source] serde_json::Error),
    /// The database failed: connection, I/O, a constraint, a lock, or a
    /// row attest cannot read. The operation did nothing it can rely on.
    #[error(transparent)]
    Database(#[from] anyhow::Error),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.into())
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        StoreError::Database(e.into())
    }
}

/// The result of a store operation.
pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// The `kind` column of an enrollment row (both stores).
pub(crate) fn kind_str(kind: EnrollmentKind) -> &'static str {
    attest_dps::kind::names(kind).stored
}

/// A page size as an SQL `LIMIT` (saturating: a limit is a bound).
pub(crate) fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Parses a stored document; see [`StoreError::Unreadable`].
pub fn parse_stored(text: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(StoreError::Unreadable)
}

/// A registration record and the certificate it belongs to.
#[derive(Clone, Debug)]
pub struct Registration {
    /// The DPS `DeviceRegistrationState`.
    pub doc: Doc,
    /// SHA-256 of the device certificate that registered; `None` for
    /// records from before it was kept (they belong to no certificate).
    pub leaf_sha256: Option<Vec<u8>>,
}

impl Registration {
    /// Whether the record belongs to the certificate with this SHA-256.
    pub fn owned_by(&self, leaf_sha256: &[u8]) -> bool {
        self.leaf_sha256.as_deref() == Some(leaf_sha256)
    }
}

/// A registration operation, kept for polling.
#[derive(Clone, Debug)]
pub struct Operation {
    /// Lower-case registration ID it belongs to.
    pub registration_id: String,
    /// SHA-256 of the device certificate that registered.
    pub leaf_sha256: Vec<u8>,
    /// The DPS `RegistrationOperationStatus`.
    pub doc: Value,
}

impl Operation {
    /// An operation from its stored columns (the document as text).
    pub(crate) fn from_stored(
        registration_id: String,
        leaf_sha256: Vec<u8>,
        doc: &str,
    ) -> StoreResult<Operation> {
        Ok(Operation {
            registration_id,
            leaf_sha256,
            doc: serde_json::from_str(doc).map_err(|e| {
                StoreError::Database(anyhow::Error::new(e).context("stored operation is not JSON"))
            })?,
        })
    }
}

/// A store's snapshot version (bumped once by every write transaction that
/// changes an enrollment or a CA certificate) and its history horizon:
/// deletes up to `horizon` are forgotten, so a delta from a version before
/// it cannot be told.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Versions {
    /// The version of the last write.
    pub version: u64,
    /// The newest version whose deletes were pruned (0: none).
    pub horizon: u64,
}

/// Versions of deletes a store remembers for snapshot deltas by default.
pub const DEFAULT_HISTORY: u64 = 100_000;

/// How long an operation stays queryable, seconds. DPS keeps operations
/// only for polling, which clients do within seconds of registering.
pub const OPERATION_TTL: i64 = 3600;

/// The operations of one unit of work. Registration IDs are passed as
/// received; implementations compare them case-insensitively.
pub trait Transaction {
    /// An enrollment by kind and stored key ([`attest_dps::documents::key_of`]).
    fn enrollment(&self, kind: EnrollmentKind, key: &str) -> StoreResult<Option<Doc>>;
    /// At most `limit` enrollments of a kind whose keys follow `after`, in
    /// key order, each parsed on its own: one that is not JSON any more is
    /// reported, not fatal to the rest.
    fn enrollments(
        &self,
        kind: EnrollmentKind,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, StoreResult<Doc>)>>;
    /// [`Transaction::enrollments`], failing if one of them is not JSON (a
    /// keyset page for the management API).
    fn enrollments_after(
        &self,
        kind: EnrollmentKind,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, Doc)>> {
        self.enrollments(kind, after, limit)?
            .into_iter()
            .map(|(key, doc)| Ok((key, doc?)))
            .collect()
    }
    /// Creates or replaces an enrollment.
    fn put_enrollment(
        &self,
        kind: EnrollmentKind,
        key: &str,
        doc: &Value,
        etag: &str,
    ) -> StoreResult<()>;
    /// Creates or replaces an enrollment with its stored text as it is
    /// (an edge replica copies a document that is not JSON as such, so that
    /// it refuses there as it refuses on the service).
    fn put_enrollment_text(
        &self,
        kind: EnrollmentKind,
        key: &str,
        doc: &str,
        etag: &str,
    ) -> StoreResult<()>;
    /// Deletes an enrollment.
    fn delete_enrollment(&self, kind: EnrollmentKind, key: &str) -> StoreResult<()>;
    /// The enrollments of a kind with these keys (those that exist; a
    /// document that is not JSON is an error). A store may read them in one
    /// query.
    fn enrollments_by_keys(
        &self,
        kind: EnrollmentKind,
        keys: &[String],
    ) -> StoreResult<Vec<(String, Doc)>>;
    /// Creates or replaces enrollments (distinct keys). A store may write
    /// them in one statement.
    fn put_enrollments(&self, kind: EnrollmentKind, entries: &[(String, Doc)]) -> StoreResult<()>;
    /// Deletes enrollments. A store may delete them in one statement.
    fn delete_enrollments(&self, kind: EnrollmentKind, keys: &[String]) -> StoreResult<()>;

    /// A CA certificate by name.
    fn certificate(&self, name: &str) -> StoreResult<Option<CaCert>>;
    /// Every CA certificate, ordered by name.
    fn certificates(&self) -> StoreResult<Vec<CaCert>>;
    /// Creates or replaces a CA certificate.
    fn put_certificate(&self, ca: &CaCert) -> StoreResult<()>;
    /// Deletes a CA certificate.
    fn delete_certificate(&self, name: &str) -> StoreResult<()>;

    /// A CRL by name.
    fn crl(&self, name: &str) -> StoreResult<Option<StoredCrl>>;
    /// Every CRL, ordered by name.
    fn crls(&self) -> StoreResult<Vec<StoredCrl>>;
    /// The CRLs (DER) whose issuer has this name key, ordered by name.
    fn crls_by_issuer(&self, issuer_key: &[u8]) -> StoreResult<Vec<Vec<u8>>>;
    /// Creates or replaces a CRL.
    fn put_crl(&self, crl: &StoredCrl) -> StoreResult<()>;
    /// Deletes a CRL.
    fn delete_crl(&self, name: &str) -> StoreResult<()>;

    /// A registration record with the certificate it belongs to.
    fn registration(&self, registration_id: &str) -> StoreResult<Option<Registration>>;
    /// At most `limit` registration records of a group whose (lower-case)
    /// registration IDs follow `after`, in ID order (a keyset page).
    fn registrations_of_group(
        &self,
        group_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<(String, Doc)>>;
    /// Creates or replaces a registration record, which belongs to the
    /// certificate with SHA-256 `leaf_sha256`.
    fn put_registration(
        &self,
        registration_id: &str,
        group_id: Option<&str>,
        doc: &Value,
        etag: &str,
        leaf_sha256: &[u8],
    ) -> StoreResult<()>;
    /// Deletes a registration record and its operation (polling it answers
    /// "not found" from then on).
    fn delete_registration(&self, registration_id: &str) -> StoreResult<()>;

    /// Replaces the lookup keys `owner` (`group:<key>`, `ca:<name>`) has.
    fn set_lookup_keys(&self, owner: &str, keys: &[LookupKey]) -> StoreResult<()>;
    /// The owners of a lookup key, ordered, each with the certificate kept
    /// with it (anchors).
    fn lookup(&self, kind: LookupKind, value: &[u8])
    -> StoreResult<Vec<(String, Option<Vec<u8>>)>>;
    /// Every lookup key, by owner (to compare when re-deriving them all).
    fn lookup_keys(&self) -> StoreResult<Vec<(String, LookupKey)>>;

    /// The store's snapshot version and history horizon.
    fn versions(&self) -> StoreResult<Versions>;
    /// At most `limit` documents changed (or deleted) after version
    /// `since`, as `(kind, id)` in that order, following `after`: `kind`
    /// is a stored enrollment kind or `certificate`.
    fn changes_after(
        &self,
        since: u64,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> StoreResult<Vec<(String, String)>>;
    /// An edge replica's state under `key`.
    fn edge_state(&self, key: &str) -> StoreResult<Option<String>>;
    /// Sets an edge replica's state under `key`.
    fn put_edge_state(&self, key: &str, value: &str) -> StoreResult<()>;
    /// Deletes every enrollment, CA certificate, lookup key and change: an
    /// edge replica applying a full snapshot (never a service's store).
    fn clear_documents(&self) -> StoreResult<()>;

    /// An operation that has not expired at `now` (Unix seconds).
    fn operation(&self, operation_id: &str, now: i64) -> StoreResult<Option<Operation>>;
    /// Stores an operation created at `now`. It replaces the registration's
    /// previous operation (at most one per registration), and operations
    /// older than [`OPERATION_TTL`] go: the table stays as large as the
    /// fleet, however often devices register.
    fn put_operation(&self, operation_id: &str, operation: &Operation, now: i64)
    -> StoreResult<()>;
}

/// A CRL as the store holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCrl {
    /// Its name (the operator's, or the URL it was fetched from).
    pub name: String,
    /// The CRL, DER.
    pub der: Vec<u8>,
    /// Its issuer's name key.
    pub issuer_key: Vec<u8>,
    /// The distribution point it was fetched from; `None` when uploaded.
    pub source: Option<String>,
    /// ETag.
    pub etag: String,
    /// When it was first stored (RFC 3339).
    pub created: String,
    /// When it was last replaced (RFC 3339).
    pub updated: String,
}

/// What a lookup key finds. The service derives them from enrollment
/// groups and CA certificates and writes them in the same transaction as
/// the document, so a decision reads only the few rows it needs (an
/// individual enrollment is found by its key; it needs none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LookupKind {
    /// An enrollment group, by the CA identity of its CA certificate(s).
    GroupCa,
    /// A trust anchor, by its subject name key; the certificate is kept
    /// with the key.
    Anchor,
    /// An enrollment group, by a CA certificate name its `caReferences` uses.
    CaReference,
    /// An enrollment group whose CA cannot be determined (empty value):
    /// while there is one, every group decision refuses.
    Unloadable,
}

impl LookupKind {
    /// Every kind.
    pub const ALL: [LookupKind; 4] = [
        LookupKind::GroupCa,
        LookupKind::Anchor,
        LookupKind::CaReference,
        LookupKind::Unloadable,
    ];

    /// The name stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            LookupKind::GroupCa => "group-ca",
            LookupKind::Anchor => "anchor",
            LookupKind::CaReference => "ca-reference",
            LookupKind::Unloadable => "unloadable",
        }
    }

    /// The kind a stored name stands for.
    pub fn parse(s: &str) -> Result<LookupKind> {
        LookupKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown lookup key kind {s:?}"))
    }
}

/// One lookup key of a document.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LookupKey {
    /// What it finds.
    pub kind: LookupKind,
    /// The value looked up (a key hash, or a name's bytes).
    pub value: Vec<u8>,
    /// The certificate (DER) an anchor key finds.
    pub der: Option<Vec<u8>>,
}

/// A read snapshot held across several units of reading: what one
/// decision reads, however many lookups the component makes, is one state
/// of the store (a mix of two states could admit a device that neither
/// admits). Dropping it ends it.
pub trait Snapshot: Send {
    /// Runs `work` in the snapshot.
    fn read(&mut self, work: &mut dyn FnMut(&dyn Transaction) -> Result<()>) -> Result<()>;
}

impl dyn Snapshot + '_ {
    /// [`Snapshot::read`] with a result.
    pub fn read_with<T, E: Into<anyhow::Error>>(
        &mut self,
        work: impl FnOnce(&dyn Transaction) -> std::result::Result<T, E>,
    ) -> Result<T> {
        run(|w| self.read(w), work)
    }
}

/// A store of DPS documents.
pub trait Store: Send + Sync {
    /// Runs `work` in one write transaction, committed (durably) if it
    /// returns `Ok`, rolled back otherwise.
    fn write(&self, work: &mut dyn FnMut(&dyn Transaction) -> Result<()>) -> Result<()>;
    /// Runs `work` over a consistent snapshot.
    fn read(&self, work: &mut dyn FnMut(&dyn Transaction) -> Result<()>) -> Result<()>;
    /// Opens a snapshot to read from several times.
    fn snapshot(&self) -> Result<Box<dyn Snapshot>>;
}

impl dyn Store + '_ {
    /// [`Store::write`] with a result. The unit of work fails with a
    /// [`StoreError`] (a store operation's, as it is) or the caller's own
    /// error.
    pub fn write_with<T, E: Into<anyhow::Error>>(
        &self,
        work: impl FnOnce(&dyn Transaction) -> std::result::Result<T, E>,
    ) -> Result<T> {
        run(|w| self.write(w), work)
    }

    /// [`Store::read`] with a result (its errors as `write_with`'s).
    pub fn read_with<T, E: Into<anyhow::Error>>(
        &self,
        work: impl FnOnce(&dyn Transaction) -> std::result::Result<T, E>,
    ) -> Result<T> {
        run(|w| self.read(w), work)
    }
}

/// Adapts a one-shot closure with a result to the object-safe
/// `FnMut(&dyn Transaction) -> Result<()>` of [`Store`].
fn run<T, E: Into<anyhow::Error>>(
    unit: impl FnOnce(&mut dyn FnMut(&dyn Transaction) -> Result<()>) -> Result<()>,
    work: impl FnOnce(&dyn Transaction) -> std::result::Result<T, E>,
) -> Result<T> {
    let mut work = Some(work);
    let mut out = None;
    unit(&mut |tx| {
        let work = work
            .take()
            .ok_or_else(|| anyhow::anyhow!("a store ran a unit of work twice"))?;
        out = Some(work(tx).map_err(Into::into)?);
        Ok(())
    })?;
    out.ok_or_else(|| anyhow::anyhow!("a store did not run the unit of work"))
}
