//! Process-wide counters the service keeps for its operator (host-http
//! exposes them to Prometheus): store failures, and the policy
//! component's calls and the ways they end without a verdict. Counted
//! where they happen, read at scrape time; relaxed atomics, no locks.

use std::sync::atomic::{AtomicU64, Ordering};

use policy_host::HostError;

static STORE_ERRORS: AtomicU64 = AtomicU64::new(0);
static COMPONENT_CALLS: AtomicU64 = AtomicU64::new(0);
static COMPONENT_FAILURES: [AtomicU64; ComponentFailure::ALL.len()] =
    [const { AtomicU64::new(0) }; ComponentFailure::ALL.len()];

/// How a component call ended without a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComponentFailure {
    /// Its fuel (instruction allowance) ran out.
    Fuel,
    /// It ran past its wall-clock deadline.
    Deadline,
    /// Every sandbox was busy: the call did not run.
    Busy,
    /// The guest trapped (e.g. its memory cap).
    Trap,
    /// Anything else (broken contract, sandbox set-up).
    Other,
}

impl ComponentFailure {
    /// Every kind, in label order.
    pub const ALL: [ComponentFailure; 5] = [
        ComponentFailure::Fuel,
        ComponentFailure::Deadline,
        ComponentFailure::Busy,
        ComponentFailure::Trap,
        ComponentFailure::Other,
    ];

    /// The kind's metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentFailure::Fuel => "fuel",
            ComponentFailure::Deadline => "deadline",
            ComponentFailure::Busy => "busy",
            ComponentFailure::Trap => "trap",
            ComponentFailure::Other => "other",
        }
    }

    fn of(e: &HostError) -> ComponentFailure {
        match e {
            HostError::FuelExhausted(_) => ComponentFailure::Fuel,
            HostError::Timeout(_) => ComponentFailure::Deadline,
            HostError::Busy(_) => ComponentFailure::Busy,
            HostError::Trap(_) => ComponentFailure::Trap,
            _ => ComponentFailure::Other,
        }
    }
}

/// A store operation failed (counted where the service answers 500/503).
pub(crate) fn store_error() {
    STORE_ERRORS.fetch_add(1, Ordering::Relaxed);
}

/// One call into the component, and how it ended.
pub(crate) fn component_call<T>(result: &Result<T, HostError>) {
    COMPONENT_CALLS.fetch_add(1, Ordering::Relaxed);
    if let Err(e) = result {
        let kind = ComponentFailure::of(e);
        COMPONENT_FAILURES[kind as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Store operations that failed, since the process started.
pub fn store_errors() -> u64 {
    STORE_ERRORS.load(Ordering::Relaxed)
}

/// Decision calls into the component, since the process started.
pub fn component_calls() -> u64 {
    COMPONENT_CALLS.load(Ordering::Relaxed)
}

/// Component calls that ended as `kind`, since the process started.
pub fn component_failures(kind: ComponentFailure) -> u64 {
    COMPONENT_FAILURES[kind as usize].load(Ordering::Relaxed)
}
