//! Revocation checking with CRLs the tests issue themselves: a revoked
//! device refused while its unrevoked sibling is admitted, the policy modes
//! and lenience, and the CRL rules that must fail closed (a CRL from
//! another key, past nextUpdate, not yet valid, a missing CA CRL).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use attest_tests::days_from_validation as at;
use attest_tests::serial;
use attest_tests::{VALIDATION_TIME, ca_validity, pki};
use policy_core::{
    ChainRequest, Code, CrlSet, Lenience, Purpose, RevocationMode, RevocationPolicy,
};
use policy_host::AwsLcVerifier;

type Pki = attest_tests::RevocationPki;

fn pki() -> Pki {
    attest_tests::revocation_pki("Revocation")
}

fn request(p: &Pki, leaf: &[u8]) -> ChainRequest {
    ChainRequest {
        leaf: leaf.to_vec(),
        intermediates: vec![p.ca.der.clone()],
        trust_anchors: vec![p.root.der.clone()],
        time: VALIDATION_TIME,
        purpose: Purpose::ClientAuth,
    }
}

fn check(
    p: &Pki,
    leaf: &[u8],
    crls: &[Vec<u8>],
    policy: RevocationPolicy,
) -> Result<policy_core::Validated, policy_core::Refusal> {
    let set = CrlSet::parse(crls).unwrap();
    policy_core::validate_chain_revocation(&request(p, leaf), &set, policy, &AwsLcVerifier)
}

/// The CA's CRL revoking `p.revoked`, and the root's empty CRL.
fn crls(p: &Pki) -> Vec<Vec<u8>> {
    vec![
        p.ca.crl(&[(serial(&p.revoked.der), at(-10))], at(-1), at(6), 7)
            .unwrap(),
        p.root.crl(&[], at(-1), at(30), 1).unwrap(),
    ]
}

#[test]
fn a_revoked_device_is_refused_and_its_sibling_admitted() {
    let p = pki();
    let crls = crls(&p);
    let refused = check(&p, &p.revoked.der, &crls, RevocationPolicy::CHAIN).unwrap_err();
    assert_eq!(refused.code, Code::CertificateRevoked);
    assert_eq!(refused.certificate.as_ref().unwrap().position, 0);
    assert!(
        refused.message.contains("keyCompromise"),
        "{}",
        refused.message
    );
    assert!(refused.message.contains("number 07"), "{}", refused.message);
    let admitted = check(&p, &p.sibling.der, &crls, RevocationPolicy::CHAIN).unwrap();
    assert_eq!(admitted.path.len(), 3);
    assert!(admitted.warnings.is_empty());
    // Off: the CRLs are not consulted.
    assert!(check(&p, &p.revoked.der, &crls, RevocationPolicy::OFF).is_ok());
}

#[test]
fn chain_mode_needs_every_ca_crl_and_leaf_mode_only_the_issuers() {
    let p = pki();
    let ca_only = vec![crls(&p)[0].clone()];
    let refused = check(&p, &p.sibling.der, &ca_only, RevocationPolicy::CHAIN).unwrap_err();
    assert_eq!(refused.code, Code::RevocationStatusUnknown);
    assert_eq!(
        refused.certificate.as_ref().unwrap().position,
        1,
        "{}",
        refused.message
    );
    let leaf = RevocationPolicy {
        mode: RevocationMode::Leaf,
        ..RevocationPolicy::CHAIN
    };
    assert!(check(&p, &p.sibling.der, &ca_only, leaf).is_ok());
    assert_eq!(
        check(&p, &p.revoked.der, &ca_only, leaf).unwrap_err().code,
        Code::CertificateRevoked
    );
    // No CRL at all: undetermined, refused; or admitted with a warning.
    assert_eq!(
        check(&p, &p.sibling.der, &[], leaf).unwrap_err().code,
        Code::RevocationStatusUnknown
    );
    let lenient = RevocationPolicy {
        undetermined: Lenience::Warn,
        ..leaf
    };
    let admitted = check(&p, &p.sibling.der, &[], lenient).unwrap();
    assert_eq!(admitted.warnings.len(), 1);
    assert_eq!(admitted.warnings[0].code, Code::RevocationStatusUnknown);
}

#[test]
fn an_expired_crl_refuses_unless_the_policy_warns_and_never_unrevokes() {
    let p = pki();
    let stale = vec![
        p.ca.crl(&[(serial(&p.revoked.der), at(-40))], at(-30), at(-2), 3)
            .unwrap(),
        p.root.crl(&[], at(-1), at(30), 1).unwrap(),
    ];
    let refused = check(&p, &p.sibling.der, &stale, RevocationPolicy::CHAIN).unwrap_err();
    assert_eq!(refused.code, Code::CrlExpired);
    assert!(
        refused.message.contains("nextUpdate"),
        "{}",
        refused.message
    );
    let warn = RevocationPolicy {
        expired: Lenience::Warn,
        ..RevocationPolicy::CHAIN
    };
    let admitted = check(&p, &p.sibling.der, &stale, warn).unwrap();
    assert_eq!(admitted.warnings.len(), 1);
    assert_eq!(admitted.warnings[0].code, Code::CrlExpired);
    // What an expired CRL revokes stays revoked under any lenience.
    assert_eq!(
        check(&p, &p.revoked.der, &stale, warn).unwrap_err().code,
        Code::CertificateRevoked
    );
}

#[test]
fn a_crl_from_the_future_or_from_another_key_is_not_used() {
    let p = pki();
    let future = vec![
        p.ca.crl(&[], at(1), at(8), 9).unwrap(),
        p.root.crl(&[], at(-1), at(30), 1).unwrap(),
    ];
    assert_eq!(
        check(&p, &p.sibling.der, &future, RevocationPolicy::CHAIN)
            .unwrap_err()
            .code,
        Code::RevocationStatusUnknown
    );
    // A CA with the same name but another key issues an empty CRL: it must
    // not vouch for the real CA's devices.
    let impostor = p
        .root
        .intermediate("Revocation CA", pki::KeyAlg::P256, ca_validity())
        .unwrap();
    let forged = vec![
        impostor.crl(&[], at(-1), at(6), 99).unwrap(),
        p.root.crl(&[], at(-1), at(30), 1).unwrap(),
    ];
    let refused = check(&p, &p.revoked.der, &forged, RevocationPolicy::CHAIN).unwrap_err();
    assert_eq!(
        refused.code,
        Code::RevocationStatusUnknown,
        "{}",
        refused.message
    );
    assert!(
        refused.message.contains("does not verify"),
        "{}",
        refused.message
    );
}

#[test]
fn garbage_crls_are_refused_at_load_with_their_index() {
    let p = pki();
    let mut crls = crls(&p);
    crls.push(b"not a crl".to_vec());
    let e = CrlSet::parse(&crls).unwrap_err();
    assert!(e.starts_with("CRL #3:"), "{e}");
}

/// Within one scope the newest CRL the CA signed decides: an older CRL that
/// does not list a device never outvotes a newer one that does (in either
/// order), a hold the newer CRL released is released, a CRL issued after
/// the validation time did not exist yet, and a "newer" CRL from another
/// key is not the CA's.
#[test]
fn the_newest_crl_of_a_scope_decides() {
    let p = pki();
    let device = serial(&p.revoked.der);
    let root_crl = p.root.crl(&[], at(-1), at(30), 1).unwrap();
    let old_clean = p.ca.crl(&[], at(-10), at(20), 1).unwrap();
    let new_revoking =
        p.ca.crl(&[(device.clone(), at(-2))], at(-1), at(6), 2)
            .unwrap();
    for crls in [
        vec![old_clean.clone(), new_revoking.clone(), root_crl.clone()],
        vec![new_revoking.clone(), old_clean.clone(), root_crl.clone()],
    ] {
        assert_eq!(
            check(&p, &p.revoked.der, &crls, RevocationPolicy::CHAIN)
                .unwrap_err()
                .code,
            Code::CertificateRevoked
        );
    }
    let held =
        p.ca.crl_with_reasons(
            &[(
                device.clone(),
                at(-9),
                rcgen::RevocationReason::CertificateHold,
            )],
            at(-10),
            at(20),
            1,
        )
        .unwrap();
    let released = p.ca.crl(&[], at(-1), at(6), 2).unwrap();
    let refused = check(
        &p,
        &p.revoked.der,
        &[held.clone(), root_crl.clone()],
        RevocationPolicy::CHAIN,
    )
    .unwrap_err();
    assert!(
        refused.message.contains("certificateHold"),
        "{}",
        refused.message
    );
    assert!(
        check(
            &p,
            &p.revoked.der,
            &[held, released, root_crl.clone()],
            RevocationPolicy::CHAIN
        )
        .is_ok()
    );
    // Issued tomorrow: at the validation time only the older CRL existed.
    let tomorrow =
        p.ca.crl(&[(device.clone(), at(-2))], at(1), at(8), 3)
            .unwrap();
    assert!(
        check(
            &p,
            &p.revoked.der,
            &[old_clean.clone(), tomorrow, root_crl.clone()],
            RevocationPolicy::CHAIN
        )
        .is_ok()
    );
    // A same-named CA with another key claims number 99 and lists nothing.
    let impostor = p
        .root
        .intermediate("Revocation CA", pki::KeyAlg::P256, ca_validity())
        .unwrap();
    let forged = impostor.crl(&[], at(-1), at(6), 99).unwrap();
    assert_eq!(
        check(
            &p,
            &p.revoked.der,
            &[forged, new_revoking, root_crl],
            RevocationPolicy::CHAIN
        )
        .unwrap_err()
        .code,
        Code::CertificateRevoked
    );
}
