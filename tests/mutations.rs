//! A structured mutation harness, differential: every conformance case,
//! mutated many ways (bit flips, byte edits, truncation, insertion,
//! deletion, certificates dropped, duplicated, reordered or swapped with
//! the leaf), runs through path validation and enrollment resolution in
//! the native core and the component. They must agree on every input, and
//! nothing may panic or trap. The coverage-guided fuzzer (`fuzz/run.sh`)
//! explores further; this runs in every test run with a fixed seed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use std::sync::Arc;

use attest_dps::EnrollmentSet;
use attest_tests::corpus::corpus;
use attest_tests::{Rng, resolve, validate_chain};
use policy_host::AttestRequest;

fn mutate_bytes(rng: &mut Rng, der: &mut Vec<u8>) {
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

#[test]
fn mutated_corpus_cases_get_the_same_verdict_natively_and_in_the_component() {
    let mut rng = Rng(0x00f0_22a7_7e57);
    let mut inputs = 0;
    for case in corpus() {
        // Groups on every anchor that a host would store.
        let mut set = EnrollmentSet::default();
        for (i, anchor) in case.anchors.iter().enumerate() {
            let doc = attest_tests::group_json(
                &format!("g{i}"),
                &attest_tests::corpus::pem(anchor),
                i % 2 == 0,
            );
            let _ = set.insert_group(&doc, &|_| None);
        }
        let set = Arc::new(set);
        for _ in 0..12 {
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
            // Both harness calls assert that native core and component agree.
            let _ = validate_chain(&req);
            let ids = ["device-1", "Device-1", "device-2"];
            let attest_req = AttestRequest {
                registration_id: ids[rng.below(ids.len())].to_string(),
                leaf: req.leaf,
                intermediates: req.intermediates,
                time: req.time,
                purpose: req.purpose,
            };
            let _ = resolve(&attest_req, &set);
            inputs += 1;
        }
    }
    assert!(inputs > 1500, "{inputs} mutated inputs");
}
