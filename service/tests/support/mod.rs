//! Shared by the service's integration tests.

#![allow(dead_code)]

use attest_pki::{Canonical, KeyAlg, Validity};
use attest_service::{Chain, DeviceEvidence};
use policy_host::Proof;
use rcgen::SigningKey as _;

/// A new, empty database on the suite's PostgreSQL server.
pub(crate) fn fresh_database() -> String {
    attest_tests::postgres::fresh_database("attest_service")
}

pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub(crate) fn pki() -> Canonical {
    let at = |t| time::OffsetDateTime::from_unix_timestamp(t).unwrap();
    let v = Validity {
        not_before: at(now() - 86_400),
        not_after: at(now() + 30 * 86_400),
    };
    Canonical::generate(KeyAlg::P256, v, v).unwrap()
}

/// Device `n`'s evidence as a TLS handshake would capture it: its chain
/// and a CertificateVerify-style signature by `signer`'s key.
pub(crate) fn evidence(pki: &Canonical, n: usize, signer: usize) -> DeviceEvidence {
    let message = b"TLS 1.3, client CertificateVerify (stand-in content)".to_vec();
    let signature = pki.devices[signer - 1].key.sign(&message).unwrap();
    DeviceEvidence {
        chain: Some(Chain {
            leaf: pki.devices[n - 1].der.clone(),
            intermediates: vec![pki.issuer_of(n).der.clone()],
        }),
        proof: Some(Proof::TlsSignature {
            scheme: 0x0403,
            message,
            signature,
        }),
        ..DeviceEvidence::default()
    }
}
