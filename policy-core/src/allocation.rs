//! Hub allocation: which IoT hub an admitted device is assigned to (DPS
//! allocation policies). Pure and deterministic, so every host (and every
//! replica) assigns the same hub to the same device.

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

    /// Whether `hub` is one this entry may assign.
    pub fn allows(&self, hub: &str) -> bool {
        self.iot_hub_host_name.as_deref() == Some(hub) || self.iot_hubs.iter().any(|h| h == hub)
    }

    /// Whether the entry names no hub at all (the service default applies).
    pub fn names_no_hub(&self) -> bool {
        self.iot_hubs.is_empty() && self.iot_hub_host_name.is_none()
    }

    /// The hub an admitted device is assigned to. A device that registered
    /// before (`previous_hub`) keeps its hub while the entry still allows it
    /// (or names no hub); otherwise the entry's allocation decides, and
    /// `default_hub` applies when it names none.
    pub fn assign(
        &self,
        registration_id: &str,
        previous_hub: Option<&str>,
        default_hub: &str,
    ) -> String {
        match previous_hub {
            Some(h) if self.allows(h) || self.names_no_hub() => h.to_string(),
            _ => self
                .hub_for(registration_id)
                .unwrap_or_else(|| default_hub.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_is_static_or_a_stable_hash() {
        let hubs = Allocation {
            policy: None,
            iot_hubs: vec!["a.example".into(), "b.example".into(), "c.example".into()],
            iot_hub_host_name: None,
        };
        let first = hubs.hub_for("device-1").unwrap();
        assert_eq!(hubs.hub_for("DEVICE-1").unwrap(), first);
        let spread: std::collections::HashSet<_> = (0..30)
            .filter_map(|i| hubs.hub_for(&format!("device-{i}")))
            .collect();
        assert!(spread.len() > 1, "hashing spreads devices: {spread:?}");
        let fixed = Allocation {
            policy: Some("static".into()),
            iot_hubs: vec![],
            iot_hub_host_name: Some("b.example".into()),
        };
        assert_eq!(fixed.hub_for("anything").as_deref(), Some("b.example"));
        assert_eq!(Allocation::default().hub_for("x"), None);
    }

    #[test]
    fn a_device_keeps_its_hub_while_the_entry_allows_it() {
        let hubs = Allocation {
            policy: Some("static".into()),
            iot_hubs: vec![],
            iot_hub_host_name: Some("b.example".into()),
        };
        assert_eq!(hubs.assign("d", None, "default"), "b.example");
        assert_eq!(hubs.assign("d", Some("b.example"), "default"), "b.example");
        // The entry no longer allows the old hub: reassigned.
        assert_eq!(hubs.assign("d", Some("a.example"), "default"), "b.example");
        // An entry that names no hub keeps whatever the device had.
        let none = Allocation::default();
        assert_eq!(none.assign("d", Some("a.example"), "default"), "a.example");
        assert_eq!(none.assign("d", None, "default"), "default");
    }
}
