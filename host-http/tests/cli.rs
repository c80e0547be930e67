//! The host-http binary: start contract, first-start output, clean
//! shutdown on SIGTERM and SIGINT, start-up errors as exit code 2.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn host_http() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_host-http"));
    c.env(
        "ATTEST_CACHE_DIR",
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("attest-cache"),
    );
    c
}

/// Starts the binary and waits for its "listening on" line; returns the
/// child, its stdout so far, the rest of stdout, and the bound address.
// The child is returned; every caller waits for it.
#[allow(clippy::zombie_processes)]
fn start(
    data: &std::path::Path,
    extra: &[&std::ffi::OsStr],
) -> (
    Child,
    String,
    BufReader<std::process::ChildStdout>,
    std::net::SocketAddr,
) {
    let mut child = host_http()
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let started = Instant::now();
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 || started.elapsed() > Duration::from_secs(120)
        {
            let _ = child.kill();
            let _ = child.wait();
            panic!("host-http did not start: {seen}");
        }
        seen.push_str(&line);
        if let Some(rest) = line.strip_prefix("listening on https://") {
            let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
            return (child, seen, stdout, addr);
        }
    }
}

/// Starts the service, sends `signal`, and returns (stdout, exit code).
fn start_and_stop(data: &std::path::Path, signal: &str) -> (String, i32) {
    let (mut child, seen, mut stdout, _) = start(data, &[]);
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("host-http did not stop on {signal}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stdout, &mut rest);
    (seen + &rest, code)
}

#[test]
fn first_start_explains_itself_and_signals_stop_it_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (out, code) = start_and_stop(&data, "-TERM");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("management policy 'provisioningserviceowner', key "),
        "{out}"
    );
    assert!(out.contains("development TLS certificate"), "{out}");
    assert!(out.contains("shutting down"), "{out}");
    assert!(data.join("tls/dev-server-ca.pem").exists());
    // Second start: the key is not shown again.
    let (out, code) = start_and_stop(&data, "-INT");
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("key "), "{out}");
    // A token from the same configuration.
    let token = host_http()
        .args(["token", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(token.status.success());
    assert!(
        String::from_utf8_lossy(&token.stdout)
            .starts_with("SharedAccessSignature sr=localhost&sig=")
    );
    // --policy picks a policy by name; an unknown one is exit 2 naming those there are.
    let named = host_http()
        .args(["token", "--policy", "provisioningserviceowner", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&named.stdout).contains("skn=provisioningserviceowner"));
    let unknown = host_http()
        .args(["token", "--policy", "reader", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        err.contains("no shared access policy named \"reader\" (it has: provisioningserviceowner)"),
        "{err}"
    );
    // The connection string `host-cli import` takes, with the stored key.
    let out = host_http()
        .args(["connection-string", "--host", "localhost:9443", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = std::fs::read_to_string(data.join("config.json")).unwrap();
    let config: host_http::ServiceConfig = serde_json::from_str(&text).unwrap();
    let p = &config.shared_access_policies[0];
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "HostName=localhost:9443;SharedAccessKeyName={};SharedAccessKey={}",
            p.key_name, p.primary_key
        )
    );
}

/// `host-http snapshot-key --data DIR` prints the public key of the key
/// the service signs snapshots with (created at first start, the same on
/// every call); `--key FILE` reads a given one; a file that is no key is
/// exit 2 with one line.
#[test]
fn snapshot_key_prints_the_signing_keys_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (out, code) = start_and_stop(&data, "-TERM");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("created the edge snapshot signing key"),
        "{out}"
    );
    let key = |args: &[&str]| host_http().arg("snapshot-key").args(args).output().unwrap();
    let data_arg = data.display().to_string();
    let first = key(&["--data", &data_arg]);
    assert!(first.status.success());
    let pem = String::from_utf8(first.stdout).unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
    let signing =
        attest_service::snapshot::SigningKey::load(&data.join("snapshot-key.pem")).unwrap();
    assert_eq!(pem, signing.public_pem());
    assert!(attest_service::snapshot::TrustKey::from_pem(pem.as_bytes()).is_ok());
    assert_eq!(key(&["--data", &data_arg]).stdout, pem.as_bytes(), "stable");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a key").unwrap();
    let bad = key(&["--key", &junk.display().to_string()]);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&bad.stderr).lines().count(), 1);
    // A policy for gateways: only the rights named, a fresh key.
    let add = |args: &[&str]| {
        host_http()
            .arg("add-policy")
            .args(args)
            .args(["--data", &data_arg])
            .output()
            .unwrap()
    };
    let added = add(&["gateway", "--rights", "SnapshotRead,EdgeDecisionWrite"]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(
        String::from_utf8_lossy(&added.stdout)
            .contains("'gateway' (SnapshotRead, EdgeDecisionWrite)")
    );
    let config = host_http::ServiceConfig::load(&data).unwrap();
    let gateway = config.shared_access_policies.last().unwrap();
    assert_eq!(gateway.key_name, "gateway");
    assert!(gateway.grants(attest_dps::sas::Right::SnapshotRead));
    assert!(!gateway.grants(attest_dps::sas::Right::EnrollmentRead));
    for bad in [
        &["gateway", "--rights", "SnapshotRead"][..],
        &["other", "--rights", "Everything"],
        &["a b", "--rights", "SnapshotRead"],
    ] {
        let r = add(bad);
        assert_eq!(r.status.code(), Some(2), "{bad:?}");
        assert_eq!(
            String::from_utf8_lossy(&r.stderr).lines().count(),
            1,
            "{bad:?}"
        );
    }
    // The second start reuses it: it is not created again.
    let (out, _) = start_and_stop(&data, "-TERM");
    assert!(!out.contains("snapshot signing key"), "{out}");
}

#[test]
fn start_up_errors_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--id-scope", "bad scope!"], "--id-scope"),
        (vec!["--tls-cert", "x.pem"], "--tls-key"),
        (
            vec!["--enrollments", "/nonexistent/file.json"],
            "/nonexistent/file.json",
        ),
        (vec!["--listen", "not-an-address"], "--listen"),
        (vec!["token", "--data", "/nonexistent/dir"], "config.json"),
        (
            vec!["connection-string", "--data", "/nonexistent/dir"],
            "config.json",
        ),
    ];
    for (args, expect) in cases {
        let out = host_http()
            .args(&args)
            .args(if args[0] == "token" || args[0] == "connection-string" {
                vec![]
            } else {
                vec!["--data", dir.path().to_str().unwrap()]
            })
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let bad_file = dir.path().join("bad.json");
    std::fs::write(
        &bad_file,
        "{\"enrollmentGroups\":[{\"enrollmentGroupId\":\"g\",\"attestation\":{\"type\":\"tpm\"}}]}",
    )
    .unwrap();
    let out = host_http()
        .args(["--listen", "127.0.0.1:0", "--enrollments"])
        .arg(&bad_file)
        .arg("--data")
        .arg(dir.path().join("d2"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("enrollmentGroups[0] ('g')") && stderr.contains("tpm"),
        "{stderr}"
    );
}

#[test]
fn an_acknowledged_registration_survives_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let pki = support::canonical();
    let file = dir.path().join("enrollments.json");
    std::fs::write(&file, pki.enrollment_steps()[0].to_string()).unwrap();
    let data = dir.path().join("data");
    let (mut child, _, _, addr) = start(&data, &["--enrollments".as_ref(), file.as_os_str()]);
    let (chain, key) = support::device(&pki, 2);
    let (cert_path, key_path) = (dir.path().join("d.pem"), dir.path().join("d.key"));
    std::fs::write(&cert_path, chain).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let (_, answer) = host_cli::register::register(&host_cli::register::RegisterArgs {
        server: format!("https://localhost:{}", addr.port()),
        transport: host_cli::register::Transport::Https,
        id_scope: support::SCOPE.into(),
        cert: cert_path,
        key: key_path,
        ca: data.join("tls/dev-server-ca.pem"),
        registration_id: None,
        json: false,
    })
    .unwrap();
    assert_eq!(answer.status(), "assigned");
    // SIGKILL right after the acknowledgement: no shutdown, no flush.
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut child, _, _, addr) = start(&data, &[]);
    let text = std::fs::read_to_string(data.join("config.json")).unwrap();
    let config: host_http::ServiceConfig = serde_json::from_str(&text).unwrap();
    let expiry = time::OffsetDateTime::now_utc().unix_timestamp() + 600;
    let token =
        attest_dps::sas::token(&config.shared_access_policies[0], "localhost", expiry).unwrap();
    let record = support::Client::new(addr, &data.join("tls/dev-server-ca.pem")).call(
        "GET",
        "/registrations/device-2",
        vec![],
        &[("authorization", &token)],
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(record.status, 200, "{record:?}");
    assert_eq!(record.body, answer.body["registrationState"]);
}
