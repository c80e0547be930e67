//! The `attest:policy/enrollments` import: forwards the component's lookups
//! to the embedder's [`EnrollmentSource`].

use policy_core::{EnrollmentGroup, EnrollmentSource, IndividualEnrollment};

use crate::HostState;
use crate::bindings::attest::policy::enrollments;
use crate::bindings::attest::policy::types as wit;

/// A store with no enrollments and no trust anchors (plain chain
/// validation needs none).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoEnrollments;

impl EnrollmentSource for NoEnrollments {
    fn individual(&self, _registration_id: &str) -> Option<IndividualEnrollment> {
        None
    }
    fn group(&self, _ca_sha256: &[u8; 32]) -> Option<EnrollmentGroup> {
        None
    }
    fn trust_anchors(&self, _subject: &[u8]) -> Vec<Vec<u8>> {
        Vec::new()
    }
}

impl enrollments::Host for HostState {
    fn individual(&mut self, registration_id: String) -> Option<wit::IndividualEnrollment> {
        self.enrollments
            .individual(&registration_id)
            .map(|e| wit::IndividualEnrollment {
                registration_id: e.registration_id,
                device_id: e.device_id,
                enabled: e.enabled,
                certificates: e.certificates.iter().map(|t| t.to_vec()).collect(),
            })
    }

    fn group(&mut self, ca_certificate: Vec<u8>) -> Option<wit::EnrollmentGroup> {
        let thumbprint: [u8; 32] = ca_certificate.as_slice().try_into().ok()?;
        self.enrollments
            .group(&thumbprint)
            .map(|g| wit::EnrollmentGroup {
                group_id: g.group_id,
                enabled: g.enabled,
            })
    }

    fn trust_anchors(&mut self, subject: Vec<u8>) -> Vec<Vec<u8>> {
        self.enrollments.trust_anchors(&subject)
    }
}
