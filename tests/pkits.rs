//! NIST PKITS revocation tests (sections 4.4, 4.14, 4.15 and the six of
//! 4.5/4.7 that turn on revocation data) through the native core, with
//! every CA certificate and CRL of the suite available, as a relying party
//! reading the suite's directory sees them. The results, and OpenSSL's on
//! the same input, are listed in docs/conformance.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use std::path::Path;
use std::process::Command;

use attest_tests::pkits::{Pkits, REVOCATION_CASES, TIME};
use attest_tests::{Rng, pem_block};
use policy_core::{ChainRequest, CrlSet, Purpose, Refusal, RevocationPolicy, Validated};
use policy_host::AwsLcVerifier;

/// The directory as attest sees it: every CA certificate attest can parse
/// and every CRL.
struct Directory {
    pkits: Pkits,
    intermediates: Vec<Vec<u8>>,
    crls: Vec<Vec<u8>>,
}

impl Directory {
    fn load() -> Directory {
        let pkits = pkits();
        let (intermediates, crls) = pkits.directory();
        Directory {
            pkits,
            intermediates,
            crls,
        }
    }

    fn validate(&self, name: &str, set: &CrlSet) -> Result<Validated, Refusal> {
        let request = ChainRequest {
            leaf: self.pkits.cert(&format!("{name}EE")),
            intermediates: self.intermediates.clone(),
            trust_anchors: vec![self.pkits.anchor()],
            time: TIME,
            purpose: Purpose::Any,
        };
        policy_core::validate_chain_revocation(
            &request,
            set,
            RevocationPolicy::CHAIN,
            &AwsLcVerifier,
        )
    }
}

/// The cases where attest's answer differs from PKITS's, and why: each a
/// refusal of a path PKITS calls valid (never the other way round).
const DIFFERENCES: &[(&str, &str)] = &[(
    "4.14.13",
    "the end entity is a CA certificate; attest refuses a CA as a device leaf (ca-used-as-end-entity)",
)];

fn pkits() -> Pkits {
    Pkits::load(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("pkits"))
}

#[test]
fn pkits_revocation_cases_give_their_expected_results() {
    let dir = Directory::load();
    let set = CrlSet::parse(&dir.crls).expect("every PKITS CRL parses");
    assert_eq!(REVOCATION_CASES.len(), 72);
    let mut right = 0;
    let mut table = Vec::new();
    let mut wrong = Vec::new();
    for (id, name) in REVOCATION_CASES {
        let verdict = dir.validate(name, &set);
        let expected_valid = name.starts_with("Valid");
        let got = match &verdict {
            Ok(v) => {
                assert!(
                    v.warnings.is_empty(),
                    "{id}: warnings under the strict policy"
                );
                "valid".to_string()
            }
            Err(r) => format!("{}: {}", r.code, r.message),
        };
        table.push(format!("{id:8} {name:45} {got}"));
        if verdict.is_ok() == expected_valid {
            right += 1;
        } else {
            wrong.push(id.to_string());
            // Fail closed: nothing PKITS calls invalid is ever admitted.
            assert!(
                verdict.is_err(),
                "{id} {name}: admitted, PKITS expects a refusal"
            );
        }
    }
    println!("{}", table.join("\n"));
    println!(
        "attest: {right} of {} as PKITS expects",
        REVOCATION_CASES.len()
    );
    let listed: Vec<String> = DIFFERENCES.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(
        wrong, listed,
        "the differences from PKITS are exactly those listed here and in docs/conformance.md"
    );
    assert!(right >= 69);
}

/// The component (through policy-host, CRLs through its `revocation`
/// import) gives the native core's verdict, message for message, on every
/// case.
#[test]
fn the_component_agrees_with_the_native_core_on_every_case() {
    let dir = Directory::load();
    let set = CrlSet::parse(&dir.crls).unwrap();
    let crls = std::sync::Arc::new(policy_host::Crls::from_der(&dir.crls).unwrap());
    for (id, name) in REVOCATION_CASES {
        let request = ChainRequest {
            leaf: dir.pkits.cert(&format!("{name}EE")),
            intermediates: dir.intermediates.clone(),
            trust_anchors: vec![dir.pkits.anchor()],
            time: TIME,
            purpose: Purpose::Any,
        };
        let native = dir.validate(name, &set);
        let component = attest_tests::policy()
            .validate_chain_revocation(
                &request,
                std::sync::Arc::clone(&crls),
                RevocationPolicy::CHAIN,
            )
            .expect("component call");
        assert_eq!(
            native, component,
            "{id} {name}: native core and component disagree"
        );
    }
}

/// The order and duplication of the CRLs never change a verdict.
#[test]
fn crl_order_and_duplicates_do_not_change_any_verdict() {
    let dir = Directory::load();
    let reference = CrlSet::parse(&dir.crls).unwrap();
    let expected: Vec<Result<Validated, Refusal>> = REVOCATION_CASES
        .iter()
        .map(|(_, name)| dir.validate(name, &reference))
        .collect();
    let mut rng = Rng(0x05ee_dc41);
    for round in 0..3 {
        let mut crls = dir.crls.clone();
        let again = crls[rng.below(crls.len())].clone();
        crls.push(again);
        rng.shuffle(&mut crls);
        let set = CrlSet::parse(&crls).unwrap();
        for ((id, name), want) in REVOCATION_CASES.iter().zip(&expected) {
            assert_eq!(&dir.validate(name, &set), want, "{id}, round {round}");
        }
    }
}

/// A revoked certificate stays refused whatever is done to the CRL that
/// revokes it: a mutated CRL is rejected at load, or cannot be used
/// (undetermined), or still revokes; it never admits.
#[test]
fn a_mutated_crl_never_admits_a_revoked_certificate() {
    let dir = Directory::load();
    let names = dir.pkits.crls();
    let index = names
        .iter()
        .position(|(n, _)| n == "GoodCACRL")
        .expect("GoodCACRL");
    let mut rng = Rng(0xc41_0dd);
    let (mut rejected, mut refused) = (0, 0);
    for _ in 0..300 {
        let mut crls = dir.crls.clone();
        let crl = &mut crls[index];
        match rng.below(3) {
            0 => {
                let i = rng.below(crl.len());
                crl[i] ^= 1 << rng.below(8);
            }
            1 => crl.truncate(rng.below(crl.len())),
            _ => {
                let i = rng.below(crl.len());
                crl.insert(i, u8::try_from(rng.below(256)).unwrap());
            }
        }
        let Ok(set) = CrlSet::parse(&crls) else {
            rejected += 1;
            continue;
        };
        for name in ["InvalidRevokedEETest3", "InvalidRevokedCATest2"] {
            let verdict = dir.validate(name, &set);
            assert!(verdict.is_err(), "{name} admitted with a mutated GoodCACRL");
        }
        refused += 1;
    }
    println!("{rejected} mutants rejected at load, {refused} loaded and still refused");
    assert!(rejected > 0 && refused > 0);
}

/// OpenSSL on the same directory, side by side: `openssl verify
/// -crl_check_all`, and with `-extended_crl -use_deltas`. Its results are
/// listed in docs/conformance.md; the test asserts attest is never less
/// strict than OpenSSL on an invalid case and prints the comparison.
#[test]
fn openssl_on_the_same_directory() {
    let dir = Directory::load();
    let set = CrlSet::parse(&dir.crls).unwrap();
    let work = tempfile::tempdir().unwrap();
    let all_cas: String = dir
        .pkits
        .ca_certificates()
        .iter()
        .map(|(_, d)| pem_block("CERTIFICATE", d))
        .collect();
    let all_crls: String = dir.crls.iter().map(|d| pem_block("X509 CRL", d)).collect();
    std::fs::write(work.path().join("cas.pem"), all_cas).unwrap();
    std::fs::write(work.path().join("crls.pem"), all_crls).unwrap();
    std::fs::write(
        work.path().join("root.pem"),
        pem_block("CERTIFICATE", &dir.pkits.anchor()),
    )
    .unwrap();
    let openssl = |name: &str, extended: bool| -> bool {
        std::fs::write(
            work.path().join("ee.pem"),
            pem_block("CERTIFICATE", &dir.pkits.cert(&format!("{name}EE"))),
        )
        .unwrap();
        let mut cmd = Command::new("openssl");
        cmd.current_dir(work.path())
            .args(["verify", "-crl_check_all", "-attime", &TIME.to_string()])
            .args([
                "-CAfile",
                "root.pem",
                "-untrusted",
                "cas.pem",
                "-CRLfile",
                "crls.pem",
            ]);
        if extended {
            cmd.args(["-extended_crl", "-use_deltas"]);
        }
        let out = cmd.arg("ee.pem").output().expect("openssl runs");
        out.status.success()
    };
    let (mut attest_right, mut plain_right, mut extended_right) = (0, 0, 0);
    let mut rows = Vec::new();
    for (id, name) in REVOCATION_CASES {
        let expected = name.starts_with("Valid");
        let a = dir.validate(name, &set).is_ok();
        let p = openssl(name, false);
        let e = openssl(name, true);
        attest_right += usize::from(a == expected);
        plain_right += usize::from(p == expected);
        extended_right += usize::from(e == expected);
        let show = |v: bool| if v { "valid" } else { "invalid" };
        if a != p || a != e || a != expected {
            rows.push(format!(
                "{id:8} {name:45} PKITS {:7} attest {:7} openssl {:7} extended {:7}",
                show(expected),
                show(a),
                show(p),
                show(e)
            ));
        }
        // Never less strict than OpenSSL where PKITS says invalid.
        if !expected && a {
            panic!("{id}: attest admits what PKITS refuses");
        }
    }
    println!("{}", rows.join("\n"));
    println!(
        "of {}: attest {attest_right}, openssl -crl_check_all {plain_right}, with -extended_crl -use_deltas {extended_right}",
        REVOCATION_CASES.len()
    );
    assert!(attest_right >= extended_right.min(69));
}
