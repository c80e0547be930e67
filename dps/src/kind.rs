//! The two kinds of enrollment entry, described once: every name a kind
//! goes by on the wire, in the store and in messages.

use policy_host::EnrollmentKind;

/// Every name of one [`EnrollmentKind`].
#[derive(Debug, PartialEq, Eq)]
pub struct KindNames {
    /// The JSON field that names an entry (`registrationId`, `enrollmentGroupId`).
    pub id_field: &'static str,
    /// The management API's collection, in routes and continuation tokens
    /// (`enrollments`, `enrollmentGroups`).
    pub collection: &'static str,
    /// The item type of a query page (`enrollment`, `enrollmentGroup`).
    pub item_type: &'static str,
    /// DPS's name for the kind in attest's JSON reports
    /// (`individualEnrollment`, `enrollmentGroup`).
    pub dps_name: &'static str,
    /// The store's `kind` column (`individual`, `group`).
    pub stored: &'static str,
}

const INDIVIDUAL: KindNames = KindNames {
    id_field: "registrationId",
    collection: "enrollments",
    item_type: "enrollment",
    dps_name: "individualEnrollment",
    stored: "individual",
};

const GROUP: KindNames = KindNames {
    id_field: "enrollmentGroupId",
    collection: "enrollmentGroups",
    item_type: "enrollmentGroup",
    dps_name: "enrollmentGroup",
    stored: "group",
};

/// The names of `kind`.
pub const fn names(kind: EnrollmentKind) -> &'static KindNames {
    match kind {
        EnrollmentKind::Individual => &INDIVIDUAL,
        EnrollmentKind::Group => &GROUP,
    }
}

/// The stored key of an entry: registration IDs are case-insensitive
/// (DPS lower-cases them), group IDs are kept as written.
pub fn key_of(kind: EnrollmentKind, id: &str) -> String {
    match kind {
        EnrollmentKind::Individual => id.to_ascii_lowercase(),
        EnrollmentKind::Group => id.to_string(),
    }
}

/// The kind whose store name is `stored`.
pub fn from_stored(stored: &str) -> Option<EnrollmentKind> {
    [EnrollmentKind::Individual, EnrollmentKind::Group]
        .into_iter()
        .find(|&k| names(k).stored == stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_round_trip_and_differ() {
        for kind in [EnrollmentKind::Individual, EnrollmentKind::Group] {
            assert_eq!(from_stored(names(kind).stored), Some(kind));
        }
        assert_ne!(
            names(EnrollmentKind::Individual),
            names(EnrollmentKind::Group)
        );
        assert_eq!(from_stored("Group"), None);
    }
}
