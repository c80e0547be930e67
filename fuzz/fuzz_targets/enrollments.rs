//! The DPS enrollment loader (files and the management API alike): any
//! text either loads or is refused with an error; a document that loads
//! normalises to itself, and a status that does not read as "enabled" never
//! gives an enabled entry.
#![no_main]

use attest_dps::enrollment::{EnrollmentSet, normalize_entry};
use policy_core::EnrollmentSource;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = EnrollmentSet::from_json(text);
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    if let Ok(normal) = normalize_entry(&doc) {
        assert_eq!(
            normalize_entry(&normal).ok().as_ref(),
            Some(&normal),
            "idempotent"
        );
    }
    let mut set = EnrollmentSet::default();
    if set.insert_individual(&doc).is_ok() {
        let id = doc
            .as_object()
            .and_then(|o| {
                o.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("registrationId"))
            })
            .and_then(|(_, v)| v.as_str())
            .expect("a loaded individual enrollment has a registration ID");
        let entry = set.individual(id).expect("loaded");
        let status = doc
            .as_object()
            .and_then(|o| {
                o.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("provisioningStatus"))
            })
            .map(|(_, v)| v.clone());
        if entry.enabled {
            // Enabled only when absent or spelled "enabled" (any case).
            assert!(
                status.is_none()
                    || status
                        .as_ref()
                        .and_then(serde_json::Value::as_str)
                        .is_some_and(|s| s.eq_ignore_ascii_case("enabled")),
                "enabled from {status:?}"
            );
        }
    }
});
