//! How a gateway embeds attest: implement `EnrollmentSource` over your own
//! store, load the policy once, attest each device.
//!
//! ```sh
//! cargo run -p host-cli -- pki demo /tmp/demo
//! cargo run -p policy-host --example own_store -- /tmp/demo/device-4.pem /tmp/demo/root-ca.pem /tmp/demo/line-b-ca.pem
//! ```
//!
//! The example enrolls the second CA file as a *disabled* group and the
//! first as an enabled one, then resolves the device chain.

use std::collections::HashMap;
use std::sync::Arc;

use policy_host::{
    AttestRequest, EnrollmentGroup, EnrollmentSource, IndividualEnrollment, Policy, Purpose,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// A gateway's enrollment store: here two maps, in practice a database.
struct Store {
    groups: HashMap<[u8; 32], EnrollmentGroup>,
    anchors: Vec<Vec<u8>>,
}

impl EnrollmentSource for Store {
    fn individual(&self, _registration_id: &str) -> Option<IndividualEnrollment> {
        None
    }
    fn group(&self, ca_identity: &[u8; 32]) -> Option<EnrollmentGroup> {
        self.groups.get(ca_identity).cloned()
    }
    fn trust_anchors(&self, _subject_key: &[u8; 32]) -> Vec<Vec<u8>> {
        // Returning every anchor is allowed; the component keeps only those
        // whose subject matches. Index by subject when there are many.
        self.anchors.clone()
    }
}

fn pem(path: &str) -> Result<Vec<Vec<u8>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{path}: {e}"))?
        .map(|c| c.map(|c| c.to_vec()).map_err(|e| format!("{path}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(format!("{path}: no certificate"));
    }
    Ok(certs)
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [chain, enabled_ca, disabled_ca] = args.as_slice() else {
        return Err("usage: gateway CHAIN.pem ENABLED_CA.pem DISABLED_CA.pem".into());
    };
    let chain = pem(chain)?;
    let mut store = Store {
        groups: HashMap::new(),
        anchors: Vec::new(),
    };
    for (file, id, enabled) in [
        (enabled_ca, "enabled-group", true),
        (disabled_ca, "disabled-group", false),
    ] {
        let ca = pem(file)?.remove(0);
        let group = EnrollmentGroup {
            group_id: id.into(),
            enabled,
        };
        // Groups are keyed by CA identity (subject and key), so a renewed
        // certificate of the same CA still belongs to its group.
        let keys = policy_host::certificate_keys(&ca).map_err(|r| r.to_string())?;
        store.groups.insert(keys.ca_identity, group);
        store.anchors.push(ca);
    }

    let policy = Policy::new().map_err(|e| e.to_string())?; // once per process
    let leaf = chain[0].clone();
    let registration_id = policy_host::certificate_common_name(&leaf)
        .map_err(|r| r.to_string())?
        .ok_or("leaf has no CN")?;
    let request = AttestRequest {
        registration_id,
        leaf,
        intermediates: chain[1..].to_vec(),
        time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs() as i64,
        purpose: Purpose::ClientAuth,
    };
    // A real gateway calls `policy.attest` with the TLS handshake signature
    // or a challenge signature as the proof; `resolve` is the dry run.
    match policy
        .resolve(&request, Arc::new(store))
        .map_err(|e| e.to_string())?
    {
        Ok(decision) => println!("admit {} via {}", decision.device_id, decision.enrollment),
        Err(refusal) => println!("refuse: {refusal}"),
    }
    Ok(())
}
