//! Scale-out benchmarks (issue 12), against host-http processes and the
//! PostgreSQL server `scripts/with-postgres` starts:
//!
//! 1. **Replicas.** The same registration load (fresh mutual-TLS
//!    connection per registration, as in the `load` bench) against one
//!    host-http on SQLite (the baseline), one on PostgreSQL, and two on one
//!    PostgreSQL database (the generator alternates between them), in one
//!    run. Reported: registrations/s, p50/p99, and CPU per registration of
//!    host-http and of PostgreSQL, which say what limits throughput here.
//! 2. **A large fleet.** On each store: an empty service is measured
//!    (registration p50/p99, management write latency for individual
//!    enrollments and for groups, resident memory of the replica), then
//!    `--entries` individual enrollments and `--groups` enrollment groups are
//!    imported through the bulk API with `host-cli import` (timed), and the
//!    same measurements repeat against the full store. Then edge
//!    snapshots of the full store: a full snapshot synced into a gateway
//!    replica (`host-cli sync`: streamed, verified, applied; time, bytes,
//!    host-http's peak memory while it streams against its memory before),
//!    and a delta of 100 changes (the baseline: the full snapshot, same run).
//!
//! ```text
//! scripts/with-postgres cargo bench -p host-http --bench scale -- \
//!     [--entries 1000000] [--groups 10000] [--registrations 2000] [--concurrency 32] \
//!     [--stores postgres,sqlite] [--skip-replicas] [--skip-fleet]
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};

use attest_pki::{Ca, KeyAlg, Validity};
use common::{HostHttp, SCOPE, cpu_seconds, cpu_seconds_of_all, ms, rss_bytes};

struct Args {
    registrations: usize,
    concurrency: usize,
    devices: usize,
    entries: usize,
    groups: usize,
    stores: Vec<String>,
    replicas: bool,
    fleet: bool,
}

fn args() -> Args {
    let mut a = Args {
        registrations: 2000,
        concurrency: 32,
        devices: 200,
        entries: 1_000_000,
        groups: 10_000,
        stores: vec!["postgres".into(), "sqlite".into()],
        replicas: true,
        fleet: true,
    };
    let argv: Vec<String> = std::env::args().collect();
    for (i, arg) in argv.iter().enumerate() {
        let value = argv.get(i + 1).map(String::as_str).unwrap_or("");
        let n = value.parse().ok();
        match (arg.as_str(), n) {
            ("--registrations", Some(n)) => a.registrations = n,
            ("--concurrency", Some(n)) => a.concurrency = n,
            ("--devices", Some(n)) => a.devices = n,
            ("--entries", Some(n)) => a.entries = n,
            ("--groups", Some(n)) => a.groups = n,
            ("--stores", _) => a.stores = value.split(',').map(str::to_string).collect(),
            ("--skip-replicas", _) => a.replicas = false,
            ("--skip-fleet", _) => a.fleet = false,
            _ => {}
        }
    }
    a
}

fn validity() -> Validity {
    let now = time::OffsetDateTime::now_utc();
    Validity {
        not_before: now - time::Duration::days(1),
        not_after: now + time::Duration::days(30),
    }
}

/// A new database on the bench's PostgreSQL server.
fn fresh_database(label: &str) -> String {
    attest_tests::postgres::fresh_database(&format!("attest_scale_{label}"))
}

/// The load devices: their names and certificate chains (leaf, line CA) and keys.
struct Fleet {
    line: Ca,
    names: Vec<String>,
    chains: Vec<(Vec<CertificateDer<'static>>, String)>,
    /// `base.json`: the line CA's group and individual enrollments for the
    /// first half of the devices (the rest are decided by the group).
    base: PathBuf,
}

fn fleet(dir: &Path, devices: usize) -> Fleet {
    let root = Ca::root("Scale Root", KeyAlg::P256, validity()).expect("root");
    let line = root
        .intermediate("Scale Line CA", KeyAlg::P256, validity())
        .expect("line");
    let mut names = Vec::new();
    let mut chains = Vec::new();
    let mut individuals = Vec::new();
    for i in 0..devices {
        let d = line
            .device(&format!("scale-{i:04}"), KeyAlg::P256, validity())
            .expect("device");
        if i < devices / 2 {
            individuals.push(
                json!({"registrationId": d.name, "attestation": {"type": "x509",
                "x509": {"clientCertificates": {"primary": {"certificate": d.pem}}}}}),
            );
        }
        names.push(d.name.clone());
        chains.push((
            vec![
                CertificateDer::from(d.der.clone()),
                CertificateDer::from(line.der.clone()),
            ],
            d.key.serialize_pem(),
        ));
    }
    let base = dir.join("base.json");
    std::fs::write(
        &base,
        json!({"individualEnrollments": individuals, "enrollmentGroups": [{
            "enrollmentGroupId": "scale-line", "attestation": {"type": "x509",
            "x509": {"signingCertificates": {"primary": {"certificate": line.pem}}}}}]})
        .to_string(),
    )
    .expect("write base.json");
    Fleet {
        line,
        names,
        chains,
        base,
    }
}

/// The connection string of the service whose data directory is `data`.
fn connection_string(data: &Path, addr: &str) -> String {
    let text = std::fs::read_to_string(data.join("config.json")).expect("config.json");
    let config: host_http::ServiceConfig = serde_json::from_str(&text).expect("config");
    let p = &config.shared_access_policies[0];
    let port = addr.rsplit_once(':').expect("port").1;
    format!(
        "HostName=localhost:{port};SharedAccessKeyName={};SharedAccessKey={}",
        p.key_name, p.primary_key
    )
}

fn import(data: &Path, addr: &str, file: &Path) -> host_cli::import::Imported {
    let done = host_cli::import::import(&host_cli::import::ImportArgs {
        file: file.to_path_buf(),
        connection_string: connection_string(data, addr),
        server: None,
        ca: data.join("tls/dev-server-ca.pem"),
        mode: host_cli::import::Mode::Update,
        connections: 4,
        quiet: true,
    })
    .expect("import");
    assert_eq!(
        done.refused_count(),
        0,
        "refused while importing: {:?}",
        done.refused
    );
    done
}

fn device_configs(
    fleet: &Fleet,
    roots: &rustls::RootCertStore,
) -> Arc<Vec<Arc<rustls::ClientConfig>>> {
    Arc::new(
        fleet
            .chains
            .iter()
            .map(|(chain, key)| common::device_config(roots, chain.clone(), key))
            .collect(),
    )
}

/// Sequential management calls on one keep-alive connection: sorted
/// latencies of those answered 200.
fn management_writes(
    runtime: &tokio::runtime::Runtime,
    data: &Path,
    addr: &str,
    writes: &[(String, Value)],
) -> Vec<Duration> {
    let text = std::fs::read_to_string(data.join("config.json")).expect("config.json");
    let config: host_http::ServiceConfig = serde_json::from_str(&text).expect("config");
    let expiry = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let token = attest_dps::sas::token(&config.shared_access_policies[0], "localhost", expiry)
        .expect("token");
    let roots = common::server_roots(data);
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let tls = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await
            .expect("TLS");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("HTTP");
        tokio::spawn(conn);
        let mut latencies = Vec::new();
        for (path, body) in writes {
            let request = hyper::Request::builder()
                .method("PUT")
                .uri(format!("{path}?api-version=2021-10-01"))
                .header("host", "localhost")
                .header("authorization", &token)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .expect("request");
            sender.ready().await.expect("ready");
            let t = Instant::now();
            let response = sender.send_request(request).await.expect("response");
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            if status == 200 {
                latencies.push(t.elapsed());
            } else {
                eprintln!(
                    "management write {path}: {status} {}",
                    String::from_utf8_lossy(&bytes)
                );
            }
        }
        latencies.sort();
        latencies
    })
}

fn main() {
    let args = args();
    let dir = tempfile::tempdir().expect("tempdir");
    let fleet = fleet(dir.path(), args.devices);
    let names = Arc::new(fleet.names.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "attest scale bench: {} cores; generator, host-http and PostgreSQL share them",
        cores
    );
    if args.replicas {
        replicas(&args, dir.path(), &fleet, &names, &runtime);
    }
    if args.fleet {
        large_fleet(&args, dir.path(), &fleet, &names, &runtime);
    }
}

fn replicas(
    args: &Args,
    dir: &Path,
    fleet: &Fleet,
    names: &Arc<Vec<String>>,
    runtime: &tokio::runtime::Runtime,
) {
    println!(
        "\n1. Replicas: {} registrations ({} devices, half individual, half by group; {} concurrent; fresh mTLS connection each)",
        args.registrations, args.devices, args.concurrency
    );
    println!(
        "   {:<26} {:>8} {:>9} {:>9} {:>7} {:>13} {:>13}",
        "setup", "reg/s", "p50 ms", "p99 ms", "errors", "host-http CPU", "PostgreSQL CPU"
    );
    let setups: [(&str, bool, usize); 3] = [
        ("SQLite, 1 replica", false, 1),
        ("PostgreSQL, 1 replica", true, 1),
        ("PostgreSQL, 2 replicas", true, 2),
    ];
    let mut baseline = None;
    for (i, (label, postgres, count)) in setups.into_iter().enumerate() {
        let database = postgres.then(|| fresh_database(&format!("replicas{i}")));
        let env: Vec<(&str, &str)> = database
            .iter()
            .map(|url| ("ATTEST_DATABASE_URL", url.as_str()))
            .collect();
        let servers: Vec<(HostHttp, PathBuf)> = (0..count)
            .map(|r| {
                let data = dir.join(format!("replicas{i}-{r}"));
                let server = HostHttp::start(
                    &["--listen", "127.0.0.1:0", "--id-scope", SCOPE],
                    &data,
                    &env,
                );
                (server, data)
            })
            .collect();
        import(&servers[0].1, &servers[0].0.addr, &fleet.base);
        let mut roots = rustls::RootCertStore::empty();
        for (_, data) in &servers {
            for c in common::server_roots(data).roots {
                roots.roots.push(c);
            }
        }
        let configs = device_configs(fleet, &roots);
        let addrs: Vec<String> = servers.iter().map(|(s, _)| s.addr.clone()).collect();
        // Warm-up: every device once (first registrations create records).
        let _ = common::load(
            runtime,
            &addrs,
            &configs,
            names,
            names.len(),
            args.concurrency,
            false,
        );
        let host_cpu = || {
            servers
                .iter()
                .map(|(s, _)| cpu_seconds(&s.pid))
                .sum::<f64>()
        };
        let (h0, p0) = (host_cpu(), cpu_seconds_of_all("postgres"));
        let (latencies, errors, wall) = common::load(
            runtime,
            &addrs,
            &configs,
            names,
            args.registrations,
            args.concurrency,
            false,
        );
        let (h1, p1) = (host_cpu(), cpu_seconds_of_all("postgres"));
        let n = latencies.len().max(1) as f64;
        let rate = latencies.len() as f64 / wall;
        println!(
            "   {label:<26} {rate:>8.0} {:>9.1} {:>9.1} {errors:>7} {:>10.2} ms {:>10.2} ms",
            ms(&latencies, 0.5),
            ms(&latencies, 0.99),
            1e3 * (h1 - h0) / n,
            if postgres { 1e3 * (p1 - p0) / n } else { 0.0 },
        );
        match &baseline {
            None => baseline = Some((rate, ms(&latencies, 0.5), ms(&latencies, 0.99))),
            Some((r, p50, p99)) => println!(
                "   {:<26} vs SQLite: throughput {:.2}x, p50 {:.2}x, p99 {:.2}x",
                "",
                rate / r,
                ms(&latencies, 0.5) / p50,
                ms(&latencies, 0.99) / p99
            ),
        }
        for (server, _) in servers {
            server.stop();
        }
    }
}

/// Writes the fleet file: `groups` enrollment groups (each on a CA of its
/// own) and `entries` individual enrollments (certificates from a pool of
/// 1,000 device certificates), one per line.
/// Edge snapshots of the full store: a full one synced into a new gateway
/// replica, then a delta of 100 changes.
fn snapshots(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    data: &Path,
    server: &HostHttp,
    store: &str,
    entries: usize,
) {
    let key = attest_service::snapshot::SigningKey::load(&data.join("snapshot-key.pem"))
        .expect("snapshot key");
    let trust = dir.join(format!("trust-{store}.pem"));
    std::fs::write(&trust, key.public_pem()).expect("trust key");
    let text = std::fs::read_to_string(data.join("config.json")).expect("config.json");
    let config: host_http::ServiceConfig = serde_json::from_str(&text).expect("config");
    let expiry = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let port = server.addr.rsplit_once(':').expect("port").1;
    let args = host_cli::sync::SyncArgs {
        server: format!("https://localhost:{port}"),
        ca: data.join("tls/dev-server-ca.pem"),
        token: attest_dps::sas::token(&config.shared_access_policies[0], "localhost", expiry)
            .expect("token"),
        trust_key: trust,
        dir: dir.join(format!("gateway-{store}")),
    };
    // host-http's memory while it streams: sampled every 20 ms.
    let before = rss_bytes(&server.pid);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (pid, done) = (server.pid.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_bytes(&pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let t = Instant::now();
    let full = host_cli::sync::sync(&args).expect("full snapshot");
    let full_secs = t.elapsed().as_secs_f64();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().expect("sampler");
    let der = base64::engine::general_purpose::STANDARD.encode(fleet_device_der());
    let changes: Vec<(String, Value)> = (0..100)
        .map(|i| {
            let id = format!("fleet-{:07}", i * (entries / 100).max(1));
            (
                format!("/enrollments/{id}"),
                json!({"registrationId": id, "provisioningStatus": "disabled",
                    "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": der}}}}}),
            )
        })
        .collect();
    let written = management_writes(runtime, data, &server.addr, &changes).len();
    let t = Instant::now();
    let delta = host_cli::sync::sync(&args).expect("delta");
    let delta_secs = t.elapsed().as_secs_f64();
    println!(
        "   {store}: full snapshot {} records, {:.0} MiB, synced (streamed, verified, applied) in {full_secs:.1} s ({:.0} records/s); host-http memory {:.1} MiB before, {:.1} MiB peak while streaming ({:.2}x)",
        full.applied.records,
        full.downloaded as f64 / 1048576.0,
        full.applied.records as f64 / full_secs,
        before as f64 / 1048576.0,
        peak as f64 / 1048576.0,
        peak as f64 / before.max(1) as f64,
    );
    println!(
        "   {store}: delta of {written} changes: {} records, {:.1} KiB, synced in {:.0} ms ({:.4}x the full snapshot's time, {:.5}x its bytes)",
        delta.applied.records,
        delta.downloaded as f64 / 1024.0,
        delta_secs * 1e3,
        delta_secs / full_secs,
        delta.downloaded as f64 / full.downloaded.max(1) as f64,
    );
}

/// A device certificate for the 100 changed enrollments.
fn fleet_device_der() -> Vec<u8> {
    let issuer = Ca::root("Delta Issuer", KeyAlg::P256, validity()).expect("issuer");
    issuer
        .device("delta", KeyAlg::P256, validity())
        .expect("device")
        .der
}

fn fleet_file(dir: &Path, entries: usize, groups: usize) -> PathBuf {
    let path = dir.join("fleet.ndjson");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    let issuer = Ca::root("Fleet Issuer", KeyAlg::P256, validity()).expect("issuer");
    let pool: Vec<String> = (0..1000)
        .map(|i| {
            let d = issuer
                .device(&format!("pool-{i}"), KeyAlg::P256, validity())
                .expect("device");
            base64::engine::general_purpose::STANDARD.encode(&d.der)
        })
        .collect();
    for g in 0..groups {
        let ca = Ca::root(&format!("Fleet Group CA {g:05}"), KeyAlg::P256, validity()).expect("CA");
        let doc = json!({"enrollmentGroupId": format!("fleet-group-{g:05}"),
            "attestation": {"type": "x509", "x509": {"signingCertificates": {"primary": {"certificate":
            base64::engine::general_purpose::STANDARD.encode(&ca.der)}}}}});
        writeln!(out, "{doc}").expect("write");
    }
    for i in 0..entries {
        let doc = json!({"registrationId": format!("fleet-{i:07}"),
            "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate":
            pool[i % pool.len()]}}}}});
        writeln!(out, "{doc}").expect("write");
    }
    out.flush().expect("flush");
    path
}

/// What one measurement of a service gives.
struct Measured {
    rate: f64,
    p50: f64,
    p99: f64,
    errors: usize,
    write_p50: f64,
    write_p99: f64,
    group_p50: f64,
    group_p99: f64,
    rss: u64,
}

fn measure(
    args: &Args,
    server: &HostHttp,
    data: &Path,
    configs: &Arc<Vec<Arc<rustls::ClientConfig>>>,
    names: &Arc<Vec<String>>,
    runtime: &tokio::runtime::Runtime,
    label: &str,
) -> Measured {
    let addrs = vec![server.addr.clone()];
    let _ = common::load(
        runtime,
        &addrs,
        configs,
        names,
        names.len(),
        args.concurrency,
        false,
    );
    let (latencies, errors, wall) = common::load(
        runtime,
        &addrs,
        configs,
        names,
        args.registrations,
        args.concurrency,
        false,
    );
    let issuer = Ca::root(&format!("Writes {label}"), KeyAlg::P256, validity()).expect("CA");
    let individuals: Vec<(String, Value)> = (0..200)
        .map(|k| {
            let d = issuer
                .device(&format!("write-{label}-{k}"), KeyAlg::P256, validity())
                .expect("device");
            (
                format!("/enrollments/{}", d.name),
                json!({"registrationId": d.name, "attestation": {"type": "x509",
                    "x509": {"clientCertificates": {"primary": {"certificate": d.pem}}}}}),
            )
        })
        .collect();
    let groups: Vec<(String, Value)> = (0..50)
        .map(|k| {
            let ca = Ca::root(
                &format!("Write group {label} {k}"),
                KeyAlg::P256,
                validity(),
            )
            .expect("CA");
            let id = format!("write-{label}-{k}");
            (
                format!("/enrollmentGroups/{id}"),
                json!({"enrollmentGroupId": id, "attestation": {"type": "x509",
                    "x509": {"signingCertificates": {"primary": {"certificate": ca.pem}}}}}),
            )
        })
        .collect();
    let writes = management_writes(runtime, data, &server.addr, &individuals);
    let group_writes = management_writes(runtime, data, &server.addr, &groups);
    Measured {
        rate: latencies.len() as f64 / wall,
        p50: ms(&latencies, 0.5),
        p99: ms(&latencies, 0.99),
        errors: errors + (individuals.len() - writes.len()) + (groups.len() - group_writes.len()),
        write_p50: ms(&writes, 0.5),
        write_p99: ms(&writes, 0.99),
        group_p50: ms(&group_writes, 0.5),
        group_p99: ms(&group_writes, 0.99),
        rss: rss_bytes(&server.pid),
    }
}

fn large_fleet(
    args: &Args,
    dir: &Path,
    fleet: &Fleet,
    names: &Arc<Vec<String>>,
    runtime: &tokio::runtime::Runtime,
) {
    let made = Instant::now();
    let file = fleet_file(dir, args.entries, args.groups);
    let size = std::fs::metadata(&file).map_or(0, |m| m.len());
    println!(
        "\n2. A large fleet: {} individual enrollments and {} enrollment groups ({:.0} MiB of NDJSON, written in {:.1} s)",
        args.entries,
        args.groups,
        size as f64 / 1048576.0,
        made.elapsed().as_secs_f64()
    );
    let _ = &fleet.line;
    for store in &args.stores {
        let postgres = store == "postgres";
        let database = postgres.then(|| fresh_database("fleet"));
        let env: Vec<(&str, &str)> = database
            .iter()
            .map(|url| ("ATTEST_DATABASE_URL", url.as_str()))
            .collect();
        let data = dir.join(format!("fleet-{store}"));
        let server = HostHttp::start(
            &["--listen", "127.0.0.1:0", "--id-scope", SCOPE],
            &data,
            &env,
        );
        import(&data, &server.addr, &fleet.base);
        let configs = device_configs(fleet, &common::server_roots(&data));
        let empty = measure(args, &server, &data, &configs, names, runtime, "empty");
        let p0 = cpu_seconds_of_all("postgres");
        let h0 = cpu_seconds(&server.pid);
        let imported = import(&data, &server.addr, &file);
        let (h1, p1) = (cpu_seconds(&server.pid), cpu_seconds_of_all("postgres"));
        let secs = imported.elapsed.as_secs_f64();
        let entries = (imported.individuals + imported.groups) as f64;
        println!(
            "   {store}: imported {} individual enrollments and {} groups in {secs:.1} s ({:.0} entries/s; CPU per 1,000 entries: host-http {:.2} s, PostgreSQL {:.2} s)",
            imported.individuals,
            imported.groups,
            entries / secs,
            1e3 * (h1 - h0) / entries,
            1e3 * (p1 - p0) / entries,
        );
        // The importing replica's memory is the bulk bodies' high-water
        // mark; a replica started on the full store says what the fleet
        // costs one replica.
        let after_import = rss_bytes(&server.pid);
        server.stop();
        let server = HostHttp::start(
            &["--listen", "127.0.0.1:0", "--id-scope", SCOPE],
            &data,
            &env,
        );
        let started = rss_bytes(&server.pid);
        let full = measure(args, &server, &data, &configs, names, runtime, "full");
        println!(
            "   {store}: replica memory: {:.1} MiB after the import (bulk bodies' high-water mark), {:.1} MiB restarted on the full store, {:.1} MiB after the load below",
            after_import as f64 / 1048576.0,
            started as f64 / 1048576.0,
            full.rss as f64 / 1048576.0
        );
        let stored = match &database {
            Some(url) => {
                let mut c = postgres::Client::connect(url, postgres::NoTls).expect("PostgreSQL");
                c.query_one("SELECT pg_database_size(current_database())", &[])
                    .expect("size")
                    .get::<_, i64>(0) as u64
            }
            None => ["attest.db", "attest.db-wal"]
                .iter()
                .map(|f| std::fs::metadata(data.join(f)).map_or(0, |m| m.len()))
                .sum(),
        };
        println!("   {store}: database {:.0} MiB", stored as f64 / 1048576.0);
        println!(
            "   {:<8} {:>8} {:>8} {:>8} {:>7} {:>16} {:>16} {:>9}",
            "store",
            "reg/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "PUT individual",
            "PUT group",
            "RSS MiB"
        );
        for (label, m) in [("empty", &empty), ("full", &full)] {
            println!(
                "   {label:<8} {:>8.0} {:>8.1} {:>8.1} {:>7} {:>7.2}/{:<7.2} {:>7.2}/{:<7.2} {:>9.1}",
                m.rate,
                m.p50,
                m.p99,
                m.errors,
                m.write_p50,
                m.write_p99,
                m.group_p50,
                m.group_p99,
                m.rss as f64 / 1048576.0
            );
        }
        snapshots(runtime, dir, &data, &server, store, args.entries);
        println!(
            "   full / empty: throughput {:.2}x, registration p50 {:.2}x, p99 {:.2}x; individual write p50 {:.2}x; group write p50 {:.2}x; memory {:.2}x",
            full.rate / empty.rate,
            full.p50 / empty.p50,
            full.p99 / empty.p99,
            full.write_p50 / empty.write_p50,
            full.group_p50 / empty.group_p50,
            full.rss as f64 / empty.rss as f64
        );
        server.stop();
    }
}
