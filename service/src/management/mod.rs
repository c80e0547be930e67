//! The DPS management operations, authenticated with SAS tokens, one file
//! per resource: `enrollments` (individual enrollments and enrollment
//! groups, bulk operations), `registrations` (registration records),
//! `certificates` (CA certificates and their proof of possession), `crls`
//! (attest's own: the CRLs decisions check). This
//! file holds what they share: authorisation, the read and write units of
//! work ([`TxError`]), paging and the DPS errors they answer. Writes honour
//! `If-Match` (412 on a stale etag) and keep the lookup keys the device
//! operations read in the same transaction (see `index`).

mod certificates;
pub(crate) mod crls;
mod decide;
mod enrollments;
mod hierarchy;
mod registrations;

use anyhow::Result;
use serde_json::Value;

use attest_dps::documents::{etag_matches, id_field};
use attest_dps::query::Page;
use attest_dps::{DpsError, ErrorKind};
use policy_host::EnrollmentKind;

use crate::store::{StoreError, Transaction};
use crate::{Answer, Reply, Service, internal, now_unix};

fn bad_request(message: impl Into<String>) -> DpsError {
    DpsError::new(ErrorKind::BadRequest, message)
}

fn not_found(message: impl Into<String>) -> DpsError {
    DpsError::new(ErrorKind::NotFound, message)
}

fn enrollment_not_found(kind: EnrollmentKind, id: &str) -> DpsError {
    DpsError::new(
        ErrorKind::EnrollmentNotFound,
        format!("no {} '{id}'", id_field(kind)),
    )
}

fn certificate_not_found(name: &str) -> DpsError {
    not_found(format!("no CA certificate named '{name}'"))
}

fn registration_not_found(id: &str) -> DpsError {
    DpsError::new(
        ErrorKind::RegistrationNotFound,
        format!("no registration record for '{id}'"),
    )
}

/// `If-Match` where DPS requires it (changing or deleting a CA certificate).
fn require_if_match(if_match: Option<&str>, what: &str) -> Result<(), DpsError> {
    match if_match {
        Some(_) => Ok(()),
        None => Err(DpsError::new(
            ErrorKind::PreconditionFailed,
            format!("{what} needs an If-Match header with its current etag (or *)"),
        )),
    }
}

fn conflict(message: impl Into<String>) -> DpsError {
    DpsError::new(ErrorKind::Conflict, message)
}

fn stale(what: &str) -> DpsError {
    DpsError::new(
        ErrorKind::PreconditionFailed,
        format!("If-Match does not match the current etag of {what}"),
    )
}

/// Why a write's unit of work did not finish (after garage's
/// `TxError { Abort, Db }`): the request is refused with a DPS error, and
/// the transaction is rolled back; or the store failed.
#[derive(Debug)]
enum TxError {
    /// The request is refused (404, 409, 412, 400, …).
    Refused(DpsError),
    /// The store failed: a 500 (or 503) for the caller.
    Store(anyhow::Error),
}

impl From<DpsError> for TxError {
    fn from(e: DpsError) -> Self {
        TxError::Refused(e)
    }
}

impl From<anyhow::Error> for TxError {
    fn from(e: anyhow::Error) -> Self {
        TxError::Store(e)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e.into())
    }
}

/// The result of a write's unit of work.
type Unit<T> = Result<T, TxError>;

/// One entry's own refusal as a value (a bulk operation lists it and goes
/// on); a store failure still ends the unit.
fn judged<T>(unit: Unit<T>) -> Unit<Result<T, DpsError>> {
    match unit {
        Ok(v) => Ok(Ok(v)),
        Err(TxError::Refused(e)) => Ok(Err(e)),
        Err(e @ TxError::Store(_)) => Err(e),
    }
}

/// The item type of a query page of `kind`.
fn item_type(kind: EnrollmentKind) -> &'static str {
    attest_dps::kind::names(kind).item_type
}

/// The collection a query of `kind` reads (and its continuation tokens name).
fn collection(kind: EnrollmentKind) -> &'static str {
    attest_dps::kind::names(kind).collection
}

/// A query page: the items, the next page's token, the page size.
fn paged(
    items: Vec<Value>,
    continuation: Option<String>,
    page: &Page,
    item_type: &'static str,
) -> Reply {
    Reply {
        continuation,
        item_type: Some(item_type),
        max_item_count: Some(page.size),
        ..Reply::ok(Value::Array(items))
    }
}

/// An individual enrollment as read: with its device's registration
/// record as the read-only `registrationState` (DPS fills it in the same way).
fn with_registration_state(
    tx: &dyn Transaction,
    kind: EnrollmentKind,
    mut doc: Value,
) -> Result<Value> {
    if kind == EnrollmentKind::Individual
        && let Some(id) = doc.get("registrationId").and_then(Value::as_str)
        && let Some(record) = tx.registration(id)?
    {
        doc["registrationState"] = record.doc.doc;
    }
    Ok(doc)
}

impl Service {
    /// Checks a management request's `Authorization` header and that the
    /// token's policy grants `right` (`None`: any valid token, for a
    /// route that answers 404 to everyone); the policy's name.
    pub fn authorize(
        &self,
        authorization: Option<&str>,
        right: Option<attest_dps::sas::Right>,
    ) -> Result<String, DpsError> {
        let Some(header) = authorization else {
            return Err(DpsError::new(
                ErrorKind::Unauthenticated,
                "the management API needs an Authorization: SharedAccessSignature … header",
            ));
        };
        let policy = attest_dps::sas::verify_policy(
            header,
            &self.config.shared_access_policies,
            now_unix(),
            self.config.max_token_lifetime_seconds,
        )
        .map_err(|why| DpsError::new(ErrorKind::Unauthenticated, why))?;
        match right {
            Some(right) if !policy.grants(right) => Err(DpsError::new(
                ErrorKind::Unauthenticated,
                format!(
                    "shared access policy '{}' does not grant {right}, which this request needs",
                    policy.key_name
                ),
            )),
            _ => Ok(policy.key_name.clone()),
        }
    }

    /// Runs a read, mapping a store failure to a 500.
    fn read<T>(
        &self,
        what: &str,
        work: impl FnOnce(&dyn Transaction) -> Result<T>,
    ) -> Result<T, DpsError> {
        self.store
            .read_with(work)
            .map_err(|e| internal(&format!("{what} could not be read"), &e))
    }

    /// Runs a write in one transaction, committed when `work` finishes and
    /// rolled back when it refuses the request or the store fails (a 500).
    fn write<T>(
        &self,
        what: &str,
        work: impl FnOnce(&dyn Transaction) -> Unit<T>,
    ) -> Result<T, DpsError> {
        let mut refused = None;
        let written = self.store.write_with(|tx| match work(tx) {
            Ok(value) => Ok(value),
            Err(TxError::Refused(e)) => {
                refused = Some(e);
                Err(anyhow::anyhow!("refused: roll back"))
            }
            Err(TxError::Store(e)) => Err(e),
        });
        if let Some(e) = refused {
            return Err(e);
        }
        written.map_err(|e| internal(&format!("{what} could not be written"), &e))
    }

    /// A delete guarded by `If-Match`, in one transaction: `missing` when
    /// absent, 412 on a stale etag, else whatever `delete` answers (it may
    /// refuse, e.g. a CA still referenced), 204 when it deleted.
    fn delete_guarded(
        &self,
        what: &str,
        missing: DpsError,
        if_match: Option<&str>,
        current_etag: impl FnOnce(&dyn Transaction) -> Result<Option<String>>,
        delete: impl FnOnce(&dyn Transaction) -> Unit<()>,
    ) -> Answer {
        let unit = |tx: &dyn Transaction| {
            let Some(etag) = current_etag(tx)? else {
                return Err(TxError::Refused(missing));
            };
            if !etag_matches(if_match, Some(&etag)) {
                return Err(TxError::Refused(stale(what)));
            }
            delete(tx)?;
            Ok(etag)
        };
        let replaced = self.write(what, unit)?;
        Ok(Reply::no_content().replacing(Some(replaced)))
    }
}
