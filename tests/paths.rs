//! The verdict is a function of the *set* of certificates a device
//! presents and of the enrollment store: never of their order, their
//! repetition, or their key identifiers (SPEC §1, issue "Fail closed in the
//! core"). Every case runs through the native core and the component (the
//! differential harness asserts identical verdicts).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use std::sync::Arc;

use attest_dps::EnrollmentSet;
use attest_tests::forge::{self, Signer, name_der, tag};
use attest_tests::pki::{Ca, KeyAlg, ca_params};
use attest_tests::*;
use policy_host::{Code, Decision, EnrollmentKind, Refusal};
use rcgen::{KeyIdMethod, KeyPair};

fn copy_key(key: &KeyPair) -> KeyPair {
    KeyPair::from_pem(&key.serialize_pem()).unwrap()
}

/// A CA certificate for `key`'s CA, issued (again) by `issuer`.
fn reissue(
    issuer: &Ca,
    cn: &str,
    key: &KeyPair,
    edit: impl FnOnce(&mut rcgen::CertificateParams),
) -> Ca {
    let mut params = ca_params(cn, ca_validity(), None);
    edit(&mut params);
    issuer.issue_ca(params, copy_key(key)).unwrap()
}

fn set_of(groups: &[(&str, &Ca, bool)], verified: &[&Ca]) -> Arc<EnrollmentSet> {
    let json = serde_json::json!({
        "enrollmentGroups": groups.iter().map(|(id, ca, on)| group_json(id, &ca.pem, *on)).collect::<Vec<_>>()
    });
    let mut set = EnrollmentSet::from_json(&json.to_string()).unwrap();
    for ca in verified {
        set.add_anchor(ca.der.clone()).unwrap();
    }
    Arc::new(set)
}

fn refused_by(r: &Result<Decision, Refusal>, code: Code, entry: &str) {
    let refusal = r.as_ref().expect_err("refused");
    assert_eq!(refusal.code, code, "{refusal}");
    assert_eq!(
        refusal.enrollment.as_ref().map(|e| e.id.as_str()),
        Some(entry),
        "{refusal}"
    );
}

/// Regression (issue 8, item 1): a sub-CA X issued by line B (disabled)
/// and cross-signed by the root. Sending X←root first used to be admitted
/// by the root's group; every order and repetition is now refused by
/// line B's group.
#[test]
fn a_cross_signed_ca_cannot_route_around_a_disabled_group() {
    let root = Ca::root("Root", KeyAlg::P256, ca_validity()).unwrap();
    let line_b = root
        .intermediate("Line B", KeyAlg::P256, ca_validity())
        .unwrap();
    let x_by_b = line_b
        .intermediate("Sub X", KeyAlg::P256, ca_validity())
        .unwrap();
    let x_by_root = reissue(&root, "Sub X", &x_by_b.key, |_| {});
    let leaf = x_by_b
        .device("device-1", KeyAlg::P256, device_validity())
        .unwrap();
    let set = set_of(
        &[("all-devices", &root, true), ("line-b", &line_b, false)],
        &[],
    );
    let (b, r) = (x_by_b.der.as_slice(), x_by_root.der.as_slice());
    let l = line_b.der.as_slice();
    for chain in [
        vec![b, r],
        vec![r, b],
        vec![r, b, r],
        vec![r, r, b],
        vec![r, l, b],
        vec![l, r, b, l],
    ] {
        let got = resolve(&request("device-1", &leaf.der, &chain), &set);
        refused_by(&got, Code::EnrollmentGroupDisabled, "line-b");
    }
    // Only the cross-signed certificate: the root's path alone is valid.
    let got = resolve(&request("device-1", &leaf.der, &[r]), &set).unwrap();
    assert_eq!(got.enrollment.id, "all-devices");
    // With line B enabled both paths admit at position 2 (line B's CA on
    // one, the root on the other): the tie goes to the lower group ID, in
    // every order.
    let set = set_of(
        &[("all-devices", &root, true), ("line-b", &line_b, true)],
        &[],
    );
    for chain in [vec![b, r], vec![r, b]] {
        let got = resolve(&request("device-1", &leaf.der, &chain), &set).unwrap();
        assert_eq!(got.enrollment.id, "all-devices");
    }
}

/// Regression (issue 8, item 1, variant): line B's CA certificate
/// re-issued by the root with the same subject and key but another SKI,
/// and a leaf whose AKI names the new SKI. It used to be admitted by the
/// root's group; the re-issued certificate is line B's CA, so line B's
/// disabled group decides.
#[test]
fn a_reissued_ca_certificate_is_the_same_ca() {
    let root = Ca::root("Root", KeyAlg::P256, ca_validity()).unwrap();
    let line_b = root
        .intermediate("Line B", KeyAlg::P256, ca_validity())
        .unwrap();
    let line_b2 = reissue(&root, "Line B", &line_b.key, |p| {
        p.key_identifier_method = KeyIdMethod::PreSpecified(vec![0x42; 20]);
    });
    let leaf = line_b2
        .device("device-9", KeyAlg::P256, device_validity())
        .unwrap();
    let set = set_of(
        &[("all-devices", &root, true), ("line-b", &line_b, false)],
        &[],
    );
    for chain in [
        vec![line_b2.der.as_slice()],
        vec![],
        vec![line_b2.der.as_slice(), line_b.der.as_slice()],
    ] {
        let got = resolve(&request("device-9", &leaf.der, &chain), &set);
        refused_by(&got, Code::EnrollmentGroupDisabled, "line-b");
    }
}

/// A group names a CA identity, not a certificate: a renewed intermediate
/// (same subject and key) keeps its group even after the enrolled
/// certificate has expired, both ways.
#[test]
fn groups_follow_a_renewed_ca_certificate() {
    let root = Ca::root("Root", KeyAlg::P256, ca_validity()).unwrap();
    let old = root
        .issue_ca(
            ca_params(
                "Line A",
                validity(VALIDATION_TIME - 10_000, VALIDATION_TIME - 1),
                None,
            ),
            KeyAlg::P256.generate().unwrap(),
        )
        .unwrap();
    let renewed = reissue(&root, "Line A", &old.key, |_| {});
    let leaf = renewed
        .device("device-2", KeyAlg::P256, device_validity())
        .unwrap();
    let req = request("device-2", &leaf.der, &[&renewed.der]);
    for enabled in [true, false] {
        let set = set_of(&[("line-a", &old, enabled)], &[&root]);
        let got = resolve(&req, &set);
        if enabled {
            let d = got.unwrap();
            assert_eq!(
                (d.enrollment.kind, d.enrollment.id.as_str()),
                (EnrollmentKind::Group, "line-a")
            );
            assert_eq!(d.path.len(), 3, "leaf, renewed line A, root");
        } else {
            refused_by(&got, Code::EnrollmentGroupDisabled, "line-a");
        }
    }
    // A different key under the same name is a different CA.
    let impostor = root
        .intermediate("Line A", KeyAlg::P256, ca_validity())
        .unwrap();
    let leaf = impostor
        .device("device-2", KeyAlg::P256, device_validity())
        .unwrap();
    let set = set_of(&[("line-a", &old, false)], &[&root]);
    let got = resolve(&request("device-2", &leaf.der, &[&impostor.der]), &set);
    assert_eq!(got.unwrap_err().code, Code::NoEnrollment);
}

/// Regression (issue 8, item 4): `device ← V(v1) ← R(group)` is refused,
/// and stays refused when V is also a trust anchor: above an anchor, V is
/// checked as an intermediate (a v1 certificate cannot be one).
#[test]
fn a_v1_anchor_does_not_become_an_intermediate() {
    let root = Ca::root("Root", KeyAlg::P256, ca_validity()).unwrap();
    let v3 = root
        .intermediate("Old Line", KeyAlg::P256, ca_validity())
        .unwrap();
    let v1 = forge::forge(&v3.der, Signer::Key(&root.key), |cert| {
        cert.tbs_certificate.version = x509_cert::certificate::Version::V1;
        cert.tbs_certificate.extensions = None;
    });
    let leaf = v3
        .device("device-1", KeyAlg::P256, device_validity())
        .unwrap();
    let req = request("device-1", &leaf.der, &[&v1]);
    let group_only = set_of(&[("all-devices", &root, true)], &[]);
    assert_eq!(
        resolve(&req, &group_only).unwrap_err().code,
        Code::UnsupportedCertificateVersion
    );
    let mut with_v1 = EnrollmentSet::from_json(
        &serde_json::json!({"enrollmentGroups": [group_json("all-devices", &root.pem, true)]})
            .to_string(),
    )
    .unwrap();
    with_v1.add_anchor(v1.clone()).unwrap();
    let got = resolve(&req, &Arc::new(with_v1)).unwrap_err();
    assert_eq!(got.code, Code::NoEnrollment, "{got}");
    // As a plain anchor V still anchors its own leaves.
    assert!(validate_chain(&chain_request(&leaf.der, &[], &[&v1])).is_ok());
}

/// Regression (issue 8, item 5): a leaf with two CNs names two devices;
/// it is refused whichever it claims, in separate RDNs or in one.
#[test]
fn a_leaf_with_two_common_names_is_refused() {
    let root = Ca::root("Root", KeyAlg::P256, ca_validity()).unwrap();
    let leaf = root
        .device("device-1", KeyAlg::P256, device_validity())
        .unwrap();
    let set = set_of(&[("all-devices", &root, true)], &[]);
    let cn = "2.5.4.3";
    for subject in [
        name_der(&[
            &[(cn, tag::UTF8, b"device-1")],
            &[(cn, tag::UTF8, b"device-2")],
        ]),
        name_der(&[&[(cn, tag::UTF8, b"device-1"), (cn, tag::UTF8, b"device-2")]]),
    ] {
        let two = forge::forge_raw(&leaf.der, Signer::Key(&root.key), |t| t.subject = subject);
        for claimed in ["device-1", "device-2"] {
            let r = resolve(&request(claimed, &two, &[]), &set).unwrap_err();
            assert_eq!(r.code, Code::AmbiguousCommonName, "{r}");
        }
    }
    assert!(resolve(&request("device-1", &leaf.der, &[]), &set).is_ok());
}

/// Names chain by RFC 5280 §7.1: an issuer name that differs from the
/// CA's subject only in case, spacing or string type still chains, and
/// the CA's group still decides.
#[test]
fn issuer_names_match_after_rfc_4518_preparation() {
    let root = Ca::root("Contoso Root", KeyAlg::P256, ca_validity()).unwrap();
    let leaf = root
        .device("device-1", KeyAlg::P256, device_validity())
        .unwrap();
    let set = set_of(&[("root", &root, false)], &[]);
    let cn = "2.5.4.3";
    for issuer in [
        name_der(&[&[(cn, tag::PRINTABLE, b"Contoso Root")]]),
        name_der(&[&[(cn, tag::UTF8, b"CONTOSO ROOT")]]),
        name_der(&[&[(cn, tag::UTF8, b"  contoso   root ")]]),
    ] {
        let variant = forge::forge_raw(&leaf.der, Signer::Key(&root.key), |t| t.issuer = issuer);
        let r = resolve(&request("device-1", &variant, &[]), &set).unwrap_err();
        assert_eq!(r.code, Code::EnrollmentGroupDisabled, "{r}");
    }
}

/// One generated PKI: two roots, lines A and B, a sub-CA X issued by A and
/// sometimes cross-signed by B or re-issued by a root; groups on some CA
/// identities (enabled or disabled, enrolled through any certificate of
/// the CA); a leaf under X; and the certificates the device sends.
fn scenario(rng: &mut Rng) -> (Arc<EnrollmentSet>, Vec<u8>, Vec<Vec<u8>>) {
    let r1 = Ca::root("Root One", KeyAlg::P256, ca_validity()).unwrap();
    let r2 = Ca::root("Root Two", KeyAlg::P256, ca_validity()).unwrap();
    let a = r1
        .intermediate("Line A", KeyAlg::P256, ca_validity())
        .unwrap();
    let b_issuer = if rng.chance(50) { &r1 } else { &r2 };
    let b = b_issuer
        .intermediate("Line B", KeyAlg::P256, ca_validity())
        .unwrap();
    let x = a
        .intermediate("Sub X", KeyAlg::P256, ca_validity())
        .unwrap();
    let mut xs = vec![x.der.clone()];
    let mut x_cas = vec![];
    if rng.chance(60) {
        x_cas.push(reissue(&b, "Sub X", &x.key, |_| {}));
    }
    if rng.chance(40) {
        let root = if rng.chance(50) { &r1 } else { &r2 };
        x_cas.push(reissue(root, "Sub X", &x.key, |p| {
            p.key_identifier_method = KeyIdMethod::PreSpecified(vec![0x58; 20]);
        }));
    }
    if rng.chance(30) {
        x_cas.push(reissue(&a, "Sub X", &x.key, |_| {}));
    }
    xs.extend(x_cas.iter().map(|c| c.der.clone()));
    let leaf = x
        .device("device-1", KeyAlg::P256, device_validity())
        .unwrap();

    let mut groups = serde_json::json!([]);
    let mut verified = Vec::new();
    let x_enrolled = x_cas
        .iter()
        .chain([&x])
        .nth(rng.below(x_cas.len() + 1))
        .unwrap();
    for (id, ca) in [
        ("r1", &r1),
        ("r2", &r2),
        ("a", &a),
        ("b", &b),
        ("x", x_enrolled),
    ] {
        match rng.below(4) {
            0 => groups
                .as_array_mut()
                .unwrap()
                .push(group_json(id, &ca.pem, true)),
            1 => groups
                .as_array_mut()
                .unwrap()
                .push(group_json(id, &ca.pem, false)),
            2 => verified.push(ca.der.clone()),
            _ => {}
        }
    }
    let mut set =
        EnrollmentSet::from_json(&serde_json::json!({"enrollmentGroups": groups}).to_string())
            .unwrap();
    for der in verified {
        set.add_anchor(der).unwrap();
    }
    let mut presented = xs;
    for extra in [&a.der, &b.der, &r1.der, &r2.der] {
        if rng.chance(50) {
            presented.push(extra.clone());
        }
    }
    (Arc::new(set), leaf.der, presented)
}

/// The metamorphic property (issue 8): for generated PKIs with
/// cross-signed and re-issued CAs, every permutation and duplication of
/// the presented intermediates gives the same verdict, the same deciding
/// entry and the same explanation, natively and through the component.
#[test]
fn verdicts_ignore_order_and_repetition_of_intermediates() {
    let mut rng = Rng(0x5eed_a77e_57ed);
    let (mut admitted, mut refused) = (0, 0);
    for round in 0..40 {
        let (set, leaf, presented) = scenario(&mut rng);
        let base = resolve(&request("device-1", &leaf, &to_refs(&presented)), &set);
        match &base {
            Ok(_) => admitted += 1,
            Err(_) => refused += 1,
        }
        for _ in 0..12 {
            let mut variant = presented.clone();
            for _ in 0..rng.below(3) {
                let dup = variant[rng.below(variant.len())].clone();
                variant.push(dup);
            }
            rng.shuffle(&mut variant);
            let got = resolve(&request("device-1", &leaf, &to_refs(&variant)), &set);
            assert_eq!(
                got, base,
                "round {round}: order or repetition changed the verdict"
            );
        }
    }
    // The generator reaches both outcomes.
    assert!(
        admitted > 5 && refused > 5,
        "admitted {admitted}, refused {refused}"
    );
}

fn to_refs(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(Vec::as_slice).collect()
}
