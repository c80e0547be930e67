//! The `attest:policy/revocation` import: the CRLs a host holds, handed to
//! the component by issuer name key. The component selects, verifies and
//! scopes them itself (RFC 5280 §6.3); the host only checks at load that
//! each CRL parses and fits the limits, and indexes it by its issuer.

use std::collections::HashMap;
use std::sync::Arc;

use crate::HostState;
use crate::bindings::attest::policy::revocation;

/// Where the `revocation` import finds CRLs: [`Crls`] (held in memory), or
/// an embedder's own store (the service reads its CRL table in the
/// decision's snapshot).
pub trait CrlLookup {
    /// Every CRL (DER) whose issuer name has this name key.
    fn crls(&self, issuer_key: &[u8; 32]) -> Vec<Vec<u8>>;
}

/// The CRLs one validation may use, by issuer name key.
#[derive(Clone, Debug, Default)]
pub struct Crls {
    by_issuer: HashMap<[u8; 32], Vec<Arc<Vec<u8>>>>,
    count: usize,
}

impl Crls {
    /// No CRLs: with revocation checking on, every status is UNDETERMINED.
    pub fn none() -> Crls {
        Crls::default()
    }

    /// Indexes DER CRLs. A CRL that does not parse, is too large, or is one
    /// too many from its issuer is an error naming it; duplicates count once.
    pub fn from_der(crls: &[Vec<u8>]) -> Result<Crls, String> {
        // The same checks and limits the component applies, in one parse.
        let set = policy_core::CrlSet::parse(crls)?;
        let mut out = Crls::default();
        for (der, key) in crls.iter().zip(set.issuer_keys()) {
            let same = out.by_issuer.entry(*key).or_default();
            if !same.iter().any(|d| d.as_slice() == der.as_slice()) {
                same.push(Arc::new(der.clone()));
                out.count += 1;
            }
        }
        Ok(out)
    }

    /// How many distinct CRLs are held.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl CrlLookup for Crls {
    fn crls(&self, issuer_key: &[u8; 32]) -> Vec<Vec<u8>> {
        self.by_issuer
            .get(issuer_key)
            .map(|v| v.iter().map(|d| d.as_ref().clone()).collect())
            .unwrap_or_default()
    }
}

impl revocation::Host for HostState {
    fn crls(&mut self, issuer: Vec<u8>) -> Vec<Vec<u8>> {
        let Ok(key) = <[u8; 32]>::try_from(issuer.as_slice()) else {
            return Vec::new();
        };
        self.crls.crls(&key)
    }
}
