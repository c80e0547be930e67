//! `host-cli verify --crl`: the contract of the flags, a revoked device
//! refused (exit 1) while its sibling is accepted (exit 0), lenience, bad
//! CRL input (exit 2, one line), enrollment decisions under each entry's
//! revocationPolicy (`--enrollments --crl`), and the NIST PKITS revocation cases through
//! the binary, which must give the native core's verdict and code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use std::path::Path;

use attest_pki::{Canonical, KeyAlg, Validity};
use attest_tests::pkits::{Pkits, REVOCATION_CASES, TIME};
use attest_tests::{pem_block, serial};
use time::OffsetDateTime;
use time::macros::datetime;

const AT: &str = "2026-06-01T00:00:00Z";

mod common;
use common::host_cli;

fn t(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
}

#[test]
fn a_revoked_device_is_refused_and_its_sibling_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    let ca = Validity {
        not_before: datetime!(2025-01-01 00:00 UTC),
        not_after: datetime!(2035-01-01 00:00 UTC),
    };
    let dev = Validity {
        not_before: datetime!(2025-06-01 00:00 UTC),
        not_after: datetime!(2028-06-01 00:00 UTC),
    };
    let pki = Canonical::generate(KeyAlg::P256, ca, dev).unwrap();
    // device-1 and device-2 are issued by line A.
    let line_a = pki.issuer_of(1);
    assert!(std::ptr::eq(line_a, pki.issuer_of(2)));
    let revoked = serial(&pki.devices[0].der);
    let line_crl = line_a
        .crl(
            &[(revoked, t("2026-05-01T00:00:00Z"))],
            t("2026-05-30T00:00:00Z"),
            t("2026-06-06T00:00:00Z"),
            12,
        )
        .unwrap();
    let root_crl = pki
        .root
        .crl(&[], t("2026-05-30T00:00:00Z"), t("2026-07-01T00:00:00Z"), 3)
        .unwrap();
    std::fs::write(p("root.pem"), &pki.root.pem).unwrap();
    std::fs::write(p("device-1.pem"), pki.chain_pem(1)).unwrap();
    std::fs::write(p("device-2.pem"), pki.chain_pem(2)).unwrap();
    // One file of PEM CRLs, one DER CRL.
    std::fs::write(p("line.crl.pem"), pem_block("X509 CRL", &line_crl)).unwrap();
    std::fs::write(p("root.crl"), &root_crl).unwrap();
    let verify = |device: &str, extra: &[&str]| {
        let (chain, root) = (p(device), p("root.pem"));
        let mut args = vec![
            "verify",
            chain.as_str(),
            "--trust",
            root.as_str(),
            "--at",
            AT,
        ];
        args.extend_from_slice(extra);
        host_cli(&args)
    };
    let (line, root) = (p("line.crl.pem"), p("root.crl"));
    let crls = ["--crl", line.as_str(), "--crl", root.as_str()];

    let run = verify("device-1.pem", &crls);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("REFUSED   certificate-revoked:"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("reason keyCompromise"),
        "{}",
        run.stdout
    );
    let run = verify("device-2.pem", &crls);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("revocation: checked (chain)"),
        "{}",
        run.stdout
    );
    // Without CRLs the revoked device's chain is simply valid.
    assert_eq!(verify("device-1.pem", &[]).code, 0);
    assert_eq!(
        verify(
            "device-1.pem",
            &[crls[0], crls[1], crls[2], crls[3], "--revocation", "off"]
        )
        .code,
        0
    );

    // Mode chain with only the line's CRL: the line CA's own status (the
    // root's CRL) is undetermined, refused; mode leaf accepts.
    let run = verify("device-2.pem", &["--crl", line.as_str()]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("revocation-status-unknown"),
        "{}",
        run.stdout
    );
    let run = verify(
        "device-2.pem",
        &["--crl", line.as_str(), "--revocation", "leaf"],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    let run = verify(
        "device-2.pem",
        &["--crl", line.as_str(), "--allow-undetermined", "--json"],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["revocation"], "chain");
    assert_eq!(json["warnings"][0]["code"], "revocation-status-unknown");

    // After the line CRL's nextUpdate: crl-expired, unless allowed.
    let later = ["--crl", line.as_str(), "--crl", root.as_str()];
    let (chain, trust) = (p("device-2.pem"), p("root.pem"));
    let mut args = vec![
        "verify",
        chain.as_str(),
        "--trust",
        trust.as_str(),
        "--at",
        "2026-06-10T00:00:00Z",
    ];
    args.extend_from_slice(&later);
    let run = host_cli(&args);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("crl-expired"), "{}", run.stdout);
    args.push("--allow-expired-crl");
    let run = host_cli(&args);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains("WARNING crl-expired"), "{}", run.stdout);

    // Bad CRL input: exit 2, one line naming the file.
    std::fs::write(p("garbage.crl"), b"\x30\x03\x02\x01\x00").unwrap();
    std::fs::write(
        p("empty.pem"),
        b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for bad in ["garbage.crl", "empty.pem", "missing.crl"] {
        let path = p(bad);
        let run = verify("device-2.pem", &["--crl", path.as_str()]);
        assert_eq!(run.code, 2, "{bad}: {}{}", run.stdout, run.stderr);
        assert_eq!(
            run.stderr.trim().lines().count(),
            1,
            "{bad}: {}",
            run.stderr
        );
    }

    // Enrollment decisions: each entry's revocationPolicy, against --crl.
    let group = |policy: Option<serde_json::Value>| {
        let mut g = serde_json::json!({
            "enrollmentGroupId": "fleet",
            "attestation": {"type": "x509", "x509": {"signingCertificates": {"primary": {"certificate": pki.root.pem}}}}
        });
        if let Some(policy) = policy {
            g["revocationPolicy"] = policy;
        }
        serde_json::json!({"enrollmentGroups": [g]}).to_string()
    };
    std::fs::write(p("default.json"), group(None)).unwrap();
    std::fs::write(
        p("chain.json"),
        group(Some(serde_json::json!({"check": "chain"}))),
    )
    .unwrap();
    std::fs::write(
        p("lenient.json"),
        group(Some(
            serde_json::json!({"check": "chain", "admitUndetermined": true}),
        )),
    )
    .unwrap();
    let decide = |device: &str, set: &str, extra: &[&str]| {
        let (chain, set) = (p(device), p(set));
        let mut args = vec![
            "verify",
            chain.as_str(),
            "--enrollments",
            set.as_str(),
            "--at",
            AT,
        ];
        args.extend_from_slice(extra);
        host_cli(&args)
    };
    let run = decide("device-1.pem", "default.json", &crls);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("REFUSED   certificate-revoked:")
            && run.stdout.contains("enrollment group 'fleet'"),
        "{}",
        run.stdout
    );
    let run = decide("device-2.pem", "default.json", &crls);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("revocation: checked (the entry's revocationPolicy)"),
        "{}",
        run.stdout
    );
    // Without --crl nothing is held: the default checks nothing, chain refuses.
    assert_eq!(decide("device-1.pem", "default.json", &[]).code, 0);
    let run = decide("device-2.pem", "chain.json", &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("revocation-status-unknown"),
        "{}",
        run.stdout
    );
    // Chain with the line's CRL only: the line CA is undetermined.
    let only_line = ["--crl", line.as_str()];
    assert_eq!(decide("device-2.pem", "chain.json", &only_line).code, 1);
    assert_eq!(decide("device-2.pem", "default.json", &only_line).code, 0);
    let run = decide(
        "device-2.pem",
        "lenient.json",
        &["--crl", line.as_str(), "--json"],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["revocation"], "entry");
    assert_eq!(json["warnings"][0]["code"], "revocation-status-unknown");
    // The chain-validation flags are not attestation's: the entry decides.
    for flag in [
        ["--revocation", "leaf"].as_slice(),
        &["--allow-undetermined"],
    ] {
        let run = decide("device-2.pem", "default.json", flag);
        assert_eq!(run.code, 2, "{flag:?}: {}{}", run.stdout, run.stderr);
    }
}

/// NIST PKITS's revocation cases through the binary: the suite's directory
/// as `--crl` and the chain file's intermediates; the verdict and the code
/// are the native core's.
#[test]
fn pkits_revocation_cases_through_host_cli() {
    let pkits = Pkits::load(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("pkits"));
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    let (cas, crls) = pkits.directory();
    let set = policy_core::CrlSet::parse(&crls).unwrap();
    std::fs::write(p("root.pem"), pem_block("CERTIFICATE", &pkits.anchor())).unwrap();
    std::fs::write(
        p("crls.pem"),
        crls.iter()
            .map(|d| pem_block("X509 CRL", d))
            .collect::<String>(),
    )
    .unwrap();
    let at = OffsetDateTime::from_unix_timestamp(TIME)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut right = 0;
    for (id, name) in REVOCATION_CASES {
        let leaf = pkits.cert(&format!("{name}EE"));
        let chain: String = std::iter::once(&leaf)
            .chain(&cas)
            .map(|d| pem_block("CERTIFICATE", d))
            .collect();
        std::fs::write(p("chain.pem"), chain).unwrap();
        let (chain, root, crl) = (p("chain.pem"), p("root.pem"), p("crls.pem"));
        let run = host_cli(&[
            "verify", &chain, "--trust", &root, "--crl", &crl, "--eku", "any", "--at", &at,
            "--json",
        ]);
        let native = policy_core::validate_chain_revocation(
            &policy_core::ChainRequest {
                leaf,
                intermediates: cas.clone(),
                trust_anchors: vec![pkits.anchor()],
                time: TIME,
                purpose: policy_core::Purpose::Any,
            },
            &set,
            policy_core::RevocationPolicy::CHAIN,
            &policy_host::AwsLcVerifier,
        );
        let json: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{id}: {e}: {}{}", run.stdout, run.stderr));
        match &native {
            Ok(_) => assert_eq!(run.code, 0, "{id}: {}", run.stdout),
            Err(r) => {
                assert_eq!(run.code, 1, "{id}: {}", run.stdout);
                assert_eq!(json["refusal"]["code"], r.code.as_str(), "{id}");
            }
        }
        right += usize::from(native.is_ok() == name.starts_with("Valid"));
    }
    assert_eq!(right, 71);
}
