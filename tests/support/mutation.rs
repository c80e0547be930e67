//! The structured mutation corpus: every conformance case mutated many
//! ways (bit flips, byte edits, truncation, insertion, deletion, DER
//! lengths nudged, certificates duplicated, reordered or swapped with the
//! leaf, anchors damaged), from a fixed seed so that every host sees the
//! same inputs and a failure is reproducible.

use crate::Rng;
use crate::corpus::{Case, corpus};
use policy_host::ChainRequest;

/// The seed of the mutation corpus.
pub const SEED: u64 = 0x00f0_22a7_7e57;
/// Mutated inputs per conformance case.
pub const PER_CASE: usize = 12;
/// The registration IDs the mutated inputs claim (exact, other case, other device).
pub const REGISTRATION_IDS: [&str; 3] = ["device-1", "Device-1", "device-2"];

/// One mutated input: the case it came from, the chain request and the
/// registration ID it claims.
#[derive(Clone, Debug)]
pub struct Mutated {
    /// The conformance case mutated.
    pub case: &'static Case,
    /// The mutated request.
    pub request: ChainRequest,
    /// The registration ID claimed for enrollment resolution.
    pub registration_id: &'static str,
}

/// Mutates `der` in one of six ways.
pub fn mutate_bytes(rng: &mut Rng, der: &mut Vec<u8>) {
    if der.is_empty() {
        der.push(0x30);
        return;
    }
    let at = rng.below(der.len());
    match rng.below(6) {
        0 => der[at] ^= 1 << rng.below(8),
        1 => der[at] = rng.next_u64() as u8,
        2 => der.truncate(at),
        3 => der.insert(at, rng.next_u64() as u8),
        4 => {
            der.remove(at);
        }
        // A DER length octet nudged: the structure no longer adds up.
        _ => {
            let len_at = (1..der.len()).find(|&i| der[i - 1] == 0x30).unwrap_or(at);
            der[len_at] = der[len_at].wrapping_add(1);
        }
    }
}

/// The whole mutation corpus, in a fixed order.
pub fn mutated_corpus() -> Vec<Mutated> {
    let mut rng = Rng(SEED);
    let mut out = Vec::new();
    for case in corpus() {
        for _ in 0..PER_CASE {
            let mut req = case.request();
            match rng.below(5) {
                0 | 1 => mutate_bytes(&mut rng, &mut req.leaf),
                2 if !req.intermediates.is_empty() => {
                    let i = rng.below(req.intermediates.len());
                    mutate_bytes(&mut rng, &mut req.intermediates[i]);
                }
                3 if !req.intermediates.is_empty() => {
                    let i = rng.below(req.intermediates.len());
                    let dup = req.intermediates[i].clone();
                    req.intermediates.push(dup);
                    rng.shuffle(&mut req.intermediates);
                }
                4 if !req.intermediates.is_empty() => {
                    let i = rng.below(req.intermediates.len());
                    std::mem::swap(&mut req.leaf, &mut req.intermediates[i]);
                }
                _ => {
                    if let Some(a) = req.trust_anchors.first_mut() {
                        mutate_bytes(&mut rng, a);
                    }
                }
            }
            let registration_id = REGISTRATION_IDS[rng.below(REGISTRATION_IDS.len())];
            out.push(Mutated {
                case,
                request: req,
                registration_id,
            });
        }
    }
    out
}

/// The enrollment set the mutation corpus resolves against for `case`, in
/// DPS JSON: a group on every anchor that loads as one (alternately
/// enabled and disabled); anchors a host would refuse as a group (not a
/// CA, or a CA another group has) are left out, as a host leaves them out.
pub fn enrollments_for(case: &Case) -> serde_json::Value {
    let mut set = attest_dps::EnrollmentSet::default();
    let groups: Vec<serde_json::Value> = case
        .anchors
        .iter()
        .enumerate()
        .map(|(i, anchor)| {
            crate::group_json(&format!("g{i}"), &crate::corpus::pem(anchor), i % 2 == 0)
        })
        .filter(|doc| set.insert_group(doc, &|_| None).is_ok())
        .collect();
    serde_json::json!({ "enrollmentGroups": groups })
}
