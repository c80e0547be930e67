//! `/enrollments` and `/enrollmentGroups`: query, read, write, bulk and
//! delete entries, each checked as a decision will load it.

use std::collections::{BTreeSet, HashMap};

use anyhow::Result;
use serde_json::Value;

use attest_dps::documents::{complete_enrollment, etag_matches, id_field, key_of};
use attest_dps::enrollment::{IndividualEntry, normalize_entry};
use attest_dps::query::{Page, Paging, check_query};
use attest_dps::{DpsError, ErrorKind};
use policy_host::EnrollmentKind;

use super::{
    TxError, Unit, bad_request, collection, conflict, enrollment_not_found, item_type, judged,
    paged, stale, with_registration_state,
};
use crate::index::{self, Checked};
use crate::store::{Doc, Transaction};
use crate::{Answer, Reply, Service, new_etag, now_rfc3339};

impl Service {
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
        let mut replaced = None;
        let doc = self.write("the enrollment", |tx| {
            replaced = Direct.get(tx, kind, &key_of(kind, id))?.map(|d| d.etag);
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
        Ok(Reply::entity(doc).replacing(replaced))
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
        let mut replaced = None;
        self.write(&format!("{} '{id}'", id_field(kind)), |tx| {
            replaced = Direct.get(tx, kind, &key_of(kind, id))?.map(|d| d.etag);
            delete_entry(tx, &mut Direct, kind, id, if_match)
        })?;
        Ok(Reply::no_content().replacing(replaced))
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
    /// The entry of `kind` stored under `key`.
    fn get(&mut self, tx: &dyn Transaction, kind: EnrollmentKind, key: &str)
    -> Result<Option<Doc>>;
    /// Writes an entry [`check_entry`] checked.
    fn put(&mut self, tx: &dyn Transaction, key: &str, doc: &Doc, checked: &Checked) -> Result<()>;
    /// Deletes the entry of `kind` stored under `key`.
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
    fn put(&mut self, tx: &dyn Transaction, key: &str, doc: &Doc, checked: &Checked) -> Result<()> {
        index::put_enrollment(tx, key, &doc.doc, &doc.etag, checked)
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
    fn put(&mut self, _: &dyn Transaction, key: &str, doc: &Doc, checked: &Checked) -> Result<()> {
        debug_assert!(matches!(checked, Checked::Individual));
        self.current.insert(key.to_string(), Some(doc.clone()));
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
    let checked = check_entry(tx, kind, id, &doc)?;
    let created = existing
        .as_ref()
        .and_then(|d| d.doc.get("createdDateTimeUtc"));
    let doc = Doc {
        doc: complete_enrollment(doc, created, now, etag),
        etag: etag.to_string(),
    };
    entries.put(tx, &key, &doc, &checked)?;
    Ok(doc.doc)
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
/// The load is kept for writing the entry's lookup keys.
fn check_entry(tx: &dyn Transaction, kind: EnrollmentKind, id: &str, doc: &Value) -> Unit<Checked> {
    match kind {
        EnrollmentKind::Individual => match IndividualEntry::load(doc) {
            Ok(_) => Ok(Checked::Individual),
            Err(e) => Err(bad_request(e.to_string()).into()),
        },
        EnrollmentKind::Group => {
            let group = index::load_group(tx, Some(doc))?;
            let entry = group
                .entry
                .as_ref()
                .map_err(|unloaded| bad_request(unloaded.why.clone()))?;
            if let Some(other) = index::other_groups_on_cas(tx, entry)?.first() {
                return Err(TxError::Refused(conflict(format!(
                    "enrollment group '{id}': its CA (same subject and public key) is already the CA of enrollment group '{other}'"
                ))));
            }
            Ok(Checked::Group(group))
        }
    }
}
