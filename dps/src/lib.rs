//! The Azure IoT Hub Device Provisioning Service wire model, as attest
//! speaks it: enrollment documents and the enrollment index built from
//! them, registration and operation documents, CA certificate resources,
//! the error table, queries and paging, and SAS tokens.
//!
//! Pure: no I/O, no clock, no randomness (times, etags and IDs are
//! arguments), no transport. `attest-service` uses it to answer devices
//! and operators; transports (HTTPS and MQTT) only frame what it produces.
#![deny(unsafe_code)]

pub mod documents;
pub mod enrollment;
mod error;
pub mod ids;
pub mod kind;
pub mod query;
pub mod sas;

pub use enrollment::{EnrollmentError, EnrollmentSet};
pub use error::{DpsError, ErrorKind};
