//! Fuzz harness for attest's policy core.
//!
//! One input is a whole request: flags, a time offset and a list of DER
//! certificates (leaf, intermediates, trust anchors). It runs through
//! `validate_chain`, `resolve` and `attest` natively; with the `component`
//! feature, also through the policy component, which must give the same
//! answers. Signature arithmetic is a deterministic stand-in
//! ([`FuzzVerifier`]) so the fuzzer can reach everything that follows a
//! signature check.
//!
//! Input format (`attest-tests`' `fuzz-seeds` example writes the
//! conformance corpus in it):
//!
//! ```text
//! byte 0      flags: bits 0-1 purpose (0 clientAuth, 1 serverAuth, 2-3 any)
//!                    bits 2-3 number of trust anchors - 1
//!                    bit 4    groups enabled (else disabled)
//!                    bit 5    the first anchor is a verified CA without a group
//!                    bit 6    an individual enrollment holds the leaf
//!                    bit 7    the element after the leaf is a CRL: the
//!                             chain is also validated with revocation
//!                             checking against it
//! bytes 1-2   validation time: signed days from 2026-06-01, big-endian
//! then        certificates, each a 2-byte big-endian length and the DER:
//!             the leaf, [the CRL,] the intermediates, then the trust anchors
//! ```

use std::collections::HashMap;

use policy_core::{
    AttestRequest, ChainRequest, EnrollmentGroup, EnrollmentSource, IndividualEnrollment, Proof,
    Purpose, SignatureAlgorithm, SignatureVerifier,
};

/// 2026-06-01T00:00:00Z, the conformance corpus's validation time.
pub const BASE_TIME: i64 = 1_780_272_000;

/// Signature arithmetic for fuzzing: a signature is valid when its first
/// byte is even. Deterministic, identical natively and in the component,
/// and lets the fuzzer steer every check.
#[derive(Clone, Copy, Debug, Default)]
pub struct FuzzVerifier;

impl SignatureVerifier for FuzzVerifier {
    fn verify_signature(&self, _: SignatureAlgorithm, _: &[u8], _: &[u8], sig: &[u8]) -> bool {
        sig.first().is_some_and(|b| b % 2 == 0)
    }
}

/// A decoded fuzz input.
#[derive(Debug)]
pub struct Input {
    /// Required purpose.
    pub purpose: Purpose,
    /// Validation time.
    pub time: i64,
    /// Leaf DER.
    pub leaf: Vec<u8>,
    /// Intermediates DER.
    pub intermediates: Vec<Vec<u8>>,
    /// Anchors DER.
    pub anchors: Vec<Vec<u8>>,
    /// Groups enabled.
    pub enabled: bool,
    /// First anchor verified only.
    pub first_verified_only: bool,
    /// Individual enrollment for the leaf.
    pub individual: bool,
    /// A CRL to check revocation against (flag bit 7).
    pub crl: Option<Vec<u8>>,
}

impl Input {
    /// Decodes `data`; `None` when it holds no leaf.
    pub fn decode(data: &[u8]) -> Option<Input> {
        let (&flags, rest) = data.split_first()?;
        let (days, mut rest) = rest.split_at_checked(2)?;
        let days = i16::from_be_bytes([days[0], days[1]]);
        let mut certs = Vec::new();
        while let Some((len, tail)) = rest.split_at_checked(2) {
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            let take = len.min(tail.len());
            certs.push(tail[..take].to_vec());
            rest = &tail[take..];
        }
        if certs.is_empty() {
            return None;
        }
        let leaf = certs.remove(0);
        let crl = (flags & 0x80 != 0 && !certs.is_empty()).then(|| certs.remove(0));
        let anchors_wanted = usize::from((flags >> 2) & 3) + 1;
        let split = certs.len().saturating_sub(anchors_wanted);
        let anchors = certs.split_off(split);
        Some(Input {
            purpose: match flags & 3 {
                0 => Purpose::ClientAuth,
                1 => Purpose::ServerAuth,
                _ => Purpose::Any,
            },
            time: BASE_TIME + i64::from(days) * 86_400,
            leaf,
            intermediates: certs,
            anchors,
            enabled: flags & 0x10 != 0,
            first_verified_only: flags & 0x20 != 0,
            individual: flags & 0x40 != 0,
            crl,
        })
    }
}

/// An in-memory enrollment store over the input's anchors, indexed the
/// way hosts index theirs.
#[derive(Debug, Default)]
pub struct Store {
    groups: HashMap<[u8; 32], EnrollmentGroup>,
    anchors: HashMap<[u8; 32], Vec<Vec<u8>>>,
    individual: Option<IndividualEnrollment>,
}

impl Store {
    /// The store an input describes.
    pub fn of(input: &Input, registration_id: &str) -> Store {
        let mut store = Store::default();
        for (i, der) in input.anchors.iter().enumerate() {
            // A host refuses to store what does not parse.
            let Ok(keys) = policy_core::certificate_keys(der) else {
                continue;
            };
            store
                .anchors
                .entry(keys.subject_key)
                .or_default()
                .push(der.clone());
            if !(i == 0 && input.first_verified_only) {
                store
                    .groups
                    .entry(keys.ca_identity)
                    .or_insert(EnrollmentGroup {
                        group_id: format!("group-{i}"),
                        enabled: input.enabled,
                    });
            }
        }
        if input.individual
            && let Ok(keys) = policy_core::certificate_keys(&input.leaf)
        {
            store.individual = Some(IndividualEnrollment {
                registration_id: registration_id.to_string(),
                device_id: None,
                enabled: input.enabled,
                certificates: vec![keys.sha256],
            });
        }
        store
    }
}

impl EnrollmentSource for Store {
    fn individual(&self, registration_id: &str) -> Option<IndividualEnrollment> {
        self.individual
            .clone()
            .filter(|e| e.registration_id.eq_ignore_ascii_case(registration_id))
    }
    fn group(&self, ca_identity: &[u8; 32]) -> Option<EnrollmentGroup> {
        self.groups.get(ca_identity).cloned()
    }
    fn trust_anchors(&self, subject_key: &[u8; 32]) -> Vec<Vec<u8>> {
        self.anchors.get(subject_key).cloned().unwrap_or_default()
    }
}

/// The fuzz target: every entry point of the core on one input.
pub fn chain(data: &[u8]) {
    let Some(input) = Input::decode(data) else {
        return;
    };
    let registration_id = match policy_core::certificate_common_name(&input.leaf) {
        Ok(Some(cn)) => cn,
        _ => "device-1".to_string(),
    };
    let chain = ChainRequest {
        leaf: input.leaf.clone(),
        intermediates: input.intermediates.clone(),
        trust_anchors: input.anchors.clone(),
        time: input.time,
        purpose: input.purpose,
    };
    let request = AttestRequest {
        registration_id: registration_id.clone(),
        leaf: input.leaf.clone(),
        intermediates: input.intermediates.clone(),
        time: input.time,
        purpose: input.purpose,
    };
    let proof = Proof::ChallengeSignature {
        challenge: vec![0x5a; 16],
        signature: vec![0x30, 1, 2],
    };
    let store = Store::of(&input, &registration_id);
    let validated = policy_core::validate_chain(&chain, &FuzzVerifier);
    let resolved = policy_core::resolve(&request, &FuzzVerifier, &store);
    let attested = policy_core::attest(&request, &proof, &FuzzVerifier, &store);
    let keys = policy_core::certificate_keys(&input.leaf);
    // A decision names the entry it came from; a refusal its reason. An
    // admission by `attest` must also be one by `resolve`.
    if let Ok(d) = &attested {
        assert_eq!(
            resolved.as_ref().ok(),
            Some(d),
            "attest admitted what resolve refused"
        );
    }
    // Revocation checking never widens: whatever it admits, plain
    // validation admits too.
    let revocation = input.crl.as_ref().and_then(|crl| {
        let set = policy_core::CrlSet::parse(std::slice::from_ref(crl)).ok()?;
        let checked = policy_core::validate_chain_revocation(
            &chain,
            &set,
            policy_core::RevocationPolicy::CHAIN,
            &FuzzVerifier,
        );
        if checked.is_ok() {
            assert!(
                validated.is_ok(),
                "revocation checking admitted what validation refused"
            );
        }
        Some((crl.clone(), checked))
    });
    #[cfg(feature = "component")]
    if let Some((crl, checked)) = &revocation {
        component::compare_revocation(&chain, crl, checked);
    }
    #[cfg(not(feature = "component"))]
    let _ = revocation;
    #[cfg(feature = "component")]
    component::compare(
        &chain,
        &request,
        &proof,
        store,
        (validated, resolved, attested, keys),
    );
    #[cfg(not(feature = "component"))]
    let _ = (validated, keys);
}

#[cfg(feature = "component")]
mod component {
    use std::sync::{Arc, OnceLock};

    use policy_core::{
        AttestRequest, CertificateInfo, CertificateKeys, ChainRequest, Decision, Proof, Refusal,
    };
    use policy_host::{CacheMode, Limits, Policy};

    use crate::{FuzzVerifier, Store};

    fn policy() -> &'static Policy {
        static POLICY: OnceLock<Policy> = OnceLock::new();
        POLICY.get_or_init(|| {
            Policy::with_verifier(
                Limits::default(),
                CacheMode::Default,
                Arc::new(FuzzVerifier),
            )
            .expect("the policy component loads")
        })
    }

    type Native = (
        Result<Vec<CertificateInfo>, Refusal>,
        Result<Decision, Refusal>,
        Result<Decision, Refusal>,
        Result<CertificateKeys, Refusal>,
    );

    /// The component's revocation check must equal the native core's.
    pub(crate) fn compare_revocation(
        chain: &ChainRequest,
        crl: &[u8],
        native: &Result<policy_core::Validated, Refusal>,
    ) {
        let crls = policy_host::Crls::from_der(&[crl.to_vec()]).expect("the core parsed it");
        assert_eq!(
            &policy()
                .validate_chain_revocation(
                    chain,
                    Arc::new(crls),
                    policy_core::RevocationPolicy::CHAIN
                )
                .expect("component call"),
            native,
            "validate with revocation"
        );
    }

    /// The component's answers must equal the native core's.
    pub(crate) fn compare(
        chain: &ChainRequest,
        request: &AttestRequest,
        proof: &Proof,
        store: Store,
        native: Native,
    ) {
        let p = policy();
        let store = Arc::new(store);
        assert_eq!(
            p.validate_chain(chain).expect("component call"),
            native.0,
            "validate"
        );
        assert_eq!(
            p.resolve(request, store.clone()).expect("component call"),
            native.1,
            "resolve"
        );
        assert_eq!(
            p.attest(request, proof, store).expect("component call"),
            native.2,
            "attest"
        );
        assert_eq!(
            p.certificate_keys(&request.leaf).expect("component call"),
            native.3,
            "keys"
        );
    }
}
