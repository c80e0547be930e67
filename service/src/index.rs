//! The enrollment index the component reads: built from the store at start
//! and after every management write.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use serde_json::Value;

use attest_dps::EnrollmentSet;
use attest_dps::documents::{CaCert, complete_enrollment, id_field, key_of};
use policy_host::EnrollmentKind;

use crate::store::Transaction;
use crate::{Service, new_etag, now_rfc3339};

/// A lookup of verified CA certificates by name (what `caReferences` name).
pub(crate) fn verified_lookup(cas: &[CaCert]) -> impl Fn(&str) -> Option<Vec<u8>> + '_ {
    |name| {
        cas.iter()
            .find(|c| c.name == name && c.verified)
            .map(|c| c.der.clone())
    }
}

impl Service {
    /// Rebuilds the in-memory enrollment index from the store: verified CA
    /// certificates are trust anchors; groups may reference them by name.
    ///
    /// Fails closed: an entry that cannot be loaded is never skipped. A
    /// broken individual enrollment refuses its registration ID; a broken
    /// group disables its CA, or, when its CA cannot be read either, every
    /// group (see `EnrollmentSet::poison_group`). Each is logged as an
    /// error and returned, so that start-up and management writes say so.
    pub fn rebuild_index(&self) -> Result<Vec<String>> {
        let (version, set, problems) = self.store.read_with(|tx| {
            let version = tx.index_version()?;
            let (set, problems) = build_index(tx)?;
            Ok((version, set, problems))
        })?;
        for p in &problems {
            tracing::error!("{p}");
        }
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = (version, Arc::new(set));
        Ok(problems)
    }

    /// Upserts an enrollment file (DPS JSON shapes, as `host-cli verify
    /// --enrollments` reads) into the store; returns (individuals, groups).
    pub fn upsert_file(&self, path: &Path) -> Result<(usize, usize)> {
        const MAX_FILE: u64 = 16 << 20;
        let text = policy_host::input::read_limited_text(path, MAX_FILE)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let file: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        // Validates the whole file first (same rules as the index).
        EnrollmentSet::from_json(&text).with_context(|| path.display().to_string())?;
        let list = |key: &str| {
            file.get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let (individuals, groups) = (list("individualEnrollments"), list("enrollmentGroups"));
        let now = now_rfc3339();
        self.store.write_with(|tx| {
            for (kind, docs) in [
                (EnrollmentKind::Individual, &individuals),
                (EnrollmentKind::Group, &groups),
            ] {
                for doc in docs {
                    let id = doc
                        .get(id_field(kind))
                        .and_then(Value::as_str)
                        .ok_or_else(|| anyhow!("an entry has no {}", id_field(kind)))?;
                    let key = key_of(kind, id);
                    let existing = tx.enrollment(kind, &key)?;
                    let etag = new_etag()?;
                    let created = existing
                        .as_ref()
                        .and_then(|d| d.doc.get("createdDateTimeUtc"));
                    let doc = complete_enrollment(doc.clone(), created, &now, &etag);
                    tx.put_enrollment(kind, &key, &doc, &etag)?;
                }
            }
            tx.bump_index_version()
        })?;
        Ok((individuals.len(), groups.len()))
    }
}

/// The index and the problems met building it, from one snapshot.
fn build_index(tx: &dyn Transaction) -> Result<(EnrollmentSet, Vec<String>)> {
    let mut set = EnrollmentSet::default();
    let mut problems = Vec::new();
    let cas = tx.certificates()?;
    for ca in cas.iter().filter(|c| c.verified) {
        if let Err(e) = set.add_anchor(ca.der.clone()) {
            // An anchor that cannot be read anchors nothing: only ever
            // fewer admissions.
            problems.push(format!(
                "verified CA certificate '{}' is not usable: {e}",
                ca.name
            ));
        }
    }
    let lookup = verified_lookup(&cas);
    for (id, doc) in tx.enrollments(EnrollmentKind::Individual)? {
        if let Err(e) = doc
            .map_err(|e| format!("{e:#}"))
            .and_then(|d| set.insert_individual(&d.doc).map_err(|e| e.to_string()))
        {
            set.poison_individual(&id);
            problems.push(format!(
                "individual enrollment '{id}' cannot be loaded ({e}); the device is refused until it is repaired"
            ));
        }
    }
    for (id, doc) in tx.enrollments(EnrollmentKind::Group)? {
        let loaded = match &doc {
            Ok(d) => set.insert_group(&d.doc, &lookup).map_err(|e| e.to_string()),
            Err(e) => Err(format!("{e:#}")),
        };
        if let Err(e) = loaded {
            set.poison_group(&id, doc.as_ref().ok().map(|d| &d.doc), &lookup);
            problems.push(format!(
                "enrollment group '{id}' cannot be loaded ({e}); the devices under its CA are refused until it is repaired"
            ));
        }
    }
    if !set.unloadable_groups().is_empty() {
        problems.push(format!(
            "the CA of enrollment group(s) {} cannot be determined: every device decided by a group is refused until they are repaired",
            set.unloadable_groups().join(", ")
        ));
    }
    Ok((set, problems))
}
