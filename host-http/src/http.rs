//! HTTP framing: request bodies in, [`Reply`] and [`DpsError`] out, and the
//! first routing step (device API or management API).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};

use attest_dps::{DpsError, ErrorKind};
use attest_service::{Answer, Reply, Service};

use crate::server::Connection;

/// Largest device API request body, bytes: a registration ID and an
/// optional payload.
pub const MAX_BODY: usize = 64 * 1024;
/// Largest management API request body, bytes (read only after the SAS
/// token is verified): a bulk operation carries up to 1,000 enrollments
/// with their certificates.
pub const MAX_MANAGEMENT_BODY: usize = 4 << 20;
/// Time allowed for a request body (at most [`MAX_BODY`] bytes): a client
/// trickling bytes must not hold a connection slot for ever.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// A response body: a whole one, or a stream (an edge snapshot).
pub(crate) type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// A whole response body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Routes a request: management resources by their first segment,
/// everything else with an ID scope to the device API.
pub(crate) async fn route(
    service: Arc<Service>,
    connection: Arc<Connection>,
    req: Request<Incoming>,
) -> Response<Body> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let first = segments.first().map(|s| s.to_ascii_lowercase());
    let api = match first.as_deref() {
        Some(
            "enrollments" | "enrollmentgroups" | "registrations" | "certificates" | "openapi.json"
            | "console",
        ) => "management",
        Some("attest") => "edge",
        _ => "device",
    };
    let metrics = std::sync::Arc::clone(&connection.metrics);
    let answer = match first.as_deref() {
        Some("openapi.json" | "console") if segments.len() == 1 => {
            let response = crate::console::handle(&service, &connection, &req, &path);
            tracing::info!(%method, %path, status = response.status().as_u16(), ms = started.elapsed().as_millis() as u64, "request");
            return response;
        }
        Some("enrollments" | "enrollmentgroups" | "registrations" | "certificates") => {
            crate::management::handle(service, &connection, req, segments).await
        }
        Some("attest") => match crate::edge::handle(service, &connection, req, &segments).await {
            Ok(response) => {
                tracing::info!(%method, %path, status = response.status().as_u16(), ms = started.elapsed().as_millis() as u64, "request");
                if response.status() == StatusCode::SERVICE_UNAVAILABLE {
                    metrics.unavailable(api);
                }
                return response;
            }
            Err(e) => Err(e),
        },
        Some(scope) if !scope.is_empty() && segments.len() >= 3 => {
            let answer = crate::device::handle(service, &connection, req, segments).await;
            if answer.is_ok() {
                connection.prove();
            }
            answer
        }
        _ => Err(DpsError::new(
            ErrorKind::NotFound,
            format!("no resource at {path}"),
        )),
    };
    let response = respond(answer);
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        metrics.unavailable(api);
    }
    tracing::info!(
        %method,
        %path,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

/// Runs one service call off the reactor (the store and the component are
/// synchronous): one hop per request.
pub(crate) async fn blocking(f: impl FnOnce() -> Answer + Send + 'static) -> Answer {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        tracing::error!("request task: {e}");
        Err(DpsError::new(
            ErrorKind::Internal,
            "the request could not be completed",
        ))
    })
}

/// Reads a request body of at most `limit` bytes.
pub(crate) async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, DpsError> {
    let read = Limited::new(req.into_body(), limit).collect();
    let Ok(collected) = tokio::time::timeout(BODY_TIMEOUT, read).await else {
        return Err(DpsError::new(
            ErrorKind::RequestTimeout,
            format!("request body not received within {BODY_TIMEOUT:?}"),
        ));
    };
    match collected {
        Ok(b) => Ok(b.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(DpsError::new(
                ErrorKind::PayloadTooLarge,
                format!("request body exceeds {limit} bytes"),
            ))
        }
        Err(e) => Err(DpsError::new(
            ErrorKind::MalformedBody,
            format!("request body could not be read: {e}"),
        )),
    }
}

/// The HTTP response for a service answer.
pub(crate) fn respond(answer: Answer) -> Response<Body> {
    match answer {
        Ok(reply) => reply_response(reply),
        Err(error) => error_response(&error),
    }
}

fn reply_response(reply: Reply) -> Response<Body> {
    let mut r = match &reply.body {
        Some(body) => json_response(&body.to_string()),
        None => Response::new(full(Bytes::new())),
    };
    *r.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let headers = r.headers_mut();
    let mut set = |name: &'static str, value: Option<&str>| {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, v);
        }
    };
    set("etag", reply.etag.as_deref());
    set("x-ms-continuation", reply.continuation.as_deref());
    set("x-ms-item-type", reply.item_type);
    if let Some(n) = reply.max_item_count {
        r.headers_mut()
            .insert("x-ms-max-item-count", HeaderValue::from(n));
    }
    r
}

/// A DPS error: the DPS body and the `x-ms-error-code` header (and
/// `retry-after` where the error says when to retry).
fn error_response(error: &DpsError) -> Response<Body> {
    // A tracking ID correlates the answer with the log line; without
    // system randomness the answer goes out without one.
    let tracking = attest_service::random_id().unwrap_or_default();
    tracing::debug!(code = error.kind.code(), tracking = %tracking, "{}", error.message);
    let mut r = json_response(
        &error
            .body(&tracking, &attest_service::now_rfc3339())
            .to_string(),
    );
    *r.status_mut() =
        StatusCode::from_u16(error.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert("x-ms-error-code", HeaderValue::from(error.kind.code()));
    if let Some(seconds) = error.retry_after() {
        r.headers_mut()
            .insert("retry-after", HeaderValue::from(seconds));
    }
    r
}

fn json_response(text: &str) -> Response<Body> {
    let mut r = Response::new(full(text.to_string()));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}
