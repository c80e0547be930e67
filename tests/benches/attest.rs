//! Attestation throughput: chain validation + proof of possession, on the
//! same inputs in the same run, through
//! - `{input}/native-core`: attest's core, natively;
//! - `{input}/component`: the component via policy-host, cold: every
//!   signature of the chain and the proof checked;
//! - `{input}/component-warm`: the component with the host's signature
//!   memo, as a provisioning service runs it: the CA-to-CA links were seen
//!   before, but every iteration is a *new* device certificate (fresh
//!   serial, so a new leaf signature) and a *fresh* challenge (a new
//!   proof), made outside the timed part; only the CA links can hit;
//! - `{input}/webpki`: rustls-webpki on aws-lc-rs, the named baseline;
//! - `{input}/openssl` (with `--features openssl-baseline`, which needs
//!   OpenSSL's headers: Debian's `libssl-dev`): `X509_verify_cert` on
//!   pre-parsed certificates and the proof checked with `EVP_DigestVerify`.
//!
//! - `revocation-p256-3cert/…`: the same chain validation without
//!   revocation and with a 100,000-entry CRL from the device's CA (plus
//!   the root's), the CRL set loaded once as a service holds it; and the
//!   cost of loading that set (parse and index), paid once per CRL update;
//!   and the component's rows, which parse the CRLs in play per call.
//!
//! Run: `cargo bench -p attest-tests --bench attest [--features openssl-baseline]`.
//! Report ratios between the rows of each input; absolute times vary by machine.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking
#![allow(missing_docs)] // criterion_group! generates an undocumented public fn

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use attest_tests::pki::{Ca, Device, KeyAlg};
use attest_tests::*;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use policy_host::{AwsLcVerifier, CacheMode, Limits, Policy, Proof, SignatureMemo};
use rustls_pki_types::{CertificateDer, UnixTime};

struct Input {
    name: &'static str,
    alg: KeyAlg,
    root: Ca,
    intermediates: Vec<Ca>,
    device: Device,
}

fn input(name: &'static str, alg: KeyAlg, depth: usize) -> Input {
    let BenchChain {
        root,
        intermediates,
        device,
    } = bench_chain(alg, depth);
    Input {
        name,
        alg,
        root,
        intermediates,
        device,
    }
}

fn bench(c: &mut Criterion) {
    let inputs = [
        input("p256-3cert", KeyAlg::P256, 1),
        input("p256-4cert", KeyAlg::P256, 2),
        input("rsa2048-3cert", KeyAlg::Rsa2048, 1),
    ];
    let policy = policy();
    let warm = Policy::with_verifier(
        Limits::default(),
        CacheMode::default(),
        Arc::new(SignatureMemo::new(AwsLcVerifier, 4096)),
    )
    .unwrap();
    for inp in &inputs {
        let set = enrollments(&serde_json::json!({
            "enrollmentGroups": [group_json("bench", &inp.root.pem, true)]
        }));
        let inter: Vec<&[u8]> = inp
            .intermediates
            .iter()
            .rev()
            .map(|c| c.der.as_slice())
            .collect();
        let req = request("bench-device", &inp.device.der, &inter);
        let proof = challenge_proof("bench-device", &inp.device.key);
        let Proof::ChallengeSignature {
            challenge,
            signature,
        } = proof.clone()
        else {
            unreachable!()
        };
        let message = policy_core::challenge_message("bench-device", &challenge).unwrap();
        // Sanity: all three accept before anything is timed.
        assert!(policy_core::attest(&req, &proof, &AwsLcVerifier, set.as_ref()).is_ok());
        assert!(policy.attest(&req, &proof, set.clone()).unwrap().is_ok());

        let anchor_der = CertificateDer::from(inp.root.der.clone());
        let anchors = [webpki::anchor_from_trusted_cert(&anchor_der)
            .unwrap()
            .to_owned()];
        let inter_der: Vec<CertificateDer<'_>> = inter
            .iter()
            .map(|d| CertificateDer::from(d.to_vec()))
            .collect();
        let time = UnixTime::since_unix_epoch(Duration::from_secs(VALIDATION_TIME as u64));
        let pop_alg: &dyn rustls_pki_types::SignatureVerificationAlgorithm = match inp.alg {
            KeyAlg::Rsa2048 => webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
            _ => webpki::aws_lc_rs::ECDSA_P256_SHA256,
        };
        let leaf_der = CertificateDer::from(inp.device.der.clone());
        let webpki_attest = || {
            let ee = webpki::EndEntityCert::try_from(&leaf_der).unwrap();
            ee.verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &anchors,
                &inter_der,
                time,
                webpki::KeyUsage::client_auth(),
                None,
                None,
            )
            .unwrap();
            ee.verify_signature(pop_alg, &message, &signature).unwrap();
        };
        webpki_attest();

        let mut group = c.benchmark_group(inp.name);
        group
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .sample_size(30);
        group.bench_function("native-core", |b| {
            b.iter(|| {
                policy_core::attest(black_box(&req), &proof, &AwsLcVerifier, set.as_ref()).unwrap()
            })
        });
        let dyn_set: Arc<dyn policy_host::EnrollmentSource + Send + Sync> = set.clone();
        group.bench_function("component", |b| {
            b.iter(|| {
                policy
                    .attest(black_box(&req), &proof, Arc::clone(&dyn_set))
                    .unwrap()
                    .unwrap()
            })
        });
        // A new device of the same line per iteration: same key (RSA key
        // generation would dominate the setup), new certificate (its serial
        // is fresh, so its TBS and signature are new), fresh challenge.
        let issuer = inp.intermediates.last().unwrap_or(&inp.root);
        let key_pem = inp.device.key.serialize_pem();
        let mut counter = 0u64;
        let mut fresh = || {
            counter += 1;
            let key = rcgen::KeyPair::from_pem(&key_pem).unwrap();
            let params = attest_tests::pki::device_params("bench-device", device_validity());
            let device = issuer.issue_device(params, key, "bench-device").unwrap();
            let mut challenge = vec![0u8; 32];
            challenge[..8].copy_from_slice(&counter.to_be_bytes());
            let message = policy_core::challenge_message("bench-device", &challenge).unwrap();
            let signature = rcgen::SigningKey::sign(&device.key, &message).unwrap();
            (
                request("bench-device", &device.der, &inter),
                Proof::ChallengeSignature {
                    challenge,
                    signature,
                },
            )
        };
        let (first, first_proof) = fresh();
        assert!(
            warm.attest(&first, &first_proof, set.clone())
                .unwrap()
                .is_ok()
        );
        group.bench_function("component-warm", |b| {
            b.iter_batched(
                &mut fresh,
                |(req, proof)| {
                    warm.attest(black_box(&req), &proof, Arc::clone(&dyn_set))
                        .unwrap()
                        .unwrap()
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_function("webpki", |b| b.iter(webpki_attest));
        #[cfg(feature = "openssl-baseline")]
        {
            let openssl_attest = openssl_baseline::attest_fn(
                &inp.root.der,
                &inter,
                &inp.device.der,
                &message,
                &signature,
            );
            openssl_attest();
            group.bench_function("openssl", |b| b.iter(&openssl_attest));
        }
        group.finish();
    }
    // Hostile inputs from the conformance corpus: the worst cases the
    // budgets exist for. Each must stay within a few milliseconds.
    let mut group = c.benchmark_group("hostile");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    for id in [
        "nc-comparison-budget",
        "path-many-lookalike-issuers",
        "path-too-long",
        "path-all-candidates-fail-ranked",
    ] {
        let case = attest_tests::corpus::corpus()
            .iter()
            .find(|c| c.id == id)
            .expect("corpus case");
        let request = case.request();
        group.bench_function(format!("{id}/native-core"), |b| {
            b.iter(|| policy_core::validate_chain(black_box(&request), &AwsLcVerifier).unwrap_err())
        });
        group.bench_function(format!("{id}/component"), |b| {
            b.iter(|| {
                policy
                    .validate_chain(black_box(&request))
                    .unwrap()
                    .unwrap_err()
            })
        });
    }
    // Issue 18, item 2: a self-made leaf under 100 look-alike P-521
    // issuers. The weighted signature budget stops after 14 checks; a
    // count of 100 (the budget before) would check all of them.
    let lookalike_root = Ca::root("Lookalike Root", KeyAlg::P256, ca_validity()).unwrap();
    let lookalikes: Vec<Ca> = (0..100)
        .map(|_| {
            lookalike_root
                .intermediate("Twin", KeyAlg::P521, ca_validity())
                .unwrap()
        })
        .collect();
    let signer = lookalike_root
        .intermediate("Twin", KeyAlg::P521, ca_validity())
        .unwrap();
    let leaf = signer.device("d", KeyAlg::P256, device_validity()).unwrap();
    let refs: Vec<&[u8]> = lookalikes.iter().map(|c| c.der.as_slice()).collect();
    let request = chain_request(&leaf.der, &refs, &[&lookalike_root.der]);
    group.bench_function("p521-lookalikes-100/native-core", |b| {
        b.iter(|| policy_core::validate_chain(black_box(&request), &AwsLcVerifier).unwrap_err())
    });
    group.bench_function("p521-lookalikes-100/component", |b| {
        b.iter(|| {
            policy
                .validate_chain(black_box(&request))
                .unwrap()
                .unwrap_err()
        })
    });
    group.finish();

    // What one signature check costs per key type (host-side aws-lc-rs,
    // the arithmetic both the native core and the component use): the
    // weights of the core's signature budget are these ratios to P-256.
    let mut group = c.benchmark_group("signature-cost");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for (alg, algorithm) in [
        (
            KeyAlg::P256,
            policy_host::SignatureAlgorithm::EcdsaP256Sha256,
        ),
        (
            KeyAlg::P384,
            policy_host::SignatureAlgorithm::EcdsaP384Sha384,
        ),
        (
            KeyAlg::P521,
            policy_host::SignatureAlgorithm::EcdsaP521Sha512,
        ),
        (KeyAlg::Ed25519, policy_host::SignatureAlgorithm::Ed25519),
        (
            KeyAlg::Rsa2048,
            policy_host::SignatureAlgorithm::RsaPkcs1Sha256,
        ),
    ] {
        use policy_host::SignatureVerifier as _;
        use rcgen::SigningKey as _;
        let key = alg.generate().unwrap();
        let message = vec![7u8; 600];
        let signature = key.sign(&message).unwrap();
        // The subjectPublicKey BIT STRING content, as the core hands it over.
        let public = key.public_key_raw().to_vec();
        assert!(AwsLcVerifier.verify_signature(algorithm, &public, &message, &signature));
        group.bench_function(format!("{alg:?}"), |b| {
            b.iter(|| {
                AwsLcVerifier.verify_signature(
                    algorithm,
                    black_box(&public),
                    black_box(&message),
                    black_box(&signature),
                )
            })
        });
    }
    group.finish();

    // The fixed cost of one component call: fresh store, instantiation,
    // a trivial export (building a challenge message).
    c.bench_function("component-call-overhead", |b| {
        b.iter(|| {
            policy
                .challenge_message(black_box("bench-device"), &[7; 32])
                .unwrap()
        })
    });
}

fn revocation(c: &mut Criterion) {
    use time::{Duration as Days, OffsetDateTime};
    let BenchChain {
        root,
        intermediates,
        device,
    } = bench_chain(KeyAlg::P256, 1);
    let ca = &intermediates[0];
    let now = OffsetDateTime::from_unix_timestamp(VALIDATION_TIME).unwrap();
    // 100,000 serials of other devices (16 octets, like attest's own).
    let revoked: Vec<(Vec<u8>, OffsetDateTime)> = (0..100_000u32)
        .map(|i| {
            let mut serial = vec![0x10];
            serial.extend(i.to_be_bytes());
            serial.extend([0x5a; 11]);
            (serial, now - Days::days(3))
        })
        .collect();
    let crls = vec![
        ca.crl(&revoked, now - Days::days(1), now + Days::days(6), 42)
            .unwrap(),
        root.crl(&[], now - Days::days(1), now + Days::days(30), 1)
            .unwrap(),
    ];
    let set = policy_core::CrlSet::parse(&crls).unwrap();
    let request = chain_request(&device.der, &[&ca.der], &[&root.der]);
    // The path must validate both ways, and the CRL must be consulted.
    policy_core::validate_chain(&request, &AwsLcVerifier).unwrap();
    policy_core::validate_chain_revocation(
        &request,
        &set,
        policy_core::RevocationPolicy::CHAIN,
        &AwsLcVerifier,
    )
    .unwrap();
    let mut group = c.benchmark_group("revocation-p256-3cert");
    group.bench_function("no-revocation/native-core", |b| {
        b.iter(|| policy_core::validate_chain(black_box(&request), &AwsLcVerifier).unwrap())
    });
    group.bench_function("crl-100k/native-core", |b| {
        b.iter(|| {
            policy_core::validate_chain_revocation(
                black_box(&request),
                &set,
                policy_core::RevocationPolicy::CHAIN,
                &AwsLcVerifier,
            )
            .unwrap()
        })
    });
    // The component: the same decisions; CRLs reach it through its
    // `revocation` import and are parsed once per call.
    let policy = Policy::new().unwrap();
    let held = Arc::new(policy_host::Crls::from_der(&crls).unwrap());
    policy
        .validate_chain_revocation(
            &request,
            Arc::clone(&held),
            policy_core::RevocationPolicy::CHAIN,
        )
        .unwrap()
        .unwrap();
    group.bench_function("no-revocation/component", |b| {
        b.iter(|| policy.validate_chain(black_box(&request)).unwrap().unwrap())
    });
    group.sample_size(10);
    group.bench_function("crl-100k/component", |b| {
        b.iter(|| {
            policy
                .validate_chain_revocation(
                    black_box(&request),
                    Arc::clone(&held),
                    policy_core::RevocationPolicy::CHAIN,
                )
                .unwrap()
                .unwrap()
        })
    });
    group.bench_function("crl-100k-load", |b| {
        b.iter(|| policy_core::CrlSet::parse(black_box(&crls)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench, revocation);
criterion_main!(benches);

/// The `openssl` crate's chain check and signature check, on certificates
/// parsed before timing.
#[cfg(feature = "openssl-baseline")]
mod openssl_baseline {
    use openssl::hash::MessageDigest;
    use openssl::sign::Verifier;
    use openssl::stack::Stack;
    use openssl::x509::store::X509StoreBuilder;
    use openssl::x509::verify::X509VerifyFlags;
    use openssl::x509::{X509, X509StoreContext};

    pub(super) fn attest_fn(
        root: &[u8],
        intermediates: &[&[u8]],
        leaf: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> impl Fn() {
        let mut builder = X509StoreBuilder::new().unwrap();
        builder.add_cert(X509::from_der(root).unwrap()).unwrap();
        builder.set_flags(X509VerifyFlags::NO_CHECK_TIME).unwrap();
        let store = builder.build();
        let mut chain = Stack::new().unwrap();
        for der in intermediates {
            chain.push(X509::from_der(der).unwrap()).unwrap();
        }
        let leaf = X509::from_der(leaf).unwrap();
        let key = leaf.public_key().unwrap();
        let (message, signature) = (message.to_vec(), signature.to_vec());
        move || {
            let mut ctx = X509StoreContext::new().unwrap();
            let ok = ctx
                .init(&store, &leaf, &chain, |c| c.verify_cert())
                .unwrap();
            assert!(ok, "openssl refused the chain");
            let mut verifier = Verifier::new(MessageDigest::sha256(), &key).unwrap();
            assert!(verifier.verify_oneshot(&signature, &message).unwrap());
        }
    }
}
