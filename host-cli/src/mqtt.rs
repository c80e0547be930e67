//! The device side of DPS's MQTT 3.1.1 contract, for `host-cli register
//! --transport mqtt`: CONNECT (client ID = registration ID, DPS username,
//! no password), SUBSCRIBE `$dps/registrations/res/#`, then one request and
//! its reply at a time. Packets are encoded and decoded by rumqttc's MQTT
//! 3.1.1 codec.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::BytesMut;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    Connect, ConnectReturnCode, Login, Packet, Publish, Subscribe, SubscribeReasonCode,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest packet read from the service.
const MAX_PACKET: usize = 1 << 20;
/// How long to wait for any one answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// A connected, subscribed MQTT session with a DPS-compatible service.
pub(crate) struct Session {
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    buffer: BytesMut,
    next_request: u32,
}

impl Session {
    /// Connects (TLS with the device's certificate), CONNECTs as
    /// `registration_id` in `id_scope` and subscribes to the replies.
    pub(crate) async fn connect(
        host: &str,
        port: u16,
        config: Arc<rustls::ClientConfig>,
        id_scope: &str,
        registration_id: &str,
    ) -> Result<Session> {
        let stream = crate::register::tls_connect(host, port, config).await?;
        let mut session = Session {
            stream,
            buffer: BytesMut::new(),
            next_request: 1,
        };
        let mut connect = Connect::new(registration_id);
        connect.keep_alive = 60;
        connect.login = Some(Login::new(
            format!(
                "{id_scope}/registrations/{registration_id}/api-version={}&ClientVersion=attest-host-cli%2F{}",
                crate::register::API_VERSION,
                env!("CARGO_PKG_VERSION")
            ),
            "",
        ));
        session.send(Packet::Connect(connect)).await?;
        match session.next().await? {
            Packet::ConnAck(ack) if ack.code == ConnectReturnCode::Success => {}
            Packet::ConnAck(ack) => bail!("the service refused the MQTT CONNECT: {:?}", ack.code),
            other => bail!("expected CONNACK, got {other:?}"),
        }
        session
            .send(Packet::Subscribe(Subscribe::new(
                "$dps/registrations/res/#",
                QoS::AtLeastOnce,
            )))
            .await?;
        match session.next().await? {
            Packet::SubAck(ack)
                if matches!(
                    ack.return_codes.as_slice(),
                    [SubscribeReasonCode::Success(_)]
                ) => {}
            other => bail!("the service refused the subscription: {other:?}"),
        }
        Ok(session)
    }

    /// Registers (`operation` `None`) or polls an operation; the reply's
    /// status, JSON body and retry-after.
    pub(crate) async fn request(
        &mut self,
        registration_id: &str,
        operation: Option<&str>,
    ) -> Result<(u16, Value, Duration)> {
        let rid = self.next_request.to_string();
        self.next_request += 1;
        let (topic, body) = match operation {
            None => (
                format!("$dps/registrations/PUT/iotdps-register/?$rid={rid}"),
                json!({ "registrationId": registration_id }).to_string(),
            ),
            Some(op) => (
                format!(
                    "$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={op}"
                ),
                String::new(),
            ),
        };
        let mut publish = Publish::new(topic, QoS::AtLeastOnce, body);
        publish.pkid = u16::try_from(self.next_request % 60_000)
            .unwrap_or(1)
            .max(1);
        self.send(Packet::Publish(publish)).await?;
        loop {
            match self.next().await? {
                Packet::PubAck(_) => {}
                Packet::Publish(reply) => {
                    let Some((status, query)) = reply
                        .topic
                        .strip_prefix("$dps/registrations/res/")
                        .and_then(|rest| rest.split_once("/?"))
                    else {
                        bail!("unexpected topic {:?}", reply.topic);
                    };
                    let params: Vec<(&str, &str)> =
                        query.split('&').filter_map(|p| p.split_once('=')).collect();
                    let param = |k: &str| params.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
                    if param("$rid") != Some(rid.as_str()) {
                        continue; // a reply to an earlier request
                    }
                    let status: u16 = status
                        .parse()
                        .map_err(|_| anyhow!("reply status {status:?} is not a number"))?;
                    let value = crate::register::answer_json(status, &reply.payload)?;
                    return Ok((
                        status,
                        value,
                        crate::register::retry_after(param("retry-after")),
                    ));
                }
                other => bail!("unexpected {other:?} from the service"),
            }
        }
    }

    /// Says DISCONNECT and closes.
    pub(crate) async fn disconnect(mut self) {
        let _ = self.send(Packet::Disconnect).await;
        let _ = self.stream.shutdown().await;
    }

    async fn send(&mut self, packet: Packet) -> Result<()> {
        let mut out = BytesMut::new();
        packet
            .write(&mut out, MAX_PACKET)
            .map_err(|e| anyhow!("encoding an MQTT packet: {e}"))?;
        self.stream
            .write_all(&out)
            .await
            .context("the service closed the MQTT connection")
    }

    async fn next(&mut self) -> Result<Packet> {
        loop {
            match Packet::read(&mut self.buffer, MAX_PACKET) {
                Ok(p) => return Ok(p),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => bail!("the service sent a malformed MQTT packet: {e}"),
            }
            let read = tokio::time::timeout(ANSWER_TIMEOUT, self.stream.read_buf(&mut self.buffer))
                .await
                .map_err(|_| anyhow!("no answer within {ANSWER_TIMEOUT:?}"))?
                .context("reading from the service")?;
            if read == 0 {
                bail!("the service closed the MQTT connection");
            }
        }
    }
}
