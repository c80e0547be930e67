//! The DPS MQTT device transport over real TLS on loopback: SPEC §1's
//! canonical scenario over MQTT with the same decisions as over HTTPS (one
//! table), the register → poll flow, CONNECT refusals, and protocol
//! violations and garbage (each closes the connection cleanly and frees
//! its connection slot).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    ConnectReturnCode, Login, Packet, Publish, Subscribe, SubscribeReasonCode,
};
use rustls_pki_types::ServerName;
use serde_json::{Value, json};
use support::{SCOPE, Server, canonical, device};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REGISTER: &str = "$dps/registrations/PUT/iotdps-register/?$rid=";

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// A device speaking MQTT to the service, one packet at a time.
struct Device {
    rt: tokio::runtime::Runtime,
    stream: Tls,
    buffer: BytesMut,
}

impl Device {
    /// A TLS connection to `addr` presenting `identity` (chain, key PEM).
    fn connect(addr: SocketAddr, server: &Server, identity: Option<(&str, &str)>) -> Device {
        let client = match identity {
            Some((chain, key)) => server.device(chain, key),
            None => server.client(),
        };
        Device::connect_as(addr, &client)
    }

    /// A TLS connection to `addr` with `client`'s TLS settings.
    fn connect_as(addr: SocketAddr, client: &support::Client) -> Device {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let config: Arc<rustls::ClientConfig> = client.config();
        let stream = rt.block_on(async {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tokio_rustls::TlsConnector::from(config)
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .expect("TLS handshake")
        });
        Device {
            rt,
            stream,
            buffer: BytesMut::new(),
        }
    }

    fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        packet.write(&mut out, 1 << 20).unwrap();
        self.raw(&out);
    }

    fn raw(&mut self, bytes: &[u8]) {
        let stream = &mut self.stream;
        // The server may already have closed: a write error is an answer too.
        let _ = self.rt.block_on(stream.write_all(bytes));
    }

    /// The next packet, or `None` when the server closed the connection.
    fn next(&mut self) -> Option<Packet> {
        let (stream, buffer) = (&mut self.stream, &mut self.buffer);
        self.rt.block_on(async {
            loop {
                match Packet::read(buffer, 1 << 20) {
                    Ok(p) => return Some(p),
                    Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                    Err(e) => panic!("the server sent a malformed packet: {e}"),
                }
                let read = tokio::time::timeout(Duration::from_secs(30), stream.read_buf(buffer))
                    .await
                    .expect("an answer or a close within 30 s");
                match read {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
    }

    /// CONNECT as `id` with DPS's username; the CONNACK code.
    fn hello(&mut self, id: &str) -> ConnectReturnCode {
        let username =
            format!("{SCOPE}/registrations/{id}/api-version=2019-03-31&ClientVersion=attest-test");
        self.hello_as(id, &username, "")
    }

    fn hello_as(&mut self, client_id: &str, username: &str, password: &str) -> ConnectReturnCode {
        let mut connect = rumqttc::mqttbytes::v4::Connect::new(client_id);
        connect.keep_alive = 30;
        connect.login = Some(Login::new(username, password));
        self.send(Packet::Connect(connect));
        match self.next() {
            Some(Packet::ConnAck(ack)) => ack.code,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    fn subscribe(&mut self) {
        self.send(Packet::Subscribe(Subscribe::new(
            "$dps/registrations/res/#",
            QoS::AtLeastOnce,
        )));
        match self.next() {
            Some(Packet::SubAck(ack)) => {
                assert_eq!(
                    ack.return_codes,
                    [SubscribeReasonCode::Success(QoS::AtLeastOnce)]
                );
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Publishes a request (QoS 1) and returns the reply's status and body.
    fn request(&mut self, topic: &str, body: &[u8]) -> (u16, Value) {
        let mut publish = Publish::new(topic, QoS::AtLeastOnce, body.to_vec());
        publish.pkid = 7;
        self.send(Packet::Publish(publish));
        loop {
            match self.next() {
                Some(Packet::PubAck(ack)) => assert_eq!(ack.pkid, 7),
                Some(Packet::Publish(reply)) => {
                    let rest = reply
                        .topic
                        .strip_prefix("$dps/registrations/res/")
                        .unwrap_or_else(|| panic!("reply topic {}", reply.topic));
                    let (status, query) = rest.split_once("/?").unwrap();
                    assert!(query.starts_with("$rid="), "{}", reply.topic);
                    let body = serde_json::from_slice(&reply.payload).unwrap_or(Value::Null);
                    return (status.parse().unwrap(), body);
                }
                other => panic!("expected a reply, got {other:?}"),
            }
        }
    }

    /// A full registration: CONNECT, SUBSCRIBE, register.
    fn register(
        addr: SocketAddr,
        server: &Server,
        chain: &str,
        key: &str,
        id: &str,
    ) -> (u16, Value) {
        let mut client = server.device(chain, key);
        // Present the chain even when the key is not its leaf's.
        client.any_key = true;
        let mut d = Device::connect_as(addr, &client);
        assert_eq!(d.hello(id), ConnectReturnCode::Success);
        d.subscribe();
        let answer = d.request(
            &format!("{REGISTER}1"),
            json!({"registrationId": id}).to_string().as_bytes(),
        );
        d.send(Packet::Disconnect);
        answer
    }

    /// Whether the server closed the connection (without sending anything
    /// but, perhaps, acknowledgements).
    fn closed(&mut self) -> bool {
        loop {
            match self.next() {
                None => return true,
                Some(Packet::PubAck(_)) => {}
                Some(other) => panic!("expected a close, got {other:?}"),
            }
        }
    }
}

fn start(dir: &std::path::Path, step: usize) -> (Server, attest_pki::Canonical, SocketAddr) {
    let pki = canonical();
    let file = dir.join("enrollments.json");
    std::fs::write(&file, pki.enrollment_steps()[step].to_string()).unwrap();
    let mut options = support::options(&dir.join("data"), Some(&file));
    options.mqtt_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = Server::start_with(options);
    let mqtt = server.mqtt_addr.expect("an MQTT listener");
    (server, pki, mqtt)
}

/// What a registration came to: the status, or the error code's status.
fn outcome((status, body): &(u16, Value)) -> String {
    match status {
        200 => body["status"].as_str().unwrap().to_string(),
        s => s.to_string(),
    }
}

#[test]
fn the_canonical_scenario_decides_the_same_over_mqtt_and_https() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pki, mqtt) = start(dir.path(), 2);
    let stranger = canonical();
    // (case, chain, key, registration ID, expected)
    let mut cases: Vec<(String, String, String, String, &str)> = (1..=5)
        .map(|n| {
            let (chain, key) = device(&pki, n);
            let expected = ["assigned", "assigned", "disabled", "disabled", "disabled"][n - 1];
            (
                format!("device-{n}"),
                chain,
                key,
                format!("device-{n}"),
                expected,
            )
        })
        .collect();
    // Unknown CA, and a chain presented with another device's key.
    let (chain, key) = device(&stranger, 1);
    cases.push(("unknown CA".into(), chain, key, "device-1".into(), "401"));
    let (chain, _) = device(&pki, 2);
    let (_, other_key) = device(&pki, 1);
    cases.push((
        "wrong key".into(),
        chain,
        other_key,
        "device-2".into(),
        "401",
    ));
    for (case, chain, key, id, expected) in &cases {
        let over_mqtt = Device::register(mqtt, &server, chain, key, id);
        let mut https_client = server.device(chain, key);
        https_client.any_key = true;
        let https = https_client.register(id);
        let over_https = outcome(&(https.status, https.body.clone()));
        assert_eq!(
            outcome(&over_mqtt),
            *expected,
            "{case} over MQTT: {over_mqtt:?}"
        );
        assert_eq!(over_https, *expected, "{case} over HTTPS: {https:?}");
        if *expected == "401" {
            // The same refusal code reaches the device over both.
            let code = |m: &str| m.split(':').next().map(str::to_string);
            let (m1, m2) = (
                over_mqtt.1["message"]
                    .as_str()
                    .unwrap()
                    .replace("attest refused the device: ", ""),
                https.body["message"]
                    .as_str()
                    .unwrap()
                    .replace("attest refused the device: ", ""),
            );
            assert_eq!(code(&m1), code(&m2), "{case}: {m1} / {m2}");
            assert_eq!(over_mqtt.1["errorCode"], 401002);
        } else {
            let state = &over_mqtt.1["registrationState"];
            assert_eq!(state["registrationId"], id.as_str(), "{case}");
        }
    }
}

#[test]
fn register_then_poll_and_connect_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pki, mqtt) = start(dir.path(), 0);
    let (chain, key) = device(&pki, 1);
    let mut d = Device::connect(mqtt, &server, Some((&chain, &key)));
    assert_eq!(d.hello("device-1"), ConnectReturnCode::Success);
    d.subscribe();
    let (status, body) = d.request(
        &format!("{REGISTER}r1"),
        br#"{"registrationId":"device-1"}"#,
    );
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("assigned")),
        "{body}"
    );
    let operation = body["operationId"].as_str().unwrap();
    let (status, polled) = d.request(
        &format!(
            "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=r2&operationId={operation}"
        ),
        b" ",
    );
    assert_eq!(status, 200);
    assert_eq!(polled, body);
    let (status, missing) = d.request(
        "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=r3&operationId=nope",
        b"",
    );
    assert_eq!(status, 404, "{missing}");
    // A body naming another registration ID: the HTTPS API's 400.
    let (status, _) = d.request(
        &format!("{REGISTER}r4"),
        br#"{"registrationId":"device-2"}"#,
    );
    assert_eq!(status, 400);
    // Pings are answered; DISCONNECT ends the session.
    d.send(Packet::PingReq);
    assert_eq!(d.next(), Some(Packet::PingResp));
    d.send(Packet::Disconnect);
    assert!(d.closed());

    // CONNECT refusals, each with the CONNACK code that says why.
    let refusals = [
        (
            "device-1",
            "other-scope/registrations/device-1/api-version=2019-03-31".to_string(),
            "",
            ConnectReturnCode::NotAuthorized,
        ),
        (
            "device-2",
            format!("{SCOPE}/registrations/device-1/api-version=2019-03-31"),
            "",
            ConnectReturnCode::BadClientId,
        ),
        (
            "device-1",
            "device-1".to_string(),
            "",
            ConnectReturnCode::BadUserNamePassword,
        ),
        (
            "device-1",
            format!("{SCOPE}/registrations/device-1/api-version=2019-03-31"),
            "SharedAccessSignature sr=x",
            ConnectReturnCode::BadUserNamePassword,
        ),
        (
            "-device",
            format!("{SCOPE}/registrations/-device/api-version=2019-03-31"),
            "",
            ConnectReturnCode::BadClientId,
        ),
    ];
    for (client_id, username, password, expected) in refusals {
        let mut d = Device::connect(mqtt, &server, Some((&chain, &key)));
        assert_eq!(
            d.hello_as(client_id, &username, password),
            expected,
            "{username}"
        );
        assert!(d.closed(), "{username}");
    }
    // A registration ID that is not the certificate's CN is refused by the
    // component, exactly as over HTTPS.
    let (chain2, key2) = device(&pki, 2);
    let mut d = Device::connect(mqtt, &server, Some((&chain2, &key2)));
    assert_eq!(d.hello("device-1"), ConnectReturnCode::Success);
    d.subscribe();
    let (status, body) = d.request(
        &format!("{REGISTER}r5"),
        br#"{"registrationId":"device-1"}"#,
    );
    assert_eq!(status, 401);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("registration-id-mismatch"),
        "{body}"
    );
    // No client certificate: no session at all (issue 18, item 1: such
    // sessions were kept for 300 s and filled every connection slot).
    let mut anonymous = Device::connect(mqtt, &server, None);
    assert_eq!(
        anonymous.hello("device-1"),
        ConnectReturnCode::NotAuthorized
    );
    assert!(anonymous.closed());
}

#[test]
fn protocol_violations_and_garbage_close_the_connection_and_free_the_slot() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pki, mqtt) = start(dir.path(), 0);
    let (chain, key) = device(&pki, 1);
    let identity = Some((chain.as_str(), key.as_str()));
    type Violation = Box<dyn Fn(&mut Device)>;
    let violations: Vec<(&str, Violation)> = vec![
        (
            "garbage before CONNECT",
            Box::new(|d| d.raw(&[0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3])),
        ),
        (
            "PUBLISH before CONNECT",
            Box::new(|d| {
                d.send(Packet::Publish(Publish::new(
                    format!("{REGISTER}1"),
                    QoS::AtMostOnce,
                    "{}",
                )));
            }),
        ),
        (
            "MQTT 5 CONNECT",
            Box::new(|d| {
                // protocol level 5: CONNACK "unacceptable protocol version", then close
                d.raw(&[
                    0x10, 0x11, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 30, 0, 0, 0, 3, b'a',
                    b'b', b'c',
                ]);
                assert!(
                    matches!(d.next(), Some(Packet::ConnAck(a)) if a.code == ConnectReturnCode::RefusedProtocolVersion)
                );
            }),
        ),
        (
            "second CONNECT",
            Box::new(|d| {
                d.hello("device-1");
                d.send(Packet::Connect(rumqttc::mqttbytes::v4::Connect::new(
                    "device-1",
                )));
            }),
        ),
        (
            "PUBLISH before SUBSCRIBE",
            Box::new(|d| {
                d.hello("device-1");
                d.send(Packet::Publish(Publish::new(
                    format!("{REGISTER}1"),
                    QoS::AtMostOnce,
                    "{}",
                )));
            }),
        ),
        (
            "QoS 2 PUBLISH",
            Box::new(|d| {
                d.hello("device-1");
                d.subscribe();
                let mut p = Publish::new(format!("{REGISTER}1"), QoS::ExactlyOnce, "{}");
                p.pkid = 3;
                d.send(Packet::Publish(p));
            }),
        ),
        (
            "another topic",
            Box::new(|d| {
                d.hello("device-1");
                d.subscribe();
                d.send(Packet::Publish(Publish::new(
                    "devices/device-1/messages/events/",
                    QoS::AtMostOnce,
                    "{}",
                )));
            }),
        ),
        (
            "oversize packet",
            Box::new(|d| {
                d.hello("device-1");
                d.subscribe();
                let big = vec![b' '; host_http::MAX_MQTT_PACKET + 1];
                d.send(Packet::Publish(Publish::new(
                    format!("{REGISTER}1"),
                    QoS::AtMostOnce,
                    big,
                )));
            }),
        ),
        (
            "garbage after CONNECT",
            Box::new(|d| {
                d.hello("device-1");
                d.raw(&[0xf0, 0xff, 0xff, 0xff, 0xff, 0x7f]);
            }),
        ),
    ];
    for (name, violate) in &violations {
        let mut d = Device::connect(mqtt, &server, identity);
        violate(&mut d);
        assert!(d.closed(), "{name}: the connection stays open");
    }
    // A subscription to anything else is refused in the SUBACK.
    let mut d = Device::connect(mqtt, &server, identity);
    d.hello("device-1");
    d.send(Packet::Subscribe(Subscribe::new("#", QoS::AtLeastOnce)));
    match d.next() {
        Some(Packet::SubAck(ack)) => assert_eq!(ack.return_codes, [SubscribeReasonCode::Failure]),
        other => panic!("{other:?}"),
    }
    // Slots were freed: more sessions than the per-peer cap (64) in a row.
    for _ in 0..(host_http::MAX_CONNECTIONS_PER_PEER + 6) {
        let mut d = Device::connect(mqtt, &server, identity);
        d.raw(b"\x00");
        assert!(d.closed());
    }
    let (status, body) = Device::register(mqtt, &server, &chain, &key, "device-1");
    assert_eq!((status, body["status"].as_str()), (200, Some("assigned")));
}

#[test]
fn a_silent_connection_is_closed_after_the_connect_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pki, mqtt) = start(dir.path(), 0);
    let (chain, key) = device(&pki, 1);
    let mut d = Device::connect(mqtt, &server, Some((&chain, &key)));
    let started = std::time::Instant::now();
    assert!(d.closed());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(25),
        "{waited:?}"
    );
}

/// `host-cli register --transport mqtt` speaks the same contract: the
/// same outcomes as over HTTPS for an admitted and a disabled device.
#[test]
fn host_cli_registers_over_mqtt() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pki, mqtt) = start(dir.path(), 2);
    let files = tempfile::tempdir().unwrap();
    for (n, expected) in [(1, "assigned"), (3, "disabled")] {
        let (chain, key) = device(&pki, n);
        let cert = files.path().join(format!("d{n}.pem"));
        let key_path = files.path().join(format!("d{n}.key"));
        std::fs::write(&cert, chain).unwrap();
        std::fs::write(&key_path, key).unwrap();
        let args = |transport, server_url: String| host_cli::register::RegisterArgs {
            server: server_url,
            transport,
            id_scope: SCOPE.into(),
            cert: cert.clone(),
            key: key_path.clone(),
            ca: server.ca(),
            registration_id: None,
            json: false,
        };
        let (id, over_mqtt) = host_cli::register::register(&args(
            host_cli::register::Transport::Mqtt,
            format!("mqtts://localhost:{}", mqtt.port()),
        ))
        .unwrap();
        assert_eq!(
            (id.as_str(), over_mqtt.status()),
            (format!("device-{n}").as_str(), expected)
        );
        let (_, over_https) = host_cli::register::register(&args(
            host_cli::register::Transport::Https,
            format!("https://localhost:{}", server.addr.port()),
        ))
        .unwrap();
        assert_eq!(over_https.status(), expected);
        assert_eq!(
            over_mqtt.body["registrationState"]["x509"],
            over_https.body["registrationState"]["x509"]
        );
    }
}

/// A CRL uploaded through the management API refuses the device it revokes
/// over MQTT exactly as over HTTPS, while its unrevoked sibling is admitted.
#[test]
fn a_revoked_device_is_refused_over_mqtt_while_its_sibling_is_admitted() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pki) = support::revocation_service(dir.path(), None, true);
    let mqtt = server.mqtt_addr.expect("an MQTT listener");
    let crl = support::line_a_crl(&pki, &[1], 3, -1, 6);
    let put = server.put_crl("line-a", &crl);
    assert_eq!(put.status, 200, "{}", put.raw);
    let (chain, key) = device(&pki, 1);
    let revoked = Device::register(mqtt, &server, &chain, &key, "device-1");
    assert_eq!(outcome(&revoked), "disabled", "{revoked:?}");
    assert!(
        revoked.1["registrationState"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{revoked:?}"
    );
    let (chain, key) = device(&pki, 2);
    let sibling = Device::register(mqtt, &server, &chain, &key, "device-2");
    assert_eq!(outcome(&sibling), "assigned", "{sibling:?}");
    // HTTPS decides the same.
    let (chain, key) = device(&pki, 1);
    let https = server.device(&chain, &key).register("device-1");
    assert_eq!(https.body["status"], "disabled", "{}", https.raw);
}
