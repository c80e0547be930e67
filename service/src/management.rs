//! The DPS management operations, authenticated with SAS tokens:
//! enrollments, enrollment groups, registration records, CA certificates.
//! Writes honour `If-Match` (412 on a stale etag) and rebuild the
//! enrollment index the device operations read.

use anyhow::Result;
use serde_json::Value;

use attest_dps::documents::{
    CaCert, certificate_resource, certificate_text, complete_enrollment, etag_matches, id_field,
    key_of,
};
use attest_dps::enrollment::{ca_reference_names, normalize_entry, one_certificate};
use attest_dps::query::{Page, check_query};
use attest_dps::{DpsError, EnrollmentSet, ErrorKind};
use policy_host::EnrollmentKind;

use crate::index::verified_lookup;
use crate::store::{Doc, Transaction};
use crate::{Answer, Reply, Service, internal, new_etag, now_rfc3339, now_unix};

fn bad_request(message: impl Into<String>) -> DpsError {
    DpsError::new(ErrorKind::BadRequest, message)
}

fn not_found(message: impl Into<String>) -> DpsError {
    DpsError::new(ErrorKind::NotFound, message)
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

/// The result of a write's unit of work: an answer, or a store failure.
type Unit<T> = Result<Result<T, DpsError>>;

/// The item type of a query page of `kind`.
fn item_type(kind: EnrollmentKind) -> &'static str {
    match kind {
        EnrollmentKind::Individual => "enrollment",
        EnrollmentKind::Group => "enrollmentGroup",
    }
}

fn paged(docs: Vec<Doc>, page: &Page, item_type: &'static str) -> Reply {
    let (items, continuation) = page.slice(docs);
    Reply {
        continuation,
        item_type: Some(item_type),
        ..Reply::ok(Value::Array(items.into_iter().map(|d| d.doc).collect()))
    }
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

    /// Runs a write of enrollments or CA certificates; when it succeeds,
    /// the index is rebuilt (its problems are logged: the entries concerned
    /// refuse their devices).
    fn write<T>(
        &self,
        what: &str,
        work: impl FnOnce(&dyn Transaction) -> Unit<T>,
    ) -> Result<T, DpsError> {
        let answer = self.write_records(what, work)?;
        self.rebuild_index()
            .map_err(|e| internal("the enrollment index could not be rebuilt", &e))?;
        Ok(answer)
    }

    /// Runs a write that the enrollment index does not read.
    fn write_records<T>(
        &self,
        what: &str,
        work: impl FnOnce(&dyn Transaction) -> Unit<T>,
    ) -> Result<T, DpsError> {
        self.store
            .write_with(work)
            .map_err(|e| internal(&format!("{what} could not be written"), &e))?
    }

    /// `POST /enrollments/query`, `POST /enrollmentGroups/query`.
    pub fn query_enrollments(&self, kind: EnrollmentKind, body: &Value, page: &Page) -> Answer {
        check_query(body)?;
        let docs = self.read("the enrollments", |tx| {
            tx.enrollments(kind)?.into_iter().map(|(_, d)| d).collect()
        })?;
        Ok(paged(docs, page, item_type(kind)))
    }

    /// `GET /enrollments/{id}`, `GET /enrollmentGroups/{id}`.
    pub fn get_enrollment(&self, kind: EnrollmentKind, id: &str) -> Answer {
        match self.read("the enrollment", |tx| {
            tx.enrollment(kind, &key_of(kind, id))
        })? {
            Some(doc) => Ok(Reply::entity(doc.doc)),
            None => Err(not_found(format!("no {} '{id}'", id_field(kind)))),
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
        let field = id_field(kind);
        if !body.is_object() {
            return Err(bad_request("the enrollment must be a JSON object"));
        }
        // Keys in their DPS spelling, near misses and null statuses refused:
        // what is stored is what the index reads.
        let mut doc = normalize_entry(body).map_err(|e| bad_request(e.to_string()))?;
        match doc.get(field) {
            None => doc[field] = Value::String(id.to_string()),
            Some(Value::String(s))
                if s == id
                    || (kind == EnrollmentKind::Individual && s.eq_ignore_ascii_case(id)) => {}
            Some(other) => {
                return Err(bad_request(format!(
                    "{field} {other} in the body differs from '{id}' in the URL"
                )));
            }
        }
        let key = key_of(kind, id);
        let etag = new_etag()?;
        let now = now_rfc3339();
        let doc = self.write("the enrollment", |tx| {
            let existing = tx.enrollment(kind, &key)?;
            if !etag_matches(if_match, existing.as_ref().map(|d| d.etag.as_str())) {
                return Ok(Err(stale(&format!("'{id}'"))));
            }
            // Checked the way the index will read it, against the whole
            // store inside the write: the index never has to choose.
            if let Err(e) = check_entry(tx, kind, id, &doc)? {
                return Ok(Err(e));
            }
            let created = existing
                .as_ref()
                .and_then(|d| d.doc.get("createdDateTimeUtc"));
            let doc = complete_enrollment(doc, created, &now, &etag);
            tx.put_enrollment(kind, &key, &doc, &etag)?;
            Ok(Ok(doc))
        })?;
        Ok(Reply::entity(doc))
    }

    /// `DELETE /enrollments/{id}`, `DELETE /enrollmentGroups/{id}`.
    pub fn delete_enrollment(
        &self,
        kind: EnrollmentKind,
        id: &str,
        if_match: Option<&str>,
    ) -> Answer {
        let key = key_of(kind, id);
        self.delete_guarded(
            &format!("{} '{id}'", id_field(kind)),
            true,
            if_match,
            |tx| Ok(tx.enrollment(kind, &key)?.map(|d| d.etag)),
            |_| Ok(Ok(())),
            |tx| tx.delete_enrollment(kind, &key),
        )
    }

    /// `GET /registrations/{id}`.
    pub fn get_registration(&self, id: &str) -> Answer {
        match self.read("the registration record", |tx| tx.registration(id))? {
            Some(record) => Ok(Reply::ok(record.doc.doc)),
            None => Err(not_found(format!("no registration record for '{id}'"))),
        }
    }

    /// `DELETE /registrations/{id}`.
    pub fn delete_registration(&self, id: &str, if_match: Option<&str>) -> Answer {
        self.delete_guarded(
            &format!("registration '{id}'"),
            false,
            if_match,
            |tx| Ok(tx.registration(id)?.map(|r| r.doc.etag)),
            |_| Ok(Ok(())),
            |tx| tx.delete_registration(id),
        )
    }

    /// `POST /registrations/{groupId}/query`.
    pub fn query_registrations(&self, group_id: &str, page: &Page) -> Answer {
        let docs = self.read("the registration records", |tx| {
            tx.registrations_of_group(group_id)
        })?;
        Ok(paged(docs, page, "deviceRegistration"))
    }

    /// `GET /certificates`.
    pub fn list_certificates(&self) -> Answer {
        let cas = self.read("the CA certificates", |tx| tx.certificates())?;
        let list: Vec<Value> = cas.iter().map(certificate_resource).collect();
        Ok(Reply::ok(serde_json::json!({ "value": list })))
    }

    /// `GET /certificates/{name}`.
    pub fn get_certificate(&self, name: &str) -> Answer {
        match self.read("the CA certificate", |tx| tx.certificate(name))? {
            Some(ca) => Ok(Reply::ok(certificate_resource(&ca))),
            None => Err(not_found(format!("no CA certificate named '{name}'"))),
        }
    }

    /// `PUT /certificates/{name}`: uploads (or replaces) a CA certificate,
    /// unverified.
    pub fn put_certificate(&self, name: &str, body: &Value, if_match: Option<&str>) -> Answer {
        if name.is_empty() || name.len() > 256 {
            return Err(bad_request("certificate name must be 1 to 256 characters"));
        }
        let text = certificate_text(body).ok_or_else(|| {
            bad_request("body must be {\"certificate\": \"<PEM or base64 DER>\"}")
        })?;
        let der = one_certificate(text).map_err(|e| bad_request(format!("certificate: {e}")))?;
        if let Err(r) = policy_host::certificate_keys(&der) {
            return Err(bad_request(format!("certificate is not usable: {r}")));
        }
        let etag = new_etag()?;
        let now = now_rfc3339();
        let ca = self.write("the CA certificate", |tx| {
            let existing = tx.certificate(name)?;
            if !etag_matches(if_match, existing.as_ref().map(|c| c.etag.as_str())) {
                return Ok(Err(stale(&format!("certificate '{name}'"))));
            }
            // Replacing a certificate makes it unverified: a group that names
            // it would silently stop applying.
            let groups = referencing_groups(tx, name)?;
            if existing.is_some() && !groups.is_empty() {
                return Ok(Err(conflict(format!(
                    "CA certificate '{name}' is referenced by enrollment group(s) {} (caReferences); replacing it would unverify it and silently stop those groups from applying. Change or delete the groups first",
                    groups.join(", ")
                ))));
            }
            let ca = CaCert {
                name: name.to_string(),
                der,
                verified: false,
                code: None,
                etag,
                created: existing.map_or_else(|| now.clone(), |c| c.created),
            };
            tx.put_certificate(&ca, &now)?;
            Ok(Ok(ca))
        })?;
        Ok(Reply::ok(certificate_resource(&ca)))
    }

    /// `DELETE /certificates/{name}`.
    pub fn delete_certificate(&self, name: &str, if_match: Option<&str>) -> Answer {
        self.delete_guarded(
            &format!("certificate '{name}'"),
            true,
            if_match,
            |tx| Ok(tx.certificate(name)?.map(|c| c.etag)),
            |tx| {
                let groups = referencing_groups(tx, name)?;
                Ok(if groups.is_empty() {
                    Ok(())
                } else {
                    Err(conflict(format!(
                        "CA certificate '{name}' is referenced by enrollment group(s) {} (caReferences); deleting it would silently stop those groups from applying. Change or delete the groups first",
                        groups.join(", ")
                    )))
                })
            },
            |tx| tx.delete_certificate(name),
        )
    }

    /// `POST /certificates/{name}/generateVerificationCode`.
    pub fn generate_verification_code(&self, name: &str, if_match: Option<&str>) -> Answer {
        let code = hex::encode_upper(crate::random::<16>()?);
        let etag = new_etag()?;
        let now = now_rfc3339();
        let ca = self.write("the CA certificate", |tx| {
            let Some(mut ca) = tx.certificate(name)? else {
                return Ok(Err(not_found(format!("no CA certificate named '{name}'"))));
            };
            if !etag_matches(if_match, Some(&ca.etag)) {
                return Ok(Err(stale(&format!("certificate '{name}'"))));
            }
            ca.code = Some(code);
            ca.etag = etag;
            tx.put_certificate(&ca, &now)?;
            Ok(Ok(ca))
        })?;
        Ok(Reply::ok(certificate_resource(&ca)))
    }

    /// `POST /certificates/{name}/verify`: proof of possession of the CA's
    /// key, judged by the component; the CA becomes a trust anchor.
    pub fn verify_certificate(&self, name: &str, body: &Value, if_match: Option<&str>) -> Answer {
        let ca = self
            .read("the CA certificate", |tx| tx.certificate(name))?
            .ok_or_else(|| not_found(format!("no CA certificate named '{name}'")))?;
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
                tx.put_certificate(&current, &now)?;
                Ok(Ok(current))
            }
            _ => Ok(Err(DpsError::new(
                ErrorKind::PreconditionFailed,
                format!("certificate '{name}' changed during verification; retry"),
            ))),
        })?;
        Ok(Reply::ok(certificate_resource(&updated)))
    }

    /// A delete guarded by `If-Match` (and by `check`, inside the same
    /// transaction): 404 when absent, 412 on a stale etag, else 204.
    /// `indexed`: the index reads what is deleted (rebuild it).
    fn delete_guarded(
        &self,
        what: &str,
        indexed: bool,
        if_match: Option<&str>,
        current_etag: impl FnOnce(&dyn Transaction) -> Result<Option<String>>,
        check: impl FnOnce(&dyn Transaction) -> Unit<()>,
        delete: impl FnOnce(&dyn Transaction) -> Result<()>,
    ) -> Answer {
        let unit = |tx: &dyn Transaction| {
            let Some(etag) = current_etag(tx)? else {
                return Ok(Err(not_found(format!("no {what}"))));
            };
            if !etag_matches(if_match, Some(&etag)) {
                return Ok(Err(stale(what)));
            }
            if let Err(e) = check(tx)? {
                return Ok(Err(e));
            }
            delete(tx)?;
            Ok(Ok(()))
        };
        if indexed {
            self.write(what, unit)?;
        } else {
            self.write_records(what, unit)?;
        }
        Ok(Reply::no_content())
    }
}

/// Whether `doc` (entry `id` of `kind`) loads as the index will read it:
/// for a group, against the verified CA certificates and every other
/// stored group (a second group on the same CA is a 409).
fn check_entry(tx: &dyn Transaction, kind: EnrollmentKind, id: &str, doc: &Value) -> Unit<()> {
    let mut scratch = EnrollmentSet::default();
    let loaded = match kind {
        EnrollmentKind::Individual => scratch.insert_individual(doc),
        EnrollmentKind::Group => {
            let cas = tx.certificates()?;
            let lookup = verified_lookup(&cas);
            for (other, other_doc) in group_docs(tx)? {
                if other != id {
                    // A stored group that does not load claims nothing
                    // here; the index refuses its devices (fail closed).
                    let _ = scratch.insert_group(&other_doc, &lookup);
                }
            }
            scratch.insert_group(doc, &lookup)
        }
    };
    Ok(match loaded {
        Ok(()) => Ok(()),
        Err(e) if e.is_conflict() => Err(conflict(format!("enrollment group '{id}': {e}"))),
        Err(e) => Err(bad_request(e.to_string())),
    })
}

/// Every stored group that is readable JSON (one that is not cannot
/// reference or claim anything).
fn group_docs(tx: &dyn Transaction) -> Result<Vec<(String, Value)>> {
    Ok(tx
        .enrollments(EnrollmentKind::Group)?
        .into_iter()
        .filter_map(|(id, doc)| doc.ok().map(|d| (id, d.doc)))
        .collect())
}

/// The enrollment groups whose `caReferences` name certificate `name`.
fn referencing_groups(tx: &dyn Transaction, name: &str) -> Result<Vec<String>> {
    Ok(group_docs(tx)?
        .into_iter()
        .filter(|(_, doc)| ca_reference_names(doc).iter().any(|n| n == name))
        .map(|(id, _)| id)
        .collect())
}
