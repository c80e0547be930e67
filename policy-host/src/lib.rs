//! Embeds attest's policy component with wasmtime.
//!
//! [`Policy`] compiles (or loads from cache) the component once, links its
//! imports and pre-instantiates it; every call then runs in a fresh
//! [`wasmtime::Store`] with a memory cap and a deadline (or fuel), so a guest
//! trap or runaway becomes a [`HostError`], never a crashed process. Gateways
//! embed attest through this crate: implement [`EnrollmentSource`] over
//! your store and call [`Policy::attest`].
//!
//! ```no_run
//! use policy_host::Policy;
//! # fn main() -> Result<(), policy_host::HostError> {
//! let policy = Policy::new()?;
//! # let (leaf, intermediates, roots) = (vec![], vec![], vec![]);
//! let request = policy_host::ChainRequest {
//!     leaf,
//!     intermediates,
//!     trust_anchors: roots,
//!     time: 1_780_272_000, // validation time, Unix seconds
//!     purpose: policy_host::Purpose::ClientAuth,
//! };
//! match policy.validate_chain(&request)? {
//!     Ok(path) => println!("trusted via {}", path.last().map_or("", |c| c.subject.as_str())),
//!     Err(refusal) => println!("refused: {refusal}"),
//! }
//! # Ok(()) }
//! ```
#![deny(unsafe_code)]

mod cache;
mod convert;
mod crypto;
mod engine;
mod enrollments;
mod footprint;
pub mod input;
mod memo;
mod revocation;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, PoolConcurrencyLimitError, Store, StoreLimits, StoreLimitsBuilder, Trap};

pub use cache::{CacheMode, ComponentSource};
pub use crypto::AwsLcVerifier;
pub use enrollments::NoEnrollments;
pub use memo::SignatureMemo;
/// The policy's types and its pure helpers, re-exported so that hosts
/// depend on this crate only (never on `policy-core` directly).
pub use policy_core::{
    Allocation, Assignment, AttestRequest, Attested, CertRef, CertificateInfo, CertificateKeys,
    ChainRequest, Code, CrlDetails, Decision, EnrollmentGroup, EnrollmentKind, EnrollmentRef,
    EnrollmentSource, IndividualEnrollment, Lenience, MAX_CERTIFICATE_SIZE, MAX_INTERMEDIATES,
    Proof, Purpose, Refusal, Reprovision, RevocationMode, RevocationPolicy, SignatureAlgorithm,
    SignatureVerifier, Stage, Substatus, TLS_SIGNATURE_SCHEMES, Validated, certificate_common_name,
    certificate_details, certificate_keys, challenge_message, check_registration_id, crl_details,
};

/// Whether the CA certificate `ca` issued the CRL `crl` (see
/// `policy_core::crl_signed_by`), with aws-lc-rs signature arithmetic: what
/// a host checks before it installs a CRL (never a decision: the component
/// verifies every CRL again on the path it validates).
pub fn crl_signed_by(crl: &[u8], ca: &[u8], time: i64) -> Result<(), String> {
    policy_core::crl_signed_by(crl, ca, time, &AwsLcVerifier)
}
pub use revocation::{CrlLookup, Crls};

mod bindings {
    wasmtime::component::bindgen!({
        world: "policy",
        path: "../wit",
    });
}

/// The policy component, as built from `policy-core` by this crate's build script.
pub const COMPONENT: &[u8] = include_bytes!(env!("ATTEST_POLICY_COMPONENT"));

/// A failure of the host or the sandbox, as opposed to a policy refusal.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The component could not be compiled, loaded or linked.
    #[error("policy component could not be loaded: {0}")]
    Load(String),
    /// The call used up its fuel (instruction allowance).
    #[error("policy component exceeded its fuel allowance of {0} units")]
    FuelExhausted(u64),
    /// The call ran past its wall-clock deadline.
    #[error("policy component exceeded its deadline of {0:?}")]
    Timeout(Duration),
    /// Every sandbox slot is in use (more concurrent calls than `Limits::max_concurrent_calls`).
    #[error("policy component is busy: all {0} sandbox slots are in use")]
    Busy(u32),
    /// The guest trapped (for example by exceeding its memory cap).
    #[error("policy component trapped: {0}")]
    Trap(String),
    /// The sandbox could not be set up for a call (for example fuel asked
    /// for on an engine built without fuel metering).
    #[error("policy sandbox could not be configured: {0}")]
    Config(String),
    /// The component returned a value that breaks the WIT contract (a hash
    /// that is not 32 bytes, say).
    #[error("policy component broke its interface contract: {0}")]
    Contract(String),
}

/// Per-call resource limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest linear memory the guest may grow to, bytes.
    pub memory_bytes: usize,
    /// Wall-clock deadline per call, enforced with wasmtime's epoch
    /// interruption (checked at loop heads and calls, 10 ms resolution).
    /// A typical attestation takes well under a millisecond.
    pub deadline: Option<Duration>,
    /// Fuel per call (about one unit per wasm instruction): a deterministic
    /// bound, at roughly 10–20 % extra cost per call. Off by default; a
    /// typical attestation uses a few million units.
    pub fuel: Option<u64>,
    /// Calls that may run at once; each holds one pre-reserved sandbox.
    pub max_concurrent_calls: u32,
    /// Pre-reserve `max_concurrent_calls` sandboxes (wasmtime's pooling
    /// allocator): a few microseconds per call instead of an mmap, at the
    /// price of reserving (not committing) address space for all of them up
    /// front. Services want it; a one-shot command does not ([`Limits::one_shot`]).
    pub pooling: bool,
}

impl Limits {
    /// Limits for a process that makes a handful of calls (a CLI): one
    /// call at a time, no pre-reserved sandboxes, so the process runs
    /// under a small address-space limit (`ulimit -v`).
    pub fn one_shot() -> Limits {
        Limits {
            max_concurrent_calls: 1,
            pooling: false,
            ..Limits::default()
        }
    }
}

impl Limits {
    /// What of these limits the engine is configured (and code compiled) for.
    fn shape(&self) -> engine::Shape {
        engine::Shape {
            fuel: self.fuel.is_some(),
            epoch: self.deadline.is_some(),
            memory_bytes: self.memory_bytes,
            pool: self.pooling.then_some(self.max_concurrent_calls),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            deadline: Some(Duration::from_secs(1)),
            fuel: None,
            max_concurrent_calls: 128,
            pooling: true,
        }
    }
}

/// Epoch resolution for deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Advances the engine's epoch every [`EPOCH_TICK`] while the policy lives.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine) -> Result<Ticker, HostError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("attest-epoch".into())
            .spawn(move || {
                // Parked rather than asleep, so that dropping the policy
                // wakes it at once (a one-shot CLI waited up to a whole tick
                // for it to notice, 5 ms on average, at exit).
                // A wake-up that is not the drop's (park may return early)
                // parks again until the tick is really over.
                'ticks: loop {
                    let next = std::time::Instant::now() + EPOCH_TICK;
                    loop {
                        if flag.load(Ordering::Acquire) {
                            break 'ticks;
                        }
                        let now = std::time::Instant::now();
                        if now >= next {
                            break;
                        }
                        std::thread::park_timeout(next - now);
                    }
                    engine.increment_epoch();
                }
            })
            .map_err(|e| HostError::Load(format!("cannot start the deadline thread: {e}")))?;
        Ok(Ticker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Per-store host state: what the imports need during one call.
pub(crate) struct HostState {
    crypto: Arc<dyn SignatureVerifier + Send + Sync>,
    enrollments: Arc<dyn EnrollmentSource + Send + Sync>,
    crls: Arc<dyn CrlLookup + Send + Sync>,
    limits: StoreLimits,
}

impl bindings::attest::policy::types::Host for HostState {}

/// The loaded, linked, pre-instantiated policy component.
pub struct Policy {
    engine: Engine,
    pre: bindings::PolicyPre<HostState>,
    limits: Limits,
    footprint: footprint::Footprint,
    crypto: Arc<dyn SignatureVerifier + Send + Sync>,
    source: ComponentSource,
    _ticker: Option<Ticker>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Outcome of a policy call: the outer `Result` is the host, the inner the decision.
pub type Verdict<T> = Result<Result<T, Refusal>, HostError>;

impl Policy {
    /// Loads the embedded component with default limits, the default
    /// compilation cache and aws-lc-rs signature verification.
    pub fn new() -> Result<Policy, HostError> {
        Policy::with_options(Limits::default(), CacheMode::default())
    }

    /// Loads the embedded component with the given limits and cache.
    pub fn with_options(limits: Limits, cache: CacheMode) -> Result<Policy, HostError> {
        Policy::with_verifier(limits, cache, Arc::new(AwsLcVerifier))
    }

    /// Loads the embedded component with the given limits, cache and
    /// signature arithmetic (the component's `crypto` import): an HSM or
    /// hardware accelerator, or a deterministic stand-in for fuzzing. The
    /// component still decides which key, algorithm and bytes.
    pub fn with_verifier(
        limits: Limits,
        cache: CacheMode,
        crypto: Arc<dyn SignatureVerifier + Send + Sync>,
    ) -> Result<Policy, HostError> {
        // One component instance is several core instances, each with the
        // memories and tables it defines: size the pool (and each store's
        // limits) from what the component really instantiates, so that
        // `max_concurrent_calls` calls fit at once.
        let footprint = footprint::of(COMPONENT).ok_or_else(|| {
            HostError::Load("the component's core instances cannot be counted".into())
        })?;
        let config = engine::config(&limits.shape(), footprint);
        let engine = Engine::new(&config).map_err(|e| HostError::Config(format!("{e:#}")))?;
        let (component, source) = cache::load(&engine, &cache)?;
        let mut linker = Linker::<HostState>::new(&engine);
        bindings::Policy::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| HostError::Config(format!("{e:#}")))?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| HostError::Config(format!("{e:#}")))?;
        let pre = bindings::PolicyPre::new(instance_pre)
            .map_err(|e| HostError::Config(format!("{e:#}")))?;
        let ticker = match limits.deadline {
            Some(_) => Some(Ticker::start(engine.clone())?),
            None => None,
        };
        Ok(Policy {
            engine,
            pre,
            limits,
            footprint,
            crypto,
            source,
            _ticker: ticker,
        })
    }

    /// The limits applied to every call.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Where the compiled component came from: embedded in the binary at
    /// build time, the compilation cache, or compiled at this load.
    pub fn component_source(&self) -> ComponentSource {
        self.source
    }

    /// The component's imports, as `interface-name` strings (e.g.
    /// `attest:policy/crypto@0.6.0`): what the sandbox can reach.
    pub fn component_imports(&self) -> Vec<String> {
        let ty = self.pre.instance_pre().component().component_type();
        ty.imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect()
    }

    /// The component's exports, as interface names.
    pub fn component_exports(&self) -> Vec<String> {
        let ty = self.pre.instance_pre().component().component_type();
        ty.exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect()
    }

    /// Plain path validation (WIT `chain.validate`).
    pub fn validate_chain(&self, request: &ChainRequest) -> Verdict<Vec<CertificateInfo>> {
        let wit_request = convert::chain_request_to_wit(request);
        let answer = self.call(Arc::new(NoEnrollments), |policy, store| {
            policy
                .attest_policy_chain()
                .call_validate(store, &wit_request)
        });
        convert::verdict(answer, |path| {
            path.into_iter().map(convert::info_from_wit).collect()
        })
    }

    /// Path validation with revocation checking against `crls` under
    /// `policy` (WIT `chain.validate-with-revocation`).
    pub fn validate_chain_revocation(
        &self,
        request: &ChainRequest,
        crls: Arc<Crls>,
        policy: RevocationPolicy,
    ) -> Verdict<Validated> {
        let wit_request = convert::chain_request_to_wit(request);
        let wit_policy = convert::revocation_policy_to_wit(policy);
        let answer = self.call_with(Arc::new(NoEnrollments), crls, |p, store| {
            p.attest_policy_chain()
                .call_validate_with_revocation(store, &wit_request, wit_policy)
        });
        convert::verdict(answer, convert::validated_from_wit)
    }

    /// Enrollment resolution without proof of possession (WIT
    /// `attestation.resolve`), holding no CRLs: an entry whose revocation
    /// policy needs one refuses.
    pub fn resolve(
        &self,
        request: &AttestRequest,
        enrollments: Arc<dyn EnrollmentSource + Send + Sync>,
    ) -> Verdict<Decision> {
        Ok(self
            .resolve_checked(request, enrollments, Arc::new(Crls::none()))?
            .map(|a| a.decision))
    }

    /// Enrollment resolution with the deciding entry's revocation policy
    /// applied against `crls` (WIT `attestation.resolve-with-warnings`).
    pub fn resolve_checked(
        &self,
        request: &AttestRequest,
        enrollments: Arc<dyn EnrollmentSource + Send + Sync>,
        crls: Arc<dyn CrlLookup + Send + Sync>,
    ) -> Verdict<Attested> {
        let wit_request = convert::attest_request_to_wit(request);
        let answer = self.call_with(enrollments, crls, |policy, store| {
            policy
                .attest_policy_attestation()
                .call_resolve_with_warnings(store, &wit_request)
        });
        convert::verdict(answer, convert::attested_from_wit)
    }

    /// Full attestation with proof of possession (WIT
    /// `attestation.attest`), holding no CRLs.
    pub fn attest(
        &self,
        request: &AttestRequest,
        proof: &Proof,
        enrollments: Arc<dyn EnrollmentSource + Send + Sync>,
    ) -> Verdict<Decision> {
        Ok(self
            .attest_checked(request, proof, enrollments, Arc::new(Crls::none()))?
            .map(|a| a.decision))
    }

    /// Full attestation, the deciding entry's revocation policy applied
    /// against `crls` (WIT `attestation.attest-with-warnings`).
    pub fn attest_checked(
        &self,
        request: &AttestRequest,
        proof: &Proof,
        enrollments: Arc<dyn EnrollmentSource + Send + Sync>,
        crls: Arc<dyn CrlLookup + Send + Sync>,
    ) -> Verdict<Attested> {
        let wit_request = convert::attest_request_to_wit(request);
        let wit_proof = convert::proof_to_wit(proof);
        let answer = self.call_with(enrollments, crls, |policy, store| {
            policy
                .attest_policy_attestation()
                .call_attest_with_warnings(store, &wit_request, &wit_proof)
        });
        convert::verdict(answer, convert::attested_from_wit)
    }

    /// The bytes a device signs for a challenge (WIT `attestation.challenge-message`).
    pub fn challenge_message(&self, registration_id: &str, challenge: &[u8]) -> Verdict<Vec<u8>> {
        let answer = self.call(Arc::new(NoEnrollments), |policy, store| {
            policy.attest_policy_attestation().call_challenge_message(
                store,
                registration_id,
                challenge,
            )
        });
        convert::verdict(answer, Ok)
    }

    /// The keys a host indexes a CA certificate by (WIT
    /// `attestation.index-certificate`).
    pub fn certificate_keys(&self, certificate: &[u8]) -> Verdict<CertificateKeys> {
        let answer = self.call(Arc::new(NoEnrollments), |policy, store| {
            policy
                .attest_policy_attestation()
                .call_index_certificate(store, certificate)
        });
        convert::verdict(answer, convert::keys_from_wit)
    }

    /// CA proof of possession (WIT `attestation.verify-ca-possession`).
    pub fn verify_ca_possession(
        &self,
        ca_certificate: &[u8],
        verification_certificate: &[u8],
        verification_code: &str,
        time: i64,
    ) -> Verdict<CertificateInfo> {
        let answer = self.call(Arc::new(NoEnrollments), |policy, store| {
            policy
                .attest_policy_attestation()
                .call_verify_ca_possession(
                    store,
                    ca_certificate,
                    verification_certificate,
                    verification_code,
                    time,
                )
        });
        convert::verdict(answer, convert::info_from_wit)
    }

    /// Runs one export in a fresh store with this policy's limits.
    fn call<R>(
        &self,
        enrollments: Arc<dyn EnrollmentSource + Send + Sync>,
        f: impl FnOnce(&bindings::Policy, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, HostError> {
        self.call_with(enrollments, Arc::new(Crls::none()), f)
    }

    /// [`Policy::call`] with CRLs for the `revocation` import.
    fn call_with<R>(
        &self,
        enrollments: Arc<dyn EnrollmentSource + Send + Sync>,
        crls: Arc<dyn CrlLookup + Send + Sync>,
        f: impl FnOnce(&bindings::Policy, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, HostError> {
        let state = HostState {
            crypto: Arc::clone(&self.crypto),
            enrollments,
            crls,
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.memory_bytes)
                .instances(self.footprint.core_instances as usize)
                .tables(self.footprint.tables as usize)
                .memories(self.footprint.memories as usize)
                .trap_on_grow_failure(true)
                .build(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        if let Some(fuel) = self.limits.fuel {
            store
                .set_fuel(fuel)
                .map_err(|e| HostError::Config(format!("{e:#}")))?;
        }
        if let Some(deadline) = self.limits.deadline {
            let ticks = deadline.as_millis().div_ceil(EPOCH_TICK.as_millis());
            store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
            store.epoch_deadline_trap();
        }
        let result = self
            .pre
            .instantiate(&mut store)
            .and_then(|policy| f(&policy, &mut store));
        result.map_err(|e| {
            if e.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
                return HostError::Busy(self.limits.max_concurrent_calls);
            }
            match e.downcast_ref::<Trap>() {
                Some(Trap::OutOfFuel) => HostError::FuelExhausted(self.limits.fuel.unwrap_or(0)),
                Some(Trap::Interrupt) => {
                    HostError::Timeout(self.limits.deadline.unwrap_or_default())
                }
                _ => HostError::Trap(format!("{e:#}")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The build embeds code compiled for the default limits and the
    /// CLI's: a service and `host-cli verify` must start without Cranelift
    /// or a cache file. Fails if `engine::PRECOMPILED_SHAPES` drifts from
    /// `Limits::default()` / `Limits::one_shot()`, or the build and the
    /// library configure engines differently.
    #[test]
    fn the_default_limits_load_the_embedded_component() {
        assert_eq!(
            [Limits::default().shape(), Limits::one_shot().shape()],
            engine::PRECOMPILED_SHAPES
        );
        for limits in [Limits::default(), Limits::one_shot()] {
            let policy = Policy::with_options(limits, CacheMode::Disabled).unwrap();
            assert_eq!(policy.component_source(), ComponentSource::Embedded);
            // And it decides: the embedded code is the component's.
            assert!(policy.certificate_keys(b"not DER").unwrap().is_err());
        }
        // Other limits (here: fuel metering compiled in) need other code:
        // compiled at load, never the embedded code of another shape.
        let fuel = Limits {
            fuel: Some(10_000_000),
            ..Limits::one_shot()
        };
        let policy = Policy::with_options(fuel, CacheMode::Disabled).unwrap();
        assert_eq!(policy.component_source(), ComponentSource::Compiled);
        assert!(policy.certificate_keys(b"not DER").unwrap().is_err());
    }

    #[test]
    fn component_is_a_component_not_a_core_module() {
        // Component binaries carry layer 1 in the preamble; core modules layer 0.
        assert_eq!(&COMPONENT[0..4], b"\0asm");
        assert_eq!(&COMPONENT[6..8], &[1, 0], "not a component preamble");
    }

    /// The sandbox property: the component can reach attest's own
    /// interfaces and nothing else (no WASI: no files, clocks, environment,
    /// randomness or network).
    #[test]
    fn component_imports_only_attest_interfaces() {
        let policy = Policy::with_options(Limits::default(), CacheMode::Disabled).unwrap();
        let mut imports = policy.component_imports();
        imports.sort();
        assert_eq!(
            imports,
            [
                "attest:policy/crypto@0.6.0",
                "attest:policy/enrollments@0.6.0",
                "attest:policy/revocation@0.6.0",
                "attest:policy/types@0.6.0",
            ]
        );
        let mut exports = policy.component_exports();
        exports.sort();
        assert_eq!(
            exports,
            [
                "attest:policy/attestation@0.6.0",
                "attest:policy/chain@0.6.0"
            ]
        );
    }

    #[test]
    fn fuel_exhaustion_is_an_error_not_a_crash() {
        let limits = Limits {
            fuel: Some(1_000),
            ..Limits::default()
        };
        let policy = Policy::with_options(limits, CacheMode::Disabled).unwrap();
        let err = policy.challenge_message("device-1", &[0; 32]).unwrap_err();
        assert!(matches!(err, HostError::FuelExhausted(1_000)), "{err}");
        // The policy stays usable after a trapped call.
        let err = policy.challenge_message("device-1", &[0; 32]).unwrap_err();
        assert!(matches!(err, HostError::FuelExhausted(_)));
    }

    #[test]
    fn deadline_is_an_error_not_a_crash() {
        let limits = Limits {
            deadline: Some(Duration::ZERO),
            ..Limits::default()
        };
        let policy = Policy::with_options(limits, CacheMode::Disabled).unwrap();
        let err = policy.challenge_message("device-1", &[0; 32]).unwrap_err();
        assert!(matches!(err, HostError::Timeout(_)), "{err}");
    }

    #[test]
    fn memory_cap_is_an_error_not_a_crash() {
        let limits = Limits {
            memory_bytes: 4 << 20,
            ..Limits::default()
        };
        let policy = Policy::with_options(limits, CacheMode::Disabled).unwrap();
        // Six MiB of input cannot be copied into a four-MiB sandbox.
        let request = ChainRequest {
            leaf: vec![0x30; 6 << 20],
            intermediates: vec![],
            trust_anchors: vec![],
            time: 0,
            purpose: Purpose::Any,
        };
        let err = policy.validate_chain(&request).unwrap_err();
        assert!(matches!(err, HostError::Trap(_)), "{err}");
        // A normal call in a fresh store still works.
        assert!(
            policy
                .challenge_message("device-1", &[0; 32])
                .unwrap()
                .is_ok()
        );
    }

    #[test]
    fn refusals_cross_the_boundary_intact() {
        let policy = Policy::with_options(Limits::default(), CacheMode::Disabled).unwrap();
        let via_component = policy
            .challenge_message("bad id!", &[0; 32])
            .unwrap()
            .unwrap_err();
        let native = policy_core::challenge_message("bad id!", &[0; 32]).unwrap_err();
        assert_eq!(via_component, native);
        assert_eq!(via_component.code, Code::InvalidRegistrationId);
    }
}
