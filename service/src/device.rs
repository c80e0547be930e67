//! The DPS device operations: register, operation status, registration
//! status. Each is one blocking call: the component's verdict on what the
//! device proved in its handshake, then one store transaction.
//!
//! Registration is decided at once, so `register` answers 200 with the
//! final `RegistrationOperationStatus` (DPS clients accept 200 as well as
//! 202-then-poll); the operation stays queryable by its ID.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;
use sha2::{Digest, Sha256};

use attest_dps::documents::{self, Previous, RegistrationState, refusal_group, refusal_message};
use attest_dps::{DpsError, ErrorKind};
use policy_host::{
    AttestRequest, Decision, EnrollmentKind, HostError, Policy, Proof, Purpose, Refusal, Stage,
};

use crate::events::{DecisionEvent, Transport, Verdict as Seen};
use crate::index::{Found, Lookups};
use crate::store::{Operation, Store, Transaction};
use crate::{
    Answer, Reply, Service, internal, new_etag, now_rfc3339, now_unix, random_id, unavailable,
};

/// What a device proved in its TLS handshake (captured by the transport),
/// where it came from, and the refusals already decided for it: one per
/// connection, shared by every request on it.
#[derive(Clone, Debug, Default)]
pub struct DeviceEvidence {
    /// The certificates the device sent.
    pub chain: Option<Chain>,
    /// Its proof of possession: the handshake's CertificateVerify
    /// ([`Proof::TlsSignature`]: scheme, the exact signed content, the
    /// signature), judged by the component.
    pub proof: Option<Proof>,
    /// The peer's address: refused decisions are rate-limited per address
    /// (`None`: not limited, for callers that are not a network peer).
    pub peer: Option<IpAddr>,
    /// The transport the evidence came over (for metrics and the audit
    /// trail; it decides nothing).
    pub transport: Transport,
    /// Refusals decided on this evidence, by registration ID.
    pub decided: Decided,
}

/// A device's certificate chain as sent: the leaf and the intermediates
/// that came with it (DER, in the order sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// The device (leaf) certificate.
    pub leaf: Vec<u8>,
    /// The certificates sent after it.
    pub intermediates: Vec<Vec<u8>>,
}

/// Most registration IDs whose refusal one connection remembers.
const DECIDED_PER_CONNECTION: usize = 16;

/// The refusals decided on one connection's evidence, by lower-case
/// registration ID. The evidence does not change for the connection's
/// life, so a refused chain is decided once and the refusal reused: a
/// handshake buys one decision per registration ID, not one per request.
/// Admissions are decided again on every request, so that an entry
/// disabled while the connection is open refuses its next request.
#[derive(Clone, Default)]
pub struct Decided(Arc<Mutex<HashMap<String, Arc<Verdict>>>>);

impl std::fmt::Debug for Decided {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decided").finish_non_exhaustive()
    }
}

impl Decided {
    fn get(&self, registration_id: &str) -> Option<Arc<Verdict>> {
        let memo = self.0.lock().unwrap_or_else(|p| p.into_inner());
        memo.get(&registration_id.to_ascii_lowercase()).cloned()
    }

    fn keep(&self, registration_id: &str, verdict: &Arc<Verdict>) {
        let mut memo = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if memo.len() < DECIDED_PER_CONNECTION {
            memo.insert(registration_id.to_ascii_lowercase(), Arc::clone(verdict));
        }
    }
}

/// The component's verdict on a device, with the leaf it judged and what
/// its lookups found.
pub(crate) struct Verdict {
    pub(crate) found: Found,
    pub(crate) outcome: Result<Decision, Refusal>,
    pub(crate) leaf: Vec<u8>,
    pub(crate) leaf_sha256: [u8; 32],
}

/// The entry whose refusals a refusal's record counts against: the
/// deciding enrollment, or (no enrollment) the verified CAs as one.
fn refusal_entry(r: &Refusal) -> String {
    match &r.enrollment {
        Some(e) => format!("{:?}:{}", e.kind, e.id),
        None => "no-enrollment".into(),
    }
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

    /// The component's verdict on the device's evidence: a refusal already
    /// decided on this connection is reused; otherwise the component
    /// decides, unless the peer address has spent its refused-decision
    /// time (then 503 with `retry-after`, and nothing runs).
    fn attest(
        &self,
        evidence: &DeviceEvidence,
        registration_id: &str,
    ) -> Result<Arc<Verdict>, DpsError> {
        if let Some(verdict) = evidence.decided.get(registration_id) {
            return Ok(verdict);
        }
        if let Some(peer) = evidence.peer
            && let Some(wait) = self.refused_time.wait(peer, Instant::now())
        {
            tracing::info!(%peer, "refused decisions from this address are over their budget; not deciding");
            return Err(DpsError::new(
                ErrorKind::Unavailable,
                "too many refused registration attempts from this address; retry later",
            )
            .retry_after_seconds(u32::try_from(wait.as_secs()).unwrap_or(u32::MAX)));
        }
        let started = Instant::now();
        let verdict = Arc::new(self.decide(evidence, registration_id)?);
        if verdict.outcome.is_err() {
            if let Some(peer) = evidence.peer {
                self.refused_time
                    .charge(peer, started.elapsed(), Instant::now());
            }
            evidence.decided.keep(registration_id, &verdict);
        }
        Ok(verdict)
    }

    /// Runs the component's `attest` on the device's evidence.
    fn decide(
        &self,
        evidence: &DeviceEvidence,
        registration_id: &str,
    ) -> Result<Verdict, DpsError> {
        let Some(Chain {
            leaf,
            intermediates,
        }) = &evidence.chain
        else {
            return Err(DpsError::new(
                ErrorKind::DeviceUnauthorized,
                "no client certificate: X.509 attestation needs the device certificate (and its intermediates) as the TLS client certificate",
            ));
        };
        let Some(proof) = &evidence.proof else {
            return Err(DpsError::new(
                ErrorKind::DeviceUnauthorized,
                "the TLS handshake carried no CertificateVerify signature (resumed session?)",
            ));
        };
        let request = AttestRequest {
            registration_id: registration_id.to_string(),
            leaf: leaf.clone(),
            intermediates: intermediates.clone(),
            time: now_unix(),
            purpose: Purpose::ClientAuth,
        };
        let (found, outcome) = decide_with(&self.policy, &*self.store, &request, Some(proof))?;
        Ok(Verdict {
            outcome,
            found,
            leaf_sha256: Sha256::digest(leaf).into(),
            leaf: leaf.clone(),
        })
    }

    /// The decision the service makes on `request` from the enrollments it
    /// holds now, recording nothing: with a proof, full attestation (as a
    /// registration decides); without, enrollment resolution. For tools
    /// that ask "what would the service decide on this chain?", and for
    /// comparing an edge replica's decisions with the service's.
    pub fn decision(
        &self,
        request: &AttestRequest,
        proof: Option<&Proof>,
    ) -> Result<Result<Decision, Refusal>, DpsError> {
        decide_with(&self.policy, &*self.store, request, proof).map(|(_, outcome)| outcome)
    }

    /// [`Service::attest`], with any refusal already answered (401): what
    /// the read-only device operations need. See [`Stage`]: a refusal that
    /// does not come from a trusted chain could come from anyone who holds
    /// a key and a certificate with someone else's registration ID as its
    /// CN, and must not create, overwrite or reveal that device's record.
    ///
    /// The read routes go further: a refused caller, trusted or not, is
    /// answered its own refusal (401) whatever is stored, so that its
    /// answer never says whether a record or an operation exists.
    fn admitted_verdict(
        &self,
        evidence: &DeviceEvidence,
        registration_id: &str,
    ) -> Result<Arc<Verdict>, DpsError> {
        let verdict = self.attest(evidence, registration_id)?;
        if let Err(r) = &verdict.outcome {
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
        let started = Instant::now();
        let verdict = match self.attest(evidence, registration_id) {
            Ok(v) => v,
            Err(e) => {
                let leaf = evidence
                    .chain
                    .as_ref()
                    .map(|c| Sha256::digest(&c.leaf).into());
                let seen = Seen::NotDecided {
                    code: e.kind.code(),
                };
                self.report(evidence, registration_id, leaf.as_ref(), seen, &[], started)?;
                return Err(e);
            }
        };
        let seen = match &verdict.outcome {
            Ok(d) => Seen::Admitted(d),
            Err(r) => Seen::Refused(r),
        };
        if let Err(r) = &verdict.outcome
            && r.code.stage() != Stage::Trusted
        {
            tracing::info!(registration_id, "refused without a record: {r}");
            self.report(
                evidence,
                registration_id,
                Some(&verdict.leaf_sha256),
                seen,
                &verdict.found.warnings,
                started,
            )?;
            return Err(refused(r));
        }
        let operation_id = random_id()?;
        let etag = new_etag()?;
        let recorded = self.store.write_with(|tx| {
            self.record(tx, registration_id, &verdict, &operation_id, &etag, None)
        });
        match recorded {
            Ok(operation) => {
                self.report(
                    evidence,
                    registration_id,
                    Some(&verdict.leaf_sha256),
                    seen,
                    &verdict.found.warnings,
                    started,
                )?;
                match &verdict.outcome {
                    // A failed registration is answered 401 (recorded or not).
                    Err(r) if r.code == policy_host::Code::NoEnrollment => Err(refused(r)),
                    _ => Ok(Reply::ok(operation)),
                }
            }
            Err(e) => {
                crate::stats::store_error();
                tracing::error!("recording registration '{registration_id}': {e:#}");
                let e = DpsError::new(
                    ErrorKind::Unavailable,
                    "the registration could not be recorded; nothing was acknowledged; retry shortly",
                );
                let seen = Seen::NotDecided {
                    code: e.kind.code(),
                };
                self.report(
                    evidence,
                    registration_id,
                    Some(&verdict.leaf_sha256),
                    seen,
                    &verdict.found.warnings,
                    started,
                )?;
                Err(e)
            }
        }
    }

    /// Tells the observer (metrics) and writes the audit trail's line for
    /// one registration request, before it is answered: a line that cannot
    /// be written turns the answer into a 503.
    fn report(
        &self,
        evidence: &DeviceEvidence,
        registration_id: &str,
        leaf_sha256: Option<&[u8; 32]>,
        verdict: Seen<'_>,
        warnings: &[Refusal],
        started: Instant,
    ) -> Result<(), DpsError> {
        self.report_decision(&DecisionEvent {
            transport: evidence.transport,
            registration_id,
            leaf_sha256,
            peer: evidence.peer,
            verdict,
            warnings,
            elapsed: started.elapsed(),
        })
    }

    /// Tells the observer and writes the audit line of one decision.
    pub(crate) fn report_decision(&self, event: &DecisionEvent<'_>) -> Result<(), DpsError> {
        let event = *event;
        if let Some(observer) = &self.observer {
            observer.decision(&event);
        }
        match &self.audit {
            Some(trail) => trail.decision(&event).map_err(crate::unaudited),
            None => Ok(()),
        }
    }

    /// Writes what a decision may write, in one transaction committed
    /// before the caller answers, and returns the operation to answer.
    ///
    /// An admission writes the record and the operation (the enrollments
    /// say this certificate *is* this device). A trusted refusal writes
    /// only its own record: one that does not exist yet (at most
    /// [`crate::budget::REFUSAL_RECORDS_PER_WINDOW`] new ones per deciding
    /// entry and window) or that the same certificate wrote; never
    /// another certificate's record, and no operation (a refused caller
    /// reads nothing back). The answer is the same whether or not anything
    /// was written, so that the holder of a refused chain (a disabled CA's
    /// key, say) learns nothing about whether the registration ID exists.
    ///
    /// `edge` marks a record written for a decision made at an edge
    /// gateway (see `crate::edge`): it is kept in the record as
    /// `attestEdge`.
    pub(crate) fn record(
        &self,
        tx: &dyn Transaction,
        registration_id: &str,
        verdict: &Verdict,
        operation_id: &str,
        etag: &str,
        edge: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let marked = |state: &RegistrationState| -> anyhow::Result<Value> {
            let mut doc = state.to_json()?;
            if let (Some(edge), Some(obj)) = (edge, doc.as_object_mut()) {
                obj.insert("attestEdge".into(), edge.clone());
            }
            Ok(doc)
        };
        let registration_id = &registration_id.to_ascii_lowercase();
        let existing = tx.registration(registration_id)?;
        let now = now_rfc3339();
        let decision = match &verdict.outcome {
            Ok(decision) => decision,
            Err(r) => {
                let own = existing
                    .as_ref()
                    .filter(|e| e.owned_by(&verdict.leaf_sha256));
                let previous = Previous {
                    created: own.and_then(|e| e.doc.doc.get("createdDateTimeUtc")),
                };
                let state = documents::refused_state(registration_id, r, &previous, &now, etag);
                let write = match &existing {
                    Some(_) => own.is_some(),
                    None => self.refusal_records.take(&refusal_entry(r), Instant::now()),
                };
                if write {
                    tx.put_registration(
                        registration_id,
                        refusal_group(r),
                        &marked(&state)?,
                        etag,
                        &verdict.leaf_sha256,
                    )?;
                } else {
                    tracing::info!(
                        registration_id,
                        "refused and not recorded ({}): {r}",
                        if existing.is_some() {
                            "the record belongs to another certificate and stays as it is"
                        } else {
                            "this entry's refusals have created their share of records"
                        }
                    );
                }
                return Ok(documents::operation(operation_id, &state).to_json()?);
            }
        };
        let previous_doc = existing.as_ref().map(|e| &e.doc.doc);
        let previous = Previous {
            created: previous_doc.and_then(|d| d.get("createdDateTimeUtc")),
        };
        let found = &verdict.found;
        let allocation = found
            .allocation(decision.enrollment.kind, &decision.enrollment.id)
            .cloned()
            .unwrap_or_default();
        // The hub of the device's current assignment: a record that says
        // "assigned" (a refused one has none).
        let previous_state = previous_doc.and_then(RegistrationState::from_json);
        let current_hub = previous_state
            .as_ref()
            .and_then(RegistrationState::current_hub);
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
        let group_id = (decision.enrollment.kind == EnrollmentKind::Group)
            .then_some(decision.enrollment.id.as_str());
        tx.put_registration(
            registration_id,
            group_id,
            &marked(&state)?,
            etag,
            &verdict.leaf_sha256,
        )?;
        let operation = documents::operation(operation_id, &state).to_json()?;
        tx.put_operation(
            operation_id,
            &Operation {
                registration_id: registration_id.clone(),
                leaf_sha256: verdict.leaf_sha256.to_vec(),
                doc: operation.clone(),
            },
            now_unix(),
        )?;
        Ok(operation)
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
        let verdict = self.admitted_verdict(evidence, registration_id)?;
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
        self.admitted_verdict(evidence, registration_id)?;
        let record = self
            .store
            .read_with(|tx| tx.registration(registration_id))
            .map_err(|e| internal("the registration record could not be read", &e))?;
        match record {
            Some(record) => Ok(Reply::ok(record.doc.doc)),
            None => Err(DpsError::new(
                ErrorKind::RegistrationNotFound,
                format!("no registration record for '{registration_id}'"),
            )),
        }
    }
}

/// The component's decision on `request` from the enrollments `store`
/// holds, with what its lookups found: with a proof, full attestation (as
/// a registration decides); without, enrollment resolution alone (as
/// `host-cli verify` decides without `--challenge`). A service and an edge
/// replica decide through this one function, so a gateway decides exactly
/// as the service would have at the version it holds.
pub(crate) fn decide_with(
    policy: &Policy,
    store: &dyn Store,
    request: &AttestRequest,
    proof: Option<&Proof>,
) -> Result<(Found, Result<Decision, Refusal>), DpsError> {
    let lookups = Lookups::open(store).map_err(|e| unavailable("the store cannot be read", &e))?;
    // The decision's CRLs come from the same snapshot as its enrollments.
    let outcome = match proof {
        Some(proof) => policy.attest_checked(request, proof, lookups.clone(), lookups.clone()),
        None => policy.resolve_checked(request, lookups.clone(), lookups.clone()),
    };
    crate::stats::component_call(&outcome);
    // A store failure during the lookups voids the decision, whatever
    // it was (the failed lookup answered as a refusal would).
    let mut found = lookups
        .finish()
        .map_err(|e| unavailable("the store failed during the decision", &e))?;
    match outcome {
        Ok(outcome) => {
            let outcome = match outcome {
                Ok(attested) => {
                    found.warnings = attested.warnings;
                    Ok(attested.decision)
                }
                Err(r) => Err(found.explain(r)),
            };
            Ok((found, outcome))
        }
        Err(HostError::Busy(n)) => Err(DpsError::new(
            ErrorKind::Unavailable,
            format!("all {n} policy sandboxes are busy; retry shortly"),
        )),
        // Nothing was decided: the device may retry (a deadline is
        // wall-clock time, which a busy machine can run out of).
        Err(e @ HostError::Timeout(_)) => {
            tracing::warn!("policy component: {e}");
            Err(DpsError::new(
                ErrorKind::Unavailable,
                format!("the decision did not finish in time ({e}); retry shortly"),
            ))
        }
        Err(e) => {
            tracing::error!("policy component: {e}");
            Err(DpsError::new(
                ErrorKind::Internal,
                format!("the policy component failed: {e}"),
            ))
        }
    }
}
