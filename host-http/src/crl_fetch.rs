//! Fetching CRLs from their distribution points (RFC 5280 §4.2.1.13):
//! a CRL installed with a source URL (`PUT /attest/crls/{name}` with
//! `{"url": "http://…"}`) is fetched at once, then again before its
//! nextUpdate; `POST /attest/crls/{name}/refresh` fetches it now. A fetch
//! is one HTTP(S) GET (no redirects), answered within [`FETCH_TIMEOUT`],
//! at most [`MAX_CRL_BYTES`]; what it brings is installed only as an
//! upload would be (`Service::install_crl`: parsed, signed by a CA the
//! service holds, not older than the CRL held), so a failed, tampered or
//! replayed fetch leaves the last good CRL in place. Failures back off
//! exponentially, from a minute to an hour.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::sync::watch;

use attest_service::{CrlRefused, Service};

/// Longest a fetch may take, connection to last byte.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest CRL fetched (attest's per-CRL limit).
pub(crate) const MAX_CRL_BYTES: usize = 32 << 20;
/// How often the refresher looks for CRLs due.
const TICK: Duration = Duration::from_secs(60);
/// Back-off after a failed fetch: 1 min, doubling, at most an hour.
const BACKOFF_FIRST: i64 = 60;
const BACKOFF_MAX: i64 = 3600;
/// A CRL without nextUpdate is fetched again after a day.
const DEFAULT_REFRESH: i64 = 24 * 3600;

/// When to fetch a CRL again, `now` being when it was fetched: three
/// quarters of the way from thisUpdate to nextUpdate (before it expires,
/// with time to retry), never sooner than a minute, never later than a
/// day; without nextUpdate, a day.
pub(crate) fn next_refresh(this_update: i64, next_update: Option<i64>, now: i64) -> i64 {
    let at = match next_update {
        Some(next) if next > this_update => this_update + (next - this_update) * 3 / 4,
        _ => now + DEFAULT_REFRESH,
    };
    at.clamp(now + BACKOFF_FIRST, now + DEFAULT_REFRESH)
}

/// When to try again after `failures` failed fetches in a row.
pub(crate) fn backoff(failures: u32, now: i64) -> i64 {
    let wait = BACKOFF_FIRST.saturating_mul(1i64 << failures.saturating_sub(1).min(10));
    now + wait.min(BACKOFF_MAX)
}

/// The refresh schedule of the CRLs with a source, by name.
#[derive(Default)]
pub(crate) struct Schedule {
    due: Mutex<HashMap<String, (i64, u32)>>,
}

impl Schedule {
    fn due(&self, name: &str, now: i64) -> bool {
        let due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        due.get(name).is_none_or(|(at, _)| *at <= now)
    }

    fn record(&self, name: &str, outcome: &Result<attest_service::CrlDetails, String>, now: i64) {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        let failures = due.get(name).map_or(0, |(_, f)| *f);
        let entry = match outcome {
            Ok(d) => (next_refresh(d.this_update, d.next_update, now), 0),
            Err(_) => (backoff(failures + 1, now), failures + 1),
        };
        due.insert(name.to_string(), entry);
    }
}

/// A TLS client configuration for `https` distribution points: the
/// system's roots.
pub(crate) fn client_tls() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        let _ = roots.add(cert);
    }
    Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// One GET of `url`: the body, or why not.
pub(crate) async fn fetch(url: &str, tls: Arc<rustls::ClientConfig>) -> Result<Vec<u8>, String> {
    match tokio::time::timeout(FETCH_TIMEOUT, get(url, tls)).await {
        Ok(answer) => answer,
        Err(_) => Err(format!("no answer within {}s", FETCH_TIMEOUT.as_secs())),
    }
}

async fn get(url: &str, tls: Arc<rustls::ClientConfig>) -> Result<Vec<u8>, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err("only http and https distribution points are fetched".into()),
    };
    let host = uri
        .host()
        .ok_or_else(|| "the URL has no host".to_string())?
        .trim_matches(['[', ']'])
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let authority = uri.authority().map_or(host.clone(), |a| a.to_string());
    let request = Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, "attest-crl-fetch")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = if https {
        let name = ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {host}: {e}"))?;
        send(TokioIo::new(stream), request).await?
    } else {
        send(TokioIo::new(tcp), request).await?
    };
    if response.status() != hyper::StatusCode::OK {
        return Err(format!("answered HTTP {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_CRL_BYTES)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                format!("the CRL is larger than {MAX_CRL_BYTES} bytes")
            } else {
                format!("reading the answer: {e}")
            }
        })?;
    Ok(body.to_bytes().to_vec())
}

async fn send<T>(
    io: TokioIo<T>,
    request: Request<Empty<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(conn);
    sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP: {e}"))
}

/// Fetches the CRL `name` from `url` and installs it: its details, or why
/// not (the last good CRL stays).
pub(crate) async fn refresh(
    service: &Arc<Service>,
    tls: Arc<rustls::ClientConfig>,
    name: &str,
    url: &str,
) -> Result<attest_service::CrlDetails, CrlRefused> {
    let body = fetch(url, tls)
        .await
        .map_err(|e| CrlRefused::Invalid(format!("fetching {url}: {e}")))?;
    let der = attest_service::crl_der(&body)
        .map_err(|e| CrlRefused::Invalid(format!("fetched from {url}: {e}")))?;
    let (service, name, url) = (Arc::clone(service), name.to_string(), url.to_string());
    tokio::task::spawn_blocking(move || {
        service
            .install_crl(&name, der, Some(&url), None)
            .map(|(_, details, _)| details)
    })
    .await
    .map_err(|e| CrlRefused::Store(anyhow::anyhow!("the install task failed: {e}")))?
}

/// Refreshes every CRL with a source when it is due, until `stop`.
pub(crate) async fn run(
    service: Arc<Service>,
    schedule: Arc<Schedule>,
    mut stop: watch::Receiver<bool>,
) {
    let tls = client_tls();
    loop {
        let sources = {
            let service = Arc::clone(&service);
            tokio::task::spawn_blocking(move || service.crl_sources()).await
        };
        match sources {
            Ok(Ok(sources)) => {
                for (name, url) in sources {
                    let now = attest_service::now_unix();
                    if !schedule.due(&name, now) {
                        continue;
                    }
                    let outcome = refresh(&service, Arc::clone(&tls), &name, &url)
                        .await
                        .map_err(|e| e.to_string());
                    match &outcome {
                        Ok(d) => tracing::info!(name, url, entries = d.entries, "CRL refreshed"),
                        Err(e) => {
                            tracing::warn!(
                                name,
                                url,
                                "CRL refresh failed, the last good CRL stays: {e}"
                            )
                        }
                    }
                    schedule.record(&name, &outcome, attest_service::now_unix());
                }
            }
            Ok(Err(e)) => tracing::warn!("CRL refresh: the store cannot be read: {}", e.message),
            Err(e) => tracing::warn!("CRL refresh: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_comes_before_next_update_and_backs_off_on_failure() {
        let now = 1_000_000;
        // A week's CRL issued now: within a day (the cap); 8 hours: after 6.
        assert_eq!(next_refresh(now, Some(now + 7 * 86_400), now), now + 86_400);
        assert_eq!(next_refresh(now, Some(now + 8 * 3600), now), now + 6 * 3600);
        // Already past three quarters (or past nextUpdate): a minute.
        assert_eq!(next_refresh(now - 10_000, Some(now + 100), now), now + 60);
        assert_eq!(next_refresh(now - 10_000, Some(now - 100), now), now + 60);
        // No nextUpdate: a day.
        assert_eq!(next_refresh(now, None, now), now + 86_400);
        assert_eq!(backoff(1, now), now + 60);
        assert_eq!(backoff(2, now), now + 120);
        assert_eq!(backoff(4, now), now + 480);
        assert_eq!(backoff(40, now), now + 3600);
    }
}
