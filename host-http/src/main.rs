//! `host-http`: attest's DPS-compatible provisioning service.
//!
//! ```text
//! host-http [--listen 127.0.0.1:8443] [--mqtt-listen 127.0.0.1:8883]
//!           [--metrics-listen 127.0.0.1:9090] [--audit FILE|-]
//!           [--id-scope 0ne00000001] [--data ./attest-data]
//!           [--tls-cert server.pem --tls-key server.key] [--enrollments FILE.json]
//! host-http token [--data ./attest-data] [--ttl 3600] [--resource localhost] [--policy NAME]
//! host-http connection-string [--data ./attest-data] [--host localhost:8443]
//! host-http snapshot-key [--data ./attest-data]   # the edge snapshot public key (PEM)
//! host-http add-policy NAME --rights R1,R2 [--data ./attest-data]
//! ```
//!
//! Exit codes: 0 clean shutdown (SIGINT/SIGTERM), 2 start-up error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "host-http",
    version,
    about = "attest provisioning service: DPS device API over mutual TLS, DPS management API",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: host_http::Options,
}

#[derive(Subcommand)]
enum Command {
    /// Print a management API SAS token (Authorization header value).
    Token {
        /// Data directory holding config.json.
        #[arg(long, default_value = "attest-data")]
        data: PathBuf,
        /// Validity in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
        /// Resource (sr) to sign: the host name clients use.
        #[arg(long, default_value = "localhost")]
        resource: String,
        /// Which shared access policy of config.json signs (default: the first).
        #[arg(long)]
        policy: Option<String>,
    },
    /// Print the management connection string (DPS form: HostName, SharedAccessKeyName,
    /// SharedAccessKey), for `host-cli import` and the DPS service SDKs. It holds the key.
    ConnectionString {
        /// Data directory holding config.json.
        #[arg(long, default_value = "attest-data")]
        data: PathBuf,
        /// The host (and port) clients reach the service at.
        #[arg(long, default_value = "localhost:8443")]
        host: String,
        /// Which shared access policy of config.json (default: the first).
        #[arg(long)]
        policy: Option<String>,
    },
    /// Add a shared access policy with a fresh random key and only the rights listed
    /// (e.g. a gateway's: SnapshotRead,EdgeDecisionWrite). Restart host-http to load it.
    AddPolicy {
        /// The policy's name (its tokens' skn).
        name: String,
        /// Comma-separated rights: ServiceConfig, EnrollmentRead, EnrollmentWrite,
        /// RegistrationStatusRead, RegistrationStatusWrite, SnapshotRead, EdgeDecisionWrite.
        #[arg(long)]
        rights: String,
        /// Data directory holding config.json.
        #[arg(long, default_value = "attest-data")]
        data: PathBuf,
    },
    /// Print the public key gateways trust edge snapshots with (PEM), creating the
    /// signing key (DATA/snapshot-key.pem) if the service has not yet.
    SnapshotKey {
        /// Data directory holding snapshot-key.pem.
        #[arg(long, default_value = "attest-data")]
        data: PathBuf,
        /// The signing key given to the service with --snapshot-key, if not the default.
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Token {
            data,
            ttl,
            resource,
            policy,
        }) => token(&data, ttl, &resource, policy.as_deref()),
        Some(Command::ConnectionString { data, host, policy }) => {
            connection_string(&data, &host, policy.as_deref())
        }
        Some(Command::SnapshotKey { data, key }) => snapshot_key(&data, key.as_deref()),
        Some(Command::AddPolicy { name, rights, data }) => add_policy(&data, &name, rights),
        None => serve(cli.serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("host-http: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The configuration in `data`, or why there is none.
fn config(data: &std::path::Path) -> Result<host_http::ServiceConfig> {
    host_http::ServiceConfig::load(data).with_context(|| {
        format!(
            "no usable configuration (start host-http with --data {} once to create {})",
            data.display(),
            data.join("config.json").display()
        )
    })
}

/// The policy named `name` (or the first) of a configuration.
fn pick<'c>(
    config: &'c host_http::ServiceConfig,
    name: Option<&str>,
) -> Result<&'c attest_dps::sas::SasPolicy> {
    let policies = &config.shared_access_policies;
    match name {
        None => policies
            .first()
            .context("config.json has no sharedAccessPolicies"),
        Some(name) => policies
            .iter()
            .find(|p| p.key_name == name)
            .with_context(|| {
                let names: Vec<&str> = policies.iter().map(|p| p.key_name.as_str()).collect();
                format!(
                    "config.json has no shared access policy named {name:?} (it has: {})",
                    names.join(", ")
                )
            }),
    }
}

fn connection_string(data: &std::path::Path, host: &str, name: Option<&str>) -> Result<()> {
    let config = config(data)?;
    let policy = pick(&config, name)?;
    println!(
        "HostName={host};SharedAccessKeyName={};SharedAccessKey={}",
        policy.key_name, policy.primary_key
    );
    Ok(())
}

fn token(data: &std::path::Path, ttl: i64, resource: &str, name: Option<&str>) -> Result<()> {
    let path = data.join("config.json");
    let config = config(data)?;
    let policy = pick(&config, name)?;
    if ttl > config.max_token_lifetime_seconds {
        anyhow::bail!(
            "--ttl {ttl} exceeds maxTokenLifetimeSeconds {} in {}; the service would refuse the token",
            config.max_token_lifetime_seconds,
            path.display()
        );
    }
    let expiry = time::OffsetDateTime::now_utc().unix_timestamp() + ttl.max(1);
    println!(
        "{}",
        attest_dps::sas::token(policy, resource, expiry).map_err(anyhow::Error::msg)?
    );
    Ok(())
}

fn add_policy(data: &std::path::Path, name: &str, rights: String) -> Result<()> {
    let rights = attest_dps::sas::Rights::try_from(rights).map_err(anyhow::Error::msg)?;
    if host_http::ServiceConfig::load_or_create(data)?.1 {
        println!(
            "created {} with management policy 'provisioningserviceowner' (its key is in that file)",
            data.join("config.json").display()
        );
    }
    let policy = host_http::ServiceConfig::add_policy(data, name, rights)?;
    let listed: Vec<&str> = attest_dps::sas::Right::ALL
        .iter()
        .filter(|r| policy.grants(**r))
        .map(|r| r.name())
        .collect();
    println!(
        "added shared access policy '{name}' ({}) to {}; restart host-http to load it, then: host-http token --policy {name}",
        listed.join(", "),
        data.join("config.json").display()
    );
    Ok(())
}

fn snapshot_key(data: &std::path::Path, key: Option<&std::path::Path>) -> Result<()> {
    use attest_service::snapshot::SigningKey;
    let key = match key {
        Some(path) => SigningKey::load(path)?,
        None => {
            std::fs::create_dir_all(data)
                .with_context(|| format!("cannot create {}", data.display()))?;
            let path = attest_service::Service::snapshot_key_path(data);
            let (key, created) = SigningKey::load_or_create(&path)?;
            if created {
                eprintln!("created {}", path.display());
            }
            key
        }
    };
    print!("{}", key.public_pem());
    Ok(())
}

fn serve(args: host_http::Options) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "host_http=info,attest_service=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        // Handlers first: a signal that arrives right after "listening" must
        // shut down cleanly, not kill the process.
        let stop = Signals::install()?;
        let running = host_http::start(args.clone()).await?;
        // With `--audit -` standard output is the audit trail's alone.
        let say = |line: String| {
            if args.audit.as_deref() == Some(std::path::Path::new("-")) {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
        };
        for note in &running.notes {
            say(note.clone());
        }
        say(format!(
            "listening on https://{} (ID scope {}, data {})",
            running.addr,
            args.id_scope,
            args.data.display()
        ));
        if let Some(mqtt) = running.mqtt_addr {
            say(format!("listening for MQTT devices on mqtts://{mqtt}"));
        }
        if let Some(ops) = running.metrics_addr {
            say(format!(
                "serving metrics on http://{ops}/metrics (probes: /healthz, /readyz)"
            ));
        }
        stop.wait().await;
        running.not_ready();
        say("shutting down".into());
        running.shutdown().await;
        say("stopped".into());
        Ok(())
    })
}

/// SIGINT and SIGTERM, listened for from start-up on.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt()).context("SIGINT handler")?,
                terminate: signal(SignalKind::terminate()).context("SIGTERM handler")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
