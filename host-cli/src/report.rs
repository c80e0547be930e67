//! Printing what the component decided: a few lines for people, or JSON.

use std::fmt::Write as _;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use policy_host::{CertificateInfo, Decision, Purpose, Refusal};

/// Which decision was asked for, and what came back.
#[derive(Debug)]
pub enum Outcome {
    /// Plain chain validation.
    Chain(Result<Vec<CertificateInfo>, Refusal>),
    /// Enrollment resolution without proof of possession.
    Resolve(Result<Decision, Refusal>),
    /// Full attestation with proof of possession.
    Attest(Result<Decision, Refusal>),
}

impl Outcome {
    /// An enrollment decision: attestation when a proof was checked,
    /// else resolution.
    pub fn decided(proved: bool, outcome: Result<Decision, Refusal>) -> Outcome {
        if proved {
            Outcome::Attest(outcome)
        } else {
            Outcome::Resolve(outcome)
        }
    }
}

/// A decision with its context, ready to print.
#[derive(Debug)]
pub struct Report {
    /// Validation time used.
    pub time: i64,
    /// Purpose required.
    pub purpose: Purpose,
    /// The decision.
    pub outcome: Outcome,
    /// The revocation mode checked (`leaf`, `chain`), if any.
    pub revocation: Option<&'static str>,
    /// What a lenient revocation policy let through.
    pub warnings: Vec<Refusal>,
}

/// RFC 3339 for a Unix time.
pub fn rfc3339(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{t}"))
}

fn purpose_name(p: Purpose) -> &'static str {
    match p {
        Purpose::ClientAuth => "clientAuth",
        Purpose::ServerAuth => "serverAuth",
        Purpose::Any => "any",
    }
}

/// A certificate as JSON (a path element of the decision document).
pub fn cert_json(c: &CertificateInfo) -> Value {
    json!({
        "subject": c.subject,
        "issuer": c.issuer,
        "commonName": c.common_name,
        "serialNumber": c.serial,
        "sha256Thumbprint": hex::encode_upper(c.sha256),
        "notBeforeUtc": rfc3339(c.not_before),
        "notAfterUtc": rfc3339(c.not_after),
    })
}

/// DPS's names for the two kinds of enrollment entry.
fn kind_name(kind: policy_host::EnrollmentKind) -> &'static str {
    attest_dps::kind::names(kind).dps_name
}

/// A refusal as JSON (shared with other hosts' outputs).
pub fn refusal_json(r: &Refusal) -> Value {
    json!({
        "code": r.code.as_str(),
        "message": r.message,
        "certificate": r.certificate.as_ref().map(|c| json!({
            "position": c.position,
            "subject": c.subject,
            "sha256Thumbprint": hex::encode_upper(c.sha256),
        })),
        "enrollment": r.enrollment.as_ref().map(|e| json!({
            "kind": kind_name(e.kind),
            "id": e.id,
        })),
    })
}

fn path_line(path: &[CertificateInfo]) -> String {
    let names: Vec<String> = path
        .iter()
        .map(|c| c.common_name.clone().unwrap_or_else(|| c.subject.clone()))
        .collect();
    names.join(" <- ")
}

impl Report {
    /// Whether the request was accepted.
    pub fn accepted(&self) -> bool {
        match &self.outcome {
            Outcome::Chain(r) => r.is_ok(),
            Outcome::Resolve(r) | Outcome::Attest(r) => r.is_ok(),
        }
    }

    fn refusal(&self) -> Option<&Refusal> {
        match &self.outcome {
            Outcome::Chain(Err(r)) | Outcome::Resolve(Err(r)) | Outcome::Attest(Err(r)) => Some(r),
            _ => None,
        }
    }

    /// The decision as JSON.
    pub fn json(&self) -> Value {
        let mode = match self.outcome {
            Outcome::Chain(_) => "chain",
            Outcome::Resolve(_) => "resolve",
            Outcome::Attest(_) => "attest",
        };
        let mut out = json!({
            "verdict": if self.accepted() { "accepted" } else { "refused" },
            "mode": mode,
            "validationTime": rfc3339(self.time),
            "extendedKeyUsage": purpose_name(self.purpose),
        });
        match &self.outcome {
            Outcome::Chain(Ok(path)) => {
                out["path"] = path.iter().map(cert_json).collect();
            }
            Outcome::Resolve(Ok(d)) | Outcome::Attest(Ok(d)) => {
                out["registrationId"] = json!(d.registration_id);
                out["deviceId"] = json!(d.device_id);
                out["enrollment"] = json!({
                    "kind": kind_name(d.enrollment.kind),
                    "id": d.enrollment.id,
                });
                out["path"] = d.path.iter().map(cert_json).collect();
                out["proofOfPossession"] = json!(match self.outcome {
                    Outcome::Attest(_) => "verified",
                    _ => "not-checked",
                });
            }
            _ => {}
        }
        if let Some(r) = self.refusal() {
            out["refusal"] = refusal_json(r);
        }
        if let Some(mode) = self.revocation {
            out["revocation"] = json!(mode);
            out["warnings"] = self.warnings.iter().map(refusal_json).collect();
        }
        out
    }

    /// The decision for people: what was decided and why, in a few lines.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let at = rfc3339(self.time);
        let purpose = purpose_name(self.purpose);
        match &self.outcome {
            Outcome::Chain(Ok(path)) => {
                let _ = writeln!(s, "ACCEPTED  chain is valid for {purpose} at {at}");
                let _ = writeln!(s, "  path: {} (trust anchor)", path_line(path));
                if let Some(mode) = self.revocation {
                    let _ = writeln!(s, "  revocation: checked ({mode})");
                }
                for w in &self.warnings {
                    let _ = writeln!(s, "  WARNING {}: {}", w.code, w.message);
                }
            }
            Outcome::Resolve(Ok(d)) | Outcome::Attest(Ok(d)) => {
                let _ = writeln!(
                    s,
                    "ACCEPTED  {} is admitted by {} as device ID '{}'",
                    d.registration_id, d.enrollment, d.device_id
                );
                let anchor = if d.path.len() > 1 {
                    " (trust anchor)"
                } else {
                    " (enrolled certificate)"
                };
                let _ = writeln!(s, "  path: {}{anchor}", path_line(&d.path));
                match self.outcome {
                    Outcome::Attest(_) => {
                        let _ = writeln!(s, "  proof of possession: verified");
                    }
                    _ => {
                        let _ = writeln!(
                            s,
                            "  proof of possession: not checked (add --challenge and --signature)"
                        );
                    }
                }
                if self.revocation.is_some() {
                    let _ = writeln!(s, "  revocation: checked (the entry's revocationPolicy)");
                }
                for w in &self.warnings {
                    let _ = writeln!(s, "  WARNING {}: {}", w.code, w.message);
                }
                let _ = writeln!(s, "  checked at {at} for {purpose}");
            }
            _ => {}
        }
        if let Some(r) = self.refusal() {
            let _ = writeln!(s, "REFUSED   {}: {}", r.code, r.message);
            if let Some(c) = &r.certificate {
                let _ = writeln!(
                    s,
                    "  certificate: {c} (sha256 {})",
                    hex::encode_upper(&c.sha256[..8])
                );
            }
            if let Some(e) = &r.enrollment {
                let _ = writeln!(s, "  enrollment: {e}");
            }
            let _ = writeln!(s, "  checked at {at} for {purpose}");
        }
        s
    }
}
