#!/usr/bin/env bash
# Coverage-guided fuzzing of attest's policy core on the stable toolchain.
#
#   fuzz/run.sh [SECONDS] [--component]
#
# Builds the `chain` target with libFuzzer (libfuzzer-sys) and rustc's
# sanitizer-coverage passes, seeds it with the conformance corpus (written by
# `cargo run -p attest-tests --example fuzz-seeds`), and fuzzes for SECONDS
# (default 30). With --component, every input also runs through the policy
# component, which must give the native core's verdict. Findings are written
# to fuzz/artifacts/ and fail the run; the corpus grows in fuzz/corpus/.
# Long runs: `fuzz/run.sh 3600 --component`.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-30}
features=()
if [[ "${2:-}" == "--component" ]]; then features=(--features component); fi

# An explicit --target keeps the instrumentation off build scripts and
# proc-macros (they run on the host without libFuzzer's runtime).
host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
cargo build --release --locked --target "$host" --target-dir ../target/fuzz --bin chain "${features[@]}"
unset RUSTFLAGS

mkdir -p corpus/chain artifacts
(cd .. && cargo run --quiet --locked -p attest-tests --example fuzz-seeds -- fuzz/corpus/chain)

"../target/fuzz/$host/release/chain" corpus/chain \
  -max_total_time="$seconds" -max_len=65536 -timeout=5 -rss_limit_mb=4096 \
  -artifact_prefix=artifacts/ -print_final_stats=1 2>&1 | tee artifacts/last-run.log | tail -n 25
