//! Builds attest's policy component.
//!
//! `policy-core` is compiled for `wasm32-unknown-unknown` by a nested cargo
//! with its own target directory (sharing the outer one deadlocks on its
//! lock; the pattern of wasmtime's `crates/test-programs/artifacts`), then
//! encoded as a WebAssembly component with `wit-component`. Using
//! `wasm32-unknown-unknown` rather than `wasm32-wasip2` keeps WASI out of
//! the component: it imports only attest's own interfaces.
//!
//! The component's path is exposed as `ATTEST_POLICY_COMPONENT` for
//! `include_bytes!`. The component is then precompiled with wasmtime for the
//! engine configurations of the default limits (`src/engine.rs`, compiled
//! into this script too, so build and runtime configure engines alike) and
//! `$OUT_DIR/precompiled.rs` lists the results for the library to embed: the
//! CLI then starts without reading, authenticating or compiling anything.
//! Nothing is written outside `OUT_DIR`.

#[allow(dead_code)]
#[path = "src/engine.rs"]
mod engine;
#[allow(dead_code)]
#[path = "src/footprint.rs"]
mod footprint;

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    if let Err(e) = run() {
        println!("cargo::error=building the attest policy component failed: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let workspace = manifest_dir
        .parent()
        .ok_or("policy-host has no parent directory")?
        .to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let guest_target = out_dir.join("guest-target");

    for watched in [
        "policy-core/src",
        "policy-core/Cargo.toml",
        "wit",
        "Cargo.lock",
    ] {
        println!(
            "cargo::rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace.join("policy-core"))
        .args([
            "rustc",
            "--lib",
            "--crate-type=cdylib",
            "--target=wasm32-unknown-unknown",
            "--features=component",
            "--profile=guest",
            "--locked",
        ])
        .arg("--target-dir")
        .arg(&guest_target)
        // The default 1 MiB shadow stack is far more than the policy needs
        // (path building recurses at most MAX_PATH_LEN deep); a smaller one
        // means less memory to set up per call.
        .args(["--", "-C", "link-arg=-zstack-size=262144"]);
    // The outer build's settings are for the host; none of them may leak
    // into the guest build.
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_NET_OFFLINE"
            || key == "RUSTFLAGS"
            || key == "RUSTC_WRAPPER"
            || key == "RUSTC_WORKSPACE_WRAPPER"
            || key == "RUSTDOCFLAGS"
        {
            cmd.env_remove(key);
        }
    }
    let status = cmd
        .status()
        .map_err(|e| format!("could not run cargo for the guest build: {e}"))?;
    if !status.success() {
        return Err(format!(
            "guest build failed ({status}); is the target installed? run `rustup target add wasm32-unknown-unknown`"
        ));
    }

    let core_module = guest_target.join("wasm32-unknown-unknown/guest/policy_core.wasm");
    let module = std::fs::read(&core_module)
        .map_err(|e| format!("reading {}: {e}", core_module.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .map_err(|e| format!("wit-component could not read the core module: {e:#}"))?
        .validate(true)
        .encode()
        .map_err(|e| format!("wit-component could not encode the component: {e:#}"))?;
    let dest = out_dir.join("attest_policy.component.wasm");
    write_if_changed(&dest, &component)?;
    println!(
        "cargo::rustc-env=ATTEST_POLICY_COMPONENT={}",
        dest.display()
    );
    precompile(&component, &out_dir)
}

/// Precompiles `component` for each of `engine::PRECOMPILED_SHAPES` and
/// writes `precompiled.rs`: the component's SHA-256 and, per shape, the
/// engine's compatibility fingerprint with the compiled bytes. Skipped
/// (an empty list) when the code would run on another machine than this
/// one (cross-compiling) or is being fuzzed (cargo-fuzz builds with
/// `--cfg fuzzing`; its profile does not optimise Cranelift).
fn precompile(component: &[u8], out_dir: &Path) -> Result<(), String> {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(component);
    let mut listing = format!(
        "/// SHA-256 of `crate::COMPONENT`, computed when it was built.\n\
         pub(crate) const COMPONENT_SHA256: [u8; 32] = {:?};\n\
         pub(crate) const PRECOMPILED: &[(u64, &[u8])] = &[\n",
        digest.as_slice()
    );
    let host = env::var("HOST").map_err(|e| e.to_string())?;
    let target = env::var("TARGET").map_err(|e| e.to_string())?;
    let fuzzing = env::var_os("CARGO_CFG_FUZZING").is_some();
    if host == target && !fuzzing {
        let footprint =
            footprint::of(component).ok_or("the component's core instances cannot be counted")?;
        for (i, shape) in engine::PRECOMPILED_SHAPES.iter().enumerate() {
            let engine = wasmtime::Engine::new(&engine::config(shape, footprint))
                .map_err(|e| format!("wasmtime engine for {shape:?}: {e:#}"))?;
            let compiled = engine
                .precompile_component(component)
                .map_err(|e| format!("precompiling the component for {shape:?}: {e:#}"))?;
            let path = out_dir.join(format!("attest_policy.{i}.cwasm"));
            write_if_changed(&path, &compiled)?;
            listing.push_str(&format!(
                "    ({:#018x}, include_bytes!({:?})),\n",
                engine::compatibility(&engine),
                path.display().to_string()
            ));
        }
    }
    listing.push_str("];\n");
    write_if_changed(&out_dir.join("precompiled.rs"), listing.as_bytes())
}

fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    std::fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}
