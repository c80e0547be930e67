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
