//! Decisions made at the edge, uploaded to the service
//! (`POST /attest/edgeDecisions`, right `EdgeDecisionWrite`).
//!
//! A gateway logs each decision it makes from its replica
//! ([`crate::replica::Replica::log`]) and uploads the log when it can
//! reach the service. The service keeps each as the device's registration
//! record, marked `attestEdge` (the gateway's decision ID and verdict, when
//! it was made, the snapshot version it was made on).
//!
//! The service never writes a record on a gateway's word: it decides the
//! uploaded chain itself, at the time the gateway decided, from the
//! enrollments it holds now, and writes what that decision may write under
//! the same rules as a registration (an admission its record; a trusted
//! refusal only the certificate's own record; an untrusted refusal
//! nothing). An admission is recorded only where both admitted. Where the
//! gateway admitted and the service now refuses (an entry changed after
//! the snapshot the gateway held), the service's refusal is recorded with
//! `attestEdge.verdict: "admitted"` and `agreed: false`: a device admitted
//! offline on data since changed is what an operator must see. A record
//! newer than the decision is never overwritten, and a decision ID already
//! recorded is skipped, so uploading a log twice changes nothing.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use attest_dps::{DpsError, ErrorKind};
use policy_host::{AttestRequest, Decision, EnrollmentRef, Purpose, Refusal, Stage};

use crate::device::{Verdict, decide_with};
use crate::events::{DecisionEvent, Transport, Verdict as Seen};
use crate::{Answer, Reply, Service, new_etag, random_id, unavailable};

/// Most decisions in one upload.
pub const MAX_UPLOAD: usize = 1000;

/// One decision a gateway made, as it logs and uploads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeDecision {
    /// The decision's ID (random, the gateway's): uploads are idempotent by it.
    pub id: String,
    /// The registration ID decided.
    pub registration_id: String,
    /// The device's leaf certificate (base64 DER).
    pub leaf: String,
    /// The intermediates it sent (base64 DER).
    #[serde(default)]
    pub intermediates: Vec<String>,
    /// When it was decided, Unix seconds (the validation time used).
    pub decided_at: i64,
    /// The snapshot version it was decided on.
    pub snapshot_version: u64,
    /// Whether the gateway checked a proof of possession.
    pub proof: bool,
    /// `admitted` or the refusal code.
    pub verdict: String,
    /// The deciding entry (`individual:ID` / `group:ID`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment: Option<String>,
}

impl EdgeDecision {
    /// What a decision's outcome is called in the log.
    pub fn verdict_of(outcome: &Result<Decision, Refusal>) -> (String, Option<String>) {
        match outcome {
            Ok(d) => ("admitted".into(), Some(entry_of(&d.enrollment))),
            Err(r) => (
                r.code.as_str().to_string(),
                r.enrollment.as_ref().map(entry_of),
            ),
        }
    }
}

fn entry_of(e: &EnrollmentRef) -> String {
    format!("{}:{}", attest_dps::kind::names(e.kind).stored, e.id)
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl Service {
    /// `POST /attest/edgeDecisions`: `{"decisions": [EdgeDecision, …]}`
    /// from the gateway whose SAS policy is `gateway`. Answers
    /// `{"recorded": n, "skipped": [{"id", "reason"}]}`.
    pub fn edge_decisions(&self, gateway: &str, body: &Value) -> Answer {
        let list = body
            .get("decisions")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                DpsError::new(ErrorKind::BadRequest, "body must be {\"decisions\": [ … ]}")
            })?;
        if list.len() > MAX_UPLOAD {
            return Err(DpsError::new(
                ErrorKind::BadRequest,
                format!("at most {MAX_UPLOAD} decisions per upload"),
            ));
        }
        let mut recorded = 0usize;
        let mut skipped = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let decision: EdgeDecision = match serde_json::from_value(item.clone()) {
                Ok(d) => d,
                Err(e) => {
                    skipped
                        .push(json!({"index": i, "reason": format!("not an edge decision: {e}")}));
                    continue;
                }
            };
            match self.edge_decision(gateway, &decision)? {
                None => recorded += 1,
                Some(reason) => skipped.push(json!({"id": decision.id, "reason": reason})),
            }
        }
        Ok(Reply::ok(json!({"recorded": recorded, "skipped": skipped})))
    }

    /// Records one edge decision; `Some(reason)` when nothing was written.
    fn edge_decision(&self, gateway: &str, d: &EdgeDecision) -> Result<Option<String>, DpsError> {
        if policy_host::check_registration_id(&d.registration_id).is_err() {
            return Ok(Some(
                "the registration ID is not a DPS registration ID".into(),
            ));
        }
        let decode = |b: &str| B64.decode(b).ok();
        let Some(leaf) = decode(&d.leaf) else {
            return Ok(Some("the leaf is not base64".into()));
        };
        let Some(intermediates) = d
            .intermediates
            .iter()
            .map(|b| decode(b))
            .collect::<Option<Vec<_>>>()
        else {
            return Ok(Some("an intermediate is not base64".into()));
        };
        let request = AttestRequest {
            registration_id: d.registration_id.clone(),
            leaf: leaf.clone(),
            intermediates,
            time: d.decided_at,
            purpose: Purpose::ClientAuth,
        };
        let started = std::time::Instant::now();
        let (found, outcome) = decide_with(&self.policy, &*self.store, &request, None)?;
        // The service's own decision on the gateway's, in the audit trail
        // (transport `edge`) whatever is recorded of it.
        let leaf_sha256: [u8; 32] = Sha256::digest(&leaf).into();
        self.report_decision(&DecisionEvent {
            transport: Transport::Edge,
            registration_id: &d.registration_id,
            leaf_sha256: Some(&leaf_sha256),
            peer: None,
            verdict: match &outcome {
                Ok(decision) => Seen::Admitted(decision),
                Err(r) => Seen::Refused(r),
            },
            warnings: &found.warnings,
            elapsed: started.elapsed(),
        })?;
        if let Err(r) = &outcome
            && r.code.stage() == Stage::Untrusted
        {
            return Ok(Some(format!(
                "the service refuses this chain before trusting it ({}): nothing is recorded",
                r.code.as_str()
            )));
        }
        if outcome.is_ok() && d.verdict != "admitted" {
            return Ok(Some(format!(
                "the gateway refused ({}) where the service admits: nothing is recorded that would say the device joined",
                d.verdict
            )));
        }
        let (verdict, enrollment) = EdgeDecision::verdict_of(&outcome);
        let agreed = verdict == d.verdict && enrollment == d.enrollment;
        let edge = json!({
            "decisionId": d.id,
            "gateway": gateway,
            "decidedAt": attest_dps::documents::rfc3339(d.decided_at),
            "snapshotVersion": d.snapshot_version,
            "verdict": d.verdict,
            "enrollment": d.enrollment,
            "proofCheckedAtEdge": d.proof,
            "agreed": agreed,
        });
        let decided_at = attest_dps::documents::rfc3339(d.decided_at);
        let verdict = Verdict {
            found,
            outcome,
            leaf_sha256,
            leaf,
        };
        let operation_id = random_id()?;
        let etag = new_etag()?;
        let mut skip = None;
        self.store
            .write_with(|tx| {
                if let Some(existing) = tx.registration(&d.registration_id)? {
                    let doc = &existing.doc.doc;
                    if doc["attestEdge"]["decisionId"].as_str() == Some(d.id.as_str()) {
                        skip = Some("already recorded".to_string());
                        return anyhow::Ok(());
                    }
                    // When the record's decision was made: an edge record's
                    // at the gateway, any other's when the service wrote it.
                    // (RFC 3339 UTC times of one format compare as text.)
                    let made = doc["attestEdge"]["decidedAt"]
                        .as_str()
                        .or_else(|| doc["lastUpdatedDateTimeUtc"].as_str())
                        .unwrap_or("");
                    if made >= decided_at.as_str() {
                        skip = Some("the service holds a newer record".to_string());
                        return anyhow::Ok(());
                    }
                }
                self.record(
                    tx,
                    &d.registration_id,
                    &verdict,
                    &operation_id,
                    &etag,
                    Some(&edge),
                )?;
                anyhow::Ok(())
            })
            .map_err(|e| unavailable("the edge decision could not be recorded", &e))?;
        Ok(skip)
    }
}
