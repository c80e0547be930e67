//! What the service tells its operator about each decision, without a
//! transport or a metrics library: a [`DecisionEvent`] per registration
//! request that reached a decision (or could not), handed to an
//! [`Observer`] (host-http's Prometheus metrics) and written to the audit
//! trail ([`crate::audit`]) before the device is answered.

use std::net::IpAddr;
use std::time::Duration;

use policy_host::{Decision, EnrollmentRef, Refusal};

/// The device transport a request came over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Not a network transport (a test, a harness, a tool).
    #[default]
    Internal,
    /// The DPS device API over HTTPS.
    Https,
    /// The DPS device API over MQTT.
    Mqtt,
    /// A decision a gateway made offline, decided again by the service
    /// when the gateway uploaded it (`POST /attest/edgeDecisions`).
    Edge,
}

impl Transport {
    /// The transport's name in metrics labels and audit lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Internal => "internal",
            Transport::Https => "https",
            Transport::Mqtt => "mqtt",
            Transport::Edge => "edge",
        }
    }
}

/// What became of one registration request.
#[derive(Clone, Copy, Debug)]
pub enum Verdict<'a> {
    /// The enrollments admit the device; it was recorded.
    Admitted(&'a Decision),
    /// The component refused the device (with its code and the position
    /// of the certificate concerned).
    Refused(&'a Refusal),
    /// Nothing was decided: no client certificate, a busy or failed
    /// component, a store failure, a peer over its refused-decision
    /// budget. `code` is the DPS error code the device was answered.
    NotDecided {
        /// The DPS error code answered (`errorCode`, e.g. 503000).
        code: u32,
    },
}

impl Verdict<'_> {
    /// `admitted`, `refused` or `not-decided`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Verdict::Admitted(_) => "admitted",
            Verdict::Refused(_) => "refused",
            Verdict::NotDecided { .. } => "not-decided",
        }
    }

    /// The refusal code (`unknown-issuer`), or the DPS error code of an
    /// answer without a decision (`503000`); `None` when admitted. One of
    /// a fixed set: a metrics label may carry it.
    pub fn code(&self) -> Option<String> {
        match self {
            Verdict::Admitted(_) => None,
            Verdict::Refused(r) => Some(r.code.as_str().to_string()),
            Verdict::NotDecided { code } => Some(code.to_string()),
        }
    }

    /// The enrollment entry that decided (or that a refusal names).
    pub fn entry(&self) -> Option<&EnrollmentRef> {
        match self {
            Verdict::Admitted(d) => Some(&d.enrollment),
            Verdict::Refused(r) => r.enrollment.as_ref(),
            Verdict::NotDecided { .. } => None,
        }
    }
}

/// One registration request's decision, as the operator sees it.
#[derive(Clone, Copy, Debug)]
pub struct DecisionEvent<'a> {
    /// The transport it came over.
    pub transport: Transport,
    /// The registration ID as the device named it.
    pub registration_id: &'a str,
    /// SHA-256 of the device certificate, if one was presented.
    pub leaf_sha256: Option<&'a [u8; 32]>,
    /// The peer's address, if a network peer.
    pub peer: Option<IpAddr>,
    /// The verdict.
    pub verdict: Verdict<'a>,
    /// What the deciding entry's lenient revocation policy admitted (an
    /// undetermined status, a CRL past nextUpdate), refusal-shaped; empty
    /// unless admitted.
    pub warnings: &'a [Refusal],
    /// Time spent deciding (the component's call and its lookups).
    pub elapsed: Duration,
}

/// Receives the service's events (host-http counts them for Prometheus).
/// Called on the request's thread, after the store was written and before
/// the device is answered: it must be quick and must not fail.
pub trait Observer: Send + Sync {
    /// A registration request was decided (or could not be).
    fn decision(&self, event: &DecisionEvent<'_>);
}
