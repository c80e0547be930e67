//! `/certificates`: CA certificates, their verification codes and their
//! proof of possession (the CA becomes a trust anchor).

use serde_json::Value;

use attest_dps::documents::{CaCert, certificate_resource, certificate_text, etag_matches};
use attest_dps::enrollment::one_certificate;
use attest_dps::{DpsError, ErrorKind};

use super::{TxError, bad_request, certificate_not_found, conflict, require_if_match, stale};
use crate::index;
use crate::{Answer, Reply, Service, new_etag, now_rfc3339, now_unix};

impl Service {
    /// `GET /certificates`.
    pub fn list_certificates(&self) -> Answer {
        let cas = self.read("the CA certificates", |tx| Ok(tx.certificates()?))?;
        let list: Vec<Value> = cas.iter().map(certificate_resource).collect();
        Ok(Reply::ok(serde_json::json!({ "value": list })))
    }

    /// `GET /certificates/{name}`.
    pub fn get_certificate(&self, name: &str) -> Answer {
        match self.read("the CA certificate", |tx| Ok(tx.certificate(name)?))? {
            Some(ca) => Ok(Reply::ok(certificate_resource(&ca))),
            None => Err(certificate_not_found(name)),
        }
    }

    /// `PUT /certificates/{name}`: uploads (or replaces) a CA certificate,
    /// unverified unless the body says `isVerified: true` (DPS: created
    /// verified, without proof of possession; logged). Replacing one needs
    /// `If-Match`.
    pub fn put_certificate(&self, name: &str, body: &Value, if_match: Option<&str>) -> Answer {
        attest_dps::ids::check_certificate_name(name).map_err(bad_request)?;
        let text = certificate_text(body).ok_or_else(|| {
            bad_request("body must be {\"certificate\": \"<PEM or base64 DER>\"}")
        })?;
        let verified = match body
            .get("isVerified")
            .or_else(|| body.get("properties").and_then(|p| p.get("isVerified")))
        {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::Bool(true)) => true,
            Some(other) => {
                return Err(bad_request(format!(
                    "isVerified {other} must be true or false"
                )));
            }
        };
        let der = one_certificate(text).map_err(|e| bad_request(format!("certificate: {e}")))?;
        if let Err(r) = policy_host::certificate_keys(&der) {
            return Err(bad_request(format!("certificate is not usable: {r}")));
        }
        let etag = new_etag()?;
        let now = now_rfc3339();
        let mut replaced = None;
        let ca = self.write("the CA certificate", |tx| {
            let existing = tx.certificate(name)?;
            replaced = existing.as_ref().map(|c| c.etag.clone());
            if existing.is_some()
                && let Err(e) = require_if_match(if_match, &format!("replacing certificate '{name}'"))
            {
                return Err(TxError::Refused(e));
            }
            if !etag_matches(if_match, existing.as_ref().map(|c| c.etag.as_str())) {
                return Err(TxError::Refused(stale(&format!("certificate '{name}'"))));
            }
            // Replacing a certificate makes it unverified: a group that names
            // it would silently stop applying.
            let groups = index::referencing_groups(tx, name)?;
            if existing.is_some() && !groups.is_empty() {
                return Err(TxError::Refused(conflict(format!(
                    "CA certificate '{name}' is referenced by enrollment group(s) {} (caReferences); replacing it would unverify it and silently stop those groups from applying. Change or delete the groups first",
                    groups.join(", ")
                ))));
            }
            let ca = CaCert {
                name: name.to_string(),
                der,
                verified,
                code: None,
                etag,
                created: existing.map_or_else(|| now.clone(), |c| c.created),
                updated: now.clone(),
            };
            index::put_certificate(tx, &ca)?;
            Ok(ca)
        })?;
        if verified {
            tracing::warn!(
                "CA certificate '{name}' uploaded as verified (isVerified: true): a trust anchor without proof of possession"
            );
        }
        Ok(Reply::ok(certificate_resource(&ca)).replacing(replaced))
    }

    /// `DELETE /certificates/{name}`.
    pub fn delete_certificate(&self, name: &str, if_match: Option<&str>) -> Answer {
        require_if_match(if_match, &format!("deleting certificate '{name}'"))?;
        self.delete_guarded(
            &format!("certificate '{name}'"),
            certificate_not_found(name),
            if_match,
            |tx| Ok(tx.certificate(name)?.map(|c| c.etag)),
            |tx| {
                let groups = index::referencing_groups(tx, name)?;
                if !groups.is_empty() {
                    return Err(TxError::Refused(conflict(format!(
                        "CA certificate '{name}' is referenced by enrollment group(s) {} (caReferences); deleting it would silently stop those groups from applying. Change or delete the groups first",
                        groups.join(", ")
                    ))));
                }
                Ok(index::delete_certificate(tx, name)?)
            },
        )
    }

    /// `POST /certificates/{name}/generateVerificationCode`.
    pub fn generate_verification_code(&self, name: &str, if_match: Option<&str>) -> Answer {
        require_if_match(if_match, "generateVerificationCode")?;
        let code = hex::encode_upper(crate::random::<16>()?);
        let etag = new_etag()?;
        let now = now_rfc3339();
        let mut replaced = None;
        let ca = self.write("the CA certificate", |tx| {
            let Some(mut ca) = tx.certificate(name)? else {
                return Err(TxError::Refused(certificate_not_found(name)));
            };
            if !etag_matches(if_match, Some(&ca.etag)) {
                return Err(TxError::Refused(stale(&format!("certificate '{name}'"))));
            }
            replaced = Some(ca.etag.clone());
            ca.code = Some(code);
            ca.etag = etag;
            ca.updated = now;
            index::put_certificate(tx, &ca)?;
            Ok(ca)
        })?;
        Ok(Reply::ok(certificate_resource(&ca)).replacing(replaced))
    }

    /// `POST /certificates/{name}/verify`: proof of possession of the CA's
    /// key, judged by the component; the CA becomes a trust anchor.
    pub fn verify_certificate(&self, name: &str, body: &Value, if_match: Option<&str>) -> Answer {
        require_if_match(if_match, "verify")?;
        let ca = self
            .read("the CA certificate", |tx| Ok(tx.certificate(name)?))?
            .ok_or_else(|| certificate_not_found(name))?;
        if !etag_matches(if_match, Some(&ca.etag)) {
            return Err(stale(&format!("certificate '{name}'")));
        }
        let code = ca.code.clone().ok_or_else(|| {
            bad_request("no verification code: POST generateVerificationCode first")
        })?;
        let text = certificate_text(body).ok_or_else(|| {
            bad_request(
                "body must be {\"certificate\": \"<verification certificate, PEM or base64 DER>\"}",
            )
        })?;
        let verification = one_certificate(text)
            .map_err(|e| bad_request(format!("verification certificate: {e}")))?;
        let verdict = self
            .policy
            .verify_ca_possession(&ca.der, &verification, &code, now_unix())
            .map_err(|e| {
                tracing::error!("policy component: {e}");
                DpsError::new(
                    ErrorKind::Internal,
                    format!("the policy component failed: {e}"),
                )
            })?;
        if let Err(r) = verdict {
            return Err(bad_request(format!("proof of possession refused: {r}")));
        }
        let etag = new_etag()?;
        let now = now_rfc3339();
        let updated = self.write("the CA certificate", |tx| match tx.certificate(name)? {
            Some(mut current) if current.etag == ca.etag => {
                current.verified = true;
                current.code = None;
                current.etag = etag;
                current.updated = now;
                index::put_certificate(tx, &current)?;
                Ok(current)
            }
            _ => Err(TxError::Refused(DpsError::new(
                ErrorKind::PreconditionFailed,
                format!("certificate '{name}' changed during verification; retry"),
            ))),
        })?;
        Ok(Reply::ok(certificate_resource(&updated)).replacing(Some(ca.etag)))
    }
}
