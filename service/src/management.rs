//! The DPS management operations, authenticated with SAS tokens:
//! enrollments, enrollment groups, registration records, CA certificates.
//! Writes honour `If-Match` (412 on a stale etag) and keep the lookup
//! keys the device operations read in the same transaction (see `index`).

use std::collections::{BTreeSet, HashMap};

use anyhow::Result;
use serde_json::Value;

use attest_dps::documents::{
    CaCert, certificate_resource, certificate_text, complete_enrollment, etag_matches, id_field,
    key_of,
};
use attest_dps::enrollment::{group_certificates, normalize_entry, one_certificate};
use attest_dps::query::{Page, Paging, check_query};
use attest_dps::{DpsError, EnrollmentSet, ErrorKind};
use policy_host::EnrollmentKind;

use crate::index;
use crate::store::{Doc, StoreError, Transaction};
use crate::{Answer, Reply, Service, internal, new_etag, now_rfc3339, now_unix};

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
    /// Checks a management request's `Authorization` header.
    pub fn authorize(&self, authorization: Option<&str>) -> Result<(), DpsError> {
        let Some(header) = authorization else {
            return Err(DpsError::new(
                ErrorKind::Unauthenticated,
                "the management API needs an Authorization: SharedAccessSignature … header",
            ));
        };
        attest_dps::sas::verify(
            header,
            &self.config.shared_access_policies,
            now_unix(),
            self.config.max_token_lifetime_seconds,
        )
        .map_err(|why| DpsError::new(ErrorKind::Unauthenticated, why))
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

    /// `POST /enrollments/query`, `POST /enrollmentGroups/query`: one
    /// keyset page of every entry of `kind`.
    pub fn query_enrollments(&self, kind: EnrollmentKind, body: &Value, paging: &Paging) -> Answer {
        check_query(body, collection(kind))?;
        let page = Page::of(collection(kind), paging)?;
        let (items, next) = self.read("the enrollments", |tx| {
            let rows = tx.enrollments_after(kind, page.after.as_deref(), page.fetch())?;
            let rows = rows
                .into_iter()
                .map(|(key, d)| Ok((key, with_registration_state(tx, kind, d.doc)?)))
                .collect::<Result<Vec<_>>>()?;
            Ok(page.finish(rows))
        })?;
        Ok(paged(items, next, &page, item_type(kind)))
    }

    /// `GET /enrollments/{id}`, `GET /enrollmentGroups/{id}`.
    pub fn get_enrollment(&self, kind: EnrollmentKind, id: &str) -> Answer {
        let doc = self.read("the enrollment", |tx| {
            tx.enrollment(kind, &key_of(kind, id))?
                .map(|d| with_registration_state(tx, kind, d.doc))
                .transpose()
        })?;
        match doc {
            Some(doc) => Ok(Reply::entity(doc)),
            None => Err(enrollment_not_found(kind, id)),
        }
    }

    /// `POST /enrollments/{id}/attestationmechanism` (and groups): the
    /// entry's attestation, with certificate `info`.
    pub fn attestation_mechanism(&self, kind: EnrollmentKind, id: &str) -> Answer {
        match self.read("the enrollment", |tx| {
            Ok(tx.enrollment(kind, &key_of(kind, id))?)
        })? {
            Some(doc) => Ok(Reply::ok(
                doc.doc.get("attestation").cloned().unwrap_or(Value::Null),
            )),
            None => Err(enrollment_not_found(kind, id)),
        }
    }

    /// `PUT /enrollments/{id}`, `PUT /enrollmentGroups/{id}`.
    pub fn put_enrollment(
        &self,
        kind: EnrollmentKind,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> Answer {
        let doc = prepare_entry(kind, id, body)?;
        let etag = new_etag()?;
        let now = now_rfc3339();
        let doc = self.write("the enrollment", |tx| {
            store_entry(
                tx,
                &mut Direct,
                kind,
                id,
                doc,
                Write::Upsert(if_match),
                &now,
                &etag,
            )
        })?;
        Ok(Reply::entity(doc))
    }

    /// `POST /enrollments` (DPS bulk enrollment operation): `mode` create,
    /// update, updateIfMatchETag or delete over individual enrollments, in
    /// one transaction; each entry is judged on its own (as a single PUT or
    /// DELETE would be) and the DPS `BulkEnrollmentOperationResult` lists
    /// those refused.
    pub fn bulk_enrollments(&self, body: &Value) -> Answer {
        let mode = body.get("mode").and_then(Value::as_str).unwrap_or_default();
        fn write_of<'a>(mode: &str, if_match: Option<&'a str>) -> Result<Write<'a>, DpsError> {
            match mode {
                "create" => Ok(Write::Create),
                "update" => Ok(Write::Upsert(None)),
                "updateIfMatchETag" => Ok(Write::Upsert(Some(if_match.unwrap_or("\"\"")))),
                "delete" => Ok(Write::Delete(if_match)),
                other => Err(bad_request(format!(
                    "mode {other:?} must be create, update, updateIfMatchETag or delete"
                ))),
            }
        }
        write_of(mode, None)?;
        let entries = body
            .get("enrollments")
            .and_then(Value::as_array)
            .ok_or_else(|| bad_request("enrollments must be an array of individual enrollments"))?;
        if entries.len() > MAX_BULK {
            return Err(bad_request(format!(
                "{} enrollments in one bulk operation; at most {MAX_BULK}",
                entries.len()
            )));
        }
        let now = now_rfc3339();
        let mut prepared = Vec::with_capacity(entries.len());
        for entry in entries {
            let id = entry
                .get("registrationId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let if_match = entry.get("etag").and_then(Value::as_str);
            let checked = write_of(mode, if_match).and_then(|w| {
                let doc = match w {
                    Write::Delete(_) => Value::Null,
                    _ => prepare_entry(EnrollmentKind::Individual, &id, entry)?,
                };
                Ok((w, doc))
            });
            prepared.push((id, checked, new_etag()?));
        }
        let errors = self.write("the enrollments", |tx| {
            let keys = prepared
                .iter()
                .map(|(id, _, _)| key_of(EnrollmentKind::Individual, id))
                .collect();
            let mut staged = Staged::read(tx, keys)?;
            let mut errors = Vec::new();
            for (id, checked, etag) in prepared {
                let outcome = match checked {
                    Err(e) => Err(e),
                    Ok((Write::Delete(if_match), _)) => judged(delete_entry(
                        tx,
                        &mut staged,
                        EnrollmentKind::Individual,
                        &id,
                        if_match,
                    ))?,
                    Ok((w, doc)) => judged(store_entry(
                        tx,
                        &mut staged,
                        EnrollmentKind::Individual,
                        &id,
                        doc,
                        w,
                        &now,
                        &etag,
                    ))?
                    .map(|_| ()),
                };
                if let Err(e) = outcome {
                    errors.push(serde_json::json!({
                        "registrationId": id,
                        "errorCode": e.kind.code(),
                        "errorStatus": e.message,
                    }));
                }
            }
            staged.write(tx)?;
            Ok(errors)
        })?;
        Ok(Reply::ok(serde_json::json!({
            "isSuccessful": errors.is_empty(),
            "errors": errors,
        })))
    }

    /// `DELETE /enrollments/{id}`, `DELETE /enrollmentGroups/{id}`.
    pub fn delete_enrollment(
        &self,
        kind: EnrollmentKind,
        id: &str,
        if_match: Option<&str>,
    ) -> Answer {
        self.write(&format!("{} '{id}'", id_field(kind)), |tx| {
            delete_entry(tx, &mut Direct, kind, id, if_match)
        })?;
        Ok(Reply::no_content())
    }

    /// `GET /registrations/{id}`.
    pub fn get_registration(&self, id: &str) -> Answer {
        match self.read("the registration record", |tx| Ok(tx.registration(id)?))? {
            Some(record) => Ok(Reply::entity(record.doc.doc)),
            None => Err(registration_not_found(id)),
        }
    }

    /// `DELETE /registrations/{id}`.
    pub fn delete_registration(&self, id: &str, if_match: Option<&str>) -> Answer {
        self.delete_guarded(
            &format!("registration '{id}'"),
            registration_not_found(id),
            if_match,
            |tx| Ok(tx.registration(id)?.map(|r| r.doc.etag)),
            |tx| Ok(tx.delete_registration(id)?),
        )
    }

    /// `POST /registrations/{groupId}/query`: one keyset page of the
    /// group's registration records.
    pub fn query_registrations(&self, group_id: &str, body: &Value, paging: &Paging) -> Answer {
        check_query(body, "registrations")?;
        let page = Page::of(&format!("registrations/{group_id}"), paging)?;
        let (items, next) = self.read("the registration records", |tx| {
            let rows = tx.registrations_of_group(group_id, page.after.as_deref(), page.fetch())?;
            Ok(page.finish(rows.into_iter().map(|(k, d)| (k, d.doc)).collect()))
        })?;
        Ok(paged(items, next, &page, "deviceRegistration"))
    }

    /// `GET /certificates`.
    pub fn list_certificates(&self) -> Answer {
        let cas = self.read("the CA certificates", |tx| Ok(tx.certificates()?))?;
        let list: Vec<Value> = cas.iter().map(certificate_resource).collect();
        Ok(Reply::ok(serde_json::json!({ "value": list })))
    }

    /// `GET /certificates/{name}`.
    pub fn get_certificate(&self, name: &str) -> Answer {
        match self.read("the CA certificate", |tx| Ok(tx.certificate(name)?))? {
            Some(ca) => Ok(Reply::ok(certificate_resource(&ca))),
            None => Err(certificate_not_found(name)),
        }
    }

    /// `PUT /certificates/{name}`: uploads (or replaces) a CA certificate,
    /// unverified unless the body says `isVerified: true` (DPS: created
    /// verified, without proof of possession; logged). Replacing one needs
    /// `If-Match`.
    pub fn put_certificate(&self, name: &str, body: &Value, if_match: Option<&str>) -> Answer {
        attest_dps::ids::check_certificate_name(name).map_err(bad_request)?;
        let text = certificate_text(body).ok_or_else(|| {
            bad_request("body must be {\"certificate\": \"<PEM or base64 DER>\"}")
        })?;
        let verified = match body
            .get("isVerified")
            .or_else(|| body.get("properties").and_then(|p| p.get("isVerified")))
        {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::Bool(true)) => true,
            Some(other) => {
                return Err(bad_request(format!(
                    "isVerified {other} must be true or false"
                )));
            }
        };
        let der = one_certificate(text).map_err(|e| bad_request(format!("certificate: {e}")))?;
        if let Err(r) = policy_host::certificate_keys(&der) {
            return Err(bad_request(format!("certificate is not usable: {r}")));
        }
        let etag = new_etag()?;
        let now = now_rfc3339();
        let ca = self.write("the CA certificate", |tx| {
            let existing = tx.certificate(name)?;
            if existing.is_some()
                && let Err(e) = require_if_match(if_match, &format!("replacing certificate '{name}'"))
            {
                return Err(TxError::Refused(e));
            }
            if !etag_matches(if_match, existing.as_ref().map(|c| c.etag.as_str())) {
                return Err(TxError::Refused(stale(&format!("certificate '{name}'"))));
            }
            // Replacing a certificate makes it unverified: a group that names
            // it would silently stop applying.
            let groups = index::referencing_groups(tx, name)?;
            if existing.is_some() && !groups.is_empty() {
                return Err(TxError::Refused(conflict(format!(
                    "CA certificate '{name}' is referenced by enrollment group(s) {} (caReferences); replacing it would unverify it and silently stop those groups from applying. Change or delete the groups first",
                    groups.join(", ")
                ))));
            }
            let ca = CaCert {
                name: name.to_string(),
                der,
                verified,
                code: None,
                etag,
                created: existing.map_or_else(|| now.clone(), |c| c.created),
                updated: now.clone(),
            };
            index::put_certificate(tx, &ca)?;
            Ok(ca)
        })?;
        if verified {
            tracing::warn!(
                "CA certificate '{name}' uploaded as verified (isVerified: true): a trust anchor without proof of possession"
            );
        }
        Ok(Reply::ok(certificate_resource(&ca)))
    }

    /// `DELETE /certificates/{name}`.
    pub fn delete_certificate(&self, name: &str, if_match: Option<&str>) -> Answer {
        require_if_match(if_match, &format!("deleting certificate '{name}'"))?;
        self.delete_guarded(
            &format!("certificate '{name}'"),
            certificate_not_found(name),
            if_match,
            |tx| Ok(tx.certificate(name)?.map(|c| c.etag)),
            |tx| {
                let groups = index::referencing_groups(tx, name)?;
                if !groups.is_empty() {
                    return Err(TxError::Refused(conflict(format!(
                        "CA certificate '{name}' is referenced by enrollment group(s) {} (caReferences); deleting it would silently stop those groups from applying. Change or delete the groups first",
                        groups.join(", ")
                    ))));
                }
                Ok(index::delete_certificate(tx, name)?)
            },
        )
    }

    /// `POST /certificates/{name}/generateVerificationCode`.
    pub fn generate_verification_code(&self, name: &str, if_match: Option<&str>) -> Answer {
        require_if_match(if_match, "generateVerificationCode")?;
        let code = hex::encode_upper(crate::random::<16>()?);
        let etag = new_etag()?;
        let now = now_rfc3339();
        let ca = self.write("the CA certificate", |tx| {
            let Some(mut ca) = tx.certificate(name)? else {
                return Err(TxError::Refused(certificate_not_found(name)));
            };
            if !etag_matches(if_match, Some(&ca.etag)) {
                return Err(TxError::Refused(stale(&format!("certificate '{name}'"))));
            }
            ca.code = Some(code);
            ca.etag = etag;
            ca.updated = now;
            index::put_certificate(tx, &ca)?;
            Ok(ca)
        })?;
        Ok(Reply::ok(certificate_resource(&ca)))
    }

    /// `POST /certificates/{name}/verify`: proof of possession of the CA's
    /// key, judged by the component; the CA becomes a trust anchor.
    pub fn verify_certificate(&self, name: &str, body: &Value, if_match: Option<&str>) -> Answer {
        require_if_match(if_match, "verify")?;
        let ca = self
            .read("the CA certificate", |tx| Ok(tx.certificate(name)?))?
            .ok_or_else(|| certificate_not_found(name))?;
        if !etag_matches(if_match, Some(&ca.etag)) {
            return Err(stale(&format!("certificate '{name}'")));
        }
        let code = ca.code.clone().ok_or_else(|| {
            bad_request("no verification code: POST generateVerificationCode first")
        })?;
        let text = certificate_text(body).ok_or_else(|| {
            bad_request(
                "body must be {\"certificate\": \"<verification certificate, PEM or base64 DER>\"}",
            )
        })?;
        let verification = one_certificate(text)
            .map_err(|e| bad_request(format!("verification certificate: {e}")))?;
        let verdict = self
            .policy
            .verify_ca_possession(&ca.der, &verification, &code, now_unix())
            .map_err(|e| {
                tracing::error!("policy component: {e}");
                DpsError::new(
                    ErrorKind::Internal,
                    format!("the policy component failed: {e}"),
                )
            })?;
        if let Err(r) = verdict {
            return Err(bad_request(format!("proof of possession refused: {r}")));
        }
        let etag = new_etag()?;
        let now = now_rfc3339();
        let updated = self.write("the CA certificate", |tx| match tx.certificate(name)? {
            Some(mut current) if current.etag == ca.etag => {
                current.verified = true;
                current.code = None;
                current.etag = etag;
                current.updated = now;
                index::put_certificate(tx, &current)?;
                Ok(current)
            }
            _ => Err(TxError::Refused(DpsError::new(
                ErrorKind::PreconditionFailed,
                format!("certificate '{name}' changed during verification; retry"),
            ))),
        })?;
        Ok(Reply::ok(certificate_resource(&updated)))
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
            delete(tx)
        };
        self.write(what, unit)?;
        Ok(Reply::no_content())
    }
}

/// Most entries one bulk operation may carry (Azure allows 10; attest's
/// bound keeps one transaction reasonable).
const MAX_BULK: usize = 1000;

/// How [`store_entry`] writes.
#[derive(Clone, Copy, Debug)]
enum Write<'a> {
    /// Only if the entry does not exist (409 otherwise).
    Create,
    /// Create or replace; with `If-Match` semantics when given.
    Upsert(Option<&'a str>),
    /// Delete; with `If-Match` semantics when given.
    Delete(Option<&'a str>),
}

/// An enrollment document as submitted, checked on its own: the ID by
/// DPS's rules, keys in their DPS spelling (near misses and null statuses
/// refused: what is stored is what the index reads), the ID field agreeing
/// with the one addressed.
fn prepare_entry(kind: EnrollmentKind, id: &str, body: &Value) -> Result<Value, DpsError> {
    let field = id_field(kind);
    match kind {
        EnrollmentKind::Individual => policy_host::check_registration_id(id)
            .map_err(|r| DpsError::new(ErrorKind::InvalidRegistrationId, r.message))?,
        EnrollmentKind::Group => attest_dps::ids::check_group_id(id).map_err(bad_request)?,
    }
    if !body.is_object() {
        return Err(bad_request("the enrollment must be a JSON object"));
    }
    let mut doc = normalize_entry(body).map_err(|e| bad_request(e.to_string()))?;
    match doc.get(field) {
        None => doc[field] = Value::String(id.to_string()),
        Some(Value::String(s))
            if s == id || (kind == EnrollmentKind::Individual && s.eq_ignore_ascii_case(id)) => {}
        Some(other) => {
            return Err(bad_request(format!(
                "{field} {other} in the body differs from '{id}' in the URL"
            )));
        }
    }
    Ok(doc)
}

/// Where [`store_entry`] and [`delete_entry`] read and write entries: the
/// transaction itself, or a bulk operation's [`Staged`] view of it.
trait Entries {
    fn get(&mut self, tx: &dyn Transaction, kind: EnrollmentKind, key: &str)
    -> Result<Option<Doc>>;
    fn put(
        &mut self,
        tx: &dyn Transaction,
        kind: EnrollmentKind,
        key: &str,
        doc: &Value,
        etag: &str,
    ) -> Result<()>;
    fn delete(&mut self, tx: &dyn Transaction, kind: EnrollmentKind, key: &str) -> Result<()>;
}

/// Reads and writes go straight to the transaction (with lookup keys).
struct Direct;

impl Entries for Direct {
    fn get(
        &mut self,
        tx: &dyn Transaction,
        kind: EnrollmentKind,
        key: &str,
    ) -> Result<Option<Doc>> {
        Ok(tx.enrollment(kind, key)?)
    }
    fn put(
        &mut self,
        tx: &dyn Transaction,
        kind: EnrollmentKind,
        key: &str,
        doc: &Value,
        etag: &str,
    ) -> Result<()> {
        index::put_enrollment(tx, kind, key, doc, etag)
    }
    fn delete(&mut self, tx: &dyn Transaction, kind: EnrollmentKind, key: &str) -> Result<()> {
        index::delete_enrollment(tx, kind, key)
    }
}

/// A bulk operation's individual enrollments: read in one query before,
/// written in one statement after (`Transaction::put_enrollments`,
/// `delete_enrollments`); in between each entry sees the ones before it,
/// as if written one by one. Individual enrollments only: they have no
/// lookup keys.
struct Staged {
    /// What each key holds now (`None`: absent), as the store had it plus
    /// the writes so far.
    current: HashMap<String, Option<Doc>>,
    /// The keys written (what to write is in `current`).
    written: BTreeSet<String>,
}

impl Staged {
    fn read(tx: &dyn Transaction, keys: Vec<String>) -> Result<Staged> {
        let mut current: HashMap<String, Option<Doc>> =
            keys.iter().map(|k| (k.clone(), None)).collect();
        for (key, doc) in tx.enrollments_by_keys(EnrollmentKind::Individual, &keys)? {
            current.insert(key, Some(doc));
        }
        Ok(Staged {
            current,
            written: BTreeSet::new(),
        })
    }

    fn write(mut self, tx: &dyn Transaction) -> Result<()> {
        let mut puts = Vec::new();
        let mut deletes = Vec::new();
        for key in self.written {
            match self.current.remove(&key).flatten() {
                Some(doc) => puts.push((key, doc)),
                None => deletes.push(key),
            }
        }
        tx.delete_enrollments(EnrollmentKind::Individual, &deletes)?;
        Ok(tx.put_enrollments(EnrollmentKind::Individual, &puts)?)
    }
}

impl Entries for Staged {
    fn get(
        &mut self,
        tx: &dyn Transaction,
        kind: EnrollmentKind,
        key: &str,
    ) -> Result<Option<Doc>> {
        debug_assert_eq!(kind, EnrollmentKind::Individual);
        match self.current.get(key) {
            Some(doc) => Ok(doc.clone()),
            None => Ok(tx.enrollment(kind, key)?),
        }
    }
    fn put(
        &mut self,
        _: &dyn Transaction,
        _: EnrollmentKind,
        key: &str,
        doc: &Value,
        etag: &str,
    ) -> Result<()> {
        let doc = Doc {
            doc: doc.clone(),
            etag: etag.to_string(),
        };
        self.current.insert(key.to_string(), Some(doc));
        self.written.insert(key.to_string());
        Ok(())
    }
    fn delete(&mut self, _: &dyn Transaction, _: EnrollmentKind, key: &str) -> Result<()> {
        self.current.insert(key.to_string(), None);
        self.written.insert(key.to_string());
        Ok(())
    }
}

/// Stores a prepared entry in `tx`: `If-Match` and create-only checked,
/// then the entry checked the way the index will read it, against the
/// whole store inside the write (the index never has to choose).
#[allow(clippy::too_many_arguments)]
fn store_entry(
    tx: &dyn Transaction,
    entries: &mut dyn Entries,
    kind: EnrollmentKind,
    id: &str,
    doc: Value,
    write: Write<'_>,
    now: &str,
    etag: &str,
) -> Unit<Value> {
    let key = key_of(kind, id);
    let existing = entries.get(tx, kind, &key)?;
    match write {
        Write::Create if existing.is_some() => {
            return Err(TxError::Refused(conflict(format!(
                "{} '{id}' already exists",
                id_field(kind)
            ))));
        }
        Write::Upsert(if_match)
            if !etag_matches(if_match, existing.as_ref().map(|d| d.etag.as_str())) =>
        {
            return Err(TxError::Refused(stale(&format!("'{id}'"))));
        }
        _ => {}
    }
    check_entry(tx, kind, id, &doc)?;
    let created = existing
        .as_ref()
        .and_then(|d| d.doc.get("createdDateTimeUtc"));
    let doc = complete_enrollment(doc, created, now, etag);
    entries.put(tx, kind, &key, &doc, etag)?;
    Ok(doc)
}

/// Deletes an entry in `tx`: 404 when absent, 412 on a stale `If-Match`.
fn delete_entry(
    tx: &dyn Transaction,
    entries: &mut dyn Entries,
    kind: EnrollmentKind,
    id: &str,
    if_match: Option<&str>,
) -> Unit<()> {
    let key = key_of(kind, id);
    let Some(existing) = entries.get(tx, kind, &key)? else {
        return Err(TxError::Refused(enrollment_not_found(kind, id)));
    };
    if !etag_matches(if_match, Some(&existing.etag)) {
        return Err(TxError::Refused(stale(&format!("'{id}'"))));
    }
    entries.delete(tx, kind, &key)?;
    Ok(())
}

/// Whether `doc` (entry `id` of `kind`) loads as a decision will read it:
/// for a group, against the verified CA certificates, and on a CA no
/// other stored group is on (a second group on the same CA is a 409).
fn check_entry(tx: &dyn Transaction, kind: EnrollmentKind, id: &str, doc: &Value) -> Unit<()> {
    let mut scratch = EnrollmentSet::default();
    let loaded = match kind {
        EnrollmentKind::Individual => scratch.insert_individual(doc),
        EnrollmentKind::Group => {
            let references = index::referenced_cas(tx, doc)?;
            let lookup = |name: &str| references.get(name).cloned();
            match scratch
                .insert_group(doc, &lookup)
                .and_then(|()| group_certificates(doc, &lookup))
            {
                Ok((ders, _)) => {
                    if let Some(other) = index::groups_on_cas(tx, &ders, id)?.first() {
                        return Err(TxError::Refused(conflict(format!(
                            "enrollment group '{id}': its CA (same subject and public key) is already the CA of enrollment group '{other}'"
                        ))));
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
    };
    loaded.map_err(|e| bad_request(e.to_string()).into())
}
