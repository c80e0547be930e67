//! How decisions find enrollments without reading the whole store.
//!
//! Every enrollment group and CA certificate has lookup keys (the CA
//! identity a group is found by, the subject name key a trust anchor is
//! found by), derived here and written in the same transaction as the
//! document ([`put_enrollment`], [`put_certificate`], …), and re-derived
//! from the documents at every start ([`Service::derive_lookup_keys`]).
//! Individual enrollments are found by their key and need none.
//!
//! A decision reads through [`Lookups`]: the component's `individual`,
//! `group` and `trust-anchors` calls become indexed reads in one snapshot
//! of the store, each entry parsed as it is read. So a write through any
//! replica is in the next decision of every replica, the store's size does
//! not change the cost of a decision, and a replica keeps no index in
//! memory.
//!
//! Fail closed, as the full index did: an entry that is found but cannot
//! be loaded refuses (an individual enrollment: its registration ID; a
//! group: the devices under its CA; a group whose CA cannot be determined
//! at all: every group decision), and a store that fails during a decision
//! decides nothing (503).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use serde_json::Value;

use attest_dps::EnrollmentSet;
use attest_dps::documents::{CaCert, complete_enrollment, id_field, key_of};
use attest_dps::enrollment::{
    GroupEntry, IndividualEntry, ca_reference_names, readable_group_certificates,
};
use policy_host::{
    Allocation, CrlLookup, EnrollmentGroup, EnrollmentKind, EnrollmentRef, EnrollmentSource,
    IndividualEnrollment, Refusal, RevocationPolicy,
};

use crate::store::{LookupKey, LookupKind, Snapshot, Store, StoreError, Transaction};
use crate::{Service, new_etag, now_rfc3339};

/// Who owns a lookup key: an enrollment group (by stored key) or a CA
/// certificate (by name). The store's `owner` column holds
/// [`Owner::stored`] (`group:<key>`, `ca:<name>`); this type is the only
/// code that writes or reads that text. A stored form attest never writes
/// is [`Owner::Foreign`]: it finds nothing but a refusal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Owner {
    Group(String),
    Ca(String),
    Foreign(String),
}

impl Owner {
    /// The stored form.
    pub(crate) fn stored(&self) -> String {
        match self {
            Owner::Group(key) => format!("group:{key}"),
            Owner::Ca(name) => format!("ca:{name}"),
            Owner::Foreign(text) => text.clone(),
        }
    }

    /// The owner a stored form names. Exactly one prefix is stripped, so a
    /// group whose ID itself starts with `group:` is that group.
    pub(crate) fn parse(stored: &str) -> Owner {
        if let Some(key) = stored.strip_prefix("group:") {
            Owner::Group(key.to_string())
        } else if let Some(name) = stored.strip_prefix("ca:") {
            Owner::Ca(name.to_string())
        } else {
            Owner::Foreign(stored.to_string())
        }
    }

    /// The group's stored key, if a group owns it.
    fn group(&self) -> Option<&str> {
        match self {
            Owner::Group(key) => Some(key),
            Owner::Ca(_) | Owner::Foreign(_) => None,
        }
    }

    /// How an owner is named in a message: a group by its key, anything
    /// else by its stored form.
    fn label(&self) -> String {
        self.group().map_or_else(|| self.stored(), str::to_string)
    }
}

/// An enrollment group document as the index reads it: loaded once
/// against the store's verified CA certificates, or why it does not load.
/// Its lookup keys ([`group_keys`]), the management API's checks and a
/// decision all read this one load.
#[derive(Debug)]
pub(crate) struct GroupDoc {
    /// The CA certificate names its `caReferences` use (read leniently:
    /// also of a document that does not load, so that it is re-derived
    /// when they change).
    names: Vec<String>,
    /// The loaded group, or why not.
    pub(crate) entry: std::result::Result<GroupEntry, Unloaded>,
}

/// Why a group document does not load, and the CA certificates that can
/// still be read of it (their CAs refuse while it is broken).
#[derive(Debug)]
pub(crate) struct Unloaded {
    pub(crate) why: String,
    readable: Vec<Vec<u8>>,
}

/// Loads a group document (`None`: the stored one is not JSON). The CA
/// certificates its `caReferences` name are read first, so that a store
/// failure is an error and never an "unverified" CA.
pub(crate) fn load_group(tx: &dyn Transaction, doc: Option<&Value>) -> Result<GroupDoc> {
    let Some(doc) = doc else {
        return Ok(GroupDoc {
            names: Vec::new(),
            entry: Err(Unloaded {
                why: "the stored document is not JSON".into(),
                readable: Vec::new(),
            }),
        });
    };
    let names = ca_reference_names(doc);
    let mut verified = HashMap::new();
    for name in &names {
        if let Some(ca) = tx.certificate(name)?
            && ca.verified
        {
            verified.insert(name.clone(), ca.der);
        }
    }
    let lookup = |name: &str| verified.get(name).cloned();
    let entry = GroupEntry::load(doc, &lookup).map_err(|e| Unloaded {
        why: e.to_string(),
        readable: readable_group_certificates(doc, &lookup),
    });
    Ok(GroupDoc { names, entry })
}

/// An enrollment checked for writing, with what its lookup keys come from.
#[derive(Debug)]
pub(crate) enum Checked {
    /// An individual enrollment (found by its key; it has no lookup keys).
    Individual,
    /// An enrollment group, as loaded.
    Group(GroupDoc),
}

/// The lookup keys of enrollment group `id`, and why it cannot be loaded,
/// if it cannot.
fn group_keys(id: &str, group: &GroupDoc) -> GroupKeys {
    let mut keys: Vec<LookupKey> = group
        .names
        .iter()
        .map(|name| LookupKey {
            kind: LookupKind::CaReference,
            value: name.clone().into_bytes(),
            der: None,
        })
        .collect();
    let problem = match &group.entry {
        Ok(entry) => {
            for ca in &entry.cas {
                keys.push(LookupKey {
                    kind: LookupKind::GroupCa,
                    value: ca.keys.ca_identity.to_vec(),
                    der: None,
                });
                if entry.anchors {
                    keys.push(LookupKey {
                        kind: LookupKind::Anchor,
                        value: ca.keys.subject_key.to_vec(),
                        der: Some(ca.der.clone()),
                    });
                }
            }
            None
        }
        Err(unloaded) => {
            // The CAs that can still be read find the group, which then
            // refuses (it does not load); with none, every group refuses.
            let identities: Vec<_> = unloaded
                .readable
                .iter()
                .filter_map(|der| policy_host::certificate_keys(der).ok())
                .map(|k| k.ca_identity)
                .collect();
            if identities.is_empty() {
                keys.push(LookupKey {
                    kind: LookupKind::Unloadable,
                    value: Vec::new(),
                    der: None,
                });
            }
            keys.extend(identities.into_iter().map(|identity| LookupKey {
                kind: LookupKind::GroupCa,
                value: identity.to_vec(),
                der: None,
            }));
            Some(format!(
                "enrollment group '{id}' cannot be loaded ({}); the devices under its CA are refused until it is repaired",
                unloaded.why
            ))
        }
    };
    GroupKeys { keys, problem }
}

/// What [`group_keys`] derives.
struct GroupKeys {
    keys: Vec<LookupKey>,
    problem: Option<String>,
}

/// The lookup keys of a CA certificate: a verified one is a trust anchor.
fn ca_keys(ca: &CaCert) -> (Vec<LookupKey>, Option<String>) {
    if !ca.verified {
        return (Vec::new(), None);
    }
    match policy_host::certificate_keys(&ca.der) {
        Ok(k) => (
            vec![LookupKey {
                kind: LookupKind::Anchor,
                value: k.subject_key.to_vec(),
                der: Some(ca.der.clone()),
            }],
            None,
        ),
        // An anchor that cannot be read anchors nothing: only ever fewer
        // admissions.
        Err(e) => (
            Vec::new(),
            Some(format!(
                "verified CA certificate '{}' is not usable: {e}",
                ca.name
            )),
        ),
    }
}

/// Writes a checked enrollment and its lookup keys.
pub(crate) fn put_enrollment(
    tx: &dyn Transaction,
    key: &str,
    doc: &Value,
    etag: &str,
    checked: &Checked,
) -> Result<()> {
    match checked {
        Checked::Individual => tx.put_enrollment(EnrollmentKind::Individual, key, doc, etag)?,
        Checked::Group(group) => {
            tx.put_enrollment(EnrollmentKind::Group, key, doc, etag)?;
            let derived = group_keys(key, group);
            if let Some(problem) = &derived.problem {
                tracing::error!("{problem}");
            }
            tx.set_lookup_keys(&Owner::Group(key.into()).stored(), &derived.keys)?;
        }
    }
    Ok(())
}

/// Replaces the lookup keys of group `key` with those of `group` (an edge
/// replica writes the stored document as it came, then its keys).
pub(crate) fn set_group_keys(tx: &dyn Transaction, key: &str, group: &GroupDoc) -> Result<()> {
    let derived = group_keys(key, group);
    tx.set_lookup_keys(&Owner::Group(key.into()).stored(), &derived.keys)?;
    Ok(())
}

/// Deletes an enrollment and its lookup keys.
pub(crate) fn delete_enrollment(
    tx: &dyn Transaction,
    kind: EnrollmentKind,
    key: &str,
) -> Result<()> {
    tx.delete_enrollment(kind, key)?;
    if kind == EnrollmentKind::Group {
        tx.set_lookup_keys(&Owner::Group(key.into()).stored(), &[])?;
    }
    Ok(())
}

/// Writes a CA certificate and its lookup keys, and re-derives those of
/// the groups that name it.
pub(crate) fn put_certificate(tx: &dyn Transaction, ca: &CaCert) -> Result<()> {
    tx.put_certificate(ca)?;
    let (keys, problem) = ca_keys(ca);
    if let Some(problem) = problem {
        tracing::error!("{problem}");
    }
    tx.set_lookup_keys(&Owner::Ca(ca.name.clone()).stored(), &keys)?;
    rederive_referencing(tx, &ca.name)
}

/// Deletes a CA certificate and its lookup keys, and re-derives those of
/// the groups that name it.
pub(crate) fn delete_certificate(tx: &dyn Transaction, name: &str) -> Result<()> {
    tx.delete_certificate(name)?;
    tx.set_lookup_keys(&Owner::Ca(name.into()).stored(), &[])?;
    rederive_referencing(tx, name)
}

fn rederive_referencing(tx: &dyn Transaction, name: &str) -> Result<()> {
    for key in referencing_groups(tx, name)? {
        let doc = tx.enrollment(EnrollmentKind::Group, &key)?;
        let group = load_group(tx, doc.as_ref().map(|d| &d.doc))?;
        let derived = group_keys(&key, &group);
        tx.set_lookup_keys(&Owner::Group(key).stored(), &derived.keys)?;
    }
    Ok(())
}

/// The enrollment groups whose `caReferences` name CA certificate `name`.
pub(crate) fn referencing_groups(tx: &dyn Transaction, name: &str) -> Result<Vec<String>> {
    Ok(tx
        .lookup(LookupKind::CaReference, name.as_bytes())?
        .into_iter()
        .filter_map(|(owner, _)| Owner::parse(&owner).group().map(str::to_string))
        .collect())
}

/// The other enrollment groups on one of `entry`'s CAs (one CA, one
/// group), by ID.
pub(crate) fn other_groups_on_cas(tx: &dyn Transaction, entry: &GroupEntry) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for ca in &entry.cas {
        for (owner, _) in tx.lookup(LookupKind::GroupCa, &ca.keys.ca_identity)? {
            if let Some(id) = Owner::parse(&owner).group()
                && id != entry.group.group_id
                && !out.iter().any(|o| o == id)
            {
                out.push(id.to_string());
            }
        }
    }
    Ok(out)
}

/// [`Service::derive_lookup_keys`] in a unit of work of the caller's (an
/// edge replica derives them in the transaction that applies a snapshot).
pub(crate) fn derive_lookup_keys_in(tx: &dyn Transaction) -> Result<Vec<String>> {
    let mut stored: HashMap<Owner, Vec<LookupKey>> = HashMap::new();
    for (owner, key) in tx.lookup_keys()? {
        stored.entry(Owner::parse(&owner)).or_default().push(key);
    }
    let mut problems = Vec::new();
    let mut unloadable = Vec::new();
    for ca in tx.certificates()? {
        let (keys, problem) = ca_keys(&ca);
        problems.extend(problem);
        write_if_changed(tx, &mut stored, Owner::Ca(ca.name), keys)?;
    }
    // Groups a page at a time: a large fleet's documents are never
    // all in memory at once.
    let mut after: Option<String> = None;
    loop {
        let page = tx.enrollments(EnrollmentKind::Group, after.as_deref(), 256)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (key, doc) in page {
            let doc = doc.ok().map(|d| d.doc);
            let g = group_keys(&key, &load_group(tx, doc.as_ref())?);
            problems.extend(g.problem);
            if g.keys.iter().any(|k| k.kind == LookupKind::Unloadable) {
                unloadable.push(key.clone());
            }
            write_if_changed(tx, &mut stored, Owner::Group(key), g.keys)?;
        }
    }
    if !unloadable.is_empty() {
        problems.push(format!(
            "the CA of enrollment group(s) {} cannot be determined: every device decided by a group is refused until they are repaired",
            unloadable.join(", ")
        ));
    }
    // Keys of documents that are gone.
    for owner in stored.into_keys() {
        tx.set_lookup_keys(&owner.stored(), &[])?;
    }
    Ok(problems)
}

impl Service {
    /// Re-derives every lookup key from the stored enrollment groups and
    /// CA certificates (at start: keys written by an older version, or rows
    /// changed outside attest, are brought in line), writing only those
    /// that differ. Returns what cannot be loaded (logged as errors: those
    /// entries refuse their devices). Individual enrollments are read when
    /// a device asks for one, not here: a fleet of a million does not slow
    /// the start.
    pub fn derive_lookup_keys(&self) -> Result<Vec<String>> {
        let problems = self.store.write_with(derive_lookup_keys_in)?;
        for p in &problems {
            tracing::error!("{p}");
        }
        Ok(problems)
    }

    /// Seeds the store from an enrollment file (DPS JSON, as `--enrollments`
    /// gives it): writes each entry the store does not have, and never
    /// overwrites one it has, since the store's copy may be newer (a group
    /// disabled through the management API must not come back enabled at
    /// the next start of any replica). Returns what was seeded and the
    /// entries whose stored copy differs from the file's (kept as stored).
    pub fn seed_file(&self, path: &Path) -> Result<Seeded> {
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
            let mut seeded = Seeded::default();
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
                    let etag = new_etag()?;
                    let doc = complete_enrollment(doc.clone(), None, &now, &etag);
                    match tx.enrollment(kind, &key) {
                        Ok(None) => {
                            let checked = match kind {
                                EnrollmentKind::Individual => Checked::Individual,
                                EnrollmentKind::Group => {
                                    Checked::Group(load_group(tx, Some(&doc))?)
                                }
                            };
                            put_enrollment(tx, &key, &doc, &etag, &checked)?;
                            match kind {
                                EnrollmentKind::Individual => seeded.individuals += 1,
                                EnrollmentKind::Group => seeded.groups += 1,
                            }
                        }
                        Ok(Some(stored)) if same_entry(&stored.doc, &doc) => {}
                        // Differs, or is stored unreadably: the store's copy
                        // stays (an unreadable one refuses its devices).
                        Ok(Some(_)) => seeded.kept.push(format!("{kind:?} '{id}'")),
                        Err(StoreError::Unreadable(_)) => {
                            seeded.kept.push(format!("{kind:?} '{id}'"));
                        }
                        Err(e) => return Err(anyhow::Error::from(e)),
                    }
                }
            }
            Ok(seeded)
        })
    }
}

/// What [`Service::seed_file`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seeded {
    /// Individual enrollments written (the store had none by their ID).
    pub individuals: usize,
    /// Enrollment groups written.
    pub groups: usize,
    /// Entries the store already had in another version, kept as stored.
    pub kept: Vec<String>,
}

/// Whether two enrollment documents say the same, apart from what the
/// service stamps on a write (etag and times).
fn same_entry(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            for stamp in ["etag", "createdDateTimeUtc", "lastUpdatedDateTimeUtc"] {
                o.remove(stamp);
            }
        }
        v
    };
    strip(a) == strip(b)
}

/// Writes `keys` as `owner`'s unless `stored` (what the store has, by
/// owner; the entry is taken out) holds the same.
fn write_if_changed(
    tx: &dyn Transaction,
    stored: &mut HashMap<Owner, Vec<LookupKey>>,
    owner: Owner,
    mut keys: Vec<LookupKey>,
) -> Result<()> {
    let mut old = stored.remove(&owner).unwrap_or_default();
    let order = |k: &LookupKey| (k.kind.as_str(), k.value.clone(), k.der.clone());
    keys.sort_by_key(order);
    old.sort_by_key(order);
    if keys != old {
        tx.set_lookup_keys(&owner.stored(), &keys)?;
    }
    Ok(())
}

/// Why a group lookup refuses although no stored group says "disabled":
/// what the store holds cannot be used, so the devices it might cover fail
/// closed. The core is handed a disabled group under the ID of the entry
/// at fault ([`Unusable::group_id`]); the service then says why, and never
/// records anything but a real group ID ([`Found::explain`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Unusable {
    /// Groups whose CA cannot be determined: any of them might cover any
    /// CA, so every group lookup refuses until they are repaired.
    CaUnknown(Vec<String>),
    /// A lookup key that attest never writes names this CA.
    NotAGroup(String),
    /// Several groups name this CA (writes refuse that; a store holding it
    /// anyway has neither decide).
    SharedCa(Vec<String>),
    /// The group's stored document cannot be loaded (not JSON, gone, or
    /// refused by the loader).
    Unloadable(String),
}

impl Unusable {
    /// The ID the core is handed for this lookup's disabled group.
    fn group_id(&self) -> String {
        match self {
            Unusable::CaUnknown(ids) | Unusable::SharedCa(ids) => ids.join(", "),
            Unusable::NotAGroup(owner) => owner.clone(),
            Unusable::Unloadable(id) => id.clone(),
        }
    }

    /// The real group at fault, if there is exactly one.
    fn entry(&self) -> Option<&str> {
        match self {
            Unusable::CaUnknown(ids) | Unusable::SharedCa(ids) => match ids.as_slice() {
                [one] => Some(one),
                _ => None,
            },
            Unusable::NotAGroup(_) => None,
            Unusable::Unloadable(id) => Some(id),
        }
    }

    fn describe(&self) -> String {
        match self {
            Unusable::CaUnknown(ids) => format!(
                "stored enrollment group(s) {} cannot be loaded, so every group is treated as disabled",
                ids.join(", ")
            ),
            Unusable::NotAGroup(_) => {
                "the store names this CA under a key that is not an enrollment group".into()
            }
            Unusable::SharedCa(ids) => {
                format!("enrollment groups {} all name this CA", ids.join(", "))
            }
            Unusable::Unloadable(id) => {
                format!("the stored enrollment group '{id}' cannot be loaded")
            }
        }
    }
}

/// What a decision found, for recording it: the allocation settings of the
/// entries it read, the CA certificate of the groups, and the lookups that
/// refused because an entry cannot be used.
#[derive(Debug, Default)]
pub(crate) struct Found {
    allocations: HashMap<(EnrollmentKind, String), Allocation>,
    /// The revocation policies of the entries the decision read.
    revocations: HashMap<(EnrollmentKind, String), RevocationPolicy>,
    /// What the deciding entry's lenient revocation policy let through.
    pub(crate) warnings: Vec<Refusal>,
    group_certificates: HashMap<String, Vec<u8>>,
    unusable: HashMap<String, Unusable>,
}

impl Found {
    /// A refusal by a group that a lookup handed out as unusable says why,
    /// and names the group at fault (or none): never a made-up group ID.
    pub(crate) fn explain(&self, mut refusal: Refusal) -> Refusal {
        let Some(entry) = refusal.enrollment.as_ref() else {
            return refusal;
        };
        if entry.kind != EnrollmentKind::Group {
            return refusal;
        }
        if let Some(why) = self.unusable.get(&entry.id) {
            refusal.message = format!("{}: {}", refusal.message, why.describe());
            refusal.enrollment = why.entry().map(|id| EnrollmentRef {
                kind: EnrollmentKind::Group,
                id: id.to_string(),
            });
        }
        refusal
    }

    /// A disabled group for the core, remembering why.
    fn refusing(&mut self, why: Unusable) -> EnrollmentGroup {
        let group_id = why.group_id();
        self.unusable.insert(group_id.clone(), why);
        EnrollmentGroup {
            group_id,
            enabled: false,
        }
    }

    /// The allocation settings of an entry the decision read.
    pub(crate) fn allocation(&self, kind: EnrollmentKind, id: &str) -> Option<&Allocation> {
        self.allocations.get(&(kind, key_of(kind, id)))
    }

    /// The primary CA certificate of a group the decision read.
    pub(crate) fn group_certificate(&self, group_id: &str) -> Option<&[u8]> {
        self.group_certificates.get(group_id).map(Vec::as_slice)
    }

    /// Keeps what the decision needs of the individual enrollment it read
    /// for `registration_id`.
    fn keep_individual(&mut self, registration_id: &str, entry: &IndividualEntry) {
        let key = key_of(EnrollmentKind::Individual, registration_id);
        self.revocations
            .insert((EnrollmentKind::Individual, key.clone()), entry.revocation);
        self.allocations
            .insert((EnrollmentKind::Individual, key), entry.allocation.clone());
    }

    /// The revocation policy of an entry the decision read; the strictest
    /// for any other (the component asks only of entries it was handed).
    fn revocation(&self, entry: &EnrollmentRef) -> RevocationPolicy {
        self.revocations
            .get(&(entry.kind, key_of(entry.kind, &entry.id)))
            .copied()
            .unwrap_or(RevocationPolicy::CHAIN)
    }

    /// Keeps what the decision needs of a group it read.
    fn keep_group(&mut self, entry: &GroupEntry) {
        let id = &entry.group.group_id;
        self.revocations.insert(
            (EnrollmentKind::Group, key_of(EnrollmentKind::Group, id)),
            entry.revocation,
        );
        self.allocations.insert(
            (EnrollmentKind::Group, key_of(EnrollmentKind::Group, id)),
            entry.allocation.clone(),
        );
        if let Some(der) = entry.primary_certificate() {
            self.group_certificates.insert(id.clone(), der.to_vec());
        }
    }
}

/// The component's enrollment lookups for one decision, read from one
/// snapshot of the store. A store failure is kept (the lookup answers as
/// if the entry refused) and reported by [`Lookups::finish`], so the
/// decision becomes a 503, never an admission.
pub(crate) struct Lookups {
    state: Mutex<LookupState>,
}

struct LookupState {
    snapshot: Option<Box<dyn Snapshot>>,
    failure: Option<anyhow::Error>,
    /// Groups whose CA cannot be determined (read once per decision).
    unloadable: Option<Vec<String>>,
    found: Found,
}

impl Lookups {
    /// Lookups over a new snapshot of `store`.
    pub(crate) fn open(store: &dyn Store) -> Result<Arc<Lookups>> {
        Ok(Arc::new(Lookups {
            state: Mutex::new(LookupState {
                snapshot: Some(store.snapshot()?),
                failure: None,
                unloadable: None,
                found: Found::default(),
            }),
        }))
    }

    /// Ends the snapshot: what the decision found, or the store failure
    /// that makes it void.
    pub(crate) fn finish(&self) -> Result<Found> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.snapshot = None;
        match state.failure.take() {
            Some(e) => Err(e),
            None => Ok(std::mem::take(&mut state.found)),
        }
    }

    /// Runs `work` in the snapshot; on a store failure keeps it and
    /// answers `refusal`.
    fn read<T>(
        &self,
        refusal: T,
        work: impl FnOnce(&dyn Transaction, &mut LookupMemo<'_>) -> Result<T>,
    ) -> T {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let LookupState {
            snapshot,
            failure,
            unloadable,
            found,
        } = &mut *guard;
        if failure.is_some() {
            return refusal;
        }
        let Some(snapshot) = snapshot.as_mut() else {
            *failure = Some(anyhow!("a lookup came after the decision's snapshot ended"));
            return refusal;
        };
        let mut memo = LookupMemo { unloadable, found };
        match snapshot.read_with(|tx| work(tx, &mut memo)) {
            Ok(answer) => answer,
            Err(e) => {
                *failure = Some(e);
                refusal
            }
        }
    }
}

/// What lookups of one decision share.
struct LookupMemo<'a> {
    unloadable: &'a mut Option<Vec<String>>,
    found: &'a mut Found,
}

/// A refusing individual enrollment for a registration ID whose entry
/// cannot be loaded (no fall-through to a group).
fn refusing_individual(registration_id: &str) -> IndividualEnrollment {
    IndividualEnrollment {
        registration_id: registration_id.to_ascii_lowercase(),
        device_id: None,
        enabled: false,
        certificates: Vec::new(),
    }
}

impl EnrollmentSource for Lookups {
    fn individual(&self, registration_id: &str) -> Option<IndividualEnrollment> {
        let refusal = Some(refusing_individual(registration_id));
        self.read(refusal.clone(), |tx, memo| {
            let key = key_of(EnrollmentKind::Individual, registration_id);
            let doc = match tx.enrollment(EnrollmentKind::Individual, &key) {
                Ok(None) => return Ok(None),
                Ok(Some(doc)) => Ok(doc.doc),
                Err(e @ StoreError::Unreadable(_)) => Err(e.to_string()),
                Err(e) => return Err(e.into()),
            };
            let loaded = doc.and_then(|d| IndividualEntry::load(&d).map_err(|e| e.to_string()));
            // Found by its key, the document must be that enrollment.
            let loaded = loaded.and_then(|entry| {
                if entry.enrollment.registration_id.eq_ignore_ascii_case(registration_id) {
                    Ok(entry)
                } else {
                    Err(format!(
                        "it is stored under '{key}' but names registration ID '{}'",
                        entry.enrollment.registration_id
                    ))
                }
            });
            match loaded {
                Ok(entry) => {
                    memo.found.keep_individual(registration_id, &entry);
                    Ok(Some(entry.enrollment))
                }
                Err(why) => {
                    tracing::error!(
                        "individual enrollment '{key}' cannot be loaded ({why}); the device is refused until it is repaired"
                    );
                    Ok(refusal)
                }
            }
        })
    }

    fn group(&self, ca_identity: &[u8; 32]) -> Option<EnrollmentGroup> {
        // Answered when the store fails: the decision becomes a 503
        // (`Lookups::finish`), so this group is never recorded or shown.
        let refusal = Some(EnrollmentGroup {
            group_id: String::new(),
            enabled: false,
        });
        self.read(refusal, |tx, memo| {
            if memo.unloadable.is_none() {
                let owners = tx.lookup(LookupKind::Unloadable, &[])?;
                *memo.unloadable = Some(
                    owners
                        .iter()
                        .map(|(o, _)| Owner::parse(o).label())
                        .collect(),
                );
            }
            if let Some(unloadable) = memo.unloadable.as_ref().filter(|u| !u.is_empty()) {
                let why = Unusable::CaUnknown(unloadable.clone());
                return Ok(Some(memo.found.refusing(why)));
            }
            let owners = tx.lookup(LookupKind::GroupCa, ca_identity)?;
            let key = match owners.as_slice() {
                [] => return Ok(None),
                [(owner, _)] => match Owner::parse(owner) {
                    Owner::Group(key) => key,
                    // Keys attest never writes decide nothing.
                    other => {
                        let why = Unusable::NotAGroup(other.stored());
                        return Ok(Some(memo.found.refusing(why)));
                    }
                },
                // One CA, one group: writes refuse a second; if the store
                // holds two anyway, neither decides.
                more => {
                    let ids: Vec<_> = more
                        .iter()
                        .map(|(o, _)| Owner::parse(o).label())
                        .collect();
                    return Ok(Some(memo.found.refusing(Unusable::SharedCa(ids))));
                }
            };
            let doc = match tx.enrollment(EnrollmentKind::Group, &key) {
                Ok(doc) => doc.map(|d| d.doc),
                Err(StoreError::Unreadable(_)) => None,
                Err(e) => return Err(e.into()),
            };
            let unloadable = Unusable::Unloadable(key.clone());
            let Some(doc) = doc else {
                tracing::error!("enrollment group '{key}' cannot be loaded (not JSON, or gone); the devices under its CA are refused");
                return Ok(Some(memo.found.refusing(unloadable)));
            };
            let entry = match load_group(tx, Some(&doc))?.entry {
                Ok(entry) => entry,
                Err(Unloaded { why, .. }) => {
                    tracing::error!(
                        "enrollment group '{key}' cannot be loaded ({why}); the devices under its CA are refused until it is repaired"
                    );
                    return Ok(Some(memo.found.refusing(unloadable)));
                }
            };
            // The keys said this CA; the document must say so too.
            if entry.covers(ca_identity) {
                memo.found.keep_group(&entry);
                Ok(Some(entry.group))
            } else {
                Ok(Some(memo.found.refusing(unloadable)))
            }
        })
    }

    fn trust_anchors(&self, subject_key: &[u8; 32]) -> Vec<Vec<u8>> {
        self.read(Vec::new(), |tx, _| {
            Ok(tx
                .lookup(LookupKind::Anchor, subject_key)?
                .into_iter()
                .filter_map(|(_, der)| der)
                .collect())
        })
    }

    fn revocation(&self, entry: &EnrollmentRef) -> RevocationPolicy {
        self.read(RevocationPolicy::CHAIN, |_, memo| {
            Ok(memo.found.revocation(entry))
        })
    }
}

/// The CRLs of the decision's snapshot. A store failure answers none (the
/// status becomes undetermined) and voids the decision ([`Lookups::finish`]).
impl CrlLookup for Lookups {
    fn crls(&self, issuer_key: &[u8; 32]) -> Vec<Vec<u8>> {
        self.read(Vec::new(), |tx, _| Ok(tx.crls_by_issuer(issuer_key)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_host::Code;

    fn refused_by(group: &EnrollmentGroup) -> Refusal {
        Refusal::new(
            Code::EnrollmentGroupDisabled,
            "the enrollment group of this CA is disabled",
        )
        .with_enrollment(EnrollmentRef {
            kind: EnrollmentKind::Group,
            id: group.group_id.clone(),
        })
    }

    /// An unusable entry is a variant, not a group ID: the refusal says
    /// why and names the one group at fault, or none.
    #[test]
    fn unusable_groups_are_explained_and_never_named_by_a_sentence() {
        let mut found = Found::default();
        let shared = found.refusing(Unusable::SharedCa(vec!["a".into(), "b".into()]));
        let r = found.explain(refused_by(&shared));
        assert_eq!(r.enrollment, None);
        assert!(
            r.message
                .ends_with("enrollment groups a, b all name this CA"),
            "{}",
            r.message
        );

        let broken = found.refusing(Unusable::Unloadable("fleet".into()));
        let r = found.explain(refused_by(&broken));
        assert_eq!(r.enrollment.unwrap().id, "fleet");
        assert!(
            r.message.contains("'fleet' cannot be loaded"),
            "{}",
            r.message
        );

        let stray = found.refusing(Unusable::NotAGroup("stray:key".into()));
        assert_eq!(found.explain(refused_by(&stray)).enrollment, None);

        let one = found.refusing(Unusable::CaUnknown(vec!["old".into()]));
        assert_eq!(
            found.explain(refused_by(&one)).enrollment.unwrap().id,
            "old"
        );

        // A group that is simply disabled is reported as it is.
        let disabled = EnrollmentGroup {
            group_id: "line-b".into(),
            enabled: false,
        };
        assert_eq!(found.explain(refused_by(&disabled)), refused_by(&disabled));
    }
}
