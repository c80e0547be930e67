//! `GET /openapi.json` (the API document, docs/openapi.json) and `GET
//! /console/` (the web console: one self-contained page, no external
//! assets, that reads through the management API), on the HTTPS listener,
//! for any valid management SAS token in `Authorization`.
//!
//! The console page holds no data: without a valid token it is answered
//! 401 with the same page, which asks for a token, keeps it in the tab's
//! `sessionStorage` and sends it with each API call it makes.

use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use attest_service::Service;

use crate::http::{Body, full, respond};
use crate::server::Connection;

/// The console page.
const CONSOLE: &str = include_str!("console.html");

/// The console's Content-Security-Policy: its own inline script and style
/// only (by their SHA-256: an injected script would not run), calls to
/// this origin only, no frames, no forms posted anywhere.
fn csp() -> &'static str {
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSP.get_or_init(|| {
        format!(
            "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; \
             img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            inline_hash("script"),
            inline_hash("style")
        )
    })
}

/// `sha256-…` of the console's one inline `<tag>` element's text.
fn inline_hash(tag: &str) -> String {
    use base64::Engine as _;
    let open = format!("<{tag}>");
    let text = CONSOLE
        .split_once(&open)
        .and_then(|(_, rest)| rest.split_once(&format!("</{tag}>")))
        .map_or("", |(inner, _)| inner);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    )
}

pub(crate) fn handle<B>(
    service: &Service,
    connection: &Connection,
    req: &Request<B>,
    path: &str,
) -> Response<Body> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut r = Response::new(full("GET only\n"));
        *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        r.headers_mut()
            .insert("allow", HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let authorized = service.authorize(header, None);
    if authorized.is_ok() {
        connection.prove();
    }
    if path.trim_matches('/').eq_ignore_ascii_case("openapi.json") {
        return match authorized {
            Ok(_) => {
                let mut r = Response::new(full(crate::OPENAPI));
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/json; charset=utf-8"),
                );
                r
            }
            Err(e) => respond(Err(e)),
        };
    }
    let mut r = Response::new(full(CONSOLE));
    if authorized.is_err() {
        *r.status_mut() = StatusCode::UNAUTHORIZED;
    }
    let headers = r.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // (Never without a policy: the strictest one if it could not be built.)
    let csp =
        HeaderValue::from_str(csp()).unwrap_or(HeaderValue::from_static("default-src 'none'"));
    headers.insert("content-security-policy", csp);
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    r
}
