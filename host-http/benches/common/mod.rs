//! What the bench binaries share: host-http processes, /proc readings,
//! percentiles, device TLS configurations and one HTTPS registration.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

pub const SCOPE: &str = "0ne00000001";

/// Resident memory of a process, bytes.
pub fn rss_bytes(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// utime + stime of a process, seconds.
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds of every process named `name` (e.g. all of PostgreSQL's).
pub fn cpu_seconds_of_all(name: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .map(|pid| cpu_seconds(&pid))
        .sum()
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Milliseconds of a percentile.
pub fn ms(sorted: &[Duration], p: f64) -> f64 {
    percentile(sorted, p).as_secs_f64() * 1e3
}

/// A host-http process and the addresses it listens on.
pub struct HostHttp {
    pub child: Child,
    pub pid: String,
    pub addr: String,
    pub mqtt_addr: Option<String>,
}

impl HostHttp {
    /// Starts host-http with `args`, waiting until it listens (HTTPS, and
    /// MQTT when `--mqtt-listen` is among `args`).
    pub fn start(args: &[&str], data: &Path, env: &[(&str, &str)]) -> HostHttp {
        let mqtt = args.contains(&"--mqtt-listen");
        let mut command = Command::new(env!("CARGO_BIN_EXE_host-http"));
        command
            .args(args)
            .arg("--data")
            .arg(data)
            .env("RUST_LOG", "host_http=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start host-http");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let (mut addr, mut mqtt_addr) = (None, None);
        while addr.is_none() || (mqtt && mqtt_addr.is_none()) {
            let mut line = String::new();
            if out.read_line(&mut line).expect("read") == 0 {
                panic!("host-http exited before listening");
            }
            if let Some(rest) = line.strip_prefix("listening on https://") {
                addr = Some(rest.split_whitespace().next().expect("address").to_string());
            }
            if let Some(rest) = line.strip_prefix("listening for MQTT devices on mqtts://") {
                mqtt_addr = Some(rest.trim().to_string());
            }
        }
        std::thread::spawn(move || for _ in out.lines() {});
        HostHttp {
            pid: child.id().to_string(),
            child,
            addr: addr.expect("HTTPS"),
            mqtt_addr,
        }
    }

    /// SIGTERM, and wait.
    pub fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.pid]).status();
        let _ = self.child.wait();
    }
}

/// The roots that trust host-http's development certificate in `data`.
pub fn server_roots(data: &Path) -> rustls::RootCertStore {
    let ca = std::fs::read(data.join("tls/dev-server-ca.pem")).expect("dev CA");
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&ca) {
        roots.add(c.expect("PEM")).expect("root");
    }
    roots
}

/// A device's TLS configuration: its chain and key, no resumption (every
/// registration proves possession).
pub fn device_config(
    roots: &rustls::RootCertStore,
    chain: Vec<CertificateDer<'static>>,
    key_pem: &str,
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots.clone())
        .with_client_auth_cert(
            chain,
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key"),
        )
        .expect("client auth");
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// A fresh mutual-TLS connection to `addr` (as `localhost`).
pub async fn connect(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<MqttStream, Box<dyn std::error::Error + Send + Sync>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?)
}

/// One registration over a fresh mutual-TLS connection; the HTTP status.
pub async fn register(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
    id: &str,
) -> Result<u16, Box<dyn std::error::Error + Send + Sync>> {
    let tls = connect(addr, config).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method("PUT")
        .uri(format!(
            "/{SCOPE}/registrations/{id}/register?api-version=2021-06-01"
        ))
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(format!(
            "{{\"registrationId\":\"{id}\"}}"
        ))))?;
    let response = sender.send_request(req).await?;
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await?;
    Ok(status)
}

/// A client TLS connection (HTTPS or MQTT).
pub type MqttStream = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// CONNECT and SUBSCRIBE as device `id`; the SUBACK's arrival.
pub async fn mqtt_hello(
    tls: &mut MqttStream,
    id: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use rumqttc::mqttbytes::QoS;
    use rumqttc::mqttbytes::v4::{Connect, Login, Packet, Subscribe};
    let mut connect = Connect::new(id);
    connect.keep_alive = 300;
    connect.login = Some(Login::new(
        format!("{SCOPE}/registrations/{id}/api-version=2019-03-31"),
        "",
    ));
    let mut out = bytes::BytesMut::new();
    Packet::Connect(connect).write(&mut out, 1 << 16)?;
    Packet::Subscribe(Subscribe::new("$dps/registrations/res/#", QoS::AtLeastOnce))
        .write(&mut out, 1 << 16)?;
    tls.write_all(&out).await?;
    let mut buffer = bytes::BytesMut::new();
    loop {
        match read_packet(tls, &mut buffer).await? {
            Packet::SubAck(_) => return Ok(()),
            Packet::ConnAck(_) => {}
            other => return Err(format!("unexpected {other:?}").into()),
        }
    }
}

pub async fn read_packet(
    tls: &mut MqttStream,
    buffer: &mut bytes::BytesMut,
) -> Result<rumqttc::mqttbytes::v4::Packet, Box<dyn std::error::Error + Send + Sync>> {
    loop {
        match rumqttc::mqttbytes::v4::Packet::read(buffer, 1 << 20) {
            Ok(p) => return Ok(p),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(e) => return Err(e.into()),
        }
        if tls.read_buf(buffer).await? == 0 {
            return Err("closed".into());
        }
    }
}

/// One registration over MQTT on a fresh connection: the reply's status.
pub async fn register_mqtt(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
    id: &str,
) -> Result<u16, Box<dyn std::error::Error + Send + Sync>> {
    use rumqttc::mqttbytes::QoS;
    use rumqttc::mqttbytes::v4::{Packet, Publish};
    let mut tls = connect(addr, config).await?;
    mqtt_hello(&mut tls, id).await?;
    let mut out = bytes::BytesMut::new();
    Packet::Publish(Publish::new(
        "$dps/registrations/PUT/iotdps-register/?$rid=1",
        QoS::AtMostOnce,
        format!("{{\"registrationId\":\"{id}\"}}"),
    ))
    .write(&mut out, 1 << 16)?;
    tls.write_all(&out).await?;
    let mut buffer = bytes::BytesMut::new();
    let reply = loop {
        if let Packet::Publish(p) = read_packet(&mut tls, &mut buffer).await? {
            break p;
        }
    };
    let status = reply
        .topic
        .strip_prefix("$dps/registrations/res/")
        .and_then(|r| r.split('/').next())
        .and_then(|s| s.parse().ok())
        .ok_or("reply topic")?;
    let mut out = bytes::BytesMut::new();
    Packet::Disconnect.write(&mut out, 16)?;
    let _ = tls.write_all(&out).await;
    Ok(status)
}

/// `total` registrations spread over `addrs` (over MQTT when `mqtt`),
/// `concurrency` at once: sorted latencies of those answered 200, errors,
/// wall seconds.
pub fn load(
    runtime: &tokio::runtime::Runtime,
    addrs: &[String],
    configs: &Arc<Vec<Arc<rustls::ClientConfig>>>,
    names: &Arc<Vec<String>>,
    total: usize,
    concurrency: usize,
    mqtt: bool,
) -> (Vec<Duration>, usize, f64) {
    let next = Arc::new(AtomicUsize::new(0));
    let addrs = Arc::new(addrs.to_vec());
    let started = Instant::now();
    let (mut latencies, errors) = runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (next, configs, names, addrs) = (
                Arc::clone(&next),
                Arc::clone(configs),
                Arc::clone(names),
                Arc::clone(&addrs),
            );
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0usize;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let d = i % names.len();
                    let addr = &addrs[i % addrs.len()];
                    let t = Instant::now();
                    let config = Arc::clone(&configs[d]);
                    let status = if mqtt {
                        register_mqtt(addr, config, &names[d]).await
                    } else {
                        register(addr, config, &names[d]).await
                    };
                    match status {
                        Ok(200) => latencies.push(t.elapsed()),
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.expect("task");
            all.extend(l);
            errors += e;
        }
        (all, errors)
    });
    let wall = started.elapsed().as_secs_f64();
    latencies.sort();
    (latencies, errors, wall)
}

/// The baseline a user would build instead of host-http: tokio-rustls with
/// rustls's `WebPkiClientVerifier` (TLS 1.3, no session resumption, the same
/// server certificate as host-http in `data`, device chains checked against
/// `client_root`), answering a fixed 200 to every request after the
/// handshake; no store, no policy. Runs until killed; prints
/// `listening on ADDR` once bound.
pub fn bare_server(data: &Path, client_root: &Path) {
    use rustls::server::WebPkiClientVerifier;
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(data.join("tls/dev-server.pem"))
            .expect("server certificate")
            .map(|c| c.expect("PEM"))
            .collect();
    let key = PrivateKeyDer::from_pem_file(data.join("tls/dev-server.key")).expect("server key");
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(client_root).expect("client root") {
        roots.add(c.expect("PEM")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .expect("client verifier");
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .expect("server certificate");
    // As host-http: every connection is a full handshake.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("listening on {}", listener.local_addr().expect("address"));
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(b"{}"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
}

/// [`bare_server`] in a process of its own (this bench binary, started
/// again with `--bare-server`), so that its CPU time is its own: the child
/// and its address.
pub fn start_bare_server(data: &Path, client_root: &Path) -> (Child, String) {
    let mut child = Command::new(std::env::current_exe().expect("this binary"))
        .arg("--bare-server")
        .arg(data)
        .arg(client_root)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the bare baseline server");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("read");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("bare server said {line:?}"))
        .to_string();
    (child, addr)
}
