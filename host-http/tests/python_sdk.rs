//! A real MQTT client: the Azure IoT Python device SDK (`azure-iot-device`
//! from PyPI, pinned with its dependencies in
//! `tests/python-sdk/requirements.txt`, installed by this test into
//! `tests/python-sdk/.venv`) registers SPEC §1's canonical devices over
//! MQTT, unmodified. The SDK dials port 8883, so this test serves MQTT on
//! 127.0.0.1:8883 (the only test that does). Needs `python3` with `venv`
//! and the PyPI registry (or pip's cache).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{SCOPE, Server, canonical, device, run};

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python-sdk")
}

/// The virtual environment with the pinned SDK (created once).
fn python() -> PathBuf {
    let dir = sdk_dir();
    let python = dir.join(".venv/bin/python");
    let ready = python.exists()
        && Command::new(&python)
            .args(["-c", "import azure.iot.device"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !ready {
        attest_tests::process::venv(
            Path::new("python3"),
            &dir.join(".venv"),
            &["-r", "requirements.txt"],
            &dir,
            &[],
        );
    }
    python
}

#[test]
fn azure_iot_python_sdk_registers_over_mqtt() {
    let python = python();
    let work = tempfile::tempdir().unwrap();
    let pki = canonical();
    let file = work.path().join("enrollments.json");
    std::fs::write(&file, pki.enrollment_steps()[2].to_string()).unwrap();
    let mut options = support::options(&work.path().join("data"), Some(&file));
    options.mqtt_listen = Some("127.0.0.1:8883".parse().unwrap());
    let server = Server::start_with(options);
    let stranger = canonical();

    let register = |chain: &str, key: &str, id: &str| -> Value {
        let cert = work.path().join(format!("{id}.pem"));
        let key_path = work.path().join(format!("{id}.key"));
        std::fs::write(&cert, chain).unwrap();
        std::fs::write(&key_path, key).unwrap();
        let out = run(
            Command::new(&python)
                .arg(sdk_dir().join("register.py"))
                .arg(SCOPE)
                .arg(server.ca())
                .arg(&cert)
                .arg(&key_path)
                .arg(id),
            Duration::from_secs(120),
        );
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{id}: {e}: {out}"))
    };
    for n in 1..=5 {
        let (chain, key) = device(&pki, n);
        let id = format!("device-{n}");
        let answer = register(&chain, &key, &id);
        if n <= 2 {
            assert_eq!(answer["ok"], true, "{id}: {answer}");
            assert_eq!(answer["status"], "assigned", "{id}: {answer}");
            assert_eq!(answer["device_id"], id.as_str());
            assert_eq!(answer["assigned_hub"], "hub.attest.local");
            assert_eq!(answer["substatus"], "initialAssignment");
        } else {
            // A DPS `disabled` status is an error to the SDK.
            assert_eq!(answer["ok"], false, "{id}: {answer}");
            assert!(answer.to_string().contains("disabled"), "{id}: {answer}");
        }
    }
    // A look-alike PKI's device: the service refuses it (401).
    let (chain, key) = device(&stranger, 1);
    let refused = register(&chain, &key, "device-1");
    assert_eq!(refused["ok"], false, "{refused}");
    assert!(refused.to_string().contains("401"), "{refused}");
    // The admitted device registers again: same hub, reprovisioned.
    let (chain, key) = device(&pki, 1);
    let again = register(&chain, &key, "device-1");
    assert_eq!(
        again["substatus"], "reprovisionedToInitialAssignment",
        "{again}"
    );
}
