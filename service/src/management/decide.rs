//! `POST /attest/decide`: the decision the service would make now on a
//! chain an operator pastes (the console's "would this device get in?"),
//! from the enrollments it holds: chain validation and enrollment
//! resolution, without proof of possession (no key is pasted), recording
//! nothing. As `host-cli verify --enrollments` decides.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

use policy_host::{AttestRequest, EnrollmentKind, Purpose};

use super::bad_request;
use crate::{Answer, Reply, Service, now_unix};

/// Most certificates a pasted chain may hold.
const MAX_CHAIN: usize = 16;

impl Service {
    /// `POST /attest/decide`: `{"certificates": PEM, "registrationId"?}`.
    pub fn decide_chain(&self, body: &Value) -> Answer {
        let text = body
            .get("certificates")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                bad_request(
                    "body must be {\"certificates\": \"<PEM chain: the device's certificate first>\"}",
                )
            })?;
        let mut chain = Vec::new();
        for cert in CertificateDer::pem_slice_iter(text.as_bytes()) {
            let cert =
                cert.map_err(|e| bad_request(format!("certificates: not valid PEM: {e}")))?;
            chain.push(cert.to_vec());
            if chain.len() > MAX_CHAIN {
                return Err(bad_request(format!(
                    "certificates: more than {MAX_CHAIN} certificates"
                )));
            }
        }
        if chain.is_empty() {
            return Err(bad_request(
                "certificates: no PEM certificate (-----BEGIN CERTIFICATE-----) found",
            ));
        }
        let leaf = chain.remove(0);
        let registration_id = match body.get("registrationId") {
            None | Some(Value::Null) => policy_host::certificate_common_name(&leaf)
                .map_err(|r| bad_request(format!("the device certificate is unusable: {r}")))?
                .ok_or_else(|| {
                    bad_request("the device certificate has no subject CN: give registrationId")
                })?,
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(bad_request(format!(
                    "registrationId {other} must be a string"
                )));
            }
        };
        let request = AttestRequest {
            registration_id: registration_id.clone(),
            leaf,
            intermediates: chain,
            time: now_unix(),
            purpose: Purpose::ClientAuth,
        };
        let decided = self.decision(&request, None)?;
        Ok(Reply::ok(decision_json(&registration_id, &decided)))
    }
}

fn kind(k: EnrollmentKind) -> &'static str {
    match k {
        EnrollmentKind::Individual => "individual",
        EnrollmentKind::Group => "group",
    }
}

fn decision_json(
    registration_id: &str,
    decided: &Result<policy_host::Decision, policy_host::Refusal>,
) -> Value {
    match decided {
        Ok(d) => json!({
            "verdict": "admitted",
            "registrationId": registration_id,
            "code": null,
            "message": null,
            "position": null,
            "entry": {"kind": kind(d.enrollment.kind), "id": d.enrollment.id},
            "deviceId": d.device_id,
            "path": d.path.iter().map(|c| json!({
                "subject": c.subject,
                "sha256": hex::encode(c.sha256),
            })).collect::<Vec<_>>(),
        }),
        Err(r) => json!({
            "verdict": "refused",
            "registrationId": registration_id,
            "code": r.code.as_str(),
            "message": r.to_string(),
            "position": r.certificate.as_ref().map(|c| c.position),
            "entry": r.enrollment.as_ref().map(|e| json!({"kind": kind(e.kind), "id": e.id})),
            "deviceId": null,
            "path": [],
        }),
    }
}
