//! `host-cli` end to end: every exit code, the canonical scenario, proof of
//! possession, and bad input (each a one-line error, never a panic or hang).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use std::path::{Path, PathBuf};
use std::process::Command;

use attest_pki::{Ca, Canonical, KeyAlg, Validity};
use time::macros::datetime;

const AT: &str = "2026-06-01T00:00:00Z";

mod common;
use common::{Run, host_cli};

fn fixed() -> (Validity, Validity) {
    (
        Validity {
            not_before: datetime!(2025-01-01 00:00 UTC),
            not_after: datetime!(2035-01-01 00:00 UTC),
        },
        Validity {
            not_before: datetime!(2025-06-01 00:00 UTC),
            not_after: datetime!(2028-06-01 00:00 UTC),
        },
    )
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    pki: Canonical,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let (ca, dev) = fixed();
        let pki = Canonical::generate(KeyAlg::P256, ca, dev).unwrap();
        for n in 1..=5 {
            std::fs::write(path.join(format!("device-{n}.pem")), pki.chain_pem(n)).unwrap();
            std::fs::write(
                path.join(format!("device-{n}.key")),
                pki.devices[n - 1].key.serialize_pem(),
            )
            .unwrap();
        }
        std::fs::write(path.join("root.pem"), &pki.root.pem).unwrap();
        for (i, set) in pki.enrollment_steps().iter().enumerate() {
            std::fs::write(path.join(format!("step{}.json", i + 1)), set.to_string()).unwrap();
        }
        Fixture {
            _dir: dir,
            path,
            pki,
        }
    }

    fn p(&self, name: &str) -> String {
        self.path.join(name).display().to_string()
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        std::fs::write(self.path.join(name), contents).unwrap();
        self.p(name)
    }
}

#[test]
fn canonical_scenario_through_the_cli() {
    let f = Fixture::new();
    let expect = [
        ("step1.json", [0, 0, 0, 0, 0]),
        ("step2.json", [0, 0, 0, 1, 1]),
        ("step3.json", [0, 0, 1, 1, 1]),
    ];
    for (step, codes) in expect {
        for (i, want) in codes.iter().enumerate() {
            let chain = f.p(&format!("device-{}.pem", i + 1));
            let run = host_cli(&["verify", &chain, "--enrollments", &f.p(step), "--at", AT]);
            assert_eq!(
                run.code,
                *want,
                "{step} device-{}: {}{}",
                i + 1,
                run.stdout,
                run.stderr
            );
        }
    }
    let run = host_cli(&[
        "verify",
        &f.p("device-4.pem"),
        "--enrollments",
        &f.p("step2.json"),
        "--at",
        AT,
    ]);
    assert!(
        run.stdout
            .starts_with("REFUSED   enrollment-group-disabled"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("chain position 1 'CN=attest demo line B CA'")
    );
    assert!(run.stdout.contains("enrollment group 'line-b'"));
    let run = host_cli(&[
        "verify",
        &f.p("device-1.pem"),
        "--enrollments",
        &f.p("step3.json"),
        "--at",
        AT,
    ]);
    assert!(
        run.stdout
            .contains("ACCEPTED  device-1 is admitted by enrollment group 'all-devices'")
    );
}

#[test]
fn chain_mode_and_json() {
    let f = Fixture::new();
    let run = host_cli(&[
        "verify",
        &f.p("device-2.pem"),
        "--trust",
        &f.p("root.pem"),
        "--at",
        AT,
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["verdict"], "accepted");
    assert_eq!(v["path"].as_array().unwrap().len(), 3);
    // Expired by --at.
    let run = host_cli(&[
        "verify",
        &f.p("device-2.pem"),
        "--trust",
        &f.p("root.pem"),
        "--at",
        "2030-01-01T00:00:00Z",
        "--json",
    ]);
    assert_eq!(run.code, 1);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["refusal"]["code"], "certificate-expired");
    assert_eq!(v["refusal"]["certificate"]["position"], 0);
    // serverAuth required of a clientAuth device; any purpose accepted.
    for (eku, code) in [("serverAuth", 1), ("anyExtendedKeyUsage", 0), ("any", 0)] {
        let (chain, trust) = (f.p("device-2.pem"), f.p("root.pem"));
        let run = host_cli(&[
            "verify", &chain, "--trust", &trust, "--at", AT, "--eku", eku,
        ]);
        assert_eq!(run.code, code, "--eku {eku}: {}", run.stdout);
        if code == 1 {
            assert!(run.stdout.contains("extended-key-usage-not-permitted"));
        }
    }
}

#[test]
fn proof_of_possession_round_trip() {
    let f = Fixture::new();
    let challenge = host_cli(&["challenge"]);
    assert_eq!(challenge.code, 0);
    let c = challenge.stdout.trim().to_string();
    assert_eq!(c.len(), 43, "32 bytes base64url");
    let sig = host_cli(&[
        "sign",
        "--key",
        &f.p("device-1.key"),
        "--cert",
        &f.p("device-1.pem"),
        "--challenge",
        &c,
    ]);
    assert_eq!(sig.code, 0, "{}", sig.stderr);
    let s = sig.stdout.trim().to_string();
    let verify_pop = |signature: &str| {
        let (chain, set) = (f.p("device-1.pem"), f.p("step1.json"));
        host_cli(&[
            "verify",
            &chain,
            "--enrollments",
            &set,
            "--at",
            AT,
            "--challenge",
            &c,
            "--signature",
            signature,
        ])
    };
    let ok = verify_pop(&s);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert!(ok.stdout.contains("proof of possession: verified"));
    // device-2's key signing for device-1 is refused.
    let wrong = host_cli(&[
        "sign",
        "--key",
        &f.p("device-2.key"),
        "--registration-id",
        "device-1",
        "--challenge",
        &c,
    ]);
    let bad = verify_pop(wrong.stdout.trim());
    assert_eq!(bad.code, 1);
    assert!(bad.stdout.contains("proof-of-possession-failed"));
    let _ = &f.pki;
}

/// Regression: base64url challenges and signatures that start with '-'
/// were parsed as flags (seen as a flaky `proof_of_possession_round_trip`).
#[test]
fn challenge_and_signature_may_start_with_a_hyphen() {
    let f = Fixture::new();
    // 0xF8 encodes to '-' as the first base64url character.
    let c = host_cli::input::base64_encode(&[0xF8; 32]);
    assert!(c.starts_with('-'));
    let sig = host_cli(&[
        "sign",
        "--key",
        &f.p("device-1.key"),
        "--registration-id",
        "device-1",
        "--challenge",
        &c,
    ]);
    assert_eq!(sig.code, 0, "{}", sig.stderr);
    let (chain, set) = (f.p("device-1.pem"), f.p("step1.json"));
    let run = host_cli(&[
        "verify",
        &chain,
        "--enrollments",
        &set,
        "--at",
        AT,
        "--challenge",
        &c,
        "--signature",
        sig.stdout.trim(),
    ]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}

fn assert_input_error(run: &Run, needle: &str) {
    assert_eq!(run.code, 2, "stdout {} stderr {}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(lines[0].starts_with("error: "), "{}", run.stderr);
    // Input errors are one line; clap's usage errors add a usage hint.
    let max = if lines[0].contains("argument") { 8 } else { 1 };
    assert!(lines.len() <= max, "short message: {}", run.stderr);
    assert!(
        run.stderr.contains(needle),
        "{needle:?} not in {}",
        run.stderr
    );
}

#[test]
fn bad_input_is_exit_2_with_one_line() {
    let f = Fixture::new();
    let trust = f.p("root.pem");
    let v = |chain: &str| host_cli(&["verify", chain, "--trust", &trust, "--at", AT]);
    assert_input_error(&v(&f.p("missing.pem")), "cannot read");
    assert_input_error(&v(&f.write("empty.pem", "")), "is empty");
    assert_input_error(
        &v(&f.write("text.pem", "hello world\n")),
        "no PEM certificate",
    );
    assert_input_error(
        &v(&f.write(
            "garbage.pem",
            "-----BEGIN CERTIFICATE-----\n%%%%not-base64%%%%\n-----END CERTIFICATE-----\n",
        )),
        "not valid PEM",
    );
    assert_input_error(
        &v(&f.write("big.pem", vec![b'A'; 10 * 1024 * 1024])),
        "limit",
    );
    assert_input_error(&v(&f.path.display().to_string()), "directory");
    assert_input_error(
        &host_cli(&[
            "verify",
            &f.p("device-1.pem"),
            "--trust",
            &trust,
            "--at",
            "yesterday",
        ]),
        "RFC 3339",
    );
    assert_input_error(&host_cli(&["verify", &f.p("device-1.pem")]), "--trust");
    assert_input_error(
        &host_cli(&[
            "verify",
            &f.p("device-1.pem"),
            "--enrollments",
            &f.write("bad.json", "{\"enrollmentGroups\": 7}"),
        ]),
        "DPS JSON",
    );
    assert_input_error(
        &host_cli(&["verify", &f.p("device-1.pem"), "--bogus"]),
        "--bogus",
    );
    assert_input_error(
        &host_cli(&[
            "sign",
            "--key",
            &f.p("root.pem"),
            "--registration-id",
            "d",
            "--challenge",
            "AAAAAAAAAAAAAAAAAAAAAA",
        ]),
        "PKCS#8",
    );
    assert_input_error(
        &host_cli(&[
            "verify",
            &f.p("device-1.pem"),
            "--enrollments",
            &f.p("step1.json"),
            "--challenge",
            "!!",
            "--signature",
            "AA",
        ]),
        "not base64",
    );
}

#[test]
fn hostile_chains_are_refused_with_exit_1() {
    let f = Fixture::new();
    let trust = f.p("root.pem");
    // Truncated DER inside valid PEM.
    let leaf = &f.pki.devices[0].der;
    let truncated = pem(&leaf[..leaf.len() / 2]);
    let run = verify_with_trust(&f.write("trunc.pem", truncated), &trust);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("malformed-certificate"));

    // A 50-certificate chain.
    let (ca_v, dev_v) = fixed();
    let cas = attest_pki::ca_line(50, KeyAlg::P256, ca_v).unwrap();
    let deep_leaf = cas[49].device("deep", KeyAlg::P256, dev_v).unwrap();
    let mut text = deep_leaf.pem.clone();
    for ca in cas.iter().rev() {
        text.push_str(&ca.pem);
    }
    std::fs::write(f.path.join("deep-root.pem"), &cas[0].pem).unwrap();
    let run = verify_with_trust(&f.write("deep.pem", text), &f.p("deep-root.pem"));
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("path-budget-exceeded"),
        "{}",
        run.stdout
    );

    // An intermediate loop: X and Y issue each other.
    let x = Ca::root("X", KeyAlg::P256, ca_v).unwrap();
    let y = x.intermediate("Y", KeyAlg::P256, ca_v).unwrap();
    let x_by_y = y
        .issue_ca(
            attest_pki::ca_params("X", ca_v, None),
            rcgen::KeyPair::from_pem(&x.key.serialize_pem()).unwrap(),
        )
        .unwrap();
    let looped = y.device("loop", KeyAlg::P256, dev_v).unwrap();
    let text = format!("{}{}{}", looped.pem, y.pem, x_by_y.pem);
    let run = verify_with_trust(&f.write("loop.pem", text), &trust);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("unknown-issuer"));
}

fn verify_with_trust(chain: &str, trust: &str) -> Run {
    host_cli(&["verify", chain, "--trust", trust, "--at", AT])
}

fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap());
        s.push('\n');
    }
    s.push_str("-----END CERTIFICATE-----\n");
    s
}

#[test]
fn pki_demo_writes_a_usable_hierarchy() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let run = host_cli(&["pki", "demo", &out.display().to_string()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for name in [
        "root-ca.pem",
        "line-a-ca.pem",
        "line-b-ca.key",
        "device-5.pem",
        "device-5.key",
        "enrollments-3-device-3-disabled.json",
    ] {
        assert!(out.join(name).is_file(), "{name} missing");
    }
    let chain = out.join("device-5.pem").display().to_string();
    let run = host_cli(&[
        "verify",
        &chain,
        "--enrollments",
        &out.join("enrollments-2-line-b-disabled.json")
            .display()
            .to_string(),
    ]);
    assert_eq!(run.code, 1);
    let run = host_cli(&[
        "verify",
        &chain,
        "--enrollments",
        &out.join("enrollments-1-root-enabled.json")
            .display()
            .to_string(),
    ]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    // The demo's CRLs: line A revokes device-2, not device-1.
    let (trust, crls) = (
        out.join("root-ca.pem").display().to_string(),
        out.join("crls.pem").display().to_string(),
    );
    for (n, code) in [(1, 0), (2, 1), (5, 0)] {
        let chain = out.join(format!("device-{n}.pem")).display().to_string();
        let run = host_cli(&["verify", &chain, "--trust", &trust, "--crl", &crls]);
        assert_eq!(run.code, code, "device-{n}: {}{}", run.stdout, run.stderr);
        if code == 1 {
            assert!(run.stdout.contains("certificate-revoked"), "{}", run.stdout);
        }
    }
}

#[test]
fn help_is_success_and_usage_errors_are_2() {
    assert_eq!(host_cli(&["--help"]).code, 0);
    assert_eq!(host_cli(&["verify", "--help"]).code, 0);
    assert_eq!(host_cli(&[]).code, 2);
    assert_eq!(host_cli(&["frobnicate"]).code, 2);
}

/// Regression (issue 8, item 1), end to end: a sub-CA under line B (whose
/// group step 2 disables) that the root has also cross-signed. `verify`
/// used to admit the device when the cross-signed certificate came first;
/// now both orders are refused by line B's group.
#[test]
fn verify_refuses_a_cross_signed_route_around_a_disabled_group() {
    let f = Fixture::new();
    let (ca_v, dev_v) = fixed();
    let x_by_b = f
        .pki
        .line_b
        .intermediate("Sub X", KeyAlg::P256, ca_v)
        .unwrap();
    let x_by_root = f
        .pki
        .root
        .issue_ca(
            attest_pki::ca_params("Sub X", ca_v, None),
            rcgen::KeyPair::from_pem(&x_by_b.key.serialize_pem()).unwrap(),
        )
        .unwrap();
    let leaf = x_by_b.device("device-6", KeyAlg::P256, dev_v).unwrap();
    for (name, first, second) in [
        ("b-first.pem", &x_by_b, &x_by_root),
        ("root-first.pem", &x_by_root, &x_by_b),
    ] {
        let chain = f.write(name, format!("{}{}{}", leaf.pem, first.pem, second.pem));
        let run = host_cli(&[
            "verify",
            &chain,
            "--enrollments",
            &f.p("step2.json"),
            "--at",
            AT,
        ]);
        assert_eq!(run.code, 1, "{name}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stdout.contains("enrollment-group-disabled") && run.stdout.contains("line-b"),
            "{name}: {}",
            run.stdout
        );
    }
}

/// Regressions (issue 9, items 9 and 10): inputs are read with a bound
/// (`/dev/zero` used to be read until memory ran out), `verify` runs under
/// a 4 GiB address-space limit (it used to reserve ~516 GiB for a sandbox
/// pool), and an unusable leaf exits 1 with the same refusal whether it is
/// checked with `--trust` or `--enrollments` (it used to exit 2 with the
/// latter).
#[test]
fn bounded_inputs_small_address_space_and_consistent_exit_codes() {
    let f = Fixture::new();
    for args in [
        vec!["verify", "/dev/zero", "--trust", &f.p("root.pem")],
        vec!["verify", &f.p("device-1.pem"), "--enrollments", "/dev/zero"],
        vec!["verify", &f.p("device-1.pem"), "--trust", "/dev/zero"],
    ] {
        let run = host_cli(&args);
        assert_eq!(run.code, 2, "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("byte limit"),
            "{args:?}: {}",
            run.stderr
        );
    }

    let limited = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v 4194304 && exec '{}' verify '{}' --enrollments '{}' --at {AT}",
            env!("CARGO_BIN_EXE_host-cli"),
            f.p("device-1.pem"),
            f.p("step1.json"),
        ))
        .env(
            "ATTEST_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("attest-cache"),
        )
        .output()
        .unwrap();
    assert_eq!(
        limited.status.code(),
        Some(0),
        "under ulimit -v 4 GiB: {}{}",
        String::from_utf8_lossy(&limited.stdout),
        String::from_utf8_lossy(&limited.stderr)
    );

    let oversized = f.write("oversized.pem", pem(&vec![0x30; 17 * 1024]));
    for run in [
        verify_with_trust(&oversized, &f.p("root.pem")),
        host_cli(&[
            "verify",
            &oversized,
            "--enrollments",
            &f.p("step1.json"),
            "--at",
            AT,
        ]),
    ] {
        assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
        assert!(run.stdout.contains("input-too-large"), "{}", run.stdout);
    }
}

#[test]
fn component_writes_the_exact_embedded_bytes() {
    use sha2::Digest as _;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("policy.wasm");
    let run = host_cli(&["component", "--out", out.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let written = std::fs::read(&out).unwrap();
    assert_eq!(
        written,
        policy_host::COMPONENT,
        "byte for byte what policy-host embeds"
    );
    let digest = hex::encode(sha2::Sha256::digest(&written));
    assert!(
        run.stdout.starts_with(&digest),
        "prints the SHA-256: {}",
        run.stdout
    );
    // Replaced whole, never appended to; no temporary file is left behind.
    std::fs::write(&out, b"old").unwrap();
    assert_eq!(
        host_cli(&["component", "--out", out.to_str().unwrap()]).code,
        0
    );
    assert_eq!(std::fs::read(&out).unwrap(), policy_host::COMPONENT);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // An unwritable destination is exit 2 with one line.
    let bad = host_cli(&["component", "--out", "/nonexistent-dir/policy.wasm"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr
            .starts_with("error: cannot write /nonexistent-dir/policy.wasm"),
        "{}",
        bad.stderr
    );
    assert_eq!(bad.stderr.lines().count(), 1, "{}", bad.stderr);
}

/// A host-http on a free loopback port, seeded with `enrollments`.
struct Service {
    runtime: tokio::runtime::Runtime,
    running: Option<host_http::Running>,
    data: PathBuf,
    url: String,
}

impl Service {
    fn start(data: &Path, enrollments: &str) -> Service {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let options = host_http::Options {
            listen: "127.0.0.1:0".parse().unwrap(),
            mqtt_listen: None,
            id_scope: "0ne00000001".into(),
            data: data.to_path_buf(),
            tls_cert: None,
            tls_key: None,
            enrollments: Some(enrollments.into()),
            database: None,
            signature_memo: 0,
            idle_timeout: host_http::DEFAULT_IDLE_TIMEOUT_SECONDS,
            snapshot_key: None,
            snapshot_history: 1000,
            audit: None,
            metrics_listen: None,
        };
        let running = runtime.block_on(host_http::start(options)).unwrap();
        let url = format!("https://localhost:{}", running.addr.port());
        Service {
            runtime,
            running: Some(running),
            data: data.to_path_buf(),
            url,
        }
    }

    fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            self.runtime.block_on(r.shutdown());
        }
    }

    fn token(&self) -> String {
        let config = host_http::ServiceConfig::load(&self.data).unwrap();
        let expiry = time::OffsetDateTime::now_utc().unix_timestamp() + 600;
        attest_dps::sas::token(&config.shared_access_policies[0], "localhost", expiry).unwrap()
    }

    /// A management write through another replica of the same store.
    fn replica(&self) -> attest_service::Service {
        attest_service::Service::open(&attest_service::Options {
            id_scope: "0ne00000001".into(),
            data: self.data.clone(),
            enrollments: None,
            database: None,
            signature_memo: 0,
            snapshot_key: None,
            snapshot_history: 1000,
            audit: None,
        })
        .unwrap()
        .0
    }
}

/// `host-cli sync` and `verify --snapshot` as the contract says: exit 0
/// and one summary line on a sync; 2 and one line on stderr on any error,
/// the last good snapshot untouched; verify decides from the snapshot as
/// the service would, offline too, and refuses every device once the
/// snapshot is older than --max-age at --at.
#[test]
fn sync_and_verify_from_a_snapshot() {
    let f = Fixture::new();
    let mut service = Service::start(&f.path.join("data"), &f.p("step2.json"));
    let key =
        attest_service::snapshot::SigningKey::load(&f.path.join("data/snapshot-key.pem")).unwrap();
    let trust = f.write("trust.pem", key.public_pem());
    let ca = service
        .data
        .join("tls/dev-server-ca.pem")
        .display()
        .to_string();
    let token = service.token();
    let url = service.url.clone();
    let gw = f.p("gateway");
    let sync_with = |token: &str, trust: &str| {
        host_cli(&[
            "sync",
            "--server",
            &url,
            "--ca",
            &ca,
            "--token",
            token,
            "--trust-key",
            trust,
            "--dir",
            &gw,
        ])
    };
    let sync = |trust: &str| sync_with(&token, trust);
    let verify = |n: usize, extra: &[&str]| {
        let chain = f.p(&format!("device-{n}.pem"));
        let mut args = vec!["verify", chain.as_str(), "--snapshot", gw.as_str()];
        args.extend_from_slice(extra);
        host_cli(&args)
    };
    // Before any sync: a usage error, not a decision.
    let r = verify(1, &[]);
    assert_eq!((r.code, r.stderr.lines().count()), (2, 1), "{}", r.stderr);

    let r = sync(&trust);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("synced ") && r.stdout.contains("full snapshot"),
        "{}",
        r.stdout
    );
    let codes: Vec<i32> = (1..=5).map(|n| verify(n, &[]).code).collect();
    assert_eq!(codes, [0, 0, 0, 1, 1], "step 2: line B disabled");

    // Another service's key: exit 2, one line, the snapshot kept.
    let other = attest_service::snapshot::SigningKey::load_or_create(&f.path.join("other.pem"))
        .unwrap()
        .0;
    let other = f.write("other-trust.pem", other.public_pem());
    let r = sync(&other);
    assert_eq!((r.code, r.stderr.lines().count()), (2, 1), "{}", r.stderr);
    assert!(r.stderr.contains("another key"), "{}", r.stderr);
    assert_eq!(verify(1, &[]).code, 0, "the last good snapshot is kept");
    // Garbage as the key, a wrong token: exit 2, one line.
    let junk = f.write("junk.pem", "not a key");
    let r = sync(&junk);
    assert_eq!((r.code, r.stderr.lines().count()), (2, 1), "{}", r.stderr);
    let r = sync_with("SharedAccessSignature sr=x&sig=y&se=1&skn=z", &trust);
    assert_eq!((r.code, r.stderr.lines().count()), (2, 1), "{}", r.stderr);
    assert!(r.stderr.contains("401"), "{}", r.stderr);

    // The root's group disabled on the service: the gateway syncs a delta
    // and refuses devices 1-3 too.
    let steps = f.pki.enrollment_steps();
    let mut root = steps[1]["enrollmentGroups"][0].clone();
    root["provisioningStatus"] = serde_json::json!("disabled");
    service
        .replica()
        .put_enrollment(
            policy_host::EnrollmentKind::Group,
            "all-devices",
            &root,
            Some("*"),
        )
        .unwrap();
    let r = sync(&trust);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("delta from version"), "{}", r.stdout);
    let r = verify(1, &["--json"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("enrollment-group-disabled"),
        "{}",
        r.stdout
    );

    // The service down: sync fails (2, one line), the gateway still decides.
    service.stop();
    let r = sync(&trust);
    assert_eq!((r.code, r.stderr.lines().count()), (2, 1), "{}", r.stderr);
    assert_eq!(verify(1, &[]).code, 1);
    // Aged out at --at: every device refused with enrollments-stale.
    let later = (time::OffsetDateTime::now_utc() + time::Duration::hours(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for n in 1..=5 {
        let r = verify(n, &["--max-age", "1h", "--at", &later, "--json"]);
        assert_eq!(r.code, 1, "{}", r.stdout);
        assert!(r.stdout.contains("enrollments-stale"), "{}", r.stdout);
    }
    let r = verify(1, &["--max-age", "3h", "--at", &later]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("enrollment-group-disabled"),
        "{}",
        r.stdout
    );
    let r = verify(1, &["--max-age", "soon"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--max-age"), "{}", r.stderr);
}
