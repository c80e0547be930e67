//! Writes the conformance corpus as seeds for the fuzz targets
//! (`fuzz/run.sh` calls it): one file per case, in the input format that
//! `attest_fuzz::Input::decode` reads.
//!
//! `cargo run -p attest-tests --example fuzz-seeds -- DIR`

use std::path::PathBuf;

use attest_tests::corpus::corpus;
use attest_tests::fuzz_input;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus/chain".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let mut written = 0;
    for case in corpus() {
        let leaf_cn_enrolled = [0x10u8, 0x30, 0x50];
        for flags in leaf_cn_enrolled {
            let bytes = fuzz_input(flags, case);
            std::fs::write(dir.join(format!("{}-{flags:02x}", case.id)), bytes)?;
            written += 1;
        }
    }
    println!("wrote {written} seeds to {}", dir.display());
    Ok(())
}
