//! CRLs as managed resources (`/attest/crls`) and revocation at decision
//! time over HTTPS: a revoked device refused while its unrevoked sibling
//! is admitted, the refusal recorded in the device's own record only (as
//! DPS records a refused device: `disabled`, with the reason); a
//! tampered CRL, a CRL from an issuer the service does not hold and a
//! replayed older CRL never installed (the last good one stays); an
//! expired CRL refusing as `crl-expired` until it is replaced; deleting a
//! CRL lifts its refusals; the same over PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod support;

use serde_json::Value;
use support::{Server, device, line_a_crl, revocation_service};

/// What device `n`'s registration came to: its status, or the HTTP status.
fn register(server: &Server, pki: &attest_pki::Canonical, n: usize) -> (String, Value) {
    let (chain, key) = device(pki, n);
    let a = server.device(&chain, &key).register(&format!("device-{n}"));
    match a.status {
        200 => (a.body["status"].as_str().unwrap().to_string(), a.body),
        s => (s.to_string(), a.body),
    }
}

fn crls_on(database: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let (server, pki) = revocation_service(dir.path(), database, false);
    assert_eq!(register(&server, &pki, 1).0, "assigned");
    assert_eq!(register(&server, &pki, 2).0, "assigned");

    // Upload line A's CRL revoking device-1 (DER).
    let crl = line_a_crl(&pki, &[1], 5, -1, 6);
    let put = server.put_crl("line-a", &crl);
    assert_eq!(put.status, 200, "{}", put.raw);
    assert_eq!(put.body["revokedCount"], 1);
    assert_eq!(put.body["crlNumber"], "05");
    assert!(put.body["issuer"].as_str().unwrap().contains("line A"));
    let etag = put.body["etag"].as_str().unwrap().to_string();

    let (status, body) = register(&server, &pki, 1);
    assert_eq!(status, "disabled", "{body}");
    let message = body["registrationState"]["errorMessage"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("revoked") && message.contains("keyCompromise"),
        "{body}"
    );
    assert_eq!(register(&server, &pki, 2).0, "assigned");
    // The refusal is device-1's own record; device-2's is untouched.
    let rec1 = server.admin("GET", "/registrations/device-1", None);
    assert_eq!(rec1.body["status"], "disabled", "{}", rec1.raw);
    let rec2 = server.admin("GET", "/registrations/device-2", None);
    assert_eq!(rec2.body["status"], "assigned", "{}", rec2.raw);

    // PEM is accepted too; the same CRL again is a no-op (same etag).
    let pem = attest_tests::pem_block("X509 CRL", &crl);
    let again = server.put_crl("line-a", pem.as_bytes());
    assert_eq!(again.status, 200, "{}", again.raw);
    assert_eq!(again.body["etag"], etag.as_str());

    // Tampered: never installed, and the last good CRL keeps refusing.
    let mut tampered = line_a_crl(&pki, &[], 6, -1, 6);
    let last = tampered.len() - 3;
    tampered[last] ^= 0x40;
    let put = server.put_crl("line-a", &tampered);
    assert_eq!(put.status, 400, "{}", put.raw);
    assert_eq!(register(&server, &pki, 1).0, "disabled");

    // Replayed: an older CRL (before device-1 was revoked) is refused.
    let older = line_a_crl(&pki, &[], 4, -2, 5);
    let put = server.put_crl("line-a", &older);
    assert_eq!(put.status, 400, "{}", put.raw);
    assert!(put.raw.contains("older"), "{}", put.raw);
    assert_eq!(register(&server, &pki, 1).0, "disabled");

    // An issuer the service holds no certificate of.
    let stranger = support::canonical();
    let foreign = line_a_crl(&stranger, &[], 1, -1, 6);
    let put = server.put_crl("foreign", &foreign);
    assert_eq!(put.status, 400, "{}", put.raw);
    // Same name, same issuer, different key: does not verify.
    let put = server.put_crl("line-a", &foreign);
    assert_eq!(put.status, 400, "{}", put.raw);

    // Not a CRL; no token; an unknown CRL.
    assert_eq!(server.put_crl("junk", b"\x30\x03\x02\x01\x00").status, 400);
    let anonymous = server
        .client()
        .call("PUT", "/attest/crls/x", crl.clone(), &[]);
    assert_eq!(anonymous.status, 401);
    assert_eq!(server.admin("GET", "/attest/crls/nope", None).status, 404);

    // A newer CRL that no longer lists device-1 (removed by the CA) lifts
    // the refusal; listing shows it.
    let newer = line_a_crl(&pki, &[], 7, 0, 6);
    let put = server.put_crl("line-a", &newer);
    assert_eq!(put.status, 200, "{}", put.raw);
    assert_eq!(register(&server, &pki, 1).0, "assigned");
    let list = server.admin("GET", "/attest/crls", None);
    assert_eq!(
        list.body["value"].as_array().unwrap().len(),
        1,
        "{}",
        list.raw
    );

    // Expired: the only CRL of line A is past nextUpdate: crl-expired.
    let expired = line_a_crl(&pki, &[], 8, -10, -1);
    let put = server.put_crl("line-a", &expired);
    assert_eq!(put.status, 200, "{}", put.raw);
    let (status, body) = register(&server, &pki, 2);
    assert_eq!(status, "disabled", "{body}");
    assert!(
        body["registrationState"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("nextUpdate"),
        "{body}"
    );

    // Deleting it: line A has no CRL, nothing is checked (configured).
    assert_eq!(
        server.admin("DELETE", "/attest/crls/line-a", None).status,
        204
    );
    assert_eq!(register(&server, &pki, 1).0, "assigned");
    assert_eq!(register(&server, &pki, 2).0, "assigned");
    assert_eq!(
        server.admin("DELETE", "/attest/crls/line-a", None).status,
        404
    );
}

#[test]
fn crls_are_managed_checked_and_honoured_over_https() {
    crls_on(None);
}

#[test]
fn crls_are_managed_checked_and_honoured_over_https_on_postgres() {
    crls_on(Some(support::fresh_database()));
}
