//! Enrollments in the DPS service API's JSON shapes, so existing DPS
//! enrollment definitions can be pasted in, and an in-memory
//! [`EnrollmentSet`] that answers the component's `enrollments` lookups.
//!
//! ```json
//! {"individualEnrollments": [{"registrationId": "device-3", "provisioningStatus": "disabled",
//!    "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": "-----BEGIN CERTIFICATE-----…"}}}}}],
//!  "enrollmentGroups": [{"enrollmentGroupId": "line-b", "provisioningStatus": "enabled",
//!    "attestation": {"type": "x509", "x509": {"signingCertificates": {"primary": {"certificate": "-----BEGIN CERTIFICATE-----…"}}}}}]}
//! ```
//!
//! `provisioningStatus` defaults to enabled, as in DPS. Allocation fields
//! (`allocationPolicy`, `iotHubs`, `iotHubHostName`, `deviceId`) are kept
//! for hosts that assign hubs; other fields are accepted and ignored.
//!
//! attest extends the shapes with one field of its own, an entry's
//! revocation policy (DPS has none: it does not check revocation):
//!
//! ```json
//! "revocationPolicy": {"check": "configured", "admitUndetermined": false, "admitExpiredCrl": false}
//! ```
//!
//! `check` is `off`, `leaf`, `chain` or `configured` (the default: every
//! certificate of the path whose CA has a CRL held); the two `admit…`
//! flags (default false) admit with a recorded warning what would
//! otherwise be refused as undetermined or covered only by expired CRLs.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use policy_host::{
    Allocation, CertificateKeys, EnrollmentGroup, EnrollmentKind, EnrollmentRef, EnrollmentSource,
    IndividualEnrollment, Lenience, Reprovision, RevocationMode, RevocationPolicy,
};

/// An enrollment document or set that is not usable; the message names the
/// entry and field at fault.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct EnrollmentError {
    message: String,
    conflict: bool,
}

impl EnrollmentError {
    fn new(message: impl Into<String>) -> Self {
        EnrollmentError {
            message: message.into(),
            conflict: false,
        }
    }

    fn conflict(message: impl Into<String>) -> Self {
        EnrollmentError {
            message: message.into(),
            conflict: true,
        }
    }

    fn context(self, at: &str) -> Self {
        EnrollmentError {
            message: format!("{at}: {}", self.message),
            ..self
        }
    }

    /// Whether the document is fine on its own but conflicts with another
    /// entry (its CA already has a group): HTTP 409 rather than 400.
    pub fn is_conflict(&self) -> bool {
        self.conflict
    }
}

/// The field names of DPS enrollment documents, by object: keys are
/// matched case-insensitively (as DPS's .NET service does) and rewritten
/// to these spellings; a near miss (`provisioning_status`) is an error,
/// never a silently ignored field.
const ENTRY_FIELDS: &[&str] = &[
    "registrationId",
    "enrollmentGroupId",
    "deviceId",
    "provisioningStatus",
    "attestation",
    "allocationPolicy",
    "iotHubs",
    "iotHubHostName",
    "customAllocationDefinition",
    "reprovisionPolicy",
    "initialTwin",
    "capabilities",
    "optionalDeviceInformation",
    "registrationState",
    "etag",
    "createdDateTimeUtc",
    "lastUpdatedDateTimeUtc",
    "clientCertificateIssuancePolicy",
    "revocationPolicy",
];
const ATTESTATION_FIELDS: &[&str] = &["type", "x509", "tpm", "symmetricKey"];
const X509_FIELDS: &[&str] = &["clientCertificates", "signingCertificates", "caReferences"];
const PAIR_FIELDS: &[&str] = &["primary", "secondary"];
/// Nested objects of an entry whose keys are DPS's too (`initialTwin` is
/// not among them: its tags and properties are the operator's own names).
const NESTED_FIELDS: &[(&str, &[&str])] = &[
    (
        "reprovisionPolicy",
        &["updateHubAssignment", "migrateDeviceData"],
    ),
    ("customAllocationDefinition", &["webhookUrl", "apiVersion"]),
    ("capabilities", &["iotEdge"]),
];
const CERT_FIELDS: &[&str] = &["certificate", "info"];

/// Rewrites the keys of `object` to their DPS spelling (see
/// [`ENTRY_FIELDS`]); `at` names the object in errors.
fn canonical_keys(
    object: &serde_json::Map<String, serde_json::Value>,
    known: &[&str],
    at: &str,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, '_' | '-' | ' '))
            .flat_map(char::to_lowercase)
            .collect()
    };
    let mut out = serde_json::Map::new();
    for (key, value) in object {
        let name = match known.iter().find(|k| k.eq_ignore_ascii_case(key)) {
            Some(k) => (*k).to_string(),
            None => {
                if let Some(k) = known.iter().find(|k| squash(k) == squash(key)) {
                    return Err(EnrollmentError::new(format!(
                        "{at}field {key:?} is not a DPS field; did you mean {k:?}?"
                    )));
                }
                key.clone()
            }
        };
        if out.insert(name.clone(), value.clone()).is_some() {
            return Err(EnrollmentError::new(format!(
                "{at}field {name:?} appears more than once (keys are case-insensitive)"
            )));
        }
    }
    Ok(out)
}

/// An enrollment document with every key in its DPS spelling, or why it
/// cannot be read. `provisioningStatus` may be absent (enabled, as in DPS)
/// but not `null`: a status that is there must say what it is.
pub fn normalize_entry(doc: &serde_json::Value) -> Result<serde_json::Value> {
    use serde_json::Value;
    let Value::Object(top) = doc else {
        return Err(EnrollmentError::new("an enrollment must be a JSON object"));
    };
    let mut top = canonical_keys(top, ENTRY_FIELDS, "")?;
    if let Some(status) = top.get("provisioningStatus")
        && !status.is_string()
    {
        return Err(EnrollmentError::new(format!(
            "provisioningStatus is {status}; it must be \"enabled\" or \"disabled\""
        )));
    }
    for (name, fields) in NESTED_FIELDS {
        if let Some(Value::Object(nested)) = top.get(*name) {
            let nested = canonical_keys(nested, fields, &format!("{name}."))?;
            top.insert((*name).to_string(), Value::Object(nested));
        }
    }
    if let Some(Value::Object(attestation)) = top.get("attestation") {
        let mut attestation = canonical_keys(attestation, ATTESTATION_FIELDS, "attestation.")?;
        if let Some(Value::Object(x509)) = attestation.get("x509") {
            let mut x509 = canonical_keys(x509, X509_FIELDS, "attestation.x509.")?;
            for (name, value) in x509.iter_mut() {
                let Value::Object(pair) = value else { continue };
                let at = format!("attestation.x509.{name}.");
                let mut pair = canonical_keys(pair, PAIR_FIELDS, &at)?;
                if name != "caReferences" {
                    for (which, cert) in pair.iter_mut() {
                        if let Value::Object(c) = cert {
                            *c = canonical_keys(c, CERT_FIELDS, &format!("{at}{which}."))?;
                        }
                    }
                }
                *value = Value::Object(pair);
            }
            attestation.insert("x509".into(), Value::Object(x509));
        }
        top.insert("attestation".into(), Value::Object(attestation));
    }
    Ok(Value::Object(top))
}

/// The CA certificate names an enrollment group's `caReferences` uses.
pub fn ca_reference_names(doc: &serde_json::Value) -> Vec<String> {
    let Ok(doc) = normalize_entry(doc) else {
        return Vec::new();
    };
    let refs = &doc["attestation"]["x509"]["caReferences"];
    ["primary", "secondary"]
        .iter()
        .filter_map(|k| refs.get(k).and_then(serde_json::Value::as_str))
        .map(str::to_string)
        .collect()
}

type Result<T> = std::result::Result<T, EnrollmentError>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileJson {
    #[serde(default)]
    individual_enrollments: Vec<serde_json::Value>,
    #[serde(default)]
    enrollment_groups: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryJson {
    registration_id: Option<String>,
    enrollment_group_id: Option<String>,
    device_id: Option<String>,
    provisioning_status: Option<String>,
    attestation: Option<AttestationJson>,
    allocation_policy: Option<String>,
    #[serde(default)]
    iot_hubs: Vec<String>,
    iot_hub_host_name: Option<String>,
    reprovision_policy: Option<ReprovisionJson>,
    revocation_policy: Option<serde_json::Value>,
}

impl EntryJson {
    /// The entry's revocation policy (attest's `revocationPolicy`).
    fn revocation(&self) -> Result<RevocationPolicy> {
        match &self.revocation_policy {
            None => Ok(RevocationPolicy::CONFIGURED),
            Some(value) => revocation_policy(value)
                .map_err(|e| EnrollmentError::new(format!("revocationPolicy: {e}"))),
        }
    }

    /// The entry's allocation settings (reprovisioning defaults to DPS's).
    fn allocation(&self) -> Allocation {
        let defaults = Reprovision::default();
        let reprovision = self.reprovision_policy.as_ref();
        Allocation {
            policy: self.allocation_policy.clone(),
            iot_hubs: self.iot_hubs.clone(),
            iot_hub_host_name: self.iot_hub_host_name.clone(),
            reprovision: Reprovision {
                update_hub_assignment: reprovision
                    .and_then(|r| r.update_hub_assignment)
                    .unwrap_or(defaults.update_hub_assignment),
                migrate_device_data: reprovision
                    .and_then(|r| r.migrate_device_data)
                    .unwrap_or(defaults.migrate_device_data),
            },
        }
    }
}

/// attest's `revocationPolicy`: every field optional, none unknown.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RevocationJson {
    check: Option<String>,
    admit_undetermined: Option<bool>,
    admit_expired_crl: Option<bool>,
}

/// Reads a `revocationPolicy` object (see the module documentation).
pub fn revocation_policy(
    value: &serde_json::Value,
) -> std::result::Result<RevocationPolicy, String> {
    let json = RevocationJson::deserialize(value).map_err(|e| e.to_string())?;
    let mode = match json.check.as_deref() {
        None | Some("configured") => RevocationMode::Configured,
        Some("off") => RevocationMode::Off,
        Some("leaf") => RevocationMode::Leaf,
        Some("chain") => RevocationMode::Chain,
        Some(other) => {
            return Err(format!(
                "check {other:?} is not one of \"off\", \"leaf\", \"chain\", \"configured\""
            ));
        }
    };
    let lenience = |admit: Option<bool>| {
        if admit == Some(true) {
            Lenience::Warn
        } else {
            Lenience::Refuse
        }
    };
    Ok(RevocationPolicy {
        mode,
        undetermined: lenience(json.admit_undetermined),
        expired: lenience(json.admit_expired_crl),
    })
}

/// DPS `ReprovisionPolicy`; a value that is there must be a boolean.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReprovisionJson {
    update_hub_assignment: Option<bool>,
    migrate_device_data: Option<bool>,
}

#[derive(Deserialize)]
struct AttestationJson {
    #[serde(rename = "type")]
    kind: String,
    x509: Option<X509Json>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct X509Json {
    client_certificates: Option<CertPairJson>,
    signing_certificates: Option<CertPairJson>,
    ca_references: Option<CaReferencesJson>,
}

#[derive(Deserialize)]
struct CertPairJson {
    primary: Option<CertJson>,
    secondary: Option<CertJson>,
}

#[derive(Deserialize)]
struct CertJson {
    certificate: Option<String>,
}

#[derive(Deserialize)]
struct CaReferencesJson {
    primary: Option<String>,
    secondary: Option<String>,
}

/// An in-memory enrollment set, implementing the component's lookups.
#[derive(Clone, Debug, Default)]
pub struct EnrollmentSet {
    /// Keyed by lower-case registration ID.
    individuals: HashMap<String, IndividualEnrollment>,
    /// Keyed by the CA identity of a group CA certificate (primary and
    /// secondary): re-issued certificates of the same CA match too.
    groups: HashMap<[u8; 32], EnrollmentGroup>,
    /// Trust anchors by subject name key: group CAs and verified CAs.
    anchors: HashMap<[u8; 32], Vec<Vec<u8>>>,
    /// Allocation settings by (kind, id); group IDs as written.
    allocations: HashMap<(EnrollmentKind, String), Allocation>,
    /// Revocation policies, keyed as `allocations`.
    revocations: HashMap<(EnrollmentKind, String), RevocationPolicy>,
    group_ids: HashSet<String>,
    /// The primary signing (or referenced CA) certificate of each group.
    group_certificates: HashMap<String, Vec<u8>>,
}

impl EnrollmentSet {
    /// Parses an enrollment file (`individualEnrollments`, `enrollmentGroups`).
    /// Groups must carry `signingCertificates`.
    pub fn from_json(text: &str) -> Result<EnrollmentSet> {
        let not_a_set = |e: String| {
            EnrollmentError::new(format!("not an enrollment set in DPS JSON shapes: {e}"))
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| not_a_set(e.to_string()))?;
        // An object, nothing else: serde would also read the struct from
        // an array (`[[…], […]]`), a second shape no other host reads.
        if !value.is_object() {
            return Err(not_a_set("expected an object".into()));
        }
        let file = FileJson::deserialize(&value).map_err(|e| not_a_set(e.to_string()))?;
        let mut set = EnrollmentSet::default();
        for (i, e) in file.individual_enrollments.iter().enumerate() {
            set.insert_individual(e)
                .map_err(|err| err.context(&format!("individualEnrollments[{i}]{}", label(e))))?;
        }
        for (i, g) in file.enrollment_groups.iter().enumerate() {
            set.insert_group(g, &|_| None)
                .map_err(|err| err.context(&format!("enrollmentGroups[{i}]{}", label(g))))?;
        }
        Ok(set)
    }

    /// Adds one individual enrollment document (DPS `IndividualEnrollment`).
    pub fn insert_individual(&mut self, doc: &serde_json::Value) -> Result<()> {
        let loaded = IndividualEntry::load(doc)?;
        let key = loaded.enrollment.registration_id.to_ascii_lowercase();
        if self.individuals.contains_key(&key) {
            return Err(EnrollmentError::new(
                "registration ID appears more than once",
            ));
        }
        self.allocations
            .insert((EnrollmentKind::Individual, key.clone()), loaded.allocation);
        self.revocations
            .insert((EnrollmentKind::Individual, key.clone()), loaded.revocation);
        self.individuals.insert(key, loaded.enrollment);
        Ok(())
    }

    /// Adds one enrollment group document (DPS `EnrollmentGroup`).
    /// `ca_reference` resolves `caReferences` names to verified CA
    /// certificates (DER); `None` for an unknown or unverified name.
    pub fn insert_group(
        &mut self,
        doc: &serde_json::Value,
        ca_reference: &dyn Fn(&str) -> Option<Vec<u8>>,
    ) -> Result<()> {
        self.insert_loaded_group(GroupEntry::load(doc, ca_reference)?)
    }

    /// Adds a loaded enrollment group: refused if its ID is here already,
    /// or if one of its CAs is another group's.
    pub fn insert_loaded_group(&mut self, loaded: GroupEntry) -> Result<()> {
        let group_id = loaded.group.group_id.clone();
        if self.group_ids.contains(&group_id) {
            return Err(EnrollmentError::new(
                "enrollment group ID appears more than once",
            ));
        }
        // One CA (subject and key), one group: a second group on the
        // same CA, even through another certificate of it, would make
        // the decision depend on which one a lookup finds.
        for ca in &loaded.cas {
            if let Some(other) = self.groups.get(&ca.keys.ca_identity) {
                return Err(EnrollmentError::conflict(format!(
                    "its CA (same subject and public key) is already the CA of enrollment group '{}'",
                    other.group_id
                )));
            }
        }
        if let Some(primary) = loaded.primary_certificate() {
            self.group_certificates
                .insert(group_id.clone(), primary.to_vec());
        }
        for ca in loaded.cas {
            self.groups
                .insert(ca.keys.ca_identity, loaded.group.clone());
            self.add_anchor_with(ca.der, ca.keys.subject_key);
        }
        self.allocations
            .insert((EnrollmentKind::Group, group_id.clone()), loaded.allocation);
        self.revocations
            .insert((EnrollmentKind::Group, group_id.clone()), loaded.revocation);
        self.group_ids.insert(group_id);
        Ok(())
    }

    /// Adds a trusted CA certificate (a verified CA in DPS terms).
    pub fn add_anchor(&mut self, der: Vec<u8>) -> Result<()> {
        let subject = policy_host::certificate_keys(&der)
            .map_err(|r| {
                EnrollmentError::new(format!("CA certificate is not usable: {}", r.message))
            })?
            .subject_key;
        self.add_anchor_with(der, subject);
        Ok(())
    }

    fn add_anchor_with(&mut self, der: Vec<u8>, subject_key: [u8; 32]) {
        let list = self.anchors.entry(subject_key).or_default();
        if !list.contains(&der) {
            list.push(der);
        }
    }

    /// Number of individual enrollments and groups.
    pub fn counts(&self) -> (usize, usize) {
        (self.individuals.len(), self.group_ids.len())
    }

    /// The primary signing certificate of a group (DER): a
    /// `signingCertificates` one, or the verified CA its `caReferences` names.
    pub fn group_certificate(&self, group_id: &str) -> Option<&[u8]> {
        self.group_certificates.get(group_id).map(Vec::as_slice)
    }

    /// The allocation settings of an entry (individual IDs are matched
    /// case-insensitively).
    pub fn allocation(&self, kind: EnrollmentKind, id: &str) -> Option<&Allocation> {
        let key = match kind {
            EnrollmentKind::Individual => id.to_ascii_lowercase(),
            EnrollmentKind::Group => id.to_string(),
        };
        self.allocations.get(&(kind, key))
    }
}

/// An individual enrollment document, loaded once: what a decision and
/// the service read of it. [`IndividualEntry::load`] holds the rules an
/// individual enrollment must meet; a document that breaks one does not
/// load, and the service refuses its registration ID.
#[derive(Clone, Debug)]
pub struct IndividualEntry {
    /// The enrollment as the component is handed it.
    pub enrollment: IndividualEnrollment,
    /// Its allocation settings.
    pub allocation: Allocation,
    /// Its revocation policy (`revocationPolicy`).
    pub revocation: RevocationPolicy,
}

impl IndividualEntry {
    /// Loads a DPS `IndividualEnrollment` document.
    pub fn load(doc: &serde_json::Value) -> Result<IndividualEntry> {
        let e = entry(doc)?;
        let registration_id = e
            .registration_id
            .clone()
            .ok_or_else(|| EnrollmentError::new("registrationId is missing"))?;
        policy_host::check_registration_id(&registration_id)
            .map_err(|r| EnrollmentError::new(r.message))?;
        if let Some(device_id) = &e.device_id {
            crate::ids::check_device_id(device_id).map_err(EnrollmentError::new)?;
        }
        let enabled = enabled(e.provisioning_status.as_deref())?;
        let allocation = e.allocation();
        let revocation = e.revocation()?;
        let x509 = x509(e.attestation)?;
        let certs = certificates(x509.client_certificates, "clientCertificates")?;
        for (der, which) in certs.iter().zip(["primary", "secondary"]) {
            // Parsed on write: a device certificate that cannot be read
            // would only refuse its device later, with a worse message.
            policy_host::certificate_keys(der).map_err(|r| {
                EnrollmentError::new(format!(
                    "clientCertificates.{which} is not a usable certificate: {}",
                    r.message
                ))
            })?;
            // A CA certificate can never be a device's leaf: refused on
            // write rather than stored as an entry that never admits.
            if is_ca_certificate(der) {
                return Err(EnrollmentError::new(format!(
                    "clientCertificates.{which} is a CA certificate; an individual enrollment holds a device certificate (enroll a CA as an enrollment group)"
                )));
            }
        }
        Ok(IndividualEntry {
            enrollment: IndividualEnrollment {
                registration_id,
                device_id: e.device_id,
                enabled,
                certificates: certs.iter().map(|d| Sha256::digest(d).into()).collect(),
            },
            allocation,
            revocation,
        })
    }
}

/// One CA certificate of an enrollment group, with its lookup keys.
#[derive(Clone, Debug)]
pub struct GroupCa {
    /// The certificate (DER).
    pub der: Vec<u8>,
    /// Its keys (CA identity, subject name key).
    pub keys: CertificateKeys,
}

/// An enrollment group document, loaded once against the verified CA
/// certificates its `caReferences` may name: what a decision and the
/// service read of it. [`GroupEntry::load`] holds the rules a group must
/// meet on its own; one CA, one group across groups is
/// [`EnrollmentSet::insert_loaded_group`]'s (and the service's) to check.
#[derive(Clone, Debug)]
pub struct GroupEntry {
    /// The group as the component is handed it.
    pub group: EnrollmentGroup,
    /// Its allocation settings.
    pub allocation: Allocation,
    /// Its revocation policy (`revocationPolicy`).
    pub revocation: RevocationPolicy,
    /// Its CA certificates, primary first: its `signingCertificates`, or
    /// the verified CA certificates its `caReferences` name.
    pub cas: Vec<GroupCa>,
    /// Whether they are the group's own trust anchors
    /// (`signingCertificates`); referenced CAs are anchors as verified CA
    /// certificates already.
    pub anchors: bool,
}

impl GroupEntry {
    /// Loads a DPS `EnrollmentGroup` document. `ca_reference` resolves
    /// `caReferences` names to verified CA certificates (DER); `None` for
    /// an unknown or unverified name.
    pub fn load(
        doc: &serde_json::Value,
        ca_reference: &dyn Fn(&str) -> Option<Vec<u8>>,
    ) -> Result<GroupEntry> {
        let g = entry(doc)?;
        let group_id = g
            .enrollment_group_id
            .clone()
            .ok_or_else(|| EnrollmentError::new("enrollmentGroupId is missing"))?;
        crate::ids::check_group_id(&group_id).map_err(EnrollmentError::new)?;
        let enabled = enabled(g.provisioning_status.as_deref())?;
        let allocation = g.allocation();
        let revocation = g.revocation()?;
        let (ders, anchors) = group_certs(x509(g.attestation)?, ca_reference)?;
        let mut cas = Vec::with_capacity(ders.len());
        for der in ders {
            let keys = policy_host::certificate_keys(&der).map_err(|r| {
                EnrollmentError::new(format!("CA certificate is not usable: {}", r.message))
            })?;
            cas.push(GroupCa { der, keys });
        }
        Ok(GroupEntry {
            group: EnrollmentGroup { group_id, enabled },
            allocation,
            revocation,
            cas,
            anchors,
        })
    }

    /// The primary CA certificate (DER).
    pub fn primary_certificate(&self) -> Option<&[u8]> {
        self.cas.first().map(|ca| ca.der.as_slice())
    }

    /// Whether the CA with this identity is one of the group's.
    pub fn covers(&self, ca_identity: &[u8; 32]) -> bool {
        self.cas
            .iter()
            .any(|ca| &ca.keys.ca_identity == ca_identity)
    }
}

fn group_certs(
    x509: X509Json,
    ca_reference: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Result<(Vec<Vec<u8>>, bool)> {
    match (x509.signing_certificates, x509.ca_references) {
        // One group, one CA identity: a document that names it two ways
        // could be read as either (decisions once read only the first,
        // and the referenced CA's devices slipped through to a parent).
        (Some(_), Some(_)) => Err(EnrollmentError::new(
            "attestation.x509 has both signingCertificates and caReferences; an enrollment group names one CA, one way",
        )),
        (Some(pair), None) => {
            let certs = certificates(Some(pair), "signingCertificates")?;
            for (der, which) in certs.iter().zip(["primary", "secondary"]) {
                if let Some(why) = issuer_problem(der) {
                    return Err(EnrollmentError::new(format!(
                        "signingCertificates.{which} {why}: it cannot issue device certificates, so the group could never admit one"
                    )));
                }
            }
            Ok((certs, true))
        }
        (None, Some(refs)) => {
            let mut out = Vec::new();
            for name in [refs.primary, refs.secondary].into_iter().flatten() {
                out.push(ca_reference(&name).ok_or_else(|| {
                    EnrollmentError::new(format!(
                        "caReferences names CA certificate '{name}', which is not a verified CA certificate of this service"
                    ))
                })?);
            }
            if out.is_empty() {
                return Err(EnrollmentError::new("caReferences.primary is missing"));
            }
            Ok((out, false))
        }
        (None, None) => Err(EnrollmentError::new(
            "attestation.x509 needs signingCertificates or caReferences",
        )),
    }
}

/// The CA certificates that can still be read from a group document that
/// does not load: its signing certificates that parse and the verified CA
/// certificates it names (the service marks those CAs unusable). Lenient
/// on purpose, as [`ca_reference_names`] is: they read what
/// [`GroupEntry::load`] refuses.
pub fn readable_group_certificates(
    doc: &serde_json::Value,
    ca_reference: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Vec<Vec<u8>> {
    let doc = normalize_entry(doc).unwrap_or_else(|_| doc.clone());
    let x509 = &doc["attestation"]["x509"];
    let mut ders = Vec::new();
    for which in ["primary", "secondary"] {
        if let Some(text) = x509["signingCertificates"][which]["certificate"].as_str()
            && let Ok(der) = one_certificate(text)
        {
            ders.push(der);
        }
        if let Some(name) = x509["caReferences"][which].as_str()
            && let Some(der) = ca_reference(name)
        {
            ders.push(der);
        }
    }
    ders
}

fn label(doc: &serde_json::Value) -> String {
    doc.get("registrationId")
        .or_else(|| doc.get("enrollmentGroupId"))
        .and_then(|v| v.as_str())
        .map(|id| format!(" ('{id}')"))
        .unwrap_or_default()
}

fn entry(doc: &serde_json::Value) -> Result<EntryJson> {
    EntryJson::deserialize(&normalize_entry(doc)?)
        .map_err(|e| EnrollmentError::new(format!("not a DPS enrollment: {e}")))
}

fn enabled(status: Option<&str>) -> Result<bool> {
    match status {
        None => Ok(true),
        Some(s) if s.eq_ignore_ascii_case("enabled") => Ok(true),
        Some(s) if s.eq_ignore_ascii_case("disabled") => Ok(false),
        Some(s) => Err(EnrollmentError::new(format!(
            "provisioningStatus {s:?} is neither \"enabled\" nor \"disabled\""
        ))),
    }
}

fn x509(attestation: Option<AttestationJson>) -> Result<X509Json> {
    let attestation = attestation.ok_or_else(|| EnrollmentError::new("attestation is missing"))?;
    if !attestation.kind.eq_ignore_ascii_case("x509") {
        return Err(EnrollmentError::new(format!(
            "attestation type {:?} is not supported; attest handles \"x509\"",
            attestation.kind
        )));
    }
    attestation
        .x509
        .ok_or_else(|| EnrollmentError::new("attestation.x509 is missing"))
}

/// Why a certificate cannot issue others (RFC 5280 §4.2.1.9, §4.2.1.3),
/// or `None` when it can: a v3 certificate needs basicConstraints with cA
/// true and, where keyUsage is present, keyCertSign. A v1/v2 certificate
/// can only be a trust anchor and is left to path validation, as is one
/// that does not parse (the core refuses it with its own reason).
fn issuer_problem(der: &[u8]) -> Option<&'static str> {
    let (ca, key_cert_sign) = ca_facts(der)?;
    if !ca {
        Some("is not a CA certificate (basicConstraints cA is not true)")
    } else if !key_cert_sign {
        Some("is a CA certificate whose keyUsage lacks keyCertSign")
    } else {
        None
    }
}

/// Whether a certificate is a v3 CA certificate (basicConstraints cA true).
fn is_ca_certificate(der: &[u8]) -> bool {
    ca_facts(der).is_some_and(|(ca, _)| ca)
}

/// A v3 certificate's (cA, keyCertSign allowed); `None` for v1/v2 or a
/// certificate that does not parse.
fn ca_facts(der: &[u8]) -> Option<(bool, bool)> {
    use const_oid::AssociatedOid;
    use der::Decode;
    use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let tbs = &cert.tbs_certificate;
    if tbs.version != x509_cert::certificate::Version::V3 {
        return None;
    }
    let mut ca = false;
    let mut key_cert_sign = true;
    for ext in tbs.extensions.iter().flatten() {
        if ext.extn_id == BasicConstraints::OID {
            ca = BasicConstraints::from_der(ext.extn_value.as_bytes()).is_ok_and(|b| b.ca);
        } else if ext.extn_id == KeyUsage::OID {
            key_cert_sign = KeyUsage::from_der(ext.extn_value.as_bytes())
                .is_ok_and(|k| k.0.contains(KeyUsages::KeyCertSign));
        }
    }
    Some((ca, key_cert_sign))
}

fn certificates(pair: Option<CertPairJson>, what: &str) -> Result<Vec<Vec<u8>>> {
    let pair =
        pair.ok_or_else(|| EnrollmentError::new(format!("attestation.x509.{what} is missing")))?;
    let primary = pair.primary.and_then(|c| c.certificate).ok_or_else(|| {
        EnrollmentError::new(format!(
            "attestation.x509.{what}.primary.certificate is missing"
        ))
    })?;
    let mut out =
        vec![one_certificate(&primary).map_err(|e| e.context(&format!("{what}.primary")))?];
    if let Some(secondary) = pair.secondary.and_then(|c| c.certificate) {
        out.push(one_certificate(&secondary).map_err(|e| e.context(&format!("{what}.secondary")))?);
    }
    Ok(out)
}

/// One certificate given as PEM or as bare base64 of its DER (both appear
/// in DPS JSON).
pub fn one_certificate(text: &str) -> Result<Vec<u8>> {
    if text.contains("-----BEGIN") {
        let mut certs = Vec::new();
        for cert in CertificateDer::pem_slice_iter(text.as_bytes()) {
            let cert = cert.map_err(|e| EnrollmentError::new(format!("not valid PEM: {e}")))?;
            certs.push(cert.to_vec());
        }
        if certs.len() != 1 {
            return Err(EnrollmentError::new(format!(
                "expected one certificate, found {}",
                certs.len()
            )));
        }
        return Ok(certs.remove(0));
    }
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(compact.as_bytes()).map_err(|e| {
        EnrollmentError::new(format!("certificate is neither PEM nor base64 DER: {e}"))
    })
}

impl EnrollmentSource for EnrollmentSet {
    fn individual(&self, registration_id: &str) -> Option<IndividualEnrollment> {
        self.individuals
            .get(&registration_id.to_ascii_lowercase())
            .cloned()
    }

    fn group(&self, ca_identity: &[u8; 32]) -> Option<EnrollmentGroup> {
        self.groups.get(ca_identity).cloned()
    }

    fn trust_anchors(&self, subject_key: &[u8; 32]) -> Vec<Vec<u8>> {
        self.anchors.get(subject_key).cloned().unwrap_or_default()
    }

    fn revocation(&self, entry: &EnrollmentRef) -> RevocationPolicy {
        let key = match entry.kind {
            EnrollmentKind::Individual => entry.id.to_ascii_lowercase(),
            EnrollmentKind::Group => entry.id.clone(),
        };
        // An entry the component found is here; anything else is asked
        // for nothing this set holds, and gets the strictest answer.
        self.revocations
            .get(&(entry.kind, key))
            .copied()
            .unwrap_or(RevocationPolicy::CHAIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real device certificate (base64 DER): client certificates are
    /// parsed on load.
    fn device_certificate_base64() -> String {
        let at = |t| time::OffsetDateTime::from_unix_timestamp(t).unwrap();
        let validity = attest_pki::Validity {
            not_before: at(1_780_000_000),
            not_after: at(1_800_000_000),
        };
        let root = attest_pki::Ca::root("r", attest_pki::KeyAlg::P256, validity).unwrap();
        let device = root
            .device("d1", attest_pki::KeyAlg::P256, validity)
            .unwrap();
        STANDARD.encode(&device.der)
    }

    #[test]
    fn unreadable_client_certificates_are_refused_on_load() {
        for garbage in ["AAAA", "MIIB", ""] {
            let text = format!(
                r#"{{"individualEnrollments":[{{"registrationId":"d1","attestation":{{"type":"x509","x509":{{"clientCertificates":{{"primary":{{"certificate":"{garbage}"}}}}}}}}}}]}}"#
            );
            let err = EnrollmentSet::from_json(&text).unwrap_err();
            assert!(
                err.to_string().contains("clientCertificates.primary"),
                "{garbage:?}: {err}"
            );
        }
    }

    #[test]
    fn an_enrollment_file_is_an_object() {
        for text in ["[]", "[[], []]", "null", "3", "\"x\""] {
            let err = EnrollmentSet::from_json(text).unwrap_err();
            assert!(
                err.to_string().contains("expected an object"),
                "{text}: {err}"
            );
        }
        assert!(EnrollmentSet::from_json("{}").is_ok());
    }

    #[test]
    fn errors_name_the_entry() {
        let err = EnrollmentSet::from_json(
            r#"{"enrollmentGroups":[{"enrollmentGroupId":"g1","attestation":{"type":"tpm"}}]}"#,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("enrollmentGroups[0] ('g1')"), "{msg}");
        assert!(msg.contains("tpm"), "{msg}");
    }

    #[test]
    fn not_json_is_an_error() {
        let err = EnrollmentSet::from_json("{not json").unwrap_err();
        assert!(err.to_string().contains("DPS JSON"));
    }

    #[test]
    fn bad_status_and_missing_certificate() {
        let err = EnrollmentSet::from_json(
            r#"{"individualEnrollments":[{"registrationId":"d1","provisioningStatus":"maybe","attestation":{"type":"x509","x509":{}}}]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("maybe"));
        let err = EnrollmentSet::from_json(
            r#"{"individualEnrollments":[{"registrationId":"d1","attestation":{"type":"x509","x509":{}}}]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("clientCertificates is missing"));
    }

    /// Regression (issue "Fail closed in the service", item 3): these
    /// spellings used to give an *enabled* entry, admitting a disabled
    /// device. Keys match case-insensitively (as DPS does); near misses
    /// and null are errors.
    #[test]
    fn provisioning_status_spellings_never_default_to_enabled() {
        let certificate = device_certificate_base64();
        let individual = |status_field: &str| {
            format!(
                r#"{{"individualEnrollments":[{{"registrationId":"d1",{status_field},"attestation":{{"type":"x509","x509":{{"clientCertificates":{{"primary":{{"certificate":"{certificate}"}}}}}}}}}}]}}"#
            )
        };
        for spelling in [
            r#""ProvisioningStatus":"disabled""#,
            r#""provisioningstatus":"disabled""#,
            r#""PROVISIONINGSTATUS":"Disabled""#,
        ] {
            let set = EnrollmentSet::from_json(&individual(spelling)).unwrap();
            assert!(!set.individual("d1").unwrap().enabled, "{spelling}");
        }
        for bad in [
            r#""provisioning_status":"disabled""#,
            r#""provisioning-status":"disabled""#,
            r#""provisioningStatus":null"#,
            r#""provisioningStatus":false"#,
            r#""provisioningStatus":"disabled ""#,
            r#""provisioningStatus":"enabled","ProvisioningStatus":"disabled""#,
        ] {
            assert!(EnrollmentSet::from_json(&individual(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_set_is_fine() {
        let set = EnrollmentSet::from_json("{}").unwrap();
        assert_eq!(set.counts(), (0, 0));
    }

    #[test]
    fn unknown_ca_reference_is_an_error() {
        let mut set = EnrollmentSet::default();
        let doc = serde_json::json!({"enrollmentGroupId": "g", "attestation": {"type": "x509",
            "x509": {"caReferences": {"primary": "factory"}}}});
        let err = set.insert_group(&doc, &|_| None).unwrap_err();
        assert!(err.to_string().contains("'factory'"), "{err}");
    }
}
