//! `GET /attest/hierarchy`: the trust hierarchy as the console draws it —
//! the CA certificates the service holds (verified or not) and the CAs
//! enrollment groups name, linked issuer to subject, with their groups'
//! state and the devices under them (registration records of each group,
//! individual enrollments under their certificate's issuer). A view for a
//! person: names are matched as RFC 4514 strings, and nothing here decides
//! anything (a decision is the component's, `POST /attest/decide`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use attest_dps::enrollment::one_certificate;
use policy_host::EnrollmentKind;

use crate::{Answer, Reply, Service};

/// Most groups, individual enrollments and CA certificates read, each.
const MAX_ENTRIES: usize = 2000;
/// Most registration records shown per group.
const MAX_DEVICES_PER_GROUP: usize = 50;

#[derive(Default)]
struct Node {
    subject: String,
    issuer: String,
    names: Vec<String>,
    verified: Option<bool>,
    groups: Vec<Value>,
}

impl Service {
    /// The trust hierarchy (see the module's documentation).
    pub fn trust_hierarchy(&self) -> Answer {
        let mut truncated = false;
        let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
        let mut devices = Vec::new();
        let node_of = |nodes: &mut BTreeMap<String, Node>, der: &[u8]| -> Option<String> {
            let (info, _) = policy_host::certificate_details(der).ok()?;
            let key = hex::encode(info.sha256);
            nodes.entry(key.clone()).or_insert_with(|| Node {
                subject: info.subject,
                issuer: info.issuer,
                ..Node::default()
            });
            Some(key)
        };
        let (cas, groups, individuals) = self.read("the trust hierarchy", |tx| {
            let cas = tx.certificates()?;
            let groups = tx.enrollments(EnrollmentKind::Group, None, MAX_ENTRIES + 1)?;
            let individuals = tx.enrollments(EnrollmentKind::Individual, None, MAX_ENTRIES + 1)?;
            let mut registered = Vec::new();
            for (_, doc) in groups.iter().take(MAX_ENTRIES) {
                let Ok(doc) = doc else { continue };
                let id = doc
                    .doc
                    .get("enrollmentGroupId")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let records = tx.registrations_of_group(id, None, MAX_DEVICES_PER_GROUP + 1)?;
                registered.push((id.to_string(), records));
            }
            Ok((cas, (groups, registered), individuals))
        })?;
        let (groups, registered) = groups;
        truncated |= cas.len() > MAX_ENTRIES
            || groups.len() > MAX_ENTRIES
            || individuals.len() > MAX_ENTRIES;
        let mut by_name = BTreeMap::new();
        for ca in cas.iter().take(MAX_ENTRIES) {
            if let Some(key) = node_of(&mut nodes, &ca.der) {
                if let Some(n) = nodes.get_mut(&key) {
                    n.names.push(ca.name.clone());
                    n.verified = Some(n.verified.unwrap_or(false) || ca.verified);
                }
                by_name.insert(ca.name.to_ascii_lowercase(), key);
            }
        }
        let mut group_node = BTreeMap::new();
        for (_, doc) in groups.iter().take(MAX_ENTRIES) {
            let Ok(doc) = doc else { continue };
            let id = doc
                .doc
                .get("enrollmentGroupId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let status = doc
                .doc
                .get("provisioningStatus")
                .and_then(Value::as_str)
                .unwrap_or("enabled");
            let x509 = &doc.doc["attestation"]["x509"];
            let key =
                if let Some(pem) = x509["signingCertificates"]["primary"]["certificate"].as_str() {
                    one_certificate(pem)
                        .ok()
                        .and_then(|der| node_of(&mut nodes, &der))
                } else if let Some(name) = x509["caReferences"]["primary"].as_str() {
                    by_name.get(&name.to_ascii_lowercase()).cloned()
                } else {
                    None
                };
            let group = json!({"id": id, "status": status});
            match &key {
                Some(k) => {
                    if let Some(n) = nodes.get_mut(k) {
                        n.groups.push(group);
                    }
                    group_node.insert(id.to_string(), k.clone());
                }
                None => devices.push(json!({"group": group, "parent": null})),
            }
        }
        for (group, records) in &registered {
            truncated |= records.len() > MAX_DEVICES_PER_GROUP;
            for (id, doc) in records.iter().take(MAX_DEVICES_PER_GROUP) {
                devices.push(json!({
                    "registrationId": doc.doc.get("registrationId").and_then(Value::as_str).unwrap_or(id),
                    "parent": group_node.get(group),
                    "via": {"kind": "group", "id": group},
                    "status": doc.doc.get("status"),
                    "deviceId": doc.doc.get("deviceId"),
                }));
            }
        }
        let subjects: BTreeMap<String, String> = nodes
            .iter()
            .map(|(k, n)| (n.subject.clone(), k.clone()))
            .collect();
        for (_, doc) in individuals.iter().take(MAX_ENTRIES) {
            let Ok(doc) = doc else { continue };
            let id = doc
                .doc
                .get("registrationId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let parent =
                doc.doc["attestation"]["x509"]["clientCertificates"]["primary"]["certificate"]
                    .as_str()
                    .and_then(|pem| one_certificate(pem).ok())
                    .and_then(|der| policy_host::certificate_details(&der).ok())
                    .and_then(|(info, _)| subjects.get(&info.issuer).cloned());
            devices.push(json!({
                "registrationId": id,
                "parent": parent,
                "via": {"kind": "individual", "id": id},
                "status": doc.doc.get("provisioningStatus").and_then(Value::as_str).unwrap_or("enabled"),
                "deviceId": doc.doc.get("deviceId"),
            }));
        }
        let cas: Vec<Value> = nodes
            .iter()
            .map(|(key, n)| {
                let parent = (n.issuer != n.subject)
                    .then(|| subjects.get(&n.issuer))
                    .flatten()
                    .filter(|p| *p != key);
                json!({
                    "key": key,
                    "subject": n.subject,
                    "issuer": n.issuer,
                    "parent": parent,
                    "names": n.names,
                    "verified": n.verified,
                    "groups": n.groups,
                })
            })
            .collect();
        Ok(Reply::ok(
            json!({"cas": cas, "devices": devices, "truncated": truncated}),
        ))
    }
}
