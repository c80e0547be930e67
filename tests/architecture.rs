//! The crate graph of docs/architecture.md, checked from the manifests:
//! each crate's normal (non-dev) dependencies inside the workspace are
//! exactly the ones its row of the document's crate table lists. A new edge
//! (a host importing `policy-core`, one host importing another, the core
//! importing a host) fails this test until the document says why. The
//! table is the one list: this test reads it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use std::collections::{BTreeMap, BTreeSet};

/// Crate → the workspace crates it may depend on, from the crate table of
/// docs/architecture.md: the package is the last `name` of the first
/// column, the allowed crates the `names` of the last ("nothing": none).
/// Rows that are not workspace crates ("—", "anything") are skipped.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/architecture.md"
    ))
    .unwrap();
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let table = doc
        .split("## The crates")
        .nth(1)
        .expect("docs/architecture.md has a crate table");
    let mut out = BTreeMap::new();
    for row in table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
    {
        let cells: Vec<&str> = row.trim_matches('|').split('|').collect();
        let (first, last) = (cells[0], cells[cells.len() - 1].trim());
        if last == "—" || last == "anything" {
            continue;
        }
        let name = ticked(first).pop().expect("a crate name in backticks");
        let deps = if last == "nothing" {
            BTreeSet::new()
        } else {
            ticked(last).into_iter().collect()
        };
        out.insert(name, deps);
    }
    out
}

#[test]
fn the_crate_graph_is_the_documented_one() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let members: BTreeSet<String> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    let mut actual: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for package in metadata["packages"].as_array().unwrap() {
        let deps = package["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            // Normal dependencies have kind null; dev and build are named.
            .filter(|d| d["kind"].is_null())
            .map(|d| d["name"].as_str().unwrap().to_string())
            .filter(|name| members.contains(name))
            .collect();
        actual.insert(package["name"].as_str().unwrap().to_string(), deps);
    }
    let expected = documented();
    assert!(
        expected.len() >= 8,
        "read {} crates from the table",
        expected.len()
    );
    assert_eq!(actual, expected);
}

/// The fuzz workspace's lock file follows the crates it builds: CI builds
/// it `--locked` first, so a dependency added to a crate under fuzz
/// without updating `fuzz/Cargo.lock` fails the whole run in two seconds.
/// Checked here without the network (`cargo update --locked --offline`
/// reads only the lock file and the manifests).
#[test]
fn the_fuzz_lock_file_is_current() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = std::process::Command::new(env!("CARGO"))
        .args(["update", "--workspace", "--locked", "--offline"])
        .current_dir(format!("{root}/fuzz"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fuzz/Cargo.lock is stale: run `cargo update --workspace` in fuzz/\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
