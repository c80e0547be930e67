//! Enrollment sets in the DPS service API's JSON shapes, so existing DPS
//! enrollment definitions can be pasted in:
//!
//! ```json
//! {"individualEnrollments": [{"registrationId": "device-3", "provisioningStatus": "disabled",
//!    "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": "-----BEGIN CERTIFICATE-----…"}}}}}],
//!  "enrollmentGroups": [{"enrollmentGroupId": "line-b", "provisioningStatus": "enabled",
//!    "attestation": {"type": "x509", "x509": {"signingCertificates": {"primary": {"certificate": "-----BEGIN CERTIFICATE-----…"}}}}}]}
//! ```
//!
//! Fields attest does not use (allocation, twin, capabilities, …) are
//! accepted and ignored. `provisioningStatus` defaults to enabled, as in DPS.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use policy_host::{EnrollmentGroup, EnrollmentSource, IndividualEnrollment};

use crate::input;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileJson {
    #[serde(default)]
    individual_enrollments: Vec<IndividualJson>,
    #[serde(default)]
    enrollment_groups: Vec<GroupJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndividualJson {
    registration_id: String,
    device_id: Option<String>,
    provisioning_status: Option<String>,
    attestation: AttestationJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupJson {
    enrollment_group_id: String,
    provisioning_status: Option<String>,
    attestation: AttestationJson,
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
    ca_references: Option<serde_json::Value>,
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

/// An in-memory enrollment set, implementing the component's lookups.
#[derive(Clone, Debug, Default)]
pub struct EnrollmentSet {
    /// Keyed by lower-case registration ID.
    individuals: HashMap<String, IndividualEnrollment>,
    /// Keyed by SHA-256 of a group CA certificate (primary and secondary).
    groups: HashMap<[u8; 32], EnrollmentGroup>,
    /// Trust anchors by subject DER: group CAs and `--trust` roots.
    anchors: HashMap<Vec<u8>, Vec<Vec<u8>>>,
    group_count: usize,
}

impl EnrollmentSet {
    /// Parses an enrollment file's text. Errors name the entry at fault.
    pub fn from_json(text: &str) -> Result<EnrollmentSet> {
        let file: FileJson = serde_json::from_str(text)
            .map_err(|e| anyhow!("not an enrollment set in DPS JSON shapes: {e}"))?;
        let mut set = EnrollmentSet::default();
        let mut group_ids = HashSet::new();
        for (i, e) in file.individual_enrollments.into_iter().enumerate() {
            let at = format!("individualEnrollments[{i}] ('{}')", e.registration_id);
            let entry = individual(e).with_context(|| at.clone())?;
            let key = entry.registration_id.to_ascii_lowercase();
            if set.individuals.contains_key(&key) {
                bail!("{at}: registration ID appears more than once");
            }
            set.individuals.insert(key, entry);
        }
        for (i, g) in file.enrollment_groups.into_iter().enumerate() {
            let at = format!("enrollmentGroups[{i}] ('{}')", g.enrollment_group_id);
            if !group_ids.insert(g.enrollment_group_id.clone()) {
                bail!("{at}: enrollment group ID appears more than once");
            }
            let (group, certs) = group(g).with_context(|| at.clone())?;
            for der in certs {
                let thumb: [u8; 32] = Sha256::digest(&der).into();
                if let Some(other) = set.groups.get(&thumb) {
                    bail!(
                        "{at}: its CA certificate is already the CA of enrollment group '{}'",
                        other.group_id
                    );
                }
                set.groups.insert(thumb, group.clone());
                set.add_anchor(der).with_context(|| at.clone())?;
            }
            set.group_count += 1;
        }
        Ok(set)
    }

    /// Adds a trusted CA certificate (a verified CA in DPS terms).
    pub fn add_anchor(&mut self, der: Vec<u8>) -> Result<()> {
        let subject = policy_core::certificate_subject(&der)
            .map_err(|r| anyhow!("trust anchor is not usable: {r}"))?;
        let list = self.anchors.entry(subject).or_default();
        if !list.contains(&der) {
            list.push(der);
        }
        Ok(())
    }

    /// Number of individual enrollments and groups.
    pub fn counts(&self) -> (usize, usize) {
        (self.individuals.len(), self.group_count)
    }
}

fn enabled(status: Option<&str>) -> Result<bool> {
    match status {
        None => Ok(true),
        Some(s) if s.eq_ignore_ascii_case("enabled") => Ok(true),
        Some(s) if s.eq_ignore_ascii_case("disabled") => Ok(false),
        Some(s) => bail!("provisioningStatus {s:?} is neither \"enabled\" nor \"disabled\""),
    }
}

fn x509(attestation: AttestationJson) -> Result<X509Json> {
    if !attestation.kind.eq_ignore_ascii_case("x509") {
        bail!(
            "attestation type {:?} is not supported; attest handles \"x509\"",
            attestation.kind
        );
    }
    attestation
        .x509
        .ok_or_else(|| anyhow!("attestation.x509 is missing"))
}

fn certificates(pair: Option<CertPairJson>, what: &str) -> Result<Vec<Vec<u8>>> {
    let pair = pair.ok_or_else(|| anyhow!("attestation.x509.{what} is missing"))?;
    let primary = pair
        .primary
        .and_then(|c| c.certificate)
        .ok_or_else(|| anyhow!("attestation.x509.{what}.primary.certificate is missing"))?;
    let mut out =
        vec![input::one_certificate(&primary).with_context(|| format!("{what}.primary"))?];
    if let Some(secondary) = pair.secondary.and_then(|c| c.certificate) {
        out.push(input::one_certificate(&secondary).with_context(|| format!("{what}.secondary"))?);
    }
    Ok(out)
}

fn individual(e: IndividualJson) -> Result<IndividualEnrollment> {
    policy_core::check_registration_id(&e.registration_id).map_err(|r| anyhow!("{}", r.message))?;
    let enabled = enabled(e.provisioning_status.as_deref())?;
    let x509 = x509(e.attestation)?;
    let certs = certificates(x509.client_certificates, "clientCertificates")?;
    Ok(IndividualEnrollment {
        registration_id: e.registration_id,
        device_id: e.device_id,
        enabled,
        certificates: certs.iter().map(|d| Sha256::digest(d).into()).collect(),
    })
}

fn group(g: GroupJson) -> Result<(EnrollmentGroup, Vec<Vec<u8>>)> {
    if g.enrollment_group_id.is_empty() || g.enrollment_group_id.len() > 128 {
        bail!("enrollmentGroupId must be 1 to 128 characters");
    }
    let enabled = enabled(g.provisioning_status.as_deref())?;
    let x509 = x509(g.attestation)?;
    if x509.ca_references.is_some() && x509.signing_certificates.is_none() {
        bail!(
            "caReferences name CA certificates in a DPS service's store; an enrollment file must carry signingCertificates"
        );
    }
    let certs = certificates(x509.signing_certificates, "signingCertificates")?;
    Ok((
        EnrollmentGroup {
            group_id: g.enrollment_group_id,
            enabled,
        },
        certs,
    ))
}

impl EnrollmentSource for EnrollmentSet {
    fn individual(&self, registration_id: &str) -> Option<IndividualEnrollment> {
        self.individuals
            .get(&registration_id.to_ascii_lowercase())
            .cloned()
    }

    fn group(&self, ca_sha256: &[u8; 32]) -> Option<EnrollmentGroup> {
        self.groups.get(ca_sha256).cloned()
    }

    fn trust_anchors(&self, subject: &[u8]) -> Vec<Vec<u8>> {
        self.anchors.get(subject).cloned().unwrap_or_default()
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
        let msg = format!("{err:#}");
        assert!(msg.contains("enrollmentGroups[0] ('g1')"), "{msg}");
        assert!(msg.contains("tpm"), "{msg}");
    }

    #[test]
    fn not_json_is_an_error() {
        let err = EnrollmentSet::from_json("{not json").unwrap_err();
        assert!(format!("{err:#}").contains("DPS JSON"));
    }

    #[test]
    fn bad_status_and_missing_certificate() {
        let err = EnrollmentSet::from_json(
            r#"{"individualEnrollments":[{"registrationId":"d1","provisioningStatus":"maybe","attestation":{"type":"x509","x509":{}}}]}"#,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("maybe"));
        let err = EnrollmentSet::from_json(
            r#"{"individualEnrollments":[{"registrationId":"d1","attestation":{"type":"x509","x509":{}}}]}"#,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("clientCertificates is missing"));
    }

    #[test]
    fn empty_set_is_fine() {
        let set = EnrollmentSet::from_json("{}").unwrap();
        assert_eq!(set.counts(), (0, 0));
    }
}
