//! DPS documents attest writes: registration states, operation statuses,
//! certificate information, CA certificate resources, and the
//! server-managed fields of enrollments. Pure: times, etags and IDs are
//! arguments.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use policy_host::{Assignment, Decision, EnrollmentKind, Refusal};

use crate::ErrorKind;

pub use crate::kind::key_of;

/// The JSON field that names an entry of `kind`.
pub fn id_field(kind: EnrollmentKind) -> &'static str {
    crate::kind::names(kind).id_field
}

/// `If-Match` against the current etag: absent matches anything, `*`
/// matches any existing entity, otherwise the etags must be equal (quotes
/// optional).
pub fn etag_matches(if_match: Option<&str>, current: Option<&str>) -> bool {
    let strip = |s: &str| s.trim().trim_matches('"').to_string();
    match (if_match, current) {
        (None, _) => true,
        (Some(m), Some(_)) if m.trim() == "*" => true,
        (Some(m), Some(c)) => strip(m) == strip(c),
        (Some(_), None) => false,
    }
}

/// RFC 3339 UTC of a Unix time ("" if out of range).
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// RFC 1123 (HTTP date) of a Unix time, as DPS's certificate resources
/// write times: `Sat, 28 Nov 2026 10:00:00 GMT` ("" if out of range).
pub fn rfc1123(unix: i64) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// An RFC 3339 time (as stored) in RFC 1123; unreadable text stays as it is.
fn rfc3339_to_rfc1123(text: &str) -> String {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| rfc1123(t.unix_timestamp()))
        .unwrap_or_else(|_| text.to_string())
}

/// An enrollment document as stored and returned: the submitted one with
/// the read-only fields a caller may have sent dropped (`registrationState`
/// belongs to the registration records), `provisioningStatus` defaulted,
/// and the server-managed times and etag set.
pub fn complete_enrollment(
    mut doc: Value,
    created: Option<&Value>,
    now: &str,
    etag: &str,
) -> Value {
    if let Some(object) = doc.as_object_mut() {
        object.remove("registrationState");
    }
    fill_certificate_info(&mut doc);
    if doc.get("provisioningStatus").is_none() {
        doc["provisioningStatus"] = json!("enabled");
    }
    doc["createdDateTimeUtc"] = created.cloned().unwrap_or_else(|| json!(now));
    doc["lastUpdatedDateTimeUtc"] = json!(now);
    doc["etag"] = json!(etag);
    doc
}

/// DPS `X509CertificateInfo` of a certificate (`None` if it cannot be read).
pub fn certificate_info(der: &[u8]) -> Option<Value> {
    let (info, version) = policy_host::certificate_details(der).ok()?;
    Some(json!({
        "subjectName": info.subject,
        "sha1Thumbprint": hex::encode_upper(Sha1::digest(der)),
        "sha256Thumbprint": hex::encode_upper(Sha256::digest(der)),
        "issuerName": info.issuer,
        "notBeforeUtc": rfc3339(info.not_before),
        "notAfterUtc": rfc3339(info.not_after),
        "serialNumber": info.serial,
        "version": version,
    }))
}

/// Sets the read-only `info` of every certificate in an enrollment's X.509
/// attestation (client and signing certificates, primary and secondary)
/// from the certificate itself; an `info` a caller sent is replaced.
pub fn fill_certificate_info(doc: &mut Value) {
    let Some(x509) = doc
        .pointer_mut("/attestation/x509")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for pair in ["clientCertificates", "signingCertificates"] {
        for which in ["primary", "secondary"] {
            let Some(slot) = x509
                .get_mut(pair)
                .and_then(|p| p.get_mut(which))
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            let info = slot
                .get("certificate")
                .and_then(Value::as_str)
                .and_then(|text| crate::enrollment::one_certificate(text).ok())
                .and_then(|der| certificate_info(&der));
            match info {
                Some(info) => slot.insert("info".into(), info),
                None => slot.remove("info"),
            };
        }
    }
}

/// The message a refused device reads: attest's one-line refusal.
pub fn refusal_message(refusal: &Refusal) -> String {
    format!("attest refused the device: {refusal}")
}

/// Registration-record fields that persist across registrations.
#[derive(Clone, Debug, Default)]
pub struct Previous<'a> {
    /// `createdDateTimeUtc` of the existing record.
    pub created: Option<&'a Value>,
}

/// The `status` of a registration record attest writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationStatus {
    /// Admitted and assigned to a hub.
    Assigned,
    /// Refused: no enrollment covers the device.
    Failed,
    /// Refused: the deciding entry is disabled.
    Disabled,
}

/// The `x509` part of a registration record: the deciding group, or the
/// individual enrollment's certificate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X509State {
    /// The deciding enrollment group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_group_id: Option<String>,
    /// The device certificate (individual enrollments); `null` when it
    /// cannot be described.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_info: Option<Value>,
    /// The group's CA certificate (group admissions); `null` when it
    /// cannot be described.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_certificate_info: Option<Value>,
}

/// DPS `DeviceRegistrationState`: the registration record attest writes,
/// and reads back (its status, hub and creation time).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationState {
    /// Lower-case registration ID.
    pub registration_id: String,
    /// When the record was first written (kept as stored).
    #[serde(rename = "createdDateTimeUtc")]
    pub created: Value,
    /// The hub the device is assigned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_hub: Option<String>,
    /// The device ID it has there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Assigned, failed or disabled.
    pub status: RegistrationStatus,
    /// How the assignment relates to the previous one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substatus: Option<String>,
    /// The DPS error code of a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u32>,
    /// attest's one-line refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// When it was last written.
    #[serde(rename = "lastUpdatedDateTimeUtc")]
    pub last_updated: String,
    /// The X.509 attestation details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509: Option<X509State>,
    /// The record's etag.
    pub etag: String,
}

impl RegistrationState {
    /// A stored record, if it has this shape (records attest wrote do).
    pub fn from_json(doc: &Value) -> Option<RegistrationState> {
        RegistrationState::deserialize(doc).ok()
    }

    /// The document as stored and served.
    pub fn to_json(&self) -> serde_json::Result<Value> {
        serde_json::to_value(self)
    }

    /// The hub of the device's current assignment (a refused record has none).
    pub fn current_hub(&self) -> Option<&str> {
        match self.status {
            RegistrationStatus::Assigned => self.assigned_hub.as_deref(),
            RegistrationStatus::Failed | RegistrationStatus::Disabled => None,
        }
    }
}

/// DPS `RegistrationOperationStatus`: what a registration answers and what
/// polling its operation reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationStatus {
    /// The operation's ID.
    pub operation_id: String,
    /// The registration's status.
    pub status: RegistrationStatus,
    /// The registration record.
    pub registration_state: RegistrationState,
}

impl OperationStatus {
    /// The document as stored and served.
    pub fn to_json(&self) -> serde_json::Result<Value> {
        serde_json::to_value(self)
    }
}

/// DPS `DeviceRegistrationState` of an admitted device. `signing` is the
/// deciding group's signing certificate (for a group decision).
pub fn assigned_state(
    decision: &Decision,
    leaf: &[u8],
    signing: Option<&[u8]>,
    assignment: &Assignment,
    previous: &Previous<'_>,
    now: &str,
    etag: &str,
) -> RegistrationState {
    let x509 = match decision.enrollment.kind {
        EnrollmentKind::Group => X509State {
            enrollment_group_id: Some(decision.enrollment.id.clone()),
            signing_certificate_info: Some(
                signing.and_then(certificate_info).unwrap_or(Value::Null),
            ),
            ..X509State::default()
        },
        EnrollmentKind::Individual => X509State {
            certificate_info: Some(certificate_info(leaf).unwrap_or(Value::Null)),
            ..X509State::default()
        },
    };
    RegistrationState {
        registration_id: decision.registration_id.clone(),
        created: previous.created.cloned().unwrap_or_else(|| json!(now)),
        assigned_hub: Some(assignment.hub.clone()),
        device_id: Some(decision.device_id.clone()),
        status: RegistrationStatus::Assigned,
        substatus: Some(assignment.substatus.as_str().to_string()),
        error_code: None,
        error_message: None,
        last_updated: now.to_string(),
        x509: Some(x509),
        etag: etag.to_string(),
    }
}

/// DPS `DeviceRegistrationState` of a refused device whose refusal is
/// recorded (`disabled`: an entry is disabled; `failed`: no entry).
pub fn refused_state(
    registration_id: &str,
    refusal: &Refusal,
    previous: &Previous<'_>,
    now: &str,
    etag: &str,
) -> RegistrationState {
    RegistrationState {
        registration_id: registration_id.to_ascii_lowercase(),
        created: previous.created.cloned().unwrap_or_else(|| json!(now)),
        assigned_hub: None,
        device_id: None,
        status: refused_status(refusal),
        substatus: None,
        error_code: Some(ErrorKind::DeviceUnauthorized.code()),
        error_message: Some(refusal_message(refusal)),
        last_updated: now.to_string(),
        x509: refusal_group(refusal).map(|group| X509State {
            enrollment_group_id: Some(group.to_string()),
            ..X509State::default()
        }),
        etag: etag.to_string(),
    }
}

/// The registration status a recorded refusal gets: `failed` when no entry
/// covers the device, else `disabled`.
pub fn refused_status(refusal: &Refusal) -> RegistrationStatus {
    if refusal.code == policy_host::Code::NoEnrollment {
        RegistrationStatus::Failed
    } else {
        RegistrationStatus::Disabled
    }
}

/// The enrollment group a refusal names, if it names one.
pub fn refusal_group(refusal: &Refusal) -> Option<&str> {
    refusal
        .enrollment
        .as_ref()
        .filter(|e| e.kind == EnrollmentKind::Group)
        .map(|e| e.id.as_str())
}

/// DPS `RegistrationOperationStatus` for a registration state.
pub fn operation(operation_id: &str, state: &RegistrationState) -> OperationStatus {
    OperationStatus {
        operation_id: operation_id.to_string(),
        status: state.status,
        registration_state: state.clone(),
    }
}

/// A stored CA certificate, as the management API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaCert {
    /// Resource name.
    pub name: String,
    /// The certificate.
    pub der: Vec<u8>,
    /// Whether proof of possession was given (then it is a trust anchor).
    pub verified: bool,
    /// The pending verification code, if one was generated.
    pub code: Option<String>,
    /// Current etag.
    pub etag: String,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Last update time, RFC 3339.
    pub updated: String,
}

/// DPS `CertificateResponse` of a CA certificate: the full subject DN,
/// and `expiry`, `created`, `updated` as RFC 1123 dates (as DPS writes them).
pub fn certificate_resource(ca: &CaCert) -> Value {
    let details = policy_host::certificate_details(&ca.der).ok();
    let mut properties = json!({
        "subject": details.as_ref().map(|(info, _)| info.subject.clone()),
        "expiry": details.as_ref().map(|(info, _)| rfc1123(info.not_after)),
        "thumbprint": hex::encode_upper(Sha1::digest(&ca.der)),
        "sha256Thumbprint": hex::encode_upper(Sha256::digest(&ca.der)),
        "isVerified": ca.verified,
        "certificate": STANDARD.encode(&ca.der),
        "created": rfc3339_to_rfc1123(&ca.created),
        "updated": rfc3339_to_rfc1123(&ca.updated),
    });
    if let Some(code) = &ca.code {
        properties["verificationCode"] = json!(code);
    }
    json!({
        "name": ca.name,
        "etag": ca.etag,
        "type": "Microsoft.Devices/provisioningServices/Certificates",
        "properties": properties,
    })
}

/// The certificate text of a CA certificate or verification upload:
/// `{"certificate": …}` or `{"properties": {"certificate": …}}`.
pub fn certificate_text(body: &Value) -> Option<&str> {
    body.get("certificate")
        .or_else(|| body.get("properties").and_then(|p| p.get("certificate")))
        .and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_rules() {
        assert!(etag_matches(None, None));
        assert!(etag_matches(Some("*"), Some("\"a\"")));
        assert!(!etag_matches(Some("*"), None));
        assert!(etag_matches(Some("a"), Some("\"a\"")));
        assert!(!etag_matches(Some("\"b\""), Some("\"a\"")));
    }

    #[test]
    fn completing_drops_registration_state_and_keeps_created() {
        let created = json!("2026-01-01T00:00:00Z");
        let doc = complete_enrollment(
            json!({"registrationId": "d", "registrationState": {"status": "assigned"}}),
            Some(&created),
            "2026-02-02T00:00:00Z",
            "\"e\"",
        );
        assert!(doc.get("registrationState").is_none());
        assert_eq!(doc["createdDateTimeUtc"], created);
        assert_eq!(doc["provisioningStatus"], "enabled");
        assert_eq!(doc["etag"], "\"e\"");
    }

    /// The typed record serialises to DPS's field names and shapes (the
    /// `json!` literal it replaced), and reads back.
    #[test]
    fn a_refused_record_has_dps_shape_and_reads_back() {
        let refusal = Refusal::new(policy_host::Code::EnrollmentGroupDisabled, "off")
            .with_enrollment(policy_host::EnrollmentRef {
                kind: EnrollmentKind::Group,
                id: "line-b".into(),
            });
        let state = refused_state(
            "Device-4",
            &refusal,
            &Previous { created: None },
            "2026-12-02T00:00:00Z",
            "\"e\"",
        );
        let doc = state.to_json().unwrap();
        assert_eq!(
            doc,
            json!({
                "registrationId": "device-4",
                "createdDateTimeUtc": "2026-12-02T00:00:00Z",
                "status": "disabled",
                "errorCode": 401002,
                "errorMessage": "attest refused the device: enrollment-group-disabled: off [enrollment group 'line-b']",
                "lastUpdatedDateTimeUtc": "2026-12-02T00:00:00Z",
                "x509": {"enrollmentGroupId": "line-b"},
                "etag": "\"e\"",
            })
        );
        let back = RegistrationState::from_json(&doc).unwrap();
        assert_eq!(back, state);
        assert_eq!(back.current_hub(), None);
        let op = operation("op", &state).to_json().unwrap();
        assert_eq!(op["status"], "disabled");
        assert_eq!(op["registrationState"], doc);
        assert!(RegistrationState::from_json(&json!({"status": "odd"})).is_none());
    }

    #[test]
    fn http_dates() {
        assert_eq!(rfc1123(1_795_860_000), "Sat, 28 Nov 2026 10:00:00 GMT");
        assert_eq!(
            rfc3339_to_rfc1123("2026-11-28T10:00:00Z"),
            "Sat, 28 Nov 2026 10:00:00 GMT"
        );
    }
}
