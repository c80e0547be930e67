//! The service's configuration file (`config.json` in the data directory).

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use base64::Engine as _;

use attest_dps::sas::{self, SasPolicy};

/// The service's configuration (`config.json` in the data directory),
/// created with a fresh management key on first start.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConfig {
    /// SAS policies for the management API.
    pub shared_access_policies: Vec<SasPolicy>,
    /// Hub assigned when the deciding enrollment names none.
    pub default_iot_hub_host_name: String,
    /// Longest a management SAS token may be valid for, seconds (default
    /// one year; tokens expiring later are refused).
    #[serde(default = "default_max_token_lifetime")]
    pub max_token_lifetime_seconds: i64,
}

fn default_max_token_lifetime() -> i64 {
    sas::DEFAULT_MAX_TOKEN_LIFETIME
}

impl ServiceConfig {
    /// Loads `config.json` from `data`, creating it (with a random key) if
    /// absent; the flag says whether it was created now.
    pub fn load_or_create(data: &Path) -> Result<(ServiceConfig, bool)> {
        if data.join("config.json").exists() {
            return Ok((ServiceConfig::load(data)?, false));
        }
        ServiceConfig::create(data).map(|c| (c, true))
    }

    /// Loads and checks `config.json` from `data`.
    pub fn load(data: &Path) -> Result<ServiceConfig> {
        let path = data.join("config.json");
        let text = policy_host::input::read_limited_text(&path, 1 << 20)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let config: ServiceConfig = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a host-http configuration", path.display()))?;
        if config.shared_access_policies.is_empty() {
            return Err(anyhow!(
                "{} has no sharedAccessPolicies; the management API would be unusable",
                path.display()
            ));
        }
        for policy in &config.shared_access_policies {
            sas::check_key(policy).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        }
        if config.max_token_lifetime_seconds < 1 {
            return Err(anyhow!(
                "{}: maxTokenLifetimeSeconds must be positive",
                path.display()
            ));
        }
        Ok(config)
    }

    /// Adds a shared access policy named `name` with `rights` and a fresh
    /// random key to `config.json` in `data` (replacing the file in one
    /// rename); the policy added. A running service loads it at its next
    /// start.
    pub fn add_policy(data: &Path, name: &str, rights: sas::Rights) -> Result<SasPolicy> {
        let mut config = ServiceConfig::load(data)?;
        let path = data.join("config.json");
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(anyhow!(
                "policy name {name:?} must be 1 to 64 ASCII letters, digits, '-', '_' or '.'"
            ));
        }
        if config
            .shared_access_policies
            .iter()
            .any(|p| p.key_name == name)
        {
            return Err(anyhow!(
                "{} already has a policy named {name:?}",
                path.display()
            ));
        }
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).map_err(|_| anyhow!("no system randomness"))?;
        let policy = SasPolicy {
            key_name: name.into(),
            primary_key: base64::engine::general_purpose::STANDARD.encode(key),
            rights: Some(rights),
        };
        config.shared_access_policies.push(policy.clone());
        let tmp = data.join("config.json.tmp");
        crate::files::write_private(&tmp, serde_json::to_string_pretty(&config)?.as_bytes())?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
        Ok(policy)
    }

    /// Creates `config.json` in `data` with a fresh random management key.
    fn create(data: &Path) -> Result<ServiceConfig> {
        let path = data.join("config.json");
        std::fs::create_dir_all(data)
            .with_context(|| format!("cannot create {}", data.display()))?;
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).map_err(|_| anyhow!("no system randomness"))?;
        let config = ServiceConfig {
            shared_access_policies: vec![SasPolicy {
                key_name: "provisioningserviceowner".into(),
                primary_key: base64::engine::general_purpose::STANDARD.encode(key),
                // The owner's policy, as DPS's provisioningserviceowner:
                // every right, written out so the file shows the format.
                rights: Some(sas::Rights::all()),
            }],
            default_iot_hub_host_name: "hub.attest.local".into(),
            max_token_lifetime_seconds: sas::DEFAULT_MAX_TOKEN_LIFETIME,
        };
        crate::files::write_private(&path, serde_json::to_string_pretty(&config)?.as_bytes())?;
        Ok(config)
    }
}
