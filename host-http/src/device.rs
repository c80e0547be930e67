//! The DPS device API routes (mutual TLS):
//!
//! - `PUT /{idScope}/registrations/{registrationId}/register`
//! - `GET /{idScope}/registrations/{registrationId}/operations/{operationId}`
//! - `POST /{idScope}/registrations/{registrationId}` (registration status)
//!
//! The handshake's client chain and CertificateVerify signature (captured
//! by `tls`) are the device's evidence; the service decides.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request};

use attest_dps::{DpsError, ErrorKind};
use attest_service::{Answer, Service};

use crate::http::{MAX_BODY, blocking, read_body};
use crate::server::Connection;

/// A device API call, routed.
enum Call {
    Register,
    OperationStatus(String),
    RegistrationStatus,
}

pub(crate) async fn handle(
    service: Arc<Service>,
    connection: &Arc<Connection>,
    req: Request<Incoming>,
    segments: Vec<String>,
) -> Answer {
    let not_found = || {
        DpsError::new(
            ErrorKind::DeviceNotFound,
            format!("no device API resource at /{}", segments.join("/")),
        )
    };
    if segments[1] != "registrations" {
        return Err(not_found());
    }
    service.check_device_request(&segments[0], &segments[2])?;
    let method = req.method().clone();
    let body = read_body(req, MAX_BODY).await?;
    let call = match (&method, &segments[3..]) {
        (&Method::PUT, [register]) if register == "register" => Call::Register,
        (&Method::GET, [operations, id]) if operations == "operations" => {
            Call::OperationStatus(id.clone())
        }
        (&Method::POST, []) => Call::RegistrationStatus,
        _ => return Err(not_found()),
    };
    if !matches!(call, Call::Register) {
        // The other routes take no body, but one that is there must be JSON.
        attest_dps::query::json_body(&body)?;
    }
    let registration_id = segments[2].clone();
    let connection = Arc::clone(connection);
    blocking(move || match call {
        Call::Register => service.register(&connection.evidence, &registration_id, &body),
        Call::OperationStatus(id) => {
            service.operation_status(&connection.evidence, &registration_id, &id)
        }
        Call::RegistrationStatus => {
            service.registration_status(&connection.evidence, &registration_id)
        }
    })
    .await
}
