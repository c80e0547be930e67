//! The DPS device operations: register, operation status, registration
//! status. Each is one blocking call: the component's verdict on what the
//! device proved in its handshake, then one store transaction.
//!
//! Registration is decided at once, so `register` answers 200 with the
//! final `RegistrationOperationStatus` (DPS clients accept 200 as well as
//! 202-then-poll); the operation stays queryable by its ID.

use serde_json::Value;
use sha2::{Digest, Sha256};

use attest_dps::documents::{self, Previous, refusal_group, refusal_message};
use attest_dps::{DpsError, ErrorKind};
use policy_host::{
    AttestRequest, Decision, EnrollmentKind, HostError, Proof, Purpose, Refusal, Stage,
};

use crate::index::{Found, Lookups};
use crate::store::{Operation, Transaction};
use crate::{
    Answer, Reply, Service, internal, new_etag, now_rfc3339, now_unix, random_id, unavailable,
};

/// What a device proved in its TLS handshake (captured by the transport).
#[derive(Clone, Debug, Default)]
pub struct DeviceEvidence {
    /// Leaf DER and intermediates DER, as sent.
    pub chain: Option<(Vec<u8>, Vec<Vec<u8>>)>,
    /// TLS signature scheme, the exact signed content, and the
    /// CertificateVerify signature.
    pub signature: Option<(u16, Vec<u8>, Vec<u8>)>,
}

/// The component's verdict on a device, with the leaf it judged and what
/// its lookups found.
struct Verdict {
    found: Found,
    outcome: Result<Decision, Refusal>,
    leaf: Vec<u8>,
    leaf_sha256: [u8; 32],
}

/// The 401 a refused device gets: attest's one-line refusal in `message`.
fn refused(r: &Refusal) -> DpsError {
    DpsError::new(ErrorKind::DeviceUnauthorized, refusal_message(r))
}

impl Service {
    /// Checks the ID scope and registration ID a device request names.
    pub fn check_device_request(
        &self,
        id_scope: &str,
        registration_id: &str,
    ) -> Result<(), DpsError> {
        if !id_scope.eq_ignore_ascii_case(&self.id_scope) {
            return Err(DpsError::new(
                ErrorKind::DeviceNotFound,
                format!("unknown ID scope '{id_scope}'"),
            ));
        }
        policy_host::check_registration_id(registration_id)
            .map_err(|r| DpsError::new(ErrorKind::InvalidRegistrationId, r.message))
    }

    /// Runs the component's `attest` on the device's evidence.
    fn attest(
        &self,
        evidence: &DeviceEvidence,
        registration_id: &str,
    ) -> Result<Verdict, DpsError> {
        let Some((leaf, intermediates)) = &evidence.chain else {
            return Err(DpsError::new(
                ErrorKind::DeviceUnauthorized,
                "no client certificate: X.509 attestation needs the device certificate (and its intermediates) as the TLS client certificate",
            ));
        };
        let Some((scheme, message, signature)) = &evidence.signature else {
            return Err(DpsError::new(
                ErrorKind::DeviceUnauthorized,
                "the TLS handshake carried no CertificateVerify signature (resumed session?)",
            ));
        };
        let proof = Proof::TlsSignature {
            scheme: *scheme,
            message: message.clone(),
            signature: signature.clone(),
        };
        let request = AttestRequest {
            registration_id: registration_id.to_string(),
            leaf: leaf.clone(),
            intermediates: intermediates.clone(),
            time: now_unix(),
            purpose: Purpose::ClientAuth,
        };
        let lookups =
            Lookups::open(&*self.store).map_err(|e| unavailable("the store cannot be read", &e))?;
        let outcome = self.policy.attest(&request, &proof, lookups.clone());
        // A store failure during the lookups voids the decision, whatever
        // it was (the failed lookup answered as a refusal would).
        let found = lookups
            .finish()
            .map_err(|e| unavailable("the store failed during the decision", &e))?;
        match outcome {
            Ok(outcome) => Ok(Verdict {
                found,
                outcome,
                leaf_sha256: Sha256::digest(leaf).into(),
                leaf: leaf.clone(),
            }),
            Err(HostError::Busy(n)) => Err(DpsError::new(
                ErrorKind::Unavailable,
                format!("all {n} policy sandboxes are busy; retry shortly"),
            )),
            Err(e) => {
                tracing::error!("policy component: {e}");
                Err(DpsError::new(
                    ErrorKind::Internal,
                    format!("the policy component failed: {e}"),
                ))
            }
        }
    }

    /// [`Service::attest`], with a refusal that does not come from a
    /// trusted chain already answered (401): what the read-only device
    /// operations need. See [`Stage`]: any other refusal could come from
    /// anyone who holds a key and a certificate with someone else's
    /// registration ID as its CN, and must not create, overwrite or reveal
    /// that device's record.
    fn trusted_verdict(
        &self,
        evidence: &DeviceEvidence,
        registration_id: &str,
    ) -> Result<Verdict, DpsError> {
        let verdict = self.attest(evidence, registration_id)?;
        if let Err(r) = &verdict.outcome
            && r.code.stage() != Stage::Trusted
        {
            return Err(refused(r));
        }
        Ok(verdict)
    }

    /// `PUT /{idScope}/registrations/{registrationId}/register`: decides
    /// and records the registration. `body` is the request body as sent.
    pub fn register(
        &self,
        evidence: &DeviceEvidence,
        registration_id: &str,
        body: &[u8],
    ) -> Answer {
        let body = attest_dps::query::json_body(body)?;
        if !body.is_object() {
            return Err(DpsError::new(
                ErrorKind::MalformedBody,
                "request body must be a JSON object",
            ));
        }
        match body.get("registrationId") {
            None => {}
            Some(Value::String(s)) if s.eq_ignore_ascii_case(registration_id) => {}
            Some(other) => {
                return Err(DpsError::new(
                    ErrorKind::InvalidRegistrationId,
                    format!(
                        "body registrationId {other} differs from the URL's '{registration_id}'"
                    ),
                ));
            }
        }
        let verdict = self.attest(evidence, registration_id)?;
        if let Err(r) = &verdict.outcome
            && r.code.stage() != Stage::Trusted
        {
            tracing::info!(registration_id, "refused without a record: {r}");
            return Err(refused(r));
        }
        let operation_id = random_id()?;
        let etag = new_etag()?;
        let recorded = self
            .store
            .write_with(|tx| self.record(tx, registration_id, &verdict, &operation_id, &etag));
        match recorded {
            Ok(Ok(operation)) => match &verdict.outcome {
                // A failed registration is recorded, then answered 401.
                Err(r) if r.code == policy_host::Code::NoEnrollment => Err(refused(r)),
                _ => Ok(Reply::ok(operation)),
            },
            Ok(Err(r)) => {
                tracing::info!(
                    registration_id,
                    "refused; the record belongs to another certificate and stays as it is: {r}"
                );
                Err(refused(&r))
            }
            Err(e) => {
                tracing::error!("recording registration '{registration_id}': {e:#}");
                Err(DpsError::new(
                    ErrorKind::Unavailable,
                    "the registration could not be recorded; nothing was acknowledged; retry shortly",
                ))
            }
        }
    }

    /// Writes the registration record and the operation in one transaction,
    /// committed before the caller answers. Returns the operation, or the
    /// refusal when the record belongs to another certificate.
    ///
    /// A record belongs to the certificate that wrote it. An admission
    /// writes (the enrollments say this certificate *is* this device); a
    /// refusal writes only a record that does not exist yet or that belongs
    /// to the same certificate, so that whoever holds a refused chain (a
    /// disabled CA's key, say) cannot overwrite another device's record.
    fn record(
        &self,
        tx: &dyn Transaction,
        registration_id: &str,
        verdict: &Verdict,
        operation_id: &str,
        etag: &str,
    ) -> anyhow::Result<Result<Value, Refusal>> {
        let registration_id = &registration_id.to_ascii_lowercase();
        let existing = tx.registration(registration_id)?;
        if let (Err(r), Some(e)) = (&verdict.outcome, &existing)
            && !e.owned_by(&verdict.leaf_sha256)
        {
            return Ok(Err(r.clone()));
        }
        let previous_doc = existing.as_ref().map(|e| &e.doc.doc);
        let previous = Previous {
            created: previous_doc.and_then(|d| d.get("createdDateTimeUtc")),
        };
        let now = now_rfc3339();
        let (state, group_id) = match &verdict.outcome {
            Ok(decision) => {
                let found = &verdict.found;
                let allocation = found
                    .allocation(decision.enrollment.kind, &decision.enrollment.id)
                    .cloned()
                    .unwrap_or_default();
                // The hub of the device's current assignment: a record
                // that says "assigned" (a refused one has none).
                let current_hub = previous_doc
                    .filter(|d| d.get("status").and_then(Value::as_str) == Some("assigned"))
                    .and_then(|d| d.get("assignedHub"))
                    .and_then(Value::as_str);
                let assignment = allocation.assign(
                    registration_id,
                    current_hub,
                    &self.config.default_iot_hub_host_name,
                );
                let signing = match decision.enrollment.kind {
                    EnrollmentKind::Group => found.group_certificate(&decision.enrollment.id),
                    EnrollmentKind::Individual => None,
                };
                let state = documents::assigned_state(
                    decision,
                    &verdict.leaf,
                    signing,
                    &assignment,
                    &previous,
                    &now,
                    etag,
                );
                let group = (decision.enrollment.kind == EnrollmentKind::Group)
                    .then(|| decision.enrollment.id.clone());
                (state, group)
            }
            Err(r) => (
                documents::refused_state(registration_id, r, &previous, &now, etag),
                refusal_group(r).map(str::to_string),
            ),
        };
        tx.put_registration(
            registration_id,
            group_id.as_deref(),
            &state,
            etag,
            &verdict.leaf_sha256,
        )?;
        let operation = documents::operation(operation_id, &state);
        tx.put_operation(
            operation_id,
            &Operation {
                registration_id: registration_id.clone(),
                leaf_sha256: verdict.leaf_sha256.to_vec(),
                doc: operation.clone(),
            },
            now_unix(),
        )?;
        Ok(Ok(operation))
    }

    /// `GET /{idScope}/registrations/{registrationId}/operations/{operationId}`.
    pub fn operation_status(
        &self,
        evidence: &DeviceEvidence,
        registration_id: &str,
        operation_id: &str,
    ) -> Answer {
        // Proof of possession first, through the component, as on every
        // device operation: the public certificate alone reads nothing.
        let verdict = self.trusted_verdict(evidence, registration_id)?;
        let found = self
            .store
            .read_with(|tx| tx.operation(operation_id, now_unix()))
            .map_err(|e| internal("the operation could not be read", &e))?;
        match found {
            Some(op)
                if op.registration_id == registration_id.to_ascii_lowercase()
                    && op.leaf_sha256 == verdict.leaf_sha256 =>
            {
                Ok(Reply::ok(op.doc))
            }
            Some(_) => Err(DpsError::new(
                ErrorKind::DeviceUnauthorized,
                "this operation belongs to another device certificate",
            )),
            None => Err(DpsError::new(
                ErrorKind::DeviceNotFound,
                format!(
                    "no operation '{operation_id}' (operations expire an hour after registration)"
                ),
            )),
        }
    }

    /// `POST /{idScope}/registrations/{registrationId}`: the device's
    /// registration record.
    pub fn registration_status(&self, evidence: &DeviceEvidence, registration_id: &str) -> Answer {
        let verdict = self.trusted_verdict(evidence, registration_id)?;
        let record = self
            .store
            .read_with(|tx| tx.registration(registration_id))
            .map_err(|e| internal("the registration record could not be read", &e))?;
        match record {
            // An admitted device may read its record; a refused one only a
            // record its own certificate wrote.
            Some(record) => match &verdict.outcome {
                Err(r) if !record.owned_by(&verdict.leaf_sha256) => Err(refused(r)),
                _ => Ok(Reply::ok(record.doc.doc)),
            },
            None => Err(DpsError::new(
                ErrorKind::RegistrationNotFound,
                format!("no registration record for '{registration_id}'"),
            )),
        }
    }
}
