//! CRLs as managed resources (`/attest/crls`) and revocation at decision
//! time over HTTPS: a revoked device refused while its unrevoked sibling
//! is admitted, the refusal recorded in the device's own record only (as
//! DPS records a refused device: `disabled`, with the reason); a
//! tampered CRL, a CRL from an issuer the service does not hold and a
//! replayed older CRL never installed (the last good one stays); an
//! expired CRL refusing as `crl-expired` until it is replaced; deleting a
//! CRL lifts its refusals; the same over PostgreSQL; CRLs fetched from a
//! distribution point (a local HTTP server) and refreshed, where what it
//! serves is installed only as an upload would be.

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

/// A tiny HTTP server on loopback serving what `body` holds at any path
/// (`/missing` answers 404), counting the requests.
struct DistributionPoint {
    url: String,
    body: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl DistributionPoint {
    fn start() -> DistributionPoint {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/line-a.crl", listener.local_addr().unwrap());
        let body = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (served, counted) = (body.clone(), hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = [0u8; 4096];
                let n = stream.read(&mut request).unwrap_or(0);
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let missing = request[..n].starts_with(b"GET /missing");
                let payload = if missing {
                    Vec::new()
                } else {
                    served.lock().unwrap().clone()
                };
                let status = if missing { "404 Not Found" } else { "200 OK" };
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        payload.len()
                    )
                    .as_bytes(),
                );
                let _ = stream.write_all(&payload);
            }
        });
        DistributionPoint { url, body, hits }
    }

    fn serve(&self, bytes: Vec<u8>) {
        *self.body.lock().unwrap() = bytes;
    }
}

/// `PUT /attest/crls/{name}` with `{"url"}` fetches the CRL from its
/// distribution point and installs it like an upload; `refresh` fetches it
/// again; a tampered, replayed, oversized or missing CRL there is never
/// installed and the last good one keeps deciding.
#[test]
fn crls_are_fetched_from_their_distribution_point() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pki) = revocation_service(dir.path(), None, false);
    let point = DistributionPoint::start();
    point.serve(line_a_crl(&pki, &[1], 5, -1, 6));
    let subscribe = |url: &str| {
        server.client().call(
            "PUT",
            "/attest/crls/line-a",
            serde_json::json!({ "url": url }).to_string().into_bytes(),
            &[("authorization", &server.token())],
        )
    };
    let refresh = || server.admin("POST", "/attest/crls/line-a/refresh", None);
    let put = subscribe(&point.url);
    assert_eq!(put.status, 200, "{}", put.raw);
    assert_eq!(put.body["source"], point.url.as_str());
    assert_eq!(put.body["revokedCount"], 1);
    assert_eq!(register(&server, &pki, 1).0, "disabled");
    assert_eq!(register(&server, &pki, 2).0, "assigned");

    // The CA re-issues its CRL without device-1: a refresh installs it.
    point.serve(attest_tests::pem_block("X509 CRL", &line_a_crl(&pki, &[], 6, 0, 6)).into_bytes());
    let r = refresh();
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["crlNumber"], "06");
    assert_eq!(register(&server, &pki, 1).0, "assigned");

    // What the distribution point serves next is not installed when it is
    // tampered, older, too large or gone; CRL 06 keeps deciding.
    let mut tampered = line_a_crl(&pki, &[2], 7, 0, 6);
    let at = tampered.len() - 3;
    tampered[at] ^= 0x40;
    for (what, bytes) in [
        ("tampered", tampered),
        ("older", line_a_crl(&pki, &[2], 4, -2, 5)),
        ("too large", vec![0x30; 33 << 20]),
        ("garbage", b"<html>not a CRL</html>".to_vec()),
    ] {
        point.serve(bytes);
        let r = refresh();
        assert_eq!(r.status, 400, "{what}: {}", r.raw);
        let held = server.admin("GET", "/attest/crls/line-a", None);
        assert_eq!(held.body["crlNumber"], "06", "{what}: {}", held.raw);
        assert_eq!(register(&server, &pki, 2).0, "assigned", "{what}");
    }
    let gone = subscribe(&point.url.replace("/line-a.crl", "/missing"));
    assert_eq!(gone.status, 400, "{}", gone.raw);
    assert!(gone.raw.contains("404"), "{}", gone.raw);
    // A distribution point nobody answers at.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/x.crl", closed.local_addr().unwrap());
    drop(closed);
    assert_eq!(subscribe(&dead).status, 400);
    assert_eq!(
        server.admin("GET", "/attest/crls/line-a", None).body["crlNumber"],
        "06"
    );

    // Only http(s); an uploaded CRL has nothing to refresh from.
    assert_eq!(subscribe("ftp://example.invalid/x.crl").status, 400);
    let now = time::OffsetDateTime::now_utc();
    let root_crl = pki
        .root
        .crl(
            &[],
            now - time::Duration::days(1),
            now + time::Duration::days(6),
            1,
        )
        .unwrap();
    // The root is the group's signing certificate: it verifies the root's CRL.
    assert_eq!(server.put_crl("root", &root_crl).status, 200);
    let r = server.admin("POST", "/attest/crls/root/refresh", None);
    assert_eq!(r.status, 409, "{}", r.raw);
    assert_eq!(
        server
            .admin("POST", "/attest/crls/nope/refresh", None)
            .status,
        404
    );
    assert!(point.hits.load(std::sync::atomic::Ordering::SeqCst) >= 7);
}
