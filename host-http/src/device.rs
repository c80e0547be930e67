//! The DPS device API over mutual TLS.
//!
//! - `PUT /{idScope}/registrations/{registrationId}/register`
//! - `GET /{idScope}/registrations/{registrationId}/operations/{operationId}`
//! - `POST /{idScope}/registrations/{registrationId}` (registration status)
//!
//! The TLS client chain and CertificateVerify signature go to the policy
//! component's `attest` as a `tls-signature` proof; its verdict is final.
//! Registration is decided at once, so `register` answers 200 with the
//! final `RegistrationOperationStatus` (DPS clients accept 200 as well as
//! 202-then-poll); the operation stays queryable by its ID.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use policy_host::{AttestRequest, Code, Decision, EnrollmentKind, Proof, Purpose, Refusal};

use crate::tls::ClientEvidence;
use crate::{Body, Service, dps_error, json_response, read_json, store};

/// DPS error codes used here.
const UNAUTHORIZED: u32 = 401_002;
const INVALID_REGISTRATION_ID: u32 = 400_004;
const BAD_REQUEST: u32 = 400_001;
const NOT_FOUND: u32 = 404_001;

pub(crate) async fn handle(
    service: &Arc<Service>,
    evidence: &ClientEvidence,
    req: Request<Incoming>,
    segments: &[String],
) -> Response<Body> {
    if !segments[0].eq_ignore_ascii_case(&service.id_scope) {
        return dps_error(
            StatusCode::NOT_FOUND,
            NOT_FOUND,
            &format!("unknown ID scope '{}'", segments[0]),
        );
    }
    if segments[1] != "registrations" {
        return not_found(segments);
    }
    let registration_id = segments[2].clone();
    if let Err(r) = policy_core::check_registration_id(&registration_id) {
        return dps_error(StatusCode::BAD_REQUEST, INVALID_REGISTRATION_ID, &r.message);
    }
    let method = req.method().clone();
    let body = match read_json(req).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    match (&method, &segments[3..]) {
        (&Method::PUT, [register]) if register == "register" => {
            register_device(service, evidence, &registration_id, &body).await
        }
        (&Method::GET, [operations, operation_id]) if operations == "operations" => {
            operation_status(service, evidence, &registration_id, operation_id).await
        }
        (&Method::POST, []) => registration_status(service, evidence, &registration_id).await,
        _ => not_found(segments),
    }
}

fn not_found(segments: &[String]) -> Response<Body> {
    dps_error(
        StatusCode::NOT_FOUND,
        NOT_FOUND,
        &format!("no device API resource at /{}", segments.join("/")),
    )
}

fn no_client_certificate() -> Response<Body> {
    dps_error(
        StatusCode::UNAUTHORIZED,
        UNAUTHORIZED,
        "no client certificate: X.509 attestation needs the device certificate (and its intermediates) as the TLS client certificate",
    )
}

/// Leaf DER and intermediates DER.
type Chain = (Vec<u8>, Vec<Vec<u8>>);

/// The evidence a device API call needs, or the 401 that says what is missing.
fn tls_evidence(evidence: &ClientEvidence) -> Result<(&Chain, Proof), Response<Body>> {
    let Some(chain) = &evidence.chain else {
        return Err(no_client_certificate());
    };
    let Some((scheme, message, signature)) = &evidence.signature else {
        return Err(dps_error(
            StatusCode::UNAUTHORIZED,
            UNAUTHORIZED,
            "the TLS handshake carried no CertificateVerify signature (resumed session?)",
        ));
    };
    Ok((
        chain,
        Proof::TlsSignature {
            scheme: *scheme,
            message: message.clone(),
            signature: signature.clone(),
        },
    ))
}

/// Runs the component's `attest` on the connection's evidence.
async fn attest(
    service: &Arc<Service>,
    evidence: &ClientEvidence,
    registration_id: &str,
) -> Result<(Result<Decision, Refusal>, Vec<u8>), Response<Body>> {
    let ((leaf, intermediates), proof) = tls_evidence(evidence)?;
    let request = AttestRequest {
        registration_id: registration_id.to_string(),
        leaf: leaf.clone(),
        intermediates: intermediates.clone(),
        time: crate::now_unix(),
        purpose: Purpose::ClientAuth,
    };
    let service2 = Arc::clone(service);
    let index = service.index();
    let verdict =
        tokio::task::spawn_blocking(move || service2.policy.attest(&request, &proof, index)).await;
    match verdict {
        Ok(Ok(v)) => Ok((v, leaf.clone())),
        Ok(Err(policy_host::HostError::Busy(n))) => {
            let mut r = dps_error(
                StatusCode::SERVICE_UNAVAILABLE,
                503_000,
                &format!("all {n} policy sandboxes are busy; retry shortly"),
            );
            r.headers_mut()
                .insert("retry-after", hyper::header::HeaderValue::from_static("1"));
            Err(r)
        }
        Ok(Err(e)) => {
            tracing::error!("policy component: {e}");
            Err(dps_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                500_000,
                &format!("the policy component failed: {e}"),
            ))
        }
        Err(e) => {
            tracing::error!("policy task: {e}");
            Err(dps_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                500_000,
                "the policy evaluation task failed",
            ))
        }
    }
}

/// [`attest`], with a refusal that does not come from a trusted chain
/// already answered (401): what the read-only device routes need.
async fn trusted_verdict(
    service: &Arc<Service>,
    evidence: &ClientEvidence,
    registration_id: &str,
) -> Result<(Result<Decision, Refusal>, Vec<u8>), Response<Body>> {
    let (verdict, leaf) = attest(service, evidence, registration_id).await?;
    if let Err(r) = &verdict
        && !trusted_refusal(r.code)
    {
        return Err(refused(r));
    }
    Ok((verdict, leaf))
}

/// Whether a refusal came after the device's chain was trusted: an
/// enrollment entry decided (disabled), or the chain reached a verified CA
/// that no entry covers. Only these are recorded (and only these let a
/// caller read its record): any other refusal could come from anyone who
/// holds a key and a certificate with someone else's registration ID as
/// its CN, and must not create, overwrite or reveal that device's record.
fn trusted_refusal(code: Code) -> bool {
    matches!(
        code,
        Code::EnrollmentGroupDisabled | Code::IndividualEnrollmentDisabled | Code::NoEnrollment
    )
}

async fn register_device(
    service: &Arc<Service>,
    evidence: &ClientEvidence,
    registration_id: &str,
    body: &Value,
) -> Response<Body> {
    if !body.is_object() {
        return dps_error(
            StatusCode::BAD_REQUEST,
            BAD_REQUEST,
            "request body must be a JSON object",
        );
    }
    match body.get("registrationId") {
        None => {}
        Some(Value::String(s)) if s.eq_ignore_ascii_case(registration_id) => {}
        Some(other) => {
            return dps_error(
                StatusCode::BAD_REQUEST,
                INVALID_REGISTRATION_ID,
                &format!("body registrationId {other} differs from the URL's '{registration_id}'"),
            );
        }
    }
    let (verdict, leaf) = match attest(service, evidence, registration_id).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let leaf_sha256: [u8; 32] = Sha256::digest(&leaf).into();
    let outcome = match verdict {
        Ok(d) => Outcome::Assigned(d),
        Err(r) if !trusted_refusal(r.code) => {
            tracing::info!(registration_id, "refused without a record: {r}");
            return refused(&r);
        }
        Err(r) if r.code == Code::NoEnrollment => Outcome::Failed(r),
        Err(r) => Outcome::Disabled(r),
    };
    // A failed registration is recorded, then answered 401; assigned and
    // disabled ones are answered with the operation status.
    let answer_failed = match &outcome {
        Outcome::Failed(r) => Some(refused(r)),
        _ => None,
    };
    let index = service.index();
    let recorded = {
        let service = Arc::clone(service);
        let registration_id = registration_id.to_string();
        tokio::task::spawn_blocking(move || {
            record(
                &service,
                &index,
                &registration_id,
                &leaf,
                &leaf_sha256,
                &outcome,
            )
        })
        .await
        .map_err(anyhow::Error::from)
        .and_then(|r| r)
    };
    match recorded {
        Ok(Recorded::Operation(operation)) => {
            answer_failed.unwrap_or_else(|| json_response(StatusCode::OK, &operation))
        }
        Ok(Recorded::NotOwned(r)) => {
            tracing::info!(
                registration_id,
                "refused; the record belongs to another certificate and stays as it is: {r}"
            );
            refused(&r)
        }
        Err(e) => {
            tracing::error!("recording registration '{registration_id}': {e:#}");
            dps_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                500_000,
                "the registration could not be recorded; nothing was acknowledged",
            )
        }
    }
}

/// The 401 a refused device gets: attest's one-line refusal in `message`.
fn refused(r: &Refusal) -> Response<Body> {
    dps_error(
        StatusCode::UNAUTHORIZED,
        UNAUTHORIZED,
        &format!("attest refused the device: {r}"),
    )
}

/// How a registration that reaches the store ended.
enum Outcome {
    Assigned(Decision),
    Disabled(Refusal),
    Failed(Refusal),
}

/// What [`record`] did.
enum Recorded {
    /// The record and operation were written: the `RegistrationOperationStatus`.
    Operation(Value),
    /// A refusal for a registration ID whose record belongs to another
    /// certificate: nothing was written, and nothing of it is shown.
    NotOwned(Refusal),
}

/// Writes the registration record and the operation in one transaction,
/// committed (synchronous=FULL) before the caller answers.
///
/// A record belongs to the certificate that wrote it. An admission writes
/// (the enrollments say this certificate *is* this device); a refusal
/// writes only a record that does not exist yet or that belongs to the
/// same certificate, so that whoever holds a refused chain (a disabled
/// CA's key, say) cannot overwrite another device's record.
fn record(
    service: &Service,
    index: &policy_host::dps::EnrollmentSet,
    registration_id: &str,
    leaf: &[u8],
    leaf_sha256: &[u8; 32],
    outcome: &Outcome,
) -> anyhow::Result<Recorded> {
    let registration_id = &registration_id.to_ascii_lowercase();
    service.store.transaction(|tx| {
        let existing = store::get_registration_owned(tx, registration_id)?;
        if let (Outcome::Disabled(r) | Outcome::Failed(r), Some(e)) = (outcome, &existing)
            && !e.owned_by(leaf_sha256)
        {
            return Ok(Recorded::NotOwned(r.clone()));
        }
        let previous = existing.as_ref().map(|e| &e.doc.doc);
        let now = crate::now_rfc3339();
        let created = previous
            .and_then(|d| d.get("createdDateTimeUtc"))
            .cloned()
            .unwrap_or_else(|| json!(now));
        let previous_hub = previous
            .and_then(|d| d.get("assignedHub"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let etag = crate::new_etag();
        let (status, mut state, group_id) = match outcome {
            Outcome::Assigned(decision) => {
                let allocation =
                    service.allocation(index, decision.enrollment.kind, &decision.enrollment.id);
                // Reprovisioning keeps the hub while the entry still allows it.
                let hub = match &previous_hub {
                    Some(h)
                        if allocation.allows(h)
                            || (allocation.iot_hubs.is_empty()
                                && allocation.iot_hub_host_name.is_none()) =>
                    {
                        h.clone()
                    }
                    _ => allocation
                        .hub_for(registration_id)
                        .unwrap_or_else(|| service.config.default_iot_hub_host_name.clone()),
                };
                let x509 = match decision.enrollment.kind {
                    EnrollmentKind::Group => json!({"enrollmentGroupId": decision.enrollment.id}),
                    EnrollmentKind::Individual => json!({
                        "certificateInfo": certificate_info(leaf, decision)
                    }),
                };
                let group = match decision.enrollment.kind {
                    EnrollmentKind::Group => Some(decision.enrollment.id.clone()),
                    EnrollmentKind::Individual => None,
                };
                (
                    "assigned",
                    json!({
                        "registrationId": decision.registration_id,
                        "createdDateTimeUtc": created,
                        "assignedHub": hub,
                        "deviceId": decision.device_id,
                        "status": "assigned",
                        "substatus": "initialAssignment",
                        "lastUpdatedDateTimeUtc": now,
                        "x509": x509,
                    }),
                    group,
                )
            }
            Outcome::Disabled(r) | Outcome::Failed(r) => {
                let status = if matches!(outcome, Outcome::Disabled(_)) {
                    "disabled"
                } else {
                    "failed"
                };
                let group = r
                    .enrollment
                    .as_ref()
                    .filter(|e| e.kind == EnrollmentKind::Group)
                    .map(|e| e.id.clone());
                let mut state = json!({
                    "registrationId": registration_id.to_ascii_lowercase(),
                    "createdDateTimeUtc": created,
                    "status": status,
                    "errorCode": UNAUTHORIZED,
                    "errorMessage": format!("attest refused the device: {r}"),
                    "lastUpdatedDateTimeUtc": now,
                });
                if let Some(g) = &group {
                    state["x509"] = json!({"enrollmentGroupId": g});
                }
                (status, state, group)
            }
        };
        state["etag"] = json!(etag);
        store::put_registration(
            tx,
            registration_id,
            group_id.as_deref(),
            &state,
            &etag,
            leaf_sha256,
        )?;
        let operation_id = crate::random_id();
        let operation = json!({
            "operationId": operation_id,
            "status": status,
            "registrationState": state,
        });
        store::put_operation(
            tx,
            &operation_id,
            registration_id,
            leaf_sha256,
            &operation,
            crate::now_unix(),
        )?;
        Ok(Recorded::Operation(operation))
    })
}

/// DPS `X509CertificateInfo` of the leaf.
fn certificate_info(leaf: &[u8], decision: &Decision) -> Value {
    let info = decision.path.first();
    json!({
        "subjectName": info.map(|c| c.subject.clone()),
        "sha1Thumbprint": hex::encode_upper(Sha1::digest(leaf)),
        "sha256Thumbprint": hex::encode_upper(Sha256::digest(leaf)),
        "issuerName": info.map(|c| c.issuer.clone()),
        "notBeforeUtc": info.map(|c| crate::unix_rfc3339(c.not_before)),
        "notAfterUtc": info.map(|c| crate::unix_rfc3339(c.not_after)),
        "serialNumber": info.map(|c| c.serial.clone()),
        "version": 3,
    })
}

async fn operation_status(
    service: &Arc<Service>,
    evidence: &ClientEvidence,
    registration_id: &str,
    operation_id: &str,
) -> Response<Body> {
    // Proof of possession first, through the component, as on every
    // device route: the public certificate alone reads nothing.
    let leaf = match trusted_verdict(service, evidence, registration_id).await {
        Ok((_, leaf)) => leaf,
        Err(response) => return response,
    };
    let leaf_sha256 = Sha256::digest(&leaf).to_vec();
    let found = {
        let service = Arc::clone(service);
        let operation_id = operation_id.to_string();
        tokio::task::spawn_blocking(move || {
            service.store.operation(&operation_id, crate::now_unix())
        })
        .await
    };
    match found {
        Ok(Ok(Some((reg, leaf_hash, doc))))
            if reg == registration_id.to_ascii_lowercase() && leaf_hash == leaf_sha256 =>
        {
            json_response(StatusCode::OK, &doc)
        }
        Ok(Ok(Some(_))) => dps_error(
            StatusCode::UNAUTHORIZED,
            UNAUTHORIZED,
            "this operation belongs to another device certificate",
        ),
        Ok(Ok(None)) => dps_error(
            StatusCode::NOT_FOUND,
            NOT_FOUND,
            &format!(
                "no operation '{operation_id}' (operations expire an hour after registration)"
            ),
        ),
        _ => dps_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            500_000,
            "the operation could not be read",
        ),
    }
}

async fn registration_status(
    service: &Arc<Service>,
    evidence: &ClientEvidence,
    registration_id: &str,
) -> Response<Body> {
    let (verdict, leaf) = match trusted_verdict(service, evidence, registration_id).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let leaf_sha256 = Sha256::digest(&leaf);
    match service.store.registration_owned(registration_id) {
        // An admitted device may read its record; a refused one only a
        // record its own certificate wrote.
        Ok(Some(record)) => match &verdict {
            Err(r) if !record.owned_by(&leaf_sha256) => refused(r),
            _ => json_response(StatusCode::OK, &record.doc.doc),
        },
        Ok(None) => dps_error(
            StatusCode::NOT_FOUND,
            NOT_FOUND,
            &format!("no registration record for '{registration_id}'"),
        ),
        Err(e) => {
            tracing::error!("reading registration: {e:#}");
            dps_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                500_000,
                "the registration record could not be read",
            )
        }
    }
}
