//! A real client: the Azure IoT Node.js device SDK (npm
//! `azure-iot-provisioning-device` + `azure-iot-provisioning-device-http` +
//! `azure-iot-security-x509`, pinned in `tests/node-sdk/package-lock.json`)
//! registers SPEC §1's canonical devices against host-http, unmodified; the
//! DPS service SDK (npm `azure-iot-provisioning-service`, pinned likewise)
//! manages enrollments through the management API.
//! Needs `node` and `npm` on PATH and the npm registry (or npm's cache).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{SCOPE, Server, canonical, device, run};

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/node-sdk")
}

/// The pinned SDKs in `tests/node-sdk/node_modules` (`npm ci` once).
/// Serialised: two tests must not run `npm ci` into one folder at once.
fn install_sdks() -> PathBuf {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _once = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = sdk_dir();
    let installed = [
        "azure-iot-provisioning-device-http",
        "azure-iot-provisioning-service",
        "azure-iot-common",
    ]
    .iter()
    .all(|p| dir.join("node_modules").join(p).exists());
    if !installed {
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--prefer-offline"])
                .current_dir(&dir),
            Duration::from_secs(600),
        );
    }
    dir
}

/// The published DPS service SDK against the management API: 25
/// enrollments created (ten in one bulk operation), read back (`info` thumbprints are OpenSSL's),
/// updated with their etag (`If-Match`; a stale one is a 412), queried with
/// `SELECT * FROM …`, and removed by the C# sample's cleanup
/// loop (delete each page, then ask for the next) without missing one.
#[test]
fn azure_iot_node_service_sdk_cleans_up_like_the_dps_samples() {
    service_sdk_against(None);
}

/// The same against PostgreSQL (the server `scripts/with-postgres` starts).
#[test]
fn azure_iot_node_service_sdk_on_postgresql() {
    service_sdk_against(Some(support::fresh_database()));
}

fn service_sdk_against(database: Option<String>) {
    let dir = install_sdks();
    let work = tempfile::tempdir().unwrap();
    let mut options = support::options(&work.path().join("data"), None);
    options.database = database;
    let server = Server::start_with(options);
    let pki = canonical();
    let enrollments: Vec<Value> = (1..=25)
        .map(|n| {
            let id = format!("fleet-{n:02}");
            let (chain, _) = support::issue(&pki.line_a, &id);
            let leaf = chain
                .split_inclusive("-----END CERTIFICATE-----\n")
                .next()
                .unwrap()
                .to_string();
            serde_json::json!({"registrationId": id, "certificate": leaf})
        })
        .collect();
    let file = work.path().join("enrollments.json");
    std::fs::write(&file, Value::Array(enrollments.clone()).to_string()).unwrap();
    let group_ca = work.path().join("line-a.pem");
    std::fs::write(&group_ca, &pki.line_a.pem).unwrap();
    let text = std::fs::read_to_string(work.path().join("data/config.json")).unwrap();
    let config: host_http::ServiceConfig = serde_json::from_str(&text).unwrap();
    let policy = &config.shared_access_policies[0];
    let out = run(
        Command::new("node")
            .arg(dir.join("service.js"))
            .arg(server.addr.port().to_string())
            .arg(server.ca())
            .arg(&policy.key_name)
            .arg(&policy.primary_key)
            .arg(&file)
            .arg(&group_ca),
        Duration::from_secs(150),
    );
    let answer: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(answer["ok"], true, "{answer}");
    let expected: Vec<Value> = enrollments
        .iter()
        .map(|e| e["registrationId"].clone())
        .collect();
    assert_eq!(answer["seen"], Value::Array(expected), "{answer}");
    assert_eq!(answer["pages"], 3, "{answer}");
    assert_eq!(answer["left"], serde_json::json!([]), "{answer}");
    let first = enrollments[0]["certificate"].as_str().unwrap();
    let fingerprint = |digest: &str| support::openssl_fingerprint(first, digest);
    assert_eq!(
        answer["info"]["sha1Thumbprint"],
        fingerprint("sha1"),
        "{answer}"
    );
    assert_eq!(
        answer["info"]["sha256Thumbprint"],
        fingerprint("sha256"),
        "{answer}"
    );
    assert_eq!(answer["info"]["subjectName"], "CN=fleet-01");
    assert_eq!(answer["mechanism"], "x509");
    assert_eq!(
        answer["update"],
        serde_json::json!({"status": "disabled", "etagChanged": true, "stale": 412, "after": "disabled"}),
        "{answer}"
    );
    assert_eq!(
        answer["bulk"],
        serde_json::json!({"isSuccessful": true, "errors": []})
    );
    assert_eq!(answer["again"]["isSuccessful"], false, "{answer}");
    assert_eq!(answer["again"]["errors"][0]["registrationId"], "fleet-01");
    assert_eq!(answer["groups"], serde_json::json!(["line-a"]));
    assert_eq!(answer["groupMechanism"], "CN=attest demo line A CA");
}

#[test]
fn azure_iot_node_sdk_registers_against_host_http() {
    let dir = install_sdks();
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
