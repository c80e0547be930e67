//! Revocation in enrollment decisions (WIT 0.6.0): the deciding entry's
//! `revocationPolicy` applied to the path it decided, against the CRLs
//! held, identically in the native core and the component. A revoked
//! device is refused while its sibling is admitted; without a CRL the
//! default (`configured`) checks nothing, `chain` refuses what it cannot
//! determine, a lenient entry admits with a warning; an individual
//! enrollment's leaf is checked against its issuer's CRL; CRL order and
//! intermediate order never change a verdict, and no mutation of the CRL
//! that revokes a device ever admits it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use attest_tests::days_from_validation as at;
use attest_tests::serial;
use attest_tests::{
    Rng, attest_checked, challenge_proof, enrollments, pki, request, resolve_checked,
};
use policy_host::{Code, EnrollmentKind};
use serde_json::{Value, json};

/// The revocation PKI with the CRLs these tests install.
struct Pki {
    chain: attest_tests::RevocationPki,
    /// The CA's CRL revoking `revoked`.
    ca_crl: Vec<u8>,
    /// The root's CRL, revoking nothing.
    root_crl: Vec<u8>,
}

impl std::ops::Deref for Pki {
    type Target = attest_tests::RevocationPki;
    fn deref(&self) -> &Self::Target {
        &self.chain
    }
}

fn pki() -> Pki {
    let chain = attest_tests::revocation_pki("Enrollment Revocation");
    let ca_crl = chain
        .ca
        .crl(&[(serial(&chain.revoked.der), at(-10))], at(-1), at(6), 3)
        .unwrap();
    let root_crl = chain.root.crl(&[], at(-1), at(30), 1).unwrap();
    Pki {
        chain,
        ca_crl,
        root_crl,
    }
}

/// One group on the root with `policy` as its revocationPolicy (none: the
/// field is absent).
fn group_on_root(p: &Pki, policy: Option<Value>) -> Value {
    let mut group = attest_tests::group_json("fleet", &p.root.pem, true);
    if let Some(policy) = policy {
        group["revocationPolicy"] = policy;
    }
    json!({"enrollmentGroups": [group]})
}

fn decide(
    p: &Pki,
    set: &Value,
    device: &pki::Device,
    crls: &[Vec<u8>],
) -> Result<policy_host::Attested, policy_host::Refusal> {
    let set = enrollments(set);
    resolve_checked(
        &request(&device.name, &device.der, &[&p.ca.der]),
        &set,
        crls,
    )
}

#[test]
fn a_revoked_device_is_refused_and_its_sibling_admitted_by_default() {
    let p = pki();
    let set = group_on_root(&p, None);
    let crls = [p.ca_crl.clone(), p.root_crl.clone()];
    let refused = decide(&p, &set, &p.revoked, &crls).unwrap_err();
    assert_eq!(
        refused.code,
        Code::CertificateRevoked,
        "{}",
        refused.message
    );
    assert_eq!(refused.certificate.as_ref().unwrap().position, 0);
    let entry = refused.enrollment.as_ref().unwrap();
    assert_eq!(
        (entry.kind, entry.id.as_str()),
        (EnrollmentKind::Group, "fleet")
    );
    let admitted = decide(&p, &set, &p.sibling, &crls).unwrap();
    assert_eq!(admitted.decision.enrollment.id, "fleet");
    assert!(admitted.warnings.is_empty());

    // With proof of possession too (the registration's own call).
    let set_arc = enrollments(&set);
    let proof = challenge_proof(&p.revoked.name, &p.revoked.key);
    let r = attest_checked(
        &request(&p.revoked.name, &p.revoked.der, &[&p.ca.der]),
        &proof,
        &set_arc,
        &crls,
    )
    .unwrap_err();
    assert_eq!(r.code, Code::CertificateRevoked);

    // The plain calls hold no CRLs: the default checks nothing then.
    let plain = attest_tests::resolve(
        &request(&p.revoked.name, &p.revoked.der, &[&p.ca.der]),
        &set_arc,
    );
    assert!(plain.is_ok(), "{plain:?}");
}

#[test]
fn configured_checks_only_the_cas_that_have_a_crl() {
    let p = pki();
    let set = group_on_root(&p, None);
    // No CRL at all: nothing to check.
    assert!(decide(&p, &set, &p.revoked, &[]).is_ok());
    // Only the CA's: the device is checked, the CA (root has none) is not.
    assert_eq!(
        decide(&p, &set, &p.revoked, std::slice::from_ref(&p.ca_crl))
            .unwrap_err()
            .code,
        Code::CertificateRevoked
    );
    assert!(decide(&p, &set, &p.sibling, std::slice::from_ref(&p.ca_crl)).is_ok());
    // Only the root's: the CA is checked (not revoked), the devices are not.
    assert!(decide(&p, &set, &p.revoked, std::slice::from_ref(&p.root_crl)).is_ok());
}

#[test]
fn chain_refuses_what_it_cannot_determine_and_lenience_warns() {
    let p = pki();
    let ca_only = [p.ca_crl.clone()];
    let chain = group_on_root(&p, Some(json!({"check": "chain"})));
    let r = decide(&p, &chain, &p.sibling, &ca_only).unwrap_err();
    assert_eq!(r.code, Code::RevocationStatusUnknown, "{}", r.message);
    assert_eq!(r.certificate.as_ref().unwrap().position, 1);
    assert_eq!(r.enrollment.as_ref().unwrap().id, "fleet");
    // No CRL at all: the device itself is undetermined.
    let r = decide(&p, &chain, &p.sibling, &[]).unwrap_err();
    assert_eq!(r.code, Code::RevocationStatusUnknown);
    assert_eq!(r.certificate.as_ref().unwrap().position, 0);

    let lenient = group_on_root(
        &p,
        Some(json!({"check": "chain", "admitUndetermined": true})),
    );
    let a = decide(&p, &lenient, &p.sibling, &ca_only).unwrap();
    assert_eq!(a.warnings.len(), 1, "{:?}", a.warnings);
    assert_eq!(a.warnings[0].code, Code::RevocationStatusUnknown);
    // Lenience never admits a revoked certificate.
    assert_eq!(
        decide(&p, &lenient, &p.revoked, &ca_only).unwrap_err().code,
        Code::CertificateRevoked
    );

    let leaf = group_on_root(&p, Some(json!({"check": "leaf"})));
    assert!(decide(&p, &leaf, &p.sibling, &ca_only).is_ok());
    let off = group_on_root(&p, Some(json!({"check": "off"})));
    assert!(decide(&p, &off, &p.revoked, &ca_only).is_ok());
}

#[test]
fn an_expired_crl_refuses_unless_the_entry_admits_it() {
    let p = pki();
    let stale = p.ca.crl(&[], at(-20), at(-5), 2).unwrap();
    let strict = group_on_root(&p, None);
    let r = decide(&p, &strict, &p.sibling, std::slice::from_ref(&stale)).unwrap_err();
    assert_eq!(r.code, Code::CrlExpired, "{}", r.message);
    let lenient = group_on_root(&p, Some(json!({"admitExpiredCrl": true})));
    let a = decide(&p, &lenient, &p.sibling, &[stale]).unwrap();
    assert_eq!(a.warnings.len(), 1);
    assert_eq!(a.warnings[0].code, Code::CrlExpired);
}

#[test]
fn an_individual_enrollment_checks_its_leaf_against_the_issuers_crl() {
    let p = pki();
    let set = json!({"individualEnrollments": [
        attest_tests::individual_json(&p.revoked.name, &p.revoked.pem, true),
        attest_tests::individual_json(&p.sibling.name, &p.sibling.pem, true),
    ]});
    let crls = [p.ca_crl.clone()];
    let r = decide(&p, &set, &p.revoked, &crls).unwrap_err();
    assert_eq!(r.code, Code::CertificateRevoked, "{}", r.message);
    let entry = r.enrollment.as_ref().unwrap();
    assert_eq!(entry.kind, EnrollmentKind::Individual);
    assert!(decide(&p, &set, &p.sibling, &crls).is_ok());
    // The issuer's CRL is held but its certificate is not at hand: the
    // CRL cannot be verified, so the status is undetermined.
    let bare = enrollments(&set);
    let r =
        resolve_checked(&request(&p.revoked.name, &p.revoked.der, &[]), &bare, &crls).unwrap_err();
    assert_eq!(r.code, Code::RevocationStatusUnknown, "{}", r.message);
    // An entry that turns checking off is admitted whatever the CRL says.
    let mut off = attest_tests::individual_json(&p.revoked.name, &p.revoked.pem, true);
    off["revocationPolicy"] = json!({"check": "off"});
    let off = json!({"individualEnrollments": [off]});
    assert!(decide(&p, &off, &p.revoked, &crls).is_ok());
}

#[test]
fn a_revocation_policy_that_does_not_parse_is_an_error() {
    let p = pki();
    for bad in [
        json!({"check": "sometimes"}),
        json!({"check": "chain", "admitUndetermind": true}),
        json!({"admitUndetermined": "yes"}),
        json!("chain"),
    ] {
        let set = group_on_root(&p, Some(bad.clone()));
        let e = attest_dps::EnrollmentSet::from_json(&set.to_string()).unwrap_err();
        assert!(e.to_string().contains("revocationPolicy"), "{bad}: {e}");
    }
}

/// CRL order, intermediate order and duplicates never change a verdict;
/// no single-byte mutation of the CRL that revokes a device admits it.
#[test]
fn order_never_matters_and_a_mutated_crl_never_admits_the_revoked_device() {
    let p = pki();
    let set = enrollments(&group_on_root(&p, None));
    let other = p.root.crl(&[], at(-2), at(30), 0).unwrap();
    let base = vec![p.ca_crl.clone(), p.root_crl.clone(), other];
    let mut rng = Rng(0x05ee_dc21);
    for _ in 0..12 {
        let mut crls = base.clone();
        if rng.chance(50) {
            crls.push(crls[rng.below(crls.len())].clone());
        }
        rng.shuffle(&mut crls);
        let mut inter = vec![p.ca.der.clone(), p.root.der.clone()];
        rng.shuffle(&mut inter);
        let inter: Vec<&[u8]> = inter.iter().map(Vec::as_slice).collect();
        let revoked = resolve_checked(
            &request(&p.revoked.name, &p.revoked.der, &inter),
            &set,
            &crls,
        );
        assert_eq!(revoked.unwrap_err().code, Code::CertificateRevoked);
        let sibling = resolve_checked(
            &request(&p.sibling.name, &p.sibling.der, &inter),
            &set,
            &crls,
        );
        assert!(sibling.is_ok(), "{sibling:?}");
    }
    let original_issuer = policy_host::crl_details(&p.ca_crl).unwrap().issuer_key;
    for _ in 0..60 {
        let mut crl = p.ca_crl.clone();
        let i = rng.below(crl.len());
        crl[i] ^= 1 << rng.below(8);
        // A CRL that no longer parses is refused when it is loaded; one
        // whose issuer name changed is another CA's (under `configured`
        // the device's CA then has none: hosts install only CRLs a held
        // CA signed, which the service checks at upload).
        match policy_host::crl_details(&crl) {
            Ok(d) if d.issuer_key == original_issuer => {}
            _ => continue,
        }
        let verdict = resolve_checked(
            &request(&p.revoked.name, &p.revoked.der, &[&p.ca.der]),
            &set,
            &[crl],
        );
        assert!(
            verdict.is_err(),
            "a mutated CRL admitted the revoked device"
        );
    }
}
