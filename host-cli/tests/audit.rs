//! `host-cli audit verify FILE [--closed]`, the contract other tools rely
//! on: exit 0 when the trail is intact, 1 naming the first broken, changed
//! or missing line, 2 on usage or I/O errors. The trail is written by the
//! writer host-http uses (`attest_service::audit`), over a real restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use attest_service::audit::AuditTrail;
use serde_json::{Map, Value};

fn verify(file: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_host-cli"))
        .args(["audit", "verify"])
        .arg(file)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A trail of two runs: start, 5 decisions, stop; start, stop.
fn trail(path: &Path) -> Vec<String> {
    for run in 0..2 {
        let t = AuditTrail::open(path).unwrap();
        for i in 0..(if run == 0 { 5 } else { 0 }) {
            let mut m = Map::new();
            m.insert("kind".into(), "decision".into());
            m.insert("registrationId".into(), format!("device-{i}").into());
            m.insert("verdict".into(), "refused".into());
            t.record(m).unwrap();
        }
        t.close().unwrap();
    }
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

#[test]
fn audit_verify_exit_codes_and_the_line_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let lines = trail(&path);
    assert_eq!(lines.len(), 9);

    let (code, out) = verify(&path, &["--closed"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact: 9 lines, last line SHA-256 "), "{out}");
    assert!(out.contains("closed cleanly"), "{out}");

    // Standard input.
    let mut child = Command::new(env!("CARGO_BIN_EXE_host-cli"))
        .args(["audit", "verify", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(std::fs::read(&path).unwrap().as_slice())
        .unwrap();
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(0));

    let bad = dir.path().join("bad.jsonl");
    // A line removed: the one after it is named (missing before it).
    for removed in 0..lines.len() - 1 {
        let mut l = lines.clone();
        l.remove(removed);
        write(&bad, &l);
        let (code, out) = verify(&bad, &[]);
        assert_eq!(code, 1, "removed {}: {out}", removed + 1);
        assert!(
            out.contains(&format!("broken at line {}:", removed + 1)) && out.contains("missing"),
            "removed line {}: {out}",
            removed + 1
        );
    }
    // A verdict changed: that line is named.
    for changed in 1..6 {
        let mut l = lines.clone();
        l[changed] = l[changed].replace("\"refused\"", "\"admitted\"");
        write(&bad, &l);
        let (code, out) = verify(&bad, &[]);
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains(&format!("broken at line {}: changed", changed + 1)),
            "{out}"
        );
    }
    // Cut in the middle of its last line.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&bad, &text[..text.len() - 10]).unwrap();
    let (code, out) = verify(&bad, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("broken at line 9: incomplete"), "{out}");
    // Lines cut from the end: intact, but not closed.
    write(&bad, &lines[..6]);
    assert_eq!(verify(&bad, &[]).0, 0);
    let (code, out) = verify(&bad, &["--closed"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("broken at line 7: the trail does not end in a stop line"),
        "{out}"
    );
    // Not a trail.
    std::fs::write(&bad, "hello\n").unwrap();
    let (code, out) = verify(&bad, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("broken at line 1: not an audit record"),
        "{out}"
    );
    // A forged first line (its prev is not the genesis).
    let mut l = lines.clone();
    let mut first: Value = serde_json::from_str(&l[0]).unwrap();
    first["prev"] = "ab".repeat(32).into();
    l[0] = first.to_string();
    write(&bad, &l);
    let (code, out) = verify(&bad, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("broken at line 1"), "{out}");

    // Usage and I/O errors: 2.
    assert_eq!(verify(&dir.path().join("absent.jsonl"), &[]).0, 2);
    assert_eq!(verify(dir.path(), &[]).0, 2, "a directory");
    let usage = Command::new(env!("CARGO_BIN_EXE_host-cli"))
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
}
