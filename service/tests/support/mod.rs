//! Shared by the service's integration tests.

/// A new, empty database on the test server that `scripts/with-postgres`
/// started (the README's test command runs the suite through it).
pub(crate) fn fresh_database() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let url = std::env::var("ATTEST_TEST_POSTGRES_URL").expect(
        "ATTEST_TEST_POSTGRES_URL is not set: run the tests through scripts/with-postgres, as the README's test command does",
    );
    let name = format!(
        "attest_service_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
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
