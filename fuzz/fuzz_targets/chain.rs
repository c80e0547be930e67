//! Certificate parsing, path validation, enrollment resolution and proof
//! of possession on arbitrary input (see `attest_fuzz::chain` for the
//! input format).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| attest_fuzz::chain(data));
