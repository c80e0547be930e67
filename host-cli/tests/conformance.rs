//! The conformance corpus (`tests/support/corpus.rs`) through the
//! `host-cli verify` binary: every case exits 0 (accepted) or 1 (refused)
//! with the expected refusal code in `--json` output and the rule in the
//! human output.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use attest_tests::corpus::{Case, corpus, pem};
use policy_host::Purpose;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn run(case: &Case, dir: &Path, json: bool) -> (i32, String) {
    let chain: String = std::iter::once(&case.leaf)
        .chain(&case.intermediates)
        .map(|d| pem(d))
        .collect();
    let anchors: String = case.anchors.iter().map(|d| pem(d)).collect();
    let chain_path = dir.join(format!("{}.chain.pem", case.id));
    let trust_path = dir.join(format!("{}.trust.pem", case.id));
    std::fs::write(&chain_path, chain).expect("write chain");
    std::fs::write(&trust_path, anchors).expect("write anchors");
    let at = OffsetDateTime::from_unix_timestamp(case.time)
        .expect("time")
        .format(&Rfc3339)
        .expect("format");
    let eku = match case.purpose {
        Purpose::ClientAuth => "clientAuth",
        Purpose::ServerAuth => "serverAuth",
        Purpose::Any => "anyExtendedKeyUsage",
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_host-cli"));
    cmd.arg("verify")
        .arg(&chain_path)
        .arg("--trust")
        .arg(&trust_path)
        .args(["--at", &at, "--eku", eku])
        .env(
            "ATTEST_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("attest-cache"),
        );
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("host-cli runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn every_case_through_host_cli_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let failures = Mutex::new(Vec::new());
    let cases = corpus();
    // Two workers: the CI machine has two cores.
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(case) = cases.get(i) else { break };
                    let (code, stdout) = run(case, dir.path(), true);
                    let value: serde_json::Value = match serde_json::from_str(&stdout) {
                        Ok(v) => v,
                        Err(e) => {
                            failures.lock().unwrap().push(format!(
                                "{}: exit {code}, output is not JSON ({e}): {stdout}",
                                case.id
                            ));
                            continue;
                        }
                    };
                    let got = value["refusal"]["code"].as_str().map(str::to_string);
                    let want = case.expect.map(|c| c.as_str().to_string());
                    let want_exit = if want.is_some() { 1 } else { 0 };
                    if got != want || code != want_exit {
                        failures.lock().unwrap().push(format!(
                            "{}: expected exit {want_exit} {want:?}, got exit {code} {got:?}",
                            case.id
                        ));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn human_output_names_the_rule() {
    let dir = tempfile::tempdir().expect("tempdir");
    for id in [
        "nc-dns-outside-permitted",
        "validity-expired-intermediate",
        "serial-21-octets",
    ] {
        let case = corpus().iter().find(|c| c.id == id).expect("case");
        let (code, stdout) = run(case, dir.path(), false);
        assert_eq!(code, 1, "{id}: {stdout}");
        let expected = case.expect.expect("refusing case").as_str();
        assert!(stdout.contains(expected), "{id}: {stdout}");
        assert!(stdout.contains("RFC 5280 §"), "{id}: {stdout}");
    }
}
