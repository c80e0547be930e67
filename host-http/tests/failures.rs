//! Operations when things break (PostgreSQL is the server that
//! `scripts/with-postgres` starts for the suite):
//!
//! - the database becomes unreachable (every connection cut, new ones
//!   refused, through a TCP relay the test controls): devices get 503 with
//!   `retry-after`, nothing is recorded for them, and service resumes by
//!   itself when the database is back;
//! - one of two replica processes is killed with SIGKILL under load: the
//!   other keeps serving, and every registration either replica
//!   acknowledged is in the database, readable and pollable through the
//!   survivor;
//! - a process on SQLite (group commit: units that queue behind one fsync
//!   share the next) is killed with SIGKILL under load: after a restart on
//!   the same data directory every registration it acknowledged is there.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Client, SCOPE, Server, canonical, device, fresh_database, group, issue};

/// A TCP relay to the database that the test can take down (cutting every
/// connection through it and refusing new ones) and bring back.
struct Relay {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
    _runtime: tokio::runtime::Runtime,
}

impl Relay {
    fn to(upstream: SocketAddr) -> Relay {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let is_up = Arc::clone(&up);
        runtime.spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !is_up.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let mut cuts = cuts.clone();
                // Cuts before this connection are not its own.
                cuts.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Relay {
            addr,
            up,
            cut,
            _runtime: runtime,
        }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// `url` with its host and port replaced by `addr`.
fn through(url: &str, addr: SocketAddr) -> (String, SocketAddr) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let (user, host_port) = authority.rsplit_once('@').unwrap();
    let upstream = host_port.parse().unwrap();
    (format!("{scheme}://{user}@{addr}/{path}"), upstream)
}

#[test]
fn an_unreachable_database_is_a_503_and_service_resumes_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database();
    let (_, upstream) = through(&database, "127.0.0.1:1".parse().unwrap());
    let relay = Relay::to(upstream);
    let (relayed, _) = through(&database, relay.addr);
    let mut options = support::options(&dir.path().join("data"), None);
    options.database = Some(relayed);
    let server = Server::start_with(options);
    let pki = canonical();
    let put = server.admin(
        "PUT",
        "/enrollmentGroups/all-devices",
        Some(&group("all-devices", &pki.root.pem, true)),
    );
    assert_eq!(put.status, 200, "{put:?}");
    let register = |n: usize| {
        let (chain, key) = device(&pki, n);
        server.device(&chain, &key).register(&format!("device-{n}"))
    };
    assert_eq!(register(1).body["status"], "assigned");

    relay.down();
    let started = Instant::now();
    let refused = register(3);
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(
        refused.headers.contains_key("retry-after"),
        "{:?}",
        refused.headers
    );
    assert!(
        refused.raw.contains("retry shortly"),
        "a clear message: {}",
        refused.raw
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "answered without hanging: {:?}",
        started.elapsed()
    );
    let read = server.admin("GET", "/registrations/device-1", None);
    assert!(read.status >= 500, "{read:?}");

    // Back: the pool reconnects by itself; the refused attempt left nothing.
    relay.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    let recovered = loop {
        let a = register(2);
        if a.status == 200 || Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(recovered.body["status"], "assigned", "{recovered:?}");
    assert_eq!(
        server.admin("GET", "/registrations/device-3", None).status,
        404,
        "a registration answered 503 recorded nothing"
    );
    assert_eq!(
        server.admin("GET", "/registrations/device-1", None).body["status"],
        "assigned"
    );
}

/// A host-http process.
struct Replica {
    child: Child,
    addr: SocketAddr,
    data: PathBuf,
}

impl Replica {
    /// A host-http process on `database` (PostgreSQL), or on SQLite in
    /// `data` when `None`.
    fn start(data: &Path, database: Option<&str>) -> Replica {
        let mut command = Command::new(env!("CARGO_BIN_EXE_host-http"));
        command
            .args(["--listen", "127.0.0.1:0", "--id-scope", SCOPE, "--data"])
            .arg(data)
            .env_remove("ATTEST_DATABASE_URL");
        if let Some(database) = database {
            command.env("ATTEST_DATABASE_URL", database);
        }
        let mut child = command
            .env("RUST_LOG", "host_http=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let addr = loop {
            let mut line = String::new();
            assert!(out.read_line(&mut line).unwrap() > 0, "host-http exited");
            if let Some(rest) = line.strip_prefix("listening on https://") {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        // Keep reading stdout so that the process never blocks on it.
        std::thread::spawn(move || for _ in out.lines() {});
        Replica {
            child,
            addr,
            data: data.to_path_buf(),
        }
    }

    fn client(&self) -> Client {
        Client::new(self.addr, &self.data.join("tls").join("dev-server-ca.pem"))
    }

    fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> support::Answer {
        let text = std::fs::read_to_string(self.data.join("config.json")).unwrap();
        let config: host_http::ServiceConfig = serde_json::from_str(&text).unwrap();
        let expiry = time::OffsetDateTime::now_utc().unix_timestamp() + 600;
        let token =
            attest_dps::sas::token(&config.shared_access_policies[0], "localhost", expiry).unwrap();
        self.client().call(
            method,
            path,
            body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
            &[("authorization", &token)],
        )
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_replica_killed_under_load_loses_no_acknowledged_registration() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database();
    let a = Replica::start(&dir.path().join("a"), Some(&database));
    let b = Replica::start(&dir.path().join("b"), Some(&database));
    let pki = canonical();
    let put = a.admin(
        "PUT",
        "/enrollmentGroups/line-a",
        Some(&group("line-a", &pki.line_a.pem, true)),
    );
    assert_eq!(put.status, 200, "{put:?}");

    // Each registration is a device of its own, so that every
    // acknowledged one is a record and an operation of its own.
    const DEVICES: usize = 240;
    let devices: Vec<(String, String, String)> = (0..DEVICES)
        .map(|i| {
            let id = format!("crash-{i:03}");
            let (chain, key) = issue(&pki.line_a, &id);
            (id, chain, key)
        })
        .collect();
    let (clients_a, client_b) = (a.client(), b.client());
    let next = AtomicUsize::new(0);
    // (device, operation ID, replica that acknowledged it)
    let acknowledged = Mutex::new(Vec::<(usize, String, char)>::new());
    let killed = AtomicBool::new(false);
    let a = Mutex::new(Some(a));
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= DEVICES {
                        break;
                    }
                    let (id, chain, key) = &devices[i];
                    // Even devices try A first; a device whose replica
                    // fails tries the other, as behind a load balancer.
                    let order = if i.is_multiple_of(2) {
                        ['a', 'b']
                    } else {
                        ['b', 'a']
                    };
                    for replica in order {
                        let client = match replica {
                            'a' => &clients_a,
                            _ => &client_b,
                        };
                        let answer = client.clone().with_identity(chain, key).try_call(
                            "PUT",
                            &format!("/{SCOPE}/registrations/{id}/register?api-version=2021-06-01"),
                            format!("{{\"registrationId\":\"{id}\"}}").into_bytes(),
                            &[],
                        );
                        match answer {
                            Ok(r) if r.status == 200 && r.body["status"] == "assigned" => {
                                let op = r.body["operationId"].as_str().unwrap().to_string();
                                acknowledged.lock().unwrap().push((i, op, replica));
                                break;
                            }
                            // Refused, or the connection failed: not
                            // acknowledged; try the other replica.
                            _ => continue,
                        }
                    }
                }
            });
        }
        // The killer: SIGKILL A once a third of the devices are in.
        s.spawn(|| {
            while acknowledged.lock().unwrap().len() < DEVICES / 3 {
                std::thread::sleep(Duration::from_millis(5));
            }
            let mut a = a.lock().unwrap().take().unwrap();
            let pid = a.child.id().to_string();
            assert!(
                Command::new("kill")
                    .args(["-KILL", &pid])
                    .status()
                    .unwrap()
                    .success()
            );
            let _ = a.child.wait();
            killed.store(true, Ordering::SeqCst);
        });
    });
    assert!(killed.load(Ordering::SeqCst));
    let acknowledged = acknowledged.into_inner().unwrap();
    let by_a = acknowledged.iter().filter(|r| r.2 == 'a').count();
    assert!(by_a > 0, "A acknowledged some before it died");
    assert_eq!(
        acknowledged.len(),
        DEVICES,
        "B kept serving: every device got in"
    );
    // Every acknowledged registration is there, through the survivor.
    for (i, operation, replica) in &acknowledged {
        let (id, chain, key) = &devices[*i];
        let record = b.admin("GET", &format!("/registrations/{id}"), None);
        assert_eq!(
            record.body["status"], "assigned",
            "{id} (acknowledged by {replica}): {record:?}"
        );
        let poll = b.client().with_identity(chain, key).call(
            "GET",
            &format!("/{SCOPE}/registrations/{id}/operations/{operation}?api-version=2021-06-01"),
            Vec::new(),
            &[],
        );
        assert_eq!(
            poll.body["status"], "assigned",
            "{id} (acknowledged by {replica}): {poll:?}"
        );
    }
    // And the first device of the canonical PKI still decides through B.
    let (chain, key) = device(&pki, 1);
    let r = b.client().with_identity(&chain, &key).register("device-1");
    assert_eq!(r.body["status"], "assigned", "{r:?}");
}

#[test]
fn a_process_on_sqlite_killed_under_load_loses_no_acknowledged_registration() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Replica::start(&data, None);
    let pki = canonical();
    let put = server.admin(
        "PUT",
        "/enrollmentGroups/line-a",
        Some(&group("line-a", &pki.line_a.pem, true)),
    );
    assert_eq!(put.status, 200, "{put:?}");
    const DEVICES: usize = 240;
    let devices: Vec<(String, String, String)> = (0..DEVICES)
        .map(|i| {
            let id = format!("sqlite-crash-{i:03}");
            let (chain, key) = issue(&pki.line_a, &id);
            (id, chain, key)
        })
        .collect();
    let client = server.client();
    let next = AtomicUsize::new(0);
    // (device, operation ID)
    let acknowledged = Mutex::new(Vec::<(usize, String)>::new());
    let server = Mutex::new(Some(server));
    std::thread::scope(|s| {
        // 16 in flight, so that units queue behind each other's commits.
        for _ in 0..16 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= DEVICES {
                        break;
                    }
                    let (id, chain, key) = &devices[i];
                    let answer = client.clone().with_identity(chain, key).try_call(
                        "PUT",
                        &format!("/{SCOPE}/registrations/{id}/register?api-version=2021-06-01"),
                        format!("{{\"registrationId\":\"{id}\"}}").into_bytes(),
                        &[],
                    );
                    match answer {
                        Ok(r) if r.status == 200 && r.body["status"] == "assigned" => {
                            let op = r.body["operationId"].as_str().unwrap().to_string();
                            acknowledged.lock().unwrap().push((i, op));
                        }
                        // The process is gone: nothing more is acknowledged.
                        _ => break,
                    }
                }
            });
        }
        s.spawn(|| {
            while acknowledged.lock().unwrap().len() < DEVICES / 3 {
                std::thread::sleep(Duration::from_millis(2));
            }
            let mut server = server.lock().unwrap().take().unwrap();
            let pid = server.child.id().to_string();
            assert!(
                Command::new("kill")
                    .args(["-KILL", &pid])
                    .status()
                    .unwrap()
                    .success()
            );
            let _ = server.child.wait();
        });
    });
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(
        acknowledged.len() >= DEVICES / 3 && acknowledged.len() < DEVICES,
        "killed part-way: {} acknowledged",
        acknowledged.len()
    );
    let restarted = Replica::start(&data, None);
    for (i, operation) in &acknowledged {
        let (id, chain, key) = &devices[*i];
        let record = restarted.admin("GET", &format!("/registrations/{id}"), None);
        assert_eq!(record.body["status"], "assigned", "{id}: {record:?}");
        let poll = restarted.client().with_identity(chain, key).call(
            "GET",
            &format!("/{SCOPE}/registrations/{id}/operations/{operation}?api-version=2021-06-01"),
            Vec::new(),
            &[],
        );
        assert_eq!(poll.body["status"], "assigned", "{id}: {poll:?}");
    }
}
