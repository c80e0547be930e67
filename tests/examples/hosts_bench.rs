//! Decisions per second through each host of the same component, side by
//! side on one machine: the Rust component host (policy-host, default
//! limits), host-js (Node.js, jco) and host-py (Python, wasmtime-py), on
//! the criterion bench's inputs (tests/benches/attest.rs: P-256 chains of
//! 3 and 4 certificates, an RSA-2048 chain of 3; full attestation with a
//! challenge proof against a group on the root).
//!
//! ```sh
//! cargo build --release -p host-cli   # host-js and host-py take the component from it
//! npm --prefix host-js ci && ATTEST_HOST_CLI=target/release/host-cli npm --prefix host-js run build
//! python3 -m venv host-py/.venv && ATTEST_HOST_CLI=$PWD/target/release/host-cli host-py/.venv/bin/pip install ./host-py
//! cargo run --release -p attest-tests --example hosts-bench [SECONDS_PER_ROUND]
//! ```
//!
//! Prints a table of median decisions/s over five interleaved rounds and
//! each host's ratio to the Rust component host.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // an example fails by panicking

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use attest_tests::pki::KeyAlg;
use attest_tests::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use policy_host::Proof;
use serde_json::{Value, json};

const ROUNDS: usize = 5;

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .map_or(2.0, |s| s.parse().expect("seconds per round"));
    let root_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut inputs = Vec::new();
    for (name, alg, depth) in [
        ("p256-3cert", KeyAlg::P256, 1),
        ("p256-4cert", KeyAlg::P256, 2),
        ("rsa2048-3cert", KeyAlg::Rsa2048, 1),
    ] {
        let BenchChain {
            root,
            intermediates: chain,
            device,
        } = bench_chain(alg, depth);
        let enrollments = json!({"enrollmentGroups": [group_json("bench", &root.pem, true)]});
        let Proof::ChallengeSignature {
            challenge,
            signature,
        } = challenge_proof("bench-device", &device.key)
        else {
            unreachable!()
        };
        let intermediates: Vec<Vec<u8>> = chain.iter().rev().map(|c| c.der.clone()).collect();
        inputs.push((
            name,
            device.der,
            intermediates,
            enrollments,
            challenge,
            signature,
        ));
    }

    // The inputs, for the other hosts' bench scripts.
    let file = tempfile::NamedTempFile::new().unwrap();
    let doc: Vec<Value> = inputs
        .iter()
        .map(|(name, leaf, inter, set, challenge, signature)| {
            json!({"name": name, "leaf": STANDARD.encode(leaf),
                "intermediates": inter.iter().map(|d| STANDARD.encode(d)).collect::<Vec<_>>(),
                "enrollments": set.to_string(), "challenge": STANDARD.encode(challenge),
                "signature": STANDARD.encode(signature), "time": VALIDATION_TIME})
        })
        .collect();
    std::fs::write(file.path(), serde_json::to_string(&doc).unwrap()).unwrap();

    let policy = policy();
    let rust = |round_seconds: f64| -> Vec<f64> {
        inputs
            .iter()
            .map(|(_, leaf, inter, set, challenge, signature)| {
                let set = enrollments(set);
                let inter: Vec<&[u8]> = inter.iter().map(Vec::as_slice).collect();
                let req = request("bench-device", leaf, &inter);
                let proof = Proof::ChallengeSignature {
                    challenge: challenge.clone(),
                    signature: signature.clone(),
                };
                assert!(policy.attest(&req, &proof, set.clone()).unwrap().is_ok());
                let deadline = Instant::now() + Duration::from_secs_f64(round_seconds);
                let started = Instant::now();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    black_box(policy.attest(&req, &proof, set.clone()).unwrap().unwrap());
                    n += 1;
                }
                n as f64 / started.elapsed().as_secs_f64()
            })
            .collect()
    };
    let external = |program: &Path, script: &Path| -> Vec<f64> {
        let out = Command::new(program)
            .arg(script)
            .arg(file.path())
            .arg(seconds.to_string())
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
        assert!(
            out.status.success(),
            "{}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let rates: Vec<f64> =
            serde_json::from_slice(&out.stdout).expect("a JSON list of decisions/s");
        rates
    };
    let python = root_dir.join("host-py/.venv/bin/python");
    let mut samples: Vec<[Vec<f64>; 3]> = Vec::new();
    for round in 0..ROUNDS {
        eprintln!("round {}/{ROUNDS}", round + 1);
        samples.push([
            rust(seconds),
            external(
                Path::new("node"),
                &root_dir.join("host-js/scripts/bench.mjs"),
            ),
            external(&python, &root_dir.join("host-py/scripts/bench.py")),
        ]);
    }
    let median = |host: usize, input: usize| -> f64 {
        let mut v: Vec<f64> = samples.iter().map(|s| s[host][input]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "| input | Rust component host | Node.js (jco) | Python (wasmtime-py) | Node.js / Rust | Python / Rust |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (i, (name, ..)) in inputs.iter().enumerate() {
        let (r, n, p) = (median(0, i), median(1, i), median(2, i));
        println!(
            "| {name} | {r:.0} /s | {n:.0} /s | {p:.0} /s | {:.2} | {:.2} |",
            n / r,
            p / r
        );
    }
}
