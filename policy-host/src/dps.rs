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

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use policy_core::{EnrollmentGroup, EnrollmentKind, EnrollmentSource, IndividualEnrollment};

/// An enrollment document or set that is not usable; the message names the
/// entry and field at fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EnrollmentError(String);

impl EnrollmentError {
    fn new(message: impl Into<String>) -> Self {
        EnrollmentError(message.into())
    }

    fn context(self, at: &str) -> Self {
        EnrollmentError(format!("{at}: {}", self.0))
    }
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

/// How a host assigns a device that an entry admits (DPS allocation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allocation {
    /// `static`, `hashed` (default when several hubs are listed), or another
    /// DPS policy name (treated as hashed).
    pub policy: Option<String>,
    /// Candidate IoT hub host names (`iotHubs`).
    pub iot_hubs: Vec<String>,
    /// The hub of a static allocation (`iotHubHostName`).
    pub iot_hub_host_name: Option<String>,
}

impl Allocation {
    /// The hub for `registration_id`: the static hub, or a stable hash of the
    /// lower-case registration ID over `iotHubs`; `None` when no hub is named.
    pub fn hub_for(&self, registration_id: &str) -> Option<String> {
        let is_static = self
            .policy
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case("static"));
        if (is_static || self.iot_hubs.is_empty()) && self.iot_hub_host_name.is_some() {
            return self.iot_hub_host_name.clone();
        }
        if self.iot_hubs.is_empty() {
            return None;
        }
        if is_static {
            return self.iot_hubs.first().cloned();
        }
        let digest = Sha256::digest(registration_id.to_ascii_lowercase().as_bytes());
        let n = digest[..8]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let index = usize::try_from(n % self.iot_hubs.len() as u64).unwrap_or(0);
        self.iot_hubs.get(index).cloned()
    }

    /// Whether `hub` is one this entry may assign.
    pub fn allows(&self, hub: &str) -> bool {
        self.iot_hub_host_name.as_deref() == Some(hub) || self.iot_hubs.iter().any(|h| h == hub)
    }
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
    group_ids: HashSet<String>,
}

impl EnrollmentSet {
    /// Parses an enrollment file (`individualEnrollments`, `enrollmentGroups`).
    /// Groups must carry `signingCertificates`.
    pub fn from_json(text: &str) -> Result<EnrollmentSet> {
        let file: FileJson = serde_json::from_str(text).map_err(|e| {
            EnrollmentError::new(format!("not an enrollment set in DPS JSON shapes: {e}"))
        })?;
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
        let e = entry(doc)?;
        let registration_id = e
            .registration_id
            .ok_or_else(|| EnrollmentError::new("registrationId is missing"))?;
        policy_core::check_registration_id(&registration_id)
            .map_err(|r| EnrollmentError::new(r.message))?;
        let key = registration_id.to_ascii_lowercase();
        if self.individuals.contains_key(&key) {
            return Err(EnrollmentError::new(
                "registration ID appears more than once",
            ));
        }
        let enabled = enabled(e.provisioning_status.as_deref())?;
        let x509 = x509(e.attestation)?;
        let certs = certificates(x509.client_certificates, "clientCertificates")?;
        self.allocations.insert(
            (EnrollmentKind::Individual, key.clone()),
            Allocation {
                policy: e.allocation_policy,
                iot_hubs: e.iot_hubs,
                iot_hub_host_name: e.iot_hub_host_name,
            },
        );
        self.individuals.insert(
            key,
            IndividualEnrollment {
                registration_id,
                device_id: e.device_id,
                enabled,
                certificates: certs.iter().map(|d| Sha256::digest(d).into()).collect(),
            },
        );
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
        let g = entry(doc)?;
        let group_id = g
            .enrollment_group_id
            .ok_or_else(|| EnrollmentError::new("enrollmentGroupId is missing"))?;
        if group_id.is_empty() || group_id.len() > 128 {
            return Err(EnrollmentError::new(
                "enrollmentGroupId must be 1 to 128 characters",
            ));
        }
        if self.group_ids.contains(&group_id) {
            return Err(EnrollmentError::new(
                "enrollment group ID appears more than once",
            ));
        }
        let enabled = enabled(g.provisioning_status.as_deref())?;
        let x509 = x509(g.attestation)?;
        let certs = match (x509.signing_certificates, x509.ca_references) {
            (Some(pair), _) => certificates(Some(pair), "signingCertificates")?,
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
                out
            }
            (None, None) => {
                return Err(EnrollmentError::new(
                    "attestation.x509 needs signingCertificates or caReferences",
                ));
            }
        };
        let group = EnrollmentGroup {
            group_id: group_id.clone(),
            enabled,
        };
        let mut identities = Vec::with_capacity(certs.len());
        for der in &certs {
            let identity = policy_core::certificate_keys(der)
                .map_err(|r| {
                    EnrollmentError::new(format!("CA certificate is not usable: {}", r.message))
                })?
                .ca_identity;
            // One CA (subject and key), one group: a second group on the
            // same CA, even through another certificate of it, would make
            // the decision depend on which one a lookup finds.
            if let Some(other) = self.groups.get(&identity) {
                return Err(EnrollmentError::new(format!(
                    "its CA (same subject and public key) is already the CA of enrollment group '{}'",
                    other.group_id
                )));
            }
            identities.push(identity);
        }
        for (der, identity) in certs.into_iter().zip(identities) {
            self.add_anchor(der)?;
            self.groups.insert(identity, group.clone());
        }
        self.allocations.insert(
            (EnrollmentKind::Group, group_id.clone()),
            Allocation {
                policy: g.allocation_policy,
                iot_hubs: g.iot_hubs,
                iot_hub_host_name: g.iot_hub_host_name,
            },
        );
        self.group_ids.insert(group_id);
        Ok(())
    }

    /// Adds a trusted CA certificate (a verified CA in DPS terms).
    pub fn add_anchor(&mut self, der: Vec<u8>) -> Result<()> {
        let subject = policy_core::certificate_keys(&der)
            .map_err(|r| {
                EnrollmentError::new(format!("CA certificate is not usable: {}", r.message))
            })?
            .subject_key;
        let list = self.anchors.entry(subject).or_default();
        if !list.contains(&der) {
            list.push(der);
        }
        Ok(())
    }

    /// Number of individual enrollments and groups.
    pub fn counts(&self) -> (usize, usize) {
        (self.individuals.len(), self.group_ids.len())
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

fn label(doc: &serde_json::Value) -> String {
    doc.get("registrationId")
        .or_else(|| doc.get("enrollmentGroupId"))
        .and_then(|v| v.as_str())
        .map(|id| format!(" ('{id}')"))
        .unwrap_or_default()
}

fn entry(doc: &serde_json::Value) -> Result<EntryJson> {
    EntryJson::deserialize(doc)
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
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn allocation_is_static_or_a_stable_hash() {
        let hubs = Allocation {
            policy: Some("hashed".into()),
            iot_hubs: vec!["a.example".into(), "b.example".into(), "c.example".into()],
            iot_hub_host_name: None,
        };
        let first = hubs.hub_for("device-1").unwrap();
        assert_eq!(hubs.hub_for("DEVICE-1").unwrap(), first);
        let spread: HashSet<String> = (0..30)
            .filter_map(|i| hubs.hub_for(&format!("device-{i}")))
            .collect();
        assert_eq!(spread.len(), 3);
        let fixed = Allocation {
            policy: Some("static".into()),
            iot_hubs: vec!["a.example".into(), "b.example".into()],
            iot_hub_host_name: Some("b.example".into()),
        };
        assert_eq!(fixed.hub_for("anything").as_deref(), Some("b.example"));
        assert_eq!(Allocation::default().hub_for("x"), None);
    }
}
