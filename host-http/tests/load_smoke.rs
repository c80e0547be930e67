//! The load bench (`benches/load.rs`) on a small load: it still runs end to
//! end against a real host-http process and its bare-rustls baseline, and
//! its last line keeps the `ratios:` contract that tools rely on. Timing is
//! not checked: a debug build on a shared machine says nothing about speed.

#[path = "../benches/load.rs"]
mod load;

fn main() {
    load::main();
}
