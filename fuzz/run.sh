#!/usr/bin/env bash
# Coverage-guided fuzzing of attest's policy core on the stable toolchain.
#
#   fuzz/run.sh [SECONDS] [--component | --service]
#
# Builds the `chain` target with libFuzzer (libfuzzer-sys) and rustc's
# sanitizer-coverage passes, seeds it with the conformance corpus (written by
# the `fuzz-seeds` example of attest-tests), and fuzzes for SECONDS
# (default 30). With --component, every input also runs through the policy
# component, which must give the native core's verdict. With --service, the
# service targets run instead, SECONDS each: `enrollments` (the DPS
# enrollment loader), `sas` (management tokens) and `register` (the HTTP
# request handling of host-http, through host_http::Harness). Findings are
# written to fuzz/artifacts/ and fail the run; the corpus grows in
# fuzz/corpus/. Long runs: `fuzz/run.sh 3600 --component`, `fuzz/run.sh 1200 --service`.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-30}
features=()
targets=(chain)
case "${2:-}" in
  --component) features=(--features component) ;;
  --service) features=(--features service); targets=(enrollments sas register snapshot) ;;
  "") ;;
  *) echo "usage: fuzz/run.sh [SECONDS] [--component | --service]" >&2; exit 2 ;;
esac

# An explicit --target keeps the instrumentation off build scripts and
# proc-macros (they run on the host without libFuzzer's runtime).
host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
cargo build --release --locked --target "$host" --target-dir ../target/fuzz "${bins[@]}" "${features[@]}"
unset RUSTFLAGS

mkdir -p artifacts
for t in "${targets[@]}"; do mkdir -p "corpus/$t"; done
if [[ " ${targets[*]} " == *" chain "* ]]; then
  # The seed writer is built with the whole workspace's examples: the same
  # packages, features and profile as `cargo test --workspace`, so the test
  # suite reuses this build. (`cargo run -p attest-tests` unifies features
  # for that one package and compiles nearly every dependency a second time.)
  seeds=$(cd .. && cargo build --quiet --locked --workspace --examples --message-format=json-render-diagnostics \
    | sed -n 's/.*"executable":"\([^"]*\/fuzz-seeds\)".*/\1/p')
  [[ -x "$seeds" ]] || { echo "fuzz/run.sh: the fuzz-seeds example was not built" >&2; exit 1; }
  (cd .. && "$seeds" fuzz/corpus/chain)
fi
if [[ " ${targets[*]} " == *" enrollments "* ]]; then
  printf '%s' '{"individualEnrollments":[{"registrationId":"d1","ProvisioningStatus":"disabled","attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":"MAo="}}}}}],"enrollmentGroups":[{"enrollmentGroupId":"g","provisioningStatus":"enabled","attestation":{"type":"x509","x509":{"caReferences":{"primary":"ca"}}}}]}' > corpus/enrollments/seed-file
  printf '%s' '{"registrationId":"d1","provisioningStatus":"enabled","attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":"MAo="}}}}}' > corpus/enrollments/seed-entry
  printf '%s' 'SharedAccessSignature sr=localhost&sig=abc%3D&se=1780272060&skn=owner' > corpus/sas/seed
  printf 'PUT /0ne00000001/registrations/device-4/register?api-version=2021-06-01 HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 29\r\n\r\n{"registrationId":"device-4"}' > corpus/register/seed-register
  printf 'POST /0ne00000001/registrations/device-4 HTTP/1.1\r\nhost: localhost\r\ncontent-length: 0\r\n\r\n' > corpus/register/seed-status
  printf 'GET /0ne00000001/registrations/device-4/operations/x HTTP/1.1\r\nhost: localhost\r\n\r\n' > corpus/register/seed-operation
  printf 'PUT /enrollmentGroups/g HTTP/1.1\r\nhost: localhost\r\nauthorization: SharedAccessSignature sr=a&sig=b&se=1&skn=x\r\ncontent-length: 2\r\n\r\n{}' > corpus/register/seed-admin
fi

for t in "${targets[@]}"; do
  echo "fuzzing $t for ${seconds}s"
  "../target/fuzz/$host/release/$t" "corpus/$t" \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix="artifacts/$t-" -print_final_stats=1 2>&1 | tee "artifacts/last-run-$t.log" | tail -n 8
done
