//! An edge replica: a gateway's copy of a service's enrollments, from its
//! signed snapshots ([`crate::snapshot`]), in a directory of its own.
//!
//! The copy is the service's own store (SQLite, `attest.db` in the
//! directory) holding the same documents, with the lookup keys derived by
//! the same code; a decision reads it through the same lookups as the
//! service ([`crate::device`]'s `decide_with`). So a gateway decides exactly
//! as the service would have at the version it holds, with the same codes
//! and messages.
//!
//! A snapshot is applied in one transaction, verified before it commits:
//! a bad signature, another service's key, a version lower than the one
//! held (rollback), a delta that does not start at the version held, or a
//! truncated stream rolls everything back and leaves the last good copy as
//! it was. Once the copy is older than the gateway's maximum age (measured
//! from when the service signed it, so replaying an old snapshot cannot
//! make it fresh), every device is refused with `enrollments-stale`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use policy_host::{AttestRequest, Code, Decision, EnrollmentKind, Policy, Proof, Refusal};

use crate::edge::EdgeDecision;
use crate::snapshot::{self, DeleteKind, Record, TrustKey};
use crate::sqlite::SqliteStore;
use crate::store::{Store, Transaction};

/// The edge state's key in the replica's store.
const STATE_KEY: &str = "replica";

/// How far ahead of the gateway's clock a snapshot's signing time may be.
const CLOCK_SKEW: i64 = 300;

/// Default maximum age of a replica's snapshot (`--max-age`).
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Where a replica's snapshot came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaState {
    /// The service (ID scope).
    pub service: String,
    /// The key that signed it (RFC 7638 thumbprint).
    pub kid: String,
    /// Its version.
    pub version: u64,
    /// When the service made (signed) it, Unix seconds.
    pub made_at: i64,
    /// When the gateway applied it, Unix seconds (its own clock).
    pub synced_at: i64,
}

/// What applying a snapshot did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The version held before (`None`: the replica was empty).
    pub from: Option<u64>,
    /// The version held now.
    pub version: u64,
    /// Whether it was a full snapshot (else a delta).
    pub full: bool,
    /// Records applied.
    pub records: u64,
}

/// A gateway's replica of a service's enrollments.
pub struct Replica {
    dir: PathBuf,
    store: SqliteStore,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Replica {
    /// Opens (creating) the replica in `dir`.
    pub fn open(dir: &Path) -> Result<Replica> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Replica {
            dir: dir.to_path_buf(),
            store: SqliteStore::open(dir)?,
        })
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where its snapshot came from (`None`: it holds none yet).
    pub fn state(&self) -> Result<Option<ReplicaState>> {
        let store: &dyn Store = &self.store;
        let text = store.read_with(|tx| tx.edge_state(STATE_KEY))?;
        text.map(|t| {
            serde_json::from_str(&t).with_context(|| {
                format!("{}: the replica's state is unreadable", self.dir.display())
            })
        })
        .transpose()
    }

    /// Reads, verifies and applies a snapshot from `input` in one
    /// transaction; on any error nothing changes. `now` is the gateway's
    /// clock (Unix seconds).
    pub fn apply(
        &self,
        input: &mut dyn std::io::BufRead,
        key: &TrustKey,
        now: i64,
    ) -> Result<Applied> {
        let held = self.state()?;
        let store: &dyn Store = &self.store;
        store.write_with(|tx| {
            if held.is_none() && !holds_nothing(tx)? {
                bail!(
                    "{} holds a store that is not an edge replica (a service's data directory?): refusing to replace it; give sync a directory of its own",
                    self.dir.display()
                );
            }
            let mut cleared = false;
            let verified = snapshot::read(input, key, &mut |header, record| {
                if header.since.is_none() && !cleared {
                    tx.clear_documents()?;
                    cleared = true;
                }
                apply_record(tx, record, header.since.is_none())
            })?;
            let header = &verified.header;
            if header.since.is_none() && !cleared {
                tx.clear_documents()?;
            }
            if verified.made_at > now + CLOCK_SKEW {
                bail!(
                    "the snapshot was signed at {}, ahead of this gateway's clock ({}): check the clocks",
                    attest_dps::documents::rfc3339(verified.made_at),
                    attest_dps::documents::rfc3339(now)
                );
            }
            match (&held, header.since) {
                (None, Some(_)) => bail!("the replica holds no snapshot, and this is a delta"),
                (Some(h), _) if h.service != header.service => bail!(
                    "the snapshot is of service {:?}; {} holds service {:?}'s",
                    header.service,
                    self.dir.display(),
                    h.service
                ),
                (Some(h), _) if header.version < h.version => bail!(
                    "the snapshot's version {} is lower than the version held ({}): refused (rollback)",
                    header.version,
                    h.version
                ),
                (Some(h), _) if verified.made_at < h.made_at => bail!(
                    "the snapshot was made before the one held: refused (replay)"
                ),
                (Some(h), Some(since)) if since != h.version => bail!(
                    "the delta starts at version {since}, not at the version held ({})",
                    h.version
                ),
                _ => {}
            }
            if header.since.is_none() {
                for problem in crate::index::derive_lookup_keys_in(tx)? {
                    tracing::warn!("replica: {problem}");
                }
            }
            let state = ReplicaState {
                service: header.service.clone(),
                kid: header.kid.clone(),
                version: header.version,
                made_at: verified.made_at,
                synced_at: now,
            };
            tx.put_edge_state(STATE_KEY, &serde_json::to_string(&state)?)?;
            anyhow::Ok(Applied {
                from: held.as_ref().map(|h| h.version),
                version: header.version,
                full: header.since.is_none(),
                records: verified.records,
            })
        })
    }

    /// Decides on `request` from the replica, as the service would have at
    /// the version held: with a proof, full attestation; without,
    /// enrollment resolution. A replica older than `max_age` at the
    /// request's time refuses every device (`enrollments-stale`).
    pub fn decide(
        &self,
        policy: &Policy,
        request: &AttestRequest,
        proof: Option<&Proof>,
        max_age: Duration,
    ) -> Result<Result<Decision, Refusal>> {
        let state = self.state()?.ok_or_else(|| {
            anyhow!(
                "{} holds no snapshot yet: run host-cli sync first",
                self.dir.display()
            )
        })?;
        if let Some(stale) = stale(&state, request.time, max_age) {
            return Ok(Err(stale));
        }
        crate::device::decide_with(policy, &self.store, request, proof)
            .map(|(_, outcome)| outcome)
            .map_err(|e| anyhow!("{}", e.message))
    }
}

/// Whether a store holds no enrollment and no CA certificate.
fn holds_nothing(tx: &dyn Transaction) -> Result<bool> {
    Ok(tx
        .enrollments(EnrollmentKind::Individual, None, 1)?
        .is_empty()
        && tx.enrollments(EnrollmentKind::Group, None, 1)?.is_empty()
        && tx.certificates()?.is_empty())
}

/// The decision log's file in a replica's directory (JSON Lines, append
/// only), and the file holding how much of it was uploaded.
const LOG: &str = "decisions.ndjson";
const UPLOADED: &str = "decisions.uploaded";

impl Replica {
    /// Appends a decision to the replica's log (flushed to disk before it
    /// returns), for the next upload to the service.
    pub fn log(
        &self,
        request: &AttestRequest,
        proof: bool,
        outcome: &Result<Decision, Refusal>,
    ) -> Result<EdgeDecision> {
        use base64::Engine as _;
        use std::io::Write as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let version = self.state()?.map_or(0, |s| s.version);
        let (verdict, enrollment) = EdgeDecision::verdict_of(outcome);
        let decision = EdgeDecision {
            id: crate::random_id().map_err(|e| anyhow!("{}", e.message))?,
            registration_id: request.registration_id.clone(),
            leaf: b64.encode(&request.leaf),
            intermediates: request
                .intermediates
                .iter()
                .map(|c| b64.encode(c))
                .collect(),
            decided_at: request.time,
            snapshot_version: version,
            proof,
            verdict,
            enrollment,
        };
        let path = self.dir.join(LOG);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let mut line = serde_json::to_vec(&decision)?;
        line.push(b'\n');
        file.write_all(&line)
            .and_then(|()| file.sync_data())
            .with_context(|| format!("cannot append to {}", path.display()))?;
        Ok(decision)
    }

    /// At most `max` logged decisions not uploaded yet, and the log offset
    /// after them (for [`Replica::uploaded_to`]). A line cut short by a
    /// crash while it was appended ends the pending ones.
    pub fn pending(&self, max: usize) -> Result<(Vec<EdgeDecision>, u64)> {
        use std::io::{BufRead as _, Seek as _};
        let start = self.uploaded()?;
        let path = self.dir.join(LOG);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), start)),
            Err(e) => return Err(anyhow!("cannot read {}: {e}", path.display())),
        };
        // A log replaced by a shorter one (rotated by hand) is uploaded
        // from its start: uploads are idempotent.
        let len = file.metadata()?.len();
        let start = if start > len { 0 } else { start };
        let mut reader = std::io::BufReader::new(file);
        reader.seek(std::io::SeekFrom::Start(start))?;
        let (mut out, mut offset) = (Vec::new(), start);
        let mut line = String::new();
        while out.len() < max {
            line.clear();
            let n = reader.read_line(&mut line)?;
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            let decision: EdgeDecision = serde_json::from_str(&line).with_context(|| {
                format!(
                    "{}: line at byte {offset} is not a logged decision",
                    path.display()
                )
            })?;
            out.push(decision);
            offset += n as u64;
        }
        Ok((out, offset))
    }

    /// How much of the log was uploaded (bytes).
    fn uploaded(&self) -> Result<u64> {
        let path = self.dir.join(UPLOADED);
        match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse()
                .with_context(|| format!("{} is not a byte offset", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(anyhow!("cannot read {}: {e}", path.display())),
        }
    }

    /// Records that the log was uploaded up to `offset` (atomically).
    pub fn uploaded_to(&self, offset: u64) -> Result<()> {
        let path = self.dir.join(UPLOADED);
        let tmp = self.dir.join(format!("{UPLOADED}.tmp"));
        crate::files::write_private(&tmp, offset.to_string().as_bytes())?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// The refusal of every device once the replica is older than `max_age`
/// at `time`.
pub fn stale(state: &ReplicaState, time: i64, max_age: Duration) -> Option<Refusal> {
    let max = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    let age = time.saturating_sub(state.made_at);
    (age > max).then(|| Refusal {
        code: Code::EnrollmentsStale,
        message: format!(
            "the enrollments this gateway holds (version {}, made {}) are {} old, more than the maximum age of {}: sync with the service",
            state.version,
            attest_dps::documents::rfc3339(state.made_at),
            humantime_secs(age),
            humantime_secs(max)
        ),
        certificate: None,
        enrollment: None,
    })
}

/// Seconds as `1h 30m`-style text.
fn humantime_secs(s: i64) -> String {
    let (d, h, m, s) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    let mut out = Vec::new();
    for (n, unit) in [(d, "d"), (h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push(format!("{n}{unit}"));
        }
    }
    if out.is_empty() {
        "0s".into()
    } else {
        out.join(" ")
    }
}

/// Applies one record to the replica's transaction. A full snapshot's
/// records are written as they are and the lookup keys derived once after
/// the last (`derive`); a delta's keep the keys current as they are
/// applied, as the service's own writes do (a certificate re-derives the
/// groups that reference it; records come certificates first).
fn apply_record(tx: &dyn Transaction, record: Record, full: bool) -> Result<()> {
    use crate::index;
    match record {
        Record::Certificate(ca) if full => tx.put_certificate(&ca)?,
        Record::Certificate(ca) => index::put_certificate(tx, &ca)?,
        Record::Enrollment {
            kind,
            id,
            etag,
            doc,
        } => {
            match &doc {
                Some(doc) => tx.put_enrollment(kind, &id, doc, &etag)?,
                None => tx.put_enrollment_text(kind, &id, UNREADABLE, &etag)?,
            }
            if !full && kind == EnrollmentKind::Group {
                let group = index::load_group(tx, doc.as_ref())?;
                index::set_group_keys(tx, &id, &group)?;
            }
        }
        Record::Delete {
            kind: DeleteKind::Certificate,
            id,
        } if full => tx.delete_certificate(&id)?,
        Record::Delete {
            kind: DeleteKind::Certificate,
            id,
        } => index::delete_certificate(tx, &id)?,
        Record::Delete {
            kind: DeleteKind::Enrollment(kind),
            id,
        } => index::delete_enrollment(tx, kind, &id)?,
    }
    Ok(())
}

/// What a replica stores for a document that is not JSON on the service
/// (not JSON either, so it refuses there as it does on the service).
const UNREADABLE: &str = "(not JSON on the service)";
