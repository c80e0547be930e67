//! The wasmtime configuration of a [`crate::Policy`], in one place.
//!
//! This file is also compiled into the build script (`#[path]`), which
//! precompiles the component for the configurations of
//! [`PRECOMPILED_SHAPES`] and embeds the results: code compiled by an engine
//! configured otherwise would not load (wasmtime refuses an artefact whose
//! settings differ from the engine's), so the build and the runtime must
//! derive their `Config` from the same function.

use wasmtime::{Config, Enabled, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::footprint::Footprint;

/// What of a policy's limits shapes its engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Fuel metering compiled in.
    pub(crate) fuel: bool,
    /// Epoch interruption (deadlines) compiled in.
    pub(crate) epoch: bool,
    /// The linear-memory cap, bytes (also the reservation).
    pub(crate) memory_bytes: usize,
    /// Pre-reserved sandboxes (`Some(calls)`) or one memory at a time.
    pub(crate) pool: Option<u32>,
}

/// The shapes of `Limits::default()` (a service) and `Limits::one_shot()`
/// (the CLI): the build embeds a precompiled component for each. A test
/// (`the_default_limits_load_the_embedded_component`) fails if these drift
/// from the limits they describe. (Only the build script and that test
/// read it.)
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const PRECOMPILED_SHAPES: [Shape; 2] = [
    Shape {
        fuel: false,
        epoch: true,
        memory_bytes: 64 << 20,
        pool: Some(128),
    },
    Shape {
        fuel: false,
        epoch: true,
        memory_bytes: 64 << 20,
        pool: None,
    },
];

/// The engine configuration for `shape`, with a pool (if any) sized from
/// what one instance of the component takes.
pub(crate) fn config(shape: &Shape, footprint: Footprint) -> Config {
    let mut config = Config::new();
    config.consume_fuel(shape.fuel);
    config.epoch_interruption(shape.epoch);
    let reservation = u64::try_from(shape.memory_bytes).unwrap_or(u64::MAX);
    match shape.pool {
        Some(calls) => {
            // Pre-reserved sandboxes make instantiation a few microseconds:
            // each call gets a fresh instance without mmap/munmap of its
            // memory.
            let slots = |per_call: u32| per_call.saturating_mul(calls);
            let mut pool = PoolingAllocationConfig::default();
            pool.total_component_instances(calls)
                .total_core_instances(slots(footprint.core_instances))
                .total_memories(slots(footprint.memories))
                .total_tables(slots(footprint.tables))
                .max_memories_per_component(footprint.memories)
                .max_tables_per_component(footprint.tables)
                .max_memory_size(shape.memory_bytes)
                // Reset a reused sandbox's first pages with memset instead
                // of returning them to the kernel: a typical call touches
                // well under 1 MiB, and page faults dominate instantiation
                // otherwise.
                .linear_memory_keep_resident(1 << 20)
                .table_keep_resident(64 << 10)
                // Where the kernel has PAGEMAP_SCAN (Linux 6.7+), reset only
                // the pages a call dirtied instead of the whole resident
                // megabyte.
                .pagemap_scan(Enabled::Auto);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
            // Bounds checks in code rather than guard pages and signals:
            // with guard pages, each call's memory.grow made pages
            // accessible with mprotect and the next instantiation made them
            // inaccessible again, two syscalls and a TLB shootdown per call
            // (40 % of a trivial call's time in `perf`). Without them a
            // recycled sandbox keeps its accessible pages (still reset
            // between calls) and a trivial call costs 7.5 µs instead of
            // 14.4 µs; the explicit checks cost less than that in a
            // decision (docs/performance.md).
            config.signals_based_traps(false);
            config.memory_guard_size(0);
            config.memory_reservation(reservation);
        }
        None => {
            // One memory at a time, reserved at its cap (not wasmtime's
            // default 4 GiB + guard): bounds checks in code instead of
            // guard pages, so the process fits a small `ulimit -v`.
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            config.memory_reservation(reservation);
            config.memory_guard_size(64 << 10);
        }
    }
    config
}

/// A stable fingerprint of everything that makes compiled code loadable
/// by an engine (wasmtime's version, its settings, the target's CPU
/// features), as a number the build script and the library compute alike.
pub(crate) fn compatibility(engine: &wasmtime::Engine) -> u64 {
    use std::hash::{Hash, Hasher};
    // `DefaultHasher::new()` has fixed keys: the same value in the build
    // script and in the library, which one toolchain compiles.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.finish()
}
