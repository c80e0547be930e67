//! The fixed cost of one component call, in a loop with nothing else, for
//! a profiler: `cargo build --release -p attest-tests --example
//! call-overhead && perf record -g target/release/examples/call-overhead`.
//! Prints the mean time per call (timing belongs to the criterion bench;
//! this is for finding where it goes).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // an example fails by panicking

use std::hint::black_box;
use std::time::Instant;

fn main() {
    let calls: u32 = std::env::args()
        .nth(1)
        .map_or(200_000, |n| n.parse().expect("a number of calls"));
    let policy = policy_host::Policy::new().expect("policy component loads");
    let started = Instant::now();
    for _ in 0..calls {
        black_box(
            policy
                .challenge_message(black_box("bench-device"), &[7; 32])
                .unwrap()
                .unwrap(),
        );
    }
    println!(
        "{calls} calls, {:.2} µs per call",
        started.elapsed().as_secs_f64() * 1e6 / f64::from(calls)
    );
}
