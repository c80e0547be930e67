//! The conformance corpus (`support/corpus.rs`) through the native core and
//! the component (which must agree), and through `openssl verify
//! -x509_strict`, whose disagreements must be exactly the cases listed in
//! `docs/conformance.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use attest_tests::corpus::{Case, corpus, pem, sections};
use attest_tests::validate_chain;
use policy_host::{Code, Purpose};

/// Codes of path-validation refusals, whose messages must cite the rule.
fn cites_a_rule(code: Code) -> bool {
    !matches!(code, Code::PathBudgetExceeded | Code::InputTooLarge)
}

#[test]
fn every_case_gives_its_verdict_in_both_engines() {
    let mut failures = Vec::new();
    for case in corpus() {
        // validate_chain asserts that native core and component agree.
        let verdict = validate_chain(&case.request());
        let got = verdict.as_ref().err().map(|r| r.code);
        if got != case.expect {
            failures.push(format!(
                "{} (§{}, {}): expected {}, got {}",
                case.id,
                case.section,
                case.rule,
                case.expect.map_or("accept".into(), |c| c.to_string()),
                match &verdict {
                    Ok(_) => "accept".to_string(),
                    Err(r) => format!("{} ({})", r.code, r.message),
                }
            ));
            continue;
        }
        if let Err(r) = &verdict
            && cites_a_rule(r.code)
            && !r.message.contains("RFC ")
        {
            failures.push(format!(
                "{}: the message does not name its RFC rule: {}",
                case.id, r.message
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_section_has_an_accepting_and_a_refusing_case() {
    for section in sections() {
        let cases: Vec<&Case> = corpus().iter().filter(|c| c.section == section).collect();
        assert!(
            cases.iter().any(|c| c.expect.is_none()),
            "§{section} has no accepting case"
        );
        assert!(
            cases.iter().any(|c| c.expect.is_some()),
            "§{section} has no refusing case"
        );
    }
    // Every refusal code of path validation is exercised: all codes but
    // those of enrollment resolution and proof of possession.
    let exercised: BTreeSet<Code> = corpus().iter().filter_map(|c| c.expect).collect();
    let resolution = [
        Code::InputTooLarge,
        Code::InvalidRegistrationId,
        Code::RegistrationIdMismatch,
        Code::IndividualCertificateMismatch,
        Code::IndividualEnrollmentDisabled,
        Code::EnrollmentGroupDisabled,
        Code::NoEnrollment,
        Code::InvalidProof,
        Code::ProofOfPossessionFailed,
        Code::UnsupportedSignatureScheme,
        Code::VerificationCodeMismatch,
        Code::AmbiguousCommonName,
        // An edge replica's, never path validation's (service/tests/snapshot.rs).
        Code::EnrollmentsStale,
        // Revocation's, exercised by the NIST PKITS suite (tests/pkits.rs).
        Code::CertificateRevoked,
        Code::RevocationStatusUnknown,
        Code::CrlExpired,
    ];
    for code in Code::ALL.iter().filter(|c| !resolution.contains(c)) {
        assert!(
            exercised.contains(code),
            "no corpus case refuses with {code}"
        );
    }
}

/// What `openssl verify -x509_strict -partial_chain` says about a case:
/// `Ok(())` accepted, `Err(line)` refused with OpenSSL's error line.
fn openssl_verdict(case: &Case, dir: &Path) -> Result<(), String> {
    let write = |name: &str, ders: &[Vec<u8>]| {
        let path = dir.join(name);
        let text: String = ders.iter().map(|d| pem(d)).collect();
        std::fs::write(&path, text).expect("write PEM");
        path
    };
    let leaf = write("leaf.pem", std::slice::from_ref(&case.leaf));
    let anchors = write("anchors.pem", &case.anchors);
    let mut cmd = Command::new("openssl");
    cmd.args(["verify", "-x509_strict", "-partial_chain", "-attime"])
        .arg(case.time.to_string())
        .arg("-CAfile")
        .arg(&anchors);
    if !case.intermediates.is_empty() {
        cmd.arg("-untrusted")
            .arg(write("untrusted.pem", &case.intermediates));
    }
    match case.purpose {
        Purpose::ClientAuth => {
            cmd.args(["-purpose", "sslclient"]);
        }
        Purpose::ServerAuth => {
            cmd.args(["-purpose", "sslserver"]);
        }
        Purpose::Any => {}
    }
    let out = cmd.arg(&leaf).output().expect(
        "the openssl command runs (the conformance comparison needs the openssl CLI on PATH)",
    );
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(())
    } else {
        Err(text
            .lines()
            .find(|l| l.contains("error"))
            .unwrap_or(text.trim())
            .to_string())
    }
}

/// Case IDs listed in the "Differences from OpenSSL" table of
/// docs/conformance.md: rows whose first cell is a `code` span.
fn documented_differences() -> BTreeSet<String> {
    let doc = include_str!("../docs/conformance.md");
    let section = doc
        .split("## Differences from OpenSSL")
        .nth(1)
        .expect("docs/conformance.md has a 'Differences from OpenSSL' section");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn openssl_agrees_except_where_documented() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut differ = BTreeSet::new();
    let mut report = Vec::new();
    for case in corpus() {
        let openssl = openssl_verdict(case, dir.path());
        if openssl.is_ok() != case.expect.is_none() {
            differ.insert(case.id.clone());
            report.push(format!(
                "{}: attest {}, openssl {}",
                case.id,
                case.expect
                    .map_or("accepts".into(), |c| format!("refuses ({c})")),
                match &openssl {
                    Ok(()) => "accepts".to_string(),
                    Err(e) => format!("refuses ({e})"),
                }
            ));
        }
    }
    let documented = documented_differences();
    let undocumented: Vec<_> = differ.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&differ).collect();
    assert!(
        undocumented.is_empty() && stale.is_empty(),
        "docs/conformance.md is out of date.\nUndocumented differences: {undocumented:?}\nListed but not different: {stale:?}\nAll differences:\n{}",
        report.join("\n")
    );
}

#[test]
fn docs_list_every_case() {
    let doc = include_str!("../docs/conformance.md");
    let missing: Vec<&str> = corpus()
        .iter()
        .map(|c| c.id.as_str())
        .filter(|id| !doc.contains(&format!("`{id}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/conformance.md does not list {missing:?}; regenerate the tables with \
         `cargo test -p attest-tests --test conformance -- --ignored corpus_tables --nocapture`"
    );
}

/// Prints the per-section tables of docs/conformance.md.
#[test]
#[ignore = "prints documentation tables; run by hand"]
fn corpus_tables() {
    for section in sections() {
        println!("\n### RFC 5280 §{section}\n");
        println!("| case | rule | attest |");
        println!("|---|---|---|");
        for case in corpus().iter().filter(|c| c.section == section) {
            println!(
                "| `{}` | {} | {} |",
                case.id,
                case.rule,
                case.expect
                    .map_or("accept".to_string(), |c| format!("refuse `{c}`"))
            );
        }
    }
}
