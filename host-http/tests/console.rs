//! The web console in a real browser (Debian's Chromium, headless, driven
//! by playwright-core; no browser download), and the OpenAPI document: the
//! routes it documents are exactly those the router serves, each answers
//! something other than "no such route", and a standard validator
//! (`openapi-spec-validator`) accepts it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use support::{SCOPE, Server, canonical, device, group, individual, options, run, statuses};

fn cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("debian-tools")
}

/// The pinned playwright-core in tests/browser/node_modules (`npm ci`
/// once; serialised across this file's tests).
fn browser_dir() -> PathBuf {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _once = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser");
    if !dir.join("node_modules/playwright-core").exists() {
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--prefer-offline"])
                .current_dir(&dir),
            Duration::from_secs(600),
        );
    }
    dir
}

/// The canonical hierarchy as the concept document draws it: the root CA
/// uploaded and verified; an enabled group on line A, a disabled one on
/// line B; devices 1-3 assigned under A, 4-5 refused under B.
fn canonical_service(database: Option<String>) -> (Server, attest_pki::Canonical) {
    let pki = canonical();
    let dir = tempfile::tempdir().unwrap().keep();
    let mut o = options(&dir.join("data"), None);
    o.database = database;
    let server = Server::start_with(o);
    let verified = server.verify_ca("root", &pki.root);
    assert_eq!(verified.status, 200, "{verified:?}");
    for (id, ca, enabled) in [
        ("line-a", &pki.line_a, true),
        ("line-b", &pki.line_b, false),
    ] {
        let put = server.admin(
            "PUT",
            &format!("/enrollmentGroups/{id}"),
            Some(&group(id, &ca.pem, enabled)),
        );
        assert_eq!(put.status, 200, "{put:?}");
    }
    assert_eq!(
        statuses(&server, &pki),
        ["assigned", "assigned", "assigned", "disabled", "disabled"]
    );
    (server, pki)
}

#[test]
fn the_console_in_headless_chromium() {
    console_in_chromium(None);
}

#[test]
fn the_console_on_postgresql() {
    console_in_chromium(Some(support::fresh_database()));
}

fn console_in_chromium(database: Option<String>) {
    let chromium =
        attest_tests::process::debian_package(Path::new("/usr/bin/chromium"), "chromium", &cache());
    let dir = browser_dir();
    let postgres = database.is_some();
    let (server, pki) = canonical_service(database);
    let work = tempfile::tempdir().unwrap();
    let chains = work.path().join("chains.json");
    std::fs::write(
        &chains,
        json!({"refused": pki.chain_pem(5), "admitted": pki.chain_pem(1)}).to_string(),
    )
    .unwrap();
    let shot = std::env::var_os("ATTEST_CONSOLE_SCREENSHOT")
        .filter(|_| !postgres)
        .map(PathBuf::from)
        .unwrap_or_else(|| work.path().join("console-tree.png"));
    let out = run(
        Command::new("node")
            .arg("console.mjs")
            .current_dir(&dir)
            .env(
                "ATTEST_URL",
                format!("https://localhost:{}", server.addr.port()),
            )
            .env("ATTEST_TOKEN", server.token())
            .env("ATTEST_CHAINS", &chains)
            .env("ATTEST_SCREENSHOT", &shot)
            .env("CHROMIUM", &chromium),
        Duration::from_secs(300),
    );
    let report: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let text = |k: &str| report[k].as_str().unwrap_or_default().to_string();

    // Without a token: 401, the sign-in form, no data; a bad token is told so.
    assert_eq!(report["unauthenticatedStatus"], 401, "{report}");
    assert_eq!(report["unauthenticatedShowsData"], 0, "{report}");
    assert!(text("badTokenMessage").contains("not accepted"), "{report}");
    assert!(report["pageErrors"].is_null(), "script errors: {report}");

    // The tree: root (verified) → line A (group line-a, enabled → devices
    // 1-3 assigned) and line B (group line-b, disabled → devices 4-5).
    let tree = report["tree"].as_array().unwrap();
    assert_eq!(tree.len(), 1, "one root: {report}");
    let root = &tree[0];
    assert!(
        root["label"]
            .as_str()
            .unwrap()
            .starts_with("attest demo root CA")
            && root["label"].as_str().unwrap().ends_with("verified"),
        "{root}"
    );
    let lines: Vec<&Value> = root["children"].as_array().unwrap().iter().collect();
    assert_eq!(lines.len(), 2, "{root}");
    for (line, group_id, state, devices, device_state) in [
        (
            "attest demo line A CA",
            "line-a",
            "enabled",
            1..=3,
            "assigned",
        ),
        (
            "attest demo line B CA",
            "line-b",
            "disabled",
            4..=5,
            "disabled",
        ),
    ] {
        let node = lines
            .iter()
            .find(|n| n["label"].as_str().unwrap().starts_with(line))
            .unwrap_or_else(|| panic!("no {line}: {root}"));
        assert!(
            node["label"].as_str().unwrap().ends_with("inline"),
            "{node}"
        );
        let group = &node["children"][0];
        assert_eq!(group["label"], format!("group {group_id}{state}"), "{node}");
        let shown: Vec<&str> = group["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["label"].as_str().unwrap())
            .collect();
        let expected: Vec<String> = devices
            .map(|n| format!("device-{n}{device_state}"))
            .collect();
        assert_eq!(shown, expected, "{node}");
    }
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 5_000,
        "a screenshot"
    );

    // Enrollments with search.
    assert_eq!(report["rows"], 2, "{report}");
    let searched = report["searchedRows"].as_array().unwrap();
    assert_eq!(searched.len(), 1, "{report}");
    assert!(searched[0].as_str().unwrap().contains("line-b"), "{report}");

    // Registration records with search, and "why?" from a record's row.
    assert_eq!(report["records"], 5, "{report}");
    let found = report["searchedRecords"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{report}");
    assert!(
        found[0].as_str().unwrap().starts_with("device-5disabled"),
        "{report}"
    );
    assert!(
        text("whyFromRecord").contains("enrollment-group-disabled"),
        "{report}"
    );

    // Why was device-4 refused: its record's code, position and entry.
    let why = text("why");
    for part in [
        "disabled",
        "enrollment-group-disabled",
        "chain position1 CN=attest demo line B CA",
        "enrollment group line-b",
    ] {
        assert!(why.contains(part), "{part:?} not in {why:?}");
    }
    assert!(text("whyUnknown").contains("No registration record for 'nobody'"));

    // A pasted chain, decided as the service would now.
    let refused = text("decide_refused");
    assert!(refused.contains("refused"), "{refused}");
    assert!(refused.contains("enrollment-group-disabled"), "{refused}");
    assert!(refused.contains("group line-b"), "{refused}");
    let admitted = text("decide_admitted");
    assert!(admitted.contains("admitted"), "{admitted}");
    assert!(admitted.contains("group line-a"), "{admitted}");
    assert!(
        // The group's CA (line A) is the anchor the path ends at.
        admitted.ends_with("device-1 → attest demo line A CA"),
        "{admitted}"
    );
    assert!(
        text("decide_garbage").contains("no PEM certificate"),
        "{report}"
    );

    // With the header sent by the tool itself: 200 at once, and the CSP.
    assert_eq!(report["authenticatedStatus"], 200);
    // Only the page's own inline script and style run (by hash).
    assert!(
        text("csp").starts_with("default-src 'none'; script-src 'sha256-")
            && !text("csp").contains("unsafe-inline"),
        "{report}"
    );
    assert!(report["directTreeItems"].as_u64().unwrap() >= 8, "{report}");

    // Nothing but the service was asked for (no CDN, no external asset).
    let origin = format!("https://localhost:{}/", server.addr.port());
    for url in report["requests"].as_array().unwrap() {
        assert!(url.as_str().unwrap().starts_with(&origin), "{url}");
    }
    server.stop();
}

/// The document's `METHOD /path` pairs.
fn documented(doc: &Value) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if method != "parameters" {
                all.insert(format!("{} {path}", method.to_ascii_uppercase()));
            }
        }
    }
    all
}

#[test]
fn the_openapi_document_is_the_router_and_a_valid_openapi_3_1() {
    let doc: Value = serde_json::from_str(host_http::OPENAPI).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let served: BTreeSet<String> = host_http::routes().into_iter().map(String::from).collect();
    assert_eq!(
        documented(&doc),
        served,
        "docs/openapi.json and the router differ"
    );

    let (server, pki) = canonical_service(None);
    // The document is served (to a token holder only), byte for byte.
    let got = server.admin("GET", "/openapi.json", None);
    assert_eq!(got.status, 200);
    assert_eq!(got.raw, host_http::OPENAPI);
    let anonymous = server.client().call("GET", "/openapi.json", vec![], &[]);
    assert_eq!(anonymous.status, 401, "{anonymous:?}");

    // Resources for every parameterised route to name.
    let (chain, _) = device(&pki, 1);
    let leaf = chain
        .split_inclusive("-----END CERTIFICATE-----\n")
        .next()
        .unwrap();
    let put = server.admin(
        "PUT",
        "/enrollments/probe",
        Some(&individual("probe", leaf, true)),
    );
    assert_eq!(put.status, 200, "{put:?}");
    let up = server.admin(
        "PUT",
        "/certificates/probe",
        Some(&json!({"certificate": pki.line_a.pem})),
    );
    assert_eq!(up.status, 200, "{up:?}");
    let (chain1, key1) = device(&pki, 1);
    let registered = server.device(&chain1, &key1).register("device-1");
    let operation = registered.body["operationId"].as_str().unwrap().to_string();

    // Every documented route answers something other than "no such route".
    for route in documented(&doc) {
        let (method, path) = route.split_once(' ').unwrap();
        let concrete = path
            .replace("{idScope}", SCOPE)
            .replace("{registrationId}", "device-1")
            .replace("{operationId}", &operation)
            .replace("{name}", "probe")
            .replace(
                "{id}",
                if path.starts_with("/enrollmentGroups") || path.ends_with("/query") {
                    "line-a"
                } else if path.starts_with("/registrations") {
                    "device-1"
                } else {
                    "probe"
                },
            );
        let body = match (method, path) {
            (_, p) if p.ends_with("/query") => json!({"query": "*"}).to_string(),
            ("POST", "/enrollments") => json!({"mode": "create", "enrollments": []}).to_string(),
            ("POST", "/attest/decide") => json!({"certificates": pki.chain_pem(1)}).to_string(),
            ("POST", "/attest/edgeDecisions") => json!({"decisions": []}).to_string(),
            ("PUT", p) if p.starts_with("/enrollmentGroups") => {
                group("line-a", &pki.line_a.pem, true).to_string()
            }
            ("PUT", p) if p.starts_with("/enrollments") => {
                individual("probe", leaf, true).to_string()
            }
            ("PUT", p) if p.starts_with("/certificates") => {
                json!({"certificate": pki.line_a.pem}).to_string()
            }
            ("PUT", p) if p.ends_with("/register") => {
                json!({"registrationId": "device-1"}).to_string()
            }
            _ => String::new(),
        };
        let device_route = path.starts_with("/{idScope}");
        let client = if device_route {
            server.device(&chain1, &key1)
        } else {
            server.client()
        };
        let token = server.token();
        let mut headers = vec![("if-match", "*")];
        if !device_route {
            headers.push(("authorization", token.as_str()));
        }
        let answer = client.call(method, &concrete, body.into_bytes(), &headers);
        let message = answer.body["message"].as_str().unwrap_or_default();
        assert!(
            answer.status != 404
                || !(message.starts_with("no management API resource")
                    || message.starts_with("no resource at")
                    || message.starts_with("no attest resource")
                    || message.starts_with("no device API resource")),
            "{route} ({concrete}) is not served: {answer:?}"
        );
        assert!(answer.status < 500, "{route}: {answer:?}");
    }
    server.stop();

    // A standard validator: openapi-spec-validator (OpenAPI 3.1 schema).
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openapi-venv");
    let python = attest_tests::process::venv(
        Path::new("python3"),
        &venv,
        &["openapi-spec-validator==0.7.1"],
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &[],
    );
    let out = run(
        Command::new(&python)
            .args(["-m", "openapi_spec_validator", "--schema", "3.1.0"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")),
        Duration::from_secs(120),
    );
    assert!(out.contains("OK"), "{out}");
}
