//! `host-cli import`: loads a fleet's enrollments into a DPS-compatible
//! service through its management API: individual enrollments in bulk
//! enrollment operations (`POST /enrollments`, up to 1,000 per call),
//! enrollment groups one `PUT /enrollmentGroups/{id}` each, over several
//! keep-alive connections at once, with a progress bar.
//!
//! Input: a DPS enrollment set (`{"individualEnrollments": […],
//! "enrollmentGroups": […]}`), a JSON array of enrollments, or NDJSON (one
//! enrollment per line, streamed: a million-entry file is never in memory
//! at once). An entry is a group when it has `enrollmentGroupId`.
//!
//! Safe to run again: the default mode (`update`) creates or replaces, so
//! a re-run after an interruption converges. Every call the service
//! acknowledged is committed there; a refused entry is listed with the
//! service's reason and makes the exit code 1.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Method;
use hyper::client::conn::http1::SendRequest;
use serde_json::{Value, json};

use crate::input;
use crate::register::{connect, parse_https_server, send};

/// The management api-version sent (what the DPS service SDKs send).
const MANAGEMENT_API_VERSION: &str = "2021-10-01";
/// Individual enrollments per bulk operation (the service's maximum).
pub const BATCH: usize = 1000;
/// Attempts of one call the service answers 429 or 503 to, or whose
/// connection fails.
const ATTEMPTS: usize = 8;
/// Refusals kept one by one (the rest are counted by code).
const SHOWN_REFUSALS: usize = 50;

/// How entries are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Create or replace (a re-run converges).
    #[default]
    Update,
    /// Create only: an entry that exists is refused (409).
    Create,
}

/// `host-cli import` arguments.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The enrollments: a DPS enrollment set or a JSON array (`.json`), or
    /// one enrollment per line (`.ndjson`, `.jsonl`, or `-` for stdin).
    pub file: PathBuf,
    /// The service's connection string, as DPS shows it:
    /// `HostName=…;SharedAccessKeyName=…;SharedAccessKey=…` (for host-http,
    /// the key is in its `config.json`). From the environment, it stays out
    /// of `ps`.
    #[arg(long, env = "ATTEST_CONNECTION_STRING", hide_env_values = true)]
    pub connection_string: String,
    /// The management endpoint; default `https://` + the connection
    /// string's HostName.
    #[arg(long)]
    pub server: Option<String>,
    /// CA certificate(s) to trust for the server (PEM); for host-http's
    /// development certificate, `DATA/tls/dev-server-ca.pem`.
    #[arg(long)]
    pub ca: PathBuf,
    /// Create or replace (`update`), or create only (`create`).
    #[arg(long, value_enum, default_value_t = Mode::Update)]
    pub mode: Mode,
    /// Connections used at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub connections: u16,
    /// No progress bar (it is drawn only on a terminal anyway).
    #[arg(long)]
    pub quiet: bool,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct Imported {
    /// Individual enrollments the service accepted.
    pub individuals: u64,
    /// Enrollment groups the service accepted.
    pub groups: u64,
    /// Entries refused: (kind and ID, the service's reason).
    pub refused: Vec<(String, String)>,
    /// Refusals beyond those kept in `refused`.
    pub more_refused: u64,
    /// Every refusal's error code (the first word of its reason), counted.
    pub refused_by_code: std::collections::BTreeMap<String, u64>,
    /// Wall time.
    pub elapsed: Duration,
}

impl Imported {
    /// Entries refused in all.
    pub fn refused_count(&self) -> u64 {
        self.refused.len() as u64 + self.more_refused
    }

    /// The one-line summary.
    pub fn summary(&self, file: &Path) -> String {
        let entries = self.individuals + self.groups;
        let secs = self.elapsed.as_secs_f64();
        format!(
            "imported {} individual enrollment(s) and {} enrollment group(s) from {} in {secs:.1} s ({:.0} entries/s); {} refused",
            self.individuals,
            self.groups,
            file.display(),
            entries as f64 / secs.max(1e-9),
            self.refused_count()
        )
    }
}

/// A connection string's fields.
#[derive(Debug)]
struct ConnectionString {
    host_name: String,
    policy: attest_dps::sas::SasPolicy,
}

fn parse_connection_string(text: &str) -> Result<ConnectionString> {
    let (mut host, mut name, mut key) = (None, None, None);
    for part in text.trim().split(';').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| anyhow!("connection string part {part:?} has no '='"))?;
        let slot = match k.trim() {
            k if k.eq_ignore_ascii_case("HostName") => &mut host,
            k if k.eq_ignore_ascii_case("SharedAccessKeyName") => &mut name,
            k if k.eq_ignore_ascii_case("SharedAccessKey") => &mut key,
            _ => continue,
        };
        *slot = Some(v.trim().to_string());
    }
    match (host, name, key) {
        (Some(host_name), Some(key_name), Some(primary_key)) => Ok(ConnectionString {
            host_name,
            policy: attest_dps::sas::SasPolicy {
                key_name,
                primary_key,
                // The service checks rights; the client only signs.
                rights: None,
            },
        }),
        _ => bail!("the connection string needs HostName, SharedAccessKeyName and SharedAccessKey"),
    }
}

/// One management call's worth of entries.
#[derive(Debug)]
enum Batch {
    /// Individual enrollments for one bulk operation.
    Individuals(Vec<Value>),
    /// One enrollment group.
    Group(Value),
}

impl Batch {
    fn len(&self) -> u64 {
        match self {
            Batch::Individuals(v) => v.len() as u64,
            Batch::Group(_) => 1,
        }
    }
}

/// Reads the entries and hands them on in batches; returns how many.
fn read_entries(file: &Path, mut emit: impl FnMut(Batch) -> Result<()>) -> Result<u64> {
    let mut individuals = Vec::with_capacity(BATCH);
    let mut count = 0u64;
    let mut take = |entry: Value, at: &dyn Fn() -> String| -> Result<()> {
        if !entry.is_object() {
            bail!("{}: an enrollment must be a JSON object", at());
        }
        count += 1;
        if entry.get("enrollmentGroupId").is_some() {
            return emit(Batch::Group(entry));
        }
        individuals.push(entry);
        if individuals.len() == BATCH {
            emit(Batch::Individuals(std::mem::take(&mut individuals)))?;
        }
        Ok(())
    };
    let name = file.display().to_string();
    let ndjson = file == Path::new("-")
        || matches!(
            file.extension().and_then(|e| e.to_str()),
            Some("ndjson" | "jsonl")
        );
    if ndjson {
        let reader: Box<dyn BufRead> = if file == Path::new("-") {
            Box::new(BufReader::new(std::io::stdin()))
        } else {
            Box::new(BufReader::new(
                std::fs::File::open(file).with_context(|| format!("cannot open {name}"))?,
            ))
        };
        for (i, line) in reader.lines().enumerate() {
            let line = line.with_context(|| format!("cannot read {name}"))?;
            if line.trim().is_empty() {
                continue;
            }
            let at = || format!("{name} line {}", i + 1);
            let entry: Value =
                serde_json::from_str(&line).with_context(|| format!("{} is not JSON", at()))?;
            take(entry, &at)?;
        }
    } else {
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {name}"))?;
        let doc: Value =
            serde_json::from_str(&text).with_context(|| format!("{name} is not JSON"))?;
        let entries: Vec<Value> = match doc {
            Value::Array(entries) => entries,
            Value::Object(mut set) => {
                let mut list = |key: &str| match set.remove(key) {
                    None => Ok(Vec::new()),
                    Some(Value::Array(v)) => Ok(v),
                    Some(_) => Err(anyhow!("{name}: {key} must be an array")),
                };
                let mut all = list("enrollmentGroups")?;
                all.extend(list("individualEnrollments")?);
                all
            }
            _ => bail!("{name} is neither an enrollment set, an array nor NDJSON"),
        };
        for (i, entry) in entries.into_iter().enumerate() {
            take(entry, &|| format!("{name} entry {}", i + 1))?;
        }
    }
    if !individuals.is_empty() {
        emit(Batch::Individuals(individuals))?;
    }
    Ok(count)
}

/// Lines with an entry in an NDJSON file (for the progress bar's length).
fn count_lines(file: &Path) -> Option<u64> {
    let reader = BufReader::new(std::fs::File::open(file).ok()?);
    let mut n = 0;
    for line in reader.split(b'\n') {
        if !line.ok()?.iter().all(u8::is_ascii_whitespace) {
            n += 1;
        }
    }
    Some(n)
}

/// The outcome of one batch: accepted count, refusals.
type Outcome = (u64, u64, Vec<(String, String)>);

/// A management connection that reconnects when its connection fails.
struct Management {
    host: String,
    port: u16,
    config: Arc<rustls::ClientConfig>,
    conn: Option<SendRequest<Full<Bytes>>>,
    host_name: String,
    policy: attest_dps::sas::SasPolicy,
    mode: Mode,
}

impl Management {
    async fn call(&mut self, method: Method, path: &str, body: &Value) -> Result<(u16, Value)> {
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt.min(5))).await;
            }
            if self.conn.is_none() {
                match connect(&self.host, self.port, Arc::clone(&self.config)).await {
                    Ok(c) => self.conn = Some(c),
                    Err(e) => {
                        last = Some(e);
                        continue;
                    }
                }
            }
            let expiry = time::OffsetDateTime::now_utc().unix_timestamp() + 300;
            let token = attest_dps::sas::token(&self.policy, &self.host_name, expiry)
                .map_err(|e| anyhow!("{e}"))?;
            let Some(conn) = self.conn.as_mut() else {
                continue;
            };
            match send(conn, &self.host, method.clone(), path, body, Some(&token)).await {
                Ok((status @ (429 | 503), _, retry)) => {
                    last = Some(anyhow!("the service answered {status}"));
                    tokio::time::sleep(retry).await;
                }
                Ok((status, value, _)) => return Ok((status, value)),
                Err(e) => {
                    // The request may or may not have been applied; the
                    // retry is safe in update mode (the same write again).
                    self.conn = None;
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no attempt was made")))
            .context(format!("{method} {path} failed {ATTEMPTS} times"))
    }

    async fn write(&mut self, batch: Batch) -> Result<Outcome> {
        match batch {
            Batch::Individuals(entries) => {
                let n = entries.len() as u64;
                let ids: Vec<String> = entries
                    .iter()
                    .map(|e| e["registrationId"].as_str().unwrap_or("").to_string())
                    .collect();
                let mode = match self.mode {
                    Mode::Update => "update",
                    Mode::Create => "create",
                };
                let body = json!({"mode": mode, "enrollments": entries});
                let path = format!("/enrollments?api-version={MANAGEMENT_API_VERSION}");
                let (status, answer) = self.call(Method::POST, &path, &body).await?;
                if status != 200 {
                    // The whole call was refused (nothing was written).
                    let why = reason(status, &answer);
                    return Ok((
                        0,
                        0,
                        ids.into_iter()
                            .map(|id| (format!("individual '{id}'"), why.clone()))
                            .collect(),
                    ));
                }
                let refused: Vec<(String, String)> = answer["errors"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|e| {
                        (
                            format!(
                                "individual '{}'",
                                e["registrationId"].as_str().unwrap_or("")
                            ),
                            format!(
                                "{} {}",
                                e["errorCode"],
                                e["errorStatus"].as_str().unwrap_or("")
                            ),
                        )
                    })
                    .collect();
                Ok((n - refused.len() as u64, 0, refused))
            }
            Batch::Group(entry) => {
                let id = entry["enrollmentGroupId"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let what = format!("group '{id}'");
                if id.is_empty() {
                    return Ok((
                        0,
                        0,
                        vec![(what, "enrollmentGroupId must be a string".into())],
                    ));
                }
                if self.mode == Mode::Create {
                    let path = format!(
                        "/enrollmentGroups/{}?api-version={MANAGEMENT_API_VERSION}",
                        encode(&id)
                    );
                    let (status, _) = self.call(Method::GET, &path, &json!({})).await?;
                    if status == 200 {
                        return Ok((0, 0, vec![(what, "409 it already exists".into())]));
                    }
                }
                let path = format!(
                    "/enrollmentGroups/{}?api-version={MANAGEMENT_API_VERSION}",
                    encode(&id)
                );
                let (status, answer) = self.call(Method::PUT, &path, &entry).await?;
                if status == 200 || status == 201 {
                    Ok((0, 1, Vec::new()))
                } else {
                    Ok((0, 0, vec![(what, reason(status, &answer))]))
                }
            }
        }
    }
}

/// Percent-encodes a path segment.
fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A refused call's reason: its status and the service's message.
fn reason(status: u16, answer: &Value) -> String {
    let message = answer
        .get("message")
        .and_then(Value::as_str)
        .map_or_else(|| answer.to_string(), str::to_string);
    format!("{status} {message}")
}

/// Imports `args.file`; refusals are in the answer, failures are errors
/// (whatever was acknowledged before stays written).
pub fn import(args: &ImportArgs) -> Result<Imported> {
    let connection = parse_connection_string(&args.connection_string)?;
    let server = args
        .server
        .clone()
        .unwrap_or_else(|| format!("https://{}", connection.host_name));
    let (host, port) = parse_https_server(&server)?;
    let roots = input::pem_file(&args.ca)?;
    let config = crate::register::server_config(&roots)?;
    let total = if args.file != Path::new("-")
        && matches!(
            args.file.extension().and_then(|e| e.to_str()),
            Some("ndjson" | "jsonl")
        ) {
        count_lines(&args.file)
    } else {
        None
    };
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(total.unwrap_or(0));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} entries ({per_sec}, {eta} left) {msg}",
            )
            .map_err(|e| anyhow!("progress bar template: {e}"))?,
        );
        bar
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let started = Instant::now();
    let connections = usize::from(args.connections);
    let (tx, rx) = tokio::sync::mpsc::channel::<Batch>(connections * 2);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let management = |conn| Management {
        host: host.clone(),
        port,
        config: Arc::clone(&config),
        conn,
        host_name: connection.host_name.clone(),
        policy: connection.policy.clone(),
        mode: args.mode,
    };
    let mut result = runtime.block_on(async {
        // The credentials first: a refused token is one clear error, not
        // a refusal of every entry (the service answers 401 before it
        // reads a body, and closes the connection on the rest of it).
        let mut probe = management(None);
        let path = format!(
            "/enrollmentGroups/attest-import-probe?api-version={MANAGEMENT_API_VERSION}"
        );
        let (status, answer) = probe.call(Method::GET, &path, &json!({})).await?;
        if status == 401 || status == 403 {
            bail!(
                "the service refused the connection string's credentials: {}",
                reason(status, &answer)
            );
        }
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..connections {
            let rx = Arc::clone(&rx);
            let bar = bar.clone();
            let mut management = management(probe.conn.take());
            workers.spawn(async move {
                let mut done = Imported::default();
                loop {
                    let batch = rx.lock().await.recv().await;
                    let Some(batch) = batch else { break };
                    let n = batch.len();
                    let (individuals, groups, refused) = management.write(batch).await?;
                    done.individuals += individuals;
                    done.groups += groups;
                    done.refused.extend(refused);
                    bar.inc(n);
                }
                Ok::<_, anyhow::Error>(done)
            });
        }
        // The file is read on a thread of its own, batches handed over
        // as the connections take them.
        let file = args.file.clone();
        let reader = tokio::task::spawn_blocking(move || {
            read_entries(&file, |batch| {
                tx.blocking_send(batch)
                    .map_err(|_| anyhow!("the import stopped"))
            })
        });
        let mut all = Imported::default();
        let mut failure = None;
        while let Some(joined) = workers.join_next().await {
            match joined.map_err(|e| anyhow!("an import connection failed: {e}")) {
                Ok(Ok(done)) => {
                    all.individuals += done.individuals;
                    all.groups += done.groups;
                    all.refused.extend(done.refused);
                }
                Ok(Err(e)) | Err(e) => {
                    // One connection gave up: stop reading, report.
                    rx.lock().await.close();
                    failure.get_or_insert(e);
                }
            }
        }
        let read = reader
            .await
            .map_err(|e| anyhow!("reading the file failed: {e}"))?;
        if let Some(e) = failure {
            return Err(e.context(format!(
                "import stopped after {} entries were acknowledged (they are written; run it again to finish: update mode converges)",
                all.individuals + all.groups
            )));
        }
        read?;
        Ok(all)
    })?;
    bar.finish_and_clear();
    result.elapsed = started.elapsed();
    for (_, why) in &result.refused {
        let code = why.split_whitespace().next().unwrap_or("?").to_string();
        *result.refused_by_code.entry(code).or_default() += 1;
    }
    if result.refused.len() > SHOWN_REFUSALS {
        result.more_refused = (result.refused.len() - SHOWN_REFUSALS) as u64;
        result.refused.truncate(SHOWN_REFUSALS);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings() {
        let c = parse_connection_string(
            "HostName=localhost:8443;SharedAccessKeyName=owner;SharedAccessKey=abc=",
        )
        .unwrap();
        assert_eq!(c.host_name, "localhost:8443");
        assert_eq!(c.policy.key_name, "owner");
        assert_eq!(c.policy.primary_key, "abc=", "a base64 key keeps its '='");
        for bad in ["", "HostName=x", "HostName=x;SharedAccessKeyName=y", "junk"] {
            assert!(parse_connection_string(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn files_are_read_in_batches_with_groups_on_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let ndjson = dir.path().join("fleet.ndjson");
        let mut text = String::from("{\"enrollmentGroupId\":\"g\"}\n\n");
        for i in 0..2500 {
            text.push_str(&format!("{{\"registrationId\":\"d{i}\"}}\n"));
        }
        std::fs::write(&ndjson, &text).unwrap();
        let mut sizes = Vec::new();
        let n = read_entries(&ndjson, |b| {
            sizes.push(match b {
                Batch::Group(_) => "g".to_string(),
                Batch::Individuals(v) => v.len().to_string(),
            });
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 2501);
        assert_eq!(sizes, ["g", "1000", "1000", "500"]);
        assert_eq!(count_lines(&ndjson), Some(2501));

        let set = dir.path().join("set.json");
        std::fs::write(
            &set,
            r#"{"individualEnrollments":[{"registrationId":"d"}],"enrollmentGroups":[{"enrollmentGroupId":"g"}]}"#,
        )
        .unwrap();
        let mut kinds = Vec::new();
        read_entries(&set, |b| {
            kinds.push(matches!(b, Batch::Group(_)));
            Ok(())
        })
        .unwrap();
        assert_eq!(kinds, [true, false], "groups first");

        for (name, text, expect) in [
            (
                "bad.ndjson",
                "{\"registrationId\":\"d\"}\nnot json\n",
                "line 2",
            ),
            ("num.ndjson", "42\n", "line 1"),
            (
                "bad.json",
                "{\"individualEnrollments\": 3}",
                "must be an array",
            ),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let err = format!("{:#}", read_entries(&path, |_| Ok(())).unwrap_err());
            assert!(err.contains(expect), "{name}: {err}");
        }
    }
}
