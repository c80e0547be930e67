//! DPS documents attest writes: registration states, operation statuses,
//! certificate information, CA certificate resources, and the
//! server-managed fields of enrollments. Pure: times, etags and IDs are
//! arguments.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use policy_host::{Decision, EnrollmentKind, Refusal};

use crate::ErrorKind;

/// The JSON field that names an entry of `kind`.
pub fn id_field(kind: EnrollmentKind) -> &'static str {
    match kind {
        EnrollmentKind::Individual => "registrationId",
        EnrollmentKind::Group => "enrollmentGroupId",
    }
}

/// The stored key of an entry: registration IDs are case-insensitive
/// (DPS lower-cases them), group IDs are kept as written.
pub fn key_of(kind: EnrollmentKind, id: &str) -> String {
    match kind {
        EnrollmentKind::Individual => id.to_ascii_lowercase(),
        EnrollmentKind::Group => id.to_string(),
    }
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
    if doc.get("provisioningStatus").is_none() {
        doc["provisioningStatus"] = json!("enabled");
    }
    doc["createdDateTimeUtc"] = created.cloned().unwrap_or_else(|| json!(now));
    doc["lastUpdatedDateTimeUtc"] = json!(now);
    doc["etag"] = json!(etag);
    doc
}

/// DPS `X509CertificateInfo` of a certificate on a decided path.
pub fn certificate_info(der: &[u8], decision: &Decision) -> Value {
    let info = decision.path.first();
    json!({
        "subjectName": info.map(|c| c.subject.clone()),
        "sha1Thumbprint": hex::encode_upper(Sha1::digest(der)),
        "sha256Thumbprint": hex::encode_upper(Sha256::digest(der)),
        "issuerName": info.map(|c| c.issuer.clone()),
        "notBeforeUtc": info.map(|c| rfc3339(c.not_before)),
        "notAfterUtc": info.map(|c| rfc3339(c.not_after)),
        "serialNumber": info.map(|c| c.serial.clone()),
        "version": 3,
    })
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

/// DPS `DeviceRegistrationState` of an admitted device.
pub fn assigned_state(
    decision: &Decision,
    leaf: &[u8],
    hub: &str,
    previous: &Previous<'_>,
    now: &str,
    etag: &str,
) -> Value {
    let x509 = match decision.enrollment.kind {
        EnrollmentKind::Group => json!({"enrollmentGroupId": decision.enrollment.id}),
        EnrollmentKind::Individual => json!({
            "certificateInfo": certificate_info(leaf, decision)
        }),
    };
    json!({
        "registrationId": decision.registration_id,
        "createdDateTimeUtc": previous.created.cloned().unwrap_or_else(|| json!(now)),
        "assignedHub": hub,
        "deviceId": decision.device_id,
        "status": "assigned",
        "substatus": "initialAssignment",
        "lastUpdatedDateTimeUtc": now,
        "x509": x509,
        "etag": etag,
    })
}

/// DPS `DeviceRegistrationState` of a refused device whose refusal is
/// recorded (`disabled`: an entry is disabled; `failed`: no entry).
pub fn refused_state(
    registration_id: &str,
    refusal: &Refusal,
    previous: &Previous<'_>,
    now: &str,
    etag: &str,
) -> Value {
    let status = refused_status(refusal);
    let mut state = json!({
        "registrationId": registration_id.to_ascii_lowercase(),
        "createdDateTimeUtc": previous.created.cloned().unwrap_or_else(|| json!(now)),
        "status": status,
        "errorCode": ErrorKind::DeviceUnauthorized.code(),
        "errorMessage": refusal_message(refusal),
        "lastUpdatedDateTimeUtc": now,
        "etag": etag,
    });
    if let Some(group) = refusal_group(refusal) {
        state["x509"] = json!({ "enrollmentGroupId": group });
    }
    state
}

/// The registration status a recorded refusal gets: `failed` when no entry
/// covers the device, else `disabled`.
pub fn refused_status(refusal: &Refusal) -> &'static str {
    if refusal.code == policy_host::Code::NoEnrollment {
        "failed"
    } else {
        "disabled"
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
pub fn operation(operation_id: &str, state: &Value) -> Value {
    json!({
        "operationId": operation_id,
        "status": state.get("status").cloned().unwrap_or(Value::Null),
        "registrationState": state,
    })
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
}

/// DPS `CertificateResponse` of a CA certificate.
pub fn certificate_resource(ca: &CaCert) -> Value {
    let subject = policy_host::certificate_common_name(&ca.der).ok().flatten();
    let mut properties = json!({
        "subject": subject,
        "thumbprint": hex::encode_upper(Sha1::digest(&ca.der)),
        "sha256Thumbprint": hex::encode_upper(Sha256::digest(&ca.der)),
        "isVerified": ca.verified,
        "certificate": STANDARD.encode(&ca.der),
        "created": ca.created,
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
}
