//! The DPS device API over MQTT 3.1.1 (DPS's MQTT contract; port 8883 in
//! Azure), on its own TLS listener with the same certificate, evidence
//! capture, connection limits and timeouts as HTTPS. Packets are decoded
//! and encoded by rumqttc's MQTT 3.1.1 codec (`rumqttc::mqttbytes::v4`).
//!
//! A session: CONNECT (client ID = registration ID; username
//! `{idScope}/registrations/{registrationId}/api-version=…[&ClientVersion=…]`,
//! no password: the TLS client certificate is the credential, and a
//! connection without one is refused at CONNECT), SUBSCRIBE
//! `$dps/registrations/res/#` (granted QoS ≤ 1), then
//!
//! - PUBLISH `$dps/registrations/PUT/iotdps-register/?$rid={rid}` with the
//!   DeviceRegistration JSON → `Service::register`;
//! - PUBLISH `$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={op}`
//!   → `Service::operation_status`;
//!
//! each answered on `$dps/registrations/res/{status}/?$rid={rid}` with the
//! HTTPS API's JSON body (a registration is decided at once: a terminal 200,
//! which the SDKs accept as they accept it over HTTPS). A busy service
//! answers 429 with `&retry-after=1`. Anything else (another topic, QoS 2, a
//! PUBLISH before SUBSCRIBE, a second CONNECT, a packet over 96 KiB,
//! garbage) closes the connection; a CONNECT that does not fit is answered
//! with the CONNACK refusal that says why. A session that sends no request
//! for [`REQUEST_IDLE`] is closed, pings notwithstanding: once answered, a
//! device has no reason to hold its connection slot.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, PubAck, Publish, SubAck, SubscribeReasonCode, UnsubAck,
};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use attest_dps::{DpsError, ErrorKind};
use attest_service::{Answer, Service};

use crate::server::Connection;

/// Largest MQTT packet accepted, bytes.
pub(crate) const MAX_PACKET: usize = 96 * 1024;
/// Time a connection has to send CONNECT after the TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a connection may stay silent when its keep-alive is 0 (or
/// would allow longer).
const MAX_IDLE: Duration = Duration::from_secs(300);
/// Longest a session may go without a request (a register or status
/// PUBLISH), pings and subscriptions notwithstanding: a device registers,
/// polls and leaves within seconds, so a session that has its answer (or
/// never asks) gives its connection slot back after this.
pub(crate) const REQUEST_IDLE: Duration = Duration::from_secs(30);
/// The one topic filter a device subscribes to.
const RESPONSE_FILTER: &str = "$dps/registrations/res/#";
const REGISTER_PREFIX: &str = "$dps/registrations/PUT/iotdps-register/?";
const STATUS_PREFIX: &str = "$dps/registrations/GET/iotdps-get-operationstatus/?";

/// Why a session ended (for the log).
#[derive(Debug)]
enum End {
    /// The client said DISCONNECT or closed the connection.
    Closed,
    /// The service is shutting down.
    Shutdown,
    /// A protocol violation or a timeout.
    Dropped(String),
}

/// A request the device published.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Register { rid: String },
    OperationStatus { rid: String, operation_id: String },
}

/// Parses a request topic; `None` for any topic DPS does not serve.
fn parse_topic(topic: &str) -> Option<Request> {
    let (request, query) = if let Some(q) = topic.strip_prefix(REGISTER_PREFIX) {
        ("register", q)
    } else if let Some(q) = topic.strip_prefix(STATUS_PREFIX) {
        ("status", q)
    } else {
        return None;
    };
    let mut rid = None;
    let mut operation_id = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=')?;
        let value = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .ok()?
            .into_owned();
        match key {
            "$rid" => rid = Some(value),
            "operationId" => operation_id = Some(value),
            _ => {}
        }
    }
    let rid = rid.filter(|r| !r.is_empty() && r.len() <= 128)?;
    match request {
        "register" => Some(Request::Register { rid }),
        _ => Some(Request::OperationStatus {
            rid,
            operation_id: operation_id.filter(|o| !o.is_empty() && o.len() <= 128)?,
        }),
    }
}

/// The registration ID a CONNECT names, or the CONNACK refusal for it.
fn check_connect(
    service: &Service,
    connect: &rumqttc::mqttbytes::v4::Connect,
) -> Result<String, ConnectReturnCode> {
    let Some(login) = &connect.login else {
        return Err(ConnectReturnCode::BadUserNamePassword);
    };
    if !login.password.is_empty() {
        // X.509 devices send no password; a SAS token is not accepted here.
        return Err(ConnectReturnCode::BadUserNamePassword);
    }
    let mut parts = login.username.splitn(4, '/');
    let (Some(scope), Some("registrations"), Some(id), Some(_api)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ConnectReturnCode::BadUserNamePassword);
    };
    if !id.eq_ignore_ascii_case(&connect.client_id) {
        return Err(ConnectReturnCode::BadClientId);
    }
    match service.check_device_request(scope, id) {
        Ok(()) => Ok(id.to_string()),
        Err(e) if e.kind == ErrorKind::DeviceNotFound => Err(ConnectReturnCode::NotAuthorized),
        Err(_) => Err(ConnectReturnCode::BadClientId),
    }
}

/// One MQTT connection, after its TLS handshake.
pub(crate) async fn serve<S>(
    service: Arc<Service>,
    connection: Arc<Connection>,
    mut stream: S,
    peer: std::net::SocketAddr,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut session = Session {
        buffer: BytesMut::with_capacity(4096),
        out: BytesMut::with_capacity(4096),
    };
    let end = tokio::select! {
        end = session.run(&service, &connection, &mut stream) => end,
        _ = stop.changed() => End::Shutdown,
    };
    match &end {
        End::Dropped(why) => tracing::debug!(%peer, "MQTT connection dropped: {why}"),
        _ => tracing::debug!(%peer, "MQTT connection ended: {end:?}"),
    }
    let _ = stream.shutdown().await;
}

struct Session {
    buffer: BytesMut,
    out: BytesMut,
}

impl Session {
    /// Reads the next packet within `limit`. `connected`: CONNECT was
    /// accepted (before it, only CONNECT may come).
    async fn read<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        limit: Duration,
        connected: bool,
    ) -> Result<Packet, End> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // The first byte says the packet type: a type a device never
            // sends is garbage at once, not a wait for the rest of it.
            if let Some(&first) = self.buffer.first()
                && !client_packet_type(first, connected)
            {
                return Err(End::Dropped(format!(
                    "byte 0x{first:02x} does not begin a packet a device sends here"
                )));
            }
            match Packet::read(&mut self.buffer, MAX_PACKET) {
                Ok(packet) => return Ok(packet),
                Err(CodecError::InsufficientBytes(_)) => {}
                Err(e) => return Err(End::Dropped(format!("malformed packet: {e}"))),
            }
            if self.buffer.len() > MAX_PACKET + 5 {
                return Err(End::Dropped("packet too large".into()));
            }
            let read = tokio::time::timeout_at(deadline, stream.read_buf(&mut self.buffer)).await;
            match read {
                Ok(Ok(0)) => return Err(End::Closed),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(End::Dropped(format!("read: {e}"))),
                Err(_) => return Err(End::Dropped(format!("silent for {limit:?}"))),
            }
        }
    }

    async fn send<S: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        packet: Packet,
    ) -> Result<(), End> {
        self.out.clear();
        packet
            .write(&mut self.out, MAX_PACKET)
            .map_err(|e| End::Dropped(format!("encode: {e}")))?;
        let out = &self.out;
        let written = tokio::time::timeout(Duration::from_secs(10), async {
            stream.write_all(out).await?;
            stream.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::Dropped("write failed or timed out".into())),
        }
    }

    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        service: &Arc<Service>,
        connection: &Arc<Connection>,
        stream: &mut S,
    ) -> End {
        match self.session(service, connection, stream).await {
            Ok(()) => End::Closed,
            Err(end) => end,
        }
    }

    async fn session<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        service: &Arc<Service>,
        connection: &Arc<Connection>,
        stream: &mut S,
    ) -> Result<(), End> {
        let connect = match self.read(stream, CONNECT_TIMEOUT, false).await {
            Ok(Packet::Connect(c)) => c,
            Ok(other) => return Err(End::Dropped(format!("{other:?} before CONNECT"))),
            Err(End::Dropped(why)) if why.contains("protocol level") => {
                let refused = ConnAck::new(ConnectReturnCode::RefusedProtocolVersion, false);
                self.send(stream, Packet::ConnAck(refused)).await?;
                return Err(End::Dropped(why));
            }
            Err(end) => return Err(end),
        };
        if connect.protocol != rumqttc::mqttbytes::Protocol::V4 {
            let refused = ConnAck::new(ConnectReturnCode::RefusedProtocolVersion, false);
            self.send(stream, Packet::ConnAck(refused)).await?;
            return Err(End::Dropped(format!(
                "CONNECT for {:?}; DPS speaks MQTT 3.1.1",
                connect.protocol
            )));
        }
        // X.509 attestation is the only credential here: without a client
        // certificate there is nothing to decide, and no session to hold.
        if connection.evidence.chain.is_none() {
            let refused = ConnAck::new(ConnectReturnCode::NotAuthorized, false);
            self.send(stream, Packet::ConnAck(refused)).await?;
            return Err(End::Dropped(
                "CONNECT without a TLS client certificate".into(),
            ));
        }
        let registration_id = match check_connect(service, &connect) {
            Ok(id) => id,
            Err(code) => {
                self.send(stream, Packet::ConnAck(ConnAck::new(code, false)))
                    .await?;
                return Err(End::Dropped(format!("CONNECT refused: {code:?}")));
            }
        };
        self.send(
            stream,
            Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false)),
        )
        .await?;
        // MQTT 3.1.1 §3.1.2.10: the server may close after 1.5 keep-alives.
        let idle = match connect.keep_alive {
            0 => MAX_IDLE,
            k => Duration::from_millis(u64::from(k) * 1500).min(MAX_IDLE),
        };
        let mut subscribed = false;
        let mut requests_until = tokio::time::Instant::now() + REQUEST_IDLE;
        loop {
            let left = requests_until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(End::Dropped(format!(
                    "no request for {REQUEST_IDLE:?}; the session is over"
                )));
            }
            match self.read(stream, idle.min(left), true).await? {
                Packet::Subscribe(subscribe) => {
                    let codes = subscribe
                        .filters
                        .iter()
                        .map(|f| {
                            if f.path == RESPONSE_FILTER {
                                subscribed = true;
                                let qos = if f.qos == QoS::AtMostOnce {
                                    QoS::AtMostOnce
                                } else {
                                    QoS::AtLeastOnce
                                };
                                SubscribeReasonCode::Success(qos)
                            } else {
                                SubscribeReasonCode::Failure
                            }
                        })
                        .collect();
                    self.send(stream, Packet::SubAck(SubAck::new(subscribe.pkid, codes)))
                        .await?;
                }
                Packet::Unsubscribe(unsubscribe) => {
                    if unsubscribe.topics.iter().any(|t| t == RESPONSE_FILTER) {
                        subscribed = false;
                    }
                    self.send(stream, Packet::UnsubAck(UnsubAck::new(unsubscribe.pkid)))
                        .await?;
                }
                Packet::Publish(publish) => {
                    if publish.qos == QoS::ExactlyOnce {
                        return Err(End::Dropped(
                            "QoS 2 PUBLISH (DPS serves QoS 0 and 1)".into(),
                        ));
                    }
                    if !subscribed {
                        return Err(End::Dropped(format!(
                            "PUBLISH before SUBSCRIBE {RESPONSE_FILTER}"
                        )));
                    }
                    let Some(request) = parse_topic(&publish.topic) else {
                        return Err(End::Dropped(format!(
                            "PUBLISH to a topic DPS does not serve: {:?}",
                            publish.topic.chars().take(120).collect::<String>()
                        )));
                    };
                    if publish.qos == QoS::AtLeastOnce {
                        self.send(stream, Packet::PubAck(PubAck::new(publish.pkid)))
                            .await?;
                    }
                    requests_until = tokio::time::Instant::now() + REQUEST_IDLE;
                    let reply = self
                        .answer(service, connection, &registration_id, request, publish)
                        .await;
                    self.send(stream, Packet::Publish(reply)).await?;
                }
                Packet::PingReq => self.send(stream, Packet::PingResp).await?,
                // Acknowledgements of our QoS 0 replies are not expected,
                // but a client may send them: nothing to do.
                Packet::PubAck(_) => {}
                Packet::Disconnect => return Ok(()),
                other => {
                    return Err(End::Dropped(format!(
                        "unexpected {:?}",
                        std::mem::discriminant(&other)
                    )));
                }
            }
        }
    }

    /// Runs one request through the service (one blocking call) and
    /// frames its answer as the reply PUBLISH.
    async fn answer(
        &mut self,
        service: &Arc<Service>,
        connection: &Arc<Connection>,
        registration_id: &str,
        request: Request,
        publish: Publish,
    ) -> Publish {
        let service = Arc::clone(service);
        let evidence = Arc::clone(connection);
        let id = registration_id.to_string();
        let (rid, answer) = match request {
            Request::Register { rid } => {
                let body = publish.payload;
                let answer =
                    crate::http::blocking(move || service.register(&evidence.evidence, &id, &body));
                (rid, answer.await)
            }
            Request::OperationStatus { rid, operation_id } => {
                let answer = crate::http::blocking(move || {
                    service.operation_status(&evidence.evidence, &id, &operation_id)
                });
                (rid, answer.await)
            }
        };
        match &answer {
            Ok(_) => connection.prove(),
            Err(e) if e.kind.status() == 503 => connection.metrics.unavailable("device"),
            Err(_) => {}
        }
        reply(&rid, answer)
    }
}

/// Whether `first` (a fixed header's first byte) begins a packet a device
/// may send: CONNECT before the session, then PUBLISH, PUBACK, SUBSCRIBE,
/// UNSUBSCRIBE, PINGREQ or DISCONNECT (MQTT 3.1.1 §2.2; a second CONNECT
/// passes here and is refused by the session).
fn client_packet_type(first: u8, connected: bool) -> bool {
    let (kind, flags) = (first >> 4, first & 0x0f);
    if !connected {
        return first == 0x10;
    }
    match kind {
        1 | 4 | 12 | 14 => flags == 0,
        3 => true,
        8 | 10 => flags == 0b0010,
        _ => false,
    }
}

/// The reply PUBLISH for an answer: `$dps/registrations/res/{status}/?$rid={rid}`.
fn reply(rid: &str, answer: Answer) -> Publish {
    let rid = percent_encoding::utf8_percent_encode(rid, percent_encoding::NON_ALPHANUMERIC);
    let (status, body, retry_after) = match answer {
        Ok(reply) => (
            reply.status,
            reply.body.map(|b| b.to_string()).unwrap_or_default(),
            None,
        ),
        Err(error) => {
            let tracking = attest_service::random_id().unwrap_or_default();
            let body = error
                .body(&tracking, &attest_service::now_rfc3339())
                .to_string();
            (mqtt_status(&error), body, error.retry_after())
        }
    };
    let mut topic = format!("$dps/registrations/res/{status}/?$rid={rid}");
    if let Some(seconds) = retry_after {
        topic.push_str(&format!("&retry-after={seconds}"));
    }
    Publish::new(topic, QoS::AtMostOnce, body)
}

/// The status of an error reply: as over HTTPS, except that "busy, retry"
/// is DPS's MQTT throttling status 429 (which the SDKs retry after
/// `retry-after`).
fn mqtt_status(error: &DpsError) -> u16 {
    match error.kind {
        ErrorKind::Unavailable => 429,
        kind => kind.status(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics() {
        assert_eq!(
            parse_topic("$dps/registrations/PUT/iotdps-register/?$rid=7"),
            Some(Request::Register { rid: "7".into() })
        );
        assert_eq!(
            parse_topic(
                "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=8&operationId=4.a%2Db"
            ),
            Some(Request::OperationStatus {
                rid: "8".into(),
                operation_id: "4.a-b".into()
            })
        );
        for bad in [
            "$dps/registrations/PUT/iotdps-register/",
            "$dps/registrations/PUT/iotdps-register/?$rid=",
            "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=1",
            "$dps/registrations/PUT/other/?$rid=1",
            "devices/x/messages/events/",
            "$dps/registrations/PUT/iotdps-register/?$rid=%FF",
        ] {
            assert_eq!(parse_topic(bad), None, "{bad}");
        }
    }

    #[test]
    fn packet_types() {
        assert!(client_packet_type(0x10, false));
        assert!(!client_packet_type(0x30, false));
        assert!(!client_packet_type(0x00, false));
        for ok in [0x30, 0x32, 0x3b, 0x40, 0x82, 0xa2, 0xc0, 0xe0, 0x10] {
            assert!(client_packet_type(ok, true), "0x{ok:02x}");
        }
        for bad in [
            0x00, 0x20, 0x50, 0x62, 0x70, 0x80, 0x90, 0xb0, 0xd0, 0xf0, 0xe1,
        ] {
            assert!(!client_packet_type(bad, true), "0x{bad:02x}");
        }
    }

    #[test]
    fn replies() {
        let ok = reply(
            "r 1",
            Ok(attest_service::Reply::ok(
                serde_json::json!({"status": "assigned"}),
            )),
        );
        assert_eq!(ok.topic, "$dps/registrations/res/200/?$rid=r%201");
        let busy = reply("2", Err(DpsError::new(ErrorKind::Unavailable, "busy")));
        assert_eq!(
            busy.topic,
            "$dps/registrations/res/429/?$rid=2&retry-after=1"
        );
        let refused = reply("3", Err(DpsError::new(ErrorKind::DeviceUnauthorized, "no")));
        assert!(refused.topic.starts_with("$dps/registrations/res/401/"));
        let body: serde_json::Value = serde_json::from_slice(&refused.payload).unwrap();
        assert_eq!(body["errorCode"], 401002);
    }
}
