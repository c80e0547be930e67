//! The DPS management API routes (SAS-token authenticated):
//!
//! - `POST /enrollments` (bulk operation),
//!   `PUT|GET|DELETE /enrollments/{registrationId}`, `POST /enrollments/query`,
//!   `POST /enrollments/{registrationId}/attestationmechanism`
//! - `PUT|GET|DELETE /enrollmentGroups/{id}`, `POST /enrollmentGroups/query`,
//!   `POST /enrollmentGroups/{id}/attestationmechanism`
//! - `GET|DELETE /registrations/{registrationId}`, `POST /registrations/{groupId}/query`
//! - `GET /certificates`, `PUT|GET|DELETE /certificates/{name}`,
//!   `POST /certificates/{name}/generateVerificationCode`,
//!   `POST /certificates/{name}/verify`

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Method, Request};

use attest_dps::query::{Paging, json_body};
use attest_dps::sas::Right;
use attest_dps::{DpsError, ErrorKind};
use attest_service::audit::ManagementEvent;
use attest_service::{Answer, Service};
use policy_host::EnrollmentKind::{Group, Individual};

use crate::http::{MAX_MANAGEMENT_BODY, blocking, read_body};
use crate::server::Connection;

pub(crate) async fn handle(
    service: Arc<Service>,
    connection: &Connection,
    req: Request<Incoming>,
    segments: Vec<String>,
) -> Answer {
    let mut lowered = segments.clone();
    lowered[0] = lowered[0].to_ascii_lowercase();
    if let [_, _, action] = lowered.as_mut_slice() {
        *action = action.to_ascii_lowercase();
    }
    let route = route_template(req.method(), &lowered);
    let answer = serve(service, connection, req, segments, lowered, route).await;
    let status = match &answer {
        Ok(reply) => reply.status,
        Err(e) => e.kind.status(),
    };
    connection.metrics.management(route, status);
    answer
}

async fn serve(
    service: Arc<Service>,
    connection: &Connection,
    req: Request<Incoming>,
    segments: Vec<String>,
    lowered: Vec<String>,
    route: &'static str,
) -> Answer {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    // Resource names are case-insensitive (the Node SDK writes
    // `/enrollmentgroups/…/attestationmechanism`); IDs are not.
    let method = req.method().clone();
    let policy = service.authorize(
        header(AUTHORIZATION.as_str()).as_deref(),
        right_for(&method, &lowered),
    )?;
    // An authenticated operator keeps the connection's slot.
    connection.prove();
    let if_match = header("if-match");
    let paging = Paging {
        max_item_count: header("x-ms-max-item-count"),
        continuation: header("x-ms-continuation"),
    };
    let body = json_body(&read_body(req, MAX_MANAGEMENT_BODY).await?)?;
    let write = !is_read(&method, &lowered);
    let resource = segments.get(1).cloned();
    let peer = connection.evidence.peer;
    let audited = Arc::clone(&service);
    let answer = blocking(move || {
        let s: Vec<&str> = lowered.iter().map(String::as_str).collect();
        let if_match = if_match.as_deref();
        // Served exactly as `route_template` names it (the table of
        // ROUTES, which docs/openapi.json documents).
        let id = s.get(1).copied().unwrap_or_default();
        match route {
            "POST /enrollments" => service.bulk_enrollments(&body),
            "POST /enrollments/query" => service.query_enrollments(Individual, &body, &paging),
            "POST /enrollmentGroups/query" => service.query_enrollments(Group, &body, &paging),
            "PUT /enrollments/{id}" => service.put_enrollment(Individual, id, &body, if_match),
            "PUT /enrollmentGroups/{id}" => service.put_enrollment(Group, id, &body, if_match),
            "POST /enrollments/{id}/attestationmechanism" => {
                service.attestation_mechanism(Individual, id)
            }
            "POST /enrollmentGroups/{id}/attestationmechanism" => {
                service.attestation_mechanism(Group, id)
            }
            "GET /enrollments/{id}" => service.get_enrollment(Individual, id),
            "GET /enrollmentGroups/{id}" => service.get_enrollment(Group, id),
            "DELETE /enrollments/{id}" => service.delete_enrollment(Individual, id, if_match),
            "DELETE /enrollmentGroups/{id}" => service.delete_enrollment(Group, id, if_match),
            "GET /registrations/{id}" => service.get_registration(id),
            "DELETE /registrations/{id}" => service.delete_registration(id, if_match),
            "POST /registrations/{id}/query" => service.query_registrations(id, &body, &paging),
            "GET /certificates" => service.list_certificates(),
            "PUT /certificates/{name}" => service.put_certificate(id, &body, if_match),
            "GET /certificates/{name}" => service.get_certificate(id),
            "DELETE /certificates/{name}" => service.delete_certificate(id, if_match),
            "POST /certificates/{name}/generateVerificationCode" => {
                service.generate_verification_code(id, if_match)
            }
            "POST /certificates/{name}/verify" => service.verify_certificate(id, &body, if_match),
            _ => Err(DpsError::new(
                ErrorKind::NotFound,
                format!(
                    "no management API resource {method} /{}",
                    segments.join("/")
                ),
            )),
        }
    })
    .await;
    if !write {
        return answer;
    }
    // An authorised write, done or refused, is in the audit trail before
    // it is answered (a line that cannot be written is a 503).
    blocking(move || {
        audit_write(&audited, &policy, route, resource.as_deref(), peer, &answer)?;
        answer
    })
    .await
}

/// Writes the audit line of an authorised write, done or refused: its
/// status (or error code) and the entity's etag before and after.
pub(crate) fn audit_write(
    service: &Service,
    policy: &str,
    route: &str,
    resource: Option<&str>,
    peer: Option<std::net::IpAddr>,
    answer: &Answer,
) -> Result<(), DpsError> {
    let (status, code, before, after) = match answer {
        Ok(reply) => (
            reply.status,
            None,
            reply.replaced_etag.clone(),
            reply.etag.clone().or_else(|| {
                reply
                    .body
                    .as_ref()
                    .and_then(|b| b.get("etag"))
                    .and_then(|e| e.as_str())
                    .map(str::to_string)
            }),
        ),
        Err(e) => (e.kind.status(), Some(e.kind.code().to_string()), None, None),
    };
    service.audit_management(&ManagementEvent {
        policy: Some(policy),
        route,
        resource,
        status,
        code: code.as_deref(),
        etag_before: before.as_deref(),
        etag_after: after.as_deref(),
        peer,
    })
}

/// Whether a management route only reads: GET, and the POSTs that query
/// or read an attestation mechanism.
fn is_read(method: &Method, lowered: &[String]) -> bool {
    let s: Vec<&str> = lowered.iter().map(String::as_str).collect();
    matches!(*method, Method::GET)
        || (*method == Method::POST
            && matches!(
                s.as_slice(),
                [_, "query"] | [_, _, "query"] | [_, _, "attestationmechanism"]
            ))
}

/// Every management API route, as `METHOD /path/{param}`: what the router
/// serves, and what docs/openapi.json documents (a test holds them equal).
pub(crate) const ROUTES: [&str; 29] = [
    "POST /enrollments",
    "POST /enrollments/query",
    "PUT /enrollments/{id}",
    "GET /enrollments/{id}",
    "DELETE /enrollments/{id}",
    "POST /enrollments/{id}/attestationmechanism",
    "POST /enrollmentGroups/query",
    "PUT /enrollmentGroups/{id}",
    "GET /enrollmentGroups/{id}",
    "DELETE /enrollmentGroups/{id}",
    "POST /enrollmentGroups/{id}/attestationmechanism",
    "GET /registrations/{id}",
    "DELETE /registrations/{id}",
    "POST /registrations/{id}/query",
    "GET /certificates",
    "PUT /certificates/{name}",
    "GET /certificates/{name}",
    "DELETE /certificates/{name}",
    "POST /certificates/{name}/generateVerificationCode",
    "POST /certificates/{name}/verify",
    // attest's own, beside the DPS API (edge.rs, http.rs).
    "GET /attest/snapshot",
    "POST /attest/edgeDecisions",
    "POST /attest/decide",
    "GET /attest/hierarchy",
    "GET /attest/crls",
    "PUT /attest/crls/{name}",
    "GET /attest/crls/{name}",
    "DELETE /attest/crls/{name}",
    "POST /attest/crls/{name}/refresh",
];

/// The route a request is for, with its resource names as parameters: a
/// metrics label and the audit trail's `route` (never the names
/// themselves). `other` for anything that is no route.
pub(crate) fn route_template(method: &Method, lowered: &[String]) -> &'static str {
    let s: Vec<&str> = lowered.iter().map(String::as_str).collect();
    match (method.as_str(), s.as_slice()) {
        ("POST", ["enrollments"]) => "POST /enrollments",
        ("POST", ["enrollments", "query"]) => "POST /enrollments/query",
        ("PUT", ["enrollments", _]) => "PUT /enrollments/{id}",
        ("GET", ["enrollments", _]) => "GET /enrollments/{id}",
        ("DELETE", ["enrollments", _]) => "DELETE /enrollments/{id}",
        ("POST", ["enrollments", _, "attestationmechanism"]) => {
            "POST /enrollments/{id}/attestationmechanism"
        }
        ("POST", ["enrollmentgroups", "query"]) => "POST /enrollmentGroups/query",
        ("PUT", ["enrollmentgroups", _]) => "PUT /enrollmentGroups/{id}",
        ("GET", ["enrollmentgroups", _]) => "GET /enrollmentGroups/{id}",
        ("DELETE", ["enrollmentgroups", _]) => "DELETE /enrollmentGroups/{id}",
        ("POST", ["enrollmentgroups", _, "attestationmechanism"]) => {
            "POST /enrollmentGroups/{id}/attestationmechanism"
        }
        ("GET", ["registrations", _]) => "GET /registrations/{id}",
        ("DELETE", ["registrations", _]) => "DELETE /registrations/{id}",
        ("POST", ["registrations", _, "query"]) => "POST /registrations/{id}/query",
        ("GET", ["certificates"]) => "GET /certificates",
        ("PUT", ["certificates", _]) => "PUT /certificates/{name}",
        ("GET", ["certificates", _]) => "GET /certificates/{name}",
        ("DELETE", ["certificates", _]) => "DELETE /certificates/{name}",
        ("POST", ["certificates", _, "generateverificationcode"]) => {
            "POST /certificates/{name}/generateVerificationCode"
        }
        ("POST", ["certificates", _, "verify"]) => "POST /certificates/{name}/verify",
        _ => "other",
    }
}

/// The right a management route needs (DPS's shared access policy rights):
/// enrollments and groups are read with EnrollmentRead and changed with
/// EnrollmentWrite, registration records read with RegistrationStatusRead
/// and deleted with RegistrationStatusWrite, CA certificates (which decide
/// what groups may trust) need ServiceConfig. `None` for a path that is no
/// resource (any valid token, then 404).
fn right_for(method: &Method, lowered: &[String]) -> Option<Right> {
    let read = is_read(method, lowered);
    match lowered.first().map(String::as_str) {
        Some("enrollments" | "enrollmentgroups") if read => Some(Right::EnrollmentRead),
        Some("enrollments" | "enrollmentgroups") => Some(Right::EnrollmentWrite),
        Some("registrations") if read => Some(Right::RegistrationStatusRead),
        Some("registrations") => Some(Right::RegistrationStatusWrite),
        Some("certificates") => Some(Right::ServiceConfig),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each DPS route of the table is what `route_template` names for a
    /// request to it (any letter case of the resource names), and nothing
    /// else is.
    #[test]
    fn the_route_table_is_what_the_router_serves() {
        for route in ROUTES.iter().filter(|r| !r.contains("/attest/")) {
            let (method, path) = route.split_once(' ').unwrap();
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            for case in [
                str::to_string,
                str::to_ascii_uppercase,
                str::to_ascii_lowercase,
            ] {
                let concrete = path.replace("{id}", "Some-ID").replace("{name}", "ca-1");
                // Resource names and actions in any case (the router lowers
                // them); a literal `query` and the IDs as sent.
                let mut lowered: Vec<String> = concrete
                    .trim_matches('/')
                    .split('/')
                    .enumerate()
                    .map(|(i, s)| if i == 1 { s.to_string() } else { case(s) })
                    .collect();
                lowered[0] = lowered[0].to_ascii_lowercase();
                if let [_, _, action] = lowered.as_mut_slice() {
                    *action = action.to_ascii_lowercase();
                }
                assert_eq!(route_template(&method, &lowered), *route, "{concrete}");
            }
        }
        for (method, path) in [
            (Method::PATCH, "enrollments/x"),
            (Method::GET, "enrollments"),
            (Method::PUT, "certificates"),
            (Method::POST, "certificates/x/other"),
            (Method::GET, "registrations/x/query"),
        ] {
            let lowered: Vec<String> = path.split('/').map(str::to_string).collect();
            assert_eq!(
                route_template(&method, &lowered),
                "other",
                "{method} {path}"
            );
        }
    }
}
