//! Load generator: many devices registering at once, each over a fresh
//! mutual-TLS connection (full handshake with client certificate, one
//! `PUT …/register`), against the host-http binary in its own process.
//!
//! Reports registrations per second, latency percentiles, and the server
//! process's CPU time over the run (from /proc), next to the anchor Azure
//! documents for one DPS instance: 1,000 registrations per minute.
//!
//! Then the same load again while an attacker holds `--idle` silent TCP
//! connections open from another loopback address (reopening each one
//! `--idle-reopen-ms` after the server closes it; 100 makes it a connection
//! flood), side by side with the run without them: the p99 ratio says what
//! idle sockets cost a device.
//!
//! ```text
//! cargo bench -p host-http --bench load [-- --devices 200 --registrations 3000 --concurrency 32 --idle 2000 --idle-reopen-ms 1000]
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use attest_pki::{Ca, KeyAlg, Validity};

const SCOPE: &str = "0ne00000001";

struct Args {
    devices: usize,
    registrations: usize,
    concurrency: usize,
    idle: usize,
    idle_reopen_ms: u64,
}

fn args() -> Args {
    let mut a = Args {
        devices: 200,
        registrations: 3000,
        concurrency: 32,
        idle: 2000,
        idle_reopen_ms: 1000,
    };
    let argv: Vec<String> = std::env::args().collect();
    for w in argv.windows(2) {
        let n = w[1].parse().ok();
        match (w[0].as_str(), n) {
            ("--devices", Some(n)) => a.devices = n,
            ("--registrations", Some(n)) => a.registrations = n,
            ("--concurrency", Some(n)) => a.concurrency = n,
            ("--idle", Some(n)) => a.idle = n,
            ("--idle-reopen-ms", Some(n)) => a.idle_reopen_ms = n as u64,
            _ => {}
        }
    }
    a
}

/// utime + stime of a process, seconds.
fn cpu_seconds(pid: &str) -> f64 {
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let args = args();
    let dir = tempfile::tempdir().expect("tempdir");
    let now = time::OffsetDateTime::now_utc();
    let validity = Validity {
        not_before: now - time::Duration::days(1),
        not_after: now + time::Duration::days(30),
    };
    let root = Ca::root("Load Root", KeyAlg::P256, validity).expect("root");
    let line = root
        .intermediate("Load Line CA", KeyAlg::P256, validity)
        .expect("CA");
    let devices: Vec<(String, Vec<CertificateDer<'static>>, String)> = (0..args.devices)
        .map(|i| {
            let d = line
                .device(&format!("load-{i}"), KeyAlg::P256, validity)
                .expect("device");
            let chain = vec![
                CertificateDer::from(d.der.clone()),
                CertificateDer::from(line.der.clone()),
            ];
            (d.name, chain, d.key.serialize_pem())
        })
        .collect();
    let enrollments = dir.path().join("enrollments.json");
    std::fs::write(
        &enrollments,
        serde_json::json!({"enrollmentGroups": [{
            "enrollmentGroupId": "load", "attestation": {"type": "x509",
            "x509": {"signingCertificates": {"primary": {"certificate": root.pem}}}}}]})
        .to_string(),
    )
    .expect("write");

    let data = dir.path().join("data");
    let mut server = Command::new(env!("CARGO_BIN_EXE_host-http"))
        .args(["--listen", "127.0.0.1:0", "--id-scope", SCOPE, "--data"])
        .arg(&data)
        .arg("--enrollments")
        .arg(&enrollments)
        .env("RUST_LOG", "host_http=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start host-http");
    let mut out = BufReader::new(server.stdout.take().expect("stdout"));
    let addr = loop {
        let mut line = String::new();
        if out.read_line(&mut line).expect("read") == 0 {
            panic!("host-http exited before listening");
        }
        if let Some(rest) = line.strip_prefix("listening on https://") {
            break rest.split_whitespace().next().expect("address").to_string();
        }
    };
    let pid = server.id().to_string();
    let ca = std::fs::read(data.join("tls/dev-server-ca.pem")).expect("dev CA");
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&ca) {
        roots.add(c.expect("PEM")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let configs: Vec<Arc<rustls::ClientConfig>> = devices
        .iter()
        .map(|(_, chain, key)| {
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots.clone())
                .with_client_auth_cert(
                    chain.clone(),
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key"),
                )
                .expect("client auth");
            // Fresh handshakes only: every registration proves possession.
            config.resumption = rustls::client::Resumption::disabled();
            Arc::new(config)
        })
        .collect();
    let names: Vec<String> = devices.iter().map(|d| d.0.clone()).collect();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let next = Arc::new(AtomicUsize::new(0));
    let configs = Arc::new(configs);
    let names = Arc::new(names);
    // Warm-up: one registration per device (first registrations create records).
    let run = |total: usize| {
        next.store(0, Ordering::SeqCst);
        runtime.block_on(async {
            let mut tasks = Vec::new();
            for _ in 0..args.concurrency {
                let (next, configs, names, addr) = (
                    Arc::clone(&next),
                    Arc::clone(&configs),
                    Arc::clone(&names),
                    addr.clone(),
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
                        let started = Instant::now();
                        match register(&addr, Arc::clone(&configs[d]), &names[d]).await {
                            Ok(200) => latencies.push(started.elapsed()),
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
        })
    };
    let _ = run(names.len());
    let cpu_before = cpu_seconds(&pid);
    let started = Instant::now();
    let (mut latencies, errors) = run(args.registrations);
    let wall = started.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(&pid) - cpu_before;
    latencies.sort();
    let rate = latencies.len() as f64 / wall;
    println!(
        "host-http load: {} registrations ({} devices, {} concurrent, fresh mTLS connection each) in {wall:.2} s",
        args.registrations, args.devices, args.concurrency
    );
    println!("  registrations/s   {rate:.0}");
    println!(
        "  latency           p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
    println!("  errors            {errors}");
    println!(
        "  server CPU        {server_cpu:.2} s over {wall:.2} s = {:.0}% of one core ({} cores here)",
        100.0 * server_cpu / wall,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  vs Azure DPS's documented 1,000 registrations/minute per instance (16.7/s): {:.0}x",
        rate / (1000.0 / 60.0)
    );

    if args.idle > 0 {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let holder = hold_idle(
            addr.clone(),
            args.idle,
            Duration::from_millis(args.idle_reopen_ms),
            Arc::clone(&stop),
        );
        // Let the idle sockets pile up before measuring.
        std::thread::sleep(Duration::from_secs(1));
        let started = Instant::now();
        let (mut under, errors) = run(args.registrations);
        let wall = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::SeqCst);
        let reopened = holder.join().expect("idle holder");
        under.sort();
        let p99 = |l: &[Duration]| percentile(l, 0.99).as_secs_f64() * 1e3;
        println!(
            "  with {} idle sockets held open from 127.0.0.2 ({reopened} reopened, each {} ms after the server closed it):",
            args.idle, args.idle_reopen_ms
        );
        println!(
            "    registrations/s {:.0}, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, errors {errors}",
            under.len() as f64 / wall,
            percentile(&under, 0.50).as_secs_f64() * 1e3,
            p99(&under),
            under.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
        );
        println!(
            "    p99 with idle sockets / p99 without: {:.2}x",
            p99(&under) / p99(&latencies).max(1e-9)
        );
    }
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let _ = server.wait();
}

/// Holds `count` silent connections to `addr` from 127.0.0.2 until `stop`,
/// reopening each one `pause` after the server closes it. Returns how many
/// were reopened.
fn hold_idle(
    addr: String,
    count: usize,
    pause: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let target: std::net::SocketAddr = addr.parse().expect("address");
            let reopened = Arc::new(AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for _ in 0..count {
                let (stop, reopened) = (Arc::clone(&stop), Arc::clone(&reopened));
                tasks.push(tokio::spawn(async move {
                    use tokio::io::AsyncReadExt;
                    let mut first = true;
                    while !stop.load(Ordering::Relaxed) {
                        if !first {
                            reopened.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(pause).await;
                        }
                        first = false;
                        let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
                            continue;
                        };
                        if socket
                            .bind("127.0.0.2:0".parse().expect("address"))
                            .is_err()
                        {
                            continue;
                        }
                        let Ok(mut conn) = socket.connect(target).await else {
                            continue;
                        };
                        // Silent until the server closes it (or the run ends).
                        let mut b = [0u8; 1];
                        let _ =
                            tokio::time::timeout(Duration::from_secs(30), conn.read(&mut b)).await;
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
            reopened.load(Ordering::Relaxed)
        })
    })
}

async fn register(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
    id: &str,
) -> Result<u16, Box<dyn std::error::Error + Send + Sync>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
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
