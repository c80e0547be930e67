//! Issue 18, items 1 and 2, as behaviour under the attacks that found
//! them: while clients that prove nothing hold sockets, and while refused
//! chains ask for expensive decisions over and over, legitimate devices
//! keep registering and operators keep managing. No timing assertion: each
//! legitimate request must be answered, and answered right.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::{SCOPE, Server, canonical, device};

/// A TCP connection from `from` (any 127/8 address works on loopback).
async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

fn loopback(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// An MQTT CONNECT for `id` in DPS's shape (MQTT 3.1.1, keep-alive 300 s).
fn mqtt_connect(id: &str) -> Vec<u8> {
    use rumqttc::mqttbytes::v4::{Connect, Login, Packet};
    let mut connect = Connect::new(id);
    connect.keep_alive = 300;
    connect.login = Some(Login::new(
        format!("{SCOPE}/registrations/{id}/api-version=2019-03-31"),
        "",
    ));
    let mut out = bytes::BytesMut::new();
    Packet::Connect(connect).write(&mut out, 1 << 16).unwrap();
    out.to_vec()
}

/// One attacker: holds a connection that proves nothing, reopening it as
/// the server closes it, until `stop`. `mqtt`: a TLS handshake without a
/// certificate, CONNECT, then a PINGREQ every second; otherwise one byte
/// of a ClientHello and silence.
async fn hold(
    from: IpAddr,
    to: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicU64>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut tcp) = connect_from(from, to).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        opened.fetch_add(1, Ordering::Relaxed);
        match &tls {
            Some(config) => {
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
                let name = ServerName::try_from("localhost").unwrap();
                if let Ok(mut s) = connector.connect(name, tcp).await {
                    let _ = s.write_all(&mqtt_connect("device-1")).await;
                    let mut buf = [0u8; 64];
                    while !stop.load(Ordering::Relaxed) {
                        if s.write_all(&[0xc0, 0x00]).await.is_err() {
                            break;
                        }
                        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
                            Ok(Ok(0)) | Ok(Err(_)) => break,
                            _ => {}
                        }
                    }
                }
            }
            None => {
                let _ = tcp.write_all(&[0x16]).await;
                let mut buf = [0u8; 16];
                // Until the server closes it (or the attack ends).
                while !stop.load(Ordering::Relaxed) {
                    match tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut buf)).await
                    {
                        Ok(Ok(0)) | Ok(Err(_)) => break,
                        _ => {}
                    }
                }
            }
        }
        // Reopen at once, as the attack did, but without spinning.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Item 1: 64 no-certificate MQTT sessions from each of 16 loopback
/// addresses used to fill the 1,024 slots in about 3 s, and then no HTTPS,
/// MQTT or management connection was served. Now: during the same attack
/// (plus stalled one-byte sockets from the same addresses), every device
/// registration over HTTPS and MQTT and every management call is served.
#[test]
fn clients_that_prove_nothing_cannot_keep_devices_or_operators_out() {
    let dir = tempfile::tempdir().unwrap();
    let pki = canonical();
    let file = dir.path().join("enrollments.json");
    std::fs::write(&file, pki.enrollment_steps()[0].to_string()).unwrap();
    let mut options = support::options(&dir.path().join("data"), Some(&file));
    options.mqtt_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = Server::start_with(options);
    let mqtt = server.running.as_ref().unwrap().mqtt_addr.unwrap();
    let https = server.addr;
    let anonymous = support::Client::new(https, &server.ca()).config();

    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let attack = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for address in 0..16u8 {
        for n in 0..64 {
            let from = loopback(10 + address);
            // Three quarters hold MQTT sessions, a quarter stalled sockets
            // (on both listeners).
            let (to, tls) = match n % 4 {
                0 => (if n % 8 == 0 { https } else { mqtt }, None),
                _ => (mqtt, Some(Arc::clone(&anonymous))),
            };
            attack.spawn(hold(from, to, tls, Arc::clone(&stop), Arc::clone(&opened)));
        }
    }
    // The attack filled the slots in about 3 s on main; give it that.
    std::thread::sleep(Duration::from_secs(4));

    let files = tempfile::tempdir().unwrap();
    let mut served = 0;
    for round in 0..2 {
        for n in 1..=5 {
            let (chain, key) = device(&pki, n);
            let answer = server.device(&chain, &key).register(&format!("device-{n}"));
            assert_eq!(answer.status, 200, "round {round}, device {n}: {answer:?}");
            assert_eq!(answer.body["status"], "assigned");
            served += 1;
            let listed = server.admin(
                "POST",
                "/enrollmentGroups/query",
                Some(&serde_json::json!({"query": "SELECT * FROM enrollmentGroups"})),
            );
            assert_eq!(listed.status, 200, "{listed:?}");
        }
        // And over MQTT, with host-cli's DPS client.
        let (chain, key) = device(&pki, 2);
        let cert = files.path().join("d2.pem");
        let key_path = files.path().join("d2.key");
        std::fs::write(&cert, chain).unwrap();
        std::fs::write(&key_path, key).unwrap();
        let (_, over_mqtt) = host_cli::register::register(&host_cli::register::RegisterArgs {
            server: format!("mqtts://localhost:{}", mqtt.port()),
            transport: host_cli::register::Transport::Mqtt,
            id_scope: SCOPE.into(),
            cert,
            key: key_path,
            ca: server.ca(),
            registration_id: None,
            json: false,
        })
        .unwrap();
        assert_eq!(over_mqtt.status(), "assigned");
        served += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let opened = opened.load(Ordering::Relaxed);
    attack.shutdown_timeout(Duration::from_secs(5));
    assert_eq!(served, 12);
    // The attack was real: it held (and reopened) at least the 1,024
    // connections that filled every slot on main.
    assert!(opened >= 1024, "only {opened} attacking connections");
}

/// A leaf under `issuers.len()` look-alike P-521 CAs, each named as line
/// A's CA and claiming the root as issuer, none of them the real one: the
/// chain costs a signature check per look-alike and is trusted by nobody.
fn hostile_chain(pki: &attest_pki::Canonical, issuers: usize) -> (String, String) {
    use attest_pki::{Ca, KeyAlg};
    let validity = || {
        let now = time::OffsetDateTime::now_utc();
        attest_pki::Validity {
            not_before: now - time::Duration::days(1),
            not_after: now + time::Duration::days(30),
        }
    };
    // A fake root with the real root's name signs every look-alike.
    let fake_root = Ca::self_signed(
        attest_pki::ca_params("attest demo root CA", validity(), None),
        KeyAlg::P521.generate().unwrap(),
    )
    .unwrap();
    let look_alikes: Vec<Ca> = (0..issuers)
        .map(|_| {
            fake_root
                .issue_ca(
                    attest_pki::ca_params("attest demo line A CA", validity(), None),
                    KeyAlg::P521.generate().unwrap(),
                )
                .unwrap()
        })
        .collect();
    let leaf = look_alikes[0]
        .device("device-1", KeyAlg::P256, validity())
        .unwrap();
    let mut chain = leaf.pem.clone();
    for ca in &look_alikes {
        chain.push_str(&ca.pem);
    }
    let _ = pki;
    (chain, leaf.key.serialize_pem())
}

/// Item 2: a self-made leaf with 100 look-alike P-521 issuers cost ~75 ms
/// of server CPU per request, re-checked on every keep-alive request: 48
/// such connections from one address left 2 of 10 legitimate
/// registrations answered (the rest 503 or 500). Now the refusal is
/// decided once per connection, refused decision time is limited per
/// address, and every legitimate registration is answered.
#[test]
fn refused_chains_cannot_starve_admissions() {
    let dir = tempfile::tempdir().unwrap();
    let pki = canonical();
    let file = dir.path().join("enrollments.json");
    std::fs::write(&file, pki.enrollment_steps()[0].to_string()).unwrap();
    let server = Server::start(&dir.path().join("data"), Some(&file));
    let (chain, key) = hostile_chain(&pki, 100);
    let hostile = server.device(&chain, &key).config();
    let addr = server.addr;

    let stop = Arc::new(AtomicBool::new(false));
    let asked = Arc::new(AtomicU64::new(0));
    let busy = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let attack = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for _ in 0..48 {
        let (hostile, stop, asked, busy, failed) = (
            Arc::clone(&hostile),
            Arc::clone(&stop),
            Arc::clone(&asked),
            Arc::clone(&busy),
            Arc::clone(&failed),
        );
        attack.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(tcp) = connect_from(loopback(50), addr).await else {
                    continue;
                };
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(&hostile));
                let Ok(tls) = connector
                    .connect(ServerName::try_from("localhost").unwrap(), tcp)
                    .await
                else {
                    continue;
                };
                let Ok((mut sender, conn)) =
                    hyper::client::conn::http1::handshake(TokioIo::new(tls)).await
                else {
                    continue;
                };
                tokio::spawn(conn);
                // Keep-alive requests on the one handshake, as fast as answered.
                while !stop.load(Ordering::Relaxed) {
                    let req = hyper::Request::builder()
                        .method("PUT")
                        .uri(format!("/{SCOPE}/registrations/device-1/register"))
                        .header("host", "localhost")
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from_static(b"{}")))
                        .unwrap();
                    let Ok(response) = sender.send_request(req).await else {
                        break;
                    };
                    asked.fetch_add(1, Ordering::Relaxed);
                    match response.status().as_u16() {
                        401 => {}
                        503 if response.headers().contains_key("retry-after") => {
                            busy.fetch_add(1, Ordering::Relaxed);
                        }
                        // A deadline hit answered 500, or a 503 that does
                        // not say when to retry.
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    let _ = response.into_body().collect().await;
                }
            }
        });
    }
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    for round in 0..2 {
        for n in 1..=5 {
            let (chain, key) = device(&pki, n);
            let answer = server.device(&chain, &key).register(&format!("device-{n}"));
            assert_eq!(answer.status, 200, "round {round}, device {n}: {answer:?}");
            assert_eq!(answer.body["status"], "assigned");
        }
    }
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    attack.shutdown_timeout(Duration::from_secs(5));
    let (asked, busy) = (asked.load(Ordering::Relaxed), busy.load(Ordering::Relaxed));
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "hostile requests answered other than 401 or 503 with retry-after"
    );
    // The attack ran throughout: its requests were answered, most of them
    // from the connection's remembered refusal or the address's budget.
    assert!(
        asked > 48,
        "the attack asked only {asked} times in {took:?}"
    );
    eprintln!(
        "hostile requests answered: {asked}, of which 503 (budget): {busy}; 10 registrations in {took:?}"
    );
}

/// A proven connection that goes quiet is closed after `--idle-timeout`
/// (hyper's header read timeout covers only the first request): a client
/// with a valid token or certificate cannot hold its slot for ever. A
/// connection that keeps working stays open.
#[test]
fn an_idle_proven_connection_is_closed_and_a_busy_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = support::options(dir.path(), None);
    options.idle_timeout = 1;
    let server = Server::start_with(options);
    let client = server.client();
    let token = server.token();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(client.config())
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        let closed = tokio::spawn(conn);
        // Busy: a management request (which proves the connection) every
        // 300 ms for 2.4 s, more than twice the idle timeout, on the same
        // connection.
        for _ in 0..8 {
            let req = hyper::Request::builder()
                .method("GET")
                .uri("/enrollmentGroups/none")
                .header("host", "localhost")
                .header("authorization", token.as_str())
                .body(Full::new(Bytes::new()))
                .unwrap();
            let response = sender
                .send_request(req)
                .await
                .expect("the busy connection stays open");
            assert_eq!(response.status(), 404);
            let _ = response.into_body().collect().await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert!(!closed.is_finished());
        // Quiet: the service closes it within the timeout and a check period.
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(10), closed)
            .await
            .expect("the idle connection was closed by the service")
            .unwrap()
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    });
    server.stop();
}
