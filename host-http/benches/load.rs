//! Load generator: many devices registering at once, each over a fresh
//! mutual-TLS connection (full handshake with client certificate, one
//! `PUT …/register`), against the host-http binary in its own process.
//!
//! Reports registrations per second, latency percentiles, and the server
//! process's CPU time over the run (from /proc), next to the anchor Azure
//! documents for one DPS instance: 1,000 registrations per minute.
//!
//! The same registrations over MQTT (`--mqtt-listen`: a fresh TLS
//! connection per device, CONNECT, SUBSCRIBE, PUBLISH register, reply) run
//! right after, against the same process: the MQTT ÷ HTTPS ratios compare
//! the transports on equal terms.
//!
//! Then the same HTTPS load again while an attacker holds `--idle` silent TCP
//! connections open from another loopback address (reopening each one
//! `--idle-reopen-ms` after the server closes it; 100 makes it a connection
//! flood), side by side with the run without them: the p99 ratio says what
//! idle sockets cost a device. Last, `--mqtt-idle` MQTT sessions (TLS,
//! CONNECT, SUBSCRIBE, then silence) are opened from 127.0.0.2 onwards, 64
//! per address: how many the service holds, how many it sheds, and the
//! server's resident memory per held session.
//!
//! Beside the HTTPS run, the same devices register against the baseline a
//! user would build instead: a bare tokio-rustls server with rustls's
//! `WebPkiClientVerifier` (same server certificate, TLS 1.3, a fixed 200
//! after the handshake, no store), in a process of its own. The output ends
//! with one line that tools rely on:
//! `ratios: cpu_per_reg_vs_bare=X throughput_vs_bare=X mqtt_vs_https=X idle_p99_vs_quiet=X`
//! (CPU: host-http's per registration ÷ the baseline's per handshake;
//! `idle_p99_vs_quiet` is `nan` with `--idle 0`).
//!
//! ```text
//! cargo bench -p host-http --bench load [-- --devices 200 --registrations 3000 --concurrency 32 --idle 2000 --idle-reopen-ms 1000 --mqtt-idle 10000]
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustls_pki_types::{CertificateDer, ServerName};

use attest_pki::{Ca, KeyAlg, Validity};

mod common;

use common::{
    HostHttp, MqttStream, SCOPE, cpu_seconds, device_config, mqtt_hello, percentile, rss_bytes,
};

struct Args {
    devices: usize,
    registrations: usize,
    concurrency: usize,
    idle: usize,
    idle_reopen_ms: u64,
    mqtt_idle: usize,
}

fn args() -> Args {
    let mut a = Args {
        devices: 200,
        registrations: 3000,
        concurrency: 32,
        idle: 2000,
        idle_reopen_ms: 1000,
        mqtt_idle: 10_000,
    };
    let argv: Vec<String> = std::env::args().collect();
    // Not started by `cargo bench` (which passes `--bench`): the test suite
    // runs this file as the `load-smoke` test, on a load small enough for a
    // debug build, to check that the bench still runs and prints its
    // `ratios:` line.
    if !argv.iter().any(|a| a == "--bench") {
        a = Args {
            devices: 8,
            registrations: 48,
            concurrency: 8,
            idle: 40,
            idle_reopen_ms: 200,
            mqtt_idle: 16,
        };
    }
    for w in argv.windows(2) {
        let n = w[1].parse().ok();
        match (w[0].as_str(), n) {
            ("--devices", Some(n)) => a.devices = n,
            ("--registrations", Some(n)) => a.registrations = n,
            ("--concurrency", Some(n)) => a.concurrency = n,
            ("--idle", Some(n)) => a.idle = n,
            ("--idle-reopen-ms", Some(n)) => a.idle_reopen_ms = n as u64,
            ("--mqtt-idle", Some(n)) => a.mqtt_idle = n,
            _ => {}
        }
    }
    a
}

pub(crate) fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if let [_, flag, data, root, ..] = argv.as_slice()
        && flag == "--bare-server"
    {
        common::bare_server(data.as_ref(), root.as_ref());
        return;
    }
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
    let enrollments_arg = enrollments.to_str().expect("UTF-8 path");
    let server = HostHttp::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--mqtt-listen",
            "127.0.0.1:0",
            "--id-scope",
            SCOPE,
            "--enrollments",
            enrollments_arg,
        ],
        &data,
        &[],
    );
    let (addr, mqtt_addr) = (server.addr.clone(), server.mqtt_addr.clone().expect("MQTT"));
    let pid = server.pid.clone();
    let roots = common::server_roots(&data);
    let configs: Vec<Arc<rustls::ClientConfig>> = devices
        .iter()
        .map(|(_, chain, key)| device_config(&roots, chain.clone(), key))
        .collect();
    let names: Vec<String> = devices.iter().map(|d| d.0.clone()).collect();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let configs = Arc::new(configs);
    let names = Arc::new(names);
    let run_on = |total: usize, mqtt: bool| {
        let target = if mqtt { &mqtt_addr } else { &addr };
        let (latencies, errors, _) = common::load(
            &runtime,
            std::slice::from_ref(target),
            &configs,
            &names,
            total,
            args.concurrency,
            mqtt,
        );
        (latencies, errors)
    };
    let run = |total: usize| run_on(total, false);
    let _ = run(names.len());
    let cpu_before = cpu_seconds(&pid);
    let started = Instant::now();
    let (mut latencies, errors) = run(args.registrations);
    let wall = started.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(&pid) - cpu_before;
    latencies.sort();
    let rate = latencies.len() as f64 / wall;
    // The bare baseline, same devices, same load, right after.
    let client_root = dir.path().join("client-root.pem");
    std::fs::write(&client_root, &root.pem).expect("write");
    let (mut bare, bare_addr) = common::start_bare_server(&data, &client_root);
    let bare_pid = bare.id().to_string();
    let bare_run = |total: usize| {
        let (latencies, errors, _) = common::load(
            &runtime,
            std::slice::from_ref(&bare_addr),
            &configs,
            &names,
            total,
            args.concurrency,
            false,
        );
        (latencies, errors)
    };
    let _ = bare_run(names.len());
    let cpu_before = cpu_seconds(&bare_pid);
    let started = Instant::now();
    let (mut on_bare, bare_errors) = bare_run(args.registrations);
    let bare_wall = started.elapsed().as_secs_f64();
    let bare_cpu = cpu_seconds(&bare_pid) - cpu_before;
    let _ = bare.kill();
    let _ = bare.wait();
    on_bare.sort();
    let bare_rate = on_bare.len() as f64 / bare_wall;
    let cpu_per_reg = server_cpu / latencies.len().max(1) as f64;
    let bare_cpu_per = bare_cpu / on_bare.len().max(1) as f64;
    // The same registrations over MQTT, same process, right after.
    let cpu_before = cpu_seconds(&pid);
    let started = Instant::now();
    let (mut over_mqtt, mqtt_errors) = run_on(args.registrations, true);
    let mqtt_wall = started.elapsed().as_secs_f64();
    let mqtt_cpu = cpu_seconds(&pid) - cpu_before;
    over_mqtt.sort();
    let mqtt_rate = over_mqtt.len() as f64 / mqtt_wall;
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
    let ms = |l: &[Duration], p| percentile(l, p).as_secs_f64() * 1e3;
    println!(
        "  bare tokio-rustls baseline (WebPkiClientVerifier, fixed 200, no store): {bare_rate:.0}/s, p50 {:.1} ms, p99 {:.1} ms, errors {bare_errors}, server CPU per handshake {:.2} ms",
        ms(&on_bare, 0.50),
        ms(&on_bare, 0.99),
        1e3 * bare_cpu_per
    );
    println!(
        "    host-http / bare: CPU per registration {:.2}x, throughput {:.2}x",
        cpu_per_reg / bare_cpu_per.max(1e-12),
        rate / bare_rate.max(1e-9)
    );
    println!(
        "  over MQTT (fresh TLS connection, CONNECT, SUBSCRIBE, register each): {mqtt_rate:.0}/s, p50 {:.1} ms, p99 {:.1} ms, errors {mqtt_errors}",
        ms(&over_mqtt, 0.50),
        ms(&over_mqtt, 0.99)
    );
    println!(
        "    server CPU per registration: HTTPS {:.2} ms, MQTT {:.2} ms",
        1e3 * server_cpu / latencies.len().max(1) as f64,
        1e3 * mqtt_cpu / over_mqtt.len().max(1) as f64
    );
    println!(
        "    MQTT / HTTPS: throughput {:.2}x, p50 {:.2}x, p99 {:.2}x",
        mqtt_rate / rate.max(1e-9),
        ms(&over_mqtt, 0.50) / ms(&latencies, 0.50).max(1e-9),
        ms(&over_mqtt, 0.99) / ms(&latencies, 0.99).max(1e-9)
    );

    let mut idle_p99_vs_quiet = f64::NAN;
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
        idle_p99_vs_quiet = p99(&under) / p99(&latencies).max(1e-9);
        println!("    p99 with idle sockets / p99 without: {idle_p99_vs_quiet:.2}x");
    }
    if args.mqtt_idle > 0 {
        let before = rss_bytes(&pid);
        let (opened, shed, mut sessions) = runtime.block_on(hold_mqtt_sessions(
            &mqtt_addr,
            Arc::clone(&configs[0]),
            &names[0],
            args.mqtt_idle,
        ));
        std::thread::sleep(Duration::from_millis(500));
        let after = rss_bytes(&pid);
        // A session counts as held only if the server still has it open
        // now: one that got its SUBACK may have been evicted since (a
        // session that never registered is unproven, and unproven
        // connections give way to new ones beyond MAX_UNPROVEN).
        let held = runtime.block_on(still_open(&mut sessions));
        println!(
            "  {} idle MQTT sessions attempted (64 per source address, one device's client ID): {opened} got their SUBACK, {held} still open 0.5 s later, {shed} shed at the connection caps",
            args.mqtt_idle
        );
        println!(
            "    server resident memory {:.1} MiB -> {:.1} MiB: {:.1} KiB per held session",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            (after.saturating_sub(before)) as f64 / 1024.0 / held.max(1) as f64
        );
        drop(sessions);
    }
    server.stop();
    let idle = if idle_p99_vs_quiet.is_nan() {
        "nan".to_string()
    } else {
        format!("{idle_p99_vs_quiet:.2}")
    };
    let line = format!(
        "ratios: cpu_per_reg_vs_bare={:.2} throughput_vs_bare={:.2} mqtt_vs_https={:.2} idle_p99_vs_quiet={idle}",
        cpu_per_reg / bare_cpu_per.max(1e-12),
        rate / bare_rate.max(1e-9),
        mqtt_rate / rate.max(1e-9)
    );
    check_ratios_line(&line);
    println!("{line}");
    assert_eq!(
        errors + mqtt_errors + bare_errors,
        0,
        "registrations failed"
    );
}

/// The contract of the last line: `ratios: ` and the four names in this
/// order, each `=` a decimal number (or `nan` for the idle ratio when the
/// idle phase is off).
fn check_ratios_line(line: &str) {
    let rest = line
        .strip_prefix("ratios: ")
        .expect("the line starts with `ratios: `");
    let names: Vec<&str> = rest
        .split(' ')
        .map(|pair| {
            let (name, value) = pair.split_once('=').expect("name=value");
            let decimal = !value.is_empty()
                && value.chars().all(|c| c.is_ascii_digit() || c == '.')
                && value.parse::<f64>().is_ok();
            assert!(
                decimal || (name == "idle_p99_vs_quiet" && value == "nan"),
                "{pair} is not a decimal number"
            );
            name
        })
        .collect();
    assert_eq!(
        names,
        [
            "cpu_per_reg_vs_bare",
            "throughput_vs_bare",
            "mqtt_vs_https",
            "idle_p99_vs_quiet"
        ]
    );
}

/// How many of `sessions` the server has not closed: a read that would
/// wait is an open session, end of stream or an error a closed one.
async fn still_open(sessions: &mut [MqttStream]) -> usize {
    use tokio::io::AsyncReadExt;
    let mut open = 0;
    let mut buffer = [0u8; 256];
    for tls in sessions.iter_mut() {
        match tokio::time::timeout(Duration::from_millis(2), tls.read(&mut buffer)).await {
            Err(_) => open += 1,
            Ok(Ok(n)) if n > 0 => open += 1,
            Ok(_) => {}
        }
    }
    open
}

/// Opens `count` MQTT sessions (TLS, CONNECT, SUBSCRIBE) to `addr` from
/// 127.0.0.2 onwards, 64 per source address, and keeps them open: (held,
/// shed, the open sessions).
async fn hold_mqtt_sessions(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
    id: &str,
    count: usize,
) -> (usize, usize, Vec<MqttStream>) {
    let target: std::net::SocketAddr = addr.parse().expect("address");
    let mut sessions = Vec::new();
    let mut shed = 0;
    for i in 0..count {
        let source =
            std::net::Ipv4Addr::new(127, 0, (2 + i / 64 / 250) as u8, (2 + (i / 64) % 250) as u8);
        let opened = async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(std::net::SocketAddr::new(source.into(), 0))?;
            let tcp = socket.connect(target).await?;
            let mut tls = tokio_rustls::TlsConnector::from(Arc::clone(&config))
                .connect(ServerName::try_from("localhost")?, tcp)
                .await?;
            mqtt_hello(&mut tls, id).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(tls)
        };
        match tokio::time::timeout(Duration::from_secs(5), opened).await {
            Ok(Ok(tls)) => sessions.push(tls),
            _ => shed += 1,
        }
    }
    (sessions.len(), shed, sessions)
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
