//! `host-cli sync`: a gateway's copy of a service's enrollments, brought up
//! to date from the service's signed edge snapshots (`GET /attest/snapshot`).
//!
//! The snapshot is streamed to a file in the replica's directory (never
//! held in memory), then verified and applied in one transaction by
//! `attest_service::replica`: a bad signature, another service's key, a
//! rollback or a truncated stream leaves the last good copy untouched. A
//! replica that holds a version asks for the changes since it; a service
//! that no longer keeps them answers 410 and the whole snapshot is taken.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;

use attest_service::replica::{Applied, Replica};
use attest_service::snapshot::{MEDIA_TYPE, TrustKey};

use crate::{input, register};

/// Arguments of `sync`.
#[derive(Debug, Clone, clap::Args)]
pub struct SyncArgs {
    /// The service: https://host[:port].
    #[arg(long)]
    pub server: String,
    /// PEM file of the CA certificate(s) that issued the service's TLS certificate.
    #[arg(long)]
    pub ca: PathBuf,
    /// A management SAS token of a policy with the SnapshotRead right
    /// (`host-http token --policy NAME`).
    #[arg(long, env = "ATTEST_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The service's snapshot public key (`host-http snapshot-key`), PEM.
    #[arg(long)]
    pub trust_key: PathBuf,
    /// The replica's directory (created if missing).
    #[arg(long)]
    pub dir: PathBuf,
}

/// What a sync did.
#[derive(Debug, Clone)]
pub struct Synced {
    /// The replica's directory.
    pub dir: PathBuf,
    /// The service (ID scope).
    pub service: String,
    /// What was applied.
    pub applied: Applied,
    /// Logged decisions uploaded, and how many of them the service recorded.
    pub uploaded: (usize, u64),
    /// Bytes of snapshot downloaded.
    pub downloaded: u64,
}

impl Synced {
    /// One line for the operator.
    pub fn summary(&self) -> String {
        let how = match (self.applied.full, self.applied.from) {
            (true, None) => "full snapshot".to_string(),
            (true, Some(from)) => format!("full snapshot, replacing version {from}"),
            (false, Some(from)) if from == self.applied.version => "no changes".to_string(),
            (false, from) => format!("delta from version {}", from.unwrap_or(0)),
        };
        let uploaded = match self.uploaded {
            (0, _) => String::new(),
            (n, recorded) => format!("; uploaded {n} edge decision(s), {recorded} recorded"),
        };
        format!(
            "synced {} to version {} of service {} ({how}, {} record(s)){uploaded}",
            self.dir.display(),
            self.applied.version,
            self.service,
            self.applied.records
        )
    }
}

/// Largest snapshot downloaded (a million enrollments are ~1.2 GiB): a
/// server that sends more is cut off rather than fill the gateway's disk.
pub const MAX_SNAPSHOT_BYTES: u64 = 16 << 30;

/// Longest a snapshot download may pause between chunks.
const STALL: Duration = Duration::from_secs(60);

/// Brings the replica in `args.dir` up to date.
pub fn sync(args: &SyncArgs) -> Result<Synced> {
    let key = TrustKey::load(&args.trust_key).context("--trust-key")?;
    let roots = input::pem_file(&args.ca)?;
    let (host, port) = register::parse_https_server(&args.server)?;
    let replica = Replica::open(&args.dir)?;
    let held = replica.state()?;
    // A replica made with another key starts again from a full snapshot
    // (its versions are another service's): never a delta onto it.
    let since = held
        .as_ref()
        .filter(|h| h.kid == key.kid())
        .map(|h| h.version);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let incoming = args
        .dir
        .join(format!("incoming.{}.ndjson", std::process::id()));
    let fetched = runtime.block_on(async {
        let config = register::server_config(&roots)?;
        match download(&host, port, config.clone(), &args.token, since, &incoming).await? {
            Download::Done => Ok(()),
            Download::HistoryGone => download(&host, port, config, &args.token, None, &incoming)
                .await
                .and_then(|d| match d {
                    Download::Done => Ok(()),
                    Download::HistoryGone => bail!("the service refused a full snapshot"),
                }),
        }
    });
    let downloaded = std::fs::metadata(&incoming).map_or(0, |m| m.len());
    let applied = fetched.and_then(|()| {
        let file = std::fs::File::open(&incoming)
            .with_context(|| format!("cannot read {}", incoming.display()))?;
        let mut reader = std::io::BufReader::with_capacity(256 << 10, file);
        replica.apply(&mut reader, &key, attest_service::now_unix())
    });
    let _ = std::fs::remove_file(&incoming);
    let applied = applied?;
    let service = replica
        .state()?
        .map(|s| s.service)
        .ok_or_else(|| anyhow!("the replica has no state after a sync"))?;
    let uploaded = runtime
        .block_on(upload(&replica, &host, port, &roots, &args.token))
        .with_context(|| {
            format!(
                "synced {} to version {}, but its decision log could not be uploaded",
                args.dir.display(),
                applied.version
            )
        })?;
    Ok(Synced {
        dir: args.dir.clone(),
        service,
        applied,
        uploaded,
        downloaded,
    })
}

/// Uploads the replica's logged decisions not uploaded yet, a batch at a
/// time, each batch marked uploaded once the service answered for it.
async fn upload(
    replica: &Replica,
    host: &str,
    port: u16,
    roots: &[Vec<u8>],
    token: &str,
) -> Result<(usize, u64)> {
    let (mut sent, mut recorded) = (0usize, 0u64);
    let mut sender = None;
    loop {
        let (batch, offset) = replica.pending(attest_service::edge::MAX_UPLOAD)?;
        if batch.is_empty() {
            return Ok((sent, recorded));
        }
        if sender.is_none() {
            let config = register::server_config(roots)?;
            sender = Some(register::connect(host, port, config).await?);
        }
        let s = sender
            .as_mut()
            .ok_or_else(|| anyhow!("no connection to the service"))?;
        let body = serde_json::json!({ "decisions": batch });
        let (status, answer, _) = register::send(
            s,
            host,
            hyper::Method::POST,
            "/attest/edgeDecisions",
            &body,
            Some(token),
        )
        .await?;
        if status != 200 {
            let message = answer["message"].as_str().unwrap_or("no message");
            bail!("the service answered {status}: {message}");
        }
        replica.uploaded_to(offset)?;
        sent += batch.len();
        recorded += answer["recorded"].as_u64().unwrap_or(0);
    }
}

enum Download {
    Done,
    HistoryGone,
}

/// Streams `GET /attest/snapshot[?since=N]` into `out`.
async fn download(
    host: &str,
    port: u16,
    config: std::sync::Arc<rustls::ClientConfig>,
    token: &str,
    since: Option<u64>,
    out: &Path,
) -> Result<Download> {
    let mut sender = register::connect(host, port, config)
        .await
        .with_context(|| format!("cannot reach the service at {host}:{port}"))?;
    let path = match since {
        Some(n) => format!("/attest/snapshot?since={n}"),
        None => "/attest/snapshot".to_string(),
    };
    let request = Request::get(&path)
        .header("host", host)
        .header("authorization", token)
        .header("accept", MEDIA_TYPE)
        .header(
            "user-agent",
            concat!("attest-host-cli/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::new()))?;
    sender.ready().await.context("connection closed")?;
    let response = tokio::time::timeout(STALL, sender.send_request(request))
        .await
        .map_err(|_| anyhow!("no answer within {STALL:?}"))?
        .context("the snapshot request failed")?;
    let status = response.status().as_u16();
    if status == 410 && since.is_some() {
        return Ok(Download::HistoryGone);
    }
    if status != 200 {
        let body = tokio::time::timeout(STALL, response.into_body().collect())
            .await
            .ok()
            .and_then(|b| b.ok())
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let message = register::answer_json(status, &body)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
        bail!("the service answered {status}: {message}");
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    let mut body = response.into_body();
    let mut total = 0u64;
    loop {
        let frame = tokio::time::timeout(STALL, body.frame())
            .await
            .map_err(|_| anyhow!("the snapshot stalled for {STALL:?}"))?;
        match frame {
            None => break,
            Some(Err(e)) => bail!("the snapshot stream broke off: {e}"),
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    total += data.len() as u64;
                    if total > MAX_SNAPSHOT_BYTES {
                        bail!("the snapshot exceeds {MAX_SNAPSHOT_BYTES} bytes: refused");
                    }
                    file.write_all(data)
                        .with_context(|| format!("cannot write {}", out.display()))?;
                }
            }
        }
    }
    file.flush()?;
    Ok(Download::Done)
}
