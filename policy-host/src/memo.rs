//! A bounded memo of positive signature checks, for hosts that see the same
//! CA-to-CA links over and over (a provisioning service: every device of a
//! line is issued by the same intermediate, which the same root signed).
//!
//! `verify-signature` is a pure function of (algorithm, public key,
//! message, signature), so a host may remember that it answered yes: the
//! memo keys each answer by a SHA-256 over all four, length-prefixed under
//! a domain tag, and keeps the most recently used [`SignatureMemo::new`]
//! entries. Only positive answers are kept (a refusal is always
//! recomputed, so a memo never turns a no into a yes it did not see), and
//! nothing leaves the host process: the component stays stateless, and the
//! memo is exactly as trusted as the memory of the process that holds it.
//! A device's own leaf and proof are new on every registration and are
//! checked in full each time.

use std::sync::Mutex;

use lru::LruCache;
use policy_core::{SignatureAlgorithm, SignatureVerifier};
use sha2::{Digest, Sha256};

/// Remembers the positive answers of another [`SignatureVerifier`].
pub struct SignatureMemo<V> {
    inner: V,
    seen: Mutex<LruCache<[u8; 32], ()>>,
}

impl<V> std::fmt::Debug for SignatureMemo<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("SignatureMemo")
            .field("entries", &seen.len())
            .field("capacity", &seen.cap())
            .finish_non_exhaustive()
    }
}

impl<V: SignatureVerifier> SignatureMemo<V> {
    /// A memo of at most `capacity` positive answers of `inner` (at least one).
    pub fn new(inner: V, capacity: usize) -> SignatureMemo<V> {
        let capacity = std::num::NonZeroUsize::new(capacity).unwrap_or(std::num::NonZeroUsize::MIN);
        SignatureMemo {
            inner,
            seen: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Positive answers remembered now.
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The memo key: every input, unambiguously (lengths before bytes).
fn key(
    algorithm: SignatureAlgorithm,
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"attest signature memo v1\0");
    h.update(algorithm.as_str().as_bytes());
    h.update([0]);
    for part in [public_key, message, signature] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

impl<V: SignatureVerifier> SignatureVerifier for SignatureMemo<V> {
    fn verify_signature(
        &self,
        algorithm: SignatureAlgorithm,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        let key = key(algorithm, public_key, message, signature);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.get(&key).is_some() {
            return true;
        }
        drop(seen);
        let valid = self
            .inner
            .verify_signature(algorithm, public_key, message, signature);
        if valid {
            self.seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .put(key, ());
        }
        valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Says yes to a signature equal to the message, and counts its calls.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl SignatureVerifier for Counting {
        fn verify_signature(
            &self,
            _: SignatureAlgorithm,
            _: &[u8],
            message: &[u8],
            signature: &[u8],
        ) -> bool {
            self.0.fetch_add(1, Ordering::Relaxed);
            message == signature
        }
    }

    const ALG: SignatureAlgorithm = SignatureAlgorithm::EcdsaP256Sha256;

    #[test]
    fn remembers_yes_and_never_no() {
        let memo = SignatureMemo::new(Counting::default(), 8);
        assert!(memo.verify_signature(ALG, b"k", b"m", b"m"));
        assert!(memo.verify_signature(ALG, b"k", b"m", b"m"));
        assert_eq!(
            memo.inner.0.load(Ordering::Relaxed),
            1,
            "a yes is remembered"
        );
        assert!(!memo.verify_signature(ALG, b"k", b"m", b"x"));
        assert!(!memo.verify_signature(ALG, b"k", b"m", b"x"));
        assert_eq!(
            memo.inner.0.load(Ordering::Relaxed),
            3,
            "a no is recomputed"
        );
        assert_eq!(memo.len(), 1);
    }

    /// Every input is part of the key, and moving bytes between inputs
    /// makes another key: a remembered yes answers for exactly its inputs.
    #[test]
    fn a_yes_answers_only_for_its_own_inputs() {
        let base = key(ALG, b"key", b"message", b"sig");
        for other in [
            key(
                SignatureAlgorithm::EcdsaP256Sha384,
                b"key",
                b"message",
                b"sig",
            ),
            key(ALG, b"kex", b"message", b"sig"),
            key(ALG, b"key", b"messagf", b"sig"),
            key(ALG, b"key", b"message", b"sih"),
            key(ALG, b"keym", b"essage", b"sig"),
            key(ALG, b"key", b"messages", b"ig"),
            key(ALG, b"", b"keymessage", b"sig"),
        ] {
            assert_ne!(base, other);
        }
        let memo = SignatureMemo::new(Counting::default(), 8);
        assert!(memo.verify_signature(ALG, b"k", b"m", b"m"));
        // Same message and signature under another key or algorithm: asked again.
        assert!(memo.verify_signature(ALG, b"j", b"m", b"m"));
        assert!(memo.verify_signature(SignatureAlgorithm::Ed25519, b"k", b"m", b"m"));
        assert_eq!(memo.inner.0.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn holds_at_most_its_capacity() {
        let memo = SignatureMemo::new(Counting::default(), 2);
        for m in [b"a", b"b", b"c"] {
            assert!(memo.verify_signature(ALG, b"k", m, m));
        }
        assert_eq!(memo.len(), 2);
        // The least recently used went: asking for it runs the check again.
        assert!(memo.verify_signature(ALG, b"k", b"a", b"a"));
        assert_eq!(memo.inner.0.load(Ordering::Relaxed), 4);
        let zero = SignatureMemo::new(Counting::default(), 0);
        assert!(zero.verify_signature(ALG, b"k", b"a", b"a"));
        assert_eq!(zero.len(), 1, "a capacity of 0 is taken as 1");
    }
}
