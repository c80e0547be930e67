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
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    // Resource names are case-insensitive (the Node SDK writes
    // `/enrollmentgroups/…/attestationmechanism`); IDs are not.
    let mut lowered = segments.clone();
    lowered[0] = lowered[0].to_ascii_lowercase();
    if let [_, _, action] = lowered.as_mut_slice() {
        *action = action.to_ascii_lowercase();
    }
    let method = req.method().clone();
    service.authorize(
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
    blocking(move || {
        let s: Vec<&str> = lowered.iter().map(String::as_str).collect();
        let if_match = if_match.as_deref();
        match (&method, s.as_slice()) {
            (&Method::POST, ["enrollments"]) => service.bulk_enrollments(&body),
            (&Method::POST, ["enrollments", "query"]) => {
                service.query_enrollments(Individual, &body, &paging)
            }
            (&Method::POST, ["enrollmentgroups", "query"]) => {
                service.query_enrollments(Group, &body, &paging)
            }
            (&Method::PUT, ["enrollments", id]) => {
                service.put_enrollment(Individual, id, &body, if_match)
            }
            (&Method::PUT, ["enrollmentgroups", id]) => {
                service.put_enrollment(Group, id, &body, if_match)
            }
            (&Method::POST, ["enrollments", id, "attestationmechanism"]) => {
                service.attestation_mechanism(Individual, id)
            }
            (&Method::POST, ["enrollmentgroups", id, "attestationmechanism"]) => {
                service.attestation_mechanism(Group, id)
            }
            (&Method::GET, ["enrollments", id]) => service.get_enrollment(Individual, id),
            (&Method::GET, ["enrollmentgroups", id]) => service.get_enrollment(Group, id),
            (&Method::DELETE, ["enrollments", id]) => {
                service.delete_enrollment(Individual, id, if_match)
            }
            (&Method::DELETE, ["enrollmentgroups", id]) => {
                service.delete_enrollment(Group, id, if_match)
            }
            (&Method::GET, ["registrations", id]) => service.get_registration(id),
            (&Method::DELETE, ["registrations", id]) => service.delete_registration(id, if_match),
            (&Method::POST, ["registrations", group, "query"]) => {
                service.query_registrations(group, &body, &paging)
            }
            (&Method::GET, ["certificates"]) => service.list_certificates(),
            (&Method::PUT, ["certificates", name]) => {
                service.put_certificate(name, &body, if_match)
            }
            (&Method::GET, ["certificates", name]) => service.get_certificate(name),
            (&Method::DELETE, ["certificates", name]) => service.delete_certificate(name, if_match),
            (&Method::POST, ["certificates", name, "generateverificationcode"]) => {
                service.generate_verification_code(name, if_match)
            }
            (&Method::POST, ["certificates", name, "verify"]) => {
                service.verify_certificate(name, &body, if_match)
            }
            _ => Err(DpsError::new(
                ErrorKind::NotFound,
                format!(
                    "no management API resource {method} /{}",
                    segments.join("/")
                ),
            )),
        }
    })
    .await
}

/// The right a management route needs (DPS's shared access policy rights):
/// enrollments and groups are read with EnrollmentRead and changed with
/// EnrollmentWrite, registration records read with RegistrationStatusRead
/// and deleted with RegistrationStatusWrite, CA certificates (which decide
/// what groups may trust) need ServiceConfig. `None` for a path that is no
/// resource (any valid token, then 404).
fn right_for(method: &Method, lowered: &[String]) -> Option<Right> {
    let s: Vec<&str> = lowered.iter().map(String::as_str).collect();
    let read = matches!(*method, Method::GET)
        || (*method == Method::POST
            && matches!(
                s.as_slice(),
                [_, "query"] | [_, _, "query"] | [_, _, "attestationmechanism"]
            ));
    match s.first().copied() {
        Some("enrollments" | "enrollmentgroups") if read => Some(Right::EnrollmentRead),
        Some("enrollments" | "enrollmentgroups") => Some(Right::EnrollmentWrite),
        Some("registrations") if read => Some(Right::RegistrationStatusRead),
        Some("registrations") => Some(Right::RegistrationStatusWrite),
        Some("certificates") => Some(Right::ServiceConfig),
        _ => None,
    }
}
