//! A structured mutation harness, differential: every conformance case,
//! mutated many ways (`support/mutation.rs`: bit flips, byte edits,
//! truncation, insertion, deletion, certificates dropped, duplicated,
//! reordered or swapped with the leaf), runs through path validation and
//! enrollment resolution in the native core and the component. They must
//! agree on every input, and nothing may panic or trap. The same inputs
//! run through the Node.js and Python hosts (`host-cli/tests/hosts.rs`).
//! The coverage-guided fuzzer (`fuzz/run.sh`) explores further; this runs
//! in every test run with a fixed seed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use std::collections::HashMap;
use std::sync::Arc;

use attest_dps::EnrollmentSet;
use attest_tests::mutation::{enrollments_for, mutated_corpus};
use attest_tests::{resolve, validate_chain};
use policy_host::AttestRequest;

#[test]
fn mutated_corpus_cases_get_the_same_verdict_natively_and_in_the_component() {
    let mut sets: HashMap<&str, Arc<EnrollmentSet>> = HashMap::new();
    let mut inputs = 0;
    for m in mutated_corpus() {
        // Groups on every anchor that a host would store.
        let set = sets
            .entry(m.case.id.as_str())
            .or_insert_with(|| {
                Arc::new(
                    EnrollmentSet::from_json(&enrollments_for(m.case).to_string())
                        .expect("the unmutated anchors load as groups"),
                )
            })
            .clone();
        // Both harness calls assert that native core and component agree.
        let _ = validate_chain(&m.request);
        let attest_req = AttestRequest {
            registration_id: m.registration_id.to_string(),
            leaf: m.request.leaf,
            intermediates: m.request.intermediates,
            time: m.request.time,
            purpose: m.request.purpose,
        };
        let _ = resolve(&attest_req, &set);
        inputs += 1;
    }
    assert!(inputs > 1500, "{inputs} mutated inputs");
}
