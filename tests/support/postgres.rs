//! The PostgreSQL server `scripts/with-postgres` starts for the test suite
//! and the benchmarks (the README's test command runs through it).

use std::sync::atomic::{AtomicUsize, Ordering};

/// A new, empty database on that server, named `{prefix}_{pid}_{n}`; its URL.
pub fn fresh_database(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let url = std::env::var("ATTEST_TEST_POSTGRES_URL").expect(
        "ATTEST_TEST_POSTGRES_URL is not set: run through scripts/with-postgres, as the README's test command does",
    );
    let name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("the test server");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("CREATE DATABASE");
    format!(
        "{}/{name}",
        url.rsplit_once('/').expect("a database in the URL").0
    )
}
