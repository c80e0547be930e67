//! The same component file decides in Node.js and in Python: every case
//! of the conformance corpus, the mutation corpus and SPEC §1's canonical
//! scenario (chains of every key algorithm, enrollment sets, challenge and
//! TLS proofs, CA proofs of possession) runs through the Rust component
//! host and through `host-js` and `host-py`, which must give the same
//! decision document byte for byte (verdict, refusal code and message,
//! chain position, deciding entry, path). The `verify` command lines run
//! through all three CLIs with the same files and must print the same
//! `--json` document with the same exit code.
//!
//! Set-up is part of the test, as the README promises: `npm ci` and `npm
//! run build` in host-js (jco transpiles the component `host-cli component
//! --out` writes), and a virtual environment `host-py/.venv` with `pip
//! install ./host-py[test]` (wasmtime-py, cryptography, asn1crypto,
//! pytest). Then each package's own tests run (`node --test`, `pytest`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use attest_dps::EnrollmentSet;
use attest_tests::corpus::{corpus, pem};
use attest_tests::mutation::{enrollments_for, mutated_corpus};
use attest_tests::pki::{Canonical, KeyAlg};
use attest_tests::process::run;
use attest_tests::{VALIDATION_TIME, ca_validity, device_validity};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use host_cli::report::{Outcome, Report, cert_json, refusal_json};
use policy_host::{
    AttestRequest, ChainRequest, Crls, Lenience, Policy, Proof, Purpose, RevocationMode,
    RevocationPolicy,
};
use serde_json::{Value, json};

/// Cases a host cannot run, with the reason: none today. A job a runner
/// skips must be listed here; nothing is skipped silently.
const CANNOT_RUN: &[(&str, &str, &str)] = &[];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn host_cli() -> &'static str {
    env!("CARGO_BIN_EXE_host-cli")
}

/// host-js, installed and built (once per test process).
fn node_host() -> &'static Path {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY.get_or_init(|| {
        let dir = root().join("host-js");
        run(
            Command::new("npm")
                .args(["--prefix", "host-js", "ci", "--no-audit", "--no-fund"])
                .current_dir(root()),
            Duration::from_secs(900),
        );
        run(
            Command::new("npm")
                .args(["--prefix", "host-js", "run", "build"])
                .env("ATTEST_HOST_CLI", host_cli())
                .current_dir(root()),
            Duration::from_secs(300),
        );
        dir
    })
}

/// The first Python of 3.13 or later, else `python3` (the package needs
/// 3.10; only the `ssl` gateway example needs 3.13).
fn base_python() -> PathBuf {
    if let Ok(p) = std::env::var("ATTEST_PYTHON") {
        return p.into();
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let pyenv = Path::new(&home).join(".pyenv/versions");
    let mut candidates = vec![PathBuf::from("python3.14"), PathBuf::from("python3.13")];
    if let Ok(dirs) = std::fs::read_dir(&pyenv) {
        let mut found: Vec<PathBuf> = dirs
            .flatten()
            .map(|d| d.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("3.13") || n.starts_with("3.14"))
            })
            .map(|p| p.join("bin/python3"))
            .collect();
        found.sort();
        candidates.extend(found.into_iter().rev());
    }
    candidates
        .into_iter()
        .find(|p| {
            Command::new(p)
                .args([
                    "-c",
                    "import ssl, venv, sys; assert sys.version_info >= (3, 13)",
                ])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// host-py installed into host-py/.venv (once per test process).
fn python_host() -> &'static Path {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY.get_or_init(|| {
        attest_tests::process::venv(
            &base_python(),
            &root().join("host-py/.venv"),
            &["./host-py[test]"],
            &root(),
            &[("ATTEST_HOST_CLI", OsStr::new(host_cli()))],
        )
    })
}

fn b64(der: &[u8]) -> String {
    STANDARD.encode(der)
}

fn purpose_name(p: Purpose) -> &'static str {
    match p {
        Purpose::ClientAuth => "clientAuth",
        Purpose::ServerAuth => "serverAuth",
        Purpose::Any => "any",
    }
}

/// A job for the hosts' runners, with what the Rust component host says.
struct Job {
    job: Value,
    expect: String,
}

struct Jobs {
    policy: Policy,
    dir: tempfile::TempDir,
    jobs: Vec<Job>,
    sets: HashMap<String, Option<Arc<EnrollmentSet>>>,
}

impl Jobs {
    fn new() -> Jobs {
        Jobs {
            policy: Policy::new().unwrap(),
            dir: tempfile::tempdir().unwrap(),
            jobs: Vec::new(),
            sets: HashMap::new(),
        }
    }

    fn push(&mut self, mut job: Value, expect: String) {
        let id = format!("{}#{}", job["id"].as_str().unwrap(), self.jobs.len());
        job["id"] = json!(id);
        self.jobs.push(Job { job, expect });
    }

    fn set(&mut self, text: &str) -> Option<Arc<EnrollmentSet>> {
        self.sets
            .entry(text.to_string())
            .or_insert_with(|| EnrollmentSet::from_json(text).ok().map(Arc::new))
            .clone()
    }

    fn validate(&mut self, id: &str, req: &ChainRequest) {
        let verdict = self.policy.validate_chain(req).unwrap();
        let report = Report {
            time: req.time,
            purpose: req.purpose,
            outcome: Outcome::Chain(verdict),
            revocation: None,
            warnings: Vec::new(),
        };
        self.push(
            json!({"id": id, "op": "validate", "leaf": b64(&req.leaf),
                "intermediates": req.intermediates.iter().map(|d| b64(d)).collect::<Vec<_>>(),
                "anchors": req.trust_anchors.iter().map(|d| b64(d)).collect::<Vec<_>>(),
                "time": req.time, "purpose": purpose_name(req.purpose)}),
            report.json().to_string(),
        );
    }

    /// A named CRL set for the revocation jobs: each host loads it (or
    /// refuses it) as the Rust host does.
    fn crls(&mut self, name: &str, crls: &[Vec<u8>]) -> Option<Arc<Crls>> {
        let loaded = Crls::from_der(crls).ok().map(Arc::new);
        self.push(
            json!({"id": format!("crls/{name}"), "op": "crls", "name": name,
                "crls": crls.iter().map(|d| b64(d)).collect::<Vec<_>>()}),
            if loaded.is_some() {
                "loaded"
            } else {
                "load-error"
            }
            .into(),
        );
        loaded
    }

    /// Chain validation with revocation against the CRL set `name`.
    fn validate_revocation(
        &mut self,
        id: &str,
        req: &ChainRequest,
        name: &str,
        crls: &Arc<Crls>,
        policy: RevocationPolicy,
    ) {
        let verdict = self
            .policy
            .validate_chain_revocation(req, Arc::clone(crls), policy)
            .unwrap();
        let (outcome, warnings) = match verdict {
            Ok(v) => (Ok(v.path), v.warnings),
            Err(r) => (Err(r), Vec::new()),
        };
        let mode = match policy.mode {
            RevocationMode::Off => "off",
            RevocationMode::Leaf => "leaf",
            RevocationMode::Chain => "chain",
            RevocationMode::Configured => "configured",
        };
        let report = Report {
            time: req.time,
            purpose: req.purpose,
            outcome: Outcome::Chain(outcome),
            revocation: Some(mode),
            warnings,
        };
        self.push(
            json!({"id": id, "op": "validate-revocation", "leaf": b64(&req.leaf),
                "intermediates": req.intermediates.iter().map(|d| b64(d)).collect::<Vec<_>>(),
                "anchors": req.trust_anchors.iter().map(|d| b64(d)).collect::<Vec<_>>(),
                "time": req.time, "purpose": purpose_name(req.purpose), "crls": name,
                "revocation": mode,
                "allowUndetermined": policy.undetermined == Lenience::Warn,
                "allowExpiredCrl": policy.expired == Lenience::Warn}),
            report.json().to_string(),
        );
    }

    fn decide(&mut self, id: &str, req: &AttestRequest, enrollments: &str, proof: Option<&Proof>) {
        self.decide_with(id, req, enrollments, proof, None);
    }

    /// A decision, with revocation checked against the CRL set `crls`
    /// under each entry's own revocationPolicy when given.
    fn decide_with(
        &mut self,
        id: &str,
        req: &AttestRequest,
        enrollments: &str,
        proof: Option<&Proof>,
        crls: Option<(&str, &Arc<Crls>)>,
    ) {
        let mut job = json!({"id": id, "op": if proof.is_some() { "attest" } else { "resolve" },
            "registrationId": req.registration_id, "leaf": b64(&req.leaf),
            "intermediates": req.intermediates.iter().map(|d| b64(d)).collect::<Vec<_>>(),
            "time": req.time, "purpose": purpose_name(req.purpose), "enrollments": enrollments});
        if let Some((name, _)) = crls {
            job["crls"] = json!(name);
        }
        if let Some(proof) = proof {
            job["proof"] = match proof {
                Proof::ChallengeSignature {
                    challenge,
                    signature,
                } => {
                    json!({"challenge": b64(challenge), "signature": b64(signature)})
                }
                Proof::TlsSignature {
                    scheme,
                    message,
                    signature,
                } => {
                    json!({"scheme": scheme, "message": b64(message), "signature": b64(signature)})
                }
            };
        }
        let expect = match self.set(enrollments) {
            None => "load-error".to_string(),
            Some(set) => {
                let held = crls.map_or_else(|| Arc::new(Crls::none()), |(_, c)| Arc::clone(c));
                let verdict = match proof {
                    None => self.policy.resolve_checked(req, set, held).unwrap(),
                    Some(p) => self.policy.attest_checked(req, p, set, held).unwrap(),
                };
                let (decision, warnings) = match verdict {
                    Ok(a) => (Ok(a.decision), a.warnings),
                    Err(r) => (Err(r), Vec::new()),
                };
                Report {
                    time: req.time,
                    purpose: req.purpose,
                    outcome: match proof {
                        None => Outcome::Resolve(decision),
                        Some(_) => Outcome::Attest(decision),
                    },
                    revocation: crls.map(|_| "entry"),
                    warnings,
                }
                .json()
                .to_string()
            }
        };
        self.push(job, expect);
    }

    fn file(&self, name: &str, contents: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// A `verify` command line: what host-cli prints (exit code, stdout).
    fn cli(&mut self, id: &str, argv: Vec<String>) {
        let out = Command::new(host_cli())
            .args(&argv)
            .output()
            .expect("host-cli runs");
        let expect = format!(
            "{}\n{}",
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).unwrap()
        );
        self.push(json!({"id": id, "op": "cli", "argv": argv}), expect);
    }

    /// Runs every job through one host's runner; returns the mismatches.
    fn compare(&self, host: &str, program: &Path, runner: &Path) -> Vec<String> {
        let file = self.dir.path().join(format!("jobs-{host}.jsonl"));
        let text: String = self.jobs.iter().map(|j| format!("{}\n", j.job)).collect();
        std::fs::write(&file, text).unwrap();
        let out = run(
            Command::new(program).arg(runner).arg(&file),
            Duration::from_secs(900),
        );
        let got: BTreeMap<String, String> = out
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    v["id"].as_str().unwrap().to_string(),
                    v["out"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let mut failures = Vec::new();
        for job in &self.jobs {
            let id = job.job["id"].as_str().unwrap();
            let listed = CANNOT_RUN
                .iter()
                .any(|(h, prefix, _)| *h == host && id.starts_with(prefix));
            match got.get(id) {
                None if listed => {}
                None => failures.push(format!(
                    "{host}: {id}: no answer (skipped without a listed reason)"
                )),
                Some(g) if *g == job.expect => {}
                Some(g) => failures.push(format!(
                    "{host}: {id}\n  job:  {}\n  rust: {}\n  {host}: {g}",
                    shorten(&job.job.to_string()),
                    job.expect
                )),
            }
        }
        failures
    }
}

fn shorten(s: &str) -> String {
    if s.len() > 400 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(400).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s.to_string()
    }
}

/// A command line as owned strings.
fn args(argv: &[&str]) -> Vec<String> {
    argv.iter().map(|s| s.to_string()).collect()
}

fn rfc3339(t: i64) -> String {
    host_cli::report::rfc3339(t)
}

/// The job list: conformance corpus, mutation corpus, canonical scenario.
fn jobs() -> Jobs {
    let mut jobs = Jobs::new();

    // 1. The conformance corpus: chain validation, resolution against a
    //    group on every anchor, and `verify --trust` on the command line.
    for case in corpus() {
        let req = case.request();
        jobs.validate(&case.id, &req);
        let set = enrollments_for(case).to_string();
        let registration_id = policy_host::certificate_common_name(&case.leaf)
            .ok()
            .flatten()
            .unwrap_or_else(|| "device-1".into());
        let attest_req = AttestRequest {
            registration_id,
            leaf: req.leaf.clone(),
            intermediates: req.intermediates.clone(),
            time: req.time,
            purpose: req.purpose,
        };
        jobs.decide(&case.id, &attest_req, &set, None);
        let chain: String = std::iter::once(&case.leaf)
            .chain(&case.intermediates)
            .map(|d| pem(d))
            .collect();
        let trust: String = case.anchors.iter().map(|d| pem(d)).collect();
        let chain = jobs.file(&format!("{}.chain.pem", case.id), &chain);
        let trust = jobs.file(&format!("{}.trust.pem", case.id), &trust);
        let eku = match case.purpose {
            Purpose::ClientAuth => "clientAuth",
            Purpose::ServerAuth => "serverAuth",
            Purpose::Any => "anyExtendedKeyUsage",
        };
        let at = rfc3339(case.time);
        let groups = jobs.file(&format!("{}.groups.json", case.id), &set);
        for (suffix, flag, file) in [
            ("cli", "--trust", &trust),
            ("cli-enrollments", "--enrollments", &groups),
        ] {
            let argv = args(&[
                "verify", &chain, flag, file, "--at", &at, "--eku", eku, "--json",
            ]);
            jobs.cli(&format!("{}/{suffix}", case.id), argv);
        }
    }

    // 2. The mutation corpus: the very inputs of tests/mutations.rs.
    for (i, m) in mutated_corpus().into_iter().enumerate() {
        let id = format!("{}/mutation-{i}", m.case.id);
        jobs.validate(&id, &m.request);
        let attest_req = AttestRequest {
            registration_id: m.registration_id.to_string(),
            leaf: m.request.leaf.clone(),
            intermediates: m.request.intermediates.clone(),
            time: m.request.time,
            purpose: m.request.purpose,
        };
        jobs.decide(&id, &attest_req, &enrollments_for(m.case).to_string(), None);
    }

    // 3. SPEC §1's canonical scenario with every key algorithm: each step's
    //    enrollment set, every device, resolve and attest (own key, another
    //    device's key, a TLS 1.3 CertificateVerify), on the API and the CLI.
    for alg in [
        KeyAlg::P256,
        KeyAlg::P384,
        KeyAlg::P521,
        KeyAlg::Rsa2048,
        KeyAlg::Ed25519,
    ] {
        let pki = Canonical::generate(alg, ca_validity(), device_validity()).unwrap();
        let tag = format!("canonical-{alg:?}");
        for (step, set) in pki.enrollment_steps().iter().enumerate() {
            let set = set.to_string();
            let set_file = jobs.file(&format!("{tag}-step{step}.json"), &set);
            for n in 1..=5 {
                let id = format!("{tag}/step{step}/device-{n}");
                let registration_id = format!("device-{n}");
                let req = attest_tests::request(
                    &registration_id,
                    &pki.devices[n - 1].der,
                    &[&pki.issuer_of(n).der],
                );
                jobs.decide(&id, &req, &set, None);
                let own = attest_tests::challenge_proof(&registration_id, &pki.devices[n - 1].key);
                jobs.decide(&format!("{id}/own-key"), &req, &set, Some(&own));
                let other =
                    attest_tests::challenge_proof(&registration_id, &pki.devices[n % 5].key);
                jobs.decide(&format!("{id}/other-key"), &req, &set, Some(&other));
                if let Some(tls) = tls13_proof(alg, &pki.devices[n - 1].key) {
                    jobs.decide(&format!("{id}/tls13"), &req, &set, Some(&tls));
                }
                for (name, tls) in tls12_proofs(alg, &pki.devices[n - 1].key) {
                    jobs.decide(&format!("{id}/{name}"), &req, &set, Some(&tls));
                }
                let chain = jobs.file(&format!("{tag}-device-{n}.pem"), &pki.chain_pem(n));
                let at = rfc3339(VALIDATION_TIME);
                let mut argv = args(&[
                    "verify",
                    &chain,
                    "--enrollments",
                    &set_file,
                    "--at",
                    &at,
                    "--json",
                ]);
                jobs.cli(&format!("{id}/cli"), argv.clone());
                if let Proof::ChallengeSignature {
                    challenge,
                    signature,
                } = &own
                {
                    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                    argv.extend([
                        "--challenge".into(),
                        url.encode(challenge),
                        "--signature".into(),
                        url.encode(signature),
                    ]);
                    jobs.cli(&format!("{id}/cli-proof"), argv);
                }
            }
            // Human output and the registration-ID flag, too.
            let chain = jobs.file(&format!("{tag}-device-4.pem"), &pki.chain_pem(4));
            let at = rfc3339(VALIDATION_TIME);
            let argv = args(&[
                "verify",
                &chain,
                "--enrollments",
                &set_file,
                "--at",
                &at,
                "--registration-id",
                "DEVICE-4",
            ]);
            jobs.cli(&format!("{tag}/step{step}/cli-human"), argv);
        }
        // CA proof of possession: a verification certificate signed by the
        // CA's key, by another key, and with the wrong code.
        for (code, signer, name) in [
            ("0A1B2C3D", &pki.line_a, "ok"),
            ("0A1B2C3D", &pki.line_b, "other-ca"),
            ("WRONG", &pki.line_a, "wrong-code"),
        ] {
            let verification = signer.device("0A1B2C3D", alg, device_validity()).unwrap();
            let expect = match jobs
                .policy
                .verify_ca_possession(&pki.line_a.der, &verification.der, code, VALIDATION_TIME)
                .unwrap()
            {
                Ok(c) => json!({"ok": cert_json(&c)}),
                Err(r) => json!({"refusal": refusal_json(&r)}),
            };
            jobs.push(
                json!({"id": format!("{tag}/ca-possession-{name}"), "op": "verifyCaPossession",
                    "ca": b64(&pki.line_a.der), "verification": b64(&verification.der), "code": code, "time": VALIDATION_TIME}),
                expect.to_string(),
            );
        }
    }

    // 4. Challenge messages, valid and refused.
    for (id, challenge) in [
        ("device-1", vec![7u8; 32]),
        ("device-1", vec![1u8; 3]),
        ("Bad ID!", vec![7u8; 32]),
    ] {
        let expect = match jobs.policy.challenge_message(id, &challenge).unwrap() {
            Ok(m) => hex::encode(m),
            Err(r) => refusal_json(&r).to_string(),
        };
        jobs.push(json!({"id": "challenge-message", "op": "challengeMessage", "registrationId": id, "challenge": b64(&challenge)}), expect);
    }

    // 5. Enrollment files the loaders must refuse or accept alike.
    let pki = Canonical::generate(KeyAlg::P256, ca_validity(), device_validity()).unwrap();
    for (i, doc) in loader_cases(&pki).into_iter().enumerate() {
        let text = doc.to_string();
        let expect = if EnrollmentSet::from_json(&text).is_ok() {
            "loaded"
        } else {
            "load-error"
        };
        jobs.push(
            json!({"id": format!("loader-{i}"), "op": "load", "enrollments": text}),
            expect.into(),
        );
    }
    // 6. Revocation: the NIST PKITS cases (the suite's directory as CRLs
    //    and intermediates) and CRLs issued here, under every policy.
    revocation_jobs(&mut jobs);
    jobs
}

fn revocation_jobs(jobs: &mut Jobs) {
    use time::Duration as Days;
    let pkits =
        attest_tests::pkits::Pkits::load(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("pkits"));
    let (cas, ders) = pkits.directory();
    let set = jobs.crls("pkits", &ders).expect("the PKITS CRLs load");
    for (id, name) in attest_tests::pkits::REVOCATION_CASES {
        let req = ChainRequest {
            leaf: pkits.cert(&format!("{name}EE")),
            intermediates: cas.clone(),
            trust_anchors: vec![pkits.anchor()],
            time: attest_tests::pkits::TIME,
            purpose: Purpose::Any,
        };
        jobs.validate_revocation(
            &format!("pkits/{id}"),
            &req,
            "pkits",
            &set,
            RevocationPolicy::CHAIN,
        );
    }

    let pki = Canonical::generate(KeyAlg::P256, ca_validity(), device_validity()).unwrap();
    let now = time::OffsetDateTime::from_unix_timestamp(VALIDATION_TIME).unwrap();
    let serial =
        |der: &[u8]| hex::decode(policy_host::certificate_details(der).unwrap().0.serial).unwrap();
    let line = pki.issuer_of(1);
    let line_crl = line
        .crl(
            &[(serial(&pki.devices[0].der), now - Days::days(9))],
            now - Days::days(1),
            now + Days::days(6),
            5,
        )
        .unwrap();
    let stale_crl = line
        .crl(
            &[(serial(&pki.devices[0].der), now - Days::days(40))],
            now - Days::days(30),
            now - Days::days(2),
            4,
        )
        .unwrap();
    let root_crl = pki
        .root
        .crl(&[], now - Days::days(1), now + Days::days(30), 1)
        .unwrap();
    let sets = [
        ("fresh", vec![line_crl.clone(), root_crl.clone()]),
        ("line-only", vec![line_crl]),
        ("stale", vec![stale_crl, root_crl]),
        ("none", vec![]),
    ];
    let mut loaded = Vec::new();
    for (name, ders) in &sets {
        loaded.push((*name, jobs.crls(name, ders).unwrap()));
    }
    // Garbage must be refused alike.
    assert!(
        jobs.crls("garbage", &[b"\x30\x03\x02\x01\x00".to_vec()])
            .is_none()
    );
    let policies = [
        RevocationPolicy::CHAIN,
        RevocationPolicy {
            mode: RevocationMode::Leaf,
            ..RevocationPolicy::CHAIN
        },
        RevocationPolicy {
            undetermined: Lenience::Warn,
            ..RevocationPolicy::CHAIN
        },
        RevocationPolicy {
            expired: Lenience::Warn,
            ..RevocationPolicy::CHAIN
        },
        RevocationPolicy::OFF,
    ];
    for n in [1, 2] {
        let req = ChainRequest {
            leaf: pki.devices[n - 1].der.clone(),
            intermediates: vec![line.der.clone()],
            trust_anchors: vec![pki.root.der.clone()],
            time: VALIDATION_TIME,
            purpose: Purpose::ClientAuth,
        };
        for (name, set) in &loaded {
            for (i, policy) in policies.iter().enumerate() {
                jobs.validate_revocation(
                    &format!("crl/{name}/device-{n}/policy-{i}"),
                    &req,
                    name,
                    set,
                    *policy,
                );
            }
        }
    }

    // Enrollment decisions (WIT 0.6.0): each entry's revocationPolicy, a
    // group on the root and individual enrollments, every CRL set.
    let entry_policies = [
        None,
        Some(json!({"check": "chain"})),
        Some(json!({"check": "chain", "admitUndetermined": true})),
        Some(json!({"admitExpiredCrl": true})),
        Some(json!({"check": "leaf"})),
        Some(json!({"check": "off"})),
    ];
    for (i, entry_policy) in entry_policies.iter().enumerate() {
        let mut group = attest_tests::group_json("fleet", &pki.root.pem, true);
        let mut individual = attest_tests::individual_json("device-2", &pki.devices[1].pem, true);
        if let Some(p) = entry_policy {
            group["revocationPolicy"] = p.clone();
            individual["revocationPolicy"] = p.clone();
        }
        let set =
            json!({"enrollmentGroups": [group], "individualEnrollments": [individual]}).to_string();
        for n in [1, 2] {
            let device = &pki.devices[n - 1];
            let req = AttestRequest {
                registration_id: device.name.clone(),
                leaf: device.der.clone(),
                intermediates: vec![line.der.clone()],
                time: VALIDATION_TIME,
                purpose: Purpose::ClientAuth,
            };
            for (name, crls) in &loaded {
                jobs.decide_with(
                    &format!("crl-entry/{name}/device-{n}/policy-{i}"),
                    &req,
                    &set,
                    None,
                    Some((name, crls)),
                );
            }
            if let Some(proof) = tls13_proof(KeyAlg::P256, &device.key) {
                let (name, crls) = &loaded[0];
                jobs.decide_with(
                    &format!("crl-entry/{name}/device-{n}/policy-{i}/attest"),
                    &req,
                    &set,
                    Some(&proof),
                    Some((name, crls)),
                );
            }
        }
    }
}

/// A TLS 1.3 client CertificateVerify proof (RFC 8446 §4.4.3) for the
/// schemes rcgen can sign with.
fn tls13_proof(alg: KeyAlg, key: &rcgen::KeyPair) -> Option<Proof> {
    let scheme: u16 = match alg {
        KeyAlg::P256 => 0x0403,
        KeyAlg::P384 => 0x0503,
        KeyAlg::P521 => 0x0603,
        KeyAlg::Ed25519 => 0x0807,
        KeyAlg::Rsa2048 => return None,
    };
    let mut message = vec![0x20; 64];
    message.extend_from_slice(b"TLS 1.3, client CertificateVerify\0");
    message.extend_from_slice(&[0x42; 32]);
    let signature = rcgen::SigningKey::sign(key, &message).ok()?;
    Some(Proof::TlsSignature {
        scheme,
        message,
        signature,
    })
}

/// TLS 1.2 CertificateVerify proofs (RFC 5246 §7.4.8: the scheme names only
/// the hash) for a P-521 key with SHA-256 and SHA-384, two of the pairs
/// WIT 0.3.0 added for TLS 1.2 (the two with P-256 and P-384 keys and
/// SHA-512 have no signer in aws-lc-rs; host-js and host-py verify them in
/// their own tests with their own signers), plus the same signature under
/// the wrong hash.
fn tls12_proofs(alg: KeyAlg, key: &rcgen::KeyPair) -> Vec<(&'static str, Proof)> {
    use aws_lc_rs::signature::{
        ECDSA_P521_SHA256_ASN1_SIGNING, ECDSA_P521_SHA384_ASN1_SIGNING, EcdsaKeyPair,
    };
    if alg != KeyAlg::P521 {
        return Vec::new();
    }
    let message = b"a TLS 1.2 handshake transcript: client hello .. client key exchange".to_vec();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut out = Vec::new();
    for (name, scheme, signing) in [
        (
            "tls12-p521-sha256",
            0x0403u16,
            &ECDSA_P521_SHA256_ASN1_SIGNING,
        ),
        ("tls12-p521-sha384", 0x0503, &ECDSA_P521_SHA384_ASN1_SIGNING),
    ] {
        let pair = EcdsaKeyPair::from_pkcs8(signing, &key.serialize_der()).unwrap();
        let signature = pair.sign(&rng, &message).unwrap().as_ref().to_vec();
        out.push((
            name,
            Proof::TlsSignature {
                scheme,
                message: message.clone(),
                signature: signature.clone(),
            },
        ));
        // The scheme of the other hash: must not verify.
        out.push((
            if scheme == 0x0403 {
                "tls12-p521-sha256-as-sha384"
            } else {
                "tls12-p521-sha384-as-sha256"
            },
            Proof::TlsSignature {
                scheme: if scheme == 0x0403 { 0x0503 } else { 0x0403 },
                message: message.clone(),
                signature,
            },
        ));
    }
    out
}

/// Enrollment documents, good and bad: each loader must take or refuse each.
fn loader_cases(pki: &Canonical) -> Vec<Value> {
    let group = |id: &str, cert: &str| attest_tests::group_json(id, cert, true);
    let device = &pki.devices[0];
    let mut out = vec![
        json!({}),
        json!({"enrollmentGroups": []}),
        json!({"enrollmentGroups": [group("g", &pki.root.pem)]}),
        json!({"enrollmentGroups": [group("g", &pki.root.pem), group("g", &pki.line_a.pem)]}),
        json!({"enrollmentGroups": [group("g1", &pki.root.pem), group("g2", &pki.root.pem)]}),
        json!({"enrollmentGroups": [group("g", &device.pem)]}),
        json!({"enrollmentGroups": [group("-g", &pki.root.pem)]}),
        json!({"enrollmentGroups": [{"enrollmentGroupId": "g", "attestation": {"type": "tpm"}}]}),
        json!({"enrollmentGroups": [{"enrollmentGroupId": "g"}]}),
        json!({"enrollmentGroups": [{"EnrollmentGroupID": "g", "ProvisioningStatus": "Disabled",
            "attestation": {"TYPE": "X509", "x509": {"signingcertificates": {"primary": {"certificate": pki.root.pem}}}}}]}),
        json!({"enrollmentGroups": [{"enrollmentGroupId": "g", "provisioning_status": "enabled",
            "attestation": {"type": "x509", "x509": {"signingCertificates": {"primary": {"certificate": pki.root.pem}}}}}]}),
        json!({"enrollmentGroups": [{"enrollmentGroupId": "g", "provisioningStatus": null,
            "attestation": {"type": "x509", "x509": {"signingCertificates": {"primary": {"certificate": pki.root.pem}}}}}]}),
        json!({"enrollmentGroups": [{"enrollmentGroupId": "g", "provisioningStatus": "paused",
            "attestation": {"type": "x509", "x509": {"signingCertificates": {"primary": {"certificate": pki.root.pem}}}}}]}),
        json!({"enrollmentGroups": [{"enrollmentGroupId": "g",
            "attestation": {"type": "x509", "x509": {"caReferences": {"primary": "root"}}}}]}),
        json!({"enrollmentGroups": [{"enrollmentGroupId": "g",
            "attestation": {"type": "x509", "x509": {"signingCertificates": {"primary": {"certificate": "AAAA"}}}}}]}),
        json!({"enrollmentGroups": [{"enrollmentGroupId": "g",
            "attestation": {"type": "x509", "x509": {"signingCertificates": {"primary": {"certificate": b64(&pki.root.der)}}}}}]}),
        json!({"individualEnrollments": [attest_tests::individual_json("device-1", &device.pem, true)]}),
        json!({"individualEnrollments": [attest_tests::individual_json("device-1", &device.pem, true), attest_tests::individual_json("DEVICE-1", &device.pem, false)]}),
        json!({"individualEnrollments": [attest_tests::individual_json("device-1", &pki.line_a.pem, true)]}),
        json!({"individualEnrollments": [attest_tests::individual_json("device 1", &device.pem, true)]}),
        json!({"individualEnrollments": [{"registrationId": "device-1", "deviceId": "bad/id",
            "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": device.pem}}}}}]}),
        json!({"individualEnrollments": [{"registrationId": "device-1", "iotHubs": "hub",
            "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": device.pem}}}}}]}),
        json!({"individualEnrollments": [{"registrationId": "device-1", "reprovisionPolicy": {"updateHubAssignment": "yes"},
            "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": device.pem}}}}}]}),
        json!({"individualEnrollments": {"registrationId": "device-1"}}),
        json!([]),
    ];
    out.push(json!({"individualEnrollments": [{"registrationId": 7}]}));
    // serde_json reads 127 levels of nesting, not 128: every loader must
    // draw the line there (an unknown field may hold anything, so the
    // deeper file would otherwise load in one host and not another).
    for depth in [127, 128] {
        let mut nested = json!([]);
        for _ in 0..depth - 2 {
            nested = json!([nested]);
        }
        out.push(json!({"unknownField": nested}));
    }
    out
}

#[test]
fn node_and_python_hosts_decide_every_case_as_the_rust_host() {
    let jobs = jobs();
    assert!(jobs.jobs.len() > 4000, "{} jobs", jobs.jobs.len());
    // The proofs are real: the Rust host admits with each kind of proof
    // and refuses the mismatched ones (so sameness is not only on refusals).
    let verdict = |needle: &str, verdict: &str| {
        jobs.jobs.iter().any(|j| {
            j.job["id"].as_str().unwrap().contains(needle)
                && j.expect.contains(&format!("\"verdict\":\"{verdict}\""))
        })
    };
    for needle in [
        "/own-key#",
        "/tls13#",
        "/tls12-p521-sha256#",
        "/tls12-p521-sha384#",
        "/cli-proof#",
    ] {
        assert!(verdict(needle, "accepted"), "no accepted {needle} job");
    }
    for needle in ["/other-key#", "/tls12-p521-sha256-as-sha384#"] {
        assert!(!verdict(needle, "accepted"), "an accepted {needle} job");
    }
    let node = node_host();
    let python = python_host();
    let mut failures = jobs.compare("node", Path::new("node"), &node.join("test/run-cases.mjs"));
    failures.extend(jobs.compare("python", python, &root().join("host-py/tests/run_cases.py")));
    let shown: Vec<&String> = failures.iter().take(20).collect();
    assert!(
        failures.is_empty(),
        "{} of {} jobs differ:\n{}",
        failures.len(),
        jobs.jobs.len() * 2,
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!(
        "{} jobs, identical in the Rust, Node.js and Python hosts",
        jobs.jobs.len()
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn both_packages_carry_the_component_policy_host_embeds() {
    let embedded = sha256_hex(policy_host::COMPONENT);
    let node = node_host();
    let built = std::fs::read(node.join("dist/attest-policy.wasm")).unwrap();
    assert_eq!(
        sha256_hex(&built),
        embedded,
        "host-js/dist/attest-policy.wasm"
    );
    let recorded: Value =
        serde_json::from_str(&std::fs::read_to_string(node.join("dist/component.json")).unwrap())
            .unwrap();
    assert_eq!(recorded["sha256"], json!(embedded));
    let python = python_host();
    let shipped = run(
        Command::new(python).args(["-c", "import attest; print(attest.component_sha256())"]),
        Duration::from_secs(60),
    );
    assert_eq!(
        shipped.trim(),
        embedded,
        "the component inside the installed attest package"
    );
}

#[test]
fn host_js_tests_pass() {
    node_host();
    let out = run(
        Command::new("npm")
            .args(["--prefix", "host-js", "test"])
            .env("ATTEST_HOST_CLI", host_cli())
            .current_dir(root()),
        Duration::from_secs(600),
    );
    assert!(out.contains("# fail 0"), "{out}");
}

#[test]
fn host_py_tests_pass() {
    let python = python_host();
    // From the tests directory, so the installed package is what is tested.
    let out = run(
        Command::new(python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "."])
            .env("ATTEST_HOST_CLI", host_cli())
            .current_dir(root().join("host-py/tests")),
        Duration::from_secs(600),
    );
    assert!(out.contains(" passed"), "{out}");
}

/// `node host-js/bin/attest.js verify` and `python -m attest verify` as
/// processes, exactly as documented: the same exit code and the same
/// `--json` bytes as `host-cli verify`, on every device and step of the
/// canonical scenario, with a proof, and on an input error.
#[test]
fn the_three_verify_commands_print_the_same_bytes() {
    let node = node_host();
    let python = python_host();
    let dir = tempfile::tempdir().unwrap();
    let pki = Canonical::generate(KeyAlg::P256, ca_validity(), device_validity()).unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let at = rfc3339(VALIDATION_TIME);
    let mut command_lines: Vec<Vec<String>> = Vec::new();
    for (step, set) in pki.enrollment_steps().iter().enumerate() {
        let set = write(&format!("step{step}.json"), &set.to_string());
        for n in 1..=5 {
            let chain = write(&format!("device-{n}.pem"), &pki.chain_pem(n));
            command_lines.push(vec![
                "verify".into(),
                chain,
                "--enrollments".into(),
                set.clone(),
                "--at".into(),
                at.clone(),
                "--json".into(),
            ]);
        }
    }
    let Proof::ChallengeSignature {
        challenge,
        signature,
    } = attest_tests::challenge_proof("device-1", &pki.devices[0].key)
    else {
        unreachable!()
    };
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut with_proof = command_lines[0].clone();
    with_proof.extend([
        "--challenge".into(),
        url.encode(&challenge),
        "--signature".into(),
        url.encode(&signature),
    ]);
    command_lines.push(with_proof);
    let root_pem = write("root.pem", &pki.root.pem);
    let chain = write("device-2.pem", &pki.chain_pem(2));
    command_lines.push(vec![
        "verify".into(),
        chain.clone(),
        "--trust".into(),
        root_pem,
        "--at".into(),
        at.clone(),
        "--eku".into(),
        "any".into(),
        "--json".into(),
    ]);
    command_lines.push(vec![
        "verify".into(),
        dir.path().join("missing.pem").to_str().unwrap().into(),
        "--trust".into(),
        chain,
        "--json".into(),
    ]);

    let run_one = |program: &Path, prefix: &[&str], argv: &[String]| -> (i32, Vec<u8>) {
        let out = Command::new(program)
            .args(prefix)
            .args(argv)
            .current_dir(root())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out.status.code().expect("exited, not killed"), out.stdout)
    };
    let js = node.join("bin/attest.js");
    for argv in &command_lines {
        let rust = run_one(Path::new(host_cli()), &[], argv);
        let from_node = run_one(Path::new("node"), &[js.to_str().unwrap()], argv);
        let from_python = run_one(python, &["-m", "attest"], argv);
        assert_eq!(from_node, rust, "node: {argv:?}");
        if rust.0 == 2 {
            // Input errors: same exit code and shape; the message is each host's own.
            let doc: Value = serde_json::from_slice(&from_python.1).unwrap();
            assert_eq!(
                (from_python.0, doc["verdict"].as_str()),
                (2, Some("error")),
                "python: {argv:?}"
            );
        } else {
            assert_eq!(from_python, rust, "python: {argv:?}");
        }
    }
}

/// The Node.js and Python gateways' snapshot replicas
/// (host-js/src/snapshot.js, host-py/attest/_snapshot.py) against the Rust
/// one (attest_service::replica), on the same signed
/// snapshots of random stores written through the service's management
/// API: every apply (full, delta, tampered, rolled back) succeeds or is
/// refused alike, and every device decides to the same document, stale
/// refusals included.
#[test]
fn node_and_python_snapshot_replicas_decide_as_the_rust_replica() {
    use attest_service::replica::Replica;
    use attest_service::snapshot::{SigningKey, TrustKey};
    use attest_service::{Options, Service};
    use attest_tests::Rng;
    use policy_host::EnrollmentKind::{Group, Individual};

    let mut jobs = Jobs::new();
    let dir = tempfile::tempdir().unwrap();
    let (service, _) = Service::open(&Options {
        id_scope: "0ne00000001".into(),
        data: dir.path().join("data"),
        enrollments: None,
        database: None,
        signature_memo: 0,
        snapshot_key: None,
        snapshot_history: 1000,
        audit: None,
    })
    .unwrap();
    let (signing, _) =
        SigningKey::load_or_create(&Service::snapshot_key_path(&dir.path().join("data"))).unwrap();
    let trust_pem = signing.public_pem();
    let key = TrustKey::from_pem(trust_pem.as_bytes()).unwrap();
    let replica = Replica::open(&dir.path().join("gateway")).unwrap();
    let pki = Canonical::generate(KeyAlg::P256, ca_validity(), device_validity()).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let snapshot = |since: Option<u64>| {
        let mut out = Vec::new();
        service
            .snapshot(since)
            .unwrap()
            .write(&mut |chunk| {
                out.extend_from_slice(&chunk);
                Ok(())
            })
            .unwrap();
        out
    };
    let upsert = |kind, id: &str, doc: &Value| {
        let _ = service
            .put_enrollment(kind, id, doc, None)
            .or_else(|_| service.put_enrollment(kind, id, doc, Some("*")));
    };
    let policy = Policy::new().unwrap();
    let mut rng = Rng(0x5eed);
    let cas = [&pki.root, &pki.line_a, &pki.line_b];
    let names = ["root", "line-a", "line-b"];
    let mut outcomes = BTreeMap::<String, usize>::new();
    let mut files = 0;
    let mut apply =
        |jobs: &mut Jobs, bytes: &[u8], what: &str| {
            files += 1;
            let path = jobs.file(&format!("snapshot-{files}.ndjson"), "");
            std::fs::write(&path, bytes).unwrap();
            let applied = replica.apply(&mut &bytes[..], &key, now);
            jobs.push(
            json!({"id": format!("snapshot/{what}"), "op": "snapshot-apply", "replica": "gateway",
                "snapshot": path, "trustKey": trust_pem, "now": now}),
            if applied.is_ok() { "applied" } else { "refused" }.to_string(),
        );
            applied.is_ok()
        };
    for round in 0..30 {
        let status = |rng: &mut Rng| {
            if rng.chance(70) {
                "enabled"
            } else {
                "disabled"
            }
        };
        for _ in 0..1 + rng.below(4) {
            match rng.below(7) {
                0 | 1 => {
                    let c = rng.below(3);
                    let id = format!("group-{c}-{}", rng.below(2));
                    upsert(
                        Group,
                        &id,
                        &json!({"enrollmentGroupId": id, "provisioningStatus": status(&mut rng),
                        "attestation": {"type": "x509", "x509": {"signingCertificates": {"primary": {"certificate": cas[c].pem}}}}}),
                    );
                }
                2 => {
                    let n = 1 + rng.below(5);
                    let cert = if rng.chance(80) { n } else { 1 + rng.below(5) };
                    let id = format!("device-{n}");
                    upsert(
                        Individual,
                        &id,
                        &json!({"registrationId": id, "provisioningStatus": status(&mut rng),
                        "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": pki.devices[cert - 1].pem}}}}}),
                    );
                }
                3 => {
                    let c = rng.below(3);
                    let body = json!({"certificate": cas[c].pem, "isVerified": rng.chance(60)});
                    let _ = service
                        .put_certificate(names[c], &body, None)
                        .or_else(|_| service.put_certificate(names[c], &body, Some("*")));
                }
                4 => {
                    let c = rng.below(3);
                    let id = format!("ref-{c}");
                    upsert(
                        Group,
                        &id,
                        &json!({"enrollmentGroupId": id, "provisioningStatus": status(&mut rng),
                        "attestation": {"type": "x509", "x509": {"caReferences": {"primary": names[c]}}}}),
                    );
                }
                5 => {
                    let id = format!("device-{}", 1 + rng.below(5));
                    let _ = service.delete_enrollment(Individual, &id, Some("*"));
                }
                _ => match rng.below(3) {
                    0 => {
                        let id = format!("group-{}-{}", rng.below(3), rng.below(2));
                        let _ = service.delete_enrollment(Group, &id, Some("*"));
                    }
                    1 => {
                        let _ = service.delete_enrollment(
                            Group,
                            &format!("ref-{}", rng.below(3)),
                            Some("*"),
                        );
                    }
                    _ => {
                        let _ = service.delete_certificate(names[rng.below(3)], Some("*"));
                    }
                },
            }
        }
        let held = replica.state().unwrap().map(|s| s.version);
        let full = held.is_none() || rng.chance(15);
        let bytes = snapshot(if full { None } else { held });
        // What a gateway could be handed instead, refused by both.
        // A byte changed anywhere (header, record, signature) and a cut
        // anywhere, at random: both replicas agree on each (refused).
        if round % 2 == 1 {
            let mut tampered = bytes.clone();
            let at = rng.below(tampered.len());
            tampered[at] ^= 1 + rng.below(255) as u8;
            let what = format!("round-{round}/tampered-at-{at}");
            assert!(!apply(&mut jobs, &tampered, &what), "{what}: applied");
            let cut = rng.below(bytes.len());
            let what = format!("round-{round}/truncated-to-{cut}");
            assert!(!apply(&mut jobs, &bytes[..cut], &what), "{what}: applied");
        }
        apply(
            &mut jobs,
            &bytes,
            &format!("round-{round}/{}", if full { "full" } else { "delta" }),
        );
        if round % 7 == 6 && round > 7 {
            // An old full snapshot (version 1's file) after a newer one: rollback.
            let first = jobs.dir.path().join("snapshot-1.ndjson");
            let old = std::fs::read(&first).unwrap();
            apply(&mut jobs, &old, &format!("round-{round}/rollback"));
        }
        for n in 1..=5 {
            for (id, time, max_age) in [
                (format!("device-{n}"), VALIDATION_TIME, 86400),
                ("device-9".to_string(), VALIDATION_TIME, 86400),
                (format!("device-{n}"), now + 2 * 86400, 86400),
            ] {
                let req = AttestRequest {
                    registration_id: id.clone(),
                    leaf: pki.devices[n - 1].der.clone(),
                    intermediates: vec![pki.issuer_of(n).der.clone()],
                    time,
                    purpose: Purpose::ClientAuth,
                };
                let outcome = replica
                    .decide(&policy, &req, None, Duration::from_secs(max_age))
                    .unwrap();
                *outcomes
                    .entry(match &outcome {
                        Ok(_) => "admitted".to_string(),
                        Err(r) => r.code.as_str().to_string(),
                    })
                    .or_default() += 1;
                let expect = Report {
                    time,
                    purpose: Purpose::ClientAuth,
                    outcome: Outcome::Resolve(outcome),
                    revocation: None,
                    warnings: Vec::new(),
                }
                .json()
                .to_string();
                jobs.push(
                    json!({"id": format!("snapshot/round-{round}/device-{n}-as-{id}"), "op": "snapshot-resolve",
                        "replica": "gateway", "registrationId": id, "leaf": b64(&req.leaf),
                        "intermediates": [b64(&req.intermediates[0])], "time": time,
                        "purpose": "clientAuth", "maxAge": max_age}),
                    expect,
                );
            }
        }
    }
    // The stores were not trivial: admissions, stale and other refusals.
    assert!(outcomes.contains_key("admitted"), "{outcomes:?}");
    assert!(outcomes.contains_key("enrollments-stale"), "{outcomes:?}");
    assert!(outcomes.len() >= 4, "{outcomes:?}");
    let node = node_host();
    let mut failures = jobs.compare("node", Path::new("node"), &node.join("test/run-cases.mjs"));
    let python = python_host();
    failures.extend(jobs.compare("python", python, &root().join("host-py/tests/run_cases.py")));
    assert!(
        failures.is_empty(),
        "{} of {} jobs differ:\n{}",
        failures.len(),
        jobs.jobs.len(),
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!(
        "{} snapshot jobs, identical in the Rust, Node.js and Python replicas: {outcomes:?}",
        jobs.jobs.len()
    );

    // One replica file, two hosts: what Python applied, Node.js decides
    // from, and the other way round, as the Rust replica does.
    let bytes = snapshot(None);
    let rust = Replica::open(&dir.path().join("rust-full")).unwrap();
    rust.apply(&mut &bytes[..], &key, now).unwrap();
    let mut failures = Vec::new();
    for (writer, reader) in [(python, Path::new("node")), (Path::new("node"), python)] {
        let runner = |p: &Path| {
            if p == python {
                root().join("host-py/tests/run_cases.py")
            } else {
                node.join("test/run-cases.mjs")
            }
        };
        let shared = jobs.dir.path().join(format!(
            "shared-by-{}",
            writer.file_name().unwrap().to_string_lossy()
        ));
        let shared = shared.to_str().unwrap();
        let mut write = Jobs::new();
        let path = write.file("full.ndjson", "");
        std::fs::write(&path, &bytes).unwrap();
        write.push(
            json!({"id": "shared/apply", "op": "snapshot-apply", "replica": shared,
                "snapshot": path, "trustKey": trust_pem, "now": now}),
            "applied".to_string(),
        );
        failures.extend(write.compare("writer", writer, &runner(writer)));
        let mut read = Jobs::new();
        for n in 1..=5 {
            let req = AttestRequest {
                registration_id: format!("device-{n}"),
                leaf: pki.devices[n - 1].der.clone(),
                intermediates: vec![pki.issuer_of(n).der.clone()],
                time: VALIDATION_TIME,
                purpose: Purpose::ClientAuth,
            };
            let outcome = rust
                .decide(&policy, &req, None, Duration::from_secs(86400))
                .unwrap();
            let expect = Report {
                time: VALIDATION_TIME,
                purpose: Purpose::ClientAuth,
                outcome: Outcome::Resolve(outcome),
                revocation: None,
                warnings: Vec::new(),
            }
            .json()
            .to_string();
            read.push(
                json!({"id": format!("shared/device-{n}"), "op": "snapshot-resolve", "replica": shared,
                    "registrationId": req.registration_id, "leaf": b64(&req.leaf),
                    "intermediates": [b64(&req.intermediates[0])], "time": VALIDATION_TIME,
                    "purpose": "clientAuth", "maxAge": 86400}),
                expect,
            );
        }
        failures.extend(read.compare("reader", reader, &runner(reader)));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
