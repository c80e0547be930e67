//! attest's policy core: X.509 certificate path validation (RFC 5280 §6),
//! DPS-style enrollment resolution and proof of possession.
//!
//! Pure: no I/O, no clock, no randomness. Validation time is an input,
//! enrollment data comes through [`EnrollmentSource`] and signature
//! arithmetic through [`SignatureVerifier`]. The same code runs natively and,
//! compiled to `wasm32-unknown-unknown` with the `component` feature and
//! encoded as a WebAssembly component, behind the WIT world
//! `attest:policy/policy@0.5.0` (`wit/attest.wit`).
#![deny(unsafe_code)]

mod alg;
mod allocation;
mod attest;
mod budget;
mod cert;
mod crl;
mod dn;
mod error;
mod info;
mod names;
mod verify;

#[cfg(all(feature = "component", target_arch = "wasm32"))]
mod component;

pub use alg::{SignatureAlgorithm, SignatureVerifier, TLS_SIGNATURE_SCHEMES};
pub use allocation::{Allocation, Assignment, Reprovision, Substatus};
pub use attest::{
    CHALLENGE_CONTEXT, MAX_CHALLENGE_LEN, MAX_REGISTRATION_ID_LEN, MAX_TLS_MESSAGE_LEN,
    MIN_CHALLENGE_LEN, attest, attest_checked, certificate_common_name, certificate_details,
    certificate_keys, challenge_message, check_registration_id, resolve, resolve_checked,
    validate_chain, validate_chain_revocation, verify_ca_possession,
};
pub use cert::MAX_CERTIFICATE_SIZE;
pub use crl::{
    CrlDetails, CrlSet, Lenience, MAX_CRL_ENTRIES, MAX_CRL_SIZE, MAX_CRLS, MAX_CRLS_PER_ISSUER,
    RevocationMode, RevocationPolicy, crl_details, crl_issuer_key, crl_signed_by,
};
pub use error::{CertRef, Code, EnrollmentKind, EnrollmentRef, Refusal, Stage};
pub use info::{
    AttestRequest, Attested, CertificateInfo, CertificateKeys, ChainRequest, Decision,
    EnrollmentGroup, EnrollmentSource, IndividualEnrollment, Proof, Purpose, Validated,
};
pub use verify::{MAX_INTERMEDIATES, MAX_PATH_LEN, MAX_TRUST_ANCHORS};
