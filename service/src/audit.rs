//! The audit trail: one JSON line per decision and per management write,
//! hash-chained so that an auditor can tell whether a line was changed,
//! removed or inserted (`host-cli audit verify FILE`).
//!
//! Each line is a JSON object whose first two members are `seq` (0, 1, 2,
//! … with no gaps) and `prev` (the SHA-256, in hex, of the previous line's
//! bytes without its newline; 64 zeros on the first line), then `time`
//! and `kind` (`start`, `decision`, `management`, `stop`). A line never
//! holds a key, a token or a certificate: a device is named by its
//! registration ID and its certificate's SHA-256.
//!
//! A line is written (one `write` on an append-only file) before the
//! request it records is answered; a request whose line cannot be written
//! is answered 503, and the trail reports itself unhealthy (`/readyz`). A
//! file trail resumes the chain of the file it appends to, holds an
//! exclusive lock on it (one writer per file: each replica has its own
//! trail), and is flushed to disk (`fsync`) at a clean shutdown, after its
//! `stop` line.
//!
//! What the chain cannot show: lines cut from the end (the last line is as
//! good as any). A trail closed cleanly ends in a `stop` line
//! (`host-cli audit verify --closed` requires it), and `verify` prints the
//! last line's hash, which an auditor can compare with a copy kept
//! elsewhere.

use std::fs::File;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::events::{DecisionEvent, Verdict};

/// The time of a line: RFC 3339, UTC, microseconds.
fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    let micro = t.microsecond();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{micro:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The `prev` of a trail's first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest line `verify` reads (and far longer than any line written).
pub const MAX_LINE: usize = 1 << 20;

/// Where the trail goes.
enum Output {
    Stdout,
    File { file: File, path: PathBuf },
    Writer(Box<dyn Write + Send>),
}

struct Chain {
    output: Output,
    /// `seq` of the next line.
    seq: u64,
    /// SHA-256 of the last line written (hex).
    prev: String,
    /// Why the last write failed, if it did.
    failed: Option<String>,
}

/// An open audit trail. Cheap to share behind an `Arc`; lines are written
/// one at a time, in `seq` order.
pub struct AuditTrail {
    chain: Mutex<Chain>,
}

impl std::fmt::Debug for AuditTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditTrail").finish_non_exhaustive()
    }
}

impl AuditTrail {
    /// Opens the trail `target`: `-` for standard output (a new chain each
    /// run), else a file, created (mode 0600) or appended to, whose chain
    /// continues. Writes a `start` line.
    pub fn open(target: &Path) -> Result<AuditTrail> {
        let (output, seq, prev) = if target == Path::new("-") {
            (Output::Stdout, 0, GENESIS.to_string())
        } else {
            let mut file = open_append(target)
                .with_context(|| format!("cannot open the audit trail {}", target.display()))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => bail!(
                    "the audit trail {} is held by another process (each replica needs its own trail file)",
                    target.display()
                ),
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| {
                        format!("cannot lock the audit trail {}", target.display())
                    });
                }
            }
            let (seq, prev) = resume(&mut file)
                .with_context(|| format!("cannot continue the audit trail {}", target.display()))?;
            (
                Output::File {
                    file,
                    path: target.to_path_buf(),
                },
                seq,
                prev,
            )
        };
        AuditTrail::started(output, seq, prev)
    }

    /// A new trail (from the genesis) on any writer: a socket, a pipe, a
    /// log shipper's stdin. Each line is one `write_all` and a `flush`.
    pub fn to_writer(writer: Box<dyn Write + Send>) -> Result<AuditTrail> {
        AuditTrail::started(Output::Writer(writer), 0, GENESIS.to_string())
    }

    fn started(output: Output, seq: u64, prev: String) -> Result<AuditTrail> {
        let trail = AuditTrail {
            chain: Mutex::new(Chain {
                output,
                seq,
                prev,
                failed: None,
            }),
        };
        let mut start = Map::new();
        start.insert("kind".into(), "start".into());
        start.insert("version".into(), env!("CARGO_PKG_VERSION").into());
        trail.record(start)?;
        Ok(trail)
    }

    /// Appends one line: `seq`, `prev` and `time` first, then `fields`.
    pub fn record(&self, fields: Map<String, Value>) -> Result<()> {
        let mut chain = self.chain.lock().unwrap_or_else(|p| p.into_inner());
        let line = line(chain.seq, &chain.prev, &now(), fields)?;
        let written = match &mut chain.output {
            Output::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(line.as_bytes())
                    .and_then(|()| out.write_all(b"\n"))
                    .and_then(|()| out.flush())
            }
            Output::File { file, .. } => {
                let mut bytes = Vec::with_capacity(line.len() + 1);
                bytes.extend_from_slice(line.as_bytes());
                bytes.push(b'\n');
                file.write_all(&bytes)
            }
            Output::Writer(w) => {
                let mut bytes = Vec::with_capacity(line.len() + 1);
                bytes.extend_from_slice(line.as_bytes());
                bytes.push(b'\n');
                w.write_all(&bytes).and_then(|()| w.flush())
            }
        };
        match written {
            Ok(()) => {
                chain.seq += 1;
                chain.prev = hex::encode(Sha256::digest(line.as_bytes()));
                chain.failed = None;
                Ok(())
            }
            Err(e) => {
                let why = format!("the audit trail could not be written: {e}");
                chain.failed = Some(why.clone());
                Err(anyhow!(why))
            }
        }
    }

    /// `Ok` while the last write (if any) succeeded.
    pub fn health(&self) -> Result<(), String> {
        let chain = self.chain.lock().unwrap_or_else(|p| p.into_inner());
        match &chain.failed {
            None => Ok(()),
            Some(why) => Err(why.clone()),
        }
    }

    /// Lines written so far, counting those of the file it continues.
    pub fn lines(&self) -> u64 {
        self.chain.lock().unwrap_or_else(|p| p.into_inner()).seq
    }

    /// Writes the `stop` line and flushes the trail to disk.
    pub fn close(&self) -> Result<()> {
        let mut stop = Map::new();
        stop.insert("kind".into(), "stop".into());
        self.record(stop)?;
        let chain = self.chain.lock().unwrap_or_else(|p| p.into_inner());
        if let Output::File { file, path } = &chain.output {
            file.sync_all()
                .with_context(|| format!("cannot flush the audit trail {}", path.display()))?;
        }
        Ok(())
    }

    /// Records a registration decision.
    pub fn decision(&self, event: &DecisionEvent<'_>) -> Result<()> {
        self.record(decision_fields(event))
    }

    /// Records a management write.
    pub fn management(&self, event: &ManagementEvent<'_>) -> Result<()> {
        self.record(management_fields(event))
    }
}

/// One management API write, as the audit trail records it.
#[derive(Clone, Copy, Debug)]
pub struct ManagementEvent<'a> {
    /// The shared access policy whose token authorised it (`None`: the
    /// request was not authorised).
    pub policy: Option<&'a str>,
    /// The route, with the resource names as parameters
    /// (`PUT /enrollmentGroups/{id}`).
    pub route: &'a str,
    /// The resource named (an enrollment's registration ID, a group ID, a
    /// certificate name), if the route names one.
    pub resource: Option<&'a str>,
    /// The HTTP status answered.
    pub status: u16,
    /// The DPS error code, if refused.
    pub code: Option<&'a str>,
    /// The resource's etag before the write (`None`: it did not exist, or
    /// nothing was written).
    pub etag_before: Option<&'a str>,
    /// Its etag after (`None`: deleted, refused, or no etag).
    pub etag_after: Option<&'a str>,
    /// The caller's address.
    pub peer: Option<std::net::IpAddr>,
}

fn decision_fields(event: &DecisionEvent<'_>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("kind".into(), "decision".into());
    m.insert("transport".into(), event.transport.as_str().into());
    m.insert("registrationId".into(), event.registration_id.into());
    m.insert(
        "leafSha256".into(),
        event.leaf_sha256.map(hex::encode).into(),
    );
    m.insert("verdict".into(), event.verdict.outcome().into());
    m.insert("code".into(), event.verdict.code().into());
    let position = match event.verdict {
        Verdict::Refused(r) => r.certificate.as_ref().map(|c| c.position),
        _ => None,
    };
    m.insert("position".into(), position.into());
    m.insert(
        "entry".into(),
        event
            .verdict
            .entry()
            .map(|e| {
                json!({
                    "kind": match e.kind {
                        policy_host::EnrollmentKind::Individual => "individual",
                        policy_host::EnrollmentKind::Group => "group",
                    },
                    "id": e.id,
                })
            })
            .unwrap_or(Value::Null),
    );
    m.insert(
        "remoteAddress".into(),
        event.peer.map(|p| p.to_string()).into(),
    );
    if !event.warnings.is_empty() {
        m.insert(
            "warnings".into(),
            event
                .warnings
                .iter()
                .map(|w| json!({"code": w.code.as_str(), "message": w.message}))
                .collect(),
        );
    }
    m.insert(
        "ms".into(),
        json!((event.elapsed.as_secs_f64() * 1e3 * 1e3).round() / 1e3),
    );
    m
}

fn management_fields(event: &ManagementEvent<'_>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("kind".into(), "management".into());
    m.insert("policy".into(), event.policy.into());
    m.insert("route".into(), event.route.into());
    m.insert("resource".into(), event.resource.into());
    m.insert("status".into(), event.status.into());
    m.insert("code".into(), event.code.into());
    m.insert("etagBefore".into(), event.etag_before.into());
    m.insert("etagAfter".into(), event.etag_after.into());
    m.insert(
        "remoteAddress".into(),
        event.peer.map(|p| p.to_string()).into(),
    );
    m
}

/// The text of line `seq`: `seq`, `prev`, `time`, `kind`, then the other
/// `fields` (which may not set the first three).
fn line(seq: u64, prev: &str, time: &str, mut fields: Map<String, Value>) -> Result<String> {
    let mut out = format!(
        "{{\"seq\":{seq},\"prev\":\"{prev}\",\"time\":{}",
        json!(time)
    );
    if let Some(kind) = fields.remove("kind") {
        out.push_str(",\"kind\":");
        out.push_str(&serde_json::to_string(&kind)?);
    }
    for (key, value) in fields {
        if matches!(key.as_str(), "seq" | "prev" | "time") {
            bail!("an audit record may not set {key:?}");
        }
        out.push(',');
        out.push_str(&serde_json::to_string(&key)?);
        out.push(':');
        out.push_str(&serde_json::to_string(&value)?);
    }
    out.push('}');
    Ok(out)
}

#[cfg(unix)]
fn open_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_append(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
}

/// The `seq` and `prev` a line appended to `file` continues with: its last
/// line's, or the genesis of an empty file. A file that does not end in a
/// whole audit line is not continued (run `host-cli audit verify` on it).
fn resume(file: &mut File) -> Result<(u64, String)> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok((0, GENESIS.to_string()));
    }
    let tail_len = len.min(MAX_LINE as u64 + 1);
    file.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    file.take(tail_len).read_to_end(&mut tail)?;
    let Some(body) = tail.strip_suffix(b"\n") else {
        bail!(
            "it does not end in a whole line (a write was cut off); check it with `host-cli audit verify` and move it aside"
        );
    };
    let last = match body.iter().rposition(|&b| b == b'\n') {
        Some(i) => &body[i + 1..],
        None if tail_len == len => body,
        None => bail!("its last line is longer than {MAX_LINE} bytes: not an audit trail"),
    };
    let seq = parse(last)
        .map(|(seq, _)| seq)
        .map_err(|why| anyhow!("its last line is not an audit record ({why})"))?;
    Ok((seq + 1, hex::encode(Sha256::digest(last))))
}

/// A line's `seq` and `prev`, or why it is no audit record.
fn parse(line: &[u8]) -> Result<(u64, String), String> {
    let value: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    let seq = value
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or("no whole-number \"seq\"")?;
    let prev = value
        .get("prev")
        .and_then(Value::as_str)
        .filter(|p| p.len() == 64 && p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .ok_or("no \"prev\" of 64 lower-case hex digits")?;
    Ok((seq, prev.to_string()))
}

/// What `verify` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verification {
    /// Every line chains to the one before it, from the genesis on.
    Intact {
        /// Lines read.
        lines: u64,
        /// SHA-256 of the last line (hex; the genesis for an empty trail).
        head: String,
        /// Whether the last line is a `stop` line (closed cleanly).
        closed: bool,
    },
    /// The first line at which the chain breaks.
    Broken {
        /// Its line number (1 is the first line).
        line: u64,
        /// What is wrong, for a person.
        reason: String,
    },
}

/// Checks a trail from its first line: each line an audit record, `seq`
/// 0, 1, 2, … and each `prev` the SHA-256 of the line before. Reports the
/// first line that is broken (not a record, cut off), changed (the next
/// line records another hash of it) or missing (a gap in `seq`).
pub fn verify(reader: impl Read) -> io::Result<Verification> {
    let mut reader = io::BufReader::new(reader);
    let mut number = 0u64;
    let mut expected_seq = 0u64;
    let mut prev = GENESIS.to_string();
    let mut closed = false;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        if read == 0 {
            return Ok(Verification::Intact {
                lines: number,
                head: prev,
                closed,
            });
        }
        number += 1;
        let broken = |reason: String| {
            Ok(Verification::Broken {
                line: number,
                reason,
            })
        };
        let Some(line) = buf.strip_suffix(b"\n") else {
            if buf.len() > MAX_LINE {
                return broken(format!("longer than {MAX_LINE} bytes: not an audit record"));
            }
            return broken("incomplete: no newline at its end (a write was cut off)".into());
        };
        let (seq, recorded_prev) = match parse(line) {
            Ok(p) => p,
            Err(why) => return broken(format!("not an audit record: {why}")),
        };
        if seq != expected_seq {
            let reason = if number == 1 {
                format!("starts at seq {seq}, not 0: the lines before it are missing")
            } else if seq > expected_seq {
                let missing = seq - expected_seq;
                format!(
                    "seq {seq} follows seq {}: {missing} line{} missing before it",
                    expected_seq - 1,
                    if missing == 1 { " is" } else { "s are" }
                )
            } else {
                format!(
                    "seq {seq} follows seq {}: a line repeated, moved or inserted",
                    expected_seq - 1
                )
            };
            return broken(reason);
        }
        if recorded_prev != prev {
            if number == 1 {
                return broken(format!(
                    "its prev is {recorded_prev}, not the genesis: the lines before it are missing"
                ));
            }
            return Ok(Verification::Broken {
                line: number - 1,
                reason: format!(
                    "changed: line {number} records its SHA-256 as {recorded_prev}, but it hashes to {prev}"
                ),
            });
        }
        closed = serde_json::from_slice::<Value>(line)
            .ok()
            .and_then(|v| v.get("kind").and_then(Value::as_str).map(|k| k == "stop"))
            .unwrap_or(false);
        prev = hex::encode(Sha256::digest(line));
        expected_seq = seq + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trail(dir: &Path, records: usize) -> PathBuf {
        let path = dir.join("audit.jsonl");
        let t = AuditTrail::open(&path).unwrap();
        for i in 0..records {
            let mut m = Map::new();
            m.insert("kind".into(), "test".into());
            m.insert("i".into(), i.into());
            t.record(m).unwrap();
        }
        t.close().unwrap();
        path
    }

    fn verified(bytes: &[u8]) -> Verification {
        verify(bytes).unwrap()
    }

    #[test]
    fn an_intact_trail_verifies_and_a_reopened_one_continues_its_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = trail(dir.path(), 3);
        // start, 3 records, stop; then a second run appends start and stop.
        let t = AuditTrail::open(&path).unwrap();
        assert_eq!(t.lines(), 6);
        t.close().unwrap();
        drop(t);
        let bytes = std::fs::read(&path).unwrap();
        match verified(&bytes) {
            Verification::Intact {
                lines,
                closed,
                head,
            } => {
                assert_eq!(lines, 7);
                assert!(closed);
                let last = bytes[..bytes.len() - 1]
                    .rsplit(|&b| b == b'\n')
                    .next()
                    .unwrap();
                assert_eq!(head, hex::encode(Sha256::digest(last)));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            verified(b""),
            Verification::Intact {
                lines: 0,
                head: GENESIS.into(),
                closed: false
            }
        );
    }

    #[test]
    fn a_second_writer_on_one_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let _first = AuditTrail::open(&path).unwrap();
        let second = AuditTrail::open(&path).unwrap_err();
        assert!(
            format!("{second:#}").contains("held by another process"),
            "{second:#}"
        );
    }

    #[test]
    fn a_trail_that_ends_in_a_partial_line_is_not_continued() {
        let dir = tempfile::tempdir().unwrap();
        let path = trail(dir.path(), 2);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 5);
        std::fs::write(&path, &bytes).unwrap();
        let e = AuditTrail::open(&path).unwrap_err();
        assert!(
            format!("{e:#}").contains("does not end in a whole line"),
            "{e:#}"
        );
        std::fs::write(&path, b"garbage\n").unwrap();
        let e = AuditTrail::open(&path).unwrap_err();
        assert!(format!("{e:#}").contains("not an audit record"), "{e:#}");
    }

    /// A caller's text (a registration ID, a resource name) with newlines,
    /// quotes and a forged record in it stays inside its own line.
    #[test]
    fn a_callers_text_cannot_add_or_break_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let t = AuditTrail::open(&path).unwrap();
        let forged = "x\n{\"seq\":2,\"prev\":\"00\",\"kind\":\"decision\"}\r\n\u{2028}\"}";
        t.management(&ManagementEvent {
            policy: Some(forged),
            route: "PUT /enrollments/{id}",
            resource: Some(forged),
            status: 200,
            code: None,
            etag_before: Some(forged),
            etag_after: None,
            peer: None,
        })
        .unwrap();
        t.close().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        let line: Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
        assert_eq!(line["resource"], forged);
        assert!(matches!(
            verify(text.as_bytes()).unwrap(),
            Verification::Intact {
                lines: 3,
                closed: true,
                ..
            }
        ));
    }

    #[test]
    fn a_record_cannot_set_the_chain_fields() {
        for key in ["seq", "prev", "time"] {
            let mut m = Map::new();
            m.insert(key.into(), 1.into());
            assert!(line(0, GENESIS, "t", m).is_err());
        }
    }

    /// Every single-line removal, change, duplication and swap, and every
    /// cut, is reported at the right line (property over all positions).
    #[test]
    fn every_removed_changed_repeated_swapped_or_cut_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = trail(dir.path(), 8);
        let bytes = std::fs::read(&path).unwrap();
        let lines: Vec<&[u8]> = bytes[..bytes.len() - 1].split(|&b| b == b'\n').collect();
        let n = lines.len();
        let join = |ls: &[Vec<u8>]| {
            let mut out = Vec::new();
            for l in ls {
                out.extend_from_slice(l);
                out.push(b'\n');
            }
            out
        };
        let owned: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
        let broken_at = |v: Verification| match v {
            Verification::Broken { line, .. } => line,
            other => panic!("not reported: {other:?}"),
        };
        for i in 0..n {
            // Removed: the line after it (line i+1, 1-based) is the first
            // with a gap; removing the last line cannot be seen.
            let mut removed = owned.clone();
            removed.remove(i);
            let v = verified(&join(&removed));
            if i + 1 < n {
                assert_eq!(broken_at(v), i as u64 + 1, "removed line {}", i + 1);
            } else {
                assert!(matches!(v, Verification::Intact { closed: false, .. }));
            }
            // Changed (one byte inside a value, still JSON): line i+1 named,
            // unless it is the last line (nothing chains to it).
            let mut changed = owned.clone();
            let at = changed[i].len() - 3;
            changed[i][at] = if changed[i][at] == b'0' { b'1' } else { b'0' };
            let v = verified(&join(&changed));
            if i + 1 < n {
                assert_eq!(broken_at(v), i as u64 + 1, "changed line {}", i + 1);
            }
            // Repeated: the copy (line i+2) is named.
            let mut repeated = owned.clone();
            repeated.insert(i, owned[i].clone());
            assert_eq!(broken_at(verified(&join(&repeated))), i as u64 + 2);
            // Swapped with the next one.
            if i + 1 < n {
                let mut swapped = owned.clone();
                swapped.swap(i, i + 1);
                assert_eq!(broken_at(verified(&join(&swapped))), i as u64 + 1);
            }
        }
        for cut in 1..bytes.len() {
            let v = verified(&bytes[..cut]);
            if bytes[cut - 1] == b'\n' {
                assert!(matches!(v, Verification::Intact { .. }), "cut at {cut}");
            } else {
                let line = bytes[..cut].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
                assert_eq!(broken_at(v), line, "cut at {cut}");
            }
        }
        // Not an audit record at all.
        assert_eq!(broken_at(verified(b"{\"seq\":0}\n")), 1);
        assert_eq!(broken_at(verified(&[0xff, 0xfe, b'\n'])), 1);
        let long = vec![b'x'; MAX_LINE + 10];
        assert_eq!(broken_at(verified(&long)), 1);
    }
}
