//! Hub allocation: which IoT hub an admitted device is assigned to (DPS
//! allocation policies), and what a re-registration does (DPS
//! `reprovisionPolicy`). Pure and deterministic, so every host (and every
//! replica) assigns the same hub to the same device.
//!
//! | registration | `updateHubAssignment` | hub chosen | `migrateDeviceData` | substatus |
//! |---|---|---|---|---|
//! | first (no hub yet) | any | allocation | any | `initialAssignment` |
//! | again | `false` | the current hub | any | `reprovisionedToInitialAssignment` |
//! | again | `true` (default) | allocation, same hub | any | `reprovisionedToInitialAssignment` |
//! | again | `true` | allocation, another hub | `true` (default) | `deviceDataMigrated` |
//! | again | `true` | allocation, another hub | `false` | `deviceDataReset` |

use sha2::{Digest, Sha256};

/// How an enrollment entry assigns the devices it admits (DPS
/// `allocationPolicy`, `iotHubs`, `iotHubHostName`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allocation {
    /// `static`, `hashed` (default when several hubs are listed), or another
    /// DPS policy name (treated as hashed).
    pub policy: Option<String>,
    /// Candidate IoT hub host names (`iotHubs`).
    pub iot_hubs: Vec<String>,
    /// The hub of a static allocation (`iotHubHostName`).
    pub iot_hub_host_name: Option<String>,
    /// What a re-registration does (`reprovisionPolicy`).
    pub reprovision: Reprovision,
}

/// DPS `reprovisionPolicy`: both default to `true`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reprovision {
    /// Re-evaluate the hub on a re-registration (`false`: the device stays
    /// on its current hub).
    pub update_hub_assignment: bool,
    /// On a hub change, the device's data moves with it (`false`: the new
    /// hub starts from the enrollment's initial state).
    pub migrate_device_data: bool,
}

impl Default for Reprovision {
    fn default() -> Reprovision {
        Reprovision {
            update_hub_assignment: true,
            migrate_device_data: true,
        }
    }
}

/// DPS registration substatus: how the hub of an assigned device came about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Substatus {
    /// The first assignment of the device.
    InitialAssignment,
    /// Re-registered onto another hub; its device data moved with it.
    DeviceDataMigrated,
    /// Re-registered onto another hub; its device data starts afresh.
    DeviceDataReset,
    /// Re-registered onto the hub it already had.
    ReprovisionedToInitialAssignment,
}

impl Substatus {
    /// The DPS wire form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Substatus::InitialAssignment => "initialAssignment",
            Substatus::DeviceDataMigrated => "deviceDataMigrated",
            Substatus::DeviceDataReset => "deviceDataReset",
            Substatus::ReprovisionedToInitialAssignment => "reprovisionedToInitialAssignment",
        }
    }
}

/// The outcome of allocating an admitted device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The assigned hub.
    pub hub: String,
    /// How the assignment came about.
    pub substatus: Substatus,
}

impl Allocation {
    /// The hub for `registration_id`: the static hub, or a stable hash of the
    /// lower-case registration ID over `iotHubs`; `None` when no hub is named.
    pub fn hub_for(&self, registration_id: &str) -> Option<String> {
        let is_static = self
            .policy
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case("static"));
        if (is_static || self.iot_hubs.is_empty()) && self.iot_hub_host_name.is_some() {
            return self.iot_hub_host_name.clone();
        }
        if self.iot_hubs.is_empty() {
            return None;
        }
        if is_static {
            return self.iot_hubs.first().cloned();
        }
        let digest = Sha256::digest(registration_id.to_ascii_lowercase().as_bytes());
        let n = digest[..8]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let index = usize::try_from(n % self.iot_hubs.len() as u64).unwrap_or(0);
        self.iot_hubs.get(index).cloned()
    }

    /// The hub an admitted device is assigned to, and its substatus (see
    /// the table in this module's documentation). `current_hub` is the hub
    /// of the device's existing assignment, if it has one; `default_hub`
    /// applies when the entry names none.
    pub fn assign(
        &self,
        registration_id: &str,
        current_hub: Option<&str>,
        default_hub: &str,
    ) -> Assignment {
        let allocated = || {
            self.hub_for(registration_id)
                .unwrap_or_else(|| default_hub.to_string())
        };
        let Some(current) = current_hub else {
            return Assignment {
                hub: allocated(),
                substatus: Substatus::InitialAssignment,
            };
        };
        let hub = if self.reprovision.update_hub_assignment {
            allocated()
        } else {
            current.to_string()
        };
        let substatus = if hub == current {
            Substatus::ReprovisionedToInitialAssignment
        } else if self.reprovision.migrate_device_data {
            Substatus::DeviceDataMigrated
        } else {
            Substatus::DeviceDataReset
        };
        Assignment { hub, substatus }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_is_static_or_a_stable_hash() {
        let hubs = Allocation {
            iot_hubs: vec!["a.example".into(), "b.example".into(), "c.example".into()],
            ..Allocation::default()
        };
        let first = hubs.hub_for("device-1").unwrap();
        assert_eq!(hubs.hub_for("DEVICE-1").unwrap(), first);
        let spread: std::collections::HashSet<_> = (0..30)
            .filter_map(|i| hubs.hub_for(&format!("device-{i}")))
            .collect();
        assert!(spread.len() > 1, "hashing spreads devices: {spread:?}");
        let fixed = Allocation {
            policy: Some("static".into()),
            iot_hub_host_name: Some("b.example".into()),
            ..Allocation::default()
        };
        assert_eq!(fixed.hub_for("anything").as_deref(), Some("b.example"));
        assert_eq!(Allocation::default().hub_for("x"), None);
    }

    /// Every `reprovisionPolicy` combination, for a device with no hub, one
    /// on the hub allocation picks, and one on another hub.
    #[test]
    fn reprovision_table() {
        use Substatus::*;
        let entry = |update, migrate| Allocation {
            policy: Some("static".into()),
            iot_hubs: vec![],
            iot_hub_host_name: Some("b.example".into()),
            reprovision: Reprovision {
                update_hub_assignment: update,
                migrate_device_data: migrate,
            },
        };
        let cases = [
            // (update, migrate, current hub, hub, substatus)
            (true, true, None, "b.example", InitialAssignment),
            (false, false, None, "b.example", InitialAssignment),
            (
                true,
                true,
                Some("b.example"),
                "b.example",
                ReprovisionedToInitialAssignment,
            ),
            (
                true,
                false,
                Some("b.example"),
                "b.example",
                ReprovisionedToInitialAssignment,
            ),
            (
                true,
                true,
                Some("a.example"),
                "b.example",
                DeviceDataMigrated,
            ),
            (true, false, Some("a.example"), "b.example", DeviceDataReset),
            (
                false,
                true,
                Some("a.example"),
                "a.example",
                ReprovisionedToInitialAssignment,
            ),
            (
                false,
                false,
                Some("a.example"),
                "a.example",
                ReprovisionedToInitialAssignment,
            ),
            (
                false,
                true,
                Some("b.example"),
                "b.example",
                ReprovisionedToInitialAssignment,
            ),
        ];
        for (update, migrate, current, hub, substatus) in cases {
            assert_eq!(
                entry(update, migrate).assign("d", current, "default"),
                Assignment {
                    hub: hub.into(),
                    substatus
                },
                "update {update}, migrate {migrate}, current {current:?}"
            );
        }
        // An entry that names no hub: the service default.
        let none = Allocation::default();
        assert_eq!(none.assign("d", None, "default").hub, "default");
        assert_eq!(
            none.assign("d", Some("default"), "default").substatus,
            ReprovisionedToInitialAssignment
        );
    }
}
