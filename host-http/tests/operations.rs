//! Operating host-http: `--metrics-listen` (Prometheus `/metrics`, checked
//! with the real `promtool`; `/healthz`, `/readyz`), `--audit` (one
//! hash-chained line per decision and management write, checked with
//! `host-cli audit verify`), on both stores; and a graceful SIGTERM with
//! registrations in flight.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use attest_service::audit::{Verification, verify};
use support::{Server, canonical, device, fresh_database, group, options, statuses};

/// A plain-HTTP GET on the operator's listener: (status, body).
fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut tcp = std::net::TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut raw = String::new();
    tcp.read_to_string(&mut raw)
        .map_err(|e| format!("read: {e}"))?;
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not HTTP: {raw:?}"))?;
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_string()))
}

/// The value of the sample `name{labels}` in a Prometheus exposition (0
/// when absent).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

/// `promtool check metrics` on `text` (Prometheus's own linter and parser).
fn promtool_check(text: &str) {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("debian-tools");
    let promtool = attest_tests::process::debian_tool("promtool", "prometheus", &cache);
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What `host-cli audit verify` reads a trail as (its command line is
/// tested in host-cli's tests).
fn audit_verify(file: &Path) -> Verification {
    verify(std::fs::File::open(file).unwrap()).unwrap()
}

fn intact_and_closed(file: &Path) {
    match audit_verify(file) {
        Verification::Intact { closed: true, .. } => {}
        other => panic!("{}: {other:?}", file.display()),
    }
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Metrics, probes and the audit trail on one store.
fn operate(database: Option<String>) {
    let pki = canonical();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("enrollments.json");
    // An enabled group on the root and a disabled one on line B.
    std::fs::write(&file, pki.enrollment_steps()[1].to_string()).unwrap();
    let trail = dir.path().join("audit.jsonl");
    let mut o = options(&dir.path().join("data"), Some(&file));
    o.database = database;
    o.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    o.audit = Some(trail.clone());
    let server = Server::start_with(o);
    let ops = server.running.as_ref().unwrap().metrics_addr.unwrap();

    assert_eq!(get(ops, "/healthz").unwrap(), (200, "ok\n".into()));
    assert_eq!(get(ops, "/readyz").unwrap(), (200, "ready\n".into()));
    let (status, body) = get(ops, "/nothing").unwrap();
    assert_eq!(status, 404, "{body}");

    // Devices 1-3 admitted, 4-5 refused by their disabled group (recorded);
    // device 2's certificate claiming device-1's ID is refused unrecorded;
    // a caller without a certificate is answered without a decision.
    assert_eq!(
        statuses(&server, &pki),
        ["assigned", "assigned", "assigned", "disabled", "disabled"]
    );
    let (chain2, key2) = device(&pki, 2);
    let lying = server.device(&chain2, &key2).register("device-1");
    assert_eq!(lying.status, 401, "{lying:?}");
    let anonymous = server.client().register("device-1");
    assert_eq!(anonymous.status, 401, "{anonymous:?}");

    // Management writes: a new group, a stale If-Match (412), a delete.
    let put = server.admin(
        "PUT",
        "/enrollmentGroups/extra",
        Some(&group("extra", &pki.line_a.pem, true)),
    );
    assert_eq!(put.status, 200, "{put:?}");
    let etag = put.body["etag"].as_str().unwrap().to_string();
    let stale = server.admin_if(
        "PUT",
        "/enrollmentGroups/extra",
        Some(&group("extra", &pki.line_a.pem, false)),
        "\"not-the-etag\"",
    );
    assert_eq!(stale.status, 412, "{stale:?}");
    let read = server.admin("GET", "/enrollmentGroups/extra", None);
    assert_eq!(read.status, 200);
    let deleted = server.admin_if("DELETE", "/enrollmentGroups/extra", None, &etag);
    assert_eq!(deleted.status, 204, "{deleted:?}");

    let snapshot = server.admin("GET", "/attest/snapshot", None);
    assert_eq!(snapshot.status, 200);

    // The metrics say what happened, in Prometheus's own format.
    let (status, metrics) = get(ops, "/metrics").unwrap();
    assert_eq!(status, 200);
    let admitted = r#"attest_registrations_total{transport="https",outcome="admitted",code=""}"#;
    assert_eq!(sample(&metrics, admitted), 3.0, "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            r#"attest_registrations_total{transport="https",outcome="refused",code="enrollment-group-disabled"}"#
        ),
        2.0,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"attest_registrations_total{transport="https",outcome="refused",code="registration-id-mismatch"}"#
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"attest_registrations_total{transport="https",outcome="not-decided",code="401002"}"#
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"attest_decision_duration_seconds_count{transport="https"}"#
        ),
        7.0,
        "{metrics}"
    );
    for (route, status, n) in [
        ("PUT /enrollmentGroups/{id}", "200", 1.0),
        ("PUT /enrollmentGroups/{id}", "412", 1.0),
        ("GET /enrollmentGroups/{id}", "200", 1.0),
        ("DELETE /enrollmentGroups/{id}", "204", 1.0),
    ] {
        let series =
            format!(r#"attest_management_requests_total{{route="{route}",status="{status}"}}"#);
        assert_eq!(sample(&metrics, &series), n, "{series}\n{metrics}");
    }
    assert!(
        sample(&metrics, r#"attest_connections_open{listener="https"}"#) <= 1.0,
        "{metrics}"
    );
    assert!(
        sample(&metrics, "attest_component_calls_total") >= 6.0,
        "{metrics}"
    );
    // start, 7 decisions, 3 writes.
    assert_eq!(
        sample(&metrics, "attest_audit_lines_total"),
        11.0,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, r#"attest_snapshots_served_total{kind="full"}"#),
        1.0,
        "{metrics}"
    );
    assert!(sample(&metrics, "attest_store_version") >= 2.0, "{metrics}");
    // No label value a caller chose: no registration ID, no address.
    assert!(!metrics.contains("device-"), "{metrics}");
    assert!(!metrics.contains("127.0.0.1"), "{metrics}");
    assert!(!metrics.contains("extra"), "{metrics}");
    promtool_check(&metrics);

    server.stop();

    // The trail: intact and closed, one line per decision and write.
    intact_and_closed(&trail);
    let records = lines(&trail);
    let text = std::fs::read_to_string(&trail).unwrap();
    for secret in ["BEGIN", "SharedAccessSignature", &pki.line_a.pem[40..80]] {
        assert!(!text.contains(secret), "{secret:?} in the audit trail");
    }
    let key = serde_json::from_str::<Value>(
        &std::fs::read_to_string(dir.path().join("data/config.json")).unwrap(),
    )
    .unwrap()["sharedAccessPolicies"][0]["primaryKey"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!text.contains(&key), "the SAS key is in the audit trail");
    let decisions: Vec<&Value> = records.iter().filter(|r| r["kind"] == "decision").collect();
    assert_eq!(decisions.len(), 7, "{text}");
    for n in 1..=5 {
        let leaf = hex::encode(Sha256::digest(&pki.devices[n - 1].der));
        let line = decisions
            .iter()
            .find(|d| d["registrationId"] == format!("device-{n}") && d["leafSha256"] == leaf)
            .unwrap_or_else(|| panic!("no decision line for device-{n}: {text}"));
        assert_eq!(line["transport"], "https");
        assert_eq!(line["remoteAddress"], "127.0.0.1");
        if n <= 3 {
            assert_eq!(line["verdict"], "admitted", "{line}");
            assert_eq!(
                line["entry"],
                json!({"kind": "group", "id": pki_group_of(n)})
            );
            assert_eq!(line["code"], Value::Null);
        } else {
            assert_eq!(line["verdict"], "refused", "{line}");
            assert_eq!(line["code"], "enrollment-group-disabled");
            assert_eq!(line["entry"]["kind"], "group");
        }
    }
    let mismatch = decisions
        .iter()
        .find(|d| d["code"] == "registration-id-mismatch")
        .unwrap();
    assert_eq!(mismatch["registrationId"], "device-1");
    assert_eq!(mismatch["position"], 0);
    assert!(
        decisions
            .iter()
            .any(|d| d["verdict"] == "not-decided" && d["leafSha256"].is_null())
    );
    let writes: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "management")
        .collect();
    assert_eq!(writes.len(), 3, "the GET is not a write: {text}");
    assert_eq!(writes[0]["route"], "PUT /enrollmentGroups/{id}");
    assert_eq!(writes[0]["resource"], "extra");
    assert_eq!(writes[0]["policy"], "provisioningserviceowner");
    assert_eq!(writes[0]["status"], 200);
    assert_eq!(writes[0]["etagBefore"], Value::Null);
    assert_eq!(writes[0]["etagAfter"], etag.as_str());
    assert_eq!(writes[1]["status"], 412);
    assert!(
        writes[1]["code"].as_str().unwrap().starts_with("412"),
        "{}",
        writes[1]
    );
    assert_eq!(writes[2]["route"], "DELETE /enrollmentGroups/{id}");
    assert_eq!(writes[2]["etagBefore"], etag.as_str());
    assert_eq!(writes[2]["etagAfter"], Value::Null);
    assert_eq!(records.first().unwrap()["kind"], "start");
    assert_eq!(records.last().unwrap()["kind"], "stop");

    // A restart continues the chain; a changed verdict is named.
    let mut o = options(&dir.path().join("data"), None);
    o.audit = Some(trail.clone());
    Server::start_with(o).stop();
    intact_and_closed(&trail);
    let mut text = std::fs::read_to_string(&trail).unwrap();
    let at = text
        .lines()
        .position(|l| l.contains("\"enrollment-group-disabled\""))
        .unwrap();
    let original = text.lines().nth(at).unwrap().to_string();
    let forged = original
        .replace("\"verdict\":\"refused\"", "\"verdict\":\"admitted\"")
        .replace("\"code\":\"enrollment-group-disabled\"", "\"code\":null");
    text = text.replacen(&original, &forged, 1);
    std::fs::write(&trail, &text).unwrap();
    match audit_verify(&trail) {
        Verification::Broken { line, reason } => {
            assert_eq!(line, at as u64 + 1, "{reason}");
            assert!(reason.starts_with("changed"), "{reason}");
        }
        other => panic!("a forged verdict went unnoticed: {other:?}"),
    }
}

/// The group that admits device `n` in enrollment step 2: the root's.
fn pki_group_of(_n: usize) -> String {
    let pki_steps = canonical().enrollment_steps()[1].clone();
    pki_steps["enrollmentGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["provisioningStatus"] == "enabled")
        .unwrap()["enrollmentGroupId"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn metrics_probes_and_audit_trail_on_sqlite() {
    operate(None);
}

#[test]
fn metrics_probes_and_audit_trail_on_postgresql() {
    operate(Some(fresh_database()));
}

/// A trail that cannot be written (`/dev/full`) is a start-up error.
#[cfg(target_os = "linux")]
#[test]
fn an_audit_trail_that_cannot_be_written_stops_the_start() {
    let pki = canonical();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("enrollments.json");
    std::fs::write(&file, pki.enrollment_steps()[0].to_string()).unwrap();
    let mut o = options(&dir.path().join("data"), Some(&file));
    o.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    // Every write to /dev/full fails with ENOSPC.
    o.audit = Some("/dev/full".into());
    // The start line itself cannot be written: the service does not start.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Err(e) = rt.block_on(host_http::start(o)) else {
        panic!("host-http started with an unwritable audit trail");
    };
    assert!(
        format!("{e:#}").contains("audit trail could not be written"),
        "{e:#}"
    );
}

/// SIGTERM while devices register: every registration that was answered
/// 200 is stored, no request that reached the service is cut off, the
/// readiness probe answers 503 during the drain, and the process exits 0
/// with its audit trail closed.
#[test]
fn sigterm_drains_in_flight_registrations_and_loses_nothing() {
    let pki = canonical();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("enrollments.json");
    std::fs::write(&file, pki.enrollment_steps()[0].to_string()).unwrap();
    let trail = dir.path().join("audit.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_host-http"))
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .arg("--data")
        .arg(&data)
        .arg("--enrollments")
        .arg(&file)
        .arg("--audit")
        .arg(&trail)
        .env(
            "ATTEST_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("attest-cache"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut addr, mut ops): (Option<SocketAddr>, Option<SocketAddr>) = (None, None);
    let started = Instant::now();
    while addr.is_none() || ops.is_none() {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0
                && started.elapsed() < Duration::from_secs(120),
            "host-http did not start"
        );
        if let Some(rest) = line.strip_prefix("listening on https://") {
            addr = rest.split_whitespace().next().unwrap().parse().ok();
        }
        if let Some(rest) = line.strip_prefix("serving metrics on http://") {
            ops = rest.split('/').next().unwrap().parse().ok();
        }
    }
    let (addr, ops) = (addr.unwrap(), ops.unwrap());
    let ca = data.join("tls/dev-server-ca.pem");
    assert_eq!(get(ops, "/readyz").unwrap().0, 200);

    // A management request held in flight: its headers sent, its body not
    // yet. The drain must wait for it (and answer it).
    let token = {
        let out = Command::new(env!("CARGO_BIN_EXE_host-http"))
            .args(["token", "--data"])
            .arg(&data)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let held = {
        let client = support::Client::new(addr, &ca);
        let body = serde_json::to_vec(&group("held", &pki.line_b.pem, true)).unwrap();
        std::thread::spawn(move || slow_put(&client, &token, "/enrollmentGroups/held", body))
    };
    std::thread::sleep(Duration::from_millis(300));

    // Devices register from four threads until the service is gone.
    let stop_at = Instant::now() + Duration::from_millis(600);
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (chain, key) = device(&pki, w + 1);
            let client = support::Client::new(addr, &ca).with_identity(&chain, &key);
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                loop {
                    let outcome = client.try_call(
                        "PUT",
                        &format!(
                            "/{}/registrations/device-{}/register",
                            support::SCOPE,
                            w + 1
                        ),
                        format!("{{\"registrationId\":\"device-{}\"}}", w + 1).into_bytes(),
                        &[],
                    );
                    let gone = matches!(&outcome, Err(e) if e.starts_with("connect:"));
                    outcomes.push(outcome.map(|a| (a.status, a.body)));
                    if gone || outcomes.len() > 5000 {
                        return outcomes;
                    }
                }
            })
        })
        .collect();
    while Instant::now() < stop_at {
        std::thread::sleep(Duration::from_millis(10));
    }
    let term = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    // Readiness is false from the first moment of the drain (the service
    // says "shutting down" once it is).
    loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "no shutdown line");
        if line.starts_with("shutting down") {
            break;
        }
    }
    let mut probes = Vec::new();
    while term.elapsed() < Duration::from_millis(700) {
        probes.push(get(ops, "/readyz"));
        std::thread::sleep(Duration::from_millis(25));
    }
    let held = held.join().unwrap();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            term.elapsed() < Duration::from_secs(30),
            "host-http did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
    assert!(
        probes.iter().all(|p| !matches!(p, Ok((200, _)))),
        "ready during shutdown: {probes:?}"
    );
    assert!(
        probes
            .iter()
            .any(|p| matches!(p, Ok((503, body)) if body.contains("shutting down"))),
        "{probes:?}"
    );
    assert_eq!(held.0, 200, "the request in flight was answered: {held:?}");

    let mut acknowledged = 0;
    let mut per_device = Vec::new();
    for (w, worker) in workers.into_iter().enumerate() {
        let outcomes = worker.join().unwrap();
        let mut last_ack = None;
        for o in &outcomes {
            match o {
                Ok((200, body)) => {
                    assert_eq!(body["status"], "assigned", "{body}");
                    acknowledged += 1;
                    last_ack = Some(body["registrationState"]["lastUpdatedDateTimeUtc"].clone());
                }
                Ok((status, body)) => panic!("device-{}: {status} {body}", w + 1),
                // Refused before a request was sent: the listener had
                // closed (connect), or the connection was still queued
                // in the kernel when it did (handshake).
                Err(e) if e.starts_with("connect:") || e.starts_with("TLS handshake:") => {}
                Err(e) => panic!("device-{}: a request was cut off: {e}", w + 1),
            }
        }
        per_device.push(last_ack);
    }
    assert!(acknowledged > 0, "no registration before SIGTERM");

    // Every acknowledged registration is stored: the last one each device
    // was answered is its record now; the trail is closed and holds a
    // decision line per acknowledged registration.
    let mut o = options(&data, None);
    o.audit = None;
    let server = Server::start_with(o);
    for (w, last) in per_device.iter().enumerate() {
        let record = server.admin("GET", &format!("/registrations/device-{}", w + 1), None);
        if let Some(updated) = last {
            assert_eq!(record.status, 200, "{record:?}");
            assert_eq!(
                &record.body["lastUpdatedDateTimeUtc"],
                updated,
                "device-{}",
                w + 1
            );
        }
    }
    let held_group = server.admin("GET", "/enrollmentGroups/held", None);
    assert_eq!(held_group.status, 200, "{held_group:?}");
    server.stop();
    intact_and_closed(&trail);
    let admitted = lines(&trail)
        .iter()
        .filter(|r| r["kind"] == "decision" && r["verdict"] == "admitted")
        .count();
    assert!(
        admitted >= acknowledged,
        "{admitted} admitted lines, {acknowledged} answered"
    );
}

/// A PUT whose body arrives 1.5 s after its headers: (status, body).
fn slow_put(client: &support::Client, token: &str, path: &str, body: Vec<u8>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(client.addr()).await.unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(client.config())
            .connect(
                rustls_pki_types::ServerName::try_from("localhost").unwrap(),
                tcp,
            )
            .await
            .unwrap();
        let head = format!(
            "PUT {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        tls.write_all(&body).await.unwrap();
        tls.flush().await.unwrap();
        let mut raw = Vec::new();
        let _ = tls.read_to_end(&mut raw).await;
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let status = raw
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, raw)
    })
}
