//! DPS documents attest writes: registration states, operation statuses,
//! certificate information, CA certificate resources, and the
//! server-managed fields of enrollments. Pure: times, etags and IDs are
//! arguments.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
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
) -> Value {
    let x509 = match decision.enrollment.kind {
        EnrollmentKind::Group => json!({
            "enrollmentGroupId": decision.enrollment.id,
            "signingCertificateInfo": signing.and_then(certificate_info),
        }),
        EnrollmentKind::Individual => json!({
            "certificateInfo": certificate_info(leaf)
        }),
    };
    json!({
        "registrationId": decision.registration_id,
        "createdDateTimeUtc": previous.created.cloned().unwrap_or_else(|| json!(now)),
        "assignedHub": assignment.hub,
        "deviceId": decision.device_id,
        "status": "assigned",
        "substatus": assignment.substatus.as_str(),
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

    #[test]
    fn http_dates() {
        assert_eq!(rfc1123(1_795_860_000), "Sat, 28 Nov 2026 10:00:00 GMT");
        assert_eq!(
            rfc3339_to_rfc1123("2026-11-28T10:00:00Z"),
            "Sat, 28 Nov 2026 10:00:00 GMT"
        );
    }
}
