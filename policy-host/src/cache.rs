//! Where the compiled component comes from: embedded in the binary, or the
//! compiled-component cache.
//!
//! The build script precompiles the component for the engine
//! configurations of the default limits (`crate::engine::PRECOMPILED_SHAPES`)
//! and the binary carries the results: a policy whose engine matches one of
//! them (same wasmtime, settings and CPU features) loads it with no file,
//! no MAC and no Cranelift at run time. The embedded code is as trusted as
//! the binary that contains it. Any other engine (other limits, a binary
//! copied to a machine with other CPU features, a cross-compiled build)
//! falls back to the cache below.
//!
//! Compiling the component with Cranelift costs about a second; a CLI that
//! paid it on every run would be unusable. The first load writes the
//! compiled artefact (`Component::serialize`) to a cache directory, keyed by
//! the component's SHA-256 and the engine's compatibility hash; later loads
//! deserialize it in milliseconds.
//!
//! A cached file is native code that the process will run, so it is as
//! trusted as the binary, and attest checks that it may be:
//!
//! - the directory is created `0700`; one that another user owns, or that
//!   its group or others can write, is not used (the component is compiled
//!   in memory instead);
//! - every file carries an HMAC-SHA256 over its whole content, keyed by 32
//!   random bytes in `key` (`0600`) in the same directory; a file whose tag
//!   does not verify (truncated, bit-flipped, or written by anything but
//!   this code) is never deserialized: the component is compiled again and
//!   the file replaced.
//!
//! What remains trusted is the user's own account: whoever can write the
//! directory *as that user* can also replace the key, and could equally
//! replace the binary or its environment. Writes are atomic (temp file +
//! rename), so concurrent processes never see a partial file.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::hmac;
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::HostError;

/// Largest cached file read back, bytes (the compiled policy is a few MiB).
const MAX_CACHED: u64 = 256 << 20;
/// Length of the integrity tag at the start of each cached file.
const TAG_LEN: usize = 32;

/// Where compiled components are cached.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CacheMode {
    /// `$ATTEST_CACHE_DIR`, else `$XDG_CACHE_HOME/attest`, else
    /// `$HOME/.cache/attest`; no cache if none is set.
    #[default]
    Default,
    /// This directory.
    Dir(PathBuf),
    /// Compile on every load.
    Disabled,
}

impl CacheMode {
    fn dir(&self) -> Option<PathBuf> {
        match self {
            CacheMode::Dir(d) => Some(d.clone()),
            CacheMode::Disabled => None,
            CacheMode::Default => {
                let var = |k: &str| {
                    std::env::var_os(k)
                        .filter(|v| !v.is_empty())
                        .map(PathBuf::from)
                };
                var("ATTEST_CACHE_DIR")
                    .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("attest")))
                    .or_else(|| var("HOME").map(|d| d.join(".cache").join("attest")))
            }
        }
    }
}

/// Where a policy's compiled component came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComponentSource {
    /// Precompiled when the binary was built, for this engine configuration.
    Embedded,
    /// Read back from the compilation cache (its tag verified).
    Cache,
    /// Compiled with Cranelift at this load.
    Compiled,
}

// `PRECOMPILED: &[(u64, &[u8])]`: (engine compatibility, compiled component)
// for each configuration the build script precompiled; empty when it could
// not (a cross-compiled or fuzzing build).
include!(concat!(env!("OUT_DIR"), "/precompiled.rs"));

/// Loads the embedded component `crate::COMPONENT`: precompiled when the
/// engine matches a configuration the build compiled it for, else through
/// the cache when one is configured and private to this user.
pub(crate) fn load(
    engine: &Engine,
    mode: &CacheMode,
) -> Result<(Component, ComponentSource), HostError> {
    if let Some(component) = embedded(engine) {
        return Ok((component, ComponentSource::Embedded));
    }
    let bytes = crate::COMPONENT;
    let compiled = |engine| compile(engine, bytes).map(|c| (c, ComponentSource::Compiled));
    let Some(dir) = mode.dir() else {
        return compiled(engine);
    };
    let Some(key) = private_dir(&dir).and_then(|()| integrity_key(&dir)) else {
        // Not a directory only this user controls: do not run code from it.
        return compiled(engine);
    };
    let path = dir.join(file_name(engine));
    if let Some(component) = read_verified(engine, &path, &key) {
        return Ok((component, ComponentSource::Cache));
    }
    let component = compile(engine, bytes)?;
    if let Ok(serialized) = component.serialize() {
        // A cache that cannot be written is not an error: the component works.
        let _ = write_atomically(&dir, &path, &key, &serialized);
    }
    Ok((component, ComponentSource::Compiled))
}

/// The precompiled component for `engine`'s configuration, if the build
/// made one.
#[allow(unsafe_code)]
fn embedded(engine: &Engine) -> Option<Component> {
    let compatibility = crate::engine::compatibility(engine);
    let (_, compiled) = PRECOMPILED.iter().find(|(c, _)| *c == compatibility)?;
    // SAFETY: `Component::deserialize` trusts its input to be a
    // `Component::serialize` / `Engine::precompile_component` output of a
    // compatible engine. These bytes are part of this binary: its build
    // script precompiled `crate::COMPONENT` with an engine whose
    // compatibility hash equals this engine's (checked above), so they are
    // as trusted as the code running now. wasmtime checks the header,
    // version and settings again and refuses a mismatch (we then fall
    // back to the cache).
    unsafe { Component::deserialize(engine, compiled) }.ok()
}

fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, HostError> {
    Component::new(engine, bytes).map_err(|e| HostError::Load(format!("{e:#}")))
}

/// Creates `dir` 0700, or checks that an existing one is owned by this
/// user and writable by no one else.
fn private_dir(dir: &Path) -> Option<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .ok()?;
    }
    let meta = std::fs::symlink_metadata(dir).ok()?;
    (meta.is_dir() && meta.uid() == euid() && meta.mode() & 0o022 == 0).then_some(())
}

#[allow(unsafe_code)]
fn euid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments, touches no memory and always
    // succeeds.
    unsafe { libc::geteuid() }
}

/// The directory's HMAC key: 32 random bytes in `key`, created 0600 if
/// absent; an existing key must be this user's, 0600 and 32 bytes.
fn integrity_key(dir: &Path) -> Option<hmac::Key> {
    let path = dir.join("key");
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path);
    if let Ok(mut file) = created {
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).ok()?;
        file.write_all(&key).ok()?;
        file.sync_all().ok()?;
    }
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() || meta.uid() != euid() || meta.permissions().mode() & 0o077 != 0 {
        return None;
    }
    let key = crate::input::read_limited(&path, 32).ok()?;
    (key.len() == 32).then(|| hmac::Key::new(hmac::HMAC_SHA256, &key))
}

/// The cached component at `path`, if its tag verifies.
#[allow(unsafe_code)]
fn read_verified(engine: &Engine, path: &Path, key: &hmac::Key) -> Option<Component> {
    let file = crate::input::read_limited(path, MAX_CACHED).ok()?;
    if file.len() <= TAG_LEN {
        return None;
    }
    let (tag, serialized) = file.split_at(TAG_LEN);
    hmac::verify(key, serialized, tag).ok()?;
    // SAFETY: `Component::deserialize` trusts its input to be a
    // `Component::serialize` output of a compatible engine. These bytes
    // are exactly what `write_atomically` wrote for this component and
    // engine (the file is named by both hashes), as the HMAC under this
    // directory's private key shows; wasmtime also checks the header and
    // version and refuses mismatches (we then recompile).
    unsafe { Component::deserialize(engine, serialized) }.ok()
}

/// The cache file's name: the component's SHA-256 (computed when it was
/// built) and the engine's compatibility.
fn file_name(engine: &Engine) -> String {
    format!(
        "policy-{}-{:016x}.cwasm",
        hex::encode(&COMPONENT_SHA256[..12]),
        crate::engine::compatibility(engine)
    )
}

fn write_atomically(
    dir: &Path,
    path: &Path,
    key: &hmac::Key,
    serialized: &[u8],
) -> std::io::Result<()> {
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("policy"),
        std::process::id()
    ));
    let tag = hmac::sign(key, serialized);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(tag.as_ref())?;
        file.write_all(serialized)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("attest-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn cached_file(dir: &Path) -> PathBuf {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .expect("a cached component")
    }

    #[test]
    fn the_digest_computed_at_build_time_is_the_components() {
        use sha2::Digest;
        assert_eq!(
            COMPONENT_SHA256,
            <[u8; 32]>::from(sha2::Sha256::digest(crate::COMPONENT))
        );
    }

    #[test]
    fn second_load_comes_from_the_cache_and_a_corrupt_file_is_replaced() {
        let dir = fresh_dir("cache-test");
        let engine = Engine::default();
        let mode = CacheMode::Dir(dir.clone());
        load(&engine, &mode).unwrap();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names.len(),
            2,
            "the key and one component, no temp files: {names:?}"
        );
        let path = cached_file(&dir);
        load(&engine, &mode).unwrap();

        std::fs::write(&path, b"not a compiled component").unwrap();
        load(&engine, &mode).unwrap();
        assert!(
            std::fs::read(&path).unwrap().len() > 1000,
            "corrupt file replaced"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Regression (issue "Fail closed in the service", item 8): overwriting
    /// the code section of the cached file made every later load run the
    /// altered native code (SIGILL). A file whose tag does not verify is now
    /// recompiled, never executed.
    #[test]
    fn a_tampered_cache_file_is_recompiled_not_run() {
        let dir = fresh_dir("cache-tamper");
        let engine = Engine::default();
        let mode = CacheMode::Dir(dir.clone());
        load(&engine, &mode).unwrap();
        let path = cached_file(&dir);
        let original = std::fs::read(&path).unwrap();
        let mut tampered = original.clone();
        // Overwrite a run of bytes in the middle (the code section) with
        // ud2 instructions, as an attacker writing the directory would.
        let middle = tampered.len() / 2;
        for b in &mut tampered[middle..middle + 4096] {
            *b = 0x0f;
        }
        std::fs::write(&path, &tampered).unwrap();
        // The load compiles afresh (the tag does not verify) and rewrites
        // the file; the tampered bytes are never deserialized, let alone run.
        load(&engine, &mode).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), original, "file rewritten");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_others_can_write_is_not_used() {
        let dir = fresh_dir("cache-shared");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let engine = Engine::default();
        load(&engine, &CacheMode::Dir(dir.clone())).unwrap();
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "nothing cached"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
