//! Writes the conformance corpus as seeds for the fuzz targets
//! (`fuzz/run.sh` calls it): one file per case, in the input format that
//! `attest_fuzz::Input::decode` reads.
//!
//! `cargo run -p attest-tests --example fuzz-seeds -- DIR`

// A seed writer: a fixture that cannot be built is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use attest_tests::corpus::corpus;
use attest_tests::fuzz_input;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus/chain".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let mut written = 0;
    for case in corpus() {
        let leaf_cn_enrolled = [0x10u8, 0x30, 0x50];
        for flags in leaf_cn_enrolled {
            let bytes = fuzz_input(flags, case);
            std::fs::write(dir.join(format!("{}-{flags:02x}", case.id)), bytes)?;
            written += 1;
        }
    }
    // Revocation seeds: a chain with its CA's CRL after the leaf (flag bit
    // 7), revoked and not, and with a CRL from another CA.
    for (name, bytes) in revocation_seeds() {
        std::fs::write(dir.join(name), bytes)?;
        written += 1;
    }
    println!("wrote {written} seeds to {}", dir.display());
    Ok(())
}

fn revocation_seeds() -> Vec<(String, Vec<u8>)> {
    use attest_tests::pki::{Ca, KeyAlg};
    use attest_tests::{VALIDATION_TIME, ca_validity, device_validity};
    use time::{Duration, OffsetDateTime};
    let root = Ca::root("Fuzz Root", KeyAlg::P256, ca_validity()).unwrap();
    let ca = root
        .intermediate("Fuzz CA", KeyAlg::P256, ca_validity())
        .unwrap();
    let device = ca
        .device("fuzz-device", KeyAlg::P256, device_validity())
        .unwrap();
    let now = OffsetDateTime::from_unix_timestamp(VALIDATION_TIME).unwrap();
    let (info, _) = policy_core::certificate_details(&device.der).unwrap();
    let serial = hex_bytes(&info.serial);
    let crl = |issuer: &Ca, revoked: Vec<(Vec<u8>, OffsetDateTime)>| {
        issuer
            .crl(
                &revoked,
                now - Duration::days(1),
                now + Duration::days(6),
                2,
            )
            .unwrap()
    };
    let crls = [
        (
            "revoked",
            crl(&ca, vec![(serial.clone(), now - Duration::days(2))]),
        ),
        (
            "clean",
            crl(&ca, vec![(vec![0x42; 16], now - Duration::days(2))]),
        ),
        ("root", crl(&root, vec![])),
    ];
    crls.into_iter()
        .map(|(name, crl)| {
            let mut out = vec![0x80 | 0x10, 0, 0];
            for der in [&device.der, &crl, &ca.der, &root.der] {
                out.extend(u16::try_from(der.len()).unwrap().to_be_bytes());
                out.extend_from_slice(der);
            }
            (format!("crl-{name}"), out)
        })
        .collect()
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}
