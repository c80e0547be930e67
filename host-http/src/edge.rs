//! attest's own routes for edge gateways, beside the DPS API,
//! SAS-authenticated:
//!
//! - `GET /attest/snapshot[?since=N]` (right `SnapshotRead`): the edge
//!   snapshot, streamed (`application/x-ndjson`, see
//!   `attest_service::snapshot`): written from one store snapshot on a
//!   blocking thread, a chunk at a time, through a small channel, so a
//!   slow gateway holds back the writer instead of filling memory.
//! - `POST /attest/edgeDecisions` (right `EdgeDecisionWrite`): the
//!   decisions a gateway made offline (`attest_service::edge`); audited.
//! - `POST /attest/decide` (right `EnrollmentRead`): the decision the
//!   service would make now on a pasted chain (the console's).
//! - `GET /attest/hierarchy` (right `ServiceConfig`): the trust hierarchy
//!   the console draws.
//! - `GET /attest/crls`, `PUT|GET|DELETE /attest/crls/{name}`, `POST
//!   /attest/crls/{name}/refresh` (right `ServiceConfig`): the CRLs
//!   decisions check (`PUT` body: the CRL, DER or PEM, at most 32 MiB, or
//!   `{"url": …}` to fetch it from a distribution point and keep it fresh,
//!   `crl_fetch`); writes audited.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Frame, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response};

use attest_dps::sas::Right;
use attest_dps::{DpsError, ErrorKind};
use attest_service::Service;
use attest_service::audit::ManagementEvent;
use attest_service::snapshot::MEDIA_TYPE;

use attest_dps::query::json_body;

use crate::http::{Body, MAX_MANAGEMENT_BODY, blocking, read_body, respond};
use crate::server::{Connection, Streaming};

/// Largest CRL body accepted (attest's per-CRL limit).
const MAX_CRL_BODY: usize = 32 << 20;

/// `/attest/crls[/{name}[/refresh]]`.
async fn crls(
    service: Arc<Service>,
    connection: &Arc<Connection>,
    req: Request<Incoming>,
    segments: &[String],
    authorization: Option<String>,
) -> Result<Response<Body>, DpsError> {
    let method = req.method().clone();
    let name = segments.get(2).cloned().unwrap_or_default();
    let action = segments.get(3).map(|a| a.to_ascii_lowercase());
    let route = match (&method, segments.len(), action.as_deref()) {
        (&Method::GET, 2, None) => "GET /attest/crls",
        (&Method::GET, 3, None) => "GET /attest/crls/{name}",
        (&Method::PUT, 3, None) => "PUT /attest/crls/{name}",
        (&Method::DELETE, 3, None) => "DELETE /attest/crls/{name}",
        (&Method::POST, 4, Some("refresh")) => "POST /attest/crls/{name}/refresh",
        _ => {
            return Err(DpsError::new(
                ErrorKind::NotFound,
                format!("no attest resource {method} /{}", segments.join("/")),
            ));
        }
    };
    let policy = service.authorize(authorization.as_deref(), Some(Right::ServiceConfig))?;
    connection.prove();
    let if_match = req
        .headers()
        .get("if-match")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = if method == Method::PUT {
        read_body(req, MAX_CRL_BODY).await?
    } else {
        Bytes::new()
    };
    let peer = connection.evidence.peer;
    // A fetched CRL: `{"url": …}` to subscribe, or a refresh of one.
    let url = match route {
        "PUT /attest/crls/{name}" if body.trim_ascii_start().starts_with(b"{") => {
            Some(subscription_url(&body)?)
        }
        "POST /attest/crls/{name}/refresh" => {
            let service = Arc::clone(&service);
            let name = name.clone();
            let source = tokio::task::spawn_blocking(move || service.crl_source(&name))
                .await
                .map_err(|_| DpsError::new(ErrorKind::Internal, "the CRL could not be read"))??;
            Some(source)
        }
        _ => None,
    };
    let fetched = match &url {
        Some(url) => {
            attest_dps::ids::check_certificate_name(&name)
                .map_err(|m| DpsError::new(ErrorKind::BadRequest, m))?;
            Some(
                crate::crl_fetch::refresh(&service, crate::crl_fetch::client_tls(), &name, url)
                    .await,
            )
        }
        None => None,
    };
    let answer = blocking(move || {
        let if_match = if_match.as_deref();
        let answer = match (route, fetched) {
            (_, Some(Err(refused))) => service.crl_installed(&name, Err(refused)),
            (_, Some(Ok(_))) => service.get_crl(&name),
            ("GET /attest/crls", None) => service.list_crls(),
            ("GET /attest/crls/{name}", None) => service.get_crl(&name),
            ("PUT /attest/crls/{name}", None) => service.put_crl(&name, &body, if_match),
            _ => service.delete_crl(&name, if_match),
        };
        if method == Method::GET {
            return answer;
        }
        crate::management::audit_write(&service, &policy, route, Some(&name), peer, &answer)?;
        answer
    })
    .await;
    answer.map(|reply| respond(Ok(reply)))
}

/// The distribution point of a `PUT /attest/crls/{name}` subscription
/// body, `{"url": "http://…"}`.
fn subscription_url(body: &[u8]) -> Result<String, DpsError> {
    let bad = |m: String| DpsError::new(ErrorKind::BadRequest, m);
    let value = json_body(body)?;
    let fields: Vec<&String> = value
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    match (value.get("url").and_then(|u| u.as_str()), fields.as_slice()) {
        (Some(url), [_]) if url.starts_with("http://") || url.starts_with("https://") => {
            Ok(url.to_string())
        }
        (Some(url), [_]) => Err(bad(format!(
            "url {url:?}: only http and https distribution points are fetched"
        ))),
        _ => Err(bad(
            "a CRL body is the CRL (DER or PEM), or {\"url\": \"http://…\"} to fetch it from its distribution point".into(),
        )),
    }
}

/// Chunks in flight between the store reader and the socket.
const CHANNEL: usize = 8;
/// Longest a gateway may stop reading a snapshot.
const STALL: std::time::Duration = std::time::Duration::from_secs(60);

pub(crate) async fn handle(
    service: Arc<Service>,
    connection: &Arc<Connection>,
    req: Request<Incoming>,
    segments: &[String],
) -> Result<Response<Body>, DpsError> {
    let lowered: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let route: Vec<&str> = lowered.iter().map(String::as_str).collect();
    if let ["attest", "crls", ..] = route.as_slice() {
        let service = Arc::clone(&service);
        return crls(service, connection, req, segments, header).await;
    }
    let right = match (req.method(), route.as_slice()) {
        (&Method::GET, ["attest", "snapshot"]) => Some(Right::SnapshotRead),
        (&Method::POST, ["attest", "edgedecisions"]) => Some(Right::EdgeDecisionWrite),
        (&Method::POST, ["attest", "decide"]) => Some(Right::EnrollmentRead),
        (&Method::GET, ["attest", "hierarchy"]) => Some(Right::ServiceConfig),
        _ => None,
    };
    let gateway = service.authorize(header.as_deref(), right)?;
    connection.prove();
    match right {
        Some(Right::SnapshotRead) => {}
        Some(Right::ServiceConfig) => {
            let answer = blocking(move || service.trust_hierarchy()).await;
            return answer.map(|reply| respond(Ok(reply)));
        }
        Some(Right::EnrollmentRead) => {
            let body = json_body(&read_body(req, MAX_MANAGEMENT_BODY).await?)?;
            let answer = blocking(move || service.decide_chain(&body)).await;
            return answer.map(|reply| respond(Ok(reply)));
        }
        Some(_) => {
            let body = json_body(&read_body(req, MAX_MANAGEMENT_BODY).await?)?;
            let peer = connection.evidence.peer;
            let answer = blocking(move || {
                let answer = service.edge_decisions(&gateway, &body);
                let (status, code) = match &answer {
                    Ok(reply) => (reply.status, None),
                    Err(e) => (e.kind.status(), Some(e.kind.code().to_string())),
                };
                service.audit_management(&ManagementEvent {
                    policy: Some(&gateway),
                    route: "POST /attest/edgeDecisions",
                    resource: None,
                    status,
                    code: code.as_deref(),
                    etag_before: None,
                    etag_after: None,
                    peer,
                })?;
                answer
            })
            .await;
            return answer.map(|reply| respond(Ok(reply)));
        }
        None => {
            return Err(DpsError::new(
                ErrorKind::NotFound,
                format!(
                    "no attest resource {} /{}",
                    req.method(),
                    segments.join("/")
                ),
            ));
        }
    }
    let since = since_of(req.uri().query())?;
    connection.metrics.snapshot(since.is_some());
    let opened = {
        let service = Arc::clone(&service);
        tokio::task::spawn_blocking(move || service.snapshot(since))
            .await
            .map_err(|_| DpsError::new(ErrorKind::Internal, "the snapshot could not be opened"))??
    };
    let version = opened.header().version;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHANNEL);
    let busy = Streaming::begin(connection);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _busy = busy;
        // A gateway that stops reading for STALL is dropped: the stream
        // must not hold its read transaction and thread for ever.
        let mut sink = |chunk: Vec<u8>| {
            runtime
                .block_on(tx.send_timeout(Ok(Bytes::from(chunk)), STALL))
                .map_err(|e| match e {
                    tokio::sync::mpsc::error::SendTimeoutError::Timeout(_) => {
                        anyhow::anyhow!("the gateway stopped reading for {STALL:?}")
                    }
                    tokio::sync::mpsc::error::SendTimeoutError::Closed(_) => {
                        anyhow::anyhow!("the gateway went away")
                    }
                })
        };
        match opened.write(&mut sink) {
            Ok(records) => tracing::info!(version, records, "snapshot sent"),
            Err(e) => {
                tracing::warn!(version, "snapshot stream ended early: {e:#}");
                // The stream ends without its signature: the reader refuses it.
                let _ = tx.try_send(Err(std::io::Error::other(format!("{e:#}"))));
            }
        }
    });
    let mut response = Response::new(ChannelBody(rx).boxed());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    headers.insert("x-attest-snapshot-version", HeaderValue::from(version));
    Ok(response)
}

/// `since=N` of a query string.
fn since_of(query: Option<&str>) -> Result<Option<u64>, DpsError> {
    let mut since = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("since", n)) => {
                since = Some(n.parse::<u64>().map_err(|_| {
                    DpsError::new(
                        ErrorKind::BadRequest,
                        format!("since={n:?} is not a snapshot version (a whole number)"),
                    )
                })?);
            }
            _ => {
                return Err(DpsError::new(
                    ErrorKind::BadRequest,
                    format!("unknown query parameter {pair:?} (the snapshot takes since=N)"),
                ));
            }
        }
    }
    Ok(since)
}

/// A response body fed by a channel.
struct ChannelBody(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|c| c.map(|c| c.map(Frame::data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_whole_number_and_nothing_else_is_taken() {
        assert_eq!(since_of(None).unwrap(), None);
        assert_eq!(since_of(Some("since=12")).unwrap(), Some(12));
        for bad in ["since=-1", "since=x", "since=", "full=1", "since=1&x=2"] {
            assert!(since_of(Some(bad)).is_err(), "{bad}");
        }
    }
}
