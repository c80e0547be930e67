//! An edge gateway on the service's signed snapshots: sync when the
//! service can be reached, decide from the replica in DIR either way, log
//! every decision (the next sync uploads the log).
//!
//! ```sh
//! cargo run -p policy-host --example gateway -- \
//!     --server https://localhost:8443 --ca attest-data/tls/dev-server-ca.pem \
//!     --token "$(host-http token --policy gateway)" --trust-key snapshot-key.pem \
//!     --dir gateway attest-demo/device-1.pem attest-demo/device-4.pem
//! ```
//!
//! The replica is `attest_service::replica::Replica` (the service's own
//! store and lookups, so the gateway decides exactly as the service would
//! have at the version it holds); the sync is `host_cli::sync`, the same as
//! `host-cli sync`. A real gateway decides each device as it connects, with
//! the TLS handshake's CertificateVerify as the proof (`Some(&proof)` where
//! this example passes `None`).

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use clap::Parser;

use attest_service::replica::{DEFAULT_MAX_AGE, Replica};
use policy_host::{AttestRequest, Policy, Purpose};

/// Sync from the service (when it can be reached), then decide each chain.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    sync: host_cli::sync::SyncArgs,
    /// Refuse every device once the snapshot is older than this.
    #[arg(long, default_value_t = DEFAULT_MAX_AGE.into())]
    max_age: humantime::Duration,
    /// Decide at this time (RFC 3339) instead of now.
    #[arg(long)]
    at: Option<String>,
    /// Device chains (PEM, leaf first) to decide.
    chains: Vec<PathBuf>,
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<()> {
    match host_cli::sync::sync(&args.sync) {
        Ok(synced) => println!("{}", synced.summary()),
        Err(e) => println!("offline ({e:#}): deciding from the snapshot held"),
    }
    let replica = Replica::open(&args.sync.dir)?;
    let state = replica
        .state()?
        .ok_or_else(|| anyhow!("no snapshot yet: the gateway needs one sync"))?;
    let time = match &args.at {
        Some(at) => humantime::parse_rfc3339(at)
            .with_context(|| format!("--at {at}"))?
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
            .try_into()?,
        None => attest_service::now_unix(),
    };
    let policy = Policy::new()?; // once per process
    for path in &args.chains {
        let chain = host_cli::input::pem_file(path)?;
        let leaf = chain.first().context("no certificate")?.clone();
        let request = AttestRequest {
            registration_id: host_cli::common_name_of(&leaf)?,
            leaf,
            intermediates: chain[1..].to_vec(),
            time,
            purpose: Purpose::ClientAuth,
        };
        let outcome = replica.decide(&policy, &request, None, *args.max_age)?;
        replica.log(&request, false, &outcome)?;
        match outcome {
            Ok(d) => println!(
                "{}: admitted by {} as '{}' (snapshot version {})",
                request.registration_id, d.enrollment, d.device_id, state.version
            ),
            Err(r) => println!(
                "{}: refused, {}: {} (snapshot version {})",
                request.registration_id,
                r.code.as_str(),
                r.message,
                state.version
            ),
        }
    }
    Ok(())
}
