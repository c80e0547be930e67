//! The work budget of one validation, in the style of rustls-webpki's
//! `Budget`: one counter per kind of work, one `consume_*` per counter, and
//! messages built from the limits themselves.

use crate::alg::{self, PublicKey};
use crate::error::{Code, Refusal};

/// Signature verification cost per validation, in
/// [`alg::verification_cost`] units: 100 P-256 checks (rustls-webpki's
/// count), and proportionally fewer expensive ones (14 P-521, 26 P-384,
/// 19 RSA-8192), so that no input buys more than about 4 ms of native
/// arithmetic however its keys are chosen. Each (certificate, issuer) pair
/// is verified once per validation, however many paths share it, so the
/// budget counts distinct edges.
pub(crate) const SIGNATURE_COST: usize = 100 * alg::P256_COST;

/// Calls into the recursive path builder: bounds the search over candidates
/// whose signatures are never checked (e.g. many candidates that fail a
/// cheap check first) and the number of paths explored.
pub(crate) const BUILD_CALLS: usize = 2_000;

/// Name-constraint comparisons (one subtree against one name). Real CAs
/// carry tens of subtrees and devices a handful of names, so 50,000 is a
/// hundred times what a legitimate path needs; a hostile pair of 16 KiB
/// certificates (over a thousand subtrees and names each) would otherwise
/// ask for millions. rustls-webpki allows 250,000; at ≈ 60 ns per
/// comparison inside the component that would be 15 ms, so attest keeps the
/// worst case near 3 ms.
pub(crate) const NAME_COMPARISONS: usize = 50_000;

/// What one validation may still spend.
#[derive(Debug)]
pub(crate) struct Budget {
    signature_cost: usize,
    build_calls: usize,
    name_comparisons: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            signature_cost: SIGNATURE_COST,
            build_calls: BUILD_CALLS,
            name_comparisons: NAME_COMPARISONS,
        }
    }
}

impl Budget {
    /// One signature check under `key`, weighed by its cost.
    pub(crate) fn consume_signature(&mut self, key: &PublicKey) -> Result<(), Refusal> {
        spend(
            &mut self.signature_cost,
            alg::verification_cost(key),
            || {
                format!(
                    "signature checks beyond the budget of {} P-256 checks (fewer for costlier keys)",
                    SIGNATURE_COST / alg::P256_COST
                )
            },
        )
    }

    /// One step of the path search.
    pub(crate) fn consume_build_call(&mut self) -> Result<(), Refusal> {
        spend(&mut self.build_calls, 1, || {
            format!("more than {BUILD_CALLS} candidate steps")
        })
    }

    /// One name compared with one subtree.
    pub(crate) fn consume_name_comparison(&mut self) -> Result<(), Refusal> {
        spend(&mut self.name_comparisons, 1, || {
            format!("more than {NAME_COMPARISONS} name-constraint comparisons")
        })
    }

    /// A budget with only `n` name comparisons (for tests of the limit).
    #[cfg(test)]
    pub(crate) fn with_name_comparisons(n: usize) -> Budget {
        Budget {
            name_comparisons: n,
            ..Budget::default()
        }
    }

    /// Name comparisons left.
    #[cfg(test)]
    pub(crate) fn name_comparisons_left(&self) -> usize {
        self.name_comparisons
    }
}

fn spend(left: &mut usize, cost: usize, what: impl FnOnce() -> String) -> Result<(), Refusal> {
    *left = left.checked_sub(cost).ok_or_else(|| {
        Refusal::new(
            Code::PathBudgetExceeded,
            format!("path building stopped: {}", what()),
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_runs_out_with_its_own_message() {
        let mut b = Budget::default();
        for _ in 0..BUILD_CALLS {
            b.consume_build_call().unwrap();
        }
        let r = b.consume_build_call().unwrap_err();
        assert_eq!(r.code, Code::PathBudgetExceeded);
        assert!(r.message.contains("2000 candidate steps"), "{}", r.message);
        let mut b = Budget::with_name_comparisons(1);
        b.consume_name_comparison().unwrap();
        let r = b.consume_name_comparison().unwrap_err();
        assert!(r.message.contains("50000 name-constraint"), "{}", r.message);
    }
}
