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
    fn group(&self, _ca_identity: &[u8; 32]) -> Option<EnrollmentGroup> {
        None
    }
    fn trust_anchors(&self, _subject_key: &[u8; 32]) -> Vec<Vec<u8>> {
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

    fn group(&mut self, ca: Vec<u8>) -> Option<wit::EnrollmentGroup> {
        let identity: [u8; 32] = ca.as_slice().try_into().ok()?;
        self.enrollments
            .group(&identity)
            .map(|g| wit::EnrollmentGroup {
                group_id: g.group_id,
                enabled: g.enabled,
            })
    }

    fn trust_anchors(&mut self, subject: Vec<u8>) -> Vec<Vec<u8>> {
        match <[u8; 32]>::try_from(subject.as_slice()) {
            Ok(key) => self.enrollments.trust_anchors(&key),
            Err(_) => Vec::new(),
        }
    }

    fn revocation(&mut self, entry: wit::EnrollmentRef) -> wit::EntryRevocation {
        let entry = crate::convert::enrollment_from_wit(entry);
        crate::convert::entry_revocation_to_wit(self.enrollments.revocation(&entry))
    }
}
