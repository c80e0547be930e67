//! A real client: the Azure IoT Node.js device SDK (npm
//! `azure-iot-provisioning-device` + `azure-iot-provisioning-device-http` +
//! `azure-iot-security-x509`, pinned in `tests/node-sdk/package-lock.json`)
//! registers SPEC §1's canonical devices against host-http, unmodified.
//! Needs `node` and `npm` on PATH and the npm registry (or npm's cache).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{SCOPE, Server, canonical, device};

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/node-sdk")
}

/// Runs a command with a deadline; panics with its output on failure.
fn run(cmd: &mut Command, limit: Duration) -> String {
    let started = Instant::now();
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (is Node.js installed?): {e}"));
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("{cmd:?} did not finish in {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn azure_iot_node_sdk_registers_against_host_http() {
    let dir = sdk_dir();
    if !dir
        .join("node_modules/azure-iot-provisioning-device-http")
        .exists()
    {
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--prefer-offline"])
                .current_dir(&dir),
            Duration::from_secs(600),
        );
    }
    let work = tempfile::tempdir().unwrap();
    let pki = canonical();
    let file = work.path().join("enrollments.json");
    std::fs::write(&file, pki.enrollment_steps()[2].to_string()).unwrap();
    let server = Server::start(&work.path().join("data"), Some(&file));
    // A device from a look-alike PKI (same names, other keys).
    let stranger = canonical();

    let register = |chain: &str, key: &str, id: &str| -> Value {
        let cert = work.path().join(format!("{id}.pem"));
        let key_path = work.path().join(format!("{id}.key"));
        std::fs::write(&cert, chain).unwrap();
        std::fs::write(&key_path, key).unwrap();
        let out = run(
            Command::new("node")
                .arg(dir.join("register.js"))
                .arg(server.addr.port().to_string())
                .arg(SCOPE)
                .arg(server.ca())
                .arg(&cert)
                .arg(&key_path)
                .arg(id),
            Duration::from_secs(90),
        );
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{id}: {e}: {out}"))
    };

    for n in 1..=5 {
        let (chain, key) = device(&pki, n);
        let id = format!("device-{n}");
        let answer = register(&chain, &key, &id);
        match n {
            1 | 2 => {
                assert_eq!(answer["ok"], true, "{id}: {answer}");
                let result = &answer["result"];
                assert_eq!(result["status"], "assigned", "{id}: {answer}");
                assert_eq!(result["deviceId"], id.as_str());
                assert_eq!(result["assignedHub"], "hub.attest.local");
                assert_eq!(result["x509"]["enrollmentGroupId"], "all-devices");
            }
            _ => {
                // The SDK reports a DPS `disabled` status as an error.
                assert_eq!(answer["ok"], false, "{id}: {answer}");
                assert_eq!(answer["message"], "status is disabled", "{id}: {answer}");
                assert_eq!(answer["result"]["status"], "disabled");
                let why = answer["result"]["registrationState"]["errorMessage"]
                    .as_str()
                    .unwrap();
                let expected = if n == 3 {
                    "individual-enrollment-disabled"
                } else {
                    "enrollment-group-disabled"
                };
                assert!(why.contains(expected), "{id}: {why}");
            }
        }
    }
    let (chain, key) = device(&stranger, 1);
    let refused = register(&chain, &key, "device-1");
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["name"], "UnauthorizedError", "{refused}");
    assert_eq!(refused["statusCode"], 401);
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("bad-signature"),
        "{refused}"
    );
}
