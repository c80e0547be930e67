//! The compiled-component cache.
//!
//! Compiling the component with Cranelift costs about a second; a CLI that
//! paid it on every run would be unusable. The first load writes the
//! compiled artefact (`Component::serialize`) to a cache directory, keyed by
//! the component's SHA-256 and the engine's compatibility hash; later loads
//! deserialize it in milliseconds. Writes are atomic (temp file + rename),
//! so concurrent processes never see a partial file.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::HostError;

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

/// Loads `bytes` as a component, through the cache when one is configured.
pub(crate) fn load(
    engine: &Engine,
    bytes: &[u8],
    mode: &CacheMode,
) -> Result<Component, HostError> {
    let Some(dir) = mode.dir() else {
        return compile(engine, bytes);
    };
    let path = dir.join(file_name(engine, bytes));
    // An unreadable file, or one from another build, is replaced below.
    if path.is_file()
        && let Ok(component) = deserialize(engine, &path)
    {
        return Ok(component);
    }
    let component = compile(engine, bytes)?;
    if let Ok(serialized) = component.serialize() {
        // A cache that cannot be written is not an error: the component works.
        let _ = write_atomically(&dir, &path, &serialized);
    }
    Ok(component)
}

fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, HostError> {
    Component::new(engine, bytes).map_err(|e| HostError::Load(format!("{e:#}")))
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> Result<Component, HostError> {
    // SAFETY: `Component::deserialize_file` trusts the file to be a
    // `Component::serialize` output of a compatible engine. The file lives
    // in the user's own cache directory, is named by the SHA-256 of the
    // component and the engine's compatibility hash, and is only ever
    // written whole by `write_atomically` below; wasmtime additionally
    // checks its header and version and refuses mismatches (we then
    // recompile). Whoever can write the user's cache directory can already
    // run code as that user.
    unsafe { Component::deserialize_file(engine, path) }
        .map_err(|e| HostError::Load(format!("{e:#}")))
}

fn file_name(engine: &Engine, bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!(
        "policy-{}-{:016x}.cwasm",
        hex::encode(&digest[..12]),
        hasher.finish()
    )
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("policy"),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_load_comes_from_the_cache_and_a_corrupt_file_is_replaced() {
        let dir = std::env::temp_dir().join(format!("attest-cache-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let engine = Engine::default();
        let mode = CacheMode::Dir(dir.clone());
        load(&engine, crate::COMPONENT, &mode).unwrap();
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(files.len(), 1, "exactly one cache file, no temp files left");
        let path = files[0].as_ref().unwrap().path();
        load(&engine, crate::COMPONENT, &mode).unwrap();

        std::fs::write(&path, b"not a compiled component").unwrap();
        load(&engine, crate::COMPONENT, &mode).unwrap();
        assert!(
            std::fs::read(&path).unwrap().len() > 1000,
            "corrupt file replaced"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
